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
#include "server/service.h"
#include "workers/handlers.h"
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
/* How often the loop looks at a generation that is starting. */
#define STARTING_POLL_MS 50
/* Descriptors a worker needs beyond connections, cached files and pool
 * threads: logs, the event loop, the pool's eventfd, a file being sent. */
#define NOFILE_SPARE 256

/* A worker: one position of a generation, or one retiring. */
struct proc {
    pid_t pid; /* 0 when none is running */
    int slot;  /* scoreboard slot, kept across respawns; -1 for none */
    unsigned generation;
    uint64_t started_ms;
    unsigned quick_deaths;
    uint64_t respawn_at; /* when pid is 0: monotonic ms to fork again */
    bool killed;         /* SIGKILLed by the watchdog */
    bool served;         /* has reached SLOT_SERVING */
    bool abandoned;      /* retiring: of a generation that never served as a whole */
    uint64_t kill_at;    /* retiring: SIGKILL if it still runs then */
};

/* A generation: what its workers are forked with, and the workers. */
struct generation {
    unsigned id; /* 0: none */
    struct conf conf;
    struct creds creds;
    struct listeners listeners;
    struct proc *procs; /* one per position */
    unsigned nprocs;
};

struct master {
    struct master_args *a;
    struct scoreboard *sb;
    struct generation cur;  /* serving; on a cold start, starting */
    struct generation next; /* a reload's, from its fork until it serves or fails */
    bool *cur_kept;         /* reload: per current socket, whether next has a copy */
    bool *next_shared;      /* reload: per socket of next, whether it is such a copy */
    struct proc *old;       /* retiring: earlier generations, or removed by TTOU */
    size_t nold;
    unsigned last_id;
    enum { RUNNING, STOPPING, STOPPING_FAST } state;
    uint64_t drain_until; /* stop_delay: the graceful stop begins then; 0: none */
    bool draining;        /* our workers' /readyz says 503 */
    uint64_t kill_at;     /* when stopping: SIGKILL what is left */
    uint64_t replace_by;  /* when replacing an old master: give up after */
    bool started;         /* the first generation served ("master started") */
    bool reload_again;    /* a SIGHUP came while next was starting */
    bool handed_over;     /* a new master owns our sockets now */
    bool owns_paths;      /* ours to unlink: unix socket files */
    bool failed;          /* exit status 1: could not start, or an upgrade gave up */
    bool asked_to_stop;   /* SIGTERM or SIGQUIT came (from anyone but an heir) */
    uint64_t last_tick;   /* when the loop last ran */
    uint64_t watch_from;  /* heartbeats older than this are not held against workers */
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

/* READY=1 for the service manager, with what serves now. */
static void notify_serving(const struct master *m, const char *extra) {
    service_notify("READY=1\nSTATUS=serving with %u worker(s), generation %u%s", m->cur.nprocs,
                   m->cur.id, extra);
}

/* ---- workers = auto --------------------------------------------------- */

/* Where the cgroup filesystem is, and where our own cgroups are named
 * (tests point both at a fake tree). */
static const char *cgroup_root = "/sys/fs/cgroup";
static const char *proc_cgroup = "/proc/self/cgroup";

/* Our cgroup's path in the v2 hierarchy ("0::/system.slice/x.service") and
 * in v1's cpu controller ("4:cpu,cpuacct:/docker/abc"); "" for the root,
 * and for a path outside our cgroup namespace ("/.."), whose files we could
 * not reach anyway. */
static void own_cgroups(char *v2, char *v1, size_t len) {
    char line[1024];
    v2[0] = v1[0] = '\0';
    FILE *f = fopen(proc_cgroup, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        /* "ID:CONTROLLERS:PATH" */
        line[strcspn(line, "\n")] = '\0';
        char *ctrl = strchr(line, ':'), *path = ctrl ? strchr(ctrl + 1, ':') : NULL;
        if (!path) continue;
        *ctrl++ = '\0';
        *path++ = '\0';
        if (strcmp(path, "/") == 0 || strstr(path, "/..")) path = "";
        bool unified = strcmp(line, "0") == 0 && !*ctrl, cpu = false;
        for (char *save = NULL, *c = strtok_r(ctrl, ",", &save); c; c = strtok_r(NULL, ",", &save))
            cpu |= strcmp(c, "cpu") == 0;
        if (unified)
            snprintf(v2, len, "%s", path);
        else if (cpu)
            snprintf(v1, len, "%s", path);
    }
    fclose(f);
}

static FILE *cgroup_file(const char *dir, const char *name) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s/%s", cgroup_root, dir, name);
    return fopen(path, "r");
}

/* The CPU limit of one cgroup folder in CPUs (rounded up), 0 for none: v2's
 * cpu.max, v1's CFS quota and period. */
static unsigned cpus_of(long long quota, long long period) {
    if (quota <= 0 || period <= 0) return 0;
    return (unsigned)((quota + period - 1) / period);
}

static unsigned v2_limit(const char *dir) {
    long long quota = -1, period = 0;
    FILE *f = cgroup_file(dir, "cpu.max"); /* "max 100000" or "200000 100000" */
    if (!f) return 0;
    char q[32];
    if (fscanf(f, "%31s %lld", q, &period) == 2 && strcmp(q, "max") != 0) quota = atoll(q);
    fclose(f);
    return cpus_of(quota, period);
}

static unsigned v1_limit(const char *dir) {
    long long quota = -1, period = 0;
    FILE *f = cgroup_file(dir, "cpu.cfs_quota_us");
    if (!f) return 0;
    if (fscanf(f, "%lld", &quota) != 1) quota = -1;
    fclose(f);
    if ((f = cgroup_file(dir, "cpu.cfs_period_us"))) {
        if (fscanf(f, "%lld", &period) != 1) period = 0;
        fclose(f);
    }
    return cpus_of(quota, period);
}

