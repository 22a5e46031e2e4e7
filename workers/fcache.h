/* fcache: the static handler's open-file cache, one per static route and
 * worker (loop thread only).
 *
 * An entry is a file opened for a request path: its descriptor, its stat, the
 * headers that describe it (ETag, Last-Modified, Content-Type) formatted once,
 * and for small files the whole content in memory, so that a hit costs no
 * system call and the answer goes out in one write. Entries are revalidated
 * (the path is opened and stat'ed again) once they are older than the valid
 * interval, replaced when the file changed and dropped when it is gone; the
 * least recently used entry is dropped when the cache is full. A sweep once a
 * second (fcache_sweep) drops the entries not used for the idle time and
 * those whose file was deleted, so that no descriptor keeps a deleted file's
 * disk space (nginx's open_file_cache inactive).
 *
 * Entries are reference counted: a response that sends from an entry holds
 * it until the bytes are out, even if the cache drops it meanwhile. */
#ifndef PREFORKD_FCACHE_H
#define PREFORKD_FCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "workers/preforkd.h"

/* Files up to this size are kept in memory. */
#define FCACHE_MEM_MAX (16 * 1024)

struct fcache;

struct fentry {
    struct fentry *hnext;               /* hash chain */
    struct fentry *lru_prev, *lru_next; /* most recent first */
    unsigned refs;
    bool in_cache;
    uint32_t hash;
    char *key; /* the request path */
    size_t keylen;
    int fd; /* -1 once the content is in data */
    struct stat st;
    uint64_t checked_ms; /* last (re)validation */
    uint64_t used_ms;    /* last request for it */
    const char *mime;
    char etag[48];
    char *data;           /* the content, for files up to FCACHE_MEM_MAX */
    uint64_t size;        /* bytes answered: st.st_size, or data's when the owner put a
                             coding of the file there (free()d with the entry) */
    pfd_headers *hdrs;    /* Last-Modified, ETag, Accept-Ranges: checked once */
    pfd_headers *hdrs304; /* NULL, or the owner's: a 304's fields when hdrs has more */
    bool on_the_fly;      /* hdrs describe a coding the owner makes (no ranges) */
    int gzip_level;       /* > 0: the owner gzips the file for each GET request */
    /* the owner's second representation (gzip_level): its fields, its tag */
    pfd_headers *alt_hdrs, *alt_hdrs304;
    char alt_etag[48];
};

struct fcache *fcache_create(unsigned max_entries, unsigned valid_ms, unsigned idle_ms);
/* Entries still held by responses are freed when they are released. */
void fcache_destroy(struct fcache *fc);

/* A fresh entry for key (held: release it), or NULL on a miss or when the
 * entry is due for revalidation; *stale then holds that entry (held too). */
struct fentry *fcache_lookup(struct fcache *fc, const char *key, size_t keylen, uint64_t now_ms,
                             struct fentry **stale);
/* Whether fd (just opened for the entry's path) is still the same file;
 * if so the entry counts as validated now. */
bool fcache_still_valid(struct fcache *fc, struct fentry *e, const struct stat *st,
                        uint64_t now_ms);

/* Takes e out of the cache (if still there) after its revalidation failed:
 * the file is gone or unreadable. The caller's hold stays. */
void fcache_forget(struct fcache *fc, struct fentry *e);
/* Drops the entries not used for idle_ms and those whose file was deleted
 * (entries still sending keep their descriptor until they are released). */
void fcache_sweep(struct fcache *fc, uint64_t now_ms);

/* A new entry for an open file (taking fd). With fc it is also cached under
 * key (replacing any older entry); without, it is standalone. Returns it held,
 * or NULL (fd closed) when out of memory. name gives the MIME type. */
struct fentry *fentry_new(struct fcache *fc, const char *key, size_t keylen, int fd,
                          const struct stat *st, const char *name, uint64_t now_ms);
/* Drops a hold; the last one frees the entry. Takes void * to serve as a
 * response's release callback. */
void fentry_release(void *entry);

#endif
