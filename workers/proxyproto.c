/* proxyproto: the PROXY protocol header, v1 and v2 (see proxyproto.h). */
#include "workers/proxyproto.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

static const char v1_sig[] = "PROXY ";
static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Whether buf[0, len) begins like sig[0, siglen). */
static bool prefix_of(const void *buf, size_t len, const void *sig, size_t siglen) {
    return memcmp(buf, sig, len < siglen ? len : siglen) == 0;
}

/* ---- v1 --------------------------------------------------------------- */

/* A port: 0-65535 in decimal, no sign, no leading zero. */
static int v1_port(const char *p, size_t n, in_port_t *out) {
    if (n == 0 || n > 5 || (n > 1 && p[0] == '0')) return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v > 65535) return -1;
    *out = htons((uint16_t)v);
    return 0;
}

/* An address of family af as inet_pton reads it (it takes no leading or
 * trailing blanks and, for IPv4, exactly four decimal parts). */
static int v1_addr(int af, const char *p, size_t n, void *out) {
    char text[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof text) return -1;
    memcpy(text, p, n);
    text[n] = '\0';
    return inet_pton(af, text, out) == 1 ? 0 : -1;
}

/* "TCP4 a b p q" or "TCP6 a b p q" (line: after "PROXY ", before CRLF). */
static int v1_tcp(const char *line, size_t n, struct proxy_info *out) {
    int af = line[3] == '4' ? AF_INET : AF_INET6;
    const char *field[4];
    size_t flen[4];
    const char *p = line + 5, *end = line + n;
    for (int i = 0; i < 4; i++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        if ((i < 3) != (sp != NULL)) return -1; /* exactly four fields */
        field[i] = p;
        flen[i] = (size_t)((sp ? sp : end) - p);
        p = sp ? sp + 1 : end;
    }
    union proxy_addr src = {0}, dst = {0};
    if (af == AF_INET) {
        src.in4.sin_family = dst.in4.sin_family = AF_INET;
        if (v1_addr(af, field[0], flen[0], &src.in4.sin_addr) < 0 ||
            v1_addr(af, field[1], flen[1], &dst.in4.sin_addr) < 0 ||
            v1_port(field[2], flen[2], &src.in4.sin_port) < 0 ||
            v1_port(field[3], flen[3], &dst.in4.sin_port) < 0)
            return -1;
        out->src_len = out->dst_len = sizeof(struct sockaddr_in);
    } else {
        src.in6.sin6_family = dst.in6.sin6_family = AF_INET6;
        if (v1_addr(af, field[0], flen[0], &src.in6.sin6_addr) < 0 ||
            v1_addr(af, field[1], flen[1], &dst.in6.sin6_addr) < 0 ||
            v1_port(field[2], flen[2], &src.in6.sin6_port) < 0 ||
            v1_port(field[3], flen[3], &dst.in6.sin6_port) < 0)
            return -1;
        out->src_len = out->dst_len = sizeof(struct sockaddr_in6);
    }
    out->src = src;
    out->dst = dst;
    return 0;
}

static int parse_v1(const char *buf, size_t len, struct proxy_info *out) {
    if (!prefix_of(buf, len, v1_sig, sizeof v1_sig - 1)) return PROXY_INVALID;
    size_t scan = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
    /* the line ends at the first CR, which must be followed by LF; no
     * other control byte belongs in it */
    size_t cr = 0;
    while (cr < scan && buf[cr] != '\r') {
        unsigned char ch = (unsigned char)buf[cr];
        if (ch < 0x20 || ch > 0x7e) return PROXY_INVALID;
        cr++;
    }
    if (cr == scan) return len >= PROXY_V1_MAX ? PROXY_INVALID : PROXY_AGAIN;
    if (cr + 1 >= PROXY_V1_MAX) return PROXY_INVALID; /* no room for its LF */
    if (cr + 1 == len) return PROXY_AGAIN;
    if (buf[cr + 1] != '\n') return PROXY_INVALID;

    const char *line = buf + sizeof v1_sig - 1;
    size_t n = cr - (sizeof v1_sig - 1);
    struct proxy_info info = {.version = 1};
    if (n >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (n == 7 || line[7] == ' ')) {
        info.local = true; /* the rest of the line is ignored */
    } else if (n > 5 && (memcmp(line, "TCP4 ", 5) == 0 || memcmp(line, "TCP6 ", 5) == 0)) {
        if (v1_tcp(line, n, &info) < 0) return PROXY_INVALID;
    } else {
        return PROXY_INVALID;
    }
    *out = info;
    return (int)(cr + 2);
}

