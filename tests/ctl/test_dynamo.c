/* test_dynamo.c - `heraldctl tokens import --format dynamodb-json`: the seed's DynamoDB export
 * into herald (the built binary against a real redis-server). Each test builds its export in a
 * temp folder as `aws dynamodb export-table-to-point-in-time --export-format DYNAMODB_JSON`
 * writes it (manifest-summary.json, manifest-files.json, gzipped data files) with valid,
 * expired, inactive, malformed, duplicate-token and missing-expiresAt items, and checks the
 * counts by outcome, the refused items by file and line, the owner and expiry indexes, that a
 * second run changes nothing, the latest-updatedAt-wins rule against what herald already holds
 * (across batches too), single .json and .json.gz files, and unreadable input. */
#include "tests/ctl/ctl_seed.h"

#include "core/clock.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include <cmocka.h>

#define TTL_DAYS 30
#define MAX_DEVICES 3

static th_redis_t rs;
static char dir[256], conf[320];
static buf_t out, err;

static int group_setup(void **state)
{
    *state = &rs;
    if (th_redis_start(&rs, 0) != 0 || th_tmpdir(dir, sizeof dir) != 0)
        return -1;
    char extra[160];
    snprintf(extra, sizeof extra,
             "expo.url = http://127.0.0.1:1\ntokens.max_devices_per_user = %d\n"
             "tokens.ttl_days = %d",
             MAX_DEVICES, TTL_DAYS);
    seed_conf(dir, rs.url, extra, conf, sizeof conf);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    th_redis_stop(&rs);
    buf_cleanup(&out);
    buf_cleanup(&err);
    return 0;
}

/* ---- the export ---- */

/* ISO-8601 time of now + delta seconds. */
static const char *iso(int64_t delta, char buf[TOK_TIME_MAX])
{
    clk_iso8601_ms((seed_now() + delta) * 1000, buf, TOK_TIME_MAX);
    return buf;
}

/* A seed item as DynamoDB JSON (new); exp is the expiresAt attribute ({"N":"..."}, taken) or
 * NULL. */
static char *item(const char *user, const char *dev, const char *tok, bool active, const char *upd,
                  char *exp)
{
    buf_t b = BUF_INIT;
    buf_printf(&b,
               "{\"Item\":{\"userId\":{\"S\":\"%s\"},\"deviceId\":{\"S\":\"%s\"},"
               "\"expoPushToken\":{\"S\":\"%s\"},\"platform\":{\"S\":\"ios\"},"
               "\"registeredAt\":{\"S\":\"2024-11-02T08:00:00.000Z\"},"
               "\"updatedAt\":{\"S\":\"%s\"},\"isActive\":{\"BOOL\":%s}",
               user, dev, tok, upd, active ? "true" : "false");
    if (exp)
        buf_printf(&b, ",\"expiresAt\":%s", exp);
    free(exp);
    buf_puts(&b, "}}");
    return buf_steal(&b);
}

static char *exp_s(int64_t delta)
{
    char *s = malloc(48);
    snprintf(s, 48, "{\"N\":\"%lld\"}", (long long)(seed_now() + delta));
    return s;
}

/* Writes lines (freed) to path, gzipped or not. */
static void write_data(const char *path, char **lines, size_t n, bool gz)
{
    buf_t b = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        buf_puts(&b, lines[i]);
        buf_putc(&b, '\n');
        free(lines[i]);
    }
    if (gz) {
        gzFile g = gzopen(path, "wb");
        assert_non_null(g);
        assert_int_equal(gzwrite(g, b.data, (unsigned)b.len), (int)b.len);
        assert_int_equal(gzclose(g), Z_OK);
    } else {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fwrite(b.data, 1, b.len, f);
        fclose(f);
    }
    buf_cleanup(&b);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

#define EXPORT_KEY "AWSDynamoDB/01732000000000-a1b2c3d4"

