/*
 * PROXY protocol v1 and v2 header parser.  Strict where the specification
 * says a receiver must drop the connection: one blank between v1 fields, no
 * leading zeros, unknown v2 command or family bytes refused.  A pure
 * function of its input: no allocation, no I/O, no globals.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "proxyparse.h"

#define PROXY_V1_WORDS		5	/* TCP4|TCP6 src dst sport dport */

static const unsigned char proxy_v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

struct proxy_word {
	const char *p;
	size_t len;
};

/*
 * Splits p[0..len) on single blanks into exactly PROXY_V1_WORDS non-empty
 * words; -1 for any other shape (two blanks, a leading or trailing one).
 */
static int
proxy_v1_split(const char *p, size_t len, struct proxy_word *w)
{
	size_t i = 0;
	int n;

	for (n = 0; n < PROXY_V1_WORDS; n++) {
		w[n].p = p + i;
		while (i < len && p[i] != ' ')
			i++;
		w[n].len = (size_t)(p + i - w[n].p);
		if (w[n].len == 0)
			return -1;
		if (i == len)
			return n == PROXY_V1_WORDS - 1 ? 0 : -1;
		i++;			/* the blank */
	}
	return -1;			/* a sixth word */
}

/* Decimal 0..65535, "0" the only number that may start with a zero. */
static int
proxy_v1_port(const struct proxy_word *w, uint16_t *port)
{
	uint32_t v = 0;
	size_t i;

	if (w->len > 5 || (w->len > 1 && w->p[0] == '0'))
		return -1;
	for (i = 0; i < w->len; i++) {
		if (w->p[i] < '0' || w->p[i] > '9')
			return -1;
		v = v * 10 + (uint32_t)(w->p[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = htons((uint16_t)v);
	return 0;
}

/* One address and its port into ss; inet_pton refuses leading zeros in IPv4. */
static int
proxy_v1_addr(int family, const struct proxy_word *addr, const struct proxy_word *port,
    struct sockaddr_storage *ss)
{
	char text[INET6_ADDRSTRLEN];

	if (addr->len >= sizeof(text))
		return -1;
	memcpy(text, addr->p, addr->len);
	text[addr->len] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		if (inet_pton(AF_INET, text, &sin->sin_addr) != 1)
			return -1;
		return proxy_v1_port(port, &sin->sin_port);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
			return -1;
		return proxy_v1_port(port, &sin6->sin6_port);
	}
}

/* The fields of a complete line, between "PROXY " and the CRLF. */
static int
proxy_v1_fields(const char *p, size_t len, struct proxy_info *info)
{
	struct proxy_word w[PROXY_V1_WORDS];
	int family;

	memset(info, 0, sizeof(*info));
	info->version = 1;
	/* "The receiver must ignore anything presented before the CRLF." */
	if (len >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (len == 7 || p[7] == ' ')) {
		info->src.ss_family = info->dst.ss_family = AF_UNSPEC;
		return 0;
	}
	if (proxy_v1_split(p, len, w) == -1 || w[0].len != 4)
		return -1;
	if (memcmp(w[0].p, "TCP4", 4) == 0)
		family = AF_INET;
	else if (memcmp(w[0].p, "TCP6", 4) == 0)
		family = AF_INET6;
	else
		return -1;
	info->socktype = SOCK_STREAM;
	if (proxy_v1_addr(family, &w[1], &w[3], &info->src) == -1 ||
	    proxy_v1_addr(family, &w[2], &w[4], &info->dst) == -1)
		return -1;
	return 0;
}

static int
proxy_v1(const unsigned char *buf, size_t len, struct proxy_info *out, size_t *consumed)
{
	size_t n = len < 6 ? len : 6, scan = len < PROXY_V1_LINE_MAX ? len : PROXY_V1_LINE_MAX;
	const unsigned char *lf;
	struct proxy_info info;

	if (memcmp(buf, "PROXY ", n) != 0)
		return -1;
	if ((lf = memchr(buf, '\n', scan)) == NULL)
		return len >= PROXY_V1_LINE_MAX ? -1 : 0;
	n = (size_t)(lf - buf) + 1;
	/* Shortest: "PROXY UNKNOWN\r\n"; a bare LF or a NUL is no v1 line. */
	if (n < 15 || lf[-1] != '\r' || memchr(buf, '\0', n) != NULL)
		return -1;
	if (proxy_v1_fields((const char *)buf + 6, n - 6 - 2, &info) == -1)
		return -1;
	*out = info;
	*consumed = n;
	return 1;
}

/* The address block's size for a v2 family byte, or -1 for a byte to refuse. */
static int
proxy_v2_addrlen(unsigned char fam)
{
	switch (fam) {
	case 0x00:			/* UNSPEC */
		return 0;
	case 0x11:			/* TCP over IPv4 */
	case 0x12:			/* UDP over IPv4 */
		return 12;
	case 0x21:
	case 0x22:
		return 36;
	case 0x31:			/* UNIX stream and datagram: two 108-byte paths */
	case 0x32:
		return 216;
	default:
		return -1;
	}
}

/* The addresses of a PROXY command; buf holds at least the family's block. */
static void
proxy_v2_addrs(const unsigned char *a, unsigned char fam, struct proxy_info *info)
{
	if (fam >> 4 == 1) {
		struct sockaddr_in *s = (struct sockaddr_in *)&info->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&info->dst;

		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
	} else if (fam >> 4 == 2) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&info->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&info->dst;

		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
	}
	/* UNSPEC carries nothing to use; UNIX paths are of no use to lbd. */
}

static int
proxy_v2(const unsigned char *buf, size_t len, struct proxy_info *out, size_t *consumed)
{
	size_t n = len < sizeof(proxy_v2_sig) ? len : sizeof(proxy_v2_sig), total;
	struct proxy_info info;
	int addrlen;

	if (memcmp(buf, proxy_v2_sig, n) != 0)
		return -1;
	/* Version 2, command LOCAL (0) or PROXY (1): anything else is refused. */
	if (len > 12 && buf[12] != 0x20 && buf[12] != 0x21)
		return -1;
	if (len > 13 && proxy_v2_addrlen(buf[13]) == -1)
		return -1;
	if (len < PROXY_V2_FIXED)
		return 0;
	addrlen = proxy_v2_addrlen(buf[13]);
	total = PROXY_V2_FIXED + ((size_t)buf[14] << 8 | buf[15]);
	if (len < total)
		return 0;
	memset(&info, 0, sizeof(info));
	info.version = 2;
	info.socktype = (buf[13] & 0x0f) == 1 ? SOCK_STREAM :
	    (buf[13] & 0x0f) == 2 ? SOCK_DGRAM : 0;
	info.src.ss_family = info.dst.ss_family = AF_UNSPEC;
	if (buf[12] == 0x20)
		/* LOCAL: the block is skipped whatever it says, as the spec asks. */
		info.local = 1;
	else if (total - PROXY_V2_FIXED < (size_t)addrlen)
		return -1;
	else
		proxy_v2_addrs(buf + PROXY_V2_FIXED, buf[13], &info);
	*out = info;
	*consumed = total;
	return 1;
}

int
proxy_parse(const unsigned char *buf, size_t len, struct proxy_info *out,
    size_t *consumed)
{
	if (len == 0)
		return 0;
	if (buf[0] == 'P')
		return proxy_v1(buf, len, out, consumed);
	if (buf[0] == proxy_v2_sig[0])
		return proxy_v2(buf, len, out, consumed);
	return -1;
}
