/*
 * proxy_parse (src/proxyparse.c): PROXY v1 and v2 headers as HAProxy's
 * proxy-protocol.txt writes them, partial headers, and the malformed ones a
 * receiver must drop.  Also reads back what proxy_header() writes.
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

#include "proxyparse.h"
#include "proxyproto.h"

#define V2_SIG	"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"
#define SA(x)	((const struct sockaddr *)&(x))

static struct proxy_info info;
static size_t consumed;

static int
parse(const void *buf, size_t len)
{
	memset(&info, 0xa5, sizeof(info));
	consumed = 12345;
	return proxy_parse(buf, len, &info, &consumed);
}

static int
parse_str(const char *s)
{
	return parse(s, strlen(s));
}

static void
assert_v4(const struct sockaddr_storage *ss, const char *addr, uint16_t port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	char text[INET_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, AF_INET);
	assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text)));
	assert_string_equal(text, addr);
	assert_int_equal(ntohs(sin->sin_port), port);
}

static void
assert_v6(const struct sockaddr_storage *ss, const char *addr, uint16_t port)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	char text[INET6_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, AF_INET6);
	assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text)));
	assert_string_equal(text, addr);
	assert_int_equal(ntohs(sin6->sin6_port), port);
}

static void
test_v1_tcp4(void **state)
{
	const char *line = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";

	(void)state;
	assert_int_equal(parse_str(line), 1);
	assert_int_equal(consumed, strlen(line) - strlen("GET /"));
	assert_int_equal(info.version, 1);
	assert_int_equal(info.local, 0);
	assert_int_equal(info.socktype, SOCK_STREAM);
	assert_v4(&info.src, "192.0.2.1", 56324);
	assert_v4(&info.dst, "198.51.100.2", 443);
	assert_int_equal(parse_str("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), 1);
	assert_v4(&info.src, "0.0.0.0", 0);
	assert_v4(&info.dst, "255.255.255.255", 65535);
}

static void
test_v1_tcp6(void **state)
{
	const char *longest = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";

	(void)state;
	assert_int_equal(parse_str("PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 1 80\r\n"), 1);
	assert_int_equal(info.version, 1);
	assert_v6(&info.src, "2001:db8::1", 1);
	assert_v6(&info.dst, "::ffff:192.0.2.1", 80);
	assert_int_equal(parse_str(longest), 1);
	assert_int_equal(consumed, strlen(longest));
}

static void
test_v1_unknown(void **state)
{
	(void)state;
	assert_int_equal(parse_str("PROXY UNKNOWN\r\n"), 1);
	assert_int_equal(consumed, 15);
	assert_int_equal(info.version, 1);
	assert_int_equal(info.socktype, 0);
	assert_int_equal(info.src.ss_family, AF_UNSPEC);
	assert_int_equal(info.dst.ss_family, AF_UNSPEC);
	/* Whatever follows UNKNOWN up to the CRLF is ignored. */
	assert_int_equal(parse_str("PROXY UNKNOWN ffff::1 ::1 1 2\r\n"), 1);
	assert_int_equal(info.src.ss_family, AF_UNSPEC);
	assert_int_equal(parse_str("PROXY UNKNOWNX\r\n"), -1);
}

static void
test_v1_partial(void **state)
{
	const char *line = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
	char big[PROXY_V1_LINE_MAX + 1];
	size_t i;

	(void)state;
	for (i = 0; i < strlen(line); i++)
		assert_int_equal(parse(line, i), 0);
	assert_int_equal(consumed, 12345);	/* untouched */
	/* 107 bytes and still no CRLF: not a v1 header. */
	memset(big, 'x', sizeof(big));
	memcpy(big, "PROXY UNKNOWN ", 14);
	assert_int_equal(parse(big, PROXY_V1_LINE_MAX - 1), 0);
	assert_int_equal(parse(big, PROXY_V1_LINE_MAX), -1);
	/* A CRLF as the 106th and 107th bytes is the longest line allowed. */
	big[PROXY_V1_LINE_MAX - 2] = '\r';
	big[PROXY_V1_LINE_MAX - 1] = '\n';
	assert_int_equal(parse(big, sizeof(big)), 1);
	assert_int_equal(consumed, PROXY_V1_LINE_MAX);
	big[PROXY_V1_LINE_MAX - 1] = '\r';
	big[PROXY_V1_LINE_MAX] = '\n';
	assert_int_equal(parse(big, sizeof(big)), -1);
}

