/* daemon.c - wiring. Creation order follows dependencies (metrics, Redis, store, limiter, auth,
 * API; then the dispatcher: templates, Expo, DLQ producer, lease, claims, receipts, pipeline,
 * consumer; then the listeners), so every module gets all it needs at create; options come from
 * options.c. Shutdown runs the other way: stop accepting, let requests in flight finish within
 * shutdown.timeout_s, stop sending, give the instance's lease up, then close Redis (whatever
 * still waits gets a 503) and the listeners. */
#include "daemon/daemon.h"
#include "core/file.h"
#include "daemon/options.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "http/admin.h"
#include "http/http_server.h"
#include "pipeline/lease.h"
#include "pipeline/pipeline.h"
#include "pipeline/templates.h"
#include "pipeline/privacy.h"
#include "pipeline/trace.h"
#include "expo/expo.h"
#include "expo/rate_shared.h"
#include "expo/receipts.h"
#include "queue/consumer.h"
#include "queue/embedded.h"
#include "tokens/api.h"
#include "tokens/auth.h"
#include "tokens/ratelimit.h"
#include "tokens/store.h"
#include "tokens/sweep.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

struct disp_daemon {
    conf_t *conf;
    disp_daemon_opts_t opts;
    char *ready_file;
    uv_loop_t loop;
    metric_reg_t *metrics;
    db_t *db;
    tok_store_t *store;
    tok_rl_t *rl;
    tok_auth_t *auth;
    tok_api_t *api;
    tok_sweep_t *sweep;
    disp_admin_t *admin;
    disp_http_t *http;
    disp_http_t *admin_http;
    /* dispatcher (only when Kafka is configured) */
    queue_embedded_t *embedded;
    queue_consumer_t *consumer;
    queue_producer_t *dlq;
    disp_claims_t *claims;
    disp_lease_t *lease;
    expo_client_t *expo;
    char *expo_token;
    expo_shared_rate_t *shared_rate;
    expo_receipts_t *receipts;
    disp_templates_t *templates;
    disp_trace_t *trace;
    disp_privacy_t *privacy;
    disp_pipeline_t *pipeline;
    bool queue_stopped;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t drain_timer;
    bool signals_started;
    uint64_t drain_deadline;
    bool stopping;
    int exit_code; /* 0, or 1 once a fatal runtime error stopped herald */
};

static void on_fatal(const char *reason, void *arg);

static bool redis_ready(void *arg, char *reason, size_t len)
{
    db_t *db = arg;
    if (db_ready(db))
        return true;
    snprintf(reason, len, "redis: %s", *db_last_error(db) ? db_last_error(db) : "connecting");
    return false;
}

static void on_api(http_req_t *req, void *arg)
{
    tok_api_handle(arg, req);
}

static void on_admin(http_req_t *req, void *arg)
{
    disp_admin_handle(arg, req);
}

static int make_listeners(disp_daemon_t *d, char *err, size_t errlen)
{
    disp_http_opts_t ho, ao;
    daemon_api_listener_opts(d->conf, &ho);
    ho.metrics = d->metrics;
    d->http = disp_http_create(&d->loop, &ho, on_api, d->api, err, errlen);
    if (d->http == NULL)
        return -1;
    daemon_admin_listener_opts(d->conf, &ao);
    ao.metrics = d->metrics;
    d->admin_http = disp_http_create(&d->loop, &ao, on_admin, d->admin, err, errlen);
    return d->admin_http ? 0 : -1;
}

