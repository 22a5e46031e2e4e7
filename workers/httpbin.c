/* httpbin: the endpoints of httpbin (Debian's python3-httpbin 0.7) below any
 * route prefix, on the public API (preforkd.h) only. With
 *
 *     [route /httpbin/]
 *     handler = httpbin
 *
 * GET /httpbin/get answers what httpbin's /get does: the same paths, JSON
 * field names, status codes and headers, so that client tests written
 * against httpbin pass unchanged. The answers are JSON with sorted keys, as
 * Flask's jsonify writes them. What httpbin says about the request follows
 * what gunicorn and werkzeug make of it: header names in Title-Case,
 * repeated fields joined with ",", query and form values decoded leniently
 * (a broken %-escape stays as it is) and as UTF-8 with U+FFFD for bad bytes.
 *
 * Differences, on purpose:
 *   - bad input is a 400 naming the problem where httpbin fails with 500
 *     (/delay/x, /redirect/0, /status/a:b:c, /base64 of no base64 ...);
 *     statuses outside 200-599 (which preforkd does not send) are 400 too;
 *   - /delay, /drip and paced /range wait on a timer of the loop (no thread
 *     is held; on a route with mode = pool they sleep on the pool thread);
 *     /drip's duration and delay are capped at 10 s like /delay;
 *   - /bytes and /stream-bytes with a seed repeat their bytes from run to
 *     run, but not Python's random's bytes for the same seed;
 *   - /drip and /stream-bytes are chunked (httpbin's /drip has a length);
 *   - the texts of /html, /deny, /encoding/utf8 and the 402/418 bodies are
 *     preforkd's own; /json (newer httpbins) answers a small slide show;
 *   - redirects and Location headers point below the route's prefix.
 */
#include "workers/httpbin.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <zlib.h>

#include "workers/json.h"

#define MAX_DELAY_MS     10000        /* /delay, /drip (httpbin: 10 s) */
#define MAX_BYTES        (100 * 1024) /* /bytes, /stream-bytes, /range */
#define MAX_DRIP_BYTES   (10 * 1024 * 1024)
#define MAX_STREAM_LINES 100
#define MAX_FORM_PARTS   1000 /* fields of a form body (werkzeug's max_form_parts) */
#define JSON_MAX_DEPTH   512

/* ---- a growing output buffer --------------------------------------------- */

struct jb {
    char *p;
    size_t len, cap;
    bool oom;
};

static void jb_put(struct jb *b, const void *s, size_t n) {
    if (b->oom || n == 0) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void jb_str(struct jb *b, const char *s) {
    jb_put(b, s, strlen(s));
}

static void jb_printf(struct jb *b, const char *fmt, ...) PFD_PRINTF(2, 3);
static void jb_printf(struct jb *b, const char *fmt, ...) {
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof text) {
        b->oom = true;
        return;
    }
    jb_put(b, text, (size_t)n);
}

static bool utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = json_utf8_len(u + i, n - i);
        if (!len) return false;
        i += len;
    }
    return true;
}

/* s as a JSON string literal. Bytes of 0x80 and up are UTF-8 (a byte not in
 * a valid sequence becomes U+FFFD), or with latin1 each is the character of
 * that number (werkzeug reads header fields as ISO-8859-1). */
static int jb_put_cb(void *b, const char *p, size_t n) {
    jb_put(b, p, n);
    return 0;
}

static void jb_json(struct jb *b, const char *s, size_t n, bool latin1) {
    json_string(s, n, latin1, jb_put_cb, b);
}

static void jb_jsonz(struct jb *b, const char *s) {
    jb_json(b, s, strlen(s), false);
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void jb_base64(struct jb *b, const unsigned char *s, size_t n) {
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        q[0] = b64chars[v >> 18 & 63];
        q[1] = b64chars[v >> 12 & 63];
        q[2] = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? b64chars[v & 63] : '=';
        jb_put(b, q, 4);
    }
}

/* httpbin's json_safe: text that is UTF-8 as a string, anything else as a
 * data: URL of its type. */
static void jb_json_safe(struct jb *b, pfd_str s, pfd_str type) {
    if (utf8_valid(s.p, s.len)) {
        jb_json(b, s.p, s.len, false);
        return;
    }
    jb_str(b, "\"data:");
    if (type.len) {
        struct jb t = {0};
        jb_json(&t, type.p, type.len, false); /* quoted: drop the quotes */
        if (!t.oom && t.len >= 2) jb_put(b, t.p + 1, t.len - 2);
        b->oom |= t.oom;
        free(t.p);
    } else {
        jb_str(b, "application/octet-stream");
    }
    jb_str(b, ";base64,");
    jb_base64(b, (const unsigned char *)s.p, s.len);
    jb_str(b, "\"");
}

/* ---- small helpers ------------------------------------------------------- */

static bool is_lit(pfd_str s, const char *lit) {
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

static bool is_lit_ci(pfd_str s, const char *lit) {
    size_t n = strlen(lit);
    return s.p && s.len == n && strncasecmp(s.p, lit, n) == 0;
}

/* A NUL-terminated copy in the request's memory, or NULL. */
static char *cstr(pfd_req *r, pfd_str s) {
    char *c = pfd_alloc(r, s.len + 1);
    if (!c) return NULL;
    if (s.len) memcpy(c, s.p, s.len);
    c[s.len] = '\0';
    return c;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Python's int() of text: optional spaces and sign, digits ('_' between
 * them). 0, or -1 when it is no integer or out of the range of long. */
static int parse_int(pfd_str s, long *out) {
    size_t i = 0, n = s.len;
    while (i < n && (s.p[i] == ' ' || s.p[i] == '\t')) i++;
    while (n > i && (s.p[n - 1] == ' ' || s.p[n - 1] == '\t')) n--;
    bool neg = false;
    if (i < n && (s.p[i] == '+' || s.p[i] == '-')) neg = s.p[i++] == '-';
    if (i == n) return -1;
    long v = 0;
    for (bool digit = false; i < n; i++) {
        char c = s.p[i];
        if (c == '_' && digit && i + 1 < n && s.p[i + 1] != '_') continue;
        if (c < '0' || c > '9') return -1;
        if (v > (LONG_MAX - (c - '0')) / 10) return -1;
        v = v * 10 + (c - '0');
        digit = true;
    }
    *out = neg ? -v : v;
    return 0;
}

/* Python's float() of text, NaN refused: 0 or -1. */
static int parse_float(pfd_req *r, pfd_str s, double *out) {
    char *c = cstr(r, s), *end;
    if (!c) return -1;
    errno = 0;
    double v = strtod(c, &end);
    while (*end == ' ' || *end == '\t') end++;
    if (end == c || *end || isnan(v) || strpbrk(c, "xXpP")) return -1;
    *out = v;
    return 0;
}

/* werkzeug's int converter: digits only; -1 past max. */
static long path_int(pfd_str s, long max) {
    if (s.len == 0) return -1;
    long v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return -1;
        long d = s.p[i] - '0';
        if (v > (max - d) / 10) return -2; /* checked before it could overflow */
        v = v * 10 + d;
    }
    return v;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A form or query component decoded as werkzeug does: '+' is a space, a
 * broken %-escape stays as it is. In the request's memory. */
static pfd_str url_decode(pfd_req *r, const char *p, size_t n) {
    char *d = pfd_alloc(r, n + 1);
    if (!d) return (pfd_str){NULL, 0};
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (p[i] == '+') {
            d[k++] = ' ';
        } else if (p[i] == '%' && i + 2 < n && (hi = hexval(p[i + 1])) >= 0 &&
                   (lo = hexval(p[i + 2])) >= 0) {
            d[k++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            d[k++] = p[i];
        }
    }
    d[k] = '\0';
    return (pfd_str){d, k};
}

/* ---- random numbers: xoshiro256** per thread ------------------------------ */

struct rng {
    uint64_t s[4];
};

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *g, uint64_t seed) {
    for (int i = 0; i < 4; i++) g->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *g) {
    uint64_t *s = g->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* The thread's generator, seeded from the kernel at its first use. */
static struct rng *rng_thread(void) {
    static __thread struct rng g;
    static __thread bool seeded;
    if (!seeded) {
        uint64_t seed;
        if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = now_ms() ^ (uint64_t)&g;
        rng_seed(&g, seed);
        seeded = true;
    }
    return &g;
}

/* A uniform double in [0, 1). */
static double rng_unit(struct rng *g) {
    return (double)(rng_next(g) >> 11) * 0x1.0p-53;
}

static void uuid4(char out[37]) {
    struct rng *g = rng_thread();
    unsigned char u[16];
    uint64_t a = rng_next(g), b = rng_next(g);
    memcpy(u, &a, 8);
    memcpy(u + 8, &b, 8);
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0, k = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[k++] = '-';
        out[k++] = hex[u[i] >> 4];
        out[k++] = hex[u[i] & 15];
        out[k] = '\0';
    }
}

/* ---- the request as httpbin sees it ------------------------------------ */

/* One request in this handler. */
struct hb {
    pfd_req *r;
    pfd_str rest;  /* the path below the route's prefix, from its '/' */
    pfd_str base;  /* the route's prefix without its last '/' */
    bool pool;     /* on a pool route: waits sleep on the thread */
    bool show_env; /* ?show_env: the headers of proxies are not hidden */
};

/* A name and value: a query or form field, a header, a file. */
struct pair {
    pfd_str name, value, type; /* type: a file's Content-Type */
    unsigned order;
};

struct pairs {
    struct pair *v;
    size_t n;
};

