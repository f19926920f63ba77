/* test_tokens.c - token formats, field validation, the registration body parser, the record's JSON
 * form, and the API's answers (problem+json) driven through a fake request and a fake store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tokens/api.h"
#include "tokens/model.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void test_token_formats(void **state)
{
    (void)state;
    static const char *const good[] = {
        "ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]", "ExpoPushToken[a]", "ExponentPushToken[A-b_9]",
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "3F2504E0-4F89-11D3-9A0C-0305E82C3301"};
    static const char *const bad[] = {"",
                                      "ExponentPushToken[]",
                                      "ExponentPushToken[a b]",
                                      "ExponentPushToken[a",
                                      "ExponentPushToken[a]x",
                                      "exponentpushtoken[a]",
                                      "ExpoPushToken[a.b]",
                                      "fcm:APA91bH...",
                                      "3f2504e0-4f89-11d3-9a0c-0305e82c330",
                                      "3f2504e0_4f89_11d3_9a0c_0305e82c3301",
                                      "3f2504e0-4f89-11d3-9a0c-0305e82c330g",
                                      "ExponentPushToken[\xc3\xa9]"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (tok_valid_token(good[i], strlen(good[i])) != 0)
            fail_msg("should be valid: %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (tok_valid_token(bad[i], strlen(bad[i])) == 0)
            fail_msg("should be invalid: %s", bad[i]);
    char big[260];
    snprintf(big, sizeof big, "ExponentPushToken[%0200d]", 0);
    assert_int_equal(tok_valid_token(big, strlen(big)), 0);
    snprintf(big, sizeof big, "ExponentPushToken[%0201d]", 0);
    assert_int_equal(tok_valid_token(big, strlen(big)), -1);
}

static void test_ids(void **state)
{
    (void)state;
    char s[140];
    memset(s, 'a', sizeof s);
    assert_int_equal(tok_valid_device(s, 128), 0);
    assert_int_equal(tok_valid_device(s, 129), -1);
    assert_int_equal(tok_valid_device("", 0), -1);
    assert_int_equal(tok_valid_device("a\tb", 3), -1);
    assert_int_equal(tok_valid_user("user\x1f"
                                    "x",
                                    6),
                     -1);
    assert_int_equal(tok_valid_user("us-east-1:0f0e", 14), 0);
    tok_platform_t p;
    assert_int_equal(tok_platform_parse("android", &p), 0);
    assert_int_equal(p, TOK_PLATFORM_ANDROID);
    assert_int_equal(tok_platform_parse("iOS", &p), -1);
}

struct body_case {
    const char *body;
    const char *field; /* NULL: whole body; "" : valid */
};

