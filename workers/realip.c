/* realip: X-Forwarded-For and Forwarded from trusted proxies. */
#include "workers/realip.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HOPS 64 /* entries of a list looked at; past that the client is unknown */

static bool is_space(char c) {
    return c == ' ' || c == '\t';
}

static void trim(const char **p, size_t *len) {
    while (*len && is_space(**p)) (*p)++, (*len)--;
    while (*len && is_space((*p)[*len - 1])) (*len)--;
}

static int parse_port(const char *p, size_t len, in_port_t *port) {
    if (!len || len > 5) return -1;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v > 65535) return -1;
    *port = htons((in_port_t)v);
    return 0;
}

int realip_parse_addr(const char *p, size_t len, struct sockaddr_storage *out, socklen_t *outlen) {
    char text[INET6_ADDRSTRLEN];
    in_port_t port = 0;
    trim(&p, &len);
    if (len >= 2 && p[0] == '"' && p[len - 1] == '"') p++, len -= 2;
    const char *host = p;
    size_t hlen = len;
    if (len && p[0] == '[') { /* [v6] or [v6]:port */
        const char *close = memchr(p, ']', len);
        if (!close) return -1;
        host = p + 1;
        hlen = (size_t)(close - host);
        size_t rest = len - (size_t)(close + 1 - p);
        if (rest && (close[1] != ':' || parse_port(close + 2, rest - 1, &port) < 0)) return -1;
    } else {
        const char *colon = memchr(p, ':', len);
        /* one colon: v4:port; more: a bare IPv6 address */
        if (colon && !memchr(colon + 1, ':', len - (size_t)(colon + 1 - p))) {
            hlen = (size_t)(colon - p);
            if (parse_port(colon + 1, len - hlen - 1, &port) < 0) return -1;
        }
    }
    if (hlen == 0 || hlen >= sizeof text) return -1;
    memcpy(text, host, hlen);
    text[hlen] = '\0';
    memset(out, 0, sizeof *out);
    struct sockaddr_in *in4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    if (host == p && inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = port;
        *outlen = sizeof *in4;
        return 0;
    }
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = port;
        *outlen = sizeof *in6;
        return 0;
    }
    return -1;
}

/* One entry of the list: its address text (for=, or the whole entry) and
 * for Forwarded its proto=. */
struct hop {
    const char *addr, *proto;
    size_t addr_len, proto_len;
};

/* The value of name= among an element's ;-separated pairs (RFC 7239 4). */
static bool forwarded_pair(const char *p, size_t len, const char *name, const char **v,
                           size_t *vlen) {
    size_t nlen = strlen(name);
    while (len) {
        const char *semi = memchr(p, ';', len);
        size_t plen = semi ? (size_t)(semi - p) : len;
        const char *q = p;
        size_t qlen = plen;
        trim(&q, &qlen);
        if (qlen > nlen && q[nlen] == '=' && strncasecmp(q, name, nlen) == 0) {
            *v = q + nlen + 1;
            *vlen = qlen - nlen - 1;
            return true;
        }
        if (!semi) break;
        p = semi + 1;
        len -= plen + 1;
    }
    return false;
}

/* Collects the hops of every field line of the header, left to right
 * (commas inside a quoted string do not split). How many, at most max. */
static size_t collect(const struct realip *ri, const struct http_request *req, struct hop *hops,
                      size_t max) {
    size_t n = 0;
    for (unsigned f = 0; f < req->nfields; f++) {
        struct http_str name = req->fields[f].name;
        if (name.len != strlen(ri->header) || strncasecmp(name.p, ri->header, name.len) != 0)
            continue;
        const char *p = req->fields[f].value.p, *end = p + req->fields[f].value.len;
        while (p < end) {
            const char *q = p;
            bool quoted = false;
            while (q < end && (quoted || *q != ',')) {
                if (*q == '"') quoted = !quoted;
                q++;
            }
            struct hop h = {p, NULL, (size_t)(q - p), 0};
            trim(&h.addr, &h.addr_len);
            if (ri->forwarded) {
                const char *el = h.addr;
                size_t ellen = h.addr_len;
                if (!forwarded_pair(el, ellen, "for", &h.addr, &h.addr_len)) h.addr_len = 0;
                forwarded_pair(el, ellen, "proto", &h.proto, &h.proto_len);
            }
            if (n == max) return max + 1; /* too many to trust the walk */
            hops[n++] = h;
            p = q + 1;
        }
    }
    return n;
}

static bool is_https(const char *p, size_t len) {
    trim(&p, &len);
    if (len >= 2 && p[0] == '"' && p[len - 1] == '"') p++, len -= 2;
    return len == 5 && strncasecmp(p, "https", 5) == 0;
}

/* The rightmost X-Forwarded-Proto value. */
static void forwarded_proto(const struct http_request *req, bool *https) {
    for (unsigned f = 0; f < req->nfields; f++) {
        struct http_str name = req->fields[f].name;
        if (name.len != 17 || strncasecmp(name.p, "x-forwarded-proto", 17) != 0) continue;
        struct http_str v = req->fields[f].value;
        const char *last = v.p;
        for (size_t i = 0; i < v.len; i++)
            if (v.p[i] == ',') last = v.p + i + 1;
        *https = is_https(last, (size_t)(v.p + v.len - last));
    }
}

int realip_resolve(const struct realip *ri, const struct sockaddr *peer,
                   const struct http_request *req, struct sockaddr_storage *client,
                   socklen_t *client_len, bool *https) {
    if (!ri->trusted || !acl_match(ri->trusted, peer)) return 0;
    if (!ri->forwarded) forwarded_proto(req, https);
    struct hop hops[MAX_HOPS];
    size_t n = collect(ri, req, hops, MAX_HOPS);
    if (n == 0 || n > MAX_HOPS) return 0;
    struct sockaddr_storage addr;
    socklen_t len = 0;
    size_t i = n;
    do {
        i--;
        if (realip_parse_addr(hops[i].addr, hops[i].addr_len, &addr, &len) < 0) return 0;
    } while (i > 0 && acl_match(ri->trusted, (struct sockaddr *)&addr));
    memcpy(client, &addr, len);
    *client_len = len;
    if (ri->forwarded && hops[i].proto) *https = is_https(hops[i].proto, hops[i].proto_len);
    return 1;
}
