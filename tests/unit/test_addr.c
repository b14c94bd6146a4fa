/*
 * Durations, sizes and "host:port" addresses as the config file and the control
 * protocol write them (src/addr.c).  Only numeric hosts and "localhost":
 * these tests never wait on a name server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cmocka.h>

#include "addr.h"

typedef int parse_fn(const char *text, uint32_t *out, const char **why);

static void
check_value(parse_fn *parse, const char *text, uint32_t want)
{
	const char *why = NULL;
	uint32_t out = 12345;

	if (parse(text, &out, &why) != 0)
		fail_msg("\"%s\" rejected: %s", text, why != NULL ? why : "(no reason)");
	assert_int_equal(out, want);
}

/* Rejected, with a reason that contains word; the result is left alone. */
static void
check_bad_value(parse_fn *parse, const char *text, const char *word)
{
	const char *why = NULL;
	uint32_t out = 12345;

	if (parse(text, &out, &why) != -1)
		fail_msg("\"%s\" accepted as %u", text, out);
	assert_non_null(why);
	if (strstr(why, word) == NULL)
		fail_msg("\"%s\": reason \"%s\" does not mention \"%s\"", text, why, word);
	assert_int_equal(out, 12345);
}

#define check_duration(text, want)	check_value(addr_parse_duration, text, want)
#define check_bad_duration(text, word)	check_bad_value(addr_parse_duration, text, word)
#define check_size(text, want)		check_value(addr_parse_size, text, want)
#define check_bad_size(text, word)	check_bad_value(addr_parse_size, text, word)

static void
test_duration_units(void **state)
{
	(void)state;
	check_duration("250ms", 250);
	check_duration("3s", 3000);
	check_duration("5m", 300000);
	check_duration("1h", 3600000);
	check_duration("0ms", 0);
	check_duration(" 3s", 3000);
	check_duration("\t30s", 30000);
	check_duration("007s", 7000);
}

static void
test_duration_limits(void **state)
{
	(void)state;
	/* The largest value that fits a uint32_t, and just beyond it. */
	check_duration("4294967295ms", UINT32_MAX);
	check_bad_duration("4294967296ms", "too long");
	check_duration("1193h", 1193u * 3600000u);
	check_bad_duration("1194h", "too long");
	check_bad_duration("5000000h", "too long");
	check_bad_duration("99999999999999999999999s", "too long");
}

static void
test_sizes(void **state)
{
	(void)state;
	check_size("65536", 65536);
	check_size("0", 0);
	check_size("512K", 512u << 10);
	check_size("512k", 512u << 10);
	check_size(" 8M", 8u << 20);
	check_size("8 m", 8u << 20);
	check_size("1G", 1u << 30);
	check_size("3g", 3u << 30);
	check_size("4294967295", UINT32_MAX);
	check_bad_size("4294967296", "too large");
	check_bad_size("4G", "too large");
	check_bad_size("4194304K", "too large");
	check_bad_size("99999999999999999999999", "too large");
	check_bad_size("8MB", "unit");
	check_bad_size("8T", "unit");
	check_bad_size("1.5M", "unit");
	check_bad_size("-1M", "number");
	check_bad_size("M", "number");
	check_bad_size("", "number");
}

static void
test_duration_rejects(void **state)
{
	(void)state;
	check_bad_duration("3", "unit");
	check_bad_duration("3 parsecs", "unit");
	check_bad_duration("3sec", "unit");
	check_bad_duration("3S", "unit");
	check_bad_duration("1.5s", "unit");
	check_bad_duration("s", "number");
	check_bad_duration("-1s", "number");
	check_bad_duration("+1s", "number");
	check_bad_duration("", "number");
	check_bad_duration("   ", "number");
	check_bad_duration("ms", "number");
}

static void
check_split(const char *text, const char *want_host, unsigned want_port)
{
	char host[256];
	const char *why = NULL;
	uint16_t port = 0;

	memset(host, 'x', sizeof(host));
	if (addr_split(text, host, sizeof(host), &port, &why) != 0)
		fail_msg("\"%s\" rejected: %s", text, why != NULL ? why : "(no reason)");
	assert_string_equal(host, want_host);
	assert_int_equal(port, want_port);
}

