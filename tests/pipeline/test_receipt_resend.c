/* test_receipt_resend.c - issue 10 item 7 end to end: a receipt MessageRateExceeded resends that
 * one notification (same token, same collapseId) after a backoff, up to expo.max_attempts
 * resends, then it is traced `failed`; other devices of the event get one notification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "db/keys.h"
#include "tests/support/harness.h"
#include "tests/support/kafka_harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SECRET "resend-test-secret-0123456789abcdef00"
#define TOPIC "job-events"
#define PREFIX "herald:"
#define MAX_RESENDS 2

static th_redis_t redis;
static th_herald_t herald;
static th_proc_t sim;
static char sim_url[96];
static char dir[256];
static const char *bootstrap;

static int setup(void **state)
{
    (void)state;
    char path[300], conf[4096];
    if (th_tmpdir(dir, sizeof dir) != 0 || th_redis_start(&redis, 0) != 0)
        return -1;
    if ((bootstrap = th_kafka_start(TOPIC)) == NULL)
        return -1;
    snprintf(path, sizeof path, "%s/secret", dir);
    FILE *f = fopen(path, "w");
    fputs(SECRET "\n", f);
    fclose(f);
    if (th_sim_start(&sim, dir, NULL, sim_url, sizeof sim_url) != 0)
        return -1;
    /* Receipts are due 15 min after sending by default (expo.receipt_delay_s) and polled every
     * minute: checked at once and every second here, so that each resend's receipt comes back
     * within the test's waits. */
    snprintf(conf, sizeof conf,
             "http.listen = 127.0.0.1:0\n"
             "admin.listen = 127.0.0.1:0\n"
             "redis.url = %s\n"
             "auth.jwt.hs256_secret_file = %s/secret\n"
             "kafka.bootstrap.servers = %s\n"
             "kafka.group.id = herald-resend-test\n"
             "kafka.session.timeout.ms = 6000\n"
             "kafka.heartbeat.interval.ms = 2000\n"
             "queue.topics = " TOPIC "\n"
             "expo.url = %s\n"
             "expo.receipt_delay_s = 0\n"
             "expo.receipt_poll_interval_s = 1\n"
             "expo.backoff_base_ms = 20\n"
             "expo.backoff_cap_ms = 200\n"
             "expo.max_attempts = %d\n"
             "runtime.dir = %s/run\n",
             redis.url, dir, bootstrap, sim_url, MAX_RESENDS, dir);
    snprintf(herald.dir, sizeof herald.dir, "%s", dir);
    if (th_herald_start(&herald, conf, NULL) != 0)
        return -1;
    if (!th_wait_file_contains(herald.log, "kafka partitions assigned", NULL, 0, 60000)) {
        fprintf(stderr, "herald never got partitions; see %s\n", herald.log);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int code = th_herald_stop(&herald, SIGTERM);
    th_stop(&sim, SIGTERM, 5000);
    th_redis_stop(&redis);
    th_kafka_stop();
    return code == 0 ? 0 : -1;
}

static void register_device(const char *user, const char *device, const char *token)
{
    char url[256], auth[2048], body[512];
    char payload[256];
    snprintf(payload, sizeof payload, "{\"sub\":\"%s\",\"exp\":%lld}", user,
             (long long)time(NULL) + 3600);
    char *jwt = th_jwt_hs256(SECRET, payload);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", jwt);
    free(jwt);
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    snprintf(body, sizeof body,
             "{\"deviceId\":\"%s\",\"expoPushToken\":\"%s\",\"platform\":\"android\"}", device,
             token);
    th_herald_url(&herald, false, "/v1/device-tokens", url, sizeof url);
    th_resp_t r;
    assert_int_equal(th_http("POST", url, h, body, strlen(body), &r), 0);
    if (r.status != 201 && r.status != 200)
        fail_msg("register: %ld %s", r.status, buf_cstr(&r.body));
    th_resp_cleanup(&r);
}

static char *trace_of(const char *job)
{
    char k[KEY_MAX];
    key_trace(k, PREFIX, job);
    return th_redis_cmd(&redis, "LRANGE %s 0 -1", k);
}

/* Lines of the job's trace holding all of a, b (b may be NULL). */
static size_t trace_count(const char *job, const char *a, const char *b)
{
    char *t = trace_of(job);
    size_t n = 0;
    for (char *line = t ? strtok(t, "\n") : NULL; line; line = strtok(NULL, "\n"))
        if (strstr(line, a) && (!b || strstr(line, b)))
            n++;
    free(t);
    return n;
}

struct want {
    const char *job, *a, *b;
    size_t n;
};

