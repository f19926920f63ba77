/* pipeline.c - one job event's life: lookup -> filter -> claim -> send -> durable outcome ->
 * done mark -> complete. A step whose Redis call fails is retried with backoff while the event
 * stays in flight; nothing is acknowledged to Kafka before every device has a durable outcome. */
#include "pipeline/pipeline.h"
#include "core/backoff.h"
#include "core/clock.h"
#include "core/list.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_BASE_MS 100
#define RETRY_CAP_MS 5000
/* Accepted notifications made durable per pair of Redis calls: one receipt check's worth. */
#define OK_BATCH_MAX EXPO_RCPT_CHECK_MAX

typedef enum { DEV_NEW, DEV_SENDING, DEV_DONE, DEV_WAITING } dev_state_t;

typedef struct job job_t;

/* A retry due on the pipeline's one retry timer (p->waiting, or linked to itself when none). */
typedef struct wait {
    list_node_t node;
    uint64_t due; /* loop ms */
    job_t *job;
    bool devs; /* the devices' retry_fns, else the job's retry_fn */
} wait_t;

typedef struct dev {
    job_t *job;
    tok_record_t rec;
    dev_state_t state;
    unsigned retries;
    void (*retry_fn)(struct dev *dv); /* set while waiting for the job's device retry timer */
    char ticket[96];
    char error[64];                /* permanent failure reason, for the DLQ record */
    char check[EXPO_RCPT_REF_MAX]; /* the receipt check holding its ticket, kept in the ledger */
    unsigned attempts;
    size_t ride;  /* its records in job->ride + 1, written with its done mark; 0: none */
    size_t nride; /* how many (its ticket's; the event's `completed` when its mark ends it) */
} pdev_t;

struct job {
    disp_pipeline_t *p;
    list_node_t node; /* in p->jobs */
    const queue_event_t *ev;
    queue_ticket_t *ticket;
    char key[QUEUE_KEY_MAX];
    pdev_t *devs;
    size_t ndevs;
    size_t left;
    disp_templates_t *tmpl; /* a reference to the templates the event was accepted with */
    disp_rendered_t *rs;    /* rendered on first use, one per locale among the devices */
    size_t nrs;
    size_t caprs;        /* rs slots initialised (kept with their buffers when the job is reused) */
    buf_t enc;           /* the event encoded (queue_event_encode) once, when first needed */
    buf_t ride;          /* trace records written with the entry's claim or done marks */
    size_t claim_rec;    /* the records in ride + 1 that go with the next claim */
    size_t claim_nrec;   /* how many (`received`, `devices`); 0: none */
    bool completed_rode; /* its `completed` record goes with a done mark (on_batch_scheduled) */
    size_t capdevs;      /* devs' allocation, kept when the job is reused */
    job_t *next_spare;   /* in p->spare */
    wait_t wait_job;     /* retry_fn's turn on p->retry */
    wait_t wait_devs;    /* the devices' retry_fns' turn on p->retry */
    unsigned retries;
    void (*retry_fn)(job_t *j);
    int64_t event_ms;
    bool claim_again; /* the answer to its last claim was lost (disp_claim_req_t.again) */
};

/* The events whose devices one loop turn claims, in one call (p->claimq while collecting). */
typedef struct claim_batch {
    disp_pipeline_t *p;
    size_t n;
    job_t **jobs;
    size_t *ndevs; /* devices asked per job */
} claim_batch_t;

/* Accepted notifications of one loop turn: their receipt checks are scheduled in one script call
 * and their marks set done in another, instead of two calls per notification. */
typedef struct ok_batch {
    disp_pipeline_t *p;
    size_t n;
    pdev_t *devs[OK_BATCH_MAX];
} ok_batch_t;

struct disp_pipeline {
    disp_pipeline_deps_t d;
    long receipt_delay_s;
    char *dlq_topic;
    ok_batch_t *ok;    /* collecting; NULL when empty */
    uv_idle_t ok_idle; /* flushes `ok` once the loop turn's callbacks have run */
    job_t **claimq;    /* events to claim devices of, collecting */
    size_t nclaimq, capclaimq;
    uv_prepare_t claim_prep; /* claims `claimq` before the loop waits for I/O */
    uv_timer_t renew;        /* renews the claims of sends in flight, while there are jobs */
    uv_timer_t retry;        /* one timer for every job's and device's retry (p->waiting) */
    uint64_t retry_at;       /* when it fires, while active */
    list_t waiting;          /* wait_t of jobs with a retry due */
    job_t *spare;            /* finished jobs kept for reuse (linked through next_spare) */
    size_t nspare;
    bool renewing; /* a renewal call is in flight */
    int open_handles;
    list_t jobs;
    size_t njobs;
    bool aborted;
    list_t resends; /* resend_t: notifications being resent after a MessageRateExceeded receipt */
    long resend_base_ms, resend_cap_ms, max_resends;
    metric_fam_t *m_resend;
    metric_fam_t *m_devices, *m_notif, *m_deact, *m_e2e;
    metric_t *m_jobs, *m_taken;
};

static void lookup(job_t *j);
static void release_rides(job_t *j);
static void claim(job_t *j);
static void dev_finished(pdev_t *dv);

/* ---- job bookkeeping ------------------------------------------------------------------------ */

#define SPARE_MAX 1024 /* finished jobs kept for reuse: about queue.max_in_flight */

/* A job for a new event: a finished one's memory (devices array, encoding buffer, renderings)
 * when there is one, so the steady state allocates nothing per event. A finished job's memory is
 * reused or freed at once (no handle to close): nothing may touch a job after it completes. */
static job_t *job_new(disp_pipeline_t *p)
{
    job_t *j = p->spare;
    if (j == NULL) {
        j = xcalloc(1, sizeof *j);
    } else {
        p->spare = j->next_spare;
        p->nspare--;
        job_t keep = *j;
        memset(j, 0, sizeof *j);
        j->devs = keep.devs;
        j->capdevs = keep.capdevs;
        j->enc = keep.enc;
        j->ride = keep.ride;
        j->rs = keep.rs;
        j->caprs = keep.caprs;
    }
    j->p = p;
    wait_t *w[] = {&j->wait_job, &j->wait_devs};
    for (size_t i = 0; i < 2; i++) {
        w[i]->node.prev = w[i]->node.next = &w[i]->node;
        w[i]->job = j;
    }
    j->wait_devs.devs = true;
    return j;
}

static void job_free_memory(job_t *j)
{
    for (size_t i = 0; i < j->caprs; i++)
        disp_rendered_cleanup(&j->rs[i]);
    free(j->rs);
    buf_cleanup(&j->enc);
    buf_cleanup(&j->ride);
    free(j->devs);
    free(j);
}

static void job_release(disp_pipeline_t *p, job_t *j)
{
    disp_templates_destroy(j->tmpl);
    if (p->nspare < SPARE_MAX) {
        buf_reset(&j->enc);
        buf_reset(&j->ride);
        j->next_spare = p->spare;
        p->spare = j;
        p->nspare++;
        return;
    }
    job_free_memory(j);
}

/* The whole event as JSON, kept with each receipt check (a resend after MessageRateExceeded) and
 * in DLQ records (a replay): encoded once per event, however many devices need it. */
static const char *job_encoded(job_t *j)
{
    if (j->enc.len == 0)
        queue_event_encode(j->ev, &j->enc);
    return buf_cstr(&j->enc);
}

static void job_free(job_t *j)
{
    disp_pipeline_t *p = j->p;
    list_remove(&j->node);
    if (--p->njobs == 0)
        uv_timer_stop(&p->renew);
    metric_set(p->m_jobs, (double)p->njobs);
    list_remove(&j->wait_job.node);
    list_remove(&j->wait_devs.node);
    job_release(p, j);
}

