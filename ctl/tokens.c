/* tokens.c - `heraldctl tokens`: the subcommand table, the queries (list, get, find) and the
 * per-record changes (deactivate, delete). Bulk jobs over every token are in bulk.c. Reads and
 * changes go through the token store (tokens/store.h) and a privacy delete through
 * pipeline/privacy.h, so heraldctl and herald share one implementation of every key and script. */
#include "ctl/tokens.h"

#include "core/clock.h"
#include "core/xalloc.h"
#include "ctl/lines.h"
#include "pipeline/privacy.h"
#include "tokens/store.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- records ---- */

void ctl_recs_add(ctl_recs_t *rs, const tok_entry_t *es, size_t n)
{
    rs->v = xrealloc(rs->v, (rs->n + n + 1) * sizeof *rs->v);
    for (size_t i = 0; i < n; i++) {
        ctl_rec_t *r = &rs->v[rs->n++];
        memset(r, 0, sizeof *r);
        r->user_id = xstrdup(es[i].user_id);
        r->device_id = xstrdup(es[i].device_id);
        r->raw = xstrndup(es[i].raw, es[i].raw_len);
        r->rec = es[i].rec;
        r->corrupt = es[i].corrupt;
        snprintf(r->err, sizeof r->err, "%s", es[i].err);
    }
}

void ctl_recs_cleanup(ctl_recs_t *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->v[i].user_id);
        free(rs->v[i].device_id);
        free(rs->v[i].raw);
    }
    free(rs->v);
    memset(rs, 0, sizeof *rs);
}

typedef struct read_req {
    ctl_env_t *e;
    ctl_recs_t *rs;
} read_req_t;

static void on_read(int status, const tok_entry_t *es, size_t n, void *arg)
{
    read_req_t *q = arg;
    if (status == TOK_OK)
        ctl_recs_add(q->rs, es, n);
    ctl_env_done(q->e, ctl_tok_failure(status));
    free(q);
}

void ctl_read_async(ctl_env_t *e, const char *user, const char *device, ctl_recs_t *rs)
{
    read_req_t *q = xmalloc(sizeof *q);
    q->e = e;
    q->rs = rs;
    ctl_env_begin(e);
    tok_store_read(e->store, user, device, on_read, q);
}

int ctl_read(ctl_env_t *e, const char *user, const char *device, ctl_recs_t *rs)
{
    ctl_read_async(e, user, device, rs);
    ctl_env_wait(e, 0);
    return e->failure ? ctl_unavailable(e, e->failure) : CTL_OK;
}

static void on_owner(int status, const tok_owner_t *who, void *arg)
{
    ctl_owner_t *o = arg;
    o->status = status;
    if (who)
        o->who = *who;
    ctl_env_done(o->e, status == TOK_EUNAVAIL ? DB_EDOWN : 0);
}

void ctl_find_owner_async(ctl_env_t *e, const char *token, ctl_owner_t *out)
{
    memset(out, 0, sizeof *out);
    out->e = e;
    ctl_env_begin(e);
    tok_store_find_owner(e->store, token, on_owner, out);
}

const char *ctl_rec_state(const ctl_rec_t *r, int64_t now_s)
{
    if (r->corrupt)
        return "corrupt";
    if (tok_undeliverable(&r->rec, now_s) & TOK_UNDELIV_EXPIRED)
        return "expired";
    return r->rec.active ? "active" : "inactive";
}

void ctl_rec_json(buf_t *b, const char *key, const ctl_rec_t *r, int64_t now_s)
{
    if (r->corrupt) {
        ctl_json_open(b, key, '{');
        ctl_json_str(b, "deviceId", r->device_id);
        ctl_json_str(b, "state", "corrupt");
        ctl_json_str(b, "error", r->err);
        ctl_json_str(b, "raw", r->raw);
        ctl_json_close(b, '}');
        return;
    }
    ctl_json_key(b, key);
    tok_record_json(&r->rec, b);
    b->len--; /* reopen the object */
    ctl_json_str(b, "state", ctl_rec_state(r, now_s));
    ctl_json_close(b, '}');
}

