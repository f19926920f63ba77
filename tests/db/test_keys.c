/* test_keys.c - the Redis key schema (db/keys.h): the spelling of every key family, the parts
 * scripts get (stem, head, tail), the longest inputs fitting KEY_MAX whole, and an over-long
 * input aborting rather than being cut short. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "db/keys.h"

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef size_t (*key_fn)(char out[KEY_MAX], const char *prefix, const char *id);

/* The families keyed by one id: builder, family, what surrounds the id, the id's limit. */
static const struct one_id {
    key_fn build;
    key_family_t family;
    const char *stem, *tail;
    size_t max;
} one_ids[] = {
    {key_dev, KEY_DEV, "dev:{", "}", KEY_USER_MAX},
    {key_lock, KEY_LOCK, "lock:", "", KEY_NAME_MAX},
    {key_trace, KEY_TRACE, "trace:j:", "", KEY_JOB_MAX},
    {key_job, KEY_JOB, "job:", "", KEY_JOB_MAX},
    {key_trace_user, KEY_TRACE_USER, "trace:u:{", "}", KEY_USER_MAX},
    {key_rl_user, KEY_RL_USER, "rl:u:{", "}", KEY_USER_MAX},
    {key_rl_ip, KEY_RL_IP, "rl:ip:", "", KEY_IP_MAX},
    {key_expo_rate, KEY_EXPO_RATE, "expo:rate:", "", KEY_NAME_MAX},
};
#define N_ONE_IDS (sizeof one_ids / sizeof one_ids[0])

static void expect_key(size_t len, const char *key, const char *want)
{
    assert_string_equal(key, want);
    assert_int_equal(len, strlen(want));
}

static void test_spelling(void **state)
{
    (void)state;
    char k[KEY_MAX];
    const char *p = "herald:";
    expect_key(key_dev(k, p, "u1"), k, "herald:dev:{u1}");
    char want[KEY_MAX];
    unsigned b = key_token_bucket("ExponentPushToken[x]");
    snprintf(want, sizeof want, "herald:owner:{t%u}:ExponentPushToken[x]", b);
    expect_key(key_owner(k, p, "ExponentPushToken[x]"), k, want);
    expect_key(key_expiry(k, p, 7), k, "herald:expiry:{t7}");
    expect_key(key_expiry_legacy(k, p), k, "herald:expiry");
    expect_key(key_expiry(k, p, KEY_TOKEN_BUCKETS - 1), k, "herald:expiry:{t1023}");
    expect_key(key_lock(k, p, "sweep"), k, "herald:lock:sweep");
    expect_key(key_ledger(k, p, "u1", "job1:COMPLETED"), k, "herald:led:2:{u1}:job1:COMPLETED");
    expect_key(key_trace(k, p, "job1"), k, "herald:trace:j:job1");
    expect_key(key_job(k, p, "job1"), k, "herald:job:job1");
    expect_key(key_trace_user(k, p, "u1"), k, "herald:trace:u:{u1}");
    expect_key(key_trace_device(k, p, "u1", "d1"), k, "herald:trace:d:2:{u1}:d1");
    expect_key(key_trace_device(k, p, "", "d1"), k, "herald:trace:d:0:{}:d1");
    expect_key(key_rq(k, p, 7), k, "herald:rq:{7}");
    expect_key(key_rq_check(k, p, 15, "t-1"), k, "herald:rq:{15}:t-1");
    expect_key(key_rl_user(k, p, "u1"), k, "herald:rl:u:{u1}");
    expect_key(key_rl_ip(k, p, "10.0.0.1"), k, "herald:rl:ip:10.0.0.1");
    expect_key(key_expo_rate(k, p, "@owner/slug"), k, "herald:expo:rate:@owner/slug");
    expect_key(key_dev(k, "x", "u1"), k, "xdev:{u1}");
}

