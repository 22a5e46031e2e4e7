/* realip: X-Forwarded-For and Forwarded from trusted proxies. */
#include "workers/realip.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HOPS 64 /* trusted hops walked; past that the client is unknown */

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

/* The value of name= among a Forwarded element's ;-separated pairs (RFC
 * 7239 4), quotes respected: a ';' inside a quoted value does not split. */
static bool forwarded_pair(const char *p, size_t len, const char *name, const char **v,
                           size_t *vlen) {
    size_t nlen = strlen(name);
    while (len) {
        size_t plen = 0;
        bool quoted = false;
        while (plen < len && (quoted || p[plen] != ';')) {
            if (p[plen] == '"') quoted = !quoted;
            plen++;
        }
        const char *q = p;
        size_t qlen = plen;
        trim(&q, &qlen);
        if (qlen > nlen && q[nlen] == '=' && strncasecmp(q, name, nlen) == 0) {
            *v = q + nlen + 1;
            *vlen = qlen - nlen - 1;
            return true;
        }
        if (plen == len) break;
        p += plen + 1;
        len -= plen + 1;
    }
    return false;
}

/* Whether a Forwarded element's quotes are balanced: one that is not (a
 * client's open quote swallowing what a proxy appended) is not believed. */
static bool balanced(const char *p, size_t len) {
    bool quoted = false;
    for (size_t i = 0; i < len; i++)
        if (p[i] == '"') quoted = !quoted;
    return !quoted;
}

/* The hops of the header, walked from the right: the last field line first,
 * each from its last entry. X-Forwarded-For entries split at every comma
 * (quotes mean nothing there); Forwarded elements split at commas outside
 * quotes. */
struct walk {
    const struct realip *ri;
    const struct http_request *req;
    int field;       /* the field line being walked, or -1 when done */
    const char *end; /* the part of it not walked yet: [start, end) */
};

static bool field_is(const struct walk *w, unsigned f) {
    struct http_str name = w->req->fields[f].name;
    return name.len == strlen(w->ri->header) && strncasecmp(name.p, w->ri->header, name.len) == 0;
}

static void next_field(struct walk *w) {
    while (--w->field >= 0)
        if (field_is(w, (unsigned)w->field)) {
            const struct http_str *v = &w->req->fields[w->field].value;
            w->end = v->p + v->len;
            return;
        }
}

/* The next entry from the right, [*p, *p + *len); false when none is left. */
static bool prev_entry(struct walk *w, const char **p, size_t *len) {
    while (w->field >= 0) {
        const char *start = w->req->fields[w->field].value.p;
        if (w->end < start) {
            next_field(w);
            continue;
        }
        const char *q = w->end;
        bool quoted = false;
        while (q > start && (quoted || q[-1] != ',')) {
            if (w->ri->forwarded && q[-1] == '"') quoted = !quoted;
            q--;
        }
        *p = q;
        *len = (size_t)(w->end - q);
        w->end = q - 1; /* past the comma; below start when the line is done */
        trim(p, len);
        return true;
    }
    return false;
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

/* An address no allow list names ("-" in logs): what a list that cannot be
 * read leaves, so that a forged entry never makes a client look trusted. */
static void unknown_client(struct sockaddr_storage *client, socklen_t *len) {
    memset(client, 0, sizeof *client);
    client->ss_family = AF_UNSPEC;
    *len = sizeof(sa_family_t);
}

int realip_resolve(const struct realip *ri, const struct sockaddr *peer,
                   const struct http_request *req, struct sockaddr_storage *client,
                   socklen_t *client_len, bool *https) {
    if (!ri->trusted || !acl_match(ri->trusted, peer)) return 0;
    if (!ri->forwarded) forwarded_proto(req, https);
    struct walk w = {ri, req, (int)req->nfields, NULL};
    next_field(&w);
    if (w.field < 0) return 0; /* the proxy named nobody: it is the client */
    const char *entry;
    size_t len;
    for (unsigned hops = 0; prev_entry(&w, &entry, &len); hops++) {
        const char *addr = entry, *proto = NULL;
        size_t alen = len, plen = 0;
        if (ri->forwarded) {
            if (!balanced(entry, len) || !forwarded_pair(entry, len, "for", &addr, &alen)) break;
            forwarded_pair(entry, len, "proto", &proto, &plen);
        }
        struct sockaddr_storage a;
        socklen_t alen_sa;
        if (hops >= MAX_HOPS || realip_parse_addr(addr, alen, &a, &alen_sa) < 0) break;
        memcpy(client, &a, alen_sa);
        *client_len = alen_sa;
        if (proto) *https = is_https(proto, plen);
        /* the rightmost address that is not a trusted proxy is the client;
         * a list of trusted proxies only names its leftmost */
        if (!acl_match(ri->trusted, (struct sockaddr *)&a)) return 1;
        if (w.field < 0 || (w.end < req->fields[w.field].value.p && (next_field(&w), w.field < 0)))
            return 1;
    }
    unknown_client(client, client_len);
    return 1;
}
