/* trace.c - `heraldctl trace` and `heraldctl publish`: read a job's delivery trace (what
 * happened to each device's notification, and why) through pipeline/trace.h, and produce a job
 * event to Kafka to test a deployment end to end. */
#include "core/clock.h"
#include "core/rand.h"
#include "core/xalloc.h"
#include "ctl/ctl.h"
#include "ctl/util.h"
#include "daemon/options.h"
#include "queue/consumer.h"
#include "queue/event.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char trace_usage[] =
    "usage: heraldctl trace (--job ID | --user ID [--device ID]) [--limit N] [--json]\n"
    "  --job ID     every record of one job (or batch) id\n"
    "  --user ID    the user's most recent jobs (newest first)\n"
    "  --device ID  with --user (device ids are per user): that device's most recent jobs, only\n"
    "               its records\n"
    "  --limit N    at most N jobs for --user (default 10)\n";

/* Details of one record: every member but the ones shown in their own column. */
static void details(json_t *rec, buf_t *out)
{
    const char *k;
    json_t *v;
    json_object_foreach(rec, k, v)
    {
        if (!strcmp(k, "ts") || !strcmp(k, "event") || !strcmp(k, "jobId") ||
            !strcmp(k, "userId") || !strcmp(k, "deviceId") || json_is_null(v))
            continue;
        char *s = json_is_string(v) ? xstrdup(json_string_value(v))
                                    : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        buf_printf(out, "%s%s=%s", out->len ? " " : "", k, s ? s : "");
        free(s);
    }
}

typedef struct job_out {
    ctl_env_t *e;
    const char *job;
    const char *device; /* only this device's records, or NULL */
    ctl_table_t *t;
    buf_t *json; /* the JSON array, or NULL for the table */
    size_t found;
} job_out_t;

/* Adds one job's records to the table or JSON array. */
static void on_records(int status, const char *const *recs, const size_t *lens, size_t n, void *arg)
{
    job_out_t *o = arg;
    for (size_t i = 0; status == 0 && i < n; i++) {
        json_t *rec = json_loadb(recs[i], lens[i], 0, NULL);
        const char *dev = json_string_value(json_object_get(rec, "deviceId"));
        if (rec == NULL || (o->device && (!dev || strcmp(dev, o->device) != 0))) {
            json_decref(rec);
            continue;
        }
        if (o->json) {
            ctl_json_raw(o->json, NULL, recs[i], lens[i]);
        } else {
            buf_t d = BUF_INIT;
            details(rec, &d);
            const char *row[] = {json_string_value(json_object_get(rec, "ts")), o->job,
                                 json_string_value(json_object_get(rec, "event")), dev,
                                 buf_cstr(&d)};
            ctl_table_row(o->t, row);
            buf_cleanup(&d);
        }
        json_decref(rec);
        o->found++;
    }
    ctl_env_done(o->e, status);
}

static size_t add_job(ctl_env_t *e, const char *job, const char *device, ctl_table_t *t,
                      buf_t *json)
{
    job_out_t o = {.e = e, .job = job, .device = device, .t = t, .json = json};
    ctl_env_begin(e);
    disp_trace_job(e->trace, job, on_records, &o);
    ctl_env_wait(e, 0);
    return o.found;
}

/* The records of the most recent jobs of a user, or of one of the user's devices (only that
 * device's records). */
static size_t add_recent(ctl_env_t *e, const char *user, const char *device, long limit,
                         ctl_table_t *t, buf_t *json)
{
    char **ids;
    size_t n = ctl_recent_jobs(e, user, device, limit, &ids), found = 0;
    for (size_t i = 0; i < n; i++) {
        if (!e->failure)
            found += add_job(e, ids[i], device, t, json);
        free(ids[i]);
    }
    free(ids);
    return found;
}

static int trace_run(ctl_env_t *e, const char *job, const char *user, const char *device,
                     long limit, bool as_json)
{
    static const char *const hdr[] = {"TIME", "JOB", "EVENT", "DEVICE", "DETAILS"};
    ctl_table_t t;
    buf_t json = BUF_INIT;
    ctl_table_init(&t, 5, hdr);
    if (as_json)
        ctl_json_open(&json, NULL, '[');
    size_t found = job ? add_job(e, job, NULL, &t, as_json ? &json : NULL)
                       : add_recent(e, user, device, limit, &t, as_json ? &json : NULL);
    if (e->failure) {
        ctl_table_cleanup(&t);
        buf_cleanup(&json);
        return ctl_unavailable(e, e->failure);
    }
    if (as_json) {
        ctl_json_close(&json, ']');
        ctl_json_print(&json, stdout);
    } else if (found) {
        ctl_table_print(&t, stdout);
    }
    ctl_table_cleanup(&t);
    buf_cleanup(&json);
    if (found == 0) {
        fprintf(stderr, "heraldctl trace: no trace found (traces are kept trace.ttl_s)\n");
        return CTL_NOTFOUND;
    }
    return CTL_OK;
}

