/* scoreboard: one shared-memory slot per worker, created by the master before
 * fork (a memfd mapped MAP_SHARED). Each worker writes only its own slot; the
 * masters and the status handlers read them all. Counters are relaxed
 * atomics: readers want recent numbers, not a consistent snapshot, except
 * across a fold (below).
 *
 * A slot holds gauges (state, connections by state, pool use: what is true
 * now) and counters (requests, bytes, statuses, latency histograms, why
 * connections closed: they only grow). Counters are flat arrays indexed by
 * enum sb_counter and enum sb_route_counter, so that adding, folding and
 * reading are one loop each. A worker adds to its own counters with a plain
 * load and store (sb_add): it is their only writer, and a locked add would
 * cost more than everything else it counts.
 *
 * Totals never go backwards: when a worker has exited (reaped, so its
 * counters are final), its master folds them into the board's totals and
 * frees the slot in one step guarded by a sequence number (odd while a fold
 * is under way): a reader (sb_read) that saw the sequence change reads
 * again, so a worker is never counted twice or not at all.
 *
 * What lives how long:
 *   the mapping  created by the first master; a binary upgrade hands its
 *           descriptor to the new master (ENV_SCOREBOARD), which maps the
 *           same board: the totals, and the old generation's slots while it
 *           drains, carry over. Unmapped at each master's exit.
 *   a slot   claimed by a master for one worker position (owner = its pid)
 *           and kept across that position's respawns; zeroed at each spawn
 *           after the fold; given back (owner 0) when the position goes.
 *   a route entry of a slot  written by its worker at start (route paths
 *           of its configuration, in route order); folded by path. */
#ifndef PREFORKD_SCOREBOARD_H
#define PREFORKD_SCOREBOARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SCOREBOARD_SLOTS 1024

/* The environment variable of a binary upgrade that names the board's fd. */
#define ENV_SCOREBOARD "PREFORKD_SCOREBOARD"

/* Latency histograms: fixed log-spaced buckets; the bounds are upper bounds
 * in microseconds, and the last bucket has none (+Inf). */
#define SB_BUCKETS 18
extern const uint64_t sb_bucket_us[SB_BUCKETS - 1];

/* Why a connection closed. */
enum sb_close {
    SB_CLOSE_CLIENT,          /* the client closed, or asked to (Connection: close) */
    SB_CLOSE_KEEPALIVE_LIMIT, /* keepalive_requests answered */
    SB_CLOSE_IDLE_TIMEOUT,    /* keepalive_timeout between requests */
    SB_CLOSE_HEADER_TIMEOUT,
    SB_CLOSE_BODY_TIMEOUT,
    SB_CLOSE_SEND_TIMEOUT,
    SB_CLOSE_REQUEST_TIMEOUT, /* request_timeout: 504 */
    SB_CLOSE_PARSE_ERROR,     /* a request refused with 4xx/5xx by the parser or limits */
    SB_CLOSE_RESET,           /* a read or write failed (ECONNRESET, EPIPE) */
    SB_CLOSE_SHUTDOWN,        /* the worker stopped */
    SB_CLOSE_SERVER,          /* the handler or the server ended it (error, out of memory) */
    SB_CLOSE_N
};
extern const char *const sb_close_names[SB_CLOSE_N];

/* A worker's counters (they only grow). */
enum sb_counter {
    SBC_ACCEPTED,
    SBC_REQUESTS, /* every request logged: answered, refused or abandoned */
    SBC_BYTES_IN, /* read from clients */
    SBC_BYTES_OUT,
    SBC_STATUS,                                 /* 5: 1xx .. 5xx */
    SBC_LATENCY = SBC_STATUS + 5,               /* SB_BUCKETS: request time histogram */
    SBC_LATENCY_SUM = SBC_LATENCY + SB_BUCKETS, /* microseconds */
    SBC_POOL_JOBS,
    SBC_POOL_WAIT, /* SB_BUCKETS: time a job waited for a thread */
    SBC_POOL_WAIT_SUM = SBC_POOL_WAIT + SB_BUCKETS,
    SBC_CLOSED, /* SB_CLOSE_N: closed connections by reason */
    SBC_N = SBC_CLOSED + SB_CLOSE_N
};

/* A route's counters. */
enum sb_route_counter {
    SBR_REQUESTS,
    SBR_STATUS,                   /* 5 */
    SBR_LATENCY = SBR_STATUS + 5, /* SB_BUCKETS */
    SBR_LATENCY_SUM = SBR_LATENCY + SB_BUCKETS,
    SBR_N
};

/* Routes counted per slot; routes past the last share the last entry, named
 * SB_ROUTE_OTHER. The totals hold more (routes of every configuration a
 * reload has had). */
#define SB_ROUTES       32
#define SB_TOTAL_ROUTES 256
#define SB_ROUTE_NAME   96
#define SB_ROUTE_OTHER  "(other)"

struct sb_route {
    char path[SB_ROUTE_NAME];
    _Atomic uint64_t c[SBR_N];
};

enum slot_state { SLOT_FREE, SLOT_STARTING, SLOT_SERVING, SLOT_STOPPING };

/* Connections by state: a gauge the worker refreshes each second (open is
 * kept exact, as connections). */
enum sb_conn_state { SB_CONN_READING, SB_CONN_WRITING, SB_CONN_IDLE, SB_CONN_LINGERING, SB_CONN_N };

