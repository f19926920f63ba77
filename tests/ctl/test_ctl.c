/* test_ctl.c - heraldctl end to end: the built binary against a real redis-server, every command
 * and exit code, the 200,000-token export -> wipe -> import round trip, sweep and cleanup with
 * index consistency, and two concurrent sweeps that must not double-count. */
#include "tests/ctl/ctl_seed.h"

#include "config/config.h"
#include "core/clock.h"
#include "queue/embedded.h"

#include <librdkafka/rdkafka.h>

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

static th_redis_t rs;
static char dir[256], conf[320];

static int group_setup(void **state)
{
    *state = &rs;
    if (th_redis_start(&rs, 0) != 0 || th_tmpdir(dir, sizeof dir) != 0)
        return -1;
    seed_conf(dir, rs.url, "expo.url = http://127.0.0.1:1", conf, sizeof conf);
    return 0;
}

static buf_t out, err;
/* Runs heraldctl with this group's config; out/err are kept for assertions. */
#define ctl(...) run_ctlf(conf, &out, &err, __VA_ARGS__)

/* Shapes used by several tests: i % 5 == 0 expired, 1 inactive for 40 days (DeviceNotRegistered),
 * 2 inactive for 5 days, others active. */
static void mixed_shape(long i, tok_record_t *r, int64_t now, void *arg)
{
    (void)arg;
    switch (i % 5) {
    case 0:
        r->expires_at = now - 3600 - i % 100;
        break;
    case 1:
        r->active = false;
        snprintf(r->deactivated_reason, sizeof r->deactivated_reason, "DeviceNotRegistered");
        r->deactivated_at = now - 40 * 86400;
        break;
    case 2:
        r->active = false;
        snprintf(r->deactivated_reason, sizeof r->deactivated_reason, "user");
        r->deactivated_at = now - 5 * 86400;
        break;
    default:
        break;
    }
}

/* ---- usage and availability ---- */

static void test_usage_codes(void **state)
{
    (void)state;
    assert_int_equal(ctl("--help"), 0);
    assert_true(out_has(&out, "tokens"));
    assert_int_equal(ctl(" "), 2);
    assert_int_equal(ctl("nosuchcommand"), 2);
    assert_int_equal(ctl("tokens"), 2);
    assert_int_equal(ctl("tokens frobnicate"), 2);
    assert_int_equal(ctl("tokens list"), 2);
    assert_int_equal(ctl("tokens list --user"), 2);
    assert_int_equal(ctl("tokens list --user u1 --bogus"), 2);
    assert_int_equal(ctl("tokens get --user u1"), 2);
    assert_int_equal(ctl("tokens count --active --expired"), 2);
    assert_int_equal(ctl("tokens cleanup --inactive-older-than 30x"), 2);
    assert_int_equal(ctl("tokens find --token not-a-token"), 2);
    assert_int_equal(ctl("tokens list --help"), 0);
    assert_true(out_has(&out, "usage: heraldctl tokens list"));
    assert_int_equal(ctl("diagnose"), 2);
    assert_int_equal(ctl("dlq"), 2);
    /* An invalid configuration is a usage error with file:line. */
    char bad[400];
    snprintf(bad, sizeof bad, "%s/bad.conf", dir);
    FILE *f = fopen(bad, "w");
    fputs("redis.url = redis://127.0.0.1:1/0\nno.such.key = 1\n", f);
    fclose(f);
    buf_reset(&err);
    assert_int_equal(run_ctl(bad, NULL, &err, "tokens count"), 2);
    assert_true(out_has(&err, "bad.conf:2"));
}

static void test_unavailable(void **state)
{
    (void)state;
    char down[400], url[64];
    int port = th_free_port(); /* nobody listens there */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    char d2[256];
    assert_int_equal(th_tmpdir(d2, sizeof d2), 0);
    seed_conf(d2, url, "redis.timeout_ms = 200", down, sizeof down);
    buf_reset(&err);
    assert_int_equal(run_ctl(down, NULL, &err, "tokens count"), 3);
    assert_true(out_has(&err, "redis unavailable at redis://127.0.0.1:"));
    assert_int_equal(run_ctl(down, NULL, NULL, "tokens list --user u1"), 3);
    assert_int_equal(run_ctl(down, NULL, NULL, "diagnose --user u1"), 3);
    assert_int_equal(run_ctl(down, NULL, NULL, "tokens import -i /dev/null"), 3);
}

/* ---- check-config ---- */

