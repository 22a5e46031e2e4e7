/* cli: getopt_long over the documented flags. */
#include "server/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

enum {
    OPT_ACCESS_LOG = 256,
    OPT_ERROR_LOG,
    OPT_PID_FILE,
    OPT_THREADS,
};

static const struct option options[] = {
    {"config", required_argument, NULL, 'c'},
    {"listen", required_argument, NULL, 'l'},
    {"root", required_argument, NULL, 'r'},
    {"workers", required_argument, NULL, 'w'},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
    {"error-log", required_argument, NULL, OPT_ERROR_LOG},
    {"pid-file", required_argument, NULL, OPT_PID_FILE},
    {"check", no_argument, NULL, 't'},
    {"signal", required_argument, NULL, 's'},
    {"version", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int cli_parse(int argc, char **argv, struct cli *cli, char *err, size_t errlen) {
    memset(cli, 0, sizeof *cli);
    opterr = 0;
    optind = 0; /* 0, not 1: glibc then also forgets a half-read "-xv" */
    int opt;
    while ((opt = getopt_long(argc, argv, ":c:l:r:w:s:tTvVh", options, NULL)) != -1) {
        switch (opt) {
        case 'c': cli->config = optarg; break;
        case 'l':
            if (cli->nlisten == CLI_MAX_LISTEN) {
                snprintf(err, errlen, "--listen: at most %d addresses", CLI_MAX_LISTEN);
                return -1;
            }
            cli->listen[cli->nlisten++] = optarg;
            break;
        case 'r': cli->root = optarg; break;
        case 'w': cli->workers = optarg; break;
        case OPT_THREADS: cli->threads = optarg; break;
        case OPT_ACCESS_LOG: cli->access_log = optarg; break;
        case OPT_ERROR_LOG: cli->error_log = optarg; break;
        case OPT_PID_FILE: cli->pid_file = optarg; break;
        case 't': cli->check = true; break;
        case 'T': cli->check = cli->dump = true; break;
        case 's': cli->signal = optarg; break;
        case 'v': cli->version = true; break;
        case 'V': cli->build_info = true; break;
        case 'h': cli->help = true; break;
        case ':': {
            const char *word = argv[optind - 1];
            if (strncmp(word, "--", 2) == 0)
                snprintf(err, errlen, "%s needs a value (see --help)", word);
            else
                snprintf(err, errlen, "-%c needs a value (see --help)", optopt);
            return -1;
        }
        default: {
            /* a long option is the word just read; in a cluster of short
             * ones ("-xv") only optopt says which letter was wrong */
            const char *word = argv[optind - 1];
            if (strncmp(word, "--", 2) == 0 && optopt == 0)
                snprintf(err, errlen, "unknown option %s (see --help)", word);
            else if (strncmp(word, "--", 2) == 0 && strchr(word, '='))
                snprintf(err, errlen, "option %.*s takes no value (see --help)",
                         (int)(strchr(word, '=') - word), word);
            else
                snprintf(err, errlen, "unknown option -%c (see --help)", optopt);
            return -1;
        }
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument \"%s\" (see --help)", argv[optind]);
        return -1;
    }
    return 0;
}

/* A flag's value through the same checks as the config file's. */
static int apply(struct conf *c, const char *flag, const char *name, const char *value, char *err,
                 size_t errlen) {
    char why[256];
    if (!value) return 0;
    if (conf_set(c, name, value, why, sizeof why) == 0) return 0;
    /* "workers: invalid value" reads better as "--workers: invalid value" */
    size_t n = strlen(name);
    const char *msg = strncmp(why, name, n) == 0 && why[n] == ':' ? why + n + 2 : why;
    snprintf(err, errlen, "%s: %s", flag, msg);
    return -1;
}

int cli_apply(const struct cli *cli, struct conf *c, char *err, size_t errlen) {
    if (cli->nlisten) {
        while (c->nlisten) free(c->listen[--c->nlisten]);
        for (size_t i = 0; i < cli->nlisten; i++)
            if (apply(c, "--listen", "listen", cli->listen[i], err, errlen) < 0) return -1;
    }
    if (apply(c, "--workers", "workers", cli->workers, err, errlen) < 0 ||
        apply(c, "--threads", "threads", cli->threads, err, errlen) < 0 ||
        apply(c, "--access-log", "access_log", cli->access_log, err, errlen) < 0 ||
        apply(c, "--error-log", "error_log", cli->error_log, err, errlen) < 0 ||
        apply(c, "--pid-file", "pid_file", cli->pid_file, err, errlen) < 0)
        return -1;
    if (cli->root) {
        char why[256];
        if (conf_set_root(c, cli->root, why, sizeof why) < 0) {
            snprintf(err, errlen, "--root: %s", why);
            return -1;
        }
    }
    return 0;
}

int cli_load_config(const struct cli *cli, struct conf *c, char *err, size_t errlen) {
    conf_init(c);
    if ((cli->config && conf_load_file(c, cli->config, err, errlen) < 0) ||
        cli_apply(cli, c, err, errlen) < 0 || conf_finish(c, err, errlen) < 0) {
        conf_free(c);
        return -1;
    }
    return 0;
}

static void print_setting(const char *name, const char *dflt, const char *doc, void *arg) {
    fprintf(arg, "  %-22s %-14s %s\n", name, dflt, doc);
}

void cli_usage(FILE *out) {
    fputs("Usage: preforkd [OPTION]...\n"
          "A pre-forking HTTP/1.1 server: a master process and one worker per CPU.\n"
          "\n"
          "  -c, --config FILE        read settings from FILE (INI)\n"
          "  -l, --listen ADDR        serve on ADDR: host:port, [v6]:port or unix:/path,\n"
          "                           then options: \"ADDR proxy_protocol\" (repeatable;\n"
          "                           replaces the config's listen lines)\n"
          "  -r, --root DIR           serve the files in DIR at /\n"
          "  -w, --workers N|auto     worker processes\n"
          "      --threads N          pool threads per worker\n"
          "      --access-log PATH|off\n"
          "      --error-log PATH\n"
          "      --pid-file PATH\n"
          "  -t, --check              validate the configuration and exit (0 ok, 2 bad)\n"
          "  -T                       validate, then print the effective configuration\n"
          "                           (every setting with its value, each route)\n"
          "  -s, --signal NAME        send reload, stop, quit, reopen, ttin or ttou to the\n"
          "                           running master (found through pid_file)\n"
          "  -v, --version            print the version\n"
          "  -V                       print the version, the commit and build it comes\n"
          "                           from, and the libraries it was built against and\n"
          "                           runs with\n"
          "  -h, --help               print this help\n"
          "\n"
          "Settings of the [server] section, with their defaults:\n",
          out);
    conf_describe(print_setting, out);
    fputs("\n[server] may also set header, cache_control, expires and cors: what each route\n"
          "that sets none of a kind takes (README, [route PATH]).\n",
          out);
    fputs("\nExit status: 0 ok, 1 runtime failure, 2 bad usage or configuration.\n", out);
}
