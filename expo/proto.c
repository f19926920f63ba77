/* proto.c - Expo replies without I/O: send replies (tickets, request-level errors, the project
 * split), getReceipts replies, error classification, gzip, the sliding-window send limiter and
 * retry delays.
 *
 * Everything here reads outside input: sizes are checked before parsing, any shape that is not
 * exactly what Expo documents is classified (retry or fail) rather than trusted. */
#include "expo/proto.h"
#include "core/backoff.h"
#include "core/jscan.h"
#include "core/xalloc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define EXPO_FAST_MAX 100 /* tickets the one-pass reader takes: a request's (EXPO_MAX_BATCH) */

expo_tk_kind_t expo_classify_error(const char *e)
{
    if (!e)
        return EXPO_TK_FAIL;
    if (strcmp(e, "DeviceNotRegistered") == 0)
        return EXPO_TK_INVALID;
    if (strcmp(e, "MessageRateExceeded") == 0)
        return EXPO_TK_RETRY;
    return EXPO_TK_FAIL;
}

bool expo_credential_error(const char *e)
{
    return e && (strcmp(e, "InvalidCredentials") == 0 || strcmp(e, "MismatchSenderId") == 0);
}

static bool is_retry_status(long s)
{
    return s == 408 || s == 429 || (s >= 500 && s <= 599);
}

expo_reply_kind_t expo_classify_request(long status, const char *code)
{
    if (code) {
        if (strcmp(code, "TOO_MANY_REQUESTS") == 0)
            return EXPO_REPLY_RETRY;
        if (strcmp(code, "PUSH_TOO_MANY_EXPERIENCE_IDS") == 0)
            return EXPO_REPLY_SPLIT;
        if (strcmp(code, "UNAUTHORIZED") == 0 || strcmp(code, "PUSH_TOO_MANY_NOTIFICATIONS") == 0 ||
            strcmp(code, "PUSH_TOO_MANY_RECEIPTS") == 0 || strcmp(code, "VALIDATION_ERROR") == 0)
            return EXPO_REPLY_FAIL;
        if (strcmp(code, "INTERNAL_SERVER_ERROR") == 0)
            return EXPO_REPLY_RETRY;
    }
    return is_retry_status(status) ? EXPO_REPLY_RETRY : EXPO_REPLY_FAIL;
}

static char *dup_json_str(json_t *v)
{
    return json_is_string(v) ? xstrndup(json_string_value(v), json_string_length(v)) : NULL;
}

static void set_code(expo_reply_t *r, const char *code, const char *message)
{
    free(r->code);
    free(r->message);
    r->code = xstrdup(code);
    r->message = message ? xstrdup(message) : NULL;
}

static int parse_ticket(json_t *t, expo_ticket_t *out)
{
    const char *st = json_string_value(json_object_get(t, "status"));
    if (!json_is_object(t) || !st)
        return -1;
    if (strcmp(st, "ok") == 0) {
        json_t *id = json_object_get(t, "id");
        if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) > 256)
            return -1;
        out->kind = EXPO_TK_OK;
        out->id = dup_json_str(id);
        return 0;
    }
    if (strcmp(st, "error") != 0)
        return -1;
    json_t *det = json_object_get(t, "details");
    char *e = dup_json_str(json_object_get(det, "error"));
    out->error = e ? e : xstrdup("UnknownError");
    out->kind = expo_classify_error(out->error);
    out->message = dup_json_str(json_object_get(t, "message"));
    return 0;
}

