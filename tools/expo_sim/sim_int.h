/* sim_int.h - the simulator's state shared by sim.c (routing, options, faults, stats) and
 * sim_push.c (send and getReceipts). Private to tools/expo_sim. */
#ifndef HERALD_TESTS_EXPO_SIM_INT_H
#define HERALD_TESTS_EXPO_SIM_INT_H

#include "tools/expo_sim/sim.h"
#include "tools/expo_sim/sim_json.h"

#include <jansson.h>
#include <pthread.h>

/* What a token's contents ask for; see the table in sim_push.c and README.md. An error
 * behaviour also names the error shape (ERR_*, with the InvalidProviderToken variant). */
enum sim_behaviour {
    BEH_OK = 0,
    BEH_TICKET_ERROR,  /* an error ticket of the given shape */
    BEH_RECEIPT_ERROR, /* an ok ticket, then an error receipt of the given shape */
    BEH_NO_RECEIPT,
    BEH_RATE_EXCEEDED_ONCE,
    BEH_LATE_RATE_EXCEEDED_ONCE, /* ok ticket; MessageRateExceeded receipt the first time only */
};

/* Receipt kinds kept in the ring. */
enum { RCPT_OK = 1, RCPT_ERROR, RCPT_NEVER };

typedef struct sim_receipt {
    uint64_t seq; /* 0 = empty slot */
    int64_t ready_ms;
    uint8_t kind;
    uint8_t shape; /* RCPT_ERROR: the error shape (SHAPE_*) */
    char *token;   /* owned; only for DeviceNotRegistered receipts */
} sim_receipt_t;

typedef struct sim_tok {
    char *token; /* owned; NULL = empty slot */
    uint64_t delivered;
    bool once_seen;
} sim_tok_t;

typedef struct sim_project {
    char *pattern, *name; /* owned; a token containing pattern belongs to name */
} sim_project_t;

#define SIM_ERRKINDS 8
typedef struct sim_stats {
    uint64_t requests, send_requests, receipt_requests, other_requests;
    uint64_t messages_accepted, tickets_ok, tickets_error;
    uint64_t ticket_errors[SIM_ERRKINDS];
    uint64_t status_2xx, status_4xx, status_5xx;
    uint64_t http_429, rate_limited, injected_429, injected_5xx, drops, drops_after, malformed;
    uint64_t injected_500, injected_invalid_token, injected_200_errors, injected_504;
    uint64_t malformed_tickets;
    uint64_t receipts_served, receipt_ids_asked, gzip_requests, bad_requests;
    uint64_t tokens_untracked; /* deliveries to tokens past token_capacity */
} sim_stats_t;

#define RATE_SLOTS 100 /* 10-ms slots of the sliding second */
#define RATE_LOG 1024  /* > 1001 milliseconds of the strict window */
typedef struct sim_rate {
    char *project; /* owned */
    int64_t slot_start[RATE_SLOTS];
    uint32_t slot_count[RATE_SLOTS];
    int64_t fixed_start;
    uint64_t fixed_count;
    /* strict: (ms, count) per millisecond that admitted something, oldest first; at most 1001
     * milliseconds are live at once */
    int64_t log_ms[RATE_LOG];
    uint32_t log_n[RATE_LOG];
    size_t log_head, log_len;
    uint64_t log_sum;
} sim_rate_t;

/* A push/send body read by sim_msgs.c: spans point into the request body. */
typedef struct sim_span {
    const char *p; /* NULL = absent */
    size_t n;
} sim_span_t;

/* Fields copied to the record, in this order (raw JSON values; objects compacted). */
enum {
    F_TITLE,
    F_BODY,
    F_SUBTITLE,
    F_COLLAPSE,
    F_PRIORITY,
    F_CHANNEL,
    F_DATA,
    F_SOUND,
    F_BADGE,
    F_TTL,
    F_CATEGORY,
    F_RICH,
    F_ICON,
    F_TAG,
    F_LEVEL,
    F_MUTABLE,
    F_AVAILABLE,
    F_NREC
};
extern const char *const sim_rec_names[F_NREC]; /* their member names (sim_msgs.c) */

typedef struct sim_msg {
    sim_span_t rec[F_NREC];
    sim_span_t to;  /* the "to" value */
    size_t payload; /* compact JSON length of the message without "to" */
} sim_msg_t;

typedef struct sim_rcpt {
    const char *tok; /* decoded token, into the body or b->owned */
    size_t len;
    const sim_msg_t *msg;
    int project; /* index into s->projects, -1 default project, -2 not a valid token */
} sim_rcpt_t;

typedef struct sim_batch {
    size_t nmsgs, nr, nowned; /* counters first: sim_batch_parse zeroes up to msgs */
    bool single;              /* one object with one "to" string: data is one ticket */
    sim_msg_t msgs[SIM_MAX_RECIPIENTS];
    sim_rcpt_t r[SIM_MAX_RECIPIENTS];
    char *owned[SIM_MAX_RECIPIENTS]; /* decoded tokens that had escapes */
} sim_batch_t;

struct sim {
    sim_opts_t o;
    uint64_t rng;
    uint64_t nonce; /* high half of every ticket id of this run */
    uint64_t next_seq;
    sim_receipt_t *receipts; /* ring of o.receipt_capacity */
    sim_tok_t *toks;         /* open addressing, tok_cap slots (power of two) */
    size_t tok_cap, tok_count;
    sim_project_t *projects;
    size_t nprojects;
    sim_rate_t *rates;
    size_t nrates;
    sim_stats_t st;
    pthread_mutex_t rec_mu; /* guards rec */
    buf_t rec;
    buf_t scratch;     /* record lines built here before one locked append */
    sim_batch_t batch; /* the send request being handled (large: kept off the stack) */
};

extern const char *const sim_errnames[SIM_ERRKINDS];
enum {
    ERR_DEVICE_NOT_REGISTERED = 0,
    ERR_MESSAGE_TOO_BIG,
    ERR_MESSAGE_RATE_EXCEEDED,
    ERR_INVALID_CREDENTIALS,
    ERR_MISMATCH_SENDER_ID,
    ERR_DEVELOPER_ERROR,
    ERR_EXPO_ERROR,
    ERR_PROVIDER_ERROR,
};
/* Error shapes: one per details.error, plus InvalidCredentials carrying InvalidProviderToken. */
enum { SHAPE_PROVIDER_TOKEN = SIM_ERRKINDS, SIM_SHAPES };

/* sim_msgs.c: 0, or -1 after writing the 400 reply. Clean b with sim_batch_cleanup() either way. */
int sim_batch_parse(sim_batch_t *b, const char *body, size_t len, sim_resp_t *out);
void sim_batch_cleanup(sim_batch_t *b);

/* sim.c */
void sim_error_reply(sim_resp_t *out, int status, const char *code, const char *msg);
double sim_rand01(sim_t *s);
/* sim_push.c */
void sim_push_send(sim_t *s, const sim_req_t *req, const char *body, size_t len, sim_resp_t *out);
void sim_push_receipts(sim_t *s, const sim_req_t *req, json_t *root, sim_resp_t *out);
bool sim_token_valid(const char *t, size_t n);
sim_tok_t *sim_tok_get(sim_t *s, const char *token, size_t n);

#endif
