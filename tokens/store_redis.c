/* store_redis.c - the Redis-backed token store (tokens/store.h) on the shared db client.
 *
 * Layout (DESIGN.md "Redis layout"; keys built by db/keys.h, <p> is the configurable prefix):
 *   <p>dev:{<userId>}       HASH  deviceId -> compact JSON record (API field names)
 *   <p>owner:<token>        STRING "userId\x1fdeviceId": who holds a push token
 *   <p>expiry               ZSET  "userId\x1fdeviceId" scored by expiresAt
 *
 * Every change that touches more than one key is one Lua script (tokens/lua/), so a crash never
 * leaves the indexes and the hash disagreeing. The scripts take `now` from the store's clock (so
 * tests can use a fake one) and build the other keys they touch from key parts db/keys.h gives
 * them: fine on a single Redis, not cluster-safe (the owner keys cannot share the user's hash
 * slot anyway).
 *
 * Reply handlers never touch the store: an operation carries what it needs, so destroying the
 * store with commands in flight is safe (their callbacks still fire once, from the db). */
#include "tokens/store.h"

#include "core/log.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "db/keys.h"
#include "tokens/lifecycle.h"
#include "tokens/lua_read.h"
#include "tokens/lua_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every id the store accepts fits its key family (db/keys.h), so no key is ever cut short. */
_Static_assert(TOK_USER_MAX <= KEY_USER_MAX, "user ids fit dev keys");
_Static_assert(TOK_DEVICE_MAX <= KEY_DEVICE_MAX, "device ids fit dedup and trace keys");
_Static_assert(TOK_TOKEN_MAX <= KEY_TOKEN_MAX, "push tokens fit owner keys");

typedef struct rstore {
    tok_store_t base;
    db_t *db;
    char prefix[KEY_PREFIX_MAX + 1];
    char owner_stem[KEY_MAX], dev_head[KEY_MAX]; /* key parts the scripts build keys from */
    const clk_t *clk;
    long max_devices;
    db_script_t *s_register, *s_deactivate, *s_purge;
    db_script_t *s_scan_records; /* registered on first use (tok_store_scan) */
} rstore_t;

typedef enum { OP_REG, OP_DONE, OP_LIST, OP_OWNER } op_kind_t;

/* The callback of an op, by its kind. */
typedef union op_cb {
    tok_reg_cb reg;
    tok_done_cb done;
    tok_list_cb list;
    tok_owner_cb owner;
} op_cb_t;

/* One call in flight: its callback and what the reply handler needs. */
typedef struct op {
    op_kind_t kind;
    op_cb_t cb;
    void *arg;
    int status; /* for deferred failures */
    char user[TOK_USER_MAX + 1];
} op_t;

/* Delivers status and the result of op's kind (a tok_reg_result_t, a tok_owner_t, or the n
 * records of a list; NULL when status is not TOK_OK) and frees op. */
static void op_answer(op_t *op, int status, const void *result, size_t n)
{
    switch (op->kind) {
    case OP_REG:
        op->cb.reg(status, result, op->arg);
        break;
    case OP_DONE:
        op->cb.done(status, op->arg);
        break;
    case OP_LIST:
        op->cb.list(status, result, n, op->arg);
        break;
    case OP_OWNER:
        op->cb.owner(status, result, op->arg);
        break;
    }
    free(op);
}

/* Delivers status with no result and frees op. */
static void op_fail(op_t *op, int status)
{
    op_answer(op, status, NULL, 0);
}

static void on_deferred_fail(void *arg)
{
    op_t *op = arg;
    op_fail(op, op->status);
}

static void defer_fail(rstore_t *s, op_t *op, int status)
{
    op->status = status;
    db_defer(s->db, on_deferred_fail, op);
}

/* A new call of this kind when its arguments are valid; otherwise the callback gets TOK_EINVAL
 * (deferred, never inside the call) and NULL is returned. */
static op_t *op_start(rstore_t *s, op_kind_t kind, op_cb_t cb, void *arg, bool valid)
{
    op_t *op = xcalloc(1, sizeof *op);
    op->kind = kind;
    op->cb = cb;
    op->arg = arg;
    if (!valid) {
        defer_fail(s, op, TOK_EINVAL);
        return NULL;
    }
    return op;
}