/* The event's one log line at info (its steps are trace records, logged at debug). */
static void job_complete(job_t *j)
{
    LOG(LOG_LVL_INFO, "event done", LKS("jobId", j->ev->job_id), LKS("userId", j->ev->user_id),
        LKS("key", j->key), LKI("devices", j->ndevs));
    queue_complete(j->ticket);
    job_free(j);
}

static void on_retry_timer(uv_timer_t *t);

static void arm_retry(disp_pipeline_t *p, uint64_t due)
{
    uint64_t now = uv_now(p->d.loop);
    p->retry_at = due;
    uv_timer_start(&p->retry, on_retry_timer, due > now ? due - now : 0, 0);
}

/* Queues w's retry for `due` (loop ms) on the pipeline's one retry timer. */
static void wait_until(disp_pipeline_t *p, wait_t *w, uint64_t due)
{
    w->due = due;
    if (w->node.next == &w->node)
        list_push_back(&p->waiting, &w->node);
    if (!uv_is_active((uv_handle_t *)&p->retry) || due < p->retry_at)
        arm_retry(p, due);
}

static void run_wait(wait_t *w)
{
    job_t *j = w->job;
    if (!w->devs) {
        j->retry_fn(j);
        return;
    }
    for (size_t i = 0; i < j->ndevs; i++) { /* every device waiting goes now */
        pdev_t *dv = &j->devs[i];
        void (*fn)(pdev_t *) = dv->retry_fn;
        if (fn) {
            dv->retry_fn = NULL;
            fn(dv);
        }
    }
}

/* Runs every retry that is due. Only events whose Redis steps failed wait, a short list; a retry
 * that fails again queues itself anew (job_free unlinks a finished job's entries). */
static void on_retry_timer(uv_timer_t *t)
{
    disp_pipeline_t *p = t->data;
    uint64_t now = uv_now(p->d.loop), next = UINT64_MAX;
    list_t due;
    list_init(&due);
    for (list_node_t *it = p->waiting.head.next, *nx; it != &p->waiting.head; it = nx) {
        nx = it->next;
        if (container_of(it, wait_t, node)->due <= now) {
            list_remove(it);
            list_push_back(&due, it);
        }
    }
    while (!list_empty(&due) && !p->aborted) {
        wait_t *w = list_first_entry(&due, wait_t, node);
        list_remove(&w->node);
        run_wait(w);
    }
    list_splice(&p->waiting, &due); /* aborted: left as they were */
    for (list_node_t *it = p->waiting.head.next; it != &p->waiting.head; it = it->next)
        if (container_of(it, wait_t, node)->due < next)
            next = container_of(it, wait_t, node)->due;
    if (next != UINT64_MAX)
        arm_retry(p, next);
    else
        uv_timer_stop(&p->retry);
}

/* Runs fn again after a backoff; the event stays in flight meanwhile. */
static void retry_later(job_t *j, void (*fn)(job_t *), const char *why)
{
    uint64_t ms = backoff_full_jitter(j->retries++, RETRY_BASE_MS, RETRY_CAP_MS, rand_u64());
    if (j->retries == 1 || j->retries % 10 == 0)
        LOG(LOG_LVL_WARN, "pipeline step failed, retrying", LKS("jobId", j->ev->job_id),
            LKS("userId", j->ev->user_id), LKS("step", why), LKI("retryMs", ms));
    j->retry_fn = fn;
    wait_until(j->p, &j->wait_job, uv_now(j->p->d.loop) + ms + 1);
}

/* Runs fn(dv) again after a backoff: a device's outcome is not durable until its write lands. */
static void dev_retry(pdev_t *dv, void (*fn)(pdev_t *), const char *why)
{
    job_t *j = dv->job;
    uint64_t ms = backoff_full_jitter(dv->retries++, RETRY_BASE_MS, RETRY_CAP_MS, rand_u64());
    if (dv->retries == 1 || dv->retries % 10 == 0)
        LOG(LOG_LVL_WARN, "pipeline step failed, retrying", LKS("jobId", j->ev->job_id),
            LKS("userId", j->ev->user_id), LKS("deviceId", dv->rec.device_id), LKS("step", why),
            LKI("retryMs", ms));
    dv->retry_fn = fn;
    if (j->wait_devs.node.next == &j->wait_devs.node) /* later ones go with the first */
        wait_until(j->p, &j->wait_devs, uv_now(j->p->d.loop) + ms + 1);
}

/* ---- claims of sends in flight ----------------------------------------------------------------
 */

static void on_renewed(int status, void *arg)
{
    disp_pipeline_t *p = arg;
    p->renewing = false;
    if (status != DISP_CLAIMS_OK && !p->aborted)
        LOG(LOG_LVL_WARN, "dedup claims of sends in flight not renewed; retrying at the next tick",
            LKI("pendingTtlS", p->d.claims->pending_ttl_s));
}

/* A send may outlive dedup.pending_ttl_s (the Expo client retries for up to
 * expo.max_retry_age_s): every pending_ttl_s / 3 the marks of all devices being sent to get
 * their TTL again, in one call, so a live sender's claim never lapses and no other attempt
 * claims it. A crashed sender renews nothing: its claims lapse after pending_ttl_s. */
static void on_renew_timer(uv_timer_t *t)
{
    disp_pipeline_t *p = t->data;
    if (p->aborted || p->renewing)
        return;
    size_t n = 0, cap = 0;
    disp_claim_ref_t *refs = NULL;
    for (list_node_t *it = p->jobs.head.next; it != &p->jobs.head; it = it->next) {
        job_t *j = container_of(it, job_t, node);
        for (size_t i = 0; i < j->ndevs; i++) {
            if (j->devs[i].state != DEV_SENDING)
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                refs = xrealloc(refs, cap * sizeof *refs);
            }
            refs[n++] = (disp_claim_ref_t){
                .user = j->ev->user_id, .event = j->key, .device = j->devs[i].rec.device_id};
        }
    }
    if (n > 0) {
        p->renewing = true;
        disp_claims_renew(p->d.claims, refs, n, on_renewed, p);
    }
    free(refs);
}

static void renew_start(disp_pipeline_t *p)
{
    uint64_t every = (uint64_t)p->d.claims->pending_ttl_s * 1000 / 3;
    if (every > 0 && !uv_is_active((uv_handle_t *)&p->renew))
        uv_timer_start(&p->renew, on_renew_timer, every, every);
}

/* ---- entry ---------------------------------------------------------------------------------- */

void disp_pipeline_on_event(const queue_event_t *ev, queue_ticket_t *ticket, void *arg)
{
    disp_pipeline_t *p = arg;
    job_t *j = job_new(p);
    j->ev = ev;
    j->ticket = ticket;
    queue_event_key(ev, j->key, sizeof j->key);
    j->event_ms = ev->timestamp_ms > 0 ? ev->timestamp_ms : queue_ticket_kafka_ts(ticket);
    list_push_back(&p->jobs, &j->node);
    if (p->njobs++ == 0)
        renew_start(p);
    metric_set(p->m_jobs, (double)p->njobs);
    bool rode; /* written with the claim, if one comes (else release_rides) */
    TRACE_RIDE(rode, p->d.trace, &j->ride, ev->job_id, ev->user_id, j->key, NULL, "received",
               LKS("status", queue_status_name(ev->status)), LKS("envelope", ev->envelope),
               LKS("topic", queue_ticket_topic(ticket)),
               LKI("partition", queue_ticket_partition(ticket)),
               LKI("offset", queue_ticket_offset(ticket)), LKS("correlationId", ev->correlation_id),
               LKS("replayDevice", ev->replay_device), LKS("locale", ev->locale));
    j->claim_rec = 1; /* ride was empty: at 0 */
    j->claim_nrec = rode;
    /* The templates that decide whether it notifies also render it, per locale once its devices
     * are known: a reload before the sends changes neither. */
    if (!disp_templates_notifies(p->d.templates, ev)) {
        TRACE(p->d.trace, ev->job_id, ev->user_id, j->key, NULL, "ignored",
              LKS("detail", "this status does not notify (templates.notify)"));
        release_rides(j);
        job_complete(j);
        return;
    }
    j->tmpl = disp_templates_ref(p->d.templates);
    lookup(j);
}