static int pair_cmp(const void *a, const void *b) {
    const struct pair *x = a, *y = b;
    size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int c = n ? memcmp(x->name.p, y->name.p, n) : 0;
    if (c) return c;
    if (x->name.len != y->name.len) return x->name.len < y->name.len ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* name=value&... decoded, in order; -1 out of memory. */
static int parse_urlencoded(pfd_req *r, const char *p, size_t n, struct pairs *out) {
    size_t max = 1;
    for (size_t i = 0; i < n; i++) max += p[i] == '&';
    out->n = 0;
    if (!(out->v = pfd_alloc(r, max * sizeof *out->v))) return -1;
    for (size_t i = 0; i < n;) {
        const char *start = p + i, *amp = memchr(start, '&', n - i);
        size_t len = amp ? (size_t)(amp - start) : n - i;
        i += len + 1;
        if (len == 0) continue;
        const char *eq = memchr(start, '=', len);
        size_t nlen = eq ? (size_t)(eq - start) : len;
        struct pair *pr = &out->v[out->n];
        pr->name = url_decode(r, start, nlen);
        pr->value = eq ? url_decode(r, eq + 1, len - nlen - 1) : (pfd_str){"", 0};
        pr->type = (pfd_str){NULL, 0};
        pr->order = (unsigned)out->n++;
        if (!pr->name.p || !pr->value.p) return -1;
    }
    return 0;
}

/* A dict of the pairs as httpbin's semiflatten makes it: sorted by name, a
 * name given more than once has a list of its values. Files are written as
 * json_safe does. */
static void jb_multidict(struct jb *b, struct pairs *ps, bool files) {
    if (ps->n > 1) qsort(ps->v, ps->n, sizeof *ps->v, pair_cmp);
    jb_put(b, "{", 1);
    for (size_t i = 0; i < ps->n;) {
        size_t j = i + 1;
        while (j < ps->n && ps->v[j].name.len == ps->v[i].name.len &&
               memcmp(ps->v[j].name.p, ps->v[i].name.p, ps->v[i].name.len) == 0)
            j++;
        if (i) jb_put(b, ",", 1);
        jb_json(b, ps->v[i].name.p, ps->v[i].name.len, false);
        jb_put(b, ":", 1);
        if (j - i > 1) jb_put(b, "[", 1);
        for (size_t k = i; k < j; k++) {
            if (k > i) jb_put(b, ",", 1);
            if (files)
                jb_json_safe(b, ps->v[k].value, ps->v[k].type);
            else
                jb_json(b, ps->v[k].value.p, ps->v[k].value.len, false);
        }
        if (j - i > 1) jb_put(b, "]", 1);
        i = j;
    }
    jb_put(b, "}", 1);
}

/* The query's fields; -1 out of memory. */
static int query_pairs(pfd_req *r, struct pairs *out) {
    pfd_str q = pfd_query(r);
    return parse_urlencoded(r, q.p ? q.p : "", q.p ? q.len : 0, out);
}

/* The first value of query field name (case-insensitive when ci, as
 * httpbin's CaseInsensitiveDict): 1, 0 when absent, -1 out of memory. */
static int query_get(pfd_req *r, const char *name, bool ci, pfd_str *value) {
    struct pairs ps;
    *value = (pfd_str){NULL, 0};
    if (query_pairs(r, &ps) < 0) return -1;
    for (size_t i = 0; i < ps.n; i++)
        if (ci ? is_lit_ci(ps.v[i].name, name) : is_lit(ps.v[i].name, name)) {
            *value = ps.v[i].value;
            return 1;
        }
    return 0;
}

/* Header names as werkzeug shows them: "x_my-header" is "X-My-Header". */
static pfd_str title_case(pfd_req *r, pfd_str name) {
    char *t = pfd_alloc(r, name.len + 1);
    if (!t) return (pfd_str){NULL, 0};
    bool after_letter = false;
    for (size_t i = 0; i < name.len; i++) {
        char c = name.p[i] == '_' ? '-' : name.p[i];
        bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (letter) c = after_letter ? (char)(c | 0x20) : (char)(c & ~0x20);
        t[i] = c;
        after_letter = letter;
    }
    t[name.len] = '\0';
    return (pfd_str){t, name.len};
}

/* What httpbin hides unless ?show_env is given: the headers of proxies. */
static bool env_header(pfd_str name) {
    static const char *const env[] = {
        "X-Varnish",
        "X-Request-Start",
        "X-Heroku-Queue-Depth",
        "X-Real-Ip",
        "X-Forwarded-Proto",
        "X-Forwarded-Protocol",
        "X-Forwarded-Ssl",
        "X-Heroku-Queue-Wait-Time",
        "X-Forwarded-For",
        "X-Heroku-Dynos-In-Use",
        "X-Forwarded-Port",
        "X-Request-Id",
        "Via",
        "Total-Route-Time",
        "Connect-Time",
    };
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
        if (is_lit(name, env[i])) return true;
    return false;
}

/* The request's header fields as a dict; -1 out of memory. */
static int jb_headers(struct hb *h, struct jb *b) {
    pfd_req *r = h->r;
    unsigned n = pfd_header_count(r);
    struct pairs ps = {pfd_alloc(r, (n ? n : 1) * sizeof(struct pair)), 0};
    if (!ps.v) return -1;
    for (unsigned i = 0; i < n; i++) {
        pfd_str name, value;
        pfd_header_at(r, i, &name, &value);
        pfd_str t = title_case(r, name);
        if (!t.p) return -1;
        if (!h->show_env && env_header(t)) continue;
        ps.v[ps.n] = (struct pair){t, value, {NULL, 0}, (unsigned)ps.n};
        ps.n++;
    }
    qsort(ps.v, ps.n, sizeof *ps.v, pair_cmp);
    jb_put(b, "{", 1);
    for (size_t i = 0; i < ps.n;) {
        if (i) jb_put(b, ",", 1);
        jb_json(b, ps.v[i].name.p, ps.v[i].name.len, false);
        jb_put(b, ":", 1);
        /* repeated fields are one, joined with "," (gunicorn's environ) */
        struct jb v = {0};
        size_t j = i;
        for (; j < ps.n && is_lit_ci(ps.v[j].name, ps.v[i].name.p); j++) {
            if (j > i) jb_put(&v, ",", 1);
            jb_put(&v, ps.v[j].value.p, ps.v[j].value.len);
        }
        jb_json(b, v.p ? v.p : "", v.len, true);
        b->oom |= v.oom;
        free(v.p);
        i = j;
    }
    jb_put(b, "}", 1);
    return 0;
}

static pfd_str origin(struct hb *h) {
    pfd_str xff = pfd_header(h->r, "X-Forwarded-For");
    if (xff.p) return xff;
    const char *ip = pfd_client_ip(h->r);
    return (pfd_str){ip, strlen(ip)};
}

/* "http://HOST", https behind a proxy that says so (httpbin's get_url). */
static void jb_scheme_host(struct hb *h, struct jb *b) {
    pfd_str proto = pfd_header(h->r, "X-Forwarded-Proto");
    if (!proto.p) proto = pfd_header(h->r, "X-Forwarded-Protocol");
    if (!proto.p && is_lit(pfd_header(h->r, "X-Forwarded-Ssl"), "on"))
        proto = (pfd_str){"https", 5};
    if (proto.p)
        jb_put(b, proto.p, proto.len);
    else
        jb_str(b, "http");
    jb_str(b, "://");
    pfd_str host = pfd_field(h->r, PFD_F_HOST);
    if (host.p)
        jb_put(b, host.p, host.len);
    else
        jb_str(b, "localhost");
}

/* ---- the body: data, form, files, json ----------------------------------- */

struct body {
    pfd_str data; /* empty for a form */
    struct pairs form, files;
};

/* Content-Type's media type is t (case-insensitive, parameters ignored). */
static bool media_is(pfd_str ct, const char *t) {
    size_t n = strlen(t);
    if (!ct.p || ct.len < n || strncasecmp(ct.p, t, n) != 0) return false;
    return ct.len == n || ct.p[n] == ';' || ct.p[n] == ' ' || ct.p[n] == '\t';
}

/* The value of parameter name in a header value ("...; name=value" or
 * name="value"); quoted-pair escapes are undone. p NULL when absent. */
static pfd_str header_param(pfd_req *r, pfd_str v, const char *name) {
    size_t nlen = strlen(name);
    const char *p = v.p, *end = v.p + v.len;
    while (p && p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        if (!semi) break;
        p = semi + 1;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if ((size_t)(end - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == '=') {
            p += nlen + 1;
            if (p < end && *p == '"') {
                char *d = pfd_alloc(r, (size_t)(end - p));
                size_t k = 0;
                if (!d) return (pfd_str){NULL, 0};
                for (p++; p < end && *p != '"'; p++) {
                    if (*p == '\\' && p + 1 < end) p++;
                    d[k++] = *p;
                }
                return (pfd_str){d, k};
            }
            const char *e = p;
            while (e < end && *e != ';' && *e != ' ' && *e != '\t') e++;
            return (pfd_str){p, (size_t)(e - p)};
        }
    }
    return (pfd_str){NULL, 0};
}

/* memmem for text */
static const char *find_text(const char *h, size_t hn, const char *n, size_t nn) {
    return memmem(h, hn, n, nn);
}

/* multipart/form-data (RFC 7578): fields to form, parts with a filename to
 * files. 0, or -1 with *why. */
static int parse_multipart(pfd_req *r, pfd_str ct, pfd_str body, struct body *out,
                           const char **why) {
    pfd_str boundary = header_param(r, ct, "boundary");
    if (!boundary.p || boundary.len == 0 || boundary.len > 200) {
        *why = "multipart/form-data without a boundary";
        return -1;
    }
    char *delim = pfd_alloc(r, boundary.len + 4);
    if (!delim) return -1;
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary.p, boundary.len);
    size_t dlen = boundary.len + 4, max = body.len / dlen + 1;
    if (max > MAX_FORM_PARTS) max = MAX_FORM_PARTS;
    out->form.v = pfd_alloc(r, max * sizeof(struct pair));
    out->files.v = pfd_alloc(r, max * sizeof(struct pair));
    if (!out->form.v || !out->files.v) return -1;
    /* the first delimiter may open the body without its CRLF */
    const char *p = body.p, *end = body.p + body.len;
    if (body.len >= dlen - 2 && memcmp(p, delim + 2, dlen - 2) == 0) {
        p += dlen - 2;
    } else {
        const char *d = find_text(p, body.len, delim, dlen);
        if (!d) goto broken;
        p = d + dlen;
    }
    for (;;) {
        /* after a delimiter: "--" ends, CRLF starts a part */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') return 0;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') goto broken;
        p += 2;
        /* the part's header lines, then an empty line */
        const char *hend, *content;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            hend = p;
            content = p + 2;
        } else {
            hend = find_text(p, (size_t)(end - p), "\r\n\r\n", 4);
            if (!hend) goto broken;
            content = hend + 4;
        }
        const char *next = find_text(content, (size_t)(end - content), delim, dlen);
        if (!next) goto broken;
        pfd_str disp = {NULL, 0}, type = {NULL, 0};
        for (const char *line = p; line < hend;) {
            const char *eol = find_text(line, (size_t)(hend - line), "\r\n", 2);
            if (!eol) eol = hend;
            const char *colon = memchr(line, ':', (size_t)(eol - line));
            if (colon) {
                pfd_str name = {line, (size_t)(colon - line)};
                const char *v = colon + 1;
                while (v < eol && (*v == ' ' || *v == '\t')) v++;
                pfd_str value = {v, (size_t)(eol - v)};
                if (is_lit_ci(name, "Content-Disposition")) disp = value;
                if (is_lit_ci(name, "Content-Type")) type = value;
            }
            line = eol + 2;
        }
        pfd_str name = disp.p ? header_param(r, disp, "name") : (pfd_str){NULL, 0};
        if (name.p) {
            pfd_str filename = header_param(r, disp, "filename");
            pfd_str value = {content, (size_t)(next - content)};
            struct pairs *ps = filename.p ? &out->files : &out->form;
            if (out->files.n + out->form.n >= max) {
                *why = "more than 1000 parts in a multipart/form-data body";
                return -1;
            }
            ps->v[ps->n] = (struct pair){name, value, type, (unsigned)ps->n};
            ps->n++;
        }
        p = next + dlen;
    }
