/* listen: address parsing and socket setup. */
#include "server/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "server/errbuf.h"

static int parse_port(const char *s, unsigned *port) {
    char *end;
    if (!*s || strspn(s, "0123456789") != strlen(s)) return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (v > 65535) return -1;
    *port = (unsigned)v;
    return 0;
}

int listen_parse(const char *text, struct sockaddr_storage *sa, socklen_t *len, char *err,
                 size_t errlen) {
    memset(sa, 0, sizeof *sa);
    if (strncmp(text, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)sa;
        const char *path = text + 5;
        if (path[0] != '/')
            return errbuf_fail(err, errlen, "listen: %s: unix path must be absolute", text);
        if (strlen(path) >= sizeof un->sun_path)
            return errbuf_fail(err, errlen, "listen: %s: unix path too long", text);
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, path);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
        return 0;
    }

    char host[256];
    const char *colon;
    unsigned port;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof host)
            return errbuf_fail(err, errlen, "listen: %s: expected [v6]:port", text);
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon || (size_t)(colon - text) >= sizeof host)
            return errbuf_fail(err, errlen, "listen: %s: expected host:port", text);
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
    }
    if (parse_port(colon + 1, &port) < 0)
        return errbuf_fail(err, errlen, "listen: %s: invalid port", text);

    struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
    if (text[0] == '[') {
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
            return errbuf_fail(err, errlen, "listen: %s: [...] holds an IPv6 address", text);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof *in6;
        return 0;
    }
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    *len = sizeof *in4;
    if (!host[0] || strcmp(host, "*") == 0)
        in4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &in4->sin_addr) != 1)
        /* no name lookups: a listen address must not depend on DNS at start */
        return errbuf_fail(err, errlen,
                           "listen: %s: host must be an IP address, [v6], * or localhost", text);
    return 0;
}

/* ---- options after the address --------------------------------------- */

static int set_proxy_protocol(struct listen_opts *o, const char *value, char *err, size_t errlen) {
    o->proxy_protocol = true;
    return 0;
}

static const char *show_proxy_protocol(const struct listen_opts *o, char *buf, size_t len) {
    return o->proxy_protocol ? "proxy_protocol" : NULL;
}

static int set_mode(struct listen_opts *o, const char *value, char *err, size_t errlen) {
    char *end;
    unsigned long mode = strtoul(value, &end, 8);
    if (!*value || *end || mode > 0777 || value[0] == '-' || value[0] == '+')
        return errbuf_fail(err, errlen, "listen: mode=%s: an octal mode such as 0660", value);
    o->mode = (unsigned)mode;
    o->mode_set = true;
    return 0;
}

static const char *show_mode(const struct listen_opts *o, char *buf, size_t len) {
    if (!o->mode_set) return NULL;
    snprintf(buf, len, "mode=0%o", o->mode);
    return buf;
}

static int set_user(struct listen_opts *o, const char *value, char *err, size_t errlen) {
    struct passwd *pw = getpwnam(value);
    if (!pw) return errbuf_fail(err, errlen, "listen: user=%s: no such user", value);
    o->uid = pw->pw_uid;
    o->uid_set = true;
    return 0;
}

static const char *show_user(const struct listen_opts *o, char *buf, size_t len) {
    if (!o->uid_set) return NULL;
    struct passwd *pw = getpwuid(o->uid);
    if (pw)
        snprintf(buf, len, "user=%s", pw->pw_name);
    else
        snprintf(buf, len, "user=%u", (unsigned)o->uid);
    return buf;
}

static int set_group(struct listen_opts *o, const char *value, char *err, size_t errlen) {
    struct group *gr = getgrnam(value);
    if (!gr) return errbuf_fail(err, errlen, "listen: group=%s: no such group", value);
    o->gid = gr->gr_gid;
    o->gid_set = true;
    return 0;
}

static const char *show_group(const struct listen_opts *o, char *buf, size_t len) {
    if (!o->gid_set) return NULL;
    struct group *gr = getgrgid(o->gid);
    if (gr)
        snprintf(buf, len, "group=%s", gr->gr_name);
    else
        snprintf(buf, len, "group=%u", (unsigned)o->gid);
    return buf;
}

