/* util.c - shared heraldctl helpers: option parsing, durations, tables, the JSON encoder, the
 * progress bar, and the Redis session that drives its own loop (see util.h). */
#include "ctl/util.h"

#include "core/clock.h"
#include "core/file.h"
#include "core/redact.h"
#include "core/xalloc.h"
#include "daemon/options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- options ---- */

static ctl_opt_t *find_opt(ctl_opt_t *opts, const char *name, size_t n)
{
    for (ctl_opt_t *o = opts; o->name; o++) {
        if ((strlen(o->name) == n && strncmp(o->name, name, n) == 0) ||
            (o->alias && strlen(o->alias) == n && strncmp(o->alias, name, n) == 0))
            return o;
    }
    return NULL;
}

static int set_opt(ctl_opt_t *o, const char *val)
{
    char *end;
    switch (o->kind) {
    case CTL_OPT_FLAG:
        *(bool *)o->out = true;
        return 0;
    case CTL_OPT_STR:
        *(const char **)o->out = val;
        return 0;
    case CTL_OPT_LONG:
        errno = 0;
        *(long *)o->out = strtol(val, &end, 10);
        return (errno || end == val || *end || *(long *)o->out < 0) ? -1 : 0;
    case CTL_OPT_DURATION:
        return ctl_duration_parse(val, (int64_t *)o->out);
    }
    return -1;
}

static int usage_error(const char *usage, const char *msg, const char *what)
{
    fprintf(stderr, "heraldctl: %s '%s'\n%s", msg, what, usage);
    return -1;
}

int ctl_parse(int argc, char **argv, int first, ctl_opt_t *opts, const char **pos, int maxpos,
              int *npos, const char *usage)
{
    int np = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (pos == NULL || np >= maxpos)
                return usage_error(usage, "unexpected argument", a);
            pos[np++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        ctl_opt_t *o = find_opt(opts, a, n);
        if (o == NULL)
            return usage_error(usage, "unknown option", a);
        const char *val = eq ? eq + 1 : NULL;
        if (o->kind == CTL_OPT_FLAG && val)
            return usage_error(usage, "this option takes no value:", o->name);
        if (o->kind != CTL_OPT_FLAG && val == NULL) {
            if (i + 1 >= argc)
                return usage_error(usage, "this option needs a value:", o->name);
            val = argv[++i];
        }
        if (set_opt(o, val) != 0)
            return usage_error(usage, "bad value for", o->name);
        o->seen = true;
    }
    if (npos)
        *npos = np;
    return 0;
}

int ctl_duration_parse(const char *s, int64_t *secs)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    int64_t mult = 1;
    if (*end) {
        switch (*end) {
        case 's':
            mult = 1;
            break;
        case 'm':
            mult = 60;
            break;
        case 'h':
            mult = 3600;
            break;
        case 'd':
            mult = 86400;
            break;
        case 'w':
            mult = 7 * 86400;
            break;
        default:
            return -1;
        }
        if (end[1])
            return -1;
    }
    if (v > INT64_MAX / mult / 1000)
        return -1;
    *secs = (int64_t)v * mult;
    return 0;
}

/* ---- tables ---- */

void ctl_table_init(ctl_table_t *t, size_t ncols, const char *const *header)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    ctl_table_row(t, header);
    t->nrows = 0;
}

void ctl_table_row(ctl_table_t *t, const char *const *cells)
{
    size_t at = (t->cells ? t->nrows + 1 : 0) * t->ncols;
    if (at + t->ncols > t->cap) {
        t->cap = (at + t->ncols) * 2;
        t->cells = xrealloc(t->cells, t->cap * sizeof *t->cells);
    }
    for (size_t i = 0; i < t->ncols; i++)
        t->cells[at + i] = xstrdup(cells[i] ? cells[i] : "-");
    if (at)
        t->nrows++;
}

void ctl_table_print(const ctl_table_t *t, FILE *f)
{
    size_t w[16] = {0};
    size_t nc = t->ncols < 16 ? t->ncols : 16;
    for (size_t r = 0; r <= t->nrows; r++)
        for (size_t c = 0; c < nc; c++) {
            size_t l = strlen(t->cells[r * t->ncols + c]);
            if (l > w[c])
                w[c] = l;
        }
    for (size_t r = 0; r <= t->nrows; r++) {
        for (size_t c = 0; c < nc; c++) {
            const char *s = t->cells[r * t->ncols + c];
            if (c + 1 == nc)
                fprintf(f, "%s\n", s);
            else
                fprintf(f, "%-*s  ", (int)w[c], s);
        }
    }
}

