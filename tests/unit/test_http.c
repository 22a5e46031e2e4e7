/* Unit tests for workers/http.c, the request parser: a table of raw requests
 * with what the parser must make of each (a parsed request, or the status to
 * refuse it with), run once in one piece and again split at every byte offset
 * the way a connection receives it (the idea of http-parser's test.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "workers/http.h"

/* Small limits keep the limit cases short enough to split at every offset. */
static const struct http_limits limits = {
    .max_uri = 64,
    .max_header_size = 256,
    .max_headers = 8,
    .max_body_size = 64,
};

/* Three-piece splits are quadratic in the length: longer cases get two. */
#define MAX_THREE_PIECE_LEN 600

#define X8   "xxxxxxxx"
#define X16  X8 X8
#define X32  X16 X16
#define X64  X32 X32
#define X198 X64 X64 X64 "xxxxxx"
#define X240 X64 X64 X64 X32 X16
#define X1K  X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64 X64
/* A target of exactly max_uri bytes */
#define T64 "/" X32 X16 X8 "xxxxxxx"

#define NO_CL (-1)
/* feed()'s verdict when http_msg_body() left part of its input on HTTP_AGAIN */
#define NOT_ALL_TAKEN (-2)

/* What a request must look like after HTTP_DONE. */
struct want {
    enum req_method method;
    const char *method_name;
    unsigned version;
    const char *target;
    const char *path;
    const char *query; /* NULL: no '?' at all */
    const char *host;  /* NULL: no Host field */
    int64_t content_length;
    bool chunked, keep_alive, expect_continue;
    unsigned nfields;
    const char *fields; /* "name=value\n" per field, in order; NULL: not checked */
    const char *body;   /* the decoded body; NULL: no body follows the head */
    size_t body_len;
};

struct parse_case {
    const char *name;
    const char *raw; /* one message */
    size_t raw_len;
    const char *next; /* bytes after it (a pipelined request), not part of it */
    size_t next_len;
    int status; /* HTTP_DONE, HTTP_AGAIN, or the refusal */
    struct want want;
};

#define RAW(s)  .raw = (s), .raw_len = sizeof(s) - 1
#define NEXT(s) .next = (s), .next_len = sizeof(s) - 1
#define BODY(s) .body = (s), .body_len = sizeof(s) - 1
#define REFUSE(n, s, st)                                                                           \
    { .name = (n), RAW(s), .status = (st) }

#define H11          " HTTP/1.1\r\nHost: a\r\n"
#define CHUNKED_POST "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
#define CL_POST(n)   "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: " n "\r\n\r\n"

