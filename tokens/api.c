/* api.c - the registration API handlers.
 *
 * One request flows: route -> method -> authenticate (sync) -> size check -> the client address's
 * rate limit (in process) -> validate -> one store call, which charges the user's rate limit in
 * the same script (tok_quota_t) -> respond. A request that fails authentication is charged to its
 * address before it gets its 401, so a flood of bad tokens from one address turns into 429s like
 * any other flood, without costing Redis anything. Every answer carries X-Request-Id; errors are
 * problem+json with the seed's `error` text. */
#include "tokens/api.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/xalloc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ROUTE "/v1/device-tokens"
#define REQID_MAX 128
#define IP_TABLE 8192  /* client addresses the in-process limiter remembers at once */
#define SPARE_CALLS 64 /* finished calls kept for reuse */

struct tok_api {
    tok_api_opts_t o;
    char *trusted_header;
    bool rl_enabled;
    tok_rl_local_t *ip_limits; /* per client address, in this process */
    buf_t body;                /* the answer being built (http_respond copies it) */
    struct call *spare;        /* finished calls kept for the next requests */
    size_t nspare;
    size_t pending;
    metric_fam_t *m_requests, *m_latency, *m_regs, *m_deact, *m_authfail, *m_limited, *m_rlerr;
};

typedef enum { OP_POST, OP_DELETE, OP_GET } op_t;

typedef struct call {
    struct call *next_spare;
    tok_api_t *api;
    http_req_t *req;
    op_t op;
    char request_id[REQID_MAX + 1];
    char trace_id[33];
    char user[TOK_USER_MAX + 1];
    char ip[64];
    tok_rl_result_t rl;
    bool have_rl;
    tok_rl_key_t user_v, ip_v; /* the verdicts so far (which == NULL: not charged) */
    tok_quota_t quota;
    const char *auth_failure; /* static reason when authentication failed */
    /* POST body / DELETE query */
    char device[TOK_DEVICE_MAX + 1];
    char token[TOK_TOKEN_MAX + 1];
    tok_platform_t platform;
    char locale[LANG_TAG_MAX + 1];
    bool purge;
} call_t;

/* ---- responses ------------------------------------------------------------------------------ */

/* The API's answer buffer, emptied: one per API, reused (answers are built one at a time). */
static buf_t *body_buf(call_t *c)
{
    buf_reset(&c->api->body);
    return &c->api->body;
}

/* Keeps c for a later request (up to SPARE_CALLS), or frees it. */
static void call_done(call_t *c)
{
    tok_api_t *api = c->api;
    if (api->nspare >= SPARE_CALLS) {
        free(c);
        return;
    }
    c->next_spare = api->spare;
    api->spare = c;
    api->nspare++;
}

static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "other";
}

static void observe(call_t *c, int status)
{
    tok_api_t *api = c->api;
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    const char *route = strcmp(c->req->path, ROUTE) == 0 ? ROUTE : "other";
    const char *method = method_label(c->req->method);
    double secs = (double)(clk_mono_us() - c->req->start_us) / 1e6;
    metric_inc(metric_get(api->m_requests, route, method, st));
    metric_observe(metric_get(api->m_latency, route, method), secs);
    if (api->o.access_log || status >= 500)
        LOG(status >= 500 ? LOG_LVL_WARN : LOG_LVL_INFO, "request", LKS("method", c->req->method),
            LKS("path", c->req->path), LKI("status", status), LKD("durationMs", secs * 1e3),
            LKS("requestId", c->request_id), LKS("traceId", c->trace_id[0] ? c->trace_id : NULL),
            LKS("userId", c->user[0] ? c->user : NULL), LKS("ip", c->ip));
}

/* Sends status + body with the standard headers (+ extra, a NULL-name-terminated list). */
static void finish(call_t *c, int status, const char *ctype, const buf_t *body,
                   const http_header_t *extra)
{
    http_header_t h[12];
    size_t n = 0;
    char lim[24], rem[24], rst[24];
    h[n++] = (http_header_t){"Content-Type", ctype};
    h[n++] = (http_header_t){"X-Request-Id", c->request_id};
    h[n++] = (http_header_t){"Cache-Control", "no-store"};
    if (c->have_rl) {
        snprintf(lim, sizeof lim, "%ld", c->rl.limit);
        snprintf(rem, sizeof rem, "%ld", c->rl.remaining);
        snprintf(rst, sizeof rst, "%ld", c->rl.reset_s);
        h[n++] = (http_header_t){"RateLimit-Limit", lim};
        h[n++] = (http_header_t){"RateLimit-Remaining", rem};
        h[n++] = (http_header_t){"RateLimit-Reset", rst};
    }
    for (size_t i = 0; extra && extra[i].name && n < sizeof h / sizeof h[0]; i++)
        h[n++] = extra[i];
    observe(c, status);
    http_respond(c->req, status, h, n, buf_cstr(body), body->len);
    call_done(c);
}

