/* test_pipeline.c - herald's main job end to end: job events published to Kafka become exactly
 * one notification per deliverable device at the Expo simulator, with tokens deactivated from
 * tickets and receipts, poison events in the DLQ and a trace in Redis.
 *
 * Built twice: test_pipeline against one redis-server, test_pipeline_cluster (TH_ON_CLUSTER)
 * runs the same cases against a real 3 + 3 node Redis Cluster with redis.cluster = true, started
 * once for the binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "db/keys.h"
#include "tests/support/harness.h"
#include "tests/support/kafka_harness.h"
#include "tests/support/stack.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SECRET "pipeline-test-secret-0123456789abcdef"
#define TOPIC "job-events"
#define PREFIX "herald:" /* redis.prefix by default */

static th_stack_t stack;
#ifdef TH_ON_CLUSTER
static th_cluster_t cluster;
#endif
static const char *expo_conf = ""; /* extra expo.* lines (the access token, once configured) */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static int start_herald_proc(void)
{
    char extra[1024];
    snprintf(extra, sizeof extra,
             "expo.receipt_delay_s = 0\n"
             "expo.receipt_poll_interval_s = 1\n"
             "expo.max_attempts = 30\n"
             "dedup.pending_ttl_s = 5\n"
             "shutdown.timeout_s = 10\n"
             "%s",
             expo_conf);
    return th_stack_herald(&stack, TOPIC, "herald-pipeline-test", extra);
}

static int setup(void **state)
{
    (void)state;
#ifdef TH_ON_CLUSTER
    stack.cluster = &cluster;
#endif
    if (th_stack_start(&stack, TOPIC, SECRET) != 0)
        return -1;
    return start_herald_proc();
}

static int teardown(void **state)
{
    (void)state;
    return th_stack_stop(&stack);
}

/* Registers a device, with a locale unless it is NULL. */
static void register_device_locale(const char *user, const char *device, const char *token,
                                   const char *locale)
{
    char url[256], auth[2048], body[512], loc[64] = "";
    th_bearer(SECRET, user, auth, sizeof auth);
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    if (locale)
        snprintf(loc, sizeof loc, ",\"locale\":\"%s\"", locale);
    snprintf(body, sizeof body,
             "{\"deviceId\":\"%s\",\"expoPushToken\":\"%s\",\"platform\":\"android\"%s}", device,
             token, loc);
    th_herald_url(&stack.herald, false, "/v1/device-tokens", url, sizeof url);
    th_resp_t r;
    assert_int_equal(th_http("POST", url, h, body, strlen(body), &r), 0);
    if (r.status != 201 && r.status != 200)
        fail_msg("register: %ld %s", r.status, buf_cstr(&r.body));
    th_resp_cleanup(&r);
}

static void register_device(const char *user, const char *device, const char *token)
{
    register_device_locale(user, device, token, NULL);
}

static void publish(const char *value, const char *const *headers)
{
    assert_int_equal(th_kafka_send(TOPIC, NULL, value, headers), 0);
    assert_int_equal(th_kafka_flush(), 0);
}

static json_t *sim_stats(void)
{
    return th_sim_stats(stack.sim_url);
}

/* Accepted messages for one token so far. */
static long long delivered(const char *token)
{
    json_t *j = sim_stats();
    long long n = j ? json_integer_value(json_object_get(json_object_get(j, "tokens"), token)) : 0;
    json_decref(j);
    return n;
}

struct want_delivered {
    const char *token;
    long long n;
};

static bool has_delivered(void *arg)
{
    struct want_delivered *w = arg;
    return delivered(w->token) >= w->n;
}

static void wait_delivered(const char *token, long long n)
{
    struct want_delivered w = {token, n};
    if (!th_wait_until(has_delivered, &w, 30000))
        fail_msg("token %s: %lld deliveries, want %lld", token, delivered(token), n);
}

/* The job's trace as one string of JSON lines. Caller frees. */
static char *trace_of(const char *job)
{
    return th_stack_trace(&stack, PREFIX, job);
}

struct want_trace {
    const char *job, *needle;
};

static bool trace_has(void *arg)
{
    struct want_trace *w = arg;
    char *t = trace_of(w->job);
    bool ok = t && strstr(t, w->needle);
    free(t);
    return ok;
}

static void wait_trace(const char *job, const char *needle)
{
    struct want_trace w = {job, needle};
    if (!th_wait_until(trace_has, &w, 30000)) {
        char *t = trace_of(job);
        fail_msg("trace of %s lacks %s:\n%s", job, needle, t ? t : "(none)");
    }
}

static size_t count_of(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s ? strstr(s, needle) : NULL; p; p = strstr(p + 1, needle))
        n++;
    return n;
}

struct want_count {
    const char *job, *needle;
    size_t n;
};

static bool trace_has_n(void *arg)
{
    struct want_count *w = arg;
    char *t = trace_of(w->job);
    bool ok = count_of(t, w->needle) >= w->n;
    free(t);
    return ok;
}

/* Waits until the job's trace holds needle at least n times (e.g. n events completed). */
static void wait_trace_count(const char *job, const char *needle, size_t n)
{
    struct want_count w = {job, needle, n};
    if (!th_wait_until(trace_has_n, &w, 30000)) {
        char *t = trace_of(job);
        fail_msg("trace of %s holds %s %zu times, want %zu:\n%s", job, needle, count_of(t, needle),
                 n, t ? t : "(none)");
    }
}

struct want_field {
    const char *user, *device, *needle;
};

static bool record_has(void *arg)
{
    struct want_field *w = arg;
    char *v = th_redis_cmd(&stack.redis, "HGET herald:dev:{%s} %s", w->user, w->device);
    bool ok = v && strstr(v, w->needle);
    free(v);
    return ok;
}

static void wait_record(const char *user, const char *device, const char *needle)
{
    struct want_field w = {user, device, needle};
    if (!th_wait_until(record_has, &w, 30000)) {
        char *v = th_redis_cmd(&stack.redis, "HGET herald:dev:{%s} %s", user, device);
        fail_msg("%s/%s lacks %s: %s", user, device, needle, v ? v : "(nil)");
    }
}

