/* test_sweep.c - the in-daemon token sweep (tokens/sweep.h) against a real redis-server: one pass
 * removes expired and long-inactive records with their index entries and sets the gauges; two
 * instances on two loops racing for the same store never double-delete (exactly one holds the
 * lock, counts add up); destroying a sweep mid-pass is clean and releases the lock. */
#include "tests/ctl/ctl_seed.h"

#include "core/clock.h"
#include "core/metrics.h"
#include "db/db.h"
#include "tokens/sweep.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static th_redis_t rs;

static int group_setup(void **state)
{
    *state = &rs;
    return th_redis_start(&rs, 0);
}

/* i % 4: 0 expired, 1 inactive for 40 days, 2 inactive for 2 days, 3 active. */
static void shape(long i, tok_record_t *r, int64_t now, void *arg)
{
    (void)arg;
    if (i % 4 == 0)
        r->expires_at = now - 10;
    if (i % 4 == 1 || i % 4 == 2) {
        r->active = false;
        snprintf(r->deactivated_reason, sizeof r->deactivated_reason, "user");
        r->deactivated_at = now - (i % 4 == 1 ? 40 : 2) * 86400;
    }
}

/* One instance: a loop, a db, a registry and the sweep. */
typedef struct inst {
    uv_loop_t loop;
    db_t *db;
    metric_reg_t *reg;
    tok_sweep_t *sw;
    int passes;
} inst_t;

static void on_pass(void *arg)
{
    ((inst_t *)arg)->passes++;
}

static void inst_open(inst_t *in)
{
    memset(in, 0, sizeof *in);
    uv_loop_init(&in->loop);
    char err[256];
    db_opts_t o = {.url = rs.url, .timeout_ms = 5000};
    in->db = db_create(&in->loop, &o, err, sizeof err);
    assert_non_null(in->db);
    uint64_t deadline = clk_mono_ms() + 5000;
    while (!db_ready(in->db) && clk_mono_ms() < deadline)
        uv_run(&in->loop, UV_RUN_NOWAIT);
    assert_true(db_ready(in->db));
    in->reg = metric_reg_create();
    tok_sweep_opts_t so = {.prefix = "herald:",
                           .interval_s = 0, /* driven by run_now */
                           .inactive_retention_days = 30};
    in->sw = tok_sweep_create(&in->loop, in->db, &so, in->reg);
    tok_sweep_on_pass(in->sw, on_pass, in);
}

static void inst_close(inst_t *in)
{
    tok_sweep_destroy(in->sw);
    uv_run(&in->loop, UV_RUN_NOWAIT);
    db_destroy(in->db);
    uv_run(&in->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&in->loop), 0);
    metric_reg_destroy(in->reg);
}

/* Runs both loops (one may be NULL) until each has finished `want` passes; bounded. */
static void run_until(inst_t *a, inst_t *b, int want)
{
    uint64_t deadline = clk_mono_ms() + 60000;
    while ((a->passes < want || (b && b->passes < want)) && clk_mono_ms() < deadline) {
        uv_run(&a->loop, UV_RUN_NOWAIT);
        if (b)
            uv_run(&b->loop, UV_RUN_NOWAIT);
    }
    assert_true(a->passes >= want);
    if (b)
        assert_true(b->passes >= want);
}

/* The lock is released right after the pass reports; wait for it (bounded). */
static bool lock_released(inst_t *in)
{
    uint64_t deadline = clk_mono_ms() + 5000;
    while (redis_int(&rs, "EXISTS herald:lock:sweep") != 0 && clk_mono_ms() < deadline)
        uv_run(&in->loop, UV_RUN_NOWAIT);
    return redis_int(&rs, "EXISTS herald:lock:sweep") == 0;
}

static double metric_of(metric_reg_t *reg, const char *line)
{
    buf_t b = BUF_INIT;
    metric_render(reg, &b);
    const char *p = strstr(buf_cstr(&b), line);
    double v = p ? strtod(p + strlen(line), NULL) : -1;
    buf_cleanup(&b);
    return v;
}

static void test_one_pass(void **state)
{
    (void)state;
    const long n = 4000;
    assert_int_equal(seed_records(&rs, n, 3, clk_wall_ms() / 1000, shape, NULL), 0);
    inst_t a;
    inst_open(&a);
    tok_sweep_run_now(a.sw);
    run_until(&a, NULL, 1);
    tok_sweep_stats_t st;
    tok_sweep_get_stats(a.sw, &st);
    assert_int_equal(st.passes, 1);
    assert_int_equal(st.expired, n / 4);
    assert_int_equal(st.inactive, n / 4);
    assert_int_equal(st.active_seen, n / 4);
    assert_int_equal(st.inactive_seen, n / 4);
    assert_int_equal(st.expired_seen, n / 4);
    assert_true(metric_of(a.reg, "herald_tokens{state=\"active\"} ") == (double)(n / 4));
    assert_true(metric_of(a.reg, "herald_tokens{state=\"expired\"} ") == (double)(n / 4));
    assert_true(metric_of(a.reg, "herald_tokens_swept_total{kind=\"inactive\"} ") ==
                (double)(n / 4));
    assert_true(metric_of(a.reg, "herald_tokens_sweep_runs_total{result=\"done\"} ") == 1.0);
    assert_int_equal(redis_int(&rs, SEED_EXPIRY_COUNT), n / 2);
    assert_true(lock_released(&a));
    assert_int_equal(check_indexes(&rs), 0);
    /* A second pass finds nothing more to do. */
    tok_sweep_run_now(a.sw);
    run_until(&a, NULL, 2);
    tok_sweep_get_stats(a.sw, &st);
    assert_int_equal(st.expired, n / 4);
    assert_int_equal(st.inactive, n / 4);
    inst_close(&a);
}

