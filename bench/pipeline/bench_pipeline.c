/* bench_pipeline.c - herald's main job measured end to end: a real redis-server, librdkafka's mock
 * cluster inside this driver (so the broker's CPU is not charged to herald), the Expo simulator
 * unthrottled, and the built herald binary with expo.rate_per_sec = 0.
 *
 *   1. drain: EVENTS events for USERS users x 2 devices are produced before herald starts; from
 *      the first accepted message to the last, notifications/s and herald's CPU seconds.
 *   2. steady: RATE events/s for SECONDS s, each stamped with its produce time (unix ms);
 *      end-to-end latency p50/p99 from the simulator's record (event timestamp -> Expo accepted,
 *      exact to the ms) and from herald's herald_end_to_end_seconds histogram (interpolated).
 *   Then herald's peak RSS (VmHWM) and total CPU seconds.
 *
 *   bench_pipeline [--events N] [--users U] [--rate R] [--seconds S] [--log-level L]
 *                  [--max-in-flight M] [--set "herald.key = value"]... [--perf FILE]
 *                  [--perf-call-graph fp|dwarf] [--perf-phase drain|steady] [--cluster]
 * --cluster runs against a Redis Cluster of 3 masters + 3 replicas on this machine
 * (tests/support/cluster.h) with redis.cluster = true; redis-server CPU is then the sum of the six
 * nodes' (the replicas apply every write too).
 * --perf FILE records herald's profile during the drain (perf record -e cpu-clock) into FILE:
 * build with -fno-omit-frame-pointer (BUILD_DIR of run.sh) and read it with perf report. dwarf
 * call graphs also see through the libraries built without frame pointers (libc, hiredis).
 * --perf-phase steady records the steady phase instead.
 * Run through bench/pipeline/run.sh (Release build). Needs redis-server on PATH. */
#include "tests/ctl/ctl_seed.h"
#include "tests/support/cluster.h"
#include "tests/support/harness.h"
#include "tests/support/kafka_harness.h"

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOPIC "job-events"

static struct {
    long events, users, rate, seconds, max_in_flight;
    const char *log_level;
    const char *perf;  /* perf.data path, or NULL */
    const char *graph; /* perf's --call-graph mode */
    char extra[2048];  /* more herald config lines (--set "key = value", repeatable) */
    bool cluster;
    bool perf_steady; /* --perf-phase steady: profile the steady phase, not the drain */
} opt = {100000, 10000, 1000, 20, 1000, "warn", NULL, "fp", "", false, false};

static th_redis_t redis_one;
static th_redis_t *redis = &redis_one; /* the server, or node 0 of the cluster */
static th_cluster_t cluster;
static th_herald_t herald;
static th_proc_t sim, perf;
static char dir[256], sim_url[96], record_path[300];

static double redis_cpu_s(void);

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
    double d = t - mono_s();
    if (d <= 0)
        return;
    struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    nanosleep(&ts, NULL);
}

static void die(const char *what)
{
    fprintf(stderr, "bench_pipeline: %s (work dir %s)\n", what, dir);
    th_stop_all();
    exit(1);
}

/* ---- processes --------------------------------------------------------------------------------
 */

static void start_sim(void)
{
    /* Per-token counts off (capacity 1): /stats stays small enough to poll often. */
    static const char *const extra[] = {"--token-capacity", "1", NULL};
    snprintf(record_path, sizeof record_path, "%s/sim.jsonl", dir);
    if (th_sim_start(&sim, dir, extra, sim_url, sizeof sim_url) != 0)
        die("simulator did not start");
}

