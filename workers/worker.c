/* worker: the event loop, accepting, signals and the once-a-second tick. */
#include "workers/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "server/log.h"
#include "workers/accesslog.h"
#include "workers/conn.h"
#include "workers/gzip.h"
#include "workers/handlers.h"
#include "workers/pool.h"

/* Connections taken per accept event, so one busy listener cannot starve
 * the connections already open. */
#define ACCEPT_BATCH 64
/* Pause before accepting again when out of file descriptors. */
#define ACCEPT_RETRY_MS 200
/* ... and the shortest time between two warnings about it. */
#define ACCEPT_LOG_MS 5000
/* Fair accepting between workers sharing a socket: a worker holding this
 * many connections more than the least loaded live peer of its generation
 * steps back for ACCEPT_DEFER_MS, at most ACCEPT_MAX_DEFERS times in a row
 * (so a slow peer cannot leave a connection waiting for long). */
#define ACCEPT_SLACK      2
#define ACCEPT_DEFER_MS   2
#define ACCEPT_MAX_DEFERS 5
#define PEER_STALE_MS     2000
/* Allocations this large are mmapped and given back to the system when
 * freed. Setting it also turns off glibc's raising of the threshold after
 * large frees, which would keep a burst's memory in the heap for good. */
#define MMAP_THRESHOLD (128 * 1024)

static void accept_enable(struct worker *w, bool on) {
    if (w->accepting == on || (on && w->stopping)) return;
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (on)
            event_add(w->accept_evs[i], NULL);
        else
            event_del(w->accept_evs[i]);
    }
    w->accepting = on;
}

/* Whether this worker holds more than its share: the kernel wakes every
 * worker for a new connection, and without this the first to run takes
 * them all. Peers are read from the scoreboard. */
static bool over_fair_share(struct worker *w) {
    struct scoreboard *sb = scoreboard_get();
    unsigned high = sb ? atomic_load_explicit(&sb->high, memory_order_relaxed) : 0;
    if (high <= 1) return false;
    unsigned generation = atomic_load_explicit(&w->slot->generation, memory_order_relaxed);
    unsigned least = UINT_MAX;
    uint64_t now = monotonic_ms();
    for (unsigned i = 0; i < high; i++) {
        struct sb_slot *s = &sb->slots[i];
        /* a beat may be newer than our reading of the clock: not stale */
        uint64_t beat = atomic_load_explicit(&s->heartbeat_ms, memory_order_relaxed);
        if (s == w->slot || atomic_load_explicit(&s->state, memory_order_relaxed) != SLOT_SERVING ||
            atomic_load_explicit(&s->generation, memory_order_relaxed) != generation ||
            (now > beat && now - beat > PEER_STALE_MS))
            continue;
        unsigned n = atomic_load_explicit(&s->connections, memory_order_relaxed);
        if (n < least) least = n;
    }
    return least != UINT_MAX && w->conns.n >= least + ACCEPT_SLACK;
}

static void on_accept(evutil_socket_t lfd, short what, void *arg) {
    struct worker *w = arg;
    /* the listener's options: a handful of listeners, a short walk */
    bool proxy = false;
    for (size_t i = 0; i < w->nlisteners; i++)
        if (w->listeners[i].fd == lfd) proxy = w->listeners[i].opts.proxy_protocol;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        if (w->conns.n >= w->conf->max_connections) {
            /* the rest wait in the backlog; resumed by on_conn_closed() */
            accept_enable(w, false);
            return;
        }
        if (w->accept_defers < ACCEPT_MAX_DEFERS && over_fair_share(w)) {
            static const struct timeval defer = {0, ACCEPT_DEFER_MS * 1000};
            w->accept_defers++;
            accept_enable(w, false);
            event_add(w->accept_retry, &defer);
            return;
        }
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        int fd = accept4(lfd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EAGAIN:
            case ECONNABORTED:
            case EPROTO: return;
            case EINTR: continue;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM: {
                /* no busy loop: stop accepting for a moment, or until a
                 * connection closes and frees a descriptor; said at most
                 * once in ACCEPT_LOG_MS, with how often it happened */
                static const struct timeval retry = {0, ACCEPT_RETRY_MS * 1000};
                uint64_t now = monotonic_ms();
                w->accept_pauses++;
                if (now - w->accept_logged_ms >= ACCEPT_LOG_MS) {
                    log_warn("accept: %s; pausing accepts for %d ms (%u time(s) since the last "
                             "report)",
                             strerror(errno), ACCEPT_RETRY_MS, w->accept_pauses);
                    w->accept_logged_ms = now;
                    w->accept_pauses = 0;
                }
                accept_enable(w, false);
                event_add(w->accept_retry, &retry);
                return;
            }
            default: log_error("accept: %s", strerror(errno)); return;
            }
        }
        w->accept_defers = 0;
        sb_add(&w->slot->c[SBC_ACCEPTED], 1);
        conn_accept(&w->conns, fd, (struct sockaddr *)&sa, len,
                    lfd == w->admin_fd ? &w->admin_routes : &w->routes, proxy);
    }
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg) {
    accept_enable(arg, true);
}

