/* Unit tests for workers/fcache.c, the static handler's open-file cache: hits
 * and misses, small files held in memory and large ones by descriptor, the
 * headers formatted once, revalidation, replacement, LRU eviction and the
 * reference counts that keep an entry alive while a response sends from it.
 * Real files in a temporary folder; every test checks that it leaves no
 * descriptor open (/proc/self/fd), and ASan that it frees what it should,
 * never too early. The file under test is included to see the cache's count. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "scratch.h"

#include "workers/fcache.c"

#define NOW   1000000u /* an arbitrary monotonic clock reading, in ms */
#define VALID 1000u    /* the valid interval used unless a test says otherwise */
#define IDLE  60000u   /* the idle time used unless a test says otherwise */

struct fixture {
    struct scratch s;
};

static int setup(void **state) {
    return scratch_setup(state, sizeof(struct fixture), "fcache");
}

/* The byte at offset i of every file made by make_file(). */
static char pattern(size_t i, char seed) {
    return (char)(seed + (char)(i % 23));
}

/* Writes name (size bytes of pattern(seed)) in the fixture's folder. */
static void make_file(struct fixture *fx, const char *name, size_t size, char seed) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", fx->s.dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < size; i++) fputc(pattern(i, seed), f);
    assert_int_equal(fclose(f), 0);
}

/* Opens name like the static handler does, filling *st. */
static int open_file(struct fixture *fx, const char *name, struct stat *st) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", fx->s.dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, st), 0);
    return fd;
}

static bool has_pattern(const char *data, size_t size, char seed) {
    for (size_t i = 0; i < size; i++)
        if (data[i] != pattern(i, seed)) return false;
    return true;
}

/* A cached entry for fx's file name under key "/name" (held by the caller). */
static struct fentry *add(struct fixture *fx, struct fcache *fc, const char *name, uint64_t now) {
    struct stat st;
    char key[128];
    int fd = open_file(fx, name, &st);
    snprintf(key, sizeof key, "/%s", name);
    struct fentry *e = fentry_new(fc, key, strlen(key), fd, &st, name, now);
    assert_non_null(e);
    return e;
}

static struct fentry *lookup(struct fcache *fc, const char *key, uint64_t now,
                             struct fentry **stale) {
    return fcache_lookup(fc, key, strlen(key), now, stale);
}

/* Whether key is a fresh hit at now (the hold taken by the lookup is dropped). */
static bool is_hit(struct fcache *fc, const char *key, uint64_t now) {
    struct fentry *stale;
    struct fentry *e = lookup(fc, key, now, &stale);
    assert_null(stale);
    if (e) fentry_release(e);
    return e != NULL;
}

static void test_miss_then_hit(void **state) {
    struct fixture *fx = *state;
    struct fcache *fc = fcache_create(8, VALID, IDLE);
    struct fentry *stale = (void *)1;
    make_file(fx, "a.txt", 10, 'a');

    assert_null(lookup(fc, "/a.txt", NOW, &stale));
    assert_null(stale); /* a plain miss */
    struct fentry *e = add(fx, fc, "a.txt", NOW);
    assert_true(e->in_cache);
    assert_int_equal(e->refs, 2); /* the caller's and the cache's */
    fentry_release(e);
    assert_int_equal(e->refs, 1);

    struct fentry *h1 = lookup(fc, "/a.txt", NOW + 10, &stale);
    assert_ptr_equal(h1, e);
    assert_null(stale);
    assert_int_equal(e->refs, 2);
    struct fentry *h2 = lookup(fc, "/a.txt", NOW + 20, &stale);
    assert_ptr_equal(h2, e);
    assert_int_equal(e->refs, 3);
    fentry_release(h1);
    fentry_release(h2);
    assert_int_equal(e->refs, 1);

    /* another key, and a key that is a prefix of the cached one, miss */
    assert_null(lookup(fc, "/b.txt", NOW + 30, &stale));
    assert_null(stale);
    assert_null(fcache_lookup(fc, "/a.txt", 5, NOW + 30, &stale));
    assert_null(stale);
    fcache_destroy(fc);
}

