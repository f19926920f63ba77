/* test_store.c - the Redis token store against a real redis-server, checking both what the API
 * sees and the keys themselves (hash, owner index, expiry zset, key expiry): create/update
 * semantics, reassignment of a token between users, a device changing its token, the device
 * limit, deactivate with and without only_if_token, purge of one device and of a user, listing
 * with a corrupt record, find_owner, argument checks, and Redis being down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/clock.h"
#include "db/db.h"
#include "db/keys.h"
#include "tests/db/live.h"
#include "tests/support/tkeys.h"
#include "tokens/store.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 10000
#define TOK_A "ExponentPushToken[aaaaaaaaaaaaaaaaaaaaaa]"
#define TOK_B "ExponentPushToken[bbbbbbbbbbbbbbbbbbbbbb]"
#define TOK_C "ExpoPushToken[cccccccccccc]"

typedef struct fx {
    tlive_t live;
    clk_fake_t clk;
    tok_store_t *st;
} fx_t;

/* A test's prestate: the device limit and whether the store runs one script per hash slot (the
 * Redis Cluster path, correct on a single Redis too) instead of the one composed script. */
typedef struct params {
    long max_devices;
    bool split;
} params_t;

/* Each test's fixture (cmocka setup and teardown): a store on a fresh redis-server, as the
 * prestate says (default: a limit of 20, the composed script). */
static int fx_setup(void **state)
{
    const params_t *p = *state;
    fx_t *f = calloc(1, sizeof *f);
    assert_true(tlive_start_ready(&f->live, 2000, NULL));
    /* Near real time: EXPIREAT in the past would delete the keys at once. */
    clk_fake_init(&f->clk, clk_wall_ms() / 1000 * 1000 + 123);
    f->st = tok_store_redis_create(f->live.db, "ht:", &f->clk.clk, p ? p->max_devices : 20);
    assert_non_null(f->st);
    tok_store_redis_split(f->st, p && p->split);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    tok_store_destroy(f->st);
    int rc = tlive_stop(&f->live);
    free(f);
    return rc;
}

static int64_t now_s(fx_t *f)
{
    return f->clk.wall / 1000;
}

/* Results copied out of the callbacks. */
typedef struct out {
    bool done;
    int calls;
    int status;
    tok_reg_result_t reg;
    tok_record_t recs[8];
    size_t n;
    tok_owner_t owner;
} out_t;

/* Every callback's first step: the call counted, its status kept. Returns o. */
static out_t *finish(void *arg, int status)
{
    out_t *o = arg;
    o->calls++;
    o->done = true;
    o->status = status;
    return o;
}

static void on_reg(int status, const tok_reg_result_t *res, void *arg)
{
    out_t *o = finish(arg, status);
    if (res)
        o->reg = *res;
}

static void on_done(int status, void *arg)
{
    finish(arg, status);
}

static void on_list(int status, const tok_record_t *recs, size_t n, void *arg)
{
    out_t *o = finish(arg, status);
    o->n = n;
    for (size_t i = 0; i < n && i < 8; i++)
        o->recs[i] = recs[i];
}

static void on_owner(int status, const tok_owner_t *ow, void *arg)
{
    out_t *o = finish(arg, status);
    if (ow)
        o->owner = *ow;
}

static void wait_out(fx_t *f, out_t *o)
{
    assert_false(o->done); /* never inside the call */
    assert_true(tloop_until(&f->live.t, &o->done, WAIT_MS));
    assert_int_equal(o->calls, 1);
}

static out_t reg(fx_t *f, const char *user, const char *dev, const char *tok)
{
    out_t o = {0};
    tok_reg_req_t req = {user, dev, tok, TOK_PLATFORM_IOS, 90, NULL, NULL};
    tok_store_register(f->st, &req, on_reg, &o);
    wait_out(f, &o);
    return o;
}

static out_t deact(fx_t *f, const char *user, const char *dev, const char *only)
{
    out_t o = {0};
    tok_store_deactivate(f->st, user, dev, "user", only, on_done, &o);
    wait_out(f, &o);
    return o;
}

static out_t purge(fx_t *f, const char *user, const char *dev)
{
    out_t o = {0};
    tok_store_purge(f->st, user, dev, on_done, &o);
    wait_out(f, &o);
    return o;
}

static out_t list(fx_t *f, const char *user)
{
    out_t o = {0};
    tok_store_list(f->st, user, on_list, &o);
    wait_out(f, &o);
    return o;
}

