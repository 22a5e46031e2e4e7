/* conn: the connection state machine (see conn.h), request exchanges, and
 * the hand-off of pool handlers. Loop thread only, except the two functions
 * marked as running on pool threads. */
#include "workers/conn.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "server/log.h"
#include "workers/accesslog.h"
#include "workers/pool.h"
#include "workers/worker.h"

/* Pipelined answers queued beyond this are flushed before parsing more. */
#define OUT_HIGH_WATER (64 * 1024)
/* Room kept free in the input buffer while reading a body. */
#define BODY_READ_ROOM (16 * 1024)
/* Cached structs kept per worker. */
#define MAX_FREE_CONNS     1024
#define MAX_FREE_EXCHANGES 256
/* Longest single sendfile() call. */
#define SENDFILE_CHUNK (1u << 20)

static const char CONTINUE_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* One request and its response on a connection. */
struct exchange {
    struct exchange *next_free;
    struct worker *w;
    struct conn *c;                     /* NULL once abandoned */
    struct pool *pool;                  /* for pool threads, which must not follow c */
    struct http_msg *msg;               /* the parser and the parsed request */
    const struct http_request *log_req; /* what the access log shows */
    const struct route *route;
    struct response resp;
    struct pool_job job;
    struct event timer;   /* request_timeout of a pool handler */
    struct buf orphan_in; /* the request's bytes, kept for an abandoned job */
    struct timeval start;
    size_t head_len;        /* bytes of conn->in holding the head */
    uint64_t body_bytes;    /* body bytes sent, for the log */
    int status;             /* status sent, for the log */
    bool in_pool;           /* the job is queued or running */
    bool stuck;             /* ran past request_timeout: counted in the scoreboard */
    _Atomic bool abandoned; /* the client is gone; read by pool threads */
    bool streaming;         /* a streamed response's head is queued */
    bool chunked;           /* streamed pieces go as chunks */
    bool head_only;         /* HEAD request: no body on the wire */
};

struct conn {
    struct conn *prev, *next;
    struct worker *w;
    int fd;
    enum conn_state state;
    enum conn_state armed; /* the state whose timeout the read event carries */
    unsigned armed_requests;
    bool timer_restarted; /* this callback is a read: its timeout restarted */
    unsigned requests;    /* answered on this connection */
    uint64_t deadline_ms; /* READING_HEAD, LINGERING: when the total time is up */
    bool close_after;     /* close once the output is flushed */
    bool linger;          /* drain the client before closing */
    bool client_closes;   /* the client asked to close: it sends nothing more */
    bool peer_closed;     /* read returned 0 */
    bool read_paused;     /* read event removed: input buffer full */
    bool nodelay;
    struct event rev;
    struct event *wev; /* only while a write waits for room: idle connections stay small */
    struct buf in, out;
    int file_fd; /* file body being sent after out */
    uint64_t file_off, file_left;
    void *file_hold; /* the file's owner (open-file cache entry), if not us */
    void (*file_release)(void *hold);
    struct exchange *ex;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } peer;
};

/* What a step of the machine leaves behind. */
enum step {
    STEP_CONTINUE,    /* state changed: step again */
    STEP_WAIT,        /* waiting for input or the pool */
    STEP_WAIT_OUTPUT, /* waiting for queued output to drain */
    STEP_CLOSED,      /* the connection is gone: do not touch it */
};

enum flush { FLUSH_DONE, FLUSH_AGAIN, FLUSH_ERROR };

static void conn_run(struct conn *c);
static void conn_close(struct conn *c);
static void conn_arm(struct conn *c);

/* ---- exchanges -------------------------------------------------------- */

static void on_request_timeout(evutil_socket_t fd, short what, void *arg);

static struct exchange *exchange_get(struct worker *w) {
    struct exchange *ex = w->free_exchanges;
    if (ex) {
        w->free_exchanges = ex->next_free;
        w->nfree_exchanges--;
    } else {
        ex = calloc(1, sizeof *ex);
        if (!ex) return NULL;
        if (!(ex->msg = http_msg_new())) {
            free(ex);
            return NULL;
        }
        response_init(&ex->resp);
        ex->w = w;
        ex->pool = w->pool;
        evtimer_assign(&ex->timer, w->base, on_request_timeout, ex);
    }
    ex->next_free = NULL;
    return ex;
}

