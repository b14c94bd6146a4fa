/*
 * Accepting in a worker: the shared listeners (EPOLLEXCLUSIVE), bounded
 * batches, pauses (maxconn, no descriptors, an idle sibling's turn) and the
 * kick eventfd that wakes an idle sibling.
 */
#ifndef LBD_ACCEPT_H
#define LBD_ACCEPT_H

#include <stdint.h>

#include "workerstate.h"

#define ACCEPT_BATCH		8	/* accepts per wake-up, while balanced */
#define ACCEPT_PAUSE_MS		100	/* accept pause after EMFILE/ENFILE */

/* Registers the kick eventfd and starts accepting. */
void accept_start(struct worker *w);
/* A listener is readable: accept up to max. */
void accept_ready(struct worker *w, struct listener *l, int max);
/* The kick eventfd is readable: a busier sibling hands work over. */
void accept_kicked(struct worker *w);
/* Stop accepting until until_ms (0: until accept_resume). */
void accept_pause(struct worker *w, uint64_t until_ms);
void accept_resume(struct worker *w);
/* A connection ended: accept again unless paused for a while. */
void accept_conn_closed(struct worker *w);
/* After each turn of the loop: end pauses that are over. */
void accept_after_turn(struct worker *w);
/* For good (stopping): close this worker's copies of the listeners. */
void accept_close(struct worker *w);
/* Milliseconds until a pause ends, or -1 for none. */
int64_t accept_pause_left(const struct worker *w);

#endif
