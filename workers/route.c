/* route: building and matching the route table. */
#include "workers/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workers/exchange.h"
#include "workers/site.h"

/* Sort key: exact routes first, then patterns, then prefixes by length,
 * longest first; routes of the same path side by side (at the place of the
 * first of them), in config order. */
static int route_order(const void *a, const void *b) {
    const struct route *x = a, *y = b;
    if (x->match != y->match) return (int)x->match - (int)y->match;
    if (x->match == CONF_MATCH_PREFIX && x->path_len != y->path_len)
        return (x->path_len < y->path_len) - (x->path_len > y->path_len);
    if (x->group != y->group) return (x->group > y->group) - (x->group < y->group);
    return (x->order > y->order) - (x->order < y->order);
}

/* Whether two routes match the same paths: the same text, or patterns
 * whose {names} differ but stand in the same places. */
static bool same_path(const struct route *a, const struct route *b) {
    if (a->match != b->match) return false;
    const char *ha = a->conf->hosts_text, *hb = b->conf->hosts_text;
    if ((ha || hb) && !(ha && hb && strcmp(ha, hb) == 0)) return false;
    if (a->match != CONF_MATCH_PATTERN)
        return a->path_len == b->path_len && memcmp(a->path, b->path, a->path_len) == 0;
    if (a->nsegs != b->nsegs) return false;
    for (unsigned i = 0; i < a->nsegs; i++) {
        const struct route_seg *x = &a->segs[i], *y = &b->segs[i];
        if (x->param != y->param ||
            (!x->param && (x->len != y->len || memcmp(x->text, y->text, x->len) != 0)))
            return false;
    }
    return true;
}

