/* accesslog: buffered combined-format lines. */
#include "workers/accesslog.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/log.h"
#include "workers/fmt.h"

#define LOG_BUF   (64 * 1024)
#define MAX_FIELD 2048 /* longest piece of untrusted text logged */

struct accesslog {
    int fd;
    char *path;
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
    log->stamp_time = -1;
    log->peer.sin6_family = AF_UNSPEC;
    log->addr_len = 0;
    if (log->fd < 0 || !log->path) {
        accesslog_close(log);
        return NULL;
    }
    return log;
}

void accesslog_flush(struct accesslog *log) {
    size_t off = 0;
    while (off < log->len) {
        ssize_t n = write(log->fd, log->buf + off, log->len - off);
        if (n <= 0) break; /* a full disk must not stop the server */
        off += (size_t)n;
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

/* Appends s escaped: quotes, backslashes, controls and non-ASCII as \xHH. */
static char *put_escaped(char *p, const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    if (n > MAX_FIELD) n = MAX_FIELD;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    return p;
}

static char *put_quoted(char *p, const struct http_str *v) {
    *p++ = '"';
    if (v)
        p = put_escaped(p, v->p, v->len);
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

    char *p = log->buf + log->len;
    memcpy(p, log->addr, log->addr_len);
    p += log->addr_len;
    memcpy(p, log->stamp, log->stamp_len);
    p += log->stamp_len;
    if (req) {
        p = put_escaped(p, req->method_name.p, req->method_name.len);
        *p++ = ' ';
        p = put_escaped(p, req->target.p, req->target.len);
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
    p = put_quoted(p, req ? req->referer : NULL);
    *p++ = ' ';
    p = put_quoted(p, req ? req->user_agent : NULL);
    *p++ = ' ';
    p += fmt_u64(p, usec / 1000000);
    uint64_t ms = usec / 1000 % 1000;
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    *p++ = '\n';
    log->len = (size_t)(p - log->buf);
}
