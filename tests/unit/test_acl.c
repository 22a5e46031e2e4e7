/* Unit tests for server/acl.c: client network lists (allow, deny,
 * admin_allow): IPv4 and IPv6 prefixes, IPv4-mapped peers, unix, all, and
 * the errors that name a bad entry. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "server/acl.h"

static struct sockaddr_storage peer(const char *text) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
    }
    return ss;
}

static bool on(const struct acl *a, const char *addr) {
    struct sockaddr_storage ss = peer(addr);
    return acl_match(a, (struct sockaddr *)&ss);
}

static void test_networks(void **state) {
    (void)state;
    struct acl a;
    char err[256];
    assert_int_equal(acl_parse(&a, "10.1.0.0/16, 192.168.1.7 2001:db8::/32", err, sizeof err), 0);
    assert_true(on(&a, "10.1.200.3"));
    assert_false(on(&a, "10.2.0.1"));
    assert_true(on(&a, "192.168.1.7"));
    assert_false(on(&a, "192.168.1.8"));
    assert_true(on(&a, "2001:db8:ffff::1"));
    assert_false(on(&a, "2001:db9::1"));
    assert_true(on(&a, "::ffff:10.1.2.3")); /* a dual-stack socket's IPv4 client */
    assert_false(on(&a, "::1"));
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    assert_false(acl_match(&a, (struct sockaddr *)&un));
    assert_false(acl_match(&a, NULL));
    acl_free(&a);
}

static void test_odd_prefixes_unix_and_all(void **state) {
    (void)state;
    struct acl a;
    char err[256];
    assert_int_equal(acl_parse(&a, "172.16.0.0/12 unix", err, sizeof err), 0);
    assert_true(on(&a, "172.31.255.255"));
    assert_false(on(&a, "172.32.0.0"));
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    assert_true(acl_match(&a, (struct sockaddr *)&un));
    acl_free(&a);
    assert_int_equal(acl_parse(&a, "0.0.0.0/0", err, sizeof err), 0);
    assert_true(on(&a, "8.8.8.8"));
    assert_false(on(&a, "::2")); /* an IPv4 network: no IPv6 peer */
    acl_free(&a);
    assert_int_equal(acl_parse(&a, "all", err, sizeof err), 0);
    assert_true(on(&a, "::2"));
    acl_free(&a);
}

static void test_errors_name_the_entry(void **state) {
    (void)state;
    struct acl a;
    char err[256];
    assert_int_equal(acl_parse(&a, "10.0.0.0/8 10.0.0.300", err, sizeof err), -1);
    assert_non_null(strstr(err, "10.0.0.300"));
    assert_int_equal(acl_parse(&a, "10.0.0.0/33", err, sizeof err), -1);
    assert_non_null(strstr(err, "prefix"));
    assert_int_equal(acl_parse(&a, "::1/129", err, sizeof err), -1);
    assert_int_equal(acl_parse(&a, "10.0.0.0/", err, sizeof err), -1);
    assert_int_equal(acl_parse(&a, " , ", err, sizeof err), -1);
    assert_non_null(strstr(err, "empty"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_networks),
        cmocka_unit_test(test_odd_prefixes_unix_and_all),
        cmocka_unit_test(test_errors_name_the_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
