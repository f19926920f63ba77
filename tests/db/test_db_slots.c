/* test_db_slots.c - the pure parts of cluster routing (db/slots.c) on fixed inputs: CLUSTER
 * SLOTS replies (as RESP, read by hiredis' reader) accepted and rejected precisely, and MOVED/ASK
 * error texts. The slot function itself is checked against a real server in test_db_cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "db/slots.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

static redisReply *resp(const char *text)
{
    redisReader *rd = redisReaderCreate();
    void *rep = NULL;
    assert_int_equal(redisReaderFeed(rd, text, strlen(text)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &rep), REDIS_OK);
    assert_non_null(rep);
    redisReaderFree(rd);
    return rep;
}

static int parse(const char *text, db_slot_range_t **r, size_t *n, char *err, size_t errlen)
{
    redisReply *rep = resp(text);
    int rc = db_slots_parse((const db_reply_t *)rep, r, n, err, errlen);
    freeReplyObject(rep);
    return rc;
}

#define NODE(host, port) "*3\r\n$" host "\r\n:" port "\r\n$2\r\nid\r\n"

static void test_slots_ok(void **state)
{
    (void)state;
    db_slot_range_t *r;
    size_t n;
    char err[128];
    /* Overlapping ranges are refused; then out of order, with a replica, an empty host ("the node
     * you asked") and an unknown one ("?": left out, its slot not served). */
    const char *text =
        "*4\r\n"
        "*4\r\n:5461\r\n:10922\r\n" NODE("8\r\n10.0.0.2", "7001")
            NODE("8\r\n10.0.0.5", "7004") "*3\r\n:0\r\n:5460\r\n" NODE(
                "8\r\n10.0.0.1",
                "7000") "*3\r\n:10923\r\n:16383\r\n" NODE("0\r\n", "7002") "*3\r\n:16383\r\n:"
                                                                           "16383\r\n" NODE(
                                                                               "1\r\nb", "7003");
    assert_int_equal(parse(text, &r, &n, err, sizeof err), -1); /* 16383 twice */
    assert_string_equal(err, "bad CLUSTER SLOTS reply: overlapping slot ranges");
    text = "*4\r\n"
           "*4\r\n:5461\r\n:10922\r\n" NODE("8\r\n10.0.0.2", "7001")
               NODE("8\r\n10.0.0.5", "7004") "*3\r\n:0\r\n:5460\r\n" NODE(
                   "8\r\n10.0.0.1",
                   "7000") "*3\r\n:10923\r\n:16382\r\n" NODE("0\r\n", "7002") "*3\r\n:16383\r\n:"
                                                                              "16383\r\n" NODE(
                                                                                  "1\r\n?", "7003");
    assert_int_equal(parse(text, &r, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(r[0].first, 0);
    assert_int_equal(r[0].last, 5460);
    assert_string_equal(r[0].host, "10.0.0.1");
    assert_int_equal(r[0].port, 7000);
    assert_string_equal(r[1].host, "10.0.0.2");
    assert_int_equal(r[2].first, 10923);
    assert_string_equal(r[2].host, "");
    assert_int_equal(r[2].port, 7002);
    free(r);
    assert_int_equal(parse("*0\r\n", &r, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    free(r);
}

static void test_slots_rejected(void **state)
{
    (void)state;
    static const struct {
        const char *text, *error;
    } cases[] = {
        {"$2\r\nno\r\n", "not an array"},
        {"-ERR This instance has cluster support disabled\r\n", "not an array"},
        {"*1\r\n:1\r\n", "an entry is not"},
        {"*1\r\n*2\r\n:0\r\n:1\r\n", "an entry is not"},
        {"*1\r\n*3\r\n:0\r\n:16384\r\n" NODE("1\r\na", "1"), "slot range out of bounds"},
        {"*1\r\n*3\r\n:5\r\n:4\r\n" NODE("1\r\na", "1"), "slot range out of bounds"},
        {"*1\r\n*3\r\n:-1\r\n:4\r\n" NODE("1\r\na", "1"), "slot range out of bounds"},
        {"*1\r\n*3\r\n$1\r\n0\r\n:4\r\n" NODE("1\r\na", "1"), "slot range out of bounds"},
        {"*1\r\n*3\r\n:0\r\n:4\r\n*1\r\n$1\r\na\r\n", "a master is not"},
        {"*1\r\n*3\r\n:0\r\n:4\r\n*2\r\n:1\r\n:1\r\n", "a master is not"},
        {"*1\r\n*3\r\n:0\r\n:4\r\n" NODE("1\r\na", "65536"), "port out of range"},
        {"*1\r\n*3\r\n:0\r\n:4\r\n" NODE("3\r\na b", "1"), "bad host"},
        {"*1\r\n*3\r\n:0\r\n:4\r\n" NODE("3\r\na/b", "1"), "bad host"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        db_slot_range_t *r = (db_slot_range_t *)1;
        size_t n = 1;
        char err[128] = "";
        if (parse(cases[i].text, &r, &n, err, sizeof err) != -1 || !strstr(err, cases[i].error))
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, cases[i].error);
        assert_null(r);
        assert_int_equal(n, 0);
    }
}

static void test_redirects(void **state)
{
    (void)state;
    db_redirect_t rd;
    const char *s = "MOVED 3999 127.0.0.1:6381";
    assert_int_equal(db_redirect_parse(s, strlen(s), &rd), 0);
    assert_false(rd.ask);
    assert_int_equal(rd.slot, 3999);
    assert_string_equal(rd.host, "127.0.0.1");
    assert_int_equal(rd.port, 6381);
    s = "ASK 16383 ::1:7000";
    assert_int_equal(db_redirect_parse(s, strlen(s), &rd), 0);
    assert_true(rd.ask);
    assert_int_equal(rd.slot, 16383);
    assert_string_equal(rd.host, "::1");
    s = "MOVED 0 :7000"; /* Redis leaves the host out when it does not know it */
    assert_int_equal(db_redirect_parse(s, strlen(s), &rd), 0);
    assert_string_equal(rd.host, "");
    assert_int_equal(rd.port, 7000);
    static const char *const bad[] = {
        "MOVED",           "MOVED ",       "MOVED 3999",  "MOVED 16384 h:1",
        "MOVED -1 h:1",    "MOVED 1 h",    "MOVED 1 h:0", "MOVED 1 h:65536",
        "MOVED 1 h:1x",    "MOVED 1  h:1", "ASK 1 h h:1", "moved 1 h:1",
        "ERR MOVED 1 h:1", "TRYAGAIN",     "MOVED 1 h:",  "MOVED 123456 h:1",
        "MOVED 1 h/x:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (db_redirect_parse(bad[i], strlen(bad[i]), &rd) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_ok),
        cmocka_unit_test(test_slots_rejected),
        cmocka_unit_test(test_redirects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
