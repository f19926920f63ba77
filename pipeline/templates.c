/* templates.c - built-in PhotoEditor texts, configuration overrides per locale, value checks,
 * Expo's payload budget and placeholder rendering. The pipeline renders once per event and
 * locale; every device that resolves to the same locale gets the same texts. */
#include "pipeline/templates.h"
#include "core/xalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_WORST_MAX 224 /* "ExponentPushToken[" + 200 + "]", the longest token, and a NUL */

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
    F_TYPE,
    F_IMAGE,
    F_ICON,
    F_TAG,
    F_LEVEL,
    F_BADGE,
    F_MUTABLE,
    F_AVAILABLE,
    NFIELDS
};

/* How a field's value is checked: free text with placeholders, a URL with placeholders, a plain
 * string, an Android resource name, one of a list, a whole number up to max, a boolean. */
typedef enum { K_TEXT, K_URL, K_STR, K_RES, K_ENUM, K_INT, K_BOOL } kind_t;

static const struct fdef {
    const char *name;
    kind_t kind;
    const char *choices; /* K_ENUM: '|'-separated */
    long max;            /* K_INT */
    const char *unit;    /* K_INT: what the number counts */
} fdefs[NFIELDS] = {
    {"title", K_TEXT, NULL, 0, NULL},
    {"body", K_TEXT, NULL, 0, NULL},
    {"subtitle", K_TEXT, NULL, 0, NULL},
    {"sound", K_STR, NULL, 0, NULL},
    {"priority", K_ENUM, "default|normal|high", 0, NULL},
    {"channel_id", K_STR, NULL, 0, NULL},
    {"category_id", K_STR, NULL, 0, NULL},
    {"ttl", K_INT, NULL, 2419200, "seconds (FCM keeps a message at most 28 days)"},
    {"action", K_STR, NULL, 0, NULL},
    {"type", K_STR, NULL, 0, NULL},
    {"image", K_URL, NULL, 0, NULL},
    {"icon", K_RES, NULL, 0, NULL},
    {"tag", K_TEXT, NULL, 0, NULL},
    {"interruption_level", K_ENUM, "active|critical|passive|time-sensitive", 0, NULL},
    {"badge", K_INT, NULL, 2147483647, "(the number on the app icon; 0 clears it)"},
    {"mutable_content", K_BOOL, NULL, 0, NULL},
    {"content_available", K_BOOL, NULL, 0, NULL},
};

static const char *const placeholders[] = {"jobId",      "userId",         "status",
                                           "message",    "error",          "count",
                                           "totalCount", "completedCount", "finalS3Key"};
#define NPLACEHOLDERS (sizeof placeholders / sizeof placeholders[0])

typedef struct tmpl {
    char name[40];
    char *f[NFIELDS];
    uint32_t set; /* fields this template gives (a locale's template falls back field by field) */
} tmpl_t;

/* The templates of one locale; sets[0] holds the default texts (locale ""). */
typedef struct tset {
    char locale[LANG_TAG_MAX + 1];
    tmpl_t *t;
    size_t n;
} tset_t;

struct disp_templates {
    unsigned refs;
    tset_t *sets;
    size_t nsets;
    char default_locale[LANG_TAG_MAX + 1];
    bool notify[QUEUE_ST_COUNT];
    buf_t warnings;
};

/* The sets a rendering consults, most specific first; the default texts are implied last. */
typedef struct chain {
    const tset_t *s[LANG_TAG_MAX / 2 + 1];
    size_t n;
} chain_t;

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

/* ---- sets and templates --------------------------------------------------------------------- */

static tmpl_t *find(const tset_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->t[i].name, name) == 0)
            return &s->t[i];
    return NULL;
}