int64_t ctl_rec_inactive_since(const tok_record_t *r)
{
    if (r->deactivated_at > 0)
        return r->deactivated_at;
    int64_t ms;
    return clk_parse_iso8601(r->updated_at, &ms) == 0 ? ms / 1000 : 0;
}

static void fmt_time(int64_t s, char *out, size_t outlen)
{
    if (s <= 0)
        snprintf(out, outlen, "-");
    else
        clk_iso8601(s, out, outlen);
}

static void rec_row(ctl_table_t *t, const ctl_rec_t *r, int64_t now)
{
    char exp[40], why[80] = "";
    if (r->corrupt) {
        const char *row[] = {r->device_id, "-", "corrupt", "-", "-", "-", r->err};
        ctl_table_row(t, row);
        return;
    }
    fmt_time(r->rec.expires_at, exp, sizeof exp);
    if (r->rec.deactivated_reason[0]) {
        char at[40];
        fmt_time(r->rec.deactivated_at, at, sizeof at);
        snprintf(why, sizeof why, "%s at %s", r->rec.deactivated_reason, at);
    }
    const char *row[] = {r->device_id,          tok_platform_name(r->rec.platform),
                         ctl_rec_state(r, now), r->rec.token,
                         r->rec.updated_at,     exp,
                         why[0] ? why : NULL};
    ctl_table_row(t, row);
}

static const char *const REC_HEADER[] = {"DEVICE",  "PLATFORM", "STATE", "TOKEN",
                                         "UPDATED", "EXPIRES",  "REASON"};

static int64_t now_s(void)
{
    return clk_wall_ms() / 1000;
}

/* ---- list / get / find ---- */

static bool valid_arg(const char *what, const char *v, int (*check)(const char *, size_t))
{
    if (v && check(v, strlen(v)) == 0)
        return true;
    fprintf(stderr, "heraldctl: %s %s\n", v ? "invalid" : "missing", what);
    return false;
}

/* What list, get and find take: some of --user, --device, --token (each required and checked
 * when taken), and --json. */
enum { TAKES_USER = 1, TAKES_DEVICE = 2, TAKES_TOKEN = 4 };

typedef struct lookup_args {
    const char *user, *device, *token;
    bool json;
} lookup_args_t;

/* Returns -1 when the command goes on with *a, else its exit code (help, usage errors). */
static int parse_lookup(int argc, char **argv, int takes, const char *usage, lookup_args_t *a)
{
    *a = (lookup_args_t){0};
    ctl_opt_t opts[5];
    size_t n = 0;
    if (takes & TAKES_USER)
        opts[n++] = (ctl_opt_t){"--user", "-u", CTL_OPT_STR, &a->user, false};
    if (takes & TAKES_DEVICE)
        opts[n++] = (ctl_opt_t){"--device", "-d", CTL_OPT_STR, &a->device, false};
    if (takes & TAKES_TOKEN)
        opts[n++] = (ctl_opt_t){"--token", "-t", CTL_OPT_STR, &a->token, false};
    opts[n++] = (ctl_opt_t){"--json", NULL, CTL_OPT_FLAG, &a->json, false};
    opts[n] = (ctl_opt_t){NULL, NULL, 0, NULL, false};
    int rc = ctl_parse(argc, argv, 1, opts, NULL, 0, NULL, usage);
    if (rc)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    if (((takes & TAKES_USER) && !valid_arg("--user", a->user, tok_valid_user)) ||
        ((takes & TAKES_DEVICE) && !valid_arg("--device", a->device, tok_valid_device)) ||
        ((takes & TAKES_TOKEN) && !valid_arg("--token", a->token, tok_valid_token)))
        return CTL_USAGE;
    return -1;
}

