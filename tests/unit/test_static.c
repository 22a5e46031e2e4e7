/* Unit tests for workers/static.c: opening files beneath a route's root, with
 * openat2(RESOLVE_BENEATH) and with the real-path fallback used on kernels
 * without openat2 (forced here through the file's no_openat2 switch). Both
 * must serve what is inside the root, symlinks included, and refuse every
 * way out. The file under test is included to reach its static functions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "workers/static.c"

struct fixture {
    char dir[64];   /* holds root/ and outside.txt */
    char root[128]; /* the route's root */
    struct static_route rt;
};

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state) {
    struct fixture *fx = calloc(1, sizeof *fx);
    char path[256];
    strcpy(fx->dir, "/tmp/preforkd-static-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->root, sizeof fx->root, "%s/root", fx->dir);
    assert_int_equal(mkdir(fx->root, 0755), 0);
    snprintf(path, sizeof path, "%s/outside.txt", fx->dir);
    write_file(path, "secret");
    snprintf(path, sizeof path, "%s/inside.txt", fx->root);
    write_file(path, "inside");
    snprintf(path, sizeof path, "%s/sub", fx->root);
    assert_int_equal(mkdir(path, 0755), 0);

    /* symlinks: relative inside, absolute inside, relative out, absolute out,
     * a directory out */
    snprintf(path, sizeof path, "%s/sub/rel-in", fx->root);
    assert_int_equal(symlink("../inside.txt", path), 0);
    char target[256];
    snprintf(target, sizeof target, "%s/inside.txt", fx->root);
    snprintf(path, sizeof path, "%s/abs-in", fx->root);
    assert_int_equal(symlink(target, path), 0);
    snprintf(path, sizeof path, "%s/rel-out", fx->root);
    assert_int_equal(symlink("../outside.txt", path), 0);
    snprintf(target, sizeof target, "%s/outside.txt", fx->dir);
    snprintf(path, sizeof path, "%s/abs-out", fx->root);
    assert_int_equal(symlink(target, path), 0);
    snprintf(path, sizeof path, "%s/dir-out", fx->root);
    assert_int_equal(symlink(fx->dir, path), 0);

    fx->rt.root_fd = open(fx->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    fx->rt.root_real = realpath(fx->root, NULL);
    assert_true(fx->rt.root_fd >= 0);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    struct fixture *fx = *state;
    char cmd[200];
    close(fx->rt.root_fd);
    free(fx->rt.root_real);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    no_openat2 = 0;
    return 0;
}

/* Reads the file opened for rel, or returns the errno of the refusal. */
static int open_and_read(struct fixture *fx, const char *rel, char *out, size_t outlen) {
    int fd = open_beneath(&fx->rt, rel);
    if (fd < 0) return errno;
    ssize_t n = read(fd, out, outlen - 1);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    return 0;
}

static void check_all(struct fixture *fx) {
    char buf[64];
    assert_int_equal(open_and_read(fx, "inside.txt", buf, sizeof buf), 0);
    assert_string_equal(buf, "inside");
    assert_int_equal(open_and_read(fx, "sub/rel-in", buf, sizeof buf), 0);
    assert_string_equal(buf, "inside");
    assert_int_equal(open_and_read(fx, "abs-in", buf, sizeof buf), 0);
    assert_string_equal(buf, "inside");
    assert_int_equal(open_and_read(fx, "rel-out", buf, sizeof buf), EXDEV);
    assert_int_equal(open_and_read(fx, "abs-out", buf, sizeof buf), EXDEV);
    assert_int_equal(open_and_read(fx, "dir-out/outside.txt", buf, sizeof buf), EXDEV);
    assert_int_equal(open_and_read(fx, "missing", buf, sizeof buf), ENOENT);
    /* ".." never reaches here (paths are normalized), but must not work */
    assert_int_not_equal(open_and_read(fx, "../outside.txt", buf, sizeof buf), 0);
    assert_int_equal(status_for_errno(EXDEV), 403);
    assert_int_equal(status_for_errno(ENOENT), 404);
}

static void test_with_openat2(void **state) {
    no_openat2 = 0;
    check_all(*state);
}

static void test_fallback_without_openat2(void **state) {
    no_openat2 = 1;
    check_all(*state);
}

/* try_files items: $uri replaced (anywhere, any number of times), one slash
 * where the item and the path both bring one. */
static void test_try_expand(void **state) {
    static const struct {
        const char *item, *path, *want;
    } cases[] = {
        {"$uri", "/a/b.css", "/a/b.css"},
        {"$uri.html", "/about", "/about.html"},
        {"$uri.html", "/", "/.html"},
        {"$uri/", "/docs", "/docs/"},
        {"$uri/", "/docs/", "/docs/"},
        {"$uri/", "/", "/"},
        {"/index.html", "/any/thing", "/index.html"},
        {"/cache$uri", "/x/y", "/cache/x/y"},
        {"/cache/$uri", "/x/y", "/cache/x/y"},
        {"$uri$uri", "/a", "/a/a"},
        {"/static/$uri.gz", "/a b/%c.txt", "/static/a b/%c.txt.gz"},
        {"$ur", "/a", "$ur"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t plen = strlen(cases[i].path), room = try_room(cases[i].item, plen);
        char *out = malloc(room);
        size_t n = try_expand(cases[i].item, cases[i].path, plen, out);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("%s of %s: want %s, got %s", cases[i].item, cases[i].path, cases[i].want, out);
        assert_int_equal(n, strlen(out));
        assert_true(n < room);
        free(out);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_try_expand),
        cmocka_unit_test_setup_teardown(test_with_openat2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallback_without_openat2, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
