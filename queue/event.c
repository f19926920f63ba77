/* event.c - job event decoder: unwraps the envelopes of DESIGN.md "Events in" with jansson and
 * validates the inner event into a queue_event_t. Pure C without I/O so the unit tests and the
 * fuzz target drive it directly; queue/kafka.c calls it for every consumed message. */
#include "queue/event.h"

#include "core/clock.h"
#include "core/jscan.h"
#include "core/langtag.h"
#include "db/keys.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The ids and the idempotency key an event yields name Redis keys (dedup marks, traces, device
 * hashes): each fits its key family (db/keys.h), so no key built from an event is cut short. */
_Static_assert(QUEUE_KEY_MAX - 1 <= KEY_EVENT_MAX, "idempotency keys fit dedup marks");
_Static_assert(QUEUE_ID_MAX <= KEY_JOB_MAX, "job ids fit trace keys");
_Static_assert(QUEUE_ID_MAX <= KEY_USER_MAX, "user ids fit dev and trace keys");

enum {
    F_JOB,
    F_BATCH,
    F_USER,
    F_PREV,
    F_MSG,
    F_TS,
    F_ERR,
    F_KEY,
    F_ENV,
    F_SNSID,
    F_SQSID,
    F_CORR,
    F_TRACE,
    F_REPLAY,
    F_LOCALE,
    F_COUNT
};
#define ABSENT ((size_t)-1)

typedef struct dec {
    json_t *roots[QUEUE_MAX_ENVELOPES + 1]; /* every document parsed, owned */
    size_t nroots;
    json_t *attrs[QUEUE_MAX_ENVELOPES]; /* MessageAttributes objects, outer to inner, borrowed */
    size_t nattrs;
    const queue_header_t *hdrs;
    size_t nhdrs;
    size_t off[F_COUNT]; /* offsets into mem, ABSENT when not set */
    buf_t *mem;
    char env[64];
    queue_dec_error_t *why;
} dec_t;

static const char *const status_names[QUEUE_ST_COUNT] = {"QUEUED", "PROCESSING", "EDITING",
                                                         "COMPLETED", "FAILED"};
static const char *const reason_names[QUEUE_DEC_REASON_COUNT] = {"ok",
                                                                 "not_json",
                                                                 "not_object",
                                                                 "too_large",
                                                                 "envelope_depth",
                                                                 "missing_user_id",
                                                                 "missing_job_id",
                                                                 "missing_status",
                                                                 "unknown_status",
                                                                 "bad_field"};

const char *queue_status_name(queue_status_t st)
{
    return (unsigned)st < QUEUE_ST_COUNT ? status_names[st] : "UNKNOWN";
}

int queue_status_parse(const char *s, queue_status_t *out)
{
    for (int i = 0; i < QUEUE_ST_COUNT; i++) {
        if (strcmp(s, status_names[i]) == 0) {
            *out = (queue_status_t)i;
            return 0;
        }
    }
    return -1;
}

const char *queue_dec_reason_name(queue_dec_reason_t r)
{
    return (unsigned)r < QUEUE_DEC_REASON_COUNT ? reason_names[r] : "unknown";
}

static int fail(dec_t *d, queue_dec_reason_t r, const char *field, const char *detail)
{
    d->why->reason = r;
    snprintf(d->why->field, sizeof d->why->field, "%s", field ? field : "");
    snprintf(d->why->detail, sizeof d->why->detail, "%s", detail);
    return -1;
}

static int bad_field(dec_t *d, const char *field, const char *what)
{
    char detail[160];
    snprintf(detail, sizeof detail, "%s %s", field, what);
    return fail(d, QUEUE_DEC_BAD_FIELD, field, detail);
}

static void put(dec_t *d, int slot, const char *s, size_t n)
{
    d->off[slot] = d->mem->len;
    buf_append(d->mem, s, n);
    buf_putc(d->mem, '\0');
}

static bool printable_id(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    }
    return true;
}

/* Longest prefix of s of at most max bytes that does not split a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t cut = max;
    while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
        cut--;
    return cut;
}

/* ---- envelopes ---- */

