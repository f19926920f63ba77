/* sim_msgs.c - reads a push/send body into messages and recipients in one pass of the scanner
 * (sim_json.c): shape (an array of messages or one message), the 100-recipient limit counting
 * "to" arrays, field types, and each message's payload size, the compact JSON of the message
 * without "to". The first problem in document order decides the 400 reply, but only once the
 * whole body is known to be valid JSON (an invalid body is "not valid JSON" first). */
#include "tools/expo_sim/sim_int.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <string.h>

const char *const sim_rec_names[F_NREC] = {"title",
                                           "body",
                                           "subtitle",
                                           "collapseId",
                                           "priority",
                                           "channelId",
                                           "data",
                                           "sound",
                                           "badge",
                                           "ttl",
                                           "categoryId",
                                           "richContent",
                                           "icon",
                                           "tag",
                                           "interruptionLevel",
                                           "mutableContent",
                                           "_contentAvailable"};

typedef struct parse {
    sj_t j;
    sim_batch_t *b;
    char err_code[40]; /* first shape error, "" when none */
    char err_msg[160];
    buf_t key; /* decoded key when it had escapes */
} parse_t;

static void shape_err(parse_t *ps, const char *code, const char *msg)
{
    if (ps->err_code[0])
        return;
    snprintf(ps->err_code, sizeof ps->err_code, "%s", code);
    snprintf(ps->err_msg, sizeof ps->err_msg, "%s", msg);
}

static void field_err(parse_t *ps, size_t i, const char *k, size_t kn, const char *what)
{
    char msg[160], f[41];
    size_t n = 0;
    for (; n < kn && n < sizeof f - 1; n++) /* echoed in JSON: printable ASCII only */
        f[n] = k[n] < 0x20 || k[n] > 0x7e ? '?' : k[n];
    f[n] = '\0';
    snprintf(msg, sizeof msg, "\"[%zu].%s\" %s", i, f, what);
    shape_err(ps, "VALIDATION_ERROR", msg);
}

static bool key_is(const char *k, size_t kn, const char *name)
{
    return strlen(name) == kn && memcmp(k, name, kn) == 0;
}

/* The decoded text of a string value's span (quotes included in v). */
static bool str_is(const char *v, size_t vn, const char *const *set)
{
    if (vn < 2 || v[0] != '"')
        return false;
    buf_t d = BUF_INIT;
    sj_decode(v + 1, vn - 2, &d);
    bool hit = false;
    for (size_t i = 0; set[i] && !hit; i++)
        hit = strlen(set[i]) == d.len && memcmp(d.data ? d.data : "", set[i], d.len) == 0;
    buf_cleanup(&d);
    return hit;
}

/* A number that is not below zero ("-0" and "-0.0" count as zero). */
static bool nonneg_number(const char *v, size_t vn)
{
    if (!(v[0] == '-' || (v[0] >= '0' && v[0] <= '9')))
        return false;
    if (v[0] != '-')
        return true;
    for (size_t i = 1; i < vn && v[i] != 'e' && v[i] != 'E'; i++)
        if (v[i] >= '1' && v[i] <= '9')
            return false;
    return true;
}

/* richContent: an object whose image, when present, is a string (the image's URL); Expo documents
 * no other member, so others pass. v is a validated object. */
static const char *rich_problem(const char *v, size_t vn)
{
    sj_t j;
    bool esc;
    buf_t key = BUF_INIT;
    const char *problem = NULL;
    sj_init(&j, v + 1, vn - 1);
    sj_ws(&j);
    while (!problem && j.p < j.end && *j.p == '"') {
        const char *k = j.p + 1;
        sj_string(&j, &esc);
        buf_reset(&key);
        sj_decode(k, (size_t)(j.p - k) - 1, &key);
        sj_ws(&j);
        j.p++; /* ':' */
        sj_ws(&j);
        if (key.len == 5 && memcmp(key.data, "image", 5) == 0 && *j.p != '"')
            problem = "must be an object whose image is a string (an image URL)";
        sj_value(&j);
        sj_ws(&j);
        if (j.p < j.end && *j.p == ',')
            j.p++;
        sj_ws(&j);
    }
    buf_cleanup(&key);
    return problem;
}

