/* Unit tests for server/listen.c: parsing and formatting listen addresses,
 * opening TCP sockets on loopback and unix sockets in a temporary folder
 * (stale, live and foreign files at the path), taking sockets over on reload
 * without touching the old set when the new one fails, and handing them to a
 * new binary through the "FD=LINE;..." string. Every test checks that it
 * leaves no descriptor open (/proc/self/fd). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "scratch.h"

#include "server/listen.h"

#define BACKLOG 16

struct fixture {
    struct scratch s; /* its folder for unix sockets */
};

static int setup(void **state) {
    return scratch_setup(state, sizeof(struct fixture), "listen");
}

/* "unix:DIR/name" in out, and the bare path in path (either may be NULL). */
static void unix_line(struct fixture *fx, const char *name, char *out, size_t outlen, char *path,
                      size_t pathlen) {
    if (out) snprintf(out, outlen, "unix:%s/%s", fx->s.dir, name);
    if (path) snprintf(path, pathlen, "%s/%s", fx->s.dir, name);
}

static bool exists(const char *path, mode_t type) {
    struct stat st;
    return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == type;
}

static bool is_listening(int fd) {
    int on = 0;
    socklen_t len = sizeof on;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

static bool has_cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    assert_true(flags >= 0);
    return flags & FD_CLOEXEC;
}

static unsigned port_of(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    assert_int_equal(ss.ss_family, AF_INET);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* A connected client socket for the listener's address (a loopback connect
 * completes at once while the backlog has room). */
static int connect_to(const struct listener *l) {
    int fd = socket(l->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_storage real;
    socklen_t len = sizeof real;
    assert_int_equal(getsockname(l->fd, (struct sockaddr *)&real, &len), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&real, len), 0);
    return fd;
}

/* Accepts one connection waiting on a listener (within a generous timeout). */
static void accept_one(int lfd) {
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    int c = accept(lfd, NULL, NULL);
    assert_true(c >= 0);
    close(c);
}

/* Opens a single listener for line (addr owned by the listener). */
static int open_line(struct listener *l, const char *line, char *err, size_t errlen) {
    memset(l, 0, sizeof *l);
    l->addr = strdup(line);
    assert_non_null(l->addr);
    err[0] = '\0';
    return listen_open(l, BACKLOG, err, errlen);
}

static void close_line(struct listener *l, bool unlink_path) {
    listen_close(l, unlink_path);
    free(l->addr);
    l->addr = NULL;
}

