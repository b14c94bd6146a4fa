/*
 * The picks, one per balance mode and size.  See schedpick.h and, for the
 * costs, schedule.h.  Each runs with s->excl marking what the walk may not
 * take, and at least one eligible backend left unmarked.
 */
#include "balance.h"
#include "schedpick.h"
#include "spread.h"

static uint32_t
schedpick_tried(const struct sched_walk *walk, size_t i)
{
	return i < SCHED_TRIED_INLINE ? walk->tried[i] :
	    walk->tried_more[i - SCHED_TRIED_INLINE];
}

/* Marks (v = 1) or unmarks the walk's exclusions in s->excl; returns how
 * many eligible backends it marked.  O(tries + full). */
static size_t
schedpick_mark(struct schedule *s, const struct sched_walk *walk,
    const uint32_t *full, size_t nfull, uint8_t v)
{
	size_t i, n = 0;

	for (i = 0; i < walk->ntried + nfull; i++) {
		uint32_t b = i < walk->ntried ? schedpick_tried(walk, i) : full[i - walk->ntried];

		if (b >= s->n)
			continue;
		n += v && !s->excl[b] && s->weights[b] > 0;
		s->excl[b] = v;
	}
	return n;
}

/* The first eligible backend the walk may take at or after place k of the
 * eligible ones, wrapping round: one step per exclusion passed over. */
static int
schedpick_next_free(const struct schedule *s, size_t k)
{
	size_t j;

	for (j = 0; j < s->neligible; j++) {
		uint32_t b = s->elig[(k + j) % s->neligible];

		if (!s->excl[b])
			return (int)b;
	}
	return -1;
}

/* The eligible backend owning position r of the prefix sums: with equal
 * weights (the common case) the position itself, with no binary search over
 * a 10 000-backend array (its cache misses were most of a large pick). */
static size_t
schedpick_owner(const struct schedule *s, uint64_t r)
{
	return s->uniform ? (size_t)r : spread_find(s->prefix, s->neligible, r);
}

/*
 * A retry walks on from the connection's own place in the order rather
 * than taking a new turn of the shared counter: otherwise, with a stuck
 * backend among two, every client would try the stuck one first.
 */
static uint64_t
schedpick_turn(struct lbd_stats_service *ss, const struct sched_walk *walk, size_t nfull)
{
	if (walk->attempts == 0 && nfull == 0)
		return __atomic_fetch_add(&ss->rr_counter, 1, __ATOMIC_RELAXED);
	return walk->rr_pos + 1;
}

/* roundrobin, small service: nginx's smooth sequence. */
static int
schedpick_smooth(struct lbd_stats_service *ss, const struct schedule *s,
    struct sched_walk *walk, size_t nfull)
{
	uint64_t start = schedpick_turn(ss, walk, nfull);
	size_t k;

	for (k = 0; k < s->len; k++) {
		uint8_t idx = s->seq[(start + k) % s->len];

		if (!s->excl[idx]) {
			walk->rr_pos = (start + k) % s->len;
			return idx;
		}
	}
	return -1;
}

/*
 * roundrobin, large service: turn c of the shared counter takes position
 * (c * step) mod period of the weights' prefix sums, so every period of
 * turns gives each backend exactly its weight (over the gcd) of them, and
 * the golden-ratio step spreads them out within it.
 */
static int
schedpick_golden(struct lbd_stats_service *ss, const struct schedule *s,
    struct sched_walk *walk, size_t nfull)
{
	uint64_t c = schedpick_turn(ss, walk, nfull);
	uint64_t period = s->prefix[s->neligible - 1];

	walk->rr_pos = c;
	return schedpick_next_free(s, schedpick_owner(s,
	    spread_position(c, s->step, period)));
}

/* source, small service: weighted rendezvous over the backends the walk
 * may take (O(n), n <= SCHED_SMALL_MAX). */
static int
schedpick_rendezvous(const struct schedule *s, const struct sockaddr *client)
{
	uint32_t w[SCHED_SMALL_MAX];
	size_t i;

	for (i = 0; i < s->n && i < SCHED_SMALL_MAX; i++)
		w[i] = s->excl[i] ? 0 : s->weights[i];
	return balance_rendezvous(balance_client_hash(client), s->keys, w, i);
}

