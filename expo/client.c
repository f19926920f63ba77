/* client.c - the Expo send client: pending queues per project, batching with linger, the
 * send-rate limiter, requests through the transport, and the outcome of every message.
 *
 * Flow: expo_send encodes the message into an item on its project's queue. pump() forms requests
 * (<= 100 items, one project) when a queue holds a full batch, its oldest item has lingered, or
 * no request is in flight (the items of one loop turn leave together at the end of the turn:
 * linger only gathers while earlier requests are out, so an idle herald adds no linger to a
 * notification's latency), while fewer than max_concurrent requests are in flight and the
 * limiter has tokens. on_reply
 * maps tickets to items by position (a malformed ticket puts only its own item in doubt);
 * whole-request failures go back through the delayed list (backoff with full jitter) until
 * max_attempts or max_retry_age_s. */
#include "core/list.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/xalloc.h"
#include "expo/client_int.h"
#include "expo/expo.h"
#include "expo/proto.h"
#include "expo/transport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct proj proj_t;

/* One message: the item, its token and its encoded JSON in one allocation. */
typedef struct item {
    struct item *next;
    char *to;   /* in mem */
    char *json; /* in mem, len bytes */
    size_t len;
    proj_t *proj;
    unsigned attempts;
    uint64_t first_ms; /* when expo_send took it */
    uint64_t ready_ms; /* linger end, or the retry time */
    bool ambiguous;
    int local_err; /* EXPO_EINVAL / EXPO_ETOOBIG: failed before any request */
    expo_result_cb cb;
    void *arg;
    char mem[]; /* to, NUL, json, NUL */
} item_t;

struct proj {
    proj_t *next;
    char *name;
    item_t *head, *tail;
    size_t count;
    expo_window_t window;
    uint64_t pace_at;    /* next send no earlier than this: batches spread over the second */
    uint64_t wait_since; /* limiter blocked since (0: not blocked) */
    long pool;           /* shared budget just granted: spent in the pump after the grant */
    uint64_t ask_after, shared_down_until;
    struct grant_ctx *asking; /* the acquire in progress, or NULL */
};

typedef struct req {
    list_node_t node; /* in c->reqs, or in c->spare_reqs when done (kept with its buffers) */
    expo_client_t *c;
    item_t *items[EXPO_MAX_BATCH];
    size_t n;
    buf_t body, gz;
} req_t;

typedef struct grant_ctx {
    expo_client_t *c; /* NULL once the client is destroyed */
    proj_t *p;
} grant_ctx_t;

struct expo_client {
    uv_loop_t *loop;
    expo_opts_t o;
    char *send_url;
    char *auth_header;
    expo_transport_t *tr;
    proj_t *projs;
    item_t *delayed;
    item_t *done_head, *done_tail;
    list_t reqs;       /* in flight */
    list_t spare_reqs; /* done: reused by the next requests, at most max_concurrent */
    size_t nspare;
    buf_t scratch;   /* expo_send encodes here before sizing the item */
    expo_gzip_t *gz; /* one deflate stream for every request body */
    pmap_t *pmap;
    uv_timer_t pump_timer, retry_timer, done_timer;
    uint64_t pump_at, retry_at;
    size_t in_flight, pending;
    long batch_max; /* min(100, rate): a batch never exceeds one window's budget */
    int open_handles;
    bool destroying;
    metric_reg_t *own_reg;
    metric_fam_t *m_req, *m_msg, *m_retry;
    metric_t *m_inflight, *m_wait, *m_lat, *m_raw, *m_sent, *m_cred;
};

static void pump(expo_client_t *c);

static uint64_t now_ms(const expo_client_t *c)
{
    return c->o.clock->mono_ms(c->o.clock->arg);
}

/* ---- metrics ---- */

