/*
 * Binary upgrade (SIGUSR2): the running master forks and executes the lbd
 * binary on disk again, handing it the listening sockets; the new master
 * adopts the stats segment, starts its workers, says "ready" over a socket
 * pair, and takes the pid file and the control socket once the old master
 * has let them go.  The old master's workers then finish their connections
 * and it exits.  Nothing here knows the master's own structure.
 */
#ifndef LBD_UPGRADE_H
#define LBD_UPGRADE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "statsmap.h"
#include "worker.h"

/* In main(), before anything moves: the absolute path argv[0] named. */
void upgrade_init(const char *argv0);

/* ---- the old master ---- */

/*
 * Forks; the child executes the binary again with the listeners and one end
 * of a socket pair (see lbd(8), ENVIRONMENT).  Returns the child's pid and
 * sets *chan to this end, or returns -1 having logged why.
 */
pid_t upgrade_spawn(const struct listener *ls, size_t n, const char *config_path,
    int foreground, int *chan);
/* What the new master said on chan: 1 "ready", 0 nothing yet, -1 it hung up. */
int upgrade_read(int chan);
/* Tells the new master that the pid file and the control socket are free. */
void upgrade_release(int chan);

/* ---- the new master ---- */

/*
 * Takes what an old master passed through the environment (and clears it):
 * returns the handshake socket, or -1 when this is no upgrade, and sets *ls
 * and *n to the inherited listeners (addresses read back from the sockets).
 */
int upgrade_inherit(struct listener **ls, size_t *n);
/* Says "ready" and waits, bounded, for the old master to let go. */
int upgrade_takeover(int chan, char *err, size_t errlen);
/*
 * The old master's workers, still in the segment's worker records: watched
 * through pidfds in epfd; gone(arg, slot) runs once each has exited.
 */
void upgrade_watch_workers(int epfd, const struct stats_map *map,
    void (*gone)(void *arg, uint32_t slot), void *arg);

#endif
