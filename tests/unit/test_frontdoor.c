/*
 * frontdoor (src/frontdoor.c): PROXY headers on and off, SNI routing over
 * real ClientHellos (tests/unit/sni_vectors.h), allow and deny lists
 * checked against the effective client, and the order of the verdicts.
 * Every feed gets an exact-size heap copy of the bytes so far.
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

#include "frontdoor.h"
#include "proxyproto.h"
#include "sni_vectors.h"

#define V2_SIG	"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"

static struct frontdoor_result res;

static struct sockaddr_storage
addr(const char *text, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':') != NULL) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
	} else {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		assert_int_equal(inet_pton(AF_INET, text, &sin->sin_addr), 1);
	}
	return ss;
}

/* The effective client address as text. */
static const char *
client_text(void)
{
	static char buf[INET6_ADDRSTRLEN];
	const void *a = res.client.ss_family == AF_INET ?
	    (const void *)&((struct sockaddr_in *)&res.client)->sin_addr :
	    (const void *)&((struct sockaddr_in6 *)&res.client)->sin6_addr;

	return inet_ntop(res.client.ss_family, a, buf, sizeof(buf));
}

static enum frontdoor_verdict
feed(struct frontdoor *door, const void *buf, size_t len)
{
	unsigned char *copy = malloc(len ? len : 1);
	enum frontdoor_verdict v;

	assert_non_null(copy);
	if (len > 0)
		memcpy(copy, buf, len);
	v = frontdoor_feed(door, copy, len, &res);
	free(copy);
	return v;
}

static void
set_of(struct cidr_set *set, const char *text)
{
	const char *why;

	memset(set, 0, sizeof(*set));
	assert_int_equal(cidr_set_add(set, text, &why), 0);
	cidr_set_finish(set);
}

/* A listener of one plain service: nothing to read, accepted at once. */
static void
test_plain(void **state)
{
	struct frontdoor_candidate c = { .service = 7 };
	struct frontdoor_conf conf = { .candidates = &c, .ncandidates = 1 };
	struct sockaddr_storage peer = addr("127.0.0.1", 40000);
	struct frontdoor door;

	(void)state;
	frontdoor_init(&door, &conf, (struct sockaddr *)&peer, sizeof(struct sockaddr_in));
	assert_int_equal(feed(&door, NULL, 0), FRONTDOOR_ACCEPT);
	assert_int_equal(res.service, 7);
	assert_int_equal(res.skip, 0);
	assert_string_equal(client_text(), "127.0.0.1");
	assert_int_equal(res.sni, SNI_NEED_MORE);	/* not read */
}

static void
test_proxy_v1(void **state)
{
	static const char hdr[] = "PROXY TCP4 192.0.2.1 198.51.100.2 5000 443\r\n";
	struct frontdoor_candidate c = { .service = 1 };
	struct frontdoor_conf conf = { .accept_proxy = 1, .candidates = &c, .ncandidates = 1 };
	struct sockaddr_storage peer = addr("127.0.0.1", 40000);
	struct frontdoor door;
	char buf[128];
	size_t k, n = strlen(hdr);

	(void)state;
	frontdoor_init(&door, &conf, (struct sockaddr *)&peer, sizeof(peer));
	snprintf(buf, sizeof(buf), "%sGET / HTTP/1.0\r\n\r\n", hdr);
	for (k = 0; k < n; k++)
		assert_int_equal(feed(&door, buf, k), FRONTDOOR_NEED_MORE);
	assert_int_equal(feed(&door, buf, n), FRONTDOOR_ACCEPT);
	assert_int_equal(res.skip, n);
	assert_string_equal(client_text(), "192.0.2.1");
	assert_int_equal(ntohs(((struct sockaddr_in *)&res.client)->sin_port), 5000);
	/* The same verdict with the request behind it. */
	frontdoor_init(&door, &conf, (struct sockaddr *)&peer, sizeof(peer));
	assert_int_equal(feed(&door, buf, strlen(buf)), FRONTDOOR_ACCEPT);
	assert_int_equal(res.skip, n);
}

