/*
 * A worker's clients waiting in their service's queue for a maxconn slot:
 * joining it, being served in turn (queue.c says whose turn), timing out
 * after queue-timeout.  A waiting client holds its socket and nothing else.
 */
#ifndef LBD_WAIT_H
#define LBD_WAIT_H

#include "workerstate.h"

/*
 * For a service with a maxconn: the next backend for c with a slot held,
 * or -1 when c now waits in the queue (or was closed).
 */
int wait_pick(struct worker *w, struct conn *c);
/* Others wait for c's service: c must queue behind them. */
int wait_others(struct worker *w, const struct conn *c);
/* c joins its service's queue (or is closed when max-queue is reached). */
void wait_enter(struct worker *w, struct conn *c);
/* c leaves the queue: served, or closing. */
void wait_leave(struct worker *w, struct conn *c);
/* Serves the waiting clients whose turn it is while slots are free. */
void wait_run(struct worker *w);
/* Closes service s's clients that waited past queue-timeout. */
void wait_expire(struct worker *w, size_t s);
/* Service s's queue is at max-queue: accepting for it pauses. */
int wait_queue_full(const struct worker *w, size_t s);
/* The loop's timeout, capped while clients wait. */
int wait_timeout(const struct worker *w, int timeout);

#endif
