/* receipts.h - push receipt checks: the accepted tickets of one Expo request (or one flush of
 * them, up to EXPO_RCPT_CHECK_MAX) are recorded in Redis as one check, and a poller on the loop
 * later asks Expo's getReceipts what became of them.
 *
 * Redis layout (prefix p, default "herald:"; db/keys.h key_rq): a check is the HASH
 * `<p>rq:{<b>}:<id>` (id: its first ticket id; bucket b = expo_receipts_bucket(id), 0..15) with
 * `_s` (sent, unix s), `_c` (checks made) and per ticket a field <ticket id> = the tuple
 * "<user>\x1f<device>\x1f<event key>\x1f<token>\x1f<resends>\x1f<resend at, unix ms or 0>",
 * expiring 26 h after scheduling; `<p>rq:{<b>}` is the bucket's ZSET of check ids by due time (unix
 * s). Several instances may poll: a claim script takes due checks of one bucket and moves them to
 * now + lease in the same step, so each check is handled by one poller at a time and a crashed
 * poller's claims come back when the lease ends. The poller walks the 16 buckets. A ticket whose
 * receipt is final leaves its check; the check goes with its last ticket. A MessageRateExceeded
 * receipt keeps its ticket in the check as "resend due at T" (the owner says when): once due, the
 * owner is told to resend (EXPO_RCPT_RESEND) and removes the ticket (expo_receipts_forget) only
 * once the resend's own ticket is recorded, so a resend waiting out its backoff survives a
 * restart. A privacy delete removes a user's (device's) tickets from their checks
 * (expo/lua/check_drop.lua, pulled into pipeline/lua/privacy_*.lua).
 *
 * The module does not touch tokens: the owner reacts to EXPO_RCPT_INVALID (deactivate). Loop
 * thread only; callbacks fire exactly once, never inside the starting call. */
#ifndef HERALD_EXPO_RECEIPTS_H
#define HERALD_EXPO_RECEIPTS_H

#include "core/clock.h"
#include "core/metrics.h"
#include "db/db.h"
#include "expo/transport.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* What a ticket was for; all strings borrowed for the duration of the call/callback. */
typedef struct expo_ticket_info {
    const char *ticket_id;
    const char *user_id;
    const char *device_id;
    const char *token;
    const char *job_id;    /* reports: the event key up to its last ':' */
    int64_t sent_at_s;     /* unix seconds */
    unsigned resends;      /* how many times this notification was resent before this ticket */
    const char *event_key; /* the event's idempotency key "<jobId>:<STATUS>" (its ledger entry),
                            * or NULL/"": not resendable */
    const char *check;     /* reports: the check holding the ticket (expo_receipts_check_ref) */
} expo_ticket_info_t;

/* The longest event the owner keeps for a resend (in the ledger entry); a longer one is not kept,
 * and its tickets are not resent. */
#define EXPO_RCPT_EVENT_MAX 4096
#define EXPO_RCPT_CHECK_MAX 100        /* tickets per check: one Expo request's */
#define EXPO_RCPT_REF_MAX (4 + 64 + 1) /* "<bucket>:<check id>" and its NUL (ids <= 64) */

typedef enum {
    EXPO_RCPT_OK = 0,  /* APNs/FCM accepted it */
    EXPO_RCPT_INVALID, /* DeviceNotRegistered: deactivate the token */
    EXPO_RCPT_ERROR,   /* another error (error/message say which) */
    EXPO_RCPT_MISSING, /* no receipt 24 h after sending: given up */
    EXPO_RCPT_RETRY,   /* MessageRateExceeded, t->event_key set: the owner answers when to resend */
    EXPO_RCPT_RESEND,  /* that resend is due now: make it, record its ticket, then
                        * expo_receipts_forget(t) */
} expo_rcpt_status_t;

/* A report. For EXPO_RCPT_RETRY it answers the ms until the resend (the ticket stays in its check,
 * due then, with resends + 1) or -1 (not resent: the ticket leaves its check); otherwise the answer
 * is ignored. Until the owner forgets a RESEND ticket, it is reported again after each lease. */
