/*
 * The stats segment: the one contract between lbd, lbstat and lbadmin.
 *
 * A file in runtime-dir, mapped MAP_SHARED by the master and its workers and
 * read-only by lbstat.  Fixed-width types only; every record has a single
 * writer, named beside it.  Change the layout, bump LBD_STATS_VERSION.
 *
 * Reload keeps the file and its mapping: services and backends live in slots
 * keyed by name, so a backend that survives a reload keeps its slot, its
 * counters and its admin state, and workers of the old and the new
 * generation index the same counter rows.  A reload that needs more slots
 * than the file has moves everything to a larger file (same slot numbers)
 * renamed over it; readers follow the path to the new inode, and the master
 * copies what old workers still write to the old file into the new one.
 *
 * Counters are per worker slot (row w is written only by the worker in slot
 * w), so nothing on the relay path takes a lock or bounces a cache line
 * between workers; readers sum the rows.  When the master reaps a dead
 * worker it folds that worker's totals into the retired row and zeroes its
 * active counts, so a crash never leaves "active" inflated.
 */
#ifndef LBD_STATS_H
#define LBD_STATS_H

#include <stdint.h>

#define LBD_STATS_MAGIC		UINT64_C(0x3153544154534c42)	/* "LBSTATS1" */
#define LBD_STATS_VERSION	7
#define LBD_STATS_FILE		"lbd.stats"

#define LBD_NAME_LEN		48	/* service and backend names, with NUL */
#define LBD_ADDR_LEN		64	/* "[v6addr%scope]:port", with NUL */
#define LBD_CHECK_TEXT_LEN	64	/* last health-check result, with NUL */
#define LBD_VERSION_LEN		16

/*
 * No limit on services, listen addresses or backends: the segment is sized
 * from the configuration, with room to spare, and replaced by a larger one
 * when a reload needs more (src/statsmap.c).  The header says how many of
 * each record this segment holds.  Workers are bounded, for the master's
 * process table: a reload starts a new generation beside the old one.
 */
#define LBD_MAX_WORKERS		256	/* configured workers */
#define LBD_MAX_WORKER_SLOTS	(2 * LBD_MAX_WORKERS)	/* old and new generation */

#define LBD_CACHELINE		64

enum lbd_balance {
	LBD_BALANCE_ROUNDROBIN = 0,
	LBD_BALANCE_LEASTCONN = 1,
	LBD_BALANCE_SOURCE = 2,
	LBD_BALANCE_LEASTLOAD = 3,
};

enum lbd_health {
	LBD_HEALTH_UP = 0,
	LBD_HEALTH_DOWN = 1,
};

enum lbd_admin {
	LBD_ADMIN_NONE = 0,
	LBD_ADMIN_DRAIN = 1,
	LBD_ADMIN_DISABLED = 2,
};

enum lbd_check_status {
	LBD_CHECK_NONE = 0,	/* not checked yet, or disabled */
	LBD_CHECK_OK = 1,
	LBD_CHECK_FAILED = 2,
};

enum lbd_slot_state {
	LBD_SLOT_FREE = 0,
	LBD_SLOT_LIVE = 1,	/* in the current configuration */
	LBD_SLOT_RETIRED = 2,	/* removed by a reload; old workers may still use it */
};

enum lbd_worker_state {
	LBD_WORKER_FREE = 0,
	LBD_WORKER_RUNNING = 1,
	LBD_WORKER_STOPPING = 2,	/* old generation or shutdown: finishing its connections */
	LBD_WORKER_STALLED = 3,		/* heartbeat older than worker-stall: being replaced */
};

/* Written by the master only. */
struct lbd_stats_header {
	uint64_t magic;
	uint32_t version;
	uint32_t header_size;
	uint32_t service_size;
	uint32_t backend_size;
	uint32_t worker_size;
	uint32_t counter_size;
	uint32_t service_counter_size;
	uint32_t max_services;		/* service records, and service counter columns */
	uint32_t max_backends;		/* backend and limit records, counter columns */
	uint32_t worker_slots;		/* worker records; counter rows are one more */
	uint64_t total_size;
	uint64_t services_off;
	uint64_t backends_off;
	uint64_t workers_off;
	uint64_t counters_off;		/* [worker_slots + 1][max_backends] */
	uint64_t service_counters_off;	/* [worker_slots + 1][max_services] */

