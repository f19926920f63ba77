/* test_db_cluster.c - the Redis client on a real Redis Cluster (3 masters, 3 replicas, password
 * on every node; tests/support/cluster.h), one cluster shared by the cases in order: the key slot
 * against CLUSTER KEYSLOT, routing of commands and scripts to the serving master (and scripts
 * surviving SCRIPT FLUSH on every node), commands on every master, ASK during a migration, MOVED
 * after it with commands in flight, TRYAGAIN, a reshard under load (redis-cli --cluster reshard),
 * a wrong password, heraldctl check-config, and a failover (kill -9 of a master) that the same
 * client and a running herald (/readyz) ride out.
 *
 * The nodes run with cluster-node-timeout 1000 ms instead of Redis' 15 s default: a failover takes
 * about two node timeouts, and CI time matters. herald's own settings are the shipped defaults
 * (redis.timeout_ms = 1000). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "db/db.h"
#include "db/slots.h"
#include "tests/db/tloop.h"
#include "tests/support/cluster.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 10000
#define PASSWORD "cluster-test-pw"

static th_cluster_t C;

static int setup(void **state)
{
    (void)state;
    snprintf(C.password, sizeof C.password, "%s", PASSWORD);
    C.node_timeout_ms = 1000;
    return th_cluster_start(&C);
}

static int teardown(void **state)
{
    (void)state;
    th_cluster_stop(&C);
    return 0;
}

static db_t *open_cluster(tloop_t *t, const char *password)
{
    char err[256];
    db_opts_t o = {
        .url = C.url, .password = password, .timeout_ms = 1000, .cluster = true, .seeds = C.seeds};
    db_t *db = db_create(&t->loop, &o, err, sizeof err);
    assert_non_null(db);
    return db;
}

static void close_db(tloop_t *t, db_t *db)
{
    db_destroy(db);
    assert_int_equal(tloop_close(t), 0);
}

static tres_t run(tloop_t *t, db_t *db, int argc, const char *const *argv)
{
    tres_t r = {0};
    db_command(db, tres_cb, &r, argc, argv, NULL);
    assert_false(r.done);
    assert_true(tloop_until(t, &r.done, WAIT_MS));
    assert_int_equal(r.calls, 1);
    return r;
}

#define RUN(t, db, ...)                                                                            \
    run((t), (db), (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),            \
        (const char *[]){__VA_ARGS__})

static void expect_str(const tres_t *r, const char *want)
{
    assert_int_equal(r->status, DB_OK);
    assert_string_equal(r->str, want);
}

static int owner_of(const char *key)
{
    int o = th_cluster_owner(&C, db_key_slot(key, strlen(key)));
    assert_true(o >= 0);
    return o;
}

static void test_key_slot(void **state)
{
    (void)state;
    static const char *const keys[] = {"foo",
                                       "bar",
                                       "123456789",
                                       "{}",
                                       "{",
                                       "}",
                                       "a{}{b}",
                                       "{a}b",
                                       "{a}c",
                                       "a{b}c",
                                       "{}{a}",
                                       "{{a}}",
                                       "x{y}}",
                                       "{a",
                                       "a}",
                                       "herald:dev:{user-42}",
                                       "herald:owner:ExponentPushToken[x]",
                                       "",
                                       "\xff\xfe"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char want[16];
        snprintf(want, sizeof want, "%u", db_key_slot(keys[i], strlen(keys[i])));
        assert_true(
            th_redis_expect(&C.node[0], want, "CLUSTER KEYSLOT %b", keys[i], strlen(keys[i])));
    }
    /* Known values: the CRC16 check value of "123456789" is 0x31C3. */
    assert_int_equal(db_key_slot("123456789", 9), 0x31C3);
    assert_int_equal(db_key_slot("foo", 3), 12182);
    assert_int_equal(db_key_slot("{a}b", 4), db_key_slot("a", 1));
    assert_int_equal(db_key_slot("a{}{b}", 6), db_crc16("a{}{b}", 6) & 16383);
}

