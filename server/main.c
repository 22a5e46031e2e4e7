/* main: pfd_main() — the command line, the configuration, the listening
 * sockets, then the master. The stock binary's main() (server/preforkd.c)
 * calls it with no application; an embedding program with its own. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/cli.h"
#include "server/conf.h"
#include "server/listen.h"
#include "server/log.h"
#include "server/master.h"
#include "server/service.h"
#include "server/version.h"
#include "workers/handlers.h"
#include "workers/preforkd.h"

#define EXIT_USAGE 2

static int usage_error(const char *msg) {
    fprintf(stderr, "preforkd: %s\n", msg);
    return EXIT_USAGE;
}

/* --signal: only the pid file is needed from the configuration. */
static int send_signal(const struct cli *cli) {
    struct conf conf;
    char err[1024];
    int bad_name = 0, status = EXIT_USAGE;
    conf_init(&conf);
    if ((cli->config && conf_load_file(&conf, cli->config, err, sizeof err) < 0) ||
        cli_apply(cli, &conf, err, sizeof err) < 0)
        usage_error(err);
    else if (master_signal(conf.pid_file, cli->signal, &bad_name, err, sizeof err) < 0)
        status = bad_name ? usage_error(err) : (fprintf(stderr, "preforkd: %s\n", err), 1);
    else
        status = 0;
    conf_free(&conf);
    return status;
}

/* The sockets of a master we replace (binary upgrade), from the environment. */
static int inherited_listeners(struct listeners *out, pid_t *replaces, char *err, size_t errlen) {
    const char *fds = getenv(ENV_LISTENERS), *from = getenv(ENV_REPLACES);
    memset(out, 0, sizeof *out);
    *replaces = from ? (pid_t)atol(from) : 0;
    int rc = fds ? listeners_import(out, fds, err, errlen) : 0;
    unsetenv(ENV_LISTENERS);
    unsetenv(ENV_REPLACES);
    return rc;
}

static int serve(const struct cli *cli, char **argv, struct master_args *a, const char *warn) {
    char err[1024];
    struct conf *conf = &a->conf;
    if (log_open(conf->error_log) < 0) {
        fprintf(stderr, "preforkd: error_log %s: %s\n", conf->error_log, strerror(errno));
        conf_free(conf);
        return 1;
    }
    log_set_level(conf->log_level);
    log_set_format(conf->log_format);
    log_set_role("master", -1);
    a->cli = cli;
    a->argv = argv;
    /* the path, not the inode: an upgrade runs what is installed there now */
    static const char deleted[] = " (deleted)";
    ssize_t n = readlink("/proc/self/exe", a->exe, sizeof a->exe - 1);
    a->exe[n > 0 ? n : 0] = '\0';
    size_t len = strlen(a->exe), dlen = sizeof deleted - 1;
    if (len > dlen && strcmp(a->exe + len - dlen, deleted) == 0) a->exe[len - dlen] = '\0';

    log_info("preforkd %s starting", PREFORKD_VERSION);
    if (warn[0]) log_warn("%s", warn);

    /* sockets of a master we replace, and those systemd passed: taken
     * over by the listen lines that name them, never bound again */
    struct listeners inherited;
    if (inherited_listeners(&inherited, &a->replaces, err, sizeof err) < 0 ||
        service_listeners(&inherited, conf->listen, conf->nlisten, err, sizeof err) < 0 ||
        service_check_kept(&inherited, conf->listen, conf->nlisten, err, sizeof err) < 0 ||
        listeners_open(&a->listeners, conf->listen, conf->listen_opts, conf->nlisten, conf->backlog,
                       &inherited, err, sizeof err) < 0) {
        log_error("%s", err);
        listeners_close(&inherited, false);
        conf_free(conf);
        log_close();
        return 1;
    }
    listeners_defer_accept(&a->listeners, conf->defer_accept);
    /* sockets the new configuration dropped: closed now, so that no worker
     * of ours holds them; their files are the old master's until it has
     * handed over */
    listeners_close_sockets(&inherited);
    a->dropped = inherited;
    for (size_t i = 0; i < a->listeners.n; i++) {
        char opts[128];
        listen_opts_format(&a->listeners.v[i].opts, opts, sizeof opts);
        log_info("listening on %s%s%s%s%s", a->listeners.v[i].bound, opts[0] ? " (" : "", opts,
                 opts[0] ? ")" : "",
                 a->listeners.v[i].activated ? " (socket from the service manager)" : "");
    }
    int status = master_run(a);
    log_close();
    return status;
}

int pfd_main(int argc, char **argv, const pfd_app *app) {
    static struct master_args args; /* large (paths): not on the stack */
    struct cli cli;
    char err[1024], warn[256];

    signal(SIGPIPE, SIG_IGN);
    if (app && app->api_version != PFD_API_VERSION) {
        fprintf(stderr,
                "preforkd: the application was built against API version %u, this "
                "library has %u\n",
                app->api_version, PFD_API_VERSION);
        return 1;
    }
    handlers_set_app(app);
    if (cli_parse(argc, argv, &cli, err, sizeof err) < 0) return usage_error(err);
    if (cli.help) {
        cli_usage(stdout);
        return 0;
    }
    if (cli.build_info) {
        version_print_build(stdout);
        return 0;
    }
    if (cli.version) {
        version_print(stdout);
        return 0;
    }
    if (cli.signal) return send_signal(&cli);
    if (cli_load_config(&cli, &args.conf, err, sizeof err) < 0) return usage_error(err);
    /* --check fails on whatever a start would fail on, short of binding:
     * handlers and modules are loaded, and the applications' init run */
    if (master_check(&args.conf, &args.creds, warn, sizeof warn, err, sizeof err) < 0 ||
        handlers_load(&args.conf, err, sizeof err) < 0) {
        conf_free(&args.conf);
        return usage_error(err);
    }
    if (cli.check) {
        if (warn[0]) fprintf(stderr, "preforkd: warning: %s\n", warn);
        /* -T: the verdict on stderr, the configuration alone on stdout */
        fprintf(cli.dump ? stderr : stdout, "preforkd: configuration%s%s is valid\n",
                args.conf.file ? " " : "", args.conf.file ? args.conf.file : "");
        if (cli.dump) conf_dump(&args.conf, stdout);
        conf_free(&args.conf);
        return 0;
    }
    return serve(&cli, argv, &args, warn);
}
