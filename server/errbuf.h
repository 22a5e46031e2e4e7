/* errbuf: an error message written into the caller's buffer (err, errlen)
 * and returned as -1, for the functions that report what went wrong to
 * their caller instead of printing it (configuration, listeners, the
 * service manager, site settings). */
#ifndef PREFORKD_ERRBUF_H
#define PREFORKD_ERRBUF_H

#include <stddef.h>

/* Formats into err (truncated to errlen, NUL-terminated); returns -1. */
int errbuf_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
