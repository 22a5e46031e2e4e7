/* Unit tests for workers/gzip.c: libdeflate's gzip read back by zlib, a
 * compressor per thread and level, and their end. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "workers/gzip.h"

/* zlib's gunzip of in[0, n) into out; its length, or -1. */
static long gunzip(const char *in, size_t n, char *out, size_t cap) {
    z_stream z = {0};
    if (inflateInit2(&z, 16 + 15) != Z_OK) return -1;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    int rc = inflate(&z, Z_FINISH);
    long len = rc == Z_STREAM_END && z.avail_in == 0 ? (long)z.total_out : -1;
    inflateEnd(&z);
    return len;
}

static char *text(size_t n) {
    char *t = malloc(n);
    for (size_t i = 0; i < n; i++) t[i] = "the quick brown fox jumps over the lazy dog\n"[i % 44];
    return t;
}

static void test_round_trip_each_level(void **state) {
    (void)state;
    size_t n = 100000, prev = 0;
    char *in = text(n), *back = malloc(n);
    for (int level = 1; level <= 9; level++) {
        size_t len = 0;
        char *gz = gzip_compress(in, n, level, &len);
        assert_non_null(gz);
        assert_true(len > 18 && len < n / 20);
        assert_memory_equal(gz, "\x1f\x8b\x08", 3); /* gzip, deflate */
        assert_int_equal(gunzip(gz, len, back, n), (long)n);
        assert_memory_equal(back, in, n);
        if (level == 9) assert_true(len <= prev); /* 9 is never larger than 1 */
        if (level == 1) prev = len;
        free(gz);
    }
    gzip_thread_end();
    free(in);
    free(back);
}

static void test_empty_and_incompressible(void **state) {
    (void)state;
    size_t len = 0;
    char *gz = gzip_compress("", 0, 6, &len);
    char back[16];
    assert_non_null(gz);
    assert_int_equal(gunzip(gz, len, back, sizeof back), 0);
    free(gz);
    unsigned char noise[4096];
    uint64_t x = 42;
    for (size_t i = 0; i < sizeof noise; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        noise[i] = (unsigned char)(x >> 56);
    }
    gz = gzip_compress(noise, sizeof noise, 6, &len);
    assert_non_null(gz);
    assert_true(len >= sizeof noise); /* stored: larger, still valid */
    char out[8192];
    assert_int_equal(gunzip(gz, len, out, sizeof out), (long)sizeof noise);
    assert_memory_equal(out, noise, sizeof noise);
    free(gz);
    gzip_thread_end();
}

static void test_bad_levels(void **state) {
    (void)state;
    size_t len = 0;
    assert_null(gzip_compress("abc", 3, 0, &len));
    assert_null(gzip_compress("abc", 3, 10, &len));
    assert_null(gzip_compress("abc", 3, 12, &len));
    assert_null(gzip_compress("abc", 3, -1, &len));
}

/* Threads compress at once, each with its own compressors, freed as each
 * thread ends (the key's destructor: LeakSanitizer checks). */
static void *compress_some(void *arg) {
    const char *in = arg;
    for (int i = 0; i < 20; i++) {
        size_t len = 0;
        char *gz = gzip_compress(in, 50000, 1 + i % 9, &len), back[50000];
        if (!gz || gunzip(gz, len, back, sizeof back) != 50000 || memcmp(back, in, 50000)) {
            free(gz);
            return (void *)1;
        }
        free(gz);
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    char *in = text(50000);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&t[i], NULL, compress_some, in), 0);
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_null(rc);
    }
    free(in);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_each_level),
        cmocka_unit_test(test_empty_and_incompressible),
        cmocka_unit_test(test_bad_levels),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
