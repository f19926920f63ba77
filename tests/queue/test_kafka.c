/* test_kafka.c - the consumer against librdkafka's mock cluster (real Kafka protocol on
 * loopback), started through queue/embedded.c once for the whole binary. Each test uses its own
 * topics and consumer group. Waits are bounded and on conditions; group joins take ~3 s each on
 * the mock broker. The test reads committed offsets and the DLQ topic with plain librdkafka. */
#include "core/log.h"
#include "queue/consumer.h"
#include "queue/embedded.h"
#include "tests/support/harness.h"

#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define MAXN 1024

static queue_embedded_t *cluster;
static char rundir[256];

typedef struct rec {
    bool hold;                  /* keep tickets instead of completing them at once */
    queue_ticket_t *held[MAXN]; /* in arrival order */
    size_t nheld;
    int seen[MAXN]; /* deliveries per event number */
    size_t nseen;
    size_t max_in_flight;
    int64_t first_offset;
    queue_consumer_t *c;
} rec_t;

static void on_event(const queue_event_t *ev, queue_ticket_t *t, void *arg)
{
    rec_t *r = arg;
    int n = atoi(ev->job_id + 4); /* "job-<n>" */
    assert_true(n >= 0 && n < MAXN);
    if (r->nseen == 0)
        r->first_offset = queue_ticket_offset(t);
    r->seen[n]++;
    r->nseen++;
    size_t inf = queue_consumer_in_flight(r->c);
    if (inf > r->max_in_flight)
        r->max_in_flight = inf;
    if (r->hold)
        r->held[r->nheld++] = t;
    else
        queue_complete(t);
}

static void tick(uv_timer_t *t)
{
    (void)t;
}

