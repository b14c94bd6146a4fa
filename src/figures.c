/*
 * Numbers as lbstat shows them.  See figures.h.
 */
#include <inttypes.h>
#include <stdio.h>

#include "figures.h"

/*
 * Bytes in powers of 1024 with K, M, G, T, P, E; plain below 1000 so a
 * number never takes more than five columns.
 */
char *
figures_size(double n, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	size_t u = 0;

	if (n < 999.5) {
		snprintf(buf, len, "%.0f", n < 0 ? 0 : n);
		return buf;
	}
	n /= 1024;
	while (n >= 999.5 && u + 2 < sizeof(units)) {
		n /= 1024;
		u++;
	}
	snprintf(buf, len, n < 99.95 ? "%.1f%c" : "%.0f%c", n, units[u]);
	return buf;
}

char *
figures_duration(uint64_t s, char *buf, size_t len)
{
	if (s < 60)
		snprintf(buf, len, "%" PRIu64 "s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRIu64 "m%" PRIu64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRIu64 "h%" PRIu64 "m", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%" PRIu64 "d%" PRIu64 "h", s / 86400, s % 86400 / 3600);
	return buf;
}

double
figures_rate(uint64_t before, uint64_t after, double seconds)
{
	/* A counter that went down was reset (a new daemon): count from 0. */
	uint64_t delta = after >= before ? after - before : after;

	return seconds > 0 ? (double)delta / seconds : 0;
}
