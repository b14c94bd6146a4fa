/*
 * The worker process: accept, pick, connect, relay, count.
 *
 * Every socket is registered once, edge-triggered, so a connection costs
 * two epoll_ctl calls in its life and none per event.  A backend socket
 * watches output from the start (that is how a connect completes); a client
 * socket only once it has refused bytes, which small request/response
 * traffic never does -- an EPOLLOUT nobody needs is an event per connection.
 * Listeners are level-triggered with EPOLLEXCLUSIVE: one worker wakes per
 * connection, and a worker that dies takes nothing from the shared queue.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "addr.h"
#include "balance.h"
#include "log.h"
#include "proctitle.h"
#include "proxyproto.h"
#include "relay.h"
#include "worker.h"

#define ACCEPT_BATCH		8	/* accepts per wake-up, while balanced */
#define ACCEPT_KICKED		16	/* accepts when a sibling hands work over */
#define TICK_MS			100	/* timeout scan period */
#define PAUSE_MS		100	/* accept pause after EMFILE/ENFILE */
#define DEFER_MS		2	/* accept pause while a kicked sibling takes over */
#define DEFER_GAP_MS		100	/* accepting at least this long between pauses */
#define POOL_MAX_FREE		256	/* free pipes kept per worker */
#define BIG_PIPE		(1u << 20)
#define FAIL_LOG_MS		5000	/* at most one connect-failure line per backend */

enum tag_kind {
	TAG_CLIENT = 0,
	TAG_BACKEND = 1,
	TAG_LISTENER = 2,
	TAG_SIGNAL = 3,
};

/* A service's schedule: rebuilt when the master bumps its sched_version. */
struct schedule {
	uint32_t version;
	int built;
	uint32_t *weights;		/* effective, 0 = not eligible; per backend */
	uint32_t *slots;		/* backend slots, for the source hash */
	uint8_t *seq;			/* smooth weighted order, len entries */
	size_t len;
};

struct conn_list {
	struct conn *head, *tail;
};

struct service_rt {
	struct schedule sched;
	struct conn_list connecting;	/* oldest connect first */
	struct conn_list idle;		/* least recently active first */
};

struct worker {
	int epfd;
	int sigfd;
	int kick_fd;			/* shared eventfd, see worker.h */
	struct lbd_config *conf;
	struct stats_map *map;
	uint32_t slot;
	uint32_t id;
	struct listener *listeners;
	size_t nlisteners;
	struct service_rt *rt;		/* one per service */
	struct pipe_pool pool;
	char scratch[RELAY_COPY_MAX];	/* copied directions pass through here */
	uint64_t now_ms;
	uint64_t next_tick_ms;
	uint64_t paused_until_ms;	/* 0 = not paused for a while */
	uint64_t deferred_ms;		/* last paused for an idle sibling */
	int deferred;			/* stepped aside once: accept the next one */
	int defer_paused;		/* paused until an idle sibling takes one */
	uint32_t nconns;
	uint64_t accept_logged_ms;	/* last "accept: pausing" line */
	int accepting;			/* listeners are in the epoll set */
	int stopping;
	struct conn *graveyard;		/* closed this batch, freed after it */
	struct conn *run_head;		/* yielded connections, oldest first */
	struct conn *run_tail;
	uint32_t nrun;
	uint64_t fail_logged_ms[LBD_MAX_BACKENDS];
};

static void conn_connect(struct worker *w, struct conn *c);
static void pause_accepting(struct worker *w, uint64_t until_ms);
static void accept_ready(struct worker *w, struct listener *l, int max);

static uint64_t
tag(void *ptr, enum tag_kind kind)
{
	return (uint64_t)(uintptr_t)ptr | (uint64_t)kind;
}

/* ---- lists ---- */

/* A connection that yielded gets its next turn after the others. */
static void
runq_add(struct worker *w, struct conn *c)
{
	if (c->queued)
		return;
	c->queued = 1;
	w->nrun++;
	c->run_next = NULL;
	if (w->run_tail != NULL)
		w->run_tail->run_next = c;
	else
		w->run_head = c;
	w->run_tail = c;
}

static struct conn *
runq_pop(struct worker *w)
{
	struct conn *c;

	if ((c = w->run_head) == NULL)
		return NULL;
	if ((w->run_head = c->run_next) == NULL)
		w->run_tail = NULL;
	c->run_next = NULL;
	c->queued = 0;
	w->nrun--;
	return c;
}

