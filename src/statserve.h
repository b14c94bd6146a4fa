/*
 * lbstat -l: a small read-only HTTP/1.1 server for the status page
 * (statpage.html), /metrics (as lbstat -p), /stats.json (as lbstat -j -i 1)
 * and /history.json (stathist.h).  One thread, one epoll loop, a fixed
 * number of clients; the daemon's data path takes no part.
 */
#ifndef LBD_STATSERVE_H
#define LBD_STATSERVE_H

#include <stddef.h>

#include "statview.h"

/* Where the figures come from: lbstat's mapping of the segment. */
struct statserve_source {
	/*
	 * A fresh snapshot (rates left to the server), following a segment
	 * replaced by a restarted lbd; -1 with why in err while there is
	 * none to read.
	 */
	int (*sample)(void *ctx, struct statview_snap *snap, char *err, size_t errlen);
	void *ctx;
};

/*
 * Binds listen ("127.0.0.1:9100", "[::1]:9100", "*:9100") and serves until
 * SIGINT or SIGTERM.  Errors before serving are printed and return 1;
 * after that, a failing client is closed and logged.  Returns the exit
 * status.
 */
int statserve_run(const char *listen, const struct statview_filter *filter,
    const struct statserve_source *src);

#endif
