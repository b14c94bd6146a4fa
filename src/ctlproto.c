/*
 * The control protocol's request parser, shared by the master and lbadmin.
 * A pure function of its input: no allocation, no I/O, safe for any bytes
 * (a request line comes from a socket; the master checks its length, but
 * the parser never relies on that).
 */
#include <stdio.h>
#include <string.h>

#include "lbd/control.h"

#define CTL_MAX_WORDS	4	/* command and at most two arguments, plus one to spot extras */
#define CTL_ECHO_MAX	32	/* bytes of a bad word quoted back to the client */

struct ctl_word {
	const char *p;
	size_t len;
};

struct ctl_syntax {
	const char *name;
	enum lbd_ctl_command command;
	int min_args;
	int max_args;
	const char *usage;
};

static const struct ctl_syntax ctl_syntax[] = {
	{ "drain", LBD_CTL_DRAIN, 1, 1, "drain SERVICE/BACKEND" },
	{ "disable", LBD_CTL_DISABLE, 1, 1, "disable SERVICE/BACKEND" },
	{ "enable", LBD_CTL_ENABLE, 1, 1, "enable SERVICE/BACKEND" },
	{ "weight", LBD_CTL_WEIGHT, 2, 2, "weight SERVICE/BACKEND N" },
	{ "show", LBD_CTL_SHOW, 0, 1, "show [SERVICE[/BACKEND]]" },
	{ "reload", LBD_CTL_RELOAD, 0, 0, "reload" },
};

static int
ctl_is_space(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Splits line into at most CTL_MAX_WORDS words; returns how many were found
 * (CTL_MAX_WORDS means "that many or more").  One trailing \r is dropped, so
 * a client that ends its lines with \r\n (telnet, some socat modes) works.
 */
static int
ctl_split(const char *line, struct ctl_word *w)
{
	size_t len = strlen(line), i = 0;
	int n = 0;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	while (n < CTL_MAX_WORDS) {
		while (i < len && ctl_is_space(line[i]))
			i++;
		if (i == len)
			break;
		w[n].p = line + i;
		while (i < len && !ctl_is_space(line[i]))
			i++;
		w[n].len = (size_t)(line + i - w[n].p);
		n++;
	}
	return n;
}

/* Quotes up to CTL_ECHO_MAX bytes of a word, non-printable bytes as '?'. */
static void
ctl_echo(char *buf, size_t buflen, const struct ctl_word *w)
{
	size_t i, n = w->len < CTL_ECHO_MAX ? w->len : CTL_ECHO_MAX;

	if (buflen == 0)
		return;
	if (n > buflen - 1)
		n = buflen - 1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)w->p[i];

		buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[n] = '\0';
	if (w->len > n && n >= 3)
		memcpy(buf + n - 3, "...", 3);
}

static int
ctl_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* Copies a valid name (1..LBD_NAME_LEN-1 of [A-Za-z0-9._-]) into dst. */
static int
ctl_name(char *dst, const char *p, size_t len)
{
	size_t i;

	if (len == 0 || len >= LBD_NAME_LEN)
		return -1;
	for (i = 0; i < len; i++)
		if (!ctl_name_char(p[i]))
			return -1;
	memcpy(dst, p, len);
	dst[len] = '\0';
	return 0;
}

/* "SERVICE/BACKEND", or "SERVICE" alone when backend_optional. */
static int
ctl_target(struct lbd_ctl_request *req, const struct ctl_word *w,
    int backend_optional, char *err, size_t errlen)
{
	const char *slash = memchr(w->p, '/', w->len);
	char echo[CTL_ECHO_MAX + 1];
	size_t slen = slash != NULL ? (size_t)(slash - w->p) : w->len;

	ctl_echo(echo, sizeof(echo), w);
	if (slash == NULL && !backend_optional) {
		snprintf(err, errlen, "'%s': expected SERVICE/BACKEND", echo);
		return -1;
	}
	if (ctl_name(req->service, w->p, slen) == -1 || (slash != NULL &&
	    ctl_name(req->backend, slash + 1, w->len - slen - 1) == -1)) {
		snprintf(err, errlen, "'%s': a name is 1 to %d letters, digits, "
		    "'.', '_' or '-'%s", echo, LBD_NAME_LEN - 1,
		    backend_optional ? "" : ", as SERVICE/BACKEND");
		return -1;
	}
	return 0;
}

/* Decimal digits only: no sign, no blanks, no 0x, no exponent. */
static int
ctl_weight(struct lbd_ctl_request *req, const struct ctl_word *w, char *err,
    size_t errlen)
{
	char echo[CTL_ECHO_MAX + 1];
	uint32_t v = 0;
	size_t i;

	ctl_echo(echo, sizeof(echo), w);
	for (i = 0; i < w->len; i++) {
		if (w->p[i] < '0' || w->p[i] > '9') {
			snprintf(err, errlen, "weight '%s' is not a number 0..%d",
			    echo, LBD_CTL_MAX_WEIGHT);
			return -1;
		}
		v = v * 10 + (uint32_t)(w->p[i] - '0');
		if (v > LBD_CTL_MAX_WEIGHT) {
			snprintf(err, errlen, "weight '%s' is out of range 0..%d",
			    echo, LBD_CTL_MAX_WEIGHT);
			return -1;
		}
	}
	req->weight = v;
	return 0;
}

static const struct ctl_syntax *
ctl_lookup(const struct ctl_word *w)
{
	size_t i;

	for (i = 0; i < sizeof(ctl_syntax) / sizeof(ctl_syntax[0]); i++)
		if (strlen(ctl_syntax[i].name) == w->len &&
		    memcmp(ctl_syntax[i].name, w->p, w->len) == 0)
			return &ctl_syntax[i];
	return NULL;
}

int
ctl_parse(const char *line, struct lbd_ctl_request *req, char *err, size_t errlen)
{
	struct ctl_word w[CTL_MAX_WORDS];
	const struct ctl_syntax *syn;
	char echo[CTL_ECHO_MAX + 1];
	int n, nargs;

	memset(req, 0, sizeof(*req));
	if ((n = ctl_split(line, w)) == 0) {
		snprintf(err, errlen, "empty request");
		return -1;
	}
	if ((syn = ctl_lookup(&w[0])) == NULL) {
		ctl_echo(echo, sizeof(echo), &w[0]);
		snprintf(err, errlen, "unknown command '%s'", echo);
		return -1;
	}
	nargs = n - 1;
	if (nargs < syn->min_args || nargs > syn->max_args) {
		snprintf(err, errlen, "%s arguments: usage: %s",
		    nargs < syn->min_args ? "missing" : "too many", syn->usage);
		return -1;
	}
	req->command = syn->command;
	if (nargs >= 1 && ctl_target(req, &w[1], syn->command == LBD_CTL_SHOW,
	    err, errlen) == -1)
		return -1;
	if (syn->command == LBD_CTL_WEIGHT && ctl_weight(req, &w[2], err, errlen) == -1)
		return -1;
	return 0;
}

int
ctl_name_valid(const char *name)
{
	char copy[LBD_NAME_LEN];

	return ctl_name(copy, name, strnlen(name, LBD_NAME_LEN)) == 0;
}