static tmpl_t *get_or_add(tset_t *s, const char *name)
{
    tmpl_t *x = find(s, name);
    if (x)
        return x;
    s->t = xrealloc(s->t, (s->n + 1) * sizeof *s->t);
    x = &s->t[s->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    return x;
}

static const tset_t *find_set(const disp_templates_t *t, const char *locale)
{
    for (size_t i = 1; i < t->nsets; i++)
        if (strcmp(t->sets[i].locale, locale) == 0)
            return &t->sets[i];
    return NULL;
}

static tset_t *get_or_add_set(disp_templates_t *t, const char *locale)
{
    for (size_t i = 1; i < t->nsets; i++)
        if (strcmp(t->sets[i].locale, locale) == 0)
            return &t->sets[i];
    t->sets = xrealloc(t->sets, (t->nsets + 1) * sizeof *t->sets);
    tset_t *s = &t->sets[t->nsets++];
    memset(s, 0, sizeof *s);
    snprintf(s->locale, sizeof s->locale, "%s", locale);
    return s;
}

static void set_field(tmpl_t *x, int f, const char *v)
{
    free(x->f[f]);
    x->f[f] = *v ? xstrdup(v) : NULL;
    x->set |= 1u << f;
}

/* ---- checking values ------------------------------------------------------------------------ */

/* Calls fn(name, n, arg) for every placeholder "{name}" or "{name|fallback}" of s. */
static void each_placeholder(const char *s, void (*fn)(const char *, size_t, void *), void *arg)
{
    for (const char *p = s ? strchr(s, '{') : NULL; p; p = strchr(p + 1, '{')) {
        const char *close = strchr(p, '}');
        if (close == NULL)
            return;
        fn(p + 1, strcspn(p + 1, "|}"), arg);
        p = close;
    }
}

static int placeholder_index(const char *name, size_t n)
{
    for (size_t i = 0; i < NPLACEHOLDERS; i++)
        if (strlen(placeholders[i]) == n && memcmp(placeholders[i], name, n) == 0)
            return (int)i;
    return -1;
}

typedef struct unknown {
    char name[32];
} unknown_t;

static void note_unknown(const char *name, size_t n, void *arg)
{
    unknown_t *u = arg;
    if (!u->name[0] && placeholder_index(name, n) < 0)
        snprintf(u->name, sizeof u->name, "%.*s", (int)(n < 31 ? n : 31), name);
}

/* "default|normal|high" -> "default, normal or high" */
static void list_choices(const char *choices, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (const char *p = choices; *p && o + 1 < outlen;) {
        size_t n = strcspn(p, "|");
        const char *sep = p[n] == '\0' ? "" : strchr(p + n + 1, '|') ? ", " : " or ";
        o += (size_t)snprintf(out + o, outlen - o, "%.*s%s", (int)n, p, sep);
        p += n + (p[n] == '|');
    }
}

static bool in_choices(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    for (const char *p = choices; *p;) {
        size_t n = strcspn(p, "|");
        if (n == vl && strncmp(p, v, n) == 0)
            return true;
        p += n + (p[n] == '|');
    }
    return false;
}

static bool android_resource(const char *v)
{
    if (!(*v >= 'a' && *v <= 'z') || strlen(v) > 100)
        return false;
    for (const char *p = v; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}

/* An absolute http(s) URL with a literal host; placeholders are known ones; no blanks. */
static const char *url_problem(const char *v)
{
    const char *rest = strncmp(v, "https://", 8) == 0  ? v + 8
                       : strncmp(v, "http://", 7) == 0 ? v + 7
                                                       : NULL;
    if (rest == NULL || *rest == '\0' || *rest == '/' || *rest == '{')
        return "must be an http:// or https:// URL with a host (placeholders such as "
               "{finalS3Key} may follow it)";
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '"')
            return "must be a URL without blanks, control characters or quotes";
    return NULL;
}

/* What is wrong with value v for field f, in msg; NULL when it is fine. */
static const char *value_problem(int f, const char *v, char *msg, size_t msglen)
{
    const struct fdef *d = &fdefs[f];
    char list[96];
    if (*v == '\0')
        return NULL; /* clears the field */
    switch (d->kind) {
    case K_ENUM:
        if (in_choices(d->choices, v))
            return NULL;
        list_choices(d->choices, list, sizeof list);
        snprintf(msg, msglen, "%s must be %s, not \"%.40s\"", d->name, list, v);
        return msg;
    case K_INT: {
        long n = strspn(v, "0123456789") == strlen(v) && strlen(v) <= 10 ? strtol(v, NULL, 10) : -1;
        if (n >= 0 && n <= d->max)
            return NULL;
        snprintf(msg, msglen, "%s must be a whole number from 0 to %ld %s", d->name, d->max,
                 d->unit);
        return msg;
    }
    case K_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "false"))
            return NULL;
        snprintf(msg, msglen, "%s must be true or false", d->name);
        return msg;
    case K_RES:
        if (android_resource(v))
            return NULL;
        snprintf(msg, msglen,
                 "%s must name an Android drawable resource: lower-case letters, digits and _, "
                 "starting with a letter (e.g. ic_notification)",
                 d->name);
        return msg;
    case K_URL: {
        const char *why = url_problem(v);
        unknown_t u = {""};
        each_placeholder(v, note_unknown, &u);
        if (!why && !u.name[0])
            return NULL;
        if (why)
            snprintf(msg, msglen, "%s %s", d->name, why);
        else
            snprintf(msg, msglen,
                     "unknown placeholder {%s} (known: jobId, userId, status, "
                     "message, error, count, totalCount, completedCount, finalS3Key)",
                     u.name);
        return msg;
    }
    default:
        return NULL;
    }
}

