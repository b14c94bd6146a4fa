/*
 * lbd: a prefork TCP load balancer.  Flags, then the master.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "proctitle.h"
#include "upgrade.h"

static void __attribute__((noreturn))
usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: lbd [-dtV] [-f file]\n"
	    "  -f file   configuration file (default: $LBD_CONF or %s)\n"
	    "  -d        stay in the foreground and log to stderr\n"
	    "  -t        check the configuration and exit\n"
	    "  -V        print the version and exit\n"
	    "signals: HUP reload, TERM stop, USR2 upgrade to the binary on disk\n",
	    LBD_DEFAULT_CONF);
	exit(status);
}

int
main(int argc, char *argv[])
{
	const char *path = getenv("LBD_CONF");
	struct lbd_config *conf;
	int ch, foreground = 0, check = 0;

	if (path == NULL || *path == '\0')
		path = LBD_DEFAULT_CONF;
	while ((ch = getopt(argc, argv, "df:htV")) != -1) {
		switch (ch) {
		case 'd':
			foreground = 1;
			break;
		case 'f':
			path = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'V':
			printf("lbd %s\n", LBD_VERSION);
			return 0;
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	if (check) {
		if ((conf = config_load(path, stderr)) == NULL)
			return 1;
		config_free(conf);
		printf("configuration OK\n");
		return 0;
	}
	upgrade_init(argv[0]);		/* before proctitle_init reuses argv */
	proctitle_init(argc, argv);
	log_init(1, "lbd");
	return master_run(path, foreground);
}
