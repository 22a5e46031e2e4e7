/* Unit tests for workers/accesslog.c: lines written through a real log file
 * in a temporary folder and read back whole. The exact combined format plus
 * the request time, the escaping of untrusted text, the cached client
 * address, field truncation, the buffer's flushes and reopening after
 * rotation. The file under test is included for its MAX_FIELD and LOG_BUF. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "scratch.h"

#include "workers/accesslog.c"

/* One line through an entry as conn.c fills it. */
static void write_line(struct accesslog *log, const struct sockaddr *peer, time_t now,
                       const struct http_request *req, int status, uint64_t body_bytes,
                       uint64_t usec) {
    struct accesslog_entry e = {.peer = peer,
                                .req = req,
                                .wall = {.tv_sec = now},
                                .status = status,
                                .body_bytes = body_bytes,
                                .usec = usec};
    accesslog_write(log, &e);
}

#define T0       1700000000 /* 14/Nov/2023:22:13:20 +0000 */
#define T0_STAMP " - - [14/Nov/2023:22:13:20 +0000] "
/* the line for "GET /n" from 127.0.0.1 at T0, as the rotation tests write it */
#define LINE(n) "127.0.0.1" T0_STAMP "\"GET /" #n " HTTP/1.1\" 200 0 \"-\" \"-\"\n"

struct fixture {
    struct scratch s;
    char path[128]; /* the log file */
};

static int setup(void **state) {
    scratch_setup(state, sizeof(struct fixture), "accesslog");
    struct fixture *fx = *state;
    snprintf(fx->path, sizeof fx->path, "%s/access.log", fx->s.dir);
    return 0;
}

/* The whole file as a string ("" when it does not exist); free it. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "r");
    char *s = NULL;
    size_t n = 0;
    if (f) {
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        n = (size_t)ftell(f);
        rewind(f);
    }
    s = malloc(n + 1);
    assert_non_null(s);
    if (f) {
        assert_int_equal(fread(s, 1, n, f), n);
        fclose(f);
    }
    s[n] = '\0';
    if (len) *len = n;
    return s;
}

static void assert_file_is(const char *path, const char *want) {
    char *got = slurp(path, NULL);
    assert_string_equal(got, want);
    free(got);
}

static struct http_str str(const char *s) {
    return (struct http_str){s, strlen(s)};
}

/* A request as http.c would leave it; referer and user_agent may be NULL. */
struct req {
    struct http_request r;
    struct http_str referer, user_agent;
};

static void make_req(struct req *q, const char *method, const char *target, unsigned version,
                     const char *referer, const char *user_agent) {
    memset(q, 0, sizeof *q);
    q->r.method_name = str(method);
    q->r.target = str(target);
    q->r.version = version;
    if (referer) {
        q->referer = str(referer);
        q->r.referer = &q->referer;
    }
    if (user_agent) {
        q->user_agent = str(user_agent);
        q->r.user_agent = &q->user_agent;
    }
}

static struct sockaddr_in sin4(const char *addr, unsigned port) {
    struct sockaddr_in in4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    assert_int_equal(inet_pton(AF_INET, addr, &in4.sin_addr), 1);
    return in4;
}

static struct sockaddr_in6 sin6(const char *addr, unsigned port) {
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    assert_int_equal(inet_pton(AF_INET6, addr, &in6.sin6_addr), 1);
    return in6;
}