static const struct parse_case cases[] = {
    /* ---- well-formed requests ---- */
    {.name = "GET",
     RAW("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "/",
              .path = "/",
              .host = "example.com",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1,
              .fields = "Host=example.com\n"}},
    {.name = "HEAD",
     RAW("HEAD /index.html HTTP/1.1\r\nHost: a\r\nUser-Agent: unit/1.0\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_HEAD,
              .method_name = "HEAD",
              .version = 11,
              .target = "/index.html",
              .path = "/index.html",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 2,
              .fields = "Host=a\nUser-Agent=unit/1.0\n"}},
    {.name = "GET with a Content-Length body",
     RAW("GET /q HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "/q",
              .path = "/q",
              .host = "a",
              .content_length = 3,
              .keep_alive = true,
              .nfields = 2,
              BODY("abc")}},
    {.name = "POST with Content-Length",
     RAW("POST /form HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: "
         "11\r\n\r\nhello world"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 11,
              .target = "/form",
              .path = "/form",
              .host = "a",
              .content_length = 11,
              .keep_alive = true,
              .nfields = 3,
              .fields = "Host=a\nContent-Type=text/plain\nContent-Length=11\n",
              BODY("hello world")}},
    {.name = "POST with Content-Length 0 has no body",
     RAW("POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 11,
              .target = "/e",
              .path = "/e",
              .host = "a",
              .content_length = 0,
              .keep_alive = true,
              .nfields = 2}},
    {.name = "Content-Length with trailing whitespace",
     RAW("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 3 \r\n\r\nabc"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 11,
              .target = "/up",
              .path = "/up",
              .host = "a",
              .content_length = 3,
              .keep_alive = true,
              .nfields = 2,
              BODY("abc")}},
    {.name = "chunked with extensions (after SP or HTAB) and trailers",
     RAW(CHUNKED_POST
         "4;name=value\r\nWiki\r\n5 ; a=\"q;x\"\r\npedia\r\nE\t;t=1\r\n in\r\n\r\nchunks."
         "\r\n0;last\r\nExpires: never\r\nX-Sum: 1\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 11,
              .target = "/up",
              .path = "/up",
              .host = "a",
              .content_length = NO_CL,
              .chunked = true,
              .keep_alive = true,
              .nfields = 2,
              .fields = "Host=a\nTransfer-Encoding=chunked\n",
              BODY("Wikipedia in\r\n\r\nchunks.")}},
    {.name = "chunked with 16 hex digits, upper case",
     RAW(CHUNKED_POST "000000000000000A\r\n0123456789\r\n0\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 11,
              .target = "/up",
              .path = "/up",
              .host = "a",
              .content_length = NO_CL,
              .chunked = true,
              .keep_alive = true,
              .nfields = 2,
              BODY("0123456789")}},
    {.name = "chunked, empty body",
     RAW(CHUNKED_POST "0\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 11,
              .target = "/up",
              .path = "/up",
              .host = "a",
              .content_length = NO_CL,
              .chunked = true,
              .keep_alive = true,
              .nfields = 2,
              BODY("")}},
    {.name = "Transfer-Encoding is case-insensitive, with OWS",
     RAW("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n1\r\nz\r\n0\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 11,
              .target = "/up",
              .path = "/up",
              .host = "a",
              .content_length = NO_CL,
              .chunked = true,
              .keep_alive = true,
              .nfields = 2,
              BODY("z")}},

    {.name = "Transfer-Encoding: chunked followed by a tab",
     RAW("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n1\r\nz\r\n0\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 11,
              .target = "/up",
              .path = "/up",
              .host = "a",
              .content_length = NO_CL,
              .chunked = true,
              .keep_alive = true,
              .nfields = 2,
              BODY("z")}},
    {.name = "Transfer-Encoding with empty list elements",
     RAW("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked,\r\n\r\n1\r\nz\r\n0\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 11,
              .target = "/up",
              .path = "/up",
              .host = "a",
              .content_length = NO_CL,
              .chunked = true,
              .keep_alive = true,
              .nfields = 2,
              BODY("z")}},

    /* ---- pipelining: *used stops exactly at the end of the message ---- */
    {.name = "pipelined GET, GET",
     RAW("GET /a HTTP/1.1\r\nHost: a\r\n\r\n"),
     NEXT("GET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "/a",
              .path = "/a",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},
    {.name = "pipelined POST with Content-Length, GET",
     RAW(CL_POST("5") "hello"),
     NEXT("GET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 11,
              .target = "/up",
              .path = "/up",
              .host = "a",
              .content_length = 5,
              .keep_alive = true,
              .nfields = 2,
              BODY("hello")}},
    {.name = "pipelined chunked POST, GET",
     RAW(CHUNKED_POST "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
     NEXT("GET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 11,
              .target = "/up",
              .path = "/up",
              .host = "a",
              .content_length = NO_CL,
              .chunked = true,
              .keep_alive = true,
              .nfields = 2,
              BODY("hello")}},
    {.name = "pipelined chunked POST, chunked POST",
     RAW(CHUNKED_POST "3\r\none\r\n0\r\n\r\n"),
     NEXT(CHUNKED_POST "3\r\ntwo\r\n0\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 11,
              .target = "/up",
              .path = "/up",
              .host = "a",
              .content_length = NO_CL,
              .chunked = true,
              .keep_alive = true,
              .nfields = 2,
              BODY("one")}},
    {.name = "Upgrade is ignored: the next bytes are the next request",
     RAW("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
     NEXT("GET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "/ws",
              .path = "/ws",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 3}},
    {.name = "empty lines before the request line",
     RAW("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "/",
              .path = "/",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},

    /* ---- keep-alive ---- */
    {.name = "HTTP/1.0 closes by default",
     RAW("GET / HTTP/1.0\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 10,
              .target = "/",
              .path = "/",
              .content_length = NO_CL,
              .keep_alive = false,
              .nfields = 0}},
    {.name = "HTTP/1.0 with Connection: keep-alive",
     RAW("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 10,
              .target = "/",
              .path = "/",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},
    {.name = "HTTP/1.0 POST with a body and keep-alive",
     RAW("POST /p HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 10,
              .target = "/p",
              .path = "/p",
              .host = "a",
              .content_length = 2,
              .keep_alive = true,
              .nfields = 3,
              BODY("hi")}},
    {.name = "HTTP/1.0 POST without Content-Length has no body",
     RAW("POST /p HTTP/1.0\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 10,
              .target = "/p",
              .path = "/p",
              .content_length = NO_CL,
              .keep_alive = false,
              .nfields = 0}},
    {.name = "HTTP/1.1 with Connection: close",
     RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "/",
              .path = "/",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = false,
              .nfields = 2}},

    /* ---- targets ---- */
    {.name = "absolute-form target",
     RAW("GET http://example.com/a%20b/?x=1&y HTTP/1.1\r\nHost: example.com\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "http://example.com/a%20b/?x=1&y",
              .path = "/a b/",
              .query = "x=1&y",
              .host = "example.com",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},
    {.name = "absolute-form target without a path",
     RAW("GET https://example.com:8443 HTTP/1.1\r\nHost: example.com:8443\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "https://example.com:8443",
              .path = "/",
              .host = "example.com:8443",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},
    {.name = "OPTIONS *",
     RAW("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_OPTIONS,
              .method_name = "OPTIONS",
              .version = 11,
              .target = "*",
              .path = "*",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},
    {.name = "query string",
     RAW("GET /search?q=a%20b&lang=en HTTP/1.1\r\nHost: a\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "/search?q=a%20b&lang=en",
              .path = "/search",
              .query = "q=a%20b&lang=en",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},
    {.name = "empty query string",
     RAW("GET /? HTTP/1.1\r\nHost: a\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "/?",
              .path = "/",
              .query = "",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},
    {.name = "percent-decoded, normalized path",
     RAW("GET /docs/%7Euser/a%20b/./c//d/../e.txt?x=%41 HTTP/1.1\r\nHost: a\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "/docs/%7Euser/a%20b/./c//d/../e.txt?x=%41",
              .path = "/docs/~user/a b/c/e.txt",
              .query = "x=%41",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},
    {.name = "dot segments that stay below the root",
     RAW("GET /a/b/../../c/ HTTP/1.1\r\nHost: a\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "/a/b/../../c/",
              .path = "/c/",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},

    /* ---- fields ---- */
    {.name = "field values lose surrounding whitespace",
     RAW("GET / HTTP/1.1\r\nHost: a\r\nX-A:   v w  \r\nX-B:\tv\t\r\nX-C:\r\nX-D: \r\n"
         "X-E: caf\xc3\xa9\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "/",
              .path = "/",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 6,
              .fields = "Host=a\nX-A=v w\nX-B=v\nX-C=\nX-D=\nX-E=caf\xc3\xa9\n"}},
    {.name = "Expect: 100-continue",
     RAW("POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nhi"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 11,
              .target = "/up",
              .path = "/up",
              .host = "a",
              .content_length = 2,
              .keep_alive = true,
              .expect_continue = true,
              .nfields = 3,
              BODY("hi")}},
    {.name = "Host with an IPv6 literal and a port",
     RAW("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "/",
              .path = "/",
              .host = "[::1]:8080",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},
    {.name = "empty Host",
     RAW("GET / HTTP/1.1\r\nHost:\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "/",
              .path = "/",
              .host = "",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},

    /* ---- methods ---- */
    {.name = "PUT",
     RAW("PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nz"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_PUT,
              .method_name = "PUT",
              .version = 11,
              .target = "/f",
              .path = "/f",
              .host = "a",
              .content_length = 1,
              .keep_alive = true,
              .nfields = 2,
              BODY("z")}},
    {.name = "DELETE",
     RAW("DELETE /f HTTP/1.1\r\nHost: a\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_DELETE,
              .method_name = "DELETE",
              .version = 11,
              .target = "/f",
              .path = "/f",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},
    {.name = "PATCH",
     RAW("PATCH /f HTTP/1.1\r\nHost: a\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_PATCH,
              .method_name = "PATCH",
              .version = 11,
              .target = "/f",
              .path = "/f",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},
    {.name = "TRACE",
     RAW("TRACE /f HTTP/1.1\r\nHost: a\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_TRACE,
              .method_name = "TRACE",
              .version = 11,
              .target = "/f",
              .path = "/f",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},
    {.name = "a known method outside the enum",
     RAW("MKCOL /dir/ HTTP/1.1\r\nHost: a\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_OTHER,
              .method_name = "MKCOL",
              .version = 11,
              .target = "/dir/",
              .path = "/dir/",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},

    /* ---- limits, exactly at them ---- */
    {.name = "target of exactly max_uri",
     RAW("GET " T64 H11 "\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = T64,
              .path = T64,
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 1}},
    {.name = "header section of exactly max_header_size",
     RAW("GET /" H11 "X: " X240 "\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "/",
              .path = "/",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 2}},
    {.name = "exactly max_headers fields",
     RAW("GET /" H11 "B: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_GET,
              .method_name = "GET",
              .version = 11,
              .target = "/",
              .path = "/",
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 8}},
    {.name = "every head limit reached at once",
     RAW("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nPROPPATCH " T64 H11
         "B: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nY: " X198 "\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_OTHER,
              .method_name = "PROPPATCH",
              .version = 11,
              .target = T64,
              .path = T64,
              .host = "a",
              .content_length = NO_CL,
              .keep_alive = true,
              .nfields = 8}},
    {.name = "Content-Length of exactly max_body_size",
     RAW(CL_POST("64") X64),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 11,
              .target = "/up",
              .path = "/up",
              .host = "a",
              .content_length = 64,
              .keep_alive = true,
              .nfields = 2,
              BODY(X64)}},
    {.name = "chunked body of exactly max_body_size",
     RAW(CHUNKED_POST "20\r\n" X32 "\r\n20\r\n" X32 "\r\n0\r\n\r\n"),
     .status = HTTP_DONE,
     .want = {.method = METHOD_POST,
              .method_name = "POST",
              .version = 11,
              .target = "/up",
              .path = "/up",
              .host = "a",
              .content_length = NO_CL,
              .chunked = true,
              .keep_alive = true,
              .nfields = 2,
              BODY(X64)}},

    /* ---- incomplete messages wait for more ---- */
    {.name = "incomplete head", RAW("GET / HTTP/1.1\r\nHost: a\r\n"), .status = HTTP_AGAIN},
    {.name = "incomplete Content-Length body", RAW(CL_POST("5") "hell"), .status = HTTP_AGAIN},
    {.name = "chunked body without its last chunk",
     RAW(CHUNKED_POST "5\r\nhello\r\n"),
     .status = HTTP_AGAIN},
    {.name = "chunked body without the final CRLF",
     RAW(CHUNKED_POST "5\r\nhello\r\n0\r\n"),
     .status = HTTP_AGAIN},

    /* ---- framing: Content-Length and Transfer-Encoding ---- */
    REFUSE("Content-Length then Transfer-Encoding",
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: "
           "chunked\r\n\r\n0\r\n\r\n",
           400),
    REFUSE("Transfer-Encoding then Content-Length",
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: "
           "5\r\n\r\n0\r\n\r\n",
           400),
    REFUSE("two different Content-Lengths",
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    REFUSE("duplicate identical Content-Length",
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    REFUSE("Content-Length as a list", CL_POST("3, 3") "abc", 400),
    REFUSE("Content-Length +3", CL_POST("+3") "abc", 400),
    REFUSE("Content-Length 3 4", CL_POST("3 4") "abc", 400),
    REFUSE("Content-Length -1", CL_POST("-1"), 400),
    REFUSE("Content-Length in hex", CL_POST("0x3") "abc", 400),
    REFUSE("Content-Length empty", CL_POST(""), 400),
    REFUSE("Content-Length over 64 bits", CL_POST("99999999999999999999999"), 400),
    REFUSE("Transfer-Encoding gzip",
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    REFUSE("Transfer-Encoding identity",
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501),
    REFUSE("Transfer-Encoding gzip, chunked",
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    REFUSE("Transfer-Encoding chunked, gzip",
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    REFUSE("Transfer-Encoding chunked, chunked",
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
           400),
    REFUSE("two Transfer-Encoding: chunked fields",
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
           "chunked\r\n\r\n0\r\n\r\n",
           400),
    REFUSE("empty Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n",
           400),
    REFUSE("Transfer-Encoding in HTTP/1.0",
           "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),

    /* ---- chunked framing ---- */
    REFUSE("chunk size not hex", CHUNKED_POST "g\r\nabc\r\n0\r\n\r\n", 400),
    REFUSE("chunk size with 0x", CHUNKED_POST "0x3\r\nabc\r\n0\r\n\r\n", 400),
    REFUSE("chunk size negative", CHUNKED_POST "-3\r\nabc\r\n0\r\n\r\n", 400),
    REFUSE("chunk size of 17 digits", CHUNKED_POST "00000000000000003\r\nabc\r\n0\r\n\r\n", 400),
    REFUSE("chunk size missing", CHUNKED_POST "\r\nabc\r\n0\r\n\r\n", 400),
    REFUSE("chunk size then whitespace, no extension", CHUNKED_POST "3 \r\nabc\r\n0\r\n\r\n", 400),
    REFUSE("bare LF in a chunk extension", CHUNKED_POST "3;a\nb\r\nabc\r\n0\r\n\r\n", 400),
    REFUSE("bare CR in a chunk extension", CHUNKED_POST "3;a\rb\r\nabc\r\n0\r\n\r\n", 400),
    REFUSE("chunk size line ended by LF", CHUNKED_POST "3\nabc\r\n0\r\n\r\n", 400),
    REFUSE("chunk size line ended by CR", CHUNKED_POST "3\rabc\r\n0\r\n\r\n", 400),
    REFUSE("chunk data not followed by CRLF", CHUNKED_POST "3\r\nabcd\r\n0\r\n\r\n", 400),
    REFUSE("chunk data followed by LF only", CHUNKED_POST "3\r\nabc\n0\r\n\r\n", 400),
    REFUSE("last chunk followed by LF only", CHUNKED_POST "0\r\n\n", 400),
    REFUSE("bare CR in a trailer", CHUNKED_POST "0\r\nX: a\rb\r\n\r\n", 400),
    REFUSE("folded trailer line", CHUNKED_POST "0\r\nX: a\r\n b\r\n\r\n", 400),
    REFUSE("whitespace before the colon of a trailer", CHUNKED_POST "0\r\nX : a\r\n\r\n", 400),
    REFUSE("chunk size line longer than 4096 bytes",
           CHUNKED_POST "1;" X1K X1K X1K X1K "\r\nz\r\n0\r\n\r\n", 400),

    /* ---- field syntax ---- */
    REFUSE("whitespace before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    REFUSE("tab before the colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
    REFUSE("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", 400),
    REFUSE("obs-fold with a tab", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n", 400),
    REFUSE("whitespace before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    REFUSE("field line without a colon", "GET / HTTP/1.1\r\nHost: a\r\nXyz\r\n\r\n", 400),
    REFUSE("empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 400),
    REFUSE("field name with a non-token character", "GET / HTTP/1.1\r\nHost: a\r\nX@Y: v\r\n\r\n",
           400),
    REFUSE("NUL in a field value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400),
    REFUSE("0x01 in a field value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\001b\r\n\r\n", 400),
    REFUSE("DEL in a field value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\177b\r\n\r\n", 400),

    /* ---- Host ---- */
    REFUSE("HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400),
    REFUSE("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    REFUSE("two identical Hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400),
    REFUSE("Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    REFUSE("Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    REFUSE("Host with userinfo", "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400),

    /* ---- line endings ---- */
    REFUSE("bare LF line endings", "GET / HTTP/1.1\nHost: a\n\n", 400),
    REFUSE("bare LF ending a field line", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
    REFUSE("bare LF ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    REFUSE("bare LF before the request line", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("bare CR inside a field value", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
    REFUSE("bare CR after the colon",
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nX: \rb\r\n\r\nabc", 400),
    REFUSE("bare CR starting a field line",
           "GET / HTTP/1.1\r\nHost: a\r\n\rContent-Length: 5\r\n\r\nhello", 400),
    REFUSE("bare CR hiding a field from http-parser",
           "POST / HTTP/1.1\r\nHost: a\r\nX: \rContent-Length: 5\r\n\r\nhello", 400),
    REFUSE("bare CR before the final CRLF", "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400),
    REFUSE("bare CR line before the final CRLF", "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n\r\n", 400),
    REFUSE("too many empty lines before the request",
           "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),

    /* ---- request line ---- */
    REFUSE("double space in the request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("double space before the version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("space before the method", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("space after the version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
    REFUSE("tab as a separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("lowercase http version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("version without a minor", "GET / HTTP/1\r\nHost: a\r\n\r\n", 400),
    REFUSE("version with two minor digits", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
    REFUSE("no version (HTTP/0.9 style)", "GET /\r\n\r\n", 400),
    REFUSE("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    REFUSE("HTTP/0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
    REFUSE("unknown method", "FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
    REFUSE("lowercase method", "get / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
    REFUSE("CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
    /* the same verdict however the bytes arrive: an authority-form target
     * starts with a digit or '[' (refused early as 400 once, whole as 501) */
    REFUSE("CONNECT to an address", "CONNECT 10.0.0.1:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
    REFUSE("CONNECT to [v6]", "CONNECT [::1]:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
    REFUSE("a method longer than any known",
           "ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
    REFUSE("method with a non-token character", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("method with a control character", "\001GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),

    /* ---- target ---- */
    REFUSE("NUL in the target", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("0x01 in the target", "GET /a\001b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("DEL in the target", "GET /a\177b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("fragment in the target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("dot-dot above the root", "GET /../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("dot-dot above the root, later", "GET /a/../../b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("encoded dot-dot above the root", "GET /%2e%2E/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("malformed percent escape", "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("encoded NUL", "GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("asterisk target outside OPTIONS", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("target without a leading slash", "GET index.html HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    REFUSE("absolute-form with another scheme", "GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),

    /* ---- Expect ---- */
    REFUSE("Expect other than 100-continue",
           "POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\nhi", 417),

    /* ---- limits ---- */
    REFUSE("target longer than max_uri", "GET " T64 "y" H11 "\r\n", 414),
    REFUSE("target longer than max_uri, line not complete", "GET /" X64 X64, 414),
    REFUSE("header section over max_header_size", "GET /" H11 "X: " X240 "x\r\n\r\n", 431),
    REFUSE("header section over max_header_size, not complete", "GET /" H11 "X: " X240 X16, 431),
    REFUSE("more than max_headers fields",
           "GET /" H11 "B: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\nI: 1\r\n\r\n", 431),
    REFUSE("Content-Length over max_body_size", CL_POST("65") X64 "x", 413),
    REFUSE("chunked body over max_body_size",
           CHUNKED_POST "20\r\n" X32 "\r\n20\r\n" X32 "\r\n1\r\nx\r\n0\r\n\r\n", 413),
    REFUSE("one chunk over max_body_size", CHUNKED_POST "41\r\n" X64 "x\r\n0\r\n\r\n", 413),
    REFUSE("trailer section over max_header_size",
           CHUNKED_POST "1\r\nz\r\n0\r\nT: " X240 X32 "\r\n\r\n", 431),
};

#define NCASES (sizeof cases / sizeof cases[0])

/* ---- running a case ---------------------------------------------------- */

static const char *status_name(int rc, char *text, size_t size) {
    if (rc == HTTP_DONE) return "HTTP_DONE";
    if (rc == HTTP_AGAIN) return "HTTP_AGAIN";
    if (rc == NOT_ALL_TAKEN) return "HTTP_AGAIN with bytes left untaken";
    snprintf(text, size, "%d", rc);
    return text;
}

/* Feeds buf[0, len) the way a connection does: the bytes arrive so that
 * ends[i] of them are there at step i (ends[n - 1] == len). http_msg_head()
 * sees the whole buffer so far; http_msg_body() only the bytes not yet given
 * to it. On HTTP_DONE *used is where the message ends in buf, and *has_body
 * says whether the head announced a body. */
static int feed(struct http_msg *m, char *buf, const size_t *ends, size_t n, size_t *used,
                bool *has_body) {
    bool in_head = true;
    *has_body = false;
    size_t body_from = 0;
    http_msg_start(m, &limits);
    for (size_t i = 0; i < n; i++) {
        size_t avail = ends[i];
        if (in_head) {
            size_t head_len = 0;
            int rc = http_msg_head(m, buf, avail, &head_len);
            if (rc == HTTP_AGAIN) continue;
            if (rc != HTTP_DONE) return rc;
            *has_body = http_msg_has_body(m);
            if (!*has_body) {
                *used = head_len;
                return HTTP_DONE;
            }
            http_msg_keep_body(m);
            in_head = false;
            body_from = head_len;
        }
        if (avail == body_from) continue;
        size_t taken = 0;
        int rc = http_msg_body(m, buf + body_from, avail - body_from, &taken);
        if (rc == HTTP_AGAIN) {
            /* the connection drops what was given: all of it must be taken */
            if (taken != avail - body_from) return NOT_ALL_TAKEN;
            body_from = avail;
            continue;
        }
        if (rc != HTTP_DONE) return rc;
        *used = body_from + taken;
        return HTTP_DONE;
    }
    return HTTP_AGAIN;
}

static bool str_is(struct http_str s, const char *want) {
    if (!want) return s.p == NULL;
    return s.p != NULL && s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static void print_str(const char *what, struct http_str s, const char *want) {
    if (s.p)
        print_error("    %s: got \"%.*s\", want \"%s\"\n", what, (int)s.len, s.p,
                    want ? want : "(none)");
    else
        print_error("    %s: got (none), want \"%s\"\n", what, want ? want : "(none)");
}

/* Compares the outcome with the case's expectation; returns the mismatches. */
static int check_outcome(struct http_msg *m, const struct parse_case *c, int rc, size_t used,
                         bool has_body, const char *how) {
    int bad = 0;
    if (rc != c->status) {
        char got[16], want[16];
        print_error("%s (%s): got %s, want %s (%s)\n", c->name, how,
                    status_name(rc, got, sizeof got), status_name(c->status, want, sizeof want),
                    http_msg_error(m));
        return 1;
    }
    if (rc >= 400 && http_msg_error(m)[0] == '\0') {
        print_error("%s (%s): refused without a reason for the log\n", c->name, how);
        return 1;
    }
    if (rc != HTTP_DONE) return 0;

    const struct http_request *r = http_msg_request(m);
    const struct want *w = &c->want;
#define MISMATCH(...)                                                                              \
    (bad++ == 0 ? print_error("%s (%s):\n", c->name, how) : (void)0), print_error(__VA_ARGS__)
    if (used != c->raw_len) MISMATCH("    used %zu bytes, the message has %zu\n", used, c->raw_len);
    if (r->method != w->method)
        MISMATCH("    method %d, want %d\n", (int)r->method, (int)w->method);
    if (!str_is(r->method_name, w->method_name)) {
        MISMATCH("    method_name\n");
        print_str("method_name", r->method_name, w->method_name);
    }
    if (r->version != w->version) MISMATCH("    version %u, want %u\n", r->version, w->version);
    if (!str_is(r->target, w->target)) {
        MISMATCH("    target\n");
        print_str("target", r->target, w->target);
    }
    if (!r->path || strlen(r->path) != r->path_len || strcmp(r->path, w->path) != 0)
        MISMATCH("    path \"%s\" (len %zu), want \"%s\"\n", r->path ? r->path : "(null)",
                 r->path_len, w->path);
    if (!str_is(r->query, w->query)) {
        MISMATCH("    query\n");
        print_str("query", r->query, w->query);
    }
    if (!str_is(r->host, w->host)) {
        MISMATCH("    host\n");
        print_str("host", r->host, w->host);
    }
    if (r->content_length != w->content_length)
        MISMATCH("    content_length %lld, want %lld\n", (long long)r->content_length,
                 (long long)w->content_length);
    if (r->chunked != w->chunked) MISMATCH("    chunked %d, want %d\n", r->chunked, w->chunked);
    if (r->keep_alive != w->keep_alive)
        MISMATCH("    keep_alive %d, want %d\n", r->keep_alive, w->keep_alive);
    if (r->expect_continue != w->expect_continue)
        MISMATCH("    expect_continue %d, want %d\n", r->expect_continue, w->expect_continue);
    if (r->nfields != w->nfields) MISMATCH("    %u fields, want %u\n", r->nfields, w->nfields);
    if (w->fields && r->nfields == w->nfields) {
        char got[1024];
        size_t n = 0;
        for (unsigned i = 0; i < r->nfields && n < sizeof got; i++)
            n += (size_t)snprintf(got + n, sizeof got - n, "%.*s=%.*s\n",
                                  (int)r->fields[i].name.len, r->fields[i].name.p,
                                  (int)r->fields[i].value.len, r->fields[i].value.p);
        if (strcmp(got, w->fields) != 0) MISMATCH("    fields:\n%s  want:\n%s", got, w->fields);
    }
    if (has_body != (w->body != NULL))
        MISMATCH("    has_body %d, want %d\n", has_body, w->body != NULL);
    else if (w->body && (r->body.len != w->body_len ||
                         (w->body_len && memcmp(r->body.p, w->body, w->body_len) != 0)))
        MISMATCH("    body \"%.*s\" (%zu bytes), want \"%s\" (%zu bytes)\n", (int)r->body.len,
                 r->body.p ? r->body.p : "", r->body.len, w->body, w->body_len);
#undef MISMATCH
    return bad;
}

/* The message and what follows it, in one allocation of the exact size so
 * that AddressSanitizer sees any read past the bytes received. */
static char *case_bytes(const struct parse_case *c, size_t *len) {
    *len = c->raw_len + c->next_len;
    char *buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    memcpy(buf, c->raw, c->raw_len);
    if (c->next_len) memcpy(buf + c->raw_len, c->next, c->next_len);
    return buf;
}

static void test_one_piece(void **state) {
    const struct parse_case *c = *state;
    size_t len, used = 0;
    bool has_body = false;
    char *buf = case_bytes(c, &len);
    struct http_msg *m = http_msg_new();
    assert_non_null(m);
    int rc = feed(m, buf, &len, 1, &used, &has_body);
    int bad = check_outcome(m, c, rc, used, has_body, "one piece");
    http_msg_free(m);
    free(buf);
    assert_int_equal(bad, 0);
}

/* Every split into two and (for shorter cases) three pieces, then one byte at
 * a time; one http_msg serves them all, as it serves a connection. */
static void test_split(void **state) {
    const struct parse_case *c = *state;
    size_t len, used = 0;
    bool has_body = false;
    char *buf = case_bytes(c, &len);
    struct http_msg *m = http_msg_new();
    assert_non_null(m);
    char how[64];
    int bad = 0;

    for (size_t i = 1; i < len && !bad; i++) {
        size_t ends[2] = {i, len};
        int rc = feed(m, buf, ends, 2, &used, &has_body);
        snprintf(how, sizeof how, "split at %zu", i);
        bad = check_outcome(m, c, rc, used, has_body, how);
    }
    for (size_t i = 1; len <= MAX_THREE_PIECE_LEN && i < len && !bad; i++)
        for (size_t j = i + 1; j < len && !bad; j++) {
            size_t ends[3] = {i, j, len};
            int rc = feed(m, buf, ends, 3, &used, &has_body);
            snprintf(how, sizeof how, "split at %zu and %zu", i, j);
            bad = check_outcome(m, c, rc, used, has_body, how);
        }
    if (!bad) {
        size_t *ends = malloc(len * sizeof *ends);
        assert_non_null(ends);
        for (size_t i = 0; i < len; i++) ends[i] = i + 1;
        int rc = feed(m, buf, ends, len, &used, &has_body);
        bad = check_outcome(m, c, rc, used, has_body, "one byte at a time");
        free(ends);
    }
    http_msg_free(m);
    free(buf);
    assert_int_equal(bad, 0);
}

/* ---- the rest of the interface ----------------------------------------- */

static const struct http_str *must_find(const struct http_request *r, const char *name) {
    const struct http_str *v = http_find(r, name);
    assert_non_null(v);
    return v;
}

static void assert_str(struct http_str s, const char *want) {
    assert_non_null(s.p);
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.p, want, s.len);
}

static void test_find_is_case_insensitive(void **state) {
    static const char raw[] = "GET / HTTP/1.1\r\nhost: a\r\nContent-TYPE: text/html\r\n"
                              "X-Dup: first\r\nx-dup: second\r\nContent: c\r\n\r\n";
    struct http_msg *m = http_msg_new();
    size_t used;
    http_msg_start(m, &limits);
    assert_int_equal(http_msg_head(m, raw, sizeof raw - 1, &used), HTTP_DONE);
    const struct http_request *r = http_msg_request(m);

    assert_str(*must_find(r, "content-type"), "text/html");
    assert_str(*must_find(r, "host"), "a");
    assert_str(r->host, "a");
    assert_str(*must_find(r, "x-dup"), "first"); /* the first of repeated fields */
    assert_str(*must_find(r, "content"), "c");   /* a prefix is not a match */
    assert_null(http_find(r, "content-length"));
    assert_null(http_find(r, "x-du"));

    assert_true(http_str_ieq(r->fields[1].name, "content-type"));
    assert_false(http_str_ieq(r->fields[1].name, "content-typ"));
    assert_false(http_str_ieq(r->fields[1].name, "content-types"));
    http_msg_free(m);
}

/* The connection moves its buffer while reading a body: after the rebase the
 * request reads right from the new place, the old one being gone. */
static void test_rebase(void **state) {
    static const char raw[] = "POST /p/a%20th?q=1 HTTP/1.1\r\nHost: example.com\r\n"
                              "X-Long: some value\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    const size_t total = sizeof raw - 1;
    char *old = malloc(total);
    assert_non_null(old);
    memcpy(old, raw, total);

    struct http_msg *m = http_msg_new();
    size_t head_len, used;
    http_msg_start(m, &limits);
    assert_int_equal(http_msg_head(m, old, total, &head_len), HTTP_DONE);
    assert_true(http_msg_has_body(m));
    http_msg_keep_body(m);
    /* the first chunk arrives before the move */
    assert_int_equal(http_msg_body(m, old + head_len, 10, &used), HTTP_AGAIN);
    assert_int_equal(used, 10);

    char *moved = malloc(head_len + 64);
    assert_non_null(moved);
    memcpy(moved, old, head_len);
    memset(old, '#', total);
    http_msg_rebase(m, old, moved, head_len);
    free(old); /* AddressSanitizer: nothing may still point here */

    const struct http_request *r = http_msg_request(m);
    assert_str(r->target, "/p/a%20th?q=1");
    assert_str(r->path_raw, "/p/a%20th");
    assert_str(r->query, "q=1");
    assert_string_equal(r->path, "/p/a th");
    assert_str(r->host, "example.com");
    assert_int_equal(r->nfields, 3);
    assert_str(r->fields[0].name, "Host");
    assert_str(r->fields[1].name, "X-Long");
    assert_str(r->fields[1].value, "some value");
    assert_str(*must_find(r, "transfer-encoding"), "chunked");
    for (unsigned i = 0; i < r->nfields; i++) {
        assert_true(r->fields[i].name.p >= moved && r->fields[i].name.p < moved + head_len);
        assert_true(r->fields[i].value.p >= moved && r->fields[i].value.p < moved + head_len);
    }

    /* the rest of the body comes into the new buffer, after the head */
    const char *rest = raw + head_len + 10;
    size_t rest_len = total - head_len - 10;
    memcpy(moved + head_len, rest, rest_len);
    assert_int_equal(http_msg_body(m, moved + head_len, rest_len, &used), HTTP_DONE);
    assert_int_equal(used, rest_len);
    assert_str(r->body, "hello world");
    assert_str(r->target, "/p/a%20th?q=1");
    http_msg_free(m);
    free(moved);
}

/* The connection's loop: one http_msg, requests one after another from one
 * buffer, each starting where the previous one ended. */
static void test_pipelined_requests_in_order(void **state) {
    static char raw[] = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                        "POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                        "POST /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                        "\r\n2\r\nde\r\n0\r\n\r\n"
                        "GET /four?x HTTP/1.0\r\n\r\n";
    static const char *const paths[] = {"/one", "/two", "/three", "/four"};
    static const char *const bodies[] = {NULL, "abc", "de", NULL};
    struct http_msg *m = http_msg_new();
    size_t off = 0, len = sizeof raw - 1;
    for (unsigned i = 0; i < 4; i++) {
        size_t head_len, used;
        http_msg_start(m, &limits);
        assert_int_equal(http_msg_head(m, raw + off, len - off, &head_len), HTTP_DONE);
        const struct http_request *r = http_msg_request(m);
        assert_string_equal(r->path, paths[i]);
        off += head_len;
        assert_int_equal(http_msg_has_body(m), bodies[i] != NULL);
        if (bodies[i]) {
            http_msg_keep_body(m);
            assert_int_equal(http_msg_body(m, raw + off, len - off, &used), HTTP_DONE);
            assert_str(r->body, bodies[i]);
            off += used;
        }
    }
    assert_int_equal(off, len);
    http_msg_free(m);
}

/* A body nobody asked to keep is still read and checked, but not stored. */
static void test_body_dropped_unless_kept(void **state) {
    static char raw[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    struct http_msg *m = http_msg_new();
    size_t head_len, used;
    http_msg_start(m, &limits);
    assert_int_equal(http_msg_head(m, raw, sizeof raw - 1, &head_len), HTTP_DONE);
    assert_int_equal(http_msg_body(m, raw + head_len, sizeof raw - 1 - head_len, &used), HTTP_DONE);
    assert_int_equal(used, 5);
    assert_int_equal(http_msg_request(m)->body.len, 0);
    http_msg_free(m);
}

int main(void) {
    http_init(&limits);
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_find_is_case_insensitive),
        cmocka_unit_test(test_rebase),
        cmocka_unit_test(test_pipelined_requests_in_order),
        cmocka_unit_test(test_body_dropped_unless_kept),
    };
    const size_t nfixed = sizeof fixed / sizeof fixed[0];
    size_t ntests = nfixed + 2 * NCASES;
    struct CMUnitTest *tests = calloc(ntests, sizeof *tests);
    char **names = calloc(2 * NCASES, sizeof *names);
    if (!tests || !names) return 1;
    memcpy(tests, fixed, sizeof fixed);
    for (size_t i = 0; i < NCASES; i++) {
        for (int split = 0; split < 2; split++) {
            size_t k = 2 * i + (size_t)split;
            size_t n = strlen(cases[i].name) + 16;
            names[k] = malloc(n);
            if (!names[k]) return 1;
            snprintf(names[k], n, "%s: %s", split ? "split" : "whole", cases[i].name);
            tests[nfixed + k] = (struct CMUnitTest){
                .name = names[k],
                .test_func = split ? test_split : test_one_piece,
                .initial_state = (void *)&cases[i],
            };
        }
    }
    int failed = _cmocka_run_group_tests("test_http", tests, ntests, NULL, NULL);
    for (size_t k = 0; k < 2 * NCASES; k++) free(names[k]);
    free(names);
    free(tests);
    return failed;
}
