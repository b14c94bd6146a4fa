/*
 * PROXY protocol headers (src/proxyproto.c) against HAProxy's
 * proxy-protocol.txt: v1 text lines and v2 binary headers, byte for byte.
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
#include <sys/un.h>

#include <cmocka.h>

#include "proxyproto.h"

static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

static struct sockaddr_in
v4(const char *text, uint16_t port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, text, &sin.sin_addr), 1);
	return sin;
}

static struct sockaddr_in6
v6(const char *text, uint16_t port)
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1);
	return sin6;
}

#define SA(x)	((const struct sockaddr *)&(x))

static void
check_v1(const struct sockaddr *src, const struct sockaddr *dst, const char *want)
{
	unsigned char buf[PROXY_HEADER_MAX];
	size_t n;

	memset(buf, 0xa5, sizeof(buf));
	n = proxy_header(LBD_PROXY_V1, src, dst, buf, sizeof(buf));
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, n);
}

static void
test_v1_tcp4(void **state)
{
	struct sockaddr_in src = v4("192.0.2.1", 56324), dst = v4("198.51.100.2", 443);

	(void)state;
	check_v1(SA(src), SA(dst), "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
	src = v4("255.255.255.255", 65535);
	dst = v4("0.0.0.0", 1);
	check_v1(SA(src), SA(dst), "PROXY TCP4 255.255.255.255 0.0.0.0 65535 1\r\n");
}

static void
test_v1_tcp6(void **state)
{
	struct sockaddr_in6 src = v6("2001:db8::1", 56324), dst = v6("2001:db8:0:0:0:0:0:2", 443);
	struct sockaddr_in6 big = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	unsigned char buf[PROXY_HEADER_MAX];
	size_t n;

	(void)state;
	check_v1(SA(src), SA(dst), "PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n");
	/* The longest possible line still fits PROXY_HEADER_MAX. */
	n = proxy_header(LBD_PROXY_V1, SA(big), SA(big), buf, sizeof(buf));
	assert_int_equal(n, strlen("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"));
	assert_true(n <= PROXY_HEADER_MAX);
}

static void
test_v1_mixed_is_unknown(void **state)
{
	struct sockaddr_in s4 = v4("192.0.2.1", 1000);
	struct sockaddr_in6 s6 = v6("2001:db8::1", 443);
	struct sockaddr_un sun;

	(void)state;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	check_v1(SA(s4), SA(s6), "PROXY UNKNOWN\r\n");
	check_v1(SA(s6), SA(s4), "PROXY UNKNOWN\r\n");
	check_v1(SA(sun), SA(sun), "PROXY UNKNOWN\r\n");
}

