/*
 * Configuration loading and validation.
 *
 * libconfuse does the lexing and reports unknown keys, syntax errors and
 * duplicate section titles with their line.  Value callbacks check each
 * value as it is read, so cfg_error() still knows its line; whole-file rules
 * (no backend, two services on one address) are checked afterwards against
 * the section lines that the pre-scan (conflex.c) records.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <confuse.h>

#include "addr.h"
#include "balance.h"
#include "cidr.h"
#include "conflex.h"
#include "confnames.h"
#include "config.h"
#include "conflisten.h"
#include "sniroute.h"

struct int_range {
	const char *name;
	long min, max;
};

static const struct int_range int_ranges[] = {
	{ "workers", 0, LBD_MAX_WORKERS },
	{ "maxconn", 1, 1000000 },
	{ "backend maxconn", 0, 1000000 },	/* a backend's: 0 = unlimited */
	{ "max-queue", 0, 1000000 },
	{ "retries", 0, LBD_MAX_RETRIES },
	{ "weight", 0, 256 },
	{ "rise", 1, 100 },
	{ "fall", 1, 100 },
};

/* What config_load learns while libconfuse reads the file. */
struct load_ctx {
	FILE *errors;
	const char *path;
	int nerrors;
	struct conflex lex;		/* the raw text and its section lines */
};

/* libconfuse callbacks carry no user pointer; config_load is not reentrant. */
static struct load_ctx *load_ctx;

static void __attribute__((format(printf, 3, 4)))
config_report(struct load_ctx *ctx, int line, const char *fmt, ...)
{
	va_list ap;

	ctx->nerrors++;
	if (ctx->errors == NULL)
		return;
	fprintf(ctx->errors, "%s:%d: ", ctx->path, line);
	va_start(ap, fmt);
	vfprintf(ctx->errors, fmt, ap);
	va_end(ap);
	fputc('\n', ctx->errors);
}

static void __attribute__((format(printf, 2, 0)))
confuse_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	config_report(load_ctx, cfg != NULL ? cfg->line : 0, "%s", msg);
}

/* Called by libconfuse right after the value is read, so cfg->line is its line. */
static int
validate_int(cfg_t *cfg, cfg_opt_t *opt)
{
	long v = cfg_opt_getnint(opt, cfg_opt_size(opt) - 1);
	int in_backend = cfg->name != NULL && strcmp(cfg->name, "backend") == 0;
	const char *key = in_backend && strcmp(opt->name, "maxconn") == 0 ?
	    "backend maxconn" : opt->name;
	size_t i;

	for (i = 0; i < sizeof(int_ranges) / sizeof(int_ranges[0]); i++) {
		if (strcmp(int_ranges[i].name, key) != 0)
			continue;
		if (v < int_ranges[i].min || v > int_ranges[i].max) {
			cfg_error(cfg, "%s = %ld: out of range %ld..%ld",
			    opt->name, v, int_ranges[i].min, int_ranges[i].max);
			return -1;
		}
	}
	return 0;
}

static int
parse_duration_cb(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	const char *why;
	uint32_t ms;

	/* Keys whose default is "off" take it as a value: 0 ms. */
	if (strcmp(value, "off") == 0 && opt->def.string != NULL &&
	    strcmp(opt->def.string, "off") == 0) {
		*(const char **)result = value;
		return 0;
	}
	if (addr_parse_duration(value, &ms, &why) == -1) {
		cfg_error(cfg, "%s = \"%s\": %s", opt->name, value, why);
		return -1;
	}
	if (strcmp(opt->name, "worker-stall") == 0 &&
	    (ms < LBD_WORKER_STALL_MIN || ms > LBD_WORKER_STALL_MAX)) {
		cfg_error(cfg, "%s = \"%s\": out of range 1s..1h", opt->name, value);
		return -1;
	}
	*(const char **)result = value;
	return 0;
}

/* The only size so far is relay-turn: its range is checked here too. */
static int
parse_turn_cb(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	const char *why;
	uint32_t bytes;

	if (addr_parse_size(value, &bytes, &why) == -1) {
		cfg_error(cfg, "%s = \"%s\": %s", opt->name, value, why);
		return -1;
	}
	if (bytes < LBD_RELAY_TURN_MIN || bytes > LBD_RELAY_TURN_MAX) {
		cfg_error(cfg, "%s = \"%s\": out of range 64K..1G", opt->name, value);
		return -1;
	}
	*(const char **)result = value;
	return 0;
}