static void test_parse_and_format(void **state) {
    static const struct {
        const char *text;
        int family;
        const char *host; /* as inet_ntop writes it, or the unix path */
        unsigned port;
        const char *formatted;
    } cases[] = {
        {"127.0.0.1:80", AF_INET, "127.0.0.1", 80, "127.0.0.1:80"},
        {"*:8080", AF_INET, "0.0.0.0", 8080, "0.0.0.0:8080"},
        {"0.0.0.0:65535", AF_INET, "0.0.0.0", 65535, "0.0.0.0:65535"},
        {"localhost:1", AF_INET, "127.0.0.1", 1, "127.0.0.1:1"},
        {"10.1.2.3:0", AF_INET, "10.1.2.3", 0, "10.1.2.3:0"},
        {"[::1]:443", AF_INET6, "::1", 443, "[::1]:443"},
        {"[::]:80", AF_INET6, "::", 80, "[::]:80"},
        {"[fe80::1:2]:8443", AF_INET6, "fe80::1:2", 8443, "[fe80::1:2]:8443"},
        {"unix:/tmp/x.sock", AF_UNIX, "/tmp/x.sock", 0, "unix:/tmp/x.sock"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sockaddr_storage sa;
        socklen_t len = 0;
        char err[256] = "", host[INET6_ADDRSTRLEN], out[256];
        if (listen_parse(cases[i].text, &sa, &len, err, sizeof err) != 0)
            fail_msg("%s: refused: %s", cases[i].text, err);
        assert_int_equal(sa.ss_family, cases[i].family);
        if (cases[i].family == AF_INET) {
            struct sockaddr_in *in4 = (struct sockaddr_in *)&sa;
            assert_int_equal(len, sizeof *in4);
            inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
            assert_string_equal(host, cases[i].host);
            assert_int_equal(ntohs(in4->sin_port), cases[i].port);
        } else if (cases[i].family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
            assert_int_equal(len, sizeof *in6);
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
            assert_string_equal(host, cases[i].host);
            assert_int_equal(ntohs(in6->sin6_port), cases[i].port);
        } else {
            struct sockaddr_un *un = (struct sockaddr_un *)&sa;
            assert_string_equal(un->sun_path, cases[i].host);
            assert_int_equal(len,
                             offsetof(struct sockaddr_un, sun_path) + strlen(cases[i].host) + 1);
        }
        listen_format((struct sockaddr *)&sa, len, out, sizeof out);
        assert_string_equal(out, cases[i].formatted);
        /* the formatted address reads back as the same address */
        struct sockaddr_storage again;
        socklen_t len2;
        assert_int_equal(listen_parse(out, &again, &len2, err, sizeof err), 0);
        assert_int_equal(len2, len);
        assert_memory_equal(&again, &sa, len);
    }
}

static void test_parse_unix_path_length(void **state) {
    struct sockaddr_storage sa;
    socklen_t len;
    char err[512], text[256];
    size_t max = sizeof((struct sockaddr_un *)0)->sun_path - 1; /* room for the NUL */
    /* "unix:/aaa...": the path is max bytes long, then one more */
    snprintf(text, sizeof text, "unix:/%0*d", (int)max - 1, 0);
    assert_int_equal(listen_parse(text, &sa, &len, err, sizeof err), 0);
    assert_int_equal(strlen(((struct sockaddr_un *)&sa)->sun_path), max);
    snprintf(text, sizeof text, "unix:/%0*d", (int)max, 0);
    assert_int_equal(listen_parse(text, &sa, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "too long"));
    assert_non_null(strstr(err, text));
}

static void test_parse_errors(void **state) {
    static const struct {
        const char *text, *why;
    } cases[] = {
        {"", "expected host:port"},
        {"127.0.0.1", "expected host:port"},
        {"8080", "expected host:port"},
        {"127.0.0.1:", "invalid port"},
        {"127.0.0.1:65536", "invalid port"},
        {"127.0.0.1:99999999999999999999999", "invalid port"},
        {"127.0.0.1:x", "invalid port"},
        {"127.0.0.1:80x", "invalid port"},
        {"127.0.0.1:-1", "invalid port"},
        {"127.0.0.1: 80", "invalid port"},
        {"*:+80", "invalid port"},
        {"example.com:80", "host must be an IP address"},
        {"localhost.localdomain:80", "host must be an IP address"},
        {"256.1.1.1:80", "host must be an IP address"},
        {"::1:80", "host must be an IP address"}, /* v6 needs brackets */
        {"[::1]", "expected [v6]:port"},
        {"[::1]80", "expected [v6]:port"},
        {"[::1", "expected [v6]:port"},
        {"[::1]:", "invalid port"},
        {"[::1]:65536", "invalid port"},
        {"[example.com]:80", "[...] holds an IPv6 address"},
        {"[127.0.0.1]:80", "[...] holds an IPv6 address"},
        {"unix:tmp/x.sock", "unix path must be absolute"},
        {"unix:", "unix path must be absolute"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sockaddr_storage sa;
        socklen_t len;
        char err[256] = "";
        if (listen_parse(cases[i].text, &sa, &len, err, sizeof err) != -1)
            fail_msg("\"%s\" was accepted", cases[i].text);
        if (!strstr(err, cases[i].why)) fail_msg("\"%s\": says \"%s\"", cases[i].text, err);
        /* the message names the address the user wrote */
        char quoted[128];
        snprintf(quoted, sizeof quoted, "listen: %s: ", cases[i].text);
        if (!strstr(err, quoted)) fail_msg("\"%s\": says \"%s\"", cases[i].text, err);
    }
    /* a short error buffer gets a truncated message, never an overflow */
    struct sockaddr_storage sa;
    socklen_t len;
    char small[12];
    assert_int_equal(listen_parse("example.com:80", &sa, &len, small, sizeof small), -1);
    assert_string_equal(small, "listen: exa");
}

static void test_format_unknown_family(void **state) {
    struct sockaddr_storage sa = {.ss_family = AF_UNSPEC};
    char out[32];
    listen_format((struct sockaddr *)&sa, sizeof sa, out, sizeof out);
    assert_string_equal(out, "?");
}

static void test_open_tcp(void **state) {
    struct listener l, busy;
    char err[256], want[64];
    assert_int_equal(open_line(&l, "127.0.0.1:0", err, sizeof err), 0);
    assert_true(l.fd >= 0);
    unsigned port = port_of(l.fd);
    assert_int_not_equal(port, 0);
    snprintf(want, sizeof want, "127.0.0.1:%u", port); /* port 0 resolved */
    assert_string_equal(l.bound, want);
    assert_false(l.unix_owned);
    assert_true(is_listening(l.fd));
    assert_true(has_cloexec(l.fd));
    assert_true(fcntl(l.fd, F_GETFL) & O_NONBLOCK); /* workers accept without blocking */
    int c = connect_to(&l);
    accept_one(l.fd);
    close(c);

    /* the same port again: refused, naming the address and the reason */
    assert_int_equal(open_line(&busy, want, err, sizeof err), -1);
    assert_int_equal(busy.fd, -1);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "bind"));
    assert_non_null(strstr(err, strerror(EADDRINUSE)));
    close_line(&busy, true);

    close_line(&l, true);
    assert_int_equal(l.fd, -1);
}

