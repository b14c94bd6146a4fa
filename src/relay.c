/*
 * The relay.  Sockets are edge-triggered, so each side carries "may read" /
 * "may write" flags that only EAGAIN, a short transfer or EOF clears.
 *
 * Copied directions: recv() takes everything the socket holds up to the
 * buffer, so a short read proves it drained and new bytes will raise a new
 * edge -- no read that ends in EAGAIN.  Once epoll has reported the peer's
 * FIN, a short read means it was reached: no read that returns 0 either.
 *
 * Spliced directions: a short splice() into a pipe proves nothing, since a
 * pipe also fills by slots (one per skb fragment, however small), so we
 * read on until EAGAIN.  And splice() has two kinds of EAGAIN
 * (haproxy#2505): socket -> pipe means "socket empty" only because we never
 * read into a pipe that still holds bytes; pipe -> socket means "socket
 * full", and the bytes stay counted in inpipe until the peer takes them.
 *
 * A direction yields after its turn of bytes even when both sockets could
 * go on; the worker keeps it in a run queue, as no new edge will come.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "relay.h"

#define SPLICE_FLAGS	(SPLICE_F_MOVE | SPLICE_F_NONBLOCK)

/* What one step of a direction came to; relay_pump makes a status of it. */
enum step {
	STEP_ON,			/* go on with this direction */
	STEP_WAIT,			/* nothing more until readiness changes */
	STEP_YIELD,			/* moved its turn of bytes and could go on */
	STEP_NO_PIPE,			/* no pipe to be had: copy instead */
	STEP_SRC_FAILED,
	STEP_DST_FAILED,
};

int
pipe_pool_init(struct pipe_pool *pool, size_t max_free, uint32_t big_size)
{
	pool->free = calloc(max_free, sizeof(*pool->free));
	pool->free_cap = calloc(max_free, sizeof(*pool->free_cap));
	if (pool->free == NULL || pool->free_cap == NULL) {
		free(pool->free);
		free(pool->free_cap);
		return -1;
	}
	pool->nfree = 0;
	pool->max_free = max_free;
	pool->big_size = big_size;
	pool->grow_wait = 0;
	pool->grow_refused = false;
	return 0;
}

static int
pipe_get(struct pipe_pool *pool, struct half *h)
{
	int fds[2], cap;

	if (pool->nfree > 0) {
		pool->nfree--;
		h->pipe_rd = pool->free[pool->nfree][0];
		h->pipe_wr = pool->free[pool->nfree][1];
		h->pipe_cap = pool->free_cap[pool->nfree];
		return 0;
	}
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
		return -1;
	/* The real size: a user over pipe-user-pages-soft gets one page. */
	if ((cap = fcntl(fds[1], F_GETPIPE_SZ)) <= 0)
		cap = 4096;
	h->pipe_rd = fds[0];
	h->pipe_wr = fds[1];
	h->pipe_cap = (uint32_t)cap;
	return 0;
}

static void
pipe_put(struct pipe_pool *pool, struct half *h)
{
	if (h->pipe_rd == -1)
		return;
	if (h->inpipe == 0 && pool->nfree < pool->max_free) {
		pool->free[pool->nfree][0] = h->pipe_rd;
		pool->free[pool->nfree][1] = h->pipe_wr;
		pool->free_cap[pool->nfree] = h->pipe_cap;
		pool->nfree++;
	} else {
		close(h->pipe_rd);
		close(h->pipe_wr);
	}
	h->pipe_rd = h->pipe_wr = -1;
	h->inpipe = 0;
}

/*
 * A pipe that could not grow is asked again after this many splices that
 * filled half of a small pipe or more (half_splice_in).  The
 * kernel refuses (EPERM) once the user's pipes pass fs.pipe-user-pages-soft,
 * a quota every process of that user shares (and root is exempt from): the
 * refusal says how busy the user is now, not what is allowed for good.
 * One failed fcntl per 64 such splices costs under 1% of the calls.
 */
#define PIPE_GROW_RETRY	64

