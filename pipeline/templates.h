/* templates.h - notification texts per job status, from configuration with the PhotoEditor texts
 * as defaults (reference/seed-origin.md).
 *
 * Template names are statuses (COMPLETED, FAILED, PROCESSING, EDITING, QUEUED) and BATCH_<STATUS>
 * for batch events (BATCH_COMPLETED has a default; other batch statuses fall back to <STATUS>).
 * Fields: title, body, subtitle, sound, priority, channel_id, category_id, ttl, action, type.
 * Text fields may hold placeholders: {jobId} {userId} {status} {message} {count} {totalCount}
 * {completedCount} and {error|fallback text} (the fallback when the event has no error). */
#ifndef HERALD_DISPATCHER_TEMPLATES_H
#define HERALD_DISPATCHER_TEMPLATES_H

#include "core/buf.h"
#include "expo/expo.h"
#include "queue/event.h"

#include <stdbool.h>

typedef struct disp_templates disp_templates_t;

/* One override of a built-in text: templates.<name>.<field> = value. */
typedef struct disp_template_field {
    const char *name;  /* template name: "COMPLETED", "BATCH_COMPLETED", ... */
    const char *field; /* one of the fields above */
    const char *value; /* "" clears the field */
} disp_template_field_t;

typedef struct disp_templates_opts {
    const char *notify; /* statuses that notify, comma-separated (templates.notify) */
    const disp_template_field_t *fields; /* applied in order over the built-in texts */
    size_t nfields;
} disp_templates_opts_t;

/* new: o and its strings are read during the call. NULL with a sentence in err (unknown status
 * in notify, unknown field, bad priority or ttl, ...). */
disp_templates_t *disp_templates_create(const disp_templates_opts_t *o, char *err, size_t errlen);
void disp_templates_destroy(disp_templates_t *t);
/* Whether events of this status (batch or not) produce a notification. */
bool disp_templates_notifies(const disp_templates_t *t, const queue_event_t *ev);

/* The texts for one event, rendered once and shared by all of the user's devices. It owns every
 * string: a reload destroys the templates while events rendered from them are still being sent. */
typedef struct disp_rendered {
    buf_t title, body, subtitle, data; /* data: the JSON object for expo_msg_t.data */
    char *sound, *priority, *channel_id, *category_id; /* NULL: not set */
    long ttl;
} disp_rendered_t;

void disp_rendered_init(disp_rendered_t *r);
void disp_rendered_cleanup(disp_rendered_t *r);
/* Renders ev into out (copies: nothing of t is kept); returns 0, or -1 when the status does not
 * notify. */
int disp_templates_render(const disp_templates_t *t, const queue_event_t *ev, disp_rendered_t *out);
/* Fills m (strings borrowed from r) for one device; collapse_id borrowed too. */
void disp_rendered_msg(const disp_rendered_t *r, const char *token, const char *collapse_id,
                       expo_msg_t *m);

#endif