/* Every option a listen line may carry. An entry with value takes
 * name=VALUE (set gets VALUE), one without takes the bare name (set gets
 * NULL); unix_only ones are refused on a TCP address. show says the option
 * as the line would ("name" or "name=VALUE", in buf if it needs room), or
 * NULL when it is not set. */
static const struct listen_option {
    const char *name;
    bool value;
    bool unix_only;
    int (*set)(struct listen_opts *o, const char *value, char *err, size_t errlen);
    const char *(*show)(const struct listen_opts *o, char *buf, size_t len);
} listen_options[] = {
    {"proxy_protocol", false, false, set_proxy_protocol, show_proxy_protocol},
    {"mode", true, true, set_mode, show_mode},
    {"user", true, true, set_user, show_user},
    {"group", true, true, set_group, show_group},
};

void listen_opts_format(const struct listen_opts *opts, char *out, size_t outlen) {
    char buf[128];
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof listen_options / sizeof listen_options[0]; i++) {
        const char *word = listen_options[i].show(opts, buf, sizeof buf);
        if (!word || used >= outlen) continue;
        int n = snprintf(out + used, outlen - used, "%s%s", used ? " " : "", word);
        if (n > 0) used += (size_t)n;
    }
}

#define BLANKS " \t"

int listen_parse_line(const char *line, char **addr, struct listen_opts *opts, char *err,
                      size_t errlen) {
    *opts = (struct listen_opts){0};
    *addr = NULL;
    line += strspn(line, BLANKS);
    size_t alen = strcspn(line, BLANKS);
    if (!alen) return errbuf_fail(err, errlen, "listen: empty address");
    bool is_unix = strncmp(line, "unix:", 5) == 0;
    char word[128];
    for (const char *p = line + alen;;) {
        p += strspn(p, BLANKS);
        size_t n = strcspn(p, BLANKS);
        if (!n) break;
        if (n >= sizeof word)
            return errbuf_fail(err, errlen, "listen: %.*s: option \"%.32s...\" is too long",
                               (int)alen, line, p);
        memcpy(word, p, n);
        word[n] = '\0';
        p += strcspn(p, BLANKS);
        char *eq = strchr(word, '=');
        size_t nlen = eq ? (size_t)(eq - word) : strlen(word);
        const struct listen_option *o = NULL;
        for (size_t i = 0; i < sizeof listen_options / sizeof listen_options[0]; i++)
            if (strlen(listen_options[i].name) == nlen &&
                strncmp(listen_options[i].name, word, nlen) == 0)
                o = &listen_options[i];
        if (!o) {
            char known[256] = "";
            for (size_t i = 0; i < sizeof listen_options / sizeof listen_options[0]; i++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s%s",
                         i ? ", " : "", listen_options[i].name, listen_options[i].value ? "=" : "");
            return errbuf_fail(err, errlen, "listen: %.*s: unknown option \"%s\" (known: %s)",
                               (int)alen, line, word, known);
        }
        if (o->value != (eq != NULL))
            return errbuf_fail(err, errlen, "listen: %.*s: option \"%s\" %s", (int)alen, line, word,
                               o->value ? "takes a value (name=VALUE)" : "takes no value");
        if (o->unix_only && !is_unix)
            return errbuf_fail(err, errlen, "listen: %.*s: option \"%s\" is for unix sockets only",
                               (int)alen, line, word);
        if (o->set(opts, eq ? eq + 1 : NULL, err, errlen) < 0) return -1;
    }
    if (!(*addr = strndup(line, alen))) return errbuf_fail(err, errlen, "out of memory");
    return 0;
}

void listen_format(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen) {
    char host[INET6_ADDRSTRLEN];
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *in4 = (const void *)sa;
        inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
        snprintf(out, outlen, "%s:%u", host, ntohs(in4->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(out, outlen, "[%s]:%u", host, ntohs(in6->sin6_port));
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *un = (const void *)sa;
        snprintf(out, outlen, "unix:%.*s", (int)(len - offsetof(struct sockaddr_un, sun_path)),
                 un->sun_path);
        break;
    }
    default: snprintf(out, outlen, "?");
    }
}

