/* test_expo_sim.c - herald-expo-sim over real HTTP on loopback: it is spawned as a process, found
 * through its port file, and checked for the wire shapes, limits, auth, receipts, rate limit,
 * every fault option, /control, /stats, the record file and a clean SIGTERM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/expo_sim/simkit.h"
#include "tests/support/harness.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <zlib.h>

#define SEND "/--/api/v2/push/send"
#define RCPT "/--/api/v2/push/getReceipts"

typedef struct sim {
    th_proc_t proc;
    char dir[256], base[96], record[300];
} simp_t;

static bool file_exists(void *arg)
{
    FILE *f = fopen(arg, "r");
    if (f)
        fclose(f);
    return f != NULL;
}

/* Starts the simulator with extra args (NULL-terminated) and waits for its port file. */
static void sim_start(simp_t *s, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    assert_int_equal(th_tmpdir(s->dir, sizeof s->dir), 0);
    char bin[512], pf[300], logp[300];
    snprintf(bin, sizeof bin, "%s/herald-expo-sim", th_bin_dir());
    snprintf(pf, sizeof pf, "%s/port", s->dir);
    snprintf(logp, sizeof logp, "%s/sim.log", s->dir);
    snprintf(s->record, sizeof s->record, "%s/record.jsonl", s->dir);
    char *argv[40] = {bin, "--listen", "127.0.0.1:0", "--port-file",
                      pf,  "--record", s->record,     NULL};
    int n = 7;
    for (size_t i = 0; extra && extra[i] && n < 38; i++)
        argv[n++] = (char *)(uintptr_t)extra[i];
    argv[n] = NULL;
    assert_int_equal(th_spawn(&s->proc, "expo-sim", argv, NULL, logp), 0);
    assert_true(th_wait_until(file_exists, pf, 10000));
    FILE *f = fopen(pf, "r");
    char addr[64] = "";
    assert_non_null(fgets(addr, sizeof addr, f));
    fclose(f);
    addr[strcspn(addr, "\n")] = '\0';
    snprintf(s->base, sizeof s->base, "http://%s", addr);
    char line[128];
    assert_true(th_wait_file_contains(logp, "listening 127.0.0.1:", line, sizeof line, 5000));
    assert_non_null(strstr(line, addr));
}

static int sim_stop(simp_t *s)
{
    int st = th_stop(&s->proc, SIGTERM, 10000);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *const JSON_H[] = {"Content-Type: application/json", NULL};

/* POSTs body to path; returns the parsed reply (NULL if not JSON), status in *st. */
static json_t *post_h(simp_t *s, const char *path, const char *const *h, const char *body,
                      size_t len, long *st)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    th_resp_t r;
    int rc = th_http("POST", url, h, body, len, &r);
    *st = rc == 0 ? r.status : -1;
    json_t *j = rc == 0 ? json_loads(buf_cstr(&r.body), 0, NULL) : NULL;
    th_resp_cleanup(&r);
    return j;
}

static json_t *post(simp_t *s, const char *path, const char *body, long *st)
{
    return post_h(s, path, JSON_H, body, strlen(body), st);
}

static json_t *get_stats(simp_t *s)
{
    char url[256];
    snprintf(url, sizeof url, "%s/stats", s->base);
    th_resp_t r;
    assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = json_loads(buf_cstr(&r.body), 0, NULL);
    th_resp_cleanup(&r);
    assert_non_null(j);
    return j;
}

static long long stat_of(simp_t *s, const char *k)
{
    json_t *j = get_stats(s);
    long long v = json_integer_value(json_object_get(j, k));
    json_decref(j);
    return v;
}

/* Reads the record file: every line is JSON, the first one carries all the recorded fields.
 * Returns the number of lines. */
static int check_record(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *m = json_loads(line, 0, NULL);
        assert_non_null(m);
        if (n == 0) {
            assert_string_equal(json_string_value(json_object_get(m, "token")),
                                "ExponentPushToken[a1]");
            assert_string_equal(json_string_value(json_object_get(m, "title")), "Hello");
            assert_string_equal(json_string_value(json_object_get(m, "collapseId")), "c1");
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(m, "data"), "jobId")), "j1");
            assert_string_equal(json_string_value(json_object_get(m, "priority")), "high");
            assert_true(json_integer_value(json_object_get(m, "ts")) > 1600000000000LL);
        }
        json_decref(m);
        n++;
    }
    fclose(f);
    return n;
}

