/*
 * The machine-readable renderings of a stats snapshot: one JSON object per
 * line, and the Prometheus text exposition format 0.0.4.  Like statview.c,
 * pure: a plain copy in, text out.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "statexport.h"

#define JSON_STR_LEN	(6 * LBD_ADDR_LEN + 1)	/* every byte may become \ufffd */
#define PROM_STR_LEN	(2 * LBD_ADDR_LEN + 1)

/* ---- escaping --------------------------------------------------------- */

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
statexport_json_escape(const char *in, char *out, size_t outlen)
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
statexport_prom_escape(const char *in, char *out, size_t outlen)
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


/* ---- JSON ------------------------------------------------------------- */

static void
json_str(FILE *out, const char *key, const char *value, const char *after)
{
	char buf[JSON_STR_LEN];

	fprintf(out, "\"%s\":\"%s\"%s", key, statexport_json_escape(value, buf,
	    sizeof(buf)), after);
}

static void
json_check(FILE *out, const struct statview_snap *snap,
    const struct statview_backend *be)
{
	const char *status = "none";

	if (statview_backend_checked(be))
		status = be->check_status == LBD_CHECK_OK ? "ok" : "failed";
	fprintf(out, "\"check\":{\"status\":\"%s\",\"latency_ms\":%.3f,"
	    "\"last_change_s\":%" PRIu64 ",", status,
	    statview_backend_checked(be) ? be->check_latency_us / 1000.0 : 0.0,
	    snap->now > be->last_change ? snap->now - be->last_change : 0);
	json_str(out, "text", be->check_text, ",");
	if (be->check_age_ms >= 0)
		fprintf(out, "\"age_s\":%.1f,", (double)be->check_age_ms / 1000);
	else
		fputs("\"age_s\":null,", out);
	fprintf(out, "\"stale\":%s}", statview_check_stale(be) ? "true" : "false");
}

static void
json_backend(FILE *out, const struct statview_snap *snap,
    const struct statview_backend *be)
{
	fputc('{', out);
	json_str(out, "name", be->name, ",");
	json_str(out, "address", be->address, ",");
	json_str(out, "state", statview_backend_state(be), ",");
	fprintf(out, "\"backup\":%s,\"maxconn\":%" PRIu32 ",\"ramp\":%u,",
	    be->backup ? "true" : "false", be->maxconn,
	    be->ramp_permille != 0 ? (unsigned)be->ramp_permille / 10 : 100);
	fprintf(out, "\"weight\":%" PRIu32 ",\"active\":%" PRIu64 ",\"connections\":%"
	    PRIu64 ",\"connect_failures\":%" PRIu64 ",\"bytes_in\":%" PRIu64
	    ",\"bytes_out\":%" PRIu64 ",\"spliced_in\":%" PRIu64 ",\"spliced_out\":%"
	    PRIu64 ",\"exchanges\":%" PRIu64 ",\"aged_out\":%" PRIu64 ",", be->weight,
	    be->active, be->connections, be->connect_failures, be->bytes_in, be->bytes_out,
	    be->spliced_in, be->spliced_out, be->exchanges, be->aged_out);
	if (snap->has_rates)
		fprintf(out, "\"connections_per_s\":%.3f,\"exchanges_per_s\":%.3f,"
		    "\"bytes_in_per_s\":%.3f,\"bytes_out_per_s\":%.3f,",
		    be->connections_rate, be->exchanges_rate, be->bytes_in_rate,
		    be->bytes_out_rate);
	json_check(out, snap, be);
	fputc('}', out);
}

static void
json_imbalance(FILE *out, const struct statview_snap *snap,
    const struct statview_service *svc)
{
	struct statview_imbalance im;

	statview_imbalance(snap, svc, &im);
	if (im.up < 2) {
		fprintf(out, "\"imbalance\":null");
		return;
	}
	fprintf(out, "\"imbalance\":{\"backends_up\":%zu,\"active_max\":%" PRIu64
	    ",\"active_min\":%" PRIu64 ",\"basis\":\"%s%s%s\",\"max\":%.3f,\"min\":%.3f,",
	    im.up, im.active_max, im.active_min, im.exchanges ? "exchanges" : "connections",
	    snap->has_rates ? "_per_s" : "", im.weighted ? "_per_weight" : "", im.max, im.min);
	if (im.ratio < 0)
		fprintf(out, "\"ratio\":null}");
	else
		fprintf(out, "\"ratio\":%.3f}", im.ratio);
}