typedef enum { ENV_NONE, ENV_CONNECT, ENV_SQS, ENV_SNS, ENV_DEFAULT } env_kind_t;

static json_t *str_member(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? v : NULL;
}

/* Which envelope o is, checked in DESIGN.md's order; *inner is the wrapped value (borrowed). */
static env_kind_t envelope_of(json_t *o, json_t **inner)
{
    json_t *v;
    if (json_object_get(o, "schema") && (v = json_object_get(o, "payload"))) {
        *inner = v;
        return ENV_CONNECT;
    }
    if ((v = str_member(o, "Body")) || (v = str_member(o, "body"))) {
        *inner = v;
        return ENV_SQS;
    }
    json_t *type = str_member(o, "Type");
    if (type && strcmp(json_string_value(type), "Notification") == 0 &&
        (v = str_member(o, "Message"))) {
        *inner = v;
        return ENV_SNS;
    }
    if ((v = str_member(o, "default"))) {
        *inner = v;
        return ENV_DEFAULT;
    }
    return ENV_NONE;
}

static json_t *parse(dec_t *d, const char *s, size_t n, const char *what)
{
    json_error_t jerr;
    json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!j) {
        char detail[160];
        snprintf(detail, sizeof detail, "%s is not JSON: %.100s", what, jerr.text);
        fail(d, QUEUE_DEC_NOT_JSON, NULL, detail);
        return NULL;
    }
    d->roots[d->nroots++] = j;
    if (!json_is_object(j)) {
        char detail[160];
        snprintf(detail, sizeof detail, "%s is not a JSON object", what);
        fail(d, QUEUE_DEC_NOT_OBJECT, NULL, detail);
        return NULL;
    }
    return j;
}

/* Remembers what an envelope says about its message: ids and attributes. */
static void note_envelope(dec_t *d, json_t *o, env_kind_t k)
{
    static const char *const names[] = {"", "connect", "sqs", "sns", "default"};
    size_t n = strlen(d->env);
    snprintf(d->env + n, sizeof d->env - n, "%s%s", n ? "+" : "", names[k]);
    json_t *attrs = json_object_get(o, "MessageAttributes");
    if (!attrs)
        attrs = json_object_get(o, "messageAttributes");
    if (json_is_object(attrs) && d->nattrs < QUEUE_MAX_ENVELOPES)
        d->attrs[d->nattrs++] = attrs;
    json_t *id = NULL;
    int slot = F_SQSID;
    if (k == ENV_SNS) {
        id = str_member(o, "MessageId");
        slot = F_SNSID;
    } else if (k == ENV_SQS) {
        if (!(id = str_member(o, "messageId")))
            id = str_member(o, "MessageId");
    }
    if (id && d->off[slot] == ABSENT &&
        printable_id(json_string_value(id), json_string_length(id), QUEUE_ID_MAX))
        put(d, slot, json_string_value(id), json_string_length(id));
}

static const char *env_what(env_kind_t k)
{
    switch (k) {
    case ENV_CONNECT:
        return "Kafka Connect payload";
    case ENV_SQS:
        return "SQS Body";
    case ENV_SNS:
        return "SNS Message";
    default:
        return "SNS default";
    }
}

/* Unwraps envelopes from root; returns the inner event object (borrowed) or NULL. */
static json_t *unwrap(dec_t *d, json_t *o)
{
    for (int depth = 0;; depth++) {
        json_t *inner = NULL;
        env_kind_t k = envelope_of(o, &inner);
        if (k == ENV_NONE)
            return o;
        if (depth == QUEUE_MAX_ENVELOPES) {
            fail(d, QUEUE_DEC_ENVELOPE_DEPTH, NULL, "more than 4 nested envelopes");
            return NULL;
        }
        note_envelope(d, o, k);
        if (json_is_object(inner)) {
            o = inner;
            continue;
        }
        if (!json_is_string(inner)) {
            char detail[160];
            snprintf(detail, sizeof detail, "%s is neither an object nor a string", env_what(k));
            fail(d, QUEUE_DEC_NOT_OBJECT, NULL, detail);
            return NULL;
        }
        o = parse(d, json_string_value(inner), json_string_length(inner), env_what(k));
        if (!o)
            return NULL;
    }
}