/* The records kept for a claim that will not come (the event ends first) go to the trace. */
static void release_rides(job_t *j)
{
    disp_trace_ref_t ref = {j->ev->job_id, j->ev->user_id, j->key, NULL};
    if (j->claim_nrec > 0)
        disp_trace_put(j->p->d.trace, &ref, j->ride.data + j->claim_rec - 1, j->claim_nrec);
    j->claim_nrec = 0;
}

/* ---- lookup and filter ---------------------------------------------------------------------- */

static void on_devices(int status, const tok_record_t *recs, size_t n, void *arg)
{
    job_t *j = arg;
    disp_pipeline_t *p = j->p;
    if (p->aborted)
        return;
    if (status != TOK_OK) {
        retry_later(j, lookup, "lookup");
        return;
    }
    int64_t now_s = clk_wall_ms() / 1000;
    const char *only = j->ev->replay_device;
    bool seen = false;
    if (n > j->capdevs) {
        free(j->devs);
        j->capdevs = n;
        j->devs = xmalloc(n * sizeof *j->devs);
    }
    if (n > 0)
        memset(j->devs, 0, n * sizeof *j->devs);
    for (size_t i = 0; i < n; i++) {
        if (only && strcmp(recs[i].device_id, only) != 0)
            continue; /* a replay sends only to the device that failed */
        seen = true;
        const char *why = tok_deliverability(&recs[i], now_s);
        if (why) {
            metric_inc(metric_get(p->m_devices, why));
            TRACE(p->d.trace, j->ev->job_id, j->ev->user_id, j->key, recs[i].device_id, "skipped",
                  LKS("reason", why), LKT("token", recs[i].token),
                  LKS("deactivatedReason",
                      recs[i].deactivated_reason[0] ? recs[i].deactivated_reason : NULL));
            continue;
        }
        metric_inc(metric_get(p->m_devices, "found"));
        j->devs[j->ndevs].job = j;
        j->devs[j->ndevs].rec = recs[i];
        j->ndevs++;
    }
    if (only && !seen)
        TRACE(p->d.trace, j->ev->job_id, j->ev->user_id, j->key, only, "skipped",
              LKS("reason", "not_found"),
              LKS("detail", "the replayed notification's device is no longer registered"));
    j->left = j->ndevs;
    if (j->ndevs == 0) {
        TRACE(p->d.trace, j->ev->job_id, j->ev->user_id, j->key, NULL, "devices", LKI("found", n),
              LKI("deliverable", j->ndevs));
        release_rides(j);
        job_complete(j);
        return;
    }
    bool rode; /* written with the claim: the entry's one write of this turn */
    size_t at = j->ride.len;
    TRACE_RIDE(rode, p->d.trace, &j->ride, j->ev->job_id, j->ev->user_id, j->key, NULL, "devices",
               LKI("found", n), LKI("deliverable", j->ndevs));
    if (rode && j->claim_nrec == 0)
        j->claim_rec = at + 1;
    j->claim_nrec += rode; /* right after `received`: one run */
    j->retries = 0;
    claim(j);
}

static void lookup(job_t *j)
{
    tok_store_list(j->p->d.store, j->ev->user_id, on_devices, j);
}

/* ---- claim ---------------------------------------------------------------------------------- */

static void send_dev(pdev_t *dv);
static void mark_done(pdev_t *dv);

/* The job's share of a claim call: one result per device that was NEW or WAITING, in order. */
static void claimed(job_t *j, const disp_claim_t *res, size_t n)
{
    size_t k = 0;
    bool waiting = false;
    j->claim_again = false;
    for (size_t i = 0; i < n && j->claim_nrec; i++)
        if (res[i] != DISP_CLAIM_LOST)
            j->claim_nrec = 0; /* its entry's part answered: the records are written */
    for (size_t i = 0; i < j->ndevs && k < n; i++) {
        pdev_t *dv = &j->devs[i];
        if (dv->state != DEV_NEW && dv->state != DEV_WAITING)
            continue;
        disp_claim_t v = res[k++];
        if (v == DISP_CLAIM_CLAIMED || v == DISP_CLAIM_TAKEN) {
            if (v == DISP_CLAIM_TAKEN) {
                metric_inc(j->p->m_taken);
                TRACE(j->p->d.trace, j->ev->job_id, j->ev->user_id, j->key, dv->rec.device_id,
                      "takeover",
                      LKS("detail", "the instance that claimed it is gone (its lease lapsed): "
                                    "sending again, with the same collapseId"));
            }
            dv->state = DEV_SENDING;
            send_dev(dv);
        } else if (v == DISP_CLAIM_FOREIGN) {
            dv->state = DEV_SENDING;
            metric_inc(metric_get(j->p->m_devices, "owner_changed"));
            TRACE(j->p->d.trace, j->ev->job_id, j->ev->user_id, j->key, dv->rec.device_id,
                  "skipped", LKS("reason", "owner_changed"), LKT("token", dv->rec.token),
                  LKS("detail", "the token was registered to another device since the lookup"));
            mark_done(dv);
        } else if (v == DISP_CLAIM_DONE || v == DISP_CLAIM_FAILED) {
            dv->state = DEV_DONE;
            TRACE(j->p->d.trace, j->ev->job_id, j->ev->user_id, j->key, dv->rec.device_id,
                  "duplicate",
                  LKS("detail", v == DISP_CLAIM_DONE
                                    ? "already delivered for this event"
                                    : "failed for good before (in the DLQ): only heraldctl dlq "
                                      "replay sends it again"));
            metric_inc(metric_get(j->p->m_notif, "duplicate"));
            bool last = j->left == 1;
            dev_finished(dv);
            if (last)
                return; /* the job is gone (its memory reused or freed): touch it no more */
        } else {
            dv->state = DEV_WAITING;
            waiting = true;
            j->claim_again |= v == DISP_CLAIM_LOST;
        }
    }
    /* A live instance holds the mark (its send is in flight), or one not known to be gone: claim
     * again until it turns final, its owner's lease lapses, or it expires. */
    if (waiting)
        retry_later(j, claim, "claim-pending");
}

static void claim_batch_free(claim_batch_t *b)
{
    free(b->jobs);
    free(b->ndevs);
    free(b);
}

static void on_claimed(int status, const disp_claim_t *res, size_t n, void *arg)
{
    claim_batch_t *b = arg;
    size_t off = 0;
    for (size_t q = 0; q < b->n && !b->p->aborted; q++) {
        if (status != DISP_CLAIMS_OK) {
            b->jobs[q]->claim_again = true;
            retry_later(b->jobs[q], claim, "claim");
        } else if (off + b->ndevs[q] <= n)
            claimed(b->jobs[q], res + off, b->ndevs[q]); /* may free the job: not touched again */
        off += b->ndevs[q];
    }
    claim_batch_free(b);
}