static out_t owner(fx_t *f, const char *tok)
{
    out_t o = {0};
    tok_store_find_owner(f->st, tok, on_owner, &o);
    wait_out(f, &o);
    return o;
}

/* A redis-cli style query (hiredis format: keys are %s arguments or literal) and its expected
 * reply. */
#define expect_redis(f, want, ...)                                                                 \
    assert_true(th_redis_expect(&(f)->live.redis, (want), __VA_ARGS__))

/* The owner key and the expiry bucket of a token (four calls' worth of keys at once). */
static const char *okey(const char *tok)
{
    static char k[4][KEY_MAX];
    static int i;
    i = (i + 1) % 4;
    key_owner(k[i], "ht:", tok);
    return k[i];
}

static const char *ekey(const char *tok)
{
    static char k[4][KEY_MAX];
    static int i;
    i = (i + 1) % 4;
    key_expiry(k[i], "ht:", key_token_bucket(tok));
    return k[i];
}

static char *redis_get(fx_t *f, const char *fmt, const char *a, const char *b)
{
    char *v = th_redis_cmd(&f->live.redis, fmt, a, b);
    assert_non_null(v);
    return v;
}

static void test_register_create_and_update(void **state)
{
    fx_t *f = *state;
    char iso0[TOK_TIME_MAX], num[32];
    clk_iso8601_ms(f->clk.wall, iso0, sizeof iso0);
    int64_t exp0 = now_s(f) + 90 * 86400;

    out_t o = reg(f, "u1", "d1", TOK_A);
    assert_int_equal(o.status, TOK_OK);
    assert_true(o.reg.created);
    assert_false(o.reg.reassigned);
    assert_string_equal(o.reg.record.user_id, "u1");
    assert_string_equal(o.reg.record.device_id, "d1");
    assert_string_equal(o.reg.record.token, TOK_A);
    assert_int_equal(o.reg.record.platform, TOK_PLATFORM_IOS);
    assert_true(o.reg.record.active);
    assert_string_equal(o.reg.record.registered_at, iso0);
    assert_string_equal(o.reg.record.updated_at, iso0);
    assert_int_equal(o.reg.record.expires_at, exp0);

    /* The keys as DESIGN.md lays them out. */
    expect_redis(f,
                 "u1\x1f"
                 "d1",
                 "GET %s", okey(TOK_A));
    snprintf(num, sizeof num, "%lld", (long long)exp0);
    char *score = redis_get(f, "ZSCORE %s %s", ekey(TOK_A),
                            "u1\x1f"
                            "d1");
    assert_string_equal(score, num);
    free(score);
    expect_redis(f, num, "EXPIRETIME %s", okey(TOK_A));
    char day_after[32]; /* the hash outlives its newest record by a day */
    snprintf(day_after, sizeof day_after, "%lld", (long long)exp0 + 86400);
    expect_redis(f, day_after, "EXPIRETIME ht:dev:{u1}");
    char *js = th_redis_cmd(&f->live.redis, "HGET ht:dev:{u1} d1");
    tok_record_t rec;
    char err[128];
    assert_int_equal(tok_record_parse(js, strlen(js), &rec, err, sizeof err), 0);
    assert_null(strstr(js, "deactivated"));
    free(js);

    /* A minute later: an update keeps registeredAt and moves the rest. */
    clk_fake_advance(&f->clk, 60000);
    char iso1[TOK_TIME_MAX];
    clk_iso8601_ms(f->clk.wall, iso1, sizeof iso1);
    o = reg(f, "u1", "d1", TOK_A);
    assert_int_equal(o.status, TOK_OK);
    assert_false(o.reg.created);
    assert_string_equal(o.reg.record.registered_at, iso0);
    assert_string_equal(o.reg.record.updated_at, iso1);
    assert_int_equal(o.reg.record.expires_at, exp0 + 60);
    snprintf(num, sizeof num, "%lld", (long long)(exp0 + 60));
    expect_redis(f, num, "EXPIRETIME %s", okey(TOK_A));
    expect_redis(f, day_after, "EXPIRETIME ht:dev:{u1}"); /* still late enough: not moved */
    /* Two days later the hash's expiry moves with the record. */
    clk_fake_advance(&f->clk, 2 * 86400 * 1000LL);
    assert_int_equal(reg(f, "u1", "d1", TOK_A).status, TOK_OK);
    snprintf(day_after, sizeof day_after, "%lld", (long long)exp0 + 60 + 3 * 86400);
    expect_redis(f, day_after, "EXPIRETIME ht:dev:{u1}");

    /* Re-registering a deactivated device reactivates it and clears the reason. */
    assert_int_equal(deact(f, "u1", "d1", NULL).status, TOK_OK);
    o = reg(f, "u1", "d1", TOK_A);
    assert_true(o.reg.record.active);
    assert_string_equal(o.reg.record.deactivated_reason, "");
    assert_int_equal(o.reg.record.deactivated_at, 0);
}

