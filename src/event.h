/*
 * The master's event loop dispatch: every fd in the master's epoll set
 * carries a pointer to one of these, and the loop calls its callback.
 */
#ifndef LBD_EVENT_H
#define LBD_EVENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

/* The struct of type whose member ptr points at (an embedded handler, a heap node). */
#define EV_CONTAINER(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct ev_handler {
	void (*cb)(struct ev_handler *h, uint32_t events);
	int fd;
};

static inline int
ev_add(int epfd, struct ev_handler *h, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = h };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, h->fd, &ev);
}

static inline int
ev_mod(int epfd, struct ev_handler *h, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = h };

	return epoll_ctl(epfd, EPOLL_CTL_MOD, h->fd, &ev);
}

static inline void
ev_del(int epfd, struct ev_handler *h)
{
	(void)epoll_ctl(epfd, EPOLL_CTL_DEL, h->fd, NULL);
}

#endif