static void test_routing_and_scripts(void **state)
{
    (void)state;
    tloop_t t;
    tloop_init(&t);
    db_t *db = open_cluster(&t, PASSWORD);
    assert_true(db_is_cluster(db));
    assert_true(tloop_until_ready(&t, db, true, WAIT_MS));
    assert_string_equal(db_last_error(db), "");
    assert_int_equal(db_masters(db), 3);
    unsigned slots = 0;
    for (size_t i = 0; i < 3; i++) {
        db_node_info_t info;
        assert_int_equal(db_master_info(db, i, &info), 0);
        assert_true(info.up);
        slots += info.slots;
    }
    assert_int_equal(slots, 16384);
    assert_int_equal(db_master_info(db, 3, &(db_node_info_t){0}), -1);

    char key[32], val[32];
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof key, "route:%d", i);
        snprintf(val, sizeof val, "v%d", i);
        tres_t r = RUN(&t, db, "SET", key, val);
        expect_str(&r, "OK");
        /* The master serving the slot holds it: it answers GET itself (any other node answers
         * MOVED). */
        assert_true(th_redis_expect(&C.node[owner_of(key)], val, "GET %s", key));
    }
    db_script_t *s = db_script(db, "return redis.call('GET', KEYS[1]) .. ARGV[1]");
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 30; i++) {
            snprintf(key, sizeof key, "route:%d", i);
            snprintf(val, sizeof val, "v%d!", i);
            tres_t r = {0};
            db_eval(db, s, tres_cb, &r, 1, 2, (const char *[]){key, "!"}, NULL);
            assert_true(tloop_until(&t, &r.done, WAIT_MS));
            expect_str(&r, val);
        }
        for (int n = 0; n < TH_CLUSTER_NODES; n++) /* round 2: NOSCRIPT, EVAL on every node */
            assert_true(th_redis_expect(&C.node[n], "OK", "SCRIPT FLUSH"));
    }

    tres_t p = RUN(&t, db, "PING");
    expect_str(&p, "PONG");
    long long total = 0;
    for (size_t i = 0; i < db_masters(db); i++) {
        tres_t r = {0};
        db_command_at(db, i, tres_cb, &r, 1, (const char *[]){"DBSIZE"}, NULL);
        assert_true(tloop_until(&t, &r.done, WAIT_MS));
        assert_int_equal(r.status, DB_OK);
        assert_int_equal(r.type, DB_REPLY_INTEGER);
        total += r.i;
    }
    assert_int_equal(total, 30);
    tres_t out = {0};
    db_command_at(db, 3, tres_cb, &out, 1, (const char *[]){"DBSIZE"}, NULL);
    assert_true(tloop_until(&t, &out.done, WAIT_MS));
    assert_int_equal(out.status, DB_EDOWN);

    /* Keys of one call in different slots: caught before sending in debug builds. */
    tres_t x = {0};
    assert_int_not_equal(db_key_slot("a", 1), db_key_slot("b", 1));
    db_eval(db, s, tres_cb, &x, 2, 3, (const char *[]){"a", "b", "!"}, NULL);
    assert_true(tloop_until(&t, &x.done, WAIT_MS));
#ifdef NDEBUG
    assert_int_equal(x.status, DB_OK);
    assert_int_equal(x.type, DB_REPLY_ERROR);
    assert_non_null(strstr(x.str, "CROSSSLOT"));
#else
    assert_int_equal(x.status, DB_ECROSSSLOT);
#endif
    close_db(&t, db);
}

static long asking_calls(int node)
{
    char *s = th_redis_cmd(&C.node[node], "INFO commandstats");
    const char *p = s ? strstr(s, "cmdstat_asking:calls=") : NULL;
    long n = p ? atol(p + strlen("cmdstat_asking:calls=")) : 0;
    free(s);
    return n;
}

/* How many error replies starting with `code` the node has sent (INFO errorstats). */
static long error_count(int node, const char *code)
{
    char want[64];
    snprintf(want, sizeof want, "errorstat_%s:count=", code);
    char *s = th_redis_cmd(&C.node[node], "INFO errorstats");
    const char *p = s ? strstr(s, want) : NULL;
    long n = p ? atol(p + strlen(want)) : 0;
    free(s);
    return n;
}

static void setslot_node(unsigned slot, const char *id)
{
    for (int n = 0; n < TH_CLUSTER_NODES; n++) {
        char *r = th_redis_cmd(&C.node[n], "CLUSTER SETSLOT %u NODE %s", slot, id);
        free(r); /* replicas refuse; the masters' word spreads to them */
    }
}

