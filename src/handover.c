/*
 * Binary upgrade, the master's steps (the mechanism is upgrade.c).
 *
 * Old master, on SIGUSR2: start the binary on disk again and serve on;
 * if the new master exits or stays silent, log why and carry on.  Once it
 * says "ready", hand over: health checks, control socket and pid file go,
 * the listeners close here, and the old workers finish their connections
 * as on SIGTERM.  From then on the segment is the new master's alone.
 *
 * New master: its slots keep the old workers' records until they exit
 * (watched by pidfd), then folds their counters as for its own workers.
 */
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "clock.h"
#include "controlsock.h"
#include "health.h"
#include "loadmeter.h"
#include "log.h"
#include "masterint.h"
#include "upgrade.h"

#define HANDOVER_READY_MS	30000	/* for a new master to say "ready" */

/* ---- the old master's side ---- */

static void
handover_chan_close(struct master *m)
{
	if (m->upgrade_ev.fd == -1)
		return;
	ev_del(m->epfd, &m->upgrade_ev);
	close(m->upgrade_ev.fd);
	m->upgrade_ev.fd = -1;
}

static void
handover_chan_cb(struct ev_handler *h, uint32_t events)
{
	struct master *m = (struct master *)((char *)h - offsetof(struct master, upgrade_ev));
	int r = upgrade_read(h->fd);

	(void)events;
	if (r == 1)
		m->handover_pending = 1;
	else if (r == -1)
		handover_chan_close(m);	/* it died or gave up: its exit status says why */
}

/* SIGUSR2: execute the binary on disk again; we serve on until it is ready. */
void
handover_begin(struct master *m)
{
	if (m->stopping || m->upgrade_pid != 0) {
		log_warnx("upgrade refused: %s", m->stopping ? "stopping" :
		    "an upgrade is already under way");
		return;
	}
	/* The new master knows the segment at the path, not the one these
	 * workers still write to: what they count meanwhile would be lost. */
	if (m->nold_maps > 0) {
		log_warnx("upgrade refused: workers started before the stats segment "
		    "grew are still finishing their connections; try again once they "
		    "have exited");
		return;
	}
	m->upgrade_pid = upgrade_spawn(m->listeners, m->nlisteners, m->config_path,
	    m->foreground, &m->upgrade_ev.fd);
	if (m->upgrade_pid == -1) {
		m->upgrade_pid = 0;
		log_warnx("upgrade failed: still running version %s", LBD_VERSION);
		return;
	}
	m->upgrade_ev.cb = handover_chan_cb;
	if (ev_add(m->epfd, &m->upgrade_ev, EPOLLIN) == -1)
		log_warn("upgrade: epoll_ctl(ADD)");	/* the ready timeout ends it */
	m->upgrade_deadline_ms = clock_ms() + HANDOVER_READY_MS;
}

void
handover_child_exited(struct master *m, int status)
{
	char how[64];

	master_describe_status(status, how, sizeof(how));
	if (m->handed_over)
		log_warnx("upgrade: the new master (pid %d) %s", (int)m->upgrade_pid, how);
	else
		log_warnx("upgrade failed: the new master (pid %d) %s; still running "
		    "version %s", (int)m->upgrade_pid, how, LBD_VERSION);
	handover_chan_close(m);
	m->upgrade_pid = 0;
}

/*
 * The new master's workers accept: let go of what it takes over (health
 * checks, which write the segment; the control socket, left in place for
 * it to bind again; the pid file's lock) and stop as on SIGTERM.
 */
void
handover_release(struct master *m)
{
	log_info("upgrade: the new master (pid %d) is ready; handing over",
	    (int)m->upgrade_pid);
	m->handed_over = 1;
	health_stop(m->health);
	m->health = NULL;
	loadmeter_stop(m->loadmeter);
	m->loadmeter = NULL;
	control_close_keep(m->control);
	m->control = NULL;
	(void)pidfile_close(m->pidfh);
	m->pidfh = NULL;
	upgrade_release(m->upgrade_ev.fd);
	handover_chan_close(m);
	master_stop(m);
}

/* ---- the new master's side ---- */

/* New master: an old master's worker has exited (see upgrade_watch_workers). */
static void
handover_worker_gone(void *arg, uint32_t slot)
{
	struct master *m = arg;

	log_debug("old worker %u (pid %d) finished", m->workers[slot].id,
	    (int)m->workers[slot].pid);
	master_slot_free(m, (int)slot);
}

/* New master: the old workers' slots stay theirs until they exit. */
void
handover_adopt_workers(struct master *m)
{
	const struct lbd_stats_worker *rec;
	uint32_t i;

	for (i = 0; i < m->map.hdr->worker_slots && i < LBD_MAX_WORKER_SLOTS; i++) {
		rec = stats_worker(&m->map, i);
		if (rec->state != LBD_WORKER_FREE && rec->pid > 0)
			m->workers[i] = (struct worker_proc){ .pid = rec->pid,
			    .id = rec->id, .stopping = 1, .aborted = 1 };
	}
	upgrade_watch_workers(m->epfd, &m->map, handover_worker_gone, m);
}

/* New master, its workers running: take the pid file and control socket. */
int
handover_takeover(struct master *m)
{
	char err[256], path[PATH_MAX];
	int chan = m->upgrade_chan;
	pid_t old = getppid();		/* until it exits */

	m->upgrade_chan = -1;
	if (upgrade_takeover(chan, err, sizeof(err)) == -1) {
		log_warnx("upgrade: %s; this new master stops", err);
		master_stop(m);
		return -1;
	}
	master_pidfile(m, 0);
	pidfile_write(m->pidfh);
	/* The old master left its socket file in place for us to bind again. */
	if (config_control_path(m->conf, path, sizeof(path)) == 0)
		(void)unlink(path);
	master_control_open(m);
	log_info("upgrade: took over from pid %d; version %s", (int)old, LBD_VERSION);
	return 0;
}

/* Old master: a new master that never says "ready" is killed. */
void
handover_timer(struct master *m, uint64_t now)
{
	if (m->upgrade_pid == 0 || m->handed_over || now < m->upgrade_deadline_ms)
		return;
	log_warnx("upgrade: the new master (pid %d) is not ready after %dms; killing it",
	    (int)m->upgrade_pid, HANDOVER_READY_MS);
	(void)kill(m->upgrade_pid, SIGKILL);
	m->upgrade_deadline_ms = UINT64_MAX;
}
