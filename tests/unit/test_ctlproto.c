/*
 * ctl_parse: the control protocol's request lines, good and bad.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lbd/control.h"

static struct lbd_ctl_request req;
static char err[256];

static int
parse(const char *line)
{
	memset(&req, 0xa5, sizeof(req));
	memset(err, 0, sizeof(err));
	return ctl_parse(line, &req, err, sizeof(err));
}

static void
assert_ok(const char *line, enum lbd_ctl_command cmd, const char *service,
    const char *backend)
{
	if (parse(line) != 0)
		fail_msg("'%s' refused: %s", line, err);
	assert_int_equal(req.command, cmd);
	assert_string_equal(req.service, service);
	assert_string_equal(req.backend, backend);
}

/* Refused, with a reason that contains want. */
static void
assert_refused(const char *line, const char *want)
{
	if (parse(line) != -1)
		fail_msg("'%s' accepted", line);
	if (strstr(err, want) == NULL)
		fail_msg("'%s': error '%s' lacks '%s'", line, err, want);
	assert_null(strchr(err, '\n'));
}

static void
test_backend_commands(void **state)
{
	(void)state;
	assert_ok("drain web/app1", LBD_CTL_DRAIN, "web", "app1");
	assert_ok("disable web/app1", LBD_CTL_DISABLE, "web", "app1");
	assert_ok("enable web/app1", LBD_CTL_ENABLE, "web", "app1");
	assert_ok("drain A-Z_a.z09/b-1.x_Y", LBD_CTL_DRAIN, "A-Z_a.z09", "b-1.x_Y");
}

static void
test_weight(void **state)
{
	(void)state;
	assert_ok("weight web/app1 0", LBD_CTL_WEIGHT, "web", "app1");
	assert_int_equal(req.weight, 0);
	assert_ok("weight web/app1 256", LBD_CTL_WEIGHT, "web", "app1");
	assert_int_equal(req.weight, 256);
	assert_ok("weight web/app1 17", LBD_CTL_WEIGHT, "web", "app1");
	assert_int_equal(req.weight, 17);
	assert_ok("weight web/app1 007", LBD_CTL_WEIGHT, "web", "app1");
	assert_int_equal(req.weight, 7);
	assert_refused("weight web/app1 257", "out of range 0..256");
	assert_refused("weight web/app1 99999999999999999999999", "out of range");
	assert_refused("weight web/app1 -1", "not a number");
	assert_refused("weight web/app1 +1", "not a number");
	assert_refused("weight web/app1 0x10", "not a number");
	assert_refused("weight web/app1 1e2", "not a number");
	assert_refused("weight web/app1 1.5", "not a number");
	assert_refused("weight web/app1 abc", "weight 'abc' is not a number");
	assert_refused("weight web/app1", "missing arguments");
	assert_refused("weight web/app1 1 2", "too many arguments");
	assert_refused("weight web 1", "expected SERVICE/BACKEND");
}

static void
test_show(void **state)
{
	(void)state;
	assert_ok("show", LBD_CTL_SHOW, "", "");
	assert_ok("show web", LBD_CTL_SHOW, "web", "");
	assert_ok("show web/app1", LBD_CTL_SHOW, "web", "app1");
	assert_refused("show web/", "a name is 1 to 47");
	assert_refused("show /app1", "a name is");
	assert_refused("show web app1", "too many arguments");
	assert_refused("show web/app1/x", "a name is");
}

static void
test_reload(void **state)
{
	(void)state;
	assert_ok("reload", LBD_CTL_RELOAD, "", "");
	assert_refused("reload now", "too many arguments: usage: reload");
}

static void
test_whitespace(void **state)
{
	(void)state;
	assert_ok("  drain\tweb/app1  ", LBD_CTL_DRAIN, "web", "app1");
	assert_ok("drain web/app1\r", LBD_CTL_DRAIN, "web", "app1");
	assert_ok("\tshow\t\r", LBD_CTL_SHOW, "", "");
	assert_ok("weight \t web/app1 \t 3\r", LBD_CTL_WEIGHT, "web", "app1");
	assert_int_equal(req.weight, 3);
	/* Only one trailing \r, and only at the end, is a line ending. */
	assert_refused("drain web/app1\r\r", "a name is");
	assert_refused("drain web/app\r1", "a name is");
	assert_refused("show\r\r", "unknown command");
}

