/* scratch: what the unit tests that touch files share: a fresh folder per
 * test, removed after it, and a check that the test left no descriptor open
 * (/proc/self/fd counted before and after). */
#ifndef PREFORKD_TEST_SCRATCH_H
#define PREFORKD_TEST_SCRATCH_H

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

#endif
