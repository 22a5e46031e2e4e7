/* pool: a worker's thread pool for blocking work (DESIGN.md).
 *
 * The loop thread submits jobs to a bounded queue; pool threads run
 * job->work; finished jobs (and messages threads post while working) go on a
 * completion queue, and the loop thread runs their done callbacks. The pool
 * knows nothing of the event loop: it signals completions through an eventfd
 * (pool_fd) that is written only when the completion queue goes from empty
 * to non-empty, and pool_complete() drains the whole queue at once. */
#ifndef PREFORKD_POOL_H
#define PREFORKD_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct pool;

/* A job is owned by its submitter; between pool_submit() and its done
 * callback the pool holds it (queued, then running, then waiting for the loop
 * thread). pool_cancel() takes back a job that has not started: its done
 * callback then never runs. */
struct pool_job {
    struct pool_job *next;
    void (*work)(struct pool_job *job); /* on a pool thread */
    void (*done)(struct pool_job *job); /* on the loop thread, after work */
    bool started;                       /* a thread took it (under the pool's lock) */
    uint64_t queued_us;                 /* when submitted (with a wait hook) */
};

/* Starts threads; queue_max jobs may wait beyond the running ones. Each
 * thread calls thread_init first and thread_exit last (both optional).
 * NULL with errno set on failure. */
struct pool *pool_create(unsigned threads, unsigned queue_max, void (*thread_init)(void),
                         void (*thread_exit)(void));
/* Waits for queued and running jobs to finish, runs their done callbacks,
 * then stops the threads. */
void pool_destroy(struct pool *p);

/* Queues a job; -1 with errno EAGAIN when the queue is full. Loop thread. */
int pool_submit(struct pool *p, struct pool_job *job);
/* The same, but the job waits aside until pool_kick(), which hands every
 * such job to the threads and wakes as many as need, once per batch: a
 * loop thread that hands over many jobs in one turn (one per ready
 * connection) pays one wake-up, a thread sharing its CPU runs them all in
 * one go instead of taking the CPU after each, and no job starts before the
 * code that submitted it has returned to the loop. */
int pool_submit_deferred(struct pool *p, struct pool_job *job);
void pool_kick(struct pool *p);
/* Takes a queued job back before any thread started it: 0, and neither work
 * nor done will run; -1 when it has started (done will still come). Loop
 * thread. */
int pool_cancel(struct pool *p, struct pool_job *job);
/* Whether a thread took the job (it runs or ran). Loop thread. */
bool pool_started(struct pool *p, const struct pool_job *job);
/* Whether the calling thread is one of a pool's threads. */
bool pool_on_thread(void);
/* From job->work: hands a message to the loop thread, whose done callback
 * runs there in the order of posting, before the job's own done. */
void pool_post(struct pool *p, struct pool_job *msg);

/* Readable when completions are waiting. */
int pool_fd(const struct pool *p);
/* Runs the done callbacks of every completion waiting; returns how many. */
unsigned pool_complete(struct pool *p);

/* Threads running a job now, and jobs waiting, for the scoreboard. */
unsigned pool_busy(struct pool *p);
unsigned pool_queued(struct pool *p);
/* Threads asleep, waiting for a job. */
unsigned pool_sleeping(struct pool *p);
/* Shared counters the pool keeps equal to pool_busy() and pool_queued() as
 * they change (the scoreboard's), or NULL. Before the first submit. */
void pool_set_gauges(struct pool *p, _Atomic unsigned *busy, _Atomic unsigned *queued);
/* Called when a thread takes a job, with how long it waited (CLOCK_MONOTONIC
 * µs), under the pool's lock: calls never overlap. Before the first submit. */
void pool_set_wait_hook(struct pool *p, void (*on_start)(void *arg, uint64_t waited_us), void *arg);

#endif
