/* test_privacy.c - issue 10 item 10: a privacy delete leaves nothing behind. Real herald, a real
 * redis-server, librdkafka's mock cluster and the Expo simulator: notifications delivered to a
 * user's two devices leave token records, trace lists and indexes, dedup marks, receipt checks and
 * receipt entries; then the API's `DELETE ?deviceId=D&purge=true` and `heraldctl tokens delete
 * --user U` run, and the WHOLE keyspace is read back (every key's name and every value, field or
 * member, any type): nothing may name the device (or the user), its id or its push token, not even
 * the redacted tail of the token the trace keeps, except the rate limiter's keys, which expire
 * within a rate-limit window. Another user's data, including records in a job list both users
 * share, stays as it was.
 *
 * Built twice: test_privacy_cluster (TH_ON_CLUSTER) runs the same cases on a real Redis Cluster
 * (3 + 3 nodes, herald with redis.cluster = true) and reads back every master's keyspace; the
 * case that needs the keyspace sweep is skipped there (see it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/support/harness.h"
#include "tests/support/kafka_harness.h"
#include "tests/support/stack.h"
#include "tests/support/tkeys.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#define SECRET "privacy-test-secret-0123456789abcdef"
#define TOPIC "job-events"
#define PREFIX "herald:"
#define MANY 120 /* more jobs than the trace indexes used to keep (100) */

static th_stack_t stack;
#ifdef TH_ON_CLUSTER
static th_cluster_t cluster;
#endif

/* ---- herald, the simulator, Kafka ---- */

static int setup(void **state)
{
    (void)state;
#ifdef TH_ON_CLUSTER
    stack.cluster = &cluster;
#endif
    if (th_stack_start(&stack, TOPIC, SECRET) != 0)
        return -1;
    /* Receipts are due in an hour: the receipt checks are there to delete. */
    return th_stack_herald(&stack, TOPIC, "herald-privacy-test",
                           "expo.receipt_delay_s = 3600\n"
                           "shutdown.timeout_s = 10\n");
}

static int teardown(void **state)
{
    (void)state;
    return th_stack_stop(&stack);
}

/* One API call as user; returns the status. */
static long api(const char *method, const char *path, const char *user, const char *body)
{
    return th_stack_api(&stack, SECRET, method, user, path, body);
}

static void register_device(const char *user, const char *device, const char *token)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"deviceId\":\"%s\",\"expoPushToken\":\"%s\",\"platform\":\"ios\"}", device, token);
    long st = api("POST", "/v1/device-tokens", user, body);
    if (st != 201 && st != 200)
        fail_msg("register %s/%s: %ld", user, device, st);
}

static void publish_job(const char *user, const char *job)
{
    char ev[512];
    snprintf(ev, sizeof ev, "{\"jobId\":\"%s\",\"userId\":\"%s\",\"status\":\"COMPLETED\"}", job,
             user);
    assert_int_equal(th_kafka_send(TOPIC, NULL, ev, NULL), 0);
}

/* Runs heraldctl with herald's config file; returns the exit code, output in out. */
static int heraldctl(const char *args, char *out, size_t outlen)
{
    return th_stack_ctl(&stack, args, out, outlen);
}

/* ---- waiting for the deliveries to settle ---- */

struct want_completed {
    const char *user, *job;
    size_t n;
};

/* The records of the job's trace that hold both needles. */
static size_t records_with(const char *job, const char *a, const char *b)
{
    char *t = th_stack_trace(&stack, PREFIX, job);
    size_t n = 0;
    char *save = NULL;
    for (char *l = t ? strtok_r(t, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save))
        n += strstr(l, a) && strstr(l, b);
    free(t);
    return n;
}

static bool completed(void *arg)
{
    struct want_completed *w = arg;
    char user[128];
    snprintf(user, sizeof user, "\"userId\":\"%s\"", w->user);
    return records_with(w->job, "\"event\":\"completed\"", user) >= w->n;
}

/* The user's event of the job completed n times: every device's mark is final by then. */
static void wait_completed(const char *user, const char *job, size_t n)
{
    struct want_completed w = {user, job, n};
    if (!th_wait_until(completed, &w, 60000))
        fail_msg("job %s of %s never completed %zu times", job, user, n);
}

