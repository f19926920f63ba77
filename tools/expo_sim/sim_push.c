/* sim_push.c - the two Expo endpoints of the simulator: push/send (shape and field validation,
 * the 100-recipient limit, token format, payload size, one project per request, the per-project
 * rate limit, tickets in request order, the record of accepted messages) and push/getReceipts.
 *
 * Behaviour tokens: the text inside ExponentPushToken[...] picks the outcome. The first row of
 * `behaviours` that matches wins (so the longer names come first):
 *   LateRateExceededOnce  ok ticket; its receipt is MessageRateExceeded the first time this
 *                     token is seen, ok afterwards (a resend after the receipt gets through)
 *   Late<Word>        ok ticket, then the receipt carries <Word>'s error (any word below but
 *                     RateExceededOnce)
 *   NoReceipt         ok ticket, the receipt never becomes ready
 *   RateExceededOnce  MessageRateExceeded the first time this token is seen, ok afterwards
 *   RateExceeded      MessageRateExceeded ticket, every time
 *   Unregistered      DeviceNotRegistered ticket (details.expoPushToken set)
 *   TooBig            MessageTooBig ticket
 *   BadProviderToken  InvalidCredentials ticket carrying InvalidProviderToken
 *   BadCreds          InvalidCredentials ticket
 *   Mismatch          MismatchSenderId ticket
 *   DeveloperError, ExpoError, ProviderError   that error's ticket
 * Anything else that is a valid token gets an ok ticket and an ok receipt. */
#include "tools/expo_sim/sim_int.h"
#include "core/xalloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Error shapes: details.error and a message like Expo's. NULL messages are built per token
 * (DeviceNotRegistered names it) or per payload (MessageTooBig tickets give the size). */
static const struct {
    int err;
    const char *msg;
} shapes[SIM_SHAPES] = {
    [ERR_DEVICE_NOT_REGISTERED] = {ERR_DEVICE_NOT_REGISTERED, NULL},
    [ERR_MESSAGE_TOO_BIG] = {ERR_MESSAGE_TOO_BIG,
                             "Message too big: the push provider refused the payload."},
    [ERR_MESSAGE_RATE_EXCEEDED] = {ERR_MESSAGE_RATE_EXCEEDED,
                                   "Too many messages sent to this device; wait before sending "
                                   "again."},
    [ERR_INVALID_CREDENTIALS] = {ERR_INVALID_CREDENTIALS,
                                 "The push credentials of this project are invalid or were "
                                 "revoked."},
    [ERR_MISMATCH_SENDER_ID] = {ERR_MISMATCH_SENDER_ID,
                                "The FCM sender id does not match the one the token was "
                                "registered with."},
    [ERR_DEVELOPER_ERROR] = {ERR_DEVELOPER_ERROR,
                             "The push provider refused the request as malformed."},
    [ERR_EXPO_ERROR] = {ERR_EXPO_ERROR,
                        "An internal Expo error occurred while delivering the notification."},
    [ERR_PROVIDER_ERROR] = {ERR_PROVIDER_ERROR,
                            "The push provider (APNs or FCM) failed to deliver the "
                            "notification."},
    [SHAPE_PROVIDER_TOKEN] = {ERR_INVALID_CREDENTIALS,
                              "The Apple Push Notification service rejected the push "
                              "credentials: InvalidProviderToken."},
};