/* ---- creating ------------------------------------------------------------------------------- */

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
    char where[160], msg[256], tag[LANG_TAG_MAX + 1] = "";
    bool localized = o->locale && *o->locale;
    if (localized)
        snprintf(where, sizeof where, "templates.%.40s.%.40s.%.40s", o->locale, o->name, o->field);
    else
        snprintf(where, sizeof where, "templates.%.40s.%.40s", o->name, o->field);
    int f = 0;
    while (f < NFIELDS && strcmp(fdefs[f].name, o->field) != 0)
        f++;
    if (f == NFIELDS || strlen(o->name) >= sizeof t->sets[0].t[0].name) {
        snprintf(err, errlen, "%s: unknown template field", where);
        return -1;
    }
    if (localized && lang_tag_parse(o->locale, strlen(o->locale), tag) != 0) {
        snprintf(err, errlen, "%s: \"%s\" is not a BCP 47 language tag (such as fr or pt-BR)",
                 where, o->locale);
        return -1;
    }
    if (value_problem(f, o->value, msg, sizeof msg)) {
        snprintf(err, errlen, "%s: %s", where, msg);
        return -1;
    }
    set_field(get_or_add(localized ? get_or_add_set(t, tag) : &t->sets[0], o->name), f, o->value);
    return 0;
}

static void add_defaults(tset_t *s)
{
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        tmpl_t *x = get_or_add(s, defaults[i][0]);
        set_field(x, F_TITLE, defaults[i][1]);
        set_field(x, F_BODY, defaults[i][2]);
        set_field(x, F_ACTION, defaults[i][3]);
        set_field(x, F_TYPE, defaults[i][4]);
        set_field(x, F_SOUND, "default");
        set_field(x, F_PRIORITY, "high");
    }
}

static int check_budget(disp_templates_t *t, char *err, size_t errlen);

disp_templates_t *disp_templates_create(const disp_templates_opts_t *o, char *err, size_t errlen)
{
    disp_templates_t *t = xcalloc(1, sizeof *t);
    t->refs = 1;
    t->sets = xcalloc(1, sizeof *t->sets);
    t->nsets = 1;
    add_defaults(&t->sets[0]);
    const char *dl = o->default_locale && *o->default_locale ? o->default_locale : "en";
    if (lang_tag_parse(dl, strlen(dl), t->default_locale) != 0) {
        snprintf(err, errlen,
                 "templates.default_locale: \"%s\" is not a BCP 47 language tag (such as en)", dl);
        goto fail;
    }
    for (size_t i = 0; i < o->nfields; i++) {
        if (apply_field(t, &o->fields[i], err, errlen) != 0)
            goto fail;
    }
    if (parse_notify(t, o->notify ? o->notify : "", err, errlen) != 0 ||
        check_budget(t, err, errlen) != 0)
        goto fail;
    return t;
fail:
    disp_templates_destroy(t);
    return NULL;
}

disp_templates_t *disp_templates_ref(disp_templates_t *t)
{
    t->refs++;
    return t;
}

