/* test_expo_client.c - the Expo client's logic through a fake transport on a real libuv loop:
 * chunking, linger, ticket-to-message mapping, per-message and whole-request retries, malformed
 * tickets, the project split, gzip bodies, concurrency, local failures and shutdown. */
#include "core/xalloc.h"
#include "expo/expo.h"
#include "expo/proto.h"
#include "tests/expo/client_opts.h"
#include "tests/expo/fake_transport.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#define NMAX 1000

typedef struct got {
    int calls;
    expo_outcome_t oc;
    char ticket[64];
    char error[64];
    unsigned attempts;
    bool ambiguous;
} got_t;

typedef struct ctx {
    uv_loop_t loop;
    fake_t *fake;
    expo_client_t *c;
    got_t got[NMAX];
    char tokens[NMAX][48];
    size_t done;
    bool in_send;
    int mode;
} ctx_t;

enum { M_OK, M_MIXED, M_503, M_SPLIT, M_RATE_ONCE, M_BAD_ONCE, M_BAD_ALWAYS };

/* tickets "t:<to>" for every message, or an error ticket chosen by the token's text */
static void reply_tickets(const fake_req_t *req, buf_t *out, int mode, size_t idx)
{
    json_t *arr = json_loadb(req->body, req->len, 0, NULL);
    assert_true(json_is_array(arr));
    buf_puts(out, "{\"data\":[");
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        const char *to = json_string_value(json_object_get(m, "to"));
        if (i)
            buf_putc(out, ',');
        if ((mode == M_MIXED || mode == M_RATE_ONCE) && strstr(to, "Unregistered"))
            buf_puts(out, "{\"status\":\"error\",\"message\":\"gone\","
                          "\"details\":{\"error\":\"DeviceNotRegistered\"}}");
        else if (mode == M_MIXED && strstr(to, "TooBig"))
            buf_puts(out, "{\"status\":\"error\",\"message\":\"big\","
                          "\"details\":{\"error\":\"MessageTooBig\"}}");
        else if (((mode == M_BAD_ONCE && idx == 0) || mode == M_BAD_ALWAYS) && strstr(to, "Bad"))
            buf_puts(out, "{\"status\":\"ok\"}"); /* no id: malformed */
        else if (mode == M_RATE_ONCE && strstr(to, "Rate") && idx == 0)
            buf_puts(out, "{\"status\":\"error\",\"message\":\"slow\","
                          "\"details\":{\"error\":\"MessageRateExceeded\"}}");
        else
            buf_printf(out, "{\"status\":\"ok\",\"id\":\"t:%s\"}", to);
    }
    buf_puts(out, "]}");
    json_decref(arr);
}

static void script(fake_t *f, size_t idx, const fake_req_t *req, expo_http_resp_t *resp, buf_t *out,
                   void *arg)
{
    (void)f;
    ctx_t *x = arg;
    resp->status = 200;
    if (x->mode == M_503) {
        resp->status = 503;
        buf_puts(out, "<html>Service Unavailable</html>");
        return;
    }
    if (x->mode == M_SPLIT && idx == 0) {
        resp->status = 400;
        buf_puts(out, "{\"errors\":[{\"code\":\"PUSH_TOO_MANY_EXPERIENCE_IDS\",\"message\":\"x\","
                      "\"details\":{\"@o/a\":[\"ExponentPushToken[a0]\",\"ExponentPushToken[a1]\"],"
                      "\"@o/b\":[\"ExponentPushToken[b0]\"]}}]}");
        return;
    }
    reply_tickets(req, out, x->mode, idx);
}

static ctx_t *cur;

static void on_res(const expo_result_t *r, void *arg)
{
    ctx_t *x = cur;
    size_t i = (size_t)(uintptr_t)arg;
    assert_false(x->in_send);
    assert_string_equal(r->token, x->tokens[i]);
    got_t *g = &x->got[i];
    g->calls++;
    g->oc = r->outcome;
    g->attempts = r->attempts;
    g->ambiguous = r->ambiguous;
    snprintf(g->ticket, sizeof g->ticket, "%s", r->ticket_id ? r->ticket_id : "");
    snprintf(g->error, sizeof g->error, "%s", r->error ? r->error : "");
    x->done++;
}

static long setup_linger_ms = 2; /* the next setup's linger */

