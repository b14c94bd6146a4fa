/*
 * Balancing choices (src/balance.c): the smooth weighted round-robin
 * sequence, least connections per unit of weight, the client hash and
 * rendezvous hashing for "source".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "balance.h"
#include "loadmeter.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static uint8_t seq[BALANCE_SEQ_MAX];

/*
 * The reference: nginx's smooth weighted round robin, one pick at a time
 * (every member's current += weight, pick the first maximum, subtract the
 * total from it), over the weights as given.
 */
static size_t
reference_smooth(const uint32_t *weights, size_t n, size_t steps, uint8_t *out)
{
	int64_t current[256] = { 0 }, total = 0;
	size_t i, step;

	for (i = 0; i < n; i++)
		total += weights[i];
	for (step = 0; step < steps; step++) {
		size_t best = n;

		for (i = 0; i < n; i++) {
			if (weights[i] == 0)
				continue;
			current[i] += weights[i];
			if (best == n || current[i] > current[best])
				best = i;
		}
		current[best] -= total;
		out[step] = (uint8_t)best;
	}
	return steps;
}

/* Deterministic xorshift, so a failure can be replayed. */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
test_smooth_3_1_1(void **state)
{
	const uint32_t w[] = { 3, 1, 1 };
	const uint8_t want[] = { 0, 1, 0, 2, 0 };

	(void)state;
	assert_int_equal(balance_smooth_sequence(w, NELEM(w), seq), 5);
	assert_memory_equal(seq, want, sizeof(want));
}

static void
test_smooth_equal_and_reduced(void **state)
{
	const uint32_t ones[] = { 1, 1, 1 }, twos[] = { 2, 2 }, six_three[] = { 6, 3 };
	const uint32_t single[] = { 7 };

	(void)state;
	assert_int_equal(balance_smooth_sequence(ones, 3, seq), 3);
	assert_int_equal(seq[0], 0);
	assert_int_equal(seq[1], 1);
	assert_int_equal(seq[2], 2);

	/* {2,2} is {1,1} after dividing by the gcd. */
	assert_int_equal(balance_smooth_sequence(twos, 2, seq), 2);
	assert_int_equal(seq[0], 0);
	assert_int_equal(seq[1], 1);

	/* {6,3} is {2,1}: 0 1 0 */
	assert_int_equal(balance_smooth_sequence(six_three, 2, seq), 3);
	assert_int_equal(seq[0], 0);
	assert_int_equal(seq[1], 1);
	assert_int_equal(seq[2], 0);

	assert_int_equal(balance_smooth_sequence(single, 1, seq), 1);
	assert_int_equal(seq[0], 0);
}

static void
test_smooth_zero_weights(void **state)
{
	const uint32_t some[] = { 0, 2, 0, 1, 0 }, none[] = { 0, 0, 0 };
	size_t len, i;

	(void)state;
	len = balance_smooth_sequence(some, NELEM(some), seq);
	assert_int_equal(len, 3);
	for (i = 0; i < len; i++)
		assert_true(seq[i] == 1 || seq[i] == 3);
	assert_int_equal(seq[0], 1);
	assert_int_equal(seq[1], 3);
	assert_int_equal(seq[2], 1);

	assert_int_equal(balance_smooth_sequence(none, NELEM(none), seq), 0);
	assert_int_equal(balance_smooth_sequence(none, 0, seq), 0);
}

/* Counts in one period equal the reduced weights; the order is nginx's. */
static void
check_period(const uint32_t *w, size_t n)
{
	static uint8_t ref[BALANCE_SEQ_MAX];
	uint32_t g = 0, reduced[256], count[256] = { 0 };
	size_t len, i, total = 0;

	for (i = 0; i < n; i++)
		g = (uint32_t)balance_gcd(g, w[i]);
	for (i = 0; i < n; i++) {
		reduced[i] = g != 0 ? w[i] / g : 0;
		total += reduced[i];
	}
	len = balance_smooth_sequence(w, n, seq);
	assert_int_equal(len, total);
	assert_true(len <= BALANCE_SEQ_MAX);
	for (i = 0; i < len; i++) {
		assert_true(seq[i] < n);
		count[seq[i]]++;
	}
	for (i = 0; i < n; i++)
		assert_int_equal(count[i], reduced[i]);
	reference_smooth(reduced, n, len, ref);
	assert_memory_equal(seq, ref, len);
}

/*
 * No bursts: in every window of the repeating sequence, member i appears
 * at most ceil(w_i * window / total) + 1 times.
 */