static const struct {
    const char *word;
    enum sim_behaviour beh;
    int shape;
} behaviours[] = {
    {"LateRateExceededOnce", BEH_LATE_RATE_EXCEEDED_ONCE, ERR_MESSAGE_RATE_EXCEEDED},
    {"LateUnregistered", BEH_RECEIPT_ERROR, ERR_DEVICE_NOT_REGISTERED},
    {"LateTooBig", BEH_RECEIPT_ERROR, ERR_MESSAGE_TOO_BIG},
    {"LateRateExceeded", BEH_RECEIPT_ERROR, ERR_MESSAGE_RATE_EXCEEDED},
    {"LateBadProviderToken", BEH_RECEIPT_ERROR, SHAPE_PROVIDER_TOKEN},
    {"LateBadCreds", BEH_RECEIPT_ERROR, ERR_INVALID_CREDENTIALS},
    {"LateMismatch", BEH_RECEIPT_ERROR, ERR_MISMATCH_SENDER_ID},
    {"LateDeveloperError", BEH_RECEIPT_ERROR, ERR_DEVELOPER_ERROR},
    {"LateExpoError", BEH_RECEIPT_ERROR, ERR_EXPO_ERROR},
    {"LateProviderError", BEH_RECEIPT_ERROR, ERR_PROVIDER_ERROR},
    {"NoReceipt", BEH_NO_RECEIPT, 0},
    {"RateExceededOnce", BEH_RATE_EXCEEDED_ONCE, ERR_MESSAGE_RATE_EXCEEDED},
    {"RateExceeded", BEH_TICKET_ERROR, ERR_MESSAGE_RATE_EXCEEDED},
    {"Unregistered", BEH_TICKET_ERROR, ERR_DEVICE_NOT_REGISTERED},
    {"TooBig", BEH_TICKET_ERROR, ERR_MESSAGE_TOO_BIG},
    {"BadProviderToken", BEH_TICKET_ERROR, SHAPE_PROVIDER_TOKEN},
    {"BadCreds", BEH_TICKET_ERROR, ERR_INVALID_CREDENTIALS},
    {"Mismatch", BEH_TICKET_ERROR, ERR_MISMATCH_SENDER_ID},
    {"DeveloperError", BEH_TICKET_ERROR, ERR_DEVELOPER_ERROR},
    {"ExpoError", BEH_TICKET_ERROR, ERR_EXPO_ERROR},
    {"ProviderError", BEH_TICKET_ERROR, ERR_PROVIDER_ERROR},
};

/* ---- tokens ---- */

static bool ident_chars(const char *p, size_t n)
{
    if (n < 1 || n > 200)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool uuid_shaped(const char *p, size_t n)
{
    if (n != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? p[i] != '-' : !is_hex(p[i]))
            return false;
    }
    return true;
}

bool sim_token_valid(const char *t, size_t n)
{
    static const char a[] = "ExponentPushToken[", b[] = "ExpoPushToken[";
    if (n > sizeof a && memcmp(t, a, sizeof a - 1) == 0 && t[n - 1] == ']')
        return ident_chars(t + sizeof a - 1, n - sizeof a);
    if (n > sizeof b && memcmp(t, b, sizeof b - 1) == 0 && t[n - 1] == ']')
        return ident_chars(t + sizeof b - 1, n - sizeof b);
    return uuid_shaped(t, n);
}

/* The row of `behaviours` the token asks for; *shape gets its error shape. BEH_OK: none. */
static enum sim_behaviour behaviour_of(const char *t, size_t n, int *shape)
{
    for (size_t i = 0; i < sizeof behaviours / sizeof behaviours[0]; i++) {
        if (memmem(t, n, behaviours[i].word, strlen(behaviours[i].word))) {
            *shape = behaviours[i].shape;
            return behaviours[i].beh;
        }
    }
    *shape = 0;
    return BEH_OK;
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
    return h;
}

/* The token's entry, created on first sight; NULL once token_capacity tokens are tracked. */
sim_tok_t *sim_tok_get(sim_t *s, const char *token, size_t n)
{
    size_t mask = s->tok_cap - 1;
    for (size_t i = fnv1a(token, n) & mask;; i = (i + 1) & mask) {
        sim_tok_t *k = &s->toks[i];
        if (k->token == NULL) {
            if (s->tok_count >= s->o.token_capacity)
                return NULL;
            k->token = xstrndup(token, n);
            s->tok_count++;
            return k;
        }
        if (strncmp(k->token, token, n) == 0 && k->token[n] == '\0')
            return k;
    }
}

static int project_of(const sim_t *s, const char *t, size_t n)
{
    for (size_t i = 0; i < s->nprojects; i++)
        if (memmem(t, n, s->projects[i].pattern, strlen(s->projects[i].pattern)))
            return (int)i;
    return -1;
}

static const char *project_name(const sim_t *s, int p)
{
    return p >= 0 ? s->projects[p].name : s->o.default_project;
}

/* ---- projects ---- */

