/*
 * The health checker's private parts, shared by health.c (probes and their
 * timer) and healthload.c (loading the configuration into checks).
 */
#ifndef LBD_HEALTHINT_H
#define LBD_HEALTHINT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "healthstate.h"
#include "statsmap.h"

#define HEALTH_READ_MAX	4096	/* reply bytes read looking for expect */
#define HEALTH_WIN	512	/* read window: > 2 x the longest expect (256) */

enum health_phase {
	HEALTH_IDLE = 0,
	HEALTH_CONNECTING,
	HEALTH_SENDING,
	HEALTH_READING,
};

/* One configured service's check settings; send and expect are owned. */
struct health_service {
	char name[LBD_NAME_LEN];
	uint32_t slot;
	uint32_t interval_ms;
	uint32_t jitter_ms;
	uint32_t timeout_ms;
	uint32_t rise;
	uint32_t fall;
	char *send;
	size_t send_len;
	char *expect;
	size_t expect_len;
	uint32_t *members;	/* owned: backend slots */
	size_t nmembers;
	size_t nup;		/* members up, kept as they change */
	int none_up;		/* "no backend up" logged, no backend up since */
};

/*
 * The epoll handler of a probe.  A check alternates between two, one per
 * probe, so that an event fetched for a probe closed since (a timeout, then
 * the next probe started in the same pass) reaches the handler that no
 * longer holds a socket, and is dropped, rather than the new probe.
 */
struct health_pev {
	struct ev_handler ev;		/* fd -1 unless its probe is in flight */
	struct health_check *c;
};

/* The check of one backend slot.  Owns pev[cur].ev.fd, the probe socket. */
struct health_check {
	struct health_pev pev[2];
	int cur;			/* which pev the probe in flight uses */
	struct health *h;
	struct health_service *svc;	/* NULL: slot not configured */
	struct hheap_node tn;		/* next probe start, or probe deadline */
	struct hstate st;
	uint32_t slot;
	char name[LBD_NAME_LEN];
	struct lbd_sockaddr addr;
	enum health_phase phase;
	uint32_t events;		/* epoll events asked for on ev.fd */
	uint64_t started;		/* monotonic us of the probe's connect */
	size_t sent;
	size_t nread;
	size_t wlen;
	char win[HEALTH_WIN];
};

/*
 * Owns the timerfd, every check, and the service array.  checks[i] is
 * allocated once and kept until health_stop, even when a reload drops slot
 * i, so an event already fetched never points at freed memory; growing the
 * pointer array moves no check.
 */
struct health {
	int epfd;
	struct stats_map *map;
	struct ev_handler timer;
	uint64_t armed;			/* deadline the timerfd is set for, 0 none */
	struct hheap heap;
	struct hheap_node **heapv;	/* owned: ncheck entries */
	struct health_check **checks;	/* owned: ncheck, indexed by slot */
	size_t ncheck;
	struct health_service *svcs;
	size_t nsvcs;
	uint64_t seed;			/* hstate_rand's state */
	uint32_t slack_us;		/* how late a probe may start: the least
					 * of every service's hstate_slack_us */
	size_t inflight;		/* probes holding a socket */
	size_t inflight_max;		/* half the descriptor limit */
	int local_error;		/* a socket() failure was logged */
	uint64_t busy_logged_us;	/* inflight_max reached, logged; 0 never */
};

static inline struct ev_handler *
health_ev(struct health_check *c)
{
	return &c->pev[c->cur].ev;
}

static inline int
health_fd(const struct health_check *c)
{
	return c->pev[c->cur].ev.fd;
}

/* health.c */
void health_arm(struct health *h);
void health_schedule_first(struct health_check *c, uint64_t now);
void health_probe_close(struct health_check *c);
/* Writes health and tells workers to rebuild; the caller holds the seqlock. */
void health_set_segment(struct health_check *c, int up);
void health_probe_cb(struct ev_handler *ev, uint32_t events);
void health_timer_cb(struct ev_handler *ev, uint32_t events);

#endif
