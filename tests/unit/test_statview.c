/*
 * statview and statexport: what lbstat prints (table, JSON, Prometheus),
 * from a snapshot built by hand.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "statexport.h"
#include "statsmap.h"
#include "figures.h"
#include "statview.h"

static struct statview_backend *
add_backend(struct statview_snap *snap, const char *name, uint32_t weight,
    uint64_t conns, uint64_t active)
{
	struct statview_backend *be = &snap->backends[snap->nbackends];

	memset(be, 0, sizeof(*be));
	be->slot = (uint32_t)snap->nbackends++;
	snprintf(be->name, sizeof(be->name), "%s", name);
	snprintf(be->address, sizeof(be->address), "10.0.0.%zu:80", snap->nbackends);
	be->weight = weight;
	be->connections = conns;
	be->active = active;
	be->check_status = LBD_CHECK_OK;
	be->check_latency_us = 412;
	snprintf(be->check_text, sizeof(be->check_text), "ok");
	return be;
}

static struct statview_service *
add_service(struct statview_snap *snap, const char *name)
{
	struct statview_service *svc = &snap->services[snap->nservices];

	memset(svc, 0, sizeof(*svc));
	svc->slot = (uint32_t)snap->nservices++;
	snprintf(svc->name, sizeof(svc->name), "%s", name);
	svc->nlisten = 1;
	svc->listen_first = snap->nlistens;
	snprintf(snap->listens[snap->nlistens++], LBD_ADDR_LEN, "0.0.0.0:80");
	svc->first = snap->nbackends;
	return svc;
}

/* The SPEC's example: web with app1 up, app2 drained, app3 down. */
static struct statview_snap *
example(void)
{
	struct statview_snap *snap = calloc(1, sizeof(*snap));
	struct statview_service *web;
	struct statview_backend *be;

	assert_non_null(snap);
	assert_int_equal(statview_snap_reserve(snap, 8, 16, 4, 8), 0);
	snprintf(snap->version, sizeof(snap->version), "0.1.0");
	snap->pid = 4121;
	snap->master_alive = 1;
	snap->generation = 1;
	snap->workers_configured = 2;
	snap->start_time = 1000;
	snap->now = 1000 + 3 * 3600 + 12 * 60;
	snap->nworkers = 2;
	snap->workers[0] = (struct statview_worker){ .slot = 0, .id = 1, .pid = 4122,
	    .state = LBD_WORKER_RUNNING, .accepted = 10291, .active = 7 };
	snap->workers[1] = (struct statview_worker){ .slot = 1, .id = 2, .pid = 4123,
	    .state = LBD_WORKER_RUNNING, .accepted = 20047, .active = 8 };
	web = add_service(snap, "web");
	web->accepted = 30338;
	web->active = 15;
	be = add_backend(snap, "app1", 1, 10234, 12);
	be->bytes_in = 1288490188;
	be->bytes_out = UINT64_C(37044092928);
	be->spliced_in = 2;
	be->spliced_out = 9;
	be = add_backend(snap, "app2", 1, 9871, 3);
	be = add_backend(snap, "app3", 1, 9871, 0);
	be->health = LBD_HEALTH_DOWN;
	be->check_status = LBD_CHECK_FAILED;
	snprintf(be->check_text, sizeof(be->check_text), "connect: Connection refused");
	web->count = 3;
	return snap;
}

static void
snap_free(struct statview_snap *snap)
{
	statview_snap_free(snap);
	free(snap);
}

static int
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Renders into a string the caller frees. */
static char *
render(void (*fn)(FILE *, const struct statview_snap *, const struct statview_filter *),
    const struct statview_snap *snap, const struct statview_filter *filter)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	fn(fp, snap, filter);
	assert_int_equal(fclose(fp), 0);
	return buf;
}

static void
test_state(void **state)
{
	(void)state;
	assert_string_equal(stats_state_name(LBD_HEALTH_UP, LBD_ADMIN_NONE), "up");
	assert_string_equal(stats_state_name(LBD_HEALTH_DOWN, LBD_ADMIN_NONE), "down");
	assert_string_equal(stats_state_name(LBD_HEALTH_DOWN, LBD_ADMIN_DRAIN), "drain");
	assert_string_equal(stats_state_name(LBD_HEALTH_DOWN, LBD_ADMIN_DISABLED), "disabled");
	assert_string_equal(stats_state_name(LBD_HEALTH_UP, LBD_ADMIN_DISABLED), "disabled");
}