static void test_check_config(void **state)
{
    (void)state;
    /* Expo: a real HTTP server on loopback; Kafka: librdkafka's in-client mock cluster. */
    th_proc_t http;
    int hport = th_free_port();
    char portbuf[16], d2[256], c2[400], extra[400], logp[300];
    snprintf(portbuf, sizeof portbuf, "%d", hport);
    assert_int_equal(th_tmpdir(d2, sizeof d2), 0);
    snprintf(logp, sizeof logp, "%s/http.log", d2);
    char *argv[] = {"python3", "-m", "http.server", "--bind", "127.0.0.1", portbuf, NULL};
    assert_int_equal(th_spawn(&http, "http", argv, NULL, logp), 0);
    assert_true(th_wait_port(hport, 10000));
    snprintf(extra, sizeof extra,
             "expo.url = http://127.0.0.1:%d\nkafka.embedded = false\n"
             "kafka.bootstrap.servers = mock:9092\nkafka.test.mock.num.brokers = 1\n",
             hport);
    seed_conf(d2, rs.url, extra, c2, sizeof c2);
    buf_reset(&out);
    assert_int_equal(run_ctl(c2, &out, NULL, "check-config --timeout 5s"), 0);
    assert_true(out_has(&out, "redis   ok"));
    assert_true(out_has(&out, "kafka   WARN  1 broker(s) answered, but topic job-events"));
    assert_true(out_has(&out, "expo    ok    http://127.0.0.1:"));
    th_stop(&http, SIGTERM, 5000);
    /* Expo down now, Kafka unreachable: exit 3 with a verdict per dependency. */
    snprintf(extra, sizeof extra,
             "expo.url = http://127.0.0.1:%d\nkafka.embedded = false\n"
             "kafka.bootstrap.servers = 127.0.0.1:%d\n",
             hport, th_free_port());
    seed_conf(d2, rs.url, extra, c2, sizeof c2);
    buf_reset(&out);
    assert_int_equal(run_ctl(c2, &out, NULL, "check-config --timeout 1s --json"), 3);
    json_t *j = json_loads(out.data, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "redis"), "state")),
                        "ok");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "kafka"), "state")),
                        "FAIL");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "expo"), "state")),
                        "FAIL");
    json_decref(j);
    /* The embedded broker lives in a running herald: none runs here. */
    assert_int_equal(ctl("check-config --timeout 1s"), 3); /* expo.url is a closed port */
    assert_true(out_has(&out, "kafka   WARN  kafka.embedded = true"));
}

/* ---- dlq replay ---- */

/* A failed notification's DLQ record as herald writes it, the same as an older herald wrote it
 * (without the original event), and the event a replay must publish. */
#define DLQ_EVENT                                                                                  \
    "{\"batchJobId\":\"b-7\",\"userId\":\"u7\",\"status\":\"COMPLETED\",\"completedCount\":4,"     \
    "\"totalCount\":4,\"data\":{\"error\":\"one was too dark\"}}"
#define DLQ_RECORD_OLD                                                                             \
    "{\"kind\":\"notification\",\"jobId\":\"b-7\",\"userId\":\"u7\",\"deviceId\":\"d7\","          \
    "\"expoPushToken\":\"ExponentPushToken[x]\",\"status\":\"COMPLETED\","                         \
    "\"idempotencyKey\":\"b-7:COMPLETED\",\"error\":\"UNAUTHORIZED\",\"attempts\":1"
#define DLQ_RECORD DLQ_RECORD_OLD ",\"event\":" DLQ_EVENT "}"
#define DLQ_RECORD_OLD_WHOLE DLQ_RECORD_OLD "}"

static rd_kafka_t *kclient(rd_kafka_type_t type, const char *bootstrap)
{
    char e[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, e, sizeof e);
    if (type == RD_KAFKA_CONSUMER) {
        rd_kafka_conf_set(kc, "group.id", "test-reader", e, sizeof e);
        rd_kafka_conf_set(kc, "enable.partition.eof", "true", e, sizeof e);
    }
    rd_kafka_t *rk = rd_kafka_new(type, kc, e, sizeof e);
    assert_non_null(rk);
    return rk;
}

/* Reads every partition of topic from the beginning; counts records with the replay header.
 * A replayed failed notification must be its original event for its one device. */
