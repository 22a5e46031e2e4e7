/* exchange: one request in flight and its answer (DESIGN.md, "Lifetimes").
 * The public API (preforkd.h) calls it a pfd_req; api.c implements that API
 * on this struct.
 *
 * A connection creates an exchange when the first byte of a request arrives
 * and reads the request into it; the exchange runs the route's handler (here,
 * or as a job on the worker's pool) and holds the answer until the
 * connection has queued it. The connection is the exchange's owner while the
 * client is there; when the client goes away first, the exchange is
 * abandoned and ends on its own, once nothing refers to it.
 *
 *   PARSING ──dispatch──▶ HANDLING ──answer ready──▶ RESPONDING ──▶ freed
 *                          │  inline: the handler ran; ready unless it
 *                          │          started later work (below)
 *                          │  pool:   queued, then running on a thread
 *                  any state ──client gone / request_timeout──▶ abandoned
 *                          ──pending work done──▶ freed
 *
 * The answer is ready when nothing is pending: the handler call itself, a
 * pool job (a pool handler or pfd_async work), pfd_after timers, an open
 * inline stream. Each of them is counted in `pending`; exchange_settle()
 * runs when one ends.
 *
 * What an exchange owns, and when each thing ends:
 *   msg, req        the parser and the parsed request: with the exchange.
 *   resp            the answer; a file body passes to the connection when
 *                   the head is queued.
 *   arena           pfd_alloc() memory: reset when the exchange is freed.
 *   job             a pool job (the handler, or pfd_async work). Queued:
 *                   taken back from the pool when the exchange is abandoned
 *                   (an async job's done callback then runs at once, with
 *                   pfd_gone() true). Running: exchange_cancelled() turns
 *                   true, exchange_wait() and blocking stream writes return
 *                   at once; the job's done callback runs when it comes back.
 *   timer           request_timeout of a pool job: added with the job;
 *                   deleted when the job comes back, when the exchange is
 *                   abandoned, and when it is freed.
 *   afters          pfd_after timers: each fires once and is freed; all of
 *                   them fire at once (pfd_gone() true) when the exchange is
 *                   abandoned.
 *   wake            a zero timer running callbacks the connection asked for
 *                   (pfd_on_drain) outside the connection's own code.
 *   orphan_in       the request's bytes, taken from the connection when it
 *                   goes while a thread still reads them.
 *   pieces          streamed body pieces posted by a pool thread: freed by
 *                   the loop thread when the connection has copied them, or
 *                   dropped when the exchange is abandoned.
 *   body_in         a streamed request body (PFD_BODY_STREAM): bytes the
 *                   loop thread parsed and the handler has not read yet,
 *                   at most about stream_buffer (then the connection stops
 *                   reading until the handler makes room: body_resume, a
 *                   message the handler's thread posts once, is handled
 *                   before the job's own completion). Freed at reset.
 *
 * request_timeout: the client gets 504 from a new exchange on the same
 * connection; this one is abandoned as if the client had left (a running
 * handler that does not stop counts as stuck in the scoreboard until it
 * returns). A response already streaming is cut instead.
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
#include "workers/arena.h"
#include "workers/buf.h"
#include "workers/http.h"
#include "workers/pool.h"
#include "workers/preforkd.h"
#include "workers/response.h"

struct conn;
struct route;
struct ex_after;
struct ex_release;

/* What exchanges need from their worker, and their cache (per worker). */
struct exchange_env {
    struct event_base *base;
    const struct conf *conf;
    const struct http_limits *limits;
    struct pool *pool;
    struct sb_slot *slot;
    const struct timeval *t_request; /* common timeout: request_timeout */
    struct event *pool_kick;         /* wakes pool threads once per loop turn */
    bool kick_armed;
    struct exchange *free; /* cached exchanges */
    unsigned nfree;
};

enum ex_state {
    EX_PARSING,    /* the connection reads the request */
    EX_HANDLING,   /* the handler runs, or work it started is pending */
    EX_RESPONDING, /* the response head is queued; a stream may go on */
};

/* A client address, copied: an abandoned exchange outlives its connection. */
union ex_peer {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

/* A {name} segment of a pattern route, matched. */
struct ex_param {
    pfd_str name, value;
};
#define EX_MAX_PARAMS CONF_MAX_ROUTE_PARAMS

struct exchange {
    struct exchange *next_free;
    struct exchange_env *env;
    struct conn *conn; /* owner; NULL once abandoned */
    enum ex_state state;
    struct http_msg *msg;
    const struct http_request *req; /* parsed head; NULL until then (and for refusals) */
    const struct route *route;
    const struct route *near; /* no route took it: the one of its path (site.h), or NULL */
    struct response resp;
    union ex_peer peer;
    socklen_t peer_len;
    struct arena arena;
    struct ex_param params[EX_MAX_PARAMS];
    unsigned nparams;
    unsigned allow;        /* no route: the methods of routes of this path (405), or 0 (404) */
    const char *client_ip; /* formatted on demand, in the arena */
    bool https;            /* a trusted proxy says the client used https (realip.h) */
    uint64_t start_us;     /* monotonic, for the request time */
    uint64_t seq;          /* its position on the connection: 0 for the first (pfd_request_seq) */
    size_t head_len;       /* bytes of the connection's input holding the head */
    uint64_t body_bytes;
    int status;     /* sent, for the log */
    bool head_only; /* HEAD: no content on the wire */
    bool streaming; /* the response head is queued: status and headers are fixed */
    bool chunked;   /* streamed pieces go as chunks */
    bool failed;    /* an API call refused: the client gets 500 (or a cut stream) */
    bool preflight; /* a CORS preflight answered by site.c */