static void mixed_projects(sim_t *s, const sim_rcpt_t *r, size_t nr, sim_resp_t *out)
{
    buf_t *b = &out->body;
    out->status = 400;
    buf_reset(b);
    buf_puts(b, "{\"errors\":[{\"code\":\"PUSH_TOO_MANY_EXPERIENCE_IDS\",\"message\":\"All push "
                "notification messages in the same request must be for the same project; check "
                "the details field to investigate conflicting tokens.\",\"details\":{");
    bool done[SIM_MAX_RECIPIENTS] = {false};
    int np = 0;
    for (size_t i = 0; i < nr; i++) {
        if (r[i].project == -2 || done[i])
            continue;
        const char *name = project_name(s, r[i].project);
        buf_puts(b, np++ ? "," : "");
        buf_json_str(b, name, strlen(name));
        buf_puts(b, ":[");
        for (size_t j = i, nt = 0; j < nr; j++) {
            if (r[j].project != r[i].project)
                continue;
            done[j] = true;
            buf_puts(b, nt++ ? "," : "");
            buf_json_str(b, r[j].tok, r[j].len);
        }
        buf_putc(b, ']');
    }
    buf_puts(b, "}}]}");
}

/* Assigns projects; returns the request's project, or -3 after replying when it is mixed. */
static int one_project(sim_t *s, sim_rcpt_t *r, size_t nr, sim_resp_t *out)
{
    int p = -2;
    bool mixed = false;
    for (size_t i = 0; i < nr; i++) {
        if (!sim_token_valid(r[i].tok, r[i].len))
            continue;
        r[i].project = project_of(s, r[i].tok, r[i].len);
        if (p != -2 && r[i].project != p)
            mixed = true;
        p = r[i].project;
    }
    if (mixed) {
        mixed_projects(s, r, nr, out);
        return -3;
    }
    return p == -2 ? -1 : p;
}

/* ---- rate limit ---- */

static sim_rate_t *rate_of(sim_t *s, const char *project)
{
    for (size_t i = 0; i < s->nrates; i++)
        if (strcmp(s->rates[i].project, project) == 0)
            return &s->rates[i];
    s->rates = xrealloc(s->rates, (s->nrates + 1) * sizeof *s->rates);
    sim_rate_t *r = &s->rates[s->nrates++];
    memset(r, 0, sizeof *r);
    r->project = xstrdup(project);
    r->fixed_start = -1;
    for (int i = 0; i < RATE_SLOTS; i++)
        r->slot_start[i] = -1;
    return r;
}

/* Both instants are read in whole milliseconds, so an admission at ms e still counts at ms now
 * while now - e <= 1000: the real gap may then be just under a second. */
static bool strict_admit(sim_rate_t *r, uint64_t limit, size_t n, int64_t now_ms)
{
    while (r->log_len > 0 && now_ms - r->log_ms[r->log_head] > 1000) {
        r->log_sum -= r->log_n[r->log_head];
        r->log_head = (r->log_head + 1) % RATE_LOG;
        r->log_len--;
    }
    if (r->log_sum + n > limit)
        return false;
    size_t tail = (r->log_head + r->log_len + RATE_LOG - 1) % RATE_LOG;
    if (r->log_len > 0 && r->log_ms[tail] >= now_ms) { /* same ms (or a caller's clock went back) */
        r->log_n[tail] += (uint32_t)n;
    } else {
        tail = (r->log_head + r->log_len++) % RATE_LOG;
        r->log_ms[tail] = now_ms;
        r->log_n[tail] = (uint32_t)n;
    }
    r->log_sum += n;
    return true;
}

/* Admits n notifications for the project now, or returns false (nothing counted). */
static bool rate_admit(sim_t *s, const char *project, size_t n, int64_t now_ms)
{
    if (s->o.rate_limit == 0)
        return true;
    sim_rate_t *r = rate_of(s, project);
    if (s->o.rate_window == SIM_RATE_STRICT)
        return strict_admit(r, s->o.rate_limit, n, now_ms);
    if (s->o.rate_window == SIM_RATE_FIXED) {
        int64_t w = now_ms / 1000;
        if (r->fixed_start != w) {
            r->fixed_start = w;
            r->fixed_count = 0;
        }
        if (r->fixed_count + n > s->o.rate_limit)
            return false;
        r->fixed_count += n;
        return true;
    }
    int64_t slot = now_ms / 10;
    uint64_t sum = 0;
    for (int i = 0; i < RATE_SLOTS; i++)
        if (r->slot_start[i] > slot - RATE_SLOTS)
            sum += r->slot_count[i];
    if (sum + n > s->o.rate_limit)
        return false;
    int i = (int)(slot % RATE_SLOTS);
    if (r->slot_start[i] != slot) {
        r->slot_start[i] = slot;
        r->slot_count[i] = 0;
    }
    r->slot_count[i] += (uint32_t)n;
    return true;
}

