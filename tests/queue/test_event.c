/* test_event.c - data-driven decoder tests: every tests/fixtures/events/<case>.value is decoded
 * with <case>.headers (name=value lines, optional) and checked against <case>.expect (key=value
 * lines; "(null)" for an absent field; max_bytes=N overrides the 64 KiB bound). Plus unit tests
 * of the idempotency key and the name tables. */
#include "queue/event.h"

#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    size_t got = fread(p, 1, (size_t)n, f);
    fclose(f);
    p[got] = '\0';
    *len = got;
    return p;
}

typedef struct kv {
    char k[64];
    char v[2048];
} kv_t;

static size_t read_kv(const char *path, kv_t *out, size_t max)
{
    size_t len, n = 0;
    char *text = slurp(path, &len);
    if (!text)
        return 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && n < max;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        snprintf(out[n].k, sizeof out[n].k, "%s", line);
        snprintf(out[n].v, sizeof out[n].v, "%s", eq + 1);
        n++;
    }
    free(text);
    return n;
}

static const char *str_or_null(const char *s)
{
    return s ? s : "(null)";
}

/* The decoded value of one expect key, as text. */
static const char *actual(const char *key, int rc, const queue_event_t *ev,
                          const queue_dec_error_t *why, char *tmp, size_t tmplen)
{
    if (strcmp(key, "result") == 0)
        return rc == 0 ? "ok" : queue_dec_reason_name(why->reason);
    if (strcmp(key, "field") == 0)
        return why->field;
    if (strcmp(key, "max_bytes") == 0)
        return NULL; /* a directive */
    if (rc != 0)
        return "(decode failed)";
    static const struct {
        const char *k;
        size_t off;
    } strs[] = {
        {"job_id", offsetof(queue_event_t, job_id)},
        {"batch_job_id", offsetof(queue_event_t, batch_job_id)},
        {"user_id", offsetof(queue_event_t, user_id)},
        {"previous_status", offsetof(queue_event_t, previous_status)},
        {"message", offsetof(queue_event_t, message)},
        {"timestamp", offsetof(queue_event_t, timestamp)},
        {"error", offsetof(queue_event_t, error)},
        {"final_s3_key", offsetof(queue_event_t, final_s3_key)},
        {"envelope", offsetof(queue_event_t, envelope)},
        {"sns_message_id", offsetof(queue_event_t, sns_message_id)},
        {"sqs_message_id", offsetof(queue_event_t, sqs_message_id)},
        {"correlation_id", offsetof(queue_event_t, correlation_id)},
        {"traceparent", offsetof(queue_event_t, traceparent)},
        {"locale", offsetof(queue_event_t, locale)},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (strcmp(key, strs[i].k) == 0)
            return str_or_null(*(const char *const *)((const char *)ev + strs[i].off));
    }
    if (strcmp(key, "kind") == 0)
        return ev->kind == QUEUE_EV_JOB ? "job" : "batch";
    if (strcmp(key, "status") == 0)
        return queue_status_name(ev->status);
    if (strcmp(key, "truncated") == 0)
        return ev->truncated ? "true" : "false";
    if (strcmp(key, "key") == 0) {
        queue_event_key(ev, tmp, tmplen);
        return tmp;
    }
    if (strcmp(key, "timestamp_ms") == 0)
        snprintf(tmp, tmplen, "%lld", (long long)ev->timestamp_ms);
    else if (strcmp(key, "completed_count") == 0)
        snprintf(tmp, tmplen, "%ld", ev->completed_count);
    else if (strcmp(key, "total_count") == 0)
        snprintf(tmp, tmplen, "%ld", ev->total_count);
    else if (strcmp(key, "error_len") == 0)
        snprintf(tmp, tmplen, "%zu", ev->error ? strlen(ev->error) : 0);
    else
        return "(unknown expect key)";
    return tmp;
}