	/* Seqlock over everything the master writes below and in the service,
	 * backend and worker records: odd while a write is in progress. */
	uint32_t seq;
	uint32_t generation;		/* bumped by every successful reload */
	int32_t master_pid;
	uint32_t workers_configured;
	uint64_t start_time;		/* unix seconds */
	uint64_t worker_restarts;	/* workers replaced after dying */
	uint64_t reloads;
	char lbd_version[LBD_VERSION_LEN];
	uint32_t worker_slots_used;	/* worker records below this index may be live */
	uint32_t worker_stall_ms;	/* worker-stall: a heartbeat older than this is hung */
	uint64_t limits_off;		/* [max_backends] struct lbd_stats_limit */
	uint32_t limit_size;
	/* Set in a file a reload replaced by a larger one: read the path again. */
	uint32_t superseded;
	uint64_t listens_off;		/* [max_listens] struct lbd_stats_listen */
	uint64_t members_off;		/* [max_backends] uint32_t backend slots */
	uint32_t max_listens;
	uint32_t listen_size;
	uint8_t reserved[56];
};

/*
 * Written by the master; rr_counter by every worker (atomic add); the queue
 * line by every worker (atomics), on a cache line of its own.
 */
struct lbd_stats_service {
	uint64_t rr_counter;		/* alone on its cache line */
	uint8_t pad0[LBD_CACHELINE - 8];
	/* The service queue (src/queue.c), touched only by services whose
	 * backends have a maxconn: */
	uint64_t queue_ticket;		/* tickets handed out, in order of arrival */
	uint64_t queued;		/* clients waiting now, all workers */
	uint64_t queue_max;		/* most clients seen waiting at once */
	uint8_t pad_q[LBD_CACHELINE - 24];
	char name[LBD_NAME_LEN];
	uint32_t state;			/* enum lbd_slot_state */
	uint32_t balance;		/* enum lbd_balance */
	/* Its listen addresses: listens[listen_first .. + nlisten); its
	 * backends' slots, in configuration order: members[member_first ..
	 * + nbackends).  A retired service has neither. */
	uint32_t nlisten;
	uint32_t nbackends;
	uint32_t listen_first;
	uint32_t member_first;
	/* Bumped after any change of a member's health, admin state or weight,
	 * so workers know to rebuild their schedules. */
	uint32_t sched_version;
	uint32_t queue_timeout_ms;	/* config, for lbstat */
	uint32_t max_queue;		/* config: 0 = bounded only by maxconn */
	uint32_t slowstart_ms;		/* config: 0 = off */
	uint8_t pad2[40];
} __attribute__((aligned(LBD_CACHELINE)));

/* Written by the master (health checker and control socket). */
struct lbd_stats_backend {
	char name[LBD_NAME_LEN];
	char address[LBD_ADDR_LEN];
	char check_text[LBD_CHECK_TEXT_LEN];	/* "ok", "connect: Connection refused" */
	uint32_t state;			/* enum lbd_slot_state */
	uint32_t service;		/* service slot */
	uint32_t health;		/* enum lbd_health */
	uint32_t admin;			/* enum lbd_admin */
	uint32_t weight;		/* effective weight, 0..256 */
	uint32_t check_status;		/* enum lbd_check_status */
	uint32_t check_latency_us;
	uint32_t admin_weight_set;	/* weight came from lbadmin: a reload keeps it */
	uint64_t last_change;		/* unix seconds of the last health/admin change */
	uint64_t checks;		/* health probes run */
	uint64_t last_check_ms;		/* unix milliseconds of the last probe's result, 0 = none */
	uint32_t check_interval_ms;	/* the service's health interval */
	uint32_t maxconn;		/* config: 0 = unlimited */
	uint32_t flags;			/* LBD_BACKEND_BACKUP */
	/* Slow start: the share of its weight it has now, in thousandths;
	 * 0 = not ramping (full weight).  The master steps it. */
	uint32_t ramp_permille;
	/* The load meter's (master) latest measure, for leastload: */
	uint64_t load_rate;		/* exchanges per second x 1000, decaying */
	uint64_t load_picks;		/* the backend's picks summed at that measure */
	/* A seqlock of its own over the check fields (check_text, status,
	 * latency, checks, last_check_ms): a check result, thousands a second
	 * at scale, must not make every reader of the whole segment retry. */
	uint32_t check_seq;
	uint8_t pad2[36];
} __attribute__((aligned(LBD_CACHELINE)));

