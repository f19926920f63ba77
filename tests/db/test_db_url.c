/* test_db_url.c - the Redis URL parser: accepted forms, defaults, percent-decoding, and precise
 * rejection of malformed, oversized and unsupported URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
