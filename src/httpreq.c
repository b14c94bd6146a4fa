/*
 * A deliberately small reader of HTTP/1.x request heads (RFC 9112 section
 * 3): the request line is checked strictly, header fields only bounded.
 */
#include <string.h>

#include "httpreq.h"

#define METHOD_LEN	16

/* Offset just past the blank line that ends the head, or 0 when none yet.
 * A bare LF ends lines too (RFC 9112 2.2 lets a server accept it). */
static size_t
head_end(const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 2;
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Copies the token at *p up to a space into out; -1 when too long or empty. */
static int
token(const char **p, const char *end, char *out, size_t outlen)
{
	size_t n = 0;

	while (*p < end && **p != ' ' && **p != '\r' && **p != '\n') {
		if (n + 1 >= outlen)
			return -1;
		out[n++] = *(*p)++;
	}
	out[n] = '\0';
	return n == 0 ? -1 : 0;
}

static enum httpreq_method
method_of(const char *m)
{
	if (strcmp(m, "GET") == 0)
		return HTTPREQ_GET;
	if (strcmp(m, "HEAD") == 0)
		return HTTPREQ_HEAD;
	return HTTPREQ_OTHER;
}

/* "HTTP/1.0" or "HTTP/1.1" then the end of the line. */
static int
version(const char *p, const char *end, int *minor)
{
	if (end - p < 8 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9')
		return -1;
	*minor = p[7] - '0';
	p += 8;
	if (p < end && *p == '\r')
		p++;
	return p < end && *p == '\n' ? 0 : -1;
}

enum httpreq_status
httpreq_parse(const char *buf, size_t len, size_t max, struct httpreq *req)
{
	char method[METHOD_LEN];
	const char *p = buf, *end, *q;
	size_t n = len < max ? len : max;

	memset(req, 0, sizeof(*req));
	if ((req->head_len = head_end(buf, n)) == 0)
		return len >= max ? HTTPREQ_TOO_LARGE : HTTPREQ_PARTIAL;
	end = buf + req->head_len;
	if (token(&p, end, method, sizeof(method)) == -1 || p >= end || *p++ != ' ')
		return HTTPREQ_BAD;
	req->method = method_of(method);
	if (p >= end || *p != '/')
		return HTTPREQ_BAD;	/* origin form only: no proxy, no "*" */
	for (q = p; q < end && *q != ' ' && *q != '\r' && *q != '\n'; q++)
		;
	if ((size_t)(q - p) >= sizeof(req->path))
		return HTTPREQ_TOO_LONG_URI;
	if (token(&p, end, req->path, sizeof(req->path)) == -1 || p >= end || *p++ != ' ')
		return HTTPREQ_BAD;
	req->path[strcspn(req->path, "?#")] = '\0';
	return version(p, end, &req->minor) == -1 ? HTTPREQ_BAD : HTTPREQ_DONE;
}
