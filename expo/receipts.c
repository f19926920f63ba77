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

#define TTL_S (26L * 3600) /* a check outlives Expo's day of receipts */

struct expo_receipts {
    uv_loop_t *loop;
    db_t *db;
    expo_receipts_opts_t o;
    expo_transport_t *tr;
    char *url, *auth;
    char zkey[KEY_RQ_BUCKETS][KEY_MAX], stem[KEY_RQ_BUCKETS][KEY_MAX + 1]; /* zkey and ':' */
    db_script_t *s_schedule, *s_claim, *s_settle, *s_pending;
    uv_timer_t timer;
    bool polling;
    unsigned bucket;   /* where the next poll starts its walk */
    struct claim *cur; /* the getReceipts request in flight */
    metric_fam_t *m_rcpt;
    metric_t *m_req_fail, *m_cred;
};

/* One ticket of a claimed check, its tuple split (strings owned by the claim). */
typedef struct tuple {
    char *ticket, *user, *device, *key, *token, *job;
    unsigned resends;
    long long resend_at_ms; /* 0: waiting for its receipt */
} tuple_t;

typedef struct check {
    char *id;
    char ref[EXPO_RCPT_REF_MAX];
    unsigned bucket;
    int64_t sent_s;
    long checks;
    size_t n;
    tuple_t *t;
} check_t;

/* One poll: the checks claimed while walking the buckets, then one getReceipts request. */
typedef struct claim {
    expo_receipts_t *r;
    check_t *c;
    size_t n, cap;
    size_t ids;       /* tickets claimed (the request asks for those waiting for a receipt) */
    unsigned visited; /* buckets walked */
    buf_t body;
} claim_t;

static int64_t now_s(const expo_receipts_t *r)
{
    return r->o.clock->wall_ms(r->o.clock->arg) / 1000;
}

static int64_t now_ms(const expo_receipts_t *r)
{
    return r->o.clock->wall_ms(r->o.clock->arg);
}

unsigned expo_receipts_bucket(const char *check_id)
{
    uint32_t h = 5381;
    for (const unsigned char *p = (const unsigned char *)check_id; *p; p++)
        h = h * 33 + *p;
    return h % KEY_RQ_BUCKETS;
}

/* A check's id: its first ticket id, cut to what a key holds (Expo's ids are UUIDs). */
static void check_id(const char *ticket, char out[KEY_TICKET_MAX + 1])
{
    snprintf(out, KEY_TICKET_MAX + 1, "%s", ticket);
}

