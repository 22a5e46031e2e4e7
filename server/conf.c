/* conf: settings table, value parsers, INI loading and validation. */
#include "server/conf.h"

#include "server/errbuf.h"
#include "server/listen.h"
#include "workers/accesslog.h"
#include "workers/site.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum kind {
    K_UINT,     /* plain count */
    K_SIZE,     /* bytes, k/m/g suffixes */
    K_DURATION, /* h, m, s, ms parts (1m30s); a bare number is seconds */
    K_STRING,   /* free text */
    K_PATH,     /* file path, made absolute against the config's folder */
    K_LOG,      /* a path, "-" (stdout) or "off" */
    K_WORKERS,  /* N or auto */
    K_LEVEL,    /* error|warn|info|debug */
    K_LOGFMT,   /* text|json */
    K_ALOGFMT,  /* an access log format: combined, json or $variables */
    K_LISTEN,   /* repeatable address */
};

struct setting {
    const char *name;
    enum kind kind;
    size_t off;
    const char *dflt; /* parsed like user input at conf_init; NULL = unset */
    uint64_t min, max;
    const char *doc;
};

#define F(field) offsetof(struct conf, field)
#define DAY      (24u * 3600u * 1000u)
#define GIB      (1024ull * 1024 * 1024)

static const struct setting settings[] = {
    {"listen", K_LISTEN, F(listen), NULL, 0, 0,
     "address to serve: host:port, [v6]:port or unix:PATH, then options (proxy_protocol); "
     "repeatable"},
    {"workers", K_WORKERS, F(workers), "auto", 1, 512, "worker processes; auto = usable CPUs"},
    {"threads", K_UINT, F(threads), "4", 1, 1024, "pool threads per worker"},
    {"pool_queue", K_UINT, F(pool_queue), "1024", 1, 1u << 20,
     "pool jobs waiting per worker before 503"},
    {"backlog", K_UINT, F(backlog), "4096", 1, 65535, "listen() backlog"},
    {"defer_accept", K_DURATION, F(defer_accept), "1s", 0, 3600 * 1000,
     "a TCP connection is accepted once its first bytes came, or after this; 0 = at once"},
    {"header_timeout", K_DURATION, F(header_timeout), "60s", 1, DAY,
     "time to receive a whole request head (408)"},
    {"body_timeout", K_DURATION, F(body_timeout), "60s", 1, DAY,
     "longest pause between two reads of a body (408)"},
    {"send_timeout", K_DURATION, F(send_timeout), "60s", 1, DAY,
     "longest pause between two writes of a response"},
    {"keepalive_timeout", K_DURATION, F(keepalive_timeout), "75s", 1, DAY,
     "idle time between requests on a keep-alive connection"},
    {"keepalive_requests", K_UINT, F(keepalive_requests), "1000", 1, UINT32_MAX,
     "requests served on one connection before it is closed"},
    {"request_timeout", K_DURATION, F(request_timeout), "60s", 1, DAY,
     "time a pool handler may take before the client gets 504"},
    {"shutdown_timeout", K_DURATION, F(shutdown_timeout), "30s", 1, DAY,
     "graceful stop: time before in-flight requests are cut"},
    {"stop_delay", K_DURATION, F(stop_delay), "0", 0, 3600 * 1000,
     "graceful stop: time /readyz answers 503 while serving on, before listeners close"},
    {"shutdown_idle_timeout", K_DURATION, F(shutdown_idle_timeout), "1s", 0, DAY,
     "graceful stop: time an idle keep-alive connection may still send a request"},
    {"upgrade_timeout", K_DURATION, F(upgrade_timeout), "10s", 1, DAY,
     "binary upgrade: a new master whose workers do not all serve by then gives up"},
    {"worker_timeout", K_DURATION, F(worker_timeout), "30s", 1, DAY,
     "a worker whose loop shows no heartbeat this long is killed and respawned"},
    {"linger_timeout", K_DURATION, F(linger_timeout), "5s", 1, DAY,
     "after an error response, time spent draining the client before close"},
    {"max_connections", K_UINT, F(max_connections), "10000", 1, 1u << 24,
     "open connections per worker; more wait in the backlog"},
    {"file_cache_entries", K_UINT, F(file_cache_entries), "1024", 0, 1u << 20,
     "open files kept per static route and worker; 0 = none"},
    {"file_cache_valid", K_DURATION, F(file_cache_valid), "1s", 1, DAY,
     "how long a cached file is trusted before it is checked again"},
    {"file_cache_idle", K_DURATION, F(file_cache_idle), "60s", 1, DAY,
     "a cached file not asked for this long is closed"},
    {"max_uri", K_SIZE, F(max_uri), "8k", 16, 1024 * 1024, "longest request target (414)"},
    {"max_header_size", K_SIZE, F(max_header_size), "32k", 64, 16 * 1024 * 1024,
     "header fields of a request, in bytes (431)"},
    {"max_headers", K_UINT, F(max_headers), "100", 1, 10000, "header fields in a request (431)"},
    {"max_body_size", K_SIZE, F(max_body_size), "1m", 0, 64 * GIB, "request body (413)"},
    {"body_min_rate", K_SIZE, F(body_min_rate), "1k", 0, 1024 * GIB,
     "bytes/s a request body must average beyond body_timeout (408); 0 = off"},
    {"stream_buffer", K_SIZE, F(stream_buffer), "256k", 1024, 1024 * 1024 * 1024,
     "streamed bytes on their way to a slow client before the handler waits"},
    {"cached_buffer_max", K_SIZE, F(cached_buffer_max), "16k", 0, 1024 * 1024 * 1024,
     "a finished request's buffers larger than this are freed, not cached"},
    {"cached_objects", K_UINT, F(cached_objects), "256", 0, 65536,
     "finished connections and requests (each) kept for reuse; freed after an idle second"},
    {"access_log", K_LOG, F(access_log), "off", 0, 0, "access log path, - for stdout, or off"},
    {"access_log_format", K_ALOGFMT, F(access_log_format), "combined", 0, 0,
     "combined (nginx's), json, or a line of $variables and text"},
    {"error_log", K_LOG, F(error_log), NULL, 0, 0, "error log path, or - for stdout"},
    {"log_level", K_LEVEL, F(log_level), "info", 0, 0, "error, warn, info or debug"},
    {"log_format", K_LOGFMT, F(log_format), "text", 0, 0,
     "error log lines: text, or json (an object per line)"},
    {"pid_file", K_PATH, F(pid_file), NULL, 0, 0, "file holding the master's pid"},
    {"user", K_STRING, F(user), NULL, 0, 0, "user workers run as when started as root"},
    {"group", K_STRING, F(group), NULL, 0, 0, "group workers run as when started as root"},
    {"server_name", K_STRING, F(server_name), "preforkd", 0, 0, "value of the Server header"},
    {"admin_listen", K_STRING, F(admin_listen), NULL, 0, 0,
     "address of the admin listener (/status /metrics /healthz /readyz /dashboard); off"},
    {"admin_allow", K_STRING, F(admin_allow), "127.0.0.0/8 ::1 unix", 0, 0,
     "client networks the admin listener answers (others: 403); all = anyone"},
    {"trusted_proxies", K_STRING, F(trusted_proxies_text), NULL, 0, 0,
     "proxies whose real_ip_header names the client (networks, unix); none"},
    {"unknown_host", K_STRING, F(unknown_host), "serve", 0, 0,
     "a Host no route's hosts name: serve (the routes without hosts) or 421"},
    {"real_ip_header", K_STRING, F(real_ip_header), "X-Forwarded-For", 0, 0,
     "X-Forwarded-For, Forwarded (RFC 7239) or another list header such as X-Real-IP"},
};
#define NSETTINGS (sizeof settings / sizeof settings[0])
_Static_assert(NSETTINGS <= CONF_MAX_SETTINGS, "raise CONF_MAX_SETTINGS in conf.h");

