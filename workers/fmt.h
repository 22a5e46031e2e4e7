/* fmt: the few number formats the hot path writes without printf. */
#ifndef PREFORKD_FMT_H
#define PREFORKD_FMT_H

#include <stddef.h>
#include <stdint.h>

/* Writes v in decimal at p (no NUL); returns the number of digits. */
static inline size_t fmt_u64(char *p, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10));
    for (size_t i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
    return n;
}

#endif