/* The smallest limit of a cgroup and of each of its ancestors up to the
 * root: a limit applies to everything below it (systemd's CPUQuota= sits
 * on the service's own cgroup, a container's on one further up). */
static unsigned smallest_limit(const char *prefix, const char *path,
                               unsigned (*limit)(const char *)) {
    char dir[PATH_MAX];
    unsigned least = 0;
    int n = snprintf(dir, sizeof dir, "%s%s", prefix, path);
    if (n < 0 || (size_t)n >= sizeof dir) return 0;
    size_t keep = strlen(prefix);
    for (;;) {
        unsigned l = limit(dir);
        if (l && (!least || l < least)) least = l;
        char *slash = strrchr(dir + keep, '/');
        if (!slash) break;
        *slash = '\0';
    }
    return least;
}

/* A cgroup CPU limit in CPUs (rounded up), or 0 when there is none. */
static unsigned cgroup_cpus(void) {
    char v2[PATH_MAX], v1[PATH_MAX];
    own_cgroups(v2, v1, sizeof v2);
    unsigned a = smallest_limit("", v2, v2_limit), b = smallest_limit("/cpu", v1, v1_limit);
    return a && b ? (a < b ? a : b) : a ? a : b;
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
    if (c->workers) {
        log_info("workers = %u (configured)", c->workers);
        return c->workers;
    }
    unsigned n = master_auto_workers(why, sizeof why);
    log_info("workers = auto: %u (%s)", n, why);
    return n;
}

/* ---- descriptors ------------------------------------------------------ */

/* Files cached per worker: each inline static route keeps up to
 * file_cache_entries open (pool routes open files each time). */
static unsigned cached_routes(const struct conf *c) {
    unsigned n = 0;
    for (size_t i = 0; i < c->nroutes; i++)
        n += strcmp(c->routes[i].handler, "static") == 0 && c->routes[i].mode == ROUTE_INLINE;
    return n;
}

/* Descriptors a worker may hold at once: a connection each, the cached
 * files, a file per pool thread, the listening sockets and route roots. */
static rlim_t nofile_needed(const struct conf *c) {
    return (rlim_t)c->max_connections + (rlim_t)c->file_cache_entries * cached_routes(c) +
           c->threads + c->nlisten + c->nroutes + NOFILE_SPARE;
}

/* Raises the soft limit towards what the configuration needs, as far as the
 * hard one goes; workers forked from now on inherit it. Run at start and on
 * every reload (a new configuration may need more). */
static void raise_nofile(const struct conf *c) {
    struct rlimit rl;
    rlim_t want = nofile_needed(c);
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want) return;
    rlim_t before = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) rl.rlim_cur = before;
    if (rl.rlim_cur < want)
        log_warn("open files limited to %llu: about %llu needed (max_connections %u, "
                 "file_cache_entries %u x %u cached route(s), threads %u, sockets and spare); "
                 "raise the hard limit (ulimit -Hn, systemd LimitNOFILE=)",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)want, c->max_connections,
                 c->file_cache_entries, cached_routes(c), c->threads);
}

/* The start's line of what a worker may take on: threads, connections,
 * open files (the limit raise_nofile left), body size and timeouts. */
static void log_limits(const struct conf *c) {
    struct rlimit rl;
    unsigned long long nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 0;
    log_info("per worker: %u pool thread(s), max_connections %u, open files %llu; "
             "max_body_size %llu bytes; timeouts (ms): header %u, body %u, send %u, "
             "keepalive %u, request %u, shutdown %u",
             c->threads, c->max_connections, nofile, (unsigned long long)c->max_body_size,
             c->header_timeout, c->body_timeout, c->send_timeout, c->keepalive_timeout,
             c->request_timeout, c->shutdown_timeout);
}

/* ---- what start would fail on ----------------------------------------- */

/* Whether a log file can be opened for appending, as the master (error log)
 * or a worker before its privilege drop (access log) will open it. A file
 * created for the test is removed again: a check leaves nothing behind. A
 * FIFO without a reader yet passes: its opener waits for one, and
 * worker_timeout bounds that. */
