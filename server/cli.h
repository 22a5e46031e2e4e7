/* cli: the command line. Flags are collected first, then applied on top of
 * the config file, so that flags always win. */
#ifndef PREFORKD_CLI_H
#define PREFORKD_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "server/conf.h"

#define CLI_MAX_LISTEN 64

struct cli {
    const char *config;
    const char *listen[CLI_MAX_LISTEN];
    size_t nlisten;
    const char *root;
    const char *workers;
    const char *threads;
    const char *access_log;
    const char *error_log;
    const char *pid_file;
    const char *signal;
    bool check; /* -t, --check */
    bool dump;  /* -T: check, then print the effective configuration */
    bool version;
    bool build_info; /* -V */
    bool help;
};

/* 0, or -1 with a one-line message in err. */
int cli_parse(int argc, char **argv, struct cli *cli, char *err, size_t errlen);
/* Applies the flags to c (after the config file was read). */
int cli_apply(const struct cli *cli, struct conf *c, char *err, size_t errlen);
/* The whole configuration as the command line asks for it: defaults, the
 * config file, the flags, the final checks. At start and at every reload.
 * On failure c is freed and err says why. */
int cli_load_config(const struct cli *cli, struct conf *c, char *err, size_t errlen);
void cli_usage(FILE *out);

#endif
