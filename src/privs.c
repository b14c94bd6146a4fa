/*
 * Privileges of the master and its workers.  See privs.h.
 */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "privs.h"

static int
resolve_group(const char *name, gid_t *gid, char *err, size_t errlen)
{
	struct group *gr;

	errno = 0;
	if ((gr = getgrnam(name)) == NULL) {
		snprintf(err, errlen, "group \"%s\": %s", name,
		    errno != 0 ? strerror(errno) : "no such group");
		return -1;
	}
	*gid = gr->gr_gid;
	return 0;
}

int
privs_resolve(const struct lbd_config *conf, struct privs *p, char *err, size_t errlen)
{
	struct passwd *pw;

	memset(p, 0, sizeof(*p));
	p->drop = geteuid() == 0;
	p->uid = geteuid();
	p->gid = getegid();
	if (!p->drop) {
		p->admin_gid = getegid();
		(void)resolve_group(conf->admin_group, &p->admin_gid, err, errlen);
		return 0;
	}
	errno = 0;
	if ((pw = getpwnam(conf->user)) == NULL) {
		snprintf(err, errlen, "user \"%s\": %s", conf->user,
		    errno != 0 ? strerror(errno) : "no such user");
		return -1;
	}
	p->uid = pw->pw_uid;
	if (resolve_group(conf->group, &p->gid, err, errlen) == -1 ||
	    resolve_group(conf->admin_group, &p->admin_gid, err, errlen) == -1)
		return -1;
	return 0;
}

void
privs_drop_worker(const struct privs *p)
{
	if (!p->drop)
		return;
	if (setgroups(1, &p->gid) == -1 || setresgid(p->gid, p->gid, p->gid) == -1 ||
	    setresuid(p->uid, p->uid, p->uid) == -1)
		fatal("drop privileges to uid %u gid %u", (unsigned)p->uid, (unsigned)p->gid);
	if (p->uid != 0 && setuid(0) != -1)
		fatalx("drop privileges: still able to become root");
	(void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

int
privs_limit_master(const struct privs *p)
{
	static const int keep[] = {
		CAP_CHOWN, CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_NET_BIND_SERVICE,
	};
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	size_t i;

	if (!p->drop)
		return 0;
	memset(data, 0, sizeof(data));
	for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		data[keep[i] / 32].effective |= 1u << (keep[i] % 32);
		data[keep[i] / 32].permitted |= 1u << (keep[i] % 32);
	}
	/* glibc has no capset() wrapper; libcap would be one more dependency. */
	return (int)syscall(SYS_capset, &hdr, data);
}
