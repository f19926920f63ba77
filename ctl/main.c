/* main.c (heraldctl) - the operations tool: loads the same configuration as herald (--config FILE
 * or HERALD_CONFIG, then HERALD_* overrides) and runs one command from the table below. Adding a
 * command is one row here plus its file in ctl/. Exit codes are ctl.h's (and CTL_PARTIAL). */
#include "core/log.h"
#include "ctl/ctl.h"
#include "ctl/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static const ctl_cmd_t commands[] = {
    {"tokens",
     "query and maintain device tokens (list get find count deactivate delete sweep "
     "cleanup export import)",
     ctl_tokens},
    {"diagnose", "would each device of a user receive a notification now, and if not why",
     ctl_diagnose},
    {"check-config", "validate the configuration and reach Redis, Kafka and Expo",
     ctl_check_config},
    {"dlq", "re-publish dead-lettered events to their source topic (dlq replay)", ctl_dlq},
    {"trace", "what happened to a job's notifications (--job, or --user [--device])", ctl_trace},
    {"publish", "produce a job event to Kafka to test a deployment end to end", ctl_publish},
    {"push", "send one test notification to a token and print the ticket (and receipt)", ctl_push},
    {"receipts", "pending push receipt checks (count, oldest due)", ctl_receipts},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: heraldctl [--config FILE] COMMAND [ARGS...]\n"
               "       heraldctl COMMAND --help\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nThe configuration is herald's: --config FILE (or HERALD_CONFIG), then HERALD_* "
               "variables.\n"
               "Exit codes: 0 ok, 1 not found, 2 usage or invalid config, 3 a dependency is "
               "unavailable,\n"
               "            4 completed but some input lines were refused (listed on stderr).\n");
}

static const ctl_cmd_t *find_cmd(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    const char *path = getenv("HERALD_CONFIG");
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CTL_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("heraldctl %s\n", HERALD_VERSION);
            return CTL_OK;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path = argv[i] + 9;
        } else {
            fprintf(stderr, "heraldctl: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return CTL_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return CTL_USAGE;
    }
    const ctl_cmd_t *cmd = find_cmd(argv[i]);
    if (cmd == NULL) {
        fprintf(stderr, "heraldctl: unknown command '%s'\n", argv[i]);
        usage(stderr);
        return CTL_USAGE;
    }
    conf_t *conf = NULL;
    char err[512];
    if (conf_load(&conf, path && path[0] ? path : NULL, environ, err, sizeof err) != 0) {
        fprintf(stderr, "heraldctl: invalid configuration: %s\n", err);
        return CTL_USAGE;
    }
    log_set_level(LOG_LVL_ERROR); /* reasons are printed by the commands themselves */
    int rc = cmd->run(conf, argc - i, argv + i);
    conf_destroy(conf);
    return rc;
}
