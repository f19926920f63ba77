/* diagnose.c - `heraldctl diagnose --user U`: the runbook's "Notifications Not Received" in
 * one command. For each device of the user: would it receive a notification now, and if not why
 * (corrupt record, inactive with reason and time, expired, malformed token), plus owner-index
 * consistency; then the recent failures recorded in the user's delivery traces
 * (<p>trace:user:<U> -> <p>trace:<jobId>). */
#include "core/clock.h"
#include "core/xalloc.h"
#include "ctl/tokens.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct dev_verdict {
    bool receives;
    char why[320];
    char warn[200];
} dev_verdict_t;

static void verdict(const ctl_rec_t *r, const ctl_val_t *owner, const char *user, int64_t now,
                    dev_verdict_t *v)
{
    memset(v, 0, sizeof *v);
    if (r->corrupt) {
        snprintf(v->why, sizeof v->why, "stored record is unreadable (%s)%s", r->err,
                 strstr(r->err, "expoPushToken") ? ": malformed push token" : "");
        return;
    }
    const tok_record_t *t = &r->rec;
    char at[40];
    size_t n = 0;
    if (!t->active) {
        clk_iso8601(ctl_rec_inactive_since(t), at, sizeof at);
        n += (size_t)snprintf(v->why + n, sizeof v->why - n, "inactive: %s at %s; ",
                              t->deactivated_reason[0] ? t->deactivated_reason : "deactivated", at);
    }
    if (t->expires_at <= now && n < sizeof v->why) {
        clk_iso8601(t->expires_at, at, sizeof at);
        n += (size_t)snprintf(v->why + n, sizeof v->why - n,
                              "expired at %s (the app did not re-register within "
                              "tokens.ttl_days); ",
                              at);
    }
    if (tok_valid_token(t->token, strlen(t->token)) != 0 && n < sizeof v->why)
        n += (size_t)snprintf(v->why + n, sizeof v->why - n, "malformed push token; ");
    if (n >= 2 && n < sizeof v->why)
        v->why[n - 2] = '\0';
    v->receives = n == 0;
    char want[TOK_USER_MAX + TOK_DEVICE_MAX + 2];
    snprintf(want, sizeof want, "%s%c%s", user, TOK_SEP, t->device_id);
    if (owner == NULL || owner->type != DB_REPLY_STRING) {
        if (t->active && t->expires_at > now)
            snprintf(v->warn, sizeof v->warn, "owner index entry missing for this token");
    } else if (strcmp(owner->str, want) != 0) {
        char *sep = strchr(owner->str, TOK_SEP);
        snprintf(v->warn, sizeof v->warn, "token is now registered to %.*s/%s",
                 sep ? (int)(sep - owner->str) : 0, owner->str, sep ? sep + 1 : "?");
    }
}

static void print_devices(const ctl_rec_t *recs, const dev_verdict_t *vs, size_t n, bool json,
                          const ctl_val_t *hash, int64_t now, buf_t *jb)
{
    if (json) {
        ctl_json_kv_raw(jb, "devices", "[");
        for (size_t i = 0; i < n; i++) {
            buf_puts(jb, i ? ",{" : "{");
            ctl_json_kv_str(jb, "deviceId", recs[i].device_id);
            ctl_json_kv_bool(jb, "wouldReceive", vs[i].receives);
            ctl_json_kv_str(jb, "reason", vs[i].why[0] ? vs[i].why : NULL);
            ctl_json_kv_str(jb, "warning", vs[i].warn[0] ? vs[i].warn : NULL);
            ctl_json_kv_raw(jb, "record", "");
            ctl_rec_json(&recs[i], hash->elem[2 * i + 1]->str, now, jb);
            buf_putc(jb, '}');
        }
        buf_putc(jb, ']');
        return;
    }
    static const char *const hdr[] = {"DEVICE", "PLATFORM", "RECEIVES", "WHY NOT", "WARNING"};
    ctl_table_t t;
    ctl_table_init(&t, 5, hdr);
    for (size_t i = 0; i < n; i++) {
        const char *row[] = {recs[i].device_id,
                             recs[i].corrupt ? NULL : tok_platform_name(recs[i].rec.platform),
                             vs[i].receives ? "yes" : "NO", vs[i].why[0] ? vs[i].why : NULL,
                             vs[i].warn[0] ? vs[i].warn : NULL};
        ctl_table_row(&t, row);
    }
    ctl_table_print(&t, stdout);
    ctl_table_cleanup(&t);
}

