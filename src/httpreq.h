/*
 * The head of an HTTP/1.x request, as lbstat's status server needs it:
 * method, path and version, nothing else.  Pure: bytes in, a verdict out,
 * so every malformed or oversized request can be unit-tested.
 */
#ifndef LBD_HTTPREQ_H
#define LBD_HTTPREQ_H

#include <stddef.h>

#define HTTPREQ_PATH_LEN	256	/* longer targets are refused (414) */

enum httpreq_status {
	HTTPREQ_PARTIAL,	/* no blank line yet: read more */
	HTTPREQ_DONE,		/* a whole head, fields filled */
	HTTPREQ_BAD,		/* not an HTTP/1.x request line: 400 */
	HTTPREQ_TOO_LONG_URI,	/* target longer than HTTPREQ_PATH_LEN - 1: 414 */
	HTTPREQ_TOO_LARGE,	/* max bytes without a blank line: 431 */
};

enum httpreq_method { HTTPREQ_GET, HTTPREQ_HEAD, HTTPREQ_OTHER };

struct httpreq {
	enum httpreq_method method;
	char path[HTTPREQ_PATH_LEN];	/* the target without its query string */
	int minor;			/* the x of HTTP/1.x */
	size_t head_len;		/* bytes up to and including the blank line */
};

/*
 * Looks at the first len bytes a client sent; max is the most a head may
 * take.  Header fields are skipped: the server answers the same whatever
 * they say, and closes every connection after one response.
 */
enum httpreq_status httpreq_parse(const char *buf, size_t len, size_t max,
    struct httpreq *req);

#endif
