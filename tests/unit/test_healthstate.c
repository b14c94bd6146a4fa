/*
 * The pure logic of the health checker: rise/fall, jitter, expect matching
 * across reads, quoting, and the deadline heap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "healthstate.h"

static void
test_fall_needs_consecutive_failures(void **state)
{
	struct hstate st;

	(void)state;
	hstate_init(&st, 1);
	assert_int_equal(hstate_result(&st, 0, 2, 3), HSTATE_SAME);
	assert_int_equal(hstate_result(&st, 0, 2, 3), HSTATE_SAME);
	/* A success breaks the run. */
	assert_int_equal(hstate_result(&st, 1, 2, 3), HSTATE_SAME);
	assert_int_equal(hstate_result(&st, 0, 2, 3), HSTATE_SAME);
	assert_int_equal(hstate_result(&st, 0, 2, 3), HSTATE_SAME);
	assert_true(st.up);
	assert_int_equal(hstate_result(&st, 0, 2, 3), HSTATE_WENT_DOWN);
	assert_false(st.up);
	/* Further failures change nothing. */
	assert_int_equal(hstate_result(&st, 0, 2, 3), HSTATE_SAME);
}

static void
test_rise_needs_consecutive_successes(void **state)
{
	struct hstate st;

	(void)state;
	hstate_init(&st, 0);
	assert_int_equal(hstate_result(&st, 1, 2, 3), HSTATE_SAME);
	assert_int_equal(hstate_result(&st, 0, 2, 3), HSTATE_SAME);
	assert_int_equal(hstate_result(&st, 1, 2, 3), HSTATE_SAME);
	assert_int_equal(hstate_result(&st, 1, 2, 3), HSTATE_WENT_UP);
	assert_true(st.up);
	assert_int_equal(st.run, 0);
}

static void
test_rise_fall_of_one(void **state)
{
	struct hstate st;

	(void)state;
	hstate_init(&st, 1);
	assert_int_equal(hstate_result(&st, 0, 1, 1), HSTATE_WENT_DOWN);
	assert_int_equal(hstate_result(&st, 1, 1, 1), HSTATE_WENT_UP);
	assert_int_equal(hstate_result(&st, 1, 1, 1), HSTATE_SAME);
}

static void
test_reset_run(void **state)
{
	struct hstate st;

	(void)state;
	hstate_init(&st, 1);
	hstate_result(&st, 0, 2, 2);
	hstate_reset_run(&st);
	assert_int_equal(hstate_result(&st, 0, 2, 2), HSTATE_SAME);
	assert_int_equal(hstate_result(&st, 0, 2, 2), HSTATE_WENT_DOWN);
}

static void
test_first_delay_within_interval(void **state)
{
	(void)state;
	assert_int_equal(hstate_first_delay_us(2000, 0), 0);
	assert_true(hstate_first_delay_us(2000, UINT32_MAX) < 2000000);
	assert_in_range(hstate_first_delay_us(2000, UINT32_MAX / 2), 999000, 1001000);
	/* The largest interval the config can hold does not overflow. */
	assert_true(hstate_first_delay_us(UINT32_MAX, UINT32_MAX) <
	    (uint64_t)UINT32_MAX * 1000);
}

static void
test_next_delay_jitter_bounds(void **state)
{
	uint64_t lo = UINT64_MAX, hi = 0, sum = 0, d;
	uint32_t i, n = 20000;

	(void)state;
	assert_int_equal(hstate_next_delay_us(1000, 100, 0, 0), 900000);
	assert_int_equal(hstate_next_delay_us(1000, 100, 0, UINT32_MAX), 1100000);
	srandom(7);
	for (i = 0; i < n; i++) {
		d = hstate_next_delay_us(1000, 100, 0,
		    (uint32_t)random() ^ ((uint32_t)random() << 16));
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
		sum += d;
	}
	assert_true(lo >= 900000 && hi <= 1100000);
	/* Spread over the whole range, centred on the interval. */
	assert_true(lo < 905000 && hi > 1095000);
	assert_in_range(sum / n, 995000, 1005000);
}

/* A probe may start up to late_us after its due time: the top of the
 * range gives that back, so the gap between two starts stays in range. */
