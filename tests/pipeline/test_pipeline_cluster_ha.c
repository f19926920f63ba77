/* test_pipeline_cluster_ha.c - herald's delivery promise on a real Redis Cluster (3 masters + 3
 * replicas, one for the binary) while the cluster changes under it: a master killed with SIGKILL
 * mid-stream (its replica is promoted), slots resharded (redis-cli --cluster reshard) mid-stream,
 * and three herald instances of one group of which one is killed with SIGKILL. The simulator's
 * record file (one line per accepted message, collapseId "<jobId>:COMPLETED") is the ground
 * truth: every (event, device) is delivered, a copy only under the first one's collapseId, never
 * to another user's device; each receipt is fetched once.
 *
 * Settings shortened, and why: the cluster's cluster-node-timeout is 1 s (Redis' default 15 s
 * would make each failover take 15-20 s of CI time); expo.receipt_delay_s = 0 and
 * expo.receipt_poll_interval_s = 1, so that receipts are fetched while the test runs instead of
 * 15 minutes later. herald's own dedup, lease, queue and Kafka settings are the shipped ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "db/db.h"
#include "tests/support/harness.h"
#include "tests/support/kafka_harness.h"
#include "tests/support/stack.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET "cluster-ha-test-secret-0123456789abcdef"
#define TOPIC "job-events"
#define GROUP "herald-cluster-ha"
#define USERS 100 /* one device each: ExponentPushToken[ha<u>] */
#define BATCH 300 /* events per burst */
#define WAIT_MS 180000
#define EXTRA "expo.receipt_delay_s = 0\nexpo.receipt_poll_interval_s = 1\n"

static th_cluster_t cluster;
static th_stack_t stack;
static int next_event; /* events h0 .. h<next_event - 1> were published */

static int setup(void **state)
{
    (void)state;
    cluster.node_timeout_ms = 1000;
    stack.cluster = &cluster;
    if (th_stack_start(&stack, TOPIC, SECRET) != 0 ||
        th_stack_herald(&stack, TOPIC, GROUP, EXTRA) != 0)
        return -1;
    for (int u = 0; u < USERS; u++) {
        char user[16], body[160];
        snprintf(user, sizeof user, "u%d", u);
        snprintf(body, sizeof body,
                 "{\"deviceId\":\"phone\",\"expoPushToken\":\"ExponentPushToken[ha%d]\","
                 "\"platform\":\"ios\"}",
                 u);
        long st = th_stack_api(&stack, SECRET, "POST", user, "/v1/device-tokens", body);
        if (st != 201 && st != 200) {
            fprintf(stderr, "register %s: %ld\n", user, st);
            return -1;
        }
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_stack_stop(&stack);
    return 0;
}

/* Publishes n events h<next_event>.., each for user e % USERS, keyed by the user. */
static void produce(int n)
{
    char ev[160], user[16], job[16];
    for (int i = 0; i < n; i++, next_event++) {
        snprintf(user, sizeof user, "u%d", next_event % USERS);
        snprintf(job, sizeof job, "h%d", next_event);
        snprintf(ev, sizeof ev, "{\"jobId\":\"%s\",\"userId\":\"%s\",\"status\":\"COMPLETED\"}",
                 job, user);
        assert_int_equal(th_kafka_send(TOPIC, user, ev, NULL), 0);
    }
    assert_int_equal(th_kafka_flush(), 0);
}

static long long sim_stat(const char *name)
{
    json_t *j = th_sim_stats(stack.sim_url);
    long long v = j ? json_integer_value(json_object_get(j, name)) : -1;
    json_decref(j);
    return v;
}

typedef struct tally {
    int events;
    unsigned *count; /* per event */
    long long lines, missing, duplicates, misdirected, foreign;
} tally_t;

/* Counts the record file's acceptances per event of h0 .. h<t->events - 1>. */
static void tally_read(tally_t *t)
{
    free(t->count);
    *t = (tally_t){.events = t->events, .count = calloc((size_t)t->events, sizeof *t->count)};
    char path[300], line[8192];
    snprintf(path, sizeof path, "%s/sim.jsonl", stack.dir);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f) && line[strlen(line) - 1] == '\n') {
        t->lines++;
        json_t *j = json_loads(line, 0, NULL);
        const char *tok = json_string_value(json_object_get(j, "token"));
        const char *cid = json_string_value(json_object_get(j, "collapseId"));
        int u = -1, e = -1;
        if (!tok || !cid || sscanf(tok, "ExponentPushToken[ha%d]", &u) != 1 ||
            sscanf(cid, "h%d:COMPLETED", &e) != 1 || e < 0 || e >= t->events)
            t->foreign++;
        else if (u != e % USERS)
            t->misdirected++;
        else
            t->count[e]++;
        json_decref(j);
    }
    if (f)
        fclose(f);
    for (int e = 0; e < t->events; e++) {
        t->missing += t->count[e] == 0;
        t->duplicates += t->count[e] > 1 ? t->count[e] - 1 : 0;
    }
}

static bool all_delivered(void *arg)
{
    tally_t *t = arg;
    if (sim_stat("messagesAccepted") < t->events)
        return false;
    tally_read(t);
    return t->missing == 0;
}

/* Every event published so far delivered; copies only of in-flight sends (at most max_dups),
 * none misdirected. */