static int count_replayed(const char *bootstrap, const char *topic, int *notifications)
{
    rd_kafka_t *c = kclient(RD_KAFKA_CONSUMER, bootstrap);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    for (int p = 0; p < QUEUE_EMBEDDED_PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, l);
    int eof = 0, n = 0;
    *notifications = 0;
    while (eof < QUEUE_EMBEDDED_PARTITIONS) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 10000);
        assert_non_null(m);
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eof++;
        } else if (m->err == 0) {
            rd_kafka_headers_t *hs = NULL;
            const void *v;
            size_t len;
            if (rd_kafka_message_headers(m, &hs) == 0 &&
                rd_kafka_header_get_last(hs, "herald-replayed-from", &v, &len) == 0)
                n++;
            assert_true(hs == NULL ||
                        rd_kafka_header_get_last(hs, "herald-dlq-reason", &v, &len) != 0);
            if (hs && rd_kafka_header_get_last(hs, "herald-replay-device", &v, &len) == 0) {
                assert_int_equal(len, 2);
                assert_memory_equal(v, "d7", 2);
                assert_int_equal(m->len, strlen(DLQ_EVENT));
                assert_memory_equal(m->payload, DLQ_EVENT, m->len);
                (*notifications)++;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return n;
}

/* Issue 10 item 2: heraldctl dlq replay skipped records without a source topic silently (exit
 * 0), and replayed a failed notification's record as a plain job event. Now it sends the
 * original event for the failed device alone, and explains every record it does not replay. */
static void test_dlq_replay(void **state)
{
    (void)state;
    char d2[256], c2[400], extra[400], err2[256];
    assert_int_equal(th_tmpdir(d2, sizeof d2), 0);
    snprintf(extra, sizeof extra, "runtime.dir = %s\nexpo.url = http://127.0.0.1:1\n", d2);
    seed_conf(d2, rs.url, extra, c2, sizeof c2);
    conf_t *kc = NULL;
    assert_int_equal(conf_load(&kc, c2, NULL, err2, sizeof err2), 0);
    queue_embedded_t *emb = queue_embedded_start(kc, 1, err2, sizeof err2);
    assert_non_null(emb);
    const char *bs = queue_embedded_bootstrap(emb);
    rd_kafka_t *p = kclient(RD_KAFKA_PRODUCER, bs);
    /* Two undecodable events, one record without a source topic, then two failed notifications:
     * one carrying its original event, one without (as an older herald wrote them). */
    for (int i = 0; i < 5; i++) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(4);
        const char *value = "{\"jobId\":1}";
        rd_kafka_header_add(h, "herald-dlq-reason", -1, i < 3 ? "invalid_json" : "UNAUTHORIZED",
                            -1);
        if (i != 2)
            rd_kafka_header_add(h, "herald-source-topic", -1, "job-events", -1);
        if (i < 3) {
            rd_kafka_header_add(h, "traceparent", -1, "00-abc-def-01", -1);
        } else {
            rd_kafka_header_add(h, "herald-dlq-device", -1, "d7", -1);
            value = i == 3 ? DLQ_RECORD : DLQ_RECORD_OLD_WHOLE;
        }
        assert_int_equal(
            rd_kafka_producev(p, RD_KAFKA_V_TOPIC("job-events.dlq"), RD_KAFKA_V_PARTITION(i % 2),
                              RD_KAFKA_V_VALUE((void *)(uintptr_t)value, strlen(value)),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                              RD_KAFKA_V_END),
            0);
    }
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
    rd_kafka_destroy(p);

    int notif = 0;
    buf_reset(&out);
    assert_int_equal(run_ctl(c2, &out, NULL, "dlq replay --dry-run"), 4); /* partial */
    assert_true(out_has(&out, "would replay 3 of 5 DLQ record(s); 1 without a source topic; 1 "
                              "without the original event"));
    assert_true(out_has(&out, "skipped: no herald-source-topic header"));
    assert_int_equal(count_replayed(bs, "job-events", &notif), 0);
    buf_reset(&out);
    assert_int_equal(run_ctl(c2, &out, NULL, "dlq replay"), 4);
    assert_true(out_has(&out, "replayed 3 of 5 DLQ record(s)"));
    assert_true(out_has(&out, "(invalid_json) -> job-events"));
    assert_true(out_has(&out, "(UNAUTHORIZED) -> job-events, device d7 only"));
    assert_true(out_has(&out, "(UNAUTHORIZED) skipped: a failed notification without its original "
                              "event"));
    assert_int_equal(count_replayed(bs, "job-events", &notif), 3);
    assert_int_equal(notif, 1);
    /* Committed: a second replay finds nothing new. */
    buf_reset(&out);
    assert_int_equal(run_ctl(c2, &out, NULL, "dlq replay --json"), 0);
    assert_true(out_has(&out, "\"read\":0,\"replayed\":0"));
    /* check-config finds the embedded broker through the runtime dir. */
    buf_reset(&out);
    assert_int_equal(run_ctl(c2, &out, NULL, "check-config --timeout 5s"), 3); /* expo down */
    assert_true(out_has(&out, "kafka   ok    1 broker(s)"));
    queue_embedded_destroy(emb);
    conf_destroy(kc);
    /* No broker any more: unavailable. */
    assert_int_equal(run_ctl(c2, NULL, NULL, "dlq replay --timeout 1s"), 3);
}

/* ---- queries ---- */

static void test_list_get_find_count(void **state)
{
    (void)state;
    int64_t now = seed_now();
    assert_int_equal(seed_records(&rs, 10, 5, now, mixed_shape, NULL), 0);
    assert_int_equal(ctl("tokens list --user u0"), 0);
    assert_true(out_has(&out, "DEVICE"));
    assert_true(out_has(&out, "ExponentPushToken[t3]"));
    assert_true(out_has(&out, "DeviceNotRegistered at"));
    assert_int_equal(ctl("tokens list --user u0 --json"), 0);
    json_t *j = json_loads(out.data, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "devices")), 5);
    json_decref(j);
    assert_int_equal(ctl("tokens list --user nobody"), 1);

    assert_int_equal(ctl("tokens get --user u0 --device d1"), 0);
    assert_true(out_has(&out, "inactive"));
    assert_int_equal(ctl("tokens get --user u0 --device d1 --json"), 0);
    j = json_loads(out.data, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "deactivatedReason")),
                        "DeviceNotRegistered");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "inactive");
    json_decref(j);
    assert_int_equal(ctl("tokens get --user u0 --device d9"), 1);

    assert_int_equal(ctl("tokens find --token 'ExponentPushToken[t7]'"), 0);
    assert_true(out_has(&out, "userId         u1"));
    assert_true(out_has(&out, "deviceId       d2"));
    assert_int_equal(ctl("tokens find --token 'ExponentPushToken[zzz]'"), 1);

    /* 10 records: i%5==0 expired (2), 1,2 inactive (4), 3,4 active (4). */
    assert_int_equal(ctl("tokens count --json"), 0);
    assert_true(
        out_has(&out, "\"active\":4,\"inactive\":4,\"expired\":2,\"corrupt\":0,\"total\":10"));
    assert_int_equal(ctl("tokens count --active"), 0);
    assert_string_equal(out.data, "4\n");
    assert_int_equal(ctl("tokens count --expired"), 0);
    assert_string_equal(out.data, "2\n");
    assert_int_equal(ctl("tokens count --inactive"), 0);
    assert_string_equal(out.data, "4\n");
}

