/*
 * Health checks, run once in the master for all workers: a nonblocking
 * connect (and optional send/expect) per backend every interval, with
 * jitter; rise/fall turn results into the backend's health in the stats
 * segment, and every change is logged once and bumps the service's
 * sched_version so workers rebuild their schedules.
 */
#ifndef LBD_HEALTH_H
#define LBD_HEALTH_H

#include "config.h"
#include "statsmap.h"

struct health;

/* Starts checking every backend of conf (slots already laid out). */
struct health *health_start(int epfd, struct stats_map *map, const struct lbd_config *conf);
/*
 * After a successful reload: check conf's backends from now on.  Backends
 * that stay keep their state and counters (they live in the segment).
 */
void health_reconfigure(struct health *h, const struct lbd_config *conf);
void health_stop(struct health *h);

#endif