static void test_open_tcp6(void **state) {
    struct listener l;
    char err[256], want[64];
    if (open_line(&l, "[::1]:0", err, sizeof err) < 0) {
        close_line(&l, true);
        skip(); /* no IPv6 loopback here */
    }
    snprintf(want, sizeof want, "[::1]:%u", port_of(l.fd));
    assert_string_equal(l.bound, want);
    int only = 0;
    socklen_t len = sizeof only;
    assert_int_equal(getsockopt(l.fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, &len), 0);
    assert_true(only); /* so that an IPv4 line for the same port can stand beside it */
    int c = connect_to(&l);
    accept_one(l.fd);
    close(c);
    close_line(&l, true);
}

static void test_open_unix(void **state) {
    struct fixture *fx = *state;
    struct listener l, again;
    char line[128], path[128], err[512];
    unix_line(fx, "s.sock", line, sizeof line, path, sizeof path);

    assert_int_equal(open_line(&l, line, err, sizeof err), 0);
    assert_true(exists(path, S_IFSOCK));
    assert_string_equal(l.bound, line);
    assert_true(l.unix_owned);
    assert_true(is_listening(l.fd));
    int c = connect_to(&l);
    accept_one(l.fd);
    close(c);

    /* a live server at the path: refused, and its socket left alone */
    assert_int_equal(open_line(&again, line, err, sizeof err), -1);
    assert_non_null(strstr(err, "in use"));
    assert_non_null(strstr(err, path));
    assert_false(again.unix_owned);
    close_line(&again, true);
    assert_true(exists(path, S_IFSOCK));
    c = connect_to(&l);
    accept_one(l.fd); /* also drains the probe's connection */
    close(c);

    /* the server died without removing its file: the stale file is replaced */
    close_line(&l, false);
    assert_true(exists(path, S_IFSOCK));
    assert_int_equal(open_line(&again, line, err, sizeof err), 0);
    assert_true(again.unix_owned);
    c = connect_to(&again);
    accept_one(again.fd);
    close(c);
    close_line(&again, true);
    assert_false(exists(path, S_IFSOCK));
}