/* ---- the keyspace, read back whole ---- */

/* One line per key name ("key") and per element ("key<TAB>element"): string values, hash fields
 * and values, list entries, set and sorted-set members. rl keys are marked "rl". */
typedef struct lines {
    char **v;
    size_t n, cap;
} lines_t;

static void push(lines_t *l, const char *key, const char *a, size_t alen, const char *b,
                 size_t blen)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    size_t kl = strlen(key), len = kl + 2 + alen + 1 + blen + 1;
    char *s = malloc(len);
    memcpy(s, key, kl);
    size_t o = kl;
    if (a) {
        s[o++] = '\t';
        memcpy(s + o, a, alen);
        o += alen;
    }
    if (b) {
        s[o++] = '=';
        memcpy(s + o, b, blen);
        o += blen;
    }
    s[o] = '\0';
    l->v[l->n++] = s;
}

static void lines_free(lines_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static redisReply *cmd(redisContext *c, const char *fmt, const char *key)
{
    redisReply *r = redisCommand(c, fmt, key);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    return r;
}

static void dump_key(redisContext *c, const char *key, lines_t *out)
{
    push(out, key, NULL, 0, NULL, 0);
    redisReply *t = cmd(c, "TYPE %s", key), *v = NULL;
    const char *type = t->str;
    bool pairs = false;
    if (strcmp(type, "string") == 0) {
        v = cmd(c, "GET %s", key);
        push(out, key, v->str, v->len, NULL, 0);
    } else if (strcmp(type, "hash") == 0) {
        v = cmd(c, "HGETALL %s", key);
        pairs = true;
    } else if (strcmp(type, "list") == 0) {
        v = cmd(c, "LRANGE %s 0 -1", key);
    } else if (strcmp(type, "set") == 0) {
        v = cmd(c, "SMEMBERS %s", key);
    } else if (strcmp(type, "zset") == 0) {
        v = cmd(c, "ZRANGE %s 0 -1", key);
    } else if (strcmp(type, "none") != 0) {
        fail_msg("key %s has type %s, which this test cannot read", key, type);
    }
    if (v && v->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < v->elements; i += pairs ? 2 : 1)
            push(out, key, v->element[i]->str, v->element[i]->len,
                 pairs ? v->element[i + 1]->str : NULL, pairs ? v->element[i + 1]->len : 0);
    }
    freeReplyObject(v);
    freeReplyObject(t);
}

/* Every key of one server (SCAN), as lines; keys of the rate limiter must expire. */
static void dump_node(int port, lines_t *out)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    assert_true(c && !c->err);
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s COUNT 1000", cursor);
        assert_true(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *key = r->element[1]->element[i]->str;
            if (strncmp(key, PREFIX "rl:", strlen(PREFIX "rl:")) == 0) {
                redisReply *ttl = cmd(c, "PTTL %s", key);
                if (ttl->integer == -1)
                    fail_msg("rate-limit key %s never expires", key);
                freeReplyObject(ttl);
                continue;
            }
            dump_key(c, key, out);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    redisFree(c);
}

/* Every key of the database: of each master on a cluster. */
static void dump_all(lines_t *out)
{
    if (stack.cluster == NULL) {
        dump_node(stack.redis.port, out);
        return;
    }
    for (int i = 0; i < TH_CLUSTER_NODES; i++) {
        char *role = th_redis_cmd(&stack.cluster->node[i], "ROLE");
        if (role && strncmp(role, "master", 6) == 0)
            dump_node(stack.cluster->node[i].port, out);
        free(role);
    }
}

/* How many lines of the keyspace hold needle. */
static size_t naming(const lines_t *l, const char *needle)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += strstr(l->v[i], needle) != NULL;
    return n;
}