typedef long (*expo_receipt_fn)(const expo_ticket_info_t *t, expo_rcpt_status_t st,
                                const char *error, const char *message, void *arg);

/* Every field is required except clock and transport; herald fills them from the configuration
 * in one place (daemon/options.c). */
typedef struct expo_receipts_opts {
    const char *url;            /* base URL (expo.url) */
    const char *access_token;   /* or NULL */
    const char *prefix;         /* Redis key prefix (redis.prefix) */
    long poll_interval_s;       /* expo.receipt_poll_interval_s, >= 1 */
    long timeout_ms;            /* per getReceipts request (expo.timeout_ms), >= 1 */
    expo_receipt_fn on_receipt; /* required */
    void *arg;
    const clk_t *clock;          /* borrowed; NULL: system */
    expo_transport_t *transport; /* takes; NULL: libcurl */
} expo_receipts_opts_t;

/* How ids are re-checked: a claim holds an id for EXPO_RCPT_LEASE_S; an id whose receipt is not
 * ready yet is checked again after EXPO_RCPT_RETRY_BASE_S, doubling up to EXPO_RCPT_RETRY_CAP_S;
 * EXPO_RCPT_GIVE_UP_S after sending (Expo keeps receipts for a day) it is reported missing. */
#define EXPO_RCPT_LEASE_S 60
#define EXPO_RCPT_RETRY_BASE_S 60
#define EXPO_RCPT_RETRY_CAP_S 3600
#define EXPO_RCPT_GIVE_UP_S 86400

typedef struct expo_receipts expo_receipts_t;

/* new: free with expo_receipts_destroy. db and metrics borrowed. NULL with a sentence in err
 * when an option is missing or out of range. */
expo_receipts_t *expo_receipts_create(uv_loop_t *loop, db_t *db, const expo_receipts_opts_t *o,
                                      metric_reg_t *metrics, char *err, size_t errlen);
/* Stops polling and cancels a getReceipts request in flight. Redis commands already issued still
 * call back into r: destroy the db first (its callbacks then fire with DB_ESHUTDOWN, which this
 * module ignores) or wait for them. Accepts NULL. Run the loop afterwards so handles close. */
void expo_receipts_destroy(expo_receipts_t *r);
/* Starts the poll timer (first poll after one interval). */
void expo_receipts_start(expo_receipts_t *r);
/* Polls once now (tests, heraldctl). */
void expo_receipts_poll_now(expo_receipts_t *r);

/* Records n tickets (1..EXPO_RCPT_CHECK_MAX) as one check due at due_s (unix seconds), in one
 * script call; its id is t[0].ticket_id (its first 64 bytes; expo_receipts_check_ref names it).
 * Each ticket needs ticket_id, user_id, device_id, token, event_key and resends; sent_at_s is
 * t[0]'s. cb(status) with 0 or a DB_E* code; cb may be NULL. */
void expo_receipts_schedule(expo_receipts_t *r, const expo_ticket_info_t *t, size_t n,
                            int64_t due_s, void (*cb)(int status, void *arg), void *arg);
/* Removes a reported ticket (t->check, t->ticket_id) from its check: after a RESEND, once the
 * resend's ticket is recorded. cb as for schedule; may be NULL. */
void expo_receipts_forget(expo_receipts_t *r, const expo_ticket_info_t *t,
                          void (*cb)(int status, void *arg), void *arg);
/* The bucket of a check id, and "<bucket>:<id>" of the check whose first ticket is ticket: what
 * names a check outside this module (the ledger keeps it per device, for a privacy delete). */
unsigned expo_receipts_bucket(const char *check_id);
void expo_receipts_check_ref(const char *ticket, char out[EXPO_RCPT_REF_MAX]);
/* Pending checks (not tickets): count and the oldest due time (0 when none). */
void expo_receipts_pending(expo_receipts_t *r,
                           void (*cb)(int status, long long count, int64_t oldest_due_s, void *arg),
                           void *arg);

#endif
