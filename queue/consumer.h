/* consumer.h - herald's Kafka side: a consumer-group member on the libuv loop that decodes job
 * events, hands them to a handler with an in-flight ticket, stores offsets only up to the
 * highest contiguous completed offset per partition, sends undecodable values to a DLQ, and
 * applies backpressure (it stops taking messages while full, and pauses the partitions only once
 * it stayed full for 2 s). Also a producer with delivery reports on the loop (DLQ, heraldctl
 * publish, DLQ replay).
 *
 * Loop affinity: every function here and every callback runs on the loop thread. librdkafka's
 * own threads never call into herald: its queues wake the loop through a pipe
 * (rd_kafka_queue_io_event_enable) and are drained with non-blocking polls. Only shutdown
 * (queue_consumer_destroy, queue_producer_destroy) may block, and then for a bounded time. */
#ifndef HERALD_QUEUE_CONSUMER_H
#define HERALD_QUEUE_CONSUMER_H

#include "config/config.h"
#include "core/metrics.h"
#include "queue/event.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

enum {
    QUEUE_OK = 0,
    QUEUE_ERR = -1,       /* librdkafka refused (details logged) */
    QUEUE_EFULL = -2,     /* the producer's local queue is full; try again later */
    QUEUE_EDELIVERY = -3, /* the broker did not acknowledge the message */
    QUEUE_ECLOSED = -4,   /* stopping or stopped */
    QUEUE_ETIMEDOUT = -5, /* shutdown did not finish everything within its bounds */
    QUEUE_EINVAL = -6,
};
const char *queue_strerror(int code);

typedef struct queue_consumer queue_consumer_t;
typedef struct queue_producer queue_producer_t;
typedef struct queue_ticket queue_ticket_t;

/* ---- producer ---- */

typedef struct queue_delivery {
    /* QUEUE_OK; QUEUE_EDELIVERY (the broker did not acknowledge it); QUEUE_EFULL or QUEUE_ERR
     * (librdkafka refused it at once: local queue full, too large, unknown topic...); or
     * QUEUE_ECLOSED (the producer was destroyed first) */
    int status;
    const char *error; /* librdkafka's text when status != 0, else NULL */
    const char *topic;
    int32_t partition; /* -1 when unknown */
    int64_t offset;    /* -1 when unknown */
} queue_delivery_t;
/* dr and its strings are borrowed for the duration of the call. */
typedef void (*queue_produce_cb)(const queue_delivery_t *dr, void *arg);

/* How to reach Kafka: the librdkafka properties (kafka.* passthrough) and, when
 * bootstrap.servers is not among them, the embedded development broker whose address is in
 * <runtime_dir>/kafka.bootstrap (see queue/embedded.h). Everything borrowed during the call. */
typedef struct queue_kafka_opts {
    const conf_kv_t *props; /* in order; later ones win */
    size_t nprops;
    bool embedded;           /* kafka.embedded */
    const char *runtime_dir; /* runtime.dir */
} queue_kafka_opts_t;

/* new: a producer with kafka's properties. metrics may be NULL. Free with
 * queue_producer_destroy. */
queue_producer_t *queue_producer_create(uv_loop_t *loop, const queue_kafka_opts_t *kafka,
                                        metric_reg_t *metrics, char *err, size_t errlen);
/* Copies key/value/headers (all borrowed) and queues the message. Returns 0 and cb fires exactly
 * once, later, on the loop (never inside this call), whatever the outcome: a refusal by
 * librdkafka is reported there too (QUEUE_EFULL, QUEUE_ERR). Only QUEUE_EINVAL (p, topic or cb
 * NULL) returns at once, and then cb never fires. key may be NULL. */
int queue_produce(queue_producer_t *p, const char *topic, const void *key, size_t keylen,
                  const void *value, size_t len, const queue_header_t *hdrs, size_t nhdrs,
                  queue_produce_cb cb, void *arg);
/* Messages not yet acknowledged. */
size_t queue_producer_outq(const queue_producer_t *p);
/* Blocks up to 5 s flushing, then fails what is left (callbacks fire with QUEUE_ECLOSED, from
 * inside this call) and frees: every callback has fired once when it returns. Accepts NULL.
 * Handles are closed with uv_close: run the loop once more afterwards. */
void queue_producer_destroy(queue_producer_t *p);

/* ---- consumer ---- */

typedef struct queue_handler {
    /* A decoded event and its ticket. Both are borrowed until queue_complete(ticket), which the
     * handler calls exactly once (it may do so from inside on_event) when the event has a
     * durable outcome. */
    void (*on_event)(const queue_event_t *ev, queue_ticket_t *ticket, void *arg);
    void *arg;
} queue_handler_t;