/* Type rules of the fields Expo documents; others pass. Returns what is wrong, or NULL. */
static const char *field_problem(const char *k, size_t kn, const char *v, size_t vn)
{
    static const char *const strs[] = {"title",      "body", "subtitle", "channelId", "categoryId",
                                       "collapseId", "tag",  "icon",     NULL};
    static const char *const prio[] = {"default", "normal", "high", NULL};
    static const char *const lvl[] = {"active", "critical", "passive", "time-sensitive", NULL};
    for (size_t i = 0; strs[i]; i++)
        if (key_is(k, kn, strs[i]))
            return v[0] == '"' ? NULL : "must be a string";
    if (key_is(k, kn, "data"))
        return v[0] == '{' ? NULL : "must be an object";
    if (key_is(k, kn, "richContent"))
        return v[0] == '{' ? rich_problem(v, vn) : "must be an object";
    if (key_is(k, kn, "sound"))
        return v[0] == '"' || v[0] == '{' || v[0] == 'n' ? NULL : "must be a string or null";
    if (key_is(k, kn, "badge") || key_is(k, kn, "ttl") || key_is(k, kn, "expiration"))
        return nonneg_number(v, vn) ? NULL : "must be a number not below zero";
    if (key_is(k, kn, "mutableContent") || key_is(k, kn, "_contentAvailable"))
        return v[0] == 't' || v[0] == 'f' ? NULL : "must be a boolean";
    if (key_is(k, kn, "priority"))
        return str_is(v, vn, prio) ? NULL : "must be one of [default, normal, high]";
    if (key_is(k, kn, "interruptionLevel"))
        return str_is(v, vn, lvl) ? NULL
                                  : "must be one of [active, critical, passive, "
                                    "time-sensitive]";
    return NULL;
}

/* Adds the recipients of a message's validated "to" value. */
static void recipients(parse_t *ps, sim_msg_t *m, size_t idx)
{
    sim_batch_t *b = ps->b;
    sj_t t;
    sj_init(&t, m->to.p, m->to.n);
    bool arr = *t.p == '[';
    if (arr) {
        t.p++;
        sj_ws(&t);
        if (*t.p == ']') {
            field_err(ps, idx, "to", 2, "must be a token or a non-empty array of tokens");
            return;
        }
    }
    for (;;) {
        if (*t.p != '"') {
            field_err(ps, idx, "to", 2,
                      arr ? "must contain only strings" : "must be a token or an array of tokens");
            return;
        }
        if (b->nr == SIM_MAX_RECIPIENTS) {
            shape_err(ps, "PUSH_TOO_MANY_NOTIFICATIONS",
                      "You are trying to send more than 100 push notifications in one "
                      "request.");
            return;
        }
        const char *s0 = t.p;
        bool esc;
        sj_string(&t, &esc);
        sim_rcpt_t *r = &b->r[b->nr++];
        *r = (sim_rcpt_t){s0 + 1, (size_t)(t.p - s0) - 2, m, -2};
        if (esc) {
            buf_t d = BUF_INIT;
            sj_decode(r->tok, r->len, &d);
            r->len = d.len;
            r->tok = b->owned[b->nowned++] = d.data ? buf_steal(&d) : xstrdup("");
        }
        if (!arr)
            return;
        sj_ws(&t);
        if (*t.p == ']')
            return;
        t.p++; /* ',' */
        sj_ws(&t);
    }
}

