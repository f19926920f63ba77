/* privacy.c - privacy deletes (privacy.h): the token records and what the delivery ledger (the
 * trace, the dedup marks) and the receipt checks hold of them, in one script per call
 * (lua/privacy_purge.lua; on Redis Cluster that script does the user's slot and names the rest:
 * one call per token binding, job index member and receipt check follows, each in its slot), and
 * the keyspace sweep behind heraldctl (lua/privacy_sweep.lua). The scripts share their helpers with
 * the modules that own the keys: tokens/lua/devices_drop.lua, expo/lua/check_drop.lua,
 * lua/ledger_scrub.lua. */
#include "pipeline/privacy.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "db/keys.h"
#include "pipeline/lua_privacy.h"
#include "pipeline/trace.h"
#include "queue/event.h"
#include "tokens/lifecycle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct disp_privacy {
    db_t *db;
    db_script_t *s_purge, *s_sweep, *s_check, *s_unbind;
    char prefix[KEY_PREFIX_MAX + 1];
    char token_parts[KEY_PARTS_MAX];
    char owner_stem[KEY_MAX], list_stem[KEY_MAX], rq_stem[KEY_MAX], job_stem[KEY_MAX];
    char match[2 * KEY_MAX + 2]; /* every key under the prefix: the escaped prefix and "*" */
};

disp_privacy_t *disp_privacy_create(db_t *db, const char *prefix)
{
    disp_privacy_t *p = xcalloc(1, sizeof *p);
    p->db = db;
    p->s_purge = db_script(db, lua_privacy_purge);
    p->s_sweep = db_script(db, lua_privacy_sweep);
    p->s_check = db_script(db, lua_privacy_check);
    p->s_unbind = db_script(db, lua_unbind_token);
    snprintf(p->prefix, sizeof p->prefix, "%s", prefix);
    key_token_parts(p->token_parts, prefix);
    key_stem(p->owner_stem, prefix, KEY_OWNER);
    key_stem(p->list_stem, prefix, KEY_TRACE);
    key_stem(p->rq_stem, prefix, KEY_RQ);
    key_stem(p->job_stem, prefix, KEY_JOB);
    tok_lc_glob_escape(prefix, p->match, sizeof p->match - 1);
    strcat(p->match, "*");
    return p;
}

void disp_privacy_destroy(disp_privacy_t *p)
{
    free(p); /* calls in flight carry what their replies need */
}

typedef struct call {
    disp_privacy_cb cb;
    disp_privacy_sweep_cb sweep_cb;
    tok_done_cb tok_cb;
    void *arg;
    /* Redis Cluster: the other slots' steps of a purge, after the user's (privacy_purge.lua's
     * lists); what they need is copied, as the privacy handle may go first. The sweep uses db
     * too. */
    db_t *db;
    size_t master; /* sweep: the master its SCAN step ran on (tok_lc_cursor_node) */
    db_script_t *s_check, *s_unbind;
    size_t left;
    int status;
    disp_privacy_counts_t counts;
    char prefix[KEY_PREFIX_MAX + 1], rq_stem[KEY_MAX];
    char user[KEY_USER_MAX + 1], device[KEY_DEVICE_MAX + 1];
} call_t;

/* The integers of an array reply from index first on into c, in field order (the scripts answer
 * them so). */
static int counts_of(int status, const db_reply_t *r, size_t first, disp_privacy_counts_t *c)
{
    long *f[] = {&c->records, &c->traces, &c->marks, &c->tickets, &c->keys, &c->jobs_left};
    if (status != DB_OK)
        return status;
    if (db_reply_type(r) != DB_REPLY_ARRAY || db_reply_len(r) <= first)
        return DB_EPROTO;
    memset(c, 0, sizeof *c);
    for (size_t i = first; i < db_reply_len(r) && i - first < 6; i++) {
        const db_reply_t *e = db_reply_elem(r, i);
        if (db_reply_type(e) != DB_REPLY_INTEGER)
            return DB_EPROTO;
        *f[i - first] = (long)db_reply_int(e);
    }
    return 0;
}