static void
test_next_delay_leaves_room_for_slack(void **state)
{
	uint64_t seed = 42, d;
	uint32_t i;

	(void)state;
	assert_int_equal(hstate_next_delay_us(2000, 200, 5000, 0), 1800000);
	assert_int_equal(hstate_next_delay_us(2000, 200, 5000, UINT32_MAX), 2195000);
	for (i = 0; i < 100000; i++) {
		d = hstate_next_delay_us(2000, 200, 5000, hstate_rand(&seed));
		assert_in_range(d, 1800000, 2195000);
	}
	/* No jitter: exactly the interval, whatever the slack or rnd. */
	assert_int_equal(hstate_next_delay_us(2000, 0, 0, UINT32_MAX), 2000000);
	assert_int_equal(hstate_next_delay_us(2000, 0, 5000, 12345), 2000000);
	/* A slack wider than the range leaves its bottom. */
	assert_int_equal(hstate_next_delay_us(2000, 1, 5000, UINT32_MAX), 1999000);
	/* A jitter wider than the interval cannot underflow. */
	assert_int_equal(hstate_next_delay_us(100, 500, 0, 0), 0);
}

static void
test_slack_follows_jitter(void **state)
{
	(void)state;
	assert_int_equal(hstate_slack_us(0), 0);
	assert_int_equal(hstate_slack_us(8), 2000);
	assert_int_equal(hstate_slack_us(200), HSTATE_SLACK_MAX_US);
	assert_int_equal(hstate_slack_us(UINT32_MAX), HSTATE_SLACK_MAX_US);
	/* The margin left for a late start covers the slack, and more. */
	assert_int_equal(hstate_margin_us(0), 0);
	assert_int_equal(hstate_margin_us(8), 2000);
	assert_int_equal(hstate_margin_us(100), 25000);
	assert_int_equal(hstate_margin_us(200), HSTATE_LATE_MAX_US);
	assert_int_equal(hstate_margin_us(UINT32_MAX), HSTATE_LATE_MAX_US);
	for (uint32_t j = 0; j < 5000; j += 7)
		assert_true(hstate_margin_us(j) >= hstate_slack_us(j));
}

/* The jitter generator spreads evenly: every eighth of the range gets its
 * share, and two seeds give different sequences. */
static void
test_rand_is_uniform(void **state)
{
	uint64_t seed = 1, other = 2;
	uint32_t bins[8] = { 0 }, i, same = 0;

	(void)state;
	for (i = 0; i < 80000; i++)
		bins[hstate_rand(&seed) >> 29]++;
	for (i = 0; i < 8; i++)
		assert_in_range(bins[i], 9500, 10500);
	seed = 1;
	for (i = 0; i < 100; i++)
		same += hstate_rand(&seed) == hstate_rand(&other);
	assert_true(same < 2);
}

