/* acl: lists of client networks ("127.0.0.0/8 ::1 10.1.2.3 unix all"), as
 * route settings allow/deny and admin_allow take them, and whether a peer
 * address is on one. IPv4-mapped IPv6 peers (::ffff:a.b.c.d) match IPv4
 * networks. Parsed once with the configuration; matching allocates
 * nothing. */
#ifndef PREFORKD_ACL_H
#define PREFORKD_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct acl_net {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16], bits;
};

struct acl {
    struct acl_net *v;
    size_t n;
    bool unix_peers; /* "unix": connections on unix sockets */
    bool all;        /* "all": anyone */
};

/* Parses a list separated by spaces or commas into a (on top of nothing:
 * a is filled anew). 0, or -1 with err naming the bad entry. */
int acl_parse(struct acl *a, const char *text, char *err, size_t errlen);
void acl_free(struct acl *a);
/* Whether the peer (NULL or AF_UNIX: a unix socket) is on the list. */
bool acl_match(const struct acl *a, const struct sockaddr *peer);

#endif
