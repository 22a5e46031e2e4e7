/* httpdate: HTTP-date (RFC 9110 section 5.6.7) formatting and parsing. */
#ifndef PREFORKD_HTTPDATE_H
#define PREFORKD_HTTPDATE_H

#include <stddef.h>
#include <time.h>

#define HTTPDATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* Writes IMF-fixdate for t into out (HTTPDATE_LEN + 1 bytes, NUL-terminated). */
void httpdate_format(time_t t, char *out);
/* Parses IMF-fixdate, the obsolete RFC 850 form, or asctime(); -1 if none. */
int httpdate_parse(const char *s, size_t len, time_t *out);

#endif
