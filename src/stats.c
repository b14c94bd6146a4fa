/*
 * The stats segment: creation, slot layout by name, and reader snapshots.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "stats.h"

static size_t
round_up(size_t n)
{
	return (n + 4095) & ~(size_t)4095;
}

static void
stats_fill_header(struct lbd_stats_header *hdr, uint32_t workers)
{
	size_t off = sizeof(*hdr);

	hdr->magic = LBD_STATS_MAGIC;
	hdr->version = LBD_STATS_VERSION;
	hdr->header_size = sizeof(*hdr);
	hdr->service_size = sizeof(struct lbd_stats_service);
	hdr->backend_size = sizeof(struct lbd_stats_backend);
	hdr->worker_size = sizeof(struct lbd_stats_worker);
	hdr->counter_size = sizeof(struct lbd_stats_counter);
	hdr->service_counter_size = sizeof(struct lbd_stats_service_counter);
	hdr->max_services = LBD_MAX_SERVICES;
	hdr->max_backends = LBD_MAX_BACKENDS;
	hdr->worker_slots = LBD_WORKER_SLOTS;
	hdr->services_off = off;
	off += LBD_MAX_SERVICES * sizeof(struct lbd_stats_service);
	hdr->backends_off = off;
	off += LBD_MAX_BACKENDS * sizeof(struct lbd_stats_backend);
	hdr->workers_off = off;
	off += LBD_WORKER_SLOTS * sizeof(struct lbd_stats_worker);
	hdr->counters_off = off;
	off += (size_t)LBD_COUNTER_ROWS * LBD_MAX_BACKENDS * sizeof(struct lbd_stats_counter);
	hdr->service_counters_off = off;
	off += (size_t)LBD_COUNTER_ROWS * LBD_MAX_SERVICES *
	    sizeof(struct lbd_stats_service_counter);
	hdr->total_size = round_up(off);
	hdr->master_pid = (int32_t)getpid();
	hdr->workers_configured = workers;
	hdr->start_time = (uint64_t)time(NULL);
	snprintf(hdr->lbd_version, sizeof(hdr->lbd_version), "%s", LBD_VERSION);
}

int
stats_create(struct stats_map *map, const char *path, uint32_t workers)
{
	struct lbd_stats_header proto;
	char tmp[512];
	void *base;
	int fd;

	memset(&proto, 0, sizeof(proto));
	stats_fill_header(&proto, workers);
	/* A fresh file renamed into place: a reader never maps a half-made one. */
	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	(void)unlink(tmp);
	if ((fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) == -1)
		return -1;
	if (fchmod(fd, 0644) == -1 || ftruncate(fd, (off_t)proto.total_size) == -1)
		goto fail;
	base = mmap(NULL, proto.total_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		goto fail;
	memcpy(base, &proto, sizeof(proto));
	if (rename(tmp, path) == -1) {
		munmap(base, proto.total_size);
		goto fail;
	}
	close(fd);
	map->base = base;
	map->size = proto.total_size;
	map->hdr = base;
	return 0;
fail:
	{
		int saved = errno;

		close(fd);
		unlink(tmp);
		errno = saved;
	}
	return -1;
}

