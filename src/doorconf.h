/*
 * A listener's front door built from the configuration: the services on
 * one listen address as frontdoor candidates, with their SNI routing table
 * and lists.  Built once per (re)load, next to the listener; borrows from
 * the lbd_config, which must outlive it.
 */
#ifndef LBD_DOORCONF_H
#define LBD_DOORCONF_H

#include <stddef.h>

#include "config.h"
#include "frontdoor.h"
#include "sniroute.h"

struct doorconf {
	struct frontdoor_conf conf;		/* what frontdoor_init takes; points below */
	struct frontdoor_candidate *candidates;	/* owned; .service = index in conf->services */
	struct sniroute route;			/* owned */
	int needed;				/* 0: accept straight away, as before */
};

/*
 * Builds the door of listen address addr from every service listening on
 * it, in file order.  Returns 0, or -1 when no service listens there or
 * memory or the table fails (config_load has already refused a table that
 * cannot be built).  dc is left freeable either way.
 */
int doorconf_build(struct doorconf *dc, const struct lbd_config *conf,
    const struct lbd_sockaddr *addr);

void doorconf_free(struct doorconf *dc);

#endif