/* ---- value parsers ---------------------------------------------------- */

static int parse_u64(const char *s, const char **end, uint64_t *out) {
    if (!isdigit((unsigned char)*s)) return -1;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*s); s++) {
        if (v > (UINT64_MAX - 9) / 10) return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *end = s;
    *out = v;
    return 0;
}

int conf_parse_size(const char *s, uint64_t *out) {
    uint64_t v, mult = 1;
    const char *end;
    if (parse_u64(s, &end, &v) < 0) return -1;
    switch (tolower((unsigned char)*end)) {
    case '\0': break;
    case 'k': mult = 1024, end++; break;
    case 'm': mult = 1024 * 1024, end++; break;
    case 'g': mult = GIB, end++; break;
    default: return -1;
    }
    if (*end != '\0' || (v && mult > UINT64_MAX / v)) return -1;
    *out = v * mult;
    return 0;
}

/* "90" (seconds), "500ms", "30s", "2m", "1h", or parts from the largest
 * unit down, each unit once: "1m30s", "1h2m", "1h0m5s250ms". */
int conf_parse_duration(const char *s, unsigned *ms) {
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"h", 3600 * 1000}, {"ms", 1}, {"m", 60 * 1000}, {"s", 1000}};
    /* the order units must come in: h, m, s, ms */
    static const unsigned rank[] = {0, 3, 1, 2};
    uint64_t v, total = 0;
    const char *end;
    unsigned next = 0;
    if (parse_u64(s, &end, &v) < 0) return -1;
    if (*end == '\0') { /* a bare number is seconds */
        if (v > UINT_MAX / 1000) return -1;
        *ms = (unsigned)(v * 1000);
        return 0;
    }
    for (;;) {
        size_t u = 0, n = sizeof units / sizeof units[0];
        while (u < n && strncmp(end, units[u].unit, strlen(units[u].unit)) != 0) u++;
        if (u == n || rank[u] < next) return -1;
        if (v > (UINT_MAX - total) / units[u].mult) return -1;
        total += v * units[u].mult;
        next = rank[u] + 1;
        end += strlen(units[u].unit);
        if (*end == '\0') break;
        if (parse_u64(end, &end, &v) < 0) return -1;
    }
    *ms = (unsigned)total;
    return 0;
}

/* ---- setting assignment ----------------------------------------------- */

static const struct setting *find_setting(const char *name) {
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strcmp(settings[i].name, name) == 0) return &settings[i];
    return NULL;
}

/* An absolute copy of path: relative ones resolve against base (or the
 * current directory), because workers must not depend on where we started. */
static char *absolute_path(const char *path, const char *base) {
    char cwd[PATH_MAX];
    if (path[0] == '/') return strdup(path);
    if (!base) {
        if (!getcwd(cwd, sizeof cwd)) return NULL;
        base = cwd;
    }
    size_t n = strlen(base) + strlen(path) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s/%s", base, path);
    return out;
}

/* A listen line as kept: a relative unix socket path is made absolute like
 * every other path. */
static char *listen_line(const char *value, const char *base) {
    const char *path = value + 5;
    if (strncmp(value, "unix:", 5) != 0 || !*path || *path == '/') return strdup(value);
    char *abs = absolute_path(path, base), *line = NULL;
    if (abs && asprintf(&line, "unix:%s", abs) < 0) line = NULL;
    free(abs);
    return line;
}

static int replace_string(char **slot, char *value) {
    if (!value) return -1;
    free(*slot);
    *slot = value;
    return 0;
}