/* One call for every event the loop turn queued (lookups answered, claims to retry). */
static void flush_claims(disp_pipeline_t *p)
{
    claim_batch_t *b = xmalloc(sizeof *b);
    b->p = p;
    b->n = p->nclaimq;
    b->jobs = p->claimq;
    b->ndevs = xmalloc(b->n * sizeof *b->ndevs);
    p->claimq = NULL;
    p->nclaimq = p->capclaimq = 0;
    size_t total = 0;
    for (size_t q = 0; q < b->n; q++)
        total += b->jobs[q]->ndevs;
    disp_claim_req_t *reqs = xmalloc(b->n * sizeof *reqs);
    const char **devices = xmalloc(2 * total * sizeof *devices), **tokens = devices + total;
    size_t k = 0;
    for (size_t q = 0; q < b->n; q++) {
        job_t *j = b->jobs[q];
        size_t first = k;
        for (size_t i = 0; i < j->ndevs; i++) {
            if (j->devs[i].state == DEV_NEW || j->devs[i].state == DEV_WAITING) {
                tokens[k] = j->devs[i].rec.token;
                devices[k++] = j->devs[i].rec.device_id;
            }
        }
        b->ndevs[q] = k - first;
        reqs[q] = (disp_claim_req_t){.user = j->ev->user_id,
                                     .event = j->key,
                                     .devices = devices + first,
                                     .n = k - first,
                                     .tokens = tokens + first,
                                     .again = j->claim_again,
                                     .rec = j->claim_nrec ? j->ride.data + j->claim_rec - 1 : NULL,
                                     .nrec = j->claim_nrec,
                                     .mode = j->ev->replay_device ? DISP_CLAIM_REPLAY
                                                                  : DISP_CLAIM_ORDINARY};
    }
    disp_claims_claim(p->d.claims, reqs, b->n, on_claimed, b);
    free(devices);
    free(reqs);
}

static void on_claim_prep(uv_prepare_t *h)
{
    disp_pipeline_t *p = h->data;
    uv_prepare_stop(&p->claim_prep);
    if (p->nclaimq > 0 && !p->aborted)
        flush_claims(p);
}

/* Queues the job's unclaimed devices for the loop turn's claim call. */
static void claim(job_t *j)
{
    disp_pipeline_t *p = j->p;
    if (p->nclaimq == p->capclaimq) {
        p->capclaimq = p->capclaimq ? 2 * p->capclaimq : 64;
        p->claimq = xrealloc(p->claimq, p->capclaimq * sizeof *p->claimq);
    }
    p->claimq[p->nclaimq++] = j;
    if (!uv_is_active((uv_handle_t *)&p->claim_prep))
        uv_prepare_start(&p->claim_prep, on_claim_prep);
}

/* ---- durable outcomes ----------------------------------------------------------------------- */

static void mark_failed(pdev_t *dv);

/* The device's final mark landed (or not: write it again later). */
static void marked(pdev_t *dv, int status, void (*again)(pdev_t *), const char *step)
{
    if (dv->job->p->aborted)
        return;
    if (status != DISP_CLAIMS_OK) {
        dev_retry(dv, again, step);
        return;
    }
    dv->state = DEV_DONE;
    dev_finished(dv);
}

static void on_marked(int status, void *arg)
{
    marked(arg, status, mark_done, "mark-done");
}

static void on_marked_failed(int status, void *arg)
{
    marked(arg, status, mark_failed, "mark-failed");
}

/* The event for a resend, kept once in the ledger entry (not per ticket); NULL when too long. */
static const char *resend_event(job_t *j)
{
    const char *ev = job_encoded(j);
    return j->enc.len <= EXPO_RCPT_EVENT_MAX ? ev : NULL;
}

/* The ledger's record of a device's durable outcome: done, with its receipt check (if any). */
static disp_claim_ref_t done_ref(pdev_t *dv)
{
    return (disp_claim_ref_t){.user = dv->job->ev->user_id,
                              .event = dv->job->key,
                              .device = dv->rec.device_id,
                              .outcome = dv->check,
                              .event_json = dv->check[0] ? resend_event(dv->job) : NULL,
                              .rec = dv->ride ? dv->job->ride.data + dv->ride - 1 : NULL,
                              .nrec = dv->nride};
}

static void mark_done(pdev_t *dv)
{
    disp_claim_ref_t ref = done_ref(dv);
    disp_claims_mark_done(dv->job->p->d.claims, &ref, 1, on_marked, dv);
}

static void mark_failed(pdev_t *dv)
{
    disp_claim_ref_t ref = {
        .user = dv->job->ev->user_id, .event = dv->job->key, .device = dv->rec.device_id};
    disp_claims_mark_failed(dv->job->p->d.claims, &ref, 1, on_marked_failed, dv);
}

static void dev_finished(pdev_t *dv)
{
    job_t *j = dv->job;
    if (--j->left > 0)
        return;
    if (!j->completed_rode)
        TRACE(j->p->d.trace, j->ev->job_id, j->ev->user_id, j->key, NULL, "completed",
              LKI("devices", j->ndevs));
    job_complete(j);
}

static void schedule_receipt(pdev_t *dv);

static void on_scheduled(int status, void *arg)
{
    pdev_t *dv = arg;
    if (dv->job->p->aborted)
        return;
    if (status != 0) {
        dev_retry(dv, schedule_receipt, "schedule-receipt");
        return;
    }
    mark_done(dv);
}

static expo_ticket_info_t ticket_info(pdev_t *dv, int64_t now_s)
{
    return (expo_ticket_info_t){.ticket_id = dv->ticket,
                                .user_id = dv->rec.user_id,
                                .device_id = dv->rec.device_id,
                                .token = dv->rec.token,
                                .sent_at_s = now_s,
                                .event_key = dv->job->key};
}

/* A device whose batch's check failed gets a check of its own. */
static void schedule_receipt(pdev_t *dv)
{
    job_t *j = dv->job;
    int64_t now_s = clk_wall_ms() / 1000;
    expo_ticket_info_t t = ticket_info(dv, now_s);
    expo_receipts_check_ref(dv->ticket, dv->check);
    expo_receipts_schedule(j->p->d.receipts, &t, 1, now_s + j->p->receipt_delay_s, on_scheduled,
                           dv);
}

static void on_batch_marked(int status, void *arg)
{
    ok_batch_t *b = arg;
    if (!b->p->aborted) {
        for (size_t i = 0; i < b->n; i++) {
            pdev_t *dv = b->devs[i];
            if (status != DISP_CLAIMS_OK) {
                dev_retry(dv, mark_done, "mark-done");
                continue;
            }
            dv->state = DEV_DONE;
            dev_finished(dv); /* may complete the job: touch dv no more */
        }
    }
    free(b);
}

/* When the batch holds the last devices of devs[i]'s event and devs[i] is the last of them, the
 * event's `completed` record goes with its done mark (after its ticket record, back to back in
 * job->ride): the batch's marks and that record land in one write, and that device's retries
 * write the same record again. */
static void ride_completed(ok_batch_t *b, size_t i)
{
    pdev_t *dv = b->devs[i];
    job_t *j = dv->job;
    size_t in_batch = 0;
    for (size_t k = 0; k < b->n; k++) {
        if (b->devs[k]->job != j)
            continue;
        if (k > i)
            return; /* not its last */
        in_batch++;
    }
    if (j->left != in_batch || j->completed_rode)
        return;
    size_t at = j->ride.len, len = 0;
    if (dv->ride) { /* its ticket record first: one run of records */
        const char *r = j->ride.data + dv->ride - 1;
        len = strlen(r) + 1;
        len += strlen(r + len) + 1;
        buf_reserve(&j->ride, len);
        buf_append(&j->ride, j->ride.data + dv->ride - 1, len);
    }
    TRACE_RIDE(j->completed_rode, j->p->d.trace, &j->ride, j->ev->job_id, j->ev->user_id, j->key,
               NULL, "completed", LKI("devices", j->ndevs));
    if (!j->completed_rode) {
        j->ride.len = at;
        return;
    }
    dv->ride = at + 1;
    dv->nride = 1 + (len > 0);
}