static bool has_count(void *arg)
{
    struct want *w = arg;
    return trace_count(w->job, w->a, w->b) >= w->n;
}

static void wait_trace(const char *job, const char *a, const char *b, size_t n)
{
    struct want w = {job, a, b, n};
    if (!th_wait_until(has_count, &w, 30000)) {
        char *t = trace_of(job);
        fail_msg("trace of %s: %zu lines with %s %s, want %zu:\n%s", job, trace_count(job, a, b), a,
                 b ? b : "", n, t ? t : "(none)");
    }
}

/* Record lines (accepted messages) for a token, and how many carry the collapseId. */
static size_t records(const char *token, const char *collapse, size_t *with_collapse)
{
    char path[300], line[8192];
    snprintf(path, sizeof path, "%s/sim.jsonl", dir);
    size_t n = 0;
    *with_collapse = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, token)) {
            n++;
            *with_collapse += strstr(line, collapse) != NULL;
        }
    fclose(f);
    return n;
}

struct want_rec {
    const char *token;
    size_t n;
};

static bool has_records(void *arg)
{
    struct want_rec *w = arg;
    size_t c;
    return records(w->token, "", &c) >= w->n;
}

static bool no_checks(void *arg)
{
    (void)arg;
    char k[KEY_MAX];
    key_receipts(k, PREFIX);
    char *v = th_redis_cmd(&redis, "ZCARD %s", k);
    bool ok = v && strcmp(v, "0") == 0;
    free(v);
    return ok;
}

static void test_rate_exceeded_receipts_resend(void **state)
{
    (void)state;
    const char *once = "ExponentPushToken[rrLateRateExceededOnceA01]";
    const char *always = "ExponentPushToken[rrLateRateExceededB00001]";
    const char *plain = "ExponentPushToken[rrPlain0000000000000C01]";
    const char *collapse = "\"collapseId\":\"rr-job-1:COMPLETED\"";
    register_device("rr-user", "dev-a", once);
    register_device("rr-user", "dev-b", always);
    register_device("rr-user", "dev-c", plain);
    assert_int_equal(th_kafka_send(TOPIC, NULL,
                                   "{\"jobId\":\"rr-job-1\",\"userId\":\"rr-user\","
                                   "\"status\":\"COMPLETED\"}",
                                   NULL),
                     0);
    assert_int_equal(th_kafka_flush(), 0);

    /* A: one MessageRateExceeded receipt, one resend, whose receipt is ok. */
    wait_trace("rr-job-1", "\"event\":\"resend\"", "\"deviceId\":\"dev-a\"", 1);
    wait_trace("rr-job-1", "\"event\":\"receipt\"", "\"deviceId\":\"dev-a\"", 2);
    wait_trace("rr-job-1", "\"event\":\"receipt\"", "\"status\":\"ok\"", 2); /* A's second, C's */
    /* B: MAX_RESENDS resends, each rate-exceeded too, then failed. */
    wait_trace("rr-job-1", "\"event\":\"failed\"", "\"deviceId\":\"dev-b\"", 1);
    assert_int_equal(trace_count("rr-job-1", "\"event\":\"resend\"", "\"deviceId\":\"dev-b\""),
                     MAX_RESENDS);
    assert_int_equal(trace_count("rr-job-1", "\"event\":\"receipt\"", "\"deviceId\":\"dev-b\""),
                     MAX_RESENDS + 1);
    assert_int_equal(trace_count("rr-job-1", "\"event\":\"resend\"", "\"deviceId\":\"dev-a\""), 1);
    assert_int_equal(trace_count("rr-job-1", "\"event\":\"resend\"", "\"deviceId\":\"dev-c\""), 0);
    assert_int_equal(trace_count("rr-job-1", "\"event\":\"failed\"", "\"deviceId\":\"dev-a\""), 0);

    /* Every send of A and B carried the event's collapseId; C got one notification. */
    struct want_rec wa = {once, 2}, wb = {always, 1 + MAX_RESENDS}, wc = {plain, 1};
    assert_true(th_wait_until(has_records, &wa, 10000));
    assert_true(th_wait_until(has_records, &wb, 10000));
    assert_true(th_wait_until(has_records, &wc, 10000));
    size_t c;
    assert_int_equal(records(once, collapse, &c), 2);
    assert_int_equal(c, 2);
    assert_int_equal(records(always, collapse, &c), 1 + MAX_RESENDS);
    assert_int_equal(c, 1 + MAX_RESENDS);
    assert_int_equal(records(plain, collapse, &c), 1);
    /* Nothing is left to check or resend (the last check is forgotten just after its report). */
    assert_true(th_wait_until(no_checks, NULL, 10000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_exceeded_receipts_resend),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
