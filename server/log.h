/* log: the error log shared by master and workers. One write(2) per message,
 * so lines from several processes and threads never interleave. Messages are
 * dropped below the configured level. */
#ifndef PREFORKD_LOG_H
#define PREFORKD_LOG_H

#include "server/conf.h"

/* Opens path for appending ("-" = stdout, NULL = stderr); on failure returns
 * -1 with errno set and keeps the previous destination. */
int log_open(const char *path);
/* Reopens the same path (after logrotate moved it): SIGUSR1. */
int log_reopen(void);
void log_set_level(enum conf_log_level level);
/* Labels every line with the process role, e.g. "master" or "worker 2". */
void log_set_role(const char *role);
void log_close(void);

void log_msg(enum conf_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(CONF_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(CONF_LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(CONF_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(CONF_LOG_DEBUG, __VA_ARGS__)

#endif