static void
test_proxy_v2(void **state)
{
	struct frontdoor_candidate c = { .service = 2 };
	struct frontdoor_conf conf = { .accept_proxy = 1, .candidates = &c, .ncandidates = 1 };
	struct sockaddr_storage peer = addr("::1", 40000);
	struct sockaddr_storage src = addr("2001:db8::7", 1234), dst = addr("2001:db8::1", 443);
	unsigned char buf[PROXY_HEADER_MAX + 8];
	struct frontdoor door;
	size_t n, k;

	(void)state;
	n = proxy_header(LBD_PROXY_V2, (struct sockaddr *)&src, (struct sockaddr *)&dst,
	    buf, sizeof(buf));
	assert_true(n > 16);
	frontdoor_init(&door, &conf, (struct sockaddr *)&peer, sizeof(peer));
	for (k = 0; k < n; k++)
		assert_int_equal(feed(&door, buf, k), FRONTDOOR_NEED_MORE);
	assert_int_equal(feed(&door, buf, n), FRONTDOOR_ACCEPT);
	assert_int_equal(res.skip, n);
	assert_string_equal(client_text(), "2001:db8::7");
	/* LOCAL: the proxy's own connection, its peer stays the client. */
	memcpy(buf, V2_SIG "\x20\x00\x00\x00", 16);
	frontdoor_init(&door, &conf, (struct sockaddr *)&peer, sizeof(peer));
	assert_int_equal(feed(&door, buf, 16), FRONTDOOR_ACCEPT);
	assert_int_equal(res.skip, 16);
	assert_string_equal(client_text(), "::1");
}

static void
expect_proxy_error(const void *buf, size_t len)
{
	struct frontdoor_candidate c = { .service = 0 };
	struct frontdoor_conf conf = { .accept_proxy = 1, .candidates = &c, .ncandidates = 1 };
	struct sockaddr_storage peer = addr("127.0.0.1", 1);
	struct frontdoor door;

	frontdoor_init(&door, &conf, (struct sockaddr *)&peer, sizeof(peer));
	assert_int_equal(feed(&door, buf, len), FRONTDOOR_REJECT);
	assert_int_equal(res.reason, FRONTDOOR_PROXY_ERROR);
	assert_string_equal(frontdoor_reason_name(res.reason), "proxy_error");
	assert_string_equal(client_text(), "127.0.0.1");
}

