/* daemon.h - the herald process: builds every module from the configuration, wires them on one
 * libuv loop, and runs until SIGTERM/SIGINT (graceful) with SIGHUP reloading what can change. */
#ifndef HERALD_DISPATCHER_DAEMON_H
#define HERALD_DISPATCHER_DAEMON_H

#include "config/config.h"

typedef struct disp_daemon disp_daemon_t;

typedef struct disp_daemon_opts {
    const char *ready_file; /* when set, JSON with the bound addresses is written there once up */
    char *const *envp;      /* for SIGHUP reloads (HERALD_* overrides) */
} disp_daemon_opts_t;

/* new: everything created and listening. conf is taken (freed by destroy). NULL + err. */
disp_daemon_t *disp_daemon_create(conf_t *conf, const disp_daemon_opts_t *opts, char *err,
                                  size_t errlen);
/* Runs the loop until shutdown completes; returns the process exit code. */
int disp_daemon_run(disp_daemon_t *d);
void disp_daemon_destroy(disp_daemon_t *d);

#endif
