/* loadtest: the echo handler, a fortio-compatible target for load tests
 * (loadtest.h; README, "echo").
 *
 * Without query parameters echo answers with the request's body and
 * Content-Type. Its parameters follow fortio's echo server (value:percent
 * lists, the rest of the percentages taking the default) and add ranges
 * (lo-hi, uniform), seed (repeatable draws) and chunks (a streamed answer):
 *
 *   delay=250ms:10,2s:0.5   delay=10ms-50ms      status=503:20,429:5
 *   size=1024:50,16k:10     close=true|N[%]      header=Name:Value ...
 *   gzip=true|N[%]          seed=N               chunks=K
 *
 * Every parameter is checked before anything is answered: a bad one gets
 * 400 with a body naming it (never quoting it). On an inline route a delay
 * is a timer on the loop (pfd_after): no thread waits. On a pool route it
 * sleeps on the pool thread (pfd_sleep), so that the two side by side show
 * what a pool's size does to latency.
 *
 * Random draws: each parameter has its own stream, so that adding status=
 * does not change which delays are drawn. Without seed the streams start
 * from a per-thread generator; with seed=S they start from S and the
 * request's position on its connection (pfd_request_seq): the k-th request
 * of any connection carrying seed=S gets the same draws, in every run, on
 * any worker, whatever the timing. */
#include "workers/loadtest.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "workers/handlers.h"

#define MAX_DELAY_DEFAULT_US (10ull * 1000000) /* max_delay = 10s */
#define MAX_SIZE_DEFAULT     (10ull << 20)     /* max_size = 10m */
#define MAX_CHUNKS           100000
#define MAX_CHOICES          64                       /* entries of one value:percent list */
#define FILLER_SIZE          (64 * 1024)              /* payloads repeat this table */
#define MAX_DURATION_US      (3600ull * 24 * 1000000) /* a day: beyond any max_delay */
#define GZIP_MAX             (1u << 20) /* gzip=: larger answers are refused (CPU on the loop) */

/* ---- numbers ------------------------------------------------------------ */

int loadtest_parse_size(const char *s, size_t n, uint64_t *out) {
    uint64_t v = 0;
    size_t i = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10) return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == 0) return -1;
    unsigned shift = 0;
    if (i + 1 == n) {
        switch (s[i]) {
        case 'k':
        case 'K': shift = 10; break;
        case 'm':
        case 'M': shift = 20; break;
        case 'g':
        case 'G': shift = 30; break;
        default: return -1;
        }
        i++;
    }
    if (i != n || v > (UINT64_MAX >> shift)) return -1;
    *out = v << shift;
    return 0;
}

/* Nanoseconds per unit at s (its length in *len), or 0 for none. */
static uint64_t duration_unit(const char *s, size_t n, size_t *len) {
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {
        {"ns", 1},
        {"us", 1000},
        {"\xc2\xb5s", 1000}, /* µs, MICRO SIGN */
        {"\xce\xbcs", 1000} /* μs, GREEK MU */,
        {"ms", 1000000},
        {"s", 1000000000},
        {"m", 60000000000},
        {"h", 3600000000000},
    };
    size_t best = 0;
    uint64_t ns = 0;
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        size_t l = strlen(units[u].name);
        if (l <= n && l > best && memcmp(s, units[u].name, l) == 0) {
            best = l;
            ns = units[u].ns;
        }
    }
    *len = best;
    return ns;
}

