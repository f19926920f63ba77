/* daemon.c - wiring. Creation order follows dependencies (metrics, Redis, store, limiter, auth,
 * API, listeners); shutdown runs the other way: stop accepting, let requests in flight finish
 * within shutdown.timeout_s, then close Redis (whatever still waits gets a 503) and the listeners. */
#include "dispatcher/daemon.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "dispatcher/admin.h"
#include "dispatcher/http_server.h"
#include "tokens/api.h"
#include "tokens/auth.h"
#include "tokens/ratelimit.h"
#include "tokens/store.h"

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
    disp_admin_t *admin;
    disp_http_t *http;
    disp_http_t *admin_http;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t drain_timer;
    uint64_t drain_deadline;
    bool stopping;
    int exit_code;
};

char *disp_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = xmalloc(max + 1);
    size_t n = fread(buf, 1, max + 1, f);
    fclose(f);
    if (n > max) {
        snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

char *disp_read_secret(const char *path, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & S_IROTH))
        LOG(LOG_LVL_WARN, "secret file is world-readable", LKS("path", path));
    size_t n;
    char *s = disp_read_file(path, 4096, &n, err, errlen);
    if (s == NULL)
        return NULL;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    if (n == 0) {
        snprintf(err, errlen, "%s: the secret is empty", path);
        free(s);
        return NULL;
    }
    *len = n;
    return s;
}

static tok_auth_t *make_auth(const conf_t *c, char *err, size_t errlen)
{
    tok_auth_opts_t o = {0};
    char *secret = NULL, *jwks = NULL;
    size_t slen = 0;
    tok_auth_t *a = NULL;
    if (*c->auth_jwt_hs256_secret_file) {
        unsigned char *raw;
        if (tok_auth_read_secret_file(c->auth_jwt_hs256_secret_file, &raw, &slen, err, errlen))
            return NULL;
        secret = (char *)raw;
    } else if (*c->auth_jwt_hs256_secret) {
        secret = xstrdup(c->auth_jwt_hs256_secret);
        slen = strlen(secret);
    }
    if (*c->auth_jwt_jwks_file) {
        jwks = disp_read_file(c->auth_jwt_jwks_file, 1 << 20, NULL, err, errlen);
        if (jwks == NULL)
            goto done;
    }
    o.hs256_secret = (const unsigned char *)secret;
    o.hs256_secret_len = slen;
    o.jwks_json = jwks;
    o.issuer = c->auth_jwt_issuer;
    o.audience = c->auth_jwt_audience;
    o.leeway_s = c->auth_jwt_leeway_s;
    a = tok_auth_create(&o, err, errlen);
done:
    if (secret)
        memset(secret, 0, slen);
    free(secret);
    free(jwks);
    return a;
}

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

static tok_rl_limits_t limits_of(const conf_t *c)
{
    tok_rl_limits_t l = {c->ratelimit_user_rate, c->ratelimit_user_burst, c->ratelimit_ip_rate,
                         c->ratelimit_ip_burst};
    return l;
}

static int make_listeners(disp_daemon_t *d, char *err, size_t errlen)
{
    const conf_t *c = d->conf;
    disp_http_opts_t ho = {"api",
                           c->http_listen,
                           c->http_max_body_bytes,
                           c->http_max_connections,
                           c->http_connection_timeout_s,
                           1};
    d->http = disp_http_create(&d->loop, &ho, on_api, d->api, err, errlen);
    if (d->http == NULL)
        return -1;
    disp_http_opts_t ao = {"admin", c->admin_listen, 1024, 64, 30, 0};
    d->admin_http = disp_http_create(&d->loop, &ao, on_admin, d->admin, err, errlen);
    return d->admin_http ? 0 : -1;
}

