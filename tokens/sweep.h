/* sweep.h - the token lifecycle job inside herald: every tokens.sweep_interval_s one instance
 * (a Redis lock, SET NX PX with a random token, released by compare-and-delete) walks the store
 * in bounded chunks, one Redis round trip per loop turn:
 *   1. SCAN every device hash: count active/inactive/expired records (gauge herald_tokens{state})
 *      and remove inactive records older than tokens.inactive_retention_days;
 *   2. remove every record whose expiresAt has passed, from the expiry index.
 * Both use tokens/lifecycle.h, the scripts `heraldctl tokens sweep|cleanup` use, so the owner
 * and expiry indexes stay consistent and concurrent sweepers never double-count.
 *
 * Metrics: herald_tokens{state}, herald_tokens_swept_total{kind=expired|inactive|stale},
 * herald_tokens_sweep_runs_total{result=done|locked|error},
 * herald_tokens_sweep_last_success_timestamp_seconds.
 *
 * Loop affinity: the given loop. Destroy it before the db. */
#ifndef HERALD_TOKENS_SWEEP_H
#define HERALD_TOKENS_SWEEP_H

#include "core/metrics.h"

#include <stdbool.h>
#include <uv.h>

struct db;
typedef struct tok_sweep tok_sweep_t;

typedef struct tok_sweep_opts {
    const char *prefix;           /* Redis key prefix (redis.prefix), copied */
    long interval_s;              /* tokens.sweep_interval_s; 0: no timer */
    long inactive_retention_days; /* tokens.inactive_retention_days */
} tok_sweep_opts_t;

/* new: free with tok_sweep_destroy. loop, db and reg are borrowed (reg may be NULL), o is read
 * during the call. With interval_s = 0 no timer runs (tok_sweep_run_now still does a pass). The
 * first pass starts after a random delay of up to one minute (or the interval when shorter). */
tok_sweep_t *tok_sweep_create(uv_loop_t *loop, struct db *db, const tok_sweep_opts_t *o,
                              metric_reg_t *reg);
/* Stops the timer, abandons a pass in progress (its lock is released) and frees once the last
 * callback has come back. Accepts NULL. The db must still exist. */
void tok_sweep_destroy(tok_sweep_t *s);

/* Starts a pass now unless one is running. */
void tok_sweep_run_now(tok_sweep_t *s);

typedef struct tok_sweep_stats {
    long passes;     /* passes that held the lock and finished */
    long locked_out; /* passes skipped because another instance held the lock, or stopped when a
                        refresh found it held by another (expired, or lost with a master) */
    long errors;     /* passes abandoned on a Redis failure */
    long expired, inactive, stale;                 /* records (index entries) removed, all passes */
    long active_seen, inactive_seen, expired_seen; /* last scan */
    bool running;
} tok_sweep_stats_t;
void tok_sweep_get_stats(const tok_sweep_t *s, tok_sweep_stats_t *out);

/* Called after every pass attempt (done, locked out or failed); for tests and logs. */
void tok_sweep_on_pass(tok_sweep_t *s, void (*cb)(void *arg), void *arg);

#endif