static void parse_tickets(json_t *data, size_t nexpected, expo_reply_t *r)
{
    if (!json_is_array(data) || json_array_size(data) != nexpected) {
        r->kind = EXPO_REPLY_RETRY;
        r->ambiguous = true;
        set_code(r, "ProtocolError",
                 json_is_array(data) ? "ticket count does not match the request"
                                     : "reply has no ticket array");
        return;
    }
    /* one bad ticket puts only its own message in doubt: the array's length still ties every
     * other ticket to its message */
    r->tickets = xcalloc(nexpected ? nexpected : 1, sizeof *r->tickets);
    r->ntickets = nexpected;
    for (size_t i = 0; i < nexpected; i++) {
        expo_ticket_t *t = &r->tickets[i];
        if (parse_ticket(json_array_get(data, i), t) != 0) {
            t->kind = EXPO_TK_DOUBT;
            t->error = xstrdup("ProtocolError");
            t->message = xstrdup("malformed ticket");
        }
    }
    r->kind = EXPO_REPLY_TICKETS;
}

/* details of PUSH_TOO_MANY_EXPERIENCE_IDS: {"@owner/a": ["tok", ...], ...}. */
static int parse_split(json_t *details, expo_reply_t *r)
{
    if (!json_is_object(details) || json_object_size(details) == 0)
        return -1;
    r->split = xcalloc(json_object_size(details), sizeof *r->split);
    const char *proj;
    json_t *toks;
    json_object_foreach(details, proj, toks)
    {
        if (!json_is_array(toks))
            return -1;
        expo_split_t *s = &r->split[r->nsplit++];
        s->project = xstrdup(proj);
        s->tokens = xcalloc(json_array_size(toks) + 1, sizeof *s->tokens);
        size_t i;
        json_t *t;
        json_array_foreach(toks, i, t)
        {
            if (json_is_string(t))
                s->tokens[s->ntokens++] = dup_json_str(t);
        }
    }
    return 0;
}

static void parse_errors(long status, json_t *errs, expo_reply_t *r)
{
    json_t *e0 = json_array_get(errs, 0);
    const char *code = json_string_value(json_object_get(e0, "code"));
    const char *msg = json_string_value(json_object_get(e0, "message"));
    set_code(r, code ? code : "UnknownError", msg);
    r->kind = expo_classify_request(status, code);
    r->credential = code && strcmp(code, "UNAUTHORIZED") == 0;
    if (r->kind == EXPO_REPLY_SPLIT && parse_split(json_object_get(e0, "details"), r) != 0) {
        r->kind = EXPO_REPLY_FAIL;
        set_code(r, code, "PUSH_TOO_MANY_EXPERIENCE_IDS without a usable project map");
    }
}

static void parse_non_json(long status, expo_reply_t *r)
{
    char code[32];
    snprintf(code, sizeof code, "HTTP_%ld", status);
    if (status >= 200 && status <= 299) {
        r->kind = EXPO_REPLY_RETRY;
        r->ambiguous = true;
        set_code(r, "BadJson", "the reply is not a JSON object");
        return;
    }
    r->kind = expo_classify_request(status, NULL);
    set_code(r, code, "the reply carries no Expo error");
}

/* ---- the common reply in one pass ---- */

/* {"status":"ok","id":"<1-256 chars>"} in either order, each member once, nothing else. */
static bool ok_ticket(jscan_t *s, const char **id, size_t *idlen)
{
    bool ok = false;
    *id = NULL;
    if (!jscan_take(s, '{'))
        return false;
    for (int m = 0; m < 2; m++) {
        const char *k, *v;
        size_t kn, vn;
        if ((m > 0 && !jscan_take(s, ',')) || !jscan_str(s, &k, &kn) || !jscan_take(s, ':') ||
            !jscan_str(s, &v, &vn))
            return false;
        if (jscan_is(k, kn, "status") && !ok && jscan_is(v, vn, "ok"))
            ok = true;
        else if (jscan_is(k, kn, "id") && !*id && vn >= 1 && vn <= 256) {
            *id = v;
            *idlen = vn;
        } else
            return false;
    }
    return jscan_take(s, '}');
}

