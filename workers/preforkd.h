/* preforkd.h — the application API of preforkd (installed as <preforkd.h>).
 *
 * preforkd is a pre-forking HTTP/1.1 server: a master process forks one
 * worker per CPU; each worker runs one event loop (the loop thread) for all
 * socket I/O, and a pool of threads for blocking work. This header is all an
 * application sees of it. The server's own handlers (static, echo, sleep,
 * status, dashboard, httpbin) are written on it and nothing else.
 *
 * A handler answers the requests of the [route] sections that name it:
 *
 *     static int hello(pfd_req *r) {
 *         return pfd_text(r, 200, "Hello, World!\n");
 *     }
 *     static const pfd_handler handlers[] = {
 *         {.name = "hello", .handle = hello},
 *         {0},
 *     };
 *     static const pfd_app app = {.api_version = PFD_API_VERSION, .handlers = handlers};
 *     int main(int argc, char **argv) { return pfd_main(argc, argv, &app); }
 *
 * with a configuration of
 *
 *     [route = /hello]
 *     handler = hello
 *
 * Or built as a module (a shared object exporting `const pfd_app
 * preforkd_module`) and loaded by the stock binary:
 *
 *     [route /api/]
 *     handler = kv          ; one of the module's handlers
 *     module = kv.so        ; relative to the config file's folder
 *
 * THREADS. A route's handler runs on the loop thread (mode = inline, the
 * default: it must not block) or on a pool thread (mode = pool: it may
 * block; it should return early when pfd_cancelled() says its client left).
 * An inline handler may hand blocking work to the pool with pfd_async(): the
 * work runs on a pool thread, then its callback runs on the loop thread and
 * finishes the answer (libuv's uv_queue_work, Python's apply_async with a
 * callback). Functions marked [loop] may be called only on the loop thread,
 * [pool] only from pool-thread code (a pool handler, an async work
 * function), [any] from either, while the request is live.
 *
 * LIFETIME OF A REQUEST. A pfd_req is valid from the handler call until its
 * answer is complete: when the handler returns, unless it started something
 * that finishes the answer later (pfd_async, pfd_after, an inline stream);
 * then when the last of those callbacks returns without starting another
 * (or at pfd_stream_end). Strings from the request and memory from
 * pfd_alloc() live as long. When the client goes away first, pending work
 * that has not started is dropped, running work sees pfd_cancelled(), and
 * the callbacks still run (so that they can free what they own) with
 * pfd_gone() true; whatever they answer is discarded.
 *
 * ERRORS. Response functions return 0, or -1 when the client cannot get the
 * answer asked for (a header value with CR, LF or NUL, memory): the client
 * then gets 500, never a broken answer, and the log names the route. A
 * handler returning PFD_ERROR does the same.
 *
 * Everything in this header is prefixed pfd_ / PFD_. */
#ifndef PREFORKD_H
#define PREFORKD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Raised when a pfd_app or pfd_handler struct changes; a module built
 * against another version is refused when the configuration is loaded. */
#define PFD_API_VERSION 1

#if defined(__GNUC__)
#define PFD_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PFD_PRINTF(f, a)
#endif

/* ---- basics ----------------------------------------------------------- */

/* A string that is not NUL-terminated unless said so. p is NULL when absent. */
typedef struct pfd_str {
    const char *p;
    size_t len;
} pfd_str;

/* One request and its answer (opaque). */
typedef struct pfd_req pfd_req;
/* One [route] section in one worker (opaque). */
typedef struct pfd_route pfd_route;

/* What a handler returns. */
enum {
    PFD_OK = 0,     /* answered, or finishing later (pfd_async, pfd_after, stream) */
    PFD_ERROR = -1, /* the client gets 500 and the log names the route */
};

/* pfd_stream_write() on the loop thread: nothing written, come back at
 * pfd_on_drain(). */
#define PFD_AGAIN 1

/* ---- handlers and applications ---------------------------------------- */

/* Where a route's handler runs (a route's mode setting overrides it). */
enum pfd_mode {
    PFD_INLINE = 0, /* on the loop thread; must not block */
    PFD_POOL = 1,   /* on a pool thread; may block */
};