static void exchange_put(struct exchange *ex) {
    struct worker *w = ex->w;
    response_reset(&ex->resp);
    buf_release(&ex->orphan_in, NULL);
    ex->c = NULL;
    ex->route = NULL;
    ex->log_req = NULL;
    ex->head_len = 0;
    ex->body_bytes = 0;
    ex->status = 0;
    ex->in_pool = ex->streaming = ex->chunked = ex->head_only = ex->stuck = false;
    atomic_store(&ex->abandoned, false);
    if (w->nfree_exchanges < MAX_FREE_EXCHANGES) {
        ex->next_free = w->free_exchanges;
        w->free_exchanges = ex;
        w->nfree_exchanges++;
        return;
    }
    http_msg_free(ex->msg);
    response_free(&ex->resp);
    free(ex);
}

static int exchange_begin(struct conn *c) {
    struct exchange *ex = exchange_get(c->w);
    if (!ex) return -1;
    ex->c = c;
    http_msg_start(ex->msg, &c->w->limits);
    event_base_gettimeofday_cached(c->w->base, &ex->start);
    c->ex = ex;
    return 0;
}

/* The client is gone while a pool thread still works on its request: the
 * exchange lives on, with the request's bytes, until the job is done. */
static void exchange_abandon(struct conn *c) {
    struct exchange *ex = c->ex;
    atomic_store(&ex->abandoned, true);
    ex->c = NULL;
    ex->orphan_in = c->in;
    memset(&c->in, 0, sizeof c->in);
    c->ex = NULL;
}

static uint64_t usec_since(struct worker *w, const struct timeval *start) {
    struct timeval now;
    event_base_gettimeofday_cached(w->base, &now);
    int64_t us = (int64_t)(now.tv_sec - start->tv_sec) * 1000000 + (now.tv_usec - start->tv_usec);
    return us > 0 ? (uint64_t)us : 0;
}

/* The request is answered: log it, drop its bytes, wait for the next one. */
static void exchange_finish(struct conn *c) {
    struct exchange *ex = c->ex;
    struct worker *w = c->w;
    if (w->alog) {
        struct timeval now;
        event_base_gettimeofday_cached(w->base, &now);
        accesslog_write(w->alog, c->peer.sa.sa_family == AF_UNIX ? NULL : &c->peer.sa, now.tv_sec,
                        ex->log_req, ex->status, ex->body_bytes, usec_since(w, &ex->start));
    }
    w->requests++;
    atomic_store_explicit(&w->slot->requests, w->requests, memory_order_relaxed);
    c->requests++;
    buf_consume(&c->in, ex->head_len);
    if (buf_len(&c->in) == 0) buf_release(&c->in, &w->bufs);
    exchange_put(ex);
    c->ex = NULL;
    c->state = CONN_IDLE;
    /* Nagle only matters once a connection is kept: set it then (nginx does) */
    if (!c->close_after && !c->nodelay && c->peer.sa.sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->nodelay = true;
    }
}

/* ---- responses -------------------------------------------------------- */

/* Serializes the response head (and a memory body) into the output. */
static int queue_head(struct conn *c) {
    struct exchange *ex = c->ex;
    struct worker *w = c->w;
    const struct http_request *req = ex->log_req;
    struct response *resp = &ex->resp;
    unsigned version = req ? req->version : 11;
    bool keep = req && req->keep_alive && !resp->close && !c->close_after && !w->stopping &&
                c->requests + 1 < w->conf->keepalive_requests;
    /* an HTTP/1.0 stream ends where the connection does */
    if (resp->body == BODY_STREAM && version < 11) keep = false;
    struct response_framing f = {
        .version = version,
        .head_request = ex->head_only,
        .keep_alive = keep,
        .server = w->conf->server_name,
    };
    struct timeval now;
    event_base_gettimeofday_cached(w->base, &now);
    if (response_serialize(resp, &f, &c->out, &w->bufs, now.tv_sec, &ex->chunked) < 0) return -1;
    if (!keep) c->close_after = true;
    c->client_closes = req && !req->keep_alive;
    ex->status = resp->status;
    return 0;
}