static void
test_human(void **state)
{
	char buf[16];

	(void)state;
	assert_string_equal(figures_size(0, buf, sizeof(buf)), "0");
	assert_string_equal(figures_size(999, buf, sizeof(buf)), "999");
	assert_string_equal(figures_size(1000, buf, sizeof(buf)), "1.0K");
	assert_string_equal(figures_size(980 * 1024.0, buf, sizeof(buf)), "980K");
	assert_string_equal(figures_size(1288490188, buf, sizeof(buf)), "1.2G");
	assert_string_equal(figures_size(37044092928.0, buf, sizeof(buf)), "34.5G");
	assert_string_equal(figures_size(999.7 * 1024, buf, sizeof(buf)), "1.0M");
	assert_string_equal(figures_size((double)UINT64_MAX, buf, sizeof(buf)), "16.0E");
}

static void
test_uptime(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(figures_duration(42, buf, sizeof(buf)), "42s");
	assert_string_equal(figures_duration(725, buf, sizeof(buf)), "12m5s");
	assert_string_equal(figures_duration(3 * 3600 + 12 * 60 + 7, buf, sizeof(buf)), "3h12m");
	assert_string_equal(figures_duration(2 * 86400 + 5 * 3600, buf, sizeof(buf)), "2d5h");
}

static void
test_json_escape(void **state)
{
	char buf[64], small[6];

	(void)state;
	assert_string_equal(statexport_json_escape("a\"b\\c", buf, sizeof(buf)), "a\\\"b\\\\c");
	assert_string_equal(statexport_json_escape("x\ny\x01", buf, sizeof(buf)),
	    "x\\u000ay\\u0001");
	assert_string_equal(statexport_json_escape("caf\xc3\xa9", buf, sizeof(buf)), "caf\xc3\xa9");
	assert_string_equal(statexport_json_escape("a\xff" "b\xc3", buf, sizeof(buf)),
	    "a\\ufffdb\\ufffd");
	assert_string_equal(statexport_json_escape("\xed\xa0\x80", buf, sizeof(buf)),
	    "\\ufffd\\ufffd\\ufffd");	/* a surrogate is not UTF-8 */
	assert_string_equal(statexport_json_escape("\xe0\x80\xaf", buf, sizeof(buf)),
	    "\\ufffd\\ufffd\\ufffd");	/* nor an overlong form */
	assert_string_equal(statexport_json_escape("\xf0\x9f\x98\x80!", buf, sizeof(buf)),
	    "\xf0\x9f\x98\x80!");
	/* Cut whole: never half an escape. */
	assert_string_equal(statexport_json_escape("abcd\"e", small, sizeof(small)), "abcd");
}

static void
test_prom_escape(void **state)
{
	char buf[64];

	(void)state;
	assert_string_equal(statexport_prom_escape("a\\b\"c\nd", buf, sizeof(buf)),
	    "a\\\\b\\\"c\\nd");
	assert_string_equal(statexport_prom_escape("web", buf, sizeof(buf)), "web");
}

static void
test_rate(void **state)
{
	(void)state;
	assert_true(figures_rate(100, 150, 0.5) == 100.0);
	assert_true(figures_rate(100, 30, 1.0) == 30.0);	/* reset: from 0 */
	assert_true(figures_rate(1, 2, 0) == 0.0);
}