/* ---- deactivate ---- */

static void test_deactivate(void **state)
{
    (void)state;
    assert_int_equal(seed_records(&rs, 6, 3, seed_now(), NULL, NULL), 0);
    assert_int_equal(ctl("tokens deactivate --user u0 --device d0 --dry-run"), 0);
    assert_true(out_has(&out, "would deactivate"));
    assert_int_equal(ctl("tokens get --user u0 --device d0 --json"), 0);
    assert_true(out_has(&out, "\"isActive\":true"));

    assert_int_equal(ctl("tokens deactivate --user u0 --device d0"), 0);
    assert_true(out_has(&out, "deactivated"));
    assert_int_equal(ctl("tokens get --user u0 --device d0 --json"), 0);
    assert_true(out_has(&out, "\"isActive\":false"));
    assert_true(out_has(&out, "\"deactivatedReason\":\"admin\""));
    assert_int_equal(ctl("tokens deactivate --user u0 --device d0"), 0);
    assert_true(out_has(&out, "already inactive"));
    assert_int_equal(ctl("tokens deactivate --user u0 --device nope"), 1);
    assert_true(out_has(&out, "not found"));

    char path[400];
    snprintf(path, sizeof path, "%s/deact.txt", dir);
    FILE *f = fopen(path, "w");
    fputs("# bulk\nu0 d1\n{\"userId\":\"u1\",\"deviceId\":\"d0\"}\n\nu9 d9\nonly-one-field\n"
          "u1 d1 extra\nu0 d0\n",
          f);
    fclose(f);
    assert_int_equal(ctl("tokens deactivate --file %s", path), 4);
    assert_true(out_has(&out, "line 2: u0 d1: deactivated"));
    assert_true(out_has(&out, "line 3: u1 d0: deactivated"));
    assert_true(out_has(&out, "line 5: u9 d9: not found"));
    assert_true(out_has(&out, "line 8: u0 d0: already inactive"));
    assert_true(out_has(&err, "line 6: rejected"));
    assert_true(out_has(&err, "line 7: rejected"));
    assert_int_equal(ctl("tokens count --inactive"), 0);
    assert_string_equal(out.data, "3\n");
    assert_int_equal(ctl("tokens deactivate --file %s --json --dry-run", path), 4);
    assert_true(out_has(
        &out, "{\"line\":5,\"userId\":\"u9\",\"deviceId\":\"d9\",\"result\":\"not found\"}"));
    /* Deactivation keeps the indexes. */
    assert_int_equal(check_indexes(&rs), 0);
}

/* A trace record of user's job (status COMPLETED) as herald keeps it (pipeline/trace.h): field
 * t:<seq> of the (user, event) ledger entry, the entry named in the job index. */
static void seed_record(const char *user, const char *job, int seq, const char *rec)
{
    free(th_redis_cmd(&rs, "HSET herald:led:%d:{%s}:%s:COMPLETED t:%019d %s", (int)strlen(user),
                      user, job, seq, rec));
    free(th_redis_cmd(&rs, "SADD herald:job:%s %s\x1f%s:COMPLETED", job, user, job));
}

/* ---- delete ---- */

static void test_delete(void **state)
{
    (void)state;
    assert_int_equal(seed_records(&rs, 8, 4, seed_now(), NULL, NULL), 0);
    free(th_redis_cmd(&rs, "ZADD herald:trace:u:{u0} 1 job-a 2 job-b"));
    seed_record("u0", "job-a", 1, "{\"event\":\"received\"}");
    seed_record("u0", "job-b", 1, "{\"event\":\"received\"}");
    free(th_redis_cmd(&rs, "ZADD herald:trace:d:2:{u0}:d3 1 job-a"));
    free(th_redis_cmd(&rs, "ZADD herald:trace:d:2:{u1}:d3 1 job-c")); /* u1's own d3 */

    assert_int_equal(ctl("tokens delete --user u0 --device d1 --dry-run"), 0);
    assert_true(out_has(&out, "would delete u0/d1"));
    assert_int_equal(redis_int(&rs, "HLEN herald:dev:{u0}"), 4);

    assert_int_equal(ctl("tokens delete --user u0 --device d1"), 0);
    assert_int_equal(redis_int(&rs, "HLEN herald:dev:{u0}"), 3);
    assert_int_equal(seed_owner_exists(&rs, "ExponentPushToken[t1]"), 0);
    assert_int_equal(redis_int(&rs, SEED_EXPIRY_COUNT), 7);
    assert_int_equal(ctl("tokens delete --user u0 --device d1"), 1);

    assert_int_equal(ctl("tokens delete --user u0 --json"), 0);
    assert_true(out_has(&out, "\"deviceId\":\"d3\""));
    assert_int_equal(redis_int(&rs, "EXISTS herald:dev:{u0}"), 0);
    assert_int_equal(redis_int(&rs, SEED_EXPIRY_COUNT), 4);
    assert_int_equal(redis_int(&rs, "EXISTS herald:trace:u:{u0} herald:led:2:{u0}:job-a:COMPLETED "
                                    "herald:led:2:{u0}:job-b:COMPLETED herald:job:job-a "
                                    "herald:job:job-b herald:trace:d:2:{u0}:d3"),
                     0);
    assert_int_equal(redis_int(&rs, "EXISTS herald:trace:d:2:{u1}:d3"), 1);
    /* A device's trace is read as its user's. */
    seed_record("u1", "job-c", 1, "{\"event\":\"ticket\",\"deviceId\":\"d3\"}");
    assert_int_equal(ctl("trace --user u1 --device d3"), 0);
    assert_true(out_has(&out, "job-c"));
    assert_int_equal(ctl("trace --device d3"), 2);
    assert_true(out_has(&err, "--device needs --user"));
    assert_int_equal(redis_int(&rs, "HLEN herald:dev:{u1}"), 4);
    assert_int_equal(ctl("tokens delete --user u0"), 1);
    assert_int_equal(check_indexes(&rs), 0);
}

