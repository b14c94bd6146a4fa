/*
 * PROXY protocol headers (HAProxy's proxy-protocol.txt, v1 text and v2
 * binary) that lbd writes towards a backend before any client byte.
 */
#ifndef LBD_PROXYPROTO_H
#define LBD_PROXYPROTO_H

#include <stddef.h>
#include <sys/socket.h>

#include "config.h"

#define PROXY_HEADER_MAX	108	/* v1's maximum; v2 for TCP/IPv6 is 52 */

/*
 * Writes the header saying a client at src connected to dst (lbd's listen
 * address).  Returns its length, or 0 if it does not fit in len.  Mixed or
 * unknown families give "PROXY UNKNOWN" (v1) or a LOCAL command (v2).
 */
size_t proxy_header(enum lbd_proxy_protocol version, const struct sockaddr *src,
    const struct sockaddr *dst, unsigned char *buf, size_t len);

#endif