static void test_send_gzip_limits_and_record(void **state)
{
    (void)state;
    simp_t s;
    sim_start(&s, NULL);
    long st;
    json_t *j = post(&s, SEND,
                     "[{\"to\":\"ExponentPushToken[a1]\",\"title\":\"Hello\",\"body\":\"B\","
                     "\"collapseId\":\"c1\",\"data\":{\"jobId\":\"j1\"},\"priority\":\"high\","
                     "\"channelId\":\"ch\"},{\"to\":[\"ExpoPushToken[b2]\",\"nope\"]}]",
                     &st);
    assert_int_equal(st, 200);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 3);
    assert_string_equal(ticket_status(j, 0), "ok");
    assert_string_equal(ticket_status(j, 1), "ok");
    assert_string_equal(ticket_err(j, 2), "DeviceNotRegistered");
    assert_string_equal(json_string_value(json_object_get(reply_ticket(j, 2), "message")),
                        "\"nope\" is not a valid Expo push token");
    json_decref(j);
    /* gzip body */
    char *plain = send_body(100, "gz", true);
    unsigned char gzb[65536];
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)plain;
    z.avail_in = (uInt)strlen(plain);
    z.next_out = gzb;
    z.avail_out = sizeof gzb;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    deflateEnd(&z);
    const char *gh[] = {"Content-Type: application/json", "Content-Encoding: gzip", NULL};
    j = post_h(&s, SEND, gh, (char *)gzb, sizeof gzb - z.avail_out, &st);
    assert_int_equal(st, 200);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 100);
    assert_string_equal(ticket_status(j, 99), "ok");
    json_decref(j);
    free(plain);
    /* 101 recipients, non-JSON, wrong method */
    plain = send_body(101, "x", true);
    j = post(&s, SEND, plain, &st);
    assert_int_equal(st, 400);
    assert_string_equal(err_code(j), "PUSH_TOO_MANY_NOTIFICATIONS");
    json_decref(j);
    free(plain);
    j = post(&s, SEND, "{not json", &st);
    assert_int_equal(st, 400);
    assert_string_equal(err_code(j), "VALIDATION_ERROR");
    json_decref(j);
    char url[256];
    snprintf(url, sizeof url, "%s%s", s.base, SEND);
    th_resp_t r;
    assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 405);
    th_resp_cleanup(&r);
    /* the record and /stats agree with what was accepted: 2 + 100 messages */
    json_t *stt = get_stats(&s);
    assert_int_equal(json_integer_value(json_object_get(stt, "messagesAccepted")), 102);
    assert_int_equal(json_integer_value(json_object_get(stt, "gzipRequests")), 1);
    assert_int_equal(json_integer_value(json_object_get(stt, "badRequests")), 2);
    json_t *toks = json_object_get(stt, "tokens");
    assert_int_equal(json_integer_value(json_object_get(toks, "ExponentPushToken[a1]")), 1);
    assert_int_equal(json_integer_value(json_object_get(toks, "ExponentPushToken[gz99]")), 1);
    assert_null(json_object_get(toks, "nope"));
    json_decref(stt);
    assert_true(th_wait_file_contains(s.record, "gz99", NULL, 0, 5000)); /* flushed while running */
    assert_int_equal(sim_stop(&s), 0);
    assert_int_equal(check_record(s.record), 102);
}

static void test_auth_projects_and_body_limit(void **state)
{
    (void)state;
    char pf[300];
    assert_int_equal(th_tmpfile("projects", "teamB @acme/b\n", pf, sizeof pf), 0);
    const char *args[] = {"--access-token", "tok123", "--projects", pf,
                          "--max-body",     "65536",  NULL};
    simp_t s;
    sim_start(&s, args);
    long st;
    const char *body = "[{\"to\":[\"ExponentPushToken[a]\",\"ExponentPushToken[teamB-1]\"]}]";
    json_t *j = post(&s, SEND, body, &st);
    assert_int_equal(st, 401);
    assert_string_equal(err_code(j), "UNAUTHORIZED");
    json_decref(j);
    const char *bad[] = {"Content-Type: application/json", "Authorization: Bearer tok12", NULL};
    j = post_h(&s, SEND, bad, body, strlen(body), &st);
    assert_int_equal(st, 401);
    json_decref(j);
    const char *good[] = {"Content-Type: application/json", "Authorization: Bearer tok123", NULL};
    j = post_h(&s, SEND, good, body, strlen(body), &st);
    assert_int_equal(st, 400);
    assert_string_equal(err_code(j), "PUSH_TOO_MANY_EXPERIENCE_IDS");
    json_t *det = json_object_get(json_array_get(json_object_get(j, "errors"), 0), "details");
    assert_string_equal(json_string_value(json_array_get(json_object_get(det, "@acme/b"), 0)),
                        "ExponentPushToken[teamB-1]");
    assert_string_equal(json_string_value(json_array_get(json_object_get(det, "@herald/sim"), 0)),
                        "ExponentPushToken[a]");
    json_decref(j);
    char *big = malloc(100000);
    memset(big, ' ', 100000);
    big[0] = '[';
    big[99999] = ']';
    j = post_h(&s, SEND, good, big, 100000, &st);
    assert_int_equal(st, 413);
    json_decref(j);
    free(big);
    assert_int_equal(sim_stop(&s), 0);
}

