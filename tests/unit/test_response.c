/* Unit tests for workers/response.c and workers/buf.c: the exact bytes of a
 * response head and its framing (Content-Length, chunked, close), error
 * bodies, chunks, the Date header, and the byte buffers with their block
 * cache that hold a connection's input and output. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "workers/buf.h"
#include "workers/response.h"

/* Sun, 06 Nov 1994 08:49:37 GMT, the example date of RFC 9110 */
#define T_RFC  ((time_t)784111777)
#define DATE   "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
#define SERVER "Server: preforkd\r\n"

static struct bufcache cache;

static int setup_cache(void **state) {
    bufcache_init(&cache, 4);
    return 0;
}

static int teardown_cache(void **state) {
    bufcache_trim(&cache);
    return 0;
}

/* Asserts that out holds exactly want. */
static void assert_bytes(const char *got, size_t got_len, const char *want, size_t want_len) {
    if (got_len != want_len || memcmp(got, want, want_len) != 0) {
        print_error("got (%zu bytes):\n%.*s\nwant (%zu bytes):\n%.*s\n", got_len, (int)got_len, got,
                    want_len, (int)want_len, want);
        fail();
    }
}

static void assert_out(const struct buf *out, const char *want) {
    assert_bytes(buf_head(out), buf_len(out), want, strlen(want));
}

/* Serializes r for a request of the given version into a fresh buffer. */
static void serialize(const struct response *r, unsigned version, bool head, bool keep_alive,
                      struct buf *out, bool *chunked) {
    const struct response_framing f = {
        .version = version,
        .head_request = head,
        .keep_alive = keep_alive,
        .server = "preforkd",
    };
    memset(out, 0, sizeof *out);
    *chunked = true; /* must be cleared when the body is not chunked */
    assert_int_equal(response_serialize(r, &f, out, &cache, T_RFC, chunked), 0);
}