static void print_recs(const ctl_recs_t *rs, bool json, const char *user)
{
    int64_t now = now_s();
    if (json) {
        buf_t b = BUF_INIT;
        ctl_json_open(&b, NULL, '{');
        ctl_json_str(&b, "userId", user);
        ctl_json_open(&b, "devices", '[');
        for (size_t i = 0; i < rs->n; i++)
            ctl_rec_json(&b, NULL, &rs->v[i], now);
        ctl_json_close(&b, ']');
        ctl_json_close(&b, '}');
        ctl_json_print(&b, stdout);
        buf_cleanup(&b);
        return;
    }
    ctl_table_t t;
    ctl_table_init(&t, 7, REC_HEADER);
    for (size_t i = 0; i < rs->n; i++)
        rec_row(&t, &rs->v[i], now);
    ctl_table_print(&t, stdout);
    ctl_table_cleanup(&t);
}

static const char LIST_USAGE[] = "usage: heraldctl tokens list --user U [--json]\n"
                                 "All devices of a user, active and inactive.\n";

static int cmd_list(ctl_env_t *e, int argc, char **argv)
{
    lookup_args_t a;
    int rc = parse_lookup(argc, argv, TAKES_USER, LIST_USAGE, &a);
    if (rc >= 0)
        return rc;
    const char *user = a.user;
    ctl_recs_t rs = {0};
    if ((rc = ctl_read(e, user, NULL, &rs)) != CTL_OK) {
        ctl_recs_cleanup(&rs);
        return rc;
    }
    size_t n = rs.n;
    if (n == 0)
        fprintf(stderr, "heraldctl: user %s has no devices\n", user);
    else
        print_recs(&rs, a.json, user);
    ctl_recs_cleanup(&rs);
    return n ? CTL_OK : CTL_NOTFOUND;
}

static void print_one(const ctl_rec_t *r, bool json)
{
    int64_t now = now_s();
    if (json) {
        buf_t b = BUF_INIT;
        ctl_rec_json(&b, NULL, r, now);
        ctl_json_print(&b, stdout);
        buf_cleanup(&b);
        return;
    }
    if (r->corrupt) {
        printf("deviceId       %s\nstate          corrupt (%s)\nraw            %s\n", r->device_id,
               r->err, r->raw);
        return;
    }
    char exp[40], dat[40], left[32];
    fmt_time(r->rec.expires_at, exp, sizeof exp);
    fmt_time(r->rec.deactivated_at, dat, sizeof dat);
    ctl_fmt_age(r->rec.expires_at - now, left, sizeof left);
    printf("userId         %s\ndeviceId       %s\nexpoPushToken  %s\nplatform       %s\n"
           "state          %s\nregisteredAt   %s\nupdatedAt      %s\nexpiresAt      %s (%s %s)\n",
           r->rec.user_id, r->rec.device_id, r->rec.token, tok_platform_name(r->rec.platform),
           ctl_rec_state(r, now), r->rec.registered_at, r->rec.updated_at, exp,
           r->rec.expires_at > now ? "in" : "expired", left);
    if (r->rec.deactivated_reason[0])
        printf("deactivated    %s at %s\n", r->rec.deactivated_reason, dat);
}

/* Reads one record and prints it. Returns a CTL_ code. */
static int show_record(ctl_env_t *e, const char *user, const char *device, bool json)
{
    ctl_recs_t rs = {0};
    int rc = ctl_read(e, user, device, &rs);
    if (rc == CTL_OK && rs.n == 0) {
        fprintf(stderr, "heraldctl: no device %s for user %s\n", device, user);
        rc = CTL_NOTFOUND;
    } else if (rc == CTL_OK) {
        print_one(&rs.v[0], json);
    }
    ctl_recs_cleanup(&rs);
    return rc;
}

static const char GET_USAGE[] = "usage: heraldctl tokens get --user U --device D [--json]\n";

static int cmd_get(ctl_env_t *e, int argc, char **argv)
{
    lookup_args_t a;
    int rc = parse_lookup(argc, argv, TAKES_USER | TAKES_DEVICE, GET_USAGE, &a);
    return rc >= 0 ? rc : show_record(e, a.user, a.device, a.json);
}

static const char FIND_USAGE[] = "usage: heraldctl tokens find --token T [--json]\n"
                                 "Who holds this push token (the owner index), and its record.\n";

