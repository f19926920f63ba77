/* test_expo_receipts.c - receipts and the shared send budget against a real redis-server and a
 * loopback HTTP server answering getReceipts/send like Expo: scheduling writes the ZSET and ticket
 * hashes, a poll reports ok / DeviceNotRegistered / missing and re-schedules receipts not ready,
 * pending counts, and two clients sharing one Redis budget deliver everything exactly once. */
#include "core/xalloc.h"
#include "config/config.h"
#include "db/db.h"
#include "ctl/ctl.h"
#include "expo/expo.h"
#include "expo/proto.h"
#include "expo/rate_shared.h"
#include "db/keys.h"
#include "expo/receipts.h"
#include "tests/expo/client_opts.h"
#include "tests/support/harness.h"

#include <jansson.h>
#include <microhttpd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "tests/expo/mhd_body.h"

static int seen[1000];
static int receipt_requests;
static th_redis_t *purging; /* r-purged's ticket is deleted while its check is in flight */

/* The check of the tickets scheduled below (its id: the first ticket id) and its schedule. */
static void check_keys(const char *first, char ck[KEY_MAX], char z[KEY_MAX])
{
    unsigned b = expo_receipts_bucket(first);
    key_rq(z, "t:", b);
    key_rq_check(ck, "t:", b, first);
}

/* One ticket's tuple field in the check whose first ticket is first. */
static char *tuple_of(const char *first, const char *ticket)
{
    char ck[KEY_MAX], z[KEY_MAX];
    check_keys(first, ck, z);
    return th_redis_cmd(purging, "HGET %s %s", ck, ticket);
}

static const char *purge_first; /* the check r-purged is in */

static void purge_ticket(const char *ticket)
{
    char ck[KEY_MAX], z[KEY_MAX];
    check_keys(purge_first, ck, z);
    free(th_redis_cmd(purging, "HDEL %s %s", ck, ticket));
}

static void receipts_body(json_t *ids, buf_t *out)
{
    buf_puts(out, "{\"data\":{");
    size_t i, k = 0;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        const char *id = json_string_value(v);
        if (strcmp(id, "r-ok") == 0 || strncmp(id, "id-", 3) == 0)
            buf_printf(out, "%s\"%s\":{\"status\":\"ok\"}", k++ ? "," : "", id);
        else if (strcmp(id, "r-purged") == 0 && purging)
            purge_ticket("r-purged"); /* a privacy delete while the check is in flight: no answer */
        else if (strncmp(id, "r-rate", 6) == 0)
            buf_printf(out,
                       "%s\"%s\":{\"status\":\"error\",\"message\":\"slow down\",\"details\":"
                       "{\"error\":\"MessageRateExceeded\"}}",
                       k++ ? "," : "", id);
        else if (strcmp(id, "r-dnr") == 0)
            buf_printf(out,
                       "%s\"r-dnr\":{\"status\":\"error\",\"message\":\"gone\",\"details\":"
                       "{\"error\":\"DeviceNotRegistered\"}}",
                       k++ ? "," : "");
    }
    buf_puts(out, "}}");
}

static void send_body(json_t *arr, buf_t *out)
{
    buf_puts(out, "{\"data\":[");
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        const char *to = json_string_value(json_object_get(m, "to"));
        int k = atoi(strchr(to, '[') + 2);
        if (k >= 0 && k < 1000)
            seen[k]++;
        buf_printf(out, "%s{\"status\":\"ok\",\"id\":\"id-%d\"}", i ? "," : "", k);
    }
    buf_puts(out, "]}");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *con, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *size, void **cc)
{
    (void)cls, (void)method, (void)version;
    buf_t *body;
    if (!mhd_body_gather(cc, data, size, &body))
        return MHD_YES;
    buf_t plain = BUF_INIT;
    mhd_body_plain(con, body, &plain);
    json_t *j = json_loadb(buf_cstr(&plain), plain.len, 0, NULL);
    buf_cleanup(&plain);
    buf_t out = BUF_INIT;
    if (strstr(url, "getReceipts")) {
        receipt_requests++;
        receipts_body(json_object_get(j, "ids"), &out);
    } else {
        send_body(j, &out);
    }
    json_decref(j);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(out.len, out.data, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result rc = MHD_queue_response(con, 200, r);
    MHD_destroy_response(r);
    buf_cleanup(&out);
    mhd_body_free(cc);
    return rc;
}

typedef struct env {
    th_redis_t redis;
    struct MHD_Daemon *mhd;
    char url[64];
    uv_loop_t loop;
    db_t *db;
} env_t;

static env_t *env_up(void)
{
    env_t *e = xcalloc(1, sizeof *e);
    assert_int_equal(th_redis_start(&e->redis, 0), 0);
    int port = th_free_port();
    e->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL, handler,
                              NULL, MHD_OPTION_END);
    assert_non_null(e->mhd);
    snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d", port);
    uv_loop_init(&e->loop);
    char err[256];
    db_opts_t o = {.url = e->redis.url, .timeout_ms = 2000, .name = "test"};
    e->db = db_create(&e->loop, &o, err, sizeof err);
    assert_non_null(e->db);
    for (int i = 0; i < 2000 && !db_ready(e->db); i++)
        uv_run(&e->loop, UV_RUN_ONCE);
    assert_true(db_ready(e->db));
    return e;
}