static ctx_t *setup(int mode, long rate, long max_conc)
{
    ctx_t *x = xcalloc(1, sizeof *x);
    cur = x;
    uv_loop_init(&x->loop);
    x->mode = mode;
    x->fake = fake_create(&x->loop, script, x);
    expo_opts_t o = tx_client_opts("http://127.0.0.1:1", rate);
    o.access_token = "secret";
    o.linger_ms = setup_linger_ms;
    setup_linger_ms = 2;
    o.max_concurrent = max_conc;
    o.backoff_base_ms = 1;
    o.backoff_cap_ms = 4;
    o.transport = &x->fake->base;
    char err[128];
    x->c = expo_client_create(&x->loop, &o, NULL, err, sizeof err);
    assert_non_null(x->c);
    return x;
}

static void send_n(ctx_t *x, size_t n, const char *prefix)
{
    for (size_t i = 0; i < n; i++) {
        expo_msg_t m = tx_msg(x->tokens[i], sizeof x->tokens[i], "%s%zu", prefix, i);
        m.body = "Your enhanced photo is ready to download";
        x->in_send = true;
        expo_send(x->c, &m, on_res, (void *)(uintptr_t)i);
        x->in_send = false;
    }
}

static void run_until(ctx_t *x, size_t n)
{
    while (x->done < n)
        assert_true(uv_run(&x->loop, UV_RUN_ONCE) != 0 || x->done >= n);
}

static void teardown(ctx_t *x)
{
    expo_client_destroy(x->c);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&x->loop), 0);
    fake_free(x->fake);
    free(x);
}

static void test_chunking(void **state)
{
    (void)state;
    ctx_t *x = setup(M_OK, 0, 6);
    send_n(x, 250, "c");
    run_until(x, 250);
    assert_int_equal(x->fake->nreqs, 3);
    assert_int_equal(x->fake->reqs[0].nmsgs, 100);
    assert_int_equal(x->fake->reqs[1].nmsgs, 100);
    assert_int_equal(x->fake->reqs[2].nmsgs, 50);
    for (size_t r = 0; r < 3; r++) {
        assert_true(x->fake->reqs[r].gzip); /* > 1 KiB */
        assert_true(x->fake->reqs[r].auth);
        assert_int_equal(x->fake->reqs[r].body[0], '[');
    }
    for (size_t i = 0; i < 250; i++) {
        char want[64];
        snprintf(want, sizeof want, "t:%s", x->tokens[i]);
        assert_int_equal(x->got[i].calls, 1);
        assert_int_equal(x->got[i].oc, EXPO_OK);
        assert_string_equal(x->got[i].ticket, want); /* tickets map by position */
        assert_int_equal(x->got[i].attempts, 1);
    }
    assert_int_equal(expo_client_pending(x->c), 0);
    teardown(x);
}

static void test_small_batch_plain(void **state)
{
    (void)state;
    ctx_t *x = setup(M_OK, 0, 6);
    send_n(x, 3, "s");
    run_until(x, 3);
    assert_int_equal(x->fake->nreqs, 1); /* linger gathered all three */
    assert_false(x->fake->reqs[0].gzip);
    assert_int_equal(x->fake->reqs[0].nmsgs, 3);
    teardown(x);
}

/* With no request in flight the messages of one loop turn leave together at the end of the
 * turn: a linger of a minute delays none of them. */
static void test_idle_sends_without_linger(void **state)
{
    (void)state;
    setup_linger_ms = 60000;
    ctx_t *x = setup(M_OK, 0, 6);
    uint64_t t0 = uv_now(&x->loop);
    send_n(x, 2, "i");
    assert_int_equal(x->fake->nreqs, 0); /* not inside the sends: at the end of the turn */
    run_until(x, 2);
    assert_int_equal(x->fake->nreqs, 1);
    assert_int_equal(x->fake->reqs[0].nmsgs, 2);
    assert_true(uv_now(&x->loop) - t0 < 30000); /* far from the linger: it was not waited for */
    teardown(x);
}

static void test_outcomes(void **state)
{
    (void)state;
    ctx_t *x = setup(M_MIXED, 0, 6);
    send_n(x, 6, "m");
    snprintf(x->tokens[6], 48, "ExponentPushToken[Unregistered1]");
    snprintf(x->tokens[7], 48, "ExponentPushToken[TooBig1]");
    for (size_t i = 6; i < 8; i++) {
        expo_msg_t m;
        expo_msg_init(&m);
        m.to = x->tokens[i];
        expo_send(x->c, &m, on_res, (void *)(uintptr_t)i);
    }
    run_until(x, 8);
    assert_int_equal(x->got[0].oc, EXPO_OK);
    assert_int_equal(x->got[6].oc, EXPO_INVALID_TOKEN);
    assert_string_equal(x->got[6].error, "DeviceNotRegistered");
    assert_int_equal(x->got[7].oc, EXPO_FAILED);
    assert_string_equal(x->got[7].error, "MessageTooBig");
    teardown(x);
}