static int check_log(const struct conf *c, const char *setting, const char *path, char *err,
                     size_t errlen) {
    char where[PATH_MAX + 32], why[PATH_MAX + 128];
    struct stat st;
    if (!path || strcmp(path, "-") == 0) return 0;
    /* opened exactly as a start opens it (no symlink, a regular file only),
     * and a file made only for the check is removed again */
    bool existed = lstat(path, &st) == 0;
    int fd = log_open_file(path, (uid_t)-1, (gid_t)-1, why, sizeof why);
    if (fd < 0) {
        snprintf(err, errlen, "%s%s: %s", conf_where(c, conf_line(c, setting), where, sizeof where),
                 setting, why);
        return -1;
    }
    close(fd);
    if (!existed) unlink(path);
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
    } names[] = {{"reload", SIGHUP},  {"stop", SIGINT},  {"quit", SIGQUIT},
                 {"reopen", SIGUSR1}, {"ttin", SIGTTIN}, {"ttou", SIGTTOU}};
    int sig = 0;
    *bad_name = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) sig = names[i].sig;
    if (!sig) {
        *bad_name = 1;
        snprintf(err, errlen,
                 "--signal: expected reload, stop, quit, reopen, ttin or ttou, got \"%s\"", name);
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

/* At exit: every slot this master held (its workers are reaped and
 * folded) is free for another master. */
static void release_slots(struct master *m) {
    for (unsigned i = 0; i < SCOREBOARD_SLOTS; i++)
        if (atomic_load(&m->sb->slots[i].owner) == getpid()) scoreboard_release(m->sb, (int)i);
}

/* A stop begins: our workers (only ours: during a binary upgrade another
 * master's share the board) answer /readyz with 503. */
static void mark_draining(struct master *m) {
    m->draining = true;
    for (unsigned i = 0; i < SCOREBOARD_SLOTS; i++)
        if (atomic_load(&m->sb->slots[i].owner) == getpid())
            atomic_store(&m->sb->slots[i].draining, 1);
}

/* Whether g has yet to serve as a whole: a reload's new generation, or the
 * first one. A worker of it that cannot start fails the generation instead
 * of being respawned. */
static bool starting(const struct master *m, const struct generation *g) {
    return g == &m->next || !m->started;
}

/* A worker keeps only its own generation's listening sockets: a copy of the
 * other generation's would keep a socket the master closed listening, and
 * its connections would wait for an accept that never comes. */
static void close_other_listeners(const struct master *m, const struct generation *g) {
    const struct generation *other = g == &m->cur ? &m->next : &m->cur;
    for (size_t i = 0; other->id && i < other->listeners.n; i++) {
        int fd = other->listeners.v[i].fd;
        bool ours = false;
        for (size_t j = 0; j < g->listeners.n; j++) ours |= g->listeners.v[j].fd == fd;
        if (fd >= 0 && !ours) close(fd);
    }
}

static void worker_main(struct master *m, struct generation *g, struct proc *p, pid_t master_pid) {
    child_signals(); /* worker_run() unblocks them once it handles them */
    close_other_listeners(m, g);
    close(scoreboard_fd()); /* the mapping stays; the descriptor is the masters' */
    /* the service manager hears the master only: a worker (or what a
     * handler runs) must not be able to say READY or MAINPID */
    unsetenv("NOTIFY_SOCKET");
    /* a worker outliving its master stops gracefully (the worker arms this
     * again after a privilege drop, which clears it) */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master_pid) _exit(0);
    log_set_role("worker", (int)p->slot);
    struct sb_slot *s = &m->sb->slots[p->slot];
    atomic_store(&s->pid, getpid());
    int status = worker_run(&g->conf, g->listeners.v, g->listeners.n, s, &g->creds,
                            (unsigned)(p - g->procs));
    /* a setup that failed leaves the slot STARTING (and may say why in it) */
    if (status && atomic_load(&s->state) == SLOT_STARTING) status = WORKER_EXIT_NOT_STARTED;
    exit(status);
}

/* Forks a worker of g into position p; -1 with why when none could be. */
static int spawn(struct master *m, struct generation *g, struct proc *p, char *why, size_t whylen) {
    uint64_t now = monotonic_ms();
    if (p->slot < 0 && (p->slot = scoreboard_claim(m->sb, getpid())) < 0) {
        snprintf(why, whylen, "no free scoreboard slot");
        return -1;
    }
    struct sb_slot *s = &m->sb->slots[p->slot];
    scoreboard_reset(m->sb, p->slot); /* folded when its last worker was reaped */
    scoreboard_cover(m->sb, p->slot);
    atomic_store(&s->draining, m->draining);
    atomic_store(&s->state, SLOT_STARTING);
    atomic_store(&s->generation, g->id);
    atomic_store(&s->started_ms, now);
    atomic_store(&s->heartbeat_ms, now);

    pid_t master_pid = getpid(), pid = fork();
    if (pid < 0) {
        snprintf(why, whylen, "fork: %s", strerror(errno));
        atomic_store(&s->state, SLOT_FREE);
        return -1;
    }
    if (pid == 0) worker_main(m, g, p, master_pid);
    p->pid = pid;
    p->generation = g->id;
    p->started_ms = now;
    p->respawn_at = 0;
    p->killed = p->served = false;
    atomic_store(&s->pid, pid);
    return 0;
}

static void generation_failed(struct master *m, struct generation *g, unsigned pos,
                              const char *why);

/* Forks every position of a new generation (which may fail at once). */
static void start_generation(struct master *m, struct generation *g) {
    char why[256];
    for (unsigned i = 0; i < g->nprocs; i++) g->procs[i].slot = -1;
    for (unsigned i = 0; i < g->nprocs; i++) {
        if (spawn(m, g, &g->procs[i], why, sizeof why) < 0) {
            generation_failed(m, g, i, why);
            return;
        }
    }
}

/* Why a worker that never served is gone: its own words from its slot, or
 * how it ended. */
static const char *start_failure(const struct generation *g, const struct proc *p,
                                 const struct sb_slot *s, int status, char *buf, size_t len) {
    if (p->killed) {
        snprintf(buf, len, "not serving %u ms after its start (worker_timeout)",
                 g->conf.worker_timeout);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_EXIT_NOT_STARTED) {
        /* written by the worker before it exited */
        if (s->start_error[0])
            snprintf(buf, len, "%.*s", (int)sizeof s->start_error, s->start_error);
        else
            snprintf(buf, len, "its setup failed (exit status %d; its message is logged above)",
                     WORKER_EXIT_NOT_STARTED);
    } else {
        exit_text(status, buf, len);
    }
    return buf;
}

/* Growing delays for a worker that keeps dying right after its start. */
static void schedule_respawn(struct master *m, struct generation *g, struct proc *p, pid_t pid,
                             uint64_t now, int status, const char *not_started) {
    bool quick = now - p->started_ms < QUICK_DEATH_MS;
    p->quick_deaths = quick ? p->quick_deaths + 1 : 0;
    uint64_t delay = 0;
    if (p->quick_deaths > 1) {
        delay = BACKOFF_FIRST_MS;
        for (unsigned i = 2; i < p->quick_deaths && delay < BACKOFF_MAX_MS; i++) delay *= 2;
        if (delay > BACKOFF_MAX_MS) delay = BACKOFF_MAX_MS;
    }
    char how[400];
    if (not_started)
        snprintf(how, sizeof how, "could not start: %s", not_started);
    else
        exit_text(status, how, sizeof how);
    unsigned pos = (unsigned)(p - g->procs);
    if (delay)
        log_error("worker %u (pid %d) %s, %u times in a row right after starting; "
                  "respawning in %llu ms",
                  pos, (int)pid, how, p->quick_deaths, (unsigned long long)delay);
    else
        log_error("worker %u (pid %d) %s; respawning", pos, (int)pid, how);
    p->respawn_at = now + delay;
}

