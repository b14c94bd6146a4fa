/*
 * The admin state of backends: finding their slots by name, changing admin
 * state and weight under the segment's seqlock, and the admin state file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lbd/control.h"
#include "admin.h"
#include "clock.h"
#include "log.h"
#include "slowstart.h"
#include "statsmap.h"

#define ADMIN_STATE_LINE	512

/* ---- the segment: finding backends, reading and changing admin state ---- */

static int
admin_find_service(const struct stats_map *map, const char *name)
{
	uint32_t i;

	for (i = 0; i < map->hdr->max_services; i++) {
		struct lbd_stats_service *s = stats_service(map, i);

		if (s->state == LBD_SLOT_LIVE && strcmp(s->name, name) == 0)
			return (int)i;
	}
	return -1;
}

static int
admin_find_backend(const struct stats_map *map, uint32_t sslot, const char *name)
{
	struct lbd_stats_service *s = stats_service(map, sslot);
	uint32_t j;

	for (j = 0; j < s->nbackends; j++) {
		uint32_t b = stats_service_member(map, s, j);

		if (b != UINT32_MAX && strcmp(stats_backend(map, b)->name, name) == 0)
			return (int)b;
	}
	return -1;
}

int
admin_find(const struct stats_map *map, const char *service, const char *backend,
    int *sslot, int *bslot, char *err, size_t errlen)
{
	if ((*sslot = admin_find_service(map, service)) == -1) {
		snprintf(err, errlen, "%s: no such service", service);
		return -1;
	}
	*bslot = -1;
	if (backend[0] != '\0' && (*bslot = admin_find_backend(map,
	    (uint32_t)*sslot, backend)) == -1) {
		snprintf(err, errlen, "%s/%s: no such backend", service, backend);
		return -1;
	}
	return 0;
}

static const char *
admin_name(uint32_t admin)
{
	return admin == LBD_ADMIN_DRAIN ? "drain" :
	    admin == LBD_ADMIN_DISABLED ? "disabled" : "none";
}

int
admin_set(struct stats_map *map, uint32_t sslot, uint32_t bslot, int admin, int weight)
{
	struct lbd_stats_backend *b = stats_backend(map, bslot);
	int new_admin = admin >= 0 && b->admin != (uint32_t)admin;
	int new_weight = weight >= 0 &&
	    (b->weight != (uint32_t)weight || b->admin_weight_set == 0);

	if (!new_admin && !new_weight)
		return 0;
	stats_write_begin(map);
	/* Enabled again: ramps up over the service's slowstart. */
	if (new_admin && b->admin == LBD_ADMIN_DISABLED && admin == LBD_ADMIN_NONE)
		slowstart_begin(map, bslot, clock_ms());
	if (new_admin)
		b->admin = (uint32_t)admin;
	if (new_weight) {
		b->weight = (uint32_t)weight;
		b->admin_weight_set = 1;
	}
	b->last_change = (uint64_t)time(NULL);
	stats_service(map, sslot)->sched_version++;
	stats_write_end(map);
	return 1;
}

/* ---- the admin state file ---- */

static void
admin_write(const struct stats_map *map, FILE *fp)
{
	uint32_t i, j;

	fprintf(fp, "# lbd admin state, rewritten by lbadmin commands: "
	    "SERVICE BACKEND ADMIN WEIGHT\n");
	for (i = 0; i < map->hdr->max_services; i++) {
		struct lbd_stats_service *s = stats_service(map, i);

		if (s->state != LBD_SLOT_LIVE)
			continue;
		for (j = 0; j < s->nbackends; j++) {
			struct lbd_stats_backend *b;

			if (stats_service_member(map, s, j) == UINT32_MAX)
				continue;
			b = stats_backend(map, stats_service_member(map, s, j));
			if (b->admin == LBD_ADMIN_NONE && !b->admin_weight_set)
				continue;
			if (b->admin_weight_set)
				fprintf(fp, "%s %s %s %u\n", s->name, b->name,
				    admin_name(b->admin), b->weight);
			else
				fprintf(fp, "%s %s %s -\n", s->name, b->name,
				    admin_name(b->admin));
		}
	}
}

/* The directory entry of the rename is durable too. */
static void
admin_sync_dir(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return;
	(void)fsync(fd);
	close(fd);
}

