/* apitest: a module that exercises the application API for the integration
 * tests (tests/integration/test_api.py). Counters in a shared region tell the
 * tests what ran, in which process, and whether a client was still there.
 *
 *   async?ms=N       inline; pfd_async: the work sleeps N ms on the pool
 *                    (cancellable), done answers on the loop
 *   after?ms=N       inline; answers from a pfd_after timer: no thread waits
 *   stream?n=K&size=B  inline stream of K pieces of B bytes, written as the
 *                    client drains them (pfd_on_drain)
 *   stream_async     a stream that then hands work to the pool
 *   params           pattern route /p/{a}/{b}: path and query parameters
 *   case?c=NAME      one use (or misuse) of the API per name, on the loop or
 *                    the pool (the route's mode): see cases[] below
 *   upload?chunk=N&pause=MS&stop=K
 *                    [pool] reads a streamed body (PFD_BODY_STREAM) N bytes at a
 *                    time, pausing MS after the first read, and answers its
 *                    length and FNV-1a hash; with stop=K it answers after K
 *                    bytes (the rest is dropped); with pieces=P&tick=MS the
 *                    answer is streamed instead, P pieces MS apart
 *   stats            the counters, JSON
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gettid */
#endif
#include <preforkd.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct counters {
    _Atomic unsigned long work_started, work_finished, work_cancelled;
    _Atomic unsigned long done_called, done_gone;
    _Atomic unsigned long after_fired, after_gone;
    _Atomic unsigned long stream_drains, stream_freed;
    _Atomic unsigned long released, released_off_loop, drains, inits, fini;
    _Atomic unsigned long body_failed;
};

static struct counters *ctr;

static int init(char *err, size_t errlen) {
    if (!(ctr = pfd_shared_create("apitest", sizeof *ctr))) {
        snprintf(err, errlen, "no shared region");
        return -1;
    }
    atomic_fetch_add(&ctr->inits, 1);
    return 0;
}

/* Master, when the configuration that ran init is let go (a reload). */
static void fini(void) {
    atomic_fetch_add(&ctr->fini, 1);
}

static long number(pfd_req *r, const char *name, long dflt) {
    pfd_str v;
    if (pfd_query_param(r, name, &v) != 1) return dflt;
    return atol(v.p);
}

/* ---- async ------------------------------------------------------------- */

struct job {
    long ms;
    int slept; /* 0 done, -1 cancelled */
};

static void async_work(pfd_req *r, void *arg) {
    struct job *j = arg;
    atomic_fetch_add(&ctr->work_started, 1);
    j->slept = pfd_sleep(r, (unsigned)j->ms);
    atomic_fetch_add(j->slept < 0 ? &ctr->work_cancelled : &ctr->work_finished, 1);
}

static void async_done(pfd_req *r, void *arg) {
    struct job *j = arg;
    atomic_fetch_add(&ctr->done_called, 1);
    if (pfd_gone(r)) atomic_fetch_add(&ctr->done_gone, 1);
    pfd_content_type(r, "application/json");
    pfd_printf(r, "{\"slept\": %ld, \"cancelled\": %s}\n", j->ms, j->slept < 0 ? "true" : "false");
}

static int async_handle(pfd_req *r) {
    struct job *j = pfd_alloc(r, sizeof *j);
    if (!j) return PFD_ERROR;
    j->ms = number(r, "ms", 10);
    j->slept = 0;
    pfd_async(r, async_work, async_done, j);
    return PFD_OK;
}

/* ---- after -------------------------------------------------------------- */

static void after_fired(pfd_req *r, void *arg) {
    atomic_fetch_add(&ctr->after_fired, 1);
    if (pfd_gone(r)) atomic_fetch_add(&ctr->after_gone, 1);
    /* the request's strings live as long as the request, gone or not */
    pfd_str agent = pfd_header(r, "user-agent"), path = pfd_path(r);
    pfd_printf(r, "waited %ld ms for %zu+%zu bytes\n", (long)(intptr_t)arg, agent.len, path.len);
}

static int after_handle(pfd_req *r) {
    long ms = number(r, "ms", 10);
    pfd_content_type(r, "text/plain");
    if (pfd_after(r, (unsigned)ms, after_fired, (void *)(intptr_t)ms) < 0) return PFD_ERROR;
    return PFD_OK;
}

/* ---- inline stream ------------------------------------------------------- */

struct stream {
    long left, size;
    char *piece;
};

/* malloc'd, not in the request's memory: a callback must run to free it,
 * also when the client has gone */
