/* Unit tests for workers/pool.c: jobs run on pool threads, their done
 * callbacks only on the loop (calling) thread inside pool_complete(), the
 * eventfd says when completions wait, and the queue is bounded. Every wait is
 * on a condition variable or poll() with a generous timeout, never a sleep. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "workers/pool.h"

/* Long enough never to fire on a loaded machine; only a hang reaches it. */
#define TIMEOUT_MS 20000
#define MANY_JOBS  10000

struct test_job {
    struct pool_job job; /* first: pool_job * converts to test_job * */
    unsigned id;
    bool is_msg;              /* posted from work, has no work of its own */
    bool block;               /* work waits until the test releases it */
    unsigned nposts;          /* messages work posts before finishing */
    struct test_job *msgs;    /* ... taken from here */
    atomic_uint work_runs;    /* times work ran */
    atomic_bool work_on_main; /* work ran on the test's thread */
    unsigned done_runs;       /* times done ran */
};

/* What the jobs saw, shared with the pool threads under lock. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool released;
    unsigned started, finished; /* work calls begun and ended */
    unsigned work_order[MANY_JOBS];
    unsigned nwork;

    /* only the test's thread touches these (done callbacks run there) */
    struct pool *pool;
    pthread_t main;
    bool in_pool_call; /* inside pool_complete() or pool_destroy() */
    unsigned done_total;
    unsigned bad_done; /* done off the test's thread, outside the pool call, or before work */
    unsigned done_order[MANY_JOBS + 64];
    unsigned ndone;
} ctx;

/* Jobs outlive a failed test's stack frame: the teardown still has to drain
 * the pool that runs them. */
static struct test_job jobs[MANY_JOBS];

static int reset_ctx(void **state) {
    memset(&ctx, 0, sizeof ctx);
    pthread_mutex_init(&ctx.lock, NULL);
    pthread_cond_init(&ctx.cond, NULL);
    ctx.main = pthread_self();
    return 0;
}

static void destroy_pool(struct pool *p);
static void release_blocked(void);

static int destroy_ctx(void **state) {
    /* a failed assertion left the pool running: free its threads first */
    if (ctx.pool) {
        release_blocked();
        destroy_pool(ctx.pool);
    }
    pthread_mutex_destroy(&ctx.lock);
    pthread_cond_destroy(&ctx.cond);
    return 0;
}

static void job_work(struct pool_job *pj) {
    struct test_job *j = (struct test_job *)pj;
    atomic_store(&j->work_on_main, pthread_equal(pthread_self(), ctx.main) != 0);
    atomic_fetch_add(&j->work_runs, 1);
    for (unsigned i = 0; i < j->nposts; i++) pool_post(ctx.pool, &j->msgs[i].job);
    pthread_mutex_lock(&ctx.lock);
    if (ctx.nwork < MANY_JOBS) ctx.work_order[ctx.nwork++] = j->id;
    ctx.started++;
    pthread_cond_broadcast(&ctx.cond);
    while (j->block && !ctx.released) pthread_cond_wait(&ctx.cond, &ctx.lock);
    ctx.finished++;
    pthread_cond_broadcast(&ctx.cond);
    pthread_mutex_unlock(&ctx.lock);
}

static void job_done(struct pool_job *pj) {
    struct test_job *j = (struct test_job *)pj;
    if (!pthread_equal(pthread_self(), ctx.main) || !ctx.in_pool_call ||
        (!j->is_msg && atomic_load(&j->work_runs) != 1))
        ctx.bad_done++;
    j->done_runs++;
    ctx.done_total++;
    if (ctx.ndone < sizeof ctx.done_order / sizeof ctx.done_order[0])
        ctx.done_order[ctx.ndone++] = j->id;
}

static void init_job(struct test_job *j, unsigned id, bool block) {
    memset(j, 0, sizeof *j);
    j->job.work = job_work;
    j->job.done = job_done;
    j->id = id;
    j->block = block;
}

static void init_msg(struct test_job *m, unsigned id) {
    memset(m, 0, sizeof *m);
    m->job.done = job_done;
    m->id = id;
    m->is_msg = true;
}

static unsigned complete(struct pool *p) {
    ctx.in_pool_call = true;
    unsigned n = pool_complete(p);
    ctx.in_pool_call = false;
    return n;
}

static bool fd_readable(int fd, int timeout_ms) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r;
    do r = poll(&pfd, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    return r == 1 && (pfd.revents & POLLIN);
}

/* Runs completions as the loop would, until target done callbacks ran in all;
 * returns the sum of what pool_complete() reported. */
