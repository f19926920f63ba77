/* replay.c - DLQ replay for heraldctl (replay.h): a librdkafka consumer assigned to every
 * partition of the DLQ topics from the replay group's committed offsets, a producer that sends
 * each record back to its source topic, and a commit once everything was acknowledged. Blocking
 * calls with timeouts are fine here: this runs in heraldctl, never on herald's loop. */
#include "queue/replay.h"

#include "queue/consumer.h"

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct replay {
    const conf_t *conf;
    rd_kafka_t *cons, *prod;
    rd_kafka_topic_partition_list_t *parts; /* every DLQ partition, offsets = next to commit */
    long pending, failed;
    char bootstrap[1024];
} replay_t;

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk, (void)level, (void)fac, (void)buf;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    replay_t *r = opaque;
    r->pending--;
    if (m->err)
        r->failed++;
}

static rd_kafka_t *make_client(replay_t *r, rd_kafka_type_t type, char *err, size_t errlen)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    char ignored[256];
    rd_kafka_conf_set_log_cb(kc, quiet_log);
    rd_kafka_conf_set_opaque(kc, r);
    for (size_t i = 0; i < r->conf->nkafka; i++)
        rd_kafka_conf_set(kc, r->conf->kafka[i].key, r->conf->kafka[i].value, ignored,
                          sizeof ignored);
    char group[300];
    const char *g = conf_kafka_get(r->conf, "group.id");
    snprintf(group, sizeof group, "%s-dlq-replay", g ? g : "herald");
    rd_kafka_conf_set(kc, "bootstrap.servers", r->bootstrap, ignored, sizeof ignored);
    if (type == RD_KAFKA_CONSUMER) {
        rd_kafka_conf_set(kc, "group.id", group, ignored, sizeof ignored);
        rd_kafka_conf_set(kc, "enable.auto.commit", "false", ignored, sizeof ignored);
        rd_kafka_conf_set(kc, "enable.auto.offset.store", "false", ignored, sizeof ignored);
        rd_kafka_conf_set(kc, "enable.partition.eof", "true", ignored, sizeof ignored);
        rd_kafka_conf_set(kc, "auto.offset.reset", "earliest", ignored, sizeof ignored);
    } else {
        rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
        rd_kafka_conf_set(kc, "acks", "all", ignored, sizeof ignored);
    }
    rd_kafka_t *rk = rd_kafka_new(type, kc, err, errlen);
    if (rk == NULL)
        rd_kafka_conf_destroy(kc);
    return rk;
}

