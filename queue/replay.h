/* replay.h - `heraldctl dlq replay`: re-publishes dead-lettered records to the topic named by
 * their herald-source-topic header. Blocking with bounded timeouts (a command-line tool's job, not
 * the daemon's): reads every DLQ topic (queue.dlq_topic, else "<topic>.dlq" for each of
 * queue.topics) from the offsets committed by the group "<group.id>-dlq-replay", produces each
 * record to its source topic with its key, value and original headers (herald-dlq-* and
 * herald-source-* removed, herald-replayed-from added), and commits the DLQ offsets only once
 * every produced record was acknowledged. A second run therefore replays only what came after;
 * a failed run replays again (herald's dedup suppresses duplicate notifications). */
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
    long failed;    /* produce failures (nothing is committed then) */
} queue_replay_report_t;

/* Called for every record read; strings borrowed for the call. dest is NULL without a source
 * topic header; reason is the herald-dlq-reason header or NULL. */
typedef void (*queue_replay_cb)(const char *dlq, int32_t partition, int64_t offset,
                                const char *dest, const char *reason, void *arg);

/* limit 0 = everything up to the current end. Returns 0, or -1 with a sentence in err when Kafka
 * could not be reached or refused. */
int queue_dlq_replay(const conf_t *conf, long limit, bool dry_run, long timeout_ms,
                     queue_replay_cb cb, void *arg, queue_replay_report_t *rep, char *err,
                     size_t errlen);

#endif