static void test_combined_format(void **state) {
    struct fixture *fx = *state;
    struct sockaddr_in a = sin4("192.0.2.1", 51000);
    struct sockaddr_in6 b = sin6("2001:db8::7", 443);
    static const struct {
        int peer; /* 4, 6 or 0 for none (unix socket) */
        time_t now;
        const char *method, *target;
        unsigned version;
        const char *referer, *user_agent;
        int status;
        uint64_t bytes, usec;
        const char *line;
    } cases[] = {
        {4, T0, "GET", "/index.html", 11, "http://example.com/", "curl/8.0", 200, 1234, 1234567,
         "192.0.2.1" T0_STAMP
         "\"GET /index.html HTTP/1.1\" 200 1234 \"http://example.com/\" \"curl/8.0\"\n"},
        {4, T0, "HEAD", "/", 10, NULL, NULL, 304, 0, 0,
         "192.0.2.1" T0_STAMP "\"HEAD / HTTP/1.0\" 304 0 \"-\" \"-\"\n"},
        {6, T0 + 1, "POST", "/api/x?y=1&z", 11, NULL, "UA", 201, 18446744073709551615u, 999,
         "2001:db8::7 - - [14/Nov/2023:22:13:21 +0000] \"POST /api/x?y=1&z HTTP/1.1\" 201 "
         "18446744073709551615 \"-\" \"UA\"\n"},
        {0, 0, "OPTIONS", "*", 11, "", "", 204, 0, 5000,
         "- - - [01/Jan/1970:00:00:00 +0000] \"OPTIONS * HTTP/1.1\" 204 0 \"\" \"\"\n"},
        {4, 951782400, "DELETE", "/a", 11, "r", NULL, 500, 7, 61050999,
         "192.0.2.1 - - [29/Feb/2000:00:00:00 +0000] \"DELETE /a HTTP/1.1\" 500 7 \"r\" \"-\"\n"},
        {6, 4102444799, "GET", "/", 11, NULL, NULL, 200, 1, 999999,
         "2001:db8::7 - - [31/Dec/2099:23:59:59 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"\n"},
    };
    struct accesslog *log = accesslog_open(fx->path, NULL, 0);
    assert_non_null(log);
    char want[4096] = "";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct req q;
        make_req(&q, cases[i].method, cases[i].target, cases[i].version, cases[i].referer,
                 cases[i].user_agent);
        const struct sockaddr *peer = cases[i].peer == 4   ? (struct sockaddr *)&a
                                      : cases[i].peer == 6 ? (struct sockaddr *)&b
                                                           : NULL;
        write_line(log, peer, cases[i].now, &q.r, cases[i].status, cases[i].bytes, cases[i].usec);
        strcat(want, cases[i].line);
    }
    accesslog_close(log);
    assert_file_is(fx->path, want);
}

static void test_buffered_until_flush(void **state) {
    struct fixture *fx = *state;
    struct sockaddr_in a = sin4("10.0.0.1", 1);
    struct req q;
    make_req(&q, "GET", "/", 11, NULL, NULL);
    static const char line[] = "10.0.0.1" T0_STAMP "\"GET / HTTP/1.1\" 200 5 \"-\" \"-\"\n";

    /* an older file is appended to, never truncated */
    FILE *f = fopen(fx->path, "w");
    assert_non_null(f);
    fputs("old line\n", f);
    fclose(f);

    struct accesslog *log = accesslog_open(fx->path, NULL, 0);
    assert_non_null(log);
    write_line(log, (struct sockaddr *)&a, T0, &q.r, 200, 5, 1000);
    assert_file_is(fx->path, "old line\n"); /* a memcpy, not a write */
    accesslog_flush(log);
    char want[512];
    snprintf(want, sizeof want, "old line\n%s", line);
    assert_file_is(fx->path, want);
    accesslog_flush(log); /* nothing new: nothing written twice */
    assert_file_is(fx->path, want);
    write_line(log, (struct sockaddr *)&a, T0, &q.r, 200, 5, 1000);
    accesslog_close(log); /* flushes */
    snprintf(want, sizeof want, "old line\n%s%s", line, line);
    assert_file_is(fx->path, want);
}