static void test_small_in_memory_large_by_fd(void **state) {
    struct fixture *fx = *state;
    static const struct {
        const char *name;
        size_t size;
        bool in_memory;
    } cases[] = {
        {"empty", 0, true},
        {"small", 100, true},
        {"limit", FCACHE_MEM_MAX, true},
        {"over", FCACHE_MEM_MAX + 1, false},
        {"large", 100000, false},
    };
    struct fcache *fc = fcache_create(16, VALID, IDLE);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char seed = (char)('a' + i);
        make_file(fx, cases[i].name, cases[i].size, seed);
        struct fentry *e = add(fx, fc, cases[i].name, NOW);
        assert_int_equal(e->st.st_size, cases[i].size);
        if (cases[i].in_memory) {
            assert_non_null(e->data);
            assert_int_equal(e->fd, -1);
            assert_true(has_pattern(e->data, cases[i].size, seed));
        } else {
            assert_null(e->data);
            assert_true(e->fd >= 0);
            char *buf = malloc(cases[i].size);
            assert_non_null(buf);
            assert_int_equal(pread(e->fd, buf, cases[i].size, 0), cases[i].size);
            assert_true(has_pattern(buf, cases[i].size, seed));
            free(buf);
        }
        fentry_release(e);
    }
    fcache_destroy(fc); /* closes the large files' descriptors (teardown counts) */
}

static void test_headers_and_etag(void **state) {
    struct fixture *fx = *state;
    static const struct {
        time_t mtime;
        size_t size;
        const char *etag, *lastmod;
    } cases[] = {
        {1700000000, 5, "\"6553f100-5\"", "Tue, 14 Nov 2023 22:13:20 GMT"},
        {784111777, 20000, "\"2ebc98a1-4e20\"", "Sun, 06 Nov 1994 08:49:37 GMT"},
        {0, 0, "\"0-0\"", "Thu, 01 Jan 1970 00:00:00 GMT"},
    };
    struct fcache *fc = fcache_create(8, VALID, IDLE);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32], path[256], want[256];
        snprintf(name, sizeof name, "f%zu.html", i);
        snprintf(path, sizeof path, "%s/%s", fx->s.dir, name);
        make_file(fx, name, cases[i].size, 'a');
        struct timespec times[2] = {{cases[i].mtime, 0}, {cases[i].mtime, 0}};
        assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);

        struct fentry *e = add(fx, fc, name, NOW);
        assert_string_equal(e->etag, cases[i].etag);
        snprintf(want, sizeof want, "Last-Modified: %s\r\nETag: %s\r\nAccept-Ranges: bytes\r\n",
                 cases[i].lastmod, cases[i].etag);
        size_t len;
        const char *text = pfd_headers_text(e->hdrs, &len);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(text, want, len);
        assert_string_equal(e->mime, "text/html");
        fentry_release(e);
    }
    fcache_destroy(fc);
}

static void test_mime_by_name(void **state) {
    struct fixture *fx = *state;
    static const struct {
        const char *name, *mime;
    } cases[] = {
        {"index.html", "text/html"},
        {"STYLE.CSS", "text/css"},
        {"app.js", "text/javascript"},
        {"logo.png", "image/png"},
        {"a.tar.gz", "application/gzip"},
        {"README", "application/octet-stream"},
        {"trailing.", "application/octet-stream"},
    };
    struct fcache *fc = fcache_create(16, VALID, IDLE);
    make_file(fx, "file", 3, 'a');
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct stat st;
        int fd = open_file(fx, "file", &st);
        /* the type follows the name given, not the key or the file's own name */
        struct fentry *e = fentry_new(fc, "/k", 2, fd, &st, cases[i].name, NOW);
        assert_non_null(e);
        assert_string_equal(e->mime, cases[i].mime);
        fentry_release(e);
    }
    fcache_destroy(fc);
}