static void on_batch_scheduled(int status, void *arg)
{
    ok_batch_t *b = arg;
    disp_pipeline_t *p = b->p;
    if (p->aborted) {
        free(b);
        return;
    }
    if (status != 0) {
        for (size_t i = 0; i < b->n; i++)
            dev_retry(b->devs[i], schedule_receipt, "schedule-receipt");
        free(b);
        return;
    }
    disp_claim_ref_t *refs = xmalloc(b->n * sizeof *refs);
    for (size_t i = 0; i < b->n; i++)
        ride_completed(b, i); /* first: it may move job->ride, which the refs point into */
    for (size_t i = 0; i < b->n; i++)
        refs[i] = done_ref(b->devs[i]);
    disp_claims_mark_done(p->d.claims, refs, b->n, on_batch_marked, b);
    free(refs);
}

static void flush_ok(disp_pipeline_t *p)
{
    ok_batch_t *b = p->ok;
    p->ok = NULL;
    if (b == NULL)
        return;
    if (p->aborted) {
        free(b);
        return;
    }
    int64_t now_s = clk_wall_ms() / 1000;
    expo_ticket_info_t *t = xcalloc(b->n, sizeof *t);
    for (size_t i = 0; i < b->n; i++) {
        t[i] = ticket_info(b->devs[i], now_s);
        expo_receipts_check_ref(b->devs[0]->ticket, b->devs[i]->check); /* one check */
    }
    expo_receipts_schedule(p->d.receipts, t, b->n, now_s + p->receipt_delay_s, on_batch_scheduled,
                           b);
    free(t);
}

static void on_ok_idle(uv_idle_t *h)
{
    disp_pipeline_t *p = h->data;
    uv_idle_stop(&p->ok_idle);
    flush_ok(p);
}

/* An accepted notification: durable once its receipt check is scheduled and its mark is done;
 * both happen for the whole loop turn's batch at once. */
static void ok_durable(pdev_t *dv)
{
    disp_pipeline_t *p = dv->job->p;
    if (p->ok == NULL) {
        p->ok = xmalloc(sizeof *p->ok);
        p->ok->p = p;
        p->ok->n = 0;
    }
    p->ok->devs[p->ok->n++] = dv;
    if (p->ok->n == OK_BATCH_MAX) {
        uv_idle_stop(&p->ok_idle);
        flush_ok(p);
    } else if (!uv_is_active((uv_handle_t *)&p->ok_idle)) {
        uv_idle_start(&p->ok_idle, on_ok_idle);
    }
}

static void on_deactivated(int status, void *arg);

static void deactivate_dev(pdev_t *dv)
{
    tok_store_deactivate(dv->job->p->d.store, dv->rec.user_id, dv->rec.device_id,
                         "DeviceNotRegistered", dv->rec.token, on_deactivated, dv);
}

static void on_deactivated(int status, void *arg)
{
    pdev_t *dv = arg;
    job_t *j = dv->job;
    if (j->p->aborted)
        return;
    if (status == TOK_EUNAVAIL) {
        dev_retry(dv, deactivate_dev, "deactivate");
        return;
    }
    if (status == TOK_OK)
        metric_inc(metric_get(j->p->m_deact, "ticket"));
    TRACE(j->p->d.trace, j->ev->job_id, j->ev->user_id, j->key, dv->rec.device_id, "deactivated",
          LKS("source", "ticket"),
          LKS("result", status == TOK_OK ? "deactivated" : tok_strerror(status)),
          LKT("token", dv->rec.token));
    mark_done(dv);
}

static void dlq_send(pdev_t *dv);

/* The mark becomes `failed`, not `done`: a replay of the record claims it again (once), an
 * ordinary redelivery of the event skips it. */
static void on_dlq_delivered(const queue_delivery_t *dr, void *arg)
{
    pdev_t *dv = arg;
    if (dv->job->p->aborted)
        return;
    if (dr->status != QUEUE_OK) {
        dev_retry(dv, dlq_send, "dlq");
        return;
    }
    mark_failed(dv);
}

/* The failed notification as a DLQ record: enough to investigate it, and to replay it to this
 * device alone (heraldctl dlq replay re-publishes `event`, the whole original event, with the
 * herald-replay-device header taken from herald-dlq-device). */
static void dlq_send(pdev_t *dv)
{
    job_t *j = dv->job;
    disp_pipeline_t *p = j->p;
    buf_t v = BUF_INIT;
    char part[16], off[24], att[16], dlq[512];
    buf_puts(&v, "{\"kind\":\"notification\",\"jobId\":");
    buf_json_str(&v, j->ev->job_id, strlen(j->ev->job_id));
    buf_puts(&v, ",\"userId\":");
    buf_json_str(&v, dv->rec.user_id, strlen(dv->rec.user_id));
    buf_puts(&v, ",\"deviceId\":");
    buf_json_str(&v, dv->rec.device_id, strlen(dv->rec.device_id));
    buf_puts(&v, ",\"expoPushToken\":");
    buf_json_str(&v, dv->rec.token, strlen(dv->rec.token));
    buf_printf(&v, ",\"status\":\"%s\",\"idempotencyKey\":", queue_status_name(j->ev->status));
    buf_json_str(&v, j->key, strlen(j->key));
    buf_puts(&v, ",\"error\":");
    buf_json_str(&v, dv->error, strlen(dv->error));
    buf_printf(&v, ",\"attempts\":%u,\"event\":", dv->attempts);
    buf_puts(&v, job_encoded(j));
    buf_putc(&v, '}');
    snprintf(part, sizeof part, "%d", (int)queue_ticket_partition(j->ticket));
    snprintf(off, sizeof off, "%lld", (long long)queue_ticket_offset(j->ticket));
    snprintf(att, sizeof att, "%u", dv->attempts);
    const char *topic = queue_ticket_topic(j->ticket);
    const char *reason = dv->error;
    queue_header_t h[] = {
        {"herald-dlq-reason", reason, strlen(reason)},
        {"herald-source-topic", topic, strlen(topic)},
        {"herald-source-partition", part, strlen(part)},
        {"herald-source-offset", off, strlen(off)},
        {"herald-attempts", att, strlen(att)},
        {"herald-dlq-device", dv->rec.device_id, strlen(dv->rec.device_id)},
    };
    queue_dlq_topic(p->dlq_topic, topic, dlq, sizeof dlq);
    int rc = queue_produce(p->d.dlq, dlq, j->key, strlen(j->key), v.data, v.len, h,
                           sizeof h / sizeof h[0], on_dlq_delivered, dv);
    if (rc != QUEUE_OK)
        dev_retry(dv, dlq_send, "dlq");
    buf_cleanup(&v);
}

/* Expo's messages quote the token ("\"ExponentPushToken[...]\" is not a registered ..."): replace
 * every occurrence with its redacted form before the text reaches the trace or the log. */
static void redact_message(const char *msg, const char *token, char *out, size_t outlen)
{
    char red[32];
    out[0] = '\0';
    if (msg == NULL || *msg == '\0')
        return; /* the common case (an accepted ticket): no redaction to prepare */
    size_t tl = strlen(token), n = 0;
    log_redact(token, red, sizeof red);
    for (const char *p = msg; p && *p && n + 1 < outlen;) { /* cut at outlen, as before */
        const char *hit = tl ? strstr(p, token) : NULL;
        size_t take = hit ? (size_t)(hit - p) : strlen(p);
        const char *parts[2] = {p, red};
        size_t lens[2] = {take, hit ? strlen(red) : 0};
        for (size_t i = 0; i < 2; i++) {
            size_t k = lens[i] < outlen - 1 - n ? lens[i] : outlen - 1 - n;
            memcpy(out + n, parts[i], k);
            n += k;
        }
        out[n] = '\0';
        if (hit == NULL)
            break;
        p = hit + tl;
    }
}