static bool fast_tickets(long status, const char *body, size_t len, size_t nexpected,
                         expo_reply_t *r)
{
    const char *ids[EXPO_FAST_MAX];
    size_t lens[EXPO_FAST_MAX], n = 0;
    const char *k;
    size_t kn;
    jscan_t s = {body, body + len};
    if (status < 200 || status > 299 || nexpected > EXPO_FAST_MAX || !jscan_take(&s, '{') ||
        !jscan_str(&s, &k, &kn) || !jscan_is(k, kn, "data") || !jscan_take(&s, ':') ||
        !jscan_take(&s, '['))
        return false;
    jscan_ws(&s);
    if (s.p < s.end && *s.p != ']') {
        do {
            if (n == nexpected || !ok_ticket(&s, &ids[n], &lens[n]))
                return false;
            n++;
        } while (jscan_take(&s, ','));
    }
    if (n != nexpected || !jscan_take(&s, ']') || !jscan_take(&s, '}') || !jscan_end(&s))
        return false;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += lens[i] + 1;
    r->tickets = xcalloc(n ? n : 1, sizeof *r->tickets);
    r->ntickets = n;
    char *at = r->ids_ = xmalloc(total ? total : 1);
    for (size_t i = 0; i < n; i++) { /* kind EXPO_TK_OK is 0 */
        r->tickets[i].id = memcpy(at, ids[i], lens[i]);
        at[lens[i]] = '\0';
        at += lens[i] + 1;
    }
    r->kind = EXPO_REPLY_TICKETS;
    return true;
}