static bool run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg, int ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, tick, 5, 5);
    uv_update_time(loop);
    uint64_t end = uv_now(loop) + (uint64_t)ms;
    bool ok;
    while (!(ok = pred(arg)) && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static conf_t *make_conf(const char *topic, const char *group, long max_in_flight)
{
    conf_t *c = conf_create();
    char err[256], num[32];
    snprintf(num, sizeof num, "%ld", max_in_flight);
    assert_int_equal(conf_set(c, "kafka.embedded", "true", "test", err, sizeof err), 0);
    assert_int_equal(conf_set(c, "runtime.dir", rundir, "test", err, sizeof err), 0);
    assert_int_equal(conf_set(c, "queue.topics", topic, "test", err, sizeof err), 0);
    assert_int_equal(conf_set(c, "kafka.group.id", group, "test", err, sizeof err), 0);
    assert_int_equal(conf_set(c, "queue.max_in_flight", num, "test", err, sizeof err), 0);
    /* The mock broker makes a group that just lost its last member wait session.timeout.ms - 1 s
     * before the next join completes; a short session keeps the restart tests fast. */
    assert_int_equal(conf_set(c, "kafka.session.timeout.ms", "3000", "test", err, sizeof err), 0);
    assert_int_equal(conf_set(c, "kafka.heartbeat.interval.ms", "1000", "test", err, sizeof err),
                     0);
    return c;
}

/* The consumer's options from a make_conf() configuration (the test keeps kafka.* there). */
static queue_kafka_opts_t kafka_of(const conf_t *c)
{
    return (queue_kafka_opts_t){
        .props = c->kafka, .nprops = c->nkafka, .embedded = true, .runtime_dir = rundir};
}

static queue_consumer_opts_t consumer_of(const conf_t *c, queue_handler_t h, metric_reg_t *reg)
{
    return (queue_consumer_opts_t){.kafka = kafka_of(c),
                                   .topics = c->queue_topics,
                                   .max_in_flight = c->queue_max_in_flight,
                                   .max_event_bytes = 65536,
                                   .handler = h,
                                   .metrics = reg};
}

/* ---- producing test events ---- */

typedef struct acks {
    size_t ok, failed;
} acks_t;

static void on_dr(const queue_delivery_t *dr, void *arg)
{
    acks_t *a = arg;
    if (dr->status == QUEUE_OK)
        a->ok++;
    else
        a->failed++;
}

static bool acked(void *arg)
{
    acks_t *a = arg;
    return a->ok + a->failed >= a[1].ok; /* a[1].ok holds the expected count */
}

static void event_json(char *out, size_t outlen, int n)
{
    snprintf(out, outlen,
             "{\"jobId\":\"job-%d\",\"userId\":\"user-%d\",\"status\":\"COMPLETED\","
             "\"timestamp\":\"2026-11-24T21:04:05Z\"}",
             n, n % 7);
}

/* Produces events first..first+count-1, keyed so they spread over partitions (or one key). */
static void produce_events(uv_loop_t *loop, const conf_t *conf, const char *topic, int first,
                           int count, const char *fixed_key)
{
    char err[256];
    queue_kafka_opts_t ko = kafka_of(conf);
    queue_producer_t *p = queue_producer_create(loop, &ko, NULL, err, sizeof err);
    assert_non_null(p);
    acks_t a[2] = {{0, 0}, {(size_t)count, 0}};
    for (int i = first; i < first + count; i++) {
        char v[256], k[32];
        event_json(v, sizeof v, i);
        snprintf(k, sizeof k, "k%d", i);
        const char *key = fixed_key ? fixed_key : k;
        assert_int_equal(
            queue_produce(p, topic, key, strlen(key), v, strlen(v), NULL, 0, on_dr, &a[0]), 0);
    }
    assert_true(run_until(loop, acked, a, 10000));
    assert_int_equal(a[0].failed, 0);
    queue_producer_destroy(p);
}

/* ---- committed offsets and topic contents, read with plain librdkafka ---- */

static rd_kafka_t *plain_consumer(const char *group)
{
    char e[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    assert_int_equal(
        rd_kafka_conf_set(kc, "bootstrap.servers", queue_embedded_bootstrap(cluster), e, sizeof e),
        RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(kc, "group.id", group, e, sizeof e);
    rd_kafka_conf_set(kc, "enable.auto.commit", "false", e, sizeof e);
    rd_kafka_conf_set(kc, "log_level", "3", e, sizeof e);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, e, sizeof e);
    assert_non_null(rk);
    return rk;
}

/* Committed offset of each partition 0..n-1 into out (-1001 when none). */
static void committed(const char *group, const char *topic, int n, int64_t *out)
{
    rd_kafka_t *rk = plain_consumer(group);
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(tpl, topic, i);
    assert_int_equal(rd_kafka_committed(rk, tpl, 10000), 0);
    for (int i = 0; i < n; i++)
        out[i] = tpl->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(tpl);
    rd_kafka_destroy(rk);
}

static int64_t high_watermark(const char *topic, int partition)
{
    rd_kafka_t *rk = plain_consumer("hwm-reader");
    int64_t lo, hi;
    assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi, 10000), 0);
    rd_kafka_destroy(rk);
    return hi;
}

/* ---- stopping ---- */

typedef struct stopped {
    bool done;
    int status;
} stopped_t;

static void on_stopped(int status, void *arg)
{
    stopped_t *s = arg;
    s->done = true;
    s->status = status;
}

static bool is_stopped(void *arg)
{
    return ((stopped_t *)arg)->done;
}

static int stop_and_destroy(uv_loop_t *loop, queue_consumer_t *c, int timeout_ms)
{
    stopped_t s = {false, 0};
    assert_int_equal(queue_consumer_stop(c, timeout_ms, on_stopped, &s), 0);
    assert_int_equal(queue_consumer_stop(c, timeout_ms, on_stopped, &s), QUEUE_ECLOSED);
    assert_false(s.done); /* never from inside the call */
    assert_true(run_until(loop, is_stopped, &s, timeout_ms + 15000));
    queue_consumer_destroy(c);
    uv_run(loop, UV_RUN_DEFAULT); /* closes the handles */
    return s.status;
}