static long long ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct rcpt_wait {
    simp_t *s;
    const char *req;
    size_t n;
} rcpt_wait_t;

static bool receipts_ready(void *arg)
{
    rcpt_wait_t *w = arg;
    long st;
    json_t *j = post(w->s, RCPT, w->req, &st);
    w->n = json_object_size(json_object_get(j, "data"));
    json_decref(j);
    return w->n == 2;
}

static void test_receipts_behaviour_tokens(void **state)
{
    (void)state;
    const char *args[] = {"--receipt-delay-ms", "1500", NULL};
    simp_t s;
    sim_start(&s, args);
    long st;
    long long t0 = ms_now();
    json_t *j = post(&s, SEND,
                     "[{\"to\":[\"ExponentPushToken[ok1]\",\"ExponentPushToken[LateUnregistered]\","
                     "\"ExponentPushToken[Unregistered]\",\"ExponentPushToken[RateExceeded]\","
                     "\"ExponentPushToken[TooBig]\",\"ExponentPushToken[BadCreds]\","
                     "\"ExponentPushToken[Mismatch]\",\"ExponentPushToken[RateExceededOnce]\"]}]",
                     &st);
    assert_int_equal(st, 200);
    const char *want[] = {NULL,
                          NULL,
                          "DeviceNotRegistered",
                          "MessageRateExceeded",
                          "MessageTooBig",
                          "InvalidCredentials",
                          "MismatchSenderId",
                          "MessageRateExceeded"};
    expect_tickets(j, want, 8);
    char req[256];
    snprintf(req, sizeof req, "{\"ids\":[\"%s\",\"%s\"]}", ticket_id(j, 0), ticket_id(j, 1));
    json_t *r = post(&s, RCPT, req, &st);
    long long elapsed = ms_now() - t0;
    assert_int_equal(st, 200);
    if (elapsed < 1500) /* only meaningful while the delay has certainly not passed */
        assert_int_equal(json_object_size(json_object_get(r, "data")), 0);
    json_decref(r);
    rcpt_wait_t w = {&s, req, 0};
    assert_true(th_wait_until(receipts_ready, &w, 10000));
    r = post(&s, RCPT, req, &st);
    json_t *e = json_object_get(json_object_get(r, "data"), ticket_id(j, 1));
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "details"), "error")),
                        "DeviceNotRegistered");
    json_decref(r);
    json_decref(j);
    /* RateExceededOnce succeeds the second time */
    j = post(&s, SEND, "[{\"to\":\"ExponentPushToken[RateExceededOnce]\"}]", &st);
    assert_string_equal(ticket_status(j, 0), "ok");
    json_decref(j);
    char *ids = receipt_ids_body(1001);
    j = post(&s, RCPT, ids, &st);
    assert_int_equal(st, 400);
    assert_string_equal(err_code(j), "PUSH_TOO_MANY_RECEIPTS");
    json_decref(j);
    free(ids);
    assert_true(stat_of(&s, "receiptsServed") >= 3);
    assert_int_equal(sim_stop(&s), 0);
}

