/* test_import.c - `heraldctl tokens import` keeps the registration invariants (the built binary
 * against a real redis-server, registration through the real token store beside it): a token
 * imported for another (user, device) deactivates its previous binding as `reassigned`; the device
 * limit holds, with registration's eviction rule (the same scenario through both gives the same
 * devices) and the refused lines reported by number; importing a file twice changes nothing the
 * second time and says so. */
#include "tests/ctl/ctl_seed.h"

#include "core/clock.h"
#include "db/db.h"
#include "tests/db/tloop.h"
#include "tokens/store.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define WAIT_MS 10000
#define MAX_DEVICES 4

static th_redis_t rs;
static char dir[256], conf[320];
static tloop_t tl;
static db_t *db;
static tok_store_t *store;

static int group_setup(void **state)
{
    *state = &rs;
    if (th_redis_start(&rs, 0) != 0 || th_tmpdir(dir, sizeof dir) != 0)
        return -1;
    char extra[128];
    snprintf(extra, sizeof extra, "expo.url = http://127.0.0.1:1\ntokens.max_devices_per_user = %d",
             MAX_DEVICES);
    seed_conf(dir, rs.url, extra, conf, sizeof conf);
    tloop_init(&tl);
    char err[256];
    db_opts_t o = {.url = rs.url, .timeout_ms = 2000};
    db = db_create(&tl.loop, &o, err, sizeof err);
    if (db == NULL || !tloop_until_ready(&tl, db, true, WAIT_MS))
        return -1;
    store = tok_store_redis_create(db, "herald:", NULL, MAX_DEVICES);
    return store ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    tok_store_destroy(store);
    db_destroy(db);
    tloop_close(&tl);
    th_redis_stop(&rs);
    return 0;
}

/* ---- registration through the real store ---- */

typedef struct reg_out {
    bool done;
    int status;
    tok_reg_result_t res;
} reg_out_t;

static void on_reg(int status, const tok_reg_result_t *res, void *arg)
{
    reg_out_t *o = arg;
    o->done = true;
    o->status = status;
    if (res)
        o->res = *res;
}

static reg_out_t reg(const char *user, const char *device, const char *token)
{
    reg_out_t o = {0};
    tok_reg_req_t req = {.user_id = user,
                         .device_id = device,
                         .token = token,
                         .platform = TOK_PLATFORM_IOS,
                         .ttl_days = 30};
    tok_store_register(store, &req, on_reg, &o);
    assert_true(tloop_until(&tl, &o.done, WAIT_MS));
    return o;
}

/* ---- records, files, heraldctl ---- */

static tok_record_t rec(const char *user, const char *device, const char *token, bool active,
                        int64_t expires_at, const char *updated_at)
{
    tok_record_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.user_id, sizeof r.user_id, "%s", user);
    snprintf(r.device_id, sizeof r.device_id, "%s", device);
    snprintf(r.token, sizeof r.token, "%s", token);
    r.platform = TOK_PLATFORM_ANDROID;
    snprintf(r.registered_at, sizeof r.registered_at, "2025-01-01T00:00:00.000Z");
    snprintf(r.updated_at, sizeof r.updated_at, "%s", updated_at);
    r.active = active;
    r.expires_at = expires_at;
    if (!active) {
        snprintf(r.deactivated_reason, sizeof r.deactivated_reason, "user");
        r.deactivated_at = 1735689600;
    }
    return r;
}

/* Writes the record straight into Redis as ctl_seed.c does: hash field, expiry entry, and the
 * owner key while it has not expired. */
static void put(const tok_record_t *r)
{
    buf_t js = BUF_INIT;
    tok_record_json(r, &js);
    buf_putc(&js, '\0');
    free(th_redis_cmd(&rs, "HSET herald:dev:{%s} %s %s", r->user_id, r->device_id, js.data));
    char k[KEY_MAX];
    free(th_redis_cmd(&rs, "ZADD %s %lld %s\x1f%s", th_expiry_key(k, "herald:", r->token),
                      (long long)r->expires_at, r->user_id, r->device_id));
    if (r->expires_at > seed_now())
        free(th_redis_cmd(&rs, "SET %s %s\x1f%s EXAT %lld", th_owner_key(k, "herald:", r->token),
                          r->user_id, r->device_id, (long long)r->expires_at));
    buf_cleanup(&js);
}

static void write_lines(const char *path, const tok_record_t *rs_, size_t n)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    buf_t b = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        buf_reset(&b);
        tok_record_json(&rs_[i], &b);
        buf_putc(&b, '\n');
        fwrite(b.data, 1, b.len, f);
    }
    buf_cleanup(&b);
    fclose(f);
}

static buf_t out, err;
/* Runs heraldctl with this group's config; out/err are kept for assertions. */
#define ctl(...) run_ctlf(conf, &out, &err, __VA_ARGS__)