int loadtest_parse_duration(const char *s, size_t n, uint64_t *us) {
    if (n == 1 && s[0] == '0') {
        *us = 0;
        return 0;
    }
    if (n == 0) return -1;
    uint64_t total_ns = 0;
    size_t i = 0;
    while (i < n) {
        uint64_t whole = 0, frac = 0, scale = 1;
        size_t start = i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (whole > MAX_DURATION_US) return -1;
            whole = whole * 10 + (uint64_t)(s[i] - '0');
        }
        bool digits = i > start;
        if (i < n && s[i] == '.') {
            i++;
            for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits = true)
                if (scale < 1000000000) { /* finer than a nanosecond: ignored */
                    frac = frac * 10 + (uint64_t)(s[i] - '0');
                    scale *= 10;
                }
        }
        size_t ulen;
        uint64_t unit = duration_unit(s + i, n - i, &ulen);
        if (!digits || !unit) return -1;
        i += ulen;
        if (whole > MAX_DURATION_US * 1000 / unit) return -1;
        total_ns += whole * unit + (uint64_t)((double)frac * (double)unit / (double)scale);
        if (total_ns > MAX_DURATION_US * 1000) return -1;
    }
    *us = (total_ns + 999) / 1000;
    return 0;
}

/* A route setting's duration: a bare number is seconds, as in the
 * configuration; else a duration as above. */
static int setting_duration(const char *text, uint64_t *us) {
    size_t n = strlen(text), i = 0;
    while (i < n && text[i] >= '0' && text[i] <= '9') i++;
    if (i == n && n > 0 && n < 10) {
        *us = strtoull(text, NULL, 10) * 1000000;
        return 0;
    }
    return loadtest_parse_duration(text, n, us);
}

/* A percentage: a decimal number in [0, 100], an optional '%' after it. */
static int parse_percent(const char *s, size_t n, double *out) {
    char text[32];
    if (n > 0 && s[n - 1] == '%') n--;
    if (n == 0 || n >= sizeof text) return -1;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) return -1;
    memcpy(text, s, n);
    text[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || *end || !(v >= 0 && v <= 100)) return -1;
    *out = v;
    return 0;
}

/* ---- random draws -------------------------------------------------------- */

/* splitmix64 (Steele, Lea, Flood 2014): one step of the state. */
static uint64_t splitmix(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* In [0, 1), 53 bits. */
static double unit_draw(uint64_t *state) {
    return (double)(splitmix(state) >> 11) * 0x1.0p-53;
}

/* In [lo, hi], uniform (Lemire's multiply-shift: bias under 2^-64 * n). */
static uint64_t range_draw(uint64_t *state, uint64_t lo, uint64_t hi) {
    if (hi <= lo) return lo;
    uint64_t span = hi - lo;
    if (span == UINT64_MAX) return splitmix(state);
    return lo + (uint64_t)(((unsigned __int128)splitmix(state) * (span + 1)) >> 64);
}

/* The unseeded generator of each thread (loop and pool threads). */
static _Thread_local uint64_t thread_state;
static _Thread_local bool thread_seeded;

static uint64_t unseeded_base(void) {
    if (!thread_seeded) {
        if (getrandom(&thread_state, sizeof thread_state, GRND_NONBLOCK) != sizeof thread_state) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            thread_state = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^
                           (uint64_t)(uintptr_t)&thread_state;
        }
        thread_seeded = true;
    }
    return splitmix(&thread_state);
}

/* The stream of parameter k for a request whose draws start at base. */
static uint64_t stream_of(uint64_t base, unsigned k) {
    uint64_t s = base ^ (0xd1b54a32d192ed03ull * (k + 1));
    return splitmix(&s);
}

/* ---- parameters ------------------------------------------------------------ */

enum { P_DELAY, P_STATUS, P_SIZE, P_CLOSE, P_GZIP, P_COUNT };

/* A value or a range of values, taken with a probability. */
struct choice {
    uint64_t lo, hi;
    double cum; /* percent, cumulative: this entry is drawn below it */
};

/* A value:percent list; the rest of the percentages take the default. */
struct dist {
    unsigned n;
    struct choice c[MAX_CHOICES];
};

/* Reads one value or lo-hi range; parse is the kind's number reader. */
typedef int (*value_parser)(const char *s, size_t n, uint64_t *v);

static int parse_status(const char *s, size_t n, uint64_t *v) {
    if (n != 3) return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < 3; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    if (x < 200 || x > 599) return -1;
    *v = x;
    return 0;
}