static void
check_no_bursts(const uint32_t *w, size_t n)
{
	size_t len, start, win, i, total = 0, count[256];

	for (i = 0; i < n; i++)
		total += w[i];
	len = balance_smooth_sequence(w, n, seq);
	assert_true(len > 0);
	for (win = 1; win <= len; win += win < 16 ? 1 : win / 4) {
		for (start = 0; start < len; start++) {
			memset(count, 0, sizeof(count[0]) * n);
			for (i = 0; i < win; i++)
				count[seq[(start + i) % len]]++;
			for (i = 0; i < n; i++) {
				size_t bound = (w[i] * win + total - 1) / total + 1;

				if (count[i] > bound)
					fail_msg("member %zu (weight %u of %zu) appears %zu times "
					    "in %zu picks from %zu", i, w[i], total, count[i],
					    win, start);
			}
		}
	}
}

static void
test_smooth_periods(void **state)
{
	static const uint32_t sets[][6] = {
		{ 3, 1, 1 }, { 5, 1 }, { 10, 3, 2, 1 }, { 256, 1 }, { 1, 256 },
		{ 7, 7, 7, 1 }, { 100, 99, 98, 97, 96, 95 }, { 4, 6, 0, 10 },
	};
	static const size_t sizes[] = { 3, 2, 4, 2, 2, 4, 6, 4 };
	uint32_t w[64];
	uint64_t s = 42;
	size_t k, i, n;

	(void)state;
	for (k = 0; k < NELEM(sets); k++) {
		check_period(sets[k], sizes[k]);
		check_no_bursts(sets[k], sizes[k]);
	}
	for (k = 0; k < 50; k++) {
		n = 1 + (size_t)(rnd(&s) % 16);
		for (i = 0; i < n; i++)
			w[i] = (uint32_t)(rnd(&s) % 33);
		w[0] |= 1;
		check_period(w, n);
	}
}

static void
test_smooth_maximum(void **state)
{
	uint32_t w[64];
	size_t i, len;

	(void)state;
	/* 64 backends of weight 256 reduce to 64 ones. */
	for (i = 0; i < 64; i++)
		w[i] = 256;
	len = balance_smooth_sequence(w, 64, seq);
	assert_int_equal(len, 64);
	for (i = 0; i < 64; i++)
		assert_int_equal(seq[i], i);

	/* Nothing to reduce: the full period still fits. */
	w[63] = 255;
	check_period(w, 64);
	w[63] = 1;
	check_period(w, 64);
	for (i = 0; i < 64; i++)
		w[i] = 256 - (uint32_t)i;
	len = balance_smooth_sequence(w, 64, seq);
	assert_true(len <= BALANCE_SEQ_MAX);
	check_period(w, 64);
}

static void
test_smooth_heavy_no_burst(void **state)
{
	uint32_t w[64];
	size_t i;

	(void)state;
	w[0] = 256;
	for (i = 1; i < 8; i++)
		w[i] = 1;
	check_no_bursts(w, 8);
	w[0] = 3;
	w[1] = 1;
	check_no_bursts(w, 2);
}

static void
test_leastconn_per_weight(void **state)
{
	const uint64_t a1[] = { 5, 1, 3 }, a2[] = { 4, 2 }, a3[] = { 0, 9, 1 };
	const uint32_t w1[] = { 1, 1, 1 }, w2[] = { 4, 1 }, w3[] = { 0, 1, 1 };
	uint64_t r;

	(void)state;
	for (r = 0; r < 6; r++) {
		assert_int_equal(balance_leastconn(a1, w1, 3, r), 1);
		/* 4/4 = 1.0 beats 2/1 = 2.0 */
		assert_int_equal(balance_leastconn(a2, w2, 2, r), 0);
		/* The idle one has weight 0: skipped. */
		assert_int_equal(balance_leastconn(a3, w3, 3, r), 2);
	}
}

/* A slow-starting backend (weight scaled down) is not picked for being idle. */
static void
test_leastconn_counts_the_new_one(void **state)
{
	const uint64_t idle[] = { 0, 0, 0 }, some[] = { 9, 9, 0 };
	const uint32_t w[] = { 10, 10, 1 };
	unsigned hits[3] = { 0 };
	uint64_t r;

	(void)state;
	for (r = 0; r < 30; r++)
		hits[balance_leastconn(idle, w, 3, r)]++;
	assert_int_equal(hits[2], 0);
	/* (9+1)/10 = 1 vs (0+1)/1 = 1: its turn comes at a tenth of the load. */
	for (r = 0; r < 3; r++)
		assert_int_equal(balance_leastconn(some, w, 3, r), r == 2 ? 2 : (int)r);
}