static void test_stale_after_valid_interval(void **state) {
    struct fixture *fx = *state;
    struct fcache *fc = fcache_create(8, VALID, IDLE);
    struct fentry *stale;
    make_file(fx, "a.txt", 10, 'a');
    struct fentry *e = add(fx, fc, "a.txt", NOW);
    fentry_release(e);

    assert_true(is_hit(fc, "/a.txt", NOW + VALID - 1));
    assert_null(lookup(fc, "/a.txt", NOW + VALID, &stale));
    assert_ptr_equal(stale, e);
    assert_int_equal(e->refs, 2); /* the stale entry is held for the caller */
    assert_null(lookup(fc, "/a.txt", NOW + 5 * VALID, &stale));
    assert_ptr_equal(stale, e);
    assert_int_equal(e->refs, 3);
    fentry_release(e);
    fentry_release(e);
    assert_true(e->in_cache); /* being due for revalidation does not drop it */
    fcache_destroy(fc);
}

/* How a stat differs from the one the entry was made with. */
static void bump_size(struct stat *st) {
    st->st_size++;
}
static void bump_mtime_sec(struct stat *st) {
    st->st_mtim.tv_sec++;
}
static void bump_mtime_nsec(struct stat *st) {
    st->st_mtim.tv_nsec = (st->st_mtim.tv_nsec + 1) % 1000000000;
}
static void bump_ctime_sec(struct stat *st) {
    st->st_ctim.tv_sec++;
}
static void bump_ctime_nsec(struct stat *st) {
    st->st_ctim.tv_nsec = (st->st_ctim.tv_nsec + 1) % 1000000000;
}
static void bump_inode(struct stat *st) {
    st->st_ino++;
}
static void bump_device(struct stat *st) {
    st->st_dev++;
}

static void test_still_valid(void **state) {
    struct fixture *fx = *state;
    static const struct {
        const char *what;
        void (*change)(struct stat *);
    } changes[] = {
        {"size", bump_size},       {"mtime", bump_mtime_sec},     {"mtime ns", bump_mtime_nsec},
        {"ctime", bump_ctime_sec}, {"ctime ns", bump_ctime_nsec}, {"inode", bump_inode},
        {"device", bump_device},
    };
    struct fcache *fc = fcache_create(8, VALID, IDLE);
    struct fentry *stale;
    struct stat st;
    make_file(fx, "a.txt", 10, 'a');
    struct fentry *e = add(fx, fc, "a.txt", NOW);
    fentry_release(e);

    /* due for revalidation; the path still names the same file */
    assert_null(lookup(fc, "/a.txt", NOW + VALID, &stale));
    assert_ptr_equal(stale, e);
    close(open_file(fx, "a.txt", &st));
    assert_true(fcache_still_valid(fc, e, &st, NOW + VALID));
    assert_int_equal(e->checked_ms, NOW + VALID);
    fentry_release(stale);
    /* validated now: fresh for another interval */
    assert_true(is_hit(fc, "/a.txt", NOW + 2 * VALID - 1));
    assert_null(lookup(fc, "/a.txt", NOW + 2 * VALID, &stale));
    assert_ptr_equal(stale, e);
    fentry_release(stale);

    for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++) {
        struct stat changed = st;
        changes[i].change(&changed);
        if (fcache_still_valid(fc, e, &changed, NOW + 3 * VALID))
            fail_msg("a different %s was taken for the same file", changes[i].what);
        assert_int_equal(e->checked_ms, NOW + VALID); /* not refreshed */
    }

    /* a real change: the file grew */
    char path[256];
    snprintf(path, sizeof path, "%s/a.txt", fx->s.dir);
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fputs("more", f);
    fclose(f);
    close(open_file(fx, "a.txt", &st));
    assert_false(fcache_still_valid(fc, e, &st, NOW + 3 * VALID));
    fcache_destroy(fc);
}

