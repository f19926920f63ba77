/* test_pipeline_unit.c - pipeline/pipeline.c on its own: one job event in, driven with fakes, no
 * Redis, Kafka or HTTP.
 *
 * Seams: the dedup claims (pipeline/claims.h) and the token store (tokens/store.h) are interfaces
 * and get in-memory fakes here; the Expo client is the real one over tests/expo's fake transport.
 * Queue tickets, the DLQ producer, the receipt scheduler and the trace are link seams: this file
 * defines queue_complete/queue_ticket_ and queue_produce, expo_receipts_schedule,
 * expo_receipts_check_ref, expo_receipts_forget, disp_trace_add, disp_trace_ride and
 * disp_trace_put, so the linker never pulls queue/kafka.c, expo/receipts.c or pipeline/trace.c out
 * of their libraries (should pipeline.c start using another of their functions, the link fails with
 * a duplicate symbol: fake that one too). Every fake answers on a later loop turn, never inside the
 * call, as the real ones do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "pipeline/pipeline.h"
#include "tests/expo/fake_transport.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- answers on a later loop turn ----------------------------------------------------------- */

typedef struct later {
    struct later *next;
    void (*fn)(void *arg);
    void *arg;
} later_t;

static uv_loop_t loop;
static uv_timer_t later_timer;
static later_t *later_head, *later_tail;

static void on_later(uv_timer_t *t)
{
    (void)t;
    later_t *l = later_head;
    later_head = later_tail = NULL; /* what is queued meanwhile runs on the next turn */
    while (l) {
        later_t *nx = l->next;
        l->fn(l->arg);
        free(l);
        l = nx;
    }
}

static void later(void (*fn)(void *), void *arg)
{
    later_t *l = xcalloc(1, sizeof *l);
    l->fn = fn;
    l->arg = arg;
    if (later_tail)
        later_tail->next = l;
    else
        later_head = l;
    later_tail = l;
    uv_timer_start(&later_timer, on_later, 0, 0);
}

/* ---- fake claims ---------------------------------------------------------------------------- */

enum { MARK_NONE, MARK_PENDING, MARK_DONE, MARK_FAILED };

#define ME "self" /* this instance's lease id, as the fake sees it */

typedef struct mark {
    char event[QUEUE_KEY_MAX];
    char device[TOK_DEVICE_MAX + 1];
    int state;
    char owner[16]; /* of a pending mark: "" when it names none (written by an older herald) */
} mark_t;

static struct {
    disp_claims_t base;
    mark_t marks[32];
    size_t nmarks;
    int claim_calls, claim_answers, mark_calls, renew_calls;
    size_t last_claim_n, last_claim_nreq, max_claim_nreq, max_mark_n;
    char renewed[8][TOK_DEVICE_MAX + 1]; /* the devices of the last renewal */
    size_t nrenewed;
    const char *lapsed; /* the one instance whose lease lapsed, as the lease view says, or NULL */
    int fail_marks;     /* mark calls still to fail (Redis unavailable), then they work */
} fc;

static mark_t *mark_of(const char *event, const char *device);

/* Another instance's pending claim on (event, device). */
static void pending_of(const char *event, const char *device, const char *owner)
{
    mark_t *m = mark_of(event, device);
    m->state = MARK_PENDING;
    snprintf(m->owner, sizeof m->owner, "%s", owner);
}

static mark_t *mark_of(const char *event, const char *device)
{
    for (size_t i = 0; i < fc.nmarks; i++)
        if (!strcmp(fc.marks[i].event, event) && !strcmp(fc.marks[i].device, device))
            return &fc.marks[i];
    assert_true(fc.nmarks < 32);
    mark_t *m = &fc.marks[fc.nmarks++];
    snprintf(m->event, sizeof m->event, "%s", event);
    snprintf(m->device, sizeof m->device, "%s", device);
    m->state = MARK_NONE;
    return m;
}

typedef struct claim_call {
    disp_claim_t res[8];
    size_t n;
    disp_claim_cb cb;
    void *arg;
} claim_call_t;

static void claim_answer(void *arg)
{
    claim_call_t *c = arg;
    fc.claim_answers++;
    c->cb(DISP_CLAIMS_OK, c->res, c->n, c->arg);
    free(c);
}

/* As lua/claim.lua: an absent mark (or, for a replay, a failed one) becomes pending (claimed),
 * and so does a pending one whose owner's lease lapsed (taken over); done, failed and pending
 * (this instance's own, a live owner's, or one without an owner) are reported. Every event here
 * is user u1's, so marks are kept by (event, device). */
static disp_claim_t claim_one(const char *event, const char *device, disp_claim_mode_t mode)
{
    mark_t *m = mark_of(event, device);
    bool taken = m->state == MARK_PENDING && fc.lapsed && !strcmp(m->owner, fc.lapsed);
    bool claimable =
        m->state == MARK_NONE || (m->state == MARK_FAILED && mode == DISP_CLAIM_REPLAY);
    if (claimable || taken) {
        m->state = MARK_PENDING;
        snprintf(m->owner, sizeof m->owner, "%s", ME);
        return taken ? DISP_CLAIM_TAKEN : DISP_CLAIM_CLAIMED;
    }
    return m->state == MARK_DONE     ? DISP_CLAIM_DONE
           : m->state == MARK_FAILED ? DISP_CLAIM_FAILED
                                     : DISP_CLAIM_PENDING;
}

