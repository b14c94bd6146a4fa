/*
 * Backend choice in a worker: building a service's schedule, and the walk.
 * See schedule.h; the picks themselves are schedpick.c's.
 */
#include <stddef.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "balance.h"
#include "log.h"
#include "queue.h"
#include "schedpick.h"
#include "schedule.h"
#include "slowstart.h"
#include "spread.h"

int
schedule_init(struct schedule *s, size_t nbackends)
{
	size_t n = nbackends > 0 ? nbackends : 1;

	*s = (struct schedule){ .n = nbackends, .memory = UINT32_MAX };
	s->weights = calloc(n, sizeof(*s->weights));
	s->ids = calloc(n, sizeof(*s->ids));
	s->keys = calloc(n, sizeof(*s->keys));
	s->ramp = calloc(n, sizeof(*s->ramp));
	s->count = calloc(n, sizeof(*s->count));
	s->raw = calloc(n, sizeof(*s->raw));
	s->load = calloc(n, sizeof(*s->load));
	s->over = calloc(n, sizeof(*s->over));
	s->excl = calloc(n, sizeof(*s->excl));
	s->elig = calloc(n, sizeof(*s->elig));
	s->prefix = calloc(n, sizeof(*s->prefix));
	/* The smooth sequence only for a service small enough to use it. */
	s->seq = nbackends <= SCHED_SMALL_MAX ? malloc(BALANCE_SEQ_MAX) : NULL;
	/* Each worker draws its own: two workers do not compare the same pairs. */
	s->rng = balance_mix((uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)s);
	return s->weights == NULL || s->ids == NULL || s->keys == NULL ||
	    s->ramp == NULL || s->count == NULL || s->raw == NULL || s->load == NULL ||
	    s->over == NULL || s->excl == NULL || s->elig == NULL || s->prefix == NULL ||
	    (nbackends <= SCHED_SMALL_MAX && s->seq == NULL) ? -1 : 0;
}

/*
 * backup backends: eligible only while no other backend is.  Returns how
 * many backends are eligible after that.
 */
static size_t
schedule_backup_filter(struct schedule *s, const struct lbd_service_conf *svc)
{
	size_t i, primaries = 0, up = 0;

	for (i = 0; i < svc->nbackends; i++)
		primaries += s->weights[i] > 0 && !svc->backends[i].backup;
	for (i = 0; i < svc->nbackends; i++) {
		if (primaries > 0 && svc->backends[i].backup)
			s->weights[i] = 0;
		up += s->weights[i] > 0;
	}
	return up;
}

/*
 * When no backend is up, every one not drained or disabled is tried rather
 * than black-holing the service (the health checker says so in the log):
 * the primaries, or the backups when no primary is left to try.
 */
static void
schedule_fallback(struct schedule *s, const struct lbd_service_conf *svc,
    const struct stats_map *map)
{
	size_t i, n = 0;
	int pass;

	for (pass = 0; pass < 2 && n == 0; pass++)
		for (i = 0; i < svc->nbackends; i++) {
			const struct lbd_stats_backend *b = stats_backend(map, s->ids[i]);

			if (b->admin == LBD_ADMIN_NONE && svc->backends[i].backup == (pass == 1)) {
				s->weights[i] = b->weight;
				n += b->weight > 0;
			}
		}
}

/* Reads slow start's ramps into s->ramp; 1 when an eligible backend ramps. */
static int
schedule_read_ramps(struct schedule *s, const struct lbd_service_conf *svc,
    const struct stats_map *map)
{
	size_t i;
	int any = 0;

	for (i = 0; i < svc->nbackends; i++) {
		s->ramp[i] = __atomic_load_n(&stats_backend(map, s->ids[i])->ramp_permille,
		    __ATOMIC_RELAXED);
		any |= s->ramp[i] != 0 && s->weights[i] > 0;
	}
	return any;
}

/*
 * Slow start: a ramping backend's weight is scaled down by its ramp, the
 * others' scaled up to keep the steps (1/10 of the weight each) apart, as
 * far as the weights may sum to max.  leastconn compares (active + 1) /
 * weight, so a cold backend with a small weight takes its share, not every
 * new connection.
 */
static void
schedule_ramp(struct schedule *s, const struct lbd_service_conf *svc, uint32_t max)
{
	uint64_t total = 0;
	uint32_t scale;
	size_t i;

	for (i = 0; i < svc->nbackends; i++)
		total += s->weights[i];
	scale = slowstart_scale(total, max);
	for (i = 0; i < svc->nbackends; i++)
		s->weights[i] = slowstart_weight(s->weights[i], s->ramp[i], scale);
}

/* Lays the ring out anew from s->count; ring_all says what it holds. */
static void
schedule_lay_ring(struct schedule *s, const struct lbd_service_conf *svc, int all)
{
	s->ring_all = all;
	if (hashring_build(&s->ring, s->keys, s->count, svc->nbackends) == -1)
		log_warnx("service %s: source hash ring: out of memory", svc->name);
}

