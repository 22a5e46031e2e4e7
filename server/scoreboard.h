/* scoreboard: one shared-memory slot per worker, created by the master before
 * fork (mmap MAP_SHARED). Each worker writes only its own slot; the master and
 * the status handler read them all. Counters are relaxed atomics: readers
 * want recent numbers, not a consistent snapshot. */
#ifndef PREFORKD_SCOREBOARD_H
#define PREFORKD_SCOREBOARD_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#define SCOREBOARD_SLOTS 1024

enum slot_state { SLOT_FREE, SLOT_STARTING, SLOT_SERVING, SLOT_STOPPING };

struct sb_slot {
    _Atomic int state; /* enum slot_state */
    _Atomic int pid;
    _Atomic unsigned generation; /* config generation the worker serves */
    _Atomic uint64_t started_ms; /* monotonic clock */
    _Atomic uint64_t heartbeat_ms;
    _Atomic uint64_t requests;    /* answered since start */
    _Atomic uint64_t accepted;    /* connections accepted since start */
    _Atomic unsigned connections; /* open now */
    _Atomic unsigned pool_busy;   /* pool threads running a job */
    _Atomic unsigned pool_queued; /* jobs waiting for a thread */
    _Atomic unsigned pool_stuck;  /* handlers still running past request_timeout */
    char pad[128 - 64];           /* the counters get a cache line pair: no false sharing */
    /* Why the worker could not start (its setup failed before it served),
     * written once before it exits; the master says it in its one line. */
    char start_error[256];
};
_Static_assert(sizeof(struct sb_slot) % 128 == 0, "slots stay apart in the cache");

struct scoreboard {
    unsigned nslots;
    _Atomic unsigned high; /* 1 + the highest slot index ever used: scans stop there */
    struct sb_slot slots[SCOREBOARD_SLOTS];
};

/* Maps a zeroed shared scoreboard; NULL with errno on failure. */
struct scoreboard *scoreboard_create(void);
void scoreboard_destroy(struct scoreboard *sb);

/* The scoreboard of this process tree (set by scoreboard_create). */
struct scoreboard *scoreboard_get(void);

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t monotonic_ms(void);

#endif
