/* sim.c - the Expo simulator's frame: options (shared by the command line and POST /control),
 * state, request routing, body decoding (gzip with a bound), fault injection, /stats, /reset and
 * /control. The push endpoints themselves live in sim_push.c. See README.md for the behaviour. */
#include "tools/expo_sim/sim_int.h"
#include "core/xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <zlib.h>

#define SEND_PATH "/--/api/v2/push/send"
#define RECEIPTS_PATH "/--/api/v2/push/getReceipts"

const char *const sim_errnames[SIM_ERRKINDS] = {
    "DeviceNotRegistered", "MessageTooBig",  "MessageRateExceeded", "InvalidCredentials",
    "MismatchSenderId",    "DeveloperError", "ExpoError",           "ProviderError",
};

void sim_opts_defaults(sim_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->max_body = SIM_DEFAULT_MAX_BODY;
    o->receipt_capacity = 1u << 20;
    o->token_capacity = 100000;
    snprintf(o->default_project, sizeof o->default_project, "@herald/sim");
}

/* ---- options ---- */

static int parse_prob(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= 0.0 && d <= 1.0))
        return -1;
    *out = d;
    return 0;
}

static int parse_u64(const char *v, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*v < '0' || *v > '9')
        return -1;
    unsigned long long u = strtoull(v, &end, 10);
    if (errno || *end || u > max)
        return -1;
    *out = u;
    return 0;
}

