/* Unit tests for workers/proxyproto.c: the PROXY protocol header, v1 (text)
 * and v2 (binary), valid and malformed, whole and arriving in pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>

#include "workers/proxyproto.h"

/* ---- helpers ---------------------------------------------------------- */

static void check_in4(const union proxy_addr *a, socklen_t len, const char *ip, unsigned port) {
    char text[INET6_ADDRSTRLEN];
    assert_int_equal(a->sa.sa_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_non_null(inet_ntop(AF_INET, &a->in4.sin_addr, text, sizeof text));
    assert_string_equal(text, ip);
    assert_int_equal(ntohs(a->in4.sin_port), port);
}

static void check_in6(const union proxy_addr *a, socklen_t len, const char *ip, unsigned port) {
    char text[INET6_ADDRSTRLEN];
    assert_int_equal(a->sa.sa_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_non_null(inet_ntop(AF_INET6, &a->in6.sin6_addr, text, sizeof text));
    assert_string_equal(text, ip);
    assert_int_equal(ntohs(a->in6.sin6_port), port);
}

/* Every proper prefix of a valid header asks for more; the header with
 * more bytes behind it parses to its own length. */
static void check_prefixes(const char *h, size_t n) {
    struct proxy_info info;
    for (size_t i = 0; i < n; i++) {
        int rc = proxy_parse(h, i, &info);
        if (rc != PROXY_AGAIN) print_error("prefix of %zu bytes of %zu: %d\n", i, n, rc);
        assert_int_equal(rc, PROXY_AGAIN);
    }
    char more[PROXY_V2_MAX + 64];
    assert_true(n + 40 <= sizeof more);
    memcpy(more, h, n);
    memcpy(more + n, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    assert_int_equal(proxy_parse(more, n + 27, &info), (int)n);
}

static int parse_str(const char *s, struct proxy_info *info) {
    return proxy_parse(s, strlen(s), info);
}

/* ---- v1 --------------------------------------------------------------- */

static void test_v1_tcp4(void **state) {
    const char *h = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    struct proxy_info info;
    assert_int_equal(parse_str(h, &info), (int)strlen(h));
    assert_int_equal(info.version, 1);
    assert_false(info.local);
    check_in4(&info.src, info.src_len, "192.0.2.1", 56324);
    check_in4(&info.dst, info.dst_len, "198.51.100.2", 443);
    check_prefixes(h, strlen(h));
    /* ports at their bounds */
    assert_true(parse_str("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", &info) > 0);
    check_in4(&info.src, info.src_len, "0.0.0.0", 0);
    check_in4(&info.dst, info.dst_len, "255.255.255.255", 65535);
}

static void test_v1_tcp6(void **state) {
    const char *h = "PROXY TCP6 2001:db8::1 ::1 65535 8080\r\n";
    struct proxy_info info;
    assert_int_equal(parse_str(h, &info), (int)strlen(h));
    assert_false(info.local);
    check_in6(&info.src, info.src_len, "2001:db8::1", 65535);
    check_in6(&info.dst, info.dst_len, "::1", 8080);
    check_prefixes(h, strlen(h));
    /* the longest line there is: 104 bytes */
    const char *longest = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(strlen(longest), 104);
    assert_int_equal(parse_str(longest, &info), 104);
    check_in6(&info.src, info.src_len, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    /* an IPv4-mapped address is an IPv6 one */
    assert_true(parse_str("PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n", &info) > 0);
    check_in6(&info.src, info.src_len, "::ffff:192.0.2.1", 1);
}

static void test_v1_unknown(void **state) {
    struct proxy_info info;
    assert_int_equal(parse_str("PROXY UNKNOWN\r\n", &info), 15);
    assert_true(info.local);
    assert_int_equal(info.version, 1);
    check_prefixes("PROXY UNKNOWN\r\n", 15);
    /* what follows UNKNOWN is ignored, up to the 107 bytes */
    const char *h = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
    assert_int_equal(parse_str(h, &info), (int)strlen(h));
    assert_true(info.local);
    char max[PROXY_V1_MAX + 1];
    memset(max, 'x', sizeof max);
    memcpy(max, "PROXY UNKNOWN ", 14);
    memcpy(max + PROXY_V1_MAX - 2, "\r\n", 2);
    assert_int_equal(proxy_parse(max, PROXY_V1_MAX, &info), PROXY_V1_MAX);
    /* one byte more and the line is too long */
    memcpy(max + PROXY_V1_MAX - 2, "x\r", 2);
    assert_int_equal(proxy_parse(max, PROXY_V1_MAX, &info), PROXY_INVALID);
    max[PROXY_V1_MAX] = '\n';
    assert_int_equal(proxy_parse(max, PROXY_V1_MAX + 1, &info), PROXY_INVALID);
}

static void test_v1_malformed(void **state) {
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "POST / HTTP/1.1\r\n",
        "proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n",
        "PROXY  TCP4 192.0.2.1 192.0.2.2 1 2\r\n",
        "PROXY TCP4  192.0.2.1 192.0.2.2 1 2\r\n",
        "PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rX",
        "PROXY TCP4 192.0.2.1\t192.0.2.2 1 2\r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2\r\n",
        "PROXY TCP4\r\n",
        "PROXY TCP4 \r\n",
        "PROXY TCP5 192.0.2.1 192.0.2.2 1 2\r\n",
        "PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n",
        "PROXY \r\n",
        "PROXY\r\n",
        "PROXY UNKNOWNX\r\n",
        "PROXY unknown\r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 1 99999\r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 01 2\r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 -1 2\r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 +1 2\r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 1a 2\r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 123456 2\r\n",
        "PROXY TCP4 192.0.2 192.0.2.2 1 2\r\n",
        "PROXY TCP4 192.0.2.256 192.0.2.2 1 2\r\n",
        "PROXY TCP4 192.0.2.1. 192.0.2.2 1 2\r\n",
        "PROXY TCP4 ::1 192.0.2.2 1 2\r\n",
        "PROXY TCP4 localhost 192.0.2.2 1 2\r\n",
        "PROXY TCP6 192.0.2.1 ::1 1 2\r\n",
        "PROXY TCP6 ::1 ::g 1 2\r\n",
        "PROXY TCP6 [::1] ::1 1 2\r\n",
        "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\r\n",
    };
    struct proxy_info info;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse_str(bad[i], &info);
        if (rc != PROXY_INVALID) print_error("accepted (%d): \"%s\"\n", rc, bad[i]);
        assert_int_equal(rc, PROXY_INVALID);
    }
    /* control bytes (a NUL too) have no place in the line */
    static const char nul[] = "PROXY TCP4 192.0.2.1\0192.0.2.2 1 2\r\n";
    assert_int_equal(proxy_parse(nul, sizeof nul - 1, &info), PROXY_INVALID);
    /* a line with no end in sight is refused once it is too long */
    char junk[200];
    memset(junk, 'A', sizeof junk);
    memcpy(junk, "PROXY TCP4 ", 11);
    assert_int_equal(proxy_parse(junk, PROXY_V1_MAX - 1, &info), PROXY_AGAIN);
    assert_int_equal(proxy_parse(junk, PROXY_V1_MAX, &info), PROXY_INVALID);
    assert_int_equal(proxy_parse(junk, sizeof junk, &info), PROXY_INVALID);
}

/* A wrong first bytes are refused at once, without waiting for a line. */
static void test_early_refusal(void **state) {
    struct proxy_info info;
    assert_int_equal(proxy_parse("", 0, &info), PROXY_AGAIN);
    assert_int_equal(proxy_parse("G", 1, &info), PROXY_INVALID);
    assert_int_equal(proxy_parse("P", 1, &info), PROXY_AGAIN);
    assert_int_equal(proxy_parse("PO", 2, &info), PROXY_INVALID);
    assert_int_equal(proxy_parse("PROXY", 5, &info), PROXY_AGAIN);
    assert_int_equal(proxy_parse("PROXYZ", 6, &info), PROXY_INVALID);
    assert_int_equal(proxy_parse("\r", 1, &info), PROXY_AGAIN);
    assert_int_equal(proxy_parse("\r\n\r\n\x00\r\nQUIT", 11, &info), PROXY_AGAIN);
    assert_int_equal(proxy_parse("\r\n\r\n\x00\r\nQUIX", 11, &info), PROXY_INVALID);
    assert_int_equal(proxy_parse("\r\n\r\n", 4, &info), PROXY_AGAIN);
    assert_int_equal(proxy_parse("\r\n\r\nG", 5, &info), PROXY_INVALID);
    /* TLS, an HTTP/2 preface: not through the proxy */
    assert_int_equal(proxy_parse("\x16\x03\x01", 3, &info), PROXY_INVALID);
    assert_int_equal(proxy_parse("PRI * HTTP/2.0", 14, &info), PROXY_INVALID);
}

/* ---- v2 --------------------------------------------------------------- */

static const unsigned char SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Builds a v2 header: its 16 fixed bytes, then block (n bytes). */
static size_t v2(unsigned char *out, unsigned ver_cmd, unsigned fam, const void *block, size_t n) {
    memcpy(out, SIG, 12);
    out[12] = (unsigned char)ver_cmd;
    out[13] = (unsigned char)fam;
    out[14] = (unsigned char)(n >> 8);
    out[15] = (unsigned char)n;
    if (n) memcpy(out + 16, block, n);
    return 16 + n;
}

/* An IPv4 address block: src, dst, sport, dport. */
static size_t block4(unsigned char *b, const char *src, const char *dst, unsigned sp, unsigned dp) {
    inet_pton(AF_INET, src, b);
    inet_pton(AF_INET, dst, b + 4);
    b[8] = (unsigned char)(sp >> 8), b[9] = (unsigned char)sp;
    b[10] = (unsigned char)(dp >> 8), b[11] = (unsigned char)dp;
    return 12;
}

static size_t tlv(unsigned char *b, unsigned type, const char *value, size_t n) {
    b[0] = (unsigned char)type;
    b[1] = (unsigned char)(n >> 8);
    b[2] = (unsigned char)n;
    memcpy(b + 3, value, n);
    return 3 + n;
}

static void test_v2_inet(void **state) {
    unsigned char h[256], block[128];
    size_t n = block4(block, "203.0.113.9", "192.0.2.80", 40000, 443);
    size_t len = v2(h, 0x21, 0x11, block, n);
    struct proxy_info info;
    assert_int_equal(proxy_parse((char *)h, len, &info), (int)len);
    assert_int_equal(info.version, 2);
    assert_false(info.local);
    check_in4(&info.src, info.src_len, "203.0.113.9", 40000);
    check_in4(&info.dst, info.dst_len, "192.0.2.80", 443);
    check_prefixes((char *)h, len);

    /* with TLVs: ALPN, authority, an empty NOOP, a unique id */
    n += tlv(block + n, 0x01, "h2", 2);
    n += tlv(block + n, 0x02, "example.com", 11);
    n += tlv(block + n, 0x04, "", 0);
    n += tlv(block + n, 0x05, "0123456789abcdef", 16);
    len = v2(h, 0x21, 0x11, block, n);
    assert_int_equal(proxy_parse((char *)h, len, &info), (int)len);
    check_in4(&info.src, info.src_len, "203.0.113.9", 40000);
    check_prefixes((char *)h, len);
}

static void test_v2_inet6(void **state) {
    unsigned char h[256], block[64] = {0};
    inet_pton(AF_INET6, "2001:db8::42", block);
    inet_pton(AF_INET6, "2001:db8::1", block + 16);
    block[32] = 0xff, block[33] = 0xfe; /* 65534 */
    block[34] = 0, block[35] = 80;
    size_t len = v2(h, 0x21, 0x21, block, 36);
    struct proxy_info info;
    assert_int_equal(proxy_parse((char *)h, len, &info), (int)len);
    assert_false(info.local);
    check_in6(&info.src, info.src_len, "2001:db8::42", 65534);
    check_in6(&info.dst, info.dst_len, "2001:db8::1", 80);
    check_prefixes((char *)h, len);
}

static void test_v2_unix(void **state) {
    unsigned char h[512], block[216] = {0};
    strcpy((char *)block, "/run/client.sock");
    strcpy((char *)block + 108, "/run/preforkd.sock");
    size_t len = v2(h, 0x21, 0x31, block, 216);
    struct proxy_info info;
    assert_int_equal(proxy_parse((char *)h, len, &info), (int)len);
    assert_false(info.local);
    assert_int_equal(info.src.sa.sa_family, AF_UNIX);
    assert_string_equal(info.src.un.sun_path, "/run/client.sock");
    assert_string_equal(info.dst.un.sun_path, "/run/preforkd.sock");
    assert_int_equal(info.src_len, offsetof(struct sockaddr_un, sun_path) + 17);
    /* a path filling all 108 bytes, no NUL: cut, still terminated */
    memset(block, 'a', 108);
    assert_int_equal(proxy_parse((char *)h, v2(h, 0x21, 0x31, block, 216), &info), (int)len);
    assert_int_equal(strlen(info.src.un.sun_path), sizeof info.src.un.sun_path - 1);
    check_prefixes((char *)h, len);
}

/* LOCAL (the proxy's own health check), UNSPEC and datagrams: the
 * connection's own addresses stand. */
static void test_v2_local(void **state) {
    unsigned char h[256], block[128];
    struct proxy_info info;
    size_t len = v2(h, 0x20, 0x00, NULL, 0);
    assert_int_equal(len, 16);
    assert_int_equal(proxy_parse((char *)h, len, &info), 16);
    assert_true(info.local);
    assert_int_equal(info.version, 2);
    check_prefixes((char *)h, len);
    /* LOCAL ignores whatever its block holds */
    size_t n = block4(block, "203.0.113.9", "192.0.2.80", 1, 2);
    len = v2(h, 0x20, 0x11, block, n);
    assert_int_equal(proxy_parse((char *)h, len, &info), (int)len);
    assert_true(info.local);
    len = v2(h, 0x20, 0x00, "\x01\x02", 2); /* not TLVs: ignored all the same */
    assert_int_equal(proxy_parse((char *)h, len, &info), (int)len);
    assert_true(info.local);
    /* PROXY with UNSPEC: TLVs only */
    n = tlv(block, 0x04, "abc", 3);
    len = v2(h, 0x21, 0x00, block, n);
    assert_int_equal(proxy_parse((char *)h, len, &info), (int)len);
    assert_true(info.local);
    /* datagrams over IPv4, IPv6, unix */
    n = block4(block, "203.0.113.9", "192.0.2.80", 1, 2);
    len = v2(h, 0x21, 0x12, block, n);
    assert_int_equal(proxy_parse((char *)h, len, &info), (int)len);
    assert_true(info.local);
    unsigned char big[216] = {0};
    len = v2(h, 0x21, 0x22, big, 36);
    assert_int_equal(proxy_parse((char *)h, len, &info), (int)len);
    assert_true(info.local);
    unsigned char hh[300];
    len = v2(hh, 0x21, 0x32, big, 216);
    assert_int_equal(proxy_parse((char *)hh, len, &info), (int)len);
    assert_true(info.local);
}

static void test_v2_malformed(void **state) {
    unsigned char h[PROXY_V2_MAX + 64], block[PROXY_V2_MAX + 64];
    struct proxy_info info;
    size_t n = block4(block, "203.0.113.9", "192.0.2.80", 1, 2), len;

    /* a wrong byte anywhere in the signature: refused as soon as it is seen */
    for (size_t i = 0; i < 12; i++) {
        len = v2(h, 0x21, 0x11, block, n);
        h[i] ^= 0x40;
        assert_int_equal(proxy_parse((char *)h, len, &info), PROXY_INVALID);
        if (i) assert_int_equal(proxy_parse((char *)h, i + 1, &info), PROXY_INVALID);
    }
    /* versions other than 2, commands other than LOCAL and PROXY */
    static const unsigned ver_cmd[] = {0x00, 0x01, 0x11, 0x10, 0x22, 0x2f, 0x31, 0xf1};
    for (size_t i = 0; i < sizeof ver_cmd / sizeof ver_cmd[0]; i++) {
        len = v2(h, ver_cmd[i], 0x11, block, n);
        assert_int_equal(proxy_parse((char *)h, len, &info), PROXY_INVALID);
        assert_int_equal(proxy_parse((char *)h, 13, &info), PROXY_INVALID);
    }
    /* family/transport bytes outside the spec's seven */
    static const unsigned fam[] = {0x01, 0x02, 0x10, 0x13, 0x20, 0x23, 0x30, 0x41, 0xff};
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        len = v2(h, 0x21, fam[i], block, n);
        assert_int_equal(proxy_parse((char *)h, len, &info), PROXY_INVALID);
        assert_int_equal(proxy_parse((char *)h, 14, &info), PROXY_INVALID);
        len = v2(h, 0x20, fam[i], block, n); /* LOCAL too */
        assert_int_equal(proxy_parse((char *)h, len, &info), PROXY_INVALID);
    }
    /* an address block cut short */
    len = v2(h, 0x21, 0x11, block, 11);
    assert_int_equal(proxy_parse((char *)h, len, &info), PROXY_INVALID);
    len = v2(h, 0x21, 0x21, block, 35);
    assert_int_equal(proxy_parse((char *)h, len, &info), PROXY_INVALID);
    len = v2(h, 0x21, 0x31, block, 215);
    assert_int_equal(proxy_parse((char *)h, len, &info), PROXY_INVALID);
    len = v2(h, 0x21, 0x11, block, 0);
    assert_int_equal(proxy_parse((char *)h, len, &info), PROXY_INVALID);
    /* TLVs: a stub shorter than a TLV's own head; a value past the end */
    memcpy(block + n, "\x04\x00", 2);
    len = v2(h, 0x21, 0x11, block, n + 2);
    assert_int_equal(proxy_parse((char *)h, len, &info), PROXY_INVALID);
    memcpy(block + n,
           "\x04\x00\x05"
           "abcd",
           7);
    len = v2(h, 0x21, 0x11, block, n + 7);
    assert_int_equal(proxy_parse((char *)h, len, &info), PROXY_INVALID);
    /* ...though a longer buffer holds the bytes: the length counts */
    memcpy(h + len, "eGET", 4);
    assert_int_equal(proxy_parse((char *)h, len + 4, &info), PROXY_INVALID);
    memcpy(block + n, "\x04\xff\xff", 3); /* 65535 */
    len = v2(h, 0x21, 0x11, block, n + 3);
    assert_int_equal(proxy_parse((char *)h, len, &info), PROXY_INVALID);
    /* a good TLV, then a bad one */
    size_t m = n + tlv(block + n, 0x01, "h2", 2);
    memcpy(block + m,
           "\x02\x00\x09"
           "x",
           4);
    len = v2(h, 0x21, 0x11, block, m + 4);
    assert_int_equal(proxy_parse((char *)h, len, &info), PROXY_INVALID);
}

/* The whole header, TLVs included, is bounded by PROXY_V2_MAX. */
static void test_v2_length_limit(void **state) {
    static unsigned char h[PROXY_V2_MAX + 64], block[PROXY_V2_MAX + 64];
    struct proxy_info info;
    size_t n = block4(block, "203.0.113.9", "192.0.2.80", 1, 2);
    size_t room = PROXY_V2_MAX - 16 - n - 3; /* one TLV filling it all */
    memset(block + n + 3, 'v', room);
    block[n] = 0xE0; /* a custom type */
    block[n + 1] = (unsigned char)(room >> 8);
    block[n + 2] = (unsigned char)room;
    size_t len = v2(h, 0x21, 0x11, block, n + 3 + room);
    assert_int_equal(len, PROXY_V2_MAX);
    assert_int_equal(proxy_parse((char *)h, len, &info), PROXY_V2_MAX);
    check_in4(&info.src, info.src_len, "203.0.113.9", 1);
    /* a byte more: refused from the length alone, before the bytes come */
    room++;
    block[n + 1] = (unsigned char)(room >> 8);
    block[n + 2] = (unsigned char)room;
    len = v2(h, 0x21, 0x11, block, n + 3 + room);
    assert_int_equal(proxy_parse((char *)h, 16, &info), PROXY_INVALID);
    assert_int_equal(proxy_parse((char *)h, len, &info), PROXY_INVALID);
    /* the largest length field there is */
    memcpy(h + 14, "\xff\xff", 2);
    assert_int_equal(proxy_parse((char *)h, 16, &info), PROXY_INVALID);
}

/* A header arriving in pieces, the way conn.c sees it: more bytes each
 * time, the same answer at the end as for the whole. */
static void test_split_reads(void **state) {
    unsigned char h[256], block[128];
    size_t n = block4(block, "198.51.100.7", "192.0.2.1", 5000, 80);
    n += tlv(block + n, 0x02, "example.org", 11);
    size_t len = v2(h, 0x21, 0x11, block, n);
    static const size_t cuts[][3] = {{1, 12, 16}, {13, 14, 15}, {16, 20, 28}, {2, 3, 4}};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        struct proxy_info info;
        for (size_t j = 0; j < 3; j++)
            assert_int_equal(proxy_parse((char *)h, cuts[i][j], &info), PROXY_AGAIN);
        assert_int_equal(proxy_parse((char *)h, len, &info), (int)len);
        check_in4(&info.src, info.src_len, "198.51.100.7", 5000);
    }
    const char *v1 = "PROXY TCP4 198.51.100.7 192.0.2.1 5000 80\r\nGET / HTTP/1.1\r\n";
    struct proxy_info info;
    assert_int_equal(proxy_parse(v1, 3, &info), PROXY_AGAIN);
    assert_int_equal(proxy_parse(v1, 20, &info), PROXY_AGAIN);
    assert_int_equal(proxy_parse(v1, 42, &info), PROXY_AGAIN); /* up to the CR */
    assert_int_equal(proxy_parse(v1, 43, &info), 43);
    assert_int_equal(proxy_parse(v1, strlen(v1), &info), 43);
    check_in4(&info.src, info.src_len, "198.51.100.7", 5000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),         cmocka_unit_test(test_v1_tcp6),
        cmocka_unit_test(test_v1_unknown),      cmocka_unit_test(test_v1_malformed),
        cmocka_unit_test(test_early_refusal),   cmocka_unit_test(test_v2_inet),
        cmocka_unit_test(test_v2_inet6),        cmocka_unit_test(test_v2_unix),
        cmocka_unit_test(test_v2_local),        cmocka_unit_test(test_v2_malformed),
        cmocka_unit_test(test_v2_length_limit), cmocka_unit_test(test_split_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
