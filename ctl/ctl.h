/* ctl.h - heraldctl subcommands. Each command is a function taking the loaded configuration and
 * its own arguments (argv[0] is the command name) and returning the process exit code:
 *   0 success, 1 the thing asked for does not exist, 2 usage error, 3 a dependency is unavailable,
 *   4 some input lines were refused, the rest done (CTL_PARTIAL, in ctl/util.h).
 * Commands print a readable table by default and JSON with --json; errors are one line on stderr.
 */
#ifndef HERALD_DISPATCHER_CTL_H
#define HERALD_DISPATCHER_CTL_H

#include "config/config.h"

enum { CTL_OK = 0, CTL_NOTFOUND = 1, CTL_USAGE = 2, CTL_UNAVAILABLE = 3 };

typedef struct ctl_cmd {
    const char *name;    /* "push", "receipts", "tokens", "trace", ... */
    const char *summary; /* one line for `heraldctl --help` */
    int (*run)(const conf_t *conf, int argc, char **argv);
} ctl_cmd_t;

/* Command implementations live in the files of ctl/. */
int ctl_push(const conf_t *conf, int argc, char **argv);         /* expo.c */
int ctl_receipts(const conf_t *conf, int argc, char **argv);     /* expo.c */
int ctl_tokens(const conf_t *conf, int argc, char **argv);       /* tokens.c */
int ctl_diagnose(const conf_t *conf, int argc, char **argv);     /* diagnose.c */
int ctl_check_config(const conf_t *conf, int argc, char **argv); /* check.c */
int ctl_dlq(const conf_t *conf, int argc, char **argv);          /* dlq.c */
int ctl_trace(const conf_t *conf, int argc, char **argv);        /* trace.c */
int ctl_publish(const conf_t *conf, int argc, char **argv);      /* trace.c */

#endif
