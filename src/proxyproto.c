/*
 * PROXY protocol v1 and v2 header writers.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proxyproto.h"

static const unsigned char proxy_v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

static size_t
proxy_v1(const struct sockaddr *src, const struct sockaddr *dst, unsigned char *buf,
    size_t len)
{
	char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
	unsigned sp, dp;
	int n;

	if (src->sa_family == AF_INET && dst->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)src, *d = (const void *)dst;

		inet_ntop(AF_INET, &s->sin_addr, sa, sizeof(sa));
		inet_ntop(AF_INET, &d->sin_addr, da, sizeof(da));
		sp = ntohs(s->sin_port);
		dp = ntohs(d->sin_port);
		n = snprintf((char *)buf, len, "PROXY TCP4 %s %s %u %u\r\n", sa, da, sp, dp);
	} else if (src->sa_family == AF_INET6 && dst->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)src, *d = (const void *)dst;

		inet_ntop(AF_INET6, &s->sin6_addr, sa, sizeof(sa));
		inet_ntop(AF_INET6, &d->sin6_addr, da, sizeof(da));
		sp = ntohs(s->sin6_port);
		dp = ntohs(d->sin6_port);
		n = snprintf((char *)buf, len, "PROXY TCP6 %s %s %u %u\r\n", sa, da, sp, dp);
	} else
		n = snprintf((char *)buf, len, "PROXY UNKNOWN\r\n");
	return n < 0 || (size_t)n >= len ? 0 : (size_t)n;
}

static size_t
proxy_v2(const struct sockaddr *src, const struct sockaddr *dst, unsigned char *buf,
    size_t len)
{
	unsigned char *p = buf + 16;
	uint16_t addrlen;

	if (len < 16 + 36)
		return 0;
	memcpy(buf, proxy_v2_sig, sizeof(proxy_v2_sig));
	if (src->sa_family == AF_INET && dst->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)src, *d = (const void *)dst;

		buf[12] = 0x21;		/* version 2, PROXY */
		buf[13] = 0x11;		/* TCP over IPv4 */
		memcpy(p, &s->sin_addr, 4);
		memcpy(p + 4, &d->sin_addr, 4);
		memcpy(p + 8, &s->sin_port, 2);
		memcpy(p + 10, &d->sin_port, 2);
		addrlen = 12;
	} else if (src->sa_family == AF_INET6 && dst->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)src, *d = (const void *)dst;

		buf[12] = 0x21;
		buf[13] = 0x21;		/* TCP over IPv6 */
		memcpy(p, &s->sin6_addr, 16);
		memcpy(p + 16, &d->sin6_addr, 16);
		memcpy(p + 32, &s->sin6_port, 2);
		memcpy(p + 34, &d->sin6_port, 2);
		addrlen = 36;
	} else {
		buf[12] = 0x20;		/* version 2, LOCAL: the backend uses its own view */
		buf[13] = 0x00;
		addrlen = 0;
	}
	buf[14] = (unsigned char)(addrlen >> 8);
	buf[15] = (unsigned char)(addrlen & 0xff);
	return 16 + (size_t)addrlen;
}

size_t
proxy_header(enum lbd_proxy_protocol version, const struct sockaddr *src,
    const struct sockaddr *dst, unsigned char *buf, size_t len)
{
	switch (version) {
	case LBD_PROXY_V1:
		return proxy_v1(src, dst, buf, len);
	case LBD_PROXY_V2:
		return proxy_v2(src, dst, buf, len);
	default:
		return 0;
	}
}