typedef struct queue_consumer_opts {
    queue_kafka_opts_t kafka;
    const char *topics;    /* comma-separated (queue.topics) */
    const char *dlq_topic; /* for undecodable values; NULL or "": "<source topic>.dlq" */
    long max_in_flight;    /* events with the handler at once (queue.max_in_flight), >= 1 */
    long max_event_bytes;  /* larger values go to the DLQ (queue.max_event_bytes) */
    queue_handler_t handler;
    /* borrowed: the producer for the DLQ, shared with the handler's own DLQ records; destroy it
     * before the consumer (its delivery reports refer to the consumer's tickets). NULL: the
     * consumer makes and owns one. */
    queue_producer_t *dlq;
    metric_reg_t *metrics; /* borrowed; may be NULL */
} queue_consumer_opts_t;

/* Backpressure: at most max_in_flight events are with the handler; up to half as many more wait
 * decoded in the consumer. When both are full the consumer stops taking messages from
 * librdkafka's (bounded) prefetch queue and takes them again as events complete. Only when it
 * stays full for 2 s (Redis or Expo down) is every assigned partition paused (polling goes on, so
 * the group membership is kept); they resume once the waiting ones have all been handed out.
 *
 * new: creates the consumer and subscribes to o->topics. Kafka configuration is
 * o->kafka.props over herald's defaults: group.id=herald, enable.auto.commit=true,
 * auto.offset.reset=earliest, session.timeout.ms=10000, heartbeat.interval.ms=3000,
 * partition.assignment.strategy=cooperative-sticky (range works too).
 * enable.auto.offset.store is always false (refused if set true). o and its strings are read
 * during the call (copied where kept). NULL with a sentence in err. */
queue_consumer_t *queue_consumer_create(uv_loop_t *loop, const queue_consumer_opts_t *o, char *err,
                                        size_t errlen);

/* Marks the ticket's event done. Offsets advance over contiguous done events. A ticket of a
 * partition that was revoked since is released without storing anything. */
void queue_complete(queue_ticket_t *t);
const char *queue_ticket_topic(const queue_ticket_t *t); /* borrowed, as the ticket */
int32_t queue_ticket_partition(const queue_ticket_t *t);
int64_t queue_ticket_offset(const queue_ticket_t *t);
int64_t queue_ticket_kafka_ts(const queue_ticket_t *t); /* message timestamp ms, -1 if none */

typedef void (*queue_stop_cb)(int status, void *arg);
/* Graceful stop: pauses fetching, waits for in-flight events up to timeout_ms, stores and
 * commits offsets, leaves the group (bounded, 5 s), flushes the DLQ producer (bounded, 5 s),
 * then cb(status) once, from the loop: 0, or QUEUE_ETIMEDOUT when events were still in flight
 * or a step ran out of time, or QUEUE_ERR when the commit or the close failed. A destroy before
 * then fires it from inside queue_consumer_destroy with QUEUE_ECLOSED. Returns 0, or
 * QUEUE_ECLOSED (cb will not fire) when already stopping. */
int queue_consumer_stop(queue_consumer_t *c, int timeout_ms, queue_stop_cb cb, void *arg);
/* Frees everything; a consumer that was not stopped is destroyed without leaving the group. A
 * stop still in progress ends: its cb fires now with QUEUE_ECLOSED. Tickets still held by the
 * handler become invalid. Accepts NULL. Run the loop once more afterwards so the closed handles
 * are released. */
void queue_consumer_destroy(queue_consumer_t *c);

typedef void (*queue_fatal_cb)(const char *reason, void *arg);
/* Subscribes to librdkafka's fatal errors (e.g. a static member, kafka.group.instance.id, fenced
 * by another with the same id): the consumer cannot go on and should be stopped. cb fires at most
 * once, from the loop; reason is borrowed for the call. */
void queue_consumer_on_fatal(queue_consumer_t *c, queue_fatal_cb cb, void *arg);

/* The consumer's DLQ producer (its own or the one given); borrowed. */
queue_producer_t *queue_consumer_producer(queue_consumer_t *c);
size_t queue_consumer_in_flight(const queue_consumer_t *c); /* handed out, not completed */
size_t queue_consumer_assigned(const queue_consumer_t *c);  /* partitions assigned now */
size_t queue_consumer_held(const queue_consumer_t *c);      /* decoded, waiting for room */
size_t queue_consumer_paused(const queue_consumer_t *c);    /* partitions paused for backpressure */

/* The DLQ topic of a record from source_topic, for both kinds of dead letter (an undecodable
 * event, a notification that failed for good): `configured` (queue.dlq_topic) when set and not
 * empty, else "<source_topic>.dlq". Writes out (truncated to outlen) and returns it. */
const char *queue_dlq_topic(const char *configured, const char *source_topic, char *out,
                            size_t outlen);

/* The bootstrap servers to use: kafka.bootstrap.servers, or with kafka.embedded the contents of
 * <runtime_dir>/kafka.bootstrap. Returns 0 or -1 with a sentence in err. */
int queue_bootstrap_resolve(const conf_t *conf, char *out, size_t outlen, char *err, size_t errlen);

#endif
