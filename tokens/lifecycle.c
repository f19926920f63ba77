/* lifecycle.c - the Lua scripts (tokens/lua/) that remove expired and long-inactive tokens, count
 * token states and import records (by registration's rules, tokens/lua/bind.lua), keeping the
 * device hash, the owner index and the expiry index in step (lifecycle.h). heraldctl and the
 * in-daemon sweep both call these; nothing else deletes tokens in bulk. */
#include "tokens/lifecycle.h"

#include "core/clock.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "db/keys.h"
#include "tokens/lua_lifecycle.h"
#include "tokens/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SCAN MATCH for the dev hashes: the glob-escaped head (each character may double), "*" and the
 * escaped tail. */
#define MATCH_MAX (2 * KEY_MAX + 8)

struct tok_lc {
    db_t *db;
    /* the key parts the scripts build dev hash, owner and expiry keys from */
    char prefix[KEY_PREFIX_MAX + 1], token_parts[KEY_PARTS_MAX], dev_head[KEY_MAX];
    char match[MATCH_MAX], all[MATCH_MAX]; /* the dev hashes; every key under the prefix */
    char owner_stem[KEY_MAX], old_expiry[KEY_MAX];
    db_script_t *s_expire, *s_scan, *s_import, *s_reindex;
    bool cluster;                      /* Redis Cluster: the chunks run per slot (below) */
    db_script_t *s_expire_rec, *s_fix; /* cluster: user-slot and token-slot steps */
    db_script_t *s_imp_user, *s_imp_take, *s_imp_bind; /* cluster: import's steps */
    db_script_t *s_rx_bind;                            /* cluster: reindex's token-slot step */
};

typedef struct lc_op {
    tok_lc_cb cb;
    tok_lc_import_cb icb;
    void *arg;
    size_t n; /* import: records sent */
} lc_op_t;

size_t tok_lc_cursor_node(const char *cursor, const char **node_cursor)
{
    const char *colon = strchr(cursor, ':');
    *node_cursor = colon ? colon + 1 : cursor;
    return colon ? (size_t)strtoul(cursor, NULL, 10) : 0;
}

bool tok_lc_cursor_next(const struct db *db, size_t master, const char *reply_cursor,
                        char out[TOK_LC_CURSOR_MAX])
{
    bool node_done = strcmp(reply_cursor, "0") == 0;
    if (node_done && master + 1 >= db_masters(db)) {
        snprintf(out, TOK_LC_CURSOR_MAX, "0");
        return true;
    }
    if (node_done)
        snprintf(out, TOK_LC_CURSOR_MAX, "%zu:0", master + 1);
    else
        snprintf(out, TOK_LC_CURSOR_MAX, "%zu:%s", master, reply_cursor);
    return false;
}

void tok_lc_glob_escape(const char *s, char *out, size_t outlen)
{
    size_t j = 0;
    for (; *s && j + 2 < outlen; s++) {
        if (strchr("*?[]\\", *s))
            out[j++] = '\\';
        out[j++] = *s;
    }
    out[j] = '\0';
}

static void dev_match(const char *head, char out[MATCH_MAX])
{
    char tail[8];
    tok_lc_glob_escape(key_tail(KEY_DEV), tail, sizeof tail);
    tok_lc_glob_escape(head, out, MATCH_MAX);
    size_t n = strlen(out);
    snprintf(out + n, MATCH_MAX - n, "*%s", tail);
}

tok_lc_t *tok_lc_create(struct db *db, const char *prefix)
{
    tok_lc_t *lc = xcalloc(1, sizeof *lc);
    lc->db = db;
    snprintf(lc->prefix, sizeof lc->prefix, "%s", prefix);
    key_token_parts(lc->token_parts, prefix);
    key_head(lc->dev_head, prefix, KEY_DEV);
    dev_match(lc->dev_head, lc->match);
    tok_lc_glob_escape(prefix, lc->all, MATCH_MAX - 1);
    strcat(lc->all, "*");
    key_stem(lc->owner_stem, prefix, KEY_OWNER);
    key_expiry_legacy(lc->old_expiry, prefix);
    lc->s_expire = db_script(db, lua_expire_chunk);
    lc->s_scan = db_script(db, lua_scan_chunk);
    lc->s_import = db_script(db, lua_import);
    lc->s_reindex = NULL; /* registered on first use */
    lc->cluster = db_is_cluster(db);
    if (lc->cluster) {
        lc->s_expire_rec = db_script(db, lua_expire_record);
        lc->s_fix = db_script(db, lua_bucket_fix);
        lc->s_imp_user = db_script(db, lua_import_user);
        lc->s_imp_take = db_script(db, lua_import_take);
        lc->s_imp_bind = db_script(db, lua_import_bind);
    }
    return lc;
}

void tok_lc_destroy(tok_lc_t *lc)
{
    free(lc);
}

static lc_op_t *op_new(tok_lc_cb cb, tok_lc_import_cb icb, void *arg)
{
    lc_op_t *op = xmalloc(sizeof *op);
    op->cb = cb;
    op->icb = icb;
    op->arg = arg;
    op->n = 0;
    return op;
}

/* A usable array reply of at least n elements, else NULL. */
static const db_reply_t *reply_array(int status, const db_reply_t *r, size_t n)
{
    if (status != DB_OK || db_reply_type(r) != DB_REPLY_ARRAY || db_reply_len(r) < n)
        return NULL;
    return r;
}

static long elem_int(const db_reply_t *r, size_t i)
{
    const db_reply_t *e = db_reply_elem(r, i);
    return db_reply_type(e) == DB_REPLY_INTEGER ? (long)db_reply_int(e) : 0;
}

/* Points res->items at the strings of the items array (element i). */
static const char **collect_items(const db_reply_t *r, size_t i, tok_lc_result_t *res)
{
    const db_reply_t *a = db_reply_elem(r, i);
    size_t n = db_reply_type(a) == DB_REPLY_ARRAY ? db_reply_len(a) : 0;
    const char **items = xcalloc(n ? n : 1, sizeof *items);
    for (size_t k = 0; k < n; k++) {
        const char *s = db_reply_str(db_reply_elem(a, k), NULL);
        items[res->nitems++] = s ? s : "";
    }
    res->items = items;
    return items;
}

