/*
 * httpreq: the request heads lbstat -l accepts, and every way one is
 * refused (incomplete, oversized, malformed, a target too long).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "httpreq.h"

#define MAX	8192

static enum httpreq_status
parse(const char *text, struct httpreq *req)
{
	return httpreq_parse(text, strlen(text), MAX, req);
}

static void
test_get(void **state)
{
	const char *text = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\nrest";
	struct httpreq req;

	(void)state;
	assert_int_equal(parse(text, &req), HTTPREQ_DONE);
	assert_int_equal(req.method, HTTPREQ_GET);
	assert_string_equal(req.path, "/metrics");
	assert_int_equal(req.minor, 1);
	assert_int_equal(req.head_len, strlen(text) - 4);
}

static void
test_methods_and_query(void **state)
{
	struct httpreq req;

	(void)state;
	assert_int_equal(parse("HEAD /stats.json?t=17#x HTTP/1.0\n\n", &req), HTTPREQ_DONE);
	assert_int_equal(req.method, HTTPREQ_HEAD);
	assert_string_equal(req.path, "/stats.json");
	assert_int_equal(req.minor, 0);
	assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", &req),
	    HTTPREQ_DONE);
	assert_int_equal(req.method, HTTPREQ_OTHER);
	/* Methods are case-sensitive (RFC 9110 9.1). */
	assert_int_equal(parse("get / HTTP/1.1\r\n\r\n", &req), HTTPREQ_DONE);
	assert_int_equal(req.method, HTTPREQ_OTHER);
}

static void
test_partial(void **state)
{
	struct httpreq req;

	(void)state;
	assert_int_equal(parse("", &req), HTTPREQ_PARTIAL);
	assert_int_equal(parse("GET / HTTP/1.1\r\n", &req), HTTPREQ_PARTIAL);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\n\r", &req), HTTPREQ_PARTIAL);
}

static void
test_too_large(void **state)
{
	char *buf = malloc(MAX + 16);
	struct httpreq req;

	(void)state;
	assert_non_null(buf);
	memset(buf, 'a', MAX + 16);
	memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
	assert_int_equal(httpreq_parse(buf, MAX - 1, MAX, &req), HTTPREQ_PARTIAL);
	assert_int_equal(httpreq_parse(buf, MAX, MAX, &req), HTTPREQ_TOO_LARGE);
	/* A blank line past max does not count: the head is over the limit. */
	memcpy(buf + MAX + 2, "\r\n\r\n", 4);
	assert_int_equal(httpreq_parse(buf, MAX + 6, MAX, &req), HTTPREQ_TOO_LARGE);
	free(buf);
}

static void
test_bad(void **state)
{
	static const char *const bad[] = {
		"\r\n\r\n", "GET\r\n\r\n", "GET /\r\n\r\n", "GET / \r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n", "GET / HTTP/1.1 x\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n",
		"GET http://h/ HTTP/1.1\r\n\r\n", "GET * HTTP/1.1\r\n\r\n",
		"VERYLONGMETHODNAMEHERE / HTTP/1.1\r\n\r\n", "garbage\r\n\r\n",
	};
	struct httpreq req;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], &req), HTTPREQ_BAD);
	}
}

static void
test_long_uri(void **state)
{
	char buf[HTTPREQ_PATH_LEN + 64];
	struct httpreq req;

	(void)state;
	memset(buf, 0, sizeof(buf));
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', HTTPREQ_PATH_LEN - 2);	/* exactly PATH_LEN - 1 */
	strcat(buf, " HTTP/1.1\r\n\r\n");
	assert_int_equal(parse(buf, &req), HTTPREQ_DONE);
	assert_int_equal(strlen(req.path), HTTPREQ_PATH_LEN - 1);
	memset(buf, 0, sizeof(buf));
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', HTTPREQ_PATH_LEN - 1);
	strcat(buf, " HTTP/1.1\r\n\r\n");
	assert_int_equal(parse(buf, &req), HTTPREQ_TOO_LONG_URI);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_methods_and_query),
		cmocka_unit_test(test_partial),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_long_uri),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
