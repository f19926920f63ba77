/* embedded.h - a development Kafka inside herald: librdkafka's mock cluster (real Kafka protocol
 * on loopback, in-memory, one process) with herald's topics created, for `kafka.embedded = true`.
 * Its bootstrap address is written to <runtime_dir>/kafka.bootstrap, where the consumer
 * (queue_bootstrap_resolve) and heraldctl find it. Nothing is persisted: data lives as long as
 * the process. Group formation takes about 3 s (the mock broker's fixed initial rebalance delay
 * in librdkafka 2.0.2, not configurable there). */
#ifndef HERALD_QUEUE_EMBEDDED_H
#define HERALD_QUEUE_EMBEDDED_H

#include "config/config.h"

#include <stddef.h>

#define QUEUE_EMBEDDED_PARTITIONS 4

typedef struct queue_embedded queue_embedded_t;

/* new: starts a mock cluster of `brokers` brokers (1 or 3 make sense), creates every topic of
 * conf->queue_topics and its DLQ (queue.dlq_topic or "<topic>.dlq") with
 * QUEUE_EMBEDDED_PARTITIONS partitions, and writes the bootstrap file (creating runtime_dir).
 * The cluster runs on its own librdkafka thread; nothing here touches the loop. Returns NULL with
 * a sentence in err on failure. Free with queue_embedded_destroy. */
queue_embedded_t *queue_embedded_start(const conf_t *conf, int brokers, char *err, size_t errlen);
/* "127.0.0.1:port,..." - borrowed, valid until destroy. */
const char *queue_embedded_bootstrap(const queue_embedded_t *e);
/* Creates one more topic (tests, tools). Returns 0 or -1. */
int queue_embedded_topic(queue_embedded_t *e, const char *topic, int partitions);
/* Stops the cluster and removes the bootstrap file. Accepts NULL. Blocks briefly (joins the
 * cluster thread): a shutdown path. */
void queue_embedded_destroy(queue_embedded_t *e);

#endif
