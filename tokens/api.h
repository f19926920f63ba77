/* api.h - the device-token registration API (POST/DELETE/GET /v1/device-tokens).
 *
 * Transport-neutral: it answers http_req_t requests (core/http.h) using a token store, an
 * authenticator and a rate limiter given at creation. Error bodies are application/problem+json
 * (RFC 9457) with the seed's `error` message kept for old clients. Loop-thread only. */
#ifndef HERALD_TOKENS_API_H
#define HERALD_TOKENS_API_H

#include "core/clock.h"
#include "core/http.h"
#include "core/metrics.h"
#include "tokens/auth.h"
#include "tokens/ratelimit.h"
#include "tokens/store.h"

#include <stdbool.h>

typedef struct tok_api tok_api_t;

/* A privacy delete of one device: its record and whatever else names it (herald's also removes the
 * device's traces, dedup marks and receipt checks: pipeline/privacy.h). cb as tok_store_purge's:
 * TOK_OK, TOK_ENOTFOUND when there was no record, TOK_EUNAVAIL. */
typedef void (*tok_api_purge_fn)(void *purge_arg, const char *user_id, const char *device_id,
                                 tok_done_cb cb, void *arg);

typedef struct tok_api_opts {
    tok_store_t *store;         /* borrowed */
    tok_auth_t *auth;           /* borrowed; NULL with trusted_header set */
    const char *trusted_header; /* auth.mode = trusted-header: the header naming the user */
    tok_rl_t *ratelimit;        /* borrowed; NULL disables rate limiting */
    tok_rl_limits_t limits;
    long ttl_days;
    bool trust_forwarded_for; /* take the client IP from X-Forwarded-For (behind a proxy) */
    bool access_log;          /* one info line per request */
    metric_reg_t *metrics;    /* borrowed */
    const clk_t *clock;       /* borrowed; NULL = system */
    tok_api_purge_fn purge;   /* DELETE ?purge=true; NULL: tok_store_purge (the record alone) */
    void *purge_arg;          /* borrowed */
} tok_api_opts_t;

/* A validated registration body. */
typedef struct tok_reg_body {
    char device[TOK_DEVICE_MAX + 1];
    char token[TOK_TOKEN_MAX + 1];
    tok_platform_t platform;
    char locale[LANG_TAG_MAX + 1]; /* canonical case; "" when the body has none */
} tok_reg_body_t;

/* Parses and validates a POST body (JSON object with deviceId, expoPushToken, platform, optional
 * locale (a BCP 47 tag or null); never userId, isActive, registeredAt, updatedAt, expiresAt).
 * Returns 0, or -1 with *field naming the offending field (NULL when the body as a whole is wrong)
 * and a sentence in detail. Pure. */
int tok_api_parse_body(const char *body, size_t len, tok_reg_body_t *out, const char **field,
                       char *detail, size_t detaillen);

/* new: free with tok_api_destroy. Strings in opts are copied. */
tok_api_t *tok_api_create(const tok_api_opts_t *opts);
void tok_api_destroy(tok_api_t *api);
/* Answers one request (exactly one http_respond, possibly later). */
void tok_api_handle(tok_api_t *api, http_req_t *req);
/* Replaces the rate limits (SIGHUP). */
void tok_api_set_limits(tok_api_t *api, const tok_rl_limits_t *limits, bool enabled);
/* Requests still waiting for the store (for shutdown). */
size_t tok_api_pending(const tok_api_t *api);

#endif
