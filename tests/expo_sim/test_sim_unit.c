/* test_sim_unit.c - the simulator's logic without HTTP: sim_handle() on bytes. Wire shapes,
 * validation order, behaviour tokens, payload measure, projects, rate windows on a fake clock,
 * receipts, gzip bounds, /control and the record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tools/expo_sim/sim.h"
#include "tools/expo_sim/sim_json.h"
#include "core/buf.h"
#include "tests/expo_sim/simkit.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define SEND "/--/api/v2/push/send"
#define RCPT "/--/api/v2/push/getReceipts"

static sim_t *mk(sim_opts_t *o)
{
    char err[256];
    sim_t *s = sim_create(o, err, sizeof err);
    if (s == NULL)
        fail_msg("%s", err);
    return s;
}

/* A simulator at the defaults, recording when record, with options set by their CLI names:
 * pairs of name and value, then NULL. *o (may be NULL) receives the options it was made with. */
static sim_t *mk_with(sim_opts_t *o, bool record, ...)
{
    sim_opts_t local;
    if (o == NULL)
        o = &local;
    sim_opts_defaults(o);
    o->record = record;
    va_list ap;
    va_start(ap, record);
    for (const char *name; (name = va_arg(ap, const char *)) != NULL;) {
        const char *value = va_arg(ap, const char *);
        char err[256];
        if (sim_opts_set(o, name, value, false, err, sizeof err) != 0)
            fail_msg("%s=%s: %s", name, value, err);
    }
    va_end(ap);
    return mk(o);
}

static sim_t *mk_default(void)
{
    return mk_with(NULL, true, NULL);
}

/* Each test's simulator at the defaults, recording (cmocka setup and teardown). */
static int with_default(void **state)
{
    *state = mk_default();
    return 0;
}

static int destroy_sim(void **state)
{
    sim_destroy(*state);
    return 0;
}

/* Runs a request and returns the parsed reply (NULL when not JSON); status in *st. */
static json_t *call_full(sim_t *s, const char *path, const char *body, size_t len,
                         const char *ctype, const char *enc, int64_t now, int *st)
{
    sim_req_t rq = {.method = "POST",
                    .path = path,
                    .content_type = ctype,
                    .content_encoding = enc,
                    .loopback = true,
                    .body = body,
                    .bodylen = len,
                    .mono_ms = now,
                    .wall_ms = 1700000000000};
    sim_resp_t r = {0};
    sim_handle(s, &rq, &r);
    *st = r.status;
    json_error_t e;
    json_t *j = json_loadb(buf_cstr(&r.body), r.body.len, 0, &e);
    sim_resp_cleanup(&r);
    return j;
}

static json_t *call(sim_t *s, const char *path, const char *body, int64_t now, int *st)
{
    return call_full(s, path, body, strlen(body), "application/json", NULL, now, st);
}

/* The simulator's /stats, parsed. */
static json_t *stats(sim_t *s)
{
    sim_req_t rq = {.method = "GET", .path = "/stats", .loopback = true};
    sim_resp_t r = {0};
    sim_handle(s, &rq, &r);
    json_t *j = json_loads(buf_cstr(&r.body), 0, NULL);
    sim_resp_cleanup(&r);
    assert_non_null(j);
    return j;
}

static void test_send_ok_in_order(void **state)
{
    sim_t *s = *state;
    int st;
    json_t *j = call(s, SEND,
                     "[{\"to\":\"ExponentPushToken[a]\",\"title\":\"t\",\"data\":{\"k\":[1,2]}},"
                     "{\"to\":[\"ExpoPushToken[b]\",\"01234567-89ab-cdef-0123-456789abcdef\"]}]",
                     0, &st);
    assert_int_equal(st, 200);
    json_t *d = json_object_get(j, "data");
    assert_int_equal(json_array_size(d), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(ticket_status(j, i), "ok");
        assert_int_equal(strlen(json_string_value(json_object_get(json_array_get(d, i), "id"))),
                         36);
    }
    json_decref(j);
    buf_t rec = BUF_INIT;
    sim_record_take(s, &rec);
    const char *l2 = strchr(buf_cstr(&rec), '\n') + 1;
    assert_non_null(strstr(buf_cstr(&rec), "\"token\":\"ExponentPushToken[a]\",\"title\":\"t\","
                                           "\"data\":{\"k\":[1,2]}}\n"));
    assert_non_null(strstr(l2, "\"token\":\"ExpoPushToken[b]\"}\n"));
    buf_cleanup(&rec);
    /* single object: data is one ticket, not an array */
    j = call(s, SEND, "{\"to\":\"ExponentPushToken[a]\"}", 0, &st);
    assert_int_equal(st, 200);
    assert_true(json_is_object(json_object_get(j, "data")));
    json_decref(j);
}