static void test_escaping(void **state) {
    struct fixture *fx = *state;
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"plain /a-b_c.~!$&'()*+,;=:@%20?", 0, "plain /a-b_c.~!$&'()*+,;=:@%20?"},
        {"a\"b", 0, "a\\x22b"},
        {"back\\slash", 0, "back\\x5Cslash"},
        {"nl\r\nx\ty", 0, "nl\\x0D\\x0Ax\\x09y"},
        {"\x01\x1f \x7e\x7f", 0, "\\x01\\x1F ~\\x7F"},
        {"\x80\xc3\xa9\xff", 0, "\\x80\\xC3\\xA9\\xFF"},
        {"nul\0byte", 8, "nul\\x00byte"},
        {"\" - - [forged", 0, "\\x22 - - [forged"},
    };
    struct sockaddr_in a = sin4("127.0.0.1", 1);
    struct accesslog *log = accesslog_open(fx->path, NULL, 0);
    assert_non_null(log);
    char want[8192] = "", line[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct http_str s = {cases[i].in, cases[i].len ? cases[i].len : strlen(cases[i].in)};
        struct http_request r = {.method_name = s, .target = s, .version = 11};
        r.referer = &s;
        r.user_agent = &s;
        write_line(log, (struct sockaddr *)&a, T0, &r, 200, 0, 0);
        snprintf(line, sizeof line, "127.0.0.1" T0_STAMP "\"%s %s HTTP/1.1\" 200 0 \"%s\" \"%s\"\n",
                 cases[i].out, cases[i].out, cases[i].out, cases[i].out);
        strcat(want, line);
    }
    accesslog_close(log);
    assert_file_is(fx->path, want);
}

static void test_unparsed_request(void **state) {
    struct fixture *fx = *state;
    struct sockaddr_in6 b = sin6("::1", 1);
    struct accesslog *log = accesslog_open(fx->path, NULL, 0);
    assert_non_null(log);
    write_line(log, (struct sockaddr *)&b, T0, NULL, 400, 11, 2000);
    write_line(log, NULL, T0, NULL, 431, 0, 0);
    accesslog_close(log);
    assert_file_is(fx->path, "::1" T0_STAMP "\"-\" 400 11 \"-\" \"-\"\n"
                             "-" T0_STAMP "\"-\" 431 0 \"-\" \"-\"\n");
}

static void test_address_cache(void **state) {
    struct fixture *fx = *state;
    struct sockaddr_in a = sin4("192.0.2.1", 1000), a2 = sin4("192.0.2.1", 2000),
                       c = sin4("198.51.100.255", 1000), zero = sin4("0.0.0.0", 0);
    struct sockaddr_in6 b = sin6("2001:db8::1", 1000), d = sin6("2001:db8::2", 1000),
                        mapped = sin6("::ffff:192.0.2.1", 1000);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    static const struct {
        int which;
        const char *addr;
    } seq[] = {
        {0, "192.0.2.1"},      {1, "192.0.2.1"}, /* same address, another port */
        {2, "198.51.100.255"}, {3, "2001:db8::1"}, {0, "192.0.2.1"},   {4, "2001:db8::2"},
        {3, "2001:db8::1"},    {7, "-"},           {3, "2001:db8::1"}, {5, "::ffff:192.0.2.1"},
        {0, "192.0.2.1"},      {8, "-"},           {8, "-"},           {0, "192.0.2.1"},
        {6, "0.0.0.0"},        {7, "-"},           {6, "0.0.0.0"},
    };
    const struct sockaddr *peers[] = {
        (struct sockaddr *)&a,    (struct sockaddr *)&a2,
        (struct sockaddr *)&c,    (struct sockaddr *)&b,
        (struct sockaddr *)&d,    (struct sockaddr *)&mapped,
        (struct sockaddr *)&zero, NULL,
        (struct sockaddr *)&un,
    };
    struct req q;
    make_req(&q, "GET", "/", 11, NULL, NULL);
    struct accesslog *log = accesslog_open(fx->path, NULL, 0);
    assert_non_null(log);
    char want[4096] = "", line[256];
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        write_line(log, peers[seq[i].which], T0, &q.r, 200, i, 0);
        snprintf(line, sizeof line, "%s" T0_STAMP "\"GET / HTTP/1.1\" 200 %zu \"-\" \"-\"\n",
                 seq[i].addr, i);
        strcat(want, line);
    }
    accesslog_close(log);
    assert_file_is(fx->path, want);
}

/* count copies of s, NUL-terminated, in a new string; free it. */
static char *repeat(const char *s, size_t count) {
    size_t n = strlen(s);
    char *out = malloc(n * count + 1);
    assert_non_null(out);
    for (size_t i = 0; i < count; i++) memcpy(out + i * n, s, n);
    out[n * count] = '\0';
    return out;
}

