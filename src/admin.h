/*
 * The admin state of backends (drain, disabled, a weight set by lbadmin):
 * in the stats segment, where workers see it, and in the admin state file,
 * which lets it survive a restart.  The master alone calls these; no
 * sockets and no clients here (those are controlsock.c's).
 */
#ifndef LBD_ADMIN_H
#define LBD_ADMIN_H

#include <stddef.h>
#include <stdint.h>

struct stats_map;
struct lbd_stats_backend;

/*
 * Finds the live slot of service (and of backend, when not ""; *bslot is -1
 * otherwise).  On failure says which is missing in err and returns -1.
 */
int admin_find(const struct stats_map *map, const char *service, const char *backend,
    int *sslot, int *bslot, char *err, size_t errlen);
/*
 * Sets a backend's admin state (admin -1: keep) and weight (-1: keep; any
 * other value also marks it as set by lbadmin, so a reload keeps it).
 * Workers rebuild their schedules when the service's sched_version moves.
 * Returns 1 when something changed.
 */
int admin_set(struct stats_map *map, uint32_t sslot, uint32_t bslot, int admin, int weight);
/*
 * Writes the admin state of every live backend that differs from the
 * default to path, atomically: a crash leaves the old file or the new one,
 * never half of one.  path is shorter than PATH_MAX.
 */
int admin_save(const struct stats_map *map, const char *path, char *err, size_t errlen);
/*
 * Applies the state saved in path to the slots now in the segment.  Lines
 * naming backends no longer configured (or malformed) are dropped, and the
 * file is rewritten without them.  A missing file is no state at all.
 */
void admin_apply_file(struct stats_map *map, const char *path);

#endif
