/*
 * Health checks in the master.
 *
 * One check per backend slot, kept for the checker's whole life so that a
 * reload never frees a struct an event already fetched by the master's loop
 * may still point at.  A check is either idle (its heap node holds the start
 * of its next probe) or probing (one nonblocking socket; the node holds the
 * probe's deadline).  One timerfd, armed for the earliest node, drives all
 * of them; probes run concurrently and nothing here blocks.
 *
 * A probe: connect; if send is set, write it, then read at most
 * HEALTH_READ_MAX bytes until expect is seen (or any byte when expect is
 * empty).  Results feed rise/fall (healthstate.c); a change of health is
 * written to the segment, bumps the service's sched_version and is logged
 * once.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "event.h"
#include "health.h"
#include "healthstate.h"
#include "log.h"
#include "slowstart.h"

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
	uint32_t timeout_ms;
	uint32_t rise;
	uint32_t fall;
	char *send;
	size_t send_len;
	char *expect;
	size_t expect_len;
	uint32_t *members;		/* backend slots, nmembers long */
	size_t nmembers;
	int none_up;		/* "no backend up" logged, no backend up since */
};

/* The check of one backend slot.  Owns ev.fd, the probe socket. */
struct health_check {
	struct ev_handler ev;		/* fd -1 unless probing */
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

/* Owns the timerfd, every check, and the service array. */
struct health {
	int epfd;
	struct stats_map *map;
	struct ev_handler timer;
	uint64_t armed;			/* deadline the timerfd is set for, 0 none */
	struct hheap heap;
	struct hheap_node **heapv;
	/* By backend slot, ncheck of them; each allocated alone, since epoll
	 * and the heap point into them. */
	struct health_check **checks;
	uint32_t ncheck;
	struct health_service *svcs;
	size_t nsvcs;
	int local_error;		/* a socket() failure was logged */
};

/* Sets the timerfd for the earliest deadline, only when it changed. */
static void
health_arm(struct health *h)
{
	struct hheap_node *nd = hheap_min(&h->heap);
	struct itimerspec its;
	uint64_t at = nd != NULL ? nd->deadline : 0;

	if (at == h->armed)
		return;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(at / 1000000);
	its.it_value.tv_nsec = (long)(at % 1000000) * 1000;
	if (timerfd_settime(h->timer.fd, TFD_TIMER_ABSTIME, &its, NULL) == -1) {
		log_warn("health: timerfd_settime");
		return;
	}
	h->armed = at;
}

static void
health_schedule(struct health_check *c, uint64_t at)
{
	hheap_set(&c->h->heap, &c->tn, at);
}

static void
health_schedule_first(struct health_check *c, uint64_t now)
{
	health_schedule(c, now + hstate_first_delay_us(c->svc->interval_ms, arc4random()));
}

/* Ends the probe in flight, if any, without a result. */
static void
health_probe_close(struct health_check *c)
{
	/* An abortive close: a checker that closes first would otherwise pile
	 * up a TIME_WAIT socket per probe and eat the ephemeral ports. */
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (c->ev.fd == -1)
		return;
	ev_del(c->h->epfd, &c->ev);
	(void)setsockopt(c->ev.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c->ev.fd);
	c->ev.fd = -1;
	c->phase = HEALTH_IDLE;
	c->events = 0;
}

static size_t
health_count_up(const struct health *h, const struct health_service *svc)
{
	size_t i, up = 0;

	for (i = 0; i < svc->nmembers; i++)
		up += h->checks[svc->members[i]]->st.up != 0;
	return up;
}

/* The log lines of a change of health; the segment already shows it. */
static void
health_log_change(struct health_check *c, const char *text, uint64_t latency)
{
	struct health_service *svc = c->svc;
	size_t up = health_count_up(c->h, svc);

	if (c->st.up) {
		log_notice("%s/%s is UP (latency %.1fms); %zu of %zu up", svc->name,
		    c->name, (double)latency / 1000, up, svc->nmembers);
		svc->none_up = 0;
		return;
	}
	log_warnx("%s/%s is DOWN (%s); %zu of %zu up", svc->name, c->name, text, up,
	    svc->nmembers);
	if (up == 0 && !svc->none_up) {
		log_warnx("service %s has no backend up: trying all of them", svc->name);
		svc->none_up = 1;
	}
}

/* Writes health and tells workers to rebuild; the caller holds the seqlock. */
static void
health_set_segment(struct health_check *c, int up)
{
	struct lbd_stats_backend *b = stats_backend(c->h->map, c->slot);

	b->health = up ? LBD_HEALTH_UP : LBD_HEALTH_DOWN;
	b->last_change = (uint64_t)time(NULL);
	if (up)		/* back: ramps up over the service's slowstart */
		slowstart_begin(c->h->map, c->slot, clock_ms());
	stats_service(c->h->map, c->svc->slot)->sched_version++;
}

/* For lbstat's age of the last check (unix time: lbstat compares it with
 * its own clock, and lbd.stats outlives the daemon). */
static uint64_t
health_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Counts one probe result in rise/fall and in the segment. */
static void
health_record(struct health_check *c, int ok, const char *text, uint64_t latency)
{
	struct lbd_stats_backend *b = stats_backend(c->h->map, c->slot);
	enum hstate_change change;

	change = hstate_result(&c->st, ok, c->svc->rise, c->svc->fall);
	stats_check_begin(b);
	b->check_status = ok ? LBD_CHECK_OK : LBD_CHECK_FAILED;
	snprintf(b->check_text, sizeof(b->check_text), "%s", text);
	b->check_latency_us = latency > UINT32_MAX ? UINT32_MAX : (uint32_t)latency;
	b->checks++;
	b->last_check_ms = health_wall_ms();
	stats_check_end(b);
	if (change == HSTATE_SAME)
		return;
	stats_write_begin(c->h->map);
	health_set_segment(c, c->st.up);
	stats_write_end(c->h->map);
	health_log_change(c, text, latency);
}

static int
health_disabled(const struct health_check *c)
{
	return stats_backend(c->h->map, c->slot)->admin == LBD_ADMIN_DISABLED;
}

/* Ends the probe with a result and schedules the next one. */
static void
health_probe_done(struct health_check *c, int ok, const char *text)
{
	uint64_t now = clock_us(), next;

	health_probe_close(c);
	/* Disabled while the probe ran: maintenance, not a verdict. */
	if (!health_disabled(c))
		health_record(c, ok, text, now - c->started);
	/* Paced from the start, so a slow reply does not stretch the period. */
	next = c->started + hstate_next_delay_us(c->svc->interval_ms, arc4random());
	health_schedule(c, next > now ? next : now);
}

static void
health_fail_errno(struct health_check *c, const char *op, int error)
{
	char text[LBD_CHECK_TEXT_LEN];

	snprintf(text, sizeof(text), "%s: %s", op, strerror(error));
	health_probe_done(c, 0, text);
}

/* "expect: 'PONG' not found", with how it ended appended when not EOF. */
static void
health_fail_expect(struct health_check *c, const char *how)
{
	char quoted[32], text[LBD_CHECK_TEXT_LEN];

	hstate_quote(quoted, sizeof(quoted), c->svc->expect, c->svc->expect_len);
	snprintf(text, sizeof(text), "expect: '%s' not found%s", quoted, how);
	health_probe_done(c, 0, text);
}

static void
health_want(struct health_check *c, uint32_t events)
{
	if (c->events == events)
		return;
	if (ev_mod(c->h->epfd, &c->ev, events) == -1) {
		health_fail_errno(c, "epoll_ctl", errno);
		return;
	}
	c->events = events;
}

static void
health_probe_read(struct health_check *c)
{
	struct health_service *svc = c->svc;
	size_t room;
	ssize_t n;

	/* Bounded: every pass reads at least one byte of HEALTH_READ_MAX. */
	while (c->ev.fd != -1) {
		room = sizeof(c->win) - c->wlen;
		if (room > HEALTH_READ_MAX - c->nread)
			room = HEALTH_READ_MAX - c->nread;
		n = read(c->ev.fd, c->win + c->wlen, room);
		if (n == -1) {
			if (errno != EAGAIN && errno != EINTR)
				health_fail_errno(c, "read", errno);
			return;
		}
		if (n == 0) {
			if (svc->expect_len > 0)
				health_fail_expect(c, "");
			else
				health_probe_done(c, 0, "closed before reply");
			return;
		}
		c->nread += (size_t)n;
		c->wlen += (size_t)n;
		if (hstate_expect_scan(c->win, &c->wlen, svc->expect, svc->expect_len))
			health_probe_done(c, 1, "ok");
		else if (c->nread >= HEALTH_READ_MAX)
			health_fail_expect(c, " in 4 KiB");
	}
}

static void
health_probe_send(struct health_check *c)
{
	struct health_service *svc = c->svc;
	ssize_t n;

	while (c->sent < svc->send_len) {
		n = send(c->ev.fd, svc->send + c->sent, svc->send_len - c->sent,
		    MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				health_want(c, EPOLLOUT);
			else
				health_fail_errno(c, "send", errno);
			return;
		}
		c->sent += (size_t)n;
	}
	c->phase = HEALTH_READING;
	health_want(c, EPOLLIN);
}

/* Nothing to send and nothing expected: the connect was the check.  With
 * only expect set, the reply is a banner the server sends first (SMTP's 220). */
static void
health_probe_connected(struct health_check *c)
{
	if (c->svc->send_len == 0 && c->svc->expect_len == 0) {
		health_probe_done(c, 1, "ok");
		return;
	}
	c->phase = HEALTH_SENDING;
	health_probe_send(c);
}

static void
health_probe_connecting(struct health_check *c, uint32_t events)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(int), plen = sizeof(peer);
	int error = 0;