static void
test_v1_malformed(void **state)
{
	static const char *const bad[] = {
		"PROXY\r\n",
		"PROXY \r\n",
		"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",		/* bare LF */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",		/* trailing blank */
		"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",		/* two blanks */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",		/* leading zero */
		"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 100000 2\r\n",
		"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
		"PROXY TCP4 ::1 ::1 1 2\r\n",			/* family mismatch */
		"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP6 [::1] ::1 1 2\r\n",
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"XPROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXX",
		"GET / HTTP/1.0\r\n",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse_str(bad[i]) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(consumed, 12345);
	}
	/* An embedded NUL. */
	assert_int_equal(parse("PROXY UNKNOWN\0\r\n", 16), -1);
}

static void
test_v2_ipv4_with_tlv(void **state)
{
	static const unsigned char hdr[] = {
		0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
		0x21, 0x11, 0x00, 0x12,			/* PROXY, TCP4, 18 bytes */
		192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb,
		0x04, 0x00, 0x03, 'a', 'b', 'c',	/* a NOOP TLV */
		'G', 'E', 'T',				/* the client's first bytes */
	};
	size_t i;

	(void)state;
	assert_int_equal(parse(hdr, sizeof(hdr)), 1);
	assert_int_equal(consumed, 16 + 18);
	assert_int_equal(info.version, 2);
	assert_int_equal(info.local, 0);
	assert_int_equal(info.socktype, SOCK_STREAM);
	assert_v4(&info.src, "192.0.2.1", 56324);
	assert_v4(&info.dst, "198.51.100.2", 443);
	for (i = 0; i < 16 + 18; i++)
		assert_int_equal(parse(hdr, i), 0);
}

static void
test_v2_ipv6_udp(void **state)
{
	unsigned char hdr[16 + 36];

	(void)state;
	memcpy(hdr, V2_SIG "\x21\x22\x00\x24", 16);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", hdr + 16), 1);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::2", hdr + 32), 1);
	memcpy(hdr + 48, "\x00\x35\xff\xff", 4);
	assert_int_equal(parse(hdr, sizeof(hdr)), 1);
	assert_int_equal(info.socktype, SOCK_DGRAM);
	assert_v6(&info.src, "2001:db8::1", 53);
	assert_v6(&info.dst, "2001:db8::2", 65535);
	/* An address block shorter than the family's is refused. */
	hdr[15] = 35;
	assert_int_equal(parse(hdr, sizeof(hdr)), -1);
}

static void
test_v2_local_and_unspec(void **state)
{
	unsigned char hdr[16 + 12];

	(void)state;
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, V2_SIG "\x20\x00\x00\x00", 16);
	assert_int_equal(parse(hdr, 16), 1);
	assert_int_equal(consumed, 16);
	assert_int_equal(info.local, 1);
	assert_int_equal(info.src.ss_family, AF_UNSPEC);
	/* LOCAL skips its block, even one too short for the family it names. */
	memcpy(hdr, V2_SIG "\x20\x11\x00\x04", 16);
	assert_int_equal(parse(hdr, 20), 1);
	assert_int_equal(consumed, 20);
	assert_int_equal(info.src.ss_family, AF_UNSPEC);
	/* PROXY over UNSPEC or UNIX: accepted, with no address to use. */
	memcpy(hdr, V2_SIG "\x21\x00\x00\x0c", 16);
	assert_int_equal(parse(hdr, sizeof(hdr)), 1);
	assert_int_equal(info.local, 0);
	assert_int_equal(info.src.ss_family, AF_UNSPEC);
	memcpy(hdr, V2_SIG "\x21\x31\x00\x0c", 16);
	assert_int_equal(parse(hdr, sizeof(hdr)), -1);		/* UNIX needs 216 */
}

