/* exchange: the request in flight, its handler, pool job and timer. */
#include "workers/exchange.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/log.h"
#include "workers/conn.h"
#include "workers/route.h"

/* Exchanges kept for reuse per worker. */
#define MAX_FREE_EXCHANGES 256
/* A handler that returns later than this after being cancelled at
 * request_timeout did not stop when asked: that is worth a warning. */
#define STOP_NOTICE_US 200000

static void on_request_timeout(evutil_socket_t fd, short what, void *arg);

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void timer_stop(struct exchange *ex) {
    if (!ex->timer_on) return;
    evtimer_del(&ex->timer);
    ex->timer_on = false;
}

static void destroy(struct exchange *ex) {
    http_msg_free(ex->msg);
    response_free(&ex->resp);
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
    ex->env = env;
    evtimer_assign(&ex->timer, env->base, on_request_timeout, ex);
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
    ex->start_us = now_us();
    http_msg_start(ex->msg, env->limits);
    return ex;
}

/* Back to the state exchange_new() expects; big buffers are not kept. */
static void reset(struct exchange *ex) {
    size_t keep = ex->env->conf->cached_buffer_max;
    response_reset(&ex->resp);
    response_trim(&ex->resp, keep);
    http_msg_trim(ex->msg, keep);
    buf_release(&ex->orphan_in, NULL);
    ex->conn = NULL;
    ex->req = NULL;
    ex->route = NULL;
    ex->head_len = 0;
    ex->body_bytes = 0;
    ex->status = 0;
    ex->head_only = ex->streaming = ex->chunked = ex->stuck = ex->in_pool = false;
    ex->stream_pending = ex->stream_copied = 0;
    atomic_store(&ex->cancelled, false);
}

void exchange_free(struct exchange *ex) {
    struct exchange_env *env = ex->env;
    timer_stop(ex);
    reset(ex);
    if (env->nfree >= MAX_FREE_EXCHANGES) {
        destroy(ex);
        return;
    }
    ex->next_free = env->free;
    env->free = ex;
    env->nfree++;
}

void exchange_env_fini(struct exchange_env *env) {
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

/* ---- the pool hand-off ------------------------------------------------ */

static struct exchange *of_job(struct pool_job *job) {
    return (struct exchange *)((char *)job - offsetof(struct exchange, job));
}

/* Pool thread. */
static void on_job_work(struct pool_job *job) {
    struct exchange *ex = of_job(job);
    struct handler_call call = {ex->route, ex->req, &ex->resp, ex};
    ex->route->handler->handle(&call);
}

static void on_job_done(struct pool_job *job) {
    struct exchange *ex = of_job(job);
    struct exchange_env *env = ex->env;
    ex->in_pool = false;
    timer_stop(ex);
    if (ex->stuck) {
        uint64_t late = now_us() - ex->cancelled_us;
        if (late > STOP_NOTICE_US)
            log_warn("the handler of %s that exceeded request_timeout finished after %llu ms "
                     "(%llu ms after it was asked to stop)",
                     ex->route->prefix, (unsigned long long)((now_us() - ex->start_us) / 1000),
                     (unsigned long long)(late / 1000));
        atomic_fetch_sub_explicit(&env->slot->pool_stuck, 1, memory_order_relaxed);
    }
    if (!ex->conn) {
        exchange_free(ex);
        return;
    }
    conn_exchange_done(ex->conn);
}

bool exchange_dispatch(struct exchange *ex) {
    struct exchange_env *env = ex->env;
    const struct http_request *req = ex->req;
    const struct route *rt = ex->route;
    ex->state = EX_HANDLING;
    if (!rt) {
        if (req->path[0] == '*')
            ex->resp.status = 204; /* OPTIONS *: the server is here */
        else
            response_error(&ex->resp, 404);
        return true;
    }
    if (rt->mode == ROUTE_POOL) {
        ex->job.work = on_job_work;
        ex->job.done = on_job_done;
        if (pool_submit(env->pool, &ex->job) < 0) {
            log_warn("pool queue full (pool_queue = %u): 503", env->conf->pool_queue);
            response_error(&ex->resp, 503);
            response_header(&ex->resp, "Retry-After", "1");
            return true;
        }
        ex->in_pool = true;
        evtimer_add(&ex->timer, env->t_request);
        ex->timer_on = true;
        return false;
    }
    struct handler_call call = {rt, req, &ex->resp, ex};
    rt->handler->handle(&call);
    return true;
}

/* request_timeout of a pool handler. */
static void on_request_timeout(evutil_socket_t fd, short what, void *arg) {
    struct exchange *ex = arg;
    struct exchange_env *env = ex->env;
    ex->timer_on = false;
    if (pool_cancel(env->pool, &ex->job) == 0) {
        /* never started: nothing runs for it, the client gets 504 */
        ex->in_pool = false;
        log_warn("handler of %s still queued after request_timeout (%u ms): 504", ex->route->prefix,
                 env->conf->request_timeout);
        conn_exchange_timeout(ex->conn, false);
        return;
    }
    /* the thread cannot be stopped, only asked: it counts as stuck until
     * it returns (at once, for a handler that watches exchange_cancelled) */
    cancel(ex);
    ex->stuck = true;
    ex->cancelled_us = now_us();
    atomic_fetch_add_explicit(&env->slot->pool_stuck, 1, memory_order_relaxed);
    log_warn("handler of %s exceeded request_timeout (%u ms): 504; asked it to stop",
             ex->route->prefix, env->conf->request_timeout);
    conn_exchange_timeout(ex->conn, true);
}

void exchange_abandon(struct exchange *ex, struct buf *in) {
    ex->conn = NULL;
    timer_stop(ex);
    if (ex->in_pool && pool_cancel(ex->env->pool, &ex->job) == 0) ex->in_pool = false;
    if (!ex->in_pool) {
        exchange_free(ex);
        return;
    }
    /* a thread runs the handler: it may still read the request's bytes */
    cancel(ex);
    ex->orphan_in = *in;
    memset(in, 0, sizeof *in);
}

/* ---- streamed bodies -------------------------------------------------- */

/* A piece of a streamed body, posted by a pool thread. */
struct piece {
    struct pool_job msg;
    struct exchange *ex;
    size_t len;
    char data[];
};

static void on_piece(struct pool_job *msg) {
    struct piece *pc = (struct piece *)msg;
    struct exchange *ex = pc->ex;
    if (ex->conn) {
        ex->stream_copied += pc->len;
        conn_exchange_piece(ex->conn, pc->data, pc->len);
    }
    free(pc);
}

void exchange_output_drained(struct exchange *ex) {
    if (!ex->stream_copied) return;
    pthread_mutex_lock(&ex->mu);
    ex->stream_pending -= ex->stream_copied;
    pthread_cond_broadcast(&ex->cv);
    pthread_mutex_unlock(&ex->mu);
    ex->stream_copied = 0;
}

bool exchange_cancelled(struct exchange *ex) {
    return atomic_load(&ex->cancelled);
}

/* Waits on cv until cancelled or the deadline (monotonic); false on cancel. */
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