static void metrics_init(expo_client_t *c, metric_reg_t *reg)
{
    if (!reg)
        reg = c->own_reg = metric_reg_create();
    c->m_req = metric_counter_new(reg, "herald_expo_requests_total",
                                  "Expo send requests by result class", "class");
    c->m_msg = metric_counter_new(reg, "herald_expo_messages_total",
                                  "Messages finished by outcome and error", "outcome,error");
    c->m_retry = metric_counter_new(reg, "herald_expo_retries_total",
                                    "Messages scheduled for another attempt", "reason");
    c->m_inflight =
        metric_get(metric_gauge_new(reg, "herald_expo_in_flight", "Expo requests in flight", NULL));
    c->m_wait = metric_get(metric_counter_new(reg, "herald_expo_ratelimit_wait_seconds_total",
                                              "Time a ready batch waited for the send-rate "
                                              "limiter",
                                              NULL));
    c->m_lat = metric_get(metric_histogram_new(reg, "herald_expo_request_seconds",
                                               "Expo request duration", NULL, NULL, 0));
    metric_fam_t *bytes = metric_counter_new(reg, "herald_expo_bytes_total",
                                             "Request body bytes before and after gzip", "stage");
    c->m_raw = metric_get(bytes, "raw");
    c->m_sent = metric_get(bytes, "sent");
    c->m_cred = metric_get(metric_counter_new(reg, "herald_expo_credential_errors_total",
                                              "Expo rejected our credentials", NULL));
}

/* Error labels are a fixed set: a hostile reply must not grow the registry. */
static const char *err_label(const char *e)
{
    static const char *known[] = {"DeviceNotRegistered",
                                  "MessageTooBig",
                                  "MessageRateExceeded",
                                  "MismatchSenderId",
                                  "InvalidCredentials",
                                  "DeveloperError",
                                  "ExpoError",
                                  "ProviderError",
                                  "UNAUTHORIZED",
                                  "RetriesExhausted",
                                  "Shutdown",
                                  "InvalidMessage",
                                  "PUSH_TOO_MANY_EXPERIENCE_IDS",
                                  "invalid_token"};
    if (!e)
        return "";
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(e, known[i]) == 0)
            return known[i];
    return "other";
}

/* ---- items and projects ---- */

static proj_t *get_proj(expo_client_t *c, const char *name)
{
    for (proj_t *p = c->projs; p; p = p->next)
        if (strcmp(p->name, name) == 0)
            return p;
    proj_t *p = xcalloc(1, sizeof *p);
    p->name = xstrdup(name);
    expo_window_init(&p->window, c->o.rate_per_sec, EXPO_RATE_WINDOW_MS);
    p->next = c->projs;
    c->projs = p;
    return p;
}

static void item_free(item_t *it)
{
    free(it);
}

static void finish(expo_client_t *c, item_t *it, expo_outcome_t oc, const char *ticket,
                   const char *error, const char *message)
{
    static const char *names[] = {"ok", "invalid_token", "failed"};
    expo_result_t r = {oc,    it->to,  it->proj->name, ticket,
                       error, message, it->attempts,   it->ambiguous};
    metric_inc(metric_get(c->m_msg, names[oc], err_label(error)));
    c->pending--;
    it->cb(&r, it->arg);
    item_free(it);
}

static void push_back(proj_t *p, item_t *it)
{
    it->next = NULL;
    if (p->tail)
        p->tail->next = it;
    else
        p->head = it;
    p->tail = it;
    p->count++;
}

static void push_front(proj_t *p, item_t *it)
{
    it->next = p->head;
    p->head = it;
    if (!p->tail)
        p->tail = it;
    p->count++;
}

static item_t *pop_front(proj_t *p)
{
    item_t *it = p->head;
    p->head = it->next;
    if (!p->head)
        p->tail = NULL;
    p->count--;
    it->next = NULL;
    return it;
}

/* ---- timers ---- */

static void arm(expo_client_t *c, uv_timer_t *t, uint64_t *armed_at, uint64_t at, uv_timer_cb cb)
{
    uint64_t now = now_ms(c);
    if (uv_is_active((uv_handle_t *)t) && *armed_at <= at)
        return;
    *armed_at = at;
    uv_timer_start(t, cb, at > now ? at - now : 0, 0);
}