/* --json output goes through one encoder: an id with a quote stays valid JSON (it used to be
 * printed raw into the line). */
static void test_delete_json_escapes(void **state)
{
    (void)state;
    char path[400];
    snprintf(path, sizeof path, "%s/quote.jsonl", dir);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "{\"userId\":\"a\\\"b\",\"deviceId\":\"d\\\\1\",\"expoPushToken\":"
            "\"ExponentPushToken[q1]\",\"platform\":\"ios\",\"registeredAt\":"
            "\"2025-01-01T00:00:00.000Z\",\"updatedAt\":\"2025-01-02T00:00:00.000Z\","
            "\"isActive\":true,\"expiresAt\":%lld}\n",
            (long long)seed_now() + 86400);
    fclose(f);
    assert_int_equal(ctl("tokens import -i %s", path), 0);
    const char *dry[] = {"--dry-run --json", "--json"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ctl("tokens delete --user 'a\"b' %s", dry[i]), 0);
        json_error_t jerr;
        json_t *j = json_loads(out.data, 0, &jerr);
        if (j == NULL)
            fprintf(stderr, "not JSON (%s): %s\n", jerr.text, out.data);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "userId")), "a\"b");
        assert_string_equal(json_string_value(json_object_get(j, "deviceId")), "d\\1");
        assert_string_equal(json_string_value(json_object_get(j, "action")),
                            i == 0 ? "would delete" : "delete");
        json_decref(j);
    }
    assert_int_equal(redis_int(&rs, "DBSIZE"), 0);
}

/* A password-protected Redis: every command connects through the one helper that reads
 * redis.password_file (receipts used to connect without it and failed with NOAUTH). */
static void test_password_file(void **state)
{
    (void)state;
    th_redis_t prs;
    memset(&prs, 0, sizeof prs);
    snprintf(prs.password, sizeof prs.password, "ctl-s3cret");
    assert_int_equal(th_redis_start(&prs, 0), 0);
    char d2[256], pw[320], extra[600], c2[400], c3[400];
    assert_int_equal(th_tmpdir(d2, sizeof d2), 0);
    snprintf(pw, sizeof pw, "%s/redis.password", d2);
    FILE *f = fopen(pw, "w");
    fputs("ctl-s3cret\n", f);
    fclose(f);
    chmod(pw, 0600);
    snprintf(extra, sizeof extra, "redis.password_file = %s\nexpo.url = http://127.0.0.1:1", pw);
    seed_conf(d2, prs.url, extra, c2, sizeof c2);
    free(th_redis_cmd(&prs, "ZADD herald:rq:{3} 1700000000 ticket-1")); /* one receipt check */

    buf_reset(&out);
    buf_reset(&err);
    int rc = run_ctl(c2, &out, &err, "receipts --json");
    if (rc != 0)
        fprintf(stderr, "receipts: %s\n", buf_cstr(&err));
    assert_int_equal(rc, 0);
    json_t *j = json_loads(buf_cstr(&out), 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "pending")), 1);
    assert_true(json_is_string(json_object_get(j, "oldest_due")));
    json_decref(j);
    buf_reset(&out);
    assert_int_equal(run_ctl(c2, &out, NULL, "tokens count --json"), 0);
    assert_true(out_has(&out, "\"total\":0"));
    assert_int_equal(run_ctl(c2, NULL, NULL, "trace --job j1"), 1);
    assert_int_equal(run_ctl(c2, NULL, NULL, "diagnose --user u1"), 1);

    /* The same server without the password file: refused, so the test above can fail. */
    snprintf(d2 + strlen(d2), sizeof d2 - strlen(d2), "/nopw");
    assert_int_equal(mkdir(d2, 0700), 0);
    seed_conf(d2, prs.url, "redis.timeout_ms = 200\nexpo.url = http://127.0.0.1:1", c3, sizeof c3);
    assert_int_equal(run_ctl(c3, NULL, NULL, "receipts --json"), 3);
    assert_int_equal(run_ctl(c3, NULL, NULL, "tokens count"), 3);
    th_redis_stop(&prs);
}

/* ---- sweep and cleanup ---- */

/* Upgrading from the schema before token buckets: the records are there, the owner keys and the
 * expiry index are the old ones. `tokens reindex` rebuilds the new indexes (check_indexes finds
 * nothing wrong), removes the old keys, and a second run changes nothing. */
