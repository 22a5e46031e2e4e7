/* range: "bytes=first-last", "bytes=first-" and "bytes=-suffix". */
#include "workers/range.h"

#include <stdbool.h>
#include <strings.h>

static bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

/* Reads digits at *p; values too large for 64 bits saturate. */
static bool read_number(const char **p, const char *end, uint64_t *out) {
    const char *s = *p;
    uint64_t v = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s++ - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    if (s == *p) return false;
    *p = s;
    *out = v;
    return true;
}

enum range_result range_parse(const char *v, size_t len, uint64_t size, uint64_t *first,
                              uint64_t *count) {
    const char *p = v, *end = v + len;
    while (end > p && is_ows(end[-1])) end--;
    if (end - p < 6 || strncasecmp(p, "bytes=", 6) != 0) return RANGE_IGNORE;
    p += 6;
    while (p < end && is_ows(*p)) p++;

    uint64_t a = 0, b = UINT64_MAX;
    bool suffix = p < end && *p == '-';
    if (suffix) p++;
    if (!read_number(&p, end, suffix ? &b : &a)) return RANGE_IGNORE;
    if (!suffix) {
        if (p >= end || *p++ != '-') return RANGE_IGNORE;
        if (p < end && !read_number(&p, end, &b)) return RANGE_IGNORE;
        if (b < a) return RANGE_IGNORE; /* an invalid range-spec */
    }
    if (p != end) return RANGE_IGNORE; /* several ranges, or junk */

    if (suffix) {
        if (b == 0 || size == 0) return RANGE_UNSATISFIABLE;
        *first = b >= size ? 0 : size - b;
        *count = size - *first;
        return RANGE_OK;
    }
    if (a >= size) return RANGE_UNSATISFIABLE;
    if (b >= size) b = size - 1;
    *first = a;
    *count = b - a + 1;
    return RANGE_OK;
}
