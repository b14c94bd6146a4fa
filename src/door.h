/*
 * The worker's front door: a client accepted on a listener that needs one
 * (accept-proxy, services sharing the address by sni, allow/deny) stays
 * here, without a service or a backend, while the bytes frontdoor.c judges
 * come in -- bounded by FRONTDOOR_INPUT_MAX and the default service's
 * connect-timeout.  Then it is admitted to its service with what it sent
 * (less any PROXY header) owed to the backend, or closed and counted.
 */
#ifndef LBD_DOOR_H
#define LBD_DOOR_H

#include "workerstate.h"

/* c was just accepted on l (l->door.needed): judge what it has sent. */
void door_start(struct worker *w, struct conn *c, struct listener *l);
/* The client socket of c (CONN_DOOR) has news. */
void door_event(struct worker *w, struct conn *c, uint32_t events);
/* On the worker's tick: close the clients that took too long. */
void door_expire(struct worker *w);
/* Frees what the door holds for c (conn_close calls it). */
void door_release(struct conn *c);

#endif