/* Answers a chunk operation with res and the items of element items_at of a, or TOK_EUNAVAIL
 * when a is NULL (no usable reply); frees op. */
static void chunk_done(lc_op_t *op, const db_reply_t *a, size_t items_at, tok_lc_result_t *res)
{
    if (a == NULL) {
        op->cb(TOK_EUNAVAIL, NULL, op->arg);
    } else {
        const char **items = collect_items(a, items_at, res);
        op->cb(0, res, op->arg);
        free(items);
    }
    free(op);
}

/* Runs a chunk script: its key (an expiry bucket; none when key is NULL), then args[0..n), then
 * the key spelling the scripts build dev hash, owner and expiry keys from. */
static void eval_chunk(tok_lc_t *lc, db_script_t *s, db_cb on_reply, tok_lc_cb cb, void *arg,
                       const char *key, const char *const *args, size_t n)
{
    const char *argv[16];
    size_t argc = 0;
    if (key)
        argv[argc++] = key;
    for (size_t i = 0; i < n && argc < 13; i++)
        argv[argc++] = args[i];
    argv[argc++] = lc->token_parts;
    argv[argc++] = lc->dev_head;
    argv[argc++] = key_tail(KEY_DEV);
    db_eval(lc->db, s, on_reply, op_new(cb, NULL, arg), key ? 1 : 0, (int)argc, argv, NULL);
}

static void on_expire(int status, const db_reply_t *r, void *arg)
{
    const db_reply_t *a = reply_array(status, r, 5);
    tok_lc_result_t res = {0};
    if (a != NULL) {
        res.examined = elem_int(a, 0);
        res.removed_expired = elem_int(a, 1);
        res.removed_stale = elem_int(a, 2);
        res.rescored = elem_int(a, 3);
    }
    chunk_done(arg, a, 4, &res);
}

static void cl_expire_chunk(tok_lc_t *lc, const char *zkey, const char *now, const char *off,
                            const char *lim, bool dry_run, bool want_items, tok_lc_cb cb,
                            void *arg);
static void cl_scan_chunk(tok_lc_t *lc, const char *cursor, const char *const *args, tok_lc_cb cb,
                          void *arg);
static void cl_import(tok_lc_t *lc, int64_t now_ms, long max_devices, const tok_record_t *recs,
                      size_t n, tok_lc_import_cb cb, void *arg);
static void cl_reindex_chunk(tok_lc_t *lc, const char *const *args, tok_lc_cb cb, void *arg);

void tok_lc_expire_chunk(tok_lc_t *lc, unsigned bucket, int64_t now_s, long offset, long limit,
                         bool dry_run, bool want_items, tok_lc_cb cb, void *arg)
{
    char now[24], off[24], lim[24], zkey[KEY_MAX];
    key_expiry(zkey, lc->prefix, bucket);
    snprintf(now, sizeof now, "%" PRId64, now_s);
    snprintf(off, sizeof off, "%ld", dry_run ? offset : 0);
    snprintf(lim, sizeof lim, "%ld", limit > 0 ? limit : 1);
    if (lc->cluster) {
        cl_expire_chunk(lc, zkey, now, off, lim, dry_run, want_items, cb, arg);
        return;
    }
    const char *args[] = {now, off, lim, dry_run ? "1" : "0", want_items ? "1" : "0"};
    eval_chunk(lc, lc->s_expire, on_expire, cb, arg, zkey, args, sizeof args / sizeof args[0]);
}

/* tok_lc_expire_chunk's `done`: fewer entries than asked for came back. The caller knows limit,
 * so the chunk result carries examined; res.done is set by the wrapper below. */
static void on_scan(int status, const db_reply_t *r, void *arg)
{
    const db_reply_t *a = reply_array(status, r, 8);
    if (a != NULL && db_reply_type(db_reply_elem(a, 0)) != DB_REPLY_STRING)
        a = NULL;
    tok_lc_result_t res = {0};
    if (a != NULL) {
        res.cursor = db_reply_str(db_reply_elem(a, 0), NULL);
        res.done = strcmp(res.cursor, "0") == 0;
        res.active = elem_int(a, 1);
        res.inactive = elem_int(a, 2);
        res.expired = elem_int(a, 3);
        res.corrupt = elem_int(a, 4);
        res.removed_expired = elem_int(a, 5);
        res.removed_inactive = elem_int(a, 6);
        res.examined = res.active + res.inactive + res.expired + res.corrupt + res.removed_expired +
                       res.removed_inactive;
    }
    chunk_done(arg, a, 7, &res);
}

void tok_lc_scan_chunk(tok_lc_t *lc, const char *cursor, const tok_lc_scan_opts_t *o, tok_lc_cb cb,
                       void *arg)
{
    char now[24], cut[24], cnt[24];
    snprintf(now, sizeof now, "%" PRId64, o->now_s);
    snprintf(cut, sizeof cut, "%" PRId64,
             o->inactive_cutoff < 0 ? (int64_t)-1 : o->inactive_cutoff);
    snprintf(cnt, sizeof cnt, "%ld", o->count > 0 ? o->count : 200);
    const char *args[] = {lc->match,
                          cursor,
                          cnt,
                          now,
                          cut,
                          o->remove_expired ? "1" : "0",
                          o->dry_run ? "1" : "0",
                          o->want_items ? "1" : "0"};
    if (lc->cluster) {
        cl_scan_chunk(lc, cursor, args, cb, arg);
        return;
    }
    eval_chunk(lc, lc->s_scan, on_scan, cb, arg, NULL, args, sizeof args / sizeof args[0]);
}

