/* observe: the handlers that show the scoreboard (server/scoreboard.h).
 *
 *   status   JSON: totals (exited workers included, so they never go
 *            backwards), per-worker slots, uptime, generation and a summary
 *            of the configuration. README "Observability" lists the fields.
 *   metrics  Prometheus text exposition 0.0.4: server-wide counters
 *            (preforkd_*_total, no labels: they never reset), per-worker
 *            families (preforkd_worker_*{worker="SLOT",pid="PID"}: each
 *            series is one process, from 0 to its exit) and per-route
 *            families (preforkd_route_*{route="PATH"}), histograms with
 *            _bucket/_sum/_count.
 *   healthz  200 "ok" while the worker runs its loop.
 *   readyz   200 "ready"; 503 while the worker stops or the master drains a
 *            stop (a balancer's health check stops sending first).
 *
 * Each reads one consistent view of the board (sb_read) per request; they
 * keep nothing between requests. GET and HEAD only. */
#ifndef PREFORKD_OBSERVE_H
#define PREFORKD_OBSERVE_H

#include "workers/preforkd.h"

extern const pfd_handler status_handler;
extern const pfd_handler metrics_handler;
extern const pfd_handler healthz_handler;
extern const pfd_handler readyz_handler;

#endif