static void
check_bad_split(const char *text, const char *word)
{
	char host[256];
	const char *why = NULL;
	uint16_t port = 0;

	if (addr_split(text, host, sizeof(host), &port, &why) != -1)
		fail_msg("\"%s\" accepted as host \"%s\" port %u", text, host, port);
	assert_non_null(why);
	if (strstr(why, word) == NULL)
		fail_msg("\"%s\": reason \"%s\" does not mention \"%s\"", text, why, word);
}

static void
test_split_good(void **state)
{
	(void)state;
	check_split("127.0.0.1:80", "127.0.0.1", 80);
	check_split("[::1]:8080", "::1", 8080);
	check_split("[::]:443", "::", 443);
	check_split("*:80", "", 80);
	check_split("backend.example:65535", "backend.example", 65535);
	check_split("localhost:1", "localhost", 1);
}

static void
test_split_bad(void **state)
{
	(void)state;
	check_bad_split("host:0", "port");
	check_bad_split("host:65536", "port");
	check_bad_split("host:99999999999999999999", "port");
	check_bad_split("host:80x", "port");
	check_bad_split("host:-80", "port");
	check_bad_split("host: 80", "port");
	check_bad_split("host:", "port");
	check_bad_split(":80", "empty host");
	check_bad_split("[]:80", "empty host");
	check_bad_split("[::1]:", "port");
	/* A bare IPv6 address: the hint says how to write it. */
	check_bad_split("::1:80", "[address]:port");
	check_bad_split("[::1]80", "[address]:port");
	check_bad_split("[::1:80", "[address]:port");
	check_bad_split("host", "host:port");
	check_bad_split("", "host:port");
}

/* The host never overflows the caller's buffer. */
static void
test_split_host_too_long(void **state)
{
	char host[8];
	const char *why = NULL;
	uint16_t port = 0;

	(void)state;
	memset(host, 'x', sizeof(host));
	assert_int_equal(addr_split("12345678:80", host, sizeof(host), &port, &why), -1);
	assert_non_null(why);
	assert_non_null(strstr(why, "too long"));
	assert_int_equal(addr_split("1234567:80", host, sizeof(host), &port, &why), 0);
	assert_string_equal(host, "1234567");
	assert_int_equal(addr_split("[1:2:3:4::]:80", host, sizeof(host), &port, &why), -1);
}

static void
test_resolve_numeric(void **state)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in *sin = (const void *)&ss;
	const struct sockaddr_in6 *sin6 = (const void *)&ss;
	struct in6_addr loop6 = IN6ADDR_LOOPBACK_INIT;
	socklen_t len = 0;
	const char *why = NULL;

	(void)state;
	assert_int_equal(addr_resolve("192.0.2.7:8080", 0, &ss, &len, &why), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohl(sin->sin_addr.s_addr), 0xc0000207);
	assert_int_equal(ntohs(sin->sin_port), 8080);

	assert_int_equal(addr_resolve("[::1]:8080", 0, &ss, &len, &why), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_memory_equal(&sin6->sin6_addr, &loop6, sizeof(loop6));
	assert_int_equal(ntohs(sin6->sin6_port), 8080);

	/* Brackets force IPv6: a v4 address inside them is no address. */
	assert_int_equal(addr_resolve("[192.0.2.7]:80", 0, &ss, &len, &why), -1);
	assert_non_null(why);
	/* Syntax errors come from addr_split, with its reason. */
	why = NULL;
	assert_int_equal(addr_resolve("::1:80", 0, &ss, &len, &why), -1);
	assert_non_null(why);
	assert_non_null(strstr(why, "[address]:port"));
}

/* lbstat shows the address in use: numeric text as is, a name with it. */
static void
test_display(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(9001) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(80),
	    .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	char buf[64];

	(void)state;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_string_equal(addr_display("127.0.0.1:9001", (void *)&sin, buf, sizeof(buf)),
	    "127.0.0.1:9001");
	assert_string_equal(addr_display("localhost:9001", (void *)&sin, buf, sizeof(buf)),
	    "localhost:9001 (127.0.0.1:9001)");
	assert_string_equal(addr_display("localhost:80", (void *)&sin6, buf, sizeof(buf)),
	    "localhost:80 ([::1]:80)");
	assert_string_equal(addr_display("a-rather-long-host-name.in-some-long-subdomain.example.net:80",
	    (void *)&sin6, buf, sizeof(buf)), "[::1]:80");
}

