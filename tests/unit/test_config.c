/*
 * config_load (src/config.c): each case is written to a temporary file and
 * loaded; errors are captured with open_memstream and checked for their
 * exact "file:LINE: " prefix and a word of the message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "balance.h"
#include "config.h"

#include "configcase.h"

static const char full_config[] =
    "# /etc/lbd/lbd.conf\n"					/* 1 */
    "workers        = 0                  # 0 = one per online CPU\n"
    "user           = \"lbd\"\n"
    "group          = \"lbd\"\n"
    "admin-group    = \"lbd\"\n"				/* 5 */
    "runtime-dir    = \"/run/lbd\"\n"
    "maxconn        = 20000\n"
    "shutdown-grace = \"30s\"\n"
    "log-connections = false\n"
    "\n"							/* 10 */
    "service web {\n"
    "    listen          = { \"0.0.0.0:80\", \"[::]:80\" }\n"
    "    balance         = \"roundrobin\"  # roundrobin | leastconn | source\n"
    "    connect-timeout = \"3s\"\n"
    "    idle-timeout    = \"5m\"\n"				/* 15 */
    "    retries         = 2\n"
    "    proxy-protocol  = \"off\"\n"
    "\n"
    "    health {\n"
    "        interval = \"2s\"\n"				/* 20 */
    "        timeout  = \"1s\"\n"
    "        rise     = 2\n"
    "        fall     = 3\n"
    "        send     = \"\"\n"
    "        expect   = \"\"\n"				/* 25 */
    "    }\n"
    "\n"
    "    backend app1 { address = \"10.0.0.11:80\"  weight = 1 }\n"
    "    backend app2 { address = \"10.0.0.12:80\"  weight = 1 }\n"
    "}\n";							/* 30 */

