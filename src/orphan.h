/*
 * A worker whose master died.  PR_SET_PDEATHSIG turns the master's death
 * into a SIGTERM, and the worker then finishes its connections as in a
 * stop; but with no master to send SIGUSR1 at shutdown-grace a busy stream
 * would keep it alive for ever.  So the worker keeps that time itself.
 */
#ifndef LBD_ORPHAN_H
#define LBD_ORPHAN_H

#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

struct orphan {
	pid_t master;			/* the parent at start: another one means it died */
	uint64_t cut_at_ms;		/* master gone: cut what is left then; 0 = not gone */
};

static inline void
orphan_start(struct orphan *o)
{
	o->master = getppid();
	o->cut_at_ms = 0;
}

/* On SIGTERM: 1 the first time it finds the master gone, and from then on
 * what is left is cut at now + grace. */
static inline int
orphan_notice(struct orphan *o, uint64_t now_ms, uint32_t grace_ms)
{
	if (o->cut_at_ms != 0 || getppid() == o->master)
		return 0;
	o->cut_at_ms = now_ms + grace_ms + 1;
	return 1;
}

static inline int
orphan_cut_due(const struct orphan *o, uint64_t now_ms)
{
	return o->cut_at_ms != 0 && now_ms >= o->cut_at_ms;
}

#endif
