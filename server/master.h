/* master: the process that owns the listening sockets and the scoreboard,
 * forks the workers and keeps them alive. It never serves a request.
 *
 * Signals are blocked and taken synchronously with sigtimedwait() in the
 * master's loop, so nothing runs in signal context at all:
 *   SIGTERM, SIGQUIT  graceful stop (a second one: fast stop)
 *   SIGINT            fast stop
 *   SIGCHLD           reap, and respawn workers that died unexpectedly
 */
#ifndef PREFORKD_MASTER_H
#define PREFORKD_MASTER_H

#include <stddef.h>

#include "server/conf.h"
#include "server/listen.h"

/* Runs until stopped; returns the process exit status. */
int master_run(struct conf *conf, struct listener *listeners, size_t nlisteners);

/* The worker count for "workers = auto": CPUs in our affinity mask, capped by
 * a cgroup CPU quota (rounded up), at least 1. why describes the choice. */
unsigned master_auto_workers(char *why, size_t whylen);

/* Sends the signal for name (reload, stop, quit, reopen) to the pid in
 * pid_file. 0, or -1 with err set; *bad_name tells a usage error. */
int master_signal(const char *pid_file, const char *name, int *bad_name, char *err, size_t errlen);

#endif