static void test_long_fields_truncated(void **state) {
    struct fixture *fx = *state;
    struct sockaddr_in a = sin4("127.0.0.1", 1);
    char *method = repeat("M", MAX_FIELD + 1), *target = repeat("/", 5000),
         *referer = repeat("r", MAX_FIELD), *quotes = repeat("\"", 3 * MAX_FIELD);
    struct req q;
    make_req(&q, method, target, 11, referer, quotes);
    struct accesslog *log = accesslog_open(fx->path, NULL, 0);
    assert_non_null(log);
    write_line(log, (struct sockaddr *)&a, T0, &q.r, 200, 1, 0);
    accesslog_close(log);

    char *m = repeat("M", MAX_FIELD), *t = repeat("/", MAX_FIELD), *u = repeat("\\x22", MAX_FIELD);
    size_t wantlen = 64 + 4 * MAX_FIELD + strlen(u);
    char *want = malloc(wantlen);
    assert_non_null(want);
    snprintf(want, wantlen, "127.0.0.1" T0_STAMP "\"%s %s HTTP/1.1\" 200 1 \"%s\" \"%s\"\n", m, t,
             referer, u);
    assert_file_is(fx->path, want);
    free(want);
    free(m);
    free(t);
    free(u);
    free(method);
    free(target);
    free(referer);
    free(quotes);
}

/* The longest possible lines, many in a row: each must fit the buffer
 * (ASan sees an overflow) and come out whole. */
static void test_worst_case_lines(void **state) {
    struct fixture *fx = *state;
    enum { LINES = 20 };
    struct sockaddr_in6 b = sin6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1);
    char *evil = repeat("\x01", MAX_FIELD + 10);
    struct req q;
    make_req(&q, evil, evil, 11, evil, evil);
    struct accesslog *log = accesslog_open(fx->path, NULL, 0);
    assert_non_null(log);
    for (unsigned i = 0; i < LINES; i++)
        write_line(log, (struct sockaddr *)&b, T0, &q.r, 599, UINT64_MAX, UINT64_MAX);
    accesslog_close(log);

    char *e = repeat("\\x01", MAX_FIELD);
    size_t linelen = 256 + 4 * strlen(e);
    char *line = malloc(linelen), *want = malloc(linelen * LINES);
    assert_non_null(line);
    assert_non_null(want);
    snprintf(line, linelen,
             "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" T0_STAMP
             "\"%s %s HTTP/1.1\" 599 18446744073709551615 \"%s\" \"%s\"\n",
             e, e, e, e);
    want[0] = '\0';
    for (unsigned i = 0; i < LINES; i++) strcat(want, line);
    assert_file_is(fx->path, want);
    free(line);
    free(want);
    free(e);
    free(evil);
}

static void test_full_buffer_is_written(void **state) {
    struct fixture *fx = *state;
    enum { LINES = 5000 };
    struct sockaddr_in a = sin4("203.0.113.9", 1);
    struct accesslog *log = accesslog_open(fx->path, NULL, 0);
    assert_non_null(log);
    char target[32], line[256];
    size_t total = 0;
    for (unsigned i = 0; i < LINES; i++) {
        struct req q;
        snprintf(target, sizeof target, "/item/%u", i);
        make_req(&q, "GET", target, 11, "http://example.com/list", "Mozilla/5.0 (X11; Linux)");
        write_line(log, (struct sockaddr *)&a, T0, &q.r, 200, i, i * 1000);
        total += (size_t)snprintf(line, sizeof line,
                                  "203.0.113.9" T0_STAMP "\"GET %s HTTP/1.1\" 200 %u "
                                  "\"http://example.com/list\" \"Mozilla/5.0 (X11; Linux)\"\n",
                                  target, i);
    }
    /* more than the buffer holds went out without a flush, in whole lines */
    size_t len;
    char *partial = slurp(fx->path, &len);
    assert_true(len > LOG_BUF / 2);
    assert_true(len < total);
    assert_int_equal(partial[len - 1], '\n');
    free(partial);
    accesslog_close(log);

    char *all = slurp(fx->path, &len);
    assert_int_equal(len, total);
    char *p = all;
    for (unsigned i = 0; i < LINES; i++) {
        snprintf(target, sizeof target, "/item/%u", i);
        int n = snprintf(line, sizeof line,
                         "203.0.113.9" T0_STAMP "\"GET %s HTTP/1.1\" 200 %u "
                         "\"http://example.com/list\" \"Mozilla/5.0 (X11; Linux)\"\n",
                         target, i);
        if (strncmp(p, line, (size_t)n) != 0) fail_msg("line %u is not \"%.*s\"", i, n - 1, line);
        p += n;
    }
    free(all);
}

