/* trace.c - delivery trace records: one Lua call appends the record, trims the list and keeps the
 * per-user and per-device indexes of recent jobs. */
#include "dispatcher/trace.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/xalloc.h"
#include "db/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INDEX_KEEP 100

struct disp_trace {
    db_t *db;
    db_script_t *script;
    char *prefix;
    long ttl_s;
    long max_records;
};

/* KEYS: trace list, user index, device index (or "" for none).
 * ARGV: record, ttl seconds, max records, jobId, now ms, index size. */
static const char trace_lua[] =
    "redis.call('RPUSH', KEYS[1], ARGV[1])\n"
    "redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[2])\n"
    "for i = 2, 3 do\n"
    "  if KEYS[i] ~= '' then\n"
    "    redis.call('ZADD', KEYS[i], ARGV[5], ARGV[4])\n"
    "    redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -tonumber(ARGV[6]) - 1)\n"
    "    redis.call('EXPIRE', KEYS[i], ARGV[2])\n"
    "  end\n"
    "end\n"
    "return 1\n";

disp_trace_t *disp_trace_create(db_t *db, const char *prefix, long ttl_s, long max_records)
{
    disp_trace_t *t = xcalloc(1, sizeof *t);
    t->db = db;
    t->script = db_script(db, trace_lua);
    t->prefix = xstrdup(prefix);
    t->ttl_s = ttl_s;
    t->max_records = max_records;
    return t;
}

void disp_trace_destroy(disp_trace_t *t)
{
    if (t == NULL)
        return;
    free(t->prefix);
    free(t);
}

static void put_kv(buf_t *b, const log_kv_t *kv)
{
    buf_putc(b, ',');
    buf_json_str(b, kv->k, strlen(kv->k));
    buf_putc(b, ':');
    log_kv_value_json(b, kv);
}

static void on_written(int status, const db_reply_t *reply, void *arg)
{
    (void)reply;
    (void)arg;
    (void)status; /* best effort: the log line below carries the same facts */
}

void disp_trace_add(disp_trace_t *t, const char *job_id, const char *user_id, const char *device_id,
                    const char *event, const log_kv_t *kv, size_t n)
{
    char ts[40];
    int64_t now = clk_wall_ms();
    clk_iso8601_ms(now, ts, sizeof ts);
    buf_t rec = BUF_INIT;
    buf_printf(&rec, "{\"ts\":\"%s\",\"event\":", ts);
    buf_json_str(&rec, event, strlen(event));
    log_kv_t ids[3] = {LKS("jobId", job_id), LKS("userId", user_id), LKS("deviceId", device_id)};
    for (size_t i = 0; i < 3; i++)
        if (ids[i].s)
            put_kv(&rec, &ids[i]);
    for (size_t i = 0; i < n; i++)
        put_kv(&rec, &kv[i]);
    buf_putc(&rec, '}');
    LOG(LOG_LVL_INFO, "trace", LKR("record", rec.data));
    if (t->ttl_s > 0) {
        /* ids are bounded (128) and so is the prefix (64): these buffers always fit */
        char kjob[256], kuser[256], kdev[256] = "", ttl[24], max[24], nowms[24], keep[24];
        snprintf(kjob, sizeof kjob, "%strace:%s", t->prefix, job_id);
        snprintf(kuser, sizeof kuser, "%strace:user:%s", t->prefix, user_id);
        if (device_id)
            snprintf(kdev, sizeof kdev, "%strace:device:%s", t->prefix, device_id);
        snprintf(ttl, sizeof ttl, "%ld", t->ttl_s);
        snprintf(max, sizeof max, "%ld", t->max_records);
        snprintf(nowms, sizeof nowms, "%lld", (long long)now);
        snprintf(keep, sizeof keep, "%d", INDEX_KEEP);
        const char *argv[] = {kjob, kuser, kdev, rec.data, ttl, max, job_id, nowms, keep};
        db_eval(t->db, t->script, on_written, NULL, 3, 9, argv, NULL);
    }
    buf_cleanup(&rec);
}
