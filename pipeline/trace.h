/* trace.h - the delivery trace: what happened to each job's notifications, kept in Redis so
 * `heraldctl trace` answers without grepping logs (DESIGN.md "Delivery trace").
 *
 * Layout (prefix p, keys from db/keys.h): the records are fields t:<seq> of the event's ledger
 * entry p led:<n>:{<userId>}:<event> (at most trace.max_records per entry; the entry's TTL is at
 * least trace.ttl_s); the job index p job:<jobId>, a SET of "<userId>\x1f<event>", names the
 * entries of a job; the user's index p trace:u:{<userId>} and, per device of the user,
 * p trace:d:<n>:{<userId>}:<deviceId>: ZSETs of jobIds scored by unix ms, at most
 * DISP_TRACE_INDEX_MAX (the newest), so that a privacy delete (pipeline/privacy.h) finds every
 * entry it has to scrub. Each record: {"ts","event","jobId","userId","deviceId"?, ...}.
 * Writes are fire-and-forget: the records of one loop turn (up to 128) go in one script call (on
 * Redis Cluster one per hash slot), one HSET per entry, pipelined with everything else; a record
 * the turn's claim or done mark of its entry can carry rides with it (disp_trace_ride). The same
 * facts go to the log at debug level. */
#ifndef HERALD_DISPATCHER_TRACE_H
#define HERALD_DISPATCHER_TRACE_H

#include "core/buf.h"
#include "core/log.h"

#include <stdbool.h>

#include <stddef.h>

#define DISP_TRACE_INDEX_MAX 1000 /* job ids per user or device index */

typedef struct disp_trace disp_trace_t;
struct db;

/* new: db borrowed; ttl_s (the indexes' TTL) == 0 disables writing to Redis (logs stay). An entry
 * the trace creates gets max(entry_ttl_s, ttl_s) (the ledger's TTL: dedup.done_ttl_s), set once.
 * Destroy after db_destroy (which runs a pending flush). */
disp_trace_t *disp_trace_create(struct db *db, const char *prefix, long ttl_s, long entry_ttl_s,
                                long max_records);
void disp_trace_destroy(disp_trace_t *t);

/* Whose record: the job id, the user, the event's idempotency key ("<jobId>:<STATUS>", which
 * with the user names the ledger entry) and the device (NULL: the event's own record). A record
 * without a user or event key goes to the log only. All borrowed during the call. */
typedef struct disp_trace_ref {
    const char *job;
    const char *user;
    const char *event;
    const char *device;
} disp_trace_ref_t;

/* Appends one record: event name plus extra fields (the log_kv_t vocabulary of core/log.h; 't'
 * values are redacted tokens). The record named "received" opens its event: it enters the job in
 * the user's index and the entry in the job's. */
void disp_trace_add(disp_trace_t *t, const disp_trace_ref_t *ref, const char *event,
                    const log_kv_t *kv, size_t n);

/* The same, for a record that rides with the entry's own ledger write (pipeline/claims.h: the
 * claim, the done mark), so the entry takes one write: the record's field and JSON are appended
 * to ride, each NUL-terminated, for that write; the indexes it names are still written by the
 * trace. Returns false, ride untouched, when Redis does not keep the record (it is logged). */
bool disp_trace_ride(disp_trace_t *t, const disp_trace_ref_t *ref, const char *event,
                     const log_kv_t *kv, size_t n, buf_t *ride);

/* Queues n records that rode (ride's contents from disp_trace_ride, back to back) for the trace's
 * own write after all: their entry's write never came (the event ended before its claim). Their
 * indexes were queued when they were made. */
void disp_trace_put(disp_trace_t *t, const disp_trace_ref_t *ref, const char *recs, size_t n);

/* ---- reading (heraldctl) ----
 * status is 0, or a negative DB_E* code (db/db.h) when Redis failed, answered an error or did not
 * answer in time. Strings are borrowed for the callback. An id longer than any the pipeline
 * records (128 bytes) has no trace: n == 0. Reads work whatever ttl_s says. */
typedef void (*disp_trace_records_cb)(int status, const char *const *recs, const size_t *lens,
                                      size_t n, void *arg);
typedef void (*disp_trace_ids_cb)(int status, const char *const *ids, size_t n, void *arg);

/* Every record of one job (or batch) id, of every user and status, oldest first (each a JSON
 * object as written). */
void disp_trace_job(disp_trace_t *t, const char *job_id, disp_trace_records_cb cb, void *arg);
/* The ids of the most recent jobs (newest first, at most limit) of a user, or of one of the
 * user's devices when device_id is not NULL (device ids are only unique per user). */
void disp_trace_recent(disp_trace_t *t, const char *user_id, const char *device_id, long limit,
                       disp_trace_ids_cb cb, void *arg);
#define TRACE(t, job, user, key, device, event, ...)                                               \
    do {                                                                                           \
        const log_kv_t trace_kv_[] = {__VA_ARGS__};                                                \
        const disp_trace_ref_t trace_ref_ = {(job), (user), (key), (device)};                      \
        disp_trace_add((t), &trace_ref_, (event), trace_kv_,                                       \
                       sizeof trace_kv_ / sizeof trace_kv_[0]);                                    \
    } while (0)
/* TRACE for a record that rides (disp_trace_ride): ok tells whether it went to ride. */
#define TRACE_RIDE(ok, t, ride, job, user, key, device, event, ...)                                \
    do {                                                                                           \
        const log_kv_t trace_kv_[] = {__VA_ARGS__};                                                \
        const disp_trace_ref_t trace_ref_ = {(job), (user), (key), (device)};                      \
        (ok) = disp_trace_ride((t), &trace_ref_, (event), trace_kv_,                               \
                               sizeof trace_kv_ / sizeof trace_kv_[0], (ride));                    \
    } while (0)

#endif