static int make_modules(disp_daemon_t *d, char *err, size_t errlen)
{
    const conf_t *c = d->conf;
    char *pw = NULL;
    size_t pwlen;
    if (*c->redis_password_file &&
        file_read_secret(c->redis_password_file, 4096, &pw, &pwlen, err, errlen) != 0)
        return -1;
    db_opts_t dbo;
    daemon_db_opts(c, pw, &dbo);
    dbo.metrics = d->metrics;
    d->db = db_create(&d->loop, &dbo, err, errlen);
    free(pw);
    if (d->db == NULL)
        return -1;
    d->store = tok_store_redis_create(d->db, c->redis_prefix, NULL, c->tokens_max_devices_per_user);
    /* On a cluster a registration's user and token keys live in different slots. */
    tok_store_redis_split(d->store, db_is_cluster(d->db));
    tok_sweep_opts_t so;
    daemon_sweep_opts(c, &so);
    d->sweep = tok_sweep_create(&d->loop, d->db, &so, d->metrics);
    d->rl = tok_rl_create(d->db, c->redis_prefix);
    if (strcmp(c->auth_mode, "jwt") == 0 && (d->auth = daemon_auth(c, err, errlen)) == NULL)
        return -1;
    if (strcmp(c->auth_mode, "trusted-header") == 0)
        LOG(LOG_LVL_WARN,
            "auth.mode = trusted-header: the user id is taken from a request header "
            "without verification; only run this behind a gateway that sets it",
            LKS("header", c->auth_trusted_header));
    d->privacy = disp_privacy_create(d->db, c->redis_prefix);
    tok_api_opts_t ao = {.store = d->store,
                         .auth = d->auth,
                         .trusted_header = d->auth ? NULL : c->auth_trusted_header,
                         .ratelimit = d->rl,
                         .limits = daemon_rl_limits(c),
                         .ttl_days = c->tokens_ttl_days,
                         .trust_forwarded_for = c->http_trust_forwarded_for,
                         .access_log = true,
                         .metrics = d->metrics,
                         .purge = disp_privacy_api_purge,
                         .purge_arg = d->privacy};
    d->api = tok_api_create(&ao);
    tok_api_set_limits(d->api, &ao.limits, c->ratelimit_enabled);
    d->admin = disp_admin_create(d->metrics);
    disp_admin_add_check(d->admin, "redis", redis_ready, d->db);
    return 0;
}

static int make_expo(disp_daemon_t *d, char *err, size_t errlen)
{
    const conf_t *c = d->conf;
    expo_opts_t eo;
    if (daemon_expo_opts(c, &eo, &d->expo_token, err, errlen) != 0)
        return -1;
    if (c->expo_shared_rate_limit && c->expo_rate_per_sec > 0) {
        d->shared_rate = expo_shared_rate_create(d->db, c->redis_prefix, c->expo_rate_per_sec);
        eo.rate_hook = expo_shared_rate_hook(d->shared_rate);
    }
    d->expo = expo_client_create(&d->loop, &eo, d->metrics, err, errlen);
    if (d->expo == NULL)
        return -1;
    return 0;
}

/* The receipts poller and the pipeline need each other: the poller's callback reaches the
 * pipeline through the daemon, which has it by the time the poller starts. */
static long on_receipt(const expo_ticket_info_t *t, expo_rcpt_status_t st, const char *error,
                       const char *message, void *arg)
{
    disp_daemon_t *d = arg;
    return disp_pipeline_on_receipt(t, st, error, message, d->pipeline);
}

static int make_receipts(disp_daemon_t *d, char *err, size_t errlen)
{
    expo_receipts_opts_t ro;
    daemon_receipts_opts(d->conf, d->expo_token ? d->expo_token : d->conf->expo_access_token, &ro);
    ro.on_receipt = on_receipt;
    ro.arg = d;
    d->receipts = expo_receipts_create(&d->loop, d->db, &ro, d->metrics, err, errlen);
    return d->receipts ? 0 : -1;
}

static int make_queue_side(disp_daemon_t *d, char *err, size_t errlen)
{
    const conf_t *c = d->conf;
    if (c->kafka_embedded) {
        d->embedded = queue_embedded_start(c, 1, err, errlen);
        if (d->embedded == NULL)
            return -1;
        LOG(LOG_LVL_WARN,
            "kafka.embedded = true: running librdkafka's mock cluster (development "
            "only)",
            LKS("bootstrap", queue_embedded_bootstrap(d->embedded)));
    }
    queue_kafka_opts_t ko;
    daemon_kafka_opts(c, &ko);
    d->dlq = queue_producer_create(&d->loop, &ko, d->metrics, err, errlen);
    return d->dlq ? 0 : -1;
}

