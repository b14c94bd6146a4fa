/*
 * Slow start's ramp (pure) and the master's ramp clocks.  See slowstart.h.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "slowstart.h"

/*
 * The master's clocks, by backend slot: when each ramp started, 0 = none;
 * and the slots ramping now, so a tick costs the ramps, not the backends.
 */
static uint64_t *ramp_start_ms;
static uint32_t ramp_slots;
static uint32_t *ramping;
static size_t nramping, ramping_cap;

/* Room for slot b in the clocks and for one more ramp in the list. */
static int
ramp_room(uint32_t b)
{
	uint32_t n = ramp_slots == 0 ? 256 : ramp_slots;
	void *p;

	while (n <= b)
		n *= 2;
	if (n > ramp_slots) {
		if ((p = reallocarray(ramp_start_ms, n, sizeof(*ramp_start_ms))) == NULL)
			return -1;
		ramp_start_ms = p;
		memset(ramp_start_ms + ramp_slots, 0, (n - ramp_slots) * sizeof(uint64_t));
		ramp_slots = n;
	}
	if (nramping == ramping_cap) {
		n = ramping_cap == 0 ? 64 : 2 * (uint32_t)ramping_cap;
		if ((p = reallocarray(ramping, n, sizeof(*ramping))) == NULL)
			return -1;
		ramping = p;
		ramping_cap = n;
	}
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
	if (ramp_room(b) == -1) {
		log_warn("backend slot %u: slow start", b);
		return;
	}
	if (ramp_start_ms[b] == 0)
		ramping[nramping++] = b;
	ramp_start_ms[b] = now_ms > 0 ? now_ms : 1;
	__atomic_store_n(&be->ramp_permille, slowstart_ramp(0, period), __ATOMIC_RELAXED);
}

/*
 * A backend is new when its slot was not one of old's: a name kept keeps
 * its slot (statslayout.c), a new one takes a free slot.  Linear, so a
 * reload of 10 000 backends does not compare every name with every other.
 */
void
slowstart_added(struct stats_map *map, const struct lbd_config *old,
    const struct lbd_config *conf, uint64_t now_ms)
{
	uint8_t *was = calloc(map->hdr->max_backends, 1);
	size_t i, j;

	if (was == NULL) {
		log_warn("slow start: %u backend slots", map->hdr->max_backends);
		return;
	}
	for (i = 0; i < old->nservices; i++)
		for (j = 0; j < old->services[i].nbackends; j++)
			if (old->services[i].backends[j].slot < map->hdr->max_backends)
				was[old->services[i].backends[j].slot] = 1;
	stats_write_begin(map);
	for (i = 0; i < conf->nservices; i++) {
		const struct lbd_service_conf *svc = &conf->services[i];

		for (j = 0; j < svc->nbackends && svc->slowstart_ms > 0; j++)
			if (!was[svc->backends[j].slot]) {
				slowstart_begin(map, svc->backends[j].slot, now_ms);
				stats_service(map, svc->slot)->sched_version++;
			}
	}
	stats_write_end(map);
	free(was);
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
	size_t i = 0;

	while (i < nramping) {
		uint32_t b = ramping[i];

		(void)slowstart_step(map, b, now_ms, &next);
		if (ramp_start_ms[b] == 0)
			ramping[i] = ramping[--nramping];	/* ramp over */
		else
			i++;
	}
	return next;
}