/* Fails with the first few lines that still hold one of the needles. */
static void assert_nothing_names(const char *what, const char *const *needles)
{
    lines_t l = {0};
    dump_all(&l);
    size_t bad = 0;
    for (size_t i = 0; i < l.n; i++)
        for (const char *const *nd = needles; *nd; nd++)
            if (strstr(l.v[i], *nd) && bad++ < 12)
                fprintf(stderr, "after %s, Redis still holds \"%s\": %s\n", what, *nd, l.v[i]);
    lines_free(&l);
    if (bad)
        fail_msg("after %s, %zu key names or values still name what was deleted", what, bad);
}

static int by_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines that hold one of the needles, sorted: another user's data, to compare before and
 * after. */
static void snapshot(const char *const *needles, lines_t *out)
{
    lines_t l = {0};
    dump_all(&l);
    for (size_t i = 0; i < l.n; i++) {
        bool hit = false;
        for (const char *const *nd = needles; *nd; nd++)
            hit |= strstr(l.v[i], *nd) != NULL;
        if (hit)
            push(out, l.v[i], NULL, 0, NULL, 0);
    }
    lines_free(&l);
    qsort(out->v, out->n, sizeof *out->v, by_str);
}

static void assert_same(const lines_t *before, const char *const *needles)
{
    lines_t after = {0};
    snapshot(needles, &after);
    for (size_t i = 0; i < before->n || i < after.n; i++) {
        const char *b = i < before->n ? before->v[i] : "(none)";
        const char *a = i < after.n ? after.v[i] : "(none)";
        if (strcmp(a, b) != 0)
            fail_msg("another user's data changed: had %s, now %s", b, a);
    }
    lines_free(&after);
}

/* How many tickets of the receipt checks (<p>rq:{<b>}:<id>, one field per ticket) hold a token. */
static size_t tickets_of(const char *token)
{
    lines_t l = {0};
    size_t n = 0;
    dump_all(&l);
    for (size_t i = 0; i < l.n; i++)
        n += strncmp(l.v[i], PREFIX "rq:", strlen(PREFIX "rq:")) == 0 && strstr(l.v[i], token);
    lines_free(&l);
    return n;
}

/* ---- the users ---- */

/* The last characters of a token, as the trace keeps them redacted ("…" + the last 6). */
static const char *tail(const char *token)
{
    return token + strlen(token) - 6;
}

typedef struct user {
    const char *id;
    const char *dev[2];
    const char *tok[2];
} user_t;

/* Another user, active through every test: nothing of hers may change. Her job "pv-shared-1"
 * shares its id (and trace list) with the users deleted below. */
static const user_t bea = {
    "pvBea-8K",
    {"pvBea-phone-M2", "pvBea-tab-X5"},
    {"ExponentPushToken[pvBeaPhone000000Tq4m]", "ExponentPushToken[pvBeaTablet00000Lr7w]"}};

/* Registers u's devices and delivers jobs notifications to both (the last one with the job id
 * bea also uses), and two to bea; waits until everything is final. */
static void deliver(const user_t *u, const char *job_prefix, int jobs)
{
    static int round;
    char job[64], bea_job[64];
    for (int d = 0; d < 2; d++)
        register_device(u->id, u->dev[d], u->tok[d]);
    register_device(bea.id, bea.dev[0], bea.tok[0]);
    register_device(bea.id, bea.dev[1], bea.tok[1]);
    for (int i = 0; i < jobs - 1; i++) {
        snprintf(job, sizeof job, "%s-%03d", job_prefix, i);
        publish_job(u->id, job);
    }
    publish_job(u->id, "pv-shared-1");
    publish_job(bea.id, "pv-shared-1");
    snprintf(bea_job, sizeof bea_job, "pvBea-job-%d", round++);
    publish_job(bea.id, bea_job);
    assert_int_equal(th_kafka_flush(), 0);
    for (int i = 0; i < jobs - 1; i++) {
        snprintf(job, sizeof job, "%s-%03d", job_prefix, i);
        wait_completed(u->id, job, 1);
    }
    wait_completed(u->id, "pv-shared-1", 1);
    wait_completed(bea.id, bea_job, 1);
    wait_completed(bea.id, "pv-shared-1", (size_t)round);
}

/* Before a delete: the keyspace names the device in keys (dedup marks, trace index), its token
 * in values (receipt checks, owner key) and its redacted tail in the trace: the checks after the
 * delete look at data that was there. */