static void
test_filter(void **state)
{
	struct statview_snap *snap = example();
	struct statview_filter f;
	char err[128];

	(void)state;
	assert_int_equal(statview_filter_parse("web", &f, err, sizeof(err)), 0);
	assert_string_equal(f.service, "web");
	assert_string_equal(f.backend, "");
	assert_int_equal(statview_filter_check(snap, &f, err, sizeof(err)), 0);
	assert_int_equal(statview_filter_parse("web/app2", &f, err, sizeof(err)), 0);
	assert_string_equal(f.backend, "app2");
	assert_int_equal(statview_filter_check(snap, &f, err, sizeof(err)), 0);
	assert_int_equal(statview_filter_parse("web/app9", &f, err, sizeof(err)), 0);
	assert_int_equal(statview_filter_check(snap, &f, err, sizeof(err)), -1);
	assert_string_equal(err, "web/app9: no such backend");
	assert_int_equal(statview_filter_parse("db", &f, err, sizeof(err)), 0);
	assert_int_equal(statview_filter_check(snap, &f, err, sizeof(err)), -1);
	assert_string_equal(err, "db: no such service");
	assert_int_equal(statview_filter_parse("web/", &f, err, sizeof(err)), -1);
	assert_int_equal(statview_filter_parse("/app1", &f, err, sizeof(err)), -1);
	assert_int_equal(statview_filter_parse("a/b/c", &f, err, sizeof(err)), -1);
	snap_free(snap);
}

static void
test_table(void **state)
{
	struct statview_snap *snap = example();
	char *out, *line;

	(void)state;
	out = render(statview_table, snap, NULL);
	line = strtok(out, "\n");
	assert_string_equal(line,
	    "lbd 0.1.0  pid 4121  up 3h12m  workers 2/2 (restarts 0)  generation 1");
	assert_string_equal(strtok(NULL, "\n"), "SERVICE  BACKEND  ADDRESS      STATE  "
	    "WEIGHT  ACTIVE  CONNS  EXCH  FAILS  IN    OUT    CHECK");
	assert_string_equal(strtok(NULL, "\n"), "web      app1     10.0.0.1:80  up     "
	    "1       12      10234  0     0      1.2G  34.5G  ok 0.4ms");
	strtok(NULL, "\n");
	assert_string_equal(strtok(NULL, "\n"), "web      app3     10.0.0.3:80  down   "
	    "1       0       9871   0     0      0     0      connect: Connection refused");
	assert_string_equal(strtok(NULL, "\n"),
	    "worker 1  pid 4122     accepted 10291 (34%)  active 7");
	strtok(NULL, "\n");
	/* app2 is up too in this example: two up backends to compare. */
	assert_string_equal(strtok(NULL, "\n"),
	    "web: imbalance active max/min 12/3, conns max/min 10234/9871 (1.04x)");
	assert_null(strtok(NULL, "\n"));
	free(out);
	snap_free(snap);
}

static void
test_table_stopped(void **state)
{
	struct statview_snap *snap = example();
	char *out;

	(void)state;
	snap->master_alive = 0;
	out = render(statview_table, snap, NULL);
	assert_true(starts_with(out, "lbd 0.1.0  pid 4121 (not running)  workers 2/2 "
	    "(restarts 0)  generation 1\n"));
	free(out);
	snap->pid = 0;		/* a clean stop */
	out = render(statview_table, snap, NULL);
	assert_true(starts_with(out, "lbd 0.1.0  stopped  workers 2/2 "));
	free(out);
	out = render(statexport_json, snap, NULL);
	assert_non_null(strstr(out, "\"running\":false,\"uptime_s\":0,"));
	free(out);
	snap_free(snap);
}

static void
test_table_aligned(void **state)
{
	struct statview_snap *snap = example();
	char *out, *line;
	long check = -1;

	(void)state;
	snprintf(snap->backends[1].name, sizeof(snap->backends[1].name),
	    "a-backend-with-a-long-name\x1b");
	out = render(statview_table, snap, NULL);
	/* Every table line has CHECK's column at the same offset. */
	for (line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		const char *at = strstr(line, "CHECK");

		if (at == NULL)
			at = strstr(line, "ok 0.4ms");
		if (at == NULL)
			at = strstr(line, "connect:");
		if (at == NULL)
			continue;
		if (check == -1)
			check = at - line;
		assert_int_equal(at - line, check);
		assert_null(strchr(line, '\x1b'));
	}
	free(out);
	snap_free(snap);
}

