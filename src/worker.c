/*
 * The worker process: the event loop and the connection life cycle --
 * accept hands a client over (accept.c), a backend is chosen (schedule.c),
 * connected to, relayed to (relay.c), counted and closed.
 *
 * Every socket is registered once, edge-triggered, so a connection costs
 * two epoll_ctl calls in its life and none per event.  A backend socket
 * watches output from the start (that is how a connect completes); a client
 * socket only once it has refused bytes, which small request/response
 * traffic never does -- an EPOLLOUT nobody needs is an event per connection.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "accept.h"
#include "watchdog.h"
#include "addr.h"
#include "clock.h"
#include "connlog.h"
#include "door.h"
#include "log.h"
#include "proctitle.h"
#include "proxyproto.h"
#include "queue.h"
#include "runq.h"
#include "wait.h"
#include "workerstate.h"

#define TICK_MS			100	/* timeout scan period */
#define POOL_MAX_FREE		256	/* free pipes kept per worker */
#define BIG_PIPE		(1u << 20)
#define FAIL_LOG_MS		5000	/* at most one connect-failure line per backend */

_Static_assert(_Alignof(struct listener) >= 8 && _Alignof(struct conn) >= 8 &&
    _Alignof(struct acceptor) >= 8, "epoll tags take the low 3 bits of a pointer");

/* ---- lists ---- */

static struct conn_list *
conn_list_of(struct worker *w, struct conn *c)
{
	struct service_rt *rt = &w->rt[c->service];

	if (c->state == CONN_DOOR)
		return &w->doors;
	if (c->state == CONN_WAITING)
		return &rt->waiting;
	return c->state == CONN_CONNECTING ? &rt->connecting : &rt->idle;
}

/* ---- counters ---- */

static struct lbd_stats_counter *
backend_counter(struct worker *w, struct conn *c)
{
	return stats_counter(w->map, w->slot,
	    w->conf->services[c->service].backends[c->backend].slot);
}

static struct lbd_stats_service_counter *
service_counter(struct worker *w, struct conn *c)
{
	return stats_service_counter(w->map, w->slot, w->conf->services[c->service].slot);
}

/* ---- connection teardown ---- */

/* An RST instead of a FIN: what a reset on the other side deserves. */
static void
socket_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* Gives back c's maxconn slot: the queue may take it at the end of the turn. */
static void
conn_slot_give(struct worker *w, struct conn *c)
{
	if (!c->slot_held)
		return;
	queue_slot_give(w->map, w->slot, w->conf->services[c->service].backends[c->backend].slot);
	c->slot_held = 0;
	w->wait_due = w->nwaiting > 0;
}

static void
backend_release(struct worker *w, struct conn *c)
{
	conn_slot_give(w, c);
	if (c->backend >= 0 && c->backend_fd != -1)
		stats_sub(&backend_counter(w, c)->active, 1);
	if (c->backend_fd != -1)
		close(c->backend_fd);
	c->backend_fd = -1;
}

void
conn_close(struct worker *w, struct conn *c, enum close_reason reason)
{
	if (c->closed)
		return;
	if (c->close_reason == CLOSE_NONE)
		c->close_reason = (uint8_t)reason;
	if (w->conf->log_connections)
		connlog_write(w, c);
	if (c->state == CONN_WAITING)
		wait_leave(w, c);
	conn_list_remove(conn_list_of(w, c), c);
	if (reason == CLOSE_RESET_BACKEND)
		socket_reset(c->client_fd);
	else if (reason == CLOSE_RESET_CLIENT && c->backend_fd != -1)
		socket_reset(c->backend_fd);
	door_release(c);
	relay_release(&c->relay, &w->pool);
	backend_release(w, c);
	close(c->client_fd);
	c->client_fd = -1;
	if (c->admitted)
		stats_sub(&service_counter(w, c)->active, 1);
	stats_sub(&stats_worker(w->map, w->slot)->active, 1);
	c->closed = 1;
	runq_remove(&w->runq, c);
	c->next = w->graveyard;
	w->graveyard = c;
	w->nconns--;
	accept_conn_closed(w);
}

void
conn_reject(struct worker *w, struct conn *c, enum close_reason reason)
{
	stats_add(&service_counter(w, c)->rejected, 1);
	conn_close(w, c, reason);
}

/* ---- connecting ---- */