static int set_str(char *dst, size_t cap, const char *v)
{
    if (strlen(v) >= cap)
        return -1;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

typedef enum { K_PROB, K_UINT, K_U64, K_SIZE, K_STR, K_WINDOW } kind_t;
static const char *const window_names[] = {"sliding", "fixed", "strict"}; /* sim_rate_window_t */
typedef struct optdef {
    const char *name;
    kind_t kind;
    size_t off, cap; /* cap: string capacity or integer maximum */
    bool startup;
} optdef_t;

#define OPT(n, k, f, c, st)                                                                        \
    {                                                                                              \
        n, k, offsetof(sim_opts_t, f), c, st                                                       \
    }
static const optdef_t optdefs[] = {
    OPT("fail-5xx", K_PROB, fail_5xx, 0, false),
    OPT("fail-429", K_PROB, fail_429, 0, false),
    OPT("drop", K_PROB, drop, 0, false),
    OPT("drop-after", K_PROB, drop_after, 0, false),
    OPT("malformed", K_PROB, malformed, 0, false),
    OPT("fail-500", K_PROB, fail_500, 0, false),
    OPT("fail-invalid-token", K_PROB, fail_invalid_token, 0, false),
    OPT("fail-200-errors", K_PROB, fail_200_errors, 0, false),
    OPT("fail-504", K_PROB, fail_504, 0, false),
    OPT("malformed-ticket", K_PROB, malformed_ticket, 0, false),
    OPT("latency-ms", K_UINT, latency_ms, 600000, false),
    OPT("rate-limit", K_UINT, rate_limit, 100000000, false),
    OPT("rate-window", K_WINDOW, rate_window, 0, false),
    OPT("receipt-delay-ms", K_UINT, receipt_delay_ms, 86400000, false),
    OPT("retry-after", K_UINT, retry_after_s, 3600, false),
    OPT("seed", K_U64, seed, UINT64_MAX, false),
    OPT("access-token", K_STR, access_token, sizeof(((sim_opts_t *)0)->access_token), false),
    OPT("max-body", K_SIZE, max_body, 1024u * 1024 * 1024, true),
    OPT("receipt-capacity", K_SIZE, receipt_capacity, 1u << 26, true),
    OPT("token-capacity", K_SIZE, token_capacity, 1u << 24, true),
    OPT("default-project", K_STR, default_project, sizeof(((sim_opts_t *)0)->default_project),
        true),
    OPT("projects", K_STR, projects_file, sizeof(((sim_opts_t *)0)->projects_file), true),
};

static int set_one(sim_opts_t *o, const optdef_t *d, const char *v)
{
    char *p = (char *)o + d->off;
    uint64_t u;
    switch (d->kind) {
    case K_PROB:
        return parse_prob(v, (double *)(void *)p);
    case K_UINT:
        if (parse_u64(v, d->cap, &u) != 0)
            return -1;
        *(unsigned *)(void *)p = (unsigned)u;
        return 0;
    case K_U64:
        return parse_u64(v, UINT64_MAX, (uint64_t *)(void *)p);
    case K_SIZE:
        if (parse_u64(v, d->cap, &u) != 0 || u == 0)
            return -1;
        *(size_t *)(void *)p = (size_t)u;
        return 0;
    case K_STR:
        return set_str(p, d->cap, v);
    case K_WINDOW:
        for (int w = 0; w < 3; w++)
            if (strcmp(v, window_names[w]) == 0) {
                *(sim_rate_window_t *)(void *)p = (sim_rate_window_t)w;
                return 0;
            }
        return -1;
    }
    return -1;
}

int sim_opts_set(sim_opts_t *o, const char *name, const char *value, bool runtime_only, char *err,
                 size_t errlen)
{
    char norm[64]; /* printable ASCII only: it is echoed in JSON error replies */
    size_t n = strlen(name);
    if (n >= sizeof norm)
        n = sizeof norm - 1;
    for (size_t i = 0; i < n; i++)
        norm[i] = name[i] == '_' ? '-' : (name[i] < 0x20 || name[i] > 0x7e) ? '?' : name[i];
    norm[n] = '\0';
    for (size_t i = 0; i < sizeof optdefs / sizeof optdefs[0]; i++) {
        const optdef_t *d = &optdefs[i];
        if (strcmp(d->name, norm) != 0)
            continue;
        if (runtime_only && d->startup) {
            snprintf(err, errlen, "option %s can only be set at start-up", norm);
            return -1;
        }
        if (set_one(o, d, value) != 0) {
            snprintf(err, errlen, "bad value for %s", norm);
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen, "unknown option %s", norm);
    return -1;
}

static void opts_json(const sim_opts_t *o, buf_t *b)
{
    buf_printf(b,
               "{\"fail-5xx\":%g,\"fail-429\":%g,\"drop\":%g,\"drop-after\":%g,\"malformed\":%g,"
               "\"fail-500\":%g,\"fail-invalid-token\":%g,\"fail-200-errors\":%g,\"fail-504\":%g,"
               "\"malformed-ticket\":%g,\"latency-ms\":%u,\"rate-limit\":%u,\"rate-window\":\"%s\","
               "\"receipt-delay-ms\":%u,\"retry-after\":%u,\"seed\":%" PRIu64
               ",\"access-token\":%s}",
               o->fail_5xx, o->fail_429, o->drop, o->drop_after, o->malformed, o->fail_500,
               o->fail_invalid_token, o->fail_200_errors, o->fail_504, o->malformed_ticket,
               o->latency_ms, o->rate_limit, window_names[o->rate_window], o->receipt_delay_ms,
               o->retry_after_s, o->seed, o->access_token[0] ? "true" : "false");
}

/* ---- state ---- */

static int load_projects(sim_t *s, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[1024], pat[512], name[256], extra[2];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *h = strchr(line, '#');
        if (h)
            *h = '\0';
        int k = sscanf(line, "%511s %255s %1s", pat, name, extra);
        if (k <= 0)
            continue;
        if (k != 2 || name[0] != '@' || strchr(name, '/') == NULL) {
            snprintf(err, errlen, "%s:%d: expected \"TOKEN-SUBSTRING @owner/slug\"", path, lineno);
            rc = -1;
            break;
        }
        s->projects = xrealloc(s->projects, (s->nprojects + 1) * sizeof *s->projects);
        s->projects[s->nprojects].pattern = xstrdup(pat);
        s->projects[s->nprojects].name = xstrdup(name);
        s->nprojects++;
    }
    fclose(f);
    return rc;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double sim_rand01(sim_t *s)
{
    return (double)(splitmix(&s->rng) >> 11) * (1.0 / 9007199254740992.0);
}

sim_t *sim_create(const sim_opts_t *opts, char *err, size_t errlen)
{
    sim_t *s = xcalloc(1, sizeof *s);
    s->o = *opts;
    s->rng = opts->seed;
    if (getrandom(&s->nonce, sizeof s->nonce, 0) != (ssize_t)sizeof s->nonce)
        s->nonce = 0x5eed5eed5eed5eedull ^ (uint64_t)(uintptr_t)s;
    s->next_seq = 1;
    s->receipts = xcalloc(opts->receipt_capacity, sizeof *s->receipts);
    s->tok_cap = 16;
    while (s->tok_cap < opts->token_capacity * 2)
        s->tok_cap *= 2;
    s->toks = xcalloc(s->tok_cap, sizeof *s->toks);
    pthread_mutex_init(&s->rec_mu, NULL);
    if (opts->projects_file[0] && load_projects(s, opts->projects_file, err, errlen) != 0) {
        sim_destroy(s);
        return NULL;
    }
    return s;
}

static void clear_tokens(sim_t *s)
{
    for (size_t i = 0; i < s->tok_cap; i++)
        free(s->toks[i].token);
    memset(s->toks, 0, s->tok_cap * sizeof *s->toks);
    s->tok_count = 0;
}

void sim_destroy(sim_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->o.receipt_capacity; i++)
        free(s->receipts[i].token);
    free(s->receipts);
    clear_tokens(s);
    free(s->toks);
    for (size_t i = 0; i < s->nprojects; i++) {
        free(s->projects[i].pattern);
        free(s->projects[i].name);
    }
    free(s->projects);
    for (size_t i = 0; i < s->nrates; i++)
        free(s->rates[i].project);
    free(s->rates);
    pthread_mutex_destroy(&s->rec_mu);
    buf_cleanup(&s->rec);
    buf_cleanup(&s->scratch);
    free(s);
}

void sim_get_opts(sim_t *s, sim_opts_t *out)
{
    *out = s->o;
}

void sim_record_take(sim_t *s, buf_t *out)
{
    pthread_mutex_lock(&s->rec_mu);
    if (s->rec.len)
        buf_append(out, s->rec.data, s->rec.len);
    buf_reset(&s->rec);
    pthread_mutex_unlock(&s->rec_mu);
}

void sim_resp_cleanup(sim_resp_t *r)
{
    buf_cleanup(&r->body);
    memset(r, 0, sizeof *r);
}

/* ---- replies ---- */

void sim_error_reply(sim_resp_t *out, int status, const char *code, const char *msg)
{
    out->status = status;
    out->content_type = "application/json; charset=utf-8";
    buf_reset(&out->body);
    buf_puts(&out->body, "{\"errors\":[{\"code\":");
    buf_json_str(&out->body, code, strlen(code));
    buf_puts(&out->body, ",\"message\":");
    buf_json_str(&out->body, msg, strlen(msg));
    buf_puts(&out->body, "}]}");
}

static void html_reply(sim_resp_t *out, int status)
{
    const char *title = status == 502   ? "502 Bad Gateway"
                        : status == 504 ? "504 Gateway Time-out"
                                        : "503 Service Temporarily Unavailable";
    out->status = status;
    out->content_type = "text/html";
    buf_reset(&out->body);
    buf_printf(&out->body,
               "<html>\r\n<head><title>%s</title></head>\r\n<body>\r\n<center><h1>%s</h1>"
               "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
               title, title);
}

/* ---- body decoding ---- */

/* Inflates a gzip body into out, at most max bytes. Returns 0, -1 corrupt, -2 too big. */
static int gunzip(const char *in, size_t inlen, size_t max, buf_t *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return -1;
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)inlen;
    int rc = Z_OK, result = 0;
    while (rc != Z_STREAM_END) {
        size_t chunk = inlen * 4 + 4096;
        if (chunk > 1u << 20)
            chunk = 1u << 20;
        if (out->len + chunk > max + 1)
            chunk = max + 1 - out->len;
        buf_reserve(out, chunk);
        z.next_out = (Bytef *)out->data + out->len;
        z.avail_out = (uInt)chunk;
        rc = inflate(&z, Z_NO_FLUSH);
        out->len += chunk - z.avail_out;
        if (out->len > max) {
            result = -2;
            break;
        }
        if (rc != Z_OK && rc != Z_STREAM_END) {
            result = -1; /* includes Z_BUF_ERROR: truncated input */
            break;
        }
    }
    if (result == 0 && z.avail_in != 0)
        result = -1; /* trailing bytes after the gzip member */
    inflateEnd(&z);
    if (out->data)
        out->data[out->len] = '\0';
    return result;
}