/* A stale socket file from a previous run is removed; a live one is an error. */
static int clear_unix_path(const char *path, char *err, size_t errlen) {
    struct stat st;
    if (lstat(path, &st) < 0) return 0;
    if (!S_ISSOCK(st.st_mode))
        return errbuf_fail(err, errlen, "listen: %s exists and is not a socket", path);
    /* non-blocking: a busy server's full queue must not hang us; only a
     * refused connection means nobody listens there any more */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
    int live = fd >= 0 && !(connect(fd, (struct sockaddr *)&un, sizeof un) < 0 &&
                            (errno == ECONNREFUSED || errno == ENOENT));
    if (fd >= 0) close(fd);
    if (live) return errbuf_fail(err, errlen, "listen: %s: in use by another server", path);
    unlink(path);
    return 0;
}

/* A unix socket file as its listen line asks: owner, group, and with
 * set_mode its mode (0666 unless mode= says). Through a descriptor of the
 * file itself (O_PATH, no symlink followed, a socket): a name swapped in a
 * folder others may write is not what gets chowned. */
static int own_socket_file(const struct listener *l, bool set_mode, char *err, size_t errlen) {
    const char *path = ((const struct sockaddr_un *)&l->sa)->sun_path;
    if (!l->opts.uid_set && !l->opts.gid_set && !set_mode) return 0;
    int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        int e = fd < 0 ? errno : ENOTSOCK;
        if (fd >= 0) close(fd);
        return errbuf_fail(err, errlen, "listen: %s: %s", l->addr, strerror(e));
    }
    int rc = 0;
    if ((l->opts.uid_set || l->opts.gid_set) &&
        fchownat(fd, "", l->opts.uid_set ? l->opts.uid : (uid_t)-1,
                 l->opts.gid_set ? l->opts.gid : (gid_t)-1, AT_EMPTY_PATH) < 0)
        rc = errbuf_fail(err, errlen, "listen: %s: chown: %s", l->addr, strerror(errno));
    char proc[48];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (!rc && set_mode && chmod(proc, l->opts.mode_set ? l->opts.mode : 0666) < 0)
        rc = errbuf_fail(err, errlen, "listen: %s: chmod: %s", l->addr, strerror(errno));
    close(fd);
    return rc;
}

/* Whether a socket kept across a reload must have its file redone. */
static bool file_opts_differ(const struct listen_opts *a, const struct listen_opts *b) {
    return a->mode_set != b->mode_set || a->uid_set != b->uid_set || a->gid_set != b->gid_set ||
           (a->mode_set && a->mode != b->mode) || (a->uid_set && a->uid != b->uid) ||
           (a->gid_set && a->gid != b->gid);
}

