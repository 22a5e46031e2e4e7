/* observe: /status, /metrics, /healthz and /readyz from the scoreboard. */
#include "workers/observe.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/scoreboard.h"
#include "workers/exchange.h"
#include "workers/json.h"
#include "workers/route.h"

static const struct exchange *exchange_of(const pfd_req *r) {
    return (const struct exchange *)r; /* what a pfd_req is (api.c) */
}

static const char *const class_names[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const conn_state_names[SB_CONN_N] = {"reading", "writing", "idle", "lingering"};

static int put_file(void *arg, const char *p, size_t len) {
    return fwrite(p, 1, len, arg) == len ? 0 : -1;
}

static void json_str(FILE *f, const char *s) {
    json_string(s, strlen(s), false, put_file, f);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* GET and HEAD only; 1 when the request was answered here (405). */
static int refuse_method(pfd_req *r) {
    enum pfd_method m = pfd_method_id(r);
    if (m == PFD_GET || m == PFD_HEAD) return 0;
    pfd_error(r, 405);
    pfd_header_add(r, "Allow", "GET, HEAD");
    return 1;
}

/* The whole body at once, from a memory stream. */
static int send_stream(pfd_req *r, FILE *f, char **buf, size_t *len, const char *type) {
    bool failed = ferror(f);
    /* *buf and *len are final once the stream is closed */
    if (fclose(f) != 0 || failed) {
        free(*buf);
        return pfd_error(r, 500);
    }
    pfd_content_type(r, type);
    pfd_header_add(r, "Cache-Control", "no-store");
    int rc = pfd_write(r, *buf, *len);
    free(*buf);
    return rc;
}

/* ---- /status ------------------------------------------------------------ */

static void json_hist(FILE *f, const uint64_t *b, uint64_t sum_us) {
    uint64_t count = 0;
    fputs("{\"buckets\": [", f);
    for (unsigned i = 0; i < SB_BUCKETS; i++) {
        fprintf(f, "%s%" PRIu64, i ? "," : "", b[i]);
        count += b[i];
    }
    fprintf(f, "], \"sum_s\": %.6f, \"count\": %" PRIu64 "}", (double)sum_us / 1e6, count);
}

static void json_classes(FILE *f, const uint64_t *c) {
    fputc('{', f);
    for (unsigned i = 0; i < 5; i++)
        fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", class_names[i], c[i]);
    fputc('}', f);
}

static void json_conns(FILE *f, unsigned open, const unsigned *conns) {
    fprintf(f, "{\"open\": %u", open);
    for (unsigned i = 0; i < SB_CONN_N; i++)
        fprintf(f, ", \"%s\": %u", conn_state_names[i], conns[i]);
    fputc('}', f);
}

static void json_routes(FILE *f, const struct sb_route_view *routes, unsigned n) {
    fputc('[', f);
    for (unsigned i = 0; i < n; i++) {
        const uint64_t *c = routes[i].c;
        fputs(i ? ",\n    {\"route\": " : "\n    {\"route\": ", f);
        json_str(f, routes[i].path);
        fprintf(f, ", \"requests\": %" PRIu64 ", \"status\": ", c[SBR_REQUESTS]);
        json_classes(f, c + SBR_STATUS);
        fputs(", \"latency\": ", f);
        json_hist(f, c + SBR_LATENCY, c[SBR_LATENCY_SUM]);
        fputc('}', f);
    }
    fputc(']', f);
}

/* What totals and worker slots share: the counters. */
static void json_counters(FILE *f, const uint64_t *c) {
    fprintf(f,
            "\"accepted\": %" PRIu64 ", \"requests\": %" PRIu64 ", \"bytes_in\": %" PRIu64
            ", \"bytes_out\": %" PRIu64 ", \"status\": ",
            c[SBC_ACCEPTED], c[SBC_REQUESTS], c[SBC_BYTES_IN], c[SBC_BYTES_OUT]);
    json_classes(f, c + SBC_STATUS);
    fputs(", \"latency\": ", f);
    json_hist(f, c + SBC_LATENCY, c[SBC_LATENCY_SUM]);
    fprintf(f, ", \"pool\": {\"jobs\": %" PRIu64 ", \"wait\": ", c[SBC_POOL_JOBS]);
    json_hist(f, c + SBC_POOL_WAIT, c[SBC_POOL_WAIT_SUM]);
    fputs("}, \"closed\": {", f);
    for (unsigned i = 0; i < SB_CLOSE_N; i++)
        fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", sb_close_names[i], c[SBC_CLOSED + i]);
    fputc('}', f);
}

static void json_config(FILE *f, const struct conf *c, unsigned workers) {
    fprintf(f, "{\"workers\": %u, \"workers_auto\": %s, \"threads\": %u, \"listen\": [", workers,
            c->workers ? "false" : "true", c->threads);
    for (size_t i = 0; i < c->nlisten; i++) {
        if (i) fputs(", ", f);
        json_str(f, c->listen[i]);
    }
    fprintf(f,
            "], \"max_connections\": %u, \"keepalive_timeout_ms\": %u, \"keepalive_requests\": "
            "%u, \"request_timeout_ms\": %u, \"max_body_size\": %" PRIu64 ", \"routes\": [",
            c->max_connections, c->keepalive_timeout, c->keepalive_requests, c->request_timeout,
            c->max_body_size);
    for (size_t i = 0; i < c->nroutes; i++) {
        const struct conf_route *rt = &c->routes[i];
        fputs(i ? ", {\"path\": " : "{\"path\": ", f);
        json_str(f, rt->prefix);
        fputs(", \"handler\": ", f);
        json_str(f, rt->handler ? rt->handler : "");
        fprintf(f, ", \"mode\": \"%s\"}", rt->mode == ROUTE_POOL ? "pool" : "inline");
    }
    fputs("]}", f);
}

static void json_worker(FILE *f, const struct sb_worker_view *w, uint64_t now_ms) {
    fprintf(f,
            "{\"slot\": %u, \"pid\": %d, \"state\": \"%s\", \"generation\": %u, "
            "\"uptime_s\": %.3f, \"heartbeat_age_ms\": %" PRIu64 ", \"connections\": %u, "
            "\"conns\": ",
            w->slot, w->pid, sb_state_names[w->state & 3], w->generation,
            now_ms > w->started_ms ? (double)(now_ms - w->started_ms) / 1e3 : 0.0,
            now_ms > w->heartbeat_ms ? now_ms - w->heartbeat_ms : 0, w->connections);
    json_conns(f, w->connections, w->conns);
    fprintf(f,
            ", \"pool_threads\": %u, \"pool_busy\": %u, \"pool_queued\": %u, \"pool_stuck\": %u, ",
            w->pool_threads, w->pool_busy, w->pool_queued, w->pool_stuck);
    json_counters(f, w->c);
    fputs(", \"routes\": ", f);
    json_routes(f, w->routes, w->nroutes);
    fputc('}', f);
}

/* A view of the board and a memory stream to write the answer in: 0, or
 * -1 when the request was answered already (405, or 500 when memory is
 * short). */
static int open_answer(pfd_req *r, struct sb_view **v, FILE **f, char **buf, size_t *len) {
    if (refuse_method(r)) return -1;
    if (!(*v = sb_read(scoreboard_get()))) {
        pfd_error(r, 500);
        return -1;
    }
    *buf = NULL;
    *len = 0;
    if (!(*f = open_memstream(buf, len))) {
        sb_view_free(*v);
        pfd_error(r, 500);
        return -1;
    }
    return 0;
}

static int status_handle(pfd_req *r) {
    struct sb_view *v;
    FILE *f;
    char *buf;
    size_t len;
    if (open_answer(r, &v, &f, &buf, &len) < 0) return PFD_OK;
    const struct route *rt = (const struct route *)pfd_req_route(r);
    const struct sb_slot *me = exchange_of(r)->env->slot;
    unsigned generation = atomic_load_explicit(&me->generation, memory_order_relaxed), serving = 0;
    bool draining = atomic_load_explicit(&me->draining, memory_order_relaxed);
    for (unsigned i = 0; i < v->nworkers; i++)
        serving += v->workers[i].generation == generation && v->workers[i].state != SLOT_STOPPING;
    double now = now_s();
    fprintf(f,
            "{\"server\": \"preforkd\", \"version\": \"%s\", \"master_pid\": %d, "
            "\"generation\": %u, \"uptime_s\": %.3f, \"time\": %.3f, \"draining\": %s,\n"
            "\"config\": ",
            PREFORKD_VERSION, (int)getppid(), generation, now - (double)v->born_ms / 1e3, now,
            draining ? "true" : "false");
    json_config(f, rt->cfg, serving);
    fputs(",\n\"latency_bounds_s\": [", f);
    for (unsigned i = 0; i < SB_BUCKETS - 1; i++)
        fprintf(f, "%s%g", i ? "," : "", (double)sb_bucket_us[i] / 1e6);
    fputs("],\n\"totals\": {", f);
    json_counters(f, v->c);
    fputs(", \"conns\": ", f);
    json_conns(f, v->connections, v->conns);
    fprintf(f, ", \"pool_threads\": %u, \"pool_busy\": %u, \"pool_queued\": %u, \"pool_stuck\": %u",
            v->pool_threads, v->pool_busy, v->pool_queued, v->pool_stuck);
    fputs(", \"routes\": ", f);
    json_routes(f, v->routes, v->nroutes);
    fputs("},\n\"workers\": [", f);
    uint64_t mono = monotonic_ms();
    for (unsigned i = 0; i < v->nworkers; i++) {
        fputs(i ? ",\n  " : "\n  ", f);
        json_worker(f, &v->workers[i], mono);
    }
    fputs("\n]}\n", f);
    sb_view_free(v);
    return send_stream(r, f, &buf, &len, "application/json");
}

const pfd_handler status_handler = {
    .name = "status",
    .handle = status_handle,
    .body = PFD_BODY_DROP,
};

/* ---- /metrics ----------------------------------------------------------- */

/* A label value: \, " and newline escaped (exposition format 0.0.4). */
static void label_value(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    while (left) {
        size_t n = *p < 0x80 ? 1 : json_utf8_len(p, left);
        if (n == 0) { /* not UTF-8, which a scrape refuses whole */
            fputs("\xef\xbf\xbd", f);
            n = 1;
        } else if (*p == '\\' || *p == '"') {
            fprintf(f, "\\%c", *p);
        } else if (*p == '\n') {
            fputs("\\n", f);
        } else {
            fwrite(p, 1, n, f);
        }
        p += n;
        left -= n;
    }
}

static void family(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One histogram's series; labels is "" or 'name="value",'. */
static void histogram(FILE *f, const char *name, const char *labels, const uint64_t *b,
                      uint64_t sum_us) {
    uint64_t cum = 0;
    for (unsigned i = 0; i < SB_BUCKETS; i++) {
        cum += b[i];
        if (i < SB_BUCKETS - 1)
            fprintf(f, "%s_bucket{%sle=\"%g\"} %" PRIu64 "\n", name, labels,
                    (double)sb_bucket_us[i] / 1e6, cum);
        else
            fprintf(f, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, cum);
    }
    size_t n = strlen(labels);
    /* the labels without their trailing comma, for _sum and _count */
    fprintf(f, "%s_sum%s%.*s%s %.6f\n", name, n ? "{" : "", n ? (int)n - 1 : 0, labels,
            n ? "}" : "", (double)sum_us / 1e6);
    fprintf(f, "%s_count%s%.*s%s %" PRIu64 "\n", name, n ? "{" : "", n ? (int)n - 1 : 0, labels,
            n ? "}" : "", cum);
}

/* The server-wide counters: never reset (they hold exited workers). */
static void metrics_totals(FILE *f, const struct sb_view *v) {
    static const struct {
        enum sb_counter i;
        const char *name, *help;
    } plain[] = {
        {SBC_ACCEPTED, "preforkd_connections_accepted_total", "Connections accepted."},
        {SBC_REQUESTS, "preforkd_requests_total",
         "Requests ended: answered, refused or abandoned by their client."},
        {SBC_BYTES_IN, "preforkd_received_bytes_total", "Bytes read from clients."},
        {SBC_BYTES_OUT, "preforkd_sent_bytes_total", "Bytes written to clients."},
        {SBC_POOL_JOBS, "preforkd_pool_jobs_total", "Jobs the thread pools started."},
    };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        family(f, plain[i].name, "counter", plain[i].help);
        fprintf(f, "%s %" PRIu64 "\n", plain[i].name, v->c[plain[i].i]);
    }
    family(f, "preforkd_responses_total", "counter", "Answers by status class.");
    for (unsigned i = 0; i < 5; i++)
        fprintf(f, "preforkd_responses_total{class=\"%s\"} %" PRIu64 "\n", class_names[i],
                v->c[SBC_STATUS + i]);
    family(f, "preforkd_connections_closed_total", "counter",
           "Connections closed, by why they closed.");
    for (unsigned i = 0; i < SB_CLOSE_N; i++)
        fprintf(f, "preforkd_connections_closed_total{reason=\"%s\"} %" PRIu64 "\n",
                sb_close_names[i], v->c[SBC_CLOSED + i]);
    family(f, "preforkd_request_duration_seconds", "histogram",
           "Time from a request's first byte to its answer queued.");
    histogram(f, "preforkd_request_duration_seconds", "", v->c + SBC_LATENCY,
              v->c[SBC_LATENCY_SUM]);
    family(f, "preforkd_pool_wait_seconds", "histogram", "Time a pool job waited for a thread.");
    histogram(f, "preforkd_pool_wait_seconds", "", v->c + SBC_POOL_WAIT, v->c[SBC_POOL_WAIT_SUM]);
    family(f, "preforkd_connections", "gauge", "Open connections by state.");
    for (unsigned i = 0; i < SB_CONN_N; i++)
        fprintf(f, "preforkd_connections{state=\"%s\"} %u\n", conn_state_names[i], v->conns[i]);
    family(f, "preforkd_pool_threads", "gauge", "Pool threads.");
    fprintf(f, "preforkd_pool_threads %u\n", v->pool_threads);
    family(f, "preforkd_pool_busy_threads", "gauge", "Pool threads running a job.");
    fprintf(f, "preforkd_pool_busy_threads %u\n", v->pool_busy);
    family(f, "preforkd_pool_queued_jobs", "gauge", "Jobs waiting for a pool thread.");
    fprintf(f, "preforkd_pool_queued_jobs %u\n", v->pool_queued);
    family(f, "preforkd_pool_stuck_jobs", "gauge", "Handlers still running past request_timeout.");
    fprintf(f, "preforkd_pool_stuck_jobs %u\n", v->pool_stuck);
}

/* Per worker: each series is one process (worker slot and pid), from 0. */
static void metrics_workers(FILE *f, const struct sb_view *v) {
    family(f, "preforkd_workers", "gauge", "Worker processes by state.");
    for (int st = SLOT_STARTING; st <= SLOT_STOPPING; st++) {
        unsigned n = 0;
        for (unsigned i = 0; i < v->nworkers; i++) n += v->workers[i].state == st;
        fprintf(f, "preforkd_workers{state=\"%s\"} %u\n", sb_state_names[st], n);
    }
    family(f, "preforkd_worker_requests_total", "counter", "Requests ended, per worker process.");
    for (unsigned i = 0; i < v->nworkers; i++)
        fprintf(f, "preforkd_worker_requests_total{worker=\"%u\",pid=\"%d\"} %" PRIu64 "\n",
                v->workers[i].slot, v->workers[i].pid, v->workers[i].c[SBC_REQUESTS]);
    family(f, "preforkd_worker_connections_accepted_total", "counter",
           "Connections accepted, per worker process.");
    for (unsigned i = 0; i < v->nworkers; i++)
        fprintf(
            f, "preforkd_worker_connections_accepted_total{worker=\"%u\",pid=\"%d\"} %" PRIu64 "\n",
            v->workers[i].slot, v->workers[i].pid, v->workers[i].c[SBC_ACCEPTED]);
    family(f, "preforkd_worker_responses_total", "counter",
           "Answers by status class, per worker process.");
    for (unsigned i = 0; i < v->nworkers; i++)
        for (unsigned k = 0; k < 5; k++)
            fprintf(f,
                    "preforkd_worker_responses_total{worker=\"%u\",pid=\"%d\",class=\"%s\"} "
                    "%" PRIu64 "\n",
                    v->workers[i].slot, v->workers[i].pid, class_names[k],
                    v->workers[i].c[SBC_STATUS + k]);
    family(f, "preforkd_worker_connections", "gauge", "Open connections by state, per worker.");
    for (unsigned i = 0; i < v->nworkers; i++)
        for (unsigned k = 0; k < SB_CONN_N; k++)
            fprintf(f, "preforkd_worker_connections{worker=\"%u\",pid=\"%d\",state=\"%s\"} %u\n",
                    v->workers[i].slot, v->workers[i].pid, conn_state_names[k],
                    v->workers[i].conns[k]);
    family(f, "preforkd_worker_pool_busy_threads", "gauge",
           "Pool threads running a job, per worker.");
    for (unsigned i = 0; i < v->nworkers; i++)
        fprintf(f, "preforkd_worker_pool_busy_threads{worker=\"%u\",pid=\"%d\"} %u\n",
                v->workers[i].slot, v->workers[i].pid, v->workers[i].pool_busy);
    family(f, "preforkd_worker_pool_queued_jobs", "gauge",
           "Jobs waiting for a thread, per worker.");
    for (unsigned i = 0; i < v->nworkers; i++)
        fprintf(f, "preforkd_worker_pool_queued_jobs{worker=\"%u\",pid=\"%d\"} %u\n",
                v->workers[i].slot, v->workers[i].pid, v->workers[i].pool_queued);
    family(f, "preforkd_worker_heartbeat_age_seconds", "gauge",
           "Time since the worker's loop last beat.");
    uint64_t mono = monotonic_ms();
    for (unsigned i = 0; i < v->nworkers; i++) {
        uint64_t beat = v->workers[i].heartbeat_ms;
        fprintf(f, "preforkd_worker_heartbeat_age_seconds{worker=\"%u\",pid=\"%d\"} %.3f\n",
                v->workers[i].slot, v->workers[i].pid,
                mono > beat ? (double)(mono - beat) / 1e3 : 0.0);
    }
}

/* Per route, by path (totals: never reset). */
static void metrics_routes(FILE *f, const struct sb_view *v) {
    family(f, "preforkd_route_requests_total", "counter", "Requests ended, per route.");
    for (unsigned i = 0; i < v->nroutes; i++) {
        fputs("preforkd_route_requests_total{route=\"", f);
        label_value(f, v->routes[i].path);
        fprintf(f, "\"} %" PRIu64 "\n", v->routes[i].c[SBR_REQUESTS]);
    }
    family(f, "preforkd_route_responses_total", "counter", "Answers by status class, per route.");
    for (unsigned i = 0; i < v->nroutes; i++)
        for (unsigned k = 0; k < 5; k++) {
            fputs("preforkd_route_responses_total{route=\"", f);
            label_value(f, v->routes[i].path);
            fprintf(f, "\",class=\"%s\"} %" PRIu64 "\n", class_names[k],
                    v->routes[i].c[SBR_STATUS + k]);
        }
    family(f, "preforkd_route_request_duration_seconds", "histogram",
           "Time from a request's first byte to its answer queued, per route.");
    for (unsigned i = 0; i < v->nroutes; i++) {
        char *labels = NULL;
        size_t len = 0;
        FILE *l = open_memstream(&labels, &len);
        if (!l) continue;
        fputs("route=\"", l);
        label_value(l, v->routes[i].path);
        fputs("\",", l);
        fclose(l);
        histogram(f, "preforkd_route_request_duration_seconds", labels,
                  v->routes[i].c + SBR_LATENCY, v->routes[i].c[SBR_LATENCY_SUM]);
        free(labels);
    }
}

static int metrics_handle(pfd_req *r) {
    struct sb_view *v;
    FILE *f;
    char *buf;
    size_t len;
    if (open_answer(r, &v, &f, &buf, &len) < 0) return PFD_OK;
    family(f, "preforkd_info", "gauge", "The server's version.");
    fprintf(f, "preforkd_info{version=\"%s\"} 1\n", PREFORKD_VERSION);
    family(f, "preforkd_start_time_seconds", "gauge",
           "When the first master started (binary upgrades keep it).");
    fprintf(f, "preforkd_start_time_seconds %.3f\n", (double)v->born_ms / 1e3);
    family(f, "preforkd_draining", "gauge", "1 while a stop drains.");
    fprintf(f, "preforkd_draining %d\n", atomic_load(&exchange_of(r)->env->slot->draining) ? 1 : 0);
    metrics_totals(f, v);
    metrics_workers(f, v);
    metrics_routes(f, v);
    sb_view_free(v);
    return send_stream(r, f, &buf, &len, "text/plain; version=0.0.4; charset=utf-8");
}

const pfd_handler metrics_handler = {
    .name = "metrics",
    .handle = metrics_handle,
    .body = PFD_BODY_DROP,
};

/* ---- /healthz, /readyz ---------------------------------------------------- */

static int healthz_handle(pfd_req *r) {
    if (refuse_method(r)) return PFD_OK;
    pfd_header_add(r, "Cache-Control", "no-store");
    return pfd_text(r, 200, "ok\n");
}

const pfd_handler healthz_handler = {
    .name = "healthz",
    .handle = healthz_handle,
    .body = PFD_BODY_DROP,
};

static int readyz_handle(pfd_req *r) {
    if (refuse_method(r)) return PFD_OK;
    const struct sb_slot *me = exchange_of(r)->env->slot;
    bool draining = atomic_load_explicit(&me->draining, memory_order_relaxed) ||
                    atomic_load_explicit(&me->state, memory_order_relaxed) != SLOT_SERVING;
    pfd_header_add(r, "Cache-Control", "no-store");
    if (draining) {
        pfd_close_after(r);
        return pfd_text(r, 503, "draining\n");
    }
    return pfd_text(r, 200, "ready\n");
}

const pfd_handler readyz_handler = {
    .name = "readyz",
    .handle = readyz_handle,
    .body = PFD_BODY_DROP,
};
