/* probe.h - reachability probes for `heraldctl check-config`: the only heraldctl code that
 * talks to Kafka and HTTP directly (probe.c is the adapter that includes curl and
 * librdkafka). Blocking with a short timeout: heraldctl runs them once, off any daemon loop. */
#ifndef HERALD_DISPATCHER_CTL_PROBE_H
#define HERALD_DISPATCHER_CTL_PROBE_H

#include "config/config.h"

#include <stddef.h>

/* A HEAD request to url. Returns 0 when any HTTP response arrived (its status in *status), -1
 * with a reason in detail otherwise. */
int ctl_probe_http(const char *url, long timeout_ms, long *status, char *detail, size_t len);
/* A metadata request to the brokers of conf's kafka.* properties (bootstrap, when not NULL,
 * replaces kafka.bootstrap.servers). Returns 0 when the cluster
 * answered and every topic of queue.topics and the DLQ topic exist, 1 when it answered but a
 * topic is missing, -1 when it did not answer; a sentence in detail. */
int ctl_probe_kafka(const conf_t *conf, const char *bootstrap, long timeout_ms, char *detail,
                    size_t len);

#endif
