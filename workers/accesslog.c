/* accesslog: buffered lines in a format parsed once. */
#include "workers/accesslog.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/log.h"
#include "workers/fmt.h"

#define LOG_BUF   (64 * 1024)
#define MAX_FIELD 2048 /* longest piece of untrusted text logged */
#define MAX_VARS  32   /* variables in a format */
#define MAX_OPS   (2 * MAX_VARS + 1)
#define MAX_TEXTS (2 * MAX_VARS) /* $request has two pieces of untrusted text */

/* nginx's combined format (ngx_http_log_module.c), and ours in JSON. */
static const char combined_format[] =
    "$remote_addr - $remote_user [$time_local] \"$request\" $status "
    "$body_bytes_sent \"$http_referer\" \"$http_user_agent\"";
static const char json_format[] =
    "{\"time\":\"$time_iso8601_ms\",\"remote_addr\":\"$realip_remote_addr\",\"client\":\"$client\","
    "\"method\":\"$request_method\",\"uri\":\"$request_uri\",\"protocol\":\"$server_protocol\","
    "\"status\":$status,\"body_bytes_sent\":$body_bytes_sent,\"request_time\":$request_time,"
    "\"route\":\"$route\",\"worker\":$worker,\"pid\":$pid,\"referer\":\"$http_referer\","
    "\"user_agent\":\"$http_user_agent\"}";

enum var {
    V_LITERAL,
    V_REMOTE_ADDR,
    V_REALIP_REMOTE_ADDR,
    V_CLIENT,
    V_REMOTE_USER,
    V_TIME_LOCAL,
    V_TIME_ISO8601,
    V_TIME_ISO8601_MS,
    V_MSEC,
    V_REQUEST,
    V_REQUEST_METHOD,
    V_REQUEST_URI,
    V_URI,
    V_ARGS,
    V_SERVER_PROTOCOL,
    V_STATUS,
    V_BODY_BYTES_SENT,
    V_REQUEST_TIME,
    V_ROUTE,
    V_WORKER,
    V_PID,
    V_HTTP, /* $http_NAME: a request header */
};

/* Each variable: its name, the pieces of untrusted text it writes (each
 * escaped and at most MAX_FIELD bytes of it), and the most bytes it writes
 * besides them. */
static const struct {
    const char *name;
    unsigned texts, fixed;
} vars[] = {
    [V_LITERAL] = {"", 0, 0},
    [V_REMOTE_ADDR] = {"remote_addr", 0, INET6_ADDRSTRLEN},
    [V_REALIP_REMOTE_ADDR] = {"realip_remote_addr", 0, INET6_ADDRSTRLEN},
    [V_CLIENT] = {"client", 1, 1},
    [V_REMOTE_USER] = {"remote_user", 0, 1},
    [V_TIME_LOCAL] = {"time_local", 0, 32},
    [V_TIME_ISO8601] = {"time_iso8601", 0, 32},
    [V_TIME_ISO8601_MS] = {"time_iso8601_ms", 0, 32},
    [V_MSEC] = {"msec", 0, 24},
    [V_REQUEST] = {"request", 2, 16},
    [V_REQUEST_METHOD] = {"request_method", 1, 1},
    [V_REQUEST_URI] = {"request_uri", 1, 1},
    [V_URI] = {"uri", 1, 1},
    [V_ARGS] = {"args", 1, 1},
    [V_SERVER_PROTOCOL] = {"server_protocol", 0, 8},
    [V_STATUS] = {"status", 0, 20},
    [V_BODY_BYTES_SENT] = {"body_bytes_sent", 0, 20},
    [V_REQUEST_TIME] = {"request_time", 0, 24},
    [V_ROUTE] = {"route", 1, 1},
    [V_WORKER] = {"worker", 0, 10},
    [V_PID] = {"pid", 0, 10},
    [V_HTTP] = {"http_", 1, 1},
};
#define NVARS (sizeof vars / sizeof vars[0])

/* A piece of a format: literal text, or a variable. */
struct op {
    enum var var;
    const char *text; /* V_LITERAL: the text; V_HTTP: the header's name */
    size_t len;
};

