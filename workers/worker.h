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
#include "workers/buf.h"
#include "workers/http.h"
#include "workers/route.h"

struct event_base;
struct event;
struct conn;
struct exchange;
struct pool;
struct wev_box;
struct accesslog;

/* The per-process state shared by the worker's modules (loop thread only). */
struct worker {
    struct event_base *base;
    const struct conf *conf;
    struct http_limits limits;
    struct routes routes;
    struct pool *pool;
    struct event *pool_ev;

    struct listener *listeners;
    size_t nlisteners;
    struct event **accept_evs;
    bool accepting;             /* accept events are added */
    unsigned accept_defers;     /* times in a row we left a connection to peers */
    struct event *accept_retry; /* re-enables accepting after EMFILE */

    struct sb_slot *slot;
    struct accesslog *alog;
    struct event *tick; /* once a second: heartbeat, counters, log flush */
    struct event *signals[4];
    struct event *stop_timer; /* graceful stop that took too long */
    struct event *idle_grace; /* graceful stop: idle connections close then */

    struct conn *conns; /* every open connection */
    unsigned nconns;
    struct conn *free_conns; /* cached conn structs */
    unsigned nfree_conns;
    struct exchange *free_exchanges;
    struct wev_box *free_wevs; /* cached write events */
    unsigned nfree_exchanges;
    struct bufcache bufs;

    /* libevent common timeouts: O(1) queues, one per duration */
    const struct timeval *t_header, *t_body, *t_send, *t_keepalive, *t_request;

    bool stopping;
    bool idle_grace_over; /* graceful stop: a connection is closed once idle */
    bool fast_stop;
    int exit_status;
    uint64_t requests; /* served; mirrored into the slot each tick */
};

/* Serves until stopped; returns the exit status for the process. The
 * access log is opened first, then privileges are dropped to creds. */
int worker_run(const struct conf *conf, struct listener *listeners, size_t nlisteners,
               struct sb_slot *slot, const struct creds *creds);

/* Called by conn.c when a connection is gone: accept may resume, a graceful
 * stop may be complete. */
void worker_conn_closed(struct worker *w);

#endif