static int set_value(struct conf *c, const struct setting *s, const char *value, const char *base,
                     char *err, size_t errlen) {
    void *field = (char *)c + s->off;
    const char *end;
    uint64_t v;
    unsigned ms;

    switch (s->kind) {
    case K_UINT:
        if (parse_u64(value, &end, &v) < 0 || *end) goto bad;
        if (v < s->min || v > s->max) goto range;
        *(unsigned *)field = (unsigned)v;
        return 0;
    case K_SIZE:
        if (conf_parse_size(value, &v) < 0) goto bad;
        if (v < s->min || v > s->max) goto range;
        *(uint64_t *)field = v;
        return 0;
    case K_DURATION:
        if (conf_parse_duration(value, &ms) < 0) goto bad;
        if (ms < s->min || ms > s->max) goto range;
        *(unsigned *)field = ms;
        return 0;
    case K_WORKERS:
        if (strcmp(value, "auto") == 0) {
            *(unsigned *)field = 0;
            return 0;
        }
        if (parse_u64(value, &end, &v) < 0 || *end) goto bad;
        if (v < s->min || v > s->max) goto range;
        *(unsigned *)field = (unsigned)v;
        return 0;
    case K_LEVEL: {
        static const char *const names[] = {"error", "warn", "info", "debug"};
        for (unsigned i = 0; i < 4; i++)
            if (strcmp(value, names[i]) == 0) {
                *(enum conf_log_level *)field = (enum conf_log_level)i;
                return 0;
            }
        return errbuf_fail(err, errlen, "%s: expected error, warn, info or debug, got \"%s\"",
                           s->name, value);
    }
    case K_LOGFMT:
        if (strcmp(value, "text") != 0 && strcmp(value, "json") != 0)
            return errbuf_fail(err, errlen, "%s: expected text or json, got \"%s\"", s->name,
                               value);
        *(enum conf_log_format *)field = *value == 'j' ? CONF_LOG_JSON : CONF_LOG_TEXT;
        return 0;
    case K_ALOGFMT:
        if (!*value) goto bad;
        /* parsed here to be checked (--check too); each worker parses it
         * again when it opens the log, never per request */
        if (accesslog_format_check(value, err, errlen) < 0) return -1;
        return replace_string(field, strdup(value));
    case K_STRING:
        if (!*value) goto bad;
        return replace_string(field, strdup(value));
    case K_LOG:
        if (strcmp(value, "off") == 0) {
            free(*(char **)field);
            *(char **)field = NULL;
            return 0;
        }
        if (strcmp(value, "-") == 0) return replace_string(field, strdup("-"));
        /* fall through */
    case K_PATH:
        if (!*value) goto bad;
        return replace_string(field, absolute_path(value, base));
    case K_LISTEN: {
        struct sockaddr_storage sa;
        socklen_t salen;
        struct listen_opts opts;
        char *addr, *line;
        if (listen_parse_line(value, &addr, &opts, err, errlen) < 0) return -1;
        line = listen_line(addr, base);
        free(addr);
        if (!line) return errbuf_fail(err, errlen, "out of memory");
        if (listen_parse(line, &sa, &salen, err, errlen) < 0) {
            free(line);
            return -1;
        }
        int *lines = realloc(c->listen_line, (c->nlisten + 1) * sizeof *lines);
        if (lines) c->listen_line = lines;
        struct listen_opts *o = realloc(c->listen_opts, (c->nlisten + 1) * sizeof *o);
        if (o) c->listen_opts = o;
        char **list = realloc(c->listen, (c->nlisten + 1) * sizeof *list);
        if (list) c->listen = list;
        if (!lines || !o || !list) {
            free(line);
            return errbuf_fail(err, errlen, "out of memory");
        }
        lines[c->nlisten] = 0; /* the file's reader sets its line */
        o[c->nlisten] = opts;
        list[c->nlisten++] = line;
        return 0;
    }
    }
bad:
    return errbuf_fail(err, errlen, "%s: invalid value \"%s\"", s->name, value);
range:
    return errbuf_fail(err, errlen, "%s: \"%s\" is out of range", s->name, value);
}

int conf_set(struct conf *c, const char *name, const char *value, char *err, size_t errlen) {
    const struct setting *s = find_setting(name);
    if (!s) return errbuf_fail(err, errlen, "unknown setting \"%s\"", name);
    if (set_value(c, s, value, NULL, err, errlen) < 0) return -1;
    c->line[s - settings] = 0; /* a flag's value: no line of the file to point at */
    return 0;
}

void conf_init(struct conf *c) {
    char err[256];
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NSETTINGS; i++)
        if (settings[i].dflt && set_value(c, &settings[i], settings[i].dflt, NULL, err, sizeof err))
            abort(); /* a bad built-in default is a programming error */
}

static void free_route(struct conf_route *r) {
    free(r->prefix);
    free(r->handler);
    free(r->module);
    free(r->symbol);
    free(r->base_dir);
    conf_settings_free(r->settings, r->nsettings);
    acl_free(&r->allow);
    acl_free(&r->deny);
    site_free(r->site);
    for (size_t i = 0; i < r->nhosts; i++) free(r->hosts[i]);
    free(r->hosts);
    free(r->hosts_text);
}

/* "example.org www.example.org *.example.org": names of letters, digits,
 * '-' and '.', a leading "*." for any name below; lowercased. */
static int parse_hosts(struct conf_route *r, const char *value, char *err, size_t errlen) {
    const char *p = value;
    for (;;) {
        p += strspn(p, " ,\t");
        size_t n = strcspn(p, " ,\t");
        if (!n) break;
        const char *name = p, *body = p;
        if (n > 2 && p[0] == '*' && p[1] == '.') body = p + 2;
        for (const char *q = body; q < p + n; q++)
            if (!(*q == '-' || *q == '.' || (*q >= '0' && *q <= '9') ||
                  ((*q | 0x20) >= 'a' && (*q | 0x20) <= 'z')) ||
                n > 253)
                return errbuf_fail(err, errlen, "hosts: \"%.*s\" is not a host name", (int)n, name);
        char **v = realloc(r->hosts, (r->nhosts + 1) * sizeof *v);
        if (!v) return errbuf_fail(err, errlen, "out of memory");
        r->hosts = v;
        if (!(v[r->nhosts] = strndup(name, n))) return errbuf_fail(err, errlen, "out of memory");
        for (char *q = v[r->nhosts]; *q; q++) *q = (char)(*q >= 'A' && *q <= 'Z' ? *q | 0x20 : *q);
        size_t len = strlen(v[r->nhosts]);
        if (len > 1 && v[r->nhosts][len - 1] == '.') v[r->nhosts][len - 1] = '\0';
        r->nhosts++;
        p += n;
    }
    if (!r->nhosts) return errbuf_fail(err, errlen, "hosts: empty");
    return replace_string(&r->hosts_text, strdup(value));
}