static void test_limits_and_shapes(void **state)
{
    sim_t *s = *state;
    int st;
    char *b = send_body(101, "t", false);
    json_t *j = call(s, SEND, b, 0, &st);
    assert_int_equal(st, 400);
    assert_string_equal(err_code(j), "PUSH_TOO_MANY_NOTIFICATIONS");
    json_decref(j);
    free(b);
    b = send_body(100, "t", false);
    j = call(s, SEND, b, 0, &st);
    assert_int_equal(st, 200);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 100);
    json_decref(j);
    free(b);
    /* 60 + 41 recipients through "to" arrays also count as 101 */
    buf_t bb = BUF_INIT;
    buf_puts(&bb, "[");
    for (int m = 0; m < 2; m++) {
        buf_puts(&bb, m ? ",{\"to\":[" : "{\"to\":[");
        for (int i = 0; i < (m ? 41 : 60); i++)
            buf_printf(&bb, "%s\"ExponentPushToken[x%d]\"", i ? "," : "", i);
        buf_puts(&bb, "]}");
    }
    buf_puts(&bb, "]");
    j = call(s, SEND, buf_cstr(&bb), 0, &st);
    assert_int_equal(st, 400);
    assert_string_equal(err_code(j), "PUSH_TOO_MANY_NOTIFICATIONS");
    json_decref(j);
    buf_cleanup(&bb);
    static const char *const bad[] = {"not json",
                                      "[1]",
                                      "\"x\"",
                                      "[{\"title\":\"no to\"}]",
                                      "[{\"to\":[]}]",
                                      "[{\"to\":[3]}]",
                                      "[{\"to\":\"ExpoPushToken[a]\",\"priority\":\"urgent\"}]",
                                      "[{\"to\":\"ExpoPushToken[a]\",\"data\":\"s\"}]",
                                      "[{\"to\":\"ExpoPushToken[a]\",\"badge\":-1}]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = call(s, SEND, bad[i], 0, &st);
        assert_int_equal(st, 400);
        assert_string_equal(err_code(j), "VALIDATION_ERROR");
        json_decref(j);
    }
    j = call_full(s, SEND, "[]", 2, "text/plain", NULL, 0, &st);
    assert_int_equal(st, 415);
    json_decref(j);
}

static void test_tokens_and_behaviours(void **state)
{
    sim_t *s = *state;
    int st;
    json_t *j = call(s, SEND,
                     "[{\"to\":[\"ExponentPushToken[]\",\"ExponentPushToken[a b]\",\"fcm:xyz\","
                     "\"ExponentPushToken[Unregistered]\",\"ExponentPushToken[TooBig]\","
                     "\"ExponentPushToken[RateExceeded]\",\"ExponentPushToken[BadCreds]\","
                     "\"ExponentPushToken[Mismatch]\",\"ExponentPushToken[RateExceededOnce]\","
                     "\"ExponentPushToken[RateExceededOnce]\",\"ExponentPushToken[LateBadCreds]\","
                     "\"0123456789ab-cdef-0123-456789abcdef\"]}]",
                     0, &st);
    assert_int_equal(st, 200);
    const char *want[] = {"DeviceNotRegistered",
                          "DeviceNotRegistered",
                          "DeviceNotRegistered",
                          "DeviceNotRegistered",
                          "MessageTooBig",
                          "MessageRateExceeded",
                          "InvalidCredentials",
                          "MismatchSenderId",
                          "MessageRateExceeded",
                          NULL,
                          NULL,
                          "DeviceNotRegistered"};
    expect_tickets(j, want, 12);
    json_t *t = reply_ticket(j, 2);
    assert_string_equal(json_string_value(json_object_get(t, "message")),
                        "\"fcm:xyz\" is not a valid Expo push token");
    t = reply_ticket(j, 3);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(t, "details"), "expoPushToken")),
        "ExponentPushToken[Unregistered]");
    json_decref(j);
}

