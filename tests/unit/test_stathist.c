/*
 * stathist: the status page's history ring -- samples oldest first, gaps
 * as null, a bounded window, and a slot reused by another backend starting
 * afresh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "stathist.h"

static struct statview_snap *
snap_new(void)
{
	struct statview_snap *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	assert_int_equal(statview_snap_reserve(s, 1, 2, 0, 0), 0);
	s->nservices = 1;
	snprintf(s->services[0].name, LBD_NAME_LEN, "web");
	s->services[0].count = 2;
	s->nbackends = 2;
	s->backends[0].slot = 0;
	snprintf(s->backends[0].name, LBD_NAME_LEN, "app1");
	s->backends[1].slot = 5;
	snprintf(s->backends[1].name, LBD_NAME_LEN, "app2");
	return s;
}

static void
sample(struct stathist *h, struct statview_snap *s, uint64_t t, double rate, uint64_t active)
{
	s->now = t;
	s->has_rates = rate >= 0;
	s->backends[0].connections_rate = rate;
	s->backends[0].bytes_in_rate = 100;
	s->backends[0].bytes_out_rate = 50;
	s->backends[0].active = active;
	s->backends[0].exchanges_rate = 10 * rate;
	s->backends[1].connections_rate = 2 * rate;
	stathist_push(h, s, 0);
}

/* stathist_json as a string (caller frees). */
static char *
render(const struct stathist *h)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	stathist_json(f, h);
	assert_int_equal(fclose(f), 0);
	return text;
}

static void
test_samples_and_gaps(void **state)
{
	struct stathist *h = malloc(sizeof(*h));
	struct statview_snap *s = snap_new();
	char *text;

	(void)state;
	assert_non_null(h);
	stathist_init(h);
	text = render(h);
	assert_string_equal(text, "{\"interval_s\":1,\"time\":[],\"backends\":[]}\n");
	free(text);
	sample(h, s, 1000, -1, 3);		/* first: no rates yet */
	stathist_push(h, NULL, 1001);		/* no segment */
	sample(h, s, 1002, 1.5, 4);
	text = render(h);
	assert_string_equal(text, "{\"interval_s\":1,\"time\":[1000,1001,1002],\"backends\":["
	    "{\"service\":\"web\",\"name\":\"app1\",\"active\":[3,null,4],"
	    "\"connections_per_s\":[null,null,1.5],\"exchanges_per_s\":[null,null,15],"
	    "\"bytes_per_s\":[null,null,150]},"
	    "{\"service\":\"web\",\"name\":\"app2\",\"active\":[0,null,0],"
	    "\"connections_per_s\":[null,null,3],\"exchanges_per_s\":[null,null,0],"
	    "\"bytes_per_s\":[null,null,0]}]}\n");
	free(text);
	statview_snap_free(s);
	free(s);
	stathist_free(h);
	free(h);
}

static void
test_window_and_reuse(void **state)
{
	struct stathist *h = malloc(sizeof(*h));
	struct statview_snap *s = snap_new();
	char *text, *p;
	uint64_t t;

	(void)state;
	assert_non_null(h);
	stathist_init(h);
	for (t = 1; t <= STATHIST_LEN + 7; t++)
		sample(h, s, t, (double)t, t);
	text = render(h);
	/* Only the last STATHIST_LEN, oldest first. */
	assert_non_null(strstr(text, "\"time\":[8,9,10,"));
	assert_non_null(strstr(text, ",307],"));
	free(text);
	/* Slot 5 now holds another backend: its series starts afresh. */
	snprintf(s->backends[1].name, LBD_NAME_LEN, "app9");
	sample(h, s, 400, 1, 1);
	text = render(h);
	assert_null(strstr(text, "app2"));
	p = strstr(text, "\"name\":\"app9\",\"active\":[null,null,");
	assert_non_null(p);
	assert_non_null(strstr(p, "null,0],"));
	free(text);
	statview_snap_free(s);
	free(s);
	stathist_free(h);
	free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_samples_and_gaps),
		cmocka_unit_test(test_window_and_reuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
