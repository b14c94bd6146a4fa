/*
 * lbstat -l: the socket side of the status server.  One thread and one
 * epoll loop: a listening socket, a timerfd that samples the segment once a
 * second (the figures every response shows, and the history), a signalfd
 * for SIGINT and SIGTERM, and at most SERVE_CLIENTS clients, each with a
 * deadline.  A browser left open for hours costs one short connection a
 * second; lbd restarting underneath is followed by the sampler (lbstat.c).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "httpreq.h"
#include "log.h"
#include "stathist.h"
#include "statroute.h"
#include "statserve.h"

#define SERVE_CLIENTS	16	/* beyond this, new clients get a 503 and a close */
#define SERVE_HEAD_MAX	8192	/* request head; a longer one gets a 431 */
#define SERVE_READ_S	10.0	/* to send a whole request head */
#define SERVE_WRITE_S	30.0	/* to take a whole response */
#define SERVE_LINGER_S	2.0	/* after our FIN, for the client's */
#define SERVE_BACKLOG	64
#define SERVE_EVENTS	32
#define SERVE_ACCEPTS	64	/* accepts per wakeup, so ticks are never starved */
#define SERVE_ERR_LEN	1400

enum { TAG_LISTEN = SERVE_CLIENTS, TAG_TIMER, TAG_SIGNAL };

enum client_state { CLIENT_FREE, CLIENT_READING, CLIENT_WRITING, CLIENT_LINGERING };

/* One connection; the slot owns fd and out (client_close releases both). */
struct serve_client {
	int fd;				/* -1 when free */
	enum client_state state;
	double deadline;		/* monotonic seconds */
	char in[SERVE_HEAD_MAX];
	size_t in_len;
	char *out;			/* the whole response */
	size_t out_len, out_off;
};

/* Everything statserve_run owns; serve_close releases it. */
struct serve {
	int lfd, epfd, tfd, sfd;	/* -1 when not open */
	int accepting;			/* lfd is in the epoll set */
	int stop;
	struct serve_client clients[SERVE_CLIENTS];
	struct statview_snap *cur, *spare;	/* latest sample; scratch for the next */
	int have;			/* cur holds a sample */
	char why[SERVE_ERR_LEN];	/* when not: why */
	struct stathist *hist;
	const struct statview_filter *filter;
	const struct statserve_source *src;
};

static double
serve_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
serve_watch(struct serve *s, int op, int fd, uint32_t events, uint32_t tag)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.u32 = tag;
	return epoll_ctl(s->epfd, op, fd, &ev);
}

/* ---- the figures ------------------------------------------------------ */

/*
 * Once a second: a new sample with rates over the last one, into the
 * history.  While there is no segment, the history records a gap and the
 * figures' routes answer 503 with why.
 */
static void
serve_tick(struct serve *s)
{
	struct statview_snap *t;

	if (s->src->sample(s->src->ctx, s->spare, s->why, sizeof(s->why)) == -1) {
		if (s->have)
			log_warnx("%s", s->why);
		s->have = 0;
		stathist_push(s->hist, NULL, (uint64_t)time(NULL));
		return;
	}
	if (!s->have && s->why[0] != '\0')
		log_info("stats segment readable again (lbd pid %d)", (int)s->spare->pid);
	s->why[0] = '\0';
	if (s->have)
		statview_rates(s->spare, s->cur);
	t = s->cur, s->cur = s->spare, s->spare = t;
	s->have = 1;
	stathist_push(s->hist, s->cur, 0);
}

/* ---- clients ---------------------------------------------------------- */

static void
client_close(struct serve *s, struct serve_client *c)
{
	if (c->fd != -1) {
		(void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->state = CLIENT_FREE;
}

/* Our half is done: wait (bounded) for the client's FIN, so that unread
 * request bytes never turn our close into a reset that eats the response. */
static void
client_linger(struct serve *s, struct serve_client *c, uint32_t tag)
{
	if (shutdown(c->fd, SHUT_WR) == -1 ||
	    serve_watch(s, EPOLL_CTL_MOD, c->fd, EPOLLIN, tag) == -1) {
		client_close(s, c);
		return;
	}
	c->state = CLIENT_LINGERING;
	c->deadline = serve_now() + SERVE_LINGER_S;
}

static void
client_write(struct serve *s, struct serve_client *c, uint32_t tag)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (c->state != CLIENT_WRITING &&
			    serve_watch(s, EPOLL_CTL_MOD, c->fd, EPOLLOUT, tag) == -1) {
				log_warn("status client: epoll_ctl");
				client_close(s, c);
				return;
			}
			c->state = CLIENT_WRITING;
			return;
		}
		if (n == -1) {
			client_close(s, c);	/* gone: nothing to tell it */
			return;
		}
		c->out_off += (size_t)n;
	}
	client_linger(s, c, tag);
}

