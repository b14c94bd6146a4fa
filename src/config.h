/*
 * Configuration: the libconfuse file parsed and validated into plain structs.
 * Every error is reported as "file:line: message"; nothing here forks,
 * binds or touches the stats segment.
 */
#ifndef LBD_CONFIG_H
#define LBD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "lbd/stats.h"
#include "cidr.h"

#define LBD_DEFAULT_CONF	"/etc/lbd/lbd.conf"

enum lbd_proxy_protocol {
	LBD_PROXY_OFF = 0,
	LBD_PROXY_V1 = 1,
	LBD_PROXY_V2 = 2,
};

struct lbd_sockaddr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[LBD_ADDR_LEN];	/* as written in the file, normalised */
};

struct lbd_health_conf {
	uint32_t interval_ms;
	uint32_t jitter_ms;		/* probes interval +- this apart */
	uint32_t timeout_ms;
	uint32_t rise;
	uint32_t fall;
	char *send;			/* owned; may be "" */
	size_t send_len;
	char *expect;			/* owned; "" = any reply, or none if send is "" */
};

struct lbd_backend_conf {
	char name[LBD_NAME_LEN];
	struct lbd_sockaddr addr;
	uint32_t weight;		/* 0..256 */
	uint32_t maxconn;		/* connections open to it at most, 0 = no limit */
	bool backup;			/* only while no other backend is eligible */
	int line;
	uint32_t slot;			/* stats segment slot, set by the master */
	uint64_t name_hash;		/* balance_name_hash(name): the source hash's key */
};

struct lbd_service_conf {
	char name[LBD_NAME_LEN];
	struct lbd_sockaddr *listen;	/* owned, nlisten long */
	size_t nlisten;
	enum lbd_balance balance;
	uint32_t connect_timeout_ms;
	uint32_t idle_timeout_ms;
	uint32_t retries;
	uint32_t max_age_ms;		/* max-connection-age, 0 = off */
	uint32_t age_quiet_ms;		/* both directions quiet this long to age out */
	enum lbd_proxy_protocol proxy_protocol;
	uint32_t slowstart_ms;		/* ramp after coming back, 0 = off */
	uint32_t queue_timeout_ms;	/* a client waits for a maxconn slot this long */
	uint32_t max_queue;		/* clients waiting at most, 0 = no bound of its own */
	bool limited;			/* some backend has a maxconn: the queue is used */
	struct lbd_health_conf health;
	struct lbd_backend_conf *backends;	/* owned, nbackends long */
	size_t nbackends;
	int line;
	uint32_t slot;			/* stats segment slot, set by the master */
	/* The front door (frontdoor.h); the worker does not use these yet. */
	bool accept_proxy;		/* clients must start with a PROXY header */
	char **sni;			/* owned, nsni names, lower-cased; "*.x" wildcards */
	size_t nsni;
	struct cidr_set allow;		/* owned; empty: every client */
	struct cidr_set deny;		/* owned; empty: no client */
};

#define LBD_MAX_RETRIES		64	/* per connection: a walk's list stays short */
#define LBD_MAX_SNI_NAMES	1024	/* per service */
#define LBD_MAX_CIDRS		100000	/* per allow or deny list */

/*
 * relay-turn: the bytes a direction moves before its worker serves its
 * other connections (nginx's sendfile_max_chunk, and for the same reason).
 * Without a limit, a download whose peers keep up holds the worker for as
 * long as they do (strace saw 24 MiB in one go) while everything else on
 * it waits.  The default, 8M, is ~6 ms of one worker's splicing here.
 * On the bench's 4 downloads (two take turns on each worker) 2M cost 5-10%
 * more worker CPU per GB than 8M, and 8M the same as no bound.
 */
#define LBD_RELAY_TURN_MIN	(64u << 10)
#define LBD_RELAY_TURN_MAX	(1u << 30)
#define LBD_WORKER_STALL_MIN	1000	/* ms: worker-stall range */
#define LBD_WORKER_STALL_MAX	3600000

struct lbd_config {
	char *path;			/* owned */
	uint32_t workers;		/* resolved: never 0 after config_load */
	char *user;			/* owned */
	char *group;			/* owned */
	char *admin_group;		/* owned */
	char *runtime_dir;		/* owned */
	uint32_t maxconn;
	uint32_t shutdown_grace_ms;
	uint32_t worker_stall_ms;	/* a worker whose loop has not turned for this is hung */
	bool log_connections;
	uint32_t relay_turn;		/* bytes a direction moves before it yields */
	struct lbd_service_conf *services;	/* owned, nservices long */
	size_t nservices;
};

/*
 * Loads and validates path.  On success returns a config the caller frees
 * with config_free.  On failure returns NULL after writing one
 * "file:line: message" line per error to errors (which may be NULL).
 */
struct lbd_config *config_load(const char *path, FILE *errors);
void config_free(struct lbd_config *conf);

const char *config_balance_name(enum lbd_balance balance);

/* Where the stats segment and control socket of conf live. */
int config_stats_path(const struct lbd_config *conf, char *buf, size_t len);
int config_control_path(const struct lbd_config *conf, char *buf, size_t len);
int config_pid_path(const struct lbd_config *conf, char *buf, size_t len);
int config_state_path(const struct lbd_config *conf, char *buf, size_t len);

#endif
