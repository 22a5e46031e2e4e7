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

#include "workers/json.h"

static int log_fd = STDERR_FILENO;
static char *log_path;
static enum conf_log_level log_level = CONF_LOG_INFO;
static enum conf_log_format log_format = CONF_LOG_TEXT;
static char log_role[16] = "preforkd";
static int log_slot_no = -1; /* the worker's scoreboard slot; -1: not a worker */
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

void log_set_format(enum conf_log_format format) {
    log_format = format;
}

void log_set_role(const char *role, int slot) {
    snprintf(log_role, sizeof log_role, "%s", role);
    log_slot_no = slot;
}

int log_slot(void) {
    return log_slot_no;
}

void log_msg(enum conf_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* "2026-11-22T19:26:51Z", with ".mmm" before the Z in JSON. */
static size_t put_time(char *p, size_t room) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(p, room, "%Y-%m-%dT%H:%M:%S", &tm);
    if (log_format == CONF_LOG_JSON)
        n += (size_t)snprintf(p + n, room - n, ".%03ld", ts.tv_nsec / 1000000);
    n += (size_t)snprintf(p + n, room - n, "Z");
    return n;
}

/* "TIME [LEVEL] ROLE[ SLOT] PID: " */
static size_t put_text_head(char *p, size_t room, enum conf_log_level level, pid_t pid) {
    size_t n = put_time(p, room);
    if (log_slot_no >= 0)
        n += (size_t)snprintf(p + n, room - n, " [%s] %s %d %d: ", level_names[level], log_role,
                              log_slot_no, (int)pid);
    else
        n += (size_t)snprintf(p + n, room - n, " [%s] %s %d: ", level_names[level], log_role,
                              (int)pid);
    return n;
}

/* Where json_string writes: a bounded buffer. */
struct sink {
    char *p;
    size_t len, room;
};

static int sink_put(void *arg, const char *p, size_t len) {
    struct sink *s = arg;
    if (len > s->room - s->len) return -1;
    memcpy(s->p + s->len, p, len);
    s->len += len;
    return 0;
}

/* {"time":..., "level":..., "pid":..., "role":..., "slot":N (workers only),
 * "msg":...}: the message escaped as JSON (UTF-8 kept, a byte not in a valid
 * sequence becoming U+FFFD). */
static size_t put_json(char *p, size_t room, enum conf_log_level level, pid_t pid, const char *msg,
                       size_t msglen) {
    size_t n = (size_t)snprintf(p, room, "{\"time\":\"");
    n += put_time(p + n, room - n);
    n += (size_t)snprintf(p + n, room - n, "\",\"level\":\"%s\",\"pid\":%d,\"role\":\"%s\"",
                          level_names[level], (int)pid, log_role);
    if (log_slot_no >= 0) n += (size_t)snprintf(p + n, room - n, ",\"slot\":%d", log_slot_no);
    n += (size_t)snprintf(p + n, room - n, ",\"msg\":");
    struct sink s = {p + n, 0, room - n - 1};
    if (json_string(msg, msglen, false, sink_put, &s) < 0) return 0; /* cannot happen: room */
    n += s.len;
    p[n++] = '}';
    return n;
}

#define MSG_MAX 2048

void log_vmsg(enum conf_log_level level, const char *fmt, va_list ap) {
    if (level > log_level) return;
    /* the message, then the line: a JSON string is at most 6 bytes a byte */
    char msg[MSG_MAX], line[6 * MSG_MAX + 256];
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    size_t msglen = m < 0 ? 0 : (size_t)m >= sizeof msg ? sizeof msg - 1 : (size_t)m;
    pid_t pid = getpid();
    size_t n;
    if (log_format == CONF_LOG_JSON) {
        n = put_json(line, sizeof line - 1, level, pid, msg, msglen);
    } else {
        n = put_text_head(line, sizeof line, level, pid);
        memcpy(line + n, msg, msglen);
        n += msglen;
    }
    line[n++] = '\n';
    ssize_t w = write(log_fd, line, n);
    /* a file is not where someone starting the server looks */
    if (level == CONF_LOG_ERROR && !start_done && log_fd > STDERR_FILENO && pid == starting_pid)
        w = write(STDERR_FILENO, line, n);
    (void)w; /* nowhere left to report a failing error log */
}