static void test_new_entry_replaces_old(void **state) {
    struct fixture *fx = *state;
    struct fcache *fc = fcache_create(8, VALID, IDLE);
    make_file(fx, "a.txt", 100, 'a');
    struct fentry *old = add(fx, fc, "a.txt", NOW); /* held, as by a response */

    /* the file changed: the handler opened it again and makes a new entry */
    make_file(fx, "a.txt", 200, 'A');
    struct fentry *e = add(fx, fc, "a.txt", NOW + VALID);
    assert_ptr_not_equal(e, old);
    assert_false(old->in_cache);
    assert_true(e->in_cache);
    assert_int_equal(fc->count, 1);

    /* lookups find the new one only */
    struct fentry *stale;
    struct fentry *h = lookup(fc, "/a.txt", NOW + VALID + 1, &stale);
    assert_ptr_equal(h, e);
    assert_true(has_pattern(h->data, 200, 'A'));
    fentry_release(h);

    /* the response still sending the old content reads it whole (ASan checks) */
    assert_int_equal(old->refs, 1);
    assert_int_equal(old->st.st_size, 100);
    assert_true(has_pattern(old->data, 100, 'a'));
    fentry_release(old); /* the last hold: freed here, LeakSanitizer checks */

    fentry_release(e);
    fcache_destroy(fc);
}

static void test_lru_eviction(void **state) {
    struct fixture *fx = *state;
    struct fcache *fc = fcache_create(3, VALID, IDLE);
    static const char *const names[] = {"a", "b", "c", "d", "e"};
    for (size_t i = 0; i < 5; i++) make_file(fx, names[i], 10, 'a');

    fentry_release(add(fx, fc, "a", NOW));
    fentry_release(add(fx, fc, "b", NOW + 1));
    fentry_release(add(fx, fc, "c", NOW + 2));
    assert_true(is_hit(fc, "/a", NOW + 3)); /* a is now the most recent: b the least */
    fentry_release(add(fx, fc, "d", NOW + 4));
    assert_int_equal(fc->count, 3);
    assert_false(is_hit(fc, "/b", NOW + 5));
    assert_true(is_hit(fc, "/a", NOW + 6));
    assert_true(is_hit(fc, "/c", NOW + 7));
    assert_true(is_hit(fc, "/d", NOW + 8));

    /* order now (most recent first): d c a; revalidation counts as use too */
    struct fentry *stale;
    struct stat st;
    assert_null(lookup(fc, "/a", NOW + VALID + 6, &stale));
    assert_non_null(stale);
    close(open_file(fx, "a", &st));
    assert_true(fcache_still_valid(fc, stale, &st, NOW + VALID + 6));
    fentry_release(stale);
    fentry_release(add(fx, fc, "e", NOW + VALID + 7)); /* c goes, the least recent */
    assert_false(is_hit(fc, "/c", NOW + VALID + 8));
    assert_true(is_hit(fc, "/a", NOW + VALID + 8));
    assert_true(is_hit(fc, "/e", NOW + VALID + 8));
    assert_int_equal(fc->count, 3);
    fcache_destroy(fc);
}

static void test_many_keys_share_buckets(void **state) {
    struct fixture *fx = *state;
    enum { MAX = 20, KEYS = 100 };
    struct fcache *fc = fcache_create(MAX, VALID, IDLE);
    char name[32];
    for (unsigned i = 0; i < KEYS; i++) {
        snprintf(name, sizeof name, "f%u", i);
        make_file(fx, name, 1 + i, 'a');
        fentry_release(add(fx, fc, name, NOW + i));
    }
    assert_int_equal(fc->count, MAX);
    /* the last MAX stay, each under its own key; the others are gone */
    for (unsigned i = 0; i < KEYS; i++) {
        struct fentry *stale;
        snprintf(name, sizeof name, "/f%u", i);
        struct fentry *e = lookup(fc, name, NOW + KEYS, &stale);
        assert_null(stale);
        if (i < KEYS - MAX) {
            assert_null(e);
            continue;
        }
        assert_non_null(e);
        assert_string_equal(e->key, name);
        assert_int_equal(e->st.st_size, 1 + i);
        fentry_release(e);
    }
    fcache_destroy(fc);
}