void expo_reply_parse(long status, const char *body, size_t len, size_t nexpected, expo_reply_t *r)
{
    memset(r, 0, sizeof *r);
    if (body && len > 0 && len <= EXPO_MAX_REPLY && fast_tickets(status, body, len, nexpected, r))
        return;
    expo_reply_parse_tree(status, body, len, nexpected, r);
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

bool expo_reply_equal(const expo_reply_t *a, const expo_reply_t *b)
{
    if (a->kind != b->kind || !str_eq(a->code, b->code) || !str_eq(a->message, b->message) ||
        a->credential != b->credential || a->ambiguous != b->ambiguous ||
        a->ntickets != b->ntickets || a->nsplit != b->nsplit)
        return false;
    for (size_t i = 0; i < a->ntickets; i++) {
        const expo_ticket_t *x = &a->tickets[i], *y = &b->tickets[i];
        if (x->kind != y->kind || !str_eq(x->id, y->id) || !str_eq(x->error, y->error) ||
            !str_eq(x->message, y->message))
            return false;
    }
    for (size_t i = 0; i < a->nsplit; i++) {
        const expo_split_t *x = &a->split[i], *y = &b->split[i];
        if (!str_eq(x->project, y->project) || x->ntokens != y->ntokens)
            return false;
        for (size_t j = 0; j < x->ntokens; j++)
            if (!str_eq(x->tokens[j], y->tokens[j]))
                return false;
    }
    return true;
}

/* ---- the general path ---- */

void expo_reply_parse_tree(long status, const char *body, size_t len, size_t nexpected,
                           expo_reply_t *r)
{
    memset(r, 0, sizeof *r);
    json_t *root = NULL;
    if (body && len > 0 && len <= EXPO_MAX_REPLY)
        root = json_loadb(body, len, 0, NULL);
    json_t *errs = json_object_get(root, "errors");
    json_t *err1 = json_object_get(root, "error");
    if (!json_is_object(root)) {
        parse_non_json(status, r);
    } else if (json_is_array(errs) && json_array_size(errs) > 0) {
        parse_errors(status, errs, r);
    } else if (json_is_string(err1)) {
        /* {"error":"invalid_token","error_description":"..."} */
        set_code(r, json_string_value(err1),
                 json_string_value(json_object_get(root, "error_description")));
        r->credential = strcmp(json_string_value(err1), "invalid_token") == 0;
        r->kind = r->credential ? EXPO_REPLY_FAIL : expo_classify_request(status, NULL);
    } else if (status >= 200 && status <= 299) {
        parse_tickets(json_object_get(root, "data"), nexpected, r);
    } else {
        parse_non_json(status, r);
    }
    if (status == 504)
        r->ambiguous = true;
    json_decref(root);
}

void expo_reply_cleanup(expo_reply_t *r)
{
    for (size_t i = 0; i < r->ntickets; i++) {
        if (r->ids_ == NULL) /* else every id is in ids_ */
            free(r->tickets[i].id);
        free(r->tickets[i].error);
        free(r->tickets[i].message);
    }
    free(r->tickets);
    for (size_t i = 0; i < r->nsplit; i++) {
        for (size_t j = 0; j < r->split[i].ntokens; j++)
            free(r->split[i].tokens[j]);
        free(r->split[i].tokens);
        free(r->split[i].project);
    }
    free(r->split);
    free(r->ids_);
    free(r->code);
    free(r->message);
    memset(r, 0, sizeof *r);
}

static bool parse_receipt(const char *id, json_t *v, expo_receipt_t *out)
{
    const char *st = json_string_value(json_object_get(v, "status"));
    if (!st || strlen(id) == 0 || strlen(id) > 256)
        return false;
    if (strcmp(st, "ok") == 0) {
        out->kind = EXPO_TK_OK;
    } else if (strcmp(st, "error") == 0) {
        char *e = dup_json_str(json_object_get(json_object_get(v, "details"), "error"));
        out->error = e ? e : xstrdup("UnknownError");
        out->kind = expo_classify_error(out->error); /* INVALID, RETRY or FAIL */
        out->message = dup_json_str(json_object_get(v, "message"));
    } else {
        return false;
    }
    out->id = xstrdup(id);
    return true;
}

static int receipts_fail(json_t *root, long status, char *err, size_t errlen)
{
    json_t *e0 = json_array_get(json_object_get(root, "errors"), 0);
    const char *code = json_string_value(json_object_get(e0, "code"));
    if (code)
        snprintf(err, errlen, "%s", code);
    else if (status < 200 || status > 299)
        snprintf(err, errlen, "HTTP_%ld", status);
    else
        snprintf(err, errlen, "%s", root ? "ProtocolError" : "BadJson");
    json_decref(root);
    return -1;
}

int expo_receipts_parse(long status, const char *body, size_t len, expo_receipt_t **out, size_t *n,
                        char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    json_t *root = NULL;
    if (body && len > 0 && len <= EXPO_MAX_REPLY)
        root = json_loadb(body, len, 0, NULL);
    json_t *data = json_object_get(root, "data");
    if (status < 200 || status > 299 || !json_is_object(data) || json_object_get(root, "errors"))
        return receipts_fail(json_is_object(root) ? root : NULL, status, err, errlen);
    expo_receipt_t *r = xcalloc(json_object_size(data) + 1, sizeof *r);
    size_t k = 0;
    const char *id;
    json_t *v;
    json_object_foreach(data, id, v)
    {
        if (parse_receipt(id, v, &r[k]))
            k++;
    }
    json_decref(root);
    *out = r;
    *n = k;
    return 0;
}

void expo_receipts_free(expo_receipt_t *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        free(r[i].id);
        free(r[i].error);
        free(r[i].message);
    }
    free(r);
}

struct expo_gzip {
    z_stream z;
    bool ready; /* deflateInit2 succeeded */
};

