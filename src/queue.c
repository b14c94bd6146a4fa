/*
 * The service queue and the maxconn slots.  See queue.h.
 */
#include "queue.h"

int
queue_slot_take(struct stats_map *map, uint32_t row, uint32_t b, uint32_t maxconn)
{
	uint64_t *conns = &stats_limit(map, b)->conns;
	uint64_t cur = __atomic_load_n(conns, __ATOMIC_RELAXED);

	while (cur < maxconn)
		if (__atomic_compare_exchange_n(conns, &cur, cur + 1, 1, __ATOMIC_ACQUIRE,
		    __ATOMIC_RELAXED)) {
			/* Recorded after the CAS: a death between the two leaks one
			 * slot rather than giving back one never taken. */
			stats_add(&stats_counter(map, row, b)->slots, 1);
			return 1;
		}
	return 0;
}

void
queue_slot_give(struct stats_map *map, uint32_t row, uint32_t b)
{
	stats_sub(&stats_counter(map, row, b)->slots, 1);
	__atomic_fetch_sub(&stats_limit(map, b)->conns, 1, __ATOMIC_RELEASE);
}

/* Records the most clients seen waiting at once. */
static void
queue_note_max(uint64_t *max, uint64_t now)
{
	uint64_t cur = __atomic_load_n(max, __ATOMIC_RELAXED);

	while (now > cur &&
	    !__atomic_compare_exchange_n(max, &cur, now, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

uint64_t
queue_enter(struct stats_map *map, uint32_t row, uint32_t s, uint32_t max_queue)
{
	struct lbd_stats_service *ss = stats_service(map, s);
	struct lbd_stats_service_counter *ctr = stats_service_counter(map, row, s);
	uint64_t cur = __atomic_load_n(&ss->queued, __ATOMIC_RELAXED);

	/* A place first, bounded like a slot: max-queue is never passed. */
	do {
		if (max_queue != 0 && cur >= max_queue)
			return 0;
	} while (!__atomic_compare_exchange_n(&ss->queued, &cur, cur + 1, 1,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	queue_note_max(&ss->queue_max, cur + 1);
	stats_add(&ctr->queued, 1);
	stats_add(&ctr->queue_waited, 1);
	return __atomic_add_fetch(&ss->queue_ticket, 1, __ATOMIC_RELAXED);
}

void
queue_leave(struct stats_map *map, uint32_t row, uint32_t s)
{
	stats_sub(&stats_service_counter(map, row, s)->queued, 1);
	__atomic_fetch_sub(&stats_service(map, s)->queued, 1, __ATOMIC_RELAXED);
}

void
queue_publish(struct stats_map *map, uint32_t row, uint32_t s, uint64_t oldest)
{
	__atomic_store_n(&stats_service_counter(map, row, s)->queue_oldest, oldest,
	    __ATOMIC_RELEASE);
}

uint64_t
queue_min_ticket(const uint64_t *tickets, uint32_t n)
{
	uint64_t min = 0;
	uint32_t i;

	for (i = 0; i < n; i++)
		if (tickets[i] != 0 && (min == 0 || tickets[i] < min))
			min = tickets[i];
	return min;
}

uint64_t
queue_oldest(const struct stats_map *map, uint32_t s)
{
	uint64_t tickets[LBD_MAX_WORKER_SLOTS];
	uint32_t used = __atomic_load_n(&map->hdr->worker_slots_used, __ATOMIC_RELAXED);
	uint32_t row, n = 0;

	for (row = 0; row < used && row < map->hdr->worker_slots &&
	    row < LBD_MAX_WORKER_SLOTS; row++)
		if (stats_worker(map, row)->state != LBD_WORKER_FREE)
			tickets[n++] = __atomic_load_n(
			    &stats_service_counter(map, row, s)->queue_oldest, __ATOMIC_ACQUIRE);
	return queue_min_ticket(tickets, n);
}

uint64_t
queue_waiting(const struct stats_map *map, uint32_t s)
{
	return __atomic_load_n(&stats_service(map, s)->queued, __ATOMIC_RELAXED);
}

int
queue_turn(uint64_t ticket, uint64_t oldest)
{
	return oldest == 0 || ticket <= oldest;
}