	if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0)
		return;
	if (getsockopt(c->ev.fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
		error = errno;
	if (error != 0) {
		health_fail_errno(c, "connect", error);
		return;
	}
	/* An event meant for an earlier probe's socket with the same fd
	 * number can arrive in the same batch: believe only the kernel. */
	if (getpeername(c->ev.fd, (struct sockaddr *)&peer, &plen) == -1)
		return;
	health_probe_connected(c);
}

static void
health_probe_cb(struct ev_handler *ev, uint32_t events)
{
	struct health_check *c = EV_CONTAINER(ev, struct health_check, ev);

	switch (c->phase) {
	case HEALTH_CONNECTING:
		health_probe_connecting(c, events);
		break;
	case HEALTH_SENDING:
		health_probe_send(c);
		break;
	case HEALTH_READING:
		health_probe_read(c);
		break;
	case HEALTH_IDLE:
		break;		/* stale event of a probe already closed */
	}
	health_arm(c->h);
}

/* A disabled backend is not probed; its check column says so. */
static void
health_skip_disabled(struct health_check *c, uint64_t now)
{
	struct lbd_stats_backend *b = stats_backend(c->h->map, c->slot);

	hstate_reset_run(&c->st);
	if (b->check_status != LBD_CHECK_NONE) {
		stats_check_begin(b);
		b->check_status = LBD_CHECK_NONE;
		snprintf(b->check_text, sizeof(b->check_text), "disabled");
		stats_check_end(b);
	}
	health_schedule(c, now + hstate_next_delay_us(c->svc->interval_ms, arc4random()));
}

/* A local failure (no fd, no memory) says nothing about the backend. */
static void
health_local_error(struct health_check *c, const char *op, uint64_t now)
{
	if (!c->h->local_error)
		log_warn("health check %s/%s %s: %s", c->svc->name, c->name,
		    c->addr.text, op);
	c->h->local_error = 1;
	health_schedule(c, now + hstate_next_delay_us(c->svc->interval_ms, arc4random()));
}

static void
health_probe_start(struct health_check *c, uint64_t now)
{
	int fd;

	if (health_disabled(c)) {
		health_skip_disabled(c, now);
		return;
	}
	fd = socket(c->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		health_local_error(c, "socket", now);
		return;
	}
	c->h->local_error = 0;
	c->ev.fd = fd;
	c->phase = HEALTH_CONNECTING;
	c->started = now;
	c->sent = c->nread = c->wlen = 0;
	c->events = EPOLLOUT;
	health_schedule(c, now + (uint64_t)c->svc->timeout_ms * 1000);
	if (ev_add(c->h->epfd, &c->ev, EPOLLOUT) == -1) {
		health_local_error(c, "epoll_ctl", now);
		close(fd);
		c->ev.fd = -1;
		c->phase = HEALTH_IDLE;
		return;
	}
	if (connect(fd, (struct sockaddr *)&c->addr.ss, c->addr.len) == 0)
		health_probe_connected(c);
	else if (errno != EINPROGRESS)
		health_fail_errno(c, "connect", errno);
}

/* The deadline of a probe in flight passed. */
static void
health_probe_timeout(struct health_check *c)
{
	switch (c->phase) {
	case HEALTH_CONNECTING:
		health_probe_done(c, 0, "timeout");
		break;
	case HEALTH_SENDING:
		health_probe_done(c, 0, "send: timeout");
		break;
	case HEALTH_READING:
		if (c->svc->expect_len > 0)
			health_fail_expect(c, " (timeout)");
		else
			health_probe_done(c, 0, "timeout waiting for reply");
		break;
	case HEALTH_IDLE:
		break;
	}
}

static void
health_timer_cb(struct ev_handler *ev, uint32_t events)
{
	struct health *h = EV_CONTAINER(ev, struct health, timer);
	struct hheap_node *nd;
	struct health_check *c;
	uint64_t ticks, now = clock_us();
	size_t i;

	(void)events;
	if (read(h->timer.fd, &ticks, sizeof(ticks)) == -1 && errno != EAGAIN)
		log_warn("health: timerfd read");
	h->armed = 0;
	/* Each check is due at most twice (a probe may start right after the
	 * last one timed out); whatever remains waits for the next wake-up. */
	for (i = 0; i < 2 * (size_t)h->ncheck; i++) {
		if ((nd = hheap_min(&h->heap)) == NULL || nd->deadline > now)
			break;
		c = EV_CONTAINER(nd, struct health_check, tn);
		if (c->phase == HEALTH_IDLE)
			health_probe_start(c, now);
		else
			health_probe_timeout(c);
	}
	health_arm(h);
}

/* Takes slot out of checking: probe closed, no schedule. */
static void
health_check_drop(struct health_check *c)
{
	health_probe_close(c);
	hheap_remove(&c->h->heap, &c->tn);
	c->svc = NULL;
}

static void
health_services_free(struct health_service *svcs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(svcs[i].send);
		free(svcs[i].expect);
		free(svcs[i].members);
	}
	free(svcs);
}

