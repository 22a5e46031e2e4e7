/* scoreboard: the shared mapping, its totals and consistent reads. */
#include "server/scoreboard.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SB_MAGIC 0x50464432u /* "PFD2": bump when the layout changes */
/* A reader that keeps meeting folds gives up waiting and takes what it read. */
#define READ_TRIES 1000

const uint64_t sb_bucket_us[SB_BUCKETS - 1] = {
    50,    100,    250,    500,    1000,    2500,    5000,    10000,    25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

const char *const sb_close_names[SB_CLOSE_N] = {
    "client",       "keepalive_limit", "idle_timeout",    "header_timeout",
    "body_timeout", "send_timeout",    "request_timeout", "parse_error",
    "reset",        "shutdown",        "server",
};

const char *const sb_state_names[4] = {"free", "starting", "serving", "stopping"};

static struct scoreboard *current;
static int current_fd = -1;

static uint64_t realtime_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct scoreboard *map_fd(int fd) {
    struct scoreboard *sb = mmap(NULL, sizeof *sb, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return sb == MAP_FAILED ? NULL : sb;
}

struct scoreboard *scoreboard_create(void) {
    int fd = memfd_create("preforkd-scoreboard", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return NULL;
    struct scoreboard *sb = NULL;
    /* sealed at its size: whoever holds the descriptor cannot shrink it
     * under the masters' mappings (a SIGBUS in root's master) */
    if (ftruncate(fd, sizeof *sb) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0 ||
        !(sb = map_fd(fd))) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    sb->magic = SB_MAGIC;
    sb->size = sizeof *sb;
    sb->nslots = SCOREBOARD_SLOTS;
    atomic_store(&sb->born_ms, realtime_ms());
    current = sb;
    current_fd = fd;
    return sb;
}

/* The inherited board, if it is one of our layout. */
static struct scoreboard *inherit(const char *text) {
    char *end;
    long fd = strtol(text, &end, 10);
    if (*end || fd < 3 || fd > 1 << 20) return NULL;
    int flags = fcntl((int)fd, F_GETFD);
    if (flags < 0) return NULL;
    fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
    int seals = fcntl((int)fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK) ||
        lseek((int)fd, 0, SEEK_END) != (off_t)sizeof(struct scoreboard)) {
        close((int)fd);
        return NULL;
    }
    struct scoreboard *sb = map_fd((int)fd);
    if (!sb || sb->magic != SB_MAGIC || sb->size != sizeof *sb) {
        if (sb) munmap(sb, sizeof *sb);
        close((int)fd);
        return NULL;
    }
    current = sb;
    current_fd = (int)fd;
    return sb;
}

struct scoreboard *scoreboard_open(bool *inherited) {
    const char *text = getenv(ENV_SCOREBOARD);
    struct scoreboard *sb = text ? inherit(text) : NULL;
    unsetenv(ENV_SCOREBOARD); /* not for the workers, nor a later upgrade's */
    *inherited = sb != NULL;
    return sb ? sb : scoreboard_create();
}

int scoreboard_fd(void) {
    return current_fd;
}

void scoreboard_destroy(struct scoreboard *sb) {
    if (!sb) return;
    if (sb == current) {
        current = NULL;
        close(current_fd);
        current_fd = -1;
    }
    munmap(sb, sizeof *sb);
}

struct scoreboard *scoreboard_get(void) {
    return current;
}

uint64_t monotonic_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- folds: a sequence number that is odd while one is under way -------- */

static bool pid_gone(int pid) {
    return pid > 0 && kill(pid, 0) < 0 && errno == ESRCH;
}

/* Two masters may fold at once (during a binary upgrade): the first to make
 * the number odd goes first. A master that died folding leaves it odd: the
 * other takes the fold over (the counts of that one fold may be off). */
static void fold_begin(struct scoreboard *sb) {
    for (unsigned spins = 0;; spins++) {
        unsigned s = atomic_load_explicit(&sb->seq, memory_order_relaxed);
        unsigned next = s + 1;
        if ((s & 1) && spins > 100 && pid_gone(atomic_load(&sb->fold_pid)))
            next = s + 2; /* still odd: ours now */
        if ((!(s & 1) || next == s + 2) &&
            atomic_compare_exchange_weak_explicit(&sb->seq, &s, next, memory_order_acquire,
                                                  memory_order_relaxed)) {
            atomic_store(&sb->fold_pid, getpid());
            return;
        }
        sched_yield();
    }
}

static void fold_end(struct scoreboard *sb) {
    atomic_fetch_add_explicit(&sb->seq, 1, memory_order_release);
}

/* The totals' entry for a route path, added when new; the last entry is
 * shared by what does not fit. Under the fold lock. */
static struct sb_route *total_route(struct scoreboard *sb, const char *path) {
    /* the board is writable by workers: never trust its numbers as bounds */
    unsigned n = atomic_load_explicit(&sb->nroutes, memory_order_relaxed);
    if (n > SB_TOTAL_ROUTES) n = SB_TOTAL_ROUTES;
    for (unsigned i = 0; i < n; i++)
        if (strcmp(sb->total_routes[i].path, path) == 0) return &sb->total_routes[i];
    struct sb_route *r = &sb->total_routes[n < SB_TOTAL_ROUTES ? n : SB_TOTAL_ROUTES - 1];
    if (n >= SB_TOTAL_ROUTES - 1) {
        strcpy(r->path, SB_ROUTE_OTHER);
        n = SB_TOTAL_ROUTES - 1;
    } else {
        memcpy(r->path, path, SB_ROUTE_NAME);
        r->path[SB_ROUTE_NAME - 1] = '\0';
    }
    atomic_store_explicit(&sb->nroutes, n + 1, memory_order_release);
    return r;
}

void scoreboard_fold(struct scoreboard *sb, int slot) {
    struct sb_slot *s = &sb->slots[slot];
    fold_begin(sb);
    if (atomic_load_explicit(&s->state, memory_order_relaxed) != SLOT_FREE) {
        for (unsigned i = 0; i < SBC_N; i++)
            atomic_fetch_add_explicit(&sb->totals[i],
                                      atomic_load_explicit(&s->c[i], memory_order_relaxed),
                                      memory_order_relaxed);
        unsigned n = atomic_load_explicit(&s->nroutes, memory_order_relaxed);
        for (unsigned r = 0; r < n && r < SB_ROUTES; r++) {
            struct sb_route *t = total_route(sb, s->routes[r].path);
            for (unsigned i = 0; i < SBR_N; i++)
                atomic_fetch_add_explicit(
                    &t->c[i], atomic_load_explicit(&s->routes[r].c[i], memory_order_relaxed),
                    memory_order_relaxed);
        }
        atomic_store_explicit(&s->state, SLOT_FREE, memory_order_relaxed);
    }
    fold_end(sb);
}

/* ---- slots ------------------------------------------------------------- */

/* Whether a slot held by a master that is gone is free: its worker, told
 * by PDEATHSIG, may still drain its requests; only once it is gone too. */
static bool orphan_done(struct sb_slot *s, int held) {
    return pid_gone(held) &&
           (atomic_load(&s->state) == SLOT_FREE || pid_gone(atomic_load(&s->pid)));
}

int scoreboard_claim(struct scoreboard *sb, int owner) {
    for (unsigned i = 0; i < SCOREBOARD_SLOTS; i++) {
        struct sb_slot *s = &sb->slots[i];
        int held = atomic_load(&s->owner);
        if (held && (held == owner || !orphan_done(s, held))) continue;
        if (!atomic_compare_exchange_strong(&s->owner, &held, owner)) continue;
        if (held) scoreboard_fold(sb, (int)i); /* what it counted is kept */
        return (int)i;
    }
    return -1;
}

void scoreboard_release(struct scoreboard *sb, int slot) {
    if (slot >= 0) atomic_store(&sb->slots[slot].owner, 0);
}

void scoreboard_sweep(struct scoreboard *sb, int self) {
    unsigned high = atomic_load(&sb->high);
    for (unsigned i = 0; i < high && i < SCOREBOARD_SLOTS; i++) {
        struct sb_slot *s = &sb->slots[i];
        int held = atomic_load(&s->owner);
        if (!held || held == self || !orphan_done(s, held)) continue;
        if (!atomic_compare_exchange_strong(&s->owner, &held, 0)) continue;
        scoreboard_fold(sb, (int)i);
    }
}

void scoreboard_reset(struct scoreboard *sb, int slot) {
    /* all but the owner: another master's claim must never see it 0 */
    struct sb_slot *s = &sb->slots[slot];
    char *p = (char *)s, *owner = (char *)&s->owner;
    memset(p, 0, (size_t)(owner - p));
    memset(owner + sizeof s->owner, 0, sizeof *s - (size_t)(owner - p) - sizeof s->owner);
}

void scoreboard_cover(struct scoreboard *sb, int slot) {
    unsigned high = atomic_load(&sb->high);
    while (high < (unsigned)slot + 1 && !atomic_compare_exchange_weak(&sb->high, &high, slot + 1)) {
    }
}

/* ---- reading ----------------------------------------------------------- */

static struct sb_route_view *view_route(struct sb_view *v, const char *path) {
    for (unsigned i = 0; i < v->nroutes; i++)
        if (strcmp(v->routes[i].path, path) == 0) return &v->routes[i];
    if (v->nroutes == SB_TOTAL_ROUTES) return &v->routes[SB_TOTAL_ROUTES - 1];
    struct sb_route_view *r = &v->routes[v->nroutes++];
    memcpy(r->path, path, SB_ROUTE_NAME);
    r->path[SB_ROUTE_NAME - 1] = '\0';
    return r;
}

static void read_route(struct sb_route_view *out, const struct sb_route *r) {
    memcpy(out->path, r->path, SB_ROUTE_NAME);
    out->path[SB_ROUTE_NAME - 1] = '\0';
    for (unsigned i = 0; i < SBR_N; i++)
        out->c[i] = atomic_load_explicit(&r->c[i], memory_order_relaxed);
}

static void read_worker(struct sb_worker_view *w, struct sb_slot *s, unsigned slot, int state) {
    w->slot = slot;
    w->state = state;
    w->pid = atomic_load_explicit(&s->pid, memory_order_relaxed);
    w->generation = atomic_load_explicit(&s->generation, memory_order_relaxed);
    w->started_ms = atomic_load_explicit(&s->started_ms, memory_order_relaxed);
    w->heartbeat_ms = atomic_load_explicit(&s->heartbeat_ms, memory_order_relaxed);
    w->connections = atomic_load_explicit(&s->connections, memory_order_relaxed);
    for (unsigned i = 0; i < SB_CONN_N; i++)
        w->conns[i] = atomic_load_explicit(&s->conns[i], memory_order_relaxed);
    w->pool_threads = atomic_load_explicit(&s->pool_threads, memory_order_relaxed);
    w->pool_busy = atomic_load_explicit(&s->pool_busy, memory_order_relaxed);
    w->pool_queued = atomic_load_explicit(&s->pool_queued, memory_order_relaxed);
    w->pool_stuck = atomic_load_explicit(&s->pool_stuck, memory_order_relaxed);
    for (unsigned i = 0; i < SBC_N; i++)
        w->c[i] = atomic_load_explicit(&s->c[i], memory_order_relaxed);
    unsigned n = atomic_load_explicit(&s->nroutes, memory_order_acquire);
    w->nroutes = n < SB_ROUTES ? n : SB_ROUTES;
    for (unsigned r = 0; r < w->nroutes; r++) read_route(&w->routes[r], &s->routes[r]);
}

/* One pass over the board; the caller checks it met no fold. */
static int read_pass(struct scoreboard *sb, struct sb_view *v) {
    unsigned high = atomic_load_explicit(&sb->high, memory_order_acquire);
    if (high > SCOREBOARD_SLOTS) high = SCOREBOARD_SLOTS;
    free(v->workers);
    memset(v, 0, sizeof *v);
    v->born_ms = atomic_load_explicit(&sb->born_ms, memory_order_relaxed);
    for (unsigned i = 0; i < SBC_N; i++)
        v->c[i] = atomic_load_explicit(&sb->totals[i], memory_order_relaxed);
    unsigned n = atomic_load_explicit(&sb->nroutes, memory_order_acquire);
    v->nroutes = n < SB_TOTAL_ROUTES ? n : SB_TOTAL_ROUTES;
    for (unsigned r = 0; r < v->nroutes; r++) read_route(&v->routes[r], &sb->total_routes[r]);
    if (high && !(v->workers = calloc(high, sizeof *v->workers))) return -1;
    for (unsigned slot = 0; slot < high; slot++) {
        struct sb_slot *s = &sb->slots[slot];
        /* acquire: a slot its master just zeroed and marked starting is
         * read zeroed */
        int state = atomic_load_explicit(&s->state, memory_order_acquire);
        if (state == SLOT_FREE) continue;
        struct sb_worker_view *w = &v->workers[v->nworkers++];
        read_worker(w, s, slot, state & 3);
        for (unsigned i = 0; i < SBC_N; i++) v->c[i] += w->c[i];
        v->connections += w->connections;
        for (unsigned i = 0; i < SB_CONN_N; i++) v->conns[i] += w->conns[i];
        v->pool_threads += w->pool_threads;
        v->pool_busy += w->pool_busy;
        v->pool_queued += w->pool_queued;
        v->pool_stuck += w->pool_stuck;
        for (unsigned r = 0; r < w->nroutes; r++) {
            struct sb_route_view *t = view_route(v, w->routes[r].path);
            for (unsigned i = 0; i < SBR_N; i++) t->c[i] += w->routes[r].c[i];
        }
    }
    return 0;
}

struct sb_view *sb_read(struct scoreboard *sb) {
    struct sb_view *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    for (unsigned tries = 0;; tries++) {
        unsigned before = atomic_load_explicit(&sb->seq, memory_order_acquire);
        if ((before & 1) && tries < READ_TRIES) {
            sched_yield();
            continue;
        }
        if (read_pass(sb, v) < 0) {
            sb_view_free(v);
            errno = ENOMEM;
            return NULL;
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&sb->seq, memory_order_relaxed) == before || tries >= READ_TRIES)
            return v;
    }
}

void sb_view_free(struct sb_view *v) {
    if (!v) return;
    free(v->workers);
    free(v);
}