static int cmd_find(ctl_env_t *e, int argc, char **argv)
{
    lookup_args_t a;
    int rc = parse_lookup(argc, argv, TAKES_TOKEN, FIND_USAGE, &a);
    if (rc >= 0)
        return rc;
    ctl_owner_t o;
    ctl_find_owner_async(e, a.token, &o);
    ctl_env_wait(e, 0);
    if (e->failure)
        return ctl_unavailable(e, e->failure);
    if (o.status != TOK_OK) {
        fprintf(stderr, "heraldctl: %s\n",
                o.status == TOK_ECORRUPT ? "the owner index entry of this token is unreadable"
                                         : "nobody holds this token");
        return CTL_NOTFOUND;
    }
    rc = show_record(e, o.who.user_id, o.who.device_id, a.json);
    if (rc == CTL_NOTFOUND)
        fprintf(stderr,
                "heraldctl: the owner index names %s/%s but that record is gone "
                "(stale index entry; `tokens sweep` removes it once expired)\n",
                o.who.user_id, o.who.device_id);
    return rc;
}

/* ---- deactivate ---- */

typedef struct deact_line {
    long lineno;
    char user[TOK_USER_MAX + 1];
    char device[TOK_DEVICE_MAX + 1];
    ctl_recs_t cur; /* the record as read (none when not found) */
    int status;     /* store result */
    ctl_env_t *e;
    const char *result;
} deact_line_t;

typedef struct deact_run {
    ctl_env_t *e;
    const char *reason;
    bool dry, json;
    long done, already, notfound, invalid;
} deact_run_t;

static void on_deactivated(int status, void *arg)
{
    deact_line_t *l = arg;
    l->status = status;
    ctl_env_done(l->e, status == TOK_EUNAVAIL ? DB_EDOWN : 0);
}

static void report_line(deact_run_t *d, const deact_line_t *l)
{
    if (d->json) {
        buf_t b = BUF_INIT;
        ctl_json_open(&b, NULL, '{');
        ctl_json_int(&b, "line", l->lineno);
        ctl_json_str(&b, "userId", l->user);
        ctl_json_str(&b, "deviceId", l->device);
        ctl_json_str(&b, "result", l->result);
        ctl_json_close(&b, '}');
        ctl_json_print(&b, stdout);
        buf_cleanup(&b);
    } else {
        printf("line %ld: %s %s: %s\n", l->lineno, l->user, l->device, l->result);
    }
}

/* Classifies each line by its current record, deactivates the active ones (unless dry). */
static int deact_batch(deact_run_t *d, deact_line_t *ls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ctl_read_async(d->e, ls[i].user, ls[i].device, &ls[i].cur);
    ctl_env_wait(d->e, 0);
    if (d->e->failure)
        return ctl_unavailable(d->e, d->e->failure);
    for (size_t i = 0; i < n; i++) {
        ls[i].e = d->e;
        const ctl_rec_t *r = ls[i].cur.n ? &ls[i].cur.v[0] : NULL;
        if (r == NULL) {
            ls[i].result = "not found";
            d->notfound++;
        } else if (!r->corrupt && !r->rec.active) {
            ls[i].result = "already inactive";
            d->already++;
        } else {
            ls[i].result = d->dry ? "would deactivate" : "deactivated";
            d->done++;
            if (!d->dry) {
                ctl_env_begin(d->e);
                tok_store_deactivate(d->e->store, ls[i].user, ls[i].device, d->reason, NULL,
                                     on_deactivated, &ls[i]);
            }
        }
    }
    ctl_env_wait(d->e, 0);
    for (size_t i = 0; i < n; i++) {
        if (ls[i].status == TOK_ENOTFOUND && !d->dry && strcmp(ls[i].result, "deactivated") == 0)
            ls[i].result = "not found", d->done--, d->notfound++;
        report_line(d, &ls[i]);
        ctl_recs_cleanup(&ls[i].cur);
    }
    return d->e->failure ? ctl_unavailable(d->e, d->e->failure) : CTL_OK;
}

#define DEACT_BATCH 500

