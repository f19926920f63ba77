/* tokens.c - `heraldctl tokens`: the subcommand table, the queries (list, get, find) and the
 * per-record changes (deactivate, delete). Bulk jobs over every token are in bulk.c. Changes
 * go through the token store (tokens/store.h), so heraldctl and herald share one implementation
 * of every script that touches the indexes. */
#include "ctl/tokens.h"

#include "core/clock.h"
#include "core/xalloc.h"
#include "tokens/store.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- records ---- */

ctl_rec_t *ctl_recs_from_hash(const ctl_val_t *v, size_t *n)
{
    size_t pairs = v && v->type == DB_REPLY_ARRAY ? v->n / 2 : 0;
    ctl_rec_t *recs = xcalloc(pairs ? pairs : 1, sizeof *recs);
    for (size_t i = 0; i < pairs; i++) {
        ctl_rec_t *r = &recs[i];
        const ctl_val_t *f = v->elem[2 * i], *js = v->elem[2 * i + 1];
        r->device_id = f->str ? f->str : "";
        if (tok_record_parse(js->str ? js->str : "", js->len, &r->rec, r->err, sizeof r->err) != 0)
            r->corrupt = true;
    }
    *n = pairs;
    return recs;
}

const char *ctl_rec_state(const ctl_rec_t *r, int64_t now_s)
{
    if (r->corrupt)
        return "corrupt";
    if (r->rec.expires_at <= now_s)
        return "expired";
    return r->rec.active ? "active" : "inactive";
}

