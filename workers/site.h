/* site: per-route settings of a static site, applied around any handler.
 *
 *   header = Name: value [always]   added to a success answer (200 201 204
 *                                   206 301 302 303 304 307 308), with
 *                                   "always" to every answer (repeatable)
 *   cache_control = public, ...     Cache-Control on success answers
 *   expires = 1h                    Expires and Cache-Control: max-age
 *   cors = * | ORIGIN ...           Access-Control-Allow-Origin on every
 *                                   answer; a preflight OPTIONS gets 204
 *   error_page = CODE... /path      the route's own error answers (those
 *                                   whose body is still the built-in text)
 *                                   carry this file of the route's root,
 *                                   with their status; inherited by the
 *                                   routes under a prefix route
 *   return = CODE [URL | "text"]    a fixed answer (the "return" handler)
 *
 * A route's settings are parsed once with the configuration (struct site,
 * hung on struct conf_route, freed with it) and read by every worker: the
 * request path costs one pointer test for a route without them.
 * site_before() runs before the handler (preflight), site_finish() when the
 * head is serialized (headers, error pages). Loop thread. */
#ifndef PREFORKD_SITE_H
#define PREFORKD_SITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "workers/preforkd.h"

struct conf;
struct conf_route;
struct conf_setting;
struct exchange;
struct routes;

/* One header = line. */
struct site_header {
    char *name, *value;
    size_t nlen, vlen;
    bool always;
};

/* One status of an error_page line. */
struct site_error {
    int status;
    const char *uri; /* "/404.html", owned by the site's uris */
};

struct site {
    struct site_header *headers;
    size_t nheaders;
    char *cache_control;     /* NULL: none */
    unsigned long expires_s; /* expires_set: seconds */
    bool expires_set;
    bool cors, cors_any; /* cors = *: cors_any */
    char **origins;
    size_t norigins;
    struct site_error *errors;
    size_t nerrors;
    char **uris; /* error page paths */
    size_t nuris;
    char *err_root; /* the route's root (absolute), where error pages are */
    /* made by site_check: the header lines of a success answer (header,
     * cache_control, expires' max-age), and those of the others (always) */
    char *ok_lines, *always_lines;
    size_t ok_len, always_len;
    int ret_status;                         /* 0: no return */
    char *ret_text;                         /* a template: the URL, or the body (NULL: none) */
    int return_line, error_page_line, line; /* config lines, for messages */
    struct conf_setting *raw;               /* as written, for -T (and what routes inherit) */
    size_t nraw;
};

/* [server]'s header, cache_control, expires or cors (error_page and
 * return are refused there): the routes' defaults, site_set's returns. */
int site_set_server(struct site **s, const char *name, const char *value, int line, char *err,
                    size_t errlen);
/* What a route takes from [server]'s settings (from, may be NULL): each
 * kind it sets none of — its header lines, its Cache-Control (cache_control
 * or expires), its cors — as nginx's add_header, expires and the like are
 * inherited by a location that has none of its own. -1 when out of memory. */
int site_inherit(struct site **s, const struct site *from);
/* Makes [server]'s header lines (the answers no route gave use them); -1
 * when out of memory. */
int site_build(struct site *s);

/* A route's setting when it is one of site's (header, cache_control,
 * expires, cors, error_page, return): 0, -1 with err ("name: why"), or -2
 * for a setting that is not site's. *s is allocated on the first one. */
int site_set(struct site **s, const char *name, const char *value, int line, char *err,
             size_t errlen);
/* Final checks of a route's site settings (conf_finish): a route with
 * return gets the return handler; error_page needs the route's root. */
int site_check(const struct conf *c, struct conf_route *r, char *err, size_t errlen);
void site_free(struct site *s);
/* The settings as written, one "name = value" line each. */
void site_dump(const struct site *s, FILE *out);

/* What a template's variables stand for in one request. */
struct site_vars {
    pfd_str scheme, host, request_uri, uri, args;
};
/* Whether tmpl names only known variables ($scheme $host $request_uri $uri
 * $args, or ${name}); -1 with err. url: a URL (no spaces or controls). */
int site_template_check(const char *tmpl, bool url, char *err, size_t errlen);
/* Expands tmpl into out (up to cap bytes, NUL-terminated when cap > 0);
 * returns the whole length. url: what variables bring in is
 * percent-encoded where a URL may not hold it (controls, spaces, non-ASCII;
 * for the decoded $uri also '%', '?', '#'), so that a Location header can
 * neither be split nor changed in meaning. */
size_t site_expand(const char *tmpl, const struct site_vars *v, bool url, char *out, size_t cap);
/* The Host header's name: lowercased, without port, into out; -1 when it
 * holds what no host name does. */
int site_host(pfd_str host, char *out, size_t cap, size_t *len);

/* Before the handler: a CORS preflight is answered here (true). */
bool site_before(struct exchange *ex);
/* When the head is made: error page and headers of the route that gave the
 * answer (or the route nearest its path). */
void site_finish(struct exchange *ex);

/* The handler of routes with return (handler = return, implied). */
extern const pfd_handler return_handler;

#endif
