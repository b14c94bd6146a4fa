/*
 * The worker's front door.  See door.h; the judging is frontdoor.c's.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "door.h"
#include "frontdoor.h"
#include "log.h"

#define DOOR_BUF_FIRST	1024		/* most ClientHellos fit; grown as needed */

struct door_wait {
	struct frontdoor judge;
	const struct listener *listener;
	size_t len, cap;
	unsigned char *buf;		/* owned, cap bytes */
	bool hup;			/* epoll saw the client's FIN: read up to it */
	bool full;			/* the last read filled the buffer: more may wait */
};

void
door_release(struct conn *c)
{
	if (c->state != CONN_DOOR || c->door == NULL)
		return;
	free(c->door->buf);
	free(c->door);
	c->door = NULL;
}

static void
door_count(struct worker *w, struct conn *c, enum close_reason why)
{
	struct lbd_stats_service_counter *ctr = stats_service_counter(w->map, w->slot,
	    w->conf->services[c->service].slot);

	stats_add(why == CLOSE_PROXY_ERROR ? &ctr->proxy_errors :
	    why == CLOSE_DENIED ? &ctr->denied : &ctr->sni_misses, 1);
	conn_close(w, c, why);
}

static enum close_reason
door_reason(enum frontdoor_reason r)
{
	switch (r) {
	case FRONTDOOR_PROXY_ERROR:
		return CLOSE_PROXY_ERROR;
	case FRONTDOOR_DENIED:
		return CLOSE_DENIED;
	default:
		return CLOSE_SNI_MISS;	/* no service for the name, or no ClientHello */
	}
}

/* Still undecided at EOF, at the size bound or the deadline. */
static void
door_give_up(struct worker *w, struct conn *c)
{
	const struct door_wait *dw = c->door;

	door_count(w, c, dw->listener->door.conf.accept_proxy && !dw->judge.proxy_done ?
	    CLOSE_PROXY_ERROR : CLOSE_SNI_MISS);
}

/* Admitted: the effective client, its service, its bytes for the backend. */
static void
door_pass(struct worker *w, struct conn *c, const struct frontdoor_result *res)
{
	struct door_wait *dw = c->door;
	size_t n = sizeof(c->peer);

	if (relay_hold_request(&c->relay, dw->buf + res->skip, dw->len - res->skip,
	    dw->hup || dw->full) == -1) {
		conn_close(w, c, CLOSE_LOCAL);
		return;
	}
	conn_list_remove(&w->doors, c);
	if (n > sizeof(res->client))
		n = sizeof(res->client);
	memcpy(&c->peer, &res->client, n);
	c->service = (uint16_t)res->service;
	door_release(c);
	c->state = CONN_CONNECTING;
	conn_admit(w, c);
}

/*
 * Reads what the client has sent, up to the bound: -1 when it failed, 1 at
 * EOF.  As in the relay, a short read proves the socket drained (the next
 * byte raises a new edge), unless epoll reported a FIN: then read on to it.
 */
static int
door_read(struct door_wait *dw, int fd)
{
	unsigned char *grown;
	ssize_t n;

	for (;;) {
		if (dw->len == dw->cap) {
			if (dw->cap >= FRONTDOOR_INPUT_MAX)
				return 0;
			if ((grown = realloc(dw->buf, dw->cap * 2)) == NULL)
				return -1;
			dw->buf = grown;
			dw->cap *= 2;
		}
		n = recv(fd, dw->buf + dw->len, dw->cap - dw->len, 0);
		if (n > 0) {
			dw->full = (size_t)n == dw->cap - dw->len;
			dw->len += (size_t)n;
			if (dw->full || dw->hup)
				continue;
			return 0;
		}
		if (n == 0)
			return 1;
		if (errno == EAGAIN)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static void
door_judge(struct worker *w, struct conn *c, int eof)
{
	struct door_wait *dw = c->door;
	struct frontdoor_result res;

	switch (frontdoor_feed(&dw->judge, dw->buf, dw->len, &res)) {
	case FRONTDOOR_ACCEPT:
		door_pass(w, c, &res);
		break;
	case FRONTDOOR_REJECT:
		door_count(w, c, door_reason(res.reason));
		break;
	case FRONTDOOR_NEED_MORE:
		if (eof || dw->len >= FRONTDOOR_INPUT_MAX)
			door_give_up(w, c);
		break;
	}
}

void
door_start(struct worker *w, struct conn *c, struct listener *l)
{
	struct door_wait *dw;

	c->state = CONN_DOOR;
	c->door = NULL;
	conn_list_append(&w->doors, c);
	if ((dw = calloc(1, sizeof(*dw))) == NULL ||
	    (dw->buf = malloc(DOOR_BUF_FIRST)) == NULL) {
		free(dw);
		log_warnx("listener %s: out of memory", l->addr.text);
		conn_close(w, c, CLOSE_LOCAL);
		return;
	}
	dw->cap = DOOR_BUF_FIRST;
	dw->listener = l;
	c->door = dw;
	frontdoor_init(&dw->judge, &l->door.conf, &c->peer.sa, sizeof(c->peer));
	door_event(w, c, EPOLLIN);
}

void
door_event(struct worker *w, struct conn *c, uint32_t events)
{
	int rc;

	if (events & EPOLLERR) {
		conn_close(w, c, CLOSE_RESET_CLIENT);
		return;
	}
	if (events & (EPOLLRDHUP | EPOLLHUP))
		c->door->hup = true;
	if ((rc = door_read(c->door, c->client_fd)) == -1) {
		conn_close(w, c, CLOSE_RESET_CLIENT);
		return;
	}
	door_judge(w, c, rc == 1);
}

void
door_expire(struct worker *w)
{
	struct conn *c, *next;

	for (c = w->doors.head; c != NULL; c = next) {
		next = c->next;
		if (w->now_ms - c->started_ms >= w->conf->services[c->service].connect_timeout_ms)
			door_give_up(w, c);
	}
}