int ctl_trace(const conf_t *conf, int argc, char **argv)
{
    const char *job = NULL, *user = NULL, *device = NULL;
    long limit = 10;
    bool as_json = false;
    ctl_opt_t opts[] = {{"--job", NULL, CTL_OPT_STR, &job, false},
                        {"--user", NULL, CTL_OPT_STR, &user, false},
                        {"--device", NULL, CTL_OPT_STR, &device, false},
                        {"--limit", NULL, CTL_OPT_LONG, &limit, false},
                        {"--json", NULL, CTL_OPT_FLAG, &as_json, false},
                        {NULL, NULL, CTL_OPT_FLAG, NULL, false}};
    int rc = ctl_parse(argc, argv, 1, opts, NULL, 0, NULL, trace_usage);
    if (rc != 0)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    if (device != NULL && user == NULL) {
        fprintf(stderr, "heraldctl trace: --device needs --user (device ids are per user)\n%s",
                trace_usage);
        return CTL_USAGE;
    }
    if ((job != NULL) + (user != NULL) != 1 || limit < 1 || limit > 1000) {
        fprintf(stderr, "heraldctl trace: give either --job or --user\n%s", trace_usage);
        return CTL_USAGE;
    }
    ctl_env_t e;
    if ((rc = ctl_env_open(&e, conf)) != CTL_OK)
        return rc;
    rc = trace_run(&e, job, user, device, limit, as_json);
    ctl_env_close(&e);
    return rc;
}

/* ---- publish -------------------------------------------------------------------------------- */

static const char publish_usage[] =
    "usage: heraldctl publish --user U --job J --status S [--batch] [--count N] [--error TEXT]\n"
    "                         [--sns] [--topic T] [--json]\n"
    "  Produces one PhotoEditor job event to the configured Kafka (queue.topics' first topic).\n"
    "  --status   QUEUED | PROCESSING | EDITING | COMPLETED | FAILED\n"
    "  --batch    a batch completion (batchJobId = J, completedCount = totalCount = N)\n"
    "  --error    data.error (the FAILED notification's body)\n"
    "  --sns      wrap it in the SNS Notification envelope SQS subscribers receive\n";

typedef struct pub_state {
    bool done;
    queue_delivery_t dr;
    char error[256];
    char topic[256];
} pub_state_t;

static void on_delivered(const queue_delivery_t *dr, void *arg)
{
    pub_state_t *s = arg;
    s->dr = *dr;
    snprintf(s->error, sizeof s->error, "%s", dr->error ? dr->error : "");
    s->done = true;
}

static void event_json(buf_t *b, const char *user, const char *job, const char *status, bool batch,
                       long count, const char *error)
{
    char ts[40];
    clk_iso8601_ms(clk_wall_ms(), ts, sizeof ts);
    json_t *o = json_object();
    json_object_set_new(o, batch ? "batchJobId" : "jobId", json_string(job));
    json_object_set_new(o, "userId", json_string(user));
    json_object_set_new(o, "status", json_string(status));
    json_object_set_new(o, "message", json_string("published by heraldctl"));
    json_object_set_new(o, "timestamp", json_string(ts));
    if (batch) {
        json_object_set_new(o, "completedCount", json_integer(count));
        json_object_set_new(o, "totalCount", json_integer(count));
    }
    json_t *data = json_object();
    json_object_set_new(data, "error", error ? json_string(error) : json_null());
    json_object_set_new(o, "data", data);
    char *s = json_dumps(o, JSON_COMPACT);
    buf_puts(b, s);
    free(s);
    json_decref(o);
}

static void sns_wrap(buf_t *b, const char *inner, const char *user, const char *job,
                     const char *status)
{
    char id[40], ts[40];
    rand_hex(id, 16);
    clk_iso8601_ms(clk_wall_ms(), ts, sizeof ts);
    json_t *o = json_object();
    json_object_set_new(o, "Type", json_string("Notification"));
    json_object_set_new(o, "MessageId", json_string(id));
    json_object_set_new(
        o, "TopicArn", json_string("arn:aws:sns:us-east-1:000000000000:photoeditor-notifications"));
    json_object_set_new(o, "Message", json_string(inner));
    json_object_set_new(o, "Timestamp", json_string(ts));
    json_t *attrs = json_object();
    const char *names[] = {"userId", "jobId", "status"}, *vals[] = {user, job, status};
    for (int i = 0; i < 3; i++)
        json_object_set_new(attrs, names[i],
                            json_pack("{s:s,s:s}", "Type", "String", "Value", vals[i]));
    json_object_set_new(o, "MessageAttributes", attrs);
    char *s = json_dumps(o, JSON_COMPACT);
    buf_puts(b, s);
    free(s);
    json_decref(o);
}

