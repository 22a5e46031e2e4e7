/* route: a worker's table of [route] sections and how a request finds one.
 *
 * A route matches a request's decoded, normalized path in one of three
 * ways, tried in this order:
 *   [route = /exact]         the whole path equals it (nginx's location =)
 *   [route /users/{id}]      a pattern: the same number of segments, each
 *                            literal or a {name} that takes any one segment
 *                            (pfd_path_param); first match in config order
 *   [route /prefix]          the longest matching prefix (a plain string
 *                            prefix, as nginx's prefix locations)
 * A route may name the methods it serves (methods = GET HEAD); the first
 * route whose path matches decides, together with any other route of the
 * very same path: when none of them takes the request's method, the answer
 * is 405 with Allow.
 *
 * A route (pfd_route in the public API) holds its handler, its mode (inline
 * or pool) and the handler's per-worker state (pfd_route_set_data). Routes
 * and what their handlers' init made live as long as the worker: a fast stop
 * that leaves pool handlers running does not free them. Loop thread, except
 * that pool handlers read them. */
#ifndef PREFORKD_ROUTE_H
#define PREFORKD_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "server/conf.h"
#include "workers/http.h"
#include "workers/preforkd.h"

struct ex_param;
struct site;

/* One literal or {name} segment of a pattern route. */
struct route_seg {
    const char *text; /* the literal, or the name inside the braces */
    size_t len;
    bool param;
};

struct route {
    const struct conf *cfg; /* the whole configuration */
    const struct conf_route *conf;
    const pfd_handler *handler;
    const char *path; /* as configured: prefix, exact path or pattern */
    size_t path_len;
    enum conf_route_match match;
    struct route_seg *segs; /* pattern routes */
    unsigned nsegs;
    unsigned methods; /* bit per enum req_method; 0: any */
    enum route_mode mode;
    uint64_t max_body;          /* max_body_size: the route's, else the server's */
    void *data;                 /* the handler's, per worker (pfd_route_set_data) */
    const struct site *site;    /* its headers, cors, return... (site.h), or NULL */
    const struct site *errsite; /* whose error_page applies: its own, or inherited */
    bool inited;                /* its handler's init ran: fini will */
    unsigned order, group;      /* config position; that of the first route of the same path */
};

struct routes {
    struct route *v; /* exact routes, then patterns, then prefixes longest first */
    size_t n;
    bool has_hosts; /* some route names hosts: the Host header picks the routes */
    bool strict;    /* unknown_host = 421 */
};

/* What routes_match sets *allow to when no route serves the request's Host
 * (unknown_host = 421). */
#define ROUTES_MISDIRECTED (1u << 31)

static inline const char *route_path(const struct route *rt) {
    return rt->path;
}
static inline const pfd_handler *route_handler(const struct route *rt) {
    return rt->handler;
}
static inline enum route_mode route_mode(const struct route *rt) {
    return rt->mode;
}

/* Builds the table from the configuration's routes (whose handlers are
 * resolved: handlers.h) of the main listeners, or with admin those of the
 * admin listener, and runs each handler's init. 0, or -1 with err. */
int routes_init(struct routes *rs, const struct conf *c, bool admin, char *err, size_t errlen);
/* Whether the route serves a client at peer (its allow and deny lists). */
bool route_admits(const struct route *rt, const struct sockaddr *peer);
/* Runs each handler's fini, frees the table. */
void routes_free(struct routes *rs);
/* Once a second, from the worker's tick: each handler's tick. */
void routes_tick(struct routes *rs);
/* Runs each route's handler check (master, when the configuration is
 * loaded). 0, or -1 with err naming the route's line. */
int routes_check(const struct conf *c, char *err, size_t errlen);
/* The route for a request, filling params (up to max) with its {name}
 * segments. NULL when none matches: *allow then holds the methods of the
 * routes whose path matched (405), or 0 (404). */
const struct route *routes_match(const struct routes *rs, const struct http_request *req,
                                 struct ex_param *params, unsigned max, unsigned *nparams,
                                 unsigned *allow);
/* The first route of the request's host whose path matches, whatever its
 * methods (an answer that no route gave takes this one's site settings),
 * or NULL. */
const struct route *routes_near(const struct routes *rs, const struct http_request *req);
/* "GET, HEAD, POST" for a method set, into out. */
void routes_allow_text(unsigned methods, char *out, size_t outlen);

#endif
