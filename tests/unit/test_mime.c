/* Unit tests for workers/mime.c: the Content-Type the static handler sends,
 * chosen by the file name's extension. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ---- route tables: mime.types files and charsets ---- */

static struct mime_table *table_of(const char *text, const char *charset) {
    struct mime_table *t = mime_table_new();
    char err[256] = "";
    assert_non_null(t);
    if (text && mime_table_parse(t, text, strlen(text), "m.types", err, sizeof err) < 0)
        fail_msg("%s", err);
    assert_int_equal(mime_table_finish(t, charset), 0);
    return t;
}

static void test_table_builtin_with_charset(void **state) {
    struct mime_table *t = table_of(NULL, "utf-8");
    assert_string_equal(mime_table_type(t, "/a.html"), "text/html; charset=utf-8");
    assert_string_equal(mime_table_type(t, "/A.HTML"), "text/html; charset=utf-8");
    assert_string_equal(mime_table_type(t, "/a.json"), "application/json; charset=utf-8");
    assert_string_equal(mime_table_type(t, "/a.svg"), "image/svg+xml; charset=utf-8");
    assert_string_equal(mime_table_type(t, "/m.webmanifest"),
                        "application/manifest+json; charset=utf-8");
    assert_string_equal(mime_table_type(t, "/a.mjs"), "text/javascript; charset=utf-8");
    assert_string_equal(mime_table_type(t, "/a.png"), "image/png");
    assert_string_equal(mime_table_type(t, "/a.wasm"), "application/wasm");
    assert_string_equal(mime_table_type(t, "/a.avif"), "image/avif");
    assert_string_equal(mime_table_type(t, "/a.webp"), "image/webp");
    assert_string_equal(mime_table_type(t, "/a.woff2"), "font/woff2");
    assert_string_equal(mime_table_type(t, "/README"), OCTET);
    assert_string_equal(mime_table_type(t, "/x.d/README"), OCTET);
    assert_string_equal(mime_table_type(t, "/a.zzz"), OCTET);
    mime_table_free(t);
    t = table_of(NULL, NULL);
    assert_string_equal(mime_table_type(t, "/a.html"), "text/html");
    mime_table_free(t);
}

static void test_is_text(void **state) {
    assert_true(mime_is_text("text/plain"));
    assert_true(mime_is_text("application/javascript"));
    assert_true(mime_is_text("application/ld+json"));
    assert_true(mime_is_text("image/svg+xml"));
    assert_false(mime_is_text("application/jsonp"));
    assert_false(mime_is_text("image/png"));
    assert_false(mime_is_text("application/octet-stream"));
}

static void test_table_file_extends_and_overrides(void **state) {
    struct mime_table *t = table_of("# a comment\n"
                                    "\n"
                                    "application/x-foo\tfoo  FOO2\r\n"
                                    "text/x-custom   html   # html now custom\n"
                                    "application/activemessage\n" /* no extension: fine */
                                    "application/x-a a\n"
                                    "application/x-b a\n"   /* the later wins */
                                    "   image/x-last last", /* no final newline */
                                    "utf-8");
    assert_string_equal(mime_table_type(t, "/x.foo"), "application/x-foo");
    assert_string_equal(mime_table_type(t, "/x.Foo2"), "application/x-foo");
    assert_string_equal(mime_table_type(t, "/x.html"), "text/x-custom; charset=utf-8");
    assert_string_equal(mime_table_type(t, "/x.a"), "application/x-b");
    assert_string_equal(mime_table_type(t, "/x.last"), "image/x-last");
    assert_string_equal(mime_table_type(t, "/x.css"), "text/css; charset=utf-8");
    mime_table_free(t);
}

static void test_table_bad_lines(void **state) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"text/plain txt\nnot-a-type foo\n", "m.types:2: \"not-a-type\" is not a media type"},
        {"types {\n", "m.types:1: \"types\" is not a media type"},
        {"\n\n\ntext/ x\n", "m.types:4: \"text/\" is not a media type"},
        {"/plain x\n", "m.types:1: \"/plain\" is not a media type"},
        {"text/plain .txt\n", "m.types:1: \".txt\" is not a file extension"},
        {"text/plain a/b\n", "m.types:1: \"a/b\" is not a file extension"},
        {"text/plain txt;\n", "m.types:1: \"txt;\" is not a file extension"},
        {"text/html; html\n", "m.types:1: \"text/html;\" is not a media type"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mime_table *t = mime_table_new();
        char err[256] = "";
        assert_int_equal(
            mime_table_parse(t, cases[i].text, strlen(cases[i].text), "m.types", err, sizeof err),
            -1);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("case %zu: want \"%s...\", got \"%s\"", i, cases[i].want, err);
        /* nothing of a refused text stays */
        assert_int_equal(mime_table_finish(t, NULL), 0);
        assert_string_equal(mime_table_type(t, "/x.txt"), "text/plain");
        mime_table_free(t);
    }
}

static void test_table_load_file(void **state) {
    char path[] = "/tmp/preforkd-mime-XXXXXX", err[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "application/x-thing thing\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    struct mime_table *t = mime_table_new();
    assert_int_equal(mime_table_load(t, path, err, sizeof err), 0);
    unlink(path);
    assert_int_equal(mime_table_load(t, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "No such file"));
    assert_int_equal(mime_table_finish(t, "utf-8"), 0);
    assert_string_equal(mime_table_type(t, "a.thing"), "application/x-thing");
    mime_table_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_extensions),
        cmocka_unit_test(test_case_insensitive),
        cmocka_unit_test(test_last_extension_wins),
        cmocka_unit_test(test_no_extension),
        cmocka_unit_test(test_dot_in_directory_only),
        cmocka_unit_test(test_unknown_extension_is_octet_stream),
        cmocka_unit_test(test_table_builtin_with_charset),
        cmocka_unit_test(test_is_text),
        cmocka_unit_test(test_table_file_extends_and_overrides),
        cmocka_unit_test(test_table_bad_lines),
        cmocka_unit_test(test_table_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