/* The export folder <dir>/<name> with data/ and the two manifests for files a and b. */
static void write_manifests(const char *edir, long na, long nb)
{
    char p[512], text[1024];
    snprintf(p, sizeof p, "%s/manifest-summary.json", edir);
    snprintf(text, sizeof text,
             "{\"version\":\"2020-06-30\",\"exportArn\":\"arn:aws:dynamodb:us-east-1:"
             "123456789012:table/photoeditor-prod-device-tokens/export/01732000000000-a1b2c3d4\","
             "\"startTime\":\"2026-01-10T07:28:34.028Z\",\"endTime\":\"2026-01-10T07:33:43.897Z\","
             "\"tableArn\":\"arn:aws:dynamodb:us-east-1:123456789012:table/"
             "photoeditor-prod-device-tokens\",\"exportTime\":\"2026-01-10T07:28:34.028Z\","
             "\"s3Bucket\":\"photoeditor-prod-backups\",\"s3Prefix\":\"device-tokens/20260110\","
             "\"manifestFilesS3Key\":\"" EXPORT_KEY "/manifest-files.json\","
             "\"billedSizeBytes\":0,\"itemCount\":%ld,\"outputFormat\":\"DYNAMODB_JSON\","
             "\"exportType\":\"FULL_EXPORT\"}\n",
             na + nb);
    write_text(p, text);
    snprintf(p, sizeof p, "%s/manifest-files.json", edir);
    snprintf(text, sizeof text,
             "{\"itemCount\":%ld,\"md5Checksum\":\"sQMSpEILNgoQmarvDFonGQ==\",\"etag\":"
             "\"af83d6f217c19b8b0fff8023d8ca4716-1\",\"dataFileS3Key\":\"" EXPORT_KEY
             "/data/aaa.json.gz\"}\n"
             "{\"itemCount\":%ld,\"md5Checksum\":\"sQMSpEILNgoQmarvDFonGQ==\",\"etag\":"
             "\"af83d6f217c19b8b0fff8023d8ca4716-1\",\"dataFileS3Key\":\"" EXPORT_KEY
             "/data/bbb.json.gz\"}\n",
             na, nb);
    write_text(p, text);
}

static void make_dirs(const char *name, char edir[400])
{
    char p[512];
    snprintf(edir, 400, "%s/%s", dir, name);
    mkdir(edir, 0700);
    snprintf(p, sizeof p, "%s/data", edir);
    mkdir(p, 0700);
}

/* The main fixture (see the expectations in test_export_folder). */
static void build_export(char edir[400])
{
    char p[512], t1[TOK_TIME_MAX], t2[TOK_TIME_MAX], t3[TOK_TIME_MAX];
    make_dirs("export", edir);
    char *a[] = {
        item("u1", "d1", "ExponentPushToken[a1]", true, "2025-06-01T10:00:00.000Z", exp_s(86400)),
        item("u1", "d2", "ExponentPushToken[a2]", true, "2025-06-01T10:00:00.000Z",
             exp_s(-60)), /* expired: TTL had not deleted it yet */
        item("u2", "d1", "ExponentPushToken[b1]", false, "2025-07-01T00:00:00.000Z",
             exp_s(86400)), /* inactive */
        item("u2", "d2", "not-a-token", true, "2025-06-01T10:00:00.000Z", exp_s(86400)),
        strdup("{\"Item\":{\"deviceId\":{\"S\":\"d1\"},\"expoPushToken\":{\"S\":"
               "\"ExponentPushToken[x]\"},\"platform\":{\"S\":\"ios\"},\"registeredAt\":{\"S\":"
               "\"2025-01-01T00:00:00.000Z\"},\"updatedAt\":{\"S\":\"2025-01-01T00:00:00.000Z\"},"
               "\"isActive\":{\"BOOL\":true},\"expiresAt\":{\"N\":\"99999999999\"}}}"),
        strdup("{\"Item\":{\"userId\":{\"S\":\"u9\"},\"deviceId\":{\"S\":\"d1\"},"
               "\"expoPushToken\":{\"S\":\"ExponentPushToken[y]\"},\"platform\":{\"S\":\"ios\"},"
               "\"registeredAt\":{\"S\":\"2025-01-01T00:00:00.000Z\"},\"updatedAt\":{\"S\":"
               "\"2025-01-01T00:00:00.000Z\"},\"isActive\":{\"S\":\"true\"},\"expiresAt\":{\"N\":"
               "\"99999999999\"}}}"),
        /* the phone moved from u3 to u4 (bbb.json.gz:1): the later updatedAt wins */
        item("u3", "d1", "ExponentPushToken[dup]", true, "2025-03-01T00:00:00.000Z", exp_s(86400)),
    };
    snprintf(p, sizeof p, "%s/data/aaa.json.gz", edir);
    write_data(p, a, 7, true);
    char *ms = malloc(48);
    snprintf(ms, 48, "{\"N\":\"%lld\"}", (long long)(seed_now() + 7200) * 1000);
    char *b[] = {
        item("u4", "d1", "ExponentPushToken[dup]", true, "2025-05-01T00:00:00.000Z", exp_s(86400)),
        item("u1", "d3", "ExponentPushToken[a3]", true, iso(-86400, t1), NULL),      /* derived */
        item("u1", "d4", "ExponentPushToken[a4]", true, iso(-60 * 86400, t2), NULL), /* gone */
        item("u6", "d1", "ExponentPushToken[ms]", true, "2025-06-01T10:00:00.000Z", ms),
        item("u5", "d1", "ExponentPushToken[e1]", true, "2025-06-01T10:00:00.000Z", exp_s(86400)),
        item("u5", "d2", "ExponentPushToken[e2]", true, "2025-06-01T10:00:00.000Z", exp_s(86400)),
        item("u5", "d3", "ExponentPushToken[e3]", true, "2025-06-01T10:00:00.000Z", exp_s(86400)),
        item("u5", "d4", "ExponentPushToken[e4]", true, "2025-06-01T10:00:00.000Z",
             exp_s(86400)), /* past the device limit */
        item("u7", "d1", "ExponentPushToken[nul]", true, iso(-3600, t3), strdup("{\"NULL\":true}")),
    };
    snprintf(p, sizeof p, "%s/data/bbb.json.gz", edir);
    write_data(p, b, 9, true);
    write_manifests(edir, 7, 9);
}