/* source, large service: the first point clockwise from the client's hash
 * whose backend is eligible and not excluded. */
static int
schedpick_ring(const struct schedule *s, const struct sockaddr *client)
{
	uint32_t h = (uint32_t)(balance_client_hash(client) >> 32);
	size_t i, j;

	if (s->ring.n == 0)
		return -1;
	i = hashring_find(&s->ring, h);
	for (j = 0; j < s->ring.n; j++) {
		uint32_t b = hashring_member(&s->ring, (i + j) % s->ring.n);

		if (!s->excl[b] && s->weights[b] > 0)
			return (int)b;
	}
	return -1;
}

/* Every eligible backend the walk may take (SCHED_EXACT_MAX at most), in
 * order of index from rotate % n on: today's tie-break, the first one at or
 * after it, for the same choices as a scan of all the backends. */
static size_t
schedpick_rotated(const struct schedule *s, uint64_t rotate, uint32_t *out)
{
	size_t start = (size_t)(rotate % s->n), lo = 0, hi = s->neligible, j, m = 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->elig[mid] < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (j = 0; j < s->neligible && m < SCHED_EXACT_MAX; j++) {
		uint32_t b = s->elig[(lo + j) % s->neligible];

		if (!s->excl[b])
			out[m++] = b;
	}
	return m;
}

/*
 * The backends a large leastconn or leastload choice compares: first the
 * roundrobin turn's (the golden order of the shared counter), then the last
 * choice's runner-up, then SCHED_CHOICES - 1 drawn at random in proportion
 * to weight (the same one twice at times).  Ties go to the first, so while
 * most backends are idle the choice follows roundrobin's spread instead of
 * chance's (50 connections drawn at random over 3 hosts land 22/14/14 as
 * often as not; HAProxy's leastconn rotates among equals too).  Under load
 * it is Shah and Prabhakar's power of d choices with memory; the bound this
 * gives instead of leastconn's exactness: the heaviest backend stays within
 * about ln ln n / ln 2 + O(1) connections of the average (n backends;
 * doubly exponential tail), while a light one fills as the draws or the
 * turn find it.  test_schedule_scale's simulation of 9000 backends at 10
 * connections each, opening and closing at random, gives the spread (exact
 * leastconn keeps them within 1: it refills the lightest at once).
 */
static size_t
schedpick_draw(struct lbd_stats_service *ss, struct schedule *s, uint32_t *out)
{
	uint64_t total = s->prefix[s->neligible - 1];
	uint64_t turn = __atomic_fetch_add(&ss->rr_counter, 1, __ATOMIC_RELAXED);
	size_t j, m = 0;
	int b;

	if ((b = schedpick_next_free(s, schedpick_owner(s,
	    spread_position(turn, s->step, total)))) >= 0)
		out[m++] = (uint32_t)b;
	if (s->memory < s->n && s->weights[s->memory] > 0 && !s->excl[s->memory] &&
	    (m == 0 || out[0] != s->memory))
		out[m++] = s->memory;
	for (j = 1; j < SCHED_CHOICES; j++)
		if ((b = schedpick_next_free(s, schedpick_owner(s,
		    spread_draw(&s->rng, total)))) >= 0)
			out[m++] = (uint32_t)b;
	return m;
}

/* Candidates' figures for a choice: leastload's, or leastconn's alone. */
struct schedpick_figs {
	uint64_t load[SCHED_EXACT_MAX];
	uint64_t active[SCHED_EXACT_MAX];
	uint64_t recent[SCHED_EXACT_MAX];
	uint32_t w[SCHED_EXACT_MAX];
	int by_load;			/* 0: by active connections (leastconn) */
};

static int
schedpick_best(const struct schedpick_figs *f, size_t m)
{
	if (!f->by_load)
		return balance_leastconn(f->active, f->w, m, 0);
	return balance_leastload(f->load, f->active, f->recent, f->w, m, 0);
}