static int
parse_address_cb(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char host[256];
	const char *why;
	uint16_t port;

	if (addr_split(value, host, sizeof(host), &port, &why) == -1) {
		cfg_error(cfg, "%s \"%s\": %s", opt->name, value, why);
		return -1;
	}
	*(const char **)result = value;
	return 0;
}

static int
parse_path_cb(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	if (value[0] != '/' || strlen(value) > 200) {
		cfg_error(cfg, "%s = \"%s\": must be an absolute path of at most 200 "
		    "characters", opt->name, value);
		return -1;
	}
	*(const char **)result = value;
	return 0;
}

static int
parse_keyword_cb(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	static const char *const balance[] = { "roundrobin", "leastconn", "source",
	    "leastload", NULL };
	static const char *const proxy[] = { "off", "v1", "v2", NULL };
	const char *const *allowed = strcmp(opt->name, "balance") == 0 ? balance : proxy;
	size_t i;

	for (i = 0; allowed[i] != NULL; i++) {
		if (strcmp(allowed[i], value) == 0) {
			*(const char **)result = value;
			return 0;
		}
	}
	cfg_error(cfg, "%s = \"%s\": must be %s", opt->name, value,
	    allowed == balance ? "roundrobin, leastconn, source or leastload" :
	    "off, v1 or v2");
	return -1;
}

/* An `sni` entry: a host name, or "*." and one (sniroute.h). */
static int
parse_sni_cb(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	if (!sniroute_pattern_valid(value)) {
		cfg_error(cfg, "%s \"%s\": not a host name (letters, digits, '-', dots, at "
		    "most 253 characters, no IP address), optionally after \"*.\"",
		    opt->name, value);
		return -1;
	}
	*(const char **)result = value;
	return 0;
}

/* An `allow` or `deny` entry: "ADDR/LEN" or a bare address (cidr.h). */
static int
parse_cidr_cb(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct cidr_range r;
	const char *why;

	if (cidr_parse(value, &r, &why) == -1) {
		cfg_error(cfg, "%s \"%s\": %s", opt->name, value, why);
		return -1;
	}
	*(const char **)result = value;
	return 0;
}

#define DURATION(name, def) CFG_STR_CB(name, def, CFGF_NONE, parse_duration_cb)

static cfg_opt_t health_opts[] = {
	DURATION("interval", "2s"),
	DURATION("jitter", NULL),	/* unset: a tenth of interval */
	DURATION("timeout", "1s"),
	CFG_INT("rise", 2, CFGF_NONE),
	CFG_INT("fall", 3, CFGF_NONE),
	CFG_STR("send", "", CFGF_NONE),
	CFG_STR("expect", "", CFGF_NONE),
	CFG_END()
};

static cfg_opt_t backend_opts[] = {
	CFG_STR_CB("address", NULL, CFGF_NODEFAULT, parse_address_cb),
	CFG_INT("weight", 1, CFGF_NONE),
	CFG_INT("maxconn", 0, CFGF_NONE),
	CFG_BOOL("backup", cfg_false, CFGF_NONE),
	CFG_END()
};

static cfg_opt_t service_opts[] = {
	CFG_STR_LIST_CB("listen", NULL, CFGF_NODEFAULT, parse_address_cb),
	CFG_STR_CB("balance", "roundrobin", CFGF_NONE, parse_keyword_cb),
	DURATION("connect-timeout", "3s"),
	DURATION("idle-timeout", "5m"),
	CFG_INT("retries", 2, CFGF_NONE),
	CFG_STR_CB("proxy-protocol", "off", CFGF_NONE, parse_keyword_cb),
	DURATION("slowstart", "0s"),
	DURATION("queue-timeout", "5s"),
	CFG_INT("max-queue", 0, CFGF_NONE),
	DURATION("max-connection-age", "off"),
	DURATION("age-quiet", "250ms"),
	CFG_BOOL("accept-proxy", cfg_false, CFGF_NONE),
	CFG_STR_LIST_CB("sni", NULL, CFGF_NODEFAULT, parse_sni_cb),
	CFG_STR_LIST_CB("allow", NULL, CFGF_NODEFAULT, parse_cidr_cb),
	CFG_STR_LIST_CB("deny", NULL, CFGF_NODEFAULT, parse_cidr_cb),
	CFG_SEC("health", health_opts, CFGF_NONE),
	/* Titled in the file; conflex.c lifts the titles out (see there). */
	CFG_SEC("backend", backend_opts, CFGF_MULTI),
	CFG_END()
};

