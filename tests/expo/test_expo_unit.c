/* test_expo_unit.c - the Expo module without a network: reply/receipt parsing and message encoding
 * from fixture files, classification tables, gzip, the token bucket and backoff schedule with a
 * fake clock, and the client's batching, outcomes and retries driven through a fake transport. */
#include "core/clock.h"
#include "core/xalloc.h"
#include "expo/expo.h"
#include "expo/proto.h"
#include "tests/expo/fake_transport.h"
#include "tests/expo/fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

static const char *kind_name(expo_reply_kind_t k)
{
    static const char *n[] = {"tickets", "retry", "fail", "split"};
    return n[k];
}

static const char *tk_name(expo_tk_kind_t k)
{
    static const char *n[] = {"ok", "invalid", "retry", "fail", "doubt"};
    return n[k];
}

static void check_reply(const fx_t *f)
{
    expo_reply_t r, tree;
    expo_reply_parse(fx_int(f, "status", 0), f->body, f->len, (size_t)fx_int(f, "expect", 0), &r);
    expo_reply_parse_tree(fx_int(f, "status", 0), f->body, f->len, (size_t)fx_int(f, "expect", 0),
                          &tree);
    assert_true(expo_reply_equal(&r, &tree)); /* the one-pass reader and the tree agree */
    expo_reply_cleanup(&tree);
    print_message("reply %s -> %s %s\n", f->name, kind_name(r.kind), r.code ? r.code : "-");
    assert_string_equal(kind_name(r.kind), fx_get(f, "kind", "?"));
    const char *code = fx_get(f, "code", NULL);
    if (code)
        assert_string_equal(r.code, code);
    assert_int_equal(r.ambiguous, fx_int(f, "ambiguous", r.ambiguous));
    assert_int_equal(r.credential, fx_int(f, "credential", 0));
    assert_int_equal(r.nsplit, fx_int(f, "split", 0));
    const char *tks = fx_get(f, "tickets", NULL);
    if (tks) {
        buf_t got = BUF_INIT;
        for (size_t k = 0; k < r.ntickets; k++) {
            buf_printf(&got, "%s%s", k ? "," : "", tk_name(r.tickets[k].kind));
            if (r.tickets[k].kind == EXPO_TK_OK)
                assert_non_null(r.tickets[k].id);
            else
                assert_non_null(r.tickets[k].error);
        }
        assert_string_equal(buf_cstr(&got), tks);
        buf_cleanup(&got);
    }
    expo_reply_cleanup(&r);
}

static void test_reply_fixtures(void **state)
{
    (void)state;
    assert_true(fx_each("expo/replies", check_reply) >= 20);
}

/* The one-pass reader of the common reply against the general path, on every reply fixture cut,
 * bytes flipped and counts changed: whatever it takes must read exactly as the tree does. */
static void test_reply_paths_agree(void **state)
{
    (void)state;
    fx_t *fx;
    size_t nfx = fx_load_dir("expo/replies", &fx);
    static const char flips[] = "\" ,:{}[]\\az0\x01\xc3\x7f";
    uint64_t x = 0x9e3779b97f4a7c15u;
    size_t checked = 0;
    for (size_t k = 0; k < nfx; k++) {
        for (int round = 0; round < 3000; round++) {
            char body[4096];
            size_t len = fx[k].len < sizeof body ? fx[k].len : sizeof body;
            memcpy(body, fx[k].body, len);
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (round > 0 && len > 0) {
                for (int m = 0; m < 1 + (int)(x % 3); m++) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    body[x % len] = flips[(x >> 20) % (sizeof flips - 1)];
                }
                if (x & 0x100000000u)
                    len = (size_t)(x >> 40) % (len + 1);
            }
            static const long st[] = {200, 201, 299, 400, 429, 504};
            long status = round < 2 ? fx_int(&fx[k], "status", 200) : st[(x >> 8) % 6];
            size_t expect = (size_t)fx_int(&fx[k], "expect", 0) + (size_t)((x >> 16) % 3) - 1;
            if (round == 0)
                expect = (size_t)fx_int(&fx[k], "expect", 0);
            expo_reply_t a, b;
            expo_reply_parse(status, body, len, expect, &a);
            expo_reply_parse_tree(status, body, len, expect, &b);
            assert_true(expo_reply_equal(&a, &b));
            expo_reply_cleanup(&a);
            expo_reply_cleanup(&b);
            checked++;
        }
    }
    assert_true(checked >= 20 * 3000);
    fx_free_all(fx, nfx);
}