void disp_templates_destroy(disp_templates_t *t)
{
    if (t == NULL || --t->refs > 0)
        return;
    for (size_t s = 0; s < t->nsets; s++) {
        for (size_t i = 0; i < t->sets[s].n; i++)
            for (int f = 0; f < NFIELDS; f++)
                free(t->sets[s].t[i].f[f]);
        free(t->sets[s].t);
    }
    free(t->sets);
    buf_cleanup(&t->warnings);
    free(t);
}

const char *disp_templates_warnings(const disp_templates_t *t)
{
    return buf_cstr(&t->warnings);
}

bool disp_templates_notifies(const disp_templates_t *t, const queue_event_t *ev)
{
    return (unsigned)ev->status < QUEUE_ST_COUNT && t->notify[ev->status];
}

/* ---- locales -------------------------------------------------------------------------------- */

/* The first of tag's fallback chain that has templates or is the default locale; NULL if none. */
static const char *resolve_one(const disp_templates_t *t, const char *locale)
{
    char tag[LANG_TAG_MAX + 1];
    if (locale == NULL || lang_tag_parse(locale, strlen(locale), tag) != 0)
        return NULL;
    do {
        const tset_t *s = find_set(t, tag);
        if (s)
            return s->locale;
        if (strcmp(tag, t->default_locale) == 0)
            return t->default_locale;
    } while (lang_tag_parent(tag) == 0);
    return NULL;
}

const char *disp_templates_resolve(const disp_templates_t *t, const char *device_locale,
                                   const char *event_locale)
{
    const char *r = resolve_one(t, device_locale);
    if (r == NULL)
        r = resolve_one(t, event_locale);
    return r ? r : t->default_locale;
}

/* The sets of locale's fallback chain (the default locale's when locale is NULL or malformed);
 * start, when not NULL, receives the canonical tag the chain starts from. */
static void make_chain(const disp_templates_t *t, const char *locale, chain_t *c, char *start)
{
    char tag[LANG_TAG_MAX + 1];
    c->n = 0;
    if (locale == NULL || lang_tag_parse(locale, strlen(locale), tag) != 0)
        snprintf(tag, sizeof tag, "%s", t->default_locale);
    if (start)
        memcpy(start, tag, sizeof tag);
    do {
        const tset_t *s = find_set(t, tag);
        if (s && c->n < sizeof c->s / sizeof c->s[0])
            c->s[c->n++] = s;
    } while (lang_tag_parent(tag) == 0);
}

/* A set's template for an event: BATCH_<STATUS> first for batches, then <STATUS>. */
static const tmpl_t *pick(const tset_t *s, const queue_event_t *ev)
{
    char name[40];
    const char *st = queue_status_name(ev->status);
    if (ev->kind == QUEUE_EV_BATCH) {
        snprintf(name, sizeof name, "BATCH_%s", st);
        tmpl_t *b = find(s, name);
        if (b)
            return b;
    }
    return find(s, st);
}

/* A field for an event: from the first locale of the chain whose template sets it, else from the
 * default texts (whose template, once picked, answers for every field). */
static const char *field_for(const disp_templates_t *t, const chain_t *c, const queue_event_t *ev,
                             int f)
{
    for (size_t i = 0; i < c->n; i++) {
        const tmpl_t *x = pick(c->s[i], ev);
        if (x && (x->set & (1u << f)))
            return x->f[f];
    }
    const tmpl_t *x = pick(&t->sets[0], ev);
    return x ? x->f[f] : NULL;
}

/* ---- rendering ------------------------------------------------------------------------------ */

/* Percent-encodes v for a URL: unreserved characters and '/' stay (an S3 key's path). */
static void put_url_encoded(buf_t *out, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~/", *p)) {
            buf_putc(out, (char)*p);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            buf_append(out, e, 3);
        }
    }
}

