/*
 * libFuzzer target: the PROXY protocol writer (src/proxyproto.c) and parser
 * (src/proxyparse.c).  Each input is used twice:
 *
 *  - as raw bytes on the wire, straight into proxy_parse(), which must give
 *    a consistent verdict and never read past them (libFuzzer hands over an
 *    exact-size heap copy, so AddressSanitizer sees any overread);
 *  - as a recipe for proxy_header(): its first bytes choose the version, the
 *    two address families, the raw addresses and ports and the size of the
 *    output buffer; what is written must parse back to exactly that.
 */
#include <assert.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "proxyparse.h"
#include "proxyproto.h"

/* The recipe, read from the start of the input (zero-padded when short). */
struct recipe {
	uint8_t flags;			/* bit 0 v1/v2, bits 1-2 src family, 3-4 dst, 5 off */
	uint8_t src[16], dst[16];
	uint8_t sport[2], dport[2];	/* network order, as in the sockaddr */
	uint8_t buflen;			/* < 0x80: PROXY_HEADER_MAX, else 0..127 */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
families_consistent(const struct proxy_info *pi)
{
	int f = pi->src.ss_family;

	return f == pi->dst.ss_family && (f == AF_UNSPEC || f == AF_INET || f == AF_INET6);
}

/* Same family, address and port; nothing else a header carries. */
static int
same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in *a4 = (const void *)a, *b4 = (const void *)b;
	const struct sockaddr_in6 *a6 = (const void *)a, *b6 = (const void *)b;

	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return a4->sin_addr.s_addr == b4->sin_addr.s_addr &&
		    a4->sin_port == b4->sin_port;
	if (a->ss_family == AF_INET6)
		return memcmp(&a6->sin6_addr, &b6->sin6_addr, 16) == 0 &&
		    a6->sin6_port == b6->sin6_port;
	return 1;
}

static int
same_info(const struct proxy_info *a, const struct proxy_info *b)
{
	return a->version == b->version && a->local == b->local &&
	    a->socktype == b->socktype && same_addr(&a->src, &b->src) &&
	    same_addr(&a->dst, &b->dst);
}

/* A complete header: its prefixes are incomplete, itself parses the same. */
static void
check_prefixes(const uint8_t *buf, size_t n, const struct proxy_info *pi)
{
	struct proxy_info again;
	size_t k, step = n <= 256 ? 1 : n / 16, consumed = 0;

	for (k = 0; k < n; k += step)
		assert(proxy_parse(buf, k, &again, &consumed) == 0);
	assert(proxy_parse(buf, n - 1, &again, &consumed) == 0);
	assert(proxy_parse(buf, n, &again, &consumed) == 1);
	assert(consumed == n && same_info(&again, pi));
}

static void
fuzz_raw(const uint8_t *data, size_t size)
{
	struct proxy_info pi, again;
	unsigned char out[PROXY_HEADER_MAX];
	size_t consumed = 0, n, c2 = 0;
	int rc;

	rc = proxy_parse(data, size, &pi, &consumed);
	assert(rc >= -1 && rc <= 1);
	if (rc == 0 && size > 0)
		assert(proxy_parse(data, size - 1, &pi, &consumed) == 0);
	if (rc != 1)
		return;
	assert(consumed > 0 && consumed <= size);
	assert(pi.version == 1 || pi.version == 2);
	assert(pi.version == 2 || (consumed <= PROXY_V1_LINE_MAX && !pi.local));
	assert(families_consistent(&pi));
	assert(!pi.local || pi.src.ss_family == AF_UNSPEC);
	check_prefixes(data, consumed, &pi);
	/* Addresses a TCP header carried, the writer carries again. */
	if (pi.src.ss_family == AF_UNSPEC || pi.socktype != SOCK_STREAM)
		return;
	n = proxy_header(pi.version == 1 ? LBD_PROXY_V1 : LBD_PROXY_V2,
	    (struct sockaddr *)&pi.src, (struct sockaddr *)&pi.dst, out, sizeof(out));
	assert(n > 0);
	assert(proxy_parse(out, n, &again, &c2) == 1 && c2 == n);
	assert(same_info(&again, &pi));
}

static void
make_addr(int which, const uint8_t *addr, const uint8_t *port,
    struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	switch (which) {
	case 0: {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, addr, 4);
		memcpy(&sin->sin_port, port, 2);
		break;
	}
	case 1: {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, addr, 16);
		memcpy(&sin6->sin6_port, port, 2);
		break;
	}
	case 2:
		ss->ss_family = AF_UNIX;
		memcpy(((struct sockaddr_un *)ss)->sun_path, addr, 16);
		break;
	default:
		ss->ss_family = AF_UNSPEC;
		break;
	}
}

static void
fuzz_round_trip(const uint8_t *data, size_t size)
{
	struct recipe r;
	struct sockaddr_storage src, dst;
	struct proxy_info pi;
	enum lbd_proxy_protocol version;
	size_t buflen, n, consumed = 0;
	unsigned char *buf;
	int sf, df;

	memset(&r, 0, sizeof(r));
	if (size > 0)
		memcpy(&r, data, size < sizeof(r) ? size : sizeof(r));
	version = r.flags & 0x20 ? LBD_PROXY_OFF : r.flags & 1 ? LBD_PROXY_V2 : LBD_PROXY_V1;
	sf = (r.flags >> 1) & 3;
	df = (r.flags >> 3) & 3;
	make_addr(sf, r.src, r.sport, &src);
	make_addr(df, r.dst, r.dport, &dst);
	buflen = r.buflen < 0x80 ? PROXY_HEADER_MAX : (size_t)(r.buflen & 0x7f);
	/* Exactly buflen bytes, so a write past them is caught. */
	if ((buf = malloc(buflen ? buflen : 1)) == NULL)
		abort();
	n = proxy_header(version, (struct sockaddr *)&src, (struct sockaddr *)&dst, buf, buflen);
	assert(n <= buflen);
	assert(n > 0 || buflen < PROXY_HEADER_MAX || version == LBD_PROXY_OFF);
	assert(n == 0 || version != LBD_PROXY_OFF);
	if (n == 0) {
		free(buf);
		return;
	}
	assert(proxy_parse(buf, n, &pi, &consumed) == 1 && consumed == n);
	check_prefixes(buf, n, &pi);
	assert(pi.version == (version == LBD_PROXY_V1 ? 1 : 2));
	if (sf == df && sf <= 1) {
		/* Both IPv4 or both IPv6: the addresses and ports come back. */
		assert(!pi.local && pi.socktype == SOCK_STREAM);
		assert(same_addr(&pi.src, &src) && same_addr(&pi.dst, &dst));
	} else {
		/* Mixed or non-IP: v1 UNKNOWN, v2 LOCAL, no address either way. */
		assert(pi.src.ss_family == AF_UNSPEC && pi.dst.ss_family == AF_UNSPEC);
		assert(pi.local == (version == LBD_PROXY_V2));
	}
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_raw(data, size);
	fuzz_round_trip(data, size);
	return 0;
}