broken:
    *why = "malformed multipart/form-data body";
    return -1;
}

static int parse_body(struct hb *h, struct body *out, const char **why) {
    pfd_req *r = h->r;
    pfd_str body = pfd_body(r), ct = pfd_field(r, PFD_F_CONTENT_TYPE);
    *out = (struct body){.data = body};
    *why = NULL;
    out->form.v = out->files.v = NULL;
    if (media_is(ct, "application/x-www-form-urlencoded")) {
        out->data = (pfd_str){"", 0};
        size_t fields = 1;
        for (size_t i = 0; i < body.len; i++) fields += body.p[i] == '&';
        if (fields > MAX_FORM_PARTS) {
            /* werkzeug's max_form_parts: a body of "&&&..." is not 56 bytes
             * of memory per byte */
            *why = "more than 1000 fields in a form body";
            return -1;
        }
        return parse_urlencoded(r, body.p ? body.p : "", body.len, &out->form);
    }
    if (media_is(ct, "multipart/form-data")) {
        out->data = (pfd_str){"", 0};
        return parse_multipart(r, ct, body, out, why);
    }
    if (!out->data.p) out->data = (pfd_str){"", 0};
    return 0;
}

/* A strict JSON reader (RFC 8259) that only says whether text is JSON. */
struct jr {
    const char *p, *end;
    int depth;
};

static void jr_ws(struct jr *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool jr_value(struct jr *j);

static bool jr_lit(struct jr *j, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0) return false;
    j->p += n;
    return true;
}

static bool jr_string(struct jr *j) {
    if (j->p >= j->end || *j->p != '"') return false;
    for (j->p++; j->p < j->end; j->p++) {
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            return true;
        }
        if (c < 0x20) return false;
        if (c == '\\') {
            if (++j->p >= j->end) return false;
            c = (unsigned char)*j->p;
            if (c == 'u') {
                for (int i = 0; i < 4; i++)
                    if (++j->p >= j->end || hexval(*j->p) < 0) return false;
            } else if (!strchr("\"\\/bfnrt", c) || c == 0) {
                return false;
            }
        }
    }
    return false;
}

static bool jr_number(struct jr *j) {
    const char *p = j->p, *e = j->end;
    if (p < e && *p == '-') p++;
    if (p < e && *p == '0') {
        p++;
    } else {
        if (p >= e || *p < '1' || *p > '9') return false;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && *p == '.') {
        if (++p >= e || *p < '0' || *p > '9') return false;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return false;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    j->p = p;
    return true;
}

static bool jr_value(struct jr *j) {
    jr_ws(j);
    if (j->p >= j->end) return false;
    char c = *j->p;
    if (c == '{' || c == '[') {
        if (++j->depth > JSON_MAX_DEPTH) return false;
        char close = c == '{' ? '}' : ']';
        j->p++;
        jr_ws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            j->depth--;
            return true;
        }
        for (;;) {
            if (c == '{') {
                jr_ws(j);
                if (!jr_string(j)) return false;
                jr_ws(j);
                if (j->p >= j->end || *j->p != ':') return false;
                j->p++;
            }
            if (!jr_value(j)) return false;
            jr_ws(j);
            if (j->p >= j->end) return false;
            if (*j->p == close) {
                j->p++;
                j->depth--;
                return true;
            }
            if (*j->p != ',') return false;
            j->p++;
        }
    }
    if (c == '"') return jr_string(j);
    if (c == 't') return jr_lit(j, "true");
    if (c == 'f') return jr_lit(j, "false");
    if (c == 'n') return jr_lit(j, "null");
    return jr_number(j);
}

/* The body as httpbin's "json": the text itself when it is JSON, else null. */
static void jb_body_json(struct jb *b, pfd_str data) {
    struct jr j = {data.p, data.p + data.len, 0};
    bool ok = data.len && utf8_valid(data.p, data.len) && jr_value(&j);
    if (ok) jr_ws(&j);
    if (ok && j.p == j.end)
        jb_put(b, data.p, data.len);
    else
        jb_str(b, "null");
}

static bool unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* The request-target as werkzeug's request.url shows it (an IRI): escapes
 * of unreserved characters and of whole UTF-8 sequences are decoded, the
 * other escapes stay. */
static void jb_iri(struct jb *b, pfd_str t) {
    unsigned char run[64];
    for (size_t i = 0; i < t.len;) {
        if (t.p[i] != '%' || i + 2 >= t.len || hexval(t.p[i + 1]) < 0 || hexval(t.p[i + 2]) < 0) {
            jb_put(b, t.p + i++, 1);
            continue;
        }
        /* a run of escapes, decoded */
        size_t n = 0;
        while (n < sizeof run && i + 2 < t.len && t.p[i] == '%' && hexval(t.p[i + 1]) >= 0 &&
               hexval(t.p[i + 2]) >= 0) {
            run[n++] = (unsigned char)(hexval(t.p[i + 1]) << 4 | hexval(t.p[i + 2]));
            i += 3;
        }
        for (size_t k = 0; k < n;) {
            size_t len = run[k] >= 0x80 ? json_utf8_len(run + k, n - k) : 0;
            if (len) {
                jb_put(b, run + k, len);
                k += len;
            } else if (unreserved(run[k])) {
                jb_put(b, run + k++, 1);
            } else {
                jb_printf(b, "%%%02X", run[k++]); /* werkzeug writes them upper case */
            }
        }
    }
}

/* ---- httpbin's get_dict ---------------------------------------------------- */

/* The keys of an answer, in the order jsonify sorts them. */
enum {
    K_ARGS = 1 << 0,
    K_DATA = 1 << 1,
    K_DEFLATED = 1 << 2,
    K_FILES = 1 << 3,
    K_FORM = 1 << 4,
    K_GZIPPED = 1 << 5,
    K_HEADERS = 1 << 6,
    K_ID = 1 << 7,
    K_JSON = 1 << 8,
    K_METHOD = 1 << 9,
    K_ORIGIN = 1 << 10,
    K_URL = 1 << 11,
};

#define K_GET  (K_ARGS | K_HEADERS | K_ORIGIN | K_URL)
#define K_BODY (K_GET | K_DATA | K_FILES | K_FORM | K_JSON)

/* The dict of keys; 0, or -1 with why (a bad body) or out of memory. */
static int jb_dict(struct hb *h, struct jb *b, unsigned keys, long id, const char **why) {
    pfd_req *r = h->r;
    struct body body = {{NULL, 0}, {NULL, 0}, {NULL, 0}};
    *why = NULL;
    if ((keys & (K_DATA | K_FILES | K_FORM | K_JSON)) && parse_body(h, &body, why) < 0) return -1;
    bool first = true;
    jb_put(b, "{", 1);
#define KEY(name)                                                                                  \
    do {                                                                                           \
        jb_str(b, first ? "\"" name "\":" : ",\"" name "\":");                                     \
        first = false;                                                                             \
    } while (0)
    if (keys & K_ARGS) {
        struct pairs args;
        if (query_pairs(r, &args) < 0) return -1;
        KEY("args");
        jb_multidict(b, &args, false);
    }
    if (keys & K_DATA) {
        KEY("data");
        jb_json_safe(b, body.data, (pfd_str){NULL, 0});
    }
    if (keys & K_DEFLATED) {
        KEY("deflated");
        jb_str(b, "true");
    }
    if (keys & K_FILES) {
        KEY("files");
        jb_multidict(b, &body.files, true);
    }
    if (keys & K_FORM) {
        KEY("form");
        jb_multidict(b, &body.form, false);
    }
    if (keys & K_GZIPPED) {
        KEY("gzipped");
        jb_str(b, "true");
    }
    if (keys & K_HEADERS) {
        KEY("headers");
        if (jb_headers(h, b) < 0) return -1;
    }
    if (keys & K_ID) {
        KEY("id");
        jb_printf(b, "%ld", id);
    }
    if (keys & K_JSON) {
        KEY("json");
        jb_body_json(b, body.data);
    }
    if (keys & K_METHOD) {
        KEY("method");
        jb_jsonz(b, pfd_method(r));
    }
    if (keys & K_ORIGIN) {
        pfd_str o = origin(h);
        KEY("origin");
        jb_json(b, o.p, o.len, true);
    }
    if (keys & K_URL) {
        struct jb u = {0};
        jb_scheme_host(h, &u);
        jb_iri(&u, pfd_target(r));
        KEY("url");
        jb_json(b, u.p ? u.p : "", u.len, false);
        b->oom |= u.oom;
        free(u.p);
    }
#undef KEY
    jb_put(b, "}", 1);
    return b->oom ? -1 : 0;
}

/* ---- answers --------------------------------------------------------------- */

/* 4xx with a line of text naming the problem. */
static int bad(pfd_req *r, int status, const char *msg) {
    if (!msg) return PFD_ERROR;
    char *text = pfd_sprintf(r, "%s\n", msg);
    if (!text) return PFD_ERROR;
    return pfd_text(r, status, text);
}

/* Sends b as the whole body (JSON unless said) and frees it. */
static int send_jb(pfd_req *r, int status, struct jb *b, const char *type) {
    int rc = PFD_ERROR;
    if (!b->oom) {
        pfd_status(r, status);
        pfd_content_type(r, type ? type : "application/json");
        rc = pfd_write(r, b->p, b->len) < 0 ? PFD_ERROR : PFD_OK;
    }
    free(b->p);
    *b = (struct jb){0};
    return rc;
}

/* A get_dict answer with keys (jsonify adds a newline). */
static int answer_dict(struct hb *h, unsigned keys) {
    struct jb b = {0};
    const char *why;
    if (jb_dict(h, &b, keys, 0, &why) < 0) {
        free(b.p);
        return why ? bad(h->r, 400, why) : PFD_ERROR;
    }
    jb_put(&b, "\n", 1);
    return send_jb(h->r, 200, &b, NULL);
}

static int ep_get(struct hb *h, pfd_str arg) {
    return answer_dict(h, K_GET);
}

static int ep_body(struct hb *h, pfd_str arg) {
    return answer_dict(h, K_BODY);
}

static int ep_anything(struct hb *h, pfd_str arg) {
    return answer_dict(h, K_BODY | K_METHOD);
}

static int ep_headers(struct hb *h, pfd_str arg) {
    return answer_dict(h, K_HEADERS);
}

static int ep_ip(struct hb *h, pfd_str arg) {
    return answer_dict(h, K_ORIGIN);
}

static int ep_user_agent(struct hb *h, pfd_str arg) {
    struct jb b = {0};
    pfd_str ua = pfd_field(h->r, PFD_F_USER_AGENT);
    jb_str(&b, "{\"user-agent\":");
    if (ua.p)
        jb_json(&b, ua.p, ua.len, true);
    else
        jb_str(&b, "null");
    jb_str(&b, "}\n");
    return send_jb(h->r, 200, &b, NULL);
}

