/* Unit tests for workers/realip.c: the client behind trusted proxies from
 * X-Forwarded-For (recursive, several field lines, ports, IPv6), from
 * Forwarded (RFC 7239: quoted IPv6, proto=), X-Forwarded-Proto, and what a
 * forged header can and cannot do. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "workers/realip.h"

#define MAXF 8

struct req {
    struct http_request r;
    struct http_field f[MAXF];
};

static void add(struct req *q, const char *name, const char *value) {
    q->f[q->r.nfields].name = (struct http_str){name, strlen(name)};
    q->f[q->r.nfields].value = (struct http_str){value, strlen(value)};
    q->r.fields = q->f;
    q->r.nfields++;
}

static struct sockaddr_in v4(const char *a) {
    struct sockaddr_in in = {.sin_family = AF_INET};
    inet_pton(AF_INET, a, &in.sin_addr);
    return in;
}

/* The client as text ("-" when the peer stays), and the scheme. */
static const char *resolve(const char *trusted, const char *peer, struct req *q, bool forwarded,
                           bool *https) {
    static char text[INET6_ADDRSTRLEN + 8];
    struct acl acl;
    char err[128];
    assert_int_equal(acl_parse(&acl, trusted, err, sizeof err), 0);
    struct realip ri = {&acl, forwarded ? "Forwarded" : "X-Forwarded-For", forwarded};
    struct sockaddr_in p = v4(peer);
    struct sockaddr_storage client;
    socklen_t len;
    *https = false;
    int rc = realip_resolve(&ri, (struct sockaddr *)&p, &q->r, &client, &len, https);
    acl_free(&acl);
    if (!rc) return "-";
    if (client.ss_family == AF_UNSPEC) return "?"; /* unknown: no allow list names it */
    if (client.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&client)->sin_addr, text, sizeof text);
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&client)->sin6_addr, text, sizeof text);
    return text;
}

static void test_x_forwarded_for(void **state) {
    (void)state;
    bool https;
    struct req q = {0};
    add(&q, "X-Forwarded-For", "203.0.113.9, 10.0.0.2");
    add(&q, "x-forwarded-proto", "http, https");
    /* recursive: past the trusted 10.0.0.2 to the client */
    assert_string_equal(resolve("10.0.0.0/8 127.0.0.1", "127.0.0.1", &q, false, &https),
                        "203.0.113.9");
    assert_true(https); /* the rightmost value */
    /* an untrusted peer's headers mean nothing */
    assert_string_equal(resolve("10.0.0.0/8", "127.0.0.1", &q, false, &https), "-");
    assert_false(https);
    /* a forged leftmost entry stops at the first untrusted hop */
    struct req f = {0};
    add(&f, "X-Forwarded-For", "1.2.3.4");
    add(&f, "X-Forwarded-For", "198.51.100.7 , 10.1.1.1");
    assert_string_equal(resolve("10.0.0.0/8 127.0.0.1", "127.0.0.1", &f, false, &https),
                        "198.51.100.7");
    /* everything trusted: the leftmost */
    struct req t = {0};
    add(&t, "X-Forwarded-For", "10.9.9.9, 10.0.0.2");
    assert_string_equal(resolve("10.0.0.0/8 127.0.0.1", "127.0.0.1", &t, false, &https),
                        "10.9.9.9");
    /* garbage where the walk reads: the client is unknown, never the proxy */
    struct req g = {0};
    add(&g, "X-Forwarded-For", "1.2.3.4, unknown");
    assert_string_equal(resolve("127.0.0.1", "127.0.0.1", &g, false, &https), "?");
    /* what a client sends before the proxy's entry cannot hide it: an open
     * quote, empty entries, more entries than the walk would look at */
    struct req oq = {0};
    add(&oq, "X-Forwarded-For", "\", 127.0.0.2");
    assert_string_equal(resolve("127.0.0.1", "127.0.0.1", &oq, false, &https), "127.0.0.2");
    static char commas[200];
    memset(commas, ',', 150);
    strcpy(commas + 150, " 127.0.0.2");
    struct req c = {0};
    add(&c, "X-Forwarded-For", commas);
    assert_string_equal(resolve("127.0.0.1", "127.0.0.1", &c, false, &https), "127.0.0.2");
    /* a chain of trusted proxies longer than the walk: unknown */
    static char chain[1200];
    chain[0] = '\0';
    for (int i = 0; i < 70; i++) strcat(chain, i ? ", 10.0.0.1" : "10.0.0.1");
    struct req t2 = {0};
    add(&t2, "X-Forwarded-For", chain);
    assert_string_equal(resolve("10.0.0.0/8 127.0.0.1", "127.0.0.1", &t2, false, &https), "?");
    /* ports and IPv6 as proxies write them */
    struct req p = {0};
    add(&p, "X-Forwarded-For", "[2001:db8::7]:4711, 192.0.2.5:80");
    assert_string_equal(resolve("127.0.0.1 192.0.2.5", "127.0.0.1", &p, false, &https),
                        "2001:db8::7");
    /* no header: the peer stays */
    struct req none = {0};
    add(&none, "Host", "x");
    assert_string_equal(resolve("127.0.0.1", "127.0.0.1", &none, false, &https), "-");
}

