/*
 * The stats segment: creation, slot layout by name, the master's seqlock,
 * and the sums readers take over the per-worker rows.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "statsmap.h"

static size_t
round_up(size_t n)
{
	return (n + 4095) & ~(size_t)4095;
}

static size_t
line_up(size_t n)
{
	return (n + LBD_CACHELINE - 1) & ~(size_t)(LBD_CACHELINE - 1);
}

/* Room for what is in use plus half again (a reload that renames
 * everything needs old and new at once), and a little more. */
static uint32_t
with_headroom(size_t n, size_t least)
{
	size_t room = n + n / 2 + least;

	return room > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)room;
}

void
stats_size_for(const struct lbd_config *conf, struct stats_size *sz)
{
	size_t i, backends = 0, listens = 0;
	uint32_t slots;

	for (i = 0; i < conf->nservices; i++) {
		backends += conf->services[i].nbackends;
		listens += conf->services[i].nlisten;
	}
	sz->services = with_headroom(conf->nservices, 8);
	sz->backends = with_headroom(backends, 64);
	sz->listens = with_headroom(listens, 8);
	/* Two generations at once, and a third for a quick second reload. */
	slots = 3 * conf->workers + 2;
	sz->worker_slots = slots > LBD_MAX_WORKER_SLOTS ? LBD_MAX_WORKER_SLOTS : slots;
}

static void
stats_fill_header(struct lbd_stats_header *hdr, const struct stats_size *sz,
    uint32_t workers)
{
	size_t off = sizeof(*hdr), rows = (size_t)sz->worker_slots + 1;

	hdr->magic = LBD_STATS_MAGIC;
	hdr->version = LBD_STATS_VERSION;
	hdr->header_size = sizeof(*hdr);
	hdr->service_size = sizeof(struct lbd_stats_service);
	hdr->backend_size = sizeof(struct lbd_stats_backend);
	hdr->worker_size = sizeof(struct lbd_stats_worker);
	hdr->counter_size = sizeof(struct lbd_stats_counter);
	hdr->service_counter_size = sizeof(struct lbd_stats_service_counter);
	hdr->limit_size = sizeof(struct lbd_stats_limit);
	hdr->listen_size = sizeof(struct lbd_stats_listen);
	hdr->max_services = sz->services;
	hdr->max_backends = sz->backends;
	hdr->max_listens = sz->listens;
	hdr->worker_slots = sz->worker_slots;
	hdr->services_off = off;
	off += (size_t)sz->services * sizeof(struct lbd_stats_service);
	hdr->backends_off = off;
	off += (size_t)sz->backends * sizeof(struct lbd_stats_backend);
	hdr->workers_off = off;
	off += (size_t)sz->worker_slots * sizeof(struct lbd_stats_worker);
	hdr->counters_off = off;
	off += rows * sz->backends * sizeof(struct lbd_stats_counter);
	hdr->service_counters_off = off;
	off += rows * sz->services * sizeof(struct lbd_stats_service_counter);
	hdr->limits_off = off;
	off += (size_t)sz->backends * sizeof(struct lbd_stats_limit);
	hdr->listens_off = off;
	off += line_up((size_t)sz->listens * sizeof(struct lbd_stats_listen));
	hdr->members_off = off;
	off += line_up((size_t)sz->backends * sizeof(uint32_t));
	hdr->total_size = round_up(off);
	hdr->master_pid = (int32_t)getpid();
	hdr->workers_configured = workers;
	hdr->start_time = (uint64_t)time(NULL);
	snprintf(hdr->lbd_version, sizeof(hdr->lbd_version), "%s", LBD_VERSION);
}

