/*
 * The services of a configuration on their listen addresses: config_load's
 * last check (conflisten.c).
 */
#ifndef LBD_CONFLISTEN_H
#define LBD_CONFLISTEN_H

struct lbd_config;

/*
 * One service twice on an address is refused.  Several services may share
 * an address when all but at most one have `sni` names, no name is claimed
 * by two of them (case-insensitive; "*.x" and "a.x" do not clash), and
 * they agree on accept-proxy, since the PROXY header comes before the
 * ClientHello.  Each error goes to report(arg, line, message), the line
 * being the later service's; returns 0, or -1 after any error.
 */
int conflisten_check(const struct lbd_config *conf,
    void (*report)(void *arg, int line, const char *msg), void *arg);

#endif