/* To a pipe: a line longer than PIPE_BUF is shortened to fit, short fields
 * kept whole and long ones cut with "..."; the buffer goes out in writes of
 * whole lines. */
static void test_whole_lines_for_a_pipe(void **state) {
    struct fixture *fx = *state;
    struct sockaddr_in a = sin4("127.0.0.1", 1);
    char *target = repeat("t", 3000), *agent = repeat("\"", 1000);
    struct req q;
    make_req(&q, "GET", target, 11, "http://r/", agent);
    struct accesslog *log = accesslog_open(fx->path, NULL, 0);
    assert_non_null(log);
    log->whole_lines = true; /* as for a pipe */
    for (int i = 0; i < 10; i++) write_line(log, (struct sockaddr *)&a, T0, &q.r, 200, 0, 0);
    accesslog_close(log);
    size_t len;
    char *all = slurp(fx->path, &len), *p = all;
    for (int i = 0; i < 10; i++) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true(nl - p + 1 <= PIPE_BUF);
        assert_true(nl - p + 1 > PIPE_BUF - 8); /* the room is used */
        assert_memory_equal(p, "127.0.0.1" T0_STAMP "\"GET ttt", 47);
        assert_non_null(strstr(p, "t... HTTP/1.1\" 200 0 \"http://r/\" \"\\x22\\x22"));
        assert_memory_equal(nl - 8, "\\x22...\"", 8);
        p = nl + 1;
    }
    assert_int_equal(p - all, len);
    free(all);
    free(target);
    free(agent);
}

static void test_reopen_after_rotation(void **state) {
    struct fixture *fx = *state;
    struct sockaddr_in a = sin4("127.0.0.1", 1);
    char rotated[160];
    snprintf(rotated, sizeof rotated, "%s.1", fx->path);
    struct req one, two, three;
    make_req(&one, "GET", "/1", 11, NULL, NULL);
    make_req(&two, "GET", "/2", 11, NULL, NULL);
    make_req(&three, "GET", "/3", 11, NULL, NULL);
    struct accesslog *log = accesslog_open(fx->path, NULL, 0);
    assert_non_null(log);
    write_line(log, (struct sockaddr *)&a, T0, &one.r, 200, 0, 0);
    accesslog_flush(log);
    assert_int_equal(rename(fx->path, rotated), 0); /* logrotate */
    write_line(log, (struct sockaddr *)&a, T0, &two.r, 200, 0, 0);
    assert_int_equal(accesslog_reopen(log), 0);
    write_line(log, (struct sockaddr *)&a, T0, &three.r, 200, 0, 0);
    accesslog_close(log);
    /* what was written before the reopen went to the old file */
    assert_file_is(rotated, LINE(1) LINE(2));
    assert_file_is(fx->path, LINE(3));
}

