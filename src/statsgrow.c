/*
 * A larger stats segment when a reload needs more slots than the file has.
 *
 * The new file holds everything the old one did at the same slot numbers
 * (so configurations, counter rows and admin state carry over untouched)
 * and is renamed over the old path: lbstat and lbadmin follow the path.
 * Workers already running keep writing to the old file they mapped; until
 * each exits, the master copies what it wrote into the new file
 * (stats_sync_worker), so totals never go back and nothing is lost.
 */
#include <string.h>

#include "statsmap.h"

static uint32_t
grown(uint32_t have, uint32_t need)
{
	uint64_t room = (uint64_t)need + need / 2 + 64;

	if (room > UINT32_MAX / 2)
		room = UINT32_MAX / 2;
	return have > room ? have : (uint32_t)room;
}

static void
copy_header(struct lbd_stats_header *to, const struct lbd_stats_header *from)
{
	to->generation = from->generation;
	to->master_pid = from->master_pid;
	to->workers_configured = from->workers_configured;
	to->start_time = from->start_time;
	to->worker_restarts = from->worker_restarts;
	to->reloads = from->reloads;
	memcpy(to->lbd_version, from->lbd_version, sizeof(to->lbd_version));
	to->worker_slots_used = from->worker_slots_used;
	to->worker_stall_ms = from->worker_stall_ms;
}

/* Row `from_row` of old into row `to_row` of map: backends and services. */
static void
copy_row(struct stats_map *map, uint32_t to_row, const struct stats_map *old,
    uint32_t from_row)
{
	memcpy(stats_counter(map, to_row, 0), stats_counter(old, from_row, 0),
	    (size_t)old->hdr->max_backends * sizeof(struct lbd_stats_counter));
	memcpy(stats_service_counter(map, to_row, 0), stats_service_counter(old, from_row, 0),
	    (size_t)old->hdr->max_services * sizeof(struct lbd_stats_service_counter));
}

void
stats_copy_segment(struct stats_map *map, const struct stats_map *old)
{
	const struct lbd_stats_header *o = old->hdr;
	uint32_t row;

	copy_header(map->hdr, o);
	memcpy(stats_service(map, 0), stats_service(old, 0),
	    (size_t)o->max_services * sizeof(struct lbd_stats_service));
	memcpy(stats_backend(map, 0), stats_backend(old, 0),
	    (size_t)o->max_backends * sizeof(struct lbd_stats_backend));
	memcpy(stats_worker(map, 0), stats_worker(old, 0),
	    (size_t)o->worker_slots * sizeof(struct lbd_stats_worker));
	memcpy(stats_limit(map, 0), stats_limit(old, 0),
	    (size_t)o->max_backends * sizeof(struct lbd_stats_limit));
	memcpy(stats_listen(map, 0), stats_listen(old, 0),
	    (size_t)o->max_listens * sizeof(struct lbd_stats_listen));
	memcpy(stats_member(map, 0), stats_member(old, 0),
	    (size_t)o->max_backends * sizeof(uint32_t));
	for (row = 0; row < o->worker_slots; row++)
		copy_row(map, row, old, row);
	copy_row(map, stats_retired_row(map), old, stats_retired_row(old));
}

int
stats_grow(struct stats_map *map, struct stats_map *old, const char *path,
    const struct stats_size *need)
{
	struct stats_map next;
	struct stats_size sz;

	sz.services = grown(map->hdr->max_services, need->services);
	sz.backends = grown(map->hdr->max_backends, need->backends);
	sz.listens = grown(map->hdr->max_listens, need->listens);
	sz.worker_slots = need->worker_slots > map->hdr->worker_slots ?
	    need->worker_slots : map->hdr->worker_slots;
	if (sz.worker_slots > LBD_MAX_WORKER_SLOTS)
		sz.worker_slots = LBD_MAX_WORKER_SLOTS;
	/* Nothing else writes what is copied meanwhile (the master is one
	 * thread) but the workers' counters, which stats_sync_worker follows. */
	if (stats_create(&next, path, &sz, map->hdr->workers_configured, map) == -1)
		return -1;
	/* A reader that finds this looks at the path again. */
	stats_write_begin(map);
	map->hdr->superseded = 1;
	stats_write_end(map);
	*old = *map;
	*map = next;
	return 0;
}

/* Moves counter *to up to *from, and a shared count by the same step. */
static void
sync_count(uint64_t *to, const uint64_t *from, uint64_t *shared)
{
	uint64_t now = stats_load(from), was = *to;

	if (now != was && shared != NULL)
		__atomic_fetch_add(shared, now - was, __ATOMIC_RELAXED);
	*to = now;
}

void
stats_sync_worker(struct stats_map *map, const struct stats_map *old, uint32_t slot)
{
	const struct lbd_stats_worker *from = stats_worker(old, slot);
	struct lbd_stats_worker *to = stats_worker(map, slot);
	uint32_t i;

	stats_write_begin(map);
	to->accepted = stats_load(&from->accepted);
	to->active = stats_load(&from->active);
	to->sleeping = __atomic_load_n(&from->sleeping, __ATOMIC_RELAXED);
	to->heartbeat_ms = stats_load(&from->heartbeat_ms);
	for (i = 0; i < old->hdr->max_backends; i++) {
		struct lbd_stats_counter *c = stats_counter(map, slot, i);
		uint64_t slots = c->slots;

		memcpy(c, stats_counter(old, slot, i), sizeof(*c));
		c->slots = slots;
		/* maxconn: the worker's slots count in the new file's total too. */
		sync_count(&c->slots, &stats_counter(old, slot, i)->slots,
		    &stats_limit(map, i)->conns);
	}
	for (i = 0; i < old->hdr->max_services; i++) {
		struct lbd_stats_service_counter *c = stats_service_counter(map, slot, i);
		uint64_t queued = c->queued;

		memcpy(c, stats_service_counter(old, slot, i), sizeof(*c));
		c->queued = queued;
		sync_count(&c->queued, &stats_service_counter(old, slot, i)->queued,
		    &stats_service(map, i)->queued);
	}
	stats_write_end(map);
}