/* ---- tickets ---- */

/* Ticket ids are the run's nonce and the sequence number times an odd constant (invertible
 * modulo 2^64), so they look random yet map back to their ring slot without a hash table. */
#define ID_MUL 0x9e3779b97f4a7c15ull

static uint64_t id_unmul(uint64_t x)
{
    uint64_t inv = ID_MUL; /* Newton's iteration for the inverse modulo 2^64 */
    for (int i = 0; i < 5; i++)
        inv *= 2 - ID_MUL * inv;
    return x * inv;
}

static void fmt_id(char out[37], uint64_t hi, uint64_t lo)
{
    static const char hex[] = "0123456789abcdef";
    char h[32];
    for (int i = 0; i < 16; i++) {
        h[i] = hex[(hi >> (60 - 4 * i)) & 15];
        h[16 + i] = hex[(lo >> (60 - 4 * i)) & 15];
    }
    memcpy(out, h, 8);
    out[8] = '-';
    memcpy(out + 9, h + 8, 4);
    out[13] = '-';
    memcpy(out + 14, h + 12, 4);
    out[18] = '-';
    memcpy(out + 19, h + 16, 4);
    out[23] = '-';
    memcpy(out + 24, h + 20, 12);
    out[36] = '\0';
}

/* {"status":"error","message":msg,"details":{"error":...}}; DeviceNotRegistered also gives
 * details.expoPushToken; the InvalidProviderToken variant adds details.apns (where Expo puts
 * that reason is not documented: a client must classify by details.error alone). */
static void put_error(buf_t *b, int shape, const char *msg, const char *tok, size_t toklen)
{
    int err = shapes[shape].err;
    buf_puts(b, "{\"status\":\"error\",\"message\":");
    buf_json_str(b, msg, strlen(msg));
    buf_printf(b, ",\"details\":{\"error\":\"%s\"", sim_errnames[err]);
    if (err == ERR_DEVICE_NOT_REGISTERED) {
        buf_puts(b, ",\"expoPushToken\":");
        buf_json_str(b, tok, toklen);
    }
    if (shape == SHAPE_PROVIDER_TOKEN)
        buf_puts(b, ",\"apns\":{\"reason\":\"InvalidProviderToken\",\"statusCode\":403}");
    buf_puts(b, "}}");
}

static void error_ticket(sim_t *s, buf_t *b, int shape, const char *msg, const sim_rcpt_t *r)
{
    s->st.tickets_error++;
    s->st.ticket_errors[shapes[shape].err]++;
    put_error(b, shape, msg ? msg : shapes[shape].msg, r->tok, r->len);
}

/* "<token>" <tail>, with the whole token as Expo echoes it; ticket JSON escapes it. */
static void token_message(const char *tok, size_t len, const char *tail, buf_t *msg)
{
    buf_putc(msg, '"');
    buf_append(msg, tok, len);
    buf_printf(msg, "\" %s", tail);
}

static void token_error(sim_t *s, buf_t *b, const sim_rcpt_t *r, const char *tail)
{
    buf_t msg = BUF_INIT;
    token_message(r->tok, r->len, tail, &msg);
    error_ticket(s, b, ERR_DEVICE_NOT_REGISTERED, buf_cstr(&msg), r);
    buf_cleanup(&msg);
}

/* One JSON line per accepted message: string fields are copied as sent (they are valid JSON
 * literals already), data with the whitespace removed; no re-encoding on the hot path. */
static void record(sim_t *s, const sim_rcpt_t *r, const char *id, const char *project, int64_t ts)
{
    buf_t *b = &s->scratch;
    buf_printf(b, "{\"ts\":%" PRId64 ",\"id\":\"%s\",\"project\":", ts, id);
    buf_json_str(b, project, strlen(project));
    buf_puts(b, ",\"token\":");
    buf_json_str(b, r->tok, r->len);
    for (int f = 0; f < F_NREC; f++) {
        const sim_span_t *v = &r->msg->rec[f];
        if (v->p == NULL)
            continue;
        buf_printf(b, ",\"%s\":", sim_rec_names[f]);
        if (f == F_DATA || f == F_RICH)
            sj_compact(v->p, v->n, b);
        else
            buf_append(b, v->p, v->n);
    }
    buf_puts(b, "}\n");
}

