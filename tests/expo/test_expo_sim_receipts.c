/* test_expo_sim_receipts.c - push receipts against the simulator: the client sends one message
 * per documented receipt error (the simulator's Late<Word> tokens), the receipt module schedules
 * their checks in a real redis-server and polls the simulator's getReceipts. Checks what each
 * receipt becomes (DeviceNotRegistered deactivates, the rest are errors) and that credential
 * errors (InvalidCredentials with or without InvalidProviderToken, MismatchSenderId) reach
 * herald_expo_credential_errors_total from the receipt path, in the registry the client shares. */
#include "core/xalloc.h"
#include "db/db.h"
#include "expo/expo.h"
#include "expo/receipts.h"
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
#include <time.h>

#include <cmocka.h>

/* What each receipt must become (expo-push-api.md): only DeviceNotRegistered deactivates; the
 * credential errors alert; the rest are counted errors. MessageRateExceeded is an error here
 * because these tickets were scheduled without their event: with one it is EXPO_RCPT_RETRY
 * (test_expo_receipts, test_receipt_resend). */
static const struct {
    const char *word, *error;
    expo_rcpt_status_t st;
    bool credential;
} cases[] = {
    {"LateUnregistered", "DeviceNotRegistered", EXPO_RCPT_INVALID, false},
    {"LateTooBig", "MessageTooBig", EXPO_RCPT_ERROR, false},
    {"LateRateExceeded", "MessageRateExceeded", EXPO_RCPT_ERROR, false},
    {"LateBadCreds", "InvalidCredentials", EXPO_RCPT_ERROR, true},
    {"LateBadProviderToken", "InvalidCredentials", EXPO_RCPT_ERROR, true},
    {"LateMismatch", "MismatchSenderId", EXPO_RCPT_ERROR, true},
    {"LateDeveloperError", "DeveloperError", EXPO_RCPT_ERROR, false},
    {"LateExpoError", "ExpoError", EXPO_RCPT_ERROR, false},
    {"LateProviderError", "ProviderError", EXPO_RCPT_ERROR, false},
    {"plain", NULL, EXPO_RCPT_OK, false},
};
#define NC (sizeof cases / sizeof cases[0])

typedef struct state {
    char token[NC][64], ticket[NC][64];
    size_t sent;
    int got[NC]; /* receipts reported per case */
    expo_rcpt_status_t st[NC];
    char error[NC][64], message[NC][256];
    int sched;
    bool pend_done;
    long long pending;
} state_t;

static state_t S;

static void on_sent(const expo_result_t *r, void *arg)
{
    size_t i = (size_t)(uintptr_t)arg;
    assert_int_equal(r->outcome, EXPO_OK); /* every Late<Word> ticket is ok */
    snprintf(S.ticket[i], sizeof S.ticket[i], "%s", r->ticket_id);
    S.sent++;
}

static long on_receipt(const expo_ticket_info_t *t, expo_rcpt_status_t st, const char *error,
                       const char *message, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < NC; i++) {
        if (strcmp(t->ticket_id, S.ticket[i]) != 0)
            continue;
        S.got[i]++;
        S.st[i] = st;
        snprintf(S.error[i], sizeof S.error[i], "%s", error ? error : "");
        snprintf(S.message[i], sizeof S.message[i], "%s", message ? message : "");
        assert_string_equal(t->token, S.token[i]);
    }
    return -1; /* MessageRateExceeded: not resent here */
}

static void on_sched(int status, void *arg)
{
    (void)arg;
    S.sched = status;
}

static void on_pend(int status, long long count, int64_t oldest, void *arg)
{
    (void)oldest, (void)arg;
    assert_int_equal(status, DB_OK);
    S.pending = count;
    S.pend_done = true;
}

/* The value on the sample line that starts with line_prefix ("name{labels} "), or -1. */
static double metric_value_of(metric_reg_t *reg, const char *line_prefix)
{
    buf_t out = BUF_INIT;
    buf_putc(&out, '\n');
    metric_render(reg, &out);
    char want[160];
    snprintf(want, sizeof want, "\n%s", line_prefix);
    const char *at = strstr(buf_cstr(&out), want);
    double v = at ? strtod(at + strlen(want), NULL) : -1;
    buf_cleanup(&out);
    return v;
}

