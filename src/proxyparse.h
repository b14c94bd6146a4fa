/*
 * PROXY protocol header parser (HAProxy's proxy-protocol.txt, v1 text and
 * v2 binary): the receiving side of proxyproto.c.  It reads the header a
 * client tier sends on a listener with accept-proxy (frontdoor.c), and lets
 * the tests and the fuzzer read back what the writer produced; it faces
 * hostile bytes either way.
 */
#ifndef LBD_PROXYPARSE_H
#define LBD_PROXYPARSE_H

#include <stddef.h>
#include <sys/socket.h>

#define PROXY_V1_LINE_MAX	107	/* a v1 line with its CRLF */
#define PROXY_V2_FIXED		16	/* signature, version/command, family, length */

struct proxy_info {
	int version;			/* 1 or 2 */
	int local;			/* v2 LOCAL: no client, use the socket's own endpoints */
	int socktype;			/* SOCK_STREAM, SOCK_DGRAM, or 0 if unspecified */
	struct sockaddr_storage src;	/* AF_INET or AF_INET6, else AF_UNSPEC with */
	struct sockaddr_storage dst;	/* no address (v1 UNKNOWN, v2 LOCAL/UNSPEC/UNIX) */
};

/*
 * Parses the header at the start of buf[0..len).  Returns 1 with *out filled
 * and *consumed set to the header's length (v2 TLVs are skipped), 0 if every
 * byte so far may still begin a valid header (read more and call again with
 * the whole buffer), or -1 if the bytes are not a valid header.  A v1 line is
 * judged at its CRLF, so 0 is final only once PROXY_V1_LINE_MAX bytes are in.
 * Never reads past buf[len - 1]; out and consumed are untouched unless 1.
 */
int proxy_parse(const unsigned char *buf, size_t len, struct proxy_info *out,
    size_t *consumed);

#endif