/* The one-pass reader of plain events and the general path decode value alike (or fail alike). */
static bool paths_agree(const char *value, size_t len, const queue_header_t *hdrs, size_t nh,
                        size_t max_bytes)
{
    queue_event_t a, b;
    queue_dec_error_t wa, wb;
    int ra = queue_event_decode(value, len, hdrs, nh, max_bytes, &a, &wa);
    int rb = queue_event_decode_tree(value, len, hdrs, nh, max_bytes, &b, &wb);
    bool same = ra == rb && (ra == 0 ? queue_event_equal(&a, &b)
                                     : wa.reason == wb.reason && !strcmp(wa.field, wb.field) &&
                                           !strcmp(wa.detail, wb.detail));
    queue_event_cleanup(&a);
    queue_event_cleanup(&b);
    return same;
}

/* Runs one case; returns the number of mismatches (printed). */
static int run_case(const char *dir, const char *name)
{
    char path[2200];
    size_t len;
    snprintf(path, sizeof path, "%s/%s.value", dir, name);
    char *value = slurp(path, &len);
    if (!value) {
        printf("%s: no .value file\n", name);
        return 1;
    }
    kv_t *hk = calloc(16, sizeof *hk), *ex = calloc(64, sizeof *ex);
    snprintf(path, sizeof path, "%s/%s.headers", dir, name);
    size_t nh = read_kv(path, hk, 16);
    queue_header_t hdrs[16];
    for (size_t i = 0; i < nh; i++)
        hdrs[i] = (queue_header_t){hk[i].k, hk[i].v, strlen(hk[i].v)};
    snprintf(path, sizeof path, "%s/%s.expect", dir, name);
    size_t ne = read_kv(path, ex, 64);
    size_t max_bytes = 65536;
    for (size_t i = 0; i < ne; i++) {
        if (strcmp(ex[i].k, "max_bytes") == 0)
            max_bytes = strtoul(ex[i].v, NULL, 10);
    }
    queue_event_t ev;
    queue_dec_error_t why;
    int rc = queue_event_decode(value, len, hdrs, nh, max_bytes, &ev, &why);
    int bad = ne == 0;
    for (size_t i = 0; i < ne; i++) {
        char tmp[256];
        const char *got = actual(ex[i].k, rc, &ev, &why, tmp, sizeof tmp);
        if (got && strcmp(got, ex[i].v) != 0) {
            printf("%s: %s: expected \"%.80s\", got \"%.80s\" (%s)\n", name, ex[i].k, ex[i].v, got,
                   rc ? why.detail : "decoded");
            bad++;
        }
    }
    if (rc != 0 && why.detail[0] == '\0') {
        printf("%s: failure without a detail sentence\n", name);
        bad++;
    }
    if (!paths_agree(value, len, hdrs, nh, max_bytes)) {
        printf("%s: the plain-event reader and the general path disagree\n", name);
        bad++;
    }
    queue_event_cleanup(&ev);
    free(value);
    free(hk);
    free(ex);
    return bad;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_fixtures(void **state)
{
    (void)state;
    char dir[1024];
    const char *root = getenv("HERALD_TEST_FIXTURES");
    assert_non_null(root);
    snprintf(dir, sizeof dir, "%s/events", root);
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *names[512];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 512) {
        size_t l = strlen(de->d_name);
        if (l > 7 && strcmp(de->d_name + l - 7, ".expect") == 0)
            names[n++] = strndup(de->d_name, l - 7);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_str);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        bad += run_case(dir, names[i]);
        free(names[i]);
    }
    printf("%zu event fixtures, %d mismatches\n", n, bad);
    assert_true(n >= 50);
    assert_int_equal(bad, 0);
}

/* Every event fixture with bytes flipped, cut short and with or without headers: the one-pass
 * reader of plain events must decode exactly what the general path decodes, or leave it to it. */