/* The handler is done: queue its response and move on. */
static enum step respond(struct conn *c) {
    struct exchange *ex = c->ex;
    struct response *resp = &ex->resp;
    if (queue_head(c) < 0) {
        conn_close(c);
        return STEP_CLOSED;
    }
    bool body_on_wire = !ex->head_only && http_status_has_body(resp->status);
    if (resp->body == BODY_FILE && body_on_wire && resp->file_len > 0) {
        c->file_fd = resp->fd;
        c->file_off = resp->file_off;
        c->file_left = resp->file_len;
        c->file_hold = resp->hold;
        c->file_release = resp->release;
        ex->body_bytes = resp->file_len;
        resp->fd = -1;
        resp->hold = NULL;
        c->state = CONN_WRITING;
        return STEP_CONTINUE;
    }
    if (resp->body == BODY_MEM && body_on_wire) ex->body_bytes = resp->mem_len;
    if (resp->body == BODY_DATA && body_on_wire) ex->body_bytes = resp->data_len;
    exchange_finish(c);
    return STEP_CONTINUE;
}

/* Answers with an error status and closes after it: the framing of anything
 * that follows cannot be trusted. */
static enum step refuse(struct conn *c, int status) {
    if (!c->ex && exchange_begin(c) < 0) {
        conn_close(c);
        return STEP_CLOSED;
    }
    struct exchange *ex = c->ex;
    log_debug("refused request with %d: %s", status, http_msg_error(ex->msg));
    response_error(&ex->resp, status);
    ex->resp.close = true;
    /* no content in any answer to HEAD, errors too (RFC 9110 9.3.2) */
    ex->head_only =
        http_msg_is_head(ex->msg) || (ex->log_req && ex->log_req->method == METHOD_HEAD);
    c->linger = true;
    c->state = CONN_IDLE;
    return respond(c);
}

static void on_job_work(struct pool_job *job);
static void on_job_done(struct pool_job *job);

/* Runs the route's handler, here or on the pool. */
static enum step dispatch(struct conn *c) {
    struct exchange *ex = c->ex;
    struct worker *w = c->w;
    const struct http_request *req = ex->log_req;
    const struct route *rt = ex->route;

    if (!rt) {
        if (req->path[0] == '*')
            ex->resp.status = 204; /* OPTIONS *: the server is here */
        else
            response_error(&ex->resp, 404);
        return respond(c);
    }
    if (rt->mode == ROUTE_POOL) {
        ex->job.work = on_job_work;
        ex->job.done = on_job_done;
        if (pool_submit(w->pool, &ex->job) < 0) {
            log_warn("pool queue full (pool_queue = %u): 503", w->conf->pool_queue);
            response_error(&ex->resp, 503);
            response_header(&ex->resp, "Retry-After", "1");
            return respond(c);
        }
        ex->in_pool = true;
        c->state = CONN_HANDLING;
        evtimer_add(&ex->timer, w->t_request);
        return STEP_WAIT;
    }
    struct handler_call call = {rt, req, &ex->resp, ex};
    rt->handler->handle(&call);
    return respond(c);
}

/* ---- pool hand-off ---------------------------------------------------- */

/* A piece of a streamed body, posted by a pool thread. */
struct piece {
    struct pool_job msg;
    struct exchange *ex;
    size_t len;
    char data[];
};

/* Pool thread. */
static void on_job_work(struct pool_job *job) {
    struct exchange *ex = (struct exchange *)((char *)job - offsetof(struct exchange, job));
    struct handler_call call = {ex->route, ex->log_req, &ex->resp, ex};
    ex->route->handler->handle(&call);
}