static void test_ask_then_moved(void **state)
{
    (void)state;
    tloop_t t;
    tloop_init(&t);
    db_t *db = open_cluster(&t, PASSWORD);
    assert_true(tloop_until_ready(&t, db, true, WAIT_MS));
    const char *k1 = "{mig}1", *k2 = "{mig}2";
    unsigned slot = db_key_slot(k1, strlen(k1));
    int a = owner_of(k1), b = -1;
    for (unsigned probe = 0; probe < 16384 && b < 0; probe += 4096) {
        int o = th_cluster_owner(&C, probe); /* another master */
        if (o != a)
            b = o;
    }
    assert_true(b >= 0);
    char ida[48], idb[48];
    assert_int_equal(th_cluster_id(&C, a, ida, sizeof ida), 0);
    assert_int_equal(th_cluster_id(&C, b, idb, sizeof idb), 0);
    tres_t r = RUN(&t, db, "SET", k1, "one");
    expect_str(&r, "OK");
    r = RUN(&t, db, "SET", k2, "two");
    expect_str(&r, "OK");

    /* ASK: the slot is migrating from a to b and k1 has moved already. */
    assert_true(th_redis_expect(&C.node[b], "OK", "CLUSTER SETSLOT %u IMPORTING %s", slot, ida));
    assert_true(th_redis_expect(&C.node[a], "OK", "CLUSTER SETSLOT %u MIGRATING %s", slot, idb));
    assert_true(th_redis_expect(&C.node[a], "OK", "MIGRATE 127.0.0.1 %d %s 0 5000 AUTH %s KEYS %s",
                                C.node[b].port, "", PASSWORD, k1));
    long asked = asking_calls(b);
    r = RUN(&t, db, "GET", k1);
    expect_str(&r, "one");
    assert_int_equal(asking_calls(b), asked + 1);
    r = RUN(&t, db, "GET", k2); /* still on a */
    expect_str(&r, "two");
    /* TRYAGAIN: a multi-key command while its keys are split between a and b is retried with
     * backoff; it completes once k2 has moved too (below). */
    long tryagain = error_count(a, "TRYAGAIN");
    tres_t mget = {0};
    db_cmd(db, tres_cb, &mget, "MGET", k1, k2, NULL);
    for (int i = 0; i < 100 && error_count(a, "TRYAGAIN") == tryagain; i++)
        tloop_until(&t, &(bool){false}, 10);
    assert_true(error_count(a, "TRYAGAIN") > tryagain);
    assert_false(mget.done);

    /* MOVED: commands issued (not yet sent) while the migration completes. */
    assert_true(th_redis_expect(&C.node[a], "OK", "MIGRATE 127.0.0.1 %d %s 0 5000 AUTH %s KEYS %s",
                                C.node[b].port, "", PASSWORD, k2));
    tres_t incr[50];
    memset(incr, 0, sizeof incr);
    for (int i = 0; i < 50; i++)
        db_cmd(db, tres_cb, &incr[i], "INCR", "{mig}n", NULL);
    tres_t g = {0};
    db_cmd(db, tres_cb, &g, "GET", k2, NULL);
    setslot_node(slot, idb);
    assert_true(tloop_until(&t, &g.done, WAIT_MS));
    expect_str(&g, "two");
    assert_true(tloop_until(&t, &mget.done, WAIT_MS));
    assert_int_equal(mget.status, DB_OK);
    assert_int_equal(mget.type, DB_REPLY_ARRAY);
    assert_int_equal(mget.n, 2);
    for (int i = 0; i < 50; i++) {
        assert_true(incr[i].done);
        assert_int_equal(incr[i].status, DB_OK);
        assert_int_equal(incr[i].type, DB_REPLY_INTEGER);
        assert_int_equal(incr[i].i, i + 1);
    }
    assert_true(th_redis_expect(&C.node[b], "50", "GET {mig}n"));
    /* The map follows: b's connection now serves one more slot. */
    r = RUN(&t, db, "GET", k1);
    expect_str(&r, "one");
    close_db(&t, db);
    assert_int_equal(owner_of(k1), b);
}

typedef struct parts_res {
    bool done;
    int calls, status;
    long long res[64];
    size_t n;
} parts_res_t;

