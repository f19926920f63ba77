/* trace.h - the delivery trace: what happened to each job's notifications, kept in Redis so
 * `heraldctl trace` answers without grepping logs (DESIGN.md "Delivery trace").
 *
 * Layout (prefix p): p trace:<jobId> LIST of JSON records (at most trace.max_records, TTL
 * trace.ttl_s); p trace:user:<userId> and p trace:device:<deviceId> ZSETs of recent jobIds scored
 * by unix ms (the last 100 each). Each record: {"ts","event","jobId","userId","deviceId"?, ...}.
 * Writes are fire-and-forget: the records of one loop turn (up to 128) go in one script call,
 * pipelined with everything else; the same facts go to the log as JSON lines at once. */
#ifndef HERALD_DISPATCHER_TRACE_H
#define HERALD_DISPATCHER_TRACE_H

#include "core/log.h"

#include <stddef.h>

typedef struct disp_trace disp_trace_t;
struct db;

/* new: db borrowed; ttl_s == 0 disables the Redis side (logs stay). Destroy after db_destroy
 * (which runs a pending flush). */
disp_trace_t *disp_trace_create(struct db *db, const char *prefix, long ttl_s, long max_records);
void disp_trace_destroy(disp_trace_t *t);

/* Appends one record: event name plus extra fields (the log_kv_t vocabulary of core/log.h; 't'
 * values are redacted tokens). device_id may be NULL. */
void disp_trace_add(disp_trace_t *t, const char *job_id, const char *user_id, const char *device_id,
                    const char *event, const log_kv_t *kv, size_t n);

#define TRACE(t, job, user, device, event, ...)                                                    \
    do {                                                                                           \
        const log_kv_t trace_kv_[] = {__VA_ARGS__};                                                \
        disp_trace_add((t), (job), (user), (device), (event), trace_kv_,                           \
                       sizeof trace_kv_ / sizeof trace_kv_[0]);                                    \
    } while (0)

#endif