/* Queues the head of a streamed response once. */
static int stream_start(struct conn *c) {
    if (c->ex->streaming) return 0;
    c->ex->streaming = true;
    return queue_head(c);
}

static void on_piece(struct pool_job *msg) {
    struct piece *pc = (struct piece *)msg;
    struct exchange *ex = pc->ex;
    struct conn *c = ex->c;
    if (!atomic_load(&ex->abandoned)) {
        if (stream_start(c) < 0 || (!ex->head_only && response_chunk(&c->out, &c->w->bufs, pc->data,
                                                                     pc->len, ex->chunked) < 0)) {
            free(pc);
            conn_close(c);
            return;
        }
        ex->body_bytes += ex->head_only ? 0 : pc->len;
        free(pc);
        conn_run(c);
        return;
    }
    free(pc);
}

/* Pool thread. */
int handler_stream_write(struct handler_call *call, const void *p, size_t n) {
    struct exchange *ex = call->ex;
    if (atomic_load(&ex->abandoned)) return -1;
    if (n == 0) return 0;
    struct piece *pc = malloc(sizeof *pc + n);
    if (!pc) return -1;
    pc->msg.work = NULL;
    pc->msg.done = on_piece;
    pc->ex = ex;
    pc->len = n;
    memcpy(pc->data, p, n);
    pool_post(ex->pool, &pc->msg);
    return 0;
}

static void on_job_done(struct pool_job *job) {
    struct exchange *ex = (struct exchange *)((char *)job - offsetof(struct exchange, job));
    ex->in_pool = false;
    evtimer_del(&ex->timer);
    if (ex->stuck) {
        struct worker *w = ex->w;
        log_warn("the handler of %s that exceeded request_timeout finished after %llu ms",
                 ex->route->prefix, (unsigned long long)(usec_since(w, &ex->start) / 1000));
        atomic_fetch_sub_explicit(&w->slot->pool_stuck, 1, memory_order_relaxed);
    }
    if (atomic_load(&ex->abandoned)) {
        exchange_put(ex);
        return;
    }
    struct conn *c = ex->c;
    if (ex->resp.body == BODY_STREAM) {
        if (stream_start(c) < 0 ||
            (!ex->head_only && response_chunk(&c->out, &c->w->bufs, NULL, 0, ex->chunked) < 0)) {
            conn_close(c);
            return;
        }
        exchange_finish(c);
    } else if (respond(c) == STEP_CLOSED) {
        return;
    }
    conn_run(c);
}

/* request_timeout: the client gets 504 and the connection closes; the job
 * finishes on its own and is then dropped. */
static void on_request_timeout(evutil_socket_t fd, short what, void *arg) {
    struct exchange *ex = arg;
    struct conn *c = ex->c;
    /* the thread cannot be stopped: it is counted as stuck until it returns */
    ex->stuck = true;
    atomic_fetch_add_explicit(&c->w->slot->pool_stuck, 1, memory_order_relaxed);
    log_warn("handler of %s exceeded request_timeout (%u ms): 504; its pool thread is stuck",
             ex->route->prefix, c->w->conf->request_timeout);
    if (ex->streaming) { /* too late for a status: cut the response */
        exchange_abandon(c);
        conn_close(c);
        return;
    }
    const struct http_request *req = ex->log_req;
    exchange_abandon(c);
    if (exchange_begin(c) < 0) {
        conn_close(c);
        return;
    }
    c->ex->log_req = req; /* still alive: the abandoned exchange holds it */
    if (refuse(c, 504) != STEP_CLOSED) conn_run(c);
}

/* ---- reading ---------------------------------------------------------- */

/* The largest input buffer a request head may need: the parser refuses with
 * 414 or 431 before the buffer is full. */
static size_t head_limit(const struct worker *w) {
    return (size_t)(w->limits.max_uri + w->limits.max_header_size) + 2 * BUF_BLOCK;
}

/* Whether more input may be read now, and makes room for it. In HANDLING and
 * WRITING the head must stay in place, so only free room is used. */
