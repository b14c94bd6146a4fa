/*
 * Balancing choices as pure functions: the smooth weighted round-robin
 * sequence, least connections per unit of weight, and the source-address
 * hash.  No I/O, no segment access: tests/unit/test_balance.c drives them.
 */
#ifndef LBD_BALANCE_H
#define LBD_BALANCE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The longest smooth sequence (max weight x 64 backends): schedule.c uses
 * it for services whose period fits, the golden-ratio order above. */
#define BALANCE_SEQ_MAX	(256 * 64)

/*
 * Fills seq with member indexes in nginx's smooth weighted order (weights
 * 3,1,1 give 0 1 0 2 0), one full period after dividing the weights by
 * their gcd; members of weight 0 never appear.  Returns the length, 0 when
 * every weight is 0; a longer period is cut short.  n is at most 256 (the
 * indexes are bytes); building costs O(length x n), so it is meant for
 * small services.  seq must hold BALANCE_SEQ_MAX entries.
 */
size_t balance_smooth_sequence(const uint32_t *weights, size_t n, uint8_t *seq);

/*
 * Index of the candidate with the fewest active connections, counting the
 * new one, per unit of weight (candidates with weight 0 are skipped); ties go to the first one
 * at or after rotate % n, so equal backends share the load.  -1 if none.
 */
int balance_leastconn(const uint64_t *active, const uint32_t *weights, size_t n,
    uint64_t rotate);

/*
 * leastload: index of the candidate with the least estimated load (load[i],
 * any unit) per unit of weight; ties go to the fewest active connections
 * per unit of weight, then to the first at or after rotate % n.
 * Herd guard: recent[i] counts the picks of candidate i since its load was
 * last measured; one that already took twice its weight's share of those
 * picks (and two more) is passed over while another is left, so a burst
 * of new connections cannot pile on the backend that looked idlest before
 * it.  Candidates of weight 0 are skipped.  -1 if none.
 */
int balance_leastload(const uint64_t *load, const uint64_t *active, const uint64_t *recent,
    const uint32_t *weights, size_t n, uint64_t rotate);

/* Greatest common divisor; 0 with 0 gives 0. */
uint64_t balance_gcd(uint64_t a, uint64_t b);

/* splitmix64's finaliser: cheap, and every input bit moves every output bit. */
uint64_t balance_mix(uint64_t x);

/* A hash of the client's address (not its port), IPv4 or IPv6. */
uint64_t balance_client_hash(const struct sockaddr *sa);

/*
 * A stable 64-bit identity for a backend, from its name alone: the same on
 * every node and across restarts, whatever the order of the file (unlike
 * its stats slot or its index).  Hashing by name is what lets several lbd
 * nodes behind ECMP send one client to one backend (issue 19).
 */
uint64_t balance_name_hash(const char *name);

/*
 * Rendezvous (highest random weight) choice among n candidates identified by
 * ids (balance_name_hash of each backend's name): a client keeps its
 * backend while that backend stays, losing one backend moves only its own
 * clients, and the choice depends on the set of ids, not on their order.
 * Candidates of weight 0 are skipped.  -1 if none.
 */
int balance_rendezvous(uint64_t client_hash, const uint64_t *ids,
    const uint32_t *weights, size_t n);

#endif
