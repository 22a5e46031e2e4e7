/* response: what a handler fills in, and how it becomes bytes on the wire.
 *
 * A handler (on the loop thread or a pool thread) sets the status, a few
 * headers and one body: none, bytes in memory, a file range (sent with
 * sendfile), or a stream of pieces of unknown length (sent chunked, or
 * delimited by close for HTTP/1.0 clients). Only the loop thread serializes
 * responses. Memory held by a response is kept for the next request. */
#ifndef PREFORKD_RESPONSE_H
#define PREFORKD_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "workers/buf.h"

enum body_kind {
    BODY_NONE,   /* no body (Content-Length: 0 unless the status forbids it) */
    BODY_MEM,    /* mem[0, mem_len), owned by the response */
    BODY_DATA,   /* data[0, data_len), kept alive by hold */
    BODY_FILE,   /* file_len bytes of fd from file_off; fd is closed afterwards,
                    or belongs to hold when there is one */
    BODY_STREAM, /* pieces arrive later through handler_stream_write() */
};

struct response {
    int status;
    const char *content_type; /* static string, or NULL for none */
    enum body_kind body;
    char *mem;
    size_t mem_len, mem_cap;
    const char *data;
    size_t data_len;
    int fd;
    uint64_t file_off, file_len;
    void *hold;                  /* owner of data or fd (an open-file cache entry) */
    void (*release)(void *hold); /* called when the response is done with it */
    char *headers;               /* extra header lines, each ending in CRLF */
    size_t headers_len, headers_cap;
    const char *lines; /* more, borrowed (a route's, made once): sent after headers */
    size_t lines_len;
    bool close; /* close the connection after this response */
    bool
        builtin; /* the body is response_error's (pfd_error's) text: an error page may replace it */
};

void response_init(struct response *r);
/* Back to an empty 200 response, keeping allocated memory; closes a file. */
void response_reset(struct response *r);
void response_free(struct response *r);
/* Frees buffers grown past max bytes (after response_reset()). */
void response_trim(struct response *r, size_t max);

/* Appends "name: value" with value formatted like printf. */
int response_header(struct response *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends "name: value" (lengths given, nothing checked). */
int response_header_n(struct response *r, const char *name, size_t nlen, const char *value,
                      size_t vlen);
/* Appends ready-made header lines (each ending in CRLF). */
int response_header_raw(struct response *r, const char *lines, size_t len);
/* The same, borrowed: lines must outlive the response (a route's lines,
 * made with the configuration); serialized after the copied lines, without
 * a copy. One block per response: a second one is copied (so it goes out
 * before the first). */
int response_header_lines(struct response *r, const char *lines, size_t len);
/* Appends bytes to a BODY_MEM body. */
int response_append(struct response *r, const void *p, size_t n);
/* A short text/plain body naming the status (callers add Allow to a 405). */
void response_error(struct response *r, int status);
/* Sends file range [off, off + len) of fd, which the response now owns. */
void response_file(struct response *r, int fd, uint64_t off, uint64_t len);
/* Borrowed body or file: hold keeps it alive until release(hold). */
void response_hold(struct response *r, void *hold, void (*release)(void *hold));

/* Reason phrase for a status code ("Unknown" for unlisted ones). */
const char *http_reason(int status);
/* Whether a response with this status to this method carries no body. */
bool http_status_has_body(int status);

/* The Date header value, formatted once per second. */
const char *http_date_now(time_t now);

/* How the head is framed and whether the connection stays open. */
struct response_framing {
    unsigned version;     /* the request's: 10 or 11 */
    bool head_request;    /* HEAD: headers as for GET, no body */
    bool keep_alive;      /* connection stays open after this response */
    unsigned keepalive_s; /* Keep-Alive: timeout=N on a kept connection; 0: none */
    const char *server;
    size_t data_copy_max; /* a longer BODY_DATA body is not copied (the caller sends it); 0: no
                             limit */
};

/* Serializes the status line and headers into out; for BODY_MEM also the
 * body. Returns -1 on allocation failure. Sets *chunked when the body will
 * follow as chunks. */
int response_serialize(const struct response *r, const struct response_framing *f, struct buf *out,
                       struct bufcache *bc, time_t now, bool *chunked);
/* One chunk of a streamed body (n > 0), or the last chunk (n == 0). */
int response_chunk(struct buf *out, struct bufcache *bc, const void *p, size_t n, bool chunked);

#endif
