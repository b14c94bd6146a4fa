/*
 * Slow start: a backend that comes back (health up, lbadmin enable) or is
 * added by a reload takes a growing share of its weight over its service's
 * slowstart period, in steps of a tenth: 10% at once, full weight at the
 * end.  The master keeps the clocks and writes each step into the backend
 * record (ramp_permille), bumping the service's sched_version so workers
 * rebuild their schedules; schedule.c applies it.
 */
#ifndef LBD_SLOWSTART_H
#define LBD_SLOWSTART_H

#include <stdint.h>

#include "config.h"
#include "statsmap.h"

#define SLOWSTART_STEPS		10
#define SLOWSTART_SCALE_MAX	10	/* weights scaled up so a step is one unit */

/* Pure: the ramp in thousandths after elapsed of period; 0 when over. */
uint32_t slowstart_ramp(uint64_t elapsed_ms, uint32_t period_ms);
/* Pure: the ms from the ramp's start to its next step (or its end). */
uint64_t slowstart_next_step(uint64_t elapsed_ms, uint32_t period_ms);
/* Pure: weight scaled by scale, and by the ramp when it is not 0; never 0
 * for a weight that is not. */
uint32_t slowstart_weight(uint32_t weight, uint32_t ramp_permille, uint32_t scale);
/* Pure: how much weights summing to total may be scaled, max entries at most. */
uint32_t slowstart_scale(uint64_t total, uint32_t max);

/* Master, holding the seqlock: backend slot b starts its ramp now, if its
 * service has a slowstart. */
void slowstart_begin(struct stats_map *map, uint32_t b, uint64_t now_ms);
/* Master, after a reload's layout: ramps the backends conf has and old had not. */
void slowstart_added(struct stats_map *map, const struct lbd_config *old,
    const struct lbd_config *conf, uint64_t now_ms);
/* Master: steps the ramps that are due; ms until the next step, -1 none. */
int64_t slowstart_tick(struct stats_map *map, uint64_t now_ms);

#endif