static int deact_file(deact_run_t *d, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "heraldctl: cannot open %s\n", path);
        return CTL_USAGE;
    }
    deact_line_t *ls = xcalloc(DEACT_BATCH, sizeof *ls);
    char line[4097];
    size_t len, n = 0;
    long lineno = 0;
    int rc = CTL_OK, r;
    ctl_progress_t p;
    ctl_progress_start(&p, "deactivate", 0);
    while (rc == CTL_OK && (r = ctl_read_line(f, line, sizeof line - 1, &len)) != 0) {
        lineno++;
        const char *why = "line longer than 4096 bytes";
        memset(&ls[n], 0, sizeof ls[n]);
        int pr = r < 0 ? -1 : ctl_deact_line(line, len, ls[n].user, ls[n].device, &why);
        if (pr < 0) {
            fprintf(stderr, "line %ld: rejected: %s\n", lineno, why);
            d->invalid++;
        } else if (pr == 0) {
            ls[n++].lineno = lineno;
        }
        if (n == DEACT_BATCH) {
            rc = deact_batch(d, ls, n);
            ctl_progress_add(&p, n);
            n = 0;
        }
    }
    if (rc == CTL_OK && n)
        rc = deact_batch(d, ls, n);
    ctl_progress_end(&p);
    free(ls);
    if (f != stdin)
        fclose(f);
    return rc;
}

static const char DEACT_USAGE[] =
    "usage: heraldctl tokens deactivate (--user U --device D | --file F) [--reason R] [--dry-run]"
    " [--json]\n"
    "Soft delete (isActive=false). --file takes lines `userId deviceId` or JSON objects with\n"
    "userId and deviceId ('-' is stdin); each line is reported. Exit 1 when a device was not\n"
    "found, 4 when a line was refused.\n";

static int cmd_deactivate(ctl_env_t *e, int argc, char **argv)
{
    const char *user = NULL, *device = NULL, *file = NULL, *reason = "admin";
    deact_run_t d = {.e = e};
    ctl_opt_t opts[] = {{"--user", "-u", CTL_OPT_STR, &user, false},
                        {"--device", "-d", CTL_OPT_STR, &device, false},
                        {"--file", "-f", CTL_OPT_STR, &file, false},
                        {"--reason", NULL, CTL_OPT_STR, &reason, false},
                        {"--dry-run", "-n", CTL_OPT_FLAG, &d.dry, false},
                        {"--json", NULL, CTL_OPT_FLAG, &d.json, false},
                        {NULL, NULL, 0, NULL, false}};
    int rc = ctl_parse(argc, argv, 1, opts, NULL, 0, NULL, DEACT_USAGE);
    if (rc)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    if ((file == NULL) == (user == NULL && device == NULL) || strlen(reason) >= TOK_REASON_MAX) {
        fputs(DEACT_USAGE, stderr);
        return CTL_USAGE;
    }
    d.reason = reason;
    if (file) {
        rc = deact_file(&d, file);
    } else if (!valid_arg("--user", user, tok_valid_user) ||
               !valid_arg("--device", device, tok_valid_device)) {
        rc = CTL_USAGE;
    } else {
        deact_line_t l = {.lineno = 1};
        snprintf(l.user, sizeof l.user, "%s", user);
        snprintf(l.device, sizeof l.device, "%s", device);
        rc = deact_batch(&d, &l, 1);
    }
    fprintf(stderr, "%s: %ld, already inactive: %ld, not found: %ld, refused lines: %ld\n",
            d.dry ? "would deactivate" : "deactivated", d.done, d.already, d.notfound, d.invalid);
    if (rc != CTL_OK)
        return rc;
    return d.invalid ? CTL_PARTIAL : d.notfound ? CTL_NOTFOUND : CTL_OK;
}

/* ---- delete ---- */

#define PURGE_JOBS 200    /* trace-index jobs walked per script call */
#define SWEEP_COUNT 1000L /* SCAN COUNT per sweep step */

typedef struct purge_run {
    ctl_env_t *e;
    disp_privacy_counts_t sum;
    bool more;       /* the purge's index still names jobs */
    char cursor[64]; /* the sweep's */
} purge_run_t;

