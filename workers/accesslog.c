/* accesslog: buffered combined-format lines. */
#include "workers/accesslog.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_BUF   (64 * 1024)
#define MAX_FIELD 2048 /* longest piece of untrusted text logged */

struct accesslog {
    int fd;
    char *path;
    time_t stamp_time;
    char stamp[40];
    size_t len;
    char buf[LOG_BUF];
};

static int open_path(const char *path) {
    if (strcmp(path, "-") == 0) return STDOUT_FILENO;
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

struct accesslog *accesslog_open(const char *path) {
    struct accesslog *log = malloc(sizeof *log);
    if (!log) return NULL;
    log->fd = open_path(path);
    log->path = strdup(path);
    log->len = 0;
    log->stamp_time = -1;
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
    if (log->fd == STDOUT_FILENO) return 0;
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

static char *put_field(char *p, const struct http_request *req, const char *name) {
    const struct http_str *v = req ? http_find(req, name) : NULL;
    *p++ = '"';
    if (v)
        p = put_escaped(p, v->p, v->len);
    else
        *p++ = '-';
    *p++ = '"';
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
        strftime(log->stamp, sizeof log->stamp, "%d/%b/%Y:%H:%M:%S +0000", &tm);
        log->stamp_time = now;
    }
    char addr[INET6_ADDRSTRLEN] = "-";
    if (peer && peer->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, addr, sizeof addr);
    else if (peer && peer->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, addr, sizeof addr);

    char *p = log->buf + log->len;
    p += sprintf(p, "%s - - [%s] \"", addr, log->stamp);
    if (req) {
        p = put_escaped(p, req->method_name.p, req->method_name.len);
        *p++ = ' ';
        p = put_escaped(p, req->target.p, req->target.len);
        p += sprintf(p, " HTTP/1.%d", req->version == 10 ? 0 : 1);
    } else {
        *p++ = '-';
    }
    p += sprintf(p, "\" %d %llu ", status, (unsigned long long)body_bytes);
    p = put_field(p, req, "referer");
    *p++ = ' ';
    p = put_field(p, req, "user-agent");
    p += sprintf(p, " %llu.%03llu\n", (unsigned long long)(usec / 1000000),
                 (unsigned long long)(usec / 1000 % 1000));
    log->len = (size_t)(p - log->buf);
}
