/* response: response objects and their serialization. */
#include "workers/response.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "workers/fmt.h"
#include "workers/httpdate.h"

void response_init(struct response *r) {
    memset(r, 0, sizeof *r);
    r->status = 200;
    r->fd = -1;
}

void response_reset(struct response *r) {
    if (r->hold)
        r->release(r->hold);
    else if (r->fd >= 0)
        close(r->fd);
    r->hold = NULL;
    r->data = NULL;
    r->data_len = 0;
    r->status = 200;
    r->content_type = NULL;
    r->body = BODY_NONE;
    r->mem_len = 0;
    r->fd = -1;
    r->file_off = r->file_len = 0;
    r->headers_len = 0;
    r->lines = NULL;
    r->lines_len = 0;
    r->close = false;
    r->builtin = false;
}

void response_trim(struct response *r, size_t max) {
    if (r->mem_cap > max) {
        free(r->mem);
        r->mem = NULL;
        r->mem_cap = r->mem_len = 0;
    }
    if (r->headers_cap > max) {
        free(r->headers);
        r->headers = NULL;
        r->headers_cap = r->headers_len = 0;
    }
}

void response_free(struct response *r) {
    response_reset(r);
    free(r->mem);
    free(r->headers);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

static int grow(char **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    char *n = realloc(*p, c);
    if (!n) return -1;
    *p = n;
    *cap = c;
    return 0;
}

int response_header(struct response *r, const char *name, const char *fmt, ...) {
    va_list ap;
    size_t nlen = strlen(name);
    va_start(ap, fmt);
    int vlen = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (vlen < 0 || grow(&r->headers, &r->headers_cap, r->headers_len + nlen + (size_t)vlen + 5))
        return -1;
    char *p = r->headers + r->headers_len;
    memcpy(p, name, nlen);
    memcpy(p + nlen, ": ", 2);
    va_start(ap, fmt);
    vsnprintf(p + nlen + 2, (size_t)vlen + 1, fmt, ap);
    va_end(ap);
    memcpy(p + nlen + 2 + vlen, "\r\n", 2);
    r->headers_len += nlen + (size_t)vlen + 4;
    return 0;
}

int response_header_n(struct response *r, const char *name, size_t nlen, const char *value,
                      size_t vlen) {
    if (grow(&r->headers, &r->headers_cap, r->headers_len + nlen + vlen + 4)) return -1;
    char *p = r->headers + r->headers_len;
    memcpy(p, name, nlen);
    memcpy(p + nlen, ": ", 2);
    memcpy(p + nlen + 2, value, vlen);
    memcpy(p + nlen + 2 + vlen, "\r\n", 2);
    r->headers_len += nlen + vlen + 4;
    return 0;
}

int response_header_raw(struct response *r, const char *lines, size_t len) {
    if (grow(&r->headers, &r->headers_cap, r->headers_len + len)) return -1;
    memcpy(r->headers + r->headers_len, lines, len);
    r->headers_len += len;
    return 0;
}

int response_header_lines(struct response *r, const char *lines, size_t len) {
    if (r->lines) return response_header_raw(r, lines, len);
    r->lines = lines;
    r->lines_len = len;
    return 0;
}

int response_append(struct response *r, const void *p, size_t n) {
    if (grow(&r->mem, &r->mem_cap, r->mem_len + n)) return -1;
    if (n) memcpy(r->mem + r->mem_len, p, n); /* p may be NULL for nothing */
    r->mem_len += n;
    r->body = BODY_MEM;
    r->builtin = false;
    return 0;
}

void response_hold(struct response *r, void *hold, void (*release)(void *hold)) {
    if (r->hold) r->release(r->hold);
    r->hold = hold;
    r->release = release;
}

void response_file(struct response *r, int fd, uint64_t off, uint64_t len) {
    if (r->fd >= 0 && r->fd != fd && !r->hold) close(r->fd);
    r->body = BODY_FILE;
    r->fd = fd;
    r->file_off = off;
    r->file_len = len;
}

void response_error(struct response *r, int status) {
    char text[64];
    response_reset(r);
    r->status = status;
    r->content_type = "text/plain";
    int n = snprintf(text, sizeof text, "%d %s\n", status, http_reason(status));
    if (response_append(r, text, (size_t)n) < 0)
        r->body = BODY_NONE;
    else
        r->builtin = true;
}

const char *http_reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
    }
}

