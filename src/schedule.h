/*
 * Which backend, in a worker: each service's schedule (the effective
 * weights, and what its balance mode picks with: the smooth weighted
 * sequence, prefix sums of the weights, or the source hash's ring; rebuilt
 * when the master bumps the service's sched_version), eligibility, and one
 * connection's walk over the backends as its connects fail.  The pure
 * choices it makes them with are balance.c's, spread.c's and hashring.c's.
 *
 * Cost of a pick, n backends in the service (none is O(n)):
 * - roundrobin: up to SCHED_SMALL_MAX backends whose weights' period (sum
 *   over gcd) fits BALANCE_SEQ_MAX, nginx's smooth sequence, O(1); above,
 *   the golden-ratio order over prefix sums, O(log n), each backend exactly
 *   its weight's share of every period of the shared counter.
 * - leastconn, leastload: every eligible backend compared while there are
 *   at most SCHED_EXACT_MAX (exact at the moment of choice); above, the
 *   best of the roundrobin turn's backend (ties go to it), the last
 *   choice's runner-up and SCHED_CHOICES - 1 drawn at random in proportion
 *   to weight (O(log n)).
 * - source: up to SCHED_SMALL_MAX backends, weighted rendezvous hashing
 *   (exact shares, the mapping of every lbd before); above, the hash ring,
 *   O(log n).  Both are consistent: a backend going away moves only its
 *   clients.  A service that grows past SCHED_SMALL_MAX (or shrinks back)
 *   remaps its clients once.
 * A retry skips the backends its walk tried, and a maxconn admission at
 * most SCHED_FULL_MAX full ones: O(retries) more at worst, not O(n).
 * Building a schedule is O(n) (the ring: O(points)), once per change of
 * the service's sched_version, and in a large service at most every
 * SCHED_REBUILD_MS.
 */
#ifndef LBD_SCHEDULE_H
#define LBD_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "hashring.h"
#include "statsmap.h"

#define SCHED_RETRIES_MAX	LBD_MAX_RETRIES	/* config.c's bound on retries */
#define SCHED_TRIED_INLINE	4	/* tries a walk holds without allocating */
#define SCHED_FULL_MAX		64	/* full backends skipped before the client queues */
#define SCHED_SMALL_MAX		64	/* up to this many backends: the smooth sequence */
#define SCHED_EXACT_MAX		32	/* leastconn scans up to this many eligible ones */
#define SCHED_CHOICES		2	/* ...and compares this many above (the turn's and draws) */
#define SCHED_REBUILD_MS	5	/* a large service's schedule, at most this often */

/* One service's schedule in one worker; built on first use. */
struct schedule {
	uint32_t version;		/* the service's sched_version it was built from */
	int built;
	uint64_t built_ms;		/* when, for a large service (monotonic) */
	size_t n;			/* the service's backends */
	uint32_t *weights;		/* effective, 0 = not eligible; per backend */
	uint32_t *ids;			/* backend slots in the stats segment */
	uint64_t *keys;			/* backends' name hashes: the source hash's key */
	uint32_t *ramp;			/* scratch: slow start's ramps, per backend */
	uint32_t *raw;			/* scratch: the segment's weights, per backend */
	uint32_t *count;		/* per backend: its points on the ring */
	uint64_t *load;			/* scratch: measured load, for the age candidates */
	uint8_t *over;			/* per backend: over its share of the load */
	uint8_t *excl;			/* per backend: tried or full, during one pick */
	uint32_t *elig;			/* eligible backends' indexes, in order */
	uint64_t *prefix;		/* sums of their weights over the gcd, to each */
	size_t neligible;
	int uniform;			/* equal weights: prefix[i] is i + 1 */
	uint64_t step;			/* the golden-ratio roundrobin's step */
	uint8_t *seq;			/* smooth weighted order, len entries (small) */
	size_t len;
	int smooth;			/* roundrobin follows seq */
	struct hashring ring;		/* source, large: the eligible backends' points */
	uint32_t ring_unit;		/* the gcd of the configured weights */
	int ring_all;			/* the ring holds the ineligible backends too */
	uint64_t rng;			/* the draws of leastconn's choices */
	uint32_t memory;		/* the last choice's runner-up, UINT32_MAX none */
};

/* One connection's walk over its service's backends. */
struct sched_walk {
	uint64_t rr_pos;		/* place in the roundrobin order, for retries */
	uint32_t tried[SCHED_TRIED_INLINE];	/* backend indexes already tried */
	uint32_t *tried_more;		/* owned: the tries past those, when retries > 3 */
	uint8_t ntried;
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

/* Forgets the backends tried (a waiting client may take any); attempts stay. */
void schedule_walk_forget(struct sched_walk *walk);

/* Frees what the walk holds; call when its connection goes. */
void schedule_walk_free(struct sched_walk *walk);

#define SCHED_FULL	(-2)

/*
 * maxconn admission: schedule_next, skipping backends whose maxconn slots
 * are all in use (SCHED_FULL_MAX of them at most), and holding a slot of
 * the one returned when it has a maxconn (for worker row; the caller gives
 * it back with queue_slot_give).  SCHED_FULL when the eligible backends
 * left were full: the client waits.
 */
int schedule_next_slot(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map, struct sched_walk *walk, const struct sockaddr *client,
    uint32_t row);

#endif
