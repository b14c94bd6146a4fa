/*
 * The relay (src/relay.c) over AF_UNIX socket pairs: bytes arrive intact
 * through the copy and splice paths, FINs pass on, and a direction that
 * has moved its turn of bytes yields instead of holding the worker.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dirent.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "relay.h"

/* The relayed connection, and the test's ends of its two sockets. */
struct rig {
	struct relay relay;
	int client_fd;			/* the relay's sockets */
	int backend_fd;
	struct pipe_pool pool;
	int client_peer;		/* the client's end: reads what came down */
	int backend_peer;		/* the backend's end: writes what goes down */
	char scratch[RELAY_COPY_MAX];
};

/* relay-turn's default: more than any of the small exchanges here moves. */
#define TURN	(8u << 20)

static void
rig_open(struct rig *r)
{
	int sc[2], sb[2];

	memset(r, 0, sizeof(*r));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sc), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sb), 0);
	r->client_fd = sc[0];
	r->client_peer = sc[1];
	r->backend_fd = sb[0];
	r->backend_peer = sb[1];
	relay_init(&r->relay);		/* the client has said nothing */
	relay_connected(&r->relay, EPOLLOUT);
	assert_int_equal(pipe_pool_init(&r->pool, 4, 1 << 20), 0);
}

static void
rig_close(struct rig *r)
{
	relay_release(&r->relay, &r->pool);
	while (r->pool.nfree > 0) {
		r->pool.nfree--;
		close(r->pool.free[r->pool.nfree][0]);
		close(r->pool.free[r->pool.nfree][1]);
	}
	free(r->pool.free);
	free(r->pool.free_cap);
	close(r->client_fd);
	close(r->backend_fd);
	close(r->client_peer);
	close(r->backend_peer);
}

static uint8_t
pattern(size_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13);
}

/* Writes bytes [*off, total) of the pattern into fd until it is full. */
static void
feed(int fd, size_t *off, size_t total)
{
	uint8_t buf[8192];
	ssize_t n;
	size_t i, len;

	while (*off < total) {
		len = total - *off < sizeof(buf) ? total - *off : sizeof(buf);
		for (i = 0; i < len; i++)
			buf[i] = pattern(*off + i);
		if ((n = write(fd, buf, len)) == -1) {
			assert_int_equal(errno, EAGAIN);
			return;
		}
		*off += (size_t)n;
	}
}

/* Reads what fd holds, checking it against the pattern from *off on. */
static void
drain(int fd, size_t *off)
{
	uint8_t buf[8192];
	ssize_t n, i;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (i = 0; i < n; i++, (*off)++)
			assert_int_equal(buf[i], pattern(*off));
	if (n == -1)
		assert_int_equal(errno, EAGAIN);
}

/* The backend's readiness as epoll would report it: bytes may be waiting. */
static void
backend_readable(struct rig *r)
{
	relay_ready(&r->relay, true, EPOLLIN);
	relay_ready(&r->relay, false, EPOLLOUT);
}

static enum relay_status
pump(struct rig *r, uint64_t turn, struct relay_result *res)
{
	return relay_pump(&r->relay, r->client_fd, r->backend_fd, &r->pool, r->scratch,
	    turn, res);
}

static int
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static void
test_small_reply_is_copied(void **state)
{
	struct relay_result res;
	struct rig r;
	char buf[64];
	int fds;

	(void)state;
	rig_open(&r);
	fds = open_fds();
	assert_int_equal(write(r.backend_peer, "hello\n", 6), 6);
	backend_readable(&r);
	assert_int_equal(pump(&r, TURN, &res), RELAY_MORE);
	assert_int_equal(res.down, 6);
	assert_int_equal(read(r.client_peer, buf, sizeof(buf)), 6);
	assert_memory_equal(buf, "hello\n", 6);
	assert_false(res.spliced_down);
	assert_false(res.client_full);
	assert_int_equal(open_fds(), fds);	/* no pipe held for small talk */
	rig_close(&r);
}