static bool make_room(struct conn *c) {
    struct worker *w = c->w;
    switch (c->state) {
    case CONN_IDLE:
    case CONN_READING_HEAD: return buf_reserve(&c->in, &w->bufs, BUF_BLOCK / 4, head_limit(w)) == 0;
    case CONN_READING_BODY: {
        const char *old = buf_head(&c->in);
        size_t limit = c->ex->head_len + 2 * BODY_READ_ROOM;
        if (buf_reserve(&c->in, &w->bufs, BODY_READ_ROOM, limit) < 0) return false;
        if (buf_head(&c->in) != old)
            http_msg_rebase(c->ex->msg, old, buf_head(&c->in), c->ex->head_len);
        return true;
    }
    case CONN_HANDLING:
    case CONN_WRITING: return buf_room(&c->in) > 0;
    case CONN_LINGERING: return false;
    }
    return false;
}

static void pause_reading(struct conn *c) {
    if (!c->read_paused) {
        event_del(&c->rev);
        c->read_paused = true;
    }
}

/* Reads what the socket has; -1 when the connection was closed. */
static int conn_read(struct conn *c) {
    if (!make_room(c)) {
        pause_reading(c);
        return 0;
    }
    for (;;) {
        size_t room = buf_room(&c->in);
        ssize_t n = read(c->fd, buf_tail(&c->in), room);
        if (n > 0) {
            c->in.end += (size_t)n;
            return 0; /* a short or full read: epoll says if more is waiting */
        }
        if (n == 0) {
            /* half-closed: requests already here are still answered */
            c->peer_closed = true;
            pause_reading(c);
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return 0;
        conn_close(c); /* ECONNRESET and friends */
        return -1;
    }
}

/* LINGERING: read and drop until the client closes. */
static void conn_drain(struct conn *c) {
    char scratch[16384];
    for (;;) {
        ssize_t n = read(c->fd, scratch, sizeof scratch);
        if (n > 0) continue;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        conn_close(c);
        return;
    }
    conn_arm(c); /* linger_timeout is a total: what is left of it */
}

/* ---- the machine ------------------------------------------------------ */

static enum step head_done(struct conn *c, size_t head_len) {
    struct exchange *ex = c->ex;
    struct worker *w = c->w;
    const struct http_request *req = http_msg_request(ex->msg);
    ex->head_len = head_len;
    ex->log_req = req;
    ex->head_only = req->method == METHOD_HEAD;
    ex->route = routes_match(&w->routes, req->path, req->path_len);
    if (!http_msg_has_body(ex->msg)) return dispatch(c);
    if (ex->route && ex->route->handler->wants_body) http_msg_keep_body(ex->msg);
    if (req->expect_continue && req->version >= 11 &&
        buf_append(&c->out, &w->bufs, CONTINUE_100, sizeof CONTINUE_100 - 1) < 0) {
        conn_close(c);
        return STEP_CLOSED;
    }
    c->state = CONN_READING_BODY;
    return STEP_CONTINUE;
}

static enum step step_head(struct conn *c) {
    if (c->close_after) return STEP_WAIT;
    if (buf_len(&c->out) >= OUT_HIGH_WATER) return STEP_WAIT_OUTPUT;
    if (buf_len(&c->in) == 0) return STEP_WAIT;
    if (!c->ex && exchange_begin(c) < 0) {
        conn_close(c);
        return STEP_CLOSED;
    }
    c->state = CONN_READING_HEAD;
    size_t used;
    int rc = http_msg_head(c->ex->msg, buf_head(&c->in), buf_len(&c->in), &used);
    if (rc == HTTP_DONE) return head_done(c, used);
    if (rc != HTTP_AGAIN) return refuse(c, rc);
    return STEP_WAIT;
}

static enum step step_body(struct conn *c) {
    struct exchange *ex = c->ex;
    char *body = buf_head(&c->in) + ex->head_len;
    size_t avail = buf_len(&c->in) - ex->head_len, used;
    if (avail == 0) return STEP_WAIT;
    int rc = http_msg_body(ex->msg, body, avail, &used);
    if (rc == HTTP_AGAIN) {
        c->in.end -= avail; /* parsed: only the head stays */
        return STEP_WAIT;
    }
    if (rc != HTTP_DONE) return refuse(c, rc);
    /* what follows the body is the next request: keep it after the head */
    memmove(body, body + used, avail - used);
    c->in.end -= used;
    return dispatch(c);
}

static enum step conn_step(struct conn *c) {
    switch (c->state) {
    case CONN_IDLE:
    case CONN_READING_HEAD: return step_head(c);
    case CONN_READING_BODY: return step_body(c);
    case CONN_HANDLING: return STEP_WAIT;
    case CONN_WRITING:
        if (c->file_left || buf_len(&c->out)) return STEP_WAIT_OUTPUT;
        exchange_finish(c);
        return STEP_CONTINUE;
    case CONN_LINGERING: return STEP_WAIT;
    }
    return STEP_WAIT;
}

/* Write events come from a per-worker cache: a connection has one only while
 * its output waits for room in the socket. */
struct wev_box {
    union {
        struct event ev;
        struct wev_box *next;
    };
};

static struct event *wev_get(struct worker *w) {
    struct wev_box *b = w->free_wevs;
    if (b)
        w->free_wevs = b->next;
    else
        b = malloc(sizeof *b);
    return b ? &b->ev : NULL;
}

static void write_wait_end(struct conn *c) {
    if (!c->wev) return;
    struct wev_box *b = (struct wev_box *)c->wev;
    event_del(c->wev);
    c->wev = NULL;
    b->next = c->w->free_wevs;
    c->w->free_wevs = b;
}

static void on_write(evutil_socket_t fd, short what, void *arg);

/* Done with the file body: hand it back to its owner, or close it. */
static void drop_file(struct conn *c) {
    if (c->file_hold)
        c->file_release(c->file_hold);
    else
        close(c->file_fd);
    c->file_hold = NULL;
    c->file_fd = -1;
}

/* Writes queued output, then the file body; adds the write event only when
 * the socket is full. */
static enum flush conn_flush(struct conn *c) {
    struct worker *w = c->w;
    while (buf_len(&c->out)) {
        /* MSG_MORE: the head and the file's first bytes share a segment */
        int flags = MSG_NOSIGNAL | (c->file_left ? MSG_MORE : 0);
        ssize_t n = send(c->fd, buf_head(&c->out), buf_len(&c->out), flags);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) goto again;
            return FLUSH_ERROR;
        }
        buf_consume(&c->out, (size_t)n);
    }
    buf_release(&c->out, &w->bufs);
    while (c->file_left) {
        off_t off = (off_t)c->file_off;
        size_t n = c->file_left < SENDFILE_CHUNK ? (size_t)c->file_left : SENDFILE_CHUNK;
        ssize_t sent = sendfile(c->fd, c->file_fd, &off, n);
        if (sent < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) goto again;
            return FLUSH_ERROR;
        }
        if (sent == 0) return FLUSH_ERROR; /* the file shrank under us */
        c->file_off += (uint64_t)sent;
        c->file_left -= (uint64_t)sent;
    }
    if (c->file_fd >= 0) drop_file(c);
    write_wait_end(c);
    return FLUSH_DONE;