static int parse_range(const char *s, size_t n, value_parser parse, struct choice *c) {
    const char *dash = memchr(s, '-', n);
    if (!dash) {
        if (parse(s, n, &c->lo) < 0) return -1;
        c->hi = c->lo;
        return 0;
    }
    if (parse(s, (size_t)(dash - s), &c->lo) < 0 ||
        parse(dash + 1, n - (size_t)(dash - s) - 1, &c->hi) < 0 || c->hi < c->lo)
        return -1;
    return 0;
}

/* fortio's syntax: one value (always), or entries value:percent separated by
 * commas whose percentages add up to at most 100. */
static int parse_dist(const char *s, size_t n, value_parser parse, struct dist *d) {
    d->n = 0;
    if (!memchr(s, ':', n) && !memchr(s, ',', n)) {
        if (parse_range(s, n, parse, &d->c[0]) < 0) return -1;
        d->c[0].cum = 100.0;
        d->n = 1;
        return 0;
    }
    double sum = 0;
    size_t i = 0;
    while (i <= n) {
        const char *e = s + i, *comma = memchr(e, ',', n - i);
        size_t len = comma ? (size_t)(comma - e) : n - i;
        const char *colon = memchr(e, ':', len);
        double p;
        if (d->n == MAX_CHOICES || !colon || memchr(colon + 1, ':', len - (size_t)(colon - e) - 1))
            return -1;
        struct choice *c = &d->c[d->n];
        if (parse_range(e, (size_t)(colon - e), parse, c) < 0 ||
            parse_percent(colon + 1, len - (size_t)(colon - e) - 1, &p) < 0)
            return -1;
        sum += p;
        /* rounding: 33.3+33.3+33.4 is 100 */
        if (sum > 100.0 + 1e-9) return -1;
        c->cum = sum;
        d->n++;
        i += len + 1;
        if (!comma) break;
    }
    return 0;
}

/* The value drawn from d (dflt when no entry is drawn). */
static uint64_t dist_draw(const struct dist *d, uint64_t *state, uint64_t dflt) {
    double x = 100.0 * unit_draw(state);
    for (unsigned i = 0; i < d->n; i++)
        if (x < d->c[i].cum) return range_draw(state, d->c[i].lo, d->c[i].hi);
    return dflt;
}

/* true, false, or a percentage (close=5, gzip=42.7%); "" is false. */
static int parse_chance(const char *s, size_t n, double *p) {
    if (n == 0 || (n == 5 && memcmp(s, "false", 5) == 0)) {
        *p = 0;
        return 0;
    }
    if (n == 4 && memcmp(s, "true", 4) == 0) {
        *p = 100;
        return 0;
    }
    return parse_percent(s, n, p);
}

/* ---- the route ------------------------------------------------------------- */

/* A route's limits, and its payload: max_size bytes of filler made at the
 * first answer longer than the filler table (by whichever thread runs it:
 * under lock), shared read-only by every answer of the route in this
 * worker and freed with the route (its answers are gone by then). */
struct echo_route {
    uint64_t max_delay_us, max_size;
    pthread_mutex_t lock;
    unsigned char *big;
};

static int read_limits(const pfd_route *rt, struct echo_route *er, char *err, size_t errlen) {
    const char *d = pfd_route_setting(rt, "max_delay");
    er->max_delay_us = MAX_DELAY_DEFAULT_US;
    er->max_size = MAX_SIZE_DEFAULT;
    if (d && setting_duration(d, &er->max_delay_us) < 0) {
        snprintf(err, errlen, "max_delay: not a duration (e.g. 10s, 1500ms)");
        return -1;
    }
    if (pfd_route_setting(rt, "max_size") && pfd_route_number(rt, "max_size", &er->max_size) < 0) {
        snprintf(err, errlen, "max_size: not a size (e.g. 10m, 64k)");
        return -1;
    }
    return 0;
}

static int echo_check(const pfd_route *rt, char *err, size_t errlen) {
    struct echo_route er;
    return read_limits(rt, &er, err, errlen);
}

