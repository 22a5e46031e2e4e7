/* pool: bounded job queue, worker threads, eventfd-signalled completions. */
#include "workers/pool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* A singly linked FIFO. */
struct queue {
    struct pool_job *head, *tail;
    unsigned len;
};

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* jobs queued, or stopping */
    struct queue jobs;
    unsigned queue_max;
    struct queue staged; /* pool_submit_deferred's jobs, until pool_kick */
    unsigned busy;
    unsigned waiting; /* threads asleep on wake */
    bool stopping;
    _Atomic unsigned *busy_gauge, *queued_gauge;     /* mirrors, for other processes */
    void (*on_start)(void *arg, uint64_t waited_us); /* under the lock */
    void *on_start_arg;

    pthread_mutex_t done_lock;
    struct queue done;
    int efd;

    void (*thread_init)(void), (*thread_exit)(void);
    unsigned nthreads;
    pthread_t threads[];
};

static __thread bool on_pool_thread;

bool pool_on_thread(void) {
    return on_pool_thread;
}

static void push(struct queue *q, struct pool_job *j) {
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->len++;
}

static struct pool_job *pop(struct queue *q) {
    struct pool_job *j = q->head;
    if (j) {
        q->head = j->next;
        if (!q->head) q->tail = NULL;
        q->len--;
    }
    return j;
}

/* Moves every job of from to the end of to, in order. */
static void append_all(struct queue *to, struct queue *from) {
    if (!from->head) return;
    if (to->tail)
        to->tail->next = from->head;
    else
        to->head = from->head;
    to->tail = from->tail;
    to->len += from->len;
    *from = (struct queue){NULL, NULL, 0};
}

void pool_post(struct pool *p, struct pool_job *msg) {
    pthread_mutex_lock(&p->done_lock);
    bool was_empty = p->done.len == 0;
    push(&p->done, msg);
    pthread_mutex_unlock(&p->done_lock);
    if (was_empty) {
        /* the loop drains everything per wake, so one write per batch */
        uint64_t one = 1;
        ssize_t n = write(p->efd, &one, sizeof one);
        (void)n; /* EAGAIN means the counter is already non-zero: awake anyway */
    }
}

/* Under p->lock. */
static void update_gauges(struct pool *p) {
    if (p->busy_gauge) atomic_store_explicit(p->busy_gauge, p->busy, memory_order_relaxed);
    if (p->queued_gauge)
        atomic_store_explicit(p->queued_gauge, p->jobs.len + p->staged.len, memory_order_relaxed);
}

void pool_set_gauges(struct pool *p, _Atomic unsigned *busy, _Atomic unsigned *queued) {
    pthread_mutex_lock(&p->lock);
    p->busy_gauge = busy;
    p->queued_gauge = queued;
    update_gauges(p);
    pthread_mutex_unlock(&p->lock);
}

void pool_set_wait_hook(struct pool *p, void (*on_start)(void *arg, uint64_t waited_us),
                        void *arg) {
    pthread_mutex_lock(&p->lock);
    p->on_start = on_start;
    p->on_start_arg = arg;
    pthread_mutex_unlock(&p->lock);
}

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void *thread_main(void *arg) {
    struct pool *p = arg;
    on_pool_thread = true;
    if (p->thread_init) p->thread_init();
    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct pool_job *j;
        while (!(j = pop(&p->jobs)) && !p->stopping) {
            p->waiting++;
            pthread_cond_wait(&p->wake, &p->lock);
            p->waiting--;
        }
        if (!j) break;
        j->started = true;
        p->busy++;
        update_gauges(p);
        if (p->on_start) {
            uint64_t now = now_us();
            p->on_start(p->on_start_arg, now > j->queued_us ? now - j->queued_us : 0);
        }
        pthread_mutex_unlock(&p->lock);
        j->work(j);
        pool_post(p, j);
        pthread_mutex_lock(&p->lock);
        p->busy--;
        update_gauges(p);
    }
    pthread_mutex_unlock(&p->lock);
    if (p->thread_exit) p->thread_exit();
    return NULL;
}