/* ---- (a) a token imported for another (user, device) ---- */

static void test_import_reassigns(void **state)
{
    (void)state;
    int64_t exp = seed_now() + 86400;
    assert_int_equal(reg("ua", "d1", "ExponentPushToken[tt]").status, TOK_OK);
    /* ux/d1 holds another token, active: an inactive or expired import does not take it. */
    assert_int_equal(reg("ux", "d1", "ExponentPushToken[keep]").status, TOK_OK);
    tok_record_t lines[] = {
        rec("ub", "d2", "ExponentPushToken[tt]", true, exp, "2025-06-01T00:00:00.000Z"),
        rec("uy", "d1", "ExponentPushToken[keep]", false, exp, "2025-06-01T00:00:00.000Z"),
        rec("uz", "d1", "ExponentPushToken[keep]", true, seed_now() - 60,
            "2025-06-01T00:00:00.000Z"),
    };
    char path[400];
    snprintf(path, sizeof path, "%s/reassign.jsonl", dir);
    write_lines(path, lines, 3);
    assert_int_equal(ctl("tokens import -i %s", path), 0);

    tok_record_t a = seed_stored(&rs, "ua", "d1");
    assert_false(a.active);
    assert_string_equal(a.deactivated_reason, "reassigned");
    assert_true(a.deactivated_at >= seed_now() - 60);
    seed_expect_owner(&rs, "ExponentPushToken[tt]", "ub", "d2");
    tok_record_t b = seed_stored(&rs, "ub", "d2");
    assert_true(b.active);
    assert_string_equal(b.updated_at, "2025-06-01T00:00:00.000Z"); /* kept as given */
    assert_int_equal(b.expires_at, exp);

    assert_true(seed_stored(&rs, "ux", "d1").active);
    seed_expect_owner(&rs, "ExponentPushToken[keep]", "ux", "d1");
    assert_false(seed_stored(&rs, "uy", "d1").active);
    assert_true(seed_stored(&rs, "uz", "d1").active); /* expired: restored, bound to nothing */
    assert_int_equal(check_indexes(&rs), 0);
    assert_true(out_has(&out, "3 created"));
    assert_true(out_has(&out, "1 reassigned"));

    /* Registration afterwards follows the same rule: the phone goes back to ua. */
    reg_out_t o = reg("ua", "d1", "ExponentPushToken[tt]");
    assert_int_equal(o.status, TOK_OK);
    assert_true(o.res.reassigned);
    assert_string_equal(o.res.prev_user_id, "ub");
    assert_false(seed_stored(&rs, "ub", "d2").active);
    assert_int_equal(check_indexes(&rs), 0);
}

/* ---- (b) the device limit ---- */

/* A user at the limit with two dead records and one active; the dead ones are evicted oldest
 * (updatedAt) first. */
static void seed_full_user(const char *user, int64_t now)
{
    char tok[64];
    const struct {
        const char *dev, *updated;
        bool active;
        int64_t exp;
    } devs[] = {
        {"d0", "2025-01-01T00:00:00.000Z", true, now + 86400},
        {"d1", "2025-03-01T00:00:00.000Z", false, now + 86400}, /* inactive */
        {"d2", "2025-02-01T00:00:00.000Z", true, now - 3600},   /* expired */
        {"d3", "2025-04-01T00:00:00.000Z", false, now + 86400}, /* inactive */
    };
    for (size_t i = 0; i < 4; i++) {
        snprintf(tok, sizeof tok, "ExponentPushToken[%s%s]", user, devs[i].dev);
        tok_record_t r = rec(user, devs[i].dev, tok, devs[i].active, devs[i].exp, devs[i].updated);
        put(&r);
    }
}

static char *devices(const char *user)
{
    char *s = th_redis_cmd(&rs, "EVAL %s 1 herald:dev:{%s}",
                           "local k = redis.call('HKEYS', KEYS[1]) table.sort(k) "
                           "return table.concat(k, ' ')",
                           user);
    assert_non_null(s);
    return s;
}

