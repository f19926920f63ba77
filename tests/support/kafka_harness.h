/* kafka_harness.h - Kafka for integration tests: librdkafka's mock cluster owned by the test
 * process (so it survives herald being killed and restarted), a synchronous-enough producer and a
 * reader that fetches a topic from the beginning without joining a group. */
#ifndef HERALD_TESTS_KAFKA_HARNESS_H
#define HERALD_TESTS_KAFKA_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

/* Starts a mock cluster with `topics` (comma-separated) and their ".dlq" topics, 4 partitions
 * each; returns the bootstrap address (static storage) or NULL. */
const char *th_kafka_start(const char *topics);
void th_kafka_stop(void);

/* Queues one message (headers: NULL-terminated name, value pairs, or NULL). 0 or -1. */
int th_kafka_send(const char *topic, const char *key, const char *value,
                  const char *const *headers);
/* Waits until every queued message is acknowledged (bounded: 10 s). 0 or -1. */
int th_kafka_flush(void);

/* Makes the broker answer the next `count` requests of Kafka API `apikey` (e.g. 12, Heartbeat)
 * with error code `err` (e.g. 82, FENCED_INSTANCE_ID), whichever client sends them. 0 or -1. */
int th_kafka_inject_errors(int apikey, int count, int err);

typedef struct th_kmsg {
    const char *value;
    size_t len;
    int partition;
    long long offset;
    char headers[1024]; /* "name=value\n" lines */
} th_kmsg_t;

/* Reads `topic` from the beginning of all 4 partitions until `want` messages arrived or timeout;
 * calls cb for each. Returns the number read. */
int th_kafka_read(const char *topic, int want, int timeout_ms,
                  void (*cb)(const th_kmsg_t *m, void *arg), void *arg);

#endif
