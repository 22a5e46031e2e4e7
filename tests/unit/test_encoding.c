/* Unit tests for workers/encoding.c: Accept-Encoding q-values and the
 * choice of a precompressed file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "workers/encoding.h"

#define BOTH (ENC_GZIP | ENC_BR)

static enum encoding choose(const char *header, unsigned offered) {
    struct accept_enc a;
    accept_enc_init(&a);
    if (header) accept_enc_add(&a, header, strlen(header));
    return accept_enc_choose(&a, offered);
}

static void test_parse_qvalues(void **state) {
    struct accept_enc a;
    accept_enc_init(&a);
    const char *h = "gzip;q=0.5, BR;Q=1 , identity ; q=0.001,*;q=0";
    accept_enc_add(&a, h, strlen(h));
    assert_int_equal(a.gzip, 500);
    assert_int_equal(a.br, 1000);
    assert_int_equal(a.identity, 1);
    assert_int_equal(a.star, 0);

    accept_enc_init(&a);
    h = "x-gzip, deflate, br;q=0.25;level=3";
    accept_enc_add(&a, h, strlen(h));
    assert_int_equal(a.gzip, 1000);
    assert_int_equal(a.br, 250);
    assert_int_equal(a.identity, -1);
    assert_int_equal(a.star, -1);

    /* malformed q-values drop their element; the first naming counts */
    accept_enc_init(&a);
    h = "gzip;q=2, br;q=0.5x, br;q=0.3, identity;q=1.0001, gzip;q=.5, gzip;q=0.75, gzip;q=0.1";
    accept_enc_add(&a, h, strlen(h));
    assert_int_equal(a.gzip, 750);
    assert_int_equal(a.br, 300);
    assert_int_equal(a.identity, -1);

    /* several field lines add up */
    accept_enc_init(&a);
    accept_enc_add(&a, "gzip", 4);
    accept_enc_add(&a, "br;q=0.9", 8);
    assert_int_equal(a.gzip, 1000);
    assert_int_equal(a.br, 900);

    /* empty, blanks, commas */
    accept_enc_init(&a);
    accept_enc_add(&a, " , ,, ", 6);
    assert_int_equal(a.gzip, -1);
    assert_int_equal(a.star, -1);
}

static void test_choose(void **state) {
    static const struct {
        const char *header;
        unsigned offered;
        enum encoding want;
    } cases[] = {
        {NULL, BOTH, ENC_IDENTITY}, /* no field: identity */
        {"", BOTH, ENC_IDENTITY},
        {"gzip", BOTH, ENC_GZIP},
        {"gzip, deflate, br", BOTH, ENC_BR}, /* equal q: br */
        {"gzip, deflate, br", ENC_GZIP, ENC_GZIP},
        {"gzip, deflate, br", 0, ENC_IDENTITY},
        {"br", ENC_GZIP, ENC_IDENTITY},
        {"gzip;q=0.5, br;q=1", BOTH, ENC_BR},
        {"gzip;q=1, br;q=0.5", BOTH, ENC_GZIP},
        {"gzip;q=0, br;q=0", BOTH, ENC_IDENTITY},
        {"*", BOTH, ENC_BR},
        {"*;q=0.5, gzip;q=0.8", BOTH, ENC_GZIP},
        {"*;q=0", BOTH, ENC_IDENTITY},
        {"identity;q=1, *;q=0", BOTH, ENC_IDENTITY},
        {"identity", BOTH, ENC_IDENTITY},
        {"gzip;q=0.5, identity;q=1", BOTH, ENC_IDENTITY}, /* identity preferred */
        {"gzip;q=0.5, identity;q=0.5", BOTH, ENC_GZIP},   /* tie: the coding */
        {"gzip;q=0.1, identity;q=0", BOTH, ENC_GZIP},
        {"gzip;q=0.5, *;q=0.8", ENC_GZIP, ENC_IDENTITY}, /* identity takes *'s 0.8 */
        {"deflate, compress", BOTH, ENC_IDENTITY},
        {"GZIP", BOTH, ENC_GZIP},
        {"x-gzip;q=0.3", BOTH, ENC_GZIP},
        {"gzip;q=0.001", ENC_GZIP, ENC_GZIP},
        {"gzip;q=1.5", BOTH, ENC_IDENTITY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum encoding got = choose(cases[i].header, cases[i].offered);
        if (got != cases[i].want)
            fail_msg("\"%s\" offered %u: want %d, got %d",
                     cases[i].header ? cases[i].header : "(none)", cases[i].offered, cases[i].want,
                     got);
    }
}

static void test_rank(void **state) {
    static const struct {
        const char *header;
        unsigned offered;
        size_t n;
        enum encoding first, second;
    } cases[] = {
        {"gzip, br", BOTH, 2, ENC_BR, ENC_GZIP},
        {"gzip;q=1, br;q=0.5", BOTH, 2, ENC_GZIP, ENC_BR},
        {"br", BOTH, 1, ENC_BR, 0},
        {"gzip", BOTH, 1, ENC_GZIP, 0},
        {"br, gzip;q=0", BOTH, 1, ENC_BR, 0},
        {"br;q=1, identity;q=0.5, gzip;q=0.3", BOTH, 1, ENC_BR, 0},
        {"identity;q=1, *;q=0", BOTH, 0, 0, 0},
        {"gzip, br", ENC_GZIP, 1, ENC_GZIP, 0},
        {"gzip, br", ENC_BR, 1, ENC_BR, 0},
        {NULL, BOTH, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct accept_enc a;
        enum encoding out[2] = {0};
        accept_enc_init(&a);
        if (cases[i].header) accept_enc_add(&a, cases[i].header, strlen(cases[i].header));
        size_t n = accept_enc_rank(&a, cases[i].offered, out);
        if (n != cases[i].n || (n > 0 && out[0] != cases[i].first) ||
            (n > 1 && out[1] != cases[i].second))
            fail_msg("case %zu: got %zu: %d %d", i, n, out[0], out[1]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_qvalues),
        cmocka_unit_test(test_choose),
        cmocka_unit_test(test_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
