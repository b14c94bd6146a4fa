/*
 * Slots by name: where a configuration's services and backends live in the
 * stats segment.  A name seen before keeps its slot (and so its counters and
 * admin state); a new one takes a free slot.  Names are found through a
 * hash index built per layout, so a reload of 10 000 backends costs time
 * linear in slots and names, not their product.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "config.h"
#include "statsmap.h"

/* Open addressing over slot numbers + 1 (0 = empty); a power of two long. */
struct slot_index {
	uint32_t *cells;
	size_t mask;
};

static uint64_t
slot_key(const char *name, uint32_t service)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325) ^ service;

	for (; *name != '\0'; name++) {
		h ^= (unsigned char)*name;
		h *= UINT64_C(0x100000001b3);
	}
	return h ^ (h >> 31);
}

static int
index_init(struct slot_index *ix, size_t n)
{
	size_t len = 16;

	while (len < 2 * n)
		len *= 2;
	ix->mask = len - 1;
	return (ix->cells = calloc(len, sizeof(*ix->cells))) == NULL ? -1 : 0;
}

static void
index_put(struct slot_index *ix, uint64_t key, uint32_t slot)
{
	size_t i = key & ix->mask;

	while (ix->cells[i] != 0)
		i = (i + 1) & ix->mask;
	ix->cells[i] = slot + 1;
}

/* The slot of service name, or -1. */
static int
index_service(const struct slot_index *ix, const struct stats_map *map, const char *name)
{
	size_t i = slot_key(name, 0) & ix->mask;

	for (; ix->cells[i] != 0; i = (i + 1) & ix->mask)
		if (strcmp(stats_service(map, ix->cells[i] - 1)->name, name) == 0)
			return (int)(ix->cells[i] - 1);
	return -1;
}

/* The slot of backend name of service slot service, or -1. */
static int
index_backend(const struct slot_index *ix, const struct stats_map *map, uint32_t service,
    const char *name)
{
	size_t i = slot_key(name, service) & ix->mask;

	for (; ix->cells[i] != 0; i = (i + 1) & ix->mask) {
		const struct lbd_stats_backend *b = stats_backend(map, ix->cells[i] - 1);

		if (b->service == service && strcmp(b->name, name) == 0)
			return (int)(ix->cells[i] - 1);
	}
	return -1;
}

/* Indexes every slot in use; counts them in *services and *backends. */
static int
layout_index(const struct stats_map *map, struct slot_index *svcs, struct slot_index *bes,
    uint32_t *services, uint32_t *backends)
{
	const struct lbd_stats_header *h = map->hdr;
	uint32_t i;

	if (index_init(svcs, h->max_services) == -1 || index_init(bes, h->max_backends) == -1)
		return -1;
	*services = *backends = 0;
	for (i = 0; i < h->max_services; i++)
		if (stats_service(map, i)->state != LBD_SLOT_FREE) {
			index_put(svcs, slot_key(stats_service(map, i)->name, 0), i);
			++*services;
		}
	for (i = 0; i < h->max_backends; i++) {
		const struct lbd_stats_backend *b = stats_backend(map, i);

		if (b->state != LBD_SLOT_FREE) {
			index_put(bes, slot_key(b->name, b->service), i);
			++*backends;
		}
	}
	return 0;
}

/* Whether conf fits beside the slots in use; what it needs in *need. */
static int
layout_fits(const struct stats_map *map, const struct lbd_config *conf,
    const struct slot_index *svcs, const struct slot_index *bes, uint32_t used_services,
    uint32_t used_backends, struct stats_size *need)
{
	size_t i, j, services = used_services, backends = used_backends, listens = 0;

	for (i = 0; i < conf->nservices; i++) {
		const struct lbd_service_conf *svc = &conf->services[i];
		int slot = index_service(svcs, map, svc->name);

		listens += svc->nlisten;
		if (slot == -1) {
			services++;
			backends += svc->nbackends;
			continue;
		}
		for (j = 0; j < svc->nbackends; j++)
			backends += index_backend(bes, map, (uint32_t)slot,
			    svc->backends[j].name) == -1;
	}
	need->services = services > UINT32_MAX ? UINT32_MAX : (uint32_t)services;
	need->backends = backends > UINT32_MAX ? UINT32_MAX : (uint32_t)backends;
	need->listens = listens > UINT32_MAX ? UINT32_MAX : (uint32_t)listens;
	need->worker_slots = map->hdr->worker_slots;
	return services <= map->hdr->max_services && backends <= map->hdr->max_backends &&
	    listens <= map->hdr->max_listens;
}

/* The next free slot at or after *cursor; layout_fits said there is one. */
static uint32_t
next_free(uint32_t *cursor, uint32_t limit, const struct stats_map *map, int backend)
{
	while (*cursor < limit && (backend ? stats_backend(map, *cursor)->state :
	    stats_service(map, *cursor)->state) != LBD_SLOT_FREE)
		++*cursor;
	return (*cursor)++;
}

