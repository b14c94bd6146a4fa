/*
 * The control socket in the master: lbadmin's commands (drain, disable,
 * enable, weight, show, reload), admission by file mode and SO_PEERCRED,
 * and the admin state file that lets drain/disable/weight survive a restart.
 * Protocol: include/lbd/control.h.
 */
#ifndef LBD_CONTROLSOCK_H
#define LBD_CONTROLSOCK_H

#include <sys/types.h>

#include "statsmap.h"

struct control;

struct control_hooks {
	void (*reload)(void *arg);	/* "reload": same as SIGHUP */
	void *arg;
};

/*
 * Creates the socket at path (mode 0660, group admin_gid; a stale socket
 * file is replaced) and adds it to epfd.  Exits through fatal() on error:
 * called before the first fork.
 */
struct control *control_open(int epfd, const char *path, gid_t admin_gid,
    struct stats_map *map, const char *state_path, struct control_hooks hooks);
/* After a reload: a new admin group.  Slots are found by name in the segment. */
void control_set_admin_gid(struct control *ctl, gid_t admin_gid);
/*
 * Applies the saved admin state (state_path) to the slots now in the
 * segment; called after every stats_layout.  Unknown names are ignored.
 */
void control_apply_state(struct control *ctl);
/* Closes the socket and its clients and unlinks the socket file. */
void control_close(struct control *ctl);
/* As control_close, but the socket file stays for a new master (upgrade). */
void control_close_keep(struct control *ctl);

#endif
