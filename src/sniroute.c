/*
 * SNI routing table: two sorted arrays (exact names, wildcard suffixes)
 * pointing into the configuration's strings; nothing is copied.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sni.h"
#include "sniroute.h"

int
sniroute_pattern_valid(const char *pattern)
{
	if (strncmp(pattern, "*.", 2) == 0)
		pattern += 2;
	return sni_name_valid(pattern, strlen(pattern));
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcasecmp(((const struct sniroute_entry *)a)->key,
	    ((const struct sniroute_entry *)b)->key);
}

/* After sorting: the same key on two candidates is a conflict. */
static int
find_duplicate(const struct sniroute_entry *e, size_t n, struct sniroute_error *err)
{
	size_t i;

	for (i = 1; i < n; i++) {
		if (strcasecmp(e[i - 1].key, e[i].key) != 0 || e[i - 1].candidate == e[i].candidate)
			continue;
		err->a = e[i - 1].candidate < e[i].candidate ? e[i - 1].candidate : e[i].candidate;
		err->b = e[i - 1].candidate < e[i].candidate ? e[i].candidate : e[i - 1].candidate;
		err->name = e[i].pattern;
		return -1;
	}
	return 0;
}

/* Counts names, checks them, and finds the default. */
static enum sniroute_status
sniroute_scan(struct sniroute *rt, const struct sniroute_input *in, size_t n,
    struct sniroute_error *err)
{
	size_t c, i;

	for (c = 0; c < n; c++) {
		if (in[c].nnames == 0) {
			if (rt->fallback >= 0) {
				err->a = (size_t)rt->fallback;
				err->b = c;
				return SNIROUTE_TWO_DEFAULTS;
			}
			rt->fallback = (long)c;
		}
		for (i = 0; i < in[c].nnames; i++) {
			if (!sniroute_pattern_valid(in[c].names[i])) {
				err->a = c;
				err->name = in[c].names[i];
				return SNIROUTE_BAD_NAME;
			}
			if (strncmp(in[c].names[i], "*.", 2) == 0)
				rt->nwild++;
			else
				rt->nexact++;
		}
	}
	return SNIROUTE_OK;
}

static void
sniroute_fill(struct sniroute *rt, const struct sniroute_input *in, size_t n)
{
	size_t c, i, ne = 0, nw = 0;

	for (c = 0; c < n; c++) {
		for (i = 0; i < in[c].nnames; i++) {
			const char *name = in[c].names[i];

			if (strncmp(name, "*.", 2) == 0)
				rt->wild[nw++] = (struct sniroute_entry){ name + 2, name, c };
			else
				rt->exact[ne++] = (struct sniroute_entry){ name, name, c };
		}
	}
	qsort(rt->exact, rt->nexact, sizeof(*rt->exact), entry_cmp);
	qsort(rt->wild, rt->nwild, sizeof(*rt->wild), entry_cmp);
}

enum sniroute_status
sniroute_build(struct sniroute *rt, const struct sniroute_input *in, size_t n,
    struct sniroute_error *err)
{
	enum sniroute_status st;

	memset(rt, 0, sizeof(*rt));
	memset(err, 0, sizeof(*err));
	rt->fallback = -1;
	if ((st = sniroute_scan(rt, in, n, err)) != SNIROUTE_OK)
		goto fail;
	rt->exact = calloc(rt->nexact ? rt->nexact : 1, sizeof(*rt->exact));
	rt->wild = calloc(rt->nwild ? rt->nwild : 1, sizeof(*rt->wild));
	if (rt->exact == NULL || rt->wild == NULL) {
		st = SNIROUTE_NO_MEMORY;
		goto fail;
	}
	sniroute_fill(rt, in, n);
	if (find_duplicate(rt->exact, rt->nexact, err) == -1 ||
	    find_duplicate(rt->wild, rt->nwild, err) == -1) {
		st = SNIROUTE_DUPLICATE;
		goto fail;
	}
	return SNIROUTE_OK;
fail:
	sniroute_free(rt);
	return st;
}

static const struct sniroute_entry *
lookup(const struct sniroute_entry *e, size_t n, const char *key)
{
	struct sniroute_entry want = { key, key, 0 };

	return n == 0 ? NULL : bsearch(&want, e, n, sizeof(*e), entry_cmp);
}

long
sniroute_find(const struct sniroute *rt, const char *name)
{
	const struct sniroute_entry *e;
	const char *dot;

	if (name == NULL)
		return rt->fallback;
	if ((e = lookup(rt->exact, rt->nexact, name)) != NULL)
		return (long)e->candidate;
	/* "*.example.org" takes "a.example.org", not "example.org" nor "a.b.example.org". */
	if ((dot = strchr(name, '.')) != NULL && dot != name &&
	    (e = lookup(rt->wild, rt->nwild, dot + 1)) != NULL)
		return (long)e->candidate;
	return rt->fallback;
}

int
sniroute_needs_hello(const struct sniroute *rt)
{
	return rt->nexact + rt->nwild > 0;
}

void
sniroute_free(struct sniroute *rt)
{
	free(rt->exact);
	free(rt->wild);
	rt->exact = rt->wild = NULL;
	rt->nexact = rt->nwild = 0;
	rt->fallback = -1;
}
