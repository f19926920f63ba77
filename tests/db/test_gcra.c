/* test_gcra.c - the rate-limit arithmetic (tok_gcra, the C twin of the Lua script) driven by a
 * fake clock: a burst passes then refuses, tokens come back at the configured rate, retry-after
 * and remaining are what a client needs, and a refusal charges nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/clock.h"
#include "tokens/ratelimit.h"

static int64_t now_of(clk_fake_t *f)
{
    return f->clk.wall_ms(f->clk.arg);
}

static void test_burst_then_refused(void **state)
{
    (void)state;
    clk_fake_t f;
    clk_fake_init(&f, 1700000000000);
    int64_t tat = 0;
    tok_rl_result_t r;
    for (long i = 0; i < 5; i++) {
        tok_gcra(&tat, now_of(&f), 10, 5, &r);
        assert_true(r.allowed);
        assert_null(r.which);
        assert_int_equal(r.limit, 5);
        assert_int_equal(r.remaining, 4 - i);
        assert_int_equal(r.retry_after_s, 0);
    }
    int64_t before = tat;
    tok_gcra(&tat, now_of(&f), 10, 5, &r);
    assert_false(r.allowed);
    assert_string_equal(r.which, "user");
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.retry_after_s, 1);
    assert_int_equal(r.reset_s, 1); /* 500 ms until the bucket is full again */
    assert_int_equal(tat, before);  /* a refusal charges nothing */
}

static void test_refill_rate(void **state)
{
    (void)state;
    clk_fake_t f;
    clk_fake_init(&f, 1700000000000);
    int64_t tat = 0;
    tok_rl_result_t r;
    for (int i = 0; i < 5; i++)
        tok_gcra(&tat, now_of(&f), 10, 5, &r);
    /* 10/s: one request every 100 ms comes back. */
    clk_fake_advance(&f, 99);
    tok_gcra(&tat, now_of(&f), 10, 5, &r);
    assert_false(r.allowed);
    clk_fake_advance(&f, 1);
    tok_gcra(&tat, now_of(&f), 10, 5, &r);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 0);
    tok_gcra(&tat, now_of(&f), 10, 5, &r);
    assert_false(r.allowed);
    /* After a full refill (500 ms) the whole burst is available again, not more. */
    clk_fake_advance(&f, 10000);
    int allowed = 0;
    for (int i = 0; i < 20; i++) {
        tok_gcra(&tat, now_of(&f), 10, 5, &r);
        allowed += r.allowed;
    }
    assert_int_equal(allowed, 5);
}

static void test_sustained_rate(void **state)
{
    (void)state;
    clk_fake_t f;
    clk_fake_init(&f, 1700000000000);
    int64_t tat = 0;
    tok_rl_result_t r;
    int allowed = 0;
    /* 50/s with burst 100 over 10 s of a request every 5 ms (200/s offered). */
    for (int i = 0; i < 2000; i++) {
        tok_gcra(&tat, now_of(&f), 50, 100, &r);
        allowed += r.allowed;
        clk_fake_advance(&f, 5);
    }
    assert_int_equal(allowed, 100 + 10 * 50 - 1); /* burst + rate * time (last slot not yet due) */
}

static void test_retry_after_and_slow_rates(void **state)
{
    (void)state;
    clk_fake_t f;
    clk_fake_init(&f, 1700000000000);
    int64_t tat = 0;
    tok_rl_result_t r;
    tok_gcra(&tat, now_of(&f), 1, 2, &r);
    tok_gcra(&tat, now_of(&f), 1, 2, &r);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.reset_s, 2);
    tok_gcra(&tat, now_of(&f), 1, 2, &r);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_s, 1);
    clk_fake_advance(&f, 999);
    tok_gcra(&tat, now_of(&f), 1, 2, &r);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_s, 1); /* 1 ms rounds up, never 0 */
    clk_fake_advance(&f, 1);
    tok_gcra(&tat, now_of(&f), 1, 2, &r);
    assert_true(r.allowed);
    /* Rate 3/s does not divide 1000 ms: the interval rounds up to 334 ms. */
    tat = 0;
    for (int i = 0; i < 3; i++)
        tok_gcra(&tat, now_of(&f), 3, 3, &r);
    clk_fake_advance(&f, 333);
    tok_gcra(&tat, now_of(&f), 3, 3, &r);
    assert_false(r.allowed);
    clk_fake_advance(&f, 1);
    tok_gcra(&tat, now_of(&f), 3, 3, &r);
    assert_true(r.allowed);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refused),
        cmocka_unit_test(test_refill_rate),
        cmocka_unit_test(test_sustained_rate),
        cmocka_unit_test(test_retry_after_and_slow_rates),
        cmocka_unit_test(test_no_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
