/* test_expo_sim.c - the Expo client against the project's simulator (herald-expo-sim) for every
 * fault it injects: 5xx HTML pages, 500 INTERNAL_SERVER_ERROR, a 200 carrying errors, injected
 * 429s, connections dropped before and after the service processed a request, 504 after it did,
 * malformed replies and tickets, latency, its per-project rate limit, the bearer token and the
 * invalid_token reply, every documented ticket error (behaviour tokens) and the project split. The
 * simulator records each accepted message, so every case asserts that nothing was lost and that a
 * message arrived twice only when the client reported it as ambiguous (those are counted and
 * printed). */
#include "core/xalloc.h"
#include "expo/expo.h"
#include "tests/expo/client_opts.h"
#include "tests/support/harness.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define N 400

typedef struct res {
    int calls;
    expo_outcome_t oc;
    bool amb;
    unsigned attempts;
    char err[40];
} res_t;

typedef struct run {
    res_t r[N];
    int seen[N];
    size_t done;
    double r4xx, r429, cred, split;
} run_t;

static run_t *cur;
static buf_t last_metrics; /* the registry of the last run_case, rendered */

static void on_res(const expo_result_t *x, void *arg)
{
    res_t *r = &cur->r[(size_t)(uintptr_t)arg];
    r->calls++;
    r->oc = x->outcome;
    r->amb = x->ambiguous;
    r->attempts = x->attempts;
    snprintf(r->err, sizeof r->err, "%s", x->error ? x->error : "");
    cur->done++;
}

/* Starts the simulator with extra args, sends n messages ("ExponentPushToken[<name(i)>]"),
 * stops it and counts the recorded tokens. */
static void run_case(run_t *rn, const char *const *extra, size_t n, const char *(*name)(size_t),
                     long rate, const char *token)
{
    memset(rn, 0, sizeof *rn);
    cur = rn;
    char dir[256], portf[300], rec[300], bin[512], logp[300];
    assert_int_equal(th_tmpdir(dir, sizeof dir), 0);
    snprintf(portf, sizeof portf, "%s/port", dir);
    snprintf(rec, sizeof rec, "%s/record.jsonl", dir);
    snprintf(logp, sizeof logp, "%s/sim.log", dir);
    snprintf(bin, sizeof bin, "%s/herald-expo-sim", th_bin_dir());
    char *argv[32] = {bin, "--port-file", portf, "--record", rec, "--seed", "7"};
    size_t a = 7;
    for (size_t i = 0; extra && extra[i]; i++)
        argv[a++] = (char *)(uintptr_t)extra[i];
    argv[a] = NULL;
    th_proc_t p;
    assert_int_equal(th_spawn(&p, "sim", argv, NULL, logp), 0);
    char line[128] = "";
    assert_true(th_wait_file_contains(portf, ":", line, sizeof line, 10000));
    line[strcspn(line, "\n")] = '\0';
    char url[160];
    snprintf(url, sizeof url, "http://%s", line);

    uv_loop_t loop;
    uv_loop_init(&loop);
    metric_reg_t *reg = metric_reg_create();
    expo_opts_t o = tx_client_opts(url, rate);
    o.access_token = token;
    o.max_attempts = 30;
    o.backoff_base_ms = 10;
    o.backoff_cap_ms = 200;
    o.timeout_ms = 2000;
    char err[128];
    expo_client_t *c = expo_client_create(&loop, &o, reg, err, sizeof err);
    assert_non_null(c);
    for (size_t i = 0; i < n; i++) {
        char tok[80];
        expo_msg_t m = tx_msg(tok, sizeof tok, "%s", name(i));
        m.collapse_id = tok;
        expo_send(c, &m, on_res, (void *)(uintptr_t)i);
    }
    while (rn->done < n)
        uv_run(&loop, UV_RUN_ONCE);
    rn->r4xx = th_metric_sum(reg, "herald_expo_requests_total{class=\"4xx\"}");
    rn->r429 = th_metric_sum(reg, "herald_expo_retries_total{reason=\"429\"}");
    rn->cred = th_metric_sum(reg, "herald_expo_credential_errors_total");
    rn->split = th_metric_sum(reg, "herald_expo_retries_total{reason=\"split\"}");
    buf_reset(&last_metrics);
    metric_render(reg, &last_metrics);
    expo_client_destroy(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    metric_reg_destroy(reg);
    th_stop(&p, SIGTERM, 10000);

    FILE *f = fopen(rec, "r");
    assert_non_null(f);
    char buf[8192];
    while (fgets(buf, sizeof buf, f)) {
        const char *t = strstr(buf, "\"token\":\"ExponentPushToken[");
        if (!t)
            continue;
        t += strlen("\"token\":\"ExponentPushToken[");
        for (size_t i = 0; i < n; i++) {
            size_t l = strlen(name(i));
            if (strncmp(t, name(i), l) == 0 && t[l] == ']')
                rn->seen[i]++;
        }
    }
    fclose(f);
}

static const char *plain_name(size_t i)
{
    static char b[32];
    snprintf(b, sizeof b, "s%zu", i);
    return b;
}

/* All delivered once, except duplicates the client flagged. Returns ambiguous count. */
static size_t check_all_ok(const run_t *rn, size_t n, const char *label)
{
    size_t amb = 0, dup = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rn->r[i].calls, 1);
        if (rn->r[i].oc != EXPO_OK)
            print_message("%s: message %zu failed: %s\n", label, i, rn->r[i].err);
        assert_int_equal(rn->r[i].oc, EXPO_OK);
        assert_true(rn->seen[i] >= 1); /* nothing lost */
        if (rn->seen[i] > 1) {
            dup++;
            assert_true(rn->r[i].amb); /* a duplicate only where the transport was ambiguous */
        }
        amb += rn->r[i].amb;
    }
    print_message("%s: %zu messages, %zu ambiguous, %zu delivered twice\n", label, n, amb, dup);
    return amb;
}