static void test_reassignment(void **state)
{
    fx_t *f = *state;
    assert_int_equal(reg(f, "u1", "d1", TOK_A).status, TOK_OK);
    clk_fake_advance(&f->clk, 5000);
    out_t o = reg(f, "u2", "d9", TOK_A); /* the phone changed hands */
    assert_int_equal(o.status, TOK_OK);
    assert_true(o.reg.created);
    assert_true(o.reg.reassigned);
    assert_string_equal(o.reg.prev_user_id, "u1");
    assert_string_equal(o.reg.prev_device_id, "d1");
    expect_redis(f,
                 "u2\x1f"
                 "d9",
                 "GET %s", okey(TOK_A));

    out_t l = list(f, "u1");
    assert_int_equal(l.n, 1);
    assert_false(l.recs[0].active);
    assert_string_equal(l.recs[0].deactivated_reason, "reassigned");
    assert_int_equal(l.recs[0].deactivated_at, now_s(f));
    o = owner(f, TOK_A);
    assert_int_equal(o.status, TOK_OK);
    assert_string_equal(o.owner.user_id, "u2");
    assert_string_equal(o.owner.device_id, "d9");

    /* u1/d1 moves on to a new token: owner:A belongs to u2 now and must stay. */
    o = reg(f, "u1", "d1", TOK_B);
    assert_false(o.reg.reassigned);
    expect_redis(f,
                 "u2\x1f"
                 "d9",
                 "GET %s", okey(TOK_A));
    expect_redis(f,
                 "u1\x1f"
                 "d1",
                 "GET %s", okey(TOK_B));
}

static void test_device_token_change(void **state)
{
    fx_t *f = *state;
    assert_int_equal(reg(f, "u1", "d1", TOK_A).status, TOK_OK);
    out_t o = reg(f, "u1", "d1", TOK_B);
    assert_int_equal(o.status, TOK_OK);
    assert_false(o.reg.created);
    assert_false(o.reg.reassigned);
    assert_string_equal(o.reg.record.token, TOK_B);
    expect_redis(f, "0", "EXISTS %s", okey(TOK_A));
    expect_redis(f,
                 "u1\x1f"
                 "d1",
                 "GET %s", okey(TOK_B));
    assert_int_equal(owner(f, TOK_A).status, TOK_ENOTFOUND);
    expect_redis(f, "1", "EVAL %s 0 %s", TH_EXPIRY_COUNT_LUA, "ht:expiry:{t");
}

/* The Lua twin of key_token_bucket (tokens/lua/token_keys.lua) finds the owner key and expiry
 * bucket the C side built: a device moving through many tokens leaves none of the old ones
 * bound. */
static void test_token_buckets_agree(void **state)
{
    fx_t *f = *state;
    char prev[64] = "", tok[64];
    for (int i = 0; i < 150; i++) {
        snprintf(tok, sizeof tok, "ExponentPushToken[t%020d]", i * 104729);
        assert_int_equal(reg(f, "u1", "d1", tok).status, TOK_OK);
        if (prev[0])
            expect_redis(f, "0", "EXISTS %s", okey(prev));
        snprintf(prev, sizeof prev, "%s", tok);
    }
    expect_redis(f, "1", "EVAL %s 0 %s", TH_EXPIRY_COUNT_LUA, "ht:expiry:{t");
    char *sc = redis_get(f, "ZSCORE %s %s", ekey(prev),
                         "u1\x1f"
                         "d1");
    assert_string_not_equal(sc, "(nil)");
    free(sc);
}

/* The API's calls charge the user's limit in the same script: allowed calls report the bucket,
 * a refused one changes nothing. */
