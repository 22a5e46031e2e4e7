/* master: fork, supervise, stop. */
#include "server/master.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server/log.h"
#include "server/scoreboard.h"
#include "workers/worker.h"

/* A worker that dies sooner than this after its start counts as a crash loop. */
#define QUICK_DEATH_MS   1000
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   30000
/* After a fast stop, time before the master uses SIGKILL. */
#define FAST_STOP_GRACE_MS 3000

/* One worker position: the process in it now, or when it comes back. */
struct proc {
    pid_t pid;     /* 0 when none is running */
    unsigned slot; /* scoreboard slot of the running process */
    uint64_t started_ms;
    unsigned quick_deaths;
    uint64_t respawn_at; /* when pid is 0: monotonic ms to fork again */
};

struct master {
    struct conf *conf;
    struct listener *listeners;
    size_t nlisteners;
    struct scoreboard *sb;
    struct proc *procs;
    unsigned nprocs;
    enum { RUNNING, STOPPING, STOPPING_FAST } state;
    uint64_t kill_at; /* when stopping: SIGKILL what is left */
};

static sigset_t master_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaddset(&set, sigs[i]);
    return set;
}

/* ---- workers = auto --------------------------------------------------- */

/* A cgroup CPU limit in CPUs (rounded up), or 0 when there is none. */
static unsigned cgroup_cpus(void) {
    long long quota = -1, period = 0;
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r"); /* v2: "max 100000" or "200000 100000" */
    if (f) {
        char q[32];
        if (fscanf(f, "%31s %lld", q, &period) == 2 && strcmp(q, "max") != 0) quota = atoll(q);
        fclose(f);
    } else if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r"))) { /* v1 */
        if (fscanf(f, "%lld", &quota) != 1) quota = -1;
        fclose(f);
        if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r"))) {
            if (fscanf(f, "%lld", &period) != 1) period = 0;
            fclose(f);
        }
    }
    if (quota <= 0 || period <= 0) return 0;
    return (unsigned)((quota + period - 1) / period);
}

unsigned master_auto_workers(char *why, size_t whylen) {
    cpu_set_t set;
    unsigned cpus = 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = (unsigned)CPU_COUNT(&set);
    unsigned quota = cgroup_cpus();
    unsigned n = quota && quota < cpus ? quota : cpus;
    if (n < 1) n = 1;
    if (quota)
        snprintf(why, whylen, "%u usable CPU(s) in the affinity mask, cgroup quota %u CPU(s)", cpus,
                 quota);
    else
        snprintf(why, whylen, "%u usable CPU(s) in the affinity mask, no cgroup quota", cpus);
    return n;
}

/* ---- signals to a running master -------------------------------------- */

