/*
 * libFuzzer target: the TLS ClientHello reader (src/sni.c) and the front
 * door (src/frontdoor.c) over it.  Each input is used as:
 *
 *  - the bytes a client sent, straight into sni_read(), which must give a
 *    verdict that more bytes never change, a valid lower-case name with
 *    SNI_FOUND, and the same verdict when the ClientHello is re-cut into two
 *    records (libFuzzer's exact-size heap copy makes any overread an
 *    AddressSanitizer error);
 *  - the same bytes fed to a front door with three services on one address
 *    (two by name, one default, allow and deny lists), with accept-proxy on
 *    when they start like a PROXY header or their length is a multiple of
 *    5: the verdict must agree with sni_read, sniroute_find and the lists.
 */
#include <assert.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frontdoor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_name(const char *name)
{
	size_t i, n = strlen(name);

	assert(n > 0 && n <= SNI_NAME_MAX && sni_name_valid(name, n));
	for (i = 0; i < n; i++)
		assert(!(name[i] >= 'A' && name[i] <= 'Z'));
}

/*
 * A ClientHello held whole in its first record, cut into two records at a
 * place the input chooses: the verdict and the name must not change.
 */
static void
check_resplit(const uint8_t *data, size_t size, enum sni_result r, const char *name)
{
	size_t rec = (size_t)data[3] << 8 | data[4], hs, cut;
	char again[SNI_NAME_MAX + 1];
	uint8_t *buf;

	hs = 4 + ((size_t)data[6] << 16 | (size_t)data[7] << 8 | data[8]);
	if (rec < hs || hs < 2 || 5 + hs > size)
		return;
	cut = 1 + data[size - 1] % (hs - 1);
	if ((buf = malloc(hs + 10)) == NULL)
		abort();
	memcpy(buf, data, 5);
	buf[3] = (uint8_t)(cut >> 8);
	buf[4] = (uint8_t)cut;
	memcpy(buf + 5, data + 5, cut);
	memcpy(buf + 5 + cut, data, 5);
	buf[5 + cut + 3] = (uint8_t)((hs - cut) >> 8);
	buf[5 + cut + 4] = (uint8_t)(hs - cut);
	memcpy(buf + 10 + cut, data + 5 + cut, hs - cut);
	assert(sni_read(buf, hs + 10, again) == r);
	if (r == SNI_FOUND)
		assert(strcmp(again, name) == 0);
	free(buf);
}

static enum sni_result
fuzz_sni(const uint8_t *data, size_t size, char *name)
{
	char shorter[SNI_NAME_MAX + 1];
	enum sni_result r, r2;

	r = sni_read(data, size, name);
	assert(r >= SNI_NEED_MORE && r <= SNI_ERROR);
	if (r == SNI_FOUND)
		check_name(name);
	/* One byte less: still waiting, or already the same answer. */
	if (size > 0) {
		r2 = sni_read(data, size - 1, shorter);
		assert(r2 == SNI_NEED_MORE || r2 == r);
		if (r2 == SNI_FOUND)
			assert(strcmp(shorter, name) == 0);
	}
	if ((r == SNI_FOUND || r == SNI_NO_SNI) && size >= 9)
		check_resplit(data, size, r, name);
	return r;
}

/* The listener: exam -> 10, *.example.org -> 11 (allow 10/8), the rest -> 12 (deny 192.0.2.0/24). */
static const char *const names_a[] = { "exam.example.com" };
static const char *const names_b[] = { "*.example.org" };
static struct sniroute route;
static struct cidr_set allow_b, deny_c;
static struct frontdoor_candidate cands[3];

static void
setup(void)
{
	const struct sniroute_input in[3] = { { names_a, 1 }, { names_b, 1 }, { NULL, 0 } };
	struct sniroute_error err;
	const char *why;

	if (sniroute_build(&route, in, 3, &err) != SNIROUTE_OK ||
	    cidr_set_add(&allow_b, "10.0.0.0/8", &why) == -1 ||
	    cidr_set_add(&deny_c, "192.0.2.0/24", &why) == -1)
		abort();
	cidr_set_finish(&allow_b);
	cidr_set_finish(&deny_c);
	cands[0] = (struct frontdoor_candidate){ .service = 10 };
	cands[1] = (struct frontdoor_candidate){ .service = 11, .allow = &allow_b };
	cands[2] = (struct frontdoor_candidate){ .service = 12, .deny = &deny_c };
}

static void
fuzz_door(const uint8_t *data, size_t size)
{
	struct frontdoor_conf conf = { .route = &route, .candidates = cands, .ncandidates = 3 };
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000001) };
	struct frontdoor door;
	struct frontdoor_result res;
	enum frontdoor_verdict v;
	char name[SNI_NAME_MAX + 1];
	long cand;

	conf.accept_proxy = (size > 0 && (data[0] == 'P' || data[0] == 0x0d)) || size % 5 == 0;
	frontdoor_init(&door, &conf, (struct sockaddr *)&peer, sizeof(peer));
	v = frontdoor_feed(&door, data, size, &res);
	assert(v >= FRONTDOOR_NEED_MORE && v <= FRONTDOOR_REJECT);
	if (v != FRONTDOOR_ACCEPT)
		return;
	assert(res.skip <= size && (res.skip == 0 || conf.accept_proxy));
	/* What the door read after the header, the reader reads alike. */
	assert(sni_read(data + res.skip, size - res.skip, name) == res.sni);
	cand = sniroute_find(&route, res.sni == SNI_FOUND ? res.name : NULL);
	assert(cand >= 0 && cands[cand].service == res.service);
	if (res.service == 11)
		assert(cidr_set_contains(&allow_b, (struct sockaddr *)&res.client));
	if (res.service == 12)
		assert(!cidr_set_contains(&deny_c, (struct sockaddr *)&res.client));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	char name[SNI_NAME_MAX + 1];

	if (!ready) {
		setup();
		ready = 1;
	}
	(void)fuzz_sni(data, size, name);
	fuzz_door(data, size);
	return 0;
}
