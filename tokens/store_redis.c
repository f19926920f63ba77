/* store_redis.c - the Redis-backed token store (tokens/store.h) on the shared db client.
 *
 * Layout (DESIGN.md "Redis layout"; keys built by db/keys.h, <p> is the configurable prefix):
 *   <p>dev:{<userId>}             HASH  deviceId -> compact JSON record (API field names)
 *   <p>rl:u:{<userId>}            STRING the user's rate limit (GCRA)
 *   <p>owner:{t<k>}:<token>       STRING "userId\x1fdeviceId": who holds a push token
 *   <p>expiry:{t<k>}              ZSET  "userId\x1fdeviceId" scored by expiresAt
 * The user's keys share the user's hash slot, a token's keys the slot of its bucket k.
 *
 * A registration is a user-slot part (rate limit, device limit, the record) and a token-slot
 * part (owner key, expiry entry), written once in tokens/lua/ and composed into one script
 * (register.lua: one round trip) or, with tok_store_redis_split(), run as one script per slot in
 * the order DESIGN.md "Reassignment across slots" gives. The record JSON is built here
 * (tok_record_json), so the scripts never decode and re-encode it; only registeredAt is kept from
 * the stored record. The scripts take `now` from the store's clock (so tests can use a fake one).
 *
 * Reply handlers never touch the store: an operation carries what it needs, so destroying the
 * store with commands in flight is safe (their callbacks still fire once, from the db). */
#include "tokens/store.h"

#include "core/buf.h"
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
    char token_parts[KEY_PARTS_MAX], dev_head[KEY_MAX]; /* key parts the scripts build keys from */
    const clk_t *clk;
    long max_devices;
    bool split; /* one script per hash slot */
    buf_t json; /* the record being registered (db copies arguments before returning) */
    db_script_t *s_register, *s_reg_user, *s_reg_token, *s_unbind;
    db_script_t *s_deactivate, *s_list, *s_purge;
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
    int status;            /* for deferred failures */
    tok_rl_key_t *verdict; /* the quota's, or NULL */
    long burst;
    char user[TOK_USER_MAX + 1];
} op_t;

/* A registration in flight: the record as it will be stored, and for the split steps the keys
 * and the token slots still to visit. */