void expo_receipts_check_ref(const char *ticket, char out[EXPO_RCPT_REF_MAX])
{
    char id[KEY_TICKET_MAX + 1];
    check_id(ticket, id);
    snprintf(out, EXPO_RCPT_REF_MAX, "%u:%s", expo_receipts_bucket(id), id);
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
    for (unsigned i = 0; i < KEY_RQ_BUCKETS; i++) {
        key_rq(r->zkey[i], o->prefix, i);
        snprintf(r->stem[i], sizeof r->stem[i], "%s:", r->zkey[i]);
    }
    r->s_schedule = db_script(db, lua_receipts_schedule);
    r->s_claim = db_script(db, lua_receipts_claim);
    r->s_settle = db_script(db, lua_receipts_settle);
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

/* ---- schedule, forget and pending ---- */

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

static sched_t *sched_new(void (*cb)(int, void *), void *arg)
{
    sched_t *s = xmalloc(sizeof *s);
    s->cb = cb;
    s->arg = arg;
    return s;
}

static void on_bad_ref(void *arg)
{
    sched_t *s = arg;
    if (s->cb)
        s->cb(DB_EPROTO, s->arg);
    free(s);
}

static void tuple_put(buf_t *b, const expo_ticket_info_t *t, unsigned resends, long long at_ms)
{
    const char *s[] = {t->user_id, t->device_id, t->event_key, t->token};
    for (size_t i = 0; i < 4; i++) {
        if (s[i])
            buf_puts(b, s[i]);
        buf_putc(b, '\x1f');
    }
    buf_put_u64(b, resends);
    buf_putc(b, '\x1f');
    buf_put_i64(b, at_ms);
}

void expo_receipts_schedule(expo_receipts_t *r, const expo_ticket_info_t *t, size_t n,
                            int64_t due_s, void (*cb)(int status, void *arg), void *arg)
{
    if (n > EXPO_RCPT_CHECK_MAX)
        n = EXPO_RCPT_CHECK_MAX; /* a caller's bug: the contract says at most that many */
    char id[KEY_TICKET_MAX + 1], ck[KEY_MAX], nums[3][24];
    check_id(t[0].ticket_id, id);
    unsigned b = expo_receipts_bucket(id);
    key_rq_check(ck, r->o.prefix, b, id);
    snprintf(nums[0], sizeof nums[0], "%lld", (long long)due_s);
    snprintf(nums[1], sizeof nums[1], "%ld", TTL_S);
    snprintf(nums[2], sizeof nums[2], "%lld", (long long)t[0].sent_at_s);
    buf_t tuples = BUF_INIT;
    size_t *offs = xmalloc(n * sizeof *offs);
    for (size_t i = 0; i < n; i++) {
        offs[i] = tuples.len;
        tuple_put(&tuples, &t[i], t[i].resends, 0);
        buf_putc(&tuples, '\0');
    }
    size_t argc = 2 + 4 + 2 * n;
    const char **argv = xcalloc(argc, sizeof *argv);
    argv[0] = r->zkey[b];
    argv[1] = ck;
    argv[2] = id;
    argv[3] = nums[0];
    argv[4] = nums[1];
    argv[5] = nums[2];
    for (size_t i = 0; i < n; i++) {
        argv[6 + 2 * i] = t[i].ticket_id;
        argv[7 + 2 * i] = tuples.data + offs[i];
    }
    db_eval(r->db, r->s_schedule, on_scheduled, sched_new(cb, arg), 2, (int)argc, argv, NULL);
    free(argv);
    free(offs);
    buf_cleanup(&tuples);
}

void expo_receipts_forget(expo_receipts_t *r, const expo_ticket_info_t *t,
                          void (*cb)(int status, void *arg), void *arg)
{
    unsigned b = 0;
    const char *id = t->check ? strchr(t->check, ':') : NULL;
    if (id == NULL || sscanf(t->check, "%u", &b) != 1 || b >= KEY_RQ_BUCKETS) {
        db_defer(r->db, on_bad_ref, sched_new(cb, arg)); /* not a check this module named */
        return;
    }
    const char *argv[] = {r->zkey[b], r->stem[b], id + 1, "-", "0", "1", "0", t->ticket_id};
    db_eval(r->db, r->s_settle, on_scheduled, sched_new(cb, arg), 1, 8, argv, NULL);
}

typedef struct pend {
    void (*cb)(int, long long, int64_t, void *);
    void *arg;
} pend_t;

static void on_pending(int status, const long long *res, size_t n, void *arg)
{
    pend_t *p = arg;
    long long count = 0, oldest = 0;
    for (size_t i = 0; status == DB_OK && i + 1 < n; i += 2) {
        count += res[i];
        if (res[i + 1] > 0 && (oldest == 0 || res[i + 1] < oldest))
            oldest = res[i + 1];
    }
    p->cb(status, count, (int64_t)oldest, p->arg);
    free(p);
}

void expo_receipts_pending(expo_receipts_t *r,
                           void (*cb)(int status, long long count, int64_t oldest_due_s, void *arg),
                           void *arg)
{
    pend_t *p = xmalloc(sizeof *p);
    p->cb = cb;
    p->arg = arg;
    const char *argv[KEY_RQ_BUCKETS];
    db_part_t parts[KEY_RQ_BUCKETS];
    for (unsigned i = 0; i < KEY_RQ_BUCKETS; i++) {
        argv[i] = r->zkey[i];
        parts[i] = (db_part_t){.nkeys = 1, .nargs = 0, .nres = 2};
    }
    db_eval_parts(r->db, r->s_pending, on_pending, p, KEY_RQ_BUCKETS, parts, 0, argv);
}

/* ---- polling ---- */

static void claim_free(claim_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        check_t *k = &c->c[i];
        for (size_t j = 0; j < k->n; j++) {
            tuple_t *t = &k->t[j];
            free(t->ticket);
            free(t->user);
            free(t->device);
            free(t->key);
            free(t->token);
            free(t->job);
        }
        free(k->t);
        free(k->id);
    }
    free(c->c);
    buf_cleanup(&c->body);
    free(c);
}

