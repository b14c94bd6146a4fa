/*
 * The master's state, shared by master.c (life cycle) and handover.c
 * (binary upgrade).  Nothing else includes this.
 */
#ifndef LBD_MASTERINT_H
#define LBD_MASTERINT_H

#include <libutil.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "event.h"
#include "privs.h"
#include "statsmap.h"
#include "worker.h"

struct worker_proc {
	pid_t pid;			/* 0 = slot free */
	uint32_t id;
	uint32_t generation;
	int stopping;
	uint64_t started_ms;
	uint64_t kill_at_ms;		/* SIGUSR1, then SIGKILL, at this time; 0 = none */
	int aborted;			/* SIGUSR1 sent: SIGKILL is next */
	/* The stats segment it writes to when a reload has since replaced
	 * it by a larger one (mastermap.c); NULL: the master's map. */
	void *map_base;
};

/* What it takes to bring worker id back: pending after a death. */
struct respawn {
	uint64_t due_ms;		/* 0 = nothing pending */
	uint32_t fast_deaths;
	uint64_t restarts;
};

struct master {
	const char *config_path;
	int foreground;
	struct lbd_config *conf;
	struct privs privs;
	struct stats_map map;
	int epfd;
	struct ev_handler sig;
	struct listener *listeners;	/* owned, for conf */
	size_t nlisteners;
	int kick_fd;			/* owned eventfd the workers share */
	struct worker_proc workers[LBD_MAX_WORKER_SLOTS];
	struct stats_map *old_maps;	/* replaced segments old workers still write */
	size_t nold_maps;
	uint64_t sync_due_ms;		/* next copy from them, 0 = none */
	struct respawn respawn[LBD_MAX_WORKERS + 1];	/* by worker id */
	uint32_t generation;
	struct control *control;
	struct health *health;
	struct loadmeter *loadmeter;
	struct pidfh *pidfh;
	int stopping;
	int reload_pending;
	uint64_t watchdog_due_ms;	/* next look at the heartbeats */
	uint64_t slowstart_due_ms;	/* next ramp step, 0 = none */
	/* Binary upgrade, old side: the new master while it starts. */
	pid_t upgrade_pid;		/* 0 = none */
	struct ev_handler upgrade_ev;	/* our end of the handshake, fd -1 = closed */
	uint64_t upgrade_deadline_ms;
	int handover_pending;		/* it said "ready" */
	int handed_over;		/* the segment, pid file and socket are its */
	/* New side: the handshake with the old master, -1 = not an upgrade. */
	int upgrade_chan;
};

/* Worker slots the segment has: the master's table is used up to there. */
static inline int
master_nslots(const struct master *m)
{
	uint32_t n = m->map.hdr->worker_slots;

	return n < LBD_MAX_WORKER_SLOTS ? (int)n : LBD_MAX_WORKER_SLOTS;
}

/* master.c */
void master_describe_status(int status, char *how, size_t len);
void master_slot_free(struct master *m, int slot);
void master_stop(struct master *m);
void master_pidfile(struct master *m, int must);
void master_control_open(struct master *m);

/* mastermap.c */
#define MASTERMAP_SYNC_MS	250
/*
 * Lays conf out in the segment (stats_layout), first growing it into a new
 * file when it lacks the slots conf or worker_slots workers need.
 */
int master_map_layout(struct master *m, struct lbd_config *conf, uint32_t worker_slots);
/* Copies what workers still writing to replaced segments wrote. */
void master_map_sync(struct master *m);
/* Worker slot has exited: its last writes copied, its old segment let go. */
void master_map_worker_gone(struct master *m, int slot);
void master_map_close(struct master *m);

/* handover.c */
void handover_begin(struct master *m);
void handover_child_exited(struct master *m, int status);
void handover_release(struct master *m);
void handover_timer(struct master *m, uint64_t now);
void handover_adopt_workers(struct master *m);
int handover_takeover(struct master *m);

#endif
