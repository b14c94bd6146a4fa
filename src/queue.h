/*
 * The service queue and the backends' maxconn slots, in the stats segment
 * and exact across workers.  Slots: a shared per-backend count taken with a
 * compare-and-swap below maxconn and given back on close (the master gives
 * back a dead worker's from its row).  The queue: a shared ticket counter
 * orders clients by arrival; each worker publishes the ticket of its oldest
 * waiting client in its own row, and only the client holding the smallest
 * published ticket may take a freed slot.  No lock, no system call: workers
 * look when they free a slot and every QUEUE_POLL_MS while clients wait.
 *
 * How close to FIFO: strict by ticket, and a ticket is taken when a worker
 * puts the client in the queue (the order lbd handled the accepts, not of
 * the SYNs).  A slot freed in one worker waits up to QUEUE_POLL_MS for the
 * worker holding the oldest ticket.  Two exceptions: a newcomer that read
 * "nobody waits" an instant before another worker queued a client may take
 * a slot ahead of it, and a client whose connect failed retries the other
 * backends without queueing again.  Measured (tests/integration/
 * test_protect.py, 100 clients 5 ms apart, 30 slots, 2 workers): 3 to 9 of
 * 4950 pairs served out of arrival order, by 6 ms at worst.
 *
 * Pure apart from the atomics: tests/unit/test_queue.c drives it.
 */
#ifndef LBD_QUEUE_H
#define LBD_QUEUE_H

#include <stdint.h>

#include "statsmap.h"

#define QUEUE_POLL_MS		10	/* how often a worker with waiting clients looks */

/*
 * Takes one of the maxconn slots of backend slot b for worker row; 1 when
 * taken, 0 when all are in use.  Never lets the count pass maxconn, however
 * many workers race.
 */
int queue_slot_take(struct stats_map *map, uint32_t row, uint32_t b, uint32_t maxconn);
void queue_slot_give(struct stats_map *map, uint32_t row, uint32_t b);

/*
 * A client of service slot s joins the queue from worker row: its ticket,
 * or 0 when the service's max-queue (0 = no bound) is reached.  The caller
 * publishes its oldest ticket with queue_publish.
 */
uint64_t queue_enter(struct stats_map *map, uint32_t row, uint32_t s, uint32_t max_queue);
/* A client leaves it: served, timed out or gone. */
void queue_leave(struct stats_map *map, uint32_t row, uint32_t s);
/* Worker row's oldest waiting ticket for service s (0: none waits there). */
void queue_publish(struct stats_map *map, uint32_t row, uint32_t s, uint64_t oldest);

/* The smallest ticket published by any worker for service s, 0 if none. */
uint64_t queue_oldest(const struct stats_map *map, uint32_t s);
/* Clients waiting for service s now, all workers. */
uint64_t queue_waiting(const struct stats_map *map, uint32_t s);

/* Pure: may the client holding ticket take a slot, given the oldest published. */
int queue_turn(uint64_t ticket, uint64_t oldest);
/* Pure: the smallest non-zero value of n, 0 if all are 0. */
uint64_t queue_min_ticket(const uint64_t *tickets, uint32_t n);

#endif