static void ticket_of(const check_t *k, const tuple_t *x, expo_ticket_info_t *t)
{
    *t = (expo_ticket_info_t){.ticket_id = x->ticket,
                              .user_id = x->user,
                              .device_id = x->device,
                              .token = x->token,
                              .job_id = x->job,
                              .sent_at_s = k->sent_s,
                              .resends = x->resends,
                              .event_key = x->key,
                              .check = k->ref};
}

static void on_settled(int status, const db_reply_t *reply, void *arg)
{
    (void)reply;
    (void)arg;
    if (status != DB_OK) /* the lease brings the checks back: checked again, reported again */
        LOG(LOG_LVL_WARN, "receipt bookkeeping failed", LKS("error", db_strerror(status)));
}

static long report(expo_receipts_t *r, const expo_ticket_info_t *t, expo_rcpt_status_t st,
                   const char *error, const char *message)
{
    static const char *names[] = {"ok",      "DeviceNotRegistered", "error",
                                  "missing", "MessageRateExceeded", "resend"};
    if (r->m_rcpt)
        metric_inc(metric_get(r->m_rcpt, names[st]));
    return r->o.on_receipt(t, st, error, message, r->o.arg);
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
 * with the event kept in its ledger entry; without an event key it is as permanent as the others.
 */
static expo_rcpt_status_t classify(const expo_receipt_t *x, const expo_ticket_info_t *t)
{
    if (x->kind == EXPO_TK_OK)
        return EXPO_RCPT_OK;
    if (x->kind == EXPO_TK_INVALID)
        return EXPO_RCPT_INVALID;
    if (x->kind == EXPO_TK_RETRY && t->event_key && *t->event_key)
        return EXPO_RCPT_RETRY;
    return EXPO_RCPT_ERROR;
}

static double pow2(long n)
{
    double d = 1;
    while (n-- > 0 && d < 1e9)
        d *= 2;
    return d;
}

/* What one poll decided for one check, as settle arguments. */
typedef struct settle {
    const char **del;
    size_t nd;
    buf_t sets; /* field \0 tuple \0 ... */
    size_t ns;
    int64_t due; /* INT64_MAX: nothing kept that needs a due time */
    bool bump;
} settle_t;

/* A ticket whose receipt said MessageRateExceeded: the owner says when to resend it. */
static void retry_later(expo_receipts_t *r, settle_t *s, const expo_ticket_info_t *t, long ms)
{
    if (ms < 0) {
        s->del[s->nd++] = t->ticket_id;
        return;
    }
    long long at = (long long)now_ms(r) + ms;
    buf_puts(&s->sets, t->ticket_id);
    buf_putc(&s->sets, '\0');
    tuple_put(&s->sets, t, t->resends + 1, at);
    buf_putc(&s->sets, '\0');
    s->ns++;
    if ((at + 999) / 1000 < s->due)
        s->due = (at + 999) / 1000;
}

/* One ticket: reported and settled (removed, rewritten, or kept for a later check). */
static void apply_one(expo_receipts_t *r, const check_t *k, const tuple_t *x,
                      const expo_receipt_t *rc, size_t nrc, settle_t *s, size_t *ncred,
                      const expo_receipt_t **cred)
{
    expo_ticket_info_t t;
    ticket_of(k, x, &t);
    int64_t now = now_s(r);
    if (x->resend_at_ms > 0) { /* a resend: due, or still waiting out its backoff */
        if (x->resend_at_ms <= now_ms(r)) {
            report(r, &t, EXPO_RCPT_RESEND, NULL, NULL);
            if (now + EXPO_RCPT_LEASE_S < s->due)
                s->due = now + EXPO_RCPT_LEASE_S; /* unless forgotten by then: again */
        } else if ((x->resend_at_ms + 999) / 1000 < s->due) {
            s->due = (x->resend_at_ms + 999) / 1000;
        }
        return;
    }
    const expo_receipt_t *rx = find(rc, nrc, x->ticket);
    if (rx) {
        expo_rcpt_status_t st = classify(rx, &t);
        if (st == EXPO_RCPT_ERROR && expo_credential_error(rx->error) && (*ncred)++ == 0)
            *cred = rx;
        long ms = report(r, &t, st, rx->error, rx->message);
        if (st == EXPO_RCPT_RETRY)
            retry_later(r, s, &t, ms);
        else
            s->del[s->nd++] = x->ticket;
    } else if (k->sent_s == 0 || now - k->sent_s >= EXPO_RCPT_GIVE_UP_S) {
        report(r, &t, EXPO_RCPT_MISSING, "receipt_missing", "no receipt within 24 h");
        s->del[s->nd++] = x->ticket;
    } else { /* not ready yet: checked again later, the delay doubling with each check */
        double d = EXPO_RCPT_RETRY_BASE_S * pow2(k->checks);
        int64_t due = now + (int64_t)(d < EXPO_RCPT_RETRY_CAP_S ? d : EXPO_RCPT_RETRY_CAP_S);
        if (due < s->due)
            s->due = due;
        s->bump = true;
    }
}

/* One settle call per bucket for the claimed checks in it. */
static void settle_bucket(expo_receipts_t *r, unsigned b, const claim_t *c, settle_t *st)
{
    size_t argc = 1, nchecks = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->c[i].bucket == b) {
            argc += 5 + st[i].nd + 2 * st[i].ns;
            nchecks++;
        }
    }
    if (nchecks == 0)
        return;
    const char **argv = xcalloc(argc + 1, sizeof *argv);
    char(*nums)[4][24] = xcalloc(c->n, sizeof *nums);
    size_t a = 0;
    argv[a++] = r->zkey[b];
    argv[a++] = r->stem[b];
    for (size_t i = 0; i < c->n; i++) {
        if (c->c[i].bucket != b)
            continue;
        settle_t *s = &st[i];
        if (s->due == INT64_MAX)
            snprintf(nums[i][0], sizeof nums[i][0], "-");
        else
            snprintf(nums[i][0], sizeof nums[i][0], "%lld", (long long)s->due);
        snprintf(nums[i][1], sizeof nums[i][1], "%d", s->bump ? 1 : 0);
        snprintf(nums[i][2], sizeof nums[i][2], "%zu", s->nd);
        snprintf(nums[i][3], sizeof nums[i][3], "%zu", s->ns);
        argv[a++] = c->c[i].id;
        for (int k = 0; k < 4; k++)
            argv[a++] = nums[i][k];
        for (size_t k = 0; k < s->nd; k++)
            argv[a++] = s->del[k];
        const char *p = s->sets.data;
        for (size_t k = 0; k < 2 * s->ns; k++, p += strlen(p) + 1)
            argv[a++] = p;
    }
    db_eval(r->db, r->s_settle, on_settled, NULL, 1, (int)a, argv, NULL);
    free(nums);
    free(argv);
}