static void on_pump_timer(uv_timer_t *t)
{
    pump(t->data);
}

static void on_retry_timer(uv_timer_t *t)
{
    expo_client_t *c = t->data;
    uint64_t now = now_ms(c), next = UINT64_MAX;
    item_t *due = NULL, **pp = &c->delayed;
    while (*pp) {
        item_t *it = *pp;
        if (it->ready_ms <= now) {
            *pp = it->next;
            it->next = due; /* reversed: pushing to the fronts below restores the order */
            due = it;
        } else {
            if (it->ready_ms < next)
                next = it->ready_ms;
            pp = &it->next;
        }
    }
    while (due) {
        item_t *it = due;
        due = it->next;
        push_front(it->proj, it);
    }
    if (next != UINT64_MAX)
        arm(c, &c->retry_timer, &c->retry_at, next, on_retry_timer);
    pump(c);
}

static void on_done_timer(uv_timer_t *t)
{
    expo_client_t *c = t->data;
    while (c->done_head) {
        item_t *it = c->done_head;
        c->done_head = it->next;
        if (!c->done_head)
            c->done_tail = NULL;
        bool big = it->local_err == EXPO_ETOOBIG;
        finish(c, it, EXPO_FAILED, NULL, big ? "MessageTooBig" : "InvalidMessage",
               expo_strerror(it->local_err));
    }
}

/* ---- retries ---- */

static void retry_item(expo_client_t *c, item_t *it, uint64_t delay, const char *reason,
                       const char *code, uint64_t now)
{
    bool too_old = now + delay - it->first_ms > (uint64_t)c->o.max_retry_age_s * 1000;
    if (it->attempts >= (unsigned)c->o.max_attempts || too_old) {
        char msg[160];
        snprintf(msg, sizeof msg, "retries exhausted after %u attempts; last error %s",
                 it->attempts, code ? code : "unknown");
        finish(c, it, EXPO_FAILED, NULL, "RetriesExhausted", msg);
        return;
    }
    metric_inc(metric_get(c->m_retry, reason));
    it->ready_ms = now + delay;
    it->next = c->delayed;
    c->delayed = it;
    arm(c, &c->retry_timer, &c->retry_at, it->ready_ms, on_retry_timer);
}

static void retry_all(expo_client_t *c, req_t *r, const char *reason, const char *code,
                      bool ambiguous, long retry_after)
{
    /* one draw for the whole request: its messages stay together and go again as one batch */
    uint64_t now = now_ms(c);
    unsigned att = 0;
    for (size_t i = 0; i < r->n; i++)
        att = r->items[i]->attempts > att ? r->items[i]->attempts : att;
    uint64_t d = expo_retry_delay_ms(att, (uint64_t)c->o.backoff_base_ms,
                                     (uint64_t)c->o.backoff_cap_ms, retry_after, c->o.rnd());
    for (size_t i = r->n; i-- > 0;) {
        item_t *it = r->items[i];
        it->ambiguous = it->ambiguous || ambiguous;
        retry_item(c, it, d, reason, code, now);
    }
}

static void fail_all(expo_client_t *c, req_t *r, const char *code, const char *message)
{
    for (size_t i = 0; i < r->n; i++)
        finish(c, r->items[i], EXPO_FAILED, NULL, code, message);
}

/* ---- replies ---- */

static void log_credential(expo_client_t *c, const char *code, const char *message,
                           const char *project)
{
    metric_inc(c->m_cred);
    LOG(LOG_LVL_ERROR, "expo rejected the credentials", LKS("code", code),
        LKS("message", message ? message : ""), LKS("project", project));
}

/* A malformed ticket: the server may have taken that message, so it goes again alone (with its
 * collapseId, so a device shows a duplicate once), marked ambiguous, under the retry policy. */