static void on_reindex(int status, const db_reply_t *r, void *arg)
{
    lc_op_t *op = arg;
    const db_reply_t *a = reply_array(status, r, 4);
    if (a != NULL && db_reply_type(db_reply_elem(a, 0)) != DB_REPLY_STRING)
        a = NULL;
    tok_lc_result_t res = {0};
    if (a == NULL) {
        op->cb(TOK_EUNAVAIL, NULL, op->arg);
    } else {
        res.cursor = db_reply_str(db_reply_elem(a, 0), NULL);
        res.done = strcmp(res.cursor, "0") == 0;
        res.examined = elem_int(a, 1);
        res.owners_written = elem_int(a, 2);
        res.legacy_removed = elem_int(a, 3);
        op->cb(0, &res, op->arg);
    }
    free(op);
}

void tok_lc_reindex_chunk(tok_lc_t *lc, const char *cursor, long count, int64_t now_s, tok_lc_cb cb,
                          void *arg)
{
    char now[24], cnt[24];
    if (lc->s_reindex == NULL) {
        lc->s_reindex = db_script(lc->db, lua_reindex_chunk);
        if (lc->cluster)
            lc->s_rx_bind = db_script(lc->db, lua_reindex_bind);
    }
    snprintf(now, sizeof now, "%" PRId64, now_s);
    snprintf(cnt, sizeof cnt, "%ld", count > 0 ? count : 200);
    const char *argv[] = {cursor,
                          cnt,
                          lc->all,
                          now,
                          lc->token_parts,
                          lc->dev_head,
                          key_tail(KEY_DEV),
                          lc->owner_stem,
                          lc->old_expiry,
                          lc->cluster ? "1" : "0"};
    if (lc->cluster) {
        cl_reindex_chunk(lc, argv, cb, arg);
        return;
    }
    db_eval(lc->db, lc->s_reindex, on_reindex, op_new(cb, NULL, arg), 0, 10, argv, NULL);
}

static void on_import(int status, const db_reply_t *r, void *arg)
{
    lc_op_t *op = arg;
    const db_reply_t *a = reply_array(status, r, 6);
    const db_reply_t *ref = a ? db_reply_elem(a, 5) : NULL;
    if (a == NULL || db_reply_type(ref) != DB_REPLY_ARRAY) {
        op->icb(TOK_EUNAVAIL, NULL, op->arg);
        free(op);
        return;
    }
    tok_lc_import_result_t res = {
        elem_int(a, 0), elem_int(a, 1), elem_int(a, 2), elem_int(a, 3), elem_int(a, 4), NULL, 0};
    size_t n = db_reply_len(ref);
    size_t *refused = xcalloc(n ? n : 1, sizeof *refused);
    for (size_t k = 0; k < n; k++) {
        long one = elem_int(ref, k); /* 1-based */
        if (one >= 1 && (size_t)one <= op->n)
            refused[res.nrefused++] = (size_t)one - 1;
    }
    res.refused = refused;
    op->icb(0, &res, op->arg);
    free(refused);
    free(op);
}

/* The script's six leading ARGV, before the records. */
#define IMPORT_HEAD 6

void tok_lc_import(tok_lc_t *lc, int64_t now_ms, long max_devices, const tok_record_t *recs,
                   size_t n, tok_lc_import_cb cb, void *arg)
{
    if (lc->cluster) {
        cl_import(lc, now_ms, max_devices, recs, n, cb, arg);
        return;
    }
    size_t argc = IMPORT_HEAD + 6 * n;
    const char **argv = xmalloc(argc * sizeof *argv);
    size_t *lens = xmalloc(argc * sizeof *lens);
    /* One buffer per record for its JSON and expiresAt, offsets fixed up after growing. */
    buf_t js = BUF_INIT;
    size_t *off = xmalloc((2 * n + 1) * sizeof *off);
    char now[24], iso[TOK_TIME_MAX], max[24];
    snprintf(now, sizeof now, "%" PRId64, now_ms / 1000);
    clk_iso8601_ms(now_ms, iso, sizeof iso);
    snprintf(max, sizeof max, "%ld", max_devices > 0 ? max_devices : 1);
    for (size_t i = 0; i < n; i++) {
        off[2 * i] = js.len;
        buf_printf(&js, "%" PRId64, recs[i].expires_at);
        off[2 * i + 1] = js.len;
        tok_record_json(&recs[i], &js);
    }
    off[2 * n] = js.len;
    const char *head[IMPORT_HEAD] = {
        now, iso, max, lc->token_parts, lc->dev_head, key_tail(KEY_DEV)};
    for (size_t k = 0; k < IMPORT_HEAD; k++)
        argv[k] = head[k], lens[k] = strlen(head[k]);
    for (size_t i = 0; i < n; i++) {
        const tok_record_t *r = &recs[i];
        size_t k = IMPORT_HEAD + 6 * i;
        argv[k] = r->user_id, lens[k] = strlen(r->user_id);
        argv[k + 1] = r->device_id, lens[k + 1] = strlen(r->device_id);
        argv[k + 2] = r->token, lens[k + 2] = strlen(r->token);
        argv[k + 3] = js.data + off[2 * i], lens[k + 3] = off[2 * i + 1] - off[2 * i];
        argv[k + 4] = js.data + off[2 * i + 1], lens[k + 4] = off[2 * i + 2] - off[2 * i + 1];
        argv[k + 5] = r->active ? "1" : "0", lens[k + 5] = 1;
    }
    lc_op_t *op = op_new(NULL, cb, arg);
    op->n = n;
    /* db copies the arguments before returning. */
    db_eval(lc->db, lc->s_import, on_import, op, 0, (int)argc, argv, lens);
    buf_cleanup(&js);
    free(off);
    free(lens);
    free(argv);
}

/* ---- Redis Cluster: each script touches one slot ----
 * A scan chunk runs on one master at a time (its SCAN sees that master's hashes only; the cursor
 * is "<master>:<cursor>" between masters) and removes records from their hashes only; an expire
 * chunk reads its bucket's head and decides about each entry in the entry's user slot
 * (expire_record.lua), which removes an expired record. Then, in the token's slot, bucket_fix.lua
 * drops the binding (owner key, expiry entry), a stale entry, or rescores one, unless a
 * registration wrote the entry again meanwhile (its score differs from the one seen): the record
 * goes first, so the owner key never names a record that is not there for longer than one step
 * (a send checks the record), and a registration racing the sweep keeps its binding. */

