/*
 * Access to the stats segment (layout: include/lbd/stats.h).  The master
 * creates it and lays services and backends into slots by name; workers
 * bump their own counter rows; lbstat maps it read-only and takes
 * consistent snapshots.
 */
#ifndef LBD_STATSMAP_H
#define LBD_STATSMAP_H

#include <stddef.h>
#include <stdint.h>

#include "lbd/stats.h"

struct lbd_config;

struct stats_map {
	void *base;			/* owned mapping, NULL when closed */
	size_t size;
	struct lbd_stats_header *hdr;
};

/* Master: create (or replace) the segment file, mode 0644, and map it. */
int stats_create(struct stats_map *map, const char *path, uint32_t workers);
/* lbstat: map an existing segment read-only, checking magic and version. */
int stats_open_readonly(struct stats_map *map, const char *path, char *err, size_t errlen);
/*
 * A master after a binary upgrade: map the old master's segment read-write,
 * counters and admin state as they are, and stamp this version.  Fails
 * (err says why) if it is missing or laid out otherwise.
 */
int stats_adopt(struct stats_map *map, const char *path, uint32_t workers, char *err,
    size_t errlen);
void stats_unmap(struct stats_map *map);

/*
 * Master: give every service and backend of conf a slot (keeping the slot,
 * counters and admin state of names seen before), retire the slots of names
 * no longer configured, and bump the generation.  Fails only when slots run
 * out.  Sets conf's slot fields.
 */
int stats_layout(struct stats_map *map, struct lbd_config *conf, char *err, size_t errlen);
/* Master: free retired slots once no worker of an older generation lives. */
void stats_release_retired(struct stats_map *map);
/* Master: fold a dead worker's counters into the retired row. */
void stats_retire_worker(struct stats_map *map, uint32_t slot);

/* Seqlock around the master's writes; readers retry on a change. */
void stats_write_begin(struct stats_map *map);
void stats_write_end(struct stats_map *map);
int stats_read_retry(const struct stats_map *map, uint32_t seq);

static inline struct lbd_stats_service *
stats_service(const struct stats_map *map, uint32_t slot)
{
	return (struct lbd_stats_service *)((char *)map->base +
	    map->hdr->services_off) + slot;
}

static inline struct lbd_stats_backend *
stats_backend(const struct stats_map *map, uint32_t slot)
{
	return (struct lbd_stats_backend *)((char *)map->base +
	    map->hdr->backends_off) + slot;
}

static inline struct lbd_stats_worker *
stats_worker(const struct stats_map *map, uint32_t slot)
{
	return (struct lbd_stats_worker *)((char *)map->base +
	    map->hdr->workers_off) + slot;
}

static inline struct lbd_stats_counter *
stats_counter(const struct stats_map *map, uint32_t row, uint32_t backend)
{
	return (struct lbd_stats_counter *)((char *)map->base +
	    map->hdr->counters_off) + (size_t)row * map->hdr->max_backends + backend;
}

static inline struct lbd_stats_service_counter *
stats_service_counter(const struct stats_map *map, uint32_t row, uint32_t service)
{
	return (struct lbd_stats_service_counter *)((char *)map->base +
	    map->hdr->service_counters_off) + (size_t)row * map->hdr->max_services + service;
}

static inline struct lbd_stats_limit *
stats_limit(const struct stats_map *map, uint32_t backend)
{
	return (struct lbd_stats_limit *)((char *)map->base + map->hdr->limits_off) + backend;
}

/*
 * Single-writer counters: a relaxed load and store, no lock prefix, yet
 * never torn for a reader on another CPU.
 */
static inline void
stats_add(uint64_t *counter, uint64_t n)
{
	__atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n,
	    __ATOMIC_RELAXED);
}

static inline void
stats_sub(uint64_t *counter, uint64_t n)
{
	__atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) - n,
	    __ATOMIC_RELAXED);
}

static inline uint64_t
stats_load(const uint64_t *counter)
{
	return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

/*
 * "up", "down", "drain" or "disabled": admin state wins over health, since
 * a disabled backend is not even checked and a drained one takes nothing new.
 */
const char *stats_state_name(uint32_t health, uint32_t admin);

/* Sum of a backend's active connections over every worker row. */
uint64_t stats_backend_active(const struct stats_map *map, uint32_t backend);
/*
 * Sum of a total (a uint64_t of struct lbd_stats_counter at offset field)
 * over every row, the dead workers' included: it never goes down.
 */
uint64_t stats_backend_total(const struct stats_map *map, uint32_t backend, size_t field);

#endif