static void retry_doubt(expo_client_t *c, item_t *it, const expo_ticket_t *t, uint64_t now)
{
    it->ambiguous = true;
    retry_item(c, it,
               expo_retry_delay_ms(it->attempts, (uint64_t)c->o.backoff_base_ms,
                                   (uint64_t)c->o.backoff_cap_ms, -1, c->o.rnd()),
               "protocol", t->error, now);
}

static void on_tickets(expo_client_t *c, req_t *r, const expo_reply_t *rep)
{
    uint64_t now = now_ms(c);
    size_t doubt = 0;
    for (size_t i = 0; i < r->n; i++)
        doubt += rep->tickets[i].kind == EXPO_TK_DOUBT;
    if (doubt)
        LOG(LOG_LVL_WARN, "expo reply has malformed tickets, resending those messages",
            LKI("malformed", doubt), LKI("messages", r->n));
    for (size_t i = 0; i < r->n; i++) {
        item_t *it = r->items[i];
        const expo_ticket_t *t = &rep->tickets[i];
        switch (t->kind) {
        case EXPO_TK_OK:
            finish(c, it, EXPO_OK, t->id, NULL, NULL);
            break;
        case EXPO_TK_INVALID:
            finish(c, it, EXPO_INVALID_TOKEN, NULL, t->error, t->message);
            break;
        case EXPO_TK_RETRY:
            retry_item(c, it,
                       expo_retry_delay_ms(it->attempts, (uint64_t)c->o.backoff_base_ms,
                                           (uint64_t)c->o.backoff_cap_ms, -1, c->o.rnd()),
                       "MessageRateExceeded", t->error, now);
            break;
        case EXPO_TK_FAIL:
            if (expo_credential_error(t->error))
                log_credential(c, t->error, t->message, it->proj->name);
            finish(c, it, EXPO_FAILED, NULL, t->error, t->message);
            break;
        case EXPO_TK_DOUBT:
            retry_doubt(c, it, t, now);
            break;
        }
    }
}

static const char *split_lookup(const expo_reply_t *rep, const char *token)
{
    for (size_t i = 0; i < rep->nsplit; i++)
        for (size_t j = 0; j < rep->split[i].ntokens; j++)
            if (strcmp(rep->split[i].tokens[j], token) == 0)
                return rep->split[i].project;
    return NULL;
}

/* PUSH_TOO_MANY_EXPERIENCE_IDS: learn each token's project and resend per project at once. No
 * progress (nothing moved to another project) would loop forever: fail instead. */
static void on_split(expo_client_t *c, req_t *r, const expo_reply_t *rep)
{
    bool moved = false;
    for (size_t i = 0; i < r->n; i++) {
        const char *p = split_lookup(rep, r->items[i]->to);
        if (p && strcmp(p, r->items[i]->proj->name) != 0)
            moved = true;
    }
    if (!moved) {
        fail_all(c, r, rep->code, "Expo reported several projects but the split changed nothing");
        return;
    }
    uint64_t now = now_ms(c);
    for (size_t i = r->n; i-- > 0;) {
        item_t *it = r->items[i];
        const char *p = split_lookup(rep, it->to);
        if (p) {
            pmap_set(c->pmap, it->to, p);
            it->proj = get_proj(c, p);
        }
        retry_item(c, it, 0, "split", rep->code, now);
    }
}

static const char *retry_reason(long status, const expo_reply_t *rep)
{
    if (status == 429 || (rep->code && strcmp(rep->code, "TOO_MANY_REQUESTS") == 0))
        return "429";
    return status >= 500 ? "5xx" : "protocol";
}

static void req_free(req_t *r)
{
    expo_client_t *c = r->c;
    list_remove(&r->node);
    if (!c->destroying && c->nspare < (size_t)c->o.max_concurrent) {
        buf_reset(&r->body);
        buf_reset(&r->gz);
        list_push_back(&c->spare_reqs, &r->node);
        c->nspare++;
        return;
    }
    buf_cleanup(&r->body);
    buf_cleanup(&r->gz);
    free(r);
}

