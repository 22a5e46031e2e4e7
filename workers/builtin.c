/* builtin: small handlers that ship with the server.
 *
 *   sleep   GET ?ms=N[&chunks=K[&size=B]]: waits N ms on a pool thread, then
 *           answers (or streams K chunks over N ms, of B bytes each when
 *           size is given); shows that slow work on the pool
 *           does not stall the loop. Always mode = pool. Stops waiting when
 *           its client goes away.
 *   echo    answers with the request body (any method); a load-test target
 *           for uploads.
 *   status  the scoreboard as JSON: per worker pid, requests, connections.
 *   fault   only in builds configured with PREFORKD_FAULT_HANDLER (the test
 *           builds): GET ?kind=segv|abort crashes the worker from handler
 *           code, so tests can show a crash costs only that worker;
 *           ?kind=hang&ms=N blocks N ms, deaf to cancellation (a stuck
 *           handler, in mode = pool); ?kind=touch&ms=N reads its route's
 *           memory every millisecond for N ms (a handler outliving a stop).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "server/scoreboard.h"
#include "workers/route.h"

#define SLEEP_MAX_MS     600000
#define SLEEP_MAX_CHUNKS 100000
#define SLEEP_MAX_SIZE   (1024 * 1024)

/* The decimal value of query parameter name, or dflt when absent; -1 when
 * present but not a number in [0, max]. */
static long query_number(const struct http_request *req, const char *name, long dflt, long max) {
    const char *p = req->query.p, *end = p ? p + req->query.len : NULL;
    size_t nlen = strlen(name);
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pend = amp ? amp : end;
        if ((size_t)(pend - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
            long v = 0;
            const char *d = p + nlen + 1;
            if (d == pend) return -1;
            for (; d < pend; d++) {
                if (*d < '0' || *d > '9') return -1;
                v = v * 10 + (*d - '0');
                if (v > max) return -1;
            }
            return v;
        }
        p = amp ? amp + 1 : end;
    }
    return dflt;
}

static void sleep_handle(struct handler_call *call) {
    struct response *resp = call->resp;
    long ms = query_number(call->req, "ms", 100, SLEEP_MAX_MS);
    long chunks = query_number(call->req, "chunks", 0, SLEEP_MAX_CHUNKS);
    long size = query_number(call->req, "size", 0, SLEEP_MAX_SIZE);
    char text[64];
    if (ms < 0 || chunks < 0 || size < 0) {
        response_error(resp, 400);
        return;
    }
    resp->content_type = "text/plain";
    if (chunks == 0) {
        if (handler_wait(call, (unsigned)ms) < 0) return; /* nobody to answer */
        int n = snprintf(text, sizeof text, "slept %ld ms\n", ms);
        response_append(resp, text, (size_t)n);
        return;
    }
    resp->body = BODY_STREAM;
    char *filler = size ? malloc((size_t)size) : NULL;
    if (filler) memset(filler, 'x', (size_t)size);
    for (long i = 0; i < chunks; i++) {
        if (handler_wait(call, (unsigned)(ms / chunks)) < 0) break;
        int n = snprintf(text, sizeof text, "chunk %ld of %ld\n", i + 1, chunks);
        /* size=N: pieces of N bytes, for tests of slow readers */
        if (filler ? handler_stream_write(call, filler, (size_t)size) < 0
                   : handler_stream_write(call, text, (size_t)n) < 0)
            break; /* client gone */
    }
    free(filler);
}

const struct handler sleep_handler = {
    .name = "sleep",
    .handle = sleep_handle,
};

static void echo_handle(struct handler_call *call) {
    const struct http_request *req = call->req;
    struct response *resp = call->resp;
    const struct http_str *type = http_find(req, "content-type");
    resp->content_type = type ? NULL : "application/octet-stream";
    if (type) response_header(resp, "Content-Type", "%.*s", (int)type->len, type->p);
    if (response_append(resp, req->body.p, req->body.len) < 0) response_error(resp, 500);
}