/* A whole head (or one over the limit): build the response, start sending. */
static void
client_respond(struct serve *s, struct serve_client *c, uint32_t tag,
    enum httpreq_status st, const struct httpreq *req)
{
	struct statroute_state rs = { s->have ? s->cur : NULL, s->why, s->hist, s->filter };
	struct statroute_reply r;

	if (statroute_reply(st, req, &rs, &r) == -1) {
		log_warnx("status client: building a response: %s", strerror(ENOMEM));
		client_close(s, c);
		return;
	}
	c->out = r.buf;
	c->out_len = r.len;
	c->out_off = 0;
	c->deadline = serve_now() + SERVE_WRITE_S;
	client_write(s, c, tag);
}

static void
client_read(struct serve *s, struct serve_client *c, uint32_t tag)
{
	struct httpreq req;
	enum httpreq_status st;
	char sink[4096];
	ssize_t n;

	if (c->state == CLIENT_LINGERING) {
		n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			client_close(s, c);
		return;
	}
	n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(s, c);	/* left before asking anything whole */
		return;
	}
	c->in_len += (size_t)n;
	st = httpreq_parse(c->in, c->in_len, sizeof(c->in), &req);
	if (st != HTTPREQ_PARTIAL)
		client_respond(s, c, tag, st, &req);
}

static void
client_event(struct serve *s, uint32_t tag, uint32_t events)
{
	struct serve_client *c = &s->clients[tag];

	if (c->state == CLIENT_WRITING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		client_write(s, c, tag);
	else if (c->state == CLIENT_READING || c->state == CLIENT_LINGERING)
		client_read(s, c, tag);
}

/* Clients past their deadline: slow senders, slow readers, no FIN. */
static void
clients_expire(struct serve *s)
{
	double now = serve_now();
	size_t i;

	for (i = 0; i < SERVE_CLIENTS; i++)
		if (s->clients[i].state != CLIENT_FREE && s->clients[i].deadline < now)
			client_close(s, &s->clients[i]);
}

/* ---- accepting -------------------------------------------------------- */

static struct serve_client *
client_slot(struct serve *s, uint32_t *tag)
{
	for (*tag = 0; *tag < SERVE_CLIENTS; (*tag)++)
		if (s->clients[*tag].state == CLIENT_FREE)
			return &s->clients[*tag];
	return NULL;
}

/*
 * Over the limit: a polite word if the socket buffer takes it, then close.
 * What the client already sent is read first, so that the close is a FIN
 * and not a reset that would discard the answer.
 */
static void
client_refuse(int fd)
{
	char sink[SERVE_HEAD_MAX];

	(void)recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
	(void)send(fd, statroute_busy, strlen(statroute_busy), MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)shutdown(fd, SHUT_WR);
	close(fd);
}

static void
client_add(struct serve *s, int fd)
{
	struct serve_client *c;
	uint32_t tag;

	if ((c = client_slot(s, &tag)) == NULL) {
		client_refuse(fd);
		return;
	}
	if (serve_watch(s, EPOLL_CTL_ADD, fd, EPOLLIN, tag) == -1) {
		log_warn("status client: epoll_ctl");
		close(fd);
		return;
	}
	c->fd = fd;
	c->state = CLIENT_READING;
	c->in_len = 0;
	c->deadline = serve_now() + SERVE_READ_S;
}

/* Out of descriptors: stop accepting until the next tick rather than spin. */
static void
serve_pause(struct serve *s)
{
	log_warn("status server: accept");
	if (epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->lfd, NULL) == 0)
		s->accepting = 0;
}

static void
serve_accept(struct serve *s)
{
	int fd, i;

	for (i = 0; i < SERVE_ACCEPTS; i++) {
		fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				serve_pause(s);
			else if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("status server: accept");
			return;
		}
		client_add(s, fd);
	}
}

/* ---- set-up and the loop ---------------------------------------------- */

static int
serve_listen(struct serve *s, const char *text)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *why;
	char shown[128];
	int one = 1;

	if (addr_resolve(text, 1, &ss, &len, &why) == -1) {
		log_warnx("-l %s: %s", text, why);
		return -1;
	}
	s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd == -1 ||
	    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(s->lfd, (struct sockaddr *)&ss, len) == -1 ||
	    listen(s->lfd, SERVE_BACKLOG) == -1) {
		log_warn("-l %s: listen", text);
		return -1;
	}
	len = sizeof(ss);
	if (getsockname(s->lfd, (struct sockaddr *)&ss, &len) == 0)
		log_info("serving http://%s/", addr_format((struct sockaddr *)&ss,
		    shown, sizeof(shown)));
	return 0;
}