static void stream_free(struct stream *s) {
    free(s->piece);
    free(s);
    atomic_fetch_add(&ctr->stream_freed, 1);
}

static void stream_more(pfd_req *r, void *arg) {
    struct stream *s = arg;
    while (s->left > 0 && !pfd_gone(r)) {
        int rc = pfd_stream_write(r, s->piece, (size_t)s->size);
        if (rc == PFD_AGAIN) {
            /* the client is slow: come back when it has read */
            atomic_fetch_add(&ctr->stream_drains, 1);
            pfd_on_drain(r, stream_more, s);
            return;
        }
        if (rc < 0) break; /* gone */
        s->left--;
    }
    pfd_stream_end(r);
    stream_free(s);
}

static int stream_handle(pfd_req *r) {
    long left = number(r, "n", 4), size = number(r, "size", 16);
    if (size <= 0 || size > 1 << 20 || left < 0) return pfd_error(r, 400);
    struct stream *s = calloc(1, sizeof *s);
    if (!s || !(s->piece = malloc((size_t)size))) {
        free(s);
        return PFD_ERROR;
    }
    s->left = left;
    s->size = size;
    memset(s->piece, 'y', (size_t)s->size);
    pfd_content_type(r, "application/octet-stream");
    if (pfd_stream_begin(r) < 0) {
        stream_free(s);
        return PFD_ERROR;
    }
    stream_more(r, s);
    return PFD_OK;
}

/* A stream that then needs the pool: when the pool's queue is full, the
 * answer cannot turn into a 503 any more; it is cut. */
static void stream_async_work(pfd_req *r, void *arg) {}

static void stream_async_done(pfd_req *r, void *arg) {
    pfd_stream_write(r, "b", 1);
    pfd_stream_end(r);
}

static int stream_async_handle(pfd_req *r) {
    pfd_content_type(r, "text/plain");
    pfd_stream_begin(r);
    pfd_stream_write(r, "a", 1);
    pfd_async(r, stream_async_work, stream_async_done, NULL);
    return PFD_OK;
}

/* ---- one use of the API per case (c=NAME) -------------------------------- */

static bool is(pfd_str s, const char *name) {
    return s.len == strlen(name) && memcmp(s.p, name, s.len) == 0;
}

static void noop(pfd_req *r, void *arg) {}

/* A release callback: it must run once, on the loop thread (the worker's
 * main thread, whose id is the process id). */
static void count_release(void *arg) {
    atomic_fetch_add(&ctr->released, 1);
    if (gettid() != getpid()) atomic_fetch_add(&ctr->released_off_loop, 1);
    free(arg);
}

static void count_drain(pfd_req *r, void *arg) {
    atomic_fetch_add(&ctr->drains, 1);
    pfd_stream_end(r);
}

