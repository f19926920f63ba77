/* test_ops_metrics.c - the metrics the alert rules (ops/prometheus-rules.yml) and the dashboard
 * (ops/grafana-dashboard.json) query exist in a running herald's /metrics.
 *
 * Starts herald as in production, with every dependency (Redis, Kafka's mock cluster, the Expo
 * simulator) so every module registers its families, drives what gives the labelled families
 * samples (registrations, a deletion, a refused and a rate-limited request, a job event that meets
 * an Expo 429, is delivered and deactivates a token), then scrapes /metrics and lets
 * tests/ops/check_ops.py compare it with every query (names, histogram suffixes, labels). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/support/harness.h"
#include "tests/support/kafka_harness.h"
#include "tests/support/stack.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#define SECRET "ops-metrics-test-secret-0123456789abcdef"
#define TOPIC "job-events"
#define TOKEN "ExponentPushToken[opsMetrics0000000000001]"
#define DEAD_TOKEN "ExponentPushToken[opsUnregistered00000001]"

static th_stack_t stack;

static int setup(void **state)
{
    (void)state;
    if (th_stack_start(&stack, TOPIC, SECRET) != 0)
        return -1;
    /* consumer lag and partition gauges are filled once the group owns the partitions */
    return th_stack_herald(&stack, TOPIC, "herald-ops-test",
                           "expo.receipt_delay_s = 0\n"
                           "expo.receipt_poll_interval_s = 1\n"
                           "expo.max_attempts = 30\n"
                           "ratelimit.user_rate = 1\n"
                           "ratelimit.user_burst = 5\n");
}

static int teardown(void **state)
{
    (void)state;
    return th_stack_stop(&stack);
}

/* One API request as `user` (NULL: with a malformed JWT); returns the HTTP status. */
static long api(const char *method, const char *user, const char *path, const char *body)
{
    return th_stack_api(&stack, SECRET, method, user, path, body);
}

static long post_device(const char *user, const char *device, const char *token)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"deviceId\":\"%s\",\"expoPushToken\":\"%s\",\"platform\":\"ios\"}", device, token);
    return api("POST", user, "/v1/device-tokens", body);
}

static void sim_control(const char *json)
{
    char url[128];
    const char *h[] = {"Content-Type: application/json", NULL};
    snprintf(url, sizeof url, "%s/control", stack.sim_url);
    th_resp_t r;
    assert_int_equal(th_http("POST", url, h, json, strlen(json), &r), 0);
    if (r.status != 200)
        fail_msg("simulator /control %s: %ld %s", json, r.status, buf_cstr(&r.body));
    th_resp_cleanup(&r);
}

static char *scrape(void)
{
    char url[256];
    th_resp_t r;
    th_herald_url(&stack.herald, true, "/metrics", url, sizeof url);
    if (th_http("GET", url, NULL, NULL, 0, &r) != 0)
        return NULL;
    char *text = r.status == 200 ? strdup(buf_cstr(&r.body)) : NULL;
    th_resp_cleanup(&r);
    return text;
}

struct want {
    const char *needle;
};

static bool scrape_has(void *arg)
{
    const struct want *w = arg;
    char *text = scrape();
    bool ok = text && strstr(text, w->needle);
    free(text);
    return ok;
}

static void wait_metric(const char *needle)
{
    struct want w = {needle};
    if (!th_wait_until(scrape_has, &w, 30000))
        fail_msg("/metrics never showed %s", needle);
}

static void test_queried_metrics_exist(void **state)
{
    (void)state;
    assert_int_equal(post_device("ops-user", "phone", TOKEN), 201);
    assert_int_equal(post_device("ops-user", "tablet", DEAD_TOKEN), 201);
    assert_int_equal(post_device("ops-other", "old", "ExponentPushToken[opsMetricsOther00000001]"),
                     201);
    assert_int_equal(api("DELETE", "ops-other", "/v1/device-tokens?deviceId=old", NULL), 200);
    assert_int_equal(api("GET", NULL, "/v1/device-tokens", NULL), 401);
    /* ratelimit.user_burst = 5 at 1 a second: the limit refuses within a few dozen requests */
    long status = 0;
    for (int i = 0; i < 50 && status != 429; i++)
        status = api("GET", "ops-busy", "/v1/device-tokens", NULL);
    assert_int_equal(status, 429);

    /* Expo throttles the first attempts; herald retries and delivers. */
    sim_control("{\"fail-429\":1}");
    assert_int_equal(th_stack_publish(TOPIC, "{\"jobId\":\"ops-job\",\"userId\":\"ops-user\","
                                             "\"status\":\"COMPLETED\"}"),
                     0);
    wait_metric("herald_expo_retries_total{reason=\"429\"}");
    sim_control("{\"fail-429\":0}");
    wait_metric("herald_notifications_total{outcome=\"ok\"} 1");
    wait_metric("herald_tokens_deactivated_total{source=\"ticket\"} 1");
    wait_metric("herald_expo_receipts_total{status=");

    char *text = scrape();
    assert_non_null(text);
    char path[300], cmd[2048];
    snprintf(path, sizeof path, "%s/metrics.txt", stack.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(text);
    const char *src = getenv("HERALD_TEST_SOURCE_DIR");
    assert_non_null(src);
    snprintf(cmd, sizeof cmd,
             "python3 %s/tests/ops/check_ops.py metrics %s %s/ops/prometheus-rules.yml "
             "%s/ops/grafana-dashboard.json",
             src, path, src, src);
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
        fail_msg("the rules or the dashboard query metrics herald does not export (scrape: %s)",
                 path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queried_metrics_exist),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
