/*
 * The front door's decision, in the order the bytes come: the PROXY header
 * gives the client address, the address may already be refused by every
 * service, the ClientHello picks the service, and that service's lists
 * have the last word.
 */
#include <string.h>

#include "frontdoor.h"
#include "proxyparse.h"

void
frontdoor_init(struct frontdoor *door, const struct frontdoor_conf *conf,
    const struct sockaddr *peer, socklen_t peerlen)
{
	memset(door, 0, sizeof(*door));
	door->conf = conf;
	if (peerlen > sizeof(door->client))
		peerlen = sizeof(door->client);
	memcpy(&door->client, peer, peerlen);
}

static int
admitted(const struct frontdoor_candidate *c, const struct sockaddr *client)
{
	if (c->deny != NULL && c->deny->n > 0 && cidr_set_contains(c->deny, client))
		return 0;
	return c->allow == NULL || c->allow->n == 0 || cidr_set_contains(c->allow, client);
}

/* A v2 header announcing more than FRONTDOOR_PROXY_MAX is refused before it arrives. */
static int
proxy_too_long(const unsigned char *buf, size_t len)
{
	return len >= PROXY_V2_FIXED && buf[0] == 0x0d &&
	    PROXY_V2_FIXED + ((size_t)buf[14] << 8 | buf[15]) > FRONTDOOR_PROXY_MAX;
}

/* -1 on a bad header, 0 for more, 1 once read (door->skip set). */
static int
frontdoor_proxy(struct frontdoor *door, const unsigned char *buf, size_t len)
{
	struct proxy_info pi;
	size_t consumed = 0, n = len < FRONTDOOR_PROXY_MAX ? len : FRONTDOOR_PROXY_MAX;
	int rc;

	if (proxy_too_long(buf, len))
		return -1;
	rc = proxy_parse(buf, n, &pi, &consumed);
	if (rc == 0)
		return len >= FRONTDOOR_PROXY_MAX ? -1 : 0;
	if (rc == -1)
		return -1;
	/*
	 * LOCAL (a health check from the proxy itself), v1 UNKNOWN, UDP or
	 * UNIX sources: the connection's own peer stays the client.
	 */
	if (!pi.local && pi.socktype == SOCK_STREAM &&
	    (pi.src.ss_family == AF_INET || pi.src.ss_family == AF_INET6))
		door->client = pi.src;
	door->skip = consumed;
	door->proxy_done = 1;
	return 1;
}

/* Whether some candidate would take this client, whatever the server name. */
static int
anyone_admits(const struct frontdoor_conf *conf, const struct sockaddr *client)
{
	size_t i;

	for (i = 0; i < conf->ncandidates; i++)
		if (admitted(&conf->candidates[i], client))
			return 1;
	return 0;
}

static enum frontdoor_verdict
reject(struct frontdoor_result *res, enum frontdoor_reason reason)
{
	res->reason = reason;
	return FRONTDOOR_REJECT;
}

/* The candidate for the bytes after the PROXY header, or -1 (res->reason set). */
static long
frontdoor_route(const struct frontdoor_conf *conf, const unsigned char *buf, size_t len,
    struct frontdoor_result *res, int *more)
{
	long cand;

	*more = 0;
	if (conf->route == NULL)
		return 0;
	if (!sniroute_needs_hello(conf->route))
		return sniroute_find(conf->route, NULL);
	res->sni = sni_read(buf, len, res->name);
	switch (res->sni) {
	case SNI_NEED_MORE:
		*more = 1;
		return -1;
	case SNI_ERROR:
		res->reason = FRONTDOOR_BAD_HELLO;
		return -1;
	default:
		break;
	}
	cand = sniroute_find(conf->route, res->sni == SNI_FOUND ? res->name : NULL);
	if (cand < 0)
		res->reason = FRONTDOOR_SNI_MISS;
	return cand;
}

enum frontdoor_verdict
frontdoor_feed(struct frontdoor *door, const unsigned char *buf, size_t len,
    struct frontdoor_result *res)
{
	const struct frontdoor_conf *conf = door->conf;
	const struct sockaddr *client = (const struct sockaddr *)&door->client;
	long cand;
	int rc, more;

	memset(res, 0, sizeof(*res));
	res->sni = SNI_NEED_MORE;
	res->client = door->client;
	if (conf->accept_proxy && !door->proxy_done) {
		if ((rc = frontdoor_proxy(door, buf, len)) == -1)
			return reject(res, FRONTDOOR_PROXY_ERROR);
		if (rc == 0)
			return FRONTDOOR_NEED_MORE;
	}
	res->client = door->client;
	if (conf->ncandidates == 0 || !anyone_admits(conf, client))
		return reject(res, FRONTDOOR_DENIED);
	cand = frontdoor_route(conf, buf + door->skip, len - door->skip, res, &more);
	if (more)
		return FRONTDOOR_NEED_MORE;
	if (cand < 0)
		return FRONTDOOR_REJECT;	/* reason set by frontdoor_route */
	if ((size_t)cand >= conf->ncandidates)
		return reject(res, FRONTDOOR_SNI_MISS);	/* a table built for another list */
	if (!admitted(&conf->candidates[cand], client))
		return reject(res, FRONTDOOR_DENIED);
	res->service = conf->candidates[cand].service;
	res->skip = door->skip;
	return FRONTDOOR_ACCEPT;
}

const char *
frontdoor_reason_name(enum frontdoor_reason reason)
{
	switch (reason) {
	case FRONTDOOR_PROXY_ERROR:
		return "proxy_error";
	case FRONTDOOR_DENIED:
		return "denied";
	case FRONTDOOR_SNI_MISS:
		return "sni_miss";
	default:
		return "bad_hello";
	}
}
