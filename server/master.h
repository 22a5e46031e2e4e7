/* master: the process that owns the listening sockets and the scoreboard,
 * forks the workers and keeps them alive. It never serves a request.
 *
 * Signal handlers only set a flag (sig_atomic_t); the signals stay blocked
 * except while the loop sleeps in ppoll(), and the loop acts on the flags:
 *
 *   SIGTERM, SIGQUIT  graceful stop; a second one makes it fast
 *   SIGINT            fast stop
 *   SIGHUP            reload: read the configuration again; if it is valid,
 *                     start a new generation of workers on the same sockets
 *                     (new ones for new listen lines) and retire the old
 *                     generation gracefully; if not, say why and keep going
 *   SIGUSR1           reopen the logs, here and in every worker
 *   SIGUSR2           binary upgrade: exec the binary again with the
 *                     listening sockets inherited (PREFORKD_LISTENERS); the
 *                     new master retires this one once its workers serve
 *   SIGTTIN, SIGTTOU  one worker more, one less
 *   SIGCHLD           reap; respawn a worker that died, into its slot, with
 *                     growing delays when it keeps dying right after start
 *
 * Workers share the listening sockets (one accept queue per address), so a
 * worker that exits, is respawned or replaced never takes waiting
 * connections with it. A worker whose heartbeat stops for worker_timeout is
 * killed and respawned. */
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

/* What the master starts with; it takes over conf and listeners. */
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

/* Runs until stopped; returns the process exit status. */
int master_run(struct master_args *args);

/* What a start would fail on, short of binding: the user and group, the
 * log files (opened as the master or a worker opens them; a file made for
 * the test is removed again), the folders of unix sockets. --check, a start
 * and a reload all run this one function. Fills creds; *warn says what is
 * ignored (user when not root). 0, or -1 with "FILE:LINE: setting: why". */
int master_check(const struct conf *c, struct creds *creds, char *warn, size_t warnlen, char *err,
                 size_t errlen);

/* The worker count for "workers = auto": CPUs in our affinity mask, capped by
 * a cgroup CPU quota (rounded up), at least 1. why describes the choice. */
unsigned master_auto_workers(char *why, size_t whylen);

/* Sends the signal for name (reload, stop, quit, reopen) to the pid in
 * pid_file. 0, or -1 with err set; *bad_name tells a usage error (an unknown
 * name, no pid_file). */
int master_signal(const char *pid_file, const char *name, int *bad_name, char *err, size_t errlen);

#endif
