/*
 * Prefix sets: every prefix becomes a range of 128-bit addresses; the
 * ranges are sorted and merged into disjoint ones, so a lookup is one
 * binary search for the last range starting at or below the address.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"

static int
addr_cmp(const struct cidr_addr *a, const struct cidr_addr *b)
{
	if (a->hi != b->hi)
		return a->hi < b->hi ? -1 : 1;
	return a->lo < b->lo ? -1 : a->lo > b->lo;
}

static void
addr_from_bytes(const unsigned char b[16], struct cidr_addr *a)
{
	int i;

	a->hi = a->lo = 0;
	for (i = 0; i < 8; i++) {
		a->hi = a->hi << 8 | b[i];
		a->lo = a->lo << 8 | b[i + 8];
	}
}

/* The host bits of a /bits prefix: the low 128 - bits bits. */
static struct cidr_addr
host_mask(unsigned bits)
{
	struct cidr_addr m;

	if (bits >= 64) {
		m.hi = 0;
		m.lo = bits == 128 ? 0 : ~(uint64_t)0 >> (bits - 64);
	} else {
		m.hi = bits == 0 ? ~(uint64_t)0 : ~(uint64_t)0 >> bits;
		m.lo = ~(uint64_t)0;
	}
	return m;
}

/* Decimal 0..max, "0" the only number starting with a zero. */
static int
parse_len(const char *p, unsigned max, unsigned *bits)
{
	unsigned v = 0;
	size_t i, n = strlen(p);

	if (n == 0 || n > 3 || (n > 1 && p[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v > max)
		return -1;
	*bits = v;
	return 0;
}

/* The address part: IPv4 lands in ::ffff:0:0/96. Returns its bit count, or -1. */
static int
parse_addr(const char *text, size_t n, unsigned char b[16])
{
	char buf[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, text, n);
	buf[n] = '\0';
	if (memchr(buf, ':', n) != NULL)
		return inet_pton(AF_INET6, buf, b) == 1 ? 128 : -1;
	memset(b, 0, 10);
	b[10] = b[11] = 0xff;
	return inet_pton(AF_INET, buf, b + 12) == 1 ? 32 : -1;
}

int
cidr_parse(const char *text, struct cidr_range *out, const char **why)
{
	const char *slash = strchr(text, '/');
	size_t n = slash != NULL ? (size_t)(slash - text) : strlen(text);
	unsigned char b[16];
	unsigned bits;
	int max;
	struct cidr_addr m;

	if ((max = parse_addr(text, n, b)) == -1) {
		*why = "not an IPv4 or IPv6 address";
		return -1;
	}
	bits = (unsigned)max;
	if (slash != NULL && parse_len(slash + 1, (unsigned)max, &bits) == -1) {
		*why = max == 32 ? "prefix length must be 0..32" : "prefix length must be 0..128";
		return -1;
	}
	addr_from_bytes(b, &out->first);
	/* An IPv4 /n is an IPv6 /(96 + n) inside ::ffff:0:0/96. */
	m = host_mask(max == 32 ? bits + 96 : bits);
	if ((out->first.hi & m.hi) != 0 || (out->first.lo & m.lo) != 0) {
		*why = "address has bits set past the prefix length";
		return -1;
	}
	out->last.hi = out->first.hi | m.hi;
	out->last.lo = out->first.lo | m.lo;
	return 0;
}

int
cidr_set_add(struct cidr_set *set, const char *text, const char **why)
{
	struct cidr_range r;

	if (cidr_parse(text, &r, why) == -1)
		return -1;
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 8;
		void *grown = reallocarray(set->ranges, cap, sizeof(*set->ranges));

		if (grown == NULL) {
			*why = "out of memory";
			return -1;
		}
		set->ranges = grown;
		set->cap = cap;
	}
	set->ranges[set->n++] = r;
	return 0;
}

static int
range_cmp(const void *a, const void *b)
{
	return addr_cmp(&((const struct cidr_range *)a)->first,
	    &((const struct cidr_range *)b)->first);
}

/* Whether b starts at most one address after a ends. */
static int
touches(const struct cidr_addr *a_last, const struct cidr_addr *b_first)
{
	struct cidr_addr next = *a_last;

	if (++next.lo == 0 && ++next.hi == 0)
		return 1;		/* a ends at the last address: nothing lies past it */
	return addr_cmp(b_first, &next) <= 0;
}

void
cidr_set_finish(struct cidr_set *set)
{
	size_t i, out = 0;

	if (set->n == 0)
		return;
	qsort(set->ranges, set->n, sizeof(*set->ranges), range_cmp);
	for (i = 1; i < set->n; i++) {
		struct cidr_range *cur = &set->ranges[out];

		if (touches(&cur->last, &set->ranges[i].first)) {
			if (addr_cmp(&set->ranges[i].last, &cur->last) > 0)
				cur->last = set->ranges[i].last;
		} else {
			set->ranges[++out] = set->ranges[i];
		}
	}
	set->n = out + 1;
}

int
cidr_set_contains_addr(const struct cidr_set *set, const struct cidr_addr *a)
{
	size_t lo = 0, hi = set->n, mid;

	/* The first range starting past a; the one before it may hold a. */
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (addr_cmp(&set->ranges[mid].first, a) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && addr_cmp(a, &set->ranges[lo - 1].last) <= 0;
}

int
cidr_addr_from_sockaddr(const struct sockaddr *sa, struct cidr_addr *out)
{
	unsigned char b[16];

	if (sa->sa_family == AF_INET6) {
		memcpy(b, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
	} else if (sa->sa_family == AF_INET) {
		memset(b, 0, 10);
		b[10] = b[11] = 0xff;
		memcpy(b + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} else {
		return -1;
	}
	addr_from_bytes(b, out);
	return 0;
}

int
cidr_set_contains(const struct cidr_set *set, const struct sockaddr *sa)
{
	struct cidr_addr a;

	if (cidr_addr_from_sockaddr(sa, &a) == -1)
		return 0;
	return cidr_set_contains_addr(set, &a);
}

void
cidr_set_free(struct cidr_set *set)
{
	free(set->ranges);
	set->ranges = NULL;
	set->n = set->cap = 0;
}