static void test_faults(void **state)
{
    (void)state;
    static const struct {
        const char *label;
        const char *args[5];
        bool ambiguous_expected;
        const char *retried; /* the retry reason the fault must have caused, or NULL */
    } cases[] = {
        {"5xx html", {"--fail-5xx", "0.3", NULL}, false, NULL},
        {"429 storm", {"--fail-429", "0.5", NULL}, false, NULL},
        {"drop before", {"--drop", "0.2", NULL}, true, NULL},
        {"drop after", {"--drop-after", "0.2", NULL}, true, NULL},
        {"malformed", {"--malformed", "0.2", NULL}, true, NULL},
        {"latency", {"--latency-ms", "300", NULL}, false, NULL},
        /* INTERNAL_SERVER_ERROR retries, by status (500) and by code (in a 200) */
        {"500 json", {"--fail-500", "0.3", NULL}, false, "5xx"},
        {"200 with errors", {"--fail-200-errors", "0.3", NULL}, false, "protocol"},
        /* the service took the messages before the gateway gave up: retried, flagged */
        {"504 after accept", {"--fail-504", "0.2", NULL}, true, "5xx"},
    };
    run_t *rn = xcalloc(1, sizeof *rn);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        run_case(rn, cases[k].args, N, plain_name, 0, NULL);
        size_t amb = check_all_ok(rn, N, cases[k].label);
        if (!cases[k].ambiguous_expected)
            assert_int_equal(amb, 0);
        if (cases[k].retried) {
            char m[96];
            snprintf(m, sizeof m, "herald_expo_retries_total{reason=\"%s\"}", cases[k].retried);
            const char *at = strstr(buf_cstr(&last_metrics), m);
            assert_non_null(at);
            assert_true(strtod(at + strlen(m), NULL) > 0);
        }
        if (strcmp(cases[k].label, "504 after accept") == 0)
            assert_true(amb > 0);
    }
    free(rn);
}

/* A malformed ticket in a good reply: only that message is resent (marked ambiguous); every
 * other message of the request keeps its ticket after one attempt. */
static void test_malformed_tickets(void **state)
{
    (void)state;
    run_t *rn = xcalloc(1, sizeof *rn);
    const char *args[] = {"--malformed-ticket", "0.2", NULL};
    run_case(rn, args, N, plain_name, 0, NULL);
    size_t amb = check_all_ok(rn, N, "malformed tickets");
    for (size_t i = 0; i < N; i++) {
        if (rn->r[i].amb) {
            assert_true(rn->r[i].attempts >= 2);
            assert_int_equal(rn->seen[i], rn->r[i].attempts); /* each attempt was accepted */
        } else {
            assert_int_equal(rn->r[i].attempts, 1);
            assert_int_equal(rn->seen[i], 1);
        }
    }
    assert_true(amb > 0 && amb < N / 2); /* about a fifth of the tickets, not whole requests */
    free(rn);
}

static void test_rate_limit(void **state)
{
    (void)state;
    run_t *rn = xcalloc(1, sizeof *rn);
    const char *args[] = {"--rate-limit", "300", NULL};
    run_case(rn, args, N, plain_name, 250, NULL); /* our limit below the simulator's */
    check_all_ok(rn, N, "rate 250 under 300");
    assert_true(rn->r429 == 0 && rn->r4xx == 0);
    free(rn);
}