static void test_body_parser(void **state)
{
    (void)state;
#define T "\"expoPushToken\":\"ExponentPushToken[abc]\""
    static const struct body_case cases[] = {
        {"{\"deviceId\":\"d\"," T ",\"platform\":\"ios\"}", ""},
        {"{\"deviceId\":\"d\"," T ",\"platform\":\"android\",\"appVersion\":\"1.2\"}", ""},
        {"", NULL},
        {"null", NULL},
        {"[]", NULL},
        {"{\"deviceId\":\"d\"", NULL},
        {"{\"deviceId\":\"d\",\"deviceId\":\"e\"," T ",\"platform\":\"ios\"}", NULL},
        {"{" T ",\"platform\":\"ios\"}", "deviceId"},
        {"{\"deviceId\":null," T ",\"platform\":\"ios\"}", "deviceId"},
        {"{\"deviceId\":\"\"," T ",\"platform\":\"ios\"}", "deviceId"},
        {"{\"deviceId\":[1]," T ",\"platform\":\"ios\"}", "deviceId"},
        {"{\"deviceId\":\"a\\nb\"," T ",\"platform\":\"ios\"}", "deviceId"},
        {"{\"deviceId\":\"d\",\"platform\":\"ios\"}", "expoPushToken"},
        {"{\"deviceId\":\"d\",\"expoPushToken\":\"APA91b\",\"platform\":\"ios\"}", "expoPushToken"},
        {"{\"deviceId\":\"d\"," T "}", "platform"},
        {"{\"deviceId\":\"d\"," T ",\"platform\":\"web\"}", "platform"},
        {"{\"deviceId\":\"d\"," T ",\"platform\":\"ios\",\"userId\":\"x\"}", "userId"},
        {"{\"deviceId\":\"d\"," T ",\"platform\":\"ios\",\"expiresAt\":1}", "expiresAt"},
        {"{\"deviceId\":\"d\"," T ",\"platform\":\"ios\",\"registeredAt\":\"x\"}", "registeredAt"},
        {"{\"deviceId\":\"d\\u0000\"," T ",\"platform\":\"ios\"}", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tok_reg_body_t b;
        const char *field;
        char detail[160] = "";
        int rc = tok_api_parse_body(cases[i].body, strlen(cases[i].body), &b, &field, detail,
                                    sizeof detail);
        if (cases[i].field && !*cases[i].field) {
            if (rc != 0)
                fail_msg("case %zu should parse: %s", i, detail);
            assert_string_equal(b.device, "d");
            continue;
        }
        if (rc == 0)
            fail_msg("case %zu should fail: %s", i, cases[i].body);
        assert_true(detail[0] != '\0');
        if (cases[i].field == NULL ? field != NULL
                                   : (field == NULL || strcmp(field, cases[i].field)))
            fail_msg("case %zu: field %s, want %s", i, field ? field : "(none)",
                     cases[i].field ? cases[i].field : "(none)");
    }
}

static void test_record_roundtrip(void **state)
{
    (void)state;
    tok_record_t r = {0}, back;
    snprintf(r.user_id, sizeof r.user_id, "u\"1");
    snprintf(r.device_id, sizeof r.device_id, "dev\\1");
    snprintf(r.token, sizeof r.token, "ExpoPushToken[abc]");
    r.platform = TOK_PLATFORM_ANDROID;
    snprintf(r.registered_at, sizeof r.registered_at, "2026-01-01T00:00:00.000Z");
    snprintf(r.updated_at, sizeof r.updated_at, "2026-01-02T00:00:00.000Z");
    r.active = false;
    r.expires_at = 1800000000;
    snprintf(r.deactivated_reason, sizeof r.deactivated_reason, "DeviceNotRegistered");
    r.deactivated_at = 1700000000;
    buf_t b = BUF_INIT;
    tok_record_json(&r, &b);
    char err[64];
    assert_int_equal(tok_record_parse(b.data, b.len, &back, err, sizeof err), 0);
    assert_memory_equal(&r, &back, sizeof r);
    assert_false(tok_record_deliverable(&back, 1700000000));
    back.active = true;
    assert_true(tok_record_deliverable(&back, 1700000000));
    assert_false(tok_record_deliverable(&back, 1800000000));
    buf_cleanup(&b);
    assert_int_equal(tok_record_parse("{\"userId\":1}", 12, &back, err, sizeof err), -1);
}

/* The optional locale: a BCP 47 tag, stored in canonical case; anything else is 400 field=locale.
 * A record carries it through JSON and back, and a stored record with a bad one is refused. */
static void test_locale(void **state)
{
    (void)state;
    static const struct {
        const char *locale, *want; /* want NULL: refused */
    } cases[] = {
        {"\"fr\"", "fr"},
        {"\"pt-br\"", "pt-BR"},
        {"\"zh-hant-TW\"", "zh-Hant-TW"},
        {"null", ""},
        {"\"\"", NULL},
        {"\"pt_BR\"", NULL},
        {"\"fr-\"", NULL},
        {"42", NULL},
        {"[\"fr\"]", NULL},
        {"\"en-US-u-co-phonebk-ka-shifted-kb-true\"", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[256], detail[160] = "";
        snprintf(body, sizeof body, "{\"deviceId\":\"d\"," T ",\"platform\":\"ios\",\"locale\":%s}",
                 cases[i].locale);
        tok_reg_body_t b;
        const char *field;
        int rc = tok_api_parse_body(body, strlen(body), &b, &field, detail, sizeof detail);
        if (cases[i].want) {
            if (rc != 0)
                fail_msg("locale %s should be accepted: %s", cases[i].locale, detail);
            assert_string_equal(b.locale, cases[i].want);
        } else {
            if (rc == 0 || field == NULL || strcmp(field, "locale") != 0)
                fail_msg("locale %s should be refused with field=locale", cases[i].locale);
            assert_non_null(strstr(detail, "locale"));
        }
    }
    tok_reg_body_t b;
    const char *field;
    char detail[160];
    const char *none = "{\"deviceId\":\"d\"," T ",\"platform\":\"ios\"}";
    assert_int_equal(tok_api_parse_body(none, strlen(none), &b, &field, detail, sizeof detail), 0);
    assert_string_equal(b.locale, "");

    tok_record_t r = {0}, back;
    snprintf(r.user_id, sizeof r.user_id, "u");
    snprintf(r.device_id, sizeof r.device_id, "d");
    snprintf(r.token, sizeof r.token, "ExpoPushToken[abc]");
    snprintf(r.registered_at, sizeof r.registered_at, "2026-01-01T00:00:00.000Z");
    snprintf(r.updated_at, sizeof r.updated_at, "2026-01-02T00:00:00.000Z");
    r.active = true;
    r.expires_at = 1800000000;
    snprintf(r.locale, sizeof r.locale, "pt-BR");
    buf_t j = BUF_INIT;
    tok_record_json(&r, &j);
    assert_non_null(strstr(buf_cstr(&j), ",\"locale\":\"pt-BR\"}"));
    char err[64];
    assert_int_equal(tok_record_parse(j.data, j.len, &back, err, sizeof err), 0);
    assert_string_equal(back.locale, "pt-BR");
    buf_reset(&j);
    r.locale[0] = '\0';
    tok_record_json(&r, &j);
    assert_null(strstr(buf_cstr(&j), "locale"));
    /* Stored (or imported) records: a lower-case tag is canonicalised, a malformed one refused. */
    const char *base = "{\"userId\":\"u\",\"deviceId\":\"d\",\"expoPushToken\":"
                       "\"ExpoPushToken[abc]\",\"platform\":\"ios\",\"registeredAt\":"
                       "\"2026-01-01T00:00:00.000Z\",\"updatedAt\":\"2026-01-01T00:00:00.000Z\","
                       "\"isActive\":true,\"expiresAt\":1800000000,\"locale\":";
    char rec[512];
    snprintf(rec, sizeof rec, "%s\"fr-ca\"}", base);
    assert_int_equal(tok_record_parse(rec, strlen(rec), &back, err, sizeof err), 0);
    assert_string_equal(back.locale, "fr-CA");
    snprintf(rec, sizeof rec, "%s\"fr_CA\"}", base);
    assert_int_equal(tok_record_parse(rec, strlen(rec), &back, err, sizeof err), -1);
    assert_string_equal(err, "invalid locale");
    snprintf(rec, sizeof rec, "%s7}", base);
    assert_int_equal(tok_record_parse(rec, strlen(rec), &back, err, sizeof err), -1);
    buf_cleanup(&j);
}

/* The one-pass reader of stored records and the full parser read every input alike: the shapes
 * herald writes, and the ones the reader leaves to the full parser (escapes, nulls, duplicates,
 * unknown members, negative or fractional numbers, trailing bytes, over-long values). */
static void test_record_fast_path_agrees(void **state)
{
    (void)state;
    const char *head = "{\"userId\":\"u\",\"deviceId\":\"d\",\"expoPushToken\":"
                       "\"ExpoPushToken[abc]\",\"platform\":\"ios\",\"registeredAt\":"
                       "\"2026-01-01T00:00:00.000Z\",\"updatedAt\":\"2026-01-01T00:00:00.000Z\",";
    const char *tails[] = {
        "\"isActive\":true,\"expiresAt\":1800000000}",
        "\"isActive\":false,\"expiresAt\":1800000000,\"deactivatedReason\":\"user\","
        "\"deactivatedAt\":1700000000}",
        "\"isActive\":true,\"expiresAt\":1800000000,\"locale\":\"fr-ca\"}",
        " \"isActive\" : true , \"expiresAt\" : 1800000000 }\n",
        "\"isActive\":true}",
        "\"isActive\":true,\"expiresAt\":null}",
        "\"isActive\":true,\"expiresAt\":-5}",
        "\"isActive\":true,\"expiresAt\":1.5}",
        "\"isActive\":true,\"expiresAt\":01}",
        "\"isActive\":true,\"expiresAt\":1800000000,\"isActive\":false}",
        "\"isActive\":true,\"expiresAt\":1800000000,\"extra\":1}",
        "\"isActive\":true,\"expiresAt\":1800000000}x",
        "\"isActive\":true,\"expiresAt\":1800000000,}",
        "\"isActive\":1,\"expiresAt\":1800000000}",
        "\"isActive\":truex,\"expiresAt\":1800000000}",
        "\"isActive\":true,\"expiresAt\":1800000000,\"locale\":\"fr\\u002dCA\"}",
        "\"isActive\":true,\"expiresAt\":1800000000,\"locale\":\"xx_YY\"}",
        "\"isActive\":true,\"expiresAt\":1800000000,\"deactivatedReason\":"
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        "\"isActive\":true,\"expiresAt\":99999999999999999999}",
    };
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        char rec[1024], err[128] = "", errfull[128] = "";
        tok_record_t a, b;
        snprintf(rec, sizeof rec, "%s%s", head, tails[i]);
        int rc = tok_record_parse(rec, strlen(rec), &a, err, sizeof err);
        int rcfull = tok_record_parse_full(rec, strlen(rec), &b, errfull, sizeof errfull);
        if (rc != rcfull || strcmp(err, errfull) != 0 || (rc == 0 && memcmp(&a, &b, sizeof a)))
            fail_msg("case %zu: fast %d \"%s\", full %d \"%s\"", i, rc, err, rcfull, errfull);
        if (i < 4)
            assert_int_equal(rc, 0); /* the shapes herald writes parse */
    }
}

/* The one deliverability rule: every reason that applies, the first one named for the pipeline. */
static void test_deliverability(void **state)
{
    (void)state;
    tok_record_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.token, sizeof r.token, "ExponentPushToken[abc]");
    r.active = true;
    r.expires_at = 1000;
    assert_int_equal(tok_undeliverable(&r, 999), 0);
    assert_null(tok_deliverability(&r, 999));
    assert_int_equal(tok_undeliverable(&r, 1000), TOK_UNDELIV_EXPIRED);
    assert_string_equal(tok_deliverability(&r, 1000), "expired");
    r.active = false;
    snprintf(r.token, sizeof r.token, "not a token");
    assert_int_equal(tok_undeliverable(&r, 1000),
                     TOK_UNDELIV_INACTIVE | TOK_UNDELIV_EXPIRED | TOK_UNDELIV_MALFORMED);
    assert_string_equal(tok_deliverability(&r, 1000), "inactive");
    r.active = true;
    assert_string_equal(tok_deliverability(&r, 999), "malformed");
    assert_false(tok_record_deliverable(&r, 999));
    assert_string_equal(tok_undeliverable_name(TOK_UNDELIV_EXPIRED), "expired");
    assert_string_equal(tok_undeliverable_name(0), "");
}

