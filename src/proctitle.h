/*
 * Process titles ("lbd: master", "lbd: worker N") with libbsd's
 * setproctitle, made to show cleanly in ps and /proc/PID/cmdline.
 */
#ifndef LBD_PROCTITLE_H
#define LBD_PROCTITLE_H

void proctitle_init(int argc, char *argv[]);
void proctitle_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