/* The payload measure is the compact JSON of the message without "to": 4096 passes, 4097 not. */
static void test_payload_limit(void **state)
{
    sim_t *s = *state;
    for (int extra = 0; extra < 2; extra++) {
        json_t *m = json_pack("{s:s,s:s,s:{s:s,s:i}}", "to", "ExponentPushToken[p]", "title",
                              "caf\xc3\xa9 \"q\"\n", "data", "k", "v", "n", 42);
        json_object_del(m, "to");
        char *d = json_dumps(m, JSON_COMPACT);
        size_t base = strlen(d) + strlen(",\"body\":\"\"");
        free(d);
        char *body = malloc(SIM_MAX_PAYLOAD);
        size_t n = SIM_MAX_PAYLOAD - base + (size_t)extra;
        memset(body, 'x', n);
        json_object_set_new(m, "body", json_stringn(body, n));
        free(body);
        json_object_set_new(m, "to", json_string("ExponentPushToken[p]"));
        char *req = json_dumps(m, JSON_COMPACT);
        int st;
        char wrapped[8192];
        snprintf(wrapped, sizeof wrapped, "[%s]", req);
        json_t *j = call(s, SEND, wrapped, 0, &st);
        assert_int_equal(st, 200);
        if (extra)
            assert_string_equal(ticket_err(j, 0), "MessageTooBig");
        else
            assert_string_equal(ticket_status(j, 0), "ok");
        json_decref(j);
        json_decref(m);
        free(req);
    }
}

static void test_projects_and_auth(void **state)
{
    (void)state;
    char path[] = "/tmp/herald-sim-projXXXXXX";
    int fd = mkstemp(path);
    const char *txt = "# token substring -> project\nprojB- @acme/b\n";
    assert_int_equal(write(fd, txt, strlen(txt)), (ssize_t)strlen(txt));
    close(fd);
    sim_t *s = mk_with(NULL, false, "projects", path, "access-token", "sekrit", NULL);
    unlink(path);
    const char *body = "[{\"to\":[\"ExponentPushToken[a]\",\"ExponentPushToken[projB-1]\","
                       "\"ExponentPushToken[c]\"]}]";
    sim_req_t rq = {.method = "POST",
                    .path = SEND,
                    .content_type = "application/json",
                    .body = body,
                    .bodylen = strlen(body)};
    sim_resp_t r = {0};
    sim_handle(s, &rq, &r);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(buf_cstr(&r.body), "UNAUTHORIZED"));
    rq.auth = "Bearer wrong";
    sim_handle(s, &rq, &r);
    assert_int_equal(r.status, 401);
    rq.auth = "Bearer sekrit";
    sim_handle(s, &rq, &r);
    assert_int_equal(r.status, 400);
    json_t *j = json_loads(buf_cstr(&r.body), 0, NULL);
    assert_string_equal(err_code(j), "PUSH_TOO_MANY_EXPERIENCE_IDS");
    json_t *det = json_object_get(json_array_get(json_object_get(j, "errors"), 0), "details");
    assert_int_equal(json_array_size(json_object_get(det, "@herald/sim")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(det, "@acme/b"), 0)),
                        "ExponentPushToken[projB-1]");
    json_decref(j);
    sim_resp_cleanup(&r);
    sim_destroy(s);
}

static void test_rate_windows(void **state)
{
    (void)state;
    sim_opts_t o;
    sim_t *s = mk_with(&o, false, "rate-limit", "150", NULL);
    char *b = send_body(100, "r", false);
    int st;
    json_decref(call(s, SEND, b, 10000, &st));
    assert_int_equal(st, 200);
    json_t *j = call(s, SEND, b, 10500, &st); /* 200 in the sliding second */
    assert_int_equal(st, 429);
    assert_string_equal(err_code(j), "TOO_MANY_REQUESTS");
    json_decref(j);
    json_decref(call(s, SEND, b, 10990, &st));
    assert_int_equal(st, 429);
    json_decref(call(s, SEND, b, 11010, &st)); /* the first batch left the window */
    assert_int_equal(st, 200);
    /* fixed windows reset on the second boundary */
    sim_opts_t f = o;
    f.rate_window = SIM_RATE_FIXED;
    sim_t *s2 = mk(&f);
    json_decref(call(s2, SEND, b, 20900, &st));
    assert_int_equal(st, 200);
    json_decref(call(s2, SEND, b, 21000, &st));
    assert_int_equal(st, 200);
    free(b);
    sim_destroy(s2);
    sim_destroy(s);
}

