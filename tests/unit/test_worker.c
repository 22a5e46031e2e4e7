/* Unit tests for the start of a worker (workers/worker.c): a worker whose
 * setup cannot go on says why in its scoreboard slot, where the master
 * reads it once the worker has exited and says it in one line, and returns
 * a failure without ever reaching SLOT_SERVING. (Serving, signals and the
 * privilege drop are tested with real processes in tests/integration.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "server/conf.h"
#include "server/privs.h"
#include "server/scoreboard.h"
#include "workers/worker.h"

static void test_access_log_that_cannot_open_is_said_in_the_slot(void **state) {
    struct conf c;
    struct sb_slot slot;
    struct creds creds;
    char err[256];
    conf_init(&c);
    assert_int_equal(
        conf_set(&c, "access_log", "/nonexistent-preforkd/access.log", err, sizeof err), 0);
    memset(&slot, 0, sizeof slot);
    memset(&creds, 0, sizeof creds);
    atomic_store(&slot.state, SLOT_STARTING);
    assert_int_not_equal(worker_run(&c, NULL, 0, &slot, &creds, 0), 0);
    assert_string_equal(slot.start_error,
                        "access log /nonexistent-preforkd/access.log: No such file or directory");
    assert_int_equal(atomic_load(&slot.state), SLOT_STARTING); /* never served */
    conf_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_access_log_that_cannot_open_is_said_in_the_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
