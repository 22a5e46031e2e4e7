/* proxyproto: the PROXY protocol header a front proxy (HAProxy, nginx's
 * stream module, a cloud load balancer) sends first on a connection to name
 * the client it relays (haproxy.org/download/2.8/doc/proxy-protocol.txt).
 * A pure parser: no I/O, no allocation; conn.c calls it on the bytes read
 * so far, until it has a whole header.
 *
 *   v1  text, one line of at most 107 bytes with its CRLF:
 *       "PROXY TCP4 192.0.2.1 192.0.2.2 56324 443\r\n", TCP6 alike,
 *       "PROXY UNKNOWN[ anything]\r\n"; single spaces, addresses as
 *       inet_pton reads them, ports 0-65535 without leading zeros.
 *   v2  binary: the 12-byte signature, version 2 with the LOCAL or PROXY
 *       command, one of the spec's seven family/transport bytes, and a
 *       length (big-endian) of the address block and the TLVs that follow;
 *       TLVs are checked to fill the rest exactly, and otherwise skipped.
 *       A header longer than PROXY_V2_MAX is refused (haproxy's own bound
 *       is its buffer size).
 * Anything else, from the first byte that cannot begin a header on, is
 * invalid: a connection that must speak PROXY and does not is refused. */
#ifndef PREFORKD_PROXYPROTO_H
#define PREFORKD_PROXYPROTO_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#define PROXY_V1_MAX 107  /* the longest v1 line, CRLF included */
#define PROXY_V2_MAX 4096 /* the longest v2 header we take, its 16 fixed bytes included */

/* proxy_parse's answers besides a header's length. */
#define PROXY_AGAIN   0  /* a valid beginning: more bytes are needed */
#define PROXY_INVALID -1 /* not a PROXY header, or a malformed one */

union proxy_addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    struct sockaddr_un un;
};

/* What a header said. */
struct proxy_info {
    unsigned version; /* 1 or 2 */
    /* The connection's own addresses stand: a v2 LOCAL command (the
     * proxy's own connection, a health check), v1 UNKNOWN, v2 UNSPEC or a
     * datagram transport. Otherwise src and dst hold the client's and the
     * address it reached: AF_INET, AF_INET6, or AF_UNIX (v2) with its path
     * ("" for an unnamed or abstract socket). */
    bool local;
    union proxy_addr src, dst;
    socklen_t src_len, dst_len;
};

/* Reads a header at the start of buf[0, len): returns its length (the
 * bytes after it are the connection's own data), PROXY_AGAIN, or
 * PROXY_INVALID. out is filled only when a length is returned. */
int proxy_parse(const char *buf, size_t len, struct proxy_info *out);

#endif
