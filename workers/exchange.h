/* exchange: one request in flight and its response (DESIGN.md, "Lifetimes").
 *
 * A connection creates an exchange when the first byte of a request arrives
 * and reads the request into it; the exchange runs the route's handler (here,
 * or as a job on the worker's pool) and holds the response until the
 * connection has queued it. The connection is the exchange's owner while the
 * client is there; when the client goes away first, the exchange is
 * abandoned and ends on its own.
 *
 *   PARSING ──dispatch──▶ HANDLING ──response ready──▶ RESPONDING ──▶ freed
 *                          │  inline: the handler ran; ready at once
 *                          │  pool:   queued, then running on a thread
 *                          ▼  (request_timeout: 504, see below)
 *                  any state ──client gone──▶ abandoned ──nothing refers to it──▶ freed
 *
 * What an exchange owns, and when each thing ends:
 *   msg, req        the parser and the parsed request: with the exchange.
 *   resp            the response; a file body passes to the connection when
 *                   the head is queued.
 *   job             the handler's pool job. Queued: taken back from the pool
 *                   when the client goes or request_timeout fires, so it
 *                   never runs. Running: exchange_cancelled() turns true and
 *                   exchange_wait() and exchange_stream_write() return at
 *                   once; the exchange is freed when the job comes back.
 *   timer           request_timeout of a pool handler: added when the job is
 *                   submitted; deleted when the job comes back, when it fires,
 *                   when the exchange is abandoned, and when it is freed.
 *   orphan_in       the request's bytes, taken from the connection when it
 *                   goes while a thread still reads them: freed with the
 *                   exchange.
 *   pieces          streamed body pieces posted by a pool thread: freed by
 *                   the loop thread when the connection has copied them, or
 *                   at once when the exchange is abandoned.
 *
 * request_timeout: a queued job is taken back and the client gets 504; a
 * running one is cancelled (it may not notice: it then counts as stuck in the
 * scoreboard until it returns), the client gets 504 from a new exchange, and
 * this one lives on, abandoned, until its job comes back. A response already
 * streaming is cut instead.
 *
 * Loop thread only, except the functions marked "pool thread". */
#ifndef PREFORKD_EXCHANGE_H
#define PREFORKD_EXCHANGE_H

#include <event2/event_struct.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server/conf.h"
#include "server/scoreboard.h"
#include "workers/buf.h"
#include "workers/http.h"
#include "workers/pool.h"
#include "workers/response.h"

struct conn;
struct route;

/* What exchanges need from their worker, and their cache (per worker). */
struct exchange_env {
    struct event_base *base;
    const struct conf *conf;
    const struct http_limits *limits;
    struct pool *pool;
    struct sb_slot *slot;
    const struct timeval *t_request; /* common timeout: request_timeout */
    struct exchange *free;           /* cached exchanges */
    unsigned nfree;
};

enum ex_state {
    EX_PARSING,    /* the connection reads the request */
    EX_HANDLING,   /* the handler runs (inline), or its pool job is out */
    EX_RESPONDING, /* the response head is queued; a stream may go on */
};

/* A client address, copied: an abandoned exchange outlives its connection. */
union ex_peer {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

struct exchange {
    struct exchange *next_free;
    struct exchange_env *env;
    struct conn *conn; /* owner; NULL once abandoned */
    enum ex_state state;
    struct http_msg *msg;
    const struct http_request *req; /* parsed head; NULL until then (and for refusals) */
    const struct route *route;
    struct response resp;
    union ex_peer peer;
    uint64_t start_us; /* monotonic, for the request time */
    size_t head_len;   /* bytes of the connection's input holding the head */
    uint64_t body_bytes;
    int status;     /* sent, for the log */
    bool head_only; /* HEAD: no content on the wire */
    bool streaming; /* a streamed response's head is queued */
    bool chunked;   /* streamed pieces go as chunks */

    /* the pool hand-off */
    struct pool_job job;
    bool in_pool;          /* submitted, and its done callback has not run yet */
    bool stuck;            /* ran past request_timeout: counted in the scoreboard */
    uint64_t cancelled_us; /* when request_timeout asked it to stop */
    struct event timer;
    bool timer_on; /* timer is added */
    struct buf orphan_in;

    /* shared with the pool thread running the handler, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* cancelled, or stream room */
    _Atomic bool cancelled; /* the client is gone or the deadline passed */
    size_t stream_pending;  /* streamed bytes posted and not yet sent */
    size_t stream_copied;   /* loop thread: of those, bytes in the connection's output */
};

/* A new exchange for connection c (from the cache when there is one); NULL
 * when out of memory. */
struct exchange *exchange_new(struct exchange_env *env, struct conn *c);
/* The connection is done with it (answered, or never dispatched). */
void exchange_free(struct exchange *ex);
/* Frees the cache (worker exit). */
void exchange_env_fini(struct exchange_env *env);

/* Runs the route's handler: true when the response is ready now (inline
 * handlers, and answers found without the handler); false when it comes
 * later through conn_exchange_done(). */
bool exchange_dispatch(struct exchange *ex);
/* The client is gone. in holds the request's bytes: taken when a pool thread
 * may still read them. The exchange ends now or when its job comes back. */
void exchange_abandon(struct exchange *ex, struct buf *in);
/* The connection sent every byte it had queued: stream writers may go on. */
void exchange_output_drained(struct exchange *ex);

/* Pool thread: the client is gone or the deadline passed; stop. */
bool exchange_cancelled(struct exchange *ex);
/* Pool thread: waits ms milliseconds, or less when cancelled; -1 then. */
int exchange_wait(struct exchange *ex, unsigned ms);
/* Pool thread: sends n bytes of a streamed body (resp.body = BODY_STREAM,
 * status and headers set, not changed afterwards). Waits while more than
 * stream_buffer bytes are on their way to the client. -1 when cancelled. */
int exchange_stream_write(struct exchange *ex, const void *p, size_t n);

#endif
