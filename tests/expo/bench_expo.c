/* bench_expo.c - Expo client throughput against the simulator (not a test; prints figures).
 *
 *   bench-expo --url http://127.0.0.1:PORT --mode max  [--n 200000]
 *       maximum notifications/s, CPU seconds per 100,000 notifications, peak RSS
 *   bench-expo --url http://127.0.0.1:PORT --mode rate [--rate 600] [--seconds 30]
 *              [--redis URL]
 *       achieved rate over the last `seconds` (after a 5 s warm-up) and 429s received; with
 *       --redis the limit is the budget shared through Redis (expo.shared_rate_limit), so
 *       several bench-expo processes together stay under it (bench/expo_shared_rate.sh)
 *
 * The feeder keeps a bounded number of messages pending (like the pipeline's backpressure). */
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "db/db.h"
#include "expo/expo.h"
#include "expo/rate_shared.h"
#include "tests/expo/client_opts.h"
#include "tests/support/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

typedef struct bench {
    expo_client_t *c;
    long n, sent, ok, failed, pending_cap;
    long window_ok; /* ok results inside the measured window */
    uint64_t t_start, w_start, w_end;
    bool rate_mode, stop;
} bench_t;

static void feed(bench_t *b);

static void on_res(const expo_result_t *r, void *arg)
{
    bench_t *b = arg;
    uint64_t now = clk_mono_ms();
    if (r->outcome == EXPO_OK) {
        b->ok++;
        if (now >= b->w_start && now < b->w_end)
            b->window_ok++;
    } else {
        b->failed++;
    }
    if (b->rate_mode && now >= b->w_end)
        b->stop = true;
    feed(b);
}

static void feed(bench_t *b)
{
    static char tok[64];
    while (!b->stop && (long)expo_client_pending(b->c) < b->pending_cap &&
           (b->rate_mode || b->sent < b->n)) {
        snprintf(tok, sizeof tok, "ExponentPushToken[bench%ld]", b->sent % 50000);
        expo_msg_t m;
        expo_msg_init(&m);
        m.to = tok;
        m.title = "Photo Editor - Ready!";
        m.body = "Your enhanced photo is ready to download";
        m.data =
            "{\"jobId\":\"j\",\"status\":\"COMPLETED\",\"type\":\"job\",\"action\":\"download\"}";
        m.sound = "default";
        expo_send(b->c, &m, on_res, b);
        b->sent++;
    }
}

int main(int argc, char **argv)
{
    const char *url = NULL, *mode = "max", *redis = NULL;
    long n = 200000, rate = 600, seconds = 30;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--url") == 0)
            url = argv[i + 1];
        else if (strcmp(argv[i], "--mode") == 0)
            mode = argv[i + 1];
        else if (strcmp(argv[i], "--n") == 0)
            n = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--rate") == 0)
            rate = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--redis") == 0)
            redis = argv[i + 1];
    }
    if (!url) {
        fprintf(stderr, "usage: bench-expo --url URL [--mode max|rate] [--n N] [--rate R] "
                        "[--seconds S] [--redis URL]\n");
        return 2;
    }
    log_set_level(LOG_LVL_ERROR);
    uv_loop_t loop;
    uv_loop_init(&loop);
    metric_reg_t *reg = metric_reg_create();
    bench_t b = {0};
    b.rate_mode = strcmp(mode, "rate") == 0;
    expo_opts_t o = tx_client_opts(url, b.rate_mode ? rate : 0);
    char err[256];
    db_t *db = NULL;
    expo_shared_rate_t *sr = NULL;
    if (redis && b.rate_mode) {
        db_opts_t dbo = {.url = redis, .timeout_ms = 2000, .name = "bench"};
        db = db_create(&loop, &dbo, err, sizeof err);
        uint64_t until = clk_mono_ms() + 5000;
        while (db && !db_ready(db) && clk_mono_ms() < until)
            uv_run(&loop, UV_RUN_ONCE);
        if (!db || !db_ready(db)) {
            fprintf(stderr, "bench-expo: redis %s: %s\n", redis, db ? db_last_error(db) : err);
            return 2;
        }
        sr = expo_shared_rate_create(db, "bench:", rate);
        o.rate_hook = expo_shared_rate_hook(sr);
    }
    b.c = expo_client_create(&loop, &o, reg, err, sizeof err);
    if (!b.c) {
        fprintf(stderr, "bench-expo: %s\n", err);
        return 2;
    }
    b.n = n;
    b.pending_cap = b.rate_mode ? 2000 : 1200;
    b.t_start = clk_mono_ms();
    b.w_start = b.rate_mode ? b.t_start + 5000 : 0;
    b.w_end = b.rate_mode ? b.w_start + (uint64_t)seconds * 1000 : UINT64_MAX;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    feed(&b);
    while ((b.rate_mode ? !b.stop : b.ok + b.failed < b.n) && uv_run(&loop, UV_RUN_ONCE))
        ;
    double wall = (double)(clk_mono_ms() - b.t_start) / 1000.0;
    getrusage(RUSAGE_SELF, &ru1);
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                 (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                 (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    double r429 = th_metric_sum(reg, "herald_expo_retries_total{reason=\"429\"}");
    double req4xx = th_metric_sum(reg, "herald_expo_requests_total{class=\"4xx\"}");
    double reqs = th_metric_sum(reg, "herald_expo_requests_total{");
    double raw = th_metric_sum(reg, "herald_expo_bytes_total{stage=\"raw\"}");
    double sentb = th_metric_sum(reg, "herald_expo_bytes_total{stage=\"sent\"}");
    if (b.rate_mode)
        printf("mode=rate%s limit=%ld/s window=%lds ok_in_window=%ld achieved=%.1f/s (%.2f%%) "
               "requests=%.0f http_4xx=%.0f messages_retried_for_429=%.0f failed=%ld\n",
               sr ? " shared" : "", rate, seconds, b.window_ok,
               (double)b.window_ok / (double)seconds,
               100.0 * (double)b.window_ok / (double)seconds / (double)rate, reqs, req4xx, r429,
               b.failed);
    else
        printf("mode=max n=%ld ok=%ld failed=%ld wall=%.2fs rate=%.0f/s cpu=%.2fs "
               "cpu_per_100k=%.3fs peak_rss=%.1fMiB requests=%.0f gzip=%.0f->%.0f bytes\n",
               b.n, b.ok, b.failed, wall, (double)b.ok / wall, cpu,
               cpu * 100000.0 / (double)(b.ok ? b.ok : 1), (double)ru1.ru_maxrss / 1024.0, reqs,
               raw, sentb);
    expo_client_destroy(b.c);
    expo_shared_rate_destroy(sr);
    db_destroy(db);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    metric_reg_destroy(reg);
    return 0;
}
