/*
 * The relay: moves one connection's bytes between its client and backend
 * sockets, both directions, passing FINs and resets on.  It owns its state
 * (struct relay); the worker hands it epoll readiness and gets back a
 * struct relay_result -- it never reads or writes the halves itself.
 *
 * Per direction a pipe is taken from the worker's pool only while bytes are
 * in flight, so an idle connection holds no descriptor here.
 */
#ifndef LBD_RELAY_H
#define LBD_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * One direction: bytes read from one socket and written to the other.
 * Small messages are copied through the worker's scratch buffer (a short
 * recv() proves the socket drained, so no read ends in EAGAIN); once a read
 * fills the buffer the direction carries bulk and switches to splice()
 * through a pipe from the pool for good.  Laid out here only so that a
 * struct relay can be embedded in the worker's connection; relay.c alone
 * reads or writes it.
 */
struct half {
	int pipe_rd;			/* from the pool while inpipe > 0, else -1 */
	int pipe_wr;
	uint32_t pipe_cap;
	uint32_t inpipe;		/* bytes sitting in the pipe */
	char *pending;			/* owned: copied bytes the peer could not take yet */
	uint32_t pending_off;
	uint32_t pending_len;
	bool spliced;			/* bulk seen: splice from now on */
	bool src_eof;			/* read 0: the source sent FIN */
	bool src_ready;			/* may hold unread bytes (edge-triggered) */
	bool src_hup;			/* FIN seen by epoll: read on until 0 */
	bool dst_ready;			/* may take more bytes */
	bool dst_shut;			/* FIN passed on */
	bool unanswered;		/* up only: the client sent since the backend answered */
};

struct relay {
	struct half up;			/* client -> backend */
	struct half down;		/* backend -> client */
};

/*
 * Free pipes kept for the next connection that has bytes to move.  Pipes
 * are created at the kernel's default size and grown once a direction
 * half fills one (bulk transfers), since a bigger pipe cuts splice calls per
 * MiB.  A refused growth is asked again later, never given up for good.
 */
struct pipe_pool {
	int (*free)[2];			/* owned: [i][0] read end, [i][1] write end */
	uint32_t *free_cap;
	size_t nfree;
	size_t max_free;
	uint32_t big_size;		/* size to grow a full pipe to, 0 = never */
	uint32_t grow_wait;		/* fills to skip before asking again */
	bool grow_refused;		/* the last F_SETPIPE_SZ failed (logged once) */
};

enum relay_status {
	RELAY_MORE,			/* waiting for readiness */
	RELAY_DONE,			/* both directions finished: close cleanly */
	RELAY_RESET_CLIENT,		/* the client side failed or reset */
	RELAY_RESET_BACKEND,		/* the backend side failed or reset */
	RELAY_YIELD,			/* bytes still flow: pump again after the others */
};

/* Which sides have sent their FIN (bits), as seen by the end of a pump. */
#define RELAY_FIN_CLIENT	1u
#define RELAY_FIN_BACKEND	2u

/* What one pump did, for the worker's counters and epoll interest. */
struct relay_result {
	uint64_t up;			/* bytes moved client -> backend */
	uint64_t down;			/* bytes moved backend -> client */
	bool spliced_up;		/* this pump moved a direction to splice */
	bool spliced_down;
	uint8_t fins;			/* RELAY_FIN_* */
	bool client_full;		/* the client refused bytes: watch its output */
	/* 1 when the backend started answering after the client had sent:
	 * one turn of a request/response conversation.  Bytes the client
	 * sends while the answer flows (pipelining) open no new turn. */
	uint8_t exchanges;
};

/* The worker's scratch buffer for copied directions; a full read means bulk. */
#define RELAY_COPY_MAX	16384

int pipe_pool_init(struct pipe_pool *pool, size_t max_free, uint32_t big_size);

/* A connection just accepted: nothing read yet, nothing connected. */
void relay_init(struct relay *r);

/*
 * Reads what a just-accepted client has sent already and keeps it as bytes
 * owed to the backend; call it before the socket joins the epoll set, so
 * that the registration raises no event for the bytes taken here.  Returns
 * the bytes kept, 0 for none yet (or the client's FIN), and -1 when the
 * client failed or memory ran out.
 */
ssize_t relay_read_first(struct relay *r, int client_fd, char *scratch);

/*
 * Takes len bytes the front door read from the client as bytes owed to the
 * backend, as relay_read_first does; more: the client socket may hold more
 * (or its FIN), so the first pump reads it.  0, or -1 when memory ran out.
 */
int relay_hold_request(struct relay *r, const void *buf, size_t len, bool more);

/* Client bytes are held for the backend (so the connect's ACK can wait). */
bool relay_holds_request(const struct relay *r);

/* The backend connect completed, with these epoll events. */
void relay_connected(struct relay *r, uint32_t events);

/* Readiness epoll reported on the client (from_backend false) or backend socket. */
void relay_ready(struct relay *r, bool from_backend, uint32_t events);

/*
 * Moves what readiness allows in both directions, passing FINs on; fills
 * *res.  Never tears down a direction while its pipe holds bytes for a
 * peer that can still take them.  RELAY_YIELD: a direction moved turn
 * bytes and could go on; no readiness event will announce those bytes
 * again, so the caller pumps again after its other connections had their
 * turn.
 */
enum relay_status relay_pump(struct relay *r, int client_fd, int backend_fd,
    struct pipe_pool *pool, char *scratch, uint64_t turn, struct relay_result *res);

/*
 * A quiet moment to close at: the last word was the backend's (an answer
 * to all the client sent), and no byte is owed either way.  Whether both
 * sides have been silent long enough is the caller's clock.
 */
bool relay_answered(const struct relay *r);

/*
 * Gives the connection's pipes back (emptied) or closes them when they hold
 * bytes, and frees what the copy path held.
 */
void relay_release(struct relay *r, struct pipe_pool *pool);

#endif
