/* sim.h - the Expo push service simulator's logic, without HTTP: options, request validation,
 * tickets, receipts, behaviour tokens, fault decisions, stats and the record of accepted messages.
 * sim_main.c plugs it into libmicrohttpd; the unit test and the fuzz target call sim_handle()
 * directly with bytes. Not thread-safe except sim_record_take(): one thread calls sim_handle(). */
#ifndef HERALD_TESTS_EXPO_SIM_H
#define HERALD_TESTS_EXPO_SIM_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_MAX_RECIPIENTS 100
#define SIM_MAX_RECEIPT_IDS 1000
#define SIM_MAX_PAYLOAD 4096
#define SIM_DEFAULT_MAX_BODY (10u * 1024 * 1024)

typedef enum {
    SIM_RATE_SLIDING = 0, /* any 1-s span, in 10-ms slots (forgets after 990-1000 ms) */
    SIM_RATE_FIXED,       /* calendar seconds of the monotonic clock */
    SIM_RATE_STRICT,      /* a millisecond log: a notification counts for 1000 ms inclusive, so no
                             real second holds more than the limit (stricter than a bucket of
                             `limit` refilled at limit/s) */
} sim_rate_window_t;

typedef struct sim_opts {
    /* runtime-changeable (CLI and POST /control) */
    double fail_5xx, fail_429, drop, drop_after, malformed; /* probabilities 0..1 */
    double fail_500, fail_invalid_token, fail_200_errors, fail_504;
    double malformed_ticket; /* per ok ticket: answer it without its id (message accepted) */
    unsigned latency_ms;
    unsigned rate_limit;           /* notifications per second per project; 0 = unlimited */
    sim_rate_window_t rate_window; /* how "per second" is counted */
    unsigned receipt_delay_ms;
    unsigned retry_after_s; /* Retry-After on 429/503 replies; 0 = none */
    uint64_t seed;
    char access_token[256]; /* "" = no bearer required */
    /* start-up only */
    size_t max_body;           /* raw and decompressed body bound, bytes */
    size_t receipt_capacity;   /* receipts kept (oldest forgotten first) */
    size_t token_capacity;     /* distinct tokens tracked for stats and *Once behaviour */
    char default_project[128]; /* "@owner/slug" */
    char projects_file[512];   /* "" = every token in default_project */
    bool record;               /* keep accepted messages for sim_record_take() */
} sim_opts_t;

void sim_opts_defaults(sim_opts_t *o);
/* Sets one option by its CLI name without dashes ("fail-5xx", "rate-limit"...; '_' works as '-').
 * runtime_only: reject start-up-only names. Returns 0, or -1 with a sentence in err. */
int sim_opts_set(sim_opts_t *o, const char *name, const char *value, bool runtime_only, char *err,
                 size_t errlen);

typedef struct sim sim_t;

/* new: free with sim_destroy(). Loads opts->projects_file. NULL with err on failure. */
sim_t *sim_create(const sim_opts_t *opts, char *err, size_t errlen);
void sim_destroy(sim_t *s);

typedef struct sim_req {
    const char *method, *path;                          /* borrowed; path without query */
    const char *content_type, *content_encoding, *auth; /* header values or NULL */
    bool loopback;                                      /* client address is loopback */
    const char *body; /* borrowed, bodylen bytes (not NUL-terminated) */
    size_t bodylen;
    bool body_too_big; /* the adapter stopped reading past opts.max_body */
    int64_t mono_ms;   /* monotonic clock: receipts, rate windows */
    int64_t wall_ms;   /* unix time in ms: the record's ts */
} sim_req_t;

typedef enum { SIM_RESPOND = 0, SIM_DROP } sim_action_t;

typedef struct sim_resp {
    int status;
    const char *content_type; /* static string */
    buf_t body;
    sim_action_t action;
    unsigned delay_ms;      /* answer after this long (latency injection) */
    unsigned retry_after_s; /* 0 = no Retry-After header */
} sim_resp_t;

/* Handles one complete request; out must be zeroed or cleaned; caller cleans with
 * sim_resp_cleanup(). Never fails: every outcome is a status and a body. */
void sim_handle(sim_t *s, const sim_req_t *req, sim_resp_t *out);
void sim_resp_cleanup(sim_resp_t *r);

/* Moves the record lines collected so far (JSON lines) into out (appended); thread-safe. */
void sim_record_take(sim_t *s, buf_t *out);
/* Current option values (a copy); for /control replies and the adapter. */
void sim_get_opts(sim_t *s, sim_opts_t *out);

#endif