/* strict: a millisecond log; 100 admitted at ms 10000 still count at 11000, not at 11001 */
static void test_rate_strict(void **state)
{
    (void)state;
    sim_opts_t o;
    sim_t *s = mk_with(&o, false, "rate-limit", "150", "rate-window", "strict", NULL);
    char *b100 = send_body(100, "r", false), *b50 = send_body(50, "q", false);
    int st;
    json_decref(call(s, SEND, b100, 10000, &st));
    assert_int_equal(st, 200);
    json_decref(call(s, SEND, b50, 10400, &st)); /* 150: full */
    assert_int_equal(st, 200);
    json_decref(call(s, SEND, b50, 10999, &st)); /* the sliding mode's slots forgot the 100 */
    assert_int_equal(st, 429);
    json_decref(call(s, SEND, b50, 11000, &st));
    assert_int_equal(st, 429);
    json_decref(call(s, SEND, b100, 11001, &st)); /* the 100 left; the 50 of 10400 remain */
    assert_int_equal(st, 200);
    json_decref(call(s, SEND, b50, 11001, &st));
    assert_int_equal(st, 429);
    json_decref(call(s, SEND, b50, 11401, &st));
    assert_int_equal(st, 200);
    json_t *j = call(s, "/control", "{\"rate-window\":\"strict\"}", 11500, &st);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(j, "rate-window")), "strict");
    json_decref(j);
    /* one a millisecond: 150, then nothing until the first leaves 1001 ms later */
    int ok = 0;
    for (int64_t t = 20000; t < 23000; t++) {
        json_decref(call(s, SEND, "{\"to\":\"ExponentPushToken[m]\"}", t, &st));
        ok += st == 200;
        assert_int_equal(st, (t - 20000) % 1001 < 150 ? 200 : 429);
    }
    assert_int_equal(ok, 450);
    /* a limit that admits every millisecond: 1001 live entries, the log must not overflow */
    sim_opts_t big = o;
    big.rate_limit = 1001;
    sim_t *s2 = mk(&big);
    for (int64_t t = 30000; t < 33000; t++) {
        json_decref(call(s2, SEND, "{\"to\":\"ExponentPushToken[m]\"}", t, &st));
        assert_int_equal(st, 200);
    }
    json_decref(call(s2, SEND, "{\"to\":\"ExponentPushToken[m]\"}", 32999, &st));
    assert_int_equal(st, 429);
    sim_destroy(s2);
    free(b100);
    free(b50);
    sim_destroy(s);
}

static void test_malformed_ticket(void **state)
{
    (void)state;
    sim_t *s = mk_with(NULL, true, "malformed-ticket", "1", NULL);
    int st;
    json_t *j = call(
        s, SEND, "[{\"to\":\"ExponentPushToken[a]\"},{\"to\":\"ExponentPushToken[Unregistered]\"}]",
        0, &st);
    assert_int_equal(st, 200);
    json_t *t0 = reply_ticket(j, 0);
    assert_string_equal(json_string_value(json_object_get(t0, "status")), "ok");
    assert_null(json_object_get(t0, "id"));                       /* accepted, but without its id */
    assert_string_equal(ticket_err(j, 1), "DeviceNotRegistered"); /* errors stay whole */
    json_decref(j);
    buf_t rec = BUF_INIT;
    sim_record_take(s, &rec);
    assert_non_null(strstr(buf_cstr(&rec), "ExponentPushToken[a]"));
    buf_cleanup(&rec);
    j = stats(s);
    expect_ints(j, "malformedTickets=1 messagesAccepted=1");
    json_decref(j);
    sim_destroy(s);
}

static void test_receipts(void **state)
{
    (void)state;
    sim_t *s = mk_with(NULL, false, "receipt-delay-ms", "1000", NULL);
    int st;
    json_t *t = call(s, SEND,
                     "[{\"to\":[\"ExponentPushToken[a]\",\"ExponentPushToken[LateUnregistered]\","
                     "\"ExponentPushToken[NoReceipt]\"]}]",
                     5000, &st);
    char req[512];
    snprintf(req, sizeof req, "{\"ids\":[\"%s\",\"%s\",\"%s\",\"nope\"]}", ticket_id(t, 0),
             ticket_id(t, 1), ticket_id(t, 2));
    json_t *r = call(s, RCPT, req, 5999, &st);
    assert_int_equal(st, 200);
    assert_int_equal(json_object_size(json_object_get(r, "data")), 0);
    json_decref(r);
    r = call(s, RCPT, req, 6000, &st);
    json_t *d = json_object_get(r, "data");
    assert_int_equal(json_object_size(d), 2);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(d, ticket_id(t, 0)), "status")), "ok");
    json_t *e = json_object_get(json_object_get(d, ticket_id(t, 1)), "details");
    assert_string_equal(json_string_value(json_object_get(e, "error")), "DeviceNotRegistered");
    json_decref(r);
    json_decref(t);
    char *ids = receipt_ids_body(1001);
    r = call(s, RCPT, ids, 0, &st);
    assert_int_equal(st, 400);
    assert_string_equal(err_code(r), "PUSH_TOO_MANY_RECEIPTS");
    json_decref(r);
    free(ids);
    sim_destroy(s);
}

