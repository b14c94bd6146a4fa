/*
 * The load meter, in the master: a few times a second it turns each
 * backend's exchange count (summed over the workers' rows) into a decaying
 * rate and writes it, with the backend's pick count at that moment, into
 * the backend's record -- computed once, by one owner, for every worker's
 * leastload choice.
 */
#ifndef LBD_LOADMETER_H
#define LBD_LOADMETER_H

#include "statsmap.h"

#define LOADMETER_TICK_MS	250	/* how often the rates are measured */
#define LOADMETER_DECAY_MS	2000	/* time constant of the decaying average */

struct loadmeter;

struct loadmeter *loadmeter_start(int epfd, struct stats_map *map);
void loadmeter_stop(struct loadmeter *lm);

/*
 * The decaying average after dt_ms with count events in it (pure, for the
 * unit tests and the meter alike): rate is in events per second x 1000.
 */
uint64_t loadmeter_decay(uint64_t rate, uint64_t count, uint64_t dt_ms);

#endif