static void start_herald(const char *bootstrap)
{
    char conf[4096], cl[160] = "";
    if (opt.cluster)
        snprintf(cl, sizeof cl, "redis.cluster = true\nredis.cluster_seeds = %s\n", cluster.seeds);
    snprintf(conf, sizeof conf,
             "%s"
             "log.level = %s\n"
             "http.listen = 127.0.0.1:0\n"
             "admin.listen = 127.0.0.1:0\n"
             "auth.mode = trusted-header\n"
             "auth.trusted_header = X-User-Id\n"
             "redis.url = %s\n"
             "kafka.bootstrap.servers = %s\n"
             "kafka.group.id = herald-bench\n"
             "queue.topics = " TOPIC "\n"
             "queue.max_in_flight = %ld\n"
             "expo.url = %s\n"
             "expo.rate_per_sec = 0\n"
             /* librdkafka's mock broker answers a Fetch that finds no data only after its full
              * MaxWait (default 500 ms; measured p50 320 ms at 1,000 events/s), where a real
              * broker answers as soon as data arrives: keep the wait short. */
             "kafka.fetch.wait.max.ms = 10\n"
             "runtime.dir = %s/run\n%s",
             cl, opt.log_level, opt.cluster ? cluster.url : redis->url, bootstrap,
             opt.max_in_flight, sim_url, dir, opt.extra);
    snprintf(herald.dir, sizeof herald.dir, "%s", dir);
    if (th_herald_start(&herald, conf, NULL) != 0)
        die("herald did not start");
}

/* ---- observations -----------------------------------------------------------------------------
 */

static long long accepted(void)
{
    char url[128];
    th_resp_t r;
    snprintf(url, sizeof url, "%s/stats", sim_url);
    long long n = -1;
    if (th_http("GET", url, NULL, NULL, 0, &r) == 0) {
        json_t *j = json_loads(buf_cstr(&r.body), 0, NULL);
        n = json_integer_value(json_object_get(j, "messagesAccepted"));
        json_decref(j);
    }
    th_resp_cleanup(&r);
    return n;
}

/* herald's user + system CPU seconds so far. */
static double cpu_s(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    /* after "pid (comm)": state is field 3; utime and stime are fields 14 and 15 */
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0)
            kb = strtol(line + strlen(field) + 1, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

#define NB 32
typedef struct hist {
    int n;
    double le[NB];
    double cum[NB]; /* cumulative counts; the last bucket is +Inf */
} hist_t;

/* Sum of every sample of a metric family in herald's /metrics, or -1. */
static double herald_metric(const char *name)
{
    return th_herald_metric(&herald, name);
}

/* herald's /metrics into <dir>/<name> for offline reading. */
static void save_metrics(const char *name)
{
    char url[256], path[400];
    th_resp_t r;
    th_herald_url(&herald, true, "/metrics", url, sizeof url);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f && th_http("GET", url, NULL, NULL, 0, &r) == 0)
        fputs(buf_cstr(&r.body), f);
    if (f)
        fclose(f);
    th_resp_cleanup(&r);
}

static void scrape_hist(const char *name, hist_t *h)
{
    char url[256], pre[128];
    th_resp_t r;
    memset(h, 0, sizeof *h);
    th_herald_url(&herald, true, "/metrics", url, sizeof url);
    if (th_http("GET", url, NULL, NULL, 0, &r) != 0)
        die("metrics scrape failed");
    snprintf(pre, sizeof pre, "%s_bucket{le=\"", name);
    for (const char *p = buf_cstr(&r.body); (p = strstr(p, pre)) != NULL && h->n < NB;) {
        p += strlen(pre);
        h->le[h->n] = strncmp(p, "+Inf", 4) == 0 ? 1e18 : strtod(p, NULL);
        h->cum[h->n++] = strtod(strstr(p, "} ") + 2, NULL);
    }
    th_resp_cleanup(&r);
}