static void add_counts(disp_privacy_counts_t *s, const disp_privacy_counts_t *c)
{
    s->records += c->records;
    s->traces += c->traces;
    s->marks += c->marks;
    s->tickets += c->tickets;
    s->keys += c->keys;
}

static void on_purge_step(int status, const disp_privacy_counts_t *c, void *arg)
{
    purge_run_t *r = arg;
    if (status == 0) {
        add_counts(&r->sum, c);
        r->more = c->jobs_left > 0;
    }
    ctl_env_done(r->e, status);
}

static void on_sweep_step(int status, const disp_privacy_counts_t *c, const char *cursor, void *arg)
{
    purge_run_t *r = arg;
    if (status == 0)
        add_counts(&r->sum, c);
    snprintf(r->cursor, sizeof r->cursor, "%s", cursor);
    ctl_env_done(r->e, status);
}

/* A privacy request: the records and what the trace indexes lead to (their traces, dedup marks
 * and receipt checks), a bounded script call at a time; then a sweep of the whole keyspace for
 * what no index names any more (pipeline/privacy.h). */
static int privacy_delete(ctl_env_t *e, const char *user, const char *device, purge_run_t *r)
{
    disp_privacy_t *p = disp_privacy_create(e->db, e->conf->redis_prefix);
    ctl_progress_t pg;
    r->e = e;
    do {
        r->more = false;
        ctl_env_begin(e);
        disp_privacy_purge(p, user, device, PURGE_JOBS, on_purge_step, r);
        ctl_env_wait(e, 0);
    } while (e->failure == 0 && r->more);
    snprintf(r->cursor, sizeof r->cursor, "0");
    ctl_progress_start(&pg, "sweeping keys", 0);
    while (e->failure == 0) {
        ctl_env_begin(e);
        disp_privacy_sweep(p, user, device, r->cursor, SWEEP_COUNT, on_sweep_step, r);
        ctl_env_wait(e, 0);
        ctl_progress_add(&pg, SWEEP_COUNT);
        if (strcmp(r->cursor, "0") == 0)
            break;
    }
    ctl_progress_end(&pg);
    disp_privacy_destroy(p);
    return e->failure ? ctl_unavailable(e, e->failure) : CTL_OK;
}

static const char DELETE_USAGE[] =
    "usage: heraldctl tokens delete --user U [--device D] [--dry-run] [--json]\n"
    "Hard delete (privacy request): the records with their owner and expiry index entries, and\n"
    "everything herald keeps that names the user (the device): delivery traces, dedup marks,\n"
    "receipt checks. Reads the whole keyspace once. Prints the records it removes; exit 1 when\n"
    "there was nothing to remove.\n";

static void print_delete(const char *user, const ctl_rec_t *r, bool dry, bool json)
{
    if (json) {
        buf_t b = BUF_INIT;
        ctl_json_open(&b, NULL, '{');
        ctl_json_str(&b, "userId", user);
        ctl_json_str(&b, "deviceId", r->device_id);
        ctl_json_str(&b, "action", dry ? "would delete" : "delete");
        ctl_json_close(&b, '}');
        ctl_json_print(&b, stdout);
        buf_cleanup(&b);
    } else {
        printf("%s %s/%s (%s)\n", dry ? "would delete" : "delete", user, r->device_id,
               r->corrupt ? "corrupt record" : r->rec.token);
    }
}

