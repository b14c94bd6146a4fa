/*
 * sni_read (src/sni.c): real ClientHellos from openssl s_client and curl
 * (tests/unit/sni_vectors.h), cut at every byte, re-split into several
 * records, truncated, corrupted; and hand-built ones with bad lengths and
 * bad names.  Every call gets an exact-size heap copy, so an overread is an
 * AddressSanitizer error under make check-asan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sni.h"
#include "sni_vectors.h"

static char got[SNI_NAME_MAX + 1];

/* sni_read on an exact-size copy of buf[0..len). */
static enum sni_result
read_copy(const unsigned char *buf, size_t len)
{
	unsigned char *copy = malloc(len ? len : 1);
	enum sni_result r;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	memset(got, '#', sizeof(got));
	got[SNI_NAME_MAX] = '\0';
	r = sni_read(copy, len, got);
	free(copy);
	return r;
}

struct vector {
	const unsigned char *buf;
	size_t len;
	enum sni_result want;
	const char *name;
};

static const struct vector vectors[] = {
	{ openssl_tls12_sni, sizeof(openssl_tls12_sni), SNI_FOUND, "exam.example.com" },
	{ openssl_tls13_sni, sizeof(openssl_tls13_sni), SNI_FOUND, "exam.example.com" },
	{ openssl_tls12_nosni, sizeof(openssl_tls12_nosni), SNI_NO_SNI, NULL },
	{ openssl_tls13_nosni, sizeof(openssl_tls13_nosni), SNI_NO_SNI, NULL },
	{ curl_tls12_sni, sizeof(curl_tls12_sni), SNI_FOUND, "www.example.org" },
	{ curl_tls13_sni, sizeof(curl_tls13_sni), SNI_FOUND, "mixed.example.org" },
};
#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

static void
expect(const unsigned char *buf, size_t len, enum sni_result want, const char *name)
{
	enum sni_result r = read_copy(buf, len);

	if (r != want)
		fail_msg("len %zu: got %s, want %s", len, sni_result_name(r),
		    sni_result_name(want));
	if (want == SNI_FOUND)
		assert_string_equal(got, name);
	else
		assert_int_equal(got[0], '#');	/* untouched */
}

static void
test_real_hellos(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NVECTORS; i++)
		expect(vectors[i].buf, vectors[i].len, vectors[i].want, vectors[i].name);
}

/* Each prefix is a read that stopped there: the answer is "more". */
static void
test_every_prefix(void **state)
{
	size_t i, k;

	(void)state;
	for (i = 0; i < NVECTORS; i++)
		for (k = 0; k < vectors[i].len; k++)
			expect(vectors[i].buf, k, SNI_NEED_MORE, NULL);
}

/* Whatever follows the ClientHello (early data, a second record) is not read. */
static void
test_trailing_bytes(void **state)
{
	unsigned char buf[1024];
	size_t i, n;

	(void)state;
	for (i = 0; i < NVECTORS; i++) {
		n = vectors[i].len;
		memcpy(buf, vectors[i].buf, n);
		memcpy(buf + n, "\x17\x03\x03\x00\x05hello", 10);
		expect(buf, n + 10, vectors[i].want, vectors[i].name);
	}
}

/* The handshake bytes of v cut into records at the offsets in cuts[]. */
static size_t
resplit(const struct vector *v, const size_t *cuts, size_t ncuts, unsigned char *out)
{
	const unsigned char *hs = v->buf + 5;
	size_t hslen = v->len - 5, from = 0, o = 0, i, to;

	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : hslen;
		out[o++] = 0x16;
		out[o++] = 0x03;
		out[o++] = 0x01;
		out[o++] = (unsigned char)((to - from) >> 8);
		out[o++] = (unsigned char)(to - from);
		memcpy(out + o, hs + from, to - from);
		o += to - from;
		from = to;
	}
	return o;
}

static void
test_two_records(void **state)
{
	unsigned char buf[1024];
	size_t i, k, n;

	(void)state;
	for (i = 0; i < NVECTORS; i++) {
		for (k = 1; k < vectors[i].len - 5; k++) {
			n = resplit(&vectors[i], &k, 1, buf);
			expect(buf, n, vectors[i].want, vectors[i].name);
			/* And a read that stops anywhere in the two records waits. */
			if (k % 7 == 0)
				expect(buf, k + 3, SNI_NEED_MORE, NULL);
		}
	}
}

