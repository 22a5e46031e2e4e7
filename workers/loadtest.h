/* loadtest: handlers that are targets of load tests, written on the public
 * API (preforkd.h) like any application's.
 *
 *   echo    answers with the request body and the request's Content-Type
 *           (any method); fortio's echo query parameters choose the delay,
 *           status, payload size, extra headers, closes and gzip of each
 *           answer, with a probability each (README, "echo").
 *
 * What it owns: per route and worker, a struct echo_route (its limits),
 * made by init and freed by fini; per request, memory from pfd_alloc only
 * (the parsed parameters, an inline stream's state, a large or compressed
 * payload), so it ends with the request. The 64 KiB filler the payloads
 * are cut from is a static table, filled once per process. */
#ifndef PREFORKD_LOADTEST_H
#define PREFORKD_LOADTEST_H

#include <stddef.h>
#include <stdint.h>

#include "workers/preforkd.h"

/* echo_handler is declared with the other built-ins in handlers.h. */

/* A fortio (Go) duration: "250ms", "1.5s", "1m30s", "150us", "0"; units
 * ns, us (µs), ms, s, m, h. *us gets microseconds, rounded up. 0 or -1.
 * Exposed for the unit tests. */
int loadtest_parse_duration(const char *s, size_t n, uint64_t *us);
/* A size: digits with an optional k, m or g (1024, 1024², 1024³). 0 or -1. */
int loadtest_parse_size(const char *s, size_t n, uint64_t *out);

#endif