/* ---- the API through a fake request and store ---- */

typedef struct fake_req {
    http_req_t pub;
    const char *hdr[8][2];
    const char *query[4][2];
    int status;
    char body[4096];
    char resp_headers[1024];
} fake_req_t;

/* The value paired with name among at most n {name, value} pairs (a NULL name ends them). */
static const char *lookup(const char *const (*pairs)[2], size_t n, const char *name,
                          int (*cmp)(const char *, const char *))
{
    for (size_t i = 0; i < n && pairs[i][0]; i++)
        if (cmp(pairs[i][0], name) == 0)
            return pairs[i][1];
    return NULL;
}

static const char *fake_header(http_req_t *r, const char *name)
{
    const fake_req_t *f = (const fake_req_t *)r;
    return lookup(f->hdr, 8, name, strcasecmp);
}

static const char *fake_query(http_req_t *r, const char *name)
{
    const fake_req_t *f = (const fake_req_t *)r;
    return lookup(f->query, 4, name, strcmp);
}

static void fake_respond(http_req_t *r, int status, const http_header_t *h, size_t n,
                         const char *body, size_t len)
{
    fake_req_t *f = (fake_req_t *)r;
    f->status = status;
    snprintf(f->body, sizeof f->body, "%.*s", (int)len, body);
    size_t used = 0;
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(f->resp_headers + used, sizeof f->resp_headers - used, "%s: %s\n",
                                 h[i].name, h[i].value);
}

