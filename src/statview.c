/*
 * The snapshot side of lbstat: filters, rates between two samples, the
 * figures every rendering derives alike (state, imbalance, uptime) and the
 * table a person reads at a glance.  JSON and Prometheus are in
 * statexport.c.  Everything here works on a plain copy (struct
 * statview_snap), never on the live segment, so the output is consistent
 * and testable.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "statsmap.h"
#include "figures.h"
#include "statview.h"

#define CELL_LEN	80	/* a table cell: an address or a check text, sanitised */

enum col {
	COL_SERVICE, COL_BACKEND, COL_ADDRESS, COL_STATE, COL_WEIGHT, COL_ACTIVE,
	COL_CONNS, COL_EXCH, COL_FAILS, COL_IN, COL_OUT, COL_CHECK, NCOLS
};

/* ---- small helpers ---------------------------------------------------- */

const char *
statview_backend_state(const struct statview_backend *be)
{
	return be->retired ? "retired" : stats_state_name(be->health, be->admin);
}

char *
statview_backend_state_long(const struct statview_backend *be, char *buf, size_t len)
{
	int up = strcmp(statview_backend_state(be), "up") == 0;

	snprintf(buf, len, "%s%s", statview_backend_state(be), be->backup ? " backup" : "");
	if (up && be->ramp_permille != 0 && strlen(buf) + 6 < len)
		snprintf(buf + strlen(buf), len - strlen(buf), " %u%%",
		    (unsigned)(be->ramp_permille / 10));
	return buf;
}

int
statview_backend_checked(const struct statview_backend *be)
{
	/* A disabled backend is not checked: its last result is stale. */
	return be->admin != LBD_ADMIN_DISABLED && be->check_status != LBD_CHECK_NONE;
}

int
statview_check_stale(const struct statview_backend *be)
{
	return statview_backend_checked(be) && be->check_interval_ms > 0 &&
	    be->check_age_ms > (int64_t)be->check_interval_ms * STATVIEW_STALE_INTERVALS;
}

/* Seconds the master has run: none once it is gone. */
/* Grows *arr (of size elements, *cap of them) to hold n. */
static int
snap_grow(void *arr, size_t *cap, size_t n, size_t size)
{
	void *p;

	if (n <= *cap)
		return 0;
	if ((p = reallocarray(*(void **)arr, n, size)) == NULL)
		return -1;
	memset((char *)p + *cap * size, 0, (n - *cap) * size);	/* no stale fields */
	*(void **)arr = p;
	*cap = n;
	return 0;
}

int
statview_snap_reserve(struct statview_snap *snap, size_t services, size_t backends,
    size_t workers, size_t listens)
{
	return snap_grow(&snap->services, &snap->cap_services, services,
	    sizeof(*snap->services)) == -1 ||
	    snap_grow(&snap->backends, &snap->cap_backends, backends,
	    sizeof(*snap->backends)) == -1 ||
	    snap_grow(&snap->workers, &snap->cap_workers, workers,
	    sizeof(*snap->workers)) == -1 ||
	    snap_grow(&snap->listens, &snap->cap_listens, listens,
	    sizeof(*snap->listens)) == -1 ? -1 : 0;
}

void
statview_snap_free(struct statview_snap *snap)
{
	free(snap->services);
	free(snap->backends);
	free(snap->workers);
	free(snap->listens);
	snap->services = NULL;
	snap->backends = NULL;
	snap->workers = NULL;
	snap->listens = NULL;
	snap->cap_services = snap->cap_backends = snap->cap_workers = snap->cap_listens = 0;
}

uint64_t
statview_uptime_s(const struct statview_snap *snap)
{
	if (!snap->master_alive || snap->now < snap->start_time)
		return 0;
	return snap->now - snap->start_time;
}

