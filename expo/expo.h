/* expo.h - the Expo push client: message model and JSON, batching, rate limiting, retries.
 *
 * Callers hand single messages to expo_send(); the client groups messages from all callers into
 * requests of at most 100 recipients per Expo project (a loop turn's at once when none is in
 * flight, else after a short linger), keeps at most max_concurrent requests in flight, holds each
 * project under rate_per_sec, retries what can be retried, and reports every message's outcome
 * exactly once through its callback.
 *
 * Loop affinity: a client lives on one libuv loop; every function here must be called from that
 * loop's thread, and every callback runs on it. */
#ifndef HERALD_EXPO_EXPO_H
#define HERALD_EXPO_EXPO_H

#include "core/buf.h"
#include "core/clock.h"
#include "core/metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Module codes (negative), see expo_strerror(). */
enum {
    EXPO_EOK = 0,
    EXPO_EINVAL = -1,  /* the message is malformed (no `to`, data not an object, ...) */
    EXPO_ETOOBIG = -2, /* the encoded message exceeds EXPO_MAX_PAYLOAD */
    EXPO_ECONF = -3,   /* bad options */
};
const char *expo_strerror(int code);

#define EXPO_MAX_PAYLOAD 4096     /* bytes of one encoded message */
#define EXPO_MAX_BATCH 100        /* recipients per send request */
#define EXPO_MAX_RECEIPT_IDS 1000 /* ids per getReceipts request */
#define EXPO_GZIP_MIN 1024        /* request bodies larger than this are gzip-compressed */
#define EXPO_UNSET (-1)

/* One notification to one recipient. All strings are borrowed for the duration of the call
 * that takes the message (expo_msg_encode, expo_send): the client copies what it keeps.
 * NULL strings and EXPO_UNSET numbers are left out of the JSON. Initialise with expo_msg_init. */
typedef struct expo_msg {
    const char *to; /* required: the Expo push token */
    const char *title;
    const char *body;
    const char *subtitle;
    const char *data;     /* raw JSON object text ("{...}") or NULL */
    const char *sound;    /* "default", a file name, or NULL */
    long badge;           /* >= 0, or EXPO_UNSET */
    long ttl;             /* seconds >= 0, or EXPO_UNSET */
    int64_t expiration;   /* unix seconds > 0, or EXPO_UNSET */
    const char *priority; /* "default" | "normal" | "high" or NULL */
    const char *channel_id;
    const char *category_id;
    bool mutable_content;           /* iOS: run the app's notification service extension */
    bool content_available;         /* iOS: _contentAvailable, wake the app in the background */
    const char *interruption_level; /* iOS: "active" | "critical" | "passive" | "time-sensitive" */
    const char *rich_image; /* richContent.image: an image URL shown with the notification */
    const char *icon;       /* Android: a drawable resource name */
    const char *tag;        /* Android: a notification with the same tag replaces it */
    const char *collapse_id;
    const char *project; /* Expo project ("@owner/slug") if known; never sent, groups requests */
} expo_msg_t;

void expo_msg_init(expo_msg_t *m);
/* Appends the compact JSON object for m to out. Returns 0, EXPO_EINVAL (out unchanged) or
 * EXPO_ETOOBIG (the message is longer than EXPO_MAX_PAYLOAD; out unchanged). */
int expo_msg_encode(const expo_msg_t *m, buf_t *out);
/* The length in bytes of m's compact JSON object, as expo_msg_encode would write it (whether or
 * not it is valid or within EXPO_MAX_PAYLOAD): for checking a message's budget ahead of time. */
size_t expo_msg_size(const expo_msg_t *m);

typedef enum {
    EXPO_OK = 0,        /* Expo accepted it: ticket_id is set */
    EXPO_INVALID_TOKEN, /* DeviceNotRegistered: deactivate the token */
    EXPO_FAILED,        /* permanent failure; error/message say why */
} expo_outcome_t;