static int ep_uuid(struct hb *h, pfd_str arg) {
    char u[37];
    uuid4(u);
    char *text = pfd_sprintf(h->r, "{\"uuid\":\"%s\"}\n", u);
    return text ? pfd_json(h->r, 200, text) : PFD_ERROR;
}

/* gzip (windowBits 31) or zlib (15) of the get_dict answer. */
static int compressed(struct hb *h, bool gzip) {
    pfd_req *r = h->r;
    struct jb b = {0};
    const char *why;
    if (jb_dict(h, &b, K_HEADERS | K_METHOD | K_ORIGIN | (gzip ? K_GZIPPED : K_DEFLATED), 0, &why) <
        0) {
        free(b.p);
        return PFD_ERROR;
    }
    jb_put(&b, "\n", 1);
    z_stream z = {0};
    /* a 2 KiB window and small tables (16 KiB of state, not zlib's default
     * 256 KiB, whose fresh pages cost 0.6 ms a request): the answer is
     * a few hundred bytes, and any inflater reads any window size */
    int rc = deflateInit2(&z, gzip ? 4 : Z_DEFAULT_COMPRESSION, Z_DEFLATED, gzip ? 16 + 11 : 11, 4,
                          Z_DEFAULT_STRATEGY);
    unsigned char *out = NULL;
    size_t cap = 0;
    if (rc == Z_OK && !b.oom) {
        cap = deflateBound(&z, b.len) + 32;
        out = pfd_alloc(r, cap);
    }
    if (out) {
        z.next_in = (unsigned char *)b.p;
        z.avail_in = (uInt)b.len;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        rc = deflate(&z, Z_FINISH);
    }
    size_t len = cap - z.avail_out;
    if (rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR) deflateEnd(&z);
    free(b.p);
    if (!out || rc != Z_STREAM_END) return PFD_ERROR;
    pfd_content_type(r, "application/json");
    pfd_header_add(r, "Content-Encoding", gzip ? "gzip" : "deflate");
    return pfd_body_ref(r, out, len, NULL, NULL) < 0 ? PFD_ERROR : PFD_OK;
}

static int ep_gzip(struct hb *h, pfd_str arg) {
    return compressed(h, true);
}

static int ep_deflate(struct hb *h, pfd_str arg) {
    return compressed(h, false);
}

/* ---- status codes ------------------------------------------------------- */

/* A Location below the route: base + path. */
static const char *below(struct hb *h, const char *path) {
    return pfd_sprintf(h->r, "%.*s%s", (int)h->base.len, h->base.p, path);
}

/* httpbin's status_code(): the answer of a status, with its extras. */
static int answer_status(struct hb *h, int code) {
    pfd_req *r = h->r;
    pfd_status(r, code);
    switch (code) {
    case 301:
    case 302:
    case 303:
    case 305:
    case 307: {
        const char *loc = below(h, "/redirect/1");
        return loc && pfd_header_add(r, "Location", loc) == 0 ? PFD_OK : PFD_ERROR;
    }
    case 304: return PFD_OK;
    case 401: return pfd_header_add(r, "WWW-Authenticate", "Basic realm=\"Fake Realm\"");
    case 402:
        pfd_header_add(r, "x-more-info", "https://www.rfc-editor.org/rfc/rfc9110#section-15.5.3");
        return pfd_write(r, "Payment required: this one is not free.", 39);
    case 406:
        pfd_content_type(r, "application/json");
        return pfd_printf(r, "{\"message\": \"Client did not request a supported media type.\", "
                             "\"accept\": [\"image/webp\", \"image/svg+xml\", \"image/jpeg\", "
                             "\"image/png\", \"image/*\"]}");
    case 407: return pfd_header_add(r, "Proxy-Authenticate", "Basic realm=\"Fake Realm\"");
    case 418:
        pfd_header_add(r, "x-more-info", "http://tools.ietf.org/html/rfc2324");
        return pfd_printf(r, "\n    I'm a teapot\n\n       (  )\n     .-\"\"\"\"-._\n"
                             "    |        |_)\n     \\      /\n      '----'\n");
    default: return pfd_content_type(r, "text/html; charset=utf-8");
    }
}

/* /status/200, /status/200,500 (equal weights), /status/200:0.9,500:0.1 */
static int ep_status(struct hb *h, pfd_str codes) {
    pfd_req *r = h->r;
    size_t max = 1;
    for (size_t i = 0; i < codes.len; i++) max += codes.p[i] == ',';
    long *code = pfd_alloc(r, max * sizeof *code);
    double *weight = pfd_alloc(r, max * sizeof *weight), total = 0;
    if (!code || !weight) return PFD_ERROR;
    size_t n = 0;
    for (size_t i = 0; i <= codes.len;) {
        const char *start = codes.p + i, *comma = memchr(start, ',', codes.len - i);
        size_t len = comma ? (size_t)(comma - start) : codes.len - i;
        i += len + 1;
        pfd_str c = {start, len}, w = {"1", 1};
        const char *colon = memchr(start, ':', len);
        if (colon) {
            c.len = (size_t)(colon - start);
            w = (pfd_str){colon + 1, len - c.len - 1};
            if (memchr(w.p, ':', w.len)) return bad(r, 400, "Invalid status code");
        }
        if (parse_int(c, &code[n]) < 0 || parse_float(r, w, &weight[n]) < 0 || weight[n] < 0 ||
            isinf(weight[n]))
            return bad(r, 400, "Invalid status code");
        total += weight[n++];
        if (!comma) break;
    }
    long pick = code[0];
    if (n == 1 && memchr(codes.p, ':', codes.len)) return bad(r, 400, "Invalid status code");
    if (n > 1) {
        if (!(total > 0)) return bad(r, 400, "Invalid status code: the weights add up to 0");
        double x = rng_unit(rng_thread()) * total, sum = 0;
        pick = code[n - 1];
        for (size_t i = 0; i < n; i++) {
            sum += weight[i];
            if (x < sum) {
                pick = code[i];
                break;
            }
        }
    }
    if (pick < 200 || pick > 599)
        return bad(r, 400, pfd_sprintf(r, "status %ld: preforkd answers 200 to 599 only", pick));
    return answer_status(h, (int)pick);
}

/* ---- delays ---------------------------------------------------------------- */

static void delay_done(pfd_req *r, void *arg) {
    struct hb *h = arg;
    if (pfd_cancelled(r)) return; /* [any]: also on the pool path */
    if (answer_dict(h, K_ARGS | K_DATA | K_FILES | K_FORM | K_HEADERS | K_ORIGIN | K_URL) < 0)
        pfd_error(r, 500);
}

/* Seconds as text (float, capped at 10 s) in ms; -1 when no such number. */
static long seconds_ms(pfd_req *r, pfd_str s, long dflt) {
    double v;
    if (!s.p) return dflt;
    if (parse_float(r, s, &v) < 0 || v < 0) return -1;
    return v * 1000 >= MAX_DELAY_MS ? MAX_DELAY_MS : (long)(v * 1000 + 0.5);
}

static int ep_delay(struct hb *h, pfd_str arg) {
    long ms = seconds_ms(h->r, arg, 0);
    if (ms < 0) return bad(h->r, 400, "delay: not a number of seconds >= 0");
    /* the state outlives this call: copy it to the request's memory */
    struct hb *keep = pfd_alloc(h->r, sizeof *keep);
    if (!keep) return PFD_ERROR;
    *keep = *h;
    if (h->pool) {
        if (pfd_sleep(h->r, (unsigned)ms) < 0) return PFD_OK; /* nobody to answer */
        delay_done(h->r, keep);
        return PFD_OK;
    }
    return pfd_after(h->r, (unsigned)ms, delay_done, keep) < 0 ? PFD_ERROR : PFD_OK;
}

/* ---- streams of bytes ------------------------------------------------------ */

/* A body sent in pieces: of chunk bytes each, or ending at ends[], with
 * pause_ms between pieces. */
struct feed {
    const char *data;
    size_t len, pos, chunk;
    const size_t *ends;
    size_t next;
    unsigned pause_ms;
};

static size_t feed_piece(const struct feed *f) {
    size_t stop = f->ends ? f->ends[f->next] : f->pos + f->chunk;
    return (stop > f->len ? f->len : stop) - f->pos;
}

static void feed_more(pfd_req *r, void *arg) {
    struct feed *f = arg;
    while (f->pos < f->len && !pfd_gone(r)) {
        size_t n = feed_piece(f);
        int rc = pfd_stream_write(r, f->data + f->pos, n);
        if (rc == PFD_AGAIN) {
            if (pfd_on_drain(r, feed_more, f) == 0) return; /* the client is slow */
            break;
        }
        if (rc < 0) break;
        f->pos += n;
        f->next++;
        if (f->pause_ms && f->pos < f->len) {
            if (pfd_after(r, f->pause_ms, feed_more, f) == 0) return;
            break;
        }
    }
    pfd_stream_end(r);
}

/* Streams f (in the request's memory) with the status and headers set. */
static int feed_start(struct hb *h, struct feed *f) {
    pfd_req *r = h->r;
    if (pfd_stream_begin(r) < 0) return PFD_ERROR;
    if (!h->pool) {
        feed_more(r, f);
        return PFD_OK;
    }
    while (f->pos < f->len) {
        size_t n = feed_piece(f);
        if (pfd_stream_write(r, f->data + f->pos, n) < 0) break; /* gone */
        f->pos += n;
        f->next++;
        if (f->pause_ms && f->pos < f->len && pfd_sleep(r, f->pause_ms) < 0) break;
    }
    pfd_stream_end(r);
    return PFD_OK;
}

/* n random bytes; from ?seed=N the same ones each time. NULL: 400 answered
 * (*status) or out of memory. */
static char *random_bytes(struct hb *h, size_t n, bool *answered) {
    pfd_req *r = h->r;
    pfd_str seed;
    struct rng g, *gp = rng_thread();
    *answered = false;
    int found = query_get(r, "seed", true, &seed);
    if (found < 0) return NULL;
    if (found) {
        long s;
        if (parse_int(seed, &s) < 0) {
            *answered = true;
            bad(r, 400, "seed: not an integer");
            return NULL;
        }
        rng_seed(&g, (uint64_t)s);
        gp = &g;
    }
    char *p = pfd_alloc(r, n ? n : 1);
    if (!p) return NULL;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = rng_next(gp);
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
    return p;
}

/* ?chunk_size=N (at least 1; default 10 KiB); 0 when it is no integer. */
static size_t chunk_size(struct hb *h) {
    pfd_str v;
    long n;
    int found = query_get(h->r, "chunk_size", true, &v);
    if (found <= 0) return found < 0 ? 0 : 10 * 1024;
    if (parse_int(v, &n) < 0) return 0;
    return n < 1 ? 1 : (size_t)n;
}

