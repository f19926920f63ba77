/* lifecycle.c - the Lua scripts that remove expired and long-inactive tokens, count token states
 * and import records, keeping the device hash, the owner index and the expiry index in step
 * (lifecycle.h). heraldctl and the in-daemon sweep both call these; nothing else deletes tokens
 * in bulk. */
#include "tokens/lifecycle.h"

#include "core/xalloc.h"
#include "db/db.h"
#include "tokens/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Shared by the scripts: removing one record and what points at it. `dry` and `items` are
 * globals of the calling script. */
#define LUA_DROP                                                                                   \
    "local function drop(hk, m, d, r, why)\n"                                                      \
    "  if not dry then\n"                                                                          \
    "    if type(r) == 'table' and type(r.expoPushToken) == 'string' then\n"                       \
    "      local okey = prefix .. 'owner:' .. r.expoPushToken\n"                                   \
    "      if redis.call('GET', okey) == m then redis.call('DEL', okey) end\n"                     \
    "    end\n"                                                                                    \
    "    if d then redis.call('HDEL', hk, d) end\n"                                                \
    "    redis.call('ZREM', zkey, m)\n"                                                            \
    "  end\n"                                                                                      \
    "  if want then items[#items + 1] = m .. '\\031' .. why end\n"                                 \
    "end\n"

/* ARGV = prefix, now, offset, limit, dry (0/1), want items (0/1).
 * Returns {examined, expired, stale, rescored, items}. */
static const char LUA_EXPIRE[] =
    "local prefix, now = ARGV[1], tonumber(ARGV[2])\n"
    "local dry, want = ARGV[5] == '1', ARGV[6] == '1'\n"
    "local zkey = prefix .. 'expiry'\n"
    "local items = {}\n" LUA_DROP
    "local ms = redis.call('ZRANGEBYSCORE', zkey, '-inf', ARGV[2], 'LIMIT', ARGV[3], ARGV[4])\n"
    "local expired, stale, fixed = 0, 0, 0\n"
    "for _, m in ipairs(ms) do\n"
    "  local sep = string.find(m, '\\031', 1, true)\n"
    "  local js, hk, d\n"
    "  if sep then\n"
    "    hk = prefix .. 'dev:{' .. string.sub(m, 1, sep - 1) .. '}'\n"
    "    d = string.sub(m, sep + 1)\n"
    "    js = redis.call('HGET', hk, d)\n"
    "  end\n"
    "  if not js then\n"
    "    stale = stale + 1\n"
    "    drop(hk, m, nil, nil, 'stale')\n"
    "  else\n"
    "    local ok, r = pcall(cjson.decode, js)\n"
    "    if not ok or type(r) ~= 'table' then r = nil end\n"
    "    local exp = r and tonumber(r.expiresAt)\n"
    "    if exp and exp > now then\n"
    "      fixed = fixed + 1\n"
    "      if not dry then redis.call('ZADD', zkey, exp, m) end\n"
    "    else\n"
    "      expired = expired + 1\n"
    "      drop(hk, m, d, r, 'expired')\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return {#ms, expired, stale, fixed, items}\n";

/* ARGV = prefix, match pattern, cursor, count, now, inactive cutoff (-1 none), remove expired,
 * dry, want items. Returns {cursor, active, inactive, expired, corrupt, removed expired,
 * removed inactive, items}. Times without deactivatedAt come from updatedAt (ISO-8601 UTC). */
static const char LUA_SCAN[] =
    "local prefix, now, cutoff = ARGV[1], tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local rmexp, dry, want = ARGV[7] == '1', ARGV[8] == '1', ARGV[9] == '1'\n"
    "local zkey = prefix .. 'expiry'\n"
    "local items = {}\n" LUA_DROP "local function days(y, m, d)\n"
    "  if m <= 2 then y = y - 1 end\n"
    "  local era = math.floor(y / 400)\n"
    "  local yoe = y - era * 400\n"
    "  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1\n"
    "  return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy"
    " - 719468\n"
    "end\n"
    "local function epoch(s)\n"
    "  if type(s) ~= 'string' then return nil end\n"
    "  local y, mo, d, h, mi, se = string.match(s,"
    " '^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)')\n"
    "  if not y then return nil end\n"
    "  return days(tonumber(y), tonumber(mo), tonumber(d)) * 86400 + tonumber(h) * 3600"
    " + tonumber(mi) * 60 + tonumber(se)\n"
    "end\n"
    "local sc = redis.call('SCAN', ARGV[3], 'MATCH', ARGV[2], 'COUNT', ARGV[4], 'TYPE', 'hash')\n"
    "local n = {0, 0, 0, 0, 0, 0}\n"
    "local plen = #prefix + 5\n"
    "for _, hk in ipairs(sc[2]) do\n"
    "  local u = string.sub(hk, plen + 1, -2)\n"
    "  local all = redis.call('HGETALL', hk)\n"
    "  for i = 1, #all, 2 do\n"
    "    local d, m = all[i], u .. '\\031' .. all[i]\n"
    "    local ok, r = pcall(cjson.decode, all[i + 1])\n"
    "    if not ok or type(r) ~= 'table' then\n"
    "      n[4] = n[4] + 1\n"
    "    elseif (tonumber(r.expiresAt) or 0) <= now then\n"
    "      if rmexp then n[5] = n[5] + 1; drop(hk, m, d, r, 'expired')\n"
    "      else n[3] = n[3] + 1 end\n"
    "    elseif r.isActive == true then\n"
    "      n[1] = n[1] + 1\n"
    "    else\n"
    "      local at = tonumber(r.deactivatedAt) or epoch(r.updatedAt)\n"
    "      if cutoff >= 0 and at and at < cutoff then n[6] = n[6] + 1; drop(hk, m, d, r,"
    " 'inactive')\n"
    "      else n[2] = n[2] + 1 end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return {sc[1], n[1], n[2], n[3], n[4], n[5], n[6], items}\n";