/* A connection closed: accepting may resume, a graceful stop may be done. */
static void on_conn_closed(void *arg) {
    struct worker *w = arg;
    if (w->stopping) {
        if (w->conns.n == 0) event_base_loopbreak(w->base);
        return;
    }
    if (!w->accepting && w->conns.n < w->conf->max_connections) {
        event_del(w->accept_retry);
        accept_enable(w, true);
    }
}

static void on_pool_kick(evutil_socket_t fd, short what, void *arg) {
    exchange_env_kick(arg);
}

static void on_pool(evutil_socket_t fd, short what, void *arg) {
    struct worker *w = arg;
    pool_complete(w->pool);
}

static void update_slot(struct worker *w) {
    atomic_store_explicit(&w->slot->heartbeat_ms, monotonic_ms(), memory_order_relaxed);
    conns_publish(&w->conns);
}

/* A pool thread took a job (under the pool's lock: one writer at a time). */
static void count_pool_wait(void *arg, uint64_t waited_us) {
    struct sb_slot *slot = arg;
    sb_add(&slot->c[SBC_POOL_JOBS], 1);
    sb_add(&slot->c[SBC_POOL_WAIT + sb_bucket(waited_us)], 1);
    sb_add(&slot->c[SBC_POOL_WAIT_SUM], waited_us);
}

/* The slot's route entries, named after the configuration's routes in their
 * order (the route counters index them by it). */
static void name_slot_routes(struct sb_slot *slot, const struct conf *c) {
    size_t n = c->nroutes < SB_ROUTES ? c->nroutes : SB_ROUTES;
    for (size_t i = 0; i < n; i++) {
        const char *path =
            i == SB_ROUTES - 1 && c->nroutes > SB_ROUTES ? SB_ROUTE_OTHER : c->routes[i].prefix;
        /* the admin listener's routes may share a path with the site's */
        char *name = slot->routes[i].path;
        int w = snprintf(name, SB_ROUTE_NAME, "%s%s", c->routes[i].admin ? "admin:" : "", path);
        if (w >= SB_ROUTE_NAME) { /* cut before a character the cut split */
            size_t end = SB_ROUTE_NAME - 1, start = end - 1;
            while (start > 0 && ((unsigned char)name[start] & 0xc0) == 0x80) start--;
            unsigned char lead = (unsigned char)name[start];
            size_t len = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
            if (start + len > end) name[start] = '\0';
        }
    }
    atomic_store_explicit(&slot->nroutes, (unsigned)n, memory_order_release);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    struct worker *w = arg;
    update_slot(w);
    if (w->alog) accesslog_flush(w->alog);
    routes_tick(&w->routes);
    routes_tick(&w->admin_routes);
    /* a second without requests after some: give what the burst freed back
     * to the system, so that idle memory does not follow the busiest moment */
    uint64_t served = w->conns.requests;
    if (served == w->served_last_tick && served != w->trimmed_at) {
        conns_trim(&w->conns);
        malloc_trim(0);
        w->trimmed_at = served;
    }
    w->served_last_tick = served;
}

