/* receipts.c - scheduling push receipt checks in Redis and polling Expo's getReceipts for them.
 * See receipts.h for the Redis layout and the claim protocol; the scripts (expo/lua/receipts_*.lua)
 * are the only code that touches those keys. */
#include "core/buf.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "db/keys.h"
#include "expo/expo.h"
#include "expo/lua_receipts.h"
#include "expo/proto.h"
#include "expo/receipts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELDS 10 /* id + 9 hash fields per claimed ticket */

struct expo_receipts {
    uv_loop_t *loop;
    db_t *db;
    expo_receipts_opts_t o;
    expo_transport_t *tr;
    char *url, *auth;
    char zkey[KEY_MAX], ticket_stem[KEY_MAX];
    db_script_t *s_schedule, *s_claim, *s_forget, *s_postpone, *s_pending;
    uv_timer_t timer;
    bool polling;
    struct claim *cur; /* the getReceipts request in flight */
    metric_fam_t *m_rcpt;
    metric_t *m_req_fail, *m_cred;
};

typedef struct claim {
    expo_receipts_t *r;
    size_t n;
    char **f; /* n * FIELDS strings */
    buf_t body;
} claim_t;

static int64_t now_s(const expo_receipts_t *r)
{
    return r->o.clock->wall_ms(r->o.clock->arg) / 1000;
}

static void on_timer(uv_timer_t *t);

expo_receipts_t *expo_receipts_create(uv_loop_t *loop, db_t *db, const expo_receipts_opts_t *o,
                                      metric_reg_t *metrics, char *err, size_t errlen)
{
    if (!o->on_receipt || !o->url || !o->prefix) {
        snprintf(err, errlen, "receipts: on_receipt, url and prefix are required");
        return NULL;
    }
    if (o->poll_interval_s < 1 || o->timeout_ms < 1) {
        snprintf(err, errlen, "receipts: poll_interval_s and timeout_ms must be positive");
        return NULL;
    }
    if (strlen(o->prefix) > KEY_PREFIX_MAX) {
        snprintf(err, errlen, "receipts: the key prefix is longer than %d bytes", KEY_PREFIX_MAX);
        return NULL;
    }
    expo_receipts_t *r = xcalloc(1, sizeof *r);
    r->loop = loop;
    r->db = db;
    r->o = *o;
    if (!r->o.clock)
        r->o.clock = clk_system();
    r->tr = o->transport;
    if (!r->tr) {
        expo_curl_opts_t co = {2, true, EXPO_MAX_REPLY};
        r->tr = expo_transport_curl_create(loop, &co, err, errlen);
        if (!r->tr) {
            free(r);
            return NULL;
        }
    }
    r->o.transport = NULL;
    buf_t b = BUF_INIT;
    size_t ul = strlen(o->url);
    while (ul > 0 && o->url[ul - 1] == '/')
        ul--;
    buf_printf(&b, "%.*s/--/api/v2/push/getReceipts", (int)ul, o->url);
    r->url = buf_steal(&b);
    if (o->access_token && *o->access_token) {
        buf_printf(&b, "authorization: Bearer %s", o->access_token);
        r->auth = buf_steal(&b);
    }
    key_receipts(r->zkey, o->prefix);
    key_stem(r->ticket_stem, o->prefix, KEY_TICKET);
    r->s_schedule = db_script(db, lua_receipts_schedule);
    r->s_claim = db_script(db, lua_receipts_claim);
    r->s_forget = db_script(db, lua_receipts_forget);
    r->s_postpone = db_script(db, lua_receipts_postpone);
    r->s_pending = db_script(db, lua_receipts_pending);
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    metric_reg_t *reg = metrics;
    if (reg) {
        r->m_rcpt = metric_counter_new(reg, "herald_expo_receipts_total", "Push receipts by result",
                                       "status");
        r->m_req_fail = metric_get(metric_counter_new(
            reg, "herald_expo_receipt_request_failures_total",
            "getReceipts requests that failed (ids come back after the lease)", NULL));
        /* the client's family: ticket and receipt credential errors feed one alert */
        r->m_cred = metric_get(metric_counter_new(reg, "herald_expo_credential_errors_total",
                                                  "Expo rejected our credentials", NULL));
    }
    return r;
}