static queue_consumer_t *start(uv_loop_t *loop, const conf_t *conf, metric_reg_t *reg, rec_t *r)
{
    char err[512];
    queue_consumer_opts_t o = consumer_of(conf, (queue_handler_t){on_event, r}, reg);
    queue_consumer_t *c = queue_consumer_create(loop, &o, err, sizeof err);
    if (!c)
        fail_msg("queue_consumer_create: %s", err);
    r->c = c;
    return c;
}

typedef struct want {
    rec_t *r;
    size_t n;
} want_t;

static bool seen_n(void *arg)
{
    want_t *w = arg;
    return w->r->nseen >= w->n;
}

/* One test's loop and configuration, on its own topic and consumer group. */
typedef struct tcase {
    uv_loop_t loop;
    conf_t *conf;
} tcase_t;

/* Creates the topic with `partitions` partitions and produces events 0..events-1 to it. */
static void case_begin(tcase_t *t, const char *topic, const char *group, int partitions,
                       long max_in_flight, int events)
{
    uv_loop_init(&t->loop);
    assert_int_equal(queue_embedded_topic(cluster, topic, partitions), 0);
    t->conf = make_conf(topic, group, max_in_flight);
    if (events > 0)
        produce_events(&t->loop, t->conf, topic, 0, events, NULL);
}

static void case_end(tcase_t *t)
{
    conf_destroy(t->conf);
    assert_int_equal(uv_loop_close(&t->loop), 0);
}

/* Starts a consumer (metrics in reg, may be NULL) recording into a new rec_t, which keeps the
 * tickets when hold, and runs the loop until n events arrived. Returns the rec_t (free it); its
 * c is the consumer. */
static rec_t *consume(tcase_t *t, metric_reg_t *reg, bool hold, size_t n)
{
    rec_t *r = calloc(1, sizeof *r);
    r->hold = hold;
    start(&t->loop, t->conf, reg, r);
    want_t w = {r, n};
    assert_true(run_until(&t->loop, seen_n, &w, 20000));
    return r;
}

/* ---- tests ---- */

static bool lag_rendered(void *arg)
{
    buf_t b = BUF_INIT;
    metric_render(arg, &b);
    bool ok =
        strstr(buf_cstr(&b), "herald_queue_consumer_lag{topic=\"t-all\",partition=\"") != NULL;
    buf_cleanup(&b);
    return ok;
}

/* Every event reaches the handler exactly once; a clean stop commits every partition's end. */
static void test_delivers_all(void **state)
{
    (void)state;
    tcase_t t;
    case_begin(&t, "t-all", "g-all", 4, 1000, 200);
    metric_reg_t *reg = metric_reg_create();
    rec_t *r = consume(&t, reg, false, 200);
    for (int i = 0; i < 200; i++)
        assert_int_equal(r->seen[i], 1);
    assert_int_equal(queue_consumer_assigned(r->c), 4);
    assert_true(run_until(&t.loop, lag_rendered, reg, 5000));
    assert_int_equal(stop_and_destroy(&t.loop, r->c, 5000), 0);
    int64_t off[4];
    committed("g-all", "t-all", 4, off);
    int64_t total = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(off[i], high_watermark("t-all", i));
        total += off[i];
    }
    assert_int_equal(total, 200);
    buf_t b = BUF_INIT;
    metric_render(reg, &b);
    assert_non_null(strstr(buf_cstr(&b), "herald_queue_events_consumed_total 200"));
    assert_non_null(
        strstr(buf_cstr(&b), "herald_queue_events_decoded_total{status=\"COMPLETED\"} 200"));
    buf_cleanup(&b);
    metric_reg_destroy(reg);
    free(r);
    case_end(&t);
}

/* Completions out of order store only the contiguous prefix: with offset 1 never completed, the
 * committed offset is 1, and a restart redelivers offsets 1..9 and nothing before. */
