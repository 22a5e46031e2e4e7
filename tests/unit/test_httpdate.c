/* Unit tests for workers/httpdate.c: the Date and Last-Modified values we send,
 * and the three HTTP-date forms accepted in If-Modified-Since and If-Range. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "workers/httpdate.h"

/* RFC 9110's example instant: Sun, 06 Nov 1994 08:49:37 GMT. */
#define EXAMPLE_TIME ((time_t)784111777)

static int parse(const char *s, time_t *out) {
    return httpdate_parse(s, strlen(s), out);
}

static void test_format_known_times(void **state) {
    static const struct {
        time_t t;
        const char *want;
    } cases[] = {
        {EXAMPLE_TIME, "Sun, 06 Nov 1994 08:49:37 GMT"},
        {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
        {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
        {1767225600, "Thu, 01 Jan 2026 00:00:00 GMT"},
        {3155759999, "Tue, 31 Dec 2069 23:59:59 GMT"},
        {4102444800, "Fri, 01 Jan 2100 00:00:00 GMT"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[HTTPDATE_LEN + 8];
        memset(out, 'x', sizeof out);
        httpdate_format(cases[i].t, out);
        assert_string_equal(out, cases[i].want);
        assert_int_equal(strlen(out), HTTPDATE_LEN);
        assert_int_equal(out[HTTPDATE_LEN + 1], 'x'); /* nothing written past the NUL */
    }
}

static void test_parse_imf_fixdate(void **state) {
    time_t t = 0;
    assert_int_equal(parse("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
    assert_int_equal(t, EXAMPLE_TIME);
    assert_int_equal(parse("Thu, 01 Jan 1970 00:00:00 GMT", &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(parse("Tue, 29 Feb 2000 00:00:00 GMT", &t), 0);
    assert_int_equal(t, 951782400);
    assert_int_equal(parse("Fri, 01 Jan 2100 00:00:00 GMT", &t), 0);
    assert_int_equal(t, 4102444800);
}

static void test_parse_rfc850(void **state) {
    time_t t = 0;
    assert_int_equal(parse("Sunday, 06-Nov-94 08:49:37 GMT", &t), 0);
    assert_int_equal(t, EXAMPLE_TIME);
    assert_int_equal(parse("Thursday, 01-Jan-70 00:00:00 GMT", &t), 0);
    assert_int_equal(t, 0);
    /* two-digit years below 70 are in this century */
    assert_int_equal(parse("Thursday, 01-Jan-26 00:00:00 GMT", &t), 0);
    assert_int_equal(t, 1767225600);
}

static void test_parse_asctime(void **state) {
    time_t t = 0;
    assert_int_equal(parse("Sun Nov  6 08:49:37 1994", &t), 0);
    assert_int_equal(t, EXAMPLE_TIME);
    assert_int_equal(parse("Wed Nov 16 08:49:37 1994", &t), 0);
    assert_int_equal(t, EXAMPLE_TIME + 10 * 86400);
    assert_int_equal(parse("Thu Jan  1 00:00:00 1970", &t), 0);
    assert_int_equal(t, 0);
}

/* What we send in Last-Modified must come back unchanged in If-Modified-Since. */
static void test_round_trip(void **state) {
    static const time_t times[] = {0,          1,          59,           86399,      86400,
                                   951782400,  951868799,  EXAMPLE_TIME, 1767225600, 1798761599,
                                   2147483647, 3155759999, 4102444800};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        char buf[HTTPDATE_LEN + 1];
        time_t back = -1;
        httpdate_format(times[i], buf);
        assert_int_equal(httpdate_parse(buf, HTTPDATE_LEN, &back), 0);
        assert_int_equal(back, times[i]);
    }
}

static void test_rejects_malformed(void **state) {
    static const char *const bad[] = {
        "",
        "garbage",
        "0",
        "784111777",
        "Sun, 06 Nov 1994 08:49:37",        /* no zone */
        "Sun, 06 Nov 1994 08:49:37 UTC",    /* wrong zone */
        "Sun, 06 Nov 1994 08:49:37 GMT ",   /* trailing space */
        "Sun, 06 Nov 1994 08:49:37 GMTx",   /* trailing junk */
        "Sun, 06 Nov 1994 08:49:37 GMT; x", /* trailing junk */
        "Sun, 6 Nov 1994 08:49:37 GMT",     /* day not two digits */
        "Sun, 06 Nov 94 08:49:37 GMT",      /* year not four digits */
        "Sun, 06-Nov-1994 08:49:37 GMT",    /* mixed forms */
        "Sun, 06 Nov 1994 8:49:37 GMT",     /* hour not two digits */
        "Sun, 06 Nov 1994 08-49-37 GMT",    /* wrong separators */
        "Sun,06 Nov 1994 08:49:37 GMT",     /* missing space */
        "Sun, 06 Foo 1994 08:49:37 GMT",    /* bad month */
        "Sun, 06 No",                       /* cut short */
        "Sunday, 06-Nov-94 08:49:37 GMT x", /* RFC 850 trailing junk */
        "Sunday, 06-Xyz-94 08:49:37 GMT",   /* RFC 850 bad month */
        "Sunday, 06 Nov 94 08:49:37 GMT",   /* RFC 850 wrong separators */
        "Sun Nov  6 08:49:37 1994 x",       /* asctime trailing junk */
        "Sun Nov  6 08:49:37 1994\r",       /* asctime trailing junk */
        "Sun Nov 6 08:49:37 1994",          /* asctime day not space-padded */
        "Sun Xyz  6 08:49:37 1994",         /* asctime bad month */
        "Sun Nov  6 08:49:37 94",           /* asctime short year */
        "Sun Nov  6 08:49:37",              /* asctime no year */
        "Sun, 06 Nov 1994 08:49:37 GMT and then a good deal more text than fits", /* too long */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        time_t t = 12345;
        if (parse(bad[i], &t) != -1) fail_msg("\"%s\" was accepted as %lld", bad[i], (long long)t);
    }
}

static void test_rejects_out_of_range_fields(void **state) {
    static const char *const bad[] = {
        "Sun, 00 Nov 1994 08:49:37 GMT",  /* day 0 */
        "Sun, 32 Nov 1994 08:49:37 GMT",  /* day 32 */
        "Sun, 99 Nov 1994 08:49:37 GMT",  /* day 99 */
        "Sun, 06 Nov 1994 24:00:00 GMT",  /* hour 24 */
        "Sun, 06 Nov 1994 08:60:00 GMT",  /* minute 60 */
        "Sun, 06 Nov 1994 08:49:61 GMT",  /* second 61 */
        "Sunday, 32-Nov-94 08:49:37 GMT", /* RFC 850 day 32 */
        "Sunday, 06-Nov-94 25:49:37 GMT", /* RFC 850 hour 25 */
        "Sun Nov  0 08:49:37 1994",       /* asctime day 0 */
        "Sun Nov 32 08:49:37 1994",       /* asctime day 32 */
        "Sun Nov  6 08:99:37 1994",       /* asctime minute 99 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        time_t t = 12345;
        if (parse(bad[i], &t) != -1) fail_msg("\"%s\" was accepted as %lld", bad[i], (long long)t);
    }
}

/* The value is a slice of the request buffer: only len bytes belong to it. */
static void test_length_bounds_value(void **state) {
    static const char buf[] = "Sun, 06 Nov 1994 08:49:37 GMT\r\nHost: x";
    time_t t = 0;
    assert_int_equal(httpdate_parse(buf, HTTPDATE_LEN, &t), 0);
    assert_int_equal(t, EXAMPLE_TIME);
    assert_int_equal(httpdate_parse(buf, HTTPDATE_LEN + 1, &t), -1);
    assert_int_equal(httpdate_parse(buf, HTTPDATE_LEN - 1, &t), -1);
}

/* Values shorter than a day name must be refused on their own merits, not
 * depending on what an earlier call left behind in memory. */
static void test_rejects_short_after_valid_asctime(void **state) {
    static const char *const shorts[] = {"", "S", "ab", "Sun"};
    for (size_t i = 0; i < sizeof shorts / sizeof shorts[0]; i++) {
        time_t t = 12345;
        assert_int_equal(parse("Sun Nov  6 08:49:37 1994", &t), 0);
        t = 12345;
        if (parse(shorts[i], &t) != -1)
            fail_msg("\"%s\" was accepted as %lld", shorts[i], (long long)t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_known_times),
        cmocka_unit_test(test_parse_imf_fixdate),
        cmocka_unit_test(test_parse_rfc850),
        cmocka_unit_test(test_parse_asctime),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_rejects_malformed),
        cmocka_unit_test(test_rejects_out_of_range_fields),
        cmocka_unit_test(test_length_bounds_value),
        cmocka_unit_test(test_rejects_short_after_valid_asctime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