static void on_result(const expo_result_t *res, void *arg)
{
    pdev_t *dv = arg;
    job_t *j = dv->job;
    disp_pipeline_t *p = j->p;
    char msg[512];
    if (p->aborted)
        return;
    redact_message(res->message, dv->rec.token, msg, sizeof msg);
    if (res->outcome == EXPO_OK) {
        metric_inc(metric_get(p->m_notif, "ok"));
        if (j->event_ms > 0)
            metric_observe(metric_get(p->m_e2e), (double)(clk_wall_ms() - j->event_ms) / 1000.0);
        size_t tl = strnlen(res->ticket_id, sizeof dv->ticket - 1); /* cut as snprintf did */
        memcpy(dv->ticket, res->ticket_id, tl);
        dv->ticket[tl] = '\0';
        bool rode; /* written with its done mark */
        size_t at = j->ride.len;
        TRACE_RIDE(rode, p->d.trace, &j->ride, j->ev->job_id, j->ev->user_id, j->key,
                   dv->rec.device_id, "ticket", LKS("status", "ok"),
                   LKS("ticketId", res->ticket_id), LKI("attempts", res->attempts),
                   LKB("ambiguous", res->ambiguous), LKT("token", dv->rec.token));
        dv->ride = rode ? at + 1 : 0;
        dv->nride = rode;
        ok_durable(dv);
    } else if (res->outcome == EXPO_INVALID_TOKEN) {
        metric_inc(metric_get(p->m_notif, "invalid_token"));
        TRACE(p->d.trace, j->ev->job_id, j->ev->user_id, j->key, dv->rec.device_id, "ticket",
              LKS("status", "error"), LKS("error", res->error), LKS("message", msg),
              LKT("token", dv->rec.token));
        deactivate_dev(dv);
    } else {
        metric_inc(metric_get(p->m_notif, "failed"));
        TRACE(p->d.trace, j->ev->job_id, j->ev->user_id, j->key, dv->rec.device_id, "failed",
              LKS("error", res->error), LKS("message", msg), LKI("attempts", res->attempts),
              LKT("token", dv->rec.token));
        snprintf(dv->error, sizeof dv->error, "%s", res->error ? res->error : "failed");
        dv->attempts = res->attempts;
        dlq_send(dv);
    }
}

/* The event's texts for a device's locale: rendered once per locale the devices resolve to (a
 * phone in French and a tablet in English, two renderings; ten phones in French, one). */
static const disp_rendered_t *rendering(job_t *j, const char *device_locale)
{
    const char *loc = disp_templates_resolve(j->tmpl, device_locale, j->ev->locale);
    for (size_t i = 0; i < j->nrs; i++)
        if (strcmp(j->rs[i].locale, loc) == 0)
            return &j->rs[i];
    if (j->nrs == j->caprs) {
        j->rs = xrealloc(j->rs, (j->caprs + 1) * sizeof *j->rs);
        disp_rendered_init(&j->rs[j->caprs++]);
    }
    disp_rendered_t *r = &j->rs[j->nrs++]; /* an earlier event's rendering is replaced */
    if (disp_templates_render(j->tmpl, j->ev, loc, r) != 0) {
        disp_rendered_cleanup(r);
        disp_rendered_init(r);
    }
    return r;
}

static void send_dev(pdev_t *dv)
{
    job_t *j = dv->job;
    expo_msg_t m;
    disp_rendered_msg(rendering(j, dv->rec.locale), dv->rec.token, j->key, &m);
    expo_send(j->p->d.expo, &m, on_result, dv);
}

/* ---- receipts ------------------------------------------------------------------------------- */

/* ---- resends after a MessageRateExceeded receipt ------------------------------------------- */

/* One notification being resent once its backoff (kept in its receipt check, expo/receipts.h)
 * is over: reading its event from the ledger, looking its device up, at Expo, recording the new
 * ticket's check, then forgetting the old ticket. Not a job: its event was completed long ago
 * and its dedup mark is done; the receipt claim made this instance the only one resending it. A
 * stop on the way leaves the old ticket in its check: it is resent after the claim's lease. */
typedef struct resend {
    disp_pipeline_t *p;
    list_node_t node; /* in p->resends */
    uv_timer_t timer;
    void (*next)(struct resend *rs); /* what the timer runs */
    unsigned retries;                /* of a failed Redis step */
    queue_event_t ev;
    bool decoded;
    char key[QUEUE_KEY_MAX], job[QUEUE_ID_MAX + 1];
    char check[EXPO_RCPT_REF_MAX], old_ticket[96];
    unsigned n; /* this resend's number, 1.. */
    tok_record_t rec;
    char ticket[96];
} resend_t;

static void on_resend_closed(uv_handle_t *h)
{
    resend_t *rs = h->data;
    if (rs->decoded)
        queue_event_cleanup(&rs->ev);
    free(rs);
}

static void resend_free(resend_t *rs)
{
    list_remove(&rs->node);
    uv_close((uv_handle_t *)&rs->timer, on_resend_closed);
}

static void on_resend_timer(uv_timer_t *t)
{
    resend_t *rs = t->data;
    rs->next(rs);
}

/* A Redis step failed: again after a backoff. */
static void resend_retry(resend_t *rs, void (*fn)(resend_t *), const char *why)
{
    uint64_t ms = backoff_full_jitter(rs->retries++, RETRY_BASE_MS, RETRY_CAP_MS, rand_u64());
    if (rs->retries == 1 || rs->retries % 10 == 0)
        LOG(LOG_LVL_WARN, "resend step failed, retrying", LKS("jobId", rs->job),
            LKS("deviceId", rs->rec.device_id), LKS("step", why), LKI("retryMs", ms));
    rs->next = fn;
    uv_timer_start(&rs->timer, on_resend_timer, ms + 1, 0);
}

static void resend_forget(resend_t *rs);

static void on_resend_forgotten(int status, void *arg)
{
    resend_t *rs = arg;
    if (rs->p->aborted)
        return;
    if (status != 0) {
        resend_retry(rs, resend_forget, "forget-receipt");
        return;
    }
    resend_free(rs);
}

/* The old ticket leaves its check: the resend is over (made, or given up). */
static void resend_forget(resend_t *rs)
{
    expo_ticket_info_t t = {.ticket_id = rs->old_ticket, .check = rs->check};
    expo_receipts_forget(rs->p->d.receipts, &t, on_resend_forgotten, rs);
}

static void resend_gave_up(disp_pipeline_t *p, const expo_ticket_info_t *t, const char *job,
                           const char *error, const char *detail, unsigned resends)
{
    metric_inc(metric_get(p->m_resend, "gave_up"));
    TRACE(p->d.trace, job, t->user_id, t->event_key, t->device_id, "failed", LKS("error", error),
          LKS("detail", detail), LKI("resends", resends), LKT("token", t->token));
}

static void resend_failed(resend_t *rs, const char *error, const char *detail)
{
    expo_ticket_info_t t = {.user_id = rs->rec.user_id,
                            .device_id = rs->rec.device_id,
                            .token = rs->rec.token,
                            .event_key = rs->key};
    resend_gave_up(rs->p, &t, rs->job, error, detail, rs->n);
    resend_forget(rs);
}

static void resend_schedule(resend_t *rs);

