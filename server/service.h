/* service: the master under a service manager (systemd). It says how it is
 * doing (sd_notify: READY=1 once a generation serves, RELOADING=1 and READY=1
 * around a reload, STOPPING=1, STATUS= lines, MAINPID= from the new master
 * of a binary upgrade), feeds the manager's watchdog, and takes the
 * listening sockets the manager passed (socket activation). Without
 * NOTIFY_SOCKET, WATCHDOG_USEC or LISTEN_FDS in the environment each part
 * does nothing.
 *
 * What it owns: the watchdog interval and its next deadline (for the
 * master's life). Sockets from the manager belong to the listener sets
 * they are put in (listener.activated): never unlinked, never dropped by a
 * reload or an upgrade, handed to a new master with the others. */
#ifndef PREFORKD_SERVICE_H
#define PREFORKD_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "server/listen.h"

/* Binary upgrade: which inherited sockets came from the service manager
 * ("FD,FD..."). */
#define ENV_ACTIVATED "PREFORKD_ACTIVATED"

/* At the master's start: the watchdog interval (WATCHDOG_USEC, for this
 * pid), taken out of the environment so that workers do not see it. */
void service_init(void);
/* One notification: "KEY=VALUE" lines. Nothing without NOTIFY_SOCKET. */
void service_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* RELOADING=1 with MONOTONIC_USEC=now (CLOCK_MONOTONIC), and a STATUS. */
void service_reloading(void);
/* WATCHDOG=1 when due (every half interval); the ms until it is due again,
 * UINT64_MAX when the manager set no watchdog. now is monotonic ms. */
uint64_t service_watchdog(uint64_t now);
/* In the child of a binary upgrade, before exec: the watchdog for the new
 * master (WATCHDOG_USEC, WATCHDOG_PID = this pid) and ENV_ACTIVATED for
 * the sockets of ls that came from the manager. */
void service_export(const struct listeners *ls);

/* Appends to into the sockets the manager passed to this process
 * (LISTEN_FDS and LISTEN_PID, which are removed from the environment),
 * each matched by its bound address to one of the listen lines (its addr
 * is that line, so that listeners_open takes it); and marks those of into
 * (inherited in an upgrade) that ENV_ACTIVATED names. A socket that no
 * line names, or that is not a listening stream socket, is an error. */
int service_listeners(struct listeners *into, char *const *lines, size_t nlines, char *err,
                      size_t errlen);
/* Every socket of ls from the manager still has a listen line: a reload or
 * an upgrade cannot close one (the manager would queue connections on it
 * with nobody accepting). -1 with err naming the first that has none. */
int service_check_kept(const struct listeners *ls, char *const *lines, size_t nlines, char *err,
                       size_t errlen);

#endif
