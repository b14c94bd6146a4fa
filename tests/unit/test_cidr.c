/*
 * cidr (src/cidr.c): parsing, boundaries of IPv4 and IPv6 prefixes,
 * IPv4-mapped IPv6 clients, merging, and a 10 000-prefix set checked
 * against a linear scan of the unmerged prefixes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "cidr.h"

static struct sockaddr_storage ss;

/* A sockaddr for a literal address, v4 or v6. */
static const struct sockaddr *
sa(const char *text)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':') != NULL) {
		sin6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
	} else {
		sin->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &sin->sin_addr), 1);
	}
	return (const struct sockaddr *)&ss;
}

static void
set_of(struct cidr_set *set, const char *const *texts, size_t n)
{
	const char *why = NULL;
	size_t i;

	memset(set, 0, sizeof(*set));
	for (i = 0; i < n; i++)
		if (cidr_set_add(set, texts[i], &why) == -1)
			fail_msg("%s: %s", texts[i], why);
	cidr_set_finish(set);
}

static void
test_parse_errors(void **state)
{
	static const char *const bad[] = {
		"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/08", "10.0.0.0/-1",
		"10.0.0.0/8/8", "10.0.0.1/8", "10.0.0.0 /8", "10.0.0/8", "10.0.0.256",
		"010.0.0.0/8", "2001:db8::/129", "2001:db8::1/32", "2001:db8::/032",
		"fe80::1%eth0", "example.com", "10.0.0.0/8 ", "::ffff:10.0.0.1/104",
		"[::1]", "1.2.3.4/1000",
	};
	struct cidr_range r;
	const char *why;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		if (cidr_parse(bad[i], &r, &why) != -1)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_non_null(why);
	}
	assert_int_equal(cidr_parse("10.0.0.1/8", &r, &why), -1);
	assert_string_equal(why, "address has bits set past the prefix length");
}

static void
test_parse_ok(void **state)
{
	struct cidr_range r;
	const char *why;

	(void)state;
	assert_int_equal(cidr_parse("10.0.0.0/8", &r, &why), 0);
	assert_true(r.first.hi == 0 && r.first.lo == 0x0000ffff0a000000ull);
	assert_true(r.last.hi == 0 && r.last.lo == 0x0000ffff0affffffull);
	assert_int_equal(cidr_parse("1.2.3.4", &r, &why), 0);	/* a bare address: /32 */
	assert_true(r.first.lo == r.last.lo && r.first.lo == 0x0000ffff01020304ull);
	assert_int_equal(cidr_parse("::/0", &r, &why), 0);
	assert_true(r.first.hi == 0 && r.first.lo == 0 && r.last.hi == UINT64_MAX &&
	    r.last.lo == UINT64_MAX);
	assert_int_equal(cidr_parse("2001:db8::/32", &r, &why), 0);
	assert_true(r.first.hi == 0x20010db800000000ull && r.last.hi == 0x20010db8ffffffffull);
	assert_true(r.last.lo == UINT64_MAX);
	assert_int_equal(cidr_parse("2001:db8:0:1::/64", &r, &why), 0);
	assert_true(r.first.hi == r.last.hi && r.first.lo == 0 && r.last.lo == UINT64_MAX);
	assert_int_equal(cidr_parse("2001:db8::8000:0:0:0/65", &r, &why), 0);
	assert_int_equal(cidr_parse("0.0.0.0/0", &r, &why), 0);
	assert_int_equal(cidr_parse("::1", &r, &why), 0);
}