static void
pipe_grow(struct pipe_pool *pool, struct half *h)
{
	int cap;

	if (pool->big_size <= h->pipe_cap)
		return;
	if (pool->grow_wait > 0) {
		pool->grow_wait--;
		return;
	}
	if ((cap = fcntl(h->pipe_wr, F_SETPIPE_SZ, (int)pool->big_size)) > 0) {
		h->pipe_cap = (uint32_t)cap;
		if (pool->grow_refused)
			log_info("pipes grow to %u bytes again", pool->big_size);
		pool->grow_refused = false;
		return;
	}
	if (!pool->grow_refused)
		log_warn("pipe: F_SETPIPE_SZ %u refused, bulk moves through %u-byte "
		    "pipes until it is granted (the user's pipes over "
		    "fs.pipe-user-pages-soft?)", pool->big_size, h->pipe_cap);
	pool->grow_refused = true;
	pool->grow_wait = PIPE_GROW_RETRY;
}

static void
half_init(struct half *h)
{
	memset(h, 0, sizeof(*h));
	h->pipe_rd = h->pipe_wr = -1;
	h->src_ready = h->dst_ready = true;
}

void
relay_init(struct relay *r)
{
	half_init(&r->up);
	half_init(&r->down);
	/* Input readiness comes from epoll; a new socket takes bytes at once. */
	r->up.src_ready = false;
}

bool
relay_holds_request(const struct relay *r)
{
	return r->up.pending_len > 0;
}

void
relay_connected(struct relay *r, uint32_t events)
{
	r->up.dst_ready = true;
	r->down.src_ready = (events & (EPOLLIN | EPOLLRDHUP)) != 0;
	r->down.src_hup = (events & EPOLLRDHUP) != 0;
}

void
relay_ready(struct relay *r, bool from_backend, uint32_t events)
{
	struct half *from = from_backend ? &r->down : &r->up;	/* the fd is its source */
	struct half *to = from_backend ? &r->up : &r->down;	/* the fd is its destination */

	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))
		from->src_ready = true;
	if (events & (EPOLLRDHUP | EPOLLHUP))
		from->src_hup = true;
	if (events & (EPOLLOUT | EPOLLHUP))
		to->dst_ready = true;
}

void
relay_release(struct relay *r, struct pipe_pool *pool)
{
	pipe_put(pool, &r->up);
	pipe_put(pool, &r->down);
	free(r->up.pending);
	free(r->down.pending);
	r->up.pending = r->down.pending = NULL;
	r->up.pending_len = r->down.pending_len = 0;
}

/* Writes copied bytes still owed to dst: STEP_ON once none are left. */
static enum step
half_flush_pending(struct half *h, int dst, uint64_t *moved)
{
	ssize_t n;

	while (h->pending_len > 0) {
		if (!h->dst_ready)
			return STEP_WAIT;
		n = send(dst, h->pending + h->pending_off, h->pending_len, MSG_NOSIGNAL);
		if (n > 0) {
			h->pending_off += (uint32_t)n;
			h->pending_len -= (uint32_t)n;
			*moved += (uint64_t)n;
		} else if (n == -1 && errno == EAGAIN) {
			h->dst_ready = false;
		} else if (n == -1 && errno != EINTR)
			return STEP_DST_FAILED;
	}
	free(h->pending);
	h->pending = NULL;
	h->pending_off = 0;
	return STEP_ON;
}

/*
 * Sends n copied bytes, keeping what dst cannot take.  0, or -1 on error.
 * last: the source's FIN follows these bytes, and the shutdown() or close()
 * that passes it on comes next in this pump; MSG_MORE holds the segment so
 * the FIN rides on it -- one packet less per connection.
 */
static int
half_send_copy(struct half *h, int dst, const char *buf, size_t n, bool last,
    uint64_t *moved)
{
	ssize_t sent;

	do
		sent = send(dst, buf, n, MSG_NOSIGNAL | (last ? MSG_MORE : 0));
	while (sent == -1 && errno == EINTR);
	if (sent == -1 && errno != EAGAIN)
		return -1;
	if (sent < 0)
		sent = 0;
	*moved += (uint64_t)sent;
	if ((size_t)sent < n) {
		if ((h->pending = malloc(n - (size_t)sent)) == NULL)
			return -1;
		memcpy(h->pending, buf + sent, n - (size_t)sent);
		h->pending_off = 0;
		h->pending_len = (uint32_t)(n - (size_t)sent);
		h->dst_ready = false;
	}
	return 0;
}