/* ---- fields with fallback ---- */

typedef struct src {
    const char *s;
    size_t n;
    const char *from; /* "body", "attribute", "header" */
} src_t;

/* Finds name in the body, then the attributes (innermost first), then the headers. Returns 1
 * found, 0 absent, -1 when the body holds a non-string (bad_field). */
static int lookup(dec_t *d, json_t *body, const char *name, src_t *out)
{
    json_t *v = json_object_get(body, name);
    if (v && !json_is_null(v)) {
        if (!json_is_string(v))
            return bad_field(d, name, "is not a string");
        *out = (src_t){json_string_value(v), json_string_length(v), "body"};
        return 1;
    }
    for (size_t i = d->nattrs; i-- > 0;) {
        json_t *a = json_object_get(d->attrs[i], name);
        json_t *val = json_is_object(a) ? str_member(a, "Value") : NULL;
        if (!val && json_is_object(a))
            val = str_member(a, "StringValue");
        if (val) {
            *out = (src_t){json_string_value(val), json_string_length(val), "attribute"};
            return 1;
        }
    }
    for (size_t i = 0; i < d->nhdrs; i++) {
        if (d->hdrs[i].value && d->hdrs[i].name && strcasecmp(d->hdrs[i].name, name) == 0) {
            *out = (src_t){d->hdrs[i].value, d->hdrs[i].len, "header"};
            return 1;
        }
    }
    return 0;
}

/* An id field with fallback: 1 stored, 0 absent, -1 bad. */
static int take_id(dec_t *d, json_t *body, const char *name, int slot)
{
    src_t s;
    int rc = lookup(d, body, name, &s);
    if (rc <= 0)
        return rc;
    if (!printable_id(s.s, s.n, QUEUE_ID_MAX)) {
        char what[64];
        snprintf(what, sizeof what, "(from %s) must be 1-128 printable ASCII", s.from);
        return bad_field(d, name, what);
    }
    put(d, slot, s.s, s.n);
    return 1;
}

static int take_status(dec_t *d, json_t *body, queue_status_t *st)
{
    src_t s;
    int rc = lookup(d, body, "status", &s);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return fail(d, QUEUE_DEC_MISSING_STATUS, NULL, "no status in body, attributes or headers");
    char tmp[16];
    if (s.n >= sizeof tmp || memchr(s.s, '\0', s.n))
        return fail(d, QUEUE_DEC_UNKNOWN_STATUS, "status", "status is not a known job status");
    memcpy(tmp, s.s, s.n);
    tmp[s.n] = '\0';
    if (queue_status_parse(tmp, st) < 0) {
        char detail[160];
        snprintf(detail, sizeof detail, "status \"%s\" is not a known job status", tmp);
        return fail(d, QUEUE_DEC_UNKNOWN_STATUS, "status", detail);
    }
    return 0;
}

static int take_ids(dec_t *d, json_t *body, queue_event_t *ev)
{
    int rc;
    if ((rc = take_id(d, body, "userId", F_USER)) < 0)
        return -1;
    if (rc == 0)
        return fail(d, QUEUE_DEC_MISSING_USER_ID, NULL, "no userId in body, attributes or headers");
    int job = take_id(d, body, "jobId", F_JOB);
    if (job < 0)
        return -1;
    int batch = take_id(d, body, "batchJobId", F_BATCH);
    if (batch < 0)
        return -1;
    if (!job && !batch)
        return fail(d, QUEUE_DEC_MISSING_JOB_ID, NULL, "neither jobId nor batchJobId present");
    ev->kind = job ? QUEUE_EV_JOB : QUEUE_EV_BATCH;
    return take_status(d, body, &ev->status);
}

/* Optional free text: string (cut to QUEUE_TEXT_MAX), null or absent. */
static int take_text(dec_t *d, json_t *o, const char *name, const char *field, int slot,
                     queue_event_t *ev)
{
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return bad_field(d, field, "is not a string");
    size_t n = json_string_length(v);
    size_t cut = utf8_cut(json_string_value(v), n, QUEUE_TEXT_MAX);
    if (cut < n)
        ev->truncated = true;
    put(d, slot, json_string_value(v), cut);
    return 0;
}