static void test_quota(void **state)
{
    fx_t *f = *state;
    tok_rl_key_t v = {0};
    tok_quota_t q = {1, 2, &v};
    tok_reg_req_t req = {"u1", "d1", TOK_A, TOK_PLATFORM_IOS, 90, NULL, &q};
    out_t o = {0};
    tok_store_register(f->st, &req, on_reg, &o);
    wait_out(f, &o);
    assert_int_equal(o.status, TOK_OK);
    assert_true(v.ok);
    assert_string_equal(v.which, "user");
    assert_int_equal(v.burst, 2);
    assert_int_equal(v.remaining, 1);
    memset(&o, 0, sizeof o);
    tok_store_list_limited(f->st, "u1", &q, on_list, &o);
    wait_out(f, &o);
    assert_int_equal(o.status, TOK_OK);
    assert_int_equal(o.n, 1);
    assert_int_equal(v.remaining, 0);
    /* The bucket is empty: a registration, a deactivation and a list are refused unchanged. */
    req.device_id = "d2";
    memset(&o, 0, sizeof o);
    tok_store_register(f->st, &req, on_reg, &o);
    wait_out(f, &o);
    assert_int_equal(o.status, TOK_ELIMITED);
    assert_false(v.ok);
    assert_true(v.retry_ms > 0);
    expect_redis(f, "1", "HLEN ht:dev:{u1}");
    memset(&o, 0, sizeof o);
    tok_store_deactivate_limited(f->st, "u1", "d1", &q, on_done, &o);
    wait_out(f, &o);
    assert_int_equal(o.status, TOK_ELIMITED);
    assert_true(list(f, "u1").recs[0].active);
    memset(&o, 0, sizeof o);
    tok_store_list_limited(f->st, "u1", &q, on_list, &o);
    wait_out(f, &o);
    assert_int_equal(o.status, TOK_ELIMITED);
    /* Another user's bucket is its own; the internal calls (no quota) are never limited. */
    assert_int_equal(reg(f, "u2", "d1", TOK_B).status, TOK_OK);
    assert_int_equal(deact(f, "u1", "d1", NULL).status, TOK_OK);
    expect_redis(f, "1", "EXISTS ht:rl:u:{u1}");
}

/* Split steps (one script per hash slot): a registration stopped after each step leaves the
 * token one owner, and the retry completes the move. Redis ACL key patterns stop the steps (the
 * store's connection gets NOPERM for the slots it may not touch), as a crash or a failed node
 * would. */
static void acl(fx_t *f, const char *a, const char *b, const char *c, const char *d)
{
    char *ok =
        th_redis_cmd(&f->live.redis, "ACL SETUSER default resetkeys %s %s %s %s", a, b, c, d);
    assert_string_equal(ok, "OK");
    free(ok);
}

static void expect_owner(fx_t *f, const char *user, const char *dev)
{
    acl(f, "allkeys", "allkeys", "allkeys", "allkeys");
    out_t o = owner(f, TOK_A);
    assert_int_equal(o.status, TOK_OK);
    assert_string_equal(o.owner.user_id, user);
    assert_string_equal(o.owner.device_id, dev);
}

static void test_reassignment_crash_points(void **state)
{
    fx_t *f = *state;
    assert_int_equal(reg(f, "u1", "d1", TOK_A).status, TOK_OK);
    /* 1. the user slot only: u2's record is written, the token stays u1's */
    acl(f, "~ht:dev:*", "~ht:rl:*", "~ht:rl:*", "~ht:rl:*");
    assert_int_equal(reg(f, "u2", "d9", TOK_A).status, TOK_EUNAVAIL);
    expect_owner(f, "u1", "d1");
    assert_true(list(f, "u1").recs[0].active);
    assert_true(list(f, "u2").recs[0].active);
    /* 2. the retry stops at the holder's slot: nothing taken yet */
    acl(f, "~ht:owner:*", "~ht:expiry:*", "~ht:rl:*", "~ht:dev:{u2}");
    assert_int_equal(reg(f, "u2", "d9", TOK_A).status, TOK_EUNAVAIL);
    expect_owner(f, "u1", "d1");
    assert_true(list(f, "u1").recs[0].active);
    /* 3. the holder is deactivated, the owner key cannot move: nobody's sends pass */
    acl(f, "%R~ht:owner:*", "~ht:expiry:*", "~ht:rl:*", "~ht:dev:*");
    assert_int_equal(reg(f, "u2", "d9", TOK_A).status, TOK_EUNAVAIL);
    expect_owner(f, "u1", "d1");
    out_t l = list(f, "u1");
    assert_false(l.recs[0].active);
    assert_string_equal(l.recs[0].deactivated_reason, "reassigned");
    /* 4. the retry completes the move */
    out_t o = reg(f, "u2", "d9", TOK_A);
    assert_int_equal(o.status, TOK_OK);
    assert_false(o.reg.created);
    assert_true(o.reg.reassigned);
    assert_string_equal(o.reg.prev_user_id, "u1");
    expect_owner(f, "u2", "d9");
}

