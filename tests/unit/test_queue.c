/*
 * The service queue and the maxconn slots (src/queue.c) on a real stats
 * segment in a temporary directory: slots never pass maxconn however many
 * threads race, a dead worker's slots and places come back, tickets order
 * clients and only the oldest published one may take a slot.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "queue.h"
#include "statsmap.h"

struct fixture {
	char dir[64];
	char path[128];
	struct stats_map map;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct stats_size size = { .services = 4, .backends = 8, .listens = 4,
	    .worker_slots = 4 };

	snprintf(f->dir, sizeof(f->dir), "/tmp/lbd-test-queue-XXXXXX");
	if (f == NULL || mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/lbd.stats", f->dir);
	if (stats_create(&f->map, f->path, &size, 2, NULL) == -1)
		return -1;
	/* Two running workers in rows 0 and 1. */
	f->map.hdr->worker_slots_used = 2;
	stats_worker(&f->map, 0)->state = LBD_WORKER_RUNNING;
	stats_worker(&f->map, 1)->state = LBD_WORKER_RUNNING;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	stats_unmap(&f->map);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
test_slots_bound(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(queue_slot_take(&f->map, 0, 5, 2), 1);
	assert_int_equal(queue_slot_take(&f->map, 1, 5, 2), 1);
	assert_int_equal(queue_slot_take(&f->map, 0, 5, 2), 0);
	assert_int_equal(stats_limit(&f->map, 5)->conns, 2);
	assert_int_equal(stats_counter(&f->map, 0, 5)->slots, 1);
	queue_slot_give(&f->map, 1, 5);
	assert_int_equal(stats_counter(&f->map, 1, 5)->slots, 0);
	assert_int_equal(queue_slot_take(&f->map, 0, 5, 2), 1);
	assert_int_equal(queue_slot_take(&f->map, 0, 6, 2), 1);	/* another backend */
	assert_int_equal(stats_limit(&f->map, 5)->conns, 2);
}

/* A worker that dies gives back what it held: slots and queue places. */
static void
test_dead_worker_gives_back(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(queue_slot_take(&f->map, 0, 5, 3), 1);
	assert_int_equal(queue_slot_take(&f->map, 1, 5, 3), 1);
	assert_int_equal(queue_slot_take(&f->map, 1, 5, 3), 1);
	assert_int_not_equal(queue_enter(&f->map, 1, 2, 0), 0);
	queue_publish(&f->map, 1, 2, 1);
	stats_retire_worker(&f->map, 1);
	assert_int_equal(stats_limit(&f->map, 5)->conns, 1);
	assert_int_equal(queue_waiting(&f->map, 2), 0);
	assert_int_equal(queue_oldest(&f->map, 2), 0);
	assert_int_equal(queue_slot_take(&f->map, 0, 5, 3), 1);
}

static void
test_tickets_and_turns(void **state)
{
	struct fixture *f = *state;
	uint64_t a, b, c;

	a = queue_enter(&f->map, 0, 3, 3);
	b = queue_enter(&f->map, 1, 3, 3);
	c = queue_enter(&f->map, 0, 3, 3);
	assert_true(a < b && b < c);
	assert_int_equal(queue_enter(&f->map, 1, 3, 3), 0);	/* max-queue 3 */
	assert_int_equal(queue_waiting(&f->map, 3), 3);
	assert_int_equal(stats_service(&f->map, 3)->queue_max, 3);
	queue_publish(&f->map, 0, 3, a);
	queue_publish(&f->map, 1, 3, b);
	assert_int_equal(queue_oldest(&f->map, 3), a);
	assert_true(queue_turn(a, queue_oldest(&f->map, 3)));
	assert_false(queue_turn(b, queue_oldest(&f->map, 3)));
	/* a served: worker 0's head is now c, so b (worker 1) is oldest. */
	queue_leave(&f->map, 0, 3);
	queue_publish(&f->map, 0, 3, c);
	assert_int_equal(queue_oldest(&f->map, 3), b);
	assert_true(queue_turn(b, queue_oldest(&f->map, 3)));
	assert_false(queue_turn(c, queue_oldest(&f->map, 3)));
	assert_int_equal(queue_waiting(&f->map, 3), 2);
	assert_int_equal(stats_service_counter(&f->map, 0, 3)->queued, 1);
	/* A row of a free worker slot is not looked at. */
	stats_worker(&f->map, 1)->state = LBD_WORKER_FREE;
	assert_int_equal(queue_oldest(&f->map, 3), c);
	assert_int_equal(stats_service(&f->map, 3)->queue_max, 3);
}

static void
test_min_ticket(void **state)
{
	const uint64_t t[] = { 0, 9, 4, 0, 7 }, none[] = { 0, 0 };

	(void)state;
	assert_int_equal(queue_min_ticket(t, 5), 4);
	assert_int_equal(queue_min_ticket(none, 2), 0);
	assert_int_equal(queue_min_ticket(t, 0), 0);
	assert_true(queue_turn(5, 0));		/* nobody else waits */
	assert_true(queue_turn(5, 5));
	assert_false(queue_turn(6, 5));
}

/* Threads racing for 4 slots: the count never passes 4. */
struct race {
	struct stats_map *map;
	uint32_t row;
	int over;
};

static void *
race_run(void *arg)
{
	struct race *r = arg;
	int i;

	for (i = 0; i < 200000; i++) {
		if (!queue_slot_take(r->map, r->row, 9, 4))
			continue;
		if (__atomic_load_n(&stats_limit(r->map, 9)->conns, __ATOMIC_RELAXED) > 4)
			r->over = 1;
		queue_slot_give(r->map, r->row, 9);
	}
	return NULL;
}

static void
test_slots_race(void **state)
{
	struct fixture *f = *state;
	struct race r[6];
	pthread_t t[6];
	int i;

	for (i = 0; i < 6; i++) {
		/* Each thread its own row, as each worker has. */
		r[i] = (struct race){ .map = &f->map, .row = (uint32_t)i };
		assert_int_equal(pthread_create(&t[i], NULL, race_run, &r[i]), 0);
	}
	for (i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].over, 0);
	}
	assert_int_equal(stats_limit(&f->map, 9)->conns, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_slots_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_worker_gives_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tickets_and_turns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_min_ticket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slots_race, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