static void
test_leastconn_ties_rotate(void **state)
{
	const uint64_t act[] = { 2, 2, 2, 7 }, act2[] = { 3, 1, 1, 1 };
	const uint32_t w[] = { 1, 1, 1, 1 }, w0[] = { 1, 0, 1, 1 }, half[] = { 2, 1, 1, 1 };
	unsigned hits[4] = { 0 };
	uint64_t r;

	(void)state;
	assert_int_equal(balance_leastconn(act, w, 4, 0), 0);
	assert_int_equal(balance_leastconn(act, w, 4, 1), 1);
	assert_int_equal(balance_leastconn(act, w, 4, 2), 2);
	/* From the rotate point on, wrapping past the busy one. */
	assert_int_equal(balance_leastconn(act, w, 4, 3), 0);
	assert_int_equal(balance_leastconn(act, w, 4, 5), 1);
	assert_int_equal(balance_leastconn(act, w, 4, UINT64_MAX), 0);
	/* A rotate point on a weight-0 member moves to the next one. */
	assert_int_equal(balance_leastconn(act2, w0, 4, 1), 2);
	/* Counting the new connection: (3+1)/2 vs (1+1)/1 is a tie. */
	for (r = 0; r < 8; r++)
		hits[balance_leastconn(act2, half, 4, r)]++;
	assert_int_equal(hits[0], 2);
	assert_int_equal(hits[1], 2);
	assert_int_equal(hits[2], 2);
	assert_int_equal(hits[3], 2);
}

static void
test_leastconn_none(void **state)
{
	const uint64_t act[] = { 0, 0, 0 };
	const uint32_t w[] = { 0, 0, 0 };

	(void)state;
	assert_int_equal(balance_leastconn(act, w, 3, 0), -1);
	assert_int_equal(balance_leastconn(act, w, 3, 7), -1);
}

/* Large counts and weights do not overflow the comparison. */
static void
test_leastconn_large(void **state)
{
	const uint64_t act[] = { UINT64_MAX - 1, UINT64_MAX / 2 };
	const uint32_t w[] = { 256, 1 };

	(void)state;
	assert_int_equal(balance_leastconn(act, w, 2, 1), 0);
}

static uint64_t
hash_v4(const char *text, uint16_t port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, text, &sin.sin_addr), 1);
	return balance_client_hash((struct sockaddr *)&sin);
}

static uint64_t
hash_v6(const char *text, uint16_t port)
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1);
	return balance_client_hash((struct sockaddr *)&sin6);
}

static void
test_client_hash(void **state)
{
	(void)state;
	/* The port is not part of it. */
	assert_true(hash_v4("192.0.2.1", 40000) == hash_v4("192.0.2.1", 40001));
	assert_true(hash_v6("2001:db8::1", 1) == hash_v6("2001:db8::1", 65535));
	/* The address is. */
	assert_true(hash_v4("192.0.2.1", 1) != hash_v4("192.0.2.2", 1));
	assert_true(hash_v4("192.0.2.1", 1) != hash_v4("193.0.2.1", 1));
	assert_true(hash_v6("2001:db8::1", 1) != hash_v6("2001:db8::2", 1));
	/* Both halves of an IPv6 address count. */
	assert_true(hash_v6("2001:db8::1", 1) != hash_v6("2001:db9::1", 1));
	/* IPv4 and IPv6 differ. */
	assert_true(hash_v4("127.0.0.1", 1) != hash_v6("::1", 1));
	assert_true(hash_v4("0.0.0.0", 1) != hash_v6("::", 1));
	assert_true(hash_v4("192.0.2.1", 1) != hash_v6("::192.0.2.1", 1));
}

/* 10 000 clients of 10.0.0.0/18. */
#define NCLIENTS	10000

static uint64_t clients[NCLIENTS];

static int
setup_clients(void **state)
{
	char text[32];
	size_t i;

	(void)state;
	for (i = 0; i < NCLIENTS; i++) {
		snprintf(text, sizeof(text), "10.0.%zu.%zu", i >> 8, i & 0xff);
		clients[i] = hash_v4(text, (uint16_t)(1024 + i));
	}
	return 0;
}

