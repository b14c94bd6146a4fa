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
#include <sys/socket.h>
#include <unistd.h>

#include "relay.h"

#define SPLICE_FLAGS	(SPLICE_F_MOVE | SPLICE_F_NONBLOCK)

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
	return 0;
}

void
pipe_pool_destroy(struct pipe_pool *pool)
{
	while (pool->nfree > 0) {
		pool->nfree--;
		close(pool->free[pool->nfree][0]);
		close(pool->free[pool->nfree][1]);
	}
	free(pool->free);
	free(pool->free_cap);
	pool->free = NULL;
	pool->free_cap = NULL;
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

static void
pipe_grow(struct pipe_pool *pool, struct half *h)
{
	int cap;

	if (pool->big_size <= h->pipe_cap)
		return;
	if ((cap = fcntl(h->pipe_wr, F_SETPIPE_SZ, (int)pool->big_size)) > 0)
		h->pipe_cap = (uint32_t)cap;
	else
		pool->big_size = h->pipe_cap;	/* not allowed here: stop trying */
}

void
half_init(struct half *h)
{
	memset(h, 0, sizeof(*h));
	h->pipe_rd = h->pipe_wr = -1;
	h->src_ready = h->dst_ready = true;
}

void
relay_release(struct conn *c, struct pipe_pool *pool)
{
	pipe_put(pool, &c->up);
	pipe_put(pool, &c->down);
	free(c->up.pending);
	free(c->down.pending);
	c->up.pending = c->down.pending = NULL;
	c->up.pending_len = c->down.pending_len = 0;
}

/* Writes copied bytes still owed to dst.  1 when none are left, 0 blocked, -1 error. */
static int
half_flush_pending(struct half *h, int dst, uint64_t *moved)
{
	ssize_t n;

	while (h->pending_len > 0) {
		if (!h->dst_ready)
			return 0;
		n = send(dst, h->pending + h->pending_off, h->pending_len, MSG_NOSIGNAL);
		if (n > 0) {
			h->pending_off += (uint32_t)n;
			h->pending_len -= (uint32_t)n;
			*moved += (uint64_t)n;
		} else if (n == -1 && errno == EAGAIN) {
			h->dst_ready = false;
		} else if (n == -1 && errno != EINTR)
			return -1;
	}
	free(h->pending);
	h->pending = NULL;
	h->pending_off = 0;
	return 1;
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

/* Flushes the pipe towards dst.  Returns 1 when empty, 0 blocked, -1 error. */
static int
half_flush(struct half *h, int dst, uint64_t *moved)
{
	ssize_t n;

	while (h->inpipe > 0) {
		if (!h->dst_ready)
			return 0;
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
			return -1;
	}
	return 1;
}

/*
 * Passes the FIN on once the source has sent one and nothing is left to
 * write -- unless the other direction is already finished, when the
 * close() that follows sends the same FIN for one call less.
 */
static int
half_finish(struct half *h, const struct half *other, int dst, struct pipe_pool *pool)
{
	pipe_put(pool, h);
	if (h->src_eof && !h->dst_shut) {
		h->dst_shut = true;
		if (other->dst_shut)
			return RELAY_MORE;
		if (shutdown(dst, SHUT_WR) == -1 && errno != ENOTCONN)
			return -2;
	}
	return RELAY_MORE;
}

/* A read that moved nothing: 0 to go on, -1 when the source failed. */
static int
half_read_nothing(struct half *h, ssize_t n)
{
	if (n == 0)
		h->src_eof = true;
	else if (errno == EAGAIN)
		h->src_ready = false;
	else if (errno != EINTR)
		return -1;
	return 0;
}

/* One splice from src into the (empty) pipe.  0 to go on, or a result. */
static int
half_splice_in(struct half *h, int src, struct pipe_pool *pool)
{
	ssize_t n;

	if (h->pipe_rd == -1 && pipe_get(pool, h) == -1)
		return RELAY_NOPIPE;	/* out of descriptors: the caller copies */
	n = splice(src, NULL, h->pipe_wr, NULL, h->pipe_cap, SPLICE_FLAGS);
	if (n <= 0)
		return half_read_nothing(h, n);
	h->inpipe = (uint32_t)n;
	if ((uint32_t)n == h->pipe_cap)
		pipe_grow(pool, h);
	return 0;
}

/* One recv into scratch, sent on at once.  0 to go on, or a result. */
static int
half_copy_in(struct half *h, int src, int dst, char *scratch, uint64_t *moved)
{
	ssize_t n;

	n = recv(src, scratch, RELAY_COPY_MAX, 0);
	if (n <= 0)
		return half_read_nothing(h, n);
	if (half_send_copy(h, dst, scratch, (size_t)n, n < RELAY_COPY_MAX && h->src_hup,
	    moved) == -1)
		return -2;
	if (n == RELAY_COPY_MAX)
		h->spliced = true;	/* bulk: splice the rest */
	else if (h->src_hup)
		h->src_eof = true;	/* drained up to the FIN epoll reported */
	else
		h->src_ready = false;	/* drained; new bytes raise an edge */
	return 0;
}

ssize_t
relay_read_first(struct half *h, int src, char *scratch)
{
	ssize_t n;

	n = recv(src, scratch, RELAY_COPY_MAX, 0);
	if (n <= 0)
		return half_read_nothing(h, n) == 0 ? 0 : -1;
	if ((h->pending = malloc((size_t)n)) == NULL)
		return -1;
	memcpy(h->pending, scratch, (size_t)n);
	h->pending_off = 0;
	h->pending_len = (uint32_t)n;
	h->src_ready = n == RELAY_COPY_MAX;	/* short: drained, as in half_copy_in */
	return n;
}

/* Returns RELAY_MORE, RELAY_YIELD, or -1 (src failed) / -2 (dst failed). */
static int
half_pump(struct half *h, const struct half *other, int src, int dst,
    struct pipe_pool *pool, char *scratch, uint64_t turn, uint64_t *moved)
{
	int rc;

	for (;;) {
		if ((rc = half_flush_pending(h, dst, moved)) != 1 ||
		    (rc = half_flush(h, dst, moved)) != 1)
			return rc == 0 ? RELAY_MORE : -2;
		if (h->src_eof || !h->src_ready)
			return half_finish(h, other, dst, pool);
		if (!h->dst_ready)
			return RELAY_MORE;	/* read no more than the peer can take */
		if (*moved >= turn)
			return RELAY_YIELD;
		rc = h->spliced ? half_splice_in(h, src, pool) : RELAY_NOPIPE;
		/* Copy when not spliced, and when no pipe is to be had: at the
		 * descriptor limit a copied byte beats a stalled connection. */
		if (rc == RELAY_NOPIPE)
			rc = half_copy_in(h, src, dst, scratch, moved);
		if (rc != 0)
			return rc;
	}
}

enum relay_status
relay_pump(struct conn *c, struct pipe_pool *pool, char *scratch, uint64_t turn,
    uint64_t *up, uint64_t *down)
{
	int st_up, st_down;

	st_up = half_pump(&c->up, &c->down, c->client_fd, c->backend_fd, pool, scratch, turn, up);
	if (st_up < 0)
		return st_up == -1 ? RELAY_RESET_CLIENT : RELAY_RESET_BACKEND;
	st_down = half_pump(&c->down, &c->up, c->backend_fd, c->client_fd, pool, scratch, turn, down);
	if (st_down < 0)
		return st_down == -1 ? RELAY_RESET_BACKEND : RELAY_RESET_CLIENT;
	if (c->up.dst_shut && c->down.dst_shut)
		return RELAY_DONE;
	if (st_up == RELAY_YIELD || st_down == RELAY_YIELD)
		return RELAY_YIELD;
	return RELAY_MORE;
}
