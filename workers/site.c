/* site: response headers, CORS, error pages and return per route. */
#include "workers/site.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "server/conf.h"
#include "server/errbuf.h"
#include "workers/exchange.h"
#include "workers/httpdate.h"
#include "workers/mime.h"
#include "workers/route.h"

/* The longest expires: ten years. */
#define EXPIRES_MAX (10ul * 366 * 24 * 3600)
/* Access-Control-Max-Age of a preflight answer. */
#define CORS_MAX_AGE "86400"

/* ---- templates ---------------------------------------------------------- */

static const char *const var_names[] = {"scheme", "host", "request_uri", "uri", "args"};
#define NVARS (sizeof var_names / sizeof var_names[0])

/* The variable at p ('$' seen): its index and the length of its name with
 * the '$' (and braces); -1 for no name at all (a lone '$'), -2 for an
 * unknown one. */
static int var_at(const char *p, size_t *skip) {
    bool brace = p[1] == '{';
    const char *name = p + 1 + brace, *end = name;
    while (*end == '_' || isalnum((unsigned char)*end)) end++;
    if (end == name) return brace ? -2 : -1;
    if (brace && *end != '}') return -2;
    *skip = (size_t)(end - p) + brace;
    for (unsigned i = 0; i < NVARS; i++)
        if (strlen(var_names[i]) == (size_t)(end - name) &&
            memcmp(var_names[i], name, (size_t)(end - name)) == 0)
            return (int)i;
    return -2;
}

int site_template_check(const char *tmpl, bool url, char *err, size_t errlen) {
    for (const char *p = tmpl; *p;) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f || (url && c == ' '))
            return errbuf_fail(err, errlen, "%s",
                               url ? "a space or control character in the URL"
                                   : "a control character in the text");
        size_t skip = 1;
        if (c == '$' && var_at(p, &skip) == -2) {
            size_t n = strcspn(p + 1, " /?#&\"'");
            return errbuf_fail(
                err, errlen,
                "unknown variable \"$%.*s\" (known: $scheme $host $request_uri $uri $args)",
                (int)(n > 40 ? 40 : n), p + 1);
        }
        p += skip;
    }
    return 0;
}

/* Whether a byte a variable brings into a URL is percent-encoded. */
static bool needs_encoding(unsigned char c, bool decoded) {
    return c <= 0x20 || c >= 0x7f || (decoded && (c == '%' || c == '?' || c == '#'));
}

size_t site_expand(const char *tmpl, const struct site_vars *v, bool url, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
#define PUTC(ch)                                                                                   \
    do {                                                                                           \
        if (n + 1 < cap) out[n] = (char)(ch);                                                      \
        n++;                                                                                       \
    } while (0)
    for (const char *p = tmpl; *p;) {
        size_t skip = 1;
        int var = *p == '$' ? var_at(p, &skip) : -1;
        if (var < 0) {
            PUTC(*p);
            p++;
            continue;
        }
        p += skip;
        const pfd_str *s = var == 0   ? &v->scheme
                           : var == 1 ? &v->host
                           : var == 2 ? &v->request_uri
                           : var == 3 ? &v->uri
                                      : &v->args;
        for (size_t i = 0; i < s->len; i++) {
            unsigned char c = (unsigned char)s->p[i];
            if (url && needs_encoding(c, var == 3)) {
                PUTC('%');
                PUTC(hex[c >> 4]);
                PUTC(hex[c & 15]);
            } else {
                PUTC(c);
            }
        }
    }
#undef PUTC
    if (cap) out[n < cap ? n : cap - 1] = '\0';
    return n;
}

int site_host(pfd_str host, char *out, size_t cap, size_t *len) {
    size_t n = host.len;
    if (n && host.p[0] == '[') { /* [v6]:port */
        const char *close = memchr(host.p, ']', n);
        if (!close) return -1;
        n = (size_t)(close - host.p) + 1;
    } else {
        const char *colon = memchr(host.p, ':', n);
        if (colon) n = (size_t)(colon - host.p);
    }
    if (n >= cap) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)tolower((unsigned char)host.p[i]);
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_' || c == '[' || c == ']' || c == ':'))
            return -1;
        out[i] = (char)c;
    }
    out[n] = '\0';
    *len = n;
    return 0;
}

