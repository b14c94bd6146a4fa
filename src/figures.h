/*
 * Numbers as lbstat shows them: byte counts in powers of 1024 that never
 * take more than five columns, durations as "3h12m", and the per-second
 * rate of a counter between two samples.  Pure; tests/unit/test_statview.c.
 */
#ifndef LBD_FIGURES_H
#define LBD_FIGURES_H

#include <stddef.h>
#include <stdint.h>

/* "999", "1.0K", "980K", "34.5G": buf, filled. */
char *figures_size(double n, char *buf, size_t len);
/* "42s", "12m5s", "3h12m", "2d5h": buf, filled. */
char *figures_duration(uint64_t seconds, char *buf, size_t len);
/* Per second from before to after; a counter that went down was reset. */
double figures_rate(uint64_t before, uint64_t after, double seconds);

#endif