/* What happens to a request body before the handler runs. */
enum pfd_body_mode {
    PFD_BODY_COLLECT = 0, /* read whole (up to max_body_size), then the handler: pfd_body() */
    PFD_BODY_DROP = 1,    /* not wanted: the handler runs at once, the body is dropped */
    PFD_BODY_STREAM = 2,  /* [pool] the handler runs once the head is in and reads the body as
                             it comes, with pfd_body_read (the route runs on the pool) */
};

typedef struct pfd_handler {
    const char *name;            /* handler = NAME in a [route] section */
    int (*handle)(pfd_req *r);   /* PFD_OK or PFD_ERROR */
    enum pfd_mode mode;          /* the default for routes that do not set mode */
    bool pool_only;              /* blocks: a route may not set mode = inline */
    enum pfd_body_mode body;     /* PFD_BODY_COLLECT by default */
    const char *const *settings; /* route settings it takes (NULL-terminated), e.g. "root" */
    /* Master, when the configuration is loaded (start, --check, reload):
     * checks the route's settings. 0, or -1 with a message in err. */
    int (*check)(const pfd_route *rt, char *err, size_t errlen);
    /* Worker, before it serves: per-route state (pfd_route_set_data).
     * 0, or -1 with a message in err (the worker then cannot start). */
    int (*init)(pfd_route *rt, char *err, size_t errlen);
    void (*fini)(pfd_route *rt); /* worker, at exit */
    void (*tick)(pfd_route *rt); /* worker, once a second on the loop thread (expire caches) */
} pfd_handler;

/* An application: handlers and the hooks of its life. Every hook is
 * optional. */
typedef struct pfd_app {
    unsigned api_version;        /* PFD_API_VERSION */
    const char *name;            /* for the log */
    const pfd_handler *handlers; /* ended by an entry with name NULL */
    /* Master, after the configuration is loaded and before the workers are
     * forked (again at each reload): build read-only data the workers share
     * copy-on-write, create shared regions (pfd_shared_create). 0 or -1. */
    int (*init)(char *err, size_t errlen);
    /* Master, when that configuration is let go (after the reload that
     * replaced it, at exit, or when another app's init failed): free what
     * init made. Shared regions stay. */
    void (*fini)(void);
    /* Each worker, after fork and privilege drop, before it serves; index
     * is its position (0 .. workers-1) in its generation: during a reload,
     * and for a worker respawned after a crash, two processes may have the
     * same index for a while (state per index must allow for that). 0, or
     * -1: the worker cannot start. */
    int (*worker_init)(unsigned index);
    void (*worker_exit)(void); /* each worker, as it exits */
    /* Each pool thread, as it starts and ends (a connection per thread). */
    void (*thread_init)(void);
    void (*thread_exit)(void);
} pfd_app;

/* Runs the whole server (command line, configuration, master and workers)
 * with app's handlers beside the built-in ones; returns the exit status.
 * app may be NULL (the stock binary). */
int pfd_main(int argc, char **argv, const pfd_app *app);

/* ---- routes ------------------------------------------------------------ */

/* The route's prefix or pattern as configured ("/api/", "/users/{id}"). */
const char *pfd_route_path(const pfd_route *rt);
/* The value of a route setting the handler declared, NUL-terminated, or
 * NULL when unset. Paths are made absolute against the config's folder
 * by the handler when it needs it (pfd_route_config_dir). */
const char *pfd_route_setting(const pfd_route *rt, const char *name);
const char *pfd_route_config_dir(const pfd_route *rt);
/* Where the route's handler runs. */
enum pfd_mode pfd_route_mode(const pfd_route *rt);
/* A number setting: the route's own, or else the [server] setting of that
 * name (sizes in bytes, durations in ms). 0, or -1 when there is none or it
 * is not a number. */
int pfd_route_number(const pfd_route *rt, const char *name, uint64_t *value);
/* Per-worker state of the handler for this route (set in init). */
void pfd_route_set_data(pfd_route *rt, void *data);
void *pfd_route_data(const pfd_route *rt);

/* ---- the request [any] -------------------------------------------------- */