static void stop_now(struct worker *w) {
    w->fast_stop = true;
    conns_close_all(&w->conns);
    event_base_loopbreak(w->base);
}

static void on_stop_timeout(evutil_socket_t fd, short what, void *arg) {
    struct worker *w = arg;
    log_warn("shutdown_timeout: closing %u connection(s) still open", w->conns.n);
    stop_now(w);
}

static void on_idle_grace(evutil_socket_t fd, short what, void *arg) {
    struct worker *w = arg;
    w->conns.idle_grace_over = true;
    conns_close_idle(&w->conns);
}

/* Our copies of the listening sockets, closed once the loop has applied the
 * removal of their accept events (see worker.h). */
static void on_close_listeners(evutil_socket_t fd, short what, void *arg) {
    struct worker *w = arg;
    for (size_t i = 0; i < w->nlisteners; i++) listen_close(&w->listeners[i], false);
}

static void begin_stop(struct worker *w, bool fast) {
    if (!w->stopping) {
        static const struct timeval now = {0, 0};
        accept_enable(w, false);
        event_del(w->accept_retry);
        w->stopping = w->conns.stopping = true;
        atomic_store_explicit(&w->slot->state, SLOT_STOPPING, memory_order_relaxed);
        /* our copies only: the master keeps the sockets open for others */
        event_add(w->close_listeners, &now);
    }
    if (fast) {
        stop_now(w);
        return;
    }
    if (w->conns.n == 0) {
        event_base_loopbreak(w->base);
        return;
    }
    /* An idle keep-alive connection may have a request on its way right now:
     * closing it at once would lose that request. Idle connections get a
     * moment in which a request is still answered (with Connection: close),
     * then they are closed. */
    unsigned grace = w->conf->shutdown_idle_timeout;
    if (grace > w->conf->keepalive_timeout) grace = w->conf->keepalive_timeout;
    struct timeval g = {grace / 1000, (grace % 1000) * 1000};
    event_add(w->idle_grace, &g);
    struct timeval tv = {w->conf->shutdown_timeout / 1000,
                         (w->conf->shutdown_timeout % 1000) * 1000};
    event_add(w->stop_timer, &tv);
}

/* The signals a worker handles (in its loop); w->signals follows this order. */
static const int stop_signals[4] = {SIGTERM, SIGQUIT, SIGINT, SIGUSR1};

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    struct worker *w = arg;
    switch (sig) {
    case SIGTERM:
    case SIGQUIT:
        /* A stop under way stays as it is: a signal to the whole process
         * group (systemd's KillMode=control-group, docker, Ctrl-\) reaches
         * us twice, from its sender and relayed by the master. Only the
         * master escalates, with SIGINT. */
        if (!w->stopping) begin_stop(w, false);
        break;
    case SIGINT: begin_stop(w, true); break;
    case SIGUSR1: {
        bool ok = true;
        if (log_reopen() < 0) {
            log_error("reopening error log: %s", strerror(errno));
            ok = false;
        }
        if (w->alog && accesslog_reopen(w->alog) < 0) {
            log_error("reopening access log: %s", strerror(errno));
            ok = false;
        }
        /* One line per worker in the new file: how an operator (and the
         * rotation tests) see that every worker took the signal. */
        if (ok) log_info("logs reopened");
        break;
    }
    }
}