/* Optional bounded string that is never cut (keys and names). */
static int take_bounded(dec_t *d, json_t *o, const char *name, const char *field, int slot,
                        size_t max)
{
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return bad_field(d, field, "is not a string");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > max || memchr(s, '\0', n))
        return bad_field(d, field, "is too long");
    put(d, slot, s, n);
    return 0;
}

static int take_count(dec_t *d, json_t *o, const char *name, long *out)
{
    json_t *v = json_object_get(o, name);
    *out = -1;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000000)
        return bad_field(d, name, "must be an integer 0-1000000000");
    *out = (long)json_integer_value(v);
    return 0;
}

static int take_timestamp(dec_t *d, json_t *body, queue_event_t *ev)
{
    json_t *v = json_object_get(body, "timestamp");
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        json_int_t t = json_integer_value(v);
        if (t < 0 || t > 100000000000000LL)
            return bad_field(d, "timestamp", "is out of range");
        ev->timestamp_ms = t < 100000000000LL ? t * 1000 : t; /* seconds or milliseconds */
        char num[32];
        int n = snprintf(num, sizeof num, "%lld", (long long)t);
        put(d, F_TS, num, (size_t)n);
        return 0;
    }
    if (!json_is_string(v) || !printable_id(json_string_value(v), json_string_length(v), 64))
        return bad_field(d, "timestamp", "must be a string of 1-64 printable ASCII");
    put(d, F_TS, json_string_value(v), json_string_length(v));
    int64_t ms;
    if (clk_parse_iso8601(d->mem->data + d->off[F_TS], &ms) == 0)
        ev->timestamp_ms = ms;
    return 0;
}

static int take_data(dec_t *d, json_t *body, queue_event_t *ev)
{
    json_t *data = json_object_get(body, "data");
    if (!data || json_is_null(data))
        return 0;
    if (!json_is_object(data))
        return bad_field(d, "data", "is not an object");
    if (take_text(d, data, "error", "data.error", F_ERR, ev) < 0 ||
        take_bounded(d, data, "finalS3Key", "data.finalS3Key", F_KEY, QUEUE_TEXT_MAX) < 0 ||
        take_bounded(d, data, "previousStatus", "data.previousStatus", F_PREV, 32) < 0)
        return -1;
    return 0;
}

/* Correlation metadata never rejects an event: invalid values are ignored. */
static void take_meta(dec_t *d, json_t *body, const char *name, int slot)
{
    src_t s;
    json_t *v = json_object_get(body, name);
    if (json_is_string(v))
        s = (src_t){json_string_value(v), json_string_length(v), "body"};
    else if (!v || json_is_null(v)) {
        size_t i;
        for (i = 0; i < d->nhdrs; i++) {
            if (d->hdrs[i].value && d->hdrs[i].name && strcasecmp(d->hdrs[i].name, name) == 0)
                break;
        }
        if (i == d->nhdrs)
            return;
        s = (src_t){d->hdrs[i].value, d->hdrs[i].len, "header"};
    } else {
        return;
    }
    if (printable_id(s.s, s.n, QUEUE_ID_MAX))
        put(d, slot, s.s, s.n);
}

/* heraldctl dlq replay's header; only a Kafka header (never the body or attributes) names it. */
static int take_replay_device(dec_t *d)
{
    for (size_t i = 0; i < d->nhdrs; i++) {
        const queue_header_t *h = &d->hdrs[i];
        if (h->name == NULL || strcasecmp(h->name, QUEUE_REPLAY_DEVICE_HEADER) != 0)
            continue;
        if (h->value == NULL || !printable_id(h->value, h->len, KEY_DEVICE_MAX))
            return bad_field(d, QUEUE_REPLAY_DEVICE_HEADER, "must be 1-128 printable ASCII");
        put(d, F_REPLAY, h->value, h->len);
        return 0;
    }
    return 0;
}

/* The event's locale (body, then attributes, then headers), in canonical case. Like correlation
 * metadata it never rejects an event: a missing or malformed locale only means the device's locale
 * or the default texts decide. */
