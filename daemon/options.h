/* options.h - the one place where herald's configuration (conf_t) becomes each module's options.
 * Modules never see conf_t: they take their own options struct, and every default lives in the
 * configuration table (config/config.c). herald's wiring (daemon.c) and heraldctl, where it needs
 * the same options, fill them here.
 *
 * Strings in the filled options are borrowed from conf (or from the buffer given) and stay valid
 * as long as it does; fields that are not configuration (callbacks, handles, metrics) are left
 * zero for the caller to set. */
#ifndef HERALD_DAEMON_OPTIONS_H
#define HERALD_DAEMON_OPTIONS_H

#include "config/config.h"
#include "db/db.h"
#include "expo/expo.h"
#include "expo/receipts.h"
#include "http/http_server.h"
#include "pipeline/claims.h"
#include "pipeline/lease.h"
#include "pipeline/pipeline.h"
#include "pipeline/templates.h"
#include "queue/consumer.h"
#include "tokens/auth.h"
#include "tokens/ratelimit.h"
#include "tokens/sweep.h"

#include <stddef.h>

/* The Redis client; password is the contents of redis.password_file (or NULL). */
void daemon_db_opts(const conf_t *c, const char *password, db_opts_t *o);
/* The public API listener and the admin listener. */
void daemon_api_listener_opts(const conf_t *c, disp_http_opts_t *o);
void daemon_admin_listener_opts(const conf_t *c, disp_http_opts_t *o);
/* The registration API's rate limits (also applied again on reload). */
tok_rl_limits_t daemon_rl_limits(const conf_t *c);
/* new: the JWT verifier from auth.jwt.* (reads the secret and JWKS files). NULL with a sentence
 * in err. */
tok_auth_t *daemon_auth(const conf_t *c, char *err, size_t errlen);
void daemon_sweep_opts(const conf_t *c, tok_sweep_opts_t *o);

/* The Expo client. Reads expo.access_token_file when set into *token_out (new, free with free();
 * o->access_token points into it); returns 0 or -1 with a sentence in err. */
int daemon_expo_opts(const conf_t *c, expo_opts_t *o, char **token_out, char *err, size_t errlen);
/* The receipt poller; access_token as resolved for the client (expo_opts_t.access_token). */
void daemon_receipts_opts(const conf_t *c, const char *access_token, expo_receipts_opts_t *o);

/* Kafka as the consumer and every producer reach it. */
void daemon_kafka_opts(const conf_t *c, queue_kafka_opts_t *o);
void daemon_consumer_opts(const conf_t *c, queue_consumer_opts_t *o);

/* new: the notification templates from templates.*. NULL with a sentence in err. */
disp_templates_t *daemon_templates(const conf_t *c, char *err, size_t errlen);
/* The claims' lease is left NULL for the caller to set. */
void daemon_claims_opts(const conf_t *c, disp_claims_redis_opts_t *o);
/* This instance's lease: its entry outlives it by dedup.pending_ttl_s plus the lease, when every
 * claim it held has expired. */
void daemon_lease_opts(const conf_t *c, disp_lease_opts_t *o);
/* The pipeline: its DLQ topic is queue.dlq_topic as configured (empty: queue_dlq_topic() derives
 * "<source topic>.dlq" per event). */
void daemon_pipeline_opts(const conf_t *c, disp_pipeline_opts_t *o);

#endif
