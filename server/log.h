/* log: the error log shared by master and workers. One write(2) per message,
 * so lines from several processes and threads never interleave. Messages are
 * dropped below the configured level. Until the master says the start is
 * done (log_started), its error lines also go to stderr when the log is a
 * file: a server that cannot start says why on the terminal.
 *
 * Log files are opened by root for workers that run as another user, in
 * folders that user may be able to write: log_open_file() opens them the way
 * DESIGN.md asks (no symlink followed, regular files only, ownership handed
 * over only for a file it created). The access log uses it too. */
#ifndef PREFORKD_LOG_H
#define PREFORKD_LOG_H

#include <stddef.h>
#include <sys/types.h>

#include <stdarg.h>

#include "server/conf.h"

/* Opens path for appending (O_APPEND, O_CLOEXEC) as a log: a symlink as the
 * last component is refused (O_NOFOLLOW: ELOOP), so is anything but a
 * regular file with a single name (EPERM: a FIFO, a device, a hard link that
 * could be some other file's). A file this call creates (0644) is handed to
 * uid:gid ((uid_t)-1 and (gid_t)-1 keep it root's); an existing one is never
 * chowned. Returns the descriptor, or -1 with errno set and the reason in
 * err. */
int log_open_file(const char *path, uid_t uid, gid_t gid, char *err, size_t errlen);
/* Whether path (not followed) still names the file open as fd: then a
 * reopen has nothing to do. */
int log_same_file(const char *path, int fd);

/* Opens path for appending ("-" = stdout, NULL = stderr); on failure returns
 * -1 with errno set and keeps the previous destination. */
int log_open(const char *path);
/* Reopens the same path (after logrotate moved it): SIGUSR1. Nothing is done
 * while the path still names the open file. -1 with errno on failure (the
 * previous file stays). */
int log_reopen(void);
/* The master's reopen: a file it creates is handed to uid:gid (the workers'
 * user), so that workers can reopen it in turn; the reason of a failure in
 * err. */
int log_reopen_owned(uid_t uid, gid_t gid, char *err, size_t errlen);
/* The start is done: from now on error lines go only to the log. */
void log_started(void);
void log_set_level(enum conf_log_level level);
/* text (the default) or json lines. */
void log_set_format(enum conf_log_format format);
/* Labels every line with the process: its role ("master", "worker") and,
 * for a worker, its scoreboard slot (-1: none). A text line reads
 * "TIME [LEVEL] master PID: MSG" or "TIME [LEVEL] worker SLOT PID: MSG". */
void log_set_role(const char *role, int slot);
/* The slot log_set_role was given (the access log's $worker). */
int log_slot(void);
void log_close(void);

void log_msg(enum conf_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum conf_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define log_error(...) log_msg(CONF_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(CONF_LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(CONF_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(CONF_LOG_DEBUG, __VA_ARGS__)

#endif
