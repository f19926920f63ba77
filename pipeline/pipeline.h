/* pipeline.h - job events to notifications: the dispatcher's core (DESIGN.md "Delivery").
 *
 * For each decoded event: look up the user's devices (one command; a loop turn's lookups go out
 * pipelined), keep the active and unexpired ones, claim each (user, event, device)
 * (pipeline/claims.h: one call for all the events of a loop turn), send through the Expo client,
 * then make every outcome durable (ticket recorded for the receipt check, token deactivated, or
 * DLQ record acknowledged), mark the claim done (failed for a DLQ record), and only then complete
 * the event so its Kafka offset may be stored. A device whose mark another live instance holds
 * is claimed again later; one whose owner's lease lapsed is taken over (sent again). While sends
 * are in flight their claims are renewed every dedup.pending_ttl_s / 3. An event replayed by
 * heraldctl dlq replay (queue_event_t.replay_device) goes to that one device, whose `failed` mark
 * it may claim. Loop-thread only. */
#ifndef HERALD_DISPATCHER_PIPELINE_H
#define HERALD_DISPATCHER_PIPELINE_H

#include "core/metrics.h"
#include "expo/expo.h"
#include "expo/receipts.h"
#include "pipeline/claims.h"
#include "pipeline/templates.h"
#include "pipeline/trace.h"
#include "queue/consumer.h"
#include "tokens/store.h"

#include <uv.h>

typedef struct disp_pipeline disp_pipeline_t;

/* What the pipeline works with; all borrowed for the pipeline's lifetime. */
typedef struct disp_pipeline_deps {
    uv_loop_t *loop;
    tok_store_t *store;
    disp_claims_t *claims;
    expo_client_t *expo;
    expo_receipts_t *receipts;
    queue_producer_t *dlq;       /* failed notifications go here */
    disp_templates_t *templates; /* replaced on reload with disp_pipeline_set_templates */
    disp_trace_t *trace;
    metric_reg_t *metrics;
} disp_pipeline_deps_t;

typedef struct disp_pipeline_opts {
    long receipt_delay_s;  /* an accepted notification's receipt is checked this much later */
    const char *dlq_topic; /* queue.dlq_topic, copied; "" or NULL: "<source topic>.dlq" */
    /* A MessageRateExceeded receipt resends that notification after resend_base_ms * 2^resends
     * (at most resend_cap_ms), up to max_resends times (0: never; expo.backoff_base_ms,
     * expo.backoff_cap_ms, expo.max_attempts). */
    long resend_base_ms, resend_cap_ms, max_resends;
} disp_pipeline_opts_t;

/* new: free with disp_pipeline_destroy. Every dependency is required. */
disp_pipeline_t *disp_pipeline_create(const disp_pipeline_deps_t *deps,
                                      const disp_pipeline_opts_t *opts);
/* Frees every job still held (their tickets are abandoned: the events will be redelivered).
 * Call after the Expo client, the receipts poller, Redis and the DLQ producer were destroyed
 * (their callbacks refer to the pipeline), then run the loop so its handles close. */
void disp_pipeline_destroy(disp_pipeline_t *p);

/* The queue handler: pass &handler to queue_consumer_create with arg = the pipeline. */
void disp_pipeline_on_event(const queue_event_t *ev, queue_ticket_t *ticket, void *arg);
/* What to do with a receipt (for expo_receipts_opts_t.on_receipt, arg = the pipeline): a
 * DeviceNotRegistered receipt deactivates the token if the device still holds it; a
 * MessageRateExceeded one (EXPO_RCPT_RETRY) answers when to resend the notification to that
 * device (resend_base_ms * 2^resends, capped; the receipt check keeps it until then), or, past
 * max_resends, traces it `failed` and answers -1; once due (EXPO_RCPT_RESEND) it is resent with
 * the same collapseId and without a dedup claim, from the event kept in its ledger entry, its new
 * ticket's check is recorded and only then the old ticket forgotten. */
long disp_pipeline_on_receipt(const expo_ticket_info_t *t, expo_rcpt_status_t st, const char *error,
                              const char *message, void *arg);

/* Configuration reload: the new templates (borrowed) apply to events from now on; events already
 * received keep the texts they were rendered with, so the old templates may be destroyed now. */
void disp_pipeline_set_templates(disp_pipeline_t *p, disp_templates_t *t);
/* From now on, outcomes that arrive are not acted on (shutdown in progress); the trace records
 * events kept to write with their claims go to the trace. */
void disp_pipeline_abort(disp_pipeline_t *p);
size_t disp_pipeline_jobs(const disp_pipeline_t *p);

#endif
