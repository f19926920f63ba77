/* metrics.c - Prometheus registry: families hold children in a list (label sets are few and looked
 * up once by the code that increments them), rendering walks everything on demand. */
#include "core/metrics.h"
#include "core/xalloc.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metric {
    struct metric *next;
    char *values[METRIC_MAX_LABELS];
    double value;
    double sum;
    unsigned long long count;
    unsigned long long *buckets; /* histogram: per-bucket (non-cumulative) counts */
    double (*fn)(void *);
    void *fn_arg;
    metric_fam_t *fam;
};

struct metric_fam {
    struct metric_fam *next;
    char *name;
    char *help;
    metric_type_t type;
    size_t nlabels;
    char *labels[METRIC_MAX_LABELS];
    double *bounds;
    size_t nbounds;
    metric_t *children;
    metric_t **tail;
};

struct metric_reg {
    metric_fam_t *fams;
    metric_fam_t **tail;
};

static const double default_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10};

metric_reg_t *metric_reg_create(void)
{
    metric_reg_t *r = xcalloc(1, sizeof *r);
    r->tail = &r->fams;
    return r;
}

void metric_reg_destroy(metric_reg_t *reg)
{
    if (reg == NULL)
        return;
    metric_fam_t *f = reg->fams;
    while (f) {
        metric_fam_t *fn = f->next;
        metric_t *m = f->children;
        while (m) {
            metric_t *mn = m->next;
            for (size_t i = 0; i < f->nlabels; i++)
                free(m->values[i]);
            free(m->buckets);
            free(m);
            m = mn;
        }
        for (size_t i = 0; i < f->nlabels; i++)
            free(f->labels[i]);
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
        f = fn;
    }
    free(reg);
}

static metric_fam_t *fam_new(metric_reg_t *reg, metric_type_t type, const char *name,
                             const char *help, const char *labels)
{
    for (metric_fam_t *f = reg->fams; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    metric_fam_t *f = xcalloc(1, sizeof *f);
    f->name = xstrdup(name);
    f->help = xstrdup(help);
    f->type = type;
    f->tail = &f->children;
    if (labels && *labels) {
        const char *p = labels;
        while (*p && f->nlabels < METRIC_MAX_LABELS) {
            size_t n = strcspn(p, ",");
            f->labels[f->nlabels++] = xstrndup(p, n);
            p += n;
            if (*p == ',')
                p++;
        }
    }
    *reg->tail = f;
    reg->tail = &f->next;
    return f;
}

metric_fam_t *metric_counter_new(metric_reg_t *reg, const char *name, const char *help,
                                 const char *labels)
{
    return fam_new(reg, METRIC_COUNTER, name, help, labels);
}

metric_fam_t *metric_gauge_new(metric_reg_t *reg, const char *name, const char *help,
                               const char *labels)
{
    return fam_new(reg, METRIC_GAUGE, name, help, labels);
}

metric_fam_t *metric_histogram_new(metric_reg_t *reg, const char *name, const char *help,
                                   const char *labels, const double *bounds, size_t nbounds)
{
    metric_fam_t *f = fam_new(reg, METRIC_HISTOGRAM, name, help, labels);
    if (f->bounds == NULL) {
        if (bounds == NULL) {
            bounds = default_bounds;
            nbounds = sizeof default_bounds / sizeof default_bounds[0];
        }
        f->bounds = xmalloc(nbounds * sizeof *bounds);
        memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
        f->nbounds = nbounds;
    }
    return f;
}

metric_t *metric_getv(metric_fam_t *fam, const char *const *values)
{
    for (metric_t *m = fam->children; m; m = m->next) {
        size_t i = 0;
        while (i < fam->nlabels && strcmp(m->values[i], values[i]) == 0)
            i++;
        if (i == fam->nlabels)
            return m;
    }
    metric_t *m = xcalloc(1, sizeof *m);
    m->fam = fam;
    for (size_t i = 0; i < fam->nlabels; i++)
        m->values[i] = xstrdup(values[i] ? values[i] : "");
    if (fam->type == METRIC_HISTOGRAM)
        m->buckets = xcalloc(fam->nbounds + 1, sizeof *m->buckets);
    *fam->tail = m;
    fam->tail = &m->next;
    return m;
}

metric_t *metric_get(metric_fam_t *fam, ...)
{
    const char *values[METRIC_MAX_LABELS] = {0};
    va_list ap;
    va_start(ap, fam);
    for (size_t i = 0; i < fam->nlabels; i++)
        values[i] = va_arg(ap, const char *);
    va_end(ap);
    return metric_getv(fam, values);
}

void metric_inc(metric_t *m)
{
    m->value += 1;
}

void metric_add(metric_t *m, double v)
{
    m->value += v;
}

void metric_set(metric_t *m, double v)
{
    m->value = v;
}

void metric_set_fn(metric_t *m, double (*fn)(void *arg), void *arg)
{
    m->fn = fn;
    m->fn_arg = arg;
}

void metric_observe(metric_t *m, double v)
{
    metric_fam_t *f = m->fam;
    size_t i = 0;
    while (i < f->nbounds && v > f->bounds[i])
        i++;
    m->buckets[i]++;
    m->count++;
    m->sum += v;
}

double metric_value(const metric_t *m)
{
    if (m->fam->type == METRIC_HISTOGRAM)
        return (double)m->count;
    return m->fn ? m->fn(m->fn_arg) : m->value;
}

double metric_hist_sum(const metric_t *m)
{
    return m->sum;
}

static void put_escaped(buf_t *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            buf_putc(out, '\\'), buf_putc(out, *s);
        else if (*s == '\n')
            buf_puts(out, "\\n");
        else
            buf_putc(out, *s);
    }
}