/* ---- settings ----------------------------------------------------------- */

static bool is_token_char(unsigned char c) {
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static char *dupn(const char *p, size_t n) {
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t') p++;
    return p;
}

/* A value the server would write into a header: no CR, LF, NUL or other
 * controls (a tab is fine). */
static bool header_value_ok(const char *v) {
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return false;
    return true;
}

static int set_header(struct site *s, const char *value, char *err, size_t errlen) {
    static const char *const own[] = {"content-length", "transfer-encoding", "connection",  "date",
                                      "server",         "keep-alive",        "content-type"};
    const char *colon = strchr(value, ':');
    size_t nlen = colon ? (size_t)(colon - value) : 0;
    if (!colon || !nlen) return errbuf_fail(err, errlen, "header: expected \"Name: value\"");
    for (size_t i = 0; i < nlen; i++)
        if (!is_token_char((unsigned char)value[i]))
            return errbuf_fail(err, errlen, "header: \"%.*s\" is not a header name", (int)nlen,
                               value);
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strlen(own[i]) == nlen && strncasecmp(own[i], value, nlen) == 0)
            return errbuf_fail(err, errlen, "header: %.*s is written by the server itself",
                               (int)nlen, value);
    const char *v = skip_ws(colon + 1);
    if (!header_value_ok(v))
        return errbuf_fail(err, errlen, "header: a control character (CR, LF, NUL) in the value");
    size_t vlen = strlen(v);
    while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) vlen--;
    bool always = vlen >= 7 && strncmp(v + vlen - 7, " always", 7) == 0;
    if (always) {
        vlen -= 7;
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) vlen--;
    }
    if (!vlen) return errbuf_fail(err, errlen, "header: %.*s has no value", (int)nlen, value);
    struct site_header *h = realloc(s->headers, (s->nheaders + 1) * sizeof *h);
    if (!h) return errbuf_fail(err, errlen, "out of memory");
    s->headers = h;
    h = &h[s->nheaders];
    h->name = dupn(value, nlen);
    h->value = dupn(v, vlen);
    h->nlen = nlen;
    h->vlen = vlen;
    h->always = always;
    if (!h->name || !h->value) {
        free(h->name);
        free(h->value);
        return errbuf_fail(err, errlen, "out of memory");
    }
    s->nheaders++;
    return 0;
}

/* "3600", "90s", "30m", "12h", "7d", "2w", "1y", or a duration like 1h30m. */
static int parse_expires(const char *value, unsigned long *out) {
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*value)) return -1;
    unsigned long v = strtoul(value, &end, 10);
    if (errno) return -1;
    unsigned long mult = 0;
    if (!*end)
        mult = 1;
    else if (!end[1])
        switch (*end) {
        case 's': mult = 1; break;
        case 'm': mult = 60; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        case 'w': mult = 7 * 86400; break;
        case 'y': mult = 365 * 86400; break;
        }
    if (mult) {
        if (v > EXPIRES_MAX / mult) return -1;
        *out = v * mult;
        return 0;
    }
    unsigned ms;
    if (conf_parse_duration(value, &ms) < 0) return -1;
    *out = ms / 1000;
    return 0;
}

static int set_cors(struct site *s, const char *value, char *err, size_t errlen) {
    if (s->cors) return errbuf_fail(err, errlen, "cors: set twice");
    s->cors = true;
    if (strcmp(value, "*") == 0) {
        s->cors_any = true;
        return 0;
    }
    for (const char *p = skip_ws(value); *p; p = skip_ws(p)) {
        size_t n = strcspn(p, " \t");
        bool http = n > 7 && strncasecmp(p, "http://", 7) == 0;
        bool https = n > 8 && strncasecmp(p, "https://", 8) == 0;
        const char *host = p + (https ? 8 : 7);
        if ((!http && !https) || memchr(host, '/', n - (size_t)(host - p)) || *p == '*')
            return errbuf_fail(err, errlen,
                               "cors: \"%.*s\" is not an origin (* or scheme://host[:port] ...)",
                               (int)(n > 80 ? 80 : n), p);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] < 0x21 || (unsigned char)p[i] >= 0x7f || p[i] == ',')
                return errbuf_fail(err, errlen, "cors: \"%.*s\" is not an origin", (int)n, p);
        char **o = realloc(s->origins, (s->norigins + 1) * sizeof *o);
        if (!o) return errbuf_fail(err, errlen, "out of memory");
        s->origins = o;
        if (!(o[s->norigins] = dupn(p, n))) return errbuf_fail(err, errlen, "out of memory");
        s->norigins++;
        p += n;
    }
    if (!s->norigins) return errbuf_fail(err, errlen, "cors: expected * or a list of origins");
    return 0;
}

