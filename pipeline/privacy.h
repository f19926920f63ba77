/* privacy.h - privacy deletes: a device's (or a whole user's) token records and everything herald
 * wrote about them in Redis, for the API's `DELETE ?purge=true` and `heraldctl tokens delete`.
 *
 * Beside the records and their owner and expiry index entries, herald writes per delivery its
 * ledger entry (p led:<n>:{<user>}:<event>: each device's claim state, outcome and trace records,
 * the records naming user, device and the token's last characters), the job index (p job:<job>),
 * the user's and device's job indexes (p trace:u:{<user>}, p trace:d:<n>:{<user>}:<device>) and
 * receipt checks (p rq:{<b>}:<id>, tuples holding user, device and token). The trace indexes name
 * every job of the user (device) within trace.ttl_s, up to DISP_TRACE_INDEX_MAX
 * (pipeline/trace.h), and the entries name their receipt checks: one script walks them
 * (disp_privacy_purge; on Redis Cluster the user's slot first, then one call per other slot's
 * key), so a request costs one bounded call. What no index names (a trace that was off, jobs
 * past the cap) only a sweep of the keyspace finds (disp_privacy_sweep, for heraldctl, on every
 * master). docs/operations.md says what stays.
 *
 * Loop thread only; callbacks fire exactly once, never inside the starting call. */
#ifndef HERALD_PIPELINE_PRIVACY_H
#define HERALD_PIPELINE_PRIVACY_H

#include "tokens/store.h"

typedef struct disp_privacy disp_privacy_t;
struct db;

/* What one call deleted. */
typedef struct disp_privacy_counts {
    long records;   /* token records (with their owner keys and expiry entries) */
    long traces;    /* trace records removed from ledger entries */
    long marks;     /* claim states (dedup marks) removed from ledger entries */
    long tickets;   /* tickets removed from receipt checks */
    long keys;      /* other keys: job indexes, stale owner keys (sweep) */
    long jobs_left; /* purge: jobs the walked index still names (call again to go on) */
} disp_privacy_counts_t;

/* status is 0 or a negative DB_E* code (db/db.h); c is borrowed, NULL on failure. The sweep's
 * cursor is "0" when the walk is complete. */
typedef void (*disp_privacy_cb)(int status, const disp_privacy_counts_t *c, void *arg);
typedef void (*disp_privacy_sweep_cb)(int status, const disp_privacy_counts_t *c,
                                      const char *cursor, void *arg);

/* new: db borrowed (outlives the handle); prefix copied. */
disp_privacy_t *disp_privacy_create(struct db *db, const char *prefix);
void disp_privacy_destroy(disp_privacy_t *p);

/* Deletes the token record of device (or, device NULL, every record of the user) and walks up to
 * max_jobs jobs of the device's (user's) trace index in the same script: their trace records of
 * the device (user), dedup marks and receipt checks. jobs_left > 0: call again for the rest.
 * user and device are valid ids (tok_valid_user, tok_valid_device). */
void disp_privacy_purge(disp_privacy_t *p, const char *user, const char *device, long max_jobs,
                        disp_privacy_cb cb, void *arg);
/* One SCAN step (COUNT count) from cursor ("0" to start) over every key under the prefix (on Redis
 * Cluster one master after the other, tokens/lifecycle.h tok_lc_cursor_node): deletes
 * the user's (device's) dedup marks and job indexes, removes its records from trace lists, and
 * deletes the receipt checks and owner keys that name it. An operations tool's backstop: it reads
 * the whole keyspace, trace lists included. */
void disp_privacy_sweep(disp_privacy_t *p, const char *user, const char *device, const char *cursor,
                        long count, disp_privacy_sweep_cb cb, void *arg);

/* The API's purge (tok_api_opts_t.purge; privacy is a disp_privacy_t): disp_privacy_purge of one
 * device with max_jobs = DISP_TRACE_INDEX_MAX, so one call reaches every job the index can hold.
 * cb gets TOK_OK, TOK_ENOTFOUND when there was no record (its trace is removed all the same) or
 * TOK_EUNAVAIL. */
void disp_privacy_api_purge(void *privacy, const char *user, const char *device, tok_done_cb cb,
                            void *arg);

#endif
