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
#include "stats.h"

/* One service's schedule in one worker; built on first use. */
struct schedule {
	uint32_t version;		/* the service's sched_version it was built from */
	int built;
	uint32_t *weights;		/* effective, 0 = not eligible; per backend */
	uint32_t *ids;			/* backend slots, for the source hash */
	uint32_t *candidates;		/* scratch: weights less what a walk tried */
	uint64_t *active;		/* scratch: active connections, for leastconn */
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
 * The next backend for a connection from client to try, marked tried, or
 * -1 when none is eligible or the service's retries are spent (walk->
 * attempts tells which).
 */
int schedule_next(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map, struct sched_walk *walk, const struct sockaddr *client);

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