/* A parsed format. */
struct format {
    bool json;     /* JSON escaping; an absent value is "" (else "-") */
    char *strings; /* the format's copy the ops point into */
    struct op ops[MAX_OPS];
    size_t nops, nvars;
    size_t ntexts;   /* pieces of untrusted text in a line */
    size_t max_line; /* the longest line it can make */
};

/* An address as text, formatted again only when it changes: consecutive
 * lines usually share it. len 0: none (a unix socket). */
struct addr_text {
    struct sockaddr_in6 sa; /* the address (an IPv4 one in sockaddr_in's place) */
    char text[INET6_ADDRSTRLEN];
    size_t len;
};

struct accesslog {
    int fd;
    char *path;
    struct format fmt;
    unsigned worker; /* $worker: the scoreboard slot */
    pid_t pid;
    /* Not a regular file (stdout as a pipe, a socket, a terminal): several
     * workers write to the same pipe, and only a write of at most PIPE_BUF
     * bytes arrives unsplit. So the buffer goes out in pieces of whole lines
     * of at most PIPE_BUF bytes, and a longer line is shortened. */
    bool whole_lines;
    bool failing; /* the last flush failed; reported once */
    /* the times of stamp_time, formatted once a second */
    time_t stamp_time;
    char local[32]; /* "22/Nov/2026:19:26:51 +0000" */
    char iso[32];   /* "2026-11-22T19:26:51+00:00" */
    size_t local_len, iso_len;
    struct addr_text peer, client;   /* the entry's two addresses */
    struct http_str vals[MAX_TEXTS]; /* the line's untrusted text (p NULL: absent) */
    size_t len, cap;                 /* bytes in buf, its size */
    char *buf;
};

static int format_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int format_error(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- the format ------------------------------------------------------- */

/* The escaped width of a byte of untrusted text: nginx's \xHH for ", \,
 * controls and bytes of 0x7f and up; in JSON \" \\ and \u00XX, so that
 * any bytes make valid JSON (ASCII only) and the original bytes come back
 * as the code points of the decoded string (read it as Latin-1). */
static size_t esc_width(bool json, unsigned char c) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') return 1;
    return !json ? 4 : c == '"' || c == '\\' ? 2 : 6;
}

/* The widest a byte escapes to (a control byte's). */
static size_t max_width(bool json) {
    return esc_width(json, 0);
}

/* The variable named name[0, n) (lower case), or -1. */
static int find_var(const char *name, size_t n) {
    if (n > 5 && strncmp(name, "http_", 5) == 0) return V_HTTP;
    for (size_t i = 1; i < NVARS; i++)
        if (i != V_HTTP && strlen(vars[i].name) == n && strncmp(vars[i].name, name, n) == 0)
            return (int)i;
    return -1;
}

static int add_op(struct format *f, enum var var, const char *text, size_t len, char *err,
                  size_t errlen) {
    /* literal text only between variables: MAX_OPS holds MAX_VARS of them */
    if (var != V_LITERAL && ++f->nvars > MAX_VARS)
        return format_error(err, errlen, "access_log_format: more than %d variables", MAX_VARS);
    f->ops[f->nops++] = (struct op){var, text, len};
    return 0;
}

/* The variable at s ("$name" or "${name}"): its op; s moves past it. The
 * name is made lower case in place, and a header's '_' '-'. */
static int parse_var(struct format *f, char **s, char *err, size_t errlen) {
    bool brace = (*s)[1] == '{';
    char *name = *s + 1 + brace;
    size_t n = 0;
    while (isalnum((unsigned char)name[n]) || name[n] == '_') {
        name[n] = (char)tolower((unsigned char)name[n]);
        n++;
    }
    if (!n || (brace && name[n] != '}'))
        return format_error(err, errlen,
                            "access_log_format: \"$\" without a variable name at \"%.20s\"", *s);
    int var = find_var(name, n);
    if (var < 0)
        return format_error(err, errlen, "access_log_format: unknown variable $%.*s", (int)n, name);
    *s = name + n + brace;
    if (var != V_HTTP) return add_op(f, (enum var)var, NULL, 0, err, errlen);
    for (size_t i = 5; i < n; i++)
        if (name[i] == '_') name[i] = '-';
    return add_op(f, V_HTTP, name + 5, n - 5, err, errlen);
}

