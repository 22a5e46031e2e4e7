/* Unit tests for workers/range.c: range_parse decides between 200 (ignore the
 * Range header), 206 (one satisfiable byte range) and 416 (unsatisfiable). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "workers/range.h"

#define GIB (1024ull * 1024 * 1024)

struct range_case {
    const char *value;
    uint64_t size;
    enum range_result want;
    uint64_t first, count; /* only for RANGE_OK */
};

static const char *result_name(enum range_result r) {
    switch (r) {
    case RANGE_IGNORE: return "IGNORE";
    case RANGE_OK: return "OK";
    case RANGE_UNSATISFIABLE: return "UNSATISFIABLE";
    }
    return "?";
}

static void check_cases(const struct range_case *cases, size_t n) {
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        const struct range_case *c = &cases[i];
        uint64_t first = 12345, count = 67890;
        enum range_result got = range_parse(c->value, strlen(c->value), c->size, &first, &count);
        if (got != c->want) {
            print_error("\"%s\" size %llu: want %s, got %s\n", c->value,
                        (unsigned long long)c->size, result_name(c->want), result_name(got));
            failures++;
        } else if (got == RANGE_OK && (first != c->first || count != c->count)) {
            print_error("\"%s\" size %llu: want first %llu count %llu, got %llu %llu\n", c->value,
                        (unsigned long long)c->size, (unsigned long long)c->first,
                        (unsigned long long)c->count, (unsigned long long)first,
                        (unsigned long long)count);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

#define CHECK(cases) check_cases(cases, sizeof cases / sizeof cases[0])

static void test_first_last(void **state) {
    static const struct range_case cases[] = {
        {"bytes=0-499", 1000, RANGE_OK, 0, 500},
        {"bytes=500-999", 1000, RANGE_OK, 500, 500},
        {"bytes=0-0", 1000, RANGE_OK, 0, 1},
        {"bytes=999-999", 1000, RANGE_OK, 999, 1},
        {"bytes=0-999", 1000, RANGE_OK, 0, 1000},
        {"bytes=00-09", 1000, RANGE_OK, 0, 10},
        {"bytes=4294967296-4294967305", 5 * GIB, RANGE_OK, 4 * GIB, 10},
    };
    CHECK(cases);
}

static void test_last_clamped_to_size(void **state) {
    static const struct range_case cases[] = {
        {"bytes=0-1000", 1000, RANGE_OK, 0, 1000},
        {"bytes=0-9999999", 1000, RANGE_OK, 0, 1000},
        {"bytes=990-2000", 1000, RANGE_OK, 990, 10},
        {"bytes=0-0", 1, RANGE_OK, 0, 1},
        {"bytes=0-5", 1, RANGE_OK, 0, 1},
    };
    CHECK(cases);
}

static void test_open_ended(void **state) {
    static const struct range_case cases[] = {
        {"bytes=0-", 1000, RANGE_OK, 0, 1000},
        {"bytes=500-", 1000, RANGE_OK, 500, 500},
        {"bytes=999-", 1000, RANGE_OK, 999, 1},
        {"bytes=4294967296-", 5 * GIB, RANGE_OK, 4 * GIB, GIB},
    };
    CHECK(cases);
}

static void test_suffix(void **state) {
    static const struct range_case cases[] = {
        {"bytes=-200", 1000, RANGE_OK, 800, 200},
        {"bytes=-1", 1000, RANGE_OK, 999, 1},
        {"bytes=-1000", 1000, RANGE_OK, 0, 1000},
        {"bytes=-2000", 1000, RANGE_OK, 0, 1000}, /* longer than the file: all of it */
        {"bytes=-1", 1, RANGE_OK, 0, 1},
    };
    CHECK(cases);
}

static void test_unsatisfiable(void **state) {
    static const struct range_case cases[] = {
        {"bytes=1000-", 1000, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=1000-1000", 1000, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=1000-2000", 1000, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=5000-", 1000, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=-0", 1000, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=-000", 1000, RANGE_UNSATISFIABLE, 0, 0},
    };
    CHECK(cases);
}

/* An empty file has no byte that a range could select. */
static void test_empty_representation(void **state) {
    static const struct range_case cases[] = {
        {"bytes=0-", 0, RANGE_UNSATISFIABLE, 0, 0},    {"bytes=0-0", 0, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=0-100", 0, RANGE_UNSATISFIABLE, 0, 0}, {"bytes=-1", 0, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=-0", 0, RANGE_UNSATISFIABLE, 0, 0},    {"bytes=junk", 0, RANGE_IGNORE, 0, 0},
    };
    CHECK(cases);
}

/* Several ranges are allowed to be answered with the whole representation. */
static void test_multiple_ranges_ignored(void **state) {
    static const struct range_case cases[] = {
        {"bytes=0-1,3-4", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=0-1, 3-4", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=-1,0-1", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=0-,", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=5000-6000,0-1", 1000, RANGE_IGNORE, 0, 0},
    };
    CHECK(cases);
}

static void test_malformed_ignored(void **state) {
    static const struct range_case cases[] = {
        {"", 1000, RANGE_IGNORE, 0, 0},
        {"bytes", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=-", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=1", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=a-b", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=1-2x", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=1-x", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=--1", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=1--2", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=+1-2", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=0x10-20", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=1 - 2", 1000, RANGE_IGNORE, 0, 0},
        {"bytes 0-1", 1000, RANGE_IGNORE, 0, 0},
        {"bytes:0-1", 1000, RANGE_IGNORE, 0, 0},
        {"items=0-1", 1000, RANGE_IGNORE, 0, 0},
        {"byte=0-1", 1000, RANGE_IGNORE, 0, 0},
        {"0-1", 1000, RANGE_IGNORE, 0, 0},
        {"bytes=5-3", 1000, RANGE_IGNORE, 0, 0}, /* last before first: invalid, not 416 */
        {"bytes=2000-1000", 1000, RANGE_IGNORE, 0, 0},
    };
    CHECK(cases);
}

static void test_unit_case_insensitive(void **state) {
    static const struct range_case cases[] = {
        {"Bytes=0-9", 1000, RANGE_OK, 0, 10},
        {"BYTES=0-9", 1000, RANGE_OK, 0, 10},
        {"bYtEs=-5", 1000, RANGE_OK, 995, 5},
    };
    CHECK(cases);
}

static void test_whitespace(void **state) {
    static const struct range_case cases[] = {
        {"bytes=0-9 ", 1000, RANGE_OK, 0, 10},     {"bytes=0-9\t", 1000, RANGE_OK, 0, 10},
        {"bytes=0- \t ", 1000, RANGE_OK, 0, 1000}, {"bytes= 0-9", 1000, RANGE_OK, 0, 10},
        {"bytes=\t-5", 1000, RANGE_OK, 995, 5},    {"bytes= ", 1000, RANGE_IGNORE, 0, 0},
    };
    CHECK(cases);
}

/* Numbers beyond 64 bits saturate rather than wrap around to small values. */
static void test_huge_numbers_saturate(void **state) {
    static const struct range_case cases[] = {
        {"bytes=0-99999999999999999999999999", 1000, RANGE_OK, 0, 1000},
        {"bytes=0-18446744073709551615", 1000, RANGE_OK, 0, 1000},
        {"bytes=0-18446744073709551616", 1000, RANGE_OK, 0, 1000},
        {"bytes=-99999999999999999999999999", 1000, RANGE_OK, 0, 1000},
        {"bytes=99999999999999999999999999-", 1000, RANGE_UNSATISFIABLE, 0, 0},
        /* 2^64 + 1 would wrap to 1 */
        {"bytes=18446744073709551617-", 1000, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=18446744073709551616-18446744073709551617", 1000, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=0-", UINT64_MAX, RANGE_OK, 0, UINT64_MAX},
        {"bytes=18446744073709551615-", UINT64_MAX, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=18446744073709551614-", UINT64_MAX, RANGE_OK, UINT64_MAX - 1, 1},
    };
    CHECK(cases);
}

/* The value is a slice of the request buffer: only len bytes belong to it. */
static void test_length_bounds_value(void **state) {
    static const char buf[] = "bytes=0-12\r\nHost: x";
    uint64_t first = 0, count = 0;
    assert_int_equal(range_parse(buf, 10, 1000, &first, &count), RANGE_OK);
    assert_int_equal(first, 0);
    assert_int_equal(count, 13);
    assert_int_equal(range_parse(buf, 9, 1000, &first, &count), RANGE_OK);
    assert_int_equal(count, 2);
    assert_int_equal(range_parse(buf, 5, 1000, &first, &count), RANGE_IGNORE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_last),
        cmocka_unit_test(test_last_clamped_to_size),
        cmocka_unit_test(test_open_ended),
        cmocka_unit_test(test_suffix),
        cmocka_unit_test(test_unsatisfiable),
        cmocka_unit_test(test_empty_representation),
        cmocka_unit_test(test_multiple_ranges_ignored),
        cmocka_unit_test(test_malformed_ignored),
        cmocka_unit_test(test_unit_case_insensitive),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_huge_numbers_saturate),
        cmocka_unit_test(test_length_bounds_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