const char *
statview_worker_state(const struct statview_snap *snap, const struct statview_worker *w)
{
	if (w->state == LBD_WORKER_STALLED || (w->state == LBD_WORKER_RUNNING &&
	    snap->worker_stall_ms > 0 && w->heartbeat_age_ms >= snap->worker_stall_ms))
		return "stalled";
	return w->state == LBD_WORKER_RUNNING ? "running" : "stopping";
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

int
statview_want_service(const struct statview_filter *f,
    const struct statview_service *svc)
{
	return f == NULL || f->service[0] == '\0' || strcmp(f->service, svc->name) == 0;
}

int
statview_want_backend(const struct statview_filter *f,
    const struct statview_backend *be)
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

/*
 * Pairs by slot and name: a slot freed by a reload may hold another name.
 * Two snapshots of one layout list backends alike, so the same place
 * (hint) is looked at first: 10 000 backends are not n squared.
 */
static const struct statview_backend *
prev_backend(const struct statview_snap *prev, const struct statview_backend *be,
    size_t hint)
{
	size_t i;

	if (hint < prev->nbackends && prev->backends[hint].slot == be->slot &&
	    strcmp(prev->backends[hint].name, be->name) == 0)
		return &prev->backends[hint];
	for (i = 0; i < prev->nbackends; i++)
		if (prev->backends[i].slot == be->slot &&
		    strcmp(prev->backends[i].name, be->name) == 0)
			return &prev->backends[i];
	return NULL;
}

/* The same for services. */
static const struct statview_service *
prev_service(const struct statview_snap *prev, const struct statview_service *svc,
    size_t hint)
{
	size_t i;

	if (hint < prev->nservices && prev->services[hint].slot == svc->slot &&
	    strcmp(prev->services[hint].name, svc->name) == 0)
		return &prev->services[hint];
	for (i = 0; i < prev->nservices; i++)
		if (prev->services[i].slot == svc->slot &&
		    strcmp(prev->services[i].name, svc->name) == 0)
			return &prev->services[i];
	return NULL;
}

static void
backend_rates(struct statview_backend *be, const struct statview_backend *was,
    double dt)
{
	static const struct statview_backend zero;

	if (was == NULL)
		was = &zero;
	be->connections_rate = figures_rate(was->connections, be->connections, dt);
	be->exchanges_rate = figures_rate(was->exchanges, be->exchanges, dt);
	be->bytes_in_rate = figures_rate(was->bytes_in, be->bytes_in, dt);
	be->bytes_out_rate = figures_rate(was->bytes_out, be->bytes_out, dt);
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
		backend_rates(&cur->backends[i], prev_backend(prev, &cur->backends[i], i), dt);
	for (i = 0; i < cur->nservices; i++) {
		struct statview_service *svc = &cur->services[i];
		const struct statview_service *was = prev_service(prev, svc, i);
		uint64_t before = 0, exch_before = 0;

		if (was != NULL) {
			before = was->accepted;
			exch_before = was->exchanges;
		}
		svc->accepted_rate = figures_rate(before, svc->accepted, dt);
		svc->exchanges_rate = figures_rate(exch_before, svc->exchanges, dt);
	}
	for (i = 0; i < cur->nworkers; i++) {
		struct statview_worker *w = &cur->workers[i];
		uint64_t before = 0;

		for (j = 0; j < prev->nworkers; j++)
			if (prev->workers[j].slot == w->slot && prev->workers[j].pid == w->pid)
				before = prev->workers[j].accepted;
		w->accepted_rate = figures_rate(before, w->accepted, dt);
	}
}

/* May take new connections: in the configuration, up, weight > 0. */
static int
eligible(const struct statview_backend *be)
{
	return !be->retired && be->weight > 0 &&
	    strcmp(statview_backend_state(be), "up") == 0;
}

/* A backup takes nothing while a primary may: leave it out of the balance then. */
static int
compared(const struct statview_snap *snap, const struct statview_service *svc,
    const struct statview_backend *be)
{
	size_t i;

	if (!eligible(be))
		return 0;
	if (!be->backup)
		return 1;
	for (i = svc->first; i < svc->first + svc->count; i++)
		if (!snap->backends[i].backup && eligible(&snap->backends[i]))
			return 0;
	return 1;
}

/* The figure imbalance compares for one backend. */
static double
imbalance_value(const struct statview_snap *snap, const struct statview_backend *be,
    const struct statview_imbalance *im)
{
	double v;

	if (im->exchanges)
		v = snap->has_rates ? be->exchanges_rate : (double)be->exchanges;
	else
		v = snap->has_rates ? be->connections_rate : (double)be->connections;
	return im->weighted ? v / be->weight : v;
}

/*
 * How evenly a service spreads its load over the backends that may take
 * it: exchanges when it has any (that is the load: a keep-alive connection
 * may carry one request or thousands), else connections; totals, or the
 * last interval's rates; per unit of weight when the weights differ.
 */
void
statview_imbalance(const struct statview_snap *snap,
    const struct statview_service *svc, struct statview_imbalance *im)
{
	const struct statview_backend *be;
	uint32_t weight = 0;
	size_t i;
	double v;

	memset(im, 0, sizeof(*im));
	for (i = svc->first; i < svc->first + svc->count; i++) {
		be = &snap->backends[i];
		im->total += !be->retired;
		if (!compared(snap, svc, be))
			continue;
		if (weight != 0 && be->weight != weight)
			im->weighted = 1;
		weight = be->weight;
		if (snap->has_rates ? be->exchanges_rate > 0 : be->exchanges > 0)
			im->exchanges = 1;
	}
	for (i = svc->first; i < svc->first + svc->count; i++) {
		be = &snap->backends[i];
		if (!compared(snap, svc, be))
			continue;
		v = imbalance_value(snap, be, im);
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

	if (!statview_backend_checked(be))
		snprintf(buf, len, "-");
	else if (be->check_status == LBD_CHECK_OK)
		snprintf(buf, len, ms < 99.95 ? "ok %.1fms" : "ok %.0fms", ms);
	else if (be->check_text[0] == '\0')
		snprintf(buf, len, "failed");
	else
		printable(be->check_text, buf, len);
	if (statview_check_stale(be) && strlen(buf) + 24 < len)
		snprintf(buf + strlen(buf), len - strlen(buf), " (stale %llds)",
		    (long long)(be->check_age_ms / 1000));
}

static void
table_cells(const struct statview_snap *snap, const struct statview_service *svc,
    const struct statview_backend *be, char cells[NCOLS][CELL_LEN])
{
	int rates = snap->has_rates;

	printable(svc->name, cells[COL_SERVICE], CELL_LEN);
	printable(be->name, cells[COL_BACKEND], CELL_LEN);
	printable(be->address, cells[COL_ADDRESS], CELL_LEN);
	statview_backend_state_long(be, cells[COL_STATE], CELL_LEN);
	snprintf(cells[COL_WEIGHT], CELL_LEN, "%" PRIu32, be->weight);
	if (be->maxconn > 0)	/* "7/10": open, and its maxconn */
		snprintf(cells[COL_ACTIVE], CELL_LEN, "%" PRIu64 "/%" PRIu32, be->active,
		    be->maxconn);
	else
		snprintf(cells[COL_ACTIVE], CELL_LEN, "%" PRIu64, be->active);
	if (rates) {
		snprintf(cells[COL_CONNS], CELL_LEN, "%.1f", be->connections_rate);
		snprintf(cells[COL_EXCH], CELL_LEN, "%.1f", be->exchanges_rate);
	} else {
		snprintf(cells[COL_CONNS], CELL_LEN, "%" PRIu64, be->connections);
		snprintf(cells[COL_EXCH], CELL_LEN, "%" PRIu64, be->exchanges);
	}
	snprintf(cells[COL_FAILS], CELL_LEN, "%" PRIu64, be->connect_failures);
	figures_size(rates ? be->bytes_in_rate : (double)be->bytes_in,
	    cells[COL_IN], CELL_LEN);
	figures_size(rates ? be->bytes_out_rate : (double)be->bytes_out,
	    cells[COL_OUT], CELL_LEN);
	check_cell(be, cells[COL_CHECK], CELL_LEN);
}

static void
table_titles(const struct statview_snap *snap, char cells[NCOLS][CELL_LEN])
{
	static const char *const titles[NCOLS] = {
		"SERVICE", "BACKEND", "ADDRESS", "STATE", "WEIGHT", "ACTIVE",
		"CONNS", "EXCH", "FAILS", "IN", "OUT", "CHECK"
	};
	size_t i;

	for (i = 0; i < NCOLS; i++)
		snprintf(cells[i], CELL_LEN, "%s", titles[i]);
	if (snap->has_rates) {
		snprintf(cells[COL_CONNS], CELL_LEN, "CONNS/s");
		snprintf(cells[COL_EXCH], CELL_LEN, "EXCH/s");
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
		if (!statview_want_service(filter, svc))
			continue;
		for (j = svc->first; j < svc->first + svc->count; j++) {
			if (!statview_want_backend(filter, &snap->backends[j]))
				continue;
			table_cells(snap, svc, &snap->backends[j], cells);
			table_row(out, cells, width);
		}
	}
}

static void
table_header(FILE *out, const struct statview_snap *snap)
{
	char version[LBD_VERSION_LEN], up[32];
	size_t i, running = 0, stopping = 0, stalled = 0;
	const char *state;

	for (i = 0; i < snap->nworkers; i++) {
		state = statview_worker_state(snap, &snap->workers[i]);
		running += strcmp(state, "running") == 0;
		stopping += strcmp(state, "stopping") == 0;
		stalled += strcmp(state, "stalled") == 0;
	}
	fprintf(out, "lbd %s  ", printable(snap->version, version, sizeof(version)));
	/* The master zeroes its pid when it stops cleanly; a pid that is
	 * gone means it died. */
	if (snap->master_alive)
		fprintf(out, "pid %" PRId32 "  up %s", snap->pid,
		    figures_duration(statview_uptime_s(snap), up, sizeof(up)));
	else if (snap->pid == 0)
		fprintf(out, "stopped");
	else
		fprintf(out, "pid %" PRId32 " (not running)", snap->pid);
	fprintf(out, "  workers %zu/%" PRIu32 " (restarts %" PRIu64, running,
	    snap->workers_configured, snap->worker_restarts);
	if (stopping > 0)
		fprintf(out, ", %zu stopping", stopping);
	if (stalled > 0)
		fprintf(out, ", %zu stalled", stalled);
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
		if (strcmp(statview_worker_state(snap, w), "stalled") == 0)
			fprintf(out, "  stalled (no turn for %.1fs)",
			    (double)w->heartbeat_age_ms / 1000);
		else if (w->state != LBD_WORKER_RUNNING)
			fprintf(out, "  stopping (generation %" PRIu32 ")", w->generation);
		fputc('\n', out);
	}
}

static void
table_imbalance(FILE *out, const struct statview_snap *snap,
    const struct statview_service *svc)
{
	char name[LBD_NAME_LEN], ratio[32];
	struct statview_imbalance im;
	int exact;

	statview_imbalance(snap, svc, &im);
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
	    ", %s%s%s max/min ", name, im.active_max, im.active_min,
	    im.exchanges ? "exch" : "conns", snap->has_rates ? "/s" : "",
	    im.weighted ? " per weight" : "");
	fprintf(out, exact ? "%.0f/%.0f (%s)\n" : "%.1f/%.1f (%s)\n",
	    im.max, im.min, ratio);
}

/* The service queue, when a maxconn puts one in use. */
static void
table_queue(FILE *out, const struct statview_service *svc)
{
	char name[LBD_NAME_LEN];

	if (!svc->limited)
		return;
	fprintf(out, "%s: QUEUE %" PRIu64 " now, %" PRIu64 " max, %" PRIu64 " timed out\n",
	    printable(svc->name, name, sizeof(name)), svc->queued, svc->queue_max,
	    svc->queue_timeouts);
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
		if (statview_want_service(filter, &snap->services[i])) {
			table_imbalance(out, snap, &snap->services[i]);
			table_queue(out, &snap->services[i]);
		}
}

