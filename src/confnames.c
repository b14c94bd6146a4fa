/*
 * Unique names.  See confnames.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "confnames.h"

static uint64_t
name_hash(const char *s)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= UINT64_C(0x100000001b3);
	}
	return h ^ (h >> 29);
}

long
confnames_dup(const struct conflex_section *const *secs, size_t n, size_t *earlier)
{
	size_t len = 16, mask, i, k;
	size_t *cells;			/* index + 1 into secs; 0 = empty */

	while (len < 2 * n)
		len *= 2;
	if ((cells = calloc(len, sizeof(*cells))) == NULL)
		return -1;
	mask = len - 1;
	for (i = 0; i < n; i++) {
		for (k = name_hash(secs[i]->name) & mask; cells[k] != 0; k = (k + 1) & mask)
			if (strcmp(secs[cells[k] - 1]->name, secs[i]->name) == 0) {
				*earlier = cells[k] - 1;
				free(cells);
				return (long)i;
			}
		cells[k] = i + 1;
	}
	free(cells);
	return (long)n;
}