const pfd_route *pfd_req_route(const pfd_req *r);
/* "GET", "POST", ... (NUL-terminated). */
const char *pfd_method(const pfd_req *r);
/* The method as a number, for the common ones. */
enum pfd_method {
    PFD_GET,
    PFD_HEAD,
    PFD_POST,
    PFD_PUT,
    PFD_DELETE,
    PFD_OPTIONS,
    PFD_PATCH,
    PFD_TRACE,
    PFD_OTHER,
};
enum pfd_method pfd_method_id(const pfd_req *r);
/* 10 for HTTP/1.0, 11 for HTTP/1.1. */
unsigned pfd_version(const pfd_req *r);
/* The decoded, normalized path (NUL-terminated): "/a b/c" for "/a%20b/./c". */
pfd_str pfd_path(const pfd_req *r);
/* The request-target as sent ("/a%20b/./c?x=1"). */
pfd_str pfd_target(const pfd_req *r);
/* The query string after '?' (p is NULL when there is none). */
pfd_str pfd_query(const pfd_req *r);
/* The decoded value of query parameter name ('+' is a space): 1 when
 * found (value in the request's memory), 0 when absent, -1 when its
 * encoding is broken. The first occurrence wins. */
int pfd_query_param(pfd_req *r, const char *name, pfd_str *value);
/* Every query parameter in turn, decoded: start with *pos = 0; 1 while one
 * is returned, 0 at the end, -1 for a broken encoding. */
int pfd_query_next(pfd_req *r, size_t *pos, pfd_str *name, pfd_str *value);
/* The request's position on its connection: 0 for the first request a
 * connection carries, 1 for the next (pipelined requests in order). The
 * same client sending the same requests on a new connection sees the same
 * numbers: a handler can make its random choices repeatable with it. */
uint64_t pfd_request_seq(const pfd_req *r);
/* A {name} segment of the route's pattern, decoded (p NULL when the route
 * has none of that name). */
pfd_str pfd_path_param(const pfd_req *r, const char *name);
/* The value of the first header field called name (case-insensitive),
 * without surrounding whitespace; p is NULL when there is none. */
pfd_str pfd_header(const pfd_req *r, const char *name);
/* Frequent fields, found while the head is read: cheaper than pfd_header()
 * (the first of several; p is NULL when absent). */
enum pfd_field {
    PFD_F_HOST,
    PFD_F_CONTENT_TYPE,
    PFD_F_USER_AGENT,
    PFD_F_REFERER,
    PFD_F_ACCEPT_ENCODING,
    PFD_F_RANGE,
    PFD_F_IF_RANGE,
    PFD_F_IF_MATCH,
    PFD_F_IF_NONE_MATCH,
    PFD_F_IF_MODIFIED_SINCE,
    PFD_F_IF_UNMODIFIED_SINCE,
};
pfd_str pfd_field(const pfd_req *r, enum pfd_field f);
/* Every header field in order: 0 <= i < pfd_header_count(r). */
unsigned pfd_header_count(const pfd_req *r);
void pfd_header_at(const pfd_req *r, unsigned i, pfd_str *name, pfd_str *value);
/* The request body (route body = collect); len 0 when there is none. */
pfd_str pfd_body(const pfd_req *r);
/* Reads up to cap bytes of the body into buf: the number read, 0 at its
 * end, -1 when it cannot go on. With PFD_BODY_STREAM [pool]: waits for the
 * client's bytes (the worker reads at most stream_buffer bytes ahead of
 * the handler); -1 when the client left, the request was cancelled, or the
 * body broke off: malformed (400), over the route's max_body_size (413),
 * stalled past body_timeout (408); the client then gets that status
 * (unless a stream has begun) and the connection closes. With a collected
 * body it reads through pfd_body. A handler that answers before the end of
 * the body is fine: the rest is read and dropped. */
long pfd_body_read(pfd_req *r, void *buf, size_t cap);
/* The client's address: the peer, or the client a trusted proxy names
 * (trusted_proxies); for a unix socket family AF_UNIX, no address. */
const struct sockaddr *pfd_client_addr(const pfd_req *r, socklen_t *len);
/* "https" when a trusted proxy (trusted_proxies) says the client used it,
 * else "http". */
const char *pfd_scheme(const pfd_req *r);
/* The client's address as text ("192.0.2.1", "2001:db8::1", "unix"). */
const char *pfd_client_ip(pfd_req *r);
/* Memory freed with the request (8-byte aligned), or NULL. */
void *pfd_alloc(pfd_req *r, size_t n);
/* A formatted NUL-terminated string in the request's memory, or NULL. */
char *pfd_sprintf(pfd_req *r, const char *fmt, ...) PFD_PRINTF(2, 3);