static void
connect_failed(struct worker *w, struct conn *c, int err)
{
	const struct lbd_service_conf *svc = &w->conf->services[c->service];
	const struct lbd_backend_conf *be;
	uint64_t *logged;

	if (c->fd_wait) {		/* never got a descriptor to try with */
		conn_reject(w, c, CLOSE_LOCAL);
		return;
	}
	be = &svc->backends[c->backend];
	logged = &w->fail_logged_ms[be->slot];

	stats_add(&backend_counter(w, c)->connect_failures, 1);
	if (*logged == 0 || w->now_ms - *logged >= FAIL_LOG_MS) {
		*logged = w->now_ms;
		log_warnx("backend %s/%s %s: connect: %s", svc->name, be->name,
		    be->addr.text, strerror(err));
	}
	conn_list_remove(conn_list_of(w, c), c);
	backend_release(w, c);
	c->state = CONN_CONNECTING;
	conn_connect(w, c);
}

/*
 * No descriptor for the backend socket (EMFILE, ENFILE...): the client
 * waits, accepting pauses, and the tick tries again -- rejecting it would
 * free its descriptor only for the next accept to fail the same way.
 */
static void
conn_wait_fd(struct worker *w, struct conn *c, int b)
{
	const struct lbd_service_conf *svc = &w->conf->services[c->service];

	if (w->now_ms - w->fdwait_logged_ms >= FAIL_LOG_MS) {
		w->fdwait_logged_ms = w->now_ms;
		log_warn("backend %s/%s: socket (clients wait, accepting paused)",
		    svc->name, svc->backends[b].name);
	}
	schedule_untry(&c->walk, b);
	conn_slot_give(w, c);
	c->backend = -1;
	c->fd_wait = 1;
	c->state = CONN_CONNECTING;
	/* last_ms stays (accept or last connect start): connect-timeout bounds
	 * the whole wait, see tick_service (issue 20). */
	conn_list_append(&w->rt[c->service].connecting, c);
	accept_pause(w, w->now_ms + ACCEPT_PAUSE_MS);
}

/* Opens a socket to backend b and starts its connect; -1 when it failed at once. */
static int
conn_start_connect(struct worker *w, struct conn *c, const struct lbd_backend_conf *be)
{
	const struct lbd_service_conf *svc = &w->conf->services[c->service];
	int zero = 0;

	stats_add(&backend_counter(w, c)->active, 1);
	/* With client bytes in hand the handshake's last ACK can ride on
	 * them: a packet less, and the backend wakes once to accept and
	 * read.  See backend_reply_started for the way back. */
	c->ack_held = relay_holds_request(&c->relay) &&
	    setsockopt(c->backend_fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof(zero)) == 0;
	if (connect(c->backend_fd, (struct sockaddr *)&be->addr.ss, be->addr.len) == -1 &&
	    errno != EINPROGRESS) {
		stats_add(&backend_counter(w, c)->connect_failures, 1);
		log_debug("backend %s/%s: connect: %s", svc->name, be->name, strerror(errno));
		backend_release(w, c);
		return -1;
	}
	return 0;
}

/* Starts a connect to the next eligible backend, or rejects the client. */
void
conn_connect(struct worker *w, struct conn *c)
{
	const struct lbd_service_conf *svc = &w->conf->services[c->service];
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };
	const struct lbd_backend_conf *be;
	int b, fd;

	do {
		if (svc->limited) {
			if ((b = wait_pick(w, c)) < 0)
				return;
		} else
			b = schedule_next(&w->rt[c->service].sched, svc, w->map, w->slot,
			    &c->walk, &c->peer.sa);
		if (b < 0) {
			conn_reject(w, c, c->walk.attempts > 0 ? CLOSE_CONNECT : CLOSE_NO_BACKEND);
			return;
		}
		be = &svc->backends[b];
		c->backend = (int16_t)b;
		fd = socket(be->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd == -1) {
			conn_wait_fd(w, c, b);
			return;
		}
		c->backend_fd = fd;
	} while (conn_start_connect(w, c, be) == -1);
	ev.data.u64 = tag(c, TAG_BACKEND);
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
		log_warn("backend %s/%s: epoll_ctl(ADD)", svc->name, be->name);
		conn_reject(w, c, CLOSE_LOCAL);
		return;
	}
	c->state = CONN_CONNECTING;
	c->last_ms = w->now_ms;
	conn_list_append(&w->rt[c->service].connecting, c);
}