static req_t *req_new(expo_client_t *c)
{
    list_node_t *n = list_first(&c->spare_reqs);
    if (n == NULL) {
        req_t *r = xcalloc(1, sizeof *r);
        r->c = c;
        r->node.prev = r->node.next = &r->node; /* unlinked */
        return r;
    }
    list_remove(n);
    c->nspare--;
    return container_of(n, req_t, node);
}

static const char *terr_name(expo_terr_t e)
{
    static const char *n[] = {"",
                              "ConnectError",
                              "Timeout",
                              "ConnectionDropped",
                              "ResponseTooLarge",
                              "TransportError",
                              "Cancelled"};
    return (size_t)e < sizeof n / sizeof n[0] ? n[e] : "TransportError";
}

static void on_reply_parsed(expo_client_t *c, req_t *r, const expo_http_resp_t *resp)
{
    expo_reply_t rep;
    expo_reply_parse(resp->status, resp->body, resp->len, r->n, &rep);
    switch (rep.kind) {
    case EXPO_REPLY_TICKETS:
        on_tickets(c, r, &rep);
        break;
    case EXPO_REPLY_RETRY:
        LOG(LOG_LVL_WARN, "expo request failed, retrying", LKI("status", resp->status),
            LKS("code", rep.code), LKI("messages", r->n));
        retry_all(c, r, retry_reason(resp->status, &rep), rep.code, rep.ambiguous,
                  resp->retry_after_s);
        break;
    case EXPO_REPLY_FAIL:
        if (rep.credential)
            log_credential(c, rep.code, rep.message, r->items[0]->proj->name);
        else
            LOG(LOG_LVL_WARN, "expo rejected the request", LKI("status", resp->status),
                LKS("code", rep.code), LKS("message", rep.message ? rep.message : ""));
        fail_all(c, r, rep.code, rep.message);
        break;
    case EXPO_REPLY_SPLIT:
        on_split(c, r, &rep);
        break;
    }
    expo_reply_cleanup(&rep);
}

static void on_reply(const expo_http_resp_t *resp, void *arg)
{
    req_t *r = arg;
    expo_client_t *c = r->c;
    c->in_flight--;
    metric_set(c->m_inflight, (double)c->in_flight);
    if (c->destroying) { /* the transport's destroy cancels what is in flight */
        fail_all(c, r, "Shutdown", "the Expo client was shut down");
        req_free(r);
        return;
    }
    metric_observe(c->m_lat, resp->seconds);
    static const char *cls[] = {"transport", "1xx", "2xx", "3xx", "4xx", "5xx"};
    long k = resp->status / 100;
    metric_inc(metric_get(c->m_req, resp->status == 0 || k < 1 || k > 5 ? cls[0] : cls[k]));
    if (resp->status == 0) {
        LOG(LOG_LVL_WARN, "expo request failed, retrying", LKS("error", terr_name(resp->terr)),
            LKS("detail", resp->detail), LKI("messages", r->n));
        retry_all(c, r, "transport", terr_name(resp->terr), resp->maybe_sent, -1);
    } else {
        for (size_t i = 0; resp->resent && i < r->n; i++)
            r->items[i]->ambiguous = true;
        on_reply_parsed(c, r, resp);
    }
    req_free(r);
    pump(c);
}

/* ---- forming requests ---- */

static void build_body(req_t *r)
{
    size_t total = 2;
    for (size_t i = 0; i < r->n; i++)
        total += r->items[i]->len + 1;
    buf_reserve(&r->body, total);
    buf_putc(&r->body, '[');
    for (size_t i = 0; i < r->n; i++) {
        if (i)
            buf_putc(&r->body, ',');
        buf_append(&r->body, r->items[i]->json, r->items[i]->len);
    }
    buf_putc(&r->body, ']');
}

