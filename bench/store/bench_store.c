/* bench_store.c - throughput of the Redis layer on this machine: raw pipelined commands through
 * db, token-store registrations (one Lua script call each) and rate-limit checks, each with a
 * bounded window of operations in flight against a real redis-server started for the run.
 *
 *   build-db/bin/bench_store [operations per phase, default 200000] [window, default 256] [cluster]
 *
 * With `cluster`, the client runs against a 3-master Redis Cluster (tests/support/cluster.h) on
 * this machine and only the raw-command phase runs: the store and rate-limit scripts touch keys of
 * several slots until they are made slot-aware (issue 12). */
#include "core/clock.h"
#include "core/log.h"
#include "db/db.h"
#include "tests/support/cluster.h"
#include "tests/support/harness.h"
#include "tokens/ratelimit.h"
#include "tokens/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

typedef struct bench {
    uv_loop_t *loop;
    db_t *db;
    tok_store_t *st;
    tok_rl_t *rl;
    long total, issued, completed, failed, window;
    int phase;
} bench_t;

static void issue(bench_t *b);

static void done_one(bench_t *b, bool ok)
{
    b->completed++;
    b->failed += !ok;
    if (b->issued < b->total)
        issue(b);
}

static void on_db(int status, const db_reply_t *r, void *arg)
{
    (void)r;
    done_one(arg, status == DB_OK);
}

static void on_reg(int status, const tok_reg_result_t *res, void *arg)
{
    (void)res;
    done_one(arg, status == TOK_OK);
}

static void on_rl(int status, const tok_rl_result_t *res, void *arg)
{
    (void)res;
    done_one(arg, status == 0);
}

static void issue(bench_t *b)
{
    long i = b->issued++;
    char user[32], dev[32], tok[64], ip[32];
    snprintf(user, sizeof user, "user%ld", i % 50000);
    snprintf(dev, sizeof dev, "dev%ld", i % 3);
    snprintf(tok, sizeof tok, "ExponentPushToken[bench%08ld]", i);
    snprintf(ip, sizeof ip, "10.%ld.%ld.1", i / 256 % 256, i % 256);
    if (b->phase == 0) {
        db_cmd(b->db, on_db, b, "SET", user, dev, NULL);
    } else if (b->phase == 1) {
        tok_reg_req_t req = {user, dev, tok, TOK_PLATFORM_ANDROID, 90, NULL, NULL};
        tok_store_register(b->st, &req, on_reg, b);
    } else {
        tok_rl_limits_t lim = {50, 100, 50, 100};
        tok_rl_check(b->rl, user, ip, &lim, on_rl, b);
    }
}

static void run_phase(bench_t *b, int phase, const char *name)
{
    b->phase = phase;
    b->issued = b->completed = b->failed = 0;
    uint64_t t0 = clk_mono_us();
    for (long i = 0; i < b->window && b->issued < b->total; i++)
        issue(b);
    while (b->completed < b->total)
        uv_run(b->loop, UV_RUN_ONCE);
    double s = (double)(clk_mono_us() - t0) / 1e6;
    printf("%-28s %8ld ops in %.2f s = %9.0f ops/s (failed %ld)\n", name, b->total, s,
           (double)b->total / s, b->failed);
}

/* Starts the server(s) and connects; NULL when a server did not start. */
static db_t *connect_db(uv_loop_t *loop, bool cluster, th_redis_t *r, th_cluster_t *c)
{
    char err[256];
    if (cluster ? th_cluster_start(c) != 0 : th_redis_start(r, 0) != 0) {
        fprintf(stderr, "cannot start redis-server\n");
        return NULL;
    }
    db_opts_t o = {.url = cluster ? c->url : r->url, .timeout_ms = 5000, .cluster = cluster};
    db_t *db = db_create(loop, &o, err, sizeof err);
    while (!db_ready(db))
        uv_run(loop, UV_RUN_ONCE);
    return db;
}

int main(int argc, char **argv)
{
    bench_t b = {.total = argc > 1 ? atol(argv[1]) : 200000,
                 .window = argc > 2 ? atol(argv[2]) : 256};
    bool cluster = argc > 3 && strcmp(argv[3], "cluster") == 0;
    th_redis_t r = {0};
    th_cluster_t c = {0};
    log_set_level(LOG_LVL_WARN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    b.loop = &loop;
    if ((b.db = connect_db(&loop, cluster, &r, &c)) == NULL)
        return 1;
    b.st = tok_store_redis_create(b.db, "herald:", NULL, 20);
    b.rl = tok_rl_create(b.db, "herald:");
    printf("window %ld in flight, %s on loopback\n", b.window,
           cluster ? "Redis Cluster (3 masters + 3 replicas)" : "redis-server");
    run_phase(&b, 0, "db SET");
    if (!cluster) {
        run_phase(&b, 1, "store register (script)");
        run_phase(&b, 2, "ratelimit check (script)");
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("client CPU %.2f s user + %.2f s sys, peak RSS %ld KiB\n",
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss);
    tok_rl_destroy(b.rl);
    tok_store_destroy(b.st);
    db_destroy(b.db);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (cluster)
        th_cluster_stop(&c);
    else
        th_redis_stop(&r);
    return 0;
}
