/* fuzz_event.c - libFuzzer target for the job event decoder. The input's first byte selects how
 * many of three fixed Kafka headers are passed, so the header fallback paths are reached too;
 * the rest is the message value. A decoded event must satisfy the decoder's guarantees, and the
 * one-pass reader of plain events must decode exactly as the general path does. */
#include "queue/event.h"

#include <stdlib.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const queue_header_t hdrs[] = {
        {"userId", "user-h", 6},
        {"status", "FAILED", 6},
        {"jobId", "job-h", 5},
    };
    size_t nh = size > 0 ? data[0] % 4 : 0;
    const uint8_t *v = size > 0 ? data + 1 : data;
    size_t len = size > 0 ? size - 1 : 0;
    queue_event_t ev, tree;
    queue_dec_error_t why, twhy;
    int rc = queue_event_decode(v, len, hdrs, nh, 4096, &ev, &why);
    CHECK(queue_event_decode_tree(v, len, hdrs, nh, 4096, &tree, &twhy) == rc);
    CHECK(rc == 0 ? queue_event_equal(&ev, &tree)
                  : twhy.reason == why.reason && strcmp(twhy.detail, why.detail) == 0);
    if (rc == 0) {
        CHECK(ev.job_id && ev.user_id && ev.envelope);
        CHECK(strlen(ev.job_id) >= 1 && strlen(ev.job_id) <= QUEUE_ID_MAX);
        CHECK(strlen(ev.user_id) >= 1 && strlen(ev.user_id) <= QUEUE_ID_MAX);
        CHECK(!ev.error || strlen(ev.error) <= QUEUE_TEXT_MAX);
        CHECK(!ev.message || strlen(ev.message) <= QUEUE_TEXT_MAX);
        CHECK(ev.status < QUEUE_ST_COUNT);
        char key[QUEUE_KEY_MAX];
        CHECK(queue_event_key(&ev, key, sizeof key) > 0);
    } else {
        CHECK(why.reason > QUEUE_DEC_OK && why.reason < QUEUE_DEC_REASON_COUNT);
        CHECK(why.detail[0] != '\0');
    }
    queue_event_cleanup(&ev);
    queue_event_cleanup(&tree);
    return 0;
}
