/* path: percent-decoding and dot-segment removal. */
#include "workers/path.h"

#include <stdbool.h>
#include <string.h>

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static ssize_t percent_decode(const char *in, size_t len, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            if (len - i < 3) return -1;
            int hi = hexval((unsigned char)in[i + 1]), lo = hexval((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0') return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (ssize_t)o;
}

/* Whether the last segment is "", "." or "..": the path names a directory. */
static bool names_directory(const char *p, size_t len) {
    size_t i = len;
    while (i > 0 && p[i - 1] != '/') i--;
    size_t last = len - i;
    return last == 0 || (last == 1 && p[i] == '.') || (last == 2 && p[i] == '.' && p[i + 1] == '.');
}

/* Whether in is already normal: no escape or NUL, no "//", no "/." segment. */
static bool already_normal(const char *in, size_t len) {
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%' || c == '\0' ||
            (c == '/' && i + 1 < len && (in[i + 1] == '/' || in[i + 1] == '.')))
            return false;
    }
    return true;
}

ssize_t path_normalize(const char *in, size_t len, char *out) {
    if (len == 0 || in[0] != '/') return -1;
    if (already_normal(in, len)) { /* the common case: "/", "/index.html" */
        memcpy(out, in, len);
        out[len] = '\0';
        return (ssize_t)len;
    }
    ssize_t n = percent_decode(in, len, out);
    if (n < 0) return -1;
    size_t end = (size_t)n;
    bool dir = names_directory(out, end);

    /* In place: the write position w never passes the read position r. */
    size_t r = 0, w = 0;
    while (r < end) {
        while (r < end && out[r] == '/') r++;
        size_t seg = r;
        while (r < end && out[r] != '/') r++;
        size_t seglen = r - seg;
        if (seglen == 0 || (seglen == 1 && out[seg] == '.')) continue;
        if (seglen == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            if (w == 0) return -1; /* above the root */
            while (out[w - 1] != '/') w--;
            w--; /* and the slash that led into the popped segment */
            continue;
        }
        out[w++] = '/';
        memmove(out + w, out + seg, seglen);
        w += seglen;
    }
    if (w == 0 || dir) out[w++] = '/';
    out[w] = '\0';
    return (ssize_t)w;
}
