/*
 * TLS ClientHello reader (RFC 8446 4.1.2, RFC 5246 7.4.1.2, RFC 6066 3).
 *
 * A cursor walks the handshake bytes across record boundaries, skipping
 * each 5-byte record header as it meets one, so a ClientHello split over
 * several records or segments is read in place: the only bytes copied are
 * those of the server name.  Every length from the wire opens a "scope"
 * that must fit in the one around it and be consumed exactly.  Each call
 * starts again from the first byte, but only walks the record headers
 * (at most SNI_RECORDS_MAX) until the whole ClientHello is in: a client
 * trickling its ClientHello a byte or a record at a time costs a few
 * header reads a call, and the body is parsed once.
 */
#include <stdint.h>
#include <string.h>

#include "sni.h"

#define SNI_RECORD_HANDSHAKE	22
#define SNI_HANDSHAKE_HELLO	1
#define SNI_RECORD_MAX		16384	/* TLSPlaintext.length <= 2^14 */
#define SNI_EXT_SERVER_NAME	0
#define SNI_HELLO_MIN		38	/* version, random, three empty-ish vectors */

struct sni_cur {
	const unsigned char *buf;
	size_t len;		/* bytes available, at most SNI_INPUT_MAX */
	size_t pos;		/* next byte of buf */
	size_t rec_left;	/* payload bytes left in the current record */
	size_t left;		/* bytes left in the innermost length scope */
	enum sni_result fail;	/* SNI_FOUND while all is well */
};

/* Out of input: more may come, unless the bound is reached. */
static void
cur_short(struct sni_cur *c)
{
	c->fail = c->len >= SNI_INPUT_MAX ? SNI_ERROR : SNI_NEED_MORE;
}

/* Steps over the next record header; records after the first must match it. */
static int
cur_next_record(struct sni_cur *c)
{
	const unsigned char *h = c->buf + c->pos;
	size_t n;

	if (c->len - c->pos < 5) {
		cur_short(c);
		return -1;
	}
	n = (size_t)h[3] << 8 | h[4];
	/* Zero-length handshake fragments are forbidden (RFC 8446 5.1). */
	if (h[0] != SNI_RECORD_HANDSHAKE || h[1] != 3 || n == 0 || n > SNI_RECORD_MAX) {
		c->fail = SNI_ERROR;
		return -1;
	}
	c->rec_left = n;
	c->pos += 5;
	return 0;
}

/* Makes at least one payload byte available, within the current scope. */
static size_t
cur_avail(struct sni_cur *c, size_t want)
{
	size_t n;

	if (c->fail != SNI_FOUND)
		return 0;
	if (want > c->left) {
		c->fail = SNI_ERROR;	/* a length running past its container */
		return 0;
	}
	if (c->rec_left == 0 && cur_next_record(c) == -1)
		return 0;
	if (c->pos >= c->len) {
		cur_short(c);
		return 0;
	}
	n = c->len - c->pos;
	return n < c->rec_left ? n : c->rec_left;
}

static unsigned
cur_u8(struct sni_cur *c)
{
	if (cur_avail(c, 1) == 0)
		return 0;
	c->rec_left--;
	c->left--;
	return c->buf[c->pos++];
}

static size_t
cur_u16(struct sni_cur *c)
{
	size_t hi = cur_u8(c);

	return hi << 8 | cur_u8(c);
}

static void
cur_skip(struct sni_cur *c, size_t n)
{
	size_t chunk;

	if (n > c->left && c->fail == SNI_FOUND)
		c->fail = SNI_ERROR;
	while (n > 0 && (chunk = cur_avail(c, n)) > 0) {
		if (chunk > n)
			chunk = n;
		c->pos += chunk;
		c->rec_left -= chunk;
		c->left -= chunk;
		n -= chunk;
	}
}

/* Enters a scope of n bytes; returns what is left of the outer one after it. */
static size_t
cur_enter(struct sni_cur *c, size_t n)
{
	size_t outer;

	if (n > c->left) {
		if (c->fail == SNI_FOUND)
			c->fail = SNI_ERROR;
		return 0;
	}
	outer = c->left - n;
	c->left = n;
	return outer;
}

/* Leaves a scope, which must have been read to its end. */
static void
cur_leave(struct sni_cur *c, size_t outer)
{
	if (c->fail == SNI_FOUND && c->left != 0)
		c->fail = SNI_ERROR;
	c->left = outer;
}