static int
send_proxy_header(struct worker *w, struct conn *c)
{
	const struct lbd_service_conf *svc = &w->conf->services[c->service];
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	unsigned char hdr[PROXY_HEADER_MAX];
	size_t n;

	if (getsockname(c->client_fd, (struct sockaddr *)&local, &len) == -1)
		return -1;
	n = proxy_header(svc->proxy_protocol, &c->peer.sa,
	    (struct sockaddr *)&local, hdr, sizeof(hdr));
	/* A fresh socket's buffer always takes a few dozen bytes at once. */
	return n > 0 && send(c->backend_fd, hdr, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* ---- relaying ---- */

/* The client refused bytes: watch its output from now on, for good. */
static void
client_watch_output(struct worker *w, struct conn *c)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.u64 = tag(c, TAG_CLIENT),
	};

	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->client_fd, &ev) == -1) {
		char peer[LBD_ADDR_LEN];

		addr_format(&c->peer.sa, peer, sizeof(peer));
		log_warn("client %s of %s: epoll_ctl(MOD)", peer,
		    w->conf->services[c->service].name);
		conn_close(w, c, CLOSE_LOCAL);
		return;
	}
	c->client_out = 1;
}

/* Counts what a pump moved, and keeps the idle list in order of activity. */
static void
conn_account(struct worker *w, struct conn *c, const struct relay_result *res)
{
	struct lbd_stats_counter *ctr = backend_counter(w, c);
	struct conn_list *idle = &w->rt[c->service].idle;

	if (res->spliced_up)
		stats_add(&ctr->spliced_in, 1);
	if (res->spliced_down)
		stats_add(&ctr->spliced_out, 1);
	stats_add(&ctr->bytes_in, res->up);
	stats_add(&ctr->bytes_out, res->down);
	if (res->exchanges) {
		stats_add(&ctr->exchanges, res->exchanges);
		c->exchanges += res->exchanges;
	}
	c->bytes_up += res->up;
	c->bytes_down += res->down;
	c->last_ms = w->now_ms;
	if (idle->tail != c) {
		conn_list_remove(idle, c);
		conn_list_append(idle, c);
	}
}

static void
conn_pump(struct worker *w, struct conn *c)
{
	struct relay_result res;
	enum relay_status st;

	st = relay_pump(&c->relay, c->client_fd, c->backend_fd, &w->pool, w->scratch,
	    w->conf->relay_turn, &res);
	if (res.up + res.down > 0)
		conn_account(w, c, &res);
	if (c->close_reason == CLOSE_NONE && res.fins != 0)
		c->close_reason = res.fins & RELAY_FIN_CLIENT ? CLOSE_CLIENT : CLOSE_BACKEND;
	switch (st) {
	case RELAY_MORE:
		break;
	case RELAY_YIELD:
		runq_add(&w->runq, c);
		break;
	case RELAY_DONE:
		conn_close(w, c, CLOSE_NONE);
		return;
	case RELAY_RESET_CLIENT:
		c->close_reason = CLOSE_RESET_CLIENT;
		conn_close(w, c, CLOSE_RESET_CLIENT);
		return;
	case RELAY_RESET_BACKEND:
		c->close_reason = CLOSE_RESET_BACKEND;
		conn_close(w, c, CLOSE_RESET_BACKEND);
		return;
	}
	if (!c->client_out && res.client_full)
		client_watch_output(w, c);
}

static void
connect_result(struct worker *w, struct conn *c, uint32_t events)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (events & (EPOLLERR | EPOLLHUP)) {
		if (getsockopt(c->backend_fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 || err == 0)
			err = ECONNREFUSED;
		connect_failed(w, c, err);
		return;
	}
	if (!(events & EPOLLOUT))
		return;
	conn_list_remove(&w->rt[c->service].connecting, c);
	c->state = CONN_RELAY;
	c->last_ms = w->now_ms;
	conn_list_append(&w->rt[c->service].idle, c);
	stats_add(&backend_counter(w, c)->connections, 1);
	relay_connected(&c->relay, events);
	if (w->conf->services[c->service].proxy_protocol != LBD_PROXY_OFF &&
	    send_proxy_header(w, c) == -1) {
		conn_close(w, c, CLOSE_RESET_BACKEND);
		return;
	}
	conn_pump(w, c);
}

