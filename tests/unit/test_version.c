/* Unit tests for server/version.c: --version is one line; -V starts with it
 * and names the commit, build, compiler and each library with the version
 * compiled against, the one running and the file it was loaded from. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <http_parser.h>

#include "server/version.h"

/* What print wrote, NUL-terminated; the caller frees it. */
static char *printed(void (*print)(FILE *)) {
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    print(out);
    assert_int_equal(fclose(out), 0);
    return text;
}

/* The value of the line "name: value" (up to its end), or NULL. */
static const char *line_value(const char *text, const char *name, char *value, size_t size) {
    size_t n = strlen(name);
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line += !!line) {
        if (strncmp(line, name, n) == 0 && strncmp(line + n, ": ", 2) == 0) {
            const char *v = line + n + 2, *end = strchr(v, '\n');
            size_t len = end ? (size_t)(end - v) : strlen(v);
            assert_true(len < size);
            memcpy(value, v, len);
            value[len] = '\0';
            return value;
        }
    }
    return NULL;
}

static void test_version_is_one_line(void **state) {
    char *text = printed(version_print);
    assert_string_equal(text, "preforkd " PREFORKD_VERSION "\n");
    free(text);
}

static void test_build_info_starts_with_the_version(void **state) {
    char *text = printed(version_print_build);
    assert_memory_equal(text, "preforkd " PREFORKD_VERSION "\n",
                        strlen("preforkd " PREFORKD_VERSION "\n"));
    char v[512];
    static const char *const names[] = {"commit",      "build", "compiler", "libevent",
                                        "http-parser", "inih",  "zlib",     "glibc"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!line_value(text, names[i], v, sizeof v) || !v[0])
            fail_msg("no %s line:\n%s", names[i], text);
    free(text);
}

static void test_build_info_names_the_library_versions(void **state) {
    char *text = printed(version_print_build);
    char v[512], want[128];

    /* libevent: the running version, the one compiled against, and the
     * files of libevent_core and libevent_pthreads */
    assert_non_null(line_value(text, "libevent", v, sizeof v));
    snprintf(want, sizeof want, "%s, built against %s; ", event_get_version(), LIBEVENT_VERSION);
    assert_memory_equal(v, want, strlen(want));
    assert_non_null(strstr(v, "libevent_core"));
    assert_non_null(strstr(v, "libevent_pthreads"));

    unsigned long hp = http_parser_version();
    assert_non_null(line_value(text, "http-parser", v, sizeof v));
    snprintf(want, sizeof want, "%lu.%lu.%lu, built against %d.%d.%d; ", hp >> 16 & 255,
             hp >> 8 & 255, hp & 255, HTTP_PARSER_VERSION_MAJOR, HTTP_PARSER_VERSION_MINOR,
             HTTP_PARSER_VERSION_PATCH);
    assert_memory_equal(v, want, strlen(want));
    assert_non_null(strstr(v, "libhttp_parser"));

    assert_non_null(line_value(text, "inih", v, sizeof v));
    assert_non_null(strstr(v, "libinih"));
    assert_non_null(line_value(text, "glibc", v, sizeof v));
    assert_non_null(strstr(v, "libc.so"));
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_is_one_line),
        cmocka_unit_test(test_build_info_starts_with_the_version),
        cmocka_unit_test(test_build_info_names_the_library_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
