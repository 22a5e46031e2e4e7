/* gzip: whole-buffer gzip (RFC 1952) with libdeflate, for compression on the
 * fly (static's compress = on).
 *
 * libdeflate compresses a whole buffer at once, faster than zlib's stream
 * (no window to slide, better match finding per cycle), which suits files
 * that are read whole anyway. A compressor is large (~0.5 MiB at level 6)
 * and costly to set up, so each thread keeps one per level it used: owned by
 * the thread, freed when the thread ends (a pthread key's destructor) or by
 * gzip_thread_end() for the thread that ends the process (the loop thread). */
#ifndef PREFORKD_GZIP_H
#define PREFORKD_GZIP_H

#include <stddef.h>

/* The gzip of in[0, n) at level (1 fast … 9 small; libdeflate's 10-12 are
 * refused) into a malloc'd buffer; its length in *outlen. NULL when out of
 * memory or for a bad level. [any thread] */
char *gzip_compress(const void *in, size_t n, int level, size_t *outlen);

/* Frees the calling thread's compressors now. */
void gzip_thread_end(void);

#endif