static void on_parts(int status, const long long *res, size_t n, void *arg)
{
    parts_res_t *p = arg;
    p->calls++;
    p->status = status;
    p->n = n;
    memcpy(p->res, res, n * sizeof *res);
    p->done = true;
}

/* db_eval_parts: a batch of parts over many slots runs as one call per slot, each part's answer
 * back in part order; a part whose keys map to different slots fails its call (CROSSSLOT), and
 * only its slot's parts answer DB_PARTS_FAILED. */
static void test_eval_parts_per_slot(void **state)
{
    (void)state;
    enum { N = 24 };
    tloop_t t;
    tloop_init(&t);
    db_t *db = open_cluster(&t, PASSWORD);
    assert_true(tloop_until_ready(&t, db, true, WAIT_MS));
    /* Per part: KEYS[k] and ARGV = part number, how many integers to answer (1 or 2). */
    db_script_t *s = db_script(db, "local r, a = {}, 2 "
                                   "for _, k in ipairs(KEYS) do "
                                   "  redis.call('SET', k, ARGV[a]) "
                                   "  for i = 1, tonumber(ARGV[a + 1]) do "
                                   "    r[#r + 1] = tonumber(ARGV[a]) * 10 + i end "
                                   "  a = a + 2 end "
                                   "return r");
    char keys[N][32], nums[N][2][8];
    const char *argv[N + 1 + 2 * N];
    db_part_t parts[N];
    size_t want = 0;
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "{pk%d}x", i);
        snprintf(nums[i][0], sizeof nums[i][0], "%d", i);
        snprintf(nums[i][1], sizeof nums[i][1], "%d", 1 + i % 2);
        argv[i] = keys[i];
        argv[N + 1 + 2 * i] = nums[i][0];
        argv[N + 2 + 2 * i] = nums[i][1];
        parts[i] = (db_part_t){.nkeys = 1, .nargs = 2, .nres = (size_t)(1 + i % 2)};
        want += parts[i].nres;
    }
    argv[N] = "head";
    parts_res_t r = {0};
    db_eval_parts(db, s, on_parts, &r, N, parts, 1, argv);
    assert_false(r.done);
    assert_true(tloop_until(&t, &r.done, WAIT_MS));
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, DB_OK);
    assert_int_equal(r.n, want);
    for (int i = 0, k = 0; i < N; i++)
        for (int j = 1; j <= 1 + i % 2; j++)
            assert_int_equal(r.res[k++], i * 10 + j);
    for (int i = 0; i < N; i++) {
        tres_t g = RUN(&t, db, "GET", keys[i]);
        expect_str(&g, nums[i][0]);
    }
    /* A part naming two slots fails its call; the other part, in another slot, answers. */
    assert_int_not_equal(db_key_slot("{pk0}x", 6), db_key_slot("{a}y", 4));
    const char *two[] = {"{pk0}x", "{a}y", "{b}z", "head", "7", "1", "8", "1", "9", "1"};
    db_part_t tp[] = {{.nkeys = 1, .nargs = 2, .nres = 1}, {.nkeys = 2, .nargs = 4, .nres = 2}};
    r = (parts_res_t){0};
    db_eval_parts(db, s, on_parts, &r, 2, tp, 1, two);
    assert_true(tloop_until(&t, &r.done, WAIT_MS));
    assert_int_not_equal(r.status, DB_OK);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.res[0], 71);
    assert_true(r.res[1] == DB_PARTS_FAILED && r.res[2] == DB_PARTS_FAILED);
    close_db(&t, db);
}

static bool exited(void *arg)
{
    return !th_alive(arg);
}

/* redis-cli --cluster reshard moves slots (MIGRATE of their keys, ASK and MOVED on the way) while
 * every key is incremented over and over: nothing fails and no increment is lost. */