static void on_resend_scheduled(int status, void *arg)
{
    resend_t *rs = arg;
    if (rs->p->aborted)
        return;
    if (status != 0) {
        resend_retry(rs, resend_schedule, "schedule-receipt");
        return;
    }
    resend_forget(rs);
}

static void resend_schedule(resend_t *rs)
{
    int64_t now_s = clk_wall_ms() / 1000;
    expo_ticket_info_t t = {.ticket_id = rs->ticket,
                            .user_id = rs->rec.user_id,
                            .device_id = rs->rec.device_id,
                            .token = rs->rec.token,
                            .sent_at_s = now_s,
                            .resends = rs->n,
                            .event_key = rs->key};
    expo_receipts_schedule(rs->p->d.receipts, &t, 1, now_s + rs->p->receipt_delay_s,
                           on_resend_scheduled, rs);
}

static void on_resend_deactivated(int status, void *arg)
{
    resend_t *rs = arg;
    if (rs->p->aborted)
        return;
    if (status == TOK_OK)
        metric_inc(metric_get(rs->p->m_deact, "ticket"));
    TRACE(rs->p->d.trace, rs->job, rs->rec.user_id, rs->key, rs->rec.device_id, "deactivated",
          LKS("source", "ticket"),
          LKS("result", status == TOK_OK ? "deactivated" : tok_strerror(status)),
          LKT("token", rs->rec.token));
    resend_forget(rs);
}

static void on_resent(const expo_result_t *res, void *arg)
{
    resend_t *rs = arg;
    disp_pipeline_t *p = rs->p;
    char msg[512];
    if (p->aborted)
        return;
    redact_message(res->message, rs->rec.token, msg, sizeof msg);
    if (res->outcome == EXPO_OK) {
        metric_inc(metric_get(p->m_resend, "resent"));
        snprintf(rs->ticket, sizeof rs->ticket, "%s", res->ticket_id);
        TRACE(p->d.trace, rs->job, rs->rec.user_id, rs->key, rs->rec.device_id, "ticket",
              LKS("status", "ok"), LKS("ticketId", res->ticket_id), LKI("resend", rs->n),
              LKI("attempts", res->attempts), LKT("token", rs->rec.token));
        resend_schedule(rs);
    } else if (res->outcome == EXPO_INVALID_TOKEN) {
        TRACE(p->d.trace, rs->job, rs->rec.user_id, rs->key, rs->rec.device_id, "ticket",
              LKS("status", "error"), LKS("error", res->error), LKS("message", msg),
              LKI("resend", rs->n), LKT("token", rs->rec.token));
        tok_store_deactivate(p->d.store, rs->rec.user_id, rs->rec.device_id, "DeviceNotRegistered",
                             rs->rec.token, on_resend_deactivated, rs);
    } else {
        resend_failed(rs, res->error ? res->error : "failed", msg);
    }
}

/* The device must still hold the token and be deliverable (not deleted, deactivated or expired
 * meanwhile); its texts are rendered with the templates of now. */
static void resend_lookup(resend_t *rs);

static void on_resend_devices(int status, const tok_record_t *recs, size_t n, void *arg)
{
    resend_t *rs = arg;
    disp_pipeline_t *p = rs->p;
    if (p->aborted)
        return;
    if (status != TOK_OK) {
        resend_retry(rs, resend_lookup, "lookup");
        return;
    }
    const tok_record_t *rec = NULL;
    for (size_t i = 0; i < n && !rec; i++)
        if (strcmp(recs[i].device_id, rs->rec.device_id) == 0 &&
            strcmp(recs[i].token, rs->rec.token) == 0)
            rec = &recs[i];
    const char *why = rec ? tok_deliverability(rec, clk_wall_ms() / 1000) : "not_found";
    disp_rendered_t r;
    disp_rendered_init(&r);
    if (!why && disp_templates_render(
                    p->d.templates, &rs->ev,
                    disp_templates_resolve(p->d.templates, rec->locale, rs->ev.locale), &r) != 0)
        why = "not_notified";
    if (why) {
        TRACE(p->d.trace, rs->job, rs->rec.user_id, rs->key, rs->rec.device_id, "skipped",
              LKS("reason", why), LKS("detail", "resend after MessageRateExceeded not made"),
              LKT("token", rs->rec.token));
        disp_rendered_cleanup(&r);
        resend_forget(rs);
        return;
    }
    rs->rec = *rec;
    expo_msg_t m;
    disp_rendered_msg(&r, rs->rec.token, rs->key, &m); /* same collapseId as the first send */
    expo_send(p->d.expo, &m, on_resent, rs);
    disp_rendered_cleanup(&r);
}

static void resend_lookup(resend_t *rs)
{
    tok_store_list(rs->p->d.store, rs->rec.user_id, on_resend_devices, rs);
}

static void resend_read(resend_t *rs);

/* The event as the ledger keeps it (written with the first send's outcome). */
static void on_resend_event(int status, const char *ev, size_t len, void *arg)
{
    resend_t *rs = arg;
    queue_dec_error_t why;
    if (rs->p->aborted)
        return;
    if (status != DISP_CLAIMS_OK) {
        resend_retry(rs, resend_read, "read-event");
        return;
    }
    if (ev == NULL || len == 0) {
        resend_failed(rs, "MessageRateExceeded", "the event is not in its ledger entry");
        return;
    }
    if (queue_event_decode(ev, len, NULL, 0, len + 1, &rs->ev, &why) != 0) {
        queue_event_cleanup(&rs->ev);
        resend_failed(rs, "MessageRateExceeded", "the ledger's event does not decode");
        return;
    }
    rs->decoded = true;
    resend_lookup(rs);
}

static void resend_read(resend_t *rs)
{
    disp_claims_event(rs->p->d.claims, rs->rec.user_id, rs->key, on_resend_event, rs);
}

static bool resending(disp_pipeline_t *p, const expo_ticket_info_t *t)
{
    for (list_node_t *it = p->resends.head.next; it != &p->resends.head; it = it->next) {
        const resend_t *rs = container_of(it, resend_t, node);
        if (!strcmp(rs->old_ticket, t->ticket_id) && !strcmp(rs->check, t->check))
            return true;
    }
    return false;
}

/* A resend whose backoff is over (EXPO_RCPT_RESEND): t->resends is its number. */
static void resend_start(disp_pipeline_t *p, const expo_ticket_info_t *t)
{
    if (resending(p, t) || !t->check || !t->event_key)
        return; /* reported again while in flight (a long send outlived the claim's lease) */
    resend_t *rs = xcalloc(1, sizeof *rs);
    rs->p = p;
    rs->n = t->resends;
    snprintf(rs->key, sizeof rs->key, "%s", t->event_key);
    snprintf(rs->job, sizeof rs->job, "%s", t->job_id ? t->job_id : "");
    snprintf(rs->check, sizeof rs->check, "%s", t->check);
    snprintf(rs->old_ticket, sizeof rs->old_ticket, "%s", t->ticket_id);
    snprintf(rs->rec.user_id, sizeof rs->rec.user_id, "%s", t->user_id);
    snprintf(rs->rec.device_id, sizeof rs->rec.device_id, "%s", t->device_id);
    snprintf(rs->rec.token, sizeof rs->rec.token, "%s", t->token);
    uv_timer_init(p->d.loop, &rs->timer);
    rs->timer.data = rs;
    list_push_back(&p->resends, &rs->node);
    resend_read(rs);
}

/* A MessageRateExceeded receipt of a ticket that names its event: the ms until its resend
 * (resend_base_ms * 2^resends, capped; the receipt check keeps it until then), or -1 once
 * max_resends were made. */
