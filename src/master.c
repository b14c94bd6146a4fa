/*
 * The master: everything decided once.  It binds the listeners before the
 * first fork and keeps every one the configuration still names open across
 * reloads, so a SYN never meets a closed socket; workers inherit copies.
 * Signals arrive through a signalfd in the event loop; children are reaped
 * in a waitpid(WNOHANG) loop, and a dead worker's counters are folded into
 * the retired row before its slot is reused.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "controlsock.h"
#include "event.h"
#include "health.h"
#include "listen.h"
#include "loadmeter.h"
#include "log.h"
#include "master.h"
#include "masterint.h"
#include "privs.h"
#include "proctitle.h"
#include "slowstart.h"
#include "statsmap.h"
#include "upgrade.h"
#include "watchdog.h"
#include "worker.h"

#define RESPAWN_FAST_MS		1000	/* a worker dead sooner than this is crash-looping */
#define RESPAWN_MAX_DELAY_MS	5000


/* ---- workers ---- */

static int
cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/*
 * In a new worker: keep stdio and the listeners, close everything else the
 * master holds (signalfd, epoll, control clients, health probes), so a
 * probe or an admin connection never lives on in a worker.
 */
static void
close_inherited(const struct listener *ls, size_t n, int kick_fd)
{
	unsigned lo = 3;
	size_t i, k = 0;
	int *keep = calloc(n + 1, sizeof(*keep));	/* a new child: one thread */

	if (keep == NULL)
		_exit(1);
	keep[k++] = kick_fd;
	for (i = 0; i < n; i++)
		if (ls[i].fd >= 3)
			keep[k++] = ls[i].fd;
	qsort(keep, k, sizeof(keep[0]), cmp_int);
	for (i = 0; i < k; i++) {
		if ((unsigned)keep[i] > lo)
			(void)close_range(lo, (unsigned)keep[i] - 1, 0);
		lo = (unsigned)keep[i] + 1;
	}
	(void)close_range(lo, ~0u, 0);
	free(keep);
}

static int
free_worker_slot(const struct master *m)
{
	int i;

	for (i = 0; i < master_nslots(m); i++)
		if (m->workers[i].pid == 0)
			return i;
	return -1;
}

static int
spawn_worker(struct master *m, uint32_t id)
{
	struct lbd_stats_worker *rec;
	pid_t pid, master_pid = getpid();
	int slot;

	if ((slot = free_worker_slot(m)) == -1) {
		log_warnx("worker %u: no free worker slot", id);
		return -1;
	}
	/* Before the fork: the worker owns it from its first turn on. */
	stats_worker(&m->map, (uint32_t)slot)->heartbeat_ms = clock_ms();
	if ((pid = fork()) == -1) {
		log_warn("worker %u: fork", id);
		return -1;
	}
	if (pid == 0) {
		close_inherited(m->listeners, m->nlisteners, m->kick_fd);
		privs_drop_worker(&m->privs);
		/* Set after the uid change, which clears it; catch a master already gone. */
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != master_pid)
			_exit(0);
		worker_main(m->conf, &m->map, (uint32_t)slot, id, m->listeners,
		    m->nlisteners, m->kick_fd);
	}
	m->workers[slot] = (struct worker_proc){ .pid = pid, .id = id, .map_base = NULL,
	    .generation = m->generation, .started_ms = clock_ms() };
	rec = stats_worker(&m->map, (uint32_t)slot);
	stats_write_begin(&m->map);
	if ((uint32_t)slot >= m->map.hdr->worker_slots_used)
		m->map.hdr->worker_slots_used = (uint32_t)slot + 1;
	rec->pid = pid;
	rec->id = id;
	rec->generation = m->generation;
	rec->state = LBD_WORKER_RUNNING;
	rec->restarts = m->respawn[id].restarts;
	rec->started = (uint64_t)time(NULL);
	stats_write_end(&m->map);
	return 0;
}

static void
stop_worker(struct master *m, int slot, uint64_t grace_ms)
{
	struct worker_proc *wp = &m->workers[slot];

	if (wp->pid == 0 || wp->stopping)
		return;
	wp->stopping = 1;
	wp->kill_at_ms = clock_ms() + grace_ms;
	stats_write_begin(&m->map);
	stats_worker(&m->map, (uint32_t)slot)->state = LBD_WORKER_STOPPING;
	stats_write_end(&m->map);
	(void)kill(wp->pid, SIGTERM);
}

