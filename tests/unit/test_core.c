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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
        cmocka_unit_test(test_buf_json),       cmocka_unit_test(test_log_redacts_tokens),
        cmocka_unit_test(test_metrics_render), cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_clock),          cmocka_unit_test(test_file_reads),
        cmocka_unit_test(test_lang_tags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
