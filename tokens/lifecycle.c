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
};

typedef struct lc_op {
    tok_lc_cb cb;
    tok_lc_import_cb icb;
    void *arg;
    size_t n; /* import: records sent */
} lc_op_t;

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

void tok_lc_expire_chunk(tok_lc_t *lc, unsigned bucket, int64_t now_s, long offset, long limit,
                         bool dry_run, bool want_items, tok_lc_cb cb, void *arg)
{
    char now[24], off[24], lim[24], zkey[KEY_MAX];
    key_expiry(zkey, lc->prefix, bucket);
    snprintf(now, sizeof now, "%" PRId64, now_s);
    snprintf(off, sizeof off, "%ld", dry_run ? offset : 0);
    snprintf(lim, sizeof lim, "%ld", limit > 0 ? limit : 1);
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
    if (lc->s_reindex == NULL)
        lc->s_reindex = db_script(lc->db, lua_reindex_chunk);
    snprintf(now, sizeof now, "%" PRId64, now_s);
    snprintf(cnt, sizeof cnt, "%ld", count > 0 ? count : 200);
    const char *argv[] = {cursor,          cnt,          lc->all,           now,
                          lc->token_parts, lc->dev_head, key_tail(KEY_DEV), lc->owner_stem,
                          lc->old_expiry};
    db_eval(lc->db, lc->s_reindex, on_reindex, op_new(cb, NULL, arg), 0, 9, argv, NULL);
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