static int
old_workers_left(const struct master *m)
{
	int i;

	for (i = 0; i < master_nslots(m); i++)
		if (m->workers[i].pid != 0 && m->workers[i].generation != m->generation)
			return 1;
	return 0;
}

static int
workers_left(const struct master *m)
{
	int i;

	for (i = 0; i < master_nslots(m); i++)
		if (m->workers[i].pid != 0)
			return 1;
	return 0;
}

void
master_describe_status(int status, char *how, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(how, len, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(how, len, "exited with status %d", WEXITSTATUS(status));
}

static void
respawn_later(struct master *m, const struct worker_proc *wp, int status)
{
	struct respawn *r = &m->respawn[wp->id];
	uint64_t lived = clock_ms() - wp->started_ms, delay = 0;
	char how[64];

	master_describe_status(status, how, sizeof(how));
	r->fast_deaths = lived < RESPAWN_FAST_MS ? r->fast_deaths + 1 : 0;
	if (r->fast_deaths > 1) {
		delay = 100ull << (r->fast_deaths - 2 < 6 ? r->fast_deaths - 2 : 6);
		if (delay > RESPAWN_MAX_DELAY_MS)
			delay = RESPAWN_MAX_DELAY_MS;
	}
	if (delay > 0)
		log_warnx("worker %u (pid %d) %s after %llums; restarting in %llums "
		    "(crash loop back-off)", wp->id, (int)wp->pid, how,
		    (unsigned long long)lived, (unsigned long long)delay);
	else
		log_warnx("worker %u (pid %d) %s after %llums; restarting", wp->id,
		    (int)wp->pid, how, (unsigned long long)lived);
	r->restarts++;
	r->due_ms = clock_ms() + delay;
	stats_write_begin(&m->map);
	m->map.hdr->worker_restarts++;
	stats_write_end(&m->map);
}

/*
 * Frees slot i, folding its counters into the retired row; after a binary
 * upgrade handed the segment over, the new master does that instead.
 */
void
master_slot_free(struct master *m, int i)
{
	m->workers[i].pid = 0;
	if (m->handed_over)
		return;
	master_map_worker_gone(m, i);
	stats_retire_worker(&m->map, (uint32_t)i);
	stats_write_begin(&m->map);
	memset(stats_worker(&m->map, (uint32_t)i), 0, sizeof(struct lbd_stats_worker));
	stats_write_end(&m->map);
	if (!old_workers_left(m))
		stats_release_retired(&m->map);
}

static void
reap_worker(struct master *m, pid_t pid, int status)
{
	struct worker_proc wp;
	int i;

	if (pid == m->upgrade_pid) {
		handover_child_exited(m, status);
		return;
	}
	for (i = 0; i < master_nslots(m); i++)
		if (m->workers[i].pid == pid)
			break;
	if (i == master_nslots(m))
		return;
	wp = m->workers[i];
	master_slot_free(m, i);
	if (wp.stopping || m->stopping || wp.generation != m->generation) {
		log_debug("worker %u (pid %d) finished", wp.id, (int)pid);
		return;
	}
	respawn_later(m, &wp, status);
}


static void
reap_children(struct master *m)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		reap_worker(m, pid, status);
}

/*
 * Past shutdown-grace: SIGUSR1 makes the worker cut (and log) what it
 * still relays and exit; one that does not within a second is killed.
 */
static void
abort_worker(struct master *m, int slot, uint64_t now)
{
	struct worker_proc *wp = &m->workers[slot];

	if (wp->aborted) {
		log_warnx("worker %u (pid %d): did not stop; killing it", wp->id, (int)wp->pid);
		(void)kill(wp->pid, SIGKILL);
		wp->kill_at_ms = 0;
		return;
	}
	log_warnx("worker %u (pid %d): still busy after shutdown-grace; cutting its "
	    "connections", wp->id, (int)wp->pid);
	(void)kill(wp->pid, SIGUSR1);
	wp->aborted = 1;
	wp->kill_at_ms = now + 1000;
}

/* A running worker whose loop has not turned for worker-stall is hung: logged
 * once, shown stalled, killed (by our pid, not the segment's), reaped as dead. */