static int set_error_page(struct site *s, const char *value, int line, char *err, size_t errlen) {
    /* the last word is the page, the others statuses */
    const char *last = value + strlen(value);
    while (last > value && last[-1] != ' ' && last[-1] != '\t') last--;
    if (*last != '/')
        return errbuf_fail(err, errlen,
                           "error_page: expected CODE... /path (a path under the root)");
    size_t len = strlen(last);
    if (strstr(last, "/../") || (len >= 3 && strcmp(last + len - 3, "/..") == 0) ||
        strpbrk(last, "?#\\") || strstr(last, "//") || last[len - 1] == '/')
        return errbuf_fail(err, errlen, "error_page: \"%s\" is not a plain file path", last);
    char **u = realloc(s->uris, (s->nuris + 1) * sizeof *u);
    if (!u) return errbuf_fail(err, errlen, "out of memory");
    s->uris = u;
    if (!(u[s->nuris] = strdup(last))) return errbuf_fail(err, errlen, "out of memory");
    const char *uri = u[s->nuris++];
    unsigned codes = 0;
    for (const char *p = skip_ws(value); p < last; p = skip_ws(p)) {
        char *end;
        long code = strtol(p, &end, 10);
        if (end == p || (*end != ' ' && *end != '\t') || code < 400 || code > 599)
            return errbuf_fail(err, errlen, "error_page: \"%.*s\" is not a status from 400 to 599",
                               (int)strcspn(p, " \t"), p);
        for (size_t i = 0; i < s->nerrors; i++)
            if (s->errors[i].status == code)
                return errbuf_fail(err, errlen, "error_page: %ld has a page already", code);
        struct site_error *e = realloc(s->errors, (s->nerrors + 1) * sizeof *e);
        if (!e) return errbuf_fail(err, errlen, "out of memory");
        s->errors = e;
        e[s->nerrors++] = (struct site_error){(int)code, uri};
        codes++;
        p = end;
    }
    if (!codes)
        return errbuf_fail(err, errlen, "error_page: expected CODE... /path (no status given)");
    if (!s->error_page_line) s->error_page_line = line;
    return 0;
}

