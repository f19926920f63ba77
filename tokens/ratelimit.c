/* ratelimit.c - per-user and per-IP request limits (GCRA): the Redis check of one or two keys
 * (tok_rl_check: one script call charges both atomically on the server's clock), the in-process
 * per-IP table, and the math in C.
 *
 * The math, per key, with T = ceil(1000 / rate) ms (the emission interval; rates above 1000/s act
 * as 1000/s and rates that do not divide 1000 round down slightly, e.g. 3/s -> 334 ms) and the
 * stored theoretical arrival time TAT (ms, absent = 0):
 *
 *   tat  = max(TAT, now)
 *   used = tat + T - now            how far ahead of now the bucket would be after this request
 *   allowed when used <= T * burst  (so `burst` requests pass at once on a fresh key)
 *   on success TAT = tat + T, expiring after `used` ms: by then it is back to "fresh"
 *   remaining = floor((T * burst - used) / T), reset = used (ms until full again)
 *   refused: retry after used - T * burst ms, reset = tat - now
 *
 * Both keys are evaluated first and written only when both allow, so a refusal charges nothing.
 * tok_gcra() below is the same arithmetic in C for the unit tests and the in-process table; the
 * script is tokens/lua/gcra.lua. */
#include "tokens/ratelimit.h"

#include "core/xalloc.h"
#include "db/db.h"
#include "db/keys.h"
#include "tokens/lua_ratelimit.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tok_rl {
    db_t *db;
    char prefix[KEY_PREFIX_MAX + 1];
    db_script_t *script;
};

typedef struct rl_op {
    tok_rl_cb cb;
    void *arg;
    int nkeys;
    long burst[2];
    const char *which[2];
} rl_op_t;

static long ceil_s(long long ms)
{
    return ms <= 0 ? 0 : (long)((ms + 999) / 1000);
}

static long long interval_ms(long rate)
{
    return (1000 + rate - 1) / rate;
}

/* Combines the verdicts: the refusing key (the first, user before ip) or else the tightest one. */
void tok_rl_combine(const tok_rl_key_t *k, int n, tok_rl_result_t *out)
{
    memset(out, 0, sizeof *out);
    out->allowed = true;
    const tok_rl_key_t *pick = NULL;
    long long retry = 0;
    for (int i = 0; i < n; i++) {
        if (!k[i].ok) {
            if (out->allowed)
                pick = &k[i];
            out->allowed = false;
            if (k[i].retry_ms > retry)
                retry = k[i].retry_ms;
        } else if (out->allowed &&
                   (pick == NULL || k[i].remaining < pick->remaining ||
                    (k[i].remaining == pick->remaining && k[i].reset_ms > pick->reset_ms))) {
            pick = &k[i];
        }
    }
    if (pick == NULL)
        return; /* no key to limit */
    out->which = out->allowed ? NULL : pick->which;
    out->limit = pick->burst;
    out->remaining = (long)pick->remaining;
    out->reset_s = ceil_s(pick->reset_ms);
    out->retry_after_s = out->allowed ? 0 : (ceil_s(retry) < 1 ? 1 : ceil_s(retry));
}

/* ---- the C twin of the script ---- */

static tok_rl_key_t gcra_key(int64_t *tat_ms, int64_t now_ms, long rate, long burst)
{
    tok_rl_key_t k = {.burst = burst};
    long long t = interval_ms(rate), limit = t * burst;
    int64_t tat = *tat_ms > now_ms ? *tat_ms : now_ms;
    long long used = tat + t - now_ms;
    k.ok = used <= limit;
    if (k.ok) {
        *tat_ms = tat + t;
        k.remaining = (limit - used) / t;
        k.reset_ms = used;
    } else {
        k.reset_ms = tat - now_ms;
        k.retry_ms = used - limit;
    }
    return k;
}

