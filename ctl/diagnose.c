/* diagnose.c - `heraldctl diagnose --user U`: the runbook's "Notifications Not Received" in
 * one command. For each device of the user: would it receive a notification now, and if not why
 * (corrupt record, and the reasons of tokens/model.h's deliverability rule, the one the pipeline
 * applies: inactive with reason and time, expired, malformed token), plus owner-index
 * consistency; then the recent failures recorded in the user's delivery traces
 * (pipeline/trace.h). */
#include "core/clock.h"
#include "core/xalloc.h"
#include "ctl/tokens.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct dev_verdict {
    bool receives;
    char why[320];
    char warn[320];
} dev_verdict_t;

/* Appends "<reason>; " for one flag of tok_undeliverable. */
static size_t why_not(const tok_record_t *t, unsigned flag, char *out, size_t len)
{
    char at[40];
    switch (flag) {
    case TOK_UNDELIV_INACTIVE:
        clk_iso8601(ctl_rec_inactive_since(t), at, sizeof at);
        return (size_t)snprintf(out, len, "inactive: %s at %s; ",
                                t->deactivated_reason[0] ? t->deactivated_reason : "deactivated",
                                at);
    case TOK_UNDELIV_EXPIRED:
        clk_iso8601(t->expires_at, at, sizeof at);
        return (size_t)snprintf(out, len,
                                "expired at %s (the app did not re-register within "
                                "tokens.ttl_days); ",
                                at);
    default:
        return (size_t)snprintf(out, len, "malformed push token; ");
    }
}

static void verdict(const ctl_rec_t *r, const ctl_owner_t *owner, const char *user, int64_t now,
                    dev_verdict_t *v)
{
    memset(v, 0, sizeof *v);
    if (r->corrupt) {
        snprintf(v->why, sizeof v->why, "stored record is unreadable (%s)%s", r->err,
                 strstr(r->err, "expoPushToken") ? ": malformed push token" : "");
        return;
    }
    const tok_record_t *t = &r->rec;
    unsigned why = tok_undeliverable(t, now);
    size_t n = 0;
    for (unsigned f = TOK_UNDELIV_INACTIVE; f <= TOK_UNDELIV_MALFORMED; f <<= 1)
        if ((why & f) && n < sizeof v->why)
            n += why_not(t, f, v->why + n, sizeof v->why - n);
    if (n >= 2 && n < sizeof v->why)
        v->why[n - 2] = '\0';
    v->receives = why == 0;
    if (owner->status == TOK_ECORRUPT) {
        snprintf(v->warn, sizeof v->warn, "owner index entry for this token is unreadable");
    } else if (owner->status != TOK_OK) {
        if (!(why & (TOK_UNDELIV_INACTIVE | TOK_UNDELIV_EXPIRED)))
            snprintf(v->warn, sizeof v->warn, "owner index entry missing for this token");
    } else if (strcmp(owner->who.user_id, user) != 0 ||
               strcmp(owner->who.device_id, t->device_id) != 0) {
        snprintf(v->warn, sizeof v->warn, "token is now registered to %s/%s", owner->who.user_id,
                 owner->who.device_id);
    }
}

