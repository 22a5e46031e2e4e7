/* conf: the configuration — defaults, the INI file ([server] and [route PATH]
 * sections, parsed with inih), command-line overrides, and validation.
 *
 * Every setting is one row of a table in conf.c (name, kind, default, bounds),
 * so the INI parser, the CLI and the README describe the same thing. Durations
 * are stored in milliseconds, sizes in bytes. Errors are returned as text in a
 * caller's buffer ("FILE:LINE: setting: why"); nothing here prints or exits. */
#ifndef PREFORKD_CONF_H
#define PREFORKD_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "server/acl.h"
#include "server/listen.h"

struct site;

enum conf_log_level { CONF_LOG_ERROR, CONF_LOG_WARN, CONF_LOG_INFO, CONF_LOG_DEBUG };
/* The error log's lines: text, or a JSON object each. */
enum conf_log_format { CONF_LOG_TEXT, CONF_LOG_JSON };

/* Where a route's handler runs: on the loop thread, or on the worker's pool. */
enum route_mode { ROUTE_INLINE, ROUTE_POOL };

/* How a route's path is matched (workers/route.h); the order is that of
 * precedence. */
enum conf_route_match { CONF_MATCH_EXACT, CONF_MATCH_PATTERN, CONF_MATCH_PREFIX };

/* {name} segments a pattern route may have. */
#define CONF_MAX_ROUTE_PARAMS 16

/* A setting of a route that belongs to its handler (root, index...). */
struct conf_setting {
    char *name, *value;
    int line;
};

/* One [route PATH] section: [route /prefix], [route = /exact] or
 * [route /pattern/{name}]. */
struct conf_route {
    char *prefix; /* the path as written: a prefix, an exact path or a pattern */
    enum conf_route_match match;
    char *handler;
    char *module;     /* a module to take the handler from (absolute path), or NULL */
    char *symbol;     /* the module's pfd_app symbol; NULL: preforkd_module */
    unsigned methods; /* bit per method, in enum req_method's order; 0: any */
    enum route_mode mode;
    bool mode_set;
    uint64_t max_body_size; /* the route's own (max_body_size_set), else the server's */
    bool max_body_size_set;
    /* Client networks: a peer on deny, or not on a non-empty allow, gets
     * 403 (allow/deny; the admin listener's routes take admin_allow). */
    struct acl allow, deny;
    bool admin; /* served on admin_listen only, made from the server's settings */
    /* hosts = ...: the Host names it serves (lowercase; "*.example.org" for
     * any name below), or none: every host no route names */
    char **hosts;
    size_t nhosts;
    char *hosts_text;              /* as written: routes of one path and hosts are one group */
    struct conf_setting *settings; /* the handler's own settings, in file order */
    size_t nsettings;
    char *base_dir; /* the config file's folder (relative paths), NULL for flags */
    int line;       /* config line of the section header, for error messages */
    /* config line of each setting (0: not from a file), so that an error
     * points at the line to fix */
    int handler_line, mode_line, module_line, symbol_line, methods_line, max_body_size_line,
        allow_line, deny_line, hosts_line;
    const void *impl; /* the resolved handler (workers/handlers.c), or NULL */
    /* header, cache_control, expires, cors, error_page, return (workers/site.h),
     * or NULL when the route has none */
    struct site *site;
};

/* Room for the settings table in conf.c (a static assertion there keeps it
 * large enough). */
#define CONF_MAX_SETTINGS 48

/* The whole configuration. Times in ms, sizes in bytes. */
struct conf {
    char **listen;    /* "host:port", "[v6]:port" or "unix:/path": the address alone */
    int *listen_line; /* the config line of each; 0 for a flag or the default */
    struct listen_opts *listen_opts; /* the options written after each address */
    size_t nlisten;
    unsigned workers; /* 0 = auto */
    unsigned threads;
    unsigned backlog;

    unsigned header_timeout;
    unsigned defer_accept; /* TCP_DEFER_ACCEPT, ms; 0: off */
    unsigned body_timeout;
    unsigned send_timeout;
    unsigned keepalive_timeout;
    unsigned request_timeout;
    unsigned shutdown_timeout;
    unsigned stop_delay; /* graceful stop: /readyz says 503 this long before the stop begins */
    unsigned shutdown_idle_timeout;
    unsigned worker_timeout;
    unsigned upgrade_timeout;
    unsigned linger_timeout;
    unsigned keepalive_requests;
    unsigned max_connections;
    unsigned pool_queue;
    unsigned file_cache_entries; /* 0: no open-file cache */
    unsigned file_cache_valid;
    unsigned file_cache_idle; /* a cached file not asked for this long is closed */