static void take_locale(dec_t *d, json_t *body)
{
    src_t s;
    char tag[LANG_TAG_MAX + 1];
    json_t *v = json_object_get(body, "locale");
    if (v && !json_is_null(v) && !json_is_string(v))
        return;
    if (lookup(d, body, "locale", &s) == 1 && lang_tag_parse(s.s, s.n, tag) == 0)
        put(d, F_LOCALE, tag, strlen(tag));
}

static int take_fields(dec_t *d, json_t *body, queue_event_t *ev)
{
    if (take_ids(d, body, ev) < 0)
        return -1;
    if (take_text(d, body, "message", "message", F_MSG, ev) < 0 ||
        take_timestamp(d, body, ev) < 0 || take_data(d, body, ev) < 0 ||
        take_count(d, body, "completedCount", &ev->completed_count) < 0 ||
        take_count(d, body, "totalCount", &ev->total_count) < 0 || take_replay_device(d) < 0)
        return -1;
    take_meta(d, body, "correlationId", F_CORR);
    take_meta(d, body, "traceparent", F_TRACE);
    take_locale(d, body);
    return 0;
}

static const char *at(const dec_t *d, int slot)
{
    return d->off[slot] == ABSENT ? NULL : d->mem->data + d->off[slot];
}

/* Turns offsets into pointers once the arena no longer moves. */
static void finish(dec_t *d, queue_event_t *ev)
{
    put(d, F_ENV, d->env[0] ? d->env : "raw", strlen(d->env[0] ? d->env : "raw"));
    ev->batch_job_id = at(d, F_BATCH);
    ev->job_id = ev->kind == QUEUE_EV_JOB ? at(d, F_JOB) : ev->batch_job_id;
    ev->user_id = at(d, F_USER);
    ev->previous_status = at(d, F_PREV);
    ev->message = at(d, F_MSG);
    ev->timestamp = at(d, F_TS);
    ev->error = at(d, F_ERR);
    ev->final_s3_key = at(d, F_KEY);
    ev->envelope = at(d, F_ENV);
    ev->sns_message_id = at(d, F_SNSID);
    ev->sqs_message_id = at(d, F_SQSID);
    ev->correlation_id = at(d, F_CORR) ? at(d, F_CORR) : ev->sns_message_id;
    ev->traceparent = at(d, F_TRACE);
    ev->replay_device = at(d, F_REPLAY);
    ev->locale = at(d, F_LOCALE);
}

/* ---- the plain event in one pass ----
 * Most events are one flat object of plain strings and numbers, without envelopes. That shape is
 * read here without a jansson tree; whatever else the value holds (envelopes, escapes, non-ASCII,
 * nested objects, a field the general path would reject or look up in the headers) sends it to
 * the general path, which decides. Only an event this path reads exactly as the general path
 * would is taken here (tests/queue checks both paths agree, and so does fuzz_event). */

enum {
    P_JOB,
    P_BATCH,
    P_USER,
    P_STATUS,
    P_MSG,
    P_TS,
    P_CC,
    P_TC,
    P_CORR,
    P_TRACE,
    P_LOCALE,
    P_DATA,
    P_COUNT
};
#define P_ENVELOPE (-2) /* a key that makes the object an envelope */
#define P_MEMBERS 32    /* members a plain event may have */

typedef struct pval {
    char kind; /* 0 absent, 's' string, 'i' integer, 'n' null, 'b' true/false */
    const char *s;
    size_t n;
    int64_t i;
} pval_t;

static int plain_key(const char *k, size_t n)
{
    static const char *const known[P_COUNT] = {
        "jobId",          "batchJobId", "userId",        "status",      "message", "timestamp",
        "completedCount", "totalCount", "correlationId", "traceparent", "locale",  "data"};
    static const char *const envelope[] = {"schema", "payload", "Body",   "body",
                                           "Type",   "Message", "default"};
    for (int i = 0; i < P_COUNT; i++)
        if (jscan_is(k, n, known[i]))
            return i;
    for (size_t i = 0; i < sizeof envelope / sizeof envelope[0]; i++)
        if (jscan_is(k, n, envelope[i]))
            return P_ENVELOPE;
    return -1;
}