static void send_batch(expo_client_t *c, proj_t *p, size_t n)
{
    req_t *r = req_new(c);
    for (size_t i = 0; i < n; i++) {
        r->items[i] = pop_front(p);
        r->items[i]->attempts++;
    }
    r->n = n;
    build_body(r);
    const char *hdr[4] = {"accept: application/json", "content-type: application/json"};
    size_t nh = 2;
    const void *body = r->body.data;
    size_t len = r->body.len;
    if (len > EXPO_GZIP_MIN && expo_gzip_run(c->gz, r->body.data, r->body.len, &r->gz) == 0) {
        hdr[nh++] = "content-encoding: gzip";
        body = r->gz.data;
        len = r->gz.len;
    }
    if (c->auth_header)
        hdr[nh++] = c->auth_header;
    metric_add(c->m_raw, (double)r->body.len);
    metric_add(c->m_sent, (double)len);
    list_push_back(&c->reqs, &r->node);
    c->in_flight++;
    metric_set(c->m_inflight, (double)c->in_flight);
    c->tr->post(c->tr, c->send_url, hdr, nh, body, len, c->o.timeout_ms, on_reply, r);
}

static void on_grant(long granted, long retry_ms, void *ctx)
{
    grant_ctx_t *g = ctx;
    expo_client_t *c = g->c;
    proj_t *p = g->p;
    free(g);
    if (!c)
        return;
    p->asking = NULL;
    uint64_t now = now_ms(c);
    if (granted < 0) {
        LOG(LOG_LVL_WARN, "shared expo rate limit unavailable, using the local limiter for 5 s",
            LKS("project", p->name));
        p->shared_down_until = now + 5000;
        pump(c);
        return;
    }
    if (retry_ms > 0 || granted == 0)
        p->ask_after = now + (uint64_t)(retry_ms > 0 ? retry_ms : 1);
    /* the budget counted the grant as sent just now: a send later than this pump could meet
     * another instance's grant of the next window at the server */
    p->pool = granted;
    pump(c);
    p->pool = 0;
}

/* The shared budget: spend a grant at once, else ask Redis for the batch that is ready. Returns
 * how many of `want` may go now (0: *wait_ms tells when to look again; UINT64_MAX when a grant
 * callback will pump). */
static size_t shared_allow(expo_client_t *c, proj_t *p, size_t want, uint64_t now,
                           uint64_t *wait_ms)
{
    if (p->pool > 0) {
        size_t n = (size_t)p->pool < want ? (size_t)p->pool : want;
        p->pool -= (long)n;
        return n;
    }
    if (p->ask_after > now) {
        *wait_ms = p->ask_after - now;
        return 0;
    }
    *wait_ms = UINT64_MAX;
    if (!p->asking) {
        grant_ctx_t *g = xmalloc(sizeof *g);
        g->c = c;
        g->p = p;
        p->asking = g;
        c->o.rate_hook->acquire(c->o.rate_hook->arg, p->name, (long)want, on_grant, g);
    }
    return 0;
}

static size_t allow(expo_client_t *c, proj_t *p, size_t want, uint64_t now, uint64_t *wait_ms)
{
    if (c->o.rate_per_sec <= 0)
        return want;
    if (c->o.rate_hook && p->shared_down_until <= now)
        return shared_allow(c, p, want, now, wait_ms);
    /* pacing keeps requests apart (a burst of concurrent requests reaches the server spread
     * out, and the next window's first request could overtake them); the window is the cap */
    if (p->pace_at > now) {
        *wait_ms = p->pace_at - now;
        return 0;
    }
    *wait_ms = expo_window_take(&p->window, (long)want, now);
    if (*wait_ms)
        return 0;
    p->pace_at = now + (uint64_t)want * 1000 / (uint64_t)c->o.rate_per_sec;
    return want;
}

