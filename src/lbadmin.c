/*
 * lbadmin: drains, disables, enables and re-weights backends of a running
 * lbd through its control socket (protocol: include/lbd/control.h).
 *
 * Exit status: 0 done, 1 refused or failed (one line on stderr), 2 usage.
 * Every wait on the socket is bounded by LBADMIN_TIMEOUT_MS.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "lbd/control.h"
#include "config.h"

#define LBADMIN_TIMEOUT_MS	10000		/* for connect, each request, each reply */
#define LBADMIN_POLL_MS		200		/* drain -w: how often to look */
#define LBADMIN_MAX_WAIT_S	(7 * 24 * 3600)
#define LBADMIN_REPLY_MAX	1024		/* longest reply line accepted */
#define LBADMIN_SHOW_MAX	(16u << 20)	/* rows of a "show" reply believed */

struct lbadmin_conn {
	int fd;				/* owned */
	const char *path;
	size_t len;			/* bytes buffered in buf */
	char buf[4096];
};

/* One backend line of "show": SERVICE/BACKEND STATE WEIGHT ACTIVE. */
struct lbadmin_row {
	char name[2 * LBD_NAME_LEN];
	char state[16];
	char weight[16];
	char active[24];
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: lbadmin [-s socket | -f configfile] command [args]\n"
	    "commands:\n"
	    "  drain [-w seconds] SERVICE/BACKEND  stop sending new connections; with -w,\n"
	    "                                      wait until its active count is 0\n"
	    "  disable SERVICE/BACKEND             maintenance: no new connections, no checks\n"
	    "  enable SERVICE/BACKEND              back into rotation (health permitting)\n"
	    "  weight SERVICE/BACKEND N            set the weight, 0..%d\n"
	    "  show [SERVICE[/BACKEND]]            state, weight and active connections\n"
	    "  reload                              reload the configuration (as SIGHUP)\n"
	    "options:\n"
	    "  -s socket      the control socket (default: lbd.sock in the runtime-dir\n"
	    "                 of the configuration)\n"
	    "  -f configfile  the configuration to find it from (default: $LBD_CONF,\n"
	    "                 or %s)\n", LBD_CTL_MAX_WEIGHT, LBD_DEFAULT_CONF);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("lbadmin: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void __attribute__((noreturn))
die_usage(const char *why)
{
	if (why != NULL)
		fprintf(stderr, "lbadmin: %s\n", why);
	usage(stderr);
	exit(2);
}

/* Waits for events on the connection until deadline; exits on timeout. */
static void
conn_wait(struct lbadmin_conn *c, short events, uint64_t deadline, const char *what)
{
	struct pollfd pfd = { .fd = c->fd, .events = events };
	uint64_t now;
	int r;

	for (;;) {
		if ((now = clock_ms()) >= deadline)
			die("%s: no %s within %d s", c->path, what, LBADMIN_TIMEOUT_MS / 1000);
		r = poll(&pfd, 1, (int)(deadline - now));
		if (r > 0)
			return;
		if (r == -1 && errno != EINTR)
			die("%s: poll: %s", c->path, strerror(errno));
	}
}

static void
conn_open(struct lbadmin_conn *c, const char *path)
{
	struct sockaddr_un sun;
	uint64_t deadline = clock_ms() + LBADMIN_TIMEOUT_MS;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		die("%s: %s", path, strerror(ENAMETOOLONG));
	memcpy(sun.sun_path, path, strlen(path));
	c->path = path;
	c->len = 0;
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		die("socket: %s", strerror(errno));
	/*
	 * A UNIX socket's nonblocking connect does not go in progress: EAGAIN
	 * means the listen queue is full, and the only way on is to try again.
	 */
	while (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno != EAGAIN && errno != EINTR)
			die("%s: %s", path, strerror(errno));
		if (clock_ms() >= deadline)
			die("%s: lbd did not accept the connection within %d s", path,
			    LBADMIN_TIMEOUT_MS / 1000);
		(void)poll(NULL, 0, 50);
	}
}

static void
conn_send(struct lbadmin_conn *c, const char *line)
{
	uint64_t deadline = clock_ms() + LBADMIN_TIMEOUT_MS;
	size_t off = 0, len = strlen(line);
	ssize_t n;

	while (off < len) {
		n = send(c->fd, line + off, len - off, MSG_NOSIGNAL);
		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			conn_wait(c, POLLOUT, deadline, "room to send");
		else if (errno == EPIPE || errno == ECONNRESET)
			return;		/* lbd hung up; its reason may be waiting to be read */
		else if (errno != EINTR)
			die("%s: send: %s", c->path, strerror(errno));
	}
}

