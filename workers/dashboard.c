/* dashboard: a live page of the server's counters, written on the public API
 * (preforkd.h) like any application's handler.
 *
 * GET answers one self-contained HTML page (workers/dashboard.html, built
 * into the binary by cmake/embed_html.cmake): inline CSS and JavaScript, no
 * other request than its polls. The page fetches the route setting
 * status_url (default /status, a route of the status handler) once a second
 * and draws the rates, latency percentiles, connections and pool use.
 *
 * The page's only dynamic part is the status URL, written HTML-escaped into
 * <meta name="status-url"> where the page has the mark @STATUS_URL@; the page
 * is built once per route when a worker starts and every answer is sent from
 * it. The Content-Security-Policy lets run only the page's own script and
 * style (by their hashes) and fetch only from the page's origin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generated/dashboard_html.h"
#include "workers/handlers.h"
#include "workers/preforkd.h"

#define STATUS_URL_DEFAULT "/status"
#define STATUS_URL_MAX     1024
#define STATUS_URL_MARK    "@STATUS_URL@"

#define DASHBOARD_CSP                                                                              \
    "default-src 'none'; script-src " DASHBOARD_SCRIPT_HASH "; style-src " DASHBOARD_STYLE_HASH    \
    "; connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; "                  \
    "frame-ancestors 'none'"

/* One route's page and the header fields of its answers. */
struct dashboard {
    char *page;
    size_t len;
    pfd_headers *headers;
};

static const char *status_url(const pfd_route *rt) {
    const char *url = pfd_route_setting(rt, "status_url");
    return url ? url : STATUS_URL_DEFAULT;
}

/* A path on the page's own origin: it starts with one '/' (not "//" or
 * "/\", which browsers read as another host) and holds no control
 * character, space or backslash. */
static int check_url(const char *url, char *err, size_t errlen) {
    size_t n = strlen(url);
    if (url[0] != '/' || url[1] == '/' || url[1] == '\\') {
        snprintf(err, errlen, "status_url: must be a path of this server, starting with one '/'");
        return -1;
    }
    if (n > STATUS_URL_MAX) {
        snprintf(err, errlen, "status_url: longer than %d bytes", STATUS_URL_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= ' ' || c == 0x7f || c == '\\') {
            snprintf(err, errlen, "status_url: no spaces, control characters or backslashes");
            return -1;
        }
    }
    return 0;
}

static int dashboard_check(const pfd_route *rt, char *err, size_t errlen) {
    return check_url(status_url(rt), err, errlen);
}

/* The entity for a character HTML gives a meaning in an attribute, or
 * NULL. */
static const char *html_entity(char c) {
    switch (c) {
    case '&': return "&amp;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '"': return "&quot;";
    case '\'': return "&#39;";
    default: return NULL;
    }
}

/* Writes s HTML-escaped at out (room for 6 bytes per character); returns
 * the bytes written. */
static size_t html_escape(char *out, const char *s) {
    size_t n = 0;
    for (; *s; s++) {
        const char *e = html_entity(*s);
        size_t elen = e ? strlen(e) : 1;
        memcpy(out + n, e ? e : s, elen);
        n += elen;
    }
    return n;
}

/* The page with url in place of its mark; NULL when out of memory or the
 * page has no mark. */
static char *page_build(const char *url, size_t *len) {
    const char *mark = strstr(dashboard_html, STATUS_URL_MARK);
    if (!mark) return NULL;
    size_t head = (size_t)(mark - dashboard_html);
    const char *tail = mark + strlen(STATUS_URL_MARK);
    size_t tail_len = strlen(tail);
    char *page = malloc(head + 6 * strlen(url) + tail_len);
    if (!page) return NULL;
    memcpy(page, dashboard_html, head);
    size_t n = head + html_escape(page + head, url);
    memcpy(page + n, tail, tail_len);
    *len = n + tail_len;
    return page;
}

static pfd_headers *headers_build(void) {
    pfd_headers *h = pfd_headers_new();
    if (!h || pfd_headers_set(h, "Cache-Control", "no-store") < 0 ||
        pfd_headers_set(h, "Content-Security-Policy", DASHBOARD_CSP) < 0 ||
        pfd_headers_set(h, "X-Content-Type-Options", "nosniff") < 0 ||
        pfd_headers_set(h, "Referrer-Policy", "no-referrer") < 0) {
        pfd_headers_free(h);
        return NULL;
    }
    return h;
}

static void dashboard_fini(pfd_route *rt) {
    struct dashboard *d = pfd_route_data(rt);
    if (d) {
        free(d->page);
        pfd_headers_free(d->headers);
    }
    free(d);
    pfd_route_set_data(rt, NULL);
}

static int dashboard_init(pfd_route *rt, char *err, size_t errlen) {
    const char *url = status_url(rt);
    if (check_url(url, err, errlen) < 0) return -1;
    struct dashboard *d = calloc(1, sizeof *d);
    pfd_route_set_data(rt, d);
    if (!d || !(d->page = page_build(url, &d->len)) || !(d->headers = headers_build())) {
        snprintf(err, errlen, "dashboard: cannot build the page (out of memory?)");
        dashboard_fini(rt);
        return -1;
    }
    return 0;
}

static int dashboard_handle(pfd_req *r) {
    enum pfd_method m = pfd_method_id(r);
    if (m != PFD_GET && m != PFD_HEAD) {
        pfd_error(r, 405);
        return pfd_header_add(r, "Allow", "GET, HEAD");
    }
    const struct dashboard *d = pfd_route_data(pfd_req_route(r));
    if (pfd_header_block(r, d->headers) < 0 || pfd_content_type(r, "text/html; charset=utf-8") < 0)
        return PFD_OK; /* failed: 500 */
    return pfd_body_ref(r, d->page, d->len, NULL, NULL);
}

static const char *const dashboard_settings[] = {"status_url", NULL};

const pfd_handler dashboard_handler = {
    .name = "dashboard",
    .handle = dashboard_handle,
    .body = PFD_BODY_DROP,
    .settings = dashboard_settings,
    .check = dashboard_check,
    .init = dashboard_init,
    .fini = dashboard_fini,
};
