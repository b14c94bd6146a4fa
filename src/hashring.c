/*
 * The source hash's ring.  See hashring.h.
 */
#include <stdlib.h>
#include <string.h>

#include "hashring.h"
#include "balance.h"
#include "spread.h"

uint32_t
hashring_unit(const uint32_t *weights, size_t n)
{
	uint32_t g = 0;
	size_t i;

	for (i = 0; i < n; i++)
		g = (uint32_t)balance_gcd(g, weights[i]);
	return g > 0 ? g : 1;
}

uint32_t
hashring_count(uint32_t weight, uint32_t ramp_permille, uint32_t unit)
{
	uint64_t k = (uint64_t)weight * HASHRING_POINTS / (unit > 0 ? unit : 1);

	if (weight == 0)
		return 0;
	if (ramp_permille != 0)
		k = k * ramp_permille / 1000;
	/* lbadmin may set a weight far above the configured ones: bounded,
	 * it costs only evenness. */
	if (k > HASHRING_POINTS * 256)
		k = HASHRING_POINTS * 256;
	return k > 0 ? (uint32_t)k : 1;
}

/* Stable LSD radix sort of the points by their position (high 32 bits),
 * 11 bits a pass: linear in the points, and its counts fit on the stack. */
static void
hashring_sort(uint64_t *a, uint64_t *tmp, size_t n)
{
	size_t count[2048], i, shift;
	uint64_t *from = a, *to = tmp, *t;

	for (shift = 32; shift < 64; shift += 11) {
		size_t sum = 0;

		memset(count, 0, sizeof(count));
		for (i = 0; i < n; i++)
			count[(from[i] >> shift) & 0x7ff]++;
		for (i = 0; i < 2048; i++) {
			size_t c = count[i];

			count[i] = sum;
			sum += c;
		}
		for (i = 0; i < n; i++)
			to[count[(from[i] >> shift) & 0x7ff]++] = from[i];
		t = from;
		from = to;
		to = t;
	}
	if (from != a)
		memcpy(a, from, n * sizeof(*a));
}

/* Points that share a position go in order of their member's key, not of
 * the member's index: the first of them owns the arc, on every node. */
static void
hashring_ties(uint64_t *a, size_t n, const uint64_t *keys)
{
	size_t i, j;

	for (i = 1; i < n; i++)
		for (j = i; j > 0 && a[j] >> 32 == a[j - 1] >> 32 &&
		    keys[(uint32_t)a[j]] < keys[(uint32_t)a[j - 1]]; j--) {
			uint64_t t = a[j];

			a[j] = a[j - 1];
			a[j - 1] = t;
		}
}

static int
hashring_reserve(struct hashring *r, size_t total)
{
	uint64_t *p;

	if (total <= r->cap)
		return 0;
	if ((p = realloc(r->points, total * sizeof(*p))) == NULL)
		return -1;
	r->points = p;
	r->cap = total;
	return 0;
}

int
hashring_build(struct hashring *r, const uint64_t *keys, const uint32_t *count,
    size_t n)
{
	size_t i, total = 0, k = 0;
	uint64_t *tmp;
	uint32_t j;

	r->n = 0;
	for (i = 0; i < n; i++)
		total += count[i];
	/* The sort's other half only while sorting: it is as big as the ring. */
	if (hashring_reserve(r, total) == -1 ||
	    (tmp = malloc((total > 0 ? total : 1) * sizeof(*tmp))) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		for (j = 0; j < count[i]; j++) {
			/* Point j of a member is the same whatever its count:
			 * a weight going up or down adds or takes points only. */
			uint64_t pos = balance_mix(keys[i] ^ balance_mix(j + UINT64_C(1))) >> 32;

			r->points[k++] = pos << 32 | (uint32_t)i;
		}
	hashring_sort(r->points, tmp, total);
	free(tmp);
	hashring_ties(r->points, total, keys);
	r->n = total;
	return 0;
}

size_t
hashring_find(const struct hashring *r, uint32_t h)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if ((uint32_t)(r->points[mid] >> 32) < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < r->n ? lo : 0;
}

void
hashring_free(struct hashring *r)
{
	free(r->points);
	r->points = NULL;
	r->n = r->cap = 0;
}
