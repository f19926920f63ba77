/* config.h - herald's configuration: `key = value` file, HERALD_* environment overrides,
 * validation.
 *
 * conf_t is plain data read by every module. Loading is a setup path: errors are written as a
 * sentence "file:line: message" (or "env HERALD_X: message") into err. */
#ifndef HERALD_CONFIG_CONFIG_H
#define HERALD_CONFIG_CONFIG_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>

/* A free-form key under a pass-through prefix (kafka.*, templates.*). */
typedef struct conf_kv {
    char *key; /* without the prefix for kafka. ("bootstrap.servers"), full for templates. */
    char *value;
} conf_kv_t;

typedef struct conf {
    char *log_level;

    char *http_listen;
    long http_max_body_bytes;
    long http_max_connections;
    long http_connection_timeout_s;
    bool http_trust_forwarded_for;
    long http_max_connections_per_ip;
    long http_request_timeout_s;

    char *admin_listen;

    char *redis_url;
    char *redis_prefix;
    long redis_timeout_ms;
    char *redis_password_file;
    bool redis_cluster;        /* Redis Cluster: redis_url names any node */
    char *redis_cluster_seeds; /* more nodes to start from: "host:port,host:port" */

    long tokens_ttl_days;
    long tokens_max_devices_per_user;
    long tokens_sweep_interval_s;
    long tokens_inactive_retention_days;

    char *auth_mode; /* "jwt" or "trusted-header" */
    char *auth_trusted_header;
    char *auth_jwt_hs256_secret_file;
    char *auth_jwt_hs256_secret;
    char *auth_jwt_jwks_file;
    char *auth_jwt_issuer;
    char *auth_jwt_audience;
    long auth_jwt_leeway_s;

    bool ratelimit_enabled;
    long ratelimit_user_rate;
    long ratelimit_user_burst;
    long ratelimit_ip_rate;
    long ratelimit_ip_burst;

    char *expo_url;
    char *expo_access_token_file;
    char *expo_access_token;
    long expo_linger_ms;
    long expo_max_concurrent;
    long expo_rate_per_sec;
    bool expo_shared_rate_limit;
    long expo_max_attempts;
    long expo_max_retry_age_s;
    long expo_backoff_base_ms;
    long expo_backoff_cap_ms;
    long expo_timeout_ms;
    long expo_receipt_delay_s;
    long expo_receipt_poll_interval_s;
    bool expo_http2;

    char *queue_topics;
    char *queue_dlq_topic;
    long queue_max_in_flight;
    long queue_max_event_bytes;
    bool kafka_embedded;

    long dedup_pending_ttl_s;
    long dedup_done_ttl_s;
    long dedup_lease_ms;
    long trace_ttl_s;
    long trace_max_records;

    char *templates_notify;         /* statuses that notify, comma-separated */
    char *templates_default_locale; /* the locale of the default texts (BCP 47) */

    long shutdown_timeout_s;
    char *runtime_dir;

    conf_kv_t *kafka; /* librdkafka properties, in file order */
    size_t nkafka;
    conf_kv_t *templates; /* templates.[<locale>.]<NAME>.<field> overrides, in file order */
    size_t ntemplates;

    char *path; /* the file loaded, or NULL */
} conf_t;

/* new: a conf with every default set; free with conf_destroy. */
conf_t *conf_create(void);
void conf_destroy(conf_t *c); /* accepts NULL */

/* Reads a file of `key = value` lines. Returns 0, or -1 with "path:line: message" in err. */
int conf_load_file(conf_t *c, const char *path, char *err, size_t errlen);
/* Parses text as if it were a file named `name` (tests, fuzzing). */
int conf_load_string(conf_t *c, const char *name, const char *text, size_t len, char *err,
                     size_t errlen);
/* Applies HERALD_* variables from envp (NULL-terminated). Unknown HERALD_* names are errors. */
int conf_apply_env(conf_t *c, char *const *envp, char *err, size_t errlen);
/* Sets one key; `origin` names where it came from for error messages. */
int conf_set(conf_t *c, const char *key, const char *value, const char *origin, char *err,
             size_t errlen);
/* Cross-key checks (auth needs a secret or JWKS, embedded Kafka vs bootstrap servers, ...). */
int conf_validate(const conf_t *c, char *err, size_t errlen);
/* create + file (when path != NULL) + env + validate. *out is new on success. */
int conf_load(conf_t **out, const char *path, char *const *envp, char *err, size_t errlen);

/* The environment variable name for a key: HERALD_ + upper case, dots and dashes to '_'. */
void conf_env_name(const char *key, char *out, size_t outlen);
/* Writes the effective configuration as `key = value` lines, each value as conf_display_value
 * shows it. */
void conf_dump(const conf_t *c, buf_t *out);
/* Whether key (full name: "auth.jwt.hs256_secret", "kafka.sasl.password") holds a secret that no
 * output may show: the secret keys of the table, and kafka.* properties whose names contain
 * password, secret, key.pem, ssl_key or sasl.oauthbearer.config. */
bool conf_key_secret(const char *key);
/* A value as output may show it: "(set)" (or "" when empty) for a secret key, a URL with its
 * userinfo hidden (core/redact.h) for values holding "://" outside templates.*, else value.
 * Returns value, a static string or out. */
const char *conf_display_value(const char *key, const char *value, char *out, size_t outlen);
/* The value of a kafka.* property, or NULL. */
const char *conf_kafka_get(const conf_t *c, const char *prop);
/* The value of templates.<name>.<field>, or NULL. */
const char *conf_template_get(const conf_t *c, const char *name, const char *field);
/* Parses "host:port" ("[::1]:80" too) into host (NUL-terminated) and port. Returns 0 or -1. */
int conf_parse_listen(const char *s, char *host, size_t hostlen, int *port);

#endif