/* LateRateExceededOnce: both tickets ok; the first one's receipt is MessageRateExceeded, the
 * second's (the resend) ok. */
static void test_late_rate_exceeded_once(void **state)
{
    (void)state;
    sim_t *s = mk_default();
    int st;
    const char *one = "{\"to\":\"ExponentPushToken[LateRateExceededOnce-1]\"}";
    json_t *t1 = call(s, SEND, one, 1000, &st);
    json_t *t2 = call(s, SEND, one, 1001, &st);
    const char *id1 = json_string_value(json_object_get(json_object_get(t1, "data"), "id"));
    const char *id2 = json_string_value(json_object_get(json_object_get(t2, "data"), "id"));
    assert_non_null(id1);
    assert_non_null(id2);
    char req[256];
    snprintf(req, sizeof req, "{\"ids\":[\"%s\",\"%s\"]}", id1, id2);
    json_t *r = call(s, RCPT, req, 2000, &st);
    json_t *d = json_object_get(r, "data");
    json_t *r1 = json_object_get(d, id1), *r2 = json_object_get(d, id2);
    assert_string_equal(json_string_value(json_object_get(r1, "status")), "error");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r1, "details"), "error")),
                        "MessageRateExceeded");
    assert_string_equal(json_string_value(json_object_get(r2, "status")), "ok");
    json_decref(r);
    json_decref(t1);
    json_decref(t2);
    sim_destroy(s);
}

/* Every documented details.error, as a ticket and (Late<Word>) as a receipt. */
static const struct {
    const char *word, *error, *msg_part;
} shape_cases[] = {
    {"Unregistered", "DeviceNotRegistered", "is not a registered push notification recipient"},
    {"TooBig", "MessageTooBig", "Message too big"},
    {"RateExceeded", "MessageRateExceeded", "Too many messages"},
    {"BadCreds", "InvalidCredentials", "invalid or were revoked"},
    {"BadProviderToken", "InvalidCredentials", "InvalidProviderToken"},
    {"Mismatch", "MismatchSenderId", "sender id"},
    {"DeveloperError", "DeveloperError", "malformed"},
    {"ExpoError", "ExpoError", "internal Expo error"},
    {"ProviderError", "ProviderError", "push provider"},
};
#define NSHAPES (sizeof shape_cases / sizeof shape_cases[0])

static void check_error_obj(json_t *o, size_t k, const char *tok)
{
    json_t *det = json_object_get(o, "details");
    assert_string_equal(json_string_value(json_object_get(o, "status")), "error");
    assert_string_equal(json_string_value(json_object_get(det, "error")), shape_cases[k].error);
    const char *msg = json_string_value(json_object_get(o, "message"));
    if (!msg || !strstr(msg, shape_cases[k].msg_part))
        fail_msg("%s: message \"%s\"", shape_cases[k].word, msg ? msg : "(none)");
    json_t *ept = json_object_get(det, "expoPushToken");
    if (strcmp(shape_cases[k].error, "DeviceNotRegistered") == 0)
        assert_string_equal(json_string_value(ept), tok);
    else
        assert_null(ept);
    json_t *apns = json_object_get(det, "apns");
    if (strcmp(shape_cases[k].word, "BadProviderToken") == 0)
        assert_string_equal(json_string_value(json_object_get(apns, "reason")),
                            "InvalidProviderToken");
    else
        assert_null(apns);
}

static void test_error_shapes(void **state)
{
    sim_t *s = *state;
    buf_t b = BUF_INIT;
    char tok[2][NSHAPES][80];
    buf_puts(&b, "[{\"to\":[");
    for (size_t k = 0; k < NSHAPES; k++) {
        snprintf(tok[0][k], sizeof tok[0][k], "ExponentPushToken[%s]", shape_cases[k].word);
        snprintf(tok[1][k], sizeof tok[1][k], "ExponentPushToken[Late%s]", shape_cases[k].word);
        buf_printf(&b, "%s\"%s\",\"%s\"", k ? "," : "", tok[0][k], tok[1][k]);
    }
    buf_puts(&b, "]}]");
    int st;
    json_t *t = call(s, SEND, buf_cstr(&b), 0, &st);
    assert_int_equal(st, 200);
    buf_reset(&b);
    buf_puts(&b, "{\"ids\":[");
    for (size_t k = 0; k < NSHAPES; k++) {
        check_error_obj(reply_ticket(t, 2 * k), k, tok[0][k]);
        assert_string_equal(ticket_status(t, 2 * k + 1), "ok");
        buf_printf(&b, "%s\"%s\"", k ? "," : "", ticket_id(t, 2 * k + 1));
    }
    buf_puts(&b, "]}");
    json_t *r = call(s, RCPT, buf_cstr(&b), 0, &st);
    assert_int_equal(st, 200);
    json_t *d = json_object_get(r, "data");
    assert_int_equal(json_object_size(d), NSHAPES);
    for (size_t k = 0; k < NSHAPES; k++)
        check_error_obj(json_object_get(d, ticket_id(t, 2 * k + 1)), k, tok[1][k]);
    json_decref(r);
    json_decref(t);
    buf_cleanup(&b);
}

