/*
 * A worker: one single-threaded epoll loop that accepts from the inherited
 * listeners, picks a backend, connects and relays.  It only reads the
 * master's decisions (health, admin state, weights) from the stats segment
 * and bumps its own counter row there.
 */
#ifndef LBD_WORKER_H
#define LBD_WORKER_H

#include <stdint.h>

#include "config.h"
#include "doorconf.h"
#include "statsmap.h"

/* One listen address, shared by the services that name it (sni). */
struct listener {
	int fd;				/* owned by the master; workers hold a copy */
	struct lbd_sockaddr addr;
	size_t service;			/* its default service: the one without sni */
	struct doorconf door;		/* owned: PROXY, sni, allow/deny; door.needed */
};

/*
 * Runs the worker's loop; never returns.  kick_fd is an eventfd shared by
 * all workers: a worker that is busier than a sibling writes it to wake an
 * idle one into accepting.
 */
__attribute__((noreturn))
void worker_main(struct lbd_config *conf, struct stats_map *map, uint32_t slot,
    uint32_t id, struct listener *listeners, size_t nlisteners, int kick_fd);

#endif