static int
serve_timer(struct serve *s)
{
	struct itimerspec its = { { 1, 0 }, { 1, 0 } };

	s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->tfd == -1 || timerfd_settime(s->tfd, 0, &its, NULL) == -1) {
		log_warn("status server: timerfd");
		return -1;
	}
	return 0;
}

/* SIGINT and SIGTERM end the loop, read from a signalfd (no handlers). */
static int
serve_signals(struct serve *s)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
	    (s->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
		log_warn("status server: signalfd");
		return -1;
	}
	return 0;
}

static int
serve_open(struct serve *s, const char *listen_text)
{
	size_t i;

	for (i = 0; i < SERVE_CLIENTS; i++)
		s->clients[i].fd = -1;
	s->lfd = s->epfd = s->tfd = s->sfd = -1;
	s->cur = calloc(1, sizeof(*s->cur));
	s->spare = calloc(1, sizeof(*s->spare));
	s->hist = malloc(sizeof(*s->hist));
	if (s->cur == NULL || s->spare == NULL || s->hist == NULL) {
		log_warnx("status server: %s", strerror(ENOMEM));
		return -1;
	}
	stathist_init(s->hist);
	if (serve_listen(s, listen_text) == -1 || serve_timer(s) == -1 ||
	    serve_signals(s) == -1)
		return -1;
	if ((s->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    serve_watch(s, EPOLL_CTL_ADD, s->lfd, EPOLLIN, TAG_LISTEN) == -1 ||
	    serve_watch(s, EPOLL_CTL_ADD, s->tfd, EPOLLIN, TAG_TIMER) == -1 ||
	    serve_watch(s, EPOLL_CTL_ADD, s->sfd, EPOLLIN, TAG_SIGNAL) == -1) {
		log_warn("status server: epoll");
		return -1;
	}
	s->accepting = 1;
	return 0;
}

static void
serve_close(struct serve *s)
{
	size_t i;

	for (i = 0; i < SERVE_CLIENTS; i++)
		if (s->clients[i].state != CLIENT_FREE)
			client_close(s, &s->clients[i]);
	if (s->lfd != -1)
		close(s->lfd);
	if (s->tfd != -1)
		close(s->tfd);
	if (s->sfd != -1)
		close(s->sfd);
	if (s->epfd != -1)
		close(s->epfd);
	if (s->cur != NULL)
		statview_snap_free(s->cur);
	if (s->spare != NULL)
		statview_snap_free(s->spare);
	free(s->cur);
	free(s->spare);
	if (s->hist != NULL)
		stathist_free(s->hist);
	free(s->hist);
}

static void
serve_timer_event(struct serve *s)
{
	uint64_t expired;

	if (read(s->tfd, &expired, sizeof(expired)) != sizeof(expired))
		return;
	serve_tick(s);
	clients_expire(s);
	if (!s->accepting &&
	    serve_watch(s, EPOLL_CTL_ADD, s->lfd, EPOLLIN, TAG_LISTEN) == 0)
		s->accepting = 1;
}

static void
serve_dispatch(struct serve *s, const struct epoll_event *ev)
{
	struct signalfd_siginfo si;

	switch (ev->data.u32) {
	case TAG_LISTEN:
		serve_accept(s);
		break;
	case TAG_TIMER:
		serve_timer_event(s);
		break;
	case TAG_SIGNAL:
		if (read(s->sfd, &si, sizeof(si)) == sizeof(si))
			s->stop = 1;
		break;
	default:
		if (ev->data.u32 < SERVE_CLIENTS)
			client_event(s, ev->data.u32, ev->events);
		break;
	}
}

int
statserve_run(const char *listen_text, const struct statview_filter *filter,
    const struct statserve_source *src)
{
	struct epoll_event evs[SERVE_EVENTS];
	struct serve s;
	int i, n, rc = 0;

	memset(&s, 0, sizeof(s));
	s.filter = filter;
	s.src = src;
	if (serve_open(&s, listen_text) == -1) {
		serve_close(&s);
		return 1;
	}
	serve_tick(&s);		/* figures from the first request on */
	if (!s.have)
		log_warnx("%s; serving 503 until it appears", s.why);
	while (!s.stop) {
		n = epoll_wait(s.epfd, evs, SERVE_EVENTS, -1);
		if (n == -1 && errno != EINTR) {
			log_warn("status server: epoll_wait");
			rc = 1;
			break;
		}
		for (i = 0; i < n; i++)
			serve_dispatch(&s, &evs[i]);
	}
	serve_close(&s);
	return rc;
}