static int echo_init(pfd_route *rt, char *err, size_t errlen) {
    struct echo_route *er = malloc(sizeof *er);
    if (!er) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (read_limits(rt, er, err, errlen) < 0) {
        free(er);
        return -1;
    }
    pthread_mutex_init(&er->lock, NULL);
    er->big = NULL;
    pfd_route_set_data(rt, er);
    return 0;
}

static void echo_fini(pfd_route *rt) {
    struct echo_route *er = pfd_route_data(rt);
    if (er) {
        free(er->big);
        pthread_mutex_destroy(&er->lock);
    }
    free(er);
    pfd_route_set_data(rt, NULL);
}

/* ---- the payload ------------------------------------------------------------ */

/* Byte i of every payload is filler[i % FILLER_SIZE]: splitmix64 from 0, in
 * little-endian order; the same in every run and every server. */
static unsigned char filler[FILLER_SIZE];
static pthread_once_t filler_once = PTHREAD_ONCE_INIT;

static void filler_make(void) {
    uint64_t s = 0;
    for (size_t i = 0; i < FILLER_SIZE; i += 8) {
        uint64_t v = splitmix(&s);
        for (size_t b = 0; b < 8; b++) filler[i + b] = (unsigned char)(v >> (8 * b));
    }
}

/* size bytes of filler (at most the route's max_size): the table, or the
 * route's payload, made once. Nothing is copied per request: a request for
 * 10 MB costs the memory of its connection, not 10 MB. */
static const unsigned char *payload(struct echo_route *er, size_t size) {
    pthread_once(&filler_once, filler_make);
    if (size <= FILLER_SIZE) return filler;
    pthread_mutex_lock(&er->lock);
    if (!er->big && (er->big = malloc(er->max_size)))
        for (size_t off = 0; off < er->max_size; off += FILLER_SIZE)
            memcpy(er->big + off, filler,
                   er->max_size - off < FILLER_SIZE ? er->max_size - off : FILLER_SIZE);
    const unsigned char *p = er->big;
    pthread_mutex_unlock(&er->lock);
    return p;
}

/* The q value of a coding in an Accept-Encoding list element's parameters
 * (";q=0.5"): 1 when absent, 0 for q=0 (0.0, 0.00...). */
static bool q_nonzero(const char *p, const char *end) {
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ';')) p++;
        if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            p += 2;
            if (p < end && *p == '1') return true;
            if (p < end && *p == '0') p++;
            if (p < end && *p == '.') p++;
            for (; p < end && *p >= '0' && *p <= '9'; p++)
                if (*p != '0') return true;
            return false;
        }
        while (p < end && *p != ';') p++;
    }
    return true;
}

/* Whether Accept-Encoding allows gzip (RFC 9110 12.5.3): gzip or x-gzip
 * listed with q > 0, or * with q > 0 and gzip not listed. */
static bool accepts_gzip(pfd_req *r) {
    pfd_str ae = pfd_field(r, PFD_F_ACCEPT_ENCODING);
    if (!ae.p) return false;
    const char *p = ae.p, *end = ae.p + ae.len;
    int gzip = -1, star = -1;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) p++;
        const char *name = p;
        while (p < end && *p != ',' && *p != ';' && *p != ' ' && *p != '\t') p++;
        size_t len = (size_t)(p - name);
        const char *params = p;
        while (p < end && *p != ',') p++;
        bool ok = q_nonzero(params, p);
        if ((len == 4 && strncasecmp(name, "gzip", 4) == 0) ||
            (len == 6 && strncasecmp(name, "x-gzip", 6) == 0))
            gzip = ok;
        else if (len == 1 && name[0] == '*')
            star = ok;
    }
    return gzip >= 0 ? gzip == 1 : star == 1;
}