/* ARGV = prefix, now, then per record: user, device, token, expiresAt, json, active (0/1).
 * Returns {created, updated, unchanged}. */
static const char LUA_IMPORT[] =
    "local prefix, now = ARGV[1], tonumber(ARGV[2])\n"
    "local zkey = prefix .. 'expiry'\n"
    "local c, u2, same = 0, 0, 0\n"
    "for i = 3, #ARGV, 6 do\n"
    "  local u, d, tok, exp, js = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]),"
    " ARGV[i + 4]\n"
    "  local hk, m = prefix .. 'dev:{' .. u .. '}', u .. '\\031' .. d\n"
    "  local old = redis.call('HGET', hk, d)\n"
    "  if old == js then same = same + 1\n"
    "  else\n"
    "    if old then\n"
    "      u2 = u2 + 1\n"
    "      local ok, r = pcall(cjson.decode, old)\n"
    "      if ok and type(r) == 'table' and type(r.expoPushToken) == 'string'"
    " and r.expoPushToken ~= tok then\n"
    "        local ok2 = prefix .. 'owner:' .. r.expoPushToken\n"
    "        if redis.call('GET', ok2) == m then redis.call('DEL', ok2) end\n"
    "      end\n"
    "    else c = c + 1 end\n"
    "    redis.call('HSET', hk, d, js)\n"
    "  end\n"
    "  redis.call('ZADD', zkey, exp, m)\n"
    "  if exp > now then\n"
    "    local okey = prefix .. 'owner:' .. tok\n"
    "    if ARGV[i + 5] == '1' or redis.call('EXISTS', okey) == 0 then\n"
    "      redis.call('SET', okey, m, 'EXAT', exp)\n"
    "    end\n"
    "    if redis.call('EXPIRETIME', hk) < exp then redis.call('EXPIREAT', hk, exp) end\n"
    "  end\n"
    "end\n"
    "return {c, u2, same}\n";

struct tok_lc {
    db_t *db;
    char prefix[80];
    char match[200];
    db_script_t *s_expire, *s_scan, *s_import;
};