static void
json_service(FILE *out, const struct statview_snap *snap,
    const struct statview_service *svc, const struct statview_filter *filter)
{
	const struct statview_backend *be;
	const char *sep = "";
	uint32_t i;
	size_t j;

	fputc('{', out);
	json_str(out, "name", svc->name, ",\"listen\":[");
	for (i = 0; i < svc->nlisten; i++) {
		char buf[JSON_STR_LEN];

		fprintf(out, "%s\"%s\"", i > 0 ? "," : "",
		    statexport_json_escape(snap->listens[svc->listen_first + i], buf,
		    sizeof(buf)));
	}
	fprintf(out, "],\"balance\":\"%s\",\"active\":%" PRIu64 ",\"accepted\":%"
	    PRIu64 ",\"rejected\":%" PRIu64 ",\"exchanges\":%" PRIu64 ",\"proxy_errors\":%"
	    PRIu64 ",\"denied\":%" PRIu64 ",\"sni_misses\":%" PRIu64 ",",
	    config_balance_name(svc->balance), svc->active, svc->accepted, svc->rejected,
	    svc->exchanges, svc->proxy_errors, svc->denied, svc->sni_misses);
	fprintf(out, "\"queued\":%" PRIu64 ",\"queue_max\":%" PRIu64 ",\"queue_timeouts\":%"
	    PRIu64 ",", svc->queued, svc->queue_max, svc->queue_timeouts);
	if (snap->has_rates)
		fprintf(out, "\"accepted_per_s\":%.3f,\"exchanges_per_s\":%.3f,",
		    svc->accepted_rate, svc->exchanges_rate);
	json_imbalance(out, snap, svc);
	fprintf(out, ",\"backends\":[");
	for (j = svc->first; j < svc->first + svc->count; j++) {
		be = &snap->backends[j];
		if (be->retired || !statview_want_backend(filter, be))
			continue;
		fputs(sep, out);
		json_backend(out, snap, be);
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
		    PRIu32 ",\"state\":\"%s\",\"heartbeat_age_ms\":%" PRIu64, i > 0 ? "," : "",
		    w->id, w->pid, w->active, w->accepted, w->restarts, w->generation,
		    statview_worker_state(snap, w), w->heartbeat_age_ms);
		if (snap->has_rates)
			fprintf(out, ",\"accepted_per_s\":%.3f", w->accepted_rate);
		fputc('}', out);
	}
	fputc(']', out);
}

