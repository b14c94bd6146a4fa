/*
 * A worker's waiting clients.  See wait.h; the cross-worker order is
 * queue.c's.  Each service's waiting list is in order of tickets, so the
 * worker publishes its head's ticket and only ever serves its head.
 */
#include "log.h"
#include "queue.h"
#include "wait.h"

int
wait_others(struct worker *w, const struct conn *c)
{
	const struct lbd_service_conf *svc = &w->conf->services[c->service];

	return svc->limited && queue_waiting(w->map, svc->slot) > 0;
}

static void
wait_publish(struct worker *w, size_t s)
{
	const struct conn *head = w->rt[s].waiting.head;

	queue_publish(w->map, w->slot, w->conf->services[s].slot,
	    head != NULL ? head->ticket : 0);
}

void
wait_enter(struct worker *w, struct conn *c)
{
	const struct lbd_service_conf *svc = &w->conf->services[c->service];
	uint64_t ticket = queue_enter(w->map, w->slot, svc->slot, svc->max_queue);

	if (ticket == 0) {
		conn_reject(w, c, CLOSE_QUEUE_FULL);
		return;
	}
	c->ticket = ticket;
	c->state = CONN_WAITING;
	c->last_ms = w->now_ms;
	/* Any backend may free a slot first: forget the ones it tried. */
	schedule_walk_forget(&c->walk);
	conn_list_append(&w->rt[c->service].waiting, c);
	if (w->rt[c->service].waiting.head == c)
		wait_publish(w, c->service);
	w->nwaiting++;
	w->wait_due = 1;
}

void
wait_leave(struct worker *w, struct conn *c)
{
	const struct lbd_service_conf *svc = &w->conf->services[c->service];
	int was_head = w->rt[c->service].waiting.head == c;

	conn_list_remove(&w->rt[c->service].waiting, c);
	queue_leave(w->map, w->slot, svc->slot);
	if (was_head)
		wait_publish(w, c->service);
	c->waited_ms = (uint32_t)(w->now_ms - c->last_ms);
	c->last_ms = w->now_ms;
	c->ticket = 0;
	c->state = CONN_CONNECTING;
	w->nwaiting--;
}

/*
 * maxconn: the next backend with a free slot, or the queue -- behind the
 * clients already in it, or when every eligible backend is full.  -1: c
 * waits in the queue now (or was closed).
 */
int
wait_pick(struct worker *w, struct conn *c)
{
	const struct lbd_service_conf *svc = &w->conf->services[c->service];
	int b;

	/* A newcomer queues behind those waiting; a retry after a failed
	 * connect was admitted already and tries the other backends. */
	if (c->state != CONN_WAITING && c->walk.attempts == 0 && wait_others(w, c)) {
		wait_enter(w, c);
		return -1;
	}
	b = schedule_next_slot(&w->rt[c->service].sched, svc, w->map, &c->walk,
	    &c->peer.sa, w->slot);
	if (b == SCHED_FULL) {
		if (c->state != CONN_WAITING)
			wait_enter(w, c);
		return -1;
	}
	if (c->state == CONN_WAITING)
		wait_leave(w, c);
	if (b < 0) {
		conn_reject(w, c, c->walk.attempts > 0 ? CLOSE_CONNECT : CLOSE_NO_BACKEND);
		return -1;
	}
	c->slot_held = svc->backends[b].maxconn > 0;
	return b;
}

/* Serves service s's head while it holds the oldest ticket and gets a slot. */
static void
wait_serve(struct worker *w, size_t s)
{
	struct conn_list *waiting = &w->rt[s].waiting;
	uint32_t sslot = w->conf->services[s].slot;
	struct conn *c;

	while ((c = waiting->head) != NULL &&
	    queue_turn(c->ticket, queue_oldest(w->map, sslot))) {
		conn_connect(w, c);
		if (waiting->head == c)
			return;		/* still full: it keeps its place */
	}
}

void
wait_run(struct worker *w)
{
	size_t s;

	w->wait_due = 0;
	w->next_wait_ms = w->now_ms + QUEUE_POLL_MS;
	for (s = 0; s < w->conf->nservices; s++)
		if (w->rt[s].waiting.head != NULL) {
			wait_expire(w, s);	/* to QUEUE_POLL_MS, not the 100 ms tick */
			wait_serve(w, s);
		}
}

void
wait_expire(struct worker *w, size_t s)
{
	const struct lbd_service_conf *svc = &w->conf->services[s];
	struct conn *c;

	while ((c = w->rt[s].waiting.head) != NULL &&
	    w->now_ms - c->last_ms >= svc->queue_timeout_ms) {
		stats_add(&stats_service_counter(w->map, w->slot, svc->slot)->queue_timeouts, 1);
		conn_reject(w, c, CLOSE_QUEUE_TIMEOUT);
	}
}

int
wait_queue_full(const struct worker *w, size_t s)
{
	const struct lbd_service_conf *svc = &w->conf->services[s];

	return svc->limited && svc->max_queue != 0 &&
	    queue_waiting(w->map, svc->slot) >= svc->max_queue;
}

int
wait_timeout(const struct worker *w, int timeout)
{
	int64_t left;

	if (w->nwaiting == 0)
		return timeout;
	if (w->wait_due)
		return 0;
	left = w->next_wait_ms > w->now_ms ? (int64_t)(w->next_wait_ms - w->now_ms) : 0;
	return timeout == -1 || left < timeout ? (int)left : timeout;
}