static bool is_json_ctype(const char *ct)
{
    static const char want[] = "application/json";
    if (ct == NULL || strncasecmp(ct, want, sizeof want - 1) != 0)
        return false;
    char c = ct[sizeof want - 1];
    return c == '\0' || c == ';' || c == ' ';
}

static bool auth_ok(const sim_t *s, const char *auth)
{
    if (s->o.access_token[0] == '\0')
        return true;
    return auth && strncmp(auth, "Bearer ", 7) == 0 && strcmp(auth + 7, s->o.access_token) == 0;
}

/* Header and body checks common to both push endpoints. On success *body and *len hold the
 * plain body (in plain when it was inflated); otherwise the error reply is written. */
static int decode_body(sim_t *s, const sim_req_t *req, buf_t *plain, const char **body, size_t *len,
                       sim_resp_t *out)
{
    if (!auth_ok(s, req->auth)) {
        sim_error_reply(out, 401, "UNAUTHORIZED",
                        "The bearer token is invalid; enhanced push security requires "
                        "\"Authorization: Bearer <access token>\".");
        return -1;
    }
    if (req->body_too_big) {
        sim_error_reply(out, 413, "PAYLOAD_TOO_LARGE", "Request body too large.");
        return -1;
    }
    if (!is_json_ctype(req->content_type)) {
        sim_error_reply(out, 415, "API_ERROR", "Content-Type must be application/json.");
        return -1;
    }
    *body = req->body ? req->body : "";
    *len = req->bodylen;
    const char *ce = req->content_encoding;
    if (ce == NULL || *ce == '\0' || strcasecmp(ce, "identity") == 0)
        return 0;
    if (strcasecmp(ce, "gzip") != 0) {
        sim_error_reply(out, 415, "API_ERROR", "Unsupported Content-Encoding.");
        return -1;
    }
    s->st.gzip_requests++;
    int rc = gunzip(req->body, req->bodylen, s->o.max_body, plain);
    if (rc == -2)
        sim_error_reply(out, 413, "PAYLOAD_TOO_LARGE", "Decompressed body too large.");
    else if (rc != 0)
        sim_error_reply(out, 400, "VALIDATION_ERROR", "Corrupt gzip request body.");
    *body = plain->data ? plain->data : "";
    *len = plain->len;
    return rc == 0 ? 0 : -1;
}

