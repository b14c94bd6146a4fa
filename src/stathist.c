/*
 * History for the status page.  Series are kept by backend slot because a
 * slot keeps its backend across reloads and a restart with the same
 * configuration; a slot that comes back under another name starts afresh.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "statexport.h"
#include "stathist.h"

#define JSON_NAME_LEN	(6 * LBD_NAME_LEN + 1)

static void
series_clear(struct stathist_series *s)
{
	size_t i;

	memset(s->service, 0, sizeof(s->service));
	memset(s->name, 0, sizeof(s->name));
	s->last_seen = 0;
	for (i = 0; i < STATHIST_LEN; i++) {
		s->active[i] = NAN;
		s->connections_rate[i] = NAN;
		s->exchanges_rate[i] = NAN;
		s->bytes_rate[i] = NAN;
	}
}

void
stathist_init(struct stathist *h)
{
	h->ticks = 0;
	memset(h->time, 0, sizeof(h->time));
	h->series = NULL;
	h->nseries = 0;
}

void
stathist_free(struct stathist *h)
{
	size_t i;

	for (i = 0; i < h->nseries; i++)
		free(h->series[i]);
	free(h->series);
	h->series = NULL;
	h->nseries = 0;
}

/* Slot's series, made on first sight; NULL when out of memory. */
static struct stathist_series *
series_of(struct stathist *h, uint32_t slot)
{
	struct stathist_series **v;
	size_t n;

	if (slot >= h->nseries) {
		for (n = h->nseries ? h->nseries : 64; n <= slot; n *= 2)
			;
		if ((v = reallocarray(h->series, n, sizeof(*v))) == NULL)
			return NULL;
		memset(v + h->nseries, 0, (n - h->nseries) * sizeof(*v));
		h->series = v;
		h->nseries = n;
	}
	if (h->series[slot] == NULL && (h->series[slot] = malloc(sizeof(struct stathist_series))) != NULL)
		series_clear(h->series[slot]);
	return h->series[slot];
}

static void
series_put(struct stathist_series *s, size_t at, uint64_t tick,
    const struct statview_snap *snap, const struct statview_service *svc,
    const struct statview_backend *be)
{
	if (strcmp(s->service, svc->name) != 0 || strcmp(s->name, be->name) != 0) {
		series_clear(s);
		strlcpy(s->service, svc->name, sizeof(s->service));
		strlcpy(s->name, be->name, sizeof(s->name));
	}
	s->last_seen = tick;
	s->active[at] = (float)be->active;
	if (snap->has_rates) {
		s->connections_rate[at] = (float)be->connections_rate;
		s->exchanges_rate[at] = (float)be->exchanges_rate;
		s->bytes_rate[at] = (float)(be->bytes_in_rate + be->bytes_out_rate);
	}
}

void
stathist_push(struct stathist *h, const struct statview_snap *snap, uint64_t now)
{
	const struct statview_service *svc;
	const struct statview_backend *be;
	struct stathist_series *s;
	size_t at = h->ticks % STATHIST_LEN, i, j;

	h->ticks++;
	h->time[at] = snap != NULL ? snap->now : now;
	for (i = 0; i < h->nseries; i++) {
		if ((s = h->series[i]) == NULL)
			continue;
		s->active[at] = NAN;
		s->connections_rate[at] = NAN;
		s->exchanges_rate[at] = NAN;
		s->bytes_rate[at] = NAN;
	}
	if (snap == NULL)
		return;
	for (i = 0; i < snap->nservices; i++) {
		svc = &snap->services[i];
		for (j = svc->first; j < svc->first + svc->count; j++) {
			be = &snap->backends[j];
			if (!be->retired && (s = series_of(h, be->slot)) != NULL)
				series_put(s, at, h->ticks, snap, svc, be);
		}
	}
}

/* Samples oldest first: those of the ring from its oldest filled index. */
static void
json_floats(FILE *out, const char *key, const float *v, const struct stathist *h)
{
	uint64_t n = h->ticks < STATHIST_LEN ? h->ticks : STATHIST_LEN, k;
	size_t at;

	fprintf(out, ",\"%s\":[", key);
	for (k = 0; k < n; k++) {
		at = (size_t)((h->ticks - n + k) % STATHIST_LEN);
		if (isnan(v[at]))
			fprintf(out, "%snull", k > 0 ? "," : "");
		else
			fprintf(out, "%s%.6g", k > 0 ? "," : "", (double)v[at]);
	}
	fputc(']', out);
}

static void
json_series(FILE *out, const struct stathist_series *s, const struct stathist *h)
{
	char svc[JSON_NAME_LEN], name[JSON_NAME_LEN];

	fprintf(out, "{\"service\":\"%s\",\"name\":\"%s\"",
	    statexport_json_escape(s->service, svc, sizeof(svc)),
	    statexport_json_escape(s->name, name, sizeof(name)));
	json_floats(out, "active", s->active, h);
	json_floats(out, "connections_per_s", s->connections_rate, h);
	json_floats(out, "exchanges_per_s", s->exchanges_rate, h);
	json_floats(out, "bytes_per_s", s->bytes_rate, h);
	fputc('}', out);
}

void
stathist_json(FILE *out, const struct stathist *h)
{
	uint64_t n = h->ticks < STATHIST_LEN ? h->ticks : STATHIST_LEN, k;
	const char *sep = "";
	size_t i;

	fputs("{\"interval_s\":1,\"time\":[", out);
	for (k = 0; k < n; k++)
		fprintf(out, "%s%" PRIu64, k > 0 ? "," : "",
		    h->time[(h->ticks - n + k) % STATHIST_LEN]);
	fputs("],\"backends\":[", out);
	for (i = 0; i < h->nseries; i++) {
		const struct stathist_series *s = h->series[i];

		if (s == NULL || s->last_seen == 0 || h->ticks - s->last_seen >= STATHIST_LEN)
			continue;
		fputs(sep, out);
		json_series(out, s, h);
		sep = ",";
	}
	fputs("]}\n", out);
}