static void test_out_of_order(void **state)
{
    (void)state;
    tcase_t t;
    case_begin(&t, "t-ooo", "g-ooo", 1, 1000, 10);
    rec_t *r = consume(&t, NULL, true, 10);
    assert_int_equal(queue_consumer_in_flight(r->c), 10);
    for (int i = 9; i >= 2; i--)
        queue_complete(r->held[i]);
    queue_complete(r->held[0]);
    assert_int_equal(queue_consumer_in_flight(r->c), 1);
    /* ticket 1 stays in flight: the stop times out waiting for it */
    assert_int_equal(stop_and_destroy(&t.loop, r->c, 300), QUEUE_ETIMEDOUT);
    int64_t off;
    committed("g-ooo", "t-ooo", 1, &off);
    assert_int_equal(off, 1);

    rec_t *r2 = consume(&t, NULL, false, 9);
    assert_int_equal(r2->first_offset, 1);
    assert_int_equal(r2->seen[0], 0);
    for (int i = 1; i < 10; i++)
        assert_int_equal(r2->seen[i], 1);
    assert_int_equal(stop_and_destroy(&t.loop, r2->c, 5000), 0);
    committed("g-ooo", "t-ooo", 1, &off);
    assert_int_equal(off, 10);
    free(r);
    free(r2);
    case_end(&t);
}

/* ---- DLQ ---- */

typedef struct dlqrec {
    char value[256];
    char reason[32], field[32], src_topic[64], x_test[16];
    int64_t src_partition, src_offset;
} dlqrec_t;

static void header_str(rd_kafka_headers_t *hs, const char *name, char *out, size_t outlen)
{
    const void *v;
    size_t n;
    out[0] = '\0';
    if (hs && rd_kafka_header_get_last(hs, name, &v, &n) == 0 && v)
        snprintf(out, outlen, "%.*s", (int)n, (const char *)v);
}

/* Reads up to max records of a topic's partitions 0..nparts-1 from the beginning. */
static size_t read_topic(const char *topic, int nparts, dlqrec_t *out, size_t max, int timeout_ms)
{
    rd_kafka_t *rk = plain_consumer("dlq-reader");
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(nparts);
    for (int i = 0; i < nparts; i++)
        rd_kafka_topic_partition_list_add(tpl, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, tpl), 0);
    rd_kafka_topic_partition_list_destroy(tpl);
    size_t n = 0;
    for (int waited = 0; n < max && waited < timeout_ms; waited += 100) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err) {
            dlqrec_t *d = &out[n++];
            memset(d, 0, sizeof *d);
            snprintf(d->value, sizeof d->value, "%.*s", (int)m->len, (const char *)m->payload);
            rd_kafka_headers_t *hs = NULL;
            rd_kafka_message_headers(m, &hs);
            char tmp[32];
            header_str(hs, "herald-dlq-reason", d->reason, sizeof d->reason);
            header_str(hs, "herald-dlq-field", d->field, sizeof d->field);
            header_str(hs, "herald-source-topic", d->src_topic, sizeof d->src_topic);
            header_str(hs, "x-test", d->x_test, sizeof d->x_test);
            header_str(hs, "herald-source-partition", tmp, sizeof tmp);
            d->src_partition = tmp[0] ? atoll(tmp) : -1;
            header_str(hs, "herald-source-offset", tmp, sizeof tmp);
            d->src_offset = tmp[0] ? atoll(tmp) : -1;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

/* A poison message goes to the DLQ with reason and source headers and its original value and
 * headers; the events after it on the same partition are still delivered; offsets commit past
 * it once the DLQ acknowledged the record. */
static void test_poison_to_dlq(void **state)
{
    (void)state;
    tcase_t t;
    case_begin(&t, "t-poison", "g-poison", 2, 1000, 0);
    assert_int_equal(queue_embedded_topic(cluster, "t-poison.dlq", 2), 0);
    char err[256];
    queue_kafka_opts_t ko = kafka_of(t.conf);
    queue_producer_t *p = queue_producer_create(&t.loop, &ko, NULL, err, sizeof err);
    assert_non_null(p);
    acks_t a[2] = {{0, 0}, {4, 0}};
    char v0[256], v3[256];
    event_json(v0, sizeof v0, 0);
    event_json(v3, sizeof v3, 3);
    const char *bad1 = "this is not json";
    const char *bad2 = "{\"jobId\":\"job-2\",\"status\":\"FAILED\"}";
    queue_header_t xh = {"x-test", "kept", 4};
    const char *vals[] = {v0, bad1, bad2, v3};
    for (int i = 0; i < 4; i++)
        assert_int_equal(queue_produce(p, "t-poison", "same", 4, vals[i], strlen(vals[i]),
                                       i == 1 ? &xh : NULL, i == 1, on_dr, &a[0]),
                         0);
    assert_true(run_until(&t.loop, acked, a, 10000));
    queue_producer_destroy(p);

    metric_reg_t *reg = metric_reg_create();
    rec_t *r = consume(&t, reg, false, 2);
    assert_int_equal(r->seen[0], 1);
    assert_int_equal(r->seen[3], 1);
    assert_int_equal(stop_and_destroy(&t.loop, r->c, 5000), 0);

    dlqrec_t d[2];
    assert_int_equal(high_watermark("t-poison.dlq", 0) + high_watermark("t-poison.dlq", 1), 2);
    size_t n = read_topic("t-poison.dlq", 2, d, 2, 10000);
    assert_int_equal(n, 2);
    int src_part = -1;
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(d[i].src_topic, "t-poison");
        src_part = (int)d[i].src_partition;
        if (d[i].src_offset == 1) {
            assert_string_equal(d[i].reason, "not_json");
            assert_string_equal(d[i].value, bad1);
            assert_string_equal(d[i].x_test, "kept");
        } else {
            assert_int_equal(d[i].src_offset, 2);
            assert_string_equal(d[i].reason, "missing_user_id");
            assert_string_equal(d[i].value, bad2);
        }
    }
    int64_t off[2];
    committed("g-poison", "t-poison", 2, off);
    assert_int_equal(off[src_part], 4);
    buf_t b = BUF_INIT;
    metric_render(reg, &b);
    assert_non_null(strstr(buf_cstr(&b), "herald_queue_dlq_total{reason=\"not_json\"} 1"));
    assert_non_null(strstr(buf_cstr(&b), "herald_queue_dlq_total{reason=\"missing_user_id\"} 1"));
    buf_cleanup(&b);
    metric_reg_destroy(reg);
    free(r);
    case_end(&t);
}