static void claim_free(struct claim *c);

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void expo_receipts_destroy(expo_receipts_t *r)
{
    if (!r)
        return;
    r->tr->destroy(r->tr); /* cancels a request in flight: on_receipts frees its claim */
    free(r->url);
    free(r->auth);
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, on_closed);
}

void expo_receipts_start(expo_receipts_t *r)
{
    uint64_t iv = (uint64_t)r->o.poll_interval_s * 1000;
    uv_timer_start(&r->timer, on_timer, iv, iv);
}

/* ---- schedule and pending ---- */

typedef struct sched {
    void (*cb)(int, void *);
    void *arg;
} sched_t;

static void on_scheduled(int status, const db_reply_t *reply, void *arg)
{
    sched_t *s = arg;
    if (status == DB_OK && db_reply_type(reply) == DB_REPLY_ERROR)
        status = DB_EPROTO;
    if (s->cb)
        s->cb(status, s->arg);
    free(s);
}

void expo_receipts_schedule(expo_receipts_t *r, const expo_ticket_info_t *t, size_t n,
                            int64_t due_s, void (*cb)(int status, void *arg), void *arg)
{
    size_t argc = 4 + 9 * n;
    const char **argv = xcalloc(argc, sizeof *argv);
    char nums[3][24];
    char(*sent)[24] = xcalloc(n ? n : 1, sizeof *sent);
    char(*resends)[16] = xcalloc(n ? n : 1, sizeof *resends);
    snprintf(nums[0], sizeof nums[0], "%lld", (long long)due_s);
    snprintf(nums[1], sizeof nums[1], "%ld", 26L * 3600);
    argv[0] = r->zkey;
    argv[1] = r->ticket_stem;
    argv[2] = nums[0];
    argv[3] = nums[1];
    for (size_t i = 0; i < n; i++) {
        const char **a = &argv[4 + 9 * i];
        const char *ev = t[i].event ? t[i].event : "";
        snprintf(sent[i], sizeof sent[i], "%lld", (long long)t[i].sent_at_s);
        snprintf(resends[i], sizeof resends[i], "%u", t[i].resends);
        a[0] = t[i].ticket_id;
        a[1] = t[i].user_id ? t[i].user_id : "";
        a[2] = t[i].device_id ? t[i].device_id : "";
        a[3] = t[i].token ? t[i].token : "";
        a[4] = t[i].job_id ? t[i].job_id : "";
        a[5] = sent[i];
        a[6] = strlen(ev) <= EXPO_RCPT_EVENT_MAX ? ev : "";
        a[7] = resends[i];
        a[8] = t[i].event_key ? t[i].event_key : "";
    }
    sched_t *s = xmalloc(sizeof *s);
    s->cb = cb;
    s->arg = arg;
    db_eval(r->db, r->s_schedule, on_scheduled, s, 1, (int)argc, argv, NULL);
    free(argv);
    free(sent);
    free(resends);
}

typedef struct pend {
    void (*cb)(int, long long, int64_t, void *);
    void *arg;
} pend_t;

static void on_pending(int status, const db_reply_t *reply, void *arg)
{
    pend_t *p = arg;
    long long count = 0;
    int64_t oldest = 0;
    if (status == DB_OK && db_reply_type(reply) == DB_REPLY_ARRAY && db_reply_len(reply) == 2) {
        count = db_reply_int(db_reply_elem(reply, 0));
        size_t len;
        const char *s = db_reply_str(db_reply_elem(reply, 1), &len);
        oldest = s ? (int64_t)strtod(s, NULL) : 0;
    } else if (status == DB_OK) {
        status = DB_EPROTO;
    }
    p->cb(status, count, oldest, p->arg);
    free(p);
}

void expo_receipts_pending(expo_receipts_t *r,
                           void (*cb)(int status, long long count, int64_t oldest_due_s, void *arg),
                           void *arg)
{
    pend_t *p = xmalloc(sizeof *p);
    p->cb = cb;
    p->arg = arg;
    const char *argv[] = {r->zkey};
    db_eval(r->db, r->s_pending, on_pending, p, 1, 1, argv, NULL);
}

/* ---- polling ---- */

static void claim_free(claim_t *c)
{
    for (size_t i = 0; i < c->n * FIELDS; i++)
        free(c->f[i]);
    free(c->f);
    buf_cleanup(&c->body);
    free(c);
}