static void env_down(env_t *e)
{
    db_destroy(e->db);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    MHD_stop_daemon(e->mhd);
    th_redis_stop(&e->redis);
    free(e);
}

typedef struct got {
    int n;
    char seen[8][64];
    char event[64]; /* of the last EXPO_RCPT_RETRY */
    unsigned resends;
} got_t;

static long retry_ms = -1; /* what on_receipt answers to EXPO_RCPT_RETRY */

static long on_receipt(const expo_ticket_info_t *t, expo_rcpt_status_t st, const char *error,
                       const char *message, void *arg)
{
    (void)message;
    got_t *g = arg;
    static const char *names[] = {"ok", "invalid", "error", "missing", "retry", "resend"};
    assert_true(g->n < 8);
    if (st == EXPO_RCPT_RETRY || st == EXPO_RCPT_RESEND) {
        snprintf(g->event, sizeof g->event, "%s", t->event_key);
        g->resends = t->resends;
    }
    snprintf(g->seen[g->n++], 64, "%s=%s/%s/%s", t->ticket_id, names[st], t->user_id,
             error ? error : "");
    return retry_ms;
}

static int sched_status = 99;
static void on_sched(int status, void *arg)
{
    (void)arg;
    sched_status = status;
}

static long long pend_count;
static int64_t pend_oldest;
static bool pend_done;
static void on_pend(int status, long long count, int64_t oldest, void *arg)
{
    (void)arg;
    assert_int_equal(status, DB_OK);
    pend_count = count;
    pend_oldest = oldest;
    pend_done = true;
}

static bool has(const got_t *g, const char *s)
{
    for (int i = 0; i < g->n; i++)
        if (strcmp(g->seen[i], s) == 0)
            return true;
    return false;
}

/* The poller under test: prefix "t:", every report into g. */
static expo_receipts_t *receipts_up(env_t *e, got_t *g)
{
    expo_receipts_opts_t o = {.url = e->url,
                              .prefix = "t:",
                              .poll_interval_s = 5,
                              .timeout_ms = 30000,
                              .on_receipt = on_receipt,
                              .arg = g};
    char err[256];
    expo_receipts_t *r = expo_receipts_create(&e->loop, e->db, &o, NULL, err, sizeof err);
    assert_non_null(r);
    return r;
}

