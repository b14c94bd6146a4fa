/*
 * sniroute (src/sniroute.c): exact names, one-label wildcards, case, the
 * default service, conflicts, and a table of 5000 names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "sniroute.h"

static const char *const exam[] = { "exam.example.com", "*.example.org" };
static const char *const shop[] = { "Shop.Example.COM", "*.shop.example.org", "www.example.org" };

static void
test_lookup(void **state)
{
	const struct sniroute_input in[] = { { exam, 2 }, { NULL, 0 }, { shop, 3 } };
	struct sniroute rt;
	struct sniroute_error err;

	(void)state;
	assert_int_equal(sniroute_build(&rt, in, 3, &err), SNIROUTE_OK);
	assert_true(sniroute_needs_hello(&rt));
	assert_int_equal(sniroute_find(&rt, "exam.example.com"), 0);
	assert_int_equal(sniroute_find(&rt, "EXAM.example.Com"), 0);
	assert_int_equal(sniroute_find(&rt, "shop.example.com"), 2);
	assert_int_equal(sniroute_find(&rt, "a.example.org"), 0);
	/* The exact name beats the wildcard. */
	assert_int_equal(sniroute_find(&rt, "www.example.org"), 2);
	assert_int_equal(sniroute_find(&rt, "x.shop.example.org"), 2);
	assert_int_equal(sniroute_find(&rt, "shop.example.org"), 0);
	/* One label only: the bare domain and two labels go to the default. */
	assert_int_equal(sniroute_find(&rt, "example.org"), 1);
	assert_int_equal(sniroute_find(&rt, "a.b.example.org"), 1);
	assert_int_equal(sniroute_find(&rt, "example.com"), 1);
	assert_int_equal(sniroute_find(&rt, NULL), 1);
	sniroute_free(&rt);
}

static void
test_no_default(void **state)
{
	const struct sniroute_input in[] = { { exam, 2 }, { shop, 3 } };
	const struct sniroute_input alone[] = { { NULL, 0 } };
	struct sniroute rt;
	struct sniroute_error err;

	(void)state;
	assert_int_equal(sniroute_build(&rt, in, 2, &err), SNIROUTE_OK);
	assert_int_equal(sniroute_find(&rt, "nobody.example.net"), -1);
	assert_int_equal(sniroute_find(&rt, NULL), -1);
	sniroute_free(&rt);
	/* One service without names: nothing to read, everything to it. */
	assert_int_equal(sniroute_build(&rt, alone, 1, &err), SNIROUTE_OK);
	assert_false(sniroute_needs_hello(&rt));
	assert_int_equal(sniroute_find(&rt, NULL), 0);
	assert_int_equal(sniroute_find(&rt, "any.name"), 0);
	sniroute_free(&rt);
	/* One service with names, alone: fine, the rest is refused. */
	assert_int_equal(sniroute_build(&rt, in, 1, &err), SNIROUTE_OK);
	assert_int_equal(sniroute_find(&rt, "exam.example.com"), 0);
	assert_int_equal(sniroute_find(&rt, NULL), -1);
	sniroute_free(&rt);
}

static void
test_conflicts(void **state)
{
	static const char *const dup[] = { "a.example.net", "EXAM.example.com" };
	static const char *const wdup[] = { "*.EXAMPLE.org" };
	static const char *const bad[] = { "ok.example", "bad_name.example" };
	static const char *const twice[] = { "a.example", "a.example" };
	const struct sniroute_input d1[] = { { exam, 2 }, { dup, 2 } };
	const struct sniroute_input d2[] = { { exam, 2 }, { NULL, 0 }, { wdup, 1 } };
	const struct sniroute_input d3[] = { { NULL, 0 }, { exam, 2 }, { NULL, 0 } };
	const struct sniroute_input d4[] = { { exam, 2 }, { bad, 2 } };
	const struct sniroute_input d5[] = { { twice, 2 } };
	struct sniroute rt;
	struct sniroute_error err;

	(void)state;
	assert_int_equal(sniroute_build(&rt, d1, 2, &err), SNIROUTE_DUPLICATE);
	assert_true(err.a == 0 && err.b == 1);
	assert_int_equal(strcasecmp(err.name, "exam.example.com"), 0);
	assert_null(rt.exact);
	assert_int_equal(sniroute_build(&rt, d2, 3, &err), SNIROUTE_DUPLICATE);
	assert_true(err.a == 0 && err.b == 2);
	assert_int_equal(strcasecmp(err.name, "*.example.org"), 0);
	assert_int_equal(sniroute_build(&rt, d3, 3, &err), SNIROUTE_TWO_DEFAULTS);
	assert_true(err.a == 0 && err.b == 2);
	assert_int_equal(sniroute_build(&rt, d4, 2, &err), SNIROUTE_BAD_NAME);
	assert_true(err.a == 1);
	assert_string_equal(err.name, "bad_name.example");
	/* The same name twice in one service is harmless. */
	assert_int_equal(sniroute_build(&rt, d5, 1, &err), SNIROUTE_OK);
	assert_int_equal(sniroute_find(&rt, "a.example"), 0);
	sniroute_free(&rt);
}

static void
test_patterns(void **state)
{
	(void)state;
	assert_true(sniroute_pattern_valid("example.com"));
	assert_true(sniroute_pattern_valid("*.example.com"));
	assert_true(sniroute_pattern_valid("*.com"));
	assert_false(sniroute_pattern_valid("*"));
	assert_false(sniroute_pattern_valid("*."));
	assert_false(sniroute_pattern_valid("a.*.example.com"));
	assert_false(sniroute_pattern_valid("*.*.example.com"));
	assert_false(sniroute_pattern_valid("*example.com"));
	assert_false(sniroute_pattern_valid("10.0.0.1"));
	assert_false(sniroute_pattern_valid(""));
}

/* 5000 services of one name each and a wildcard each. */
static void
test_many(void **state)
{
	enum { N = 5000 };
	struct sniroute_input *in = calloc(N, sizeof(*in));
	char (*names)[2][32] = calloc(N, sizeof(*names));
	const char *(*ptrs)[2] = calloc(N, sizeof(*ptrs));
	struct sniroute rt;
	struct sniroute_error err;
	char q[40];
	size_t i;

	(void)state;
	assert_true(in != NULL && names != NULL && ptrs != NULL);
	for (i = 0; i < N; i++) {
		snprintf(names[i][0], sizeof(names[i][0]), "site%zu.example.com", i);
		snprintf(names[i][1], sizeof(names[i][1]), "*.w%zu.example.net", i);
		ptrs[i][0] = names[i][0];
		ptrs[i][1] = names[i][1];
		in[i].names = ptrs[i];
		in[i].nnames = 2;
	}
	assert_int_equal(sniroute_build(&rt, in, N, &err), SNIROUTE_OK);
	for (i = 0; i < N; i++) {
		snprintf(q, sizeof(q), "site%zu.example.com", i);
		assert_int_equal(sniroute_find(&rt, q), (long)i);
		snprintf(q, sizeof(q), "x.w%zu.example.net", i);
		assert_int_equal(sniroute_find(&rt, q), (long)i);
	}
	assert_int_equal(sniroute_find(&rt, "site5000.example.com"), -1);
	sniroute_free(&rt);
	free(in);
	free(names);
	free(ptrs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_no_default),
		cmocka_unit_test(test_conflicts),
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
