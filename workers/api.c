/* api: the application API of preforkd.h on the worker's exchanges and
 * routes. A pfd_req is a struct exchange, a pfd_route a struct route. */
#include "workers/preforkd.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "server/log.h"
#include "server/scoreboard.h"
#include "workers/exchange.h"
#include "workers/json.h"
#include "workers/pool.h"
#include "workers/route.h"

static struct exchange *EX(pfd_req *r) {
    return (struct exchange *)r;
}
static const struct exchange *CEX(const pfd_req *r) {
    return (const struct exchange *)r;
}
static struct route *RT(pfd_route *rt) {
    return (struct route *)rt;
}
static const struct route *CRT(const pfd_route *rt) {
    return (const struct route *)rt;
}

/* ---- routes ------------------------------------------------------------ */

const char *pfd_route_path(const pfd_route *rt) {
    return CRT(rt)->path;
}

const char *pfd_route_setting(const pfd_route *rt, const char *name) {
    return conf_route_setting(CRT(rt)->conf, name);
}

const char *pfd_route_config_dir(const pfd_route *rt) {
    return CRT(rt)->conf->base_dir;
}

enum pfd_mode pfd_route_mode(const pfd_route *rt) {
    return CRT(rt)->mode == ROUTE_POOL ? PFD_POOL : PFD_INLINE;
}

int pfd_route_number(const pfd_route *rt, const char *name, uint64_t *value) {
    return conf_number(CRT(rt)->cfg, name, pfd_route_setting(rt, name), value);
}

void pfd_route_set_data(pfd_route *rt, void *data) {
    RT(rt)->data = data;
}

void *pfd_route_data(const pfd_route *rt) {
    return CRT(rt)->data;
}

/* ---- the request -------------------------------------------------------- */

const pfd_route *pfd_req_route(const pfd_req *r) {
    return (const pfd_route *)CEX(r)->route;
}

const char *pfd_method(const pfd_req *r) {
    return CEX(r)->req->method_name.p; /* http-parser's own names: NUL-terminated */
}

enum pfd_method pfd_method_id(const pfd_req *r) {
    /* enum req_method has the same order */
    return (enum pfd_method)CEX(r)->req->method;
}

unsigned pfd_version(const pfd_req *r) {
    return CEX(r)->req->version;
}

uint64_t pfd_request_seq(const pfd_req *r) {
    return CEX(r)->seq;
}

pfd_str pfd_path(const pfd_req *r) {
    const struct http_request *req = CEX(r)->req;
    return (pfd_str){req->path, req->path_len};
}

pfd_str pfd_target(const pfd_req *r) {
    const struct http_request *req = CEX(r)->req;
    return (pfd_str){req->target.p, req->target.len};
}

pfd_str pfd_query(const pfd_req *r) {
    const struct http_request *req = CEX(r)->req;
    return (pfd_str){req->query.p, req->query.len};
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Decodes a query component ('+' is a space) into the request's memory. */
static int decode_component(struct exchange *ex, const char *p, size_t n, pfd_str *out) {
    char *d = arena_alloc(&ex->arena, n + 1);
    if (!d) return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '+') {
            d[k++] = ' ';
        } else if (p[i] == '%') {
            int hi = i + 2 < n ? hex_digit(p[i + 1]) : -1;
            int lo = i + 2 < n ? hex_digit(p[i + 2]) : -1;
            if (hi < 0 || lo < 0) return -1;
            d[k++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            d[k++] = p[i];
        }
    }
    d[k] = '\0';
    out->p = d;
    out->len = k;
    return 0;
}

int pfd_query_next(pfd_req *r, size_t *pos, pfd_str *name, pfd_str *value) {
    struct exchange *ex = EX(r);
    const struct http_str q = ex->req->query;
    while (q.p && *pos < q.len) {
        const char *start = q.p + *pos, *end = q.p + q.len;
        const char *amp = memchr(start, '&', (size_t)(end - start));
        const char *stop = amp ? amp : end;
        *pos = (size_t)(stop - q.p) + (amp ? 1 : 0);
        if (stop == start) continue; /* "a=1&&b=2" */
        const char *eq = memchr(start, '=', (size_t)(stop - start));
        const char *nend = eq ? eq : stop;
        if (decode_component(ex, start, (size_t)(nend - start), name) < 0) return -1;
        if (decode_component(ex, eq ? eq + 1 : stop, eq ? (size_t)(stop - eq - 1) : 0, value) < 0)
            return -1;
        return 1;
    }
    return 0;
}