static void
test_v2_ipv4(void **state)
{
	struct sockaddr_in src = v4("192.0.2.1", 56324), dst = v4("198.51.100.2", 443);
	static const unsigned char want[] = {
		0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
		0x21,			/* version 2, PROXY */
		0x11,			/* AF_INET, STREAM */
		0x00, 0x0c,		/* 12 address bytes */
		192, 0, 2, 1,
		198, 51, 100, 2,
		0xdc, 0x04,		/* 56324 */
		0x01, 0xbb,		/* 443 */
	};
	unsigned char buf[PROXY_HEADER_MAX];
	size_t n;

	(void)state;
	memset(buf, 0xa5, sizeof(buf));
	n = proxy_header(LBD_PROXY_V2, SA(src), SA(dst), buf, sizeof(buf));
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

static void
test_v2_ipv6(void **state)
{
	struct sockaddr_in6 src = v6("2001:db8::1", 56324), dst = v6("2001:db8::2", 443);
	unsigned char buf[PROXY_HEADER_MAX];
	size_t n;

	(void)state;
	memset(buf, 0xa5, sizeof(buf));
	n = proxy_header(LBD_PROXY_V2, SA(src), SA(dst), buf, sizeof(buf));
	assert_int_equal(n, 16 + 36);
	assert_memory_equal(buf, v2_sig, sizeof(v2_sig));
	assert_int_equal(buf[12], 0x21);
	assert_int_equal(buf[13], 0x21);	/* AF_INET6, STREAM */
	assert_int_equal(buf[14], 0x00);
	assert_int_equal(buf[15], 36);
	assert_memory_equal(buf + 16, &src.sin6_addr, 16);
	assert_memory_equal(buf + 32, &dst.sin6_addr, 16);
	assert_int_equal(buf[48], 0xdc);
	assert_int_equal(buf[49], 0x04);
	assert_int_equal(buf[50], 0x01);
	assert_int_equal(buf[51], 0xbb);
	/* Byte for byte: 2001:0db8:: ... 01 */
	assert_int_equal(buf[16], 0x20);
	assert_int_equal(buf[17], 0x01);
	assert_int_equal(buf[18], 0x0d);
	assert_int_equal(buf[19], 0xb8);
	assert_int_equal(buf[31], 0x01);
	assert_int_equal(buf[47], 0x02);
}

static void
test_v2_mixed_is_local(void **state)
{
	struct sockaddr_in s4 = v4("192.0.2.1", 1000);
	struct sockaddr_in6 s6 = v6("2001:db8::1", 443);
	unsigned char buf[PROXY_HEADER_MAX];
	size_t n;

	(void)state;
	n = proxy_header(LBD_PROXY_V2, SA(s4), SA(s6), buf, sizeof(buf));
	assert_int_equal(n, 16);
	assert_memory_equal(buf, v2_sig, sizeof(v2_sig));
	assert_int_equal(buf[12], 0x20);	/* version 2, LOCAL */
	assert_int_equal(buf[13], 0x00);	/* AF_UNSPEC */
	assert_int_equal(buf[14], 0x00);
	assert_int_equal(buf[15], 0x00);
	n = proxy_header(LBD_PROXY_V2, SA(s6), SA(s4), buf, sizeof(buf));
	assert_int_equal(n, 16);
	assert_int_equal(buf[12], 0x20);
}

static void
test_too_small(void **state)
{
	struct sockaddr_in s4 = v4("192.0.2.1", 56324), d4 = v4("198.51.100.2", 443);
	struct sockaddr_in6 s6 = v6("2001:db8::1", 56324), d6 = v6("2001:db8::2", 443);
	unsigned char buf[PROXY_HEADER_MAX];
	size_t v1len = strlen("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");

	(void)state;
	assert_int_equal(proxy_header(LBD_PROXY_V1, SA(s4), SA(d4), buf, 10), 0);
	assert_int_equal(proxy_header(LBD_PROXY_V1, SA(s4), SA(d4), buf, v1len - 1), 0);
	assert_int_equal(proxy_header(LBD_PROXY_V1, SA(s4), SA(d4), buf, v1len + 1), v1len);
	assert_int_equal(proxy_header(LBD_PROXY_V1, SA(s4), SA(d4), buf, 0), 0);
	assert_int_equal(proxy_header(LBD_PROXY_V2, SA(s6), SA(d6), buf, 51), 0);
	assert_int_equal(proxy_header(LBD_PROXY_V2, SA(s6), SA(d6), buf, 52), 52);
	assert_int_equal(proxy_header(LBD_PROXY_V2, SA(s4), SA(d4), buf, 10), 0);
	assert_int_equal(proxy_header(LBD_PROXY_V2, SA(s4), SA(d4), buf, 0), 0);
}

static void
test_off_writes_nothing(void **state)
{
	struct sockaddr_in s4 = v4("192.0.2.1", 56324), d4 = v4("198.51.100.2", 443);
	unsigned char buf[PROXY_HEADER_MAX], untouched[PROXY_HEADER_MAX];

	(void)state;
	memset(buf, 0xa5, sizeof(buf));
	memset(untouched, 0xa5, sizeof(untouched));
	assert_int_equal(proxy_header(LBD_PROXY_OFF, SA(s4), SA(d4), buf, sizeof(buf)), 0);
	assert_memory_equal(buf, untouched, sizeof(buf));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_tcp4),
		cmocka_unit_test(test_v1_tcp6),
		cmocka_unit_test(test_v1_mixed_is_unknown),
		cmocka_unit_test(test_v2_ipv4),
		cmocka_unit_test(test_v2_ipv6),
		cmocka_unit_test(test_v2_mixed_is_local),
		cmocka_unit_test(test_too_small),
		cmocka_unit_test(test_off_writes_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
