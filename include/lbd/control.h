/*
 * The control protocol between lbadmin (or socat) and the master: one
 * command line in, one or more reply lines out, the first word of the
 * first line "ok" or "error:".  The connection stays open for further
 * commands until the client closes it.
 */
#ifndef LBD_CONTROL_H
#define LBD_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "lbd/stats.h"

#define LBD_CONTROL_SOCKET	"lbd.sock"
#define LBD_CTL_LINE_MAX	256	/* with its newline: a longer request line is refused */
#define LBD_CTL_MAX_WEIGHT	256

enum lbd_ctl_command {
	LBD_CTL_DRAIN,
	LBD_CTL_DISABLE,
	LBD_CTL_ENABLE,
	LBD_CTL_WEIGHT,
	LBD_CTL_SHOW,
	LBD_CTL_RELOAD,
};

struct lbd_ctl_request {
	enum lbd_ctl_command command;
	char service[LBD_NAME_LEN];	/* "" when the command takes none */
	char backend[LBD_NAME_LEN];
	uint32_t weight;		/* LBD_CTL_WEIGHT */
};

/*
 * Parses one request line (without its newline).  Returns 0, or -1 with a
 * reason for the client in err ("unknown command 'foo'").
 */
int ctl_parse(const char *line, struct lbd_ctl_request *req, char *err,
    size_t errlen);
/* A service or backend name: 1..LBD_NAME_LEN-1 of [A-Za-z0-9._-]. */
int ctl_name_valid(const char *name);

#endif
