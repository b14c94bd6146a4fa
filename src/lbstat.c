/*
 * lbstat: print the counters of a running lbd, read straight from its stats
 * segment through a read-only mapping.  The daemon is never asked anything,
 * so this works when it is overloaded, and needs only read access to the
 * file.  Rendering lives in statview.c (table) and statexport.c (JSON,
 * Prometheus), the HTTP server of -l in statserve.c; here are the options,
 * the mapping, consistent snapshots and the sampling loop.
 */
#include <err.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "statsmap.h"
#include "statexport.h"
#include "statserve.h"
#include "statview.h"
#include "watchdog.h"

#define SNAP_SPINS	64	/* seqlock attempts before napping between them */
#define SNAP_TRIES	(SNAP_SPINS + 1000)	/* then 1ms naps: give up after about 1s */
#define SNAP_SUPERSEDED	1	/* lbstat_snapshot: read, but the file was replaced */
#define MIN_INTERVAL	0.01
#define MAX_INTERVAL	86400.0
#define PATH_LEN	1024
#define ERR_LEN		(PATH_LEN + 256)	/* a path and what went wrong with it */

enum lbstat_format { FORMAT_TABLE, FORMAT_JSON, FORMAT_PROM };

struct lbstat_opts {
	enum lbstat_format format;
	const char *stats_path;		/* -s */
	const char *conf_path;		/* -f */
	const char *listen;		/* -l: serve HTTP there instead of printing */
	double interval;		/* -i; 0: one sample */
	uint64_t count;			/* -c; 0: until interrupted */
	struct statview_filter filter;
};

/* The mapped segment and what identifies the daemon that made it. */
struct lbstat_seg {
	struct stats_map map;		/* owned: stats_unmap */
	char path[PATH_LEN];
	dev_t dev;
	ino_t ino;
	int32_t pid;			/* master_pid when mapped */
};

#define SYNOPSIS \
	"usage: lbstat [-hjp] [-s statsfile | -f configfile] [-i seconds [-c count]]\n" \
	"              [-l address:port] [service[/backend]]\n"

static void __attribute__((noreturn))
help(void)
{
	printf(SYNOPSIS
	    "  -c count       with -i, stop after count samples\n"
	    "  -f configfile  read the segment from the runtime-dir of configfile\n"
	    "                 (default: $LBD_CONF, or " LBD_DEFAULT_CONF ")\n"
	    "  -h             print this help and exit\n"
	    "  -i seconds     print a sample every seconds (fractions allowed) until\n"
	    "                 interrupted; after the first, show per-second rates\n"
	    "  -j             JSON, one object per sample, one per line\n"
	    "  -l addr:port   serve /, /metrics, /stats.json and /history.json over\n"
	    "                 HTTP there (e.g. 127.0.0.1:9477) until interrupted\n"
	    "  -p             Prometheus text exposition format\n"
	    "  -s statsfile   read this stats segment\n"
	    "  service[/backend]  show only this service, or this backend\n");
	exit(0);
}

/* Exit status 2: why (when there is more to say than getopt did), the synopsis. */
static void __attribute__((noreturn))
usage(const char *why, const char *arg)
{
	if (why != NULL && arg != NULL)
		warnx("%s: %s", why, arg);
	else if (why != NULL)
		warnx("%s", why);
	fputs(SYNOPSIS, stderr);
	exit(2);
}

static double
parse_interval(const char *text)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(text, &end);
	/* The negated range test also refuses NaN. */
	if (end == text || *end != '\0' || errno != 0 ||
	    !(v >= MIN_INTERVAL && v <= MAX_INTERVAL))
		usage("-i: not a number of seconds from 0.01 to 86400", text);
	return v;
}

/* Options that make no sense together. */
static void
options_exclusive(const struct lbstat_opts *o, int jflag, int pflag)
{
	if (jflag && pflag)
		usage("-j and -p exclude each other", NULL);
	if (o->stats_path != NULL && o->conf_path != NULL)
		usage("-s and -f exclude each other", NULL);
	if (o->count != 0 && o->interval == 0)
		usage("-c needs -i", NULL);
	if (o->listen != NULL && (jflag || pflag || o->interval != 0))
		usage("-l excludes -i, -j and -p", NULL);
}