static void test_receipts_poll(void **state)
{
    (void)state;
    env_t *e = env_up();
    got_t g = {0};
    expo_receipts_t *r = receipts_up(e, &g);
    int64_t now = (int64_t)time(NULL);
    /* Two checks: r-old was sent a day ago (its check's sent time), the others a minute ago. */
    expo_ticket_info_t t[] = {
        {"r-ok", "u1", "d1", "ExponentPushToken[a]", NULL, now - 60, 0, NULL, NULL},
        {"r-dnr", "u2", "d2", "ExponentPushToken[b]", NULL, now - 60, 0, NULL, NULL},
        {"r-late", "u3", "d3", "ExponentPushToken[c]", NULL, now - 60, 0, NULL, NULL},
        {"r-purged", "u5", "d5", "ExponentPushToken[e]", NULL, now - 60, 0, NULL, NULL},
        {"r-old", "u4", "d4", "ExponentPushToken[d]", NULL, now - 25 * 3600, 0, NULL, NULL},
    };
    purging = &e->redis;
    purge_first = "r-ok";
    expo_receipts_schedule(r, t, 4, now - 1, on_sched, NULL);
    while (sched_status == 99)
        uv_run(&e->loop, UV_RUN_ONCE);
    assert_int_equal(sched_status, DB_OK);
    sched_status = 99;
    expo_receipts_schedule(r, t + 4, 1, now - 1, on_sched, NULL);
    while (sched_status == 99)
        uv_run(&e->loop, UV_RUN_ONCE);
    assert_int_equal(sched_status, DB_OK);
    char ck[KEY_MAX], z[KEY_MAX];
    check_keys("r-ok", ck, z);
    char *v = tuple_of("r-ok", "r-ok");
    assert_string_equal(v, "u1\x1f"
                           "d1\x1f\x1f"
                           "ExponentPushToken[a]\x1f"
                           "0\x1f"
                           "0");
    free(v);
    v = th_redis_cmd(&e->redis, "TTL %s", ck);
    assert_true(atol(v) > 24 * 3600);
    free(v);

    expo_receipts_poll_now(r);
    while (g.n < 3)
        uv_run(&e->loop, UV_RUN_ONCE);
    assert_true(has(&g, "r-ok=ok/u1/"));
    assert_true(has(&g, "r-dnr=invalid/u2/DeviceNotRegistered"));
    assert_true(has(&g, "r-old=missing/u4/receipt_missing"));
    /* let the bookkeeping scripts land, then only r-late is left, re-scheduled into the future */
    pend_done = false;
    expo_receipts_pending(r, on_pend, NULL);
    while (!pend_done)
        uv_run(&e->loop, UV_RUN_ONCE);
    assert_int_equal(pend_count, 1); /* r-ok's check, holding r-late only; r-old's is gone */
    assert_true(pend_oldest >= now + 60);
    v = tuple_of("r-ok", "r-ok");
    assert_string_equal(v, "(nil)");
    free(v);
    v = th_redis_cmd(&e->redis, "HGET %s _c", ck);
    assert_string_equal(v, "1");
    free(v);
    /* A ticket deleted while its check was in flight is not brought back by the bookkeeping. */
    v = tuple_of("r-ok", "r-purged");
    assert_string_equal(v, "(nil)");
    free(v);
    v = th_redis_cmd(&e->redis, "HLEN %s", ck);
    assert_string_equal(v, "3"); /* _s, _c, r-late */
    free(v);
    purging = NULL;
    /* nothing is due now: a second poll claims nothing and reports nothing */
    int before = receipt_requests;
    expo_receipts_poll_now(r);
    pend_done = false;
    expo_receipts_pending(r, on_pend, NULL);
    while (!pend_done)
        uv_run(&e->loop, UV_RUN_ONCE);
    assert_int_equal(receipt_requests, before);
    assert_int_equal(g.n, 3);
    expo_receipts_destroy(r);
    env_down(e);
}

/* A MessageRateExceeded receipt is EXPO_RCPT_RETRY when the ticket names its event (the owner
 * keeps the event in the ledger), else an ordinary error. The owner's answer keeps the ticket in
 * its check, due then with one more resend; once due it is reported EXPO_RCPT_RESEND, and again
 * after each lease until the owner forgets it. */
static void test_receipts_rate_exceeded(void **state)
{
    (void)state;
    env_t *e = env_up();
    got_t g = {0};
    expo_receipts_t *r = receipts_up(e, &g);
    int64_t now = (int64_t)time(NULL);
    expo_ticket_info_t t[] = {
        {"r-rate", "u1", "d1", "ExponentPushToken[a]", NULL, now - 60, 2, "j1:COMPLETED", NULL},
        {"r-rate-bare", "u2", "d2", "ExponentPushToken[b]", NULL, now - 60, 0, NULL, NULL},
    };
    purging = &e->redis;
    sched_status = 99;
    expo_receipts_schedule(r, t, 2, now - 1, on_sched, NULL);
    while (sched_status == 99)
        uv_run(&e->loop, UV_RUN_ONCE);
    assert_int_equal(sched_status, DB_OK);
    char *v = tuple_of("r-rate", "r-rate");
    assert_string_equal(v, "u1\x1f"
                           "d1\x1f"
                           "j1:COMPLETED\x1f"
                           "ExponentPushToken[a]\x1f"
                           "2\x1f"
                           "0");
    free(v);
    retry_ms = 0; /* resend at once */
    expo_receipts_poll_now(r);
    while (g.n < 2)
        uv_run(&e->loop, UV_RUN_ONCE);
    assert_true(has(&g, "r-rate=retry/u1/MessageRateExceeded"));
    assert_true(has(&g, "r-rate-bare=error/u2/MessageRateExceeded"));
    assert_string_equal(g.event, "j1:COMPLETED");
    assert_int_equal(g.resends, 2);
    /* Kept in its check with one more resend, due now: the next poll reports it due. */
    pend_done = false;
    expo_receipts_pending(r, on_pend, NULL);
    while (!pend_done)
        uv_run(&e->loop, UV_RUN_ONCE);
    assert_int_equal(pend_count, 1);
    v = tuple_of("r-rate", "r-rate");
    assert_non_null(strstr(v, "ExponentPushToken[a]\x1f"
                              "3\x1f"));
    free(v);
    v = tuple_of("r-rate", "r-rate-bare");
    assert_string_equal(v, "(nil)");
    free(v);
    while (g.n < 3) { /* due within the second: poll until it is */
        expo_receipts_poll_now(r);
        uv_run(&e->loop, UV_RUN_ONCE);
    }
    assert_true(has(&g, "r-rate=resend/u1/"));
    assert_int_equal(g.resends, 3);
    /* Forgotten once its resend is recorded: the check goes with it. */
    char ref[EXPO_RCPT_REF_MAX];
    expo_receipts_check_ref("r-rate", ref);
    expo_ticket_info_t done = {.ticket_id = "r-rate", .check = ref};
    sched_status = 99;
    expo_receipts_forget(r, &done, on_sched, NULL);
    while (sched_status == 99)
        uv_run(&e->loop, UV_RUN_ONCE);
    assert_int_equal(sched_status, DB_OK);
    pend_done = false;
    expo_receipts_pending(r, on_pend, NULL);
    while (!pend_done)
        uv_run(&e->loop, UV_RUN_ONCE);
    assert_int_equal(pend_count, 0);
    retry_ms = -1;
    purging = NULL;
    expo_receipts_destroy(r);
    env_down(e);
}

