/* buf: growable byte buffers backed by a block cache. */
#include "workers/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bufcache_init(struct bufcache *bc, unsigned max) {
    bc->free = NULL;
    bc->nfree = 0;
    bc->max = max;
}

void bufcache_trim(struct bufcache *bc) {
    while (bc->free) {
        void *next = *(void **)bc->free;
        free(bc->free);
        bc->free = next;
    }
    bc->nfree = 0;
}

static char *block_get(struct bufcache *bc) {
    if (bc && bc->free) {
        char *p = bc->free;
        bc->free = *(void **)p;
        bc->nfree--;
        return p;
    }
    return malloc(BUF_BLOCK);
}

static void block_put(struct bufcache *bc, char *p, size_t cap) {
    if (bc && cap == BUF_BLOCK && bc->nfree < bc->max) {
        *(void **)p = bc->free;
        bc->free = p;
        bc->nfree++;
        return;
    }
    free(p);
}

int buf_reserve(struct buf *b, struct bufcache *bc, size_t n, size_t limit) {
    if (buf_room(b) >= n) return 0;
    size_t len = buf_len(b);
    if (b->data && b->cap - len >= n) {
        memmove(b->data, buf_head(b), len);
        b->start = 0;
        b->end = len;
        return 0;
    }
    size_t cap = b->cap ? b->cap : BUF_BLOCK;
    while (cap - len < n) cap *= 2;
    if (cap > limit) {
        if (limit < len || limit - len < n) {
            errno = ENOBUFS;
            return -1;
        }
        cap = limit;
    }
    char *p = cap == BUF_BLOCK ? block_get(bc) : malloc(cap);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    if (len) memcpy(p, buf_head(b), len);
    if (b->data) block_put(bc, b->data, b->cap);
    b->data = p;
    b->cap = cap;
    b->start = 0;
    b->end = len;
    return 0;
}

int buf_append(struct buf *b, struct bufcache *bc, const void *p, size_t n) {
    if (buf_reserve(b, bc, n, (size_t)-1) < 0) return -1;
    memcpy(buf_tail(b), p, n);
    b->end += n;
    return 0;
}

void buf_consume(struct buf *b, size_t n) {
    b->start += n;
    if (b->start == b->end) b->start = b->end = 0;
}

void buf_release(struct buf *b, struct bufcache *bc) {
    if (b->data) block_put(bc, b->data, b->cap);
    memset(b, 0, sizeof *b);
}
