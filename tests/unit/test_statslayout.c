/*
 * The stats segment at scale (statslayout.c, statsgrow.c): 10 000 backends
 * laid out by name; a reload that removes and adds thousands keeps the
 * slots, counters and admin state of the rest; a layout that does not fit
 * changes nothing and says what it needs; growing keeps every slot, row and
 * admin state, and the rows an old worker goes on writing are copied across
 * with the shared counts (maxconn slots, queued clients) kept right.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "statsmap.h"

static char dir[] = "/tmp/lbd-test-layout-XXXXXX";
static char path[128];

static void
set_addr(struct lbd_sockaddr *a, const char *ip, uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	a->len = sizeof(*sin);
}

/* A configuration of nsvc services of per backends each, named from base. */
static struct lbd_config *
make_conf(size_t nsvc, size_t per, size_t base)
{
	struct lbd_config *conf = calloc(1, sizeof(*conf));
	size_t s, b;

	assert_non_null(conf);
	conf->workers = 2;
	conf->nservices = nsvc;
	assert_non_null(conf->services = calloc(nsvc, sizeof(*conf->services)));
	for (s = 0; s < nsvc; s++) {
		struct lbd_service_conf *svc = &conf->services[s];

		snprintf(svc->name, sizeof(svc->name), "s%zu", base + s);
		svc->nlisten = 1;
		assert_non_null(svc->listen = calloc(1, sizeof(*svc->listen)));
		snprintf(svc->listen[0].text, sizeof(svc->listen[0].text), "127.0.0.1:%zu",
		    1000 + base + s);
		set_addr(&svc->listen[0], "127.0.0.1", (uint16_t)(1000 + base + s));
		svc->nbackends = per;
		assert_non_null(svc->backends = calloc(per, sizeof(*svc->backends)));
		for (b = 0; b < per; b++) {
			struct lbd_backend_conf *be = &svc->backends[b];

			snprintf(be->name, sizeof(be->name), "b%zu", b);
			snprintf(be->addr.text, sizeof(be->addr.text), "127.1.0.1:%zu", b);
			set_addr(&be->addr, "127.1.0.1", (uint16_t)b);
			be->weight = 1;
		}
	}
	return conf;
}

static void
free_conf(struct lbd_config *conf)
{
	size_t s;

	for (s = 0; s < conf->nservices; s++) {
		free(conf->services[s].listen);
		free(conf->services[s].backends);
	}
	free(conf->services);
	free(conf);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/lbd.stats", dir);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(path);
	return rmdir(dir);
}

static void
create_for(struct stats_map *map, const struct lbd_config *conf)
{
	struct stats_size size;

	stats_size_for(conf, &size);
	assert_int_equal(stats_create(map, path, &size, conf->workers, NULL), 0);
}

/* Service s's member j, by name. */
static const struct lbd_stats_backend *
member(const struct stats_map *map, const struct lbd_service_conf *svc, uint32_t j)
{
	uint32_t b = stats_service_member(map, stats_service(map, svc->slot), j);

	assert_int_not_equal(b, UINT32_MAX);
	return stats_backend(map, b);
}

static void
test_ten_thousand_and_a_reload(void **state)
{
	struct lbd_config *conf = make_conf(100, 100, 0), *next;
	struct stats_size need;
	struct stats_map map;
	double t;
	uint32_t keep;

	(void)state;
	create_for(&map, conf);
	t = now_s();
	assert_int_equal(stats_layout(&map, conf, &need), 0);
	print_message("layout of 10 000 backends: %.1f ms\n", (now_s() - t) * 1e3);
	assert_int_equal(stats_service(&map, conf->services[99].slot)->nbackends, 100);
	assert_string_equal(member(&map, &conf->services[99], 42)->name, "b42");
	assert_string_equal(stats_listen(&map, stats_service(&map,
	    conf->services[7].slot)->listen_first)->address, "127.0.0.1:1007");
	/* What a reload must keep: counters and admin state of s50/b7. */
	keep = conf->services[50].backends[7].slot;
	stats_counter(&map, 0, keep)->connections = 1234;
	stats_backend(&map, keep)->admin = LBD_ADMIN_DRAIN;

	/* Services s0..s29 go, s100..s129 come: 3 000 out, 3 000 in. */
	next = make_conf(100, 100, 30);
	t = now_s();
	assert_int_equal(stats_layout(&map, next, &need), 0);
	print_message("reload of 10 000 backends: %.1f ms\n", (now_s() - t) * 1e3);
	assert_int_equal(next->services[20].backends[7].slot, keep);	/* s50 */
	assert_int_equal(stats_counter(&map, 0, keep)->connections, 1234);
	assert_int_equal(stats_backend(&map, keep)->admin, LBD_ADMIN_DRAIN);
	assert_int_equal(stats_backend(&map, conf->services[0].backends[0].slot)->state,
	    LBD_SLOT_RETIRED);
	assert_string_equal(member(&map, &next->services[99], 3)->name, "b3");
	stats_unmap(&map);
	free_conf(conf);
	free_conf(next);
}

