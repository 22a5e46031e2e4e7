/* path: turning a request's path into the path a handler may use. */
#ifndef PREFORKD_PATH_H
#define PREFORKD_PATH_H

#include <stddef.h>
#include <sys/types.h>

/* Percent-decodes in[0, len) into out (room for len + 1 bytes), then removes
 * "." and ".." segments and repeated slashes. The result starts with '/',
 * keeps a trailing slash, and is NUL-terminated. Returns its length, or -1
 * when the path is not acceptable: not starting with '/', a malformed %-escape,
 * an encoded NUL, or ".." climbing above the root (in any encoding). */
ssize_t path_normalize(const char *in, size_t len, char *out);

#endif