bool http_status_has_body(int status) {
    return status >= 200 && status != 204 && status != 304;
}

const char *http_date_now(time_t now) {
    /* per process; only loop threads format responses */
    static time_t cached = -1;
    static char text[HTTPDATE_LEN + 1];
    if (now != cached) {
        httpdate_format(now, text);
        cached = now;
    }
    return text;
}

#define PUT(lit) (memcpy(p, lit, sizeof lit - 1), p += sizeof lit - 1)

static void put_str(char **p, const char *s, size_t n) {
    if (n) memcpy(*p, s, n); /* s may be NULL for an empty body */
    *p += n;
}

int response_serialize(const struct response *r, const struct response_framing *f, struct buf *out,
                       struct bufcache *bc, time_t now, bool *chunked) {
    const char *reason = http_reason(r->status);
    size_t server_len = strlen(f->server), reason_len = strlen(reason);
    size_t ctype_len = r->content_type ? strlen(r->content_type) : 0;
    bool has_body = http_status_has_body(r->status);
    const char *body = r->body == BODY_MEM ? r->mem : r->data;
    size_t body_len = r->body == BODY_MEM ? r->mem_len : r->data_len;
    bool copy_data = r->body == BODY_DATA && (!f->data_copy_max || r->data_len <= f->data_copy_max);
    bool send_mem = (r->body == BODY_MEM || copy_data) && has_body && !f->head_request;
    size_t need = 256 + server_len + reason_len + ctype_len + r->headers_len + r->lines_len +
                  (send_mem ? body_len : 0);
    if (buf_reserve(out, bc, need, (size_t)-1) < 0) return -1;

    char *p = buf_tail(out);
    PUT("HTTP/1.1 ");
    p += fmt_u64(p, (uint64_t)r->status);
    *p++ = ' ';
    put_str(&p, reason, reason_len);
    PUT("\r\nServer: ");
    put_str(&p, f->server, server_len);
    PUT("\r\nDate: ");
    put_str(&p, http_date_now(now), HTTPDATE_LEN);
    PUT("\r\n");
    if (r->content_type) {
        PUT("Content-Type: ");
        put_str(&p, r->content_type, ctype_len);
        PUT("\r\n");
    }
    *chunked = false;
    if (has_body) {
        if (r->body == BODY_STREAM) {
            /* HTTP/1.0 has no chunks: the end of the body is the close */
            if (f->version >= 11) {
                PUT("Transfer-Encoding: chunked\r\n");
                *chunked = !f->head_request;
            }
        } else {
            PUT("Content-Length: ");
            uint64_t len = r->body == BODY_FILE ? r->file_len : r->body == BODY_NONE ? 0 : body_len;
            p += fmt_u64(p, len);
            PUT("\r\n");
        }
    }
    if (r->headers_len) put_str(&p, r->headers, r->headers_len);
    if (r->lines_len) put_str(&p, r->lines, r->lines_len);
    if (!f->keep_alive)
        PUT("Connection: close\r\n");
    else if (f->version == 10)
        PUT("Connection: keep-alive\r\n");
    if (f->keep_alive && f->keepalive_s) {
        /* how long we wait for the next request: a client or proxy reusing
         * the connection later should not (RFC 9112 9.3 leaves it to us) */
        PUT("Keep-Alive: timeout=");
        p += fmt_u64(p, f->keepalive_s);
        PUT("\r\n");
    }
    PUT("\r\n");
    if (send_mem) put_str(&p, body, body_len);
    out->end = (size_t)(p - out->data);
    return 0;
}

int response_chunk(struct buf *out, struct bufcache *bc, const void *data, size_t n, bool chunked) {
    if (!chunked) return n ? buf_append(out, bc, data, n) : 0;
    if (buf_reserve(out, bc, n + 24, (size_t)-1) < 0) return -1;
    char *p = buf_tail(out);
    if (n == 0) {
        PUT("0\r\n\r\n");
    } else {
        p += snprintf(p, 20, "%zx\r\n", n);
        put_str(&p, data, n);
        PUT("\r\n");
    }
    out->end = (size_t)(p - out->data);
    return 0;
}