static void print_devices(const ctl_recs_t *rs, const dev_verdict_t *vs, bool json, int64_t now,
                          buf_t *jb)
{
    const ctl_rec_t *recs = rs->v;
    size_t n = rs->n;
    if (json) {
        ctl_json_open(jb, "devices", '[');
        for (size_t i = 0; i < n; i++) {
            ctl_json_open(jb, NULL, '{');
            ctl_json_str(jb, "deviceId", recs[i].device_id);
            ctl_json_bool(jb, "wouldReceive", vs[i].receives);
            ctl_json_str(jb, "reason", vs[i].why[0] ? vs[i].why : NULL);
            ctl_json_str(jb, "warning", vs[i].warn[0] ? vs[i].warn : NULL);
            ctl_rec_json(jb, "record", &recs[i], now);
            ctl_json_close(jb, '}');
        }
        ctl_json_close(jb, ']');
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

/* One job's trace records, copied. */
typedef struct job_trace {
    ctl_env_t *e;
    char *job;
    char **recs;
    size_t *lens;
    size_t n;
} job_trace_t;

static void on_job_trace(int status, const char *const *recs, const size_t *lens, size_t n,
                         void *arg)
{
    job_trace_t *jt = arg;
    jt->recs = xcalloc(n ? n : 1, sizeof *jt->recs);
    jt->lens = xcalloc(n ? n : 1, sizeof *jt->lens);
    for (size_t i = 0; status == 0 && i < n; i++) {
        jt->recs[i] = xstrndup(recs[i], lens[i]);
        jt->lens[i] = lens[i];
    }
    jt->n = status == 0 ? n : 0;
    ctl_env_done(jt->e, status);
}

/* Prints (or appends to jb) the failure records of one job's trace. Returns how many. */
static long job_failures(const job_trace_t *jt, bool json, buf_t *jb, ctl_table_t *t)
{
    long n = 0;
    for (size_t i = 0; i < jt->n; i++) {
        json_t *rec = jt->lens[i] <= 65536 ? json_loadb(jt->recs[i], jt->lens[i], 0, NULL) : NULL;
        if (!json_is_object(rec) || !is_failure(rec)) {
            json_decref(rec);
            continue;
        }
        n++;
        if (json) {
            ctl_json_open(jb, NULL, '{');
            ctl_json_str(jb, "jobId", jt->job);
            ctl_json_raw(jb, "record", jt->recs[i], jt->lens[i]);
            ctl_json_close(jb, '}');
        } else {
            const char *detail = jstr(rec, "error") ? jstr(rec, "error") : jstr(rec, "detail");
            char other[64] = "";
            if (detail == NULL && json_object_get(rec, "detail")) {
                char *d = json_dumps(json_object_get(rec, "detail"), JSON_COMPACT);
                snprintf(other, sizeof other, "%s", d ? d : "");
                free(d);
                detail = other;
            }
            const char *row[] = {jstr(rec, "ts"), jt->job, jstr(rec, "event"),
                                 jstr(rec, "deviceId"), detail};
            ctl_table_row(t, row);
        }
        json_decref(rec);
    }
    return n;
}

static int print_traces(ctl_env_t *e, const char *user, long jobs, bool json, buf_t *jb)
{
    char **ids;
    size_t njobs = ctl_recent_jobs(e, user, NULL, jobs, &ids);
    job_trace_t *jts = xcalloc(njobs ? njobs : 1, sizeof *jts);
    for (size_t i = 0; !e->failure && i < njobs; i++) {
        jts[i].e = e;
        jts[i].job = ids[i];
        ctl_env_begin(e);
        disp_trace_job(e->trace, ids[i], on_job_trace, &jts[i]);
    }
    ctl_env_wait(e, 0);
    int rc = e->failure ? ctl_unavailable(e, e->failure) : CTL_OK;
    static const char *const hdr[] = {"TIME", "JOB", "EVENT", "DEVICE", "DETAIL"};
    ctl_table_t t;
    ctl_table_init(&t, 5, hdr);
    long nf = 0;
    if (rc == CTL_OK && json) {
        ctl_json_bool(jb, "tracePresent", njobs > 0);
        ctl_json_open(jb, "recentFailures", '[');
    } else if (rc == CTL_OK && njobs == 0) {
        printf("\nno delivery trace for user %s: no event for this user within trace.ttl_s, or "
               "the pipeline has not recorded any\n",
               user);
    }
    for (size_t i = 0; rc == CTL_OK && i < njobs; i++)
        nf += job_failures(&jts[i], json, jb, &t);
    if (rc == CTL_OK && json)
        ctl_json_close(jb, ']');
    else if (rc == CTL_OK && njobs)
        printf("\nrecent failures in the last %zu job(s) of this user: %ld\n", njobs, nf);
    if (rc == CTL_OK && !json && nf)
        ctl_table_print(&t, stdout);
    ctl_table_cleanup(&t);
    for (size_t i = 0; i < njobs; i++) {
        for (size_t k = 0; k < jts[i].n; k++)
            free(jts[i].recs[k]);
        free(jts[i].recs);
        free(jts[i].lens);
        free(ids[i]);
    }
    free(jts);
    free(ids);
    return rc;
}

static const char USAGE[] =
    "usage: heraldctl diagnose --user U [--jobs N] [--json]\n"
    "For each device of the user: would it receive a notification now, and if not why\n"
    "(inactive and why/when, expired, malformed token, unreadable record); then failures from\n"
    "the delivery traces of the user's last N jobs (default 20). Exit 1 when the user has no\n"
    "device.\n";

static int diagnose(ctl_env_t *e, const char *user, long jobs, bool json)
{
    ctl_recs_t rs = {0};
    int rc = ctl_read(e, user, NULL, &rs);
    if (rc != CTL_OK) {
        ctl_recs_cleanup(&rs);
        return rc;
    }
    size_t n = rs.n;
    ctl_owner_t *owners = xcalloc(n ? n : 1, sizeof *owners);
    for (size_t i = 0; i < n; i++) {
        owners[i].status = TOK_ENOTFOUND;
        if (!rs.v[i].corrupt)
            ctl_find_owner_async(e, rs.v[i].rec.token, &owners[i]);
    }
    ctl_env_wait(e, 0);
    if (e->failure) {
        free(owners);
        ctl_recs_cleanup(&rs);
        return ctl_unavailable(e, e->failure);
    }
    int64_t now = clk_wall_ms() / 1000;
    dev_verdict_t *vs = xcalloc(n ? n : 1, sizeof *vs);
    long receiving = 0;
    for (size_t i = 0; i < n; i++) {
        verdict(&rs.v[i], &owners[i], user, now, &vs[i]);
        receiving += vs[i].receives;
    }
    buf_t jb = BUF_INIT;
    if (json) {
        ctl_json_open(&jb, NULL, '{');
        ctl_json_str(&jb, "userId", user);
        ctl_json_int(&jb, "receiving", receiving);
    } else if (n == 0) {
        printf("user %s has no registered device: the app never registered, or every token was "
               "deleted (sweep/cleanup/delete)\n",
               user);
    } else {
        printf("user %s: %ld of %zu device(s) would receive a notification now\n\n", user,
               receiving, n);
    }
    if (n || json)
        print_devices(&rs, vs, json, now, &jb);
    rc = print_traces(e, user, jobs, json, &jb);
    if (json && rc == CTL_OK) {
        ctl_json_close(&jb, '}');
        ctl_json_print(&jb, stdout);
    }
    buf_cleanup(&jb);
    free(owners);
    free(vs);
    ctl_recs_cleanup(&rs);
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
