/*
 * The control socket in the master: lbadmin's commands, admission by file
 * mode and SO_PEERCRED, and the replies.  The admin state the commands
 * change, in the segment and in the state file, is admin.c's.
 *
 * Every client has one owner, its struct control_client, and one teardown,
 * control_client_close().  A client is only ever freed from its own epoll
 * callback: the master dispatches a batch of events, and a struct freed by
 * another callback of the same batch could still be named by a later event.
 * So the idle timer does not free clients; it shuts their socket down, and
 * the client's own callback, woken by the hang-up, closes it.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "lbd/control.h"
#include "admin.h"
#include "controlsock.h"
#include "event.h"
#include "log.h"
#include "statsmap.h"

#define CONTROL_MAX_CLIENTS	64
#define CONTROL_IDLE_MS		60000		/* a client silent this long is closed */
/* Replies queued for a client that does not read: a whole "show" of every
 * backend (~100 bytes a line), and a little more. */
#define CONTROL_OUT_MAX(map)	(64 * 1024 + (size_t)128 * (map)->hdr->max_backends)
#define CONTROL_ACCEPT_BATCH	16
#define CONTROL_PAUSE_MS	1000		/* accept paused this long on EMFILE */
#define CONTROL_BACKLOG		CONTROL_MAX_CLIENTS

struct control;

struct control_client {
	struct ev_handler	 ev;		/* ev.fd: the connection, owned */
	struct control		*ctl;
	int			 slot;		/* index in ctl->clients */
	uid_t			 uid;
	pid_t			 pid;
	uint64_t		 deadline;	/* monotonic ms: closed as idle after it */
	uint32_t		 events;	/* current epoll interest */
	int			 eof;		/* the client shut its side down */
	int			 doomed;	/* shut down by the idle timer */
	size_t			 inlen;
	char			 in[LBD_CTL_LINE_MAX];	/* a line and its \n */
	char			*out;		/* owned, outcap long */
	size_t			 outlen;
	size_t			 outcap;
};

struct control {
	struct ev_handler	 listen_ev;	/* fd: the listening socket, owned */
	struct ev_handler	 timer_ev;	/* fd: idle/resume timerfd, owned */
	int			 epfd;
	int			 keep_path;	/* a new master binds it after an upgrade */
	gid_t			 admin_gid;
	struct stats_map	*map;
	struct control_hooks	 hooks;
	uint64_t		 resume_at;	/* accept paused until (0: not paused) */
	time_t			 full_logged;	/* rate limit of "too many clients" */
	struct control_client	*clients[CONTROL_MAX_CLIENTS];
	char			 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char			 state_path[PATH_MAX];
};

static void control_client_close(struct control_client *c);
static int control_reply(struct control_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- replies ---- */

/* Queues a reply line; -1 when the client's queue would overflow. */
static int
control_reply(struct control_client *c, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	size_t len, cap;
	char *out;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	len = n < 0 ? 0 : (size_t)n >= sizeof(line) - 1 ? sizeof(line) - 2 : (size_t)n;
	line[len++] = '\n';
	if (c->outlen + len > CONTROL_OUT_MAX(c->ctl->map)) {
		log_warnx("control: client uid %u pid %d does not read its replies, "
		    "closing it", (unsigned)c->uid, (int)c->pid);
		return -1;
	}
	if (c->outlen + len > c->outcap) {
		cap = c->outcap == 0 ? 1024 : c->outcap;
		while (cap < c->outlen + len)
			cap *= 2;
		if ((out = realloc(c->out, cap)) == NULL) {
			log_warn("control: client uid %u pid %d: reply", (unsigned)c->uid,
			    (int)c->pid);
			return -1;
		}
		c->out = out;
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, line, len);
	c->outlen += len;
	return 0;
}

/* Writes what the socket takes; -1 when the client is gone. */
static int
control_flush(struct control_client *c)
{
	ssize_t n;

	while (c->outlen > 0) {
		n = send(c->ev.fd, c->out, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno != EPIPE && errno != ECONNRESET)
				log_warn("control: client uid %u pid %d: send",
				    (unsigned)c->uid, (int)c->pid);
			return -1;
		}
		memmove(c->out, c->out + n, c->outlen - (size_t)n);
		c->outlen -= (size_t)n;
	}
	return 0;
}