    uint64_t max_uri;
    uint64_t max_header_size;
    unsigned max_headers;
    uint64_t max_body_size;
    uint64_t body_min_rate;     /* bytes per second a body keeps up after body_timeout; 0: off */
    uint64_t stream_buffer;     /* streamed bytes on their way before a writer waits */
    uint64_t cached_buffer_max; /* larger buffers of a finished request are freed */
    unsigned cached_objects;    /* finished conns and exchanges kept for reuse (each) */

    char *access_log;        /* path, "-" for stdout, or NULL when off */
    char *access_log_format; /* "combined", "json" or a format (workers/accesslog.h) */
    char *error_log;         /* path, NULL for stderr */
    enum conf_log_level log_level;
    enum conf_log_format log_format;
    char *pid_file;
    char *user;
    char *group;
    char *server_name;          /* Server header value */
    char *admin_listen;         /* the admin listener's address, NULL or "off" for none */
    bool admin_on;              /* there is one: the last listen line (conf_finish) */
    char *admin_allow;          /* client networks the admin listener serves */
    char *trusted_proxies_text; /* trusted_proxies as written, or NULL */
    struct acl trusted_proxies; /* parsed by conf_finish (empty when none) */
    char *real_ip_header;       /* where trusted proxies name the client */
    char *unknown_host;         /* "serve" (routes without hosts) or "421" */

    /* [server]'s header, cache_control, expires and cors: what a route that
     * sets none of a kind takes (conf_finish copies them in) */
    struct site *site;
    struct conf_route *routes;
    size_t nroutes;
    /* What workers/handlers.c loaded for this configuration (modules), and
     * how conf_free() releases it. */
    void *handlers;
    void (*release_handlers)(struct conf *c);

    char *path;     /* the config file (absolute), NULL when none */
    char *file;     /* the config file as given on the command line: messages name it */
    char *base_dir; /* relative paths in the file resolve against this */
    int line[CONF_MAX_SETTINGS]; /* per setting: its config line, 0 for a default or flag */
};

/* Fills c with the defaults (no routes, no listen addresses yet). */
void conf_init(struct conf *c);
void conf_free(struct conf *c);

/* Reads an INI file into c (on top of what c already holds). */
int conf_load_file(struct conf *c, const char *path, char *err, size_t errlen);
/* The same from a string; name labels error messages (used by tests). */
int conf_load_string(struct conf *c, const char *text, const char *name, char *err, size_t errlen);

/* Sets one [server] setting from text, as the INI file or a flag would. */
int conf_set(struct conf *c, const char *name, const char *value, char *err, size_t errlen);

/* Serves dir at "/" with the static handler: --root. */
int conf_set_root(struct conf *c, const char *dir, char *err, size_t errlen);

/* Final checks and derived values, after file and flags: a default listen
 * address, absolute roots that exist, handler/mode combinations,
 * shutdown_idle_timeout within keepalive_timeout. */
int conf_finish(struct conf *c, char *err, size_t errlen);

/* Where a setting was read: "FILE:LINE: " when it came from the config file,
 * "" for a default or a flag. line is a line number (conf_line, a route's
 * *_line, listen_line). Returns out. */
const char *conf_where(const struct conf *c, int line, char *out, size_t outlen);
/* "FILE:LINE: [route /x]" for the line of a route's setting (line), or
 * its section's header when line is 0; "[route /x]" for --root. */
const char *conf_route_where(const struct conf *c, const struct conf_route *r, int line, char *out,
                             size_t outlen);
/* A list of name = value settings as written (a route's for its handler,
 * a site's for -T): append a copy (0, or -1 when out of memory), free. */
int conf_settings_add(struct conf_setting **v, size_t *n, const char *name, const char *value,
                      int line);
void conf_settings_free(struct conf_setting *v, size_t n);
/* A route's setting for its handler, NULL when not set. */
const char *conf_route_setting(const struct conf_route *r, const char *name);
/* The config line of a [server] setting, 0 when not from the file. */
int conf_line(const struct conf *c, const char *name);
/* A number: text parsed as the [server] setting name would be (a size, a
 * duration in ms, a count), or with text NULL that setting's value. 0, or
 * -1 when there is no such number. */
int conf_number(const struct conf *c, const char *name, const char *text, uint64_t *out);

/* Parsers for setting values, exposed for tests. */
int conf_parse_size(const char *s, uint64_t *out);
int conf_parse_duration(const char *s, unsigned *ms);

/* Writes the configuration as an INI file would give it (-T): every
 * [server] setting with its value (defaults too; unset ones as comments),
 * then each route section but the admin listener's. */
void conf_dump(const struct conf *c, FILE *out);

/* Writes the settings table as "name default description" lines (for --help). */
void conf_describe(void (*emit)(const char *name, const char *dflt, const char *doc, void *arg),
                   void *arg);

#endif