static cfg_opt_t top_opts[] = {
	CFG_INT("workers", 0, CFGF_NONE),
	CFG_STR("user", "lbd", CFGF_NONE),
	CFG_STR("group", "lbd", CFGF_NONE),
	CFG_STR("admin-group", "lbd", CFGF_NONE),
	CFG_STR_CB("runtime-dir", "/run/lbd", CFGF_NONE, parse_path_cb),
	CFG_INT("maxconn", 20000, CFGF_NONE),
	DURATION("shutdown-grace", "30s"),
	DURATION("worker-stall", "5s"),
	CFG_BOOL("log-connections", cfg_false, CFGF_NONE),
	CFG_STR_CB("relay-turn", "8M", CFGF_NONE, parse_turn_cb),
	CFG_SEC("service", service_opts, CFGF_MULTI),
	CFG_END()
};

static void
set_int_validators(cfg_t *cfg)
{
	cfg_set_validate_func(cfg, "workers", validate_int);
	cfg_set_validate_func(cfg, "maxconn", validate_int);
	cfg_set_validate_func(cfg, "service|retries", validate_int);
	cfg_set_validate_func(cfg, "service|backend|weight", validate_int);
	cfg_set_validate_func(cfg, "service|backend|maxconn", validate_int);
	cfg_set_validate_func(cfg, "service|max-queue", validate_int);
	cfg_set_validate_func(cfg, "service|health|rise", validate_int);
	cfg_set_validate_func(cfg, "service|health|fall", validate_int);
}