/* Flushes the pipe towards dst: STEP_ON once it is empty. */
static enum step
half_flush(struct half *h, int dst, uint64_t *moved)
{
	ssize_t n;

	while (h->inpipe > 0) {
		if (!h->dst_ready)
			return STEP_WAIT;
		n = splice(h->pipe_rd, NULL, dst, NULL, h->inpipe, SPLICE_FLAGS);
		if (n > 0) {
			/* A short splice proves nothing: a signal (SIGSTOP, a
			 * debugger, the freezer) cuts it short too, and then no
			 * EPOLLOUT would come.  Only EAGAIN proves a full socket. */
			h->inpipe -= (uint32_t)n;
			*moved += (uint64_t)n;
		} else if (n == -1 && errno == EAGAIN) {
			h->dst_ready = false;
		} else if (n == -1 && errno == EINTR) {
			continue;
		} else
			return STEP_DST_FAILED;
	}
	return STEP_ON;
}

/*
 * Passes the FIN on once the source has sent one and nothing is left to
 * write -- unless the other direction is already finished, when the
 * close() that follows sends the same FIN for one call less.
 */
static enum step
half_finish(struct half *h, const struct half *other, int dst, struct pipe_pool *pool)
{
	pipe_put(pool, h);
	if (h->src_eof && !h->dst_shut) {
		h->dst_shut = true;
		if (other->dst_shut)
			return STEP_WAIT;
		if (shutdown(dst, SHUT_WR) == -1 && errno != ENOTCONN)
			return STEP_DST_FAILED;
	}
	return STEP_WAIT;
}

/* A read that moved nothing: STEP_ON, or STEP_SRC_FAILED. */
static enum step
half_read_nothing(struct half *h, ssize_t n)
{
	if (n == 0)
		h->src_eof = true;
	else if (errno == EAGAIN)
		h->src_ready = false;
	else if (errno != EINTR)
		return STEP_SRC_FAILED;
	return STEP_ON;
}

/* One splice from src into the (empty) pipe. */
static enum step
half_splice_in(struct half *h, int src, struct pipe_pool *pool)
{
	ssize_t n;

	if (h->pipe_rd == -1 && pipe_get(pool, h) == -1)
		return STEP_NO_PIPE;	/* out of descriptors: the caller copies */
	n = splice(src, NULL, h->pipe_wr, NULL, h->pipe_cap, SPLICE_FLAGS);
	if (n <= 0)
		return half_read_nothing(h, n);
	h->inpipe = (uint32_t)n;
	/* Half a pipe in one splice is bulk.  Not "all of it": a pipe also
	 * fills by slots, and a 2-slot pipe (what a user over its pipe quota
	 * gets) seldom holds its 8 KiB, so it would never grow back. */
	if ((uint32_t)n >= h->pipe_cap / 2)
		pipe_grow(pool, h);
	return STEP_ON;
}

/* One recv into scratch, sent on at once. */
static enum step
half_copy_in(struct half *h, int src, int dst, char *scratch, uint64_t *moved)
{
	ssize_t n;

	n = recv(src, scratch, RELAY_COPY_MAX, 0);
	if (n <= 0)
		return half_read_nothing(h, n);
	if (half_send_copy(h, dst, scratch, (size_t)n, n < RELAY_COPY_MAX && h->src_hup,
	    moved) == -1)
		return STEP_DST_FAILED;
	if (n == RELAY_COPY_MAX)
		h->spliced = true;	/* bulk: splice the rest */
	else if (h->src_hup)
		h->src_eof = true;	/* drained up to the FIN epoll reported */
	else
		h->src_ready = false;	/* drained; new bytes raise an edge */
	return STEP_ON;
}

ssize_t
relay_read_first(struct relay *r, int client_fd, char *scratch)
{
	struct half *h = &r->up;
	ssize_t n;

	n = recv(client_fd, scratch, RELAY_COPY_MAX, 0);
	if (n <= 0)
		return half_read_nothing(h, n) == STEP_ON ? 0 : -1;
	if ((h->pending = malloc((size_t)n)) == NULL)
		return -1;
	memcpy(h->pending, scratch, (size_t)n);
	h->pending_off = 0;
	h->pending_len = (uint32_t)n;
	h->src_ready = n == RELAY_COPY_MAX;	/* short: drained, as in half_copy_in */
	return n;
}