/* No header the general path would read for an event whose body lacks the field. */
static bool headers_plain(const queue_header_t *h, size_t n)
{
    static const char *const read[] = {
        "userId", "jobId",         "batchJobId",  "status",
        "locale", "correlationId", "traceparent", QUEUE_REPLAY_DEVICE_HEADER};
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof read / sizeof read[0]; k++)
            if (h[i].name && strcasecmp(h[i].name, read[k]) == 0)
                return false;
    return true;
}

static bool plain_value(jscan_t *s, pval_t *v)
{
    jscan_ws(s);
    if (s->p == s->end)
        return false;
    if (*s->p == '"') {
        v->kind = 's';
        return jscan_str(s, &v->s, &v->n);
    }
    if (*s->p >= '0' && *s->p <= '9') {
        v->kind = 'i';
        return jscan_uint(s, &v->i);
    }
    v->kind = jscan_lit(s, "null") ? 'n' : jscan_lit(s, "true") || jscan_lit(s, "false") ? 'b' : 0;
    return v->kind != 0;
}

/* The members of one flat object into f (known keys); false when it is not plain. */
static bool plain_members(const char *value, size_t len, pval_t *f)
{
    const char *keys[P_MEMBERS];
    size_t klens[P_MEMBERS], nk = 0;
    jscan_t s = {value, value + len};
    if (!jscan_take(&s, '{'))
        return false;
    if (!jscan_take(&s, '}')) {
        do {
            const char *k;
            size_t kn;
            pval_t v = {0};
            if (nk == P_MEMBERS || !jscan_str(&s, &k, &kn) || !jscan_take(&s, ':') ||
                !plain_value(&s, &v))
                return false;
            for (size_t i = 0; i < nk; i++) /* jansson rejects duplicates: it decides */
                if (klens[i] == kn && memcmp(keys[i], k, kn) == 0)
                    return false;
            keys[nk] = k;
            klens[nk++] = kn;
            int slot = plain_key(k, kn);
            if (slot == P_ENVELOPE)
                return false;
            if (slot >= 0)
                f[slot] = v;
        } while (jscan_take(&s, ','));
        if (!jscan_take(&s, '}'))
            return false;
    }
    return jscan_end(&s);
}

static bool absent(const pval_t *v)
{
    return v->kind == 0 || v->kind == 'n';
}

/* An optional string the general path stores as is: absent/null (nothing), or within max. */
static bool plain_opt(dec_t *d, const pval_t *v, int slot, size_t lo, size_t max)
{
    if (absent(v))
        return true;
    if (v->kind != 's' || v->n < lo || v->n > max)
        return false;
    put(d, slot, v->s, v->n);
    return true;
}

/* Correlation metadata and the locale never reject: a value the general path ignores is ignored. */
static void plain_meta(dec_t *d, const pval_t *f)
{
    for (int k = P_CORR; k <= P_TRACE; k++)
        if (f[k].kind == 's' && printable_id(f[k].s, f[k].n, QUEUE_ID_MAX))
            put(d, k == P_CORR ? F_CORR : F_TRACE, f[k].s, f[k].n);
    char tag[LANG_TAG_MAX + 1];
    if (f[P_LOCALE].kind == 's' && lang_tag_parse(f[P_LOCALE].s, f[P_LOCALE].n, tag) == 0)
        put(d, F_LOCALE, tag, strlen(tag));
}

static bool plain_timestamp(dec_t *d, const pval_t *v, queue_event_t *ev)
{
    char num[BUF_NUM_MAX];
    int64_t ms;
    if (v->kind == 'i') {
        if (v->i > 100000000000000LL)
            return false;
        ev->timestamp_ms = v->i < 100000000000LL ? v->i * 1000 : v->i; /* seconds or ms */
        put(d, F_TS, num, buf_fmt_i64(num, v->i));
        return true;
    }
    if (!plain_opt(d, v, F_TS, 1, 64))
        return false;
    if (v->kind == 's' && clk_parse_iso8601(d->mem->data + d->off[F_TS], &ms) == 0)
        ev->timestamp_ms = ms;
    return true;
}

static bool plain_count(const pval_t *v, long *out)
{
    *out = -1;
    if (absent(v))
        return true;
    if (v->kind != 'i' || v->i > 1000000000)
        return false;
    *out = (long)v->i;
    return true;
}