int
stats_create(struct stats_map *map, const char *path, const struct stats_size *sz,
    uint32_t workers, const struct stats_map *from)
{
	struct lbd_stats_header proto;
	char tmp[512];
	void *base;
	int fd, rc;

	memset(&proto, 0, sizeof(proto));
	stats_fill_header(&proto, sz, workers);
	/* A fresh file renamed into place: a reader never maps a half-made one. */
	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	(void)unlink(tmp);
	if ((fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) == -1)
		return -1;
	if (fchmod(fd, 0644) == -1)
		goto fail;
	/* Its blocks reserved now: a sparse file on a full runtime-dir would
	 * kill the first process to touch an unbacked page with SIGBUS. */
	if ((rc = posix_fallocate(fd, 0, (off_t)proto.total_size)) != 0) {
		errno = rc;
		goto fail;
	}
	base = mmap(NULL, proto.total_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		goto fail;
	memcpy(base, &proto, sizeof(proto));
	map->base = base;
	map->size = proto.total_size;
	map->hdr = base;
	if (from != NULL)
		stats_copy_segment(map, from);
	if (rename(tmp, path) == -1) {
		munmap(base, proto.total_size);
		map->base = NULL;
		map->hdr = NULL;
		goto fail;
	}
	close(fd);
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

/* Region [off, off + n * size) lies in the segment, after the header,
 * on a cache line: no overflow, whatever the file says. */
static int
region_ok(const struct lbd_stats_header *hdr, uint64_t off, uint64_t n, uint64_t size)
{
	return off >= hdr->header_size && off % LBD_CACHELINE == 0 &&
	    off <= hdr->total_size && n * size <= hdr->total_size - off;
}

/* Every offset and size of a header whose record sizes and counts are
 * already known to be ours, against the file's size. */
static const char *
check_regions(const struct lbd_stats_header *hdr, uint64_t file_size)
{
	if (hdr->total_size > file_size)
		return "segment is truncated";
	uint64_t rows = (uint64_t)hdr->worker_slots + 1;

	if (hdr->worker_slots == 0 || hdr->worker_slots > LBD_MAX_WORKER_SLOTS)
		return "the segment header's worker slots are out of range";
	if (!region_ok(hdr, hdr->services_off, hdr->max_services, hdr->service_size) ||
	    !region_ok(hdr, hdr->backends_off, hdr->max_backends, hdr->backend_size) ||
	    !region_ok(hdr, hdr->workers_off, hdr->worker_slots, hdr->worker_size) ||
	    !region_ok(hdr, hdr->counters_off, rows * hdr->max_backends,
	    hdr->counter_size) ||
	    !region_ok(hdr, hdr->service_counters_off, rows * hdr->max_services,
	    hdr->service_counter_size) ||
	    !region_ok(hdr, hdr->limits_off, hdr->max_backends, hdr->limit_size) ||
	    !region_ok(hdr, hdr->listens_off, hdr->max_listens, hdr->listen_size) ||
	    !region_ok(hdr, hdr->members_off, hdr->max_backends, sizeof(uint32_t)))
		return "an offset in the segment header points outside the segment";
	return NULL;
}

/*
 * Maps an existing segment, read-only for lbstat or read-write for a master
 * after a binary upgrade.  O_NONBLOCK: a FIFO put in its place must not hang
 * lbstat in open(); only a regular file is read.  Every offset is checked
 * before anything is mapped.
 */
static int
stats_open_mode(struct stats_map *map, const char *path, int writable, char *err,
    size_t errlen)
{
	const char *why;
	struct lbd_stats_header hdr;
	struct stat st;
	void *base;
	int fd;

	fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
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
	    hdr.limit_size != sizeof(struct lbd_stats_limit) ||
	    hdr.listen_size != sizeof(struct lbd_stats_listen)) {
		snprintf(err, errlen, "%s: stats layout version %u is not the one this "
		    "program reads (%u)", path, hdr.version, LBD_STATS_VERSION);
		goto fail;
	}
	if ((why = check_regions(&hdr, (uint64_t)st.st_size)) != NULL) {
		snprintf(err, errlen, "%s: %s", path, why);
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

int
stats_read_retry(const struct stats_map *map, uint32_t seq)
{
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return (seq & 1) || __atomic_load_n(&map->hdr->seq, __ATOMIC_RELAXED) != seq;
}

/* Worker rows past this one have never been used. */
static uint32_t
rows_used(const struct stats_map *map)
{
	uint32_t used = __atomic_load_n(&map->hdr->worker_slots_used, __ATOMIC_RELAXED);

	return used < map->hdr->worker_slots ? used : map->hdr->worker_slots;
}

uint64_t
stats_backend_active(const struct stats_map *map, uint32_t backend)
{
	uint32_t row, used = rows_used(map);
	uint64_t sum = 0;

	for (row = 0; row < used; row++)
		if (stats_worker(map, row)->state != LBD_WORKER_FREE)
			sum += stats_load(&stats_counter(map, row, backend)->active);
	return sum;
}

static uint64_t
counter_field(const struct stats_map *map, uint32_t row, uint32_t backend, size_t field)
{
	return stats_load((const uint64_t *)(const void *)
	    ((const char *)stats_counter(map, row, backend) + field));
}

uint64_t
stats_backend_total(const struct stats_map *map, uint32_t backend, size_t field)
{
	uint32_t row, used = rows_used(map);
	uint64_t sum = counter_field(map, stats_retired_row(map), backend, field);

	for (row = 0; row < used; row++)
		sum += counter_field(map, row, backend, field);
	return sum;
}

void
stats_retire_worker(struct stats_map *map, uint32_t slot)
{
	uint32_t i;

	stats_write_begin(map);
	for (i = 0; i < map->hdr->max_backends; i++) {
		struct lbd_stats_counter *dead = stats_counter(map, slot, i);
		struct lbd_stats_counter *sum = stats_counter(map, stats_retired_row(map), i);

		sum->connections += dead->connections;
		sum->connect_failures += dead->connect_failures;
		sum->bytes_in += dead->bytes_in;
		sum->bytes_out += dead->bytes_out;
		sum->spliced_in += dead->spliced_in;
		sum->spliced_out += dead->spliced_out;
		sum->exchanges += dead->exchanges;
		sum->aged_out += dead->aged_out;
		sum->picks += dead->picks;
		/* The maxconn slots it held are free again. */
		if (dead->slots != 0)
			__atomic_fetch_sub(&stats_limit(map, i)->conns, dead->slots,
			    __ATOMIC_RELEASE);
		memset(dead, 0, sizeof(*dead));
	}
	for (i = 0; i < map->hdr->max_services; i++) {
		struct lbd_stats_service_counter *dead = stats_service_counter(map, slot, i);
		struct lbd_stats_service_counter *sum =
		    stats_service_counter(map, stats_retired_row(map), i);

		sum->accepted += dead->accepted;
		sum->rejected += dead->rejected;
		sum->proxy_errors += dead->proxy_errors;
		sum->denied += dead->denied;
		sum->sni_misses += dead->sni_misses;
		sum->queue_timeouts += dead->queue_timeouts;
		sum->queue_waited += dead->queue_waited;
		/* Its waiting clients died with it: they wait no more. */
		if (dead->queued != 0)
			__atomic_fetch_sub(&stats_service(map, i)->queued, dead->queued,
			    __ATOMIC_RELAXED);
		memset(dead, 0, sizeof(*dead));
	}
	stats_write_end(map);
}

void
stats_backend_read(const struct stats_map *map, uint32_t slot, struct lbd_stats_backend *out)
{
	const struct lbd_stats_backend *b = stats_backend(map, slot);
	uint32_t seq;
	int tries;

	for (tries = 0; tries < 1000; tries++) {
		seq = __atomic_load_n(&b->check_seq, __ATOMIC_ACQUIRE);
		if (seq & 1)
			continue;
		memcpy(out, b, sizeof(*out));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&b->check_seq, __ATOMIC_RELAXED) == seq)
			return;
	}
	memcpy(out, b, sizeof(*out));
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