static void
test_full_config(void **state)
{
	struct lbd_config *conf;
	struct lbd_service_conf *svc;
	const struct sockaddr_in *sin;
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	char buf[256];

	(void)state;
	conf = load_ok(full_config);
	assert_string_equal(conf->path, path);
	assert_true(conf->workers >= 1);
	if (online >= 1 && online <= LBD_MAX_WORKERS)
		assert_int_equal(conf->workers, online);
	assert_string_equal(conf->user, "lbd");
	assert_string_equal(conf->group, "lbd");
	assert_string_equal(conf->admin_group, "lbd");
	assert_string_equal(conf->runtime_dir, "/run/lbd");
	assert_int_equal(conf->maxconn, 20000);
	assert_int_equal(conf->shutdown_grace_ms, 30000);
	assert_false(conf->log_connections);
	assert_int_equal(conf->nservices, 1);

	svc = &conf->services[0];
	assert_string_equal(svc->name, "web");
	assert_int_equal(svc->line, 11);
	assert_int_equal(svc->nlisten, 2);
	assert_string_equal(svc->listen[0].text, "0.0.0.0:80");
	assert_string_equal(svc->listen[1].text, "[::]:80");
	assert_int_equal(svc->listen[0].ss.ss_family, AF_INET);
	assert_int_equal(svc->listen[1].ss.ss_family, AF_INET6);
	assert_int_equal(svc->balance, LBD_BALANCE_ROUNDROBIN);
	assert_int_equal(svc->connect_timeout_ms, 3000);
	assert_int_equal(svc->idle_timeout_ms, 300000);
	assert_int_equal(svc->retries, 2);
	assert_int_equal(svc->proxy_protocol, LBD_PROXY_OFF);
	assert_int_equal(svc->max_age_ms, 0);
	assert_int_equal(svc->age_quiet_ms, 250);
	assert_int_equal(svc->health.interval_ms, 2000);
	assert_int_equal(svc->health.jitter_ms, 200);	/* a tenth of interval */
	assert_int_equal(svc->health.timeout_ms, 1000);
	assert_int_equal(svc->health.rise, 2);
	assert_int_equal(svc->health.fall, 3);
	assert_string_equal(svc->health.send, "");
	assert_int_equal(svc->health.send_len, 0);
	assert_string_equal(svc->health.expect, "");

	assert_int_equal(svc->nbackends, 2);
	assert_string_equal(svc->backends[0].name, "app1");
	assert_string_equal(svc->backends[1].name, "app2");
	assert_int_equal(svc->backends[0].line, 28);
	assert_int_equal(svc->backends[1].line, 29);
	assert_int_equal(svc->backends[0].weight, 1);
	assert_string_equal(svc->backends[1].addr.text, "10.0.0.12:80");
	sin = (const void *)&svc->backends[1].addr.ss;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x0a00000c);
	assert_int_equal(ntohs(sin->sin_port), 80);
	assert_int_equal(svc->backends[1].addr.len, sizeof(*sin));
	/* the source hash's key: the name's hash, set at load (issue 19) */
	assert_true(svc->backends[0].name_hash == balance_name_hash("app1"));
	assert_true(svc->backends[1].name_hash == balance_name_hash("app2"));

	assert_string_equal(config_balance_name(svc->balance), "roundrobin");
	assert_int_equal(svc->proxy_protocol, LBD_PROXY_OFF);
	assert_int_equal(config_stats_path(conf, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/run/lbd/" LBD_STATS_FILE);
	assert_int_equal(config_control_path(conf, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/run/lbd/lbd.sock");
	assert_int_equal(config_pid_path(conf, buf, 8), -1);
	config_free(conf);
}

/* Everything but listen, backend and address has a default. */
static void
test_defaults(void **state)
{
	struct lbd_config *conf;
	struct lbd_service_conf *svc;

	(void)state;
	conf = load_ok("service web {\n"
	    "  listen = { \"127.0.0.1:8080\" }\n"
	    "  backend a { address = \"127.0.0.1:9001\" }\n"
	    "}\n");
	assert_true(conf->workers >= 1);
	assert_string_equal(conf->user, "lbd");
	assert_string_equal(conf->group, "lbd");
	assert_string_equal(conf->admin_group, "lbd");
	assert_string_equal(conf->runtime_dir, "/run/lbd");
	assert_int_equal(conf->maxconn, 20000);
	assert_int_equal(conf->shutdown_grace_ms, 30000);
	assert_false(conf->log_connections);
	assert_int_equal(conf->relay_turn, 8u << 20);
	assert_int_equal(conf->worker_stall_ms, 5000);
	svc = &conf->services[0];
	assert_int_equal(svc->line, 1);
	assert_int_equal(svc->balance, LBD_BALANCE_ROUNDROBIN);
	assert_int_equal(svc->connect_timeout_ms, 3000);
	assert_int_equal(svc->idle_timeout_ms, 300000);
	assert_int_equal(svc->retries, 2);
	assert_int_equal(svc->proxy_protocol, LBD_PROXY_OFF);
	assert_int_equal(svc->health.interval_ms, 2000);
	assert_int_equal(svc->health.jitter_ms, 200);	/* a tenth of interval */
	assert_int_equal(svc->health.timeout_ms, 1000);
	assert_int_equal(svc->health.rise, 2);
	assert_int_equal(svc->health.fall, 3);
	assert_string_equal(svc->health.send, "");
	assert_string_equal(svc->health.expect, "");
	assert_int_equal(svc->nbackends, 1);
	assert_int_equal(svc->backends[0].weight, 1);
	assert_int_equal(svc->backends[0].line, 3);
	config_free(conf);
}

static void
test_values_and_lines(void **state)
{
	struct lbd_config *conf;
	struct lbd_service_conf *svc;
	const struct sockaddr_in6 *sin6;
	struct in6_addr loop6 = IN6ADDR_LOOPBACK_INIT;

	(void)state;
	conf = load_ok("workers = 3\n"				/* 1 */
	    "maxconn = 1\n"
	    "shutdown-grace = \"250ms\"\n"
	    "log-connections = true\n"
	    "runtime-dir = \"/tmp/lbd run\"\n"			/* 5 */
	    "user = \"nobody\"\n"
	    "\n"
	    "service v6 {\n"
	    "  listen = { \"[::1]:8080\" }\n"
	    "  balance = \"leastconn\"\n"			/* 10 */
	    "  proxy-protocol = \"v1\"\n"
	    "  retries = 0\n"
	    "  connect-timeout = \"1ms\"\n"
	    "  idle-timeout = \"1h\"\n"
	    "  health { interval = \"100ms\" timeout = \"100ms\" rise = 1 fall = 100\n"
	    "           send = \"PING\\r\\n\" expect = \"PONG\" }\n"
	    "  backend one { address = \"[::1]:9001\" weight = 0 }\n"
	    "  backend two {\n"
	    "    address = \"localhost:9002\"\n"
	    "    weight = 256\n"					/* 20 */
	    "  }\n"
	    "}\n"
	    "service src {\n"
	    "  listen = { \"127.0.0.1:8081\", \"127.0.0.2:8081\" }\n"
	    "  balance = \"source\"\n"				/* 25 */
	    "  proxy-protocol = \"v2\"\n"
	    "  backend x.y_z-1 { address = \"127.0.0.1:9003\" }\n"
	    "}\n");
	assert_int_equal(conf->workers, 3);
	assert_int_equal(conf->maxconn, 1);
	assert_int_equal(conf->shutdown_grace_ms, 250);
	assert_true(conf->log_connections);
	assert_string_equal(conf->runtime_dir, "/tmp/lbd run");
	assert_string_equal(conf->user, "nobody");
	assert_int_equal(conf->nservices, 2);

	svc = &conf->services[0];
	assert_string_equal(svc->name, "v6");
	assert_int_equal(svc->line, 8);
	assert_int_equal(svc->nlisten, 1);
	sin6 = (const void *)&svc->listen[0].ss;
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_memory_equal(&sin6->sin6_addr, &loop6, sizeof(loop6));
	assert_int_equal(ntohs(sin6->sin6_port), 8080);
	assert_string_equal(svc->listen[0].text, "[::1]:8080");
	assert_int_equal(svc->balance, LBD_BALANCE_LEASTCONN);
	assert_int_equal(svc->proxy_protocol, LBD_PROXY_V1);
	assert_int_equal(svc->retries, 0);
	assert_int_equal(svc->connect_timeout_ms, 1);
	assert_int_equal(svc->idle_timeout_ms, 3600000);
	assert_int_equal(svc->health.interval_ms, 100);
	assert_int_equal(svc->health.timeout_ms, 100);
	assert_int_equal(svc->health.rise, 1);
	assert_int_equal(svc->health.fall, 100);
	assert_string_equal(svc->health.send, "PING\r\n");
	assert_int_equal(svc->health.send_len, 6);
	assert_string_equal(svc->health.expect, "PONG");
	assert_int_equal(svc->nbackends, 2);
	assert_int_equal(svc->backends[0].line, 17);
	assert_int_equal(svc->backends[0].weight, 0);
	assert_int_equal(svc->backends[0].addr.ss.ss_family, AF_INET6);
	assert_string_equal(svc->backends[1].name, "two");
	assert_int_equal(svc->backends[1].line, 18);
	assert_int_equal(svc->backends[1].weight, 256);
	assert_string_equal(svc->backends[1].addr.text, "localhost:9002");

	svc = &conf->services[1];
	assert_string_equal(svc->name, "src");
	assert_int_equal(svc->line, 23);
	assert_int_equal(svc->nlisten, 2);
	assert_int_equal(svc->balance, LBD_BALANCE_SOURCE);
	assert_int_equal(svc->proxy_protocol, LBD_PROXY_V2);
	assert_string_equal(config_balance_name(svc->balance), "source");
	assert_int_equal(svc->proxy_protocol, LBD_PROXY_V2);
	assert_string_equal(svc->backends[0].name, "x.y_z-1");
	assert_int_equal(svc->backends[0].line, 27);
	config_free(conf);
}

/* Braces inside strings and comments are not sections. */
static void
test_braces_in_strings_and_comments(void **state)
{
	struct lbd_config *conf;
	struct lbd_service_conf *svc;

	(void)state;
	conf = load_ok("# service fake { \n"				/* 1 */
	    "service web { # }\n"
	    "  listen = { \"127.0.0.1:8080\" } // }}\n"
	    "  /* backend ghost {\n"
	    "     } */\n"						/* 5 */
	    "  health {\n"
	    "    send = \"{\"\n"
	    "    expect = '}}'\n"
	    "  }\n"
	    "  backend a {\n"						/* 10 */
	    "    address = \"127.0.0.1:9001\" # {\n"
	    "  }\n"
	    "  backend b { address = \"127.0.0.1:9002\" }\n"
	    "}\n");
	svc = &conf->services[0];
	assert_int_equal(svc->line, 2);
	assert_string_equal(svc->health.send, "{");
	assert_string_equal(svc->health.expect, "}}");
	assert_int_equal(svc->nbackends, 2);
	assert_int_equal(svc->backends[0].line, 10);
	assert_int_equal(svc->backends[1].line, 13);
	config_free(conf);

	/* A string with an escaped quote and a brace, across lines. */
	conf = load_ok("service web {\n"
	    "  listen = { \"127.0.0.1:8080\" }\n"
	    "  health { send = \"a\\\"{\" }\n"
	    "  backend a { address = \"127.0.0.1:9001\" }\n"
	    "}\n");
	assert_string_equal(conf->services[0].health.send, "a\"{");
	assert_int_equal(conf->services[0].backends[0].line, 4);
	config_free(conf);
}

static void
test_unknown_keys(void **state)
{
	(void)state;
	expect_error("workers = 1\nfrobnicate = 3\n" SERVICE_HEAD BACKEND_A "}\n", 2,
	    "frobnicate");
	expect_error(SERVICE_HEAD
	    "    backend a {\n"
	    "        address = \"127.0.0.1:9001\"\n"
	    "        wieght = 2\n"
	    "    }\n"
	    "}\n", 5, "wieght");
	expect_error(SERVICE_HEAD "    colour = \"blue\"\n" BACKEND_A "}\n", 3, "colour");
	expect_error(SERVICE_HEAD "  health {\n\n  intreval = \"2s\"\n  }\n" BACKEND_A "}\n",
	    5, "intreval");
	/* After a section closes, the lines still count. */
	expect_error(SERVICE_HEAD
	    "  health {\n"
	    "    rise = 3\n"
	    "  }\n"
	    "  backend a {\n"
	    "    address = \"127.0.0.1:9001\"\n"
	    "  }\n"
	    "  typo = 1\n"
	    "}\n", 9, "typo");
}

/*
 * libconfuse 3.3 over-counts lines at comments: two extra lines for each
 * "#" or "//" comment, one for each C-style comment.  So every error that
 * libconfuse itself finds (unknown key, bad or out-of-range value, duplicate
 * title) below a comment names the wrong line, while the section lines from
 * the pre-scan stay right.  In etc/lbd.conf, "retries = 99" on line 20 is
 * reported on line 46.
 */
static void
test_line_after_comments(void **state)
{
	(void)state;
	expect_error("# one\nbogus = 2\n", 2, "bogus");
	expect_error("// one\nbogus = 2\n", 2, "bogus");
	expect_error("workers = 1 # trailing\nbogus = 2\n", 2, "bogus");
	expect_error(SERVICE_HEAD BACKEND_A "}\n# a\n// b\nbogus = 2\n", 7, "bogus");
	expect_error("# lbd.conf\n\n" SERVICE_HEAD "  retries = 99  # too many\n"
	    BACKEND_A "}\n", 5, "retries");
	expect_error("/* one */\nbogus = 2\n", 2, "bogus");
	expect_error(SERVICE_HEAD BACKEND_A "}\n\n/* a\n b */\nbogus = 2\n", 8, "bogus");
	expect_error("/* a */ /* b */\n" SERVICE_HEAD "  retries = 99\n" BACKEND_A "}\n", 4,
	    "retries");
}

static void
test_bad_durations(void **state)
{
	(void)state;
	expect_error("shutdown-grace = \"3 parsecs\"\n" SERVICE_HEAD BACKEND_A "}\n", 1,
	    "unit");
	expect_error(SERVICE_HEAD "  connect-timeout = \"3\"\n" BACKEND_A "}\n", 3,
	    "unit");
	expect_error(SERVICE_HEAD "\n  idle-timeout = 30\n" BACKEND_A "}\n", 4, "unit");
	expect_error(SERVICE_HEAD "  health {\n    timeout = \"-1s\"\n  }\n" BACKEND_A "}\n",
	    4, "timeout");
	expect_error(SERVICE_HEAD "  connect-timeout = \"5000000h\"\n" BACKEND_A "}\n", 3,
	    "too long");
	expect_error(SERVICE_HEAD "  connect-timeout = \"0ms\"\n" BACKEND_A "}\n", 1,
	    "at least 1ms");
}

static void
test_relay_turn(void **state)
{
	struct lbd_config *conf;

	(void)state;
	conf = load_ok("relay-turn = \"256K\"\n" SERVICE_HEAD BACKEND_A "}\n");
	assert_int_equal(conf->relay_turn, 256u << 10);
	config_free(conf);
	conf = load_ok("relay-turn = \"1G\"\n" SERVICE_HEAD BACKEND_A "}\n");
	assert_int_equal(conf->relay_turn, 1u << 30);
	config_free(conf);
	expect_error("workers = 1\nrelay-turn = \"8MB\"\n" SERVICE_HEAD BACKEND_A "}\n", 2,
	    "unit");
	expect_error("relay-turn = \"32K\"\n" SERVICE_HEAD BACKEND_A "}\n", 1, "64K..1G");
	expect_error("relay-turn = \"2G\"\n" SERVICE_HEAD BACKEND_A "}\n", 1, "64K..1G");
	expect_error("relay-turn = \"8G\"\n" SERVICE_HEAD BACKEND_A "}\n", 1, "too large");
}

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* head, then a line of n times c (or a quoted string of n bytes), then tail. */
static char *
long_line(const char *head, const char *open, size_t n, char c, const char *tail)
{
	size_t h = strlen(head), o = strlen(open), t = strlen(tail);
	char *text = malloc(h + o + n + t + 1);

	assert_non_null(text);
	memcpy(text, head, h);
	memcpy(text + h, open, o);
	memset(text + h + o, c, n);
	memcpy(text + h + o + n, tail, t + 1);
	return text;
}

/*
 * A line (or a quoted string) over 64 KiB is refused on its line, at once:
 * libconfuse alone took a minute over a 10 MiB word or comment.  A line of
 * exactly 64 KiB is read.
 */
static void
test_long_lines(void **state)
{
	char *text;
	double t0;

	(void)state;
	text = long_line(SERVICE_HEAD BACKEND_A "}\n", "#", 65535, 'c', "\n");
	config_free(load_ok(text));
	free(text);
	text = long_line(SERVICE_HEAD BACKEND_A "}\n", "#", 65536, 'c', "\n");
	expect_error(text, 5, "line longer than 65536 bytes");
	free(text);
	t0 = mono_s();
	text = long_line(SERVICE_HEAD BACKEND_A "}\n\n", "", 10u << 20, 'x', "\n");
	expect_error(text, 6, "line longer than 65536 bytes");
	free(text);
	text = long_line(SERVICE_HEAD BACKEND_A "}\n", "/*", 10u << 20, 'x', "*/\n");
	expect_error(text, 5, "line longer than");
	free(text);
	assert_true(mono_s() - t0 < 2.0);
	/* A quoted string may span lines; not beyond 64 KiB either. */
	text = long_line("workers = 1\nuser = \"", "", 70000, '\n', "\"\n"
	    SERVICE_HEAD BACKEND_A "}\n");
	expect_error(text, 2, "quoted string longer than 65536 bytes");
	free(text);
}

/* A forgotten host is not "every interface": refused on its line. */
static void
test_empty_host(void **state)
{
	(void)state;
	expect_error("service web {\n    listen = { \":8080\" }\n" BACKEND_A "}\n", 2,
	    "empty host");
	expect_error("service web {\n    listen = { \"[]:8080\" }\n" BACKEND_A "}\n", 2,
	    "empty host");
	expect_error(SERVICE_HEAD "  backend a {\n    address = \":9001\"\n  }\n}\n", 4,
	    "0.0.0.0:port or [::]:port");
}

/* worker-stall: a duration from 1s to 1h, errors on their line. */
static void
test_worker_stall(void **state)
{
	struct lbd_config *conf;

	(void)state;
	conf = load_ok("worker-stall = \"1s\"\n" SERVICE_HEAD BACKEND_A "}\n");
	assert_int_equal(conf->worker_stall_ms, 1000);
	config_free(conf);
	conf = load_ok("worker-stall = \"1h\"\n" SERVICE_HEAD BACKEND_A "}\n");
	assert_int_equal(conf->worker_stall_ms, 3600000);
	config_free(conf);
	expect_error("workers = 1\nworker-stall = \"999ms\"\n" SERVICE_HEAD BACKEND_A "}\n",
	    2, "1s..1h");
	expect_error("worker-stall = \"61m\"\n" SERVICE_HEAD BACKEND_A "}\n", 1, "1s..1h");
	expect_error("\n\nworker-stall = \"5\"\n" SERVICE_HEAD BACKEND_A "}\n", 3,
	    "worker-stall");
	expect_error("worker-stall = \"0s\"\n" SERVICE_HEAD BACKEND_A "}\n", 1, "1s..1h");
}

/* maxconn, backup, slowstart, queue-timeout, max-queue: defaults, values, errors. */
static void
test_protect_keys(void **state)
{
	struct lbd_config *conf;

	(void)state;
	conf = load_ok(SERVICE_HEAD BACKEND_A "}\n");
	assert_int_equal(conf->services[0].backends[0].maxconn, 0);
	assert_false(conf->services[0].backends[0].backup);
	assert_false(conf->services[0].limited);
	assert_int_equal(conf->services[0].slowstart_ms, 0);
	assert_int_equal(conf->services[0].queue_timeout_ms, 5000);
	assert_int_equal(conf->services[0].max_queue, 0);
	config_free(conf);
	conf = load_ok(SERVICE_HEAD "  slowstart = \"30s\"\n  queue-timeout = \"250ms\"\n"
	    "  max-queue = 100\n" BACKEND_A
	    "  backend b { address = \"127.0.0.1:9002\" maxconn = 10 backup = true }\n}\n");
	assert_int_equal(conf->services[0].slowstart_ms, 30000);
	assert_int_equal(conf->services[0].queue_timeout_ms, 250);
	assert_int_equal(conf->services[0].max_queue, 100);
	assert_true(conf->services[0].limited);
	assert_int_equal(conf->services[0].backends[1].maxconn, 10);
	assert_true(conf->services[0].backends[1].backup);
	assert_false(conf->services[0].backends[0].backup);
	config_free(conf);
	expect_error(SERVICE_HEAD "\n  backend a { address = \"127.0.0.1:9001\" maxconn = -1 }\n"
	    "}\n", 4, "maxconn");
	expect_error(SERVICE_HEAD "  backend a { address = \"127.0.0.1:9001\"\n"
	    "    maxconn = 1000001 }\n}\n", 4, "out of range 0..1000000");
	expect_error(SERVICE_HEAD "  backend a { address = \"127.0.0.1:9001\" backup = maybe }\n"
	    "}\n", 3, "backup");
	expect_error(SERVICE_HEAD "  max-queue = -5\n" BACKEND_A "}\n", 3, "max-queue");
	expect_error(SERVICE_HEAD "  slowstart = \"soon\"\n" BACKEND_A "}\n", 3, "slowstart");
	expect_error(SERVICE_HEAD "  queue-timeout = \"5\"\n" BACKEND_A "}\n", 3, "unit");
	expect_error(SERVICE_HEAD "  queue-timeout = \"0s\"\n" BACKEND_A "}\n", 1,
	    "at least 1ms");
}

static void
test_out_of_range(void **state)
{
	(void)state;
	expect_error("\nworkers = 257\n" SERVICE_HEAD BACKEND_A "}\n", 2, "workers");
	expect_error("workers = -1\n" SERVICE_HEAD BACKEND_A "}\n", 1, "out of range");
	expect_error("maxconn = 0\n" SERVICE_HEAD BACKEND_A "}\n", 1, "maxconn");
	expect_error("maxconn = 1000001\n" SERVICE_HEAD BACKEND_A "}\n", 1, "out of range");
	expect_error(SERVICE_HEAD "  retries = 65\n" BACKEND_A "}\n", 3, "retries");
	expect_error(SERVICE_HEAD "  retries = -1\n" BACKEND_A "}\n", 3, "retries");
	expect_error(SERVICE_HEAD
	    "  backend a {\n"
	    "    address = \"127.0.0.1:9001\"\n"
	    "    weight = 257\n"
	    "  }\n"
	    "}\n", 5, "weight");
	expect_error(SERVICE_HEAD "  backend a { address = \"127.0.0.1:9001\" weight = -1 }\n"
	    "}\n", 3, "weight");
	expect_error(SERVICE_HEAD "  health {\n    rise = 0\n  }\n" BACKEND_A "}\n", 4,
	    "rise");
	expect_error(SERVICE_HEAD "  health {\n    fall = 101\n  }\n" BACKEND_A "}\n", 4,
	    "fall");
	/* A second assignment is checked too. */
	expect_error("workers = 2\nworkers = 999\n" SERVICE_HEAD BACKEND_A "}\n", 2,
	    "workers");
}

static void
test_leastload_and_age(void **state)
{
	struct lbd_config *conf;
	struct lbd_service_conf *svc;

	(void)state;
	conf = load_ok("service web {\n"
	    "  listen = { \"127.0.0.1:8080\" }\n"
	    "  balance = \"leastload\"\n"
	    "  max-connection-age = \"60s\"\n"
	    "  age-quiet = \"1s\"\n"
	    "  backend a { address = \"127.0.0.1:9001\" }\n"
	    "}\n");
	svc = &conf->services[0];
	assert_int_equal(svc->balance, LBD_BALANCE_LEASTLOAD);
	assert_string_equal(config_balance_name(svc->balance), "leastload");
	assert_int_equal(svc->max_age_ms, 60000);
	assert_int_equal(svc->age_quiet_ms, 1000);
	config_free(conf);
	expect_error(SERVICE_HEAD "  max-connection-age = \"soon\"\n" BACKEND_A "}\n", 3,
	    "max-connection-age");
	expect_error(SERVICE_HEAD "  age-quiet = \"off\"\n" BACKEND_A "}\n", 3,
	    "age-quiet");
	expect_error(SERVICE_HEAD "  age-quiet = \"0s\"\n" BACKEND_A "}\n", 1,
	    "age-quiet must be at least 1ms");
}

static void
test_bad_keywords(void **state)
{
	(void)state;
	expect_error(SERVICE_HEAD "\n  balance = \"random\"\n" BACKEND_A "}\n", 4,
	    "roundrobin, leastconn, source or leastload");
	expect_error(SERVICE_HEAD "  proxy-protocol = \"v3\"\n" BACKEND_A "}\n", 3,
	    "off, v1 or v2");
	expect_error(SERVICE_HEAD "  proxy-protocol = \"on\"\n" BACKEND_A "}\n", 3,
	    "proxy-protocol");
	expect_error("log-connections = maybe\n" SERVICE_HEAD BACKEND_A "}\n", 1,
	    "log-connections");
}

static void
test_duplicate_names(void **state)
{
	(void)state;
	expect_error(SERVICE_HEAD BACKEND_A "}\n"
	    "service web {\n"
	    "  listen = { \"127.0.0.1:8081\" }\n"
	    BACKEND_A
	    "}\n", 5, "duplicate");
	expect_error(SERVICE_HEAD
	    BACKEND_A
	    "    backend b { address = \"127.0.0.1:9002\" }\n"
	    "    backend a { address = \"127.0.0.1:9003\" }\n"
	    "}\n", 5, "duplicate title");
}

/*
 * 10 000 backends in one service: each keeps its name and line (conflex
 * takes the titles out of libconfuse's way), quoted titles too, and a
 * duplicate at the very end is found with its line and the first one's.
 */
static void
test_ten_thousand_titles(void **state)
{
	size_t cap = 10000 * 64 + 256, len = 0, i;
	char *text = malloc(cap);
	struct lbd_config *conf;

	(void)state;
	assert_non_null(text);
	len += (size_t)snprintf(text + len, cap - len, "%s", SERVICE_HEAD);
	for (i = 0; i < 10000; i++)
		len += (size_t)snprintf(text + len, cap - len, i % 2 ?
		    "    backend b%zu { address = \"127.0.0.1:%zu\" }\n" :
		    "    backend \"b%zu\" { address = \"127.0.0.1:%zu\" }\n", i, 1000 + i % 5000);
	snprintf(text + len, cap - len, "}\n");
	conf = load_ok(text);
	assert_int_equal(conf->services[0].nbackends, 10000);
	assert_string_equal(conf->services[0].backends[9998].name, "b9998");
	assert_string_equal(conf->services[0].backends[4321].name, "b4321");
	assert_int_equal(conf->services[0].backends[4321].line, 3 + 4321);
	config_free(conf);
	snprintf(text + len, cap - len, "    backend b17 { address = \"127.0.0.1:1\" }\n}\n");
	expect_error(text, 3 + 10000, "duplicate title (first at line 20)");
	free(text);
}

static void
test_no_backend_no_listen(void **state)
{
	(void)state;
	expect_error("workers = 1\n\n"
	    "service web {\n"
	    "  listen = { \"127.0.0.1:8080\" }\n"
	    "}\n", 3, "no backend");
	expect_error("workers = 1\n"
	    "service web {\n"
	    BACKEND_A
	    "}\n", 2, "no listen");
	expect_error("workers = 1\n", 1, "no service");
	expect_error("", 1, "no service");
	expect_error(SERVICE_HEAD "  backend a { weight = 2 }\n}\n", 3, "no address");
}

static void
test_listen_twice(void **state)
{
	(void)state;
	/* Two services on one address: the line of the second. */
	expect_error(SERVICE_HEAD BACKEND_A "}\n"
	    "\n"
	    "service api {\n"
	    "  listen = { \"127.0.0.2:8080\", \"127.0.0.1:8080\" }\n"
	    BACKEND_A
	    "}\n", 6, "already used by service web (line 1)");
	/* One service, one address twice. */
	expect_error("\nservice web {\n"
	    "  listen = { \"127.0.0.1:8080\", \"127.0.0.1:8080\" }\n"
	    BACKEND_A
	    "}\n", 2, "already used");
	/* The same address written two ways. */
	expect_error("\nservice web {\n"
	    "  listen = { \"[::1]:8080\", \"[0:0::1]:8080\" }\n"
	    BACKEND_A
	    "}\n", 2, "already used");
}

static void
test_bad_addresses(void **state)
{
	(void)state;
	expect_error(SERVICE_HEAD
	    "  backend a {\n"
	    "    address = \"no-such-host.invalid:80\"\n"
	    "  }\n"
	    "}\n", 3, "cannot resolve");
	expect_error(SERVICE_HEAD "  backend a {\n    address = \"::1:80\"\n  }\n}\n", 4,
	    "[address]:port");
	expect_error(SERVICE_HEAD "  backend a {\n    address = \"127.0.0.1\"\n  }\n}\n", 4,
	    "host:port");
	expect_error("service web {\n  listen = { \"127.0.0.1:0\" }\n" BACKEND_A "}\n", 2,
	    "port");
	expect_error("service web {\n  listen = {\n    \"127.0.0.1:80\",\n    \"[::1]80\"\n"
	    "  }\n" BACKEND_A "}\n", 4, "listen");
}

/*
 * The names the scanner reads whole: the error carries the section's line.
 * A 48-character name is one too long (LBD_NAME_LEN counts the NUL).
 */
static void
test_bad_names(void **state)
{
	(void)state;
	expect_error(SERVICE_HEAD
	    "  backend abcdefghijabcdefghijabcdefghijabcdefghijabcdefgh {\n"
	    "    address = \"127.0.0.1:9001\"\n"
	    "  }\n"
	    "}\n", 3, "backend name");
	expect_error("\nservice web.1 {\n"
	    "  listen = { \"127.0.0.1:8080\" }\n"
	    "  backend a--b { address = \"127.0.0.1:9001\" }\n"
	    "  backend -- { address = \"127.0.0.1:9002\" }\n"
	    "  backend _ { address = \"127.0.0.1:0\" }\n"
	    "}\n", 6, "port");
}

/* A quoted title with a character names may not have. */
static void
test_bad_name_quoted(void **state)
{
	(void)state;
	expect_error("workers = 1\n"
	    "service \"web site\" {\n"
	    "  listen = { \"127.0.0.1:8080\" }\n"
	    BACKEND_A
	    "}\n", 2, "service name");
	expect_error(SERVICE_HEAD
	    "  backend \"a/b\" { address = \"127.0.0.1:9001\" }\n"
	    "}\n", 3, "backend name");
}

/* libconfuse reads "a@b" as one unquoted word. */
static void
test_bad_name_unquoted(void **state)
{
	(void)state;
	expect_error(SERVICE_HEAD
	    "  backend a@b {\n"
	    "    address = \"127.0.0.1:9001\"\n"
	    "  }\n"
	    "}\n", 3, "backend name");
}

/* Too long for the scanner's buffers: a 48-character service, a 60-character backend. */
static void
test_bad_name_too_long(void **state)
{
	(void)state;
	expect_error("\nservice abcdefghijabcdefghijabcdefghijabcdefghijabcdefgh {\n"
	    "  listen = { \"127.0.0.1:8080\" }\n"
	    BACKEND_A
	    "}\n", 2, "service name");
	expect_error(SERVICE_HEAD
	    "  backend abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij {\n"
	    "    address = \"127.0.0.1:9001\"\n"
	    "  }\n"
	    "}\n", 3, "backend name");
}

/* A valid quoted title keeps its line too, in the struct and in messages. */
static void
test_quoted_title_line(void **state)
{
	struct lbd_config *conf;

	(void)state;
	expect_error("\n\nservice \"web\" {\n"
	    "  listen = { \"127.0.0.1:8080\" }\n"
	    "}\n", 3, "no backend");
	conf = load_ok("\n"
	    "service \"web\" {\n"
	    "  listen = { \"127.0.0.1:8080\" }\n"
	    "  backend \"a\" { address = \"127.0.0.1:9001\" }\n"
	    "}\n");
	assert_int_equal(conf->services[0].line, 2);
	assert_int_equal(conf->services[0].backends[0].line, 4);
	config_free(conf);
}

static void
test_cut_short(void **state)
{
	(void)state;
	/* The file ends inside the service. */
	expect_error("workers = 1\n"
	    "service web {\n"
	    "  listen = { \"127.0.0.1:8080\" }\n"
	    BACKEND_A, 2, "not closed");
	/* ... inside a backend, inside the service. */
	expect_error("service x {\n"
	    "  listen = { \"127.0.0.1:8080\" }\n"
	    "  backend a {\n"
	    "    address = \"127.0.0.1:9001\"\n", 1, "not closed");
	/* ... inside a string. */
	expect_error("service x {\n"
	    "  listen = { \"127.0.0.1:8080\" }\n"
	    BACKEND_A
	    "  health { send = \"abc\n", 1, "not closed");
	/* A second service cut short after a complete first one. */
	expect_error(SERVICE_HEAD BACKEND_A "}\n"
	    "service api {\n"
	    "  listen = { \"127.0.0.1:8081\" }\n", 5, "not closed");
	/* A closing brace hidden in a comment does not close. */
	expect_error(SERVICE_HEAD BACKEND_A "# }\n", 1, "not closed");
	/* One brace too many is libconfuse's syntax error. */
	{
		struct lbd_config *conf = load_text(SERVICE_HEAD BACKEND_A "}\n}\n");

		assert_null(conf);
		assert_non_null(strstr(errors, path));
	}
}

static void
test_health_rules(void **state)
{
	(void)state;
	expect_error("\n" SERVICE_HEAD
	    "  health {\n"
	    "    interval = \"1s\"\n"
	    "    timeout = \"2s\"\n"
	    "  }\n"
	    BACKEND_A "}\n", 2, "health timeout");
	expect_error("\n" SERVICE_HEAD
	    "  health { interval = \"99ms\" timeout = \"50ms\" }\n"
	    BACKEND_A "}\n", 2, "at least 100ms");
	expect_error("\n" SERVICE_HEAD
	    "  health { timeout = \"0s\" }\n"
	    BACKEND_A "}\n", 2, "health timeout");
	expect_error("\n" SERVICE_HEAD
	    "  health { interval = \"1s\" jitter = \"501ms\" }\n"
	    BACKEND_A "}\n", 2, "jitter must be at most half the interval");
	expect_error("\n" SERVICE_HEAD
	    "  health { jitter = \"soon\" }\n"
	    BACKEND_A "}\n", 4, "jitter");
}

/* jitter: a tenth of interval unless set; 0 and half the interval allowed. */
static void
test_health_jitter(void **state)
{
	static const struct {
		const char *health;
		uint32_t jitter_ms;
	} cases[] = {
		{ "interval = \"1s\"", 100 },
		{ "interval = \"150ms\" timeout = \"100ms\"", 15 },
		{ "interval = \"1s\" jitter = \"0s\"", 0 },
		{ "interval = \"1s\" jitter = \"500ms\"", 500 },
		{ "jitter = \"50ms\"", 50 },
	};
	struct lbd_config *conf;
	char text[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), SERVICE_HEAD "  health { %s }\n" BACKEND_A "}\n",
		    cases[i].health);
		assert_non_null(conf = load_text(text));
		assert_int_equal(conf->services[0].health.jitter_ms, cases[i].jitter_ms);
		config_free(conf);
	}
}

static void
test_missing_file(void **state)
{
	char missing[200];
	size_t errlen = 0;
	FILE *err;

	(void)state;
	snprintf(missing, sizeof(missing), "%s/does-not-exist.conf", tmpdir);
	assert_non_null(err = open_memstream(&errors, &errlen));
	assert_null(config_load(missing, err));
	assert_int_equal(fclose(err), 0);
	assert_non_null(strstr(errors, missing));
	assert_non_null(strstr(errors, "No such file"));
	/* No error stream: still refused, nothing crashes. */
	assert_null(config_load(missing, NULL));
}

static void
test_runtime_dir(void **state)
{
	struct lbd_config *conf;

	(void)state;
	conf = load_text("runtime-dir = \"run/lbd\"\n" SERVICE_HEAD BACKEND_A "}\n");
	assert_null(conf);
	assert_non_null(strstr(errors, "runtime-dir = \"run/lbd\": must be an absolute path"));
	conf = load_text("runtime-dir = \"/tmp/x/../lbd\"\n" SERVICE_HEAD BACKEND_A "}\n");
	assert_non_null(conf);
	config_free(conf);
}

/* The error names the line of the runtime-dir setting. */
static void
test_runtime_dir_line(void **state)
{
	(void)state;
	expect_error("workers = 1\nruntime-dir = \"run/lbd\"\n" SERVICE_HEAD BACKEND_A "}\n",
	    2, "runtime-dir");
}

/* libconfuse 3.3 refuses a comment inside a list ("unexpected token"). */
static void
test_comment_in_list(void **state)
{
	struct lbd_config *conf;

	(void)state;
	conf = load_ok("service web {\n"
	    "  listen = {\n"
	    "    \"127.0.0.1:8080\", # the main one\n"
	    "    \"127.0.0.2:8080\"  // and another\n"
	    "  }\n"
	    BACKEND_A
	    "}\n");
	assert_int_equal(conf->services[0].nlisten, 2);
	config_free(conf);
}

/* Two services may both have a backend called x: each keeps its own line. */
static void
test_same_backend_name_two_services(void **state)
{
	struct lbd_config *conf;

	(void)state;
	conf = load_ok("service a {\n"
	    "  listen = { \"127.0.0.1:8080\" }\n"
	    "  backend y { address = \"127.0.0.1:9002\" }\n"
	    "  backend x { address = \"127.0.0.1:9001\" }\n"
	    "}\n"
	    "service b {\n"
	    "  listen = { \"127.0.0.1:8081\" }\n"
	    "  backend x { address = \"127.0.0.1:9001\" }\n"
	    "}\n");
	assert_int_equal(conf->services[0].backends[1].line, 4);
	assert_int_equal(conf->services[1].line, 6);
	assert_int_equal(conf->services[1].backends[0].line, 8);
	config_free(conf);
}

static void
test_health_limits(void **state)
{
	char text[2048];
	char send[1100];

	(void)state;
	memset(send, 'x', 1025);
	send[1025] = '\0';
	snprintf(text, sizeof(text), SERVICE_HEAD "  health { send = \"%s\" }\n"
	    BACKEND_A "}\n", send);
	expect_error(text, 1, "1024 bytes");
	send[1024] = '\0';
	snprintf(text, sizeof(text), SERVICE_HEAD "  health { send = \"%s\" }\n"
	    BACKEND_A "}\n", send);
	config_free(load_ok(text));
}

/* Not a regular file: refused with the system's reason. */
static void
test_directory(void **state)
{
	size_t errlen = 0;
	FILE *err;

	(void)state;
	assert_non_null(err = open_memstream(&errors, &errlen));
	assert_null(config_load(tmpdir, err));
	assert_int_equal(fclose(err), 0);
	assert_non_null(strstr(errors, tmpdir));
	assert_non_null(strstr(errors, "Is a directory"));
}

/* Errors in several places are all reported, each with its line. */
static void
test_several_errors(void **state)
{
	struct lbd_config *conf;
	char want[256];

	(void)state;
	conf = load_text(SERVICE_HEAD
	    "  backend a { address = \"127.0.0.1:9001\" }\n"
	    "}\n"
	    "service api {\n"
	    "  listen = { \"127.0.0.1:8081\" }\n"
	    "}\n");
	assert_null(conf);
	snprintf(want, sizeof(want), "%s:5: service api has no backend", path);
	assert_non_null(strstr(errors, want));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_full_config, teardown_case),
		cmocka_unit_test_teardown(test_defaults, teardown_case),
		cmocka_unit_test_teardown(test_values_and_lines, teardown_case),
		cmocka_unit_test_teardown(test_braces_in_strings_and_comments, teardown_case),
		cmocka_unit_test_teardown(test_unknown_keys, teardown_case),
		cmocka_unit_test_teardown(test_line_after_comments, teardown_case),
		cmocka_unit_test_teardown(test_bad_durations, teardown_case),
		cmocka_unit_test_teardown(test_out_of_range, teardown_case),
		cmocka_unit_test_teardown(test_protect_keys, teardown_case),
		cmocka_unit_test_teardown(test_bad_keywords, teardown_case),
		cmocka_unit_test_teardown(test_leastload_and_age, teardown_case),
		cmocka_unit_test_teardown(test_duplicate_names, teardown_case),
		cmocka_unit_test_teardown(test_ten_thousand_titles, teardown_case),
		cmocka_unit_test_teardown(test_no_backend_no_listen, teardown_case),
		cmocka_unit_test_teardown(test_listen_twice, teardown_case),
		cmocka_unit_test_teardown(test_bad_addresses, teardown_case),
		cmocka_unit_test_teardown(test_bad_names, teardown_case),
		cmocka_unit_test_teardown(test_bad_name_quoted, teardown_case),
		cmocka_unit_test_teardown(test_bad_name_unquoted, teardown_case),
		cmocka_unit_test_teardown(test_bad_name_too_long, teardown_case),
		cmocka_unit_test_teardown(test_quoted_title_line, teardown_case),
		cmocka_unit_test_teardown(test_cut_short, teardown_case),
		cmocka_unit_test_teardown(test_health_rules, teardown_case),
		cmocka_unit_test_teardown(test_health_jitter, teardown_case),
		cmocka_unit_test_teardown(test_missing_file, teardown_case),
		cmocka_unit_test_teardown(test_runtime_dir, teardown_case),
		cmocka_unit_test_teardown(test_runtime_dir_line, teardown_case),
		cmocka_unit_test_teardown(test_several_errors, teardown_case),
		cmocka_unit_test_teardown(test_comment_in_list, teardown_case),
		cmocka_unit_test_teardown(test_same_backend_name_two_services, teardown_case),
		cmocka_unit_test_teardown(test_health_limits, teardown_case),
		cmocka_unit_test_teardown(test_directory, teardown_case),
		cmocka_unit_test_teardown(test_relay_turn, teardown_case),
		cmocka_unit_test_teardown(test_worker_stall, teardown_case),
		cmocka_unit_test_teardown(test_long_lines, teardown_case),
		cmocka_unit_test_teardown(test_empty_host, teardown_case),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