static bool plain_event(dec_t *d, const char *value, size_t len, queue_event_t *ev)
{
    pval_t f[P_COUNT] = {0};
    char st[16];
    if (!headers_plain(d->hdrs, d->nhdrs) || !plain_members(value, len, f) ||
        f[P_USER].kind != 's' || f[P_STATUS].kind != 's' || f[P_STATUS].n >= sizeof st ||
        !absent(&f[P_DATA]) || (absent(&f[P_JOB]) && absent(&f[P_BATCH])))
        return false;
    memcpy(st, f[P_STATUS].s, f[P_STATUS].n);
    st[f[P_STATUS].n] = '\0';
    if (queue_status_parse(st, &ev->status) != 0 ||
        !plain_opt(d, &f[P_USER], F_USER, 1, QUEUE_ID_MAX) ||
        !plain_opt(d, &f[P_JOB], F_JOB, 1, QUEUE_ID_MAX) ||
        !plain_opt(d, &f[P_BATCH], F_BATCH, 1, QUEUE_ID_MAX) ||
        !plain_opt(d, &f[P_MSG], F_MSG, 0, QUEUE_TEXT_MAX) || !plain_timestamp(d, &f[P_TS], ev) ||
        !plain_count(&f[P_CC], &ev->completed_count) || !plain_count(&f[P_TC], &ev->total_count))
        return false;
    ev->kind = absent(&f[P_JOB]) ? QUEUE_EV_BATCH : QUEUE_EV_JOB;
    plain_meta(d, f);
    finish(d, ev);
    return true;
}

static int decode(const void *value, size_t len, const queue_header_t *hdrs, size_t nhdrs,
                  size_t max_bytes, queue_event_t *out, queue_dec_error_t *why, bool fast)
{
    dec_t d = {.hdrs = hdrs, .nhdrs = nhdrs, .mem = &out->mem_, .why = why};
    memset(out, 0, sizeof *out);
    out->completed_count = out->total_count = -1;
    memset(why, 0, sizeof *why);
    for (int i = 0; i < F_COUNT; i++)
        d.off[i] = ABSENT;
    int rc = -1;
    if (len > max_bytes) {
        char detail[160];
        snprintf(detail, sizeof detail, "value of %zu bytes exceeds queue.max_event_bytes %zu", len,
                 max_bytes);
        fail(&d, QUEUE_DEC_TOO_LARGE, NULL, detail);
        goto done;
    }
    if (!value || len == 0) {
        fail(&d, QUEUE_DEC_NOT_JSON, NULL, "empty value");
        goto done;
    }
    buf_reserve(d.mem,
                len + 16); /* one allocation: what is kept is mostly shorter than the value */
    if (fast && plain_event(&d, value, len, out)) {
        rc = 0;
        goto done;
    }
    if (fast) { /* a plain path that gave up leaves nothing behind */
        buf_t mem = out->mem_;
        buf_reset(&mem);
        memset(out, 0, sizeof *out);
        out->mem_ = mem;
        out->completed_count = out->total_count = -1;
        for (int i = 0; i < F_COUNT; i++)
            d.off[i] = ABSENT;
    }
    json_t *o = parse(&d, value, len, "value");
    if (o && (o = unwrap(&d, o)) && take_fields(&d, o, out) == 0) {
        finish(&d, out);
        rc = 0;
    }
done:
    for (size_t i = 0; i < d.nroots; i++)
        json_decref(d.roots[i]);
    if (rc < 0)
        queue_event_cleanup(out);
    return rc;
}

int queue_event_decode(const void *value, size_t len, const queue_header_t *hdrs, size_t nhdrs,
                       size_t max_bytes, queue_event_t *out, queue_dec_error_t *why)
{
    return decode(value, len, hdrs, nhdrs, max_bytes, out, why, true);
}

