/* Unit tests for server/log.c's log_open_file(), the way every log file is
 * opened for workers that may run as another user: a symlink as the last
 * component is refused, so are FIFOs, devices and hard links; a file it
 * creates is handed to the given owner, an existing one never is; errors come
 * back in the caller's buffer. Real files in a scratch folder. And the
 * lines: text or JSON, each with time, level, role, slot and pid. */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "scratch.h"
#include "server/log.h"

struct fixture {
    struct scratch s;
    char path[128]; /* the log file */
    char err[256];
};

static int setup(void **state) {
    scratch_setup(state, sizeof(struct fixture), "log");
    struct fixture *fx = *state;
    snprintf(fx->path, sizeof fx->path, "%s/error.log", fx->s.dir);
    return 0;
}

static void in_dir(struct fixture *fx, const char *name, char *out, size_t outlen) {
    snprintf(out, outlen, "%s/%s", fx->s.dir, name);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void test_creates_and_appends(void **state) {
    struct fixture *fx = *state;
    int fd = log_open_file(fx->path, (uid_t)-1, (gid_t)-1, fx->err, sizeof fx->err);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "one\n", 4), 4);
    close(fd);
    fd = log_open_file(fx->path, (uid_t)-1, (gid_t)-1, fx->err, sizeof fx->err);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(fd, F_GETFL) & O_APPEND);
    assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_int_equal(write(fd, "two\n", 4), 4);
    close(fd);
    char buf[16] = "";
    FILE *f = fopen(fx->path, "r");
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, sizeof buf - 1, f), 8);
    fclose(f);
    assert_string_equal(buf, "one\ntwo\n");
}

static void test_symlink_is_not_followed(void **state) {
    struct fixture *fx = *state;
    char target[160];
    in_dir(fx, "target", target, sizeof target);
    write_file(target, "precious\n");
    assert_int_equal(symlink(target, fx->path), 0);
    errno = 0;
    assert_int_equal(log_open_file(fx->path, 12345, 12345, fx->err, sizeof fx->err), -1);
    assert_int_equal(errno, ELOOP);
    assert_non_null(strstr(fx->err, "symbolic link"));
    assert_non_null(strstr(fx->err, fx->path));
    struct stat st;
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_size, 9);
    assert_int_equal(st.st_uid, getuid());
    /* a dangling one is not created through either */
    assert_int_equal(unlink(target), 0);
    assert_int_equal(log_open_file(fx->path, (uid_t)-1, (gid_t)-1, fx->err, sizeof fx->err), -1);
    assert_int_equal(access(target, F_OK), -1);
}