int pfd_query_param(pfd_req *r, const char *name, pfd_str *value) {
    size_t pos = 0, nlen = strlen(name);
    pfd_str n, v;
    int rc;
    while ((rc = pfd_query_next(r, &pos, &n, &v)) == 1)
        if (n.len == nlen && memcmp(n.p, name, nlen) == 0) {
            *value = v;
            return 1;
        }
    value->p = NULL;
    value->len = 0;
    return rc;
}

pfd_str pfd_path_param(const pfd_req *r, const char *name) {
    const struct exchange *ex = CEX(r);
    size_t nlen = strlen(name);
    for (unsigned i = 0; i < ex->nparams; i++)
        if (ex->params[i].name.len == nlen && memcmp(ex->params[i].name.p, name, nlen) == 0)
            return ex->params[i].value;
    return (pfd_str){NULL, 0};
}

pfd_str pfd_header(const pfd_req *r, const char *name) {
    const struct http_request *req = CEX(r)->req;
    size_t nlen = strlen(name);
    for (unsigned i = 0; i < req->nfields; i++) {
        const struct http_field *f = &req->fields[i];
        if (f->name.len == nlen && strncasecmp(f->name.p, name, nlen) == 0)
            return (pfd_str){f->value.p, f->value.len};
    }
    return (pfd_str){NULL, 0};
}

pfd_str pfd_field(const pfd_req *r, enum pfd_field f) {
    const struct http_request *req = CEX(r)->req;
    const struct http_str *v = NULL;
    switch (f) {
    case PFD_F_HOST: return req->host.p ? (pfd_str){req->host.p, req->host.len} : (pfd_str){0};
    case PFD_F_CONTENT_TYPE: v = req->content_type; break;
    case PFD_F_USER_AGENT: v = req->user_agent; break;
    case PFD_F_REFERER: v = req->referer; break;
    case PFD_F_ACCEPT_ENCODING: v = req->accept_encoding; break;
    case PFD_F_RANGE: v = req->range; break;
    case PFD_F_IF_RANGE: v = req->if_range; break;
    case PFD_F_IF_MATCH: v = req->if_match; break;
    case PFD_F_IF_NONE_MATCH: v = req->if_none_match; break;
    case PFD_F_IF_MODIFIED_SINCE: v = req->if_modified_since; break;
    case PFD_F_IF_UNMODIFIED_SINCE: v = req->if_unmodified_since; break;
    }
    return v ? (pfd_str){v->p, v->len} : (pfd_str){NULL, 0};
}

unsigned pfd_header_count(const pfd_req *r) {
    return CEX(r)->req->nfields;
}

void pfd_header_at(const pfd_req *r, unsigned i, pfd_str *name, pfd_str *value) {
    const struct http_field *f = &CEX(r)->req->fields[i];
    *name = (pfd_str){f->name.p, f->name.len};
    *value = (pfd_str){f->value.p, f->value.len};
}

pfd_str pfd_body(const pfd_req *r) {
    const struct http_request *req = CEX(r)->req;
    return (pfd_str){req->body.len ? req->body.p : "", req->body.len};
}

long pfd_body_read(pfd_req *r, void *buf, size_t cap) {
    return exchange_body_read(EX(r), buf, cap);
}

const struct sockaddr *pfd_client_addr(const pfd_req *r, socklen_t *len) {
    const struct exchange *ex = CEX(r);
    if (len) *len = ex->peer_len;
    return &ex->peer.sa;
}

const char *pfd_scheme(const pfd_req *r) {
    return CEX(r)->https ? "https" : "http";
}

const char *pfd_client_ip(pfd_req *r) {
    struct exchange *ex = EX(r);
    if (ex->client_ip) return ex->client_ip;
    char *text = arena_alloc(&ex->arena, INET6_ADDRSTRLEN);
    if (!text) return "-";
    switch (ex->peer.sa.sa_family) {
    case AF_INET: inet_ntop(AF_INET, &ex->peer.in4.sin_addr, text, INET6_ADDRSTRLEN); break;
    case AF_INET6: inet_ntop(AF_INET6, &ex->peer.in6.sin6_addr, text, INET6_ADDRSTRLEN); break;
    case AF_UNIX: strcpy(text, "unix"); break;
    default: strcpy(text, "-");
    }
    return ex->client_ip = text;
}

void *pfd_alloc(pfd_req *r, size_t n) {
    return arena_alloc(&EX(r)->arena, n);
}

