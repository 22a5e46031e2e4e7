/* http: reading HTTP/1.1 requests. The only user of nodejs http-parser: the
 * rest of preforkd sees a parsed request and never the parser.
 *
 * A request is read in two steps on bytes that the caller keeps in place:
 *
 *   http_msg_head()  the head (request line and fields). A strict scanner
 *                    checks every line first (CRLF endings, no obs-fold, the
 *                    exact request-line shape, limits), then the complete
 *                    head goes through http-parser, then the semantics are
 *                    checked (Host, Content-Length / Transfer-Encoding, Expect).
 *   http_msg_body()  the body, Content-Length or chunked. Chunked framing is
 *                    checked by a second strict scanner before http-parser
 *                    decodes it. The parser pauses at the end of the message,
 *                    so bytes after it are left for the next request.
 *
 * Both return HTTP_AGAIN (need more bytes), HTTP_DONE, or an HTTP status
 * >= 400 saying how to refuse the request; after a refusal the connection
 * must be closed, because the framing of what follows cannot be trusted.
 *
 * The request's strings point into the caller's buffer, which must neither
 * move nor change until the request is finished. One http_msg serves one
 * request at a time; only the loop thread creates and frees them. */
#ifndef PREFORKD_HTTP_H
#define PREFORKD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_AGAIN 0
#define HTTP_DONE  1

enum req_method {
    METHOD_GET,
    METHOD_HEAD,
    METHOD_POST,
    METHOD_PUT,
    METHOD_DELETE,
    METHOD_OPTIONS,
    METHOD_PATCH,
    METHOD_TRACE,
    METHOD_OTHER,
};

struct http_str {
    const char *p;
    size_t len;
};

struct http_field {
    struct http_str name, value; /* value without surrounding whitespace */
};

/* What a handler sees of a request. */
struct http_request {
    enum req_method method;
    struct http_str method_name;
    unsigned version;         /* 10 or 11 */
    struct http_str target;   /* the request-target as sent */
    struct http_str path_raw; /* its path, still percent-encoded */
    struct http_str query;    /* after '?'; p is NULL when there is no '?' */
    const char *path;         /* decoded and normalized, NUL-terminated; "*" for OPTIONS * */
    size_t path_len;
    struct http_field *fields;
    unsigned nfields;
    struct http_str host;
    int64_t content_length; /* -1 when absent */
    bool chunked;
    bool keep_alive; /* the client allows another request on this connection */
    bool expect_continue;
    struct http_str body; /* the whole body, when http_msg_keep_body() was asked */
    /* fields the static handler and the log ask for, found while checking the head
     * (NULL when absent; the first one when repeated) */
    const struct http_str *if_none_match, *if_modified_since, *if_range, *range;
    const struct http_str *if_match, *if_unmodified_since;
    const struct http_str *referer, *user_agent; /* for the access log */
    const struct http_str *content_type, *accept_encoding;
};

struct http_limits {
    uint64_t max_uri;
    uint64_t max_header_size;
    uint64_t max_headers;
    uint64_t max_body_size;
};

struct http_msg;

/* Process-wide setup for the limits (http-parser keeps a global cap). */
void http_init(const struct http_limits *lim);

struct http_msg *http_msg_new(void);
void http_msg_free(struct http_msg *m);
/* Resets m for a new request under the given limits (kept by reference). */
void http_msg_start(struct http_msg *m, const struct http_limits *lim);
struct http_request *http_msg_request(struct http_msg *m);
/* Frees buffers grown past max bytes (the body, the path, the field table),
 * so that a cached http_msg does not keep the largest request's memory. */
void http_msg_trim(struct http_msg *m, size_t max);

/* buf holds the request from its first byte; len grows between calls. On
 * HTTP_DONE *used is the length of the head. */
int http_msg_head(struct http_msg *m, const char *buf, size_t len, size_t *used);
/* Whether a body follows the head (otherwise the request is complete). */
bool http_msg_has_body(const struct http_msg *m);
/* The request line said HEAD (known even when the request is refused): the
 * answer carries no content. */
bool http_msg_is_head(const struct http_msg *m);
/* Collect the body into request->body (else it is read and dropped). */
void http_msg_keep_body(struct http_msg *m);
/* Hand the body to sink as it is parsed instead (sink returns 0, or -1 when
 * out of memory: the message fails with 500). */
void http_msg_stream_body(struct http_msg *m, int (*sink)(void *arg, const char *p, size_t n),
                          void *arg);
/* After the head: the body may have at most max bytes (the route's
 * max_body_size; the limits' one until then, which must be the largest of
 * all). 413 when Content-Length already says more, else 0. */
int http_msg_body_limit(struct http_msg *m, uint64_t max);
/* buf holds body bytes not yet given; *used says how many were taken (all of
 * them on HTTP_AGAIN, up to the end of the message on HTTP_DONE). */
int http_msg_body(struct http_msg *m, char *buf, size_t len, size_t *used);
/* The caller's buffer moved: the head's len bytes went from old to new. Every
 * pointer into it is updated. Never while a pool thread reads the request. */
void http_msg_rebase(struct http_msg *m, const char *old, const char *new_base, size_t len);
/* Why the last call refused the request, for the log. */
const char *http_msg_error(const struct http_msg *m);

/* The value of the first field called name (case-insensitive), or NULL. */
const struct http_str *http_find(const struct http_request *r, const char *name);
/* Case-insensitive comparison of s with a NUL-terminated lowercase literal of
 * token characters (letters, digits, '-'): inline, so that the literal's
 * length is known at compile time. */
static inline bool http_str_ieq(struct http_str s, const char *lower) {
    size_t n = __builtin_strlen(lower);
    if (s.len != n) return false;
    for (size_t i = 0; i < n; i++)
        if ((s.p[i] | 0x20) != lower[i]) return false;
    return true;
}

#endif
