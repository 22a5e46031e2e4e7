/* range: the Range request header (RFC 9110 section 14), single byte ranges. */
#ifndef PREFORKD_RANGE_H
#define PREFORKD_RANGE_H

#include <stddef.h>
#include <stdint.h>

enum range_result {
    RANGE_IGNORE,        /* absent, malformed, or several ranges: send it all (200) */
    RANGE_OK,            /* *first and *len describe one satisfiable range (206) */
    RANGE_UNSATISFIABLE, /* 416 with Content-Range: bytes * / size */
};

/* Interprets a Range value against a representation of size bytes. */
enum range_result range_parse(const char *v, size_t len, uint64_t size, uint64_t *first,
                              uint64_t *count);

#endif
