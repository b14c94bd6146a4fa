/*
 * Where the runtime files of a configuration live: the stats segment, the
 * control socket, the pid file and the admin state file, in runtime-dir.
 */
#include <stdio.h>

#include "config.h"

static int
runtime_path(const struct lbd_config *conf, const char *file, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", conf->runtime_dir, file);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
config_stats_path(const struct lbd_config *conf, char *buf, size_t len)
{
	return runtime_path(conf, LBD_STATS_FILE, buf, len);
}

int
config_control_path(const struct lbd_config *conf, char *buf, size_t len)
{
	return runtime_path(conf, "lbd.sock", buf, len);
}

int
config_pid_path(const struct lbd_config *conf, char *buf, size_t len)
{
	return runtime_path(conf, "lbd.pid", buf, len);
}

int
config_state_path(const struct lbd_config *conf, char *buf, size_t len)
{
	return runtime_path(conf, "lbd.state", buf, len);
}