/* ---- the answer [any, before it is sent] -------------------------------- */

/* The status code (200 unless set). */
void pfd_status(pfd_req *r, int status);
/* Adds a header field. Names are tokens; values may hold no control
 * character but HTAB (CR, LF and NUL would split the answer): -1 then, and
 * the client gets 500. Content-Length, Transfer-Encoding, Connection,
 * Keep-Alive, Upgrade, Proxy-Connection, Trailer, Date and Server are the
 * server's own: -1 too. Content-Type goes to pfd_content_type. */
int pfd_header_add(pfd_req *r, const char *name, const char *value);
int pfd_header_addf(pfd_req *r, const char *name, const char *fmt, ...) PFD_PRINTF(3, 4);
/* Header lines made and checked once, added to many answers at the cost of
 * a copy (a file's validators, a site's security headers). A block is
 * read-only once used, and may be shared by threads. */
typedef struct pfd_headers pfd_headers;
pfd_headers *pfd_headers_new(void);
/* Adds "name: value" to the block: -1 when the name is no token, the value
 * holds CR, LF, NUL or another control, or the field is the server's own. */
int pfd_headers_set(pfd_headers *h, const char *name, const char *value);
void pfd_headers_free(pfd_headers *h);
/* The block's lines ("Name: value\r\n" each) and their length. */
const char *pfd_headers_text(const pfd_headers *h, size_t *len);
/* Adds every line of the block to the answer. */
int pfd_header_block(pfd_req *r, const pfd_headers *h);
/* The connection closes once this answer is sent (the answer says
 * Connection: close); the client's later pipelined requests are not read.
 * -1 once the answer's head was sent. */
int pfd_close_after(pfd_req *r);
/* Content-Type (copied). */
int pfd_content_type(pfd_req *r, const char *type);
/* Appends to the body, kept in memory until sent. */
int pfd_write(pfd_req *r, const void *p, size_t n);
int pfd_printf(pfd_req *r, const char *fmt, ...) PFD_PRINTF(2, 3);
/* Appends s as a JSON string literal (quoted and escaped; bytes that are
 * not valid UTF-8 become U+FFFD). */
int pfd_write_json_string(pfd_req *r, const char *s, size_t n);
/* The whole body is p[0, n), not copied (a body over 16 KiB goes out
 * straight from p): release(arg) is called on the loop thread once it is
 * sent or the request ends. release may be NULL. */
int pfd_body_ref(pfd_req *r, const void *p, size_t n, void (*release)(void *arg), void *arg);
/* The whole body is len bytes of file fd from off, sent with sendfile. fd
 * is closed when done, unless release is given: then release(arg) instead. */
int pfd_body_file(pfd_req *r, int fd, uint64_t off, uint64_t len, void (*release)(void *arg),
                  void *arg);
/* Shorthands: status, Content-Type and the whole body at once. */
int pfd_text(pfd_req *r, int status, const char *text); /* text/plain; charset=utf-8 */
int pfd_json(pfd_req *r, int status, const char *json); /* application/json */
/* A short answer (3xx, 4xx, 5xx): status and a text/plain body naming it.
 * The body and Content-Type set before are replaced; header fields added
 * before stay (Retry-After, Allow...). */
int pfd_error(pfd_req *r, int status);

/* ---- later answers -------------------------------------------------------- */

/* [loop] Runs work(r, arg) on a pool thread, then done(r, arg) on the loop
 * thread; the answer goes out after done returns (unless done starts more).
 * work starts only after the code that called pfd_async has returned, and
 * from then until done runs the request is work's: the loop touches it no
 * more (no pfd_after or pfd_on_drain meanwhile). One job at a time. A
 * request whose client left before work started does not run work; done
 * always runs (check pfd_gone). -1 when the pool's queue is full (the
 * client then gets 503, or a stream under way is cut), or on misuse (from a
 * pool thread, a second job: the client gets 500). */
int pfd_async(pfd_req *r, void (*work)(pfd_req *r, void *arg), void (*done)(pfd_req *r, void *arg),
              void *arg);
/* [loop] Calls cb(r, arg) on the loop thread after ms milliseconds; no
 * thread waits meanwhile. cb always runs, once (check pfd_gone): at once
 * when the client leaves. */