static void make_pipeline(disp_daemon_t *d)
{
    const conf_t *c = d->conf;
    disp_lease_opts_t lo;
    daemon_lease_opts(c, &lo);
    lo.metrics = d->metrics;
    d->lease = disp_lease_create(&d->loop, d->db, &lo);
    disp_claims_redis_opts_t co;
    daemon_claims_opts(c, &co);
    co.lease = d->lease;
    d->claims = disp_claims_redis_create(d->db, &co);
    d->trace = disp_trace_create(d->db, c->redis_prefix, c->trace_ttl_s, co.done_ttl_s,
                                 c->trace_max_records);
    disp_pipeline_deps_t deps = {.loop = &d->loop,
                                 .store = d->store,
                                 .claims = d->claims,
                                 .expo = d->expo,
                                 .receipts = d->receipts,
                                 .dlq = d->dlq,
                                 .templates = d->templates,
                                 .trace = d->trace,
                                 .metrics = d->metrics};
    disp_pipeline_opts_t po;
    daemon_pipeline_opts(c, &po);
    d->pipeline = disp_pipeline_create(&deps, &po);
}

/* One warning line per template that the longest placeholder values could push over Expo's
 * payload limit (disp_templates_warnings). */
static void log_template_warnings(const disp_templates_t *t)
{
    const char *w = disp_templates_warnings(t);
    while (*w) {
        size_t n = strcspn(w, "\n");
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)n, w);
        LOG(LOG_LVL_WARN, "template may exceed Expo's payload limit", LKS("detail", line));
        w += n + (w[n] == '\n');
    }
}

/* The dispatcher runs when Kafka is configured (a broker list, or the embedded one). */
static int make_dispatcher(disp_daemon_t *d, char *err, size_t errlen)
{
    const conf_t *c = d->conf;
    if (!c->kafka_embedded && conf_kafka_get(c, "bootstrap.servers") == NULL) {
        LOG0(LOG_LVL_WARN, "no Kafka configured (kafka.bootstrap.servers or kafka.embedded): "
                           "serving the registration API only");
        return 0;
    }
    if ((d->templates = daemon_templates(c, err, errlen)) == NULL ||
        make_expo(d, err, errlen) != 0 || make_queue_side(d, err, errlen) != 0 ||
        make_receipts(d, err, errlen) != 0)
        return -1;
    log_template_warnings(d->templates);
    make_pipeline(d);
    queue_consumer_opts_t qo;
    daemon_consumer_opts(c, &qo);
    qo.handler = (queue_handler_t){.on_event = disp_pipeline_on_event, .arg = d->pipeline};
    qo.dlq = d->dlq;
    qo.metrics = d->metrics;
    d->consumer = queue_consumer_create(&d->loop, &qo, err, errlen);
    if (d->consumer == NULL)
        return -1;
    expo_receipts_start(d->receipts);
    disp_lease_start(d->lease);
    queue_consumer_on_fatal(d->consumer, on_fatal, d);
    return 0;
}

static int write_ready_file(disp_daemon_t *d, char *err, size_t errlen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", d->ready_file);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        goto fail;
    fprintf(f, "{\"pid\":%d,\"api_port\":%d,\"admin_port\":%d,\"kafka\":\"%s\"}\n", (int)getpid(),
            disp_http_port(d->http), disp_http_port(d->admin_http),
            d->embedded ? queue_embedded_bootstrap(d->embedded) : "");
    if (ferror(f) | fclose(f))
        goto fail;
    if (rename(tmp, d->ready_file) != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "--ready-file %s: cannot write %s: %s", d->ready_file, tmp,
             strerror(errno));
    unlink(tmp);
    return -1;
}

/* Without this the signal handles keep uv_run going forever. */
static void close_signals(disp_daemon_t *d)
{
    if (!d->signals_started)
        return;
    d->signals_started = false;
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_int, NULL);
    uv_close((uv_handle_t *)&d->sig_hup, NULL);
    uv_close((uv_handle_t *)&d->drain_timer, NULL);
}

/* Nothing is sent any more: close Redis and the rest, in the order that lets every pending
 * callback run against live objects (the pipeline ignores outcomes from here on). */