static void put_placeholder(buf_t *out, const queue_event_t *ev, const char *name, size_t n,
                            bool url)
{
    const char *fallback = memchr(name, '|', n);
    size_t key_len = fallback ? (size_t)(fallback - name) : n;
    const char *v = NULL;
    char num[32];
    long count = ev->completed_count >= 0 ? ev->completed_count : ev->total_count;
    int idx = placeholder_index(name, key_len);
    switch (idx) {
    case 0:
        v = ev->job_id;
        break;
    case 1:
        v = ev->user_id;
        break;
    case 2:
        v = queue_status_name(ev->status);
        break;
    case 3:
        v = ev->message;
        break;
    case 4:
        v = ev->error;
        break;
    case 5:
    case 6:
    case 7: {
        long k = idx == 5 ? count : idx == 6 ? ev->total_count : ev->completed_count;
        if (k >= 0) {
            buf_fmt_i64(num, k);
            v = num;
        }
        break;
    }
    case 8:
        v = ev->final_s3_key;
        break;
    default:
        break;
    }
    if (v && *v) {
        if (url)
            put_url_encoded(out, v);
        else
            buf_puts(out, v);
    } else if (fallback) {
        buf_append(out, fallback + 1, n - key_len - 1);
    }
}

static void render_text(buf_t *out, const char *tmpl, const queue_event_t *ev, bool url)
{
    buf_reset(out);
    if (tmpl == NULL)
        return;
    for (const char *p = tmpl; *p;) {
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        if (close) {
            put_placeholder(out, ev, p + 1, (size_t)(close - p - 1), url);
            p = close + 1;
        } else { /* the text up to the next '{' (or past a '{' that opens nothing) in one go */
            size_t run = 1 + strcspn(p + 1, "{");
            buf_append(out, p, run);
            p += run;
        }
    }
}

static void render_data(buf_t *out, const disp_templates_t *t, const chain_t *c,
                        const queue_event_t *ev)
{
    const char *type = field_for(t, c, ev, F_TYPE);
    const char *action = field_for(t, c, ev, F_ACTION);
    const char *st = queue_status_name(ev->status);
    buf_reset(out);
    buf_puts(out, ev->kind == QUEUE_EV_BATCH ? "{\"batchJobId\":" : "{\"jobId\":");
    buf_json_cstr(out, ev->job_id);
    buf_puts(out, ",\"status\":\"");
    buf_puts(out, st);
    buf_putc(out, '"');
    if (type) {
        buf_puts(out, ",\"type\":");
        buf_json_cstr(out, type);
    }
    if (action) {
        buf_puts(out, ",\"action\":");
        buf_json_cstr(out, action);
    }
    buf_putc(out, '}');
}

void disp_rendered_init(disp_rendered_t *r)
{
    memset(r, 0, sizeof *r);
    r->ttl = EXPO_UNSET;
    r->badge = EXPO_UNSET;
}

void disp_rendered_cleanup(disp_rendered_t *r)
{
    buf_cleanup(&r->title);
    buf_cleanup(&r->body);
    buf_cleanup(&r->subtitle);
    buf_cleanup(&r->data);
    buf_cleanup(&r->image);
    buf_cleanup(&r->tag);
    free(r->sound);
    free(r->priority);
    free(r->channel_id);
    free(r->category_id);
    free(r->icon);
    free(r->interruption_level);
    r->sound = r->priority = r->channel_id = r->category_id = NULL;
    r->icon = r->interruption_level = NULL;
}

/* *dst becomes a copy of the field (NULL when unset). */
static void copy_field(char **dst, const disp_templates_t *t, const chain_t *c,
                       const queue_event_t *ev, int f)
{
    const char *v = field_for(t, c, ev, f);
    free(*dst);
    *dst = v ? xstrdup(v) : NULL;
}

static long number_field(const disp_templates_t *t, const chain_t *c, const queue_event_t *ev,
                         int f)
{
    const char *v = field_for(t, c, ev, f);
    return v ? atol(v) : EXPO_UNSET;
}

static bool bool_field(const disp_templates_t *t, const chain_t *c, const queue_event_t *ev, int f)
{
    const char *v = field_for(t, c, ev, f);
    return v && strcmp(v, "true") == 0;
}