static int ep_bytes(struct hb *h, pfd_str arg) {
    long n = path_int(arg, MAX_BYTES);
    bool answered;
    char *p = random_bytes(h, (size_t)(n < 0 ? MAX_BYTES : n), &answered);
    if (!p) return answered ? PFD_OK : PFD_ERROR;
    pfd_content_type(h->r, "application/octet-stream");
    return pfd_body_ref(h->r, p, (size_t)(n < 0 ? MAX_BYTES : n), NULL, NULL);
}

static int ep_stream_bytes(struct hb *h, pfd_str arg) {
    long n = path_int(arg, MAX_BYTES);
    size_t chunk = chunk_size(h);
    if (!chunk) return bad(h->r, 400, "chunk_size: not an integer");
    bool answered;
    size_t len = (size_t)(n < 0 ? MAX_BYTES : n);
    char *p = random_bytes(h, len, &answered);
    struct feed *f = p ? pfd_alloc(h->r, sizeof *f) : NULL;
    if (!f) return answered ? PFD_OK : PFD_ERROR;
    *f = (struct feed){.data = p, .len = len, .chunk = chunk};
    pfd_content_type(h->r, "application/octet-stream");
    return feed_start(h, f);
}

/* /stream/n: n (at most 100) lines of JSON, one piece each. */
static int ep_stream(struct hb *h, pfd_str arg) {
    long n = path_int(arg, MAX_STREAM_LINES);
    if (n < 0) n = MAX_STREAM_LINES;
    size_t *ends = pfd_alloc(h->r, ((size_t)n + 1) * sizeof *ends);
    struct feed *f = pfd_alloc(h->r, sizeof *f);
    if (!ends || !f) return PFD_ERROR;
    struct jb b = {0};
    const char *why;
    for (long i = 0; i < n; i++) {
        if (jb_dict(h, &b, K_GET | K_ID, i, &why) < 0) break;
        jb_put(&b, "\n", 1);
        ends[i] = b.len;
    }
    char *data = b.oom ? NULL : pfd_alloc(h->r, b.len + 1);
    if (data && b.len) memcpy(data, b.p, b.len);
    free(b.p);
    if (!data) return PFD_ERROR;
    *f = (struct feed){.data = data, .len = b.len, .ends = ends};
    pfd_content_type(h->r, "application/json");
    return feed_start(h, f);
}

/* /range/n: n bytes "abc..." with Range (httpbin's reading of it), ETag
 * range{n}; ?duration=S spreads them over S seconds, ?chunk_size=N. */
static int ep_range(struct hb *h, pfd_str arg) {
    pfd_req *r = h->r;
    long n = path_int(arg, LONG_MAX / 10);
    if (n == -2) return bad(r, 404, "number of bytes must be in the range (0, 102400]");
    if (pfd_header_addf(r, "ETag", "range%ld", n) < 0 ||
        pfd_header_add(r, "Accept-Ranges", "bytes") < 0)
        return PFD_ERROR;
    if (n <= 0 || n > MAX_BYTES) {
        pfd_status(r, 404);
        pfd_content_type(r, "text/plain; charset=utf-8");
        return pfd_printf(r, "number of bytes must be in the range (0, %d]", MAX_BYTES);
    }
    size_t chunk = chunk_size(h);
    pfd_str dur;
    if (!chunk) return bad(r, 400, "chunk_size: not an integer");
    if (query_get(r, "duration", true, &dur) < 0) return PFD_ERROR;
    long ms = seconds_ms(r, dur, 0);
    if (ms < 0) return bad(r, 400, "duration: not a number of seconds >= 0");
    /* "bytes=A-B", "bytes=A-", "bytes=-B": what cannot be read is open */
    long first = -1, last = -1;
    pfd_str range = pfd_field(r, PFD_F_RANGE);
    if (range.p && range.len > 5 && memcmp(range.p, "bytes", 5) == 0) {
        const char *eq = memchr(range.p, '=', range.len);
        const char *eq2 = eq ? memchr(eq + 1, '=', range.len - (size_t)(eq - range.p) - 1) : NULL;
        if (eq && !eq2) {
            pfd_str spec = {eq + 1, range.len - (size_t)(eq - range.p) - 1};
            const char *dash = memchr(spec.p, '-', spec.len);
            pfd_str a = {spec.p, dash ? (size_t)(dash - spec.p) : spec.len};
            pfd_str b = {NULL, 0};
            if (dash) {
                b.p = dash + 1;
                const char *d2 = memchr(b.p, '-', (size_t)(spec.p + spec.len - b.p));
                b.len = (size_t)((d2 ? d2 : spec.p + spec.len) - b.p);
            }
            long v;
            if (parse_int(a, &v) == 0) first = v;
            if (b.p && parse_int(b, &v) == 0) last = v;
            if (first != -1 && first < 0) first = -2; /* a negative start: unsatisfiable */
        }
    }
    if (first == -1 && last == -1) {
        first = 0;
        last = n - 1;
    } else if (first == -1) {
        first = n - last > 0 ? n - last : 0;
        last = n - 1;
    } else if (last == -1) {
        last = n - 1;
    }
    if (first > last || first < 0 || first >= n || last < 0 || last >= n) {
        pfd_status(r, 416);
        pfd_content_type(r, "text/plain; charset=utf-8");
        return pfd_header_addf(r, "Content-Range", "bytes */%ld", n);
    }
    size_t len = (size_t)(last - first + 1);
    char *p = pfd_alloc(r, len);
    if (!p) return PFD_ERROR;
    for (size_t i = 0; i < len; i++) p[i] = (char)('a' + ((size_t)first + i) % 26);
    pfd_status(r, len == (size_t)n ? 200 : 206);
    pfd_content_type(r, "application/octet-stream");
    if (pfd_header_addf(r, "Content-Range", "bytes %ld-%ld/%ld", first, last, n) < 0)
        return PFD_ERROR;
    if (ms == 0) return pfd_body_ref(r, p, len, NULL, NULL);
    struct feed *f = pfd_alloc(r, sizeof *f);
    if (!f) return PFD_ERROR;
    size_t pieces = (len + chunk - 1) / chunk;
    *f = (struct feed){.data = p, .len = len, .chunk = chunk};
    f->pause_ms = (unsigned)((uint64_t)ms / pieces);
    return feed_start(h, f);
}

/* /drip: numbytes '*' over duration seconds after delay, status code. */
struct drip {
    uint64_t start;
    unsigned duration;
    size_t n, sent;
};

static const char stars[1024] = {[0 ... 1023] = '*'};

static void drip_end(pfd_req *r, void *arg) {
    pfd_stream_end(r);
}

static void drip_tick(pfd_req *r, void *arg) {
    struct drip *d = arg;
    if (pfd_gone(r)) {
        pfd_stream_end(r);
        return;
    }
    uint64_t el = now_ms() - d->start;
    /* byte i is due at i * duration / n */
    size_t due = d->duration ? (size_t)(el * d->n / d->duration + 1) : d->n;
    if (due > d->n) due = d->n;
    while (d->sent < due) {
        size_t k = due - d->sent < sizeof stars ? due - d->sent : sizeof stars;
        int rc = pfd_stream_write(r, stars, k);
        if (rc == PFD_AGAIN && pfd_on_drain(r, drip_tick, d) == 0) return;
        if (rc != 0) {
            pfd_stream_end(r);
            return;
        }
        d->sent += k;
    }
    if (d->sent == d->n) {
        if (el < d->duration && pfd_after(r, (unsigned)(d->duration - el), drip_end, d) == 0)
            return;
        pfd_stream_end(r);
        return;
    }
    uint64_t next = (d->sent * (uint64_t)d->duration + d->n - 1) / d->n;
    uint64_t wait = next > el ? next - el : 1;
    if (wait < 10 && d->duration >= 10) wait = 10; /* a tick per 10 ms at most */
    if (pfd_after(r, (unsigned)wait, drip_tick, d) < 0) pfd_stream_end(r);
}

static void drip_begin(pfd_req *r, void *arg) {
    struct drip *d = arg;
    if (pfd_gone(r)) return;
    if (pfd_stream_begin(r) < 0) return;
    d->start = now_ms();
    drip_tick(r, d);
}

static int ep_drip(struct hb *h, pfd_str arg) {
    pfd_req *r = h->r;
    pfd_str v;
    long numbytes = 10, code = 200;
    int found;
    if ((found = query_get(r, "numbytes", true, &v)) < 0) return PFD_ERROR;
    if (found && parse_int(v, &numbytes) < 0) return bad(r, 400, "numbytes: not an integer");
    if (numbytes <= 0) return bad(r, 400, "number of bytes must be positive");
    if (numbytes > MAX_DRIP_BYTES) numbytes = MAX_DRIP_BYTES;
    if ((found = query_get(r, "code", true, &v)) < 0) return PFD_ERROR;
    if (found && (parse_int(v, &code) < 0 || code < 200 || code > 599))
        return bad(r, 400, "code: not a status of 200 to 599");
    if ((found = query_get(r, "duration", true, &v)) < 0) return PFD_ERROR;
    long duration = seconds_ms(r, found ? v : (pfd_str){"2", 1}, 2000);
    if ((found = query_get(r, "delay", true, &v)) < 0) return PFD_ERROR;
    long delay = seconds_ms(r, found ? v : (pfd_str){NULL, 0}, 0);
    if (duration < 0) return bad(r, 400, "duration: not a number of seconds >= 0");
    if (delay < 0) return bad(r, 400, "delay: not a number of seconds >= 0");
    struct drip *d = pfd_alloc(r, sizeof *d);
    if (!d) return PFD_ERROR;
    *d = (struct drip){.duration = (unsigned)duration, .n = (size_t)numbytes};
    pfd_status(r, (int)code);
    pfd_content_type(r, "application/octet-stream");
    if (!h->pool) {
        if (delay == 0) {
            drip_begin(r, d);
            return PFD_OK;
        }
        return pfd_after(r, (unsigned)delay, drip_begin, d) < 0 ? PFD_ERROR : PFD_OK;
    }
    /* on the pool: the same timing, asleep on this thread */
    if (delay && pfd_sleep(r, (unsigned)delay) < 0) return PFD_OK;
    if (pfd_stream_begin(r) < 0) return PFD_ERROR;
    uint64_t start = now_ms();
    for (size_t i = 0; i < d->n;) {
        uint64_t el = now_ms() - start;
        size_t due = d->duration ? (size_t)(el * d->n / d->duration + 1) : d->n;
        if (due > d->n) due = d->n;
        for (; i < due; i += sizeof stars)
            if (pfd_stream_write(r, stars, due - i < sizeof stars ? due - i : sizeof stars) < 0)
                goto out;
        i = due;
        if (i < d->n) {
            uint64_t next = (i * (uint64_t)d->duration + d->n - 1) / d->n;
            uint64_t wait = next > el ? next - el : 1;
            if (pfd_sleep(r, (unsigned)(wait < 10 && d->duration >= 10 ? 10 : wait)) < 0) goto out;
        }
    }
    uint64_t el = now_ms() - start;
    if (el < d->duration) pfd_sleep(r, (unsigned)(d->duration - el));
out:
    pfd_stream_end(r);
    return PFD_OK;
}

