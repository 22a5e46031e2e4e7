/* exchange: the request in flight, its handler, pool job and timers. */
#include "workers/exchange.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/log.h"
#include "workers/conn.h"
#include "workers/route.h"
#include "workers/site.h"

/* A handler that returns later than this after being cancelled at
 * request_timeout did not stop when asked: that is worth a warning. */
#define STOP_NOTICE_US 200000
/* The first chunk of a request's arena, kept with a cached exchange. */
#define ARENA_KEEP 1024

/* A hold released by a pool thread, kept for the loop thread. */
struct ex_release {
    struct ex_release *next;
    void *hold;
    void (*release)(void *hold);
};

/* A pfd_after timer. */
struct ex_after {
    struct ex_after *next;
    struct exchange *ex;
    struct event ev;
    void (*cb)(pfd_req *r, void *arg);
    void *arg;
};

static void on_request_timeout(evutil_socket_t fd, short what, void *arg);
static void on_wake(evutil_socket_t fd, short what, void *arg);

static pfd_req *as_req(struct exchange *ex) {
    return (pfd_req *)ex;
}

/* Runs an application callback with the answer held open: nothing it does
 * completes the request under its feet. */
static void run_callback(struct exchange *ex, void (*cb)(pfd_req *, void *), void *arg) {
    ex->pending++;
    cb(as_req(ex), arg);
    ex->pending--;
}

/* An inline stream left open with nothing that could ever write to it (no
 * timer, no job, no drain callback) would hold its connection for good. */
static void check_stream_left_open(struct exchange *ex) {
    if (ex->stream_open && !ex->pending)
        exchange_fail(ex, "a stream was left open with nothing pending to end it");
}

/* After a callback: the answer may be complete; if not, what it queued goes
 * out. */
static void progress(struct exchange *ex) {
    check_stream_left_open(ex);
    if (ex->conn && (ex->pending || ex->stream_open))
        conn_exchange_kick(ex->conn);
    else
        exchange_settle(ex);
}

static void timer_stop(struct exchange *ex) {
    if (!ex->timer_on) return;
    evtimer_del(&ex->timer);
    ex->timer_on = false;
}

static void destroy(struct exchange *ex) {
    http_msg_free(ex->msg);
    response_free(&ex->resp);
    arena_free(&ex->arena);
    pthread_mutex_destroy(&ex->mu);
    pthread_cond_destroy(&ex->cv);
    free(ex);
}

