/* options.c - configuration to module options, in one place (see options.h). Each function reads
 * the keys of one module and nothing else; defaults come from the configuration table, never from
 * here. */
#include "daemon/options.h"
#include "core/file.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void daemon_db_opts(const conf_t *c, const char *password, db_opts_t *o)
{
    *o = (db_opts_t){.url = c->redis_url,
                     .password = password,
                     .timeout_ms = c->redis_timeout_ms,
                     .name = "main",
                     .cluster = c->redis_cluster,
                     .seeds = c->redis_cluster_seeds};
}

void daemon_api_listener_opts(const conf_t *c, disp_http_opts_t *o)
{
    *o = (disp_http_opts_t){.name = "api",
                            .listen = c->http_listen,
                            .max_body = c->http_max_body_bytes,
                            .max_connections = c->http_max_connections,
                            .connection_timeout_s = c->http_connection_timeout_s,
                            .reuse_port = 1,
                            .max_connections_per_ip = c->http_max_connections_per_ip,
                            .request_timeout_s = c->http_request_timeout_s};
}

/* The admin listener's limits are fixed: it serves /metrics and probes to local tooling. */
void daemon_admin_listener_opts(const conf_t *c, disp_http_opts_t *o)
{
    *o = (disp_http_opts_t){.name = "admin",
                            .listen = c->admin_listen,
                            .max_body = 1024,
                            .max_connections = 64,
                            .connection_timeout_s = 30,
                            .reuse_port = 0,
                            .request_timeout_s = c->http_request_timeout_s};
}

tok_rl_limits_t daemon_rl_limits(const conf_t *c)
{
    return (tok_rl_limits_t){.user_rate = c->ratelimit_user_rate,
                             .user_burst = c->ratelimit_user_burst,
                             .ip_rate = c->ratelimit_ip_rate,
                             .ip_burst = c->ratelimit_ip_burst};
}

tok_auth_t *daemon_auth(const conf_t *c, char *err, size_t errlen)
{
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
    if (*c->auth_jwt_jwks_file &&
        file_read(c->auth_jwt_jwks_file, 1 << 20, &jwks, NULL, err, errlen) != 0)
        goto done;
    tok_auth_opts_t o = {.hs256_secret = (const unsigned char *)secret,
                         .hs256_secret_len = slen,
                         .jwks_json = jwks,
                         .issuer = c->auth_jwt_issuer,
                         .audience = c->auth_jwt_audience,
                         .leeway_s = c->auth_jwt_leeway_s};
    a = tok_auth_create(&o, err, errlen);
done:
    if (secret)
        memset(secret, 0, slen);
    free(secret);
    free(jwks);
    return a;
}

void daemon_sweep_opts(const conf_t *c, tok_sweep_opts_t *o)
{
    *o = (tok_sweep_opts_t){.prefix = c->redis_prefix,
                            .interval_s = c->tokens_sweep_interval_s,
                            .inactive_retention_days = c->tokens_inactive_retention_days};
}

int daemon_expo_opts(const conf_t *c, expo_opts_t *o, char **token_out, char *err, size_t errlen)
{
    *token_out = NULL;
    *o = (expo_opts_t){.url = c->expo_url,
                       .access_token = c->expo_access_token,
                       .linger_ms = c->expo_linger_ms,
                       .max_concurrent = c->expo_max_concurrent,
                       .rate_per_sec = c->expo_rate_per_sec,
                       .max_attempts = c->expo_max_attempts,
                       .max_retry_age_s = c->expo_max_retry_age_s,
                       .backoff_base_ms = c->expo_backoff_base_ms,
                       .backoff_cap_ms = c->expo_backoff_cap_ms,
                       .timeout_ms = c->expo_timeout_ms,
                       .http2 = c->expo_http2};
    if (*c->expo_access_token_file) {
        char msg[400];
        if (file_read_secret(c->expo_access_token_file, 4096, token_out, NULL, msg, sizeof msg) !=
            0) {
            snprintf(err, errlen, "expo.access_token_file %s", msg);
            return -1;
        }
        o->access_token = *token_out;
    }
    return 0;
}