/* The longest line of f: its literal text, what each variable writes, each
 * piece of untrusted text escaped at its widest (ending in "..." when cut),
 * and the newline. */
static size_t max_line(const struct format *f) {
    size_t len = 1;
    for (size_t i = 0; i < f->nops; i++)
        len += f->ops[i].len * (f->ops[i].var == V_LITERAL) + vars[f->ops[i].var].fixed +
               vars[f->ops[i].var].texts * (MAX_FIELD * max_width(f->json) + 3);
    return len;
}

static void format_free(struct format *f) {
    free(f->strings);
    f->strings = NULL;
}

/* Parses text ("combined", "json" or a format of its own) into f. */
static int format_parse(struct format *f, const char *text, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    f->json = strcmp(text, "json") == 0;
    const char *src = strcmp(text, "combined") == 0 ? combined_format
                      : f->json                     ? json_format
                                                    : text;
    if (!(f->strings = strdup(src))) return format_error(err, errlen, "out of memory");
    for (char *s = f->strings; *s;) {
        int rc;
        if (*s == '$') {
            rc = parse_var(f, &s, err, errlen);
        } else {
            size_t n = strcspn(s, "$");
            rc = add_op(f, V_LITERAL, s, n, err, errlen);
            s += n;
        }
        if (rc < 0) {
            format_free(f);
            return -1;
        }
    }
    for (size_t i = 0; i < f->nops; i++) f->ntexts += vars[f->ops[i].var].texts;
    f->max_line = max_line(f);
    return 0;
}

int accesslog_format_check(const char *format, char *err, size_t errlen) {
    struct format f;
    if (format_parse(&f, format, err, errlen) < 0) return -1;
    format_free(&f);
    return 0;
}

/* ---- the file --------------------------------------------------------- */

/* No symlink followed, regular files only (log_open_file): the file may sit
 * in a folder the workers' user can write. Nothing is chowned here. */
static int open_path(const char *path) {
    char err[256];
    if (strcmp(path, "-") == 0) return STDOUT_FILENO;
    return log_open_file(path, (uid_t)-1, (gid_t)-1, err, sizeof err);
}

struct accesslog *accesslog_open(const char *path, const char *format, unsigned worker) {
    char err[256];
    struct accesslog *log = calloc(1, sizeof *log);
    if (!log) return NULL;
    log->fd = -1;
    if (format_parse(&log->fmt, format ? format : "combined", err, sizeof err) < 0) {
        free(log);
        errno = EINVAL; /* the configuration's check said why */
        return NULL;
    }
    log->fd = open_path(path);
    log->path = strdup(path);
    log->worker = worker;
    log->pid = getpid();
    /* one worst line more than LOG_BUF: a line always fits after a flush */
    log->cap = LOG_BUF + log->fmt.max_line;
    log->buf = malloc(log->cap);
    struct stat st;
    log->whole_lines = log->fd >= 0 && fstat(log->fd, &st) == 0 && !S_ISREG(st.st_mode);
    log->stamp_time = -1;
    log->peer.sa.sin6_family = log->client.sa.sin6_family = AF_UNSPEC;
    if (log->fd < 0 || !log->path || !log->buf) {
        int e = log->fd < 0 ? errno : ENOMEM;
        accesslog_close(log);
        errno = e;
        return NULL;
    }
    return log;
}

/* The longest run of whole lines at p that one atomic pipe write takes
 * (every line fits: see shorten()). */
static size_t whole_lines_piece(const char *p, size_t len) {
    if (len <= PIPE_BUF) return len;
    const char *nl = memrchr(p, '\n', PIPE_BUF);
    return nl ? (size_t)(nl - p) + 1 : PIPE_BUF;
}

static const char *log_name(const struct accesslog *log) {
    return log->fd == STDOUT_FILENO ? "(stdout)" : log->path;
}

