/*
 * libFuzzer target: config_load() (src/config.c, with libconfuse and
 * src/addr.c underneath) on arbitrary file contents.  Every input must load
 * or be refused with a message, never crash, leak or hang; a loaded config
 * must satisfy the invariants config.h promises.
 */
#include <assert.h>
#include <dlfcn.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "sniroute.h"

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
    struct addrinfo **);

static int fuzz_fd = -1;		/* the memfd holding the current input */
static char fuzz_path[64];		/* /proc/self/fd/N, what config_load opens */
static FILE *fuzz_errors;		/* /dev/null: the messages are not checked */

/*
 * The loader resolves "address" and "listen" values with getaddrinfo(): a
 * fuzzed host name would go to DNS, making runs slow, flaky and noisy on the
 * network.  This definition in the executable takes precedence over libc's
 * (and over the sanitizers' weak interceptor), and forwards to the real one
 * with AI_NUMERICHOST added, so names fail at once with EAI_NONAME while
 * numeric addresses and the wildcard behave as in lbd.
 */
int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
    struct addrinfo **res)
{
	static getaddrinfo_fn real;
	struct addrinfo numeric;

	if (real == NULL && (real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo")) == NULL)
		abort();
	if (hints != NULL)
		numeric = *hints;
	else {
		memset(&numeric, 0, sizeof(numeric));
		numeric.ai_family = AF_UNSPEC;
	}
	numeric.ai_flags |= AI_NUMERICHOST;
	return real(node, service, &numeric, res);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if ((fuzz_fd = memfd_create("fuzz_config", MFD_CLOEXEC)) == -1) {
		perror("memfd_create");
		exit(1);
	}
	snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d", fuzz_fd);
	if ((fuzz_errors = fopen("/dev/null", "we")) == NULL) {
		perror("/dev/null");
		exit(1);
	}
	return 0;
}

/* The runtime paths fit a sockaddr_un's sun_path or are refused. */
static void
check_paths(const struct lbd_config *conf)
{
	int (*const path_fn[])(const struct lbd_config *, char *, size_t) = {
		config_stats_path, config_control_path, config_pid_path, config_state_path,
	};
	char buf[108];
	size_t i;

	for (i = 0; i < sizeof(path_fn) / sizeof(path_fn[0]); i++) {
		memset(buf, 'x', sizeof(buf));
		if (path_fn[i](conf, buf, sizeof(buf)) == 0)
			assert(buf[0] == '/' && memchr(buf, '\0', sizeof(buf)) != NULL);
	}
}

/* A built set is sorted and disjoint: what the binary search relies on. */
static void
check_cidrs(const struct cidr_set *set)
{
	size_t i;

	assert(set->n <= LBD_MAX_CIDRS);
	for (i = 0; i < set->n; i++) {
		const struct cidr_range *r = &set->ranges[i];

		assert(r->first.hi < r->last.hi ||
		    (r->first.hi == r->last.hi && r->first.lo <= r->last.lo));
		if (i + 1 < set->n)
			assert(r->last.hi < set->ranges[i + 1].first.hi ||
			    (r->last.hi == set->ranges[i + 1].first.hi &&
			    r->last.lo < set->ranges[i + 1].first.lo));
	}
}

/* sni names valid and lower-cased; allow and deny ready for lookups. */
static void
check_frontdoor(const struct lbd_service_conf *svc)
{
	size_t i;
	const char *p;

	assert(svc->nsni <= LBD_MAX_SNI_NAMES);
	for (i = 0; i < svc->nsni; i++) {
		assert(sniroute_pattern_valid(svc->sni[i]));
		for (p = svc->sni[i]; *p != '\0'; p++)
			assert(!(*p >= 'A' && *p <= 'Z'));
	}
	check_cidrs(&svc->allow);
	check_cidrs(&svc->deny);
}

static void
check_config(const struct lbd_config *conf)
{
	size_t s, b;

	assert(conf->workers >= 1 && conf->workers <= LBD_MAX_WORKERS);
	assert(conf->nservices >= 1 && conf->services != NULL);
	assert(conf->runtime_dir != NULL && conf->runtime_dir[0] == '/');
	for (s = 0; s < conf->nservices; s++) {
		const struct lbd_service_conf *svc = &conf->services[s];

		assert(svc->name[0] != '\0' && strlen(svc->name) < LBD_NAME_LEN);
		assert(config_balance_name(svc->balance) != NULL);
		assert(svc->proxy_protocol <= LBD_PROXY_V2);
		assert(svc->nlisten >= 1 && svc->listen != NULL);
		assert(svc->nbackends >= 1 && svc->backends != NULL);
		assert(svc->retries <= LBD_MAX_RETRIES);
		assert(svc->connect_timeout_ms > 0 && svc->idle_timeout_ms > 0);
		assert(svc->health.interval_ms >= 100);
		assert(svc->health.timeout_ms >= 1 &&
		    svc->health.timeout_ms <= svc->health.interval_ms);
		assert(svc->health.send_len == strlen(svc->health.send));
		check_frontdoor(svc);
		for (b = 0; b < svc->nbackends; b++) {
			const struct lbd_backend_conf *be = &svc->backends[b];

			assert(be->name[0] != '\0' && be->weight <= 256);
			assert(be->addr.ss.ss_family == AF_INET ||
			    be->addr.ss.ss_family == AF_INET6);
		}
	}
	check_paths(conf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lbd_config *conf;

	if (ftruncate(fuzz_fd, 0) == -1 ||
	    (size > 0 && pwrite(fuzz_fd, data, size, 0) != (ssize_t)size)) {
		perror("memfd write");
		abort();
	}
	if ((conf = config_load(fuzz_path, fuzz_errors)) != NULL) {
		check_config(conf);
		config_free(conf);
	}
	return 0;
}
