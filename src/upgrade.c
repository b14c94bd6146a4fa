/*
 * Binary upgrade: the exec, the hand-over through the environment and the
 * handshake on a socket pair.  See upgrade.h and lbd(8), BINARY UPGRADE.
 *
 * The protocol is two lines: the new master writes "ready" once its
 * workers run; the old master closes its control socket, lets go of the pid
 * file's lock, stops its health checks (so one master at a time writes the
 * segment), answers "done", and then waits for its workers to finish.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "event.h"
#include "log.h"
#include "upgrade.h"

#define UPGRADE_FD_ENV		"LBD_UPGRADE_FD"
#define UPGRADE_LISTEN_ENV	"LBD_LISTEN_FDS"
/* The kernel's longest single environment string (MAX_ARG_STRLEN, 32
 * pages): the listen addresses a binary upgrade carries (a few thousand). */
#define UPGRADE_ENV_MAX		(128 * 1024 - sizeof(UPGRADE_LISTEN_ENV) - 1)
#define UPGRADE_WAIT_MS		10000	/* for the old master's "done" */

static char upgrade_exe[PATH_MAX];

/*
 * Not /proc/self/exe: once a package manager has replaced the file, that
 * names the deleted old binary.  argv[0] made absolute (symlinks kept, so
 * /usr/sbin/lbd -> lbd-1.2 follows the link to whatever it points at then).
 */
void
upgrade_init(const char *argv0)
{
	char cwd[PATH_MAX], *path, *dir, *save = NULL;
	int n = -1;

	if (argv0 == NULL || *argv0 == '\0')
		return;
	if (argv0[0] == '/')
		n = snprintf(upgrade_exe, sizeof(upgrade_exe), "%s", argv0);
	else if (strchr(argv0, '/') != NULL && getcwd(cwd, sizeof(cwd)) != NULL)
		n = snprintf(upgrade_exe, sizeof(upgrade_exe), "%s/%s", cwd, argv0);
	else if (strchr(argv0, '/') == NULL && getenv("PATH") != NULL &&
	    (path = strdup(getenv("PATH"))) != NULL) {
		for (dir = strtok_r(path, ":", &save); dir != NULL;
		    dir = strtok_r(NULL, ":", &save)) {
			n = snprintf(upgrade_exe, sizeof(upgrade_exe), "%s/%s", dir, argv0);
			if (dir[0] == '/' && n < (int)sizeof(upgrade_exe) &&
			    access(upgrade_exe, X_OK) == 0)
				break;
			n = -1;
		}
		free(path);
	}
	if (n < 0 || n >= (int)sizeof(upgrade_exe))
		upgrade_exe[0] = '\0';
}

/* ---- the old master ---- */

/* "fd=address;..." for the listeners, which lose close-on-exec. */
static int
upgrade_listen_env(const struct listener *ls, size_t n, char *buf, size_t len)
{
	size_t i, used = 0;
	int w;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		if (ls[i].fd == -1 || fcntl(ls[i].fd, F_SETFD, 0) == -1)
			continue;
		w = snprintf(buf + used, len - used, "%s%d=%s", used > 0 ? ";" : "",
		    ls[i].fd, ls[i].addr.text);
		if (w < 0 || (size_t)w >= len - used)
			return -1;
		used += (size_t)w;
	}
	return 0;
}

static void __attribute__((noreturn))
upgrade_exec(const struct listener *ls, size_t n, const char *config_path,
    int foreground, int chan)
{
	static char env[UPGRADE_ENV_MAX];
	char num[16], *argv[] = { upgrade_exe, (char *)"-f", (char *)config_path,
	    foreground ? (char *)"-d" : NULL, NULL };
	sigset_t none;

	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	/* Only what is named below crosses the exec: never the pid file's lock. */
	(void)close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);
	if (upgrade_listen_env(ls, n, env, sizeof(env)) == -1) {
		log_warnx("upgrade: %s too long", UPGRADE_LISTEN_ENV);
		_exit(126);
	}
	snprintf(num, sizeof(num), "%d", chan);
	if (fcntl(chan, F_SETFD, 0) == -1 || setenv(UPGRADE_FD_ENV, num, 1) == -1 ||
	    setenv(UPGRADE_LISTEN_ENV, env, 1) == -1) {
		log_warn("upgrade: environment");
		_exit(126);
	}
	execv(upgrade_exe, argv);
	log_warn("upgrade: exec %s", upgrade_exe);
	_exit(127);
}

pid_t
upgrade_spawn(const struct listener *ls, size_t n, const char *config_path,
    int foreground, int *chan)
{
	pid_t pid;
	int sv[2];

	if (upgrade_exe[0] == '\0') {
		log_warnx("upgrade: the path lbd was started from is unknown");
		return -1;
	}
	if (access(upgrade_exe, X_OK) == -1) {
		log_warn("upgrade: %s", upgrade_exe);
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("upgrade: socketpair");
		return -1;
	}
	if ((pid = fork()) == -1) {
		log_warn("upgrade: fork");
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0)
		upgrade_exec(ls, n, config_path, foreground, sv[1]);
	close(sv[1]);
	(void)fcntl(sv[0], F_SETFL, O_NONBLOCK);
	*chan = sv[0];
	log_info("upgrade: started %s as pid %d", upgrade_exe, (int)pid);
	return pid;
}