expo_gzip_t *expo_gzip_create(void)
{
    expo_gzip_t *g = xcalloc(1, sizeof *g);
    g->ready =
        deflateInit2(&g->z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
    return g;
}

void expo_gzip_destroy(expo_gzip_t *g)
{
    if (g == NULL)
        return;
    if (g->ready)
        deflateEnd(&g->z);
    free(g);
}

int expo_gzip_run(expo_gzip_t *g, const void *in, size_t len, buf_t *out)
{
    if (!g->ready || deflateReset(&g->z) != Z_OK)
        return -1;
    z_stream *z = &g->z;
    size_t bound = deflateBound(z, (uLong)len) + 32;
    buf_reserve(out, bound);
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    z->next_out = (Bytef *)out->data + out->len;
    z->avail_out = (uInt)bound;
    int rc = deflate(z, Z_FINISH);
    if (rc != Z_STREAM_END)
        return -1;
    out->len += z->total_out;
    out->data[out->len] = '\0';
    return 0;
}

int expo_gzip(const void *in, size_t len, buf_t *out)
{
    expo_gzip_t *g = expo_gzip_create();
    int rc = expo_gzip_run(g, in, len, out);
    expo_gzip_destroy(g);
    return rc;
}

int expo_gunzip(const void *in, size_t len, size_t max, buf_t *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return -1;
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    size_t produced = 0;
    int rc = Z_OK;
    while (rc == Z_OK) {
        buf_reserve(out, 16384);
        z.next_out = (Bytef *)out->data + out->len;
        z.avail_out = 16384;
        rc = inflate(&z, Z_NO_FLUSH);
        size_t got = 16384 - z.avail_out;
        out->len += got;
        out->data[out->len] = '\0';
        produced += got;
        if (produced > max || (rc == Z_BUF_ERROR && z.avail_in == 0))
            rc = Z_DATA_ERROR;
        else if (rc == Z_BUF_ERROR)
            rc = Z_OK;
    }
    inflateEnd(&z);
    return rc == Z_STREAM_END && z.avail_in == 0 ? 0 : -1;
}

void expo_window_init(expo_window_t *w, long rate, uint64_t span_ms)
{
    memset(w, 0, sizeof *w);
    w->rate = rate > 0 ? rate : 0;
    w->span_ms = span_ms ? span_ms : 1000;
}

void expo_window_cleanup(expo_window_t *w)
{
    free(w->ev);
    memset(w, 0, sizeof *w);
}

static void window_push(expo_window_t *w, uint64_t t, long n)
{
    if (w->len == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        struct expo_window_ev *ev = xmalloc(cap * sizeof *ev);
        for (size_t i = 0; i < w->len; i++)
            ev[i] = w->ev[(w->head + i) % w->cap];
        free(w->ev);
        w->ev = ev;
        w->cap = cap;
        w->head = 0;
    }
    w->ev[(w->head + w->len++) % w->cap] = (struct expo_window_ev){t, n};
    w->sum += n;
}

uint64_t expo_window_take(expo_window_t *w, long n, uint64_t now_ms)
{
    if (w->rate <= 0)
        return 0;
    while (w->len > 0 && w->ev[w->head].t + w->span_ms <= now_ms) {
        w->sum -= w->ev[w->head].n;
        w->head = (w->head + 1) % w->cap;
        w->len--;
    }
    if (w->sum + n <= w->rate) {
        window_push(w, now_ms, n);
        return 0;
    }
    long need = w->sum + n - w->rate, freed = 0;
    for (size_t i = 0; i < w->len; i++) {
        const struct expo_window_ev *e = &w->ev[(w->head + i) % w->cap];
        freed += e->n;
        if (freed >= need)
            return e->t + w->span_ms > now_ms ? e->t + w->span_ms - now_ms : 1;
    }
    return w->span_ms; /* n > rate: never fits; callers cap n */
}

uint64_t expo_retry_delay_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms,
                             long retry_after_s, uint64_t rnd)
{
    uint64_t d = backoff_full_jitter(attempt > 0 ? attempt - 1 : 0, base_ms, cap_ms, rnd);
    if (retry_after_s > 0) {
        uint64_t ra = (uint64_t)(retry_after_s > 3600 ? 3600 : retry_after_s) * 1000;
        if (ra > d)
            d = ra;
    }
    return d;
}