static void check_receipts(const fx_t *f)
{
    expo_receipt_t *r;
    size_t nr;
    char err[64] = "";
    int rc = expo_receipts_parse(fx_int(f, "status", 0), f->body, f->len, &r, &nr, err, sizeof err);
    print_message("receipts %s -> %d %s\n", f->name, rc, err);
    assert_int_equal(rc, fx_int(f, "result", 99));
    if (rc != 0) {
        assert_string_equal(err, fx_get(f, "error", "?"));
        return;
    }
    /* compare as a sorted set "id=kind" */
    char *want = xstrdup(fx_get(f, "receipts", ""));
    size_t found = 0, nwant = 0;
    for (char *tok = strtok(want, ","); tok; tok = strtok(NULL, ","), nwant++) {
        for (size_t k = 0; k < nr; k++) {
            char one[300];
            snprintf(one, sizeof one, "%s=%s", r[k].id, tk_name(r[k].kind));
            if (strcmp(one, tok) == 0)
                found++;
        }
    }
    assert_int_equal(found, nwant);
    assert_int_equal(nr, nwant);
    free(want);
    expo_receipts_free(r, nr);
}

static void test_receipt_fixtures(void **state)
{
    (void)state;
    assert_true(fx_each("expo/receipts", check_receipts) >= 6);
}

/* Each fixture key is the name of the field it fills. */
static void fill_msg(const fx_t *f, expo_msg_t *m)
{
#define STR(field) m->field = fx_get(f, #field, NULL)
#define NUM(field) m->field = fx_int(f, #field, EXPO_UNSET)
    expo_msg_init(m);
    STR(to);
    STR(title);
    STR(body);
    STR(subtitle);
    STR(data);
    STR(sound);
    NUM(badge);
    NUM(ttl);
    NUM(expiration);
    STR(priority);
    STR(channel_id);
    STR(category_id);
    m->mutable_content = fx_int(f, "mutable_content", 0) != 0;
    STR(interruption_level);
    STR(collapse_id);
    m->content_available = fx_int(f, "content_available", 0) != 0;
    STR(rich_image);
    STR(icon);
    STR(tag);
#undef STR
#undef NUM
}

static void check_encode(const fx_t *f)
{
    expo_msg_t m;
    fill_msg(f, &m);
    buf_t b = BUF_INIT;
    int rc = expo_msg_encode(&m, &b);
    char *want = xstrndup(f->body, f->len);
    want[strcspn(want, "\n")] = '\0';
    print_message("encode %s -> %d\n", f->name, rc);
    if (want[0] == '!') {
        assert_int_equal(rc, EXPO_EINVAL);
        assert_int_equal(b.len, 0);
    } else {
        assert_int_equal(rc, 0);
        assert_string_equal(buf_cstr(&b), want);
        assert_int_equal(expo_msg_size(&m), b.len);
        json_t *j = json_loadb(b.data, b.len, 0, NULL); /* valid JSON */
        assert_non_null(j);
        json_decref(j);
    }
    free(want);
    buf_cleanup(&b);
}

static void test_encode_fixtures(void **state)
{
    (void)state;
    assert_true(fx_each("expo/encode", check_encode) >= 5);
}

static void test_encode_limits(void **state)
{
    (void)state;
    expo_msg_t m;
    expo_msg_init(&m);
    m.to = "ExponentPushToken[abc]";
    char *big = xmalloc(5000);
    memset(big, 'x', 4999);
    big[4999] = '\0';
    m.body = big;
    buf_t b = BUF_INIT;
    buf_puts(&b, "prefix");
    assert_int_equal(expo_msg_encode(&m, &b), EXPO_ETOOBIG);
    assert_string_equal(buf_cstr(&b), "prefix"); /* out unchanged */
    /* exactly at the limit passes, one byte over fails */
    size_t overhead = strlen("{\"to\":\"ExponentPushToken[abc]\",\"body\":\"\"}");
    big[EXPO_MAX_PAYLOAD - overhead] = '\0';
    buf_reset(&b);
    assert_int_equal(expo_msg_encode(&m, &b), 0);
    assert_int_equal(b.len, EXPO_MAX_PAYLOAD);
    big[EXPO_MAX_PAYLOAD - overhead] = 'x';
    big[EXPO_MAX_PAYLOAD - overhead + 1] = '\0';
    buf_reset(&b);
    assert_int_equal(expo_msg_encode(&m, &b), EXPO_ETOOBIG);
    assert_int_equal(expo_msg_size(&m), EXPO_MAX_PAYLOAD + 1); /* measured all the same */
    m.body = "\xc3\x28";                                       /* invalid UTF-8 */
    assert_int_equal(expo_msg_encode(&m, &b), EXPO_EINVAL);
    m.body = "ok";
    m.rich_image = "https://x/\xc3\x28"; /* every string is checked, the new ones too */
    assert_int_equal(expo_msg_encode(&m, &b), EXPO_EINVAL);
    m.rich_image = NULL;
    m.body = "\xed\xa0\x80"; /* a surrogate */
    assert_int_equal(expo_msg_encode(&m, &b), EXPO_EINVAL);
    m.body = "ok \xf0\x9f\x93\xb7";
    assert_int_equal(expo_msg_encode(&m, &b), 0);
    buf_cleanup(&b);
    free(big);
}

