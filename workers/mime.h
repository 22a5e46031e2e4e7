/* mime: Content-Type by file name extension. */
#ifndef PREFORKD_MIME_H
#define PREFORKD_MIME_H

#include <stdbool.h>
#include <stddef.h>

/* The built-in table's media type for path's extension (case-insensitive),
 * or "application/octet-stream". The result is a static string. */
const char *mime_type(const char *path);

/* Whether a media type is text a charset parameter applies to: text/ (any),
 * application/json, application/javascript, application/xml, and any
 * "+json" or "+xml" type (image/svg+xml, application/manifest+json). */
bool mime_is_text(const char *type);

/* A route's table: the built-in one, extended or overridden by files in the
 * format of /etc/mime.types ("type ext ext ..." per line, '#' comments),
 * each answer a whole Content-Type value with the charset where it applies.
 * Built once when a route starts; read-only afterwards. */
struct mime_table;

struct mime_table *mime_table_new(void);
void mime_table_free(struct mime_table *t);
/* Adds the lines of text (name says where it comes from, for errors): a
 * later extension replaces an earlier one. 0, or -1 with "NAME:LINE: why"
 * in err (nothing of text is kept then). */
int mime_table_parse(struct mime_table *t, const char *text, size_t len, const char *name,
                     char *err, size_t errlen);
/* mime_table_parse on a file's contents. */
int mime_table_load(struct mime_table *t, const char *path, char *err, size_t errlen);
/* Makes the table ready for lookups: text types get "; charset=CHARSET"
 * (charset NULL: none). 0, or -1 when out of memory. */
int mime_table_finish(struct mime_table *t, const char *charset);
/* The Content-Type for path's extension, "application/octet-stream" when
 * unknown. Lives as long as the table. */
const char *mime_table_type(const struct mime_table *t, const char *path);

#endif