/* Forms every request that may go now and arms the pump timer for the next moment one may. */
static void pump_proj(expo_client_t *c, proj_t *p, uint64_t now, uint64_t *wake)
{
    size_t full = c->batch_max < EXPO_MAX_BATCH ? (size_t)c->batch_max : EXPO_MAX_BATCH;
    while (p->count > 0 && c->in_flight < (size_t)c->o.max_concurrent) {
        size_t want = p->count < full ? p->count : full;
        if (want < full && p->head->ready_ms > now && c->in_flight > 0) {
            if (p->head->ready_ms < *wake)
                *wake = p->head->ready_ms;
            return;
        }
        uint64_t w = 0;
        size_t n = allow(c, p, want, now, &w);
        if (n == 0) {
            if (!p->wait_since)
                p->wait_since = now;
            if (w != UINT64_MAX && now + w < *wake)
                *wake = now + w;
            return;
        }
        if (p->wait_since) {
            metric_add(c->m_wait, (double)(now - p->wait_since) / 1000.0);
            p->wait_since = 0;
        }
        send_batch(c, p, n);
    }
}

static void pump(expo_client_t *c)
{
    uint64_t now = now_ms(c), wake = UINT64_MAX;
    for (proj_t *p = c->projs; p; p = p->next)
        pump_proj(c, p, now, &wake);
    if (wake != UINT64_MAX)
        arm(c, &c->pump_timer, &c->pump_at, wake, on_pump_timer);
}

/* ---- public ---- */

void expo_send(expo_client_t *c, const expo_msg_t *m, expo_result_cb cb, void *arg)
{
    const char *to = m->to ? m->to : "";
    size_t tolen = strlen(to);
    buf_reset(&c->scratch);
    int enc = expo_msg_encode(m, &c->scratch);
    size_t jlen = enc == 0 ? c->scratch.len : 0;
    item_t *it = xmalloc(sizeof *it + tolen + 1 + jlen + 1);
    memset(it, 0, sizeof *it);
    it->to = it->mem;
    memcpy(it->to, to, tolen + 1);
    it->json = it->mem + tolen + 1;
    memcpy(it->json, buf_cstr(&c->scratch), jlen);
    it->json[jlen] = '\0';
    it->len = jlen;
    it->cb = cb;
    it->arg = arg;
    it->first_ms = now_ms(c);
    it->ready_ms = it->first_ms + (uint64_t)c->o.linger_ms;
    const char *pname = m->project ? m->project : pmap_get(c->pmap, it->to);
    if (m->project && m->to)
        pmap_set(c->pmap, m->to, m->project);
    it->proj = get_proj(c, pname ? pname : "");
    c->pending++;
    it->local_err = enc;
    if (it->local_err != 0) {
        if (c->done_tail)
            c->done_tail->next = it;
        else
            c->done_head = it;
        c->done_tail = it;
        uv_timer_start(&c->done_timer, on_done_timer, 0, 0);
        return;
    }
    push_back(it->proj, it);
    proj_t *p = it->proj;
    if (p->count >= EXPO_MAX_BATCH || p->count >= (size_t)c->batch_max)
        pump(c);
    else if (p->count == 1) /* after this loop turn's other sends: they may share the request */
        arm(c, &c->pump_timer, &c->pump_at, it->first_ms, on_pump_timer);
}

size_t expo_client_pending(const expo_client_t *c)
{
    return c->pending;
}

void expo_client_set_project(expo_client_t *c, const char *token, const char *project)
{
    pmap_set(c->pmap, token, project);
}

static uint64_t default_rnd(void)
{
    return rand_u64();
}

static int setup_transport(expo_client_t *c, char *err, size_t errlen)
{
    if (c->o.transport) {
        c->tr = c->o.transport;
        return 0;
    }
    expo_curl_opts_t co = {c->o.max_concurrent, c->o.http2, EXPO_MAX_REPLY};
    c->tr = expo_transport_curl_create(c->loop, &co, err, errlen);
    return c->tr ? 0 : -1;
}