/* Maps an existing segment after checking magic, version and sizes. */
static int
stats_open_mode(struct stats_map *map, const char *path, int writable, char *err,
    size_t errlen)
{
	struct lbd_stats_header hdr;
	struct stat st;
	void *base;
	int fd;

	if ((fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || (size_t)st.st_size < sizeof(hdr) ||
	    pread(fd, &hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr)) {
		snprintf(err, errlen, "%s: not an lbd stats segment", path);
		goto fail;
	}
	if (hdr.magic != LBD_STATS_MAGIC) {
		snprintf(err, errlen, "%s: not an lbd stats segment", path);
		goto fail;
	}
	if (hdr.version != LBD_STATS_VERSION || hdr.header_size != sizeof(hdr) ||
	    hdr.service_size != sizeof(struct lbd_stats_service) ||
	    hdr.backend_size != sizeof(struct lbd_stats_backend) ||
	    hdr.worker_size != sizeof(struct lbd_stats_worker) ||
	    hdr.counter_size != sizeof(struct lbd_stats_counter) ||
	    hdr.service_counter_size != sizeof(struct lbd_stats_service_counter) ||
	    hdr.max_services != LBD_MAX_SERVICES || hdr.max_backends != LBD_MAX_BACKENDS ||
	    hdr.worker_slots != LBD_WORKER_SLOTS) {
		snprintf(err, errlen, "%s: stats layout version %u is not the one this "
		    "program reads (%u)", path, hdr.version, LBD_STATS_VERSION);
		goto fail;
	}
	if ((uint64_t)st.st_size < hdr.total_size) {
		snprintf(err, errlen, "%s: segment is truncated", path);
		goto fail;
	}
	base = mmap(NULL, hdr.total_size, writable ? PROT_READ | PROT_WRITE : PROT_READ,
	    MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
		goto fail;
	}
	close(fd);
	map->base = base;
	map->size = hdr.total_size;
	map->hdr = base;
	return 0;
fail:
	close(fd);
	return -1;
}

int
stats_open_readonly(struct stats_map *map, const char *path, char *err, size_t errlen)
{
	return stats_open_mode(map, path, 0, err, errlen);
}

int
stats_adopt(struct stats_map *map, const char *path, uint32_t workers, char *err,
    size_t errlen)
{
	if (stats_open_mode(map, path, 1, err, errlen) == -1)
		return -1;
	stats_write_begin(map);
	snprintf(map->hdr->lbd_version, sizeof(map->hdr->lbd_version), "%s", LBD_VERSION);
	map->hdr->workers_configured = workers;
	stats_write_end(map);
	return 0;
}

void
stats_unmap(struct stats_map *map)
{
	if (map->base != NULL)
		munmap(map->base, map->size);
	map->base = NULL;
	map->hdr = NULL;
}

/*
 * Atomic increments, although one master writes: during a binary upgrade
 * the old and the new master both may, for a moment, and a lost increment
 * would leave the count odd for good.
 */
void
stats_write_begin(struct stats_map *map)
{
	__atomic_add_fetch(&map->hdr->seq, 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

void
stats_write_end(struct stats_map *map)
{
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_add_fetch(&map->hdr->seq, 1, __ATOMIC_RELAXED);
}

/*
 * Bounded: a master that died in the middle of a write leaves the count odd
 * forever, and a reader must not spin on it.  Returns an odd value then,
 * which stats_read_retry never accepts.
 */
uint32_t
stats_read_begin(const struct stats_map *map)
{
	uint32_t seq = 0;
	int tries;

	for (tries = 0; tries < 1000000; tries++)
		if (!((seq = __atomic_load_n(&map->hdr->seq, __ATOMIC_ACQUIRE)) & 1))
			return seq;
	return seq;
}

int
stats_read_retry(const struct stats_map *map, uint32_t seq)
{
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return (seq & 1) || __atomic_load_n(&map->hdr->seq, __ATOMIC_RELAXED) != seq;
}

uint64_t
stats_backend_active(const struct stats_map *map, uint32_t backend)
{
	uint64_t sum = 0;
	uint32_t row;

	for (row = 0; row < LBD_WORKER_SLOTS; row++)
		if (stats_worker(map, row)->state != LBD_WORKER_FREE)
			sum += stats_load(&stats_counter(map, row, backend)->active);
	return sum;
}

static int
find_service_slot(struct stats_map *map, const char *name)
{
	uint32_t i;
	int free_slot = -1;

	for (i = 0; i < LBD_MAX_SERVICES; i++) {
		struct lbd_stats_service *s = stats_service(map, i);

		if (s->state != LBD_SLOT_FREE && strcmp(s->name, name) == 0)
			return (int)i;
		if (s->state == LBD_SLOT_FREE && free_slot == -1)
			free_slot = (int)i;
	}
	return free_slot;
}

static int
find_backend_slot(struct stats_map *map, uint32_t service, const char *name)
{
	uint32_t i;
	int free_slot = -1;

	for (i = 0; i < LBD_MAX_BACKENDS; i++) {
		struct lbd_stats_backend *b = stats_backend(map, i);

		if (b->state != LBD_SLOT_FREE && b->service == service &&
		    strcmp(b->name, name) == 0)
			return (int)i;
		if (b->state == LBD_SLOT_FREE && free_slot == -1)
			free_slot = (int)i;
	}
	return free_slot;
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
		for (row = 0; row < LBD_COUNTER_ROWS; row++)
			memset(stats_counter(map, row, slot), 0, sizeof(struct lbd_stats_counter));
		snprintf(b->name, sizeof(b->name), "%s", be->name);
		b->service = service;
		b->health = LBD_HEALTH_UP;
		b->admin = LBD_ADMIN_NONE;
		b->weight = be->weight;
		b->last_change = (uint64_t)time(NULL);
		snprintf(b->check_text, sizeof(b->check_text), "not checked yet");
	} else if (b->admin_weight_set == 0)
		b->weight = be->weight;
	snprintf(b->address, sizeof(b->address), "%s", be->addr.text);
	b->state = LBD_SLOT_LIVE;
	be->slot = slot;
}

int
stats_layout(struct stats_map *map, struct lbd_config *conf, char *err, size_t errlen)
{
	struct lbd_stats_service *s;
	size_t i, j;
	int slot;

	stats_write_begin(map);
	for (i = 0; i < LBD_MAX_SERVICES; i++)
		if (stats_service(map, (uint32_t)i)->state == LBD_SLOT_LIVE)
			stats_service(map, (uint32_t)i)->state = LBD_SLOT_RETIRED;
	for (i = 0; i < LBD_MAX_BACKENDS; i++)
		if (stats_backend(map, (uint32_t)i)->state == LBD_SLOT_LIVE)
			stats_backend(map, (uint32_t)i)->state = LBD_SLOT_RETIRED;
	for (i = 0; i < conf->nservices; i++) {
		struct lbd_service_conf *svc = &conf->services[i];

		if ((slot = find_service_slot(map, svc->name)) == -1)
			goto full;
		s = stats_service(map, (uint32_t)slot);
		if (s->state == LBD_SLOT_FREE) {
			memset(s, 0, sizeof(*s));
			snprintf(s->name, sizeof(s->name), "%s", svc->name);
		}
		s->state = LBD_SLOT_LIVE;
		s->balance = svc->balance;
		s->nlisten = (uint32_t)svc->nlisten;
		for (j = 0; j < svc->nlisten; j++)
			snprintf(s->listen[j], sizeof(s->listen[j]), "%s", svc->listen[j].text);
		svc->slot = (uint32_t)slot;
		s->nbackends = (uint32_t)svc->nbackends;
		for (j = 0; j < svc->nbackends; j++) {
			int bslot = find_backend_slot(map, svc->slot, svc->backends[j].name);

			if (bslot == -1)
				goto full;
			layout_backend(map, svc->slot, &svc->backends[j], (uint32_t)bslot);
			s->backends[j] = (uint16_t)bslot;
		}
		s->sched_version++;
	}
	map->hdr->generation++;
	stats_write_end(map);
	return 0;
full:
	stats_write_end(map);
	snprintf(err, errlen, "no free stats slot: at most %d services and %d backends, "
	    "counting those removed by a reload until their old workers exit",
	    LBD_MAX_SERVICES, LBD_MAX_BACKENDS);
	return -1;
}

void
stats_release_retired(struct stats_map *map)
{
	uint32_t i;

	stats_write_begin(map);
	for (i = 0; i < LBD_MAX_SERVICES; i++)
		if (stats_service(map, i)->state == LBD_SLOT_RETIRED)
			stats_service(map, i)->state = LBD_SLOT_FREE;
	for (i = 0; i < LBD_MAX_BACKENDS; i++)
		if (stats_backend(map, i)->state == LBD_SLOT_RETIRED)
			stats_backend(map, i)->state = LBD_SLOT_FREE;
	stats_write_end(map);
}

void
stats_retire_worker(struct stats_map *map, uint32_t slot)
{
	uint32_t i;

	stats_write_begin(map);
	for (i = 0; i < LBD_MAX_BACKENDS; i++) {
		struct lbd_stats_counter *dead = stats_counter(map, slot, i);
		struct lbd_stats_counter *sum = stats_counter(map, LBD_RETIRED_ROW, i);

		sum->connections += dead->connections;
		sum->connect_failures += dead->connect_failures;
		sum->bytes_in += dead->bytes_in;
		sum->bytes_out += dead->bytes_out;
		sum->spliced_in += dead->spliced_in;
		sum->spliced_out += dead->spliced_out;
		memset(dead, 0, sizeof(*dead));
	}
	for (i = 0; i < LBD_MAX_SERVICES; i++) {
		struct lbd_stats_service_counter *dead = stats_service_counter(map, slot, i);
		struct lbd_stats_service_counter *sum =
		    stats_service_counter(map, LBD_RETIRED_ROW, i);

		sum->accepted += dead->accepted;
		sum->rejected += dead->rejected;
		memset(dead, 0, sizeof(*dead));
	}
	stats_write_end(map);
}

const char *
stats_state_name(uint32_t health, uint32_t admin)
{
	if (admin == LBD_ADMIN_DISABLED)
		return "disabled";
	if (admin == LBD_ADMIN_DRAIN)
		return "drain";
	return health == LBD_HEALTH_DOWN ? "down" : "up";
}