/* ---- redirects --------------------------------------------------------------- */

/* text with & < > " as HTML entities */
static void jb_html(struct jb *b, const char *s) {
    for (; *s; s++) switch (*s) {
        case '&': jb_str(b, "&amp;"); break;
        case '<': jb_str(b, "&lt;"); break;
        case '>': jb_str(b, "&gt;"); break;
        case '"': jb_str(b, "&quot;"); break;
        default: jb_put(b, s, 1);
        }
}

/* 302 to loc; html: with a page that links it (Flask's redirect()). */
static int redirect_to(struct hb *h, const char *loc, bool html) {
    pfd_req *r = h->r;
    if (!loc) return PFD_ERROR;
    pfd_status(r, 302);
    if (pfd_header_add(r, "Location", loc) < 0) return PFD_ERROR;
    pfd_content_type(r, "text/html; charset=utf-8");
    if (!html) return PFD_OK;
    struct jb b = {0};
    jb_str(&b, "<!doctype html>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n"
               "<p>You should be redirected automatically to the target URL: <a href=\"");
    jb_html(&b, loc);
    jb_str(&b, "\">");
    jb_html(&b, loc);
    jb_str(&b, "</a>. If not, click the link.\n");
    return send_jb(r, 302, &b, "text/html; charset=utf-8");
}

/* An absolute URL of a path below the route. */
static const char *absolute(struct hb *h, const char *fmt, long n) {
    struct jb b = {0};
    jb_scheme_host(h, &b);
    jb_put(&b, h->base.p, h->base.len);
    jb_printf(&b, fmt, n);
    jb_put(&b, "", 1);
    char *s = b.oom ? NULL : pfd_sprintf(h->r, "%s", b.p);
    free(b.p);
    return s;
}

static long redirect_count(struct hb *h, pfd_str arg) {
    long n = path_int(arg, 1000000000L);
    return n <= 0 ? -1 : n;
}

static int ep_redirect(struct hb *h, pfd_str arg) {
    long n = redirect_count(h, arg);
    if (n < 0) return bad(h->r, 400, "n: a number of redirects from 1");
    pfd_str v;
    int found = query_get(h->r, "absolute", false, &v);
    if (found < 0) return PFD_ERROR;
    bool abs = found && is_lit_ci(v, "true");
    if (abs)
        return redirect_to(
            h, n == 1 ? absolute(h, "/get", 0) : absolute(h, "/absolute-redirect/%ld", n - 1),
            true);
    return redirect_to(h,
                       n == 1 ? below(h, "/get")
                              : pfd_sprintf(h->r, "%.*s/relative-redirect/%ld", (int)h->base.len,
                                            h->base.p, n - 1),
                       true);
}

static int ep_relative_redirect(struct hb *h, pfd_str arg) {
    long n = redirect_count(h, arg);
    if (n < 0) return bad(h->r, 400, "n: a number of redirects from 1");
    return redirect_to(h,
                       n == 1 ? below(h, "/get")
                              : pfd_sprintf(h->r, "%.*s/relative-redirect/%ld", (int)h->base.len,
                                            h->base.p, n - 1),
                       false);
}

static int ep_absolute_redirect(struct hb *h, pfd_str arg) {
    long n = redirect_count(h, arg);
    if (n < 0) return bad(h->r, 400, "n: a number of redirects from 1");
    return redirect_to(
        h, n == 1 ? absolute(h, "/get", 0) : absolute(h, "/absolute-redirect/%ld", n - 1), true);
}

/* A header value a handler may send: no control character but HTAB. */
static bool value_ok(pfd_str v) {
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    }
    return true;
}

/* /redirect-to?url=U[&status_code=3xx]: Location is U as given */
static int ep_redirect_to(struct hb *h, pfd_str arg) {
    pfd_req *r = h->r;
    pfd_str url, sc;
    int found = query_get(r, "url", true, &url), found_sc = query_get(r, "status_code", true, &sc);
    if (found < 0 || found_sc < 0) return PFD_ERROR;
    if (!found) return bad(r, 400, "url: missing");
    if (!value_ok(url)) return bad(r, 400, "url: a control character");
    long status = 302;
    if (found_sc) {
        if (parse_int(sc, &status) < 0) return bad(r, 400, "status_code: not an integer");
        if (status < 300 || status >= 400) status = 302;
    }
    pfd_status(r, (int)status);
    pfd_content_type(r, "text/html; charset=utf-8");
    const char *loc = cstr(r, url);
    return loc && pfd_header_add(r, "Location", loc) == 0 ? PFD_OK : PFD_ERROR;
}

/* ---- cookies ----------------------------------------------------------------- */

static bool token(pfd_str s) {
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (!s.len) return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c && strchr(extra, c))))
            return false;
    }
    return true;
}

/* The Cookie field's pairs, first of each name, as werkzeug reads them. */
static int cookie_pairs(pfd_req *r, struct pairs *out) {
    pfd_str c = pfd_header(r, "Cookie");
    size_t max = 1;
    for (size_t i = 0; i < c.len; i++) max += c.p[i] == ';';
    out->n = 0;
    if (!(out->v = pfd_alloc(r, max * sizeof *out->v))) return -1;
    for (size_t i = 0; c.p && i < c.len;) {
        const char *start = c.p + i, *semi = memchr(start, ';', c.len - i);
        size_t len = semi ? (size_t)(semi - start) : c.len - i;
        i += len + 1;
        const char *eq = memchr(start, '=', len);
        if (!eq) continue;
        pfd_str name = {start, (size_t)(eq - start)}, value = {eq + 1, len - name.len - 1};
        while (name.len && (*name.p == ' ' || *name.p == '\t')) name.p++, name.len--;
        while (name.len && (name.p[name.len - 1] == ' ' || name.p[name.len - 1] == '\t'))
            name.len--;
        while (value.len && (*value.p == ' ' || *value.p == '\t')) value.p++, value.len--;
        while (value.len && (value.p[value.len - 1] == ' ' || value.p[value.len - 1] == '\t'))
            value.len--;
        if (value.len >= 2 && value.p[0] == '"' && value.p[value.len - 1] == '"') {
            char *d = pfd_alloc(r, value.len);
            size_t k = 0;
            if (!d) return -1;
            for (size_t j = 1; j + 1 < value.len; j++) {
                if (value.p[j] == '\\' && j + 2 < value.len) j++;
                d[k++] = value.p[j];
            }
            value = (pfd_str){d, k};
        }
        bool seen = false;
        for (size_t j = 0; j < out->n && !seen; j++)
            seen =
                out->v[j].name.len == name.len && memcmp(out->v[j].name.p, name.p, name.len) == 0;
        if (seen || !name.len) continue;
        out->v[out->n] = (struct pair){name, value, {NULL, 0}, (unsigned)out->n};
        out->n++;
    }
    return 0;
}

static bool env_cookie(pfd_str name) {
    static const char *const env[] = {"_gauges_unique",
                                      "_gauges_unique_year",
                                      "_gauges_unique_month",
                                      "_gauges_unique_day",
                                      "_gauges_unique_hour",
                                      "__utmz",
                                      "__utma",
                                      "__utmb"};
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
        if (is_lit(name, env[i])) return true;
    return false;
}

static int ep_cookies(struct hb *h, pfd_str arg) {
    struct pairs ps;
    if (cookie_pairs(h->r, &ps) < 0) return PFD_ERROR;
    size_t k = 0;
    for (size_t i = 0; i < ps.n; i++)
        if (h->show_env || !env_cookie(ps.v[i].name)) ps.v[k++] = ps.v[i];
    ps.n = k;
    struct jb b = {0};
    jb_str(&b, "{\"cookies\":");
    jb_multidict(&b, &ps, false);
    jb_str(&b, "}\n");
    return send_jb(h->r, 200, &b, NULL);
}

/* A cookie value as werkzeug's dump_cookie writes it: quoted, with octal
 * escapes, when it holds more than letters, digits and a few marks. */
static void jb_cookie_value(struct jb *b, pfd_str v) {
    static const char legal[] = "!#$%&'*+-.^_`|~:";
    bool plain = true;
    for (size_t i = 0; i < v.len && plain; i++) {
        char c = v.p[i];
        plain = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c && strchr(legal, c));
    }
    if (plain) {
        jb_put(b, v.p, v.len);
        return;
    }
    jb_put(b, "\"", 1);
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c == '"' || c == '\\')
            jb_printf(b, "\\%c", c);
        else if (c == ',' || c == ';' || c < 0x20 || c >= 0x7f)
            jb_printf(b, "\\%03o", c);
        else
            jb_put(b, &c, 1);
    }
    jb_put(b, "\"", 1);
}

/* Set-Cookie for each name (first value), then 302 to /cookies. */
static int set_cookies(struct hb *h, struct pairs *ps, bool del) {
    pfd_req *r = h->r;
    for (size_t i = 0; i < ps->n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = ps->v[j].name.len == ps->v[i].name.len &&
                   memcmp(ps->v[j].name.p, ps->v[i].name.p, ps->v[i].name.len) == 0;
        if (seen) continue;
        if (!token(ps->v[i].name))
            return bad(r, 400, "cookie names are tokens (letters, digits, !#$%&'*+-.^_`|~)");
        struct jb b = {0};
        jb_put(&b, ps->v[i].name.p, ps->v[i].name.len);
        jb_put(&b, "=", 1);
        if (del)
            jb_str(&b, "; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0");
        else
            jb_cookie_value(&b, ps->v[i].value);
        jb_str(&b, "; Path=/");
        jb_put(&b, "", 1);
        int rc = b.oom ? -1 : pfd_header_add(r, "Set-Cookie", b.p);
        free(b.p);
        if (rc < 0) return PFD_ERROR;
    }
    return redirect_to(h, below(h, "/cookies"), true);
}

static int ep_cookies_set(struct hb *h, pfd_str arg) {
    struct pairs ps;
    if (query_pairs(h->r, &ps) < 0) return PFD_ERROR;
    return set_cookies(h, &ps, false);
}

static int ep_cookies_delete(struct hb *h, pfd_str arg) {
    struct pairs ps;
    if (query_pairs(h->r, &ps) < 0) return PFD_ERROR;
    return set_cookies(h, &ps, true);
}

/* Splits "a/b" into two non-empty segments. */
static bool two_segments(pfd_str s, pfd_str *a, pfd_str *b) {
    const char *slash = memchr(s.p, '/', s.len);
    if (!slash) return false;
    *a = (pfd_str){s.p, (size_t)(slash - s.p)};
    *b = (pfd_str){slash + 1, s.len - a->len - 1};
    return a->len && b->len && !memchr(b->p, '/', b->len);
}

