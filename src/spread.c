/*
 * Weighted choices at O(log n) a pick.  See spread.h.
 */
#include "balance.h"
#include "spread.h"

size_t
spread_find(const uint64_t *prefix, size_t n, uint64_t r)
{
	size_t lo = 0, hi = n;

	/* Invariant: the answer is in [lo, hi); prefix is non-decreasing. */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (r < prefix[mid - 1])
			hi = mid;
		else
			lo = mid;
	}
	return lo;
}

uint64_t
spread_step(uint64_t total)
{
	/* total / phi, in 128 bits: 0.6180339887498949 * 2^64 */
	uint64_t near = (uint64_t)(((unsigned __int128)total *
	    UINT64_C(0x9e3779b97f4a7c15)) >> 64);
	uint64_t d;

	if (total <= 2)
		return 1;
	/* A coprime lies within a few of any number: the gap between
	 * integers coprime with total is tiny next to total (Jacobsthal). */
	for (d = 0; d < total; d++) {
		if (near + d < total && balance_gcd(near + d, total) == 1)
			return near + d;
		if (d <= near && near - d > 0 && balance_gcd(near - d, total) == 1)
			return near - d;
	}
	return 1;
}

uint64_t
spread_position(uint64_t c, uint64_t step, uint64_t total)
{
	return (uint64_t)((unsigned __int128)(c % total) * step % total);
}

uint64_t
spread_draw(uint64_t *state, uint64_t total)
{
	*state += UINT64_C(0x9e3779b97f4a7c15);
	/* Lemire's multiply-shift: no modulo bias worth the name at 2^64. */
	return (uint64_t)(((unsigned __int128)balance_mix(*state) * total) >> 64);
}
