/*
 * The worker's run queue.  See runq.h.
 */
#include <stddef.h>

#include "runq.h"
#include "workerstate.h"

void
runq_add(struct runq *q, struct conn *c)
{
	if (c->queued)
		return;
	c->queued = 1;
	q->n++;
	c->run_next = NULL;
	if (q->tail != NULL)
		q->tail->run_next = c;
	else
		q->head = c;
	q->tail = c;
}

struct conn *
runq_pop(struct runq *q)
{
	struct conn *c;

	if ((c = q->head) == NULL)
		return NULL;
	if ((q->head = c->run_next) == NULL)
		q->tail = NULL;
	c->run_next = NULL;
	c->queued = 0;
	q->n--;
	return c;
}

/* O(queued): only connections that yielded are queued, and with an 8M turn
 * that is rare. */
void
runq_remove(struct runq *q, struct conn *c)
{
	struct conn **pp, *prev = NULL;

	if (!c->queued)
		return;
	for (pp = &q->head; *pp != c; pp = &(*pp)->run_next)
		prev = *pp;
	*pp = c->run_next;
	if (q->tail == c)
		q->tail = prev;
	c->run_next = NULL;
	c->queued = 0;
	q->n--;
}