int
sni_name_valid(const char *name, size_t len)
{
	size_t i, label = 0, digits = 0;

	if (len == 0 || len > SNI_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch == '.') {
			if (label == 0 || name[i - 1] == '-')
				return 0;
			label = digits = 0;
			continue;
		}
		if (ch == '-' && label == 0)
			return 0;
		if (ch >= '0' && ch <= '9')
			digits++;
		else if (!(ch == '-' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
			return 0;
		if (++label > 63)
			return 0;
	}
	/* A trailing dot, a trailing '-', or an all-digit last label (IPv4). */
	return label > 0 && name[len - 1] != '-' && digits != label;
}

/*
 * Whether the first need handshake bytes are all in buf: SNI_FOUND if so,
 * else SNI_NEED_MORE, or SNI_ERROR for a bad record header or an end past
 * SNI_INPUT_MAX.  Walks the record headers only.
 */
static enum sni_result
sni_extent(const unsigned char *buf, size_t len, size_t need)
{
	size_t pos = 0, got = 0, n, records;

	/* The bound on records keeps each call to a few header reads. */
	for (records = 0; records < SNI_RECORDS_MAX; records++) {
		if (pos + 5 > SNI_INPUT_MAX)
			return SNI_ERROR;
		if (pos + 5 > len)
			return SNI_NEED_MORE;
		n = (size_t)buf[pos + 3] << 8 | buf[pos + 4];
		if (buf[pos] != SNI_RECORD_HANDSHAKE || buf[pos + 1] != 3 || n == 0 ||
		    n > SNI_RECORD_MAX)
			return SNI_ERROR;
		if (got + n >= need) {
			pos += 5 + (need - got);	/* just past the last byte needed */
			return pos > SNI_INPUT_MAX ? SNI_ERROR :
			    pos > len ? SNI_NEED_MORE : SNI_FOUND;
		}
		got += n;
		pos += 5 + n;
	}
	return SNI_ERROR;
}

/* One host_name entry: copied lower-cased, then validated. */
static void
sni_host_name(struct sni_cur *c, char *name, int *found)
{
	size_t i, n = cur_u16(c);
	char tmp[SNI_NAME_MAX + 1];

	if (c->fail != SNI_FOUND)
		return;
	/* RFC 6066: at most one name of each type. */
	if (*found || n == 0 || n > SNI_NAME_MAX || n > c->left) {
		c->fail = SNI_ERROR;
		return;
	}
	for (i = 0; i < n && c->fail == SNI_FOUND; i++) {
		unsigned ch = cur_u8(c);

		tmp[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch);
	}
	if (c->fail != SNI_FOUND)
		return;
	if (!sni_name_valid(tmp, n)) {
		c->fail = SNI_ERROR;
		return;
	}
	memcpy(name, tmp, n);
	name[n] = '\0';
	*found = 1;
}

/* The server_name extension's body: a non-empty ServerNameList. */
static void
sni_server_name(struct sni_cur *c, char *name, int *found)
{
	size_t outer, n = cur_u16(c);

	if (c->fail != SNI_FOUND)
		return;
	if (n == 0 || n != c->left) {
		c->fail = SNI_ERROR;
		return;
	}
	outer = cur_enter(c, n);
	while (c->left > 0 && c->fail == SNI_FOUND) {
		/* Only host_name (0) is defined; others have no known shape. */
		if (cur_u8(c) != 0 && c->fail == SNI_FOUND)
			c->fail = SNI_ERROR;
		sni_host_name(c, name, found);
	}
	cur_leave(c, outer);
}

static void
sni_extensions(struct sni_cur *c, char *name, int *found)
{
	size_t outer, type, n;
	int seen = 0;

	outer = cur_enter(c, cur_u16(c));
	while (c->left > 0 && c->fail == SNI_FOUND) {
		size_t inner;

		type = cur_u16(c);
		n = cur_u16(c);
		inner = cur_enter(c, n);
		if (type == SNI_EXT_SERVER_NAME) {
			/* Each extension at most once (RFC 8446 4.2). */
			if (seen++ && c->fail == SNI_FOUND)
				c->fail = SNI_ERROR;
			sni_server_name(c, name, found);
		} else {
			cur_skip(c, c->left);
		}
		cur_leave(c, inner);
	}
	cur_leave(c, outer);
}

/* The ClientHello body, its length already scoped. */
static void
sni_hello(struct sni_cur *c, char *name, int *found)
{
	size_t n;

	if (cur_u8(c) != 3 && c->fail == SNI_FOUND)	/* legacy_version major */
		c->fail = SNI_ERROR;
	cur_skip(c, 1 + 32);				/* minor, random */
	if ((n = cur_u8(c)) > 32 && c->fail == SNI_FOUND)	/* session id */
		c->fail = SNI_ERROR;
	cur_skip(c, n);
	n = cur_u16(c);					/* cipher suites */
	if ((n == 0 || n % 2 != 0) && c->fail == SNI_FOUND)
		c->fail = SNI_ERROR;
	cur_skip(c, n);
	if ((n = cur_u8(c)) == 0 && c->fail == SNI_FOUND)	/* compression methods */
		c->fail = SNI_ERROR;
	cur_skip(c, n);
	/* No extensions at all is a valid (old) ClientHello. */
	if (c->left > 0)
		sni_extensions(c, name, found);
}

enum sni_result
sni_read(const unsigned char *buf, size_t len, char name[SNI_NAME_MAX + 1])
{
	struct sni_cur c = { .buf = buf, .len = len, .left = SIZE_MAX, .fail = SNI_FOUND };
	char found_name[SNI_NAME_MAX + 1];	/* copied out only once all is read */
	size_t n;
	int found = 0;

	if (c.len > SNI_INPUT_MAX)
		c.len = SNI_INPUT_MAX;
	if (len == 0)
		return SNI_NEED_MORE;
	if (buf[0] != SNI_RECORD_HANDSHAKE || (len > 1 && buf[1] != 3))
		return SNI_NOT_TLS;
	if (cur_u8(&c) != SNI_HANDSHAKE_HELLO && c.fail == SNI_FOUND)
		return SNI_ERROR;
	n = cur_u16(&c) << 8;
	n |= cur_u8(&c);
	if (c.fail != SNI_FOUND)
		return c.fail;
	/* Its 4-byte header and at least one record header come on top. */
	if (n < SNI_HELLO_MIN || n > SNI_INPUT_MAX - 9)
		return SNI_ERROR;
	if ((c.fail = sni_extent(buf, len, 4 + n)) != SNI_FOUND)
		return c.fail;
	(void)cur_enter(&c, n);
	sni_hello(&c, found_name, &found);
	cur_leave(&c, 0);	/* the extensions fill the ClientHello exactly */
	if (c.fail != SNI_FOUND)
		return c.fail;
	if (!found)
		return SNI_NO_SNI;
	memcpy(name, found_name, strlen(found_name) + 1);
	return SNI_FOUND;
}

const char *
sni_result_name(enum sni_result r)
{
	static const char *const names[] = { "need_more", "found", "no_sni", "not_tls", "error" };

	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}
