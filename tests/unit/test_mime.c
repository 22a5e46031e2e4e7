/* Unit tests for workers/mime.c: the Content-Type the static handler sends,
 * chosen by the file name's extension. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "workers/mime.h"

#define OCTET "application/octet-stream"

struct mime_case {
    const char *path;
    const char *want;
};

static void check_cases(const struct mime_case *cases, size_t n) {
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        const char *got = mime_type(cases[i].path);
        if (got == NULL || strcmp(got, cases[i].want) != 0) {
            print_error("\"%s\": want %s, got %s\n", cases[i].path, cases[i].want,
                        got ? got : "(null)");
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

#define CHECK(cases) check_cases(cases, sizeof cases / sizeof cases[0])

static void test_known_extensions(void **state) {
    static const struct mime_case cases[] = {
        {"/index.html", "text/html"},      {"/old.htm", "text/html"},
        {"/site.css", "text/css"},         {"/app.js", "text/javascript"},
        {"/mod.mjs", "text/javascript"},   {"/data.json", "application/json"},
        {"/notes.txt", "text/plain"},      {"/logo.svg", "image/svg+xml"},
        {"/logo.png", "image/png"},        {"/photo.jpg", "image/jpeg"},
        {"/photo.jpeg", "image/jpeg"},     {"/anim.gif", "image/gif"},
        {"/pic.webp", "image/webp"},       {"/favicon.ico", "image/vnd.microsoft.icon"},
        {"/font.woff", "font/woff"},       {"/font.woff2", "font/woff2"},
        {"/app.wasm", "application/wasm"}, {"/doc.pdf", "application/pdf"},
        {"/clip.mp4", "video/mp4"},        {"/song.mp3", "audio/mpeg"},
        {"index.html", "text/html"}, /* a bare file name works too */
        {"/a/b/c/deep.css", "text/css"},
    };
    CHECK(cases);
}

static void test_case_insensitive(void **state) {
    static const struct mime_case cases[] = {
        {"/INDEX.HTML", "text/html"},  {"/Index.Html", "text/html"},  {"/photo.JPG", "image/jpeg"},
        {"/photo.JpEg", "image/jpeg"}, {"/font.WOFF2", "font/woff2"},
    };
    CHECK(cases);
}

/* Only the last extension counts: archive.tar.gz is gzip, not tar. */
static void test_last_extension_wins(void **state) {
    static const struct mime_case cases[] = {
        {"/archive.tar.gz", "application/gzip"},
        {"/archive.tar", "application/x-tar"},
        {"/page.html.txt", "text/plain"},
        {"/jquery.min.js", "text/javascript"},
    };
    CHECK(cases);
}

static void test_no_extension(void **state) {
    static const struct mime_case cases[] = {
        {"/README", OCTET}, {"/Makefile", OCTET}, {"/file.", OCTET},
        {"", OCTET},        {"/", OCTET},         {"/dir/", OCTET},
    };
    CHECK(cases);
}

/* A dot in a folder name is not the file's extension. */
static void test_dot_in_directory_only(void **state) {
    static const struct mime_case cases[] = {
        {"/site.d/README", OCTET}, {"/v1.html/data", OCTET},        {"/a.css/b.js/plain", OCTET},
        {"/a.txt/", OCTET},        {"/v1.2/logo.png", "image/png"},
    };
    CHECK(cases);
}

static void test_unknown_extension_is_octet_stream(void **state) {
    static const struct mime_case cases[] = {
        {"/setup.exe", OCTET},  {"/data.bin", OCTET}, {"/x.unknownext", OCTET},
        {"/page.htmlx", OCTET}, {"/page.ht", OCTET},  {"/page.h", OCTET},
        {"/font.woff3", OCTET}, {"/a.js.bak", OCTET},
    };
    CHECK(cases);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_extensions),
        cmocka_unit_test(test_case_insensitive),
        cmocka_unit_test(test_last_extension_wins),
        cmocka_unit_test(test_no_extension),
        cmocka_unit_test(test_dot_in_directory_only),
        cmocka_unit_test(test_unknown_extension_is_octet_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