/* Maps a transport failure or an error reply to TOK_EUNAVAIL (logged: a script error is a bug
 * or a full server, not something a caller can fix). Returns 0 when the reply is usable. */
static int check_reply(int status, const db_reply_t *r, const char *what)
{
    if (status != DB_OK)
        return TOK_EUNAVAIL;
    if (db_reply_type(r) == DB_REPLY_ERROR) {
        LOG(LOG_LVL_ERROR, "token store command failed", LKS("op", what),
            LKS("error", db_reply_str(r, NULL)));
        return TOK_EUNAVAIL;
    }
    return 0;
}

static void now_args(const rstore_t *s, char *secs, size_t secslen, char *iso, size_t isolen)
{
    int64_t ms = s->clk->wall_ms(s->clk->arg);
    snprintf(secs, secslen, "%" PRId64, ms / 1000);
    clk_iso8601_ms(ms, iso, isolen);
}

static bool valid_str(const char *v, int (*check)(const char *, size_t))
{
    return v && check(v, strlen(v)) == 0;
}

/* ---- register ---- */

static int copy_str(const db_reply_t *e, char *out, size_t outlen)
{
    size_t n;
    const char *p = e ? db_reply_str(e, &n) : NULL;
    if (p == NULL || n >= outlen)
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static int parse_register(const db_reply_t *r, tok_reg_result_t *res)
{
    char err[128];
    size_t n;
    if (db_reply_type(r) != DB_REPLY_ARRAY || db_reply_len(r) < 1)
        return TOK_ECORRUPT;
    long long code = db_reply_int(db_reply_elem(r, 0));
    if (code != 0)
        return code == TOK_ELIMIT ? TOK_ELIMIT : TOK_ECORRUPT;
    if (db_reply_len(r) != 5 ||
        copy_str(db_reply_elem(r, 3), res->prev_user_id, sizeof res->prev_user_id) != 0 ||
        copy_str(db_reply_elem(r, 4), res->prev_device_id, sizeof res->prev_device_id) != 0)
        return TOK_ECORRUPT;
    res->created = db_reply_int(db_reply_elem(r, 1)) == 1;
    res->reassigned = res->prev_user_id[0] != '\0';
    const char *js = db_reply_str(db_reply_elem(r, 2), &n);
    if (js == NULL || tok_record_parse(js, n, &res->record, err, sizeof err) != 0) {
        LOG(LOG_LVL_ERROR, "stored record unreadable after register", LKS("reason", err));
        return TOK_ECORRUPT;
    }
    return 0;
}

static void on_register(int status, const db_reply_t *r, void *arg)
{
    op_t *op = arg;
    tok_reg_result_t res;
    memset(&res, 0, sizeof res);
    int rc = check_reply(status, r, "register");
    if (rc == 0)
        rc = parse_register(r, &res);
    op_answer(op, rc, rc == TOK_OK ? &res : NULL, 0);
}

static void st_register(tok_store_t *base, const tok_reg_req_t *req, tok_reg_cb cb, void *arg)
{
    rstore_t *s = (rstore_t *)base;
    bool valid = valid_str(req->user_id, tok_valid_user) && !strchr(req->user_id, TOK_SEP) &&
                 valid_str(req->device_id, tok_valid_device) &&
                 valid_str(req->token, tok_valid_token) && req->ttl_days >= 1 &&
                 req->ttl_days <= 36500 &&
                 !(req->locale && *req->locale &&
                   tok_valid_locale(req->locale, strlen(req->locale), NULL) != 0);
    op_t *op = op_start(s, OP_REG, (op_cb_t){.reg = cb}, arg, valid);
    if (op == NULL)
        return;
    char dkey[KEY_MAX], okey[KEY_MAX], ekey[KEY_MAX], secs[24], iso[TOK_TIME_MAX], ttl[24], max[24];
    key_dev(dkey, s->prefix, req->user_id);
    key_owner(okey, s->prefix, req->token);
    key_expiry(ekey, s->prefix);
    now_args(s, secs, sizeof secs, iso, sizeof iso);
    snprintf(ttl, sizeof ttl, "%ld", req->ttl_days * 86400L);
    snprintf(max, sizeof max, "%ld", s->max_devices);
    const char *argv[] = {dkey,
                          okey,
                          ekey,
                          req->user_id,
                          req->device_id,
                          req->token,
                          tok_platform_name(req->platform),
                          secs,
                          iso,
                          ttl,
                          max,
                          s->owner_stem,
                          s->dev_head,
                          key_tail(KEY_DEV),
                          req->locale ? req->locale : ""};
    db_eval(s->db, s->s_register, on_register, op, 3, 15, argv, NULL);
}

/* ---- deactivate and purge ---- */

static void on_done(int status, const db_reply_t *r, void *arg)
{
    op_t *op = arg;
    int rc = check_reply(status, r, "change");
    if (rc == 0) {
        long long v = db_reply_type(r) == DB_REPLY_INTEGER ? db_reply_int(r) : TOK_ECORRUPT;
        rc = v >= 0 ? TOK_OK : (int)v;
    }
    op_answer(op, rc, NULL, 0);
}

static void st_deactivate(tok_store_t *base, const char *user_id, const char *device_id,
                          const char *reason, const char *only_if_token, tok_done_cb cb, void *arg)
{
    rstore_t *s = (rstore_t *)base;
    bool valid = valid_str(user_id, tok_valid_user) && valid_str(device_id, tok_valid_device) &&
                 reason != NULL && *reason && strlen(reason) < TOK_REASON_MAX;
    op_t *op = op_start(s, OP_DONE, (op_cb_t){.done = cb}, arg, valid);
    if (op == NULL)
        return;
    char dkey[KEY_MAX], secs[24], iso[TOK_TIME_MAX];
    key_dev(dkey, s->prefix, user_id);
    now_args(s, secs, sizeof secs, iso, sizeof iso);
    const char *argv[] = {dkey, device_id, reason, secs, iso, only_if_token ? only_if_token : ""};
    db_eval(s->db, s->s_deactivate, on_done, op, 1, 6, argv, NULL);
}

static void st_purge(tok_store_t *base, const char *user_id, const char *device_id, tok_done_cb cb,
                     void *arg)
{
    rstore_t *s = (rstore_t *)base;
    bool valid = valid_str(user_id, tok_valid_user) &&
                 (device_id == NULL || valid_str(device_id, tok_valid_device));
    op_t *op = op_start(s, OP_DONE, (op_cb_t){.done = cb}, arg, valid);
    if (op == NULL)
        return;
    char dkey[KEY_MAX], ekey[KEY_MAX];
    key_dev(dkey, s->prefix, user_id);
    key_expiry(ekey, s->prefix);
    const char *argv[] = {dkey, ekey, user_id, device_id ? device_id : "", s->owner_stem};
    db_eval(s->db, s->s_purge, on_done, op, 2, 5, argv, NULL);
}

/* ---- list and find_owner ---- */

/* Parses the HGETALL pairs into recs; corrupt records are skipped and logged. Returns the count. */
static size_t parse_list(const db_reply_t *r, const char *user, tok_record_t *recs)
{
    size_t n = 0, pairs = db_reply_len(r) / 2;
    for (size_t i = 0; i < pairs; i++) {
        size_t dl = 0, jl = 0;
        const char *dev = db_reply_str(db_reply_elem(r, 2 * i), &dl);
        const char *js = db_reply_str(db_reply_elem(r, 2 * i + 1), &jl);
        char err[128] = "not a string";
        if (js && tok_record_parse(js, jl, &recs[n], err, sizeof err) == 0) {
            n++;
            continue;
        }
        char devbuf[TOK_DEVICE_MAX + 1];
        snprintf(devbuf, sizeof devbuf, "%.*s", (int)(dl < TOK_DEVICE_MAX ? dl : TOK_DEVICE_MAX),
                 dev ? dev : "");
        LOG(LOG_LVL_WARN, "skipping corrupt token record", LKS("userId", user),
            LKS("deviceId", devbuf), LKS("reason", err));
    }
    return n;
}

static void on_list(int status, const db_reply_t *r, void *arg)
{
    op_t *op = arg;
    int rc = check_reply(status, r, "list");
    if (rc == 0 && db_reply_type(r) != DB_REPLY_ARRAY)
        rc = TOK_ECORRUPT;
    if (rc != 0) {
        op_fail(op, rc);
        return;
    }
    size_t pairs = db_reply_len(r) / 2;
    tok_record_t *recs = pairs ? xcalloc(pairs, sizeof *recs) : NULL;
    size_t n = pairs ? parse_list(r, op->user, recs) : 0;
    if (n < pairs)
        LOG(LOG_LVL_WARN, "token records skipped", LKS("userId", op->user),
            LKI("skipped", pairs - n), LKI("returned", n));
    op_answer(op, TOK_OK, recs, n);
    free(recs);
}

static void st_list(tok_store_t *base, const char *user_id, tok_list_cb cb, void *arg)
{
    rstore_t *s = (rstore_t *)base;
    op_t *op = op_start(s, OP_LIST, (op_cb_t){.list = cb}, arg, valid_str(user_id, tok_valid_user));
    if (op == NULL)
        return;
    snprintf(op->user, sizeof op->user, "%s", user_id);
    char dkey[KEY_MAX];
    key_dev(dkey, s->prefix, user_id);
    db_cmd(s->db, on_list, op, "HGETALL", dkey, NULL);
}

static void on_owner(int status, const db_reply_t *r, void *arg)
{
    op_t *op = arg;
    int rc = check_reply(status, r, "find_owner");
    tok_owner_t o;
    memset(&o, 0, sizeof o);
    if (rc == 0 && db_reply_type(r) == DB_REPLY_NIL)
        rc = TOK_ENOTFOUND;
    if (rc == 0) {
        size_t n = 0;
        const char *v = db_reply_str(r, &n);
        const char *sep = v ? memchr(v, TOK_SEP, n) : NULL;
        size_t ul = sep ? (size_t)(sep - v) : 0, dl = sep ? n - ul - 1 : 0;
        if (!sep || ul == 0 || ul > TOK_USER_MAX || dl == 0 || dl > TOK_DEVICE_MAX) {
            rc = TOK_ECORRUPT;
        } else {
            memcpy(o.user_id, v, ul);
            memcpy(o.device_id, sep + 1, dl);
        }
    }
    op_answer(op, rc, rc == TOK_OK ? &o : NULL, 0);
}

static void st_find_owner(tok_store_t *base, const char *token, tok_owner_cb cb, void *arg)
{
    rstore_t *s = (rstore_t *)base;
    op_t *op =
        op_start(s, OP_OWNER, (op_cb_t){.owner = cb}, arg, valid_str(token, tok_valid_token));
    if (op == NULL)
        return;
    char okey[KEY_MAX];
    key_owner(okey, s->prefix, token);
    db_cmd(s->db, on_owner, op, "GET", okey, NULL);
}

/* ---- lifecycle ---- */

static bool st_ready(const tok_store_t *base)
{
    return db_ready(((const rstore_t *)base)->db);
}

static void st_destroy(tok_store_t *base)
{
    free(base); /* scripts belong to db; in-flight ops do not reference the store */
}

static const tok_store_ops_t redis_ops = {
    .register_device = st_register,
    .deactivate = st_deactivate,
    .purge = st_purge,
    .list = st_list,
    .find_owner = st_find_owner,
    .ready = st_ready,
    .destroy = st_destroy,
};

tok_store_t *tok_store_redis_create(struct db *db, const char *prefix, const clk_t *clock,
                                    long max_devices)
{
    if (db == NULL || prefix == NULL || strlen(prefix) > KEY_PREFIX_MAX || max_devices < 1)
        return NULL;
    rstore_t *s = xcalloc(1, sizeof *s);
    s->base.ops = &redis_ops;
    s->db = db;
    snprintf(s->prefix, sizeof s->prefix, "%s", prefix);
    key_stem(s->owner_stem, prefix, KEY_OWNER);
    key_head(s->dev_head, prefix, KEY_DEV);
    s->clk = clock ? clock : clk_system();
    s->max_devices = max_devices;
    s->s_register = db_script(db, lua_register);
    s->s_deactivate = db_script(db, lua_deactivate);
    s->s_purge = db_script(db, lua_delete_devices);
    return &s->base;
}

const char *tok_strerror(int status)
{
    switch (status) {
    case TOK_OK:
        return "ok";
    case TOK_ENOTFOUND:
        return "no such device token";
    case TOK_ELIMIT:
        return "too many devices for this user";
    case TOK_EUNAVAIL:
        return "token store unavailable";
    case TOK_ECORRUPT:
        return "stored token record is corrupt";
    case TOK_EINVAL:
        return "invalid argument";
    case TOK_ECONFLICT:
        return "device holds a different token";
    default:
        return "unknown token store error";
    }
}

/* ---- reading records as stored (heraldctl) ---- */

typedef struct read_op {
    union {
        tok_entries_cb entries;
        tok_scan_cb scan;
        tok_count_cb count;
    } cb;
    void *arg;
    int status;      /* for deferred failures */
    size_t head_len; /* scan: strlen("<p>dev:{") */
    size_t tail_len; /* scan: strlen("}") */
    char user[TOK_USER_MAX + 1];
    char device[TOK_DEVICE_MAX + 1]; /* "" for every device of the user */
} read_op_t;

static rstore_t *redis_store(tok_store_t *base)
{
    if (base == NULL || base->ops != &redis_ops) {
        fprintf(stderr, "tokens: record readers need the Redis store\n");
        abort();
    }
    return (rstore_t *)base;
}

static void fill_entry(tok_entry_t *e, const char *user, const char *dev, const char *js, size_t jl)
{
    e->user_id = user;
    e->device_id = dev ? dev : "";
    e->raw = js ? js : "";
    e->raw_len = js ? jl : 0;
    if (js == NULL) {
        e->corrupt = true;
        snprintf(e->err, sizeof e->err, "not a string");
    } else if (tok_record_parse(js, jl, &e->rec, e->err, sizeof e->err) != 0) {
        e->corrupt = true;
    }
}

static void on_read_failed(void *arg)
{
    read_op_t *op = arg;
    op->cb.entries(op->status, NULL, 0, op->arg);
    free(op);
}

static void on_read(int status, const db_reply_t *r, void *arg)
{
    read_op_t *op = arg;
    int rc = check_reply(status, r, "read");
    if (rc != 0) {
        op->cb.entries(rc, NULL, 0, op->arg);
        free(op);
        return;
    }
    size_t n = 0, jl = 0;
    tok_entry_t *es = NULL;
    if (op->device[0] && db_reply_type(r) == DB_REPLY_STRING) {
        es = xcalloc(1, sizeof *es);
        const char *js = db_reply_str(r, &jl);
        fill_entry(&es[n++], op->user, op->device, js, jl);
    } else if (!op->device[0] && db_reply_type(r) == DB_REPLY_ARRAY) {
        size_t pairs = db_reply_len(r) / 2;
        es = xcalloc(pairs ? pairs : 1, sizeof *es);
        for (; n < pairs; n++) {
            const char *js = db_reply_str(db_reply_elem(r, 2 * n + 1), &jl);
            fill_entry(&es[n], op->user, db_reply_str(db_reply_elem(r, 2 * n), NULL), js, jl);
        }
    }
    op->cb.entries(TOK_OK, es, n, op->arg);
    free(es);
    free(op);
}

void tok_store_read(tok_store_t *base, const char *user_id, const char *device_id,
                    tok_entries_cb cb, void *arg)
{
    rstore_t *s = redis_store(base);
    read_op_t *op = xcalloc(1, sizeof *op);
    op->cb.entries = cb;
    op->arg = arg;
    if (!valid_str(user_id, tok_valid_user) ||
        (device_id && !valid_str(device_id, tok_valid_device))) {
        op->status = TOK_EINVAL;
        db_defer(s->db, on_read_failed, op);
        return;
    }
    snprintf(op->user, sizeof op->user, "%s", user_id);
    snprintf(op->device, sizeof op->device, "%s", device_id ? device_id : "");
    char dkey[KEY_MAX];
    key_dev(dkey, s->prefix, user_id);
    if (device_id)
        db_cmd(s->db, on_read, op, "HGET", dkey, device_id, NULL);
    else
        db_cmd(s->db, on_read, op, "HGETALL", dkey, NULL);
}

/* The user id of a device hash key "<p>dev:{<user>}" (new string). */
static char *user_of_key(const char *hk, size_t len, size_t head_len, size_t tail_len)
{
    if (hk == NULL || len < head_len + tail_len)
        return xstrdup("");
    return xstrndup(hk + head_len, len - head_len - tail_len);
}

static void on_scan(int status, const db_reply_t *r, void *arg)
{
    read_op_t *op = arg;
    int rc = check_reply(status, r, "scan");
    const db_reply_t *cur = NULL, *flat = NULL;
    if (rc == 0 && (db_reply_type(r) != DB_REPLY_ARRAY || db_reply_len(r) != 2 ||
                    db_reply_type(cur = db_reply_elem(r, 0)) != DB_REPLY_STRING ||
                    db_reply_type(flat = db_reply_elem(r, 1)) != DB_REPLY_ARRAY))
        rc = TOK_ECORRUPT;
    if (rc != 0) {
        op->cb.scan(rc, NULL, 0, NULL, op->arg);
        free(op);
        return;
    }
    size_t n = db_reply_len(flat) / 3;
    tok_entry_t *es = xcalloc(n ? n : 1, sizeof *es);
    char **users = xcalloc(n ? n : 1, sizeof *users);
    for (size_t i = 0; i < n; i++) {
        size_t hl = 0, jl = 0;
        const char *hk = db_reply_str(db_reply_elem(flat, 3 * i), &hl);
        const char *js = db_reply_str(db_reply_elem(flat, 3 * i + 2), &jl);
        users[i] = user_of_key(hk, hl, op->head_len, op->tail_len);
        fill_entry(&es[i], users[i], db_reply_str(db_reply_elem(flat, 3 * i + 1), NULL), js, jl);
    }
    op->cb.scan(TOK_OK, es, n, db_reply_str(cur, NULL), op->arg);
    for (size_t i = 0; i < n; i++)
        free(users[i]);
    free(users);
    free(es);
    free(op);
}

void tok_store_scan(tok_store_t *base, const char *cursor, long count, tok_scan_cb cb, void *arg)
{
    rstore_t *s = redis_store(base);
    if (s->s_scan_records == NULL)
        s->s_scan_records = db_script(s->db, lua_scan_records);
    read_op_t *op = xcalloc(1, sizeof *op);
    op->cb.scan = cb;
    op->arg = arg;
    char head[KEY_MAX], match[2 * KEY_MAX + 8], cnt[24];
    op->head_len = key_head(head, s->prefix, KEY_DEV);
    op->tail_len = strlen(key_tail(KEY_DEV));
    tok_lc_glob_escape(head, match, sizeof match - 8);
    strcat(match, "*");
    strcat(match, key_tail(KEY_DEV));
    snprintf(cnt, sizeof cnt, "%ld", count > 0 ? count : 100);
    const char *argv[] = {cursor, match, cnt};
    db_eval(s->db, s->s_scan_records, on_scan, op, 0, 3, argv, NULL);
}

static void on_count(int status, const db_reply_t *r, void *arg)
{
    read_op_t *op = arg;
    int rc = check_reply(status, r, "count");
    if (rc == 0 && db_reply_type(r) != DB_REPLY_INTEGER)
        rc = TOK_ECORRUPT;
    op->cb.count(rc, rc == 0 ? db_reply_int(r) : 0, op->arg);
    free(op);
}

void tok_store_count_expiring(tok_store_t *base, int64_t max_expires_s, tok_count_cb cb, void *arg)
{
    rstore_t *s = redis_store(base);
    read_op_t *op = xcalloc(1, sizeof *op);
    op->cb.count = cb;
    op->arg = arg;
    char ekey[KEY_MAX], max[24] = "+inf";
    key_expiry(ekey, s->prefix);
    if (max_expires_s != INT64_MAX)
        snprintf(max, sizeof max, "%" PRId64, max_expires_s);
    db_cmd(s->db, on_count, op, "ZCOUNT", ekey, "-inf", max, NULL);
}
