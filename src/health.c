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
 * At scale (10 000 backends every 2s) the cost per probe is what counts, so
 * nothing here is O(backends) per probe: the heap is O(log n), each service
 * counts its backends up as they change, the timer wakes once per batch of
 * due probes (HSTATE_SLACK_MAX_US), the jitter comes from a local
 * generator, and a connect's result needs no system call unless it failed.
 * Checks live in arrays sized from the configuration and grown on reload.
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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "event.h"
#include "health.h"
#include "healthint.h"
#include "log.h"
#include "slowstart.h"

#define HEALTH_BUSY_LOG_US	(60 * 1000000ULL)	/* the budget's warning, at most */

/*
 * Sets the timerfd for the earliest deadline, up to h->slack_us late (each
 * probe's next delay allowed for it), so that one wake-up starts every
 * probe due meanwhile.  A timer already set within that window stays.
 */
void
health_arm(struct health *h)
{
	struct hheap_node *nd = hheap_min(&h->heap);
	struct itimerspec its;
	uint64_t at = nd != NULL ? nd->deadline + h->slack_us : 0;

	if (at == h->armed || (nd != NULL && h->armed != 0 &&
	    h->armed >= nd->deadline && h->armed <= at))
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

void
health_schedule_first(struct health_check *c, uint64_t now)
{
	health_schedule(c, now + hstate_first_delay_us(c->svc->interval_ms,
	    hstate_rand(&c->h->seed)));
}

/* From the start of the last probe (or now), interval +- jitter on. */
static uint64_t
health_next_start(struct health_check *c, uint64_t from)
{
	const struct health_service *svc = c->svc;

	return from + hstate_next_delay_us(svc->interval_ms, svc->jitter_ms,
	    hstate_margin_us(svc->jitter_ms), hstate_rand(&c->h->seed));
}

/* Ends the probe in flight, if any, without a result. */
void
health_probe_close(struct health_check *c)
{
	/* An abortive close: a checker that closes first would otherwise pile
	 * up a TIME_WAIT socket per probe and eat the ephemeral ports. */
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct ev_handler *ev = health_ev(c);

	if (ev->fd == -1)
		return;
	/*
	 * No EPOLL_CTL_DEL: closing the last descriptor of the socket takes it
	 * out of the epoll set, one system call less per probe.  A worker
	 * forked this instant shares it until its close_inherited(), a few
	 * microseconds; events meanwhile reach this pev, idle (fd -1) until
	 * the probe after next, an interval away.
	 */
	(void)setsockopt(ev->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(ev->fd);
	ev->fd = -1;
	c->h->inflight--;
	c->phase = HEALTH_IDLE;
	c->events = 0;
}

/* The log lines of a change of health; the segment already shows it. */
static void
health_log_change(struct health_check *c, const char *text, uint64_t latency)
{
	struct health_service *svc = c->svc;
	size_t up = svc->nup;

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
void
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
	if (c->st.up)
		c->svc->nup++;
	else if (c->svc->nup > 0)
		c->svc->nup--;
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
	/* Paced from the start, so a slow reply does not stretch the period;
	 * never in the pass that ended it (see struct health_pev). */
	next = health_next_start(c, c->started);
	health_schedule(c, next > now ? next : now + 1);
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
	if (ev_mod(c->h->epfd, health_ev(c), events) == -1) {
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
	while (health_fd(c) != -1) {
		room = sizeof(c->win) - c->wlen;
		if (room > HEALTH_READ_MAX - c->nread)
			room = HEALTH_READ_MAX - c->nread;
		n = read(health_fd(c), c->win + c->wlen, room);
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
		n = send(health_fd(c), svc->send + c->sent, svc->send_len - c->sent,
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

/* EPOLLOUT alone is a connect that succeeded (the event is this probe's:
 * struct health_pev), so only a failure costs a getsockopt. */
static void
health_probe_connecting(struct health_check *c, uint32_t events)
{
	socklen_t len = sizeof(int);
	int error = 0;

	if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0)
		return;
	if ((events & (EPOLLERR | EPOLLHUP)) != 0) {
		if (getsockopt(health_fd(c), SOL_SOCKET, SO_ERROR, &error, &len) == -1)
			error = errno;
		health_fail_errno(c, "connect", error != 0 ? error : ECONNRESET);
		return;
	}
	health_probe_connected(c);
}

void
health_probe_cb(struct ev_handler *ev, uint32_t events)
{
	struct health_pev *pev = EV_CONTAINER(ev, struct health_pev, ev);
	struct health_check *c = pev->c;

	if (ev->fd == -1)
		return;		/* a probe closed since this event was fetched */
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
	health_schedule(c, health_next_start(c, now));
}

/* A local failure (no fd, no memory) says nothing about the backend. */
static void
health_local_error(struct health_check *c, const char *op, uint64_t now)
{
	if (!c->h->local_error)
		log_warn("health check %s/%s %s: %s", c->svc->name, c->name,
		    c->addr.text, op);
	c->h->local_error = 1;
	health_schedule(c, health_next_start(c, now));
}

/*
 * Bounds the sockets: with every backend black-holed and timeout near
 * interval, nearly all checks would hold one.  Past half the descriptor
 * limit a due probe waits a tenth of its interval; said at most once a
 * minute, however long it lasts or often it comes back.
 */
static int
health_over_budget(struct health_check *c, uint64_t now)
{
	struct health *h = c->h;

	if (h->inflight < h->inflight_max)
		return 0;
	if (h->busy_logged_us == 0 || now - h->busy_logged_us >= HEALTH_BUSY_LOG_US) {
		log_warnx("health: %zu probes in flight, half the descriptor limit; "
		    "delaying the next ones", h->inflight);
		h->busy_logged_us = now;
	}
	health_schedule(c, now + (uint64_t)c->svc->interval_ms * 100);
	return 1;
}

/*
 * A check that only connects ends with a reset as soon as the backend's
 * SYN-ACK arrives.  With quick ACKs off the kernel holds back the
 * handshake's last ACK (to ride on data that never comes), so the backend
 * never completes, accepts nor logs the connection, and neither side pays
 * for a full socket: half the work per check on loopback (as HAProxy).
 */
static void
health_quiet_handshake(const struct health_check *c, int fd)
{
	int off = 0;

	if (c->svc->send_len == 0 && c->svc->expect_len == 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &off, sizeof(off));
}

/* A socket for the probe, registered with epoll; -1 after a local error. */
static int
health_probe_open(struct health_check *c, uint64_t now)
{
	int fd = socket(c->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd == -1) {
		health_local_error(c, "socket", now);
		return -1;
	}
	c->cur ^= 1;		/* a fresh handler: struct health_pev */
	health_ev(c)->fd = fd;
	if (ev_add(c->h->epfd, health_ev(c), EPOLLOUT) == -1) {
		health_local_error(c, "epoll_ctl", now);
		close(fd);
		health_ev(c)->fd = -1;
		return -1;
	}
	c->h->local_error = 0;
	c->h->inflight++;
	return fd;
}

static void
health_probe_start(struct health_check *c, uint64_t now)
{
	int fd, rc, error;

	if (health_disabled(c)) {
		health_skip_disabled(c, now);
		return;
	}
	if (health_over_budget(c, now) || (fd = health_probe_open(c, now)) == -1)
		return;
	c->phase = HEALTH_CONNECTING;
	c->sent = c->nread = c->wlen = 0;
	c->events = EPOLLOUT;
	health_quiet_handshake(c, fd);
	rc = connect(fd, (struct sockaddr *)&c->addr.ss, c->addr.len);
	error = errno;
	/* Stamped once the SYN is out, not at the pass's start: a long pass,
	 * or the master preempted before connect(), would otherwise start the
	 * next probe early by as much. */
	c->started = clock_us();
	health_schedule(c, c->started + (uint64_t)c->svc->timeout_ms * 1000);
	if (rc == 0)
		health_probe_connected(c);
	else if (error != EINPROGRESS)
		health_fail_errno(c, "connect", error);
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

void
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
	/* Each check is due at most once per pass (an ended probe's next one
	 * is due after now); whatever remains waits for the next wake-up. */
	for (i = 0; i <= h->ncheck; i++) {
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