/* ---- backpressure ---- */

typedef struct bp {
    rec_t *r;
    queue_consumer_t *c;
} bp_t;

static bool full_and_paused(void *arg)
{
    bp_t *b = arg;
    return b->r->nheld == 10 && queue_consumer_held(b->c) == 5 &&
           queue_consumer_paused(b->c) == queue_consumer_assigned(b->c) &&
           queue_consumer_assigned(b->c) > 0;
}

static bool release_all(void *arg)
{
    bp_t *b = arg;
    while (b->r->nheld > 0)
        queue_complete(b->r->held[--b->r->nheld]);
    return b->r->nseen >= 100 && queue_consumer_paused(b->c) == 0;
}

static bool time_passes(void *arg)
{
    (void)arg;
    return false;
}

/* With queue.max_in_flight = 10 and a handler that keeps its tickets, the handler never holds
 * more than 10, 5 more wait decoded in the consumer, nothing more is taken from librdkafka, and
 * once the consumer stayed full for PAUSE_AFTER_MS (2 s) every partition is paused (nothing more
 * arrives while the loop keeps polling); releasing the tickets resumes the flow. */
static void test_backpressure(void **state)
{
    (void)state;
    tcase_t t;
    case_begin(&t, "t-bp", "g-bp", 4, 10, 100);
    rec_t *r = consume(&t, NULL, true, 0);
    bp_t b = {r, r->c};
    assert_true(run_until(&t.loop, full_and_paused, &b, 20000));
    /* Keep the loop (and librdkafka's polling) running a while: nothing more arrives. */
    run_until(&t.loop, time_passes, NULL, 500);
    assert_int_equal(r->nseen, 10);
    assert_int_equal(queue_consumer_in_flight(r->c), 10);
    assert_int_equal(queue_consumer_held(r->c), 5);
    assert_true(run_until(&t.loop, release_all, &b, 20000));
    for (int i = 0; i < 100; i++)
        assert_int_equal(r->seen[i], 1);
    assert_true(r->max_in_flight <= 10);
    assert_int_equal(stop_and_destroy(&t.loop, r->c, 5000), 0);
    free(r);
    case_end(&t);
}