/*
 * The ACK held at connect rode out on our first bytes, but sending them so
 * soon after the handshake made the kernel take the socket for interactive
 * and delay its ACKs -- which stalls a backend that writes its first reply
 * in two pieces (Nagle) until the delayed-ACK timer.  So once the reply
 * starts: quick ACKs again (sending the one due now), unless the backend's
 * FIN came with it, which pushes out all it had.
 */
static void
backend_reply_started(struct conn *c, uint32_t events)
{
	int one = 1;

	c->ack_held = 0;
	if (!(events & EPOLLRDHUP))
		(void)setsockopt(c->backend_fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

static void
conn_event(struct worker *w, struct conn *c, bool is_backend, uint32_t events)
{
	if (c->closed)
		return;
	if (c->state == CONN_DOOR) {
		door_event(w, c, events);
		return;
	}
	if (is_backend && c->ack_held && (events & EPOLLIN))
		backend_reply_started(c, events);
	if (is_backend && c->state == CONN_CONNECTING) {
		connect_result(w, c, events);
		return;
	}
	if ((events & EPOLLERR) || (c->state == CONN_WAITING && (events & EPOLLHUP))) {
		conn_close(w, c, is_backend ? CLOSE_RESET_BACKEND : CLOSE_RESET_CLIENT);
		return;
	}
	relay_ready(&c->relay, is_backend, events);
	if (c->state == CONN_RELAY)
		conn_pump(w, c);
}

/* The client now counts in its service: accepted there, active there. */
static void
conn_count_in(struct worker *w, struct conn *c)
{
	stats_add(&service_counter(w, c)->accepted, 1);
	stats_add(&service_counter(w, c)->active, 1);
	c->admitted = 1;
}

/* Its listener has a front door: the client's first bytes decide. */
static void
conn_new_door(struct worker *w, struct conn *c, struct listener *l)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLRDHUP | EPOLLET,
		.data.u64 = tag(c, TAG_CLIENT),
	};

	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->client_fd, &ev) == -1) {
		log_warn("listener %s: epoll_ctl(ADD) client", l->addr.text);
		c->state = CONN_DOOR;
		conn_list_append(&w->doors, c);
		conn_close(w, c, CLOSE_LOCAL);
		return;
	}
	door_start(w, c, l);
}

void
conn_new(struct worker *w, struct listener *l, int fd, const struct sockaddr_storage *peer,
    socklen_t peerlen)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET };
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warnx("listener %s: out of memory", l->addr.text);
		close(fd);
		return;
	}
	c->client_fd = fd;
	c->backend_fd = -1;
	c->backend = -1;
	c->service = (uint16_t)l->service;
	c->listener = (uint16_t)(l - w->listeners);
	memcpy(&c->peer, peer, peerlen < sizeof(c->peer) ? peerlen : sizeof(c->peer));
	c->started_ms = c->last_ms = w->now_ms;
	relay_init(&c->relay);
	w->nconns++;
	stats_add(&stats_worker(w->map, w->slot)->accepted, 1);
	stats_add(&stats_worker(w->map, w->slot)->active, 1);
	if (l->door.needed) {
		conn_new_door(w, c, l);
		return;
	}
	conn_count_in(w, c);
	/* Most clients speak first, and their bytes are usually here by now:
	 * holding them lets the connect below save a packet. */
	if (relay_read_first(&c->relay, fd, w->scratch) == -1) {
		conn_close(w, c, CLOSE_RESET_CLIENT);
		return;
	}
	ev.data.u64 = tag(c, TAG_CLIENT);
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
		log_warn("listener %s: epoll_ctl(ADD) client", l->addr.text);
		conn_close(w, c, CLOSE_LOCAL);
		return;
	}
	conn_connect(w, c);
}

void
conn_admit(struct worker *w, struct conn *c)
{
	conn_count_in(w, c);
	conn_connect(w, c);
}

/* ---- timers, signals, the loop ---- */

/*
 * max-connection-age: a connection past it is closed -- FIN both ways, so
 * its client reconnects and is balanced anew -- at a quiet moment only:
 * its backend has answered all the client sent, no byte is owed either
 * way, and both sides have been silent for age-quiet.  The idle list is in
 * order of last activity, so the quiet ones are its head.
 */