struct pool *pool_create(unsigned threads, unsigned queue_max, void (*thread_init)(void),
                         void (*thread_exit)(void)) {
    struct pool *p = calloc(1, sizeof *p + threads * sizeof(pthread_t));
    if (!p) return NULL;
    p->queue_max = queue_max;
    p->thread_init = thread_init;
    p->thread_exit = thread_exit;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->done_lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0) goto fail;

    /* signals belong to the loop thread: threads start with all blocked */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (; p->nthreads < threads; p->nthreads++) {
        int e = pthread_create(&p->threads[p->nthreads], NULL, thread_main, p);
        if (e) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            errno = e;
            goto fail;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return p;
fail : {
    int e = errno;
    pool_destroy(p);
    errno = e;
    return NULL;
}
}

void pool_destroy(struct pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    append_all(&p->jobs, &p->staged); /* they run too */
    p->stopping = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    pool_complete(p);
    if (p->efd >= 0) close(p->efd);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->done_lock);
    pthread_cond_destroy(&p->wake);
    free(p);
}

static int submit(struct pool *p, struct pool_job *job, bool now) {
    pthread_mutex_lock(&p->lock);
    /* a job that finds an idle thread never counts against the queue */
    if (p->jobs.len + p->staged.len >= p->queue_max + (p->nthreads - p->busy)) {
        pthread_mutex_unlock(&p->lock);
        errno = EAGAIN;
        return -1;
    }
    job->started = false;
    if (p->on_start) job->queued_us = now_us();
    /* a staged job is out of the threads' reach until the kick, also of a
     * busy thread that looks for more work: it starts only after the code
     * that submitted it has returned */
    push(now ? &p->jobs : &p->staged, job);
    update_gauges(p);
    if (now) pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int pool_submit(struct pool *p, struct pool_job *job) {
    return submit(p, job, true);
}

int pool_submit_deferred(struct pool *p, struct pool_job *job) {
    return submit(p, job, false);
}

void pool_kick(struct pool *p) {
    pthread_mutex_lock(&p->lock);
    unsigned n = p->staged.len;
    append_all(&p->jobs, &p->staged);
    /* busy threads take queued jobs when they finish: wake sleepers only */
    if (n > p->waiting) n = p->waiting;
    for (unsigned i = 0; i < n; i++) pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

/* Unlinks job from q: whether it was there. */
static bool unlink_job(struct queue *q, struct pool_job *job) {
    struct pool_job **link = &q->head, *prev = NULL;
    while (*link && *link != job) {
        prev = *link;
        link = &(*link)->next;
    }
    if (*link != job) return false;
    *link = job->next;
    if (q->tail == job) q->tail = prev;
    q->len--;
    return true;
}

int pool_cancel(struct pool *p, struct pool_job *job) {
    pthread_mutex_lock(&p->lock);
    bool queued = unlink_job(&p->staged, job) || unlink_job(&p->jobs, job);
    if (queued) update_gauges(p);
    pthread_mutex_unlock(&p->lock);
    return queued ? 0 : -1;
}

bool pool_started(struct pool *p, const struct pool_job *job) {
    pthread_mutex_lock(&p->lock);
    bool started = job->started;
    pthread_mutex_unlock(&p->lock);
    return started;
}

int pool_fd(const struct pool *p) {
    return p->efd;
}

unsigned pool_complete(struct pool *p) {
    uint64_t v;
    ssize_t r = read(p->efd, &v, sizeof v);
    (void)r; /* reset the counter; an empty read is fine */
    pthread_mutex_lock(&p->done_lock);
    struct queue q = p->done;
    p->done.head = p->done.tail = NULL;
    p->done.len = 0;
    pthread_mutex_unlock(&p->done_lock);
    unsigned n = 0;
    struct pool_job *j;
    while ((j = pop(&q))) {
        j->done(j);
        n++;
    }
    return n;
}

unsigned pool_busy(struct pool *p) {
    pthread_mutex_lock(&p->lock);
    unsigned n = p->busy;
    pthread_mutex_unlock(&p->lock);
    return n;
}

unsigned pool_sleeping(struct pool *p) {
    pthread_mutex_lock(&p->lock);
    unsigned n = p->waiting;
    pthread_mutex_unlock(&p->lock);
    return n;
}

unsigned pool_queued(struct pool *p) {
    pthread_mutex_lock(&p->lock);
    unsigned n = p->jobs.len + p->staged.len;
    pthread_mutex_unlock(&p->lock);
    return n;
}