/* What the steps of a cluster operation need of the tok_lc_t (which may be destroyed first). */
typedef struct cl_ctx {
    db_t *db;
    db_script_t *s_fix, *s_expire_rec, *s_imp_user, *s_imp_take, *s_imp_bind, *s_rx_bind;
    char prefix[KEY_PREFIX_MAX + 1], token_parts[KEY_PARTS_MAX];
} cl_ctx_t;

static void cl_ctx_init(cl_ctx_t *c, const tok_lc_t *lc)
{
    c->db = lc->db;
    c->s_fix = lc->s_fix;
    c->s_expire_rec = lc->s_expire_rec;
    c->s_imp_user = lc->s_imp_user;
    c->s_imp_take = lc->s_imp_take;
    c->s_imp_bind = lc->s_imp_bind;
    c->s_rx_bind = lc->s_rx_bind;
    memcpy(c->prefix, lc->prefix, sizeof c->prefix);
    memcpy(c->token_parts, lc->token_parts, sizeof c->token_parts);
}

typedef struct cl_op {
    tok_lc_cb cb;
    void *arg;
    cl_ctx_t c;
    char zkey[KEY_MAX], now[24];
    bool dry, want_items;
    int status;
    size_t pending;
    tok_lc_result_t res;
    char cursor[TOK_LC_CURSOR_MAX];
    size_t master; /* scan: the master it ran on */
    char **items;
    size_t nitems, items_cap;
} cl_op_t;

/* One entry of an expire chunk in flight. */
typedef struct cl_entry {
    cl_op_t *op;
    char *member, *score;
} cl_entry_t;

static cl_op_t *cl_new(tok_lc_t *lc, tok_lc_cb cb, void *arg)
{
    cl_op_t *op = xcalloc(1, sizeof *op);
    op->cb = cb;
    op->arg = arg;
    cl_ctx_init(&op->c, lc);
    op->pending = 1; /* the first step */
    return op;
}

/* Keeps item (new string, freed with op) for the result. */
static void cl_push(cl_op_t *op, char *item)
{
    if (op->nitems == op->items_cap) {
        op->items_cap = op->items_cap ? 2 * op->items_cap : 16;
        op->items = xrealloc(op->items, op->items_cap * sizeof *op->items);
    }
    op->items[op->nitems++] = item;
}

/* Adds the item "member\x1fwhy" when items are wanted. */
static void cl_item(cl_op_t *op, const char *member, const char *why)
{
    if (!op->want_items)
        return;
    size_t n = strlen(member) + strlen(why) + 2;
    char *item = xmalloc(n);
    snprintf(item, n, "%s%c%s", member, TOK_SEP, why);
    cl_push(op, item);
}

/* One step came back: answers once the last one has. */
static void cl_step_done(cl_op_t *op, int status)
{
    if (status != 0 && op->status == 0)
        op->status = status;
    if (--op->pending > 0)
        return;
    if (op->status != 0) {
        op->cb(op->status, NULL, op->arg);
    } else {
        op->res.items = (const char *const *)op->items;
        op->res.nitems = op->nitems;
        op->res.cursor = op->res.cursor ? op->cursor : NULL;
        op->cb(0, &op->res, op->arg);
    }
    for (size_t i = 0; i < op->nitems; i++)
        free(op->items[i]);
    free(op->items);
    free(op);
}

static void on_fixed(int status, const db_reply_t *r, void *arg)
{
    bool ok = status == DB_OK && db_reply_type(r) == DB_REPLY_INTEGER;
    cl_step_done(arg, ok ? 0 : TOK_EUNAVAIL);
}

/* bucket_fix.lua in the slot of zkey (and of token's owner key, for unbind); cb gets the reply. */
static void fix_eval(db_t *db, db_script_t *s_fix, const char *prefix, const char *zkey,
                     const char *token, const char *member, const char *score, const char *action,
                     const char *new_score, db_cb cb, void *arg)
{
    char okey[KEY_MAX];
    int nkeys = 1;
    const char *argv[6] = {zkey};
    if (token && *token) {
        key_owner(okey, prefix, token);
        argv[nkeys++] = okey;
    }
    int argc = nkeys;
    argv[argc++] = member;
    argv[argc++] = score;
    argv[argc++] = action;
    argv[argc++] = new_score ? new_score : "0";
    db_eval(db, s_fix, cb, arg, nkeys, argc, argv, NULL);
}

static void cl_fix(cl_op_t *op, const char *zkey, const char *token, const char *member,
                   const char *score, const char *action, const char *new_score)
{
    op->pending++;
    fix_eval(op->c.db, op->c.s_fix, op->c.prefix, zkey, token, member, score, action, new_score,
             on_fixed, op);
}

/* The token, member, expiresAt triples of a user-slot step's reply list: each binding dropped in
 * its token's slot (fix_eval with cb, arg); returns how many were sent. */
static size_t unbind_all(db_t *db, db_script_t *s_fix, const char *prefix, const db_reply_t *l,
                         db_cb cb, void *arg)
{
    size_t n = db_reply_type(l) == DB_REPLY_ARRAY ? db_reply_len(l) / 3 : 0, sent = 0;
    for (size_t i = 0; i < n; i++) {
        const char *tok = db_reply_str(db_reply_elem(l, 3 * i), NULL);
        const char *member = db_reply_str(db_reply_elem(l, 3 * i + 1), NULL);
        const char *score = db_reply_str(db_reply_elem(l, 3 * i + 2), NULL);
        char zkey[KEY_MAX];
        if (tok == NULL || member == NULL || score == NULL || strlen(tok) > KEY_TOKEN_MAX)
            continue;
        key_expiry(zkey, prefix, key_token_bucket(tok));
        fix_eval(db, s_fix, prefix, zkey, tok, member, *score ? score : "-1", "unbind", NULL, cb,
                 arg);
        sent++;
    }
    return sent;
}

