/* test_daemon.c - the herald process as ops see it: the exit code after a fatal runtime error, a
 * start-up that cannot write its --ready-file, and where dead letters go when herald consumes
 * more than one topic. Real herald, redis-server, Expo simulator and a librdkafka mock cluster
 * owned by the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/support/harness.h"
#include "tests/support/kafka_harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define KAFKA_API_HEARTBEAT 12
#define KAFKA_ERR_FENCED_INSTANCE_ID 82

static th_redis_t redis;
static th_proc_t sim;
static char sim_url[96];
static char dir[256];
static const char *bootstrap;

/* herald's configuration for these tests, with `extra` lines appended. */
static void conf_text(char *out, size_t outlen, const char *extra)
{
    snprintf(out, outlen,
             "http.listen = 127.0.0.1:0\n"
             "admin.listen = 127.0.0.1:0\n"
             "redis.url = %s\n"
             "auth.mode = trusted-header\n"
             "kafka.bootstrap.servers = %s\n"
             "kafka.session.timeout.ms = 6000\n"
             "kafka.heartbeat.interval.ms = 500\n"
             "expo.url = %s\n"
             "shutdown.timeout_s = 5\n"
             "%s",
             redis.url, bootstrap, sim_url, extra);
}

static void start_herald(th_herald_t *h, const char *extra)
{
    char conf[4096];
    conf_text(conf, sizeof conf, extra);
    memset(h, 0, sizeof *h);
    assert_int_equal(th_herald_start(h, conf, NULL), 0);
    if (!th_wait_file_contains(h->log, "kafka partitions assigned", NULL, 0, 60000))
        fail_msg("herald never got partitions; see %s", h->log);
}

static bool exited(void *arg)
{
    return !th_alive(arg);
}

/* Waits (bounded) for the process to exit by itself; its exit code, or -1 (then it is killed). */
static int wait_exit(th_proc_t *p, int timeout_ms)
{
    bool gone = th_wait_until(exited, p, timeout_ms);
    int st = th_stop(p, SIGKILL, 1000);
    return gone && st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **state)
{
    (void)state;
    if (th_tmpdir(dir, sizeof dir) != 0 || th_redis_start(&redis, 0) != 0)
        return -1;
    bootstrap = th_kafka_start("fatal-t,dl-a,dl-b");
    if (bootstrap == NULL)
        return -1;
    return th_sim_start(&sim, dir, NULL, sim_url, sizeof sim_url);
}

static int teardown(void **state)
{
    (void)state;
    th_stop(&sim, SIGTERM, 5000);
    th_redis_stop(&redis);
    th_kafka_stop();
    return 0;
}

/* A --ready-file herald cannot write stops the start-up at once, with exit code 1 and a line
 * that names the file and the reason (it used to hang with its signal handles open). */
static void test_ready_file_unwritable(void **state)
{
    (void)state;
    char d[256], conf_path[320], log_path[320], bin[512], conf[4096];
    assert_int_equal(th_tmpdir(d, sizeof d), 0);
    snprintf(conf_path, sizeof conf_path, "%s/herald.conf", d);
    snprintf(log_path, sizeof log_path, "%s/herald.log", d);
    snprintf(bin, sizeof bin, "%s/herald", th_bin_dir());
    snprintf(conf, sizeof conf,
             "http.listen = 127.0.0.1:0\nadmin.listen = 127.0.0.1:0\nredis.url = %s\n"
             "auth.mode = trusted-header\n",
             redis.url);
    FILE *f = fopen(conf_path, "w");
    assert_non_null(f);
    fputs(conf, f);
    fclose(f);
    char *argv[] = {bin, "--config", conf_path, "--ready-file", "/nonexistent/dir/ready", NULL};
    th_proc_t p;
    assert_int_equal(th_spawn(&p, "herald", argv, NULL, log_path), 0);
    assert_int_equal(wait_exit(&p, 15000), 1);
    char line[2048];
    assert_true(th_wait_file_contains(log_path, "cannot start", line, sizeof line, 1000));
    assert_non_null(strstr(line, "--ready-file /nonexistent/dir/ready"));
    assert_non_null(strstr(line, "No such file or directory"));
}