static void
age_out(struct worker *w, size_t s)
{
	const struct lbd_service_conf *svc = &w->conf->services[s];
	struct schedule *sched = &w->rt[s].sched;
	struct conn *c, *next;

	if ((c = w->rt[s].idle.head) == NULL || w->now_ms - c->last_ms < svc->age_quiet_ms)
		return;
	schedule_age_candidates(sched, svc, w->map);
	for (; c != NULL; c = next) {
		next = c->next;
		if (w->now_ms - c->last_ms < svc->age_quiet_ms)
			break;
		if (w->now_ms - c->started_ms < svc->max_age_ms ||
		    !sched->over[c->backend] || !relay_answered(&c->relay))
			continue;
		stats_add(&backend_counter(w, c)->aged_out, 1);
		c->close_reason = CLOSE_AGED;
		conn_close(w, c, CLOSE_AGED);
	}
}

static void
tick_service(struct worker *w, size_t s)
{
	const struct lbd_service_conf *svc = &w->conf->services[s];
	struct service_rt *rt = &w->rt[s];
	struct conn_list waiting = { NULL, NULL };
	struct conn *c, *next;

	while ((c = rt->connecting.head) != NULL &&
	    w->now_ms - c->last_ms >= svc->connect_timeout_ms)
		connect_failed(w, c, ETIMEDOUT);
	while ((c = rt->idle.head) != NULL &&
	    w->now_ms - c->last_ms >= svc->idle_timeout_ms)
		conn_close(w, c, CLOSE_IDLE);
	wait_expire(w, s);
	if (svc->max_age_ms != 0)
		age_out(w, s);
	/* Clients still waiting for a descriptor: try again.  Taken off the
	 * list first, since a retry that fails again puts the client back at
	 * its end. */
	for (c = rt->connecting.head; c != NULL; c = next) {
		next = c->next;
		/* Not only the list head: the retries below reorder the list. */
		if (c->fd_wait && w->now_ms - c->last_ms >= svc->connect_timeout_ms)
			connect_failed(w, c, ETIMEDOUT);
		else if (c->fd_wait) {
			conn_list_remove(&rt->connecting, c);
			conn_list_append(&waiting, c);
		}
	}
	while ((c = waiting.head) != NULL) {
		conn_list_remove(&waiting, c);
		c->fd_wait = 0;
		conn_connect(w, c);
	}
}

static void
tick(struct worker *w)
{
	size_t s;

	for (s = 0; s < w->conf->nservices; s++)
		tick_service(w, s);
	door_expire(w);
	w->next_tick_ms = w->now_ms + TICK_MS;
}

/* Past shutdown-grace: cut what is left, logging each, and go. */
static void
worker_cut_and_exit(struct worker *w)
{
	struct conn *c;
	size_t s;

	for (s = 0; s < w->conf->nservices; s++) {
		while ((c = w->rt[s].connecting.head) != NULL)
			conn_close(w, c, CLOSE_SHUTDOWN);
		while ((c = w->rt[s].idle.head) != NULL)
			conn_close(w, c, CLOSE_SHUTDOWN);
		while ((c = w->rt[s].waiting.head) != NULL)
			conn_close(w, c, CLOSE_SHUTDOWN);
	}
	while ((c = w->doors.head) != NULL)
		conn_close(w, c, CLOSE_SHUTDOWN);
	exit(0);
}

static void
signal_ready(struct worker *w)
{
	struct signalfd_siginfo si;

	while (read(w->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1)
			worker_cut_and_exit(w);
		if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) &&
		    orphan_notice(&w->orphan, w->now_ms, w->conf->shutdown_grace_ms))
			log_warnx("master (pid %d) gone: %u connections to finish within "
			    "shutdown-grace", (int)w->orphan.master, w->nconns);
		if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && !w->stopping) {
			log_debug("stopping: %u connections to finish", w->nconns);
			proctitle_set("worker %u (stopping)", w->id);
			accept_close(w);
			w->stopping = 1;
		}
	}
}

static void
dispatch(struct worker *w, struct epoll_event *ev)
{
	void *ptr = (void *)(uintptr_t)(ev->data.u64 & ~TAG_MASK);

	switch (ev->data.u64 & TAG_MASK) {
	case TAG_CLIENT:
		conn_event(w, ptr, false, ev->events);
		break;
	case TAG_BACKEND:
		conn_event(w, ptr, true, ev->events);
		break;
	case TAG_LISTENER:
		if (w->acc.accepting)
			accept_ready(w, ptr, ACCEPT_BATCH);
		break;
	case TAG_KICK:
		accept_kicked(w);
		break;
	case TAG_SIGNAL:
		signal_ready(w);
		break;
	}
}