static void
test_rates(void **state)
{
	struct statview_snap *prev = example(), *cur = example();
	struct statview_filter f;
	char err[64], *out;

	(void)state;
	prev->mono = 10;
	cur->mono = 10.5;
	cur->backends[0].connections += 50;
	cur->backends[0].bytes_in += 1024 * 1024;
	cur->backends[1].connections += 40;
	cur->workers[0].accepted += 90;
	statview_rates(cur, prev);
	assert_true(cur->has_rates);
	assert_true(cur->backends[0].connections_rate == 100.0);
	assert_true(cur->backends[0].bytes_in_rate == 2 * 1024 * 1024.0);
	assert_true(cur->workers[0].accepted_rate == 180.0);
	assert_int_equal(statview_filter_parse("web/app1", &f, err, sizeof(err)), 0);
	out = render(statview_table, cur, &f);
	assert_non_null(strstr(out, "CONNS/s  EXCH/s  FAILS  IN/s  OUT/s"));
	assert_non_null(strstr(out, "100.0    0.0     0      2.0M  0"));
	assert_null(strstr(out, "app2"));
	assert_null(strstr(out, "worker 1"));
	free(out);
	out = render(statview_table, cur, NULL);
	assert_non_null(strstr(out, "conns/s max/min 100.0/80.0 (1.25x)"));
	assert_non_null(strstr(out, "accepted/s 180.0 (100%)"));
	free(out);
	out = render(statexport_json, cur, NULL);
	assert_non_null(strstr(out, "\"connections_per_s\":100.000,"));
	assert_non_null(strstr(out, "\"connections\":10284,"));
	free(out);
	/* Another master: its counters are not comparable. */
	cur->pid++;
	statview_rates(cur, prev);
	assert_false(cur->has_rates);
	snap_free(prev);
	snap_free(cur);
}

static void
test_weighted_imbalance(void **state)
{
	struct statview_snap *snap = example();
	char *out;

	(void)state;
	snap->backends[0].weight = 3;
	snap->backends[0].connections = 300;
	snap->backends[1].connections = 110;
	out = render(statview_table, snap, NULL);
	assert_non_null(strstr(out, "conns per weight max/min 110.0/100.0 (1.10x)"));
	free(out);
	snap->backends[1].health = LBD_HEALTH_DOWN;
	out = render(statview_table, snap, NULL);
	assert_non_null(strstr(out, "web: imbalance n/a (1 of 3 backends up)"));
	free(out);
	snap_free(snap);
}

/* With exchanges, imbalance is load: the seed's 2500 vs 800 requests. */
static void
test_exchange_imbalance(void **state)
{
	struct statview_snap *prev = example(), *cur;
	char *out;

	(void)state;
	prev->backends[0].exchanges = 2500;
	prev->backends[1].exchanges = 800;
	out = render(statview_table, prev, NULL);
	assert_non_null(strstr(out, "exch max/min 2500/800 (3.12x)"));
	free(out);
	out = render(statexport_json, prev, NULL);
	assert_non_null(strstr(out, "\"basis\":\"exchanges\",\"max\":2500.000,"));
	assert_non_null(strstr(out, "\"exchanges\":2500,\"aged_out\":0,"));
	free(out);
	out = render(statexport_prom, prev, NULL);
	assert_non_null(strstr(out, "lbd_backend_exchanges_total{service=\"web\","
	    "backend=\"app2\"} 800\n"));
	free(out);
	/* Per second under -i, per unit of weight when weights differ. */
	cur = example();
	prev->mono = 1;
	cur->mono = 2;
	cur->backends[0].exchanges = 2500 + 300;
	cur->backends[0].weight = 2;
	cur->backends[1].exchanges = 800 + 100;
	statview_rates(cur, prev);
	assert_true(cur->backends[0].exchanges_rate == 300.0);
	out = render(statview_table, cur, NULL);
	assert_non_null(strstr(out, "EXCH/s"));
	assert_non_null(strstr(out, "exch/s per weight max/min 150.0/100.0 (1.50x)"));
	free(out);
	snap_free(prev);
	snap_free(cur);
}

