/* master: fork, supervise, reload, upgrade, stop. */
#include "server/master.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
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
/* The loop wakes at least every second: a longer gap than this means the
 * whole process tree was paused (SIGSTOP of the group, docker pause). */
#define PAUSE_GAP_MS 2000

/* A worker: one position of the current generation, or one retiring. */
struct proc {
    pid_t pid; /* 0 when none is running */
    int slot;  /* scoreboard slot, kept across respawns; -1 for none */
    unsigned generation;
    uint64_t started_ms;
    unsigned quick_deaths;
    uint64_t respawn_at; /* when pid is 0: monotonic ms to fork again */
    bool killed;         /* SIGKILLed for a missing heartbeat */
    uint64_t kill_at;    /* retiring: SIGKILL if it still runs then */
};

struct master {
    struct master_args *a;
    struct scoreboard *sb;
    struct proc *procs; /* the current generation, one per position */
    unsigned nprocs;
    struct proc *old; /* retiring: earlier generations, or removed by TTOU */
    size_t nold;
    unsigned generation;
    enum { RUNNING, STOPPING, STOPPING_FAST } state;
    uint64_t kill_at;    /* when stopping: SIGKILL what is left */
    uint64_t replace_by; /* when replacing an old master: give up after */
    bool handed_over;    /* a new master owns our sockets now */
    bool owns_paths;     /* ours to unlink: unix socket files */
    bool gave_up;        /* a new master whose workers did not serve */
    bool asked_to_stop;  /* SIGTERM or SIGQUIT came (from anyone but an heir) */
    uint64_t last_tick;  /* when the loop last ran */
    uint64_t watch_from; /* heartbeats older than this are not held against workers */
};

static const int master_sigs[] = {SIGCHLD, SIGTERM, SIGINT,  SIGQUIT, SIGHUP,
                                  SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU};
#define NMASTER_SIGS (sizeof master_sigs / sizeof master_sigs[0])

/* Set by the handler, taken by the loop: the handler does nothing else. */
static volatile sig_atomic_t sig_pending[NSIG];
/* The new master of a binary upgrade, while it runs (set and cleared by the
 * loop, read by the handler). Its SIGQUIT means "I serve now": a graceful
 * stop, never the second stop request that makes a stop already under way
 * fast. */
static volatile sig_atomic_t heir_pid, heir_serves;

static void on_signal(int sig, siginfo_t *info, void *ctx) {
    if (sig == SIGQUIT && heir_pid && info->si_pid == heir_pid)
        heir_serves = 1;
    else
        sig_pending[sig] = 1;
}

static sigset_t master_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < NMASTER_SIGS; i++) sigaddset(&set, master_sigs[i]);
    return set;
}

/* The handlers are installed with the signals blocked; they run only inside
 * the loop's ppoll(), which unblocks them atomically, so a signal can never
 * arrive between the loop's last look at the flags and its sleep. */
static void install_handlers(void) {
    struct sigaction sa = {.sa_sigaction = on_signal};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_NOCLDSTOP;
    for (size_t i = 0; i < NMASTER_SIGS; i++) sigaction(master_sigs[i], &sa, NULL);
}

/* A child (a worker, or the new master of an upgrade) starts from default
 * dispositions with the signals still blocked: they stay pending until it
 * has its own handling in place, instead of killing it before. */
static void child_signals(void) {
    for (size_t i = 0; i < NMASTER_SIGS; i++) signal(master_sigs[i], SIG_DFL);
}

/* "exited with status N" or "killed by signal N", from a waitpid status. */
static const char *exit_text(int status, char *buf, size_t len) {
    if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    return buf;
}

/* ---- workers = auto --------------------------------------------------- */

/* Where the cgroup filesystem is (tests point it elsewhere). */
static const char *cgroup_root = "/sys/fs/cgroup";

static FILE *cgroup_file(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", cgroup_root, name);
    return fopen(path, "r");
}

