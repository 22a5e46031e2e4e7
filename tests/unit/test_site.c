/* Unit tests for workers/site.c: the variables of return (expansion and
 * its escaping in URLs), the Host name, and the parsing of the route
 * settings header, cache_control, expires, cors, error_page and return. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "workers/site.h"

#define S(lit) ((pfd_str){lit, sizeof lit - 1})

static const struct site_vars vars = {
    .scheme = S("https"),
    .host = S("example.org"),
    .request_uri = S("/a%20b?x=1&y=2"),
    .uri = S("/a b"),
    .args = S("x=1&y=2"),
};

static void expect_expand(const char *tmpl, const struct site_vars *v, bool url, const char *want) {
    char out[512];
    size_t n = site_expand(tmpl, v, url, out, sizeof out);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void test_each_variable(void **state) {
    (void)state;
    expect_expand("$scheme", &vars, true, "https");
    expect_expand("$host", &vars, true, "example.org");
    expect_expand("$request_uri", &vars, true, "/a%20b?x=1&y=2");
    expect_expand("$uri", &vars, true, "/a%20b");
    expect_expand("$args", &vars, true, "x=1&y=2");
    expect_expand("$scheme://$host$request_uri", &vars, true, "https://example.org/a%20b?x=1&y=2");
    expect_expand("https://new.example${uri}.html?$args", &vars, true,
                  "https://new.example/a%20b.html?x=1&y=2");
}

static void test_text_is_not_encoded(void **state) {
    (void)state;
    expect_expand("path $uri on $host", &vars, false, "path /a b on example.org");
}

static void test_literal_dollar(void **state) {
    (void)state;
    expect_expand("costs $5 or $", &vars, false, "costs $5 or $");
}

static void test_injection_is_encoded(void **state) {
    (void)state;
    /* a decoded path may hold CR LF, '?', '#' and '%': never raw in a URL */
    struct site_vars v = vars;
    v.uri = S("/x\r\nSet-Cookie: a=b?#%");
    expect_expand("$uri", &v, true, "/x%0D%0ASet-Cookie:%20a=b%3F%23%25");
    v.args = S("a=\x01\x7f\xff");
    expect_expand("?$args", &v, true, "?a=%01%7F%FF");
}

static void test_truncation_reports_length(void **state) {
    (void)state;
    char out[8];
    size_t n = site_expand("$scheme://$host", &vars, true, out, sizeof out);
    assert_int_equal(n, strlen("https://example.org"));
    assert_string_equal(out, "https:/");
    assert_int_equal(site_expand("$host", &vars, true, NULL, 0), 11);
}

static void test_template_check(void **state) {
    (void)state;
    char err[256];
    assert_int_equal(site_template_check("https://x$request_uri", true, err, sizeof err), 0);
    assert_int_equal(site_template_check("${uri}x", true, err, sizeof err), 0);
    assert_int_equal(site_template_check("$foo", true, err, sizeof err), -1);
    assert_non_null(strstr(err, "$foo"));
    assert_int_equal(site_template_check("${uri", true, err, sizeof err), -1);
    assert_int_equal(site_template_check("a b", true, err, sizeof err), -1);
    assert_int_equal(site_template_check("a b", false, err, sizeof err), 0);
}

static void test_host(void **state) {
    (void)state;
    char out[64];
    size_t n;
    assert_int_equal(site_host(S("Example.ORG:8080"), out, sizeof out, &n), 0);
    assert_string_equal(out, "example.org");
    assert_int_equal(site_host(S("[::1]:80"), out, sizeof out, &n), 0);
    assert_string_equal(out, "[::1]");
    assert_int_equal(site_host(S("a/b"), out, sizeof out, &n), -1);
    assert_int_equal(site_host(S("a\rb"), out, sizeof out, &n), -1);
    assert_int_equal(site_host(S("[::1"), out, sizeof out, &n), -1);
}

/* site_set on a fresh site; returns its rc and frees the site. */
static int set1(const char *name, const char *value, char *err, size_t errlen) {
    struct site *s = NULL;
    int rc = site_set(&s, name, value, 1, err, errlen);
    site_free(s);
    return rc;
}