static void
test_json(void **state)
{
	struct statview_snap *snap = example();
	char *out;

	(void)state;
	snap->backends[1].admin = LBD_ADMIN_DISABLED;
	snap->backends[2].last_change = snap->now - 20;
	out = render(statexport_json, snap, NULL);
	assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);	/* one line */
	assert_true(starts_with(out, "{\"version\":\"0.1.0\",\"pid\":4121,"));
	assert_non_null(strstr(out, "\"uptime_s\":11520,\"generation\":1,"));
	assert_non_null(strstr(out, "\"workers\":[{\"id\":1,\"pid\":4122,\"active\":7,"
	    "\"accepted\":10291,\"restarts\":0,"));
	assert_non_null(strstr(out, "\"services\":[{\"name\":\"web\",\"listen\":[\"0.0.0.0:80\"],"
	    "\"balance\":\"roundrobin\",\"active\":15,\"accepted\":30338,\"rejected\":0,"
	    "\"exchanges\":0,\"proxy_errors\":0,\"denied\":0,\"sni_misses\":0,"
	    "\"queued\":0,\"queue_max\":0,\"queue_timeouts\":0,"));
	assert_non_null(strstr(out, "{\"name\":\"app1\",\"address\":\"10.0.0.1:80\","
	    "\"state\":\"up\",\"backup\":false,\"maxconn\":0,\"ramp\":100,"
	    "\"weight\":1,\"active\":12,\"connections\":10234,"
	    "\"connect_failures\":0,\"bytes_in\":1288490188,\"bytes_out\":37044092928,"
	    "\"spliced_in\":2,\"spliced_out\":9,\"exchanges\":0,\"aged_out\":0,"
	    "\"check\":{\"status\":\"ok\",\"latency_ms\":0.412,"));
	assert_non_null(strstr(out, "\"name\":\"app2\",\"address\":\"10.0.0.2:80\","
	    "\"state\":\"disabled\",\"backup\":false,\"maxconn\":0,\"ramp\":100,"
	    "\"weight\":1,\"active\":3,\"connections\":9871,"
	    "\"connect_failures\":0,\"bytes_in\":0,\"bytes_out\":0,"
	    "\"spliced_in\":0,\"spliced_out\":0,"));
	assert_non_null(strstr(out, "\"state\":\"disabled\""));
	assert_non_null(strstr(out, "\"check\":{\"status\":\"none\",\"latency_ms\":0.000,"));
	assert_non_null(strstr(out, "\"check\":{\"status\":\"failed\",\"latency_ms\":0.412,"
	    "\"last_change_s\":20,\"text\":\"connect: Connection refused\","
	    "\"age_s\":0.0,\"stale\":false}"));
	free(out);
	snap_free(snap);
}

/* Disabled: no check shown.  Retired (removed by a reload, old workers
 * still relaying): a table row, but no JSON or Prometheus series. */
static void
test_disabled_and_retired(void **state)
{
	struct statview_snap *snap = example();
	struct statview_backend *old;
	char *out;

	(void)state;
	snap->backends[1].admin = LBD_ADMIN_DISABLED;
	old = add_backend(snap, "old1", 1, 5, 2);
	old->retired = 1;
	snap->services[0].count = 4;
	out = render(statview_table, snap, NULL);
	assert_non_null(strstr(out, "web      app2     10.0.0.2:80  disabled  "
	    "1       3       9871   0     0      0     0      -\n"));
	assert_non_null(strstr(out, "web      old1     10.0.0.4:80  retired   "));
	assert_non_null(strstr(out, "web: imbalance n/a (1 of 3 backends up)\n"));
	free(out);
	out = render(statexport_json, snap, NULL);
	assert_null(strstr(out, "old1"));
	assert_non_null(strstr(out, "\"state\":\"disabled\""));
	free(out);
	out = render(statexport_prom, snap, NULL);
	assert_null(strstr(out, "old1"));
	assert_non_null(strstr(out, "lbd_backend_up{service=\"web\",backend=\"app2\"} 0\n"));
	assert_non_null(strstr(out, "lbd_backend_state{service=\"web\",backend=\"app2\","
	    "state=\"disabled\"} 1\n"));
	assert_null(strstr(out, "lbd_backend_check_latency_seconds{service=\"web\","
	    "backend=\"app2\"}"));
	free(out);
	snap_free(snap);
}

/* A running worker whose heartbeat is older than worker-stall is stalled,
 * whether or not the master has marked it yet; 0 = no threshold known. */