static void
test_resolve_passive_wildcard(void **state)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in *sin = (const void *)&ss;
	const struct sockaddr_in6 *sin6 = (const void *)&ss;
	socklen_t len = 0;
	const char *why = NULL;

	(void)state;
	assert_int_equal(addr_resolve("*:80", 1, &ss, &len, &why), 0);
	if (ss.ss_family == AF_INET) {
		assert_int_equal(len, sizeof(*sin));
		assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));
		assert_int_equal(ntohs(sin->sin_port), 80);
	} else {
		assert_int_equal(ss.ss_family, AF_INET6);
		assert_int_equal(len, sizeof(*sin6));
		assert_memory_equal(&sin6->sin6_addr, &in6addr_any, sizeof(in6addr_any));
		assert_int_equal(ntohs(sin6->sin6_port), 80);
	}

	assert_int_equal(addr_resolve("0.0.0.0:81", 1, &ss, &len, &why), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(ntohs(sin->sin_port), 81);

	assert_int_equal(addr_resolve("[::]:82", 1, &ss, &len, &why), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_memory_equal(&sin6->sin6_addr, &in6addr_any, sizeof(in6addr_any));
	assert_int_equal(ntohs(sin6->sin6_port), 82);
}

static void
test_resolve_localhost(void **state)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in *sin = (const void *)&ss;
	const struct sockaddr_in6 *sin6 = (const void *)&ss;
	socklen_t len = 0;
	const char *why = NULL;

	(void)state;
	assert_int_equal(addr_resolve("localhost:9000", 0, &ss, &len, &why), 0);
	if (ss.ss_family == AF_INET) {
		assert_int_equal(ntohl(sin->sin_addr.s_addr) >> 24, 127);
		assert_int_equal(ntohs(sin->sin_port), 9000);
	} else {
		assert_int_equal(ss.ss_family, AF_INET6);
		assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
		assert_int_equal(ntohs(sin6->sin6_port), 9000);
	}
}

/* Resolve text, format it back, and get text again. */
static void
check_round_trip(const char *text)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char buf[128];
	const char *why = NULL;

	if (addr_resolve(text, 0, &ss, &len, &why) != 0)
		fail_msg("\"%s\": %s", text, why != NULL ? why : "(no reason)");
	assert_ptr_equal(addr_format((struct sockaddr *)&ss, buf, sizeof(buf)), buf);
	assert_string_equal(buf, text);
}

static void
test_format_round_trip(void **state)
{
	(void)state;
	check_round_trip("127.0.0.1:80");
	check_round_trip("[::1]:80");
	check_round_trip("192.0.2.255:65535");
	check_round_trip("[2001:db8::17]:8443");
	check_round_trip("[::ffff:192.0.2.1]:1");
	/* Formatting normalises: leading zeros and long v6 forms go. */
	{
		struct sockaddr_storage ss;
		socklen_t len;
		char buf[128];
		const char *why;

		assert_int_equal(addr_resolve("[2001:0db8:0:0:0:0:0:1]:80", 0, &ss, &len,
		    &why), 0);
		assert_string_equal(addr_format((struct sockaddr *)&ss, buf, sizeof(buf)),
		    "[2001:db8::1]:80");
	}
}

static void
test_format_other_family_and_truncation(void **state)
{
	struct sockaddr_un sun;
	struct sockaddr_in sin;
	char buf[64], small[8];

	(void)state;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_string_equal(addr_format((struct sockaddr *)&sun, buf, sizeof(buf)),
	    "(family 1)");

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(8080);
	sin.sin_addr.s_addr = htonl(0xc0000201);
	/* A short buffer gets a terminated prefix, never an overrun. */
	memset(small, 'z', sizeof(small));
	addr_format((struct sockaddr *)&sin, small, sizeof(small));
	assert_string_equal(small, "192.0.2");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_units),
		cmocka_unit_test(test_duration_limits),
		cmocka_unit_test(test_duration_rejects),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_split_good),
		cmocka_unit_test(test_split_bad),
		cmocka_unit_test(test_split_host_too_long),
		cmocka_unit_test(test_resolve_numeric),
		cmocka_unit_test(test_display),
		cmocka_unit_test(test_resolve_passive_wildcard),
		cmocka_unit_test(test_resolve_localhost),
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_format_other_family_and_truncation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
