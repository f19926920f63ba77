/* dlq.c - `heraldctl dlq replay`: re-publishes dead-lettered events to the topic named by
 * their herald-source-topic header, after the cause was fixed (queue/replay.h does the Kafka
 * work): an undecodable event as it was, a notification that failed for good as its original
 * event for its one device. Reports each record (and why one is not replayed) and the counts. */
#include "ctl/util.h"
#include "queue/replay.h"

#include <inttypes.h>
#include <string.h>

static const char USAGE[] =
    "usage: heraldctl dlq replay [--limit N] [--dry-run] [--timeout 5s] [--json]\n"
    "Re-publishes DLQ records (queue.dlq_topic, else <topic>.dlq) to their source topic\n"
    "(header herald-source-topic) from where the last replay stopped, and commits the DLQ\n"
    "offsets once every record was acknowledged. A notification that failed for good is sent\n"
    "again to its device alone, once. Records that cannot be replayed (no source topic, or a\n"
    "failed notification without its original event) are listed with the reason and skipped:\n"
    "exit 4. --dry-run only lists them.\n";

typedef struct dlq_out {
    bool json, dry;
} dlq_out_t;

static void on_record(const queue_replay_rec_t *r, void *arg)
{
    const dlq_out_t *o = arg;
    if (o->json) {
        buf_t b = BUF_INIT;
        ctl_json_open(&b, NULL, '{');
        ctl_json_str(&b, "dlq", r->dlq);
        ctl_json_int(&b, "partition", r->partition);
        ctl_json_int(&b, "offset", r->offset);
        ctl_json_str(&b, "to", r->dest);
        ctl_json_str(&b, "reason", r->reason);
        ctl_json_str(&b, "deviceId", r->device);
        ctl_json_str(&b, "skipped", r->skipped);
        ctl_json_close(&b, '}');
        ctl_json_print(&b, stdout);
        buf_cleanup(&b);
        return;
    }
    printf("%s/%d/%" PRId64 " (%s)", r->dlq, (int)r->partition, r->offset,
           r->reason ? r->reason : "?");
    if (r->skipped)
        printf(" skipped: %s\n", r->skipped);
    else if (r->device)
        printf(" -> %s, device %s only\n", r->dest, r->device);
    else
        printf(" -> %s\n", r->dest);
}

int ctl_dlq(const conf_t *conf, int argc, char **argv)
{
    long limit = 0;
    int64_t timeout = 5;
    dlq_out_t o = {0};
    ctl_opt_t opts[] = {{"--limit", NULL, CTL_OPT_LONG, &limit, false},
                        {"--dry-run", "-n", CTL_OPT_FLAG, &o.dry, false},
                        {"--timeout", NULL, CTL_OPT_DURATION, &timeout, false},
                        {"--json", NULL, CTL_OPT_FLAG, &o.json, false},
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
    queue_replay_report_t rep;
    char err[512];
    long tmo = timeout > 0 ? (long)timeout * 1000 : 1000;
    if (queue_dlq_replay(conf, limit, o.dry, tmo, on_record, &o, &rep, err, sizeof err) != 0) {
        fprintf(stderr, "heraldctl: %s\n", err);
        return CTL_UNAVAILABLE;
    }
    if (o.json) {
        buf_t b = BUF_INIT;
        ctl_json_open(&b, NULL, '{');
        ctl_json_open(&b, "summary", '{');
        ctl_json_bool(&b, "dryRun", o.dry);
        ctl_json_int(&b, "read", rep.read);
        ctl_json_int(&b, "replayed", rep.replayed);
        ctl_json_int(&b, "noSource", rep.no_source);
        ctl_json_int(&b, "noEvent", rep.no_event);
        ctl_json_int(&b, "failed", rep.failed);
        ctl_json_close(&b, '}');
        ctl_json_close(&b, '}');
        ctl_json_print(&b, stdout);
        buf_cleanup(&b);
    } else
        printf("%s %ld of %ld DLQ record(s); %ld without a source topic; %ld without the "
               "original event; %ld failed\n",
               o.dry ? "would replay" : "replayed", rep.replayed, rep.read, rep.no_source,
               rep.no_event, rep.failed);
    if (rep.failed)
        return CTL_UNAVAILABLE;
    return rep.no_source || rep.no_event ? CTL_PARTIAL : CTL_OK;
}