/* ---- heraldctl and what it stored ---- */

/* Runs heraldctl with this group's config; out/err are kept for assertions. */
#define ctl(...) run_ctlf(conf, &out, &err, __VA_ARGS__)
static long count(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v))
        fail_msg("no count %s", key);
    return (long)json_integer_value(v);
}

static json_t *summary(void)
{
    json_t *j = json_loads(buf_cstr(&out), 0, NULL);
    if (j == NULL)
        fail_msg("not JSON: %s", buf_cstr(&out));
    return j;
}

/* The indexes agree with the records, and importing p again changes nothing (no record created
 * or updated): returns that second run's summary (new). */
static json_t *rerun(const char *p)
{
    assert_int_equal(check_indexes(&rs), 0);
    char *before = seed_snapshot(&rs);
    assert_int_equal(ctl("tokens import --format dynamodb-json %s --json", p), 0);
    char *after = seed_snapshot(&rs);
    assert_string_equal(before, after);
    free(before);
    free(after);
    json_t *j = summary();
    assert_int_equal(count(j, "created") + count(j, "updated"), 0);
    return j;
}

/* ---- the export folder ---- */

static void check_first_run(json_t *j)
{
    assert_int_equal(count(j, "items"), 16);
    assert_int_equal(count(j, "valid"), 11);
    assert_int_equal(count(j, "expired"), 2);
    assert_int_equal(count(j, "rejected"), 3);
    assert_int_equal(count(j, "refused"), 1);
    assert_int_equal(count(j, "superseded"), 1);
    assert_int_equal(count(j, "newer"), 0);
    assert_int_equal(count(j, "created"), 10);
    assert_int_equal(count(j, "updated"), 0);
    assert_int_equal(count(j, "reassigned"), 0);
    assert_int_equal(count(j, "expiryDerived"), 2);
    assert_int_equal(count(j, "expiryInMs"), 1);
    assert_int_equal(count(j, "incompleteFiles"), 0);
    json_t *files = json_object_get(j, "files");
    assert_int_equal(json_array_size(files), 2);
    json_t *fa = json_array_get(files, 0), *fb = json_array_get(files, 1);
    assert_string_equal(json_string_value(json_object_get(fa, "file")), "data/aaa.json.gz");
    assert_int_equal(count(fa, "items"), 7);
    assert_int_equal(count(fa, "manifestItems"), 7);
    assert_int_equal(count(fa, "expired"), 1);
    assert_int_equal(count(fa, "rejected"), 3);
    assert_int_equal(count(fb, "items"), 9);
    assert_int_equal(count(fb, "expired"), 1);
    assert_int_equal(count(fb, "refused"), 1);
}