/* Cut points spreading the handshake bytes of v over nrec records. */
static size_t
spread(const struct vector *v, size_t nrec, unsigned char *out)
{
	size_t cuts[SNI_RECORDS_MAX + 1], hslen = v->len - 5, i;

	assert_true(nrec >= 2 && nrec <= SNI_RECORDS_MAX + 1 && nrec <= hslen);
	for (i = 0; i < nrec - 1; i++)
		cuts[i] = (i + 1) * hslen / nrec;
	return resplit(v, cuts, nrec - 1, out);
}

/* SNI_RECORDS_MAX records are the most a ClientHello may span; one more is refused. */
static void
test_many_records(void **state)
{
	const struct vector *v = &vectors[5];
	unsigned char buf[1024 + 5 * (SNI_RECORDS_MAX + 1)];
	size_t n, k;

	(void)state;
	n = spread(v, SNI_RECORDS_MAX, buf);
	assert_int_equal(n, v->len + 5 * (SNI_RECORDS_MAX - 1));
	expect(buf, n, SNI_FOUND, "mixed.example.org");
	for (k = 0; k < n; k += 13)
		expect(buf, k, SNI_NEED_MORE, NULL);
	n = spread(v, SNI_RECORDS_MAX + 1, buf);
	expect(buf, n, SNI_ERROR, NULL);
}

/*
 * A ClientHello fed a record at a time, as a client trickling it would:
 * "more" until the last record.  (Each of these calls walks record headers
 * only; the body is parsed once.)
 */
static void
test_trickle(void **state)
{
	const struct vector *v = &vectors[0];
	unsigned char buf[1024 + 5 * SNI_RECORDS_MAX];
	size_t n, k, seen = 0;

	(void)state;
	n = spread(v, SNI_RECORDS_MAX, buf);
	for (k = 0; k + 5 < n; k += 5 + ((size_t)buf[k + 3] << 8 | buf[k + 4]), seen++)
		assert_int_equal(sni_read(buf, k, got), SNI_NEED_MORE);
	assert_int_equal(seen, SNI_RECORDS_MAX);
	assert_int_equal(sni_read(buf, n, got), SNI_FOUND);
	assert_string_equal(got, "exam.example.com");
}

static void
test_not_tls(void **state)
{
	(void)state;
	expect((const unsigned char *)"GET / HTTP/1.1\r\n", 16, SNI_NOT_TLS, NULL);
	expect((const unsigned char *)"PROXY TCP4 ", 11, SNI_NOT_TLS, NULL);
	expect((const unsigned char *)"\x16\x02", 2, SNI_NOT_TLS, NULL);
	expect((const unsigned char *)"\x80\x2e\x01\x03\x01", 5, SNI_NOT_TLS, NULL);	/* SSLv2 */
	expect((const unsigned char *)"\x15\x03\x01\x00\x02", 5, SNI_NOT_TLS, NULL);	/* alert */
	expect((const unsigned char *)"\x16", 1, SNI_NEED_MORE, NULL);
	expect((const unsigned char *)"", 0, SNI_NEED_MORE, NULL);
}

/* Hand-built ClientHello: one cipher, no compression, the given extensions. */
static size_t
build_hello(unsigned char *out, const void *ext, size_t extlen, int with_ext)
{
	size_t body = 2 + 32 + 1 + 4 + 2 + (with_ext ? 2 + extlen : 0), o = 0;

	memcpy(out, "\x16\x03\x01", 3);
	out[3] = (unsigned char)((body + 4) >> 8);
	out[4] = (unsigned char)(body + 4);
	out[5] = 1;
	out[6] = 0;
	out[7] = (unsigned char)(body >> 8);
	out[8] = (unsigned char)body;
	o = 9;
	memcpy(out + o, "\x03\x03", 2);
	memset(out + o + 2, 0x5a, 32);
	o += 34;
	memcpy(out + o, "\x00\x00\x02\x13\x01\x01\x00", 7);
	o += 7;
	if (with_ext) {
		out[o++] = (unsigned char)(extlen >> 8);
		out[o++] = (unsigned char)extlen;
		if (extlen > 0)
			memcpy(out + o, ext, extlen);
		o += extlen;
	}
	return o;
}

/* A server_name extension carrying one host_name. */
static size_t
build_sni_ext(unsigned char *ext, const char *name, size_t n)
{
	ext[0] = 0;
	ext[1] = 0;
	ext[2] = (unsigned char)((n + 5) >> 8);
	ext[3] = (unsigned char)(n + 5);
	ext[4] = (unsigned char)((n + 3) >> 8);
	ext[5] = (unsigned char)(n + 3);
	ext[6] = 0;
	ext[7] = (unsigned char)(n >> 8);
	ext[8] = (unsigned char)n;
	memcpy(ext + 9, name, n);
	return n + 9;
}

