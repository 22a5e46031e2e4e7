/* realip: the client behind a trusted proxy (trusted_proxies).
 *
 * From a peer on trusted_proxies, the client is taken from real_ip_header:
 * X-Forwarded-For (the default) or any header of that shape (a list of
 * addresses, e.g. X-Real-IP), all its field lines read as one list, walked
 * from the right past every trusted address (nginx's real_ip_recursive);
 * or the standard Forwarded header (RFC 7239), the for= of its elements
 * walked the same way. The scheme comes from X-Forwarded-Proto (the
 * rightmost value), or the proto= of the element chosen in Forwarded. From
 * any other peer the headers mean nothing. A list with an entry that is not
 * an address (garbage, "unknown", an obfuscated name) before the walk ends
 * keeps the peer, as nginx does: a forged entry can only make the client
 * unknown, never someone chosen. Pure functions; nothing is allocated. */
#ifndef PREFORKD_REALIP_H
#define PREFORKD_REALIP_H

#include <stdbool.h>
#include <sys/socket.h>

#include "server/acl.h"
#include "workers/http.h"

struct realip {
    const struct acl *trusted; /* NULL: no trusted proxies, nothing changes */
    const char *header;        /* real_ip_header, e.g. "X-Forwarded-For" */
    bool forwarded;            /* header is "Forwarded": RFC 7239 syntax */
};

/* When peer is trusted and its headers name a client: fills client (a
 * sockaddr_in or sockaddr_in6, port 0 unless one was given) and returns 1;
 * else 0, and client is untouched. *https is set from the scheme the proxy
 * forwarded (unchanged when it said none). */
int realip_resolve(const struct realip *ri, const struct sockaddr *peer,
                   const struct http_request *req, struct sockaddr_storage *client,
                   socklen_t *client_len, bool *https);

/* Parses one address as proxies write them: "192.0.2.1", "192.0.2.1:80",
 * "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:80", optionally in double
 * quotes (Forwarded). 0, or -1 when it is not an address. */
int realip_parse_addr(const char *p, size_t len, struct sockaddr_storage *out, socklen_t *outlen);

#endif