void conf_free(struct conf *c) {
    if (c->release_handlers) c->release_handlers(c);
    for (size_t i = 0; i < c->nlisten; i++) free(c->listen[i]);
    free(c->listen);
    free(c->listen_line);
    free(c->listen_opts);
    for (size_t i = 0; i < c->nroutes; i++) free_route(&c->routes[i]);
    free(c->routes);
    site_free(c->site);
    acl_free(&c->trusted_proxies);
    for (size_t i = 0; i < NSETTINGS; i++) {
        enum kind k = settings[i].kind;
        if (k == K_STRING || k == K_PATH || k == K_LOG || k == K_ALOGFMT)
            free(*(char **)((char *)c + settings[i].off));
    }
    free(c->path);
    free(c->file);
    free(c->base_dir);
    memset(c, 0, sizeof *c);
}

/* ---- routes ----------------------------------------------------------- */

/* Methods a route may name, in enum req_method's order (workers/http.h). */
static const char *const method_names[] = {"GET",    "HEAD",    "POST",  "PUT",
                                           "DELETE", "OPTIONS", "PATCH", "TRACE"};

static struct conf_route *add_route(struct conf *c, const char *path, enum conf_route_match match,
                                    int line) {
    struct conf_route *r = realloc(c->routes, (c->nroutes + 1) * sizeof *r);
    if (!r) return NULL;
    c->routes = r;
    r = &c->routes[c->nroutes];
    memset(r, 0, sizeof *r);
    r->line = line;
    r->match = match;
    if (!(r->prefix = strdup(path)) || (c->base_dir && !(r->base_dir = strdup(c->base_dir)))) {
        free(r->prefix);
        return NULL;
    }
    c->nroutes++;
    return r;
}

/* "GET HEAD POST" (or with commas) as bits. */
static int parse_methods(const char *value, unsigned *out, char *err, size_t errlen) {
    char word[16];
    unsigned bits = 0;
    for (const char *p = value; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        if (!*p) break;
        size_t n = strcspn(p, " ,\t");
        unsigned i = 0;
        for (; i < sizeof method_names / sizeof method_names[0]; i++)
            if (strlen(method_names[i]) == n && strncmp(p, method_names[i], n) == 0) break;
        if (i == sizeof method_names / sizeof method_names[0]) {
            snprintf(word, sizeof word, "%.*s", (int)(n < 15 ? n : 15), p);
            return errbuf_fail(err, errlen,
                               "methods: unknown method \"%s\" (GET, HEAD, POST, PUT, DELETE, "
                               "OPTIONS, PATCH, TRACE)",
                               word);
        }
        bits |= 1u << i;
        p += n;
    }
    if (!bits) return errbuf_fail(err, errlen, "methods: empty");
    *out = bits;
    return 0;
}

/* The largest max_body_size (the server's range too). */
#define ROUTE_BODY_MAX (64 * GIB)

/* One setting of a [route] section: the route's own (handler, mode, module,
 * symbol, methods, max_body_size), or one for its handler, checked once the
 * handler is known (workers/handlers.c). */
static int set_route(struct conf_route *r, const char *name, const char *value, const char *base,
                     char *err, size_t errlen) {
    if (!*value) return errbuf_fail(err, errlen, "%s: empty value", name);
    if (strcmp(name, "handler") == 0) return replace_string(&r->handler, strdup(value));
    if (strcmp(name, "module") == 0) return replace_string(&r->module, absolute_path(value, base));
    if (strcmp(name, "symbol") == 0) return replace_string(&r->symbol, strdup(value));
    if (strcmp(name, "methods") == 0) return parse_methods(value, &r->methods, err, errlen);
    if (strcmp(name, "hosts") == 0) return parse_hosts(r, value, err, errlen);
    if (strcmp(name, "allow") == 0 || strcmp(name, "deny") == 0) {
        char why[256];
        if (acl_parse(name[0] == 'a' ? &r->allow : &r->deny, value, why, sizeof why) == 0) return 0;
        return errbuf_fail(err, errlen, "%s: %s", name, why);
    }
    if (strcmp(name, "max_body_size") == 0) {
        if (conf_parse_size(value, &r->max_body_size) < 0)
            return errbuf_fail(err, errlen, "max_body_size: invalid value \"%s\"", value);
        if (r->max_body_size > ROUTE_BODY_MAX)
            return errbuf_fail(err, errlen, "max_body_size: \"%s\" is out of range", value);
        r->max_body_size_set = true;
        return 0;
    }
    if (strcmp(name, "mode") == 0) {
        if (strcmp(value, "inline") == 0)
            r->mode = ROUTE_INLINE;
        else if (strcmp(value, "pool") == 0)
            r->mode = ROUTE_POOL;
        else
            return errbuf_fail(err, errlen, "mode: expected inline or pool, got \"%s\"", value);
        r->mode_set = true;
        return 0;
    }
    return -2; /* the handler's */
}

int conf_settings_add(struct conf_setting **v, size_t *n, const char *name, const char *value,
                      int line) {
    struct conf_setting *grown = realloc(*v, (*n + 1) * sizeof *grown);
    if (!grown) return -1;
    *v = grown;
    struct conf_setting *s = &grown[*n];
    s->line = line;
    if (!(s->name = strdup(name)) || !(s->value = strdup(value))) {
        free(s->name);
        return -1;
    }
    (*n)++;
    return 0;
}

