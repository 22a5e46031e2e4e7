/* log: error log destination, level and line format. */
#include "server/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int log_fd = STDERR_FILENO;
static char *log_path;
static enum conf_log_level log_level = CONF_LOG_INFO;
static char log_role[32] = "preforkd";
/* While the start is not done, the error lines of the process that opened
 * the log (the master; not the workers it forks meanwhile) go to stderr too. */
static bool start_done;
static pid_t starting_pid;

/* errno kept for the caller, the reason in err. */
static int refuse(int fd, int e, char *err, size_t errlen, const char *path, const char *why) {
    if (fd >= 0) close(fd);
    snprintf(err, errlen, "%s: %s", path, why ? why : strerror(e));
    errno = e;
    return -1;
}

int log_open_file(const char *path, uid_t uid, gid_t gid, char *err, size_t errlen) {
    /* O_NONBLOCK: a FIFO planted at path must not hang the open */
    const int flags = O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    bool created = false;
    int fd = -1;
    /* O_EXCL is what tells that we made the file; one made by someone else
     * between the two opens is opened again as an existing one */
    for (int tries = 0; tries < 3 && fd < 0; tries++) {
        if ((fd = open(path, flags)) >= 0 || errno != ENOENT) break;
        if ((fd = open(path, flags | O_CREAT | O_EXCL, 0644)) >= 0)
            created = true;
        else if (errno != EEXIST)
            break;
    }
    /* a FIFO without a reader, or a device, fails before fstat could tell */
    if (fd < 0)
        return refuse(-1, errno, err, errlen, path,
                      errno == ELOOP   ? "a symbolic link: not followed for a log"
                      : errno == ENXIO ? "not a regular file: not used as a log"
                                       : NULL);
    struct stat st;
    if (fstat(fd, &st) < 0) return refuse(fd, errno, err, errlen, path, NULL);
    if (!S_ISREG(st.st_mode))
        return refuse(fd, EPERM, err, errlen, path, "not a regular file: not used as a log");
    if (st.st_nlink > 1)
        return refuse(fd, EPERM, err, errlen, path,
                      "has more than one name (a hard link): not used as a log");
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return refuse(fd, errno, err, errlen, path, NULL);
    if (created && (uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0)
        return refuse(fd, errno, err, errlen, path, NULL);
    return fd;
}

int log_same_file(const char *path, int fd) {
    struct stat a, b;
    return lstat(path, &a) == 0 && fstat(fd, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

static int open_path(const char *path, uid_t uid, gid_t gid, char *err, size_t errlen) {
    if (!path) return STDERR_FILENO;
    if (strcmp(path, "-") == 0) return STDOUT_FILENO;
    return log_open_file(path, uid, gid, err, errlen);
}

int log_open(const char *path) {
    char err[256];
    int fd = open_path(path, (uid_t)-1, (gid_t)-1, err, sizeof err);
    if (fd < 0) return -1;
    if (!start_done) starting_pid = getpid();
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

int log_reopen_owned(uid_t uid, gid_t gid, char *err, size_t errlen) {
    if (!log_path || strcmp(log_path, "-") == 0 || log_same_file(log_path, log_fd)) return 0;
    int fd = log_open_file(log_path, uid, gid, err, errlen);
    if (fd < 0) return -1;
    /* dup2 keeps the descriptor number, so threads writing meanwhile never
     * see a closed fd */
    if (dup2(fd, log_fd) < 0) return refuse(fd, errno, err, errlen, log_path, NULL);
    close(fd);
    return 0;
}

int log_reopen(void) {
    char err[256];
    return log_reopen_owned((uid_t)-1, (gid_t)-1, err, sizeof err);
}

void log_started(void) {
    start_done = true;
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
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

void log_vmsg(enum conf_log_level level, const char *fmt, va_list ap) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (level > log_level) return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%SZ", &tm);
    pid_t pid = getpid();
    n += snprintf(line + n, sizeof line - (size_t)n, " [%s] %s %d: ", names[level], log_role,
                  (int)pid);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    n = m < 0 ? n : (n + m > (int)sizeof line - 2 ? (int)sizeof line - 2 : n + m);
    line[n++] = '\n';
    ssize_t w = write(log_fd, line, (size_t)n);
    /* a file is not where someone starting the server looks */
    if (level == CONF_LOG_ERROR && !start_done && log_fd > STDERR_FILENO && pid == starting_pid)
        w = write(STDERR_FILENO, line, (size_t)n);
    (void)w; /* nowhere left to report a failing error log */
}
