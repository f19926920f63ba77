/* templates.h - notification texts per job status and locale, from configuration with the
 * PhotoEditor texts as defaults (reference/seed-origin.md).
 *
 * Template names are statuses (COMPLETED, FAILED, PROCESSING, EDITING, QUEUED) and BATCH_<STATUS>
 * for batch events (BATCH_COMPLETED has a default; other batch statuses fall back to <STATUS>).
 * Fields: title, body, subtitle, sound, priority, channel_id, category_id, ttl, action, type, and
 * the rich ones image (richContent.image, a URL), icon, tag, interruption_level, badge,
 * mutable_content, content_available. title, body, subtitle, tag and image may hold placeholders:
 * {jobId} {userId} {status} {message} {count} {totalCount} {completedCount} {finalS3Key} and
 * {error|fallback text} (the fallback when the event has no error); in image their values are
 * percent-encoded.
 *
 * Locales: templates.<locale>.<NAME>.<field> overrides a field for one BCP 47 locale. A field a
 * locale does not set comes from the next broader locale (pt-BR -> pt), then from the default
 * texts (built-ins and templates.<NAME>.<field>), which are in templates.default_locale. For one
 * device the locale is the first, walking broader, that has templates (or is the default locale):
 * the device's own, else the event's, else the default.
 *
 * Every value is checked when the templates are created (type, range, enumerations), and so is
 * Expo's 4096-byte payload: a message over it before any placeholder value is an error, one that
 * the longest placeholder values could push over it is a warning (disp_templates_warnings).
 *
 * Templates are reference-counted so that an event keeps the texts it was accepted with across a
 * reload. Loop-thread only (the count is not atomic). */
#ifndef HERALD_DISPATCHER_TEMPLATES_H
#define HERALD_DISPATCHER_TEMPLATES_H

#include "core/buf.h"
#include "core/langtag.h"
#include "expo/expo.h"
#include "queue/event.h"

#include <stdbool.h>

typedef struct disp_templates disp_templates_t;

/* One override of a built-in text: templates.<name>.<field> = value, or
 * templates.<locale>.<name>.<field> = value. */
typedef struct disp_template_field {
    const char *locale; /* BCP 47 tag (any letter case), or NULL / "" for the default texts */
    const char *name;   /* template name: "COMPLETED", "BATCH_COMPLETED", ... */
    const char *field;  /* one of the fields above */
    const char *value;  /* "" clears the field */
} disp_template_field_t;

typedef struct disp_templates_opts {
    const char *notify;         /* statuses that notify, comma-separated (templates.notify) */
    const char *default_locale; /* the default texts' locale (templates.default_locale); NULL: en */
    const disp_template_field_t *fields; /* applied in order over the built-in texts */
    size_t nfields;
} disp_templates_opts_t;

/* new (one reference): o and its strings are read during the call. NULL with a sentence in err
 * (unknown status in notify, unknown field, malformed locale, a value of the wrong type or out of
 * range, a message over Expo's payload limit, ...). */
disp_templates_t *disp_templates_create(const disp_templates_opts_t *o, char *err, size_t errlen);
/* Another reference to t (returned); each is released with disp_templates_destroy. */
disp_templates_t *disp_templates_ref(disp_templates_t *t);
/* Releases one reference; the last one frees t. Accepts NULL. */
void disp_templates_destroy(disp_templates_t *t);
/* Sentences, one per line, about templates whose messages the longest placeholder values could
 * push over Expo's 4096-byte limit; "" when none. Borrowed from t. */
const char *disp_templates_warnings(const disp_templates_t *t);
/* Whether events of this status (batch or not) produce a notification. */
bool disp_templates_notifies(const disp_templates_t *t, const queue_event_t *ev);
/* The locale whose texts a device gets: the first of device_locale's, then event_locale's
 * fallback chain that has templates or is the default locale; else the default locale. Either may
 * be NULL, "" or malformed (skipped). Returns a canonical tag borrowed from t: devices with the
 * same answer get the same texts for an event. */
const char *disp_templates_resolve(const disp_templates_t *t, const char *device_locale,
                                   const char *event_locale);

/* The texts for one event in one locale, shared by the devices that resolve to it. It owns every
 * string, so it outlives the templates it came from. */
typedef struct disp_rendered {
    char locale[LANG_TAG_MAX + 1];     /* the locale rendered */
    buf_t title, body, subtitle, data; /* data: the JSON object for expo_msg_t.data */
    buf_t image, tag;                  /* empty: not set */
    char *sound, *priority, *channel_id, *category_id, *icon, *interruption_level; /* NULL: unset */
    long ttl, badge; /* EXPO_UNSET when unset */
    bool mutable_content, content_available;
} disp_rendered_t;

void disp_rendered_init(disp_rendered_t *r);
void disp_rendered_cleanup(disp_rendered_t *r);
/* Renders ev in locale (a tag, e.g. from disp_templates_resolve; NULL: the default locale) into
 * out (copies: nothing of t is kept); returns 0, or -1 when the status does not notify (out then
 * unchanged). out is initialised (disp_rendered_init) or holds an earlier rendering, which is
 * replaced field by field, its buffers reused. */
int disp_templates_render(const disp_templates_t *t, const queue_event_t *ev, const char *locale,
                          disp_rendered_t *out);
/* Fills m (strings borrowed from r) for one device; collapse_id borrowed too. */
void disp_rendered_msg(const disp_rendered_t *r, const char *token, const char *collapse_id,
                       expo_msg_t *m);

#endif