static void problem(call_t *c, int status, const char *slug, const char *seed_error,
                    const char *field, const char *detail, const http_header_t *extra)
{
    buf_t *b = body_buf(c);
    buf_printf(b, "{\"type\":\"urn:herald:problem:%s\",\"title\":\"%s\",\"status\":%d,", slug,
               http_reason(status), status);
    buf_puts(b, "\"detail\":");
    buf_json_str(b, detail, strlen(detail));
    buf_puts(b, ",\"requestId\":");
    buf_json_str(b, c->request_id, strlen(c->request_id));
    buf_puts(b, ",\"error\":");
    buf_json_str(b, seed_error, strlen(seed_error));
    if (field) {
        buf_puts(b, ",\"field\":");
        buf_json_str(b, field, strlen(field));
    }
    buf_putc(b, '}');
    finish(c, status, "application/problem+json", b, extra);
}

static void bad_request(call_t *c, const char *field, const char *detail)
{
    problem(c, 400, "invalid-request", "Invalid request format", field, detail, NULL);
}

static void unavailable(call_t *c)
{
    static const http_header_t ra[] = {{"Retry-After", "1"}, {NULL, NULL}};
    problem(c, 503, "unavailable", "Service unavailable", NULL,
            "The token store is unavailable; retry shortly", ra);
}

static void store_error(call_t *c, int status)
{
    if (status == TOK_ENOTFOUND)
        problem(c, 404, "not-found", "Device token not found", NULL,
                "No device token with this deviceId for the caller", NULL);
    else if (status == TOK_ELIMIT)
        problem(c, 409, "too-many-devices", "Too many devices", NULL,
                "The user has reached the maximum number of registered devices", NULL);
    else if (status == TOK_EUNAVAIL)
        unavailable(c);
    else
        problem(c, 500, "internal", "Internal server error", NULL, tok_strerror(status), NULL);
}

/* ---- request identity ----------------------------------------------------------------------- */

static bool valid_request_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > REQID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.' || ch == ':'))
            return false;
    }
    return true;
}

