/* listen: listening sockets. The master opens them before forking and keeps
 * them for life; workers inherit them (DESIGN.md). Helpers fill a caller's
 * error buffer and return -1; they never log. */
#ifndef PREFORKD_LISTEN_H
#define PREFORKD_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* What a listen line may say after its address, as blank-separated words:
 * "127.0.0.1:8081 proxy_protocol". listen_parse_line() alone reads them,
 * from a table in listen.c: a word, or word=value (the form options to come
 * take, such as a unix socket's mode=0660 user=NAME group=NAME; an option
 * may be marked for unix sockets only). An option holding memory of its own
 * would need a listen_opts_free() beside it; none does today. */
struct listen_opts {
    bool proxy_protocol; /* connections begin with a PROXY protocol header (v1 or v2) */
    /* unix sockets: the file's mode (default 0666), owner and group, set
     * when the socket is made; names are resolved when the line is read */
    bool mode_set, uid_set, gid_set;
    unsigned mode;
    uid_t uid;
    gid_t gid;
};

struct listener {
    char *addr; /* the listen line's address it was opened for (owned) */
    int fd;
    struct sockaddr_storage sa;
    socklen_t salen;
    char bound[128];         /* the address really bound: port 0 resolved */
    bool unix_owned;         /* we created the socket file: unlink it at the end */
    bool activated;          /* passed by the service manager (server/service.h) */
    struct listen_opts opts; /* its listen line's (the configuration's, not the socket's) */
};

/* Splits a listen line "ADDR [OPTION]..." into a copy of its address (*addr,
 * the caller frees it; checked by listen_parse, not here) and its options.
 * An unknown option, a value where none belongs (or none where one does),
 * or a unix-only option on another address is an error naming it. */
int listen_parse_line(const char *line, char **addr, struct listen_opts *opts, char *err,
                      size_t errlen);
/* The options as a listen line writes them ("proxy_protocol", blank-separated;
 * "" for none): what listen_parse_line reads back. */
void listen_opts_format(const struct listen_opts *opts, char *out, size_t outlen);

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

/* Opens a socket for each listen address (lines, without options), taking
 * over the socket of the same address text (or the same address) from old
 * when there is one (reload, binary upgrade): a socket that stays never
 * drops the connections waiting in it. Each listener gets its line's
 * options from opts (parallel to lines; NULL: none), also a socket taken
 * over: options belong to the configuration, so a reload may change them.
 * What is not taken stays in old for the caller to close. On failure nothing
 * changes in old. */
int listeners_open(struct listeners *out, char *const *lines, const struct listen_opts *opts,
                   size_t nlines, unsigned backlog, struct listeners *old, char *err,
                   size_t errlen);
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

/* For exec'ing a new binary: "FD=ADDR;FD=ADDR..." in buf, and the sockets
 * made inheritable (the options are not passed: the new master takes them
 * from its configuration). Returns -1 when buf is too small. */
int listeners_export(const struct listeners *ls, char *buf, size_t buflen);
/* The sockets named by such a string (from the environment). On failure the
 * ones already taken are closed (our copies: the old master keeps its own). */
int listeners_import(struct listeners *out, const char *text, char *err, size_t errlen);

#endif