static void test_paths_agree(void **state)
{
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/events", getenv("HERALD_TEST_FIXTURES"));
    DIR *d = opendir(dir);
    assert_non_null(d);
    static const queue_header_t hdrs[] = {
        {"x-other", "1", 1}, {"userId", "user-h", 6}, {"traceparent", "00-ab", 5}};
    static const char flips[] = "\" ,:{}[]\\az09-.e\x01\xc3nulltrue";
    uint64_t x = 0x2545f4914f6cdd1du;
    size_t n = 0, plain = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name), len;
        if (l < 7 || strcmp(de->d_name + l - 6, ".value") != 0)
            continue;
        char path[2200], *value;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        assert_non_null(value = slurp(path, &len));
        for (int round = 0; round < 600; round++) {
            char buf[8192];
            size_t blen = len < sizeof buf ? len : sizeof buf;
            memcpy(buf, value, blen);
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            for (int m = 0; round > 0 && blen > 0 && m < 1 + (int)(x % 3); m++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                buf[x % blen] = flips[(x >> 24) % (sizeof flips - 1)];
            }
            if (round > 0 && (x & 0x10000000000u))
                blen = (size_t)(x >> 44) % (blen + 1);
            size_t nh = round < 3 ? (size_t)round : (size_t)((x >> 8) % 4);
            queue_event_t ev;
            queue_dec_error_t why;
            if (queue_event_decode(buf, blen, hdrs, nh, 65536, &ev, &why) == 0)
                plain++;
            queue_event_cleanup(&ev);
            assert_true(paths_agree(buf, blen, hdrs, nh, 65536));
            n++;
        }
        free(value);
    }
    closedir(d);
    printf("%zu decodes compared, %zu decoded\n", n, plain);
    assert_true(n >= 50 * 600);
}

static void test_key_and_names(void **state)
{
    (void)state;
    const char *v = "{\"batchJobId\":\"b-1\",\"userId\":\"u\",\"status\":\"FAILED\"}";
    queue_event_t ev;
    queue_dec_error_t why;
    assert_int_equal(queue_event_decode(v, strlen(v), NULL, 0, 1024, &ev, &why), 0);
    char key[QUEUE_KEY_MAX];
    assert_int_equal(queue_event_key(&ev, key, sizeof key), (int)strlen("b-1:FAILED"));
    assert_string_equal(key, "b-1:FAILED");
    char small[4];
    assert_int_equal(queue_event_key(&ev, small, sizeof small), -1);
    queue_event_cleanup(&ev);
    queue_event_cleanup(&ev); /* twice is harmless */
    queue_status_t st;
    for (int i = 0; i < QUEUE_ST_COUNT; i++) {
        assert_int_equal(queue_status_parse(queue_status_name((queue_status_t)i), &st), 0);
        assert_int_equal(st, i);
    }
    assert_int_equal(queue_status_parse("completed", &st), -1);
    assert_string_equal(queue_dec_reason_name(QUEUE_DEC_ENVELOPE_DEPTH), "envelope_depth");
    assert_string_equal(queue_dec_reason_name(QUEUE_DEC_BAD_FIELD), "bad_field");
}