/* W3C traceparent: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>. */
static void parse_traceparent(const char *tp, char out[33])
{
    out[0] = '\0';
    if (tp == NULL || strlen(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
        return;
    for (size_t i = 0; i < 55; i++) {
        if (i == 2 || i == 35 || i == 52)
            continue;
        char ch = tp[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return;
    }
    if (strncmp(tp + 3, "00000000000000000000000000000000", 32) == 0)
        return;
    memcpy(out, tp + 3, 32);
    out[32] = '\0';
}

static void client_ip(call_t *c)
{
    const char *xff = c->api->o.trust_forwarded_for ? http_header(c->req, "X-Forwarded-For") : NULL;
    const char *ip = c->req->peer_ip ? c->req->peer_ip : "";
    size_t n = strlen(ip);
    if (xff && *xff) {
        const char *last = strrchr(xff, ',');
        ip = last ? last + 1 : xff;
        while (*ip == ' ')
            ip++;
        n = strcspn(ip, " ");
    }
    if (n >= sizeof c->ip)
        n = sizeof c->ip - 1;
    memcpy(c->ip, ip, n);
    c->ip[n] = '\0';
}

/* Fills c->user and returns NULL, or returns why the caller is not authenticated (static). */
static const char *authenticate(call_t *c)
{
    tok_api_t *api = c->api;
    const char *reason;
    if (api->trusted_header) {
        const char *u = http_header(c->req, api->trusted_header);
        if (u && tok_valid_user(u, strlen(u)) == 0) {
            snprintf(c->user, sizeof c->user, "%s", u);
            return NULL;
        }
        reason = u ? "bad_subject" : "missing";
    } else {
        const char *h = http_header(c->req, "Authorization");
        tok_auth_result_t r = TOK_AUTH_MISSING;
        if (h && strncasecmp(h, "Bearer ", 7) == 0) {
            const char *jwt = h + 7;
            while (*jwt == ' ')
                jwt++;
            r = tok_auth_verify(api->o.auth, jwt, strlen(jwt), c->user, sizeof c->user);
        } else if (h) {
            r = TOK_AUTH_MALFORMED;
        }
        if (r == TOK_AUTH_OK)
            return NULL;
        reason = tok_auth_reason(r);
        c->user[0] = '\0';
    }
    return reason;
}

static void unauthorized(call_t *c)
{
    bool missing = strcmp(c->auth_failure, "missing") == 0;
    const http_header_t wa[] = {{"WWW-Authenticate", missing ? "Bearer realm=\"herald\""
                                                             : "Bearer error=\"invalid_token\""},
                                {NULL, NULL}};
    problem(c, 401, "unauthorized", "Unauthorized", NULL, "A valid bearer token is required", wa);
}

/* ---- validation ----------------------------------------------------------------------------- */

static bool json_content_type(const char *ct)
{
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)
        return false;
    const char *rest = ct + 16;
    while (*rest == ' ')
        rest++;
    return *rest == '\0' || *rest == ';';
}

/* Copies a required string field of at most max bytes; NULL when fine, else the problem. */
static const char *take_field(json_t *o, const char *name, char *out, size_t max, char *d,
                              size_t dlen)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL || json_is_null(v))
        snprintf(d, dlen, "%s is required", name);
    else if (!json_is_string(v))
        snprintf(d, dlen, "%s must be a string", name);
    else if (json_string_length(v) == 0)
        snprintf(d, dlen, "%s must not be empty", name);
    else if (json_string_length(v) > max)
        snprintf(d, dlen, "%s must be at most %zu characters", name, max);
    else {
        memcpy(out, json_string_value(v), json_string_length(v) + 1);
        return NULL;
    }
    return name;
}

/* The optional locale: absent or null for none, else a BCP 47 tag, kept in canonical case. */
static const char *take_locale(json_t *o, char *out, char *d, size_t dlen)
{
    json_t *v = json_object_get(o, "locale");
    out[0] = '\0';
    if (v == NULL || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        snprintf(d, dlen, "locale must be a string");
        return "locale";
    }
    if (tok_valid_locale(json_string_value(v), json_string_length(v), out) != 0) {
        snprintf(d, dlen,
                 "locale must be a BCP 47 language tag of at most %d characters, such as \"fr\" "
                 "or \"pt-BR\"",
                 LANG_TAG_MAX);
        out[0] = '\0';
        return "locale";
    }
    return NULL;
}

static const char *check_fields(json_t *o, tok_reg_body_t *out, char *d, size_t dlen)
{
    static const char *const protected_fields[] = {"userId",    "isActive",  "registeredAt",
                                                   "updatedAt", "expiresAt", NULL};
    static const char *const names[] = {"deviceId", "expoPushToken", "platform"};
    char platform[16];
    const char *bad;
    for (size_t i = 0; protected_fields[i]; i++) {
        if (json_object_get(o, protected_fields[i])) {
            snprintf(d, dlen, "%s cannot be set by the client", protected_fields[i]);
            return protected_fields[i];
        }
    }
    if ((bad = take_field(o, names[0], out->device, TOK_DEVICE_MAX, d, dlen)) ||
        (bad = take_field(o, names[1], out->token, TOK_TOKEN_MAX, d, dlen)) ||
        (bad = take_field(o, names[2], platform, sizeof platform - 1, d, dlen)))
        return bad;
    if (tok_valid_device(out->device, strlen(out->device)) != 0) {
        snprintf(d, dlen, "deviceId must be printable ASCII");
        return names[0];
    }
    if (tok_valid_token(out->token, strlen(out->token)) != 0) {
        snprintf(d, dlen, "expoPushToken must be ExponentPushToken[...] or ExpoPushToken[...]");
        return names[1];
    }
    if (tok_platform_parse(platform, &out->platform) != 0) {
        snprintf(d, dlen, "platform must be \"ios\" or \"android\"");
        return names[2];
    }
    return take_locale(o, out->locale, d, dlen);
}