/* What scripts get: the stem (SCAN, per-id keys), and head + id + tail == the builder's key. */
static void test_stems_heads_tails(void **state)
{
    (void)state;
    char k[KEY_MAX], want[2 * KEY_MAX];
    expect_key(key_stem(k, "p:", KEY_DEV), k, "p:dev:");
    expect_key(key_stem(k, "p:", KEY_LEDGER), k, "p:led:");
    expect_key(key_stem(k, "p:", KEY_RQ), k, "p:rq:");
    expect_key(key_stem(k, "p:", KEY_EXPIRY), k, "p:expiry:");
    expect_key(key_head(k, "p:", KEY_OWNER), k, "p:owner:{t");
    assert_string_equal(key_tail(KEY_OWNER), "}:");
    expect_key(key_head(k, "p:", KEY_EXPIRY), k, "p:expiry:{t");
    assert_string_equal(key_tail(KEY_EXPIRY), "}");
    /* The scripts' one argument for the token families: four netstrings. */
    char parts[KEY_PARTS_MAX];
    expect_key(key_token_parts(parts, "p:"), parts, "10:p:owner:{t2:}:11:p:expiry:{t1:}");
    expect_key(key_instances(k, "p:"), k, "p:instances");
    expect_key(key_stem(k, "p:", KEY_TRACE_DEVICE), k, "p:trace:d:");
    for (size_t i = 0; i < N_ONE_IDS; i++) {
        const struct one_id *f = &one_ids[i];
        key_stem(k, "p:", f->family);
        assert_int_equal(strncmp(k, "p:", 2), 0);
        assert_int_equal(strncmp(k + 2, f->stem, strlen(k + 2)), 0);
        size_t hl = key_head(k, "p:", f->family);
        snprintf(want, sizeof want, "p:%s", f->stem);
        expect_key(hl, k, want);
        assert_string_equal(key_tail(f->family), f->tail);
        char built[KEY_MAX];
        size_t bl = f->build(built, "p:", "id-7");
        snprintf(want, sizeof want, "%sid-7%s", k, key_tail(f->family));
        expect_key(bl, built, want);
    }
}

/* The longest prefix with the longest ids: the whole key, nothing cut. */
static void test_longest_inputs_fit(void **state)
{
    (void)state;
    char prefix[KEY_PREFIX_MAX + 1], id[KEY_MAX], dev[KEY_DEVICE_MAX + 1];
    char k[KEY_MAX], want[2 * KEY_MAX];
    memset(prefix, 'p', KEY_PREFIX_MAX);
    prefix[KEY_PREFIX_MAX] = '\0';
    for (size_t i = 0; i < N_ONE_IDS; i++) {
        const struct one_id *f = &one_ids[i];
        memset(id, 'a' + (int)i, f->max);
        id[f->max] = '\0';
        size_t len = f->build(k, prefix, id);
        snprintf(want, sizeof want, "%s%s%s%s", prefix, f->stem, id, f->tail);
        expect_key(len, k, want);
        assert_true(len < KEY_MAX);
    }
    memset(id, 'e', KEY_EVENT_MAX);
    id[KEY_EVENT_MAX] = '\0';
    memset(dev, 'd', KEY_DEVICE_MAX);
    dev[KEY_DEVICE_MAX] = '\0';
    char user[KEY_USER_MAX + 1];
    memset(user, 'u', KEY_USER_MAX);
    user[KEY_USER_MAX] = '\0';
    size_t len = key_ledger(k, prefix, user, id);
    snprintf(want, sizeof want, "%sled:%d:{%s}:%s", prefix, KEY_USER_MAX, user, id);
    expect_key(len, k, want);
    assert_true(len < KEY_MAX);
    memset(id, 'u', KEY_USER_MAX);
    id[KEY_USER_MAX] = '\0';
    len = key_trace_device(k, prefix, id, dev);
    snprintf(want, sizeof want, "%strace:d:%d:{%s}:%s", prefix, KEY_USER_MAX, id, dev);
    expect_key(len, k, want);
    assert_true(len < KEY_MAX);
    snprintf(want, sizeof want, "%sexpiry:{t1023}", prefix);
    expect_key(key_expiry(k, prefix, 1023), k, want);
    memset(id, 't', KEY_TOKEN_MAX);
    id[KEY_TOKEN_MAX] = '\0';
    len = key_owner(k, prefix, id);
    snprintf(want, sizeof want, "%sowner:{t%u}:%s", prefix, key_token_bucket(id), id);
    expect_key(len, k, want);
    char parts[KEY_PARTS_MAX];
    assert_true(key_token_parts(parts, prefix) < KEY_PARTS_MAX);
    memset(id, 't', KEY_TICKET_MAX);
    id[KEY_TICKET_MAX] = '\0';
    len = key_rq_check(k, prefix, 15, id);
    snprintf(want, sizeof want, "%srq:{15}:%s", prefix, id);
    expect_key(len, k, want);
}