static void fake_claim(disp_claims_t *base, const disp_claim_req_t *reqs, size_t nreq,
                       disp_claim_cb cb, void *arg)
{
    (void)base;
    claim_call_t *c = xcalloc(1, sizeof *c);
    for (size_t q = 0; q < nreq; q++) {
        assert_string_equal(reqs[q].user, "u1");
        assert_true(reqs[q].n >= 1 && c->n + reqs[q].n <= 8);
        for (size_t i = 0; i < reqs[q].n; i++)
            c->res[c->n++] = claim_one(reqs[q].event, reqs[q].devices[i], reqs[q].mode);
    }
    c->cb = cb;
    c->arg = arg;
    fc.claim_calls++;
    fc.last_claim_n = c->n;
    fc.last_claim_nreq = nreq;
    if (nreq > fc.max_claim_nreq)
        fc.max_claim_nreq = nreq;
    later(claim_answer, c);
}

typedef struct done_call {
    disp_claims_done_cb cb;
    void *arg;
    bool failed;
} done_call_t;

static void done_answer(void *arg)
{
    done_call_t *c = arg;
    c->cb(c->failed ? DISP_CLAIMS_EUNAVAIL : DISP_CLAIMS_OK, c->arg);
    free(c);
}

static void mark_as(const disp_claim_ref_t *refs, size_t n, int state, disp_claims_done_cb cb,
                    void *arg)
{
    done_call_t *c = xcalloc(1, sizeof *c);
    c->failed = fc.fail_marks > 0 && fc.fail_marks-- > 0;
    for (size_t i = 0; i < n && !c->failed; i++) {
        assert_string_equal(refs[i].user, "u1");
        mark_of(refs[i].event, refs[i].device)->state = state;
    }
    fc.mark_calls++;
    if (n > fc.max_mark_n)
        fc.max_mark_n = n;
    c->cb = cb;
    c->arg = arg;
    later(done_answer, c);
}

static void fake_mark_done(disp_claims_t *base, const disp_claim_ref_t *refs, size_t n,
                           disp_claims_done_cb cb, void *arg)
{
    (void)base;
    mark_as(refs, n, MARK_DONE, cb, arg);
}

static void fake_mark_failed(disp_claims_t *base, const disp_claim_ref_t *refs, size_t n,
                             disp_claims_done_cb cb, void *arg)
{
    (void)base;
    mark_as(refs, n, MARK_FAILED, cb, arg);
}

/* As lua/renew.lua: only marks this instance still owns are renewed (the fake keeps no TTLs). */
static void fake_renew(disp_claims_t *base, const disp_claim_ref_t *refs, size_t n,
                       disp_claims_done_cb cb, void *arg)
{
    (void)base;
    assert_true(n >= 1 && n <= 8);
    fc.renew_calls++;
    fc.nrenewed = 0;
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(refs[i].user, "u1");
        mark_t *m = mark_of(refs[i].event, refs[i].device);
        if (m->state == MARK_PENDING && !strcmp(m->owner, ME))
            snprintf(fc.renewed[fc.nrenewed++], sizeof fc.renewed[0], "%s", refs[i].device);
    }
    done_call_t *c = xcalloc(1, sizeof *c);
    c->cb = cb;
    c->arg = arg;
    later(done_answer, c);
}

static void fake_claims_destroy(disp_claims_t *base)
{
    (void)base;
}

static const disp_claims_ops_t claims_ops = {.claim = fake_claim,
                                             .mark_done = fake_mark_done,
                                             .mark_failed = fake_mark_failed,
                                             .renew = fake_renew,
                                             .destroy = fake_claims_destroy};

/* ---- fake token store ----------------------------------------------------------------------- */

typedef struct deact {
    char user[TOK_USER_MAX + 1], device[TOK_DEVICE_MAX + 1], reason[64], only_if[TOK_TOKEN_MAX + 1];
} deact_t;

static struct {
    tok_store_t base;
    tok_record_t recs[8];
    size_t nrecs;
    int list_calls;
    int fail_lists; /* lookups still to fail (Redis unavailable), then they work */
    deact_t deact[8];
    size_t ndeact;
} fs;

typedef struct list_call {
    tok_list_cb cb;
    void *arg;
} list_call_t;

static void list_answer(void *arg)
{
    list_call_t *c = arg;
    if (fs.fail_lists > 0 && fs.fail_lists-- > 0)
        c->cb(TOK_EUNAVAIL, NULL, 0, c->arg);
    else
        c->cb(TOK_OK, fs.recs, fs.nrecs, c->arg);
    free(c);
}

static void fake_list(tok_store_t *s, const char *user_id, tok_list_cb cb, void *arg)
{
    (void)s;
    assert_string_equal(user_id, "u1");
    fs.list_calls++;
    list_call_t *c = xcalloc(1, sizeof *c);
    c->cb = cb;
    c->arg = arg;
    later(list_answer, c);
}

typedef struct done_store_call {
    tok_done_cb cb;
    void *arg;
} done_store_call_t;

static void deactivate_answer(void *arg)
{
    done_store_call_t *c = arg;
    c->cb(TOK_OK, c->arg);
    free(c);
}