/* The whole-request shapes: 500 INTERNAL_SERVER_ERROR, the invalid_token object, a 200 carrying
 * errors (none processed), and a 504 after the service accepted the messages. */
static void test_request_shapes(void **state)
{
    sim_t *s = *state;
    int st;
    sim_req_t rq = {.method = "POST",
                    .path = SEND,
                    .content_type = "application/json",
                    .body = "[{\"to\":\"ExponentPushToken[q]\"}]",
                    .bodylen = strlen("[{\"to\":\"ExponentPushToken[q]\"}]"),
                    .loopback = true};
    sim_resp_t r = {0};
    static const struct {
        const char *control;
        int status;
        const char *body_part;
    } cases[] = {
        {"{\"fail-500\":1}", 500, "{\"errors\":[{\"code\":\"INTERNAL_SERVER_ERROR\""},
        {"{\"fail-500\":0,\"fail-invalid-token\":1}", 401,
         "{\"error\":\"invalid_token\",\"error_description\":"},
        {"{\"fail-invalid-token\":0,\"fail_200_errors\":1}", 200,
         "{\"errors\":[{\"code\":\"INTERNAL_SERVER_ERROR\""},
        {"{\"fail-200-errors\":0,\"fail-504\":1}", 504, "504 Gateway Time-out"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_decref(call(s, "/control", cases[i].control, 0, &st));
        assert_int_equal(st, 200);
        sim_handle(s, &rq, &r);
        assert_int_equal(r.status, cases[i].status);
        if (!strstr(buf_cstr(&r.body), cases[i].body_part))
            fail_msg("case %zu: %s", i, buf_cstr(&r.body));
    }
    buf_t rec = BUF_INIT;
    sim_record_take(s, &rec); /* only the 504's message was processed */
    assert_non_null(strstr(buf_cstr(&rec), "ExponentPushToken[q]"));
    assert_null(strchr(strchr(buf_cstr(&rec), '\n') + 1, '\n'));
    buf_cleanup(&rec);
    json_t *j = stats(s);
    expect_ints(j, "injected500=1 injectedInvalidToken=1 injected200Errors=1 injected504=1 "
                   "messagesAccepted=1");
    json_decref(j);
    j = call(s, "/control", "{}", 0, &st);
    assert_true(json_number_value(json_object_get(j, "fail-504")) == 1.0);
    json_decref(j);
    sim_resp_cleanup(&r);
}

static size_t gz(const void *in, size_t n, unsigned char *out, size_t cap)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    return len;
}

static void test_gzip_bounds(void **state)
{
    (void)state;
    sim_t *s = mk_with(NULL, false, "max-body", "100000", NULL);
    static unsigned char out[300000];
    const char *body = "[{\"to\":\"ExponentPushToken[g]\"}]";
    size_t n = gz(body, strlen(body), out, sizeof out);
    int st;
    json_t *j = call_full(s, SEND, (char *)out, n, "application/json", "gzip", 0, &st);
    assert_int_equal(st, 200);
    assert_string_equal(ticket_status(j, 0), "ok");
    json_decref(j);
    j = call_full(s, SEND, (char *)out, n - 3, "application/json", "gzip", 0, &st);
    assert_int_equal(st, 400); /* truncated */
    json_decref(j);
    char *bomb = calloc(1, 100001); /* inflates past max_body: 413, never fully inflated */
    memset(bomb, ' ', 100001);
    n = gz(bomb, 100001, out, sizeof out);
    free(bomb);
    j = call_full(s, SEND, (char *)out, n, "application/json", "gzip", 0, &st);
    assert_int_equal(st, 413);
    json_decref(j);
    j = call_full(s, SEND, "[]", 2, "application/json", "br", 0, &st);
    assert_int_equal(st, 415);
    json_decref(j);
    sim_destroy(s);
}