void accesslog_flush(struct accesslog *log) {
    size_t off = 0;
    while (off < log->len) {
        size_t n = log->len - off;
        if (log->whole_lines) n = whole_lines_piece(log->buf + off, n);
        ssize_t w = write(log->fd, log->buf + off, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            /* a full disk must not stop the server, nor fill the error log
             * with a line per request: the lines are dropped, said once */
            if (!log->failing)
                log_error("access log %s: %s; its lines are dropped until it can be written again",
                          log_name(log), w < 0 ? strerror(errno) : "nothing written");
            log->failing = true;
            break;
        }
        off += (size_t)w;
    }
    if (log->failing && off && off == log->len) {
        log_warn("access log %s: written again", log_name(log));
        log->failing = false;
    }
    log->len = 0;
}

void accesslog_close(struct accesslog *log) {
    if (!log) return;
    if (log->fd >= 0 && log->buf) accesslog_flush(log);
    if (log->fd > STDERR_FILENO) close(log->fd);
    format_free(&log->fmt);
    free(log->path);
    free(log->buf);
    free(log);
}

int accesslog_reopen(struct accesslog *log) {
    accesslog_flush(log);
    /* the file was not moved: nothing to do (and as the workers' user we
     * may not be allowed to open a file root made) */
    if (log->fd == STDOUT_FILENO || log_same_file(log->path, log->fd)) return 0;
    int fd = open_path(log->path);
    if (fd < 0) return -1;
    close(log->fd);
    log->fd = fd;
    return 0;
}

/* ---- a line ----------------------------------------------------------- */

/* The length of s escaped (at most MAX_FIELD bytes of it are logged). */
static size_t escaped_len(bool json, const char *s, size_t n) {
    size_t len = 0;
    if (n > MAX_FIELD) n = MAX_FIELD;
    for (size_t i = 0; i < n; i++) len += esc_width(json, (unsigned char)s[i]);
    return len;
}

/* Appends byte c escaped (esc_width(json, c) bytes). */
static char *put_escaped_byte(char *p, bool json, unsigned char c) {
    static const char hex[] = "0123456789ABCDEF";
    switch (esc_width(json, c)) {
    case 1: *p++ = (char)c; break;
    case 2:
        *p++ = '\\';
        *p++ = (char)c;
        break;
    default:
        *p++ = '\\';
        if (json) {
            memcpy(p, "u00", 3);
            p += 3;
        } else {
            *p++ = 'x';
        }
        *p++ = hex[c >> 4];
        *p++ = hex[c & 15];
    }
    return p;
}

/* Appends s escaped. At most cap bytes: a longer text is cut before a whole
 * character and ends in "...". */
static char *put_escaped(char *p, bool json, const char *s, size_t n, size_t cap) {
    if (n > MAX_FIELD) n = MAX_FIELD;
    bool cut = cap < max_width(json) * n && escaped_len(json, s, n) > cap;
    size_t room = !cut ? SIZE_MAX : cap > 3 ? cap - 3 : 0;
    const char *start = p;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((size_t)(p - start) + esc_width(json, c) > room) break;
        p = put_escaped_byte(p, json, c);
    }
    if (cut && cap >= 3) {
        memcpy(p, "...", 3);
        p += 3;
    }
    return p;
}

/* A value that is not there: "-" as nginx writes it, nothing in JSON
 * (where the format's quotes make it ""). */
static char *put_absent(const struct accesslog *log, char *p) {
    if (!log->fmt.json) *p++ = '-';
    return p;
}

static char *put_text(const struct accesslog *log, char *p, struct http_str v, size_t cap) {
    return v.p ? put_escaped(p, log->fmt.json, v.p, v.len, cap) : put_absent(log, p);
}

static char *put_mem(char *p, const void *s, size_t n) {
    memcpy(p, s, n);
    return p + n;
}

/* Milliseconds as three digits. */
static char *put_ms(char *p, uint64_t ms) {
    *p++ = (char)('0' + ms / 100 % 10);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    return p;
}

/* "S.mmm": seconds with milliseconds. */
static char *put_seconds(char *p, uint64_t sec, uint64_t ms) {
    p += fmt_u64(p, sec);
    *p++ = '.';
    return put_ms(p, ms);
}