/* A cgroup CPU limit in CPUs (rounded up), or 0 when there is none. */
static unsigned cgroup_cpus(void) {
    long long quota = -1, period = 0;
    FILE *f = cgroup_file("cpu.max"); /* v2: "max 100000" or "200000 100000" */
    if (f) {
        char q[32];
        if (fscanf(f, "%31s %lld", q, &period) == 2 && strcmp(q, "max") != 0) quota = atoll(q);
        fclose(f);
    } else if ((f = cgroup_file("cpu/cpu.cfs_quota_us"))) { /* v1 */
        if (fscanf(f, "%lld", &quota) != 1) quota = -1;
        fclose(f);
        if ((f = cgroup_file("cpu/cpu.cfs_period_us"))) {
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

static unsigned worker_count(const struct conf *c) {
    char why[160];
    if (c->workers) return c->workers;
    unsigned n = master_auto_workers(why, sizeof why);
    log_info("workers = auto: %u (%s)", n, why);
    return n;
}

/* ---- what start would fail on ----------------------------------------- */

/* Whether a log file can be opened for appending, as the master (error log)
 * or a worker before its privilege drop (access log) will open it. A file
 * created for the test is removed again: a check leaves nothing behind. A
 * FIFO without a reader yet passes: its opener waits for one, and
 * worker_timeout bounds that. */
static int check_log(const struct conf *c, const char *setting, const char *path, char *err,
                     size_t errlen) {
    char where[PATH_MAX + 32];
    if (!path || strcmp(path, "-") == 0) return 0;
    int flags = O_WRONLY | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    int fd = open(path, flags | O_CREAT | O_EXCL, 0644);
    bool made = fd >= 0;
    if (fd < 0 && errno == EEXIST) fd = open(path, flags);
    if (fd < 0 && errno != ENXIO) {
        snprintf(err, errlen, "%s%s: %s: %s",
                 conf_where(c, conf_line(c, setting), where, sizeof where), setting, path,
                 strerror(errno));
        return -1;
    }
    if (fd >= 0) close(fd);
    if (made) unlink(path);
    return 0;
}

/* bind() cannot create a unix socket in a folder that does not exist. */
static int check_unix_folders(const struct conf *c, char *err, size_t errlen) {
    char where[PATH_MAX + 32], dir[PATH_MAX];
    struct stat st;
    for (size_t i = 0; i < c->nlisten; i++) {
        if (strncmp(c->listen[i], "unix:", 5) != 0) continue;
        snprintf(dir, sizeof dir, "%s", c->listen[i] + 5);
        char *slash = strrchr(dir, '/');
        if (!slash) continue; /* listen_parse wants an absolute path */
        if (slash == dir)
            slash[1] = '\0'; /* "/x.sock": the root */
        else
            *slash = '\0';
        const char *why = stat(dir, &st) < 0     ? strerror(errno)
                          : !S_ISDIR(st.st_mode) ? "not a directory"
                                                 : NULL;
        if (why) {
            snprintf(err, errlen, "%slisten: %s: %s: %s",
                     conf_where(c, c->listen_line ? c->listen_line[i] : 0, where, sizeof where),
                     c->listen[i], dir, why);
            return -1;
        }
    }
    return 0;
}

int master_check(const struct conf *c, struct creds *creds, char *warn, size_t warnlen, char *err,
                 size_t errlen) {
    if (privs_resolve(c, creds, warn, warnlen, err, errlen) < 0 ||
        check_log(c, "error_log", c->error_log, err, errlen) < 0 ||
        check_log(c, "access_log", c->access_log, err, errlen) < 0 ||
        check_unix_folders(c, err, errlen) < 0)
        return -1;
    return 0;
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
        *bad_name = 1; /* a usage error too */
        snprintf(err, errlen, "--signal needs pid_file (in the config or --pid-file)");
        return -1;
    }
    FILE *f = fopen(pid_file, "r");
    long pid = 0;
    char rest = '\n';
    /* the whole content must be one positive number (and a newline) */
    if (!f || fscanf(f, "%ld%c", &pid, &rest) < 1 || pid <= 0 || rest != '\n' || fgetc(f) != EOF) {
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

/* ---- the pid file ----------------------------------------------------- */

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

/* Removes the pid file if it still names us (after an upgrade it names the
 * new master). */
static void remove_pid_file(const char *path) {
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (!f) return;
    if (fscanf(f, "%ld", &pid) != 1) pid = 0;
    fclose(f);
    if (pid == (long)getpid()) unlink(path);
}

/* ---- the process table ------------------------------------------------ */

static bool slot_owned(const struct master *m, int slot) {
    for (unsigned i = 0; i < m->nprocs; i++)
        if (m->procs[i].slot == slot) return true;
    for (size_t i = 0; i < m->nold; i++)
        if (m->old[i].slot == slot) return true;
    return false;
}

static int free_slot(const struct master *m) {
    for (unsigned i = 0; i < m->sb->nslots; i++)
        if (!slot_owned(m, (int)i)) return (int)i;
    return -1;
}

static void worker_main(struct master *m, struct proc *p, pid_t master_pid) {
    child_signals(); /* worker_run() unblocks them once it handles them */
    /* a worker outliving its master stops gracefully (the worker arms this
     * again after a privilege drop, which clears it) */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master_pid) _exit(0);
    char role[32];
    snprintf(role, sizeof role, "worker %u", (unsigned)(p - m->procs));
    log_set_role(role);
    struct sb_slot *s = &m->sb->slots[p->slot];
    atomic_store(&s->pid, getpid());
    struct master_args *a = m->a;
    exit(worker_run(&a->conf, a->listeners.v, a->listeners.n, s, &a->creds));
}

static void spawn(struct master *m, struct proc *p) {
    uint64_t now = monotonic_ms();
    if (p->slot < 0 && (p->slot = free_slot(m)) < 0) {
        log_error("no free scoreboard slot for a worker");
        p->respawn_at = now + BACKOFF_MAX_MS;
        return;
    }
    struct sb_slot *s = &m->sb->slots[p->slot];
    memset((void *)s, 0, sizeof *s);
    if ((unsigned)p->slot >= atomic_load(&m->sb->high)) atomic_store(&m->sb->high, p->slot + 1);
    atomic_store(&s->state, SLOT_STARTING);
    atomic_store(&s->generation, m->generation);
    atomic_store(&s->started_ms, now);
    atomic_store(&s->heartbeat_ms, now);

    pid_t master_pid = getpid(), pid = fork();
    if (pid < 0) {
        log_error("fork: %s", strerror(errno));
        atomic_store(&s->state, SLOT_FREE);
        p->respawn_at = now + BACKOFF_FIRST_MS;
        return;
    }
    if (pid == 0) worker_main(m, p, master_pid);
    p->pid = pid;
    p->generation = m->generation;
    p->started_ms = now;
    p->respawn_at = 0;
    p->killed = false;
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
    exit_text(status, how, sizeof how);
    unsigned pos = (unsigned)(p - m->procs);
    if (delay)
        log_error("worker %u (pid %d) %s, %u times in a row right after starting; "
                  "respawning in %llu ms",
                  pos, (int)p->pid, how, p->quick_deaths, (unsigned long long)delay);
    else
        log_error("worker %u (pid %d) %s; respawning", pos, (int)p->pid, how);
    p->respawn_at = now + delay;
}

static void reap(struct master *m) {
    int status;
    pid_t pid;
    char how[64];
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        uint64_t now = monotonic_ms();
        if (heir_pid && pid == heir_pid) {
            heir_pid = 0;
            /* worded unlike a worker's crash: often a refused configuration */
            if (WIFSIGNALED(status))
                snprintf(how, sizeof how, "died of signal %d", WTERMSIG(status));
            else
                snprintf(how, sizeof how, "stopped with exit code %d", WEXITSTATUS(status));
            if (m->state == RUNNING) {
                log_error("binary upgrade failed: the new master (pid %d) %s; this master keeps "
                          "serving",
                          (int)pid, how);
                if (m->a->conf.pid_file) write_pid_file(m->a->conf.pid_file);
            } else {
                log_warn("the new master (pid %d) %s while this master is stopping", (int)pid, how);
            }
            continue;
        }
        for (unsigned i = 0; i < m->nprocs; i++) {
            struct proc *p = &m->procs[i];
            if (p->pid != pid) continue;
            atomic_store(&m->sb->slots[p->slot].state, SLOT_FREE);
            if (m->state == RUNNING) schedule_respawn(m, p, now, status);
            p->pid = 0;
        }
        for (size_t i = 0; i < m->nold; i++) {
            if (m->old[i].pid != pid) continue;
            atomic_store(&m->sb->slots[m->old[i].slot].state, SLOT_FREE);
            if ((WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL) ||
                (WIFEXITED(status) && WEXITSTATUS(status)))
                log_warn("retired worker (pid %d) %s", (int)pid,
                         exit_text(status, how, sizeof how));
            m->old[i--] = m->old[--m->nold];
        }
    }
}

static unsigned running(const struct master *m) {
    unsigned n = (unsigned)m->nold;
    for (unsigned i = 0; i < m->nprocs; i++) n += m->procs[i].pid != 0;
    return n;
}

/* To every worker; retiring ones are already stopping gracefully and a
 * second SIGTERM would make them fast, so a graceful stop leaves them be. */
static void signal_workers(struct master *m, int sig) {
    for (unsigned i = 0; i < m->nprocs; i++)
        if (m->procs[i].pid) kill(m->procs[i].pid, sig);
    for (size_t i = 0; sig != SIGTERM && i < m->nold; i++) {
        kill(m->old[i].pid, sig);
        if (sig == SIGKILL) m->old[i].killed = true;
    }
}

/* A retiring worker cuts what is left at the shutdown_timeout it was started
 * with; one too stuck to do so is killed a little later. */
static uint64_t retire_deadline(unsigned shutdown_timeout) {
    return monotonic_ms() + shutdown_timeout + FAST_STOP_GRACE_MS;
}

/* Moves a running worker to the retiring list and asks it to stop
 * gracefully; its position is free for a successor at once. */
static int retire(struct master *m, struct proc *p) {
    if (!p->pid) return 0;
    struct proc *old = realloc(m->old, (m->nold + 1) * sizeof *old);
    if (!old) return -1;
    m->old = old;
    m->old[m->nold] = *p;
    m->old[m->nold++].kill_at = retire_deadline(m->a->conf.shutdown_timeout);
    kill(p->pid, SIGTERM);
    p->pid = 0;
    p->slot = -1;
    return 0;
}

/* A new set of positions, each spawned; the old positions' workers retire
 * after the new ones are forked, so that someone always accepts. */
static void new_generation(struct master *m, unsigned n, unsigned prev_shutdown_timeout) {
    struct proc *procs = calloc(n, sizeof *procs), *prev = m->procs;
    unsigned nprev = m->nprocs;
    if (!procs) {
        log_error("out of memory starting a worker generation");
        return;
    }
    m->generation++;
    for (unsigned i = 0; i < n; i++) procs[i].slot = -1;
    /* both sets own their slots while the new one forks */
    struct proc *both = realloc(m->old, (m->nold + nprev) * sizeof *both);
    if (!both && nprev) {
        free(procs);
        log_error("out of memory starting a worker generation");
        return;
    }
    m->old = both;
    size_t first_prev = m->nold;
    for (unsigned i = 0; i < nprev; i++)
        if (prev[i].pid) m->old[m->nold++] = prev[i];
    m->procs = procs;
    m->nprocs = n;
    for (unsigned i = 0; i < n; i++) spawn(m, &m->procs[i]);
    uint64_t deadline = retire_deadline(prev_shutdown_timeout);
    for (size_t i = first_prev; i < m->nold; i++) {
        m->old[i].kill_at = deadline;
        kill(m->old[i].pid, SIGTERM);
    }
    free(prev);
}

/* ---- reload, resize, reopen, upgrade ---------------------------------- */

static void reload(struct master *m) {
    struct master_args *a = m->a;
    struct conf nc;
    struct creds ncreds;
    struct listeners nls;
    char err[1024], warn[256];
    if (heir_pid || a->replaces) {
        /* the sockets are shared with another master just now */
        log_warn("SIGHUP ignored: a binary upgrade is in progress");
        return;
    }
    log_info("reload: reading the configuration again");
    if (cli_load_config(a->cli, &nc, err, sizeof err) < 0) {
        log_error("reload failed: %s; still serving with the previous configuration", err);
        return;
    }
    if (master_check(&nc, &ncreds, warn, sizeof warn, err, sizeof err) < 0 ||
        listeners_open(&nls, nc.listen, nc.nlisten, nc.backlog, &a->listeners, err, sizeof err) <
            0) {
        log_error("reload failed: %s; still serving with the previous configuration", err);
        conf_free(&nc);
        return;
    }
    if (warn[0]) log_warn("%s", warn);
    for (size_t i = 0; i < a->listeners.n; i++)
        if (a->listeners.v[i].fd >= 0)
            log_info("no longer listening on %s", a->listeners.v[i].bound);
    listeners_close(&a->listeners, true);
    for (size_t i = 0; i < nls.n; i++) log_info("listening on %s", nls.v[i].bound);
    bool new_error_log = (nc.error_log == NULL) != (a->conf.error_log == NULL) ||
                         (nc.error_log && strcmp(nc.error_log, a->conf.error_log) != 0);
    unsigned prev_shutdown_timeout = a->conf.shutdown_timeout;
    conf_free(&a->conf);
    a->conf = nc;
    a->creds = ncreds;
    a->listeners = nls;
    log_set_level(a->conf.log_level);
    if (new_error_log && log_open(a->conf.error_log) < 0)
        log_error("error_log %s: %s", a->conf.error_log, strerror(errno));
    new_generation(m, worker_count(&a->conf), prev_shutdown_timeout);
    log_info("reload: generation %u started with %u worker(s); the previous one is retiring",
             m->generation, m->nprocs);
}

static void add_worker(struct master *m) {
    if (free_slot(m) < 0) {
        log_warn("SIGTTIN: no free scoreboard slot; staying at %u worker(s)", m->nprocs);
        return;
    }
    struct proc *procs = realloc(m->procs, (m->nprocs + 1) * sizeof *procs);
    if (!procs) return;
    m->procs = procs;
    struct proc *p = &m->procs[m->nprocs++];
    memset(p, 0, sizeof *p);
    p->slot = -1;
    spawn(m, p);
    log_info("SIGTTIN: %u worker(s)", m->nprocs);
}

static void remove_worker(struct master *m) {
    if (m->nprocs <= 1) {
        log_warn("SIGTTOU: keeping the last worker");
        return;
    }
    if (retire(m, &m->procs[m->nprocs - 1]) < 0) return;
    m->nprocs--;
    log_info("SIGTTOU: %u worker(s)", m->nprocs);
}

/* Workers run as another user reopen their access log themselves: make sure
 * the new file exists and is theirs. */
static void prepare_access_log(const struct master_args *a) {
    const char *path = a->conf.access_log;
    if (!a->creds.drop || !path || strcmp(path, "-") == 0) return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || fchown(fd, a->creds.uid, a->creds.gid) < 0)
        log_error("access log %s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
}

static void upgrade(struct master *m) {
    struct master_args *a = m->a;
    if (heir_pid || a->replaces) {
        log_warn("SIGUSR2: a binary upgrade is already in progress");
        return;
    }
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        log_error("binary upgrade: fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        char fds[8192], me[32];
        child_signals(); /* the new master unblocks them in its loop */
        snprintf(me, sizeof me, "%d", (int)parent);
        if (listeners_export(&a->listeners, fds, sizeof fds) == 0 &&
            setenv(ENV_LISTENERS, fds, 1) == 0 && setenv(ENV_REPLACES, me, 1) == 0)
            execv(a->exe, a->argv);
        log_error("binary upgrade: exec %s: %s", a->exe, strerror(errno));
        _exit(127);
    }
    heir_pid = pid;
    log_info("binary upgrade: started %s as pid %d; it retires this master once its workers "
             "serve",
             a->exe, (int)pid);
}

/* A new master (upgrade): once all our workers serve, the old one retires. */
static void check_replacement(struct master *m, uint64_t now) {
    struct master_args *a = m->a;
    bool ready = true;
    for (unsigned i = 0; i < m->nprocs; i++)
        ready &=
            m->procs[i].pid && atomic_load(&m->sb->slots[m->procs[i].slot].state) == SLOT_SERVING;
    if (ready) {
        log_info("binary upgrade: serving; asking the old master (pid %d) to stop gracefully",
                 (int)a->replaces);
        kill(a->replaces, SIGQUIT);
        a->replaces = 0;
        m->owns_paths = true;
        listeners_close(&a->dropped, true);
    } else if (now > m->replace_by) {
        log_error("binary upgrade: workers not serving after %u ms; stopping, the old master "
                  "(pid %d) keeps serving",
                  a->conf.upgrade_timeout, (int)a->replaces);
        a->replaces = 0;
        m->gave_up = true;
        m->state = STOPPING_FAST;
        m->kill_at = now + FAST_STOP_GRACE_MS;
        signal_workers(m, SIGINT);
    }
}

/* Retiring workers that outlive their deadline are killed. */
static void check_retiring(struct master *m, uint64_t now) {
    for (size_t i = 0; i < m->nold; i++) {
        struct proc *p = &m->old[i];
        if (p->killed || now < p->kill_at) continue;
        log_error("retired worker (pid %d) still running after shutdown_timeout: SIGKILL",
                  (int)p->pid);
        kill(p->pid, SIGKILL);
        p->killed = true;
    }
}

/* A worker whose loop has stopped beating, or that has not started serving
 * within worker_timeout of its fork (stuck opening a log, say), is killed and
 * then respawned. */
static void check_heartbeats(struct master *m, uint64_t now) {
    unsigned limit = m->a->conf.worker_timeout;
    for (unsigned i = 0; i < m->nprocs; i++) {
        struct proc *p = &m->procs[i];
        struct sb_slot *s = p->pid ? &m->sb->slots[p->slot] : NULL;
        int state = s ? atomic_load(&s->state) : SLOT_FREE;
        if (p->killed || (state != SLOT_SERVING && state != SLOT_STARTING)) continue;
        /* the master stamped the fork time as the first beat */
        uint64_t beat = atomic_load(&s->heartbeat_ms);
        if (beat < m->watch_from) beat = m->watch_from;
        if (now > beat && now - beat > limit) {
            log_error("worker %u (pid %d) has not %s for %llu ms (worker_timeout %u ms): SIGKILL",
                      i, (int)p->pid,
                      state == SLOT_STARTING ? "started serving" : "shown a heartbeat",
                      (unsigned long long)(now - beat), limit);
            kill(p->pid, SIGKILL);
            p->killed = true;
        }
    }
}

/* The master's copies of the listening sockets. Closed as a stop begins, so
 * that new connections are refused at once (and a load balancer moves on)
 * instead of waiting in a queue no worker accepts from any more. A new master
 * of an upgrade holds its own copies. */
static void close_listeners(struct master *m) {
    listeners_close(&m->a->listeners, m->owns_paths && !m->handed_over);
}

static void begin_stop(struct master *m, bool fast) {
    uint64_t now = monotonic_ms();
    m->handed_over |= heir_pid != 0;
    close_listeners(m);
    if (fast) {
        if (m->state == STOPPING_FAST) return; /* the first deadline stands */
        log_info("fast stop");
        m->state = STOPPING_FAST;
        m->kill_at = now + FAST_STOP_GRACE_MS;
        signal_workers(m, SIGINT);
        return;
    }
    if (m->state != RUNNING) return; /* already stopping */
    log_info("graceful stop: finishing requests in flight (shutdown_timeout %u ms)",
             m->a->conf.shutdown_timeout);
    m->state = STOPPING;
    /* the worker cuts what is left at shutdown_timeout; the grace covers a
     * worker too stuck to do so */
    m->kill_at = now + m->a->conf.shutdown_timeout + FAST_STOP_GRACE_MS;
    signal_workers(m, SIGTERM);
}

static void handle_signal(struct master *m, int sig) {
    bool running_state = m->state == RUNNING;
    switch (sig) {
    case SIGCHLD: reap(m); break;
    case SIGTERM:
    case SIGQUIT:
        /* a second request makes it fast; a stop the new master of an
         * upgrade asked for does not count as the first */
        begin_stop(m, m->asked_to_stop);
        m->asked_to_stop = true;
        break;
    case SIGINT: begin_stop(m, true); break;
    case SIGHUP:
        if (running_state)
            reload(m);
        else
            log_info("SIGHUP ignored: stopping");
        break;
    case SIGUSR1:
        log_info("SIGUSR1: reopening logs");
        if (log_reopen() < 0) log_error("reopening error log: %s", strerror(errno));
        prepare_access_log(m->a);
        signal_workers(m, SIGUSR1);
        break;
    case SIGUSR2:
        if (running_state)
            upgrade(m);
        else
            log_info("SIGUSR2 ignored: stopping");
        break;
    case SIGTTIN:
        if (running_state) add_worker(m);
        break;
    case SIGTTOU:
        if (running_state) remove_worker(m);
        break;
    default: break;
    }
}

/* Milliseconds until the next thing the loop must do on its own. */
static uint64_t next_deadline(const struct master *m, uint64_t now) {
    uint64_t next = now + 1000;
    if (m->state != RUNNING && m->kill_at < next) next = m->kill_at;
    for (size_t i = 0; i < m->nold; i++)
        if (!m->old[i].killed && m->old[i].kill_at < next) next = m->old[i].kill_at;
    for (unsigned i = 0; m->state == RUNNING && i < m->nprocs; i++)
        if (!m->procs[i].pid && m->procs[i].respawn_at < next) next = m->procs[i].respawn_at;
    if (m->a->replaces) next = now + 50 < next ? now + 50 : next;
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

int master_run(struct master_args *a) {
    struct master m = {.a = a, .owns_paths = !a->replaces};
    m.sb = scoreboard_create();
    if (!m.sb) {
        log_error("scoreboard: %s", strerror(errno));
        return 1;
    }
    sigset_t sigs = master_signals(), waiting;
    sigprocmask(SIG_BLOCK, &sigs, &waiting);
    for (size_t i = 0; i < NMASTER_SIGS; i++) sigdelset(&waiting, master_sigs[i]);
    install_handlers();
    raise_nofile(&a->conf);
    if (a->conf.pid_file) write_pid_file(a->conf.pid_file);
    if (a->replaces) m.replace_by = monotonic_ms() + a->conf.upgrade_timeout;
    new_generation(&m, worker_count(&a->conf), a->conf.shutdown_timeout);
    log_info("master started with %u worker(s)", m.nprocs);

    while (m.state == RUNNING || running(&m) > 0) {
        uint64_t now = monotonic_ms();
        if (m.last_tick && now - m.last_tick > PAUSE_GAP_MS) {
            /* the workers were paused with us: their old heartbeats are no
             * fault of theirs; judge them from now on */
            log_info("the master did not run for %llu ms (paused?): heartbeats count from now",
                     (unsigned long long)(now - m.last_tick));
            m.watch_from = now;
        }
        m.last_tick = now;
        check_retiring(&m, now);
        if (m.state == RUNNING) {
            for (unsigned i = 0; i < m.nprocs; i++)
                if (!m.procs[i].pid && m.procs[i].respawn_at <= now) spawn(&m, &m.procs[i]);
            check_heartbeats(&m, now);
            if (a->replaces) check_replacement(&m, now);
        } else if (now >= m.kill_at) {
            log_warn("%u worker(s) still running after the stop deadline: SIGKILL", running(&m));
            signal_workers(&m, SIGKILL);
            m.kill_at = now + 1000;
        }
        uint64_t wait = next_deadline(&m, now);
        struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
        ppoll(NULL, 0, &ts, &waiting);
        if (heir_serves) {
            heir_serves = 0;
            m.handed_over = true;
            log_info("binary upgrade: the new master serves");
            if (m.state == RUNNING) begin_stop(&m, false);
        }
        for (size_t i = 0; i < NMASTER_SIGS; i++) {
            int sig = master_sigs[i];
            if (!sig_pending[sig]) continue;
            sig_pending[sig] = 0;
            handle_signal(&m, sig);
        }
        reap(&m); /* a child may have exited while SIGCHLD was already pending */
    }

    log_info(m.handed_over ? "master exiting; a new master owns the sockets" : "master exiting");
    if (a->conf.pid_file) remove_pid_file(a->conf.pid_file);
    close_listeners(&m);
    listeners_close(&a->dropped, false); /* still the old master's if we gave up */
    conf_free(&a->conf);
    scoreboard_destroy(m.sb);
    free(m.procs);
    free(m.old);
    /* the signals stay blocked: one arriving now must not kill the process
     * on its way out (and change its exit status) */
    return m.gave_up ? 1 : 0;
}