void ctl_rec_json(const ctl_rec_t *r, const char *raw, int64_t now_s, buf_t *out)
{
    if (r->corrupt) {
        buf_putc(out, '{');
        ctl_json_kv_str(out, "deviceId", r->device_id);
        ctl_json_kv_str(out, "state", "corrupt");
        ctl_json_kv_str(out, "error", r->err);
        ctl_json_kv_str(out, "raw", raw);
        buf_putc(out, '}');
        return;
    }
    tok_record_json(&r->rec, out);
    out->len--; /* reopen the object */
    ctl_json_kv_str(out, "state", ctl_rec_state(r, now_s));
    buf_putc(out, '}');
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

static ctl_val_t *hgetall_user(ctl_env_t *e, const char *user)
{
    char key[256];
    ctl_key(e, key, sizeof key, "dev", user);
    const char *argv[] = {"HGETALL", key};
    return ctl_cmd(e, 2, argv, NULL);
}

static bool valid_arg(const char *what, const char *v, int (*check)(const char *, size_t))
{
    if (v && check(v, strlen(v)) == 0)
        return true;
    fprintf(stderr, "heraldctl: %s %s\n", v ? "invalid" : "missing", what);
    return false;
}

static void print_recs(const ctl_val_t *v, const ctl_rec_t *recs, size_t n, bool json,
                       const char *user)
{
    int64_t now = now_s();
    if (json) {
        buf_t b = BUF_INIT;
        buf_putc(&b, '{');
        ctl_json_kv_str(&b, "userId", user);
        ctl_json_kv_raw(&b, "devices", "[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                buf_putc(&b, ',');
            ctl_rec_json(&recs[i], v->elem[2 * i + 1]->str, now, &b);
        }
        buf_puts(&b, "]}\n");
        fputs(buf_cstr(&b), stdout);
        buf_cleanup(&b);
        return;
    }
    ctl_table_t t;
    ctl_table_init(&t, 7, REC_HEADER);
    for (size_t i = 0; i < n; i++)
        rec_row(&t, &recs[i], now);
    ctl_table_print(&t, stdout);
    ctl_table_cleanup(&t);
}

static const char LIST_USAGE[] = "usage: heraldctl tokens list --user U [--json]\n"
                                 "All devices of a user, active and inactive.\n";

static int cmd_list(ctl_env_t *e, int argc, char **argv)
{
    const char *user = NULL;
    bool json = false;
    ctl_opt_t opts[] = {{"--user", "-u", CTL_OPT_STR, &user, false},
                        {"--json", NULL, CTL_OPT_FLAG, &json, false},
                        {NULL, NULL, 0, NULL, false}};
    int rc = ctl_parse(argc, argv, 1, opts, NULL, 0, NULL, LIST_USAGE);
    if (rc)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    if (!valid_arg("--user", user, tok_valid_user))
        return CTL_USAGE;
    ctl_val_t *v = hgetall_user(e, user);
    if (v == NULL || v->type == DB_REPLY_ERROR) {
        ctl_val_free(v);
        return CTL_UNAVAILABLE;
    }
    size_t n;
    ctl_rec_t *recs = ctl_recs_from_hash(v, &n);
    if (n == 0)
        fprintf(stderr, "heraldctl: user %s has no devices\n", user);
    else
        print_recs(v, recs, n, json, user);
    free(recs);
    ctl_val_free(v);
    return n ? CTL_OK : CTL_NOTFOUND;
}

static void print_one(const ctl_rec_t *r, const char *raw, bool json)
{
    int64_t now = now_s();
    if (json) {
        buf_t b = BUF_INIT;
        ctl_rec_json(r, raw, now, &b);
        printf("%s\n", buf_cstr(&b));
        buf_cleanup(&b);
        return;
    }
    if (r->corrupt) {
        printf("deviceId       %s\nstate          corrupt (%s)\nraw            %s\n", r->device_id,
               r->err, raw);
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

/* HGET of one record; prints it. Returns a CTL_ code. */
static int show_record(ctl_env_t *e, const char *user, const char *device, bool json)
{
    char key[256];
    ctl_key(e, key, sizeof key, "dev", user);
    const char *argv[] = {"HGET", key, device};
    ctl_val_t *v = ctl_cmd(e, 3, argv, NULL);
    if (v == NULL || v->type == DB_REPLY_ERROR) {
        ctl_val_free(v);
        return CTL_UNAVAILABLE;
    }
    if (v->type != DB_REPLY_STRING) {
        ctl_val_free(v);
        fprintf(stderr, "heraldctl: no device %s for user %s\n", device, user);
        return CTL_NOTFOUND;
    }
    ctl_rec_t r = {.device_id = device};
    if (tok_record_parse(v->str, v->len, &r.rec, r.err, sizeof r.err) != 0)
        r.corrupt = true;
    print_one(&r, v->str, json);
    ctl_val_free(v);
    return CTL_OK;
}

static const char GET_USAGE[] = "usage: heraldctl tokens get --user U --device D [--json]\n";

static int cmd_get(ctl_env_t *e, int argc, char **argv)
{
    const char *user = NULL, *device = NULL;
    bool json = false;
    ctl_opt_t opts[] = {{"--user", "-u", CTL_OPT_STR, &user, false},
                        {"--device", "-d", CTL_OPT_STR, &device, false},
                        {"--json", NULL, CTL_OPT_FLAG, &json, false},
                        {NULL, NULL, 0, NULL, false}};
    int rc = ctl_parse(argc, argv, 1, opts, NULL, 0, NULL, GET_USAGE);
    if (rc)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    if (!valid_arg("--user", user, tok_valid_user) ||
        !valid_arg("--device", device, tok_valid_device))
        return CTL_USAGE;
    return show_record(e, user, device, json);
}

static const char FIND_USAGE[] = "usage: heraldctl tokens find --token T [--json]\n"
                                 "Who holds this push token (the owner index), and its record.\n";

static int cmd_find(ctl_env_t *e, int argc, char **argv)
{
    const char *token = NULL;
    bool json = false;
    ctl_opt_t opts[] = {{"--token", "-t", CTL_OPT_STR, &token, false},
                        {"--json", NULL, CTL_OPT_FLAG, &json, false},
                        {NULL, NULL, 0, NULL, false}};
    int rc = ctl_parse(argc, argv, 1, opts, NULL, 0, NULL, FIND_USAGE);
    if (rc)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    if (!valid_arg("--token", token, tok_valid_token))
        return CTL_USAGE;
    char key[300];
    ctl_key(e, key, sizeof key, "owner", token);
    const char *av[] = {"GET", key};
    ctl_val_t *v = ctl_cmd(e, 2, av, NULL);
    if (v == NULL || v->type == DB_REPLY_ERROR) {
        ctl_val_free(v);
        return CTL_UNAVAILABLE;
    }
    char *sep = v->type == DB_REPLY_STRING ? memchr(v->str, TOK_SEP, v->len) : NULL;
    if (sep == NULL) {
        fprintf(stderr, "heraldctl: nobody holds this token\n");
        ctl_val_free(v);
        return CTL_NOTFOUND;
    }
    *sep = '\0';
    rc = show_record(e, v->str, sep + 1, json);
    if (rc == CTL_NOTFOUND)
        fprintf(stderr,
                "heraldctl: the owner index names %s/%s but that record is gone "
                "(stale index entry; `tokens sweep` removes it once expired)\n",
                v->str, sep + 1);
    ctl_val_free(v);
    return rc;
}

/* ---- deactivate ---- */

typedef struct deact_line {
    long lineno;
    char user[TOK_USER_MAX + 1];
    char device[TOK_DEVICE_MAX + 1];
    ctl_val_t *cur; /* HGET result */
    int status;     /* store result */
    ctl_env_t *e;
    const char *result;
} deact_line_t;

typedef struct deact_run {
    ctl_env_t *e;
    tok_store_t *store;
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
        buf_putc(&b, '{');
        ctl_json_kv_int(&b, "line", l->lineno);
        ctl_json_kv_str(&b, "userId", l->user);
        ctl_json_kv_str(&b, "deviceId", l->device);
        ctl_json_kv_str(&b, "result", l->result);
        buf_putc(&b, '}');
        printf("%s\n", buf_cstr(&b));
        buf_cleanup(&b);
    } else {
        printf("line %ld: %s %s: %s\n", l->lineno, l->user, l->device, l->result);
    }
}

/* Classifies each line by its current record, deactivates the active ones (unless dry). */
static int deact_batch(deact_run_t *d, deact_line_t *ls, size_t n)
{
    char key[256];
    for (size_t i = 0; i < n; i++) {
        ctl_key(d->e, key, sizeof key, "dev", ls[i].user);
        const char *argv[] = {"HGET", key, ls[i].device};
        ctl_cmd_async(d->e, &ls[i].cur, 3, argv, NULL);
    }
    ctl_env_wait(d->e, 0);
    if (d->e->failure)
        return ctl_unavailable(d->e, d->e->failure);
    for (size_t i = 0; i < n; i++) {
        ls[i].e = d->e;
        ctl_rec_t r = {0};
        if (ls[i].cur == NULL || ls[i].cur->type != DB_REPLY_STRING) {
            ls[i].result = "not found";
            d->notfound++;
        } else if (tok_record_parse(ls[i].cur->str, ls[i].cur->len, &r.rec, r.err, sizeof r.err) ==
                       0 &&
                   !r.rec.active) {
            ls[i].result = "already inactive";
            d->already++;
        } else {
            ls[i].result = d->dry ? "would deactivate" : "deactivated";
            d->done++;
            if (!d->dry) {
                ctl_env_begin(d->e);
                tok_store_deactivate(d->store, ls[i].user, ls[i].device, d->reason, NULL,
                                     on_deactivated, &ls[i]);
            }
        }
    }
    ctl_env_wait(d->e, 0);
    for (size_t i = 0; i < n; i++) {
        if (ls[i].status == TOK_ENOTFOUND && !d->dry && strcmp(ls[i].result, "deactivated") == 0)
            ls[i].result = "not found", d->done--, d->notfound++;
        report_line(d, &ls[i]);
        ctl_val_free(ls[i].cur);
        ls[i].cur = NULL;
    }
    return d->e->failure ? ctl_unavailable(d->e, d->e->failure) : CTL_OK;
}

/* "userId deviceId" or {"userId":..,"deviceId":..}. Returns 0, 1 to skip, -1 invalid. */
static int parse_deact_line(char *line, size_t len, deact_line_t *l, const char **why)
{
    while (len && (*line == ' ' || *line == '\t'))
        line++, len--;
    if (len == 0 || line[0] == '#')
        return 1;
    const char *u = NULL, *dv = NULL;
    json_t *o = NULL;
    if (line[0] == '{') {
        o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
        u = json_string_value(json_object_get(o, "userId"));
        dv = json_string_value(json_object_get(o, "deviceId"));
    } else {
        char *save = NULL;
        u = strtok_r(line, " \t", &save);
        dv = strtok_r(NULL, " \t", &save);
        if (strtok_r(NULL, " \t", &save))
            dv = NULL;
    }
    int rc = -1;
    *why = "expected `userId deviceId` or a JSON object with userId and deviceId";
    if (u && dv) {
        if (tok_valid_user(u, strlen(u)) != 0)
            *why = "invalid userId";
        else if (tok_valid_device(dv, strlen(dv)) != 0)
            *why = "invalid deviceId";
        else {
            snprintf(l->user, sizeof l->user, "%s", u);
            snprintf(l->device, sizeof l->device, "%s", dv);
            rc = 0;
        }
    }
    json_decref(o);
    return rc;
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
        int pr = r < 0 ? -1 : parse_deact_line(line, len, &ls[n], &why);
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
    d.store = tok_store_redis_create(e->db, e->prefix, NULL, e->conf->tokens_max_devices_per_user);
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
    tok_store_destroy(d.store);
    fprintf(stderr, "%s: %ld, already inactive: %ld, not found: %ld, refused lines: %ld\n",
            d.dry ? "would deactivate" : "deactivated", d.done, d.already, d.notfound, d.invalid);
    if (rc != CTL_OK)
        return rc;
    return d.invalid ? CTL_PARTIAL : d.notfound ? CTL_NOTFOUND : CTL_OK;
}

/* ---- delete ---- */

static void on_purged(int status, void *arg)
{
    deact_line_t *l = arg;
    l->status = status;
    ctl_env_done(l->e, status == TOK_EUNAVAIL ? DB_EDOWN : 0);
}

/* A privacy request also removes the user's delivery traces: trace:user:<U>, every
 * trace:<jobId> it lists, and trace:device:<D> of the deleted devices. */
static void purge_traces(ctl_env_t *e, const char *user, const ctl_rec_t *recs, size_t n)
{
    char key[300];
    ctl_key(e, key, sizeof key, "trace:user", user);
    const char *zr[] = {"ZRANGE", key, "0", "-1"};
    ctl_val_t *jobs = user ? ctl_cmd(e, 4, zr, NULL) : NULL;
    ctl_val_t *dummy[64];
    size_t nd = 0;
    for (size_t i = 0; jobs && i < jobs->n; i++) {
        const char *j = ctl_val_str(jobs, i, NULL);
        if (j == NULL)
            continue;
        char jk[400];
        ctl_key(e, jk, sizeof jk, "trace", j);
        const char *av[] = {"DEL", jk};
        ctl_cmd_async(e, &dummy[nd++], 2, av, NULL);
        if (nd == 64) {
            ctl_env_wait(e, 0);
            for (size_t k = 0; k < nd; k++)
                ctl_val_free(dummy[k]);
            nd = 0;
        }
    }
    ctl_env_wait(e, 0);
    for (size_t k = 0; k < nd; k++)
        ctl_val_free(dummy[k]);
    ctl_val_free(jobs);
    if (user) {
        const char *av[] = {"DEL", key};
        ctl_val_free(ctl_cmd(e, 2, av, NULL));
    }
    for (size_t i = 0; i < n; i++) {
        ctl_key(e, key, sizeof key, "trace:device", recs[i].device_id);
        const char *av[] = {"DEL", key};
        ctl_val_free(ctl_cmd(e, 2, av, NULL));
    }
}

static const char DELETE_USAGE[] =
    "usage: heraldctl tokens delete --user U [--device D] [--dry-run] [--json]\n"
    "Hard delete (privacy request): the records, their owner and expiry index entries, and the\n"
    "user's delivery traces. Prints what it removes.\n";

static int do_purge(ctl_env_t *e, const char *user, const char *device)
{
    tok_store_t *st = tok_store_redis_create(e->db, e->prefix, NULL, 1);
    deact_line_t l = {.e = e};
    ctl_env_begin(e);
    tok_store_purge(st, user, device, on_purged, &l);
    ctl_env_wait(e, 0);
    tok_store_destroy(st);
    if (l.status == TOK_EUNAVAIL)
        return ctl_unavailable(e, e->failure);
    return l.status == TOK_ENOTFOUND ? CTL_NOTFOUND : CTL_OK;
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
    ctl_val_t *v = hgetall_user(e, user);
    if (v == NULL || v->type == DB_REPLY_ERROR) {
        ctl_val_free(v);
        return CTL_UNAVAILABLE;
    }
    size_t n, keep = 0;
    ctl_rec_t *recs = ctl_recs_from_hash(v, &n);
    for (size_t i = 0; i < n; i++)
        if (device == NULL || strcmp(recs[i].device_id, device) == 0)
            recs[keep++] = recs[i];
    if (keep == 0) {
        fprintf(stderr, "heraldctl: nothing to delete for user %s%s%s\n", user,
                device ? " device " : "", device ? device : "");
        rc = CTL_NOTFOUND;
        goto done;
    }
    for (size_t i = 0; i < keep; i++)
        if (json)
            printf("{\"userId\":\"%s\",\"deviceId\":\"%s\",\"action\":\"%s\"}\n", user,
                   recs[i].device_id, dry ? "would delete" : "delete");
        else
            printf("%s %s/%s (%s)\n", dry ? "would delete" : "delete", user, recs[i].device_id,
                   recs[i].corrupt ? "corrupt record" : recs[i].rec.token);
    if (!dry) {
        rc = do_purge(e, user, device);
        if (rc == CTL_OK)
            purge_traces(e, device ? NULL : user, recs, keep);
    }
    fprintf(stderr, "%s %zu record(s) of user %s\n", dry ? "would delete" : "deleted", keep, user);
done:
    free(recs);
    ctl_val_free(v);
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
    {"export", ctl_tokens_export, "[--inactive] [--older-than 30d] [-o FILE]: JSON lines"},
    {"import", ctl_tokens_import, "[-i FILE]: restore JSON lines (validated, idempotent)"},
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