/* A restart after a clean stop reprocesses nothing: only the new event arrives. */
static void test_restart_after_clean_stop(void **state)
{
    (void)state;
    tcase_t t;
    case_begin(&t, "t-restart", "g-restart", 4, 1000, 50);
    rec_t *r = consume(&t, NULL, false, 50);
    assert_int_equal(stop_and_destroy(&t.loop, r->c, 5000), 0);

    rec_t *r2 = consume(&t, NULL, false, 0);
    produce_events(&t.loop, t.conf, "t-restart", 500, 1, NULL);
    want_t w2 = {r2, 1};
    assert_true(run_until(&t.loop, seen_n, &w2, 20000));
    run_until(&t.loop, time_passes, NULL, 300);
    assert_int_equal(r2->nseen, 1);
    assert_int_equal(r2->seen[500], 1);
    assert_int_equal(stop_and_destroy(&t.loop, r2->c, 5000), 0);
    free(r);
    free(r2);
    case_end(&t);
}

/* ---- callbacks fire exactly once ---- */

typedef struct dr_count {
    int calls;
    int status;
} dr_count_t;

static void on_dr_count(const queue_delivery_t *dr, void *arg)
{
    dr_count_t *d = arg;
    d->calls++;
    d->status = dr->status;
}

typedef struct all_reported {
    dr_count_t *d;
    size_t n;
} all_reported_t;

static bool reported(void *arg)
{
    all_reported_t *a = arg;
    for (size_t i = 0; i < a->n; i++)
        if (a->d[i].calls == 0)
            return false;
    return true;
}

/* queue_produce reports every outcome through its callback, once and never from inside the call:
 * a value over message.max.bytes (QUEUE_ERR) and a full local queue (QUEUE_EFULL) included; a
 * destroy reports what is still unacknowledged or unreported, from inside the destroy. */
static void test_produce_callbacks_once(void **state)
{
    (void)state;
    tcase_t t;
    case_begin(&t, "t-refuse", "g-refuse", 1, 10, 0);
    char err[256];
    assert_int_equal(
        conf_set(t.conf, "kafka.queue.buffering.max.messages", "1", "test", err, sizeof err), 0);
    queue_kafka_opts_t ko = kafka_of(t.conf);
    queue_producer_t *p = queue_producer_create(&t.loop, &ko, NULL, err, sizeof err);
    assert_non_null(p);
    size_t big_len = 2u << 20;
    char *big = calloc(1, big_len);
    dr_count_t d[8] = {{0, 0}};
    const char *v = "{}";
    assert_int_equal(
        queue_produce(p, "t-refuse", NULL, 0, big, big_len, NULL, 0, on_dr_count, &d[0]), 0);
    for (int i = 1; i < 4; i++) /* room for one: the next two are refused */
        assert_int_equal(queue_produce(p, "t-refuse", NULL, 0, v, 2, NULL, 0, on_dr_count, &d[i]),
                         0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(d[i].calls, 0); /* never from inside queue_produce */
    all_reported_t a = {d, 4};
    assert_true(run_until(&t.loop, reported, &a, 10000));
    assert_int_equal(d[0].status, QUEUE_ERR);
    assert_int_equal(d[1].status, QUEUE_OK);
    assert_int_equal(d[2].status, QUEUE_EFULL);
    assert_int_equal(d[3].status, QUEUE_EFULL);
    /* Destroyed at once: one message queued, one refused and not reported yet. */
    assert_int_equal(queue_produce(p, "t-refuse", NULL, 0, v, 2, NULL, 0, on_dr_count, &d[4]), 0);
    assert_int_equal(queue_produce(p, "t-refuse", NULL, 0, v, 2, NULL, 0, on_dr_count, &d[5]), 0);
    assert_int_equal(d[4].calls + d[5].calls, 0);
    queue_producer_destroy(p);
    assert_int_equal(d[4].calls, 1);
    assert_int_equal(d[5].calls, 1);
    assert_int_equal(d[5].status, QUEUE_ECLOSED);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 6; i++)
        assert_int_equal(d[i].calls, 1);
    assert_int_equal(queue_produce(NULL, "t", NULL, 0, v, 2, NULL, 0, on_dr_count, &d[6]),
                     QUEUE_EINVAL);
    assert_int_equal(d[6].calls, 0);
    free(big);
    case_end(&t);
}