static void check_stored(void)
{
    int64_t now = seed_now();
    tok_record_t r = seed_stored(&rs, "u1", "d1");
    assert_true(r.active);
    assert_string_equal(r.updated_at, "2025-06-01T10:00:00.000Z");
    assert_int_equal(redis_int(&rs, "HEXISTS herald:dev:{u1} d2"), 0); /* expired: dropped */
    assert_int_equal(redis_int(&rs, "HEXISTS herald:dev:{u1} d4"), 0);
    r = seed_stored(&rs, "u2", "d1");
    assert_false(r.active);
    assert_string_equal(r.deactivated_reason, "user");
    assert_int_equal(r.deactivated_at, 1751328000); /* its updatedAt */
    assert_int_equal(redis_int(&rs, "EXISTS herald:dev:{u9}"), 0);
    assert_int_equal(redis_int(&rs, "HEXISTS herald:dev:{u2} d2"), 0);
    /* one token, two users: the later updatedAt holds it */
    r = seed_stored(&rs, "u3", "d1");
    assert_false(r.active);
    assert_string_equal(r.deactivated_reason, "reassigned");
    assert_int_equal(r.deactivated_at, 1746057600); /* u4's updatedAt */
    assert_true(seed_stored(&rs, "u4", "d1").active);
    seed_expect_owner(&rs, "ExponentPushToken[dup]", "u4", "d1");
    /* missing expiresAt: updatedAt + tokens.ttl_days */
    r = seed_stored(&rs, "u1", "d3");
    int64_t upd;
    assert_int_equal(clk_parse_iso8601(r.updated_at, &upd), 0);
    assert_int_equal(r.expires_at, upd / 1000 + TTL_DAYS * 86400);
    r = seed_stored(&rs, "u7", "d1");
    assert_int_equal(clk_parse_iso8601(r.updated_at, &upd), 0);
    assert_int_equal(r.expires_at, upd / 1000 + TTL_DAYS * 86400);
    r = seed_stored(&rs, "u6", "d1"); /* given in milliseconds */
    assert_true(r.expires_at > now + 7000 && r.expires_at <= now + 7200);
    assert_int_equal(redis_int(&rs, "HLEN herald:dev:{u5}"), MAX_DEVICES);
    assert_int_equal(redis_int(&rs, "HEXISTS herald:dev:{u5} d4"), 0);
    assert_int_equal(seed_owner_exists(&rs, "ExponentPushToken[e4]"), 0);
    seed_expect_owner(&rs, "ExponentPushToken[a1]", "u1", "d1");
    seed_expect_owner(&rs, "ExponentPushToken[b1]", "u2",
                      "d1"); /* inactive, nobody else holds it */
    assert_int_equal(redis_int(&rs, SEED_EXPIRY_COUNT), 10);
    assert_int_equal(check_indexes(&rs), 0);
}