/* A worker of g has exited (status from waitpid). */
static void worker_exited(struct master *m, struct generation *g, struct proc *p, int status,
                          uint64_t now) {
    struct sb_slot *s = &m->sb->slots[p->slot];
    int state = atomic_load(&s->state);
    bool served = p->served || state == SLOT_SERVING || state == SLOT_STOPPING;
    pid_t pid = p->pid;
    char why[320] = "";
    if (!served) start_failure(g, p, s, status, why, sizeof why);
    scoreboard_fold(m->sb, p->slot); /* its counters are final: into the totals */
    p->pid = 0;
    if (m->state != RUNNING) return;
    if (!served && starting(m, g))
        generation_failed(m, g, (unsigned)(p - g->procs), why);
    else
        schedule_respawn(m, g, p, pid, now, status, served ? NULL : why);
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
                if (m->cur.conf.pid_file) write_pid_file(m->cur.conf.pid_file);
                notify_serving(m, " (the last binary upgrade failed)");
            } else {
                log_warn("the new master (pid %d) %s while this master is stopping", (int)pid, how);
            }
            continue;
        }
        struct generation *gens[] = {&m->cur, &m->next};
        bool found = false;
        for (size_t g = 0; g < 2 && !found; g++)
            for (unsigned i = 0; i < gens[g]->nprocs && !found; i++)
                if ((found = gens[g]->procs[i].pid == pid))
                    worker_exited(m, gens[g], &gens[g]->procs[i], status, now);
        for (size_t i = 0; !found && i < m->nold; i++) {
            if (m->old[i].pid != pid) continue;
            found = true;
            scoreboard_fold(m->sb, m->old[i].slot);
            scoreboard_release(m->sb, m->old[i].slot);
            /* a generation given up before it served says why once, when
             * it is given up: its workers end quietly */
            if (!m->old[i].abandoned && ((WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL) ||
                                         (WIFEXITED(status) && WEXITSTATUS(status))))
                log_warn("retired worker (pid %d) %s", (int)pid,
                         exit_text(status, how, sizeof how));
            m->old[i] = m->old[--m->nold];
        }
    }
}

static unsigned running(const struct master *m) {
    unsigned n = (unsigned)m->nold;
    for (unsigned i = 0; i < m->cur.nprocs; i++) n += m->cur.procs[i].pid != 0;
    for (unsigned i = 0; i < m->next.nprocs; i++) n += m->next.procs[i].pid != 0;
    return n;
}

/* To every worker; retiring ones are stopping gracefully already, and a
 * graceful stop leaves them be. */
static void signal_workers(struct master *m, int sig) {
    struct generation *gens[] = {&m->cur, &m->next};
    for (size_t g = 0; g < 2; g++)
        for (unsigned i = 0; i < gens[g]->nprocs; i++)
            if (gens[g]->procs[i].pid) kill(gens[g]->procs[i].pid, sig);
    for (size_t i = 0; sig != SIGTERM && i < m->nold; i++) {
        kill(m->old[i].pid, sig);
        if (sig == SIGKILL) m->old[i].killed = true;
    }
}

/* Moves a running worker to the retiring list and asks it to stop
 * gracefully; its position is free for a successor at once. It is killed
 * kill_after ms from now if it still runs: a retiring worker cuts what is
 * left at the shutdown_timeout it was started with, and one too stuck to
 * do so gets a little longer. */
static int retire(struct master *m, struct proc *p, uint64_t kill_after, bool abandoned) {
    if (!p->pid) { /* waiting for a respawn: nothing runs in its slot */
        scoreboard_release(m->sb, p->slot);
        p->slot = -1;
        return 0;
    }
    struct proc *old = realloc(m->old, (m->nold + 1) * sizeof *old);
    if (!old) return -1;
    m->old = old;
    m->old[m->nold] = *p;
    m->old[m->nold].kill_at = monotonic_ms() + kill_after;
    m->old[m->nold++].abandoned = abandoned;
    kill(p->pid, SIGTERM);
    p->pid = 0;
    p->slot = -1;
    return 0;
}

/* ---- reload: a new generation, and its sockets ------------------------- */

/* The sockets of a reload's generation: a listen line that stays gets a copy
 * (dup) of the current socket, so that both generations accept from the
 * same queue and the current set stays whole should the new generation
 * fail; new lines get new sockets. Which is which is noted for the end of
 * the reload (commit_next, abandon_next). */
static int open_next_listeners(struct master *m, struct generation *g, char *err, size_t errlen) {
    struct listeners *cur = &m->cur.listeners, loan = {calloc(cur->n + 1, sizeof *loan.v), 0};
    int *dups = calloc(cur->n + 1, sizeof *dups);
    bool *kept = calloc(cur->n + 1, sizeof *kept);
    bool *shared = calloc(g->conf.nlisten + 1, sizeof *shared);
    if (!loan.v || !dups || !kept || !shared) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* a socket from the service manager is never closed by a reload */
    if (service_check_kept(cur, g->conf.listen, g->conf.nlisten, err, errlen) < 0) goto fail;
    for (size_t i = 0; i < cur->n; i++) {
        struct listener *l = &loan.v[loan.n];
        *l = cur->v[i];
        l->addr = strdup(cur->v[i].addr);
        l->fd = dups[i] = fcntl(cur->v[i].fd, F_DUPFD_CLOEXEC, 3);
        if (!l->addr || l->fd < 0) {
            snprintf(err, errlen, "listen: %s: %s", cur->v[i].bound, strerror(errno));
            free(l->addr);
            if (l->fd >= 0) close(l->fd);
            goto fail;
        }
        loan.n++;
    }
    if (listeners_open(&g->listeners, g->conf.listen, g->conf.listen_opts, g->conf.nlisten,
                       g->conf.backlog, &loan, err, errlen) < 0)
        goto fail;
    for (size_t i = 0; i < loan.n; i++) {
        kept[i] = loan.v[i].fd < 0; /* taken by the new set */
        for (size_t j = 0; kept[i] && j < g->listeners.n; j++)
            shared[j] |= g->listeners.v[j].fd == dups[i];
    }
    listeners_close(&loan, false); /* copies of what the new set dropped */
    free(dups);
    m->cur_kept = kept;
    m->next_shared = shared;
    return 0;
fail:
    listeners_close(&loan, false);
    free(dups);
    free(kept);
    free(shared);
    return -1;
}