/* Splits a pattern into its segments ("/a/{b}" -> "a", {b}). */
static int split_pattern(struct route *rt, char *err, size_t errlen) {
    unsigned n = 0;
    for (const char *p = rt->path; *p; p++) n += *p == '/';
    if (!(rt->segs = calloc(n ? n : 1, sizeof *rt->segs))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *p = rt->path;
    while (*p == '/') {
        const char *start = ++p, *end = start;
        while (*end && *end != '/') end++;
        struct route_seg *s = &rt->segs[rt->nsegs++];
        size_t len = (size_t)(end - start);
        s->param = len >= 2 && start[0] == '{' && end[-1] == '}';
        s->text = s->param ? start + 1 : start;
        s->len = s->param ? len - 2 : len;
        p = end;
    }
    return 0;
}

/* Fills rt from its configuration (no handler init). */
static int route_build(struct route *rt, const struct conf *c, const struct conf_route *cr,
                       char *err, size_t errlen) {
    memset(rt, 0, sizeof *rt);
    rt->cfg = c;
    rt->conf = cr;
    rt->handler = cr->impl;
    rt->path = cr->prefix;
    rt->path_len = strlen(cr->prefix);
    rt->match = cr->match;
    rt->methods = cr->methods;
    rt->mode = cr->mode;
    rt->max_body = cr->max_body_size_set ? cr->max_body_size : c->max_body_size;
    rt->site = cr->site;
    rt->errsite = cr->site && cr->site->nerrors ? cr->site : NULL;
    if (!rt->handler) {
        snprintf(err, errlen, "route %s: no handler", cr->prefix);
        return -1;
    }
    if (rt->match == CONF_MATCH_PATTERN) return split_pattern(rt, err, errlen);
    return 0;
}

int routes_check(const struct conf *c, char *err, size_t errlen) {
    for (size_t i = 0; i < c->nroutes; i++) {
        const struct conf_route *cr = &c->routes[i];
        struct route rt;
        char why[768], where[512];
        if (route_build(&rt, c, cr, err, errlen) < 0) return -1;
        int rc = rt.handler->check ? rt.handler->check((pfd_route *)&rt, why, sizeof why) : 0;
        free(rt.segs);
        if (rc < 0) {
            /* "root: ..." points at the root setting's line */
            int line = 0;
            size_t n = strcspn(why, ":");
            for (size_t j = 0; j < cr->nsettings; j++)
                if (why[n] == ':' && strlen(cr->settings[j].name) == n &&
                    strncmp(cr->settings[j].name, why, n) == 0)
                    line = cr->settings[j].line;
            snprintf(err, errlen, "%s: %s", conf_route_where(c, cr, line, where, sizeof where),
                     why);
            return -1;
        }
    }
    return 0;
}

int routes_init(struct routes *rs, const struct conf *c, bool admin, char *err, size_t errlen) {
    rs->n = 0;
    rs->v = calloc(c->nroutes ? c->nroutes : 1, sizeof *rs->v);
    if (!rs->v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < c->nroutes; i++) {
        struct route *rt = &rs->v[rs->n];
        if (c->routes[i].admin != admin) continue;
        if (route_build(rt, c, &c->routes[i], err, errlen) < 0) {
            routes_free(rs);
            return -1;
        }
        rt->order = rt->group = (unsigned)i;
        for (size_t j = 0; j < rs->n; j++)
            if (same_path(&rs->v[j], rt)) {
                rt->group = rs->v[j].group;
                break;
            }
        rs->has_hosts |= c->routes[i].nhosts > 0;
        rs->n++;
    }
    rs->strict = strcmp(c->unknown_host, "421") == 0;
    qsort(rs->v, rs->n, sizeof *rs->v, route_order);
    /* error_page is inherited from the longest prefix route above of the same
     * hosts (prefixes come longest first) */
    for (size_t i = 0; i < rs->n; i++) {
        struct route *rt = &rs->v[i];
        for (size_t j = 0; j < rs->n && !rt->errsite; j++) {
            const struct route *up = &rs->v[j];
            const char *hu = up->conf->hosts_text, *hr = rt->conf->hosts_text;
            if (j != i && up->match == CONF_MATCH_PREFIX && up->site && up->site->nerrors &&
                up->path_len <= rt->path_len && memcmp(up->path, rt->path, up->path_len) == 0 &&
                (hu ? hr && strcmp(hu, hr) == 0 : !hr)) /* the same site's */
                rt->errsite = up->site;
        }
    }
    for (size_t i = 0; i < rs->n; i++) {
        struct route *rt = &rs->v[i];
        char why[768];
        if (rt->handler->init && rt->handler->init((pfd_route *)rt, why, sizeof why) < 0) {
            snprintf(err, errlen, "route %s: %s", rt->path, why);
            routes_free(rs);
            return -1;
        }
        rt->inited = true;
    }
    return 0;
}

bool route_admits(const struct route *rt, const struct sockaddr *peer) {
    const struct conf_route *cr = rt->conf;
    if (cr->deny.n + cr->deny.unix_peers + cr->deny.all && acl_match(&cr->deny, peer)) return false;
    return !(cr->allow.n + cr->allow.unix_peers + cr->allow.all) || acl_match(&cr->allow, peer);
}

void routes_free(struct routes *rs) {
    for (size_t i = 0; i < rs->n; i++) {
        struct route *rt = &rs->v[i];
        if (rt->inited && rt->handler->fini) rt->handler->fini((pfd_route *)rt);
        free(rt->segs);
    }
    free(rs->v);
    rs->v = NULL;
    rs->n = 0;
}

void routes_tick(struct routes *rs) {
    for (size_t i = 0; i < rs->n; i++)
        if (rs->v[i].handler->tick) rs->v[i].handler->tick((pfd_route *)&rs->v[i]);
}

/* Whether a pattern matches path, filling params. */
static bool pattern_match(const struct route *rt, const char *path, size_t len,
                          struct ex_param *params, unsigned max, unsigned *nparams) {
    const char *p = path, *end = path + len;
    unsigned n = 0;
    for (unsigned i = 0; i < rt->nsegs; i++) {
        const struct route_seg *s = &rt->segs[i];
        if (p >= end || *p != '/') return false;
        const char *start = ++p;
        while (p < end && *p != '/') p++;
        size_t slen = (size_t)(p - start);
        if (s->param) {
            if (slen == 0) return false; /* {name} takes one whole, non-empty segment */
            if (n < max) {
                params[n].name = (pfd_str){s->text, s->len};
                params[n].value = (pfd_str){start, slen};
                n++;
            }
        } else if (slen != s->len || memcmp(start, s->text, slen) != 0) {
            return false;
        }
    }
    if (p != end) return false;
    *nparams = n;
    return true;
}

static bool path_matches(const struct route *rt, const char *path, size_t len,
                         struct ex_param *params, unsigned max, unsigned *nparams) {
    switch (rt->match) {
    case CONF_MATCH_EXACT: return rt->path_len == len && memcmp(rt->path, path, len) == 0;
    case CONF_MATCH_PATTERN: return pattern_match(rt, path, len, params, max, nparams);
    case CONF_MATCH_PREFIX: return rt->path_len <= len && memcmp(rt->path, path, rt->path_len) == 0;
    }
    return false;
}

/* The Host header's name: no port, lowercase, no trailing dot. */
static size_t host_name(const struct http_request *req, char *out, size_t cap) {
    const char *p = req->host.p;
    size_t n = req->host.len;
    if (!p) return 0;
    if (n && p[0] == '[') { /* an IPv6 literal: up to its bracket */
        const char *close = memchr(p, ']', n);
        n = close ? (size_t)(close - p) + 1 : n;
    } else {
        const char *colon = memchr(p, ':', n);
        if (colon) n = (size_t)(colon - p);
    }
    if (n && p[n - 1] == '.') n--;
    if (n >= cap) return 0;
    for (size_t i = 0; i < n; i++) out[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] | 0x20 : p[i]);
    out[n] = '\0';
    return n;
}