static void test_export_folder(void **state)
{
    (void)state;
    char edir[400];
    build_export(edir);
    assert_int_equal(ctl("tokens import --format dynamodb-json %s --json", edir), 4);
    json_t *j = summary();
    check_first_run(j);
    json_decref(j);
    assert_true(out_has(&err, "{\"file\":\"data/aaa.json.gz\",\"line\":4,\"rejected\":"
                              "\"expoPushToken: not an Expo push token"));
    assert_true(out_has(&err, "{\"file\":\"data/aaa.json.gz\",\"line\":5,\"rejected\":"
                              "\"userId: missing\"}"));
    assert_true(out_has(&err, "{\"file\":\"data/aaa.json.gz\",\"line\":6,\"rejected\":"
                              "\"isActive: expected BOOL, got S\"}"));
    assert_true(out_has(&err, "{\"file\":\"data/bbb.json.gz\",\"line\":8,\"refused\":"));
    assert_null(strstr(err.data, "\"line\":2,")); /* expired items are not reported */
    check_stored();
    char *before = seed_snapshot(&rs);

    /* Idempotent: the same export again writes nothing. */
    assert_int_equal(ctl("tokens import --format dynamodb-json %s", edir), 4);
    char *after = seed_snapshot(&rs);
    assert_string_equal(before, after);
    free(after);
    assert_true(out_has(&out, "0 created, 0 updated, 10 unchanged, 0 reassigned, 0 evicted"));
    assert_true(out_has(&out, "1 superseded"));
    assert_true(out_has(&out, "2 expired (dropped), 0 newer in herald (skipped); 3 rejected, "
                              "1 refused"));
    assert_true(out_has(&out, "FILE"));
    assert_true(out_has(&out, "data/bbb.json.gz"));
    assert_true(out_has(&err, "data/aaa.json.gz:4: rejected: expoPushToken"));
    assert_true(out_has(&err, "data/bbb.json.gz:8: refused: user u5 is at "
                              "tokens.max_devices_per_user"));

    /* --dry-run reads and validates only. */
    free(th_redis_cmd(&rs, "FLUSHALL"));
    assert_int_equal(ctl("tokens import --format dynamodb-json %s --dry-run", edir), 4);
    assert_true(out_has(&out, "validated 11 item(s) of 16 in 2 file(s); 2 expired (dropped), 3 "
                              "rejected"));
    assert_int_equal(redis_int(&rs, "DBSIZE"), 0);
    free(before);
}

/* ---- one data file ---- */

static void test_single_files(void **state)
{
    (void)state;
    char edir[400], p[512];
    build_export(edir);
    snprintf(p, sizeof p, "%s/data/bbb.json.gz", edir);
    assert_int_equal(ctl("tokens import --format dynamodb-json %s --json", p), 4);
    json_t *j = summary();
    assert_int_equal(count(j, "items"), 9);
    assert_int_equal(count(j, "created"), 7);
    assert_int_equal(count(j, "refused"), 1);
    json_decref(j);
    char want[600];
    snprintf(want, sizeof want, "{\"file\":\"%s\",\"line\":8,\"refused\":", p);
    assert_true(out_has(&err, want));

    /* A plain .json file, named by -i as well. */
    snprintf(p, sizeof p, "%s/one.json", dir);
    char *lines[] = {
        item("w1", "d1", "ExponentPushToken[w1]", true, "2025-06-01T10:00:00.000Z", exp_s(86400)),
        strdup(""),
        strdup("{\"Item\":"),
    };
    write_data(p, lines, 3, false);
    assert_int_equal(ctl("tokens import --format dynamodb-json -i %s", p), 4);
    assert_true(out_has(&out, "imported 1 item(s) of 2 in 1 file(s): 1 created"));
    snprintf(want, sizeof want, "%s:3: rejected: not a JSON object", p);
    assert_true(out_has(&err, want));
    assert_true(seed_stored(&rs, "w1", "d1").active);
    assert_int_equal(check_indexes(&rs), 0);
}

/* ---- unreadable input ---- */

