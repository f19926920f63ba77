/* claims.h - the pipeline's dedup claims (DESIGN.md "Delivery, at least once, duplicates
 * suppressed" and "Owner leases"): one mark per (user, event, device), kept in the event's
 * delivery ledger entry. A claim turns an absent
 * mark into `pending` owned by this instance (pipeline/lease.h); a mark becomes `done` (long TTL)
 * only once the device's outcome is durable, or `failed` (long TTL) once its DLQ record is.
 * `done` means skip. `pending` is never skipped: a mark whose owner's lease lapsed (it crashed) is
 * taken over at once, one whose owner lives (or is not known to be gone) is claimed again later.
 * A live owner renews its pending marks well within their TTL (disp_claims_renew), so its claims
 * never lapse; the TTL only bounds how long a mark nobody can judge blocks (a crashed owner
 * forgotten by the lease view, a mark written before owners existed). `failed` is skipped by an
 * ordinary (re)delivery and claimed only by a replay of the notification's DLQ record
 * (heraldctl dlq replay), so the replay sends it once.
 *
 * An interface (struct of function pointers, as tokens/store.h) so pipeline.c can be driven by a
 * fake in unit tests; disp_claims_redis_create() gives the real one. Calls take (cb, arg): cb
 * fires exactly once, never from inside the call, on the loop. */
#ifndef HERALD_PIPELINE_CLAIMS_H
#define HERALD_PIPELINE_CLAIMS_H

#include <stdbool.h>
#include <stddef.h>

enum {
    DISP_CLAIMS_OK = 0,
    DISP_CLAIMS_EUNAVAIL = -1, /* the backend failed or did not answer: retry later */
};

typedef enum {
    DISP_CLAIM_PENDING = -1, /* another live attempt holds the mark: claim again later */
    DISP_CLAIM_DONE = 0,     /* delivered before for this event: skip as a duplicate */
    DISP_CLAIM_CLAIMED = 1,  /* claimed now: send */
    DISP_CLAIM_FAILED = 2,   /* failed for good before (dead-lettered): skip, only a replay sends */
    DISP_CLAIM_TAKEN = 3,    /* claimed now from an owner whose lease lapsed: send (again) */
    DISP_CLAIM_FOREIGN = 4,  /* claimed now, but the token's owner key names another device (it
                                moved, Redis Cluster): skip, and mark it done */
    DISP_CLAIM_LOST = 5,     /* no answer for it (its cluster slot failed): claim again, `again` */
} disp_claim_t;

typedef enum {
    DISP_CLAIM_ORDINARY = 0, /* an event as consumed: absent marks are claimed */
    DISP_CLAIM_REPLAY,       /* a DLQ replay: absent and `failed` marks are claimed */
} disp_claim_mode_t;

typedef struct disp_claims disp_claims_t;

/* One mark: the user, the event's idempotency key and a device id (borrowed during the call).
 * mark_done also writes, when not NULL or "", the device's outcome (its receipt check,
 * expo_receipts_check_ref) and the encoded event, kept once per entry for a resend. */
typedef struct disp_claim_ref {
    const char *user;
    const char *event;
    const char *device;
    const char *outcome;
    const char *event_json;
    /* nrec trace records written with the mark (disp_trace_ride: each its field, then its JSON,
     * back to back); mark_done and mark_failed only. */
    const char *rec;
    size_t nrec;
} disp_claim_ref_t;

/* The devices of one user's event (all borrowed during the call). */
typedef struct disp_claim_req {
    const char *user;
    const char *event;
    const char *const *devices;
    size_t n; /* >= 1 */
    disp_claim_mode_t mode;
    /* The devices' tokens (n, borrowed during the call), or NULL. On Redis Cluster each claimed
     * device's token owner key is read in the same turn; one naming another (user, device) turns
     * the claim into DISP_CLAIM_FOREIGN (DESIGN.md "Reassignment across slots"). */
    const char *const *tokens;
    /* The answer to this instance's last claim of these devices was lost (DISP_CLAIMS_EUNAVAIL,
     * DISP_CLAIM_LOST): a pending mark of this instance counts as absent (no send of this
     * instance holds it). */
    bool again;
    /* nrec trace records of the event written with the claim (disp_trace_ride: each its field,
     * then its JSON, back to back), whatever the devices' results. */
    const char *rec;
    size_t nrec;
} disp_claim_req_t;

/* status DISP_CLAIMS_OK with one result per device, in the order asked, request after request
 * (res borrowed for the callback), or DISP_CLAIMS_EUNAVAIL with res == NULL. */
