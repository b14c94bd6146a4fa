/*
 * Balancing choices (pure).  See balance.h for the contracts.
 */
#include <math.h>
#include <netinet/in.h>
#include <string.h>

#include "balance.h"

uint64_t
balance_gcd(uint64_t a, uint64_t b)
{
	while (b != 0) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* a/wa < b/wb, exactly, for counts and weights. */
static int
per_weight_less(uint64_t a, uint32_t wa, uint64_t b, uint32_t wb)
{
	return (unsigned __int128)a * wb < (unsigned __int128)b * wa;
}

size_t
balance_smooth_sequence(const uint32_t *weights, size_t n, uint8_t *seq)
{
	int64_t current[256];
	uint32_t g = 0, reduced[256];
	int64_t total = 0;
	size_t i, step, len;

	if (n > 256)
		n = 256;
	for (i = 0; i < n; i++)
		g = (uint32_t)balance_gcd(g, weights[i]);
	if (g == 0)
		return 0;
	for (i = 0; i < n; i++) {
		reduced[i] = weights[i] / g;
		total += reduced[i];
		current[i] = 0;
	}
	len = (size_t)total;
	if (len > BALANCE_SEQ_MAX)
		len = BALANCE_SEQ_MAX;
	for (step = 0; step < len; step++) {
		size_t best = 0;
		int found = 0;

		for (i = 0; i < n; i++) {
			if (reduced[i] == 0)
				continue;
			current[i] += reduced[i];
			if (!found || current[i] > current[best]) {
				best = i;
				found = 1;
			}
		}
		current[best] -= total;
		seq[step] = (uint8_t)best;
	}
	return len;
}

int
balance_leastconn(const uint64_t *active, const uint32_t *weights, size_t n,
    uint64_t rotate)
{
	size_t k, i;
	int best = -1;

	for (k = 0; k < n; k++) {
		i = (size_t)((rotate + k) % n);
		if (weights[i] == 0)
			continue;
		/* (active[i]+1)/weights[i] < (active[best]+1)/weights[best]: the
		 * load with this connection added (HAProxy's too), so a backend of
		 * small weight, a slow-starting one, is not picked just for being
		 * idle.  For equal weights the order is the same as active's. */
		if (best == -1 || per_weight_less(active[i] + 1, weights[i],
		    active[best] + 1, weights[(size_t)best]))
			best = (int)i;
	}
	return best;
}

static int
over_share(uint64_t recent, uint32_t weight, uint64_t total_recent, uint64_t total_weight)
{
	/* recent > 2 * total_recent * weight / total_weight + 2, without division */
	return (unsigned __int128)(recent > 2 ? recent - 2 : 0) * total_weight >
	    (unsigned __int128)2 * total_recent * weight;
}

static int
leastload_better(const uint64_t *load, const uint64_t *active, const uint32_t *weights,
    size_t i, int best)
{
	size_t b = (size_t)best;

	if (best == -1 || per_weight_less(load[i], weights[i], load[b], weights[b]))
		return 1;
	if (per_weight_less(load[b], weights[b], load[i], weights[i]))
		return 0;
	return per_weight_less(active[i], weights[i], active[b], weights[b]);
}

int
balance_leastload(const uint64_t *load, const uint64_t *active, const uint64_t *recent,
    const uint32_t *weights, size_t n, uint64_t rotate)
{
	uint64_t total_recent = 0, total_weight = 0;
	int best = -1, best_any = -1;
	size_t k, i;

	for (i = 0; i < n; i++)
		if (weights[i] != 0) {
			total_recent += recent[i];
			total_weight += weights[i];
		}
	for (k = 0; k < n; k++) {
		i = (size_t)((rotate + k) % n);
		if (weights[i] == 0)
			continue;
		if (leastload_better(load, active, weights, i, best_any))
			best_any = (int)i;
		if (!over_share(recent[i], weights[i], total_recent, total_weight) &&
		    leastload_better(load, active, weights, i, best))
			best = (int)i;
	}
	return best != -1 ? best : best_any;
}

uint64_t
balance_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

uint64_t
balance_client_hash(const struct sockaddr *sa)
{
	uint64_t h = UINT64_C(0x9e3779b97f4a7c15), word;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		return balance_mix(h ^ sin->sin_addr.s_addr);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		memcpy(&word, sin6->sin6_addr.s6_addr, 8);
		h = balance_mix(h ^ word);
		memcpy(&word, sin6->sin6_addr.s6_addr + 8, 8);
		return balance_mix(h ^ word);
	}
	return h;
}

/* FNV-1a over the bytes, then mix64: FNV alone leaves the high bits of short
 * names that differ only in their last letter ("app1", "app2") too alike. */
uint64_t
balance_name_hash(const char *name)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	const unsigned char *p;

	for (p = (const unsigned char *)name; *p != '\0'; p++) {
		h ^= *p;
		h *= UINT64_C(0x100000001b3);
	}
	return balance_mix(h);
}

int
balance_rendezvous(uint64_t client_hash, const uint64_t *ids,
    const uint32_t *weights, size_t n)
{
	double best_score = 0, score, u;
	size_t i;
	int best = -1;

	for (i = 0; i < n; i++) {
		if (weights[i] == 0)
			continue;
		/* Weighted HRW: -w / ln(u), u uniform in (0,1) from the pair's hash. */
		u = ((double)(balance_mix(client_hash ^ balance_mix(ids[i] + 1)) >> 11) + 0.5) /
		    9007199254740992.0;
		score = -(double)weights[i] / log(u);
		if (best == -1 || score > best_score) {
			best = (int)i;
			best_score = score;
		}
	}
	return best;
}