static long resend_receipt(disp_pipeline_t *p, const expo_ticket_info_t *t, const char *job,
                           const char *error)
{
    if ((long)t->resends >= p->max_resends) {
        resend_gave_up(p, t, job, error, "MessageRateExceeded receipt after the last resend",
                       t->resends);
        return -1;
    }
    uint64_t ms =
        backoff_ceiling(t->resends, (uint64_t)p->resend_base_ms, (uint64_t)p->resend_cap_ms);
    TRACE(p->d.trace, job, t->user_id, t->event_key, t->device_id, "resend",
          LKS("status", "scheduled"), LKS("error", error), LKI("resend", t->resends + 1),
          LKI("delayMs", ms), LKS("collapseId", t->event_key), LKT("token", t->token));
    return (long)ms;
}

typedef struct rc_ctx {
    disp_pipeline_t *p;
    char user[TOK_USER_MAX + 1], device[TOK_DEVICE_MAX + 1], token[TOK_TOKEN_MAX + 1];
    char job[QUEUE_ID_MAX + 1], key[QUEUE_KEY_MAX];
} rc_ctx_t;

static void on_receipt_deactivated(int status, void *arg)
{
    rc_ctx_t *c = arg;
    if (status == TOK_OK)
        metric_inc(metric_get(c->p->m_deact, "receipt"));
    TRACE(c->p->d.trace, c->job, c->user, c->key, c->device, "deactivated",
          LKS("source", "receipt"),
          LKS("result", status == TOK_OK ? "deactivated" : tok_strerror(status)),
          LKT("token", c->token));
    free(c);
}

static const char *const rcpt_names[] = {"ok", "DeviceNotRegistered", "error", "missing", "error"};

static void deactivate_receipt(disp_pipeline_t *p, const expo_ticket_info_t *t, const char *job)
{
    rc_ctx_t *c = xcalloc(1, sizeof *c);
    c->p = p;
    snprintf(c->user, sizeof c->user, "%s", t->user_id);
    snprintf(c->device, sizeof c->device, "%s", t->device_id);
    snprintf(c->token, sizeof c->token, "%s", t->token);
    snprintf(c->job, sizeof c->job, "%s", job);
    snprintf(c->key, sizeof c->key, "%s", t->event_key ? t->event_key : "");
    /* Idempotent: a receipt reported twice (crash before its deletion) deactivates once. */
    tok_store_deactivate(p->d.store, c->user, c->device, "DeviceNotRegistered", c->token,
                         on_receipt_deactivated, c);
}

long disp_pipeline_on_receipt(const expo_ticket_info_t *t, expo_rcpt_status_t st, const char *error,
                              const char *message, void *arg)
{
    disp_pipeline_t *p = arg;
    const char *job = t->job_id && *t->job_id ? t->job_id : "unknown";
    bool whole = t->user_id && *t->user_id && t->device_id && t->token;
    if (st == EXPO_RCPT_RESEND) {
        if (!p->aborted && whole)
            resend_start(p, t);
        return 0;
    }
    char msg[512] = "";
    if (message)
        redact_message(message, t->token ? t->token : "", msg, sizeof msg);
    TRACE(p->d.trace, job, t->user_id ? t->user_id : "", t->event_key, t->device_id, "receipt",
          LKS("status", (unsigned)st < 5 ? rcpt_names[st] : "unknown"),
          LKS("ticketId", t->ticket_id), LKS("error", error), LKS("message", message ? msg : NULL),
          LKT("token", t->token));
    if (st == EXPO_RCPT_RETRY)
        return whole ? resend_receipt(p, t, job, error) : -1;
    if (st == EXPO_RCPT_INVALID && !p->aborted && whole)
        deactivate_receipt(p, t, job);
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

disp_pipeline_t *disp_pipeline_create(const disp_pipeline_deps_t *deps,
                                      const disp_pipeline_opts_t *opts)
{
    disp_pipeline_t *p = xcalloc(1, sizeof *p);
    p->d = *deps;
    p->receipt_delay_s = opts->receipt_delay_s;
    p->dlq_topic = xstrdup(opts->dlq_topic);
    p->resend_base_ms = opts->resend_base_ms;
    p->resend_cap_ms = opts->resend_cap_ms;
    p->max_resends = opts->max_resends;
    list_init(&p->resends);
    uv_idle_init(deps->loop, &p->ok_idle);
    p->ok_idle.data = p;
    uv_timer_init(deps->loop, &p->renew);
    p->renew.data = p;
    uv_timer_init(deps->loop, &p->retry);
    p->retry.data = p;
    list_init(&p->waiting);
    uv_prepare_init(deps->loop, &p->claim_prep);
    p->claim_prep.data = p;
    p->open_handles = 4;
    list_init(&p->jobs);
    metric_reg_t *m = deps->metrics;
    p->m_devices =
        metric_counter_new(m, "herald_devices_total",
                           "Devices looked up for events: found, or skipped by reason.", "result");
    p->m_notif = metric_counter_new(m, "herald_notifications_total",
                                    "Notifications by outcome (ok, invalid_token, failed, "
                                    "duplicate).",
                                    "outcome");
    p->m_deact =
        metric_counter_new(m, "herald_tokens_deactivated_total",
                           "Tokens deactivated after Expo said DeviceNotRegistered.", "source");
    p->m_e2e = metric_histogram_new(m, "herald_end_to_end_seconds",
                                    "Event timestamp to Expo accepted.", NULL, NULL, 0);
    p->m_resend = metric_counter_new(m, "herald_receipt_resends_total",
                                     "MessageRateExceeded receipts: notifications resent "
                                     "(resent), or given up after the last resend (gave_up).",
                                     "result");
    p->m_jobs = metric_get(
        metric_gauge_new(m, "herald_events_in_pipeline", "Events being dispatched.", NULL));
    p->m_taken = metric_get(metric_counter_new(
        m, "herald_claims_taken_over_total",
        "Dedup claims taken over from an instance whose lease lapsed (it crashed): sent again.",
        NULL));
    return p;
}

void disp_pipeline_set_templates(disp_pipeline_t *p, disp_templates_t *t)
{
    p->d.templates = t;
}

void disp_pipeline_abort(disp_pipeline_t *p)
{
    p->aborted = true;
    /* Records kept for a claim go to the trace now (the same fields, should the claim land). */
    for (list_node_t *it = p->jobs.head.next; it != &p->jobs.head; it = it->next)
        release_rides(container_of(it, job_t, node));
}

size_t disp_pipeline_jobs(const disp_pipeline_t *p)
{
    return p->njobs;
}

static void on_handle_closed(uv_handle_t *h)
{
    disp_pipeline_t *p = h->data;
    if (--p->open_handles == 0)
        free(p);
}

void disp_pipeline_destroy(disp_pipeline_t *p)
{
    if (p == NULL)
        return;
    while (!list_empty(&p->jobs)) /* tickets abandoned: the consumer is gone, Kafka redelivers */
        job_free(list_first_entry(&p->jobs, job_t, node));
    while (!list_empty(&p->resends)) /* a resend not made: its notification stays rate-limited */
        resend_free(list_first_entry(&p->resends, resend_t, node));
    free(p->ok);
    p->ok = NULL;
    free(p->claimq);
    p->claimq = NULL;
    p->nclaimq = 0;
    free(p->dlq_topic);
    uv_close((uv_handle_t *)&p->ok_idle, on_handle_closed);
    uv_close((uv_handle_t *)&p->claim_prep, on_handle_closed);
    uv_close((uv_handle_t *)&p->renew, on_handle_closed);
    uv_close((uv_handle_t *)&p->retry, on_handle_closed);
    while (p->spare) {
        job_t *j = p->spare;
        p->spare = j->next_spare;
        job_free_memory(j);
    }
}
