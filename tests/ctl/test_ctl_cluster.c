/* test_ctl_cluster.c - heraldctl's token commands on a real Redis Cluster (3 masters, 3 replicas,
 * tests/support/cluster.h; one cluster for the cases, flushed between them) with
 * redis.cluster = true: list/get/find, count and export walk every master, sweep and cleanup
 * remove records and their owner keys and expiry entries in their own slots, import follows
 * registration's rules one slot at a time, reindex rebuilds owner keys and expiry entries in their
 * own slots. The records are seeded straight into the nodes serving their keys (ctl_seed.h). */
#include "core/xalloc.h"
#include "tests/ctl/ctl_seed.h"
#include "tests/support/cluster.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static th_cluster_t C;
static char dir[256], conf[320];
static buf_t out, err;
#define ctl(...) run_ctlf(conf, &out, &err, __VA_ARGS__)

/* 50 records over 10 users: i % 5 == 0 expired, 1 inactive for 40 days, the rest active. */
#define N 50
#define PER_USER 5

static void shape(long i, tok_record_t *r, int64_t now, void *arg)
{
    (void)arg;
    if (i % 5 == 0) {
        r->expires_at = now - 3600;
    } else if (i % 5 == 1) {
        r->active = false;
        snprintf(r->deactivated_reason, sizeof r->deactivated_reason, "DeviceNotRegistered");
        r->deactivated_at = now - 40 * 86400;
    }
}

static int group_setup(void **state)
{
    (void)state;
    if (th_cluster_start(&C) != 0 || th_tmpdir(dir, sizeof dir) != 0)
        return -1;
    char extra[256];
    snprintf(extra, sizeof extra, "redis.cluster = true\nredis.cluster_seeds = %s\n", C.seeds);
    seed_conf(dir, C.url, extra, conf, sizeof conf);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    th_cluster_stop(&C);
    buf_cleanup(&out);
    buf_cleanup(&err);
    return 0;
}

/* Empties every master and seeds the records (shaped by fn). */
static int seed_with(seed_shape_fn fn)
{
    for (int i = 0; i < TH_CLUSTER_NODES; i++) {
        char *role = th_redis_cmd(&C.node[i], "ROLE");
        if (role && strncmp(role, "master", 6) == 0)
            free(th_redis_cmd(&C.node[i], "FLUSHALL"));
        free(role);
    }
    return seed_records(&C.node[0], N, PER_USER, seed_now(), fn, NULL);
}

static int seed(void **state)
{
    (void)state;
    return seed_with(shape);
}

static char *token_of(long i, char *buf, size_t len)
{
    snprintf(buf, len, "ExponentPushToken[t%ld]", i);
    return buf;
}

/* Record i's owner key and expiry entry are there (present) or both gone. */
static void expect_indexed(long i, bool present)
{
    char tok[64], k[KEY_MAX], member[64];
    snprintf(member, sizeof member,
             "u%ld\x1f"
             "d%ld",
             i / PER_USER, i % PER_USER);
    char *v = th_redis_cmd(&C.node[0], "ZSCORE %s %s",
                           th_expiry_key(k, "herald:", token_of(i, tok, sizeof tok)), member);
    assert_non_null(v);
    if (present != (strcmp(v, "(nil)") != 0))
        fail_msg("record %ld: expiry entry %s", i, v);
    free(v);
    if (i % 5 != 0) { /* expired records were seeded without an owner key */
        v = th_redis_cmd(&C.node[0], "EXISTS %s", th_owner_key(k, "herald:", tok));
        assert_non_null(v);
        assert_string_equal(v, present ? "1" : "0");
        free(v);
    }
}

static void test_read_commands(void **state)
{
    (void)state;
    assert_int_equal(ctl("tokens list --user u1 --json"), 0);
    json_t *j = json_loads(out.data, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "devices")), PER_USER);
    json_decref(j);
    assert_int_equal(ctl("tokens get --user u0 --device d1"), 0);
    assert_true(out_has(&out, "inactive"));
    /* diagnose reads the user's records, each token's owner key (in the token's slot) and the
     * trace indexes: a device's verdict on a cluster as on one Redis. */
    assert_int_equal(ctl("diagnose --user u1 --json"), 0);
    j = json_loads(out.data, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "devices")), PER_USER);
    assert_true(json_integer_value(json_object_get(j, "receiving")) > 0);
    assert_true(json_integer_value(json_object_get(j, "receiving")) < PER_USER);
    json_decref(j);
    assert_int_equal(ctl("diagnose --user nobody"), 1);
    assert_int_equal(ctl("tokens find --token 'ExponentPushToken[t7]'"), 0);
    assert_true(out_has(&out, "userId         u1"));
    assert_true(out_has(&out, "deviceId       d2"));
}