static int
health_service_load(struct health_service *svc, const struct lbd_service_conf *sc)
{
	const struct lbd_health_conf *hc = &sc->health;
	size_t i;

	snprintf(svc->name, sizeof(svc->name), "%s", sc->name);
	svc->slot = sc->slot;
	svc->interval_ms = hc->interval_ms;
	svc->timeout_ms = hc->timeout_ms;
	svc->rise = hc->rise;
	svc->fall = hc->fall;
	svc->send_len = hc->send_len;
	svc->expect_len = strlen(hc->expect);
	if ((svc->send = malloc(svc->send_len + 1)) == NULL ||
	    (svc->expect = strdup(hc->expect)) == NULL ||
	    (svc->members = calloc(sc->nbackends + 1, sizeof(*svc->members))) == NULL)
		return -1;
	memcpy(svc->send, hc->send, svc->send_len + 1);
	svc->nmembers = 0;
	for (i = 0; i < sc->nbackends; i++)
		svc->members[svc->nmembers++] = sc->backends[i].slot;
	return 0;
}

/* Whether a probe in flight under old settings still answers the new ones. */
static int
health_same_probe(const struct health_check *c, const struct health_service *svc,
    const struct lbd_backend_conf *be)
{
	const struct health_service *old = c->svc;

	return c->addr.len == be->addr.len &&
	    memcmp(&c->addr.ss, &be->addr.ss, be->addr.len) == 0 &&
	    old->interval_ms == svc->interval_ms && old->timeout_ms == svc->timeout_ms &&
	    old->send_len == svc->send_len &&
	    memcmp(old->send, svc->send, svc->send_len) == 0 &&
	    strcmp(old->expect, svc->expect) == 0;
}

