/* main.c - the `herald` command line: options, configuration loading, then the daemon. */
#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "daemon/daemon.h"
#include "daemon/options.h"
#include "pipeline/templates.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static void usage(FILE *f)
{
    fprintf(
        f, "usage: herald [--config FILE] [--check-config] [--ready-file FILE]\n"
           "       herald --version | --help\n"
           "\n"
           "  -c, --config FILE      configuration file (key = value lines); HERALD_* environment\n"
           "                         variables override it (HERALD_CONFIG names the file too)\n"
           "      --check-config     validate the configuration, print it (secrets hidden), exit\n"
           "      --ready-file FILE  once listening, write {\"pid\",\"api_port\",\"admin_port\"} "
           "there\n"
           "  -V, --version          print the version\n"
           "  -h, --help             this text\n"
           "\n"
           "Signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads log level, rate limits and\n"
           "templates.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check-config", no_argument, NULL, 'k'},
                                         {"ready-file", required_argument, NULL, 'r'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = getenv("HERALD_CONFIG");
    const char *ready = NULL;
    int check = 0, ch;
    while ((ch = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'r':
            ready = optarg;
            break;
        case 'V':
            printf("herald %s\n", HERALD_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "herald: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    char err[1024];
    conf_t *conf;
    if (conf_load(&conf, path, environ, err, sizeof err) != 0) {
        fprintf(stderr, "herald: %s\n", err);
        return 1;
    }
    log_level_t lvl;
    if (log_level_parse(conf->log_level, &lvl) == 0)
        log_set_level(lvl);
    if (check) {
        /* The templates' values and payload budget are checked where they are built. */
        disp_templates_t *t = daemon_templates(conf, err, sizeof err);
        if (t == NULL) {
            fprintf(stderr, "herald: %s\n", err);
            conf_destroy(conf);
            return 1;
        }
        for (const char *w = disp_templates_warnings(t); *w;) {
            size_t n = strcspn(w, "\n");
            fprintf(stderr, "herald: warning: %.*s\n", (int)n, w);
            w += n + (w[n] == '\n');
        }
        disp_templates_destroy(t);
        buf_t b = BUF_INIT;
        conf_dump(conf, &b);
        fputs(buf_cstr(&b), stdout);
        printf("# configuration OK%s%s\n", path ? ": " : "", path ? path : "");
        buf_cleanup(&b);
        conf_destroy(conf);
        return 0;
    }
    disp_daemon_opts_t dopts = {ready, environ};
    disp_daemon_t *d = disp_daemon_create(conf, &dopts, err, sizeof err);
    if (d == NULL) {
        LOG(LOG_LVL_FATAL, "cannot start", LKS("error", err));
        return 1;
    }
    int rc = disp_daemon_run(d);
    disp_daemon_destroy(d);
    return rc;
}
