/* apitest: a module that exercises the application API for the integration
 * tests (tests/integration/test_api.py). Counters in a shared region tell the
 * tests what ran, in which process, and whether a client was still there.
 *
 *   async?ms=N       inline; pfd_async: the work sleeps N ms on the pool
 *                    (cancellable), done answers on the loop
 *   after?ms=N       inline; answers from a pfd_after timer: no thread waits
 *   stream?n=K&size=B  inline stream of K pieces of B bytes, written as the
 *                    client drains them (pfd_on_drain)
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
    _Atomic unsigned long stream_drains;
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
    pfd_printf(r, "waited %ld ms\n", (long)(intptr_t)arg);
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

static void stream_more(pfd_req *r, void *arg) {
    struct stream *s = arg;
    while (s->left > 0) {
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
}

static int stream_handle(pfd_req *r) {
    struct stream *s = pfd_alloc(r, sizeof *s);
    if (!s) return PFD_ERROR;
    s->left = number(r, "n", 4);
    s->size = number(r, "size", 16);
    if (s->size <= 0 || s->size > 1 << 20 || s->left < 0) return pfd_error(r, 400);
    if (!(s->piece = pfd_alloc(r, (size_t)s->size))) return PFD_ERROR;
    memset(s->piece, 'y', (size_t)s->size);
    pfd_content_type(r, "application/octet-stream");
    if (pfd_stream_begin(r) < 0) return PFD_ERROR;
    stream_more(r, s);
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
                      "\"after_gone\": %lu, \"stream_drains\": %lu}\n",
                      atomic_load(&ctr->work_started), atomic_load(&ctr->work_finished),
                      atomic_load(&ctr->work_cancelled), atomic_load(&ctr->done_called),
                      atomic_load(&ctr->done_gone), atomic_load(&ctr->after_fired),
                      atomic_load(&ctr->after_gone), atomic_load(&ctr->stream_drains));
}

static const pfd_handler handlers[] = {
    {.name = "async", .handle = async_handle, .body = PFD_BODY_DROP},
    {.name = "after", .handle = after_handle, .body = PFD_BODY_DROP},
    {.name = "stream", .handle = stream_handle, .body = PFD_BODY_DROP},
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