/* p[0, n) as gzip in the request's memory (*out, *outlen); 0 or -1. */
static int gzip_body(pfd_req *r, const void *p, size_t n, const unsigned char **out,
                     size_t *outlen) {
    z_stream z;
    memset(&z, 0, sizeof z);
    /* level 1: a load-test target spends its CPU on requests, not ratios */
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
    size_t cap = deflateBound(&z, (uLong)n);
    unsigned char *buf = pfd_alloc(r, cap);
    int rc = -1;
    if (buf) {
        z.next_in = (Bytef *)(uintptr_t)p;
        z.avail_in = (uInt)n;
        z.next_out = buf;
        z.avail_out = (uInt)cap;
        if (deflate(&z, Z_FINISH) == Z_STREAM_END) {
            *out = buf;
            *outlen = cap - z.avail_out;
            rc = 0;
        }
    }
    deflateEnd(&z);
    return rc;
}

/* ---- the answer ---------------------------------------------------------------- */

/* What one request asked for (on the handler's stack). */
struct echo {
    struct dist dist[3]; /* delay (µs), status, size */
    bool has[P_COUNT];
    double chance[P_COUNT]; /* close, gzip */
    bool seeded;
    uint64_t seed;
    unsigned chunks;
};

/* An inline stream under way (in the request's memory). */
struct echo_stream {
    const unsigned char *body;
    size_t len;
    unsigned chunks;
    unsigned sent;     /* pieces sent */
    uint64_t delay_ms; /* the last piece is due then, from the start */
    uint64_t due_ms;   /* when the next timer fires, from the start */
};

static const char *const param_names[P_COUNT] = {"delay", "status", "size", "close", "gzip"};

/* Answers 400 naming the parameter (never quoting its value): 1, or
 * PFD_ERROR when out of memory. */
/* Fields header= may not set: echo answers on the site's own origin, so a
 * link must not plant a cookie, redirect, or open the door to scripts. */
static bool unsafe_header(const char *name) {
    static const char *const names[] = {
        "set-cookie",
        "set-cookie2",
        "location",
        "refresh",
        "link",
        "content-encoding",
        "content-security-policy",
        "content-security-policy-report-only",
        "strict-transport-security",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i]) == 0) return true;
    return strncasecmp(name, "access-control-", 15) == 0;
}

static int bad(pfd_req *r, const char *name, const char *why) {
    char *msg = pfd_sprintf(r, "echo: bad parameter %s: %s\n", name, why ? why : "over a limit");
    if (!msg) return PFD_ERROR;
    pfd_text(r, 400, msg);
    return 1;
}

static int want_uint(const char *s, size_t n, uint64_t max, uint64_t *v) {
    uint64_t x = 0;
    if (n == 0) return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        if (x > (UINT64_MAX - 9) / 10) return -1;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    if (x > max) return -1;
    *v = x;
    return 0;
}

/* Reads the query into e: 0; 1 when a 400 naming a bad parameter is set;
 * PFD_ERROR when out of memory. */
