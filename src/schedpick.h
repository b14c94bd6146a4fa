/*
 * The picks of schedule.c (a worker's backend choice), one per balance
 * mode and size; see schedule.h for their costs.  Private to schedule.c.
 */
#ifndef LBD_SCHEDPICK_H
#define LBD_SCHEDPICK_H

#include "schedule.h"

/*
 * A backend for the walk from its current schedule, none of those it tried
 * nor the nfull in full (full: NULL when nfull is 0); -1 if none is left.
 */
int schedpick_pick(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map, struct sched_walk *walk, const uint32_t *full,
    size_t nfull, const struct sockaddr *client);

#endif
