/* arena: chunks and a bump pointer. */
#include "workers/arena.h"

#include <stdint.h>
#include <stdlib.h>

struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;
    _Alignas(16) char data[];
};

void arena_init(struct arena *a, size_t keep) {
    a->head = NULL;
    a->keep = keep;
}

static struct arena_chunk *chunk_new(size_t size) {
    if (size > SIZE_MAX - sizeof(struct arena_chunk)) return NULL;
    struct arena_chunk *c = malloc(sizeof *c + size);
    if (!c) return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

void *arena_alloc(struct arena *a, size_t n) {
    if (n > SIZE_MAX - 7) return NULL;
    size_t need = (n + 7) & ~(size_t)7;
    struct arena_chunk *c = a->head;
    if (!c || c->size - c->used < need) {
        size_t size = a->keep;
        if (c && c->size <= SIZE_MAX / 2) size = c->size * 2; /* grow geometrically */
        if (size < need) size = need;
        struct arena_chunk *fresh = chunk_new(size);
        if (!fresh) return NULL;
        /* the kept first chunk stays last in the list */
        fresh->next = c;
        a->head = c = fresh;
    }
    void *p = c->data + c->used;
    c->used += need;
    return p;
}

void arena_reset(struct arena *a) {
    struct arena_chunk *c = a->head;
    if (!c) return;
    /* free all but the last (the first allocated), if it has the kept size */
    while (c->next) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    if (c->size != a->keep) {
        free(c);
        a->head = NULL;
        return;
    }
    c->used = 0;
    a->head = c;
}

void arena_free(struct arena *a) {
    struct arena_chunk *c = a->head;
    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}