/* answered false: getReceipts failed; only resends due are reported, the rest comes back after
 * the lease. */
static void apply(expo_receipts_t *r, claim_t *c, bool answered, const expo_receipt_t *rc,
                  size_t nrc)
{
    settle_t *st = xcalloc(c->n ? c->n : 1, sizeof *st);
    size_t ncred = 0;
    const expo_receipt_t *cred = NULL;
    for (size_t i = 0; i < c->n; i++) {
        check_t *k = &c->c[i];
        settle_t *s = &st[i];
        s->del = xcalloc(k->n + 1, sizeof *s->del);
        s->due = INT64_MAX;
        for (size_t j = 0; j < k->n; j++) {
            if (answered || k->t[j].resend_at_ms > 0)
                apply_one(r, k, &k->t[j], rc, nrc, s, &ncred, &cred);
        }
    }
    credential_errors(r, cred, ncred);
    for (unsigned b = 0; b < KEY_RQ_BUCKETS; b++)
        settle_bucket(r, b, c, st);
    for (size_t i = 0; i < c->n; i++) {
        free(st[i].del);
        buf_cleanup(&st[i].sets);
    }
    free(st);
}

static void poll_done(expo_receipts_t *r, claim_t *c)
{
    bool full = c->ids + EXPO_RCPT_CHECK_MAX > EXPO_MAX_RECEIPT_IDS;
    r->cur = NULL;
    claim_free(c);
    r->polling = false;
    if (full) /* more may be due: keep going */
        expo_receipts_poll_now(r);
}