typedef struct lc_op {
    tok_lc_cb cb;
    tok_lc_import_cb icb;
    void *arg;
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

tok_lc_t *tok_lc_create(struct db *db, const char *prefix)
{
    tok_lc_t *lc = xcalloc(1, sizeof *lc);
    lc->db = db;
    snprintf(lc->prefix, sizeof lc->prefix, "%s", prefix);
    char esc[170];
    tok_lc_glob_escape(lc->prefix, esc, sizeof esc);
    snprintf(lc->match, sizeof lc->match, "%sdev:{*}", esc);
    lc->s_expire = db_script(db, LUA_EXPIRE);
    lc->s_scan = db_script(db, LUA_SCAN);
    lc->s_import = db_script(db, LUA_IMPORT);
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

static void on_expire(int status, const db_reply_t *r, void *arg)
{
    lc_op_t *op = arg;
    const db_reply_t *a = reply_array(status, r, 5);
    if (a == NULL) {
        op->cb(TOK_EUNAVAIL, NULL, op->arg);
        free(op);
        return;
    }
    tok_lc_result_t res = {0};
    res.examined = elem_int(a, 0);
    res.removed_expired = elem_int(a, 1);
    res.removed_stale = elem_int(a, 2);
    res.rescored = elem_int(a, 3);
    const char **items = collect_items(a, 4, &res);
    op->cb(0, &res, op->arg);
    free(items);
    free(op);
}

void tok_lc_expire_chunk(tok_lc_t *lc, int64_t now_s, long offset, long limit, bool dry_run,
                         bool want_items, tok_lc_cb cb, void *arg)
{
    char now[24], off[24], lim[24];
    snprintf(now, sizeof now, "%" PRId64, now_s);
    snprintf(off, sizeof off, "%ld", dry_run ? offset : 0);
    snprintf(lim, sizeof lim, "%ld", limit > 0 ? limit : 1);
    const char *argv[] = {lc->prefix, now, off, lim, dry_run ? "1" : "0", want_items ? "1" : "0"};
    db_eval(lc->db, lc->s_expire, on_expire, op_new(cb, NULL, arg), 0, 6, argv, NULL);
}

/* tok_lc_expire_chunk's `done`: fewer entries than asked for came back. The caller knows limit,
 * so the chunk result carries examined; res.done is set by the wrapper below. */
static void on_scan(int status, const db_reply_t *r, void *arg)
{
    lc_op_t *op = arg;
    const db_reply_t *a = reply_array(status, r, 8);
    if (a == NULL || db_reply_type(db_reply_elem(a, 0)) != DB_REPLY_STRING) {
        op->cb(TOK_EUNAVAIL, NULL, op->arg);
        free(op);
        return;
    }
    tok_lc_result_t res = {0};
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
    const char **items = collect_items(a, 7, &res);
    op->cb(0, &res, op->arg);
    free(items);
    free(op);
}

void tok_lc_scan_chunk(tok_lc_t *lc, const char *cursor, const tok_lc_scan_opts_t *o, tok_lc_cb cb,
                       void *arg)
{
    char now[24], cut[24], cnt[24];
    snprintf(now, sizeof now, "%" PRId64, o->now_s);
    snprintf(cut, sizeof cut, "%" PRId64,
             o->inactive_cutoff < 0 ? (int64_t)-1 : o->inactive_cutoff);
    snprintf(cnt, sizeof cnt, "%ld", o->count > 0 ? o->count : 200);
    const char *argv[] = {lc->prefix,
                          lc->match,
                          cursor,
                          cnt,
                          now,
                          cut,
                          o->remove_expired ? "1" : "0",
                          o->dry_run ? "1" : "0",
                          o->want_items ? "1" : "0"};
    db_eval(lc->db, lc->s_scan, on_scan, op_new(cb, NULL, arg), 0, 9, argv, NULL);
}

static void on_import(int status, const db_reply_t *r, void *arg)
{
    lc_op_t *op = arg;
    const db_reply_t *a = reply_array(status, r, 3);
    if (a == NULL) {
        op->icb(TOK_EUNAVAIL, NULL, op->arg);
    } else {
        tok_lc_import_result_t res = {elem_int(a, 0), elem_int(a, 1), elem_int(a, 2)};
        op->icb(0, &res, op->arg);
    }
    free(op);
}

void tok_lc_import(tok_lc_t *lc, int64_t now_s, const tok_record_t *recs, size_t n,
                   tok_lc_import_cb cb, void *arg)
{
    size_t argc = 2 + 6 * n;
    const char **argv = xmalloc(argc * sizeof *argv);
    size_t *lens = xmalloc(argc * sizeof *lens);
    /* One buffer per record for its JSON and expiresAt, offsets fixed up after growing. */
    buf_t js = BUF_INIT;
    size_t *off = xmalloc((2 * n + 1) * sizeof *off);
    char now[24];
    snprintf(now, sizeof now, "%" PRId64, now_s);
    for (size_t i = 0; i < n; i++) {
        off[2 * i] = js.len;
        buf_printf(&js, "%" PRId64, recs[i].expires_at);
        off[2 * i + 1] = js.len;
        tok_record_json(&recs[i], &js);
    }
    off[2 * n] = js.len;
    argv[0] = lc->prefix, lens[0] = strlen(lc->prefix);
    argv[1] = now, lens[1] = strlen(now);
    for (size_t i = 0; i < n; i++) {
        const tok_record_t *r = &recs[i];
        size_t k = 2 + 6 * i;
        argv[k] = r->user_id, lens[k] = strlen(r->user_id);
        argv[k + 1] = r->device_id, lens[k + 1] = strlen(r->device_id);
        argv[k + 2] = r->token, lens[k + 2] = strlen(r->token);
        argv[k + 3] = js.data + off[2 * i], lens[k + 3] = off[2 * i + 1] - off[2 * i];
        argv[k + 4] = js.data + off[2 * i + 1], lens[k + 4] = off[2 * i + 2] - off[2 * i + 1];
        argv[k + 5] = r->active ? "1" : "0", lens[k + 5] = 1;
    }
    /* db copies the arguments before returning. */
    db_eval(lc->db, lc->s_import, on_import, op_new(NULL, cb, arg), 0, (int)argc, argv, lens);
    buf_cleanup(&js);
    free(off);
    free(lens);
    free(argv);
}