int tok_api_parse_body(const char *body, size_t len, tok_reg_body_t *out, const char **field,
                       char *detail, size_t detaillen)
{
    json_error_t jerr;
    *field = NULL;
    memset(out, 0, sizeof *out);
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL || !json_is_object(o)) {
        snprintf(detail, detaillen, "%s",
                 o ? "The body must be a JSON object" : "The body is not valid JSON");
        json_decref(o);
        return -1;
    }
    *field = check_fields(o, out, detail, detaillen);
    json_decref(o);
    return *field ? -1 : 0;
}

static bool parse_post(call_t *c)
{
    if (!json_content_type(http_header(c->req, "Content-Type"))) {
        problem(c, 415, "unsupported-media-type", "Unsupported media type", NULL,
                "Content-Type must be application/json", NULL);
        return false;
    }
    if (c->req->body == NULL || c->req->body_len == 0) {
        problem(c, 400, "invalid-request", "Request body required", NULL,
                "The request body is empty", NULL);
        return false;
    }
    tok_reg_body_t b;
    const char *field;
    char detail[160];
    if (tok_api_parse_body(c->req->body, c->req->body_len, &b, &field, detail, sizeof detail)) {
        bad_request(c, field, detail);
        return false;
    }
    memcpy(c->device, b.device, sizeof c->device);
    memcpy(c->token, b.token, sizeof c->token);
    c->platform = b.platform;
    memcpy(c->locale, b.locale, sizeof c->locale);
    return true;
}

static bool parse_delete(call_t *c)
{
    const char *d = http_query(c->req, "deviceId");
    const char *p = http_query(c->req, "purge");
    if (d == NULL || *d == '\0') {
        problem(c, 400, "invalid-request", "deviceId query parameter required", "deviceId",
                "The deviceId query parameter is required", NULL);
        return false;
    }
    if (tok_valid_device(d, strlen(d)) != 0) {
        bad_request(c, "deviceId", "deviceId must be 1-128 printable ASCII characters");
        return false;
    }
    if (p && strcmp(p, "true") != 0 && strcmp(p, "false") != 0) {
        bad_request(c, "purge", "purge must be true or false");
        return false;
    }
    snprintf(c->device, sizeof c->device, "%s", d);
    c->purge = p && strcmp(p, "true") == 0;
    return true;
}

/* ---- operations ----------------------------------------------------------------------------- */

/* The user's quota for the store call, or NULL when the user is not limited. */
static const tok_quota_t *quota_of(call_t *c)
{
    const tok_api_t *api = c->api;
    if (!api->rl_enabled || api->o.limits.user_rate <= 0 || api->o.limits.user_burst <= 0)
        return NULL;
    c->quota = (tok_quota_t){api->o.limits.user_rate, api->o.limits.user_burst, &c->user_v};
    return &c->quota;
}

/* c->rl from the verdicts so far (RateLimit-* headers): the refusing key or the tightest. */
static void rate_verdict(call_t *c)
{
    tok_rl_key_t k[2];
    int n = 0;
    if (c->user_v.which)
        k[n++] = c->user_v;
    if (c->ip_v.which && c->ip_v.burst > 0)
        k[n++] = c->ip_v;
    if (n == 0)
        return;
    tok_rl_combine(k, n, &c->rl);
    c->have_rl = true;
}

static void too_many(call_t *c)
{
    char ra[24];
    snprintf(ra, sizeof ra, "%ld", c->rl.retry_after_s);
    const http_header_t h[] = {{"Retry-After", ra}, {NULL, NULL}};
    metric_inc(metric_get(c->api->m_limited, c->rl.which ? c->rl.which : "user"));
    problem(c, 429, "rate-limited", "Too many requests", NULL,
            "Request rate limit exceeded; retry after the Retry-After delay", h);
}

/* A store answer: the user's verdict joins the address's. Refused by the user's limit: the
 * address gets its charge back (a refusal charges nothing) and the answer is 429. Returns true
 * when the caller goes on answering status. */
static bool store_answered(call_t *c, int status)
{
    tok_api_t *api = c->api;
    api->pending--;
    if (status == TOK_ELIMITED && c->ip_v.which)
        tok_rl_local_refund(api->ip_limits, c->ip, (int64_t)(c->req->start_us / 1000),
                            api->o.limits.ip_rate);
    if (status == TOK_ELIMITED)
        c->ip_v.which = NULL;
    rate_verdict(c);
    if (status == TOK_ELIMITED)
        too_many(c);
    else if (status != TOK_OK)
        store_error(c, status);
    return status == TOK_OK;
}

