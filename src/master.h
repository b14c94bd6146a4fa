/*
 * The master process: configuration, listeners, the stats segment, worker
 * life cycle, health checks, the control socket, reload and shutdown.
 */
#ifndef LBD_MASTER_H
#define LBD_MASTER_H

/* Runs lbd from config_path; returns the process exit status. */
int master_run(const char *config_path, int foreground);

#endif
