/* check.c - `heraldctl check-config`: the configuration was already loaded and validated by
 * heraldctl's main (an invalid one exits 2 there with "file:line: message"); this reaches each
 * dependency with a short timeout and prints one verdict per dependency. Exit 3 when any of them
 * cannot be reached. */
#include "core/clock.h"
#include "core/redact.h"
#include "ctl/probe.h"
#include "ctl/util.h"
#include "queue/consumer.h"

#include <string.h>

typedef struct verdict {
    const char *name;
    const char *state; /* ok, FAIL, WARN, skip */
    char detail[512];
} verdict_t;

typedef struct ping {
    ctl_env_t *e;
    bool pong;
    char error[256];
} ping_t;

static void on_pong(int status, const db_reply_t *r, void *arg)
{
    ping_t *p = arg;
    p->pong = status == DB_OK && db_reply_type(r) == DB_REPLY_STATUS;
    if (status == DB_OK && db_reply_type(r) == DB_REPLY_ERROR)
        snprintf(p->error, sizeof p->error, "%s", db_reply_str(r, NULL));
    else if (status != DB_OK)
        snprintf(p->error, sizeof p->error, "%s", db_strerror(status));
    ctl_env_done(p->e, status);
}

/* Cluster mode: every master, its slots and state, and the slot coverage, after the PING. */
static void describe_cluster(db_t *db, char *out, size_t outlen)
{
    size_t n = db_masters(db), len = strlen(out);
    unsigned served = 0;
    for (size_t i = 0; i < n; i++) {
        db_node_info_t info;
        if (db_master_info(db, i, &info) == 0 && info.up)
            served += info.slots;
    }
    snprintf(out + len, outlen - len, "; cluster: %zu masters, %u/16384 slots served", n, served);
    for (size_t i = 0; i < n; i++) {
        db_node_info_t info;
        len = strlen(out);
        if (db_master_info(db, i, &info) == 0)
            snprintf(out + len, outlen - len, "%s %s (%u slots, %s)", i ? "," : ":", info.addr,
                     info.slots, info.up ? "up" : info.error);
    }
}

static void check_redis(const conf_t *conf, verdict_t *v)
{
    ctl_env_t e;
    v->name = "redis";
    uint64_t t0 = clk_mono_us();
    if (ctl_env_open(&e, conf) != CTL_OK) {
        v->state = "FAIL";
        snprintf(v->detail, sizeof v->detail, "%s: no connection within %ld ms%s",
                 REDACT_URL(conf->redis_url),
                 conf->redis_timeout_ms * (conf->redis_cluster ? 3 : 2),
                 conf->redis_cluster ? " (or not every cluster slot served)" : "");
        return;
    }
    ping_t p = {.e = &e, .error = "no answer"};
    ctl_env_begin(&e);
    db_cmd(e.db, on_pong, &p, "PING", NULL);
    ctl_env_wait(&e, 0);
    double ms = (double)(clk_mono_us() - t0) / 1000.0;
    if (p.pong) {
        v->state = "ok";
        snprintf(v->detail, sizeof v->detail, "%s answered PING (%.1f ms incl. connect)",
                 REDACT_URL(conf->redis_url), ms);
        if (db_is_cluster(e.db))
            describe_cluster(e.db, v->detail, sizeof v->detail);
    } else {
        v->state = "FAIL";
        snprintf(v->detail, sizeof v->detail, "%s: PING failed: %s", REDACT_URL(conf->redis_url),
                 p.error);
    }
    ctl_env_close(&e);
}

static void check_kafka(const conf_t *conf, long timeout_ms, verdict_t *v)
{
    v->name = "kafka";
    if (conf->kafka_embedded) {
        /* The broker lives inside a running herald; its address is in the runtime dir. */
        char bs[512], err[300];
        if (queue_bootstrap_resolve(conf, bs, sizeof bs, err, sizeof err) != 0) {
            v->state = "WARN";
            snprintf(v->detail, sizeof v->detail,
                     "kafka.embedded = true (development broker inside herald): %s", err);
            return;
        }
        int rc = ctl_probe_kafka(conf, bs, timeout_ms, v->detail, sizeof v->detail);
        v->state = rc == 0 ? "ok" : rc > 0 ? "WARN" : "FAIL";
        return;
    }
    if (conf_kafka_get(conf, "bootstrap.servers") == NULL) {
        v->state = "FAIL";
        snprintf(v->detail, sizeof v->detail,
                 "kafka.bootstrap.servers is not set (and kafka.embedded is false)");
        return;
    }
    int rc = ctl_probe_kafka(conf, NULL, timeout_ms, v->detail, sizeof v->detail);
    v->state = rc == 0 ? "ok" : rc > 0 ? "WARN" : "FAIL";
}

static void check_expo(const conf_t *conf, long timeout_ms, verdict_t *v)
{
    long status = 0;
    char d[300];
    v->name = "expo";
    int rc = ctl_probe_http(conf->expo_url, timeout_ms, &status, d, sizeof d);
    v->state = rc == 0 ? "ok" : "FAIL";
    snprintf(v->detail, sizeof v->detail, "%s: %s%s", REDACT_URL(conf->expo_url), d,
             rc == 0 ? " (reachable; credentials are checked on the first send)" : "");
}

static const char USAGE[] = "usage: heraldctl check-config [--timeout 3s] [--json]\n"
                            "Validates the configuration and reaches Redis (PING), Kafka "
                            "(metadata) and Expo (HTTP HEAD).\n"
                            "Exit 3 when any dependency is unreachable.\n";

int ctl_check_config(const conf_t *conf, int argc, char **argv)
{
    bool json = false;
    int64_t timeout = 3;
    ctl_opt_t opts[] = {{"--json", NULL, CTL_OPT_FLAG, &json, false},
                        {"--timeout", NULL, CTL_OPT_DURATION, &timeout, false},
                        {NULL, NULL, 0, NULL, false}};
    int rc = ctl_parse(argc, argv, 1, opts, NULL, 0, NULL, USAGE);
    if (rc)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    long tmo = timeout > 0 ? (long)timeout * 1000 : 1000;
    verdict_t v[4] = {{"config", "ok", ""}};
    snprintf(v[0].detail, sizeof v[0].detail, "%s is valid", conf->path ? conf->path : "defaults");
    check_redis(conf, &v[1]);
    check_kafka(conf, tmo, &v[2]);
    check_expo(conf, tmo, &v[3]);
    bool fail = false;
    buf_t b = BUF_INIT;
    ctl_json_open(&b, NULL, '{');
    for (size_t i = 0; i < 4; i++) {
        fail |= strcmp(v[i].state, "FAIL") == 0;
        if (json) {
            ctl_json_open(&b, v[i].name, '{');
            ctl_json_str(&b, "state", v[i].state);
            ctl_json_str(&b, "detail", v[i].detail);
            ctl_json_close(&b, '}');
        } else {
            printf("%-7s %-5s %s\n", v[i].name, v[i].state, v[i].detail);
        }
    }
    ctl_json_close(&b, '}');
    if (json)
        ctl_json_print(&b, stdout);
    buf_cleanup(&b);
    return fail ? CTL_UNAVAILABLE : CTL_OK;
}
