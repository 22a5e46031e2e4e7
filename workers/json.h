/* json: JSON string literals, for pfd_write_json_string and the built-in
 * handlers that build JSON (httpbin). */
#ifndef PREFORKD_JSON_H
#define PREFORKD_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* The length of the valid UTF-8 sequence at s (RFC 3629: no overlong forms,
 * no surrogates, nothing past U+10FFFF), or 0. */
size_t json_utf8_len(const unsigned char *s, size_t n);

/* Writes s[0, n) as a JSON string literal, quotes included, in pieces
 * through put(arg, p, len) (which returns 0, or -1 to stop). Control
 * characters are escaped; bytes of 0x80 and up are UTF-8, a byte not in a
 * valid sequence becoming U+FFFD, or with latin1 each is the character of
 * that number. 0, or put's -1. */
int json_string(const char *s, size_t n, bool latin1,
                int (*put)(void *arg, const char *p, size_t len), void *arg);

#endif
