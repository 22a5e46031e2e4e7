/* gzip: whole-buffer gzip with libdeflate, a compressor per thread and level. */
#include "workers/gzip.h"

#include <libdeflate.h>
#include <pthread.h>
#include <stdlib.h>

#define LEVELS 10 /* 1-9; [0] unused */

/* A thread's compressors, created on first use of each level. */
struct compressors {
    struct libdeflate_compressor *c[LEVELS];
};

static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static int key_ok;

static void compressors_free(void *p) {
    struct compressors *cs = p;
    if (!cs) return;
    for (int i = 0; i < LEVELS; i++) libdeflate_free_compressor(cs->c[i]);
    free(cs);
}

static void key_make(void) {
    key_ok = pthread_key_create(&key, compressors_free) == 0;
}

static struct libdeflate_compressor *compressor(int level) {
    pthread_once(&key_once, key_make);
    if (!key_ok) return NULL;
    struct compressors *cs = pthread_getspecific(key);
    if (!cs) {
        if (!(cs = calloc(1, sizeof *cs))) return NULL;
        if (pthread_setspecific(key, cs) != 0) {
            free(cs);
            return NULL;
        }
    }
    if (!cs->c[level]) cs->c[level] = libdeflate_alloc_compressor(level);
    return cs->c[level];
}

char *gzip_compress(const void *in, size_t n, int level, size_t *outlen) {
    if (level < 1 || level >= LEVELS) return NULL;
    struct libdeflate_compressor *c = compressor(level);
    if (!c) return NULL;
    size_t room = libdeflate_gzip_compress_bound(c, n);
    char *out = malloc(room);
    if (!out) return NULL;
    /* the bound is never too small: 0 would mean it was */
    size_t len = libdeflate_gzip_compress(c, in, n, out, room);
    if (!len) {
        free(out);
        return NULL;
    }
    *outlen = len;
    return out;
}

void gzip_thread_end(void) {
    if (!key_ok) return;
    compressors_free(pthread_getspecific(key));
    pthread_setspecific(key, NULL);
}