/* Describes addr in t, unless t holds it already. */
static void describe_addr(struct addr_text *t, const struct sockaddr *addr) {
    const struct sockaddr_in6 *in6 = (const void *)addr;
    const struct sockaddr_in *in4 = (const void *)addr;
    struct sockaddr_in *t4 = (struct sockaddr_in *)&t->sa;
    int family = addr ? addr->sa_family : AF_UNSPEC;
    if (family != AF_INET && family != AF_INET6) family = AF_UNSPEC;
    if (family == t->sa.sin6_family &&
        (family == AF_INET    ? in4->sin_addr.s_addr == t4->sin_addr.s_addr
         : family == AF_INET6 ? memcmp(&in6->sin6_addr, &t->sa.sin6_addr, 16) == 0
                              : true))
        return;
    memset(&t->sa, 0, sizeof t->sa);
    t->sa.sin6_family = (sa_family_t)family;
    t->len = 0;
    if (family == AF_INET) {
        t4->sin_addr = in4->sin_addr;
        inet_ntop(AF_INET, &in4->sin_addr, t->text, sizeof t->text);
    } else if (family == AF_INET6) {
        t->sa.sin6_addr = in6->sin6_addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, t->text, sizeof t->text);
    }
    if (family != AF_UNSPEC) t->len = strlen(t->text);
}

static char *put_addr(const struct accesslog *log, char *p, const struct addr_text *t) {
    return t->len ? put_mem(p, t->text, t->len) : put_absent(log, p);
}