void tok_gcra(int64_t *tat_ms, int64_t now_ms, long rate, long burst, tok_rl_result_t *out)
{
    if (rate <= 0 || burst <= 0) {
        tok_rl_combine(NULL, 0, out);
        return;
    }
    tok_rl_key_t k = gcra_key(tat_ms, now_ms, rate, burst);
    k.which = "user";
    tok_rl_combine(&k, 1, out);
}

/* s, or its first max bytes copied into buf: an id longer than its key family allows shares the
 * bucket of its first max bytes (the API's ids never are; this keeps a raw caller from aborting
 * in db/keys.c). */
static const char *bounded(const char *s, size_t max, char *buf)
{
    if (strlen(s) <= max)
        return s;
    memcpy(buf, s, max);
    buf[max] = '\0';
    return buf;
}

/* ---- in process ---- */

#define LOCAL_PROBE 8 /* slots looked at per key: the table never walks further */

typedef struct local_slot {
    char key[KEY_IP_MAX + 1]; /* "" when free */
    int64_t tat_ms;
} local_slot_t;

struct tok_rl_local {
    local_slot_t *slots;
    size_t mask;
};

tok_rl_local_t *tok_rl_local_create(size_t capacity)
{
    size_t n = LOCAL_PROBE;
    while (n < capacity)
        n <<= 1;
    tok_rl_local_t *l = xcalloc(1, sizeof *l);
    l->slots = xcalloc(n, sizeof *l->slots);
    l->mask = n - 1;
    return l;
}

void tok_rl_local_destroy(tok_rl_local_t *l)
{
    if (l == NULL)
        return;
    free(l->slots);
    free(l);
}

static size_t local_hash(const char *key)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

/* The slot of key: its own, else a free or fresh one, else the one nearest to fresh (taken
 * over). With create false, NULL when key has none. */
static local_slot_t *local_slot(tok_rl_local_t *l, const char *key, int64_t now_ms, bool create)
{
    size_t h = local_hash(key);
    local_slot_t *pick = NULL;
    bool pick_fresh = false;
    for (size_t i = 0; i < LOCAL_PROBE; i++) {
        local_slot_t *s = &l->slots[(h + i) & l->mask];
        if (strcmp(s->key, key) == 0)
            return s;
        bool fresh = !s->key[0] || s->tat_ms <= now_ms;
        if (pick == NULL || (fresh && !pick_fresh) ||
            (!fresh && !pick_fresh && s->tat_ms < pick->tat_ms)) {
            pick = s;
            pick_fresh = fresh;
        }
    }
    if (!create)
        return NULL;
    snprintf(pick->key, sizeof pick->key, "%s", key);
    pick->tat_ms = 0;
    return pick;
}

tok_rl_key_t tok_rl_local_charge(tok_rl_local_t *l, const char *key, int64_t now_ms, long rate,
                                 long burst)
{
    if (rate <= 0 || burst <= 0)
        return (tok_rl_key_t){.ok = true, .which = "ip", .remaining = LLONG_MAX};
    char cut[KEY_IP_MAX + 1];
    local_slot_t *s = local_slot(l, bounded(key, KEY_IP_MAX, cut), now_ms, true);
    tok_rl_key_t k = gcra_key(&s->tat_ms, now_ms, rate, burst);
    k.which = "ip";
    return k;
}

void tok_rl_local_refund(tok_rl_local_t *l, const char *key, int64_t now_ms, long rate)
{
    char cut[KEY_IP_MAX + 1];
    local_slot_t *s = rate > 0 ? local_slot(l, bounded(key, KEY_IP_MAX, cut), now_ms, false) : NULL;
    if (s && s->tat_ms > now_ms)
        s->tat_ms -= interval_ms(rate);
}

/* ---- Redis ---- */

tok_rl_t *tok_rl_create(struct db *db, const char *prefix)
{
    if (db == NULL || prefix == NULL || strlen(prefix) > KEY_PREFIX_MAX)
        return NULL;
    tok_rl_t *rl = xcalloc(1, sizeof *rl);
    rl->db = db;
    snprintf(rl->prefix, sizeof rl->prefix, "%s", prefix);
    rl->script = db_script(db, lua_ratelimit_check);
    return rl;
}

