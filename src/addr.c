/*
 * Durations, sizes and addresses, as the config file and the control protocol
 * write them.  Pure functions: unit-tested in tests/unit/test_addr.c.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

/* A number and a unit, as "3s" or "512K". */
struct unit {
	const char *name;
	uint64_t scale;
};

struct scaled_kind {
	const struct unit *units;	/* ends with a NULL name; "" is no unit */
	uint64_t max;			/* at most UINT32_MAX */
	const char *not_number, *no_unit, *bad_unit, *too_big;
};

static const struct unit duration_units[] = {
	{ "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 }, { "h", 3600 * 1000 },
	{ NULL, 0 },
};

static const struct scaled_kind duration_kind = {
	duration_units, UINT32_MAX,
	"a duration is a number followed by ms, s, m or h",
	"a duration needs a unit: ms, s, m or h",
	"unknown duration unit (use ms, s, m or h)",
	"duration too long",
};

static const struct unit size_units[] = {
	{ "", 1 }, { "K", 1 << 10 }, { "k", 1 << 10 }, { "M", 1 << 20 },
	{ "m", 1 << 20 }, { "G", 1 << 30 }, { "g", 1 << 30 },
	{ NULL, 0 },
};

static const struct scaled_kind size_kind = {
	size_units, UINT32_MAX,
	"a size is a number of bytes, or followed by K, M or G",
	NULL,				/* a bare number is bytes */
	"unknown size unit (use K, M or G)",
	"size too large",
};

static int
parse_scaled(const char *text, const struct scaled_kind *kind, uint32_t *out,
    const char **why)
{
	const char *p = text;
	const struct unit *u;
	uint64_t value = 0;

	while (isspace((unsigned char)*p))
		p++;
	if (!isdigit((unsigned char)*p)) {
		*why = kind->not_number;
		return -1;
	}
	for (; isdigit((unsigned char)*p); p++) {
		value = value * 10 + (uint64_t)(*p - '0');
		if (value > kind->max) {
			*why = kind->too_big;
			return -1;
		}
	}
	while (isspace((unsigned char)*p))
		p++;
	for (u = kind->units; u->name != NULL && strcmp(p, u->name) != 0; u++)
		;
	if (u->name == NULL) {
		*why = *p == '\0' ? kind->no_unit : kind->bad_unit;
		return -1;
	}
	if (value > kind->max / u->scale) {
		*why = kind->too_big;
		return -1;
	}
	*out = (uint32_t)(value * u->scale);
	return 0;
}

int
addr_parse_duration(const char *text, uint32_t *ms, const char **why)
{
	return parse_scaled(text, &duration_kind, ms, why);
}

int
addr_parse_size(const char *text, uint32_t *bytes, const char **why)
{
	return parse_scaled(text, &size_kind, bytes, why);
}

int
addr_split(const char *text, char *host, size_t hostlen, uint16_t *port,
    const char **why)
{
	const char *colon, *hstart, *hend;
	char *end;
	unsigned long p;

	if (text[0] == '[') {
		hstart = text + 1;
		hend = strchr(hstart, ']');
		if (hend == NULL || hend[1] != ':') {
			*why = "an IPv6 address is written [address]:port";
			return -1;
		}
		colon = hend + 1;
	} else {
		hstart = text;
		colon = strrchr(text, ':');
		if (colon == NULL) {
			*why = "an address is written host:port";
			return -1;
		}
		if (memchr(text, ':', (size_t)(colon - text)) != NULL) {
			*why = "an IPv6 address is written [address]:port";
			return -1;
		}
		hend = colon;
	}
	if ((size_t)(hend - hstart) >= hostlen) {
		*why = "host name too long";
		return -1;
	}
	if (colon[1] == '\0' || !isdigit((unsigned char)colon[1])) {
		*why = "missing port number";
		return -1;
	}
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || p == 0 || p > 65535) {
		*why = "port must be a number from 1 to 65535";
		return -1;
	}
	/* A forgotten host must not silently mean every interface. */
	if (hend == hstart) {
		*why = "empty host: write 0.0.0.0:port or [::]:port for every address";
		return -1;
	}
	memcpy(host, hstart, (size_t)(hend - hstart));
	host[hend - hstart] = '\0';
	if (strcmp(host, "*") == 0)
		host[0] = '\0';
	*port = (uint16_t)p;
	return 0;
}

int
addr_resolve(const char *text, int passive, struct sockaddr_storage *ss,
    socklen_t *len, const char **why)
{
	char host[256], service[8];
	struct addrinfo hints, *res;
	uint16_t port;
	int rc;

	if (addr_split(text, host, sizeof(host), &port, why) == -1)
		return -1;
	snprintf(service, sizeof(service), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = text[0] == '[' ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	rc = getaddrinfo(host[0] != '\0' ? host : NULL, service, &hints, &res);
	if (rc != 0) {
		*why = rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc);
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

char *
addr_display(const char *text, const struct sockaddr *sa, char *buf, size_t len)
{
	char num[LBD_ADDR_DISPLAY_MAX];
	int n;

	addr_format(sa, num, sizeof(num));
	if (strcmp(text, num) == 0)
		snprintf(buf, len, "%s", text);
	else if ((n = snprintf(buf, len, "%s (%s)", text, num)) < 0 || (size_t)n >= len)
		snprintf(buf, len, "%s", num);
	return buf;
}

char *
addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
	} else
		snprintf(buf, len, "(family %d)", sa->sa_family);
	return buf;
}