/* ---- commands ---- */

static int
control_show_backend(struct control_client *c, uint32_t sslot, uint32_t bslot)
{
	struct lbd_stats_service *s = stats_service(c->ctl->map, sslot);
	struct lbd_stats_backend *b = stats_backend(c->ctl->map, bslot);

	return control_reply(c, "%s/%s %s %u %llu", s->name, b->name,
	    stats_state_name(b->health, b->admin), b->weight,
	    (unsigned long long)stats_backend_active(c->ctl->map, bslot));
}

static int
control_show_service(struct control_client *c, uint32_t sslot)
{
	struct lbd_stats_service *s = stats_service(c->ctl->map, sslot);
	uint32_t j;

	for (j = 0; j < s->nbackends; j++)
		if (stats_service_member(c->ctl->map, s, j) != UINT32_MAX &&
		    control_show_backend(c, sslot, stats_service_member(c->ctl->map, s, j)) == -1)
			return -1;
	return 0;
}

/* "ok", one line per backend "SERVICE/BACKEND STATE WEIGHT ACTIVE", ".". */
static int
control_show(struct control_client *c, const struct lbd_ctl_request *req)
{
	char err[160];
	int sslot, bslot;
	uint32_t i;

	if (req->service[0] != '\0' &&
	    admin_find(c->ctl->map, req->service, req->backend, &sslot, &bslot,
	    err, sizeof(err)) == -1)
		return control_reply(c, "error: %s", err);
	if (control_reply(c, "ok") == -1)
		return -1;
	if (req->backend[0] != '\0') {
		if (control_show_backend(c, (uint32_t)sslot, (uint32_t)bslot) == -1)
			return -1;
	} else if (req->service[0] != '\0') {
		if (control_show_service(c, (uint32_t)sslot) == -1)
			return -1;
	} else {
		for (i = 0; i < c->ctl->map->hdr->max_services; i++)
			if (stats_service(c->ctl->map, i)->state == LBD_SLOT_LIVE &&
			    control_show_service(c, i) == -1)
				return -1;
	}
	return control_reply(c, ".");
}

/* drain, disable, enable, weight: change, log, persist, reply. */
static int
control_change(struct control_client *c, const struct lbd_ctl_request *req)
{
	static const char *verb[] = {
		[LBD_CTL_DRAIN] = "drain", [LBD_CTL_DISABLE] = "disable",
		[LBD_CTL_ENABLE] = "enable", [LBD_CTL_WEIGHT] = "weight",
	};
	char err[PATH_MAX + 160];
	int sslot, bslot, admin = -1, weight = -1;

	if (admin_find(c->ctl->map, req->service, req->backend, &sslot, &bslot,
	    err, sizeof(err)) == -1)
		return control_reply(c, "error: %s", err);
	if (req->command == LBD_CTL_DRAIN)
		admin = LBD_ADMIN_DRAIN;
	else if (req->command == LBD_CTL_DISABLE)
		admin = LBD_ADMIN_DISABLED;
	else if (req->command == LBD_CTL_ENABLE)
		admin = LBD_ADMIN_NONE;
	else
		weight = (int)req->weight;
	(void)admin_set(c->ctl->map, (uint32_t)sslot, (uint32_t)bslot, admin, weight);
	if (weight >= 0)
		log_info("%s/%s: weight %d (by uid %u, pid %d)", req->service,
		    req->backend, weight, (unsigned)c->uid, (int)c->pid);
	else
		log_info("%s/%s: %s (by uid %u, pid %d)", req->service, req->backend,
		    verb[req->command], (unsigned)c->uid, (int)c->pid);
	if (admin_save(c->ctl->map, c->ctl->state_path, err, sizeof(err)) == -1) {
		log_warnx("admin state: %s", err);
		return control_reply(c, "error: %s/%s: %s done, but not saved (%s): "
		    "it will not survive a restart", req->service, req->backend,
		    verb[req->command], err);
	}
	return control_reply(c, "ok");
}