/* One more turn for each connection that yielded; a new yield queues it again. */
static void
runq_run(struct worker *w)
{
	uint32_t turns = w->runq.n;
	struct conn *c;

	while (turns-- > 0 && (c = runq_pop(&w->runq)) != NULL)
		conn_pump(w, c);
}

static void
bury(struct worker *w)
{
	struct conn *c;

	while ((c = w->graveyard) != NULL) {
		w->graveyard = c->next;
		schedule_walk_free(&c->walk);
		free(c);
	}
}

static void
worker_setup(struct worker *w)
{
	struct epoll_event ev = { .events = EPOLLIN };
	sigset_t mask;
	size_t s;

	if ((w->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("epoll_create1");
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	if ((w->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		fatal("signalfd");
	ev.data.u64 = tag(NULL, TAG_SIGNAL);
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->sigfd, &ev) == -1)
		fatal("signalfd %d: epoll_ctl(ADD)", w->sigfd);
	if (pipe_pool_init(&w->pool, POOL_MAX_FREE, BIG_PIPE) == -1 ||
	    (w->rt = calloc(w->conf->nservices, sizeof(*w->rt))) == NULL ||
	    (w->fail_logged_ms = calloc(w->map->hdr->max_backends,
	    sizeof(*w->fail_logged_ms))) == NULL)
		fatalx("out of memory");
	for (s = 0; s < w->conf->nservices; s++)
		if (schedule_init(&w->rt[s].sched, w->conf->services[s].nbackends) == -1)
			fatalx("out of memory");
	accept_start(w);
}

/* Until the next timeout scan, or the end of an accept pause; -1: none due. */
static int
worker_timeout(const struct worker *w)
{
	int64_t pause = accept_pause_left(w), tick = -1;

	if (w->nconns > 0)
		tick = w->next_tick_ms > w->now_ms ? (int64_t)(w->next_tick_ms - w->now_ms) : 0;
	if (tick == -1 || (pause != -1 && pause < tick))
		return wait_timeout(w, (int)pause);
	return wait_timeout(w, (int)tick);
}

void
worker_main(struct lbd_config *conf, struct stats_map *map, uint32_t slot,
    uint32_t id, struct listener *listeners, size_t nlisteners, int kick_fd)
{
	struct worker w;
	struct epoll_event events[256];
	char prefix[32];
	uint32_t *sleeping_flag;
	int n, i, timeout;

	memset(&w, 0, sizeof(w));
	w.acc.kick_fd = kick_fd;
	proctitle_set("worker %u", id);
	snprintf(prefix, sizeof(prefix), "worker %u: ", id);
	log_set_prefix(prefix);
	w.conf = conf;
	w.map = map;
	w.slot = slot;
	w.id = id;
	w.listeners = listeners;
	w.nlisteners = nlisteners;
	w.now_ms = clock_ms();
	orphan_start(&w.orphan);
	worker_setup(&w);
	sleeping_flag = &stats_worker(map, slot)->sleeping;
	for (;;) {
		if (w.stopping && w.nconns == 0)
			exit(0);
		timeout = w.runq.head != NULL ? 0 : worker_timeout(&w);
		timeout = watchdog_wait_ms(timeout, conf->worker_stall_ms);
		if (timeout != 0)
			__atomic_store_n(sleeping_flag, 1, __ATOMIC_RELAXED);
		n = epoll_wait(w.epfd, events, 256, timeout);
		if (timeout != 0)
			__atomic_store_n(sleeping_flag, 0, __ATOMIC_RELAXED);
		if (n == -1 && errno != EINTR)
			fatal("epoll_wait");
		w.now_ms = clock_ms();
		__atomic_store_n(&stats_worker(map, slot)->heartbeat_ms, w.now_ms,
		    __ATOMIC_RELAXED);
		for (i = 0; i < n; i++)
			dispatch(&w, &events[i]);
		runq_run(&w);
		if (w.nwaiting > 0 && (w.wait_due || w.now_ms >= w.next_wait_ms))
			wait_run(&w);	/* the service queues: see wait.c */
		if (w.now_ms >= w.next_tick_ms)
			tick(&w);
		if (orphan_cut_due(&w.orphan, w.now_ms)) {
			log_warnx("master gone, shutdown-grace over: cutting %u connections",
			    w.nconns);
			worker_cut_and_exit(&w);
		}
		accept_after_turn(&w);
		bury(&w);
	}
}
