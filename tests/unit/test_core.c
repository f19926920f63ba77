/* test_core.c - buffers, JSON escaping, logging redaction, metrics rendering, backoff, clock,
 * language tags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/backoff.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/langtag.h"
#include "core/log.h"
#include "core/metrics.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void test_buf_json(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_json_str(&b, "a\"b\\c\n\x01", 7);
    assert_string_equal(buf_cstr(&b), "\"a\\\"b\\\\c\\n\\u0001\"");
    buf_reset(&b);
    buf_json_str(&b, "\r\t\0\x7f\x1f/", 6); /* NUL is escaped, not an end */
    assert_string_equal(buf_cstr(&b), "\"\\r\\t\\u0000\\u007f\\u001f/\"");
    buf_reset(&b);
    buf_fill(&b, 'z', 3);
    buf_fill(&b, 'y', 0);
    assert_string_equal(buf_cstr(&b), "zzz");
    buf_reset(&b);
    buf_printf(&b, "%d-%s", 42, "x");
    assert_string_equal(buf_cstr(&b), "42-x");
    char *s = buf_steal(&b);
    assert_string_equal(s, "42-x");
    free(s);
    assert_null(b.data);
}

/* The escaping DESIGN.md promises, byte by byte: the writer's table against this spelled-out rule.
 */
static void ref_json_str(buf_t *b, const unsigned char *s, size_t n)
{
    buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (c == '"' || c == '\\')
            buf_printf(b, "\\%c", c);
        else if (c == '\n')
            buf_puts(b, "\\n");
        else if (c == '\r')
            buf_puts(b, "\\r");
        else if (c == '\t')
            buf_puts(b, "\\t");
        else if (c < 0x20 || c == 0x7f)
            buf_printf(b, "\\u%04x", c);
        else
            buf_putc(b, (char)c);
    }
    buf_putc(b, '"');
}

static void test_json_writer(void **state)
{
    (void)state;
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    buf_t got = BUF_INIT, want = BUF_INIT;
    /* every byte, at every offset into a run of plain text (runs split at any point) */
    for (size_t off = 0; off < 40; off++) {
        unsigned char in[300] = {0};
        memset(in, 'a', off);
        memcpy(in + off, all, 256);
        buf_reset(&got);
        buf_reset(&want);
        buf_json_str(&got, (const char *)in, off + 256);
        ref_json_str(&want, in, off + 256);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.data, want.data, want.len);
        assert_int_equal(got.data[got.len], '\0');
        /* the NUL-terminated form: every byte but NUL, read up to the NUL */
        in[off + 256] = '\0';
        buf_reset(&got);
        buf_reset(&want);
        buf_json_cstr(&got, (const char *)in + off + 1);
        buf_json_str(&want, (const char *)in + off + 1, 255);
        assert_string_equal(buf_cstr(&got), buf_cstr(&want));
        buf_reset(&got);
        buf_json_cstr(&got, (const char *)in); /* in[off] is NUL: the text before it */
        buf_reset(&want);
        ref_json_str(&want, in, off);
        assert_string_equal(buf_cstr(&got), buf_cstr(&want));
    }
    /* non-ASCII UTF-8 goes out as is; the empty string */
    buf_reset(&got);
    const char *utf8 = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x94\x94";
    buf_json_str(&got, utf8, strlen(utf8));
    assert_string_equal(buf_cstr(&got), "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x94\x94\"");
    buf_reset(&got);
    buf_json_str(&got, "", 0);
    assert_string_equal(buf_cstr(&got), "\"\"");
    /* a long string grows the buffer several times within one call */
    size_t big = 1u << 20;
    char *in = malloc(big);
    for (size_t i = 0; i < big; i++)
        in[i] = i % 1000 == 999 ? '\n' : 'x';
    buf_t fresh = BUF_INIT;
    buf_json_str(&fresh, in, big);
    assert_int_equal(fresh.len, big + 2 + big / 1000);
    assert_int_equal(strlen(fresh.data), fresh.len);
    buf_cleanup(&fresh);
    free(in);
    buf_cleanup(&got);
    buf_cleanup(&want);
}

static void test_number_writer(void **state)
{
    (void)state;
    const long long cases[] = {0,
                               1,
                               -1,
                               9,
                               10,
                               -10,
                               99,
                               100,
                               123456789,
                               -987654321,
                               2147483647,
                               -2147483648LL,
                               4294967296,
                               LLONG_MAX,
                               LLONG_MIN,
                               LLONG_MIN + 1,
                               1000000000000000000LL};
    char got[BUF_NUM_MAX], want[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(want, sizeof want, "%lld", cases[i]);
        assert_int_equal(buf_fmt_i64(got, cases[i]), strlen(want));
        assert_string_equal(got, want);
    }
    assert_int_equal(buf_fmt_u64(got, ULLONG_MAX), 20);
    assert_string_equal(got, "18446744073709551615");
    uint64_t x = 88172645463325252u; /* xorshift: numbers of every length */
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned long long v = x >> (i % 64);
        snprintf(want, sizeof want, "%llu", v);
        buf_fmt_u64(got, v);
        assert_string_equal(got, want);
        snprintf(want, sizeof want, "%lld", (long long)v);
        buf_fmt_i64(got, (long long)v);
        assert_string_equal(got, want);
    }
    buf_t b = BUF_INIT;
    buf_puts(&b, "n=");
    buf_put_i64(&b, -42);
    buf_putc(&b, ',');
    buf_put_u64(&b, 42);
    assert_string_equal(buf_cstr(&b), "n=-42,42");
    buf_cleanup(&b);
}