static void
test_commands(void **state)
{
	(void)state;
	assert_refused("", "empty request");
	assert_refused("   \t ", "empty request");
	assert_refused("\r", "empty request");
	assert_refused("foo", "unknown command 'foo'");
	assert_refused("foo web/app1", "unknown command 'foo'");
	assert_refused("DRAIN web/app1", "unknown command 'DRAIN'");
	assert_refused("drai web/app1", "unknown command");
	assert_refused("drainx web/app1", "unknown command");
	assert_refused("drain", "missing arguments: usage: drain SERVICE/BACKEND");
	assert_refused("disable", "usage: disable SERVICE/BACKEND");
	assert_refused("enable", "usage: enable SERVICE/BACKEND");
	assert_refused("drain web/app1 web/app2", "too many arguments");
	assert_refused("drain a b c d e f g", "too many arguments");
}

static void
test_names(void **state)
{
	char line[128];

	(void)state;
	assert_refused("drain web", "expected SERVICE/BACKEND");
	assert_refused("drain web/", "a name is");
	assert_refused("drain /app1", "a name is");
	assert_refused("drain /", "a name is");
	assert_refused("drain web//app1", "a name is");
	assert_refused("drain web/app1/", "a name is");
	assert_refused("drain we$b/app1", "'we$b/app1'");
	assert_refused("drain web/app 1", "too many arguments");
	assert_refused("drain web/ap*p1", "a name is");
	assert_refused("drain web/ap\x01p", "'web/ap?p'");
	assert_refused("drain w\xc3\xa9/app", "'w?" "?/app'");
	/* 47 characters fit, 48 do not. */
	snprintf(line, sizeof(line), "drain %047d/%047d", 1, 2);
	assert_int_equal(parse(line), 0);
	assert_int_equal(strlen(req.service), 47);
	assert_int_equal(strlen(req.backend), 47);
	snprintf(line, sizeof(line), "drain %048d/b", 1);
	assert_refused(line, "a name is 1 to 47");
	snprintf(line, sizeof(line), "drain s/%048d", 1);
	assert_refused(line, "a name is 1 to 47");
	snprintf(line, sizeof(line), "show %048d", 1);
	assert_refused(line, "a name is");
}

/* A bad word is quoted back shortened and printable. */
static void
test_echo(void **state)
{
	char line[4096];

	(void)state;
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	assert_refused(line, "unknown command 'xxx");
	assert_non_null(strstr(err, "...'"));
	assert_true(strlen(err) < 64);
	assert_refused("\x1b[31mred", "unknown command '?[31mred'");
	memcpy(line, "drain ", 6);
	assert_refused(line, "...'");
}

/* Whatever the bytes, the parser answers without overrunning anything. */
static void
test_garbage(void **state)
{
	char line[512];
	unsigned seed = 12345;
	int i, j, len;

	(void)state;
	for (i = 0; i < 20000; i++) {
		len = (int)(rand_r(&seed) % (sizeof(line) - 1));
		for (j = 0; j < len; j++) {
			line[j] = (char)(rand_r(&seed) % 255 + 1);
			if (i % 2 && rand_r(&seed) % 3 == 0)
				line[j] = " \t/w1"[rand_r(&seed) % 5];
		}
		line[len] = '\0';
		if (ctl_parse(line, &req, err, sizeof(err)) == 0) {
			assert_true(strlen(req.service) < LBD_NAME_LEN);
			assert_true(strlen(req.backend) < LBD_NAME_LEN);
		} else
			assert_true(err[0] != '\0');
	}
}

/* A short or empty error buffer is never overrun. */
static void
test_small_err(void **state)
{
	char small[8] = "zzzzzzz";

	(void)state;
	assert_int_equal(ctl_parse("nope", &req, small, 4), -1);
	assert_string_equal(small, "unk");
	assert_int_equal(small[4], 'z');
	assert_int_equal(ctl_parse("nope", &req, small, 0), -1);
	assert_int_equal(ctl_parse("nope", &req, NULL, 0), -1);
	assert_int_equal(ctl_parse("show", &req, NULL, 0), 0);
}

static void
test_name_valid(void **state)
{
	char name[64];

	(void)state;
	assert_true(ctl_name_valid("web"));
	assert_true(ctl_name_valid("A-z_0.9"));
	assert_false(ctl_name_valid(""));
	assert_false(ctl_name_valid("web/app1"));
	assert_false(ctl_name_valid("a b"));
	memset(name, 'n', sizeof(name));
	name[47] = '\0';
	assert_true(ctl_name_valid(name));
	name[47] = 'n';
	name[48] = '\0';
	assert_false(ctl_name_valid(name));
	name[48] = 'n';		/* no NUL anywhere: only LBD_NAME_LEN bytes are read */
	assert_false(ctl_name_valid(name));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backend_commands),
		cmocka_unit_test(test_weight),
		cmocka_unit_test(test_show),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_whitespace),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_echo),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_small_err),
		cmocka_unit_test(test_name_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