static int read_params(pfd_req *r, const struct echo_route *er, struct echo *e, pfd_headers **hdrs,
                       const char **ctype) {
    size_t pos = 0;
    pfd_str name, v;
    int rc;
    while ((rc = pfd_query_next(r, &pos, &name, &v)) == 1) {
        int k = -1;
        for (int i = 0; i < P_COUNT; i++)
            if (name.len == strlen(param_names[i]) && memcmp(name.p, param_names[i], name.len) == 0)
                k = i;
        if (k >= 0) {
            if (e->has[k]) continue; /* the first one wins */
            e->has[k] = true;
            if (k == P_DELAY) {
                if (parse_dist(v.p, v.len, loadtest_parse_duration, &e->dist[P_DELAY]) < 0)
                    return bad(r, "delay",
                               "not a duration, a range lo-hi or a list of "
                               "duration:percent (250ms:10,1s-2s:5)");
                for (unsigned i = 0; i < e->dist[P_DELAY].n; i++)
                    if (e->dist[P_DELAY].c[i].hi > er->max_delay_us)
                        return bad(r, "delay",
                                   pfd_sprintf(r, "over the route's max_delay (%llu ms)",
                                               (unsigned long long)er->max_delay_us / 1000));
            } else if (k == P_STATUS) {
                if (parse_dist(v.p, v.len, parse_status, &e->dist[P_STATUS]) < 0)
                    return bad(r, "status",
                               "not a status 200-599, a range lo-hi or a list of "
                               "status:percent (503:20,429:5)");
            } else if (k == P_SIZE) {
                if (parse_dist(v.p, v.len, loadtest_parse_size, &e->dist[P_SIZE]) < 0)
                    return bad(r, "size",
                               "not a size, a range lo-hi or a list of size:percent "
                               "(1024:50,16k:10)");
                for (unsigned i = 0; i < e->dist[P_SIZE].n; i++)
                    if (e->dist[P_SIZE].c[i].hi > er->max_size)
                        return bad(r, "size",
                                   pfd_sprintf(r, "over the route's max_size (%llu bytes)",
                                               (unsigned long long)er->max_size));
            } else if (parse_chance(v.p, v.len, &e->chance[k]) < 0) {
                return bad(r, param_names[k], "not true, false or a percentage");
            }
        } else if (name.len == 4 && memcmp(name.p, "seed", 4) == 0) {
            if (e->seeded) continue;
            if (want_uint(v.p, v.len, UINT64_MAX, &e->seed) < 0)
                return bad(r, "seed", "not a number 0-18446744073709551615");
            e->seeded = true;
        } else if (name.len == 6 && memcmp(name.p, "chunks", 6) == 0) {
            uint64_t k2;
            if (want_uint(v.p, v.len, MAX_CHUNKS, &k2) < 0)
                return bad(r, "chunks", "not a number 0-100000");
            e->chunks = (unsigned)k2;
        } else if (name.len == 6 && memcmp(name.p, "header", 6) == 0) {
            const char *colon = memchr(v.p, ':', v.len);
            if (v.len == 0) continue; /* fortio skips empty ones */
            if (!colon || colon == v.p) return bad(r, "header", "not Name:Value");
            size_t nlen = (size_t)(colon - v.p);
            char *hname = pfd_alloc(r, nlen + 1);
            if (!hname) return PFD_ERROR;
            memcpy(hname, v.p, nlen);
            hname[nlen] = '\0';
            const char *val = colon + 1, *vend = v.p + v.len;
            while (val < vend && (*val == ' ' || *val == '\t')) val++;
            while (vend > val && (vend[-1] == ' ' || vend[-1] == '\t')) vend--;
            char *hval = pfd_alloc(r, (size_t)(vend - val) + 1);
            if (!hval) return PFD_ERROR;
            memcpy(hval, val, (size_t)(vend - val));
            hval[vend - val] = '\0';
            if (memchr(v.p, '\0', v.len)) return bad(r, "header", "a NUL byte");
            if (unsafe_header(hname))
                return bad(r, "header",
                           "a field that would act on the site's origin (Set-Cookie, Location, "
                           "Refresh, Link, Content-Encoding, Content-Security-Policy, "
                           "Strict-Transport-Security, Access-Control-*)");
            if (strcasecmp(hname, "content-type") == 0) {
                *ctype = hval; /* set with pfd_content_type, which would refuse with 500 */
                bool ok = *hval != '\0';
                for (const char *c = hval; *c; c++)
                    if ((unsigned char)*c < 0x20 || *c == 0x7f) ok = false;
                if (!ok) return bad(r, "header", "an empty Content-Type or a control character");
                continue;
            }
            if (!*hdrs && !(*hdrs = pfd_headers_new())) return PFD_ERROR;
            if (pfd_headers_set(*hdrs, hname, hval) < 0)
                return bad(r, "header",
                           "a name that is no token, a control character in the "
                           "value, or a field the server writes itself");
        }
        /* other parameters are not echo's: ignored, as fortio does */
    }
    if (rc < 0) return bad(r, "query", "a broken %-encoding");
    return 0;
}

/* Pieces: piece i (0-based) of K is bytes [len*i/K, len*(i+1)/K) and is due
 * delay*(i+1)/K after the start. */