static void fake_deactivate(tok_store_t *s, const char *user_id, const char *device_id,
                            const char *reason, const char *only_if_token, tok_done_cb cb,
                            void *arg)
{
    (void)s;
    assert_true(fs.ndeact < 8);
    deact_t *d = &fs.deact[fs.ndeact++];
    snprintf(d->user, sizeof d->user, "%s", user_id);
    snprintf(d->device, sizeof d->device, "%s", device_id);
    snprintf(d->reason, sizeof d->reason, "%s", reason);
    snprintf(d->only_if, sizeof d->only_if, "%s", only_if_token ? only_if_token : "");
    done_store_call_t *c = xcalloc(1, sizeof *c);
    c->cb = cb;
    c->arg = arg;
    later(deactivate_answer, c);
}

static void unused_register(tok_store_t *s, const tok_reg_req_t *req, tok_reg_cb cb, void *arg)
{
    (void)s, (void)req, (void)cb, (void)arg;
    fail_msg("the pipeline registers no device");
}

static void unused_purge(tok_store_t *s, const char *u, const char *d, tok_done_cb cb, void *arg)
{
    (void)s, (void)u, (void)d, (void)cb, (void)arg;
    fail_msg("the pipeline purges nothing");
}

static void unused_owner(tok_store_t *s, const char *token, tok_owner_cb cb, void *arg)
{
    (void)s, (void)token, (void)cb, (void)arg;
    fail_msg("the pipeline looks up no owner");
}

static bool fake_ready(const tok_store_t *s)
{
    (void)s;
    return true;
}

static void fake_store_destroy(tok_store_t *s)
{
    (void)s;
}

static const tok_store_ops_t store_ops = {.register_device = unused_register,
                                          .deactivate = fake_deactivate,
                                          .purge = unused_purge,
                                          .list = fake_list,
                                          .find_owner = unused_owner,
                                          .ready = fake_ready,
                                          .destroy = fake_store_destroy};

static void add_device(const char *device, const char *token, bool active, int64_t expires_at)
{
    tok_record_t *r = &fs.recs[fs.nrecs++];
    memset(r, 0, sizeof *r);
    snprintf(r->user_id, sizeof r->user_id, "u1");
    snprintf(r->device_id, sizeof r->device_id, "%s", device);
    snprintf(r->token, sizeof r->token, "%s", token);
    r->platform = TOK_PLATFORM_IOS;
    r->active = active;
    r->expires_at = expires_at;
    if (!active)
        snprintf(r->deactivated_reason, sizeof r->deactivated_reason, "user");
}

/* ---- link seams: tickets, DLQ producer, receipt scheduler, trace ---------------------------- */

struct queue_ticket {
    int completed;
};

void queue_complete(queue_ticket_t *t)
{
    t->completed++;
}

const char *queue_ticket_topic(const queue_ticket_t *t)
{
    (void)t;
    return "job-events";
}

int32_t queue_ticket_partition(const queue_ticket_t *t)
{
    (void)t;
    return 3;
}

int64_t queue_ticket_offset(const queue_ticket_t *t)
{
    (void)t;
    return 42;
}

int64_t queue_ticket_kafka_ts(const queue_ticket_t *t)
{
    (void)t;
    return -1;
}

static struct {
    int dlq_records;
    char dlq_topic[64], dlq_reason[64], dlq_device[64], dlq_device_header[64];
    char dlq_event[1024]; /* the record's "event", compact */
    int receipts;         /* tickets scheduled for the receipt check */
    char trace[64][96];
    size_t ntrace;
} seen;

typedef struct produce_call {
    queue_produce_cb cb;
    void *arg;
} produce_call_t;

static void produce_answer(void *arg)
{
    produce_call_t *c = arg;
    queue_delivery_t dr = {.status = QUEUE_OK, .topic = "job-events.dlq", .offset = 1};
    c->cb(&dr, c->arg);
    free(c);
}

int queue_produce(queue_producer_t *p, const char *topic, const void *key, size_t keylen,
                  const void *value, size_t len, const queue_header_t *hdrs, size_t nhdrs,
                  queue_produce_cb cb, void *arg)
{
    (void)p, (void)key, (void)keylen;
    seen.dlq_records++;
    snprintf(seen.dlq_topic, sizeof seen.dlq_topic, "%s", topic);
    assert_true(nhdrs >= 1);
    assert_string_equal(hdrs[0].name, "herald-dlq-reason");
    snprintf(seen.dlq_reason, sizeof seen.dlq_reason, "%.*s", (int)hdrs[0].len,
             (const char *)hdrs[0].value);
    for (size_t i = 0; i < nhdrs; i++)
        if (!strcmp(hdrs[i].name, "herald-dlq-device"))
            snprintf(seen.dlq_device_header, sizeof seen.dlq_device_header, "%.*s",
                     (int)hdrs[i].len, (const char *)hdrs[i].value);
    json_t *v = json_loadb(value, len, 0, NULL);
    assert_non_null(v);
    snprintf(seen.dlq_device, sizeof seen.dlq_device, "%s",
             json_string_value(json_object_get(v, "deviceId")));
    char *ev = json_dumps(json_object_get(v, "event"), JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(seen.dlq_event, sizeof seen.dlq_event, "%s", ev ? ev : "");
    free(ev);
    json_decref(v);
    produce_call_t *c = xcalloc(1, sizeof *c);
    c->cb = cb;
    c->arg = arg;
    later(produce_answer, c);
    return QUEUE_OK;
}

typedef struct sched_call {
    void (*cb)(int status, void *arg);
    void *arg;
} sched_call_t;

static void sched_answer(void *arg)
{
    sched_call_t *c = arg;
    c->cb(0, c->arg);
    free(c);
}

void expo_receipts_schedule(expo_receipts_t *r, const expo_ticket_info_t *t, size_t n,
                            int64_t due_s, void (*cb)(int status, void *arg), void *arg)
{
    (void)r;
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(t[i].user_id, "u1");
        assert_non_null(strstr(t[i].ticket_id, "t:"));
    }
    assert_true(due_s >= (int64_t)time(NULL) + 900 - 5);
    seen.receipts += (int)n;
    sched_call_t *c = xcalloc(1, sizeof *c);
    c->cb = cb;
    c->arg = arg;
    later(sched_answer, c);
}

