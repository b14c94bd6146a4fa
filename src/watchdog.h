/*
 * The worker watchdog's arithmetic, shared by the worker (how long it may
 * sleep), the master (when a worker is hung) and lbstat (how old a
 * heartbeat is).  Times are CLOCK_MONOTONIC milliseconds (clock_ms), which
 * every process on the machine reads alike.
 */
#ifndef LBD_WATCHDOG_H
#define LBD_WATCHDOG_H

#include <stdint.h>

#include "statsmap.h"

/* Age of a heartbeat at now; 0 for one written after now was read. */
static inline uint64_t
watchdog_age_ms(uint64_t heartbeat_ms, uint64_t now_ms)
{
	return now_ms > heartbeat_ms ? now_ms - heartbeat_ms : 0;
}

/* epoll_wait's timeout for a worker, idle (-1) or not: a quiet worker must
 * never look hung, so it turns (and beats) at least twice per worker-stall. */
static inline int
watchdog_wait_ms(int timeout, uint32_t stall_ms)
{
	int most = (int)(stall_ms / 2);

	return timeout < 0 || timeout > most ? most : timeout;
}

/* How often the master looks: a hung worker is seen within
 * worker-stall + this. */
static inline uint32_t
watchdog_period_ms(uint32_t stall_ms)
{
	return stall_ms / 4 < 500 ? stall_ms / 4 : 500;
}

static inline int
watchdog_stalled(uint64_t heartbeat_ms, uint64_t now_ms, uint32_t stall_ms)
{
	return watchdog_age_ms(heartbeat_ms, now_ms) >= stall_ms;
}

/* The first worker slot from `from` on whose worker runs and has not
 * turned for stall_ms; -1 when none. */
static inline int
watchdog_next_stalled(const struct stats_map *map, uint64_t now_ms, uint32_t stall_ms,
    int from)
{
	const struct lbd_stats_worker *rec;

	for (; from >= 0 && (uint32_t)from < map->hdr->worker_slots; from++) {
		rec = stats_worker(map, (uint32_t)from);
		if (rec->state == LBD_WORKER_RUNNING && watchdog_stalled(__atomic_load_n(
		    &rec->heartbeat_ms, __ATOMIC_RELAXED), now_ms, stall_ms))
			return from;
	}
	return -1;
}

#endif