static void
test_worker_stalled(void **state)
{
	struct statview_snap *snap = example();
	char *out;

	(void)state;
	snap->worker_stall_ms = 5000;
	snap->workers[0].heartbeat_age_ms = 4999;
	assert_string_equal(statview_worker_state(snap, &snap->workers[0]), "running");
	snap->workers[0].heartbeat_age_ms = 5000;
	assert_string_equal(statview_worker_state(snap, &snap->workers[0]), "stalled");
	snap->workers[1].state = LBD_WORKER_STALLED;
	assert_string_equal(statview_worker_state(snap, &snap->workers[1]), "stalled");
	snap->workers[1].state = LBD_WORKER_STOPPING;
	snap->workers[1].heartbeat_age_ms = 9000;
	assert_string_equal(statview_worker_state(snap, &snap->workers[1]), "stopping");
	out = render(statexport_json, snap, NULL);
	assert_non_null(strstr(out, "\"state\":\"stalled\",\"heartbeat_age_ms\":5000"));
	free(out);
	out = render(statview_table, snap, NULL);
	assert_non_null(strstr(out, "stalled (no turn for 5.0s)"));
	assert_non_null(strstr(out, ", 1 stalled)"));
	free(out);
	out = render(statexport_prom, snap, NULL);
	assert_non_null(strstr(out, "lbd_worker_heartbeat_age_seconds{worker=\"1\"} 5\n"));
	free(out);
	snap->worker_stall_ms = 0;
	assert_string_equal(statview_worker_state(snap, &snap->workers[0]), "running");
	snap_free(snap);
}

/* The age of the last check, and a check older than 3 intervals marked. */
static void
test_check_age(void **state)
{
	struct statview_snap *snap = example();
	char *out;

	(void)state;
	snap->backends[0].check_interval_ms = 2000;
	snap->backends[0].check_age_ms = 6000;
	assert_false(statview_check_stale(&snap->backends[0]));
	snap->backends[0].check_age_ms = 7400;
	assert_true(statview_check_stale(&snap->backends[0]));
	snap->backends[1].check_age_ms = -1;
	out = render(statexport_json, snap, NULL);
	assert_non_null(strstr(out, "\"age_s\":7.4,\"stale\":true}"));
	assert_non_null(strstr(out, "\"age_s\":null,\"stale\":false}"));
	free(out);
	out = render(statview_table, snap, NULL);
	assert_non_null(strstr(out, " (stale 7s)"));
	free(out);
	snap_free(snap);
}

/* maxconn, backup and slow start as the table, JSON and Prometheus show them. */
static void
test_protect(void **state)
{
	struct statview_snap *snap = example();
	char *out;

	(void)state;
	snap->backends[0].maxconn = 20;
	snap->backends[1].backup = 1;
	snap->backends[2].health = LBD_HEALTH_UP;
	snap->backends[2].ramp_permille = 400;
	snap->services[0].limited = 1;
	snap->services[0].queued = 3;
	snap->services[0].queue_max = 12;
	snap->services[0].queue_timeouts = 1;
	out = render(statview_table, snap, NULL);
	assert_non_null(strstr(out, "  12/20  "));
	assert_non_null(strstr(out, " up backup "));
	assert_non_null(strstr(out, " up 40% "));
	assert_non_null(strstr(out, "web: QUEUE 3 now, 12 max, 1 timed out\n"));
	free(out);
	out = render(statexport_json, snap, NULL);
	assert_non_null(strstr(out, "\"backup\":false,\"maxconn\":20,\"ramp\":100,"));
	assert_non_null(strstr(out, "\"backup\":true,\"maxconn\":0,\"ramp\":100,"));
	assert_non_null(strstr(out, "\"backup\":false,\"maxconn\":0,\"ramp\":40,"));
	assert_non_null(strstr(out, "\"queued\":3,\"queue_max\":12,\"queue_timeouts\":1,"));
	free(out);
	out = render(statexport_prom, snap, NULL);
	assert_non_null(strstr(out, "lbd_service_queued{service=\"web\"} 3\n"));
	assert_non_null(strstr(out, "lbd_service_queue_timeouts_total{service=\"web\"} 1\n"));
	assert_non_null(strstr(out, "lbd_backend_maxconn{service=\"web\",backend=\"app1\"} 20\n"));
	assert_non_null(strstr(out, "lbd_backend_backup{service=\"web\",backend=\"app2\"} 1\n"));
	assert_non_null(strstr(out, "lbd_backend_ramp_ratio{service=\"web\",backend=\"app3\"} 0.4\n"));
	free(out);
	snap_free(snap);
}