static void test_rate_exceeded_alone(void **state)
{
    (void)state;
    ctx_t *x = setup(M_RATE_ONCE, 0, 6);
    send_n(x, 4, "r");
    snprintf(x->tokens[4], 48, "ExponentPushToken[Rate1]");
    expo_msg_t m;
    expo_msg_init(&m);
    m.to = x->tokens[4];
    expo_send(x->c, &m, on_res, (void *)(uintptr_t)4);
    run_until(x, 5);
    assert_int_equal(x->fake->nreqs, 2);
    assert_int_equal(x->fake->reqs[1].nmsgs, 1); /* only that message went again */
    assert_int_equal(x->got[4].oc, EXPO_OK);
    assert_int_equal(x->got[4].attempts, 2);
    assert_int_equal(x->got[0].attempts, 1);
    teardown(x);
}

static void send_bad3(ctx_t *x)
{
    static const char *toks[] = {"ExponentPushToken[g0]", "ExponentPushToken[g1]",
                                 "ExponentPushToken[Bad2]"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(x->tokens[i], 48, "%s", toks[i]);
        expo_msg_t m;
        expo_msg_init(&m);
        m.to = x->tokens[i];
        m.collapse_id = i == 2 ? "event-2" : NULL;
        expo_send(x->c, &m, on_res, (void *)(uintptr_t)i);
    }
}

static void test_malformed_ticket_alone(void **state)
{
    (void)state;
    /* one of three tickets has no id: the two good ones keep their outcome, only the third
     * message goes again (with its collapseId), marked ambiguous */
    ctx_t *x = setup(M_BAD_ONCE, 0, 6);
    send_bad3(x);
    run_until(x, 3);
    assert_int_equal(x->fake->nreqs, 2);
    assert_int_equal(x->fake->reqs[0].nmsgs, 3);
    assert_int_equal(x->fake->reqs[1].nmsgs, 1);
    assert_non_null(strstr(x->fake->reqs[1].body, "\"ExponentPushToken[Bad2]\""));
    assert_non_null(strstr(x->fake->reqs[1].body, "\"collapseId\":\"event-2\""));
    for (size_t i = 0; i < 2; i++) {
        char want[64];
        snprintf(want, sizeof want, "t:%s", x->tokens[i]);
        assert_int_equal(x->got[i].calls, 1);
        assert_int_equal(x->got[i].oc, EXPO_OK);
        assert_string_equal(x->got[i].ticket, want);
        assert_int_equal(x->got[i].attempts, 1);
        assert_false(x->got[i].ambiguous);
    }
    assert_int_equal(x->got[2].calls, 1);
    assert_int_equal(x->got[2].oc, EXPO_OK);
    assert_string_equal(x->got[2].ticket, "t:ExponentPushToken[Bad2]");
    assert_int_equal(x->got[2].attempts, 2);
    assert_true(x->got[2].ambiguous);
    teardown(x);

    /* a ticket malformed every time: bounded by max_attempts (6), the others untouched */
    x = setup(M_BAD_ALWAYS, 0, 6);
    send_bad3(x);
    run_until(x, 3);
    assert_int_equal(x->fake->nreqs, 6);
    for (size_t r = 1; r < 6; r++)
        assert_int_equal(x->fake->reqs[r].nmsgs, 1);
    assert_int_equal(x->got[0].attempts, 1);
    assert_int_equal(x->got[1].oc, EXPO_OK);
    assert_int_equal(x->got[2].calls, 1);
    assert_int_equal(x->got[2].oc, EXPO_FAILED);
    assert_string_equal(x->got[2].error, "RetriesExhausted");
    assert_int_equal(x->got[2].attempts, 6);
    assert_true(x->got[2].ambiguous);
    teardown(x);
}

static void test_retries_exhausted(void **state)
{
    (void)state;
    ctx_t *x = setup(M_503, 0, 6);
    send_n(x, 3, "e");
    run_until(x, 3);
    assert_int_equal(x->fake->nreqs, 6); /* max_attempts = 6 */
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(x->got[i].calls, 1);
        assert_int_equal(x->got[i].oc, EXPO_FAILED);
        assert_string_equal(x->got[i].error, "RetriesExhausted");
        assert_int_equal(x->got[i].attempts, 6);
        assert_false(x->got[i].ambiguous); /* 503 answered: not delivered */
    }
    teardown(x);
}

