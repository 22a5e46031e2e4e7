/* accesslog: buffered combined-format lines. */
#include "workers/accesslog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/log.h"
#include "workers/fmt.h"

#define LOG_BUF   (64 * 1024)
#define MAX_FIELD 2048 /* longest piece of untrusted text logged */

/* The pieces of untrusted text in a line, in their order. */
enum { F_METHOD, F_TARGET, F_REFERER, F_AGENT, NFIELDS };

struct accesslog {
    int fd;
    char *path;
    /* Not a regular file (stdout as a pipe, a socket, a terminal): several
     * workers write to the same pipe, and only a write of at most PIPE_BUF
     * bytes arrives unsplit. So the buffer goes out in pieces of whole lines
     * of at most PIPE_BUF bytes, and a longer line is shortened. */
    bool whole_lines;
    bool failing; /* the last flush failed; reported once */
    time_t stamp_time;
    char stamp[48]; /* " - - [22/Nov/2026:19:26:51 +0000] \"", for stamp_time */
    size_t stamp_len;
    /* the last peer's address as text: consecutive lines usually share it */
    struct sockaddr_in6 peer;
    char addr[INET6_ADDRSTRLEN];
    size_t addr_len;
    size_t len;
    char buf[LOG_BUF];
};

/* No symlink followed, regular files only (log_open_file): the file may sit
 * in a folder the workers' user can write. Nothing is chowned here. */
static int open_path(const char *path) {
    char err[256];
    if (strcmp(path, "-") == 0) return STDOUT_FILENO;
    return log_open_file(path, (uid_t)-1, (gid_t)-1, err, sizeof err);
}