/* The hash tag Redis Cluster would hash: between the first '{' and the next '}', if not empty. */
static void hash_tag(const char *key, char *out, size_t outlen)
{
    const char *open = strchr(key, '{');
    const char *close = open ? strchr(open + 1, '}') : NULL;
    if (close == NULL || close == open + 1)
        snprintf(out, outlen, "%s", key);
    else
        snprintf(out, outlen, "%.*s", (int)(close - open - 1), open + 1);
}

/* The three trace families used to share "trace:": the job id "user:alice" was alice's index
 * and a device id was every user's. Now each has its own stem, and the device index is the
 * user's: no two (user, device) pairs share a key whatever ':' '{' '}' the ids hold. */
static void test_trace_families_distinct(void **state)
{
    (void)state;
    static const char *const ids[] = {"a",    "c",      "y",      "alice", "user:alice", "a}:b",
                                      "b}:c", "a}:6:x", "x}:1:y", "1:{a",  "{a}",        "}",
                                      "{",    ":",      "",       "1:{a}", "a}:c"};
    enum { N = sizeof ids / sizeof ids[0] };
    static char keys[2 * N + N * N][KEY_MAX];
    size_t n = 0;
    char dev[KEY_MAX], want[KEY_MAX], tag[KEY_MAX];
    for (size_t i = 0; i < N; i++) {
        /* The user's keys hash alike (unless the tag is empty: "" or an id opening with '}'). */
        bool tagged = ids[i][0] != '\0' && ids[i][0] != '}';
        key_dev(dev, "p:", ids[i]);
        hash_tag(dev, want, sizeof want);
        key_trace(keys[n++], "p:", ids[i]);
        key_trace_user(keys[n++], "p:", ids[i]);
        hash_tag(keys[n - 1], tag, sizeof tag);
        if (tagged)
            assert_string_equal(tag, want);
        for (size_t j = 0; j < N; j++) {
            key_trace_device(keys[n++], "p:", ids[i], ids[j]);
            hash_tag(keys[n - 1], tag, sizeof tag);
            if (tagged)
                assert_string_equal(tag, want);
        }
    }
    for (size_t a = 0; a < n; a++)
        for (size_t b = a + 1; b < n; b++)
            if (strcmp(keys[a], keys[b]) == 0)
                fail_msg("two trace keys are one: %s", keys[a]);
}

/* Issue 10 item 4: with sent:<event>:<device>, job "X:COMPLETED" FAILED for device "d" and job
 * "X" COMPLETED for device "FAILED:d" shared one mark, and so did two users' devices of one id.
 * Now a mark is the field "s:<device>" of the (user, event) ledger entry: every pair of these
 * (user, event, device) triples, built to collide under some spelling that joins ids with ':' or
 * wraps them in braces, gets its own (key, field). */