static void assert_traces_exist(const user_t *u, int d)
{
    lines_t l = {0};
    dump_all(&l);
    char mark[128], owner[KEY_MAX], tick[300];
    snprintf(mark, sizeof mark, PREFIX "led:%zu:{%s}:", strlen(u->id), u->id);
    th_owner_key(owner, PREFIX, u->tok[d]);
    snprintf(tick, sizeof tick, "=%s\x1f%s\x1f", u->id, u->dev[d]); /* a receipt-check ticket */
    assert_true(naming(&l, mark) >= 2);
    assert_true(naming(&l, owner) >= 1);
    assert_true(naming(&l, tick) >= 1);
    assert_true(naming(&l, tail(u->tok[d])) >= 2); /* owner, ticket, trace records */
    assert_true(naming(&l, u->dev[d]) >= 4);
    lines_free(&l);
}

static const char *const bea_needles[] = {"pvBea", "Tq4m]", "Lr7w]", NULL};

/* (a) The API's purge of one device: nothing names the device, its token or the token's tail;
 * the user's other device keeps its data; the other user's data is untouched. MANY jobs, so the
 * device's trace index is past the 100 it used to keep. */
static void test_api_purge_leaves_nothing_of_the_device(void **state)
{
    (void)state;
    const user_t ann = {
        "pvAnn-7Q",
        {"pvAnn-phone-J4", "pvAnn-tab-W8"},
        {"ExponentPushToken[pvAnnPhone000000Zq81]", "ExponentPushToken[pvAnnTablet00000Hk3v]"}};
    deliver(&ann, "pvAnn-job", MANY);
    assert_traces_exist(&ann, 0);
    assert_int_equal(tickets_of(ann.tok[0]), MANY);
    lines_t bea_before = {0};
    snapshot(bea_needles, &bea_before);
    assert_true(bea_before.n > 0);

    char path[256];
    snprintf(path, sizeof path, "/v1/device-tokens?deviceId=%s&purge=true", ann.dev[0]);
    assert_int_equal(api("DELETE", path, ann.id, NULL), 200);

    const char *gone[] = {ann.dev[0], ann.tok[0], tail(ann.tok[0]), NULL};
    assert_nothing_names("the API's purge of a device", gone);
    assert_int_equal(tickets_of(ann.tok[0]), 0);
    assert_same(&bea_before, bea_needles);
    /* Only that device: the other one keeps its record, marks, tickets and trace. */
    assert_traces_exist(&ann, 1);
    lines_free(&bea_before);
}

/* (b) heraldctl tokens delete --user: nothing names the user, her devices or their tokens, also
 * with one device removed earlier (its traces and marks outlive its record) and one that was
 * inactive (skipped, with a trace of that). */