static void on_registered(int status, const tok_reg_result_t *res, void *arg)
{
    call_t *c = arg;
    if (!store_answered(c, status))
        return;
    metric_inc(metric_get(c->api->m_regs, res->created ? "created" : "updated"));
    if (res->reassigned) {
        metric_inc(metric_get(c->api->m_deact, "reassigned"));
        LOG(LOG_LVL_INFO, "token reassigned", LKS("userId", c->user), LKS("deviceId", c->device),
            LKS("previousUserId", res->prev_user_id), LKS("previousDeviceId", res->prev_device_id),
            LKS("requestId", c->request_id));
    }
    buf_t *b = body_buf(c);
    buf_printf(b, "{\"success\":true,\"message\":\"%s\",\"deviceToken\":",
               res->created ? "Device token registered" : "Device token updated");
    tok_record_json(&res->record, b);
    buf_putc(b, '}');
    finish(c, res->created ? 201 : 200, "application/json", b, NULL);
}

static void on_deleted(int status, void *arg)
{
    call_t *c = arg;
    if (!store_answered(c, status))
        return;
    metric_inc(metric_get(c->api->m_deact, c->purge ? "purge" : "user"));
    buf_t *b = body_buf(c);
    buf_printf(b, "{\"success\":true,\"message\":\"%s\"}",
               c->purge ? "Device token deleted" : "Device token deactivated successfully");
    finish(c, 200, "application/json", b, NULL);
}

static void on_listed(int status, const tok_record_t *recs, size_t n, void *arg)
{
    call_t *c = arg;
    if (!store_answered(c, status))
        return;
    buf_t *b = body_buf(c);
    buf_printf(b, "{\"success\":true,\"count\":%zu,\"deviceTokens\":[", n);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        tok_record_json(&recs[i], b);
    }
    buf_puts(b, "]}");
    finish(c, 200, "application/json", b, NULL);
}

static void purge(call_t *c)
{
    tok_api_t *api = c->api;
    if (api->o.purge)
        api->o.purge(api->o.purge_arg, c->user, c->device, on_deleted, c);
    else
        tok_store_purge(api->o.store, c->user, c->device, on_deleted, c);
}

/* The privacy delete is not a store script: the user's limit is its own round trip. */
static void on_purge_rate(int status, const tok_rl_result_t *res, void *arg)
{
    call_t *c = arg;
    if (status != 0) {
        /* Fail open: the purge that follows answers 503 on its own if Redis is really gone. */
        metric_inc(metric_get(c->api->m_rlerr));
    } else if (!res->allowed) {
        c->api->pending--;
        c->user_v = (tok_rl_key_t){.ok = false, .burst = res->limit, .which = "user"};
        c->rl = *res;
        c->have_rl = true;
        too_many(c);
        return;
    }
    purge(c);
}

static void execute(call_t *c)
{
    tok_api_t *api = c->api;
    if (c->op == OP_POST) {
        if (!parse_post(c))
            return;
        tok_reg_req_t r = {c->user,         c->device, c->token,   c->platform,
                           api->o.ttl_days, c->locale, quota_of(c)};
        api->pending++;
        tok_store_register(api->o.store, &r, on_registered, c);
    } else if (c->op == OP_DELETE) {
        if (!parse_delete(c))
            return;
        api->pending++;
        const tok_quota_t *q = quota_of(c);
        if (c->purge && q) {
            tok_rl_limits_t user_only = {api->o.limits.user_rate, api->o.limits.user_burst, 0, 0};
            tok_rl_check(api->o.ratelimit, c->user, NULL, &user_only, on_purge_rate, c);
        } else if (c->purge) {
            purge(c);
        } else {
            tok_store_deactivate_limited(api->o.store, c->user, c->device, q, on_deleted, c);
        }
    } else {
        api->pending++;
        tok_store_list_limited(api->o.store, c->user, quota_of(c), on_listed, c);
    }
}

/* Charges the client's address (in process); answers 429 and returns false when refused. */
static bool ip_allows(call_t *c)
{
    tok_api_t *api = c->api;
    if (!api->rl_enabled || !c->ip[0] || api->o.limits.ip_rate <= 0 || api->o.limits.ip_burst <= 0)
        return true;
    c->ip_v = tok_rl_local_charge(api->ip_limits, c->ip, (int64_t)(c->req->start_us / 1000),
                                  api->o.limits.ip_rate, api->o.limits.ip_burst);
    rate_verdict(c);
    if (c->ip_v.ok)
        return true;
    too_many(c);
    return false;
}

