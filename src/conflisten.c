/*
 * Whole-file rules about listen addresses, checked once the services are
 * loaded: one service twice on an address is refused; several services
 * share one when they route by TLS server name (frontdoor.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "conflisten.h"
#include "sniroute.h"

struct conflisten_ctx {
	void (*report)(void *arg, int line, const char *msg);
	void *arg;
};

static void __attribute__((format(printf, 3, 4)))
conflisten_say(struct conflisten_ctx *ctx, int line, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctx->report(ctx->arg, line, msg);
}

static int
same_sockaddr(const struct lbd_sockaddr *a, const struct lbd_sockaddr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* The services listening on one address, in file order. */
struct listen_group {
	const struct lbd_sockaddr *addr;
	size_t svc[LBD_MAX_SERVICES];
	size_t n;
};

static int
service_listens_on(const struct lbd_service_conf *svc, const struct lbd_sockaddr *addr)
{
	size_t m;

	for (m = 0; m < svc->nlisten; m++)
		if (same_sockaddr(&svc->listen[m], addr))
			return 1;
	return 0;
}

/* At most one service without `sni`, one accept-proxy setting for all. */
static int
check_group_shape(struct conflisten_ctx *ctx, const struct lbd_config *conf,
    const struct listen_group *g)
{
	const struct lbd_service_conf *first = &conf->services[g->svc[0]], *def = NULL;
	size_t i;

	for (i = 0; i < g->n; i++) {
		const struct lbd_service_conf *svc = &conf->services[g->svc[i]];

		if (svc->accept_proxy != first->accept_proxy) {
			conflisten_say(ctx, svc->line, "service %s: accept-proxy differs from "
			    "service %s (line %d), which shares listen address %s: the PROXY "
			    "header comes before any routing", svc->name, first->name,
			    first->line, g->addr->text);
			return -1;
		}
		if (svc->nsni > 0)
			continue;
		if (def != NULL) {
			conflisten_say(ctx, svc->line, "service %s: listen address %s is already "
			    "used by service %s (line %d); services sharing an address need sni "
			    "names, all but one", svc->name, g->addr->text, def->name, def->line);
			return -1;
		}
		def = svc;
	}
	return 0;
}

/* No name claimed by two services of the group (sniroute.h). */
static int
check_group_names(struct conflisten_ctx *ctx, const struct lbd_config *conf,
    const struct listen_group *g)
{
	struct sniroute_input in[LBD_MAX_SERVICES];
	struct sniroute rt;
	struct sniroute_error err;
	const struct lbd_service_conf *a, *b;
	size_t i;

	for (i = 0; i < g->n; i++) {
		in[i].names = (const char *const *)conf->services[g->svc[i]].sni;
		in[i].nnames = conf->services[g->svc[i]].nsni;
	}
	switch (sniroute_build(&rt, in, g->n, &err)) {
	case SNIROUTE_OK:
		sniroute_free(&rt);
		return 0;
	case SNIROUTE_DUPLICATE:
		a = &conf->services[g->svc[err.a]];
		b = &conf->services[g->svc[err.b]];
		conflisten_say(ctx, b->line, "service %s: sni name \"%s\" on %s is already "
		    "claimed by service %s (line %d)", b->name, err.name, g->addr->text,
		    a->name, a->line);
		return -1;
	default:
		/* Bad names and two defaults were reported before; this is memory. */
		conflisten_say(ctx, conf->services[g->svc[0]].line, "out of memory");
		return -1;
	}
}

/* Services s and after on address: the group, unless an earlier one had it. */
static int
listen_group_at(const struct lbd_config *conf, size_t s, const struct lbd_sockaddr *addr,
    struct listen_group *g)
{
	size_t t;

	for (t = 0; t < s; t++)
		if (service_listens_on(&conf->services[t], addr))
			return -1;
	g->addr = addr;
	g->n = 0;
	for (t = s; t < conf->nservices && g->n < LBD_MAX_SERVICES; t++)
		if (service_listens_on(&conf->services[t], addr))
			g->svc[g->n++] = t;
	return 0;
}

/*
 * One service twice on an address is refused; several services share one
 * when they route by TLS server name (sni): all but at most one have names,
 * no name is claimed twice, and they agree on accept-proxy.
 */
int
conflisten_check(const struct lbd_config *conf,
    void (*report)(void *arg, int line, const char *msg), void *arg)
{
	struct conflisten_ctx out = { report, arg }, *ctx = &out;
	struct listen_group g;
	size_t s, l, m;
	int rc = 0;

	for (s = 0; s < conf->nservices; s++) {
		const struct lbd_service_conf *svc = &conf->services[s];

		for (l = 0; l < svc->nlisten; l++) {
			for (m = 0; m < l; m++) {
				if (!same_sockaddr(&svc->listen[l], &svc->listen[m]))
					continue;
				conflisten_say(ctx, svc->line, "service %s: listen address %s is "
				    "already used by service %s (line %d)", svc->name,
				    svc->listen[l].text, svc->name, svc->line);
				rc = -1;
			}
			if (listen_group_at(conf, s, &svc->listen[l], &g) == -1 || g.n < 2)
				continue;
			if (check_group_shape(ctx, conf, &g) == -1 ||
			    check_group_names(ctx, conf, &g) == -1)
				rc = -1;
		}
	}
	return rc;
}