static void test_evicted_entry_held_stays_valid(void **state) {
    struct fixture *fx = *state;
    struct fcache *fc = fcache_create(1, VALID, IDLE);
    struct stat st;
    make_file(fx, "small", 50, 'a');
    make_file(fx, "large", FCACHE_MEM_MAX * 2, 'b');
    make_file(fx, "other", 10, 'c');
    struct fentry *small = add(fx, fc, "small", NOW); /* held by a response */
    struct fentry *large = add(fx, fc, "large", NOW); /* evicts small */
    assert_false(small->in_cache);
    fentry_release(add(fx, fc, "other", NOW)); /* evicts large */
    assert_false(large->in_cache);
    assert_int_equal(fc->count, 1);
    assert_false(is_hit(fc, "/small", NOW + 1));
    assert_false(is_hit(fc, "/large", NOW + 1));

    /* the responses can still send every byte */
    assert_true(has_pattern(small->data, 50, 'a'));
    char *buf = malloc(FCACHE_MEM_MAX * 2);
    assert_non_null(buf);
    assert_int_equal(pread(large->fd, buf, FCACHE_MEM_MAX * 2, 0), FCACHE_MEM_MAX * 2);
    assert_true(has_pattern(buf, FCACHE_MEM_MAX * 2, 'b'));
    free(buf);
    /* an evicted entry is never revalidated back into the cache */
    close(open_file(fx, "small", &st));
    assert_false(fcache_still_valid(fc, small, &st, NOW + 2));
    assert_false(is_hit(fc, "/small", NOW + 3));
    fentry_release(small);
    fentry_release(large);
    fcache_destroy(fc);
}

static void test_destroy_with_entries_held(void **state) {
    struct fixture *fx = *state;
    struct fcache *fc = fcache_create(8, VALID, IDLE);
    make_file(fx, "small", 50, 'a');
    make_file(fx, "large", FCACHE_MEM_MAX + 100, 'b');
    struct fentry *small = add(fx, fc, "small", NOW);
    struct fentry *large = add(fx, fc, "large", NOW);
    fentry_release(add(fx, fc, "small", NOW)); /* replaces the first: only ours now */
    fcache_destroy(fc);

    assert_int_equal(small->refs, 1);
    assert_int_equal(large->refs, 1);
    assert_false(large->in_cache);
    assert_true(has_pattern(small->data, 50, 'a'));
    char buf[FCACHE_MEM_MAX + 100];
    assert_int_equal(pread(large->fd, buf, sizeof buf, 0), sizeof buf);
    assert_true(has_pattern(buf, sizeof buf, 'b'));
    fentry_release(small);
    fentry_release(large); /* closes its descriptor (teardown counts) */
}

static void test_standalone_entry(void **state) {
    struct fixture *fx = *state;
    struct stat st;
    make_file(fx, "page.css", 30, 'a');
    int fd = open_file(fx, "page.css", &st);
    struct fentry *e = fentry_new(NULL, "/page.css", 9, fd, &st, "page.css", NOW);
    assert_non_null(e);
    assert_int_equal(e->refs, 1);
    assert_false(e->in_cache);
    assert_int_equal(e->fd, fd); /* small, but sent from the file: no copy */
    assert_null(e->data);
    assert_string_equal(e->mime, "text/css");
    size_t len;
    const char *hdrs = pfd_headers_text(e->hdrs, &len);
    assert_non_null(memmem(hdrs, len, "Accept-Ranges: bytes\r\n", 22));
    char buf[30];
    assert_int_equal(pread(e->fd, buf, sizeof buf, 0), sizeof buf);
    assert_true(has_pattern(buf, sizeof buf, 'a'));
    fentry_release(e); /* closes fd (teardown counts) */
}