/*
 * The load meter (master) measures each backend's rate of exchanges a few
 * times a second; connections picked since then will add load it has not
 * seen yet.  Each is counted at what a connection carries on average now
 * (the candidates' rate over their active connections).  With no exchanges
 * measured at all, the load is the connection count: leastconn.
 */
static void
schedpick_load(const struct schedule *s, struct stats_map *map, const uint32_t *idx,
    size_t m, struct schedpick_figs *f)
{
	uint64_t total_rate = 0, total_active = 0, per_conn;
	size_t i;

	for (i = 0; i < m; i++) {
		uint32_t id = s->ids[idx[i]];
		const struct lbd_stats_backend *b = stats_backend(map, id);
		uint64_t picks = stats_backend_total(map, id,
		    offsetof(struct lbd_stats_counter, picks));

		f->load[i] = __atomic_load_n(&b->load_rate, __ATOMIC_RELAXED);
		f->recent[i] = picks - __atomic_load_n(&b->load_picks, __ATOMIC_RELAXED);
		if (f->recent[i] > picks)
			f->recent[i] = 0;	/* measured after we read the picks */
		total_rate += f->load[i];
		total_active += f->active[i];
	}
	f->by_load = total_rate > 0;
	per_conn = total_rate / (total_active > 0 ? total_active : 1);
	for (i = 0; i < m; i++)
		f->load[i] += f->recent[i] * (per_conn > 0 ? per_conn : 1);
}

/*
 * leastconn and leastload among the candidates idx[0..m).  When they were
 * drawn, the runner-up is remembered as a candidate for the next choice.
 */
static int
schedpick_least(struct schedule *s, struct stats_map *map, const uint32_t *idx,
    size_t m, int by_load, int drawn)
{
	struct schedpick_figs f;
	size_t i;
	uint32_t w;
	int k, second;

	for (i = 0; i < m; i++) {
		f.w[i] = s->weights[idx[i]];
		f.active[i] = stats_backend_active(map, s->ids[idx[i]]);
	}
	f.by_load = 0;
	if (by_load)
		schedpick_load(s, map, idx, m, &f);
	if ((k = schedpick_best(&f, m)) < 0)
		return -1;
	if (drawn) {
		w = f.w[k];
		f.w[k] = 0;
		second = schedpick_best(&f, m);
		f.w[k] = w;
		s->memory = second >= 0 && idx[second] != idx[k] ? idx[second] : UINT32_MAX;
	}
	return (int)idx[k];
}

static int
schedpick_mode(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map, struct sched_walk *walk, size_t nfull,
    const struct sockaddr *client)
{
	struct lbd_stats_service *ss = stats_service(map, svc->slot);
	uint32_t idx[SCHED_EXACT_MAX];
	size_t m;
	int drawn;

	if (svc->balance == LBD_BALANCE_ROUNDROBIN)
		return s->smooth ? schedpick_smooth(ss, s, walk, nfull) :
		    schedpick_golden(ss, s, walk, nfull);
	if (svc->balance == LBD_BALANCE_SOURCE)
		return s->n <= SCHED_SMALL_MAX ? schedpick_rendezvous(s, client) :
		    schedpick_ring(s, client);
	drawn = s->neligible > SCHED_EXACT_MAX;
	if (!drawn)
		m = schedpick_rotated(s, __atomic_fetch_add(&ss->rr_counter, 1,
		    __ATOMIC_RELAXED), idx);
	else
		m = schedpick_draw(ss, s, idx);
	return schedpick_least(s, map, idx, m, svc->balance == LBD_BALANCE_LEASTLOAD, drawn);
}

int
schedpick_pick(struct schedule *s, const struct lbd_service_conf *svc,
    struct stats_map *map, struct sched_walk *walk, const uint32_t *full,
    size_t nfull, const struct sockaddr *client)
{
	int b = -1;

	if (s->neligible == 0)
		return -1;
	if (schedpick_mark(s, walk, full, nfull, 1) < s->neligible)
		b = schedpick_mode(s, svc, map, walk, nfull, client);
	(void)schedpick_mark(s, walk, full, nfull, 0);
	return b;
}
