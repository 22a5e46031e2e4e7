/* route: building and matching the route table. */
#include "workers/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workers/exchange.h"

static const struct handler *const handlers[] = {
    &static_handler, &sleep_handler, &echo_handler, &status_handler,
#ifdef PREFORKD_FAULT_HANDLER
    &fault_handler,
#endif
};

static const struct handler *handler_find(const char *name) {
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
        if (strcmp(handlers[i]->name, name) == 0) return handlers[i];
    return NULL;
}

bool handler_known(const char *name) {
    return handler_find(name) != NULL;
}

static int longest_first(const void *a, const void *b) {
    const struct route *x = a, *y = b;
    return (x->prefix_len < y->prefix_len) - (x->prefix_len > y->prefix_len);
}

int routes_init(struct routes *rs, const struct conf *c, char *err, size_t errlen) {
    rs->n = 0;
    rs->v = calloc(c->nroutes ? c->nroutes : 1, sizeof *rs->v);
    if (!rs->v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < c->nroutes; i++) {
        struct route *rt = &rs->v[i];
        const struct conf_route *cr = &c->routes[i];
        rt->prefix = cr->prefix;
        rt->prefix_len = strlen(cr->prefix);
        rt->mode = cr->mode;
        rt->conf = cr;
        rt->root_fd = -1;
        rt->handler = handler_find(cr->handler);
        if (!rt->handler) {
            snprintf(err, errlen, "route %s: unknown handler %s", cr->prefix, cr->handler);
            routes_free(rs);
            return -1;
        }
        rs->n++;
        if (rt->handler->init && rt->handler->init(rt, c, err, errlen) < 0) {
            routes_free(rs);
            return -1;
        }
    }
    qsort(rs->v, rs->n, sizeof *rs->v, longest_first);
    return 0;
}

void routes_free(struct routes *rs) {
    for (size_t i = 0; i < rs->n; i++)
        if (rs->v[i].handler->fini) rs->v[i].handler->fini(&rs->v[i]);
    free(rs->v);
    rs->v = NULL;
    rs->n = 0;
}

void routes_tick(struct routes *rs) {
    for (size_t i = 0; i < rs->n; i++)
        if (rs->v[i].handler->tick) rs->v[i].handler->tick(&rs->v[i]);
}

const struct route *routes_match(const struct routes *rs, const char *path, size_t len) {
    for (size_t i = 0; i < rs->n; i++) {
        const struct route *rt = &rs->v[i];
        if (rt->prefix_len <= len && memcmp(rt->prefix, path, rt->prefix_len) == 0) return rt;
    }
    return NULL;
}

int handler_stream_write(struct handler_call *call, const void *p, size_t n) {
    return exchange_stream_write(call->ex, p, n);
}

int handler_wait(struct handler_call *call, unsigned ms) {
    return exchange_wait(call->ex, ms);
}

bool handler_cancelled(const struct handler_call *call) {
    return exchange_cancelled(call->ex);
}
