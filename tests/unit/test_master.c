/* Unit tests for the parts of server/master.c that need no processes: the
 * worker count for "workers = auto" (affinity mask, cgroup v2 and v1 quotas
 * of our own cgroup and its ancestors, read from a fake cgroup tree and a
 * fake /proc/self/cgroup), the descriptors a configuration needs, the checks
 * --check, a start and a reload share, the words a worker that could not
 * start leaves in its slot, and --signal's argument handling. The file under
 * test is included to reach its static functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "scratch.h"

#include "server/master.c"

static char dir[64], self_cgroup[128];

static void put(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* mkdir -p under the scratch folder */
static void folder(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "mkdir -p '%s/%s'", dir, name);
    assert_int_equal(system(path), 0);
}

static int setup(void **state) {
    strcpy(dir, "/tmp/preforkd-cgroup-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char v1[128];
    snprintf(v1, sizeof v1, "%s/cpu", dir);
    assert_int_equal(mkdir(v1, 0755), 0);
    cgroup_root = dir;
    /* no file there until a test writes one: our cgroup is the root */
    snprintf(self_cgroup, sizeof self_cgroup, "%s/self.cgroup", dir);
    proc_cgroup = self_cgroup;
    return 0;
}

static int teardown(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    cgroup_root = "/sys/fs/cgroup";
    proc_cgroup = "/proc/self/cgroup";
    return 0;
}

static unsigned affinity_cpus(void) {
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    return (unsigned)CPU_COUNT(&set);
}

static void test_no_cgroup_files_means_affinity(void **state) {
    char why[160];
    assert_int_equal(cgroup_cpus(), 0);
    assert_int_equal(master_auto_workers(why, sizeof why), affinity_cpus());
    assert_non_null(strstr(why, "no cgroup quota"));
}

static void test_v2_quota(void **state) {
    char why[160];
    put("cpu.max", "max 100000\n");
    assert_int_equal(cgroup_cpus(), 0);
    put("cpu.max", "150000 100000\n"); /* 1.5 CPUs: rounded up */
    assert_int_equal(cgroup_cpus(), 2);
    put("cpu.max", "50000 100000\n");
    assert_int_equal(cgroup_cpus(), 1);
    assert_int_equal(master_auto_workers(why, sizeof why), 1);
    assert_non_null(strstr(why, "cgroup quota 1"));
    put("cpu.max", "6400000 100000\n"); /* more than we have: the mask wins */
    assert_int_equal(master_auto_workers(why, sizeof why), affinity_cpus());
}

static void test_v1_quota(void **state) {
    put("cpu/cpu.cfs_quota_us", "-1\n");
    put("cpu/cpu.cfs_period_us", "100000\n");
    assert_int_equal(cgroup_cpus(), 0);
    put("cpu/cpu.cfs_quota_us", "250000\n");
    assert_int_equal(cgroup_cpus(), 3);
}

/* systemd's CPUQuota= sits on the service's own cgroup, not on the root of
 * the hierarchy: the quota is read where /proc/self/cgroup points, and on
 * every ancestor, the smallest wins. */
static void test_v2_quota_of_our_own_cgroup_and_its_ancestors(void **state) {
    folder("system.slice/web.service");
    put("self.cgroup", "0::/system.slice/web.service\n");
    put("system.slice/web.service/cpu.max", "150000 100000\n");
    put("system.slice/cpu.max", "max 100000\n");
    assert_int_equal(cgroup_cpus(), 2);
    put("system.slice/cpu.max", "100000 100000\n"); /* a tighter parent wins */
    assert_int_equal(cgroup_cpus(), 1);
    put("system.slice/cpu.max", "max 100000\n");
    put("system.slice/web.service/cpu.max", "max 100000\n");
    put("cpu.max", "300000 100000\n"); /* the top of a container's own view */
    assert_int_equal(cgroup_cpus(), 3);
    put("system.slice/web.service/cpu.max", "50000 100000\n");
    assert_int_equal(cgroup_cpus(), 1);
    /* at the root of the hierarchy only the root's file counts */
    put("self.cgroup", "0::/\n");
    assert_int_equal(cgroup_cpus(), 3);
}

static void test_cgroup_paths_we_cannot_reach(void **state) {
    put("cpu.max", "200000 100000\n");
    /* outside our cgroup namespace: only what our own mount shows counts */
    put("self.cgroup", "0::/../../other.slice\n");
    assert_int_equal(cgroup_cpus(), 2);
    /* a path with no folder here (a container's mount of its own cgroup):
     * the levels that exist still count */
    put("self.cgroup", "0::/docker/abc123\n");
    assert_int_equal(cgroup_cpus(), 2);
    put("self.cgroup", "garbage\n\n1:\n");
    assert_int_equal(cgroup_cpus(), 2);
}

static void test_v1_quota_of_our_own_cgroup(void **state) {
    folder("cpu/docker/abc");
    put("self.cgroup", "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n");
    put("cpu/docker/abc/cpu.cfs_quota_us", "250000\n");
    put("cpu/docker/abc/cpu.cfs_period_us", "100000\n");
    assert_int_equal(cgroup_cpus(), 3);
    put("cpu/docker/cpu.cfs_quota_us", "100000\n");
    put("cpu/docker/cpu.cfs_period_us", "100000\n");
    assert_int_equal(cgroup_cpus(), 1);
    /* "cpuacct" alone is not "cpu" */
    put("self.cgroup", "4:cpuacct:/docker/abc\n");
    assert_int_equal(cgroup_cpus(), 0);
}

static struct conf conf_of(const char *text) {
    struct conf c;
    char err[512];
    conf_init(&c);
    if (conf_load_string(&c, text, "t.conf", err, sizeof err) < 0 ||
        conf_finish(&c, err, sizeof err) < 0)
        fail_msg("%s", err);
    return c;
}

/* A worker may hold a descriptor per connection, per cached file of each
 * inline static route, per pool thread, plus sockets, route roots and a
 * spare: all counted, so that a reload needing more raises the limit. */
static void test_descriptors_needed(void **state) {
    char text[512];
    snprintf(text, sizeof text,
             "[server]\nmax_connections = 100\nthreads = 8\nfile_cache_entries = 50\n"
             "listen = 127.0.0.1:1\nlisten = 127.0.0.1:2\n"
             "[route /]\nhandler = static\nroot = %s\n"
             "[route /b]\nhandler = static\nroot = %s\n"
             "[route /p]\nhandler = static\nroot = %s\nmode = pool\n"
             "[route /s]\nhandler = status\n",
             dir, dir, dir);
    struct conf c = conf_of(text);
    /* 100 + 2 cached routes x 50 + 8 threads + 2 sockets + 4 roots + spare */
    assert_int_equal(nofile_needed(&c), 100 + 100 + 8 + 2 + 4 + NOFILE_SPARE);
    conf_free(&c);
}

static void test_check_names_file_and_line(void **state) {
    char text[512], err[512], warn[256];
    struct creds cr;
    /* an unknown user or group, with the line, as every setting error */
    struct conf c = conf_of("[server]\n\nuser = nosuchuser-xyz\n[route /]\nhandler = echo\n");
    assert_int_equal(master_check(&c, &cr, warn, sizeof warn, err, sizeof err), -1);
    assert_string_equal(err, "t.conf:3: user: no user \"nosuchuser-xyz\"");
    conf_free(&c);
    c = conf_of("[server]\nuser = root\ngroup = nosuchgroup-xyz\n[route /]\nhandler = echo\n");
    assert_int_equal(master_check(&c, &cr, warn, sizeof warn, err, sizeof err), -1);
    assert_string_equal(err, "t.conf:3: group: no group \"nosuchgroup-xyz\"");
    conf_free(&c);
    /* logs that cannot be opened */
    snprintf(text, sizeof text,
             "[server]\naccess_log = %s/no/access.log\n[route /]\nhandler = echo\n", dir);
    c = conf_of(text);
    assert_int_equal(master_check(&c, &cr, warn, sizeof warn, err, sizeof err), -1);
    assert_non_null(strstr(err, "t.conf:2: access_log: "));
    assert_non_null(strstr(err, "/no/access.log: No such file or directory"));
    conf_free(&c);
    snprintf(text, sizeof text, "[server]\nerror_log = %s\n[route /]\nhandler = echo\n", dir);
    c = conf_of(text);
    assert_int_equal(master_check(&c, &cr, warn, sizeof warn, err, sizeof err), -1);
    assert_non_null(strstr(err, "t.conf:2: error_log: "));
    assert_non_null(strstr(err, "Is a directory"));
    conf_free(&c);
    /* a unix socket in a folder that does not exist: the listen line's own */
    snprintf(text, sizeof text,
             "[server]\nlisten = 127.0.0.1:1\nlisten = unix:%s/no/s.sock\n[route /]\nhandler = "
             "echo\n",
             dir);
    c = conf_of(text);
    assert_int_equal(master_check(&c, &cr, warn, sizeof warn, err, sizeof err), -1);
    assert_non_null(strstr(err, "t.conf:3: listen: unix:"));
    assert_non_null(strstr(err, "No such file or directory"));
    conf_free(&c);
}

/* What would work passes, and a check leaves no file behind. */
static void test_check_passes_and_leaves_nothing(void **state) {
    char text[512], err[512] = "", warn[256], path[256];
    struct creds cr;
    snprintf(text, sizeof text,
             "[server]\naccess_log = %s/access.log\nerror_log = %s/error.log\n"
             "listen = unix:%s/s.sock\nlisten = unix:/s.sock\n[route /]\nhandler = echo\n",
             dir, dir, dir);
    struct conf c = conf_of(text);
    int fds = scratch_count_fds();
    assert_int_equal(master_check(&c, &cr, warn, sizeof warn, err, sizeof err), 0);
    assert_int_equal(scratch_count_fds(), fds);
    snprintf(path, sizeof path, "%s/access.log", dir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof path, "%s/error.log", dir);
    assert_int_equal(access(path, F_OK), -1);
    /* a file that exists stays as it is */
    put("access.log", "kept\n");
    assert_int_equal(master_check(&c, &cr, warn, sizeof warn, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/access.log", dir);
    assert_int_equal(access(path, F_OK), 0);
    conf_free(&c);
}

/* Why a worker that never served is gone, as the master's one line says. */
static void test_start_failure_words(void **state) {
    struct generation g = {.id = 2};
    struct proc p = {.pid = 1};
    struct sb_slot s;
    char buf[320];
    conf_init(&g.conf);
    memset(&s, 0, sizeof s);
    snprintf(s.start_error, sizeof s.start_error, "access log /x/y: No such file or directory");
    int status = WORKER_EXIT_NOT_STARTED << 8; /* as waitpid reports exit(3) */
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == WORKER_EXIT_NOT_STARTED);
    assert_string_equal(start_failure(&g, &p, &s, status, buf, sizeof buf),
                        "access log /x/y: No such file or directory");
    s.start_error[0] = '\0';
    assert_non_null(strstr(start_failure(&g, &p, &s, status, buf, sizeof buf), "logged above"));
    p.killed = true; /* by the watchdog */
    assert_string_equal(start_failure(&g, &p, &s, SIGKILL, buf, sizeof buf),
                        "not serving 30000 ms after its start (worker_timeout)");
    p.killed = false;
    assert_string_equal(start_failure(&g, &p, &s, SIGSEGV, buf, sizeof buf), "killed by signal 11");
    conf_free(&g.conf);
}

static void test_signal_arguments(void **state) {
    char err[256];
    int bad;
    assert_int_equal(master_signal("/nonexistent/pid", "bogus", &bad, err, sizeof err), -1);
    assert_int_equal(bad, 1);
    assert_non_null(strstr(err, "reload, stop, quit, reopen, ttin or ttou"));
    /* ttin and ttou are names too: what fails now is the missing pid file */
    assert_int_equal(master_signal("/nonexistent/pid", "ttin", &bad, err, sizeof err), -1);
    assert_int_equal(bad, 0);
    assert_int_equal(master_signal("/nonexistent/pid", "ttou", &bad, err, sizeof err), -1);
    assert_int_equal(bad, 0);
    assert_int_equal(master_signal(NULL, "reload", &bad, err, sizeof err), -1);
    assert_int_equal(bad, 1); /* no pid_file: a usage error as well */
    assert_non_null(strstr(err, "pid_file"));
    assert_int_equal(master_signal("/nonexistent/pid", "quit", &bad, err, sizeof err), -1);
    assert_int_equal(bad, 0);
    assert_non_null(strstr(err, "/nonexistent/pid"));
    put("empty.pid", "");
    char path[128];
    snprintf(path, sizeof path, "%s/empty.pid", dir);
    assert_int_equal(master_signal(path, "reopen", &bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "no pid"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_cgroup_files_means_affinity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_quota_of_our_own_cgroup_and_its_ancestors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cgroup_paths_we_cannot_reach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_quota_of_our_own_cgroup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_descriptors_needed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_names_file_and_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_passes_and_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_failure_words, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signal_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
