/*
 * Loading the configuration into the health checker: a check per backend
 * slot (arrays grown to the highest slot, never shrunk), each service's
 * settings and members, and what a reload keeps (state, counters, a probe
 * in flight whose settings did not change).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "clock.h"
#include "health.h"
#include "healthint.h"
#include "log.h"

/* Once per load; changes then keep nup (health_record), O(1) each. */
static size_t
health_count_up(const struct health *h, const struct health_service *svc)
{
	size_t i, up = 0;

	for (i = 0; i < svc->nmembers; i++)
		up += h->checks[svc->members[i]]->st.up != 0;
	return up;
}

/* Takes slot out of checking: probe closed, no schedule. */
static void
health_check_drop(struct health_check *c)
{
	health_probe_close(c);
	hheap_remove(&c->h->heap, &c->tn);
	c->svc = NULL;
}

static void
health_services_free(struct health_service *svcs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(svcs[i].send);
		free(svcs[i].expect);
		free(svcs[i].members);
	}
	free(svcs);
}

/* Whether slot has a record in the segment (sized from the configuration). */
static int
health_slot_ok(const struct health *h, uint32_t slot)
{
	return slot < h->map->hdr->max_backends;
}

static int
health_service_load(struct health *h, struct health_service *svc,
    const struct lbd_service_conf *sc)
{
	const struct lbd_health_conf *hc = &sc->health;
	size_t i;

	snprintf(svc->name, sizeof(svc->name), "%s", sc->name);
	svc->slot = sc->slot;
	svc->interval_ms = hc->interval_ms;
	svc->jitter_ms = hc->jitter_ms;
	svc->timeout_ms = hc->timeout_ms;
	svc->rise = hc->rise;
	svc->fall = hc->fall;
	svc->send_len = hc->send_len;
	svc->expect_len = strlen(hc->expect);
	if ((svc->send = malloc(svc->send_len + 1)) == NULL ||
	    (svc->expect = strdup(hc->expect)) == NULL ||
	    (svc->members = calloc(sc->nbackends ? sc->nbackends : 1,
	    sizeof(*svc->members))) == NULL)
		return -1;
	memcpy(svc->send, hc->send, svc->send_len + 1);
	svc->nmembers = 0;
	for (i = 0; i < sc->nbackends; i++)
		if (health_slot_ok(h, sc->backends[i].slot))
			svc->members[svc->nmembers++] = sc->backends[i].slot;
	return 0;
}

/* Whether a probe in flight under old settings still answers the new ones. */
static int
health_same_probe(const struct health_check *c, const struct health_service *svc,
    const struct lbd_backend_conf *be)
{
	const struct health_service *old = c->svc;

	return c->addr.len == be->addr.len &&
	    memcmp(&c->addr.ss, &be->addr.ss, be->addr.len) == 0 &&
	    old->interval_ms == svc->interval_ms && old->timeout_ms == svc->timeout_ms &&
	    old->send_len == svc->send_len &&
	    memcmp(old->send, svc->send, svc->send_len) == 0 &&
	    strcmp(old->expect, svc->expect) == 0;
}

/*
 * A backend new to the checker starts up (SPEC), even in a slot that a
 * removed backend of the same name left down.
 */
static void
health_check_new(struct health_check *c, uint64_t now)
{
	struct lbd_stats_backend *b = stats_backend(c->h->map, c->slot);

	hstate_init(&c->st, 1);
	if (b->health != LBD_HEALTH_UP) {
		stats_write_begin(c->h->map);
		health_set_segment(c, 1);
		stats_write_end(c->h->map);
	}
	health_schedule_first(c, now);
}

static void
health_check_load(struct health_check *c, struct health_service *svc,
    const struct lbd_backend_conf *be, uint64_t now)
{
	int fresh = c->svc == NULL, same = !fresh && health_same_probe(c, svc, be);

	c->svc = svc;
	snprintf(c->name, sizeof(c->name), "%s", be->name);
	c->addr = be->addr;
	if (fresh) {
		health_check_new(c, now);
	} else if (!same) {
		/* Rise/fall stay; the schedule restarts under the new settings. */
		health_probe_close(c);
		health_schedule_first(c, now);
	}
}

/* Counts each service's backends up; a reload that removes the last one
 * up warns like a check would. */
static void
health_note_none_up(struct health *h, struct health_service *svc)
{
	svc->nup = health_count_up(h, svc);
	if (svc->nmembers == 0 || svc->nup > 0) {
		svc->none_up = 0;
		return;
	}
	if (!svc->none_up)
		log_warnx("service %s has no backend up: trying all of them", svc->name);
	svc->none_up = 1;
}

static struct health_check *
health_check_alloc(struct health *h, uint32_t slot)
{
	struct health_check *c = calloc(1, sizeof(*c));
	int i;

	if (c == NULL)
		return NULL;
	c->h = h;
	c->slot = slot;
	for (i = 0; i < 2; i++) {
		c->pev[i].ev.fd = -1;
		c->pev[i].ev.cb = health_probe_cb;
		c->pev[i].c = c;
	}
	hheap_node_init(&c->tn);
	return c;
}