static void test_bad_input(void **state)
{
    (void)state;
    char edir[400], p[512];
    build_export(edir);
    /* The data files hold fewer items than the export says. */
    snprintf(p, sizeof p, "%s/manifest-summary.json", edir);
    write_text(p, "{\"itemCount\":17,\"outputFormat\":\"DYNAMODB_JSON\"}");
    assert_int_equal(ctl("tokens import --format dynamodb-json %s", edir), 4);
    assert_true(out_has(&err, "manifest-summary.json: error: 16 item(s) read in"));
    assert_true(out_has(&err, "itemCount says 17"));
    write_manifests(edir, 7, 9);
    free(th_redis_cmd(&rs, "FLUSHALL"));
    /* A data file cut short: what was read is imported, the file is reported. */
    snprintf(p, sizeof p, "%s/data/bbb.json.gz", edir);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(truncate(p, st.st_size / 2), 0);
    assert_int_equal(ctl("tokens import --format dynamodb-json %s", edir), 4);
    assert_true(out_has(&err, "data/bbb.json.gz:"));
    assert_true(out_has(&err, "error: read error"));
    assert_true(out_has(&out, "1 file(s) not read whole or not as the manifests say"));
    assert_true(seed_stored(&rs, "u1", "d1").active);

    /* fewer items than the manifest says */
    free(th_redis_cmd(&rs, "FLUSHALL"));
    write_manifests(edir, 8, 9);
    snprintf(p, sizeof p, "%s/data/bbb.json.gz", edir);
    unlink(p);
    char *one[] = {
        item("u4", "d1", "ExponentPushToken[dup]", true, "2025-05-01T00:00:00.000Z", exp_s(86400))};
    write_data(p, one, 1, true);
    assert_int_equal(ctl("tokens import --format dynamodb-json %s", edir), 4);
    assert_true(
        out_has(&err, "data/aaa.json.gz: error: 7 item(s) read, manifest-files.json says 8"));
    assert_true(
        out_has(&err, "data/bbb.json.gz: error: 1 item(s) read, manifest-files.json says 9"));

    /* A manifest naming a file that is not there: nothing is imported. */
    free(th_redis_cmd(&rs, "FLUSHALL"));
    unlink(p);
    assert_int_equal(ctl("tokens import --format dynamodb-json %s", edir), 2);
    assert_true(out_has(&err, "manifest-files.json:2:"));
    assert_int_equal(redis_int(&rs, "DBSIZE"), 0);

    /* Not a folder of an export, not DYNAMODB_JSON, no PATH, an unknown format. */
    assert_int_equal(ctl("tokens import --format dynamodb-json %s", dir), 2);
    assert_true(out_has(&err, "manifest-files.json"));
    snprintf(p, sizeof p, "%s/manifest-summary.json", edir);
    write_text(p, "{\"outputFormat\":\"ION\",\"itemCount\":3}");
    assert_int_equal(ctl("tokens import --format dynamodb-json %s", edir), 2);
    assert_true(out_has(&err, "outputFormat is not DYNAMODB_JSON"));
    assert_int_equal(ctl("tokens import --format dynamodb-json"), 2);
    assert_int_equal(ctl("tokens import --format csv x"), 2);
    assert_int_equal(redis_int(&rs, "DBSIZE"), 0);
}

/* ---- what herald already holds: the latest updatedAt wins ---- */

static void put(const char *user, const char *device, const char *token, const char *updated)
{
    tok_record_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.user_id, sizeof r.user_id, "%s", user);
    snprintf(r.device_id, sizeof r.device_id, "%s", device);
    snprintf(r.token, sizeof r.token, "%s", token);
    snprintf(r.registered_at, sizeof r.registered_at, "2025-01-01T00:00:00.000Z");
    snprintf(r.updated_at, sizeof r.updated_at, "%s", updated);
    r.active = true;
    r.expires_at = seed_now() + 86400;
    buf_t js = BUF_INIT;
    tok_record_json(&r, &js);
    buf_putc(&js, '\0');
    free(th_redis_cmd(&rs, "HSET herald:dev:{%s} %s %s", user, device, js.data));
    char k[KEY_MAX];
    free(th_redis_cmd(&rs, "ZADD %s %lld %s\x1f%s", th_expiry_key(k, "herald:", token),
                      (long long)r.expires_at, user, device));
    free(th_redis_cmd(&rs, "SET %s %s\x1f%s EXAT %lld", th_owner_key(k, "herald:", token), user,
                      device, (long long)r.expires_at));
    buf_cleanup(&js);
}