static bool host_listed(const struct conf_route *cr, const char *host, size_t len) {
    for (size_t i = 0; i < cr->nhosts; i++) {
        const char *h = cr->hosts[i];
        size_t hl = strlen(h);
        if (h[0] == '*') { /* "*.example.org": any name below, not itself */
            if (len > hl - 1 && memcmp(host + len - (hl - 1), h + 1, hl - 1) == 0) return true;
        } else if (hl == len && memcmp(h, host, len) == 0) {
            return true;
        }
    }
    return false;
}

/* Which routes serve this request's host: 1 those naming it, 0 those that
 * name none, -1 none (unknown_host = 421). */
static int pick_site(const struct routes *rs, const char *host, size_t len) {
    for (size_t i = 0; i < rs->n; i++)
        if (host_listed(rs->v[i].conf, host, len)) return 1;
    return rs->strict ? -1 : 0;
}

static bool serves(const struct route *rt, int site, const char *host, size_t len) {
    if (site == 0) return rt->conf->nhosts == 0;
    return host_listed(rt->conf, host, len);
}

const struct route *routes_match(const struct routes *rs, const struct http_request *req,
                                 struct ex_param *params, unsigned max, unsigned *nparams,
                                 unsigned *allow) {
    *nparams = 0;
    *allow = 0;
    unsigned bit = 1u << req->method;
    char host[256];
    size_t hlen = 0;
    int site = 0;
    if (rs->has_hosts) {
        hlen = host_name(req, host, sizeof host);
        if ((site = pick_site(rs, host, hlen)) < 0) {
            *allow = ROUTES_MISDIRECTED;
            return NULL;
        }
    }
    for (size_t i = 0; i < rs->n; i++) {
        const struct route *rt = &rs->v[i];
        if (rs->has_hosts && !serves(rt, site, host, hlen)) continue;
        if (!path_matches(rt, req->path, req->path_len, params, max, nparams)) continue;
        /* this path decides: the route of it that names the method (or
         * names none), else for HEAD the one that names GET */
        unsigned allowed = 0;
        size_t end = i, take = rs->n;
        while (end < rs->n && same_path(&rs->v[end], rt)) end++;
        for (size_t j = i; j < end; j++) {
            unsigned m = rs->v[j].methods;
            if (!m || (m & bit)) {
                take = j;
                break;
            }
            if (req->method == METHOD_HEAD && (m & (1u << METHOD_GET)) && take == rs->n) take = j;
            allowed |= m;
        }
        if (take < rs->n) {
            if (take != i)
                path_matches(&rs->v[take], req->path, req->path_len, params, max, nparams);
            return &rs->v[take];
        }
        if (allowed & (1u << METHOD_GET)) allowed |= 1u << METHOD_HEAD;
        *allow = allowed;
        *nparams = 0;
        return NULL;
    }
    return NULL;
}

const struct route *routes_near(const struct routes *rs, const struct http_request *req) {
    struct ex_param params[EX_MAX_PARAMS];
    unsigned n;
    char host[256];
    size_t hlen = 0;
    int site = 0;
    if (rs->has_hosts) {
        hlen = host_name(req, host, sizeof host);
        if ((site = pick_site(rs, host, hlen)) < 0) return NULL; /* 421: no site of ours */
    }
    for (size_t i = 0; i < rs->n; i++) {
        const struct route *rt = &rs->v[i];
        if (rs->has_hosts && !serves(rt, site, host, hlen)) continue;
        if (path_matches(rt, req->path, req->path_len, params, EX_MAX_PARAMS, &n)) return rt;
    }
    return NULL;
}

void routes_allow_text(unsigned methods, char *out, size_t outlen) {
    static const char *const names[] = {"GET",    "HEAD",    "POST",  "PUT",
                                        "DELETE", "OPTIONS", "PATCH", "TRACE"};
    size_t used = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (methods & (1u << i))
            used += (size_t)snprintf(out + used, used < outlen ? outlen - used : 0, "%s%s",
                                     used ? ", " : "", names[i]);
}
