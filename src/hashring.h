/*
 * The source hash's consistent hash ring (pure, ketama-like): each backend
 * owns points on a 32-bit circle placed by hashing its name's hash with the
 * point's number, as many points as its weight calls for; a client belongs
 * to the first point at or after its own hash, clockwise.  A backend going
 * away takes only its own points, so only its clients move; the points
 * depend on names, not on the order of the file, so every node agrees
 * (issue 19).  O(log P) a lookup for P points; built in O(P).
 */
#ifndef LBD_HASHRING_H
#define LBD_HASHRING_H

#include <stddef.h>
#include <stdint.h>

/*
 * Points per unit of weight (the weight over the gcd of the service's
 * configured weights).  Fixed, not fitted to the service's size, so that a
 * backend's points never change when others come or go, in the file or out
 * of health.  A backend's share of the circle then varies by about
 * 1/sqrt(points) around its weight's (10% for 100): fine across thousands
 * of backends, which is where the ring is used (schedule.h).
 */
#define HASHRING_POINTS		100

struct hashring {
	uint64_t *points;	/* sorted: position << 32 | member index; owned */
	size_t n;		/* points in use */
	size_t cap;		/* points allocated */
};

/* The unit of weight: the gcd of the service's configured weights (1 if
 * they are all 0).  Fixed for the life of a schedule. */
uint32_t hashring_unit(const uint32_t *weights, size_t n);

/* The points of a backend of this weight (ramp_permille of it while it
 * starts slowly, 0 = full): 0 for weight 0, else at least 1. */
uint32_t hashring_count(uint32_t weight, uint32_t ramp_permille, uint32_t unit);

/*
 * Lays out count[i] points for each member i of n, member i's placed by
 * keys[i] (balance_name_hash of its name); points at the same position go
 * in order of key, so the order of members does not matter.  -1 when out
 * of memory (the ring is then empty).
 */
int hashring_build(struct hashring *r, const uint64_t *keys, const uint32_t *count,
    size_t n);

/* Index in r->points of the first point at or after position h, wrapping
 * round; r->n must not be 0. */
size_t hashring_find(const struct hashring *r, uint32_t h);

/* The member owning point i. */
static inline uint32_t
hashring_member(const struct hashring *r, size_t i)
{
	return (uint32_t)r->points[i];
}

void hashring_free(struct hashring *r);

#endif
