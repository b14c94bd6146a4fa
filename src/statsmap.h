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

/* How many records of each kind a segment holds. */
struct stats_size {
	uint32_t services;
	uint32_t backends;		/* also the members and limits */
	uint32_t listens;
	uint32_t worker_slots;		/* counter rows: one more, the retired row */
};

/* Room for conf and a reload or two of it. */
void stats_size_for(const struct lbd_config *conf, struct stats_size *sz);
/*
 * Master: create (or replace) the segment file, mode 0644, and map it;
 * with everything from's holds copied in first when from is not NULL.
 */
int stats_create(struct stats_map *map, const char *path, const struct stats_size *sz,
    uint32_t workers, const struct stats_map *from);
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
 * statslayout.c.  Master: give every service and backend of conf a slot
 * (keeping the slot, counters and admin state of names seen before), retire
 * the slots of names no longer configured, and bump the generation.  When
 * the segment has too few slots, changes nothing and returns
 * STATS_LAYOUT_FULL with the size conf needs in *need (stats_grow makes
 * room).  Sets conf's slot fields.  Cost: linear in slots and names.
 */
#define STATS_LAYOUT_FULL	(-2)
int stats_layout(struct stats_map *map, struct lbd_config *conf, struct stats_size *need);
/* Master: free retired slots once no worker of an older generation lives. */
void stats_release_retired(struct stats_map *map);
/*
 * statsgrow.c.  Master: replace the segment at path by one with room for
 * need (and more), same slots; *old keeps the previous mapping, which the
 * workers running now go on writing to.
 */
int stats_grow(struct stats_map *map, struct stats_map *old, const char *path,
    const struct stats_size *need);
/* Copies from's records, rows and slots into to, which is at least as large. */
void stats_copy_segment(struct stats_map *to, const struct stats_map *from);
/*
 * Master: bring worker slot's record and counter rows in map up to what the
 * worker, which maps old, has written there.  Keeps shared totals (maxconn
 * slots, queued clients) right by the same steps.
 */
void stats_sync_worker(struct stats_map *map, const struct stats_map *old, uint32_t slot);

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

static inline uint32_t
stats_retired_row(const struct stats_map *map)
{
	return map->hdr->worker_slots;
}

static inline struct lbd_stats_listen *
stats_listen(const struct stats_map *map, uint32_t i)
{
	return (struct lbd_stats_listen *)((char *)map->base + map->hdr->listens_off) + i;
}

/* Member i of the members region: a backend slot. */
static inline uint32_t *
stats_member(const struct stats_map *map, uint32_t i)
{
	return (uint32_t *)(void *)((char *)map->base + map->hdr->members_off) + i;
}

/*
 * Backend slot of service s's member j, or UINT32_MAX when the segment says
 * something out of range (a reader's torn snapshot must not run off the
 * mapping before its seqlock check throws it away).
 */
static inline uint32_t
stats_service_member(const struct stats_map *map, const struct lbd_stats_service *s,
    uint32_t j)
{
	uint64_t i = (uint64_t)s->member_first + j;
	uint32_t b;

	if (j >= s->nbackends || i >= map->hdr->max_backends)
		return UINT32_MAX;
	b = *stats_member(map, (uint32_t)i);
	return b < map->hdr->max_backends ? b : UINT32_MAX;
}

static inline struct lbd_stats_limit *
stats_limit(const struct stats_map *map, uint32_t backend)
{
	return (struct lbd_stats_limit *)((char *)map->base + map->hdr->limits_off) + backend;
}

/* The master, around a backend's check fields (its check_seq). */
static inline void
stats_check_begin(struct lbd_stats_backend *b)
{
	__atomic_add_fetch(&b->check_seq, 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void
stats_check_end(struct lbd_stats_backend *b)
{
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_add_fetch(&b->check_seq, 1, __ATOMIC_RELAXED);
}

/*
 * A reader's copy of backend slot, its check fields consistent (a bounded
 * number of tries: a master that died mid-write leaves them as they are).
 */
void stats_backend_read(const struct stats_map *map, uint32_t slot,
    struct lbd_stats_backend *out);

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