static int
control_line(struct control_client *c, const char *line, size_t len)
{
	struct lbd_ctl_request req;
	char buf[LBD_CTL_LINE_MAX + 1], err[160];

	if (memchr(line, '\0', len) != NULL)
		return control_reply(c, "error: request contains a NUL byte");
	memcpy(buf, line, len);
	buf[len] = '\0';
	if (ctl_parse(buf, &req, err, sizeof(err)) == -1)
		return control_reply(c, "error: %s", err);
	switch (req.command) {
	case LBD_CTL_SHOW:
		return control_show(c, &req);
	case LBD_CTL_RELOAD:
		log_info("reload requested (by uid %u, pid %d)", (unsigned)c->uid,
		    (int)c->pid);
		if (c->ctl->hooks.reload != NULL)
			c->ctl->hooks.reload(c->ctl->hooks.arg);
		return control_reply(c, "ok reload requested");
	default:
		return control_change(c, &req);
	}
}

/* ---- clients ---- */

/* Answers every complete line in the input; -1 closes the client. */
static int
control_lines(struct control_client *c)
{
	size_t start = 0, len;
	char *nl;

	while ((nl = memchr(c->in + start, '\n', c->inlen - start)) != NULL) {
		len = (size_t)(nl - (c->in + start));
		if (control_line(c, c->in + start, len) == -1)
			return -1;
		start += len + 1;
	}
	memmove(c->in, c->in + start, c->inlen - start);
	c->inlen -= start;
	if (c->inlen == sizeof(c->in)) {
		log_warnx("control: client uid %u pid %d: request longer than %d bytes, "
		    "closing it", (unsigned)c->uid, (int)c->pid, LBD_CTL_LINE_MAX - 1);
		(void)control_reply(c, "error: request too long");
		(void)control_flush(c);
		return -1;
	}
	return 0;
}

static int
control_read(struct control_client *c)
{
	ssize_t n;

	n = read(c->ev.fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
	if (n == -1)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
	if (n == 0) {
		/* A last line without its newline still gets its answer. */
		c->eof = 1;
		if (c->inlen > 0 && control_line(c, c->in, c->inlen) == -1)
			return -1;
		c->inlen = 0;
		return 0;
	}
	c->inlen += (size_t)n;
	c->deadline = clock_ms() + CONTROL_IDLE_MS;
	return control_lines(c);
}

/* Arms the timer for the next idle deadline or accept resumption. */
static void
control_timer_arm(struct control *ctl)
{
	struct itimerspec its;
	uint64_t next = ctl->resume_at;
	int i;

	for (i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct control_client *c = ctl->clients[i];

		if (c != NULL && !c->doomed && (next == 0 || c->deadline < next))
			next = c->deadline;
	}
	memset(&its, 0, sizeof(its));
	if (next != 0) {
		its.it_value.tv_sec = (time_t)(next / 1000);
		its.it_value.tv_nsec = (long)(next % 1000) * 1000000 + 1;
	}
	if (timerfd_settime(ctl->timer_ev.fd, TFD_TIMER_ABSTIME, &its, NULL) == -1)
		log_warn("control: timerfd_settime");
}

static void
control_client_cb(struct ev_handler *h, uint32_t events)
{
	struct control_client *c = EV_CONTAINER(h, struct control_client, ev);
	uint32_t want;

	if (c->doomed || (events & EPOLLERR)) {
		control_client_close(c);
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP)) && !c->eof && control_read(c) == -1) {
		control_client_close(c);
		return;
	}
	if (control_flush(c) == -1 || (c->eof && c->outlen == 0)) {
		control_client_close(c);
		return;
	}
	want = (c->eof ? 0 : EPOLLIN) | (c->outlen > 0 ? EPOLLOUT : 0);
	if (want != c->events) {
		if (ev_mod(c->ctl->epfd, &c->ev, want) == -1) {
			log_warn("control: client uid %u pid %d: epoll_ctl",
			    (unsigned)c->uid, (int)c->pid);
			control_client_close(c);
			return;
		}
		c->events = want;
	}
	control_timer_arm(c->ctl);
}