static void
test_boundaries(void **state)
{
	static const char *const rules[] = {
		"10.0.0.0/8", "192.168.1.128/25", "2001:db8::/32", "2001:db8:ffff:ffff::/64",
		"203.0.113.7",
	};
	struct cidr_set set;

	(void)state;
	set_of(&set, rules, sizeof(rules) / sizeof(rules[0]));
	assert_false(cidr_set_contains(&set, sa("9.255.255.255")));
	assert_true(cidr_set_contains(&set, sa("10.0.0.0")));
	assert_true(cidr_set_contains(&set, sa("10.255.255.255")));
	assert_false(cidr_set_contains(&set, sa("11.0.0.0")));
	assert_false(cidr_set_contains(&set, sa("192.168.1.127")));
	assert_true(cidr_set_contains(&set, sa("192.168.1.128")));
	assert_true(cidr_set_contains(&set, sa("192.168.1.255")));
	assert_false(cidr_set_contains(&set, sa("192.168.2.0")));
	assert_true(cidr_set_contains(&set, sa("203.0.113.7")));
	assert_false(cidr_set_contains(&set, sa("203.0.113.8")));
	assert_false(cidr_set_contains(&set, sa("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff")));
	assert_true(cidr_set_contains(&set, sa("2001:db8::")));
	assert_true(cidr_set_contains(&set, sa("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
	assert_false(cidr_set_contains(&set, sa("2001:db9::")));
	/* The /64 lies inside the /32: merged away. */
	assert_int_equal(set.n, 4);
	cidr_set_free(&set);
}

/* ::ffff:a.b.c.d is a.b.c.d; ::/0 takes IPv4 too, 0.0.0.0/0 no IPv6. */
static void
test_v4_mapped(void **state)
{
	static const char *const v4[] = { "10.0.0.0/8" };
	static const char *const all4[] = { "0.0.0.0/0" };
	static const char *const all6[] = { "::/0" };
	struct cidr_set set;
	struct sockaddr_un { sa_family_t f; char p[10]; } un = { AF_UNIX, "x" };

	(void)state;
	set_of(&set, v4, 1);
	assert_true(cidr_set_contains(&set, sa("::ffff:10.1.2.3")));
	assert_false(cidr_set_contains(&set, sa("::ffff:11.1.2.3")));
	assert_false(cidr_set_contains(&set, sa("::10.1.2.3")));	/* v4-compatible: not mapped */
	assert_false(cidr_set_contains(&set, sa("64:ff9b::10.1.2.3")));
	assert_false(cidr_set_contains(&set, (const struct sockaddr *)&un));
	cidr_set_free(&set);
	set_of(&set, all4, 1);
	assert_true(cidr_set_contains(&set, sa("255.255.255.255")));
	assert_false(cidr_set_contains(&set, sa("::1")));
	cidr_set_free(&set);
	set_of(&set, all6, 1);
	assert_true(cidr_set_contains(&set, sa("0.0.0.0")));
	assert_true(cidr_set_contains(&set, sa("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
	assert_int_equal(set.n, 1);
	cidr_set_free(&set);
}

static void
test_empty_and_merge(void **state)
{
	static const char *const adj[] = {
		"10.0.1.0/24", "10.0.0.0/24", "10.0.2.0/23", "10.0.0.5", "10.0.4.0/24",
		"::/1", "8000::/1",
	};
	struct cidr_set set = { 0 };

	(void)state;
	cidr_set_finish(&set);
	assert_false(cidr_set_contains(&set, sa("10.0.0.1")));
	set_of(&set, adj, sizeof(adj) / sizeof(adj[0]));
	/* 10.0.0.0-10.0.4.255 is one range, and ::/1 + 8000::/1 is everything. */
	assert_int_equal(set.n, 1);
	assert_true(cidr_set_contains(&set, sa("10.0.3.255")));
	cidr_set_free(&set);
}

/* xorshift: the same sequence on every run. */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int
linear(const struct cidr_range *r, size_t n, const struct cidr_addr *a)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((a->hi > r[i].first.hi || (a->hi == r[i].first.hi && a->lo >= r[i].first.lo)) &&
		    (a->hi < r[i].last.hi || (a->hi == r[i].last.hi && a->lo <= r[i].last.lo)))
			return 1;
	return 0;
}

/* Half in 10.0.0.0/8, half in 2001:db8::/30: both hit and miss the set. */
static void
random_addr(uint64_t *s, size_t i, struct cidr_addr *a)
{
	uint64_t v = rnd(s);

	if (i % 2) {
		a->hi = 0;
		a->lo = 0x0000ffff0a000000ull | (v & 0xffffff);
	} else {
		a->hi = 0x20010db800000000ull | (v & 0x3ffffffffull);
		a->lo = rnd(s);
	}
}

/* 10 000 prefixes of both families; 4000 lookups agree with a linear scan. */
static void
test_ten_thousand(void **state)
{
	struct cidr_set set = { 0 };
	struct cidr_range *copy;
	char text[64];
	const char *why;
	uint64_t s = 0x9e3779b97f4a7c15ull, v;
	size_t i, n = 10000, hits = 0;
	struct cidr_addr a;
	struct timespec t0, t1;
	double ns;

	(void)state;
	for (i = 0; i < n; i++) {
		v = rnd(&s);
		if (i % 2)
			snprintf(text, sizeof(text), "10.%u.%u.0/24", (unsigned)(v & 0xff),
			    (unsigned)(v >> 8 & 0xff));
		else
			snprintf(text, sizeof(text), "2001:db8:%x:%x::/64", (unsigned)(v & 0x3),
			    (unsigned)(v >> 8 & 0xffff));
		assert_int_equal(cidr_set_add(&set, text, &why), 0);
	}
	assert_non_null(copy = malloc(n * sizeof(*copy)));
	memcpy(copy, set.ranges, n * sizeof(*copy));
	cidr_set_finish(&set);
	assert_true(set.n > 1000 && set.n <= n);
	for (i = 0; i < 4000; i++) {
		random_addr(&s, i, &a);
		assert_int_equal(cidr_set_contains_addr(&set, &a), linear(copy, n, &a));
	}
	/* The figure printed is for information; the check above is the test. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 200000; i++) {
		random_addr(&s, i, &a);
		hits += (size_t)cidr_set_contains_addr(&set, &a);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 200000;
	printf("    10000 prefixes -> %zu ranges, %zu/200000 hits, %.0f ns a lookup\n",
	    set.n, hits, ns);
	assert_true(hits > 0 && hits < 200000);
	free(copy);
	cidr_set_free(&set);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_boundaries),
		cmocka_unit_test(test_v4_mapped),
		cmocka_unit_test(test_empty_and_merge),
		cmocka_unit_test(test_ten_thousand),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