int listen_open(struct listener *l, unsigned backlog, char *err, size_t errlen) {
    int one = 1;
    l->fd = -1;
    l->unix_owned = false;
    if (listen_parse(l->addr, &l->sa, &l->salen, err, errlen) < 0) return -1;
    int family = l->sa.ss_family;
    if (family == AF_UNIX &&
        clear_unix_path(((struct sockaddr_un *)&l->sa)->sun_path, err, errlen) < 0)
        return -1;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return errbuf_fail(err, errlen, "listen: %s: socket: %s", l->addr, strerror(errno));
    if (family != AF_UNIX) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* [::]:80 means IPv6 only, so that 0.0.0.0:80 can be listed beside it */
    if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    /* A unix socket is made 0666, as nginx makes its own: a front proxy
     * running as another user must be able to connect (who may is up to the
     * folder's permissions). The umask decides the mode bind() gives; the
     * master is single-threaded here. */
    mode_t umask_was =
        family == AF_UNIX ? umask(l->opts.mode_set ? ~l->opts.mode & 0777 : 0111) : 0;
    int rc = bind(fd, (struct sockaddr *)&l->sa, l->salen), bind_errno = errno;
    if (family == AF_UNIX) umask(umask_was);
    if (rc < 0) {
        close(fd);
        return errbuf_fail(err, errlen, "listen: %s: bind: %s", l->addr, strerror(bind_errno));
    }
    if (family == AF_UNIX) l->unix_owned = true;
    if (family == AF_UNIX && own_socket_file(l, false, err, errlen) < 0) {
        close(fd);
        unlink(((struct sockaddr_un *)&l->sa)->sun_path);
        l->unix_owned = false;
        return -1;
    }
    if (listen(fd, (int)backlog) < 0) {
        int e = errno;
        close(fd);
        return errbuf_fail(err, errlen, "listen: %s: listen: %s", l->addr, strerror(e));
    }
    struct sockaddr_storage real;
    socklen_t rlen = sizeof real;
    if (getsockname(fd, (struct sockaddr *)&real, &rlen) == 0)
        listen_format((struct sockaddr *)&real, rlen, l->bound, sizeof l->bound);
    else
        snprintf(l->bound, sizeof l->bound, "%s", l->addr);
    l->fd = fd;
    return 0;
}

static void describe_bound(struct listener *l) {
    struct sockaddr_storage real;
    socklen_t rlen = sizeof real;
    if (getsockname(l->fd, (struct sockaddr *)&real, &rlen) == 0)
        listen_format((struct sockaddr *)&real, rlen, l->bound, sizeof l->bound);
    else
        snprintf(l->bound, sizeof l->bound, "%s", l->addr);
}

void listen_close(struct listener *l, bool unlink_path) {
    if (l->fd >= 0) close(l->fd);
    l->fd = -1;
    if (unlink_path && l->unix_owned && l->sa.ss_family == AF_UNIX)
        unlink(((struct sockaddr_un *)&l->sa)->sun_path);
    l->unix_owned = false;
}

/* Whether two parsed addresses name the same socket (a port of 0 never
 * does: it means any free port). */
static bool same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port && x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port && x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    const struct sockaddr_un *x = (const void *)a, *y = (const void *)b;
    return a->ss_family == AF_UNIX && strcmp(x->sun_path, y->sun_path) == 0;
}

/* The old socket for a listen line: the same line, or the same address
 * written differently ("localhost:80" for "127.0.0.1:80"), as nginx does. */
static struct listener *take(struct listeners *old, const char *line) {
    struct sockaddr_storage sa;
    socklen_t len;
    char err[256];
    bool parsed = listen_parse(line, &sa, &len, err, sizeof err) == 0;
    for (size_t i = 0; old && i < old->n; i++) {
        struct listener *l = &old->v[i];
        if (l->fd >= 0 && l->addr && strcmp(l->addr, line) == 0) return l;
    }
    for (size_t i = 0; parsed && old && i < old->n; i++) {
        struct listener *l = &old->v[i];
        if (l->fd >= 0 && same_address(&sa, &l->sa)) return l;
    }
    return NULL;
}