static void test_dedup_marks_are_unambiguous(void **state)
{
    (void)state;
    static const char *const t[][3] = {
        {"u", "X:COMPLETED:FAILED", "d"},
        {"u", "X:COMPLETED", "FAILED:d"},
        {"u", "X", "COMPLETED:FAILED:d"},
        {"v", "X:COMPLETED", "FAILED:d"},
        {"u:X", "COMPLETED", "FAILED:d"},
        {"u", "e", "x}:10:1:f:g"},
        {"u}:1:1:e:x", "f", "g"},
        {"u}:1:{u", "e", "d"},
        {"u", "1:{u}:1:e", "d"},
        {"1:{u", "e", "d"},
        {"u}", "e", "d"},
    };
    size_t n = sizeof t / sizeof t[0];
    char a[KEY_MAX], b[KEY_MAX];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            key_ledger(a, "herald:", t[i][0], t[i][1]);
            key_ledger(b, "herald:", t[j][0], t[j][1]);
            if (strcmp(a, b) == 0 && strcmp(t[i][2], t[j][2]) == 0)
                fail_msg("(%s, %s, %s) and (%s, %s, %s) share %s", t[i][0], t[i][1], t[i][2],
                         t[j][0], t[j][1], t[j][2], a);
        }
    }
    /* The user is the hash tag: an event's marks stay together in a cluster. */
    key_ledger(a, "herald:", "u1", "job:COMPLETED");
    assert_non_null(strstr(a, "{u1}"));
}

/* A privacy delete finds a user's dedup marks and device indexes by key_user_head(): it starts
 * every key of that user in the family, and no key of another user, whatever the ids hold. */
static void test_user_heads(void **state)
{
    (void)state;
    static const char *const users[] = {"u", "u}", "u}:1:{u", "1:{u", "uu", "u:", ""};
    static const char *const ids[] = {"d", "x}:2:{u}", ":", "1:{u}:e"};
    size_t nu = sizeof users / sizeof users[0], ni = sizeof ids / sizeof ids[0];
    char head[KEY_MAX], k[KEY_MAX];
    expect_key(key_user_head(head, "herald:", KEY_LEDGER, "u1"), head, "herald:led:2:{u1}:");
    expect_key(key_user_head(head, "p:", KEY_TRACE_DEVICE, "u1"), head, "p:trace:d:2:{u1}:");
    for (size_t i = 0; i < nu; i++) {
        for (size_t j = 0; j < nu; j++) {
            for (size_t a = 0; a < ni; a++) {
                for (size_t b = 0; b < ni; b++) {
                    key_user_head(head, "herald:", KEY_LEDGER, users[i]);
                    key_ledger(k, "herald:", users[j], ids[a]);
                    assert_int_equal(strncmp(k, head, strlen(head)) == 0, i == j);
                    key_user_head(head, "herald:", KEY_TRACE_DEVICE, users[i]);
                    key_trace_device(k, "herald:", users[j], ids[a]);
                    assert_int_equal(strncmp(k, head, strlen(head)) == 0, i == j);
                }
            }
        }
    }
}

/* Runs build(arg) in a child with stderr muted; true when the child died of SIGABRT. */
static bool child_aborts(void (*build)(const void *arg), const void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDERR_FILENO);
        build(arg);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

struct one_key {
    const struct one_id *f; /* NULL: the device index, id "<user>\n<device>" */
    const char *prefix, *id;
};

static void build_one(const void *arg)
{
    const struct one_key *a = arg;
    char k[KEY_MAX], user[2 * KEY_MAX];
    if (a->f) {
        a->f->build(k, a->prefix, a->id);
    } else {
        snprintf(user, sizeof user, "%.*s", (int)strcspn(a->id, "\n"), a->id);
        key_trace_device(k, a->prefix, user, strchr(a->id, '\n') + 1);
    }
}

static bool aborts(const struct one_id *f, const char *prefix, const char *id)
{
    struct one_key a = {f, prefix, id};
    return child_aborts(build_one, &a);
}

struct ledger_key {
    const char *user, *event;
};

static void build_ledger(const void *arg)
{
    const struct ledger_key *a = arg;
    char k[KEY_MAX];
    key_ledger(k, "herald:", a->user, a->event);
}

static bool ledger_aborts(const char *user, const char *event)
{
    struct ledger_key a = {user, event};
    return child_aborts(build_ledger, &a);
}