/* A message's outcome; every pointer is borrowed, valid only inside the callback. */
typedef struct expo_result {
    expo_outcome_t outcome;
    const char *token;     /* the message's `to` */
    const char *project;   /* the project it was sent under ("" when unknown) */
    const char *ticket_id; /* EXPO_OK only, else NULL */
    const char *error;     /* NULL for EXPO_OK; a ticket details.error ("DeviceNotRegistered",
                              "MessageTooBig", "InvalidCredentials", ...), a request-level code
                              ("UNAUTHORIZED", "HTTP_400", ...), "RetriesExhausted" or "Shutdown" */
    const char *message;   /* a human sentence (Expo's message when it gave one), or NULL */
    unsigned attempts;     /* requests that carried this message (0 for local failures) */
    bool ambiguous;        /* an earlier attempt failed in a way that may have delivered it */
} expo_result_t;

typedef void (*expo_result_cb)(const expo_result_t *res, void *arg);

/* Shared (cross-instance) send budget. acquire() asks for `want` sends for `project` now and calls
 * done exactly once, never inside acquire, with the number granted (0..want) and, when fewer than
 * want were granted, the milliseconds until the rest would fit (else 0). The budget counts a grant
 * as sent when it is made: the client sends it at once and forfeits what it cannot send.
 * granted < 0 means the budget is unavailable (Redis down): the client then falls back to its
 * local limiter. */
typedef void (*expo_grant_cb)(long granted, long retry_ms, void *ctx);
typedef struct expo_rate_hook {
    void (*acquire)(void *arg, const char *project, long want, expo_grant_cb done, void *ctx);
    void *arg;
} expo_rate_hook_t;

typedef struct expo_transport expo_transport_t;

/* The Expo client's options. Every field is required (a zero is taken as given, and
 * expo_client_create refuses values out of range); herald fills them from the configuration in
 * one place (daemon/options.c), whose table holds the defaults. */
typedef struct expo_opts {
    const char *url;          /* base URL (expo.url) */
    const char *access_token; /* bearer token or NULL/"" */
    long linger_ms;           /* while requests are out, wait this long for a batch to fill */
    long max_concurrent;      /* requests in flight (expo.max_concurrent) */
    long rate_per_sec;        /* per project in any EXPO_RATE_WINDOW_MS; 0 = unlimited */
    long max_attempts;        /* requests per message before giving up (expo.max_attempts) */
    long max_retry_age_s;     /* give up retrying this long after expo_send */
    long backoff_base_ms;     /* expo.backoff_base_ms */
    long backoff_cap_ms;      /* expo.backoff_cap_ms */
    long timeout_ms;          /* per request (expo.timeout_ms) */
    bool http2;               /* offer h2 over TLS (expo.http2) */
    const clk_t *clock;       /* borrowed; NULL: the system clock */
    const expo_rate_hook_t *rate_hook; /* borrowed; NULL: local sliding window only */
    expo_transport_t *transport;       /* takes; NULL: the libcurl transport on the loop */
    uint64_t (*rnd)(void);             /* jitter source; NULL: rand_u64 */
} expo_opts_t;

/* The send-rate limiter's window: rate_per_sec sends in any window this long (5 ms of slack for
 * timer jitter, so a sliding-window server never sees rate + 1 in its second). */
#define EXPO_RATE_WINDOW_MS 1005

typedef struct expo_client expo_client_t;

/* new: free with expo_client_destroy. metrics borrowed (may be NULL). NULL on bad options. */
expo_client_t *expo_client_create(uv_loop_t *loop, const expo_opts_t *opts, metric_reg_t *metrics,
                                  char *err, size_t errlen);
/* Fails every message not yet finished with EXPO_FAILED "Shutdown" (callbacks run inside this
 * call), cancels requests and closes handles. Accepts NULL. Run the loop afterwards so libuv can
 * finish closing. */
void expo_client_destroy(expo_client_t *c);

/* Queues one message (encoded and copied at once). cb fires exactly once, never inside this call.
 * A message that fails locally (EXPO_EINVAL, EXPO_ETOOBIG) gets EXPO_FAILED with error
 * "MessageTooBig" or "InvalidMessage" without any request. */
void expo_send(expo_client_t *c, const expo_msg_t *m, expo_result_cb cb, void *arg);

/* Messages accepted by expo_send whose callback has not run yet. */
size_t expo_client_pending(const expo_client_t *c);
/* Records that `token` belongs to `project` (as learned from Expo or configuration), so later
 * messages to it are grouped with that project. Strings copied. */
void expo_client_set_project(expo_client_t *c, const char *token, const char *project);

#endif
