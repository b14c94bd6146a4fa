/*
 * Pure parsing of the values a config file and the control protocol carry:
 * durations, sizes and "host:port" addresses.  No logging, no globals.
 */
#ifndef LBD_ADDR_H
#define LBD_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * "250ms", "3s", "5m", "1h" -> milliseconds.  Returns 0, or -1 with a reason
 * in *why (a static string).  The result must fit in a uint32_t.
 */
int addr_parse_duration(const char *text, uint32_t *ms, const char **why);

/*
 * "65536", "512K", "8M", "1G" (K = 1024) -> bytes, at most UINT32_MAX.
 * Returns 0, or -1 with a reason in *why (a static string).
 */
int addr_parse_size(const char *text, uint32_t *bytes, const char **why);

/*
 * Splits "host:port" or "[v6]:port" into host and port.  A "*" host means
 * any address (host ""); an empty one (":80", "[]:80") is refused, as it is
 * more likely forgotten than meant.  Returns 0, or -1 with *why set.
 */
int addr_split(const char *text, char *host, size_t hostlen, uint16_t *port,
    const char **why);

/*
 * Resolves text (see addr_split) once, the first result wins, numeric hosts
 * never touch the resolver.  passive selects the wildcard for empty hosts.
 */
int addr_resolve(const char *text, int passive, struct sockaddr_storage *ss,
    socklen_t *len, const char **why);

#define LBD_ADDR_DISPLAY_MAX	64	/* = LBD_ADDR_LEN */

/*
 * What lbstat shows for an address written text that resolved to sa: text
 * itself when it is numeric, "name:port (address:port)" when that fits in
 * len, else the numeric address alone.  Returns buf.
 */
char *addr_display(const char *text, const struct sockaddr *sa, char *buf, size_t len);

/* "1.2.3.4:80" or "[::1]:80" for ss.  Returns buf. */
char *addr_format(const struct sockaddr *sa, char *buf, size_t len);

#endif
