/*
 * Accepting in a worker.  Listeners are level-triggered with EPOLLEXCLUSIVE:
 * one worker wakes per connection, and a worker that dies takes nothing
 * from the shared queue.  Accepting pauses (listeners leave the epoll set)
 * at maxconn, when no descriptor is to be had, and for a moment while an
 * idle sibling takes its turn; it never spins on a ready queue.
 */
#include <errno.h>
#include <limits.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "accept.h"
#include "log.h"
#include "wait.h"

#define ACCEPT_KICKED		16	/* accepts when a sibling hands work over */
#define DEFER_MS		2	/* accept pause while a kicked sibling takes over */
#define DEFER_GAP_MS		100	/* accepting at least this long between pauses */
#define ACCEPT_LOG_MS		5000	/* at most one "accept (pausing)" line */
#define ACCEPT_FD_RESERVE	16	/* descriptors kept for a backend socket, pipes, logs */

void
accept_pause(struct worker *w, uint64_t until_ms)
{
	size_t i;

	if (w->acc.accepting)
		for (i = 0; i < w->nlisteners; i++)
			(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->listeners[i].fd, NULL);
	w->acc.accepting = 0;
	w->acc.paused_until_ms = until_ms;
}

void
accept_resume(struct worker *w)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE };
	size_t i;

	if (w->acc.accepting || w->stopping || w->nconns >= w->conf->maxconn)
		return;
	for (i = 0; i < w->nlisteners; i++) {
		ev.data.u64 = tag(&w->listeners[i], TAG_LISTENER);
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->listeners[i].fd, &ev) == -1)
			log_warn("listener %s: epoll_ctl(ADD)", w->listeners[i].addr.text);
	}
	w->acc.accepting = 1;
	w->acc.paused_until_ms = 0;
	w->acc.defer_paused = 0;
}

void
accept_start(struct worker *w)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLEXCLUSIVE,
		.data.u64 = tag(&w->acc, TAG_KICK),
	};

	struct rlimit rl;

	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->acc.kick_fd, &ev) == -1)
		fatal("kick eventfd %d: epoll_ctl(ADD)", w->acc.kick_fd);
	w->acc.fd_room = INT_MAX;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < INT_MAX)
		w->acc.fd_room = rl.rlim_cur > 4 * ACCEPT_FD_RESERVE ?
		    (int)rl.rlim_cur - ACCEPT_FD_RESERVE : (int)rl.rlim_cur * 3 / 4;
	accept_resume(w);
}

void
accept_conn_closed(struct worker *w)
{
	if (!w->acc.accepting && w->acc.paused_until_ms == 0)
		accept_resume(w);
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
	for (i = 0; i < used && i < w->map->hdr->worker_slots; i++) {
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

	if (w->acc.deferred) {
		w->acc.deferred = 0;
		return 0;
	}
	if ((min = sibling_min_active(w, &sleeping)) == UINT64_MAX ||
	    mine <= min + (min / 2 > 1 ? min / 2 : 1))
		return 0;
	if (sleeping && write(w->acc.kick_fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("kick eventfd %d: write", w->acc.kick_fd);
	if (min == 0 && w->now_ms - w->acc.deferred_ms >= DEFER_GAP_MS) {
		w->acc.deferred_ms = w->now_ms;
		accept_pause(w, w->now_ms + DEFER_MS);
		w->acc.defer_paused = 1;
	} else
		w->acc.deferred = 1;
	return 1;
}

void
accept_kicked(struct worker *w)
{
	uint64_t count;
	size_t i;

	(void)read(w->acc.kick_fd, &count, sizeof(count));	/* EAGAIN: a sibling got it */
	for (i = 0; i < w->nlisteners && w->acc.accepting; i++)
		accept_ready(w, &w->listeners[i], ACCEPT_KICKED);
}

/* accept4 failed with err: 1 to go on with the batch, 0 to stop it. */
static int
accept_failed(struct worker *w, struct listener *l, int err)
{
	switch (err) {
	case EAGAIN:
		return 0;
	case EINTR:
	case ECONNABORTED:
	case EPROTO:
		return 1;
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		/* Nothing to accept into: pause rather than spin on a ready queue. */
		if (w->now_ms - w->acc.logged_ms >= ACCEPT_LOG_MS) {
			w->acc.logged_ms = w->now_ms;
			log_warn("listener %s: accept (pausing)", l->addr.text);
		}
		accept_pause(w, w->now_ms + ACCEPT_PAUSE_MS);
		return 0;
	default:
		log_warn("listener %s: accept", l->addr.text);
		return 0;
	}
}

void
accept_ready(struct worker *w, struct listener *l, int max)
{
	struct sockaddr_storage peer;
	socklen_t len;
	int i, fd;

	for (i = 0; i < max && w->acc.accepting; i++) {
		if (w->nconns >= w->conf->maxconn) {
			accept_pause(w, 0);
			return;
		}
		if (accept_defer(w))
			return;
		/* The service's queue is at max-queue: leave the rest to the
		 * kernel's accept queue and look again in a while. */
		if (w->conf->services[l->service].limited && wait_queue_full(w, l->service)) {
			accept_pause(w, w->now_ms + ACCEPT_PAUSE_MS);
			return;
		}
		len = sizeof(peer);
		fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_new(w, l, fd, &peer, len);
			/* Descriptors are handed out lowest first: this one says
			 * how few are left.  The reserve serves this client. */
			if (fd >= w->acc.fd_room) {
				accept_pause(w, 0);
				return;
			}
		} else if (!accept_failed(w, l, errno))
			return;
	}
}

void
accept_after_turn(struct worker *w)
{
	int sleeping;

	if (w->acc.paused_until_ms != 0 && w->now_ms >= w->acc.paused_until_ms) {
		w->acc.paused_until_ms = 0;
		accept_resume(w);
	}
	if (w->acc.defer_paused && sibling_min_active(w, &sleeping) > 0)
		accept_resume(w);	/* the idle sibling woke up */
}

int64_t
accept_pause_left(const struct worker *w)
{
	if (w->acc.paused_until_ms == 0)
		return -1;
	return w->acc.paused_until_ms > w->now_ms ? (int64_t)(w->acc.paused_until_ms - w->now_ms) : 0;
}

void
accept_close(struct worker *w)
{
	size_t i;

	accept_pause(w, 0);
	/* A kick meant for a worker that accepts must not wake this one. */
	(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->acc.kick_fd, NULL);
	for (i = 0; i < w->nlisteners; i++) {
		close(w->listeners[i].fd);
		w->listeners[i].fd = -1;
	}
}