int disp_templates_render(const disp_templates_t *t, const queue_event_t *ev, const char *locale,
                          disp_rendered_t *out)
{
    if (!disp_templates_notifies(t, ev))
        return -1;
    chain_t c;
    make_chain(t, locale, &c, out->locale);
    render_text(&out->title, field_for(t, &c, ev, F_TITLE), ev, false);
    render_text(&out->body, field_for(t, &c, ev, F_BODY), ev, false);
    render_text(&out->subtitle, field_for(t, &c, ev, F_SUBTITLE), ev, false);
    render_text(&out->tag, field_for(t, &c, ev, F_TAG), ev, false);
    render_text(&out->image, field_for(t, &c, ev, F_IMAGE), ev, true);
    render_data(&out->data, t, &c, ev);
    copy_field(&out->sound, t, &c, ev, F_SOUND);
    copy_field(&out->priority, t, &c, ev, F_PRIORITY);
    copy_field(&out->channel_id, t, &c, ev, F_CHANNEL);
    copy_field(&out->category_id, t, &c, ev, F_CATEGORY);
    copy_field(&out->icon, t, &c, ev, F_ICON);
    copy_field(&out->interruption_level, t, &c, ev, F_LEVEL);
    out->ttl = number_field(t, &c, ev, F_TTL);
    out->badge = number_field(t, &c, ev, F_BADGE);
    out->mutable_content = bool_field(t, &c, ev, F_MUTABLE);
    out->content_available = bool_field(t, &c, ev, F_AVAILABLE);
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
    m->badge = r->badge;
    m->rich_image = r->image.len ? r->image.data : NULL;
    m->icon = r->icon;
    m->tag = r->tag.len ? r->tag.data : NULL;
    m->interruption_level = r->interruption_level;
    m->mutable_content = r->mutable_content;
    m->content_available = r->content_available;
    m->collapse_id = collapse_id;
}

/* ---- Expo's payload budget ------------------------------------------------------------------ */

/* The longest value of every placeholder: ids of 128 characters that JSON doubles ('"'), texts of
 * QUEUE_TEXT_MAX bytes, an S3 key of QUEUE_TEXT_MAX bytes that percent-encoding triples in a URL
 * (' '), counts of 10 digits; the longest Expo token. */
typedef struct worst {
    char id[QUEUE_ID_MAX + 1], text[QUEUE_TEXT_MAX + 1], key[QUEUE_TEXT_MAX + 1];
    char token[TOKEN_WORST_MAX];
} worst_t;

/* One event of status st and kind k: with the longest placeholder values, or the shortest. */
static void sample_event(queue_event_t *ev, queue_status_t st, queue_event_kind_t k,
                         const worst_t *w)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = k;
    ev->status = st;
    ev->job_id = w ? w->id : "j";
    ev->batch_job_id = k == QUEUE_EV_BATCH ? ev->job_id : NULL;
    ev->user_id = w ? w->id : "u";
    ev->message = w ? w->text : NULL;
    ev->error = w ? w->text : NULL;
    ev->final_s3_key = w ? w->key : NULL;
    ev->completed_count = ev->total_count = w ? 1000000000 : -1;
}

/* Size of the message of ev in locale, to the longest token, with the collapseId herald sets. */
static size_t message_size(const disp_templates_t *t, const queue_event_t *ev, const char *locale,
                           const char *token)
{
    disp_rendered_t r;
    char key[QUEUE_KEY_MAX];
    expo_msg_t m;
    disp_rendered_init(&r);
    disp_templates_render(t, ev, locale, &r);
    queue_event_key(ev, key, sizeof key);
    disp_rendered_msg(&r, token, key, &m);
    size_t n = expo_msg_size(&m);
    disp_rendered_cleanup(&r);
    return n;
}

typedef struct used {
    buf_t *out;
    bool seen[NPLACEHOLDERS];
    const char *suffix;
} used_t;

static void note_used(const char *name, size_t n, void *arg)
{
    used_t *u = arg;
    int i = placeholder_index(name, n);
    if (i < 0 || u->seen[i])
        return;
    u->seen[i] = true;
    buf_printf(u->out, "%s{%s}%s", u->out->len ? ", " : "", placeholders[i], u->suffix);
}

/* "{message}, {finalS3Key} in image": the placeholders the event's texts use. */
static void used_placeholders(const disp_templates_t *t, const char *locale,
                              const queue_event_t *ev, buf_t *out)
{
    static const int text_fields[] = {F_TITLE, F_BODY, F_SUBTITLE, F_TAG};
    chain_t c;
    used_t u = {.out = out, .suffix = ""};
    make_chain(t, locale, &c, NULL);
    for (size_t i = 0; i < sizeof text_fields / sizeof text_fields[0]; i++)
        each_placeholder(field_for(t, &c, ev, text_fields[i]), note_used, &u);
    memset(u.seen, 0, sizeof u.seen);
    u.suffix = " in image";
    each_placeholder(field_for(t, &c, ev, F_IMAGE), note_used, &u);
}

