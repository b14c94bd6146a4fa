/*
 * Pure logic of the health checker: rise/fall, jitter, expect matching,
 * message quoting and the deadline heap.
 */
#include <stdio.h>
#include <string.h>

#include "healthstate.h"

void
hstate_init(struct hstate *st, int up)
{
	st->up = up != 0;
	st->run = 0;
}

enum hstate_change
hstate_result(struct hstate *st, int ok, uint32_t rise, uint32_t fall)
{
	/* A result that agrees with the state breaks the opposite run. */
	if ((ok != 0) == st->up) {
		st->run = 0;
		return HSTATE_SAME;
	}
	st->run++;
	if (st->run < (st->up ? fall : rise))
		return HSTATE_SAME;
	st->up = !st->up;
	st->run = 0;
	return st->up ? HSTATE_WENT_UP : HSTATE_WENT_DOWN;
}

void
hstate_reset_run(struct hstate *st)
{
	st->run = 0;
}

/* rnd scaled onto [0, span): a multiply, so no modulo bias. */
static uint64_t
hstate_scale(uint64_t span, uint32_t rnd)
{
	return (uint64_t)(((unsigned __int128)span * rnd) >> 32);
}

uint64_t
hstate_first_delay_us(uint32_t interval_ms, uint32_t rnd)
{
	return hstate_scale((uint64_t)interval_ms * 1000, rnd);
}

uint64_t
hstate_next_delay_us(uint32_t interval_ms, uint32_t jitter_ms, uint32_t late_us,
    uint32_t rnd)
{
	uint64_t interval = (uint64_t)interval_ms * 1000;
	uint64_t spread = (uint64_t)jitter_ms * 1000, width;

	if (spread > interval)		/* config.c refuses it; never underflow */
		spread = interval;
	width = 2 * spread;
	width -= late_us < width ? late_us : width;
	return interval - spread + hstate_scale(width + 1, rnd);
}

uint32_t
hstate_slack_us(uint32_t jitter_ms)
{
	uint64_t quarter = (uint64_t)jitter_ms * 1000 / 4;

	return quarter < HSTATE_SLACK_MAX_US ? (uint32_t)quarter : HSTATE_SLACK_MAX_US;
}

uint32_t
hstate_margin_us(uint32_t jitter_ms)
{
	uint64_t quarter = (uint64_t)jitter_ms * 1000 / 4;

	return quarter < HSTATE_LATE_MAX_US ? (uint32_t)quarter : HSTATE_LATE_MAX_US;
}

uint32_t
hstate_rand(uint64_t *seed)
{
	uint64_t z = (*seed += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return (uint32_t)((z ^ (z >> 31)) >> 32);
}

int
hstate_expect_scan(char *win, size_t *len, const char *expect, size_t elen)
{
	size_t keep;

	if (elen == 0)
		return *len > 0;
	if (memmem(win, *len, expect, elen) != NULL)
		return 1;
	keep = elen - 1;
	if (*len > keep) {
		memmove(win, win + *len - keep, keep);
		*len = keep;
	}
	return 0;
}

/* The escaped form of c in out (at least 5 bytes); returns its length. */
static size_t
hstate_escape(unsigned char c, char *out)
{
	switch (c) {
	case '\r':
		return (size_t)snprintf(out, 5, "\\r");
	case '\n':
		return (size_t)snprintf(out, 5, "\\n");
	case '\t':
		return (size_t)snprintf(out, 5, "\\t");
	case '\\':
	case '\'':
		return (size_t)snprintf(out, 5, "\\%c", c);
	}
	if (c < 0x20 || c >= 0x7f)
		return (size_t)snprintf(out, 5, "\\x%02x", c);
	out[0] = (char)c;
	out[1] = '\0';
	return 1;
}

void
hstate_quote(char *buf, size_t len, const char *s, size_t n)
{
	char esc[5];
	size_t i, used = 0, elen, total = 0, room;

	if (len == 0)
		return;
	for (i = 0; i < n; i++)
		total += hstate_escape((unsigned char)s[i], esc);
	/* Cut only when it does not all fit, keeping room for the dots. */
	room = total < len ? len - 1 : (len > 3 ? len - 4 : 0);
	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		elen = hstate_escape((unsigned char)s[i], esc);
		if (used + elen > room)
			break;
		memcpy(buf + used, esc, elen + 1);
		used += elen;
	}
	if (i < n && len > 3)
		memcpy(buf + used, "...", 4);
}

void
hheap_init(struct hheap *hp, struct hheap_node **storage, size_t cap)
{
	hp->v = storage;
	hp->n = 0;
	hp->cap = cap;
}

void
hheap_node_init(struct hheap_node *nd)
{
	nd->deadline = 0;
	nd->idx = HHEAP_NONE;
}

static void
hheap_place(struct hheap *hp, struct hheap_node *nd, size_t i)
{
	hp->v[i] = nd;
	nd->idx = i;
}

static void
hheap_up(struct hheap *hp, struct hheap_node *nd)
{
	size_t i = nd->idx, parent;

	while (i > 0) {
		parent = (i - 1) / 2;
		if (hp->v[parent]->deadline <= nd->deadline)
			break;
		hheap_place(hp, hp->v[parent], i);
		i = parent;
	}
	hheap_place(hp, nd, i);
}

static void
hheap_down(struct hheap *hp, struct hheap_node *nd)
{
	size_t i = nd->idx, child;

	while ((child = 2 * i + 1) < hp->n) {
		if (child + 1 < hp->n &&
		    hp->v[child + 1]->deadline < hp->v[child]->deadline)
			child++;
		if (nd->deadline <= hp->v[child]->deadline)
			break;
		hheap_place(hp, hp->v[child], i);
		i = child;
	}
	hheap_place(hp, nd, i);
}

void
hheap_set(struct hheap *hp, struct hheap_node *nd, uint64_t deadline)
{
	if (nd->idx == HHEAP_NONE) {
		/* Cannot happen while cap counts every node; never overrun. */
		if (hp->n == hp->cap)
			return;
		nd->deadline = deadline;
		hheap_place(hp, nd, hp->n++);
		hheap_up(hp, nd);
		return;
	}
	nd->deadline = deadline;
	hheap_up(hp, nd);
	hheap_down(hp, nd);
}

void
hheap_remove(struct hheap *hp, struct hheap_node *nd)
{
	struct hheap_node *last;
	size_t i = nd->idx;

	if (i == HHEAP_NONE)
		return;
	nd->idx = HHEAP_NONE;
	last = hp->v[--hp->n];
	if (last == nd)
		return;
	hheap_place(hp, last, i);
	hheap_up(hp, last);
	hheap_down(hp, last);
}

struct hheap_node *
hheap_min(const struct hheap *hp)
{
	return hp->n > 0 ? hp->v[0] : NULL;
}