static const http_req_ops_t fake_ops = {fake_header, fake_query, fake_respond};

static void fake_register(tok_store_t *s, const tok_reg_req_t *req, tok_reg_cb cb, void *arg)
{
    (void)s;
    tok_reg_result_t res = {0};
    res.created = true;
    snprintf(res.record.user_id, sizeof res.record.user_id, "%s", req->user_id);
    snprintf(res.record.device_id, sizeof res.record.device_id, "%s", req->device_id);
    snprintf(res.record.token, sizeof res.record.token, "%s", req->token);
    res.record.active = true;
    cb(TOK_OK, &res, arg); /* a fake may answer synchronously; the API must cope */
}

static void fake_list(tok_store_t *s, const char *user, tok_list_cb cb, void *arg)
{
    (void)s;
    (void)user;
    cb(TOK_EUNAVAIL, NULL, 0, arg);
}

static bool fake_ready(const tok_store_t *s)
{
    (void)s;
    return true;
}

static const tok_store_ops_t fake_store_ops = {
    .register_device = fake_register, .list = fake_list, .ready = fake_ready};

static fake_req_t *run(tok_api_t *api, const char *method, const char *path, const char *user,
                       const char *ctype, const char *body)
{
    static fake_req_t f;
    memset(&f, 0, sizeof f);
    f.pub.ops = &fake_ops;
    f.pub.method = method;
    f.pub.path = path;
    f.pub.body = body;
    f.pub.body_len = body ? strlen(body) : 0;
    f.pub.peer_ip = "127.0.0.1";
    size_t n = 0;
    if (user)
        f.hdr[n][0] = "X-User-Id", f.hdr[n++][1] = user;
    if (ctype)
        f.hdr[n][0] = "Content-Type", f.hdr[n++][1] = ctype;
    f.hdr[n][0] = "X-Request-Id", f.hdr[n++][1] = "rid-1";
    tok_api_handle(api, &f.pub);
    return &f;
}

