/* acl: client network lists. */
#include "server/acl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One entry: "a.b.c.d[/n]", "v6[/n]", "unix" or "all". */
static int parse_entry(struct acl *a, const char *s, size_t len, char *err, size_t errlen) {
    char text[INET6_ADDRSTRLEN + 8];
    if (len >= sizeof text) {
        snprintf(err, errlen, "\"%.*s\" is not a network", (int)len, s);
        return -1;
    }
    memcpy(text, s, len);
    text[len] = '\0';
    if (strcmp(text, "unix") == 0) {
        a->unix_peers = true;
        return 0;
    }
    if (strcmp(text, "all") == 0) {
        a->all = true;
        return 0;
    }
    struct acl_net net = {0};
    char *slash = strchr(text, '/');
    if (slash) *slash = '\0';
    if (inet_pton(AF_INET, text, net.addr) == 1) {
        net.family = AF_INET;
        net.bits = 32;
    } else if (inet_pton(AF_INET6, text, net.addr) == 1) {
        net.family = AF_INET6;
        net.bits = 128;
    } else {
        snprintf(err, errlen, "\"%.*s\" is not an address, a network, unix or all", (int)len, s);
        return -1;
    }
    if (slash) {
        char *end;
        long bits = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || bits < 0 || bits > net.bits) {
            snprintf(err, errlen, "\"%.*s\": bad prefix length", (int)len, s);
            return -1;
        }
        net.bits = (uint8_t)bits;
    }
    struct acl_net *v = realloc(a->v, (a->n + 1) * sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->v = v;
    a->v[a->n++] = net;
    return 0;
}

int acl_parse(struct acl *a, const char *text, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        if (!*p) break;
        size_t len = strcspn(p, " ,\t");
        if (parse_entry(a, p, len, err, errlen) < 0) {
            acl_free(a);
            return -1;
        }
        p += len;
    }
    if (!a->n && !a->unix_peers && !a->all) {
        snprintf(err, errlen, "empty list");
        return -1;
    }
    return 0;
}

void acl_free(struct acl *a) {
    free(a->v);
    memset(a, 0, sizeof *a);
}

static bool prefix_equal(const uint8_t *x, const uint8_t *y, unsigned bits) {
    unsigned bytes = bits / 8, rest = bits % 8;
    if (memcmp(x, y, bytes) != 0) return false;
    if (!rest) return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (x[bytes] & mask) == (y[bytes] & mask);
}

bool acl_match(const struct acl *a, const struct sockaddr *peer) {
    if (a->all) return true;
    if (!peer || peer->sa_family == AF_UNIX) return a->unix_peers;
    const uint8_t *addr;
    int family = peer->sa_family;
    if (family == AF_INET) {
        addr = (const uint8_t *)&((const struct sockaddr_in *)peer)->sin_addr;
    } else if (family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)peer)->sin6_addr;
        addr = in6->s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(in6)) { /* a dual-stack socket's IPv4 client */
            family = AF_INET;
            addr += 12;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].family == family && prefix_equal(addr, a->v[i].addr, a->v[i].bits)) return true;
    return false;
}