void conf_settings_free(struct conf_setting *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

const char *conf_route_setting(const struct conf_route *r, const char *name) {
    for (size_t i = 0; i < r->nsettings; i++)
        if (strcmp(r->settings[i].name, name) == 0) return r->settings[i].value;
    return NULL;
}

/* A setting for the route's handler; a second one of the same name is an
 * error. */
static int add_route_setting(struct conf_route *r, const char *name, const char *value, int line,
                             char *err, size_t errlen) {
    if (conf_route_setting(r, name)) return errbuf_fail(err, errlen, "%s: set twice", name);
    if (conf_settings_add(&r->settings, &r->nsettings, name, value, line) < 0)
        return errbuf_fail(err, errlen, "out of memory");
    return 0;
}

int conf_set_root(struct conf *c, const char *dir, char *err, size_t errlen) {
    struct conf_route *r = NULL;
    for (size_t i = 0; i < c->nroutes; i++)
        if (c->routes[i].match == CONF_MATCH_PREFIX && strcmp(c->routes[i].prefix, "/") == 0)
            r = &c->routes[i];
    if (!r && !(r = add_route(c, "/", CONF_MATCH_PREFIX, 0)))
        return errbuf_fail(err, errlen, "out of memory");
    char *abs = absolute_path(dir, NULL);
    /* --root replaces whatever the file said for / */
    free_route(r);
    int line = r->line;
    memset(r, 0, sizeof *r);
    r->line = line;
    r->match = CONF_MATCH_PREFIX;
    if (!abs || !(r->prefix = strdup("/")) || !(r->handler = strdup("static")) ||
        add_route_setting(r, "root", abs, 0, err, errlen) < 0) {
        free(abs);
        return errbuf_fail(err, errlen, "out of memory");
    }
    free(abs);
    return 0;
}

/* A route's path from its section header ("/x", "= /x", "/x/{id}"). */
static int parse_route_header(const char *text, const char **path, enum conf_route_match *match,
                              char *err, size_t errlen) {
    while (*text == ' ') text++;
    *match = CONF_MATCH_PREFIX;
    if (*text == '=') {
        *match = CONF_MATCH_EXACT;
        for (text++; *text == ' ';) text++;
    }
    if (*text != '/') return errbuf_fail(err, errlen, "route path must start with '/'");
    /* "[route /x ]" would serve "/x " only */
    if (strpbrk(text, " \t")) return errbuf_fail(err, errlen, "whitespace in the route's path");
    if (!strchr(text, '{')) {
        *path = text;
        return 0;
    }
    if (*match == CONF_MATCH_EXACT) return errbuf_fail(err, errlen, "an exact route has no {name}");
    /* a pattern: each {name} is a whole segment, each name once, at most
     * CONF_MAX_ROUTE_PARAMS of them */
    char names[1024] = "/";
    unsigned nparams = 0;
    for (const char *seg = text; *seg == '/';) {
        const char *end = seg + 1;
        while (*end && *end != '/') end++;
        size_t len = (size_t)(end - seg - 1);
        bool open = memchr(seg + 1, '{', len) || memchr(seg + 1, '}', len);
        if (open) {
            /* "{name}": braces at both ends, none inside */
            if (len < 3 || seg[1] != '{' || end[-1] != '}' || memchr(seg + 2, '{', len - 2) ||
                memchr(seg + 2, '}', len - 3))
                return errbuf_fail(err, errlen, "a {name} must be a whole path segment");
            char key[260];
            snprintf(key, sizeof key, "/%.*s/", (int)(len - 2), seg + 2);
            if (strstr(names, key))
                return errbuf_fail(err, errlen, "{%.*s} twice", (int)(len - 2), seg + 2);
            if (++nparams > CONF_MAX_ROUTE_PARAMS)
                return errbuf_fail(err, errlen, "more than %d {name} segments",
                                   CONF_MAX_ROUTE_PARAMS);
            if (strlen(names) + strlen(key) < sizeof names) strcat(names, key + 1);
        }
        seg = end;
    }
    *match = CONF_MATCH_PATTERN;
    *path = text;
    return 0;
}

/* ---- INI loading ------------------------------------------------------ */

/* State of one file load. inih (as Debian builds it) passes no line numbers
 * and does not report section headers, so the reader below counts lines and
 * enters each section at its header line. */
struct load {
    struct conf *c;
    const char *name;
    const char *pos;
    int line;
    bool seen[NSETTINGS];
    unsigned route_seen; /* bit per route setting, in the current route */
    char section[256];
    struct conf_route *route;
    char *err;
    size_t errlen;
    bool failed;
};

static int error_at(struct load *ld, int line, const char *msg) {
    if (!ld->failed) {
        ld->failed = true;
        snprintf(ld->err, ld->errlen, "%s:%d: %s", ld->name, line, msg);
    }
    return 0;
}

static int load_error(struct load *ld, const char *msg) {
    return error_at(ld, ld->line, msg);
}

static int enter_section(struct load *ld, const char *section);

static char *read_line(char *str, int num, void *stream) {
    struct load *ld = stream;
    if (!*ld->pos) return NULL;
    const char *line = ld->pos, *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
    ld->pos += len;
    ld->line++;
    if (len >= (size_t)num) {
        load_error(ld, "line too long");
        len = 0; /* inih gets an empty line; the error is ours */
    }
    memcpy(str, line, len);
    str[len] = '\0';
    /* a header: "[name]" as inih reads it (without "]", inih says syntax error) */
    char *open = str + strspn(str, " \t"), *close = strchr(open, ']');
    if (*open == '[' && close && !ld->failed) {
        char name[sizeof ld->section];
        snprintf(name, sizeof name, "%.*s", (int)(close - open - 1), open + 1);
        enter_section(ld, name);
    }
    return str;
}

static int enter_section(struct load *ld, const char *section) {
    snprintf(ld->section, sizeof ld->section, "%s", section);
    ld->route = NULL;
    ld->route_seen = 0;
    if (strcmp(section, "server") == 0) return 1;
    if (strncmp(section, "route ", 6) == 0) {
        const char *path = NULL;
        enum conf_route_match match;
        char msg[300];
        if (parse_route_header(section + 6, &path, &match, msg, sizeof msg) < 0)
            return error_at(ld, ld->line, msg);
        if (!(ld->route = add_route(ld->c, path, match, ld->line)))
            return load_error(ld, "out of memory");
        return 1;
    }
    char msg[300];
    snprintf(msg, sizeof msg, "unknown section [%s]", section);
    return error_at(ld, ld->line, msg);
}

static int on_route_setting(struct load *ld, const char *name, const char *value) {
    static const char *const names[] = {"handler",       "mode",  "module", "symbol", "methods",
                                        "max_body_size", "allow", "deny",   "hosts"};
    struct conf_route *r = ld->route;
    int *lines[] = {&r->handler_line, &r->mode_line,    &r->module_line,
                    &r->symbol_line,  &r->methods_line, &r->max_body_size_line,
                    &r->allow_line,   &r->deny_line,    &r->hosts_line};
    char msg[512];
    int *line = NULL;
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i]) != 0) continue;
        if (ld->route_seen & (1u << i)) {
            snprintf(msg, sizeof msg, "%s: set twice", name);
            return load_error(ld, msg);
        }
        ld->route_seen |= 1u << i;
        line = lines[i];
    }
    int rc = site_set(&r->site, name, value, ld->line, msg, sizeof msg);
    if (rc == -2) rc = set_route(r, name, value, ld->c->base_dir, msg, sizeof msg);
    if (rc == -2) rc = add_route_setting(r, name, value, ld->line, msg, sizeof msg);
    if (rc < 0) return load_error(ld, msg);
    if (line) *line = ld->line; /* for the final checks' messages */
    return 1;
}