static void test_open_unix_refuses_other_files(void **state) {
    struct fixture *fx = *state;
    struct listener l;
    char line[128], path[128], err[512];

    unix_line(fx, "file", line, sizeof line, path, sizeof path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("precious", f);
    fclose(f);
    assert_int_equal(open_line(&l, line, err, sizeof err), -1);
    assert_non_null(strstr(err, "is not a socket"));
    assert_non_null(strstr(err, path));
    close_line(&l, true);
    assert_true(exists(path, S_IFREG)); /* never removed */

    unix_line(fx, "dir", line, sizeof line, path, sizeof path);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(open_line(&l, line, err, sizeof err), -1);
    assert_non_null(strstr(err, "is not a socket"));
    close_line(&l, true);
    assert_true(exists(path, S_IFDIR));

    /* a folder that does not exist: bind fails, with the reason */
    unix_line(fx, "missing/s.sock", line, sizeof line, NULL, 0);
    assert_int_equal(open_line(&l, line, err, sizeof err), -1);
    assert_non_null(strstr(err, "bind"));
    assert_non_null(strstr(err, strerror(ENOENT)));
    close_line(&l, true);
}

/* A live server whose accept queue is full (it stopped accepting: overloaded
 * or hung) is still a live server: starting a second one on its path must say
 * "in use" at once, not wait for the first to make room. Run in a child so
 * that a hang fails the test instead of stopping the run. */
static void test_open_unix_busy_server_is_in_use(void **state) {
    struct fixture *fx = *state;
    char line[128], path[128], err[512];
    unix_line(fx, "busy.sock", line, sizeof line, path, sizeof path);

    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof un.sun_path);
    memcpy(un.sun_path, path, strlen(path) + 1);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&un, sizeof un), 0);
    assert_int_equal(listen(lfd, 0), 0);
    /* fill the queue: connect until the kernel says it is full */
    int clients[8], nclients = 0;
    for (; nclients < 8; nclients++) {
        clients[nclients] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(clients[nclients] >= 0);
        if (connect(clients[nclients], (struct sockaddr *)&un, sizeof un) < 0) {
            assert_int_equal(errno, EAGAIN);
            close(clients[nclients]);
            break;
        }
    }
    assert_true(nclients >= 1 && nclients < 8);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct listener l;
        int rc = open_line(&l, line, err, sizeof err);
        _exit(rc == -1 && strstr(err, "in use") ? 0 : rc == 0 ? 2 : 3);
    }
    int status = 0;
    pid_t got = 0;
    for (int waited_ms = 0; waited_ms < 3000 && got == 0; waited_ms += 10) {
        got = waitpid(pid, &status, WNOHANG);
        if (got == 0) nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    if (got == 0) {
        kill(pid, SIGKILL); /* our own child */
        waitpid(pid, &status, 0);
    }
    bool still_there = exists(path, S_IFSOCK);
    for (int i = 0; i < nclients; i++) close(clients[i]);
    close(lfd);
    if (got == 0) fail_msg("listen_open hung on the path of a live server with a full queue");
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 2) fail_msg("the live server's socket file was taken over");
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(still_there);
}

