/* conn: one client connection, driven as an explicit state machine.
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
 * Rules: the read event stays registered for the connection's life (it is
 * paused only when the input buffer is full or the peer closed); the write
 * event is added only when a write returns EAGAIN. Output is flushed whenever
 * the machine is about to wait. One request is in flight at a time. */
#ifndef PREFORKD_CONN_H
#define PREFORKD_CONN_H

#include <stdbool.h>
#include <sys/socket.h>

struct worker;

enum conn_state {
    CONN_IDLE,         /* keep-alive: no byte of the next request yet */
    CONN_READING_HEAD, /* part of a request head has arrived */
    CONN_READING_BODY, /* the head is parsed; reading or dropping the body */
    CONN_HANDLING,     /* a pool thread is running the handler */
    CONN_WRITING,      /* a file body is going out; the next request waits */
    CONN_LINGERING,    /* answered and half-closed; draining the client */
};

/* Takes over an accepted socket (non-blocking). */
void conn_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen);

/* Graceful stop: closes the connections that are idle (nothing of a request
 * has arrived); the others close after their current response, because a
 * stopping worker answers with Connection: close. */
void conns_close_idle(struct worker *w);
/* Fast stop: every connection, now. */
void conns_close_all(struct worker *w);

/* Frees cached connection and exchange structs (at worker exit). */
void conns_free_cached(struct worker *w);

#endif