void
statexport_json(FILE *out, const struct statview_snap *snap,
    const struct statview_filter *filter)
{
	const char *sep = "";
	size_t i;

	fputc('{', out);
	json_str(out, "version", snap->version, ",");
	fprintf(out, "\"pid\":%" PRId32 ",\"running\":%s,\"uptime_s\":%" PRIu64
	    ",\"generation\":%" PRIu32 ",\"time\":%" PRIu64 ",\"workers_configured\":%"
	    PRIu32 ",\"worker_restarts\":%" PRIu64 ",\"reloads\":%" PRIu64 ",",
	    snap->pid, snap->master_alive ? "true" : "false", statview_uptime_s(snap),
	    snap->generation, snap->now, snap->workers_configured,
	    snap->worker_restarts, snap->reloads);
	if (snap->has_rates)
		fprintf(out, "\"interval_s\":%.3f,", snap->interval);
	json_workers(out, snap);
	fputs(",\"services\":[", out);
	for (i = 0; i < snap->nservices; i++) {
		if (!statview_want_service(filter, &snap->services[i]))
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
	M_W_ACCEPTED, M_W_ACTIVE, M_W_HEARTBEAT, M_S_ACCEPTED, M_S_REJECTED, M_S_ACTIVE,
	M_S_PROXY_ERRORS, M_S_DENIED, M_S_SNI_MISSES,
	M_S_QUEUED, M_S_QUEUE_MAX, M_S_QUEUE_TIMEOUTS,
	M_B_UP, M_B_STATE, M_B_WEIGHT, M_B_ACTIVE, M_B_CONNS, M_B_FAILS,
	M_B_IN, M_B_OUT, M_B_SPLICED, M_B_EXCH, M_B_AGED, M_B_LATENCY,
	M_B_MAXCONN, M_B_BACKUP, M_B_RAMP
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
	{ M_W_HEARTBEAT, SCOPE_WORKER, "lbd_worker_heartbeat_age_seconds", "gauge",
	    "Seconds since each worker's event loop last turned (worker-stall: hung)." },
	{ M_S_ACCEPTED, SCOPE_SERVICE, "lbd_service_accepted_total", "counter",
	    "Connections accepted by each service." },
	{ M_S_REJECTED, SCOPE_SERVICE, "lbd_service_rejected_total", "counter",
	    "Connections closed because no backend could take them." },
	{ M_S_ACTIVE, SCOPE_SERVICE, "lbd_service_active_connections", "gauge",
	    "Connections open in each service." },
	{ M_S_PROXY_ERRORS, SCOPE_SERVICE, "lbd_service_proxy_errors_total", "counter",
	    "Connections closed for a missing, malformed or late PROXY header." },
	{ M_S_DENIED, SCOPE_SERVICE, "lbd_service_denied_total", "counter",
	    "Connections closed by the allow and deny lists." },
	{ M_S_SNI_MISSES, SCOPE_SERVICE, "lbd_service_sni_misses_total", "counter",
	    "Connections closed with no service for their TLS server name." },
	{ M_S_QUEUED, SCOPE_SERVICE, "lbd_service_queued", "gauge",
	    "Clients waiting in the service queue for a backend's maxconn slot." },
	{ M_S_QUEUE_MAX, SCOPE_SERVICE, "lbd_service_queue_max", "gauge",
	    "Most clients seen waiting in the service queue at once." },
	{ M_S_QUEUE_TIMEOUTS, SCOPE_SERVICE, "lbd_service_queue_timeouts_total", "counter",
	    "Clients closed after waiting queue-timeout in the service queue." },
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
	{ M_B_SPLICED, SCOPE_BACKEND, "lbd_backend_spliced_total", "counter",
	    "Relay directions that carried bulk and so moved from copying to "
	    "splice(), in: client to backend, out: backend to client." },
	{ M_B_EXCH, SCOPE_BACKEND, "lbd_backend_exchanges_total", "counter",
	    "Turns of request/response conversations relayed to the backend "
	    "(the backend answered after the client sent)." },
	{ M_B_AGED, SCOPE_BACKEND, "lbd_backend_aged_out_total", "counter",
	    "Connections closed at a quiet moment by max-connection-age." },
	{ M_B_LATENCY, SCOPE_BACKEND, "lbd_backend_check_latency_seconds", "gauge",
	    "Duration of the last successful health check." },
	{ M_B_MAXCONN, SCOPE_BACKEND, "lbd_backend_maxconn", "gauge",
	    "Connections the backend may have open at once, 0 for no limit." },
	{ M_B_BACKUP, SCOPE_BACKEND, "lbd_backend_backup", "gauge",
	    "1 for a backup backend, used only while no other one is eligible." },
	{ M_B_RAMP, SCOPE_BACKEND, "lbd_backend_ramp_ratio", "gauge",
	    "Share of its weight a slow-starting backend has now; 1 when not ramping." },
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
		return (double)statview_uptime_s(snap);
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
		if (fam->metric == M_W_HEARTBEAT)	/* the oldest, not a sum */
			sum = fmax(sum, (double)w->heartbeat_age_ms / 1000);
		else
			sum += fam->metric == M_W_ACCEPTED ? (double)w->accepted :
			    (double)w->active;
		if (i + 1 < snap->nworkers && snap->workers[i + 1].id == w->id)
			continue;
		snprintf(labels, sizeof(labels), "{worker=\"%" PRIu32 "\"}", w->id);
		prom_sample(out, fam->name, labels, sum);
		sum = 0;
	}
}

