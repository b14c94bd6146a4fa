/*
 * The worker's own state, shared by its rooms: worker.c (the loop and the
 * connection life cycle) and accept.c (accepting).  The relay's state is
 * relay.c's and the schedules' are schedule.c's: both are embedded here
 * but read and written only through their functions.
 */
#ifndef LBD_WORKERSTATE_H
#define LBD_WORKERSTATE_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "orphan.h"
#include "relay.h"
#include "runq.h"
#include "schedule.h"
#include "statsmap.h"
#include "worker.h"

enum conn_state {
	CONN_CONNECTING,
	CONN_RELAY,
	CONN_DOOR,			/* at the front door: no service yet (door.c) */
	CONN_WAITING,			/* in the service queue for a maxconn slot (wait.c) */
};

enum close_reason {
	CLOSE_NONE,
	CLOSE_CLIENT,			/* client sent FIN first */
	CLOSE_BACKEND,			/* backend sent FIN first */
	CLOSE_RESET_CLIENT,
	CLOSE_RESET_BACKEND,
	CLOSE_IDLE,
	CLOSE_CONNECT,			/* no backend could be reached */
	CLOSE_NO_BACKEND,		/* none eligible */
	CLOSE_SHUTDOWN,			/* lbd stopped */
	CLOSE_LOCAL,			/* out of descriptors or memory */
	CLOSE_AGED,			/* max-connection-age, at a quiet moment */
	CLOSE_PROXY_ERROR,		/* accept-proxy: no valid header in time */
	CLOSE_DENIED,			/* allow/deny */
	CLOSE_SNI_MISS,			/* no service for the server name */
	CLOSE_QUEUE_TIMEOUT,		/* waited queue-timeout for a maxconn slot */
	CLOSE_QUEUE_FULL,		/* the service queue held max-queue already */
};

struct door_wait;

/* One client connection; owned by the worker, freed after its event batch.
 * The order fields are laid out in keeps an idle connection small. */
struct conn {
	int client_fd;			/* owned */
	int backend_fd;			/* owned, -1 before a connect */
	uint8_t state;			/* enum conn_state */
	uint8_t close_reason;		/* enum close_reason */
	uint8_t closed;			/* freed at the end of the event batch */
	uint8_t fd_wait;		/* no descriptor for the backend socket yet */
	uint16_t service;		/* index into the config's services */
	uint16_t listener;		/* index into the worker's listeners */
	int16_t backend;		/* index into the service's backends, -1 none */
	uint8_t client_out;		/* the client socket's output is watched */
	uint8_t ack_held;		/* connect holds its last ACK for our first bytes */
	uint8_t queued;			/* yielded: in the worker's run queue */
	uint8_t admitted;		/* counted in its service (past the front door) */
	uint8_t slot_held;		/* holds one of its backend's maxconn slots */
	uint32_t waited_ms;		/* in the service queue, for the log */
	uint64_t ticket;		/* its place in the service queue, while waiting */
	struct sched_walk walk;		/* backends tried, for retries */
	union {				/* the client: TCP over IPv4 or IPv6 only */
		struct sockaddr sa;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
	} peer;
	uint32_t exchanges;		/* turns of its conversation so far */
	struct relay relay;
	uint64_t started_ms;		/* accept time */
	uint64_t last_ms;		/* last byte moved, or connect start */
	uint64_t bytes_up;
	uint64_t bytes_down;
	struct conn *prev, *next;	/* the service's connecting or idle list */
	union {
		struct conn *run_next;	/* the worker's run queue, while queued */
		struct door_wait *door;	/* owned, while at the front door */
	};
};

struct conn_list {
	struct conn *head, *tail;
};

/* Per service: its schedule and its connections, oldest first. */
struct service_rt {
	struct schedule sched;
	struct conn_list connecting;	/* oldest connect first */
	struct conn_list idle;		/* least recently active first */
	struct conn_list waiting;	/* in the service queue, oldest first (wait.c) */
};

/* accept.c's state. */
struct acceptor {
	int kick_fd;			/* shared eventfd, see worker.h */
	int accepting;			/* listeners are in the epoll set */
	uint64_t paused_until_ms;	/* 0 = not paused for a while */
	uint64_t deferred_ms;		/* last paused for an idle sibling */
	int deferred;			/* stepped aside once: accept the next one */
	int defer_paused;		/* paused until an idle sibling takes one */
	uint64_t logged_ms;		/* last "accept (pausing)" line */
	/* A client accepted on a descriptor at or above this one leaves too
	 * few for its backend socket and pipes: accepting stops there until a
	 * connection closes, and siblings with room take the clients. */
	int fd_room;
};

struct worker {
	int epfd;
	int sigfd;
	struct lbd_config *conf;
	struct stats_map *map;
	uint32_t slot;
	uint32_t id;
	struct listener *listeners;
	size_t nlisteners;
	struct acceptor acc;
	struct service_rt *rt;		/* one per service */
	struct conn_list doors;		/* at the front door, oldest first */
	struct pipe_pool pool;
	char scratch[RELAY_COPY_MAX];	/* copied directions pass through here */
	uint64_t now_ms;
	uint64_t next_tick_ms;
	uint32_t nconns;
	int stopping;
	struct orphan orphan;		/* see orphan.h */
	uint64_t fdwait_logged_ms;	/* last "clients wait" line */
	struct conn *graveyard;		/* closed this batch, freed after it */
	struct runq runq;		/* yielded connections, oldest first */
	uint64_t *fail_logged_ms;	/* by backend slot: last "connect:" line */
	uint32_t nwaiting;		/* clients in service queues (wait.c) */
	int wait_due;			/* a slot freed here, or a client queued: look now */
	uint64_t next_wait_ms;		/* next look at the queues while clients wait */
};

/*
 * What an epoll event's data names: a pointer (8-byte aligned at least)
 * with the kind of object in its low bits.
 */
enum tag_kind {
	TAG_CLIENT = 0,
	TAG_BACKEND = 1,
	TAG_LISTENER = 2,
	TAG_SIGNAL = 3,
	TAG_KICK = 4,
};
#define TAG_MASK	UINT64_C(7)

static inline uint64_t
tag(void *ptr, enum tag_kind kind)
{
	return (uint64_t)(uintptr_t)ptr | (uint64_t)kind;
}

static inline void
conn_list_remove(struct conn_list *l, struct conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else if (l->head == c)
		l->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else if (l->tail == c)
		l->tail = c->prev;
	c->prev = c->next = NULL;
}

static inline void
conn_list_append(struct conn_list *l, struct conn *c)
{
	c->next = NULL;
	c->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
}

/* worker.c: a client just accepted on listener l. */
void conn_new(struct worker *w, struct listener *l, int fd,
    const struct sockaddr_storage *peer, socklen_t peerlen);
/* worker.c: the client's service is known: count it there and connect. */
void conn_admit(struct worker *w, struct conn *c);
/* worker.c: closes the connection (freed after the event batch). */
void conn_close(struct worker *w, struct conn *c, enum close_reason reason);
/* worker.c, for wait.c: a backend for c (or the queue); closing unserved. */
void conn_connect(struct worker *w, struct conn *c);
void conn_reject(struct worker *w, struct conn *c, enum close_reason reason);

#endif
