/* conn: one client connection, driven as an explicit state machine.
 *
 *   PROXY ──────────────▶ READING_HEAD   a proxy_protocol listener's: the
 *     (header_timeout)                   front proxy's PROXY header first
 *                                        (proxyproto.h); its client address
 *                                        replaces the peer's for the
 *                                        connection's life; a malformed one,
 *                                        or none, closes it without answer
 *
 *                 bytes                 head parsed, body follows
 *   IDLE ────────────────▶ READING_HEAD ──────────────────────▶ READING_BODY
 *    ▲  (keepalive_timeout)  │ (header_timeout, total)               │ (body_timeout)
 *    │                       │ head parsed, no body                  │ body done
 *    │                       ▼                                       ▼
 *    │                  ┌─ dispatch ◀────────────────────────────────┘
 *    │                  │    inline handler: response built right here
 *    │                  │    pool handler:   HANDLING until the job is done
 *    │                  ▼                    (request_timeout, then 504)
 *    ├──────── response in memory: queued; the next pipelined request is
 *    │         parsed at once, and all queued output goes in one write
 *    └──────── WRITING: a file body is being sent (send_timeout per write)
 *
 *   A refused request (4xx/5xx from the parser, a timeout) is answered with
 *   Connection: close; then LINGERING reads and drops what the client still
 *   sends (linger_timeout), so that the answer is not lost to a reset.
 *
 * A request that does not want its body (a static file, an unknown path) is
 * answered as soon as its head is read: a body that is all here already is
 * dropped and the connection stays open; otherwise the answer carries
 * Connection: close and the rest is drained while LINGERING. A body must
 * also keep up body_min_rate on average (after body_timeout), or 408.
 *
 * Rules: a new connection is read at once (its request is usually there
 * already), and its read event is registered only when a read would block;
 * then it stays registered for the connection's life (paused only when the
 * input buffer is full or the peer closed). The write event is added only
 * when a write returns EAGAIN. Output is flushed whenever the machine is
 * about to wait. One request is in flight at a time. Deadlines follow the
 * monotonic clock.
 *
 * What a connection owns, and when each thing ends:
 *   fd            the socket: closed in conn_close(), after which libevent
 *                 forgets both events (a registered fd's pending
 *                 EPOLL_CTL_DEL then fails harmlessly: the close removed it).
 *   rev           read event and its timeout (the state's deadline): with
 *                 the connection.
 *   wev           write event (send_timeout): only while output waits for
 *                 room; back to the cache when the output drains or at close.
 *   in, out       buffers: back to the block cache when empty, at close.
 *   file_fd       a file body being sent: closed, or released to its owner
 *                 (open-file cache entry), when sent or at close.
 *   ex            the request in flight (exchange.h): freed when answered;
 *                 abandoned at close (it ends on its own).
 * Connection structs and write events are cached per worker (struct conns),
 * at most cached_objects connections, freed by conns_trim() after an idle
 * second and at worker exit. */
#ifndef PREFORKD_CONN_H
#define PREFORKD_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server/conf.h"
#include "server/scoreboard.h"
#include "workers/buf.h"
#include "workers/exchange.h"
#include "workers/realip.h"
#include "workers/route.h"

struct conn;
struct wev_box;
struct accesslog;
struct event_base;

enum conn_state {
    CONN_PROXY,        /* reading the PROXY protocol header; header_timeout runs */
    CONN_IDLE,         /* keep-alive: no byte of the next request yet */
    CONN_READING_HEAD, /* part of a request head has arrived */
    CONN_READING_BODY, /* the head is parsed; reading or dropping the body */
    CONN_HANDLING,     /* the handler's answer comes later (pool) */
    CONN_WRITING,      /* a file body is going out; the next request waits */
    CONN_LINGERING,    /* answered and half-closed; draining the client */
};

/* A worker's connections: what they need from the worker (filled in by it
 * before the first conn_accept() and kept for its life), and their list and
 * caches (conn.c's own). */
struct conns {
    struct event_base *base;
    const struct conf *conf;
    const struct routes *routes; /* the main listeners' */
    struct realip realip;        /* trusted_proxies */
    struct sb_slot *slot;
    struct accesslog *alog; /* NULL: no access log */
    struct exchange_env ex; /* what requests in flight need */
    struct bufcache bufs;   /* buffer blocks */
    const struct timeval *t_header, *t_body, *t_send, *t_keepalive; /* common timeouts */
    void (*closed)(void *arg); /* called after a connection closed */
    void *closed_arg;
    bool stopping;        /* answers carry Connection: close */
    bool idle_grace_over; /* graceful stop: a connection closes once idle */

    /* conn.c's own */
    struct conn *list; /* every open connection */
    unsigned n;
    struct conn *free; /* cached conn structs */
    unsigned nfree;
    struct wev_box *free_wevs; /* cached write events */
    uint64_t requests;         /* answered; mirrored into the slot */
};

/* Takes over an accepted socket (non-blocking). With proxy_protocol it
 * begins with the PROXY header (its listener's proxy_protocol option). */
void conn_accept(struct conns *cs, int fd, const struct sockaddr *peer, socklen_t peerlen,
                 const struct routes *routes, bool proxy_protocol);

/* Graceful stop: closes the connections that are idle (nothing of a request
 * has arrived); the others close after their current response, because a
 * stopping worker answers with Connection: close. */
void conns_close_idle(struct conns *cs);
/* Counts the connections by state into the slot (the worker's tick: a
 * walk of the list once a second costs nothing on the way of a request). */
void conns_publish(struct conns *cs);
/* Fast stop: every connection, now. */
void conns_close_all(struct conns *cs);
/* Frees the caches (worker exit, after conns_close_all). */
/* Frees what is cached for reuse: connections, write events, exchanges,
 * buffer blocks (the worker's idle tick, and its exit). */
void conns_trim(struct conns *cs);

/* From the connection's exchange (loop thread), outside the connection's
 * own calls into it:
 *   done     the answer is complete (or its stream ended): send it, go on
 *   kick     output was queued: send it
 *   timeout  request_timeout passed: the exchange is abandoned and the
 *            client gets 504 from a new one (or a cut stream)
 * and at any time (they queue, never run the machine):
 *   piece    n bytes of a streamed body (the head first, once; with p NULL
 *            and n 0 just the head): 0; 1 when the answer has no content
 *            (HEAD, 204, 304) and nothing was queued; -1 when they cannot be
 *            queued (the connection then closes at the next kick)
 *   output   bytes queued and not yet sent */
void conn_exchange_done(struct conn *c);
void conn_exchange_kick(struct conn *c);
void conn_exchange_timeout(struct conn *c);
/* The handler read a streamed body: the connection may read again. */
void conn_exchange_body_resume(struct conn *c);
int conn_exchange_piece(struct conn *c, const void *p, size_t n);
size_t conn_exchange_output(const struct conn *c);

#endif