static int case_handle(pfd_req *r) {
    pfd_str c;
    if (pfd_query_param(r, "c", &c) != 1) return pfd_error(r, 400);
    long n = number(r, "n", 4), size = number(r, "size", 16 * 1024);
    if (is(c, "nocontent")) {
        /* a stream on an answer that has no content: nothing of it may
         * reach the wire (the next answer would start with it) */
        pfd_status(r, (int)number(r, "status", 204));
        pfd_write(r, "before", 6);
        pfd_stream_begin(r);
        for (long i = 0; i < n; i++) {
            char *piece = malloc((size_t)size);
            if (!piece) return PFD_ERROR;
            memset(piece, 'z', (size_t)size);
            int rc = pfd_stream_write(r, piece, (size_t)size);
            free(piece);
            if (rc < 0) return PFD_ERROR;
        }
        return pfd_stream_end(r) < 0 ? PFD_ERROR : PFD_OK;
    }
    if (is(c, "ctype")) {
        /* a Content-Type the caller frees at once */
        char *type = strdup("text/x-freed");
        int rc = pfd_content_type(r, type);
        memset(type, 'X', strlen(type));
        free(type);
        return rc < 0 ? PFD_ERROR : pfd_write(r, "typed\n", 6);
    }
    if (is(c, "huge_alloc"))
        return pfd_printf(r, "%s %s\n", pfd_alloc(r, SIZE_MAX - 8) ? "got" : "null",
                          pfd_alloc(r, SIZE_MAX - 16) ? "got" : "null");
    if (is(c, "async_twice")) {
        pfd_async(r, noop, noop, NULL);
        return pfd_async(r, noop, noop, NULL) < 0 ? PFD_OK : pfd_text(r, 200, "two jobs\n");
    }
    if (is(c, "async_after")) {
        pfd_async(r, noop, noop, NULL);
        return pfd_after(r, 10, noop, NULL) < 0 ? PFD_OK : pfd_text(r, 200, "both\n");
    }
    if (is(c, "async_on_pool"))
        return pfd_async(r, noop, noop, NULL) < 0 ? PFD_OK : pfd_text(r, 200, "accepted\n");
    if (is(c, "drain_twice")) {
        pfd_on_drain(r, count_drain, NULL);
        return pfd_on_drain(r, count_drain, NULL) < 0 ? PFD_OK : pfd_text(r, 200, "twice\n");
    }
    if (is(c, "drain_end")) {
        /* a drain callback asked for with nothing queued: it still runs,
         * and the answer waits for it */
        pfd_content_type(r, "text/plain");
        pfd_stream_begin(r);
        return pfd_on_drain(r, count_drain, NULL) < 0 ? PFD_ERROR : PFD_OK;
    }
    if (is(c, "left_open")) {
        pfd_content_type(r, "text/plain");
        pfd_stream_begin(r);
        pfd_stream_write(r, "open", 4);
        return PFD_OK; /* no end, nothing pending */
    }
    if (is(c, "after_end")) {
        pfd_content_type(r, "text/plain");
        pfd_stream_begin(r);
        pfd_stream_write(r, "ended", 5);
        pfd_stream_end(r);
        return pfd_stream_write(r, "AFTER", 5) < 0 ? PFD_OK : PFD_ERROR;
    }
    if (is(c, "body_then_stream")) {
        pfd_content_type(r, "text/plain");
        pfd_write(r, "first,", 6);
        pfd_stream_begin(r);
        pfd_stream_write(r, "second", 6);
        return pfd_stream_end(r) < 0 ? PFD_ERROR : PFD_OK;
    }
    if (is(c, "late_header")) {
        /* [pool] once a piece is on its way the head is fixed */
        pfd_content_type(r, "text/plain");
        pfd_stream_write(r, "piece", 5);
        if (pfd_header_add(r, "X-Late", "yes") == 0) pfd_stream_write(r, "LATE", 4);
        return PFD_OK;
    }
    if (is(c, "body_ref")) {
        /* a body handed over by reference, released once sent */
        char *p = malloc((size_t)size);
        if (!p) return PFD_ERROR;
        for (long i = 0; i < size; i++) p[i] = (char)('a' + i % 26);
        pfd_content_type(r, "text/plain");
        return pfd_body_ref(r, p, (size_t)size, count_release, p) < 0 ? PFD_ERROR : PFD_OK;
    }
    if (is(c, "ref_then_text")) {
        /* a body by reference replaced at once: released, on the loop */
        char *p = malloc(64);
        if (!p) return PFD_ERROR;
        memset(p, 'r', 64);
        pfd_body_ref(r, p, 64, count_release, p);
        return pfd_text(r, 200, "replaced\n");
    }
    if (is(c, "shared"))
        return pfd_text(r, 200, pfd_shared_create("late", 64) ? "created\n" : "null\n");
    return pfd_error(r, 404);
}

/* ---- a streamed request body -------------------------------------------- */

static int upload_handle(pfd_req *r) {
    long chunk = number(r, "chunk", 65536), pause = number(r, "pause", 0);
    long stop = number(r, "stop", -1), pieces = number(r, "pieces", 0);
    long tick = number(r, "tick", 0);
    if (chunk <= 0 || chunk > 1 << 20) return pfd_error(r, 400);
    char *buf = malloc((size_t)chunk);
    if (!buf) return PFD_ERROR;
    uint64_t hash = 1469598103934665603ull, total = 0;
    long n = 0;
    while ((stop < 0 || (long)total < stop) && (n = pfd_body_read(r, buf, (size_t)chunk)) > 0) {
        for (long i = 0; i < n; i++) hash = (hash ^ (unsigned char)buf[i]) * 1099511628211ull;
        if (total == 0 && pause > 0) pfd_sleep(r, (unsigned)pause);
        total += (uint64_t)n;
    }
    free(buf);
    if (stop < 0 && n < 0) {
        atomic_fetch_add(&ctr->body_failed, 1);
        return pfd_error(r, 500); /* the body's own status wins (413, 400, 408) */
    }
    pfd_content_type(r, "application/json");
    if (pieces > 0) {
        pfd_stream_begin(r);
        for (long i = 0; i < pieces; i++) {
            if (i && tick > 0 && pfd_sleep(r, (unsigned)tick) < 0) break;
            pfd_stream_write(r, "piece\n", 6);
        }
        return PFD_OK;
    }
    return pfd_printf(r, "{\"bytes\": %llu, \"fnv\": \"%016llx\"}\n", (unsigned long long)total,
                      (unsigned long long)hash);
}