/* Parses r, the reply to an HGET of a record, into rec; false when there is none or it does not
 * parse. */
static bool record_of(const db_reply_t *r, tok_record_t *rec)
{
    size_t n = 0;
    const char *js = db_reply_type(r) == DB_REPLY_STRING ? db_reply_str(r, &n) : NULL;
    char e[64];
    return js && tok_record_parse(js, n, rec, e, sizeof e) == 0;
}

/* Whether r, the reply to an HGET of a record, is a record that holds token. */
static bool record_holds(const db_reply_t *r, const char *token)
{
    tok_record_t held;
    return record_of(r, &held) && strcmp(held.token, token) == 0;
}

/* ---- scan chunk, one master at a time ---- */

static void on_cl_scan(int status, const db_reply_t *r, void *arg)
{
    cl_op_t *op = arg;
    const db_reply_t *a = reply_array(status, r, 9);
    if (a == NULL || db_reply_type(db_reply_elem(a, 0)) != DB_REPLY_STRING) {
        cl_step_done(op, TOK_EUNAVAIL);
        return;
    }
    const char *c = db_reply_str(db_reply_elem(a, 0), NULL);
    tok_lc_result_t *res = &op->res;
    res->done = tok_lc_cursor_next(op->c.db, op->master, c, op->cursor);
    res->cursor = op->cursor;
    res->active = elem_int(a, 1);
    res->inactive = elem_int(a, 2);
    res->expired = elem_int(a, 3);
    res->corrupt = elem_int(a, 4);
    res->removed_expired = elem_int(a, 5);
    res->removed_inactive = elem_int(a, 6);
    res->examined = res->active + res->inactive + res->expired + res->corrupt +
                    res->removed_expired + res->removed_inactive;
    const db_reply_t *items = db_reply_elem(a, 7), *unbind = db_reply_elem(a, 8);
    for (size_t i = 0; db_reply_type(items) == DB_REPLY_ARRAY && i < db_reply_len(items); i++) {
        const char *item = db_reply_str(db_reply_elem(items, i), NULL);
        cl_push(op, xstrdup(item ? item : ""));
    }
    op->pending += unbind_all(op->c.db, op->c.s_fix, op->c.prefix, unbind, on_fixed, op);
    cl_step_done(op, 0);
}

static void cl_scan_chunk(tok_lc_t *lc, const char *cursor, const char *const *args, tok_lc_cb cb,
                          void *arg)
{
    cl_op_t *op = cl_new(lc, cb, arg);
    const char *node_cursor;
    op->master = tok_lc_cursor_node(cursor, &node_cursor);
    const char *argv[] = {args[0],         node_cursor,  args[2],           args[3],
                          args[4],         args[5],      args[6],           args[7],
                          lc->token_parts, lc->dev_head, key_tail(KEY_DEV), "1"};
    db_eval_at(lc->db, op->master, lc->s_scan, on_cl_scan, op, 0, 12, argv, NULL);
}

/* ---- expire chunk: the bucket's head, then each entry in its user slot ---- */

static void on_cl_record(int status, const db_reply_t *r, void *arg)
{
    cl_entry_t *e = arg;
    cl_op_t *op = e->op;
    const db_reply_t *a = reply_array(status, r, 3);
    const char *why = a ? db_reply_str(db_reply_elem(a, 0), NULL) : NULL;
    const char *tok = a ? db_reply_str(db_reply_elem(a, 1), NULL) : NULL;
    const char *exp = a ? db_reply_str(db_reply_elem(a, 2), NULL) : NULL;
    int rc = why && tok && exp ? 0 : TOK_EUNAVAIL;
    if (rc == 0 && strcmp(why, "later") == 0) {
        op->res.rescored++;
        if (!op->dry)
            cl_fix(op, op->zkey, NULL, e->member, e->score, "rescore", exp);
    } else if (rc == 0 && strcmp(why, "expired") == 0) {
        op->res.removed_expired++;
        cl_item(op, e->member, why);
        if (!op->dry)
            cl_fix(op, op->zkey, strlen(tok) <= KEY_TOKEN_MAX ? tok : NULL, e->member, e->score,
                   "unbind", NULL);
    } else if (rc == 0) {
        op->res.removed_stale++;
        cl_item(op, e->member, "stale");
        if (!op->dry)
            cl_fix(op, op->zkey, NULL, e->member, e->score, "drop", NULL);
    }
    free(e->member);
    free(e->score);
    free(e);
    cl_step_done(op, rc);
}

/* One entry "user\x1fdevice" seen at score: its record decides (a malformed one is stale). */
static void cl_expire_entry(cl_op_t *op, const char *member, size_t len, const char *score)
{
    const char *sep = memchr(member, TOK_SEP, len);
    size_t ul = sep ? (size_t)(sep - member) : 0;
    if (sep == NULL || ul == 0 || ul > KEY_USER_MAX || len - ul - 1 > KEY_DEVICE_MAX) {
        char *m = xstrndup(member, len);
        op->res.removed_stale++;
        cl_item(op, m, "stale");
        if (!op->dry)
            cl_fix(op, op->zkey, NULL, m, score, "drop", NULL);
        free(m);
        return;
    }
    cl_entry_t *e = xcalloc(1, sizeof *e);
    e->op = op;
    e->member = xstrndup(member, len);
    e->score = xstrdup(score);
    op->pending++;
    char user[KEY_USER_MAX + 1], hk[KEY_MAX];
    memcpy(user, member, ul);
    user[ul] = '\0';
    key_dev(hk, op->c.prefix, user);
    const char *argv[] = {hk,       e->member + ul + 1, op->now,
                          op->zkey, op->c.token_parts,  op->dry ? "1" : "0"};
    db_eval(op->c.db, op->c.s_expire_rec, on_cl_record, e, 1, 6, argv, NULL);
}