char *pfd_sprintf(pfd_req *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = arena_alloc(&EX(r)->arena, (size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- the answer ------------------------------------------------------------ */

/* Whether the head may still change; otherwise the call fails the request. */
static bool head_open(struct exchange *ex, const char *what) {
    if (!ex->streaming && !ex->head_fixed) return true;
    char why[96];
    snprintf(why, sizeof why, "%s after the answer's head was sent", what);
    exchange_fail(ex, why);
    return false;
}

static int fail(struct exchange *ex, const char *why) {
    exchange_fail(ex, why);
    return -1;
}

int pfd_close_after(pfd_req *r) {
    struct exchange *ex = EX(r);
    if (!head_open(ex, "pfd_close_after")) return -1;
    ex->resp.close = true;
    return 0;
}

void pfd_status(pfd_req *r, int status) {
    struct exchange *ex = EX(r);
    if (!head_open(ex, "pfd_status")) return;
    if (status < 200 || status > 599) {
        char why[64];
        snprintf(why, sizeof why, "status %d is not a final status", status);
        exchange_fail(ex, why);
        return;
    }
    ex->resp.status = status;
}

/* tchar (RFC 9110 5.6.2) */
static const char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1,         ['&'] = 1,         ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1,         ['^'] = 1,         ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

/* The length of a token name, or 0 when it is none. */
static size_t token_len(const char *s) {
    size_t n = 0;
    while (tchar[(unsigned char)s[n]]) n++;
    return s[n] ? 0 : n;
}

/* Fields the server writes itself: a handler's would frame the answer twice
 * (Content-Type has pfd_content_type). */
static bool reserved_field(const char *name, size_t n) {
    switch (n) {
    case 4: return strcasecmp(name, "date") == 0;
    case 6: return strcasecmp(name, "server") == 0;
    case 7: return strcasecmp(name, "upgrade") == 0 || strcasecmp(name, "trailer") == 0;
    case 10: return strcasecmp(name, "connection") == 0 || strcasecmp(name, "keep-alive") == 0;
    case 14: return strcasecmp(name, "content-length") == 0;
    case 16: return strcasecmp(name, "proxy-connection") == 0;
    case 17: return strcasecmp(name, "transfer-encoding") == 0;
    default: return false;
    }
}

/* The length of a field value, or -1 when it holds CR, LF, NUL (a split
 * header) or another control character but HTAB. */
static long value_len(const char *v) {
    size_t n = 0;
    for (;; n++) {
        unsigned char c = (unsigned char)v[n];
        if (c >= 0x20 && c != 0x7f) continue;
        if (c == '\t') continue;
        return c == 0 ? (long)n : -1;
    }
}

int pfd_header_add(pfd_req *r, const char *name, const char *value) {
    struct exchange *ex = EX(r);
    if (!head_open(ex, "pfd_header_add")) return -1;
    size_t nlen = token_len(name);
    if (!nlen) return fail(ex, "a header name that is not a token");
    if (nlen == 12 && strcasecmp(name, "content-type") == 0) return pfd_content_type(r, value);
    if (reserved_field(name, nlen)) return fail(ex, "a header field the server writes itself");
    long vlen = value_len(value);
    if (vlen < 0) return fail(ex, "a header value with CR, LF, NUL or another control character");
    if (response_header_n(&ex->resp, name, nlen, value, (size_t)vlen) < 0)
        return fail(ex, "out of memory");
    return 0;
}

struct pfd_headers {
    char *lines;
    size_t len, cap;
};

pfd_headers *pfd_headers_new(void) {
    return calloc(1, sizeof(pfd_headers));
}

int pfd_headers_set(pfd_headers *h, const char *name, const char *value) {
    size_t nlen = token_len(name);
    long vlen = value_len(value);
    if (!nlen || vlen < 0 || reserved_field(name, nlen) ||
        (nlen == 12 && strcasecmp(name, "content-type") == 0))
        return -1;
    size_t need = h->len + nlen + (size_t)vlen + 4;
    if (need > h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 128;
        while (cap < need) cap *= 2;
        char *p = realloc(h->lines, cap);
        if (!p) return -1;
        h->lines = p;
        h->cap = cap;
    }
    char *p = h->lines + h->len;
    memcpy(p, name, nlen);
    memcpy(p + nlen, ": ", 2);
    memcpy(p + nlen + 2, value, (size_t)vlen);
    memcpy(p + nlen + 2 + (size_t)vlen, "\r\n", 2);
    h->len = need;
    return 0;
}

const char *pfd_headers_text(const pfd_headers *h, size_t *len) {
    *len = h->len;
    return h->len ? h->lines : "";
}

void pfd_headers_free(pfd_headers *h) {
    if (!h) return;
    free(h->lines);
    free(h);
}

int pfd_header_block(pfd_req *r, const pfd_headers *h) {
    struct exchange *ex = EX(r);
    if (!head_open(ex, "pfd_header_block")) return -1;
    if (h->len && response_header_raw(&ex->resp, h->lines, h->len) < 0)
        return fail(ex, "out of memory");
    return 0;
}

int pfd_header_addf(pfd_req *r, const char *name, const char *fmt, ...) {
    struct exchange *ex = EX(r);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *v = n < 0 ? NULL : arena_alloc(&ex->arena, (size_t)n + 1);
    if (!v) return fail(ex, "out of memory");
    va_start(ap, fmt);
    vsnprintf(v, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return pfd_header_add(r, name, v);
}

int pfd_content_type(pfd_req *r, const char *type) {
    struct exchange *ex = EX(r);
    if (!head_open(ex, "pfd_content_type")) return -1;
    long len = value_len(type);
    if (len <= 0) return fail(ex, "a Content-Type empty or with CR, LF, NUL or another control");
    /* a copy in the request's memory: the caller's string may not outlive
     * the call (the head is written later) */
    char *copy = arena_alloc(&ex->arena, (size_t)len + 1);
    if (!copy) return fail(ex, "out of memory");
    memcpy(copy, type, (size_t)len + 1);
    ex->resp.content_type = copy;
    return 0;
}

/* The body becomes bytes in memory (a file or reference set before is
 * released). */
static void to_memory_body(struct exchange *ex) {
    struct response *resp = &ex->resp;
    if (resp->body == BODY_MEM) return;
    if (resp->hold)
        exchange_release(ex, resp->hold, resp->release); /* on the loop thread */
    else if (resp->fd >= 0)
        close(resp->fd);
    resp->hold = NULL;
    resp->fd = -1;
    resp->mem_len = 0;
    resp->body = BODY_MEM;
}

int pfd_write(pfd_req *r, const void *p, size_t n) {
    struct exchange *ex = EX(r);
    if (ex->resp.body == BODY_STREAM) return pfd_stream_write(r, p, n) < 0 ? -1 : 0;
    to_memory_body(ex);
    if (response_append(&ex->resp, p, n) < 0) return fail(ex, "out of memory");
    return 0;
}

int pfd_printf(pfd_req *r, const char *fmt, ...) {
    struct exchange *ex = EX(r);
    char small[256], *text = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return fail(ex, "a bad format");
    if ((size_t)n >= sizeof small) {
        if (!(text = arena_alloc(&ex->arena, (size_t)n + 1))) return fail(ex, "out of memory");
        va_start(ap, fmt);
        vsnprintf(text, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return pfd_write(r, text, (size_t)n);
}

static int put_req(void *r, const char *p, size_t n) {
    return pfd_write(r, p, n);
}

int pfd_write_json_string(pfd_req *r, const char *s, size_t n) {
    return json_string(s, n, false, put_req, r);
}

int pfd_body_ref(pfd_req *r, const void *p, size_t n, void (*release)(void *arg), void *arg) {
    struct exchange *ex = EX(r);
    struct response *resp = &ex->resp;
    if (resp->body == BODY_STREAM) return fail(ex, "pfd_body_ref on a streamed answer");
    to_memory_body(ex);
    resp->body = BODY_DATA;
    resp->data = p;
    resp->data_len = n;
    if (release) response_hold(resp, arg, release);
    return 0;
}

int pfd_body_file(pfd_req *r, int fd, uint64_t off, uint64_t len, void (*release)(void *arg),
                  void *arg) {
    struct exchange *ex = EX(r);
    struct response *resp = &ex->resp;
    if (resp->body == BODY_STREAM) return fail(ex, "pfd_body_file on a streamed answer");
    if (fd < 0) return fail(ex, "pfd_body_file without a file");
    to_memory_body(ex);
    response_file(resp, fd, off, len);
    if (release) response_hold(resp, arg, release);
    return 0;
}

static int whole(pfd_req *r, int status, const char *type, const char *body) {
    struct exchange *ex = EX(r);
    if (!head_open(ex, "an answer")) return -1;
    to_memory_body(ex);
    ex->resp.mem_len = 0;
    pfd_status(r, status);
    ex->resp.content_type = type;
    return pfd_write(r, body, strlen(body));
}

int pfd_text(pfd_req *r, int status, const char *text) {
    return whole(r, status, "text/plain; charset=utf-8", text);
}

int pfd_json(pfd_req *r, int status, const char *json) {
    return whole(r, status, "application/json", json);
}

int pfd_error(pfd_req *r, int status) {
    struct exchange *ex = EX(r);
    if (!head_open(ex, "pfd_error")) return -1;
    if (status < 300 || status > 599) return fail(ex, "pfd_error with a status under 300");
    /* the body and its type are replaced; header fields added stay */
    char text[80];
    int n = snprintf(text, sizeof text, "%d %s\n", status, http_reason(status));
    to_memory_body(ex);
    ex->resp.mem_len = 0;
    ex->resp.status = status;
    ex->resp.content_type = "text/plain";
    int rc = pfd_write(r, text, (size_t)n);
    ex->resp.builtin = rc == 0; /* until the handler writes a body of its own */
    return rc;
}

/* ---- later answers -------------------------------------------------------- */

int pfd_async(pfd_req *r, void (*work)(pfd_req *r, void *arg), void (*done)(pfd_req *r, void *arg),
              void *arg) {
    if (pool_on_thread()) return fail(EX(r), "pfd_async from a pool thread (its work is there)");
    return exchange_async(EX(r), work, done, arg);
}

int pfd_after(pfd_req *r, unsigned ms, void (*cb)(pfd_req *r, void *arg), void *arg) {
    if (pool_on_thread()) return fail(EX(r), "pfd_after from a pool thread");
    return exchange_after(EX(r), ms, cb, arg);
}

bool pfd_cancelled(const pfd_req *r) {
    return exchange_cancelled((struct exchange *)CEX(r));
}

bool pfd_gone(const pfd_req *r) {
    return CEX(r)->conn == NULL;
}

int pfd_sleep(pfd_req *r, unsigned ms) {
    if (!pool_on_thread()) return -1; /* it would stall every connection */
    return exchange_wait(EX(r), ms);
}

int pfd_stream_begin(pfd_req *r) {
    struct exchange *ex = EX(r);
    if (ex->failed) return -1;
    return exchange_stream_begin(ex);
}

int pfd_stream_write(pfd_req *r, const void *p, size_t n) {
    struct exchange *ex = EX(r);
    if (pool_on_thread()) {
        ex->resp.body = BODY_STREAM;
        return exchange_stream_write(ex, p, n);
    }
    return exchange_stream_write_inline(ex, p, n);
}

int pfd_on_drain(pfd_req *r, void (*cb)(pfd_req *r, void *arg), void *arg) {
    if (pool_on_thread()) return fail(EX(r), "pfd_on_drain from a pool thread");
    return exchange_on_drain(EX(r), cb, arg);
}

int pfd_stream_end(pfd_req *r) {
    return exchange_stream_end(EX(r));
}

/* ---- the server ------------------------------------------------------------ */

int pfd_worker_stats_get(unsigned i, pfd_worker_stats *st) {
    struct scoreboard *sb = scoreboard_get();
    unsigned high = sb ? atomic_load_explicit(&sb->high, memory_order_relaxed) : 0;
    uint64_t now = monotonic_ms();
    for (unsigned slot = 0, live = 0; slot < high; slot++) {
        struct sb_slot *s = &sb->slots[slot];
        int state = atomic_load_explicit(&s->state, memory_order_relaxed);
        if (state == SLOT_FREE) continue;
        if (live++ != i) continue;
        uint64_t beat = atomic_load_explicit(&s->heartbeat_ms, memory_order_relaxed);
        *st = (pfd_worker_stats){
            .pid = atomic_load_explicit(&s->pid, memory_order_relaxed),
            .state = sb_state_names[state & 3],
            .slot = slot,
            .generation = atomic_load_explicit(&s->generation, memory_order_relaxed),
            .requests = atomic_load_explicit(&s->c[SBC_REQUESTS], memory_order_relaxed),
            .accepted = atomic_load_explicit(&s->c[SBC_ACCEPTED], memory_order_relaxed),
            .connections = atomic_load_explicit(&s->connections, memory_order_relaxed),
            .pool_busy = atomic_load_explicit(&s->pool_busy, memory_order_relaxed),
            .pool_queued = atomic_load_explicit(&s->pool_queued, memory_order_relaxed),
            .pool_stuck = atomic_load_explicit(&s->pool_stuck, memory_order_relaxed),
            .heartbeat_age_ms = now > beat ? now - beat : 0,
        };
        return 0;
    }
    return -1;
}

void pfd_log_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(CONF_LOG_ERROR, fmt, ap);
    va_end(ap);
}

void pfd_log_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(CONF_LOG_WARN, fmt, ap);
    va_end(ap);
}

void pfd_log_info(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(CONF_LOG_INFO, fmt, ap);
    va_end(ap);
}
