/* fcache: hash table + LRU list of open files. */
#include "workers/fcache.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "workers/httpdate.h"
#include "workers/mime.h"

struct fcache {
    struct fentry **table;
    size_t mask;
    struct fentry *lru_head, *lru_tail;
    unsigned count, max;
    unsigned valid_ms;
    unsigned idle_ms;
};

static uint32_t hash_key(const char *k, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 16777619u;
    return h;
}

struct fcache *fcache_create(unsigned max_entries, unsigned valid_ms, unsigned idle_ms) {
    struct fcache *fc = calloc(1, sizeof *fc);
    if (!fc) return NULL;
    size_t size = 16;
    while (size < 2 * (size_t)max_entries) size *= 2;
    fc->table = calloc(size, sizeof *fc->table);
    if (!fc->table) {
        free(fc);
        return NULL;
    }
    fc->mask = size - 1;
    fc->max = max_entries;
    fc->valid_ms = valid_ms;
    fc->idle_ms = idle_ms;
    return fc;
}

static void lru_remove(struct fcache *fc, struct fentry *e) {
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        fc->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        fc->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(struct fcache *fc, struct fentry *e) {
    e->lru_prev = NULL;
    e->lru_next = fc->lru_head;
    if (fc->lru_head) fc->lru_head->lru_prev = e;
    fc->lru_head = e;
    if (!fc->lru_tail) fc->lru_tail = e;
}

/* Takes e out of the cache and drops the cache's own hold. */
static void unlink_entry(struct fcache *fc, struct fentry *e) {
    struct fentry **p = &fc->table[e->hash & fc->mask];
    while (*p != e) p = &(*p)->hnext;
    *p = e->hnext;
    e->hnext = NULL;
    lru_remove(fc, e);
    e->in_cache = false;
    fc->count--;
    fentry_release(e);
}

void fcache_destroy(struct fcache *fc) {
    if (!fc) return;
    while (fc->lru_head) unlink_entry(fc, fc->lru_head);
    free(fc->table);
    free(fc);
}

struct fentry *fcache_lookup(struct fcache *fc, const char *key, size_t keylen, uint64_t now_ms,
                             struct fentry **stale) {
    uint32_t h = hash_key(key, keylen);
    *stale = NULL;
    for (struct fentry *e = fc->table[h & fc->mask]; e; e = e->hnext) {
        if (e->hash != h || e->keylen != keylen || memcmp(e->key, key, keylen) != 0) continue;
        e->refs++;
        e->used_ms = now_ms;
        if (now_ms - e->checked_ms >= fc->valid_ms) {
            *stale = e;
            return NULL;
        }
        lru_remove(fc, e);
        lru_push_front(fc, e);
        return e;
    }
    return NULL;
}

static bool same_file(const struct stat *a, const struct stat *b) {
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

bool fcache_still_valid(struct fcache *fc, struct fentry *e, const struct stat *st,
                        uint64_t now_ms) {
    if (!e->in_cache || !same_file(&e->st, st)) return false;
    e->checked_ms = now_ms;
    lru_remove(fc, e);
    lru_push_front(fc, e);
    return true;
}

void fcache_forget(struct fcache *fc, struct fentry *e) {
    if (e->in_cache) unlink_entry(fc, e);
}

/* Whether the entry's file has no name left: its descriptor alone keeps the
 * disk space. */
static bool deleted(const struct fentry *e) {
    struct stat st;
    return e->fd >= 0 && fstat(e->fd, &st) == 0 && st.st_nlink == 0;
}

void fcache_sweep(struct fcache *fc, uint64_t now_ms) {
    for (struct fentry *e = fc->lru_head, *next; e; e = next) {
        next = e->lru_next;
        if (now_ms - e->used_ms >= fc->idle_ms || deleted(e)) unlink_entry(fc, e);
    }
}

/* The whole file into memory; false if it did not read as stat said. */
static bool read_whole(struct fentry *e) {
    size_t size = (size_t)e->st.st_size, got = 0;
    if (!(e->data = malloc(size ? size : 1))) return false;
    while (got < size) {
        ssize_t n = pread(e->fd, e->data + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    if (got == size) return true;
    free(e->data);
    e->data = NULL;
    return false;
}

struct fentry *fentry_new(struct fcache *fc, const char *key, size_t keylen, int fd,
                          const struct stat *st, const char *name, uint64_t now_ms) {
    struct fentry *e = calloc(1, sizeof *e);
    char lastmod[HTTPDATE_LEN + 1];
    if (!e || !(e->key = malloc(keylen + 1))) goto fail;
    memcpy(e->key, key, keylen);
    e->key[keylen] = '\0';
    e->keylen = keylen;
    e->hash = hash_key(key, keylen);
    e->fd = fd;
    e->st = *st;
    e->size = (uint64_t)st->st_size;
    e->refs = 1;
    e->checked_ms = e->used_ms = now_ms;
    e->mime = mime_type(name);
    snprintf(e->etag, sizeof e->etag, "\"%" PRIx64 "-%" PRIx64 "\"", (uint64_t)st->st_mtime,
             (uint64_t)st->st_size);
    httpdate_format(st->st_mtime, lastmod);
    if (!(e->hdrs = pfd_headers_new()) || pfd_headers_set(e->hdrs, "Last-Modified", lastmod) < 0 ||
        pfd_headers_set(e->hdrs, "ETag", e->etag) < 0 ||
        pfd_headers_set(e->hdrs, "Accept-Ranges", "bytes") < 0)
        goto fail;
    if (!fc) return e;

    /* a small file is read once, then sent from memory: its descriptor is
     * not needed any more (revalidation opens the path again) */
    if (st->st_size <= FCACHE_MEM_MAX && read_whole(e)) {
        close(e->fd);
        e->fd = -1;
    }
    uint32_t slot = e->hash & fc->mask;
    for (struct fentry *old = fc->table[slot]; old; old = old->hnext)
        if (old->keylen == keylen && memcmp(old->key, key, keylen) == 0) {
            unlink_entry(fc, old);
            break;
        }
    e->hnext = fc->table[slot];
    fc->table[slot] = e;
    lru_push_front(fc, e);
    e->in_cache = true;
    e->refs++; /* the cache's own */
    if (++fc->count > fc->max) unlink_entry(fc, fc->lru_tail);
    return e;
fail:
    if (e) {
        pfd_headers_free(e->hdrs);
        pfd_headers_free(e->alt_hdrs);
        pfd_headers_free(e->hdrs304);
        pfd_headers_free(e->alt_hdrs304);
        free(e->key);
        free(e);
    }
    close(fd);
    return NULL;
}

void fentry_release(void *entry) {
    struct fentry *e = entry;
    if (--e->refs > 0) return;
    if (e->fd >= 0) close(e->fd);
    free(e->data);
    pfd_headers_free(e->hdrs);
    pfd_headers_free(e->alt_hdrs);
    pfd_headers_free(e->hdrs304);
    pfd_headers_free(e->alt_hdrs304);
    free(e->key);
    free(e);
}