static void test_log_redacts_tokens(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    log_set_fd(fds[1]);
    LOG(LOG_LVL_INFO, "sent", LKT("token", "ExponentPushToken[abcdefghijklmnop]"), LKI("n", 3),
        LKS("s", "q\"t"));
    LOG(LOG_LVL_DEBUG, "hidden", LKI("n", 1)); /* below the default level */
    log_set_fd(2);
    close(fds[1]);
    char out[1024] = {0};
    ssize_t n = read(fds[0], out, sizeof out - 1);
    close(fds[0]);
    assert_true(n > 0);
    assert_null(strstr(out, "abcdefghij"));
    assert_non_null(strstr(out, "\"token\":\"…lmnop]\""));
    assert_non_null(strstr(out, "\"level\":\"info\",\"msg\":\"sent\""));
    assert_non_null(strstr(out, "\"n\":3"));
    assert_non_null(strstr(out, "\"s\":\"q\\\"t\""));
    assert_null(strstr(out, "hidden"));
}

static void test_metrics_render(void **state)
{
    (void)state;
    metric_reg_t *r = metric_reg_create();
    metric_fam_t *c = metric_counter_new(r, "herald_requests_total", "Requests.", "route,status");
    metric_inc(metric_get(c, "/v1/device-tokens", "201"));
    metric_add(metric_get(c, "/v1/device-tokens", "201"), 2);
    metric_inc(metric_get(c, "x\"y", "404"));
    double b[] = {0.01, 0.1};
    metric_fam_t *h = metric_histogram_new(r, "lat_seconds", "Latency.", NULL, b, 2);
    metric_observe(metric_get(h), 0.005);
    metric_observe(metric_get(h), 0.05);
    metric_observe(metric_get(h), 5);
    buf_t out = BUF_INIT;
    metric_render(r, &out);
    const char *s = buf_cstr(&out);
    assert_non_null(strstr(s, "# TYPE herald_requests_total counter\n"));
    assert_non_null(
        strstr(s, "herald_requests_total{route=\"/v1/device-tokens\",status=\"201\"} 3\n"));
    assert_non_null(strstr(s, "herald_requests_total{route=\"x\\\"y\",status=\"404\"} 1\n"));
    assert_non_null(strstr(s, "lat_seconds_bucket{le=\"0.01\"} 1\n"));
    assert_non_null(strstr(s, "lat_seconds_bucket{le=\"0.1\"} 2\n"));
    assert_non_null(strstr(s, "lat_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(s, "lat_seconds_count 3\n"));
    buf_cleanup(&out);
    metric_reg_destroy(r);
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(backoff_ceiling(0, 1000, 60000), 1000);
    assert_int_equal(backoff_ceiling(3, 1000, 60000), 8000);
    assert_int_equal(backoff_ceiling(10, 1000, 60000), 60000);
    assert_int_equal(backoff_ceiling(200, 1000, 60000), 60000);
    for (uint64_t r = 0; r < 100000; r += 997)
        assert_true(backoff_full_jitter(2, 1000, 60000, r * 7919u) <= 4000);
}

static void test_clock(void **state)
{
    (void)state;
    char s[40];
    clk_iso8601_ms(1764018245123, s, sizeof s);
    assert_string_equal(s, "2025-11-24T21:04:05.123Z");
    /* the hand-written digits against gmtime_r + snprintf: epoch, leap days, century rules,
     * the last instant of 9999 and the libc paths on either side */
    const int64_t edges[] = {0,
                             999,
                             86399999,
                             951782400000,  /* 2000-02-29 */
                             4107542399999, /* 2100-02-28T23:59:59.999 */
                             4107542400000, /* 2100-03-01 */
                             253402300799999,
                             253402300800000,
                             -1,
                             -86400001};
    uint64_t x = 2463534242u;
    for (int i = 0; i < 20000 + (int)(sizeof edges / sizeof edges[0]); i++) {
        int64_t ms;
        if (i < (int)(sizeof edges / sizeof edges[0])) {
            ms = edges[i];
        } else {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            ms = (int64_t)(x % 253402300800000u);
        }
        time_t sec = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&sec, &tm);
        char want[64];
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
        clk_iso8601_ms(ms, s, sizeof s);
        assert_string_equal(s, want);
    }
    clk_iso8601_ms(1764018245123, s, 10); /* a short buffer: cut, still terminated */
    assert_string_equal(s, "2025-11-2");
    int64_t ms;
    assert_int_equal(clk_parse_iso8601("2025-11-24T21:04:05.123Z", &ms), 0);
    assert_int_equal(ms, 1764018245123);
    assert_int_equal(clk_parse_iso8601("2025-11-24T21:04:05Z", &ms), 0);
    assert_int_equal(ms, 1764018245000);
    assert_int_equal(clk_parse_iso8601("2025-13-24T21:04:05Z", &ms), -1);
    assert_int_equal(clk_parse_iso8601("yesterday", &ms), -1);
    clk_fake_t f;
    clk_fake_init(&f, 5000);
    clk_fake_advance(&f, 250);
    assert_int_equal(f.clk.wall_ms(f.clk.arg), 5250);
}

static void test_file_reads(void **state)
{
    (void)state;
    char path[] = "/tmp/herald-core-file-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "pass\r\n", 6), 6);
    close(fd);
    char *s, err[256];
    size_t n;
    assert_int_equal(file_read_secret(path, 64, &s, &n, err, sizeof err), 0);
    assert_int_equal(n, 4);
    assert_string_equal(s, "pass");
    free(s);
    assert_int_equal(file_read(path, 6, &s, &n, err, sizeof err), 0);
    assert_int_equal(n, 6);
    free(s);
    assert_int_equal(file_read(path, 5, &s, &n, err, sizeof err), -2);
    assert_non_null(strstr(err, "larger than 5 bytes"));
    assert_int_equal(file_read_secret(path, 3, &s, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "secret longer than 3 bytes"));
    unlink(path);
    assert_int_equal(file_read_secret(path, 64, &s, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "No such file"));
}

/* Valid tags with their canonical case, then tags that are not well-formed BCP 47. */
static void test_lang_tags(void **state)
{
    (void)state;
    static const char *const good[][2] = {
        {"fr", "fr"},
        {"pt-BR", "pt-BR"},
        {"PT-br", "pt-BR"},
        {"zh-hant-tw", "zh-Hant-TW"},
        {"es-419", "es-419"},
        {"sr-Latn-RS", "sr-Latn-RS"},
        {"zh-yue-HK", "zh-yue-HK"},
        {"de-CH-1996", "de-CH-1996"},
        {"sl-rozaj-biske", "sl-rozaj-biske"},
        {"de-DE-u-co-phonebk", "de-DE-u-co-phonebk"},
        {"en-US-x-Twain", "en-US-x-twain"},
        {"en-a-bbb-x-a-ccc", "en-a-bbb-x-a-ccc"},
        {"haw", "haw"},
    };
    static const char *const bad[] = {"",
                                      "e",
                                      "pt_BR",
                                      "pt-",
                                      "-pt",
                                      "pt--BR",
                                      "123",
                                      "x-private",
                                      "en-US-",
                                      "toolonglang",
                                      "en-a",
                                      "en-a-b",
                                      "en-a-bb-a-cc",
                                      "en-x",
                                      "fr-FRA-x",
                                      "en-US-abcdefghi",
                                      "fr é",
                                      "en-US-u-co-phonebk-ka-shifted-kb-true" /* 36 bytes */,
                                      "en-Latn-Latn",
                                      "de-DE-DE"};
    char out[LANG_TAG_MAX + 1];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        memset(out, 0, sizeof out);
        if (lang_tag_parse(good[i][0], strlen(good[i][0]), out) != 0)
            fail_msg("%s should be valid", good[i][0]);
        assert_string_equal(out, good[i][1]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (lang_tag_parse(bad[i], strlen(bad[i]), NULL) == 0)
            fail_msg("\"%s\" should be refused", bad[i]);
    assert_int_equal(lang_tag_parse("fr-CA", 2, out), 0); /* a prefix of the buffer */
    assert_string_equal(out, "fr");
    char t[LANG_TAG_MAX + 1] = "zh-Hant-TW";
    assert_int_equal(lang_tag_parent(t), 0);
    assert_string_equal(t, "zh-Hant");
    assert_int_equal(lang_tag_parent(t), 0);
    assert_string_equal(t, "zh");
    assert_int_equal(lang_tag_parent(t), -1);
    snprintf(t, sizeof t, "de-DE-x-ab");
    assert_int_equal(lang_tag_parent(t), 0);
    assert_string_equal(t, "de-DE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_json),       cmocka_unit_test(test_json_writer),
        cmocka_unit_test(test_number_writer),  cmocka_unit_test(test_log_redacts_tokens),
        cmocka_unit_test(test_metrics_render), cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_clock),          cmocka_unit_test(test_file_reads),
        cmocka_unit_test(test_lang_tags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