static enum sni_result
hello_with_name(const char *name, size_t n)
{
	unsigned char ext[600], buf[700];

	return read_copy(buf, build_hello(buf, ext, build_sni_ext(ext, name, n), 1));
}

static void
test_built_hellos(void **state)
{
	unsigned char buf[700];
	size_t n;

	(void)state;
	/* No extensions block at all, and an empty one. */
	expect(buf, build_hello(buf, NULL, 0, 0), SNI_NO_SNI, NULL);
	expect(buf, build_hello(buf, NULL, 0, 1), SNI_NO_SNI, NULL);
	assert_int_equal(hello_with_name("Exam.EXAMPLE.com", 16), SNI_FOUND);
	assert_string_equal(got, "exam.example.com");
	n = build_hello(buf, "\x00\x17\x00\x00", 4, 1);	/* extended_master_secret only */
	expect(buf, n, SNI_NO_SNI, NULL);
}

static void
test_bad_names(void **state)
{
	static const char *const bad[] = {
		"127.0.0.1", "10.1.2.3", "[::1]", "::1", "a..b", ".a.b", "a.b.", "-a.b",
		"a-.b", "a.-b", "a b.com", "a_b.com", "a/b", "*.example.com", "\xc3\xa9.fr",
	};
	char nul[] = "a\0b.com", big[300];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (hello_with_name(bad[i], strlen(bad[i])) != SNI_ERROR)
			fail_msg("name \"%s\" accepted", bad[i]);
	assert_int_equal(hello_with_name(nul, 7), SNI_ERROR);
	assert_int_equal(hello_with_name("", 0), SNI_ERROR);
	memset(big, 'a', sizeof(big));
	for (i = 63; i < 254; i += 64)
		big[i] = '.';
	assert_int_equal(hello_with_name(big, 253), SNI_FOUND);
	assert_int_equal(hello_with_name(big, 254), SNI_ERROR);
	big[63] = 'a';		/* a 64-character label */
	assert_int_equal(hello_with_name(big, 100), SNI_ERROR);
	assert_int_equal(hello_with_name("1.2.3.x", 7), SNI_FOUND);
	assert_int_equal(hello_with_name("x", 1), SNI_FOUND);
	assert_int_equal(hello_with_name("0x.1a", 5), SNI_FOUND);
}

static void
test_name_valid(void **state)
{
	(void)state;
	assert_true(sni_name_valid("Example.COM", 11));
	assert_true(sni_name_valid("a-b.c-d", 7));
	assert_false(sni_name_valid("a-b.c-d", 0));
	assert_false(sni_name_valid("a.123", 5));
	assert_false(sni_name_valid("a:b", 3));
}

/* Patches one byte of a built hello and expects ERROR. */
static void
expect_patched(size_t at, unsigned char value)
{
	unsigned char ext[64], buf[200];
	size_t n = build_hello(buf, ext, build_sni_ext(ext, "ab.cd", 5), 1);

	assert_true(at < n);
	buf[at] = value;
	expect(buf, n, SNI_ERROR, NULL);
}

/*
 * Offsets in a built hello: 9 version, 43 session id length, 44 ciphers,
 * 48 compression, 50 extensions, 52 server_name, 56 list, 58 type, 59 name.
 */
static void
test_bad_lengths(void **state)
{
	(void)state;
	expect_patched(5, 2);		/* handshake type ServerHello */
	expect_patched(6, 1);		/* handshake length over the bound */
	expect_patched(9, 2);		/* legacy_version major 2 */
	expect_patched(43, 33);		/* session id longer than 32 */
	expect_patched(43, 200);	/* ... and than the hello */
	expect_patched(45, 3);		/* odd cipher suite length */
	expect_patched(45, 0);		/* no cipher suite */
	expect_patched(48, 0);		/* no compression method */
	expect_patched(50, 0xff);	/* extensions past the hello */
	expect_patched(51, 0);		/* extensions shorter than the hello */
	expect_patched(55, 0x7f);	/* server_name past the extensions */
	expect_patched(57, 0x7f);	/* name list past the extension */
	expect_patched(57, 5);		/* name list shorter than the extension */
	expect_patched(58, 1);		/* unknown name type */
	expect_patched(60, 0x7f);	/* host name past the list */
	expect_patched(60, 2);		/* host name shorter than the list */
	expect_patched(3, 0x40);	/* record longer than 2^14 */
}