/* The checks are named by their first ticket (the fake keeps no buckets). */
void expo_receipts_check_ref(const char *ticket, char out[EXPO_RCPT_REF_MAX])
{
    snprintf(out, EXPO_RCPT_REF_MAX, "0:%.64s", ticket);
}

/* Resends are not driven here (tests/pipeline/test_receipt_resend.c does, end to end). */
void expo_receipts_forget(expo_receipts_t *r, const expo_ticket_info_t *t,
                          void (*cb)(int status, void *arg), void *arg)
{
    (void)r, (void)t, (void)cb, (void)arg;
    fail_msg("no resend is made in these tests");
}

/* Keeps "event device reason" per record. */
void disp_trace_add(disp_trace_t *t, const disp_trace_ref_t *ref, const char *event,
                    const log_kv_t *kv, size_t n)
{
    (void)t;
    const char *device_id = ref->device;
    const char *reason = "";
    for (size_t i = 0; i < n; i++)
        if (!strcmp(kv[i].k, "reason") && kv[i].s)
            reason = kv[i].s;
    if (seen.ntrace < 64)
        snprintf(seen.trace[seen.ntrace++], sizeof seen.trace[0], "%s %s %s", event,
                 device_id ? device_id : "-", reason);
}

/* Records that would ride with a claim or done mark are kept the same way; none rides (the fake
 * claims have no ledger to write them to). */
bool disp_trace_ride(disp_trace_t *t, const disp_trace_ref_t *ref, const char *event,
                     const log_kv_t *kv, size_t n, buf_t *ride)
{
    (void)ride;
    disp_trace_add(t, ref, event, kv, n);
    return false;
}

/* Never called: no record rides here. */
void disp_trace_put(disp_trace_t *t, const disp_trace_ref_t *ref, const char *recs, size_t n)
{
    (void)t, (void)ref, (void)recs, (void)n;
    fail_msg("no record rode");
}

static bool traced(const char *line)
{
    for (size_t i = 0; i < seen.ntrace; i++)
        if (!strcmp(seen.trace[i], line))
            return true;
    return false;
}

/* ---- the Expo side: tickets by token ------------------------------------------------------- */

static size_t sent_msgs(fake_t *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nreqs; i++)
        n += f->reqs[i].nmsgs;
    return n;
}

/* "t:<to>" for every message; tokens naming Unregistered or TooBig get those errors. */
static void expo_script(fake_t *f, size_t idx, const fake_req_t *req, expo_http_resp_t *resp,
                        buf_t *out, void *arg)
{
    (void)f, (void)idx, (void)arg;
    resp->status = 200;
    json_t *arr = json_loadb(req->body, req->len, 0, NULL);
    assert_true(json_is_array(arr));
    buf_puts(out, "{\"data\":[");
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        const char *to = json_string_value(json_object_get(m, "to"));
        assert_string_equal(json_string_value(json_object_get(m, "title")),
                            "Photo Editor - Ready!");
        assert_string_equal(json_string_value(json_object_get(m, "collapseId")), "job-1:COMPLETED");
        if (i)
            buf_putc(out, ',');
        if (strstr(to, "Unregistered"))
            buf_printf(out,
                       "{\"status\":\"error\",\"message\":\"\\\"%s\\\" is not a registered "
                       "push notification recipient\",\"details\":{\"error\":"
                       "\"DeviceNotRegistered\"}}",
                       to);
        else if (strstr(to, "TooBig"))
            buf_puts(out, "{\"status\":\"error\",\"message\":\"big\","
                          "\"details\":{\"error\":\"MessageTooBig\"}}");
        else
            buf_printf(out, "{\"status\":\"ok\",\"id\":\"t:%s\"}", to);
    }
    buf_puts(out, "]}");
    json_decref(arr);
}

/* ---- the pipeline under test ---------------------------------------------------------------- */

typedef struct env {
    metric_reg_t *reg;
    fake_t *fake;
    expo_client_t *expo;
    disp_templates_t *templates;
    disp_pipeline_t *p;
    queue_event_t ev;
    queue_ticket_t ticket;
} env_t;