static size_t piece_at(size_t len, unsigned chunks, unsigned i) {
    return (size_t)((unsigned __int128)len * i / chunks);
}
static uint64_t due_at(uint64_t delay_ms, unsigned chunks, unsigned i) {
    return delay_ms * (i + 1) / chunks;
}

/* Sends the pieces of an inline stream that are due, then waits for the
 * next one's time (pfd_after) or for the client to read (pfd_on_drain). */
static void stream_step(pfd_req *r, void *arg) {
    struct echo_stream *es = arg;
    if (pfd_gone(r)) return;
    while (es->sent < es->chunks) {
        uint64_t due = due_at(es->delay_ms, es->chunks, es->sent);
        if (due > es->due_ms) {
            unsigned wait = (unsigned)(due - es->due_ms);
            es->due_ms = due;
            pfd_after(r, wait, stream_step, es);
            return;
        }
        size_t a = piece_at(es->len, es->chunks, es->sent);
        size_t b = piece_at(es->len, es->chunks, es->sent + 1);
        int rc = b > a ? pfd_stream_write(r, es->body + a, b - a) : 0;
        if (rc == PFD_AGAIN) {
            pfd_on_drain(r, stream_step, es);
            return;
        }
        if (rc < 0) return; /* the client is gone */
        es->sent++;
    }
    pfd_stream_end(r);
}

/* On the pool: sleeps between the pieces, on purpose. */
static void stream_pool(pfd_req *r, const unsigned char *body, size_t len, unsigned chunks,
                        uint64_t delay_ms) {
    for (unsigned i = 0; i < chunks;) {
        uint64_t prev = i ? due_at(delay_ms, chunks, i - 1) : 0, due = due_at(delay_ms, chunks, i);
        if (due > prev && pfd_sleep(r, (unsigned)(due - prev)) < 0) return;
        /* the pieces due at the same time go in one write */
        unsigned j = i + 1;
        while (j < chunks && due_at(delay_ms, chunks, j) == due) j++;
        size_t a = piece_at(len, chunks, i), b = piece_at(len, chunks, j);
        if (b > a && pfd_stream_write(r, body + a, b - a) < 0) return;
        if (b == a && pfd_cancelled(r)) return;
        i = j;
    }
    pfd_stream_end(r);
}

static void delay_done(pfd_req *r, void *arg) {
    /* the answer was ready before the timer: it goes out now */
}

/* A copy of s in the request's memory, NUL-terminated, or NULL. */
static char *req_strdup(pfd_req *r, pfd_str s) {
    char *t = pfd_alloc(r, s.len + 1);
    if (!t) return NULL;
    memcpy(t, s.p, s.len);
    t[s.len] = '\0';
    return t;
}