static int publish_send(const conf_t *conf, const char *topic, const buf_t *value, const char *key,
                        bool as_json)
{
    char err[512];
    uv_loop_t loop;
    uv_loop_init(&loop);
    queue_kafka_opts_t ko;
    daemon_kafka_opts(conf, &ko);
    queue_producer_t *p = queue_producer_create(&loop, &ko, NULL, err, sizeof err);
    if (p == NULL) {
        fprintf(stderr, "heraldctl publish: kafka unavailable: %s\n", err);
        uv_loop_close(&loop);
        return CTL_UNAVAILABLE;
    }
    pub_state_t s = {0};
    snprintf(s.topic, sizeof s.topic, "%s", topic);
    int rc = queue_produce(p, topic, key, strlen(key), value->data, value->len, NULL, 0,
                           on_delivered, &s);
    uint64_t deadline = clk_mono_ms() + 15000;
    while (rc == 0 && !s.done && clk_mono_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    queue_producer_destroy(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (rc != 0 || !s.done || s.dr.status != QUEUE_OK) {
        fprintf(stderr, "heraldctl publish: kafka unavailable: %s\n",
                rc != 0  ? queue_strerror(rc)
                : s.done ? s.error
                         : "no acknowledgement in 15 s");
        return CTL_UNAVAILABLE;
    }
    if (as_json) {
        buf_t b = BUF_INIT;
        ctl_json_open(&b, NULL, '{');
        ctl_json_str(&b, "topic", topic);
        ctl_json_int(&b, "partition", s.dr.partition);
        ctl_json_int(&b, "offset", s.dr.offset);
        ctl_json_raw(&b, "value", value->data, value->len);
        ctl_json_close(&b, '}');
        ctl_json_print(&b, stdout);
        buf_cleanup(&b);
    } else
        printf("published to %s [partition %d, offset %lld]\n%s\n", topic, (int)s.dr.partition,
               (long long)s.dr.offset, buf_cstr(value));
    return CTL_OK;
}

int ctl_publish(const conf_t *conf, int argc, char **argv)
{
    const char *user = NULL, *job = NULL, *status = NULL, *error = NULL, *topic = NULL;
    bool sns = false, batch = false, as_json = false;
    long count = 1;
    ctl_opt_t opts[] = {{"--user", NULL, CTL_OPT_STR, &user, false},
                        {"--job", NULL, CTL_OPT_STR, &job, false},
                        {"--status", NULL, CTL_OPT_STR, &status, false},
                        {"--error", NULL, CTL_OPT_STR, &error, false},
                        {"--topic", NULL, CTL_OPT_STR, &topic, false},
                        {"--sns", NULL, CTL_OPT_FLAG, &sns, false},
                        {"--batch", NULL, CTL_OPT_FLAG, &batch, false},
                        {"--count", NULL, CTL_OPT_LONG, &count, false},
                        {"--json", NULL, CTL_OPT_FLAG, &as_json, false},
                        {NULL, NULL, CTL_OPT_FLAG, NULL, false}};
    int rc = ctl_parse(argc, argv, 1, opts, NULL, 0, NULL, publish_usage);
    if (rc != 0)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    queue_status_t st;
    if (!user || !job || !status || queue_status_parse(status, &st) != 0 || count < 0 ||
        strlen(user) > QUEUE_ID_MAX || strlen(job) > QUEUE_ID_MAX) {
        fprintf(stderr, "heraldctl publish: --user, --job and a valid --status are required\n%s",
                publish_usage);
        return CTL_USAGE;
    }
    char first[256];
    if (topic == NULL) {
        snprintf(first, sizeof first, "%.*s", (int)strcspn(conf->queue_topics, ", "),
                 conf->queue_topics);
        topic = first;
    }
    buf_t inner = BUF_INIT, value = BUF_INIT;
    event_json(&inner, user, job, status, batch, count, error);
    if (sns)
        sns_wrap(&value, buf_cstr(&inner), user, job, status);
    else
        buf_puts(&value, buf_cstr(&inner));
    rc = publish_send(conf, topic, &value, user, as_json);
    buf_cleanup(&inner);
    buf_cleanup(&value);
    return rc;
}
