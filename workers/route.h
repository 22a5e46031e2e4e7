/* route: the [route PREFIX] table and the handler interface.
 *
 * A handler turns a request into a response. It runs on the loop thread
 * (mode = inline) or on a pool thread (mode = pool) and must not touch the
 * connection: only the request, the response and its route. A pool handler
 * may stream a body of unknown length with handler_stream_write(), wait with
 * handler_wait(), and should stop when handler_cancelled() says the client
 * is gone. Routes (and what their init opened) live as long as the worker;
 * a fast stop that leaves pool handlers running does not free them. */
#ifndef PREFORKD_ROUTE_H
#define PREFORKD_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "server/conf.h"
#include "workers/http.h"
#include "workers/response.h"

struct route;
struct exchange;
struct fcache;

/* One call of a handler. */
struct handler_call {
    const struct route *route;
    const struct http_request *req;
    struct response *resp;
    struct exchange *ex; /* for handler_stream_write() */
};

struct handler {
    const char *name;
    bool wants_body; /* the request body is collected for it; others drop it */
    /* Per-worker setup of a route (open its root...); 0 or -1 with err set. */
    int (*init)(struct route *rt, const struct conf *conf, char *err, size_t errlen);
    void (*fini)(struct route *rt);
    /* Once a second on the loop thread (optional): expire what it caches. */
    void (*tick)(struct route *rt);
    void (*handle)(struct handler_call *call);
};

struct route {
    const char *prefix;
    size_t prefix_len;
    const struct handler *handler;
    enum route_mode mode;
    const struct conf_route *conf;
    int root_fd;           /* static: the root directory */
    char *root_real;       /* static: its canonical path, for the no-openat2 fallback */
    struct fcache *fcache; /* static, inline mode: open files */
};

struct routes {
    struct route *v; /* longest prefix first */
    size_t n;
};

/* Whether a handler of that name exists (for checking the configuration). */
bool handler_known(const char *name);
/* Builds the table from the configuration and runs each handler's init. */
int routes_init(struct routes *rs, const struct conf *c, char *err, size_t errlen);
void routes_free(struct routes *rs);
/* Once a second, from the worker's tick: each handler's tick. */
void routes_tick(struct routes *rs);
/* The route for a decoded path, or NULL. */
const struct route *routes_match(const struct routes *rs, const char *path, size_t len);

/* From a pool handler: sends n bytes of a streamed body (the response must
 * have body = BODY_STREAM and its status and headers set; they may not change
 * after the first call). Waits while the client is slow to read (at most
 * stream_buffer bytes are on their way). Returns -1 if the client is gone. */
int handler_stream_write(struct handler_call *call, const void *p, size_t n);
/* From a pool handler: sleeps ms milliseconds; -1 early when cancelled. */
int handler_wait(struct handler_call *call, unsigned ms);
/* From a pool handler: the client is gone or request_timeout passed. */
bool handler_cancelled(const struct handler_call *call);

extern const struct handler static_handler;
extern const struct handler sleep_handler;
extern const struct handler echo_handler;
extern const struct handler status_handler;
#ifdef PREFORKD_FAULT_HANDLER
extern const struct handler fault_handler;
#endif

#endif
