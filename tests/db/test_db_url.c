/* test_db_url.c - the Redis URL parser: accepted forms, defaults, percent-decoding, and precise
 * rejection of malformed, oversized and unsupported URLs; and the redaction (core/redact.h) that
 * every output applies to a Redis URL: the password is gone, the address is intact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/redact.h"
#include "db/url.h"

#include <string.h>

static void test_accepts(void **state)
{
    (void)state;
    db_url_t u;
    char err[256];
    assert_int_equal(db_url_parse("redis://127.0.0.1:6380/2", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.dbnum, 2);
    assert_string_equal(u.password, "");

    assert_int_equal(db_url_parse("redis://localhost", &u, err, sizeof err), 0);
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.dbnum, 0);

    assert_int_equal(db_url_parse("redis://:p%40ss@h:1/", &u, err, sizeof err), 0);
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.user, "");
    assert_string_equal(u.host, "h");

    assert_int_equal(db_url_parse("redis://alice:a@b@h", &u, err, sizeof err), 0);
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.password, "a@b");

    assert_int_equal(db_url_parse("redis://[::1]:7000/15", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.dbnum, 15);

    assert_int_equal(db_url_parse("unix:///run/redis.sock?db=4", &u, err, sizeof err), 0);
    assert_string_equal(u.path, "/run/redis.sock");
    assert_int_equal(u.dbnum, 4);
    assert_string_equal(u.host, "");
}

static void rejects(const char *url, const char *why)
{
    db_url_t u;
    char err[256] = "";
    assert_int_equal(db_url_parse(url, &u, err, sizeof err), -1);
    assert_non_null(strstr(err, why));
    assert_string_equal(u.password, ""); /* nothing half-parsed is left behind */
}

static void test_rejects(void **state)
{
    (void)state;
    rejects("", "empty");
    rejects("http://h", "expected redis://");
    rejects("rediss://h", "expected redis://");
    rejects("redis://", "host");
    rejects("redis://h:0", "port");
    rejects("redis://h:65536", "port");
    rejects("redis://h:12x", "port");
    rejects("redis://h/abc", "database number");
    rejects("redis://h/99999999999", "database number");
    rejects("redis://h?x=1", "database number");
    rejects("redis://:p%4@h", "password");
    rejects("redis://:p%00@h", "password");
    rejects("redis://h o", "space");
    rejects("redis://h\x01", "control");
    rejects("redis://[::1", "IPv6");
    rejects("redis://h!st", "bad character");
    rejects("unix://relative.sock", "absolute");
    rejects("unix:///s?password=x", "db=N");
    char big[2048];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "redis://", 8);
    rejects(big, "longer than");
    char pw[400] = "redis://:";
    memset(pw + 9, 'p', 300);
    strcpy(pw + 309, "@h");
    rejects(pw, "password");
    char sock[200] = "unix:///";
    memset(sock + 8, 's', 150);
    rejects(sock, "too long");
}

static void redacts(const char *url, const char *want)
{
    char out[REDACT_URL_MAX];
    assert_string_equal(redact_url(url, out, sizeof out), want);
}

static void test_redact(void **state)
{
    (void)state;
    redacts("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0");
    redacts("redis://alice:s3cret@h:1/2", "redis://alice:***@h:1/2");
    redacts("redis://alice:a@b@h", "redis://alice:***@h"); /* the last '@' ends the userinfo */
    redacts("redis://:p%40ss@[::1]:7000/15", "redis://:***@[::1]:7000/15");
    redacts("redis://s3cret@h", "redis://***@h");      /* a lone userinfo may be a password */
    redacts("redis://:pa/ss?x#y@h", "redis://:***@h"); /* malformed: still hidden */
    redacts("rediss://:s3cret@h", "rediss://:***@h");
    redacts(":s3cret@h:6379", ":***@h:6379"); /* no scheme */
    redacts("https://u:tok@exp.host/x", "https://u:***@exp.host/x");
    redacts("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0");
    redacts("unix:///run/redis.sock?db=4", "unix:///run/redis.sock?db=4");
    redacts("", "");
    redacts(NULL, "");
    char small[12];
    assert_string_equal(redact_url("redis://:s3cret@h", small, sizeof small), "redis://:**");
    char big[1500] = "redis://:";
    memset(big + 9, 'p', 1200);
    strcpy(big + 1209, "@h");
    assert_string_equal(REDACT_URL(big), "redis://:***@h");
}

/* A redacted URL still names the same server, user and database, and no password survives. */
static void test_redact_keeps_address(void **state)
{
    (void)state;
    static const char *const urls[] = {
        "redis://:s3cret@127.0.0.1:6379/0", "redis://alice:s3cret@h.example:6380/3",
        "redis://:s3cret@[::1]:7000/15",    "redis://default:s3%2Fcret@cache-1",
        "redis://alice:s3cret@b@h:1",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        db_url_t a, b;
        char err[256];
        const char *r = REDACT_URL(urls[i]);
        assert_int_equal(db_url_parse(urls[i], &a, err, sizeof err), 0);
        assert_int_equal(db_url_parse(r, &b, err, sizeof err), 0);
        assert_null(strstr(r, "s3"));
        assert_string_equal(a.host, b.host);
        assert_int_equal(a.port, b.port);
        assert_string_equal(a.user, b.user);
        assert_int_equal(a.dbnum, b.dbnum);
        assert_string_equal(b.password, "***");
    }
}

/* The parser's own errors never echo the URL, so they need no redaction. */
static void test_errors_never_echo(void **state)
{
    (void)state;
    static const char *const bad[] = {"redis://:s3cret@h:0", "redis://:s3cret@h/x",
                                      "redis://:s3cret%4@h", "redis://:s3cret@h!st",
                                      "rediss://:s3cret@h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        db_url_t u;
        char err[256] = "";
        assert_int_equal(db_url_parse(bad[i], &u, err, sizeof err), -1);
        assert_null(strstr(err, "s3cret"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_redact_keeps_address),
        cmocka_unit_test(test_errors_never_echo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
