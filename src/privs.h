/*
 * Privileges: who the workers run as, and what the master keeps.  Workers
 * drop to user/group with no way back and no capabilities; the master
 * keeps root's uid (it owns the runtime files) but only the capabilities
 * its remaining jobs need.
 */
#ifndef LBD_PRIVS_H
#define LBD_PRIVS_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

struct privs {
	int drop;			/* running as root: workers drop to uid/gid */
	uid_t uid;
	gid_t gid;
	gid_t admin_gid;
};

/* Looks up conf's user, group and admin-group.  0, or -1 with a reason. */
int privs_resolve(const struct lbd_config *conf, struct privs *p, char *err,
    size_t errlen);
/* In a new worker: becomes user/group for good.  Exits on failure. */
void privs_drop_worker(const struct privs *p);
/*
 * In the master once start-up is done: keeps CAP_NET_BIND_SERVICE (new
 * listeners on reload), CAP_SETUID and CAP_SETGID (workers), CAP_KILL (to
 * signal workers of another uid) and CAP_CHOWN (the control socket's
 * group), and drops every other capability.  A no-op when not root.
 */
int privs_limit_master(const struct privs *p);

#endif
