/* replay.h - `heraldctl dlq replay`: re-publishes dead-lettered records to the topic named by
 * their herald-source-topic header. Blocking with bounded timeouts (a command-line tool's job, not
 * the daemon's): reads every DLQ topic (queue.dlq_topic, else "<topic>.dlq" for each of
 * queue.topics) from the offsets committed by the group "<group.id>-dlq-replay" and produces each
 * record to its source topic with its key:
 *   - an undecodable event: its value and original headers (herald-dlq-* and herald-source-*
 *     removed, herald-replayed-from added);
 *   - a notification that failed for good (header herald-dlq-device): the original event the
 *     record carries (its "event" member) with herald-replay-device: <device> and
 *     herald-replayed-from, so herald sends it to that device alone, once (its dedup mark is
 *     `failed` until then; pipeline/claims.h).
 * Records without a source topic, and failed notifications without their original event
 * (written by an older herald), are reported with the reason and not replayed. The DLQ offsets
 * are committed (skipped records included) only once every produced record was acknowledged. A
 * second run therefore replays only what came after; a failed run replays again (herald's dedup
 * suppresses duplicate notifications). */
#ifndef HERALD_QUEUE_REPLAY_H
#define HERALD_QUEUE_REPLAY_H

#include "config/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct queue_replay_report {
    long read;      /* DLQ records read */
    long replayed;  /* produced and acknowledged (dry run: would be) */
    long no_source; /* records without herald-source-topic: skipped (still committed) */
    long no_event;  /* failed notifications without the original event: skipped (committed) */
    long failed;    /* produce failures (nothing is committed then) */
} queue_replay_report_t;

/* One record read; strings borrowed for the callback. */
typedef struct queue_replay_rec {
    const char *dlq;
    int32_t partition;
    int64_t offset;
    const char *dest;    /* herald-source-topic, or NULL when the record names none */
    const char *reason;  /* herald-dlq-reason, or NULL */
    const char *device;  /* a failed notification's device (herald-dlq-device), else NULL */
    const char *skipped; /* why the record is not replayed (a sentence), or NULL */
} queue_replay_rec_t;

typedef void (*queue_replay_cb)(const queue_replay_rec_t *rec, void *arg);

/* limit 0 = everything up to the current end. Returns 0, or -1 with a sentence in err when Kafka
 * could not be reached or refused. */
int queue_dlq_replay(const conf_t *conf, long limit, bool dry_run, long timeout_ms,
                     queue_replay_cb cb, void *arg, queue_replay_report_t *rep, char *err,
                     size_t errlen);

#endif