static void ok_ticket(sim_t *s, buf_t *b, const sim_rcpt_t *r, enum sim_behaviour beh, int shape,
                      const char *project, const sim_req_t *req)
{
    uint64_t seq = s->next_seq++;
    char id[37];
    fmt_id(id, s->nonce, seq * ID_MUL);
    sim_receipt_t *e = &s->receipts[seq % s->o.receipt_capacity];
    free(e->token);
    e->token = NULL;
    e->seq = seq;
    e->ready_ms = req->mono_ms + s->o.receipt_delay_ms;
    e->kind = RCPT_OK;
    e->shape = 0;
    if (beh == BEH_RECEIPT_ERROR) {
        e->kind = RCPT_ERROR;
        e->shape = (uint8_t)shape;
        if (shapes[shape].err == ERR_DEVICE_NOT_REGISTERED)
            e->token = xstrndup(r->tok, r->len);
    } else if (beh == BEH_NO_RECEIPT) {
        e->kind = RCPT_NEVER;
    }
    s->st.tickets_ok++;
    s->st.messages_accepted++;
    sim_tok_t *k = sim_tok_get(s, r->tok, r->len);
    if (k)
        k->delivered++;
    else
        s->st.tokens_untracked++;
    if (s->o.malformed_ticket > 0 && sim_rand01(s) < s->o.malformed_ticket) {
        s->st.malformed_tickets++; /* accepted, but the client cannot know it */
        buf_puts(b, "{\"status\":\"ok\"}");
    } else {
        buf_printf(b, "{\"status\":\"ok\",\"id\":\"%s\"}", id);
    }
    if (s->o.record)
        record(s, r, id, project, req->wall_ms);
}

static void ticket(sim_t *s, buf_t *b, const sim_rcpt_t *r, size_t payload, const char *project,
                   const sim_req_t *req)
{
    char msg[400];
    if (r->project == -2) {
        token_error(s, b, r, "is not a valid Expo push token");
        return;
    }
    int shape;
    enum sim_behaviour beh = behaviour_of(r->tok, r->len, &shape);
    bool too_big = beh == BEH_TICKET_ERROR && shape == ERR_MESSAGE_TOO_BIG;
    if (too_big || payload > SIM_MAX_PAYLOAD) {
        snprintf(msg, sizeof msg, "Message too big: the payload is %zu bytes, the limit is %d.",
                 payload, SIM_MAX_PAYLOAD);
        error_ticket(s, b, ERR_MESSAGE_TOO_BIG, msg, r);
        return;
    }
    if (beh == BEH_RATE_EXCEEDED_ONCE || beh == BEH_LATE_RATE_EXCEEDED_ONCE) {
        sim_tok_t *k = sim_tok_get(s, r->tok, r->len);
        bool first = k && !k->once_seen;
        if (k)
            k->once_seen = true;
        if (!first)
            beh = BEH_OK;
        else
            beh = beh == BEH_RATE_EXCEEDED_ONCE ? BEH_TICKET_ERROR : BEH_RECEIPT_ERROR;
    }
    if (beh == BEH_TICKET_ERROR && shapes[shape].err == ERR_DEVICE_NOT_REGISTERED)
        token_error(s, b, r, "is not a registered push notification recipient");
    else if (beh == BEH_TICKET_ERROR)
        error_ticket(s, b, shape, NULL, r);
    else
        ok_ticket(s, b, r, beh, shape, project, req);
}

/* ---- send ---- */

static void tickets(sim_t *s, const sim_req_t *req, const sim_rcpt_t *r, size_t nr, int proj,
                    bool single, sim_resp_t *out)
{
    const char *project = project_name(s, proj);
    buf_t *b = &out->body;
    buf_reserve(b, 64 + nr * 64);
    buf_puts(b, single ? "{\"data\":" : "{\"data\":[");
    for (size_t i = 0; i < nr; i++) {
        if (i)
            buf_putc(b, ',');
        ticket(s, b, &r[i], r[i].msg->payload, project, req);
    }
    buf_puts(b, single ? "}" : "]}");
    if (s->scratch.len) {
        pthread_mutex_lock(&s->rec_mu);
        buf_append(&s->rec, s->scratch.data, s->scratch.len);
        pthread_mutex_unlock(&s->rec_mu);
        buf_reset(&s->scratch);
    }
    out->status = 200;
}