/* A connection closed while queued (a timeout, a shutdown) leaves the queue. */
static void
runq_remove(struct worker *w, struct conn *c)
{
	struct conn **pp, *prev = NULL;

	if (!c->queued)
		return;
	for (pp = &w->run_head; *pp != c; pp = &(*pp)->run_next)
		prev = *pp;
	*pp = c->run_next;
	if (w->run_tail == c)
		w->run_tail = prev;
	c->run_next = NULL;
	c->queued = 0;
	w->nrun--;
}

static void
list_remove(struct conn_list *l, struct conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else if (l->head == c)
		l->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else if (l->tail == c)
		l->tail = c->prev;
	c->prev = c->next = NULL;
}

static void
list_append(struct conn_list *l, struct conn *c)
{
	c->next = NULL;
	c->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
}

static struct conn_list *
conn_list_of(struct worker *w, struct conn *c)
{
	struct service_rt *rt = &w->rt[c->service];

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

/* ---- picking a backend ---- */

static int
schedule_alloc(struct schedule *s, size_t n)
{
	s->weights = calloc(n, sizeof(*s->weights));
	s->slots = calloc(n, sizeof(*s->slots));
	s->seq = malloc(BALANCE_SEQ_MAX);
	return s->weights == NULL || s->slots == NULL || s->seq == NULL ? -1 : 0;
}

/*
 * Eligible: admin state none, health up, weight above 0.  When no backend
 * is up, every backend not drained or disabled is tried rather than
 * black-holing the service (the health checker says so in the log).
 */
static void
schedule_build(struct worker *w, size_t svc_idx, uint32_t version)
{
	const struct lbd_service_conf *svc = &w->conf->services[svc_idx];
	struct schedule *s = &w->rt[svc_idx].sched;
	size_t i, up = 0;

	for (i = 0; i < svc->nbackends; i++) {
		const struct lbd_stats_backend *b = stats_backend(w->map, svc->backends[i].slot);
		uint32_t weight = __atomic_load_n(&b->weight, __ATOMIC_RELAXED);
		int admin_ok = __atomic_load_n(&b->admin, __ATOMIC_RELAXED) == LBD_ADMIN_NONE;
		int health_up = __atomic_load_n(&b->health, __ATOMIC_RELAXED) == LBD_HEALTH_UP;

		s->slots[i] = svc->backends[i].slot;
		s->weights[i] = admin_ok && health_up ? weight : 0;
		up += s->weights[i] > 0;
	}
	if (up == 0)
		for (i = 0; i < svc->nbackends; i++) {
			const struct lbd_stats_backend *b = stats_backend(w->map, s->slots[i]);

			if (b->admin == LBD_ADMIN_NONE)
				s->weights[i] = b->weight;
		}
	s->len = balance_smooth_sequence(s->weights, svc->nbackends, s->seq);
	s->version = version;
	s->built = 1;
}

/*
 * A retry walks on from the connection's own place in the sequence rather
 * than taking a new turn of the shared counter: otherwise, with a stuck
 * backend among two, every client would try the stuck one first.
 */
static int
pick_roundrobin(struct lbd_stats_service *ss, struct schedule *s, struct conn *c)
{
	uint64_t start;
	size_t k;

	if (s->len == 0)
		return -1;
	if (c->attempts == 0)
		start = __atomic_fetch_add(&ss->rr_counter, 1, __ATOMIC_RELAXED);
	else
		start = (uint64_t)c->rr_pos + 1;
	for (k = 0; k < s->len; k++) {
		uint8_t idx = s->seq[(start + k) % s->len];

		if (!(c->tried & (UINT64_C(1) << idx))) {
			c->rr_pos = (uint32_t)((start + k) % s->len);
			return idx;
		}
	}
	return -1;
}

static int
pick_backend(struct worker *w, struct conn *c)
{
	const struct lbd_service_conf *svc = &w->conf->services[c->service];
	struct lbd_stats_service *ss = stats_service(w->map, svc->slot);
	struct schedule *s = &w->rt[c->service].sched;
	uint32_t version = __atomic_load_n(&ss->sched_version, __ATOMIC_ACQUIRE);
	uint32_t weights[LBD_MAX_SERVICE_BACKENDS];
	uint64_t active[LBD_MAX_SERVICE_BACKENDS];
	size_t i;

	if (!s->built || s->version != version)
		schedule_build(w, c->service, version);
	if (svc->balance == LBD_BALANCE_ROUNDROBIN)
		return pick_roundrobin(ss, s, c);
	for (i = 0; i < svc->nbackends; i++)
		weights[i] = c->tried & (UINT64_C(1) << i) ? 0 : s->weights[i];
	if (svc->balance == LBD_BALANCE_SOURCE)
		return balance_rendezvous(balance_client_hash(&c->peer.sa),
		    s->slots, weights, svc->nbackends);
	for (i = 0; i < svc->nbackends; i++)
		active[i] = weights[i] != 0 ? stats_backend_active(w->map, s->slots[i]) : 0;
	return balance_leastconn(active, weights, svc->nbackends,
	    __atomic_fetch_add(&ss->rr_counter, 1, __ATOMIC_RELAXED));
}

/* ---- connection teardown ---- */

static const char *
close_reason_text(enum close_reason r)
{
	static const char *const text[] = {
		[CLOSE_NONE] = "closed", [CLOSE_CLIENT] = "client closed",
		[CLOSE_BACKEND] = "backend closed", [CLOSE_RESET_CLIENT] = "client reset",
		[CLOSE_RESET_BACKEND] = "backend reset", [CLOSE_IDLE] = "idle timeout",
		[CLOSE_CONNECT] = "connect failed", [CLOSE_NO_BACKEND] = "no backend available",
		[CLOSE_SHUTDOWN] = "shutdown", [CLOSE_LOCAL] = "out of resources",
	};

	return r < sizeof(text) / sizeof(text[0]) ? text[r] : "closed";
}

static void
conn_log(struct worker *w, struct conn *c)
{
	const struct lbd_service_conf *svc = &w->conf->services[c->service];
	char peer[LBD_ADDR_LEN];

	addr_format(&c->peer.sa, peer, sizeof(peer));
	log_info("%s %s -> %s %s %llums in %llu out %llu: %s", svc->name, peer,
	    c->backend >= 0 ? svc->backends[c->backend].name : "-",
	    c->backend >= 0 ? svc->backends[c->backend].addr.text : "-",
	    (unsigned long long)(w->now_ms - c->started_ms),
	    (unsigned long long)c->bytes_up, (unsigned long long)c->bytes_down,
	    close_reason_text(c->close_reason));
}

/* An RST instead of a FIN: what a reset on the other side deserves. */
static void
socket_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void
backend_release(struct worker *w, struct conn *c)
{
	if (c->backend >= 0 && c->backend_fd != -1)
		stats_sub(&backend_counter(w, c)->active, 1);
	if (c->backend_fd != -1)
		close(c->backend_fd);
	c->backend_fd = -1;
}

static void resume_accepting(struct worker *w);

static void
conn_close(struct worker *w, struct conn *c, enum close_reason reason)
{
	if (c->closed)
		return;
	if (c->close_reason == CLOSE_NONE)
		c->close_reason = (uint8_t)reason;
	if (w->conf->log_connections)
		conn_log(w, c);
	list_remove(conn_list_of(w, c), c);
	if (reason == CLOSE_RESET_BACKEND)
		socket_reset(c->client_fd);
	else if (reason == CLOSE_RESET_CLIENT && c->backend_fd != -1)
		socket_reset(c->backend_fd);
	relay_release(c, &w->pool);
	backend_release(w, c);
	close(c->client_fd);
	c->client_fd = -1;
	stats_sub(&service_counter(w, c)->active, 1);
	stats_sub(&stats_worker(w->map, w->slot)->active, 1);
	c->closed = 1;
	runq_remove(w, c);
	c->next = w->graveyard;
	w->graveyard = c;
	w->nconns--;
	if (!w->accepting && w->paused_until_ms == 0)
		resume_accepting(w);
}

static void
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
	list_remove(conn_list_of(w, c), c);
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

	if (w->now_ms - w->accept_logged_ms >= FAIL_LOG_MS) {
		w->accept_logged_ms = w->now_ms;
		log_warn("backend %s/%s: socket (clients wait, accepting paused)",
		    svc->name, svc->backends[b].name);
	}
	c->attempts--;
	c->tried &= ~(UINT64_C(1) << b);
	c->backend = -1;
	c->fd_wait = 1;
	c->state = CONN_CONNECTING;
	if (c->attempts == 0)
		c->last_ms = w->now_ms;
	list_append(&w->rt[c->service].connecting, c);
	pause_accepting(w, w->now_ms + PAUSE_MS);
}

