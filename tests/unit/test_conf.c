/* Unit tests for server/conf.c (defaults, the INI file, validation) and
 * server/cli.c (flags applied on top of the file). Error messages are part of
 * the interface: a user fixes a config from "FILE:LINE: setting: why" alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/cli.h"
#include "server/conf.h"
#include "workers/handlers.h"

#define ERRLEN 1024
#define KIB    1024ull
#define MIB    (1024ull * 1024)
#define GIB    (1024ull * 1024 * 1024)
#define DAY_MS (24u * 3600u * 1000u)

/* ---- fixtures and helpers ---------------------------------------------- */

static int setup_conf(void **state) {
    struct conf *c = malloc(sizeof *c);
    if (!c) return -1;
    conf_init(c);
    *state = c;
    return 0;
}

static int teardown_conf(void **state) {
    conf_free(*state);
    free(*state);
    return 0;
}

static int load(struct conf *c, const char *text, char *err) {
    err[0] = '\0';
    return conf_load_string(c, text, "test.conf", err, ERRLEN);
}

/* The final checks, then what the handlers check (workers/handlers.c), as
 * --check and a start do. */
static int finish(struct conf *c, char *err, size_t errlen) {
    if (conf_finish(c, err, errlen) < 0) return -1;
    return handlers_load(c, err, errlen);
}

/* A route's own setting (for its handler), or NULL. */
static const char *route_setting(const struct conf_route *r, const char *name) {
    for (size_t i = 0; i < r->nsettings; i++)
        if (strcmp(r->settings[i].name, name) == 0) return r->settings[i].value;
    return NULL;
}

/* Asserts that err starts with "test.conf:LINE: " and contains want. */
static void assert_error_at(const char *err, int line, const char *want) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "test.conf:%d: ", line);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, want))
        fail_msg("want an error starting \"%s\" and naming \"%s\", got \"%s\"", prefix, want, err);
}

/* Loads text into a fresh configuration and expects it to be refused. */
static void expect_load_error(const char *text, int line, const char *want) {
    struct conf c;
    char err[ERRLEN];
    conf_init(&c);
    int rc = load(&c, text, err);
    conf_free(&c);
    if (rc != -1) fail_msg("accepted, want an error naming \"%s\":\n%s", want, text);
    assert_error_at(err, line, want);
}

static void assert_has(const char *err, const char *want) {
    if (!strstr(err, want)) fail_msg("want a message naming \"%s\", got \"%s\"", want, err);
}

/* The numeric field behind a setting name, widened. */
static uint64_t numeric_field(const struct conf *c, const char *name) {
    static const struct {
        const char *name;
        size_t off;
        int is_u64;
    } fields[] = {
#define U(f) {#f, offsetof(struct conf, f), 0}
#define U64(f)                                                                                     \
    { #f, offsetof(struct conf, f), 1 }
        U(workers),
        U(threads),
        U(backlog),
        U(header_timeout),
        U(body_timeout),
        U(send_timeout),
        U(keepalive_timeout),
        U(request_timeout),
        U(shutdown_timeout),
        U(shutdown_idle_timeout),
        U(upgrade_timeout),
        U(linger_timeout),
        U(keepalive_requests),
        U(max_connections),
        U(pool_queue),
        U64(max_uri),
        U64(max_header_size),
        U64(max_headers),
        U64(max_body_size),
#undef U
#undef U64
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strcmp(fields[i].name, name) != 0) continue;
        const char *p = (const char *)c + fields[i].off;
        return fields[i].is_u64 ? *(const uint64_t *)p : *(const unsigned *)p;
    }
    fail_msg("no numeric field %s", name);
    return 0;
}

enum outcome { OK, BAD, RANGE, ERROR };

struct value_case {
    const char *name, *value;
    enum outcome outcome;
    uint64_t want; /* for OK */
};

/* Sets each value in a [server] section of its own file and checks the field,
 * or the error: "test.conf:2: NAME: invalid value" / "... is out of range". */
static void check_values(const struct value_case *cases, size_t n) {
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        const struct value_case *vc = &cases[i];
        char text[256], err[ERRLEN], prefix[128];
        struct conf c;
        snprintf(text, sizeof text, "[server]\n%s = %s\n", vc->name, vc->value);
        snprintf(prefix, sizeof prefix, "test.conf:2: %s: ", vc->name);
        conf_init(&c);
        int rc = load(&c, text, err);
        if (vc->outcome == OK) {
            if (rc != 0) {
                print_error("%s = %s: refused: %s\n", vc->name, vc->value, err);
                failures++;
            } else if (numeric_field(&c, vc->name) != vc->want) {
                print_error("%s = %s: want %llu, got %llu\n", vc->name, vc->value,
                            (unsigned long long)vc->want,
                            (unsigned long long)numeric_field(&c, vc->name));
                failures++;
            }
        } else if (rc != -1) {
            print_error("%s = %s: accepted as %llu\n", vc->name, vc->value,
                        (unsigned long long)numeric_field(&c, vc->name));
            failures++;
        } else if (strncmp(err, prefix, strlen(prefix)) != 0 ||
                   (vc->outcome == BAD && !strstr(err, "invalid value")) ||
                   (vc->outcome == RANGE && !strstr(err, "out of range"))) {
            print_error("%s = %s: unexpected message \"%s\"\n", vc->name, vc->value, err);
            failures++;
        }
        conf_free(&c);
    }
    assert_int_equal(failures, 0);
}

#define CHECK_VALUES(cases) check_values(cases, sizeof cases / sizeof cases[0])