static int cmd_delete(ctl_env_t *e, int argc, char **argv)
{
    const char *user = NULL, *device = NULL;
    bool dry = false, json = false;
    ctl_opt_t opts[] = {{"--user", "-u", CTL_OPT_STR, &user, false},
                        {"--device", "-d", CTL_OPT_STR, &device, false},
                        {"--dry-run", "-n", CTL_OPT_FLAG, &dry, false},
                        {"--json", NULL, CTL_OPT_FLAG, &json, false},
                        {NULL, NULL, 0, NULL, false}};
    int rc = ctl_parse(argc, argv, 1, opts, NULL, 0, NULL, DELETE_USAGE);
    if (rc)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    if (!valid_arg("--user", user, tok_valid_user) ||
        (device && !valid_arg("--device", device, tok_valid_device)))
        return CTL_USAGE;
    ctl_recs_t rs = {0};
    if ((rc = ctl_read(e, user, device, &rs)) != CTL_OK)
        goto done;
    for (size_t i = 0; i < rs.n; i++)
        print_delete(user, &rs.v[i], dry, json);
    if (dry) {
        rc = rs.n ? CTL_OK : CTL_NOTFOUND;
        fprintf(stderr, "would delete %zu record(s) of user %s and what else names %s\n", rs.n,
                user, device ? "the device" : "the user");
        goto done;
    }
    /* Also without records: what an earlier delete left (traces, marks) still goes. */
    purge_run_t r = {0};
    if ((rc = privacy_delete(e, user, device, &r)) != CTL_OK)
        goto done;
    disp_privacy_counts_t *c = &r.sum;
    if (c->records + c->traces + c->marks + c->tickets + c->keys == 0) {
        fprintf(stderr, "heraldctl: nothing to delete for user %s%s%s\n", user,
                device ? " device " : "", device ? device : "");
        rc = CTL_NOTFOUND;
        goto done;
    }
    fprintf(stderr,
            "deleted %ld record(s) of user %s%s%s; removed %ld trace record(s), %ld dedup "
            "mark(s), %ld receipt check(s), %ld other key(s)\n",
            c->records, user, device ? " device " : "", device ? device : "", c->traces, c->marks,
            c->tickets, c->keys);
done:
    ctl_recs_cleanup(&rs);
    return rc;
}

/* ---- dispatch ---- */

typedef struct sub {
    const char *name;
    int (*run)(ctl_env_t *e, int argc, char **argv);
    const char *summary;
} sub_t;

static const sub_t subs[] = {
    {"list", cmd_list, "--user U: all devices of a user"},
    {"get", cmd_get, "--user U --device D: one record"},
    {"find", cmd_find, "--token T: who holds a push token"},
    {"count", ctl_tokens_count, "[--active|--inactive|--expired]: count tokens by state"},
    {"deactivate", cmd_deactivate, "--user U --device D | --file F: soft delete"},
    {"delete", cmd_delete, "--user U [--device D]: hard delete (privacy request)"},
    {"sweep", ctl_tokens_sweep, "remove expired tokens"},
    {"cleanup", ctl_tokens_cleanup, "--inactive-older-than 30d: remove old inactive tokens"},
    {"reindex", ctl_tokens_reindex, "rebuild owner keys and expiry buckets (after an upgrade)"},
    {"export", ctl_tokens_export, "[--inactive] [--older-than 30d] [-o FILE]: JSON lines"},
    {"import", ctl_tokens_import,
     "[-i FILE] | --format dynamodb-json PATH: restore JSON lines or migrate a DynamoDB export"},
};

static void tokens_usage(FILE *f)
{
    fprintf(f, "usage: heraldctl tokens SUBCOMMAND [OPTIONS] (SUBCOMMAND --help for more)\n");
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        fprintf(f, "  %-11s %s\n", subs[i].name, subs[i].summary);
}

int ctl_tokens(const conf_t *conf, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        tokens_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    const sub_t *s = NULL;
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (strcmp(subs[i].name, argv[1]) == 0)
            s = &subs[i];
    if (s == NULL) {
        fprintf(stderr, "heraldctl: unknown tokens subcommand '%s'\n", argv[1]);
        tokens_usage(stderr);
        return CTL_USAGE;
    }
    for (int i = 2; i < argc; i++) /* --help needs no Redis */
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            ctl_env_t none = {.conf = conf};
            return s->run(&none, argc - 1, argv + 1) == CTL_USAGE ? CTL_USAGE : CTL_OK;
        }
    ctl_env_t e;
    int rc = ctl_env_open(&e, conf);
    if (rc != CTL_OK)
        return rc;
    rc = s->run(&e, argc - 1, argv + 1);
    ctl_env_close(&e);
    return rc;
}
