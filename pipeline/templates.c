/* templates.c - built-in PhotoEditor texts, configuration overrides and placeholder rendering.
 * Rendering is done once per event; every device of the user gets the same texts. */
#include "pipeline/templates.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NFIELDS 10
enum {
    F_TITLE,
    F_BODY,
    F_SUBTITLE,
    F_SOUND,
    F_PRIORITY,
    F_CHANNEL,
    F_CATEGORY,
    F_TTL,
    F_ACTION,
    F_TYPE
};
static const char *const field_names[NFIELDS] = {"title",    "body",       "subtitle",    "sound",
                                                 "priority", "channel_id", "category_id", "ttl",
                                                 "action",   "type"};

typedef struct tmpl {
    char name[40];
    char *f[NFIELDS];
} tmpl_t;

struct disp_templates {
    tmpl_t *t;
    size_t n;
    bool notify[QUEUE_ST_COUNT];
};

/* name, title, body, action, type */
static const char *const defaults[][5] = {
    {"COMPLETED", "Photo Editor - Ready!", "Your enhanced photo is ready to download", "download",
     "job_status_update"},
    {"FAILED", "Photo Editor - Error", "{error|There was an error processing your photo}", "retry",
     "job_status_update"},
    {"PROCESSING", "Photo Editor - Processing", "Analyzing your photo...", "", "job_status_update"},
    {"EDITING", "Photo Editor - Enhancing", "Applying enhancements to your photo...", "",
     "job_status_update"},
    {"QUEUED", "Photo Editor - Queued", "Your photo is waiting to be processed", "",
     "job_status_update"},
    {"BATCH_COMPLETED", "Photo Editor - Batch Complete!",
     "All {count} photos are ready for download", "view_batch", "batch_completion"},
};

static tmpl_t *find(const disp_templates_t *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->t[i].name, name) == 0)
            return &t->t[i];
    return NULL;
}

static tmpl_t *get_or_add(disp_templates_t *t, const char *name)
{
    tmpl_t *x = find(t, name);
    if (x)
        return x;
    t->t = xrealloc(t->t, (t->n + 1) * sizeof *t->t);
    x = &t->t[t->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    return x;
}

static void set_field(tmpl_t *x, int f, const char *v)
{
    free(x->f[f]);
    x->f[f] = *v ? xstrdup(v) : NULL;
}

static int parse_notify(disp_templates_t *t, const char *list, char *err, size_t errlen)
{
    memset(t->notify, 0, sizeof t->notify);
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ", ");
        if (n > 0) {
            char s[32];
            queue_status_t st;
            snprintf(s, sizeof s, "%.*s", (int)(n < 31 ? n : 31), p);
            if (queue_status_parse(s, &st) != 0) {
                snprintf(err, errlen, "templates.notify: unknown status \"%s\"", s);
                return -1;
            }
            t->notify[st] = true;
        }
        p += n;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return 0;
}

static int apply_field(disp_templates_t *t, const disp_template_field_t *o, char *err,
                       size_t errlen)
{
    int f = 0;
    while (f < NFIELDS && strcmp(field_names[f], o->field) != 0)
        f++;
    const char *v = o->value;
    if (f == NFIELDS || strlen(o->name) >= sizeof t->t[0].name) {
        snprintf(err, errlen, "templates.%s.%s: unknown template field", o->name, o->field);
        return -1;
    }
    if (f == F_PRIORITY && *v && strcmp(v, "default") && strcmp(v, "normal") && strcmp(v, "high")) {
        snprintf(err, errlen, "templates.%s.%s: priority must be default, normal or high", o->name,
                 o->field);
        return -1;
    }
    if (f == F_TTL && *v && strspn(v, "0123456789") != strlen(v)) {
        snprintf(err, errlen, "templates.%s.%s: ttl must be a number of seconds", o->name,
                 o->field);
        return -1;
    }
    set_field(get_or_add(t, o->name), f, v);
    return 0;
}

disp_templates_t *disp_templates_create(const disp_templates_opts_t *o, char *err, size_t errlen)
{
    disp_templates_t *t = xcalloc(1, sizeof *t);
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        tmpl_t *x = get_or_add(t, defaults[i][0]);
        set_field(x, F_TITLE, defaults[i][1]);
        set_field(x, F_BODY, defaults[i][2]);
        set_field(x, F_ACTION, defaults[i][3]);
        set_field(x, F_TYPE, defaults[i][4]);
        set_field(x, F_SOUND, "default");
        set_field(x, F_PRIORITY, "high");
    }
    for (size_t i = 0; i < o->nfields; i++) {
        if (apply_field(t, &o->fields[i], err, errlen) != 0)
            goto fail;
    }
    if (parse_notify(t, o->notify ? o->notify : "", err, errlen) != 0)
        goto fail;
    return t;
fail:
    disp_templates_destroy(t);
    return NULL;
}

void disp_templates_destroy(disp_templates_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        for (int f = 0; f < NFIELDS; f++)
            free(t->t[i].f[f]);
    free(t->t);
    free(t);
}

bool disp_templates_notifies(const disp_templates_t *t, const queue_event_t *ev)
{
    return (unsigned)ev->status < QUEUE_ST_COUNT && t->notify[ev->status];
}