/* Reads one reply line (without its newline) into line, within the deadline. */
static void
conn_line(struct lbadmin_conn *c, char *line, size_t size, uint64_t deadline)
{
	char *nl;
	size_t len;
	ssize_t n;

	while ((nl = memchr(c->buf, '\n', c->len)) == NULL) {
		if (c->len == sizeof(c->buf))
			die("%s: reply line too long", c->path);
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (n > 0)
			c->len += (size_t)n;
		else if (n == 0)
			die("%s: connection closed by lbd", c->path);
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			conn_wait(c, POLLIN, deadline, "reply");
		else if (errno != EINTR)
			die("%s: recv: %s", c->path, strerror(errno));
	}
	len = (size_t)(nl - c->buf);
	if (len >= size)
		die("%s: reply line too long", c->path);
	memcpy(line, c->buf, len);
	line[len] = '\0';
	if (len > 0 && line[len - 1] == '\r')
		line[len - 1] = '\0';
	memmove(c->buf, nl + 1, c->len - len - 1);
	c->len -= len + 1;
}

/* Sends a request and reads the first reply line; "error: X" exits 1. */
static void
conn_request(struct lbadmin_conn *c, const char *request, char *reply, size_t size)
{
	char line[LBD_CTL_LINE_MAX + 2];

	snprintf(line, sizeof(line), "%s\n", request);
	conn_send(c, line);
	conn_line(c, reply, size, clock_ms() + LBADMIN_TIMEOUT_MS);
	if (strncmp(reply, "error:", 6) == 0)
		die("%s", reply + 6 + strspn(reply + 6, " "));
	if (strcmp(reply, "ok") != 0 && strncmp(reply, "ok ", 3) != 0)
		die("%s: unexpected reply '%.60s'", c->path, reply);
}

static void
parse_row(struct lbadmin_conn *c, const char *line, struct lbadmin_row *row)
{
	char extra;

	if (sscanf(line, "%95s %15s %15s %23s %c", row->name, row->state, row->weight,
	    row->active, &extra) != 4)
		die("%s: unexpected show line '%.60s'", c->path, line);
}

/* "show ...": the rows up to the closing ".", at most max of them. */
static size_t
conn_show(struct lbadmin_conn *c, const char *request, struct lbadmin_row **rows,
    size_t *cap, size_t max)
{
	char line[LBADMIN_REPLY_MAX];
	uint64_t deadline;
	size_t n = 0;

	conn_request(c, request, line, sizeof(line));
	deadline = clock_ms() + LBADMIN_TIMEOUT_MS;
	for (;;) {
		conn_line(c, line, sizeof(line), deadline);
		if (strcmp(line, ".") == 0)
			return n;
		if (n == max)
			die("%s: more than %zu lines in the reply to show", c->path, max);
		if (n == *cap) {
			*cap = *cap == 0 ? 256 : 2 * *cap;
			if ((*rows = reallocarray(*rows, *cap, sizeof(**rows))) == NULL)
				die("%s", strerror(errno));
		}
		parse_row(c, line, &(*rows)[n++]);
	}
}

static void
print_table(const struct lbadmin_row *rows, size_t n)
{
	int w = (int)strlen("SERVICE/BACKEND");
	size_t i;

	for (i = 0; i < n; i++)
		if ((int)strlen(rows[i].name) > w)
			w = (int)strlen(rows[i].name);
	printf("%-*s  %-8s  %-6s  %s\n", w, "SERVICE/BACKEND", "STATE", "WEIGHT", "ACTIVE");
	for (i = 0; i < n; i++)
		printf("%-*s  %-8s  %-6s  %s\n", w, rows[i].name, rows[i].state,
		    rows[i].weight, rows[i].active);
}

static unsigned long long
row_active(struct lbadmin_conn *c, const struct lbadmin_row *row)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(row->active, &end, 10);
	if (errno != 0 || *end != '\0' || end == row->active)
		die("%s: unexpected active count '%s'", c->path, row->active);
	return v;
}

/*
 * drain -w: polls "show SERVICE/BACKEND" on the same connection until the
 * active count is 0 or wait_s seconds have passed.
 */
static int
wait_drained(struct lbadmin_conn *c, const char *target, unsigned wait_s)
{
	uint64_t now, deadline = clock_ms() + (uint64_t)wait_s * 1000;
	unsigned long long active, last = ULLONG_MAX;
	struct lbadmin_row row, *rowp = &row;
	size_t cap = 1;
	char request[LBD_CTL_LINE_MAX];

	snprintf(request, sizeof(request), "show %s", target);
	for (;;) {
		if (conn_show(c, request, &rowp, &cap, 1) != 1)
			die("%s: no such backend", target);
		if ((active = row_active(c, &row)) == 0) {
			if (last != ULLONG_MAX)
				printf("%s: drained\n", target);
			return 0;
		}
		if (active != last) {
			printf("%s: %llu active\n", target, active);
			fflush(stdout);
			last = active;
		}
		if ((now = clock_ms()) >= deadline)
			die("%s: still %llu active after %u s", target, active, wait_s);
		(void)poll(NULL, 0, deadline - now < LBADMIN_POLL_MS ?
		    (int)(deadline - now) : LBADMIN_POLL_MS);
	}
}