static void
lbstat_options(int argc, char *argv[], struct lbstat_opts *o)
{
	const char *errstr;
	char why[128];
	int ch, jflag = 0, pflag = 0;

	memset(o, 0, sizeof(*o));
	while ((ch = getopt(argc, argv, "c:f:hi:jl:ps:")) != -1) {
		switch (ch) {
		case 'c':
			o->count = (uint64_t)strtonum(optarg, 1, UINT32_MAX, &errstr);
			if (errstr != NULL)
				usage("-c: count is not a positive number", optarg);
			break;
		case 'f':
			o->conf_path = optarg;
			break;
		case 'h':
			help();
		case 'i':
			o->interval = parse_interval(optarg);
			break;
		case 'j':
			jflag = 1;
			break;
		case 'l':
			o->listen = optarg;
			break;
		case 'p':
			pflag = 1;
			break;
		case 's':
			o->stats_path = optarg;
			break;
		default:
			usage(NULL, NULL);
		}
	}
	argc -= optind;
	argv += optind;
	options_exclusive(o, jflag, pflag);
	if (argc > 1)
		usage("one service or service/backend at most", NULL);
	if (argc == 1 && statview_filter_parse(argv[0], &o->filter, why, sizeof(why)) == -1)
		usage(why, NULL);
	o->format = jflag ? FORMAT_JSON : pflag ? FORMAT_PROM : FORMAT_TABLE;
}

/* -s, or runtime-dir of the configuration file (-f, $LBD_CONF, default). */
static int
lbstat_segment_path(const struct lbstat_opts *o, char *buf, size_t len)
{
	struct lbd_config *conf;
	const char *file = o->conf_path;
	int rc;

	if (o->stats_path != NULL) {
		if (strlcpy(buf, o->stats_path, len) < len)
			return 0;
		warnx("%s: %s", o->stats_path, strerror(ENAMETOOLONG));
		return -1;
	}
	if (file == NULL && ((file = getenv("LBD_CONF")) == NULL || *file == '\0'))
		file = LBD_DEFAULT_CONF;
	if ((conf = config_load(file, stderr)) == NULL)
		return -1;	/* config_load said why, as file:line: message */
	if ((rc = config_stats_path(conf, buf, len)) == -1)
		warnx("%s: runtime-dir: %s", file, strerror(ENAMETOOLONG));
	config_free(conf);
	return rc;
}

static int
seg_open(struct lbstat_seg *seg, char *err, size_t errlen)
{
	struct stat st;

	/*
	 * stat before mapping: should the file be replaced in between, the
	 * next sample sees a new inode and maps again, never the reverse.
	 */
	if (stat(seg->path, &st) == -1) {
		snprintf(err, errlen, "%s: %s%s", seg->path, strerror(errno),
		    errno == ENOENT ? " (is lbd running?)" : "");
		return -1;
	}
	if (stats_open_readonly(&seg->map, seg->path, err, errlen) == -1) {
		if (errno == ENOENT)
			strlcat(err, " (is lbd running?)", errlen);
		return -1;
	}
	seg->dev = st.st_dev;
	seg->ino = st.st_ino;
	seg->pid = __atomic_load_n(&seg->map.hdr->master_pid, __ATOMIC_RELAXED);
	return 0;
}

/*
 * A new daemon creates a new file and renames it over the old one: follow
 * it.  Returns 1 when the segment was mapped afresh, 0 when it is the same
 * (or gone: the stopped daemon's last counters stay on show), -1 on error.
 */
static int
seg_refresh(struct lbstat_seg *seg, char *err, size_t errlen)
{
	struct lbstat_seg fresh;
	struct stat st;

	if (stat(seg->path, &st) == -1)
		return 0;
	if (st.st_dev == seg->dev && st.st_ino == seg->ino &&
	    __atomic_load_n(&seg->map.hdr->master_pid, __ATOMIC_RELAXED) == seg->pid)
		return 0;
	memset(&fresh, 0, sizeof(fresh));
	strlcpy(fresh.path, seg->path, sizeof(fresh.path));
	if (seg_open(&fresh, err, errlen) == -1)
		return -1;
	stats_unmap(&seg->map);
	*seg = fresh;
	return 1;
}

/* Copies a fixed-size name from the segment, NUL-terminated whatever it holds. */
static void
copy_str(char *dst, const char *src, size_t len)
{
	memcpy(dst, src, len);
	dst[len - 1] = '\0';
}

