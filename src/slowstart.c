/*
 * Slow start's ramp (pure) and the master's ramp clocks.  See slowstart.h.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "slowstart.h"

/* The master's clocks, by backend slot: when each ramp started, 0 = none;
 * grown to the highest slot that ramped, not sized by a compile-time limit. */
static uint64_t *ramp_start_ms;
static size_t ramp_slots;

/* Room for slot b's clock; -1 when out of memory. */
static int
slowstart_reserve(uint32_t b)
{
	size_t n = ramp_slots > 0 ? ramp_slots : 64;
	uint64_t *p;

	if (b < ramp_slots)
		return 0;
	while (n <= b)
		n *= 2;
	if ((p = realloc(ramp_start_ms, n * sizeof(*p))) == NULL)
		return -1;
	memset(p + ramp_slots, 0, (n - ramp_slots) * sizeof(*p));
	ramp_start_ms = p;
	ramp_slots = n;
	return 0;
}

uint32_t
slowstart_ramp(uint64_t elapsed_ms, uint32_t period_ms)
{
	uint64_t step;

	if (period_ms == 0 || elapsed_ms >= period_ms)
		return 0;
	step = elapsed_ms * SLOWSTART_STEPS / period_ms;
	return (uint32_t)((step + 1) * (1000 / SLOWSTART_STEPS));
}

uint64_t
slowstart_next_step(uint64_t elapsed_ms, uint32_t period_ms)
{
	uint64_t step = elapsed_ms * SLOWSTART_STEPS / period_ms + 1;

	/* Rounded up: the step is really reached when the clock says so. */
	return (step * period_ms + SLOWSTART_STEPS - 1) / SLOWSTART_STEPS;
}

uint32_t
slowstart_weight(uint32_t weight, uint32_t ramp_permille, uint32_t scale)
{
	uint64_t w = (uint64_t)weight * scale;

	if (weight == 0)
		return 0;
	if (ramp_permille != 0)
		w = w * ramp_permille / 1000;
	return w > 0 ? (uint32_t)w : 1;
}

uint32_t
slowstart_scale(uint64_t total, uint32_t max)
{
	uint64_t s = total > 0 ? max / total : SLOWSTART_SCALE_MAX;

	return s > SLOWSTART_SCALE_MAX ? SLOWSTART_SCALE_MAX : s < 1 ? 1 : (uint32_t)s;
}

void
slowstart_begin(struct stats_map *map, uint32_t b, uint64_t now_ms)
{
	struct lbd_stats_backend *be = stats_backend(map, b);
	uint32_t period = stats_service(map, be->service)->slowstart_ms;

	if (period == 0)
		return;
	if (slowstart_reserve(b) == -1) {
		/* Full weight at once rather than no backend at all. */
		log_warnx("backend slot %u: slow start: out of memory", b);
		return;
	}
	ramp_start_ms[b] = now_ms > 0 ? now_ms : 1;
	__atomic_store_n(&be->ramp_permille, slowstart_ramp(0, period), __ATOMIC_RELAXED);
}

static const struct lbd_service_conf *
find_service(const struct lbd_config *conf, const char *name)
{
	size_t i;

	for (i = 0; i < conf->nservices; i++)
		if (strcmp(conf->services[i].name, name) == 0)
			return &conf->services[i];
	return NULL;
}

static int
has_backend(const struct lbd_service_conf *svc, const char *name)
{
	size_t i;

	for (i = 0; svc != NULL && i < svc->nbackends; i++)
		if (strcmp(svc->backends[i].name, name) == 0)
			return 1;
	return 0;
}

void
slowstart_added(struct stats_map *map, const struct lbd_config *old,
    const struct lbd_config *conf, uint64_t now_ms)
{
	size_t i, j;

	stats_write_begin(map);
	for (i = 0; i < conf->nservices; i++) {
		const struct lbd_service_conf *svc = &conf->services[i];
		const struct lbd_service_conf *was = find_service(old, svc->name);

		for (j = 0; j < svc->nbackends; j++)
			if (!has_backend(was, svc->backends[j].name)) {
				slowstart_begin(map, svc->backends[j].slot, now_ms);
				stats_service(map, svc->slot)->sched_version++;
			}
	}
	stats_write_end(map);
}

/* Steps backend slot b's ramp; 1 when it changed. */
static int
slowstart_step(struct stats_map *map, uint32_t b, uint64_t now_ms, int64_t *next)
{
	struct lbd_stats_backend *be = stats_backend(map, b);
	uint32_t period = stats_service(map, be->service)->slowstart_ms;
	uint64_t elapsed = now_ms - ramp_start_ms[b];
	uint32_t ramp = slowstart_ramp(elapsed, period);
	int64_t left;

	if (be->state == LBD_SLOT_FREE)
		ramp = 0;
	if (ramp == 0)
		ramp_start_ms[b] = 0;
	else {
		left = (int64_t)(slowstart_next_step(elapsed, period) - elapsed);
		if (*next == -1 || left < *next)
			*next = left;
	}
	if (ramp == be->ramp_permille)
		return 0;
	stats_write_begin(map);
	__atomic_store_n(&be->ramp_permille, ramp, __ATOMIC_RELAXED);
	stats_service(map, be->service)->sched_version++;
	stats_write_end(map);
	return 1;
}

int64_t
slowstart_tick(struct stats_map *map, uint64_t now_ms)
{
	int64_t next = -1;
	uint32_t b;

	for (b = 0; b < ramp_slots; b++)
		if (ramp_start_ms[b] != 0)
			(void)slowstart_step(map, b, now_ms, &next);
	return next;
}