void sim_push_send(sim_t *s, const sim_req_t *req, const char *body, size_t len, sim_resp_t *out)
{
    sim_batch_t *b = &s->batch;
    if (sim_batch_parse(b, body, len, out) != 0)
        goto done;
    int proj = one_project(s, b->r, b->nr, out);
    if (proj == -3)
        goto done;
    if (!rate_admit(s, project_name(s, proj), b->nr, req->mono_ms)) {
        s->st.rate_limited++;
        sim_error_reply(out, 429, "TOO_MANY_REQUESTS",
                        "Exceeded 600 notifications per second, please try again.");
        out->retry_after_s = s->o.retry_after_s;
        goto done;
    }
    tickets(s, req, b->r, b->nr, proj, b->single, out);
done:
    sim_batch_cleanup(b);
}

/* ---- receipts ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The ring entry of a ticket id of this run, or NULL. */
static const sim_receipt_t *lookup(const sim_t *s, const char *id, size_t n)
{
    if (n != 36 || !uuid_shaped(id, n))
        return NULL;
    uint64_t hi = 0, lo = 0;
    int d = 0;
    for (size_t i = 0; i < 36; i++) {
        if (id[i] == '-')
            continue;
        int v = hexval(id[i]);
        if (v < 0)
            return NULL;
        if (d < 16)
            hi = hi << 4 | (uint64_t)v;
        else
            lo = lo << 4 | (uint64_t)v;
        d++;
    }
    lo = id_unmul(lo);
    if (hi != s->nonce || lo == 0)
        return NULL;
    const sim_receipt_t *e = &s->receipts[lo % s->o.receipt_capacity];
    return e->seq == lo ? e : NULL;
}

static void put_receipt(buf_t *b, const sim_receipt_t *e)
{
    if (e->kind == RCPT_OK) {
        buf_puts(b, "{\"status\":\"ok\"}");
        return;
    }
    const char *tok = e->token ? e->token : "";
    if (shapes[e->shape].err != ERR_DEVICE_NOT_REGISTERED) {
        put_error(b, e->shape, shapes[e->shape].msg, tok, strlen(tok));
        return;
    }
    buf_t msg = BUF_INIT;
    token_message(tok, strlen(tok), "is not a registered push notification recipient", &msg);
    put_error(b, e->shape, buf_cstr(&msg), tok, strlen(tok));
    buf_cleanup(&msg);
}

void sim_push_receipts(sim_t *s, const sim_req_t *req, json_t *root, sim_resp_t *out)
{
    json_t *ids = json_object_get(root, "ids");
    if (!json_is_object(root) || !json_is_array(ids)) {
        sim_error_reply(out, 400, "VALIDATION_ERROR", "The body must be {\"ids\": [...]}.");
        return;
    }
    size_t n = json_array_size(ids);
    if (n > SIM_MAX_RECEIPT_IDS) {
        sim_error_reply(out, 400, "PUSH_TOO_MANY_RECEIPTS",
                        "You are trying to get more than 1000 push receipts in one request.");
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!json_is_string(json_array_get(ids, i))) {
            sim_error_reply(out, 400, "VALIDATION_ERROR", "\"ids\" must contain only strings.");
            return;
        }
    s->st.receipt_ids_asked += n;
    buf_t *b = &out->body;
    buf_puts(b, "{\"data\":{");
    for (size_t i = 0, k = 0; i < n; i++) {
        json_t *v = json_array_get(ids, i);
        const sim_receipt_t *e = lookup(s, json_string_value(v), json_string_length(v));
        if (e == NULL || e->kind == RCPT_NEVER || req->mono_ms < e->ready_ms)
            continue;
        buf_puts(b, k++ ? "," : "");
        buf_json_str(b, json_string_value(v), json_string_length(v));
        buf_putc(b, ':');
        put_receipt(b, e);
        s->st.receipts_served++;
    }
    buf_puts(b, "}}");
    out->status = 200;
}