static void test_fifo_and_device_are_refused(void **state) {
    struct fixture *fx = *state;
    assert_int_equal(mkfifo(fx->path, 0644), 0);
    /* no reader: refused at once instead of hanging */
    assert_int_equal(log_open_file(fx->path, (uid_t)-1, (gid_t)-1, fx->err, sizeof fx->err), -1);
    /* with a reader it opens, and is refused as not a regular file */
    int reader = open(fx->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(reader >= 0);
    errno = 0;
    assert_int_equal(log_open_file(fx->path, (uid_t)-1, (gid_t)-1, fx->err, sizeof fx->err), -1);
    assert_int_equal(errno, EPERM);
    assert_non_null(strstr(fx->err, "not a regular file"));
    close(reader);
    assert_int_equal(log_open_file("/dev/null", (uid_t)-1, (gid_t)-1, fx->err, sizeof fx->err), -1);
    assert_non_null(strstr(fx->err, "not a regular file"));
}

static void test_hard_link_is_refused(void **state) {
    struct fixture *fx = *state;
    char other[160];
    in_dir(fx, "other", other, sizeof other);
    write_file(other, "someone else's\n");
    assert_int_equal(link(other, fx->path), 0);
    errno = 0;
    assert_int_equal(log_open_file(fx->path, (uid_t)-1, (gid_t)-1, fx->err, sizeof fx->err), -1);
    assert_int_equal(errno, EPERM);
    assert_non_null(strstr(fx->err, "hard link"));
}

static void test_only_a_created_file_is_chowned(void **state) {
    struct fixture *fx = *state;
    if (geteuid() != 0) skip();
    struct stat st;
    int fd = log_open_file(fx->path, 65534, 65534, fx->err, sizeof fx->err);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    close(fd);
    assert_int_equal(st.st_uid, 65534);
    assert_int_equal(st.st_gid, 65534);
    assert_int_equal(st.st_mode & 07777, 0644);

    char mine[160];
    in_dir(fx, "mine.log", mine, sizeof mine);
    write_file(mine, "");
    fd = log_open_file(mine, 65534, 65534, fx->err, sizeof fx->err);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    close(fd);
    assert_int_equal(st.st_uid, 0); /* found, not made: left as it was */
}

static void test_missing_folder(void **state) {
    struct fixture *fx = *state;
    char path[160];
    in_dir(fx, "missing/error.log", path, sizeof path);
    errno = 0;
    assert_int_equal(log_open_file(path, (uid_t)-1, (gid_t)-1, fx->err, sizeof fx->err), -1);
    assert_int_equal(errno, ENOENT);
    assert_non_null(strstr(fx->err, "No such file"));
}

static void test_same_file(void **state) {
    struct fixture *fx = *state;
    int fd = log_open_file(fx->path, (uid_t)-1, (gid_t)-1, fx->err, sizeof fx->err);
    assert_true(fd >= 0);
    assert_true(log_same_file(fx->path, fd));
    char moved[160];
    in_dir(fx, "error.log.1", moved, sizeof moved);
    assert_int_equal(rename(fx->path, moved), 0);
    assert_false(log_same_file(fx->path, fd)); /* gone */
    write_file(fx->path, "");
    assert_false(log_same_file(fx->path, fd)); /* another file */
    assert_int_equal(unlink(fx->path), 0);
    assert_int_equal(symlink(moved, fx->path), 0);
    assert_false(log_same_file(fx->path, fd)); /* a symlink to it is not it */
    close(fd);
}

/* The lines written to fx->path, compared with regular expressions. */
static void assert_lines_match(const char *path, const char *const *want, size_t n) {
    char buf[8192] = "";
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *line = buf;
    for (size_t i = 0; i < n; i++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        regex_t re;
        assert_int_equal(regcomp(&re, want[i], REG_EXTENDED | REG_NOSUB), 0);
        int rc = regexec(&re, line, 0, NULL, 0);
        regfree(&re);
        if (rc != 0) fail_msg("line %zu \"%s\" does not match %s", i, line, want[i]);
        line = nl + 1;
    }
    assert_string_equal(line, "");
}

static void test_line_formats(void **state) {
    struct fixture *fx = *state;
    assert_int_equal(log_open(fx->path), 0);
    log_set_level(CONF_LOG_INFO);
    log_set_role("master", -1);
    log_info("plain %d", 1);
    log_set_role("worker", 3);
    log_warn("slot");
    log_debug("hidden");
    log_set_format(CONF_LOG_JSON);
    log_error("quote \" backslash \\ newline \n bell \a utf-8 \xc3\xa9 lone \xff");
    log_set_role("master", -1);
    log_info("%s", "master's");
    log_set_format(CONF_LOG_TEXT);
    log_close();
    static const char *const want[] = {
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z \\[info\\] master [0-9]+: plain "
        "1$",
        "^[0-9-]{10}T[0-9:]{8}Z \\[warn\\] worker 3 [0-9]+: slot$",
        "^\\{\"time\":\"[0-9-]{10}T[0-9:]{8}\\.[0-9]{3}Z\",\"level\":\"error\",\"pid\":[0-9]+,"
        "\"role\":\"worker\",\"slot\":3,\"msg\":\"quote \\\\\" backslash \\\\\\\\ newline \\\\n "
        "bell \\\\u0007 utf-8 \xc3\xa9 lone \xef\xbf\xbd\"\\}$",
        "^\\{\"time\":\"[^\"]+\",\"level\":\"info\",\"pid\":[0-9]+,\"role\":\"master\","
        "\"msg\":\"master's\"\\}$",
    };
    assert_lines_match(fx->path, want, sizeof want / sizeof want[0]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_creates_and_appends, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_symlink_is_not_followed, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_fifo_and_device_are_refused, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_hard_link_is_refused, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_only_a_created_file_is_chowned, setup,
                                        scratch_teardown),
        cmocka_unit_test_setup_teardown(test_missing_folder, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_same_file, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_line_formats, setup, scratch_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