static void on_cl_range(int status, const db_reply_t *r, void *arg)
{
    cl_op_t *op = arg;
    if (status != DB_OK || db_reply_type(r) != DB_REPLY_ARRAY) {
        cl_step_done(op, TOK_EUNAVAIL);
        return;
    }
    size_t n = db_reply_len(r) / 2;
    op->res.examined = (long)n;
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *m = db_reply_str(db_reply_elem(r, 2 * i), &len);
        const char *score = db_reply_str(db_reply_elem(r, 2 * i + 1), NULL);
        if (m && score)
            cl_expire_entry(op, m, len, score);
    }
    cl_step_done(op, 0);
}

static void cl_expire_chunk(tok_lc_t *lc, const char *zkey, const char *now, const char *off,
                            const char *lim, bool dry_run, bool want_items, tok_lc_cb cb, void *arg)
{
    cl_op_t *op = cl_new(lc, cb, arg);
    snprintf(op->zkey, sizeof op->zkey, "%s", zkey);
    snprintf(op->now, sizeof op->now, "%s", now);
    op->dry = dry_run;
    op->want_items = want_items;
    db_cmd(lc->db, on_cl_range, op, "ZRANGEBYSCORE", zkey, "-inf", now, "WITHSCORES", "LIMIT", off,
           lim, NULL);
}

/* ---- import, one record at a time, one script per slot ----
 * import.lua's steps in registration's split order (DESIGN.md "Reassignment across slots"): the
 * record in its user slot (import_user.lua: the device limit, the record as given), the bindings
 * it let go in their token slots (bucket_fix.lua), for an inactive record the token's current
 * holder (does it still hold the token?), the token slot (import_bind.lua), and for an active
 * record the previous holder's slot (import_take.lua). Records go in file order, one after the
 * other, so the last line for a token wins as on a single Redis. */

typedef struct imp_op {
    tok_lc_import_cb cb;
    void *arg;
    cl_ctx_t c;
    char now_s[24], iso[TOK_TIME_MAX], max[24];
    int64_t now;
    tok_record_t *recs;
    size_t n, i, pending;
    bool failed; /* a step of the current record failed */
    char exp[24], member[TOK_USER_MAX + TOK_DEVICE_MAX + 2];
    tok_lc_import_result_t res;
    size_t *refused;
} imp_op_t;

static void imp_next(imp_op_t *op);

static void imp_finish(imp_op_t *op, int status)
{
    op->res.refused = op->refused;
    op->cb(status, status == 0 ? &op->res : NULL, op->arg);
    free(op->refused);
    free(op->recs);
    free(op);
}

/* The current record is done: the next one. */
static void imp_advance(imp_op_t *op)
{
    op->i++;
    imp_next(op);
}

static void on_imp_taken(int status, const db_reply_t *r, void *arg)
{
    imp_op_t *op = arg;
    if (status != DB_OK || db_reply_type(r) != DB_REPLY_INTEGER) {
        imp_finish(op, TOK_EUNAVAIL);
        return;
    }
    op->res.reassigned += db_reply_int(r) == 1;
    imp_advance(op);
}

/* "user\x1fdevice" of n bytes into user and device; -1 when malformed. */
static int split_member(const char *v, size_t n, char user[TOK_USER_MAX + 1],
                        char dev[TOK_DEVICE_MAX + 1])
{
    const char *sep = v ? memchr(v, TOK_SEP, n) : NULL;
    size_t ul = sep ? (size_t)(sep - v) : 0;
    if (sep == NULL || ul == 0 || ul > TOK_USER_MAX || n - ul - 1 == 0 ||
        n - ul - 1 > TOK_DEVICE_MAX)
        return -1;
    memcpy(user, v, ul);
    user[ul] = '\0';
    memcpy(dev, sep + 1, n - ul - 1);
    dev[n - ul - 1] = '\0';
    return 0;
}

static void on_imp_bound(int status, const db_reply_t *r, void *arg)
{
    imp_op_t *op = arg;
    const tok_record_t *rec = &op->recs[op->i];
    size_t n = 0;
    const char *prev = status == DB_OK ? db_reply_str(r, &n) : NULL;
    char user[TOK_USER_MAX + 1], dev[TOK_DEVICE_MAX + 1], hk[KEY_MAX];
    if (prev == NULL || db_reply_type(r) == DB_REPLY_ERROR) {
        imp_finish(op, TOK_EUNAVAIL);
        return;
    }
    if (!rec->active || rec->expires_at <= op->now || strcmp(prev, op->member) == 0 ||
        split_member(prev, n, user, dev) != 0) {
        imp_advance(op);
        return;
    }
    key_dev(hk, op->c.prefix, user);
    const char *argv[] = {hk, dev, rec->token, op->now_s, op->iso};
    db_eval(op->c.db, op->c.s_imp_take, on_imp_taken, op, 1, 5, argv, NULL);
}

static void imp_bind(imp_op_t *op, bool own)
{
    const tok_record_t *rec = &op->recs[op->i];
    char okey[KEY_MAX], zkey[KEY_MAX];
    key_owner(okey, op->c.prefix, rec->token);
    key_expiry(zkey, op->c.prefix, key_token_bucket(rec->token));
    const char *argv[] = {okey, zkey, op->member, op->exp, own ? "1" : "0"};
    db_eval(op->c.db, op->c.s_imp_bind, on_imp_bound, op, 2, 5, argv, NULL);
}

/* An inactive record gets the owner key only when its holder no longer holds the token. */
static void on_imp_holder(int status, const db_reply_t *r, void *arg)
{
    imp_op_t *op = arg;
    if (status != DB_OK || db_reply_type(r) == DB_REPLY_ERROR) {
        imp_finish(op, TOK_EUNAVAIL);
        return;
    }
    imp_bind(op, !record_holds(r, op->recs[op->i].token));
}

static void on_imp_owner(int status, const db_reply_t *r, void *arg)
{
    imp_op_t *op = arg;
    char user[TOK_USER_MAX + 1], dev[TOK_DEVICE_MAX + 1], hk[KEY_MAX];
    size_t n = 0;
    if (status != DB_OK || db_reply_type(r) == DB_REPLY_ERROR) {
        imp_finish(op, TOK_EUNAVAIL);
        return;
    }
    const char *owner = db_reply_type(r) == DB_REPLY_STRING ? db_reply_str(r, &n) : NULL;
    if (owner == NULL || strcmp(owner, op->member) == 0 || split_member(owner, n, user, dev) != 0) {
        imp_bind(op, true);
        return;
    }
    key_dev(hk, op->c.prefix, user);
    db_cmd(op->c.db, on_imp_holder, op, "HGET", hk, dev, NULL);
}