static void test_reopen_failure_keeps_old_file(void **state) {
    struct fixture *fx = *state;
    struct sockaddr_in a = sin4("127.0.0.1", 1);
    char sub[128], path[160], rotated[160];
    snprintf(sub, sizeof sub, "%s/logs", fx->s.dir);
    snprintf(path, sizeof path, "%s/access.log", sub);
    snprintf(rotated, sizeof rotated, "%s/rotated.log", fx->s.dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    struct req one, two;
    make_req(&one, "GET", "/1", 11, NULL, NULL);
    make_req(&two, "GET", "/2", 11, NULL, NULL);

    struct accesslog *log = accesslog_open(path, NULL, 0);
    assert_non_null(log);
    write_line(log, (struct sockaddr *)&a, T0, &one.r, 200, 0, 0);
    assert_int_equal(rename(path, rotated), 0);
    assert_int_equal(rmdir(sub), 0); /* the path cannot be created again */
    assert_int_equal(accesslog_reopen(log), -1);
    write_line(log, (struct sockaddr *)&a, T0, &two.r, 200, 0, 0);
    accesslog_close(log);
    assert_file_is(rotated, LINE(1) LINE(2)); /* nothing lost */
}

static void test_open_failure(void **state) {
    struct fixture *fx = *state;
    char path[160];
    snprintf(path, sizeof path, "%s/missing/access.log", fx->s.dir);
    errno = 0;
    assert_null(accesslog_open(path, NULL, 0));
    assert_int_equal(errno, ENOENT);
    assert_null(accesslog_open(fx->s.dir, NULL, 0)); /* a folder */
    assert_int_equal(errno, EISDIR);
}

static void test_dash_is_stdout(void **state) {
    struct fixture *fx = *state;
    struct sockaddr_in a = sin4("127.0.0.1", 1);
    struct req q;
    make_req(&q, "GET", "/", 11, NULL, NULL);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO), file = open(fx->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(saved >= 0 && file >= 0);
    assert_int_equal(dup2(file, STDOUT_FILENO), STDOUT_FILENO);
    close(file);

    /* nothing may fail while stdout is the file: cmocka reports there */
    struct accesslog *log = accesslog_open("-", NULL, 0);
    int reopened = -1;
    if (log) {
        write_line(log, (struct sockaddr *)&a, T0, &q.r, 200, 0, 0);
        reopened = accesslog_reopen(log);
        accesslog_close(log);
    }
    bool stdout_open = fcntl(STDOUT_FILENO, F_GETFD) >= 0;
    dup2(saved, STDOUT_FILENO);
    close(saved);

    assert_non_null(log);
    assert_int_equal(reopened, 0);
    assert_true(stdout_open); /* closing the log leaves stdout alone */
    assert_file_is(fx->path, "127.0.0.1" T0_STAMP "\"GET / HTTP/1.1\" 200 0 \"-\" \"-\"\n");
}

/* An entry with everything set, for the formats' tests. */
static struct accesslog_entry full_entry(const struct sockaddr *peer,
                                         const struct http_request *r) {
    return (struct accesslog_entry){.peer = peer,
                                    .req = r,
                                    .route = "/api/{id}",
                                    .wall = {.tv_sec = T0, .tv_usec = 45678},
                                    .status = 201,
                                    .body_bytes = 17,
                                    .usec = 1234567};
}

static void test_json_format(void **state) {
    struct fixture *fx = *state;
    struct sockaddr_in a = sin4("192.0.2.1", 51000);
    struct req q;
    /* quotes, a backslash, controls, DEL, UTF-8 and a lone byte: all escaped */
    make_req(&q, "GET", "/a\"b\\c?x=\x01\x7f", 11, NULL, "ua \xc3\xa9\xff\n");
    struct accesslog *log = accesslog_open(fx->path, "json", 7);
    assert_non_null(log);
    struct accesslog_entry e = full_entry((struct sockaddr *)&a, &q.r);
    accesslog_write(log, &e);
    e.peer = NULL; /* a unix socket, no route, nothing parsed */
    e.route = NULL;
    e.req = NULL;
    e.status = 400;
    e.usec = 5000;
    accesslog_write(log, &e);
    accesslog_close(log);
    char want[2048];
    snprintf(want, sizeof want,
             "{\"time\":\"2023-11-14T22:13:20.045Z\",\"remote_addr\":\"192.0.2.1\","
             "\"client\":\"192.0.2.1\",\"method\":\"GET\","
             "\"uri\":\"/a\\\"b\\\\c?x=\\u0001\\u007F\",\"protocol\":\"HTTP/1.1\",\"status\":201,"
             "\"body_bytes_sent\":17,\"request_time\":1.234,\"route\":\"/api/{id}\","
             "\"worker\":7,\"pid\":%d,\"referer\":\"\",\"user_agent\":\"ua "
             "\\u00C3\\u00A9\\u00FF\\u000A\"}\n"
             "{\"time\":\"2023-11-14T22:13:20.045Z\",\"remote_addr\":\"\",\"client\":\"\","
             "\"method\":\"\",\"uri\":\"\",\"protocol\":\"\",\"status\":400,"
             "\"body_bytes_sent\":17,\"request_time\":0.005,\"route\":\"\",\"worker\":7,"
             "\"pid\":%d,\"referer\":\"\",\"user_agent\":\"\"}\n",
             (int)getpid(), (int)getpid());
    assert_file_is(fx->path, want);
}

static void test_custom_format(void **state) {
    struct fixture *fx = *state;
    struct sockaddr_in6 b = sin6("2001:db8::7", 443);
    struct req q;
    make_req(&q, "POST", "/p%41th?k=v&w", 10, "http://r/", "UA");
    struct http_field fields[] = {
        {{"Host", 4}, {"example.com", 11}},
        {{"X-Forwarded-For", 15}, {"198.51.100.1, \"x\"", 17}},
        {{"x-forwarded-for", 15}, {"second", 6}},
    };
    q.r.fields = fields;
    q.r.nfields = 3;
    q.r.path = "/pAth";
    q.r.path_len = 5;
    q.r.query = str("k=v&w");
    static const char format[] =
        "$remote_addr|$client|$remote_user|$time_local|$time_iso8601|$time_iso8601_ms|$msec|"
        "$request|$request_method|$request_uri|$uri|$args|$server_protocol|$status|"
        "$body_bytes_sent|$request_time|$route|$worker|$pid|$http_host|${http_X_FORWARDED_FOR}s|"
        "$http_referer|$http_user_agent|$http_missing|$$";
    /* "$$" is no variable: refused, as nginx does */
    char err[256];
    assert_int_equal(accesslog_format_check(format, err, sizeof err), -1);
    assert_string_equal(err, "access_log_format: \"$\" without a variable name at \"$$\"");
    char own[sizeof format];
    snprintf(own, sizeof own, "%.*s", (int)(sizeof format - 4), format);
    assert_int_equal(accesslog_format_check(own, err, sizeof err), 0);

    struct accesslog *log = accesslog_open(fx->path, own, 3);
    assert_non_null(log);
    struct accesslog_entry e = full_entry((struct sockaddr *)&b, &q.r);
    accesslog_write(log, &e);
    e.req = NULL;
    e.route = NULL;
    accesslog_write(log, &e);
    accesslog_close(log);
    char want[2048];
    snprintf(want, sizeof want,
             "2001:db8::7|2001:db8::7|-|14/Nov/2023:22:13:20 +0000|2023-11-14T22:13:20+00:00|"
             "2023-11-14T22:13:20.045Z|1700000000.045|POST /p%%41th?k=v&w HTTP/1.0|POST|"
             "/p%%41th?k=v&w|/pAth|k=v&w|HTTP/1.0|201|17|1.234|/api/{id}|3|%d|example.com|"
             "198.51.100.1, \\x22x\\x22s|http://r/|UA|-\n"
             "2001:db8::7|2001:db8::7|-|14/Nov/2023:22:13:20 +0000|2023-11-14T22:13:20+00:00|"
             "2023-11-14T22:13:20.045Z|1700000000.045|-|-|-|-|-|-|201|17|1.234|-|3|%d|-|-s|-|-|-\n",
             (int)getpid(), (int)getpid());
    assert_file_is(fx->path, want);
}

static void test_format_errors(void **state) {
    struct fixture *fx = *state;
    static const struct {
        const char *format, *err;
    } cases[] = {
        {"$remote_addr $bytes_sent", "access_log_format: unknown variable $bytes_sent"},
        {"$Time_Locals", "access_log_format: unknown variable $time_locals"},
        {"${status", "access_log_format: \"$\" without a variable name at \"${status\""},
        {"50$", "access_log_format: \"$\" without a variable name at \"$\""},
        {"$http_", "access_log_format: unknown variable $http_"},
    };
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(accesslog_format_check(cases[i].format, err, sizeof err), -1);
        assert_string_equal(err, cases[i].err);
        errno = 0;
        assert_null(accesslog_open(fx->path, cases[i].format, 0));
        assert_int_equal(errno, EINVAL);
    }
    assert_int_equal(accesslog_format_check("no variable at all", err, sizeof err), 0);
}