int master_signal(const char *pid_file, const char *name, int *bad_name, char *err, size_t errlen) {
    static const struct {
        const char *name;
        int sig;
    } names[] = {{"reload", SIGHUP}, {"stop", SIGINT}, {"quit", SIGQUIT}, {"reopen", SIGUSR1}};
    int sig = 0;
    *bad_name = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) sig = names[i].sig;
    if (!sig) {
        *bad_name = 1;
        snprintf(err, errlen, "--signal: expected reload, stop, quit or reopen, got \"%s\"", name);
        return -1;
    }
    if (!pid_file) {
        snprintf(err, errlen, "--signal needs pid_file (in the config or --pid-file)");
        return -1;
    }
    FILE *f = fopen(pid_file, "r");
    long pid = 0;
    if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 0) {
        snprintf(err, errlen, "%s: %s", pid_file, f ? "no pid in it" : strerror(errno));
        if (f) fclose(f);
        return -1;
    }
    fclose(f);
    if (kill((pid_t)pid, sig) < 0) {
        snprintf(err, errlen, "kill %ld: %s", pid, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- the process table ------------------------------------------------ */

static int free_slot(struct master *m) {
    for (unsigned i = 0; i < m->sb->nslots; i++)
        if (atomic_load(&m->sb->slots[i].state) == SLOT_FREE) return (int)i;
    return -1;
}

static void spawn(struct master *m, struct proc *p) {
    int slot = free_slot(m);
    if (slot < 0) {
        log_error("no free scoreboard slot for a worker");
        p->respawn_at = monotonic_ms() + BACKOFF_MAX_MS;
        return;
    }
    struct sb_slot *s = &m->sb->slots[slot];
    memset((void *)s, 0, sizeof *s);
    atomic_store(&s->state, SLOT_STARTING);
    atomic_store(&s->started_ms, monotonic_ms());
    atomic_store(&s->heartbeat_ms, monotonic_ms());

    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork: %s", strerror(errno));
        atomic_store(&s->state, SLOT_FREE);
        p->respawn_at = monotonic_ms() + BACKOFF_FIRST_MS;
        return;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* a worker outliving its master stops gracefully */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1) _exit(0);
        char role[32];
        snprintf(role, sizeof role, "worker %u", (unsigned)(p - m->procs));
        log_set_role(role);
        atomic_store(&s->pid, getpid());
        exit(worker_run(m->conf, m->listeners, m->nlisteners, s));
    }
    p->pid = pid;
    p->slot = (unsigned)slot;
    p->started_ms = monotonic_ms();
    p->respawn_at = 0;
    atomic_store(&s->pid, pid);
}

/* Growing delays for a worker that keeps dying right after its start. */
static void schedule_respawn(struct master *m, struct proc *p, uint64_t now, int status) {
    bool quick = now - p->started_ms < QUICK_DEATH_MS;
    p->quick_deaths = quick ? p->quick_deaths + 1 : 0;
    uint64_t delay = 0;
    if (p->quick_deaths > 1) {
        delay = BACKOFF_FIRST_MS;
        for (unsigned i = 2; i < p->quick_deaths && delay < BACKOFF_MAX_MS; i++) delay *= 2;
        if (delay > BACKOFF_MAX_MS) delay = BACKOFF_MAX_MS;
    }
    char how[64];
    if (WIFSIGNALED(status))
        snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
    if (delay)
        log_error("worker %u (pid %d) %s %u times in a row right after starting; "
                  "respawning in %llu ms",
                  (unsigned)(p - m->procs), (int)p->pid, how, p->quick_deaths,
                  (unsigned long long)delay);
    else
        log_error("worker %u (pid %d) %s; respawning", (unsigned)(p - m->procs), (int)p->pid, how);
    p->respawn_at = now + delay;
}

static void reap(struct master *m) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        uint64_t now = monotonic_ms();
        for (unsigned i = 0; i < m->nprocs; i++) {
            struct proc *p = &m->procs[i];
            if (p->pid != pid) continue;
            atomic_store(&m->sb->slots[p->slot].state, SLOT_FREE);
            if (m->state == RUNNING)
                schedule_respawn(m, p, now, status);
            else if (WIFSIGNALED(status) || WEXITSTATUS(status))
                log_warn("worker %u (pid %d) ended with status %d", i, (int)pid, status);
            p->pid = 0;
        }
    }
}

static unsigned running(const struct master *m) {
    unsigned n = 0;
    for (unsigned i = 0; i < m->nprocs; i++) n += m->procs[i].pid != 0;
    return n;
}

static void signal_workers(struct master *m, int sig) {
    for (unsigned i = 0; i < m->nprocs; i++)
        if (m->procs[i].pid) kill(m->procs[i].pid, sig);
}

static void begin_stop(struct master *m, bool fast) {
    uint64_t now = monotonic_ms();
    if (fast) {
        if (m->state != STOPPING_FAST) log_info("fast stop");
        m->state = STOPPING_FAST;
        m->kill_at = now + FAST_STOP_GRACE_MS;
        signal_workers(m, SIGINT);
        return;
    }
    log_info("graceful stop: finishing requests in flight (shutdown_timeout %u ms)",
             m->conf->shutdown_timeout);
    m->state = STOPPING;
    /* the worker cuts what is left at shutdown_timeout; the grace covers a
     * worker too stuck to do so */
    m->kill_at = now + m->conf->shutdown_timeout + FAST_STOP_GRACE_MS;
    signal_workers(m, SIGTERM);
}