static void test_control_and_faults(void **state)
{
    sim_t *s = *state;
    int st;
    json_decref(call(s, "/control", "{\"fail-5xx\":1,\"retry_after\":7}", 0, &st));
    assert_int_equal(st, 200);
    sim_req_t rq = {.method = "POST",
                    .path = SEND,
                    .content_type = "application/json",
                    .body = "[]",
                    .bodylen = 2,
                    .loopback = true};
    sim_resp_t r = {0};
    sim_handle(s, &rq, &r);
    assert_true(r.status == 502 || r.status == 503);
    assert_string_equal(r.content_type, "text/html");
    assert_int_equal(r.retry_after_s, 7);
    json_decref(call(s, "/control", "{\"fail-5xx\":0,\"malformed\":1.0}", 0, &st));
    sim_handle(s, &rq, &r);
    assert_int_equal(r.status, 200);
    assert_null(json_loads(buf_cstr(&r.body), 0, NULL));
    json_decref(call(s, "/control", "{\"malformed\":0,\"drop\":1}", 0, &st));
    sim_handle(s, &rq, &r);
    assert_int_equal(r.action, SIM_DROP);
    json_t *j = call(s, "/control", "{\"drop\":2}", 0, &st); /* all or nothing */
    assert_int_equal(st, 400);
    json_decref(j);
    json_decref(call(s, "/control", "{\"max-body\":5}", 0, &st));
    assert_int_equal(st, 400);
    json_decref(call(s, "/control", "{\"drop\":0,\"fail-429\":1}", 0, &st));
    sim_handle(s, &rq, &r);
    assert_int_equal(r.status, 429);
    rq.loopback = false;
    rq.path = "/control";
    sim_handle(s, &rq, &r);
    assert_int_equal(r.status, 403);
    j = stats(s);
    expect_ints(j, "injected5xx=1 malformed=1 drops=1 injected429=1 http429=1");
    json_decref(j);
    sim_resp_cleanup(&r);
}

/* The one-pass scanner: escapes decode like jansson, repeated keys keep the last value, invalid
 * JSON is refused before any shape error, the record compacts data. */
static void test_scanner_cases(void **state)
{
    sim_t *s = *state;
    int st;
    json_t *j =
        call(s, SEND,
             "[ {\"t\\u006f\" : \"ExponentPushToken[\\u0061b]\", \"title\":\"\\u00e9\","
             "\"data\": { \"a\" : [ 1 , 2 ] } },{\"to\":\"bad\",\"to\":\"ExpoPushToken[z]\"}]",
             0, &st);
    assert_int_equal(st, 200);
    assert_string_equal(ticket_status(j, 0), "ok");
    assert_string_equal(ticket_status(j, 1), "ok");
    json_decref(j);
    buf_t rec = BUF_INIT;
    sim_record_take(s, &rec);
    assert_non_null(strstr(buf_cstr(&rec), "\"token\":\"ExponentPushToken[ab]\",\"title\":"
                                           "\"\\u00e9\",\"data\":{\"a\":[1,2]}}\n"));
    assert_non_null(strstr(buf_cstr(&rec), "\"token\":\"ExpoPushToken[z]\"}\n"));
    buf_cleanup(&rec);
    static const char *const invalid[] = {
        "[{\"to\":\"ExpoPushToken[a]\",}]", "[{\"to\":\"ExpoPushToken[a]\"},]",
        "[{\"to\":\"ExpoPushToken[a]\"}] x", "[{\"to\":\"\\ud800\"}]", "[{\"to\":\"\\u0000\"}]",
        "[{\"badge\":01,\"to\":\"ExpoPushToken[a]\"}]",
        "[{\"badge\":99999999999999999999,\"to\":\"ExpoPushToken[a]\"}]", "[{\"to\":\"\xc3\x28\"}]",
        /* a shape error early does not hide invalid JSON later */
        "[{\"title\":1},{\"to\":}]", ""};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        j = call(s, SEND, invalid[i], 0, &st);
        assert_int_equal(st, 400);
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(json_object_get(j, "errors"), 0), "message")),
                            "Request body is not valid JSON.");
        json_decref(j);
    }
    buf_t deep = BUF_INIT;
    buf_puts(&deep, "[{\"to\":\"ExpoPushToken[a]\",\"data\":");
    buf_fill(&deep, '[', 2100);
    buf_fill(&deep, ']', 2100);
    buf_puts(&deep, "}]");
    json_decref(call(s, SEND, buf_cstr(&deep), 0, &st));
    assert_int_equal(st, 400);
    buf_cleanup(&deep);
    assert_int_equal(sj_check("[1.5e3, -0, {\"a\":null}]", 23), 0);
    assert_int_equal(sj_check("1e999", 5), -1);
}

