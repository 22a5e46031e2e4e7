/* listen: listening sockets. The master opens them before forking and keeps
 * them for life; workers inherit them (DESIGN.md). Helpers fill a caller's
 * error buffer and return -1; they never log. */
#ifndef PREFORKD_LISTEN_H
#define PREFORKD_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct listener {
    char *addr; /* the listen line it was opened for (owned) */
    int fd;
    struct sockaddr_storage sa;
    socklen_t salen;
    char bound[128]; /* the address really bound: port 0 resolved */
    bool unix_owned; /* we created the socket file: unlink it at the end */
    bool activated;  /* passed by the service manager (server/service.h) */
};

/* Parses "IP:port", "[v6]:port", "*:port", "localhost:port" or "unix:/path". */
int listen_parse(const char *text, struct sockaddr_storage *sa, socklen_t *len, char *err,
                 size_t errlen);
/* Parses l->addr, then binds and listens with the given backlog. */
int listen_open(struct listener *l, unsigned backlog, char *err, size_t errlen);
/* Closes the socket; with unlink_path also removes a unix socket file. */
void listen_close(struct listener *l, bool unlink_path);
/* Formats a socket address ("127.0.0.1:80", "[::1]:80", "unix:/x"). */
void listen_format(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen);

/* The master's set of listening sockets. */
struct listeners {
    struct listener *v;
    size_t n;
};

/* Opens a socket for each listen line, taking over the socket of the same
 * line (or the same address) from old when there is one (reload, binary
 * upgrade): a socket that stays never drops the connections waiting in it.
 * What is not taken stays in old for the caller to close. On failure nothing
 * changes in old. */
int listeners_open(struct listeners *out, char *const *lines, size_t nlines, unsigned backlog,
                   struct listeners *old, char *err, size_t errlen);
/* TCP sockets hand a connection to accept() only once its first bytes have
 * come, or ms later (rounded up to seconds; 0: at once): TCP_DEFER_ACCEPT.
 * An HTTP client speaks first, so a worker woken for a connection finds its
 * request there: one wake-up, no read that would block. */
void listeners_defer_accept(struct listeners *ls, unsigned ms);
/* Closes every socket left (unlink_paths: remove unix socket files we made). */
void listeners_close(struct listeners *ls, bool unlink_paths);
/* Closes the sockets but keeps their records, so that a later
 * listeners_close(ls, true) can still remove their unix socket files. */
void listeners_close_sockets(struct listeners *ls);

/* For exec'ing a new binary: "FD=LINE;FD=LINE..." in buf, and the sockets
 * made inheritable. Returns -1 when buf is too small. */
int listeners_export(const struct listeners *ls, char *buf, size_t buflen);
/* The sockets named by such a string (from the environment). On failure the
 * ones already taken are closed (our copies: the old master keeps its own). */
int listeners_import(struct listeners *out, const char *text, char *err, size_t errlen);

#endif