/* Starts a connect to the next eligible backend, or rejects the client. */
static void
conn_connect(struct worker *w, struct conn *c)
{
	const struct lbd_service_conf *svc = &w->conf->services[c->service];
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };
	const struct lbd_backend_conf *be;
	int b, fd, zero = 0;

	for (;;) {
		if (c->attempts > svc->retries || (b = pick_backend(w, c)) < 0) {
			conn_reject(w, c, c->attempts > 0 ? CLOSE_CONNECT : CLOSE_NO_BACKEND);
			return;
		}
		be = &svc->backends[b];
		c->backend = (int16_t)b;
		c->tried |= UINT64_C(1) << b;
		c->attempts++;
		fd = socket(be->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd == -1) {
			conn_wait_fd(w, c, b);
			return;
		}
		c->backend_fd = fd;
		stats_add(&backend_counter(w, c)->active, 1);
		/* With client bytes in hand the handshake's last ACK can ride on
		 * them: a packet less, and the backend wakes once to accept and
		 * read.  See backend_reply_started for the way back. */
		c->ack_held = c->up.pending_len > 0 &&
		    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof(zero)) == 0;
		if (connect(fd, (struct sockaddr *)&be->addr.ss, be->addr.len) == -1 &&
		    errno != EINPROGRESS) {
			int err = errno;

			stats_add(&backend_counter(w, c)->connect_failures, 1);
			log_debug("backend %s/%s: connect: %s", svc->name, be->name, strerror(err));
			backend_release(w, c);
			continue;
		}
		ev.data.u64 = tag(c, TAG_BACKEND);
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
			log_warn("epoll_ctl(ADD) backend");
			conn_reject(w, c, CLOSE_LOCAL);
			return;
		}
		c->state = CONN_CONNECTING;
		c->last_ms = w->now_ms;
		list_append(&w->rt[c->service].connecting, c);
		return;
	}
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
		log_warn("epoll_ctl(MOD) client");
		conn_close(w, c, CLOSE_LOCAL);
		return;
	}
	c->client_out = 1;
}

