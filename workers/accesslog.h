/* accesslog: the per-worker access log. A line's format is parsed once, when
 * the log is opened: "combined" (nginx's, byte for byte), "json" (an object
 * per line) or a format of nginx-style $variables and literal text (README,
 * "Access log formats"). Lines collect in a buffer that is written when
 * full, once a second (accesslog_flush from the worker's tick) and at exit,
 * so logging costs a memcpy per request, not a write. Untrusted text is
 * escaped: \xHH as nginx does in text formats, \u00XX in JSON.
 * To a pipe or socket (several workers writing to one) the buffer goes out in
 * writes of whole lines of at most PIPE_BUF bytes, which arrive unsplit, and
 * a longer line is shortened. A failing write (a full disk) drops the lines
 * and is reported in the error log once, not per line. */
#ifndef PREFORKD_ACCESSLOG_H
#define PREFORKD_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "workers/http.h"

struct accesslog;

/* What one line tells of a request. */
struct accesslog_entry {
    const struct sockaddr *peer;    /* the connection's; NULL: none (a unix socket) */
    const struct sockaddr *client;  /* a trusted proxy's client (realip.h); NULL: the peer */
    const struct http_request *req; /* NULL: the request could not be parsed */
    const char *route;              /* the matched route's path; NULL: none */
    struct timeval wall;            /* when the answer was done */
    int status;
    uint64_t body_bytes; /* body bytes sent */
    uint64_t usec;       /* from the first byte of the request to its answer */
};

/* Checks a format (access_log_format): 0, or -1 with the reason in err
 * (an unknown variable is named). */
int accesslog_format_check(const char *format, char *err, size_t errlen);

/* "-" means stdout; format NULL means combined; worker is the scoreboard
 * slot ($worker). NULL with errno on failure (EINVAL: a bad format). */
struct accesslog *accesslog_open(const char *path, const char *format, unsigned worker);
void accesslog_close(struct accesslog *log);
int accesslog_reopen(struct accesslog *log);
void accesslog_flush(struct accesslog *log);

/* One request's line, into the buffer. */
void accesslog_write(struct accesslog *log, const struct accesslog_entry *e);

#endif
