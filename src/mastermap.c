/*
 * The master's stats segments: the one in use, and those a reload replaced
 * by a larger one (statsgrow.c) while workers started before it still write
 * to them.  Until such a worker exits, its record and counter rows are
 * copied into the segment in use every MASTERMAP_SYNC_MS, so lbstat shows
 * it and the watchdog hears its heartbeat; when it exits, once more, and
 * then folded into the retired row as for any other.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "masterint.h"

static struct stats_map *
old_map_of(struct master *m, const void *base)
{
	size_t i;

	for (i = 0; i < m->nold_maps; i++)
		if (m->old_maps[i].base == base)
			return &m->old_maps[i];
	return NULL;
}

/* Unmaps old segments no worker writes to any more. */
static void
drop_unused(struct master *m)
{
	size_t i = 0, w;
	int used;

	while (i < m->nold_maps) {
		for (used = 0, w = 0; w < (size_t)master_nslots(m) && !used; w++)
			used = m->workers[w].pid != 0 &&
			    m->workers[w].map_base == m->old_maps[i].base;
		if (used) {
			i++;
			continue;
		}
		stats_unmap(&m->old_maps[i]);
		m->old_maps[i] = m->old_maps[--m->nold_maps];
	}
}

static int
grow(struct master *m, const struct stats_size *need)
{
	struct stats_map old, *olds;
	char path[PATH_MAX];
	size_t w;

	if (config_stats_path(m->conf, path, sizeof(path)) == -1)
		return -1;
	olds = reallocarray(m->old_maps, m->nold_maps + 1, sizeof(*olds));
	if (olds == NULL) {
		log_warn("stats segment %s: growing it", path);
		return -1;
	}
	m->old_maps = olds;
	if (stats_grow(&m->map, &old, path, need) == -1) {
		log_warn("stats segment %s: growing it", path);
		return -1;
	}
	m->old_maps[m->nold_maps++] = old;
	for (w = 0; w < (size_t)master_nslots(m); w++)
		if (m->workers[w].pid != 0 && m->workers[w].map_base == NULL)
			m->workers[w].map_base = old.base;
	log_info("stats segment %s: grown to %u services, %u backends, %u worker slots "
	    "(%llu KiB)", path, m->map.hdr->max_services, m->map.hdr->max_backends,
	    m->map.hdr->worker_slots, (unsigned long long)(m->map.size / 1024));
	drop_unused(m);
	return 0;
}

int
master_map_layout(struct master *m, struct lbd_config *conf, uint32_t worker_slots)
{
	struct stats_size need;
	int rc;

	if (m->map.hdr->worker_slots < worker_slots) {
		need.services = m->map.hdr->max_services;
		need.backends = m->map.hdr->max_backends;
		need.listens = m->map.hdr->max_listens;
		need.worker_slots = worker_slots;
		if (grow(m, &need) == -1)
			return -1;
	}
	if ((rc = stats_layout(&m->map, conf, &need)) != STATS_LAYOUT_FULL)
		return rc;
	need.worker_slots = m->map.hdr->worker_slots;
	if (grow(m, &need) == -1)
		return -1;
	return stats_layout(&m->map, conf, &need) == 0 ? 0 : -1;
}

void
master_map_sync(struct master *m)
{
	struct stats_map *old;
	size_t w;

	for (w = 0; w < (size_t)master_nslots(m); w++)
		if (m->workers[w].pid != 0 && m->workers[w].map_base != NULL &&
		    (old = old_map_of(m, m->workers[w].map_base)) != NULL)
			stats_sync_worker(&m->map, old, (uint32_t)w);
}

void
master_map_worker_gone(struct master *m, int slot)
{
	struct stats_map *old;

	if (m->workers[slot].map_base == NULL)
		return;
	if ((old = old_map_of(m, m->workers[slot].map_base)) != NULL)
		stats_sync_worker(&m->map, old, (uint32_t)slot);
	m->workers[slot].map_base = NULL;
	drop_unused(m);
}

void
master_map_close(struct master *m)
{
	while (m->nold_maps > 0)
		stats_unmap(&m->old_maps[--m->nold_maps]);
	free(m->old_maps);
	m->old_maps = NULL;
}