static void teardown(void *arg)
{
    disp_daemon_t *d = arg;
    tok_sweep_destroy(d->sweep);
    d->sweep = NULL;
    db_destroy(d->db); /* requests still waiting on Redis are answered 503 from here */
    d->db = NULL;
    expo_receipts_destroy(d->receipts);
    d->receipts = NULL;
    queue_producer_destroy(d->dlq); /* before the consumer: its reports refer to tickets */
    d->dlq = NULL;
    queue_consumer_destroy(d->consumer);
    d->consumer = NULL;
    disp_pipeline_destroy(d->pipeline); /* every callback into it has run */
    d->pipeline = NULL;
    disp_http_destroy(d->http);
    disp_http_destroy(d->admin_http);
    d->http = d->admin_http = NULL;
    close_signals(d);
    LOG0(LOG_LVL_INFO, "stopped");
}

/* Everything in flight had its chance: stop sending, then give the instance's lease up (its
 * claims left unfinished are taken over at once by whoever gets their events) and tear down. */
static void finish_shutdown(disp_daemon_t *d)
{
    uv_timer_stop(&d->drain_timer);
    if (d->pipeline)
        disp_pipeline_abort(d->pipeline);
    expo_client_destroy(d->expo);
    d->expo = NULL;
    if (d->lease)
        disp_lease_stop(d->lease, teardown, d); /* bounded by redis.timeout_ms */
    else
        teardown(d);
}

static void on_drain_tick(uv_timer_t *t)
{
    disp_daemon_t *d = t->data;
    size_t active = disp_http_active(d->http);
    bool late = uv_now(&d->loop) >= d->drain_deadline;
    if (!d->queue_stopped || (active > 0 && !late))
        return;
    if (active)
        LOG(LOG_LVL_WARN, "shutdown timeout: answering remaining requests with 503",
            LKI("requests", active));
    finish_shutdown(d);
}

static void on_queue_stopped(int status, void *arg)
{
    disp_daemon_t *d = arg;
    if (status == QUEUE_ERR)
        LOG0(LOG_LVL_WARN, "Kafka consumer stopped with errors (logged above); uncommitted events "
                           "will be redelivered");
    else if (status != 0)
        LOG(LOG_LVL_WARN,
            "Kafka consumer stopped with events still in flight; they will be "
            "redelivered",
            LKS("status", queue_strerror(status)),
            LKI("pipelineEvents", d->pipeline ? disp_pipeline_jobs(d->pipeline) : 0));
    else
        LOG0(LOG_LVL_INFO, "Kafka consumer stopped: offsets committed, group left");
    d->queue_stopped = true;
}

static void begin_shutdown(disp_daemon_t *d, const char *why)
{
    if (d->stopping)
        return;
    d->stopping = true;
    LOG(LOG_LVL_INFO, "shutting down", LKS("signal", why),
        LKI("requestsInFlight", disp_http_active(d->http)),
        LKI("eventsInFlight", d->pipeline ? disp_pipeline_jobs(d->pipeline) : 0));
    disp_admin_set_draining(d->admin, true);
    disp_http_quiesce(d->http);
    int timeout_ms = (int)d->conf->shutdown_timeout_s * 1000;
    d->queue_stopped = d->consumer == NULL ||
                       queue_consumer_stop(d->consumer, timeout_ms, on_queue_stopped, d) != 0;
    d->drain_deadline = uv_now(&d->loop) + (uint64_t)timeout_ms;
    uv_timer_start(&d->drain_timer, on_drain_tick, 0, 20);
}

/* A runtime error herald cannot recover from: stop as for SIGTERM, then exit 1. */
static void on_fatal(const char *reason, void *arg)
{
    disp_daemon_t *d = arg;
    LOG(LOG_LVL_FATAL, "fatal error, shutting down", LKS("error", reason));
    d->exit_code = 1;
    begin_shutdown(d, "fatal error");
}

static void reload(disp_daemon_t *d)
{
    char err[512];
    conf_t *nc;
    if (conf_load(&nc, d->conf->path, d->opts.envp, err, sizeof err) != 0) {
        LOG(LOG_LVL_ERROR, "reload failed; keeping the running configuration", LKS("error", err));
        return;
    }
    log_level_t lvl;
    if (log_level_parse(nc->log_level, &lvl) == 0)
        log_set_level(lvl);
    tok_rl_limits_t l = daemon_rl_limits(nc);
    tok_api_set_limits(d->api, &l, nc->ratelimit_enabled);
    if (d->pipeline) {
        disp_templates_t *t = daemon_templates(nc, err, sizeof err);
        if (t == NULL) {
            LOG(LOG_LVL_ERROR, "templates not reloaded", LKS("error", err));
        } else {
            log_template_warnings(t);
            disp_pipeline_set_templates(d->pipeline, t);
            disp_templates_destroy(d->templates);
            d->templates = t;
        }
    }
    LOG(LOG_LVL_INFO, "configuration reloaded", LKS("logLevel", nc->log_level),
        LKB("rateLimit", nc->ratelimit_enabled), LKI("userRate", nc->ratelimit_user_rate));
    conf_destroy(nc);
}