static void receipts(sim_t *s, const sim_req_t *req, const char *body, size_t len, sim_resp_t *out)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (root == NULL) {
        sim_error_reply(out, 400, "VALIDATION_ERROR", "Request body is not valid JSON.");
        return;
    }
    sim_push_receipts(s, req, root, out);
    json_decref(root);
}

/* ---- push endpoints with faults ---- */

/* Whether a fault of probability p fires this time (counted in *count when it does). The random
 * stream is drawn from only for faults that are on. */
static bool fires(sim_t *s, double p, uint64_t *count)
{
    bool fired = p > 0 && sim_rand01(s) < p;
    if (fired)
        (*count)++;
    return fired;
}

/* Gateway faults: decided before the service sees the request. Returns true when one fired. */
static bool gateway_fault(sim_t *s, sim_resp_t *out)
{
    if (fires(s, s->o.drop, &s->st.drops)) {
        out->action = SIM_DROP;
        return true;
    }
    if (fires(s, s->o.fail_5xx, &s->st.injected_5xx)) {
        html_reply(out, (splitmix(&s->rng) & 1) ? 503 : 502);
        out->retry_after_s = s->o.retry_after_s;
        return true;
    }
    if (fires(s, s->o.fail_500, &s->st.injected_500)) {
        sim_error_reply(out, 500, "INTERNAL_SERVER_ERROR", "An unknown error occurred.");
        return true;
    }
    if (fires(s, s->o.fail_invalid_token, &s->st.injected_invalid_token)) {
        out->status = 401;
        buf_reset(&out->body);
        buf_puts(&out->body, "{\"error\":\"invalid_token\",\"error_description\":\"The access "
                             "token is invalid, expired or revoked.\"}");
        return true;
    }
    if (fires(s, s->o.fail_200_errors, &s->st.injected_200_errors)) {
        sim_error_reply(out, 200, "INTERNAL_SERVER_ERROR", "An unknown error occurred.");
        return true;
    }
    if (fires(s, s->o.fail_429, &s->st.injected_429)) {
        sim_error_reply(out, 429, "TOO_MANY_REQUESTS",
                        "Exceeded 600 notifications per second, please try again.");
        out->retry_after_s = s->o.retry_after_s;
        return true;
    }
    return false;
}