static bool is_redirect(int status) {
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static int set_return(struct site *s, const char *value, int line, char *err, size_t errlen) {
    if (s->ret_status) return errbuf_fail(err, errlen, "return: set twice");
    char *end;
    long code = strtol(value, &end, 10);
    if (end == value || (*end && *end != ' ' && *end != '\t') || code < 200 || code > 599)
        return errbuf_fail(err, errlen,
                           "return: expected a status from 200 to 599, then a URL or text");
    const char *rest = skip_ws(end);
    size_t n = strlen(rest);
    if (n >= 2 && rest[0] == '"' && rest[n - 1] == '"') {
        rest++;
        n -= 2;
    }
    if (is_redirect((int)code) && !n)
        return errbuf_fail(err, errlen, "return: %ld needs a URL (return = %ld https://...)", code,
                           code);
    if (n) {
        if (!(s->ret_text = dupn(rest, n))) return errbuf_fail(err, errlen, "out of memory");
        char why[256];
        if (site_template_check(s->ret_text, is_redirect((int)code), why, sizeof why) < 0)
            return errbuf_fail(err, errlen, "return: %s", why);
    }
    s->ret_status = (int)code;
    s->return_line = line;
    return 0;
}

static const char *const site_names[] = {"header", "cache_control", "expires",
                                         "cors",   "error_page",    "return"};
enum { SITE_HEADER, SITE_CACHE_CONTROL, SITE_EXPIRES, SITE_CORS, SITE_ERROR_PAGE, SITE_RETURN };

/* Which of site_names name is; SITE_RETURN + 1 for none. */
static unsigned site_which(const char *name) {
    unsigned which = 0;
    while (which < sizeof site_names / sizeof site_names[0] && strcmp(site_names[which], name) != 0)
        which++;
    return which;
}

/* One setting into s (not recorded as written). */
static int site_apply(struct site *s, unsigned which, const char *value, int line, char *err,
                      size_t errlen) {
    switch (which) {
    case SITE_HEADER: return set_header(s, value, err, errlen);
    case SITE_CACHE_CONTROL:
        if (s->cache_control) return errbuf_fail(err, errlen, "cache_control: set twice");
        if (s->expires_set)
            return errbuf_fail(err, errlen, "cache_control: expires sets Cache-Control");
        if (!header_value_ok(value))
            return errbuf_fail(err, errlen, "cache_control: a control character in the value");
        if (!(s->cache_control = strdup(value))) return errbuf_fail(err, errlen, "out of memory");
        return 0;
    case SITE_EXPIRES:
        if (s->expires_set) return errbuf_fail(err, errlen, "expires: set twice");
        if (s->cache_control)
            return errbuf_fail(err, errlen, "expires: sets Cache-Control, which cache_control set");
        if (parse_expires(value, &s->expires_s) < 0)
            return errbuf_fail(err, errlen,
                               "expires: expected a time such as 3600, 30m, 1h, 7d, 1y (at "
                               "most 10y), got \"%s\"",
                               value);
        s->expires_set = true;
        return 0;
    case SITE_CORS: return set_cors(s, value, err, errlen);
    case SITE_ERROR_PAGE: return set_error_page(s, value, line, err, errlen);
    default: return set_return(s, value, line, err, errlen);
    }
}

int site_set(struct site **sp, const char *name, const char *value, int line, char *err,
             size_t errlen) {
    unsigned which = site_which(name);
    if (which > SITE_RETURN) return -2;
    if (!*value) return errbuf_fail(err, errlen, "%s: empty value", name);
    struct site *s = *sp;
    if (!s) {
        if (!(s = calloc(1, sizeof *s))) return errbuf_fail(err, errlen, "out of memory");
        *sp = s;
        s->line = line;
    }
    int rc = site_apply(s, which, value, line, err, errlen);
    if (rc < 0) return rc;
    if (conf_settings_add(&s->raw, &s->nraw, name, value, line) < 0)
        return errbuf_fail(err, errlen, "out of memory");
    return 0;
}

int site_set_server(struct site **sp, const char *name, const char *value, int line, char *err,
                    size_t errlen) {
    unsigned which = site_which(name);
    if (which == SITE_ERROR_PAGE || which == SITE_RETURN)
        return errbuf_fail(err, errlen, "%s: a [route]'s setting (%s), not [server]'s", name,
                           which == SITE_RETURN ? "the answer of a path"
                                                : "its root holds the page; routes under it "
                                                  "inherit it");
    return site_set(sp, name, value, line, err, errlen);
}

/* Whether a header = value names Cache-Control. */
static bool is_cache_control_line(const char *value) {
    return strncasecmp(value, "cache-control", 13) == 0 &&
           (value[13] == ':' || value[13] == ' ' || value[13] == '\t');
}

/* Whether s sets that kind (cache_control, expires and a header line of
 * Cache-Control are one kind: each makes Cache-Control). */
static bool sets_kind(const struct site *s, unsigned which) {
    if (!s) return false;
    switch (which) {
    case SITE_HEADER: return s->nheaders > 0;
    case SITE_CACHE_CONTROL:
    case SITE_EXPIRES:
        if (s->cache_control || s->expires_set) return true;
        for (size_t i = 0; i < s->nheaders; i++)
            if (s->headers[i].nlen == 13 &&
                strncasecmp(s->headers[i].name, "cache-control", 13) == 0)
                return true;
        return false;
    case SITE_CORS: return s->cors;
    default: return true;
    }
}

int site_inherit(struct site **sp, const struct site *from) {
    if (!from) return 0;
    bool takes[SITE_RETURN + 1];
    for (unsigned k = 0; k <= SITE_RETURN; k++) takes[k] = !sets_kind(*sp, k);
    for (size_t i = 0; i < from->nraw; i++) {
        unsigned which = site_which(from->raw[i].name);
        if (which > SITE_RETURN || !takes[which]) continue;
        /* a route's own Cache-Control is not doubled by [server]'s line */
        if (which == SITE_HEADER && !takes[SITE_CACHE_CONTROL] &&
            is_cache_control_line(from->raw[i].value))
            continue;
        char err[256];
        if (!*sp && !(*sp = calloc(1, sizeof **sp))) return -1;
        /* checked once already, in [server]: only memory can fail */
        if (site_apply(*sp, which, from->raw[i].value, from->line, err, sizeof err) < 0) return -1;
    }
    return 0;
}

/* Appends "name: value\r\n" to a block. */
static int add_line(char **block, size_t *len, const char *name, size_t nlen, const char *value,
                    size_t vlen) {
    char *b = realloc(*block, *len + nlen + vlen + 5);
    if (!b) return -1;
    memcpy(b + *len, name, nlen);
    memcpy(b + *len + nlen, ": ", 2);
    memcpy(b + *len + nlen + 2, value, vlen);
    memcpy(b + *len + nlen + 2 + vlen, "\r\n", 3);
    *block = b;
    *len += nlen + vlen + 4;
    return 0;
}

/* The header lines made once, so that an answer adds them in one copy. */
static int build_lines(struct site *s) {
    free(s->ok_lines);
    free(s->always_lines);
    s->ok_lines = s->always_lines = NULL;
    s->ok_len = s->always_len = 0;
    for (size_t i = 0; i < s->nheaders; i++) {
        const struct site_header *h = &s->headers[i];
        if (add_line(&s->ok_lines, &s->ok_len, h->name, h->nlen, h->value, h->vlen) < 0 ||
            (h->always &&
             add_line(&s->always_lines, &s->always_len, h->name, h->nlen, h->value, h->vlen) < 0))
            return -1;
    }
    char age[40];
    if (s->cache_control && add_line(&s->ok_lines, &s->ok_len, "Cache-Control", 13,
                                     s->cache_control, strlen(s->cache_control)) < 0)
        return -1;
    if (s->expires_set &&
        add_line(&s->ok_lines, &s->ok_len, "Cache-Control", 13, age,
                 (size_t)snprintf(age, sizeof age, "max-age=%lu", s->expires_s)) < 0)
        return -1;
    return 0;
}

int site_build(struct site *s) {
    return s ? build_lines(s) : 0;
}

int site_check(const struct conf *c, struct conf_route *r, char *err, size_t errlen) {
    struct site *s = r->site;
    char where[PATH_MAX + 300];
    if (!s) return 0;
    if (build_lines(s) < 0) return errbuf_fail(err, errlen, "out of memory");
    if (s->ret_status) {
        if (!r->handler && !(r->handler = strdup("return")))
            return errbuf_fail(err, errlen, "out of memory");
        if (strcmp(r->handler, "return") != 0)
            return errbuf_fail(err, errlen,
                               "%s: return: the route has handler = %s too (return answers "
                               "for it: drop one)",
                               conf_route_where(c, r, s->return_line, where, sizeof where),
                               r->handler);
    }
    if (s->nerrors) {
        const char *root = conf_route_setting(r, "root");
        if (!root)
            return errbuf_fail(err, errlen,
                               "%s: error_page: the route has no root to take the page from (set "
                               "error_page on a static route, e.g. [route /]: routes under it "
                               "inherit it)",
                               conf_route_where(c, r, s->error_page_line, where, sizeof where));
        free(s->err_root);
        s->err_root = NULL;
        if (root[0] == '/')
            s->err_root = strdup(root);
        else if (asprintf(&s->err_root, "%s/%s", r->base_dir ? r->base_dir : ".", root) < 0)
            s->err_root = NULL;
        if (!s->err_root) return errbuf_fail(err, errlen, "out of memory");
    }
    return 0;
}

void site_free(struct site *s) {
    if (!s) return;
    for (size_t i = 0; i < s->nheaders; i++) {
        free(s->headers[i].name);
        free(s->headers[i].value);
    }
    free(s->headers);
    free(s->cache_control);
    for (size_t i = 0; i < s->norigins; i++) free(s->origins[i]);
    free(s->origins);
    free(s->errors);
    for (size_t i = 0; i < s->nuris; i++) free(s->uris[i]);
    free(s->uris);
    free(s->err_root);
    free(s->ok_lines);
    free(s->always_lines);
    free(s->ret_text);
    conf_settings_free(s->raw, s->nraw);
    free(s);
}

void site_dump(const struct site *s, FILE *out) {
    for (size_t i = 0; s && i < s->nraw; i++)
        fprintf(out, "%s = %s\n", s->raw[i].name, s->raw[i].value);
}

/* ---- requests ------------------------------------------------------------ */

static bool success(int status) {
    switch (status) {
    case 200:
    case 201:
    case 204:
    case 206:
    case 301:
    case 302:
    case 303:
    case 304:
    case 307:
    case 308: return true;
    default: return false;
    }
}

/* The route whose settings apply: the one that answers, else the one
 * nearest the path (405, a refusal). */
static const struct route *route_of(const struct exchange *ex) {
    return ex->route ? ex->route : ex->near;
}

/* Access-Control-Allow-Origin (and Vary) for the request's Origin. */
static void cors_headers(struct exchange *ex, const struct site *s, pfd_str origin) {
    struct response *r = &ex->resp;
    if (s->cors_any) {
        response_header_raw(r, "Access-Control-Allow-Origin: *\r\n", 32);
        return;
    }
    response_header_raw(r, "Vary: Origin\r\n", 14);
    if (!origin.p) return;
    for (size_t i = 0; i < s->norigins; i++)
        if (strlen(s->origins[i]) == origin.len &&
            strncasecmp(s->origins[i], origin.p, origin.len) == 0) {
            response_header_n(r, "Access-Control-Allow-Origin", 27, origin.p, origin.len);
            return;
        }
}

bool site_before(struct exchange *ex) {
    const struct route *rt = route_of(ex);
    const struct site *s = rt ? rt->site : NULL;
    if (!s || !s->cors || ex->req->method != METHOD_OPTIONS) return false;
    pfd_req *r = (pfd_req *)ex;
    pfd_str origin = pfd_header(r, "origin"),
            method = pfd_header(r, "access-control-request-method");
    if (!origin.p || !method.p) return false; /* a plain OPTIONS: the route's */
    response_reset(&ex->resp);
    ex->resp.status = 204;
    ex->preflight = true;
    cors_headers(ex, s, origin);
    unsigned m = rt->methods ? rt->methods
                             : (1u << METHOD_GET) | (1u << METHOD_POST) | (1u << METHOD_PUT) |
                                   (1u << METHOD_DELETE) | (1u << METHOD_PATCH);
    if (m & (1u << METHOD_GET)) m |= 1u << METHOD_HEAD; /* HEAD goes with GET */
    char allow[96];
    routes_allow_text(m | (1u << METHOD_OPTIONS), allow, sizeof allow);
    response_header(&ex->resp, "Access-Control-Allow-Methods", "%s", allow);
    pfd_str hdrs = pfd_header(r, "access-control-request-headers");
    if (hdrs.p && hdrs.len) {
        bool ok = true;
        for (size_t i = 0; i < hdrs.len; i++)
            if (!is_token_char((unsigned char)hdrs.p[i]) && hdrs.p[i] != ',' && hdrs.p[i] != ' ')
                ok = false;
        if (ok) response_header_n(&ex->resp, "Access-Control-Allow-Headers", 28, hdrs.p, hdrs.len);
    }
    response_header_raw(&ex->resp, "Access-Control-Max-Age: " CORS_MAX_AGE "\r\n",
                        sizeof "Access-Control-Max-Age: " CORS_MAX_AGE "\r\n" - 1);
    return true;
}

/* Opens rel beneath dir, never outside it. */
static int open_beneath(const char *dir, const char *rel) {
    int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return -1;
    int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    struct open_how how = {.flags = (uint64_t)flags, .resolve = RESOLVE_BENEATH};
    int fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof how);
    if (fd < 0 && errno == ENOSYS) {
        /* an old kernel: no symlinks at all (the path has no "..") */
        how.resolve = 0;
        fd = openat(dfd, rel, flags | O_NOFOLLOW);
    }
    close(dfd);
    return fd;
}