static int ep_cookies_set_path(struct hb *h, pfd_str arg) {
    struct pair p = {.order = 0};
    if (!two_segments(arg, &p.name, &p.value)) return pfd_error(h->r, 404);
    struct pairs ps = {&p, 1};
    return set_cookies(h, &ps, false);
}

/* ---- authentication ------------------------------------------------------------ */

/* Base64 (standard or URL-safe alphabet; other bytes are skipped, as
 * Python's b64decode does) into the request's memory; p NULL when the
 * padding is wrong. */
static pfd_str b64_decode(pfd_req *r, pfd_str s) {
    unsigned char *out = pfd_alloc(r, s.len * 3 / 4 + 4);
    if (!out) return (pfd_str){NULL, 0};
    unsigned v = 0, nq = 0, pads = 0;
    size_t k = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        int d = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '+' || c == '-' ? 62
                : c == '/' || c == '_' ? 63
                                       : -1;
        if (c == '=') {
            pads++;
            if (nq == 2 && pads >= 2) break;
            if (nq == 3 && pads >= 1) break;
            continue;
        }
        if (d < 0) continue;
        v = v << 6 | (unsigned)d;
        if (++nq == 4) {
            out[k++] = (unsigned char)(v >> 16);
            out[k++] = (unsigned char)(v >> 8);
            out[k++] = (unsigned char)v;
            v = nq = 0;
        }
    }
    if (nq == 1 || (nq == 2 && pads < 2) || (nq == 3 && pads < 1)) return (pfd_str){NULL, 0};
    if (nq == 2) out[k++] = (unsigned char)(v >> 4);
    if (nq == 3) {
        out[k++] = (unsigned char)(v >> 10);
        out[k++] = (unsigned char)(v >> 2);
    }
    return (pfd_str){(const char *)out, k};
}

static int basic_auth(struct hb *h, pfd_str arg, int fail_status) {
    pfd_req *r = h->r;
    pfd_str user, passwd;
    if (!two_segments(arg, &user, &passwd)) return pfd_error(r, 404);
    pfd_str auth = pfd_header(r, "Authorization");
    bool ok = false;
    if (auth.len > 6 && strncasecmp(auth.p, "basic ", 6) == 0) {
        pfd_str cred = b64_decode(r, (pfd_str){auth.p + 6, auth.len - 6});
        const char *colon = cred.p ? memchr(cred.p, ':', cred.len) : NULL;
        if (colon) {
            pfd_str u = {cred.p, (size_t)(colon - cred.p)};
            pfd_str p = {colon + 1, cred.len - u.len - 1};
            ok = u.len == user.len && memcmp(u.p, user.p, u.len) == 0 && p.len == passwd.len &&
                 memcmp(p.p, passwd.p, p.len) == 0;
        }
    }
    if (!ok) {
        if (fail_status == 404) return answer_status(h, 404);
        return answer_status(h, 401);
    }
    struct jb b = {0};
    jb_str(&b, "{\"authenticated\":true,\"user\":");
    jb_json(&b, user.p, user.len, false);
    jb_str(&b, "}\n");
    return send_jb(r, 200, &b, NULL);
}

static int ep_basic_auth(struct hb *h, pfd_str arg) {
    return basic_auth(h, arg, 401);
}

static int ep_hidden_basic_auth(struct hb *h, pfd_str arg) {
    return basic_auth(h, arg, 404);
}

static int ep_bearer(struct hb *h, pfd_str arg) {
    pfd_req *r = h->r;
    pfd_str auth = pfd_header(r, "Authorization");
    if (!auth.p) {
        pfd_status(r, 401);
        pfd_content_type(r, "text/html; charset=utf-8");
        return pfd_header_add(r, "WWW-Authenticate", "Bearer");
    }
    /* httpbin takes the token as lstrip('Bearer '): those letters, any order */
    while (auth.len && strchr("Bear ", *auth.p)) auth.p++, auth.len--;
    struct jb b = {0};
    jb_str(&b, "{\"authenticated\":true,\"token\":");
    jb_json(&b, auth.p, auth.len, true);
    jb_str(&b, "}\n");
    return send_jb(r, 200, &b, NULL);
}

/* ---- caching ------------------------------------------------------------------- */

static int ep_cache(struct hb *h, pfd_str arg) {
    pfd_req *r = h->r;
    if (pfd_field(r, PFD_F_IF_MODIFIED_SINCE).len || pfd_field(r, PFD_F_IF_NONE_MATCH).len)
        return answer_status(h, 304);
    char date[64], etag[37], hex[33];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    uuid4(etag);
    size_t k = 0;
    for (const char *p = etag; *p; p++)
        if (*p != '-') hex[k++] = *p;
    hex[k] = '\0';
    if (pfd_header_add(r, "Last-Modified", date) < 0 || pfd_header_add(r, "ETag", hex) < 0)
        return PFD_ERROR;
    return answer_dict(h, K_GET);
}

static int ep_cache_n(struct hb *h, pfd_str arg) {
    long n = path_int(arg, LONG_MAX / 10);
    if (n < 0) return bad(h->r, 400, "max-age: too large");
    if (pfd_header_addf(h->r, "Cache-Control", "public, max-age=%ld", n) < 0) return PFD_ERROR;
    return answer_dict(h, K_GET);
}

/* Whether etag is in a list of If-Match/If-None-Match (or "*"), read as
 * httpbin does (a part's quotes and W/ dropped). *any: the list has one. */
static bool etag_listed(pfd_str list, pfd_str etag, bool *any) {
    *any = false;
    if (!list.p || !list.len) return false;
    bool found = false;
    for (size_t i = 0; i <= list.len;) {
        const char *start = list.p + i, *comma = memchr(start, ',', list.len - i);
        size_t len = comma ? (size_t)(comma - start) : list.len - i;
        i += len + 1;
        const char *p = start, *end = start + len;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/') p += 2;
        if (p < end && *p == '"') p++;
        const char *q = p;
        while (q < end && *q != '"') q++;
        pfd_str part = {p, (size_t)(q - p)};
        *any = true;
        if (is_lit(part, "*") || (part.len == etag.len && memcmp(part.p, etag.p, etag.len) == 0))
            found = true;
        if (!comma) break;
    }
    return found;
}

static int ep_etag(struct hb *h, pfd_str etag) {
    pfd_req *r = h->r;
    bool any_none, any_match;
    bool none_match = etag_listed(pfd_field(r, PFD_F_IF_NONE_MATCH), etag, &any_none);
    bool match = etag_listed(pfd_field(r, PFD_F_IF_MATCH), etag, &any_match);
    const char *tag = cstr(r, etag);
    if (!tag) return PFD_ERROR;
    if (!value_ok(etag)) return bad(r, 400, "etag: a control character");
    if (any_none) {
        if (none_match) {
            answer_status(h, 304);
            return pfd_header_add(r, "ETag", tag);
        }
    } else if (any_match && !match) {
        return answer_status(h, 412);
    }
    if (pfd_header_add(r, "ETag", tag) < 0) return PFD_ERROR;
    return answer_dict(h, K_GET);
}

/* /response-headers?Name=value...: those fields, and a JSON body of the
 * answer's header fields that counts its own length. */
static int ep_response_headers(struct hb *h, pfd_str arg) {
    pfd_req *r = h->r;
    struct pairs args;
    if (query_pairs(r, &args) < 0) return PFD_ERROR;
    pfd_str ctype = {"application/json", 16};
    for (size_t i = 0; i < args.n; i++) {
        struct pair *p = &args.v[i];
        const char *name = cstr(r, p->name);
        if (!name) return PFD_ERROR;
        if (!token(p->name)) return bad(r, 400, pfd_sprintf(r, "%s: not a header name", name));
        if (!value_ok(p->value))
            return bad(r, 400, pfd_sprintf(r, "%s: a control character in its value", name));
        static const char *const own[] = {
            "Content-Length",   "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade",
            "Proxy-Connection", "Trailer",           "Date",       "Server"};
        for (size_t k = 0; k < sizeof own / sizeof own[0]; k++)
            if (is_lit_ci(p->name, own[k]))
                return bad(r, 400, pfd_sprintf(r, "%s: preforkd writes this field itself", name));
        if (is_lit_ci(p->name, "Content-Type")) ctype = p->value;
    }
    /* the fields shown: the arguments, Content-Type and Content-Length */
    struct pairs shown = {pfd_alloc(r, (args.n + 2) * sizeof(struct pair)), 0};
    if (!shown.v) return PFD_ERROR;
    bool ctype_arg = false;
    for (size_t i = 0; i < args.n; i++) {
        shown.v[shown.n++] = args.v[i];
        ctype_arg |= is_lit_ci(args.v[i].name, "Content-Type");
    }
    if (!ctype_arg)
        shown.v[shown.n++] =
            (struct pair){{"Content-Type", 12}, ctype, {NULL, 0}, (unsigned)args.n};
    size_t len_at = shown.n++;
    char number[24];
    size_t len = 0;
    struct jb b = {0};
    for (int round = 0; round < 4; round++) {
        snprintf(number, sizeof number, "%zu", len);
        shown.v[len_at] = (struct pair){
            {"Content-Length", 14}, {number, strlen(number)}, {NULL, 0}, (unsigned)len_at};
        b.len = 0;
        struct pairs copy = {pfd_alloc(r, shown.n * sizeof(struct pair)), shown.n};
        if (!copy.v) break;
        memcpy(copy.v, shown.v, shown.n * sizeof(struct pair));
        jb_multidict(&b, &copy, false);
        jb_put(&b, "\n", 1);
        if (b.oom || b.len == len) break;
        len = b.len;
    }
    for (size_t i = 0; i < args.n; i++) {
        if (is_lit_ci(args.v[i].name, "Content-Type")) continue;
        const char *name = cstr(r, args.v[i].name), *value = cstr(r, args.v[i].value);
        if (!name || !value || pfd_header_add(r, name, value) < 0) {
            free(b.p);
            return PFD_ERROR;
        }
    }
    const char *type = cstr(r, ctype);
    return type ? send_jb(r, 200, &b, type) : (free(b.p), PFD_ERROR);
}

/* ---- texts ------------------------------------------------------------------- */

static int ep_base64(struct hb *h, pfd_str value) {
    pfd_req *r = h->r;
    pfd_str text = b64_decode(r, value);
    if (!text.p || !utf8_valid(text.p, text.len))
        return bad(r, 400, "Incorrect Base64 data: try SFRUUEJJTiBpcyBhd2Vzb21l");
    pfd_content_type(r, "text/html; charset=utf-8");
    return pfd_write(r, text.p, text.len);
}

static int ep_robots(struct hb *h, pfd_str arg) {
    pfd_content_type(h->r, "text/plain");
    return pfd_write(h->r, "User-agent: *\nDisallow: /deny\n", 30);
}