int queue_event_decode_tree(const void *value, size_t len, const queue_header_t *hdrs, size_t nhdrs,
                            size_t max_bytes, queue_event_t *out, queue_dec_error_t *why)
{
    return decode(value, len, hdrs, nhdrs, max_bytes, out, why, false);
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

bool queue_event_equal(const queue_event_t *a, const queue_event_t *b)
{
    const char *const sa[] = {a->job_id,          a->batch_job_id,   a->user_id,
                              a->previous_status, a->message,        a->timestamp,
                              a->error,           a->final_s3_key,   a->envelope,
                              a->sns_message_id,  a->sqs_message_id, a->correlation_id,
                              a->traceparent,     a->replay_device,  a->locale};
    const char *const sb[] = {b->job_id,          b->batch_job_id,   b->user_id,
                              b->previous_status, b->message,        b->timestamp,
                              b->error,           b->final_s3_key,   b->envelope,
                              b->sns_message_id,  b->sqs_message_id, b->correlation_id,
                              b->traceparent,     b->replay_device,  b->locale};
    for (size_t i = 0; i < sizeof sa / sizeof sa[0]; i++)
        if (!same_str(sa[i], sb[i]))
            return false;
    return a->kind == b->kind && a->status == b->status && a->timestamp_ms == b->timestamp_ms &&
           a->completed_count == b->completed_count && a->total_count == b->total_count &&
           a->truncated == b->truncated;
}

void queue_event_cleanup(queue_event_t *ev)
{
    if (!ev)
        return;
    buf_cleanup(&ev->mem_);
    memset(ev, 0, sizeof *ev);
    ev->completed_count = ev->total_count = -1;
}

int queue_event_key(const queue_event_t *ev, char *out, size_t outlen)
{
    const char *id = ev->job_id ? ev->job_id : "", *st = queue_status_name(ev->status);
    size_t il = strlen(id), sl = strlen(st);
    if (il + 1 + sl >= outlen)
        return -1;
    memcpy(out, id, il);
    out[il] = ':';
    memcpy(out + il + 1, st, sl + 1);
    return (int)(il + 1 + sl);
}

/* `"name":` after a comma unless first (names are plain ASCII). */
static void member_name(buf_t *out, const char *name, bool *first)
{
    if (!*first)
        buf_putc(out, ',');
    buf_putc(out, '"');
    buf_puts(out, name);
    buf_puts(out, "\":");
    *first = false;
}

static void member_str(buf_t *out, const char *name, const char *v, bool *first)
{
    if (v == NULL)
        return;
    member_name(out, name, first);
    buf_json_cstr(out, v);
}

static void member_raw(buf_t *out, const char *name, const char *json, bool *first)
{
    member_name(out, name, first);
    buf_puts(out, json);
}

static void member_count(buf_t *out, const char *name, long v, bool *first)
{
    if (v < 0)
        return;
    member_name(out, name, first);
    buf_put_i64(out, v);
}

/* A timestamp that came as a number (its text all digits) goes back as one. */
static bool all_digits(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

void queue_event_encode(const queue_event_t *ev, buf_t *out)
{
    bool first = true;
    buf_putc(out, '{');
    if (ev->kind == QUEUE_EV_JOB)
        member_str(out, "jobId", ev->job_id, &first);
    member_str(out, "batchJobId", ev->batch_job_id, &first);
    member_str(out, "userId", ev->user_id, &first);
    member_str(out, "status", queue_status_name(ev->status), &first);
    member_str(out, "message", ev->message, &first);
    if (all_digits(ev->timestamp))
        member_raw(out, "timestamp", ev->timestamp, &first);
    else
        member_str(out, "timestamp", ev->timestamp, &first);
    member_count(out, "completedCount", ev->completed_count, &first);
    member_count(out, "totalCount", ev->total_count, &first);
    member_str(out, "correlationId", ev->correlation_id, &first);
    member_str(out, "traceparent", ev->traceparent, &first);
    member_str(out, "locale", ev->locale, &first);
    if (ev->previous_status || ev->error || ev->final_s3_key) {
        bool dfirst = true;
        buf_puts(out, ",\"data\":{");
        member_str(out, "previousStatus", ev->previous_status, &dfirst);
        member_str(out, "error", ev->error, &dfirst);
        member_str(out, "finalS3Key", ev->final_s3_key, &dfirst);
        buf_putc(out, '}');
    }
    buf_putc(out, '}');
}