static void expect_same_str(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

/* Issue 10 item 2: a DLQ record carries the original event (queue_event_encode) so that a replay
 * sends the same notification; a batch event once came back as a plain job event without
 * data.error. Decoding the encoding gives every field back, for jobs, batches and envelopes. */
static void test_encode_round_trip(void **state)
{
    (void)state;
    static const char *const values[] = {
        "{\"batchJobId\":\"b-1\",\"userId\":\"u\",\"status\":\"COMPLETED\",\"completedCount\":3,"
        "\"totalCount\":4,\"message\":\"m \\\"q\\\" \xc3\xa9\",\"timestamp\":1700000000123,"
        "\"data\":{\"error\":\"The image was too dark\",\"previousStatus\":\"EDITING\","
        "\"finalS3Key\":\"k/1\"},\"correlationId\":\"c-1\",\"traceparent\":\"00-a-b-01\","
        "\"locale\":\"pt-br\"}",
        "{\"jobId\":\"X:COMPLETED\",\"batchJobId\":\"b-2\",\"userId\":\"u\",\"status\":\"FAILED\","
        "\"timestamp\":\"2026-11-24T10:00:00.000Z\",\"data\":{\"error\":null}}",
        "{\"MessageId\":\"m1\",\"Body\":\"{\\\"Type\\\":\\\"Notification\\\",\\\"MessageId\\\":"
        "\\\"sns-1\\\",\\\"Message\\\":\\\"{\\\\\\\"jobId\\\\\\\":\\\\\\\"j\\\\\\\","
        "\\\\\\\"userId\\\\\\\":\\\\\\\"u\\\\\\\",\\\\\\\"status\\\\\\\":"
        "\\\\\\\"COMPLETED\\\\\\\"}\\\"}\"}",
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        queue_event_t a, b;
        queue_dec_error_t why;
        assert_int_equal(queue_event_decode(values[i], strlen(values[i]), NULL, 0, 65536, &a, &why),
                         0);
        buf_t enc = BUF_INIT;
        queue_event_encode(&a, &enc);
        if (queue_event_decode(enc.data, enc.len, NULL, 0, 65536, &b, &why) != 0)
            fail_msg("%s: %s", buf_cstr(&enc), why.detail);
        assert_int_equal(b.kind, a.kind);
        assert_int_equal(b.status, a.status);
        assert_int_equal(b.completed_count, a.completed_count);
        assert_int_equal(b.total_count, a.total_count);
        assert_int_equal(b.timestamp_ms, a.timestamp_ms);
        expect_same_str(b.job_id, a.job_id);
        expect_same_str(b.batch_job_id, a.batch_job_id);
        expect_same_str(b.locale, a.locale);
        expect_same_str(b.user_id, a.user_id);
        expect_same_str(b.message, a.message);
        expect_same_str(b.timestamp, a.timestamp);
        expect_same_str(b.error, a.error);
        expect_same_str(b.previous_status, a.previous_status);
        expect_same_str(b.final_s3_key, a.final_s3_key);
        expect_same_str(b.correlation_id, a.correlation_id);
        expect_same_str(b.traceparent, a.traceparent);
        assert_string_equal(b.envelope, "raw");
        buf_cleanup(&enc);
        queue_event_cleanup(&a);
        queue_event_cleanup(&b);
    }
}

/* heraldctl dlq replay's header names the one device to send to; a bad value is refused. */
static void test_replay_device_header(void **state)
{
    (void)state;
    const char *v = "{\"jobId\":\"j\",\"userId\":\"u\",\"status\":\"FAILED\"}";
    queue_header_t h[] = {{"herald-replay-device", "FAILED:d", 8}};
    queue_event_t ev;
    queue_dec_error_t why;
    assert_int_equal(queue_event_decode(v, strlen(v), h, 1, 1024, &ev, &why), 0);
    assert_string_equal(ev.replay_device, "FAILED:d");
    queue_event_cleanup(&ev);
    assert_int_equal(queue_event_decode(v, strlen(v), NULL, 0, 1024, &ev, &why), 0);
    assert_null(ev.replay_device);
    queue_event_cleanup(&ev);
    h[0] = (queue_header_t){"herald-replay-device", "bad\x01", 4};
    assert_int_equal(queue_event_decode(v, strlen(v), h, 1, 1024, &ev, &why), -1);
    assert_int_equal(why.reason, QUEUE_DEC_BAD_FIELD);
    assert_string_equal(why.field, "herald-replay-device");
}

/* Text is cut on a UTF-8 boundary: 1023 ASCII bytes then a 2-byte character leaves 1023. */
static void test_utf8_cut(void **state)
{
    (void)state;
    char v[2200];
    int n = snprintf(v, sizeof v,
                     "{\"jobId\":\"j\",\"userId\":\"u\",\"status\":\"FAILED\",\"message\":\"");
    memset(v + n, 'a', 1023);
    n += 1023;
    n += snprintf(v + n, sizeof v - (size_t)n, "\xc3\xa9zz\"}");
    queue_event_t ev;
    queue_dec_error_t why;
    assert_int_equal(queue_event_decode(v, (size_t)n, NULL, 0, 65536, &ev, &why), 0);
    assert_int_equal(strlen(ev.message), 1023);
    assert_true(ev.truncated);
    queue_event_cleanup(&ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),          cmocka_unit_test(test_paths_agree),
        cmocka_unit_test(test_key_and_names),     cmocka_unit_test(test_utf8_cut),
        cmocka_unit_test(test_encode_round_trip), cmocka_unit_test(test_replay_device_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
