/*
 * From the services of a configuration to the front door of one listener.
 * Kept apart from frontdoor.c so that the door itself knows nothing of the
 * configuration file.
 */
#include <stdlib.h>
#include <string.h>

#include "doorconf.h"

static int
listens_on(const struct lbd_service_conf *svc, const struct lbd_sockaddr *addr)
{
	size_t m;

	for (m = 0; m < svc->nlisten; m++)
		if (svc->listen[m].len == addr->len &&
		    memcmp(&svc->listen[m].ss, &addr->ss, addr->len) == 0)
			return 1;
	return 0;
}

/* Whether the door has anything to do: else the worker skips it entirely. */
static int
doorconf_needed(const struct doorconf *dc)
{
	size_t i;

	if (dc->conf.accept_proxy || sniroute_needs_hello(&dc->route))
		return 1;
	for (i = 0; i < dc->conf.ncandidates; i++)
		if (dc->candidates[i].allow->n > 0 || dc->candidates[i].deny->n > 0)
			return 1;
	return 0;
}

int
doorconf_build(struct doorconf *dc, const struct lbd_config *conf,
    const struct lbd_sockaddr *addr)
{
	struct sniroute_input *in;
	struct sniroute_error err;
	size_t s, n = 0;
	int rc;

	memset(dc, 0, sizeof(*dc));
	dc->route.fallback = -1;
	for (s = 0; s < conf->nservices; s++)
		n += listens_on(&conf->services[s], addr);
	dc->candidates = calloc(n + 1, sizeof(*dc->candidates));
	in = calloc(n + 1, sizeof(*in));
	if (dc->candidates == NULL || in == NULL) {
		free(in);
		return -1;
	}
	for (n = 0, s = 0; s < conf->nservices; s++) {
		const struct lbd_service_conf *svc = &conf->services[s];

		if (!listens_on(svc, addr))
			continue;
		dc->candidates[n] = (struct frontdoor_candidate){
			.service = s, .allow = &svc->allow, .deny = &svc->deny };
		in[n].names = (const char *const *)svc->sni;
		in[n].nnames = svc->nsni;
		/* config_load made them agree on one address (conflisten.c). */
		dc->conf.accept_proxy = svc->accept_proxy;
		n++;
	}
	rc = n == 0 || sniroute_build(&dc->route, in, n, &err) != SNIROUTE_OK ? -1 : 0;
	free(in);
	if (rc == -1)
		return -1;
	dc->conf.route = &dc->route;
	dc->conf.candidates = dc->candidates;
	dc->conf.ncandidates = n;
	dc->needed = doorconf_needed(dc);
	return 0;
}

void
doorconf_free(struct doorconf *dc)
{
	free(dc->candidates);
	dc->candidates = NULL;
	sniroute_free(&dc->route);
	memset(&dc->conf, 0, sizeof(dc->conf));
	dc->needed = 0;
}