static void
test_rendezvous_stable(void **state)
{
	const uint64_t ids[] = { 11, 22, 33, 44 };
	const uint32_t w[] = { 1, 1, 1, 1 };
	size_t i;

	(void)state;
	for (i = 0; i < 1000; i++) {
		int pick = balance_rendezvous(clients[i], ids, w, 4);

		assert_true(pick >= 0 && pick < 4);
		assert_int_equal(balance_rendezvous(clients[i], ids, w, 4), pick);
	}
}

static void
test_rendezvous_distribution(void **state)
{
	const uint64_t ids[] = { 0, 1, 2, 3 };
	const uint32_t w[] = { 1, 1, 1, 1 };
	unsigned count[4] = { 0 };
	size_t i;

	(void)state;
	for (i = 0; i < NCLIENTS; i++)
		count[balance_rendezvous(clients[i], ids, w, 4)]++;
	for (i = 0; i < 4; i++)
		if (count[i] < 2250 || count[i] > 2750)
			fail_msg("candidate %zu got %u of %d clients", i, count[i], NCLIENTS);
}

static void
test_rendezvous_weights(void **state)
{
	const uint64_t ids[] = { 5, 6 };
	const uint32_t w[] = { 2, 1 };
	const uint64_t ids3[] = { 5, 6, 7 };
	const uint32_t w3[] = { 1, 2, 1 };
	unsigned count[3] = { 0 };
	size_t i;

	(void)state;
	for (i = 0; i < NCLIENTS; i++)
		count[balance_rendezvous(clients[i], ids, w, 2)]++;
	/* 6667 : 3333 expected */
	assert_in_range(count[0], 6300, 7000);
	assert_in_range(count[1], 3000, 3700);

	memset(count, 0, sizeof(count));
	for (i = 0; i < NCLIENTS; i++)
		count[balance_rendezvous(clients[i], ids3, w3, 3)]++;
	assert_in_range(count[0], 2250, 2750);
	assert_in_range(count[1], 4500, 5500);
	assert_in_range(count[2], 2250, 2750);
}

/* Losing a candidate moves only the clients it had. */
static void
test_rendezvous_removal(void **state)
{
	const uint64_t ids[] = { 101, 202, 303, 404 };
	const uint32_t w[] = { 1, 1, 1, 1 };
	const uint64_t ids3[] = { 101, 303, 404 };
	const uint32_t w3[] = { 1, 1, 1 };
	uint32_t wr[] = { 1, 0, 1, 1 };
	unsigned moved = 0;
	size_t i;

	(void)state;
	for (i = 0; i < NCLIENTS; i++) {
		int before = balance_rendezvous(clients[i], ids, w, 4);
		int after = balance_rendezvous(clients[i], ids, wr, 4);
		int shrunk = balance_rendezvous(clients[i], ids3, w3, 3);

		assert_true(after >= 0 && after != 1);
		/* Removing it from the array is the same as weight 0. */
		assert_int_equal(ids3[shrunk], ids[after]);
		if (before != 1)
			assert_int_equal(after, before);
		else
			moved++;
	}
	assert_in_range(moved, 2250, 2750);

	/* Adding it back only takes clients onto the new one. */
	for (i = 0; i < NCLIENTS; i++) {
		int before = balance_rendezvous(clients[i], ids, wr, 4);
		int after = balance_rendezvous(clients[i], ids, w, 4);

		assert_true(after == before || after == 1);
	}
}

static void
test_rendezvous_none(void **state)
{
	const uint64_t ids[] = { 1, 2 };
	const uint32_t w[] = { 0, 0 };

	(void)state;
	assert_int_equal(balance_rendezvous(clients[0], ids, w, 2), -1);
	assert_int_equal(balance_rendezvous(clients[0], ids, w, 0), -1);
}

/* Least load per unit of weight wins; ties go to fewer active per weight. */
static void
test_leastload_choice(void **state)
{
	uint64_t load[] = { 3000, 1000, 2000 }, active[] = { 1, 9, 1 }, recent[3] = { 0 };
	uint32_t w[] = { 1, 1, 1 }, w2[] = { 4, 1, 1 };
	uint64_t tie[] = { 1000, 1000, 1000 }, act2[] = { 5, 2, 7 };
	size_t k;

	(void)state;
	for (k = 0; k < 3; k++)
		assert_int_equal(balance_leastload(load, active, recent, w, 3, k), 1);
	/* Weight 4 makes 3000 the least per unit of weight. */
	assert_int_equal(balance_leastload(load, active, recent, w2, 3, 0), 0);
	for (k = 0; k < 3; k++)
		assert_int_equal(balance_leastload(tie, act2, recent, w, 3, k), 1);
	w[1] = 0;			/* not eligible */
	assert_int_equal(balance_leastload(load, active, recent, w, 3, 0), 2);
	w[0] = w[2] = 0;
	assert_int_equal(balance_leastload(load, active, recent, w, 3, 0), -1);
}