/* The rich fields Expo documents are type-checked like the others and recorded as sent:
 * richContent (an object whose image is a string), icon and tag (strings), interruptionLevel (one
 * of four), badge (a number >= 0), mutableContent and _contentAvailable (booleans). */
static void test_rich_fields(void **state)
{
    (void)state;
    sim_t *s = mk_default();
    int st;
    json_t *j = call(s, SEND,
                     "[{\"to\":\"ExponentPushToken[rich]\",\"title\":\"t\","
                     "\"richContent\":{ \"image\" : \"https://x.test/a%20b.jpg\" },"
                     "\"icon\":\"ic_ready\",\"tag\":\"j1\",\"badge\":2,"
                     "\"interruptionLevel\":\"time-sensitive\",\"mutableContent\":true,"
                     "\"_contentAvailable\":false,\"sound\":\"default\",\"ttl\":60,"
                     "\"categoryId\":\"c\"}]",
                     0, &st);
    assert_int_equal(st, 200);
    assert_string_equal(ticket_status(j, 0), "ok");
    json_decref(j);
    buf_t rec = BUF_INIT;
    sim_record_take(s, &rec);
    assert_non_null(strstr(buf_cstr(&rec),
                           "\"title\":\"t\",\"sound\":\"default\",\"badge\":2,\"ttl\":60,"
                           "\"categoryId\":\"c\",\"richContent\":{\"image\":"
                           "\"https://x.test/a%20b.jpg\"},\"icon\":\"ic_ready\",\"tag\":\"j1\","
                           "\"interruptionLevel\":\"time-sensitive\",\"mutableContent\":true,"
                           "\"_contentAvailable\":false}\n"));
    buf_cleanup(&rec);
    static const char *const bad[][2] = {
        {"\"richContent\":\"https://x.test/a.jpg\"", "richContent"},
        {"\"richContent\":{\"image\":7}", "richContent"},
        {"\"richContent\":{\"alt\":\"a\",\"image\":null}", "richContent"},
        {"\"icon\":1", "icon"},
        {"\"tag\":[\"a\"]", "tag"},
        {"\"interruptionLevel\":\"urgent\"", "interruptionLevel"},
        {"\"badge\":-2", "badge"},
        {"\"badge\":\"1\"", "badge"},
        {"\"mutableContent\":1", "mutableContent"},
        {"\"_contentAvailable\":\"true\"", "_contentAvailable"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[256], want[64];
        snprintf(body, sizeof body, "[{\"to\":\"ExponentPushToken[rich]\",%s}]", bad[i][0]);
        j = call(s, SEND, body, 0, &st);
        assert_int_equal(st, 400);
        assert_string_equal(err_code(j), "VALIDATION_ERROR");
        snprintf(want, sizeof want, "\"[0].%s\"", bad[i][1]);
        const char *msg = json_string_value(
            json_object_get(json_array_get(json_object_get(j, "errors"), 0), "message"));
        if (msg == NULL || strstr(msg, want) == NULL)
            fail_msg("%s: message %s lacks %s", bad[i][0], msg ? msg : "(none)", want);
        json_decref(j);
    }
    /* Members of richContent Expo does not document pass, as other unknown fields do. */
    j = call(s, SEND,
             "[{\"to\":\"ExponentPushToken[rich]\",\"richContent\":{\"video\":1},\"x\":[]}]", 0,
             &st);
    assert_int_equal(st, 200);
    json_decref(j);
    sim_destroy(s);
}

/* A test run with mk_default() as its state */
#define WITH_SIM(test) cmocka_unit_test_setup_teardown(test, with_default, destroy_sim)

int main(void)
{
    const struct CMUnitTest tests[] = {
        WITH_SIM(test_send_ok_in_order),
        WITH_SIM(test_limits_and_shapes),
        WITH_SIM(test_tokens_and_behaviours),
        WITH_SIM(test_payload_limit),
        cmocka_unit_test(test_rich_fields),
        cmocka_unit_test(test_projects_and_auth),
        cmocka_unit_test(test_rate_windows),
        cmocka_unit_test(test_rate_strict),
        cmocka_unit_test(test_malformed_ticket),
        cmocka_unit_test(test_receipts),
        cmocka_unit_test(test_late_rate_exceeded_once),
        WITH_SIM(test_error_shapes),
        WITH_SIM(test_request_shapes),
        cmocka_unit_test(test_gzip_bounds),
        WITH_SIM(test_control_and_faults),
        WITH_SIM(test_scanner_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