static void
control_client_close(struct control_client *c)
{
	struct control *ctl = c->ctl;

	log_debug("control: client uid %u pid %d closed", (unsigned)c->uid, (int)c->pid);
	ev_del(ctl->epfd, &c->ev);
	close(c->ev.fd);
	ctl->clients[c->slot] = NULL;
	free(c->out);
	free(c);
	control_timer_arm(ctl);
}

/* ---- admission ---- */

static int
control_uid_in_group(uid_t uid, gid_t gid)
{
	struct passwd pw, *res = NULL;
	char buf[16384];
	gid_t *groups;
	int n = 64, i, found = 0;

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || res == NULL)
		return 0;
	if (pw.pw_gid == gid)
		return 1;
	if ((groups = reallocarray(NULL, (size_t)n, sizeof(*groups))) == NULL)
		return 0;
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) == -1) {
		/* n now says how many there are: one more try with room for them. */
		free(groups);
		if (n <= 0 || n > 65536 ||
		    (groups = reallocarray(NULL, (size_t)n, sizeof(*groups))) == NULL)
			return 0;
		if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) == -1)
			n = 0;
	}
	for (i = 0; i < n && !found; i++)
		found = groups[i] == gid;
	free(groups);
	return found;
}

/*
 * The peer's own supplementary groups, as they were at connect(): the list
 * the kernel checked the socket's file mode against.  1 when gid is among
 * them, 0 when not, -1 when the kernel cannot say (before Linux 4.13).
 */
static int
control_peer_in_group(int fd, gid_t gid)
{
	gid_t some[64], *groups = some;
	socklen_t len = sizeof(some);
	size_t i, n;
	int found = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, some, &len) == -1) {
		/* ERANGE: len now says how much room the whole list needs. */
		if (errno != ERANGE || len > 65536 * sizeof(gid_t) ||
		    (groups = malloc(len)) == NULL)
			return -1;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == -1) {
			free(groups);
			return -1;
		}
	}
	for (i = 0, n = len / sizeof(gid_t); i < n && !found; i++)
		found = groups[i] == gid;
	if (groups != some)
		free(groups);
	return found;
}

/*
 * Root, the daemon's own uid, and members of the admin group: by the
 * peer's effective group or its own supplementary groups (SO_PEERGROUPS),
 * which the socket's file mode let in too; the group database only where
 * the kernel cannot give that list.
 */
static int
control_admitted(struct control *ctl, int fd, const struct ucred *cr)
{
	int in;

	if (cr->uid == 0 || cr->uid == geteuid() || cr->gid == ctl->admin_gid)
		return 1;
	if ((in = control_peer_in_group(fd, ctl->admin_gid)) >= 0)
		return in;
	return control_uid_in_group(cr->uid, ctl->admin_gid);
}

