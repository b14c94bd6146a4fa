/*
 * Routes of lbstat -l.  Read-only by construction: GET and HEAD only, and
 * nothing here can reach the control socket.  Every connection is closed
 * after one response, so a client never holds a slot while idle.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "statexport.h"
#include "statroute.h"

#define HEAD_LEN	512

#define CT_TEXT		"text/plain; charset=utf-8"
#define CT_PROM		"text/plain; version=0.0.4; charset=utf-8"
#define CT_JSON		"application/json"
#define CT_HTML		"text/html; charset=utf-8"
/* The page may run its own inline script and fetch from here, nothing else. */
#define PAGE_CSP	"Content-Security-Policy: default-src 'none'; " \
	"script-src 'unsafe-inline'; style-src 'unsafe-inline'; " \
	"connect-src 'self'; img-src data:\r\n"

const char statroute_busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: " CT_TEXT "\r\nContent-Length: 36\r\nRetry-After: 1\r\n"
    "Connection: close\r\n\r\nlbstat: too many clients, try again\n";

enum route { ROUTE_PAGE, ROUTE_METRICS, ROUTE_STATS, ROUTE_HISTORY, ROUTE_NONE };

struct body {
	int status;
	const char *type;
	const char *extra;	/* more header lines, each ending in CRLF */
	char *text;		/* owned by open_memstream */
	size_t len;
};

static const char *
reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

static enum route
route_of(const char *path)
{
	if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)
		return ROUTE_PAGE;
	if (strcmp(path, "/metrics") == 0)
		return ROUTE_METRICS;
	if (strcmp(path, "/stats.json") == 0)
		return ROUTE_STATS;
	if (strcmp(path, "/history.json") == 0)
		return ROUTE_HISTORY;
	return ROUTE_NONE;
}

/* A body for status: what the route renders, or a one-line reason. */
static void
render(FILE *f, struct body *b, enum route rt, const struct statroute_state *s)
{
	if (b->status != 200) {
		fprintf(f, "lbstat: %d %s\n", b->status, reason(b->status));
		return;
	}
	switch (rt) {
	case ROUTE_PAGE:
		fwrite(statpage_html, 1, statpage_html_len, f);
		break;
	case ROUTE_METRICS:
		statexport_prom(f, s->snap, s->filter);
		break;
	case ROUTE_STATS:
		statexport_json(f, s->snap, s->filter);
		break;
	default:
		stathist_json(f, s->hist);
		break;
	}
}

/* Status, type and extra headers for a request; the body comes later. */
static enum route
classify(enum httpreq_status st, const struct httpreq *req,
    const struct statroute_state *s, struct body *b)
{
	static const int codes[] = { [HTTPREQ_BAD] = 400,
	    [HTTPREQ_TOO_LONG_URI] = 414, [HTTPREQ_TOO_LARGE] = 431 };
	enum route rt = st == HTTPREQ_DONE ? route_of(req->path) : ROUTE_NONE;

	memset(b, 0, sizeof(*b));
	b->status = 200;
	b->type = CT_TEXT;
	b->extra = "";
	if (st != HTTPREQ_DONE)
		b->status = codes[st];
	else if (req->method == HTTPREQ_OTHER) {
		b->status = 405;
		b->extra = "Allow: GET, HEAD\r\n";
	} else if (rt == ROUTE_NONE)
		b->status = 404;
	else if (s->snap == NULL && (rt == ROUTE_METRICS || rt == ROUTE_STATS))
		b->status = 503;
	else if (rt == ROUTE_PAGE) {
		b->type = CT_HTML;
		b->extra = PAGE_CSP;
	} else
		b->type = rt == ROUTE_METRICS ? CT_PROM : CT_JSON;
	return b->status == 200 ? rt : ROUTE_NONE;
}

/* The 503 body says why there are no figures: the segment's path and error. */
static void
render_503(FILE *f, const struct statroute_state *s)
{
	fprintf(f, "lbstat: 503 %s: %s\n", reason(503),
	    s->why != NULL && s->why[0] != '\0' ? s->why : "no stats segment");
}

static int
assemble(const struct body *b, int head_only, struct statroute_reply *r)
{
	char head[HEAD_LEN];
	int n;

	n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nCache-Control: no-store\r\n"
	    "X-Content-Type-Options: nosniff\r\n%sConnection: close\r\n\r\n",
	    b->status, reason(b->status), b->type, b->len, b->extra);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -1;
	r->status = b->status;
	r->len = (size_t)n + (head_only ? 0 : b->len);
	if ((r->buf = malloc(r->len)) == NULL)
		return -1;
	memcpy(r->buf, head, (size_t)n);
	if (!head_only)
		memcpy(r->buf + n, b->text, b->len);
	return 0;
}

int
statroute_reply(enum httpreq_status st, const struct httpreq *req,
    const struct statroute_state *s, struct statroute_reply *r)
{
	struct body b;
	enum route rt;
	FILE *f;
	int rc;

	memset(r, 0, sizeof(*r));
	rt = classify(st, req, s, &b);
	if ((f = open_memstream(&b.text, &b.len)) == NULL)
		return -1;
	if (b.status == 503)
		render_503(f, s);
	else
		render(f, &b, rt, s);
	if (fclose(f) == EOF) {
		free(b.text);
		return -1;
	}
	rc = assemble(&b, st == HTTPREQ_DONE && req->method == HTTPREQ_HEAD, r);
	free(b.text);
	return rc;
}
