/*
 * The worker's run queue: connections that yielded (a direction moved its
 * relay-turn of bytes and could go on) wait here for their next turn, after
 * the worker's other connections had theirs.  No readiness event will
 * announce those bytes again, so the queue is what brings them back.
 * Intrusive: the links live in struct conn (run_next, queued).
 */
#ifndef LBD_RUNQ_H
#define LBD_RUNQ_H

#include <stdint.h>

struct conn;

struct runq {
	struct conn *head, *tail;	/* oldest first */
	uint32_t n;
};

/* Queues c at the end, unless it is queued already. */
void runq_add(struct runq *q, struct conn *c);
/* The oldest, taken off the queue, or NULL. */
struct conn *runq_pop(struct runq *q);
/* Takes c off the queue if it is on it (a connection closed while queued). */
void runq_remove(struct runq *q, struct conn *c);

#endif
