/* event.h - decoding of job events from Kafka message values (pure C, no librdkafka).
 *
 * A value is JSON, possibly wrapped in envelopes (DESIGN.md "Events in"): Kafka Connect
 * {schema,payload}, an SQS record with a string Body/body, an SNS Notification with a string
 * Message, an SNS `MessageStructure: json` object with a string `default`. Up to
 * QUEUE_MAX_ENVELOPES envelopes are unwrapped, checked at every level in that order. userId,
 * jobId/batchJobId and status fall back to SNS/SQS message attributes (innermost first), then
 * to Kafka headers; the body wins (locale too). Everything read is bounded; a value that cannot be
 * decoded yields a reason code (and the field for bad_field) meant for the DLQ headers and metrics.
 */
#ifndef HERALD_QUEUE_EVENT_H
#define HERALD_QUEUE_EVENT_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUEUE_ID_MAX 128 /* jobId, batchJobId, userId, correlation ids: 1-128 printable ASCII */
#define QUEUE_TEXT_MAX                                                                             \
    1024 /* message, data.error, data.finalS3Key (text is truncated, keys not)                     \
          */
#define QUEUE_MAX_ENVELOPES 4
#define QUEUE_KEY_MAX (QUEUE_ID_MAX + 16) /* idempotency key incl. NUL */

/* A Kafka header as the adapter sees it; value may be NULL (a null header). Borrowed. */
typedef struct queue_header {
    const char *name;
    const void *value;
    size_t len;
} queue_header_t;

typedef enum {
    QUEUE_ST_QUEUED = 0,
    QUEUE_ST_PROCESSING,
    QUEUE_ST_EDITING,
    QUEUE_ST_COMPLETED,
    QUEUE_ST_FAILED,
    QUEUE_ST_COUNT
} queue_status_t;

typedef enum { QUEUE_EV_JOB = 0, QUEUE_EV_BATCH } queue_event_kind_t;

/* A decoded event. Every string points into the event's own memory (NUL-terminated) and lives
 * until queue_event_cleanup; optional ones are NULL when absent. */
typedef struct queue_event {
    queue_event_kind_t kind;
    const char *job_id;       /* jobId, or batchJobId for QUEUE_EV_BATCH; never NULL */
    const char *batch_job_id; /* batchJobId when present (a job may name its batch) */
    const char *user_id;      /* never NULL */
    queue_status_t status;
    const char *previous_status; /* data.previousStatus */
    const char *message;
    const char *timestamp;    /* as sent (string), or the number as text */
    int64_t timestamp_ms;     /* unix ms when the timestamp parsed (ISO-8601 or epoch), else 0 */
    const char *error;        /* data.error */
    const char *final_s3_key; /* data.finalS3Key */
    long completed_count;     /* -1 when absent */
    long total_count;         /* -1 when absent */
    const char *envelope;     /* outer to inner, "raw" for none, e.g. "sqs+sns" */
    const char *sns_message_id;
    const char *sqs_message_id;
    const char *correlation_id; /* body correlationId, else header correlationId, else SNS id */
    const char *traceparent;    /* body or header traceparent */
    /* Kafka header herald-replay-device (QUEUE_REPLAY_DEVICE_HEADER): this event is heraldctl dlq
     * replay's re-send of a notification that failed for good, for this one device only */
    const char *replay_device;
    const char *locale; /* BCP 47 tag in canonical case (core/langtag.h), from the body, an
                           attribute or a header; NULL when absent or malformed */
    bool truncated;     /* message or error was cut to QUEUE_TEXT_MAX bytes */
    buf_t mem_;         /* private */
} queue_event_t;

typedef enum {
    QUEUE_DEC_OK = 0,
    QUEUE_DEC_NOT_JSON,
    QUEUE_DEC_NOT_OBJECT,
    QUEUE_DEC_TOO_LARGE,
    QUEUE_DEC_ENVELOPE_DEPTH,
    QUEUE_DEC_MISSING_USER_ID,
    QUEUE_DEC_MISSING_JOB_ID,
    QUEUE_DEC_MISSING_STATUS,
    QUEUE_DEC_UNKNOWN_STATUS,
    QUEUE_DEC_BAD_FIELD,
    QUEUE_DEC_REASON_COUNT
} queue_dec_reason_t;

typedef struct queue_dec_error {
    queue_dec_reason_t reason;
    char field[32];   /* for QUEUE_DEC_BAD_FIELD: "userId", "data.finalS3Key", ... else "" */
    char detail[160]; /* a human sentence for logs and the DLQ detail header */
} queue_dec_error_t;

/* Decodes value (len bytes, borrowed) with Kafka headers hdrs[0..nhdrs) (borrowed). max_bytes
 * bounds len before anything is parsed. On success returns 0 and fills *out (caller owns it:
 * queue_event_cleanup). On failure returns -1, fills *why and leaves *out empty (cleanup is
 * still safe). Pure: no I/O, no globals. */
int queue_event_decode(const void *value, size_t len, const queue_header_t *hdrs, size_t nhdrs,
                       size_t max_bytes, queue_event_t *out, queue_dec_error_t *why);
void queue_event_cleanup(queue_event_t *ev); /* frees the strings; the struct is caller's */
/* queue_event_decode reads a plain event (one flat object of plain ASCII strings, integers and
 * null, no envelope, no header it would consult) in one pass without a jansson tree; everything
 * else takes this general path. Exposed so the tests and the fuzz target check that both decode
 * every input alike; queue_event_equal compares two decoded events field by field. */
int queue_event_decode_tree(const void *value, size_t len, const queue_header_t *hdrs, size_t nhdrs,
                            size_t max_bytes, queue_event_t *out, queue_dec_error_t *why);
bool queue_event_equal(const queue_event_t *a, const queue_event_t *b);

#define QUEUE_REPLAY_DEVICE_HEADER "herald-replay-device"

/* Appends ev as a plain (unwrapped) JSON job event that queue_event_decode reads back as the same
 * event: ids, status, message, timestamp, data.previousStatus/error/finalS3Key, counts,
 * correlationId and traceparent (the envelope and the replay device are not part of it). */
void queue_event_encode(const queue_event_t *ev, buf_t *out);

/* Writes "<jobId or batchJobId>:<STATUS>" into out (>= QUEUE_KEY_MAX bytes advised). Returns the
 * length, or -1 when it does not fit (out is then left as it was). */
int queue_event_key(const queue_event_t *ev, char *out, size_t outlen);

const char *queue_status_name(queue_status_t st);           /* "COMPLETED" ... */
int queue_status_parse(const char *s, queue_status_t *out); /* exact upper-case; 0 or -1 */
const char *queue_dec_reason_name(queue_dec_reason_t r);    /* "not_json" ... */

#endif
