/* arena: memory of one request, freed all at once when it ends.
 *
 * A bump allocator over a list of chunks: the first chunk is kept across
 * requests (the exchange is cached with it), larger ones and the rest are
 * freed by arena_reset(). Not thread-safe: one thread at a time uses a
 * request (the loop thread, or the pool thread running its handler). */
#ifndef PREFORKD_ARENA_H
#define PREFORKD_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *head; /* the chunk being filled; older ones follow */
    size_t keep;              /* the first chunk's size, kept by arena_reset */
};

/* keep: bytes of the first chunk, allocated on first use and kept. */
void arena_init(struct arena *a, size_t keep);
/* n bytes, 8-byte aligned, or NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t n);
/* Frees everything but the first chunk, which is emptied. */
void arena_reset(struct arena *a);
void arena_free(struct arena *a);

#endif