static void test_settings(void **state) {
    (void)state;
    char err[256];
    struct site *s = NULL;
    assert_int_equal(site_set(&s, "root", "/x", 1, err, sizeof err), -2);
    assert_null(s);
    assert_int_equal(site_set(&s, "header", "X-A: b c always", 1, err, sizeof err), 0);
    assert_int_equal(site_set(&s, "header", "X-B:  d ", 2, err, sizeof err), 0);
    assert_int_equal(s->nheaders, 2);
    assert_string_equal(s->headers[0].value, "b c");
    assert_true(s->headers[0].always);
    assert_string_equal(s->headers[1].value, "d");
    assert_false(s->headers[1].always);
    assert_int_equal(site_set(&s, "expires", "7d", 3, err, sizeof err), 0);
    assert_int_equal(s->expires_s, 7 * 86400);
    assert_int_equal(site_set(&s, "cache_control", "public", 4, err, sizeof err), -1);
    assert_int_equal(site_set(&s, "error_page", "500 502 /50x.html", 5, err, sizeof err), 0);
    assert_int_equal(site_set(&s, "error_page", "404 /404.html", 6, err, sizeof err), 0);
    assert_int_equal(s->nerrors, 3);
    assert_string_equal(s->errors[1].uri, "/50x.html");
    assert_int_equal(site_set(&s, "error_page", "404 /other.html", 7, err, sizeof err), -1);
    assert_int_equal(site_set(&s, "return", "301 https://x$request_uri", 8, err, sizeof err), 0);
    assert_int_equal(s->ret_status, 301);
    assert_int_equal(
        site_set(&s, "cors", "https://a.example http://b.example:8080", 9, err, sizeof err), 0);
    assert_int_equal(s->norigins, 2);
    site_free(s);

    assert_int_equal(set1("header", "Content-Length: 5", err, sizeof err), -1);
    assert_non_null(strstr(err, "written by the server"));
    assert_int_equal(set1("header", "server: x", err, sizeof err), -1);
    assert_int_equal(set1("header", "X-A: a\rb", err, sizeof err), -1);
    assert_int_equal(set1("header", "X A: b", err, sizeof err), -1);
    assert_int_equal(set1("header", "X-A", err, sizeof err), -1);
    assert_int_equal(set1("header", "X-A: always", err, sizeof err), 0); /* the value */
    assert_int_equal(set1("expires", "soon", err, sizeof err), -1);
    assert_int_equal(set1("expires", "11y", err, sizeof err), -1);
    assert_int_equal(set1("cors", "example.org", err, sizeof err), -1);
    assert_int_equal(set1("cors", "https://a.example/path", err, sizeof err), -1);
    assert_int_equal(set1("error_page", "404", err, sizeof err), -1);
    assert_int_equal(set1("error_page", "200 /x.html", err, sizeof err), -1);
    assert_int_equal(set1("error_page", "404 /../x.html", err, sizeof err), -1);
    assert_int_equal(set1("error_page", "404 /..", err, sizeof err), -1);
    assert_int_equal(set1("error_page", "404 /", err, sizeof err), -1);
    assert_int_equal(set1("error_page", "404 /a//b", err, sizeof err), -1);
    assert_int_equal(set1("error_page", "404 x.html", err, sizeof err), -1);
    assert_int_equal(set1("return", "301", err, sizeof err), -1);
    assert_int_equal(set1("return", "301 https://x/$nope", err, sizeof err), -1);
    assert_int_equal(set1("return", "abc", err, sizeof err), -1);
    assert_int_equal(set1("return", "200 \"ok $host\"", err, sizeof err), 0);
    assert_int_equal(set1("return", "404", err, sizeof err), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_variable),
        cmocka_unit_test(test_text_is_not_encoded),
        cmocka_unit_test(test_literal_dollar),
        cmocka_unit_test(test_injection_is_encoded),
        cmocka_unit_test(test_truncation_reports_length),
        cmocka_unit_test(test_template_check),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