/* For a client turned away at the door: a best-effort reply, then close. */
static void
control_refuse(int fd, const char *reply)
{
	(void)send(fd, reply, strlen(reply), MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static int
control_free_slot(struct control *ctl)
{
	int i;

	for (i = 0; i < CONTROL_MAX_CLIENTS; i++)
		if (ctl->clients[i] == NULL)
			return i;
	return -1;
}

static void
control_admit(struct control *ctl, int fd, const struct ucred *cr, int slot)
{
	struct control_client *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("control: client uid %u pid %d", (unsigned)cr->uid, (int)cr->pid);
		control_refuse(fd, "error: out of memory\n");
		return;
	}
	c->ev.cb = control_client_cb;
	c->ev.fd = fd;
	c->ctl = ctl;
	c->slot = slot;
	c->uid = cr->uid;
	c->pid = cr->pid;
	c->events = EPOLLIN;
	c->deadline = clock_ms() + CONTROL_IDLE_MS;
	if (ev_add(ctl->epfd, &c->ev, c->events) == -1) {
		log_warn("control: client uid %u pid %d: epoll_ctl", (unsigned)cr->uid,
		    (int)cr->pid);
		control_refuse(fd, "error: internal error\n");
		free(c);
		return;
	}
	ctl->clients[slot] = c;
	log_debug("control: client uid %u pid %d connected", (unsigned)cr->uid,
	    (int)cr->pid);
}

static void
control_accept_one(struct control *ctl, int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	time_t now;
	int slot;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == -1) {
		log_warn("control: getsockopt(SO_PEERCRED)");
		control_refuse(fd, "error: permission denied\n");
		return;
	}
	if (!control_admitted(ctl, fd, &cr)) {
		log_warnx("control: refused uid %u pid %d: not root and not in the "
		    "admin group (gid %u)", (unsigned)cr.uid, (int)cr.pid,
		    (unsigned)ctl->admin_gid);
		control_refuse(fd, "error: permission denied\n");
		return;
	}
	if ((slot = control_free_slot(ctl)) == -1) {
		if ((now = time(NULL)) != ctl->full_logged)
			log_warnx("control: refused uid %u pid %d: already %d clients",
			    (unsigned)cr.uid, (int)cr.pid, CONTROL_MAX_CLIENTS);
		ctl->full_logged = now;
		control_refuse(fd, "error: too many control clients\n");
		return;
	}
	control_admit(ctl, fd, &cr, slot);
}

static void
control_accept_cb(struct ev_handler *h, uint32_t events)
{
	struct control *ctl = EV_CONTAINER(h, struct control, listen_ev);
	int i, fd;

	(void)events;
	for (i = 0; i < CONTROL_ACCEPT_BATCH; i++) {
		fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Out of descriptors: pause instead of spinning. */
				log_warn("control: accept on %s, paused for %d ms",
				    ctl->path, CONTROL_PAUSE_MS);
				(void)ev_mod(ctl->epfd, &ctl->listen_ev, 0);
				ctl->resume_at = clock_ms() + CONTROL_PAUSE_MS;
			} else if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warn("control: accept on %s", ctl->path);
			break;
		}
		control_accept_one(ctl, fd);
	}
	control_timer_arm(ctl);
}

/* Idle clients are shut down (their own callback frees them); accept resumes. */
static void
control_timer_cb(struct ev_handler *h, uint32_t events)
{
	struct control *ctl = EV_CONTAINER(h, struct control, timer_ev);
	uint64_t expirations, now = clock_ms();
	int i;

	(void)events;
	(void)read(h->fd, &expirations, sizeof(expirations));
	for (i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct control_client *c = ctl->clients[i];

		if (c == NULL || c->doomed || c->deadline > now)
			continue;
		log_info("control: client uid %u pid %d idle for %d s, closing it",
		    (unsigned)c->uid, (int)c->pid, CONTROL_IDLE_MS / 1000);
		c->doomed = 1;
		(void)shutdown(c->ev.fd, SHUT_RDWR);
	}
	if (ctl->resume_at != 0 && ctl->resume_at <= now) {
		ctl->resume_at = 0;
		if (ev_mod(ctl->epfd, &ctl->listen_ev, EPOLLIN) == -1)
			log_warn("control: epoll_ctl %s", ctl->path);
	}
	control_timer_arm(ctl);
}

/* ---- the socket ---- */

/*
 * A socket file left by an lbd that was killed is removed; one that
 * answers belongs to a running lbd, and starting a second is refused.
 */
static void
control_check_stale(const char *path, const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, r;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return;
		fatal("control socket %s", path);
	}
	if (!S_ISSOCK(st.st_mode))
		fatalx("control socket %s: exists and is not a socket", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		fatal("control socket %s: socket", path);
	r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	if (r == 0 || errno == EAGAIN)
		fatalx("control socket %s: another lbd is listening there", path);
	if (errno != ECONNREFUSED)
		fatal("control socket %s: connect", path);
	close(fd);
	if (unlink(path) == -1 && errno != ENOENT)
		fatal("control socket %s: unlink stale socket", path);
	log_info("control socket %s: removed a stale socket", path);
}