static void test_ctl_delete_user_leaves_nothing(void **state)
{
    (void)state;
    /* What no index names (the records this case unlinks) only the keyspace sweep finds, and on a
     * cluster disp_privacy_sweep still runs on one master, where its script reaches keys of
     * other slots: it waits for the sweep to walk every master (db_eval_at). */
    if (stack.cluster)
        skip();
    static char out[65536];
    const user_t cleo = {
        "pvCleo-5M",
        {"pvCleo-phone-R1", "pvCleo-tab-H6"},
        {"ExponentPushToken[pvCleoPhone00000Ub2n]", "ExponentPushToken[pvCleoTablet0000Fs9d]"}};
    const char *old_dev = "pvCleo-old-P3", *old_tok = "ExponentPushToken[pvCleoOld00000000Gy6c]";
    const char *idle_dev = "pvCleo-idle-N7", *idle_tok = "ExponentPushToken[pvCleoIdle0000000Wd1k]";
    register_device(cleo.id, old_dev, old_tok);
    register_device(cleo.id, idle_dev, idle_tok);
    char path[256];
    snprintf(path, sizeof path, "/v1/device-tokens?deviceId=%s", idle_dev);
    assert_int_equal(api("DELETE", path, cleo.id, NULL), 200); /* deactivated: skipped */
    deliver(&cleo, "pvCleo-job", 3);
    /* The old device goes from the hash alone (as an old herald's purge left it). */
    char *v = th_redis_cmd(&stack.redis, "HDEL " PREFIX "dev:{%s} %s", cleo.id, old_dev);
    free(v);
    char k[KEY_MAX];
    v = th_redis_cmd(&stack.redis, "DEL %s", th_owner_key(k, PREFIX, old_tok));
    free(v);
    v = th_redis_cmd(&stack.redis, "ZREM %s %s\x1f%s", th_expiry_key(k, PREFIX, old_tok), cleo.id,
                     old_dev);
    free(v);
    assert_traces_exist(&cleo, 0);
    lines_t bea_before = {0};
    snapshot(bea_needles, &bea_before);

    /* One device by heraldctl, with its job index lost: only the sweep can find its marks and
     * records. The user's other devices keep theirs. */
    char args[256];
    v = th_redis_cmd(&stack.redis, "DEL " PREFIX "trace:d:%d:{%s}:%s", (int)strlen(cleo.id),
                     cleo.id, old_dev); /* hiredis formats no %zu */
    assert_string_equal(v, "1");
    free(v);
    snprintf(args, sizeof args, "tokens delete --user %s --device %s", cleo.id, old_dev);
    if (heraldctl(args, out, sizeof out) != 0)
        fail_msg("heraldctl %s: %s", args, out);
    const char *old_gone[] = {old_dev, old_tok, tail(old_tok), NULL};
    assert_nothing_names("heraldctl tokens delete --device", old_gone);
    assert_traces_exist(&cleo, 0);
    assert_traces_exist(&cleo, 1);
    assert_same(&bea_before, bea_needles);

    snprintf(args, sizeof args, "tokens delete --user %s", cleo.id);
    if (heraldctl(args, out, sizeof out) != 0)
        fail_msg("heraldctl %s: %s", args, out);

    const char *gone[] = {
        cleo.id,           cleo.dev[0],       cleo.dev[1],    cleo.tok[0], cleo.tok[1],
        tail(cleo.tok[0]), tail(cleo.tok[1]), old_dev,        old_tok,     tail(old_tok),
        idle_dev,          idle_tok,          tail(idle_tok), NULL};
    assert_nothing_names("heraldctl tokens delete --user", gone);
    assert_same(&bea_before, bea_needles);
    lines_free(&bea_before);
}

/* (b) with MANY jobs: the user's trace index kept the last 100, and delete --user reached only
 * those; the older jobs' traces, marks and tickets stayed for days. */
static void test_ctl_delete_user_with_many_jobs(void **state)
{
    (void)state;
    static char out[65536];
    const user_t dora = {
        "pvDora-2H",
        {"pvDora-phone-C8", "pvDora-tab-V1"},
        {"ExponentPushToken[pvDoraPhone00000Nm5p]", "ExponentPushToken[pvDoraTablet0000Jx2e]"}};
    deliver(&dora, "pvDora-job", MANY);
    assert_traces_exist(&dora, 1);
    lines_t bea_before = {0};
    snapshot(bea_needles, &bea_before);
    assert_int_equal(tickets_of(dora.tok[0]), MANY);
    assert_int_equal(tickets_of(dora.tok[1]), MANY);

    char args[256];
    snprintf(args, sizeof args, "tokens delete --user %s", dora.id);
    if (heraldctl(args, out, sizeof out) != 0)
        fail_msg("heraldctl %s: %s", args, out);

    const char *gone[] = {dora.id,     dora.dev[0],       dora.dev[1],       dora.tok[0],
                          dora.tok[1], tail(dora.tok[0]), tail(dora.tok[1]), NULL};
    assert_nothing_names("heraldctl tokens delete --user (120 jobs)", gone);
    assert_int_equal(tickets_of(dora.tok[0]), 0);
    assert_int_equal(tickets_of(dora.tok[1]), 0);
    assert_same(&bea_before, bea_needles);
    lines_free(&bea_before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_purge_leaves_nothing_of_the_device),
        cmocka_unit_test(test_ctl_delete_user_leaves_nothing),
        cmocka_unit_test(test_ctl_delete_user_with_many_jobs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