static void
conn_pump(struct worker *w, struct conn *c)
{
	uint64_t up = 0, down = 0;
	enum relay_status st;

	bool was_spliced_up = c->up.spliced, was_spliced_down = c->down.spliced;

	st = relay_pump(c, &w->pool, w->scratch, w->conf->relay_turn, &up, &down);
	if (up + down > 0) {
		struct lbd_stats_counter *ctr = backend_counter(w, c);

		if (c->up.spliced != was_spliced_up)
			stats_add(&ctr->spliced_in, 1);
		if (c->down.spliced != was_spliced_down)
			stats_add(&ctr->spliced_out, 1);

		stats_add(&ctr->bytes_in, up);
		stats_add(&ctr->bytes_out, down);
		c->bytes_up += up;
		c->bytes_down += down;
		c->last_ms = w->now_ms;
		if (w->rt[c->service].idle.tail != c) {
			list_remove(&w->rt[c->service].idle, c);
			list_append(&w->rt[c->service].idle, c);
		}
	}
	if (c->close_reason == CLOSE_NONE && (c->up.src_eof || c->down.src_eof))
		c->close_reason = c->up.src_eof ? CLOSE_CLIENT : CLOSE_BACKEND;
	switch (st) {
	case RELAY_MORE:
		break;
	case RELAY_YIELD:
		runq_add(w, c);
		break;
	case RELAY_DONE:
		conn_close(w, c, CLOSE_NONE);
		break;
	case RELAY_RESET_CLIENT:
		c->close_reason = CLOSE_RESET_CLIENT;
		conn_close(w, c, CLOSE_RESET_CLIENT);
		break;
	case RELAY_RESET_BACKEND:
		c->close_reason = CLOSE_RESET_BACKEND;
		conn_close(w, c, CLOSE_RESET_BACKEND);
		break;
	case RELAY_NOPIPE:
		break;			/* never returned: relay copies instead */
	}
	if (!c->closed && !c->client_out && !c->down.dst_ready && !c->down.dst_shut)
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
	list_remove(&w->rt[c->service].connecting, c);
	c->state = CONN_RELAY;
	c->last_ms = w->now_ms;
	list_append(&w->rt[c->service].idle, c);
	stats_add(&backend_counter(w, c)->connections, 1);
	c->up.dst_ready = true;
	c->down.src_ready = (events & (EPOLLIN | EPOLLRDHUP)) != 0;
	c->down.src_hup = (events & EPOLLRDHUP) != 0;
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
conn_event(struct worker *w, struct conn *c, int is_backend, uint32_t events)
{
	struct half *from = is_backend ? &c->down : &c->up;	/* this fd is its source */
	struct half *to = is_backend ? &c->up : &c->down;	/* this fd is its destination */

	if (c->closed)
		return;
	if (is_backend && c->ack_held && (events & EPOLLIN))
		backend_reply_started(c, events);
	if (is_backend && c->state == CONN_CONNECTING) {
		connect_result(w, c, events);
		return;
	}
	if (events & EPOLLERR) {
		conn_close(w, c, is_backend ? CLOSE_RESET_BACKEND : CLOSE_RESET_CLIENT);
		return;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))
		from->src_ready = true;
	if (events & (EPOLLRDHUP | EPOLLHUP))
		from->src_hup = true;
	if (events & (EPOLLOUT | EPOLLHUP))
		to->dst_ready = true;
	if (c->state == CONN_RELAY)
		conn_pump(w, c);
}