static char *path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static void write_file(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* A scratch folder holding preforkd.conf, a site/ folder and a plain file. */
struct scratch {
    char dir[64];
    char *conf, *site, *file;
};

static void scratch_make(struct scratch *s) {
    snprintf(s->dir, sizeof s->dir, "/tmp/preforkd-test-conf-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    s->conf = path_join(s->dir, "preforkd.conf");
    s->site = path_join(s->dir, "site");
    s->file = path_join(s->dir, "file.txt");
    assert_int_equal(mkdir(s->site, 0755), 0);
    write_file(s->file, "hello\n", 6);
}

static void scratch_remove(struct scratch *s) {
    unlink(s->conf);
    unlink(s->file);
    rmdir(s->site);
    rmdir(s->dir);
    free(s->conf);
    free(s->site);
    free(s->file);
}

/* ---- defaults ------------------------------------------------------------ */

static void test_init_defaults(void **state) {
    struct conf *c = *state;
    assert_int_equal(c->workers, 0); /* auto */
    assert_int_equal(c->threads, 4);
    assert_int_equal(c->pool_queue, 1024);
    assert_int_equal(c->backlog, 4096);
    assert_int_equal(c->header_timeout, 60000);
    assert_int_equal(c->body_timeout, 60000);
    assert_int_equal(c->send_timeout, 60000);
    assert_int_equal(c->keepalive_timeout, 75000);
    assert_int_equal(c->keepalive_requests, 1000);
    assert_int_equal(c->request_timeout, 60000);
    assert_int_equal(c->shutdown_timeout, 30000);
    assert_int_equal(c->shutdown_idle_timeout, 1000);
    assert_int_equal(c->upgrade_timeout, 10000);
    assert_int_equal(c->linger_timeout, 5000);
    assert_int_equal(c->max_connections, 10000);
    assert_int_equal(c->max_uri, 8 * KIB);
    assert_int_equal(c->max_header_size, 32 * KIB);
    assert_int_equal(c->max_headers, 100);
    assert_int_equal(c->max_body_size, 1 * MIB);
    assert_int_equal(c->stream_buffer, 256 * KIB);
    assert_int_equal(c->cached_buffer_max, 16 * KIB);
    assert_int_equal(c->cached_objects, 256);
    assert_null(c->access_log);
    assert_null(c->error_log);
    assert_int_equal(c->log_level, CONF_LOG_INFO);
    assert_null(c->pid_file);
    assert_null(c->user);
    assert_null(c->group);
    assert_string_equal(c->server_name, "preforkd");
    assert_int_equal(c->nlisten, 0);
    assert_int_equal(c->nroutes, 0);
    assert_null(c->path);
}

static void test_empty_file_keeps_defaults(void **state) {
    struct conf *c = *state;
    char err[ERRLEN];
    assert_int_equal(load(c, "", err), 0);
    assert_int_equal(load(c, "# only a comment\n\n; another\n[server]\n", err), 0);
    assert_int_equal(c->threads, 4);
    assert_int_equal(c->nroutes, 0);
}

/* Each row of --help's defaults is something the config file accepts. */
static void describe_row(const char *name, const char *dflt, const char *doc, void *arg) {
    int *failures = arg;
    char text[256], err[ERRLEN];
    struct conf c;
    assert_non_null(doc);
    assert_true(strlen(doc) > 0);
    if (strcmp(dflt, "-") == 0) return;
    snprintf(text, sizeof text, "[server]\n%s = %s\n", name, dflt);
    conf_init(&c);
    if (load(&c, text, err) != 0) {
        print_error("documented default %s = %s is refused: %s\n", name, dflt, err);
        (*failures)++;
    }
    conf_free(&c);
}

static void test_describe_defaults_are_valid(void **state) {
    int failures = 0;
    conf_describe(describe_row, &failures);
    assert_int_equal(failures, 0);
}

/* ---- setting kinds --------------------------------------------------------- */

static void test_sizes(void **state) {
    static const struct value_case cases[] = {
        {"max_body_size", "0", OK, 0},
        {"max_body_size", "1024", OK, 1024},
        {"max_body_size", "1k", OK, KIB},
        {"max_body_size", "1K", OK, KIB},
        {"max_body_size", "8k", OK, 8 * KIB},
        {"max_body_size", "2m", OK, 2 * MIB},
        {"max_body_size", "2M", OK, 2 * MIB},
        {"max_body_size", "1g", OK, GIB},
        {"max_body_size", "64G", OK, 64 * GIB},
        {"max_body_size", "65g", RANGE, 0},
        {"max_body_size", "1t", BAD, 0},
        {"max_body_size", "k", BAD, 0},
        {"max_body_size", "1kb", BAD, 0},
        {"max_body_size", "-1", BAD, 0},
        {"max_body_size", "1.5m", BAD, 0},
        {"max_body_size", "0x10", BAD, 0},
        {"max_body_size", "1 k", BAD, 0},
        {"max_body_size", "99999999999999999999", ERROR, 0},
        {"max_body_size", "17179869184g", ERROR, 0}, /* 2^64 bytes */
        {"max_uri", "16", OK, 16},
        {"max_uri", "15", RANGE, 0},
        {"max_uri", "1m", OK, MIB},
        {"max_uri", "1025k", RANGE, 0},
        {"max_header_size", "64", OK, 64},
        {"max_header_size", "63", RANGE, 0},
        {"max_header_size", "16m", OK, 16 * MIB},
        {"max_header_size", "17m", RANGE, 0},
    };
    CHECK_VALUES(cases);
}

static void test_parse_size_direct(void **state) {
    uint64_t v = 0;
    assert_int_equal(conf_parse_size("3k", &v), 0);
    assert_int_equal(v, 3 * KIB);
    assert_int_equal(conf_parse_size("3g", &v), 0);
    assert_int_equal(v, 3 * GIB);
    assert_int_equal(conf_parse_size("16777215g", &v), 0);
    assert_int_equal(v, 16777215ull * GIB);
    assert_int_equal(conf_parse_size("", &v), -1);
    assert_int_equal(conf_parse_size("12x", &v), -1);
    assert_int_equal(conf_parse_size("17179869184g", &v), -1); /* would wrap to 0 */
    assert_int_equal(conf_parse_size("18446744073709551616", &v), -1);
}

/* Parts go from the largest unit down: 1m30s, 1h2m. */
static void test_durations(void **state) {
    static const struct value_case cases[] = {
        {"header_timeout", "30", OK, 30000}, /* a bare number is seconds */
        {"header_timeout", "30s", OK, 30000},    {"header_timeout", "500ms", OK, 500},
        {"header_timeout", "1ms", OK, 1},        {"header_timeout", "2m", OK, 120000},
        {"header_timeout", "1h", OK, 3600000},   {"header_timeout", "24h", OK, DAY_MS},
        {"header_timeout", "1440m", OK, DAY_MS}, {"header_timeout", "86400", OK, DAY_MS},
        {"header_timeout", "86401", RANGE, 0},   {"header_timeout", "25h", RANGE, 0},
        {"header_timeout", "0", RANGE, 0},       {"header_timeout", "0s", RANGE, 0},
        {"header_timeout", "0ms", RANGE, 0},     {"header_timeout", "1d", BAD, 0},
        {"header_timeout", "1.5s", BAD, 0},      {"header_timeout", "s", BAD, 0},
        {"header_timeout", "-1", BAD, 0},        {"header_timeout", "1 s", BAD, 0},
        {"header_timeout", "1sec", BAD, 0},      {"header_timeout", "5000000h", ERROR, 0},
        {"body_timeout", "7", OK, 7000},         {"send_timeout", "8s", OK, 8000},
        {"keepalive_timeout", "250ms", OK, 250}, {"request_timeout", "3m", OK, 180000},
        {"shutdown_timeout", "1h", OK, 3600000}, {"linger_timeout", "2", OK, 2000},
        {"shutdown_idle_timeout", "0", OK, 0},   {"shutdown_idle_timeout", "3s", OK, 3000},
        {"header_timeout", "1m30s", OK, 90000},  {"header_timeout", "1h2m", OK, 3720000},
        {"header_timeout", "1s500ms", OK, 1500}, {"header_timeout", "23h60m", OK, DAY_MS},
        {"header_timeout", "24h1ms", RANGE, 0},  {"header_timeout", "30s1m", BAD, 0},
        {"header_timeout", "1m1m", BAD, 0},      {"header_timeout", "1m30", BAD, 0},
        {"header_timeout", "1m 30s", BAD, 0},    {"header_timeout", "1h-2m", BAD, 0},
    };
    CHECK_VALUES(cases);
}

static void test_parse_duration_direct(void **state) {
    unsigned ms = 0;
    assert_int_equal(conf_parse_duration("90", &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(conf_parse_duration("90ms", &ms), 0);
    assert_int_equal(ms, 90);
    assert_int_equal(conf_parse_duration("2h", &ms), 0);
    assert_int_equal(ms, 7200000);
    assert_int_equal(conf_parse_duration("", &ms), -1);
    assert_int_equal(conf_parse_duration("4294968s", &ms), -1); /* past UINT_MAX ms */
    assert_int_equal(conf_parse_duration("1y", &ms), -1);
    assert_int_equal(conf_parse_duration("1m30s", &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(conf_parse_duration("1h2m", &ms), 0);
    assert_int_equal(ms, 3720000);
    assert_int_equal(conf_parse_duration("2m500ms", &ms), 0);
    assert_int_equal(ms, 120500);
    assert_int_equal(conf_parse_duration("1h1h", &ms), -1);
    assert_int_equal(conf_parse_duration("500ms1s", &ms), -1); /* larger units first */
    assert_int_equal(conf_parse_duration("1m", &ms), 0);
    assert_int_equal(ms, 60000);
    assert_int_equal(conf_parse_duration("1ms", &ms), 0);
    assert_int_equal(ms, 1);
    assert_int_equal(conf_parse_duration("1193h2m47s295ms", &ms), 0); /* UINT_MAX ms */
    assert_int_equal(ms, 4294967295u);
    assert_int_equal(conf_parse_duration("1193h2m47s296ms", &ms), -1);
    assert_int_equal(conf_parse_duration("1h2m3", &ms), -1);
    assert_int_equal(conf_parse_duration("1h2", &ms), -1);
}

/* -T: what conf_dump prints reads back as the same configuration. */
static void test_dump_reads_back(void **state) {
    struct conf a, b;
    char err[ERRLEN], *text = NULL;
    size_t len = 0;
    conf_init(&a);
    assert_int_equal(conf_load_string(&a,
                                      "[server]\nlisten = 127.0.0.1:9\n"
                                      "listen = unix:/tmp/x.sock  proxy_protocol\n"
                                      "admin_listen = 127.0.0.1:8 proxy_protocol\n"
                                      "header_timeout = 1m30s\nmax_body_size = 3000\n"
                                      "threads = 7\nlog_level = debug\n"
                                      "[route = /exact]\nhandler = echo\nmethods = GET,POST\n"
                                      "mode = pool\nmax_body_size = 2m\nallow = 10.0.0.0/8 unix\n"
                                      "[route /]\nhandler = sleep\n",
                                      "t.conf", err, sizeof err),
                     0);
    assert_int_equal(conf_finish(&a, err, sizeof err), 0);
    FILE *out = open_memstream(&text, &len);
    conf_dump(&a, out);
    fclose(out);
    assert_non_null(strstr(text, "header_timeout = 90s\n"));
    assert_non_null(strstr(text, "listen = unix:/tmp/x.sock proxy_protocol\n"));
    assert_non_null(strstr(text, "admin_listen = 127.0.0.1:8 proxy_protocol\n"));
    assert_null(strstr(text, "\nlisten = 127.0.0.1:8"));
    assert_non_null(strstr(text, "max_body_size = 3000\n"));
    assert_non_null(strstr(text, "[route = /exact]\n"));
    assert_non_null(strstr(text, "methods = GET POST\n"));
    assert_non_null(strstr(text, "allow = unix 10.0.0.0/8\n"));
    assert_non_null(strstr(text, "; pid_file = (none)\n"));
    conf_init(&b);
    assert_int_equal(conf_load_string(&b, text, "dump", err, sizeof err), 0);
    assert_int_equal(conf_finish(&b, err, sizeof err), 0);
    assert_int_equal(b.nlisten, 3);
    assert_string_equal(b.listen[1], "unix:/tmp/x.sock");
    assert_false(b.listen_opts[0].proxy_protocol);
    assert_true(b.listen_opts[1].proxy_protocol);
    assert_string_equal(b.listen[2], "127.0.0.1:8");
    assert_true(b.listen_opts[2].proxy_protocol);
    assert_int_equal(b.header_timeout, 90000);
    assert_int_equal(b.threads, 7);
    assert_int_equal(b.log_level, CONF_LOG_DEBUG);
    assert_int_equal(b.nroutes, a.nroutes); /* the admin routes made again */
    assert_int_equal(b.routes[0].match, CONF_MATCH_EXACT);
    assert_int_equal(b.routes[0].mode, ROUTE_POOL);
    assert_int_equal(b.routes[0].max_body_size, 2 * 1024 * 1024);
    assert_int_equal(b.routes[0].methods, a.routes[0].methods);
    assert_true(b.routes[0].allow.unix_peers);
    assert_int_equal(b.routes[0].allow.n, 1);
    free(text);
    conf_free(&a);
    conf_free(&b);
}

static void test_counts_and_workers(void **state) {
    static const struct value_case cases[] = {
        {"workers", "auto", OK, 0},
        {"workers", "1", OK, 1},
        {"workers", "512", OK, 512},
        {"workers", "0", RANGE, 0},
        {"workers", "513", RANGE, 0},
        {"workers", "two", BAD, 0},
        {"workers", "-1", BAD, 0},
        {"workers", "4k", BAD, 0},
        {"threads", "1", OK, 1},
        {"threads", "1024", OK, 1024},
        {"threads", "0", RANGE, 0},
        {"threads", "1025", RANGE, 0},
        {"threads", "abc", BAD, 0},
        {"threads", "4k", BAD, 0}, /* a count takes no size suffix */
        {"threads", "99999999999999999999999", ERROR, 0},
        {"pool_queue", "1", OK, 1},
        {"pool_queue", "1048576", OK, 1048576},
        {"pool_queue", "1048577", RANGE, 0},
        {"backlog", "65535", OK, 65535},
        {"backlog", "65536", RANGE, 0},
        {"keepalive_requests", "4294967295", OK, 4294967295u},
        {"keepalive_requests", "4294967296", RANGE, 0},
        {"max_connections", "16777216", OK, 16777216},
        {"max_connections", "16777217", RANGE, 0},
        {"max_headers", "10000", OK, 10000},
        {"max_headers", "10001", RANGE, 0},
        {"max_headers", "0", RANGE, 0},
    };
    CHECK_VALUES(cases);
}

static void test_log_levels(void **state) {
    static const struct {
        const char *text;
        enum conf_log_level want;
    } levels[] = {
        {"error", CONF_LOG_ERROR},
        {"warn", CONF_LOG_WARN},
        {"info", CONF_LOG_INFO},
        {"debug", CONF_LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        struct conf c;
        char text[128], err[ERRLEN];
        snprintf(text, sizeof text, "[server]\nlog_level = %s\n", levels[i].text);
        conf_init(&c);
        assert_int_equal(load(&c, text, err), 0);
        assert_int_equal(c.log_level, levels[i].want);
        conf_free(&c);
    }
    expect_load_error("[server]\nlog_level = verbose\n", 2, "log_level");
    expect_load_error("[server]\nlog_level = verbose\n", 2, "verbose");
}

static void test_access_log(void **state) {
    struct conf *c = *state;
    char err[ERRLEN], cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));

    assert_int_equal(load(c, "[server]\naccess_log = -\n", err), 0);
    assert_string_equal(c->access_log, "-");

    /* off turns off what an earlier source set */
    assert_int_equal(load(c, "[server]\naccess_log = off\n", err), 0);
    assert_null(c->access_log);

    assert_int_equal(load(c, "[server]\naccess_log = /var/log/preforkd/access.log\n", err), 0);
    assert_string_equal(c->access_log, "/var/log/preforkd/access.log");

    /* without a file, relative paths resolve against the current folder */
    assert_int_equal(load(c, "[server]\naccess_log = logs/access.log\n", err), 0);
    char *want = path_join(cwd, "logs/access.log");
    assert_string_equal(c->access_log, want);
    free(want);

    expect_load_error("[server]\naccess_log =\n", 2, "access_log");
}

static void test_log_formats(void **state) {
    struct conf *c = *state;
    char err[ERRLEN];
    assert_string_equal(c->access_log_format, "combined");
    assert_int_equal(c->log_format, CONF_LOG_TEXT);

    assert_int_equal(load(c, "[server]\naccess_log_format = json\nlog_format = json\n", err), 0);
    assert_string_equal(c->access_log_format, "json");
    assert_int_equal(c->log_format, CONF_LOG_JSON);
    /* a format of its own: every variable, ${name}, any header (a line of
     * the file holds 200 bytes: inih's) */
    static const char *const own[] = {
        "$remote_addr $client $remote_user [$time_local] $time_iso8601 $time_iso8601_ms $msec",
        "\"$request\" $request_method $request_uri $uri $args $server_protocol $status",
        "$body_bytes_sent $request_time $route $worker $pid ${http_x_forwarded_for}s $HTTP_Host",
    };
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "[server]\naccess_log_format = %s\n", own[i]);
        conf_free(c);
        conf_init(c);
        if (load(c, text, err) != 0) fail_msg("%s", err);
        assert_string_equal(c->access_log_format, own[i]);
    }
    assert_int_equal(load(c, "[server]\nlog_format = text\n", err), 0);
    assert_int_equal(c->log_format, CONF_LOG_TEXT);

    /* an unknown variable is named, at its line */
    expect_load_error("[server]\n\naccess_log_format = $remote_addr $bytes_sent\n", 3,
                      "unknown variable $bytes_sent");
    expect_load_error("[server]\naccess_log_format = $http_\n", 2, "unknown variable $http_");
    expect_load_error("[server]\naccess_log_format = cost $ 5\n", 2, "without a variable name");
    expect_load_error("[server]\naccess_log_format = ${status\n", 2, "without a variable name");
    expect_load_error("[server]\naccess_log_format =\n", 2, "access_log_format");
    char many[1024] = "[server]\naccess_log_format = ";
    for (int i = 0; i < 33; i++) strcat(many, "$pid");
    strcat(many, "\n");
    expect_load_error(many, 2, "more than 32 variables");
    expect_load_error("[server]\nlog_format = xml\n", 2, "log_format: expected text or json");
    /* a flag goes through the same check */
    assert_int_equal(conf_set(c, "access_log_format", "$nope", err, sizeof err), -1);
    assert_has(err, "unknown variable $nope");
}

static void test_error_log_and_pid_file(void **state) {
    struct conf *c = *state;
    char err[ERRLEN], cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(
        load(c, "[server]\nerror_log = /var/log/e.log\npid_file = run/preforkd.pid\n", err), 0);
    assert_string_equal(c->error_log, "/var/log/e.log");
    char *want = path_join(cwd, "run/preforkd.pid");
    assert_string_equal(c->pid_file, want);
    free(want);
    assert_int_equal(load(c, "[server]\nerror_log = -\n", err), 0);
    assert_string_equal(c->error_log, "-");
    assert_int_equal(load(c, "[server]\nerror_log = off\n", err), 0);
    assert_null(c->error_log);
    expect_load_error("[server]\npid_file =\n", 2, "pid_file");
}

static void test_strings(void **state) {
    struct conf *c = *state;
    char err[ERRLEN];
    assert_int_equal(
        load(c, "[server]\nserver_name = example/1.0\nuser = www-data\ngroup = www-data\n", err),
        0);
    assert_string_equal(c->server_name, "example/1.0");
    assert_string_equal(c->user, "www-data");
    assert_string_equal(c->group, "www-data");
    expect_load_error("[server]\nserver_name =\n", 2, "server_name");
}

static void test_comments_and_blank_lines(void **state) {
    struct conf *c = *state;
    char err[ERRLEN];
    assert_int_equal(load(c,
                          "# preforkd\n"
                          "\n"
                          "[server]\n"
                          "; a comment\n"
                          "   threads = 8   \n"
                          "workers = 2 ; inline comment\n",
                          err),
                     0);
    assert_int_equal(c->threads, 8);
    assert_int_equal(c->workers, 2);
    /* comments and blank lines count in the line numbers of errors */
    expect_load_error("# preforkd\n\n[server]\n; c\nthreads = x\n", 5, "threads");
}

/* ---- listen ---------------------------------------------------------------- */

static void test_listen_single_and_repeated(void **state) {
    struct conf *c = *state;
    char err[ERRLEN];
    assert_int_equal(load(c,
                          "[server]\n"
                          "listen = 127.0.0.1:9000\n"
                          "threads = 2\n"
                          "listen = [::1]:9001\n"
                          "listen = unix:/tmp/preforkd.sock\n",
                          err),
                     0);
    assert_int_equal(c->nlisten, 3);
    assert_string_equal(c->listen[0], "127.0.0.1:9000");
    assert_string_equal(c->listen[1], "[::1]:9001");
    assert_string_equal(c->listen[2], "unix:/tmp/preforkd.sock");
}

static void test_listen_file_replaces_earlier(void **state) {
    struct conf *c = *state;
    char err[ERRLEN];
    assert_int_equal(conf_set(c, "listen", "0.0.0.0:1", err, sizeof err), 0);
    assert_int_equal(conf_set(c, "listen", "0.0.0.0:2", err, sizeof err), 0);
    assert_int_equal(c->nlisten, 2);
    assert_int_equal(load(c, "[server]\nlisten = 127.0.0.1:3\nlisten = 127.0.0.1:4\n", err), 0);
    assert_int_equal(c->nlisten, 2);
    assert_string_equal(c->listen[0], "127.0.0.1:3");
    assert_string_equal(c->listen[1], "127.0.0.1:4");
}

static void test_listen_kept_when_file_has_none(void **state) {
    struct conf *c = *state;
    char err[ERRLEN];
    assert_int_equal(conf_set(c, "listen", "0.0.0.0:1", err, sizeof err), 0);
    assert_int_equal(load(c, "[server]\nthreads = 2\n", err), 0);
    assert_int_equal(c->nlisten, 1);
    assert_string_equal(c->listen[0], "0.0.0.0:1");
}

static void test_listen_errors(void **state) {
    expect_load_error("[server]\nlisten = nope\n", 2, "listen: nope");
    expect_load_error("[server]\nlisten = 127.0.0.1:99999\n", 2, "listen");
    expect_load_error("[server]\nlisten = 127.0.0.1:\n", 2, "listen");
    expect_load_error("[server]\nlisten = unix:\n", 2, "listen");
    expect_load_error("[server]\nlisten = 127.0.0.1:1\nlisten = [::1\n", 3, "listen");
    expect_load_error("[server]\nlisten =\n", 2, "listen");
}

/* ---- routes ---------------------------------------------------------------- */

static void test_routes(void **state) {
    struct conf *c = *state;
    char err[ERRLEN];
    assert_int_equal(load(c,
                          "[route /]\n"
                          "handler = static\n"
                          "root = /srv/www\n"
                          "index = home.html\n"
                          "\n"
                          "[route /api]\n"
                          "handler = echo\n"
                          "mode = pool\n"
                          "[route   /fast]\n"
                          "handler = status\n"
                          "mode = inline\n",
                          err),
                     0);
    assert_int_equal(c->nroutes, 3);
    assert_string_equal(c->routes[0].prefix, "/");
    assert_string_equal(c->routes[0].handler, "static");
    assert_string_equal(route_setting(&c->routes[0], "root"), "/srv/www");
    assert_string_equal(route_setting(&c->routes[0], "index"), "home.html");
    assert_false(c->routes[0].mode_set);
    assert_string_equal(c->routes[1].prefix, "/api");
    assert_string_equal(c->routes[1].handler, "echo");
    assert_int_equal(c->routes[1].mode, ROUTE_POOL);
    assert_true(c->routes[1].mode_set);
    assert_string_equal(c->routes[2].prefix, "/fast");
    assert_int_equal(c->routes[2].mode, ROUTE_INLINE);
    assert_true(c->routes[2].mode_set);
}

static void test_server_after_route(void **state) {
    struct conf *c = *state;
    char err[ERRLEN];
    assert_int_equal(
        load(c, "[route /]\nhandler = echo\n[server]\nthreads = 3\n[route /b]\nhandler = echo\n",
             err),
        0);
    assert_int_equal(c->threads, 3);
    assert_int_equal(c->nroutes, 2);
}

/* Loads, finishes and resolves handlers; expects a refusal at line. */
static void expect_finish_error(const char *text, int line, const char *want) {
    struct conf c;
    char err[ERRLEN] = "";
    conf_init(&c);
    int rc = load(&c, text, err);
    if (rc == 0) rc = finish(&c, err, ERRLEN);
    conf_free(&c);
    if (rc != -1) fail_msg("accepted, want an error naming \"%s\":\n%s", want, text);
    assert_error_at(err, line, want);
}

static void test_route_setting_errors(void **state) {
    expect_finish_error("[route /]\nhandler = static\nroot = /tmp\nindex = a/b.html\n", 4, "index");
    expect_load_error("[route /]\nhandler = echo\nmode = threaded\n", 3, "mode");
    expect_load_error("[route /]\nhandler = echo\nmode = threaded\n", 3, "threaded");
    expect_finish_error("[route /]\nhandler = echo\ncolour = blue\n", 3, "colour");
    expect_load_error("[route /]\nhandler =\n", 2, "handler");
    expect_load_error("[route /]\nhandler = echo\nmethods = GET FETCH\n", 3, "FETCH");
    expect_finish_error("[route /]\nhandler = echo\nsymbol = x\n", 3, "symbol");
    /* [server] settings do not belong in a route */
    expect_finish_error("[route /]\nhandler = echo\nthreads = 2\n", 3, "threads");
    /* patterns: a {name} is a whole segment, each name once; none in = routes */
    expect_load_error("[route /a/x{id}]\nhandler = echo\n", 1, "whole path segment");
    expect_load_error("[route /a/{id}/{id}]\nhandler = echo\n", 1, "{id} twice");
    expect_load_error("[route = /a/{id}]\nhandler = echo\n", 1, "no {name}");
    /* a request has room for 16 parameters; a route with more is refused */
    char many[512] = "[route ";
    for (int i = 0; i < 17; i++) snprintf(many + strlen(many), 16, "/{p%d}", i);
    strcat(many, "]\nhandler = echo\n");
    expect_load_error(many, 1, "more than 16 {name} segments");
    many[strlen("[route ") + 5 * 10 + 6 * 6] = '\0'; /* up to /{p15}: fine */
    strcat(many, "]\nhandler = echo\n");
    struct conf c;
    char err[ERRLEN] = "";
    conf_init(&c);
    assert_int_equal(load(&c, many, err), 0);
    conf_free(&c);
    /* a route's own body limit */
    expect_load_error("[route /]\nhandler = echo\nmax_body_size = lots\n", 3, "max_body_size");
    expect_load_error("[route /]\nhandler = echo\nmax_body_size = 65g\n", 3, "out of range");
    expect_load_error("[route /]\nhandler = echo\nmax_body_size = 1k\nmax_body_size = 2k\n", 4,
                      "max_body_size: set twice");
    /* "[route /x ]" would serve "/x " only */
    expect_load_error("[route /x ]\nhandler = echo\n", 1, "whitespace");
    expect_load_error("[route /a b]\nhandler = echo\n", 1, "whitespace");
}

static void test_route_kinds_and_methods(void **state) {
    struct conf *c = *state;
    char err[ERRLEN];
    assert_int_equal(load(c,
                          "[route = /exact]\nhandler = echo\nmethods = POST, PUT\n"
                          "[route /users/{id}/posts/{post}]\nhandler = echo\n"
                          "[route /prefix/]\nhandler = echo\n",
                          err),
                     0);
    assert_int_equal(c->routes[0].match, CONF_MATCH_EXACT);
    assert_string_equal(c->routes[0].prefix, "/exact");
    assert_int_equal(c->routes[0].methods, (1u << 2) | (1u << 3));
    assert_int_equal(c->routes[1].match, CONF_MATCH_PATTERN);
    assert_int_equal(c->routes[2].match, CONF_MATCH_PREFIX);
    assert_int_equal(c->routes[2].methods, 0);
}

static void test_route_prefix_must_start_with_slash(void **state) {
    expect_load_error("[route api]\nhandler = echo\n", 1, "route");
}

/* ---- load errors ------------------------------------------------------------- */

static void test_unknown_setting(void **state) {
    expect_load_error("[server]\nthreads = 2\nthraeds = 3\n", 3, "unknown setting \"thraeds\"");
}

static void test_unknown_section(void **state) {
    expect_load_error("[server]\nthreads = 2\n[sever]\nworkers = 2\n", 3, "[sever]");
    expect_load_error("[route]\nhandler = echo\n", 1, "[route]");
}

/* The message quotes the value as written, so the user sees what was refused. */
static void test_bad_value(void **state) {
    expect_load_error("[server]\n\nthreads = many\n", 3, "threads: invalid value \"many\"");
    expect_load_error("[server]\nthreads = 4k\n", 2, "threads: invalid value \"4k\"");
    expect_load_error("[server]\nworkers = 2x\n", 2, "workers: invalid value \"2x\"");
    expect_load_error("[server]\nmax_uri = 8q\n", 2, "max_uri: invalid value \"8q\"");
}

static void test_out_of_range(void **state) {
    expect_load_error("[server]\nthreads = 0\n", 2, "threads: \"0\" is out of range");
    expect_load_error("[server]\nworkers = 513\n", 2, "workers: \"513\" is out of range");
    expect_load_error("[server]\nmax_uri = 2m\n", 2, "max_uri: \"2m\" is out of range");
    expect_load_error("[server]\ncached_objects = 65537\n", 2,
                      "cached_objects: \"65537\" is out of range");
    expect_load_error("[server]\nkeepalive_timeout = 25h\n", 2,
                      "keepalive_timeout: \"25h\" is out of range");
}

static void test_setting_set_twice(void **state) {
    expect_load_error("[server]\nthreads = 2\nworkers = 2\nthreads = 3\n", 4, "threads: set twice");
    /* also when the second one is in a later [server] section */
    expect_load_error("[server]\nthreads = 2\n[route /]\nhandler = echo\n[server]\nthreads = 2\n",
                      6, "threads");
}

static void test_route_defined_twice(void **state) {
    expect_finish_error("[route /a]\nhandler = echo\n"
                        "[route /b]\nhandler = echo\n"
                        "[route /a]\nhandler = status\n",
                        5, "route defined twice");
    /* the same path for other methods is fine; overlapping methods are not */
    expect_finish_error("[route /a]\nhandler = echo\nmethods = GET\n"
                        "[route /a]\nhandler = status\nmethods = POST GET\n",
                        4, "route defined twice");
    struct conf c;
    char err[ERRLEN] = "";
    conf_init(&c);
    assert_int_equal(load(&c,
                          "[route /a]\nhandler = echo\nmethods = GET\n"
                          "[route /a]\nhandler = status\nmethods = POST\n",
                          err),
                     0);
    assert_int_equal(finish(&c, err, ERRLEN), 0);
    conf_free(&c);
}

/* The site settings (workers/site.h): header repeats, the others do not;
 * return implies its handler and refuses another; error_page needs a root. */
static void test_route_site_settings(void **state) {
    (void)state;
    struct conf c;
    char err[ERRLEN] = "";
    conf_init(&c);
    assert_int_equal(load(&c,
                          "[route = /old]\nreturn = 301 https://x.example$request_uri\n"
                          "[route /]\nhandler = echo\nheader = X-A: 1\nheader = X-B: 2 always\n",
                          err),
                     0);
    assert_int_equal(finish(&c, err, ERRLEN), 0);
    assert_string_equal(c.routes[0].handler, "return");
    assert_non_null(c.routes[1].site);
    conf_free(&c);
    expect_load_error("[route /]\nhandler = echo\nreturn = 200 a\nreturn = 200 b\n", 4,
                      "return: set twice");
    expect_load_error("[route /]\nhandler = echo\nexpires = 1h\ncache_control = public\n", 4,
                      "cache_control");
    expect_load_error("[route /]\nhandler = echo\nheader = Date: x\n", 3, "header: Date");
    expect_finish_error("[route /]\nhandler = echo\nreturn = 200 a\n", 3, "return");
    expect_finish_error("[route /]\nhandler = echo\nerror_page = 404 /404.html\n", 3, "root");
}

/* The same section header twice in a row is still a second definition. */
static void test_route_defined_twice_adjacent(void **state) {
    expect_finish_error("[route /a]\nhandler = echo\n"
                        "[route /a]\nhandler = status\n",
                        3, "route defined twice");
}

static void test_line_too_long(void **state) {
    char text[512];
    char name[301];
    memset(name, 'x', 300);
    name[300] = '\0';
    snprintf(text, sizeof text, "[server]\nthreads = 2\nserver_name = %s\nworkers = 2\n", name);
    expect_load_error(text, 3, "line too long");

    /* a long line that fits is read whole */
    struct conf c;
    char err[ERRLEN];
    name[150] = '\0';
    snprintf(text, sizeof text, "[server]\nserver_name = %s\n", name);
    conf_init(&c);
    assert_int_equal(load(&c, text, err), 0);
    assert_string_equal(c.server_name, name);
    conf_free(&c);
}

static void test_setting_outside_section(void **state) {
    expect_load_error("threads = 2\n[server]\n", 1, "outside a section");
    expect_load_error("# comment\n\nworkers = 2\n", 3, "outside a section");
}

static void test_syntax_error(void **state) {
    expect_load_error("[server]\nthreads\n", 2, "syntax error");
    expect_load_error("[server]\nthreads = 2\n[server\n", 3, "syntax error");
}

/* The first error is the one reported, not a later one. */
static void test_first_error_wins(void **state) {
    expect_load_error("[server]\nthreads = x\nworkers = y\n", 2, "threads");
}

/* ---- conf_finish ------------------------------------------------------------- */

static void test_finish_default_listen(void **state) {
    struct conf *c = *state;
    char err[ERRLEN];
    assert_int_equal(load(c, "[route /]\nhandler = echo\n", err), 0);
    assert_int_equal(finish(c, err, sizeof err), 0);
    assert_int_equal(c->nlisten, 1);
    assert_string_equal(c->listen[0], "127.0.0.1:8080");
}

static void test_finish_keeps_given_listen(void **state) {
    struct conf *c = *state;
    char err[ERRLEN];
    assert_int_equal(load(c, "[server]\nlisten = 0.0.0.0:80\n[route /]\nhandler = echo\n", err), 0);
    assert_int_equal(finish(c, err, sizeof err), 0);
    assert_int_equal(c->nlisten, 1);
    assert_string_equal(c->listen[0], "0.0.0.0:80");
}

static void test_finish_needs_a_route(void **state) {
    struct conf *c = *state;
    char err[ERRLEN] = "";
    assert_int_equal(load(c, "[server]\nthreads = 2\n", err), 0);
    assert_int_equal(finish(c, err, sizeof err), -1);
    assert_has(err, "nothing to serve");
    assert_has(err, "--root");
}

static void test_finish_unknown_handler(void **state) {
    struct conf *c = *state;
    char err[ERRLEN] = "";
    assert_int_equal(load(c, "[route /app]\nhandler = php\n", err), 0);
    assert_int_equal(finish(c, err, sizeof err), -1);
    assert_has(err, "[route /app]");
    assert_has(err, "handler");
    assert_has(err, "php");
}

static void test_finish_handler_required(void **state) {
    struct conf *c = *state;
    char err[ERRLEN] = "";
    assert_int_equal(load(c, "[route /app]\nmode = pool\n", err), 0);
    assert_int_equal(finish(c, err, sizeof err), -1);
    assert_has(err, "[route /app]");
    assert_has(err, "handler is required");
}

static void test_finish_static_needs_root(void **state) {
    struct conf *c = *state;
    char err[ERRLEN] = "";
    assert_int_equal(load(c, "[route /]\nhandler = static\n", err), 0);
    assert_int_equal(finish(c, err, sizeof err), -1);
    assert_has(err, "[route /]");
    assert_has(err, "root is required");
}

static void test_finish_root_must_be_directory(void **state) {
    struct scratch s;
    scratch_make(&s);
    char text[512], err[ERRLEN] = "";
    struct conf c;

    snprintf(text, sizeof text, "[route /]\nhandler = static\nroot = %s\n", s.file);
    conf_init(&c);
    assert_int_equal(load(&c, text, err), 0);
    assert_int_equal(finish(&c, err, sizeof err), -1);
    assert_has(err, "root");
    assert_has(err, s.file);
    assert_has(err, "not a directory");
    conf_free(&c);

    snprintf(text, sizeof text, "[route /]\nhandler = static\nroot = %s/missing\n", s.dir);
    conf_init(&c);
    assert_int_equal(load(&c, text, err), 0);
    assert_int_equal(finish(&c, err, sizeof err), -1);
    assert_has(err, "root");
    assert_has(err, "missing");
    assert_has(err, "No such file or directory");
    conf_free(&c);

    snprintf(text, sizeof text, "[route /]\nhandler = static\nroot = %s\n", s.site);
    conf_init(&c);
    assert_int_equal(load(&c, text, err), 0);
    assert_int_equal(finish(&c, err, sizeof err), 0);
    conf_free(&c);

    scratch_remove(&s);
}

static void test_finish_sleep_runs_on_pool(void **state) {
    struct conf *c = *state;
    char err[ERRLEN] = "";
    assert_int_equal(load(c, "[route /slow]\nhandler = sleep\nmode = inline\n", err), 0);
    assert_int_equal(finish(c, err, sizeof err), -1);
    assert_has(err, "[route /slow]");
    assert_has(err, "mode");

    struct conf d;
    conf_init(&d);
    assert_int_equal(load(&d, "[route /slow]\nhandler = sleep\n", err), 0);
    assert_int_equal(finish(&d, err, sizeof err), 0);
    assert_int_equal(d.routes[0].mode, ROUTE_POOL);
    conf_free(&d);
}

static void test_finish_root_only_for_static(void **state) {
    struct conf *c = *state;
    char err[ERRLEN] = "";
    assert_int_equal(load(c, "[route /e]\nhandler = echo\nroot = /tmp\n", err), 0);
    assert_int_equal(finish(c, err, sizeof err), -1);
    assert_has(err, "[route /e]");
    assert_has(err, "root");
}

static void test_finish_group_needs_user(void **state) {
    struct conf *c = *state;
    char err[ERRLEN] = "";
    assert_int_equal(load(c, "[server]\ngroup = www-data\n[route /]\nhandler = echo\n", err), 0);
    assert_int_equal(finish(c, err, sizeof err), -1);
    assert_has(err, "group");
}

/* A route's final-check error points at the line of the setting at fault,
 * or at the section's header when a setting is missing, and names the file
 * as it was given. */
static void test_finish_route_errors_name_the_setting_line(void **state) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"[route /a]\n; note\nhandler = php\n",
         "test.conf:3: [route /a]: handler: unknown handler \"php\""},
        {"[route /e]\nhandler = echo\n\nroot = /tmp\n",
         "test.conf:4: [route /e]: root: not a setting of handler echo"},
        {"[route /e]\nhandler = echo\nindex = x.html\n",
         "test.conf:3: [route /e]: index: not a setting of handler echo"},
        {"[route /s]\nmode = inline\nhandler = sleep\n",
         "test.conf:2: [route /s]: mode: the sleep handler runs on the pool"},
        {"[route /m]\nhandler = static\nroot = /nonexistent-preforkd\n",
         "test.conf:3: [route /m]: root: /nonexistent-preforkd: No such file or directory"},
        {"[server]\nthreads = 2\n[route /n]\nmode = pool\n",
         "test.conf:3: [route /n]: handler is required"},
        {"[route /r]\nhandler = static\n", "test.conf:1: [route /r]: root is required"},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct conf c;
        char err[ERRLEN] = "";
        conf_init(&c);
        assert_int_equal(load(&c, cases[i].text, err), 0);
        int rc = finish(&c, err, ERRLEN);
        conf_free(&c);
        if (rc != -1 || strcmp(err, cases[i].want) != 0) {
            print_error("%s: want \"%s\", got \"%s\"\n", cases[i].text, cases[i].want, err);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* An idle connection is closed at keepalive_timeout anyway: a longer
 * shutdown_idle_timeout set on purpose is refused; the default yields. */
static void test_finish_shutdown_idle_timeout_within_keepalive(void **state) {
    struct conf *c = *state;
    char err[ERRLEN] = "";
    assert_int_equal(load(c,
                          "[server]\nkeepalive_timeout = 2s\nshutdown_idle_timeout = 5s\n"
                          "[route /]\nhandler = echo\n",
                          err),
                     0);
    assert_int_equal(finish(c, err, ERRLEN), -1);
    assert_error_at(err, 3, "shutdown_idle_timeout: 5000 ms is longer than keepalive_timeout");

    static const char *const fine[] = {
        "[server]\nkeepalive_timeout = 500ms\n[route /]\nhandler = echo\n", /* default 1 s */
        "[server]\nkeepalive_timeout = 2s\nshutdown_idle_timeout = 2s\n[route /]\nhandler = "
        "echo\n",
    };
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        struct conf d;
        conf_init(&d);
        assert_int_equal(load(&d, fine[i], err), 0);
        if (finish(&d, err, ERRLEN) != 0) fail_msg("%s: %s", fine[i], err);
        conf_free(&d);
    }
}

/* Lines are remembered per setting, for errors found after loading (user,
 * logs); a flag's value has none. */
static void test_setting_lines(void **state) {
    struct conf *c = *state;
    char err[ERRLEN] = "", where[256];
    assert_int_equal(load(c,
                          "[server]\n\naccess_log = /a.log\nlisten = 127.0.0.1:1\n"
                          "listen = 127.0.0.1:2\n[route /]\nhandler = echo\n",
                          err),
                     0);
    assert_int_equal(conf_line(c, "access_log"), 3);
    assert_int_equal(conf_line(c, "threads"), 0); /* a default */
    assert_int_equal(c->nlisten, 2);
    assert_int_equal(c->listen_line[0], 4);
    assert_int_equal(c->listen_line[1], 5);
    assert_string_equal(conf_where(c, 3, where, sizeof where), "test.conf:3: ");
    assert_string_equal(conf_where(c, 0, where, sizeof where), "");
    assert_int_equal(conf_set(c, "access_log", "/b.log", err, ERRLEN), 0);
    assert_int_equal(conf_line(c, "access_log"), 0);
}

/* A listen line's options: the address alone is kept (what sockets are
 * matched by across a reload or upgrade), the options beside it; an unknown
 * option is an error naming it, at its line. */
static void test_listen_options(void **state) {
    struct conf *c = *state;
    char err[ERRLEN] = "";
    assert_int_equal(load(c,
                          "[server]\nlisten = 127.0.0.1:1\n"
                          "listen = 127.0.0.1:2 proxy_protocol\n"
                          "listen =   [::1]:3\t proxy_protocol  \n"
                          "listen = unix:/run/p.sock proxy_protocol\n"
                          "admin_listen = 127.0.0.1:9 proxy_protocol\n"
                          "[route /]\nhandler = echo\n",
                          err),
                     0);
    assert_int_equal(finish(c, err, ERRLEN), 0);
    assert_int_equal(c->nlisten, 5);
    static const char *const addr[] = {"127.0.0.1:1", "127.0.0.1:2", "[::1]:3", "unix:/run/p.sock",
                                       "127.0.0.1:9"};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(c->listen[i], addr[i]);
        assert_int_equal(c->listen_opts[i].proxy_protocol, i > 0);
    }
    assert_int_equal(c->listen_line[1], 3);
    assert_int_equal(c->listen_line[4], 6); /* the admin listener: last, at its line */
    assert_int_equal(conf_set(c, "listen", "127.0.0.1:4   proxy_protocol", err, ERRLEN), 0);
    assert_string_equal(c->listen[5], "127.0.0.1:4");
    assert_true(c->listen_opts[5].proxy_protocol);

    expect_load_error("[server]\nlisten = 127.0.0.1:2 proxy\n", 2,
                      "listen: 127.0.0.1:2: unknown option \"proxy\" (known: proxy_protocol, "
                      "mode=, user=, group=)");
    expect_load_error("[server]\nlisten = 127.0.0.1:2 proxy_protocol=v2\n", 2,
                      "option \"proxy_protocol=v2\" takes no value");
    expect_load_error("[server]\nlisten = 127.0.0.1:2 mode=0660\n", 2,
                      "option \"mode=0660\" is for unix sockets only");
    expect_load_error("[server]\nlisten = 127.0.0.1:x proxy_protocol\n", 2, "invalid port");

    struct conf d;
    conf_init(&d);
    assert_int_equal(load(&d,
                          "[server]\nadmin_listen = 127.0.0.1:9 spdy\n"
                          "[route /]\nhandler = echo\n",
                          err),
                     0);
    assert_int_equal(finish(&d, err, ERRLEN), -1);
    assert_has(err, "admin_listen: 127.0.0.1:9: unknown option \"spdy\"");
    conf_free(&d);
    /* the same address with options is still the same address */
    conf_init(&d);
    assert_int_equal(load(&d,
                          "[server]\nadmin_listen = 127.0.0.1:9 proxy_protocol\n"
                          "listen = 127.0.0.1:9\n[route /]\nhandler = echo\n",
                          err),
                     0);
    assert_int_equal(finish(&d, err, ERRLEN), -1);
    assert_has(err, "admin_listen: 127.0.0.1:9 is a listen address already");
    conf_free(&d);
}

/* ---- conf_load_file ---------------------------------------------------------- */

static void test_file_relative_paths_use_config_folder(void **state) {
    struct scratch s;
    scratch_make(&s);
    static const char text[] = "[server]\n"
                               "access_log = logs/access.log\n"
                               "pid_file = preforkd.pid\n"
                               "listen = unix:run/p.sock\n"
                               "[route /]\n"
                               "handler = static\n"
                               "root = site\n";
    write_file(s.conf, text, sizeof text - 1);

    struct conf c;
    char err[ERRLEN] = "";
    conf_init(&c);
    assert_int_equal(conf_load_file(&c, s.conf, err, sizeof err), 0);
    assert_string_equal(c.path, s.conf);
    assert_string_equal(route_setting(&c.routes[0], "root"), "site");
    assert_string_equal(c.routes[0].base_dir, s.dir); /* what the handler resolves it against */
    char *want = path_join(s.dir, "logs/access.log");
    assert_string_equal(c.access_log, want);
    free(want);
    want = path_join(s.dir, "preforkd.pid");
    assert_string_equal(c.pid_file, want);
    free(want);
    want = path_join(s.dir, "run/p.sock");
    assert_int_equal(c.nlisten, 1);
    assert_memory_equal(c.listen[0], "unix:", 5);
    assert_string_equal(c.listen[0] + 5, want);
    free(want);
    /* the current folder is elsewhere, so this passes only if root was resolved */
    assert_int_equal(finish(&c, err, sizeof err), 0);
    conf_free(&c);

    scratch_remove(&s);
}

/* A config named by a relative path still resolves against its own folder. */
static void test_file_given_by_relative_path(void **state) {
    struct scratch s;
    scratch_make(&s);
    static const char text[] = "[route /]\nhandler = static\nroot = site\n";
    write_file(s.conf, text, sizeof text - 1);

    char old[4096], tmp[4096];
    assert_non_null(getcwd(old, sizeof old));
    assert_int_equal(chdir("/tmp"), 0);
    assert_non_null(getcwd(tmp, sizeof tmp));
    const char *rel = s.dir + strlen("/tmp/"); /* "preforkd-test-conf-XXXXXX" */
    char relconf[128];
    snprintf(relconf, sizeof relconf, "%s/preforkd.conf", rel);

    struct conf c;
    char err[ERRLEN] = "";
    conf_init(&c);
    int rc = conf_load_file(&c, relconf, err, sizeof err);
    assert_int_equal(chdir(old), 0);
    assert_int_equal(rc, 0);
    assert_true(c.path[0] == '/');
    char want[8192];
    snprintf(want, sizeof want, "%s/%s", tmp, rel);
    assert_string_equal(c.routes[0].base_dir, want);
    assert_int_equal(finish(&c, err, sizeof err), 0);
    conf_free(&c);

    scratch_remove(&s);
}

static void test_file_errors_name_the_file(void **state) {
    struct scratch s;
    scratch_make(&s);
    char err[ERRLEN] = "";
    struct conf c;

    /* load errors: FILE:LINE with the name as given */
    static const char bad[] = "[server]\nworkers = lots\n";
    write_file(s.conf, bad, sizeof bad - 1);
    conf_init(&c);
    assert_int_equal(conf_load_file(&c, s.conf, err, sizeof err), -1);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s:2: workers", s.conf);
    assert_has(err, prefix);
    conf_free(&c);

    /* final-check errors name the file too */
    static const char noroot[] = "[route /]\nhandler = static\n";
    write_file(s.conf, noroot, sizeof noroot - 1);
    conf_init(&c);
    assert_int_equal(conf_load_file(&c, s.conf, err, sizeof err), 0);
    assert_int_equal(finish(&c, err, sizeof err), -1);
    assert_has(err, s.conf);
    assert_has(err, "root is required");
    conf_free(&c);

    /* a NUL byte would silently cut the file short */
    static const char nul[] = "[server]\nthreads = 2\0\nworkers = x\n";
    write_file(s.conf, nul, sizeof nul - 1);
    conf_init(&c);
    assert_int_equal(conf_load_file(&c, s.conf, err, sizeof err), -1);
    assert_has(err, s.conf);
    assert_has(err, "NUL");
    conf_free(&c);

    scratch_remove(&s);

    conf_init(&c);
    assert_int_equal(conf_load_file(&c, s.dir, err, sizeof err), -1); /* removed above */
    assert_has(err, s.dir);
    assert_has(err, "No such file or directory");
    conf_free(&c);
}

/* ---- cli ----------------------------------------------------------------- */

/* Runs cli_parse on "preforkd" followed by args (NULL-terminated). */
static int parse_args(struct cli *cli, char *err, const char *const *args) {
    static char *argv[CLI_MAX_LISTEN * 2 + 16];
    int argc = 0;
    argv[argc++] = (char *)"preforkd";
    for (; *args; args++) {
        assert_true(argc < (int)(sizeof argv / sizeof argv[0]) - 1);
        argv[argc++] = (char *)*args;
    }
    argv[argc] = NULL;
    err[0] = '\0';
    return cli_parse(argc, argv, cli, err, ERRLEN);
}

#define PARSE(cli, err, ...) parse_args(cli, err, (const char *const[]){__VA_ARGS__, NULL})

static void test_cli_parse_all_flags(void **state) {
    struct cli cli;
    char err[ERRLEN];
    assert_int_equal(PARSE(&cli, err, "-c", "site.conf", "--listen", "127.0.0.1:1", "-l", "[::1]:2",
                           "--root", "/srv", "-w", "3", "--threads", "8", "--access-log", "-",
                           "--error-log", "e.log", "--pid-file", "p.pid", "--check", "-s",
                           "reload"),
                     0);
    assert_string_equal(cli.config, "site.conf");
    assert_int_equal(cli.nlisten, 2);
    assert_string_equal(cli.listen[0], "127.0.0.1:1");
    assert_string_equal(cli.listen[1], "[::1]:2");
    assert_string_equal(cli.root, "/srv");
    assert_string_equal(cli.workers, "3");
    assert_string_equal(cli.threads, "8");
    assert_string_equal(cli.access_log, "-");
    assert_string_equal(cli.error_log, "e.log");
    assert_string_equal(cli.pid_file, "p.pid");
    assert_string_equal(cli.signal, "reload");
    assert_true(cli.check);
    assert_false(cli.version);
    assert_false(cli.build_info);
    assert_false(cli.help);

    assert_int_equal(
        PARSE(&cli, err, "--config=a.conf", "--workers=auto", "--threads=2", "-v", "-h", "-V"), 0);
    assert_string_equal(cli.config, "a.conf");
    assert_string_equal(cli.workers, "auto");
    assert_string_equal(cli.threads, "2");
    assert_true(cli.version);
    assert_true(cli.help);
    assert_true(cli.build_info);
    assert_false(cli.check);
    assert_int_equal(cli.nlisten, 0); /* nothing left over from the previous parse */
}

/* nginx's habits: -t checks, -T checks and prints; threads has no letter */
static void test_cli_parse_nginx_letters(void **state) {
    struct cli cli;
    char err[ERRLEN];
    assert_int_equal(PARSE(&cli, err, "-t", "-c", "x.conf"), 0);
    assert_true(cli.check);
    assert_false(cli.dump);
    assert_null(cli.threads);
    assert_int_equal(PARSE(&cli, err, "-T"), 0);
    assert_true(cli.check);
    assert_true(cli.dump);
    assert_int_equal(PARSE(&cli, err, "-tc", "x.conf"), 0);
    assert_true(cli.check);
    assert_string_equal(cli.config, "x.conf");
    assert_int_equal(PARSE(&cli, err, "-t", "4"), -1); /* no value: 4 is a stray argument */
    assert_has(err, "\"4\"");
    assert_int_equal(PARSE(&cli, err, "--threads"), -1);
    assert_has(err, "--threads needs a value");
}

static void test_cli_parse_errors(void **state) {
    struct cli cli;
    char err[ERRLEN];
    assert_int_equal(PARSE(&cli, err, "--bogus"), -1);
    assert_has(err, "unknown option --bogus");
    assert_int_equal(PARSE(&cli, err, "-w", "2", "-x"), -1);
    assert_has(err, "unknown option -x");
    assert_int_equal(PARSE(&cli, err, "--check=yes"), -1);
    assert_has(err, "--check");
    assert_int_equal(PARSE(&cli, err, "--listen"), -1);
    assert_has(err, "--listen needs a value");
    assert_int_equal(PARSE(&cli, err, "-v", "-w"), -1);
    assert_has(err, "-w needs a value");
    assert_int_equal(PARSE(&cli, err, "-w", "2", "stray"), -1);
    assert_has(err, "unexpected argument \"stray\"");
    assert_int_equal(PARSE(&cli, err, "serve", "-w", "2"), -1);
    assert_has(err, "unexpected argument \"serve\"");
}

static void test_cli_too_many_listens(void **state) {
    static const char *args[CLI_MAX_LISTEN * 2 + 3];
    size_t n = 0;
    for (int i = 0; i <= CLI_MAX_LISTEN; i++) {
        args[n++] = "-l";
        args[n++] = "127.0.0.1:1";
    }
    args[n] = NULL;
    struct cli cli;
    char err[ERRLEN];
    assert_int_equal(parse_args(&cli, err, args), -1);
    assert_has(err, "--listen");
    args[2 * CLI_MAX_LISTEN] = NULL; /* exactly the maximum is fine */
    assert_int_equal(parse_args(&cli, err, args), 0);
    assert_int_equal(cli.nlisten, CLI_MAX_LISTEN);
}

/* A short option that is unknown inside a cluster ("-xv") is named in the
 * message, rather than whatever argument came before it. Kept last: a failing
 * getopt may leave state behind for the next parse. */
static void test_cli_unknown_option_in_cluster(void **state) {
    struct cli cli;
    char err[ERRLEN];
    assert_int_equal(PARSE(&cli, err, "-xv"), -1);
    assert_has(err, "-x");
    assert_null(strstr(err, "preforkd"));
}

static void test_cli_flags_override_config(void **state) {
    struct conf *c = *state;
    struct cli cli;
    char err[ERRLEN];
    assert_int_equal(load(c,
                          "[server]\n"
                          "listen = 127.0.0.1:1\n"
                          "listen = 127.0.0.1:2\n"
                          "workers = 2\n"
                          "threads = 3\n"
                          "access_log = /var/log/a.log\n"
                          "pid_file = /run/a.pid\n",
                          err),
                     0);
    assert_int_equal(PARSE(&cli, err, "-w", "5", "--threads", "7", "--access-log", "off",
                           "--pid-file", "/run/b.pid", "--error-log", "-", "-l", "[::1]:9"),
                     0);
    assert_int_equal(cli_apply(&cli, c, err, ERRLEN), 0);
    assert_int_equal(c->workers, 5);
    assert_int_equal(c->threads, 7);
    assert_null(c->access_log);
    assert_string_equal(c->pid_file, "/run/b.pid");
    assert_string_equal(c->error_log, "-");
    /* --listen replaces every listen line of the file */
    assert_int_equal(c->nlisten, 1);
    assert_string_equal(c->listen[0], "[::1]:9");
}

static void test_cli_without_flags_changes_nothing(void **state) {
    struct conf *c = *state;
    struct cli cli;
    char err[ERRLEN];
    assert_int_equal(load(c, "[server]\nlisten = 127.0.0.1:1\nworkers = 2\n", err), 0);
    assert_int_equal(PARSE(&cli, err, "--check"), 0);
    assert_int_equal(cli_apply(&cli, c, err, ERRLEN), 0);
    assert_int_equal(c->workers, 2);
    assert_int_equal(c->nlisten, 1);
    assert_string_equal(c->listen[0], "127.0.0.1:1");
    assert_int_equal(c->nroutes, 0);
}

static void test_cli_root_adds_route(void **state) {
    struct conf *c = *state;
    struct cli cli;
    char err[ERRLEN];
    assert_int_equal(load(c, "[route /api]\nhandler = echo\n", err), 0);
    assert_int_equal(PARSE(&cli, err, "--root", "/tmp"), 0);
    assert_int_equal(cli_apply(&cli, c, err, ERRLEN), 0);
    assert_int_equal(c->nroutes, 2);
    assert_string_equal(c->routes[1].prefix, "/");
    assert_string_equal(c->routes[1].handler, "static");
    assert_string_equal(route_setting(&c->routes[1], "root"), "/tmp");
    assert_int_equal(finish(c, err, ERRLEN), 0);
}

static void test_cli_root_overrides_route(void **state) {
    struct conf *c = *state;
    struct cli cli;
    char err[ERRLEN], cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(load(c, "[route /]\nhandler = echo\n", err), 0);
    assert_int_equal(PARSE(&cli, err, "-r", "public"), 0);
    assert_int_equal(cli_apply(&cli, c, err, ERRLEN), 0);
    assert_int_equal(c->nroutes, 1);
    assert_string_equal(c->routes[0].handler, "static");
    /* a relative --root is relative to where preforkd was started */
    char *want = path_join(cwd, "public");
    assert_string_equal(route_setting(&c->routes[0], "root"), want);
    free(want);
}

static void test_cli_apply_errors(void **state) {
    static const struct {
        const char *flag, *value, *want;
    } cases[] = {
        {"--workers", "many", "--workers: invalid value \"many\""},
        {"--workers", "0", "--workers: \"0\" is out of range"},
        {"--threads", "0", "--threads: \"0\" is out of range"},
        {"--threads", "2k", "--threads: invalid value \"2k\""},
        {"--listen", "nope", "--listen: nope"},
        {"--access-log", "", "--access-log"},
        {"--pid-file", "", "--pid-file"},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct conf c;
        struct cli cli;
        char err[ERRLEN];
        conf_init(&c);
        assert_int_equal(PARSE(&cli, err, cases[i].flag, cases[i].value), 0);
        int rc = cli_apply(&cli, &c, err, ERRLEN);
        conf_free(&c);
        if (rc != -1 || !strstr(err, cases[i].want)) {
            print_error("%s %s: want an error naming '%s', got %d '%s'\n", cases[i].flag,
                        cases[i].value, cases[i].want, rc, rc ? err : "");
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup_conf, teardown_conf)
    const struct CMUnitTest tests[] = {
        T(test_init_defaults),
        T(test_empty_file_keeps_defaults),
        T(test_describe_defaults_are_valid),
        T(test_sizes),
        T(test_parse_size_direct),
        T(test_durations),
        T(test_parse_duration_direct),
        T(test_dump_reads_back),
        T(test_counts_and_workers),
        T(test_log_levels),
        T(test_access_log),
        T(test_log_formats),
        T(test_error_log_and_pid_file),
        T(test_strings),
        T(test_comments_and_blank_lines),
        T(test_listen_single_and_repeated),
        T(test_listen_file_replaces_earlier),
        T(test_listen_kept_when_file_has_none),
        T(test_listen_errors),
        T(test_routes),
        T(test_server_after_route),
        T(test_route_kinds_and_methods),
        T(test_route_setting_errors),
        T(test_route_prefix_must_start_with_slash),
        T(test_unknown_setting),
        T(test_unknown_section),
        T(test_bad_value),
        T(test_out_of_range),
        T(test_setting_set_twice),
        T(test_route_defined_twice),
        T(test_route_defined_twice_adjacent),
        T(test_route_site_settings),
        T(test_line_too_long),
        T(test_setting_outside_section),
        T(test_syntax_error),
        T(test_first_error_wins),
        T(test_finish_default_listen),
        T(test_finish_keeps_given_listen),
        T(test_finish_needs_a_route),
        T(test_finish_unknown_handler),
        T(test_finish_handler_required),
        T(test_finish_static_needs_root),
        T(test_finish_root_must_be_directory),
        T(test_finish_sleep_runs_on_pool),
        T(test_finish_root_only_for_static),
        T(test_finish_group_needs_user),
        T(test_finish_route_errors_name_the_setting_line),
        T(test_finish_shutdown_idle_timeout_within_keepalive),
        T(test_setting_lines),
        T(test_listen_options),
        T(test_file_relative_paths_use_config_folder),
        T(test_file_given_by_relative_path),
        T(test_file_errors_name_the_file),
        T(test_cli_parse_all_flags),
        T(test_cli_parse_nginx_letters),
        T(test_cli_parse_errors),
        T(test_cli_too_many_listens),
        T(test_cli_flags_override_config),
        T(test_cli_without_flags_changes_nothing),
        T(test_cli_root_adds_route),
        T(test_cli_root_overrides_route),
        T(test_cli_apply_errors),
        T(test_cli_unknown_option_in_cluster),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