static uint64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Rows a reader sums: those of workers ever started, and the retired row. */
static uint32_t
rows_used(const struct stats_map *map)
{
	uint32_t used = __atomic_load_n(&map->hdr->worker_slots_used, __ATOMIC_RELAXED);

	return used < map->hdr->worker_slots ? used : map->hdr->worker_slots;
}

static void
add_counter(struct statview_backend *be, const struct lbd_stats_counter *c, int live)
{
	if (live)
		be->active += stats_load(&c->active);
	be->connections += stats_load(&c->connections);
	be->connect_failures += stats_load(&c->connect_failures);
	be->bytes_in += stats_load(&c->bytes_in);
	be->bytes_out += stats_load(&c->bytes_out);
	be->spliced_in += stats_load(&c->spliced_in);
	be->spliced_out += stats_load(&c->spliced_out);
	be->exchanges += stats_load(&c->exchanges);
	be->aged_out += stats_load(&c->aged_out);
}

/* Totals over every row, the retired row of dead workers included; active
 * only over rows whose worker still lives. */
static void
capture_counters(const struct stats_map *map, uint32_t slot, const uint8_t *live,
    struct statview_backend *be)
{
	uint32_t row, used = rows_used(map);

	for (row = 0; row < used; row++)
		add_counter(be, stats_counter(map, row, slot), live[row]);
	add_counter(be, stats_counter(map, stats_retired_row(map), slot), 0);
}

static void
capture_backend(const struct stats_map *map, uint32_t slot, const uint8_t *live,
    struct statview_backend *be)
{
	struct lbd_stats_backend b;

	stats_backend_read(map, slot, &b);
	memset(be, 0, sizeof(*be));
	be->slot = slot;
	be->retired = b.state == LBD_SLOT_RETIRED;
	copy_str(be->name, b.name, sizeof(be->name));
	copy_str(be->address, b.address, sizeof(be->address));
	copy_str(be->check_text, b.check_text, sizeof(be->check_text));
	be->health = b.health;
	be->admin = b.admin;
	be->weight = b.weight;
	be->check_status = b.check_status;
	be->check_latency_us = b.check_latency_us;
	be->maxconn = b.maxconn;
	be->backup = (b.flags & LBD_BACKEND_BACKUP) != 0;
	be->ramp_permille = b.ramp_permille;
	be->last_change = b.last_change;
	be->check_interval_ms = b.check_interval_ms;
	be->check_age_ms = b.last_check_ms == 0 ? -1 :
	    wall_ms() > b.last_check_ms ? (int64_t)(wall_ms() - b.last_check_ms) : 0;
	capture_counters(map, slot, live, be);
}

static void
add_service_counter(struct statview_service *svc, const struct lbd_stats_service_counter *c,
    int live)
{
	if (live)
		svc->active += stats_load(&c->active);
	svc->accepted += stats_load(&c->accepted);
	svc->rejected += stats_load(&c->rejected);
	svc->proxy_errors += stats_load(&c->proxy_errors);
	svc->denied += stats_load(&c->denied);
	svc->sni_misses += stats_load(&c->sni_misses);
	svc->queue_timeouts += stats_load(&c->queue_timeouts);
}

static void
capture_service_counters(const struct stats_map *map, const uint8_t *live,
    struct statview_service *svc)
{
	uint32_t row, used = rows_used(map);

	for (row = 0; row < used; row++)
		add_service_counter(svc, stats_service_counter(map, row, svc->slot), live[row]);
	add_service_counter(svc, stats_service_counter(map, stats_retired_row(map), svc->slot),
	    0);
}

/* Retired backend slots (a reload removed them), by service then slot. */
struct retired_list {
	uint64_t *keys;			/* service << 32 | slot */
	size_t n, next;
};

static int
key_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
retired_collect(const struct stats_map *map, struct retired_list *rl)
{
	uint32_t i;

	rl->n = rl->next = 0;
	for (i = 0; i < map->hdr->max_backends; i++) {
		const struct lbd_stats_backend *b = stats_backend(map, i);

		if (b->state == LBD_SLOT_RETIRED)
			rl->keys[rl->n++] = (uint64_t)b->service << 32 | i;
	}
	qsort(rl->keys, rl->n, sizeof(*rl->keys), key_cmp);
}

/*
 * A service's backends: those of its configuration, then those a reload
 * removed that old workers still relay to (shown so that the service's
 * active count adds up).  Every index from the segment is bounded: a torn
 * read is thrown away afterwards, but must not run off the mapping first.
 */