static size_t delivered;
static void on_sent(const expo_result_t *res, void *arg)
{
    (void)arg;
    assert_int_equal(res->outcome, EXPO_OK);
    delivered++;
}

static void test_shared_budget(void **state)
{
    (void)state;
    env_t *e = env_up();
    memset(seen, 0, sizeof seen);
    expo_shared_rate_t *sr = expo_shared_rate_create(e->db, "t:", 100);
    metric_reg_t *reg = metric_reg_create();
    expo_client_t *c[2];
    for (int k = 0; k < 2; k++) {
        expo_opts_t o = tx_client_opts(e->url, 100);
        o.rate_hook = expo_shared_rate_hook(sr);
        char err[128];
        c[k] = expo_client_create(&e->loop, &o, reg, err, sizeof err);
        assert_non_null(c[k]);
    }
    for (int i = 0; i < 300; i++) {
        char tok[48];
        expo_msg_t m = tx_msg(tok, sizeof tok, "n%d", i);
        expo_send(c[i % 2], &m, on_sent, NULL);
    }
    while (delivered < 300)
        uv_run(&e->loop, UV_RUN_ONCE);
    for (int i = 0; i < 300; i++)
        assert_int_equal(seen[i], 1);
    buf_t out = BUF_INIT;
    metric_render(reg, &out);
    assert_non_null(strstr(buf_cstr(&out), "herald_expo_ratelimit_wait_seconds_total"));
    buf_cleanup(&out);
    expo_client_destroy(c[0]);
    expo_client_destroy(c[1]);
    expo_shared_rate_destroy(sr);
    metric_reg_destroy(reg);
    env_down(e);
}

/* heraldctl push and receipts as the lead's main will call them */
static void test_ctl(void **state)
{
    (void)state;
    env_t *e = env_up();
    memset(seen, 0, sizeof seen);
    conf_t *conf = conf_create();
    char err[256];
    assert_int_equal(conf_set(conf, "expo.url", e->url, "test", err, sizeof err), 0);
    assert_int_equal(conf_set(conf, "redis.url", e->redis.url, "test", err, sizeof err), 0);
    char *a1[] = {"push",   "--to",      "ExponentPushToken[n7]", "--title", "T", "--body", "B",
                  "--data", "{\"k\":1}", "--wait-receipt",        "--json",  NULL};
    assert_int_equal(ctl_push(conf, 11, a1), CTL_OK);
    assert_int_equal(seen[7], 1);
    char *a2[] = {"push", "--title", "no token", NULL};
    assert_int_equal(ctl_push(conf, 3, a2), CTL_USAGE);
    char *a3[] = {"receipts", "--json", NULL};
    assert_int_equal(ctl_receipts(conf, 2, a3), CTL_OK);
    char *a4[] = {"receipts", "--bogus", NULL};
    assert_int_equal(ctl_receipts(conf, 2, a4), CTL_USAGE);
    char dead[64];
    snprintf(dead, sizeof dead, "redis://127.0.0.1:%d", th_free_port());
    assert_int_equal(conf_set(conf, "redis.url", dead, "test", err, sizeof err), 0);
    assert_int_equal(ctl_receipts(conf, 1, a3), CTL_UNAVAILABLE);
    conf_destroy(conf);
    env_down(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctl),
        cmocka_unit_test(test_receipts_poll),
        cmocka_unit_test(test_receipts_rate_exceeded),
        cmocka_unit_test(test_shared_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
