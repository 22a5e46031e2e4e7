/* service: sd_notify, the watchdog and socket activation (libsystemd). */
#include "server/service.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "server/errbuf.h"

static uint64_t watchdog_usec; /* 0: no watchdog */
static uint64_t watchdog_next; /* monotonic ms */

void service_init(void) {
    uint64_t usec = 0;
    /* 1: WATCHDOG_USEC and WATCHDOG_PID leave the environment (workers) */
    if (sd_watchdog_enabled(1, &usec) > 0) watchdog_usec = usec;
}

void service_notify(const char *fmt, ...) {
    char text[1024];
    if (!getenv("NOTIFY_SOCKET")) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    /* 0: NOTIFY_SOCKET stays, for the new master of a binary upgrade */
    sd_notify(0, text);
}

void service_reloading(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    service_notify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration",
                   (unsigned long long)ts.tv_sec * 1000000ull +
                       (unsigned long long)ts.tv_nsec / 1000);
}

uint64_t service_watchdog(uint64_t now) {
    if (!watchdog_usec) return UINT64_MAX;
    uint64_t half = watchdog_usec / 2000;
    if (half < 1) half = 1;
    if (now >= watchdog_next) {
        sd_notify(0, "WATCHDOG=1");
        watchdog_next = now + half;
    }
    return watchdog_next - now;
}

void service_export(const struct listeners *ls) {
    char text[4096] = "", num[32];
    size_t used = 0;
    for (size_t i = 0; i < ls->n; i++) {
        if (!ls->v[i].activated || ls->v[i].fd < 0) continue;
        int n = snprintf(text + used, sizeof text - used, "%s%d", used ? "," : "", ls->v[i].fd);
        if (n < 0 || (size_t)n >= sizeof text - used) break;
        used += (size_t)n;
    }
    if (used) setenv(ENV_ACTIVATED, text, 1);
    if (watchdog_usec) {
        snprintf(num, sizeof num, "%llu", (unsigned long long)watchdog_usec);
        setenv("WATCHDOG_USEC", num, 1);
        snprintf(num, sizeof num, "%d", (int)getpid()); /* exec keeps the pid */
        setenv("WATCHDOG_PID", num, 1);
    }
}

/* Whether the listen line names the socket bound at sa: the same address,
 * or "*:P" (0.0.0.0:P) for systemd's ListenStream=P, which is [::]:P
 * taking IPv4 too (BindIPv6Only=default). */
static bool names(const char *line, const struct sockaddr_storage *sa, int fd) {
    struct sockaddr_storage want;
    socklen_t len;
    char err[256];
    if (listen_parse(line, &want, &len, err, sizeof err) < 0) return false;
    if (want.ss_family == AF_UNIX && sa->ss_family == AF_UNIX)
        return strcmp(((const struct sockaddr_un *)&want)->sun_path,
                      ((const struct sockaddr_un *)sa)->sun_path) == 0;
    if (want.ss_family == AF_INET && sa->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)&want, *y = (const void *)sa;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (want.ss_family == AF_INET6 && sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)&want, *y = (const void *)sa;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    if (want.ss_family == AF_INET && sa->ss_family == AF_INET6) {
        const struct sockaddr_in *x = (const void *)&want;
        const struct sockaddr_in6 *y = (const void *)sa;
        int v6only = 1;
        socklen_t olen = sizeof v6only;
        return x->sin_addr.s_addr == htonl(INADDR_ANY) && x->sin_port == y->sin6_port &&
               IN6_IS_ADDR_UNSPECIFIED(&y->sin6_addr) && fd >= 0 &&
               getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &olen) == 0 && !v6only;
    }
    return false;
}

/* The inherited sockets ENV_ACTIVATED names came from the manager. */
static void mark_inherited(struct listeners *ls) {
    const char *text = getenv(ENV_ACTIVATED);
    for (const char *p = text; p && *p;) {
        int fd = atoi(p);
        for (size_t i = 0; i < ls->n; i++)
            if (ls->v[i].fd == fd) {
                ls->v[i].activated = true;
                ls->v[i].unix_owned = false; /* the manager's file */
            }
        p = strchr(p, ',');
        if (p) p++;
    }
    unsetenv(ENV_ACTIVATED);
}

int service_listeners(struct listeners *into, char *const *lines, size_t nlines, char *err,
                      size_t errlen) {
    mark_inherited(into);
    int n = sd_listen_fds(1);
    if (n < 0) return errbuf_fail(err, errlen, "LISTEN_FDS: %s", strerror(-n));
    if (n == 0) return 0;
    struct listener *v = realloc(into->v, (into->n + (size_t)n) * sizeof *v);
    if (!v) return errbuf_fail(err, errlen, "out of memory");
    into->v = v;
    /* every passed socket is ours from now on, used or not: the caller
     * closes them all on failure */
    size_t first = into->n;
    for (int i = 0; i < n; i++) {
        struct listener *l = &into->v[into->n++];
        memset(l, 0, sizeof *l);
        l->fd = SD_LISTEN_FDS_START + i;
        l->activated = true;
    }
    for (size_t k = first; k < into->n; k++) {
        struct listener *l = &into->v[k];
        l->salen = sizeof l->sa;
        if (sd_is_socket(l->fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0 ||
            getsockname(l->fd, (struct sockaddr *)&l->sa, &l->salen) < 0)
            return errbuf_fail(err, errlen,
                               "socket activation: descriptor %d is not a listening stream socket "
                               "(ListenStream= with Accept=no)",
                               l->fd);
        listen_format((struct sockaddr *)&l->sa, l->salen, l->bound, sizeof l->bound);
        for (size_t j = 0; !l->addr && j < nlines; j++) {
            bool taken = false;
            for (size_t o = 0; o < into->n; o++)
                taken |= into->v[o].addr && strcmp(into->v[o].addr, lines[j]) == 0;
            if (!taken && names(lines[j], &l->sa, l->fd) && !(l->addr = strdup(lines[j])))
                return errbuf_fail(err, errlen, "out of memory");
        }
        if (!l->addr)
            return errbuf_fail(
                err, errlen,
                "socket activation: the service manager passed a socket on %s, which no "
                "listen line names (add \"listen = %s\")",
                l->bound, l->bound);
        /* workers accept without blocking, as on the sockets we bind */
        int flags = fcntl(l->fd, F_GETFL);
        if (flags >= 0) fcntl(l->fd, F_SETFL, flags | O_NONBLOCK);
        fcntl(l->fd, F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

int service_check_kept(const struct listeners *ls, char *const *lines, size_t nlines, char *err,
                       size_t errlen) {
    for (size_t i = 0; i < ls->n; i++) {
        const struct listener *l = &ls->v[i];
        if (!l->activated || l->fd < 0) continue;
        bool named = false;
        for (size_t j = 0; !named && j < nlines; j++)
            named = (l->addr && strcmp(l->addr, lines[j]) == 0) || names(lines[j], &l->sa, l->fd);
        if (!named)
            return errbuf_fail(err, errlen,
                               "listen: %s is a socket from the service manager: the configuration "
                               "must keep a listen line for it (\"listen = %s\")",
                               l->bound, l->addr ? l->addr : l->bound);
    }
    return 0;
}
