/*
 * What the config tests share (test_config.c, test_configdoor.c): each
 * case is written to a file in a temporary directory and loaded; an error
 * is checked for its exact "file:LINE: " prefix and a word.  Included by
 * one test file each, so its statics are that file's own.
 */
#ifndef LBD_TEST_CONFIGCASE_H
#define LBD_TEST_CONFIGCASE_H

static char tmpdir[] = "/tmp/lbd-test-config-XXXXXX";
static char path[128];
static char *errors;

static int
setup_dir(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown_dir(void **state)
{
	(void)state;
	return rmdir(tmpdir);
}

static int
teardown_case(void **state)
{
	(void)state;
	if (path[0] != '\0')
		unlink(path);
	path[0] = '\0';
	free(errors);
	errors = NULL;
	return 0;
}

/* Writes text to a new file in tmpdir and loads it; errors end up in errors. */
static struct lbd_config *
load_text(const char *text)
{
	struct lbd_config *conf;
	size_t errlen = 0;
	FILE *fp, *err;
	int fd;

	teardown_case(NULL);
	snprintf(path, sizeof(path), "%s/lbd-XXXXXX", tmpdir);
	assert_true((fd = mkstemp(path)) != -1);
	assert_non_null(fp = fdopen(fd, "w"));
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	assert_non_null(err = open_memstream(&errors, &errlen));
	conf = config_load(path, err);
	assert_int_equal(fclose(err), 0);
	return conf;
}

static struct lbd_config *
load_ok(const char *text)
{
	struct lbd_config *conf = load_text(text);

	if (conf == NULL)
		fail_msg("config refused:\n%s--- config:\n%s", errors, text);
	assert_string_equal(errors, "");
	return conf;
}

/*
 * The config is refused, and the first error reads "PATH:LINE: ..." with
 * word in it.
 */
static void
expect_error(const char *text, int line, const char *word)
{
	struct lbd_config *conf = load_text(text);
	char prefix[256];
	const char *nl;

	if (conf != NULL) {
		config_free(conf);
		fail_msg("config accepted, expected an error at line %d (%s):\n%s",
		    line, word, text);
	}
	snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	nl = strchr(errors, '\n');
	if (strncmp(errors, prefix, strlen(prefix)) != 0 || nl == NULL ||
	    strstr(errors, word) == NULL || strstr(errors, word) > nl)
		fail_msg("expected \"%s...%s...\", got:\n%s--- config:\n%s", prefix, word,
		    errors, text);
}

/* A service wrapper, so each error case states only what it is about. */
#define SERVICE_HEAD	"service web {\n    listen = { \"127.0.0.1:8080\" }\n"
#define BACKEND_A	"    backend a { address = \"127.0.0.1:9001\" }\n"

#endif
