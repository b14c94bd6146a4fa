/*
 * Unique names in a configuration, in linear time: service titles in the
 * file, backend titles in a service.  (libconfuse would compare each title
 * with every one before it; conflex.c takes the titles out of its way.)
 */
#ifndef LBD_CONFNAMES_H
#define LBD_CONFNAMES_H

#include <stddef.h>

#include "conflex.h"

/*
 * The first section of secs[0..n) whose name an earlier one has: its index,
 * with the earlier one's in *earlier; n when every name is unique, -1 when
 * out of memory.
 */
long confnames_dup(const struct conflex_section *const *secs, size_t n, size_t *earlier);

#endif