/*
 * 8 MiB through a relay whose turn is 64 KiB: every pump that could go on
 * yields after its turn, the bytes arrive intact, and bulk goes through
 * splice.
 */
static void
test_bulk_yields_after_its_turn(void **state)
{
	const size_t total = 8 << 20, turn = 64 << 10;
	size_t fed = 0, got = 0;
	unsigned yields = 0, pumps = 0, spliced = 0;
	struct relay_result res;
	enum relay_status st;
	struct rig r;

	(void)state;
	rig_open(&r);
	while (got < total && pumps < 100000) {
		feed(r.backend_peer, &fed, total);
		backend_readable(&r);
		st = pump(&r, turn, &res);
		pumps++;
		assert_true(st == RELAY_MORE || st == RELAY_YIELD);
		/* One turn, give or take the last splice that crossed it. */
		assert_true(res.down < turn + RELAY_COPY_MAX + (1 << 20));
		if (st == RELAY_YIELD) {
			yields++;
			assert_true(res.down >= turn);
		}
		spliced += res.spliced_down;
		drain(r.client_peer, &got);
	}
	assert_int_equal(got, total);
	assert_true(yields > 0);
	assert_int_equal(spliced, 1);	/* switched to splice once, for good */
	rig_close(&r);
}

/* Moves total bytes down through the relay, checking them; returns the pumps. */
static unsigned
move_down(struct rig *r, size_t total)
{
	size_t fed = 0, got = 0;
	unsigned pumps = 0;
	struct relay_result res;

	while (got < total && pumps < 100000) {
		feed(r->backend_peer, &fed, total);
		backend_readable(r);
		(void)pump(r, TURN, &res);
		pumps++;
		drain(r->client_peer, &got);
	}
	assert_int_equal(got, total);
	return pumps;
}

/* The capacity of the pipe the down direction holds or gave back last. */
static uint32_t
down_pipe_cap(const struct rig *r)
{
	if (r->relay.down.pipe_rd != -1)
		return r->relay.down.pipe_cap;
	assert_true(r->pool.nfree > 0);
	return r->pool.free_cap[r->pool.nfree - 1];
}

/*
 * A refused growth (the kernel says EPERM when the user's pipes pass
 * fs.pipe-user-pages-soft, a quota all its processes share) is asked
 * again later: once granted, bulk gets its big pipe back.  Root is exempt
 * from that quota, so a size the kernel refuses to anyone (EINVAL) stands
 * in for the refusal, and a valid size for the quota freed again.
 */
static void
test_refused_growth_is_retried(void **state)
{
	struct rig r;

	(void)state;
	rig_open(&r);
	r.pool.big_size = UINT32_MAX;		/* refused */
	move_down(&r, 2 << 20);
	assert_true(down_pipe_cap(&r) < 1 << 20);
	assert_true(r.pool.grow_refused);
	assert_int_equal(r.pool.big_size, UINT32_MAX);	/* not given up */
	r.pool.big_size = 1 << 20;		/* the quota frees up */
	move_down(&r, 16 << 20);		/* >= 64 fills of a 64 KiB pipe */
	assert_int_equal(down_pipe_cap(&r), 1 << 20);
	assert_false(r.pool.grow_refused);
	rig_close(&r);
}

/* Without a turn limit the same pump runs until a socket stops it. */
static void
test_unlimited_turn_never_yields(void **state)
{
	size_t fed = 0, got = 0;
	struct relay_result res;
	struct rig r;

	(void)state;
	rig_open(&r);
	feed(r.backend_peer, &fed, 1 << 20);
	backend_readable(&r);
	assert_int_equal(pump(&r, UINT64_MAX, &res), RELAY_MORE);
	assert_true(res.down > 0);
	drain(r.client_peer, &got);
	assert_int_equal(got, res.down);
	rig_close(&r);
}