static bool fd_is_open(int fd) {
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

/* ---- response_serialize ------------------------------------------------- */

static void test_mem_body(void **state) {
    struct response r;
    struct buf out;
    bool chunked;
    response_init(&r);
    r.content_type = "text/plain";
    assert_int_equal(response_append(&r, "hello", 5), 0);
    assert_int_equal(response_append(&r, " world", 6), 0);
    serialize(&r, 11, false, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Type: text/plain\r\n"
                     "Content-Length: 11\r\n\r\nhello world");
    assert_false(chunked);
    buf_release(&out, &cache);
    response_free(&r);
}

static void test_empty_body_has_zero_length(void **state) {
    struct response r;
    struct buf out;
    bool chunked;
    response_init(&r);
    serialize(&r, 11, false, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Length: 0\r\n\r\n");
    assert_false(chunked);
    buf_release(&out, &cache);
    response_free(&r);
}

static void test_file_body_is_not_copied(void **state) {
    struct response r;
    struct buf out;
    bool chunked;
    response_init(&r);
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    r.content_type = "application/octet-stream";
    response_file(&r, fd, 10, 1234567);
    serialize(&r, 11, false, true, &out, &chunked);
    /* the head only: the file follows with sendfile */
    assert_out(&out, "HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Type: application/octet-stream\r\n"
                     "Content-Length: 1234567\r\n\r\n");
    assert_false(chunked);
    assert_int_equal(r.file_off, 10);
    /* the response owns the descriptor */
    assert_true(fd_is_open(fd));
    response_free(&r);
    assert_false(fd_is_open(fd));

    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    response_init(&r);
    response_file(&r, fd, 0, 1);
    response_reset(&r); /* reused for the next request: the file is closed */
    assert_false(fd_is_open(fd));
    assert_int_equal(r.fd, -1);
    response_free(&r);
    buf_release(&out, &cache);
}

static unsigned releases;

static void count_release(void *hold) {
    (*(unsigned *)hold)++;
}

/* A body or file borrowed from a holder (the open-file cache): sent like
 * one of our own, and given back exactly once when the response is done. */
static void test_borrowed_body_and_file(void **state) {
    struct response r;
    struct buf out;
    bool chunked;
    static const char cached[] = "cached file";
    response_init(&r);
    releases = 0;
    r.content_type = "text/plain";
    r.body = BODY_DATA;
    r.data = cached + 7;
    r.data_len = 4;
    response_hold(&r, &releases, count_release);
    serialize(&r, 11, false, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Type: text/plain\r\n"
                     "Content-Length: 4\r\n\r\nfile");
    buf_release(&out, &cache);
    serialize(&r, 11, true, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Type: text/plain\r\n"
                     "Content-Length: 4\r\n\r\n");
    buf_release(&out, &cache);
    assert_int_equal(releases, 0);
    response_reset(&r);
    assert_int_equal(releases, 1);
    response_reset(&r);
    assert_int_equal(releases, 1);

    /* a held file stays open: it belongs to the holder */
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    response_file(&r, fd, 0, 99);
    response_hold(&r, &releases, count_release);
    serialize(&r, 11, false, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Length: 99\r\n\r\n");
    buf_release(&out, &cache);
    response_free(&r);
    assert_int_equal(releases, 2);
    assert_true(fd_is_open(fd));
    close(fd);

    /* a second holder replaces the first, which is given back at once */
    unsigned first = 0, second = 0;
    response_init(&r);
    response_hold(&r, &first, count_release);
    response_hold(&r, &second, count_release);
    assert_int_equal(first, 1);
    assert_int_equal(second, 0);
    response_free(&r);
    assert_int_equal(second, 1);
}

static void test_head_keeps_length_drops_body(void **state) {
    struct response r;
    struct buf out;
    bool chunked;
    response_init(&r);
    r.content_type = "text/html";
    assert_int_equal(response_append(&r, "<p>hi</p>", 9), 0);
    serialize(&r, 11, true, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 200 OK\r\n" SERVER DATE
                     "Content-Type: text/html\r\nContent-Length: 9\r\n\r\n");
    assert_false(chunked);
    buf_release(&out, &cache);
    response_free(&r);
}

static void test_no_length_for_204_and_304(void **state) {
    struct response r;
    struct buf out;
    bool chunked;
    response_init(&r);
    r.status = 204;
    serialize(&r, 11, false, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 204 No Content\r\n" SERVER DATE "\r\n");
    assert_false(chunked);
    buf_release(&out, &cache);

    /* a 304 never carries the body, even one that was filled in */
    response_reset(&r);
    r.status = 304;
    assert_int_equal(response_header(&r, "ETag", "\"%s\"", "v1"), 0);
    assert_int_equal(response_append(&r, "stale", 5), 0);
    serialize(&r, 11, false, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 304 Not Modified\r\n" SERVER DATE "ETag: \"v1\"\r\n\r\n");
    buf_release(&out, &cache);

    /* nor does a streamed 204 announce chunks */
    response_reset(&r);
    r.status = 204;
    r.body = BODY_STREAM;
    serialize(&r, 11, false, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 204 No Content\r\n" SERVER DATE "\r\n");
    assert_false(chunked);
    buf_release(&out, &cache);
    response_free(&r);
}

static void test_stream_is_chunked_on_http11(void **state) {
    struct response r;
    struct buf out;
    bool chunked;
    response_init(&r);
    r.content_type = "text/event-stream";
    r.body = BODY_STREAM;
    serialize(&r, 11, false, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Type: text/event-stream\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n");
    assert_true(chunked);
    buf_release(&out, &cache);

    /* HEAD: the same header, but no chunks follow */
    serialize(&r, 11, true, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Type: text/event-stream\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n");
    assert_false(chunked);
    buf_release(&out, &cache);
    response_free(&r);
}

static void test_stream_on_http10_ends_with_close(void **state) {
    struct response r;
    struct buf out;
    bool chunked;
    response_init(&r);
    r.body = BODY_STREAM;
    serialize(&r, 10, false, false, &out, &chunked);
    assert_out(&out, "HTTP/1.1 200 OK\r\n" SERVER DATE "Connection: close\r\n\r\n");
    assert_false(chunked);
    buf_release(&out, &cache);
    response_free(&r);
}

static void test_connection_header(void **state) {
    struct response r;
    struct buf out;
    bool chunked;
    response_init(&r);
    serialize(&r, 11, false, false, &out, &chunked);
    assert_out(&out,
               "HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Length: 0\r\nConnection: close\r\n\r\n");
    buf_release(&out, &cache);

    serialize(&r, 10, false, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 200 OK\r\n" SERVER DATE
                     "Content-Length: 0\r\nConnection: keep-alive\r\n\r\n");
    buf_release(&out, &cache);

    serialize(&r, 10, false, false, &out, &chunked);
    assert_out(&out,
               "HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Length: 0\r\nConnection: close\r\n\r\n");
    buf_release(&out, &cache);
    response_free(&r);
}

static void test_extra_headers(void **state) {
    struct response r;
    struct buf out;
    bool chunked;
    response_init(&r);
    r.status = 301;
    assert_int_equal(response_header(&r, "Location", "%s", "/docs/"), 0);
    assert_int_equal(response_header(&r, "Cache-Control", "max-age=%d", 60), 0);
    assert_int_equal(response_header(&r, "X-Empty", "%s", ""), 0);
    serialize(&r, 11, false, false, &out, &chunked);
    assert_out(&out, "HTTP/1.1 301 Moved Permanently\r\n" SERVER DATE "Content-Length: 0\r\n"
                     "Location: /docs/\r\nCache-Control: max-age=60\r\nX-Empty: \r\n"
                     "Connection: close\r\n\r\n");
    buf_release(&out, &cache);

    /* reset forgets them, and the next response starts clean */
    response_reset(&r);
    serialize(&r, 11, false, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Length: 0\r\n\r\n");
    buf_release(&out, &cache);
    response_free(&r);
}

/* Borrowed lines go out after the copied ones, without a copy; a second
 * block is copied; reset forgets them; a large block is sized for. */
static void test_borrowed_header_lines(void **state) {
    struct response r;
    struct buf out;
    bool chunked;
    static const char lines[] = "X-Frame-Options: DENY\r\nX-Robots-Tag: noindex\r\n";
    response_init(&r);
    assert_int_equal(response_header_lines(&r, lines, sizeof lines - 1), 0);
    assert_ptr_equal(r.lines, lines); /* borrowed */
    assert_int_equal(r.headers_len, 0);
    assert_int_equal(response_header(&r, "Vary", "%s", "Accept-Encoding"), 0);
    assert_int_equal(response_header_lines(&r, "X-Second: 1\r\n", 13), 0);
    serialize(&r, 11, false, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Length: 0\r\n"
                     "Vary: Accept-Encoding\r\nX-Second: 1\r\n"
                     "X-Frame-Options: DENY\r\nX-Robots-Tag: noindex\r\n\r\n");
    buf_release(&out, &cache);

    response_reset(&r);
    assert_null(r.lines);
    serialize(&r, 11, false, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Length: 0\r\n\r\n");
    buf_release(&out, &cache);

    /* 30,000 bytes of borrowed lines: the head's room counts them */
    size_t n = 1000, line = 30;
    char *big = malloc(n * line);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        memcpy(big + i * line, "X-Lines-Of-A-Route: 123456789\r\n", line);
    assert_int_equal(response_header_lines(&r, big, n * line), 0);
    serialize(&r, 11, false, true, &out, &chunked);
    assert_int_equal(buf_len(&out),
                     strlen("HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Length: 0\r\n\r\n") +
                         n * line);
    buf_release(&out, &cache);
    free(big);
    response_free(&r);
}

/* Big headers and a big body: the head is sized right, whatever goes in. */
static void test_large_headers_and_body(void **state) {
    struct response r;
    struct buf out;
    bool chunked;
    response_init(&r);
    char *value = malloc(6000);
    assert_non_null(value);
    memset(value, 'v', 5999);
    value[5999] = '\0';
    for (int i = 0; i < 20; i++) assert_int_equal(response_header(&r, "X-Big", "%s", value), 0);
    char *body = malloc(100000);
    assert_non_null(body);
    memset(body, 'b', 100000);
    assert_int_equal(response_append(&r, body, 100000), 0);
    r.content_type = "application/x-very-long-content-type-name-for-a-test";
    serialize(&r, 10, false, true, &out, &chunked);

    const char *head_end = memmem(buf_head(&out), buf_len(&out), "\r\n\r\n", 4);
    assert_non_null(head_end);
    size_t head_len = (size_t)(head_end + 4 - buf_head(&out));
    assert_int_equal(buf_len(&out) - head_len, 100000);
    assert_memory_equal(head_end + 4, body, 100000);
    assert_non_null(memmem(buf_head(&out), head_len, "Content-Length: 100000\r\n", 24));
    assert_non_null(memmem(buf_head(&out), head_len, "Connection: keep-alive\r\n", 24));
    assert_int_equal(head_len, strlen("HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Type: \r\n"
                                      "Content-Length: 100000\r\nConnection: keep-alive\r\n\r\n") +
                                   strlen(r.content_type) + 20 * (strlen("X-Big: \r\n") + 5999));
    free(value);
    free(body);
    buf_release(&out, &cache);
    response_free(&r);
}

/* Pipelined responses queue behind output not yet written. */
static void test_serialize_appends_to_pending_output(void **state) {
    struct response r;
    struct buf out = {0};
    bool chunked;
    const struct response_framing f = {.version = 11, .keep_alive = true, .server = "preforkd"};
    response_init(&r);
    assert_int_equal(buf_append(&out, &cache, "XXpending|", 10), 0);
    buf_consume(&out, 2); /* partly written already */
    assert_int_equal(response_append(&r, "b", 1), 0);
    assert_int_equal(response_serialize(&r, &f, &out, &cache, T_RFC, &chunked), 0);
    assert_out(&out, "pending|HTTP/1.1 200 OK\r\n" SERVER DATE "Content-Length: 1\r\n\r\nb");
    buf_release(&out, &cache);
    response_free(&r);
}

static void test_error_bodies(void **state) {
    struct response r;
    struct buf out;
    bool chunked;
    response_init(&r);
    /* whatever the handler had set is replaced */
    r.content_type = "text/html";
    assert_int_equal(response_header(&r, "X-Handler", "%d", 1), 0);
    assert_int_equal(response_append(&r, "<html>partial", 13), 0);
    response_error(&r, 404);
    assert_int_equal(r.status, 404);
    serialize(&r, 11, false, true, &out, &chunked);
    assert_out(&out, "HTTP/1.1 404 Not Found\r\n" SERVER DATE "Content-Type: text/plain\r\n"
                     "Content-Length: 14\r\n\r\n404 Not Found\n");
    buf_release(&out, &cache);

    static const struct {
        int status;
        const char *body;
    } errors[] = {
        {400, "400 Bad Request\n"},
        {403, "403 Forbidden\n"},
        {405, "405 Method Not Allowed\n"},
        {413, "413 Content Too Large\n"},
        {414, "414 URI Too Long\n"},
        {417, "417 Expectation Failed\n"},
        {431, "431 Request Header Fields Too Large\n"},
        {500, "500 Internal Server Error\n"},
        {501, "501 Not Implemented\n"},
        {503, "503 Service Unavailable\n"},
        {505, "505 HTTP Version Not Supported\n"},
        {599, "599 Unknown\n"},
    };
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        response_error(&r, errors[i].status);
        assert_int_equal(r.status, errors[i].status);
        assert_int_equal(r.body, BODY_MEM);
        assert_string_equal(r.content_type, "text/plain");
        assert_bytes(r.mem, r.mem_len, errors[i].body, strlen(errors[i].body));
        assert_int_equal(r.headers_len, 0);
    }

    /* an error for a HEAD request: the length of the text, no text */
    response_error(&r, 404);
    serialize(&r, 11, true, false, &out, &chunked);
    assert_out(&out, "HTTP/1.1 404 Not Found\r\n" SERVER DATE "Content-Type: text/plain\r\n"
                     "Content-Length: 14\r\nConnection: close\r\n\r\n");
    buf_release(&out, &cache);
    response_free(&r);
}

static void test_chunk_framing(void **state) {
    struct buf out = {0};
    char big[300];
    memset(big, 'z', sizeof big);
    assert_int_equal(response_chunk(&out, &cache, "hello", 5, true), 0);
    assert_int_equal(response_chunk(&out, &cache, big, sizeof big, true), 0);
    assert_int_equal(response_chunk(&out, &cache, NULL, 0, true), 0);
    char want[400];
    int n = snprintf(want, sizeof want, "5\r\nhello\r\n12c\r\n%.300s\r\n0\r\n\r\n", big);
    assert_bytes(buf_head(&out), buf_len(&out), want, (size_t)n);
    buf_release(&out, &cache);

    /* not chunked (HTTP/1.0): the bytes as they are, nothing at the end */
    assert_int_equal(response_chunk(&out, &cache, "hello", 5, false), 0);
    assert_int_equal(response_chunk(&out, &cache, "!", 1, false), 0);
    assert_int_equal(response_chunk(&out, &cache, NULL, 0, false), 0);
    assert_out(&out, "hello!");
    buf_release(&out, &cache);
}

static void test_date_format(void **state) {
    assert_string_equal(http_date_now(T_RFC), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_string_equal(http_date_now(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    /* formatted once per second, but never stale */
    assert_string_equal(http_date_now(T_RFC), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_string_equal(http_date_now(T_RFC + 1), "Sun, 06 Nov 1994 08:49:38 GMT");
    assert_string_equal(http_date_now((time_t)1709164800), "Thu, 29 Feb 2024 00:00:00 GMT");
    assert_string_equal(http_date_now((time_t)253402300799), "Fri, 31 Dec 9999 23:59:59 GMT");
    assert_int_equal(strlen(http_date_now(T_RFC)), 29);
}

/* ---- buf ---------------------------------------------------------------- */

static void fill_pattern(char *p, size_t n, size_t from) {
    for (size_t i = 0; i < n; i++) p[i] = (char)('a' + (from + i) % 26);
}

static void assert_pattern(const char *p, size_t n, size_t from) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (char)('a' + (from + i) % 26)) fail_msg("byte %zu differs", i);
}

static void test_buf_append_grows_and_keeps_bytes(void **state) {
    struct buf b = {0};
    char chunk[1000];
    assert_int_equal(buf_len(&b), 0);
    for (size_t off = 0; off < 10000; off += sizeof chunk) {
        fill_pattern(chunk, sizeof chunk, off);
        assert_int_equal(buf_append(&b, &cache, chunk, sizeof chunk), 0);
        assert_true(b.cap >= buf_len(&b));
        if (off == 0) assert_int_equal(b.cap, BUF_BLOCK);
    }
    assert_int_equal(buf_len(&b), 10000);
    assert_int_equal(b.cap, 4 * BUF_BLOCK); /* doubled, not grown byte by byte */
    assert_pattern(buf_head(&b), 10000, 0);
    buf_release(&b, &cache);
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
    assert_int_equal(buf_len(&b), 0);
}

static void test_buf_consume(void **state) {
    struct buf b = {0};
    assert_int_equal(buf_append(&b, &cache, "0123456789", 10), 0);
    buf_consume(&b, 4);
    assert_int_equal(buf_len(&b), 6);
    assert_memory_equal(buf_head(&b), "456789", 6);
    buf_consume(&b, 6);
    /* emptied: back to the start, all the room free again */
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(b.start, 0);
    assert_int_equal(buf_room(&b), BUF_BLOCK);
    buf_release(&b, &cache);
}

static void test_buf_reserve_moves_before_growing(void **state) {
    struct buf b = {0};
    char data[4000];
    fill_pattern(data, sizeof data, 0);
    assert_int_equal(buf_append(&b, &cache, data, sizeof data), 0);
    char *block = b.data;
    buf_consume(&b, 3000);
    assert_int_equal(buf_reserve(&b, &cache, 2000, BUF_BLOCK), 0);
    assert_ptr_equal(b.data, block); /* moved to the front, same block */
    assert_int_equal(b.cap, BUF_BLOCK);
    assert_int_equal(b.start, 0);
    assert_true(buf_room(&b) >= 2000);
    assert_pattern(buf_head(&b), 1000, 3000);
    buf_release(&b, &cache);
}

static void test_buf_reserve_limit(void **state) {
    struct buf b = {0};
    errno = 0;
    assert_int_equal(buf_reserve(&b, &cache, 5000, BUF_BLOCK), -1);
    assert_int_equal(errno, ENOBUFS);
    assert_null(b.data);

    char data[3000];
    fill_pattern(data, sizeof data, 0);
    assert_int_equal(buf_append(&b, &cache, data, sizeof data), 0);
    errno = 0;
    assert_int_equal(buf_reserve(&b, &cache, 2000, BUF_BLOCK), -1);
    assert_int_equal(errno, ENOBUFS);
    assert_int_equal(buf_len(&b), 3000); /* a refusal changes nothing */
    assert_pattern(buf_head(&b), 3000, 0);
    assert_int_equal(buf_reserve(&b, &cache, 1096, BUF_BLOCK), 0); /* what is left fits */

    /* growth stops at the limit, not at the next power of two */
    assert_int_equal(buf_reserve(&b, &cache, 2000, 6000), 0);
    assert_int_equal(b.cap, 6000);
    assert_pattern(buf_head(&b), 3000, 0);
    buf_release(&b, &cache);
}

/* A limit below what the buffer already holds can never be met. Run in a
 * child so that a write past the new block fails this test, not the rest. */
static void test_buf_reserve_limit_below_held_bytes(void **state) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct buf b = {0};
        char data[8000];
        fill_pattern(data, sizeof data, 0);
        if (buf_append(&b, NULL, data, sizeof data) < 0) _exit(2);
        errno = 0;
        int rc = buf_reserve(&b, NULL, 1000, BUF_BLOCK);
        bool ok = rc == -1 && errno == ENOBUFS && buf_len(&b) == 8000 &&
                  memcmp(buf_head(&b), data, sizeof data) == 0;
        _exit(ok ? 0 : 3);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("buf_reserve(8000 bytes held, n 1000, limit 4096): %s %d; want -1/ENOBUFS",
                 WIFEXITED(status) ? "child exited with" : "child killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

static void test_bufcache_reuses_blocks(void **state) {
    struct bufcache bc;
    bufcache_init(&bc, 2);
    struct buf a = {0}, b = {0}, c = {0}, d = {0};

    assert_int_equal(buf_reserve(&a, &bc, 1, (size_t)-1), 0);
    char *block = a.data;
    buf_release(&a, &bc);
    assert_int_equal(bc.nfree, 1);
    assert_int_equal(buf_reserve(&b, &bc, 100, (size_t)-1), 0);
    assert_ptr_equal(b.data, block); /* no malloc on the fast path */
    assert_int_equal(bc.nfree, 0);

    /* at most max blocks are kept */
    assert_int_equal(buf_reserve(&a, &bc, 1, (size_t)-1), 0);
    assert_int_equal(buf_reserve(&c, &bc, 1, (size_t)-1), 0);
    buf_release(&a, &bc);
    buf_release(&b, &bc);
    buf_release(&c, &bc);
    assert_int_equal(bc.nfree, 2);

    /* growing out of a block gives the block back; big buffers are not kept */
    assert_int_equal(buf_reserve(&d, &bc, 1, (size_t)-1), 0);
    assert_int_equal(bc.nfree, 1);
    assert_int_equal(buf_append(&d, &bc, "x", 1), 0);
    char big[BUF_BLOCK];
    memset(big, 'y', sizeof big);
    assert_int_equal(buf_append(&d, &bc, big, sizeof big), 0);
    assert_int_equal(d.cap, 2 * BUF_BLOCK);
    assert_int_equal(bc.nfree, 2);
    assert_int_equal(buf_head(&d)[0], 'x');
    buf_release(&d, &bc);
    assert_int_equal(bc.nfree, 2);

    bufcache_trim(&bc); /* LeakSanitizer: every kept block is freed */
    assert_int_equal(bc.nfree, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mem_body),
        cmocka_unit_test(test_empty_body_has_zero_length),
        cmocka_unit_test(test_file_body_is_not_copied),
        cmocka_unit_test(test_borrowed_body_and_file),
        cmocka_unit_test(test_head_keeps_length_drops_body),
        cmocka_unit_test(test_no_length_for_204_and_304),
        cmocka_unit_test(test_stream_is_chunked_on_http11),
        cmocka_unit_test(test_stream_on_http10_ends_with_close),
        cmocka_unit_test(test_connection_header),
        cmocka_unit_test(test_extra_headers),
        cmocka_unit_test(test_borrowed_header_lines),
        cmocka_unit_test(test_large_headers_and_body),
        cmocka_unit_test(test_serialize_appends_to_pending_output),
        cmocka_unit_test(test_error_bodies),
        cmocka_unit_test(test_chunk_framing),
        cmocka_unit_test(test_date_format),
        cmocka_unit_test(test_buf_append_grows_and_keeps_bytes),
        cmocka_unit_test(test_buf_consume),
        cmocka_unit_test(test_buf_reserve_moves_before_growing),
        cmocka_unit_test(test_buf_reserve_limit),
        cmocka_unit_test(test_buf_reserve_limit_below_held_bytes),
        cmocka_unit_test(test_bufcache_reuses_blocks),
    };
    return cmocka_run_group_tests(tests, setup_cache, teardown_cache);
}
