/* Unit tests for workers/path.c: path_normalize turns a request target's path
 * into the path a handler may open, and refuses anything that could escape the
 * document root or that is not a well-formed path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "workers/path.h"

struct path_case {
    const char *in;
    const char *want; /* NULL: the path must be refused */
};

/* Runs one case with an output buffer of exactly the documented size, so that
 * AddressSanitizer catches a write past len + 1 bytes. */
static void check_cases(const struct path_case *cases, size_t n) {
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(cases[i].in);
        char *out = malloc(len + 1);
        assert_non_null(out);
        ssize_t got = path_normalize(cases[i].in, len, out);
        if (cases[i].want == NULL) {
            if (got != -1) {
                print_error("\"%s\": want refusal, got \"%s\"\n", cases[i].in, out);
                failures++;
            }
        } else if (got < 0) {
            print_error("\"%s\": want \"%s\", got refusal\n", cases[i].in, cases[i].want);
            failures++;
        } else if (strcmp(out, cases[i].want) != 0 || (size_t)got != strlen(cases[i].want)) {
            print_error("\"%s\": want \"%s\", got \"%s\" (length %zd)\n", cases[i].in,
                        cases[i].want, out, got);
            failures++;
        }
        free(out);
    }
    assert_int_equal(failures, 0);
}

#define CHECK(cases) check_cases(cases, sizeof cases / sizeof cases[0])

static void test_plain_paths(void **state) {
    static const struct path_case cases[] = {
        {"/", "/"},
        {"/index.html", "/index.html"},
        {"/a/b/c.txt", "/a/b/c.txt"},
        {"/a..b", "/a..b"},
        {"/...", "/..."},
        {"/.hidden", "/.hidden"},
        {"/a/..b/c", "/a/..b/c"},
        {"/a/b.", "/a/b."},
    };
    CHECK(cases);
}

static void test_percent_decoding(void **state) {
    static const struct path_case cases[] = {
        {"/a%20b", "/a b"},
        {"/%41%42%43", "/ABC"},
        {"/%7e", "/~"}, /* lower-case hex digits */
        {"/%7E", "/~"},
        {"/caf%C3%A9", "/caf\xC3\xA9"},
        {"/a%2fb", "/a/b"}, /* an encoded slash separates segments too */
        {"/a%2Fb", "/a/b"},
        {"/%25", "/%"},
        {"/%252e%252e", "/%2e%2e"}, /* decoded once, not twice */
        {"/%2e", "/"},
    };
    CHECK(cases);
}

static void test_slash_collapsing(void **state) {
    static const struct path_case cases[] = {
        {"//", "/"},       {"///", "/"},          {"//a", "/a"},
        {"/a//b", "/a/b"}, {"/a///b//", "/a/b/"}, {"/a/%2f/b", "/a/b"},
    };
    CHECK(cases);
}

static void test_dot_segments(void **state) {
    static const struct path_case cases[] = {
        {"/.", "/"},
        {"/./", "/"},
        {"/a/./b", "/a/b"},
        {"/a/b/../c", "/a/c"},
        {"/a/b/../../c", "/c"},
        {"/a/..", "/"},
        {"/a/../", "/"},
        {"/a/b/c/../../d/./e", "/a/d/e"},
        {"/a/%2e%2e/b", "/b"},
        {"/a/%2E%2E/b", "/b"},
        {"/a/.%2e/b", "/b"},
        {"/a/%2e./b", "/b"},
        {"/a/..%2fb", "/b"},
        {"/a/..%2Fb", "/b"},
        {"/a/b%2f..%2fc", "/a/c"},
        {"/a/%2e/b", "/a/b"},
    };
    CHECK(cases);
}

/* A directory request keeps its trailing slash, so the static handler can tell
 * "/dir/" (serve the index) from "/dir" (redirect). "." and ".." as the last
 * segment name a directory as well. */
static void test_trailing_slash(void **state) {
    static const struct path_case cases[] = {
        {"/a/", "/a/"},         {"/a/b/", "/a/b/"},    {"/a/.", "/a/"},
        {"/a/b/.", "/a/b/"},    {"/a/b/..", "/a/"},    {"/a/b/%2e", "/a/b/"},
        {"/a/b/%2e%2e", "/a/"}, {"/a/b/..%2f", "/a/"}, {"/a/b", "/a/b"}, /* a file stays a file */
        {"/a/b/c/..", "/a/b/"},
    };
    CHECK(cases);
}

static void test_above_root_refused(void **state) {
    static const struct path_case cases[] = {
        {"/..", NULL},
        {"/../", NULL},
        {"/../etc/passwd", NULL},
        {"/a/../..", NULL},
        {"/a/../../etc/passwd", NULL},
        {"/./../a", NULL},
        {"//../a", NULL},
        {"/%2e%2e", NULL},
        {"/%2E%2E/etc/passwd", NULL},
        {"/.%2e/a", NULL},
        {"/%2e./a", NULL},
        {"/..%2fetc%2fpasswd", NULL},
        {"/..%2Fa", NULL},
        {"/%2e%2e%2f%2e%2e%2fetc", NULL},
        {"/a%2f..%2f..%2fb", NULL},
        {"/a/b/../../../c", NULL},
    };
    CHECK(cases);
}

static void test_encoded_nul_refused(void **state) {
    static const struct path_case cases[] = {
        {"/%00", NULL},
        {"/a%00b", NULL},
        {"/index.html%00.txt", NULL},
        {"/a/%00/", NULL},
    };
    CHECK(cases);
}

static void test_raw_nul_refused(void **state) {
    static const char in[] = "/a\0b";
    char out[sizeof in];
    assert_int_equal(path_normalize(in, sizeof in - 1, out), -1);
}

static void test_bad_escapes_refused(void **state) {
    static const struct path_case cases[] = {
        {"/%", NULL},    {"/a%", NULL},   {"/%4", NULL},       {"/a%4", NULL},
        {"/%zz", NULL},  {"/%g0", NULL},  {"/%0g", NULL},      {"/%%41", NULL},
        {"/% 41", NULL}, {"/%4/b", NULL}, {"/a%2/b%2f", NULL}, {"/%-1", NULL},
    };
    CHECK(cases);
}

static void test_not_starting_with_slash_refused(void **state) {
    static const struct path_case cases[] = {
        {"", NULL},           {"a/b", NULL},
        {"index.html", NULL}, {"%2fa", NULL}, /* an encoded slash does not count */
        {"*", NULL},          {"http://example.com/", NULL},
        {"../a", NULL},       {".", NULL},
    };
    CHECK(cases);
}

/* The length argument bounds the input: bytes after it are not part of the path. */
static void test_length_bounds_input(void **state) {
    static const char in[] = "/a/b?x=/../..";
    char out[sizeof in];
    assert_int_equal(path_normalize(in, 4, out), 4);
    assert_string_equal(out, "/a/b");
    /* a %-escape cut off by the length is malformed, whatever follows */
    static const char cut[] = "/a%41";
    assert_int_equal(path_normalize(cut, 4, out), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_paths),
        cmocka_unit_test(test_percent_decoding),
        cmocka_unit_test(test_slash_collapsing),
        cmocka_unit_test(test_dot_segments),
        cmocka_unit_test(test_trailing_slash),
        cmocka_unit_test(test_above_root_refused),
        cmocka_unit_test(test_encoded_nul_refused),
        cmocka_unit_test(test_raw_nul_refused),
        cmocka_unit_test(test_bad_escapes_refused),
        cmocka_unit_test(test_not_starting_with_slash_refused),
        cmocka_unit_test(test_length_bounds_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