/* count and export see the records of every master. */
static void test_count_export(void **state)
{
    (void)state;
    assert_int_equal(ctl("tokens count --json"), 0);
    assert_true(
        out_has(&out, "\"active\":30,\"inactive\":10,\"expired\":10,\"corrupt\":0,\"total\":50"));
    char path[300];
    snprintf(path, sizeof path, "%s/export.jsonl", dir);
    assert_int_equal(ctl("tokens export -o %s", path), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    bool seen[N] = {false};
    long lines = 0;
    while (fgets(line, sizeof line, f)) {
        lines++;
        const char *t = strstr(line, "ExponentPushToken[t");
        assert_non_null(t);
        long i = atol(t + strlen("ExponentPushToken[t"));
        assert_true(i >= 0 && i < N);
        assert_false(seen[i]);
        seen[i] = true;
    }
    fclose(f);
    assert_int_equal(lines, N);
}

/* sweep removes the expired records with their expiry entries; cleanup the long-inactive ones
 * with their owner keys; the rest keep theirs. */
static void test_sweep_cleanup(void **state)
{
    (void)state;
    assert_int_equal(ctl("tokens sweep --dry-run --json"), 0);
    assert_true(out_has(&out, "\"dryRun\":true,\"expired\":10,\"inactive\":0,\"staleIndex\":0"));
    expect_indexed(0, true);
    assert_int_equal(ctl("tokens sweep"), 0);
    assert_true(out_has(&out, "removed 10 expired token(s)"));
    assert_int_equal(ctl("tokens cleanup --inactive-older-than 30d"), 0);
    assert_true(out_has(&out, "removed 10 inactive token(s)"));
    assert_int_equal(ctl("tokens count --json"), 0);
    assert_true(
        out_has(&out, "\"active\":30,\"inactive\":0,\"expired\":0,\"corrupt\":0,\"total\":30"));
    for (long i = 0; i < N; i++) {
        char *v =
            th_redis_cmd(&C.node[0], "HEXISTS herald:dev:{u%ld} d%ld", i / PER_USER, i % PER_USER);
        assert_non_null(v);
        assert_string_equal(v, i % 5 <= 1 ? "0" : "1");
        free(v);
        expect_indexed(i, i % 5 > 1);
    }
}

/* One import line: an active record (expiring in a day) or an inactive one. */
static void import_line(FILE *f, const char *user, const char *dev, const char *tok, bool active)
{
    long long now = (long long)seed_now();
    fprintf(f,
            "{\"userId\":\"%s\",\"deviceId\":\"%s\",\"expoPushToken\":\"%s\","
            "\"platform\":\"ios\",\"registeredAt\":\"2025-01-01T00:00:00.000Z\","
            "\"updatedAt\":\"2025-06-01T12:00:00.000Z\",\"isActive\":%s,\"expiresAt\":%lld%s}\n",
            user, dev, tok, active ? "true" : "false", now + 86400,
            active ? "" : ",\"deactivatedReason\":\"user\",\"deactivatedAt\":1750000000");
}

static void expect_owner(const char *tok, const char *member)
{
    char k[KEY_MAX];
    assert_true(th_redis_expect(&C.node[0], member, "GET %s", th_owner_key(k, "herald:", tok)));
}

/* import under registration's rules, one slot at a time: an active record takes its token from
 * the holder (deactivated, "reassigned"), an inactive one leaves the holder's owner key, a new
 * token for a device drops the old one's binding; a second import changes nothing. */
static void test_import(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/import.jsonl", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    import_line(f, "imp", "d", "ExponentPushToken[t7]", true);    /* held by u1/d2 */
    import_line(f, "imp2", "d", "ExponentPushToken[t8]", false);  /* held by u1/d3 */
    import_line(f, "u2", "d2", "ExponentPushToken[new12]", true); /* u2/d2 held t12 */
    fclose(f);
    assert_int_equal(ctl("tokens import --json %s", path), 0);
    assert_true(out_has(&out, "\"created\":2,\"updated\":1,\"unchanged\":0,\"reassigned\":1"));
    expect_owner("ExponentPushToken[t7]", "imp\x1f"
                                          "d");
    tok_record_t r = seed_stored(&C.node[0], "u1", "d2");
    assert_false(r.active);
    assert_string_equal(r.deactivated_reason, "reassigned");
    expect_owner("ExponentPushToken[t8]", "u1\x1f"
                                          "d3");
    assert_true(seed_stored(&C.node[0], "u1", "d3").active);
    expect_owner("ExponentPushToken[new12]", "u2\x1f"
                                             "d2");
    expect_indexed(12, false); /* t12's owner key and expiry entry are gone */
    assert_int_equal(ctl("tokens import --json %s", path), 0);
    assert_true(out_has(&out, "\"created\":0,\"updated\":0,\"unchanged\":3"));
    assert_int_equal(ctl("tokens count --json"), 0);
    assert_true(out_has(&out, "\"total\":52"));
}

/* Record 13 (u2/d3, active) shares record 8's token (u1/d3, active), and was seeded last: the
 * token's owner key names it. */
static void shape_shared(long i, tok_record_t *r, int64_t now, void *arg)
{
    shape(i, r, now, arg);
    if (i == 13)
        snprintf(r->token, sizeof r->token, "ExponentPushToken[t8]");
}

/* Every master's keyspace (snapshot_of each), as one string (new). */
static char *snapshot(void)
{
    buf_t b = BUF_INIT;
    for (int i = 0; i < TH_CLUSTER_NODES; i++) {
        char *role = th_redis_cmd(&C.node[i], "ROLE");
        if (role && strncmp(role, "master", 6) == 0) {
            char *s = seed_snapshot(&C.node[i]);
            buf_printf(&b, "%s\n", s);
            free(s);
        }
        free(role);
    }
    char *s = xstrdup(buf_cstr(&b));
    buf_cleanup(&b);
    return s;
}

/* reindex walks every master and writes each record's keys in its token's slot: the owner keys
 * and expiry entries that went missing come back, an owner key naming a record that no longer
 * holds the token goes to the record that does, one naming another record that holds the token is
 * kept, the keys of the schema before token buckets go; a second run changes nothing. */
static void test_reindex(void **state)
{
    (void)state;
    assert_int_equal(seed_with(shape_shared), 0);
    char tok[64], k[KEY_MAX], member[64];
    long dropped = 0;
    for (long i = 0; i < N; i += 2) {
        if (i == 8)
            continue; /* t8: two records hold it, see below */
        snprintf(member, sizeof member,
                 "u%ld\x1f"
                 "d%ld",
                 i / PER_USER, i % PER_USER);
        token_of(i, tok, sizeof tok);
        free(th_redis_cmd(&C.node[0], "ZREM %s %s", th_expiry_key(k, "herald:", tok), member));
        if (i % 5 != 0) {
            free(th_redis_cmd(&C.node[0], "DEL %s", th_owner_key(k, "herald:", tok)));
            dropped++;
        }
    }
    /* t7's owner key names u9/d0, which holds t45. */
    free(th_redis_cmd(&C.node[0], "SET %s %s", th_owner_key(k, "herald:", "ExponentPushToken[t7]"),
                      "u9\x1f"
                      "d0"));
    free(th_redis_cmd(&C.node[0], "SET herald:owner:ExponentPushToken[t1] u0\x1f"
                                  "d1"));
    free(th_redis_cmd(&C.node[0], "ZADD herald:expiry 1 u0\x1f"
                                  "d0"));
    assert_int_equal(ctl("tokens reindex --json"), 0);
    char want[128];
    snprintf(want, sizeof want, "\"records\":%d,\"ownerKeysWritten\":%ld,\"oldKeysRemoved\":2", N,
             dropped + 1);
    assert_true(out_has(&out, want));
    for (long i = 0; i < N; i++)
        if (i != 13)
            expect_indexed(i, true);
    expect_owner("ExponentPushToken[t7]", "u1\x1f"
                                          "d2");
    expect_owner("ExponentPushToken[t8]", "u2\x1f"
                                          "d3");
    assert_true(th_redis_expect(&C.node[0], "1", "EXISTS %s",
                                th_expiry_key(k, "herald:", "ExponentPushToken[t8]")));
    assert_true(th_redis_expect(&C.node[0], "0", "EXISTS herald:owner:ExponentPushToken[t1]"));
    assert_true(th_redis_expect(&C.node[0], "0", "EXISTS herald:expiry"));
    char *before = snapshot();
    assert_int_equal(ctl("tokens reindex --json"), 0);
    assert_true(out_has(&out, "\"ownerKeysWritten\":0,\"oldKeysRemoved\":0"));
    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_read_commands, seed),
        cmocka_unit_test_setup(test_count_export, seed),
        cmocka_unit_test_setup(test_sweep_cleanup, seed),
        cmocka_unit_test_setup(test_import, seed),
        cmocka_unit_test(test_reindex),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
