/*
 * Slow start's pure ramp (src/slowstart.c): steps of a tenth, the weights
 * schedule.c builds from it, and the share a cold backend gets in the
 * smooth sequence and in leastconn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "balance.h"
#include "slowstart.h"

static void
test_ramp_steps(void **state)
{
	(void)state;
	assert_int_equal(slowstart_ramp(0, 10000), 100);
	assert_int_equal(slowstart_ramp(999, 10000), 100);
	assert_int_equal(slowstart_ramp(1000, 10000), 200);
	assert_int_equal(slowstart_ramp(5500, 10000), 600);
	assert_int_equal(slowstart_ramp(9999, 10000), 1000);
	assert_int_equal(slowstart_ramp(10000, 10000), 0);	/* over: full weight */
	assert_int_equal(slowstart_ramp(0, 0), 0);		/* off */
	assert_int_equal(slowstart_next_step(0, 10000), 1000);
	assert_int_equal(slowstart_next_step(1000, 10000), 2000);
	assert_int_equal(slowstart_next_step(9500, 10000), 10000);
	assert_int_equal(slowstart_next_step(0, 15), 2);	/* rounded up */
}

static void
test_weights(void **state)
{
	(void)state;
	assert_int_equal(slowstart_weight(1, 0, 10), 10);
	assert_int_equal(slowstart_weight(1, 100, 10), 1);
	assert_int_equal(slowstart_weight(1, 100, 1), 1);	/* never 0 */
	assert_int_equal(slowstart_weight(0, 100, 10), 0);
	assert_int_equal(slowstart_weight(256, 500, 10), 1280);
	assert_int_equal(slowstart_scale(3, BALANCE_SEQ_MAX), SLOWSTART_SCALE_MAX);
	assert_int_equal(slowstart_scale(64 * 256, BALANCE_SEQ_MAX), 1);
	assert_int_equal(slowstart_scale(0, BALANCE_SEQ_MAX), SLOWSTART_SCALE_MAX);
}

/* Three equal backends, one just back: its share in each mode. */
static void
test_cold_share(void **state)
{
	uint32_t w[3];
	uint64_t active[3] = { 0, 0, 0 };
	uint8_t *seq = malloc(BALANCE_SEQ_MAX);
	size_t i, len, cold = 0, k;

	(void)state;
	for (i = 0; i < 3; i++)
		w[i] = slowstart_weight(1, i == 2 ? slowstart_ramp(0, 10000) : 0, 10);
	len = balance_smooth_sequence(w, 3, seq);
	for (i = 0; i < len; i++)
		cold += seq[i] == 2;
	assert_int_equal(len, 21);
	assert_int_equal(cold, 1);		/* 1 in 21: under 5% */
	/* leastconn, 60 connections held open: the cold one's share. */
	for (cold = 0, k = 0; k < 60; k++) {
		int b = balance_leastconn(active, w, 3, k);

		active[b]++;
		cold += b == 2;
	}
	assert_true(cold * 100 <= 15 * 60);
	assert_true(cold >= 1);
	free(seq);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ramp_steps),
		cmocka_unit_test(test_weights),
		cmocka_unit_test(test_cold_share),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