/* The widest lines of each kind of format fit the buffer (ASan sees an
 * overflow), and to a pipe they are shortened to whole lines. */
static void test_worst_case_formats(void **state) {
    struct fixture *fx = *state;
    static const char *const formats[] = {
        "json",
        "$request $request $request $request $request $request $request $request $request "
        "$request $request $request $request $request $request $request $http_x $uri $args",
    };
    char *evil = repeat("\x01", MAX_FIELD + 10);
    struct req q;
    make_req(&q, evil, evil, 11, evil, evil);
    struct http_field field = {{"X", 1}, {evil, strlen(evil)}};
    q.r.fields = &field;
    q.r.nfields = 1;
    q.r.path = evil;
    q.r.path_len = strlen(evil);
    q.r.query = str(evil);
    struct sockaddr_in6 b = sin6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1);
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
        for (int pipe_like = 0; pipe_like < 2; pipe_like++) {
            unlink(fx->path);
            struct accesslog *log = accesslog_open(fx->path, formats[f], UINT32_MAX);
            assert_non_null(log);
            log->whole_lines = pipe_like;
            struct accesslog_entry e = full_entry((struct sockaddr *)&b, &q.r);
            e.status = 599, e.body_bytes = UINT64_MAX, e.usec = UINT64_MAX;
            e.wall.tv_sec = 4102444799;
            for (int i = 0; i < 10; i++) accesslog_write(log, &e);
            accesslog_close(log);
            size_t len;
            char *all = slurp(fx->path, &len), *p = all;
            for (int i = 0; i < 10; i++) {
                char *nl = memchr(p, '\n', len - (size_t)(p - all));
                assert_non_null(nl);
                if (pipe_like)
                    assert_true(nl - p + 1 <= PIPE_BUF);
                else
                    assert_true((size_t)(nl - p) > 4 * MAX_FIELD);
                p = nl + 1;
            }
            assert_int_equal(p - all, len);
            free(all);
        }
    }
    free(evil);
}

