/*
 * One relayed connection: a client socket, a backend socket, and per
 * direction a pipe taken from the worker's pool only while bytes are in
 * flight, so an idle connection holds two descriptors.
 */
#ifndef LBD_RELAY_H
#define LBD_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

/*
 * One direction: bytes read from one socket and written to the other.
 * Small messages are copied through the worker's scratch buffer (a short
 * recv() proves the socket drained, so no read ends in EAGAIN); once a read
 * fills the buffer the direction carries bulk and switches to splice()
 * through a pipe from the pool for good.
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
};

enum conn_state {
	CONN_CONNECTING,
	CONN_RELAY,
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
};

/* The order fields are laid out in keeps an idle connection small. */
struct conn {
	int client_fd;			/* owned */
	int backend_fd;			/* owned, -1 before a connect */
	uint8_t state;			/* enum conn_state */
	uint16_t service;		/* index into the config's services */
	uint16_t listener;		/* index into the worker's listeners */
	int16_t backend;		/* index into the service's backends, -1 none */
	uint8_t attempts;		/* connects tried */
	uint8_t close_reason;		/* enum close_reason */
	uint8_t closed;			/* freed at the end of the event batch */
	uint8_t fd_wait;		/* no descriptor for the backend socket yet */
	uint8_t client_out;		/* the client socket's output is watched */
	uint8_t ack_held;		/* connect holds its last ACK for our first bytes */
	uint8_t queued;			/* yielded: in the worker's run queue */
	uint64_t tried;			/* backend indexes already tried */
	uint32_t rr_pos;		/* place in the service's sequence, for retries */
	union {				/* the client: TCP over IPv4 or IPv6 only */
		struct sockaddr sa;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
	} peer;
	struct half up;			/* client -> backend */
	struct half down;		/* backend -> client */
	uint64_t started_ms;		/* accept time */
	uint64_t last_ms;		/* last byte moved, or connect start */
	uint64_t bytes_up;
	uint64_t bytes_down;
	struct conn *prev, *next;	/* the service's connecting or idle list */
	struct conn *run_next;		/* the worker's run queue, while queued */
};

/*
 * Free pipes kept for the next connection that has bytes to move.  Pipes
 * are created at the kernel's default size and grown once a direction
 * fills one (bulk transfers), since a bigger pipe cuts splice calls per MiB.
 */
struct pipe_pool {
	int (*free)[2];			/* owned: [i][0] read end, [i][1] write end */
	uint32_t *free_cap;
	size_t nfree;
	size_t max_free;
	uint32_t big_size;		/* size to grow a full pipe to, 0 = never */
};

enum relay_status {
	RELAY_MORE,			/* waiting for readiness */
	RELAY_DONE,			/* both directions finished: close cleanly */
	RELAY_RESET_CLIENT,		/* the client side failed or reset */
	RELAY_RESET_BACKEND,		/* the backend side failed or reset */
	RELAY_NOPIPE,			/* internal: no pipe to be had, copy instead */
	RELAY_YIELD,			/* bytes still flow: pump again after the others */
};

int pipe_pool_init(struct pipe_pool *pool, size_t max_free, uint32_t big_size);
void pipe_pool_destroy(struct pipe_pool *pool);

/* The worker's scratch buffer for copied directions; a full read means bulk. */
#define RELAY_COPY_MAX	16384

void half_init(struct half *h);
/*
 * Gives the connection's pipes back (emptied) or closes them when they hold
 * bytes, and frees what the copy path held.
 */
void relay_release(struct conn *c, struct pipe_pool *pool);

/*
 * Reads what a just-accepted client has sent already and keeps it as bytes
 * owed to the backend; call it before the socket joins the epoll set, so
 * that the registration raises no event for the bytes taken here.  Returns
 * the bytes kept, 0 for none yet (or the client's FIN, noted in h), and -1
 * when the client failed or memory ran out.
 */
ssize_t relay_read_first(struct half *h, int src, char *scratch);

/*
 * Moves what readiness allows in both directions, passing FINs on.  Adds
 * the bytes moved to *up and *down.  Never tears down a direction while its
 * pipe holds bytes for a peer that can still take them.  RELAY_YIELD: a
 * direction moved turn bytes and could go on; no readiness event will
 * announce those bytes again, so the caller pumps again after its other
 * connections had their turn.
 */
enum relay_status relay_pump(struct conn *c, struct pipe_pool *pool, char *scratch,
    uint64_t turn, uint64_t *up, uint64_t *down);

#endif