#define LBD_BACKEND_BACKUP	1u	/* flags: used only while no primary is eligible */

/*
 * One per backend slot: the connections open to it from every worker, for
 * its maxconn.  A multi-writer atomic (a worker takes a slot with a
 * compare-and-swap below maxconn and gives it back on close; the master
 * gives back a dead worker's), so it sits alone on its cache line.  Only
 * backends with a maxconn touch it.
 */
struct lbd_stats_limit {
	uint64_t conns;
	uint8_t pad[LBD_CACHELINE - 8];
} __attribute__((aligned(LBD_CACHELINE)));

/* A listen address, as lbstat shows it. */
struct lbd_stats_listen {
	char address[LBD_ADDR_LEN];
};

/* pid, id, generation, state, restarts, started: master.  accepted, active,
 * sleeping, heartbeat_ms: the worker (heartbeat_ms set by the master before
 * the fork, so a new worker is not stalled before its first turn). */
struct lbd_stats_worker {
	int32_t pid;
	uint32_t id;			/* 1..workers: the N of "lbd: worker N" */
	uint32_t generation;
	uint32_t state;			/* enum lbd_worker_state */
	uint64_t restarts;		/* times this id was replaced after dying */
	uint64_t started;		/* unix seconds */
	uint64_t accepted;
	uint64_t active;
	uint32_t sleeping;		/* 1 while blocked in epoll_wait */
	uint32_t pad0;
	/* CLOCK_MONOTONIC milliseconds of the loop's last turn.  The loop
	 * turns at least every worker-stall/2 even when idle, so an old value
	 * means a hung worker, never a quiet one. */
	uint64_t heartbeat_ms;
} __attribute__((aligned(LBD_CACHELINE)));

/* One per (worker slot, backend slot): written only by that worker, or by
 * the master once the worker is dead. */
struct lbd_stats_counter {
	uint64_t active;
	uint64_t connections;		/* client connections relayed to the backend */
	uint64_t connect_failures;
	uint64_t bytes_in;		/* client -> backend */
	uint64_t bytes_out;		/* backend -> client */
	/* Directions that carried bulk and so moved from copying through a
	 * buffer to splice(); small request/response traffic stays copied. */
	uint64_t spliced_in;		/* client -> backend directions spliced */
	uint64_t spliced_out;		/* backend -> client directions spliced */
	/* Turns of a request/response conversation: the backend started
	 * answering after the client had sent (pipelined requests count once). */
	uint64_t exchanges;
	uint64_t aged_out;		/* closed at a quiet moment by max-connection-age */
	uint64_t picks;			/* times the schedule chose this backend */
	/* Slots of the backend's maxconn this worker holds: what the master
	 * gives back when the worker dies. */
	uint64_t slots;
	uint64_t pad[5];
};

/* One per (worker slot, service slot): same writers as above. */
struct lbd_stats_service_counter {
	uint64_t active;
	uint64_t accepted;
	uint64_t rejected;		/* closed without a backend: none eligible, all failed */
	/* Closed at the front door, counted on the first service of the
	 * listen address that has no sni (or its first one): */
	uint64_t proxy_errors;		/* accept-proxy: missing, malformed or late header */
	uint64_t denied;		/* allow/deny refused the client */
	uint64_t sni_misses;		/* no service for the name, no ClientHello in time */
	uint64_t queued;		/* this worker's clients waiting in the queue now */
	uint64_t queue_oldest;		/* ticket of its oldest waiting client, 0 = none */
	uint64_t queue_timeouts;	/* closed after waiting queue-timeout */
	uint64_t queue_waited;		/* clients that waited in the queue */
	uint64_t pad[6];
};

_Static_assert(sizeof(struct lbd_stats_header) == 256, "header size");
_Static_assert(sizeof(struct lbd_stats_service) == 256, "service record size");
_Static_assert(sizeof(struct lbd_stats_listen) == LBD_ADDR_LEN, "listen record size");
_Static_assert(sizeof(struct lbd_stats_backend) == 320, "backend record size");
_Static_assert(sizeof(struct lbd_stats_worker) == 64, "worker record size");
_Static_assert(sizeof(struct lbd_stats_counter) == 128, "counter record size");
_Static_assert(sizeof(struct lbd_stats_service_counter) == 128, "service counter size");
_Static_assert(sizeof(struct lbd_stats_limit) == LBD_CACHELINE, "limit record size");

#endif
