/*
 * Logging: syslog (facility daemon) once the daemon runs, stderr with -d and
 * before daemonizing.  Like OpenBSD's log.c: fatal() before the daemon runs,
 * log_warn() after.  The log settings are process-wide state by design.
 */
#ifndef LBD_LOG_H
#define LBD_LOG_H

#include <stdarg.h>

void log_init(int to_stderr, const char *ident);
void log_to_syslog(void);
void log_set_prefix(const char *prefix);

/* log_warn appends ": strerror(errno)"; the x forms do not. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Each line of text as a warning of its own. */
void log_lines(const char *text);
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
