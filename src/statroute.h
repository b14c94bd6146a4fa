/*
 * What lbstat's HTTP server answers: a parsed request and the latest
 * figures in, one whole response (status line, headers, body) out.  No
 * sockets here; statserve.c moves the bytes.
 */
#ifndef LBD_STATROUTE_H
#define LBD_STATROUTE_H

#include <stddef.h>

#include "httpreq.h"
#include "stathist.h"
#include "statview.h"

struct statroute_state {
	const struct statview_snap *snap;	/* latest sample, NULL when none */
	const char *why;			/* with snap NULL: why there is none */
	const struct stathist *hist;
	const struct statview_filter *filter;
};

struct statroute_reply {
	char *buf;				/* owned: free() */
	size_t len;
	int status;				/* 200, 404, ... for the log */
};

/* The response to a request head that parsed as st; -1 when out of memory. */
int statroute_reply(enum httpreq_status st, const struct httpreq *req,
    const struct statroute_state *s, struct statroute_reply *r);

/* The canned answer to a client over the limit, sent without reading it. */
extern const char statroute_busy[];

/* The page, src/statpage.html turned into an array at build time. */
extern const unsigned char statpage_html[];
extern const size_t statpage_html_len;

#endif