/* Equal loads and no connections: the rotation spreads the ties. */
static void
test_leastload_ties_rotate(void **state)
{
	uint64_t load[4] = { 0 }, active[4] = { 0 }, recent[4] = { 0 };
	uint32_t w[] = { 1, 1, 1, 1 };
	unsigned count[4] = { 0 };
	size_t k;

	(void)state;
	for (k = 0; k < 400; k++)
		count[balance_leastload(load, active, recent, w, 4, k)]++;
	for (k = 0; k < 4; k++)
		assert_int_equal(count[k], 100);
}

/*
 * The herd guard: 200 new connections at once, before the load meter saw
 * any of them.  Backend 0 looks far idler, yet takes at most twice its
 * fair share (40) of the burst.
 */
static void
test_leastload_herd(void **state)
{
	uint64_t base[] = { 0, 50000, 50000, 50000, 50000 }, load[5];
	uint64_t active[5] = { 0 }, recent[5] = { 0 };
	uint32_t w[] = { 1, 1, 1, 1, 1 };
	size_t k, i;
	int b;

	(void)state;
	for (k = 0; k < 200; k++) {
		for (i = 0; i < 5; i++)
			load[i] = base[i] + recent[i] * 10;	/* per_conn: tiny */
		b = balance_leastload(load, active, recent, w, 5, k);
		assert_true(b >= 0);
		recent[b]++;
		active[b]++;
	}
	assert_true(recent[0] <= 2 * 40 + 2);
	assert_true(recent[0] >= 40);	/* still the idlest: it got its share */
	for (i = 1; i < 5; i++)
		assert_true(recent[i] > 0);
}

/* The guard honours weights: weight 3 may take thrice weight 1's share. */
static void
test_leastload_herd_weights(void **state)
{
	uint64_t load[3] = { 0 }, active[3] = { 0 }, recent[3] = { 0 };
	uint32_t w[] = { 3, 1, 1 };
	size_t k;
	int b;

	(void)state;
	for (k = 0; k < 500; k++) {
		b = balance_leastload(load, active, recent, w, 3, k);
		recent[b]++;
		active[b]++;
	}
	/* Loads stay 0: ties by active per weight give 300/100/100. */
	assert_int_equal(recent[0], 300);
	assert_int_equal(recent[1], 100);
	assert_int_equal(recent[2], 100);
}

/* The load meter's decaying average, in events per second x 1000. */
static void
test_load_decay(void **state)
{
	uint64_t rate = 0;
	int i;

	(void)state;
	assert_int_equal(loadmeter_decay(1234, 99, 0), 1234);	/* no time: no change */
	/* 100 per second, measured every 250 ms: converges on 100 000. */
	for (i = 0; i < 80; i++)
		rate = loadmeter_decay(rate, 25, 250);
	assert_true(rate > 99000 && rate <= 100000);
	/* One time constant of silence leaves about 1/e of it. */
	for (i = 0; i < 8; i++)
		rate = loadmeter_decay(rate, 0, 250);
	assert_true(rate > 36000 && rate < 38000);
	/* A step up gets most of the way within a few seconds. */
	rate = 0;
	for (i = 0; i < 16; i++)
		rate = loadmeter_decay(rate, 250, 250);
	assert_true(rate > 850000 && rate < 1000000);
}

/* ---- source hashing keyed by backend name (issue 19) ---- */

/*
 * A backend list as a node's file gives it: names and weights in the
 * file's order.  by_name() is what "source" picks for a client, as a name.
 */
struct named {
	const char *name[8];
	uint32_t weight[8];
	size_t n;
};

static const char *
by_name(const struct named *b, uint64_t client)
{
	uint64_t ids[8];
	size_t i;
	int pick;

	for (i = 0; i < b->n; i++)
		ids[i] = balance_name_hash(b->name[i]);
	pick = balance_rendezvous(client, ids, b->weight, b->n);
	return pick < 0 ? NULL : b->name[pick];
}

/* The list in the order perm gives (perm[k] = index in src). */
static void
permute(const struct named *src, const size_t *perm, struct named *dst)
{
	size_t k;

	dst->n = src->n;
	for (k = 0; k < src->n; k++) {
		dst->name[k] = src->name[perm[k]];
		dst->weight[k] = src->weight[perm[k]];
	}
}

