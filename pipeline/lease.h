/* lease.h - this herald instance's identity and liveness, and its view of which instances are
 * gone (DESIGN.md "Owner leases"). Each process start gets a random id; its dedup claims name it
 * as their owner (pipeline/claims.h). One ZSET <p>instances (db/keys.h key_instances) holds every
 * instance's lease expiry; each instance renews its own every lease_ms / 3 with one script call
 * that also answers the instances whose lease lapsed. A claim whose owner is among those is taken
 * over at once; a claim of a live owner, or of one this instance does not know, is waited for.
 * disp_lease_stop (clean shutdown) lets the lease lapse at once, so others need not wait for it.
 *
 * Entries outlive their instance by horizon_ms (give it dedup.pending_ttl_s plus lease_ms: by then
 * every claim the instance held has expired), then they are removed.
 *
 * Loop-thread only. Callbacks fire exactly once, never from inside the call. */
#ifndef HERALD_PIPELINE_LEASE_H
#define HERALD_PIPELINE_LEASE_H

#include "core/metrics.h"

#include <stddef.h>
#include <uv.h>

#define DISP_LEASE_ID_LEN 16   /* hex characters of an instance id */
#define DISP_LEASE_DEAD_MAX 64 /* lapsed instances kept in the view (the most recent) */

typedef struct disp_lease disp_lease_t;

typedef struct disp_lease_opts {
    const char *prefix;    /* redis.prefix, copied */
    long lease_ms;         /* dedup.lease_ms: the lease lapses this long after its last renewal */
    long horizon_ms;       /* a lapsed instance's entry is removed this much later */
    metric_reg_t *metrics; /* borrowed; may be NULL */
} disp_lease_opts_t;

struct db;
/* new: free with disp_lease_destroy. db borrowed (must outlive the lease's calls). The id is
 * chosen now; nothing is written before disp_lease_start. */
disp_lease_t *disp_lease_create(uv_loop_t *loop, struct db *db, const disp_lease_opts_t *o);
/* Takes the lease now and renews it every lease_ms / 3 until disp_lease_stop. */
void disp_lease_start(disp_lease_t *l);
/* Stops renewing and lets the lease lapse now (others take this instance's claims over at once);
 * cb(arg) runs once the write landed or failed (cb may be NULL). Call at most once; run the loop
 * afterwards so the timer closes. */
void disp_lease_stop(disp_lease_t *l, void (*cb)(void *arg), void *arg);
/* Accepts NULL. After disp_lease_stop's cb (or when never started). */
void disp_lease_destroy(disp_lease_t *l);

/* This instance's id (borrowed, for the lease's lifetime). */
const char *disp_lease_id(const disp_lease_t *l);
/* The instances whose lease lapsed, as of the last renewal: *ids borrowed until the next one;
 * never this instance. */
size_t disp_lease_dead(const disp_lease_t *l, const char *const **ids);

#endif