/*
 * A backend new to the checker starts up (SPEC), even in a slot that a
 * removed backend of the same name left down.
 */
static void
health_check_new(struct health_check *c, uint64_t now)
{
	struct lbd_stats_backend *b = stats_backend(c->h->map, c->slot);

	hstate_init(&c->st, 1);
	if (b->health != LBD_HEALTH_UP) {
		stats_write_begin(c->h->map);
		health_set_segment(c, 1);
		stats_write_end(c->h->map);
	}
	health_schedule_first(c, now);
}

static void
health_check_load(struct health_check *c, struct health_service *svc,
    const struct lbd_backend_conf *be, uint64_t now)
{
	int fresh = c->svc == NULL, same = !fresh && health_same_probe(c, svc, be);

	c->svc = svc;
	snprintf(c->name, sizeof(c->name), "%s", be->name);
	c->addr = be->addr;
	if (fresh) {
		health_check_new(c, now);
	} else if (!same) {
		/* Rise/fall stay; the schedule restarts under the new settings. */
		health_probe_close(c);
		health_schedule_first(c, now);
	}
}

/* A reload that removes the last backend up warns like a check would. */
static void
health_note_none_up(struct health *h, struct health_service *svc)
{
	if (svc->nmembers == 0 || health_count_up(h, svc) > 0) {
		svc->none_up = 0;
		return;
	}
	if (!svc->none_up)
		log_warnx("service %s has no backend up: trying all of them", svc->name);
	svc->none_up = 1;
}