static void expect_delivered(const char *what, long long max_dups)
{
    tally_t t = {.events = next_event};
    if (!th_wait_until(all_delivered, &t, WAIT_MS))
        fail_msg("%s: %lld of %d events not delivered", what, t.missing, t.events);
    fprintf(stderr, "%s: %d events, %lld lines, %lld duplicates, %lld misdirected, %lld foreign\n",
            what, t.events, t.lines, t.duplicates, t.misdirected, t.foreign);
    assert_int_equal(t.missing, 0);
    assert_int_equal(t.misdirected, 0);
    assert_int_equal(t.foreign, 0);
    assert_true(t.duplicates <= max_dups);
    free(t.count);
}

static bool accepted_at_least(void *arg)
{
    return sim_stat("messagesAccepted") >= *(long long *)arg;
}

/* A master other than node 0 (the stack's address for herald and the test's commands). */
static int master_to_kill(void)
{
    static const unsigned probes[] = {0, 5000, 10000, 16383};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        int m = th_cluster_owner(&cluster, probes[i]);
        if (m > 0)
            return m;
    }
    return -1;
}

static bool has_replica(void *arg)
{
    return th_cluster_replica_of(&cluster, *(int *)arg) >= 0;
}

/* kill -9 of a master while events flow: its replica is promoted, herald (not restarted) delivers
 * everything, and sends nothing twice (one instance: no send is repeated). */
static void test_master_killed_mid_stream(void **state)
{
    (void)state;
    int m = master_to_kill();
    assert_true(m > 0);
    assert_true(th_wait_until(has_replica, &m, 10000));
    produce(BATCH);
    long long some = BATCH / 3;
    assert_true(th_wait_until(accepted_at_least, &some, WAIT_MS));
    th_stop(&cluster.node[m].proc, SIGKILL, 1000);
    produce(BATCH);
    assert_true(th_cluster_wait_ok(&cluster, 30000));
    produce(BATCH);
    expect_delivered("failover", 0);
}

static bool cli_exited(void *arg)
{
    return !th_alive(arg);
}

/* redis-cli --cluster reshard of 300 slots between two live masters while events flow: ASK and
 * MOVED on the way, nothing lost. */
static void test_reshard_mid_stream(void **state)
{
    (void)state;
    int from = -1, to = -1;
    for (unsigned s = 0; s < 16384 && (from < 0 || to < 0 || from == to); s += 512) {
        int o = th_cluster_owner(&cluster, s);
        if (from < 0)
            from = o;
        else
            to = o;
    }
    assert_true(from >= 0 && to >= 0 && from != to);
    char idf[48], idt[48], addr[32], log[600];
    assert_int_equal(th_cluster_id(&cluster, from, idf, sizeof idf), 0);
    assert_int_equal(th_cluster_id(&cluster, to, idt, sizeof idt), 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", cluster.node[from].port);
    snprintf(log, sizeof log, "%s/reshard.log", stack.dir);
    char *argv[] = {"redis-cli",    "--cluster", "reshard",         addr,  "--cluster-from", idf,
                    "--cluster-to", idt,         "--cluster-slots", "300", "--cluster-yes",  NULL};
    produce(BATCH);
    th_proc_t cli;
    assert_int_equal(th_spawn(&cli, "redis-cli", argv, NULL, log), 0);
    int bursts = 0;
    while (th_alive(&cli) && bursts < 20) {
        produce(BATCH / 10);
        bursts++;
        th_wait_until(cli_exited, &cli, 200);
    }
    assert_true(th_wait_until(cli_exited, &cli, 60000));
    assert_int_equal(th_stop(&cli, SIGKILL, 1000), 0);
    produce(BATCH);
    fprintf(stderr, "reshard: %d bursts published while 300 slots moved\n", bursts);
    expect_delivered("reshard", 0);
}

static bool receipts_asked(void *arg)
{
    (void)arg;
    return sim_stat("receiptIdsAsked") >= sim_stat("messagesAccepted");
}

/* Three instances of one group on the cluster, one killed with SIGKILL mid-stream: the others
 * take its partitions and its claims (its lease lapses) and deliver everything; copies only of
 * what it had in flight (queue.max_in_flight events at most), each receipt fetched once (the
 * killed instance's last poll, if its answer was lost, at most once more). */
static void test_three_instances_one_killed(void **state)
{
    (void)state;
    th_herald_t more[2] = {0};
    for (int i = 0; i < 2; i++)
        assert_int_equal(th_stack_herald_at(&stack, &more[i], TOPIC, GROUP, EXTRA), 0);
    long long before = next_event;
    produce(3 * BATCH);
    long long some = before + BATCH;
    assert_true(th_wait_until(accepted_at_least, &some, WAIT_MS));
    th_stop(&more[0].proc, SIGKILL, 1000);
    produce(BATCH);
    expect_delivered("three instances", 1000);
    /* Checks the killed poller had claimed come back when its lease ends (EXPO_RCPT_LEASE_S,
     * 60 s). */
    assert_true(th_wait_until(receipts_asked, NULL, 90000));
    long long asked = sim_stat("receiptIdsAsked"), accepted = sim_stat("messagesAccepted");
    fprintf(stderr, "receipts: %lld ids asked for %lld tickets\n", asked, accepted);
    assert_true(asked >= accepted);
    assert_true(asked <= accepted + 1000);
    assert_int_equal(th_herald_stop(&more[1], SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_master_killed_mid_stream),
        cmocka_unit_test(test_reshard_mid_stream),
        cmocka_unit_test(test_three_instances_one_killed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