static void test_import_device_limit(void **state)
{
    (void)state;
    int64_t now = seed_now(), exp = now + 86400;
    seed_full_user("ri", now);
    seed_full_user("im", now);
    char path[400], tok[64];
    snprintf(path, sizeof path, "%s/limit.jsonl", dir);

    /* One new device: the oldest dead record (d2, expired) goes, with its indexes. */
    tok_record_t one =
        rec("im", "n1", "ExponentPushToken[imn1]", true, exp, "2025-06-01T00:00:00.000Z");
    write_lines(path, &one, 1);
    assert_int_equal(ctl("tokens import -i %s", path), 0);
    char *d = devices("im");
    assert_string_equal(d, "d0 d1 d3 n1");
    free(d);
    assert_true(out_has(&out, "1 evicted"));
    assert_int_equal(check_indexes(&rs), 0);

    /* Four new devices: two more dead records to evict, then the limit refuses the rest. */
    tok_record_t lines[5];
    for (int i = 0; i < 4; i++) {
        char dev[8];
        snprintf(dev, sizeof dev, "n%d", i + 1);
        snprintf(tok, sizeof tok, "ExponentPushToken[imn%d]", i + 1);
        lines[i] = rec("im", dev, tok, true, exp, "2025-06-01T00:00:00.000Z");
        /* the same through registration, for the other user */
        snprintf(tok, sizeof tok, "ExponentPushToken[rin%d]", i + 1);
        assert_int_equal(reg("ri", dev, tok).status, i < 3 ? TOK_OK : TOK_ELIMIT);
    }
    lines[4] =
        rec("other", "d1", "ExponentPushToken[other]", true, exp, "2025-06-01T00:00:00.000Z");
    write_lines(path, lines, 5);
    assert_int_equal(ctl("tokens import -i %s", path), 4);
    assert_true(out_has(&err, "line 4: refused:"));
    assert_true(out_has(&err, "max_devices_per_user"));
    assert_true(out_has(&out, "1 unchanged"));
    assert_true(out_has(&out, "2 evicted"));
    assert_true(out_has(&out, "1 refused"));
    assert_false(strstr(err.data, "line 1:") || strstr(err.data, "line 2:") ||
                 strstr(err.data, "line 3:") || strstr(err.data, "line 5:"));
    char *di = devices("im"), *dr = devices("ri");
    assert_string_equal(di, "d0 n1 n2 n3");
    assert_string_equal(dr, "d0 n1 n2 n3"); /* registration evicted the same records */
    free(di);
    free(dr);
    assert_int_equal(seed_owner_exists(&rs, "ExponentPushToken[imn4]"), 0);
    assert_int_equal(seed_owner_exists(&rs, "ExponentPushToken[imd1]"), 0);
    assert_int_equal(redis_int(&rs, "HLEN herald:dev:{other}"), 1);
    assert_int_equal(check_indexes(&rs), 0);

    assert_int_equal(ctl("tokens import -i %s --json", path), 4);
    assert_true(out_has(&err, "{\"line\":4,\"refused\":"));
    assert_true(out_has(&out, "\"refused\":1"));
}

/* ---- (c) idempotent ---- */

static void test_import_twice(void **state)
{
    (void)state;
    int64_t now = seed_now(), exp = now + 86400;
    assert_int_equal(reg("ua", "d1", "ExponentPushToken[tt]").status, TOK_OK);
    seed_full_user("im", now);
    tok_record_t lines[] = {
        rec("ub", "d2", "ExponentPushToken[tt]", true, exp, "2025-06-01T00:00:00.000Z"),
        rec("im", "n1", "ExponentPushToken[n1]", true, exp, "2025-06-01T00:00:00.000Z"),
        rec("im", "n3", "ExponentPushToken[n3]", true, exp, "2025-06-01T00:00:00.000Z"),
        rec("im", "n4", "ExponentPushToken[n4]", true, exp, "2025-06-01T00:00:00.000Z"),
        /* dead, and nothing left to evict: refused */
        rec("im", "n2", "ExponentPushToken[n2]", false, exp, "2025-06-01T00:00:00.000Z"),
        rec("uc", "d1", "ExponentPushToken[old]", true, now - 60, "2025-06-01T00:00:00.000Z"),
    };
    char path[400];
    snprintf(path, sizeof path, "%s/twice.jsonl", dir);
    write_lines(path, lines, 6);
    int first = ctl("tokens import -i %s", path);
    assert_true(out_has(&out, "1 reassigned"));
    assert_true(out_has(&out, "3 evicted"));
    assert_true(out_has(&out, "1 refused"));
    assert_true(out_has(&err, "line 5: refused:"));
    assert_int_equal(first, 4);
    assert_int_equal(check_indexes(&rs), 0);
    char *before = seed_snapshot(&rs);

    assert_int_equal(ctl("tokens import -i %s --json", path), first);
    json_t *j = json_loads(buf_cstr(&out), 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "updated")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "unchanged")), 5);
    assert_int_equal(json_integer_value(json_object_get(j, "reassigned")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "evicted")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "refused")), 1);
    json_decref(j);
    char *after = seed_snapshot(&rs);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_import_reassigns, seed_flush),
        cmocka_unit_test_setup(test_import_device_limit, seed_flush),
        cmocka_unit_test_setup(test_import_twice, seed_flush),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    buf_cleanup(&out);
    buf_cleanup(&err);
    return rc;
}