static int setup(void **state)
{
    memset(&fc, 0, sizeof fc);
    memset(&fs, 0, sizeof fs);
    memset(&seen, 0, sizeof seen);
    fc.base.ops = &claims_ops;
    fc.base.pending_ttl_s = 120; /* dedup.pending_ttl_s as shipped */
    fs.base.ops = &store_ops;
    env_t *e = xcalloc(1, sizeof *e);
    uv_loop_init(&loop);
    uv_timer_init(&loop, &later_timer);
    e->reg = metric_reg_create();
    e->fake = fake_create(&loop, expo_script, NULL);
    expo_opts_t eo = {.url = "http://127.0.0.1:1",
                      .linger_ms = 5, /* as shipped (expo.linger_ms) */
                      .max_concurrent = 2,
                      .rate_per_sec = 0,
                      .max_attempts = 2,
                      .max_retry_age_s = 60,
                      .backoff_base_ms = 1,
                      .backoff_cap_ms = 2,
                      .timeout_ms = 1000,
                      .http2 = false,
                      .transport = &e->fake->base};
    char err[256];
    e->expo = expo_client_create(&loop, &eo, e->reg, err, sizeof err);
    assert_non_null(e->expo);
    disp_templates_opts_t to = {.notify = "COMPLETED,FAILED"};
    e->templates = disp_templates_create(&to, err, sizeof err);
    assert_non_null(e->templates);
    disp_pipeline_deps_t deps = {.loop = &loop,
                                 .store = &fs.base,
                                 .claims = &fc.base,
                                 .expo = e->expo,
                                 .receipts = NULL, /* link seam: expo_receipts_schedule above */
                                 .dlq = NULL,      /* link seam: queue_produce above */
                                 .templates = e->templates,
                                 .trace = NULL, /* link seam: disp_trace_add above */
                                 .metrics = e->reg};
    disp_pipeline_opts_t po = {.receipt_delay_s = 900, .dlq_topic = "job-events.dlq"};
    e->p = disp_pipeline_create(&deps, &po);
    e->ev = (queue_event_t){.kind = QUEUE_EV_JOB,
                            .job_id = "job-1",
                            .user_id = "u1",
                            .status = QUEUE_ST_COMPLETED,
                            .envelope = "raw",
                            .completed_count = -1,
                            .total_count = -1};
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env_t *e = *state;
    disp_pipeline_abort(e->p);
    expo_client_destroy(e->expo);
    for (int i = 0; i < 1000 && later_head; i++) /* answers still queued: the pipeline drops them */
        uv_run(&loop, UV_RUN_ONCE);
    disp_pipeline_destroy(e->p);
    uv_close((uv_handle_t *)&later_timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    fake_free(e->fake);
    disp_templates_destroy(e->templates);
    metric_reg_destroy(e->reg);
    free(e);
    return 0;
}

/* Runs the loop until pred holds; bounded (a broken pipeline fails the assertion, not the run). */
static bool run_until(bool (*pred)(env_t *), env_t *e)
{
    for (int i = 0; i < 100000 && !pred(e); i++)
        uv_run(&loop, UV_RUN_ONCE);
    return pred(e);
}

static bool completed(env_t *e)
{
    return e->ticket.completed > 0;
}

static bool claim_answered(env_t *e)
{
    (void)e;
    return fc.claim_answers > 0;
}

static double metric(metric_reg_t *reg, const char *line_prefix)
{
    buf_t out = BUF_INIT;
    metric_render(reg, &out);
    double v = 0;
    for (char *l = strtok(out.data, "\n"); l; l = strtok(NULL, "\n"))
        if (strncmp(l, line_prefix, strlen(line_prefix)) == 0)
            v += strtod(strrchr(l, ' ') + 1, NULL);
    buf_cleanup(&out);
    return v;
}

static int64_t later_s(int64_t d)
{
    return (int64_t)time(NULL) + d;
}

static void deliver(env_t *e)
{
    disp_pipeline_on_event(&e->ev, &e->ticket, e->p);
    assert_true(run_until(completed, e));
    assert_int_equal(e->ticket.completed, 1);
    assert_int_equal(disp_pipeline_jobs(e->p), 0);
}

/* Two devices: two messages, both receipt checks scheduled and both marks set done in one
 * batch, then the ticket completes (once). */
static void test_two_devices(void **state)
{
    env_t *e = *state;
    add_device("d1", "ExponentPushToken[aaa]", true, later_s(3600));
    add_device("d2", "ExponentPushToken[bbb]", true, later_s(3600));
    deliver(e);
    assert_int_equal(sent_msgs(e->fake), 2);
    assert_int_equal(fc.claim_calls, 1);
    assert_int_equal(fc.last_claim_n, 2);
    assert_int_equal(seen.receipts, 2);
    assert_int_equal(fc.mark_calls, 1); /* batched: one call for the loop turn's outcomes */
    assert_int_equal(fc.max_mark_n, 2);
    assert_int_equal(mark_of("job-1:COMPLETED", "d1")->state, MARK_DONE);
    assert_int_equal(mark_of("job-1:COMPLETED", "d2")->state, MARK_DONE);
    assert_true(traced("completed - "));
    assert_true(metric(e->reg, "herald_notifications_total{outcome=\"ok\"}") == 2);
    /* The same event again (Kafka redelivery): both devices are duplicates, nothing is sent. */
    e->ticket.completed = 0;
    deliver(e);
    assert_int_equal(sent_msgs(e->fake), 2);
    assert_true(traced("duplicate d1 "));
    assert_true(traced("duplicate d2 "));
}

/* Redis steps that fail are retried after a backoff on the pipeline's one retry timer: a failed
 * lookup (the whole event) and a failed batch of done marks (each device again), while the
 * event stays in flight. */
static void test_failed_steps_retried(void **state)
{
    env_t *e = *state;
    add_device("d1", "ExponentPushToken[aaa]", true, later_s(3600));
    add_device("d2", "ExponentPushToken[bbb]", true, later_s(3600));
    fs.fail_lists = 1;
    fc.fail_marks = 2; /* the batch, then the first device's own retry */
    disp_pipeline_on_event(&e->ev, &e->ticket, e->p);
    assert_true(run_until(completed, e));
    assert_int_equal(e->ticket.completed, 1);
    assert_int_equal(fs.list_calls, 2);
    assert_int_equal(sent_msgs(e->fake), 2);
    assert_true(fc.mark_calls >= 4); /* 1 batch + 2 devices + d1 once more */
    assert_int_equal(mark_of("job-1:COMPLETED", "d1")->state, MARK_DONE);
    assert_int_equal(mark_of("job-1:COMPLETED", "d2")->state, MARK_DONE);
    assert_int_equal(disp_pipeline_jobs(e->p), 0);
    /* the next event finds no retry left behind */
    e->ticket.completed = 0;
    deliver(e);
    assert_true(traced("duplicate d1 "));
}

/* A device whose mark is done is skipped as a duplicate; the other one is sent to. */
static void test_done_device_is_duplicate(void **state)
{
    env_t *e = *state;
    add_device("d1", "ExponentPushToken[aaa]", true, later_s(3600));
    add_device("d2", "ExponentPushToken[bbb]", true, later_s(3600));
    mark_of("job-1:COMPLETED", "d2")->state = MARK_DONE;
    deliver(e);
    assert_int_equal(sent_msgs(e->fake), 1);
    assert_true(traced("duplicate d2 "));
    assert_false(traced("duplicate d1 "));
    assert_int_equal(seen.receipts, 1);
    assert_true(metric(e->reg, "herald_notifications_total{outcome=\"duplicate\"}") == 1);
}

/* A pending mark (another attempt holds it, or crashed) is neither sent to nor skipped: the
 * event stays in flight and the device is claimed again later, and sent once the mark is gone. */
static void test_pending_claim_retried(void **state)
{
    env_t *e = *state;
    add_device("d1", "ExponentPushToken[aaa]", true, later_s(3600));
    mark_of("job-1:COMPLETED", "d1")->state = MARK_PENDING;
    disp_pipeline_on_event(&e->ev, &e->ticket, e->p);
    assert_true(run_until(claim_answered, e));
    assert_int_equal(sent_msgs(e->fake), 0);
    assert_int_equal(e->ticket.completed, 0);
    assert_int_equal(disp_pipeline_jobs(e->p), 1);
    mark_of("job-1:COMPLETED", "d1")->state = MARK_NONE; /* the pending TTL ran out */
    assert_true(run_until(completed, e));
    assert_true(fc.claim_calls >= 2);
    assert_int_equal(sent_msgs(e->fake), 1);
    assert_int_equal(mark_of("job-1:COMPLETED", "d1")->state, MARK_DONE);
    assert_false(traced("duplicate d1 "));
}

static bool renewed_twice(env_t *e)
{
    (void)e;
    return fc.renew_calls >= 2;
}

/* Issue 10 item 3: a send that outlives dedup.pending_ttl_s must keep its claim. While Expo
 * does not answer, the pending marks of the devices being sent to are renewed every
 * pending_ttl_s / 3, in one call; a device skipped as a duplicate is not among them.
 * pending_ttl_s is 1 s here (the daemon allows 5 s at the
 * least) so that the renewals come within the test's time. */
static void test_claims_of_sends_in_flight_are_renewed(void **state)
{
    env_t *e = *state;
    fc.base.pending_ttl_s = 1;
    e->fake->hold = true; /* Expo never answers: the send stays in flight */
    add_device("d1", "ExponentPushToken[aaa]", true, later_s(3600));
    add_device("d2", "ExponentPushToken[bbb]", true, later_s(3600));
    mark_of("job-1:COMPLETED", "d2")->state = MARK_DONE;
    disp_pipeline_on_event(&e->ev, &e->ticket, e->p);
    assert_true(run_until(renewed_twice, e));
    assert_int_equal(fc.nrenewed, 1);
    assert_string_equal(fc.renewed[0], "d1");
    assert_int_equal(mark_of("job-1:COMPLETED", "d1")->state, MARK_PENDING);
    assert_int_equal(e->ticket.completed, 0);
}

/* Issue 11: a claim names its owner, and one whose owner's lease lapsed (the instance crashed) is
 * taken over at once: sent after the first claim call, not once dedup.pending_ttl_s ran out. */
static void test_lapsed_owners_claim_taken_over_at_once(void **state)
{
    env_t *e = *state;
    add_device("d1", "ExponentPushToken[aaa]", true, later_s(3600));
    add_device("d2", "ExponentPushToken[bbb]", true, later_s(3600));
    pending_of("job-1:COMPLETED", "d1", "gone");
    fc.lapsed = "gone";
    deliver(e);
    assert_int_equal(fc.claim_calls, 1);
    assert_int_equal(sent_msgs(e->fake), 2);
    assert_true(traced("takeover d1 "));
    assert_false(traced("takeover d2 "));
    assert_int_equal(mark_of("job-1:COMPLETED", "d1")->state, MARK_DONE);
    assert_true(metric(e->reg, "herald_claims_taken_over_total") == 1);
    assert_true(metric(e->reg, "herald_notifications_total{outcome=\"ok\"}") == 2);
}

static bool claimed_thrice(env_t *e)
{
    (void)e;
    return fc.claim_calls >= 3;
}

/* A claim whose owner lives is waited for, however long its send takes (the owner renews it, and
 * nothing here expires): claimed again and again, never sent, while another instance's lapsed
 * lease changes nothing; once its own owner's lease lapses, it is taken over and sent. */
static void test_live_owners_claim_waits_until_its_lease_lapses(void **state)
{
    env_t *e = *state;
    add_device("d1", "ExponentPushToken[aaa]", true, later_s(3600));
    pending_of("job-1:COMPLETED", "d1", "alive");
    fc.lapsed = "other";
    disp_pipeline_on_event(&e->ev, &e->ticket, e->p);
    assert_true(run_until(claimed_thrice, e));
    assert_int_equal(sent_msgs(e->fake), 0);
    assert_int_equal(e->ticket.completed, 0);
    assert_int_equal(disp_pipeline_jobs(e->p), 1);
    assert_string_equal(mark_of("job-1:COMPLETED", "d1")->owner, "alive");
    fc.lapsed = "alive"; /* it crashed */
    assert_true(run_until(completed, e));
    assert_int_equal(sent_msgs(e->fake), 1);
    assert_true(traced("takeover d1 "));
    assert_int_equal(mark_of("job-1:COMPLETED", "d1")->state, MARK_DONE);
}

static queue_ticket_t ticket2;

static bool both_completed(env_t *e)
{
    return e->ticket.completed > 0 && ticket2.completed > 0;
}

/* Issue 11: the events of one loop turn are looked up with one command each (pipelined together
 * by the Redis client) and claimed with one call for all of them, not one per event. Here job-2
 * was delivered before: its devices are duplicates, job-1's are sent. */
static void test_events_of_a_loop_turn_claimed_in_one_call(void **state)
{
    env_t *e = *state;
    queue_event_t ev2 = e->ev;
    ev2.job_id = "job-2";
    ticket2.completed = 0;
    add_device("d1", "ExponentPushToken[aaa]", true, later_s(3600));
    add_device("d2", "ExponentPushToken[bbb]", true, later_s(3600));
    mark_of("job-2:COMPLETED", "d1")->state = MARK_DONE;
    mark_of("job-2:COMPLETED", "d2")->state = MARK_DONE;
    disp_pipeline_on_event(&e->ev, &e->ticket, e->p);
    disp_pipeline_on_event(&ev2, &ticket2, e->p);
    assert_true(run_until(both_completed, e));
    assert_int_equal(fs.list_calls, 2);
    assert_int_equal(fc.claim_calls, 1);
    assert_int_equal(fc.last_claim_nreq, 2);
    assert_int_equal(fc.last_claim_n, 4);
    assert_int_equal(sent_msgs(e->fake), 2);
    assert_true(traced("duplicate d1 ")); /* job-2's */
    assert_int_equal(mark_of("job-1:COMPLETED", "d1")->state, MARK_DONE);
    assert_int_equal(disp_pipeline_jobs(e->p), 0);
}

/* The same event twice in one loop turn (Kafka may hold a record twice): one claim call for both;
 * the copy finds the marks pending under this very instance, so it waits (an instance never
 * takes its own claims: that send is in flight), then finds them done. Sent once. */
static void test_same_event_twice_in_a_loop_turn_sent_once(void **state)
{
    env_t *e = *state;
    ticket2.completed = 0;
    add_device("d1", "ExponentPushToken[aaa]", true, later_s(3600));
    add_device("d2", "ExponentPushToken[bbb]", true, later_s(3600));
    disp_pipeline_on_event(&e->ev, &e->ticket, e->p);
    disp_pipeline_on_event(&e->ev, &ticket2, e->p);
    assert_true(run_until(both_completed, e));
    assert_int_equal(fc.max_claim_nreq, 2);
    assert_true(fc.claim_calls >= 2);
    assert_int_equal(sent_msgs(e->fake), 2);
    assert_true(traced("duplicate d1 "));
    assert_true(traced("duplicate d2 "));
    assert_false(traced("takeover d1 "));
}

/* Inactive and expired devices are skipped with their reason and never claimed. */
static void test_inactive_and_expired_skipped(void **state)
{
    env_t *e = *state;
    add_device("d1", "ExponentPushToken[aaa]", true, later_s(3600));
    add_device("d2", "ExponentPushToken[bbb]", false, later_s(3600));
    add_device("d3", "ExponentPushToken[ccc]", true, later_s(-10));
    deliver(e);
    assert_true(traced("skipped d2 inactive"));
    assert_true(traced("skipped d3 expired"));
    assert_int_equal(fc.last_claim_n, 1);
    assert_int_equal(sent_msgs(e->fake), 1);
    assert_int_equal(mark_of("job-1:COMPLETED", "d2")->state, MARK_NONE);
    assert_int_equal(mark_of("job-1:COMPLETED", "d3")->state, MARK_NONE);
    assert_true(metric(e->reg, "herald_devices_total{result=\"inactive\"}") == 1);
    assert_true(metric(e->reg, "herald_devices_total{result=\"expired\"}") == 1);
}

/* No deliverable device: the event completes without a claim or a send. */
static void test_no_deliverable_device(void **state)
{
    env_t *e = *state;
    add_device("d2", "ExponentPushToken[bbb]", false, later_s(3600));
    deliver(e);
    assert_int_equal(fc.claim_calls, 0);
    assert_int_equal(sent_msgs(e->fake), 0);
}

/* DeviceNotRegistered deactivates the token (only if the device still holds it), then the mark
 * is done; no receipt check is scheduled for it. */
static void test_device_not_registered_deactivates(void **state)
{
    env_t *e = *state;
    add_device("d1", "ExponentPushToken[aaa]", true, later_s(3600));
    add_device("d2", "ExponentPushToken[Unregistered]", true, later_s(3600));
    deliver(e);
    assert_int_equal(fs.ndeact, 1);
    assert_string_equal(fs.deact[0].user, "u1");
    assert_string_equal(fs.deact[0].device, "d2");
    assert_string_equal(fs.deact[0].reason, "DeviceNotRegistered");
    assert_string_equal(fs.deact[0].only_if, "ExponentPushToken[Unregistered]");
    assert_int_equal(seen.receipts, 1);
    assert_int_equal(mark_of("job-1:COMPLETED", "d2")->state, MARK_DONE);
    assert_true(traced("deactivated d2 "));
    assert_true(metric(e->reg, "herald_tokens_deactivated_total{source=\"ticket\"}") == 1);
}

/* A permanent failure becomes a DLQ record (acknowledged) that carries the whole original event
 * and the device, then the mark is failed (not done: a replay of the record may claim it). */
static void test_permanent_failure_to_dlq(void **state)
{
    env_t *e = *state;
    e->ev.batch_job_id = "b-1";
    e->ev.completed_count = 3;
    e->ev.total_count = 4;
    e->ev.error = "two failed";
    add_device("d1", "ExponentPushToken[TooBig]", true, later_s(3600));
    deliver(e);
    assert_int_equal(seen.dlq_records, 1);
    assert_string_equal(seen.dlq_topic, "job-events.dlq");
    assert_string_equal(seen.dlq_reason, "MessageTooBig");
    assert_string_equal(seen.dlq_device, "d1");
    assert_string_equal(seen.dlq_device_header, "d1");
    assert_string_equal(
        seen.dlq_event,
        "{\"batchJobId\":\"b-1\",\"completedCount\":3,\"data\":{\"error\":"
        "\"two failed\"},\"jobId\":\"job-1\",\"status\":\"COMPLETED\",\"totalCount\":4,"
        "\"userId\":\"u1\"}");
    assert_int_equal(seen.receipts, 0);
    assert_int_equal(mark_of("job-1:COMPLETED", "d1")->state, MARK_FAILED);
}

/* Issue 10 item 2: heraldctl dlq replay did nothing for failed notifications (their marks were
 * done). An ordinary redelivery still skips a failed device; the replay of its DLQ record
 * (herald-replay-device) sends to that device alone, once: a second replay finds it done. */
static void test_replay_sends_to_the_failed_device_once(void **state)
{
    env_t *e = *state;
    add_device("d1", "ExponentPushToken[aaa]", true, later_s(3600));
    add_device("d2", "ExponentPushToken[bbb]", true, later_s(3600));
    mark_of("job-1:COMPLETED", "d1")->state = MARK_DONE;
    mark_of("job-1:COMPLETED", "d2")->state = MARK_FAILED;
    deliver(e); /* ordinary redelivery */
    assert_int_equal(sent_msgs(e->fake), 0);
    assert_true(traced("duplicate d2 "));
    e->ev.replay_device = "d2";
    e->ticket.completed = 0;
    deliver(e);
    assert_int_equal(sent_msgs(e->fake), 1);
    assert_non_null(strstr(e->fake->reqs[0].body, "ExponentPushToken[bbb]"));
    assert_null(strstr(e->fake->reqs[0].body, "ExponentPushToken[aaa]"));
    assert_int_equal(fc.last_claim_n, 1);
    assert_int_equal(mark_of("job-1:COMPLETED", "d2")->state, MARK_DONE);
    e->ticket.completed = 0;
    deliver(e); /* the same replay again */
    assert_int_equal(sent_msgs(e->fake), 1);
    e->ev.replay_device = "gone";
    e->ticket.completed = 0;
    deliver(e); /* a device no longer registered: nothing to send */
    assert_int_equal(sent_msgs(e->fake), 1);
    assert_true(traced("skipped gone not_found"));
}

/* A status that does not notify completes at once: no lookup, no claim. */
static void test_status_without_notification(void **state)
{
    env_t *e = *state;
    e->ev.status = QUEUE_ST_PROCESSING;
    add_device("d1", "ExponentPushToken[aaa]", true, later_s(3600));
    deliver(e);
    assert_int_equal(fs.list_calls, 0);
    assert_int_equal(fc.claim_calls, 0);
    assert_true(traced("ignored - "));
}

int main(void)
{
    log_set_level(getenv("HERALD_TEST_LOG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_device_is_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_claim_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claims_of_sends_in_flight_are_renewed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lapsed_owners_claim_taken_over_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_live_owners_claim_waits_until_its_lease_lapses, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_events_of_a_loop_turn_claimed_in_one_call, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_same_event_twice_in_a_loop_turn_sent_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_inactive_and_expired_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_deliverable_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_not_registered_deactivates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permanent_failure_to_dlq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_steps_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_sends_to_the_failed_device_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_status_without_notification, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
