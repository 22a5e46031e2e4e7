/* preforkd: command line, configuration, listening sockets, then the master. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cli.h"
#include "server/conf.h"
#include "server/listen.h"
#include "server/log.h"
#include "server/master.h"

#define EXIT_USAGE 2

static int usage_error(const char *msg) {
    fprintf(stderr, "preforkd: %s\n", msg);
    return EXIT_USAGE;
}

static int serve(struct conf *conf) {
    char err[512];
    if (log_open(conf->error_log) < 0) {
        fprintf(stderr, "preforkd: error_log %s: %s\n", conf->error_log, strerror(errno));
        return 1;
    }
    log_set_level(conf->log_level);
    log_set_role("master");

    struct listener *ls = calloc(conf->nlisten, sizeof *ls);
    if (!ls) return 1;
    int status = 1;
    size_t opened = 0;
    for (; opened < conf->nlisten; opened++) {
        ls[opened].addr = conf->listen[opened];
        if (listen_open(&ls[opened], conf->backlog, err, sizeof err) < 0) {
            log_error("%s", err);
            goto out;
        }
        log_info("listening on %s", ls[opened].bound);
    }
    status = master_run(conf, ls, opened);
out:
    for (size_t i = 0; i < opened; i++) listen_close(&ls[i], true);
    free(ls);
    log_close();
    return status;
}

int main(int argc, char **argv) {
    struct cli cli;
    struct conf conf;
    char err[1024];

    signal(SIGPIPE, SIG_IGN);
    if (cli_parse(argc, argv, &cli, err, sizeof err) < 0) return usage_error(err);
    if (cli.help) {
        cli_usage(stdout);
        return 0;
    }
    if (cli.version) {
        printf("preforkd %s\n", PREFORKD_VERSION);
        return 0;
    }

    conf_init(&conf);
    int status = EXIT_USAGE;
    if ((cli.config && conf_load_file(&conf, cli.config, err, sizeof err) < 0) ||
        cli_apply(&cli, &conf, err, sizeof err) < 0) {
        usage_error(err);
        goto out;
    }
    if (cli.signal) {
        int bad_name;
        if (master_signal(conf.pid_file, cli.signal, &bad_name, err, sizeof err) < 0) {
            fprintf(stderr, "preforkd: %s\n", err);
            status = bad_name ? EXIT_USAGE : 1;
        } else {
            status = 0;
        }
        goto out;
    }
    if (conf_finish(&conf, err, sizeof err) < 0) {
        usage_error(err);
        goto out;
    }
    if (cli.check) {
        printf("preforkd: configuration%s%s is valid\n", conf.path ? " " : "",
               conf.path ? conf.path : "");
        status = 0;
        goto out;
    }
    status = serve(&conf);
out:
    conf_free(&conf);
    return status;
}