static unsigned complete_until(struct pool *p, unsigned target) {
    unsigned reported = 0;
    while (ctx.done_total < target) {
        assert_true(fd_readable(pool_fd(p), TIMEOUT_MS));
        reported += complete(p);
    }
    return reported;
}

static void wait_counter(const unsigned *counter, unsigned target) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += TIMEOUT_MS / 1000;
    pthread_mutex_lock(&ctx.lock);
    int e = 0;
    while (*counter < target && e != ETIMEDOUT)
        e = pthread_cond_timedwait(&ctx.cond, &ctx.lock, &deadline);
    unsigned got = *counter;
    pthread_mutex_unlock(&ctx.lock);
    assert_int_equal(got, target);
}

static void release_blocked(void) {
    pthread_mutex_lock(&ctx.lock);
    ctx.released = true;
    pthread_cond_broadcast(&ctx.cond);
    pthread_mutex_unlock(&ctx.lock);
}

/* pool_busy() drops just after the done callback is queued: wait for it. */
static void wait_idle(struct pool *p) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (pool_busy(p) != 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        assert_true(now.tv_sec - start.tv_sec < TIMEOUT_MS / 1000);
        sched_yield();
    }
}

static struct pool *make_pool(unsigned threads, unsigned queue_max) {
    struct pool *p = pool_create(threads, queue_max, NULL, NULL);
    assert_non_null(p);
    ctx.pool = p;
    return p;
}

static void destroy_pool(struct pool *p) {
    ctx.in_pool_call = true;
    pool_destroy(p);
    ctx.in_pool_call = false;
    ctx.pool = NULL;
}

/* ---- tests -------------------------------------------------------------- */

static void test_work_on_threads_done_on_caller(void **state) {
    struct pool *p = make_pool(3, 16);
    for (unsigned i = 0; i < 8; i++) {
        init_job(&jobs[i], i, false);
        assert_int_equal(pool_submit(p, &jobs[i].job), 0);
    }
    wait_counter(&ctx.finished, 8);
    /* all the work is done, but no done callback runs until the loop asks */
    assert_int_equal(ctx.done_total, 0);
    assert_int_equal(complete_until(p, 8), 8);
    for (unsigned i = 0; i < 8; i++) {
        assert_int_equal(atomic_load(&jobs[i].work_runs), 1);
        assert_false(atomic_load(&jobs[i].work_on_main));
        assert_int_equal(jobs[i].done_runs, 1);
    }
    assert_int_equal(ctx.bad_done, 0);
    destroy_pool(p);
}

static void test_fd_readable_only_while_completions_wait(void **state) {
    struct pool *p = make_pool(2, 4);
    int fd = pool_fd(p);
    assert_true(fd >= 0);
    assert_false(fd_readable(fd, 0));
    assert_int_equal(complete(p), 0); /* nothing waiting: returns at once */

    /* twice: the fd must wake the loop again after a drain */
    for (unsigned round = 0; round < 2; round++) {
        init_job(&jobs[round], round, false);
        assert_int_equal(pool_submit(p, &jobs[round].job), 0);
        assert_true(fd_readable(fd, TIMEOUT_MS));
        assert_true(fd_readable(fd, 0)); /* stays readable until drained */
        assert_int_equal(ctx.done_total, round);
        assert_int_equal(complete(p), 1);
        assert_int_equal(ctx.done_total, round + 1);
        assert_false(fd_readable(fd, 0));
    }
    assert_int_equal(ctx.bad_done, 0);
    destroy_pool(p);
}

static void test_many_jobs_complete_exactly_once(void **state) {
    struct pool *p = make_pool(4, 64);
    unsigned reported = 0;
    for (unsigned i = 0; i < MANY_JOBS; i++) {
        init_job(&jobs[i], i, false);
        while (pool_submit(p, &jobs[i].job) < 0) {
            assert_int_equal(errno, EAGAIN);
            /* full: a completion means a thread took a job off the queue */
            assert_true(fd_readable(pool_fd(p), TIMEOUT_MS));
            reported += complete(p);
        }
    }
    reported += complete_until(p, MANY_JOBS);
    assert_int_equal(reported, MANY_JOBS);
    assert_int_equal(ctx.done_total, MANY_JOBS);
    for (unsigned i = 0; i < MANY_JOBS; i++) {
        assert_int_equal(atomic_load(&jobs[i].work_runs), 1);
        assert_int_equal(jobs[i].done_runs, 1);
    }
    assert_int_equal(ctx.bad_done, 0);
    assert_int_equal(complete(p), 0);
    destroy_pool(p);
}