static void purge_done(call_t *q, int rc, const disp_privacy_counts_t *c)
{
    if (q->cb)
        q->cb(rc, rc == 0 ? c : NULL, q->arg);
    else
        q->tok_cb(rc != 0 ? TOK_EUNAVAIL : c->records > 0 ? TOK_OK : TOK_ENOTFOUND, q->arg);
    free(q);
}

static void on_step(int status, const db_reply_t *r, void *arg)
{
    call_t *q = arg;
    if (status != DB_OK || db_reply_type(r) == DB_REPLY_ERROR)
        q->status = status != DB_OK ? status : DB_EPROTO;
    else if (db_reply_type(r) == DB_REPLY_INTEGER)
        q->counts.tickets += (long)db_reply_int(r); /* privacy_check.lua; unbind answers 0 */
    if (--q->left == 0)
        purge_done(q, q->status, &q->counts);
}

/* The string i of list l (an array reply), or "". */
static const char *elem_str(const db_reply_t *l, size_t i)
{
    size_t len;
    const char *v = db_reply_str(db_reply_elem(l, i), &len);
    return v ? v : "";
}

/* A token binding, a job index member, a receipt check: one call each, in its own slot. */
static void purge_steps(call_t *q, const db_reply_t *tokens, const db_reply_t *jobs,
                        const db_reply_t *checks)
{
    char k[KEY_MAX], z[KEY_MAX];
    for (size_t i = 0; i + 1 < db_reply_len(tokens); i += 2) {
        const char *t = elem_str(tokens, i), *member = elem_str(tokens, i + 1);
        if (strlen(t) > KEY_TOKEN_MAX)
            continue; /* no record holds one: nothing was bound */
        key_owner(k, q->prefix, t);
        key_expiry(z, q->prefix, key_token_bucket(t));
        const char *argv[] = {k, z, member};
        q->left++;
        db_eval(q->db, q->s_unbind, on_step, q, 2, 3, argv, NULL);
    }
    for (size_t i = 0; i + 1 < db_reply_len(jobs); i += 2) {
        q->left++;
        db_cmd(q->db, on_step, q, "SREM", elem_str(jobs, i), elem_str(jobs, i + 1), NULL);
    }
    for (size_t i = 0; i < db_reply_len(checks); i++) {
        const char *ref = elem_str(checks, i);
        unsigned b;
        if (sscanf(ref, "%u:", &b) != 1 || b >= KEY_RQ_BUCKETS)
            continue; /* check_drop.lua skips it too */
        key_rq(z, q->prefix, b);
        const char *argv[] = {z, q->rq_stem, ref, q->user, q->device};
        q->left++;
        db_eval(q->db, q->s_check, on_step, q, 1, 5, argv, NULL);
    }
}

static void on_purged(int status, const db_reply_t *r, void *arg)
{
    call_t *q = arg;
    int rc = counts_of(status, r, 0, &q->counts);
    if (rc == 0 && q->db && db_reply_len(r) == 9) {
        q->left = 1;
        purge_steps(q, db_reply_elem(r, 6), db_reply_elem(r, 7), db_reply_elem(r, 8));
        if (--q->left > 0)
            return;
    }
    purge_done(q, rc, &q->counts);
}