static void
capture_backends(const struct stats_map *map, const struct lbd_stats_service *s,
    const uint8_t *live, struct statview_service *svc, struct statview_snap *snap,
    struct retired_list *rl)
{
	uint32_t j, b;

	for (j = 0; j < s->nbackends && snap->nbackends < snap->cap_backends; j++)
		if ((b = stats_service_member(map, s, j)) != UINT32_MAX)
			capture_backend(map, b, live, &snap->backends[snap->nbackends++]);
	while (rl->next < rl->n && rl->keys[rl->next] >> 32 < svc->slot)
		rl->next++;
	for (; rl->next < rl->n && rl->keys[rl->next] >> 32 == svc->slot; rl->next++) {
		if (snap->nbackends == snap->cap_backends)
			break;
		capture_backend(map, (uint32_t)rl->keys[rl->next], live,
		    &snap->backends[snap->nbackends]);
		if (snap->backends[snap->nbackends].active > 0)
			snap->nbackends++;
	}
	svc->count = snap->nbackends - svc->first;
	for (j = 0; j < svc->count; j++)
		svc->exchanges += snap->backends[svc->first + j].exchanges;
}

static void
capture_listens(const struct stats_map *map, const struct lbd_stats_service *s,
    struct statview_service *svc, struct statview_snap *snap)
{
	uint32_t i;

	svc->listen_first = snap->nlistens;
	svc->nlisten = 0;
	for (i = 0; i < s->nlisten && snap->nlistens < snap->cap_listens; i++) {
		if ((uint64_t)s->listen_first + i >= map->hdr->max_listens)
			break;
		copy_str(snap->listens[snap->nlistens++],
		    stats_listen(map, s->listen_first + i)->address, LBD_ADDR_LEN);
		svc->nlisten++;
	}
}

static void
capture_service(const struct stats_map *map, uint32_t slot, const uint8_t *live,
    struct statview_snap *snap, struct retired_list *rl)
{
	struct lbd_stats_service s;
	struct statview_service *svc = &snap->services[snap->nservices];
	uint32_t i;

	memcpy(&s, stats_service(map, slot), sizeof(s));
	memset(svc, 0, sizeof(*svc));
	svc->slot = slot;
	copy_str(svc->name, s.name, sizeof(svc->name));
	capture_listens(map, &s, svc, snap);
	svc->balance = s.balance;
	svc->queued = s.queued;
	svc->queue_max = s.queue_max;
	capture_service_counters(map, live, svc);
	svc->first = snap->nbackends;
	capture_backends(map, &s, live, svc, snap, rl);
	for (i = 0; i < svc->count; i++)
		svc->limited |= snap->backends[svc->first + i].maxconn > 0;
	snap->nservices++;
}

static void
capture_workers(const struct stats_map *map, uint8_t *live, struct statview_snap *snap)
{
	struct lbd_stats_worker w;
	struct statview_worker *v;
	uint32_t slot;

	snap->nworkers = 0;
	for (slot = 0; slot < map->hdr->worker_slots; slot++) {
		memcpy(&w, stats_worker(map, slot), sizeof(w));
		if ((live[slot] = w.state != LBD_WORKER_FREE) == 0)
			continue;
		v = &snap->workers[snap->nworkers++];
		memset(v, 0, sizeof(*v));
		v->slot = slot;
		v->id = w.id;
		v->pid = w.pid;
		v->generation = w.generation;
		v->state = w.state;
		v->restarts = w.restarts;
		v->accepted = stats_load(&stats_worker(map, slot)->accepted);
		v->active = stats_load(&stats_worker(map, slot)->active);
		v->heartbeat_age_ms = watchdog_age_ms(w.heartbeat_ms, clock_ms());
	}
}

/* Scratch sized by the segment (its counts never change in one file). */
struct capture_scratch {
	uint8_t *live;			/* by worker slot */
	struct retired_list retired;
};

/* Everything lbstat shows, read inside one seqlock section by the caller. */
static void
capture(const struct stats_map *map, struct statview_snap *snap,
    struct capture_scratch *cs)
{
	struct lbd_stats_header h;
	uint32_t slot;

