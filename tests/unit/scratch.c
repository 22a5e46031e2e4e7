/* scratch: the per-test folder and descriptor check of the unit tests. */
#include "scratch.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

int scratch_count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d));)
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

void scratch_begin(struct scratch *s, const char *name) {
    snprintf(s->dir, sizeof s->dir, "/tmp/preforkd-%s-XXXXXX", name);
    assert_non_null(mkdtemp(s->dir));
    s->fds_before = scratch_count_fds();
}

void scratch_end(struct scratch *s) {
    char cmd[128];
    int fds_after = scratch_count_fds();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(fds_after, s->fds_before); /* no descriptor leaked */
}

int scratch_setup(void **state, size_t size, const char *name) {
    struct scratch *s = calloc(1, size);
    assert_non_null(s);
    scratch_begin(s, name);
    *state = s;
    return 0;
}

int scratch_teardown(void **state) {
    scratch_end(*state);
    free(*state);
    return 0;
}