static int on_ini(void *user, const char *section, const char *name, const char *value) {
    struct load *ld = user;
    char msg[512];
    if (ld->failed) return 0;
    if (!*section) return load_error(ld, "setting outside a section (start with [server])");
    if (ld->route) return on_route_setting(ld, name, value);

    int rc = site_set_server(&ld->c->site, name, value, ld->line, msg, sizeof msg);
    if (rc < 0 && rc != -2) return load_error(ld, msg);
    if (rc == 0) return 1;
    const struct setting *s = find_setting(name);
    if (!s) {
        snprintf(msg, sizeof msg, "unknown setting \"%s\"", name);
        return load_error(ld, msg);
    }
    size_t idx = (size_t)(s - settings);
    if (s->kind == K_LISTEN) {
        /* the file's listen lines replace the defaults, not add to them */
        if (!ld->seen[idx])
            while (ld->c->nlisten) free(ld->c->listen[--ld->c->nlisten]);
    } else if (ld->seen[idx]) {
        snprintf(msg, sizeof msg, "%s: set twice", name);
        return load_error(ld, msg);
    }
    ld->seen[idx] = true;
    if (set_value(ld->c, s, value, ld->c->base_dir, msg, sizeof msg) < 0)
        return load_error(ld, msg);
    ld->c->line[idx] = ld->line;
    if (s->kind == K_LISTEN) ld->c->listen_line[ld->c->nlisten - 1] = ld->line;
    return 1;
}

int conf_load_string(struct conf *c, const char *text, const char *name, char *err, size_t errlen) {
    struct load ld = {.c = c, .name = name, .pos = text, .err = err, .errlen = errlen};
    /* the final checks name the file as the reader does: as given */
    if (replace_string(&c->file, strdup(name)) < 0)
        return errbuf_fail(err, errlen, "%s: out of memory", name);
    /* one handler call per line, first error wins */
    ini_allow_multiline = false;
    ini_stop_on_first_error = true;
    int rc = ini_parse_stream(read_line, &ld, on_ini, &ld);
    if (ld.failed) return -1;
    if (rc != 0) {
        snprintf(err, errlen, "%s:%d: syntax error (expected [section] or name = value)", name,
                 rc > 0 ? rc : ld.line);
        return -1;
    }
    return 0;
}

int conf_load_file(struct conf *c, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) return errbuf_fail(err, errlen, "%s: %s", path, strerror(errno));
    char *text = NULL;
    size_t cap = 0, len = 0, n;
    do {
        if (len + 4096 + 1 > cap) {
            char *t = realloc(text, cap = cap * 2 + 8192);
            if (!t) {
                free(text);
                fclose(f);
                return errbuf_fail(err, errlen, "%s: out of memory", path);
            }
            text = t;
        }
        n = fread(text + len, 1, 4096, f);
        len += n;
    } while (n > 0);
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(text);
        return errbuf_fail(err, errlen, "%s: read error", path);
    }
    text[len] = '\0';
    if (strlen(text) != len) {
        free(text);
        return errbuf_fail(err, errlen, "%s: contains a NUL byte", path);
    }

    char *abs = absolute_path(path, NULL);
    char *slash = abs ? strrchr(abs, '/') : NULL;
    free(c->path);
    free(c->base_dir);
    c->path = abs ? strdup(abs) : NULL;
    if (slash) *(slash == abs ? slash + 1 : slash) = '\0';
    c->base_dir = abs;
    int rc = conf_load_string(c, text, path, err, errlen);
    free(text);
    return rc;
}

/* ---- final checks ----------------------------------------------------- */

const char *conf_where(const struct conf *c, int line, char *out, size_t outlen) {
    if (c->file && line > 0)
        snprintf(out, outlen, "%s:%d: ", c->file, line);
    else
        out[0] = '\0';
    return out;
}

int conf_number(const struct conf *c, const char *name, const char *text, uint64_t *out) {
    const struct setting *s = find_setting(name);
    unsigned ms;
    const char *end;
    if (!s) {
        /* a handler's own number: a count or a size */
        return text && conf_parse_size(text, out) == 0 ? 0 : -1;
    }
    const char *field = (const char *)c + s->off;
    switch (s->kind) {
    case K_UINT:
    case K_WORKERS:
        if (!text) {
            *out = *(const unsigned *)field;
            return 0;
        }
        return parse_u64(text, &end, out) == 0 && !*end ? 0 : -1;
    case K_SIZE:
        if (!text) {
            *out = *(const uint64_t *)field;
            return 0;
        }
        return conf_parse_size(text, out);
    case K_DURATION:
        if (!text) {
            *out = *(const unsigned *)field;
            return 0;
        }
        if (conf_parse_duration(text, &ms) < 0) return -1;
        *out = ms;
        return 0;
    default: return -1;
    }
}

int conf_line(const struct conf *c, const char *name) {
    const struct setting *s = find_setting(name);
    return s ? c->line[s - settings] : 0;
}

/* "FILE:LINE: [route /x]" naming the line of the setting at fault (line), or
 * the section's header when the fault is a setting missing; "[route /x]"
 * for a route from --root. */
const char *conf_route_where(const struct conf *c, const struct conf_route *r, int line, char *out,
                             size_t outlen) {
    char at[PATH_MAX + 32];
    snprintf(out, outlen, "%s[route %s]", conf_where(c, line ? line : r->line, at, sizeof at),
             r->prefix);
    return out;
}

/* What can be told of a route without its handler: the handler's own
 * checks run when handlers are loaded (workers/handlers.c). */