/* The hash is part of the contract between nodes (and versions): pin it. */
static void
test_name_hash(void **state)
{
	char name[16];
	uint64_t seen[1000];
	size_t i, j;

	(void)state;
	assert_true(balance_name_hash("app1") == UINT64_C(0x559721a43f6847d7));
	assert_true(balance_name_hash("app1") != balance_name_hash("app2"));
	assert_true(balance_name_hash("a") != balance_name_hash("a."));
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "app%zu", i);
		seen[i] = balance_name_hash(name);
		for (j = 0; j < i; j++)
			assert_true(seen[j] != seen[i]);
	}
}

/* Every one of the 24 orders of 4 backends sends each client to one name. */
static void
test_rendezvous_names_any_order(void **state)
{
	const struct named base = { { "app1", "app2", "app3", "app4" },
	    { 1, 2, 1, 3 }, 4 };
	size_t perm[4], a, b, c, i, orders = 0;
	struct named other;

	(void)state;
	for (a = 0; a < 4; a++)
		for (b = 0; b < 4; b++)
			for (c = 0; c < 4; c++) {
				if (a == b || a == c || b == c)
					continue;
				perm[0] = a, perm[1] = b, perm[2] = c;
				perm[3] = 6 - a - b - c;
				permute(&base, perm, &other);
				for (i = 0; i < 2000; i++)
					assert_string_equal(by_name(&other, clients[i]),
					    by_name(&base, clients[i]));
				orders++;
			}
	assert_int_equal(orders, 24);
}

/* Taking app3 out of the file (anywhere in it) moves only app3's clients. */
static void
test_rendezvous_names_removal(void **state)
{
	const struct named four = { { "app1", "app2", "app3", "app4" },
	    { 1, 1, 1, 1 }, 4 };
	const struct named three = { { "app4", "app1", "app2" }, { 1, 1, 1 }, 3 };
	unsigned moved = 0;
	size_t i;

	(void)state;
	for (i = 0; i < NCLIENTS; i++) {
		const char *before = by_name(&four, clients[i]);
		const char *after = by_name(&three, clients[i]);

		if (strcmp(before, "app3") == 0)
			moved++;
		else
			assert_string_equal(after, before);
	}
	assert_in_range(moved, 2250, 2750);
}

/* Weights still count, and follow the name, not the place in the file. */
static void
test_rendezvous_names_weights(void **state)
{
	const struct named one = { { "big", "small" }, { 3, 1 }, 2 };
	const struct named two = { { "small", "big" }, { 1, 3 }, 2 };
	unsigned big = 0;
	size_t i;

	(void)state;
	for (i = 0; i < NCLIENTS; i++) {
		const char *pick = by_name(&one, clients[i]);

		assert_string_equal(by_name(&two, clients[i]), pick);
		big += strcmp(pick, "big") == 0;
	}
	/* 7500 : 2500 expected */
	assert_in_range(big, 7200, 7800);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smooth_3_1_1),
		cmocka_unit_test(test_smooth_equal_and_reduced),
		cmocka_unit_test(test_smooth_zero_weights),
		cmocka_unit_test(test_smooth_periods),
		cmocka_unit_test(test_smooth_maximum),
		cmocka_unit_test(test_smooth_heavy_no_burst),
		cmocka_unit_test(test_leastconn_per_weight),
		cmocka_unit_test(test_leastconn_ties_rotate),
		cmocka_unit_test(test_leastconn_counts_the_new_one),
		cmocka_unit_test(test_leastconn_none),
		cmocka_unit_test(test_leastconn_large),
		cmocka_unit_test(test_client_hash),
		cmocka_unit_test(test_rendezvous_stable),
		cmocka_unit_test(test_rendezvous_distribution),
		cmocka_unit_test(test_rendezvous_weights),
		cmocka_unit_test(test_rendezvous_removal),
		cmocka_unit_test(test_rendezvous_none),
		cmocka_unit_test(test_leastload_choice),
		cmocka_unit_test(test_leastload_ties_rotate),
		cmocka_unit_test(test_leastload_herd),
		cmocka_unit_test(test_leastload_herd_weights),
		cmocka_unit_test(test_load_decay),
		cmocka_unit_test(test_name_hash),
		cmocka_unit_test(test_rendezvous_names_any_order),
		cmocka_unit_test(test_rendezvous_names_removal),
		cmocka_unit_test(test_rendezvous_names_weights),
	};

	return cmocka_run_group_tests(tests, setup_clients, NULL);
}