/* The page for an error answer whose body is the built-in text. */
static void error_page(struct exchange *ex, const struct site *s) {
    struct response *r = &ex->resp;
    const char *uri = NULL;
    for (size_t i = 0; i < s->nerrors && !uri; i++)
        if (s->errors[i].status == r->status) uri = s->errors[i].uri;
    if (!uri || !s->err_root) return;
    int fd = open_beneath(s->err_root, uri + 1);
    struct stat st;
    if (fd < 0) return;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return; /* the built-in text stays */
    }
    r->mem_len = 0;
    r->builtin = false;
    r->content_type = mime_type(uri);
    response_file(r, fd, 0, (uint64_t)st.st_size);
}

void site_finish(struct exchange *ex) {
    const struct route *rt = route_of(ex);
    struct response *r = &ex->resp;
    if (rt && rt->errsite && r->builtin && r->status >= 400 && r->body == BODY_MEM)
        error_page(ex, rt->errsite);
    /* an answer no route gave (no route for the path, 421, a refused
     * request) takes [server]'s, as nginx's server-level add_header */
    const struct site *s = rt ? rt->site : ex->env->conf->site;
    if (!s || ex->preflight) return;
    if (!success(r->status)) {
        if (s->always_len) response_header_lines(r, s->always_lines, s->always_len);
    } else {
        if (s->ok_len) response_header_lines(r, s->ok_lines, s->ok_len);
        if (s->expires_set) {
            /* per process, once a second (only loop threads make heads) */
            static time_t made = -1;
            static unsigned long made_s;
            static char line[sizeof "Expires: \r\n" + HTTPDATE_LEN];
            time_t now = time(NULL);
            if (now != made || s->expires_s != made_s) {
                memcpy(line, "Expires: ", 9);
                httpdate_format(now + (time_t)s->expires_s, line + 9);
                memcpy(line + 9 + HTTPDATE_LEN, "\r\n", 2);
                made = now;
                made_s = s->expires_s;
            }
            response_header_raw(r, line, 11 + HTTPDATE_LEN);
        }
    }
    /* cors = * needs no Origin: no look-up of it */
    if (s->cors && ex->req)
        cors_headers(ex, s, s->cors_any ? (pfd_str){0} : pfd_header((pfd_req *)ex, "origin"));
}