/* A check for every slot of the segment, which a reload may have grown. */
static int
health_fit(struct health *h)
{
	uint32_t i, n = h->map->hdr->max_backends;
	struct hheap_node **heapv;
	struct health_check **checks;

	if (n <= h->ncheck)
		return 0;
	if ((checks = reallocarray(h->checks, n, sizeof(*checks))) == NULL)
		return -1;
	h->checks = checks;
	if ((heapv = reallocarray(h->heapv, n, sizeof(*heapv))) == NULL)
		return -1;
	h->heapv = heapv;
	for (i = h->ncheck; i < n; i++) {
		if ((checks[i] = calloc(1, sizeof(**checks))) == NULL)
			return -1;
		checks[i]->h = h;
		checks[i]->slot = i;
		checks[i]->ev.fd = -1;
		checks[i]->ev.cb = health_probe_cb;
		hheap_node_init(&checks[i]->tn);
		h->ncheck = i + 1;
	}
	/* The heap's entries stay; only its storage moved and grew. */
	h->heap.v = heapv;
	h->heap.cap = n;
	return 0;
}

/* Points every check at conf's services; drops the slots conf lacks. */
static int
health_load(struct health *h, const struct lbd_config *conf)
{
	struct health_service *svcs;
	uint8_t *seen;
	uint64_t now = clock_us();
	size_t i, j;

	if (health_fit(h) == -1)
		return -1;
	if ((seen = calloc(h->ncheck, 1)) == NULL)
		return -1;
	if ((svcs = calloc(conf->nservices ? conf->nservices : 1, sizeof(*svcs))) == NULL) {
		free(seen);
		return -1;
	}
	for (i = 0; i < conf->nservices; i++) {
		if (health_service_load(&svcs[i], &conf->services[i]) == -1) {
			health_services_free(svcs, conf->nservices);
			free(seen);
			return -1;
		}
		/* A service keeps its slot over a reload: same slot, same service. */
		for (j = 0; j < h->nsvcs; j++)
			if (h->svcs[j].slot == svcs[i].slot &&
			    strcmp(h->svcs[j].name, svcs[i].name) == 0)
				svcs[i].none_up = h->svcs[j].none_up;
	}
	for (i = 0; i < conf->nservices; i++)
		for (j = 0; j < conf->services[i].nbackends; j++) {
			const struct lbd_backend_conf *be = &conf->services[i].backends[j];

			if (be->slot >= h->ncheck)
				continue;
			seen[be->slot] = 1;
			health_check_load(h->checks[be->slot], &svcs[i], be, now);
		}
	for (i = 0; i < h->ncheck; i++)
		if (!seen[i] && h->checks[i]->svc != NULL)
			health_check_drop(h->checks[i]);
	free(seen);
	health_services_free(h->svcs, h->nsvcs);
	h->svcs = svcs;
	h->nsvcs = conf->nservices;
	for (i = 0; i < h->nsvcs; i++)
		health_note_none_up(h, &h->svcs[i]);
	health_arm(h);
	return 0;
}

struct health *
health_start(int epfd, struct stats_map *map, const struct lbd_config *conf)
{
	struct health *h;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		log_warn("health: calloc");
		return NULL;
	}
	h->epfd = epfd;
	h->map = map;
	hheap_init(&h->heap, NULL, 0);
	h->timer.cb = health_timer_cb;
	h->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (h->timer.fd == -1 || ev_add(epfd, &h->timer, EPOLLIN) == -1) {
		log_warn("health: timerfd");
		goto fail;
	}
	if (health_load(h, conf) == -1) {
		log_warn("health: loading checks");
		goto fail;
	}
	return h;
fail:
	if (h->timer.fd != -1)
		close(h->timer.fd);
	free(h);
	return NULL;
}

void
health_reconfigure(struct health *h, const struct lbd_config *conf)
{
	/* On failure the old checks keep running: stale, never unsafe. */
	if (health_load(h, conf) == -1)
		log_warn("health: reloading checks, keeping the old ones");
}

void
health_stop(struct health *h)
{
	size_t i;

	if (h == NULL)
		return;
	for (i = 0; i < h->ncheck; i++) {
		health_probe_close(h->checks[i]);
		free(h->checks[i]);
	}
	free(h->checks);
	free(h->heapv);
	ev_del(h->epfd, &h->timer);
	close(h->timer.fd);
	health_services_free(h->svcs, h->nsvcs);
	free(h);
}
