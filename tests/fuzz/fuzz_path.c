/* libFuzzer target: path normalization (and Range parsing, the other
 * function that reads untrusted text into numbers). A normalized path never
 * climbs out of the root, never keeps "." or ".." segments or "//", and
 * normalizing it again changes nothing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workers/path.h"
#include "workers/range.h"

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
    char *out = malloc(size + 2), *again = malloc(size + 2);
    ssize_t n = path_normalize((const char *)data, size, out);
    if (n >= 0) {
        CHECK(out[0] == '/' && (size_t)n == strlen(out) && (size_t)n <= size + 1);
        CHECK(!strstr(out, "//") && !strstr(out, "/./") && !strstr(out, "/../"));
        size_t len = (size_t)n;
        CHECK(!(len >= 3 && strcmp(out + len - 3, "/..") == 0));
        /* idempotent, as long as decoding made no new '%' escapes */
        if (!memchr(out, '%', len)) {
            ssize_t m = path_normalize(out, len, again);
            CHECK(m == n && memcmp(out, again, len) == 0);
        }
    }
    uint64_t first, count, sizes[] = {0, 1, 1000, UINT64_MAX};
    for (size_t i = 0; i < 4; i++)
        if (range_parse((const char *)data, size, sizes[i], &first, &count) == RANGE_OK)
            CHECK(count > 0 && first < sizes[i] && count <= sizes[i] - first);
    free(out);
    free(again);
    return 0;
}