static void test_rate_limit(void **state)
{
    (void)state;
    const char *args[] = {"--rate-limit", "60", "--retry-after", "2", NULL};
    simp_t s;
    sim_start(&s, args);
    long st;
    char *m100 = send_body(100, "r", true), *m50 = send_body(50, "q", true);
    json_t *j = post(&s, SEND, m100, &st); /* over the limit even in an empty window */
    assert_int_equal(st, 429);
    assert_string_equal(err_code(j), "TOO_MANY_REQUESTS");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(j, "errors"), 0), "message")),
                        "Exceeded 600 notifications per second, please try again.");
    json_decref(j);
    long long t0 = ms_now();
    json_decref(post(&s, SEND, m50, &st));
    assert_int_equal(st, 200);
    json_decref(post(&s, SEND, m50, &st));
    if (ms_now() - t0 < 1000) /* both inside one second: 100 > 60 */
        assert_int_equal(st, 429);
    assert_true(stat_of(&s, "rateLimited") >= 1);
    free(m100);
    free(m50);
    assert_int_equal(sim_stop(&s), 0);
}

static void test_faults_seeded(void **state)
{
    (void)state;
    const char *args[] = {"--fail-5xx", "1.0", "--seed", "7", NULL};
    simp_t s;
    sim_start(&s, args);
    long st;
    char url[256];
    snprintf(url, sizeof url, "%s%s", s.base, SEND);
    th_resp_t r;
    assert_int_equal(th_http("POST", url, JSON_H, "[]", 2, &r), 0);
    assert_true(r.status == 502 || r.status == 503);
    assert_non_null(strstr(buf_cstr(&r.body), "<html>"));
    th_resp_cleanup(&r);
    /* /control ends the storm, then turns on the other faults one at a time */
    json_decref(post(&s, "/control", "{\"fail-5xx\":0}", &st));
    assert_int_equal(st, 200);
    json_decref(post(&s, SEND, "[]", &st));
    assert_int_equal(st, 200);
    json_decref(post(&s, "/control", "{\"fail-429\":1}", &st));
    json_decref(post(&s, SEND, "[]", &st));
    assert_int_equal(st, 429);
    json_decref(post(&s, "/control", "{\"fail-429\":0,\"malformed\":1}", &st));
    assert_int_equal(th_http("POST", url, JSON_H, "[{\"to\":\"ExpoPushToken[m]\"}]", 27, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(r.body.len > 0);
    assert_null(json_loads(buf_cstr(&r.body), 0, NULL));
    th_resp_cleanup(&r);
    json_decref(post(&s, "/control", "{\"malformed\":0,\"drop\":1}", &st));
    assert_int_not_equal(th_http("POST", url, JSON_H, "[]", 2, &r), 0);
    th_resp_cleanup(&r);
    json_decref(post(&s, "/control", "{\"drop\":0,\"drop-after\":1}", &st));
    assert_int_not_equal(th_http("POST", url, JSON_H, "[{\"to\":\"ExpoPushToken[d]\"}]", 27, &r),
                         0);
    th_resp_cleanup(&r);
    json_t *j = get_stats(&s);
    expect_ints(j, "injected5xx=1 injected429=1 malformed=1 drops=1 dropsAfterAccept=1");
    /* malformed and drop-after replies belong to processed requests: both messages accepted */
    expect_ints(j, "messagesAccepted=2");
    json_decref(j);
    json_decref(post(&s, "/reset", "", &st));
    assert_int_equal(stat_of(&s, "requests"), 0);
    assert_int_equal(sim_stop(&s), 0);
}

typedef struct slow {
    simp_t *s;
    long status;
} slow_t;

static void *slow_send(void *arg)
{
    slow_t *w = arg;
    json_decref(post(w->s, SEND, "[{\"to\":\"ExpoPushToken[slow]\"}]", &w->status));
    return NULL;
}

static bool one_send_seen(void *arg)
{
    return stat_of(arg, "sendRequests") == 1;
}

/* A request held by --latency-ms does not hold up others; SIGTERM answers it before exiting. */
static void test_latency_does_not_block(void **state)
{
    (void)state;
    const char *args[] = {"--latency-ms", "600000", NULL};
    simp_t s;
    sim_start(&s, args);
    slow_t w = {&s, 0};
    pthread_t t;
    pthread_create(&t, NULL, slow_send, &w);
    assert_true(th_wait_until(one_send_seen, &s, 10000)); /* served while the first waits */
    assert_int_equal(w.status, 0);
    assert_int_equal(sim_stop(&s), 0);
    pthread_join(t, NULL);
    assert_int_equal(w.status, 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_gzip_limits_and_record),
        cmocka_unit_test(test_auth_projects_and_body_limit),
        cmocka_unit_test(test_receipts_behaviour_tokens),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_faults_seeded),
        cmocka_unit_test(test_latency_does_not_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
