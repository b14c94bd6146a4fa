/*
 * libbsd writes the title over argv and pads the rest with NULs.  The
 * kernel shows the whole argv area (padding and all) unless the byte that
 * ended the last original argument is no longer a NUL, in which case it
 * shows the string up to its first NUL: so after each title, that byte is
 * overwritten.  The title's own NUL comes first, so nothing else shows.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proctitle.h"

/* Process-wide by nature: it points into this process's argv area. */
static char *argv_last_nul;

void
proctitle_init(int argc, char *argv[])
{
	extern char **environ;

	if (argc > 0 && argv[argc - 1] != NULL)
		argv_last_nul = argv[argc - 1] + strlen(argv[argc - 1]);
	setproctitle_init(argc, argv, environ);
}

void
proctitle_set(const char *fmt, ...)
{
	char title[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(title, sizeof(title), fmt, ap);
	va_end(ap);
	setproctitle("%s", title);
	if (argv_last_nul != NULL && *argv_last_nul == '\0')
		*argv_last_nul = ' ';
}