/* Closes the master's copies of next's sockets; the unix socket files made
 * for it are removed, those it shares with the current generation stay. */
static void close_next_listeners(struct master *m) {
    for (size_t j = 0; m->next_shared && j < m->next.listeners.n; j++)
        if (m->next_shared[j]) m->next.listeners.v[j].unix_owned = false;
    listeners_close(&m->next.listeners, true);
}

static void end_reload(struct master *m) {
    conf_free(&m->next.conf);
    free(m->next.procs);
    memset(&m->next, 0, sizeof m->next);
    free(m->cur_kept);
    free(m->next_shared);
    m->cur_kept = m->next_shared = NULL;
}

/* The error log and level belong to the configuration whose workers are
 * forked: a reload switches them before it forks, and back if its
 * generation is given up. */
static void use_logs_of(const struct conf *now, const struct conf *before) {
    bool other = (now->error_log == NULL) != (before->error_log == NULL) ||
                 (now->error_log && strcmp(now->error_log, before->error_log) != 0);
    if (other && log_open(now->error_log) < 0)
        log_error("error_log %s: %s", now->error_log, strerror(errno));
    log_set_level(now->log_level);
    log_set_format(now->log_format);
}

static void reload(struct master *m);

/* A reload's generation that cannot start is given up: its workers retire
 * (those serving may hold connections already; one still starting gets a
 * moment, then SIGKILL), its new sockets close, and the current
 * generation, which never stopped serving, goes on. */
static void abandon_next(struct master *m) {
    struct generation *g = &m->next;
    for (unsigned i = 0; i < g->nprocs; i++) {
        struct proc *p = &g->procs[i];
        bool serving = p->pid && atomic_load(&m->sb->slots[p->slot].state) == SLOT_SERVING;
        retire(m, p, serving ? g->conf.shutdown_timeout + FAST_STOP_GRACE_MS : FAST_STOP_GRACE_MS,
               true);
    }
    close_next_listeners(m);
    use_logs_of(&m->cur.conf, &g->conf);
    end_reload(m);
    notify_serving(m, " (the last reload failed)");
    if (m->reload_again) {
        m->reload_again = false;
        reload(m);
    }
}

/* Every worker of a reload's generation serves: it becomes the current one
 * and the previous generation retires, with the shutdown_timeout it was
 * started with. Sockets no listen line names any more close now. */
static void commit_next(struct master *m) {
    struct generation *prev = &m->cur;
    for (unsigned i = 0; i < prev->nprocs; i++)
        retire(m, &prev->procs[i], prev->conf.shutdown_timeout + FAST_STOP_GRACE_MS, false);
    for (size_t i = 0; i < prev->listeners.n; i++) {
        if (m->cur_kept[i])
            prev->listeners.v[i].unix_owned = false; /* the new set's copy goes on */
        else
            log_info("no longer listening on %s", prev->listeners.v[i].bound);
    }
    listeners_close(&prev->listeners, m->owns_paths);
    conf_free(&prev->conf);
    free(prev->procs);
    m->cur = m->next;
    memset(&m->next, 0, sizeof m->next);
    end_reload(m);
    log_info("reload done: generation %u serves with %u worker(s); the previous one is retiring",
             m->cur.id, m->cur.nprocs);
    notify_serving(m, "");
    if (m->reload_again) {
        m->reload_again = false;
        reload(m);
    }
}

static void stop_fast(struct master *m);
static void close_listeners(struct master *m);

/* A worker of a generation that has not served as a whole could not start.
 * A reload's generation is given up, and the one serving goes on; a first
 * generation stops the master (exit status 1). Said once, also on stderr
 * when the error log is elsewhere. */
static void generation_failed(struct master *m, struct generation *g, unsigned pos,
                              const char *why) {
    if (g == &m->next) {
        log_error("reload failed: worker %u of generation %u could not start: %s; generation %u "
                  "keeps serving",
                  pos, g->id, why, m->cur.id);
        abandon_next(m);
        return;
    }
    log_error("worker %u could not start: %s; stopping", pos, why);
    service_notify("STATUS=worker %u could not start: %s", pos, why);
    m->failed = true;
    m->a->replaces = 0; /* an upgrade that failed: the old master keeps serving */
    close_listeners(m);
    stop_fast(m);
}

