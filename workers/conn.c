/* conn: the connection state machine (see conn.h). Loop thread only. */
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
#include <time.h>
#include <unistd.h>

#include "server/log.h"
#include "workers/accesslog.h"
#include "workers/proxyproto.h"
#include "workers/site.h"

/* Pipelined answers queued beyond this are flushed before parsing more. */
#define OUT_HIGH_WATER (64 * 1024)
/* Room kept free in the input buffer while reading a body. */
#define BODY_READ_ROOM (16 * 1024)
/* Longest single sendfile() call. */
#define SENDFILE_CHUNK (1u << 20)
/* A body in memory up to this size is copied behind the head (one write);
 * a larger one is sent from where it is. */
#define BODY_COPY_MAX (16 * 1024)
/* The status logged for a request whose client left before its answer
 * (nginx's "client closed request"). */
#define STATUS_CLIENT_GONE 499

static const char CONTINUE_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

struct conn {
    struct conn *prev, *next;
    struct conns *cs;
    int fd;
    enum conn_state state;
    enum conn_state armed; /* the state whose timeout the read event carries */
    unsigned armed_requests;
    bool registered;      /* the read event is added */
    bool timer_restarted; /* this callback is a read: its timeout restarted */
    unsigned requests;    /* answered on this connection */
    uint64_t deadline_ms; /* READING_HEAD, LINGERING: when the total time is up */
    uint64_t body_start_ms;
    uint64_t body_read;      /* READING_BODY: bytes so far, for body_min_rate */
    bool discard;            /* READING_BODY: the answer is out, the body is dropped */
    bool body_stream;        /* HANDLING: the body goes to the handler as it comes */
    bool body_wait;          /* ...and the handler has stream_buffer bytes to read first */
    uint64_t body_paused_ms; /* since then */
    bool close_after;        /* close once the output is flushed */
    bool linger;             /* drain the client before closing */
    bool client_closes;      /* the client asked to close: it sends nothing more */
    bool peer_closed;        /* read returned 0 */
    bool read_paused;        /* read event removed: input buffer full */
    bool nodelay;
    bool on_unix;         /* the socket is a unix one (whatever a PROXY header said) */
    bool broken;          /* output could not be queued: close at the next run */
    unsigned char reason; /* 1 + why it closes (enum sb_close), once known; 0 */
    bool reason_planned;  /* ...a close planned with an answer, which a fault overrides */
    struct event rev;
    struct event *wev; /* only while a write waits for room: idle connections stay small */
    struct buf in, out;
    /* the body's tail, sent after out: a file (file_fd), or memory (data) */
    int file_fd;
    const char *data;
    uint64_t file_off, file_left; /* file_left: bytes of the tail still to send */
    void *file_hold;              /* the tail's owner (open-file cache entry...), if not us */
    void (*file_release)(void *hold);
    struct exchange *ex;
    const struct routes *routes; /* its listener's: the main ones' or the admin one's */
    union ex_peer peer;          /* the client: the socket's peer, or a PROXY header's source */
    socklen_t peer_len;
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
static void conn_close(struct conn *c, enum sb_close why);
static void conn_arm(struct conn *c);
static enum step answer_ready(struct conn *c);

/* Deadlines follow the monotonic clock: a clock step neither stretches nor
 * cuts them. The coarse clock is a few ms precise, and cheap. */
static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct timeval ms_tv(uint64_t ms) {
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* ---- the request in flight -------------------------------------------- */

static int exchange_begin(struct conn *c) {
    struct exchange *ex = exchange_new(&c->cs->ex, c);
    if (!ex) return -1;
    ex->peer = c->peer;
    ex->peer_len = c->peer_len;
    ex->seq = c->requests;
    c->ex = ex;
    return 0;
}

/* What the request's route counts in the slot: the route's entry (the last
 * one is shared by routes past SB_ROUTES). */
static struct sb_route *route_counters(struct sb_slot *slot, const struct route *rt) {
    return &slot->routes[rt->order < SB_ROUTES ? rt->order : SB_ROUTES - 1];
}

/* A request ends (answered, refused, or abandoned by its client): it is
 * counted, and logged. Exactly the requests the access log has a line for. */
static void request_done(struct conn *c, struct exchange *ex, int status) {
    struct conns *cs = c->cs;
    struct sb_slot *slot = cs->slot;
    uint64_t now_us = monotonic_us();
    uint64_t usec = now_us > ex->start_us ? now_us - ex->start_us : 0;
    unsigned cls = status >= 100 && status < 600 ? (unsigned)status / 100 - 1 : 4;
    unsigned bucket = sb_bucket(usec);
    cs->requests++;
    sb_add(&slot->c[SBC_REQUESTS], 1);
    sb_add(&slot->c[SBC_STATUS + cls], 1);
    sb_add(&slot->c[SBC_LATENCY + bucket], 1);
    sb_add(&slot->c[SBC_LATENCY_SUM], usec);
    if (ex->route) {
        struct sb_route *r = route_counters(slot, ex->route);
        sb_add(&r->c[SBR_REQUESTS], 1);
        sb_add(&r->c[SBR_STATUS + cls], 1);
        sb_add(&r->c[SBR_LATENCY + bucket], 1);
        sb_add(&r->c[SBR_LATENCY_SUM], usec);
    }
    if (!cs->alog) return;
    struct accesslog_entry e = {
        .peer = c->peer.sa.sa_family == AF_UNIX ? NULL : &c->peer.sa,
        .client = ex->peer.sa.sa_family == AF_UNIX ? NULL : &ex->peer.sa,
        .req = ex->req,
        .route = ex->route ? route_path(ex->route) : NULL,
        .status = status,
        .body_bytes = ex->body_bytes,
        .usec = usec,
    };
    event_base_gettimeofday_cached(cs->base, &e.wall);
    accesslog_write(cs->alog, &e);
}

/* Why the connection will close, unless an earlier reason is known; a
 * fault (a timeout, a refused request, a reset) overrides a close that was
 * only planned (Connection: close on an answer that then never went out). */
static void close_reason(struct conn *c, enum sb_close why) {
    bool fault = why != SB_CLOSE_CLIENT && why != SB_CLOSE_KEEPALIVE_LIMIT &&
                 why != SB_CLOSE_SHUTDOWN && why != SB_CLOSE_SERVER;
    if (c->reason && !(c->reason_planned && fault)) return;
    c->reason = (unsigned char)(why + 1);
    c->reason_planned = false;
}

/* The answer being queued says Connection: close, for this reason. */
static void plan_close(struct conn *c, enum sb_close why) {
    if (c->reason) return;
    c->reason = (unsigned char)(why + 1);
    c->reason_planned = true;
}

/* The request is answered: log it, drop its bytes, wait for the next one. */
static void answered(struct conn *c) {
    struct exchange *ex = c->ex;
    struct conns *cs = c->cs;
    request_done(c, ex, ex->status);
    c->requests++;
    buf_consume(&c->in, ex->head_len);
    if (buf_len(&c->in) == 0) buf_release(&c->in, &cs->bufs);
    c->ex = NULL;
    exchange_free(ex);
    c->state = CONN_IDLE;
    /* Nagle only matters once a connection is kept: set it then (nginx does) */
    if (!c->close_after && !c->nodelay && !c->on_unix) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->nodelay = true;
    }
}

/* ---- responses -------------------------------------------------------- */

/* Serializes the response head (and a memory body) into the output. */
static int queue_head(struct conn *c) {
    struct exchange *ex = c->ex;
    struct conns *cs = c->cs;
    const struct http_request *req = ex->req;
    struct response *resp = &ex->resp;
    unsigned version = req ? req->version : 11;
    bool keep = req && req->keep_alive && !resp->close && !c->close_after && !cs->stopping &&
                c->requests + 1 < cs->conf->keepalive_requests;
    /* an HTTP/1.0 stream ends where the connection does */
    if (resp->body == BODY_STREAM && version < 11) keep = false;
    struct response_framing f = {
        .version = version,
        .head_request = ex->head_only,
        .keep_alive = keep,
        /* whole seconds, never more than we wait: none below a second */
        .keepalive_s = cs->conf->keepalive_timeout / 1000,
        .server = cs->conf->server_name,
        .data_copy_max = BODY_COPY_MAX,
    };
    /* the route's headers and error page (site.h): one test for a route without them */
    const struct route *srt = ex->route ? ex->route : ex->near;
    /* [server]'s for an answer no route gave: on the main listeners only
     * (the admin listener's routes take none of them either) */
    if (srt ? srt->site || srt->errsite : cs->conf->site && c->routes == cs->routes)
        site_finish(ex);
    struct timeval now;
    event_base_gettimeofday_cached(cs->base, &now);
    if (response_serialize(resp, &f, &c->out, &cs->bufs, now.tv_sec, &ex->chunked) < 0) return -1;
    if (!keep) {
        c->close_after = true;
        plan_close(c, cs->stopping                                      ? SB_CLOSE_SHUTDOWN
                      : req && !req->keep_alive                         ? SB_CLOSE_CLIENT
                      : resp->close || !req                             ? SB_CLOSE_SERVER
                      : c->requests + 1 >= cs->conf->keepalive_requests ? SB_CLOSE_KEEPALIVE_LIMIT
                                                                        : SB_CLOSE_SERVER);
    }
    c->client_closes = req && !req->keep_alive;
    ex->status = resp->status;
    ex->state = EX_RESPONDING;
    return 0;
}

/* The whole answer is queued (a file body may still be going out): the
 * request ends once its unwanted body is dropped and the file sent. */
static enum step queued(struct conn *c) {
    if (c->discard)
        c->state = CONN_READING_BODY;
    else if (c->file_left)
        c->state = CONN_WRITING;
    else
        answered(c);
    return STEP_CONTINUE;
}

/* A streamed body ends (complete, broken off, or no longer wanted): the
 * parser drops what else comes, the read event loses its body timeout. */
static void end_body_stream(struct conn *c) {
    c->body_stream = c->body_wait = false;
    http_msg_stream_body(c->ex->msg, NULL, NULL);
    if (c->registered) event_remove_timer(&c->rev);
}

/* The handler is done: queue its response and move on. */
static enum step respond(struct conn *c) {
    struct exchange *ex = c->ex;
    struct response *resp = &ex->resp;
    if (queue_head(c) < 0) {
        conn_close(c, SB_CLOSE_SERVER);
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
    }
    if (resp->body == BODY_DATA && body_on_wire && resp->data_len > BODY_COPY_MAX) {
        /* not copied into the output: sent from where it is */
        c->data = resp->data;
        c->file_off = 0;
        c->file_left = resp->data_len;
        c->file_hold = resp->hold;
        c->file_release = resp->release;
        resp->hold = NULL;
    }
    if (resp->body == BODY_MEM && body_on_wire) ex->body_bytes = resp->mem_len;
    if (resp->body == BODY_DATA && body_on_wire) ex->body_bytes = resp->data_len;
    return queued(c);
}

/* Answers with an error status and closes after it: the framing of anything
 * that follows cannot be trusted. */
static enum step refuse(struct conn *c, int status) {
    if (!c->ex && exchange_begin(c) < 0) {
        conn_close(c, SB_CLOSE_SERVER);
        return STEP_CLOSED;
    }
    struct exchange *ex = c->ex;
    close_reason(c, SB_CLOSE_PARSE_ERROR); /* unless a timeout said why first */
    log_debug("refused request with %d: %s", status, http_msg_error(ex->msg));
    response_error(&ex->resp, status);
    ex->resp.close = true;
    c->discard = false;
    /* no content in any answer to HEAD, errors too (RFC 9110 9.3.2) */
    ex->head_only = http_msg_is_head(ex->msg) || (ex->req && ex->req->method == METHOD_HEAD);
    c->linger = true;
    c->state = CONN_IDLE;
    return respond(c);
}

/* Runs the route's handler; its answer is queued now or comes later. */
static enum step dispatch(struct conn *c) {
    if (exchange_dispatch(c->ex)) return answer_ready(c);
    c->state = CONN_HANDLING;
    return STEP_WAIT;
}

/* Queues the head of a streamed response once, and what the handler wrote
 * into the body before it began the stream, as the first piece. An answer
 * without content (HEAD, 204, 304) sends no piece at all. */
static int stream_start(struct conn *c) {
    struct exchange *ex = c->ex;
    struct response *resp = &ex->resp;
    if (ex->streaming) return 0;
    ex->streaming = true;
    if (queue_head(c) < 0) return -1;
    if (!http_status_has_body(resp->status)) ex->head_only = true;
    if (resp->mem_len && !ex->head_only &&
        response_chunk(&c->out, &c->cs->bufs, resp->mem, resp->mem_len, ex->chunked) < 0)
        return -1;
    if (!ex->head_only) ex->body_bytes += resp->mem_len;
    resp->mem_len = 0;
    return 0;
}

int conn_exchange_piece(struct conn *c, const void *p, size_t n) {
    struct exchange *ex = c->ex;
    if (stream_start(c) < 0) {
        c->broken = true;
        return -1;
    }
    if (ex->head_only) return 1; /* nothing goes on the wire */
    if (n && response_chunk(&c->out, &c->cs->bufs, p, n, ex->chunked) < 0) {
        c->broken = true;
        return -1;
    }
    ex->body_bytes += n;
    return 0;
}

size_t conn_exchange_output(const struct conn *c) {
    return buf_len(&c->out) + (size_t)c->file_left;
}

/* The exchange's answer is complete: queue it (or end its stream). */
static enum step answer_ready(struct conn *c) {
    struct exchange *ex = c->ex;
    if (c->body_stream) {
        /* answered before the end of a streamed body (whatever the answer):
         * the rest is dropped as it comes, as for a body the route does not
         * want, and never read as a request */
        end_body_stream(c);
        c->discard = true;
    }
    if (ex->body_end > 1) {
        /* the body broke off: the framing is lost, the connection closes
         * after the answer; the client hears why, whatever the handler made
         * of it, unless a stream has begun */
        c->close_after = c->linger = true;
        close_reason(c, ex->body_end == 408 ? SB_CLOSE_BODY_TIMEOUT : SB_CLOSE_PARSE_ERROR);
        if (!ex->streaming) {
            response_error(&ex->resp, ex->body_end);
            ex->resp.close = true;
            return respond(c);
        }
    }
    if (ex->failed) {
        if (ex->streaming) {
            /* too late for a status: what was queued goes out, then the
             * connection closes without the last chunk, so that the client
             * sees a cut answer, not a complete one */
            c->close_after = true;
            return queued(c);
        }
        response_error(&ex->resp, 500);
    }
    if (ex->resp.body != BODY_STREAM) return respond(c);
    if (stream_start(c) < 0 ||
        (!ex->head_only && response_chunk(&c->out, &c->cs->bufs, NULL, 0, ex->chunked) < 0)) {
        conn_close(c, SB_CLOSE_SERVER);
        return STEP_CLOSED;
    }
    return queued(c);
}

void conn_exchange_done(struct conn *c) {
    if (answer_ready(c) != STEP_CLOSED) conn_run(c);
}

void conn_exchange_kick(struct conn *c) {
    conn_run(c);
}

void conn_exchange_timeout(struct conn *c) {
    struct exchange *ex = c->ex;
    if (ex->streaming) { /* too late for a status: cut the response */
        conn_close(c, SB_CLOSE_REQUEST_TIMEOUT);
        return;
    }
    close_reason(c, SB_CLOSE_REQUEST_TIMEOUT);
    /* the rest of a streamed body is not read: the 504 closes the connection
     * (it must not wait for bytes that the new exchange would borrow the old
     * one's request to log) */
    if (c->body_stream) end_body_stream(c);
    /* the exchange is abandoned (it lives on while its job still runs, with
     * the request's bytes); the 504 goes out from a new one, which logs the
     * same request: the old one is held until that is done */
    ex->pending++;
    c->ex = NULL;
    exchange_abandon(ex, &c->in);
    if (exchange_begin(c) < 0) {
        conn_close(c, SB_CLOSE_SERVER);
    } else {
        c->ex->req = ex->req;
        c->ex->near = ex->route ? ex->route : ex->near;
        c->ex->start_us = ex->start_us;
        if (refuse(c, 504) != STEP_CLOSED) conn_run(c);
    }
    ex->pending--;
    exchange_settle(ex);
}

/* ---- reading ---------------------------------------------------------- */

/* The largest input buffer a request head may need: the parser refuses with
 * 414 or 431 before the buffer is full. */
static size_t head_limit(const struct conns *cs) {
    return (size_t)(cs->conf->max_uri + cs->conf->max_header_size) + 2 * BUF_BLOCK;
}

/* Whether more input may be read now, and makes room for it. In HANDLING and
 * WRITING the head must stay in place, so only free room is used. */
static bool make_room(struct conn *c) {
    struct conns *cs = c->cs;
    switch (c->state) {
    case CONN_PROXY: /* proxy_parse refuses a header before it gets this long */
    case CONN_IDLE:
    case CONN_READING_HEAD:
        return buf_reserve(&c->in, &cs->bufs, BUF_BLOCK / 4, head_limit(cs)) == 0;
    case CONN_READING_BODY: {
        const char *old = buf_head(&c->in);
        size_t limit = c->ex->head_len + 2 * BODY_READ_ROOM;
        if (buf_reserve(&c->in, &cs->bufs, BODY_READ_ROOM, limit) < 0) return false;
        if (buf_head(&c->in) != old)
            http_msg_rebase(c->ex->msg, old, buf_head(&c->in), c->ex->head_len);
        return true;
    }
    case CONN_HANDLING:
        /* a streamed body waits while the handler has enough to read */
        return !c->body_wait && buf_room(&c->in) > 0;
    case CONN_WRITING: return buf_room(&c->in) > 0;
    case CONN_LINGERING: return false;
    }
    return false;
}

static void pause_reading(struct conn *c) {
    if (!c->read_paused) {
        event_del(&c->rev);
        c->registered = false;
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
            sb_add(&c->cs->slot->c[SBC_BYTES_IN], (uint64_t)n);
            return 0; /* a short or full read: epoll says if more is waiting */
        }
        if (n == 0) {
            /* half-closed: requests already here are still answered */
            c->peer_closed = true;
            pause_reading(c);
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
            /* nothing came: an empty buffer is not kept while waiting */
            if (buf_len(&c->in) == 0) buf_release(&c->in, &c->cs->bufs);
            return 0;
        }
        conn_close(c, SB_CLOSE_RESET); /* ECONNRESET and friends */
        return -1;
    }
}