/* Faults after the service processed the request (the client cannot know it was delivered). */
static void late_fault(sim_t *s, sim_resp_t *out)
{
    if (out->status != 200)
        return;
    if (fires(s, s->o.drop_after, &s->st.drops_after)) {
        out->action = SIM_DROP;
        return;
    }
    /* the gateway gave up waiting; the service went on */
    if (fires(s, s->o.fail_504, &s->st.injected_504)) {
        html_reply(out, 504);
        return;
    }
    if (fires(s, s->o.malformed, &s->st.malformed)) {
        size_t keep = out->body.len / 2;
        out->body.len = keep ? keep : 1;
        out->body.data[out->body.len] = '\0';
    }
}

static void push_endpoint(sim_t *s, const sim_req_t *req, bool send, sim_resp_t *out)
{
    s->st.requests++;
    if (send)
        s->st.send_requests++;
    else
        s->st.receipt_requests++;
    out->delay_ms = s->o.latency_ms;
    if (gateway_fault(s, out))
        return;
    if (strcmp(req->method, "POST") != 0) {
        sim_error_reply(out, 405, "API_ERROR", "Method not allowed; use POST.");
        return;
    }
    buf_t plain = BUF_INIT;
    const char *body;
    size_t len;
    if (decode_body(s, req, &plain, &body, &len, out) == 0) {
        if (send)
            sim_push_send(s, req, body, len, out);
        else
            receipts(s, req, body, len, out);
        late_fault(s, out);
    }
    buf_cleanup(&plain);
}

/* ---- /stats, /reset, /control ---- */

static void stats_reply(sim_t *s, sim_resp_t *out)
{
    const sim_stats_t *t = &s->st;
    buf_t *b = &out->body;
    buf_printf(b,
               "{\"requests\":%" PRIu64 ",\"sendRequests\":%" PRIu64 ",\"receiptRequests\":%" PRIu64
               ",\"messagesAccepted\":%" PRIu64 ",\"tickets\":{\"ok\":%" PRIu64
               ",\"error\":%" PRIu64 "},\"ticketErrors\":{",
               t->requests, t->send_requests, t->receipt_requests, t->messages_accepted,
               t->tickets_ok, t->tickets_error);
    for (int i = 0, n = 0; i < SIM_ERRKINDS; i++)
        if (sim_errnames[i])
            buf_printf(b, "%s\"%s\":%" PRIu64, n++ ? "," : "", sim_errnames[i],
                       t->ticket_errors[i]);
    buf_printf(
        b,
        "},\"responses\":{\"2xx\":%" PRIu64 ",\"4xx\":%" PRIu64 ",\"5xx\":%" PRIu64
        "},\"http429\":%" PRIu64 ",\"rateLimited\":%" PRIu64 ",\"injected429\":%" PRIu64
        ",\"injected5xx\":%" PRIu64 ",\"injected500\":%" PRIu64 ",\"injectedInvalidToken\":%" PRIu64
        ",\"injected200Errors\":%" PRIu64 ",\"injected504\":%" PRIu64 ",\"drops\":%" PRIu64
        ",\"dropsAfterAccept\":%" PRIu64 ",\"malformed\":%" PRIu64 ",\"malformedTickets\":%" PRIu64
        ",\"receiptsServed\":%" PRIu64 ",\"receiptIdsAsked\":%" PRIu64 ",\"gzipRequests\":%" PRIu64
        ",\"badRequests\":%" PRIu64 ",\"tokensUntracked\":%" PRIu64 ",\"tokens\":{",
        t->status_2xx, t->status_4xx, t->status_5xx, t->http_429, t->rate_limited, t->injected_429,
        t->injected_5xx, t->injected_500, t->injected_invalid_token, t->injected_200_errors,
        t->injected_504, t->drops, t->drops_after, t->malformed, t->malformed_tickets,
        t->receipts_served, t->receipt_ids_asked, t->gzip_requests, t->bad_requests,
        t->tokens_untracked);
    int n = 0;
    for (size_t i = 0; i < s->tok_cap; i++) {
        const sim_tok_t *k = &s->toks[i];
        if (k->token == NULL || k->delivered == 0)
            continue;
        if (n++)
            buf_putc(b, ',');
        buf_json_str(b, k->token, strlen(k->token));
        buf_printf(b, ":%" PRIu64, k->delivered);
    }
    buf_puts(b, "}}");
    out->status = 200;
}