static void reload(struct master *m) {
    struct master_args *a = m->a;
    struct generation g;
    char err[1024], warn[256];
    if (heir_pid || a->replaces) {
        /* the sockets are shared with another master just now */
        log_warn("SIGHUP ignored: a binary upgrade is in progress");
        return;
    }
    if (m->next.id) {
        /* its sockets are not settled yet: read the file once it is */
        m->reload_again = true;
        log_info("SIGHUP: generation %u is still starting; reading the configuration again once "
                 "it serves or fails",
                 m->next.id);
        return;
    }
    log_info("reload: reading the configuration again");
    service_reloading();
    memset(&g, 0, sizeof g);
    if (cli_load_config(a->cli, &g.conf, err, sizeof err) < 0) {
        log_error("reload failed: %s; still serving with the previous configuration", err);
        notify_serving(m, " (the last reload failed)");
        return;
    }
    if (master_check(&g.conf, &g.creds, warn, sizeof warn, err, sizeof err) < 0 ||
        handlers_load(&g.conf, err, sizeof err) < 0 ||
        open_next_listeners(m, &g, err, sizeof err) < 0 ||
        !(g.procs = calloc(g.nprocs = worker_count(&g.conf), sizeof *g.procs))) {
        log_error("reload failed: %s; still serving with the previous configuration",
                  g.listeners.v ? "out of memory" : err);
        m->next = g;
        close_next_listeners(m);
        end_reload(m);
        notify_serving(m, " (the last reload failed)");
        return;
    }
    listeners_defer_accept(&g.listeners, g.conf.defer_accept);
    if (warn[0]) log_warn("%s", warn);
    for (size_t j = 0; j < g.listeners.n; j++) {
        char opts[128];
        if (m->next_shared[j]) continue;
        listen_opts_format(&g.listeners.v[j].opts, opts, sizeof opts);
        log_info("listening on %s%s%s%s", g.listeners.v[j].bound, opts[0] ? " (" : "", opts,
                 opts[0] ? ")" : "");
    }
    raise_nofile(&g.conf);
    use_logs_of(&g.conf, &m->cur.conf);
    g.id = ++m->last_id;
    m->next = g;
    log_info("reload: generation %u started with %u worker(s); the current one serves until all "
             "of them do",
             g.id, g.nprocs);
    start_generation(m, &m->next);
}

/* ---- resize, reopen, upgrade ------------------------------------------ */

/* The generation SIGTTIN and SIGTTOU resize: the one that will serve, so a
 * reload's while it starts (the current one is about to retire). */
static struct generation *resized(struct master *m) {
    return m->next.id ? &m->next : &m->cur;
}

static void add_worker(struct master *m) {
    char why[256];
    struct generation *g = resized(m);
    int slot = scoreboard_claim(m->sb, getpid());
    if (slot < 0) {
        log_warn("SIGTTIN: no free scoreboard slot; staying at %u worker(s)", g->nprocs);
        return;
    }
    struct proc *procs = realloc(g->procs, (g->nprocs + 1) * sizeof *procs);
    if (!procs) {
        scoreboard_release(m->sb, slot);
        return;
    }
    g->procs = procs;
    struct proc *p = &g->procs[g->nprocs++];
    memset(p, 0, sizeof *p);
    p->slot = slot;
    log_info("SIGTTIN: %u worker(s)", g->nprocs);
    if (g == &m->cur && m->started) notify_serving(m, "");
    if (spawn(m, g, p, why, sizeof why) < 0) {
        if (starting(m, g)) {
            generation_failed(m, g, g->nprocs - 1, why);
            return;
        }
        log_error("worker %u: %s", g->nprocs - 1, why);
        p->respawn_at = monotonic_ms() + BACKOFF_FIRST_MS;
    }
}

static void remove_worker(struct master *m) {
    struct generation *g = resized(m);
    if (g->nprocs <= 1) {
        log_warn("SIGTTOU: keeping the last worker");
        return;
    }
    if (retire(m, &g->procs[g->nprocs - 1], g->conf.shutdown_timeout + FAST_STOP_GRACE_MS, false) <
        0)
        return;
    g->nprocs--;
    log_info("SIGTTOU: %u worker(s)", g->nprocs);
    if (g == &m->cur && m->started) notify_serving(m, "");
}

/* Workers run as another user reopen their logs themselves: a file the
 * master creates for them is theirs, one it finds is never chowned, and a
 * symlink is never followed (a folder the workers' user may write must not
 * let it take over a root file: nginx's CVE-2016-1247). */
static void reopen_access_log(const struct generation *g) {
    char err[512];
    const char *path = g->conf.access_log;
    if (!g->id || !g->creds.drop || !path || strcmp(path, "-") == 0) return;
    int fd = log_open_file(path, g->creds.uid, g->creds.gid, err, sizeof err);
    if (fd < 0)
        log_error("access log %s", err);
    else
        close(fd);
}

static void upgrade(struct master *m) {
    struct master_args *a = m->a;
    if (heir_pid || a->replaces) {
        log_warn("SIGUSR2: a binary upgrade is already in progress");
        return;
    }
    if (m->next.id) {
        log_warn("SIGUSR2 ignored: generation %u of a reload is still starting", m->next.id);
        return;
    }
    if (m->draining) { /* its heir's word would end the stop fast */
        log_warn("SIGUSR2 ignored: stopping");
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
        char board[32];
        snprintf(me, sizeof me, "%d", (int)parent);
        /* the new master takes over the scoreboard: totals carry over */
        int sbfd = scoreboard_fd();
        snprintf(board, sizeof board, "%d", sbfd);
        if (sbfd >= 0 && fcntl(sbfd, F_SETFD, 0) == 0) setenv(ENV_SCOREBOARD, board, 1);
        service_export(&m->cur.listeners);
        if (listeners_export(&m->cur.listeners, fds, sizeof fds) == 0 &&
            setenv(ENV_LISTENERS, fds, 1) == 0 && setenv(ENV_REPLACES, me, 1) == 0)
            execv(a->exe, a->argv);
        log_error("binary upgrade: exec %s: %s", a->exe, strerror(errno));
        _exit(127);
    }
    heir_pid = pid;
    service_notify("STATUS=binary upgrade: new master (pid %d) starting", (int)pid);
    log_info("binary upgrade: started %s as pid %d; it retires this master once its workers "
             "serve",
             a->exe, (int)pid);
}

/* Whether every position of g has a worker, and every one serves. */
static bool generation_serves(struct master *m, struct generation *g) {
    bool all = true;
    for (unsigned i = 0; i < g->nprocs; i++) {
        struct proc *p = &g->procs[i];
        bool serving = p->pid && atomic_load(&m->sb->slots[p->slot].state) == SLOT_SERVING;
        p->served |= serving;
        all &= serving;
    }
    return all;
}

