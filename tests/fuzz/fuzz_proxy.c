/* libFuzzer target: the PROXY protocol header (workers/proxyproto.c). The
 * answer is "more", "invalid" or a length within the input and the bounds;
 * a header parses the same with anything behind it, every shorter prefix of
 * it asks for more, and the addresses it yields are of a known family. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workers/proxyproto.h"

/* assert() vanishes under NDEBUG; fuzzing checks must not */
#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "check failed: %s (%s:%d)\n", #x, __FILE__, __LINE__);                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a copy of exactly size bytes: ASan sees any read past the end */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    struct proxy_info info, again;
    int rc = proxy_parse(buf, size, &info);
    CHECK(rc >= PROXY_INVALID);
    if (rc > 0) {
        size_t n = (size_t)rc;
        CHECK(n <= size);
        CHECK(info.version == 1 || info.version == 2);
        CHECK(n <= (info.version == 1 ? PROXY_V1_MAX : PROXY_V2_MAX));
        CHECK(n >= (info.version == 1 ? 15 : 16)); /* "PROXY UNKNOWN\r\n", v2's fixed part */
        if (!info.local) {
            int f = info.src.sa.sa_family;
            CHECK(f == AF_INET || f == AF_INET6 || (f == AF_UNIX && info.version == 2));
            CHECK(info.dst.sa.sa_family == f && info.src_len > 0 && info.dst_len > 0);
            CHECK(info.src_len <= sizeof info.src && info.dst_len <= sizeof info.dst);
            if (f == AF_UNIX)
                CHECK(memchr(info.src.un.sun_path, 0, sizeof info.src.un.sun_path) != NULL);
        }
        /* the header alone parses to the same */
        CHECK(proxy_parse(buf, n, &again) == rc);
        CHECK(again.local == info.local && again.src_len == info.src_len &&
              memcmp(&again.src, &info.src, info.src_len) == 0);
        /* and a byte short of it asks for more */
        CHECK(proxy_parse(buf, n - 1, &again) == PROXY_AGAIN);
    } else if (rc == PROXY_AGAIN && size > 0) {
        /* more is only ever needed up to the bounds */
        CHECK(size < PROXY_V2_MAX);
        CHECK(proxy_parse(buf, size - 1, &again) == PROXY_AGAIN);
    } else if (rc == PROXY_INVALID) {
        /* what is invalid stays invalid whatever comes after it */
        char *more = malloc(size + 8);
        memcpy(more, buf, size);
        memcpy(more + size, "\r\n\r\n\0\r\nQ", 8);
        CHECK(proxy_parse(more, size + 8, &again) == PROXY_INVALID);
        free(more);
    }
    free(buf);
    return 0;
}