/* A backup takes nothing while primaries are up: not compared then. */
static void
test_backup_not_compared(void **state)
{
	struct statview_snap *snap = example();
	char *out;

	(void)state;
	snap->backends[2].health = LBD_HEALTH_UP;
	snap->backends[2].backup = 1;
	snap->backends[2].connections = 0;
	out = render(statview_table, snap, NULL);
	assert_non_null(strstr(out, "conns max/min 10234/9871 (1.04x)"));
	free(out);
	snap->backends[0].admin = LBD_ADMIN_DRAIN;
	snap->backends[1].admin = LBD_ADMIN_DRAIN;
	out = render(statview_table, snap, NULL);
	assert_non_null(strstr(out, "imbalance n/a (1 of 3 backends up)"));
	free(out);
	snap_free(snap);
}

/* Each family: HELP then TYPE, once, right before its samples. */
static void
test_prom(void **state)
{
	struct statview_snap *snap = example();
	char *out, *line, family[128] = "";
	int helps = 0, types = 0;

	(void)state;
	snap->workers[1].id = 1;	/* an old worker 1 still finishing */
	snap->workers[1].state = LBD_WORKER_STOPPING;
	snprintf(snap->backends[0].name, sizeof(snap->backends[0].name), "a\"b");
	out = render(statexport_prom, snap, NULL);
	assert_non_null(strstr(out, "lbd_worker_accepted_total{worker=\"1\"} 30338\n"));
	assert_null(strstr(out, "{worker=\"2\"}"));
	assert_non_null(strstr(out, "lbd_backend_bytes_out_total{service=\"web\","
	    "backend=\"a\\\"b\"} 37044092928\n"));
	assert_non_null(strstr(out, "lbd_backend_up{service=\"web\",backend=\"app3\"} 0\n"));
	assert_non_null(strstr(out, "lbd_backend_state{service=\"web\",backend=\"app3\","
	    "state=\"down\"} 1\n"));
	assert_non_null(strstr(out, "lbd_backend_check_latency_seconds{service=\"web\","
	    "backend=\"app2\"} 0.000412\n"));
	assert_non_null(strstr(out, "\nlbd_up 1\n"));
	assert_non_null(strstr(out, "# TYPE lbd_backend_spliced_total counter\n"
	    "lbd_backend_spliced_total{service=\"web\",backend=\"a\\\"b\","
	    "direction=\"in\"} 2\n"
	    "lbd_backend_spliced_total{service=\"web\",backend=\"a\\\"b\","
	    "direction=\"out\"} 9\n"
	    "lbd_backend_spliced_total{service=\"web\",backend=\"app2\","
	    "direction=\"in\"} 0\n"));
	for (line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		if (strncmp(line, "# HELP ", 7) == 0) {
			helps++;
			sscanf(line + 7, "%127s", family);
		} else if (strncmp(line, "# TYPE ", 7) == 0) {
			types++;
			assert_int_equal(strncmp(line + 7, family, strlen(family)), 0);
			if (strstr(family, "_total") != NULL)
				assert_non_null(strstr(line, " counter"));
		} else
			assert_int_equal(strncmp(line, family, strlen(family)), 0);
	}
	assert_int_equal(helps, types);
	assert_int_equal(helps, 33);
	free(out);
	snap_free(snap);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state),
		cmocka_unit_test(test_human),
		cmocka_unit_test(test_uptime),
		cmocka_unit_test(test_json_escape),
		cmocka_unit_test(test_prom_escape),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_table_stopped),
		cmocka_unit_test(test_table_aligned),
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_weighted_imbalance),
		cmocka_unit_test(test_exchange_imbalance),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_prom),
		cmocka_unit_test(test_protect),
		cmocka_unit_test(test_backup_not_compared),
		cmocka_unit_test(test_worker_stalled),
		cmocka_unit_test(test_check_age),
		cmocka_unit_test(test_disabled_and_retired),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