static void purge(disp_privacy_t *p, const char *user, const char *device, long max_jobs, call_t *q)
{
    char dkey[KEY_MAX], idx[KEY_MAX], uidx[KEY_MAX], mark_head[KEY_MAX], dix_head[KEY_MAX];
    char max[24];
    key_dev(dkey, p->prefix, user);
    key_trace_user(uidx, p->prefix, user);
    if (device)
        key_trace_device(idx, p->prefix, user, device);
    else
        key_trace_user(idx, p->prefix, user);
    key_user_head(mark_head, p->prefix, KEY_LEDGER, user);
    key_user_head(dix_head, p->prefix, KEY_TRACE_DEVICE, user);
    snprintf(max, sizeof max, "%ld", max_jobs > 0 ? max_jobs : 1);
    bool split = db_is_cluster(p->db);
    if (split) {
        q->db = p->db;
        q->s_check = p->s_check;
        q->s_unbind = p->s_unbind;
        snprintf(q->prefix, sizeof q->prefix, "%s", p->prefix);
        snprintf(q->rq_stem, sizeof q->rq_stem, "%s", p->rq_stem);
        snprintf(q->user, sizeof q->user, "%s", user);
        snprintf(q->device, sizeof q->device, "%s", device ? device : "");
    }
    /* KEYS, then ARGV as privacy_purge.lua's header lists them, then every status */
    const char *argv[12 + QUEUE_ST_COUNT] = {dkey,
                                             idx,
                                             uidx, /* KEYS */
                                             user,
                                             device ? device : "",
                                             p->token_parts,
                                             p->job_stem,
                                             mark_head,
                                             dix_head,
                                             p->rq_stem,
                                             max,
                                             split ? "1" : ""};
    for (int i = 0; i < QUEUE_ST_COUNT; i++)
        argv[12 + i] = queue_status_name((queue_status_t)i);
    db_eval(p->db, p->s_purge, on_purged, q, 3, 12 + QUEUE_ST_COUNT, argv, NULL);
}

void disp_privacy_purge(disp_privacy_t *p, const char *user, const char *device, long max_jobs,
                        disp_privacy_cb cb, void *arg)
{
    call_t *q = xcalloc(1, sizeof *q);
    q->cb = cb;
    q->arg = arg;
    purge(p, user, device, max_jobs, q);
}

void disp_privacy_api_purge(void *privacy, const char *user, const char *device, tok_done_cb cb,
                            void *arg)
{
    call_t *q = xcalloc(1, sizeof *q);
    q->tok_cb = cb;
    q->arg = arg;
    purge(privacy, user, device, DISP_TRACE_INDEX_MAX, q);
}

/* privacy_sweep.lua answers the cursor, then the counts from records on. */
static void on_swept(int status, const db_reply_t *r, void *arg)
{
    call_t *q = arg;
    disp_privacy_counts_t c;
    int rc = counts_of(status, r, 1, &c);
    const char *cursor = rc == 0 ? db_reply_str(db_reply_elem(r, 0), &(size_t){0}) : NULL;
    char next[TOK_LC_CURSOR_MAX] = "0";
    if (rc == 0 && cursor == NULL)
        rc = DB_EPROTO;
    if (rc == 0)
        tok_lc_cursor_next(q->db, q->master, cursor, next);
    q->sweep_cb(rc, rc == 0 ? &c : NULL, next, q->arg);
    free(q);
}

void disp_privacy_sweep(disp_privacy_t *p, const char *user, const char *device, const char *cursor,
                        long count, disp_privacy_sweep_cb cb, void *arg)
{
    call_t *q = xcalloc(1, sizeof *q);
    q->sweep_cb = cb;
    q->arg = arg;
    char mark_head[KEY_MAX], dix_head[KEY_MAX], uidx[KEY_MAX], n[24];
    key_user_head(mark_head, p->prefix, KEY_LEDGER, user);
    key_user_head(dix_head, p->prefix, KEY_TRACE_DEVICE, user);
    key_trace_user(uidx, p->prefix, user);
    snprintf(n, sizeof n, "%ld", count > 0 ? count : 1);
    const char *node_cursor;
    q->db = p->db;
    q->master = tok_lc_cursor_node(cursor, &node_cursor);
    const char *argv[] = {node_cursor, n,          p->match,     user,       device ? device : "",
                          mark_head,   dix_head,   p->list_stem, p->rq_stem, p->owner_stem,
                          uidx,        p->job_stem};
    db_eval_at(p->db, q->master, p->s_sweep, on_swept, q, 0, (int)(sizeof argv / sizeof argv[0]),
               argv, NULL);
}
