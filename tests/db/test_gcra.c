/* test_gcra.c - the rate-limit arithmetic (tok_gcra, the C twin of the Lua script) driven by a
 * fake clock: a burst passes then refuses, tokens come back at the configured rate, retry-after
 * and remaining are what a client needs, and a refusal charges nothing; the in-process table of
 * client addresses (tok_rl_local_*): one bucket per address, refunds, and a full table staying
 * bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/clock.h"
#include "tokens/ratelimit.h"

#include <stdio.h>

/* A bucket (its theoretical arrival time) on a fake clock, and the last answer. */
typedef struct bucket {
    clk_fake_t clk;
    int64_t tat;
    tok_rl_result_t r;
} bucket_t;

static void bucket_init(bucket_t *b)
{
    clk_fake_init(&b->clk, 1700000000000);
    b->tat = 0;
}

/* Advances the clock by ms, then asks for one request at rate/burst; returns whether it passed. */
static bool ask(bucket_t *b, int64_t ms, long rate, long burst)
{
    clk_fake_advance(&b->clk, ms);
    tok_gcra(&b->tat, b->clk.clk.wall_ms(b->clk.clk.arg), rate, burst, &b->r);
    return b->r.allowed;
}

static void test_burst_then_refused(void **state)
{
    (void)state;
    bucket_t b;
    bucket_init(&b);
    for (long i = 0; i < 5; i++) {
        assert_true(ask(&b, 0, 10, 5));
        assert_null(b.r.which);
        assert_int_equal(b.r.limit, 5);
        assert_int_equal(b.r.remaining, 4 - i);
        assert_int_equal(b.r.retry_after_s, 0);
    }
    int64_t before = b.tat;
    assert_false(ask(&b, 0, 10, 5));
    assert_string_equal(b.r.which, "user");
    assert_int_equal(b.r.remaining, 0);
    assert_int_equal(b.r.retry_after_s, 1);
    assert_int_equal(b.r.reset_s, 1); /* 500 ms until the bucket is full again */
    assert_int_equal(b.tat, before);  /* a refusal charges nothing */
}

static void test_refill_rate(void **state)
{
    (void)state;
    bucket_t b;
    bucket_init(&b);
    for (int i = 0; i < 5; i++)
        ask(&b, 0, 10, 5);
    /* 10/s: one request every 100 ms comes back. */
    assert_false(ask(&b, 99, 10, 5));
    assert_true(ask(&b, 1, 10, 5));
    assert_int_equal(b.r.remaining, 0);
    assert_false(ask(&b, 0, 10, 5));
    /* After a full refill (500 ms) the whole burst is available again, not more. */
    clk_fake_advance(&b.clk, 10000);
    int allowed = 0;
    for (int i = 0; i < 20; i++)
        allowed += ask(&b, 0, 10, 5);
    assert_int_equal(allowed, 5);
}

static void test_sustained_rate(void **state)
{
    (void)state;
    bucket_t b;
    bucket_init(&b);
    int allowed = 0;
    /* 50/s with burst 100 over 10 s of a request every 5 ms (200/s offered). */
    for (int i = 0; i < 2000; i++)
        allowed += ask(&b, i ? 5 : 0, 50, 100);
    assert_int_equal(allowed, 100 + 10 * 50 - 1); /* burst + rate * time (last slot not yet due) */
}

static void test_retry_after_and_slow_rates(void **state)
{
    (void)state;
    bucket_t b;
    bucket_init(&b);
    ask(&b, 0, 1, 2);
    ask(&b, 0, 1, 2);
    assert_int_equal(b.r.remaining, 0);
    assert_int_equal(b.r.reset_s, 2);
    assert_false(ask(&b, 0, 1, 2));
    assert_int_equal(b.r.retry_after_s, 1);
    assert_false(ask(&b, 999, 1, 2));
    assert_int_equal(b.r.retry_after_s, 1); /* 1 ms rounds up, never 0 */
    assert_true(ask(&b, 1, 1, 2));
    /* Rate 3/s does not divide 1000 ms: the interval rounds up to 334 ms. */
    b.tat = 0;
    for (int i = 0; i < 3; i++)
        ask(&b, 0, 3, 3);
    assert_false(ask(&b, 333, 3, 3));
    assert_true(ask(&b, 1, 3, 3));
}

static void test_no_limit(void **state)
{
    (void)state;
    int64_t tat = 0;
    tok_rl_result_t r;
    tok_gcra(&tat, 1000, 0, 5, &r);
    assert_true(r.allowed);
    assert_int_equal(tat, 0);
}

/* The in-process table: each address its own bucket, a refund gives one request back, and far
 * more addresses than slots neither grow the table nor lock anybody out. */
static void test_local_table(void **state)
{
    (void)state;
    tok_rl_local_t *l = tok_rl_local_create(16);
    int64_t now = 1000000;
    for (int i = 0; i < 3; i++)
        assert_true(tok_rl_local_charge(l, "10.0.0.1", now, 1, 3).ok);
    tok_rl_key_t k = tok_rl_local_charge(l, "10.0.0.1", now, 1, 3);
    assert_false(k.ok);
    assert_string_equal(k.which, "ip");
    assert_int_equal(k.burst, 3);
    assert_true(k.retry_ms > 0 && k.retry_ms <= 1000);
    assert_true(tok_rl_local_charge(l, "10.0.0.2", now, 1, 3).ok); /* its own bucket */
    tok_rl_local_refund(l, "10.0.0.1", now, 1);
    assert_true(tok_rl_local_charge(l, "10.0.0.1", now, 1, 3).ok);
    assert_false(tok_rl_local_charge(l, "10.0.0.1", now, 1, 3).ok);
    assert_true(tok_rl_local_charge(l, "10.0.0.1", now + 1000, 1, 3).ok); /* refilled */
    /* 10,000 other addresses in a 16-slot table: each gets its burst. */
    char ip[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(ip, sizeof ip, "192.168.%d.%d", i / 256, i % 256);
        assert_true(tok_rl_local_charge(l, ip, now + 2000, 1, 3).ok);
    }
    /* No limit configured: always allowed. */
    assert_true(tok_rl_local_charge(l, "10.0.0.9", now, 0, 0).ok);
    tok_rl_local_destroy(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refused),
        cmocka_unit_test(test_refill_rate),
        cmocka_unit_test(test_sustained_rate),
        cmocka_unit_test(test_retry_after_and_slow_rates),
        cmocka_unit_test(test_no_limit),
        cmocka_unit_test(test_local_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