static void test_forwarded(void **state) {
    (void)state;
    bool https;
    struct req q = {0};
    add(&q, "Forwarded", "for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.3;by=x");
    assert_string_equal(resolve("10.0.0.0/8 127.0.0.1", "127.0.0.1", &q, true, &https),
                        "2001:db8:cafe::17");
    assert_true(https);
    struct req h = {0};
    add(&h, "Forwarded", "for=_hidden, for=10.0.0.3");
    assert_string_equal(resolve("10.0.0.0/8 127.0.0.1", "127.0.0.1", &h, true, &https), "?");
    struct req c = {0};
    add(&c, "Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43");
    assert_string_equal(resolve("127.0.0.1", "127.0.0.1", &c, true, &https), "192.0.2.60");
    assert_false(https);
    struct req quoted = {0}; /* a comma inside quotes does not split */
    add(&quoted, "Forwarded", "for=\"a,b\";proto=https, for=192.0.2.1");
    assert_string_equal(resolve("127.0.0.1", "127.0.0.1", &quoted, true, &https), "192.0.2.1");
    /* a client's open quote cannot swallow the element the proxy appended:
     * the walk reads from the right */
    struct req open = {0};
    add(&open, "Forwarded", "for=203.0.113.66;proto=https;x=\", for=127.0.0.2");
    assert_string_equal(resolve("127.0.0.1", "127.0.0.1", &open, true, &https), "127.0.0.2");
    assert_false(https);
    /* and an element whose quotes do not close is not believed */
    struct req unb = {0};
    add(&unb, "Forwarded", "for=10.0.0.9, for=\"[2001:db8::1]");
    assert_string_equal(resolve("127.0.0.1 10.0.0.0/8", "127.0.0.1", &unb, true, &https), "?");
    /* a ';' inside a quoted value does not split the pairs */
    struct req semi = {0};
    add(&semi, "Forwarded", "x=\"a;for=1.1.1.1\";for=192.0.2.9");
    assert_string_equal(resolve("127.0.0.1", "127.0.0.1", &semi, true, &https), "192.0.2.9");
}

static void test_parse_addr(void **state) {
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len;
    const char *good[] = {"192.0.2.1",  "192.0.2.1:80",        "::1",       "[::1]",
                          "[::1]:8080", "\"[2001:db8::1]:1\"", " 10.0.0.1 "};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_int_equal(realip_parse_addr(good[i], strlen(good[i]), &ss, &len), 0);
    const char *bad[] = {"",       "unknown",       "1.2.3",    "[1.2.3.4]", "[::1",
                         "[::1]x", "1.2.3.4:99999", "1.2.3.4:", "::1]:80",   "_hidden"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(realip_parse_addr(bad[i], strlen(bad[i]), &ss, &len), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_x_forwarded_for),
        cmocka_unit_test(test_forwarded),
        cmocka_unit_test(test_parse_addr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