/* One member "key": value of message idx. */
static void member(parse_t *ps, sim_msg_t *m, size_t idx, size_t *count)
{
    sj_t *j = &ps->j;
    bool esc;
    const char *k = j->p + 1;
    size_t klen = sj_string(j, &esc), kn = (size_t)(j->p - k) - 1;
    if (esc && !j->err) {
        buf_reset(&ps->key);
        sj_decode(k, kn, &ps->key);
        k = buf_cstr(&ps->key);
        kn = ps->key.len;
    }
    sj_ws(j);
    if (j->err || j->p >= j->end || *j->p != ':') {
        j->err = true;
        return;
    }
    j->p++;
    sj_ws(j);
    const char *v = j->p;
    size_t vlen = sj_value(j), vn = (size_t)(j->p - v);
    if (j->err)
        return;
    if (key_is(k, kn, "to")) {
        m->to = (sim_span_t){v, vn}; /* a repeated key: the last one wins, as in jansson */
        return;
    }
    m->payload += ((*count)++ ? 1 : 0) + klen + 1 + vlen;
    const char *problem = field_problem(k, kn, v, vn);
    if (problem)
        field_err(ps, idx, k, kn, problem);
    for (int f = 0; f < F_NREC; f++)
        if (key_is(k, kn, sim_rec_names[f]))
            m->rec[f] = (sim_span_t){v, vn};
}

static void message(parse_t *ps, size_t idx)
{
    sj_t *j = &ps->j;
    if (j->p >= j->end || *j->p != '{') {
        sj_value(j);
        {
            field_err(ps, idx, "", 0, "must be an object");
            return;
        }
    }
    if (ps->b->nmsgs == SIM_MAX_RECIPIENTS) { /* every message has at least one recipient */
        sj_value(j);
        {
            shape_err(ps, "PUSH_TOO_MANY_NOTIFICATIONS",
                      "You are trying to send more than 100 push notifications in one "
                      "request.");
            return;
        }
    }
    sim_msg_t *m = &ps->b->msgs[ps->b->nmsgs++];
    memset(m, 0, sizeof *m);
    m->payload = 2;
    size_t count = 0;
    j->depth++;
    j->p++;
    sj_ws(j);
    while (!j->err && j->p < j->end && *j->p != '}') {
        if (*j->p != '"') {
            j->err = true;
            return;
        }
        member(ps, m, idx, &count);
        sj_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            sj_ws(j);
            if (j->p < j->end && *j->p == '}')
                j->err = true; /* trailing comma */
        } else if (j->p < j->end && *j->p != '}') {
            j->err = true;
        }
    }
    if (j->err || j->p >= j->end) {
        j->err = true;
        return;
    }
    j->p++;
    j->depth--;
    if (ps->err_code[0])
        return;
    if (m->to.p == NULL) {
        field_err(ps, idx, "to", 2, "is required");
        return;
    }
    recipients(ps, m, idx);
}

static void messages(parse_t *ps)
{
    sj_t *j = &ps->j;
    j->depth++;
    j->p++;
    sj_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return;
    }
    for (size_t i = 0; !j->err; i++) {
        if (ps->err_code[0])
            sj_value(j); /* already failed: only syntax still matters */
        else
            message(ps, i);
        sj_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            sj_ws(j);
            continue;
        }
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return;
        }
        j->err = true;
    }
}

int sim_batch_parse(sim_batch_t *b, const char *body, size_t len, sim_resp_t *out)
{
    parse_t ps = {.b = b};
    memset(b, 0, offsetof(sim_batch_t, msgs));
    sj_init(&ps.j, body, len);
    sj_ws(&ps.j);
    if (ps.j.p < ps.j.end && *ps.j.p == '[') {
        messages(&ps);
    } else if (ps.j.p < ps.j.end && *ps.j.p == '{') {
        message(&ps, 0);
        b->single = b->nmsgs == 1 && b->msgs[0].to.p && *b->msgs[0].to.p == '"';
    } else {
        sj_value(&ps.j);
        shape_err(&ps, "VALIDATION_ERROR",
                  "The body must be a push message or an array of push messages.");
    }
    sj_ws(&ps.j);
    buf_cleanup(&ps.key);
    if (ps.j.err || ps.j.p != ps.j.end) {
        sim_error_reply(out, 400, "VALIDATION_ERROR", "Request body is not valid JSON.");
        return -1;
    }
    if (ps.err_code[0]) {
        sim_error_reply(out, 400, ps.err_code, ps.err_msg);
        return -1;
    }
    return 0;
}

void sim_batch_cleanup(sim_batch_t *b)
{
    for (size_t i = 0; i < b->nowned; i++)
        free(b->owned[i]);
    b->nowned = 0;
}
