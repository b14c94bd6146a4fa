/*
 * What lbstat shows: a plain copy of the stats segment taken at one instant
 * (counter rows already summed), rates between two such copies, the figures
 * every rendering derives from it alike, and the table.  The JSON and
 * Prometheus renderings are in statexport.h.  Pure: no mapping, no clock,
 * no globals, so every byte of the output can be unit-tested.
 */
#ifndef LBD_STATVIEW_H
#define LBD_STATVIEW_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lbd/stats.h"

struct statview_backend {
	uint32_t slot;			/* backend slot: pairs samples for rates */
	int retired;			/* removed by a reload, old workers still use it */
	char name[LBD_NAME_LEN];
	char address[LBD_ADDR_LEN];
	char check_text[LBD_CHECK_TEXT_LEN];
	uint32_t health;		/* enum lbd_health */
	uint32_t admin;			/* enum lbd_admin */
	uint32_t weight;
	uint32_t check_status;		/* enum lbd_check_status */
	uint32_t check_latency_us;
	uint32_t maxconn;		/* 0 = unlimited */
	int backup;			/* used only while no other backend is eligible */
	uint32_t ramp_permille;		/* slow start: share of its weight, 0 = full */
	uint64_t last_change;		/* unix seconds */
	int64_t check_age_ms;		/* since the last probe's result; -1 = none yet */
	uint32_t check_interval_ms;
	uint64_t active;		/* summed over live worker rows */
	uint64_t connections;		/* summed over every row, retired row included */
	uint64_t connect_failures;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t spliced_in;		/* directions moved from copy to splice() */
	uint64_t spliced_out;
	uint64_t exchanges;		/* turns of request/response conversations */
	uint64_t aged_out;		/* closed by max-connection-age */
	double connections_rate;	/* per second; valid when the snapshot has_rates */
	double exchanges_rate;
	double bytes_in_rate;
	double bytes_out_rate;
};

struct statview_service {
	uint32_t slot;
	char name[LBD_NAME_LEN];
	size_t listen_first;		/* its addresses: snapshot listens[first..+nlisten) */
	uint32_t nlisten;
	uint32_t balance;		/* enum lbd_balance */
	uint64_t active;
	uint64_t accepted;
	uint64_t rejected;
	uint64_t exchanges;		/* its backends', retired ones included */
	uint64_t proxy_errors;		/* closed at the front door, by reason */
	uint64_t denied;
	uint64_t sni_misses;
	int limited;			/* a backend has a maxconn: the queue is in use */
	uint64_t queued;		/* clients waiting for a maxconn slot now */
	uint64_t queue_max;		/* most seen waiting at once */
	uint64_t queue_timeouts;
	double accepted_rate;
	double exchanges_rate;
	size_t first;			/* its backends: snapshot backends[first..first+count) */
	size_t count;			/* live ones first, in configuration order */
};

struct statview_worker {
	uint32_t slot;
	uint32_t id;
	int32_t pid;
	uint32_t generation;
	uint32_t state;			/* enum lbd_worker_state, never FREE */
	uint64_t restarts;
	uint64_t accepted;
	uint64_t active;
	uint64_t heartbeat_age_ms;	/* since its loop last turned */
	double accepted_rate;
};

struct statview_snap {
	char version[LBD_VERSION_LEN];
	int32_t pid;			/* of the master */
	int master_alive;
	uint32_t generation;
	uint32_t workers_configured;
	uint64_t start_time;		/* unix seconds */
	uint64_t worker_restarts;
	uint64_t reloads;
	uint32_t worker_stall_ms;	/* worker-stall of the running configuration */
	uint64_t now;			/* unix seconds when taken */
	double mono;			/* monotonic seconds when taken */
	int has_rates;			/* the rate fields hold the last interval's */
	double interval;		/* seconds since the previous snapshot */
	/* Owned arrays, grown by statview_snap_reserve and kept from one
	 * snapshot to the next. */
	struct statview_service *services;
	size_t nservices, cap_services;
	struct statview_backend *backends;
	size_t nbackends, cap_backends;
	struct statview_worker *workers;	/* sorted by id */
	size_t nworkers, cap_workers;
	char (*listens)[LBD_ADDR_LEN];
	size_t nlistens, cap_listens;
};

/* Room for that many of each in snap; -1 when out of memory. */
int statview_snap_reserve(struct statview_snap *snap, size_t services, size_t backends,
    size_t workers, size_t listens);
/* Frees snap's arrays (not snap). */
void statview_snap_free(struct statview_snap *snap);

/* Imbalance of a service over its backends that may take new connections
 * (up, weight > 0). */
struct statview_imbalance {
	size_t up;			/* backends compared */
	size_t total;			/* its backends, retired ones left out */
	uint64_t active_max;
	uint64_t active_min;
	int weighted;		/* weights differ: compare connections per unit of weight */
	int exchanges;		/* the figures are exchanges per unit of weight */
	double max;		/* connections or exchanges, per second with rates */
	double min;
	double ratio;		/* max / min; -1 when min is 0 and max is not */
};

/* "service" or "service/backend"; empty strings match everything. */
struct statview_filter {
	char service[LBD_NAME_LEN];
	char backend[LBD_NAME_LEN];
};

int statview_filter_parse(const char *arg, struct statview_filter *filter,
    char *err, size_t errlen);
/* -1 with "web/app9: no such backend" when the filter names nothing in snap. */
int statview_filter_check(const struct statview_snap *snap,
    const struct statview_filter *filter, char *err, size_t errlen);

/* Fills cur's rate fields from the counters of prev, taken before it. */
void statview_rates(struct statview_snap *cur, const struct statview_snap *prev);

void statview_table(FILE *out, const struct statview_snap *snap,
    const struct statview_filter *filter);

/* What every rendering shows alike.  NULL filter: everything is wanted. */
int statview_want_service(const struct statview_filter *filter,
    const struct statview_service *svc);
int statview_want_backend(const struct statview_filter *filter,
    const struct statview_backend *be);
/* "up", "down", "drain", "disabled", or "retired" (removed by a reload). */
const char *statview_backend_state(const struct statview_backend *be);
/* The state with "backup" and a slow start's ramp: "up backup 40%". */
char *statview_backend_state_long(const struct statview_backend *be, char *buf,
    size_t len);
/* Its check result means something: checked, and not disabled since. */
int statview_backend_checked(const struct statview_backend *be);
/* Checked, but no result for STATVIEW_STALE_INTERVALS intervals: the
 * checker (the master) is stuck or gone. */
#define STATVIEW_STALE_INTERVALS	3
int statview_check_stale(const struct statview_backend *be);
uint64_t statview_uptime_s(const struct statview_snap *snap);
/* "running", "stopping" or "stalled": marked so by the master, or a running
 * worker whose heartbeat is older than worker-stall (a hung master too). */
const char *statview_worker_state(const struct statview_snap *snap,
    const struct statview_worker *w);
void statview_imbalance(const struct statview_snap *snap,
    const struct statview_service *svc, struct statview_imbalance *im);


#endif