static void test_split(void **state)
{
    (void)state;
    ctx_t *x = setup(M_SPLIT, 0, 6);
    const char *toks[] = {"ExponentPushToken[a0]", "ExponentPushToken[b0]",
                          "ExponentPushToken[a1]"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(x->tokens[i], 48, "%s", toks[i]);
        expo_msg_t m;
        expo_msg_init(&m);
        m.to = x->tokens[i];
        expo_send(x->c, &m, on_res, (void *)(uintptr_t)i);
    }
    run_until(x, 3);
    assert_int_equal(x->fake->nreqs, 3);
    size_t n1 = x->fake->reqs[1].nmsgs, n2 = x->fake->reqs[2].nmsgs;
    assert_true((n1 == 2 && n2 == 1) || (n1 == 1 && n2 == 2));
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(x->got[i].oc, EXPO_OK);
    /* later messages to a learned token go with their project at once */
    snprintf(x->tokens[3], 48, "ExponentPushToken[b0]");
    snprintf(x->tokens[4], 48, "ExponentPushToken[a0]");
    for (size_t i = 3; i < 5; i++) {
        expo_msg_t m;
        expo_msg_init(&m);
        m.to = x->tokens[i];
        expo_send(x->c, &m, on_res, (void *)(uintptr_t)i);
    }
    run_until(x, 5);
    assert_int_equal(x->fake->nreqs, 5);
    assert_int_equal(x->fake->reqs[3].nmsgs, 1);
    teardown(x);
}

static void test_local_failure_and_concurrency(void **state)
{
    (void)state;
    ctx_t *x = setup(M_OK, 0, 2);
    char *big = xmalloc(5000);
    memset(big, 'y', 4999);
    big[4999] = '\0';
    snprintf(x->tokens[0], 48, "ExponentPushToken[big]");
    expo_msg_t m;
    expo_msg_init(&m);
    m.to = x->tokens[0];
    m.body = big;
    x->in_send = true;
    expo_send(x->c, &m, on_res, (void *)(uintptr_t)0);
    x->in_send = false;
    assert_int_equal(x->got[0].calls, 0); /* never inside the call */
    run_until(x, 1);
    assert_int_equal(x->got[0].oc, EXPO_FAILED);
    assert_string_equal(x->got[0].error, "MessageTooBig");
    assert_int_equal(x->got[0].attempts, 0);
    assert_int_equal(x->fake->nreqs, 0);
    free(big);
    x->done = 0;
    memset(x->got, 0, sizeof x->got);
    send_n(x, 900, "k");
    run_until(x, 900);
    assert_int_equal(x->fake->nreqs, 9);
    assert_true(x->fake->max_in_flight <= 2);
    teardown(x);
}

static void test_rate_limited_batches(void **state)
{
    (void)state;
    /* rate 50/s: batches never exceed the burst (50) and every message still goes */
    ctx_t *x = setup(M_OK, 50, 6);
    send_n(x, 120, "l");
    run_until(x, 120);
    size_t total = 0;
    for (size_t r = 0; r < x->fake->nreqs; r++) {
        assert_true(x->fake->reqs[r].nmsgs <= 50);
        total += x->fake->reqs[r].nmsgs;
    }
    assert_int_equal(total, 120);
    teardown(x);
}

static void test_shutdown(void **state)
{
    (void)state;
    ctx_t *x = setup(M_OK, 0, 6);
    send_n(x, 5, "d");
    expo_client_destroy(x->c); /* before any request went out */
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(x->got[i].calls, 1);
        assert_string_equal(x->got[i].error, "Shutdown");
    }
    x->c = NULL;
    teardown(x);
}

static bool fake_has_request(ctx_t *x)
{
    return x->fake->in_flight > 0;
}

/* Destroyed with a request in flight: the transport cancels it (once), and so each message's
 * callback fires once, "Shutdown". */
static void test_shutdown_in_flight(void **state)
{
    (void)state;
    ctx_t *x = setup(M_OK, 0, 6);
    x->fake->hold = true;
    send_n(x, 5, "f");
    for (int i = 0; i < 1000 && !fake_has_request(x); i++)
        uv_run(&x->loop, UV_RUN_ONCE);
    assert_int_equal(x->fake->in_flight, 1);
    assert_int_equal(x->done, 0);
    expo_client_destroy(x->c);
    assert_int_equal(x->fake->cancelled, 1);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(x->got[i].calls, 1);
        assert_string_equal(x->got[i].error, "Shutdown");
    }
    x->c = NULL;
    uv_run(&x->loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(x->got[i].calls, 1);
    teardown(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunking),
        cmocka_unit_test(test_small_batch_plain),
        cmocka_unit_test(test_idle_sends_without_linger),
        cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_rate_exceeded_alone),
        cmocka_unit_test(test_malformed_ticket_alone),
        cmocka_unit_test(test_retries_exhausted),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_local_failure_and_concurrency),
        cmocka_unit_test(test_rate_limited_batches),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_shutdown_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
