/*
 * The load meter.  See loadmeter.h.
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "clock.h"
#include "event.h"
#include "loadmeter.h"
#include "log.h"

struct loadmeter {
	struct ev_handler timer;	/* timer.fd owned */
	int epfd;
	struct stats_map *map;
	uint64_t last_ms;
	uint64_t *exchanges;		/* per slot, at the last measure */
	uint32_t nslots;		/* of exchanges: the segment's backends when measured */
};

/* The segment grew (a reload): the new slots start from their totals now. */
static int
loadmeter_fit(struct loadmeter *lm)
{
	uint32_t slot, n = lm->map->hdr->max_backends;
	uint64_t *ex;

	if (n <= lm->nslots)
		return 0;
	if ((ex = reallocarray(lm->exchanges, n, sizeof(*ex))) == NULL) {
		log_warn("load meter: %u backend slots", n);
		return -1;
	}
	for (slot = lm->nslots; slot < n; slot++)
		ex[slot] = stats_backend_total(lm->map, slot,
		    offsetof(struct lbd_stats_counter, exchanges));
	lm->exchanges = ex;
	lm->nslots = n;
	return 0;
}

uint64_t
loadmeter_decay(uint64_t rate, uint64_t count, uint64_t dt_ms)
{
	double alpha, now;

	if (dt_ms == 0)
		return rate;
	alpha = 1.0 - exp(-(double)dt_ms / LOADMETER_DECAY_MS);
	now = (double)count * 1000.0 * 1000.0 / (double)dt_ms;
	return (uint64_t)llround((double)rate + alpha * (now - (double)rate));
}

static void
loadmeter_measure(struct loadmeter *lm, uint64_t dt_ms)
{
	struct stats_map *map = lm->map;
	uint32_t slot;

	if (loadmeter_fit(lm) == -1)
		return;
	for (slot = 0; slot < lm->nslots; slot++) {
		struct lbd_stats_backend *b = stats_backend(map, slot);
		uint64_t ex, picks, rate;

		/* Only leastload reads the measure: the others cost nothing. */
		if (b->state == LBD_SLOT_FREE || b->service >= map->hdr->max_services ||
		    stats_service(map, b->service)->balance != LBD_BALANCE_LEASTLOAD)
			continue;
		picks = stats_backend_total(map, slot, offsetof(struct lbd_stats_counter, picks));
		ex = stats_backend_total(map, slot, offsetof(struct lbd_stats_counter, exchanges));
		if (ex < lm->exchanges[slot]) {		/* a new backend in a reused slot */
			lm->exchanges[slot] = ex;
			__atomic_store_n(&b->load_rate, 0, __ATOMIC_RELAXED);
		}
		rate = loadmeter_decay(__atomic_load_n(&b->load_rate, __ATOMIC_RELAXED),
		    ex - lm->exchanges[slot], dt_ms);
		lm->exchanges[slot] = ex;
		/* Picks first: a worker that reads the new rate must not also
		 * count the picks it already holds as unmeasured. */
		__atomic_store_n(&b->load_picks, picks, __ATOMIC_RELAXED);
		__atomic_store_n(&b->load_rate, rate, __ATOMIC_RELEASE);
	}
}

static void
loadmeter_timer_cb(struct ev_handler *h, uint32_t events)
{
	struct loadmeter *lm = EV_CONTAINER(h, struct loadmeter, timer);
	uint64_t expirations, now = clock_ms();

	(void)events;
	if (read(h->fd, &expirations, sizeof(expirations)) == -1)
		return;		/* EAGAIN: nothing due */
	loadmeter_measure(lm, now - lm->last_ms);
	lm->last_ms = now;
}

struct loadmeter *
loadmeter_start(int epfd, struct stats_map *map)
{
	struct itimerspec its = {
		.it_interval = { 0, LOADMETER_TICK_MS * 1000000L },
		.it_value = { 0, LOADMETER_TICK_MS * 1000000L },
	};
	struct loadmeter *lm;

	if ((lm = calloc(1, sizeof(*lm))) == NULL) {
		log_warn("load meter: calloc");
		return NULL;
	}
	lm->epfd = epfd;
	lm->map = map;
	lm->last_ms = clock_ms();
	lm->timer.cb = loadmeter_timer_cb;
	lm->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (lm->timer.fd == -1 || timerfd_settime(lm->timer.fd, 0, &its, NULL) == -1 ||
	    ev_add(epfd, &lm->timer, EPOLLIN) == -1) {
		log_warn("load meter: timerfd");
		if (lm->timer.fd != -1)
			close(lm->timer.fd);
		free(lm);
		return NULL;
	}
	if (loadmeter_fit(lm) == -1) {
		loadmeter_stop(lm);
		return NULL;
	}
	return lm;
}

void
loadmeter_stop(struct loadmeter *lm)
{
	ev_del(lm->epfd, &lm->timer);
	close(lm->timer.fd);
	free(lm->exchanges);
	free(lm);
}
