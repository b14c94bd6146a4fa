/*
 * lbstat's machine-readable renderings of a snapshot: JSON (one object per
 * line) and the Prometheus text exposition format 0.0.4.  Pure, like
 * statview.h.
 */
#ifndef LBD_STATEXPORT_H
#define LBD_STATEXPORT_H

#include <stddef.h>
#include <stdio.h>

#include "statview.h"

void statexport_json(FILE *out, const struct statview_snap *snap,
    const struct statview_filter *filter);
void statexport_prom(FILE *out, const struct statview_snap *snap,
    const struct statview_filter *filter);

/* The escapes the renderings use; stathist.c writes JSON with them too. */
char *statexport_json_escape(const char *in, char *out, size_t outlen);
char *statexport_prom_escape(const char *in, char *out, size_t outlen);

#endif
