/* buf: byte buffers for connection input and output, and a per-worker cache
 * of buffer blocks so that the request fast path does not call malloc.
 *
 * A buffer holds bytes [start, end) of data[0, cap). Idle keep-alive
 * connections give their (empty) buffers back: an idle connection costs no
 * buffer memory. Only the loop thread touches buffers. */
#ifndef PREFORKD_BUF_H
#define PREFORKD_BUF_H

#include <stddef.h>

/* Size of a standard block: fits a typical request head or response head. */
#define BUF_BLOCK 4096

struct buf {
    char *data;
    size_t start, end, cap;
};

/* A free list of BUF_BLOCK-sized blocks, at most max of them kept. */
struct bufcache {
    void *free;
    unsigned nfree, max;
};

static inline size_t buf_len(const struct buf *b) {
    return b->end - b->start;
}
static inline char *buf_head(const struct buf *b) {
    return b->data + b->start;
}
static inline char *buf_tail(const struct buf *b) {
    return b->data + b->end;
}
static inline size_t buf_room(const struct buf *b) {
    return b->cap - b->end;
}

/* Makes room for at least n more bytes after end, moving the data to the
 * front first and growing only when that is not enough; never grows beyond
 * limit bytes of capacity. Returns -1 (errno ENOMEM or ENOBUFS) on failure. */
int buf_reserve(struct buf *b, struct bufcache *bc, size_t n, size_t limit);
/* Appends n bytes, growing as needed (no limit). */
int buf_append(struct buf *b, struct bufcache *bc, const void *p, size_t n);
/* Drops n bytes from the front; an emptied buffer rewinds to offset 0. */
void buf_consume(struct buf *b, size_t n);
/* Returns the memory to the cache (or to malloc) and zeroes b. */
void buf_release(struct buf *b, struct bufcache *bc);

void bufcache_init(struct bufcache *bc, unsigned max);
/* Frees every cached block; the cache stays usable (after it, nothing to
 * free at the end). */
void bufcache_trim(struct bufcache *bc);

#endif
