/* receipts.h - push receipt checks: every ok ticket is scheduled in Redis and a poller on the loop
 * later asks Expo's getReceipts what became of it.
 *
 * Redis layout (prefix p, default "herald:"): `<p>receipts` ZSET of ticket ids scored by due time
 * (unix seconds); `<p>ticket:<id>` HASH userId deviceId token jobId sentAt event resends key
 * [checks], expiring 26 h after scheduling (event: the job event as queue_event_encode wrote it,
 * kept so a MessageRateExceeded receipt can be resent; "" when over EXPO_RCPT_EVENT_MAX bytes).
 * Several instances may poll: a claim script takes due ids and moves them to now + lease in the
 * same step, so each id is checked by one poller at a time and a crashed poller's claims come back
 * when the lease ends. A privacy delete removes a user's (device's) checks, hash and entry, with
 * expo/lua/ticket_drop.lua (pulled into pipeline/lua/privacy_*.lua); a check in flight whose hash
 * has gone by then is forgotten, not put off.
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
    const char *job_id;
    int64_t sent_at_s; /* unix seconds */
    const char *event; /* the encoded job event (queue_event_encode), or NULL/"": not resendable */
    unsigned resends;  /* how many times this notification was resent before this ticket */
    const char *event_key; /* the event's idempotency key (its ledger entry), or NULL/"" */
} expo_ticket_info_t;

/* Longest event stored in a ticket hash; a longer one is stored as "" (its ticket cannot be
 * resent): every ok ticket keeps one for a day, so the bound is memory per ticket. */
#define EXPO_RCPT_EVENT_MAX 4096

typedef enum {
    EXPO_RCPT_OK = 0,  /* APNs/FCM accepted it */
    EXPO_RCPT_INVALID, /* DeviceNotRegistered: deactivate the token */
    EXPO_RCPT_ERROR,   /* another error (error/message say which) */
    EXPO_RCPT_MISSING, /* no receipt 24 h after sending: given up */
    EXPO_RCPT_RETRY,   /* MessageRateExceeded, and t->event is set: back off and resend it */
} expo_rcpt_status_t;

typedef void (*expo_receipt_fn)(const expo_ticket_info_t *t, expo_rcpt_status_t st,
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

/* Schedules n tickets due at due_s (unix seconds) in one script call. cb(status) with 0 or a
 * DB_E* code; cb may be NULL. */
void expo_receipts_schedule(expo_receipts_t *r, const expo_ticket_info_t *t, size_t n,
                            int64_t due_s, void (*cb)(int status, void *arg), void *arg);
/* Pending checks: count and the oldest due time (0 when none). */
void expo_receipts_pending(expo_receipts_t *r,
                           void (*cb)(int status, long long count, int64_t oldest_due_s, void *arg),
                           void *arg);

#endif