	memcpy(&h, map->hdr, sizeof(h));
	copy_str(snap->version, h.lbd_version, sizeof(snap->version));
	snap->pid = h.master_pid;
	snap->generation = h.generation;
	snap->workers_configured = h.workers_configured;
	snap->start_time = h.start_time;
	snap->worker_restarts = h.worker_restarts;
	snap->reloads = h.reloads;
	snap->worker_stall_ms = h.worker_stall_ms;
	capture_workers(map, cs->live, snap);
	retired_collect(map, &cs->retired);
	snap->nservices = 0;
	snap->nbackends = 0;
	snap->nlistens = 0;
	for (slot = 0; slot < map->hdr->max_services; slot++)
		if (stats_service(map, slot)->state == LBD_SLOT_LIVE)
			capture_service(map, slot, cs->live, snap, &cs->retired);
}

static int
worker_cmp(const void *a, const void *b)
{
	const struct statview_worker *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->generation < y->generation ? -1 : x->generation > y->generation;
}

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
nap(long nsec)
{
	struct timespec ts = { 0, nsec };

	nanosleep(&ts, NULL);
}

/*
 * A consistent snapshot, tried a bounded number of times with naps between:
 * a master that died mid-write leaves the sequence odd for good.
 */
static int
lbstat_snapshot(const struct lbstat_seg *seg, struct statview_snap *snap,
    char *err, size_t errlen)
{
	const struct stats_map *map = &seg->map;
	const struct lbd_stats_header *h = map->hdr;
	struct capture_scratch cs;
	uint32_t seq;
	int tries, rc = -1;

	cs.live = calloc(h->worker_slots, 1);
	cs.retired.keys = calloc(h->max_backends, sizeof(*cs.retired.keys));
	if (cs.live == NULL || cs.retired.keys == NULL ||
	    statview_snap_reserve(snap, h->max_services, h->max_backends, h->worker_slots,
	    h->max_listens) == -1) {
		snprintf(err, errlen, "%s: %s", seg->path, strerror(ENOMEM));
		goto done;
	}
	for (tries = 0; tries < SNAP_TRIES; tries++) {
		if (tries >= SNAP_SPINS)
			nap(1000000);
		seq = __atomic_load_n(&map->hdr->seq, __ATOMIC_ACQUIRE);
		if (seq & 1)
			continue;
		capture(map, snap, &cs);
		if (stats_read_retry(map, seq))
			continue;
		qsort(snap->workers, snap->nworkers, sizeof(snap->workers[0]), worker_cmp);
		snap->now = (uint64_t)time(NULL);
		snap->mono = mono_now();
		snap->has_rates = 0;
		snap->master_alive = snap->pid > 0 &&
		    (kill(snap->pid, 0) == 0 || errno == EPERM);
		/* A reload moved everything to a larger file: read that one. */
		rc = __atomic_load_n(&map->hdr->superseded, __ATOMIC_RELAXED) ?
		    SNAP_SUPERSEDED : 0;
		goto done;
	}
	snprintf(err, errlen, "%s: the segment stays in the middle of an update "
	    "(did the master die while writing it?)", seg->path);
done:
	free(cs.live);
	free(cs.retired.keys);
	return rc;
}

/*
 * Sleeps until the monotonic deadline.  SIGINT and SIGTERM are blocked and
 * taken here, so an interrupted lbstat never stops halfway through a sample.
 * Returns 1 when one arrived.
 */
static int
lbstat_wait(double deadline, const sigset_t *sigs)
{
	struct timespec ts;
	double left;

	while ((left = deadline - mono_now()) > 0) {
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		if (sigtimedwait(sigs, NULL, &ts) > 0)
			return 1;
	}
	return 0;
}

static void
lbstat_render(const struct lbstat_opts *o, const struct statview_snap *snap, int first)
{
	switch (o->format) {
	case FORMAT_JSON:
		statexport_json(stdout, snap, &o->filter);
		break;
	case FORMAT_PROM:
		if (!first)
			putchar('\n');
		statexport_prom(stdout, snap, &o->filter);
		break;
	default:
		if (!first)
			putchar('\n');
		statview_table(stdout, snap, &o->filter);
		break;
	}
}

/*
 * A snapshot of the segment lbd uses now: a reload that grew it renamed a
 * larger file over the path and marked the old one.  1 in *fresh when the
 * file was mapped afresh.
 */
static int
lbstat_take(struct lbstat_seg *seg, struct statview_snap *snap, int *fresh, char *err,
    size_t errlen)
{
	int rc, tries;

	for (tries = 0; tries < 3; tries++) {
		if ((rc = lbstat_snapshot(seg, snap, err, errlen)) != SNAP_SUPERSEDED)
			return rc;
		if ((rc = seg_refresh(seg, err, errlen)) == -1)
			return -1;
		*fresh |= rc;
	}
	return 0;		/* replaced again and again: this one will do */
}