static void on_receipts(const expo_http_resp_t *resp, void *arg)
{
    claim_t *c = arg;
    expo_receipts_t *r = c->r;
    expo_receipt_t *rc = NULL;
    size_t nrc = 0;
    char err[64];
    if (resp->terr == EXPO_TERR_CANCELLED) { /* destroy: the checks come back after the lease */
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
            LKI("ids", c->ids));
        apply(r, c, false, NULL, 0);
    } else {
        apply(r, c, true, rc, nrc);
    }
    expo_receipts_free(rc, nrc);
    poll_done(r, c);
}

/* Asks for the receipts of the claimed tickets that wait for one. */
static void fetch(expo_receipts_t *r, claim_t *c)
{
    size_t n = 0;
    buf_puts(&c->body, "{\"ids\":[");
    for (size_t i = 0; i < c->n; i++) {
        for (size_t j = 0; j < c->c[i].n; j++) {
            const tuple_t *t = &c->c[i].t[j];
            if (t->resend_at_ms > 0)
                continue;
            if (n++)
                buf_putc(&c->body, ',');
            buf_json_str(&c->body, t->ticket, strlen(t->ticket));
        }
    }
    buf_puts(&c->body, "]}");
    if (n == 0) { /* only resends: nothing to ask Expo */
        apply(r, c, true, NULL, 0);
        poll_done(r, c);
        return;
    }
    r->cur = c;
    const char *hdr[3] = {"accept: application/json", "content-type: application/json", r->auth};
    r->tr->post(r->tr, r->url, hdr, r->auth ? 3 : 2, c->body.data, c->body.len, r->o.timeout_ms,
                on_receipts, c);
}

static char *str_of(const db_reply_t *e)
{
    size_t len = 0;
    const char *s = db_reply_str(e, &len);
    return s ? xstrndup(s, len) : xstrdup("");
}

/* "<user>\x1f<device>\x1f<event key>\x1f<token>\x1f<resends>\x1f<resend at ms>" */
static void tuple_parse(char *ticket, const db_reply_t *e, tuple_t *t)
{
    char *f[6] = {0};
    char *s = str_of(e), *p = s;
    for (int i = 0; i < 6; i++) {
        char *sep = i < 5 ? strchr(p, '\x1f') : NULL;
        if (sep)
            *sep = '\0';
        f[i] = p;
        p = sep ? sep + 1 : p + strlen(p);
    }
    t->ticket = ticket;
    t->user = xstrdup(f[0]);
    t->device = xstrdup(f[1]);
    t->key = xstrdup(f[2]);
    t->token = xstrdup(f[3]);
    t->resends = (unsigned)strtoul(f[4], NULL, 10);
    t->resend_at_ms = strtoll(f[5], NULL, 10);
    char *colon = strrchr(t->key, ':');
    t->job = colon ? xstrndup(t->key, (size_t)(colon - t->key)) : xstrdup(t->key);
    free(s);
}

