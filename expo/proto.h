/* proto.h - the Expo wire protocol without I/O: reply parsing and classification, receipt parsing,
 * gzip, and the sliding-window send limiter. Pure functions over bytes, exposed for unit tests and
 * fuzzing. */
#ifndef HERALD_EXPO_PROTO_H
#define HERALD_EXPO_PROTO_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bodies larger than this are not parsed (a reply for 100 tickets is ~10 KiB; 1000 receipts
 * ~150 KiB). */
#define EXPO_MAX_REPLY (4u << 20)

/* What to do with a whole send request after its reply. */
typedef enum {
    EXPO_REPLY_TICKETS = 0, /* one ticket per message, in order */
    EXPO_REPLY_RETRY,       /* retry the whole request later (429, 5xx, protocol errors) */
    EXPO_REPLY_FAIL,        /* fail every message at once (400, UNAUTHORIZED, ...) */
    EXPO_REPLY_SPLIT,       /* PUSH_TOO_MANY_EXPERIENCE_IDS: resend per project */
} expo_reply_kind_t;

/* What to do with one message after its ticket (or receipt). */
typedef enum {
    EXPO_TK_OK = 0,
    EXPO_TK_INVALID, /* DeviceNotRegistered */
    EXPO_TK_RETRY,   /* MessageRateExceeded: that message alone, with backoff */
    EXPO_TK_FAIL,    /* any other error */
    EXPO_TK_DOUBT,   /* a malformed ticket in a usable reply: the server may have accepted that
                        message; resend it alone, marked ambiguous (never from receipts) */
} expo_tk_kind_t;

typedef struct expo_ticket {
    expo_tk_kind_t kind;
    char *id;      /* ok tickets */
    char *error;   /* details.error, or "UnknownError"; "ProtocolError" for EXPO_TK_DOUBT */
    char *message; /* may be NULL */
} expo_ticket_t;

typedef struct expo_split {
    char *project;
    char **tokens;
    size_t ntokens;
} expo_split_t;

typedef struct expo_reply {
    expo_reply_kind_t kind;
    char *code; /* request-level code ("TOO_MANY_REQUESTS", "HTTP_502", "BadJson", ...) or NULL */
    char *message;          /* request-level message or NULL */
    bool credential;        /* UNAUTHORIZED or an invalid_token reply */
    bool ambiguous;         /* the server may have accepted the messages (504, unreadable 2xx) */
    expo_ticket_t *tickets; /* EXPO_REPLY_TICKETS: exactly nexpected of them, in order */
    size_t ntickets;
    expo_split_t *split; /* EXPO_REPLY_SPLIT */
    size_t nsplit;
    char *ids_; /* private: the one-pass reader's ticket ids, back to back (one allocation) */
} expo_reply_t;

/* Parses a send reply for a request of nexpected messages. Never fails: unusable input gives
 * EXPO_REPLY_RETRY (2xx/5xx/429) or EXPO_REPLY_FAIL (other 4xx) with a code. A 2xx reply whose
 * ticket array has the expected length is EXPO_REPLY_TICKETS even when some tickets are
 * malformed: those are EXPO_TK_DOUBT, the others keep their outcome. A length mismatch is a
 * whole-request protocol error (no ticket can be matched to its message safely). out is new:
 * free its contents with expo_reply_cleanup. */
void expo_reply_parse(long http_status, const char *body, size_t len, size_t nexpected,
                      expo_reply_t *out);
void expo_reply_cleanup(expo_reply_t *r);
/* expo_reply_parse reads the common reply (2xx, {"data":[...]} of exactly nexpected
 * {"status":"ok","id":"..."} tickets, strings of printable ASCII without escapes) in one pass
 * without building a tree; anything else goes to this general path (a jansson tree). Exposed so
 * the unit tests and the fuzz target check that both read every input alike. */
void expo_reply_parse_tree(long http_status, const char *body, size_t len, size_t nexpected,
                           expo_reply_t *out);
/* Whether two parsed replies say the same (kinds, codes, tickets, split), for those checks. */
bool expo_reply_equal(const expo_reply_t *a, const expo_reply_t *b);

/* Ticket/receipt details.error -> what to do. */
expo_tk_kind_t expo_classify_error(const char *details_error);
/* Whether a ticket or receipt details.error says our push credentials are wrong
 * (InvalidCredentials, MismatchSenderId): a configuration problem to alert on, not the token's. */
bool expo_credential_error(const char *details_error);
/* Request-level errors[].code and HTTP status -> what to do. */
expo_reply_kind_t expo_classify_request(long http_status, const char *code);

typedef struct expo_receipt {
    char *id;
    expo_tk_kind_t kind; /* OK, INVALID (DeviceNotRegistered), RETRY (MessageRateExceeded),
                            FAIL (other error) */
    char *error;
    char *message;
} expo_receipt_t;

/* Parses a getReceipts reply into *out (new array, free with expo_receipts_free). Returns 0, or
 * -1 with a reason in err when the reply is not a usable receipts map (the request failed). */
int expo_receipts_parse(long http_status, const char *body, size_t len, expo_receipt_t **out,
                        size_t *n, char *err, size_t errlen);
void expo_receipts_free(expo_receipt_t *r, size_t n);

/* gzip (RFC 1952) of in appended to out. Returns 0 or -1. */
int expo_gzip(const void *in, size_t len, buf_t *out);
/* The same with one deflate stream kept for every call (reset, not set up again: its ~270 KiB of
 * state is allocated once). new: free with expo_gzip_destroy (accepts NULL). */
typedef struct expo_gzip expo_gzip_t;
expo_gzip_t *expo_gzip_create(void);
void expo_gzip_destroy(expo_gzip_t *z);
int expo_gzip_run(expo_gzip_t *z, const void *in, size_t len, buf_t *out);
/* Inflates gzip input into out, refusing more than max output bytes. Returns 0 or -1. */
int expo_gunzip(const void *in, size_t len, size_t max, buf_t *out);

/* The send-rate limiter: at most `rate` messages in any window of `span_ms` (a log of recent
 * sends). A token bucket with burst B admits rate + B in some one-second window, which Expo (and
 * the simulator's sliding second) answer with 429; this never does. span_ms slightly above 1000
 * absorbs delivery jitter at a cost of span/1000 in throughput. rate 0 = unlimited. */
typedef struct expo_window {
    long rate;
    uint64_t span_ms;
    struct expo_window_ev {
        uint64_t t;
        long n;
    } * ev;
    size_t cap, head, len;
    long sum;
} expo_window_t;

void expo_window_init(expo_window_t *w, long rate, uint64_t span_ms);
void expo_window_cleanup(expo_window_t *w);
/* Takes n sends when they fit and returns 0; otherwise takes nothing and returns the
 * milliseconds until they fit (>= 1). n above rate never fits: callers cap n at rate. */
uint64_t expo_window_take(expo_window_t *w, long n, uint64_t now_ms);

/* The delay before retry number `attempt` (1 = the first retry): full jitter over
 * min(cap, base * 2^(attempt-1)), raised to Retry-After when the server sent one. */
uint64_t expo_retry_delay_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms,
                             long retry_after_s, uint64_t rnd);

#endif
