/*
 * The configuration file as raw text, before libconfuse sees it: read with
 * bounds (file and line length), then one linear pass that blanks comments
 * and records the line on which each service and backend section opens.
 */
#ifndef LBD_CONFLEX_H
#define LBD_CONFLEX_H

#include <stddef.h>

#define CONFLEX_FILE_MAX	(16u << 20)	/* bytes in a configuration file */
#define CONFLEX_LINE_MAX	65536		/* bytes in a line or a quoted string */

/* A service (depth 1) or backend (depth 2) section, in file order. */
struct conflex_section {
	char name[256];			/* its title, "" when it has none */
	int line;
	int depth;
};

struct conflex {
	char *text;			/* owned: the file, NUL-terminated */
	struct conflex_section *sections;	/* owned, nsections long */
	size_t nsections;
	size_t cap;
	int err_line;			/* of the error: 0 = the file as a whole */
	char err[256];			/* set when a call returns -1 */
};

/* Reads path into lx->text.  -1 with lx->err (err_line -1: no such file
 * and the like, the message already names path). */
int conflex_read(struct conflex *lx, const char *path);
/* Refuses a line or quoted string longer than CONFLEX_LINE_MAX and a
 * section still open at the end, blanks comments (newlines kept), and
 * records service and backend sections with their titles, which it blanks
 * in the text.  Linear in the length of the text. */
int conflex_scan(struct conflex *lx);
void conflex_free(struct conflex *lx);

#endif