/* ---- return ---------------------------------------------------------------- */

static int return_handle(pfd_req *r) {
    struct exchange *ex = (struct exchange *)r;
    const struct site *s = ex->route->site;
    const struct http_request *req = ex->req;
    char host[256];
    size_t hlen = 0;
    pfd_str h = pfd_field(r, PFD_F_HOST);
    if (h.p && site_host(h, host, sizeof host, &hlen) < 0) return pfd_error(r, 400);
    const char *scheme = pfd_scheme(r);
    struct site_vars v = {
        .scheme = {scheme, strlen(scheme)},
        .host = {host, hlen},
        .request_uri = {req->target.p, req->target.len},
        .uri = {req->path, req->path_len},
        .args = {req->query.p ? req->query.p : "", req->query.p ? req->query.len : 0},
    };
    bool url = is_redirect(s->ret_status);
    if (!s->ret_text) {
        /* an error without text is the server's own (error_page applies) */
        if (s->ret_status >= 400) return pfd_error(r, s->ret_status);
        pfd_status(r, s->ret_status);
        return PFD_OK;
    }
    size_t n = site_expand(s->ret_text, &v, url, NULL, 0);
    char *text = pfd_alloc(r, n + 2);
    if (!text) return pfd_error(r, 500);
    site_expand(s->ret_text, &v, url, text, n + 1);
    if (url) {
        pfd_status(r, s->ret_status);
        return pfd_header_add(r, "Location", text);
    }
    text[n] = '\n';
    text[n + 1] = '\0';
    return pfd_text(r, s->ret_status, text);
}

const pfd_handler return_handler = {
    .name = "return",
    .handle = return_handle,
    .body = PFD_BODY_DROP,
};
