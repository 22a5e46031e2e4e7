/* libFuzzer target: bytes from a client, through the real request reader
 * (strict scanners + http-parser), delivered in pieces the way a connection
 * does: the first input byte picks the piece size; requests are pipelined
 * until one is refused or the bytes run out. Checks the reader's contract:
 * "used" never exceeds what it was given, a parsed request's strings lie in
 * the buffer, and its path is normalized. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workers/http.h"

/* assert() vanishes under NDEBUG; fuzzing checks must not */
#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "check failed: %s (%s:%d)\n", #x, __FILE__, __LINE__);                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const struct http_limits limits = {
    .max_uri = 1024, .max_header_size = 4096, .max_headers = 32, .max_body_size = 1 << 16};

static void check_inside(struct http_str s, const char *buf, size_t len) {
    if (s.p && s.len) CHECK(s.p >= buf && s.p + s.len <= buf + len);
}

static void check_request(const struct http_request *r, const char *buf, size_t len) {
    check_inside(r->target, buf, len);
    check_inside(r->query, buf, len);
    check_inside(r->host, buf, len);
    for (unsigned i = 0; i < r->nfields; i++) {
        check_inside(r->fields[i].name, buf, len);
        check_inside(r->fields[i].value, buf, len);
    }
    CHECK(r->path && (r->path[0] == '/' || strcmp(r->path, "*") == 0));
    CHECK(strlen(r->path) == r->path_len);
    CHECK(!strstr(r->path, "/../") && !strstr(r->path, "//"));
    CHECK(r->version == 10 || r->version == 11);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) {
        http_init(&limits);
        ready = 1;
    }
    if (size < 1) return 0;
    size_t piece = data[0] % 16 + 1; /* 1..16 bytes arrive per read */
    const char *in = (const char *)data + 1;
    size_t total = size - 1, pos = 0;
    struct http_msg *m = http_msg_new();
    char *buf = malloc(total + 1);

    while (pos < total) {
        http_msg_start(m, &limits);
        if (data[0] & 0x80) http_msg_keep_body(m);
        /* the head: offered in growing prefixes */
        size_t have = 0, used = 0;
        int rc = HTTP_AGAIN;
        while (rc == HTTP_AGAIN && pos + have < total) {
            have += piece;
            if (pos + have > total) have = total - pos;
            memcpy(buf, in + pos, have);
            rc = http_msg_head(m, buf, have, &used);
        }
        if (rc != HTTP_DONE) break;
        CHECK(used <= have);
        check_request(http_msg_request(m), buf, have);
        size_t off = used;
        if (http_msg_has_body(m)) {
            /* the body: only bytes not yet taken, in pieces */
            rc = HTTP_AGAIN;
            while (rc == HTTP_AGAIN) {
                if (off == have) {
                    if (pos + have >= total) break;
                    size_t more = piece;
                    if (pos + have + more > total) more = total - pos - have;
                    memcpy(buf + have, in + pos + have, more);
                    have += more;
                }
                size_t took = 0;
                rc = http_msg_body(m, buf + off, have - off, &took);
                CHECK(took <= have - off);
                off += took;
            }
            if (rc != HTTP_DONE) break;
            const struct http_request *r = http_msg_request(m);
            CHECK(r->body.len <= limits.max_body_size);
        }
        pos += off;
    }
    free(buf);
    http_msg_free(m);
    return 0;
}