/* The claim reply of one bucket: per check id, sent at, checks, k, k pairs. */
static bool parse_checks(claim_t *c, unsigned b, const db_reply_t *reply)
{
    size_t n = db_reply_len(reply);
    for (size_t i = 0; i + 4 <= n;) {
        size_t k = (size_t)db_reply_int(db_reply_elem(reply, i + 3));
        if (k > EXPO_RCPT_CHECK_MAX || i + 4 + 2 * k > n)
            return false;
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 8;
            c->c = xrealloc(c->c, c->cap * sizeof *c->c);
        }
        check_t *ck = &c->c[c->n++];
        memset(ck, 0, sizeof *ck);
        ck->id = str_of(db_reply_elem(reply, i));
        expo_receipts_check_ref(ck->id, ck->ref);
        ck->bucket = b;
        char *v = str_of(db_reply_elem(reply, i + 1));
        ck->sent_s = strtoll(v, NULL, 10);
        free(v);
        v = str_of(db_reply_elem(reply, i + 2));
        ck->checks = strtol(v, NULL, 10);
        free(v);
        ck->t = xcalloc(k ? k : 1, sizeof *ck->t);
        for (size_t j = 0; j < k; j++)
            tuple_parse(str_of(db_reply_elem(reply, i + 4 + 2 * j)),
                        db_reply_elem(reply, i + 5 + 2 * j), &ck->t[ck->n++]);
        c->ids += k;
        i += 4 + 2 * k;
    }
    return true;
}

static void claim_bucket(claim_t *c);

static void on_claimed(int status, const db_reply_t *reply, void *arg)
{
    claim_t *c = arg;
    expo_receipts_t *r = c->r;
    unsigned b = (r->bucket + c->visited) % KEY_RQ_BUCKETS;
    if (status != DB_OK || db_reply_type(reply) != DB_REPLY_ARRAY || !parse_checks(c, b, reply)) {
        if (status != DB_ESHUTDOWN) {
            LOG(LOG_LVL_WARN, "receipt claim failed",
                LKS("error", status ? db_strerror(status) : "unexpected reply"));
            r->polling = false;
        }
        claim_free(c); /* what it claimed comes back after the lease */
        return;
    }
    c->visited++;
    if (c->visited < KEY_RQ_BUCKETS && c->ids + EXPO_RCPT_CHECK_MAX <= EXPO_MAX_RECEIPT_IDS) {
        claim_bucket(c);
        return;
    }
    r->bucket = (r->bucket + c->visited) % KEY_RQ_BUCKETS;
    if (c->n == 0) {
        claim_free(c);
        r->polling = false;
        return;
    }
    fetch(r, c);
}

/* Claims the due checks of the next bucket of the walk, up to the request's room. */
static void claim_bucket(claim_t *c)
{
    expo_receipts_t *r = c->r;
    unsigned b = (r->bucket + c->visited) % KEY_RQ_BUCKETS;
    int64_t now = now_s(r);
    char a[3][24];
    snprintf(a[0], sizeof a[0], "%lld", (long long)now);
    snprintf(a[1], sizeof a[1], "%lld", (long long)(now + EXPO_RCPT_LEASE_S));
    snprintf(a[2], sizeof a[2], "%zu", (size_t)EXPO_MAX_RECEIPT_IDS - c->ids);
    const char *argv[] = {r->zkey[b], a[0], a[1], a[2], r->stem[b]};
    db_eval(r->db, r->s_claim, on_claimed, c, 1, 5, argv, NULL);
}

void expo_receipts_poll_now(expo_receipts_t *r)
{
    if (r->polling)
        return;
    r->polling = true;
    claim_t *c = xcalloc(1, sizeof *c);
    c->r = r;
    claim_bucket(c);
}

static void on_timer(uv_timer_t *t)
{
    expo_receipts_poll_now(t->data);
}
