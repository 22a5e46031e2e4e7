/* json: JSON string literals. */
#include "workers/json.h"

#include <string.h>

size_t json_utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (!len || len > n || c > 0xf4 || c == 0xc0 || c == 0xc1) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] >= 0x90))
        return 0;
    return len;
}

int json_string(const char *s, size_t n, bool latin1,
                int (*put)(void *arg, const char *p, size_t len), void *arg) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    char buf[512];
    size_t k = 0;
    buf[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (k > sizeof buf - 8) {
            if (put(arg, buf, k) < 0) return -1;
            k = 0;
        }
        unsigned char c = u[i];
        switch (c) {
        case '"': buf[k++] = '\\', buf[k++] = '"'; break;
        case '\\': buf[k++] = '\\', buf[k++] = '\\'; break;
        case '\n': buf[k++] = '\\', buf[k++] = 'n'; break;
        case '\r': buf[k++] = '\\', buf[k++] = 'r'; break;
        case '\t': buf[k++] = '\\', buf[k++] = 't'; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                memcpy(buf + k, "\\u00", 4);
                k += 4;
                buf[k++] = hex[c >> 4];
                buf[k++] = hex[c & 15];
            } else if (c < 0x80) {
                buf[k++] = (char)c;
            } else if (latin1) {
                buf[k++] = (char)(0xc0 | c >> 6);
                buf[k++] = (char)(0x80 | (c & 0x3f));
            } else {
                /* JSON is UTF-8: a byte that is not part of a valid
                 * sequence becomes U+FFFD, the replacement character */
                size_t len = json_utf8_len(u + i, n - i);
                if (len) {
                    memcpy(buf + k, u + i, len);
                    k += len;
                    i += len - 1;
                } else {
                    memcpy(buf + k, "\xef\xbf\xbd", 3);
                    k += 3;
                }
            }
        }
    }
    buf[k++] = '"';
    return put(arg, buf, k);
}