/* Quantile of the difference of two cumulative histograms, linear inside a bucket. */
static double hist_quantile(const hist_t *a, const hist_t *b, double q)
{
    double total = b->cum[b->n - 1] - a->cum[a->n - 1], want = q * total, prev = 0, lo = 0;
    for (int i = 0; i < b->n; i++) {
        double c = b->cum[i] - a->cum[i];
        if (c >= want && c > prev) {
            double hi = b->le[i] > 1e17 ? lo : b->le[i];
            return lo + (hi - lo) * (want - prev) / (c - prev);
        }
        prev = c;
        lo = b->le[i];
    }
    return lo;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* Latencies (ms) of the steady phase's messages: record ts minus the event's produce time. */
static long record_latencies(const long long *sent_ms, long n, long long *out, long max)
{
    FILE *f = fopen(record_path, "r");
    char line[8192];
    long k = 0;
    while (f && fgets(line, sizeof line, f) && k < max) {
        const char *c = strstr(line, "\"collapseId\":\"l");
        const char *t = strstr(line, "\"ts\":");
        long e;
        if (c && t && sscanf(c + 15, "%ld:", &e) == 1 && e >= 0 && e < n)
            out[k++] = strtoll(t + 5, NULL, 10) - sent_ms[e];
    }
    if (f)
        fclose(f);
    qsort(out, (size_t)k, sizeof *out, cmp_ll);
    return k;
}

/* perf record on herald's pid into opt.perf, until perf_stop. */
static void perf_start(void)
{
    char pid[16], log[400];
    snprintf(pid, sizeof pid, "%d", (int)herald.proc.pid);
    snprintf(log, sizeof log, "%s/perf.log", dir);
    char *const argv[] = {"perf",
                          "record",
                          "-q",
                          "-e",
                          "cpu-clock",
                          "--call-graph",
                          (char *)(uintptr_t)opt.graph,
                          "-p",
                          pid,
                          "-o",
                          (char *)(uintptr_t)opt.perf,
                          NULL};
    if (th_spawn(&perf, "perf", argv, NULL, log) != 0)
        die("perf did not start");
}

static void perf_stop(void)
{
    int st = th_stop(&perf, SIGINT, 30000);
    if (st < 0 || (WIFEXITED(st) && WEXITSTATUS(st) != 0) ||
        (WIFSIGNALED(st) && WTERMSIG(st) != SIGINT))
        fprintf(stderr, "bench_pipeline: perf record did not finish cleanly (see %s/perf.log)\n",
                dir);
}

/* ---- producing --------------------------------------------------------------------------------
 */

static rd_kafka_t *producer;

/* Keyed by user, as a bridge from SNS/SQS would, so events spread over the partitions. */
static void produce_one(const char *key, const char *value)
{
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            producer, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE((void *)(uintptr_t)value, strlen(value)), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            die("produce failed");
        rd_kafka_poll(producer, 10);
    }
    rd_kafka_poll(producer, 0);
}

static void make_producer(const char *bootstrap, const char *linger)
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, NULL, 0);
    rd_kafka_conf_set(c, "linger.ms", linger, NULL, 0);
    rd_kafka_conf_set(c, "log_level", "3", NULL, 0);
    if (producer) {
        rd_kafka_flush(producer, 30000);
        rd_kafka_destroy(producer);
    }
    producer = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (producer == NULL)
        die(err);
}

