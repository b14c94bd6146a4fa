/*
 * Whole-file rules about listen addresses, checked once the services are
 * loaded: one service twice on an address is refused; several services
 * share one when they route by TLS server name (frontdoor.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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
	size_t *svc;
	size_t n;
};

/* One listen line of one service; sorted by address, then file order. */
struct listen_use {
	const struct lbd_sockaddr *addr;
	size_t svc;
	size_t l;
};

static int
use_cmp(const void *pa, const void *pb)
{
	const struct listen_use *a = pa, *b = pb;
	int c;

	if (a->addr->len != b->addr->len)
		return a->addr->len < b->addr->len ? -1 : 1;
	if ((c = memcmp(&a->addr->ss, &b->addr->ss, a->addr->len)) != 0)
		return c;
	if (a->svc != b->svc)
		return a->svc < b->svc ? -1 : 1;
	return a->l < b->l ? -1 : a->l > b->l;
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
	struct sniroute_input *in;
	struct sniroute rt;
	struct sniroute_error err;
	const struct lbd_service_conf *a, *b;
	size_t i;
	int rc;

	if ((in = calloc(g->n, sizeof(*in))) == NULL) {
		conflisten_say(ctx, conf->services[g->svc[0]].line, "out of memory");
		return -1;
	}
	for (i = 0; i < g->n; i++) {
		in[i].names = (const char *const *)conf->services[g->svc[i]].sni;
		in[i].nnames = conf->services[g->svc[i]].nsni;
	}
	rc = sniroute_build(&rt, in, g->n, &err);
	free(in);
	switch (rc) {
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

/*
 * The group of uses[first..last): one service twice on the address is
 * refused; several services must route by sni.
 */
static int
check_group(struct conflisten_ctx *ctx, const struct lbd_config *conf,
    const struct listen_use *uses, size_t first, size_t last, size_t *svc)
{
	struct listen_group g = { uses[first].addr, svc, 0 };
	size_t i;
	int rc = 0;

	for (i = first; i < last; i++) {
		const struct lbd_service_conf *sc = &conf->services[uses[i].svc];

		if (g.n > 0 && g.svc[g.n - 1] == uses[i].svc) {
			conflisten_say(ctx, sc->line, "service %s: listen address %s is "
			    "already used by service %s (line %d)", sc->name,
			    sc->listen[uses[i].l].text, sc->name, sc->line);
			rc = -1;
			continue;
		}
		g.svc[g.n++] = uses[i].svc;
	}
	if (g.n >= 2 && (check_group_shape(ctx, conf, &g) == -1 ||
	    check_group_names(ctx, conf, &g) == -1))
		rc = -1;
	return rc;
}

/*
 * One service twice on an address is refused; several services share one
 * when they route by TLS server name (sni): all but at most one have names,
 * no name is claimed twice, and they agree on accept-proxy.  Sorted, so
 * 10 000 services cost n log n, not n squared.
 */
int
conflisten_check(const struct lbd_config *conf,
    void (*report)(void *arg, int line, const char *msg), void *arg)
{
	struct conflisten_ctx out = { report, arg }, *ctx = &out;
	struct listen_use *uses;
	size_t s, l, n = 0, first, *svc;
	int rc = 0;

	for (s = 0; s < conf->nservices; s++)
		n += conf->services[s].nlisten;
	uses = calloc(n + 1, sizeof(*uses));
	svc = calloc(n + 1, sizeof(*svc));
	if (uses == NULL || svc == NULL) {
		free(uses);
		free(svc);
		conflisten_say(ctx, 0, "out of memory");
		return -1;
	}
	n = 0;
	for (s = 0; s < conf->nservices; s++)
		for (l = 0; l < conf->services[s].nlisten; l++)
			uses[n++] = (struct listen_use){ &conf->services[s].listen[l], s, l };
	qsort(uses, n, sizeof(*uses), use_cmp);
	for (first = 0; first < n; first = l) {
		for (l = first + 1; l < n && same_sockaddr(uses[l].addr, uses[first].addr); l++)
			;
		if (check_group(ctx, conf, uses, first, l, svc) == -1)
			rc = -1;
	}
	free(uses);
	free(svc);
	return rc;
}