static int make_modules(disp_daemon_t *d, char *err, size_t errlen)
{
    const conf_t *c = d->conf;
    char *pw = NULL;
    size_t pwlen;
    if (*c->redis_password_file &&
        (pw = disp_read_secret(c->redis_password_file, &pwlen, err, errlen)) == NULL)
        return -1;
    db_opts_t dbo = {c->redis_url, pw, c->redis_timeout_ms, d->metrics, "main"};
    d->db = db_create(&d->loop, &dbo, err, errlen);
    free(pw);
    if (d->db == NULL)
        return -1;
    d->store = tok_store_redis_create(d->db, c->redis_prefix, NULL, c->tokens_max_devices_per_user);
    d->rl = tok_rl_create(d->db, c->redis_prefix);
    if (strcmp(c->auth_mode, "jwt") == 0 && (d->auth = make_auth(c, err, errlen)) == NULL)
        return -1;
    if (strcmp(c->auth_mode, "trusted-header") == 0)
        LOG(LOG_LVL_WARN, "auth.mode = trusted-header: the user id is taken from a request header "
                          "without verification; only run this behind a gateway that sets it",
            LKS("header", c->auth_trusted_header));
    tok_api_opts_t ao = {d->store,
                         d->auth,
                         d->auth ? NULL : c->auth_trusted_header,
                         d->rl,
                         limits_of(c),
                         c->tokens_ttl_days,
                         c->http_trust_forwarded_for,
                         true,
                         d->metrics,
                         NULL};
    d->api = tok_api_create(&ao);
    tok_api_set_limits(d->api, &ao.limits, c->ratelimit_enabled);
    d->admin = disp_admin_create(d->metrics);
    disp_admin_add_check(d->admin, "redis", redis_ready, d->db);
    return 0;
}

static int write_ready_file(disp_daemon_t *d, char *err, size_t errlen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", d->ready_file);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "{\"pid\":%d,\"api_port\":%d,\"admin_port\":%d}\n", (int)getpid(),
            disp_http_port(d->http), disp_http_port(d->admin_http));
    fclose(f);
    if (rename(tmp, d->ready_file) != 0) {
        snprintf(err, errlen, "%s: %s", d->ready_file, strerror(errno));
        return -1;
    }
    return 0;
}

static void finish_shutdown(disp_daemon_t *d)
{
    uv_timer_stop(&d->drain_timer);
    db_destroy(d->db); /* requests still waiting on Redis are answered 503 from here */
    d->db = NULL;
    disp_http_destroy(d->http);
    disp_http_destroy(d->admin_http);
    d->http = d->admin_http = NULL;
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_int, NULL);
    uv_close((uv_handle_t *)&d->sig_hup, NULL);
    uv_close((uv_handle_t *)&d->drain_timer, NULL);
    LOG0(LOG_LVL_INFO, "stopped");
}

static void on_drain_tick(uv_timer_t *t)
{
    disp_daemon_t *d = t->data;
    size_t active = disp_http_active(d->http);
    if (active == 0 || uv_now(&d->loop) >= d->drain_deadline) {
        if (active)
            LOG(LOG_LVL_WARN, "shutdown timeout: answering remaining requests with 503",
                LKI("requests", active));
        finish_shutdown(d);
    }
}

static void begin_shutdown(disp_daemon_t *d, const char *why)
{
    if (d->stopping)
        return;
    d->stopping = true;
    LOG(LOG_LVL_INFO, "shutting down", LKS("signal", why),
        LKI("inFlight", disp_http_active(d->http)));
    disp_admin_set_draining(d->admin, true);
    disp_http_quiesce(d->http);
    d->drain_deadline = uv_now(&d->loop) + (uint64_t)d->conf->shutdown_timeout_s * 1000u;
    uv_timer_start(&d->drain_timer, on_drain_tick, 0, 20);
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
    tok_rl_limits_t l = limits_of(nc);
    tok_api_set_limits(d->api, &l, nc->ratelimit_enabled);
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
    if (make_modules(d, err, errlen) != 0 || make_listeners(d, err, errlen) != 0)
        goto fail;
    start_signals(d);
    LOG(LOG_LVL_INFO, "listening", LKS("api", conf->http_listen), LKI("apiPort", disp_http_port(d->http)),
        LKS("admin", conf->admin_listen), LKI("adminPort", disp_http_port(d->admin_http)),
        LKS("version", HERALD_VERSION));
    if (d->ready_file && write_ready_file(d, err, errlen) != 0)
        goto fail;
    return d;
fail:
    if (d->db || d->http || d->admin_http) {
        db_destroy(d->db);
        disp_http_destroy(d->http);
        disp_http_destroy(d->admin_http);
        d->db = NULL;
        d->http = d->admin_http = NULL;
        uv_run(&d->loop, UV_RUN_DEFAULT);
    }
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