/* One sample: follow a replaced segment, snapshot, check the filter, print. */
static int
lbstat_sample(const struct lbstat_opts *o, struct lbstat_seg *seg,
    struct statview_snap *cur, const struct statview_snap *prev)
{
	char err[ERR_LEN];
	int fresh = 0;

	if (prev != NULL && (fresh = seg_refresh(seg, err, sizeof(err))) == -1)
		goto fail;
	if (lbstat_take(seg, cur, &fresh, err, sizeof(err)) == -1 ||
	    statview_filter_check(cur, &o->filter, err, sizeof(err)) == -1)
		goto fail;
	if (prev != NULL && !fresh)
		statview_rates(cur, prev);
	lbstat_render(o, cur, prev == NULL);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		warn("stdout");
		return -1;
	}
	return 0;
fail:
	warnx("%s", err);
	return -1;
}

static int
lbstat_run(const struct lbstat_opts *o, struct lbstat_seg *seg)
{
	struct statview_snap *mem, *snaps[2], *t;
	sigset_t sigs;
	uint64_t n;
	double next;
	int rc = 0;

	if ((mem = calloc(2, sizeof(*mem))) == NULL)
		err(1, "calloc");
	snaps[0] = &mem[0];
	snaps[1] = &mem[1];
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	if (o->interval > 0 && sigprocmask(SIG_BLOCK, &sigs, NULL) == -1)
		err(1, "sigprocmask");
	next = mono_now();
	for (n = 0; o->count == 0 || n < o->count; n++) {
		if (n > 0 && lbstat_wait(next, &sigs))
			break;		/* interrupted: a clean stop */
		if ((rc = lbstat_sample(o, seg, snaps[0], n > 0 ? snaps[1] : NULL)) == -1)
			break;
		if (o->interval == 0)
			break;
		t = snaps[0], snaps[0] = snaps[1], snaps[1] = t;
		/* Keep the cadence; after a stall (a stopped terminal) restart it. */
		next += o->interval;
		if (next < mono_now())
			next = mono_now() + o->interval;
	}
	statview_snap_free(&mem[0]);
	statview_snap_free(&mem[1]);
	free(mem);
	return rc == -1 ? 1 : 0;
}

/*
 * The server's sampler: a snapshot of the segment, mapped on first sight
 * and again whenever lbd replaced it (restart: new inode, new master pid).
 * While the file is missing, nothing is mapped and the server says why.
 */
static int
lbstat_serve_sample(void *ctx, struct statview_snap *snap, char *err, size_t errlen)
{
	struct lbstat_seg *seg = ctx;
	struct stat st;
	int fresh = 0;

	if (stat(seg->path, &st) == -1) {
		snprintf(err, errlen, "%s: %s%s", seg->path, strerror(errno),
		    errno == ENOENT ? " (is lbd running?)" : "");
		stats_unmap(&seg->map);
		return -1;
	}
	if (seg->map.base == NULL) {
		if (seg_open(seg, err, errlen) == -1)
			return -1;
	} else if (seg_refresh(seg, err, errlen) == -1)
		return -1;
	return lbstat_take(seg, snap, &fresh, err, errlen);
}

static int
lbstat_serve(const struct lbstat_opts *o, struct lbstat_seg *seg)
{
	struct statserve_source src = { lbstat_serve_sample, seg };
	int rc;

	log_init(1, "lbstat");
	rc = statserve_run(o->listen, &o->filter, &src);
	stats_unmap(&seg->map);
	return rc;
}

int
main(int argc, char *argv[])
{
	struct lbstat_opts opts;
	struct lbstat_seg seg;
	char errbuf[ERR_LEN];
	int rc;

	lbstat_options(argc, argv, &opts);
	memset(&seg, 0, sizeof(seg));
	if (lbstat_segment_path(&opts, seg.path, sizeof(seg.path)) == -1)
		return 1;
	if (opts.listen != NULL)	/* no segment yet is no error: 503 until lbd starts */
		return lbstat_serve(&opts, &seg);
	if (seg_open(&seg, errbuf, sizeof(errbuf)) == -1) {
		warnx("%s", errbuf);
		return 1;
	}
	rc = lbstat_run(&opts, &seg);
	stats_unmap(&seg.map);
	return rc;
}
