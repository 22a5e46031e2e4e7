/* mime: Content-Type by file name extension. */
#ifndef PREFORKD_MIME_H
#define PREFORKD_MIME_H

/* The media type for path's extension (case-insensitive), or
 * "application/octet-stream". The result is a static string. */
const char *mime_type(const char *path);

#endif