const struct handler echo_handler = {
    .name = "echo",
    .wants_body = true,
    .handle = echo_handle,
};

static void status_handle(struct handler_call *call) {
    struct response *resp = call->resp;
    struct scoreboard *sb = scoreboard_get();
    char line[512];
    uint64_t now = monotonic_ms();
    int n;
    if (call->req->method != METHOD_GET && call->req->method != METHOD_HEAD) {
        response_error(resp, 405);
        response_header(resp, "Allow", "GET, HEAD");
        return;
    }
    resp->content_type = "application/json";
    response_append(resp, "{\"workers\": [", 13);
    bool first = true;
    for (unsigned i = 0; sb && i < sb->nslots; i++) {
        struct sb_slot *s = &sb->slots[i];
        int state = atomic_load_explicit(&s->state, memory_order_relaxed);
        if (state == SLOT_FREE) continue;
        static const char *const names[] = {"free", "starting", "serving", "stopping"};
        uint64_t beat = s->heartbeat_ms; /* written by another process just now, maybe */
        n = snprintf(line, sizeof line,
                     "%s\n  {\"slot\": %u, \"pid\": %d, \"state\": \"%s\", \"generation\": %u, "
                     "\"requests\": %" PRIu64 ", \"accepted\": %" PRIu64 ", \"connections\": %u, "
                     "\"pool_busy\": %u, \"pool_queued\": %u, \"pool_stuck\": %u, "
                     "\"heartbeat_age_ms\": %" PRIu64 "}",
                     first ? "" : ",", i, s->pid, names[state], s->generation,
                     (uint64_t)s->requests, (uint64_t)s->accepted, s->connections, s->pool_busy,
                     s->pool_queued, s->pool_stuck, now > beat ? now - beat : 0);
        response_append(resp, line, (size_t)n);
        first = false;
    }
    response_append(resp, "\n]}\n", 4);
}

const struct handler status_handler = {
    .name = "status",
    .handle = status_handle,
};

#ifdef PREFORKD_FAULT_HANDLER
/* A store into a page mapped without access: a real memory fault, which
 * neither the compiler nor UndefinedBehaviorSanitizer's null check can turn
 * into something else (a store through NULL would be a UBSan report and an
 * exit status under scripts/test, not the SIGSEGV this stands for). */
static void fault_segv(void) {
    volatile int *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) abort();
    *page = 1;
}

/* A handler that ignores cancellation: it sleeps ms whatever happens, as a
 * handler stuck in a blocking call would. */
static void fault_hang(struct handler_call *call) {
    long ms = query_number(call->req, "ms", 1000, SLEEP_MAX_MS);
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    response_append(call->resp, "hung\n", 5);
}

/* A handler that reads its route's memory every millisecond for ms: what a
 * handler still running at a fast stop may do. */
static void fault_touch(struct handler_call *call) {
    long ms = query_number(call->req, "ms", 1000, SLEEP_MAX_MS);
    volatile char sink = 0;
    for (long i = 0; i < ms; i++) {
        sink ^= call->route->prefix[0] ^ call->route->conf->prefix[0];
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    response_append(call->resp, "touched\n", 8);
}

static void fault_handle(struct handler_call *call) {
    const struct http_str *q = &call->req->query;
    if (q->len == 10 && memcmp(q->p, "kind=abort", 10) == 0) abort();
    if (q->len == 9 && memcmp(q->p, "kind=segv", 9) == 0) fault_segv();
    if (q->len >= 9 && memcmp(q->p, "kind=hang", 9) == 0) {
        fault_hang(call);
        return;
    }
    if (q->len >= 10 && memcmp(q->p, "kind=touch", 10) == 0) {
        fault_touch(call);
        return;
    }
    response_error(call->resp, 400);
}

const struct handler fault_handler = {
    .name = "fault",
    .handle = fault_handle,
};
#endif
