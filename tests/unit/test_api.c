/* Unit tests for workers/api.c, the application API: the request view
 * (query parameters decoded, path parameters from pattern routes, headers,
 * fields), the checks on answers (a header that would split the answer is
 * refused and fails the request), header blocks, JSON strings, the arena,
 * and route matching (exact, pattern, prefix, methods). Requests are parsed
 * by the real parser into a real exchange; no socket is involved. */
#include <event2/event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/conf.h"
#include "workers/exchange.h"
#include "workers/handlers.h"
#include "workers/route.h"

static const struct http_limits limits = {8192, 32768, 100, 1 << 20};

struct fixture {
    struct event_base *base;
    struct conf conf;
    struct exchange_env env;
    struct routes routes;
    struct exchange *ex;
};

static int setup(void **state) {
    struct fixture *fx = calloc(1, sizeof *fx);
    char err[512];
    fx->base = event_base_new();
    conf_init(&fx->conf);
    assert_int_equal(conf_load_string(&fx->conf,
                                      "[route = /exact]\nhandler = echo\nmethods = GET\n"
                                      "[route = /exact]\nhandler = status\nmethods = POST PUT\n"
                                      "[route /users/{id}/posts/{post}]\nhandler = echo\n"
                                      "[route /users/]\nhandler = status\n"
                                      "[route = /head]\nhandler = echo\nmethods = GET\n"
                                      "[route = /head]\nhandler = status\nmethods = HEAD\n"
                                      "[route /v/{a}]\nhandler = echo\nmethods = GET\n"
                                      "[route /v/{b}]\nhandler = status\nmethods = PUT\n"
                                      "[route /]\nhandler = echo\n",
                                      "api.conf", err, sizeof err),
                     0);
    assert_int_equal(conf_finish(&fx->conf, err, sizeof err), 0);
    assert_int_equal(handlers_load(&fx->conf, err, sizeof err), 0);
    assert_int_equal(routes_init(&fx->routes, &fx->conf, false, err, sizeof err), 0);
    fx->env = (struct exchange_env){.base = fx->base, .conf = &fx->conf, .limits = &limits};
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    struct fixture *fx = *state;
    if (fx->ex) exchange_free(fx->ex);
    routes_free(&fx->routes);
    exchange_env_trim(&fx->env);
    conf_free(&fx->conf);
    event_base_free(fx->base);
    free(fx);
    return 0;
}

/* A parsed request in a fresh exchange, routed; the text stays alive in a
 * static buffer (the request points into it). */
static pfd_req *request(struct fixture *fx, const char *text) {
    static char buf[4096];
    size_t used;
    if (fx->ex) exchange_free(fx->ex);
    fx->ex = exchange_new(&fx->env, NULL);
    snprintf(buf, sizeof buf, "%s", text);
    assert_int_equal(http_msg_head(fx->ex->msg, buf, strlen(buf), &used), HTTP_DONE);
    fx->ex->req = http_msg_request(fx->ex->msg);
    fx->ex->route = routes_match(&fx->routes, fx->ex->req, fx->ex->params, EX_MAX_PARAMS,
                                 &fx->ex->nparams, &fx->ex->allow);
    return (pfd_req *)fx->ex;
}

static void assert_str(pfd_str s, const char *want) {
    if (!want) {
        assert_null(s.p);
        return;
    }
    assert_non_null(s.p);
    if (s.len != strlen(want) || memcmp(s.p, want, s.len) != 0)
        fail_msg("want \"%s\", got \"%.*s\"", want, (int)s.len, s.p);
}

static void test_request_view(void **state) {
    struct fixture *fx = *state;
    pfd_req *r = request(fx, "POST /a%20b/./c?x=1&y=%C3%A9&z=a+b HTTP/1.1\r\nHost: h\r\n"
                             "Content-Type: text/plain\r\nX-A: 1\r\nx-a: 2\r\n\r\n");
    assert_string_equal(pfd_method(r), "POST");
    assert_int_equal(pfd_method_id(r), PFD_POST);
    assert_int_equal(pfd_version(r), 11);
    assert_str(pfd_path(r), "/a b/c");
    assert_str(pfd_target(r), "/a%20b/./c?x=1&y=%C3%A9&z=a+b");
    assert_str(pfd_query(r), "x=1&y=%C3%A9&z=a+b");
    assert_str(pfd_header(r, "x-a"), "1"); /* the first, any case */
    assert_str(pfd_header(r, "X-MISSING"), NULL);
    assert_int_equal(pfd_header_count(r), 4);
    pfd_str n, v;
    pfd_header_at(r, 3, &n, &v);
    assert_str(n, "x-a");
    assert_str(v, "2");
    assert_str(pfd_field(r, PFD_F_CONTENT_TYPE), "text/plain");
    assert_str(pfd_field(r, PFD_F_HOST), "h");
    assert_str(pfd_field(r, PFD_F_RANGE), NULL);
}

