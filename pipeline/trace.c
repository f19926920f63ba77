/* trace.c - delivery trace records: the records of one loop turn go to Redis in one Lua call that
 * appends them, trims the lists and keeps the per-user and per-device indexes of recent jobs
 * (lua/trace_append.lua). heraldctl reads them back through the functions at the end; a privacy
 * delete (pipeline/privacy.c) removes them. */
#include "pipeline/trace.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "db/keys.h"
#include "pipeline/lua_trace.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

disp_trace_t *disp_trace_create(db_t *db, const char *prefix, long ttl_s, long max_records)
{
    disp_trace_t *t = xcalloc(1, sizeof *t);
    t->db = db;
    t->script = db_script(db, lua_trace_append);
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
    snprintf(keep, sizeof keep, "%d", DISP_TRACE_INDEX_MAX);
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

static void put_str_at(buf_t *arena, size_t *off, const char *s)
{
    *off = arena->len;
    buf_append(arena, s, strlen(s) + 1);
}

static void put_str(batch_t *b, size_t *off, const char *s)
{
    put_str_at(&b->arena, off, s);
}

/* Queues one record for the next flush (db copies the arguments when it is sent). */
static void enqueue(disp_trace_t *t, const char *job_id, const char *user_id, const char *device_id,
                    const char *rec, int64_t now)
{
    batch_t *b = &t->b;
    size_t *o = &b->offs[6 * b->n++];
    char k[KEY_MAX], nowms[24];
    key_trace(k, t->prefix, job_id);
    put_str(b, &o[0], k);
    key_trace_user(k, t->prefix, user_id);
    put_str(b, &o[1], k);
    k[0] = '\0';
    if (device_id)
        key_trace_device(k, t->prefix, user_id, device_id);
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

/* ---- reading ---- */

typedef struct read_req {
    union {
        disp_trace_records_cb records;
        disp_trace_ids_cb ids;
    } cb;
    bool want_ids; /* cb.ids, else cb.records */
    void *arg;
} read_req_t;

static read_req_t *req_new(void *arg)
{
    read_req_t *q = xcalloc(1, sizeof *q);
    q->arg = arg;
    return q;
}

static bool id_fits(const char *id, size_t max)
{
    return id && strlen(id) <= max;
}

/* The strings of an array reply (non-strings as ""), into new arrays. */
static size_t reply_strings(const db_reply_t *r, const char ***strs, size_t **lens)
{
    size_t n = db_reply_len(r);
    *strs = xcalloc(n ? n : 1, sizeof **strs);
    *lens = xcalloc(n ? n : 1, sizeof **lens);
    for (size_t i = 0; i < n; i++) {
        const char *s = db_reply_str(db_reply_elem(r, i), &(*lens)[i]);
        (*strs)[i] = s ? s : "";
    }
    return n;
}

static int read_status(int status, const db_reply_t *r)
{
    if (status != DB_OK)
        return status;
    return db_reply_type(r) == DB_REPLY_ARRAY ? 0 : DB_EPROTO;
}

/* Both reads answer a list of strings: trace records (with their lengths) or job ids. */
static void on_strings(int status, const db_reply_t *r, void *arg)
{
    read_req_t *q = arg;
    const char **strs = NULL;
    size_t *lens = NULL, n = 0;
    int rc = read_status(status, r);
    if (rc == 0)
        n = reply_strings(r, &strs, &lens);
    if (q->want_ids)
        q->cb.ids(rc, strs, n, q->arg);
    else
        q->cb.records(rc, strs, lens, n, q->arg);
    free(strs);
    free(lens);
    free(q);
}

/* An id no key can hold has no trace: answer "none" on a later loop turn. */
static void on_no_job(void *arg)
{
    read_req_t *q = arg;
    q->cb.records(0, NULL, NULL, 0, q->arg);
    free(q);
}

static void on_no_ids(void *arg)
{
    read_req_t *q = arg;
    q->cb.ids(0, NULL, 0, q->arg);
    free(q);
}

void disp_trace_job(disp_trace_t *t, const char *job_id, disp_trace_records_cb cb, void *arg)
{
    read_req_t *q = req_new(arg);
    q->cb.records = cb;
    if (!id_fits(job_id, KEY_JOB_MAX)) {
        db_defer(t->db, on_no_job, q);
        return;
    }
    char k[KEY_MAX];
    key_trace(k, t->prefix, job_id);
    db_cmd(t->db, on_strings, q, "LRANGE", k, "0", "-1", NULL);
}

void disp_trace_recent(disp_trace_t *t, const char *user_id, const char *device_id, long limit,
                       disp_trace_ids_cb cb, void *arg)
{
    read_req_t *q = req_new(arg);
    q->cb.ids = cb;
    q->want_ids = true;
    if (!id_fits(user_id, KEY_USER_MAX) || (device_id && !id_fits(device_id, KEY_DEVICE_MAX)) ||
        limit < 1) {
        db_defer(t->db, on_no_ids, q);
        return;
    }
    char k[KEY_MAX], stop[24];
    if (device_id)
        key_trace_device(k, t->prefix, user_id, device_id);
    else
        key_trace_user(k, t->prefix, user_id);
    snprintf(stop, sizeof stop, "%ld", limit - 1);
    db_cmd(t->db, on_strings, q, "ZREVRANGE", k, "0", stop, NULL);
}