static void handle_signal(struct master *m, int sig) {
    switch (sig) {
    case SIGCHLD: reap(m); break;
    case SIGTERM:
    case SIGQUIT: begin_stop(m, m->state != RUNNING); break;
    case SIGINT: begin_stop(m, true); break;
    case SIGUSR1:
        if (log_reopen() < 0) log_error("reopening error log: %s", strerror(errno));
        signal_workers(m, SIGUSR1);
        break;
    default: break;
    }
}

/* Milliseconds until the next thing the loop must do on its own. */
static uint64_t next_deadline(const struct master *m, uint64_t now) {
    uint64_t next = now + 1000;
    if (m->state != RUNNING && m->kill_at < next) next = m->kill_at;
    for (unsigned i = 0; m->state == RUNNING && i < m->nprocs; i++)
        if (!m->procs[i].pid && m->procs[i].respawn_at < next) next = m->procs[i].respawn_at;
    return next > now ? next - now : 0;
}

/* Each connection needs a descriptor (and one more while a file is sent):
 * raise the soft limit towards max_connections, as far as the hard one goes. */
static void raise_nofile(const struct conf *conf) {
    struct rlimit rl;
    rlim_t want = (rlim_t)conf->max_connections + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want) return;
    rlim_t cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    rl.rlim_cur = cur;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || cur < want)
        log_warn("open files limited to %llu: max_connections = %u needs about %llu",
                 (unsigned long long)cur, conf->max_connections, (unsigned long long)want);
}

static void write_pid_file(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error("pid_file %s: %s", path, strerror(errno));
        return;
    }
    char text[32];
    int n = snprintf(text, sizeof text, "%d\n", (int)getpid());
    if (write(fd, text, (size_t)n) != n) log_error("pid_file %s: short write", path);
    close(fd);
}

int master_run(struct conf *conf, struct listener *listeners, size_t nlisteners) {
    struct master m = {.conf = conf, .listeners = listeners, .nlisteners = nlisteners};
    char why[160];
    unsigned n = conf->workers;
    if (n == 0) {
        n = master_auto_workers(why, sizeof why);
        log_info("workers = auto: %u (%s)", n, why);
    }
    m.nprocs = n;
    m.procs = calloc(n, sizeof *m.procs);
    m.sb = scoreboard_create();
    if (!m.procs || !m.sb) {
        log_error("master: %s", strerror(errno));
        free(m.procs);
        return 1;
    }
    raise_nofile(conf);
    sigset_t sigs = master_signals();
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    if (conf->pid_file) write_pid_file(conf->pid_file);
    log_info("master started with %u worker(s)", n);
    for (unsigned i = 0; i < n; i++) spawn(&m, &m.procs[i]);

    while (m.state == RUNNING || running(&m) > 0) {
        uint64_t now = monotonic_ms();
        if (m.state == RUNNING) {
            for (unsigned i = 0; i < m.nprocs; i++)
                if (!m.procs[i].pid && m.procs[i].respawn_at <= now) spawn(&m, &m.procs[i]);
        } else if (now >= m.kill_at) {
            log_warn("%u worker(s) still running after the stop deadline: SIGKILL", running(&m));
            signal_workers(&m, SIGKILL);
            m.kill_at = now + 1000;
        }
        uint64_t wait = next_deadline(&m, now);
        struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig > 0) handle_signal(&m, sig);
        reap(&m); /* SIGCHLD may have merged with another signal */
    }

    log_info("master exiting");
    if (conf->pid_file) unlink(conf->pid_file);
    scoreboard_destroy(m.sb);
    free(m.procs);
    sigprocmask(SIG_UNBLOCK, &sigs, NULL);
    return 0;
}