int listeners_open(struct listeners *out, char *const *lines, const struct listen_opts *opts,
                   size_t nlines, unsigned backlog, struct listeners *old, char *err,
                   size_t errlen) {
    out->n = 0;
    out->v = calloc(nlines ? nlines : 1, sizeof *out->v);
    if (!out->v) return errbuf_fail(err, errlen, "out of memory");
    for (size_t i = 0; i < nlines; i++) {
        struct listener *l = &out->v[i], *prev = take(old, lines[i]);
        if (prev) {
            struct listen_opts want = opts ? opts[i] : (struct listen_opts){0};
            /* a reload that changes mode=, user=, group= of a socket that
             * stays: its file follows (never one systemd made) */
            if (prev->unix_owned && !prev->activated && prev->sa.ss_family == AF_UNIX &&
                file_opts_differ(&prev->opts, &want)) {
                struct listener probe = *prev;
                probe.opts = want;
                if (own_socket_file(&probe, true, err, errlen) < 0) goto undo;
            }
            *l = *prev;
            prev->fd = -1; /* taken: given back if we fail below */
        } else {
            if (!(l->addr = strdup(lines[i]))) goto nomem;
            l->opts = opts ? opts[i] : (struct listen_opts){0}; /* mode, owner: at bind */
            if (listen_open(l, backlog, err, errlen) < 0) {
                free(l->addr);
                goto undo;
            }
        }
        l->opts = opts ? opts[i] : (struct listen_opts){0};
        out->n++;
    }
    /* what was taken is ours now: old keeps only its leftovers */
    for (size_t i = 0; old && i < old->n; i++)
        if (old->v[i].fd < 0) {
            old->v[i].addr = NULL;
            old->v[i].unix_owned = false;
        }
    return 0;
nomem:
    errbuf_fail(err, errlen, "out of memory");
undo:
    for (size_t i = 0; i < out->n; i++) {
        struct listener *prev = NULL;
        for (size_t j = 0; old && j < old->n; j++)
            if (old->v[j].fd < 0 && old->v[j].addr == out->v[i].addr) prev = &old->v[j];
        if (prev)
            prev->fd = out->v[i].fd; /* hand it back */
        else {
            listen_close(&out->v[i], true);
            free(out->v[i].addr);
        }
    }
    free(out->v);
    out->v = NULL;
    out->n = 0;
    return -1;
}

void listeners_close(struct listeners *ls, bool unlink_paths) {
    for (size_t i = 0; i < ls->n; i++) {
        listen_close(&ls->v[i], unlink_paths);
        free(ls->v[i].addr);
    }
    free(ls->v);
    ls->v = NULL;
    ls->n = 0;
}

void listeners_defer_accept(struct listeners *ls, unsigned ms) {
    /* whole seconds, rounded up: what TCP_DEFER_ACCEPT takes */
    int seconds = (int)((ms + 999) / 1000);
    for (size_t i = 0; i < ls->n; i++)
        if (ls->v[i].fd >= 0 && ls->v[i].sa.ss_family != AF_UNIX)
            setsockopt(ls->v[i].fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds, sizeof seconds);
}

void listeners_close_sockets(struct listeners *ls) {
    for (size_t i = 0; i < ls->n; i++) {
        if (ls->v[i].fd >= 0) close(ls->v[i].fd);
        ls->v[i].fd = -1;
    }
}

int listeners_export(const struct listeners *ls, char *buf, size_t buflen) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < ls->n; i++) {
        int n = snprintf(buf + used, buflen - used, "%s%d=%s", i ? ";" : "", ls->v[i].fd,
                         ls->v[i].addr);
        if (n < 0 || (size_t)n >= buflen - used) return -1;
        used += (size_t)n;
        int flags = fcntl(ls->v[i].fd, F_GETFD);
        if (flags >= 0) fcntl(ls->v[i].fd, F_SETFD, flags & ~FD_CLOEXEC);
    }
    return 0;
}

int listeners_import(struct listeners *out, const char *text, char *err, size_t errlen) {
    char *copy = strdup(text), *save = NULL;
    out->n = 0;
    out->v = calloc(strlen(text) / 2 + 1, sizeof *out->v);
    if (!copy || !out->v) {
        free(copy);
        free(out->v);
        return errbuf_fail(err, errlen, "out of memory");
    }
    for (char *item = strtok_r(copy, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(item, '=');
        int fd = eq ? atoi(item) : -1, listening = 0;
        socklen_t len = sizeof listening;
        if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
            !listening) {
            errbuf_fail(err, errlen, "inherited socket \"%s\" is not a listening socket", item);
            free(copy);
            listeners_close(out, false);
            return -1;
        }
        struct listener *l = &out->v[out->n++];
        l->fd = fd;
        l->addr = strdup(eq + 1);
        l->salen = sizeof l->sa;
        getsockname(fd, (struct sockaddr *)&l->sa, &l->salen);
        l->unix_owned = l->sa.ss_family == AF_UNIX;
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        describe_bound(l);
    }
    free(copy);
    return 0;
}