static int echo_handle(pfd_req *r) {
    pfd_str type = pfd_field(r, PFD_F_CONTENT_TYPE), body = pfd_body(r);
    const char *ctype = type.p ? req_strdup(r, type) : "application/octet-stream";
    if (!ctype) return PFD_ERROR;
    if (!pfd_query(r).p) { /* no parameters: the body back, at once */
        if (pfd_content_type(r, ctype) < 0) return PFD_OK; /* failed: 500 */
        return pfd_write(r, body.p, body.len);
    }

    struct echo_route *er = pfd_route_data(pfd_req_route(r));
    struct echo e;
    pfd_headers *hdrs = NULL;
    const char *user_ctype = NULL;
    memset(&e, 0, sizeof e);
    int rc = read_params(r, er, &e, &hdrs, &user_ctype);
    if (rc != 0) {
        pfd_headers_free(hdrs);
        return rc > 0 ? PFD_OK : PFD_ERROR;
    }

    /* the draws: one stream per parameter (see the top of this file) */
    uint64_t base;
    if (e.seeded) {
        uint64_t s = e.seed ^ (0x2545f4914f6cdd1dull * (pfd_request_seq(r) + 1));
        base = splitmix(&s);
    } else {
        base = unseeded_base();
    }
    uint64_t st[P_COUNT];
    for (unsigned k = 0; k < P_COUNT; k++) st[k] = stream_of(base, k);
    uint64_t delay_us = e.has[P_DELAY] ? dist_draw(&e.dist[P_DELAY], &st[P_DELAY], 0) : 0;
    int status = e.has[P_STATUS] ? (int)dist_draw(&e.dist[P_STATUS], &st[P_STATUS], 200) : 200;
    /* no size drawn (UINT64_MAX): the body back, as without size */
    uint64_t size =
        e.has[P_SIZE] ? dist_draw(&e.dist[P_SIZE], &st[P_SIZE], UINT64_MAX) : UINT64_MAX;
    bool close = e.has[P_CLOSE] && 100.0 * unit_draw(&st[P_CLOSE]) < e.chance[P_CLOSE];
    bool gzip = e.has[P_GZIP] && 100.0 * unit_draw(&st[P_GZIP]) < e.chance[P_GZIP];
    if (gzip && (size != UINT64_MAX ? size : body.len) > GZIP_MAX) {
        /* compressing runs on the answer's thread (the loop's, inline): bounded */
        pfd_headers_free(hdrs);
        bad(r, "gzip", "an answer over 1m to compress");
        return PFD_OK;
    }

    pfd_status(r, status);
    if (close) pfd_close_after(r);
    if (hdrs || user_ctype) {
        if (hdrs) pfd_header_block(r, hdrs);
        pfd_headers_free(hdrs);
        /* fields chosen by a URL: nothing in the answer may run as the
         * site's (a Content-Type of text/html included) */
        pfd_header_add(r, "Content-Security-Policy", "sandbox");
        pfd_header_add(r, "X-Content-Type-Options", "nosniff");
    }
    /* the answer depends on Accept-Encoding whenever gzip may be drawn */
    if (e.has[P_GZIP] && e.chance[P_GZIP] > 0) pfd_header_add(r, "Vary", "Accept-Encoding");
    const unsigned char *out = (const unsigned char *)body.p;
    size_t len = body.len;
    bool ref = false; /* out lives as long as the request: sent from place */
    if (size != UINT64_MAX) {
        len = (size_t)size;
        out = payload(er, len);
        ctype = "application/octet-stream";
        ref = true;
        if (!out) return PFD_ERROR;
    }
    if (pfd_content_type(r, user_ctype ? user_ctype : ctype) < 0) return PFD_OK;
    if (gzip && accepts_gzip(r)) {
        if (gzip_body(r, out ? out : (const unsigned char *)"", len, &out, &len) < 0)
            return PFD_ERROR;
        pfd_header_add(r, "Content-Encoding", "gzip");
        ref = true;
    }

    bool pool = pfd_route_mode(pfd_req_route(r)) == PFD_POOL;
    uint64_t ms = (delay_us + 999) / 1000;
    if (e.chunks) {
        if (pfd_stream_begin(r) < 0) return PFD_OK;
        if (pool) {
            stream_pool(r, out, len, e.chunks, ms);
            return PFD_OK;
        }
        struct echo_stream *es = pfd_alloc(r, sizeof *es);
        if (!es) return PFD_ERROR;
        *es = (struct echo_stream){.body = out, .len = len, .chunks = e.chunks, .delay_ms = ms};
        stream_step(r, es);
        return PFD_OK;
    }
    if (len && (ref ? pfd_body_ref(r, out, len, NULL, NULL) : pfd_write(r, out, len)) < 0)
        return PFD_OK; /* failed: 500 */
    if (ms == 0) return PFD_OK;
    if (pool)
        pfd_sleep(r, (unsigned)ms); /* cancelled: the answer is dropped anyway */
    else
        pfd_after(r, (unsigned)ms, delay_done, NULL); /* the answer waits; no thread does */
    return PFD_OK;
}

static const char *const echo_settings[] = {"max_delay", "max_size", NULL};

const pfd_handler echo_handler = {
    .name = "echo",
    .handle = echo_handle,
    .settings = echo_settings,
    .check = echo_check,
    .init = echo_init,
    .fini = echo_fini,
};