static void ticket_of(const claim_t *c, size_t i, expo_ticket_info_t *t)
{
    char **f = &c->f[i * FIELDS];
    t->ticket_id = f[0];
    t->user_id = f[1];
    t->device_id = f[2];
    t->token = f[3];
    t->job_id = f[4];
    t->sent_at_s = strtoll(f[5], NULL, 10);
    t->event = f[6];
    t->resends = (unsigned)strtoul(f[7], NULL, 10);
    t->event_key = f[8];
}

static void on_script_done(int status, const db_reply_t *reply, void *arg)
{
    (void)reply;
    (void)arg;
    if (status != DB_OK) /* the lease brings the ids back: checked again, reported again */
        LOG(LOG_LVL_WARN, "receipt bookkeeping failed", LKS("error", db_strerror(status)));
}

static void run_ids(expo_receipts_t *r, db_script_t *s, const char **head, size_t nhead,
                    const char **ids, size_t n)
{
    if (n == 0)
        return;
    const char **argv = xcalloc(1 + nhead + n, sizeof *argv);
    argv[0] = r->zkey;
    memcpy(&argv[1], head, nhead * sizeof *head);
    memcpy(&argv[1 + nhead], ids, n * sizeof *ids);
    db_eval(r->db, s, on_script_done, NULL, 1, (int)(1 + nhead + n), argv, NULL);
    free(argv);
}

static void report(expo_receipts_t *r, const expo_ticket_info_t *t, expo_rcpt_status_t st,
                   const char *error, const char *message)
{
    static const char *names[] = {"ok", "DeviceNotRegistered", "error", "missing",
                                  "MessageRateExceeded"};
    if (r->m_rcpt)
        metric_inc(metric_get(r->m_rcpt, names[st]));
    r->o.on_receipt(t, st, error, message, r->o.arg);
}

static const expo_receipt_t *find(const expo_receipt_t *rc, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rc[i].id, id) == 0)
            return &rc[i];
    return NULL;
}

/* Credential errors among one reply's receipts: counted each, logged once (a revoked key fails
 * every receipt of the project). first is the first of the n. */
static void credential_errors(expo_receipts_t *r, const expo_receipt_t *first, size_t n)
{
    if (n == 0)
        return;
    if (r->m_cred)
        metric_add(r->m_cred, (double)n);
    LOG(LOG_LVL_ERROR, "expo rejected the credentials", LKS("source", "receipt"),
        LKS("code", first->error), LKS("message", first->message ? first->message : ""),
        LKI("receipts", n));
}

/* MessageRateExceeded means "back off and resend" (Expo's docs), which the owner can do only
 * with the event kept in the ticket hash; without it the error is as permanent as the others. */
static expo_rcpt_status_t classify(const expo_receipt_t *x, const expo_ticket_info_t *t)
{
    if (x->kind == EXPO_TK_OK)
        return EXPO_RCPT_OK;
    if (x->kind == EXPO_TK_INVALID)
        return EXPO_RCPT_INVALID;
    if (x->kind == EXPO_TK_RETRY && t->event && *t->event)
        return EXPO_RCPT_RETRY;
    return EXPO_RCPT_ERROR;
}

static void apply(expo_receipts_t *r, claim_t *c, const expo_receipt_t *rc, size_t nrc)
{
    const char **done = xcalloc(c->n + 1, sizeof *done), **later = xcalloc(c->n + 1, sizeof *later);
    size_t nd = 0, nl = 0, ncred = 0;
    const expo_receipt_t *cred = NULL;
    int64_t now = now_s(r);
    for (size_t i = 0; i < c->n; i++) {
        expo_ticket_info_t t;
        ticket_of(c, i, &t);
        const expo_receipt_t *x = find(rc, nrc, t.ticket_id);
        if (x) {
            expo_rcpt_status_t st = classify(x, &t);
            if (st == EXPO_RCPT_ERROR && expo_credential_error(x->error) && ncred++ == 0)
                cred = x;
            report(r, &t, st, x->error, x->message);
            done[nd++] = t.ticket_id;
        } else if (t.sent_at_s == 0 || now - t.sent_at_s >= EXPO_RCPT_GIVE_UP_S) {
            report(r, &t, EXPO_RCPT_MISSING, "receipt_missing", "no receipt within 24 h");
            done[nd++] = t.ticket_id;
        } else {
            later[nl++] = t.ticket_id;
        }
    }
    credential_errors(r, cred, ncred);
    run_ids(r, r->s_forget, (const char *[]){r->ticket_stem}, 1, done, nd);
    char n0[24], b[24], cap[24];
    snprintf(n0, sizeof n0, "%lld", (long long)now);
    snprintf(b, sizeof b, "%d", EXPO_RCPT_RETRY_BASE_S);
    snprintf(cap, sizeof cap, "%d", EXPO_RCPT_RETRY_CAP_S);
    run_ids(r, r->s_postpone, (const char *[]){r->ticket_stem, n0, b, cap}, 4, later, nl);
    free(done);
    free(later);
}