static void
test_bad_records(void **state)
{
	unsigned char ext[64], buf[200], two[220];
	size_t n = build_hello(buf, ext, build_sni_ext(ext, "ab.cd", 5), 1), cut = 30;

	(void)state;
	/* The second record is an alert, or empty, or claims to be huge. */
	memcpy(two, buf, 5 + cut);
	two[3] = 0;
	two[4] = (unsigned char)cut;
	memcpy(two + 5 + cut, "\x15\x03\x01\x00\x02\x02\x28", 7);
	expect(two, 5 + cut + 7, SNI_ERROR, NULL);
	memcpy(two + 5 + cut, "\x16\x03\x01\x00\x00", 5);
	expect(two, 5 + cut + 5, SNI_ERROR, NULL);
	memcpy(two + 5 + cut, "\x16\x03\x01\x40\x01", 5);
	expect(two, 5 + cut + 5, SNI_ERROR, NULL);
	memcpy(two + 5 + cut, "\x16\x02\x01\x00\x10", 5);
	expect(two, 5 + cut + 5, SNI_ERROR, NULL);
	(void)n;
}

/* A ClientHello that never ends: "more" until SNI_INPUT_MAX bytes, then ERROR. */
static void
test_input_bound(void **state)
{
	size_t len = SNI_INPUT_MAX + 100, hs = SNI_INPUT_MAX - 9;
	unsigned char *buf = calloc(1, len);

	(void)state;
	assert_non_null(buf);
	memcpy(buf, "\x16\x03\x01\x40\x00\x01", 6);
	buf[6] = (unsigned char)(hs >> 16);
	buf[7] = (unsigned char)(hs >> 8);
	buf[8] = (unsigned char)hs;
	buf[9] = 3;
	buf[10] = 3;
	/* Session id 0, ciphers, compression, then an extension as long as it gets. */
	memcpy(buf + 43, "\x00\x00\x02\x13\x01\x01\x00", 7);
	buf[50] = (unsigned char)((hs - 43) >> 8);
	buf[51] = (unsigned char)(hs - 43);
	buf[52] = 0x12;
	buf[53] = 0x34;
	buf[54] = (unsigned char)((hs - 47) >> 8);
	buf[55] = (unsigned char)(hs - 47);
	/* In one record of 2^14 bytes, it ends exactly at the bound. */
	expect(buf, 1000, SNI_NEED_MORE, NULL);
	expect(buf, SNI_INPUT_MAX - 1, SNI_NEED_MORE, NULL);
	expect(buf, SNI_INPUT_MAX, SNI_NO_SNI, NULL);
	expect(buf, len, SNI_NO_SNI, NULL);
	/* In two records, the second header pushes its end past the bound. */
	buf[3] = 0x3e;
	buf[4] = 0x80;
	memmove(buf + 16005 + 5, buf + 16005, SNI_INPUT_MAX - 16005);
	memcpy(buf + 16005, "\x16\x03\x01\x01\x80", 5);
	/* Known as soon as that header is in: no need to wait for the rest. */
	expect(buf, 16009, SNI_NEED_MORE, NULL);
	expect(buf, 16010, SNI_ERROR, NULL);
	expect(buf, SNI_INPUT_MAX, SNI_ERROR, NULL);
	expect(buf, len, SNI_ERROR, NULL);
	/* One byte more than fits in the bound, declared up front. */
	buf[8] = (unsigned char)(hs + 1);
	expect(buf, 9, SNI_ERROR, NULL);
	free(buf);
}

/* Flipping each byte of a real hello: never a crash, never a wrong name. */
static void
test_corrupted(void **state)
{
	const struct vector *v = &vectors[1];
	unsigned char buf[600];
	size_t i;
	enum sni_result r;

	(void)state;
	for (i = 0; i < v->len; i++) {
		memcpy(buf, v->buf, v->len);
		buf[i] ^= 0xff;
		r = read_copy(buf, v->len);
		if (r == SNI_FOUND)
			assert_true(sni_name_valid(got, strlen(got)));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_hellos),
		cmocka_unit_test(test_every_prefix),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_two_records),
		cmocka_unit_test(test_many_records),
		cmocka_unit_test(test_trickle),
		cmocka_unit_test(test_not_tls),
		cmocka_unit_test(test_built_hellos),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_bad_lengths),
		cmocka_unit_test(test_bad_records),
		cmocka_unit_test(test_input_bound),
		cmocka_unit_test(test_corrupted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