static size_t reported(void)
{
    size_t n = 0;
    for (size_t i = 0; i < NC; i++)
        n += S.got[i] > 0;
    return n;
}

static void test_receipt_shapes(void **state)
{
    (void)state;
    memset(&S, 0, sizeof S);
    S.sched = 99;
    th_redis_t rs = {0};
    th_proc_t sim = {0};
    char dir[256], url[128], err[256];
    assert_int_equal(th_redis_start(&rs, 0), 0);
    assert_int_equal(th_tmpdir(dir, sizeof dir), 0);
    assert_int_equal(th_sim_start(&sim, dir, NULL, url, sizeof url), 0);

    uv_loop_t loop;
    uv_loop_init(&loop);
    metric_reg_t *reg = metric_reg_create();
    db_opts_t dop = {.url = rs.url, .timeout_ms = 2000, .name = "test"};
    db_t *db = db_create(&loop, &dop, err, sizeof err);
    assert_non_null(db);
    for (int i = 0; i < 2000 && !db_ready(db); i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(db_ready(db));

    expo_opts_t o = tx_client_opts(url, 600);
    o.linger_ms = 1;
    o.backoff_base_ms = 500;
    o.backoff_cap_ms = 30000;
    o.timeout_ms = 10000;
    o.http2 = false;
    expo_client_t *c = expo_client_create(&loop, &o, reg, err, sizeof err);
    assert_non_null(c);
    expo_receipts_opts_t ro = {.url = url,
                               .prefix = "t:",
                               .poll_interval_s = 60,
                               .timeout_ms = 10000,
                               .on_receipt = on_receipt};
    expo_receipts_t *r = expo_receipts_create(&loop, db, &ro, reg, err, sizeof err);
    assert_non_null(r);

    for (size_t i = 0; i < NC; i++) {
        snprintf(S.token[i], sizeof S.token[i], "ExponentPushToken[%s-%zu]", cases[i].word, i);
        expo_msg_t m;
        expo_msg_init(&m);
        m.to = S.token[i];
        m.title = "Photo Editor - Ready!";
        expo_send(c, &m, on_sent, (void *)(uintptr_t)i);
    }
    while (S.sent < NC)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(metric_value_of(reg, "herald_expo_credential_errors_total ") == 0);

    int64_t now = (int64_t)time(NULL);
    expo_ticket_info_t t[NC];
    for (size_t i = 0; i < NC; i++)
        t[i] = (expo_ticket_info_t){.ticket_id = S.ticket[i],
                                    .user_id = "u",
                                    .device_id = "d",
                                    .token = S.token[i],
                                    .sent_at_s = now,
                                    .event_key = NULL};
    expo_receipts_schedule(r, t, NC, now - 1, on_sched, NULL);
    while (S.sched == 99)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(S.sched, DB_OK);
    expo_receipts_poll_now(r);
    while (reported() < NC)
        uv_run(&loop, UV_RUN_ONCE);

    for (size_t i = 0; i < NC; i++) {
        assert_int_equal(S.got[i], 1);
        if (S.st[i] != cases[i].st)
            fail_msg("%s: status %d, want %d", cases[i].word, S.st[i], cases[i].st);
        assert_string_equal(S.error[i], cases[i].error ? cases[i].error : "");
    }
    assert_non_null(strstr(S.message[4], "InvalidProviderToken"));
    /* three credential errors, all from receipts; one getReceipts reply, one of each */
    assert_true(metric_value_of(reg, "herald_expo_credential_errors_total ") == 3);
    assert_true(metric_value_of(reg, "herald_expo_receipts_total{status=\"error\"} ") == 8);
    assert_true(
        metric_value_of(reg, "herald_expo_receipts_total{status=\"DeviceNotRegistered\"} ") == 1);
    assert_true(metric_value_of(reg, "herald_expo_receipts_total{status=\"ok\"} ") == 1);

    /* every check was definite: the scripts forgetting them ran before this query (one
     * connection, commands in order), so nothing is left to poll */
    expo_receipts_pending(r, on_pend, NULL);
    while (!S.pend_done)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(S.pending, 0);

    expo_client_destroy(c);
    expo_receipts_destroy(r);
    db_destroy(db);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    metric_reg_destroy(reg);
    th_stop(&sim, SIGTERM, 10000);
    th_redis_stop(&rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_receipt_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