static void on_receipts(const expo_http_resp_t *resp, void *arg)
{
    claim_t *c = arg;
    expo_receipts_t *r = c->r;
    expo_receipt_t *rc = NULL;
    size_t nrc = 0;
    char err[64];
    if (resp->terr == EXPO_TERR_CANCELLED) { /* destroy: the ids come back after the lease */
        r->cur = NULL;
        claim_free(c);
        return;
    }
    if (resp->status == 0 ||
        expo_receipts_parse(resp->status, resp->body, resp->len, &rc, &nrc, err, sizeof err) != 0) {
        if (r->m_req_fail)
            metric_inc(r->m_req_fail);
        LOG(LOG_LVL_WARN, "getReceipts failed; the ids come back after the lease",
            LKI("status", resp->status), LKS("error", resp->status ? err : resp->detail),
            LKI("ids", c->n));
    } else {
        apply(r, c, rc, nrc);
    }
    expo_receipts_free(rc, nrc);
    bool full = c->n == EXPO_MAX_RECEIPT_IDS;
    r->cur = NULL;
    claim_free(c);
    r->polling = false;
    if (full) /* more are due: keep going */
        expo_receipts_poll_now(r);
}

static void fetch(expo_receipts_t *r, claim_t *c)
{
    buf_puts(&c->body, "{\"ids\":[");
    for (size_t i = 0; i < c->n; i++) {
        if (i)
            buf_putc(&c->body, ',');
        buf_json_str(&c->body, c->f[i * FIELDS], strlen(c->f[i * FIELDS]));
    }
    buf_puts(&c->body, "]}");
    const char *hdr[3] = {"accept: application/json", "content-type: application/json", r->auth};
    r->tr->post(r->tr, r->url, hdr, r->auth ? 3 : 2, c->body.data, c->body.len, r->o.timeout_ms,
                on_receipts, c);
}

static void on_claimed(int status, const db_reply_t *reply, void *arg)
{
    expo_receipts_t *r = arg;
    if (status != DB_OK || db_reply_type(reply) != DB_REPLY_ARRAY ||
        db_reply_len(reply) % FIELDS != 0) {
        if (status != DB_ESHUTDOWN) {
            LOG(LOG_LVL_WARN, "receipt claim failed",
                LKS("error", status ? db_strerror(status) : "unexpected reply"));
            r->polling = false;
        }
        return;
    }
    claim_t *c = xcalloc(1, sizeof *c);
    c->r = r;
    c->n = db_reply_len(reply) / FIELDS;
    c->f = xcalloc(c->n * FIELDS + 1, sizeof *c->f);
    for (size_t i = 0; i < c->n * FIELDS; i++) {
        size_t len = 0;
        const char *s = db_reply_str(db_reply_elem(reply, i), &len);
        c->f[i] = s ? xstrndup(s, len) : xstrdup("");
    }
    if (c->n == 0) {
        claim_free(c);
        r->polling = false;
        return;
    }
    r->cur = c;
    fetch(r, c);
}

void expo_receipts_poll_now(expo_receipts_t *r)
{
    if (r->polling)
        return;
    r->polling = true;
    int64_t now = now_s(r);
    char a[3][24];
    snprintf(a[0], sizeof a[0], "%lld", (long long)now);
    snprintf(a[1], sizeof a[1], "%lld", (long long)(now + EXPO_RCPT_LEASE_S));
    snprintf(a[2], sizeof a[2], "%d", EXPO_MAX_RECEIPT_IDS);
    const char *argv[] = {r->zkey, a[0], a[1], a[2], r->ticket_stem};
    db_eval(r->db, r->s_claim, on_claimed, r, 1, 5, argv, NULL);
}

static void on_timer(uv_timer_t *t)
{
    expo_receipts_poll_now(t->data);
}
