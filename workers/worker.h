/* worker: one process serving HTTP (DESIGN.md). It runs one libevent loop on
 * epoll for all socket I/O, accepts from the listening sockets it inherited
 * from the master, and owns a thread pool for blocking handlers.
 *
 *   worker_run()  builds the loop, serves until told to stop, returns the
 *                 process exit status. Signals (libevent signal events):
 *                 SIGTERM / SIGQUIT  graceful: stop accepting, close idle
 *                                    connections, finish requests in flight
 *                 SIGINT             fast: close everything now
 *                 SIGUSR1            reopen the log files
 *
 * What a worker owns, and when each thing ends:
 *   the event loop            with the worker (teardown()).
 *   listening sockets         inherited copies: their accept events are
 *                             removed as a stop begins, and the copies are
 *                             closed by a zero timer, i.e. only after the loop
 *                             applied the removal: a descriptor closed with
 *                             its EPOLL_CTL_DEL still pending would stay in
 *                             the epoll set (the socket lives on in the
 *                             master) and make the loop spin.
 *   accept_retry              timer: EMFILE pause or fair-share deferral; with
 *                             the worker.
 *   tick                      once a second: heartbeat, counters, log flush,
 *                             memory trim after a burst; with the worker.
 *   stop_timer, idle_grace    graceful stop: shutdown_timeout and
 *                             shutdown_idle_timeout; with the worker.
 *   signal events             with the worker; the signals stay blocked from
 *                             fork to setup and again from teardown on.
 *   the pool and its eventfd  pool_destroy() in teardown waits for running
 *                             handlers, except after a fast stop: then the
 *                             process exits under them, and nothing they use
 *                             (routes, pool, this struct) is freed first.
 *   connections               struct conns (conn.h).
 *   the access log            flushed every tick and closed at exit.
 */
#ifndef PREFORKD_WORKER_H
#define PREFORKD_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>

#include "server/conf.h"
#include "server/listen.h"
#include "server/privs.h"
#include "server/scoreboard.h"
#include "workers/conn.h"
#include "workers/http.h"
#include "workers/route.h"

struct event_base;
struct event;
struct pool;
struct accesslog;

/* The per-process state of a worker (loop thread only). */
struct worker {
    struct event_base *base;
    const struct conf *conf;
    unsigned index;   /* position in its generation (pfd_app.worker_init) */
    bool apps_inited; /* worker_init ran: worker_exit will */
    struct http_limits limits;
    struct routes routes;
    struct routes admin_routes; /* admin_listen's (empty without one) */
    int admin_fd;               /* its listening socket, or -1 */
    struct pool *pool;
    struct event *pool_ev;

    struct listener *listeners;
    size_t nlisteners;
    struct event **accept_evs;
    bool accepting;                /* accept events are added */
    unsigned accept_defers;        /* times in a row we left a connection to peers */
    struct event *accept_retry;    /* re-enables accepting after EMFILE */
    uint64_t accept_logged_ms;     /* when EMFILE was last reported */
    unsigned accept_pauses;        /* pauses since then */
    struct event *close_listeners; /* closes our copies once the loop forgot them */

    struct sb_slot *slot;
    struct accesslog *alog;
    struct event *tick; /* once a second: heartbeat, counters, log flush */
    struct event *signals[4];
    struct event *stop_timer;  /* graceful stop that took too long */
    struct event *idle_grace;  /* graceful stop: idle connections close then */
    uint64_t served_last_tick; /* requests served at the previous tick */
    uint64_t trimmed_at;       /* requests served when memory was last trimmed */

    struct conns conns;

    bool stopping;
    bool fast_stop;
};

/* Serves until stopped; returns the exit status for the process. The
 * access log is opened first, then privileges are dropped to creds. */
int worker_run(const struct conf *conf, struct listener *listeners, size_t nlisteners,
               struct sb_slot *slot, const struct creds *creds, unsigned index);

#endif
