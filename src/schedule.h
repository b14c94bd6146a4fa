/*
 * Which backend, in a worker: each service's schedule (the effective
 * weights and the smooth weighted sequence, rebuilt when the master bumps
 * the service's sched_version), eligibility, and one connection's walk
 * over the backends as its connects fail.  The pure choices it makes them
 * with are balance.c's.
 */
#ifndef LBD_SCHEDULE_H
#define LBD_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "statsmap.h"

/* One service's schedule in one worker; built on first use. */
struct schedule {
	uint32_t version;		/* the service's sched_version it was built from */
	int built;
	uint32_t *weights;		/* effective, 0 = not eligible; per backend */
	uint32_t *ids;			/* backend slots in the stats segment */
	uint64_t *keys;			/* backends' name hashes: the source hash's key */
	uint32_t *candidates;		/* scratch: weights less what a walk tried */
	uint64_t *active;		/* scratch: active connections, for leastconn */
	uint64_t *load;			/* scratch: estimated load, for leastload */
	uint64_t *recent;		/* scratch: picks since the load was measured */
	uint8_t *over;			/* per backend: over its share of the load */
	uint8_t *seq;			/* smooth weighted order, len entries */
	size_t len;
};

/* One connection's walk over its service's backends. */
struct sched_walk {
	uint64_t tried;			/* backend indexes already tried */
	uint64_t full;			/* skipped: all their maxconn slots in use */
	uint32_t rr_pos;		/* place in the sequence, for retries */
	uint8_t attempts;		/* connects tried */
};

int schedule_init(struct schedule *s, size_t nbackends);

/*
 * The next backend for a connection from client to try, marked tried and
 * counted as a pick in counter row `row` (the worker's), or -1 when none is
 * eligible or the service's retries are spent (walk->attempts tells which).
 */
int schedule_next(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map, uint32_t row, struct sched_walk *walk,
    const struct sockaddr *client);

/*
 * Marks in s->over the backends whose connections max-connection-age may
 * close: under leastload, those whose measured load per unit of weight is
 * above the service's, or that take no new connections (closing a
 * connection to a backend at or under its share only moves load about);
 * under the other modes, every one.
 */
void schedule_age_candidates(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map);

/* The try at backend b never happened (no socket for it): undo it. */
void schedule_untry(struct sched_walk *walk, int b);

#define SCHED_FULL	(-2)

/*
 * maxconn admission: schedule_next, skipping backends whose maxconn slots
 * are all in use, and holding a slot of the one returned when it has a
 * maxconn (for worker row; the caller gives it back with queue_slot_give).
 * SCHED_FULL when every eligible backend left is full: the client waits.
 */
int schedule_next_slot(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map, struct sched_walk *walk, const struct sockaddr *client,
    uint32_t row);

#endif