static void test_newer_in_herald(void **state)
{
    (void)state;
    put("h1", "d1", "ExponentPushToken[h1new]", "2025-06-01T00:00:00.000Z");
    put("h2", "d1", "ExponentPushToken[taken]", "2025-06-01T00:00:00.000Z");
    put("h3", "d1", "ExponentPushToken[stale]", "2025-06-01T00:00:00.000Z");
    char p[512];
    snprintf(p, sizeof p, "%s/held.json", dir);
    char *lines[] = {
        /* herald has a newer registration of this device: skipped */
        item("h1", "d1", "ExponentPushToken[h1old]", true, "2025-01-01T00:00:00.000Z",
             exp_s(86400)),
        /* its token moved to h2 later: imported inactive */
        item("h4", "d1", "ExponentPushToken[taken]", true, "2025-01-01T00:00:00.000Z",
             exp_s(86400)),
        /* newer than h3's registration: takes the token, h3 is deactivated */
        item("h5", "d1", "ExponentPushToken[stale]", true, "2025-07-01T00:00:00.000Z",
             exp_s(86400)),
    };
    write_data(p, lines, 3, false);
    assert_int_equal(ctl("tokens import --format dynamodb-json %s --json", p), 0);
    json_t *j = summary();
    assert_int_equal(count(j, "newer"), 1);
    assert_int_equal(count(j, "superseded"), 1);
    assert_int_equal(count(j, "created"), 2);
    assert_int_equal(count(j, "reassigned"), 1);
    json_decref(j);
    assert_string_equal(seed_stored(&rs, "h1", "d1").token, "ExponentPushToken[h1new]");
    assert_int_equal(seed_owner_exists(&rs, "ExponentPushToken[h1old]"), 0);
    tok_record_t r = seed_stored(&rs, "h4", "d1");
    assert_false(r.active);
    assert_string_equal(r.deactivated_reason, "reassigned");
    assert_int_equal(r.deactivated_at, 1748736000); /* h2's updatedAt */
    seed_expect_owner(&rs, "ExponentPushToken[taken]", "h2", "d1");
    assert_true(seed_stored(&rs, "h2", "d1").active);
    assert_false(seed_stored(&rs, "h3", "d1").active);
    seed_expect_owner(&rs, "ExponentPushToken[stale]", "h5", "d1");
    json_decref(rerun(p));
}

/* Duplicate tokens in different batches (500 items each) take the same rule through what the
 * earlier batch stored. */
static void test_across_batches(void **state)
{
    (void)state;
    char p[512], user[16], tok[64];
    snprintf(p, sizeof p, "%s/many.json.gz", dir);
    enum { N = 1200 };
    char **lines = malloc(N * sizeof *lines);
    for (int i = 0; i < N; i++) {
        snprintf(user, sizeof user, "m%d", i);
        snprintf(tok, sizeof tok, "ExponentPushToken[m%d]", i);
        lines[i] = item(user, "d1", tok, true, "2025-06-01T00:00:00.000Z", exp_s(86400));
    }
    /* old first (batch 1), new later (batch 3): the later item takes the token */
    free(lines[0]);
    lines[0] =
        item("m0", "d1", "ExponentPushToken[x]", true, "2025-01-01T00:00:00.000Z", exp_s(86400));
    free(lines[1100]);
    lines[1100] =
        item("m1100", "d1", "ExponentPushToken[x]", true, "2025-02-01T00:00:00.000Z", exp_s(86400));
    /* new first (batch 1), old later (batch 3): the later item is imported inactive */
    free(lines[1]);
    lines[1] =
        item("m1", "d1", "ExponentPushToken[y]", true, "2025-02-01T00:00:00.000Z", exp_s(86400));
    free(lines[1101]);
    lines[1101] =
        item("m1101", "d1", "ExponentPushToken[y]", true, "2025-01-01T00:00:00.000Z", exp_s(86400));
    write_data(p, lines, N, true);
    free(lines);
    assert_int_equal(ctl("tokens import --format dynamodb-json %s --json", p), 0);
    json_t *j = summary();
    assert_int_equal(count(j, "created"), N);
    assert_int_equal(count(j, "reassigned"), 1);
    assert_int_equal(count(j, "superseded"), 1);
    json_decref(j);
    seed_expect_owner(&rs, "ExponentPushToken[x]", "m1100", "d1");
    seed_expect_owner(&rs, "ExponentPushToken[y]", "m1", "d1");
    assert_false(seed_stored(&rs, "m0", "d1").active);
    assert_false(seed_stored(&rs, "m1101", "d1").active);
    j = rerun(p);
    assert_int_equal(count(j, "newer"), 1); /* m0: deactivated by the first run */
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_export_folder, seed_flush),
        cmocka_unit_test_setup(test_single_files, seed_flush),
        cmocka_unit_test_setup(test_bad_input, seed_flush),
        cmocka_unit_test_setup(test_newer_in_herald, seed_flush),
        cmocka_unit_test_setup(test_across_batches, seed_flush),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