static int
valid_name(const char *name)
{
	const char *p;

	if (name[0] == '\0' || strlen(name) >= LBD_NAME_LEN)
		return 0;
	for (p = name; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
			return 0;
	return 1;
}

static uint32_t
get_duration(cfg_t *cfg, const char *name)
{
	const char *why;
	uint32_t ms = 0;

	/* Already checked by parse_duration_cb; defaults are valid; "off" is 0. */
	(void)addr_parse_duration(cfg_getstr(cfg, name), &ms, &why);
	return ms;
}

static int
resolve_into(struct load_ctx *ctx, int line, const char *what, const char *text,
    int passive, struct lbd_sockaddr *sa)
{
	const char *why;

	if (strlen(text) >= sizeof(sa->text)) {
		config_report(ctx, line, "%s \"%s\": address too long", what, text);
		return -1;
	}
	if (addr_resolve(text, passive, &sa->ss, &sa->len, &why) == -1) {
		config_report(ctx, line, "%s \"%s\": cannot resolve: %s", what, text, why);
		return -1;
	}
	strlcpy(sa->text, text, sizeof(sa->text));
	return 0;
}

static int
load_health(struct load_ctx *ctx, cfg_t *hcfg, struct lbd_service_conf *svc)
{
	struct lbd_health_conf *h = &svc->health;

	h->interval_ms = get_duration(hcfg, "interval");
	h->jitter_ms = cfg_getstr(hcfg, "jitter") != NULL ? get_duration(hcfg, "jitter") :
	    h->interval_ms / 10;
	h->timeout_ms = get_duration(hcfg, "timeout");
	h->rise = (uint32_t)cfg_getint(hcfg, "rise");
	h->fall = (uint32_t)cfg_getint(hcfg, "fall");
	h->send = strdup(cfg_getstr(hcfg, "send"));
	h->expect = strdup(cfg_getstr(hcfg, "expect"));
	if (h->send == NULL || h->expect == NULL) {
		config_report(ctx, svc->line, "out of memory");
		return -1;
	}
	h->send_len = strlen(h->send);
	if (h->interval_ms < 100) {
		config_report(ctx, svc->line, "service %s: health interval must be at least 100ms",
		    svc->name);
		return -1;
	}
	if (h->jitter_ms > h->interval_ms / 2) {
		config_report(ctx, svc->line,
		    "service %s: health jitter must be at most half the interval", svc->name);
		return -1;
	}
	if (h->timeout_ms == 0 || h->timeout_ms > h->interval_ms) {
		config_report(ctx, svc->line,
		    "service %s: health timeout must be between 1ms and the interval", svc->name);
		return -1;
	}
	if (h->send_len > 1024 || strlen(h->expect) > 256) {
		config_report(ctx, svc->line,
		    "service %s: health send is limited to 1024 bytes, expect to 256", svc->name);
		return -1;
	}
	return 0;
}

static int
load_backends(struct load_ctx *ctx, cfg_t *scfg, struct lbd_service_conf *svc,
    const struct conflex_section *const *secs)
{
	size_t i, n = cfg_size(scfg, "backend");
	int rc = 0;

	if (n == 0) {
		config_report(ctx, svc->line, "service %s has no backend", svc->name);
		return -1;
	}
	/* No limit on n: the worker's walk keeps its tries, not a mask (schedule.h). */
	if ((svc->backends = calloc(n, sizeof(*svc->backends))) == NULL) {
		config_report(ctx, svc->line, "out of memory");
		return -1;
	}
	svc->nbackends = n;
	for (i = 0; i < n; i++) {
		cfg_t *bcfg = cfg_getnsec(scfg, "backend", (unsigned)i);
		struct lbd_backend_conf *be = &svc->backends[i];
		const char *name = secs[i]->name;
		const char *address = cfg_getstr(bcfg, "address");

		be->line = secs[i]->line;
		if (!valid_name(name)) {
			config_report(ctx, be->line, "backend name \"%s\": use up to %d letters, "
			    "digits, '-', '_' or '.'", name, LBD_NAME_LEN - 1);
			rc = -1;
			continue;
		}
		strlcpy(be->name, name, sizeof(be->name));
		be->name_hash = balance_name_hash(be->name);
		be->weight = (uint32_t)cfg_getint(bcfg, "weight");
		be->maxconn = (uint32_t)cfg_getint(bcfg, "maxconn");
		be->backup = cfg_getbool(bcfg, "backup");
		svc->limited |= be->maxconn > 0;
		if (address == NULL) {
			config_report(ctx, be->line, "backend %s/%s has no address",
			    svc->name, name);
			rc = -1;
		} else if (resolve_into(ctx, be->line, "address", address, 0, &be->addr) == -1)
			rc = -1;
	}
	return rc;
}

static int
load_listen(struct load_ctx *ctx, cfg_t *scfg, struct lbd_service_conf *svc)
{
	size_t i, n = cfg_size(scfg, "listen");
	int rc = 0;

	if (n == 0) {
		config_report(ctx, svc->line, "service %s has no listen address", svc->name);
		return -1;
	}
	if ((svc->listen = calloc(n, sizeof(*svc->listen))) == NULL) {
		config_report(ctx, svc->line, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++)
		if (resolve_into(ctx, svc->line, "listen", cfg_getnstr(scfg, "listen",
		    (unsigned)i), 1, &svc->listen[svc->nlisten++]) == -1)
			rc = -1;
	return rc;
}

/* allow or deny: each entry was checked by parse_cidr_cb as it was read. */
static int
load_cidrs(struct load_ctx *ctx, cfg_t *scfg, const char *key,
    struct lbd_service_conf *svc, struct cidr_set *set)
{
	size_t i, n = cfg_size(scfg, key);
	const char *why;

	if (n > LBD_MAX_CIDRS) {
		config_report(ctx, svc->line, "service %s: more than %d %s entries",
		    svc->name, LBD_MAX_CIDRS, key);
		return -1;
	}
	for (i = 0; i < n; i++) {
		const char *text = cfg_getnstr(scfg, key, (unsigned)i);

		if (cidr_set_add(set, text, &why) == -1) {
			config_report(ctx, svc->line, "service %s: %s \"%s\": %s",
			    svc->name, key, text, why);
			return -1;
		}
	}
	cidr_set_finish(set);
	return 0;
}

/* accept-proxy, sni, allow and deny: what frontdoor.h needs. */
static int
load_frontdoor(struct load_ctx *ctx, cfg_t *scfg, struct lbd_service_conf *svc)
{
	size_t i, n = cfg_size(scfg, "sni");
	char *p;

	svc->accept_proxy = cfg_getbool(scfg, "accept-proxy");
	if (n > LBD_MAX_SNI_NAMES) {
		config_report(ctx, svc->line, "service %s: more than %d sni names",
		    svc->name, LBD_MAX_SNI_NAMES);
		return -1;
	}
	if (n > 0 && (svc->sni = calloc(n, sizeof(*svc->sni))) == NULL) {
		config_report(ctx, svc->line, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if ((svc->sni[i] = strdup(cfg_getnstr(scfg, "sni", (unsigned)i))) == NULL) {
			config_report(ctx, svc->line, "out of memory");
			return -1;
		}
		svc->nsni++;
		/* Names match case-insensitively; one case makes logs and checks simple. */
		for (p = svc->sni[i]; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	if (load_cidrs(ctx, scfg, "allow", svc, &svc->allow) == -1 ||
	    load_cidrs(ctx, scfg, "deny", svc, &svc->deny) == -1)
		return -1;
	return 0;
}

static int
load_service(struct load_ctx *ctx, cfg_t *scfg, struct lbd_service_conf *svc,
    const struct conflex_section *const *secs)
{
	const char *name = secs[0]->name;
	const char *balance = cfg_getstr(scfg, "balance");
	const char *proxy = cfg_getstr(scfg, "proxy-protocol");
	int rc = 0;

	svc->line = secs[0]->line;
	if (!valid_name(name)) {
		config_report(ctx, svc->line, "service name \"%s\": use up to %d letters, "
		    "digits, '-', '_' or '.'", name, LBD_NAME_LEN - 1);
		return -1;
	}
	strlcpy(svc->name, name, sizeof(svc->name));
	svc->balance = strcmp(balance, "leastconn") == 0 ? LBD_BALANCE_LEASTCONN :
	    strcmp(balance, "source") == 0 ? LBD_BALANCE_SOURCE :
	    strcmp(balance, "leastload") == 0 ? LBD_BALANCE_LEASTLOAD : LBD_BALANCE_ROUNDROBIN;
	svc->proxy_protocol = strcmp(proxy, "v1") == 0 ? LBD_PROXY_V1 :
	    strcmp(proxy, "v2") == 0 ? LBD_PROXY_V2 : LBD_PROXY_OFF;
	svc->connect_timeout_ms = get_duration(scfg, "connect-timeout");
	svc->idle_timeout_ms = get_duration(scfg, "idle-timeout");
	svc->retries = (uint32_t)cfg_getint(scfg, "retries");
	svc->slowstart_ms = get_duration(scfg, "slowstart");
	svc->queue_timeout_ms = get_duration(scfg, "queue-timeout");
	svc->max_queue = (uint32_t)cfg_getint(scfg, "max-queue");
	svc->max_age_ms = get_duration(scfg, "max-connection-age");
	svc->age_quiet_ms = get_duration(scfg, "age-quiet");
	if (svc->connect_timeout_ms == 0 || svc->idle_timeout_ms == 0 ||
	    svc->age_quiet_ms == 0 || svc->queue_timeout_ms == 0) {
		config_report(ctx, svc->line, "service %s: timeouts and age-quiet must be at least 1ms", name);
		rc = -1;
	}
	if (load_listen(ctx, scfg, svc) == -1)
		rc = -1;
	if (load_health(ctx, cfg_getsec(scfg, "health"), svc) == -1)
		rc = -1;
	if (load_backends(ctx, scfg, svc, secs + 1) == -1)
		rc = -1;
	if (load_frontdoor(ctx, scfg, svc) == -1)
		rc = -1;
	return rc;
}

/* conflisten.c's errors, in this file's format. */
static void
listen_report(void *arg, int line, const char *msg)
{
	config_report(arg, line, "%s", msg);
}

static int
load_globals(struct load_ctx *ctx, cfg_t *cfg, struct lbd_config *conf)
{
	long workers = cfg_getint(cfg, "workers");
	const char *why;

	if (workers == 0) {
		long online = sysconf(_SC_NPROCESSORS_ONLN);

		workers = online < 1 ? 1 : online > LBD_MAX_WORKERS ? LBD_MAX_WORKERS : online;
	}
	conf->workers = (uint32_t)workers;
	conf->maxconn = (uint32_t)cfg_getint(cfg, "maxconn");
	conf->shutdown_grace_ms = get_duration(cfg, "shutdown-grace");
	conf->worker_stall_ms = get_duration(cfg, "worker-stall");
	conf->log_connections = cfg_getbool(cfg, "log-connections");
	/* Already checked by parse_turn_cb; the default is valid. */
	(void)addr_parse_size(cfg_getstr(cfg, "relay-turn"), &conf->relay_turn, &why);
	conf->user = strdup(cfg_getstr(cfg, "user"));
	conf->group = strdup(cfg_getstr(cfg, "group"));
	conf->admin_group = strdup(cfg_getstr(cfg, "admin-group"));
	conf->runtime_dir = strdup(cfg_getstr(cfg, "runtime-dir"));
	if (conf->user == NULL || conf->group == NULL || conf->admin_group == NULL ||
	    conf->runtime_dir == NULL) {
		config_report(ctx, 0, "out of memory");
		return -1;
	}
	return 0;
}

/* The sections conflex recorded, as pointers in file order; at[i]: where
 * service i's is, its backends' right after it; at[n]: their count. */
struct config_sections {
	const struct conflex_section **secs;
	size_t *at;
};

/* Titles unique: services in the file, backends in each service. */
static int
check_titles(struct load_ctx *ctx, const struct config_sections *cs, size_t n)
{
	const struct conflex_section **svcs;
	size_t i, earlier;
	long dup;
	int rc = 0;

	if ((svcs = calloc(n + 1, sizeof(*svcs))) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		svcs[i] = cs->secs[cs->at[i]];
	if ((dup = confnames_dup(svcs, n, &earlier)) >= 0 && (size_t)dup < n) {
		config_report(ctx, svcs[dup]->line, "service %s: duplicate title (first at "
		    "line %d)", svcs[dup]->name, svcs[earlier]->line);
		rc = -1;
	}
	for (i = 0; i < n && dup >= 0; i++) {
		const struct conflex_section *const *bes = cs->secs + cs->at[i] + 1;
		size_t nb = cs->at[i + 1] - cs->at[i] - 1;

		if ((dup = confnames_dup(bes, nb, &earlier)) >= 0 && (size_t)dup < nb) {
			config_report(ctx, bes[dup]->line, "backend %s/%s: duplicate title "
			    "(first at line %d)", svcs[i]->name, bes[dup]->name, bes[earlier]->line);
			rc = -1;
		}
	}
	free(svcs);
	if (dup < 0)
		config_report(ctx, 0, "out of memory");
	return dup < 0 ? -1 : rc;
}

/* Matches conflex's sections with libconfuse's, which come in the same order. */
static int
config_sections(struct load_ctx *ctx, cfg_t *cfg, size_t n, struct config_sections *cs)
{
	const struct conflex *lx = &ctx->lex;
	size_t k, i = 0;

	cs->secs = calloc(lx->nsections + 1, sizeof(*cs->secs));
	cs->at = calloc(n + 1, sizeof(*cs->at));
	if (cs->secs == NULL || cs->at == NULL) {
		config_report(ctx, 0, "out of memory");
		return -1;
	}
	for (k = 0; k < lx->nsections; k++) {
		cs->secs[k] = &lx->sections[k];
		if (lx->sections[k].depth == 1 && i <= n)
			cs->at[i++] = k;
	}
	if (i != n || (n > 0 && cs->secs[0]->depth != 1)) {
		config_report(ctx, 1, "the service sections could not be told apart");
		return -1;
	}
	cs->at[n] = lx->nsections;
	for (i = 0; i < n; i++)
		if (cs->at[i + 1] - cs->at[i] - 1 !=
		    cfg_size(cfg_getnsec(cfg, "service", (unsigned)i), "backend")) {
			config_report(ctx, cs->secs[cs->at[i]]->line, "service %s: a backend "
			    "section is not where it belongs", cs->secs[cs->at[i]]->name);
			return -1;
		}
	return check_titles(ctx, cs, n);
}

static int
config_build(struct load_ctx *ctx, cfg_t *cfg, struct lbd_config *conf)
{
	struct config_sections cs = { NULL, NULL };
	size_t i, n = cfg_size(cfg, "service");
	int rc = 0;

	if (load_globals(ctx, cfg, conf) == -1)
		return -1;
	if (n == 0) {
		config_report(ctx, 1, "no service is defined");
		return -1;
	}
	if (config_sections(ctx, cfg, n, &cs) == -1) {
		rc = -1;
		goto done;
	}
	if ((conf->services = calloc(n, sizeof(*conf->services))) == NULL) {
		config_report(ctx, 0, "out of memory");
		rc = -1;
		goto done;
	}
	conf->nservices = n;
	for (i = 0; i < n; i++)
		if (load_service(ctx, cfg_getnsec(cfg, "service", (unsigned)i),
		    &conf->services[i], cs.secs + cs.at[i]) == -1)
			rc = -1;
	if (rc == 0)
		rc = conflisten_check(conf, listen_report, ctx);
done:
	free(cs.secs);
	free(cs.at);
	return rc;
}

struct lbd_config *
config_load(const char *path, FILE *errors)
{
	struct load_ctx ctx = { .errors = errors, .path = path };
	struct lbd_config *conf = NULL;
	cfg_t *cfg = NULL;
	int rc = -1;

	load_ctx = &ctx;
	if (conflex_read(&ctx.lex, path) == -1 || conflex_scan(&ctx.lex) == -1) {
		if (ctx.lex.err_line < 0 && errors != NULL)
			fprintf(errors, "%s\n", ctx.lex.err);
		if (ctx.lex.err_line < 0)
			ctx.nerrors++;
		else
			config_report(&ctx, ctx.lex.err_line, "%s", ctx.lex.err);
		goto out;
	}
	if ((cfg = cfg_init(top_opts, CFGF_NONE)) == NULL)
		goto out;
	cfg_set_error_function(cfg, confuse_error);
	set_int_validators(cfg);
	if (cfg_parse_buf(cfg, ctx.lex.text) != CFG_SUCCESS) {
		if (ctx.nerrors == 0)
			config_report(&ctx, 0, "cannot parse the file");
		goto out;
	}
	if ((conf = calloc(1, sizeof(*conf))) == NULL ||
	    (conf->path = strdup(path)) == NULL) {
		config_report(&ctx, 0, "out of memory");
		goto out;
	}
	rc = config_build(&ctx, cfg, conf);
out:
	if (cfg != NULL)
		cfg_free(cfg);
	conflex_free(&ctx.lex);
	load_ctx = NULL;
	if (rc == -1) {
		config_free(conf);
		return NULL;
	}
	return conf;
}

void
config_free(struct lbd_config *conf)
{
	size_t i;

	if (conf == NULL)
		return;
	for (i = 0; i < conf->nservices; i++) {
		free(conf->services[i].backends);
		free(conf->services[i].listen);
		free(conf->services[i].health.send);
		free(conf->services[i].health.expect);
		while (conf->services[i].nsni > 0)
			free(conf->services[i].sni[--conf->services[i].nsni]);
		free(conf->services[i].sni);
		cidr_set_free(&conf->services[i].allow);
		cidr_set_free(&conf->services[i].deny);
	}
	free(conf->services);
	free(conf->path);
	free(conf->user);
	free(conf->group);
	free(conf->admin_group);
	free(conf->runtime_dir);
	free(conf);
}

const char *
config_balance_name(enum lbd_balance balance)
{
	switch (balance) {
	case LBD_BALANCE_LEASTCONN:
		return "leastconn";
	case LBD_BALANCE_SOURCE:
		return "source";
	case LBD_BALANCE_LEASTLOAD:
		return "leastload";
	default:
		return "roundrobin";
	}
}