/* Makes room for slots [0, n): new checks, a heap that can hold them all. */
static int
health_grow(struct health *h, size_t n)
{
	struct health_check **checks;
	struct hheap_node **heapv;

	if (n <= h->ncheck)
		return 0;
	if ((checks = realloc(h->checks, n * sizeof(*checks))) == NULL)
		return -1;
	h->checks = checks;
	if ((heapv = realloc(h->heapv, n * sizeof(*heapv))) == NULL)
		return -1;
	h->heapv = heapv;
	h->heap.v = heapv;	/* same contents, maybe moved */
	for (; h->ncheck < n; h->ncheck++) {
		if ((h->checks[h->ncheck] = health_check_alloc(h, (uint32_t)h->ncheck)) == NULL)
			return -1;
		h->heap.cap = h->ncheck + 1;
	}
	return 0;
}

/* The number of slots conf uses, and the least slack of its services. */
static size_t
health_conf_slots(const struct health *h, const struct lbd_config *conf, uint32_t *slack)
{
	size_t i, j, n = 0;
	uint32_t s, least = HSTATE_SLACK_MAX_US;

	for (i = 0; i < conf->nservices; i++) {
		s = hstate_slack_us(conf->services[i].health.jitter_ms);
		least = s < least ? s : least;
		for (j = 0; j < conf->services[i].nbackends; j++) {
			uint32_t slot = conf->services[i].backends[j].slot;

			if (health_slot_ok(h, slot) && slot + (size_t)1 > n)
				n = slot + (size_t)1;
		}
	}
	*slack = least;
	return n;
}

static struct health_service *
health_services_load(struct health *h, const struct lbd_config *conf)
{
	struct health_service *svcs;
	size_t i, j;

	if ((svcs = calloc(conf->nservices ? conf->nservices : 1, sizeof(*svcs))) == NULL)
		return NULL;
	for (i = 0; i < conf->nservices; i++) {
		if (health_service_load(h, &svcs[i], &conf->services[i]) == -1) {
			health_services_free(svcs, conf->nservices);
			return NULL;
		}
		/* A service keeps its slot over a reload: same slot, same service. */
		for (j = 0; j < h->nsvcs; j++)
			if (h->svcs[j].slot == svcs[i].slot &&
			    strcmp(h->svcs[j].name, svcs[i].name) == 0)
				svcs[i].none_up = h->svcs[j].none_up;
	}
	return svcs;
}

/* Points every check at conf's services; drops the slots conf lacks. */
static int
health_load(struct health *h, const struct lbd_config *conf)
{
	struct health_service *svcs;
	uint8_t *seen;
	uint64_t now = clock_us();
	uint32_t slack;
	size_t i, j;

	if (health_grow(h, health_conf_slots(h, conf, &slack)) == -1 ||
	    (seen = calloc(h->ncheck ? h->ncheck : 1, 1)) == NULL)
		return -1;
	if ((svcs = health_services_load(h, conf)) == NULL) {
		free(seen);
		return -1;
	}
	h->slack_us = slack;
	for (i = 0; i < conf->nservices; i++)
		for (j = 0; j < conf->services[i].nbackends; j++) {
			const struct lbd_backend_conf *be = &conf->services[i].backends[j];

			if (!health_slot_ok(h, be->slot))
				continue;
			seen[be->slot] = 1;
			health_check_load(h->checks[be->slot], &svcs[i], be, now);
		}
	for (i = 0; i < h->ncheck; i++)
		if (!seen[i] && h->checks[i]->svc != NULL)
			health_check_drop(h->checks[i]);
	free(seen);
	health_services_free(h->svcs, h->nsvcs);
	h->svcs = svcs;
	h->nsvcs = conf->nservices;
	for (i = 0; i < h->nsvcs; i++)
		health_note_none_up(h, &h->svcs[i]);
	health_arm(h);
	return 0;
}

/* Half the descriptor limit for probes: the rest is for everything else. */
static size_t
health_fd_budget(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
		return 10000;
	return rl.rlim_cur / 2 > 16 ? (size_t)(rl.rlim_cur / 2) : 16;
}

static void
health_free(struct health *h)
{
	size_t i;

	for (i = 0; i < h->ncheck; i++) {
		health_probe_close(h->checks[i]);
		free(h->checks[i]);
	}
	free(h->checks);
	free(h->heapv);
	if (h->timer.fd != -1) {
		ev_del(h->epfd, &h->timer);
		close(h->timer.fd);
	}
	health_services_free(h->svcs, h->nsvcs);
	free(h);
}

struct health *
health_start(int epfd, struct stats_map *map, const struct lbd_config *conf)
{
	struct health *h;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		log_warn("health: calloc");
		return NULL;
	}
	h->epfd = epfd;
	h->map = map;
	h->seed = (uint64_t)arc4random() << 32 | arc4random();
	h->inflight_max = health_fd_budget();
	hheap_init(&h->heap, NULL, 0);
	h->timer.cb = health_timer_cb;
	h->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (h->timer.fd == -1 || ev_add(epfd, &h->timer, EPOLLIN) == -1) {
		log_warn("health: timerfd");
		goto fail;
	}
	if (health_load(h, conf) == -1) {
		log_warn("health: loading checks");
		goto fail;
	}
	return h;
fail:
	health_free(h);
	return NULL;
}

void
health_reconfigure(struct health *h, const struct lbd_config *conf)
{
	/* On failure the old checks keep running: stale, never unsafe. */
	if (health_load(h, conf) == -1)
		log_warn("health: reloading checks, keeping the old ones");
}

void
health_stop(struct health *h)
{
	if (h != NULL)
		health_free(h);
}