static void expect_problem(fake_req_t *f, int status, const char *error, const char *field)
{
    assert_int_equal(f->status, status);
    assert_non_null(strstr(f->resp_headers, "Content-Type: application/problem+json\n"));
    assert_non_null(strstr(f->resp_headers, "X-Request-Id: rid-1\n"));
    json_t *j = json_loads(f->body, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), status);
    assert_non_null(json_string_value(json_object_get(j, "type")));
    assert_non_null(json_string_value(json_object_get(j, "title")));
    assert_non_null(json_string_value(json_object_get(j, "detail")));
    assert_string_equal(json_string_value(json_object_get(j, "requestId")), "rid-1");
    if (error)
        assert_string_equal(json_string_value(json_object_get(j, "error")), error);
    if (field)
        assert_string_equal(json_string_value(json_object_get(j, "field")), field);
    json_decref(j);
}

static void test_api_answers(void **state)
{
    (void)state;
    tok_store_t store = {&fake_store_ops};
    metric_reg_t *m = metric_reg_create();
    tok_api_opts_t o = {0};
    o.store = &store;
    o.trusted_header = "X-User-Id";
    o.ttl_days = 90;
    o.metrics = m;
    tok_api_t *api = tok_api_create(&o);
    const char *J = "application/json";
    const char *ok =
        "{\"deviceId\":\"d\",\"expoPushToken\":\"ExpoPushToken[a]\",\"platform\":\"ios\"}";

    expect_problem(run(api, "GET", "/v2/x", "u", NULL, NULL), 404, NULL, NULL);
    fake_req_t *f = run(api, "PUT", "/v1/device-tokens", "u", J, ok);
    expect_problem(f, 405, "Method not allowed", NULL);
    assert_non_null(strstr(f->resp_headers, "Allow: GET, POST, DELETE\n"));
    expect_problem(run(api, "GET", "/v1/device-tokens", NULL, NULL, NULL), 401, NULL, NULL);
    expect_problem(run(api, "GET", "/v1/device-tokens", "bad\x1fuser", NULL, NULL), 401, NULL,
                   NULL);
    expect_problem(run(api, "POST", "/v1/device-tokens", "u", "text/json", ok), 415, NULL, NULL);
    expect_problem(run(api, "POST", "/v1/device-tokens", "u", J, NULL), 400,
                   "Request body required", NULL);
    expect_problem(run(api, "POST", "/v1/device-tokens", "u", J, "{\"deviceId\":1}"), 400,
                   "Invalid request format", "deviceId");
    expect_problem(run(api, "DELETE", "/v1/device-tokens", "u", NULL, NULL), 400,
                   "deviceId query parameter required", "deviceId");
    expect_problem(run(api, "GET", "/v1/device-tokens", "u", NULL, NULL), 503,
                   "Service unavailable", NULL);
    f = run(api, "POST", "/v1/device-tokens", "u", J, ok);
    assert_int_equal(f->status, 201);
    assert_non_null(strstr(f->body, "\"message\":\"Device token registered\""));
    assert_non_null(strstr(f->body, "\"userId\":\"u\""));
    assert_int_equal(tok_api_pending(api), 0);
    tok_api_destroy(api);
    metric_reg_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_formats), cmocka_unit_test(test_ids),
        cmocka_unit_test(test_body_parser),   cmocka_unit_test(test_record_roundtrip),
        cmocka_unit_test(test_locale),        cmocka_unit_test(test_record_fast_path_agrees),
        cmocka_unit_test(test_api_answers),   cmocka_unit_test(test_deliverability),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