/* The template for an event, field by field: BATCH_<STATUS> first for batches, then <STATUS>. */
static const char *field_for(const disp_templates_t *t, const queue_event_t *ev, int f)
{
    char name[40];
    const char *st = queue_status_name(ev->status);
    if (ev->kind == QUEUE_EV_BATCH) {
        snprintf(name, sizeof name, "BATCH_%s", st);
        tmpl_t *b = find(t, name);
        if (b)
            return b->f[f];
    }
    tmpl_t *x = find(t, st);
    return x ? x->f[f] : NULL;
}

static void put_placeholder(buf_t *out, const queue_event_t *ev, const char *name, size_t n)
{
    const char *fallback = memchr(name, '|', n);
    size_t key_len = fallback ? (size_t)(fallback - name) : n;
    char key[32];
    snprintf(key, sizeof key, "%.*s", (int)(key_len < 31 ? key_len : 31), name);
    const char *v = NULL;
    char num[32];
    long count = ev->completed_count >= 0 ? ev->completed_count : ev->total_count;
    if (!strcmp(key, "jobId"))
        v = ev->job_id;
    else if (!strcmp(key, "userId"))
        v = ev->user_id;
    else if (!strcmp(key, "status"))
        v = queue_status_name(ev->status);
    else if (!strcmp(key, "message"))
        v = ev->message;
    else if (!strcmp(key, "error"))
        v = ev->error;
    else if (!strcmp(key, "count") && count >= 0)
        snprintf(num, sizeof num, "%ld", count), v = num;
    else if (!strcmp(key, "totalCount") && ev->total_count >= 0)
        snprintf(num, sizeof num, "%ld", ev->total_count), v = num;
    else if (!strcmp(key, "completedCount") && ev->completed_count >= 0)
        snprintf(num, sizeof num, "%ld", ev->completed_count), v = num;
    if (v && *v)
        buf_puts(out, v);
    else if (fallback)
        buf_append(out, fallback + 1, n - key_len - 1);
}

static void render_text(buf_t *out, const char *tmpl, const queue_event_t *ev)
{
    buf_reset(out);
    if (tmpl == NULL)
        return;
    for (const char *p = tmpl; *p;) {
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        if (close) {
            put_placeholder(out, ev, p + 1, (size_t)(close - p - 1));
            p = close + 1;
        } else {
            buf_putc(out, *p++);
        }
    }
}

static void render_data(buf_t *out, const disp_templates_t *t, const queue_event_t *ev)
{
    const char *type = field_for(t, ev, F_TYPE);
    const char *action = field_for(t, ev, F_ACTION);
    const char *st = queue_status_name(ev->status);
    buf_reset(out);
    buf_puts(out, ev->kind == QUEUE_EV_BATCH ? "{\"batchJobId\":" : "{\"jobId\":");
    buf_json_str(out, ev->job_id, strlen(ev->job_id));
    buf_printf(out, ",\"status\":\"%s\"", st);
    if (type) {
        buf_puts(out, ",\"type\":");
        buf_json_str(out, type, strlen(type));
    }
    if (action) {
        buf_puts(out, ",\"action\":");
        buf_json_str(out, action, strlen(action));
    }
    buf_putc(out, '}');
}

void disp_rendered_init(disp_rendered_t *r)
{
    memset(r, 0, sizeof *r);
    r->ttl = EXPO_UNSET;
}

void disp_rendered_cleanup(disp_rendered_t *r)
{
    buf_cleanup(&r->title);
    buf_cleanup(&r->body);
    buf_cleanup(&r->subtitle);
    buf_cleanup(&r->data);
    free(r->sound);
    free(r->priority);
    free(r->channel_id);
    free(r->category_id);
    r->sound = r->priority = r->channel_id = r->category_id = NULL;
}

/* *dst becomes a copy of the template's field (NULL when unset). */
static void copy_field(char **dst, const disp_templates_t *t, const queue_event_t *ev, int f)
{
    const char *v = field_for(t, ev, f);
    free(*dst);
    *dst = v ? xstrdup(v) : NULL;
}

int disp_templates_render(const disp_templates_t *t, const queue_event_t *ev, disp_rendered_t *out)
{
    if (!disp_templates_notifies(t, ev))
        return -1;
    render_text(&out->title, field_for(t, ev, F_TITLE), ev);
    render_text(&out->body, field_for(t, ev, F_BODY), ev);
    render_text(&out->subtitle, field_for(t, ev, F_SUBTITLE), ev);
    render_data(&out->data, t, ev);
    copy_field(&out->sound, t, ev, F_SOUND);
    copy_field(&out->priority, t, ev, F_PRIORITY);
    copy_field(&out->channel_id, t, ev, F_CHANNEL);
    copy_field(&out->category_id, t, ev, F_CATEGORY);
    const char *ttl = field_for(t, ev, F_TTL);
    out->ttl = ttl ? atol(ttl) : EXPO_UNSET;
    return 0;
}

void disp_rendered_msg(const disp_rendered_t *r, const char *token, const char *collapse_id,
                       expo_msg_t *m)
{
    expo_msg_init(m);
    m->to = token;
    m->title = r->title.len ? r->title.data : NULL;
    m->body = r->body.len ? r->body.data : NULL;
    m->subtitle = r->subtitle.len ? r->subtitle.data : NULL;
    m->data = r->data.data;
    m->sound = r->sound;
    m->priority = r->priority;
    m->channel_id = r->channel_id;
    m->category_id = r->category_id;
    m->ttl = r->ttl;
    m->collapse_id = collapse_id;
}