int
admin_save(const struct stats_map *map, const char *path, char *err, size_t errlen)
{
	char tmp[PATH_MAX + 8];
	FILE *fp;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd == -1 || (fp = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	admin_write(map, fp);
	if (fflush(fp) == EOF || ferror(fp) || fsync(fd) == -1) {
		snprintf(err, errlen, "%s: write: %s", tmp, strerror(errno));
		fclose(fp);
		unlink(tmp);
		return -1;
	}
	if (fclose(fp) == EOF || rename(tmp, path) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	admin_sync_dir(path);
	return 0;
}

static int
admin_parse_name(const char *word)
{
	if (strcmp(word, "none") == 0)
		return LBD_ADMIN_NONE;
	if (strcmp(word, "drain") == 0)
		return LBD_ADMIN_DRAIN;
	if (strcmp(word, "disabled") == 0)
		return LBD_ADMIN_DISABLED;
	return -1;
}

/* "-" (-1), or a decimal 0..LBD_CTL_MAX_WEIGHT; -2 when malformed. */
static int
admin_parse_weight(const char *word)
{
	int v = 0;

	if (strcmp(word, "-") == 0)
		return -1;
	if (*word == '\0' || strlen(word) > 3)
		return -2;
	for (; *word != '\0'; word++) {
		if (*word < '0' || *word > '9')
			return -2;
		v = v * 10 + (*word - '0');
	}
	return v <= LBD_CTL_MAX_WEIGHT ? v : -2;
}

/* Applies one line of the state file; returns 1 if it named a live backend. */
static int
admin_apply_line(struct stats_map *map, const char *path, char *line, int lineno)
{
	char *word[4], *tok, *save = NULL;
	int n = 0, admin, weight, sslot, bslot;

	for (tok = strtok_r(line, " \t\r\n", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == 4) {
			n++;		/* one word too many is enough to know */
			break;
		}
		word[n++] = tok;
	}
	if (n == 0 || word[0][0] == '#')
		return 1;
	if (n != 4 || !ctl_name_valid(word[0]) || !ctl_name_valid(word[1]) ||
	    (admin = admin_parse_name(word[2])) == -1 ||
	    (weight = admin_parse_weight(word[3])) == -2) {
		log_warnx("%s:%d: malformed admin state line ignored: expected "
		    "SERVICE BACKEND none|drain|disabled WEIGHT|-", path, lineno);
		return 0;
	}
	if ((sslot = admin_find_service(map, word[0])) == -1 ||
	    (bslot = admin_find_backend(map, (uint32_t)sslot, word[1])) == -1) {
		log_debug("%s:%d: %s/%s is not configured: its admin state is dropped",
		    path, lineno, word[0], word[1]);
		return 0;
	}
	if (admin_set(map, (uint32_t)sslot, (uint32_t)bslot, admin, weight))
		log_info("%s/%s: admin state %s, weight %s, restored from %s", word[0],
		    word[1], word[2], word[3], path);
	return 1;
}

/*
 * Reads a line of at most len - 1 bytes; a longer one is consumed whole
 * and reported through *too_long.  Returns 0 at end of file.
 */
static int
admin_read_line(FILE *fp, char *buf, size_t len, int *too_long)
{
	int c;

	*too_long = 0;
	if (fgets(buf, (int)len, fp) == NULL)
		return 0;
	if (strchr(buf, '\n') == NULL && !feof(fp)) {
		*too_long = 1;
		while ((c = getc(fp)) != EOF && c != '\n')
			;
	}
	return 1;
}

void
admin_apply_file(struct stats_map *map, const char *path)
{
	char line[ADMIN_STATE_LINE], err[PATH_MAX + 128];
	int lineno = 0, too_long, dropped = 0;
	FILE *fp;

	if ((fp = fopen(path, "re")) == NULL) {
		if (errno != ENOENT)
			log_warn("admin state %s", path);
		return;
	}
	while (admin_read_line(fp, line, sizeof(line), &too_long)) {
		lineno++;
		if (too_long) {
			log_warnx("%s:%d: line too long, ignored", path, lineno);
			dropped++;
		} else if (!admin_apply_line(map, path, line, lineno))
			dropped++;
	}
	if (ferror(fp)) {
		log_warn("admin state %s: read", path);
		fclose(fp);
		return;
	}
	fclose(fp);
	/* Forget what no longer applies, so the file says what is in force. */
	if (dropped > 0 && admin_save(map, path, err, sizeof(err)) == -1)
		log_warnx("admin state: %s", err);
}