static int
control_listen(const char *path, gid_t admin_gid)
{
	struct sockaddr_un sun;
	mode_t old;
	int fd, r;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		fatalx("control socket %s: path longer than %zu bytes", path,
		    sizeof(sun.sun_path) - 1);
	memcpy(sun.sun_path, path, strlen(path));
	control_check_stale(path, &sun);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		fatal("control socket %s: socket", path);
	old = umask(0117);		/* born 0660: never a moment world-writable */
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r == -1)
		fatal("control socket %s: bind", path);
	if (chown(path, (uid_t)-1, admin_gid) == -1) {
		if (geteuid() == 0)
			fatal("control socket %s: chown to gid %u", path, (unsigned)admin_gid);
		log_warn("control socket %s: chown to gid %u", path, (unsigned)admin_gid);
	}
	if (chmod(path, 0660) == -1)
		fatal("control socket %s: chmod", path);
	if (listen(fd, CONTROL_BACKLOG) == -1)
		fatal("control socket %s: listen", path);
	return fd;
}

struct control *
control_open(int epfd, const char *path, gid_t admin_gid, struct stats_map *map,
    const char *state_path, struct control_hooks hooks)
{
	struct control *ctl;

	if ((ctl = calloc(1, sizeof(*ctl))) == NULL)
		fatal("control socket %s", path);
	if (strlen(state_path) >= sizeof(ctl->state_path))
		fatalx("admin state %s: path too long", state_path);
	snprintf(ctl->path, sizeof(ctl->path), "%s", path);
	snprintf(ctl->state_path, sizeof(ctl->state_path), "%s", state_path);
	ctl->epfd = epfd;
	ctl->admin_gid = admin_gid;
	ctl->map = map;
	ctl->hooks = hooks;
	ctl->listen_ev.cb = control_accept_cb;
	ctl->listen_ev.fd = control_listen(path, admin_gid);
	ctl->timer_ev.cb = control_timer_cb;
	ctl->timer_ev.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (ctl->timer_ev.fd == -1)
		fatal("control socket %s: timerfd_create", path);
	if (ev_add(epfd, &ctl->listen_ev, EPOLLIN) == -1 ||
	    ev_add(epfd, &ctl->timer_ev, EPOLLIN) == -1)
		fatal("control socket %s: epoll_ctl", path);
	return ctl;
}

void
control_set_admin_gid(struct control *ctl, gid_t admin_gid)
{
	if (admin_gid == ctl->admin_gid)
		return;
	if (chown(ctl->path, (uid_t)-1, admin_gid) == -1) {
		log_warn("control socket %s: chown to gid %u, keeping gid %u", ctl->path,
		    (unsigned)admin_gid, (unsigned)ctl->admin_gid);
		return;
	}
	ctl->admin_gid = admin_gid;
}

void
control_apply_state(struct control *ctl)
{
	admin_apply_file(ctl->map, ctl->state_path);
}

/*
 * Unlinks the socket file and takes everything out of the master's epoll
 * set (workers never hold any of it: the master's close_inherited closes
 * it in every new worker).  Call it between event batches, not from inside
 * another handler.
 */
void
control_close(struct control *ctl)
{
	int i;

	if (ctl == NULL)
		return;
	for (i = 0; i < CONTROL_MAX_CLIENTS; i++)
		if (ctl->clients[i] != NULL)
			control_client_close(ctl->clients[i]);
	ev_del(ctl->epfd, &ctl->listen_ev);
	ev_del(ctl->epfd, &ctl->timer_ev);
	if (!ctl->keep_path && unlink(ctl->path) == -1 && errno != ENOENT)
		log_warn("control socket %s: unlink", ctl->path);
	close(ctl->listen_ev.fd);
	close(ctl->timer_ev.fd);
	free(ctl);
}

/* Binary upgrade: the new master binds the same path at once; leave the file. */
void
control_close_keep(struct control *ctl)
{
	if (ctl != NULL)
		ctl->keep_path = 1;
	control_close(ctl);
}