static int check_route(const struct conf *c, const struct conf_route *r, char *err, size_t errlen) {
    char where[PATH_MAX + 300];
    if (!r->handler)
        return errbuf_fail(err, errlen, "%s: handler is required",
                           conf_route_where(c, r, 0, where, sizeof where));
    if (r->symbol && !r->module)
        return errbuf_fail(err, errlen, "%s: symbol: belongs to a module (module = PATH)",
                           conf_route_where(c, r, r->symbol_line, where, sizeof where));
    /* two sections of one path must split its methods between them */
    for (const struct conf_route *o = c->routes; o < r; o++) {
        if (o->admin != r->admin) continue; /* another listener's table */
        if ((o->hosts_text || r->hosts_text) &&
            !(o->hosts_text && r->hosts_text && strcmp(o->hosts_text, r->hosts_text) == 0))
            continue; /* other hosts: another site */
        if (o->match != r->match || strcmp(o->prefix, r->prefix) != 0) continue;
        if (!o->methods || !r->methods || (o->methods & r->methods))
            return errbuf_fail(err, errlen, "%s: route defined twice (give each its own methods)",
                               conf_route_where(c, r, 0, where, sizeof where));
    }
    return 0;
}

/* The admin listener: its address joins the listen lines (last), and its
 * routes join the table, marked admin, each behind admin_allow. */
static int add_admin(struct conf *c, char *err, size_t errlen) {
    static const char *const handlers[] = {"status", "metrics", "healthz", "readyz", "dashboard"};
    char where[PATH_MAX + 32], why[256];
    int line = conf_line(c, "admin_listen");
    struct acl probe;
    if (acl_parse(&probe, c->admin_allow, why, sizeof why) < 0)
        return errbuf_fail(err, errlen, "%sadmin_allow: %s",
                           conf_where(c, conf_line(c, "admin_allow"), where, sizeof where), why);
    acl_free(&probe);
    /* a listen line like the others (options too); a relative unix path
     * is the config file's folder's, as listen's */
    char *text = listen_line(c->admin_listen, c->base_dir);
    if (!text) return errbuf_fail(err, errlen, "out of memory");
    size_t n = c->nlisten;
    int rc = conf_set(c, "listen", text, why, sizeof why);
    free(text);
    if (rc < 0)
        return errbuf_fail(err, errlen, "%sadmin_%s", conf_where(c, line, where, sizeof where),
                           why);
    c->listen_line[n] = line;
    c->admin_on = true;
    /* the same address twice cannot be bound (port 0 is a new port each) */
    const char *addr = c->listen[n];
    size_t alen = strlen(addr);
    bool any_port = alen > 2 && strcmp(addr + alen - 2, ":0") == 0;
    for (size_t i = 0; i < n && !any_port; i++)
        if (strcmp(c->listen[i], addr) == 0)
            return errbuf_fail(err, errlen, "%sadmin_listen: %s is a listen address already",
                               conf_where(c, line, where, sizeof where), addr);
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
        char path[32];
        snprintf(path, sizeof path, "/%s", handlers[i]);
        struct conf_route *r = add_route(c, path, CONF_MATCH_EXACT, line);
        if (!r || !(r->handler = strdup(handlers[i])) ||
            acl_parse(&r->allow, c->admin_allow, why, sizeof why) < 0)
            return errbuf_fail(err, errlen, "out of memory");
        r->admin = true;
    }
    return 0;
}

