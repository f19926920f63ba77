/* trace.h - the delivery trace: what happened to each job's notifications, kept in Redis so
 * `heraldctl trace` answers without grepping logs (DESIGN.md "Delivery trace").
 *
 * Layout (prefix p, keys from db/keys.h): p trace:j:<jobId> LIST of JSON records (at most
 * trace.max_records, TTL trace.ttl_s); the user's index p trace:u:{<userId>} and, per device of the
 * user, p trace:d:<n>:{<userId>}:<deviceId>: ZSETs of jobIds scored by unix ms of their last
 * record, every job of the last ttl_s seconds up to DISP_TRACE_INDEX_MAX (the newest), so that a
 * privacy delete (pipeline/privacy.h) finds every trace it has to remove. Each record:
 * {"ts","event","jobId","userId","deviceId"?, ...}.
 * Writes are fire-and-forget: the records of one loop turn (up to 128) go in one script call,
 * pipelined with everything else; the same facts go to the log as JSON lines at once. */
#ifndef HERALD_DISPATCHER_TRACE_H
#define HERALD_DISPATCHER_TRACE_H

#include "core/log.h"

#include <stddef.h>

#define DISP_TRACE_INDEX_MAX 1000 /* job ids per user or device index */

typedef struct disp_trace disp_trace_t;
struct db;

/* new: db borrowed; ttl_s == 0 disables writing to Redis (logs stay). Destroy after db_destroy
 * (which runs a pending flush). */
disp_trace_t *disp_trace_create(struct db *db, const char *prefix, long ttl_s, long max_records);
void disp_trace_destroy(disp_trace_t *t);

/* Appends one record: event name plus extra fields (the log_kv_t vocabulary of core/log.h; 't'
 * values are redacted tokens). device_id may be NULL. */
void disp_trace_add(disp_trace_t *t, const char *job_id, const char *user_id, const char *device_id,
                    const char *event, const log_kv_t *kv, size_t n);

/* ---- reading (heraldctl) ----
 * status is 0, or a negative DB_E* code (db/db.h) when Redis failed, answered an error or did not
 * answer in time. Strings are borrowed for the callback. An id longer than any the pipeline
 * records (128 bytes) has no trace: n == 0. Reads work whatever ttl_s says. */
typedef void (*disp_trace_records_cb)(int status, const char *const *recs, const size_t *lens,
                                      size_t n, void *arg);
typedef void (*disp_trace_ids_cb)(int status, const char *const *ids, size_t n, void *arg);

/* Every record of one job (or batch) id, oldest first (each a JSON object as written). */
void disp_trace_job(disp_trace_t *t, const char *job_id, disp_trace_records_cb cb, void *arg);
/* The ids of the most recent jobs (newest first, at most limit) of a user, or of one of the
 * user's devices when device_id is not NULL (device ids are only unique per user). */
void disp_trace_recent(disp_trace_t *t, const char *user_id, const char *device_id, long limit,
                       disp_trace_ids_cb cb, void *arg);
#define TRACE(t, job, user, device, event, ...)                                                    \
    do {                                                                                           \
        const log_kv_t trace_kv_[] = {__VA_ARGS__};                                                \
        disp_trace_add((t), (job), (user), (device), (event), trace_kv_,                           \
                       sizeof trace_kv_ / sizeof trace_kv_[0]);                                    \
    } while (0)

#endif