static void
watchdog_run(struct master *m, uint64_t now)
{
	struct lbd_stats_worker *rec;
	int i = -1;

	while ((i = watchdog_next_stalled(&m->map, now, m->conf->worker_stall_ms,
	    i + 1)) >= 0) {
		if (m->workers[i].pid == 0 || m->workers[i].stopping)
			continue;
		rec = stats_worker(&m->map, (uint32_t)i);
		log_warnx("worker %u (pid %d) stalled for %.1fs; killing it",
		    m->workers[i].id, (int)m->workers[i].pid,
		    (double)watchdog_age_ms(rec->heartbeat_ms, now) / 1000);
		stats_write_begin(&m->map);
		rec->state = LBD_WORKER_STALLED;
		stats_write_end(&m->map);
		(void)kill(m->workers[i].pid, SIGKILL);
	}
}

/* Steps slow-start ramps: after every event, since one may have begun a ramp. */
static void
run_slowstart(struct master *m, uint64_t now)
{
	int64_t left = slowstart_tick(&m->map, now);

	m->slowstart_due_ms = left < 0 ? 0 : now + (uint64_t)left;
}

static void
run_timers(struct master *m)
{
	uint64_t now = clock_ms();
	uint32_t id;
	int i;

	/* No respawn while a new master starts: it has counted the free slots. */
	for (id = 1; id <= m->conf->workers && !m->stopping && !m->upgrade_pid; id++)
		if (m->respawn[id].due_ms != 0 && now >= m->respawn[id].due_ms &&
		    spawn_worker(m, id) == 0)
			m->respawn[id].due_ms = 0;
	for (i = 0; i < master_nslots(m); i++)
		if (m->workers[i].pid != 0 && m->workers[i].kill_at_ms != 0 &&
		    now >= m->workers[i].kill_at_ms)
			abort_worker(m, i, now);
	if (m->nold_maps > 0 && now >= m->sync_due_ms) {
		m->sync_due_ms = now + MASTERMAP_SYNC_MS;
		master_map_sync(m);
	}
	if (now >= m->watchdog_due_ms) {
		m->watchdog_due_ms = now + watchdog_period_ms(m->conf->worker_stall_ms);
		watchdog_run(m, now);
	}
	run_slowstart(m, now);
	handover_timer(m, now);
}

static int
next_timeout(const struct master *m)
{
	uint64_t now = clock_ms(), next = m->watchdog_due_ms;
	uint32_t id;
	int i;

	for (id = 1; id <= m->conf->workers; id++)
		if (m->respawn[id].due_ms != 0 && m->respawn[id].due_ms < next)
			next = m->respawn[id].due_ms;
	for (i = 0; i < master_nslots(m); i++)
		if (m->workers[i].pid != 0 && m->workers[i].kill_at_ms != 0 &&
		    m->workers[i].kill_at_ms < next)
			next = m->workers[i].kill_at_ms;
	if (m->nold_maps > 0 && m->sync_due_ms < next)
		next = m->sync_due_ms;
	if (m->slowstart_due_ms != 0 && m->slowstart_due_ms < next)
		next = m->slowstart_due_ms;
	if (m->upgrade_pid != 0 && !m->handed_over && m->upgrade_deadline_ms < next)
		next = m->upgrade_deadline_ms;
	return next <= now ? 0 : (int)(next - now > 60000 ? 60000 : next - now);
}

/* ---- stop and reload ---- */

void
master_stop(struct master *m)
{
	int i;

	if (m->stopping) {
		log_notice("second stop request: stopping now");
		for (i = 0; i < master_nslots(m); i++)
			if (m->workers[i].pid != 0 && !m->workers[i].aborted)
				abort_worker(m, i, clock_ms());
		return;
	}
	m->stopping = 1;
	log_info("stopping: no new connections; waiting up to %ums for open ones",
	    m->conf->shutdown_grace_ms);
	listeners_retire(m->listeners, m->nlisteners, NULL, 0);
	m->listeners = NULL;
	m->nlisteners = 0;
	for (i = 0; i < master_nslots(m); i++)
		stop_worker(m, i, m->conf->shutdown_grace_ms);
}

/* config_load with its "file:line:" errors logged rather than printed. */
static struct lbd_config *
load_logged(const char *path)
{
	struct lbd_config *conf;
	char *errors = NULL;
	size_t len = 0;
	FILE *fp;

	if ((fp = open_memstream(&errors, &len)) == NULL) {
		log_warn("%s: open_memstream", path);
		return NULL;
	}
	conf = config_load(path, fp);
	fclose(fp);
	if (conf == NULL)
		log_lines(errors);
	free(errors);
	return conf;
}

