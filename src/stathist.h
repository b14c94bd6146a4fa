/*
 * The last few minutes of every backend's figures, one sample a second, in
 * a bounded ring, so that a status page opened now draws its charts at
 * once.  Pure: snapshots in, JSON out; the clock is the snapshots'.
 */
#ifndef LBD_STATHIST_H
#define LBD_STATHIST_H

#include <stdint.h>
#include <stdio.h>

#include "statview.h"

#define STATHIST_LEN	300	/* samples kept: five minutes at one a second */

/* One backend slot's figures; NaN where there was no sample. */
struct stathist_series {
	char service[LBD_NAME_LEN];	/* "" while the slot was never seen */
	char name[LBD_NAME_LEN];
	uint64_t last_seen;		/* tick number of its last sample */
	float active[STATHIST_LEN];
	float connections_rate[STATHIST_LEN];
	float exchanges_rate[STATHIST_LEN];
	float bytes_rate[STATHIST_LEN];	/* in and out together */
};

/* About 5 KiB a backend: series are made when their slot is first seen. */
struct stathist {
	uint64_t ticks;			/* samples pushed so far */
	uint64_t time[STATHIST_LEN];	/* unix seconds of each, 0: none */
	struct stathist_series **series;	/* by backend slot, NULL: not seen */
	size_t nseries;
};

void stathist_init(struct stathist *h);
void stathist_free(struct stathist *h);
/* One sample: snap's figures (rates only when it has them), or, with snap
 * NULL, a gap at time now (no segment to read). */
void stathist_push(struct stathist *h, const struct statview_snap *snap, uint64_t now);
/* {"interval_s":1,"time":[...],"backends":[{"service":..,"name":..,
 *  "active":[...],"connections_per_s":[...],"exchanges_per_s":[...],
 *  "bytes_per_s":[...]}]},
 * oldest first, null for a missing sample; only backends seen in the window. */
void stathist_json(FILE *out, const struct stathist *h);

#endif