/* A failed authentication costs the client's address one request, as any request would. */
static void auth_failed(call_t *c, const char *reason)
{
    c->auth_failure = reason;
    metric_inc(metric_get(c->api->m_authfail, reason));
    if (ip_allows(c))
        unauthorized(c);
}

static bool route(call_t *c)
{
    const char *m = c->req->method;
    if (strcmp(c->req->path, ROUTE) != 0) {
        problem(c, 404, "not-found", "Not found", NULL, "No such resource", NULL);
        return false;
    }
    if (strcmp(m, "POST") == 0)
        c->op = OP_POST;
    else if (strcmp(m, "DELETE") == 0)
        c->op = OP_DELETE;
    else if (strcmp(m, "GET") == 0)
        c->op = OP_GET;
    else {
        const http_header_t allow[] = {{"Allow", "GET, POST, DELETE"}, {NULL, NULL}};
        problem(c, 405, "method-not-allowed", "Method not allowed", NULL,
                "This resource supports GET, POST and DELETE", allow);
        return false;
    }
    return true;
}

void tok_api_handle(tok_api_t *api, http_req_t *req)
{
    call_t *c = api->spare;
    if (c) {
        api->spare = c->next_spare;
        api->nspare--;
        memset(c, 0, sizeof *c);
    } else {
        c = xcalloc(1, sizeof *c);
    }
    c->api = api;
    c->req = req;
    const char *rid = http_header(req, "X-Request-Id");
    if (rid && valid_request_id(rid))
        snprintf(c->request_id, sizeof c->request_id, "%s", rid);
    else
        rand_hex(c->request_id, 16);
    parse_traceparent(http_header(req, "traceparent"), c->trace_id);
    client_ip(c);
    if (!route(c))
        return;
    const char *auth_failure = authenticate(c);
    if (auth_failure) {
        auth_failed(c, auth_failure);
        return;
    }
    if (req->body_too_large) {
        problem(c, 413, "too-large", "Request body too large", NULL,
                "The request body exceeds the size limit", NULL);
        return;
    }
    if (ip_allows(c))
        execute(c);
}

tok_api_t *tok_api_create(const tok_api_opts_t *o)
{
    tok_api_t *api = xcalloc(1, sizeof *api);
    api->o = *o;
    api->o.trusted_header = NULL;
    api->trusted_header =
        o->trusted_header && *o->trusted_header ? xstrdup(o->trusted_header) : NULL;
    api->rl_enabled = o->ratelimit != NULL;
    api->ip_limits = tok_rl_local_create(IP_TABLE);
    metric_reg_t *m = o->metrics;
    api->m_requests =
        metric_counter_new(m, "herald_http_requests_total",
                           "API requests by route, method and status.", "route,method,status");
    api->m_latency = metric_histogram_new(m, "herald_http_request_duration_seconds",
                                          "API request latency.", "route,method", NULL, 0);
    api->m_regs = metric_counter_new(m, "herald_registrations_total",
                                     "Device-token registrations by result.", "result");
    api->m_deact = metric_counter_new(m, "herald_deactivations_total",
                                      "Device tokens deactivated or deleted, by reason.", "reason");
    api->m_authfail = metric_counter_new(m, "herald_auth_failures_total",
                                         "Rejected API authentications by reason.", "reason");
    api->m_limited = metric_counter_new(m, "herald_ratelimited_total",
                                        "API requests refused by the rate limiter, by key.", "key");
    api->m_rlerr =
        metric_counter_new(m, "herald_ratelimit_errors_total",
                           "Rate-limit checks that failed (requests let through).", NULL);
    return api;
}

void tok_api_destroy(tok_api_t *api)
{
    if (api == NULL)
        return;
    free(api->trusted_header);
    tok_rl_local_destroy(api->ip_limits);
    buf_cleanup(&api->body);
    while (api->spare) {
        call_t *c = api->spare;
        api->spare = c->next_spare;
        free(c);
    }
    free(api);
}

void tok_api_set_limits(tok_api_t *api, const tok_rl_limits_t *limits, bool enabled)
{
    api->o.limits = *limits;
    api->rl_enabled = enabled && api->o.ratelimit != NULL;
}

size_t tok_api_pending(const tok_api_t *api)
{
    return api->pending;
}