static void test_reindex(void **state)
{
    (void)state;
    const long n = 3000;
    assert_int_equal(seed_records(&rs, n, 3, seed_now(), mixed_shape, NULL), 0);
    /* The new indexes gone, the old ones in their place (one owner key per record suffices). */
    long long owners = redis_int(&rs, "EVAL \"return #redis.call('KEYS', ARGV[1])\" 0 "
                                      "herald:owner:{t*");
    free(th_redis_cmd(&rs, "EVAL %s 0",
                      "for _, k in ipairs(redis.call('KEYS', 'herald:owner:*')) "
                      "do redis.call('DEL', k) end for _, k in "
                      "ipairs(redis.call('KEYS', 'herald:expiry:*')) do "
                      "redis.call('DEL', k) end"));
    for (int i = 0; i < 50; i++)
        free(th_redis_cmd(&rs,
                          "SET herald:owner:ExponentPushToken[t%d] u%d\x1f"
                          "d%d",
                          i, i / 3, i % 3));
    free(th_redis_cmd(&rs, "ZADD herald:expiry 1 u0\x1f"
                           "d0"));
    assert_true(check_indexes(&rs) > 0);
    assert_int_equal(ctl("tokens reindex --json"), 0);
    assert_true(out_has(&out, "\"records\":3000"));
    assert_true(out_has(&out, "\"oldKeysRemoved\":51"));
    assert_int_equal(check_indexes(&rs), 0);
    assert_int_equal(redis_int(&rs, "EXISTS herald:expiry"), 0);
    assert_int_equal(redis_int(&rs, "EVAL \"return #redis.call('KEYS', ARGV[1])\" 0 "
                                    "herald:owner:{t*"),
                     owners);
    assert_int_equal(redis_int(&rs, SEED_EXPIRY_COUNT), n);
    assert_int_equal(ctl("tokens reindex --json"), 0);
    assert_true(out_has(&out, "\"ownerKeysWritten\":0,\"oldKeysRemoved\":0"));
}

static void test_sweep_cleanup(void **state)
{
    (void)state;
    const long n = 5000; /* several chunks of 500 */
    assert_int_equal(seed_records(&rs, n, 4, seed_now(), mixed_shape, NULL), 0);
    /* A stale index entry (its record is gone) and an owner key of an expired record. */
    free(th_redis_cmd(&rs, "ZADD herald:expiry:{t0} 1 ghost\x1f"
                           "d0"));

    assert_int_equal(ctl("tokens sweep --dry-run --json"), 0);
    assert_true(out_has(&out, "\"dryRun\":true,\"expired\":1000,\"inactive\":0,\"staleIndex\":1"));
    assert_true(out_has(&out, "\"why\":\"expired\",\"action\":\"would remove\""));
    assert_int_equal(redis_int(&rs, SEED_EXPIRY_COUNT), n + 1);

    assert_int_equal(ctl("tokens sweep"), 0);
    assert_true(out_has(&out, "removed 1000 expired token(s), 1 stale index entry"));
    assert_int_equal(redis_int(&rs, SEED_EXPIRY_COUNT), n - 1000);
    assert_int_equal(ctl("tokens count --json"), 0);
    assert_true(out_has(&out, "\"active\":2000,\"inactive\":2000,\"expired\":0"));
    assert_int_equal(check_indexes(&rs), 0);
    assert_int_equal(ctl("tokens sweep --json"), 0);
    assert_true(out_has(&out, "\"expired\":0"));

    assert_int_equal(ctl("tokens cleanup --inactive-older-than 30d --dry-run"), 0);
    assert_true(out_has(&out, "would remove 1000 inactive token(s)"));
    assert_true(out_has(&out, "would remove u0/d1 (inactive)"));
    assert_int_equal(redis_int(&rs, SEED_EXPIRY_COUNT), n - 1000);
    assert_int_equal(ctl("tokens cleanup --inactive-older-than 30d"), 0);
    assert_true(out_has(&out, "removed 1000 inactive token(s)"));
    assert_int_equal(ctl("tokens count --json"), 0);
    assert_true(out_has(&out, "\"active\":2000,\"inactive\":1000,\"expired\":0"));
    assert_int_equal(check_indexes(&rs), 0);
    /* Owner keys of removed records are gone: t1 was inactive for 40 days. */
    assert_int_equal(seed_owner_exists(&rs, "ExponentPushToken[t1]"), 0);
    assert_int_equal(seed_owner_exists(&rs, "ExponentPushToken[t2]"), 1);
    assert_int_equal(ctl("tokens cleanup --inactive-older-than 1d"), 0);
    assert_true(out_has(&out, "removed 1000 inactive token(s)"));
    assert_int_equal(check_indexes(&rs), 0);
}

/* Two heraldctl sweeps at once remove every expired record exactly once between them. */
static void test_concurrent_cli_sweeps(void **state)
{
    (void)state;
    const long n = 20000;
    assert_int_equal(seed_records(&rs, n, 2, seed_now(), mixed_shape, NULL), 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "env -u HERALD_FIXTURES -u HERALD_BIN_DIR %s/heraldctl --config %s tokens sweep "
             "--chunk 100 --json",
             th_bin_dir(), conf);
    FILE *a = popen(cmd, "r"), *b = popen(cmd, "r");
    assert_non_null(a);
    assert_non_null(b);
    long total = 0;
    FILE *ps[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        char line[4096];
        long got = -1;
        while (fgets(line, sizeof line, ps[k]))
            if (strstr(line, "\"summary\""))
                assert_int_equal(sscanf(strstr(line, "\"expired\":"), "\"expired\":%ld", &got), 1);
        assert_int_equal(WEXITSTATUS(pclose(ps[k])), 0);
        assert_true(got >= 0);
        total += got;
    }
    assert_int_equal(total, n / 5);
    assert_int_equal(redis_int(&rs, SEED_EXPIRY_COUNT), n - n / 5);
    assert_int_equal(check_indexes(&rs), 0);
}