static void test_reshard_under_load(void **state)
{
    (void)state;
    enum { NKEYS = 2000 };
    tloop_t t;
    tloop_init(&t);
    db_t *db = open_cluster(&t, PASSWORD);
    assert_true(tloop_until_ready(&t, db, true, WAIT_MS));
    int from = th_cluster_owner(&C, 0), to = th_cluster_owner(&C, 16383);
    assert_true(from >= 0 && to >= 0 && from != to);
    char idf[48], idt[48], addr[32], log[600];
    assert_int_equal(th_cluster_id(&C, from, idf, sizeof idf), 0);
    assert_int_equal(th_cluster_id(&C, to, idt, sizeof idt), 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", C.node[0].port);
    snprintf(log, sizeof log, "%s/reshard.log", C.node[0].dir);
    char *argv[] = {"redis-cli", "-a",
                    PASSWORD,    "--no-auth-warning",
                    "--cluster", "reshard",
                    addr,        "--cluster-from",
                    idf,         "--cluster-to",
                    idt,         "--cluster-slots",
                    "300",       "--cluster-yes",
                    NULL};
    th_proc_t cli;
    assert_int_equal(th_spawn(&cli, "redis-cli", argv, NULL, log), 0);
    static long want[NKEYS];
    static tres_t res[NKEYS];
    char key[32];
    int rounds = 0;
    for (bool last = false; !last; rounds++) {
        last = !th_alive(&cli); /* one more round after the reshard ended */
        memset(res, 0, sizeof res);
        for (int i = 0; i < NKEYS; i++) {
            snprintf(key, sizeof key, "rs:%d", i);
            db_cmd(db, tres_cb, &res[i], "INCR", key, NULL);
        }
        for (int i = 0; i < NKEYS; i++) {
            assert_true(tloop_until(&t, &res[i].done, WAIT_MS));
            if (res[i].status != DB_OK || res[i].type != DB_REPLY_INTEGER)
                fail_msg("round %d, rs:%d: status %d, reply \"%s\"", rounds, i, res[i].status,
                         res[i].str);
            assert_int_equal(res[i].i, ++want[i]);
        }
    }
    assert_true(th_wait_until(exited, &cli, 1000));
    assert_int_equal(th_stop(&cli, SIGKILL, 1000), 0);
    assert_int_equal(th_cluster_owner(&C, 0), to);
    fprintf(stderr, "reshard: %d rounds of %d INCR while 300 slots moved\n", rounds, NKEYS);
    close_db(&t, db);
}

static void test_wrong_password(void **state)
{
    (void)state;
    tloop_t t;
    tloop_init(&t);
    db_t *db = open_cluster(&t, "not-the-password");
    assert_false(tloop_until_ready(&t, db, true, 1500));
    assert_non_null(strstr(db_last_error(db), "no slot map"));
    assert_non_null(strstr(db_last_error(db), "handshake refused"));
    tres_t r = RUN(&t, db, "GET", "x");
    assert_int_equal(r.status, DB_EDOWN);
    close_db(&t, db);
}

/* heraldctl check-config in cluster mode names every master and the slot coverage. */
static void test_check_config(void **state)
{
    (void)state;
    char text[512], path[400], cmd[1200], line[1024];
    snprintf(text, sizeof text,
             "redis.url = redis://:%s@127.0.0.1:%d/0\nredis.cluster = true\n"
             "auth.mode = trusted-header\nexpo.url = http://127.0.0.1:1\n",
             PASSWORD, C.node[0].port);
    assert_int_equal(th_tmpfile("herald.conf", text, path, sizeof path), 0);
    snprintf(cmd, sizeof cmd, "%s/heraldctl --config %s check-config --timeout 1s 2>&1",
             th_bin_dir(), path);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    bool seen = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "redis ", 6) != 0) {
            fprintf(stderr, "heraldctl: %s", line);
            continue;
        }
        seen = true;
        if (!strstr(line, " ok ") || !strstr(line, "cluster: 3 masters, 16384/16384 slots served"))
            fail_msg("%s", line);
        for (int n = 0, masters = 0; n < TH_CLUSTER_NODES; n++) {
            char want[48];
            snprintf(want, sizeof want, "127.0.0.1:%d (", C.node[n].port);
            masters += strstr(line, want) != NULL;
            if (n == TH_CLUSTER_NODES - 1)
                assert_int_equal(masters, 3);
        }
    }
    pclose(f);
    assert_true(seen);
}