void ctl_table_cleanup(ctl_table_t *t)
{
    size_t n = t->cells ? (t->nrows + 1) * t->ncols : 0;
    for (size_t i = 0; i < n; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

/* ---- JSON ---- */

void ctl_json_key(buf_t *b, const char *key)
{
    char last = b->len ? b->data[b->len - 1] : '{';
    if (last != '{' && last != '[' && last != ':')
        buf_putc(b, ',');
    if (key) {
        buf_json_str(b, key, strlen(key));
        buf_putc(b, ':');
    }
}

void ctl_json_open(buf_t *b, const char *key, char bracket)
{
    ctl_json_key(b, key);
    buf_putc(b, bracket);
}

void ctl_json_close(buf_t *b, char bracket)
{
    buf_putc(b, bracket);
}

void ctl_json_str(buf_t *b, const char *key, const char *value)
{
    ctl_json_key(b, key);
    if (value)
        buf_json_str(b, value, strlen(value));
    else
        buf_puts(b, "null");
}

void ctl_json_int(buf_t *b, const char *key, long long v)
{
    ctl_json_key(b, key);
    buf_printf(b, "%lld", v);
}

void ctl_json_bool(buf_t *b, const char *key, bool v)
{
    ctl_json_key(b, key);
    buf_puts(b, v ? "true" : "false");
}

void ctl_json_raw(buf_t *b, const char *key, const char *json, size_t len)
{
    ctl_json_key(b, key);
    buf_append(b, json, len);
}

void ctl_json_print(buf_t *b, FILE *f)
{
    buf_putc(b, '\n');
    fwrite(b->data, 1, b->len, f);
    buf_reset(b);
}

void ctl_fmt_age(int64_t secs, char *out, size_t outlen)
{
    int64_t a = secs < 0 ? -secs : secs;
    if (a >= 86400)
        snprintf(out, outlen, "%lldd %lldh", (long long)(a / 86400), (long long)(a % 86400 / 3600));
    else if (a >= 3600)
        snprintf(out, outlen, "%lldh %lldm", (long long)(a / 3600), (long long)(a % 3600 / 60));
    else if (a >= 60)
        snprintf(out, outlen, "%lldm", (long long)(a / 60));
    else
        snprintf(out, outlen, "%llds", (long long)a);
}

/* ---- progress ---- */

void ctl_progress_start(ctl_progress_t *p, const char *what, uint64_t total)
{
    memset(p, 0, sizeof *p);
    p->on = isatty(2) == 1;
    p->what = what;
    p->total = total;
    p->start_ms = clk_mono_ms();
}

static void progress_draw(ctl_progress_t *p, uint64_t now)
{
    double secs = (double)(now - p->start_ms) / 1000.0;
    double rate = secs > 0 ? (double)p->done / secs : 0;
    char bar[31];
    memset(bar, ' ', 30);
    bar[30] = '\0';
    if (p->total) {
        uint64_t done = p->done > p->total ? p->total : p->done;
        size_t fill = (size_t)(done * 30 / p->total);
        memset(bar, '#', fill);
        double eta = rate > 0 ? (double)(p->total - done) / rate : 0;
        fprintf(stderr, "\r%s [%s] %llu/%llu %.0f/s ETA %.0fs   ", p->what, bar,
                (unsigned long long)p->done, (unsigned long long)p->total, rate, eta);
    } else {
        fprintf(stderr, "\r%s %llu %.0f/s   ", p->what, (unsigned long long)p->done, rate);
    }
    fflush(stderr);
    p->drawn_ms = now;
}

void ctl_progress_add(ctl_progress_t *p, uint64_t n)
{
    p->done += n;
    if (!p->on)
        return;
    uint64_t now = clk_mono_ms();
    if (now - p->drawn_ms >= 200)
        progress_draw(p, now);
}

void ctl_progress_end(ctl_progress_t *p)
{
    if (p->on && p->drawn_ms)
        fprintf(stderr, "\r\033[K");
    p->on = false;
}

/* ---- Redis session ---- */

static void on_ready_timeout(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

static bool wait_ready(ctl_env_t *e)
{
    bool expired = false;
    uv_timer_t t;
    uv_timer_init(&e->loop, &t);
    t.data = &expired;
    /* A connect plus AUTH/SELECT/PING handshake: give it two command timeouts (cluster: one
     * more, for the slot map and then the masters' handshakes). */
    uint64_t rounds = e->conf->redis_cluster ? 3 : 2;
    uv_timer_start(&t, on_ready_timeout, (uint64_t)e->conf->redis_timeout_ms * rounds + 200, 0);
    while (!db_ready(e->db) && !expired)
        uv_run(&e->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, on_closed);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    return db_ready(e->db);
}

int ctl_env_open(ctl_env_t *e, const conf_t *conf)
{
    memset(e, 0, sizeof *e);
    e->conf = conf;
    uv_loop_init(&e->loop);
    char err[512];
    char *pw = NULL;
    size_t pwlen;
    if (conf->redis_password_file && conf->redis_password_file[0] &&
        file_read_secret(conf->redis_password_file, 4096, &pw, &pwlen, err, sizeof err) != 0) {
        fprintf(stderr, "heraldctl: redis.password_file %s\n", err);
        uv_loop_close(&e->loop);
        return CTL_USAGE;
    }
    db_opts_t o;
    daemon_db_opts(conf, pw, &o);
    o.name = "ctl";
    e->db = db_create(&e->loop, &o, err, sizeof err);
    free(pw);
    if (e->db == NULL) {
        fprintf(stderr, "heraldctl: redis unavailable at %s: %s\n", REDACT_URL(conf->redis_url),
                err);
        uv_loop_close(&e->loop);
        return CTL_UNAVAILABLE;
    }
    e->store =
        tok_store_redis_create(e->db, conf->redis_prefix, NULL, conf->tokens_max_devices_per_user);
    tok_store_redis_split(e->store, db_is_cluster(e->db));
    e->trace = disp_trace_create(e->db, conf->redis_prefix, conf->trace_ttl_s,
                                 conf->dedup_done_ttl_s, conf->trace_max_records);
    if (!wait_ready(e)) {
        fprintf(stderr, "heraldctl: redis unavailable at %s: %s\n", REDACT_URL(conf->redis_url),
                db_last_error(e->db)[0] ? db_last_error(e->db) : "no answer in time");
        ctl_env_close(e);
        return CTL_UNAVAILABLE;
    }
    return CTL_OK;
}

void ctl_env_close(ctl_env_t *e)
{
    if (e->db == NULL)
        return;
    tok_store_destroy(e->store); /* in-flight operations still answer, from db_destroy */
    db_destroy(e->db);
    disp_trace_destroy(e->trace); /* after db_destroy, as trace.h asks */
    e->store = NULL;
    e->trace = NULL;
    e->db = NULL;
    uv_run(&e->loop, UV_RUN_DEFAULT);
    uv_loop_close(&e->loop);
}

void ctl_env_wait(ctl_env_t *e, int below)
{
    int target = below > 0 ? below : 1;
    while (e->pending >= target)
        uv_run(&e->loop, UV_RUN_ONCE);
}

void ctl_env_begin(ctl_env_t *e)
{
    e->pending++;
}

void ctl_env_done(ctl_env_t *e, int status)
{
    e->pending--;
    if (status < 0 && e->failure == 0)
        e->failure = status;
}

int ctl_tok_failure(int tok_status)
{
    if (tok_status == TOK_OK)
        return 0;
    return tok_status == TOK_EUNAVAIL ? DB_EDOWN : DB_EPROTO;
}

int ctl_unavailable(const ctl_env_t *e, int status)
{
    fprintf(stderr, "heraldctl: redis unavailable at %s: %s\n", REDACT_URL(e->conf->redis_url),
            db_strerror(status ? status : DB_EDOWN));
    return CTL_UNAVAILABLE;
}

typedef struct recent_jobs {
    ctl_env_t *e;
    char **ids;
    size_t n;
} recent_jobs_t;

static void on_recent(int status, const char *const *ids, size_t n, void *arg)
{
    recent_jobs_t *r = arg;
    r->n = status == 0 ? n : 0;
    r->ids = xcalloc(n ? n : 1, sizeof *r->ids);
    for (size_t i = 0; i < r->n; i++)
        r->ids[i] = xstrdup(ids[i]);
    ctl_env_done(r->e, status);
}

size_t ctl_recent_jobs(ctl_env_t *e, const char *user, const char *device, long limit, char ***ids)
{
    recent_jobs_t r = {.e = e};
    ctl_env_begin(e);
    disp_trace_recent(e->trace, user, device, limit, on_recent, &r);
    ctl_env_wait(e, 0);
    *ids = r.ids;
    return r.n;
}

int ctl_read_line(FILE *f, char *line, size_t max, size_t *len)
{
    size_t n = 0;
    int c;
    bool over = false;
    while ((c = getc_unlocked(f)) != EOF && c != '\n') {
        if (n < max)
            line[n++] = (char)c;
        else
            over = true;
    }
    if (c == EOF && n == 0 && !over)
        return 0;
    if (n && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    *len = n;
    return over ? -1 : 1;
}