/* ---- v2 --------------------------------------------------------------- */

enum {
    V2_HEAD = 16, /* signature, version/command, family, length */
    V2_LOCAL = 0x20,
    V2_PROXY = 0x21,
};

static unsigned be16(const unsigned char *p) {
    return (unsigned)p[0] << 8 | p[1];
}

/* The unix socket path in a 108-byte field: up to its first NUL. */
static void v2_unix(union proxy_addr *a, socklen_t *len, const unsigned char *p) {
    size_t room = sizeof a->un.sun_path, n = strnlen((const char *)p, 108);
    if (n >= room) n = room - 1;
    a->un.sun_family = AF_UNIX;
    memcpy(a->un.sun_path, p, n);
    a->un.sun_path[n] = '\0';
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

static int parse_v2(const char *buf, size_t len, struct proxy_info *out) {
    const unsigned char *p = (const unsigned char *)buf;
    if (!prefix_of(p, len, v2_sig, sizeof v2_sig)) return PROXY_INVALID;
    if (len > 12 && p[12] != V2_LOCAL && p[12] != V2_PROXY) return PROXY_INVALID;
    /* the family and transport: UNSPEC, or INET, INET6, UNIX over STREAM
     * or DGRAM; any other value "must be rejected as invalid" */
    size_t block = 0; /* the address block's size */
    if (len > 13) {
        switch (p[13]) {
        case 0x00: block = 0; break;
        case 0x11:
        case 0x12: block = 12; break;
        case 0x21:
        case 0x22: block = 36; break;
        case 0x31:
        case 0x32: block = 216; break;
        default: return PROXY_INVALID;
        }
    }
    if (len < V2_HEAD) return PROXY_AGAIN;
    size_t total = V2_HEAD + be16(p + 14);
    if (total > PROXY_V2_MAX) return PROXY_INVALID;
    if (len < total) return PROXY_AGAIN;

    struct proxy_info info = {.version = 2, .local = true};
    if (p[12] == V2_LOCAL) {
        /* the proxy speaking for itself: whatever the block says is
         * ignored, as the spec wants */
        *out = info;
        return (int)total;
    }
    if (total - V2_HEAD < block) return PROXY_INVALID;
    const unsigned char *a = p + V2_HEAD;
    switch (p[13]) {
    case 0x11:
        info.src.in4.sin_family = info.dst.in4.sin_family = AF_INET;
        memcpy(&info.src.in4.sin_addr, a, 4);
        memcpy(&info.dst.in4.sin_addr, a + 4, 4);
        memcpy(&info.src.in4.sin_port, a + 8, 2);
        memcpy(&info.dst.in4.sin_port, a + 10, 2);
        info.src_len = info.dst_len = sizeof(struct sockaddr_in);
        info.local = false;
        break;
    case 0x21:
        info.src.in6.sin6_family = info.dst.in6.sin6_family = AF_INET6;
        memcpy(&info.src.in6.sin6_addr, a, 16);
        memcpy(&info.dst.in6.sin6_addr, a + 16, 16);
        memcpy(&info.src.in6.sin6_port, a + 32, 2);
        memcpy(&info.dst.in6.sin6_port, a + 34, 2);
        info.src_len = info.dst_len = sizeof(struct sockaddr_in6);
        info.local = false;
        break;
    case 0x31:
        v2_unix(&info.src, &info.src_len, a);
        v2_unix(&info.dst, &info.dst_len, a + 108);
        info.local = false;
        break;
    default: break; /* UNSPEC, datagrams: the connection's own addresses */
    }
    /* the TLVs fill the rest: type, 16-bit length, value; each within it */
    for (size_t at = V2_HEAD + block; at < total;) {
        if (total - at < 3) return PROXY_INVALID;
        size_t vlen = be16(p + at + 1);
        if (vlen > total - at - 3) return PROXY_INVALID;
        at += 3 + vlen;
    }
    *out = info;
    return (int)total;
}

int proxy_parse(const char *buf, size_t len, struct proxy_info *out) {
    if (len == 0) return PROXY_AGAIN;
    if (buf[0] == 'P') return parse_v1(buf, len, out);
    if (buf[0] == '\r') return parse_v2(buf, len, out);
    return PROXY_INVALID;
}