/* LINGERING: read and drop until the client closes. */
static void conn_drain(struct conn *c) {
    char scratch[16384];
    for (;;) {
        ssize_t n = read(c->fd, scratch, sizeof scratch);
        if (n > 0) {
            sb_add(&c->cs->slot->c[SBC_BYTES_IN], (uint64_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        conn_close(c, n == 0 ? SB_CLOSE_CLIENT : SB_CLOSE_RESET);
        return;
    }
    conn_arm(c); /* linger_timeout is a total: what is left of it */
}

/* ---- the machine ------------------------------------------------------ */

/* Parses the body bytes that are here; the parsed ones leave the buffer
 * (only the head stays), what follows the body is the next request. */
static int parse_body(struct conn *c) {
    struct exchange *ex = c->ex;
    char *body = buf_head(&c->in) + ex->head_len;
    size_t avail = buf_len(&c->in) - ex->head_len, used;
    if (avail == 0) return HTTP_AGAIN;
    c->body_read += avail;
    int rc = http_msg_body(ex->msg, body, avail, &used);
    if (rc == HTTP_AGAIN) {
        c->in.end -= avail;
    } else if (rc == HTTP_DONE) {
        memmove(body, body + used, avail - used);
        c->in.end -= used;
    }
    return rc;
}

static enum step head_done(struct conn *c, size_t head_len) {
    struct exchange *ex = c->ex;
    struct conns *cs = c->cs;
    const struct http_request *req = http_msg_request(ex->msg);
    ex->head_len = head_len;
    ex->req = req;
    ex->head_only = req->method == METHOD_HEAD;
    if (cs->realip.trusted) { /* the client a trusted proxy speaks for */
        struct sockaddr_storage client;
        socklen_t len;
        if (realip_resolve(&cs->realip, &c->peer.sa, req, &client, &len, &ex->https) &&
            len <= sizeof ex->peer) {
            memcpy(&ex->peer, &client, len);
            ex->peer_len = len;
        }
    }
    ex->route = routes_match(c->routes, req, ex->params, EX_MAX_PARAMS, &ex->nparams, &ex->allow);
    if (!ex->route) ex->near = routes_near(c->routes, req);
    /* a client the route refuses does not get to send its body first */
    if (ex->route && http_msg_has_body(ex->msg) && !route_admits(ex->route, &ex->peer.sa))
        return refuse(c, 403);
    if (!http_msg_has_body(ex->msg)) {
        exchange_body_end(ex, 1); /* a PFD_BODY_STREAM reader gets 0 at once */
        return dispatch(c);
    }
    c->state = CONN_READING_BODY;
    c->body_start_ms = now_ms();
    c->body_read = 0;
    int too_large =
        http_msg_body_limit(ex->msg, ex->route ? ex->route->max_body : cs->conf->max_body_size);
    if (too_large) return refuse(c, too_large);
    enum pfd_body_mode mode = ex->route ? route_handler(ex->route)->body : PFD_BODY_DROP;
    if (mode == PFD_BODY_STREAM) {
        /* the handler runs now and reads the body as it comes: room for it
         * is made while the head may still move (a handler's thread reads
         * the head in place from now on) */
        if (!make_room(c)) return refuse(c, 500);
        http_msg_stream_body(ex->msg, exchange_body_feed, ex);
        c->body_stream = true;
        if (req->expect_continue && req->version >= 11 &&
            buf_append(&c->out, &cs->bufs, CONTINUE_100, sizeof CONTINUE_100 - 1) < 0) {
            conn_close(c, SB_CLOSE_SERVER);
            return STEP_CLOSED;
        }
        enum step s = dispatch(c);
        /* the bytes that came with the head are parsed at once */
        return s == STEP_WAIT && c->state == CONN_HANDLING ? STEP_CONTINUE : s;
    }
    if (mode != PFD_BODY_COLLECT) {
        /* the answer does not depend on the body: it goes out now, and the
         * body is dropped as it comes (nginx discards it the same way). A
         * client that expected 100 Continue may not send it at all: then
         * the connection closes after the answer, draining what comes. */
        int rc = parse_body(c);
        if (rc >= 400) return refuse(c, rc);
        if (rc == HTTP_AGAIN && req->expect_continue)
            c->close_after = c->linger = true;
        else if (rc == HTTP_AGAIN)
            c->discard = true;
        return dispatch(c);
    }
    http_msg_keep_body(ex->msg);
    if (req->expect_continue && req->version >= 11 &&
        buf_append(&c->out, &cs->bufs, CONTINUE_100, sizeof CONTINUE_100 - 1) < 0) {
        conn_close(c, SB_CLOSE_SERVER);
        return STEP_CLOSED;
    }
    return STEP_CONTINUE;
}

/* PROXY: the front proxy's header, then the request. Its client address
 * is the connection's from now on (access log, allow/deny, the handler
 * API); a LOCAL or UNKNOWN header keeps the socket's peer. A connection
 * that does not begin with a valid header is closed without an answer:
 * whatever it is, it did not come through the proxy. */
static enum step step_proxy(struct conn *c) {
    struct proxy_info pi;
    int n = proxy_parse(buf_head(&c->in), buf_len(&c->in), &pi);
    if (n == PROXY_AGAIN) return STEP_WAIT;
    if (n < 0) {
        log_debug("PROXY protocol: no valid header; connection closed");
        conn_close(c, SB_CLOSE_PARSE_ERROR);
        return STEP_CLOSED;
    }
    if (!pi.local) {
        memset(&c->peer, 0, sizeof c->peer);
        if (pi.src.sa.sa_family == AF_UNIX) {
            /* as for a unix socket's own peer: the family, no address */
            c->peer.sa.sa_family = AF_UNIX;
            c->peer_len = sizeof c->peer.sa.sa_family;
        } else {
            memcpy(&c->peer, &pi.src, pi.src_len);
            c->peer_len = pi.src_len;
        }
    }
    buf_consume(&c->in, (size_t)n);
    /* the first head's deadline is the header's: header_timeout counts
     * from the accept for both (conn_arm keeps a deadline while armed for
     * the same state) */
    c->state = c->armed = CONN_READING_HEAD;
    return STEP_CONTINUE;
}

static enum step step_head(struct conn *c) {
    if (c->close_after) return STEP_WAIT;
    if (buf_len(&c->out) >= OUT_HIGH_WATER) return STEP_WAIT_OUTPUT;
    if (buf_len(&c->in) == 0) return STEP_WAIT;
    if (!c->ex && exchange_begin(c) < 0) {
        conn_close(c, SB_CLOSE_SERVER);
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
    int rc = parse_body(c);
    if (rc == HTTP_AGAIN) return STEP_WAIT;
    if (c->discard) {
        /* the answer is out already: a broken body can only end the connection */
        c->discard = false;
        if (rc != HTTP_DONE) {
            c->close_after = c->linger = true;
            close_reason(c, SB_CLOSE_PARSE_ERROR);
        }
        return queued(c);
    }
    if (rc != HTTP_DONE) return refuse(c, rc);
    return dispatch(c);
}

/* HANDLING a PFD_BODY_STREAM route: body bytes go to the handler, until
 * stream_buffer of them wait for it (then reading stops until it made
 * room), and their end. */
static enum step step_body_stream(struct conn *c) {
    struct exchange *ex = c->ex;
    if (c->body_wait) return STEP_WAIT;
    if (exchange_body_full(ex)) {
        c->body_wait = true;
        c->body_paused_ms = now_ms();
        pause_reading(c);
        return STEP_WAIT;
    }
    int rc = parse_body(c);
    if (rc == HTTP_AGAIN) return STEP_WAIT;
    end_body_stream(c);
    if (rc != HTTP_DONE) {
        c->close_after = c->linger = true;
        close_reason(c, SB_CLOSE_PARSE_ERROR);
    }
    exchange_body_end(ex, rc == HTTP_DONE ? 1 : rc);
    return STEP_WAIT;
}

void conn_exchange_body_resume(struct conn *c) {
    if (!c->body_wait) return;
    c->body_wait = false;
    /* body_min_rate does not count the time we did not read */
    c->body_start_ms += now_ms() - c->body_paused_ms;
    conn_run(c);
}

static enum step conn_step(struct conn *c) {
    switch (c->state) {
    case CONN_PROXY: return step_proxy(c);
    case CONN_IDLE:
    case CONN_READING_HEAD: return step_head(c);
    case CONN_READING_BODY: return step_body(c);
    case CONN_HANDLING: return c->body_stream ? step_body_stream(c) : STEP_WAIT;
    case CONN_WRITING:
        if (c->file_left || buf_len(&c->out)) return STEP_WAIT_OUTPUT;
        answered(c);
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

static struct event *wev_get(struct conns *cs) {
    struct wev_box *b = cs->free_wevs;
    if (b)
        cs->free_wevs = b->next;
    else
        b = malloc(sizeof *b);
    return b ? &b->ev : NULL;
}

static void write_wait_end(struct conn *c) {
    if (!c->wev) return;
    struct wev_box *b = (struct wev_box *)c->wev;
    event_del(c->wev);
    c->wev = NULL;
    b->next = c->cs->free_wevs;
    c->cs->free_wevs = b;
}

static void on_write(evutil_socket_t fd, short what, void *arg);

/* Done with the body's tail (if any): hand it back to its owner, or close
 * the file. */
static void drop_file(struct conn *c) {
    if (c->file_hold)
        c->file_release(c->file_hold);
    else if (c->file_fd >= 0)
        close(c->file_fd);
    c->file_hold = NULL;
    c->file_fd = -1;
    c->data = NULL;
}

/* Writes queued output, then the file body; adds the write event only when
 * the socket is full. */
static enum flush conn_flush(struct conn *c) {
    struct conns *cs = c->cs;
    while (buf_len(&c->out)) {
        /* MSG_MORE: the head and the file's first bytes share a segment */
        int flags = MSG_NOSIGNAL | (c->file_left ? MSG_MORE : 0);
        ssize_t n = send(c->fd, buf_head(&c->out), buf_len(&c->out), flags);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) goto again;
            return FLUSH_ERROR;
        }
        sb_add(&cs->slot->c[SBC_BYTES_OUT], (uint64_t)n);
        buf_consume(&c->out, (size_t)n);
    }
    buf_release(&c->out, &cs->bufs);
    if (c->ex) exchange_output_drained(c->ex);
    while (c->file_left && c->data) {
        ssize_t n = send(c->fd, c->data + c->file_off, (size_t)c->file_left, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) goto again;
            return FLUSH_ERROR;
        }
        sb_add(&cs->slot->c[SBC_BYTES_OUT], (uint64_t)n);
        c->file_off += (uint64_t)n;
        c->file_left -= (uint64_t)n;
    }
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
        sb_add(&cs->slot->c[SBC_BYTES_OUT], (uint64_t)sent);
        c->file_off += (uint64_t)sent;
        c->file_left -= (uint64_t)sent;
    }
    drop_file(c);
    write_wait_end(c);
    return FLUSH_DONE;
again:
    /* send_timeout counts from the last progress: re-adding resets it */
    if (!c->wev) {
        if (!(c->wev = wev_get(cs))) return FLUSH_ERROR;
        event_assign(c->wev, cs->base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
    }
    event_add(c->wev, cs->t_send);
    return FLUSH_AGAIN;
}

/* A timeout that is a total, not a pause between reads. libevent restarts a
 * persistent event's timeout whenever it fires, so while waiting in such a
 * state the read event gets what is left of the deadline after each read. */
static struct timeval time_left(struct conn *c, unsigned total_ms, bool restart) {
    uint64_t now = now_ms();
    if (restart || c->armed != c->state) c->deadline_ms = now + total_ms;
    return ms_tv(c->deadline_ms > now ? c->deadline_ms - now : 0);
}

/* READING_BODY: the pause allowed before the next read, shortened so that
 * the body as a whole keeps up body_min_rate once body_timeout is used up
 * (Apache's mod_reqtimeout MinRate): a trickle cannot hold the connection. */
static struct timeval body_time_left(const struct conn *c) {
    const struct conf *conf = c->cs->conf;
    uint64_t left = conf->body_timeout, now = now_ms();
    if (conf->body_min_rate) {
        uint64_t deadline =
            c->body_start_ms + conf->body_timeout + c->body_read * 1000 / conf->body_min_rate;
        uint64_t rate_left = deadline > now ? deadline - now : 0;
        if (rate_left < left) left = rate_left;
    }
    return ms_tv(left);
}

/* The read timeout while a body comes: body_timeout, a pause that the
 * persistent event restarts itself; or with body_min_rate, what is left
 * (in *left), to be set again after each read. */
static const struct timeval *body_timeout(const struct conn *c, struct timeval *left) {
    if (!c->cs->conf->body_min_rate) return c->cs->t_body;
    *left = body_time_left(c);
    return left;
}

/* The read event's timeout for the state we are about to wait in. */
static void conn_arm(struct conn *c) {
    struct conns *cs = c->cs;
    const struct timeval *tv = NULL;
    struct timeval left;
    bool rearm = c->armed != c->state || !c->registered;
    switch (c->state) {
    case CONN_IDLE:
        tv = cs->t_keepalive;
        /* idle time restarts with each request answered; after a read,
         * libevent already restarted the persistent timeout itself */
        rearm |= c->armed_requests != c->requests && !c->timer_restarted;
        break;
    case CONN_PROXY: /* from the accept; the first head's goes on from it */
        left = time_left(c, cs->conf->header_timeout, false);
        tv = &left;
        rearm = true;
        break;
    case CONN_READING_HEAD:
        /* each head has its own deadline, also one that arrived together
         * with the end of the previous request */
        left = time_left(c, cs->conf->header_timeout, c->armed_requests != c->requests);
        tv = &left;
        rearm = true;
        break;
    case CONN_READING_BODY:
        tv = body_timeout(c, &left);
        rearm |= tv == &left;
        break;
    case CONN_HANDLING: /* the exchange's own timer; a streamed body's pauses */
        if (c->body_stream && !c->body_wait) {
            tv = body_timeout(c, &left);
            /* restarted by reads only, not by the handler's own output */
            rearm |= tv == &left && c->timer_restarted;
        }
        break;
    case CONN_WRITING: break;
    case CONN_LINGERING:
        left = time_left(c, cs->conf->linger_timeout, false);
        tv = &left;
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
    else if (c->registered)
        event_remove_timer(&c->rev);
    else
        event_add(&c->rev, NULL);
    c->registered = true;
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
        conn_close(c, SB_CLOSE_CLIENT);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_LINGERING;
    buf_release(&c->in, &c->cs->bufs);
    conn_arm(c);
}

static void conn_run(struct conn *c) {
    if (c->broken) {
        conn_close(c, SB_CLOSE_SERVER);
        return;
    }
    for (;;) {
        enum step s = conn_step(c);
        if (s == STEP_CLOSED) return;
        if (s == STEP_CONTINUE) continue;
        if (buf_len(&c->out) || c->file_left) {
            enum flush f = conn_flush(c);
            if (f == FLUSH_ERROR) {
                conn_close(c, SB_CLOSE_RESET);
                return;
            }
            if (f == FLUSH_AGAIN) break;
            if (s == STEP_WAIT_OUTPUT) continue;
        }
        /* after a stop's idle grace, a connection whose last answer went out
         * keep-alive (begun before the stop) closes as soon as it is idle;
         * requests it has already sent are answered first */
        if (c->state == CONN_IDLE && c->cs->idle_grace_over && !buf_len(&c->in))
            close_reason(c, SB_CLOSE_SHUTDOWN);
        if (c->state == CONN_IDLE &&
            (c->close_after || c->peer_closed || (c->cs->idle_grace_over && !buf_len(&c->in)))) {
            conn_finish_close(c);
            return;
        }
        /* a request cut short by the client's close gets no answer, and one
         * whose client closed while its handler works is abandoned (nginx
         * does the same: 499), so that the handler stops for nobody */
        if (c->peer_closed && (c->state == CONN_PROXY || c->state == CONN_READING_HEAD ||
                               c->state == CONN_READING_BODY || c->state == CONN_HANDLING)) {
            conn_close(c, SB_CLOSE_CLIENT);
            return;
        }
        break;
    }
    conn_arm(c);
}

/* A read event's timeout fired, in the state it was armed for. */
static void conn_timeout(struct conn *c) {
    switch (c->state) {
    case CONN_PROXY: /* no answer: the client is the proxy */
        close_reason(c, SB_CLOSE_HEADER_TIMEOUT);
        break;
    case CONN_READING_HEAD:
        close_reason(c, SB_CLOSE_HEADER_TIMEOUT);
        /* a connection that never sent a byte is just closed */
        if (buf_len(&c->in) == 0) break;
        if (refuse(c, 408) != STEP_CLOSED) conn_run(c);
        return;
    case CONN_READING_BODY:
        close_reason(c, SB_CLOSE_BODY_TIMEOUT);
        if (c->discard) break; /* answered already: nothing more to say */
        if (refuse(c, 408) != STEP_CLOSED) conn_run(c);
        return;
    case CONN_IDLE:
        /* a request that came as the timer fired is answered, not cut: a
         * proxy reusing the connection must never see it closed under a
         * request it sent */
        if (unread_input(c)) {
            c->timer_restarted = true;
            if (conn_read(c) == 0) conn_run(c);
            return;
        }
        close_reason(c, SB_CLOSE_IDLE_TIMEOUT);
        break;
    case CONN_LINGERING: break; /* it closes for the reason it lingered */
    case CONN_HANDLING:
        if (c->body_stream) {
            /* a streamed body stalled: its reader hears of it, the client
             * gets 408 once the handler is done, and the connection closes */
            end_body_stream(c);
            c->close_after = c->linger = true;
            close_reason(c, SB_CLOSE_BODY_TIMEOUT);
            exchange_body_end(c->ex, 408);
        }
        return;
    case CONN_WRITING: return; /* no read timeout */
    }
    conn_close(c, SB_CLOSE_SERVER); /* each case above said why */
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
        conn_close(c, SB_CLOSE_SEND_TIMEOUT);
        return;
    }
    switch (conn_flush(c)) {
    case FLUSH_ERROR: conn_close(c, SB_CLOSE_RESET); return;
    case FLUSH_AGAIN: return;
    case FLUSH_DONE: conn_run(c); return;
    }
}

/* ---- life and death --------------------------------------------------- */

void conn_accept(struct conns *cs, int fd, const struct sockaddr *peer, socklen_t peerlen,
                 const struct routes *routes, bool proxy_protocol) {
    struct conn *c = cs->free;
    if (c) {
        cs->free = c->next;
        cs->nfree--;
        memset(c, 0, sizeof *c);
    } else if (!(c = calloc(1, sizeof *c))) {
        close(fd);
        return;
    }
    c->cs = cs;
    c->routes = routes;
    c->fd = fd;
    c->file_fd = -1;
    c->state = proxy_protocol ? CONN_PROXY : CONN_READING_HEAD;
    c->on_unix = peer->sa_family == AF_UNIX;
    if (peerlen <= sizeof c->peer) {
        memcpy(&c->peer, peer, peerlen);
        c->peer_len = peerlen;
    } else {
        /* a client's bound unix socket: its path is of no use here */
        c->peer.sa.sa_family = peer->sa_family == AF_UNIX ? AF_UNIX : AF_UNSPEC;
        c->peer_len = sizeof(sa_family_t);
    }
    event_assign(&c->rev, cs->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->next = cs->list;
    if (cs->list) cs->list->prev = c;
    cs->list = c;
    cs->n++;
    atomic_store_explicit(&cs->slot->connections, cs->n, memory_order_relaxed);
    /* the first request's head (and a PROXY header before it) gets
     * header_timeout from the accept */
    c->armed = c->state;
    c->deadline_ms = now_ms() + cs->conf->header_timeout;
    /* The request is usually here already: read it before asking epoll to
     * watch the socket, so a connection answered and closed at once costs
     * no epoll_ctl at all (the read event is added when a read would block). */
    if (conn_read(c) < 0) return;
    conn_run(c);
}

static void conn_close(struct conn *c, enum sb_close why) {
    struct conns *cs = c->cs;
    close_reason(c, why);
    sb_add(&cs->slot->c[SBC_CLOSED + c->reason - 1], 1);
    if (c->ex) {
        struct exchange *ex = c->ex;
        c->ex = NULL;
        /* every request whose head was read has its line in the log: 400
         * for a body cut short, 499 for an answer the client did not wait
         * for, and for one cut while it was sent, the bytes that went out */
        if (ex->req) {
            uint64_t unsent = c->file_left + buf_len(&c->out);
            ex->body_bytes = ex->body_bytes > unsent ? ex->body_bytes - unsent : 0;
            request_done(c, ex,
                         ex->state == EX_PARSING    ? 400
                         : ex->state == EX_HANDLING ? STATUS_CLIENT_GONE
                                                    : ex->status);
        }
        exchange_abandon(ex, &c->in);
    }
    event_del(&c->rev);
    write_wait_end(c);
    close(c->fd);
    drop_file(c);
    buf_release(&c->in, &cs->bufs);
    buf_release(&c->out, &cs->bufs);

    if (c->prev)
        c->prev->next = c->next;
    else
        cs->list = c->next;
    if (c->next) c->next->prev = c->prev;
    cs->n--;
    atomic_store_explicit(&cs->slot->connections, cs->n, memory_order_relaxed);
    if (cs->nfree < cs->conf->cached_objects) {
        c->next = cs->free;
        cs->free = c;
        cs->nfree++;
    } else {
        free(c);
    }
    cs->closed(cs->closed_arg);
}

void conns_close_idle(struct conns *cs) {
    struct conn *c = cs->list, *next;
    for (; c; c = next) {
        next = c->next;
        /* a PROXY header under way has nothing to answer: it goes at once */
        bool idle = c->state == CONN_IDLE || c->state == CONN_PROXY ||
                    (c->state == CONN_READING_HEAD && !buf_len(&c->in));
        if (idle && !buf_len(&c->out))
            conn_close(c, SB_CLOSE_SHUTDOWN);
        else if (c->state == CONN_IDLE) {
            c->close_after = true; /* answers queued, then close */
            close_reason(c, SB_CLOSE_SHUTDOWN);
        }
    }
}

void conns_publish(struct conns *cs) {
    unsigned n[SB_CONN_N] = {0};
    for (const struct conn *c = cs->list; c; c = c->next) {
        switch (c->state) {
        case CONN_IDLE: n[SB_CONN_IDLE]++; break;
        case CONN_PROXY:
        case CONN_READING_HEAD:
        case CONN_READING_BODY: n[SB_CONN_READING]++; break;
        case CONN_HANDLING:
        case CONN_WRITING: n[SB_CONN_WRITING]++; break;
        case CONN_LINGERING: n[SB_CONN_LINGERING]++; break;
        }
    }
    for (unsigned i = 0; i < SB_CONN_N; i++)
        atomic_store_explicit(&cs->slot->conns[i], n[i], memory_order_relaxed);
}

void conns_close_all(struct conns *cs) {
    while (cs->list) conn_close(cs->list, SB_CLOSE_SHUTDOWN);
}

void conns_trim(struct conns *cs) {
    while (cs->free_wevs) {
        struct wev_box *b = cs->free_wevs;
        cs->free_wevs = b->next;
        free(b);
    }
    while (cs->free) {
        struct conn *c = cs->free;
        cs->free = c->next;
        free(c);
    }
    cs->nfree = 0;
    exchange_env_trim(&cs->ex);
    bufcache_trim(&cs->bufs);
}
