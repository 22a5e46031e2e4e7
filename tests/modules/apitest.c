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
 *   stats            the counters, JSON
 */
#include <preforkd.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct counters {
    _Atomic unsigned long work_started, work_finished, work_cancelled;
    _Atomic unsigned long done_called, done_gone;
    _Atomic unsigned long after_fired, after_gone;
    _Atomic unsigned long stream_drains, stream_freed;
};

static struct counters *ctr;

static int init(char *err, size_t errlen) {
    if (!(ctr = pfd_shared_create("apitest", sizeof *ctr))) {
        snprintf(err, errlen, "no shared region");
        return -1;
    }
    return 0;
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
                      "\"after_gone\": %lu, \"stream_drains\": %lu, \"stream_freed\": %lu}\n",
                      atomic_load(&ctr->work_started), atomic_load(&ctr->work_finished),
                      atomic_load(&ctr->work_cancelled), atomic_load(&ctr->done_called),
                      atomic_load(&ctr->done_gone), atomic_load(&ctr->after_fired),
                      atomic_load(&ctr->after_gone), atomic_load(&ctr->stream_drains),
                      atomic_load(&ctr->stream_freed));
}

static const pfd_handler handlers[] = {
    {.name = "async", .handle = async_handle, .body = PFD_BODY_DROP},
    {.name = "after", .handle = after_handle, .body = PFD_BODY_DROP},
    {.name = "stream", .handle = stream_handle, .body = PFD_BODY_DROP},
    {.name = "stream_async", .handle = stream_async_handle, .body = PFD_BODY_DROP},
    {.name = "params", .handle = params_handle, .body = PFD_BODY_DROP},
    {.name = "stats", .handle = stats_handle, .body = PFD_BODY_DROP},
    {0},
};

const pfd_app preforkd_module = {
    .api_version = PFD_API_VERSION,
    .name = "apitest",
    .handlers = handlers,
    .init = init,
};