typedef struct stop_count {
    int calls;
    int status;
} stop_count_t;

static void on_stop_count(int status, void *arg)
{
    stop_count_t *s = arg;
    s->calls++;
    s->status = status;
}

static bool stop_reported(void *arg)
{
    return ((stop_count_t *)arg)->calls > 0;
}

/* The stop callback fires once: after a normal stop (and not again at destroy), and from the
 * destroy with QUEUE_ECLOSED when the consumer is destroyed while its stop still waits for
 * events in flight (it used to fire zero times). */
static void test_stop_callback_once(void **state)
{
    (void)state;
    tcase_t t;
    case_begin(&t, "t-stop1", "g-stop1", 1, 100, 3);
    rec_t *r = consume(&t, NULL, true, 3);
    stop_count_t s = {0, 0};
    assert_int_equal(queue_consumer_stop(r->c, 60000, on_stop_count, &s), 0);
    run_until(&t.loop, time_passes, NULL, 300); /* draining: three events still held */
    assert_int_equal(s.calls, 0);
    queue_consumer_destroy(r->c);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, QUEUE_ECLOSED);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    assert_int_equal(s.calls, 1);

    rec_t *r2 = consume(&t, NULL, false, 3);
    stop_count_t s2 = {0, 0};
    assert_int_equal(queue_consumer_stop(r2->c, 5000, on_stop_count, &s2), 0);
    assert_true(run_until(&t.loop, stop_reported, &s2, 20000));
    assert_int_equal(s2.status, 0);
    queue_consumer_destroy(r2->c);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    assert_int_equal(s2.calls, 1);
    free(r);
    free(r2);
    case_end(&t);
}

/* The bootstrap file exists while the cluster runs; a bad enable.auto.offset.store is refused. */
static void test_embedded_file_and_conf(void **state)
{
    (void)state;
    char path[512], line[256];
    snprintf(path, sizeof path, "%s/kafka.bootstrap", rundir);
    assert_true(
        th_wait_file_contains(path, queue_embedded_bootstrap(cluster), line, sizeof line, 1000));
    conf_t *conf = make_conf("t-x", "g-x", 10);
    char err[512];
    assert_int_equal(
        conf_set(conf, "kafka.enable.auto.offset.store", "true", "test", err, sizeof err), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    rec_t r = {0};
    queue_consumer_opts_t o = consumer_of(conf, (queue_handler_t){on_event, &r}, NULL);
    assert_null(queue_consumer_create(&loop, &o, err, sizeof err));
    assert_non_null(strstr(err, "enable.auto.offset.store"));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    conf_destroy(conf);
}

static int setup(void **state)
{
    (void)state;
    log_set_level(getenv("HERALD_TEST_LOG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
    if (th_tmpdir(rundir, sizeof rundir) < 0)
        return -1;
    strncat(rundir, "/run", sizeof rundir - strlen(rundir) - 1);
    conf_t *conf = conf_create();
    char err[256];
    conf_set(conf, "queue.topics", "job-events", "test", err, sizeof err);
    conf_set(conf, "runtime.dir", rundir, "test", err, sizeof err);
    cluster = queue_embedded_start(conf, 1, err, sizeof err);
    conf_destroy(conf);
    if (!cluster)
        fprintf(stderr, "embedded: %s\n", err);
    return cluster ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    queue_embedded_destroy(cluster);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded_file_and_conf),
        cmocka_unit_test(test_delivers_all),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_poison_to_dlq),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_restart_after_clean_stop),
        cmocka_unit_test(test_produce_callbacks_once),
        cmocka_unit_test(test_stop_callback_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
