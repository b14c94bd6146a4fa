/*
 * The worker watchdog's arithmetic, shared by the worker (how long it may
 * sleep), the master (when a worker is hung) and lbstat (how old a
 * heartbeat is).  Times are CLOCK_MONOTONIC milliseconds (clock_ms), which
 * every process on the machine reads alike.
 */
#ifndef LBD_WATCHDOG_H
#define LBD_WATCHDOG_H

#include <stdint.h>

/* Age of a heartbeat at now; 0 for one written after now was read. */
static inline uint64_t
watchdog_age_ms(uint64_t heartbeat_ms, uint64_t now_ms)
{
	return now_ms > heartbeat_ms ? now_ms - heartbeat_ms : 0;
}

/* The longest a worker's loop sleeps, idle or not: a quiet worker must
 * never look hung, so it turns (and beats) twice per worker-stall. */
static inline int
watchdog_idle_wake_ms(uint32_t stall_ms)
{
	return (int)(stall_ms / 2);
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

#endif
