/* accesslog: the per-worker access log, in nginx's "combined" format plus the
 * request time. Lines collect in a buffer that is written when full, once a
 * second (accesslog_flush from the worker's tick) and at exit, so logging costs
 * a memcpy per request, not a write. Untrusted text is escaped (\xHH).
 * To a pipe or socket (several workers writing to one) the buffer goes out in
 * writes of whole lines of at most PIPE_BUF bytes, which arrive unsplit, and
 * a longer line is shortened. A failing write (a full disk) drops the lines
 * and is reported in the error log once, not per line. */
#ifndef PREFORKD_ACCESSLOG_H
#define PREFORKD_ACCESSLOG_H

#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "workers/http.h"

struct accesslog;

/* "-" means stdout. NULL with errno on failure. */
struct accesslog *accesslog_open(const char *path);
void accesslog_close(struct accesslog *log);
int accesslog_reopen(struct accesslog *log);
void accesslog_flush(struct accesslog *log);

/* One request: peer may be NULL (unix sockets); req may be NULL when the
 * request could not be parsed. */
void accesslog_write(struct accesslog *log, const struct sockaddr *peer, time_t now,
                     const struct http_request *req, int status, uint64_t body_bytes,
                     uint64_t usec);

#endif
