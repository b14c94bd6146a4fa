/*
 * The connection log line (log-connections): one per closed connection,
 * with its service, client, backend, duration, bytes each way, exchanges,
 * why it ended and how long it queued.  See lbd.8 for the format.
 */
#include <stdio.h>

#include "addr.h"
#include "connlog.h"
#include "log.h"

static const char *
close_reason_text(enum close_reason r)
{
	static const char *const text[] = {
		[CLOSE_NONE] = "closed", [CLOSE_CLIENT] = "client closed",
		[CLOSE_BACKEND] = "backend closed", [CLOSE_RESET_CLIENT] = "client reset",
		[CLOSE_RESET_BACKEND] = "backend reset", [CLOSE_IDLE] = "idle timeout",
		[CLOSE_CONNECT] = "connect failed", [CLOSE_NO_BACKEND] = "no backend available",
		[CLOSE_SHUTDOWN] = "shutdown", [CLOSE_LOCAL] = "out of resources",
		[CLOSE_AGED] = "aged out", [CLOSE_PROXY_ERROR] = "PROXY header error",
		[CLOSE_DENIED] = "denied", [CLOSE_SNI_MISS] = "no service for the server name",
		[CLOSE_QUEUE_TIMEOUT] = "queue timeout", [CLOSE_QUEUE_FULL] = "queue full",
	};

	return r < sizeof(text) / sizeof(text[0]) ? text[r] : "closed";
}

void
connlog_write(const struct worker *w, const struct conn *c)
{
	const struct lbd_service_conf *svc = &w->conf->services[c->service];
	char peer[LBD_ADDR_LEN], queued[40] = "";

	addr_format(&c->peer.sa, peer, sizeof(peer));
	/* How long it waited in the service queue, when it did. */
	if (c->ticket != 0 || c->waited_ms > 0)
		snprintf(queued, sizeof(queued), " (queued %llums)", (unsigned long long)
		    (c->ticket != 0 ? w->now_ms - c->last_ms : c->waited_ms));
	log_info("%s %s -> %s %s %llums in %llu out %llu exch %u: %s%s", svc->name, peer,
	    c->backend >= 0 ? svc->backends[c->backend].name : "-",
	    c->backend >= 0 ? svc->backends[c->backend].addr.text : "-",
	    (unsigned long long)(w->now_ms - c->started_ms),
	    (unsigned long long)c->bytes_up, (unsigned long long)c->bytes_down,
	    c->exchanges, close_reason_text(c->close_reason), queued);
}
