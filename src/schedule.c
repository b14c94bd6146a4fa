/*
 * Backend choice in a worker.  See schedule.h.
 */
#include <stddef.h>
#include <stdlib.h>

#include "balance.h"
#include "queue.h"
#include "schedule.h"
#include "slowstart.h"

int
schedule_init(struct schedule *s, size_t nbackends)
{
	s->weights = calloc(nbackends, sizeof(*s->weights));
	s->ids = calloc(nbackends, sizeof(*s->ids));
	s->keys = calloc(nbackends, sizeof(*s->keys));
	s->candidates = calloc(nbackends, sizeof(*s->candidates));
	s->active = calloc(nbackends, sizeof(*s->active));
	s->load = calloc(nbackends, sizeof(*s->load));
	s->recent = calloc(nbackends, sizeof(*s->recent));
	s->over = calloc(nbackends, sizeof(*s->over));
	s->seq = malloc(BALANCE_SEQ_MAX);
	return s->weights == NULL || s->ids == NULL || s->keys == NULL ||
	    s->candidates == NULL || s->active == NULL || s->load == NULL ||
	    s->recent == NULL || s->over == NULL || s->seq == NULL ? -1 : 0;
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

/*
 * Slow start: a ramping backend's weight is scaled down by its ramp, the
 * others' scaled up to keep the steps (1/10 of the weight each) apart.
 * leastconn compares (active + 1) / weight, so a cold backend with a small
 * weight takes its share, not every new connection.
 */
static void
schedule_ramp(struct schedule *s, const struct lbd_service_conf *svc,
    const struct stats_map *map)
{
	uint32_t *ramp = s->candidates;		/* scratch until pick() */
	uint64_t total = 0;
	size_t i;
	int any = 0;

	for (i = 0; i < svc->nbackends; i++) {
		ramp[i] = __atomic_load_n(&stats_backend(map, s->ids[i])->ramp_permille,
		    __ATOMIC_RELAXED);
		any |= ramp[i] != 0 && s->weights[i] > 0;
		total += s->weights[i];
	}
	if (!any)
		return;
	for (i = 0; i < svc->nbackends; i++)
		s->weights[i] = slowstart_weight(s->weights[i], ramp[i],
		    slowstart_scale(total, BALANCE_SEQ_MAX));
}

/* Eligible: admin state none, health up, weight above 0; see the above. */
static void
schedule_build(struct schedule *s, const struct lbd_service_conf *svc,
    const struct stats_map *map, uint32_t version)
{
	size_t i, up = 0;

	for (i = 0; i < svc->nbackends; i++) {
		const struct lbd_stats_backend *b = stats_backend(map, svc->backends[i].slot);
		uint32_t weight = __atomic_load_n(&b->weight, __ATOMIC_RELAXED);
		int admin_ok = __atomic_load_n(&b->admin, __ATOMIC_RELAXED) == LBD_ADMIN_NONE;
		int health_up = __atomic_load_n(&b->health, __ATOMIC_RELAXED) == LBD_HEALTH_UP;

		s->ids[i] = svc->backends[i].slot;
		/* By name, not slot: every node and every restart agrees (issue 19). */
		s->keys[i] = svc->backends[i].name_hash;
		s->weights[i] = admin_ok && health_up ? weight : 0;
	}
	if ((up = schedule_backup_filter(s, svc)) == 0)
		schedule_fallback(s, svc, map);
	schedule_ramp(s, svc, map);
	s->len = balance_smooth_sequence(s->weights, svc->nbackends, s->seq);
	s->version = version;
	s->built = 1;
}

/*
 * A retry walks on from the connection's own place in the sequence rather
 * than taking a new turn of the shared counter: otherwise, with a stuck
 * backend among two, every client would try the stuck one first.
 */
static int
pick_roundrobin(struct lbd_stats_service *ss, const struct schedule *s,
    struct sched_walk *walk)
{
	uint64_t start;
	size_t k;

	if (s->len == 0)
		return -1;
	if (walk->attempts == 0 && walk->full == 0)
		start = __atomic_fetch_add(&ss->rr_counter, 1, __ATOMIC_RELAXED);
	else
		start = (uint64_t)walk->rr_pos + 1;
	for (k = 0; k < s->len; k++) {
		uint8_t idx = s->seq[(start + k) % s->len];

		if (!((walk->tried | walk->full) & (UINT64_C(1) << idx))) {
			walk->rr_pos = (uint32_t)((start + k) % s->len);
			return idx;
		}
	}
	return -1;
}

/*
 * The load meter (master) measures each backend's rate of exchanges a few
 * times a second; connections picked since then will add load it has not
 * seen yet.  Each is counted at what a connection of the service carries on
 * average now (its rate over its active connections).  With no exchanges
 * measured at all, the load is the connection count: leastconn.
 */
static int
pick_leastload(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map, uint64_t rotate)
{
	uint64_t total_rate = 0, total_active = 0, per_conn;
	size_t i;

	for (i = 0; i < svc->nbackends; i++) {
		const struct lbd_stats_backend *b = stats_backend(map, s->ids[i]);
		uint64_t picks;

		if (s->candidates[i] == 0)
			continue;
		s->load[i] = __atomic_load_n(&b->load_rate, __ATOMIC_RELAXED);
		picks = stats_backend_total(map, s->ids[i],
		    offsetof(struct lbd_stats_counter, picks));
		s->recent[i] = picks - __atomic_load_n(&b->load_picks, __ATOMIC_RELAXED);
		if (s->recent[i] > picks)
			s->recent[i] = 0;	/* measured after we read the picks */
		s->active[i] = stats_backend_active(map, s->ids[i]);
		total_rate += s->load[i];
		total_active += s->active[i];
	}
	if (total_rate == 0)
		return balance_leastconn(s->active, s->candidates, svc->nbackends, rotate);
	per_conn = total_rate / (total_active > 0 ? total_active : 1);
	for (i = 0; i < svc->nbackends; i++)
		s->load[i] += s->recent[i] * (per_conn > 0 ? per_conn : 1);
	return balance_leastload(s->load, s->active, s->recent, s->candidates,
	    svc->nbackends, rotate);
}

static int
pick(struct schedule *s, const struct lbd_service_conf *svc, struct stats_map *map,
    struct sched_walk *walk, const struct sockaddr *client)
{
	struct lbd_stats_service *ss = stats_service(map, svc->slot);
	uint32_t version = __atomic_load_n(&ss->sched_version, __ATOMIC_ACQUIRE);
	size_t i;

	if (!s->built || s->version != version)
		schedule_build(s, svc, map, version);
	if (svc->balance == LBD_BALANCE_ROUNDROBIN)
		return pick_roundrobin(ss, s, walk);
	for (i = 0; i < svc->nbackends; i++)
		s->candidates[i] = (walk->tried | walk->full) & (UINT64_C(1) << i) ? 0 :
		    s->weights[i];
	if (svc->balance == LBD_BALANCE_SOURCE)
		return balance_rendezvous(balance_client_hash(client), s->keys,
		    s->candidates, svc->nbackends);
	if (svc->balance == LBD_BALANCE_LEASTLOAD)
		return pick_leastload(s, svc, map,
		    __atomic_fetch_add(&ss->rr_counter, 1, __ATOMIC_RELAXED));
	for (i = 0; i < svc->nbackends; i++)
		s->active[i] = s->candidates[i] != 0 ? stats_backend_active(map, s->ids[i]) : 0;
	return balance_leastconn(s->active, s->candidates, svc->nbackends,
	    __atomic_fetch_add(&ss->rr_counter, 1, __ATOMIC_RELAXED));
}

int
schedule_next(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map, uint32_t row, struct sched_walk *walk,
    const struct sockaddr *client)
{
	int b;

	if (walk->attempts > svc->retries || (b = pick(s, svc, map, walk, client)) < 0)
		return -1;
	walk->tried |= UINT64_C(1) << b;
	walk->attempts++;
	stats_add(&stats_counter(map, row, svc->backends[b].slot)->picks, 1);
	return b;
}

void
schedule_age_candidates(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map)
{
	struct lbd_stats_service *ss = stats_service(map, svc->slot);
	uint32_t version = __atomic_load_n(&ss->sched_version, __ATOMIC_ACQUIRE);
	unsigned __int128 total_load = 0, total_weight = 0;
	size_t i;

	if (!s->built || s->version != version)
		schedule_build(s, svc, map, version);
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
	walk->attempts--;
	walk->tried &= ~(UINT64_C(1) << b);
}

int
schedule_next_slot(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map, struct sched_walk *walk, const struct sockaddr *client,
    uint32_t row)
{
	const struct lbd_backend_conf *be;
	int b;

	for (;;) {
		if ((b = schedule_next(s, svc, map, row, walk, client)) < 0)
			return walk->full != 0 && walk->attempts <= svc->retries ? SCHED_FULL : -1;
		be = &svc->backends[b];
		if (be->maxconn == 0 || queue_slot_take(map, row, be->slot, be->maxconn))
			return b;
		/* Not a pick after all: leastload counts picks as load to come. */
		stats_sub(&stats_counter(map, row, be->slot)->picks, 1);
		schedule_untry(walk, b);
		walk->full |= UINT64_C(1) << b;
	}
}