static void put_number(buf_t *out, double v)
{
    if (isnan(v))
        buf_puts(out, "NaN");
    else if (isinf(v))
        buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        buf_printf(out, "%.0f", v);
    else
        buf_printf(out, "%.9g", v);
}

/* name{a="x",b="y"[,le="..."]} */
static void put_series(buf_t *out, const metric_fam_t *f, const char *suffix, const metric_t *m,
                       const char *le)
{
    buf_puts(out, f->name);
    buf_puts(out, suffix);
    if (f->nlabels == 0 && le == NULL)
        return;
    buf_putc(out, '{');
    for (size_t i = 0; i < f->nlabels; i++) {
        buf_printf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
        put_escaped(out, m->values[i]);
        buf_putc(out, '"');
    }
    if (le)
        buf_printf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    buf_putc(out, '}');
}

static void render_hist(buf_t *out, const metric_fam_t *f, const metric_t *m)
{
    unsigned long long cum = 0;
    char le[32];
    for (size_t i = 0; i <= f->nbounds; i++) {
        cum += m->buckets[i];
        if (i < f->nbounds)
            snprintf(le, sizeof le, "%g", f->bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        put_series(out, f, "_bucket", m, le);
        buf_printf(out, " %llu\n", cum);
    }
    put_series(out, f, "_sum", m, NULL);
    buf_putc(out, ' ');
    put_number(out, m->sum);
    buf_putc(out, '\n');
    put_series(out, f, "_count", m, NULL);
    buf_printf(out, " %llu\n", m->count);
}

void metric_render(metric_reg_t *reg, buf_t *out)
{
    static const char *const tnames[] = {"counter", "gauge", "histogram"};
    for (metric_fam_t *f = reg->fams; f; f = f->next) {
        buf_printf(out, "# HELP %s ", f->name);
        put_escaped(out, f->help);
        buf_printf(out, "\n# TYPE %s %s\n", f->name, tnames[f->type]);
        for (metric_t *m = f->children; m; m = m->next) {
            if (f->type == METRIC_HISTOGRAM) {
                render_hist(out, f, m);
                continue;
            }
            put_series(out, f, "", m, NULL);
            buf_putc(out, ' ');
            put_number(out, metric_value(m));
            buf_putc(out, '\n');
        }
    }
}