/* Loads the file again; on any error the running configuration stays. */
static struct lbd_config *
reload_load(struct master *m, struct privs *privs)
{
	struct lbd_config *conf;
	char err[256];

	if ((conf = load_logged(m->config_path)) == NULL)
		return NULL;
	if (strcmp(conf->runtime_dir, m->conf->runtime_dir) != 0) {
		log_warnx("reload: runtime-dir changes only with a restart; keeping %s",
		    m->conf->runtime_dir);
		free(conf->runtime_dir);
		if ((conf->runtime_dir = strdup(m->conf->runtime_dir)) == NULL) {
			config_free(conf);
			return NULL;
		}
	}
	if (privs_resolve(conf, privs, err, sizeof(err)) == -1) {
		log_warnx("reload: %s", err);
		config_free(conf);
		return NULL;
	}
	return conf;
}

static void
master_reload(struct master *m)
{
	struct lbd_config *conf, *old = m->conf;
	struct listener *ls;
	struct privs privs;
	char err[256];
	size_t n, busy = 0;
	uint32_t id;
	int i;

	log_info("reloading %s", m->config_path);
	if ((conf = reload_load(m, &privs)) == NULL)
		goto refused;
	for (i = 0; i < master_nslots(m); i++)
		busy += m->workers[i].pid != 0;
	if (busy + conf->workers > LBD_MAX_WORKER_SLOTS) {
		log_warnx("reload: %zu worker slots free, %u needed: old workers are still "
		    "finishing their connections", LBD_MAX_WORKER_SLOTS - busy, conf->workers);
		config_free(conf);
		goto refused;
	}
	if ((ls = listeners_for(conf, m->listeners, m->nlisteners, &n, err,
	    sizeof(err))) == NULL) {
		log_warnx("reload: %s", err);
		config_free(conf);
		goto refused;
	}
	/* Slots in use stay theirs: the new workers need as many more. */
	if (master_map_layout(m, conf, (uint32_t)busy + conf->workers) == -1) {
		log_warnx("reload: no room in the stats segment for the new configuration");
		listeners_retire(ls, n, m->listeners, m->nlisteners);
		config_free(conf);
		goto refused;
	}
	/* Before any new worker runs: a backend it adds starts cold. */
	slowstart_added(&m->map, old, conf, clock_ms());
	m->generation = m->map.hdr->generation;
	listeners_retire(m->listeners, m->nlisteners, ls, n);
	m->listeners = ls;
	m->nlisteners = n;
	m->conf = conf;
	m->privs = privs;
	for (id = 1; id <= LBD_MAX_WORKERS; id++)
		m->respawn[id].due_ms = 0;
	/* New workers first: the listen sockets always have someone accepting. */
	for (id = 1; id <= conf->workers; id++)
		(void)spawn_worker(m, id);
	for (i = 0; i < master_nslots(m); i++)
		if (m->workers[i].pid != 0 && m->workers[i].generation != m->generation)
			stop_worker(m, i, conf->shutdown_grace_ms);
	health_reconfigure(m->health, conf);
	control_set_admin_gid(m->control, privs.admin_gid);
	control_apply_state(m->control);
	stats_write_begin(&m->map);
	m->map.hdr->reloads++;
	m->map.hdr->workers_configured = conf->workers;
	stats_write_end(&m->map);
	config_free(old);
	log_info("reloaded: generation %u, %zu services, %u workers", m->generation,
	    conf->nservices, conf->workers);
	return;
refused:
	log_warnx("reload refused: still running the previous configuration");
}


/* ---- signals and the loop ---- */

static void
signal_cb(struct ev_handler *h, uint32_t events)
{
	struct master *m = EV_CONTAINER(h, struct master, sig);
	struct signalfd_siginfo si;

	(void)events;
	while (read(h->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap_children(m);
			break;
		case SIGHUP:
			m->reload_pending = 1;
			break;
		case SIGUSR2:
			handover_begin(m);
			break;
		case SIGTERM:
		case SIGINT:
			master_stop(m);
			break;
		}
	}
}

static void
reload_hook(void *arg)
{
	((struct master *)arg)->reload_pending = 1;
}

