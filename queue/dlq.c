/* dlq.c - the one rule that names a DLQ topic, shared by the consumer (undecodable events), the
 * pipeline (notifications that failed for good), the embedded broker and DLQ replay. Plain C, so
 * code that only needs the name does not pull in librdkafka. */
#include "queue/consumer.h"

#include <stdio.h>

const char *queue_dlq_topic(const char *configured, const char *source_topic, char *out,
                            size_t outlen)
{
    if (configured && configured[0])
        snprintf(out, outlen, "%s", configured);
    else
        snprintf(out, outlen, "%s.dlq", source_topic);
    return out;
}
