/* master: the process that owns the listening sockets and the scoreboard,
 * forks the workers and keeps them alive. It never serves a request.
 *
 * Signal handlers only set a flag (sig_atomic_t); the signals stay blocked
 * except while the loop sleeps in ppoll(), and the loop acts on the flags:
 *
 *   SIGTERM, SIGQUIT  graceful stop; a second one makes it fast (workers
 *                     themselves never escalate: only the master does, by
 *                     sending SIGINT)
 *   SIGINT            fast stop
 *   SIGHUP            reload: read the configuration again; if it is valid,
 *                     fork a new generation of workers on the same sockets
 *                     (new ones for new listen lines). The current
 *                     generation serves on until every new worker serves;
 *                     only then does it retire gracefully. A new generation
 *                     that cannot start is given up with one error line and
 *                     the current one goes on. A SIGHUP while a generation
 *                     starts is kept for when it has served or failed.
 *   SIGUSR1           reopen the logs, here and in every worker
 *   SIGUSR2           binary upgrade: exec the binary again with the
 *                     listening sockets inherited (PREFORKD_LISTENERS); the
 *                     new master retires this one once its workers serve
 *   SIGTTIN, SIGTTOU  one worker more, one less, in the generation that will
 *                     serve (a reload's while it starts)
 *   SIGCHLD           reap; respawn a worker that died after serving, into
 *                     its slot, with growing delays when it keeps dying
 *                     right after start
 *
 * A generation serves as a whole or not at all: "master started" is logged
 * once every worker of the first generation serves; if one cannot start
 * (its setup failed, or it does not serve within worker_timeout), the
 * master says why once and exits with status 1 instead of crash-looping.
 *
 * Workers share the listening sockets (one accept queue per address), so a
 * worker that exits, is respawned or replaced never takes waiting
 * connections with it. A worker whose heartbeat stops for worker_timeout is
 * killed and respawned.
 *
 * What runs on its own, who owns it, and when it ends:
 *
 *   the current generation's workers  the master (cur); each until it
 *           exits, then respawned; all of them retire when a reload's
 *           generation serves, or are stopped with the master
 *   a reload's generation (next)  the master, from the reload until every
 *           worker serves (it becomes current) or one cannot start (its
 *           workers retire, its new sockets close); a stop signals it too
 *   retiring workers (old)  the master, until reaped; SIGKILL at their
 *           deadline (shutdown_timeout + 3 s, or 3 s for one that never
 *           served)
 *   the upgrade heir (heir_pid)  the master, from SIGUSR2 until it is reaped
 *           or says it serves (its SIGQUIT); the old master to replace
 *           (replaces) until our workers serve or upgrade_timeout passes
 *   signal flags  set by the handler, cleared by the loop when acted on
 *   listening sockets  the master's copies: the current generation's set
 *           for its life; a reload's set (new sockets and copies of kept
 *           ones) until it becomes current or is given up; all closed when a
 *           stop begins; unix socket files removed by their owner only
 *           (never by us when systemd passed the socket: server/service.h);
 *           a reload or an upgrade never drops a socket systemd passed
 *   the pid file  written at start (and again when an upgrade fails),
 *           removed at exit if it still names this master
 *   the scoreboard  mapped before the first fork, unmapped at exit
 *   deadlines  respawn times (per position), kill times (per retiring
 *           worker, and for the whole tree once a stop begins), the upgrade
 *           deadline, the service manager's watchdog (half of
 *           WATCHDOG_USEC); the loop wakes for the nearest, at least once a
 *           second (every 50 ms while a generation starts)
 *
 * Under systemd (server/service.h) the master says READY=1 once its first
 * generation serves, RELOADING=1 and READY=1 around a reload (READY=1 also
 * when it failed), STOPPING=1 when a stop begins (not once a new master
 * serves: the service goes on), and a new master of an upgrade sends
 * MAINPID= with READY=1 before it retires the old one. */
#ifndef PREFORKD_MASTER_H
#define PREFORKD_MASTER_H

#include <stddef.h>
#include <sys/types.h>

#include "server/cli.h"
#include "server/conf.h"
#include "server/listen.h"
#include "server/privs.h"

/* Environment of a binary upgrade: the inherited sockets, and the pid of the
 * master to retire once this one serves. */
#define ENV_LISTENERS "PREFORKD_LISTENERS"
#define ENV_REPLACES  "PREFORKD_REPLACES"

/* What the master starts with; it takes over conf, creds and listeners (as
 * its first generation's). */
struct master_args {
    const struct cli *cli; /* to read the configuration again on reload */
    char **argv;           /* to exec again on upgrade */
    char exe[4096];        /* the binary's path as started */
    struct conf conf;
    struct listeners listeners;
    struct creds creds;
    pid_t replaces; /* a master to retire once our workers serve (upgrade) */
    /* Upgrade: the old master's sockets our configuration dropped, closed
     * at once; their unix socket files are removed once we take over. */
    struct listeners dropped;
};

/* A worker's exit status when it could not start (its setup failed before
 * it served); why is in its scoreboard slot. */
#define WORKER_EXIT_NOT_STARTED 3

/* Runs until stopped; returns the process exit status: 0, or 1 when the
 * first generation could not start or an upgrade gave up. */
int master_run(struct master_args *args);

/* What a start would fail on, short of binding: the user and group, the
 * log files (opened as the master or a worker opens them; a file made for
 * the test is removed again), the folders of unix sockets. --check, a start
 * and a reload all run this one function. Fills creds; *warn says what is
 * ignored (user when not root). 0, or -1 with "FILE:LINE: setting: why". */
int master_check(const struct conf *c, struct creds *creds, char *warn, size_t warnlen, char *err,
                 size_t errlen);

/* The worker count for "workers = auto": CPUs in our affinity mask, capped by
 * the smallest cgroup CPU quota of our own cgroup (from /proc/self/cgroup)
 * and its ancestors, v2 cpu.max or v1 CFS (rounded up), at least 1. why
 * describes the choice. */
unsigned master_auto_workers(char *why, size_t whylen);

/* Sends the signal for name (reload, stop, quit, reopen, ttin, ttou) to the pid in
 * pid_file. 0, or -1 with err set; *bad_name tells a usage error (an unknown
 * name, no pid_file). */
int master_signal(const char *pid_file, const char *name, int *bad_name, char *err, size_t errlen);

#endif