typedef struct reg_op {
    op_t op; /* first: freed as an op_t */
    tok_reg_result_t res;
    db_t *db;
    db_script_t *s_reg_token, *s_unbind, *s_deactivate;
    char prefix[KEY_PREFIX_MAX + 1];
    char member[TOK_USER_MAX + TOK_DEVICE_MAX + 2];
    char okey[KEY_MAX], ekey[KEY_MAX], exp[24], now_s[24], now_ms[24];
    char **unbind; /* token, member pairs */
    size_t nunbind, next;
    bool bound; /* the owner key names us */
} reg_op_t;

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
    if (op->kind == OP_REG) {
        reg_op_t *ro = (reg_op_t *)op;
        for (size_t i = 0; i < ro->nunbind; i++)
            free(ro->unbind[i]);
        free(ro->unbind);
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

/* Starts op (of size bytes, zeroed) as a call of this kind when its arguments are valid;
 * otherwise the callback gets TOK_EINVAL (deferred, never inside the call) and NULL is returned.
 * The quota's verdict is filled in from the reply. */
static op_t *op_start_sized(rstore_t *s, size_t size, op_kind_t kind, op_cb_t cb, void *arg,
                            bool valid, const tok_quota_t *q)
{
    op_t *op = xcalloc(1, size);
    op->kind = kind;
    op->cb = cb;
    op->arg = arg;
    if (q && q->rate > 0 && q->burst > 0) {
        op->verdict = q->verdict;
        op->burst = q->burst;
    }
    if (!valid) {
        defer_fail(s, op, TOK_EINVAL);
        return NULL;
    }
    return op;
}

static op_t *op_start(rstore_t *s, op_kind_t kind, op_cb_t cb, void *arg, bool valid)
{
    return op_start_sized(s, sizeof(op_t), kind, cb, arg, valid, NULL);
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

/* The script codes of the user-slot scripts, as store statuses. */
static int code_status(long long code)
{
    switch (code) {
    case 0:
        return TOK_OK;
    case TOK_ENOTFOUND:
    case TOK_ELIMIT:
    case TOK_ECORRUPT:
    case TOK_ECONFLICT:
    case TOK_ELIMITED:
        return (int)code;
    default:
        return TOK_ECORRUPT;
    }
}

/* The head every user-slot script answers with: {code, limit ok, remaining, reset ms, retry ms}.
 * Fills the quota's verdict; returns the status, or TOK_EUNAVAIL / TOK_ECORRUPT for a reply that
 * is unusable or not of at least min elements (on success). */
static int reply_head(int status, const db_reply_t *r, const char *what, op_t *op, size_t min)
{
    int rc = check_reply(status, r, what);
    if (rc != 0)
        return rc;
    if (db_reply_type(r) != DB_REPLY_ARRAY || db_reply_len(r) < 5)
        return TOK_ECORRUPT;
    if (op->verdict) {
        tok_rl_key_t *v = op->verdict;
        v->ok = db_reply_int(db_reply_elem(r, 1)) == 1;
        v->remaining = db_reply_int(db_reply_elem(r, 2));
        v->reset_ms = db_reply_int(db_reply_elem(r, 3));
        v->retry_ms = db_reply_int(db_reply_elem(r, 4));
        v->burst = op->burst;
        v->which = "user";
    }
    rc = code_status(db_reply_int(db_reply_elem(r, 0)));
    if (rc == TOK_OK && db_reply_len(r) < min)
        return TOK_ECORRUPT;
    return rc;
}

static void quota_args(const tok_quota_t *q, char rate[24], char burst[24])
{
    bool on = q && q->rate > 0 && q->burst > 0;
    snprintf(rate, 24, "%ld", on ? q->rate : 0L);
    snprintf(burst, 24, "%ld", on ? q->burst : 0L);
}

/* now in unix seconds, as ISO-8601 and (msecs != NULL) in unix milliseconds. */
static void now_args(const rstore_t *s, char *secs, size_t secslen, char *iso, size_t isolen,
                     char msecs[24])
{
    int64_t ms = s->clk->wall_ms(s->clk->arg);
    snprintf(secs, secslen, "%" PRId64, ms / 1000);
    clk_iso8601_ms(ms, iso, isolen);
    if (msecs)
        snprintf(msecs, 24, "%" PRId64, ms);
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

static void reg_done(reg_op_t *ro, int rc)
{
    ro->res.reassigned = ro->res.prev_user_id[0] != '\0';
    op_answer(&ro->op, rc, rc == TOK_OK ? &ro->res : NULL, 0);
}

/* created and registeredAt, elements 5 and 6 of both registration scripts' replies. */
static int reg_user_result(const db_reply_t *r, reg_op_t *ro)
{
    ro->res.created = db_reply_int(db_reply_elem(r, 5)) == 1;
    if (copy_str(db_reply_elem(r, 6), ro->res.record.registered_at,
                 sizeof ro->res.record.registered_at) != 0)
        return TOK_ECORRUPT;
    return 0;
}

static void on_register(int status, const db_reply_t *r, void *arg)
{
    reg_op_t *ro = arg;
    int rc = reply_head(status, r, "register", &ro->op, 9);
    if (rc == TOK_OK &&
        (reg_user_result(r, ro) != 0 ||
         copy_str(db_reply_elem(r, 7), ro->res.prev_user_id, sizeof ro->res.prev_user_id) != 0 ||
         copy_str(db_reply_elem(r, 8), ro->res.prev_device_id, sizeof ro->res.prev_device_id) != 0))
        rc = TOK_ECORRUPT;
    reg_done(ro, rc);
}

/* ---- register, one script per slot ----
 * user slot (register_user.lua) -> each token slot it let go (unbind_token.lua) -> the token's
 * owner key (GET) -> the holder's user slot (deactivate.lua, reason "reassigned") -> the token's
 * slot (register_token.lua) -> a holder that bound the token meanwhile, deactivated the same way.
 * The owner key moves last: until then the holder keeps it (and its record, until its
 * deactivation, its sends), so every crash point leaves one owner; a failure after the first
 * step answers TOK_EUNAVAIL, and the client's retry finds the same holder and completes the
 * steps (DESIGN.md "Reassignment across slots"). */

static void reg_step(reg_op_t *ro);
static void reg_bind(reg_op_t *ro);

/* After a holder: bind the token, or, once bound, answer. */
static void reg_next(reg_op_t *ro)
{
    if (ro->bound)
        reg_done(ro, TOK_OK);
    else
        reg_bind(ro);
}

static void on_holder(int status, const db_reply_t *r, void *arg)
{
    reg_op_t *ro = arg;
    op_t probe = {0}; /* the holder's deactivation charges no quota */
    int rc = reply_head(status, r, "register", &probe, 5);
    if (rc == TOK_EUNAVAIL) {
        reg_done(ro, rc);
        return;
    }
    if (rc != TOK_OK) /* gone, or holds another token now: nothing was taken from it */
        ro->res.prev_user_id[0] = ro->res.prev_device_id[0] = '\0';
    reg_next(ro);
}

/* The holder prev ("user\x1fdevice" of n bytes, from the owner key) loses the token unless it is
 * us or the one already done; then the steps go on. */
static void reg_take(reg_op_t *ro, const char *prev, size_t n)
{
    const char *sep = prev ? memchr(prev, TOK_SEP, n) : NULL;
    size_t ul = sep ? (size_t)(sep - prev) : 0;
    char user[TOK_USER_MAX + 1], dev[TOK_DEVICE_MAX + 1];
    if (sep == NULL || ul == 0 || ul > TOK_USER_MAX || n - ul - 1 > TOK_DEVICE_MAX ||
        n - ul - 1 == 0) {
        reg_next(ro);
        return;
    }
    memcpy(user, prev, ul);
    user[ul] = '\0';
    memcpy(dev, sep + 1, n - ul - 1);
    dev[n - ul - 1] = '\0';
    bool us =
        strcmp(user, ro->res.record.user_id) == 0 && strcmp(dev, ro->res.record.device_id) == 0;
    bool done = strcmp(user, ro->res.prev_user_id) == 0 && strcmp(dev, ro->res.prev_device_id) == 0;
    if (us || done) {
        reg_next(ro);
        return;
    }
    snprintf(ro->res.prev_user_id, sizeof ro->res.prev_user_id, "%s", user);
    snprintf(ro->res.prev_device_id, sizeof ro->res.prev_device_id, "%s", dev);
    char dkey[KEY_MAX], rkey[KEY_MAX];
    key_dev(dkey, ro->prefix, user);
    key_rl_user(rkey, ro->prefix, user);
    /* No quota: the holder's deactivation is part of this request, not one of its own. */
    const char *argv[] = {dkey,
                          rkey,
                          dev,
                          "reassigned",
                          ro->now_s,
                          ro->res.record.updated_at,
                          ro->res.record.token,
                          "0",
                          "0",
                          ro->now_ms};
    db_eval(ro->db, ro->s_deactivate, on_holder, ro, 2, 10, argv, NULL);
}

static void on_reg_token(int status, const db_reply_t *r, void *arg)
{
    reg_op_t *ro = arg;
    int rc = check_reply(status, r, "register");
    size_t n = 0;
    const char *prev = rc == 0 ? db_reply_str(r, &n) : NULL;
    ro->bound = true;
    if (rc != 0)
        reg_done(ro, rc);
    else
        reg_take(ro, prev, n);
}

static void reg_bind(reg_op_t *ro)
{
    const char *argv[] = {ro->okey, ro->ekey, ro->member, ro->exp};
    db_eval(ro->db, ro->s_reg_token, on_reg_token, ro, 2, 4, argv, NULL);
}

static void on_reg_owner(int status, const db_reply_t *r, void *arg)
{
    reg_op_t *ro = arg;
    int rc = check_reply(status, r, "register");
    size_t n = 0;
    const char *owner = rc == 0 && db_reply_type(r) == DB_REPLY_STRING ? db_reply_str(r, &n) : NULL;
    if (rc != 0)
        reg_done(ro, rc);
    else
        reg_take(ro, owner, n);
}

static void on_unbound(int status, const db_reply_t *r, void *arg)
{
    reg_op_t *ro = arg;
    int rc = check_reply(status, r, "register");
    if (rc != 0)
        reg_done(ro, rc);
    else
        reg_step(ro);
}

/* The next token slot the user slot let go, then the registered token's owner key. */
static void reg_step(reg_op_t *ro)
{
    if (ro->next < ro->nunbind) {
        char okey[KEY_MAX], ekey[KEY_MAX];
        const char *tok = ro->unbind[ro->next], *member = ro->unbind[ro->next + 1];
        ro->next += 2;
        key_owner(okey, ro->prefix, tok);
        key_expiry(ekey, ro->prefix, key_token_bucket(tok));
        const char *argv[] = {okey, ekey, member};
        db_eval(ro->db, ro->s_unbind, on_unbound, ro, 2, 3, argv, NULL);
        return;
    }
    db_cmd(ro->db, on_reg_owner, ro, "GET", ro->okey, NULL);
}

/* The token, member pairs of element 7; -1 when they are not well formed. */
static int reg_unbind_list(const db_reply_t *r, reg_op_t *ro)
{
    const db_reply_t *l = db_reply_elem(r, 7);
    size_t n = db_reply_type(l) == DB_REPLY_ARRAY ? db_reply_len(l) : 1;
    if (n % 2 != 0)
        return -1;
    ro->unbind = xcalloc(n ? n : 1, sizeof *ro->unbind);
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *v = db_reply_str(db_reply_elem(l, i), &len);
        if (v == NULL || len == 0 || (i % 2 == 0 && (len > TOK_TOKEN_MAX || memchr(v, 0, len))))
            return -1;
        ro->unbind[ro->nunbind++] = xstrndup(v, len);
    }
    return 0;
}

static void on_reg_user(int status, const db_reply_t *r, void *arg)
{
    reg_op_t *ro = arg;
    int rc = reply_head(status, r, "register", &ro->op, 8);
    if (rc == TOK_OK && (reg_user_result(r, ro) != 0 || reg_unbind_list(r, ro) != 0))
        rc = TOK_ECORRUPT;
    if (rc != TOK_OK)
        reg_done(ro, rc);
    else
        reg_step(ro);
}

static bool reg_valid(const tok_reg_req_t *req)
{
    return valid_str(req->user_id, tok_valid_user) && !strchr(req->user_id, TOK_SEP) &&
           valid_str(req->device_id, tok_valid_device) && valid_str(req->token, tok_valid_token) &&
           req->ttl_days >= 1 && req->ttl_days <= 36500 &&
           !(req->locale && *req->locale &&
             tok_valid_locale(req->locale, strlen(req->locale), NULL) != 0);
}

/* The record as it will be stored, registeredAt aside (the script keeps the stored one). */
static void reg_record(rstore_t *s, reg_op_t *ro, const tok_reg_req_t *req)
{
    tok_record_t *rec = &ro->res.record;
    int64_t ms = s->clk->wall_ms(s->clk->arg);
    snprintf(rec->user_id, sizeof rec->user_id, "%s", req->user_id);
    snprintf(rec->device_id, sizeof rec->device_id, "%s", req->device_id);
    snprintf(rec->token, sizeof rec->token, "%s", req->token);
    snprintf(rec->locale, sizeof rec->locale, "%s", req->locale ? req->locale : "");
    rec->platform = req->platform;
    rec->active = true;
    rec->expires_at = ms / 1000 + req->ttl_days * 86400L;
    clk_iso8601_ms(ms, rec->updated_at, sizeof rec->updated_at);
    snprintf(ro->now_s, sizeof ro->now_s, "%" PRId64, ms / 1000);
    snprintf(ro->now_ms, sizeof ro->now_ms, "%" PRId64, ms);
    snprintf(ro->exp, sizeof ro->exp, "%" PRId64, rec->expires_at);
    snprintf(ro->member, sizeof ro->member, "%s%c%s", req->user_id, TOK_SEP, req->device_id);
    snprintf(ro->prefix, sizeof ro->prefix, "%s", s->prefix);
    key_owner(ro->okey, s->prefix, req->token);
    key_expiry(ro->ekey, s->prefix, key_token_bucket(req->token));
    ro->db = s->db;
    ro->s_reg_token = s->s_reg_token;
    ro->s_unbind = s->s_unbind;
    ro->s_deactivate = s->s_deactivate;
}

#define REG_ARGS 18 /* four keys, then register_user_part.lua's register_ctx arguments */

static void st_register(tok_store_t *base, const tok_reg_req_t *req, tok_reg_cb cb, void *arg)
{
    rstore_t *s = (rstore_t *)base;
    reg_op_t *ro = (reg_op_t *)op_start_sized(s, sizeof(reg_op_t), OP_REG, (op_cb_t){.reg = cb},
                                              arg, reg_valid(req), req->quota);
    if (ro == NULL)
        return;
    reg_record(s, ro, req);
    /* The JSON around an empty registeredAt: its one '"registeredAt":"' is where it goes. */
    buf_reset(&s->json);
    tok_record_json(&ro->res.record, &s->json);
    const char *js = buf_cstr(&s->json), *at = strstr(js, "\"registeredAt\":\"") + 16;
    char dkey[KEY_MAX], rkey[KEY_MAX], rate[24], burst[24], max[24];
    key_dev(dkey, s->prefix, req->user_id);
    key_rl_user(rkey, s->prefix, req->user_id);
    quota_args(req->quota, rate, burst);
    snprintf(max, sizeof max, "%ld", s->max_devices);
    /* The token slot's keys first: the user slot's script takes what follows them. */
    const char *argv[REG_ARGS] = {ro->okey,
                                  ro->ekey,
                                  dkey,
                                  rkey,
                                  req->user_id,
                                  req->device_id,
                                  req->token,
                                  rate,
                                  burst,
                                  ro->now_ms,
                                  ro->res.record.updated_at,
                                  ro->exp,
                                  max,
                                  js,
                                  at,
                                  s->token_parts,
                                  s->dev_head,
                                  key_tail(KEY_DEV)};
    size_t lens[REG_ARGS];
    for (size_t i = 0; i < REG_ARGS; i++)
        lens[i] = strlen(argv[i]);
    lens[13] = (size_t)(at - js);
    if (s->split)
        db_eval(s->db, s->s_reg_user, on_reg_user, ro, 2, REG_ARGS - 2, argv + 2, lens + 2);
    else
        db_eval(s->db, s->s_register, on_register, ro, 4, REG_ARGS, argv, lens);
}

/* ---- deactivate and purge ---- */

static void on_deactivated(int status, const db_reply_t *r, void *arg)
{
    op_t *op = arg;
    op_answer(op, reply_head(status, r, "deactivate", op, 5), NULL, 0);
}

static void deactivate(rstore_t *s, const char *user_id, const char *device_id, const char *reason,
                       const char *only_if_token, const tok_quota_t *q, tok_done_cb cb, void *arg)
{
    bool valid = valid_str(user_id, tok_valid_user) && valid_str(device_id, tok_valid_device) &&
                 reason != NULL && *reason && strlen(reason) < TOK_REASON_MAX;
    op_t *op = op_start_sized(s, sizeof(op_t), OP_DONE, (op_cb_t){.done = cb}, arg, valid, q);
    if (op == NULL)
        return;
    char dkey[KEY_MAX], rkey[KEY_MAX], secs[24], iso[TOK_TIME_MAX], rate[24], burst[24], ms[24];
    key_dev(dkey, s->prefix, user_id);
    key_rl_user(rkey, s->prefix, user_id);
    now_args(s, secs, sizeof secs, iso, sizeof iso, ms);
    quota_args(q, rate, burst);
    const char *argv[] = {
        dkey, rkey,  device_id, reason, secs, iso, only_if_token ? only_if_token : "",
        rate, burst, ms};
    db_eval(s->db, s->s_deactivate, on_deactivated, op, 2, 10, argv, NULL);
}

static void st_deactivate(tok_store_t *base, const char *user_id, const char *device_id,
                          const char *reason, const char *only_if_token, tok_done_cb cb, void *arg)
{
    deactivate((rstore_t *)base, user_id, device_id, reason, only_if_token, NULL, cb, arg);
}

static void st_deactivate_limited(tok_store_t *base, const char *user_id, const char *device_id,
                                  const tok_quota_t *q, tok_done_cb cb, void *arg)
{
    deactivate((rstore_t *)base, user_id, device_id, "user", NULL, q, cb, arg);
}

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

static void st_purge(tok_store_t *base, const char *user_id, const char *device_id, tok_done_cb cb,
                     void *arg)
{
    rstore_t *s = (rstore_t *)base;
    bool valid = valid_str(user_id, tok_valid_user) &&
                 (device_id == NULL || valid_str(device_id, tok_valid_device));
    op_t *op = op_start(s, OP_DONE, (op_cb_t){.done = cb}, arg, valid);
    if (op == NULL)
        return;
    char dkey[KEY_MAX];
    key_dev(dkey, s->prefix, user_id);
    const char *argv[] = {dkey, user_id, device_id ? device_id : "", s->token_parts};
    db_eval(s->db, s->s_purge, on_done, op, 1, 4, argv, NULL);
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

/* Answers a list with the HGETALL pairs of a. */
static void list_answer(op_t *op, const db_reply_t *a)
{
    size_t pairs = db_reply_len(a) / 2;
    tok_record_t *recs = pairs ? xcalloc(pairs, sizeof *recs) : NULL;
    size_t n = pairs ? parse_list(a, op->user, recs) : 0;
    if (n < pairs)
        LOG(LOG_LVL_WARN, "token records skipped", LKS("userId", op->user),
            LKI("skipped", pairs - n), LKI("returned", n));
    op_answer(op, TOK_OK, recs, n);
    free(recs);
}

static void on_list(int status, const db_reply_t *r, void *arg)
{
    op_t *op = arg;
    int rc = check_reply(status, r, "list");
    if (rc == 0 && db_reply_type(r) != DB_REPLY_ARRAY)
        rc = TOK_ECORRUPT;
    if (rc != 0)
        op_fail(op, rc);
    else
        list_answer(op, r);
}

static void on_list_limited(int status, const db_reply_t *r, void *arg)
{
    op_t *op = arg;
    int rc = reply_head(status, r, "list", op, 6);
    if (rc == 0 && db_reply_type(db_reply_elem(r, 5)) != DB_REPLY_ARRAY)
        rc = TOK_ECORRUPT;
    if (rc != 0)
        op_fail(op, rc);
    else
        list_answer(op, db_reply_elem(r, 5));
}

static void list(rstore_t *s, const char *user_id, const tok_quota_t *q, tok_list_cb cb, void *arg)
{
    op_t *op = op_start_sized(s, sizeof(op_t), OP_LIST, (op_cb_t){.list = cb}, arg,
                              valid_str(user_id, tok_valid_user), q);
    if (op == NULL)
        return;
    snprintf(op->user, sizeof op->user, "%s", user_id);
    char dkey[KEY_MAX], rkey[KEY_MAX], rate[24], burst[24], ms[24];
    key_dev(dkey, s->prefix, user_id);
    if (q == NULL) {
        db_cmd(s->db, on_list, op, "HGETALL", dkey, NULL);
        return;
    }
    key_rl_user(rkey, s->prefix, user_id);
    quota_args(q, rate, burst);
    snprintf(ms, sizeof ms, "%" PRId64, s->clk->wall_ms(s->clk->arg));
    const char *argv[] = {dkey, rkey, rate, burst, ms};
    db_eval(s->db, s->s_list, on_list_limited, op, 2, 5, argv, NULL);
}

static void st_list(tok_store_t *base, const char *user_id, tok_list_cb cb, void *arg)
{
    list((rstore_t *)base, user_id, NULL, cb, arg);
}

static void st_list_limited(tok_store_t *base, const char *user_id, const tok_quota_t *q,
                            tok_list_cb cb, void *arg)
{
    list((rstore_t *)base, user_id, q, cb, arg);
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
    rstore_t *s = (rstore_t *)base;
    buf_cleanup(&s->json);
    free(s); /* scripts belong to db; in-flight ops do not reference the store */
}

static const tok_store_ops_t redis_ops = {
    .register_device = st_register,
    .deactivate = st_deactivate,
    .purge = st_purge,
    .list = st_list,
    .find_owner = st_find_owner,
    .ready = st_ready,
    .destroy = st_destroy,
    .deactivate_limited = st_deactivate_limited,
    .list_limited = st_list_limited,
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
    key_token_parts(s->token_parts, prefix);
    key_head(s->dev_head, prefix, KEY_DEV);
    s->clk = clock ? clock : clk_system();
    s->max_devices = max_devices;
    s->s_register = db_script(db, lua_register);
    s->s_reg_user = db_script(db, lua_register_user);
    s->s_reg_token = db_script(db, lua_register_token);
    s->s_unbind = db_script(db, lua_unbind_token);
    s->s_deactivate = db_script(db, lua_deactivate);
    s->s_list = db_script(db, lua_list);
    s->s_purge = db_script(db, lua_delete_devices);
    return &s->base;
}

void tok_store_redis_split(tok_store_t *base, bool split)
{
    ((rstore_t *)base)->split = split;
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
    case TOK_ELIMITED:
        return "rate limit exceeded";
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
    size_t master;   /* scan: the master the SCAN step ran on (tok_lc_cursor_node) */
    db_t *db;        /* scan */
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
    char next[TOK_LC_CURSOR_MAX];
    tok_lc_cursor_next(op->db, op->master, db_reply_str(cur, NULL), next);
    op->cb.scan(TOK_OK, es, n, next, op->arg);
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
    const char *node_cursor;
    op->master = tok_lc_cursor_node(cursor, &node_cursor);
    op->db = s->db;
    const char *argv[] = {node_cursor, match, cnt};
    db_eval_at(s->db, op->master, s->s_scan_records, on_scan, op, 0, 3, argv, NULL);
}

/* A count over every expiry bucket: one ZCOUNT each, summed as they answer. */
typedef struct count_op {
    tok_count_cb cb;
    void *arg;
    int status;
    unsigned pending;
    long long sum;
} count_op_t;

static void on_count(int status, const db_reply_t *r, void *arg)
{
    count_op_t *op = arg;
    int rc = check_reply(status, r, "count");
    if (rc == 0 && db_reply_type(r) != DB_REPLY_INTEGER)
        rc = TOK_ECORRUPT;
    if (rc != 0 && op->status == 0)
        op->status = rc;
    if (rc == 0)
        op->sum += db_reply_int(r);
    if (--op->pending > 0)
        return;
    op->cb(op->status, op->status == 0 ? op->sum : 0, op->arg);
    free(op);
}

void tok_store_count_expiring(tok_store_t *base, int64_t max_expires_s, tok_count_cb cb, void *arg)
{
    rstore_t *s = redis_store(base);
    count_op_t *op = xcalloc(1, sizeof *op);
    op->cb = cb;
    op->arg = arg;
    op->pending = KEY_TOKEN_BUCKETS;
    char ekey[KEY_MAX], max[24] = "+inf";
    if (max_expires_s != INT64_MAX)
        snprintf(max, sizeof max, "%" PRId64, max_expires_s);
    for (unsigned b = 0; b < KEY_TOKEN_BUCKETS; b++) {
        key_expiry(ekey, s->prefix, b);
        db_cmd(s->db, on_count, op, "ZCOUNT", ekey, "-inf", max, NULL);
    }
}