    /* the answer waits for these (see above) */
    unsigned pending;
    bool stream_open;  /* an inline handler's stream, until pfd_stream_end */
    bool stream_ended; /* pfd_stream_end was called: no more writes */
    bool head_fixed;   /* status and headers can no longer change (a stream began) */
    struct ex_after *afters;
    struct ex_release *releases; /* holds given back by a pool thread, for the loop */
    void (*drain_cb)(pfd_req *r, void *arg);
    void *drain_arg;
    struct event wake;

    /* the pool hand-off */
    struct pool_job job;
    bool in_pool;  /* submitted, and its done callback has not run yet */
    bool is_async; /* the job is pfd_async work, not the handler */
    void (*async_work)(pfd_req *r, void *arg);
    void (*async_done)(pfd_req *r, void *arg);
    void *async_arg;
    bool stuck; /* ran past request_timeout: counted in the scoreboard */
    uint64_t cancelled_us;
    struct event timer;
    bool timer_on;
    struct buf orphan_in;

    /* shared with the pool thread running the handler, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* cancelled, or stream room */
    _Atomic bool cancelled; /* the client is gone or the deadline passed */
    size_t stream_pending;  /* streamed bytes posted and not yet sent */
    size_t stream_copied;   /* loop thread: of those, bytes in the connection's output */
    char *body_in;          /* a streamed body: unread bytes are body_in[body_off, body_len) */
    size_t body_off, body_len, body_cap;
    int body_end;            /* 0: more to come; 1: complete; else the status it broke off with */
    bool body_full;          /* the connection stopped reading until the reader makes room */
    bool body_resume_posted; /* body_resume is on its way to the loop */
    struct pool_job body_resume;
    size_t body_taken; /* a collected body: bytes pfd_body_read gave (the reader's own) */
};

/* A new exchange for connection c (from the cache when there is one); NULL
 * when out of memory. */
struct exchange *exchange_new(struct exchange_env *env, struct conn *c);
/* The connection is done with it (answered, or never dispatched). */
void exchange_free(struct exchange *ex);
/* Frees the cached exchanges (at most cached_objects are kept): after an
 * idle second, and at worker exit. */
void exchange_env_trim(struct exchange_env *env);
/* The pool_kick event's callback: wakes pool threads for the jobs handed
 * over in this turn of the loop. */
void exchange_env_kick(struct exchange_env *env);

/* Runs the route's handler: true when the answer is ready now; false when it
 * comes later through conn_exchange_done(). */
bool exchange_dispatch(struct exchange *ex);
/* The client is gone. in holds the request's bytes: taken when a pool thread
 * may still read them. The exchange ends now or once nothing is pending. */
void exchange_abandon(struct exchange *ex, struct buf *in);
/* The connection sent every byte it had queued: stream writers may go on. */
void exchange_output_drained(struct exchange *ex);
/* Something pending ended: the answer may be ready now. */
void exchange_settle(struct exchange *ex);
/* An API call could not do what was asked: the client gets 500. */
void exchange_fail(struct exchange *ex, const char *why);
/* Hands hold back to its owner on the loop thread: now, or from a pool
 * thread once the job is back (an open-file cache is the loop's). */
void exchange_release(struct exchange *ex, void *hold, void (*release)(void *hold));

/* A streamed request body (PFD_BODY_STREAM), loop thread: bytes parsed
 * (http_msg_stream_body's sink: 0, or -1 when out of memory); whether
 * stream_buffer bytes wait for the reader (then the connection stops
 * reading: conn_exchange_body_resume comes when the reader made room); the
 * end of the body, 1 or the status it broke off with. */
int exchange_body_feed(void *ex, const char *p, size_t n);
bool exchange_body_full(struct exchange *ex);
void exchange_body_end(struct exchange *ex, int end);
/* Pool thread (or any, for a collected body): pfd_body_read. */
long exchange_body_read(struct exchange *ex, void *buf, size_t cap);

/* Pool thread: the client is gone or the deadline passed; stop. */
bool exchange_cancelled(struct exchange *ex);
/* Pool thread: waits ms milliseconds, or less when cancelled; -1 then. */
int exchange_wait(struct exchange *ex, unsigned ms);
/* Pool thread: sends n bytes of a streamed body (resp.body = BODY_STREAM,
 * status and headers set, not changed afterwards). Waits while more than
 * stream_buffer bytes are on their way to the client. -1 when cancelled. */
int exchange_stream_write(struct exchange *ex, const void *p, size_t n);

/* Loop thread, for the API: pfd_async, pfd_after, and the inline stream. */
int exchange_async(struct exchange *ex, void (*work)(pfd_req *, void *),
                   void (*done)(pfd_req *, void *), void *arg);
int exchange_after(struct exchange *ex, unsigned ms, void (*cb)(pfd_req *, void *), void *arg);
int exchange_stream_begin(struct exchange *ex);
int exchange_stream_write_inline(struct exchange *ex, const void *p, size_t n);
int exchange_stream_end(struct exchange *ex);
int exchange_on_drain(struct exchange *ex, void (*cb)(pfd_req *, void *), void *arg);

#endif
