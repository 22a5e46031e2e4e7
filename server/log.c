/* log: error log destination, level and line format. */
#include "server/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = STDERR_FILENO;
static char *log_path;
static enum conf_log_level log_level = CONF_LOG_INFO;
static char log_role[32] = "preforkd";

static int open_path(const char *path) {
    if (!path) return STDERR_FILENO;
    if (strcmp(path, "-") == 0) return STDOUT_FILENO;
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

int log_open(const char *path) {
    int fd = open_path(path);
    if (fd < 0) return -1;
    char *copy = path ? strdup(path) : NULL;
    if (path && !copy) {
        if (fd > STDERR_FILENO) close(fd);
        errno = ENOMEM;
        return -1;
    }
    log_close();
    log_fd = fd;
    log_path = copy;
    return 0;
}

int log_reopen(void) {
    if (!log_path || strcmp(log_path, "-") == 0) return 0;
    int fd = open_path(log_path);
    if (fd < 0) return -1;
    /* dup2 keeps the descriptor number, so threads writing meanwhile never
     * see a closed fd */
    if (dup2(fd, log_fd) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    close(fd);
    return 0;
}

void log_close(void) {
    if (log_fd > STDERR_FILENO) close(log_fd);
    log_fd = STDERR_FILENO;
    free(log_path);
    log_path = NULL;
}

void log_set_level(enum conf_log_level level) {
    log_level = level;
}

void log_set_role(const char *role) {
    snprintf(log_role, sizeof log_role, "%s", role);
}

void log_msg(enum conf_log_level level, const char *fmt, ...) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (level > log_level) return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%SZ", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, " [%s] %s %d: ", names[level], log_role,
                  (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    n = m < 0 ? n : (n + m > (int)sizeof line - 2 ? (int)sizeof line - 2 : n + m);
    line[n++] = '\n';
    ssize_t w = write(log_fd, line, (size_t)n);
    (void)w; /* nowhere left to report a failing error log */
}