static void
test_v2_malformed(void **state)
{
	static const unsigned char bad_ver[] = { 0x11, 0x22, 0x31, 0x01, 0x2f, 0x00 };
	static const unsigned char bad_fam[] = { 0x01, 0x10, 0x13, 0x20, 0x23, 0x30, 0x41, 0xff };
	unsigned char hdr[16 + 12];
	size_t i;

	(void)state;
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, V2_SIG "\x21\x11\x00\x0c", 16);
	for (i = 0; i < sizeof(bad_ver); i++) {
		hdr[12] = bad_ver[i];
		assert_int_equal(parse(hdr, 13), -1);
		assert_int_equal(parse(hdr, sizeof(hdr)), -1);
	}
	hdr[12] = 0x21;
	for (i = 0; i < sizeof(bad_fam); i++) {
		hdr[13] = bad_fam[i];
		assert_int_equal(parse(hdr, 14), -1);
		assert_int_equal(parse(hdr, sizeof(hdr)), -1);
	}
	hdr[13] = 0x11;
	hdr[5] = 0x0c;					/* a wrong signature byte */
	assert_int_equal(parse(hdr, 6), -1);
	assert_int_equal(parse(hdr, 5), 0);
	assert_int_equal(parse("\x0d\x0a\x0d\x0a\x00\x0d", 6), 0);
}

static void
test_v2_length_bound(void **state)
{
	size_t len = 16 + 65535;
	unsigned char *hdr = calloc(1, len);

	(void)state;
	assert_non_null(hdr);
	memcpy(hdr, V2_SIG "\x21\x11\xff\xff", 16);
	assert_int_equal(parse(hdr, len - 1), 0);
	assert_int_equal(parse(hdr, len), 1);
	assert_int_equal(consumed, len);
	free(hdr);
}

/* What proxy_header() writes, proxy_parse() reads back unchanged. */
static void
test_round_trip(void **state)
{
	struct sockaddr_in s4, d4;
	struct sockaddr_in6 s6, d6;
	unsigned char buf[PROXY_HEADER_MAX];
	enum lbd_proxy_protocol v;
	size_t n;

	(void)state;
	memset(&s4, 0, sizeof(s4));
	memset(&s6, 0, sizeof(s6));
	s4.sin_family = AF_INET;
	s4.sin_port = htons(56324);
	s4.sin_addr.s_addr = htonl(0xc0000201);
	d4 = s4;
	d4.sin_port = htons(443);
	s6.sin6_family = AF_INET6;
	s6.sin6_port = htons(1);
	s6.sin6_addr.s6_addr[15] = 1;
	d6 = s6;
	for (v = LBD_PROXY_V1; v <= LBD_PROXY_V2; v++) {
		n = proxy_header(v, SA(s4), SA(d4), buf, sizeof(buf));
		assert_int_equal(parse(buf, n), 1);
		assert_int_equal(consumed, n);
		assert_int_equal(info.version, (int)v);
		assert_v4(&info.src, "192.0.2.1", 56324);
		assert_v4(&info.dst, "192.0.2.1", 443);
		n = proxy_header(v, SA(s6), SA(d6), buf, sizeof(buf));
		assert_int_equal(parse(buf, n), 1);
		assert_v6(&info.src, "::1", 1);
		assert_v6(&info.dst, "::1", 1);
		n = proxy_header(v, SA(s4), SA(d6), buf, sizeof(buf));
		assert_int_equal(parse(buf, n), 1);
		assert_int_equal(info.src.ss_family, AF_UNSPEC);
		assert_int_equal(info.local, v == LBD_PROXY_V2);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_tcp4),
		cmocka_unit_test(test_v1_tcp6),
		cmocka_unit_test(test_v1_unknown),
		cmocka_unit_test(test_v1_partial),
		cmocka_unit_test(test_v1_malformed),
		cmocka_unit_test(test_v2_ipv4_with_tlv),
		cmocka_unit_test(test_v2_ipv6_udp),
		cmocka_unit_test(test_v2_local_and_unspec),
		cmocka_unit_test(test_v2_malformed),
		cmocka_unit_test(test_v2_length_bound),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