static void test_classify_table(void **state)
{
    (void)state;
    static const struct {
        const char *err;
        expo_tk_kind_t k;
    } te[] = {{"DeviceNotRegistered", EXPO_TK_INVALID},
              {"MessageRateExceeded", EXPO_TK_RETRY},
              {"MessageTooBig", EXPO_TK_FAIL},
              {"InvalidCredentials", EXPO_TK_FAIL},
              {"MismatchSenderId", EXPO_TK_FAIL},
              {"DeveloperError", EXPO_TK_FAIL},
              {"ExpoError", EXPO_TK_FAIL},
              {"ProviderError", EXPO_TK_FAIL},
              {"SomethingNew", EXPO_TK_FAIL},
              {NULL, EXPO_TK_FAIL}};
    for (size_t i = 0; i < sizeof te / sizeof te[0]; i++)
        assert_int_equal(expo_classify_error(te[i].err), te[i].k);
    static const struct {
        long st;
        const char *code;
        expo_reply_kind_t k;
    } tr[] = {{429, "TOO_MANY_REQUESTS", EXPO_REPLY_RETRY},
              {429, NULL, EXPO_REPLY_RETRY},
              {500, NULL, EXPO_REPLY_RETRY},
              {502, NULL, EXPO_REPLY_RETRY},
              {503, "API_ERROR", EXPO_REPLY_RETRY},
              {504, NULL, EXPO_REPLY_RETRY},
              {408, NULL, EXPO_REPLY_RETRY},
              {400, NULL, EXPO_REPLY_FAIL},
              {401, "UNAUTHORIZED", EXPO_REPLY_FAIL},
              {403, NULL, EXPO_REPLY_FAIL},
              {400, "PUSH_TOO_MANY_EXPERIENCE_IDS", EXPO_REPLY_SPLIT},
              {400, "PUSH_TOO_MANY_NOTIFICATIONS", EXPO_REPLY_FAIL},
              {200, "INTERNAL_SERVER_ERROR", EXPO_REPLY_RETRY},
              {200, "API_ERROR", EXPO_REPLY_FAIL}};
    for (size_t i = 0; i < sizeof tr / sizeof tr[0]; i++)
        assert_int_equal(expo_classify_request(tr[i].st, tr[i].code), tr[i].k);
}

/* The errors that feed herald_expo_credential_errors_total, from tickets and receipts alike. */
static void test_credential_errors(void **state)
{
    (void)state;
    assert_true(expo_credential_error("InvalidCredentials"));
    assert_true(expo_credential_error("MismatchSenderId"));
    static const char *const others[] = {
        "DeviceNotRegistered", "MessageTooBig", "MessageRateExceeded", "DeveloperError",
        "ExpoError",           "ProviderError", "UNAUTHORIZED",        "invalidcredentials"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        assert_false(expo_credential_error(others[i]));
    assert_false(expo_credential_error(NULL));
}

static void test_gzip_roundtrip(void **state)
{
    (void)state;
    size_t sizes[] = {0, 1, 1025, 70000, 300000, 1025};
    expo_gzip_t *kept = expo_gzip_create(); /* one stream for every size, as the client keeps */
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        buf_t in = BUF_INIT, z = BUF_INIT, out = BUF_INIT;
        for (size_t i = 0; i < sizes[s]; i++)
            buf_putc(&in, (char)("[{\"to\":\"ExponentPushToken[x]\"}],"[i % 31] + (i % 7 == 0)));
        assert_int_equal(expo_gzip(in.data ? in.data : "", in.len, &z), 0);
        buf_puts(&out, "prefix"); /* appended after what the buffer holds */
        assert_int_equal(expo_gzip_run(kept, in.data ? in.data : "", in.len, &out), 0);
        assert_int_equal(out.len, 6 + z.len);
        assert_memory_equal(out.data + 6, z.data, z.len); /* a reset stream: the same bytes */
        buf_reset(&out);
        assert_true((unsigned char)z.data[0] == 0x1f && (unsigned char)z.data[1] == 0x8b);
        assert_int_equal(expo_gunzip(z.data, z.len, 1 << 20, &out), 0);
        assert_int_equal(out.len, in.len);
        assert_memory_equal(buf_cstr(&out), buf_cstr(&in), in.len);
        buf_reset(&out);
        if (in.len > 100) /* the output bound is enforced */
            assert_int_equal(expo_gunzip(z.data, z.len, in.len / 2, &out), -1);
        buf_reset(&out);
        assert_int_equal(expo_gunzip(z.data, z.len / 2, 1 << 20, &out), -1); /* truncated */
        buf_cleanup(&in);
        buf_cleanup(&z);
        buf_cleanup(&out);
    }
    expo_gzip_destroy(kept);
}