/* herald on the cluster: /readyz says ready while every slot is served. */
static void start_herald(th_herald_t *h)
{
    char text[1024];
    memset(h, 0, sizeof *h);
    assert_int_equal(th_tmpdir(h->dir, sizeof h->dir), 0);
    snprintf(text, sizeof text,
             "http.listen = 127.0.0.1:0\nadmin.listen = 127.0.0.1:0\n"
             "redis.url = redis://:%s@127.0.0.1:%d/0\nredis.cluster = true\n"
             "redis.cluster_seeds = %s\nauth.mode = trusted-header\nkafka.embedded = true\n"
             "runtime.dir = %s/run\nexpo.url = http://127.0.0.1:1\nshutdown.timeout_s = 5\n",
             PASSWORD, C.node[0].port, C.seeds, h->dir);
    assert_int_equal(th_herald_start(h, text, NULL), 0);
}

/* GET /readyz: its status, and whether the body says which slots are not served. */
static long readyz(const th_herald_t *h, bool *names_gap)
{
    char url[128];
    th_resp_t r = {0};
    th_herald_url(h, true, "/readyz", url, sizeof url);
    if (th_http("GET", url, NULL, NULL, 0, &r) != 0)
        return -1;
    *names_gap = *names_gap || strstr(buf_cstr(&r.body), "not served") != NULL;
    long status = r.status;
    th_resp_cleanup(&r);
    return status;
}

/* kill -9 of the master serving a key: the same client (and herald's /readyz) goes not ready,
 * its commands fail for a while, then the promoted replica serves them. */
static void test_failover(void **state)
{
    (void)state;
    tloop_t t;
    tloop_init(&t);
    db_t *db = open_cluster(&t, PASSWORD);
    tstates_t ud = {0};
    db_on_state(db, tstates_cb, &ud);
    assert_true(tloop_until_ready(&t, db, true, WAIT_MS));
    th_herald_t h;
    start_herald(&h);
    bool gap = false;
    for (int i = 0; i < 100 && readyz(&h, &gap) != 200; i++)
        tloop_until(&t, &(bool){false}, 100);
    assert_int_equal(readyz(&h, &gap), 200);
    const char *key = "{fo}k";
    int m = owner_of(key), rep = -1;
    for (int i = 0; i < 100 && (rep = th_cluster_replica_of(&C, m)) < 0; i++)
        tloop_until(&t, &(bool){false}, 100);
    assert_true(rep >= 0);
    tres_t r = RUN(&t, db, "SET", key, "kept");
    expect_str(&r, "OK");
    assert_true(th_cluster_synced(&C, m, rep, 10000)); /* the write is on the replica too */

    th_stop(&C.node[m].proc, SIGKILL, 1000);
    uint64_t t0 = clk_mono_ms();
    int failed = 0, not_ready = 0;
    bool ok = false;
    while (!ok && clk_mono_ms() - t0 < 30000) {
        tres_t g = {0};
        db_cmd(db, tres_cb, &g, "GET", key, NULL);
        assert_true(tloop_until(&t, &g.done, WAIT_MS));
        ok = g.status == DB_OK && g.type == DB_REPLY_STRING && strcmp(g.str, "kept") == 0;
        failed += !ok;
        not_ready += readyz(&h, &gap) == 503;
        if (!ok)
            tloop_until(&t, &(bool){false}, 100);
    }
    assert_true(ok);
    assert_true(failed > 0);
    assert_true(tloop_until_ready(&t, db, true, WAIT_MS));
    assert_true(ud.downs >= 1);
    assert_true(ud.ups >= 2);
    assert_int_equal(owner_of(key), rep);
    fprintf(stderr, "failover: %d failed GETs, served again after %llu ms\n", failed,
            (unsigned long long)(clk_mono_ms() - t0));
    /* herald saw it too, and recovers without a restart. */
    assert_true(not_ready > 0);
    assert_true(gap);
    for (int i = 0; i < 100 && readyz(&h, &gap) != 200; i++)
        tloop_until(&t, &(bool){false}, 100);
    assert_int_equal(readyz(&h, &gap), 200);
    assert_int_equal(th_herald_stop(&h, SIGTERM), 0);
    close_db(&t, db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_slot),           cmocka_unit_test(test_routing_and_scripts),
        cmocka_unit_test(test_ask_then_moved),     cmocka_unit_test(test_eval_parts_per_slot),
        cmocka_unit_test(test_reshard_under_load), cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_check_config),       cmocka_unit_test(test_failover),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
