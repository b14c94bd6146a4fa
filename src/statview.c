/*
 * Renderings of a stats snapshot for lbstat: the table a person reads at a
 * glance, one JSON object per line, and the Prometheus text format 0.0.4.
 * Everything here works on a plain copy (struct statview_snap), never on
 * the live segment, so the output is consistent and testable.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "statview.h"

#define CELL_LEN	80	/* a table cell: an address or a check text, sanitised */
#define JSON_STR_LEN	(6 * LBD_ADDR_LEN + 1)	/* every byte may become \ufffd */
#define PROM_STR_LEN	(2 * LBD_ADDR_LEN + 1)

enum col {
	COL_SERVICE, COL_BACKEND, COL_ADDRESS, COL_STATE, COL_WEIGHT, COL_ACTIVE,
	COL_CONNS, COL_FAILS, COL_IN, COL_OUT, COL_CHECK, NCOLS
};

/* Imbalance of a service over its up backends with a non-zero weight. */
struct imbalance {
	size_t up;
	size_t total;
	uint64_t active_max;
	uint64_t active_min;
	int weighted;		/* weights differ: compare connections per unit of weight */
	double max;		/* connections, or connections per second with rates */
	double min;
	double ratio;		/* max / min; -1 when min is 0 and max is not */
};

/* ---- small helpers ---------------------------------------------------- */

const char *
statview_state(uint32_t health, uint32_t admin)
{
	/* Admin state wins over health: a disabled backend is not even
	 * checked, and a drained one takes nothing new whatever its health. */
	if (admin == LBD_ADMIN_DISABLED)
		return "disabled";
	if (admin == LBD_ADMIN_DRAIN)
		return "drain";
	return health == LBD_HEALTH_DOWN ? "down" : "up";
}

static const char *
backend_state(const struct statview_backend *be)
{
	return be->retired ? "retired" : statview_state(be->health, be->admin);
}

static int
backend_checked(const struct statview_backend *be)
{
	/* A disabled backend is not checked: its last result is stale. */
	return be->admin != LBD_ADMIN_DISABLED && be->check_status != LBD_CHECK_NONE;
}

static const char *
balance_name(uint32_t balance)
{
	switch (balance) {
	case LBD_BALANCE_LEASTCONN:
		return "leastconn";
	case LBD_BALANCE_SOURCE:
		return "source";
	default:
		return "roundrobin";
	}
}

/*
 * Bytes in powers of 1024 with K, M, G, T, P, E; plain below 1000 so a
 * number never takes more than five columns.
 */
char *
statview_human(double n, char *buf, size_t len)
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
statview_uptime(uint64_t s, char *buf, size_t len)
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
statview_rate(uint64_t before, uint64_t after, double seconds)
{
	/* A counter that went down was reset (a new daemon): count from 0. */
	uint64_t delta = after >= before ? after - before : after;

	return seconds > 0 ? (double)delta / seconds : 0;
}

/* Length of the valid UTF-8 sequence at p, or 0 for an invalid byte. */
static size_t
utf8_len(const unsigned char *p)
{
	uint32_t cp, min;
	size_t n, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if ((p[0] & 0xf0) == 0xe0)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	cp = p[0] & (0x7f >> n);
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)	/* also stops at the NUL */
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates and beyond U+10FFFF are not UTF-8. */
	min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Appends piece to out unless it does not fit whole; 0 when it did not. */
static int
append(char *out, size_t outlen, size_t *o, const char *piece, size_t n)
{
	if (*o + n >= outlen)
		return 0;
	memcpy(out + *o, piece, n);
	*o += n;
	out[*o] = '\0';
	return 1;
}

/*
 * The inside of a JSON string.  Invalid UTF-8 becomes U+FFFD so the line
 * always parses; a value too long for out is cut at a character boundary.
 */