struct accesslog *accesslog_open(const char *path) {
    struct accesslog *log = malloc(sizeof *log);
    if (!log) return NULL;
    log->fd = open_path(path);
    log->path = strdup(path);
    log->len = 0;
    struct stat st;
    log->whole_lines = log->fd >= 0 && fstat(log->fd, &st) == 0 && !S_ISREG(st.st_mode);
    log->failing = false;
    log->stamp_time = -1;
    log->peer.sin6_family = AF_UNSPEC;
    log->addr_len = 0;
    if (log->fd < 0 || !log->path) {
        accesslog_close(log);
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
    if (log->fd >= 0) accesslog_flush(log);
    if (log->fd > STDERR_FILENO) close(log->fd);
    free(log->path);
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

static bool needs_escape(unsigned char c) {
    return c < 0x20 || c >= 0x7f || c == '"' || c == '\\';
}

/* The length of s escaped (at most MAX_FIELD bytes of it are logged). */
static size_t escaped_len(const char *s, size_t n) {
    size_t len = 0;
    if (n > MAX_FIELD) n = MAX_FIELD;
    for (size_t i = 0; i < n; i++) len += needs_escape((unsigned char)s[i]) ? 4 : 1;
    return len;
}

/* Appends s escaped: quotes, backslashes, controls and non-ASCII as \xHH.
 * At most cap bytes: a longer text is cut before a whole character and
 * ends in "...". */
static char *put_escaped(char *p, const char *s, size_t n, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    if (n > MAX_FIELD) n = MAX_FIELD;
    bool cut = cap < 4 * n && escaped_len(s, n) > cap;
    size_t room = !cut ? SIZE_MAX : cap > 3 ? cap - 3 : 0;
    const char *start = p;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool esc = needs_escape(c);
        if ((size_t)(p - start) + (esc ? 4 : 1) > room) break;
        if (esc) {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    if (cut && cap >= 3) {
        memcpy(p, "...", 3);
        p += 3;
    }
    return p;
}

static char *put_quoted(char *p, const struct http_str *v, size_t cap) {
    *p++ = '"';
    if (v)
        p = put_escaped(p, v->p, v->len, cap);
    else
        *p++ = '-';
    *p++ = '"';
    return p;
}

#define PUT(lit) (memcpy(p, lit, sizeof lit - 1), p += sizeof lit - 1)

/* The client's address as text, formatted again only when it changes. */
static void describe_peer(struct accesslog *log, const struct sockaddr *peer) {
    const struct sockaddr_in6 *in6 = (const void *)peer;
    const struct sockaddr_in *in4 = (const void *)peer;
    int family = peer ? peer->sa_family : AF_UNSPEC;
    if (family == log->peer.sin6_family && log->addr_len &&
        (family == AF_INET
             ? in4->sin_addr.s_addr == ((struct sockaddr_in *)&log->peer)->sin_addr.s_addr
         : family == AF_INET6 ? memcmp(&in6->sin6_addr, &log->peer.sin6_addr, 16) == 0
                              : true))
        return;
    memset(&log->peer, 0, sizeof log->peer);
    log->peer.sin6_family = (sa_family_t)family;
    strcpy(log->addr, "-");
    if (family == AF_INET) {
        ((struct sockaddr_in *)&log->peer)->sin_addr = in4->sin_addr;
        inet_ntop(AF_INET, &in4->sin_addr, log->addr, sizeof log->addr);
    } else if (family == AF_INET6) {
        log->peer.sin6_addr = in6->sin6_addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, log->addr, sizeof log->addr);
    }
    log->addr_len = strlen(log->addr);
}

/* The untrusted fields of a request (absent ones empty). */
static void fields_of(const struct http_request *req, struct http_str f[NFIELDS]) {
    memset(f, 0, NFIELDS * sizeof *f);
    if (!req) return;
    f[F_METHOD] = req->method_name;
    f[F_TARGET] = req->target;
    if (req->referer) f[F_REFERER] = *req->referer;
    if (req->user_agent) f[F_AGENT] = *req->user_agent;
}

/* Caps for the fields of a line of len bytes so that it fits PIPE_BUF: the
 * room left by the rest of the line is shared evenly, and a field shorter
 * than its share leaves the remainder to the longer ones. */
static void shorten(const struct http_request *req, size_t len, size_t cap[NFIELDS]) {
    struct http_str f[NFIELDS];
    size_t want[NFIELDS], total = 0;
    bool set[NFIELDS] = {false};
    fields_of(req, f);
    for (int i = 0; i < NFIELDS; i++) total += want[i] = escaped_len(f[i].p, f[i].len);
    size_t left = PIPE_BUF - (len - total), unset = NFIELDS;
    for (bool changed = true; changed && unset;) {
        changed = false;
        for (int i = 0; i < NFIELDS; i++) {
            if (set[i] || want[i] > left / unset) continue;
            cap[i] = want[i];
            left -= want[i];
            set[i] = true;
            unset--;
            changed = true;
        }
    }
    for (int i = 0; i < NFIELDS; i++)
        if (!set[i]) cap[i] = left / unset;
}

/* One line at p; returns its end. */
static char *put_line(struct accesslog *log, char *p, const struct http_request *req, int status,
                      uint64_t body_bytes, uint64_t usec, const size_t cap[NFIELDS]) {
    memcpy(p, log->addr, log->addr_len);
    p += log->addr_len;
    memcpy(p, log->stamp, log->stamp_len);
    p += log->stamp_len;
    if (req) {
        p = put_escaped(p, req->method_name.p, req->method_name.len, cap[F_METHOD]);
        *p++ = ' ';
        p = put_escaped(p, req->target.p, req->target.len, cap[F_TARGET]);
        if (req->version == 10)
            PUT(" HTTP/1.0\" ");
        else
            PUT(" HTTP/1.1\" ");
    } else {
        PUT("-\" ");
    }
    p += fmt_u64(p, (uint64_t)status);
    *p++ = ' ';
    p += fmt_u64(p, body_bytes);
    *p++ = ' ';
    p = put_quoted(p, req ? req->referer : NULL, cap[F_REFERER]);
    *p++ = ' ';
    p = put_quoted(p, req ? req->user_agent : NULL, cap[F_AGENT]);
    *p++ = ' ';
    p += fmt_u64(p, usec / 1000000);
    uint64_t ms = usec / 1000 % 1000;
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    *p++ = '\n';
    return p;
}

void accesslog_write(struct accesslog *log, const struct sockaddr *peer, time_t now,
                     const struct http_request *req, int status, uint64_t body_bytes,
                     uint64_t usec) {
    /* worst case: 4 escaped fields of MAX_FIELD bytes, 4 bytes each */
    if (log->len + 4 * 4 * MAX_FIELD + 256 > LOG_BUF) accesslog_flush(log);
    if (now != log->stamp_time) {
        struct tm tm;
        gmtime_r(&now, &tm);
        log->stamp_len =
            strftime(log->stamp, sizeof log->stamp, " - - [%d/%b/%Y:%H:%M:%S +0000] \"", &tm);
        log->stamp_time = now;
    }
    describe_peer(log, peer);

    size_t cap[NFIELDS] = {SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX};
    char *start = log->buf + log->len;
    char *end = put_line(log, start, req, status, body_bytes, usec, cap);
    if (log->whole_lines && (size_t)(end - start) > PIPE_BUF) {
        shorten(req, (size_t)(end - start), cap);
        end = put_line(log, start, req, status, body_bytes, usec, cap);
    }
    log->len = (size_t)(end - log->buf);
}