static const char *
socket_path(const char *sock, const char *conf_path, char *buf, size_t len)
{
	struct lbd_config *conf;
	char *text = NULL, *line, *save = NULL;
	size_t textlen = 0;
	FILE *errors;

	if (sock != NULL)
		return sock;
	if (conf_path == NULL && (conf_path = getenv("LBD_CONF")) == NULL)
		conf_path = LBD_DEFAULT_CONF;
	if ((errors = open_memstream(&text, &textlen)) == NULL)
		die("open_memstream: %s", strerror(errno));
	if ((conf = config_load(conf_path, errors)) == NULL) {
		/* "file:line: message" lines, each said as lbadmin's. */
		fclose(errors);
		for (line = strtok_r(text, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			fprintf(stderr, "lbadmin: %s\n", line);
		exit(1);
	}
	fclose(errors);
	free(text);
	if (config_control_path(conf, buf, len) == -1)
		die("%s: runtime-dir too long for a socket path", conf_path);
	config_free(conf);
	return buf;
}

static unsigned
parse_wait(const char *arg)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno != 0 ||
	    v > LBADMIN_MAX_WAIT_S)
		die_usage("drain -w: seconds must be a whole number up to 604800");
	return (unsigned)v;
}

/*
 * Turns argv (the command and its arguments) into a request line, checked
 * with the daemon's own parser so a mistake is a usage error, found here.
 * Sets *wait_s for drain -w (-1 when absent).
 */
static void
build_request(int argc, char **argv, char *line, size_t len, long *wait_s)
{
	struct lbd_ctl_request req;
	char err[160];
	size_t off = 0;
	int i = 1;

	*wait_s = -1;
	if (strcmp(argv[0], "drain") == 0 && argc > 1 && (strcmp(argv[1], "-w") == 0 ||
	    (strncmp(argv[1], "-w", 2) == 0 && isdigit((unsigned char)argv[1][2])))) {
		if (argv[1][2] != '\0')
			*wait_s = parse_wait(argv[1] + 2);
		else if (argc > 2)
			*wait_s = parse_wait(argv[++i]);
		else
			die_usage("drain -w: missing seconds");
		i++;
	}
	off = (size_t)snprintf(line, len, "%s", argv[0]);
	for (; i < argc && off < len; i++) {
		if (argv[i][0] == '\0' || strpbrk(argv[i], " \t\r\n") != NULL) {
			fprintf(stderr, "lbadmin: argument '%s' is empty or has a blank\n",
			    argv[i]);
			exit(2);
		}
		off += (size_t)snprintf(line + off, len - off, " %s", argv[i]);
	}
	if (off >= len)
		die_usage("arguments too long");
	if (ctl_parse(line, &req, err, sizeof(err)) == -1) {
		fprintf(stderr, "lbadmin: %s\n", err);
		exit(2);
	}
}

static int
run(const char *path, int argc, char **argv)
{
	struct lbadmin_row *rows = NULL;
	struct lbadmin_conn c;
	char line[LBD_CTL_LINE_MAX], reply[LBADMIN_REPLY_MAX];
	long wait_s;
	size_t n, cap = 0;

	build_request(argc, argv, line, sizeof(line), &wait_s);
	conn_open(&c, path);
	if (strcmp(argv[0], "show") == 0) {
		n = conn_show(&c, line, &rows, &cap, LBADMIN_SHOW_MAX);
		print_table(rows, n);
		free(rows);
	} else {
		conn_request(&c, line, reply, sizeof(reply));
		if (wait_s >= 0)
			return wait_drained(&c, argv[argc - 1], (unsigned)wait_s);
	}
	close(c.fd);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *sock = NULL, *conf = NULL;
	char buf[PATH_MAX];
	int ch;

	while ((ch = getopt(argc, argv, "+hs:f:")) != -1) {
		switch (ch) {
		case 'h':
			usage(stdout);
			return 0;
		case 's':
			sock = optarg;
			break;
		case 'f':
			conf = optarg;
			break;
		default:
			die_usage(NULL);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		die_usage(NULL);
	if (sock != NULL && conf != NULL)
		die_usage("-s and -f are exclusive");
	return run(socket_path(sock, conf, buf, sizeof(buf)), argc, argv);
}