int
relay_hold_request(struct relay *r, const void *buf, size_t len, bool more)
{
	struct half *h = &r->up;

	h->src_ready = more;
	if (len == 0)
		return 0;
	if ((h->pending = malloc(len)) == NULL)
		return -1;
	memcpy(h->pending, buf, len);
	h->pending_off = 0;
	h->pending_len = (uint32_t)len;
	return 0;
}

/* Runs one direction until it waits, yields or fails. */
static enum step
half_pump(struct half *h, const struct half *other, int src, int dst,
    struct pipe_pool *pool, char *scratch, uint64_t turn, uint64_t *moved)
{
	enum step st;

	for (;;) {
		if ((st = half_flush_pending(h, dst, moved)) != STEP_ON ||
		    (st = half_flush(h, dst, moved)) != STEP_ON)
			return st;
		if (h->src_eof || !h->src_ready)
			return half_finish(h, other, dst, pool);
		if (!h->dst_ready)
			return STEP_WAIT;	/* read no more than the peer can take */
		if (*moved >= turn)
			return STEP_YIELD;
		st = h->spliced ? half_splice_in(h, src, pool) : STEP_NO_PIPE;
		/* Copy when not spliced, and when no pipe is to be had: at the
		 * descriptor limit a copied byte beats a stalled connection. */
		if (st == STEP_NO_PIPE)
			st = half_copy_in(h, src, dst, scratch, moved);
		if (st != STEP_ON)
			return st;
	}
}

static void
relay_note(const struct relay *r, bool was_spliced_up, bool was_spliced_down,
    struct relay_result *res)
{
	res->spliced_up = r->up.spliced && !was_spliced_up;
	res->spliced_down = r->down.spliced && !was_spliced_down;
	res->fins = (r->up.src_eof ? RELAY_FIN_CLIENT : 0) |
	    (r->down.src_eof ? RELAY_FIN_BACKEND : 0);
	res->client_full = !r->down.dst_ready && !r->down.dst_shut;
}

/* Called after both directions pumped, the client's first. */
static void
relay_count_turn(struct relay *r, struct relay_result *res)
{
	if (res->up > 0)
		r->up.unanswered = true;
	if (res->down > 0 && r->up.unanswered) {
		r->up.unanswered = false;
		res->exchanges = 1;
	}
}

bool
relay_answered(const struct relay *r)
{
	return !r->up.unanswered && r->up.pending_len == 0 && r->up.inpipe == 0 &&
	    r->down.pending_len == 0 && r->down.inpipe == 0;
}

enum relay_status
relay_pump(struct relay *r, int client_fd, int backend_fd, struct pipe_pool *pool,
    char *scratch, uint64_t turn, struct relay_result *res)
{
	bool was_spliced_up = r->up.spliced, was_spliced_down = r->down.spliced;
	enum step st_up, st_down;

	memset(res, 0, sizeof(*res));
	st_up = half_pump(&r->up, &r->down, client_fd, backend_fd, pool, scratch, turn, &res->up);
	if (st_up == STEP_SRC_FAILED || st_up == STEP_DST_FAILED) {
		relay_note(r, was_spliced_up, was_spliced_down, res);
		return st_up == STEP_SRC_FAILED ? RELAY_RESET_CLIENT : RELAY_RESET_BACKEND;
	}
	st_down = half_pump(&r->down, &r->up, backend_fd, client_fd, pool, scratch, turn,
	    &res->down);
	relay_note(r, was_spliced_up, was_spliced_down, res);
	relay_count_turn(r, res);
	if (st_down == STEP_SRC_FAILED || st_down == STEP_DST_FAILED)
		return st_down == STEP_SRC_FAILED ? RELAY_RESET_BACKEND : RELAY_RESET_CLIENT;
	if (r->up.dst_shut && r->down.dst_shut)
		return RELAY_DONE;
	if (st_up == STEP_YIELD || st_down == STEP_YIELD)
		return RELAY_YIELD;
	return RELAY_MORE;
}