/* One byte over any limit is a caller's bug: it aborts, it is never silently cut. */
/* A token's owner key and its expiry bucket share one hash tag (one Redis Cluster slot); the
 * buckets are FNV-1a mod 1024 (the Lua twin in tokens/lua/token_keys.lua must agree: the store
 * tests unbind old tokens through it) and spread tokens evenly. */
static void test_token_buckets(void **state)
{
    (void)state;
    char owner[KEY_MAX], expiry[KEY_MAX], a[KEY_MAX], b[KEY_MAX], tok[64];
    assert_int_equal(key_token_bucket(""), 2166136261u % 1024);
    assert_int_equal(key_token_bucket("ExponentPushToken[x]"), 239u);
    unsigned counts[KEY_TOKEN_BUCKETS] = {0};
    for (int i = 0; i < 64 * KEY_TOKEN_BUCKETS; i++) {
        snprintf(tok, sizeof tok, "ExponentPushToken[%022d]", i * 7919);
        unsigned k = key_token_bucket(tok);
        assert_true(k < KEY_TOKEN_BUCKETS);
        counts[k]++;
        key_owner(owner, "herald:", tok);
        key_expiry(expiry, "herald:", k);
        hash_tag(owner, a, sizeof a);
        hash_tag(expiry, b, sizeof b);
        assert_string_equal(a, b);
    }
    for (unsigned k = 0; k < KEY_TOKEN_BUCKETS; k++)
        assert_true(counts[k] > 16 && counts[k] < 160); /* 64 expected */
}

static void test_overlong_aborts(void **state)
{
    (void)state;
    char prefix[KEY_PREFIX_MAX + 2], id[KEY_MAX];
    memset(prefix, 'p', sizeof prefix - 1);
    prefix[KEY_PREFIX_MAX] = '\0';
    for (size_t i = 0; i < N_ONE_IDS; i++) {
        const struct one_id *f = &one_ids[i];
        memset(id, 'a', f->max + 1);
        id[f->max] = '\0';
        assert_false(aborts(f, prefix, id)); /* at the limit: fine */
        id[f->max] = 'a';
        id[f->max + 1] = '\0';
        assert_true(aborts(f, prefix, id));
    }
    /* The device index (f == NULL): "<user>\n<device>", each at and one over its limit. */
    char ud[2 * KEY_MAX];
    for (int over = 0; over < 4; over++) {
        size_t ul = KEY_USER_MAX + (over & 1), dl = KEY_DEVICE_MAX + (over >> 1);
        memset(ud, 'u', ul);
        ud[ul] = '\n';
        memset(ud + ul + 1, 'd', dl);
        ud[ul + 1 + dl] = '\0';
        assert_true(aborts(NULL, prefix, ud) == (over != 0));
    }
    prefix[KEY_PREFIX_MAX] = 'p';
    prefix[KEY_PREFIX_MAX + 1] = '\0';
    assert_true(aborts(&one_ids[0], prefix, "u1"));
    /* The ledger entry's two ids, each one byte over. */
    char user[KEY_USER_MAX + 2], event[KEY_EVENT_MAX + 2];
    memset(user, 'u', sizeof user - 1);
    user[sizeof user - 1] = '\0';
    memset(event, 'e', sizeof event - 1);
    event[sizeof event - 1] = '\0';
    assert_true(ledger_aborts(user, "e"));
    assert_true(ledger_aborts("u", event));
    user[KEY_USER_MAX] = event[KEY_EVENT_MAX] = '\0';
    assert_false(ledger_aborts(user, event));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spelling),
        cmocka_unit_test(test_stems_heads_tails),
        cmocka_unit_test(test_trace_families_distinct),
        cmocka_unit_test(test_longest_inputs_fit),
        cmocka_unit_test(test_overlong_aborts),
        cmocka_unit_test(test_dedup_marks_are_unambiguous),
        cmocka_unit_test(test_user_heads),
        cmocka_unit_test(test_token_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