/* The times of a line, formatted again only when the second changes. */
static void describe_time(struct accesslog *log, time_t now) {
    if (now == log->stamp_time) return;
    struct tm tm;
    gmtime_r(&now, &tm);
    log->local_len = strftime(log->local, sizeof log->local, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    log->iso_len = strftime(log->iso, sizeof log->iso, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    log->stamp_time = now;
}

/* $client: who the client is, the one place that says so: the address a
 * trusted proxy named (trusted_proxies), else the peer's. Escaped as
 * untrusted text, as a value taken from a header would need. */
static struct http_str client_of(const struct accesslog *log) {
    return (struct http_str){log->client.len ? log->client.text : NULL, log->client.len};
}

/* The request header named by op (lower case, '-' for '_'): the first one. */
static struct http_str header_of(const struct http_request *r, const struct op *op) {
    static const struct http_str none = {NULL, 0};
    if (!r) return none;
    /* the two of combined are found while the head is checked */
    if (op->len == 7 && memcmp(op->text, "referer", 7) == 0) return r->referer ? *r->referer : none;
    if (op->len == 10 && memcmp(op->text, "user-agent", 10) == 0)
        return r->user_agent ? *r->user_agent : none;
    for (unsigned i = 0; i < r->nfields; i++)
        if (r->fields[i].name.len == op->len &&
            strncasecmp(r->fields[i].name.p, op->text, op->len) == 0)
            return r->fields[i].value;
    return none;
}

/* The line's untrusted text, in the order put_line writes it. */
static void collect(struct accesslog *log, const struct accesslog_entry *e) {
    const struct http_request *r = e->req;
    const struct http_str none = {NULL, 0};
    struct http_str *v = log->vals;
    for (size_t i = 0; i < log->fmt.nops; i++) {
        const struct op *op = &log->fmt.ops[i];
        switch (op->var) {
        case V_CLIENT: *v++ = client_of(log); break;
        case V_REQUEST:
            *v++ = r ? r->method_name : none;
            *v++ = r ? r->target : none;
            break;
        case V_REQUEST_METHOD: *v++ = r ? r->method_name : none; break;
        case V_REQUEST_URI: *v++ = r ? r->target : none; break;
        case V_URI: *v++ = r ? (struct http_str){r->path, r->path_len} : none; break;
        case V_ARGS: *v++ = r ? r->query : none; break;
        case V_ROUTE: *v++ = e->route ? (struct http_str){e->route, strlen(e->route)} : none; break;
        case V_HTTP: *v++ = header_of(r, op); break;
        default: break;
        }
    }
}

/* Caps for the untrusted text of a line of len bytes so that it fits
 * PIPE_BUF: the room left by the rest of the line is shared evenly, and a
 * piece shorter than its share leaves the remainder to the longer ones. */
static void shorten(const struct accesslog *log, size_t len, size_t *cap) {
    size_t n = log->fmt.ntexts, want[MAX_TEXTS], total = 0;
    bool set[MAX_TEXTS] = {false};
    for (size_t i = 0; i < n; i++)
        total += want[i] = escaped_len(log->fmt.json, log->vals[i].p, log->vals[i].len);
    size_t rest = len - total, left = rest < PIPE_BUF ? PIPE_BUF - rest : 0, unset = n;
    for (bool changed = true; changed && unset;) {
        changed = false;
        for (size_t i = 0; i < n; i++) {
            if (set[i] || want[i] > left / unset) continue;
            cap[i] = want[i];
            left -= want[i];
            set[i] = true;
            unset--;
            changed = true;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!set[i]) cap[i] = left / unset;
}

static char *put_protocol(const struct accesslog *log, char *p, const struct http_request *r) {
    if (!r) return put_absent(log, p);
    return put_mem(p, r->version == 10 ? "HTTP/1.0" : "HTTP/1.1", 8);
}

/* One line at p; returns its end. */
static char *put_line(const struct accesslog *log, char *p, const struct accesslog_entry *e,
                      const size_t *cap) {
    const struct http_str *v = log->vals;
    uint64_t ms = (uint64_t)e->wall.tv_usec / 1000;
    for (size_t i = 0; i < log->fmt.nops; i++) {
        const struct op *op = &log->fmt.ops[i];
        switch (op->var) {
        case V_LITERAL: p = put_mem(p, op->text, op->len); break;
        case V_REMOTE_ADDR: p = put_addr(log, p, &log->client); break; /* as nginx's realip */
        case V_REALIP_REMOTE_ADDR: p = put_addr(log, p, &log->peer); break;
        case V_REMOTE_USER: p = put_absent(log, p); break;
        case V_TIME_LOCAL: p = put_mem(p, log->local, log->local_len); break;
        case V_TIME_ISO8601: p = put_mem(p, log->iso, log->iso_len); break;
        case V_TIME_ISO8601_MS: /* iso's "2026-11-22T19:26:51", then ".mmmZ" */
            p = put_mem(p, log->iso, 19);
            *p++ = '.';
            p = put_ms(p, ms);
            *p++ = 'Z';
            break;
        case V_MSEC: p = put_seconds(p, (uint64_t)e->wall.tv_sec, ms); break;
        case V_REQUEST:
            if (!e->req) { /* nothing of it was understood */
                p = put_absent(log, p);
                v += 2, cap += 2;
                break;
            }
            p = put_text(log, p, *v++, *cap++);
            *p++ = ' ';
            p = put_text(log, p, *v++, *cap++);
            *p++ = ' ';
            p = put_protocol(log, p, e->req);
            break;
        case V_SERVER_PROTOCOL: p = put_protocol(log, p, e->req); break;
        case V_STATUS: p += fmt_u64(p, (uint64_t)e->status); break;
        case V_BODY_BYTES_SENT: p += fmt_u64(p, e->body_bytes); break;
        case V_REQUEST_TIME: p = put_seconds(p, e->usec / 1000000, e->usec / 1000); break;
        case V_WORKER: p += fmt_u64(p, log->worker); break;
        case V_PID: p += fmt_u64(p, (uint64_t)log->pid); break;
        default: p = put_text(log, p, *v++, *cap++); break; /* untrusted text */
        }
    }
    *p++ = '\n';
    return p;
}

void accesslog_write(struct accesslog *log, const struct accesslog_entry *e) {
    if (log->len + log->fmt.max_line > log->cap) accesslog_flush(log);
    describe_time(log, e->wall.tv_sec);
    describe_addr(&log->peer, e->peer);
    describe_addr(&log->client, e->client ? e->client : e->peer);
    collect(log, e);

    size_t cap[MAX_TEXTS];
    for (size_t i = 0; i < log->fmt.ntexts; i++) cap[i] = SIZE_MAX;
    char *start = log->buf + log->len;
    char *end = put_line(log, start, e, cap);
    if (log->whole_lines && (size_t)(end - start) > PIPE_BUF) {
        shorten(log, (size_t)(end - start), cap);
        end = put_line(log, start, e, cap);
    }
    log->len = (size_t)(end - log->buf);
}
