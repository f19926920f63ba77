/* trace.c - delivery trace records: the records of one loop turn go to Redis in one Lua call that
 * appends them, trims the lists and keeps the per-user and per-device indexes of recent jobs. */
#include "pipeline/trace.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/xalloc.h"
#include "db/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INDEX_KEEP 100
#define BATCH_MAX 128 /* records per script call */

/* Records wait here until the next loop turn (db_defer) or until BATCH_MAX of them are queued,
 * then go to Redis in one script call: an event leaves about five records, and one call per
 * record cost more Redis time than the rest of the event's work together. */
typedef struct batch {
    buf_t arena;  /* the strings of every queued record, NUL-terminated, back to back */
    size_t *offs; /* per record: kjob, kuser, kdev, record, jobId, now ms */
    size_t n;
    bool deferred; /* a flush is scheduled */
} batch_t;

struct disp_trace {
    db_t *db;
    db_script_t *script;
    char *prefix;
    long ttl_s;
    long max_records;
    batch_t b;
};

/* KEYS: per record the trace list, the user index and the device index ("" for none).
 * ARGV: ttl seconds, max records, index size, then per record: record, jobId, now ms.
 * Each list and index is trimmed and given its TTL once per call. */
static const char trace_lua[] =
    "local ttl, max, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local lists, idx = {}, {}\n"
    "for r = 0, #KEYS / 3 - 1 do\n"
    "  local k = KEYS[3 * r + 1]\n"
    "  redis.call('RPUSH', k, ARGV[4 + 3 * r])\n"
    "  lists[k] = true\n"
    "  for i = 2, 3 do\n"
    "    local ik = KEYS[3 * r + i]\n"
    "    if ik ~= '' then\n"
    "      redis.call('ZADD', ik, ARGV[6 + 3 * r], ARGV[5 + 3 * r])\n"
    "      idx[ik] = true\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for k in pairs(lists) do\n"
    "  redis.call('LTRIM', k, -max, -1)\n"
    "  redis.call('EXPIRE', k, ttl)\n"
    "end\n"
    "for k in pairs(idx) do\n"
    "  redis.call('ZREMRANGEBYRANK', k, 0, -keep - 1)\n"
    "  redis.call('EXPIRE', k, ttl)\n"
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
    t->b.offs = xcalloc(BATCH_MAX * 6, sizeof *t->b.offs);
    return t;
}

void disp_trace_destroy(disp_trace_t *t)
{
    if (t == NULL)
        return;
    buf_cleanup(&t->b.arena);
    free(t->b.offs);
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
    (void)status; /* best effort: the log line carries the same facts */
}

static void flush(disp_trace_t *t)
{
    batch_t *b = &t->b;
    if (b->n == 0)
        return;
    char ttl[24], max[24], keep[24];
    snprintf(ttl, sizeof ttl, "%ld", t->ttl_s);
    snprintf(max, sizeof max, "%ld", t->max_records);
    snprintf(keep, sizeof keep, "%d", INDEX_KEEP);
    size_t nk = 3 * b->n, argc = nk + 3 + 3 * b->n;
    const char **argv = xcalloc(argc, sizeof *argv);
    argv[nk] = ttl;
    argv[nk + 1] = max;
    argv[nk + 2] = keep;
    for (size_t r = 0; r < b->n; r++) {
        const size_t *o = &b->offs[6 * r];
        for (size_t i = 0; i < 3; i++) {
            argv[3 * r + i] = b->arena.data + o[i];
            argv[nk + 3 + 3 * r + i] = b->arena.data + o[3 + i];
        }
    }
    db_eval(t->db, t->script, on_written, NULL, (int)nk, (int)argc, argv, NULL);
    free(argv);
    buf_reset(&b->arena);
    b->n = 0;
}

static void on_defer(void *arg)
{
    disp_trace_t *t = arg;
    t->b.deferred = false;
    flush(t);
}

static void put_str(batch_t *b, size_t *off, const char *s)
{
    *off = b->arena.len;
    buf_append(&b->arena, s, strlen(s) + 1);
}

/* Queues one record for the next flush (db copies the arguments when it is sent). */
static void enqueue(disp_trace_t *t, const char *job_id, const char *user_id, const char *device_id,
                    const char *rec, int64_t now)
{
    batch_t *b = &t->b;
    size_t *o = &b->offs[6 * b->n++];
    char k[256], nowms[24];
    /* ids are bounded (128) and so is the prefix (64): these buffers always fit */
    snprintf(k, sizeof k, "%strace:%s", t->prefix, job_id);
    put_str(b, &o[0], k);
    snprintf(k, sizeof k, "%strace:user:%s", t->prefix, user_id);
    put_str(b, &o[1], k);
    k[0] = '\0';
    if (device_id)
        snprintf(k, sizeof k, "%strace:device:%s", t->prefix, device_id);
    put_str(b, &o[2], k);
    put_str(b, &o[3], rec);
    put_str(b, &o[4], job_id);
    snprintf(nowms, sizeof nowms, "%lld", (long long)now);
    put_str(b, &o[5], nowms);
    if (b->n == BATCH_MAX) {
        flush(t);
    } else if (!b->deferred) {
        b->deferred = true;
        db_defer(t->db, on_defer, t);
    }
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
    if (t->ttl_s > 0)
        enqueue(t, job_id, user_id, device_id, rec.data, now);
    buf_cleanup(&rec);
}