static void
layout_backend(struct stats_map *map, uint32_t service, struct lbd_backend_conf *be,
    uint32_t slot)
{
	struct lbd_stats_backend *b = stats_backend(map, slot);
	uint32_t row;

	if (b->state == LBD_SLOT_FREE) {
		/* New name: starts up, no admin state, fresh counters. */
		memset(b, 0, sizeof(*b));
		for (row = 0; row <= stats_retired_row(map); row++)
			memset(stats_counter(map, row, slot), 0, sizeof(struct lbd_stats_counter));
		snprintf(b->name, sizeof(b->name), "%s", be->name);
		b->service = service;
		b->health = LBD_HEALTH_UP;
		b->admin = LBD_ADMIN_NONE;
		b->weight = be->weight;
		b->last_change = (uint64_t)time(NULL);
		snprintf(b->check_text, sizeof(b->check_text), "not checked yet");
		/* Workers gave the old backend's maxconn slots back before its
		 * slot was freed; a count leaked by a worker killed in the middle
		 * of taking one ends here. */
		memset(stats_limit(map, slot), 0, sizeof(struct lbd_stats_limit));
	} else if (b->admin_weight_set == 0)
		b->weight = be->weight;
	b->maxconn = be->maxconn;
	b->flags = be->backup ? LBD_BACKEND_BACKUP : 0;
	addr_display(be->addr.text, (const struct sockaddr *)&be->addr.ss, b->address,
	    sizeof(b->address));
	b->state = LBD_SLOT_LIVE;
	be->slot = slot;
}

static void
layout_service_record(struct stats_map *map, struct lbd_service_conf *svc, uint32_t slot,
    uint32_t listen_first, uint32_t member_first)
{
	struct lbd_stats_service *s = stats_service(map, slot);
	size_t j;

	if (s->state == LBD_SLOT_FREE) {
		memset(s, 0, sizeof(*s));
		snprintf(s->name, sizeof(s->name), "%s", svc->name);
	}
	s->state = LBD_SLOT_LIVE;
	s->balance = svc->balance;
	s->queue_timeout_ms = svc->queue_timeout_ms;
	s->max_queue = svc->max_queue;
	s->slowstart_ms = svc->slowstart_ms;
	s->listen_first = listen_first;
	s->nlisten = (uint32_t)svc->nlisten;
	for (j = 0; j < svc->nlisten; j++)
		addr_display(svc->listen[j].text, (const struct sockaddr *)&svc->listen[j].ss,
		    stats_listen(map, listen_first + (uint32_t)j)->address, LBD_ADDR_LEN);
	s->member_first = member_first;
	s->nbackends = (uint32_t)svc->nbackends;
	svc->slot = slot;
}

/* Live slots become retired until conf claims them again. */
static void
layout_retire_all(struct stats_map *map)
{
	uint32_t i;

	for (i = 0; i < map->hdr->max_services; i++) {
		struct lbd_stats_service *s = stats_service(map, i);

		if (s->state == LBD_SLOT_LIVE) {
			s->state = LBD_SLOT_RETIRED;
			s->nlisten = s->nbackends = 0;	/* their lists are rewritten */
		}
	}
	for (i = 0; i < map->hdr->max_backends; i++)
		if (stats_backend(map, i)->state == LBD_SLOT_LIVE)
			stats_backend(map, i)->state = LBD_SLOT_RETIRED;
}

static void
layout_apply(struct stats_map *map, struct lbd_config *conf, const struct slot_index *svcs,
    const struct slot_index *bes)
{
	uint32_t free_svc = 0, free_be = 0, listens = 0, members = 0;
	size_t i, j;

	layout_retire_all(map);
	for (i = 0; i < conf->nservices; i++) {
		struct lbd_service_conf *svc = &conf->services[i];
		int slot = index_service(svcs, map, svc->name);

		if (slot == -1)
			slot = (int)next_free(&free_svc, map->hdr->max_services, map, 0);
		layout_service_record(map, svc, (uint32_t)slot, listens, members);
		listens += (uint32_t)svc->nlisten;
		for (j = 0; j < svc->nbackends; j++) {
			int b = index_backend(bes, map, svc->slot, svc->backends[j].name);

			if (b == -1)
				b = (int)next_free(&free_be, map->hdr->max_backends, map, 1);
			layout_backend(map, svc->slot, &svc->backends[j], (uint32_t)b);
			stats_backend(map, (uint32_t)b)->check_interval_ms =
			    svc->health.interval_ms;
			*stats_member(map, members++) = (uint32_t)b;
		}
		stats_service(map, svc->slot)->sched_version++;
	}
}

int
stats_layout(struct stats_map *map, struct lbd_config *conf, struct stats_size *need)
{
	struct slot_index svcs = { NULL, 0 }, bes = { NULL, 0 };
	uint32_t used_services, used_backends;
	int rc = STATS_LAYOUT_FULL;

	if (layout_index(map, &svcs, &bes, &used_services, &used_backends) == -1) {
		rc = -1;
		goto done;
	}
	if (!layout_fits(map, conf, &svcs, &bes, used_services, used_backends, need))
		goto done;
	stats_write_begin(map);
	layout_apply(map, conf, &svcs, &bes);
	map->hdr->worker_stall_ms = conf->worker_stall_ms;	/* for lbstat's "stalled" */
	map->hdr->generation++;
	stats_write_end(map);
	rc = 0;
done:
	free(svcs.cells);
	free(bes.cells);
	return rc;
}

void
stats_release_retired(struct stats_map *map)
{
	uint32_t i;

	stats_write_begin(map);
	for (i = 0; i < map->hdr->max_services; i++)
		if (stats_service(map, i)->state == LBD_SLOT_RETIRED)
			stats_service(map, i)->state = LBD_SLOT_FREE;
	for (i = 0; i < map->hdr->max_backends; i++)
		if (stats_backend(map, i)->state == LBD_SLOT_RETIRED)
			stats_backend(map, i)->state = LBD_SLOT_FREE;
	stats_write_end(map);
}