static void test_query_parameters(void **state) {
    struct fixture *fx = *state;
    pfd_req *r =
        request(fx, "GET /?a=1&b=%C3%A9&c=x+y&d=&e&&a=2&bad=%G1 HTTP/1.1\r\nHost: h\r\n\r\n");
    pfd_str v;
    assert_int_equal(pfd_query_param(r, "a", &v), 1);
    assert_str(v, "1"); /* the first occurrence wins */
    assert_int_equal(pfd_query_param(r, "b", &v), 1);
    assert_str(v, "\xc3\xa9");
    assert_int_equal(pfd_query_param(r, "c", &v), 1);
    assert_str(v, "x y");
    assert_int_equal(pfd_query_param(r, "d", &v), 1);
    assert_str(v, "");
    assert_int_equal(pfd_query_param(r, "e", &v), 1);
    assert_str(v, "");
    /* absent, and a broken encoding before it is found */
    assert_int_equal(pfd_query_param(r, "zzz", &v), -1);
    r = request(fx, "GET /?a=1 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(pfd_query_param(r, "zzz", &v), 0);
    assert_null(v.p);
    /* iteration */
    r = request(fx, "GET /?x=1&y HTTP/1.1\r\nHost: h\r\n\r\n");
    size_t pos = 0;
    pfd_str n;
    assert_int_equal(pfd_query_next(r, &pos, &n, &v), 1);
    assert_str(n, "x");
    assert_int_equal(pfd_query_next(r, &pos, &n, &v), 1);
    assert_str(n, "y");
    assert_int_equal(pfd_query_next(r, &pos, &n, &v), 0);
    /* no query at all */
    r = request(fx, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_null(pfd_query(r).p);
    assert_int_equal(pfd_query_param(r, "x", &v), 0);
}

static void test_routes_and_path_parameters(void **state) {
    struct fixture *fx = *state;
    pfd_req *r = request(fx, "GET /users/42/posts/a%20b HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_non_null(fx->ex->route);
    assert_string_equal(pfd_route_path(pfd_req_route(r)), "/users/{id}/posts/{post}");
    assert_str(pfd_path_param(r, "id"), "42");
    assert_str(pfd_path_param(r, "post"), "a b"); /* decoded */
    assert_str(pfd_path_param(r, "nope"), NULL);
    /* one segment more or less: the prefix route */
    request(fx, "GET /users/42/posts HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(fx->ex->route->path, "/users/");
    request(fx, "GET /users/42/posts/1/x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(fx->ex->route->path, "/users/");
    /* an empty segment does not fill {id} */
    request(fx, "GET /users//posts/1 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(fx->ex->route->path, "/users/");
    /* exact routes by method; HEAD goes where GET does; others get 405 */
    request(fx, "GET /exact HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(fx->ex->route->handler->name, "echo");
    request(fx, "PUT /exact HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(fx->ex->route->handler->name, "status");
    request(fx, "HEAD /exact HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(fx->ex->route->handler->name, "echo");
    request(fx, "DELETE /exact HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_null(fx->ex->route);
    char allow[96];
    routes_allow_text(fx->ex->allow, allow, sizeof allow);
    assert_string_equal(allow, "GET, HEAD, POST, PUT");
    /* a route that names HEAD takes it, also when one naming GET comes first */
    request(fx, "HEAD /head HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(fx->ex->route->handler->name, "status");
    request(fx, "GET /head HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(fx->ex->route->handler->name, "echo");
    /* patterns with other {names} in the same places are one path, split
     * by method (and fill their own names) */
    r = request(fx, "PUT /v/1 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(fx->ex->route->handler->name, "status");
    assert_str(pfd_path_param(r, "b"), "1");
    request(fx, "DELETE /v/1 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_null(fx->ex->route);
    routes_allow_text(fx->ex->allow, allow, sizeof allow);
    assert_string_equal(allow, "GET, HEAD, PUT");
    /* an exact route matches only itself */
    request(fx, "GET /exact/ HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(fx->ex->route->path, "/");
}

static void test_header_checks(void **state) {
    struct fixture *fx = *state;
    pfd_req *r = request(fx, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(pfd_header_add(r, "X-Fine", "a value\twith tab"), 0);
    assert_false(fx->ex->failed);
    static const char *const bad_values[] = {"a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "a\x01"};
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        r = request(fx, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_int_equal(pfd_header_add(r, "X-Bad", bad_values[i]), -1);
        assert_true(fx->ex->failed); /* the client gets 500, not a split answer */
    }
    static const char *const bad_names[] = {
        "",           "X Bad",      "X:Bad",   "Content-Length", "transfer-encoding",
        "Connection", "Keep-Alive", "Upgrade", "Trailer",        "Proxy-Connection",
        "Date",       "Server"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        r = request(fx, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_int_equal(pfd_header_add(r, bad_names[i], "v"), -1);
        assert_true(fx->ex->failed);
    }
    /* Content-Type goes to pfd_content_type and is checked the same way */
    r = request(fx, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(pfd_header_add(r, "content-type", "text/html"), 0);
    assert_string_equal(fx->ex->resp.content_type, "text/html");
    assert_int_equal(pfd_content_type(r, "text/html\r\nX: y"), -1);
    assert_true(fx->ex->failed);
    /* the type is copied: the caller's string may go at once */
    r = request(fx, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    char *type = strdup("text/x-mine");
    assert_int_equal(pfd_content_type(r, type), 0);
    free(type);
    assert_string_equal(fx->ex->resp.content_type, "text/x-mine");
    /* pfd_error replaces the body, not the header fields added before */
    r = request(fx, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(pfd_header_add(r, "Retry-After", "5"), 0);
    assert_int_equal(pfd_write(r, "partial", 7), 0);
    assert_int_equal(pfd_error(r, 503), 0);
    assert_int_equal(fx->ex->resp.status, 503);
    assert_non_null(
        memmem(fx->ex->resp.headers, fx->ex->resp.headers_len, "Retry-After: 5\r\n", 16));
    assert_memory_equal(fx->ex->resp.mem, "503 Service Unavailable\n", fx->ex->resp.mem_len);
    /* statuses that are not final ones fail too */
    r = request(fx, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    pfd_status(r, 101);
    assert_true(fx->ex->failed);
}

static void test_header_blocks(void **state) {
    pfd_headers *h = pfd_headers_new();
    assert_int_equal(pfd_headers_set(h, "ETag", "\"x\""), 0);
    assert_int_equal(pfd_headers_set(h, "Cache-Control", "max-age=60"), 0);
    assert_int_equal(pfd_headers_set(h, "X-Bad", "a\r\nb"), -1);
    assert_int_equal(pfd_headers_set(h, "Content-Length", "1"), -1);
    assert_int_equal(pfd_headers_set(h, "Content-Type", "text/plain"), -1);
    size_t len;
    const char *text = pfd_headers_text(h, &len);
    const char want[] = "ETag: \"x\"\r\nCache-Control: max-age=60\r\n";
    assert_int_equal(len, sizeof want - 1);
    assert_memory_equal(text, want, len);
    pfd_headers_free(h);
}

static void test_json_strings_and_bodies(void **state) {
    struct fixture *fx = *state;
    pfd_req *r = request(fx, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    const char in[] = "a\"b\\c\nd\x01\x7f\xc3\xa9";
    assert_int_equal(pfd_write_json_string(r, in, sizeof in - 1), 0);
    const char want[] = "\"a\\\"b\\\\c\\nd\\u0001\\u007f\xc3\xa9\"";
    assert_int_equal(fx->ex->resp.mem_len, sizeof want - 1);
    assert_memory_equal(fx->ex->resp.mem, want, sizeof want - 1);
    /* pfd_text replaces what was written before */
    assert_int_equal(pfd_text(r, 201, "made"), 0);
    assert_int_equal(fx->ex->resp.status, 201);
    assert_int_equal(fx->ex->resp.mem_len, 4);
    assert_int_equal(pfd_printf(r, " %d", 7), 0);
    assert_memory_equal(fx->ex->resp.mem, "made 7", 6);
    /* bytes that are no valid UTF-8 become U+FFFD: the output stays JSON */
    assert_int_equal(pfd_text(r, 200, ""), 0);
    const char bad[] = "a\xff\xfe\xc3\xa9\xed\xa0\x80\xf0\x9f\x98\x80\xc3";
    assert_int_equal(pfd_write_json_string(r, bad, sizeof bad - 1), 0);
    const char fixed[] = "\"a\xef\xbf\xbd\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                         "\xf0\x9f\x98\x80\xef\xbf\xbd\"";
    assert_int_equal(fx->ex->resp.mem_len, sizeof fixed - 1);
    assert_memory_equal(fx->ex->resp.mem, fixed, sizeof fixed - 1);
    /* a long string crosses the writer's buffer */
    char big[3000];
    memset(big, '"', sizeof big);
    assert_int_equal(pfd_text(r, 200, ""), 0);
    assert_int_equal(pfd_write_json_string(r, big, sizeof big), 0);
    assert_int_equal(fx->ex->resp.mem_len, 2 + 2 * sizeof big);
}

static void test_arena(void **state) {
    struct fixture *fx = *state;
    pfd_req *r = request(fx, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    char *a = pfd_alloc(r, 3), *b = pfd_alloc(r, 100000);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal((uintptr_t)a % 8, 0);
    assert_int_equal((uintptr_t)b % 8, 0);
    memset(b, 1, 100000); /* ASan: it really is that large */
    /* sizes that would wrap the arena's arithmetic: NULL, not a small block */
    assert_null(pfd_alloc(r, SIZE_MAX));
    assert_null(pfd_alloc(r, SIZE_MAX - 8));
    assert_null(pfd_alloc(r, SIZE_MAX - 16));
    char *s = pfd_sprintf(r, "%s-%d", "x", 42);
    assert_string_equal(s, "x-42");
    struct arena ar;
    arena_init(&ar, 64);
    void *first = arena_alloc(&ar, 24);
    for (int i = 0; i < 1000; i++) assert_non_null(arena_alloc(&ar, 24));
    arena_reset(&ar); /* keeps the first chunk only, emptied */
    assert_ptr_equal(arena_alloc(&ar, 24), first);
    arena_free(&ar);
}

/* Finished exchanges are kept for reuse up to cached_objects, and all of
 * them go at the idle trim. */
static void test_exchange_cache_bound_and_trim(void **state) {
    struct fixture *fx = *state;
    fx->conf.cached_objects = 2;
    struct exchange *ex[5];
    for (int i = 0; i < 5; i++) ex[i] = exchange_new(&fx->env, NULL);
    for (int i = 0; i < 5; i++) exchange_free(ex[i]);
    assert_int_equal(fx->env.nfree, 2);
    /* reuse takes from the cache */
    struct exchange *again = exchange_new(&fx->env, NULL);
    assert_int_equal(fx->env.nfree, 1);
    exchange_free(again);
    exchange_env_trim(&fx->env);
    assert_int_equal(fx->env.nfree, 0);
    assert_null(fx->env.free);
    fx->conf.cached_objects = 0; /* nothing kept */
    exchange_free(exchange_new(&fx->env, NULL));
    assert_int_equal(fx->env.nfree, 0);
}

/* The lock in shared memory: busy for a second taker, and taken back with
 * PFD_LOCK_RECOVERED from a process that died holding it. */
static void test_robust_lock(void **state) {
    pfd_lock *l = mmap(NULL, sizeof *l, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(l != MAP_FAILED);
    assert_int_equal(pfd_lock_init(l), 0);
    assert_int_equal(pfd_lock_acquire(l), 0);
    assert_int_equal(pfd_lock_try(l), PFD_LOCK_BUSY);
    pfd_lock_release(l);
    pid_t pid = fork();
    if (pid == 0) {
        pfd_lock_acquire(l);
        _exit(0); /* dies holding it */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(pfd_lock_try(l), PFD_LOCK_RECOVERED);
    pfd_lock_release(l);
    assert_int_equal(pfd_lock_acquire(l), 0); /* consistent again */
    pfd_lock_release(l);
    munmap(l, sizeof *l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_parameters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_and_path_parameters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_checks, setup, teardown),
        cmocka_unit_test(test_header_blocks),
        cmocka_unit_test_setup_teardown(test_json_strings_and_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arena, setup, teardown),
        cmocka_unit_test(test_robust_lock),
        cmocka_unit_test_setup_teardown(test_exchange_cache_bound_and_trim, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