/* ---- accepting ---- */

static void
pause_accepting(struct worker *w, uint64_t until_ms)
{
	size_t i;

	if (w->accepting)
		for (i = 0; i < w->nlisteners; i++)
			(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->listeners[i].fd, NULL);
	w->accepting = 0;
	w->paused_until_ms = until_ms;
}

static void
resume_accepting(struct worker *w)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE };
	size_t i;

	if (w->accepting || w->stopping || w->nconns >= w->conf->maxconn)
		return;
	for (i = 0; i < w->nlisteners; i++) {
		ev.data.u64 = tag(&w->listeners[i], TAG_LISTENER);
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->listeners[i].fd, &ev) == -1)
			log_warn("listener %s: epoll_ctl(ADD)", w->listeners[i].addr.text);
	}
	w->accepting = 1;
	w->paused_until_ms = 0;
	w->defer_paused = 0;
}

static void
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
	half_init(&c->up);
	half_init(&c->down);
	/* Input readiness comes from epoll; a new socket takes bytes at once. */
	c->up.src_ready = false;
	w->nconns++;
	stats_add(&stats_worker(w->map, w->slot)->accepted, 1);
	stats_add(&stats_worker(w->map, w->slot)->active, 1);
	stats_add(&service_counter(w, c)->accepted, 1);
	stats_add(&service_counter(w, c)->active, 1);
	/* Most clients speak first, and their bytes are usually here by now:
	 * holding them lets the connect below save a packet. */
	if (relay_read_first(&c->up, fd, w->scratch) == -1) {
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

/*
 * The fewest active connections among this worker's running siblings, and
 * whether that sibling sleeps in epoll_wait.
 */
static uint64_t
sibling_min_active(struct worker *w, int *sleeping)
{
	uint32_t used = __atomic_load_n(&w->map->hdr->worker_slots_used, __ATOMIC_RELAXED);
	uint32_t gen = stats_worker(w->map, w->slot)->generation, i;
	uint64_t min = UINT64_MAX, active;

	*sleeping = 0;
	for (i = 0; i < used && i < LBD_WORKER_SLOTS; i++) {
		const struct lbd_stats_worker *rec = stats_worker(w->map, i);

		if (i == w->slot || rec->state != LBD_WORKER_RUNNING || rec->generation != gen)
			continue;
		if ((active = stats_load(&rec->active)) < min) {
			min = active;
			*sleeping = (int)__atomic_load_n(&rec->sleeping, __ATOMIC_RELAXED);
		}
	}
	return min;
}

/*
 * The kernel wakes the first idle waiter in the listen socket's queue
 * (EPOLLEXCLUSIVE) and reports a burst that lands before that worker runs
 * to it alone: four bulk downloads, or a client's 50 keep-alive
 * connections, pile on one core.  So a worker clearly busier than a
 * sibling -- half again as many connections, and two more -- makes way.
 * A sibling asleep in epoll_wait may never hear of the queue, so it is
 * woken through the shared eventfd (exclusively, too) and this worker
 * skips one turn of its loop; an awake sibling comes back to the queue by
 * itself, and a kick would only cost both of them a system call.  When
 * the sibling holds nothing at all this worker stops accepting for
 * DEFER_MS instead, as one turn is too short for a sleeping sibling to get
 * a CPU -- or until the sibling has taken one, as seen at the end of any
 * turn of the loop.  Then it accepts for at least DEFER_GAP_MS, so a stuck
 * sibling costs a 2% pause, never a connection.
 */
static int
accept_defer(struct worker *w)
{
	uint64_t mine = stats_load(&stats_worker(w->map, w->slot)->active);
	uint64_t min, one = 1;
	int sleeping;

	if (w->deferred) {
		w->deferred = 0;
		return 0;
	}
	if ((min = sibling_min_active(w, &sleeping)) == UINT64_MAX ||
	    mine <= min + (min / 2 > 1 ? min / 2 : 1))
		return 0;
	if (sleeping && write(w->kick_fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("eventfd write");
	if (min == 0 && w->now_ms - w->deferred_ms >= DEFER_GAP_MS) {
		w->deferred_ms = w->now_ms;
		pause_accepting(w, w->now_ms + DEFER_MS);
		w->defer_paused = 1;
	} else
		w->deferred = 1;
	return 1;
}

/* Woken by a busier sibling: take what waits in the listen queues. */
static void
kick_ready(struct worker *w)
{
	uint64_t count;
	size_t i;

	(void)read(w->kick_fd, &count, sizeof(count));	/* EAGAIN: a sibling got it */
	for (i = 0; i < w->nlisteners && w->accepting; i++)
		accept_ready(w, &w->listeners[i], ACCEPT_KICKED);
}

static void
accept_ready(struct worker *w, struct listener *l, int max)
{
	struct sockaddr_storage peer;
	socklen_t len;
	int i, fd;

	for (i = 0; i < max && w->accepting; i++) {
		if (w->nconns >= w->conf->maxconn) {
			pause_accepting(w, 0);
			return;
		}
		if (accept_defer(w))
			return;
		len = sizeof(peer);
		fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_new(w, l, fd, &peer, len);
			continue;
		}
		switch (errno) {
		case EAGAIN:
			return;
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			continue;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			/* Nothing to accept into: pause rather than spin on a ready queue. */
			if (w->now_ms - w->accept_logged_ms >= FAIL_LOG_MS) {
				w->accept_logged_ms = w->now_ms;
				log_warn("listener %s: accept (pausing)", l->addr.text);
			}
			pause_accepting(w, w->now_ms + PAUSE_MS);
			return;
		default:
			log_warn("listener %s: accept", l->addr.text);
			return;
		}
	}
}

/* ---- timers, signals, the loop ---- */

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
	/* Clients still waiting for a descriptor: try again (connect-timeout
	 * above bounds the wait).  Taken off the list first, since a retry
	 * that fails again puts the client back at its end. */
	for (c = rt->connecting.head; c != NULL; c = next) {
		next = c->next;
		if (c->fd_wait) {
			list_remove(&rt->connecting, c);
			list_append(&waiting, c);
		}
	}
	while ((c = waiting.head) != NULL) {
		list_remove(&waiting, c);
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
	if (!w->accepting && w->paused_until_ms != 0 && w->now_ms >= w->paused_until_ms) {
		w->paused_until_ms = 0;
		resume_accepting(w);
	}
	w->next_tick_ms = w->now_ms + TICK_MS;
}

/* Stop accepting: close this worker's copies of the listeners. */
static void
worker_stop_accepting(struct worker *w)
{
	size_t i;

	pause_accepting(w, 0);
	w->stopping = 1;
	/* A kick meant for a worker that accepts must not wake this one. */
	(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->kick_fd, NULL);
	for (i = 0; i < w->nlisteners; i++) {
		close(w->listeners[i].fd);
		w->listeners[i].fd = -1;
	}
}

/* Past shutdown-grace: cut what is left, logging each, and go. */
static void
worker_abort(struct worker *w)
{
	struct conn *c;
	size_t s;

	for (s = 0; s < w->conf->nservices; s++) {
		while ((c = w->rt[s].connecting.head) != NULL)
			conn_close(w, c, CLOSE_SHUTDOWN);
		while ((c = w->rt[s].idle.head) != NULL)
			conn_close(w, c, CLOSE_SHUTDOWN);
	}
	exit(0);
}

static void
signal_ready(struct worker *w)
{
	struct signalfd_siginfo si;

	while (read(w->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1)
			worker_abort(w);
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			if (!w->stopping) {
				log_debug("stopping: %u connections to finish", w->nconns);
				proctitle_set("worker %u (stopping)", w->id);
			}
			worker_stop_accepting(w);
		}
	}
}

static void
dispatch(struct worker *w, struct epoll_event *ev)
{
	void *ptr = (void *)(uintptr_t)(ev->data.u64 & ~(uint64_t)3);

	switch (ev->data.u64 & 3) {
	case TAG_CLIENT:
		conn_event(w, ptr, 0, ev->events);
		break;
	case TAG_BACKEND:
		conn_event(w, ptr, 1, ev->events);
		break;
	case TAG_LISTENER:
		if (w->accepting)
			accept_ready(w, ptr, ACCEPT_BATCH);
		break;
	case TAG_SIGNAL:
		if (ptr == &w->kick_fd)
			kick_ready(w);
		else
			signal_ready(w);
		break;
	}
}

/* One more turn for each connection that yielded; a new yield queues it again. */
static void
runq_run(struct worker *w)
{
	uint32_t turns = w->nrun;
	struct conn *c;

	while (turns-- > 0 && (c = runq_pop(w)) != NULL)
		conn_pump(w, c);
}

static void
bury(struct worker *w)
{
	struct conn *c;

	while ((c = w->graveyard) != NULL) {
		w->graveyard = c->next;
		free(c);
	}
}

static void
worker_setup(struct worker *w)
{
	struct epoll_event ev = { .events = EPOLLIN };
	sigset_t mask;

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
		fatal("epoll_ctl(ADD) signalfd");
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	ev.data.u64 = tag(&w->kick_fd, TAG_SIGNAL);
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->kick_fd, &ev) == -1)
		fatal("epoll_ctl(ADD) eventfd");
	if (pipe_pool_init(&w->pool, POOL_MAX_FREE, BIG_PIPE) == -1 ||
	    (w->rt = calloc(w->conf->nservices, sizeof(*w->rt))) == NULL)
		fatalx("out of memory");
	for (size_t s = 0; s < w->conf->nservices; s++)
		if (schedule_alloc(&w->rt[s].sched, w->conf->services[s].nbackends) == -1)
			fatalx("out of memory");
	resume_accepting(w);
}