/* A new master (upgrade): once all our workers serve, the old one retires. */
static void check_replacement(struct master *m, uint64_t now) {
    struct master_args *a = m->a;
    if (generation_serves(m, &m->cur)) {
        log_info("binary upgrade: serving; asking the old master (pid %d) to stop gracefully",
                 (int)a->replaces);
        /* the service manager follows this master from now on */
        service_notify("MAINPID=%d\nREADY=1\nSTATUS=serving with %u worker(s) (binary upgrade)",
                       (int)getpid(), m->cur.nprocs);
        kill(a->replaces, SIGQUIT);
        a->replaces = 0;
        m->owns_paths = true;
        listeners_close(&a->dropped, true);
    } else if (now > m->replace_by) {
        log_error("binary upgrade: workers not serving after %u ms; stopping, the old master "
                  "(pid %d) keeps serving",
                  m->cur.conf.upgrade_timeout, (int)a->replaces);
        a->replaces = 0;
        m->failed = true;
        stop_fast(m);
    }
}

/* Retiring workers that outlive their deadline are killed. */
static void check_retiring(struct master *m, uint64_t now) {
    for (size_t i = 0; i < m->nold; i++) {
        struct proc *p = &m->old[i];
        if (p->killed || now < p->kill_at) continue;
        if (!p->abandoned)
            log_error("retired worker (pid %d) still running after shutdown_timeout: SIGKILL",
                      (int)p->pid);
        kill(p->pid, SIGKILL);
        p->killed = true;
    }
}

/* A worker of g whose loop has stopped beating, or that has not started
 * serving within worker_timeout of its fork (stuck opening a log, say), is
 * killed; then respawned, or its generation fails if it never served. */
static void check_heartbeats(struct master *m, struct generation *g, uint64_t now) {
    unsigned limit = g->conf.worker_timeout;
    for (unsigned i = 0; i < g->nprocs; i++) {
        struct proc *p = &g->procs[i];
        struct sb_slot *s = p->pid ? &m->sb->slots[p->slot] : NULL;
        int state = s ? atomic_load(&s->state) : SLOT_FREE;
        if (p->killed || (state != SLOT_SERVING && state != SLOT_STARTING)) continue;
        /* the master stamped the fork time as the first beat */
        uint64_t beat = atomic_load(&s->heartbeat_ms);
        if (beat < m->watch_from) beat = m->watch_from;
        if (now > beat && now - beat > limit) {
            /* a generation still starting says why once, when it fails */
            if (state == SLOT_SERVING || !starting(m, g))
                log_error("worker %u (pid %d) has not %s for %llu ms (worker_timeout %u ms): "
                          "SIGKILL",
                          i, (int)p->pid,
                          state == SLOT_STARTING ? "started serving" : "shown a heartbeat",
                          (unsigned long long)(now - beat), limit);
            kill(p->pid, SIGKILL);
            p->killed = true;
        }
    }
}

/* Forks again into the positions of g whose respawn time has come. */
static void respawn_due(struct master *m, struct generation *g, uint64_t now) {
    char why[256];
    unsigned id = g->id;
    for (unsigned i = 0; g->id == id && i < g->nprocs; i++) {
        struct proc *p = &g->procs[i];
        if (p->pid || p->respawn_at > now) continue;
        if (spawn(m, g, p, why, sizeof why) == 0) continue;
        if (starting(m, g)) {
            generation_failed(m, g, i, why);
            return;
        }
        log_error("worker %u: %s", i, why);
        p->respawn_at = now + (p->slot < 0 ? BACKOFF_MAX_MS : BACKOFF_FIRST_MS);
    }
}

/* The master's copies of the listening sockets. Closed as a stop begins, so
 * that new connections are refused at once (and a load balancer moves on)
 * instead of waiting in a queue no worker accepts from any more. A new master
 * of an upgrade holds its own copies. */
static void close_listeners(struct master *m) {
    close_next_listeners(m);
    listeners_close(&m->cur.listeners, m->owns_paths && !m->handed_over);
}

static void stop_fast(struct master *m) {
    m->state = STOPPING_FAST;
    m->kill_at = monotonic_ms() + FAST_STOP_GRACE_MS;
    signal_workers(m, SIGINT);
}

static void begin_stop(struct master *m, bool fast) {
    m->handed_over |= heir_pid != 0;
    /* once a new master serves, the service goes on: not a stop to report */
    if (m->state == RUNNING && !m->handed_over)
        service_notify("STOPPING=1\nSTATUS=%s stop", fast ? "fast" : "graceful");
    /* /readyz says 503 from now on; not when a new master serves on */
    if (!m->handed_over) mark_draining(m);
    close_listeners(m);
    if (fast) {
        if (m->state == STOPPING_FAST) return; /* the first deadline stands */
        log_info("fast stop");
        stop_fast(m);
        return;
    }
    if (m->state != RUNNING) return; /* already stopping */
    log_info("graceful stop: finishing requests in flight (shutdown_timeout %u ms)",
             m->cur.conf.shutdown_timeout);
    m->state = STOPPING;
    /* the worker cuts what is left at shutdown_timeout; the grace covers a
     * worker too stuck to do so */
    unsigned longest = m->cur.conf.shutdown_timeout;
    if (m->next.id && m->next.conf.shutdown_timeout > longest)
        longest = m->next.conf.shutdown_timeout;
    m->kill_at = monotonic_ms() + longest + FAST_STOP_GRACE_MS;
    signal_workers(m, SIGTERM);
}

/* stop_delay: the board says draining (so /readyz answers 503 and health
 * checks take the server out) while everything serves on; the graceful stop
 * begins when the delay is over (drain_until, in the loop). */