/* After the user slot and the bindings it let go: the token slot. */
static void imp_token(imp_op_t *op)
{
    const tok_record_t *rec = &op->recs[op->i];
    bool live = rec->expires_at > op->now;
    if (!live || rec->active) {
        imp_bind(op, live);
        return;
    }
    char okey[KEY_MAX];
    key_owner(okey, op->c.prefix, rec->token);
    db_cmd(op->c.db, on_imp_owner, op, "GET", okey, NULL);
}

static void on_imp_unbound(int status, const db_reply_t *r, void *arg)
{
    imp_op_t *op = arg;
    if (status != DB_OK || (r && db_reply_type(r) != DB_REPLY_INTEGER))
        op->failed = true;
    if (--op->pending > 0)
        return;
    if (op->failed)
        imp_finish(op, TOK_EUNAVAIL);
    else
        imp_token(op);
}

static void on_imp_user(int status, const db_reply_t *r, void *arg)
{
    imp_op_t *op = arg;
    const db_reply_t *a = reply_array(status, r, 3);
    const char *st = a ? db_reply_str(db_reply_elem(a, 0), NULL) : NULL;
    if (st == NULL) {
        imp_finish(op, TOK_EUNAVAIL);
        return;
    }
    if (strcmp(st, "unchanged") == 0 || strcmp(st, "refused") == 0) {
        if (*st == 'u')
            op->res.unchanged++;
        else
            op->refused[op->res.nrefused++] = op->i;
        imp_advance(op);
        return;
    }
    if (*st == 'c')
        op->res.created++;
    else
        op->res.updated++;
    op->res.evicted += elem_int(a, 1);
    op->pending = 1;
    op->pending +=
        unbind_all(op->c.db, op->c.s_fix, op->c.prefix, db_reply_elem(a, 2), on_imp_unbound, op);
    on_imp_unbound(DB_OK, NULL, op);
}

static void imp_next(imp_op_t *op)
{
    if (op->i == op->n) {
        imp_finish(op, 0);
        return;
    }
    const tok_record_t *rec = &op->recs[op->i];
    op->failed = false;
    buf_t js = BUF_INIT;
    tok_record_json(rec, &js);
    char hk[KEY_MAX];
    key_dev(hk, op->c.prefix, rec->user_id);
    snprintf(op->exp, sizeof op->exp, "%" PRId64, rec->expires_at);
    snprintf(op->member, sizeof op->member, "%s%c%s", rec->user_id, TOK_SEP, rec->device_id);
    const char *argv[] = {hk,      rec->user_id, rec->device_id, rec->token,       op->exp,
                          js.data, op->now_s,    op->max,        op->c.token_parts};
    db_eval(op->c.db, op->c.s_imp_user, on_imp_user, op, 1, 9, argv, NULL);
    buf_cleanup(&js);
}

static void imp_start(void *arg)
{
    imp_next(arg);
}

static void cl_import(tok_lc_t *lc, int64_t now_ms, long max_devices, const tok_record_t *recs,
                      size_t n, tok_lc_import_cb cb, void *arg)
{
    imp_op_t *op = xcalloc(1, sizeof *op);
    op->cb = cb;
    op->arg = arg;
    cl_ctx_init(&op->c, lc);
    op->now = now_ms / 1000;
    snprintf(op->now_s, sizeof op->now_s, "%" PRId64, op->now);
    clk_iso8601_ms(now_ms, op->iso, sizeof op->iso);
    snprintf(op->max, sizeof op->max, "%ld", max_devices > 0 ? max_devices : 1);
    op->recs = xmalloc((n ? n : 1) * sizeof *op->recs);
    memcpy(op->recs, recs, n * sizeof *recs);
    op->n = n;
    op->refused = xcalloc(n ? n : 1, sizeof *op->refused);
    db_defer(op->c.db, imp_start, op);
}

/* ---- reindex chunk: one master's SCAN, then each record in its token's slot ----
 * reindex_chunk.lua reads the records of the master's device hashes (and removes the old
 * schema's keys there). Each record then gets, in its token's slot, its expiry entry and, under
 * the single-Redis script's rules, its owner key (reindex_bind.lua): when the key names nobody;
 * when it names another record and this one is active, after that record was read and found not
 * to hold the token. The script writes the key only while it still names what those reads saw,
 * so a binding a registration made meanwhile stays. Once an owner key is written, the record is
 * read again: when it no longer holds the token (re-registered with another one meanwhile, whose
 * registration may have unbound this token before the step above bound it again), the binding
 * goes again (bucket_fix.lua unbind: only while it names the record at that score). */

typedef struct rx_rec {
    cl_op_t *op;
    char user[TOK_USER_MAX + 1], dev[TOK_DEVICE_MAX + 1], token[TOK_TOKEN_MAX + 1];
    char member[TOK_USER_MAX + TOK_DEVICE_MAX + 2], holder[TOK_USER_MAX + TOK_DEVICE_MAX + 2];
    char exp[24], okey[KEY_MAX], zkey[KEY_MAX];
    bool live, active;
} rx_rec_t;

static void rx_done(rx_rec_t *x, int status)
{
    cl_step_done(x->op, status);
    free(x);
}

static void on_rx_bound(int status, const db_reply_t *r, void *arg);

/* The token-slot step; own: write the owner key while it names expect ("" nobody). */
static void rx_bind(rx_rec_t *x, bool own, const char *expect)
{
    const char *argv[] = {x->okey, x->zkey, x->member, x->exp, own ? "1" : "0", expect};
    db_eval(x->op->c.db, x->op->c.s_rx_bind, on_rx_bound, x, 2, 6, argv, NULL);
}