/* Until the next timeout scan, or the end of an accept pause; -1: none due. */
static int
worker_timeout(const struct worker *w)
{
	uint64_t due = UINT64_MAX;

	if (w->nconns > 0)
		due = w->next_tick_ms;
	if (w->paused_until_ms != 0 && w->paused_until_ms < due)
		due = w->paused_until_ms;
	if (due == UINT64_MAX)
		return -1;
	return due > w->now_ms ? (int)(due - w->now_ms) : 0;
}

void
worker_main(struct lbd_config *conf, struct stats_map *map, uint32_t slot,
    uint32_t id, struct listener *listeners, size_t nlisteners, int kick_fd)
{
	struct worker w;
	struct epoll_event events[256];
	char prefix[32];
	uint32_t *sleeping_flag;
	int n, i, timeout, sleeping;

	memset(&w, 0, sizeof(w));
	w.kick_fd = kick_fd;
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
	worker_setup(&w);
	sleeping_flag = &stats_worker(map, slot)->sleeping;
	for (;;) {
		if (w.stopping && w.nconns == 0)
			exit(0);
		timeout = w.run_head != NULL ? 0 : worker_timeout(&w);
		if (timeout != 0)
			__atomic_store_n(sleeping_flag, 1, __ATOMIC_RELAXED);
		n = epoll_wait(w.epfd, events, 256, timeout);
		if (timeout != 0)
			__atomic_store_n(sleeping_flag, 0, __ATOMIC_RELAXED);
		if (n == -1 && errno != EINTR)
			fatal("epoll_wait");
		w.now_ms = clock_ms();
		for (i = 0; i < n; i++)
			dispatch(&w, &events[i]);
		runq_run(&w);
		if (w.now_ms >= w.next_tick_ms)
			tick(&w);
		else if (w.paused_until_ms != 0 && w.now_ms >= w.paused_until_ms) {
			w.paused_until_ms = 0;
			resume_accepting(&w);
		}
		if (w.defer_paused && sibling_min_active(&w, &sleeping) > 0)
			resume_accepting(&w);	/* the idle sibling woke up */
		bury(&w);
	}
}
