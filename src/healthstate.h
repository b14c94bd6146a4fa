/*
 * The pure half of the health checker (health.c): rise/fall, the jittered
 * schedule, matching expect across reads, quoting for messages, and the
 * deadline heap.  No sockets, clocks or globals: the caller passes time and
 * randomness in, so all of it is unit-tested (tests/unit/test_healthstate.c).
 */
#ifndef LBD_HEALTHSTATE_H
#define LBD_HEALTHSTATE_H

#include <stddef.h>
#include <stdint.h>

/*
 * The longest a probe may start after its due time so that the master wakes
 * once for a batch of due probes rather than once per probe (at 10 000
 * backends every 2s, 5 000 probes a second).  The jittered delay is drawn
 * short of its top by at least that much (hstate_margin_us), so gaps still
 * stay within interval +- jitter.
 */
#define HSTATE_SLACK_MAX_US	5000

enum hstate_change {
	HSTATE_SAME = 0,
	HSTATE_WENT_UP,
	HSTATE_WENT_DOWN,
};

/* Rise/fall of one backend, private to the master. */
struct hstate {
	int up;
	uint32_t run;		/* consecutive results against the current state */
};

void hstate_init(struct hstate *st, int up);
/* Counts one probe result; fall failures take it down, rise successes up. */
enum hstate_change hstate_result(struct hstate *st, int ok, uint32_t rise, uint32_t fall);
/* Forgets a partial run, e.g. while the backend is disabled. */
void hstate_reset_run(struct hstate *st);

/*
 * Delays in microseconds; rnd is a uniform 32-bit random number.  The first
 * probe of a backend lands anywhere within one interval so that backends
 * added together are not probed together; later ones keep drifting apart,
 * interval +- jitter_ms from the start of the previous one, less late_us at
 * the top (the slack the probe may start late by, at most 2 x jitter).
 */
uint64_t hstate_first_delay_us(uint32_t interval_ms, uint32_t rnd);
uint64_t hstate_next_delay_us(uint32_t interval_ms, uint32_t jitter_ms, uint32_t late_us,
    uint32_t rnd);
/* The slack for a jitter: a quarter of it, at most HSTATE_SLACK_MAX_US;
 * with no jitter, none (probes start on time, one wake-up each). */
uint32_t hstate_slack_us(uint32_t jitter_ms);
/*
 * What the next delay leaves at the top of interval + jitter for a probe
 * that starts late: the slack, and the master waiting for a CPU on a busy
 * machine (tens of ms seen on 2 loaded cores).  A quarter of the jitter, at
 * most HSTATE_LATE_MAX_US; never less than hstate_slack_us.
 */
#define HSTATE_LATE_MAX_US	50000
uint32_t hstate_margin_us(uint32_t jitter_ms);

/*
 * A fast generator for the jitter (splitmix64): *seed, seeded once from
 * arc4random by the caller, advances on each call.  Not for secrets; it
 * saves a getpid() and a lock per probe that libbsd's arc4random costs.
 */
uint32_t hstate_rand(uint64_t *seed);

/*
 * Looks for expect (elen > 0) in win[0..*len), the reply bytes that may
 * still hold the start of a match.  Returns 1 when found; otherwise keeps
 * only the last elen - 1 bytes (no match can start earlier), updates *len
 * and returns 0.  The caller appends the next read behind them.
 */
int hstate_expect_scan(char *win, size_t *len, const char *expect, size_t elen);

/*
 * s[0..n) as printable text for a message: \r \n \t \\ ' and other
 * unprintable bytes escaped, cut with "..." to fit in len (with the NUL).
 */
void hstate_quote(char *buf, size_t len, const char *s, size_t n);

/*
 * A binary min-heap of deadlines.  Nodes are embedded in their owner's
 * struct; idx is HHEAP_NONE while a node is not queued.  The storage is the
 * caller's, large enough for every node that can be queued at once, so no
 * operation allocates or fails.
 */
#define HHEAP_NONE	SIZE_MAX

struct hheap_node {
	uint64_t deadline;
	size_t idx;
};

struct hheap {
	struct hheap_node **v;
	size_t n;
	size_t cap;
};

void hheap_init(struct hheap *hp, struct hheap_node **storage, size_t cap);
void hheap_node_init(struct hheap_node *nd);
/* Queues nd at deadline, or moves it there if it is queued already. */
void hheap_set(struct hheap *hp, struct hheap_node *nd, uint64_t deadline);
void hheap_remove(struct hheap *hp, struct hheap_node *nd);
/* The earliest node, or NULL when the heap is empty. */
struct hheap_node *hheap_min(const struct hheap *hp);

#endif