/* The record file line for a token (the last one), or "" */
static void last_record(const char *token, char *out, size_t outlen)
{
    char path[300], line[8192];
    snprintf(path, sizeof path, "%s/sim.jsonl", stack.dir);
    out[0] = '\0';
    th_wait_file_contains(path, token, NULL, 0, 10000); /* flushed every 50 ms */
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f))
        if (strstr(line, token))
            snprintf(out, outlen, "%s", line);
    fclose(f);
}

static void test_completed_two_devices(void **state)
{
    (void)state;
    const char *good = "ExponentPushToken[pipeGood000000000000001]";
    const char *dead = "ExponentPushToken[pipeUnregistered0000001]";
    register_device("u1", "phone", good);
    register_device("u1", "old-tablet", dead);
    publish("{\"jobId\":\"job-1\",\"userId\":\"u1\",\"status\":\"COMPLETED\","
            "\"message\":\"done\",\"timestamp\":\"2026-11-24T10:00:00.000Z\","
            "\"data\":{\"previousStatus\":\"EDITING\",\"finalS3Key\":\"k\",\"error\":null}}",
            NULL);
    wait_delivered(good, 1);
    wait_record("u1", "old-tablet", "\"deactivatedReason\":\"DeviceNotRegistered\"");
    wait_record("u1", "old-tablet", "\"isActive\":false");
    wait_trace("job-1", "\"event\":\"completed\"");
    char *t = trace_of("job-1");
    assert_non_null(strstr(t, "\"event\":\"received\""));
    assert_non_null(strstr(t, "\"event\":\"devices\""));
    assert_non_null(strstr(t, "\"event\":\"ticket\""));
    assert_non_null(strstr(t, "\"event\":\"deactivated\""));
    assert_null(strstr(t, "pipeGood000000000000001")); /* tokens are redacted in the trace */
    free(t);
    char rec[8192];
    last_record(good, rec, sizeof rec);
    assert_non_null(strstr(rec, "\"title\":\"Photo Editor - Ready!\""));
    assert_non_null(strstr(rec, "\"body\":\"Your enhanced photo is ready to download\""));
    assert_non_null(strstr(rec, "\"collapseId\":\"job-1:COMPLETED\""));
    assert_non_null(strstr(rec, "\"action\":\"download\""));
    assert_non_null(strstr(rec, "\"type\":\"job_status_update\""));
    assert_non_null(strstr(rec, "\"jobId\":\"job-1\""));
    /* The user index of the trace knows the job. */
    char k[KEY_MAX];
    key_trace_user(k, PREFIX, "u1");
    char *idx = th_redis_cmd(&stack.redis, "ZRANGE %s 0 -1", k);
    assert_non_null(strstr(idx, "job-1"));
    free(idx);
    /* A ticket was scheduled for its receipt check and checked (delay 0). */
    wait_trace("job-1", "\"event\":\"receipt\"");
}

static void test_repeat_is_not_resent(void **state)
{
    (void)state;
    const char *tok = "ExponentPushToken[pipeRepeat00000000000001]";
    register_device("u2", "phone", tok);
    const char *ev = "{\"jobId\":\"job-2\",\"userId\":\"u2\",\"status\":\"FAILED\","
                     "\"data\":{\"error\":\"The image was too dark\"}}";
    publish(ev, NULL);
    wait_delivered(tok, 1);
    wait_trace("job-2", "\"event\":\"completed\"");
    publish(ev, NULL); /* the worker published FAILED twice */
    wait_trace("job-2", "\"event\":\"duplicate\"");
    /* A later marker for the same user proves the duplicate was fully processed. */
    publish("{\"jobId\":\"job-2b\",\"userId\":\"u2\",\"status\":\"COMPLETED\"}", NULL);
    wait_delivered(tok, 2);
    assert_int_equal(delivered(tok), 2);
    char rec[8192], path[300], line[8192];
    snprintf(path, sizeof path, "%s/sim.jsonl", stack.dir);
    assert_true(th_wait_file_contains(path, "job-2:FAILED", NULL, 0, 10000));
    FILE *f = fopen(path, "r");
    rec[0] = '\0';
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, tok) && strstr(line, "job-2:FAILED"))
            snprintf(rec, sizeof rec, "%s", line);
    if (f)
        fclose(f);
    assert_non_null(strstr(rec, "\"title\":\"Photo Editor - Error\""));
    assert_non_null(strstr(rec, "\"body\":\"The image was too dark\""));
    assert_non_null(strstr(rec, "\"action\":\"retry\""));
}

static void test_envelopes_and_headers(void **state)
{
    (void)state;
    const char *tok = "ExponentPushToken[pipeEnvelope000000000001]";
    register_device("u3", "phone", tok);
    /* SNS notification inside an SQS record (what the SQS connector bridges). */
    publish("{\"MessageId\":\"m1\",\"Body\":\"{\\\"Type\\\":\\\"Notification\\\",\\\"MessageId\\\":"
            "\\\"sns-1\\\",\\\"Message\\\":\\\"{\\\\\\\"jobId\\\\\\\":\\\\\\\"job-3a\\\\\\\","
            "\\\\\\\"userId\\\\\\\":\\\\\\\"u3\\\\\\\",\\\\\\\"status\\\\\\\":"
            "\\\\\\\"COMPLETED\\\\\\\"}"
            "\\\"}\"}",
            NULL);
    /* Kafka Connect payload wrapping an SNS MessageStructure=json object. */
    publish("{\"schema\":{\"type\":\"string\"},\"payload\":{\"default\":\"{\\\"jobId\\\":"
            "\\\"job-3b\\\",\\\"userId\\\":\\\"u3\\\",\\\"status\\\":\\\"COMPLETED\\\"}\"}}",
            NULL);
    /* userId only in a Kafka header. */
    const char *h[] = {"userId", "u3", NULL};
    publish("{\"jobId\":\"job-3c\",\"status\":\"COMPLETED\"}", h);
    /* A batch completion. */
    publish("{\"batchJobId\":\"batch-3d\",\"userId\":\"u3\",\"status\":\"COMPLETED\","
            "\"completedCount\":4,\"totalCount\":4}",
            NULL);
    wait_delivered(tok, 4);
    wait_trace("job-3a", "\"envelope\":\"sqs+sns\"");
    wait_trace("batch-3d", "\"event\":\"completed\"");
    /* The simulator's record file is flushed by a thread every 50 ms: wait for the line. */
    char path[300], line[8192];
    snprintf(path, sizeof path, "%s/sim.jsonl", stack.dir);
    assert_true(th_wait_file_contains(path, "\"collapseId\":\"batch-3d:COMPLETED\"", line,
                                      sizeof line, 10000));
    assert_non_null(strstr(line, "\"title\":\"Photo Editor - Batch Complete!\""));
    assert_non_null(strstr(line, "\"body\":\"All 4 photos are ready for download\""));
    assert_non_null(strstr(line, "\"action\":\"view_batch\""));
    assert_non_null(strstr(line, "\"type\":\"batch_completion\""));
    assert_non_null(strstr(line, "\"batchJobId\":\"batch-3d\""));
}