int
upgrade_read(int chan)
{
	char buf[64];
	ssize_t r = read(chan, buf, sizeof(buf));

	if (r == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	return r >= 5 && memcmp(buf, "ready", 5) == 0 ? 1 : -1;
}

void
upgrade_release(int chan)
{
	if (send(chan, "done\n", 5, MSG_NOSIGNAL) != 5)
		log_warn("upgrade: telling the new master");
}

/* ---- the new master ---- */

static int
upgrade_parse_fd(const char *text)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || end == text || v < 3 || v > INT_MAX || fcntl((int)v, F_GETFD) == -1)
		return -1;
	return (int)v;
}

/* One "fd=address" entry: a listening socket, its address read back. */
static int
upgrade_take_listener(char *entry, struct listener *l)
{
	char *eq = strchr(entry, '=');
	int fd, on = 0;
	socklen_t len = sizeof(on);

	if (eq != NULL)
		*eq = '\0';
	if ((fd = upgrade_parse_fd(entry)) == -1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == -1 || !on) {
		log_warnx("upgrade: %s entry \"%s\": not a listening socket",
		    UPGRADE_LISTEN_ENV, entry);
		return -1;
	}
	l->fd = fd;
	l->addr.len = sizeof(l->addr.ss);
	if (getsockname(fd, (struct sockaddr *)&l->addr.ss, &l->addr.len) == -1) {
		log_warn("upgrade: listener %d: getsockname", fd);
		close(fd);
		return -1;
	}
	snprintf(l->addr.text, sizeof(l->addr.text), "%s", eq != NULL ? eq + 1 : "?");
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	return 0;
}

int
upgrade_inherit(struct listener **ls, size_t *n)
{
	const char *fdtext = getenv(UPGRADE_FD_ENV), *list = getenv(UPGRADE_LISTEN_ENV);
	char *copy, *entry, *save = NULL;
	size_t max = 1;
	int chan;

	*ls = NULL;
	*n = 0;
	if (fdtext == NULL)
		return -1;
	if ((chan = upgrade_parse_fd(fdtext)) == -1)
		log_warnx("upgrade: %s=\"%s\" is no open descriptor", UPGRADE_FD_ENV, fdtext);
	for (entry = (char *)list; list != NULL && (entry = strchr(entry, ';')) != NULL;
	    entry++)
		max++;
	if (chan != -1 && list != NULL && strlen(list) < UPGRADE_ENV_MAX &&
	    (copy = strdup(list)) != NULL) {
		if ((*ls = calloc(max, sizeof(**ls))) != NULL)
			for (entry = strtok_r(copy, ";", &save);
			    entry != NULL && *n < max;
			    entry = strtok_r(NULL, ";", &save))
				*n += upgrade_take_listener(entry, &(*ls)[*n]) == 0;
		free(copy);
	}
	(void)unsetenv(UPGRADE_FD_ENV);
	(void)unsetenv(UPGRADE_LISTEN_ENV);
	if (chan != -1)
		(void)fcntl(chan, F_SETFD, FD_CLOEXEC);
	return chan;
}

int
upgrade_takeover(int chan, char *err, size_t errlen)
{
	uint64_t deadline = clock_ms() + UPGRADE_WAIT_MS, now;
	struct pollfd pfd = { .fd = chan, .events = POLLIN };
	char buf[64];
	ssize_t r = 0;

	/* A hung-up old master has let go of everything: just take over. */
	if (send(chan, "ready\n", 6, MSG_NOSIGNAL) == 6)
		while ((now = clock_ms()) < deadline) {
			if (poll(&pfd, 1, (int)(deadline - now)) == 1) {
				r = read(chan, buf, sizeof(buf));
				if (r != -1 || (errno != EAGAIN && errno != EINTR))
					break;
			}
		}
	close(chan);
	if (r == 0 && clock_ms() >= deadline) {
		snprintf(err, errlen, "the old master (pid %d) did not let go within %dms",
		    (int)getppid(), UPGRADE_WAIT_MS);
		return -1;
	}
	if (r <= 0)
		log_warnx("upgrade: the old master hung up; taking over");
	return 0;
}

/* ---- the old master's workers, seen from the new one ---- */

struct upgrade_watch {
	struct ev_handler ev;
	uint32_t slot;
};

static struct upgrade_watch upgrade_watched[LBD_MAX_WORKER_SLOTS];
static void (*upgrade_gone)(void *, uint32_t);
static void *upgrade_gone_arg;
static int upgrade_epfd = -1;

static void
upgrade_worker_exited(struct ev_handler *h, uint32_t events)
{
	struct upgrade_watch *w = (struct upgrade_watch *)h;

	(void)events;
	ev_del(upgrade_epfd, h);
	close(h->fd);
	h->fd = -1;
	upgrade_gone(upgrade_gone_arg, w->slot);
}

void
upgrade_watch_workers(int epfd, const struct stats_map *map,
    void (*gone)(void *arg, uint32_t slot), void *arg)
{
	struct upgrade_watch *w;
	uint32_t slot;
	pid_t pid;

	upgrade_gone = gone;
	upgrade_gone_arg = arg;
	upgrade_epfd = epfd;
	for (slot = 0; slot < map->hdr->worker_slots && slot < LBD_MAX_WORKER_SLOTS; slot++) {
		if (stats_worker(map, slot)->state == LBD_WORKER_FREE ||
		    (pid = stats_worker(map, slot)->pid) <= 0)
			continue;
		w = &upgrade_watched[slot];
		w->slot = slot;
		w->ev.cb = upgrade_worker_exited;
		/* Not our children: a pidfd is how we learn they have exited. */
		w->ev.fd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (w->ev.fd == -1 || ev_add(epfd, &w->ev, EPOLLIN) == -1) {
			if (w->ev.fd != -1)
				close(w->ev.fd);
			w->ev.fd = -1;
			gone(arg, slot);	/* already gone, or cannot tell */
		}
	}
}