char *
statview_json_escape(const char *in, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0, n;
	char esc[8];
	int fits;

	out[0] = '\0';
	while (*p != '\0') {
		n = utf8_len(p);
		if (n == 0) {
			snprintf(esc, sizeof(esc), "\\ufffd");
			n = 1;
		} else if (*p == '"' || *p == '\\')
			snprintf(esc, sizeof(esc), "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
		else
			esc[0] = '\0';
		if (esc[0] != '\0')
			fits = append(out, outlen, &o, esc, strlen(esc));
		else
			fits = append(out, outlen, &o, (const char *)p, n);
		if (!fits)
			break;
		p += n;
	}
	return out;
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
char *
statview_prom_escape(const char *in, char *out, size_t outlen)
{
	size_t o = 0;
	char esc[3];

	out[0] = '\0';
	for (; *in != '\0'; in++) {
		esc[0] = '\\';
		esc[1] = *in == '\n' ? 'n' : *in;
		esc[2] = '\0';
		if (*in == '\\' || *in == '"' || *in == '\n') {
			if (!append(out, outlen, &o, esc, 2))
				break;
		} else if (!append(out, outlen, &o, in, 1))
			break;
	}
	return out;
}

/* For the table: control characters would break a terminal line. */
static char *
printable(const char *in, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < outlen; i++)
		out[i] = (unsigned char)in[i] < 0x20 || in[i] == 0x7f ? '?' : in[i];
	out[i] = '\0';
	return out;
}

/* ---- filters and rates ------------------------------------------------ */

int
statview_filter_parse(const char *arg, struct statview_filter *filter,
    char *err, size_t errlen)
{
	const char *slash = strchr(arg, '/');
	size_t slen = slash != NULL ? (size_t)(slash - arg) : strlen(arg);

	memset(filter, 0, sizeof(*filter));
	if (slen == 0 || slen >= sizeof(filter->service) ||
	    (slash != NULL && (slash[1] == '\0' || strchr(slash + 1, '/') != NULL ||
	    strlen(slash + 1) >= sizeof(filter->backend)))) {
		snprintf(err, errlen, "%s: not a service or service/backend name", arg);
		return -1;
	}
	memcpy(filter->service, arg, slen);
	if (slash != NULL)
		snprintf(filter->backend, sizeof(filter->backend), "%s", slash + 1);
	return 0;
}

static int
want_service(const struct statview_filter *f, const struct statview_service *svc)
{
	return f == NULL || f->service[0] == '\0' || strcmp(f->service, svc->name) == 0;
}

static int
want_backend(const struct statview_filter *f, const struct statview_backend *be)
{
	return f == NULL || f->backend[0] == '\0' || strcmp(f->backend, be->name) == 0;
}

int
statview_filter_check(const struct statview_snap *snap,
    const struct statview_filter *filter, char *err, size_t errlen)
{
	const struct statview_service *svc;
	size_t i, j;

	if (filter->service[0] == '\0')
		return 0;
	for (i = 0; i < snap->nservices; i++) {
		svc = &snap->services[i];
		if (strcmp(svc->name, filter->service) != 0)
			continue;
		if (filter->backend[0] == '\0')
			return 0;
		for (j = svc->first; j < svc->first + svc->count; j++)
			if (!snap->backends[j].retired &&
			    strcmp(snap->backends[j].name, filter->backend) == 0)
				return 0;
		snprintf(err, errlen, "%s/%s: no such backend", filter->service,
		    filter->backend);
		return -1;
	}
	if (filter->backend[0] != '\0')
		snprintf(err, errlen, "%s/%s: no such backend", filter->service,
		    filter->backend);
	else
		snprintf(err, errlen, "%s: no such service", filter->service);
	return -1;
}

/* Pairs by slot and name: a slot freed by a reload may hold another name. */
static const struct statview_backend *
prev_backend(const struct statview_snap *prev, const struct statview_backend *be)
{
	size_t i;

	for (i = 0; i < prev->nbackends; i++)
		if (prev->backends[i].slot == be->slot &&
		    strcmp(prev->backends[i].name, be->name) == 0)
			return &prev->backends[i];
	return NULL;
}

static void
backend_rates(struct statview_backend *be, const struct statview_backend *was,
    double dt)
{
	static const struct statview_backend zero;

	if (was == NULL)
		was = &zero;
	be->connections_rate = statview_rate(was->connections, be->connections, dt);
	be->bytes_in_rate = statview_rate(was->bytes_in, be->bytes_in, dt);
	be->bytes_out_rate = statview_rate(was->bytes_out, be->bytes_out, dt);
}

void
statview_rates(struct statview_snap *cur, const struct statview_snap *prev)
{
	double dt = cur->mono - prev->mono;
	size_t i, j;

	cur->has_rates = 0;
	if (dt <= 0 || cur->pid != prev->pid)
		return;		/* another daemon: its counters started afresh */
	cur->has_rates = 1;
	cur->interval = dt;
	for (i = 0; i < cur->nbackends; i++)
		backend_rates(&cur->backends[i], prev_backend(prev, &cur->backends[i]), dt);
	for (i = 0; i < cur->nservices; i++) {
		struct statview_service *svc = &cur->services[i];
		uint64_t before = 0;

		for (j = 0; j < prev->nservices; j++)
			if (prev->services[j].slot == svc->slot &&
			    strcmp(prev->services[j].name, svc->name) == 0)
				before = prev->services[j].accepted;
		svc->accepted_rate = statview_rate(before, svc->accepted, dt);
	}
	for (i = 0; i < cur->nworkers; i++) {
		struct statview_worker *w = &cur->workers[i];
		uint64_t before = 0;

		for (j = 0; j < prev->nworkers; j++)
			if (prev->workers[j].slot == w->slot && prev->workers[j].pid == w->pid)
				before = prev->workers[j].accepted;
		w->accepted_rate = statview_rate(before, w->accepted, dt);
	}
}

/*
 * How evenly a service spreads connections over the backends that may take
 * them (up, weight > 0): totals, or the last interval's rates, per unit of
 * weight when the weights differ.
 */
static void
imbalance_of(const struct statview_snap *snap, const struct statview_service *svc,
    struct imbalance *im)
{
	const struct statview_backend *be;
	uint32_t weight = 0;
	size_t i;
	double v;

	memset(im, 0, sizeof(*im));
	for (i = svc->first; i < svc->first + svc->count; i++) {
		be = &snap->backends[i];
		if (be->retired)
			continue;
		im->total++;
		if (strcmp(backend_state(be), "up") != 0 || be->weight == 0)
			continue;
		if (weight != 0 && be->weight != weight)
			im->weighted = 1;
		weight = be->weight;
	}
	for (i = svc->first; i < svc->first + svc->count; i++) {
		be = &snap->backends[i];
		if (be->retired || strcmp(backend_state(be), "up") != 0 || be->weight == 0)
			continue;
		v = snap->has_rates ? be->connections_rate : (double)be->connections;
		if (im->weighted)
			v /= be->weight;
		if (im->up == 0 || be->active > im->active_max)
			im->active_max = be->active;
		if (im->up == 0 || be->active < im->active_min)
			im->active_min = be->active;
		if (im->up == 0 || v > im->max)
			im->max = v;
		if (im->up == 0 || v < im->min)
			im->min = v;
		im->up++;
	}
	im->ratio = im->min > 0 ? im->max / im->min : im->max > 0 ? -1 : 1;
}

/* ---- table ------------------------------------------------------------ */

static void
check_cell(const struct statview_backend *be, char *buf, size_t len)
{
	double ms = be->check_latency_us / 1000.0;

	if (!backend_checked(be))
		snprintf(buf, len, "-");
	else if (be->check_status == LBD_CHECK_OK)
		snprintf(buf, len, ms < 99.95 ? "ok %.1fms" : "ok %.0fms", ms);
	else if (be->check_text[0] == '\0')
		snprintf(buf, len, "failed");
	else
		printable(be->check_text, buf, len);
}

static void
table_cells(const struct statview_snap *snap, const struct statview_service *svc,
    const struct statview_backend *be, char cells[NCOLS][CELL_LEN])
{
	int rates = snap->has_rates;

	printable(svc->name, cells[COL_SERVICE], CELL_LEN);
	printable(be->name, cells[COL_BACKEND], CELL_LEN);
	printable(be->address, cells[COL_ADDRESS], CELL_LEN);
	snprintf(cells[COL_STATE], CELL_LEN, "%s", backend_state(be));
	snprintf(cells[COL_WEIGHT], CELL_LEN, "%" PRIu32, be->weight);
	snprintf(cells[COL_ACTIVE], CELL_LEN, "%" PRIu64, be->active);
	if (rates)
		snprintf(cells[COL_CONNS], CELL_LEN, "%.1f", be->connections_rate);
	else
		snprintf(cells[COL_CONNS], CELL_LEN, "%" PRIu64, be->connections);
	snprintf(cells[COL_FAILS], CELL_LEN, "%" PRIu64, be->connect_failures);
	statview_human(rates ? be->bytes_in_rate : (double)be->bytes_in,
	    cells[COL_IN], CELL_LEN);
	statview_human(rates ? be->bytes_out_rate : (double)be->bytes_out,
	    cells[COL_OUT], CELL_LEN);
	check_cell(be, cells[COL_CHECK], CELL_LEN);
}

static void
table_titles(const struct statview_snap *snap, char cells[NCOLS][CELL_LEN])
{
	static const char *const titles[NCOLS] = {
		"SERVICE", "BACKEND", "ADDRESS", "STATE", "WEIGHT", "ACTIVE",
		"CONNS", "FAILS", "IN", "OUT", "CHECK"
	};
	size_t i;

	for (i = 0; i < NCOLS; i++)
		snprintf(cells[i], CELL_LEN, "%s", titles[i]);
	if (snap->has_rates) {
		snprintf(cells[COL_CONNS], CELL_LEN, "CONNS/s");
		snprintf(cells[COL_IN], CELL_LEN, "IN/s");
		snprintf(cells[COL_OUT], CELL_LEN, "OUT/s");
	}
}

/* With out NULL, only widens width[] to fit the row. */
static void
table_row(FILE *out, char cells[NCOLS][CELL_LEN], int width[NCOLS])
{
	int i, n;

	for (i = 0; i < NCOLS; i++) {
		n = (int)strlen(cells[i]);
		if (out == NULL)
			width[i] = n > width[i] ? n : width[i];
		else if (i < NCOLS - 1)
			fprintf(out, "%-*s  ", width[i], cells[i]);
		else
			fprintf(out, "%s\n", cells[i]);
	}
}

static void
table_body(FILE *out, const struct statview_snap *snap,
    const struct statview_filter *filter, int width[NCOLS])
{
	char cells[NCOLS][CELL_LEN];
	const struct statview_service *svc;
	size_t i, j;

	table_titles(snap, cells);
	table_row(out, cells, width);
	for (i = 0; i < snap->nservices; i++) {
		svc = &snap->services[i];
		if (!want_service(filter, svc))
			continue;
		for (j = svc->first; j < svc->first + svc->count; j++) {
			if (!want_backend(filter, &snap->backends[j]))
				continue;
			table_cells(snap, svc, &snap->backends[j], cells);
			table_row(out, cells, width);
		}
	}
}

/* Seconds the master has run: none once it is gone. */
static uint64_t
uptime(const struct statview_snap *snap)
{
	if (!snap->master_alive || snap->now < snap->start_time)
		return 0;
	return snap->now - snap->start_time;
}

static void
table_header(FILE *out, const struct statview_snap *snap)
{
	char version[LBD_VERSION_LEN], up[32];
	size_t i, running = 0, stopping = 0;

	for (i = 0; i < snap->nworkers; i++) {
		if (snap->workers[i].state == LBD_WORKER_RUNNING)
			running++;
		else
			stopping++;
	}
	fprintf(out, "lbd %s  ", printable(snap->version, version, sizeof(version)));
	/* The master zeroes its pid when it stops cleanly; a pid that is
	 * gone means it died. */
	if (snap->master_alive)
		fprintf(out, "pid %" PRId32 "  up %s", snap->pid,
		    statview_uptime(uptime(snap), up, sizeof(up)));
	else if (snap->pid == 0)
		fprintf(out, "stopped");
	else
		fprintf(out, "pid %" PRId32 " (not running)", snap->pid);
	fprintf(out, "  workers %zu/%" PRIu32 " (restarts %" PRIu64, running,
	    snap->workers_configured, snap->worker_restarts);
	if (stopping > 0)
		fprintf(out, ", %zu stopping", stopping);
	fprintf(out, ")  generation %" PRIu32 "\n", snap->generation);
}

/* "10291 (50%)": a worker's accepted count or rate, and its share. */
static int
worker_accepted(const struct statview_snap *snap, const struct statview_worker *w,
    double sum, char *buf, size_t len)
{
	double v = snap->has_rates ? w->accepted_rate : (double)w->accepted;
	int n;

	n = snprintf(buf, len, snap->has_rates ? "%.1f" : "%.0f", v);
	if (sum > 0 && snap->nworkers > 1 && n > 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, " (%.0f%%)", 100 * v / sum);
	return n;
}

/* One line per worker, aligned, so an uneven accept split stands out. */
static void
table_workers(FILE *out, const struct statview_snap *snap)
{
	const struct statview_worker *w;
	char acc[48];
	double sum = 0;
	int wid = 1, wacc = 1, n;
	size_t i;

	for (i = 0; i < snap->nworkers; i++) {
		w = &snap->workers[i];
		sum += snap->has_rates ? w->accepted_rate : (double)w->accepted;
		n = snprintf(acc, sizeof(acc), "%" PRIu32, w->id);
		wid = n > wid ? n : wid;
	}
	for (i = 0; i < snap->nworkers; i++) {
		n = worker_accepted(snap, &snap->workers[i], sum, acc, sizeof(acc));
		wacc = n > wacc ? n : wacc;
	}
	for (i = 0; i < snap->nworkers; i++) {
		w = &snap->workers[i];
		worker_accepted(snap, w, sum, acc, sizeof(acc));
		fprintf(out, "worker %-*" PRIu32 "  pid %-7" PRId32 "  %s %-*s  active %"
		    PRIu64, wid, w->id, w->pid, snap->has_rates ? "accepted/s" : "accepted",
		    wacc, acc, w->active);
		if (w->state != LBD_WORKER_RUNNING)
			fprintf(out, "  stopping (generation %" PRIu32 ")", w->generation);
		fputc('\n', out);
	}
}

static void
table_imbalance(FILE *out, const struct statview_snap *snap,
    const struct statview_service *svc)
{
	char name[LBD_NAME_LEN], ratio[32];
	struct imbalance im;
	int exact;

	imbalance_of(snap, svc, &im);
	printable(svc->name, name, sizeof(name));
	if (im.up < 2) {
		fprintf(out, "%s: imbalance n/a (%zu of %zu backends up)\n", name,
		    im.up, im.total);
		return;
	}
	exact = !snap->has_rates && !im.weighted;
	if (im.ratio < 0)
		snprintf(ratio, sizeof(ratio), "inf");
	else
		snprintf(ratio, sizeof(ratio), "%.2fx", im.ratio);
	fprintf(out, "%s: imbalance active max/min %" PRIu64 "/%" PRIu64
	    ", %s%s max/min ", name, im.active_max, im.active_min,
	    snap->has_rates ? "conns/s" : "conns", im.weighted ? " per weight" : "");
	fprintf(out, exact ? "%.0f/%.0f (%s)\n" : "%.1f/%.1f (%s)\n",
	    im.max, im.min, ratio);
}

void
statview_table(FILE *out, const struct statview_snap *snap,
    const struct statview_filter *filter)
{
	int width[NCOLS] = { 0 };
	size_t i;

	table_header(out, snap);
	table_body(NULL, snap, filter, width);
	table_body(out, snap, filter, width);
	if (filter != NULL && filter->backend[0] != '\0')
		return;		/* one backend asked for: just its row */
	table_workers(out, snap);
	for (i = 0; i < snap->nservices; i++)
		if (want_service(filter, &snap->services[i]))
			table_imbalance(out, snap, &snap->services[i]);
}

/* ---- JSON ------------------------------------------------------------- */

static void
json_str(FILE *out, const char *key, const char *value, const char *after)
{
	char buf[JSON_STR_LEN];

	fprintf(out, "\"%s\":\"%s\"%s", key, statview_json_escape(value, buf,
	    sizeof(buf)), after);
}

static void
json_check(FILE *out, const struct statview_snap *snap,
    const struct statview_backend *be)
{
	const char *status = "none";

	if (backend_checked(be))
		status = be->check_status == LBD_CHECK_OK ? "ok" : "failed";
	fprintf(out, "\"check\":{\"status\":\"%s\",\"latency_ms\":%.3f,"
	    "\"last_change_s\":%" PRIu64 ",", status,
	    backend_checked(be) ? be->check_latency_us / 1000.0 : 0.0,
	    snap->now > be->last_change ? snap->now - be->last_change : 0);
	json_str(out, "text", be->check_text, "}");
}

static void
json_backend(FILE *out, const struct statview_snap *snap,
    const struct statview_backend *be)
{
	fputc('{', out);
	json_str(out, "name", be->name, ",");
	json_str(out, "address", be->address, ",");
	json_str(out, "state", backend_state(be), ",");
	fprintf(out, "\"weight\":%" PRIu32 ",\"active\":%" PRIu64 ",\"connections\":%"
	    PRIu64 ",\"connect_failures\":%" PRIu64 ",\"bytes_in\":%" PRIu64
	    ",\"bytes_out\":%" PRIu64 ",", be->weight, be->active, be->connections,
	    be->connect_failures, be->bytes_in, be->bytes_out);
	if (snap->has_rates)
		fprintf(out, "\"connections_per_s\":%.3f,\"bytes_in_per_s\":%.3f,"
		    "\"bytes_out_per_s\":%.3f,", be->connections_rate,
		    be->bytes_in_rate, be->bytes_out_rate);
	json_check(out, snap, be);
	fputc('}', out);
}

static void
json_imbalance(FILE *out, const struct statview_snap *snap,
    const struct statview_service *svc)
{
	struct imbalance im;

	imbalance_of(snap, svc, &im);
	if (im.up < 2) {
		fprintf(out, "\"imbalance\":null");
		return;
	}
	fprintf(out, "\"imbalance\":{\"backends_up\":%zu,\"active_max\":%" PRIu64
	    ",\"active_min\":%" PRIu64 ",\"basis\":\"%s%s\",\"max\":%.3f,\"min\":%.3f,",
	    im.up, im.active_max, im.active_min,
	    snap->has_rates ? "connections_per_s" : "connections",
	    im.weighted ? "_per_weight" : "", im.max, im.min);
	if (im.ratio < 0)
		fprintf(out, "\"ratio\":null}");
	else
		fprintf(out, "\"ratio\":%.3f}", im.ratio);
}

static void
json_service(FILE *out, const struct statview_snap *snap,
    const struct statview_service *svc, const struct statview_filter *filter)
{
	const char *sep = "";
	uint32_t i;
	size_t j;

	fputc('{', out);
	json_str(out, "name", svc->name, ",\"listen\":[");
	for (i = 0; i < svc->nlisten; i++) {
		char buf[JSON_STR_LEN];

		fprintf(out, "%s\"%s\"", i > 0 ? "," : "",
		    statview_json_escape(svc->listen[i], buf, sizeof(buf)));
	}
	fprintf(out, "],\"balance\":\"%s\",\"active\":%" PRIu64 ",\"accepted\":%"
	    PRIu64 ",\"rejected\":%" PRIu64 ",", balance_name(svc->balance),
	    svc->active, svc->accepted, svc->rejected);
	if (snap->has_rates)
		fprintf(out, "\"accepted_per_s\":%.3f,", svc->accepted_rate);
	json_imbalance(out, snap, svc);
	fprintf(out, ",\"backends\":[");
	for (j = svc->first; j < svc->first + svc->count; j++) {
		if (snap->backends[j].retired || !want_backend(filter, &snap->backends[j]))
			continue;
		fputs(sep, out);
		json_backend(out, snap, &snap->backends[j]);
		sep = ",";
	}
	fputs("]}", out);
}

static void
json_workers(FILE *out, const struct statview_snap *snap)
{
	const struct statview_worker *w;
	size_t i;

	fputs("\"workers\":[", out);
	for (i = 0; i < snap->nworkers; i++) {
		w = &snap->workers[i];
		fprintf(out, "%s{\"id\":%" PRIu32 ",\"pid\":%" PRId32 ",\"active\":%" PRIu64
		    ",\"accepted\":%" PRIu64 ",\"restarts\":%" PRIu64 ",\"generation\":%"
		    PRIu32 ",\"state\":\"%s\"", i > 0 ? "," : "", w->id, w->pid, w->active,
		    w->accepted, w->restarts, w->generation,
		    w->state == LBD_WORKER_RUNNING ? "running" : "stopping");
		if (snap->has_rates)
			fprintf(out, ",\"accepted_per_s\":%.3f", w->accepted_rate);
		fputc('}', out);
	}
	fputc(']', out);
}

void
statview_json(FILE *out, const struct statview_snap *snap,
    const struct statview_filter *filter)
{
	const char *sep = "";
	size_t i;

	fputc('{', out);
	json_str(out, "version", snap->version, ",");
	fprintf(out, "\"pid\":%" PRId32 ",\"running\":%s,\"uptime_s\":%" PRIu64
	    ",\"generation\":%" PRIu32 ",\"time\":%" PRIu64 ",\"workers_configured\":%"
	    PRIu32 ",\"worker_restarts\":%" PRIu64 ",\"reloads\":%" PRIu64 ",",
	    snap->pid, snap->master_alive ? "true" : "false", uptime(snap),
	    snap->generation, snap->now, snap->workers_configured,
	    snap->worker_restarts, snap->reloads);
	if (snap->has_rates)
		fprintf(out, "\"interval_s\":%.3f,", snap->interval);
	json_workers(out, snap);
	fputs(",\"services\":[", out);
	for (i = 0; i < snap->nservices; i++) {
		if (!want_service(filter, &snap->services[i]))
			continue;
		fputs(sep, out);
		json_service(out, snap, &snap->services[i], filter);
		sep = ",";
	}
	fputs("]}\n", out);
}

/* ---- Prometheus ------------------------------------------------------- */

enum prom_scope { SCOPE_GLOBAL, SCOPE_WORKER, SCOPE_SERVICE, SCOPE_BACKEND };

enum prom_metric {
	M_UP, M_UPTIME, M_WORKERS, M_RESTARTS, M_RELOADS, M_GENERATION,
	M_W_ACCEPTED, M_W_ACTIVE, M_S_ACCEPTED, M_S_REJECTED, M_S_ACTIVE,
	M_B_UP, M_B_STATE, M_B_WEIGHT, M_B_ACTIVE, M_B_CONNS, M_B_FAILS,
	M_B_IN, M_B_OUT, M_B_LATENCY
};

struct prom_family {
	enum prom_metric metric;
	enum prom_scope scope;
	const char *name;
	const char *type;
	const char *help;
};

static const struct prom_family prom_families[] = {
	{ M_UP, SCOPE_GLOBAL, "lbd_up", "gauge",
	    "1 if the master that owns the stats segment is running, 0 if not." },
	{ M_UPTIME, SCOPE_GLOBAL, "lbd_uptime_seconds", "gauge",
	    "Seconds since the master started." },
	{ M_WORKERS, SCOPE_GLOBAL, "lbd_workers", "gauge",
	    "Workers running (not counting old ones finishing their connections)." },
	{ M_RESTARTS, SCOPE_GLOBAL, "lbd_worker_restarts_total", "counter",
	    "Workers replaced after dying." },
	{ M_RELOADS, SCOPE_GLOBAL, "lbd_reloads_total", "counter",
	    "Successful configuration reloads." },
	{ M_GENERATION, SCOPE_GLOBAL, "lbd_generation", "gauge",
	    "Configuration generation, incremented by every successful reload." },
	{ M_W_ACCEPTED, SCOPE_WORKER, "lbd_worker_accepted_total", "counter",
	    "Connections accepted by each worker." },
	{ M_W_ACTIVE, SCOPE_WORKER, "lbd_worker_active_connections", "gauge",
	    "Connections open in each worker." },
	{ M_S_ACCEPTED, SCOPE_SERVICE, "lbd_service_accepted_total", "counter",
	    "Connections accepted by each service." },
	{ M_S_REJECTED, SCOPE_SERVICE, "lbd_service_rejected_total", "counter",
	    "Connections closed because no backend could take them." },
	{ M_S_ACTIVE, SCOPE_SERVICE, "lbd_service_active_connections", "gauge",
	    "Connections open in each service." },
	{ M_B_UP, SCOPE_BACKEND, "lbd_backend_up", "gauge",
	    "1 if the backend is in state up, 0 if down, drained or disabled." },
	{ M_B_STATE, SCOPE_BACKEND, "lbd_backend_state", "gauge",
	    "1 for the state the backend is in (up, down, drain, disabled), 0 for the others." },
	{ M_B_WEIGHT, SCOPE_BACKEND, "lbd_backend_weight", "gauge",
	    "Weight in effect." },
	{ M_B_ACTIVE, SCOPE_BACKEND, "lbd_backend_active_connections", "gauge",
	    "Connections open to the backend." },
	{ M_B_CONNS, SCOPE_BACKEND, "lbd_backend_connections_total", "counter",
	    "Client connections relayed to the backend." },
	{ M_B_FAILS, SCOPE_BACKEND, "lbd_backend_connect_failures_total", "counter",
	    "Failed connections to the backend." },
	{ M_B_IN, SCOPE_BACKEND, "lbd_backend_bytes_in_total", "counter",
	    "Bytes relayed from the clients to the backend." },
	{ M_B_OUT, SCOPE_BACKEND, "lbd_backend_bytes_out_total", "counter",
	    "Bytes relayed from the backend to the clients." },
	{ M_B_LATENCY, SCOPE_BACKEND, "lbd_backend_check_latency_seconds", "gauge",
	    "Duration of the last successful health check." },
};

/* Integers print exactly; fractions with enough digits for latencies. */
static void
prom_sample(FILE *out, const char *name, const char *labels, double v)
{
	if (v > -9e18 && v < 9e18 && v == (double)(int64_t)v)
		fprintf(out, "%s%s %" PRId64 "\n", name, labels, (int64_t)v);
	else
		fprintf(out, "%s%s %.9g\n", name, labels, v);
}

static double
prom_global(enum prom_metric m, const struct statview_snap *snap)
{
	size_t i, running = 0;

	switch (m) {
	case M_UP:
		return snap->master_alive;
	case M_UPTIME:
		return (double)uptime(snap);
	case M_WORKERS:
		for (i = 0; i < snap->nworkers; i++)
			running += snap->workers[i].state == LBD_WORKER_RUNNING;
		return (double)running;
	case M_RESTARTS:
		return (double)snap->worker_restarts;
	case M_RELOADS:
		return (double)snap->reloads;
	default:
		return snap->generation;
	}
}

/*
 * During a reload an old worker finishing its connections shares its id
 * with its successor; their counts are summed so every series stays unique.
 */
static void
prom_workers(FILE *out, const struct prom_family *fam, const struct statview_snap *snap)
{
	const struct statview_worker *w;
	char labels[64];
	double sum = 0;
	size_t i;

	for (i = 0; i < snap->nworkers; i++) {
		w = &snap->workers[i];
		sum += fam->metric == M_W_ACCEPTED ? (double)w->accepted : (double)w->active;
		if (i + 1 < snap->nworkers && snap->workers[i + 1].id == w->id)
			continue;
		snprintf(labels, sizeof(labels), "{worker=\"%" PRIu32 "\"}", w->id);
		prom_sample(out, fam->name, labels, sum);
		sum = 0;
	}
}

static void
prom_services(FILE *out, const struct prom_family *fam, const struct statview_snap *snap,
    const struct statview_filter *filter)
{
	const struct statview_service *svc;
	char name[PROM_STR_LEN], labels[PROM_STR_LEN + 32];
	double v;
	size_t i;

	for (i = 0; i < snap->nservices; i++) {
		svc = &snap->services[i];
		if (!want_service(filter, svc))
			continue;
		if (fam->metric == M_S_ACCEPTED)
			v = (double)svc->accepted;
		else if (fam->metric == M_S_REJECTED)
			v = (double)svc->rejected;
		else
			v = (double)svc->active;
		snprintf(labels, sizeof(labels), "{service=\"%s\"}",
		    statview_prom_escape(svc->name, name, sizeof(name)));
		prom_sample(out, fam->name, labels, v);
	}
}

static void
prom_backend(FILE *out, const struct prom_family *fam, const char *labels,
    const struct statview_backend *be)
{
	static const char *const states[] = { "up", "down", "drain", "disabled" };
	char more[2 * PROM_STR_LEN + 64];
	size_t i;

	switch (fam->metric) {
	case M_B_UP:
		prom_sample(out, fam->name, labels, strcmp(backend_state(be), "up") == 0);
		break;
	case M_B_STATE:
		for (i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
			/* labels is "{...}": the state label goes before the brace */
			snprintf(more, sizeof(more), "%.*s,state=\"%s\"}",
			    (int)strlen(labels) - 1, labels, states[i]);
			prom_sample(out, fam->name, more,
			    strcmp(backend_state(be), states[i]) == 0);
		}
		break;
	case M_B_WEIGHT:
		prom_sample(out, fam->name, labels, be->weight);
		break;
	case M_B_ACTIVE:
		prom_sample(out, fam->name, labels, (double)be->active);
		break;
	case M_B_CONNS:
		prom_sample(out, fam->name, labels, (double)be->connections);
		break;
	case M_B_FAILS:
		prom_sample(out, fam->name, labels, (double)be->connect_failures);
		break;
	case M_B_IN:
		prom_sample(out, fam->name, labels, (double)be->bytes_in);
		break;
	case M_B_OUT:
		prom_sample(out, fam->name, labels, (double)be->bytes_out);
		break;
	default:	/* latency: only of a check that succeeded */
		if (backend_checked(be) && be->check_status == LBD_CHECK_OK)
			prom_sample(out, fam->name, labels, be->check_latency_us / 1e6);
		break;
	}
}

static void
prom_backends(FILE *out, const struct prom_family *fam, const struct statview_snap *snap,
    const struct statview_filter *filter)
{
	const struct statview_service *svc;
	const struct statview_backend *be;
	char sname[PROM_STR_LEN], bname[PROM_STR_LEN], labels[2 * PROM_STR_LEN + 32];
	size_t i, j;

	for (i = 0; i < snap->nservices; i++) {
		svc = &snap->services[i];
		if (!want_service(filter, svc))
			continue;
		statview_prom_escape(svc->name, sname, sizeof(sname));
		for (j = svc->first; j < svc->first + svc->count; j++) {
			be = &snap->backends[j];
			if (be->retired || !want_backend(filter, be))
				continue;
			snprintf(labels, sizeof(labels), "{service=\"%s\",backend=\"%s\"}",
			    sname, statview_prom_escape(be->name, bname, sizeof(bname)));
			prom_backend(out, fam, labels, be);
		}
	}
}

void
statview_prom(FILE *out, const struct statview_snap *snap,
    const struct statview_filter *filter)
{
	const struct prom_family *fam;
	size_t i;

	for (i = 0; i < sizeof(prom_families) / sizeof(prom_families[0]); i++) {
		fam = &prom_families[i];
		fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help,
		    fam->name, fam->type);
		switch (fam->scope) {
		case SCOPE_GLOBAL:
			prom_sample(out, fam->name, "", prom_global(fam->metric, snap));
			break;
		case SCOPE_WORKER:
			prom_workers(out, fam, snap);
			break;
		case SCOPE_SERVICE:
			prom_services(out, fam, snap, filter);
			break;
		case SCOPE_BACKEND:
			prom_backends(out, fam, snap, filter);
			break;
		}
	}
}