static double
prom_service_value(enum prom_metric m, const struct statview_service *svc)
{
	switch (m) {
	case M_S_ACCEPTED:
		return (double)svc->accepted;
	case M_S_REJECTED:
		return (double)svc->rejected;
	case M_S_PROXY_ERRORS:
		return (double)svc->proxy_errors;
	case M_S_DENIED:
		return (double)svc->denied;
	case M_S_SNI_MISSES:
		return (double)svc->sni_misses;
	case M_S_QUEUED:
		return (double)svc->queued;
	case M_S_QUEUE_MAX:
		return (double)svc->queue_max;
	case M_S_QUEUE_TIMEOUTS:
		return (double)svc->queue_timeouts;
	default:
		return (double)svc->active;
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
		if (!statview_want_service(filter, svc))
			continue;
		v = prom_service_value(fam->metric, svc);
		snprintf(labels, sizeof(labels), "{service=\"%s\"}",
		    statexport_prom_escape(svc->name, name, sizeof(name)));
		prom_sample(out, fam->name, labels, v);
	}
}

/* A sample with one more label: labels is "{...}", the new one goes last. */
static void
prom_labelled(FILE *out, const char *name, const char *labels, const char *label,
    const char *value, double v)
{
	char more[2 * PROM_STR_LEN + 64];

	snprintf(more, sizeof(more), "%.*s,%s=\"%s\"}", (int)strlen(labels) - 1,
	    labels, label, value);
	prom_sample(out, name, more, v);
}

static double
prom_backend_value(enum prom_metric m, const struct statview_backend *be)
{
	switch (m) {
	case M_B_UP:
		return strcmp(statview_backend_state(be), "up") == 0;
	case M_B_WEIGHT:
		return be->weight;
	case M_B_ACTIVE:
		return (double)be->active;
	case M_B_CONNS:
		return (double)be->connections;
	case M_B_FAILS:
		return (double)be->connect_failures;
	case M_B_IN:
		return (double)be->bytes_in;
	case M_B_EXCH:
		return (double)be->exchanges;
	case M_B_AGED:
		return (double)be->aged_out;
	case M_B_MAXCONN:
		return be->maxconn;
	case M_B_BACKUP:
		return be->backup;
	case M_B_RAMP:
		return be->ramp_permille != 0 ? be->ramp_permille / 1000.0 : 1;
	default:
		return (double)be->bytes_out;
	}
}

static void
prom_backend(FILE *out, const struct prom_family *fam, const char *labels,
    const struct statview_backend *be)
{
	static const char *const states[] = { "up", "down", "drain", "disabled" };
	const char *state = statview_backend_state(be);
	size_t i;

	switch (fam->metric) {
	case M_B_STATE:
		for (i = 0; i < sizeof(states) / sizeof(states[0]); i++)
			prom_labelled(out, fam->name, labels, "state", states[i],
			    strcmp(state, states[i]) == 0);
		break;
	case M_B_SPLICED:
		prom_labelled(out, fam->name, labels, "direction", "in",
		    (double)be->spliced_in);
		prom_labelled(out, fam->name, labels, "direction", "out",
		    (double)be->spliced_out);
		break;
	case M_B_LATENCY:	/* only of a check that succeeded */
		if (statview_backend_checked(be) && be->check_status == LBD_CHECK_OK)
			prom_sample(out, fam->name, labels, be->check_latency_us / 1e6);
		break;
	default:
		prom_sample(out, fam->name, labels, prom_backend_value(fam->metric, be));
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
		if (!statview_want_service(filter, svc))
			continue;
		statexport_prom_escape(svc->name, sname, sizeof(sname));
		for (j = svc->first; j < svc->first + svc->count; j++) {
			be = &snap->backends[j];
			if (be->retired || !statview_want_backend(filter, be))
				continue;
			snprintf(labels, sizeof(labels), "{service=\"%s\",backend=\"%s\"}",
			    sname, statexport_prom_escape(be->name, bname, sizeof(bname)));
			prom_backend(out, fam, labels, be);
		}
	}
}

void
statexport_prom(FILE *out, const struct statview_snap *snap,
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
