/*
 * TLS ClientHello reader: finds the server name (RFC 6066 server_name) a
 * client asks for, without terminating TLS.  A pure function of the bytes
 * read so far: no allocation, no I/O, no globals.
 */
#ifndef LBD_SNI_H
#define LBD_SNI_H

#include <stddef.h>

#define SNI_INPUT_MAX	16384	/* bytes of input read at most for one ClientHello */
#define SNI_NAME_MAX	253	/* the longest DNS name, without a trailing dot */
#define SNI_RECORDS_MAX	64	/* TLS records one ClientHello may span */

enum sni_result {
	SNI_NEED_MORE,		/* every byte so far may begin a ClientHello: read more */
	SNI_FOUND,		/* a valid ClientHello naming a valid host name */
	SNI_NO_SNI,		/* a valid ClientHello without server_name */
	SNI_NOT_TLS,		/* the first bytes are not a TLS handshake record */
	SNI_ERROR,		/* malformed, over SNI_INPUT_MAX, or an invalid name */
};

/*
 * Reads the ClientHello at the start of buf[0..len), which may span several
 * TLS records of handshake type and arrive in any number of pieces: call
 * again with the whole buffer after each read.  Only the first
 * SNI_INPUT_MAX bytes are looked at; a ClientHello not complete within them,
 * or spread over more than SNI_RECORDS_MAX records (clients use one; tools
 * that fragment to dodge filters use a few), is SNI_ERROR.  On SNI_FOUND, name holds the host name, lower-cased and
 * NUL-terminated (at most SNI_NAME_MAX characters); otherwise name is
 * untouched.  The whole ClientHello is checked, not only the extension, so
 * a verdict other than SNI_NEED_MORE never changes as more bytes arrive.
 * Never reads past buf[len - 1].
 */
enum sni_result sni_read(const unsigned char *buf, size_t len, char name[SNI_NAME_MAX + 1]);

/*
 * Whether name[0..len) is a host name as RFC 6066 allows in server_name:
 * 1..253 characters, dot-separated labels of 1..63 letters, digits and
 * '-', no label starting or ending with '-', no trailing dot, and a last
 * label that is not all digits (so no IPv4 literal; ':' rules out IPv6).
 * Upper case is allowed here; sni_read lower-cases what it returns.
 */
int sni_name_valid(const char *name, size_t len);

const char *sni_result_name(enum sni_result r);

#endif