static void test_file_shorter_than_stat(void **state) {
    struct fixture *fx = *state;
    struct fcache *fc = fcache_create(8, VALID, IDLE);
    struct stat st;
    char path[256];
    make_file(fx, "shrinks", 1000, 'a');
    int fd = open_file(fx, "shrinks", &st);
    /* truncated between the handler's fstat and the read */
    snprintf(path, sizeof path, "%s/shrinks", fx->s.dir);
    assert_int_equal(truncate(path, 10), 0);
    struct fentry *e = fentry_new(fc, "/shrinks", 8, fd, &st, "shrinks", NOW);
    assert_non_null(e);
    assert_null(e->data); /* never 1000 bytes of which 990 are made up */
    assert_int_equal(e->fd, fd);
    fentry_release(e);
    fcache_destroy(fc);
}

/* The sweep drops entries not used for the idle time (a use keeps one), and
 * those whose file was deleted at once; a held entry keeps its descriptor. */
static void test_sweep_idle_and_deleted(void **state) {
    struct fixture *fx = *state;
    struct fcache *fc = fcache_create(8, 20000, 5000); /* valid: no revalidation here */
    make_file(fx, "used.bin", FCACHE_MEM_MAX + 1, 'u');
    make_file(fx, "idle.bin", FCACHE_MEM_MAX + 1, 'i');
    make_file(fx, "gone.bin", FCACHE_MEM_MAX + 1, 'g');
    fentry_release(add(fx, fc, "used.bin", NOW));
    fentry_release(add(fx, fc, "idle.bin", NOW));
    struct fentry *gone = add(fx, fc, "gone.bin", NOW); /* held, as by a response */
    assert_int_equal(fc->count, 3);

    fcache_sweep(fc, NOW + 1000);
    assert_int_equal(fc->count, 3); /* nothing idle, nothing deleted */
    char path[256];
    snprintf(path, sizeof path, "%s/gone.bin", fx->s.dir);
    assert_int_equal(unlink(path), 0);
    fcache_sweep(fc, NOW + 2000);
    assert_int_equal(fc->count, 2);
    assert_false(gone->in_cache);
    assert_true(gone->fd >= 0); /* still sending from it */
    fentry_release(gone);

    assert_true(is_hit(fc, "/used.bin", NOW + 4000));
    fcache_sweep(fc, NOW + 4999);
    assert_int_equal(fc->count, 2);
    fcache_sweep(fc, NOW + 5000); /* idle.bin: 5 s unused */
    assert_int_equal(fc->count, 1);
    assert_true(is_hit(fc, "/used.bin", NOW + 5000));
    fcache_sweep(fc, NOW + 10000);
    assert_int_equal(fc->count, 0);
    fcache_destroy(fc);
}

/* An entry whose revalidation failed is forgotten; forgetting one already
 * out of the cache (replaced, evicted) changes nothing. */
static void test_forget(void **state) {
    struct fixture *fx = *state;
    struct fcache *fc = fcache_create(8, VALID, IDLE);
    make_file(fx, "a.txt", 10, 'a');
    fentry_release(add(fx, fc, "a.txt", NOW));
    struct fentry *stale;
    assert_null(lookup(fc, "/a.txt", NOW + VALID, &stale));
    assert_non_null(stale);
    fcache_forget(fc, stale);
    assert_false(stale->in_cache);
    assert_int_equal(fc->count, 0);
    fcache_forget(fc, stale);
    assert_int_equal(stale->refs, 1);
    fentry_release(stale);
    assert_null(lookup(fc, "/a.txt", NOW + VALID, &stale));
    assert_null(stale);
    fcache_destroy(fc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_miss_then_hit, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_small_in_memory_large_by_fd, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_headers_and_etag, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_mime_by_name, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_stale_after_valid_interval, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_still_valid, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_new_entry_replaces_old, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_lru_eviction, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_many_keys_share_buckets, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_evicted_entry_held_stays_valid, setup,
                                        scratch_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_with_entries_held, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_standalone_entry, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_file_shorter_than_stat, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_sweep_idle_and_deleted, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_forget, setup, scratch_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