/* ---- parameters and stats ------------------------------------------------ */

static int params_handle(pfd_req *r) {
    pfd_str a = pfd_path_param(r, "a"), b = pfd_path_param(r, "b"), name, value;
    pfd_content_type(r, "application/json");
    pfd_write(r, "{\"a\": ", 6);
    pfd_write_json_string(r, a.p, a.len);
    pfd_write(r, ", \"b\": ", 7);
    pfd_write_json_string(r, b.p, b.len);
    pfd_write(r, ", \"query\": [", 12);
    size_t pos = 0;
    int rc, n = 0;
    while ((rc = pfd_query_next(r, &pos, &name, &value)) == 1) {
        pfd_write(r, n ? ", [" : "[", n ? 3 : 1);
        n++;
        pfd_write_json_string(r, name.p, name.len);
        pfd_write(r, ", ", 2);
        pfd_write_json_string(r, value.p, value.len);
        pfd_write(r, "]", 1);
    }
    if (rc < 0) return pfd_error(r, 400);
    return pfd_write(r, "]}\n", 3);
}

static int stats_handle(pfd_req *r) {
    pfd_content_type(r, "application/json");
    return pfd_printf(r,
                      "{\"work_started\": %lu, \"work_finished\": %lu, \"work_cancelled\": %lu, "
                      "\"done_called\": %lu, \"done_gone\": %lu, \"after_fired\": %lu, "
                      "\"after_gone\": %lu, \"stream_drains\": %lu, \"stream_freed\": %lu, "
                      "\"released\": %lu, \"released_off_loop\": %lu, \"drains\": %lu, "
                      "\"inits\": %lu, \"fini\": %lu, \"body_failed\": %lu}\n",
                      atomic_load(&ctr->work_started), atomic_load(&ctr->work_finished),
                      atomic_load(&ctr->work_cancelled), atomic_load(&ctr->done_called),
                      atomic_load(&ctr->done_gone), atomic_load(&ctr->after_fired),
                      atomic_load(&ctr->after_gone), atomic_load(&ctr->stream_drains),
                      atomic_load(&ctr->stream_freed), atomic_load(&ctr->released),
                      atomic_load(&ctr->released_off_loop), atomic_load(&ctr->drains),
                      atomic_load(&ctr->inits), atomic_load(&ctr->fini),
                      atomic_load(&ctr->body_failed));
}

/* Who the server says the client is: pfd_client_ip and pfd_scheme. */
static int whoami_handle(pfd_req *r) {
    return pfd_printf(r, "%s %s\n", pfd_client_ip(r), pfd_scheme(r));
}

/* The environment a worker's handler sees: ?NAME gives NAME's value, or
 * "(unset)". */
static int env_handle(pfd_req *r) {
    pfd_str q = pfd_query(r);
    char name[64];
    if (!q.len || q.len >= sizeof name) return pfd_error(r, 400);
    memcpy(name, q.p, q.len);
    name[q.len] = '\0';
    const char *v = getenv(name);
    return pfd_printf(r, "%s\n", v ? v : "(unset)");
}

static const pfd_handler handlers[] = {
    {.name = "env", .handle = env_handle, .body = PFD_BODY_DROP},
    {.name = "whoami", .handle = whoami_handle, .body = PFD_BODY_DROP},
    {.name = "async", .handle = async_handle, .body = PFD_BODY_DROP},
    {.name = "after", .handle = after_handle, .body = PFD_BODY_DROP},
    {.name = "stream", .handle = stream_handle, .body = PFD_BODY_DROP},
    {.name = "stream_async", .handle = stream_async_handle, .body = PFD_BODY_DROP},
    {.name = "params", .handle = params_handle, .body = PFD_BODY_DROP},
    {.name = "stats", .handle = stats_handle, .body = PFD_BODY_DROP},
    {.name = "case", .handle = case_handle, .body = PFD_BODY_DROP},
    {.name = "upload", .handle = upload_handle, .body = PFD_BODY_STREAM},
    {0},
};

const pfd_app preforkd_module = {
    .api_version = PFD_API_VERSION,
    .name = "apitest",
    .handlers = handlers,
    .init = init,
    .fini = fini,
};