static void on_signal(uv_signal_t *s, int signum)
{
    disp_daemon_t *d = s->data;
    if (signum == SIGHUP)
        reload(d);
    else
        begin_shutdown(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void start_signals(disp_daemon_t *d)
{
    uv_signal_t *sigs[] = {&d->sig_term, &d->sig_int, &d->sig_hup};
    int nums[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&d->loop, sigs[i]);
        sigs[i]->data = d;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    uv_timer_init(&d->loop, &d->drain_timer);
    d->drain_timer.data = d;
    d->signals_started = true;
    signal(SIGPIPE, SIG_IGN);
}

disp_daemon_t *disp_daemon_create(conf_t *conf, const disp_daemon_opts_t *opts, char *err,
                                  size_t errlen)
{
    disp_daemon_t *d = xcalloc(1, sizeof *d);
    d->conf = conf;
    d->opts = *opts;
    d->ready_file = opts->ready_file ? xstrdup(opts->ready_file) : NULL;
    uv_loop_init(&d->loop);
    d->metrics = metric_reg_create();
    if (make_modules(d, err, errlen) != 0 || make_dispatcher(d, err, errlen) != 0 ||
        make_listeners(d, err, errlen) != 0)
        goto fail;
    start_signals(d);
    LOG(LOG_LVL_INFO, "listening", LKS("api", conf->http_listen),
        LKI("apiPort", disp_http_port(d->http)), LKS("admin", conf->admin_listen),
        LKI("adminPort", disp_http_port(d->admin_http)), LKS("version", HERALD_VERSION));
    if (d->ready_file && write_ready_file(d, err, errlen) != 0)
        goto fail;
    return d;
fail:
    close_signals(d);
    expo_client_destroy(d->expo);
    if (d->lease)
        disp_lease_stop(d->lease, NULL, NULL); /* closes its timer; the write fails with Redis */
    tok_sweep_destroy(d->sweep);
    d->sweep = NULL;
    db_destroy(d->db);
    expo_receipts_destroy(d->receipts);
    queue_producer_destroy(d->dlq);
    queue_consumer_destroy(d->consumer);
    disp_pipeline_destroy(d->pipeline);
    disp_http_destroy(d->http);
    disp_http_destroy(d->admin_http);
    d->expo = NULL;
    d->db = NULL;
    d->receipts = NULL;
    d->dlq = NULL;
    d->consumer = NULL;
    d->pipeline = NULL;
    d->http = d->admin_http = NULL;
    uv_run(&d->loop, UV_RUN_DEFAULT);
    disp_daemon_destroy(d);
    return NULL;
}

int disp_daemon_run(disp_daemon_t *d)
{
    uv_run(&d->loop, UV_RUN_DEFAULT);
    return d->exit_code;
}

void disp_daemon_destroy(disp_daemon_t *d)
{
    if (d == NULL)
        return;
    disp_pipeline_destroy(d->pipeline); /* NULL unless the loop never ran to shutdown */
    disp_claims_destroy(d->claims);
    disp_lease_destroy(d->lease);
    disp_trace_destroy(d->trace);
    disp_privacy_destroy(d->privacy);
    disp_templates_destroy(d->templates);
    expo_shared_rate_destroy(d->shared_rate);
    queue_embedded_destroy(d->embedded);
    free(d->expo_token);
    tok_api_destroy(d->api);
    tok_rl_destroy(d->rl);
    tok_store_destroy(d->store);
    tok_auth_destroy(d->auth);
    disp_admin_destroy(d->admin);
    metric_reg_destroy(d->metrics);
    uv_loop_close(&d->loop);
    conf_destroy(d->conf);
    free(d->ready_file);
    free(d);
}
