/*
 * The services sharing one listen address, found by TLS server name: exact
 * names and "*.domain" wildcards (one leading label), case-insensitive,
 * with at most one default service (the one without names) for a
 * connection without SNI, not TLS, or naming no one.  Built once per
 * (re)load; a lookup is two binary searches.
 */
#ifndef LBD_SNIROUTE_H
#define LBD_SNIROUTE_H

#include <stddef.h>

/* One candidate service; its position in the array is what lookups return. */
struct sniroute_input {
	const char *const *names;	/* borrowed: must outlive the table */
	size_t nnames;			/* 0: the default service */
};

struct sniroute_entry {
	const char *key;		/* the name, or a wildcard's part after "*." */
	const char *pattern;		/* as given: "*.example.org" */
	size_t candidate;
};

struct sniroute {
	struct sniroute_entry *exact;	/* owned, sorted by key */
	size_t nexact;
	struct sniroute_entry *wild;	/* owned, sorted by key */
	size_t nwild;
	long fallback;			/* the default candidate, or -1 */
};

enum sniroute_status {
	SNIROUTE_OK,
	SNIROUTE_BAD_NAME,		/* err->a's name err->name is not a valid pattern */
	SNIROUTE_TWO_DEFAULTS,		/* err->a and err->b both have no names */
	SNIROUTE_DUPLICATE,		/* err->a and err->b both claim err->name */
	SNIROUTE_NO_MEMORY,
};

struct sniroute_error {
	size_t a, b;
	const char *name;
};

/*
 * Builds rt from n candidates.  On failure rt is left empty (free to
 * sniroute_free) and err says why.  A name may be claimed once per address:
 * twice by different candidates is SNIROUTE_DUPLICATE.  "www.example.org"
 * and "*.example.org" on two candidates are not a conflict: the exact name
 * wins, as in nginx.
 */
enum sniroute_status sniroute_build(struct sniroute *rt, const struct sniroute_input *in,
    size_t n, struct sniroute_error *err);

/*
 * The candidate for name (NULL: no SNI, or not TLS): an exact match, else a
 * wildcard matching its first label, else the default.  -1: none of them.
 */
long sniroute_find(const struct sniroute *rt, const char *name);

/* Whether rt has any name, i.e. the ClientHello must be read to route. */
int sniroute_needs_hello(const struct sniroute *rt);

/* A valid `sni` entry: a host name (sni_name_valid) or "*." and one. */
int sniroute_pattern_valid(const char *pattern);

void sniroute_free(struct sniroute *rt);

#endif