static void do_reset(sim_t *s)
{
    memset(&s->st, 0, sizeof s->st);
    clear_tokens(s);
    for (size_t i = 0; i < s->nrates; i++)
        free(s->rates[i].project);
    free(s->rates);
    s->rates = NULL;
    s->nrates = 0;
}

/* Applies a JSON object of runtime options all or nothing. */
static void control(sim_t *s, const sim_req_t *req, sim_resp_t *out)
{
    json_error_t jerr;
    json_t *root = json_loadb(req->body ? req->body : "", req->bodylen, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        sim_error_reply(out, 400, "VALIDATION_ERROR", "POST /control takes a JSON object.");
        return;
    }
    sim_opts_t o = s->o;
    const char *k;
    json_t *v;
    char val[320], err[160];
    json_object_foreach(root, k, v)
    {
        if (json_is_string(v))
            snprintf(val, sizeof val, "%s", json_string_value(v));
        else if (json_is_integer(v))
            snprintf(val, sizeof val, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else if (json_is_real(v))
            snprintf(val, sizeof val, "%.17g", json_real_value(v));
        else
            snprintf(val, sizeof val, "?");
        if (sim_opts_set(&o, k, val, true, err, sizeof err) != 0) {
            json_decref(root);
            sim_error_reply(out, 400, "VALIDATION_ERROR", err);
            return;
        }
    }
    if (o.seed != s->o.seed)
        s->rng = o.seed;
    s->o = o;
    json_decref(root);
    out->status = 200;
    opts_json(&s->o, &out->body);
}

static void admin(sim_t *s, const sim_req_t *req, sim_resp_t *out)
{
    bool post = strcmp(req->method, "POST") == 0, get = strcmp(req->method, "GET") == 0;
    if (strcmp(req->path, "/stats") == 0 && get) {
        stats_reply(s, out);
    } else if (!req->loopback) {
        sim_error_reply(out, 403, "FORBIDDEN", "Control endpoints are loopback only.");
    } else if (strcmp(req->path, "/reset") == 0 && post) {
        do_reset(s);
        out->status = 200;
        buf_puts(&out->body, "{\"ok\":true}");
    } else if (strcmp(req->path, "/control") == 0 && post) {
        control(s, req, out);
    } else if (strcmp(req->path, "/control") == 0 && get) {
        out->status = 200;
        opts_json(&s->o, &out->body);
    } else {
        sim_error_reply(out, 405, "API_ERROR", "Method not allowed.");
    }
}

static void count_status(sim_t *s, const sim_resp_t *out)
{
    if (out->action == SIM_DROP)
        return;
    if (out->status >= 500)
        s->st.status_5xx++;
    else if (out->status >= 400)
        s->st.status_4xx++;
    else
        s->st.status_2xx++;
    if (out->status == 429)
        s->st.http_429++;
    if (out->status == 400)
        s->st.bad_requests++;
}

void sim_handle(sim_t *s, const sim_req_t *req, sim_resp_t *out)
{
    buf_reset(&out->body);
    out->status = 200;
    out->content_type = "application/json; charset=utf-8";
    out->action = SIM_RESPOND;
    out->delay_ms = 0;
    out->retry_after_s = 0;
    const char *p = req->path ? req->path : "";
    bool send = strcmp(p, SEND_PATH) == 0;
    if (send || strcmp(p, RECEIPTS_PATH) == 0) {
        push_endpoint(s, req, send, out);
        count_status(s, out);
    } else if (strcmp(p, "/stats") == 0 || strcmp(p, "/reset") == 0 || strcmp(p, "/control") == 0) {
        admin(s, req, out);
    } else {
        sim_error_reply(out, 404, "NOT_FOUND", "Not found.");
    }
}