static void test_max_devices(void **state)
{
    fx_t *f = *state; /* a limit of two devices */
    assert_int_equal(reg(f, "u1", "d1", TOK_A).status, TOK_OK);
    clk_fake_advance(&f->clk, 1000);
    assert_int_equal(reg(f, "u1", "d2", TOK_B).status, TOK_OK);
    out_t o = reg(f, "u1", "d3", TOK_C);
    assert_int_equal(o.status, TOK_ELIMIT);
    expect_redis(f, "0", "EXISTS %s", okey(TOK_C)); /* refused unchanged */
    expect_redis(f, "2", "HLEN ht:dev:{u1}");
    assert_int_equal(reg(f, "u1", "d1", TOK_A).status, TOK_OK); /* existing devices refresh */
    /* A deactivated device makes room: it is evicted with its indexes. */
    assert_int_equal(deact(f, "u1", "d2", NULL).status, TOK_OK);
    o = reg(f, "u1", "d3", TOK_C);
    assert_int_equal(o.status, TOK_OK);
    assert_true(o.reg.created);
    expect_redis(f, "0", "HEXISTS ht:dev:{u1} d2");
    expect_redis(f, "0", "EXISTS %s", okey(TOK_B));
    expect_redis(f, "2", "EVAL %s 0 %s", TH_EXPIRY_COUNT_LUA, "ht:expiry:{t");
    assert_int_equal(list(f, "u1").n, 2);
}

static void test_deactivate(void **state)
{
    fx_t *f = *state;
    assert_int_equal(reg(f, "u1", "d1", TOK_A).status, TOK_OK);
    assert_int_equal(reg(f, "u1", "d2", TOK_B).status, TOK_OK);
    clk_fake_advance(&f->clk, 7000);

    assert_int_equal(deact(f, "u1", "d1", TOK_B).status, TOK_ECONFLICT);
    assert_int_equal(deact(f, "u1", "d1", TOK_A).status, TOK_OK);
    assert_int_equal(deact(f, "u1", "d2", NULL).status, TOK_OK);
    assert_int_equal(deact(f, "u1", "nope", NULL).status, TOK_ENOTFOUND);
    assert_int_equal(deact(f, "ghost", "d1", NULL).status, TOK_ENOTFOUND);

    out_t l = list(f, "u1");
    assert_int_equal(l.n, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_false(l.recs[i].active);
        assert_string_equal(l.recs[i].deactivated_reason, "user");
        assert_int_equal(l.recs[i].deactivated_at, now_s(f));
    }
    /* Soft delete keeps the record in the indexes. */
    expect_redis(f,
                 "u1\x1f"
                 "d1",
                 "GET %s", okey(TOK_A));
    expect_redis(f, "2", "EVAL %s 0 %s", TH_EXPIRY_COUNT_LUA, "ht:expiry:{t");
    /* Deactivating again keeps the first reason. */
    clk_fake_advance(&f->clk, 5000);
    tok_store_deactivate(f->st, "u1", "d1", "admin", NULL, on_done, &(out_t){0});
    l = list(f, "u1");
    for (size_t i = 0; i < 2; i++)
        assert_string_equal(l.recs[i].deactivated_reason, "user");
}

static void test_purge(void **state)
{
    fx_t *f = *state;
    assert_int_equal(reg(f, "u1", "d1", TOK_A).status, TOK_OK);
    assert_int_equal(reg(f, "u1", "d2", TOK_B).status, TOK_OK);
    assert_int_equal(reg(f, "u1", "d3", TOK_C).status, TOK_OK);
    assert_int_equal(reg(f, "u2", "x", TOK_C).status, TOK_OK); /* takes C from u1/d3 */

    assert_int_equal(purge(f, "u1", "d1").status, TOK_OK);
    expect_redis(f, "0", "HEXISTS ht:dev:{u1} d1");
    expect_redis(f, "0", "EXISTS %s", okey(TOK_A));
    char *sc = redis_get(f, "ZSCORE %s %s", ekey(TOK_A),
                         "u1\x1f"
                         "d1");
    assert_string_equal(sc, "(nil)");
    free(sc);
    assert_int_equal(purge(f, "u1", "d1").status, TOK_ENOTFOUND);

    assert_int_equal(purge(f, "u1", NULL).status, TOK_OK);
    expect_redis(f, "0", "EXISTS ht:dev:{u1}");
    expect_redis(f, "0", "EXISTS %s", okey(TOK_B));
    expect_redis(f,
                 "u2\x1f"
                 "x",
                 "GET %s", okey(TOK_C)); /* not u1's any more: kept */
    expect_redis(f, "1", "EVAL %s 0 %s", TH_EXPIRY_COUNT_LUA, "ht:expiry:{t");
    assert_int_equal(list(f, "u1").n, 0);
    assert_int_equal(purge(f, "u1", NULL).status, TOK_ENOTFOUND);
}