static void flush_producer(void)
{
    if (rd_kafka_flush(producer, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        die("flush failed");
}

/* Redis commands per event during the drain (a script's own calls count under their names). */
static void print_commandstats(const char *cs, long events)
{
    printf("  redis commands per event (calls, server usec):");
    for (const char *p = strstr(cs, "cmdstat_"); p; p = strstr(p + 1, "cmdstat_")) {
        char name[64];
        long long calls = 0, usec = 0;
        if (sscanf(p, "cmdstat_%63[^:]:calls=%lld,usec=%lld", name, &calls, &usec) == 3 &&
            calls >= events / 10)
            printf(" %s %.2f %.1f", name, (double)calls / (double)events,
                   (double)usec / (double)events);
    }
    printf("\n");
}

/* ---- phases -----------------------------------------------------------------------------------
 */

static void drain_phase(void)
{
    char ev[256], user[32];
    double t0 = mono_s();
    for (long e = 0; e < opt.events; e++) {
        snprintf(ev, sizeof ev, "{\"jobId\":\"d%ld\",\"userId\":\"u%ld\",\"status\":\"COMPLETED\"}",
                 e, e % opt.users);
        snprintf(user, sizeof user, "u%ld", e % opt.users);
        produce_one(user, ev);
    }
    flush_producer();
    printf("backlog: %ld events produced in %.2f s\n", opt.events, mono_s() - t0);
    fflush(stdout);
}

static void wait_accepted(long long want)
{
    double deadline = mono_s() + 600;
    while (accepted() < want) {
        if (mono_s() > deadline)
            die("deliveries stalled");
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
}

/* The drain starts when herald consumes its first event (it has joined the group). */
static void wait_consuming(void)
{
    double deadline = mono_s() + 60;
    while (herald_metric("herald_queue_events_consumed_total") <= 0) {
        if (mono_s() > deadline)
            die("herald consumed nothing");
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

static void steady_phase(long long base)
{
    long n = opt.rate * opt.seconds;
    long long *sent = calloc((size_t)n, sizeof *sent);
    char ev[256], user[32];
    hist_t h0, h1;
    scrape_hist("herald_end_to_end_seconds", &h0);
    if (opt.perf && opt.perf_steady)
        perf_start();
    double cpu0 = cpu_s(herald.proc.pid), t0 = mono_s(), rcpu0 = redis_cpu_s();
    for (long e = 0; e < n; e++) {
        sleep_until(t0 + (double)e / (double)opt.rate);
        sent[e] = wall_ms();
        snprintf(ev, sizeof ev,
                 "{\"jobId\":\"l%ld\",\"userId\":\"u%ld\",\"status\":\"COMPLETED\","
                 "\"timestamp\":%lld}",
                 e, e % opt.users, sent[e]);
        snprintf(user, sizeof user, "u%ld", e % opt.users);
        produce_one(user, ev);
    }
    flush_producer();
    wait_accepted(base + 2 * n);
    double cpu1 = cpu_s(herald.proc.pid), t1 = mono_s(), rcpu1 = redis_cpu_s();
    if (opt.perf && opt.perf_steady)
        perf_stop();
    scrape_hist("herald_end_to_end_seconds", &h1);
    struct timespec ts = {0, 200000000}; /* the simulator flushes its record every 50 ms */
    nanosleep(&ts, NULL);
    char path[300];
    snprintf(path, sizeof path, "%s/steady-sent.txt", dir); /* for offline analysis */
    FILE *f = fopen(path, "w");
    for (long e = 0; f && e < n; e++)
        fprintf(f, "l%ld %lld\n", e, sent[e]);
    if (f)
        fclose(f);
    long long *lat = calloc((size_t)(2 * n), sizeof *lat);
    long k = record_latencies(sent, n, lat, 2 * n);
    printf("steady: %ld events/s for %ld s (%ld notifications) in %.2f s, herald CPU %.2f s "
           "(%.1f%% of a core)\n",
           opt.rate, opt.seconds, 2 * n, t1 - t0, cpu1 - cpu0, 100 * (cpu1 - cpu0) / (t1 - t0));
    printf("  redis-server CPU %.2f s (%.1f%% of a core)\n", rcpu1 - rcpu0,
           100 * (rcpu1 - rcpu0) / (t1 - t0));
    if (k > 0)
        printf("  latency event timestamp -> simulator accepted (record, %ld msgs): p50 %lld ms, "
               "p99 %lld ms, max %lld ms\n",
               k, lat[k / 2], lat[k * 99 / 100], lat[k - 1]);
    printf("  herald_end_to_end_seconds (interpolated buckets): p50 %.1f ms, p99 %.1f ms\n",
           1000 * hist_quantile(&h0, &h1, 0.5), 1000 * hist_quantile(&h0, &h1, 0.99));
    free(lat);
    free(sent);
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--cluster") == 0) {
            opt.cluster = true;
            continue;
        }
        if (v == NULL)
            die("usage: bench_pipeline [--events N] [--users U] [--rate R] [--seconds S] "
                "[--log-level L] [--max-in-flight M] [--set \"key = value\"] [--perf FILE] "
                "[--perf-call-graph fp|dwarf] [--perf-phase drain|steady] [--cluster]");
        i++;
        if (strcmp(a, "--events") == 0)
            opt.events = atol(v);
        else if (strcmp(a, "--users") == 0)
            opt.users = atol(v);
        else if (strcmp(a, "--rate") == 0)
            opt.rate = atol(v);
        else if (strcmp(a, "--seconds") == 0)
            opt.seconds = atol(v);
        else if (strcmp(a, "--log-level") == 0)
            opt.log_level = v;
        else if (strcmp(a, "--max-in-flight") == 0)
            opt.max_in_flight = atol(v);
        else if (strcmp(a, "--perf") == 0)
            opt.perf = v;
        else if (strcmp(a, "--perf-call-graph") == 0)
            opt.graph = v;
        else if (strcmp(a, "--perf-phase") == 0)
            opt.perf_steady = strcmp(v, "steady") == 0;
        else if (strcmp(a, "--set") == 0)
            snprintf(opt.extra + strlen(opt.extra), sizeof opt.extra - strlen(opt.extra), "%s\n",
                     v);
        else
            die("unknown option");
    }
}

/* redis-server CPU seconds: the server's, or every cluster node's. */
static double redis_cpu_s(void)
{
    if (!opt.cluster)
        return cpu_s(redis->proc.pid);
    double t = 0;
    for (int i = 0; i < TH_CLUSTER_NODES; i++)
        t += cpu_s(cluster.node[i].proc.pid);
    return t;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    if (th_tmpdir(dir, sizeof dir) != 0)
        die("no temp dir");
    if (opt.cluster ? th_cluster_start(&cluster) != 0 : th_redis_start(redis, 0) != 0)
        die("redis did not start");
    if (opt.cluster)
        redis = &cluster.node[0];
    const char *bootstrap = th_kafka_start(TOPIC);
    if (bootstrap == NULL)
        die("mock cluster did not start");
    start_sim();
    if (seed_records(redis, opt.users * 2, 2, (int64_t)time(NULL), NULL, NULL) != 0)
        die("seeding failed");
    printf("herald pipeline bench (work dir %s, %s): %ld users x 2 devices, log.level=%s, "
           "queue.max_in_flight=%ld\n",
           dir, opt.cluster ? "Redis Cluster 3 + 3" : "redis-server", opt.users, opt.log_level,
           opt.max_in_flight);
    make_producer(bootstrap, "100");
    drain_phase();
    free(th_redis_cmd(redis, "CONFIG RESETSTAT")); /* commandstats count herald's work only */
    start_herald(bootstrap);
    wait_consuming();
    if (opt.perf && !opt.perf_steady)
        perf_start();
    double t_first = mono_s(), cpu_first = cpu_s(herald.proc.pid);
    double rcpu0 = redis_cpu_s(), scpu0 = cpu_s(sim.pid);
    long long n_first = accepted(), total = 2 * opt.events;
    wait_accepted(total);
    double t_end = mono_s(), cpu_end = cpu_s(herald.proc.pid);
    if (opt.perf && !opt.perf_steady)
        perf_stop();
    save_metrics("metrics-after-drain.txt");
    char *cs = th_redis_cmd(redis, "INFO commandstats"); /* a cluster: node 0's */
    char path[400];
    snprintf(path, sizeof path, "%s/redis-commandstats.txt", dir);
    FILE *f = fopen(path, "w");
    if (f && cs)
        fputs(cs, f);
    if (f)
        fclose(f);
    if (cs && !opt.cluster)
        print_commandstats(cs, opt.events);
    free(cs);
    double rate = (double)(total - n_first) / (t_end - t_first);
    printf("drain: %lld notifications in %.2f s from the first event consumed: %.0f "
           "notifications/s; herald CPU %.2f s (%.3f s per 100,000 notifications)\n",
           total - n_first, t_end - t_first, rate, cpu_end - cpu_first,
           (cpu_end - cpu_first) * 100000.0 / (double)(total - n_first));
    printf("  during the drain: redis-server CPU %.2f s, simulator CPU %.2f s\n",
           redis_cpu_s() - rcpu0, cpu_s(sim.pid) - scpu0);
    fflush(stdout);
    make_producer(bootstrap, "0");
    /* Connected and with metadata before the clock starts: an event of a user without devices. */
    produce_one("nobody", "{\"jobId\":\"warm-up\",\"userId\":\"nobody\",\"status\":\"COMPLETED\"}");
    flush_producer();
    steady_phase(total);
    printf("herald: peak RSS (VmHWM) %ld kB, RSS now %ld kB, CPU %.2f s in total\n",
           proc_status_kb(herald.proc.pid, "VmHWM:"), proc_status_kb(herald.proc.pid, "VmRSS:"),
           cpu_s(herald.proc.pid));
    int code = th_herald_stop(&herald, SIGTERM);
    rd_kafka_destroy(producer);
    th_stop(&sim, SIGTERM, 5000);
    if (opt.cluster)
        th_cluster_stop(&cluster);
    else
        th_redis_stop(redis);
    th_kafka_stop();
    if (code != 0)
        die("herald did not stop cleanly");
    return 0;
}