/*
 * source, large service: the ring, each backend's points from its weight
 * (before slow start's scaling, which moves every weight) and its ramp.
 * While most points belong to eligible backends the ring holds every
 * backend's and the pick passes over the others: a health change then
 * costs no new layout (O(points), HASHRING_POINTS a unit of weight), only
 * a change of weight or ramp does.  With few eligible, the ring is theirs
 * alone, so that the pick's walk past the others stays short.  A client's
 * backend is the same either way.
 */
static void
schedule_build_ring(struct schedule *s, const struct lbd_service_conf *svc)
{
	uint64_t all = 0, up = 0;
	int changed = !s->ring_all || s->ring.n == 0;
	size_t i;

	if (!s->built) {
		for (i = 0; i < svc->nbackends; i++)
			s->count[i] = svc->backends[i].weight;
		s->ring_unit = hashring_unit(s->count, svc->nbackends);
	}
	for (i = 0; i < svc->nbackends; i++) {
		uint32_t k = hashring_count(s->raw[i], s->ramp[i], s->ring_unit);

		changed |= k != s->count[i];
		s->count[i] = k;
		all += k;
		up += s->weights[i] > 0 ? k : 0;
	}
	if (up * 8 >= all) {
		if (changed)
			schedule_lay_ring(s, svc, 1);
		return;
	}
	for (i = 0; i < svc->nbackends; i++)
		s->count[i] = s->weights[i] > 0 ? s->count[i] : 0;
	schedule_lay_ring(s, svc, 0);
}

/* The eligible backends in order, and the sums of their weights over the
 * weights' gcd: what the large picks search.  Returns that period. */
static uint64_t
schedule_compact(struct schedule *s, const struct lbd_service_conf *svc)
{
	uint64_t sum = 0;
	uint32_t g = 0;
	size_t i, k = 0;

	for (i = 0; i < svc->nbackends; i++)
		g = (uint32_t)balance_gcd(g, s->weights[i]);
	for (i = 0; i < svc->nbackends; i++)
		if (s->weights[i] > 0) {
			sum += s->weights[i] / g;
			s->elig[k] = (uint32_t)i;
			s->prefix[k++] = sum;
		}
	s->neligible = k;
	/* Every step of the sums is at least 1, so a total of k means all are
	 * 1: the owner of a position is the position, no search. */
	s->uniform = sum == k;
	s->step = spread_step(sum);
	return sum;
}

/* Eligible: admin state none, health up, weight above 0; see the above.
 * O(n), once per change of the service's sched_version. */
static void
schedule_build(struct schedule *s, const struct lbd_service_conf *svc,
    const struct stats_map *map, uint32_t version)
{
	int small = svc->nbackends <= SCHED_SMALL_MAX, ramping;
	uint64_t period;
	size_t i;

	for (i = 0; i < svc->nbackends; i++) {
		const struct lbd_stats_backend *b = stats_backend(map, svc->backends[i].slot);
		uint32_t weight = __atomic_load_n(&b->weight, __ATOMIC_RELAXED);
		int admin_ok = __atomic_load_n(&b->admin, __ATOMIC_RELAXED) == LBD_ADMIN_NONE;
		int health_up = __atomic_load_n(&b->health, __ATOMIC_RELAXED) == LBD_HEALTH_UP;

		s->ids[i] = svc->backends[i].slot;
		/* By name, not slot: every node and every restart agrees (issue 19). */
		s->keys[i] = svc->backends[i].name_hash;
		s->weights[i] = admin_ok && health_up ? weight : 0;
		s->raw[i] = weight;
	}
	if (schedule_backup_filter(s, svc) == 0)
		schedule_fallback(s, svc, map);
	ramping = schedule_read_ramps(s, svc, map);
	if (svc->balance == LBD_BALANCE_SOURCE && !small)
		schedule_build_ring(s, svc);
	/* A small service's weights stay within its smooth sequence. */
	if (ramping)
		schedule_ramp(s, svc, small ? BALANCE_SEQ_MAX : UINT32_MAX);
	period = schedule_compact(s, svc);
	s->smooth = svc->balance == LBD_BALANCE_ROUNDROBIN && small &&
	    period <= BALANCE_SEQ_MAX;
	s->len = s->smooth ? balance_smooth_sequence(s->weights, svc->nbackends, s->seq) : 0;
	s->version = version;
	s->built = 1;
}