/* The backend's FIN reaches the client after its bytes; the client's closes it. */
static void
test_fins_pass_on(void **state)
{
	struct relay_result res;
	struct rig r;
	char buf[16];

	(void)state;
	rig_open(&r);
	assert_int_equal(write(r.backend_peer, "bye\n", 4), 4);
	assert_int_equal(shutdown(r.backend_peer, SHUT_WR), 0);
	relay_ready(&r.relay, true, EPOLLIN | EPOLLRDHUP);
	assert_int_equal(pump(&r, TURN, &res), RELAY_MORE);
	assert_int_equal(res.fins, RELAY_FIN_BACKEND);
	assert_int_equal(read(r.client_peer, buf, sizeof(buf)), 4);
	assert_int_equal(read(r.client_peer, buf, sizeof(buf)), 0);	/* FIN */
	assert_int_equal(shutdown(r.client_peer, SHUT_WR), 0);
	relay_ready(&r.relay, false, EPOLLIN | EPOLLRDHUP);
	assert_int_equal(pump(&r, TURN, &res), RELAY_DONE);
	assert_int_equal(res.fins, RELAY_FIN_BACKEND | RELAY_FIN_CLIENT);
	rig_close(&r);
}

/* One request, one reply: the client speaks, then the backend. */
static int
turn(struct rig *r, const char *req, const char *reply)
{
	struct relay_result res;
	char buf[256];
	int exchanges = 0;

	assert_int_equal(write(r->client_peer, req, strlen(req)), (ssize_t)strlen(req));
	relay_ready(&r->relay, false, EPOLLIN);
	assert_int_equal(pump(r, TURN, &res), RELAY_MORE);
	exchanges += res.exchanges;
	assert_false(relay_answered(&r->relay));	/* the request is out */
	assert_true(read(r->backend_peer, buf, sizeof(buf)) > 0);
	assert_int_equal(write(r->backend_peer, reply, strlen(reply)), (ssize_t)strlen(reply));
	backend_readable(r);
	assert_int_equal(pump(r, TURN, &res), RELAY_MORE);
	exchanges += res.exchanges;
	assert_true(read(r->client_peer, buf, sizeof(buf)) > 0);
	return exchanges;
}

/*
 * An exchange is the backend answering after the client sent: one per
 * request/response, none for a greeting nobody asked for, one for
 * pipelined requests answered together.
 */
static void
test_exchanges(void **state)
{
	struct relay_result res;
	struct rig r;
	char buf[256];
	int i, total = 0;

	(void)state;
	rig_open(&r);
	assert_true(relay_answered(&r.relay));		/* nothing said yet */
	assert_int_equal(write(r.backend_peer, "220 hello\n", 10), 10);
	backend_readable(&r);
	assert_int_equal(pump(&r, TURN, &res), RELAY_MORE);
	assert_int_equal(res.exchanges, 0);		/* a greeting: no turn */
	assert_true(read(r.client_peer, buf, sizeof(buf)) == 10);
	for (i = 0; i < 5; i++)
		total += turn(&r, "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n");
	assert_int_equal(total, 5);
	assert_true(relay_answered(&r.relay));
	/* Three pipelined requests, three replies in two pieces: one turn. */
	total = turn(&r, "a\nb\nc\n", "A\n");
	assert_int_equal(write(r.backend_peer, "B\nC\n", 4), 4);
	backend_readable(&r);
	assert_int_equal(pump(&r, TURN, &res), RELAY_MORE);
	assert_int_equal(total + res.exchanges, 1);
	rig_close(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_reply_is_copied),
		cmocka_unit_test(test_bulk_yields_after_its_turn),
		cmocka_unit_test(test_unlimited_turn_never_yields),
		cmocka_unit_test(test_refused_growth_is_retried),
		cmocka_unit_test(test_fins_pass_on),
		cmocka_unit_test(test_exchanges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
