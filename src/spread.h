/*
 * Weighted choices among many backends at O(log n) a pick (pure): prefix
 * sums of weights searched by position, the golden-ratio roundrobin order
 * for services too large for the smooth sequence, and the weighted draws of
 * the power-of-d choices.  schedule.c builds the sums once per schedule.
 */
#ifndef LBD_SPREAD_H
#define LBD_SPREAD_H

#include <stddef.h>
#include <stdint.h>

/*
 * Index of the member owning position r (0 <= r < prefix[n - 1]), where
 * prefix[i] is the sum of the weights of members 0..i: the first i with
 * r < prefix[i].  Members of weight 0 own nothing.  O(log n).
 */
size_t spread_find(const uint64_t *prefix, size_t n, uint64_t r);

/*
 * The roundrobin step for a period of total positions: coprime with total
 * (so counter values c, c+1, ... c+total-1 visit every position once) and
 * the nearest such to total/phi, so consecutive turns land far apart and
 * every stretch of turns is spread over the members like a low-discrepancy
 * sequence (the three-distance theorem).  1 for a total of 0..2.
 */
uint64_t spread_step(uint64_t total);

/* The position of counter value c: (c * step) mod total; total > 0. */
uint64_t spread_position(uint64_t c, uint64_t step, uint64_t total);

/* A uniform draw in [0, total), total > 0, advancing the generator state. */
uint64_t spread_draw(uint64_t *state, uint64_t total);


#endif
