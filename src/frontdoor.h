/*
 * The front door of an accepted connection, before any backend is chosen:
 * an optional PROXY protocol header (accept-proxy), the TLS server name
 * when services share the listen address by `sni`, and the allow and deny
 * lists of the service it lands on.  Socket-free: the caller reads, feeds
 * every byte read so far, and acts on the verdict.
 *
 * On ACCEPT the caller drops the first `skip` bytes (the PROXY header) and
 * forwards the rest unchanged, the ClientHello included: TLS stays end to
 * end.  The caller bounds the wait (connect-timeout) and closes on EOF;
 * the input is bounded here (FRONTDOOR_INPUT_MAX).
 */
#ifndef LBD_FRONTDOOR_H
#define LBD_FRONTDOOR_H

#include <stddef.h>
#include <sys/socket.h>

#include "cidr.h"
#include "sni.h"
#include "sniroute.h"

#define FRONTDOOR_PROXY_MAX	4096	/* a PROXY v2 header with its TLVs, at most */
#define FRONTDOOR_INPUT_MAX	(FRONTDOOR_PROXY_MAX + SNI_INPUT_MAX)

/* One service that may take connections on this listener. */
struct frontdoor_candidate {
	size_t service;			/* the caller's index, returned on ACCEPT */
	const struct cidr_set *allow;	/* borrowed; NULL or empty: every client */
	const struct cidr_set *deny;	/* borrowed; NULL or empty: no client */
};

/* Per listener, built once per (re)load; everything borrowed. */
struct frontdoor_conf {
	int accept_proxy;		/* a PROXY v1 or v2 header must come first */
	const struct sniroute *route;	/* over candidates[]; NULL: candidate 0 */
	const struct frontdoor_candidate *candidates;
	size_t ncandidates;
};

enum frontdoor_verdict {
	FRONTDOOR_NEED_MORE,
	FRONTDOOR_ACCEPT,
	FRONTDOOR_REJECT,
};

enum frontdoor_reason {
	FRONTDOOR_PROXY_ERROR,		/* missing, malformed or oversized PROXY header */
	FRONTDOOR_DENIED,		/* the client address is denied, or not allowed */
	FRONTDOOR_SNI_MISS,		/* no service for this name and no default */
	FRONTDOOR_BAD_HELLO,		/* a malformed or oversized ClientHello */
};

struct frontdoor_result {
	size_t service;			/* ACCEPT: the candidate's service */
	size_t skip;			/* ACCEPT: PROXY header bytes to drop */
	struct sockaddr_storage client;	/* the effective client (after PROXY) */
	enum frontdoor_reason reason;	/* REJECT */
	enum sni_result sni;		/* what the ClientHello said, if it was read */
	char name[SNI_NAME_MAX + 1];	/* the server name if sni == SNI_FOUND, else "" */
};

/* Per connection; owns nothing, so there is nothing to free. */
struct frontdoor {
	const struct frontdoor_conf *conf;
	struct sockaddr_storage client;	/* the peer, then the PROXY source */
	size_t skip;			/* the PROXY header's length, once read */
	int proxy_done;
};

void frontdoor_init(struct frontdoor *door, const struct frontdoor_conf *conf,
    const struct sockaddr *peer, socklen_t peerlen);

/*
 * Judges buf[0..len), all the bytes read from the client so far (the same
 * start each time).  Feed it at once with len 0: when neither a PROXY header
 * nor a ClientHello is needed, the verdict comes without waiting for the
 * client, which matters for protocols where the server speaks first.
 * res is filled on ACCEPT and REJECT.  Never reads past buf[len - 1].
 */
enum frontdoor_verdict frontdoor_feed(struct frontdoor *door, const unsigned char *buf,
    size_t len, struct frontdoor_result *res);

const char *frontdoor_reason_name(enum frontdoor_reason reason);

#endif
