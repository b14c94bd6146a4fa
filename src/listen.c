/*
 * The master's listening sockets.  See listen.h.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "doorconf.h"
#include "listen.h"

#define LISTEN_BACKLOG		4096

static int
listener_bind(const struct lbd_sockaddr *addr, char *err, size_t errlen)
{
	int fd, one = 1;

	fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "listen %s: socket: %s", addr->text, strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* "0.0.0.0:80" and "[::]:80" side by side, as the example config has. */
	if (addr->ss.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) == -1) {
		snprintf(err, errlen, "listen %s: bind: %s", addr->text, strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, LISTEN_BACKLOG) == -1) {
		snprintf(err, errlen, "listen %s: listen: %s", addr->text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int
find_listener(const struct listener *ls, size_t n, const struct lbd_sockaddr *addr)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ls[i].fd != -1 && ls[i].addr.len == addr->len &&
		    memcmp(&ls[i].addr.ss, &addr->ss, addr->len) == 0)
			return (int)i;
	return -1;
}

/* Undoes listeners_for's work on ls[0..k): fresh sockets closed, doors freed. */
static void
listeners_unwind(struct listener *ls, size_t k, const struct listener *old, size_t nold)
{
	while (k-- > 0) {
		if (find_listener(old, nold, &ls[k].addr) < 0)
			close(ls[k].fd);
		doorconf_free(&ls[k].door);
	}
	free(ls);
}

/* Binds addr anew, or takes its socket over from old; builds its door. */
static int
listener_open(struct listener *l, const struct lbd_config *conf,
    const struct listener *old, size_t nold, char *err, size_t errlen)
{
	long fallback;
	int i;

	if (doorconf_build(&l->door, conf, &l->addr) == -1) {
		doorconf_free(&l->door);
		snprintf(err, errlen, "listen %s: out of memory", l->addr.text);
		return -1;
	}
	/* Connections a front door turns away are counted on the default. */
	fallback = l->door.route.fallback;
	l->service = l->door.candidates[fallback >= 0 ? (size_t)fallback : 0].service;
	if ((i = find_listener(old, nold, &l->addr)) >= 0) {
		l->fd = old[i].fd;
		return 0;
	}
	if ((l->fd = listener_bind(&l->addr, err, errlen)) == -1) {
		doorconf_free(&l->door);
		return -1;
	}
	return 0;
}

/*
 * The listeners conf needs, one per address (services that share one by
 * sni share its listener): those already open in old (moved out of it, so
 * they are never closed and re-opened) and freshly bound ones.  On failure
 * the fresh ones are closed and old is left as it was.
 */
struct listener *
listeners_for(const struct lbd_config *conf, struct listener *old, size_t nold,
    size_t *n, char *err, size_t errlen)
{
	struct listener *ls;
	size_t total = 0, s, l, k = 0;

	for (s = 0; s < conf->nservices; s++)
		total += conf->services[s].nlisten;
	if ((ls = calloc(total, sizeof(*ls))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (s = 0; s < conf->nservices; s++)
		for (l = 0; l < conf->services[s].nlisten; l++) {
			if (find_listener(ls, k, &conf->services[s].listen[l]) >= 0)
				continue;	/* shared with an earlier service */
			ls[k].addr = conf->services[s].listen[l];
			if (listener_open(&ls[k], conf, old, nold, err, errlen) == -1) {
				listeners_unwind(ls, k, old, nold);
				return NULL;
			}
			k++;
		}
	*n = k;
	return ls;
}

/* Closes the listeners of old that next does not keep, and frees old. */
void
listeners_retire(struct listener *old, size_t nold, const struct listener *next,
    size_t nnext)
{
	size_t i, j;
	int kept;

	for (i = 0; i < nold; i++) {
		for (kept = 0, j = 0; j < nnext && !kept; j++)
			kept = next[j].fd == old[i].fd;
		if (!kept && old[i].fd != -1)
			close(old[i].fd);
		doorconf_free(&old[i].door);
	}
	free(old);
}