static bool opts_ok(const expo_opts_t *o, char *err, size_t errlen)
{
    if (!o->url || strncmp(o->url, "http", 4) != 0)
        snprintf(err, errlen, "expo.url must be an http:// or https:// URL");
    else if (o->max_concurrent < 1 || o->max_attempts < 1 || o->linger_ms < 0 ||
             o->rate_per_sec < 0 || o->backoff_base_ms < 1 || o->backoff_cap_ms < 1 ||
             o->max_retry_age_s < 1 || o->timeout_ms < 1)
        snprintf(err, errlen, "expo options out of range");
    else
        return true;
    return false;
}

expo_client_t *expo_client_create(uv_loop_t *loop, const expo_opts_t *opts, metric_reg_t *metrics,
                                  char *err, size_t errlen)
{
    if (!opts_ok(opts, err, errlen))
        return NULL;
    expo_client_t *c = xcalloc(1, sizeof *c);
    list_init(&c->reqs);
    list_init(&c->spare_reqs);
    c->loop = loop;
    c->o = *opts;
    if (!c->o.clock)
        c->o.clock = clk_system();
    if (!c->o.rnd)
        c->o.rnd = default_rnd;
    if (setup_transport(c, err, errlen) != 0) {
        free(c);
        return NULL;
    }
    c->o.transport = NULL;
    size_t ul = strlen(opts->url);
    while (ul > 0 && opts->url[ul - 1] == '/')
        ul--;
    buf_t u = BUF_INIT;
    buf_printf(&u, "%.*s/--/api/v2/push/send", (int)ul, opts->url);
    c->send_url = buf_steal(&u);
    if (opts->access_token && *opts->access_token) {
        buf_printf(&u, "authorization: Bearer %s", opts->access_token);
        c->auth_header = buf_steal(&u);
    }
    /* a batch never holds more than one window's worth */
    long r = opts->rate_per_sec;
    c->batch_max = r <= 0 ? EXPO_MAX_BATCH : (r < EXPO_MAX_BATCH ? r : EXPO_MAX_BATCH);
    c->pmap = pmap_create(1u << 20);
    c->gz = expo_gzip_create();
    metrics_init(c, metrics);
    uv_timer_t *timers[] = {&c->pump_timer, &c->retry_timer, &c->done_timer};
    for (size_t i = 0; i < 3; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = c;
        c->open_handles++;
    }
    return c;
}

static void on_closed(uv_handle_t *h)
{
    expo_client_t *c = h->data;
    if (--c->open_handles == 0) {
        metric_reg_destroy(c->own_reg);
        free(c);
    }
}

static void fail_list(expo_client_t *c, item_t *it)
{
    while (it) {
        item_t *nx = it->next;
        finish(c, it, EXPO_FAILED, NULL, "Shutdown", "the Expo client was shut down");
        it = nx;
    }
}

void expo_client_destroy(expo_client_t *c)
{
    if (!c)
        return;
    c->destroying = true;
    c->tr->destroy(c->tr); /* answers every request in flight (on_reply), then no more */
    on_done_timer(&c->done_timer);
    fail_list(c, c->delayed);
    c->delayed = NULL;
    while (c->projs) {
        proj_t *p = c->projs;
        c->projs = p->next;
        item_t *q = p->head;
        p->head = p->tail = NULL;
        fail_list(c, q);
        if (p->asking)
            p->asking->c = NULL;
        expo_window_cleanup(&p->window);
        free(p->name);
        free(p);
    }
    while (!list_empty(&c->spare_reqs)) {
        req_t *r = list_first_entry(&c->spare_reqs, req_t, node);
        req_free(r); /* destroying: freed, not kept */
    }
    buf_cleanup(&c->scratch);
    expo_gzip_destroy(c->gz);
    pmap_destroy(c->pmap);
    free(c->send_url);
    free(c->auth_header);
    uv_close((uv_handle_t *)&c->pump_timer, on_closed);
    uv_close((uv_handle_t *)&c->retry_timer, on_closed);
    uv_close((uv_handle_t *)&c->done_timer, on_closed);
}