static void test_backoff_schedule(void **state)
{
    (void)state;
    /* rnd = ceiling gives the ceiling (rnd mod (ceiling+1)): 1, 2, 4, 8, 16, 32, 60, 60 s */
    uint64_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
    for (unsigned a = 1; a <= 8; a++) {
        assert_int_equal(expo_retry_delay_ms(a, 1000, 60000, -1, want[a - 1]), want[a - 1]);
        assert_int_equal(expo_retry_delay_ms(a, 1000, 60000, -1, 0), 0);
        uint64_t d = expo_retry_delay_ms(a, 1000, 60000, -1, 0x9e3779b97f4a7c15ull);
        assert_true(d <= want[a - 1]);
    }
    /* Retry-After raises the delay, never lowers it, and is bounded */
    assert_int_equal(expo_retry_delay_ms(1, 1000, 60000, 7, 0), 7000);
    assert_int_equal(expo_retry_delay_ms(7, 1000, 60000, 2, 60000), 60000);
    assert_int_equal(expo_retry_delay_ms(1, 1000, 60000, 999999, 0), 3600000);

    /* a schedule on a fake clock: six attempts, total wait bounded by the ceilings */
    clk_fake_t fc;
    clk_fake_init(&fc, 1700000000000);
    uint64_t start = fc.clk.mono_ms(fc.clk.arg);
    for (unsigned a = 1; a < 6; a++)
        clk_fake_advance(&fc, expo_retry_delay_ms(a, 1000, 60000, -1, want[a - 1]));
    assert_int_equal(fc.clk.mono_ms(fc.clk.arg) - start, 1000 + 2000 + 4000 + 8000 + 16000);
}

/* A greedy sender on a fake clock: no window of span ms ever holds more than rate, and the
 * achieved rate is rate * 1000 / span. */
static void window_run(long rate, uint64_t span, long batch, uint64_t total_ms)
{
    clk_fake_t fc;
    clk_fake_init(&fc, 0);
    expo_window_t w;
    expo_window_init(&w, rate, span);
    static uint64_t at[200000];
    static long nat[200000];
    size_t ns = 0;
    long sent = 0;
    uint64_t t0 = fc.clk.mono_ms(fc.clk.arg);
    while (fc.clk.mono_ms(fc.clk.arg) - t0 < total_ms) {
        uint64_t now = fc.clk.mono_ms(fc.clk.arg);
        uint64_t wt = expo_window_take(&w, batch, now);
        if (wt == 0) {
            assert_true(ns < 200000);
            at[ns] = now;
            nat[ns++] = batch;
            sent += batch;
        } else {
            assert_true(wt <= span);
            clk_fake_advance(&fc, wt);
        }
    }
    for (size_t i = 0; i < ns; i++) { /* every window [at[i], at[i] + span) */
        long sum = 0;
        for (size_t j = i; j < ns && at[j] < at[i] + span; j++)
            sum += nat[j];
        assert_true(sum <= rate);
    }
    double secs = (double)total_ms / 1000.0;
    assert_true((double)sent >= (double)rate * secs * 1000.0 / (double)span - (double)rate);
    assert_true((double)sent <= (double)rate * secs + (double)rate);
    expo_window_cleanup(&w);
}

static void test_window_math(void **state)
{
    (void)state;
    expo_window_t w;
    expo_window_init(&w, 600, 1000);
    for (int i = 0; i < 6; i++)
        assert_int_equal(expo_window_take(&w, 100, 0), 0);
    assert_int_equal(expo_window_take(&w, 100, 0), 1000); /* the first batch leaves at 1000 */
    assert_int_equal(expo_window_take(&w, 100, 999), 1);
    assert_int_equal(expo_window_take(&w, 100, 1000), 0); /* all six left the window */
    assert_int_equal(expo_window_take(&w, 500, 1000), 0);
    assert_int_equal(expo_window_take(&w, 1, 1000), 1000);
    expo_window_cleanup(&w);
    window_run(600, 1005, 100, 60000);
    window_run(600, 1000, 7, 10000);
    window_run(50, 1005, 50, 30000);
    window_run(100000, 1005, 100, 5000);
    expo_window_init(&w, 0, 1000); /* rate 0 = unlimited */
    assert_int_equal(expo_window_take(&w, 1000000, 0), 0);
    expo_window_cleanup(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_fixtures),   cmocka_unit_test(test_reply_paths_agree),
        cmocka_unit_test(test_receipt_fixtures), cmocka_unit_test(test_encode_fixtures),
        cmocka_unit_test(test_encode_limits),    cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_gzip_roundtrip),   cmocka_unit_test(test_backoff_schedule),
        cmocka_unit_test(test_window_math),      cmocka_unit_test(test_credential_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