/* "ADDR [OPTION]...": the address apart, the options from the table. */
static void test_parse_line(void **state) {
    char *addr, err[256];
    struct listen_opts o;
    assert_int_equal(listen_parse_line("127.0.0.1:80", &addr, &o, err, sizeof err), 0);
    assert_string_equal(addr, "127.0.0.1:80");
    assert_false(o.proxy_protocol);
    free(addr);
    assert_int_equal(
        listen_parse_line(" unix:/run/p.sock \tproxy_protocol ", &addr, &o, err, sizeof err), 0);
    assert_string_equal(addr, "unix:/run/p.sock");
    assert_true(o.proxy_protocol);
    free(addr);
    static const struct {
        const char *line, *err;
    } bad[] = {
        {"127.0.0.1:80 proxy", "listen: 127.0.0.1:80: unknown option \"proxy\" (known: "
                               "proxy_protocol, mode=, user=, group=)"},
        {"127.0.0.1:80 mode=0660", "option \"mode=0660\" is for unix sockets only"},
        {"unix:/x.sock mode=9", "an octal mode"},
        {"unix:/x.sock user=no-such-user-here", "no such user"},
        {"127.0.0.1:80 proxy_protocol ssl", "listen: 127.0.0.1:80: unknown option \"ssl\""},
        {"127.0.0.1:80 proxy_protocol=1", "option \"proxy_protocol=1\" takes no value"},
        {"127.0.0.1:80 =x", "unknown option \"=x\""},
        {"", "listen: empty address"},
        {"   ", "listen: empty address"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        addr = (char *)"unchanged";
        assert_int_equal(listen_parse_line(bad[i].line, &addr, &o, err, sizeof err), -1);
        assert_null(addr);
        if (!strstr(err, bad[i].err))
            fail_msg("%s: want \"%s\", got \"%s\"", bad[i].line, bad[i].err, err);
    }
    char longer[300];
    memset(longer, 'x', sizeof longer);
    memcpy(longer, "127.0.0.1:80 ", 13);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(listen_parse_line(longer, &addr, &o, err, sizeof err), -1);
    assert_non_null(strstr(err, "is too long"));
}

/* Options go with the listen line, also to a socket taken over: a reload
 * may turn proxy_protocol on or off on the same socket. */
static void test_listeners_open_options(void **state) {
    char err[512];
    char *lines[] = {"127.0.0.1:0", "127.0.0.1:0"};
    struct listen_opts on[] = {{.proxy_protocol = false}, {.proxy_protocol = true}};
    struct listen_opts off[] = {{.proxy_protocol = true}, {.proxy_protocol = false}};
    struct listeners old, cur;
    assert_int_equal(listeners_open(&old, lines, on, 2, BACKLOG, NULL, err, sizeof err), 0);
    assert_false(old.v[0].opts.proxy_protocol);
    assert_true(old.v[1].opts.proxy_protocol);
    /* the same lines: taken over by their text (port 0 too) */
    int fa = old.v[0].fd, fb = old.v[1].fd;
    if (listeners_open(&cur, lines, off, 2, BACKLOG, &old, err, sizeof err) < 0)
        fail_msg("%s", err);
    assert_int_equal(cur.v[0].fd, fa);
    assert_int_equal(cur.v[1].fd, fb);
    assert_true(cur.v[0].opts.proxy_protocol);
    assert_false(cur.v[1].opts.proxy_protocol);
    listeners_close(&old, true);
    listeners_close(&cur, true);
}

static void test_listeners_open_takes_over(void **state) {
    struct fixture *fx = *state;
    char a_line[128], a_path[128], b_line[128], b_path[128], err[512];
    unix_line(fx, "a.sock", a_line, sizeof a_line, a_path, sizeof a_path);
    unix_line(fx, "b.sock", b_line, sizeof b_line, b_path, sizeof b_path);
    char *first[] = {"127.0.0.1:0", a_line};
    struct listeners old, cur;
    assert_int_equal(listeners_open(&old, first, NULL, 2, BACKLOG, NULL, err, sizeof err), 0);
    assert_int_equal(old.n, 2);
    int tcp_fd = old.v[0].fd;
    char tcp_bound[128];
    strcpy(tcp_bound, old.v[0].bound);
    /* a client waits in the accept queue across the reload */
    int waiting = connect_to(&old.v[0]);

    char *second[] = {b_line, "127.0.0.1:0"};
    assert_int_equal(listeners_open(&cur, second, NULL, 2, BACKLOG, &old, err, sizeof err), 0);
    assert_int_equal(cur.n, 2);
    assert_string_equal(cur.v[0].addr, b_line);
    assert_true(cur.v[0].unix_owned);
    assert_true(exists(b_path, S_IFSOCK));
    assert_string_equal(cur.v[1].addr, "127.0.0.1:0");
    assert_int_equal(cur.v[1].fd, tcp_fd); /* the same socket, not a new one on the same port */
    assert_string_equal(cur.v[1].bound, tcp_bound);
    /* old keeps only its leftover: the unix socket no longer listed */
    assert_int_equal(old.v[0].fd, -1);
    assert_null(old.v[0].addr);
    assert_true(old.v[1].fd >= 0);
    assert_string_equal(old.v[1].addr, a_line);

    listeners_close(&old, true);
    assert_int_equal(old.n, 0);
    assert_null(old.v);
    assert_false(exists(a_path, S_IFSOCK)); /* the dropped line's file is gone */
    assert_true(exists(b_path, S_IFSOCK));
    assert_true(is_listening(tcp_fd)); /* closing old did not close what was taken */
    accept_one(cur.v[1].fd);           /* the waiting client was not dropped */
    close(waiting);

    listeners_close(&cur, true);
    assert_false(exists(b_path, S_IFSOCK));
}

/* Old set, then a reload that fails on its last line. */
static void check_failed_reload(struct fixture *fx, const char *bad_line, const char *why) {
    char old_line[128], new_line[128], new_path[128], err[512];
    unix_line(fx, "old.sock", old_line, sizeof old_line, NULL, 0);
    unix_line(fx, "new.sock", new_line, sizeof new_line, new_path, sizeof new_path);
    char *first[] = {"127.0.0.1:0", old_line};
    struct listeners old, cur = {(void *)1, 99};
    assert_int_equal(listeners_open(&old, first, NULL, 2, BACKLOG, NULL, err, sizeof err), 0);
    struct listener before[2];
    memcpy(before, old.v, sizeof before);
    int fds = scratch_count_fds();

    char *second[] = {"127.0.0.1:0", new_line, old_line, (char *)bad_line};
    assert_int_equal(listeners_open(&cur, second, NULL, 4, BACKLOG, &old, err, sizeof err), -1);
    assert_non_null(strstr(err, bad_line));
    assert_non_null(strstr(err, why));
    assert_int_equal(cur.n, 0);
    assert_null(cur.v);
    /* old is as it was: same sockets, same lines, all listening */
    assert_int_equal(old.n, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(old.v[i].fd, before[i].fd);
        assert_ptr_equal(old.v[i].addr, before[i].addr);
        assert_string_equal(old.v[i].addr, i ? old_line : "127.0.0.1:0");
        assert_int_equal(old.v[i].unix_owned, before[i].unix_owned);
        assert_true(is_listening(old.v[i].fd));
    }
    /* what the failed reload opened is closed and its file removed */
    assert_int_equal(scratch_count_fds(), fds);
    assert_false(exists(new_path, S_IFSOCK));

    /* and the old set still serves a later, good reload */
    struct listeners good;
    assert_int_equal(listeners_open(&good, first, NULL, 2, BACKLOG, &old, err, sizeof err), 0);
    assert_int_equal(good.v[0].fd, before[0].fd);
    assert_int_equal(good.v[1].fd, before[1].fd);
    listeners_close(&old, true);
    listeners_close(&good, true);
}

static void test_listeners_open_failure_invalid_address(void **state) {
    check_failed_reload(*state, "example.com:80", "host must be an IP address");
}

static void test_listeners_open_failure_port_in_use(void **state) {
    struct listener blocker;
    char err[256], line[64];
    assert_int_equal(open_line(&blocker, "127.0.0.1:0", err, sizeof err), 0);
    snprintf(line, sizeof line, "127.0.0.1:%u", port_of(blocker.fd));
    check_failed_reload(*state, line, strerror(EADDRINUSE));
    close_line(&blocker, true);
}

static void test_listeners_close_unlinks_only_when_asked(void **state) {
    struct fixture *fx = *state;
    char line[128], path[128], err[512];
    unix_line(fx, "s.sock", line, sizeof line, path, sizeof path);
    char *lines[] = {line};
    struct listeners ls;

    assert_int_equal(listeners_open(&ls, lines, NULL, 1, BACKLOG, NULL, err, sizeof err), 0);
    listeners_close(&ls, false); /* e.g. handed over to a new binary */
    assert_true(exists(path, S_IFSOCK));
    /* the file left behind is stale now: the next open replaces it */
    assert_int_equal(listeners_open(&ls, lines, NULL, 1, BACKLOG, NULL, err, sizeof err), 0);
    listeners_close(&ls, true);
    assert_false(exists(path, S_IFSOCK));
}

/* Frees a set whose descriptors another set owns (an import in the same
 * process as its export). */
static void forget(struct listeners *ls) {
    for (size_t i = 0; i < ls->n; i++) free(ls->v[i].addr);
    free(ls->v);
}

static void test_export_import(void **state) {
    struct fixture *fx = *state;
    char line[128], err[512], buf[512], want[512];
    unix_line(fx, "s.sock", line, sizeof line, NULL, 0);
    char *lines[] = {"127.0.0.1:0", line};
    struct listeners ls, in;
    assert_int_equal(listeners_open(&ls, lines, NULL, 2, BACKLOG, NULL, err, sizeof err), 0);
    assert_true(has_cloexec(ls.v[0].fd));
    assert_true(has_cloexec(ls.v[1].fd));

    snprintf(want, sizeof want, "%d=127.0.0.1:0;%d=%s", ls.v[0].fd, ls.v[1].fd, line);
    assert_int_equal(listeners_export(&ls, buf, strlen(want)), -1); /* no room for the NUL */
    assert_int_equal(listeners_export(&ls, buf, sizeof buf), 0);
    assert_string_equal(buf, want);
    assert_false(has_cloexec(ls.v[0].fd)); /* they survive exec */
    assert_false(has_cloexec(ls.v[1].fd));

    assert_int_equal(listeners_import(&in, buf, err, sizeof err), 0);
    assert_int_equal(in.n, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(in.v[i].fd, ls.v[i].fd);
        assert_string_equal(in.v[i].addr, ls.v[i].addr);
        assert_string_equal(in.v[i].bound, ls.v[i].bound);
        assert_int_equal(in.v[i].sa.ss_family, ls.v[i].sa.ss_family);
        assert_true(has_cloexec(in.v[i].fd)); /* not passed on to workers' execs */
    }
    assert_true(in.v[1].unix_owned); /* the new master removes the file at its end */

    /* the new master takes the inherited sockets over for the same lines */
    struct listeners cur;
    assert_int_equal(listeners_open(&cur, lines, NULL, 2, BACKLOG, &in, err, sizeof err), 0);
    assert_int_equal(cur.v[0].fd, ls.v[0].fd);
    assert_int_equal(cur.v[1].fd, ls.v[1].fd);
    forget(&in);
    forget(&cur);
    listeners_close(&ls, true);

    /* nothing to import */
    assert_int_equal(listeners_import(&in, "", err, sizeof err), 0);
    assert_int_equal(in.n, 0);
    listeners_close(&in, false);
}

static void test_import_refuses_what_is_not_listening(void **state) {
    struct fixture *fx = *state;
    char err[256], text[128], path[128];
    struct listeners in;

    int unbound = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    snprintf(path, sizeof path, "%s/file", fx->s.dir);
    int file = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int closed = dup(file);
    close(closed);
    assert_true(unbound >= 0 && file >= 0 && closed >= 0);

    const struct {
        int fd; /* -1: the text is used as it is */
        const char *text;
    } cases[] = {
        {unbound, "127.0.0.1:80"},                       /* a socket, but not listening */
        {file, "127.0.0.1:80"},                          /* not a socket */
        {closed, "127.0.0.1:80"},                        /* not open */
        {-1, "-1=127.0.0.1:80"},   {-1, "127.0.0.1:80"}, /* no FD= */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].fd >= 0)
            snprintf(text, sizeof text, "%d=%s", cases[i].fd, cases[i].text);
        else
            snprintf(text, sizeof text, "%s", cases[i].text);
        err[0] = '\0';
        if (listeners_import(&in, text, err, sizeof err) != -1)
            fail_msg("\"%s\" was imported", text);
        assert_non_null(strstr(err, "not a listening socket"));
        if (!strstr(err, text)) fail_msg("\"%s\": says \"%s\"", text, err);
        assert_int_equal(in.n, 0);
        assert_null(in.v);
    }
    /* refused descriptors are not closed: they were never the import's */
    assert_true(fcntl(unbound, F_GETFD) >= 0);
    assert_true(fcntl(file, F_GETFD) >= 0);
    close(unbound);
    close(file);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse_and_format, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_parse_unix_path_length, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_parse_errors, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_format_unknown_family, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_open_tcp, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_open_tcp6, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_open_unix, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_open_unix_refuses_other_files, setup,
                                        scratch_teardown),
        cmocka_unit_test_setup_teardown(test_open_unix_busy_server_is_in_use, setup,
                                        scratch_teardown),
        cmocka_unit_test_setup_teardown(test_listeners_open_takes_over, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_listeners_open_failure_invalid_address, setup,
                                        scratch_teardown),
        cmocka_unit_test_setup_teardown(test_listeners_open_failure_port_in_use, setup,
                                        scratch_teardown),
        cmocka_unit_test_setup_teardown(test_listeners_close_unlinks_only_when_asked, setup,
                                        scratch_teardown),
        cmocka_unit_test_setup_teardown(test_export_import, setup, scratch_teardown),
        cmocka_unit_test(test_parse_line),
        cmocka_unit_test(test_listeners_open_options),
        cmocka_unit_test_setup_teardown(test_import_refuses_what_is_not_listening, setup,
                                        scratch_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
