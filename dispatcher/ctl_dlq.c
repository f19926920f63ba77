/* ctl_dlq.c - `heraldctl dlq replay`: re-publishes dead-lettered events to the topic named by
 * their `herald-source-topic` header. It needs the queue module's consumer and producer
 * (queue/replay.c); until that module is part of the build this command says so and exits 3. */
#include "dispatcher/ctl_util.h"

#include <string.h>

static const char USAGE[] =
    "usage: heraldctl dlq replay [--limit N] [--dry-run] [--json]\n"
    "Re-publishes DLQ records to their source topic (header herald-source-topic), with a count.\n";

int ctl_dlq(const conf_t *conf, int argc, char **argv)
{
    (void)conf;
    long limit = 0;
    bool dry = false, json = false;
    ctl_opt_t opts[] = {{"--limit", NULL, CTL_OPT_LONG, &limit, false},
                        {"--dry-run", "-n", CTL_OPT_FLAG, &dry, false},
                        {"--json", NULL, CTL_OPT_FLAG, &json, false},
                        {NULL, NULL, 0, NULL, false}};
    const char *pos[1];
    int npos = 0;
    int rc = ctl_parse(argc, argv, 1, opts, pos, 1, &npos, USAGE);
    if (rc)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    if (npos != 1 || strcmp(pos[0], "replay") != 0) {
        fputs(USAGE, stderr);
        return CTL_USAGE;
    }
    fprintf(stderr, "heraldctl: dlq replay is not available in this build (the queue module's "
                    "replay support is missing)\n");
    return CTL_UNAVAILABLE;
}