typedef void (*disp_claim_cb)(int status, const disp_claim_t *res, size_t n, void *arg);
typedef void (*disp_claims_done_cb)(int status, void *arg);
/* status DISP_CLAIMS_OK with the encoded event (NULL when the entry keeps none; borrowed for the
 * callback), or DISP_CLAIMS_EUNAVAIL. */
typedef void (*disp_claims_event_cb)(int status, const char *ev, size_t len, void *arg);

typedef struct disp_claims_ops {
    void (*claim)(disp_claims_t *c, const disp_claim_req_t *reqs, size_t nreq, disp_claim_cb cb,
                  void *arg);
    void (*mark_done)(disp_claims_t *c, const disp_claim_ref_t *refs, size_t n,
                      disp_claims_done_cb cb, void *arg);
    void (*mark_failed)(disp_claims_t *c, const disp_claim_ref_t *refs, size_t n,
                        disp_claims_done_cb cb, void *arg);
    void (*renew)(disp_claims_t *c, const disp_claim_ref_t *refs, size_t n, disp_claims_done_cb cb,
                  void *arg);
    void (*event)(disp_claims_t *c, const char *user, const char *event, disp_claims_event_cb cb,
                  void *arg);
    void (*destroy)(disp_claims_t *c);
} disp_claims_ops_t;

struct disp_claims {
    const disp_claims_ops_t *ops;
    long pending_ttl_s; /* a claim lapses this long after it was made or last renewed */
};

/* Claims the devices of nreq events (nreq >= 1; of any users) in one step: the pipeline claims
 * what one loop turn brought at once. */
static inline void disp_claims_claim(disp_claims_t *c, const disp_claim_req_t *reqs, size_t nreq,
                                     disp_claim_cb cb, void *arg)
{
    c->ops->claim(c, reqs, nreq, cb, arg);
}
/* Marks n (event, device) pairs done in one step (n >= 1); they may belong to many events. */
static inline void disp_claims_mark_done(disp_claims_t *c, const disp_claim_ref_t *refs, size_t n,
                                         disp_claims_done_cb cb, void *arg)
{
    c->ops->mark_done(c, refs, n, cb, arg);
}
/* Marks n pairs failed for good (their DLQ records acknowledged), in one step (n >= 1). */
static inline void disp_claims_mark_failed(disp_claims_t *c, const disp_claim_ref_t *refs, size_t n,
                                           disp_claims_done_cb cb, void *arg)
{
    c->ops->mark_failed(c, refs, n, cb, arg);
}
/* Gives n marks (n >= 1; of many events) another pending_ttl_s if this instance still owns them;
 * marks that are done, gone or taken over are left alone. For the sends in flight: a live
 * sender's claim must never lapse. */
static inline void disp_claims_renew(disp_claims_t *c, const disp_claim_ref_t *refs, size_t n,
                                     disp_claims_done_cb cb, void *arg)
{
    c->ops->renew(c, refs, n, cb, arg);
}
/* The encoded event kept in (user, event)'s ledger entry by mark_done (for a resend). */
static inline void disp_claims_event(disp_claims_t *c, const char *user, const char *event,
                                     disp_claims_event_cb cb, void *arg)
{
    c->ops->event(c, user, event, cb, arg);
}
/* Accepts NULL. Calls still in flight keep their callbacks (the backend answers them). */
static inline void disp_claims_destroy(disp_claims_t *c)
{
    if (c)
        c->ops->destroy(c);
}

typedef struct disp_claims_redis_opts {
    const char *prefix; /* redis.prefix, copied */
    long pending_ttl_s; /* dedup.pending_ttl_s */
    long done_ttl_s;    /* the ledger entry's TTL: dedup.done_ttl_s (and >= trace.ttl_s) */
    long max_records;   /* trace records kept per entry (trace.max_records) */
    const struct disp_lease *lease; /* the owner of new claims and the view of lapsed owners */
} disp_claims_redis_opts_t;

struct db;
/* new: marks in the ledger entries in Redis (db/keys.h key_ledger), one script call per claim,
 * mark_done or renew. db and lease borrowed (must outlive the claims; destroy db first so its
 * callbacks fire with an error). On Redis Cluster a call runs as one script call per hash slot
 * of its entries (db_eval_parts; an entry's slot is its user's); a claim whose slot failed answers
 * DISP_CLAIM_LOST for its devices while the other slots' go ahead. */
disp_claims_t *disp_claims_redis_create(struct db *db, const disp_claims_redis_opts_t *o);

#endif
