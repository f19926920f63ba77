/* pipeline.h - job events to notifications: the dispatcher's core (DESIGN.md "Delivery").
 *
 * For each decoded event: look up the user's devices (one round trip), keep the active and
 * unexpired ones, claim each (event, device) in Redis (one script call), send through the Expo
 * client, then make every outcome durable (ticket recorded for the receipt check, token
 * deactivated, or DLQ record acknowledged), mark the claim done, and only then complete the
 * event so its Kafka offset may be stored. Loop-thread only. */
#ifndef HERALD_DISPATCHER_PIPELINE_H
#define HERALD_DISPATCHER_PIPELINE_H

#include "config/config.h"
#include "core/metrics.h"
#include "pipeline/templates.h"
#include "pipeline/trace.h"
#include "expo/expo.h"
#include "expo/receipts.h"
#include "queue/consumer.h"
#include "tokens/store.h"

#include <uv.h>

typedef struct disp_pipeline disp_pipeline_t;

typedef struct disp_pipeline_deps {
    uv_loop_t *loop;
    const conf_t *conf; /* borrowed for the pipeline's lifetime */
    struct db *db;
    tok_store_t *store;
    expo_client_t *expo;
    expo_receipts_t *receipts;
    queue_producer_t *dlq;       /* may be set later with disp_pipeline_set_dlq */
    disp_templates_t *templates; /* borrowed; replaced on reload with disp_pipeline_set_templates */
    disp_trace_t *trace;
    metric_reg_t *metrics;
} disp_pipeline_deps_t;

disp_pipeline_t *disp_pipeline_create(const disp_pipeline_deps_t *deps);
/* Frees every job still held (their tickets are abandoned: the events will be redelivered).
 * Call after the Expo client, the receipts poller and Redis were destroyed. */
void disp_pipeline_destroy(disp_pipeline_t *p);

/* The queue handler: pass &handler to queue_consumer_create with arg = the pipeline. */
void disp_pipeline_on_event(const queue_event_t *ev, queue_ticket_t *ticket, void *arg);
/* The receipts callback (expo_receipts_opts_t.on_receipt, arg = the pipeline): a
 * DeviceNotRegistered receipt deactivates the token if the device still holds it. */
void disp_pipeline_on_receipt(const expo_ticket_info_t *t, expo_rcpt_status_t st, const char *error,
                              const char *message, void *arg);

/* The DLQ producer. A notification that failed for good goes to queue_dlq_topic() of its
 * event's source topic, as an undecodable event does. */
void disp_pipeline_set_dlq(disp_pipeline_t *p, queue_producer_t *dlq);
void disp_pipeline_set_templates(disp_pipeline_t *p, disp_templates_t *t);
void disp_pipeline_set_receipts(disp_pipeline_t *p, expo_receipts_t *r);
/* From now on, outcomes that arrive are not acted on (shutdown in progress). */
void disp_pipeline_abort(disp_pipeline_t *p);
size_t disp_pipeline_jobs(const disp_pipeline_t *p);

#endif
