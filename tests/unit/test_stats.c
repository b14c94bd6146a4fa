/*
 * lbstat's side of the stats segment (src/statsmap.c, stats_open_readonly):
 * crafted segments with the right magic, version and sizes but wild offsets
 * or sizes are refused with a message before anything is mapped, and so is
 * anything that is not a regular file -- a FIFO without hanging.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "statsmap.h"

static char dir[] = "/tmp/lbd-test-stats-XXXXXX";
static char path[128];

static int
setup(void **state)
{
	struct stats_size size = { .services = 4, .backends = 8, .listens = 4,
	    .worker_slots = 4 };
	struct stats_map map;

	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/lbd.stats", dir);
	if (stats_create(&map, path, &size, 2, NULL) == -1)
		return -1;
	stats_unmap(&map);
	return 0;
}

static int
teardown(void **state)
{
	char other[160];

	(void)state;
	unlink(path);
	snprintf(other, sizeof(other), "%s/fifo", dir);
	unlink(other);
	snprintf(other, sizeof(other), "%s/dir", dir);
	rmdir(other);
	return rmdir(dir);
}

/* A copy of the good segment with the 8 bytes at off set to v; opened. */
static int
open_crafted(size_t off, uint64_t v, size_t width, char *err, size_t errlen)
{
	char crafted[160];
	struct stats_map map;
	char buf[1 << 16];
	ssize_t n;
	int in, out, rc;

	snprintf(crafted, sizeof(crafted), "%s/crafted", dir);
	assert_true((in = open(path, O_RDONLY)) != -1);
	assert_true((out = open(crafted, O_WRONLY | O_CREAT | O_TRUNC, 0600)) != -1);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(pwrite(out, &v, width, (off_t)off), (ssize_t)width);
	close(in);
	close(out);
	rc = stats_open_readonly(&map, crafted, err, errlen);
	if (rc == 0)
		stats_unmap(&map);
	unlink(crafted);
	return rc;
}

static void
expect_refused(size_t off, uint64_t v, size_t width, const char *word)
{
	char err[512] = "";

	if (open_crafted(off, v, width, err, sizeof(err)) == 0)
		fail_msg("segment with %llu at offset %zu accepted",
		    (unsigned long long)v, off);
	if (strstr(err, word) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", err, word);
}

static void
test_good_segment(void **state)
{
	struct stats_map map;
	char err[512] = "";

	(void)state;
	assert_int_equal(stats_open_readonly(&map, path, err, sizeof(err)), 0);
	assert_int_equal(map.hdr->magic, LBD_STATS_MAGIC);
	stats_unmap(&map);
	/* The unchanged copy opens too: the crafting itself is sound. */
	assert_int_equal(open_crafted(offsetof(struct lbd_stats_header, generation), 0, 4,
	    err, sizeof(err)), 0);
}

static void
test_wild_offsets(void **state)
{
	struct stats_map map;
	const char *wild = "outside the segment";
	uint64_t total;
	char err[512];

	(void)state;
	assert_int_equal(stats_open_readonly(&map, path, err, sizeof(err)), 0);
	total = map.hdr->total_size;
	stats_unmap(&map);
	expect_refused(offsetof(struct lbd_stats_header, services_off), total - 64, 8, wild);
	expect_refused(offsetof(struct lbd_stats_header, backends_off), total, 8, wild);
	expect_refused(offsetof(struct lbd_stats_header, workers_off), UINT64_MAX - 63, 8, wild);
	expect_refused(offsetof(struct lbd_stats_header, counters_off), 1u << 30, 8, wild);
	expect_refused(offsetof(struct lbd_stats_header, service_counters_off), total - 64,
	    8, wild);
	expect_refused(offsetof(struct lbd_stats_header, members_off), total - 16, 8, wild);
	expect_refused(offsetof(struct lbd_stats_header, listens_off), total, 8, wild);
	expect_refused(offsetof(struct lbd_stats_header, max_backends), 1u << 30, 4, wild);
	expect_refused(offsetof(struct lbd_stats_header, worker_slots), 0, 4, "worker slots");
	expect_refused(offsetof(struct lbd_stats_header, services_off), 0, 8, wild);
	expect_refused(offsetof(struct lbd_stats_header, services_off), 256 + 8, 8, wild);
	expect_refused(offsetof(struct lbd_stats_header, total_size), total + 4096, 8,
	    "truncated");
	expect_refused(offsetof(struct lbd_stats_header, total_size), 4096, 8, wild);
	expect_refused(offsetof(struct lbd_stats_header, version), 99, 4, "version 99");
	expect_refused(offsetof(struct lbd_stats_header, magic), 42, 8,
	    "not an lbd stats segment");
}

static void
test_not_a_regular_file(void **state)
{
	char other[160], err[512] = "";
	struct stats_map map;

	(void)state;
	snprintf(other, sizeof(other), "%s/fifo", dir);
	assert_int_equal(mkfifo(other, 0600), 0);
	assert_int_equal(stats_open_readonly(&map, other, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	snprintf(other, sizeof(other), "%s/dir", dir);
	assert_int_equal(mkdir(other, 0700), 0);
	assert_int_equal(stats_open_readonly(&map, other, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(stats_open_readonly(&map, "/dev/null", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_segment),
		cmocka_unit_test(test_wild_offsets),
		cmocka_unit_test(test_not_a_regular_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