static void on_rx_fixed(int status, const db_reply_t *r, void *arg)
{
    rx_done(arg, status == DB_OK && db_reply_type(r) == DB_REPLY_INTEGER ? 0 : TOK_EUNAVAIL);
}

/* The record read again after its owner key was written. When it holds another token of the
 * same bucket now, the entry may be that token's (the member is the same): both stay, the owner
 * key left naming a record that does not hold its token (no send goes through it). */
static void on_rx_reread(int status, const db_reply_t *r, void *arg)
{
    rx_rec_t *x = arg;
    tok_record_t now;
    bool parsed = status == DB_OK && record_of(r, &now);
    if (status != DB_OK || db_reply_type(r) == DB_REPLY_ERROR)
        rx_done(x, TOK_EUNAVAIL);
    else if (parsed && key_token_bucket(now.token) == key_token_bucket(x->token))
        rx_done(x, 0);
    else
        fix_eval(x->op->c.db, x->op->c.s_fix, x->op->c.prefix, x->zkey, x->token, x->member, x->exp,
                 "unbind", NULL, on_rx_fixed, x);
}

/* The record the owner key names: does it still hold the token? */
static void on_rx_holder(int status, const db_reply_t *r, void *arg)
{
    rx_rec_t *x = arg;
    if (status != DB_OK || db_reply_type(r) == DB_REPLY_ERROR)
        rx_done(x, TOK_EUNAVAIL);
    else if (record_holds(r, x->token))
        rx_done(x, 0);
    else
        rx_bind(x, true, x->holder);
}

static void on_rx_bound(int status, const db_reply_t *r, void *arg)
{
    rx_rec_t *x = arg;
    const db_reply_t *a = reply_array(status, r, 2);
    size_t n = 0;
    const char *cur = a ? db_reply_str(db_reply_elem(a, 1), &n) : NULL;
    char user[TOK_USER_MAX + 1], dev[TOK_DEVICE_MAX + 1], hk[KEY_MAX];
    if (cur == NULL) {
        rx_done(x, TOK_EUNAVAIL);
    } else if (elem_int(a, 0) == 1) {
        x->op->res.owners_written++;
        key_dev(hk, x->op->c.prefix, x->user);
        db_cmd(x->op->c.db, on_rx_reread, x, "HGET", hk, x->dev, NULL);
    } else if (x->live && x->active && x->holder[0] == '\0' && n > 0 &&
               strcmp(cur, x->member) != 0 && split_member(cur, n, user, dev) == 0) {
        snprintf(x->holder, sizeof x->holder, "%s", cur);
        key_dev(hk, x->op->c.prefix, user);
        db_cmd(x->op->c.db, on_rx_holder, x, "HGET", hk, dev, NULL);
    } else {
        rx_done(x, 0); /* bound as it should be, or left to the record that holds the token */
    }
}

/* One record of the chunk's reply (strings e[0..4]: user, device, token, expiresAt, active). */
static void rx_start(cl_op_t *op, const db_reply_t *const e[5], int64_t now)
{
    size_t len[5];
    const char *v[5];
    for (int i = 0; i < 5; i++)
        if ((v[i] = db_reply_str(e[i], &len[i])) == NULL || len[i] == 0 || memchr(v[i], 0, len[i]))
            return;
    if (len[0] > TOK_USER_MAX || len[1] > TOK_DEVICE_MAX || len[2] > TOK_TOKEN_MAX || len[3] >= 24)
        return; /* not a record registration could write: left alone, as a corrupt one is */
    rx_rec_t *x = xcalloc(1, sizeof *x);
    x->op = op;
    memcpy(x->user, v[0], len[0]);
    memcpy(x->dev, v[1], len[1]);
    memcpy(x->token, v[2], len[2]);
    memcpy(x->exp, v[3], len[3]);
    snprintf(x->member, sizeof x->member, "%s%c%s", x->user, TOK_SEP, x->dev);
    x->live = strtoll(x->exp, NULL, 10) > now;
    x->active = *v[4] == '1';
    key_owner(x->okey, op->c.prefix, x->token);
    key_expiry(x->zkey, op->c.prefix, key_token_bucket(x->token));
    op->pending++;
    rx_bind(x, x->live, "");
}

static void on_cl_reindex(int status, const db_reply_t *r, void *arg)
{
    cl_op_t *op = arg;
    const db_reply_t *a = reply_array(status, r, 5);
    const db_reply_t *recs = a ? db_reply_elem(a, 4) : NULL;
    if (a == NULL || db_reply_type(db_reply_elem(a, 0)) != DB_REPLY_STRING ||
        db_reply_type(recs) != DB_REPLY_ARRAY) {
        cl_step_done(op, TOK_EUNAVAIL);
        return;
    }
    op->res.done = tok_lc_cursor_next(op->c.db, op->master, db_reply_str(db_reply_elem(a, 0), NULL),
                                      op->cursor);
    op->res.cursor = op->cursor;
    op->res.examined = elem_int(a, 1);
    op->res.legacy_removed = elem_int(a, 3);
    int64_t now = strtoll(op->now, NULL, 10);
    for (size_t i = 0; i + 5 <= db_reply_len(recs); i += 5) {
        const db_reply_t *e[5];
        for (size_t k = 0; k < 5; k++)
            e[k] = db_reply_elem(recs, i + k);
        rx_start(op, e, now);
    }
    cl_step_done(op, 0);
}

/* args: tok_lc_reindex_chunk's ten script arguments, the walk's cursor first. */
static void cl_reindex_chunk(tok_lc_t *lc, const char *const *args, tok_lc_cb cb, void *arg)
{
    cl_op_t *op = cl_new(lc, cb, arg);
    const char *argv[10];
    memcpy(argv, args, sizeof argv);
    op->master = tok_lc_cursor_node(args[0], &argv[0]);
    snprintf(op->now, sizeof op->now, "%s", args[3]);
    db_eval_at(lc->db, op->master, lc->s_reindex, on_cl_reindex, op, 0, 10, argv, NULL);
}