again:
    /* send_timeout counts from the last progress: re-adding resets it */
    if (!c->wev) {
        if (!(c->wev = wev_get(w))) return FLUSH_ERROR;
        event_assign(c->wev, w->base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
    }
    event_add(c->wev, w->t_send);
    return FLUSH_AGAIN;
}

static uint64_t now_ms(struct worker *w) {
    struct timeval tv;
    event_base_gettimeofday_cached(w->base, &tv);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* A timeout that is a total, not a pause between reads. libevent restarts a
 * persistent event's timeout whenever it fires, so while waiting in such a
 * state the read event gets what is left of the deadline after each read. */
static const struct timeval *time_left(struct conn *c, unsigned total_ms, bool restart,
                                       struct timeval *tv) {
    uint64_t now = now_ms(c->w);
    if (restart || c->armed != c->state) c->deadline_ms = now + total_ms;
    uint64_t left = c->deadline_ms > now ? c->deadline_ms - now : 0;
    tv->tv_sec = (time_t)(left / 1000);
    tv->tv_usec = (suseconds_t)(left % 1000) * 1000;
    return tv;
}

/* The read event's timeout for the state we are about to wait in. */
static void conn_arm(struct conn *c) {
    struct worker *w = c->w;
    const struct timeval *tv = NULL;
    struct timeval left;
    bool rearm = c->armed != c->state;
    switch (c->state) {
    case CONN_IDLE:
        tv = w->t_keepalive;
        /* idle time restarts with each request answered; after a read,
         * libevent already restarted the persistent timeout itself */
        rearm |= c->armed_requests != c->requests && !c->timer_restarted;
        break;
    case CONN_READING_HEAD:
        /* each head has its own deadline, also one that arrived together
         * with the end of the previous request */
        tv = time_left(c, w->conf->header_timeout, c->armed_requests != c->requests, &left);
        rearm = true;
        break;
    case CONN_READING_BODY: tv = w->t_body; break; /* a pause: persistence restarts it */
    case CONN_HANDLING:                            /* the exchange's own timer */
    case CONN_WRITING: break;
    case CONN_LINGERING:
        tv = time_left(c, w->conf->linger_timeout, false, &left);
        rearm = true;
        break;
    }
    c->timer_restarted = false;
    if (c->peer_closed) return;
    if (c->read_paused) {
        if (c->state != CONN_LINGERING && !make_room(c)) return;
        c->read_paused = false;
        rearm = true;
    }
    if (!rearm) return;
    /* event_add(ev, NULL) keeps a timeout already scheduled: remove it */
    if (tv)
        event_add(&c->rev, tv);
    else if (event_pending(&c->rev, EV_READ, NULL))
        event_remove_timer(&c->rev);
    else
        event_add(&c->rev, NULL);
    c->armed = c->state;
    c->armed_requests = c->requests;
}

/* Whether the client sent bytes we have not read (pipelined requests after
 * the one we close with). Closing over them makes the kernel send a reset,
 * which can destroy answers still on their way to the client. */
static bool unread_input(const struct conn *c) {
    int n = 0;
    return buf_len(&c->in) || (ioctl(c->fd, FIONREAD, &n) == 0 && n > 0);
}

/* All answered and flushed: close, lingering first (RFC 9112 9.6: half-close,
 * then read until the client closes) after a refusal, or when the client may
 * have sent more than we answer. */
static void conn_finish_close(struct conn *c) {
    if (c->peer_closed || !(c->linger || (!c->client_closes && unread_input(c)))) {
        conn_close(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_LINGERING;
    buf_release(&c->in, &c->w->bufs);
    conn_arm(c);
}

static void conn_run(struct conn *c) {
    for (;;) {
        enum step s = conn_step(c);
        if (s == STEP_CLOSED) return;
        if (s == STEP_CONTINUE) continue;
        if (buf_len(&c->out) || c->file_left) {
            enum flush f = conn_flush(c);
            if (f == FLUSH_ERROR) {
                conn_close(c);
                return;
            }
            if (f == FLUSH_AGAIN) break;
            if (s == STEP_WAIT_OUTPUT) continue;
        }
        /* after a stop's idle grace, a connection whose last answer went out
         * keep-alive (begun before the stop) closes as soon as it is idle;
         * requests it has already sent are answered first */
        if (c->state == CONN_IDLE &&
            (c->close_after || c->peer_closed || (c->w->idle_grace_over && !buf_len(&c->in)))) {
            conn_finish_close(c);
            return;
        }
        /* a request cut short by the client's close gets no answer */
        if (c->peer_closed && (c->state == CONN_READING_HEAD || c->state == CONN_READING_BODY)) {
            conn_close(c);
            return;
        }
        break;
    }
    conn_arm(c);
}

/* A read event's timeout fired, in the state it was armed for. */
static void conn_timeout(struct conn *c) {
    switch (c->state) {
    case CONN_READING_HEAD:
        /* a connection that never sent a byte is just closed */
        if (buf_len(&c->in) == 0) break;
        /* fall through */
    case CONN_READING_BODY:
        if (refuse(c, 408) != STEP_CLOSED) conn_run(c);
        return;
    case CONN_IDLE:
    case CONN_LINGERING: break;
    case CONN_HANDLING: /* no read timeout in these states */
    case CONN_WRITING: return;
    }
    conn_close(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
    struct conn *c = arg;
    if (what & EV_TIMEOUT) {
        conn_timeout(c);
        return;
    }
    if (c->state == CONN_LINGERING) {
        conn_drain(c);
        return;
    }
    c->timer_restarted = true;
    if (conn_read(c) < 0) return;
    conn_run(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
    struct conn *c = arg;
    if (what & EV_TIMEOUT) { /* send_timeout: the client stopped reading */
        conn_close(c);
        return;
    }
    switch (conn_flush(c)) {
    case FLUSH_ERROR: conn_close(c); return;
    case FLUSH_AGAIN: return;
    case FLUSH_DONE: conn_run(c); return;
    }
}

/* ---- life and death --------------------------------------------------- */

void conn_accept(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen) {
    struct conn *c = w->free_conns;
    if (c) {
        w->free_conns = c->next;
        w->nfree_conns--;
        memset(c, 0, sizeof *c);
    } else if (!(c = calloc(1, sizeof *c))) {
        close(fd);
        return;
    }
    c->w = w;
    c->fd = fd;
    c->file_fd = -1;
    c->state = CONN_READING_HEAD;
    if (peerlen <= sizeof c->peer)
        memcpy(&c->peer, peer, peerlen);
    else
        c->peer.sa.sa_family = AF_UNSPEC;
    event_assign(&c->rev, w->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    atomic_store_explicit(&w->slot->connections, w->nconns, memory_order_relaxed);
    /* the first request's head gets header_timeout from the accept */
    event_add(&c->rev, w->t_header);
    c->armed = CONN_READING_HEAD;
    c->deadline_ms = now_ms(w) + w->conf->header_timeout;
}

static void conn_close(struct conn *c) {
    struct worker *w = c->w;
    if (c->ex) {
        if (c->ex->in_pool)
            exchange_abandon(c);
        else
            exchange_put(c->ex);
        c->ex = NULL;
    }
    event_del(&c->rev);
    write_wait_end(c);
    close(c->fd);
    if (c->file_fd >= 0) drop_file(c);
    buf_release(&c->in, &w->bufs);
    buf_release(&c->out, &w->bufs);

    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    w->nconns--;
    atomic_store_explicit(&w->slot->connections, w->nconns, memory_order_relaxed);
    if (w->nfree_conns < MAX_FREE_CONNS) {
        c->next = w->free_conns;
        w->free_conns = c;
        w->nfree_conns++;
    } else {
        free(c);
    }
    worker_conn_closed(w);
}

void conns_close_idle(struct worker *w) {
    struct conn *c = w->conns, *next;
    for (; c; c = next) {
        next = c->next;
        bool idle = c->state == CONN_IDLE || (c->state == CONN_READING_HEAD && !buf_len(&c->in));
        if (idle && !buf_len(&c->out))
            conn_close(c);
        else if (c->state == CONN_IDLE)
            c->close_after = true; /* answers queued, then close */
    }
}

void conns_close_all(struct worker *w) {
    while (w->conns) conn_close(w->conns);
}

void conns_free_cached(struct worker *w) {
    while (w->free_wevs) {
        struct wev_box *b = w->free_wevs;
        w->free_wevs = b->next;
        free(b);
    }
    while (w->free_conns) {
        struct conn *c = w->free_conns;
        w->free_conns = c->next;
        free(c);
    }
    w->nfree_conns = 0;
    while (w->free_exchanges) {
        struct exchange *ex = w->free_exchanges;
        w->free_exchanges = ex->next_free;
        http_msg_free(ex->msg);
        response_free(&ex->resp);
        free(ex);
    }
    w->nfree_exchanges = 0;
}