int conf_finish(struct conf *c, char *err, size_t errlen) {
    char where[PATH_MAX + 32] = "";
    if (c->nlisten == 0 && conf_set(c, "listen", "127.0.0.1:8080", err, errlen) < 0) return -1;
    if (c->file) snprintf(where, sizeof where, "%s: ", c->file);
    if (c->nroutes == 0 && !c->file)
        return errbuf_fail(err, errlen,
                           "nothing to serve: give a configuration with --config FILE (a [route /] "
                           "section) or serve a folder with --root DIR (see --help)");
    if (c->nroutes == 0)
        return errbuf_fail(err, errlen,
                           "%snothing to serve: add a [route /] section or use --root DIR", where);
    if (c->admin_listen && strcmp(c->admin_listen, "off") != 0 && add_admin(c, err, errlen) < 0)
        return -1;
    if (c->trusted_proxies_text) {
        char why[256];
        acl_free(&c->trusted_proxies);
        if (acl_parse(&c->trusted_proxies, c->trusted_proxies_text, why, sizeof why) < 0)
            return errbuf_fail(err, errlen, "%strusted_proxies: %s",
                               conf_where(c, conf_line(c, "trusted_proxies"), where, sizeof where),
                               why);
    }
    if (strcmp(c->unknown_host, "serve") != 0 && strcmp(c->unknown_host, "421") != 0)
        return errbuf_fail(err, errlen, "%sunknown_host: expected serve or 421, got \"%s\"",
                           conf_where(c, conf_line(c, "unknown_host"), where, sizeof where),
                           c->unknown_host);
    for (const char *p = c->real_ip_header; *p; p++)
        if (!(*p == '-' || (*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')))
            return errbuf_fail(err, errlen, "%sreal_ip_header: \"%s\" is not a header name",
                               conf_where(c, conf_line(c, "real_ip_header"), where, sizeof where),
                               c->real_ip_header);
    if (site_build(c->site) < 0) return errbuf_fail(err, errlen, "out of memory");
    for (size_t i = 0; i < c->nroutes; i++)
        if ((!c->routes[i].admin && site_inherit(&c->routes[i].site, c->site) < 0 &&
             errbuf_fail(err, errlen, "out of memory")) ||
            site_check(c, &c->routes[i], err, errlen) < 0 ||
            check_route(c, &c->routes[i], err, errlen) < 0)
            return -1;
    if (c->group && !c->user)
        return errbuf_fail(err, errlen, "%sgroup: set user too (group alone is ambiguous)",
                           conf_where(c, conf_line(c, "group"), where, sizeof where));
    /* an idle connection is closed at keepalive_timeout anyway: a longer
     * grace set on purpose is a mistake worth saying (the default of 1 s
     * just yields to a shorter keepalive_timeout) */
    int idle_line = conf_line(c, "shutdown_idle_timeout");
    if (idle_line && c->shutdown_idle_timeout > c->keepalive_timeout)
        return errbuf_fail(
            err, errlen,
            "%sshutdown_idle_timeout: %u ms is longer than keepalive_timeout (%u ms), "
            "which closes an idle connection first",
            conf_where(c, idle_line, where, sizeof where), c->shutdown_idle_timeout,
            c->keepalive_timeout);
    return 0;
}

/* For --help: what a setting without a value means. */
static const char *unset_meaning(const struct setting *s) {
    if (s->kind == K_LISTEN) return "127.0.0.1:8080"; /* conf_finish's */
    if (s->off == F(error_log)) return "stderr";
    if (s->off == F(group)) return "user's"; /* the user's own group */
    return "none";
}

void conf_describe(void (*emit)(const char *, const char *, const char *, void *), void *arg) {
    for (size_t i = 0; i < NSETTINGS; i++)
        emit(settings[i].name, settings[i].dflt ? settings[i].dflt : unset_meaning(&settings[i]),
             settings[i].doc, arg);
}

/* ---- the effective configuration (-T) --------------------------------- */

/* A duration in the largest unit that keeps it exact: "90s", "2m", "250ms". */
static void format_duration(unsigned ms, char *out, size_t len) {
    if (ms && ms % (3600 * 1000) == 0)
        snprintf(out, len, "%uh", ms / (3600 * 1000));
    else if (ms && ms % (60 * 1000) == 0)
        snprintf(out, len, "%um", ms / (60 * 1000));
    else if (ms % 1000 == 0)
        snprintf(out, len, "%us", ms / 1000);
    else
        snprintf(out, len, "%ums", ms);
}

static void format_size(uint64_t v, char *out, size_t len) {
    static const char suffix[] = "gmk";
    static const uint64_t mult[] = {GIB, 1024 * 1024, 1024};
    for (size_t i = 0; i < 3; i++)
        if (v && v % mult[i] == 0) {
            snprintf(out, len, "%llu%c", (unsigned long long)(v / mult[i]), suffix[i]);
            return;
        }
    snprintf(out, len, "%llu", (unsigned long long)v);
}

static void dump_acl(FILE *out, const char *name, const struct acl *a) {
    if (!a->all && !a->unix_peers && !a->n) return;
    fprintf(out, "%s =", name);
    if (a->all) fputs(" all", out);
    if (a->unix_peers) fputs(" unix", out);
    for (size_t i = 0; i < a->n; i++) {
        char host[INET6_ADDRSTRLEN];
        inet_ntop(a->v[i].family, a->v[i].addr, host, sizeof host);
        fprintf(out, " %s/%u", host, a->v[i].bits);
    }
    fputc('\n', out);
}

void conf_dump(const struct conf *c, FILE *out) {
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    char text[64];
    fprintf(out, "; the effective configuration%s%s: every setting, defaults included\n",
            c->file ? " of " : "", c->file ? c->file : "");
    fputs("[server]\n", out);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        const void *field = (const char *)c + s->off;
        const char *value = text;
        switch (s->kind) {
        case K_LISTEN:
            /* the admin listener is added last from admin_listen */
            for (size_t j = 0; j < c->nlisten - (c->admin_on ? 1 : 0); j++) {
                char opts[128];
                listen_opts_format(&c->listen_opts[j], opts, sizeof opts);
                fprintf(out, "listen = %s%s%s\n", c->listen[j], opts[0] ? " " : "", opts);
            }
            continue;
        case K_UINT: snprintf(text, sizeof text, "%u", *(const unsigned *)field); break;
        case K_WORKERS:
            if (*(const unsigned *)field)
                snprintf(text, sizeof text, "%u", *(const unsigned *)field);
            else
                value = "auto";
            break;
        case K_SIZE: format_size(*(const uint64_t *)field, text, sizeof text); break;
        case K_DURATION: format_duration(*(const unsigned *)field, text, sizeof text); break;
        case K_LEVEL: value = levels[*(const enum conf_log_level *)field]; break;
        case K_LOGFMT:
            value = *(const enum conf_log_format *)field == CONF_LOG_JSON ? "json" : "text";
            break;
        case K_ALOGFMT:
        case K_LOG:
        case K_PATH:
        case K_STRING:
            value = *(char *const *)field;
            if (s->off == F(admin_listen) && c->admin_on) {
                /* as listen's: a relative unix path made absolute, options */
                char opts[128];
                listen_opts_format(&c->listen_opts[c->nlisten - 1], opts, sizeof opts);
                fprintf(out, "admin_listen = %s%s%s\n", c->listen[c->nlisten - 1],
                        opts[0] ? " " : "", opts);
                continue;
            }
            if (!value) {
                fprintf(out, "; %s = (%s)\n", s->name,
                        s->kind == K_LOG && s->off != F(error_log) ? "off" : unset_meaning(s));
                continue;
            }
            break;
        }
        fprintf(out, "%s = %s\n", s->name, value);
    }
    site_dump(c->site, out); /* the routes' defaults */
    for (size_t i = 0; i < c->nroutes; i++) {
        const struct conf_route *r = &c->routes[i];
        if (r->admin) continue; /* made from admin_listen */
        fprintf(out, "\n[route %s%s]\n", r->match == CONF_MATCH_EXACT ? "= " : "", r->prefix);
        if (r->base_dir) fprintf(out, "; relative paths resolve against %s\n", r->base_dir);
        fprintf(out, "handler = %s\n", r->handler ? r->handler : "static");
        if (r->module) fprintf(out, "module = %s\n", r->module);
        if (r->symbol) fprintf(out, "symbol = %s\n", r->symbol);
        if (r->mode_set) fprintf(out, "mode = %s\n", r->mode == ROUTE_POOL ? "pool" : "inline");
        if (r->methods) {
            fputs("methods =", out);
            for (size_t m = 0; m < sizeof method_names / sizeof method_names[0]; m++)
                if (r->methods & (1u << m)) fprintf(out, " %s", method_names[m]);
            fputc('\n', out);
        }
        if (r->max_body_size_set) {
            format_size(r->max_body_size, text, sizeof text);
            fprintf(out, "max_body_size = %s\n", text);
        }
        dump_acl(out, "allow", &r->allow);
        dump_acl(out, "deny", &r->deny);
        if (r->hosts_text) fprintf(out, "hosts = %s\n", r->hosts_text);
        for (size_t j = 0; j < r->nsettings; j++)
            fprintf(out, "%s = %s\n", r->settings[j].name, r->settings[j].value);
        site_dump(r->site, out);
    }
}