void daemon_receipts_opts(const conf_t *c, const char *access_token, expo_receipts_opts_t *o)
{
    *o = (expo_receipts_opts_t){.url = c->expo_url,
                                .access_token = access_token,
                                .prefix = c->redis_prefix,
                                .poll_interval_s = c->expo_receipt_poll_interval_s,
                                .timeout_ms = c->expo_timeout_ms};
}

void daemon_kafka_opts(const conf_t *c, queue_kafka_opts_t *o)
{
    *o = (queue_kafka_opts_t){.props = c->kafka,
                              .nprops = c->nkafka,
                              .embedded = c->kafka_embedded,
                              .runtime_dir = c->runtime_dir};
}

void daemon_consumer_opts(const conf_t *c, queue_consumer_opts_t *o)
{
    *o = (queue_consumer_opts_t){.topics = c->queue_topics,
                                 .dlq_topic = c->queue_dlq_topic,
                                 .max_in_flight = c->queue_max_in_flight,
                                 .max_event_bytes = c->queue_max_event_bytes};
    daemon_kafka_opts(c, &o->kafka);
}

/* templates.[<locale>.]<NAME>.<field> keys, split (the configuration checked their shape). */
disp_templates_t *daemon_templates(const conf_t *c, char *err, size_t errlen)
{
    disp_template_field_t *f = xcalloc(c->ntemplates + 1, sizeof *f);
    char **names = xcalloc(2 * c->ntemplates + 1, sizeof *names);
    size_t n = 0;
    for (size_t i = 0; i < c->ntemplates; i++) {
        const char *key = c->templates[i].key + strlen("templates.");
        const char *dot = strrchr(key, '.');
        const char *first = strchr(key, '.');
        if (dot == NULL)
            continue;
        const char *name = first != dot ? first + 1 : key;
        names[2 * n] = xstrndup(name, (size_t)(dot - name));
        names[2 * n + 1] = name != key ? xstrndup(key, (size_t)(first - key)) : NULL;
        f[n] = (disp_template_field_t){.locale = names[2 * n + 1],
                                       .name = names[2 * n],
                                       .field = dot + 1,
                                       .value = c->templates[i].value};
        n++;
    }
    disp_templates_opts_t o = {.notify = c->templates_notify,
                               .default_locale = c->templates_default_locale,
                               .fields = f,
                               .nfields = n};
    disp_templates_t *t = disp_templates_create(&o, err, errlen);
    for (size_t i = 0; i < 2 * n; i++)
        free(names[i]);
    free(names);
    free(f);
    return t;
}

void daemon_claims_opts(const conf_t *c, disp_claims_redis_opts_t *o)
{
    *o = (disp_claims_redis_opts_t){
        .prefix = c->redis_prefix,
        .pending_ttl_s = c->dedup_pending_ttl_s,
        /* the ledger entry is also the trace: it lives as
           long as the longer of the two asks */
        .done_ttl_s = c->dedup_done_ttl_s > c->trace_ttl_s ? c->dedup_done_ttl_s : c->trace_ttl_s,
        .max_records = c->trace_max_records};
}

void daemon_lease_opts(const conf_t *c, disp_lease_opts_t *o)
{
    *o = (disp_lease_opts_t){.prefix = c->redis_prefix,
                             .lease_ms = c->dedup_lease_ms,
                             .horizon_ms = c->dedup_pending_ttl_s * 1000 + c->dedup_lease_ms};
}

void daemon_pipeline_opts(const conf_t *c, disp_pipeline_opts_t *o)
{
    *o = (disp_pipeline_opts_t){.receipt_delay_s = c->expo_receipt_delay_s,
                                .dlq_topic = c->queue_dlq_topic,
                                .resend_base_ms = c->expo_backoff_base_ms,
                                .resend_cap_ms = c->expo_backoff_cap_ms,
                                .max_resends = c->expo_max_attempts};
}