static struct timeval ms_tv(unsigned ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

static const struct timeval *common_timeout(struct event_base *base, unsigned ms) {
    struct timeval tv = ms_tv(ms);
    return event_base_init_common_timeout(base, &tv);
}

/* A setup that cannot go on says why in the slot, where the master reads
 * it once we have exited and says it in its one line. */
static int start_failed(struct worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int start_failed(struct worker *w, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->slot->start_error, sizeof w->slot->start_error, fmt, ap);
    va_end(ap);
    return -1;
}

static int setup(struct worker *w, const struct creds *creds) {
    char err[512];
    const struct conf *c = w->conf;
    pid_t master = getppid();

    /* the log may live where only root writes; the rest is done as the user */
    if (c->access_log &&
        !(w->alog = accesslog_open(c->access_log, c->access_log_format, (unsigned)log_slot())))
        return start_failed(w, "access log %s: %s", c->access_log, strerror(errno));
    if (privs_drop(creds, err, sizeof err) < 0) return start_failed(w, "%s", err);
    if (creds->drop) {
        /* A change of credentials clears the parent-death signal (without it
         * we would outlive a killed master and keep its port) and makes us
         * undumpable (no core file for a crash); nginx sets the latter back
         * too. */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || prctl(PR_SET_DUMPABLE, 1) < 0)
            return start_failed(w, "prctl: %s", strerror(errno));
        /* the master may have died while the signal was off: stop as if it
         * had come (it stays pending until the loop handles it) */
        if (getppid() != master) kill(getpid(), SIGTERM);
    }
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);

    struct event_config *cfg = event_config_new();
    if (!cfg) return start_failed(w, "out of memory");
    /* batch epoll_ctl changes made during a callback into one call each */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST | EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!w->base) return start_failed(w, "cannot create the event loop");
    /* the parser's body limit until the route is known: the largest any
     * route allows (each request gets its route's once routed) */
    uint64_t body_max = c->max_body_size;
    for (size_t i = 0; i < c->nroutes; i++)
        if (c->routes[i].max_body_size_set && c->routes[i].max_body_size > body_max)
            body_max = c->routes[i].max_body_size;
    w->limits = (struct http_limits){c->max_uri, c->max_header_size, c->max_headers, body_max};
    http_init(&w->limits);
    /* the applications' per-worker state first: their routes may use it */
    if (handlers_worker_init(c, w->index, err, sizeof err) < 0) return start_failed(w, "%s", err);
    w->apps_inited = true;
    if (routes_init(&w->routes, c, false, err, sizeof err) < 0 ||
        routes_init(&w->admin_routes, c, true, err, sizeof err) < 0)
        return start_failed(w, "%s", err);
    if (!(w->pool =
              pool_create(c->threads, c->pool_queue, handlers_thread_init, handlers_thread_exit)))
        return start_failed(w, "thread pool: %s", strerror(errno));
    pool_set_gauges(w->pool, &w->slot->pool_busy, &w->slot->pool_queued);
    pool_set_wait_hook(w->pool, count_pool_wait, w->slot);
    atomic_store_explicit(&w->slot->pool_threads, c->threads, memory_order_relaxed);
    name_slot_routes(w->slot, c);
    w->pool_ev = event_new(w->base, pool_fd(w->pool), EV_READ | EV_PERSIST, on_pool, w);

    struct conns *cs = &w->conns;
    cs->base = w->base;
    cs->conf = c;
    cs->routes = &w->routes;
    cs->slot = w->slot;
    cs->alog = w->alog;
    cs->realip = (struct realip){
        .trusted = c->trusted_proxies_text ? &c->trusted_proxies : NULL,
        .header = c->real_ip_header,
        .forwarded = strcasecmp(c->real_ip_header, "Forwarded") == 0,
    };
    cs->ex = (struct exchange_env){.base = w->base,
                                   .conf = c,
                                   .limits = &w->limits,
                                   .pool = w->pool,
                                   .slot = w->slot,
                                   .t_request = common_timeout(w->base, c->request_timeout),
                                   .pool_kick = event_new(w->base, -1, 0, on_pool_kick, &cs->ex)};
    if (!cs->ex.pool_kick) return start_failed(w, "out of memory");
    /* an input and an output buffer per connection, of a block or two */
    bufcache_init(&cs->bufs, 4 * c->cached_objects);
    cs->t_header = common_timeout(w->base, c->header_timeout);
    cs->t_body = common_timeout(w->base, c->body_timeout);
    cs->t_send = common_timeout(w->base, c->send_timeout);
    cs->t_keepalive = common_timeout(w->base, c->keepalive_timeout);
    cs->closed = on_conn_closed;
    cs->closed_arg = w;
    w->accept_evs = calloc(w->nlisteners, sizeof *w->accept_evs);
    if (!w->accept_evs) return -1;
    for (size_t i = 0; i < w->nlisteners; i++)
        w->accept_evs[i] =
            event_new(w->base, w->listeners[i].fd, EV_READ | EV_PERSIST, on_accept, w);
    w->accept_retry = evtimer_new(w->base, on_accept_retry, w);
    w->close_listeners = evtimer_new(w->base, on_close_listeners, w);
    w->stop_timer = evtimer_new(w->base, on_stop_timeout, w);
    w->idle_grace = evtimer_new(w->base, on_idle_grace, w);
    w->tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
    for (int i = 0; i < 4; i++)
        w->signals[i] = evsignal_new(w->base, stop_signals[i], on_signal, w);

    struct timeval second = {1, 0};
    event_add(w->pool_ev, NULL);
    event_add(w->tick, &second);
    for (int i = 0; i < 4; i++) event_add(w->signals[i], NULL);
    accept_enable(w, true);
    return 0;
}