static void test_list_find_owner_and_corrupt(void **state)
{
    fx_t *f = *state;
    out_t l = list(f, "nobody");
    assert_int_equal(l.status, TOK_OK);
    assert_int_equal(l.n, 0);
    assert_int_equal(reg(f, "u1", "d1", TOK_A).status, TOK_OK);
    assert_int_equal(reg(f, "u1", "d2", TOK_B).status, TOK_OK);
    char *ok = th_redis_cmd(&f->live.redis, "HSET ht:dev:{u1} broken {not-json");
    free(ok);
    l = list(f, "u1");
    assert_int_equal(l.status, TOK_OK);
    assert_int_equal(l.n, 2); /* the corrupt one is skipped, not fatal */
    bool seen1 = false, seen2 = false;
    for (size_t i = 0; i < l.n; i++) {
        seen1 |= strcmp(l.recs[i].device_id, "d1") == 0;
        seen2 |= strcmp(l.recs[i].device_id, "d2") == 0;
    }
    assert_true(seen1 && seen2);

    out_t o = owner(f, TOK_B);
    assert_int_equal(o.status, TOK_OK);
    assert_string_equal(o.owner.user_id, "u1");
    assert_string_equal(o.owner.device_id, "d2");
    assert_int_equal(owner(f, TOK_C).status, TOK_ENOTFOUND);
}

static void test_invalid_and_unavailable(void **state)
{
    fx_t *f = *state;
    assert_int_equal(reg(f, "u1", "d1", "not-a-token").status, TOK_EINVAL);
    assert_int_equal(reg(f,
                         "u\x1f"
                         "1",
                         "d1", TOK_A)
                         .status,
                     TOK_EINVAL);
    assert_int_equal(reg(f, "u1", "", TOK_A).status, TOK_EINVAL);
    assert_int_equal(owner(f, "junk").status, TOK_EINVAL);
    assert_int_equal(list(f, "").status, TOK_EINVAL);
    assert_true(tok_store_ready(f->st));

    th_stop(&f->live.redis.proc, SIGKILL, 5000);
    assert_true(tloop_until_ready(&f->live.t, f->live.db, false, WAIT_MS));
    assert_false(tok_store_ready(f->st));
    assert_int_equal(list(f, "u1").status, TOK_EUNAVAIL);
    assert_int_equal(reg(f, "u1", "d1", TOK_A).status, TOK_EUNAVAIL);
    assert_int_equal(deact(f, "u1", "d1", NULL).status, TOK_EUNAVAIL);
    assert_string_equal(tok_strerror(TOK_EUNAVAIL), "token store unavailable");
}

/* A test run with its fixture as its state, composed and split. */
#define WITH_FX(test)                                                                              \
    cmocka_unit_test_prestate_setup_teardown(test, fx_setup, fx_teardown, &composed),              \
        cmocka_unit_test_prestate_setup_teardown(test, fx_setup, fx_teardown, &split)
#define WITH_FX_MAX2(test)                                                                         \
    cmocka_unit_test_prestate_setup_teardown(test, fx_setup, fx_teardown, &two),                   \
        cmocka_unit_test_prestate_setup_teardown(test, fx_setup, fx_teardown, &two_split)

int main(void)
{
    static params_t composed = {20, false}, split = {20, true}, two = {2, false},
                    two_split = {2, true};
    const struct CMUnitTest tests[] = {
        WITH_FX(test_register_create_and_update),
        WITH_FX(test_reassignment),
        cmocka_unit_test_prestate_setup_teardown(test_reassignment_crash_points, fx_setup,
                                                 fx_teardown, &split),
        WITH_FX(test_device_token_change),
        WITH_FX(test_token_buckets_agree),
        WITH_FX_MAX2(test_max_devices),
        WITH_FX(test_deactivate),
        WITH_FX(test_quota),
        WITH_FX(test_purge),
        WITH_FX(test_list_find_owner_and_corrupt),
        WITH_FX(test_invalid_and_unavailable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