static void test_inactive_and_expired_skipped(void **state)
{
    (void)state;
    const char *live = "ExponentPushToken[pipeLive00000000000000001]";
    const char *off = "ExponentPushToken[pipeOff000000000000000001]";
    const char *old = "ExponentPushToken[pipeExpired0000000000001]";
    register_device("u4", "live", live);
    register_device("u4", "off", off);
    register_device("u4", "old", old);
    char url[256], auth[2048];
    th_bearer(SECRET, "u4", auth, sizeof auth);
    const char *h[] = {auth, NULL};
    th_herald_url(&stack.herald, false, "/v1/device-tokens?deviceId=off", url, sizeof url);
    th_resp_t r;
    assert_int_equal(th_http("DELETE", url, h, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_cleanup(&r);
    /* Age one record past its expiry directly in the store. */
    char *v = th_redis_cmd(&stack.redis, "HGET herald:dev:{u4} old");
    char *p = strstr(v, "\"expiresAt\":");
    assert_non_null(p);
    char edited[2048];
    snprintf(edited, sizeof edited, "%.*s\"expiresAt\":1000%s", (int)(p - v), v,
             strchr(p, ',') ? strchr(p, ',') : "}");
    free(v);
    free(th_redis_cmd(&stack.redis, "HSET herald:dev:{u4} old %s", edited));
    publish("{\"jobId\":\"job-4\",\"userId\":\"u4\",\"status\":\"COMPLETED\"}", NULL);
    wait_delivered(live, 1);
    wait_trace("job-4", "\"event\":\"completed\"");
    char *t = trace_of("job-4");
    assert_non_null(strstr(t, "\"reason\":\"inactive\""));
    assert_non_null(strstr(t, "\"reason\":\"expired\""));
    free(t);
    assert_int_equal(delivered(off), 0);
    assert_int_equal(delivered(old), 0);
}

static void test_late_unregistered_receipt(void **state)
{
    (void)state;
    const char *tok = "ExponentPushToken[pipeLateUnregistered0001]";
    register_device("u5", "phone", tok);
    publish("{\"jobId\":\"job-5\",\"userId\":\"u5\",\"status\":\"COMPLETED\"}", NULL);
    wait_delivered(tok, 1);
    wait_record("u5", "phone", "\"deactivatedReason\":\"DeviceNotRegistered\"");
    wait_trace("job-5", "\"source\":\"receipt\"");
}

struct dlq_seen {
    int poison;
};

static void on_dlq(const th_kmsg_t *m, void *arg)
{
    struct dlq_seen *s = arg;
    if (strstr(m->headers, "herald-dlq-reason=not_json") &&
        strstr(m->headers, "herald-source-topic=" TOPIC) && m->len == 9 &&
        memcmp(m->value, "not json!", 9) == 0)
        s->poison++;
}

static void test_poison_goes_to_dlq(void **state)
{
    (void)state;
    const char *tok = "ExponentPushToken[pipeAfterPoison00000001]";
    register_device("u6", "phone", tok);
    publish("not json!", NULL);
    publish("{\"jobId\":\"job-6\",\"userId\":\"u6\",\"status\":\"COMPLETED\"}", NULL);
    wait_delivered(tok, 1);
    struct dlq_seen s = {0};
    th_kafka_read(TOPIC ".dlq", 1, 20000, on_dlq, &s);
    assert_int_equal(s.poison, 1);
}

static void sim_control(const char *json)
{
    char url[128];
    th_resp_t r;
    snprintf(url, sizeof url, "%s/control", stack.sim_url);
    const char *h[] = {"Content-Type: application/json", NULL};
    assert_int_equal(th_http("POST", url, h, json, strlen(json), &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_cleanup(&r);
}

static void test_expo_storm(void **state)
{
    (void)state;
    char tok[20][64], job[64], ev[256];
    for (int i = 0; i < 20; i++) {
        char user[32];
        snprintf(tok[i], sizeof tok[i], "ExponentPushToken[pipeStorm%013d]", i);
        snprintf(user, sizeof user, "storm-%d", i);
        register_device(user, "phone", tok[i]);
    }
    sim_control("{\"fail-5xx\":0.5,\"fail-429\":0.3,\"seed\":11}");
    for (int i = 0; i < 20; i++) {
        snprintf(job, sizeof job, "storm-job-%d", i);
        snprintf(ev, sizeof ev,
                 "{\"jobId\":\"%s\",\"userId\":\"storm-%d\",\"status\":\"COMPLETED\"}", job, i);
        assert_int_equal(th_kafka_send(TOPIC, NULL, ev, NULL), 0);
    }
    assert_int_equal(th_kafka_flush(), 0);
    for (int i = 0; i < 20; i++)
        wait_delivered(tok[i], 1);
    sim_control("{\"fail-5xx\":0,\"fail-429\":0}");
    json_t *st = sim_stats();
    assert_true(json_integer_value(json_object_get(st, "injected5xx")) > 0);
    json_decref(st);
    for (int i = 0; i < 20; i++)
        assert_int_equal(delivered(tok[i]), 1); /* 5xx/429 happen before Expo accepts anything */
}

static void test_clean_restart_reprocesses_nothing(void **state)
{
    (void)state;
    const char *tok = "ExponentPushToken[pipeRestart0000000000001]";
    register_device("u7", "phone", tok);
    publish("{\"jobId\":\"job-7\",\"userId\":\"u7\",\"status\":\"COMPLETED\"}", NULL);
    wait_delivered(tok, 1);
    wait_trace("job-7", "\"event\":\"completed\"");
    assert_int_equal(th_herald_stop(&stack.herald, SIGTERM), 0);
    assert_true(th_wait_file_contains(stack.herald.log, "offsets committed", NULL, 0, 1000));
    /* Forget the dedup marks (the ledger): only committed offsets can now prevent a resend. On a
     * cluster every node runs it (replicas answer READONLY: their masters delete). */
    for (int i = 0; i < (stack.cluster ? TH_CLUSTER_NODES : 1); i++)
        free(th_redis_cmd(stack.cluster ? &stack.cluster->node[i] : &stack.redis, "EVAL %s 0",
                          "for _,k in ipairs(redis.call('KEYS','herald:led:*')) do "
                          "redis.call('DEL',k) end return 1"));
    char old[400];
    snprintf(old, sizeof old, "%s.1", stack.herald.log); /* kept for diagnosing earlier cases */
    rename(stack.herald.log, old);
    assert_int_equal(start_herald_proc(), 0);
    publish("{\"jobId\":\"job-7b\",\"userId\":\"u7\",\"status\":\"COMPLETED\"}", NULL);
    wait_delivered(tok, 2);
    wait_trace("job-7b", "\"event\":\"completed\"");
    assert_int_equal(delivered(tok), 2);
}

/* How many times herald logged a configuration reload. */
static int reloads(void)
{
    char line[4096];
    int n = 0;
    FILE *f = fopen(stack.herald.log, "r");
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, "configuration reloaded") != NULL;
    if (f)
        fclose(f);
    return n;
}

struct want_reloads {
    int n;
};

static bool has_reloaded(void *arg)
{
    return reloads() >= ((struct want_reloads *)arg)->n;
}

/* Rewrites herald's config file as base plus extra lines, sends SIGHUP and waits (bounded) for
 * the reload to be logged. */
static void reload_with(const char *base, const char *extra)
{
    char text[8192];
    snprintf(text, sizeof text, "%s%s", base, extra);
    write_file(stack.herald.conf, text);
    struct want_reloads w = {reloads() + 1};
    assert_int_equal(kill(stack.herald.proc.pid, SIGHUP), 0);
    if (!th_wait_until(has_reloaded, &w, 10000))
        fail_msg("herald did not log a reload; see %s", stack.herald.log);
}

/* A SIGHUP destroys the templates at once. An event rendered before it, whose second device waits
 * on another attempt's `pending` dedup mark, sends to that device after the reload: its rendered
 * texts borrowed the freed template strings (ASan: heap-use-after-free; otherwise the new or a
 * garbage channelId). One event, one rendering: both devices get the texts of before. */
static void test_sighup_use_after_free_pending_claim(void **state)
{
    (void)state;
    const char *ta = "ExponentPushToken[pipeHupA00000000000001]";
    const char *tb = "ExponentPushToken[pipeHupB00000000000001]";
    char base[8192], mark[KEY_MAX], rec[8192];
    FILE *f = fopen(stack.herald.conf, "r");
    assert_non_null(f);
    base[fread(base, 1, sizeof base - 1, f)] = '\0';
    fclose(f);
    register_device("u-hup", "a", ta);
    register_device("u-hup", "b", tb);
    reload_with(base, "templates.COMPLETED.channel_id = before-reload\n");
    /* Another attempt, of an instance not known to be gone, holds b's mark until far in the
     * future: the test releases it after the reload. */
    key_ledger(mark, PREFIX, "u-hup", "job-hup:COMPLETED");
    free(th_redis_cmd(&stack.redis, "HSET %s s:b p:00000000000000cc:99999999999999", mark));
    publish("{\"jobId\":\"job-hup\",\"userId\":\"u-hup\",\"status\":\"COMPLETED\"}", NULL);
    wait_delivered(ta, 1); /* rendered and sent to a; b is retried while its mark is pending */
    reload_with(base, "templates.COMPLETED.channel_id = after-reload\n");
    free(th_redis_cmd(&stack.redis, "HDEL %s s:b", mark));
    wait_delivered(tb, 1);
    wait_trace("job-hup", "\"event\":\"completed\"");
    last_record(ta, rec, sizeof rec);
    assert_non_null(strstr(rec, "\"channelId\":\"before-reload\""));
    last_record(tb, rec, sizeof rec);
    if (strstr(rec, "\"channelId\":\"before-reload\"") == NULL)
        fail_msg("device b got other texts than device a: %s", rec);
    reload_with(base, "");
}

/* Localized and rich notifications end to end, with the shipped example texts
 * (config/templates.example.conf) and rich fields: a user whose phone is in French and tablet in
 * English gets each in its language; a device without a locale gets the event's (pt-BR, through
 * pt); every device gets the rich fields, the image URL with the event's S3 key percent-encoded,
 * and the simulator accepts them (it validates them as Expo does). */
static void test_localized_and_rich(void **state)
{
    (void)state;
    const char *phone = "ExponentPushToken[pipeLocPhoneFr00000001]";
    const char *tablet = "ExponentPushToken[pipeLocTabletEn0000001]";
    const char *other = "ExponentPushToken[pipeLocNoLocale000001]";
    char base[8192], extra[2048], rec[8192];
    FILE *f = fopen(stack.herald.conf, "r");
    assert_non_null(f);
    base[fread(base, 1, sizeof base - 1, f)] = '\0';
    fclose(f);
    snprintf(extra, sizeof extra,
             "include = %s/config/templates.example.conf\n"
             "templates.COMPLETED.image = https://photos.example.test/{finalS3Key}\n"
             "templates.COMPLETED.mutable_content = true\n"
             "templates.COMPLETED.content_available = true\n"
             "templates.COMPLETED.badge = 1\n"
             "templates.COMPLETED.tag = {jobId}\n"
             "templates.COMPLETED.icon = ic_photo_ready\n"
             "templates.COMPLETED.interruption_level = time-sensitive\n",
             getenv("HERALD_TEST_SOURCE_DIR"));
    reload_with(base, extra);
    register_device_locale("u-loc", "phone", phone, "fr");
    register_device_locale("u-loc", "tablet", tablet, "en-US");
    register_device_locale("u-loc", "other", other, NULL);
    publish("{\"jobId\":\"job-loc\",\"userId\":\"u-loc\",\"status\":\"COMPLETED\",\"locale\":"
            "\"pt-BR\",\"data\":{\"finalS3Key\":\"final/u10/\u00e9t\u00e9 1.jpg\"}}",
            NULL);
    wait_delivered(phone, 1);
    wait_delivered(tablet, 1);
    wait_delivered(other, 1);
    wait_trace("job-loc", "\"event\":\"completed\"");
    wait_trace("job-loc", "\"locale\":\"pt-BR\""); /* the event's, in its received record */
    const struct {
        const char *const *token;
        const char *title, *body;
    } want[] = {
        {&phone, "Photo Editor - Prête !", "Votre photo retouchée est prête à être téléchargée"},
        {&tablet, "Photo Editor - Ready!", "Your enhanced photo is ready to download"},
        {&other, "Photo Editor - Pronta!", "Sua foto aprimorada está pronta para download"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char t[256], b[256];
        last_record(*want[i].token, rec, sizeof rec);
        snprintf(t, sizeof t, "\"title\":\"%s\"", want[i].title);
        snprintf(b, sizeof b, "\"body\":\"%s\"", want[i].body);
        if (!strstr(rec, t) || !strstr(rec, b))
            fail_msg("device %zu: want %s and %s in %s", i, t, b, rec);
        static const char *const rich[] = {
            "\"richContent\":{\"image\":\"https://photos.example.test/final/u10/"
            "%C3%A9t%C3%A9%201.jpg\"}",
            "\"badge\":1",
            "\"tag\":\"job-loc\"",
            "\"icon\":\"ic_photo_ready\"",
            "\"interruptionLevel\":\"time-sensitive\"",
            "\"mutableContent\":true",
            "\"_contentAvailable\":true",
            "\"collapseId\":\"job-loc:COMPLETED\"",
            "\"action\":\"download\""};
        for (size_t k = 0; k < sizeof rich / sizeof rich[0]; k++)
            if (!strstr(rec, rich[k]))
                fail_msg("device %zu: no %s in %s", i, rich[k], rec);
    }
    reload_with(base, "");
}

/* Runs heraldctl with herald's own config file; returns the exit code and stdout in out. */
static int heraldctl(const char *args, char *out, size_t outlen)
{
    return th_stack_ctl(&stack, args, out, outlen);
}

/* Runs heraldctl until its output holds needle (the trace is written a loop turn after the
 * facts); fails with the last output otherwise. */
struct want_ctl {
    const char *args, *needle;
    char out[65536];
};

static bool ctl_has(void *arg)
{
    struct want_ctl *w = arg;
    return heraldctl(w->args, w->out, sizeof w->out) == 0 && strstr(w->out, w->needle);
}

static void wait_ctl(const char *args, const char *needle)
{
    static struct want_ctl w;
    w.args = args;
    w.needle = needle;
    if (!th_wait_until(ctl_has, &w, 30000))
        fail_msg("heraldctl %s: no %s in:\n%s", args, needle, w.out);
}

/* trace:<jobId> (LIST) and trace:user:<U> (ZSET) shared one namespace: the job id "user:alice"
 * made alice's job index a LIST, after which every trace write for her failed with WRONGTYPE and
 * `trace --user alice` errored. */
static void test_trace_job_id_collides_with_user_index(void **state)
{
    (void)state;
    static char out[65536];
    const char *tok = "ExponentPushToken[pipeTraceAlice000000001]";
    register_device("alice", "phone", tok);
    publish("{\"jobId\":\"user:alice\",\"userId\":\"alice\",\"status\":\"COMPLETED\"}", NULL);
    wait_delivered(tok, 1);
    wait_trace("user:alice", "\"event\":\"completed\"");
    publish("{\"jobId\":\"alice-2\",\"userId\":\"alice\",\"status\":\"COMPLETED\"}", NULL);
    wait_delivered(tok, 2);
    wait_trace("alice-2", "\"event\":\"completed\"");
    assert_int_equal(heraldctl("trace --user alice --json", out, sizeof out), 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_true(json_is_array(j));
    bool first = false, second = false;
    for (size_t i = 0; i < json_array_size(j); i++) {
        const char *job = json_string_value(json_object_get(json_array_get(j, i), "jobId"));
        first |= job && strcmp(job, "user:alice") == 0;
        second |= job && strcmp(job, "alice-2") == 0;
    }
    json_decref(j);
    assert_true(first && second);
    assert_int_equal(heraldctl("trace --job user:alice", out, sizeof out), 0);
    assert_non_null(strstr(out, "completed"));
}

/* trace:device:<D> was not scoped to a user: `trace --device` mixed users who share a device id,
 * and purging one user's device deleted the other's index. */
static void test_trace_device_index_shared_by_users(void **state)
{
    (void)state;
    static char out[65536];
    const char *tc = "ExponentPushToken[pipeTraceCarol000000001]";
    const char *td = "ExponentPushToken[pipeTraceDave0000000001]";
    register_device("carol", "tablet", tc);
    register_device("dave", "tablet", td);
    publish("{\"jobId\":\"carol-1\",\"userId\":\"carol\",\"status\":\"COMPLETED\"}", NULL);
    publish("{\"jobId\":\"dave-1\",\"userId\":\"dave\",\"status\":\"COMPLETED\"}", NULL);
    /* The receipt is each job's last record: nothing writes to the indexes after it. */
    wait_trace("carol-1", "\"event\":\"receipt\"");
    wait_trace("dave-1", "\"event\":\"receipt\"");
    wait_ctl("trace --user carol --device tablet", "carol-1");
    wait_ctl("trace --user dave --device tablet", "dave-1");
    assert_int_equal(heraldctl("trace --user carol --device tablet", out, sizeof out), 0);
    assert_null(strstr(out, "dave-1"));
    assert_int_equal(heraldctl("trace --device tablet", out, sizeof out), 2);
    assert_non_null(strstr(out, "--user"));
    assert_int_equal(heraldctl("tokens delete --user carol --device tablet", out, sizeof out), 0);
    assert_int_equal(heraldctl("trace --user carol --device tablet", out, sizeof out), 1);
    assert_int_equal(heraldctl("trace --user dave --device tablet", out, sizeof out), 0);
    assert_non_null(strstr(out, "dave-1"));
}

static void test_heraldctl_publish_and_trace(void **state)
{
    (void)state;
    static char out[65536];
    const char *tok = "ExponentPushToken[pipeCtl0000000000000001]";
    register_device("u8", "phone", tok);
    assert_int_equal(heraldctl("publish --user u8 --job job-8 --status FAILED --sns "
                               "--error 'Out of credits'",
                               out, sizeof out),
                     0);
    assert_non_null(strstr(out, "published to " TOPIC));
    wait_delivered(tok, 1);
    wait_trace("job-8", "\"event\":\"completed\"");
    assert_int_equal(heraldctl("trace --job job-8", out, sizeof out), 0);
    assert_non_null(strstr(out, "received"));
    assert_non_null(strstr(out, "envelope=sns"));
    assert_non_null(strstr(out, "ticket"));
    assert_null(strstr(out, "pipeCtl0000000000000001")); /* never a whole token */
    assert_int_equal(heraldctl("trace --user u8 --json", out, sizeof out), 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_true(json_is_array(j));
    assert_true(json_array_size(j) >= 4);
    json_decref(j);
    assert_int_equal(heraldctl("trace --user u8 --device phone", out, sizeof out), 0);
    assert_non_null(strstr(out, "job-8"));
    assert_int_equal(heraldctl("trace --job no-such-job", out, sizeof out), 1);
    assert_int_equal(heraldctl("trace --job a --user b", out, sizeof out), 2);
    assert_int_equal(heraldctl("publish --user u8 --job j --status DONE", out, sizeof out), 2);
    char rec[8192];
    last_record(tok, rec, sizeof rec);
    assert_non_null(strstr(rec, "\"body\":\"Out of credits\""));
}

/* The simulator's last record line holding both needles, or "". */
struct want_record {
    const char *token, *needle;
    char *out;
    size_t outlen;
};

/* The last such line into w->out ("" while there is none). */
static bool find_record(void *arg)
{
    struct want_record *w = arg;
    char path[300], line[8192];
    snprintf(path, sizeof path, "%s/sim.jsonl", stack.dir);
    w->out[0] = '\0';
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, w->token) && strstr(line, w->needle))
            snprintf(w->out, w->outlen, "%s", line);
    if (f)
        fclose(f);
    return w->out[0] != '\0';
}

/* Waits for that line: the simulator flushes its record every 50 ms, after its stats count the
 * message, and the same request's other lines may be in the file first. */
static void record_of(const char *token, const char *needle, char *out, size_t outlen)
{
    struct want_record w = {token, needle, out, outlen};
    th_wait_until(find_record, &w, 10000);
}

/* Issue 10 item 4: a dedup mark sent:<jobId>:<STATUS>:<deviceId> was ambiguous, ':' being legal
 * in job and device ids: job "X:COMPLETED" FAILED for device "d" and job "X" COMPLETED for
 * device "FAILED:d" shared one mark, so the second was skipped as a duplicate (and its offset
 * committed). Nor did the mark name the user: two users' devices of one id shared marks. */
static void test_ambiguous_dedup_marks_lose_notifications(void **state)
{
    (void)state;
    const char *td = "ExponentPushToken[pipeColonD000000000000001]";
    const char *tf = "ExponentPushToken[pipeColonFailedD00000001]";
    register_device("u11", "d", td);
    register_device("u11", "FAILED:d", tf);
    publish("{\"jobId\":\"X:COMPLETED\",\"userId\":\"u11\",\"status\":\"FAILED\"}", NULL);
    wait_delivered(td, 1);
    wait_delivered(tf, 1);
    wait_trace("X:COMPLETED", "\"event\":\"completed\"");
    publish("{\"jobId\":\"X\",\"userId\":\"u11\",\"status\":\"COMPLETED\"}", NULL);
    wait_trace("X", "\"event\":\"completed\"");
    assert_int_equal(delivered(td), 2);
    assert_int_equal(delivered(tf), 2);

    const char *ta = "ExponentPushToken[pipeSameDeviceUserA00001]";
    const char *tb = "ExponentPushToken[pipeSameDeviceUserB00001]";
    register_device("u12", "phone", ta);
    register_device("u13", "phone", tb);
    publish("{\"jobId\":\"job-11\",\"userId\":\"u12\",\"status\":\"COMPLETED\"}", NULL);
    publish("{\"jobId\":\"job-11\",\"userId\":\"u13\",\"status\":\"COMPLETED\"}", NULL);
    wait_trace_count("job-11", "\"event\":\"completed\"", 2);
    assert_int_equal(delivered(ta), 1);
    assert_int_equal(delivered(tb), 1);
}

/* Issue 10 item 3: a slow send outlived its claim. The claim was never renewed, so an event
 * redelivered while the first attempt still waited for Expo claimed the expired mark and sent
 * again: a duplicate without any crash. dedup.pending_ttl_s is 5 s in this file (the least
 * allowed) so that a reply delayed 8 s outlives it; with the shipped 120 s the reply would have
 * to wait over two minutes (the Expo client retries for up to expo.max_retry_age_s = 600 s). */
/* The event's `received` record waits to ride with its claim; an event of a user without
 * devices has no claim, and its records are written all the same, with the user's index. */
static void test_event_without_devices_traced(void **state)
{
    (void)state;
    publish("{\"jobId\":\"job-nodev\",\"userId\":\"u-nodev\",\"status\":\"COMPLETED\"}", NULL);
    wait_trace("job-nodev", "\"deliverable\":0");
    char *t = trace_of("job-nodev");
    assert_non_null(strstr(t, "\"event\":\"received\""));
    free(t);
    char k[KEY_MAX];
    key_trace_user(k, PREFIX, "u-nodev");
    char *idx = th_redis_cmd(&stack.redis, "ZRANGE %s 0 -1", k);
    assert_non_null(idx);
    assert_non_null(strstr(idx, "job-nodev"));
    free(idx);
}

static void test_slow_send_outlives_its_claim(void **state)
{
    (void)state;
    const char *tok = "ExponentPushToken[pipeSlowSend000000000001]";
    const char *ev = "{\"jobId\":\"job-10\",\"userId\":\"u10\",\"status\":\"COMPLETED\"}";
    register_device("u10", "phone", tok);
    sim_control("{\"latency-ms\":8000}");
    publish(ev, NULL);
    wait_delivered(tok, 1); /* accepted at once; the reply comes 8 s later */
    sim_control("{\"latency-ms\":0}");
    publish(ev, NULL); /* the same event again while the first attempt waits for its reply */
    wait_trace_count("job-10", "\"event\":\"completed\"", 2);
    assert_int_equal(delivered(tok), 1);
    char *t = trace_of("job-10");
    assert_int_equal(count_of(t, "\"event\":\"ticket\""), 1);
    assert_int_equal(count_of(t, "\"event\":\"duplicate\""), 1);
    free(t);
}

/* Instances whose lease is live now (by Redis's clock), as text. Caller frees. */
static char *live_leases(void)
{
    char k[KEY_MAX];
    key_instances(k, PREFIX);
    return th_redis_cmd(&stack.redis, "EVAL %s 1 %s",
                        "local t = redis.call('TIME') "
                        "local now = t[1] * 1000 + math.floor(t[2] / 1000) "
                        "return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')",
                        k);
}

/* Issue 11: after a kill -9 the successor waited for the dead instance's claims to expire
 * (dedup.pending_ttl_s, 120 s shipped). A claim names its owner now: one whose owner's lease
 * lapsed is taken over at once; one whose owner lives is waited for, and taken over once the
 * owner's lease lapses. The marks here have deadlines far ahead, so only the owner's lease can
 * free them. */
static void test_claims_of_a_gone_instance_taken_over(void **state)
{
    (void)state;
    const char *ta = "ExponentPushToken[pipeLeaseA0000000000001]";
    const char *tb = "ExponentPushToken[pipeLeaseB0000000000001]";
    const char *gone = "00000000000000aa", *alive = "00000000000000bb";
    char inst[KEY_MAX], led[KEY_MAX];
    long long now_ms = (long long)time(NULL) * 1000;
    key_instances(inst, PREFIX);
    key_ledger(led, PREFIX, "u14", "job-14:COMPLETED");
    register_device("u14", "a", ta);
    register_device("u14", "b", tb);
    free(th_redis_cmd(&stack.redis, "ZADD %s %lld %s %lld %s", inst, now_ms - 1000, gone,
                      now_ms + 600000, alive));
    free(th_redis_cmd(&stack.redis, "HSET %s s:a p:%s:%lld s:b p:%s:%lld", led, gone,
                      now_ms + 3600000, alive, now_ms + 3600000));
    publish("{\"jobId\":\"job-14\",\"userId\":\"u14\",\"status\":\"COMPLETED\"}", NULL);
    wait_delivered(ta, 1);
    wait_trace("job-14", "\"event\":\"takeover\"");
    assert_true(th_wait_file_contains(stack.herald.log, "claim-pending", NULL, 0, 30000));
    assert_int_equal(delivered(tb), 0); /* its owner lives: waited for */
    free(th_redis_cmd(&stack.redis, "ZADD %s %lld %s", inst, now_ms - 1000, alive)); /* it died */
    wait_delivered(tb, 1);
    wait_trace("job-14", "\"event\":\"completed\"");
    char *t = trace_of("job-14");
    assert_int_equal(count_of(t, "\"event\":\"takeover\""), 2);
    assert_int_equal(count_of(t, "\"event\":\"ticket\""), 2);
    free(t);
    char *v = th_redis_cmd(&stack.redis, "HGET %s s:b", led);
    assert_string_equal(v, "d");
    free(v);
    v = live_leases(); /* herald's own */
    assert_string_equal(v, "1");
    free(v);
}

static void restart_herald(void)
{
    char old[400];
    assert_int_equal(th_herald_stop(&stack.herald, SIGTERM), 0);
    char *v = live_leases(); /* a clean stop gives the lease up: none waits for its claims */
    assert_string_equal(v, "0");
    free(v);
    snprintf(old, sizeof old, "%s.%ld", stack.herald.log,
             (long)time(NULL)); /* kept for diagnosis */
    rename(stack.herald.log, old);
    assert_int_equal(start_herald_proc(), 0);
}

/* Issue 10 item 2: heraldctl dlq replay did nothing for failed notifications. Once the DLQ
 * record of a permanently failed notification was acknowledged its device's mark became `done`,
 * so the replayed event was skipped as a duplicate; a batch record came back as a plain job
 * event without data.error. Here Expo refuses herald (the simulator requires an access token
 * herald lacks: UNAUTHORIZED, a permanent failure) until the token is configured and herald
 * restarted; the replay then delivers to exactly the devices that failed, once. */
static void test_dlq_replay_skips_failed_notifications_as_duplicates(void **state)
{
    (void)state;
    static char out[65536];
    char rec[8192];
    const char *t1 = "ExponentPushToken[pipeReplay0000000000001]";
    const char *t2 = "ExponentPushToken[pipeReplay0000000000002]";
    const char *t3 = "ExponentPushToken[pipeReplay0000000000003]";
    const char *job = "{\"jobId\":\"job-9\",\"userId\":\"u9\",\"status\":\"FAILED\","
                      "\"message\":\"failed\",\"timestamp\":\"2026-11-24T10:00:00.000Z\","
                      "\"data\":{\"error\":\"The image was too dark\"}}";
    const char *batch = "{\"batchJobId\":\"batch-9\",\"userId\":\"u9\",\"status\":\"COMPLETED\","
                        "\"completedCount\":4,\"totalCount\":4}";
    register_device("u9", "d1", t1);
    register_device("u9", "d2", t2);
    sim_control("{\"access-token\":\"sim-access-token\"}");
    publish(job, NULL);
    publish(batch, NULL);
    wait_trace("job-9", "\"event\":\"completed\"");
    wait_trace("batch-9", "\"event\":\"completed\"");
    char *t = trace_of("job-9");
    assert_int_equal(count_of(t, "\"event\":\"failed\""), 2);
    assert_non_null(strstr(t, "UNAUTHORIZED"));
    free(t);

    expo_conf = "expo.access_token = sim-access-token\n";
    restart_herald();
    /* An ordinary redelivery does not send a notification that failed for good. */
    publish(job, NULL);
    wait_trace_count("job-9", "\"event\":\"completed\"", 2);
    assert_int_equal(delivered(t1), 0);
    assert_int_equal(delivered(t2), 0);

    register_device("u9", "d3", t3); /* came after the failure: nothing to replay for it */
    assert_int_equal(heraldctl("dlq replay", out, sizeof out), 0);
    assert_non_null(strstr(out, "replayed "));
    wait_trace_count("job-9", "\"event\":\"completed\"", 4); /* once per failed device */
    wait_trace_count("batch-9", "\"event\":\"completed\"", 3);
    assert_int_equal(delivered(t1), 2);
    assert_int_equal(delivered(t2), 2);
    assert_int_equal(delivered(t3), 0);
    record_of(t1, "\"collapseId\":\"job-9:FAILED\"", rec, sizeof rec);
    assert_non_null(strstr(rec, "\"body\":\"The image was too dark\""));
    record_of(t2, "\"collapseId\":\"batch-9:COMPLETED\"", rec, sizeof rec);
    assert_non_null(strstr(rec, "\"title\":\"Photo Editor - Batch Complete!\""));
    assert_non_null(strstr(rec, "\"body\":\"All 4 photos are ready for download\""));

    /* The same replay again finds the mark done. */
    const char *h[] = {"herald-replay-device", "d1", NULL};
    publish(job, h);
    wait_trace_count("job-9", "\"event\":\"completed\"", 5);
    assert_int_equal(delivered(t1), 2);
}

#ifdef TH_ON_CLUSTER
/* Redis Cluster: a token's owner key lives in the token's slot, apart from the user's devices, and
 * names the device the token belongs to (DESIGN.md "Reassignment across slots"). A device whose
 * token's owner key names another (user, device) is skipped, traced `skipped` (owner_changed),
 * and its event completes; once the owner key names it again the next event reaches it. */
static void test_owner_key_of_another_device_skipped(void **state)
{
    (void)state;
    const char *tok = "ExponentPushToken[pipeOwnerMoved00000000001]";
    register_device("u30", "phone", tok);
    char k[KEY_MAX];
    key_owner(k, PREFIX, tok);
    char *mine = th_redis_cmd(&stack.redis, "GET %s", k);
    assert_non_null(mine);
    assert_string_equal(mine, "u30\x1fphone");
    free(th_redis_cmd(&stack.redis, "SET %s %s", k, "u31\x1fnew-phone"));
    publish("{\"jobId\":\"job-30\",\"userId\":\"u30\",\"status\":\"COMPLETED\"}", NULL);
    wait_trace("job-30", "\"event\":\"completed\"");
    char *t = trace_of("job-30");
    assert_non_null(strstr(t, "\"reason\":\"owner_changed\""));
    free(t);
    assert_int_equal(delivered(tok), 0);
    free(th_redis_cmd(&stack.redis, "SET %s %s", k, mine));
    free(mine);
    publish("{\"jobId\":\"job-30b\",\"userId\":\"u30\",\"status\":\"COMPLETED\"}", NULL);
    wait_delivered(tok, 1);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_completed_two_devices),
        cmocka_unit_test(test_repeat_is_not_resent),
        cmocka_unit_test(test_envelopes_and_headers),
        cmocka_unit_test(test_inactive_and_expired_skipped),
        cmocka_unit_test(test_late_unregistered_receipt),
        cmocka_unit_test(test_poison_goes_to_dlq),
        cmocka_unit_test(test_expo_storm),
        cmocka_unit_test(test_heraldctl_publish_and_trace),
        cmocka_unit_test(test_sighup_use_after_free_pending_claim),
        cmocka_unit_test(test_localized_and_rich),
        cmocka_unit_test(test_trace_job_id_collides_with_user_index),
        cmocka_unit_test(test_trace_device_index_shared_by_users),
        cmocka_unit_test(test_clean_restart_reprocesses_nothing),
        cmocka_unit_test(test_ambiguous_dedup_marks_lose_notifications),
        cmocka_unit_test(test_event_without_devices_traced),
        cmocka_unit_test(test_slow_send_outlives_its_claim),
        cmocka_unit_test(test_claims_of_a_gone_instance_taken_over),
        cmocka_unit_test(test_dlq_replay_skips_failed_notifications_as_duplicates),
#ifdef TH_ON_CLUSTER
        cmocka_unit_test(test_owner_key_of_another_device_skipped),
#endif
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