static uint64_t
schedule_clock_ms(void)
{
	struct timespec ts;

	/* Read in the vDSO, no system call; only when the version changed. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * The schedule of the service's current sched_version.  A large service's
 * is rebuilt at most every SCHED_REBUILD_MS: when thousands of backends
 * change state one after another (a switch fails, a rack comes back), the
 * master bumps the version for each, and rebuilding on every pick would
 * make each connection cost O(n) until the storm ends.  In between, picks
 * follow a schedule a few ms old, as they would had the news come later.
 */
static void
schedule_current(struct schedule *s, const struct lbd_service_conf *svc,
    const struct stats_map *map)
{
	const struct lbd_stats_service *ss = stats_service(map, svc->slot);
	uint32_t version = __atomic_load_n(&ss->sched_version, __ATOMIC_ACQUIRE);
	uint64_t now;

	if (s->built && s->version == version)
		return;
	if (svc->nbackends > SCHED_SMALL_MAX) {
		now = schedule_clock_ms();
		if (s->built && now - s->built_ms < SCHED_REBUILD_MS)
			return;
		s->built_ms = now;
	}
	schedule_build(s, svc, map, version);
}

static int
schedule_walk_add(struct sched_walk *walk, int b)
{
	if (walk->ntried < SCHED_TRIED_INLINE) {
		walk->tried[walk->ntried++] = (uint32_t)b;
		return 0;
	}
	/* attempts <= retries + 1 <= SCHED_RETRIES_MAX + 1 bounds ntried. */
	if (walk->tried_more == NULL && (walk->tried_more = malloc(
	    (SCHED_RETRIES_MAX + 1 - SCHED_TRIED_INLINE) * sizeof(uint32_t))) == NULL)
		return -1;
	walk->tried_more[walk->ntried++ - SCHED_TRIED_INLINE] = (uint32_t)b;
	return 0;
}

/* schedule_next, the full backends of this admission skipped too. */
static int
schedule_next_among(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map, uint32_t row, struct sched_walk *walk,
    const struct sockaddr *client, const uint32_t *full, size_t nfull)
{
	int b;

	if (walk->attempts > svc->retries || walk->ntried > SCHED_RETRIES_MAX)
		return -1;
	schedule_current(s, svc, map);
	if ((b = schedpick_pick(s, svc, map, walk, full, nfull, client)) < 0 ||
	    schedule_walk_add(walk, b) == -1)
		return -1;
	walk->attempts++;
	stats_add(&stats_counter(map, row, svc->backends[b].slot)->picks, 1);
	return b;
}

int
schedule_next(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map, uint32_t row, struct sched_walk *walk,
    const struct sockaddr *client)
{
	return schedule_next_among(s, svc, map, row, walk, client, NULL, 0);
}

/* O(n), but per tick of a service with quiet old connections, not per pick. */
void
schedule_age_candidates(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map)
{
	unsigned __int128 total_load = 0, total_weight = 0;
	size_t i;

	schedule_current(s, svc, map);
	for (i = 0; i < svc->nbackends; i++) {
		s->load[i] = __atomic_load_n(&stats_backend(map, s->ids[i])->load_rate,
		    __ATOMIC_RELAXED);
		total_load += s->weights[i] != 0 ? s->load[i] : 0;
		total_weight += s->weights[i];
	}
	for (i = 0; i < svc->nbackends; i++)
		/* load / weight > total_load / total_weight, without division */
		s->over[i] = svc->balance != LBD_BALANCE_LEASTLOAD || s->weights[i] == 0 ||
		    (unsigned __int128)s->load[i] * total_weight > total_load * s->weights[i];
}

void
schedule_untry(struct sched_walk *walk, int b)
{
	size_t i;

	walk->attempts--;
	/* The try undone is the last one, but any is found. */
	for (i = walk->ntried; i-- > 0;) {
		uint32_t *t = i < SCHED_TRIED_INLINE ? &walk->tried[i] :
		    &walk->tried_more[i - SCHED_TRIED_INLINE];

		if (*t == (uint32_t)b) {
			uint32_t last = walk->ntried - 1;

			*t = last < SCHED_TRIED_INLINE ? walk->tried[last] :
			    walk->tried_more[last - SCHED_TRIED_INLINE];
			walk->ntried--;
			return;
		}
	}
}

void
schedule_walk_forget(struct sched_walk *walk)
{
	walk->ntried = 0;
}

void
schedule_walk_free(struct sched_walk *walk)
{
	free(walk->tried_more);
	walk->tried_more = NULL;
	walk->ntried = 0;
}

int
schedule_next_slot(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map, struct sched_walk *walk, const struct sockaddr *client,
    uint32_t row)
{
	uint32_t full[SCHED_FULL_MAX];
	const struct lbd_backend_conf *be;
	size_t nfull = 0;
	int b;

	for (;;) {
		b = schedule_next_among(s, svc, map, row, walk, client, full, nfull);
		if (b < 0)
			return nfull > 0 && walk->attempts <= svc->retries ? SCHED_FULL : -1;
		be = &svc->backends[b];
		if (be->maxconn == 0 || queue_slot_take(map, row, be->slot, be->maxconn))
			return b;
		/* Not a pick after all: leastload counts picks as load to come. */
		stats_sub(&stats_counter(map, row, be->slot)->picks, 1);
		schedule_untry(walk, b);
		full[nfull++] = (uint32_t)b;
		/* Bounded: with thousands of backends full, waiting beats
		 * trying each; a freed slot serves the queue's head. */
		if (nfull == SCHED_FULL_MAX)
			return SCHED_FULL;
	}
}