int pfd_after(pfd_req *r, unsigned ms, void (*cb)(pfd_req *r, void *arg), void *arg);
/* [any] The client left, or request_timeout passed: stop working on it. */
bool pfd_cancelled(const pfd_req *r);
/* [loop] The client left: whatever is answered now is dropped. */
bool pfd_gone(const pfd_req *r);
/* [pool] Sleeps ms milliseconds; -1 early when cancelled. */
int pfd_sleep(pfd_req *r, unsigned ms);

/* ---- streamed answers (length unknown: chunked, or until close for
 * HTTP/1.0) ------------------------------------------------------------------ */

/* Sends the status and headers set so far (they cannot change after), and
 * what pfd_write put in the body before, as the first piece. An answer that
 * has no content (HEAD, 204, 304) sends no piece. */
int pfd_stream_begin(pfd_req *r);
/* Sends n bytes. [pool]: waits while stream_buffer bytes are on their way
 * to a slow client; 0, or -1 when cancelled. [loop]: 0 when queued;
 * PFD_AGAIN when stream_buffer bytes are already on their way (nothing is
 * queued: come back at pfd_on_drain); -1 when the client is gone. */
int pfd_stream_write(pfd_req *r, const void *p, size_t n);
/* [loop] Calls cb once the client has read what was queued; the answer
 * waits for it, and it always runs, once (at once when the client leaves).
 * One at a time. */
int pfd_on_drain(pfd_req *r, void (*cb)(pfd_req *r, void *arg), void *arg);
/* Ends the stream (writes after it fail). An inline stream must end, or
 * have a timer, a job or a drain callback pending, each time the handler
 * or a callback returns: one left open with nothing to end it is cut. A
 * pool handler's stream ends when it returns anyway. */
int pfd_stream_end(pfd_req *r);

/* ---- state shared by the workers ---------------------------------------- */

/* A named region of shared memory, zeroed, created in the master (in
 * pfd_app.init) and inherited by every worker: the same bytes in all of
 * them. A reload's init gets the region of the same name and size back,
 * with its bytes (another size needs a restart). Names are one space for
 * the server and all its modules (pick unique ones); regions live as long
 * as the master, at most 64 of them. NULL outside the master's init, for
 * a size that differs from the existing region's, or out of memory. */
void *pfd_shared_create(const char *name, size_t size);
/* The region of that name (in any process of the server), or NULL. */
void *pfd_shared_get(const char *name, size_t *size);

/* A lock for shared regions: process-shared and robust. A worker that dies
 * holding it does not block the others: the next locker gets it with
 * PFD_LOCK_RECOVERED and should repair what the dead one left half done. */
typedef struct pfd_lock {
    long long opaque[8]; /* a pthread_mutex_t, aligned as it needs */
} pfd_lock;
#define PFD_LOCK_RECOVERED 1
#define PFD_LOCK_BUSY      2
/* In the master, on memory in a shared region. 0 or -1. */
int pfd_lock_init(pfd_lock *l);
/* 0, PFD_LOCK_RECOVERED, or -1. Blocks: from the loop thread, only for
 * holds that are short (or use pfd_lock_try, and pfd_after to try again). */
int pfd_lock_acquire(pfd_lock *l);
/* Without waiting: 0, PFD_LOCK_RECOVERED, PFD_LOCK_BUSY, or -1. */
int pfd_lock_try(pfd_lock *l);
void pfd_lock_release(pfd_lock *l);

/* ---- the server ------------------------------------------------------------ */

/* Counters of one worker, from the scoreboard (any process). */
typedef struct pfd_worker_stats {
    int pid;
    const char *state; /* "starting", "serving", "stopping" */
    unsigned slot, generation;
    uint64_t requests, accepted;
    unsigned connections, pool_busy, pool_queued, pool_stuck;
    uint64_t heartbeat_age_ms;
} pfd_worker_stats;
/* Fills st for the i-th live worker slot, 0 <= i; 0, or -1 past the last. */
int pfd_worker_stats_get(unsigned i, pfd_worker_stats *st);

/* The server's log (error_log): one line each, with level and process. */
void pfd_log_error(const char *fmt, ...) PFD_PRINTF(1, 2);
void pfd_log_warn(const char *fmt, ...) PFD_PRINTF(1, 2);
void pfd_log_info(const char *fmt, ...) PFD_PRINTF(1, 2);

#ifdef __cplusplus
}
#endif

#endif