/* ---- traces ---- */

static bool is_failure(json_t *rec)
{
    static const char *const bad[] = {"failed", "dlq", "deactivated", "skipped", NULL};
    const char *ev = json_string_value(json_object_get(rec, "event"));
    json_t *err = json_object_get(rec, "error");
    if (err && !json_is_null(err) && !(json_is_string(err) && json_string_length(err) == 0))
        return true;
    for (size_t i = 0; ev && bad[i]; i++)
        if (strcmp(ev, bad[i]) == 0)
            return true;
    return false;
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Prints (or appends to jb) the failure records of one job's trace. Returns how many. */
static long job_failures(const char *job, const ctl_val_t *list, bool json, buf_t *jb,
                         ctl_table_t *t)
{
    long n = 0;
    for (size_t i = 0; list && list->type == DB_REPLY_ARRAY && i < list->n; i++) {
        const ctl_val_t *s = list->elem[i];
        json_t *rec = s->str && s->len <= 65536 ? json_loadb(s->str, s->len, 0, NULL) : NULL;
        if (!json_is_object(rec) || !is_failure(rec)) {
            json_decref(rec);
            continue;
        }
        n++;
        if (json) {
            if (jb->data[jb->len - 1] != '[')
                buf_putc(jb, ',');
            buf_puts(jb, "{\"jobId\":");
            buf_json_str(jb, job, strlen(job));
            buf_puts(jb, ",\"record\":");
            buf_append(jb, s->str, s->len);
            buf_putc(jb, '}');
        } else {
            const char *detail = jstr(rec, "error") ? jstr(rec, "error") : jstr(rec, "detail");
            char other[64] = "";
            if (detail == NULL && json_object_get(rec, "detail")) {
                char *d = json_dumps(json_object_get(rec, "detail"), JSON_COMPACT);
                snprintf(other, sizeof other, "%s", d ? d : "");
                free(d);
                detail = other;
            }
            const char *row[] = {jstr(rec, "ts"), job, jstr(rec, "event"), jstr(rec, "deviceId"),
                                 detail};
            ctl_table_row(t, row);
        }
        json_decref(rec);
    }
    return n;
}

static int print_traces(ctl_env_t *e, const char *user, long jobs, bool json, buf_t *jb)
{
    char key[300], stop[24];
    ctl_key(e, key, sizeof key, "trace:user", user);
    snprintf(stop, sizeof stop, "%ld", jobs - 1);
    const char *argv[] = {"ZREVRANGE", key, "0", stop};
    ctl_val_t *ids = ctl_cmd(e, 4, argv, NULL);
    if (ids == NULL || ids->type != DB_REPLY_ARRAY)
        return (ctl_val_free(ids), CTL_UNAVAILABLE);
    if (json) {
        ctl_json_kv_bool(jb, "tracePresent", ids->n > 0);
        ctl_json_kv_raw(jb, "recentFailures", "[");
    } else if (ids->n == 0) {
        printf("\nno delivery trace for user %s: no event for this user within trace.ttl_s, or "
               "the pipeline has not recorded any\n",
               user);
    }
    ctl_val_t **lists = xcalloc(ids->n ? ids->n : 1, sizeof *lists);
    for (size_t i = 0; i < ids->n; i++) {
        char jk[400];
        ctl_key(e, jk, sizeof jk, "trace", ids->elem[i]->str ? ids->elem[i]->str : "");
        const char *lv[] = {"LRANGE", jk, "0", "-1"};
        ctl_cmd_async(e, &lists[i], 4, lv, NULL);
    }
    ctl_env_wait(e, 0);
    static const char *const hdr[] = {"TIME", "JOB", "EVENT", "DEVICE", "DETAIL"};
    ctl_table_t t;
    ctl_table_init(&t, 5, hdr);
    long nf = 0;
    for (size_t i = 0; i < ids->n; i++)
        nf += job_failures(ids->elem[i]->str ? ids->elem[i]->str : "", lists[i], json, jb, &t);
    if (json)
        buf_putc(jb, ']');
    else if (ids->n)
        printf("\nrecent failures in the last %zu job(s) of this user: %ld\n", ids->n, nf);
    if (!json && nf)
        ctl_table_print(&t, stdout);
    ctl_table_cleanup(&t);
    for (size_t i = 0; i < ids->n; i++)
        ctl_val_free(lists[i]);
    free(lists);
    ctl_val_free(ids);
    return e->failure ? ctl_unavailable(e, e->failure) : CTL_OK;
}

static const char USAGE[] =
    "usage: heraldctl diagnose --user U [--jobs N] [--json]\n"
    "For each device of the user: would it receive a notification now, and if not why\n"
    "(inactive and why/when, expired, malformed token, unreadable record); then failures from\n"
    "the delivery traces of the user's last N jobs (default 20). Exit 1 when the user has no\n"
    "device.\n";

static int diagnose(ctl_env_t *e, const char *user, long jobs, bool json)
{
    char key[256];
    ctl_key(e, key, sizeof key, "dev", user);
    const char *argv[] = {"HGETALL", key};
    ctl_val_t *h = ctl_cmd(e, 2, argv, NULL);
    if (h == NULL || h->type != DB_REPLY_ARRAY)
        return (ctl_val_free(h), CTL_UNAVAILABLE);
    size_t n;
    ctl_rec_t *recs = ctl_recs_from_hash(h, &n);
    ctl_val_t **owners = xcalloc(n ? n : 1, sizeof *owners);
    for (size_t i = 0; i < n; i++) {
        if (recs[i].corrupt)
            continue;
        char ok[300];
        ctl_key(e, ok, sizeof ok, "owner", recs[i].rec.token);
        const char *gv[] = {"GET", ok};
        ctl_cmd_async(e, &owners[i], 2, gv, NULL);
    }
    ctl_env_wait(e, 0);
    int64_t now = clk_wall_ms() / 1000;
    dev_verdict_t *vs = xcalloc(n ? n : 1, sizeof *vs);
    long receiving = 0;
    for (size_t i = 0; i < n; i++) {
        verdict(&recs[i], owners[i], user, now, &vs[i]);
        receiving += vs[i].receives;
    }
    buf_t jb = BUF_INIT;
    if (json) {
        buf_putc(&jb, '{');
        ctl_json_kv_str(&jb, "userId", user);
        ctl_json_kv_int(&jb, "receiving", receiving);
    } else if (n == 0) {
        printf("user %s has no registered device: the app never registered, or every token was "
               "deleted (sweep/cleanup/delete)\n",
               user);
    } else {
        printf("user %s: %ld of %zu device(s) would receive a notification now\n\n", user,
               receiving, n);
    }
    if (n || json)
        print_devices(recs, vs, n, json, h, now, &jb);
    int rc = print_traces(e, user, jobs, json, &jb);
    if (json) {
        buf_putc(&jb, '}');
        printf("%s\n", buf_cstr(&jb));
    }
    buf_cleanup(&jb);
    for (size_t i = 0; i < n; i++)
        ctl_val_free(owners[i]);
    free(owners);
    free(vs);
    free(recs);
    ctl_val_free(h);
    return rc != CTL_OK ? rc : n ? CTL_OK : CTL_NOTFOUND;
}

int ctl_diagnose(const conf_t *conf, int argc, char **argv)
{
    const char *user = NULL;
    long jobs = 20;
    bool json = false;
    ctl_opt_t opts[] = {{"--user", "-u", CTL_OPT_STR, &user, false},
                        {"--jobs", NULL, CTL_OPT_LONG, &jobs, false},
                        {"--json", NULL, CTL_OPT_FLAG, &json, false},
                        {NULL, NULL, 0, NULL, false}};
    int rc = ctl_parse(argc, argv, 1, opts, NULL, 0, NULL, USAGE);
    if (rc)
        return rc > 0 ? CTL_OK : CTL_USAGE;
    if (user == NULL || tok_valid_user(user, strlen(user)) != 0 || jobs < 1 || jobs > 1000) {
        fprintf(stderr, "heraldctl: %s\n%s",
                user ? "invalid --user or --jobs" : "--user is required", USAGE);
        return CTL_USAGE;
    }
    ctl_env_t e;
    if ((rc = ctl_env_open(&e, conf)) != CTL_OK)
        return rc;
    rc = diagnose(&e, user, jobs, json);
    ctl_env_close(&e);
    return rc;
}