/* The message sizes of one (locale, status, kind): least with the shortest placeholder values and
 * the shortest token, most with the longest ones. */
static void sizes(const disp_templates_t *t, const char *locale, queue_status_t st,
                  queue_event_kind_t k, const worst_t *w, size_t *least, size_t *most)
{
    queue_event_t ev;
    sample_event(&ev, st, k, NULL);
    *least = message_size(t, &ev, locale, "ExponentPushToken[x]");
    sample_event(&ev, st, k, w);
    *most = message_size(t, &ev, locale, w->token);
}

/* Checks one (status, kind) in every locale: an error when a message is past Expo's limit before
 * any placeholder value, one warning naming the locales whose longest values could pass it. */
static int check_status(disp_templates_t *t, const char *const *locales, size_t nlocales,
                        queue_status_t st, queue_event_kind_t k, const worst_t *w, char *err,
                        size_t errlen)
{
    char what[48];
    buf_t over = BUF_INIT, used = BUF_INIT;
    size_t worst = 0;
    int rc = 0;
    snprintf(what, sizeof what, "%s%s events", k == QUEUE_EV_BATCH ? "batch " : "",
             queue_status_name(st));
    for (size_t i = 0; i < nlocales && rc == 0; i++) {
        size_t least, most;
        sizes(t, locales[i], st, k, w, &least, &most);
        if (least > EXPO_MAX_PAYLOAD) {
            snprintf(err, errlen,
                     "templates: %s in locale %s: the notification is %zu bytes before any "
                     "placeholder value, over Expo's %d-byte limit",
                     what, locales[i], least, EXPO_MAX_PAYLOAD);
            rc = -1;
        } else if (most > EXPO_MAX_PAYLOAD) {
            buf_printf(&over, "%s%s", over.len ? ", " : "", locales[i]);
            if (most > worst) {
                queue_event_t ev;
                sample_event(&ev, st, k, w);
                buf_reset(&used);
                used_placeholders(t, locales[i], &ev, &used);
                worst = most;
            }
        }
    }
    if (rc == 0 && over.len)
        buf_printf(
            &t->warnings,
            "templates: %s in locale%s %s: up to %zu bytes with the longest placeholder values "
            "(%s), over Expo's %d-byte limit; such notifications fail with MessageTooBig\n",
            what, strchr(buf_cstr(&over), ',') ? "s" : "", buf_cstr(&over), worst,
            used.len ? buf_cstr(&used) : "ids", EXPO_MAX_PAYLOAD);
    buf_cleanup(&over);
    buf_cleanup(&used);
    return rc;
}

static int check_budget(disp_templates_t *t, char *err, size_t errlen)
{
    worst_t *w = xmalloc(sizeof *w);
    memset(w->id, '"', QUEUE_ID_MAX);
    w->id[QUEUE_ID_MAX] = '\0';
    memset(w->text, 'x', QUEUE_TEXT_MAX);
    w->text[QUEUE_TEXT_MAX] = '\0';
    memset(w->key, ' ', QUEUE_TEXT_MAX);
    w->key[QUEUE_TEXT_MAX] = '\0';
    snprintf(w->token, sizeof w->token, "ExponentPushToken[%0200d]", 0);
    /* every locale with templates, and the default locale when it has none of its own */
    const char **locales = xcalloc(t->nsets, sizeof *locales);
    size_t n = 0;
    for (size_t i = 1; i < t->nsets; i++)
        locales[n++] = t->sets[i].locale;
    if (!find_set(t, t->default_locale))
        locales[n++] = t->default_locale;
    int rc = 0;
    for (int st = 0; st < QUEUE_ST_COUNT && rc == 0; st++) {
        if (!t->notify[st])
            continue;
        rc = check_status(t, locales, n, (queue_status_t)st, QUEUE_EV_JOB, w, err, errlen);
        if (rc == 0)
            rc = check_status(t, locales, n, (queue_status_t)st, QUEUE_EV_BATCH, w, err, errlen);
    }
    free(locales);
    free(w);
    return rc;
}