/* Adds every partition of topic (from metadata) to r->parts. */
static int add_topic(replay_t *r, const char *topic, long timeout_ms, char *err, size_t errlen)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(r->cons, topic, NULL);
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(r->cons, 0, t, &md, (int)timeout_ms);
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "kafka at %s: %s", r->bootstrap, rd_kafka_err2str(e));
        return -1;
    }
    int rc = 0;
    if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "DLQ topic %s: %s", topic,
                 md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "unknown");
        rc = -1;
    } else {
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
            rd_kafka_topic_partition_list_add(r->parts, topic, md->topics[0].partitions[i].id);
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

static int add_dlq_topics(replay_t *r, long timeout_ms, char *err, size_t errlen)
{
    if (r->conf->queue_dlq_topic && r->conf->queue_dlq_topic[0])
        return add_topic(r, r->conf->queue_dlq_topic, timeout_ms, err, errlen);
    for (const char *s = r->conf->queue_topics; *s;) {
        size_t n = strcspn(s, ",");
        char src[256], topic[300];
        snprintf(src, sizeof src, "%.*s", (int)n, s);
        queue_dlq_topic(NULL, src, topic, sizeof topic);
        if (n && add_topic(r, topic, timeout_ms, err, errlen) != 0)
            return -1;
        s += n + (s[n] == ',');
    }
    return 0;
}

static const char *header_str(rd_kafka_headers_t *hs, const char *name, char *out, size_t len)
{
    const void *v;
    size_t n;
    if (hs == NULL || rd_kafka_header_get_last(hs, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        v == NULL)
        return NULL;
    snprintf(out, len, "%.*s", (int)n, (const char *)v);
    return out;
}

/* The original headers without herald's DLQ ones, plus herald-replayed-from. */
static rd_kafka_headers_t *replay_headers(rd_kafka_headers_t *hs, const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *out = rd_kafka_headers_new(8);
    const char *name;
    const void *v;
    size_t n;
    for (size_t i = 0; hs && rd_kafka_header_get_all(hs, i, &name, &v, &n) == 0; i++)
        if (strncmp(name, "herald-dlq-", 11) != 0 && strncmp(name, "herald-source-", 14) != 0)
            rd_kafka_header_add(out, name, -1, v, (ssize_t)n);
    char from[400];
    snprintf(from, sizeof from, "%s/%d/%lld", rd_kafka_topic_name(m->rkt), (int)m->partition,
             (long long)m->offset);
    rd_kafka_header_add(out, "herald-replayed-from", -1, from, -1);
    return out;
}

/* A failed notification goes back as its original event, for its device alone. */
static rd_kafka_headers_t *notification_headers(const rd_kafka_message_t *m, const char *device)
{
    rd_kafka_headers_t *out = rd_kafka_headers_new(2);
    char from[400];
    snprintf(from, sizeof from, "%s/%d/%lld", rd_kafka_topic_name(m->rkt), (int)m->partition,
             (long long)m->offset);
    rd_kafka_header_add(out, QUEUE_REPLAY_DEVICE_HEADER, -1, device, -1);
    rd_kafka_header_add(out, "herald-replayed-from", -1, from, -1);
    return out;
}

/* The original event a failed notification's record carries (its "event" member) as compact
 * JSON (free()), or NULL when there is none. */
static char *original_event(const rd_kafka_message_t *m)
{
    json_t *v = json_loadb(m->payload, m->len, 0, NULL);
    json_t *ev = json_object_get(v, "event");
    char *s = json_is_object(ev) ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(v);
    return s;
}

static void produce(replay_t *r, const rd_kafka_message_t *m, const char *dest, const void *value,
                    size_t len, rd_kafka_headers_t *hdrs)
{
    rd_kafka_resp_err_t e = rd_kafka_producev(
        r->prod, RD_KAFKA_V_TOPIC(dest), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE((void *)(uintptr_t)value, len),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(hdrs);
        r->failed++;
    } else {
        r->pending++;
    }
    rd_kafka_poll(r->prod, 0);
}

static void handle(replay_t *r, rd_kafka_message_t *m, bool dry, queue_replay_cb cb, void *arg,
                   queue_replay_report_t *rep)
{
    rd_kafka_headers_t *hs = NULL;
    rd_kafka_message_headers(m, &hs);
    char dest[300], reason[100], device[200];
    queue_replay_rec_t rec = {
        .dlq = rd_kafka_topic_name(m->rkt),
        .partition = m->partition,
        .offset = m->offset,
        .dest = header_str(hs, "herald-source-topic", dest, sizeof dest),
        .reason = header_str(hs, "herald-dlq-reason", reason, sizeof reason),
        .device = header_str(hs, "herald-dlq-device", device, sizeof device),
    };
    rep->read++;
    rd_kafka_topic_partition_t *p =
        rd_kafka_topic_partition_list_find(r->parts, rd_kafka_topic_name(m->rkt), m->partition);
    if (p)
        p->offset = m->offset + 1;
    char *event = NULL;
    if (rec.dest == NULL) {
        rec.skipped = "no herald-source-topic header, so the topic to replay it to is unknown "
                      "(not written by herald); republish it by hand";
        rep->no_source++;
    } else if (rec.device && (event = original_event(m)) == NULL) {
        rec.skipped =
            "a failed notification without its original event (written by an older "
            "herald); republish the event by hand with the header " QUEUE_REPLAY_DEVICE_HEADER;
        rep->no_event++;
    }
    if (cb)
        cb(&rec, arg);
    if (rec.skipped == NULL) {
        rep->replayed++;
        if (!dry && event)
            produce(r, m, rec.dest, event, strlen(event), notification_headers(m, rec.device));
        else if (!dry)
            produce(r, m, rec.dest, m->payload, m->len, replay_headers(hs, m));
    }
    free(event);
}

/* Reads until every partition reached its end, the limit, or nothing came for timeout_ms. */
static void consume(replay_t *r, long limit, bool dry, long timeout_ms, queue_replay_cb cb,
                    void *arg, queue_replay_report_t *rep)
{
    int eof = 0;
    while (eof < r->parts->cnt && (limit == 0 || rep->read < limit)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->cons, (int)timeout_ms);
        if (m == NULL)
            break;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            eof++;
        else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            handle(r, m, dry, cb, arg, rep);
        rd_kafka_message_destroy(m);
    }
}

/* Committed offsets of the replay group (beginning when none) become the assignment. */
static int assign_from_committed(replay_t *r, long timeout_ms, char *err, size_t errlen)
{
    rd_kafka_resp_err_t e = rd_kafka_committed(r->cons, r->parts, (int)timeout_ms);
    if (e) {
        snprintf(err, errlen, "committed offsets: %s", rd_kafka_err2str(e));
        return -1;
    }
    for (int i = 0; i < r->parts->cnt; i++)
        if (r->parts->elems[i].offset < 0)
            r->parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    e = rd_kafka_assign(r->cons, r->parts);
    if (e) {
        snprintf(err, errlen, "assign: %s", rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

static int finish(replay_t *r, bool dry, long timeout_ms, queue_replay_report_t *rep, char *err,
                  size_t errlen)
{
    if (!dry) {
        rd_kafka_flush(r->prod, (int)timeout_ms * 5);
        r->failed += r->pending; /* not acknowledged in time */
        rep->failed = r->failed;
        rep->replayed -= r->failed;
    }
    if (dry || r->failed)
        return 0;
    rd_kafka_topic_partition_list_t *commit = rd_kafka_topic_partition_list_new(r->parts->cnt);
    for (int i = 0; i < r->parts->cnt; i++)
        if (r->parts->elems[i].offset >= 0)
            rd_kafka_topic_partition_list_add(commit, r->parts->elems[i].topic,
                                              r->parts->elems[i].partition)
                ->offset = r->parts->elems[i].offset;
    rd_kafka_resp_err_t e =
        commit->cnt ? rd_kafka_commit(r->cons, commit, 0) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(commit);
    if (e) {
        snprintf(err, errlen, "records replayed but the DLQ offsets were not committed: %s",
                 rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

int queue_dlq_replay(const conf_t *conf, long limit, bool dry_run, long timeout_ms,
                     queue_replay_cb cb, void *arg, queue_replay_report_t *rep, char *err,
                     size_t errlen)
{
    replay_t r = {.conf = conf};
    memset(rep, 0, sizeof *rep);
    if (queue_bootstrap_resolve(conf, r.bootstrap, sizeof r.bootstrap, err, errlen) != 0)
        return -1;
    int rc = -1;
    r.parts = rd_kafka_topic_partition_list_new(8);
    if ((r.cons = make_client(&r, RD_KAFKA_CONSUMER, err, errlen)) == NULL ||
        (r.prod = make_client(&r, RD_KAFKA_PRODUCER, err, errlen)) == NULL)
        goto done;
    if (add_dlq_topics(&r, timeout_ms, err, errlen) != 0 ||
        assign_from_committed(&r, timeout_ms, err, errlen) != 0)
        goto done;
    for (int i = 0; i < r.parts->cnt; i++)
        r.parts->elems[i].offset = -1; /* from here: next offset to commit, -1 = untouched */
    consume(&r, limit, dry_run, timeout_ms, cb, arg, rep);
    rc = finish(&r, dry_run, timeout_ms, rep, err, errlen);
done:
    if (r.cons) {
        rd_kafka_consumer_close(r.cons);
        rd_kafka_destroy(r.cons);
    }
    if (r.prod)
        rd_kafka_destroy(r.prod);
    rd_kafka_topic_partition_list_destroy(r.parts);
    return rc;
}