static void
test_full_then_grow(void **state)
{
	struct lbd_config *conf = make_conf(10, 50, 0), *big = make_conf(40, 50, 5);
	struct stats_map map, old;
	struct stats_size need;
	uint32_t keep, gen;

	(void)state;
	create_for(&map, conf);
	assert_int_equal(stats_layout(&map, conf, &need), 0);
	keep = conf->services[6].backends[3].slot;
	stats_counter(&map, 1, keep)->bytes_in = 777;
	stats_counter(&map, stats_retired_row(&map), keep)->connections = 5;
	stats_backend(&map, keep)->admin = LBD_ADMIN_DISABLED;
	gen = map.hdr->generation;
	/* 40 services where 10 fit: nothing changes, the need is said. */
	assert_int_equal(stats_layout(&map, big, &need), STATS_LAYOUT_FULL);
	assert_int_equal(map.hdr->generation, gen);
	assert_int_equal(need.services, 45);		/* 10 kept in use + 35 new */
	assert_int_equal(need.backends, 45 * 50);
	need.worker_slots = map.hdr->worker_slots + 4;
	assert_int_equal(stats_grow(&map, &old, path, &need), 0);
	assert_true(old.hdr->superseded);
	assert_true(map.hdr->max_backends >= 45 * 50);
	assert_int_equal(map.hdr->worker_slots, old.hdr->worker_slots + 4);
	assert_int_equal(stats_layout(&map, big, &need), 0);
	/* Same slot, same counters (the retired row moved with the rows). */
	assert_int_equal(big->services[1].backends[3].slot, keep);	/* s6 */
	assert_int_equal(stats_counter(&map, 1, keep)->bytes_in, 777);
	assert_int_equal(stats_counter(&map, stats_retired_row(&map), keep)->connections, 5);
	assert_int_equal(stats_backend(&map, keep)->admin, LBD_ADMIN_DISABLED);

	/* Worker 1 still writes the old file: two maxconn slots, a client
	 * queued, bytes; the copy moves the shared counts by as much. */
	stats_counter(&old, 1, keep)->slots = 2;
	stats_counter(&old, 1, keep)->bytes_in = 1000;
	stats_service_counter(&old, 1, conf->services[6].slot)->queued = 1;
	stats_sync_worker(&map, &old, 1);
	assert_int_equal(stats_counter(&map, 1, keep)->bytes_in, 1000);
	assert_int_equal(stats_limit(&map, keep)->conns, 2);
	assert_int_equal(stats_service(&map, big->services[1].slot)->queued, 1);
	stats_counter(&old, 1, keep)->slots = 0;	/* it gave them back */
	stats_service_counter(&old, 1, conf->services[6].slot)->queued = 0;
	stats_sync_worker(&map, &old, 1);
	assert_int_equal(stats_limit(&map, keep)->conns, 0);
	assert_int_equal(stats_service(&map, big->services[1].slot)->queued, 0);
	/* It exits: its totals fold into the retired row. */
	stats_retire_worker(&map, 1);
	assert_int_equal(stats_backend_total(&map, keep,
	    offsetof(struct lbd_stats_counter, bytes_in)), 1000);
	stats_unmap(&old);
	stats_unmap(&map);
	free_conf(conf);
	free_conf(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ten_thousand_and_a_reload),
		cmocka_unit_test(test_full_then_grow),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
