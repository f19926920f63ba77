/* test_ratelimit.c - the shared GCRA limiter against a real redis-server: a burst passes and the
 * next request is refused with Retry-After, user and IP limits are independent, a refusal by one
 * key charges neither, keys expire once the bucket would be full again, and a down Redis is
 * reported as a negative status. Requests are pipelined so they reach Redis back to back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "db/db.h"
#include "tests/db/live.h"
#include "tokens/ratelimit.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 10000

typedef struct rl_out {
    bool done;
    int calls;
    int status;
    tok_rl_result_t r;
    char which[8];
} rl_out_t;

static void on_rl(int status, const tok_rl_result_t *res, void *arg)
{
    rl_out_t *o = arg;
    o->calls++;
    o->done = true;
    o->status = status;
    if (res) {
        o->r = *res;
        snprintf(o->which, sizeof o->which, "%s", res->which ? res->which : "");
    }
}

typedef struct fx {
    tlive_t live;
    tok_rl_t *rl;
} fx_t;

/* Each test's fixture (cmocka setup and teardown): a limiter on a fresh redis-server. */
static int fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_true(tlive_start_ready(&f->live, 2000, NULL));
    f->rl = tok_rl_create(f->live.db, "ht:");
    assert_non_null(f->rl);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    tok_rl_destroy(f->rl);
    int rc = tlive_stop(&f->live);
    free(f);
    return rc;
}

/* Issues n checks in one loop iteration (one pipeline) and waits for all of them. */
static void check_n(fx_t *f, const char *user, const char *ip, const tok_rl_limits_t *lim,
                    rl_out_t *out, int n)
{
    for (int i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        tok_rl_check(f->rl, user, ip, lim, on_rl, &out[i]);
        assert_false(out[i].done);
    }
    assert_true(tloop_until(&f->live.t, &out[n - 1].done, WAIT_MS));
    for (int i = 0; i < n; i++) {
        assert_int_equal(out[i].calls, 1);
        assert_int_equal(out[i].status, 0);
    }
}

static void test_burst_then_refused(void **state)
{
    fx_t *f = *state;
    tok_rl_limits_t lim = {.user_rate = 1, .user_burst = 5, .ip_rate = 100, .ip_burst = 1000};
    rl_out_t o[6];
    check_n(f, "u1", "10.0.0.1", &lim, o, 6);
    for (int i = 0; i < 5; i++) {
        assert_true(o[i].r.allowed);
        assert_int_equal(o[i].r.limit, 5); /* the user key is the tighter one */
        assert_int_equal(o[i].r.remaining, 4 - i);
        assert_true(o[i].r.reset_s >= 1 && o[i].r.reset_s <= 5);
    }
    assert_false(o[5].r.allowed);
    assert_string_equal(o[5].which, "user");
    assert_int_equal(o[5].r.remaining, 0);
    assert_int_equal(o[5].r.retry_after_s, 1);
    /* The key expires once the bucket would be full again (about 5 s at 1/s). */
    char *pttl = th_redis_cmd(&f->live.redis, "PTTL ht:rl:u:{u1}");
    long ms = atol(pttl);
    free(pttl);
    assert_true(ms > 0 && ms <= 5000);
}

static void test_user_and_ip_independent(void **state)
{
    fx_t *f = *state;
    tok_rl_limits_t lim = {.user_rate = 1, .user_burst = 3, .ip_rate = 1, .ip_burst = 5};
    rl_out_t o[6];
    check_n(f, "u1", "10.0.0.1", &lim, o, 4);
    assert_true(o[0].r.allowed && o[1].r.allowed && o[2].r.allowed);
    assert_false(o[3].r.allowed);
    assert_string_equal(o[3].which, "user");
    /* Another user from the same IP still passes (the IP has 2 of 5 left)... */
    check_n(f, "u2", "10.0.0.1", &lim, o, 3);
    assert_true(o[0].r.allowed && o[1].r.allowed);
    assert_false(o[2].r.allowed);
    assert_string_equal(o[2].which, "ip"); /* ...until the IP's bucket is empty */
    /* u1 from another IP is still refused: the user key is exhausted. */
    check_n(f, "u1", "10.0.0.2", &lim, o, 1);
    assert_false(o[0].r.allowed);
    assert_string_equal(o[0].which, "user");
    /* IP only (no authenticated user yet). */
    check_n(f, NULL, "10.0.0.3", &lim, o, 6);
    for (int i = 0; i < 5; i++)
        assert_true(o[i].r.allowed);
    assert_false(o[5].r.allowed);
    assert_string_equal(o[5].which, "ip");
    assert_int_equal(o[5].r.limit, 5);
}

static void test_refusal_charges_nothing(void **state)
{
    fx_t *f = *state;
    tok_rl_limits_t lim = {.user_rate = 1, .user_burst = 5, .ip_rate = 1, .ip_burst = 2};
    rl_out_t o[5];
    check_n(f, "u1", "10.0.0.1", &lim, o, 5);
    assert_true(o[0].r.allowed && o[1].r.allowed);
    char *before = th_redis_cmd(&f->live.redis, "GET ht:rl:u:{u1}");
    for (int i = 2; i < 5; i++) {
        assert_false(o[i].r.allowed);
        assert_string_equal(o[i].which, "ip");
    }
    char *after = th_redis_cmd(&f->live.redis, "GET ht:rl:u:{u1}");
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* The IP refusals did not touch u1's bucket: 3 of 5 are left from another IP. */
    lim.ip_burst = 100;
    check_n(f, "u1", "10.0.0.9", &lim, o, 4);
    assert_true(o[0].r.allowed && o[1].r.allowed && o[2].r.allowed);
    assert_int_equal(o[2].r.remaining, 0);
    assert_false(o[3].r.allowed);
    assert_string_equal(o[3].which, "user");
}

static void test_redis_down(void **state)
{
    fx_t *f = *state;
    tok_rl_limits_t lim = {.user_rate = 50, .user_burst = 100, .ip_rate = 50, .ip_burst = 100};
    th_stop(&f->live.redis.proc, SIGKILL, 5000);
    assert_true(tloop_until_ready(&f->live.t, f->live.db, false, WAIT_MS));
    rl_out_t o = {0};
    tok_rl_check(f->rl, "u1", "10.0.0.1", &lim, on_rl, &o);
    assert_true(tloop_until(&f->live.t, &o.done, WAIT_MS));
    assert_true(o.status < 0);
    /* No key to check at all: allowed, still never inside the call. */
    tok_rl_limits_t none = {0};
    memset(&o, 0, sizeof o);
    tok_rl_check(f->rl, "u1", "10.0.0.1", &none, on_rl, &o);
    assert_false(o.done);
    assert_true(tloop_until(&f->live.t, &o.done, WAIT_MS));
    assert_int_equal(o.status, 0);
    assert_true(o.r.allowed);
}

/* A test run with its fixture as its state */
#define WITH_FX(test) cmocka_unit_test_setup_teardown(test, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        WITH_FX(test_burst_then_refused),
        WITH_FX(test_user_and_ip_independent),
        WITH_FX(test_refusal_charges_nothing),
        WITH_FX(test_redis_down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