static void test_single_thread_is_fifo(void **state) {
    enum { N = 200 };
    struct pool *p = make_pool(1, N);
    for (unsigned i = 0; i < N; i++) {
        init_job(&jobs[i], i, false);
        assert_int_equal(pool_submit(p, &jobs[i].job), 0);
    }
    complete_until(p, N);
    assert_int_equal(ctx.ndone, N);
    assert_int_equal(ctx.nwork, N);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(ctx.work_order[i], i);
        assert_int_equal(ctx.done_order[i], i);
    }
    destroy_pool(p);
}

static void test_submit_refused_when_queue_full(void **state) {
    struct pool *p = make_pool(2, 3);
    for (unsigned i = 0; i < 7; i++) init_job(&jobs[i], i, true);

    assert_int_equal(pool_busy(p), 0);
    assert_int_equal(pool_queued(p), 0);
    /* two jobs occupy both threads */
    assert_int_equal(pool_submit(p, &jobs[0].job), 0);
    assert_int_equal(pool_submit(p, &jobs[1].job), 0);
    wait_counter(&ctx.started, 2);
    assert_int_equal(pool_busy(p), 2);
    assert_int_equal(pool_queued(p), 0);
    /* three wait in the queue */
    for (unsigned i = 2; i < 5; i++) assert_int_equal(pool_submit(p, &jobs[i].job), 0);
    assert_int_equal(pool_queued(p), 3);
    assert_int_equal(pool_busy(p), 2);
    /* the sixth does not fit */
    errno = 0;
    assert_int_equal(pool_submit(p, &jobs[5].job), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(pool_queued(p), 3);

    release_blocked();
    assert_int_equal(complete_until(p, 5), 5);
    assert_int_equal(atomic_load(&jobs[5].work_runs), 0); /* refused: never ran */
    assert_int_equal(jobs[5].done_runs, 0);
    assert_int_equal(pool_queued(p), 0);
    wait_idle(p);

    /* room again */
    assert_int_equal(pool_submit(p, &jobs[6].job), 0);
    complete_until(p, 6);
    assert_int_equal(jobs[6].done_runs, 1);
    assert_int_equal(ctx.bad_done, 0);
    destroy_pool(p);
}

/* A job that finds an idle thread is not held against the queue's bound. */
/* Deferred jobs wait for pool_kick(), which wakes the sleeping threads once
 * for the whole batch; a job taken back before it started never runs. */
static void test_deferred_jobs_start_at_the_kick_and_can_be_taken_back(void **state) {
    struct pool *p = make_pool(2, 16);
    for (unsigned i = 0; i < 8; i++) init_job(&jobs[i], i, false);
    /* both threads asleep before anything is queued */
    while (pool_sleeping(p) != 2) sched_yield();
    for (unsigned i = 0; i < 8; i++) assert_int_equal(pool_submit_deferred(p, &jobs[i].job), 0);
    /* they wait aside: no thread can take one before the kick */
    assert_int_equal(pool_queued(p), 8);
    assert_int_equal(pool_cancel(p, &jobs[7].job), 0);
    assert_false(pool_started(p, &jobs[6].job));
    pool_kick(p);
    assert_int_equal(complete_until(p, 7), 7);
    assert_true(pool_started(p, &jobs[6].job));
    assert_int_equal(atomic_load(&jobs[7].work_runs), 0); /* taken back: never ran */
    assert_int_equal(jobs[7].done_runs, 0);
    assert_int_equal(pool_cancel(p, &jobs[0].job), -1); /* done: nothing to take back */
    assert_int_equal(ctx.bad_done, 0);
    destroy_pool(p);
}

static void test_idle_threads_do_not_use_queue_room(void **state) {
    struct pool *p = make_pool(3, 1);
    for (unsigned i = 0; i < 5; i++) init_job(&jobs[i], i, true);
    /* three threads and one queue slot: four jobs fit, however fast the
     * threads pick them up */
    for (unsigned i = 0; i < 4; i++) assert_int_equal(pool_submit(p, &jobs[i].job), 0);
    assert_int_equal(pool_submit(p, &jobs[4].job), -1);
    assert_int_equal(errno, EAGAIN);
    wait_counter(&ctx.started, 3);
    assert_int_equal(pool_busy(p), 3);
    assert_int_equal(pool_queued(p), 1);
    release_blocked();
    complete_until(p, 4);
    wait_idle(p);
    assert_int_equal(pool_busy(p), 0);
    assert_int_equal(pool_queued(p), 0);
    destroy_pool(p);
}

static void test_posted_messages_run_before_done(void **state) {
    struct pool *p = make_pool(1, 4);
    struct test_job *msgs = jobs + 10;
    for (unsigned i = 0; i < 6; i++) init_msg(&msgs[i], 100 + i);

    /* a job that posts, then keeps working: its messages arrive meanwhile */
    struct test_job *slow = &jobs[0];
    init_job(slow, 1, true);
    slow->nposts = 3;
    slow->msgs = msgs;
    assert_int_equal(pool_submit(p, &slow->job), 0);
    wait_counter(&ctx.started, 1);
    assert_true(fd_readable(pool_fd(p), TIMEOUT_MS));
    assert_int_equal(complete(p), 3);
    assert_int_equal(slow->done_runs, 0);
    release_blocked();
    complete_until(p, 4);

    /* a job that posts and returns at once: all in one order */
    struct test_job *quick = &jobs[1];
    init_job(quick, 2, false);
    quick->nposts = 3;
    quick->msgs = msgs + 3;
    assert_int_equal(pool_submit(p, &quick->job), 0);
    complete_until(p, 8);

    static const unsigned want[] = {100, 101, 102, 1, 103, 104, 105, 2};
    assert_int_equal(ctx.ndone, 8);
    for (unsigned i = 0; i < 8; i++) assert_int_equal(ctx.done_order[i], want[i]);
    for (unsigned i = 0; i < 6; i++) assert_int_equal(msgs[i].done_runs, 1);
    assert_int_equal(ctx.bad_done, 0);
    destroy_pool(p);
}

static void test_destroy_drains_queued_jobs(void **state) {
    struct pool *p = make_pool(1, 8);
    init_job(&jobs[0], 0, true);
    assert_int_equal(pool_submit(p, &jobs[0].job), 0);
    wait_counter(&ctx.started, 1);
    for (unsigned i = 1; i < 6; i++) {
        init_job(&jobs[i], i, false);
        assert_int_equal(pool_submit(p, &jobs[i].job), 0);
    }
    assert_int_equal(pool_queued(p), 5);
    release_blocked();
    destroy_pool(p); /* no pool_complete() before: destroy runs the callbacks */
    assert_int_equal(ctx.done_total, 6);
    for (unsigned i = 0; i < 6; i++) {
        assert_int_equal(atomic_load(&jobs[i].work_runs), 1);
        assert_int_equal(jobs[i].done_runs, 1);
        assert_int_equal(ctx.done_order[i], i);
    }
    assert_int_equal(ctx.bad_done, 0);
}

static void test_destroy_right_after_submitting(void **state) {
    enum { N = 500 };
    struct pool *p = make_pool(4, N);
    for (unsigned i = 0; i < N; i++) {
        init_job(&jobs[i], i, false);
        assert_int_equal(pool_submit(p, &jobs[i].job), 0);
    }
    destroy_pool(p);
    assert_int_equal(ctx.done_total, N);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&jobs[i].work_runs), 1);
        assert_int_equal(jobs[i].done_runs, 1);
    }
    assert_int_equal(ctx.bad_done, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_work_on_threads_done_on_caller, reset_ctx,
                                        destroy_ctx),
        cmocka_unit_test_setup_teardown(test_fd_readable_only_while_completions_wait, reset_ctx,
                                        destroy_ctx),
        cmocka_unit_test_setup_teardown(test_many_jobs_complete_exactly_once, reset_ctx,
                                        destroy_ctx),
        cmocka_unit_test_setup_teardown(test_single_thread_is_fifo, reset_ctx, destroy_ctx),
        cmocka_unit_test_setup_teardown(test_submit_refused_when_queue_full, reset_ctx,
                                        destroy_ctx),
        cmocka_unit_test_setup_teardown(test_deferred_jobs_start_at_the_kick_and_can_be_taken_back,
                                        reset_ctx, destroy_ctx),
        cmocka_unit_test_setup_teardown(test_idle_threads_do_not_use_queue_room, reset_ctx,
                                        destroy_ctx),
        cmocka_unit_test_setup_teardown(test_posted_messages_run_before_done, reset_ctx,
                                        destroy_ctx),
        cmocka_unit_test_setup_teardown(test_destroy_drains_queued_jobs, reset_ctx, destroy_ctx),
        cmocka_unit_test_setup_teardown(test_destroy_right_after_submitting, reset_ctx,
                                        destroy_ctx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