static void test_credentials(void **state)
{
    (void)state;
    run_t *rn = xcalloc(1, sizeof *rn);
    const char *args[] = {"--access-token", "sekrit", NULL};
    run_case(rn, args, 50, plain_name, 0, NULL);
    for (size_t i = 0; i < 50; i++) {
        assert_int_equal(rn->r[i].oc, EXPO_FAILED);
        assert_string_equal(rn->r[i].err, "UNAUTHORIZED");
        assert_int_equal(rn->r[i].attempts, 1); /* not retried */
        assert_int_equal(rn->seen[i], 0);
    }
    assert_true(rn->cred >= 1);
    run_case(rn, args, 50, plain_name, 0, "sekrit");
    check_all_ok(rn, 50, "with token");
    assert_true(rn->cred == 0);
    /* the other rejection shape: 401 {"error":"invalid_token",...}, also final and alerting */
    const char *inv[] = {"--fail-invalid-token", "1", NULL};
    run_case(rn, inv, 50, plain_name, 0, NULL);
    for (size_t i = 0; i < 50; i++) {
        assert_int_equal(rn->r[i].oc, EXPO_FAILED);
        assert_string_equal(rn->r[i].err, "invalid_token");
        assert_int_equal(rn->r[i].attempts, 1);
        assert_int_equal(rn->seen[i], 0);
    }
    assert_true(rn->cred >= 1);
    free(rn);
}

/* Every documented ticket error and what the client must do with it (expo-push-api.md):
 * deactivate (DeviceNotRegistered), retry that message alone (MessageRateExceeded), alert and
 * keep the token (MismatchSenderId, InvalidCredentials), fail without retrying (the rest). */
static const struct {
    const char *name;
    expo_outcome_t oc;
    const char *err;
    unsigned attempts; /* 0: the client's max_attempts (retried until exhausted) */
} shapes[] = {
    {"u0Unregistered", EXPO_INVALID_TOKEN, "DeviceNotRegistered", 1},
    {"r0RateExceededOnce", EXPO_OK, "", 2}, /* MessageRateExceeded once, alone again */
    {"r1RateExceeded", EXPO_FAILED, "RetriesExhausted", 0},
    {"t0TooBig", EXPO_FAILED, "MessageTooBig", 1},
    {"c0BadCreds", EXPO_FAILED, "InvalidCredentials", 1},
    {"p0BadProviderToken", EXPO_FAILED, "InvalidCredentials", 1},
    {"m0Mismatch", EXPO_FAILED, "MismatchSenderId", 1},
    {"d0DeveloperError", EXPO_FAILED, "DeveloperError", 1},
    {"e0ExpoError", EXPO_FAILED, "ExpoError", 1},
    {"v0ProviderError", EXPO_FAILED, "ProviderError", 1},
    {"ok0", EXPO_OK, "", 1},
};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

static const char *beh_name(size_t i)
{
    return shapes[i].name;
}

static void test_behaviours(void **state)
{
    (void)state;
    run_t *rn = xcalloc(1, sizeof *rn);
    run_case(rn, NULL, NSHAPES, beh_name, 0, NULL);
    for (size_t i = 0; i < NSHAPES; i++) {
        if (rn->r[i].oc != shapes[i].oc || strcmp(rn->r[i].err, shapes[i].err) != 0)
            fail_msg("%s: outcome %d error \"%s\"", shapes[i].name, rn->r[i].oc, rn->r[i].err);
        assert_int_equal(rn->r[i].calls, 1);
        assert_int_equal(rn->r[i].attempts, shapes[i].attempts ? shapes[i].attempts : 30);
        assert_int_equal(rn->seen[i], shapes[i].oc == EXPO_OK);
    }
    /* one credential error each for InvalidCredentials (both shapes) and MismatchSenderId */
    assert_true(rn->cred == 3);
    const char *counted[] = {"DeveloperError", "ExpoError", "ProviderError", "MessageTooBig"};
    for (size_t i = 0; i < 4; i++) {
        char m[128];
        snprintf(m, sizeof m, "herald_expo_messages_total{outcome=\"failed\",error=\"%s\"} 1\n",
                 counted[i]);
        if (!strstr(buf_cstr(&last_metrics), m))
            fail_msg("missing %s in:\n%s", m, buf_cstr(&last_metrics));
    }
    assert_non_null(strstr(buf_cstr(&last_metrics),
                           "herald_expo_retries_total{reason=\"MessageRateExceeded\"} 30\n"));
    free(rn);
}

static const char *proj_name(size_t i)
{
    static char b[32];
    snprintf(b, sizeof b, "%s%zu", i % 3 == 0 ? "pb" : "pa", i);
    return b;
}

static void test_project_split(void **state)
{
    (void)state;
    char pf[300];
    assert_int_equal(th_tmpfile("projects", "[pb @owner/b\n[pa @owner/a\n", pf, sizeof pf), 0);
    const char *args[] = {"--projects", pf, NULL};
    run_t *rn = xcalloc(1, sizeof *rn);
    run_case(rn, args, 300, proj_name, 0, NULL);
    for (size_t i = 0; i < 300; i++) {
        assert_int_equal(rn->r[i].oc, EXPO_OK);
        assert_int_equal(rn->seen[i], 1);
    }
    assert_true(rn->split > 0); /* the first mixed batch was split by Expo's project map */
    free(rn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faults),     cmocka_unit_test(test_malformed_tickets),
        cmocka_unit_test(test_rate_limit), cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_behaviours), cmocka_unit_test(test_project_split),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    buf_cleanup(&last_metrics);
    return rc;
}