/* A fast stop does not wait for handlers still running: the process exits
 * under them, so nothing they may use (routes, pool, exchanges, the worker
 * itself) is freed. Kept reachable here, for the leak checker. */
static struct worker *volatile left_running;

static void teardown(struct worker *w) {
    w->stopping = w->conns.stopping = true; /* nothing may re-enable accepting now */
    if (w->conns.base) conns_close_all(&w->conns);
    if (w->pool) {
        unsigned busy = pool_busy(w->pool);
        if (busy && w->fast_stop) {
            log_info("fast stop: leaving %u pool handler(s) running", busy);
            left_running = w;
            if (w->alog) accesslog_flush(w->alog);
            return;
        }
        if (busy) log_info("waiting for %u pool handler(s) to finish", busy);
        pool_destroy(w->pool);
    }
    conns_trim(&w->conns);
    for (size_t i = 0; w->accept_evs && i < w->nlisteners; i++)
        if (w->accept_evs[i]) event_free(w->accept_evs[i]);
    free(w->accept_evs);
    struct event *evs[] = {
        w->conns.ex.pool_kick, w->pool_ev,    w->accept_retry, w->close_listeners,
        w->stop_timer,         w->idle_grace, w->tick,         w->signals[0],
        w->signals[1],         w->signals[2], w->signals[3]};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i]) event_free(evs[i]);
    routes_free(&w->routes);
    routes_free(&w->admin_routes);
    if (w->apps_inited) handlers_worker_exit(w->conf);
    gzip_thread_end(); /* the loop thread's compressors (pool threads free theirs) */
    accesslog_close(w->alog);
    bufcache_trim(&w->conns.bufs);
    if (w->base) event_base_free(w->base);
    for (size_t i = 0; i < w->nlisteners; i++) listen_close(&w->listeners[i], false);
    free(w);
}

int worker_run(const struct conf *conf, struct listener *listeners, size_t nlisteners,
               struct sb_slot *slot, const struct creds *creds, unsigned index) {
    /* on the heap: pool threads left running by a fast stop may still
     * reach it while the process exits */
    struct worker *w = calloc(1, sizeof *w);
    if (!w) return 1;
    w->conf = conf;
    w->index = index;
    w->listeners = listeners;
    w->nlisteners = nlisteners;
    /* the admin listener's line is the last (conf_finish) */
    w->admin_fd = conf->admin_on && nlisteners ? listeners[nlisteners - 1].fd : -1;
    w->slot = slot;

    /* the master's business, not ours: a HUP sent to the process group must
     * not kill workers */
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);

    /* The master forks us with its signals blocked; they stay pending until
     * the loop handles them, and again once its handlers are gone. */
    sigset_t ours;
    sigemptyset(&ours);
    for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++)
        sigaddset(&ours, stop_signals[i]);
    int status = 1;
    if (setup(w, creds) == 0) {
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        atomic_store_explicit(&slot->state, SLOT_SERVING, memory_order_relaxed);
        update_slot(w);
        event_base_dispatch(w->base);
        status = 0;
    }
    pthread_sigmask(SIG_BLOCK, &ours, NULL);
    teardown(w);
    return status;
}
