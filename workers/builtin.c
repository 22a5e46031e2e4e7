/* builtin: small handlers that ship with the server, written on the public
 * API (preforkd.h) like any application's.
 *
 *   sleep   GET ?ms=N[&chunks=K[&size=B]]: waits N ms on a pool thread, then
 *           answers (or streams K chunks over N ms, of B bytes each when
 *           size is given); shows that slow work on the pool does not stall
 *           the loop. Always mode = pool. Stops waiting when its client goes
 *           away.
 *   echo    is in loadtest.c (a load-test target with fortio's parameters).
 *   fault   only in builds configured with PREFORKD_FAULT_HANDLER (the test
 *           builds): GET ?kind=segv|abort crashes the worker from handler
 *           code, so tests can show a crash costs only that worker;
 *           ?kind=hang&ms=N blocks N ms, deaf to cancellation (a stuck
 *           handler, in mode = pool); ?kind=touch&ms=N reads its route's
 *           memory every millisecond for N ms (a handler outliving a stop);
 *           ?kind=error returns PFD_ERROR, ?kind=header adds a header value
 *           with CR LF (both: 500). Route settings start = fail makes a
 *           worker's start fail, start = wait holds it until start_file
 *           exists.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "workers/handlers.h"
#include "workers/preforkd.h"

#define SLEEP_MAX_MS     600000
#define SLEEP_MAX_CHUNKS 100000
#define SLEEP_MAX_SIZE   (1024 * 1024)

/* The decimal value of query parameter name, or dflt when absent; -1 when
 * present but not a number in [0, max]. */
static long query_number(pfd_req *r, const char *name, long dflt, long max) {
    pfd_str v;
    int found = pfd_query_param(r, name, &v);
    if (found == 0) return dflt;
    if (found < 0 || v.len == 0) return -1;
    long n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9') return -1;
        n = n * 10 + (v.p[i] - '0');
        if (n > max) return -1;
    }
    return n;
}

static int sleep_handle(pfd_req *r) {
    long ms = query_number(r, "ms", 100, SLEEP_MAX_MS);
    long chunks = query_number(r, "chunks", 0, SLEEP_MAX_CHUNKS);
    long size = query_number(r, "size", 0, SLEEP_MAX_SIZE);
    if (ms < 0 || chunks < 0 || size < 0) return pfd_error(r, 400);
    pfd_content_type(r, "text/plain");
    if (chunks == 0) {
        if (pfd_sleep(r, (unsigned)ms) < 0) return PFD_OK; /* nobody to answer */
        return pfd_printf(r, "slept %ld ms\n", ms);
    }
    pfd_stream_begin(r);
    char *filler = size ? malloc((size_t)size) : NULL;
    if (filler) memset(filler, 'x', (size_t)size);
    for (long i = 0; i < chunks; i++) {
        if (pfd_sleep(r, (unsigned)(ms / chunks)) < 0) break;
        char text[64];
        int n = snprintf(text, sizeof text, "chunk %ld of %ld\n", i + 1, chunks);
        /* size=N: pieces of N bytes, for tests of slow readers */
        if (filler ? pfd_stream_write(r, filler, (size_t)size) < 0
                   : pfd_stream_write(r, text, (size_t)n) < 0)
            break; /* client gone */
    }
    free(filler);
    pfd_stream_end(r);
    return PFD_OK;
}

const pfd_handler sleep_handler = {
    .name = "sleep",
    .handle = sleep_handle,
    .mode = PFD_POOL,
    .pool_only = true, /* sleeping on the loop thread would stall every connection */
    .body = PFD_BODY_DROP,
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

/* Sleeps ms whatever happens, as a handler stuck in a blocking call would. */
static void fault_hang(long ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Reads its route's memory every millisecond for ms: what a handler still
 * running at a fast stop may do. */
static void fault_touch(pfd_req *r, long ms) {
    volatile char sink = 0;
    for (long i = 0; i < ms; i++) {
        sink ^= pfd_route_path(pfd_req_route(r))[0];
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int fault_handle(pfd_req *r) {
    pfd_str kind;
    if (pfd_query_param(r, "kind", &kind) != 1) return pfd_error(r, 400);
    long ms = query_number(r, "ms", 1000, SLEEP_MAX_MS);
    if (strcmp(kind.p, "abort") == 0) abort();
    if (strcmp(kind.p, "segv") == 0) fault_segv();
    if (strcmp(kind.p, "hang") == 0 && ms >= 0) {
        fault_hang(ms);
        return pfd_text(r, 200, "hung\n");
    }
    if (strcmp(kind.p, "touch") == 0 && ms >= 0) {
        fault_touch(r, ms);
        return pfd_text(r, 200, "touched\n");
    }
    if (strcmp(kind.p, "error") == 0) return PFD_ERROR; /* a handler that fails */
    if (strcmp(kind.p, "header") == 0) {
        /* a response splitting attempt: refused, the client gets 500 */
        pfd_header_add(r, "X-Split", "a\r\nSet-Cookie: evil=1");
        return pfd_text(r, 200, "not sent\n");
    }
    return pfd_error(r, 400);
}

/* A worker that cannot start, or is slow to: start = fail makes the init
 * fail; start = wait holds it until start_file exists (tests of reloads and
 * upgrades whose workers do not serve). */
static int fault_init(pfd_route *rt, char *err, size_t errlen) {
    const char *start = pfd_route_setting(rt, "start");
    const char *file = pfd_route_setting(rt, "start_file");
    if (!start) return 0;
    if (strcmp(start, "fail") == 0) {
        snprintf(err, errlen, "fault: told to fail at start");
        return -1;
    }
    while (strcmp(start, "wait") == 0 && file && access(file, F_OK) != 0) {
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static const char *const fault_settings[] = {"start", "start_file", NULL};

const pfd_handler fault_handler = {
    .name = "fault",
    .handle = fault_handle,
    .body = PFD_BODY_DROP,
    .settings = fault_settings,
    .init = fault_init,
};
#endif