static void test_two_instances(void **state)
{
    (void)state;
    const long n = 20000;
    assert_int_equal(seed_records(&rs, n, 2, clk_wall_ms() / 1000, shape, NULL), 0);
    inst_t a, b;
    inst_open(&a);
    inst_open(&b);
    /* Both ask for the lock before either loop runs: exactly one gets it. */
    tok_sweep_run_now(a.sw);
    tok_sweep_run_now(b.sw);
    run_until(&a, &b, 1);
    tok_sweep_stats_t sa, sb;
    tok_sweep_get_stats(a.sw, &sa);
    tok_sweep_get_stats(b.sw, &sb);
    assert_int_equal(sa.passes + sb.passes, 1);
    assert_int_equal(sa.locked_out + sb.locked_out, 1);
    assert_int_equal(sa.expired + sb.expired, n / 4);
    assert_int_equal(sa.inactive + sb.inactive, n / 4);
    /* Again, now both free to run one after the other: nothing more is removed. */
    assert_true(lock_released(sa.passes ? &a : &b));
    tok_sweep_run_now(a.sw);
    tok_sweep_run_now(b.sw);
    run_until(&a, &b, 2);
    tok_sweep_get_stats(a.sw, &sa);
    tok_sweep_get_stats(b.sw, &sb);
    assert_int_equal(sa.expired + sb.expired, n / 4);
    assert_int_equal(sa.inactive + sb.inactive, n / 4);
    assert_int_equal(redis_int(&rs, SEED_EXPIRY_COUNT), n / 2);
    assert_int_equal(check_indexes(&rs), 0);
    inst_close(&a);
    inst_close(&b);
}

/* Seeds 20000 records, opens a and starts a pass: returns once it holds the lock and chunks. */
static void start_long_pass(inst_t *a)
{
    assert_int_equal(seed_records(&rs, 20000, 2, clk_wall_ms() / 1000, shape, NULL), 0);
    inst_open(a);
    tok_sweep_run_now(a->sw);
    uint64_t deadline = clk_mono_ms() + 10000;
    while (redis_int(&rs, "EXISTS herald:lock:sweep") == 0 && clk_mono_ms() < deadline)
        uv_run(&a->loop, UV_RUN_NOWAIT);
    assert_int_equal(a->passes, 0);
}

static void test_destroy_mid_pass(void **state)
{
    (void)state;
    inst_t a;
    start_long_pass(&a);
    tok_sweep_destroy(a.sw);
    a.sw = NULL;
    /* The release goes out with the last callbacks. */
    uint64_t deadline = clk_mono_ms() + 10000;
    while (redis_int(&rs, "EXISTS herald:lock:sweep") == 1 && clk_mono_ms() < deadline)
        uv_run(&a.loop, UV_RUN_NOWAIT);
    assert_int_equal(redis_int(&rs, "EXISTS herald:lock:sweep"), 0);
    inst_close(&a);
    assert_int_equal(check_indexes(&rs), 0);
}

/* A pass whose lock is taken by someone else (it expired, or went with a failed master) stops at
 * its next chunk instead of sweeping beside the new holder, and leaves that holder's lock alone. */
static void test_lock_lost_mid_pass(void **state)
{
    (void)state;
    inst_t a;
    start_long_pass(&a);
    free(th_redis_cmd(&rs, "SET herald:lock:sweep other-instance PX 60000"));
    run_until(&a, NULL, 1);
    tok_sweep_stats_t st;
    tok_sweep_get_stats(a.sw, &st);
    assert_int_equal(st.locked_out, 1);
    assert_int_equal(st.passes, 0);
    assert_true(th_redis_expect(&rs, "other-instance", "GET herald:lock:sweep"));
    inst_close(&a);
    assert_int_equal(check_indexes(&rs), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_one_pass, seed_flush),
        cmocka_unit_test_setup(test_two_instances, seed_flush),
        cmocka_unit_test_setup(test_destroy_mid_pass, seed_flush),
        cmocka_unit_test_setup(test_lock_lost_mid_pass, seed_flush),
    };
    return cmocka_run_group_tests(tests, group_setup, seed_stop);
}