/* Behind a trusted proxy: $remote_addr is the client it names (as with
 * nginx's realip module), $realip_remote_addr the proxy; in JSON,
 * remote_addr is the connection's peer and client the client. */
static void test_client_behind_a_proxy(void **state) {
    struct fixture *fx = *state;
    struct sockaddr_in proxy = sin4("10.0.0.1", 1);
    struct sockaddr_in6 client = sin6("2001:db8::9", 2);
    struct req q;
    make_req(&q, "GET", "/", 11, NULL, NULL);
    struct accesslog_entry e = full_entry((struct sockaddr *)&proxy, &q.r);
    e.client = (struct sockaddr *)&client;
    static const char *const formats[] = {"$remote_addr $realip_remote_addr $client", "json"};
    static const char *const want[] = {
        "2001:db8::9 10.0.0.1 2001:db8::9\n",
        "\"remote_addr\":\"10.0.0.1\",\"client\":\"2001:db8::9\"",
    };
    for (size_t i = 0; i < 2; i++) {
        unlink(fx->path);
        struct accesslog *log = accesslog_open(fx->path, formats[i], 0);
        assert_non_null(log);
        accesslog_write(log, &e);
        accesslog_close(log);
        char *got = slurp(fx->path, NULL);
        if (!strstr(got, want[i])) fail_msg("\"%s\" lacks \"%s\"", got, want[i]);
        free(got);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_combined_format, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_buffered_until_flush, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_unparsed_request, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_address_cache, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_long_fields_truncated, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_worst_case_lines, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_full_buffer_is_written, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_whole_lines_for_a_pipe, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_after_rotation, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_failure_keeps_old_file, setup,
                                        scratch_teardown),
        cmocka_unit_test_setup_teardown(test_open_failure, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_dash_is_stdout, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_json_format, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_custom_format, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_format_errors, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_worst_case_formats, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_client_behind_a_proxy, setup, scratch_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