/* librdkafka's fatal consumer error (a static member fenced: the broker answers a heartbeat with
 * FENCED_INSTANCE_ID) stops herald as a SIGTERM would, and it exits 1, not 0. */
static void test_kafka_fatal_exits_nonzero(void **state)
{
    (void)state;
    th_herald_t h;
    start_herald(&h, "kafka.group.id = herald-fatal\n"
                     "kafka.group.instance.id = herald-fatal-1\n"
                     "queue.topics = fatal-t\n");
    assert_int_equal(th_kafka_inject_errors(KAFKA_API_HEARTBEAT, 1, KAFKA_ERR_FENCED_INSTANCE_ID),
                     0);
    int code = wait_exit(&h.proc, 40000);
    if (code != 1)
        fail_msg("exit code %d, want 1; see %s", code, h.log);
    assert_true(th_wait_file_contains(h.log, "fatal error, shutting down", NULL, 0, 1000));
    assert_true(th_wait_file_contains(h.log, "\"msg\":\"stopped\"", NULL, 0, 1000));
}

typedef struct dlq_seen {
    int poison, notification, other;
} dlq_seen_t;

static void on_dlq(const th_kmsg_t *m, void *arg)
{
    dlq_seen_t *s = arg;
    char value[4096];
    snprintf(value, sizeof value, "%.*s", (int)m->len, m->value);
    bool from_b = strstr(m->headers, "herald-source-topic=dl-b\n") != NULL;
    if (from_b && strstr(m->headers, "herald-dlq-reason=not_json\n"))
        s->poison++;
    else if (from_b && strstr(m->headers, "herald-dlq-reason=MismatchSenderId\n") &&
             strstr(value, "\"kind\":\"notification\""))
        s->notification++;
    else
        s->other++;
}

/* With two topics, both kinds of dead letter from topic B go to B.dlq: the undecodable event
 * and the notification Expo refused for good (MismatchSenderId). Nothing goes to A.dlq (the
 * failed notification used to go to "<first topic>.dlq"). */
static void test_dlq_follows_source_topic(void **state)
{
    (void)state;
    th_herald_t h;
    start_herald(&h, "kafka.group.id = herald-dlq\nqueue.topics = dl-a,dl-b\n");
    char url[256];
    th_herald_url(&h, false, "/v1/device-tokens", url, sizeof url);
    const char *hdr[] = {"X-User-Id: dlq-user", "Content-Type: application/json", NULL};
    const char *body = "{\"deviceId\":\"phone\",\"expoPushToken\":"
                       "\"ExponentPushToken[dlqMismatch0000000000001]\",\"platform\":\"ios\"}";
    th_resp_t r;
    assert_int_equal(th_http("POST", url, hdr, body, strlen(body), &r), 0);
    if (r.status != 201 && r.status != 200)
        fail_msg("register: %ld %s", r.status, buf_cstr(&r.body));
    th_resp_cleanup(&r);
    assert_int_equal(th_kafka_send("dl-b", NULL, "not json", NULL), 0);
    assert_int_equal(
        th_kafka_send("dl-b", NULL,
                      "{\"jobId\":\"dlq-job\",\"userId\":\"dlq-user\",\"status\":\"COMPLETED\"}",
                      NULL),
        0);
    assert_int_equal(th_kafka_flush(), 0);
    dlq_seen_t s = {0};
    th_kafka_read("dl-b.dlq", 2, 30000, on_dlq, &s);
    assert_int_equal(s.poison, 1);
    assert_int_equal(s.notification, 1);
    assert_int_equal(s.other, 0);
    dlq_seen_t a = {0};
    assert_int_equal(th_kafka_read("dl-a.dlq", 1, 1000, on_dlq, &a), 0);
    assert_int_equal(th_herald_stop(&h, SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_file_unwritable),
        cmocka_unit_test(test_kafka_fatal_exits_nonzero),
        cmocka_unit_test(test_dlq_follows_source_topic),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
