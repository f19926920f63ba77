/* metrics.h - a small metrics registry rendered in the Prometheus text exposition format.
 *
 * A family has a name, help text, a type and up to METRIC_MAX_LABELS label names. A child is one
 * combination of label values; its pointer stays valid until the registry is destroyed, so hot
 * paths look it up once and keep it. Loop-thread only: no locks. */
#ifndef HERALD_CORE_METRICS_H
#define HERALD_CORE_METRICS_H

#include "core/buf.h"

#include <stddef.h>

#define METRIC_MAX_LABELS 4

typedef struct metric_reg metric_reg_t;
typedef struct metric_fam metric_fam_t;
typedef struct metric metric_t;

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type_t;

metric_reg_t *metric_reg_create(void);      /* new: free with metric_reg_destroy */
void metric_reg_destroy(metric_reg_t *reg); /* accepts NULL */

/* `labels` is a comma-separated list of label names ("route,status") or NULL. Registering the same
 * name twice returns the existing family. Strings are copied. */
metric_fam_t *metric_counter_new(metric_reg_t *reg, const char *name, const char *help,
                                 const char *labels);
metric_fam_t *metric_gauge_new(metric_reg_t *reg, const char *name, const char *help,
                               const char *labels);
/* `bounds` are upper bucket bounds in increasing order (copied); +Inf is implied. NULL gives
 * latency buckets in seconds from 0.5 ms to 10 s. */
metric_fam_t *metric_histogram_new(metric_reg_t *reg, const char *name, const char *help,
                                   const char *labels, const double *bounds, size_t nbounds);

/* The child with these label values (as many as the family has label names), created on first
 * use. Returns a borrowed pointer valid for the registry's lifetime. */
metric_t *metric_get(metric_fam_t *fam, ...);
/* Same, with the values in an array. */
metric_t *metric_getv(metric_fam_t *fam, const char *const *values);

void metric_inc(metric_t *m);
void metric_add(metric_t *m, double v);
void metric_set(metric_t *m, double v);
void metric_observe(metric_t *m, double v);
/* A gauge computed at render time. */
void metric_set_fn(metric_t *m, double (*fn)(void *arg), void *arg);
double metric_value(const metric_t *m); /* counter/gauge value; histogram: count */
double metric_hist_sum(const metric_t *m);

/* Appends the whole registry in text format 0.0.4. */
void metric_render(metric_reg_t *reg, buf_t *out);

#endif
