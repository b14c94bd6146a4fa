/*
 * Backend choice in a worker.  See schedule.h.
 */
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
	s->candidates = calloc(nbackends, sizeof(*s->candidates));
	s->active = calloc(nbackends, sizeof(*s->active));
	s->seq = malloc(BALANCE_SEQ_MAX);
	return s->weights == NULL || s->ids == NULL || s->candidates == NULL ||
	    s->active == NULL || s->seq == NULL ? -1 : 0;
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
	uint32_t ramp[LBD_MAX_SERVICE_BACKENDS];
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
		return balance_rendezvous(balance_client_hash(client), s->ids,
		    s->candidates, svc->nbackends);
	for (i = 0; i < svc->nbackends; i++)
		s->active[i] = s->candidates[i] != 0 ? stats_backend_active(map, s->ids[i]) : 0;
	return balance_leastconn(s->active, s->candidates, svc->nbackends,
	    __atomic_fetch_add(&ss->rr_counter, 1, __ATOMIC_RELAXED));
}

int
schedule_next(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map, struct sched_walk *walk, const struct sockaddr *client)
{
	int b;

	if (walk->attempts > svc->retries || (b = pick(s, svc, map, walk, client)) < 0)
		return -1;
	walk->tried |= UINT64_C(1) << b;
	walk->attempts++;
	return b;
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
		if ((b = schedule_next(s, svc, map, walk, client)) < 0)
			return walk->full != 0 && walk->attempts <= svc->retries ? SCHED_FULL : -1;
		be = &svc->backends[b];
		if (be->maxconn == 0 || queue_slot_take(map, row, be->slot, be->maxconn))
			return b;
		schedule_untry(walk, b);
		walk->full |= UINT64_C(1) << b;
	}
}
