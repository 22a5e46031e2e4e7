/* scratch: what the unit tests that touch files share: a fresh folder per
 * test, removed after it, and a check that the test left no descriptor open
 * (/proc/self/fd counted before and after). */
#ifndef PREFORKD_TEST_SCRATCH_H
#define PREFORKD_TEST_SCRATCH_H

#include <stddef.h>

struct scratch {
    char dir[64];   /* /tmp/preforkd-NAME-XXXXXX */
    int fds_before; /* descriptors open when the test started */
};

/* Descriptors this process has open now. */
int scratch_count_fds(void);
/* Makes the folder and counts the descriptors; fails the test on error. */
void scratch_begin(struct scratch *s, const char *name);
/* Removes the folder and fails the test if a descriptor was left open. */
void scratch_end(struct scratch *s);

/* cmocka setup and teardown for a test's fixture whose first member is a
 * struct scratch: setup allocates size zeroed bytes into *state and begins
 * the scratch; teardown ends it and frees the fixture. */
int scratch_setup(void **state, size_t size, const char *name);
int scratch_teardown(void **state);

#endif
