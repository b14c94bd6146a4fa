/*
 * The master's listening sockets: bound once, kept open across reloads and
 * binary upgrades for every address the configuration still names.
 */
#ifndef LBD_LISTEN_H
#define LBD_LISTEN_H

#include <stddef.h>

#include "worker.h"

struct lbd_config;

/*
 * The listeners conf needs, one per address (services that share one by sni
 * share its listener): those already open in old (moved out of it, so
 * they are never closed and re-opened) and freshly bound ones.  On failure
 * the fresh ones are closed, old is left as it was, and err says why.
 */
struct listener *listeners_for(const struct lbd_config *conf, struct listener *old,
    size_t nold, size_t *n, char *err, size_t errlen);
/* Closes the listeners of old that next does not keep, and frees old. */
void listeners_retire(struct listener *old, size_t nold, const struct listener *next,
    size_t nnext);

#endif