static void
test_proxy_errors(void **state)
{
	unsigned char big[FRONTDOOR_PROXY_MAX + 10];

	(void)state;
	expect_proxy_error(openssl_tls13_sni, sizeof(openssl_tls13_sni));	/* no header */
	expect_proxy_error("GET / HTTP/1.0\r\n", 16);
	expect_proxy_error("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 31);		/* bare LF */
	expect_proxy_error("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", 33);
	expect_proxy_error(V2_SIG "\x22\x11\x00\x0c", 16);			/* version 2, cmd 2 */
	/* A v2 header announcing more than the bound: refused from its 16 bytes. */
	expect_proxy_error(V2_SIG "\x21\x11\x10\x00", 16);
	/* A v1 line that never ends. */
	memset(big, 'x', sizeof(big));
	memcpy(big, "PROXY ", 6);
	expect_proxy_error(big, 200);
}

/*
 * The name routes: exam -> 10 (denies 10/8), *.example.org -> 11 (allows
 * only 10.1/16 and 127/8), the rest -> 12 (no lists).
 */
static const char *const names_a[] = { "exam.example.com" };
static const char *const names_b[] = { "*.example.org" };

struct three {
	struct sniroute rt;
	struct frontdoor_candidate c[3];
	struct frontdoor_conf conf;
	struct cidr_set deny_a, allow_b;
};

static void
three_build(struct three *t, int with_default, int accept_proxy)
{
	const struct sniroute_input in[3] = { { names_a, 1 }, { names_b, 1 }, { NULL, 0 } };
	struct sniroute_error err;
	const char *why;

	memset(t, 0, sizeof(*t));
	assert_int_equal(sniroute_build(&t->rt, in, with_default ? 3 : 2, &err), SNIROUTE_OK);
	set_of(&t->deny_a, "10.0.0.0/8");
	set_of(&t->allow_b, "10.1.0.0/16");
	assert_int_equal(cidr_set_add(&t->allow_b, "127.0.0.0/8", &why), 0);
	cidr_set_finish(&t->allow_b);
	t->c[0] = (struct frontdoor_candidate){ .service = 10, .deny = &t->deny_a };
	t->c[1] = (struct frontdoor_candidate){ .service = 11, .allow = &t->allow_b };
	t->c[2] = (struct frontdoor_candidate){ .service = 12 };
	t->conf = (struct frontdoor_conf){ .accept_proxy = accept_proxy, .route = &t->rt,
	    .candidates = t->c, .ncandidates = with_default ? 3 : 2 };
}

static void
three_free(struct three *t)
{
	sniroute_free(&t->rt);
	cidr_set_free(&t->deny_a);
	cidr_set_free(&t->allow_b);
}

static enum frontdoor_verdict
route(struct three *t, const char *client, const void *buf, size_t len)
{
	struct sockaddr_storage peer = addr(client, 40000);
	struct frontdoor door;

	frontdoor_init(&door, &t->conf, (struct sockaddr *)&peer, sizeof(peer));
	return feed(&door, buf, len);
}

static void
test_sni_routing(void **state)
{
	struct three t;
	size_t k;

	(void)state;
	three_build(&t, 1, 0);
	assert_int_equal(route(&t, "127.0.0.1", openssl_tls13_sni, sizeof(openssl_tls13_sni)),
	    FRONTDOOR_ACCEPT);
	assert_int_equal(res.service, 10);
	assert_int_equal(res.sni, SNI_FOUND);
	assert_string_equal(res.name, "exam.example.com");
	assert_int_equal(res.skip, 0);
	assert_int_equal(route(&t, "127.0.0.1", curl_tls12_sni, sizeof(curl_tls12_sni)),
	    FRONTDOOR_ACCEPT);
	assert_int_equal(res.service, 11);
	/* No SNI, not TLS: the default. */
	assert_int_equal(route(&t, "127.0.0.1", openssl_tls12_nosni,
	    sizeof(openssl_tls12_nosni)), FRONTDOOR_ACCEPT);
	assert_int_equal(res.service, 12);
	assert_int_equal(res.sni, SNI_NO_SNI);
	assert_int_equal(route(&t, "127.0.0.1", "GET / HTTP/1.1\r\n", 16), FRONTDOOR_ACCEPT);
	assert_int_equal(res.service, 12);
	assert_int_equal(res.sni, SNI_NOT_TLS);
	/* Nothing yet, or part of a hello: wait. */
	assert_int_equal(route(&t, "127.0.0.1", NULL, 0), FRONTDOOR_NEED_MORE);
	for (k = 1; k < sizeof(curl_tls13_sni); k += 17)
		assert_int_equal(route(&t, "127.0.0.1", curl_tls13_sni, k), FRONTDOOR_NEED_MORE);
	/* A malformed one is refused, even with a default. */
	assert_int_equal(route(&t, "127.0.0.1", "\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", 10),
	    FRONTDOOR_REJECT);
	assert_int_equal(res.reason, FRONTDOOR_BAD_HELLO);
	three_free(&t);
}

static void
test_sni_miss(void **state)
{
	struct three t;

	(void)state;
	three_build(&t, 0, 0);
	assert_int_equal(route(&t, "127.0.0.1", openssl_tls13_nosni,
	    sizeof(openssl_tls13_nosni)), FRONTDOOR_REJECT);
	assert_int_equal(res.reason, FRONTDOOR_SNI_MISS);
	assert_int_equal(route(&t, "127.0.0.1", "SSH-2.0-x\r\n", 11), FRONTDOOR_REJECT);
	assert_int_equal(res.reason, FRONTDOOR_SNI_MISS);
	/* curl's hello names mixed.example.org: *.example.org takes it. */
	assert_int_equal(route(&t, "127.0.0.1", curl_tls13_sni, sizeof(curl_tls13_sni)),
	    FRONTDOOR_ACCEPT);
	assert_int_equal(res.service, 11);
	three_free(&t);
}

/* Lists are the chosen service's: 10.2.3.4 is denied by exam, not by the default. */
static void
test_lists_per_service(void **state)
{
	struct three t;

	(void)state;
	three_build(&t, 1, 0);
	assert_int_equal(route(&t, "10.2.3.4", openssl_tls13_sni, sizeof(openssl_tls13_sni)),
	    FRONTDOOR_REJECT);
	assert_int_equal(res.reason, FRONTDOOR_DENIED);
	assert_string_equal(client_text(), "10.2.3.4");
	assert_int_equal(route(&t, "10.2.3.4", openssl_tls13_nosni,
	    sizeof(openssl_tls13_nosni)), FRONTDOOR_ACCEPT);
	assert_int_equal(res.service, 12);
	/* *.example.org allows only 10.1.0.0/16. */
	assert_int_equal(route(&t, "10.1.9.9", curl_tls12_sni, sizeof(curl_tls12_sni)),
	    FRONTDOOR_ACCEPT);
	assert_int_equal(res.service, 11);
	assert_int_equal(route(&t, "10.2.9.9", curl_tls12_sni, sizeof(curl_tls12_sni)),
	    FRONTDOOR_REJECT);
	assert_int_equal(res.reason, FRONTDOOR_DENIED);
	/* An IPv4-mapped IPv6 client is its IPv4 address. */
	assert_int_equal(route(&t, "::ffff:10.2.3.4", openssl_tls13_sni,
	    sizeof(openssl_tls13_sni)), FRONTDOOR_REJECT);
	assert_int_equal(res.reason, FRONTDOOR_DENIED);
	three_free(&t);
}

/* Denied by every candidate: refused before any ClientHello. */
static void
test_denied_at_once(void **state)
{
	struct three t;

	(void)state;
	three_build(&t, 0, 0);
	assert_int_equal(route(&t, "10.2.3.4", NULL, 0), FRONTDOOR_REJECT);
	assert_int_equal(res.reason, FRONTDOOR_DENIED);
	assert_int_equal(route(&t, "10.1.3.4", NULL, 0), FRONTDOOR_NEED_MORE);
	three_free(&t);
}

/* With accept-proxy, the header's source is what the lists judge. */
static void
test_proxy_then_sni(void **state)
{
	static const char hdr[] = "PROXY TCP4 10.2.3.4 127.0.0.1 5000 443\r\n";
	unsigned char buf[1024];
	struct three t;
	size_t n = strlen(hdr), k, total;

	(void)state;
	three_build(&t, 1, 1);
	memcpy(buf, hdr, n);
	memcpy(buf + n, curl_tls12_sni, sizeof(curl_tls12_sni));
	total = n + sizeof(curl_tls12_sni);
	for (k = 0; k < total; k++)
		assert_int_equal(route(&t, "127.0.0.1", buf, k), FRONTDOOR_NEED_MORE);
	/* 10.2.3.4 is outside *.example.org's allow list; the peer 127.0.0.1 is not. */
	assert_int_equal(route(&t, "127.0.0.1", buf, total), FRONTDOOR_REJECT);
	assert_int_equal(res.reason, FRONTDOOR_DENIED);
	assert_string_equal(client_text(), "10.2.3.4");
	memcpy(buf, "PROXY TCP4 10.1.3.4", 19);
	assert_int_equal(route(&t, "10.2.3.4", buf, total), FRONTDOOR_ACCEPT);
	assert_int_equal(res.service, 11);
	assert_int_equal(res.skip, n);
	assert_string_equal(client_text(), "10.1.3.4");
	/* The bytes after the header are the hello, unchanged. */
	assert_memory_equal(buf + res.skip, curl_tls12_sni, sizeof(curl_tls12_sni));
	/* Denied by all: refused right after the header. */
	memcpy(buf, "PROXY TCP4 10.2.3.4", 19);
	three_free(&t);
	three_build(&t, 0, 1);
	assert_int_equal(route(&t, "127.0.0.1", buf, n), FRONTDOOR_REJECT);
	assert_int_equal(res.reason, FRONTDOOR_DENIED);
	three_free(&t);
}

/* A hello over the bound, after a PROXY header: refused, not waited for. */
static void
test_bounds(void **state)
{
	unsigned char *buf = calloc(1, FRONTDOOR_INPUT_MAX);
	struct three t;
	size_t n;

	(void)state;
	assert_non_null(buf);
	three_build(&t, 1, 1);
	n = (size_t)snprintf((char *)buf, 64, "PROXY UNKNOWN\r\n");
	memcpy(buf + n, "\x16\x03\x01\x40\x00\x01\x00\x3f\xf0\x03\x03", 11);
	assert_int_equal(route(&t, "127.0.0.1", buf, n + 11), FRONTDOOR_NEED_MORE);
	assert_int_equal(route(&t, "127.0.0.1", buf, n + SNI_INPUT_MAX), FRONTDOOR_REJECT);
	assert_int_equal(res.reason, FRONTDOOR_BAD_HELLO);
	assert_int_equal(route(&t, "127.0.0.1", buf, FRONTDOOR_INPUT_MAX), FRONTDOOR_REJECT);
	three_free(&t);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_proxy_v1),
		cmocka_unit_test(test_proxy_v2),
		cmocka_unit_test(test_proxy_errors),
		cmocka_unit_test(test_sni_routing),
		cmocka_unit_test(test_sni_miss),
		cmocka_unit_test(test_lists_per_service),
		cmocka_unit_test(test_denied_at_once),
		cmocka_unit_test(test_proxy_then_sni),
		cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
