/*
 * Sets of IPv4 and IPv6 prefixes ("10.0.0.0/8", "2001:db8::/32") for the
 * allow and deny lists: built once per (re)load, then asked in O(log n).
 * IPv4 is kept as IPv4-mapped IPv6 (::ffff:a.b.c.d), so one sorted array
 * of merged ranges serves both families, and a client that reaches an
 * IPv6 socket as ::ffff:1.2.3.4 matches the IPv4 rules.
 */
#ifndef LBD_CIDR_H
#define LBD_CIDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>


struct cidr_addr {
	uint64_t hi, lo;	/* the 128 bits, host order, most significant first */
};

struct cidr_range {
	struct cidr_addr first, last;	/* inclusive */
};

struct cidr_set {
	struct cidr_range *ranges;	/* owned; sorted and merged after cidr_set_finish */
	size_t n, cap;
};

/*
 * Parses "ADDR/LEN" or a bare ADDR (all of its bits: /32 or /128).  Strict:
 * LEN in decimal without leading zeros, and no bit set past LEN
 * ("10.0.0.1/8" is refused, as a likely typo, rather than masked).
 * Returns 0, or -1 with a reason in *why (a static string).
 */
int cidr_parse(const char *text, struct cidr_range *out, const char **why);

/* Adds a prefix (cidr_parse's rules); -1 with *why on a bad one or no memory. */
int cidr_set_add(struct cidr_set *set, const char *text, const char **why);

/* Sorts and merges what was added; call once before cidr_set_contains. */
void cidr_set_finish(struct cidr_set *set);

/* 1 if sa (AF_INET or AF_INET6) is in the set, else 0 (also for other families). */
int cidr_set_contains(const struct cidr_set *set, const struct sockaddr *sa);
int cidr_set_contains_addr(const struct cidr_set *set, const struct cidr_addr *a);

/* The address of sa as cidr_set_contains sees it; -1 for other families. */
int cidr_addr_from_sockaddr(const struct sockaddr *sa, struct cidr_addr *out);

void cidr_set_free(struct cidr_set *set);

#endif