static int ep_deny(struct hb *h, pfd_str arg) {
    pfd_content_type(h->r, "text/plain");
    const char *text =
        "\n      .-\"\"\"\"-.\n     /  x  x  \\\n    |    __    |\n     \\ '    ' /\n"
        "      '-....-'\n   NOT FOR ROBOTS: see /robots.txt\n";
    return pfd_write(h->r, text, strlen(text));
}

static int ep_html(struct hb *h, pfd_str arg) {
    pfd_content_type(h->r, "text/html; charset=utf-8");
    const char *text =
        "<!DOCTYPE html>\n<html>\n  <head>\n  </head>\n  <body>\n"
        "      <h1>Herman Melville - Moby-Dick</h1>\n\n      <div>\n        <p>\n"
        "          Call me Ishmael. Some years ago - never mind how long precisely - having "
        "little or no money in my purse, and nothing particular to interest me on shore, I "
        "thought I would sail about a little and see the watery part of the world.\n"
        "        </p>\n      </div>\n  </body>\n</html>";
    return pfd_write(h->r, text, strlen(text));
}

static int ep_utf8(struct hb *h, pfd_str arg) {
    pfd_content_type(h->r, "text/html; charset=utf-8");
    const char *text =
        "<h1>Unicode Demo</h1>\n\n<pre>\nUTF-8 encoded sample plain-text file\n"
        "\xe2\x80\xbe\xe2\x80\xbe\xe2\x80\xbe\xe2\x80\xbe\xe2\x80\xbe\xe2\x80\xbe\n\n"
        "Mathematics:  \xe2\x88\xae E\xe2\x8b\x85"
        "da = Q,  n \xe2\x86\x92 \xe2\x88\x9e, "
        "\xe2\x88\x91 f(i) = \xe2\x88\x8f g(i)\n"
        "Greek:        \xce\x93\xce\xb5\xce\xb9\xce\xac \xcf\x83\xce\xbf\xcf\x85 "
        "\xce\x9a\xcf\x8c\xcf\x83\xce\xbc\xce\xb5\n"
        "Russian:      \xd0\x97\xd0\xb4\xd1\x80\xd0\xb0\xd0\xb2\xd1\x81\xd1\x82\xd0\xb2"
        "\xd1\x83\xd0\xb9, \xd0\xbc\xd0\xb8\xd1\x80\n"
        "Japanese:     \xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf\n"
        "Runes:        \xe1\x9a\xa0\xe1\x9b\x87\xe1\x9a\xbb\n"
        "Emoji:        \xf0\x9f\x90\x8b \xf0\x9f\x8c\x8a\n</pre>\n";
    return pfd_write(h->r, text, strlen(text));
}

static int ep_json(struct hb *h, pfd_str arg) {
    return pfd_json(h->r, 200,
                    "{\"slideshow\":{\"author\":\"Yours Truly\",\"date\":\"date of publication\","
                    "\"slides\":[{\"title\":\"Wake up to WonderWidgets!\",\"type\":\"all\"},"
                    "{\"items\":[\"Why <em>WonderWidgets</em> are great\",\"Who <em>buys</em> "
                    "WonderWidgets\"],\"title\":\"Overview\",\"type\":\"all\"}],"
                    "\"title\":\"Sample Slide Show\"}}\n");
}

/* ---- the paths ------------------------------------------------------------------- */

#define M(m)  (1u << (m))
#define M_GET (M(PFD_GET) | M(PFD_HEAD))
#define M_ANY (M_GET | M(PFD_POST) | M(PFD_PUT) | M(PFD_DELETE) | M(PFD_PATCH) | M(PFD_TRACE))

enum match { EXACT, SEGMENT, NUMBER, TAIL };

struct endpoint {
    const char *path; /* EXACT: the whole path; else the part before the argument */
    enum match match; /* SEGMENT: one segment follows, NUMBER: digits (werkzeug's int),
                         TAIL: the rest (may hold '/') */
    unsigned methods;
    int (*handle)(struct hb *h, pfd_str arg);
};

static const struct endpoint endpoints[] = {
    {"/get", EXACT, M_GET, ep_get},
    {"/post", EXACT, M(PFD_POST), ep_body},
    {"/put", EXACT, M(PFD_PUT), ep_body},
    {"/patch", EXACT, M(PFD_PATCH), ep_body},
    {"/delete", EXACT, M(PFD_DELETE), ep_body},
    {"/anything", EXACT, M_ANY, ep_anything},
    {"/anything/", TAIL, M_ANY, ep_anything},
    {"/headers", EXACT, M_GET, ep_headers},
    {"/ip", EXACT, M_GET, ep_ip},
    {"/user-agent", EXACT, M_GET, ep_user_agent},
    {"/uuid", EXACT, M_GET, ep_uuid},
    {"/status/", SEGMENT, M_ANY, ep_status},
    {"/delay/", SEGMENT, M_GET, ep_delay},
    {"/bytes/", NUMBER, M_GET, ep_bytes},
    {"/stream-bytes/", NUMBER, M_GET, ep_stream_bytes},
    {"/stream/", NUMBER, M_GET, ep_stream},
    {"/drip", EXACT, M_GET, ep_drip},
    {"/range/", NUMBER, M_GET, ep_range},
    {"/redirect/", NUMBER, M_GET, ep_redirect},
    {"/relative-redirect/", NUMBER, M_GET, ep_relative_redirect},
    {"/absolute-redirect/", NUMBER, M_GET, ep_absolute_redirect},
    {"/redirect-to", EXACT, M_ANY, ep_redirect_to},
    {"/cache", EXACT, M_GET, ep_cache},
    {"/cache/", NUMBER, M_GET, ep_cache_n},
    {"/etag/", SEGMENT, M_GET, ep_etag},
    {"/response-headers", EXACT, M_GET | M(PFD_POST), ep_response_headers},
    {"/base64/", SEGMENT, M_GET, ep_base64},
    {"/basic-auth/", TAIL, M_GET, ep_basic_auth},
    {"/hidden-basic-auth/", TAIL, M_GET, ep_hidden_basic_auth},
    {"/bearer", EXACT, M_GET, ep_bearer},
    {"/cookies", EXACT, M_GET, ep_cookies},
    {"/cookies/set", EXACT, M_GET, ep_cookies_set},
    {"/cookies/set/", TAIL, M_GET, ep_cookies_set_path},
    {"/cookies/delete", EXACT, M_GET, ep_cookies_delete},
    {"/json", EXACT, M_GET, ep_json},
    {"/html", EXACT, M_GET, ep_html},
    {"/robots.txt", EXACT, M_GET, ep_robots},
    {"/deny", EXACT, M_GET, ep_deny},
    {"/encoding/utf8", EXACT, M_GET, ep_utf8},
    {"/gzip", EXACT, M_GET, ep_gzip},
    {"/deflate", EXACT, M_GET, ep_deflate},
};

/* The endpoint of path and its argument, or NULL. Integer arguments are
 * digits only (werkzeug's int converter): anything else is no match. */
static const struct endpoint *find(pfd_str path, pfd_str *arg) {
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++) {
        const struct endpoint *e = &endpoints[i];
        size_t n = strlen(e->path);
        if (e->match == EXACT) {
            if (is_lit(path, e->path)) return *arg = (pfd_str){NULL, 0}, e;
            continue;
        }
        if (path.len <= n || memcmp(path.p, e->path, n) != 0) continue;
        *arg = (pfd_str){path.p + n, path.len - n};
        if (e->match != TAIL && memchr(arg->p, '/', arg->len)) continue;
        if (e->match == NUMBER)
            for (size_t k = 0; k < arg->len; k++)
                if (arg->p[k] < '0' || arg->p[k] > '9') return NULL;
        return e;
    }
    return NULL;
}

static const char *allow_text(pfd_req *r, unsigned methods) {
    static const char *const names[] = {"GET",    "HEAD",    "POST",  "PUT",
                                        "DELETE", "OPTIONS", "PATCH", "TRACE"};
    struct jb b = {0};
    methods |= M(PFD_OPTIONS);
    for (int m = PFD_GET; m <= PFD_TRACE; m++)
        if (methods & M(m)) {
            if (b.len) jb_str(&b, ", ");
            jb_str(&b, names[m]);
        }
    jb_put(&b, "", 1);
    char *s = b.oom ? NULL : pfd_sprintf(r, "%s", b.p);
    free(b.p);
    return s;
}

static int httpbin_handle(pfd_req *r) {
    struct hb h = {.r = r};
    const pfd_route *rt = pfd_req_route(r);
    const char *prefix = pfd_route_path(rt);
    size_t plen = strlen(prefix);
    if (plen && prefix[plen - 1] == '/') plen--;
    pfd_str path = pfd_path(r);
    h.base = (pfd_str){prefix, plen};
    h.rest = plen <= path.len ? (pfd_str){path.p + plen, path.len - plen} : (pfd_str){"/", 1};
    h.pool = pfd_route_mode(rt) == PFD_POOL;
    pfd_str v;
    int rc = query_get(r, "show_env", false, &v);
    if (rc < 0) return PFD_ERROR;
    h.show_env = rc == 1;

    /* every answer carries httpbin's CORS fields */
    pfd_str origin_field = pfd_header(r, "Origin");
    const char *allow_origin =
        origin_field.p && value_ok(origin_field) ? cstr(r, origin_field) : "*";
    if (!allow_origin || pfd_header_add(r, "Access-Control-Allow-Origin", allow_origin) < 0 ||
        pfd_header_add(r, "Access-Control-Allow-Credentials", "true") < 0)
        return PFD_ERROR;

    pfd_str arg;
    const struct endpoint *e = find(h.rest, &arg);
    if (!e) return pfd_error(r, 404);
    enum pfd_method m = pfd_method_id(r);
    if (m == PFD_OPTIONS) {
        const char *allow = allow_text(r, e->methods);
        pfd_str want = pfd_header(r, "Access-Control-Request-Headers");
        if (!allow || pfd_header_add(r, "Allow", allow) < 0 ||
            pfd_header_add(r, "Access-Control-Allow-Methods",
                           "GET, POST, PUT, DELETE, PATCH, OPTIONS") < 0 ||
            pfd_header_add(r, "Access-Control-Max-Age", "3600") < 0)
            return PFD_ERROR;
        if (want.p && value_ok(want)) {
            const char *w = cstr(r, want);
            if (!w || pfd_header_add(r, "Access-Control-Allow-Headers", w) < 0) return PFD_ERROR;
        }
        pfd_content_type(r, "text/html; charset=utf-8");
        return PFD_OK;
    }
    if (m > PFD_TRACE || m == PFD_OTHER || !(e->methods & M(m))) {
        const char *allow = allow_text(r, e->methods);
        if (!allow || pfd_header_add(r, "Allow", allow) < 0) return PFD_ERROR;
        return pfd_error(r, 405);
    }
    return e->handle(&h, arg);
}

const pfd_handler httpbin_handler = {
    .name = "httpbin",
    .handle = httpbin_handle,
};