struct sb_slot {
    _Alignas(128) _Atomic int state; /* enum slot_state */
    _Atomic int owner;               /* pid of the master that holds the slot; 0: none */
    _Atomic int pid;
    _Atomic unsigned generation; /* config generation the worker serves */
    _Atomic uint64_t started_ms; /* monotonic clock */
    _Atomic uint64_t heartbeat_ms;
    _Atomic unsigned connections; /* open now */
    _Atomic unsigned conns[SB_CONN_N];
    _Atomic unsigned pool_threads;
    _Atomic unsigned pool_busy;   /* pool threads running a job */
    _Atomic unsigned pool_queued; /* jobs waiting for a thread */
    _Atomic unsigned pool_stuck;  /* handlers still running past request_timeout */
    _Atomic unsigned nroutes;
    _Atomic int draining; /* its master drains a stop: /readyz says 503 */
    /* the counters get their own cache lines */
    _Alignas(128) _Atomic uint64_t c[SBC_N];
    struct sb_route routes[SB_ROUTES];
    /* Why the worker could not start (its setup failed before it served),
     * written once before it exits; the master says it in its one line. */
    char start_error[256];
};

struct scoreboard {
    uint32_t magic; /* SB_MAGIC: the layout a new master may take over */
    uint32_t size;  /* sizeof (struct scoreboard) */
    unsigned nslots;
    _Atomic unsigned high;          /* 1 + the highest slot index ever used: scans stop there */
    _Atomic unsigned seq;           /* odd while a fold is under way */
    _Atomic uint64_t born_ms;       /* CLOCK_REALTIME ms when the first master made it */
    _Atomic int fold_pid;           /* the master folding while seq is odd */
    _Atomic unsigned nroutes;       /* of totals_routes */
    _Atomic uint64_t totals[SBC_N]; /* of exited workers */
    struct sb_route total_routes[SB_TOTAL_ROUTES];
    struct sb_slot slots[SCOREBOARD_SLOTS];
};

/* Maps a new zeroed board (a memfd); NULL with errno on failure. */
struct scoreboard *scoreboard_create(void);
/* Maps the board of the descriptor in ENV_SCOREBOARD (a binary upgrade), or
 * creates one when there is none or it has another layout (*inherited
 * says which). NULL with errno on failure. */
struct scoreboard *scoreboard_open(bool *inherited);
/* The board's descriptor, for a binary upgrade's exec (not CLOEXEC in the
 * child that execs). */
int scoreboard_fd(void);
void scoreboard_destroy(struct scoreboard *sb);

/* The scoreboard of this process tree (set by scoreboard_create/open). */
struct scoreboard *scoreboard_get(void);

/* Claims a slot no master holds for owner (a master's pid); -1 when none is
 * free. A slot whose owner is gone (a master that crashed) is free. */
int scoreboard_claim(struct scoreboard *sb, int owner);
/* Gives a slot back (its worker is gone and folded). */
void scoreboard_release(struct scoreboard *sb, int slot);
/* Zeroes a slot for a new worker, keeping its owner. */
void scoreboard_reset(struct scoreboard *sb, int slot);
/* Folds and frees the slots of masters that are gone (crashed) once their
 * workers are gone too: no ghost workers in /status. The caller's tick. */
void scoreboard_sweep(struct scoreboard *sb, int self);
/* Raises high to cover slot (two masters may raise it at once). */
void scoreboard_cover(struct scoreboard *sb, int slot);
/* The worker of slot has exited: adds its counters to the totals and marks
 * the slot free, as one step for readers. */
void scoreboard_fold(struct scoreboard *sb, int slot);

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t monotonic_ms(void);
/* Microseconds of CLOCK_MONOTONIC: request times. */
uint64_t monotonic_us(void);

/* The bucket of a time in microseconds. */
static inline unsigned sb_bucket(uint64_t us) {
    unsigned i = 0;
    while (i < SB_BUCKETS - 1 && us > sb_bucket_us[i]) i++;
    return i;
}

/* Adds to a counter of the caller's own slot: one writer, so no locked add. */
static inline void sb_add(_Atomic uint64_t *c, uint64_t n) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* A consistent read of the board: totals (exited workers + live slots) and
 * the live slots' own numbers, plain copies. */
struct sb_route_view {
    char path[SB_ROUTE_NAME];
    uint64_t c[SBR_N];
};
struct sb_worker_view {
    unsigned slot;
    int state, pid;
    unsigned generation;
    uint64_t started_ms, heartbeat_ms;
    unsigned connections, conns[SB_CONN_N];
    unsigned pool_threads, pool_busy, pool_queued, pool_stuck;
    uint64_t c[SBC_N];
    unsigned nroutes;
    struct sb_route_view routes[SB_ROUTES];
};
struct sb_view {
    uint64_t born_ms;
    uint64_t c[SBC_N]; /* everything, exited and live */
    unsigned connections, conns[SB_CONN_N], pool_threads, pool_busy, pool_queued, pool_stuck;
    unsigned nroutes;
    struct sb_route_view routes[SB_TOTAL_ROUTES];
    unsigned nworkers;
    struct sb_worker_view *workers; /* nworkers of them */
};
/* A new view of the board (sb_view_free); NULL with errno. */
struct sb_view *sb_read(struct scoreboard *sb);
void sb_view_free(struct sb_view *v);

extern const char *const sb_state_names[4];

#endif