void tok_rl_destroy(tok_rl_t *rl)
{
    free(rl); /* the script belongs to db; in-flight checks do not reference rl */
}

static int parse_verdicts(const db_reply_t *r, const rl_op_t *op, tok_rl_key_t *k)
{
    if (r == NULL || db_reply_type(r) != DB_REPLY_ARRAY ||
        db_reply_len(r) != 1 + 4 * (size_t)op->nkeys)
        return -1;
    for (int i = 0; i < op->nkeys; i++) {
        size_t b = 1 + 4 * (size_t)i;
        k[i].ok = db_reply_int(db_reply_elem(r, b)) == 1;
        k[i].remaining = db_reply_int(db_reply_elem(r, b + 1));
        k[i].reset_ms = db_reply_int(db_reply_elem(r, b + 2));
        k[i].retry_ms = db_reply_int(db_reply_elem(r, b + 3));
        k[i].burst = op->burst[i];
        k[i].which = op->which[i];
    }
    return 0;
}

static void on_check(int status, const db_reply_t *r, void *arg)
{
    rl_op_t *op = arg;
    tok_rl_key_t k[2];
    tok_rl_result_t res;
    if (status != DB_OK || parse_verdicts(r, op, k) != 0) {
        op->cb(status != DB_OK ? status : DB_EPROTO, NULL, op->arg);
    } else {
        tok_rl_combine(k, op->nkeys, &res);
        op->cb(0, &res, op->arg);
    }
    free(op);
}

static void on_nothing_to_check(void *arg)
{
    rl_op_t *op = arg;
    tok_rl_result_t res;
    tok_rl_combine(NULL, 0, &res);
    op->cb(0, &res, op->arg);
    free(op);
}

/* Adds the bucket whose key was just built into the next key slot: its rate and burst as the
 * script's arguments, and what a refusal by it is reported as. */
static void add_bucket(rl_op_t *op, char nums[][24], long rate, long burst, const char *which)
{
    snprintf(nums[2 * op->nkeys], 24, "%ld", rate);
    snprintf(nums[2 * op->nkeys + 1], 24, "%ld", burst);
    op->burst[op->nkeys] = burst;
    op->which[op->nkeys++] = which;
}

void tok_rl_check(tok_rl_t *rl, const char *user_id, const char *ip, const tok_rl_limits_t *lim,
                  tok_rl_cb cb, void *arg)
{
    rl_op_t *op = xcalloc(1, sizeof *op);
    op->cb = cb;
    op->arg = arg;
    char keys[2][KEY_MAX], nums[4][24], cut_user[KEY_USER_MAX + 1], cut_ip[KEY_IP_MAX + 1];
    const char *argv[6];
    if (user_id && *user_id && lim->user_rate > 0 && lim->user_burst > 0) {
        key_rl_user(keys[op->nkeys], rl->prefix, bounded(user_id, KEY_USER_MAX, cut_user));
        add_bucket(op, nums, lim->user_rate, lim->user_burst, "user");
    }
    if (ip && *ip && lim->ip_rate > 0 && lim->ip_burst > 0) {
        key_rl_ip(keys[op->nkeys], rl->prefix, bounded(ip, KEY_IP_MAX, cut_ip));
        add_bucket(op, nums, lim->ip_rate, lim->ip_burst, "ip");
    }
    if (op->nkeys == 0) {
        db_defer(rl->db, on_nothing_to_check, op);
        return;
    }
    int n = 0;
    for (int i = 0; i < op->nkeys; i++)
        argv[n++] = keys[i];
    for (int i = 0; i < 2 * op->nkeys; i++)
        argv[n++] = nums[i];
    db_eval(rl->db, rl->script, on_check, op, op->nkeys, n, argv, NULL);
}