/* ---- diagnose ---- */

static void test_diagnose(void **state)
{
    (void)state;
    assert_int_equal(seed_records(&rs, 5, 5, seed_now(), mixed_shape, NULL), 0);
    /* d4 holds a token that the owner index gives to someone else. */
    char k[KEY_MAX];
    free(th_redis_cmd(&rs,
                      "SET %s other\x1f"
                      "dx",
                      th_owner_key(k, "herald:", "ExponentPushToken[t4]")));
    assert_int_equal(ctl("diagnose --user u0"), 0);
    assert_true(out_has(&out, "2 of 5 device(s) would receive"));
    assert_true(out_has(&out, "expired at"));
    assert_true(out_has(&out, "inactive: DeviceNotRegistered at"));
    assert_true(out_has(&out, "token is now registered to other/dx"));
    assert_true(out_has(&out, "no delivery trace for user u0"));

    free(th_redis_cmd(&rs, "ZADD herald:trace:u:{u0} 1000 job-1 2000 job-2"));
    seed_record("u0", "job-1", 1, "{\"ts\":\"2026-01-01T00:00:00.000Z\",\"event\":\"received\"}");
    seed_record("u0", "job-2", 1,
                "{\"ts\":\"2026-01-02T00:00:00.000Z\",\"event\":\"ticket\","
                "\"userId\":\"u0\",\"deviceId\":\"d3\",\"error\":\"MessageTooBig\"}");
    seed_record("u0", "job-2", 2,
                "{\"ts\":\"2026-01-02T00:00:01.000Z\",\"event\":\"deactivated\","
                "\"userId\":\"u0\",\"deviceId\":\"d1\",\"detail\":"
                "\"DeviceNotRegistered\"}");
    assert_int_equal(ctl("diagnose --user u0"), 0);
    assert_true(out_has(&out, "recent failures in the last 2 job(s) of this user: 2"));
    assert_true(out_has(&out, "MessageTooBig"));
    assert_int_equal(ctl("diagnose --user u0 --json"), 0);
    json_t *j = json_loads(out.data, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "receiving")), 2);
    assert_true(json_is_true(json_object_get(j, "tracePresent")));
    assert_int_equal(json_array_size(json_object_get(j, "recentFailures")), 2);
    json_t *devs = json_object_get(j, "devices");
    assert_int_equal(json_array_size(devs), 5);
    json_decref(j);
    assert_int_equal(ctl("diagnose --user nobody"), 1);
    /* A corrupt record is reported, not skipped. */
    free(th_redis_cmd(&rs, "HSET herald:dev:{u0} d9 {\"userId\":\"u0\"}"));
    assert_int_equal(ctl("diagnose --user u0"), 0);
    assert_true(out_has(&out, "stored record is unreadable"));
}

/* ---- export / import ---- */

static void test_import_validation(void **state)
{
    (void)state;
    char path[400];
    snprintf(path, sizeof path, "%s/in.jsonl", dir);
    FILE *f = fopen(path, "w");
    int64_t exp = seed_now() + 86400;
    fprintf(f,
            "{\"userId\":\"u1\",\"deviceId\":\"d1\",\"expoPushToken\":"
            "\"ExponentPushToken[abc]\",\"platform\":\"ios\",\"registeredAt\":"
            "\"2025-01-01T00:00:00.000Z\",\"updatedAt\":\"2025-01-02T00:00:00.000Z\","
            "\"isActive\":true,\"expiresAt\":%lld}\n",
            (long long)exp);
    fputs("not json\n", f);
    fputs("{\"userId\":\"u1\",\"deviceId\":\"d2\",\"expoPushToken\":\"ExponentPushToken[x]\","
          "\"platform\":\"ios\",\"registeredAt\":\"yesterday\",\"updatedAt\":"
          "\"2025-01-02T00:00:00.000Z\",\"isActive\":true,\"expiresAt\":5}\n",
          f);
    fputs("{\"userId\":\"u1\",\"deviceId\":\"d3\",\"expoPushToken\":\"ExponentPushToken[x]\","
          "\"platform\":\"ios\",\"registeredAt\":\"2025-01-01T00:00:00Z\",\"updatedAt\":"
          "\"2025-01-02T00:00:00Z\",\"isActive\":true}\n",
          f);
    fputs("{\"userId\":\"u1\",\"deviceId\":\"d4\",\"expoPushToken\":\"bad token\","
          "\"platform\":\"ios\",\"registeredAt\":\"2025-01-01T00:00:00Z\",\"updatedAt\":"
          "\"2025-01-02T00:00:00Z\",\"isActive\":true,\"expiresAt\":5}\n",
          f);
    for (int i = 0; i < 5000; i++)
        fputc('x', f);
    fputc('\n', f);
    fclose(f);
    assert_int_equal(ctl("tokens import -i %s --dry-run", path), 4);
    assert_int_equal(redis_int(&rs, "DBSIZE"), 0);
    assert_int_equal(ctl("tokens import -i %s", path), 4);
    assert_true(out_has(&out, "imported 1 record(s) of 6 line(s): 1 created"));
    assert_true(out_has(&err, "line 2: rejected: record is not a JSON object"));
    assert_true(out_has(&err, "line 3: rejected: registeredAt is not an ISO-8601"));
    assert_true(out_has(&err, "line 4: rejected: expiresAt missing"));
    assert_true(out_has(&err, "line 5: rejected: invalid expoPushToken"));
    assert_true(out_has(&err, "line 6: rejected: line longer than 4096 bytes"));
    assert_int_equal(ctl("tokens import -i %s --json", path), 4);
    assert_true(out_has(&out, "\"created\":0,\"updated\":0,\"unchanged\":1"));
    assert_true(out_has(&err, "{\"line\":5,\"rejected\":\"invalid expoPushToken\"}"));
    assert_int_equal(check_indexes(&rs), 0);
}