static void begin_drain(struct master *m) {
    service_notify("STOPPING=1\nSTATUS=draining (stop_delay)");
    mark_draining(m);
    m->drain_until = monotonic_ms() + m->cur.conf.stop_delay;
    log_info("graceful stop in %u ms (stop_delay): /readyz answers 503 meanwhile",
             m->cur.conf.stop_delay);
}

static void handle_signal(struct master *m, int sig) {
    bool running_state = m->state == RUNNING;
    switch (sig) {
    case SIGCHLD: reap(m); break;
    case SIGTERM:
    case SIGQUIT:
        /* a second request makes it fast; a stop the new master of an
         * upgrade asked for does not count as the first */
        if (!m->asked_to_stop && running_state && m->cur.conf.stop_delay && !heir_pid)
            begin_drain(m);
        else
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
        {
            char err[512];
            const struct generation *g = &m->cur;
            uid_t uid = g->creds.drop ? g->creds.uid : (uid_t)-1;
            gid_t gid = g->creds.drop ? g->creds.gid : (gid_t)-1;
            if (log_reopen_owned(uid, gid, err, sizeof err) < 0)
                log_error("reopening error log %s", err);
        }
        reopen_access_log(&m->cur);
        reopen_access_log(&m->next);
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
    if (m->drain_until && m->drain_until < next) next = m->drain_until;
    for (size_t i = 0; i < m->nold; i++)
        if (!m->old[i].killed && m->old[i].kill_at < next) next = m->old[i].kill_at;
    const struct generation *gens[] = {&m->cur, &m->next};
    for (size_t g = 0; m->state == RUNNING && g < 2; g++)
        for (unsigned i = 0; i < gens[g]->nprocs; i++)
            if (!gens[g]->procs[i].pid && gens[g]->procs[i].respawn_at < next)
                next = gens[g]->procs[i].respawn_at;
    /* a starting generation is looked at often: it takes over once it serves */
    if (m->state == RUNNING && (m->a->replaces || m->next.id || !m->started) &&
        now + STARTING_POLL_MS < next)
        next = now + STARTING_POLL_MS;
    return next > now ? next - now : 0;
}

/* One turn of the loop's own work, while running. */
static void supervise(struct master *m, uint64_t now) {
    scoreboard_sweep(m->sb, getpid()); /* slots of a master that crashed */
    respawn_due(m, &m->cur, now);
    if (m->next.id) respawn_due(m, &m->next, now);
    if (m->state != RUNNING) return;
    check_heartbeats(m, &m->cur, now);
    if (m->next.id) check_heartbeats(m, &m->next, now);
    if (!m->started && generation_serves(m, &m->cur)) {
        m->started = true;
        log_info("master started with %u worker(s)", m->cur.nprocs);
        /* a new master of an upgrade says so once it takes over */
        if (!m->a->replaces) notify_serving(m, "");
        log_started(); /* from now on, errors go to the error log only */
    }
    if (m->next.id && generation_serves(m, &m->next)) commit_next(m);
    if (m->state == RUNNING && m->a->replaces) check_replacement(m, now);
}

int master_run(struct master_args *a) {
    struct master m = {.a = a, .owns_paths = !a->replaces};
    /* the first generation takes over what main() prepared */
    m.cur.conf = a->conf;
    m.cur.creds = a->creds;
    m.cur.listeners = a->listeners;
    memset(&a->conf, 0, sizeof a->conf);
    memset(&a->listeners, 0, sizeof a->listeners);
    bool inherited;
    m.sb = scoreboard_open(&inherited);
    if (inherited) log_info("binary upgrade: the scoreboard's totals carry over");
    if (!m.sb) {
        log_error("scoreboard: %s", strerror(errno));
        conf_free(&m.cur.conf);
        listeners_close(&m.cur.listeners, m.owns_paths);
        return 1;
    }
    service_init();
    sigset_t sigs = master_signals(), waiting;
    sigprocmask(SIG_BLOCK, &sigs, &waiting);
    for (size_t i = 0; i < NMASTER_SIGS; i++) sigdelset(&waiting, master_sigs[i]);
    install_handlers();
    raise_nofile(&m.cur.conf);
    if (m.cur.conf.pid_file) write_pid_file(m.cur.conf.pid_file);
    if (a->replaces) m.replace_by = monotonic_ms() + m.cur.conf.upgrade_timeout;
    m.cur.id = m.last_id = 1;
    m.cur.nprocs = worker_count(&m.cur.conf);
    log_limits(&m.cur.conf);
    if (!(m.cur.procs = calloc(m.cur.nprocs, sizeof *m.cur.procs))) {
        log_error("out of memory starting %u worker(s)", m.cur.nprocs);
        m.cur.nprocs = 0;
        m.failed = true;
        m.state = STOPPING_FAST;
    } else {
        start_generation(&m, &m.cur);
    }

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
        if (m.drain_until && (now >= m.drain_until || m.state != RUNNING)) {
            m.drain_until = 0;
            if (m.state == RUNNING) begin_stop(&m, false);
        }
        if (m.state == RUNNING) {
            supervise(&m, now);
        } else if (now >= m.kill_at) {
            log_warn("%u worker(s) still running after the stop deadline: SIGKILL", running(&m));
            signal_workers(&m, SIGKILL);
            m.kill_at = now + 1000;
        }
        uint64_t wait = next_deadline(&m, now), fed = service_watchdog(now);
        if (fed < wait) wait = fed;
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
    if (m.cur.conf.pid_file) remove_pid_file(m.cur.conf.pid_file);
    close_listeners(&m);
    listeners_close(&a->dropped, false); /* still the old master's if we gave up */
    end_reload(&m);
    conf_free(&m.cur.conf);
    release_slots(&m);
    scoreboard_destroy(m.sb);
    free(m.cur.procs);
    free(m.old);
    /* the signals stay blocked: one arriving now must not kill the process
     * on its way out (and change its exit status) */
    return m.failed ? 1 : 0;
}