static void
signals_setup(struct master *m)
{
	sigset_t mask;

	/* splice() to a closed socket raises SIGPIPE; EPIPE says enough. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);	/* for the workers: "cut your connections now" */
	sigaddset(&mask, SIGUSR2);	/* binary upgrade */
	if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1)
		fatal("sigprocmask");
	if ((m->sig.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		fatal("signalfd");
	m->sig.cb = signal_cb;
	if (ev_add(m->epfd, &m->sig, EPOLLIN) == -1)
		fatal("epoll_ctl(ADD) signalfd");
}

static void
runtime_dir_setup(const struct lbd_config *conf)
{
	struct stat st;

	if (mkdir(conf->runtime_dir, 0755) == -1 && errno != EEXIST)
		fatal("runtime-dir %s: mkdir", conf->runtime_dir);
	if (stat(conf->runtime_dir, &st) == -1)
		fatal("runtime-dir %s", conf->runtime_dir);
	if (!S_ISDIR(st.st_mode))
		fatalx("runtime-dir %s: not a directory", conf->runtime_dir);
}

/* Descriptors are the worker's budget: take all the hard limit allows. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* The pid file's lock: fatal (a second lbd) unless taking over from an old master. */
void
master_pidfile(struct master *m, int must)
{
	char path[PATH_MAX];
	pid_t other;

	if (config_pid_path(m->conf, path, sizeof(path)) == -1)
		fatalx("runtime-dir too long");
	if ((m->pidfh = pidfile_open(path, 0644, &other)) != NULL)
		return;
	if (errno == EEXIST && must)
		fatalx("already running (pid %d, pid file %s)", (int)other, path);
	if (must)
		fatal("pid file %s", path);
	log_warn("upgrade: pid file %s", path);
}

/* After a binary upgrade the segment carries on; a new layout starts afresh. */
static void
master_stats_open(struct master *m)
{
	char path[PATH_MAX], err[PATH_MAX + 128];
	struct stats_size size;

	if (config_stats_path(m->conf, path, sizeof(path)) == -1)
		fatalx("runtime-dir too long");
	if (m->upgrade_chan != -1) {
		if (stats_adopt(&m->map, path, m->conf->workers, err, sizeof(err)) == 0)
			return;
		log_warnx("upgrade: %s: starting a fresh stats segment; counters and "
		    "worker records start from zero", err);
	}
	stats_size_for(m->conf, &size);
	if (stats_create(&m->map, path, &size, m->conf->workers, NULL) == -1)
		fatal("stats segment %s: cannot create it in runtime-dir", path);
}

static void
master_setup(struct master *m, struct listener *inherited, size_t ninherited)
{
	char err[256];
	size_t busy = 0;
	int i;

	if (privs_resolve(m->conf, &m->privs, err, sizeof(err)) == -1)
		fatalx("%s: %s", m->config_path, err);
	raise_fd_limit();
	runtime_dir_setup(m->conf);
	if (m->upgrade_chan == -1)
		master_pidfile(m, 1);	/* before binding: a second lbd is refused */
	if ((m->listeners = listeners_for(m->conf, inherited, ninherited,
	    &m->nlisteners, err, sizeof(err))) == NULL) {
		pidfile_remove(m->pidfh);
		fatalx("%s", err);
	}
	/* Inherited listeners the configuration no longer names are closed. */
	listeners_retire(inherited, ninherited, m->listeners, m->nlisteners);
	if ((m->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("epoll_create1");
	if ((m->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		fatal("eventfd");
	signals_setup(m);
	master_stats_open(m);
	/* The old master's workers first: a segment grown now is not theirs. */
	if (m->upgrade_chan != -1)
		handover_adopt_workers(m);
	for (i = 0; i < master_nslots(m); i++)
		busy += m->workers[i].pid != 0;
	if (master_map_layout(m, m->conf, (uint32_t)busy + m->conf->workers) == -1)
		fatalx("stats segment: no room for the configuration");
	m->generation = m->map.hdr->generation;
}

void
master_control_open(struct master *m)
{
	char sock[PATH_MAX], state[PATH_MAX];
	struct control_hooks hooks = { .reload = reload_hook, .arg = m };

	if (config_control_path(m->conf, sock, sizeof(sock)) == -1 ||
	    config_state_path(m->conf, state, sizeof(state)) == -1)
		fatalx("runtime-dir too long");
	m->control = control_open(m->epfd, sock, m->privs.admin_gid, &m->map, state, hooks);
	control_apply_state(m->control);
}


static void
master_start(struct master *m)
{
	int upgrading = m->upgrade_chan != -1;
	uint32_t id;

	if (!upgrading)
		master_control_open(m);
	if (privs_limit_master(&m->privs) == -1)
		fatal("capset");
	/* A new master stays the old one's child until that exits: no daemon(). */
	if (!m->foreground && !upgrading) {
		if (daemon(0, 0) == -1)
			fatal("daemon");
		log_to_syslog();
		/*
		 * epoll hears a signalfd only for the process that added it
		 * (signalfd(2)): added again here, or the daemon never sees a signal.
		 */
		ev_del(m->epfd, &m->sig);
		if (ev_add(m->epfd, &m->sig, EPOLLIN) == -1)
			fatal("epoll_ctl(ADD) signalfd");
	}
	if (!upgrading)
		pidfile_write(m->pidfh);
	proctitle_set("master");
	for (id = 1; id <= m->conf->workers; id++)
		if (spawn_worker(m, id) == -1)
			fatalx("cannot start worker %u", id);
	if (upgrading && handover_takeover(m) == -1)
		return;
	stats_write_begin(&m->map);
	m->map.hdr->master_pid = (int32_t)getpid();
	stats_write_end(&m->map);
	if ((m->health = health_start(m->epfd, &m->map, m->conf)) == NULL)
		fatalx("cannot start the health checker");
	if ((m->loadmeter = loadmeter_start(m->epfd, &m->map)) == NULL)
		fatalx("cannot start the load meter");
	log_info("started: %zu services, %u workers, pid %d", m->conf->nservices,
	    m->conf->workers, (int)getpid());
}

static void
master_cleanup(struct master *m)
{
	health_stop(m->health);
	if (m->loadmeter != NULL)	/* none after a hand-over */
		loadmeter_stop(m->loadmeter);
	control_close(m->control);
	listeners_retire(m->listeners, m->nlisteners, NULL, 0);
	stats_write_begin(&m->map);
	if (m->map.hdr->master_pid == (int32_t)getpid())	/* not after a hand-over */
		m->map.hdr->master_pid = 0;
	stats_write_end(&m->map);
	master_map_close(m);
	stats_unmap(&m->map);
	pidfile_remove(m->pidfh);
	close(m->sig.fd);
	close(m->kick_fd);
	close(m->epfd);
	config_free(m->conf);
	log_info("stopped");
}

int
master_run(const char *config_path, int foreground)
{
	static struct master m;
	struct epoll_event events[64];
	struct listener *inherited;
	size_t ninherited;
	int i, n;

	m.foreground = foreground;
	m.upgrade_ev.fd = -1;
	/* A new master's stderr is the old one's: /dev/null once it is a daemon. */
	if ((m.upgrade_chan = upgrade_inherit(&inherited, &ninherited)) != -1 && !foreground)
		log_to_syslog();
	m.conf = m.upgrade_chan != -1 ? load_logged(config_path) :
	    config_load(config_path, stderr);
	if (m.conf == NULL) {
		listeners_retire(inherited, ninherited, NULL, 0);
		return 1;
	}
	/* daemon() moves to "/": a reload must still find a relative path. */
	if ((m.config_path = realpath(config_path, NULL)) == NULL)
		fatal("%s", config_path);
	master_setup(&m, inherited, ninherited);
	master_start(&m);
	while (!(m.stopping && !workers_left(&m))) {
		n = epoll_wait(m.epfd, events, 64, next_timeout(&m));
		if (n == -1 && errno != EINTR)
			fatal("epoll_wait");
		for (i = 0; i < n; i++) {
			struct ev_handler *h = events[i].data.ptr;

			h->cb(h, events[i].events);
		}
		if (m.handover_pending && m.upgrade_pid != 0 && !m.handed_over)
			handover_release(&m);
		m.handover_pending = 0;
		/* Postponed while a new master starts; moot if it takes over. */
		if (m.reload_pending && !m.stopping && m.upgrade_pid == 0) {
			m.reload_pending = 0;
			master_reload(&m);
		}
		run_timers(&m);
	}
	master_cleanup(&m);
	free((char *)m.config_path);
	return 0;
}