/* export -> wipe -> import restores identical records and indexes. */
static void roundtrip_shape(long i, tok_record_t *r, int64_t now, void *arg)
{
    mixed_shape(i, r, now, arg);
    if (i % 7 == 0)
        snprintf(r->registered_at, sizeof r->registered_at, "2024-%02ld-%02ldT01:02:03.%03ldZ",
                 i % 12 + 1, i % 28 + 1, i % 1000);
    if (i % 11 == 0)
        r->platform = TOK_PLATFORM_ANDROID;
}

static char *sorted_file(const char *path)
{
    char cmd[1200], sorted[600];
    snprintf(sorted, sizeof sorted, "%s.sorted", path);
    snprintf(cmd, sizeof cmd, "LC_ALL=C sort %s > %s", path, sorted);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(sorted, "r");
    buf_t b = BUF_INIT;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(&b, tmp, n);
    fclose(f);
    return buf_steal(&b);
}

static void test_roundtrip_200k(void **state)
{
    (void)state;
    const long n = 200000;
    assert_int_equal(seed_records(&rs, n, 3, seed_now(), roundtrip_shape, NULL), 0);
    long long owners = redis_int(&rs, "EVAL \"return #redis.call('KEYS', ARGV[1])\" 0 "
                                      "herald:owner:*");
    char *probe[3];
    for (int i = 0; i < 3; i++)
        probe[i] = th_redis_cmd(&rs, "HGET herald:dev:{u4242} d%d", i);
    char a[400], b[400];
    snprintf(a, sizeof a, "%s/export-a.jsonl", dir);
    snprintf(b, sizeof b, "%s/export-b.jsonl", dir);
    assert_int_equal(ctl("tokens export -o %s", a), 0);
    assert_true(out_has(&err, "exported 200000 record(s)"));

    free(th_redis_cmd(&rs, "FLUSHDB"));
    assert_int_equal(redis_int(&rs, "DBSIZE"), 0);
    assert_int_equal(ctl("tokens import -i %s", a), 0);
    assert_true(out_has(&out, "imported 200000 record(s) of 200000 line(s): 200000 created"));

    assert_int_equal(ctl("tokens export -o %s", b), 0);
    char *sa = sorted_file(a), *sb = sorted_file(b);
    assert_true(strlen(sa) > 0);
    assert_true(strcmp(sa, sb) == 0);
    free(sa);
    free(sb);
    for (int i = 0; i < 3; i++) { /* byte-identical stored records */
        char *again = th_redis_cmd(&rs, "HGET herald:dev:{u4242} d%d", i);
        assert_string_equal(probe[i], again);
        free(probe[i]);
        free(again);
    }
    assert_int_equal(redis_int(&rs, SEED_EXPIRY_COUNT), n);
    assert_int_equal(redis_int(&rs, "EVAL \"return #redis.call('KEYS', ARGV[1])\" 0 "
                                    "herald:owner:*"),
                     owners);
    /* Idempotent: a second import changes nothing. */
    assert_int_equal(ctl("tokens import -i %s --json", a), 0);
    assert_true(out_has(&out, "\"created\":0,\"updated\":0,\"unchanged\":200000"));
    assert_int_equal(redis_int(&rs, SEED_EXPIRY_COUNT), n);

    /* Filters: inactive only, inactive for more than 30 days. */
    assert_int_equal(ctl("tokens export --inactive -o %s", b), 0);
    assert_true(out_has(&err, "exported 80000 record(s)"));
    assert_int_equal(ctl("tokens export --inactive --older-than 30d -o %s", b), 0);
    assert_true(out_has(&err, "exported 40000 record(s)"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_usage_codes, seed_flush),
        cmocka_unit_test_setup(test_unavailable, seed_flush),
        cmocka_unit_test_setup(test_check_config, seed_flush),
        cmocka_unit_test_setup(test_dlq_replay, seed_flush),
        cmocka_unit_test_setup(test_list_get_find_count, seed_flush),
        cmocka_unit_test_setup(test_deactivate, seed_flush),
        cmocka_unit_test_setup(test_delete, seed_flush),
        cmocka_unit_test_setup(test_delete_json_escapes, seed_flush),
        cmocka_unit_test_setup(test_password_file, seed_flush),
        cmocka_unit_test_setup(test_sweep_cleanup, seed_flush),
        cmocka_unit_test_setup(test_reindex, seed_flush),
        cmocka_unit_test_setup(test_concurrent_cli_sweeps, seed_flush),
        cmocka_unit_test_setup(test_diagnose, seed_flush),
        cmocka_unit_test_setup(test_import_validation, seed_flush),
        cmocka_unit_test_setup(test_roundtrip_200k, seed_flush),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, seed_stop);
    buf_cleanup(&out);
    buf_cleanup(&err);
    return rc;
}