static void
test_expect_across_reads(void **state)
{
	char win[64];
	size_t len;

	(void)state;
	memcpy(win, "xxPO", 4);
	len = 4;
	assert_int_equal(hstate_expect_scan(win, &len, "PONG", 4), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(win, "xPO", 3);
	memcpy(win + len, "NG\n", 3);
	len += 3;
	assert_int_equal(hstate_expect_scan(win, &len, "PONG", 4), 1);
}

static void
test_expect_short_and_empty(void **state)
{
	char win[64];
	size_t len = 2;

	(void)state;
	memcpy(win, "PO", 2);
	/* Shorter than expect: all of it may still start a match. */
	assert_int_equal(hstate_expect_scan(win, &len, "PONG", 4), 0);
	assert_int_equal(len, 2);
	/* An empty expect is met by any byte, not by none. */
	assert_int_equal(hstate_expect_scan(win, &len, "", 0), 1);
	len = 0;
	assert_int_equal(hstate_expect_scan(win, &len, "", 0), 0);
}

static void
test_expect_binary_reply(void **state)
{
	char win[16] = { 'a', '\0', 'b', 'H', 'T' };
	size_t len = 5;

	(void)state;
	assert_int_equal(hstate_expect_scan(win, &len, "HTTP", 4), 0);
	assert_int_equal(len, 3);
	memcpy(win + len, "TP/1.1", 6);
	len += 6;
	assert_int_equal(hstate_expect_scan(win, &len, "HTTP", 4), 1);
}

static void
test_quote_escapes(void **state)
{
	char buf[64];

	(void)state;
	hstate_quote(buf, sizeof(buf), "HTTP/1.1 200", 12);
	assert_string_equal(buf, "HTTP/1.1 200");
	hstate_quote(buf, sizeof(buf), "OK\r\n\t'\\\x01", 8);
	assert_string_equal(buf, "OK\\r\\n\\t\\'\\\\\\x01");
	hstate_quote(buf, sizeof(buf), "", 0);
	assert_string_equal(buf, "");
}

static void
test_quote_truncates(void **state)
{
	char buf[10];

	(void)state;
	hstate_quote(buf, sizeof(buf), "0123456789abc", 13);
	assert_string_equal(buf, "012345...");
	/* Exactly fitting needs no dots. */
	hstate_quote(buf, sizeof(buf), "012345678", 9);
	assert_string_equal(buf, "012345678");
	/* An escape is never cut in half. */
	hstate_quote(buf, sizeof(buf), "abcd\r\nxyz", 9);
	assert_string_equal(buf, "abcd\\r...");
}

struct item {
	struct hheap_node nd;
	int id;
};

static void
test_heap_orders_and_moves(void **state)
{
	struct hheap_node *store[8];
	struct hheap hp;
	struct item it[8];
	uint64_t last = 0;
	int i;

	(void)state;
	hheap_init(&hp, store, 8);
	assert_null(hheap_min(&hp));
	for (i = 0; i < 8; i++) {
		hheap_node_init(&it[i].nd);
		it[i].id = i;
		hheap_set(&hp, &it[i].nd, (uint64_t)((i * 37) % 11 + 1));
	}
	hheap_set(&hp, &it[3].nd, 0);		/* earlier */
	assert_ptr_equal(hheap_min(&hp), &it[3].nd);
	hheap_set(&hp, &it[3].nd, 100);		/* later */
	hheap_remove(&hp, &it[5].nd);
	hheap_remove(&hp, &it[5].nd);		/* twice is harmless */
	assert_int_equal(it[5].nd.idx, HHEAP_NONE);
	for (i = 0; i < 7; i++) {
		struct hheap_node *nd = hheap_min(&hp);

		assert_non_null(nd);
		assert_true(nd->deadline >= last);
		last = nd->deadline;
		hheap_remove(&hp, nd);
	}
	assert_int_equal(last, 100);
	assert_null(hheap_min(&hp));
}

static void
test_heap_random_against_scan(void **state)
{
	struct hheap_node *store[64];
	struct hheap hp;
	struct item it[64];
	int round, i, best;

	(void)state;
	srandom(11);
	hheap_init(&hp, store, 64);
	for (i = 0; i < 64; i++)
		hheap_node_init(&it[i].nd);
	for (round = 0; round < 5000; round++) {
		i = (int)(random() % 64);
		if (random() % 4 == 0)
			hheap_remove(&hp, &it[i].nd);
		else
			hheap_set(&hp, &it[i].nd, (uint64_t)(random() % 1000));
		best = -1;
		for (i = 0; i < 64; i++)
			if (it[i].nd.idx != HHEAP_NONE &&
			    (best == -1 || it[i].nd.deadline < it[best].nd.deadline))
				best = i;
		if (best == -1)
			assert_null(hheap_min(&hp));
		else
			assert_int_equal(hheap_min(&hp)->deadline, it[best].nd.deadline);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fall_needs_consecutive_failures),
		cmocka_unit_test(test_rise_needs_consecutive_successes),
		cmocka_unit_test(test_rise_fall_of_one),
		cmocka_unit_test(test_reset_run),
		cmocka_unit_test(test_first_delay_within_interval),
		cmocka_unit_test(test_next_delay_jitter_bounds),
		cmocka_unit_test(test_next_delay_leaves_room_for_slack),
		cmocka_unit_test(test_slack_follows_jitter),
		cmocka_unit_test(test_rand_is_uniform),
		cmocka_unit_test(test_expect_across_reads),
		cmocka_unit_test(test_expect_short_and_empty),
		cmocka_unit_test(test_expect_binary_reply),
		cmocka_unit_test(test_quote_escapes),
		cmocka_unit_test(test_quote_truncates),
		cmocka_unit_test(test_heap_orders_and_moves),
		cmocka_unit_test(test_heap_random_against_scan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