static struct exchange *create(struct exchange_env *env) {
    struct exchange *ex = calloc(1, sizeof *ex);
    if (!ex) return NULL;
    if (!(ex->msg = http_msg_new())) {
        free(ex);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* exchange_wait's deadline */
    pthread_cond_init(&ex->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&ex->mu, NULL);
    response_init(&ex->resp);
    arena_init(&ex->arena, ARENA_KEEP);
    ex->env = env;
    evtimer_assign(&ex->timer, env->base, on_request_timeout, ex);
    evtimer_assign(&ex->wake, env->base, on_wake, ex);
    return ex;
}

struct exchange *exchange_new(struct exchange_env *env, struct conn *c) {
    struct exchange *ex = env->free;
    if (ex) {
        env->free = ex->next_free;
        env->nfree--;
    } else if (!(ex = create(env))) {
        return NULL;
    }
    ex->next_free = NULL;
    ex->conn = c;
    ex->state = EX_PARSING;
    ex->start_us = monotonic_us();
    http_msg_start(ex->msg, env->limits);
    return ex;
}

void exchange_release(struct exchange *ex, void *hold, void (*release)(void *hold)) {
    if (!pool_on_thread()) {
        release(hold);
        return;
    }
    struct ex_release *r = arena_alloc(&ex->arena, sizeof *r);
    if (!r) return; /* a leak of one hold rather than a race */
    *r = (struct ex_release){ex->releases, hold, release};
    ex->releases = r;
}

static void run_releases(struct exchange *ex) {
    for (struct ex_release *r = ex->releases; r; r = r->next) r->release(r->hold);
    ex->releases = NULL;
}

/* Back to the state exchange_new() expects; big buffers are not kept. */
static void reset(struct exchange *ex) {
    run_releases(ex);
    size_t keep = ex->env->conf->cached_buffer_max;
    response_reset(&ex->resp);
    response_trim(&ex->resp, keep);
    http_msg_trim(ex->msg, keep);
    arena_reset(&ex->arena);
    buf_release(&ex->orphan_in, NULL);
    ex->conn = NULL;
    ex->req = NULL;
    ex->route = ex->near = NULL;
    ex->preflight = false;
    ex->nparams = ex->allow = 0;
    ex->client_ip = NULL;
    ex->head_len = 0;
    ex->body_bytes = 0;
    ex->status = 0;
    ex->head_only = ex->streaming = ex->chunked = ex->stuck = ex->in_pool = false;
    ex->failed = ex->stream_open = ex->is_async = ex->https = false;
    ex->stream_ended = ex->head_fixed = false;
    ex->pending = 0;
    ex->drain_cb = NULL;
    ex->stream_pending = ex->stream_copied = 0;
    free(ex->body_in);
    ex->body_in = NULL;
    ex->body_off = ex->body_len = ex->body_cap = ex->body_taken = 0;
    ex->body_end = 0;
    ex->body_full = ex->body_resume_posted = false;
    atomic_store(&ex->cancelled, false);
}

void exchange_free(struct exchange *ex) {
    struct exchange_env *env = ex->env;
    timer_stop(ex);
    event_del(&ex->wake);
    reset(ex);
    if (env->nfree >= env->conf->cached_objects) {
        destroy(ex);
        return;
    }
    ex->next_free = env->free;
    env->free = ex;
    env->nfree++;
}

void exchange_env_kick(struct exchange_env *env) {
    env->kick_armed = false;
    pool_kick(env->pool);
}

void exchange_env_trim(struct exchange_env *env) {
    while (env->free) {
        struct exchange *ex = env->free;
        env->free = ex->next_free;
        destroy(ex);
    }
    env->nfree = 0;
}

/* Wakes a pool thread waiting in exchange_wait() or exchange_stream_write(). */
static void cancel(struct exchange *ex) {
    pthread_mutex_lock(&ex->mu);
    atomic_store(&ex->cancelled, true);
    pthread_cond_broadcast(&ex->cv);
    pthread_mutex_unlock(&ex->mu);
}

/* ---- a streamed request body ---------------------------------------------- */

/* The loop thread gets body_resume: the reader made room. */
static void on_body_resume(struct pool_job *msg) {
    struct exchange *ex = (struct exchange *)((char *)msg - offsetof(struct exchange, body_resume));
    pthread_mutex_lock(&ex->mu);
    ex->body_full = ex->body_resume_posted = false;
    pthread_mutex_unlock(&ex->mu);
    if (ex->conn) conn_exchange_body_resume(ex->conn);
}

int exchange_body_feed(void *arg, const char *p, size_t n) {
    struct exchange *ex = arg;
    int rc = 0;
    pthread_mutex_lock(&ex->mu);
    if (ex->body_len + n > ex->body_cap && ex->body_off) {
        memmove(ex->body_in, ex->body_in + ex->body_off, ex->body_len - ex->body_off);
        ex->body_len -= ex->body_off;
        ex->body_off = 0;
    }
    if (ex->body_len + n > ex->body_cap) {
        size_t cap = ex->body_cap ? ex->body_cap * 2 : 16 * 1024;
        while (cap < ex->body_len + n) cap *= 2;
        char *b = realloc(ex->body_in, cap);
        if (b) {
            ex->body_in = b;
            ex->body_cap = cap;
        } else {
            rc = -1;
        }
    }
    if (rc == 0) {
        memcpy(ex->body_in + ex->body_len, p, n);
        ex->body_len += n;
        pthread_cond_broadcast(&ex->cv);
    }
    pthread_mutex_unlock(&ex->mu);
    return rc;
}

bool exchange_body_full(struct exchange *ex) {
    pthread_mutex_lock(&ex->mu);
    bool full = ex->body_len - ex->body_off >= ex->env->conf->stream_buffer;
    if (full) ex->body_full = true;
    pthread_mutex_unlock(&ex->mu);
    return full;
}

void exchange_body_end(struct exchange *ex, int end) {
    pthread_mutex_lock(&ex->mu);
    ex->body_end = end;
    pthread_cond_broadcast(&ex->cv);
    pthread_mutex_unlock(&ex->mu);
}

/* A collected body, read through in pieces (the reader's own offset). */
static long read_collected(struct exchange *ex, void *buf, size_t cap) {
    size_t len = ex->req ? ex->req->body.len : 0;
    size_t n = len - ex->body_taken < cap ? len - ex->body_taken : cap;
    if (n) memcpy(buf, ex->req->body.p + ex->body_taken, n);
    ex->body_taken += n;
    return (long)n;
}

long exchange_body_read(struct exchange *ex, void *buf, size_t cap) {
    if (!ex->route || route_handler(ex->route)->body != PFD_BODY_STREAM)
        return read_collected(ex, buf, cap);
    if (!pool_on_thread()) {
        exchange_fail(ex, "pfd_body_read of a streamed body outside a pool thread");
        return -1;
    }
    if (cap > LONG_MAX) cap = LONG_MAX;
    bool post = false;
    long n;
    pthread_mutex_lock(&ex->mu);
    while (ex->body_off == ex->body_len && !ex->body_end && !atomic_load(&ex->cancelled))
        pthread_cond_wait(&ex->cv, &ex->mu);
    if (atomic_load(&ex->cancelled)) {
        n = -1;
    } else if (ex->body_off < ex->body_len) {
        size_t k = ex->body_len - ex->body_off < cap ? ex->body_len - ex->body_off : cap;
        memcpy(buf, ex->body_in + ex->body_off, k);
        ex->body_off += k;
        if (ex->body_off == ex->body_len) ex->body_off = ex->body_len = 0;
        n = (long)k;
        /* the connection waits for room: half of stream_buffer free wakes it */
        if (ex->body_full && !ex->body_resume_posted &&
            ex->body_len - ex->body_off <= ex->env->conf->stream_buffer / 2) {
            ex->body_resume_posted = post = true;
        }
    } else {
        n = ex->body_end == 1 ? 0 : -1;
    }
    pthread_mutex_unlock(&ex->mu);
    if (post) {
        ex->body_resume.done = on_body_resume;
        pool_post(ex->env->pool, &ex->body_resume);
    }
    return n;
}

void exchange_fail(struct exchange *ex, const char *why) {
    /* from the thread that uses the request now (loop or pool): once */
    if (!ex->failed)
        log_error("route %s: %s: the client gets %s", ex->route ? route_path(ex->route) : "-", why,
                  ex->streaming ? "a cut answer" : "500");
    ex->failed = true;
    /* a stream that failed is over: the answer completes (cut) as soon as
     * the handler or callback returns */
    ex->stream_open = false;
}

void exchange_settle(struct exchange *ex) {
    if (ex->pending || ex->stream_open) return;
    if (!ex->conn) {
        if (!ex->in_pool) exchange_free(ex);
        return;
    }
    conn_exchange_done(ex->conn);
}

/* ---- the pool hand-off ------------------------------------------------ */

static struct exchange *of_job(struct pool_job *job) {
    return (struct exchange *)((char *)job - offsetof(struct exchange, job));
}

/* Pool thread. */
static void on_job_work(struct pool_job *job) {
    struct exchange *ex = of_job(job);
    if (ex->is_async) {
        ex->async_work(as_req(ex), ex->async_arg);
        return;
    }
    if (route_handler(ex->route)->handle(as_req(ex)) != PFD_OK)
        exchange_fail(ex, "the handler returned an error");
}

static void on_job_done(struct pool_job *job) {
    struct exchange *ex = of_job(job);
    struct exchange_env *env = ex->env;
    ex->in_pool = false;
    run_releases(ex);
    timer_stop(ex);
    if (ex->stuck) {
        uint64_t late = monotonic_us() - ex->cancelled_us;
        if (late > STOP_NOTICE_US)
            log_warn("the handler of %s that exceeded request_timeout finished after %llu ms "
                     "(%llu ms after it was asked to stop)",
                     route_path(ex->route),
                     (unsigned long long)((monotonic_us() - ex->start_us) / 1000),
                     (unsigned long long)(late / 1000));
        atomic_fetch_sub_explicit(&env->slot->pool_stuck, 1, memory_order_relaxed);
    }
    if (ex->is_async) {
        ex->is_async = false;
        run_callback(ex, ex->async_done, ex->async_arg);
    }
    ex->pending--;
    progress(ex);
}

/* Hands the job to the pool, with its request_timeout. */
static int submit(struct exchange *ex) {
    struct exchange_env *env = ex->env;
    ex->job.work = on_job_work;
    ex->job.done = on_job_done;
    if (pool_submit_deferred(env->pool, &ex->job) < 0) {
        log_warn("pool queue full (pool_queue = %u): 503", env->conf->pool_queue);
        return -1;
    }
    /* the threads are woken once this turn of the loop is over (the kick
     * event runs after every event active now) */
    if (!env->kick_armed) {
        event_active(env->pool_kick, EV_TIMEOUT, 0);
        env->kick_armed = true;
    }
    ex->in_pool = true;
    ex->pending++;
    evtimer_add(&ex->timer, env->t_request);
    ex->timer_on = true;
    return 0;
}

static void answer_503(struct exchange *ex) {
    response_error(&ex->resp, 503);
    response_header(&ex->resp, "Retry-After", "1");
}

bool exchange_dispatch(struct exchange *ex) {
    const struct http_request *req = ex->req;
    const struct route *rt = ex->route;
    ex->state = EX_HANDLING;
    /* a CORS preflight of a route with cors is answered without its handler */
    const struct route *srt = rt ? rt : ex->near;
    if (srt && srt->site && req->method == METHOD_OPTIONS && route_admits(srt, &ex->peer.sa) &&
        site_before(ex))
        return true;
    if (!rt) {
        if (req->path[0] == '*') {
            ex->resp.status = 204; /* OPTIONS *: the server is here */
        } else if (ex->allow == ROUTES_MISDIRECTED) {
            response_error(&ex->resp, 421); /* no site here for that Host */
        } else if (ex->allow) {
            char allow[96];
            routes_allow_text(ex->allow, allow, sizeof allow);
            response_error(&ex->resp, 405);
            response_header(&ex->resp, "Allow", "%s", allow);
        } else {
            response_error(&ex->resp, 404);
        }
        return true;
    }
    if (!route_admits(rt, &ex->peer.sa)) {
        response_error(&ex->resp, 403);
        return true;
    }
    if (route_mode(rt) == ROUTE_POOL) {
        if (submit(ex) < 0) answer_503(ex);
        return !ex->pending;
    }
    /* the call itself is pending: nothing it starts settles the answer
     * before it returns */
    ex->pending++;
    if (route_handler(rt)->handle(as_req(ex)) != PFD_OK)
        exchange_fail(ex, "the handler returned an error");
    ex->pending--;
    check_stream_left_open(ex);
    return !ex->pending && !ex->stream_open;
}

int exchange_async(struct exchange *ex, void (*work)(pfd_req *, void *),
                   void (*done)(pfd_req *, void *), void *arg) {
    if (!ex->conn) return -1;
    if (ex->in_pool) {
        exchange_fail(ex, "pfd_async while work of this request is out (one job at a time)");
        return -1;
    }
    ex->is_async = true;
    ex->async_work = work;
    ex->async_done = done;
    ex->async_arg = arg;
    if (submit(ex) < 0) {
        ex->is_async = false;
        /* a stream under way has its status: it can only be cut */
        if (ex->streaming || ex->stream_open)
            exchange_fail(ex, "pfd_async: the pool's queue is full");
        else
            answer_503(ex);
        return -1;
    }
    return 0;
}

/* request_timeout of a pool job. */
static void on_request_timeout(evutil_socket_t fd, short what, void *arg) {
    struct exchange *ex = arg;
    struct exchange_env *env = ex->env;
    ex->timer_on = false;
    if (!pool_started(env->pool, &ex->job)) {
        log_warn("handler of %s still queued after request_timeout (%u ms): 504",
                 route_path(ex->route), env->conf->request_timeout);
    } else {
        /* the thread cannot be stopped, only asked: it counts as stuck until
         * it returns (at once, for a handler that watches the cancellation) */
        ex->stuck = true;
        ex->cancelled_us = monotonic_us();
        atomic_fetch_add_explicit(&env->slot->pool_stuck, 1, memory_order_relaxed);
        log_warn("handler of %s exceeded request_timeout (%u ms): 504; asked it to stop",
                 route_path(ex->route), env->conf->request_timeout);
    }
    conn_exchange_timeout(ex->conn);
}

/* ---- timers ------------------------------------------------------------ */

static void on_after(evutil_socket_t fd, short what, void *arg) {
    struct ex_after *a = arg;
    struct exchange *ex = a->ex;
    struct ex_after **p = &ex->afters;
    while (*p != a) p = &(*p)->next;
    *p = a->next;
    void (*cb)(pfd_req *, void *) = a->cb;
    void *cb_arg = a->arg;
    free(a);
    run_callback(ex, cb, cb_arg);
    ex->pending--;
    progress(ex);
}

int exchange_after(struct exchange *ex, unsigned ms, void (*cb)(pfd_req *, void *), void *arg) {
    if (!ex->conn) return -1;
    if (ex->in_pool) {
        /* its callback would run on the loop while the work uses the request */
        exchange_fail(ex, "pfd_after while pfd_async work of this request is out");
        return -1;
    }
    struct ex_after *a = malloc(sizeof *a);
    if (!a) return -1;
    a->ex = ex;
    a->cb = cb;
    a->arg = arg;
    evtimer_assign(&a->ev, ex->env->base, on_after, a);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(&a->ev, &tv);
    a->next = ex->afters;
    ex->afters = a;
    ex->pending++;
    return 0;
}

/* ---- the client is gone --------------------------------------------------- */

void exchange_abandon(struct exchange *ex, struct buf *in) {
    ex->conn = NULL;
    timer_stop(ex);
    event_del(&ex->wake);
    cancel(ex);
    ex->stream_open = false; /* an inline stream has nobody to go to */
    ex->pending++;           /* nothing below may end it under our feet */
    if (ex->in_pool && pool_cancel(ex->env->pool, &ex->job) == 0) {
        /* never started: nothing ran, but an async job's done still runs */
        ex->in_pool = false;
        if (ex->is_async) {
            ex->is_async = false;
            run_callback(ex, ex->async_done, ex->async_arg);
        }
        ex->pending--;
    }
    /* callbacks that would have come later run now, with pfd_gone() true,
     * so that they can free what they own (and cannot start anything new:
     * pfd_after, pfd_async and pfd_on_drain refuse a request that is gone) */
    if (ex->drain_cb) {
        void (*cb)(pfd_req *, void *) = ex->drain_cb;
        ex->drain_cb = NULL;
        run_callback(ex, cb, ex->drain_arg);
        ex->pending--;
    }
    while (ex->afters) {
        struct ex_after *a = ex->afters;
        void (*cb)(pfd_req *, void *) = a->cb;
        void *arg = a->arg;
        ex->afters = a->next;
        evtimer_del(&a->ev);
        free(a);
        run_callback(ex, cb, arg);
        ex->pending--;
    }
    if (ex->in_pool) {
        /* a thread runs the handler: it may still read the request's bytes */
        ex->orphan_in = *in;
        memset(in, 0, sizeof *in);
    }
    ex->pending--;
    exchange_settle(ex);
}

/* ---- streamed bodies -------------------------------------------------- */

/* A piece of a streamed body, posted by a pool thread. */
struct piece {
    struct pool_job msg;
    struct exchange *ex;
    size_t len;
    char data[];
};

/* Streamed bytes no longer on their way: a writer waiting for room goes on. */
static void stream_sent(struct exchange *ex, size_t n) {
    pthread_mutex_lock(&ex->mu);
    ex->stream_pending -= n;
    pthread_cond_broadcast(&ex->cv);
    pthread_mutex_unlock(&ex->mu);
}

static void on_piece(struct pool_job *msg) {
    struct piece *pc = (struct piece *)msg;
    struct exchange *ex = pc->ex;
    if (ex->conn) {
        int rc = conn_exchange_piece(ex->conn, pc->data, pc->len);
        /* an answer without payload (HEAD, 204, 304) queues nothing: the
         * writer must not wait for a drain that will not come */
        if (rc == 1)
            stream_sent(ex, pc->len);
        else
            ex->stream_copied += pc->len;
        if (rc >= 0) conn_exchange_kick(ex->conn);
    }
    free(pc);
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
    struct exchange *ex = arg;
    void (*cb)(pfd_req *, void *) = ex->drain_cb;
    if (!cb || !ex->conn) return;
    ex->drain_cb = NULL;
    run_callback(ex, cb, ex->drain_arg);
    ex->pending--; /* the drain's own hold */
    progress(ex);
}

void exchange_output_drained(struct exchange *ex) {
    if (ex->drain_cb) event_active(&ex->wake, EV_TIMEOUT, 0);
    if (!ex->stream_copied) return;
    stream_sent(ex, ex->stream_copied);
    ex->stream_copied = 0;
}

int exchange_on_drain(struct exchange *ex, void (*cb)(pfd_req *, void *), void *arg) {
    if (!ex->conn) return -1;
    if (ex->drain_cb || ex->in_pool) {
        exchange_fail(ex, ex->drain_cb
                              ? "pfd_on_drain twice"
                              : "pfd_on_drain while pfd_async work of this request is out");
        return -1;
    }
    /* the answer waits for the callback: it runs, once, whatever happens */
    ex->drain_cb = cb;
    ex->drain_arg = arg;
    ex->pending++;
    if (conn_exchange_output(ex->conn) == 0) event_active(&ex->wake, EV_TIMEOUT, 0);
    return 0;
}

int exchange_stream_begin(struct exchange *ex) {
    if (ex->stream_ended) {
        exchange_fail(ex, "a stream begun again after pfd_stream_end");
        return -1;
    }
    ex->resp.body = BODY_STREAM;
    /* from now on the head is fixed (the loop thread may serialize it as
     * soon as a piece is posted) */
    ex->head_fixed = true;
    if (pool_on_thread()) return 0; /* the head goes with the first piece */
    if (!ex->conn) return -1;
    if (!ex->stream_open) {
        ex->stream_open = true;
        if (conn_exchange_piece(ex->conn, NULL, 0) < 0) return -1;
    }
    return 0;
}

int exchange_stream_write_inline(struct exchange *ex, const void *p, size_t n) {
    if (!ex->conn || ex->failed) return -1;
    if (ex->stream_ended) {
        exchange_fail(ex, "a stream written after pfd_stream_end");
        return -1;
    }
    if (!ex->stream_open && exchange_stream_begin(ex) < 0) return -1;
    if (n == 0) return 0;
    if (conn_exchange_output(ex->conn) >= ex->env->conf->stream_buffer) return PFD_AGAIN;
    return conn_exchange_piece(ex->conn, p, n) < 0 ? -1 : 0;
}

int exchange_stream_end(struct exchange *ex) {
    /* called from the handler, a callback or pfd_async work (while the loop
     * waits for it), whose return settles the answer; a pool handler's
     * stream ends when it returns anyway */
    ex->stream_ended = true;
    ex->stream_open = false;
    return ex->conn || pool_on_thread() ? 0 : -1;
}

bool exchange_cancelled(struct exchange *ex) {
    return atomic_load(&ex->cancelled);
}

/* Waits on cv until cancelled, the deadline (monotonic), or room for a
 * stream write; -1 when cancelled. */
static int wait_until(struct exchange *ex, const struct timespec *deadline, size_t room) {
    int rc = 0;
    while (!atomic_load(&ex->cancelled) && rc != ETIMEDOUT &&
           (room == 0 || ex->stream_pending >= room))
        rc = deadline ? pthread_cond_timedwait(&ex->cv, &ex->mu, deadline)
                      : pthread_cond_wait(&ex->cv, &ex->mu);
    return atomic_load(&ex->cancelled) ? -1 : 0;
}

int exchange_wait(struct exchange *ex, unsigned ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ex->mu);
    int rc = wait_until(ex, &deadline, 0);
    pthread_mutex_unlock(&ex->mu);
    return rc;
}

int exchange_stream_write(struct exchange *ex, const void *p, size_t n) {
    ex->resp.body = BODY_STREAM;
    ex->head_fixed = true; /* before the first piece reaches the loop */
    if (ex->stream_ended) {
        exchange_fail(ex, "a stream written after pfd_stream_end");
        return -1;
    }
    if (n == 0) return exchange_cancelled(ex) ? -1 : 0;
    struct piece *pc = malloc(sizeof *pc + n);
    if (!pc) return -1;
    /* backpressure: a slow client makes the writer wait, not the buffer grow */
    pthread_mutex_lock(&ex->mu);
    int rc = wait_until(ex, NULL, ex->env->conf->stream_buffer);
    if (rc == 0) ex->stream_pending += n;
    pthread_mutex_unlock(&ex->mu);
    if (rc < 0) {
        free(pc);
        return -1;
    }
    pc->msg.work = NULL;
    pc->msg.done = on_piece;
    pc->ex = ex;
    pc->len = n;
    memcpy(pc->data, p, n);
    pool_post(ex->env->pool, &pc->msg);
    return 0;
}
