/* trace.c - delivery trace records, kept in the events' ledger entries (DESIGN.md "Delivery
 * ledger"): the records of one loop turn go to Redis in one Lua call that adds them to their
 * (user, event) entries and keeps the per-user, per-device and per-job indexes
 * (lua/trace_append.lua: one HSET per entry); on Redis Cluster, one call per hash slot
 * (db_eval_parts). A record that rides with its entry's claim or done mark (disp_trace_ride) is
 * written by that call; only the indexes it names are queued here. heraldctl reads them back
 * through the functions at the end; a privacy delete (pipeline/privacy.c) removes them. */
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
#define NKEYS 4       /* per record: entry, user index, device index, job index */
#define NARGS 5       /* per record: field, record, job id, job index member, now ms */

/* Records wait here until the next loop turn (db_defer) or until BATCH_MAX of them are queued,
 * then go to Redis in one script call: an event leaves about five records, and one call per
 * record cost more Redis time than the rest of the event's work together. */
typedef struct batch {
    buf_t arena;  /* the strings of every queued record, NUL-terminated, back to back */
    size_t *offs; /* per record: NKEYS keys, then NARGS arguments */
    size_t n;
    bool deferred; /* a flush is scheduled */
} batch_t;

struct disp_trace {
    db_t *db;
    db_script_t *script;
    char *prefix;
    long ttl_s;
    long max_records;
    char ettl[24], ttl[24], max[24], keep[24];
    unsigned seq; /* orders the records of one millisecond */
    batch_t b;
    buf_t rec;     /* the record being built (reused: no allocation per record) */
    void *scratch; /* a flush's arrays, sized for BATCH_MAX records once (flush) */
};

disp_trace_t *disp_trace_create(db_t *db, const char *prefix, long ttl_s, long entry_ttl_s,
                                long max_records)
{
    disp_trace_t *t = xcalloc(1, sizeof *t);
    t->db = db;
    t->script = db_script(db, lua_trace_append);
    t->prefix = xstrdup(prefix);
    t->ttl_s = ttl_s;
    t->max_records = max_records;
    snprintf(t->ttl, sizeof t->ttl, "%ld", ttl_s);
    snprintf(t->ettl, sizeof t->ettl, "%ld", entry_ttl_s > ttl_s ? entry_ttl_s : ttl_s);
    snprintf(t->max, sizeof t->max, "%ld", max_records);
    snprintf(t->keep, sizeof t->keep, "%d", DISP_TRACE_INDEX_MAX);
    t->b.offs = xcalloc(BATCH_MAX * (NKEYS + NARGS), sizeof *t->b.offs);
    return t;
}

void disp_trace_destroy(disp_trace_t *t)
{
    if (t == NULL)
        return;
    buf_cleanup(&t->b.arena);
    buf_cleanup(&t->rec);
    free(t->scratch);
    free(t->b.offs);
    free(t->prefix);
    free(t);
}

static void put_kv(buf_t *b, const log_kv_t *kv)
{
    buf_putc(b, ',');
    buf_json_cstr(b, kv->k);
    buf_putc(b, ':');
    log_kv_value_json(b, kv);
}

static void on_written(int status, const long long *res, size_t n, void *arg)
{
    (void)res, (void)n, (void)arg;
    (void)status; /* best effort: the log line carries the same facts */
}

/* A record's place in a flush: records sort by ledger entry (then as queued), so each entry's
 * are one run. */
typedef struct place {
    const char *entry;
    size_t r;
} place_t;

static int by_entry(const void *a, const void *b)
{
    const place_t *x = a, *y = b;
    int c = strcmp(x->entry, y->entry);
    return c ? c : (x->r > y->r) - (x->r < y->r);
}

/* The string at offset i (a key or an argument) of record r. */
static const char *rec_str(const batch_t *b, size_t r, size_t i)
{
    return b->arena.data + b->offs[(NKEYS + NARGS) * r + i];
}

/* Adds index key k to keys[*nk] unless this entry's part has it already (from keys[k0]). */
static void add_index(const char **keys, size_t k0, size_t *nk, const char *k)
{
    if (*k == '\0')
        return;
    for (size_t i = k0; i < *nk; i++)
        if (strcmp(keys[i], k) == 0)
            return;
    keys[(*nk)++] = k;
}

/* A flush's script call being built: parts, their keys and arguments. */
typedef struct call {
    db_part_t *parts;
    const char **keys, **args;
    char (*counts)[2][BUF_NUM_MAX]; /* per part: its numbers of indexes and records */
    size_t np, nk, na;
} call_t;

/* The part of the records order[i..e) of one entry: its records (not those that rode) and the
 * indexes they name; then a part per job index the records open. */
static void put_entry(const batch_t *b, const place_t *order, size_t i, size_t e, call_t *c)
{
    const char *now = rec_str(b, order[i].r, 8);
    size_t k0 = c->nk, a0 = c->na, nr = 0;
    c->keys[c->nk++] = order[i].entry;
    for (size_t r = i; r < e; r++) {
        if (strcmp(rec_str(b, order[r].r, 8), now) > 0) /* 13 digits: text order is time's */
            now = rec_str(b, order[r].r, 8);
        add_index(c->keys, k0 + 1, &c->nk, rec_str(b, order[r].r, 1));
        add_index(c->keys, k0 + 1, &c->nk, rec_str(b, order[r].r, 2));
        nr += *rec_str(b, order[r].r, 4) != '\0'; /* not a record that rode */
    }
    char(*counts)[BUF_NUM_MAX] = c->counts[c->np];
    buf_fmt_u64(counts[0], c->nk - k0 - 1);
    buf_fmt_u64(counts[1], nr);
    const char *head[] = {"e", rec_str(b, order[i].r, 6), now, counts[0], counts[1]};
    for (size_t h = 0; h < 5; h++)
        c->args[c->na++] = head[h];
    for (size_t r = i; r < e; r++) {
        if (*rec_str(b, order[r].r, 4) == '\0')
            continue;
        c->args[c->na++] = rec_str(b, order[r].r, 4);
        c->args[c->na++] = rec_str(b, order[r].r, 5);
    }
    c->parts[c->np++] = (db_part_t){.nkeys = c->nk - k0, .nargs = c->na - a0, .nres = 0};
    for (size_t r = i; r < e; r++) {
        if (*rec_str(b, order[r].r, 3) == '\0')
            continue;
        c->keys[c->nk++] = rec_str(b, order[r].r, 3);
        c->args[c->na++] = "j";
        c->args[c->na++] = rec_str(b, order[r].r, 7);
        c->parts[c->np++] = (db_part_t){.nkeys = 1, .nargs = 2, .nres = 0};
    }
}

/* The batch as db_eval_parts parts (trace_append.lua): per ledger entry one part with its
 * records and the indexes they name, and per event's opening record a part for its job index
 * (on a cluster the job's slot is not the user's). */
static void flush(disp_trace_t *t)
{
    batch_t *b = &t->b;
    if (b->n == 0)
        return;
    /* Sized for BATCH_MAX records: per record at most 2 parts, NKEYS keys, 9 arguments (and the
     * 4 head arguments once). */
    typedef struct scratch {
        place_t order[BATCH_MAX];
        db_part_t parts[2 * BATCH_MAX];
        const char *keys[NKEYS * BATCH_MAX], *args[9 * BATCH_MAX];
        const char *argv[NKEYS * BATCH_MAX + 4 + 9 * BATCH_MAX];
        char counts[2 * BATCH_MAX][2][BUF_NUM_MAX];
    } scratch_t;
    if (t->scratch == NULL)
        t->scratch = xmalloc(sizeof(scratch_t));
    scratch_t *m = t->scratch;
    place_t *order = m->order;
    for (size_t r = 0; r < b->n; r++)
        order[r] = (place_t){rec_str(b, r, 0), r};
    qsort(order, b->n, sizeof *order, by_entry);
    call_t c = {.parts = m->parts, .keys = m->keys, .args = m->args, .counts = m->counts};
    for (size_t i = 0, e; i < b->n; i = e) {
        for (e = i + 1; e < b->n && strcmp(order[e].entry, order[i].entry) == 0; e++)
            ;
        put_entry(b, order, i, e, &c);
    }
    const char **argv = m->argv;
    memcpy(argv, c.keys, c.nk * sizeof *argv);
    argv[c.nk] = t->ettl;
    argv[c.nk + 1] = t->ttl;
    argv[c.nk + 2] = t->max;
    argv[c.nk + 3] = t->keep;
    memcpy(argv + c.nk + 4, c.args, c.na * sizeof *argv);
    db_eval_parts(t->db, t->script, on_written, NULL, c.np, c.parts, 4, argv);
    buf_reset(&b->arena);
    b->n = 0;
}

static void on_defer(void *arg)
{
    disp_trace_t *t = arg;
    t->b.deferred = false;
    flush(t);
}

static void put_str(batch_t *b, size_t *off, const char *s, size_t len)
{
    *off = b->arena.len;
    buf_append(&b->arena, s, len);
    buf_putc(&b->arena, '\0');
}

/* A record's ids, with their lengths (measured once, by storable). */
typedef struct ids {
    const disp_trace_ref_t *ref;
    size_t user, event, job;
} ids_t;

/* Queues one record (field and text; both "" for none: it rode) for the next flush, with the
 * indexes it names: the user's and the job's (opens) and the device's (device). db copies the
 * arguments when it is sent. */
static void queue_rec(disp_trace_t *t, const ids_t *id, bool opens, bool device, const char *field,
                      size_t flen, const char *text, size_t tlen, int64_t now)
{
    const disp_trace_ref_t *ref = id->ref;
    batch_t *b = &t->b;
    size_t *o = &b->offs[(NKEYS + NARGS) * b->n++];
    char k[KEY_MAX], num[BUF_NUM_MAX];
    put_str(b, &o[0], k, key_ledger(k, t->prefix, ref->user, ref->event));
    put_str(b, &o[1], k, opens ? key_trace_user(k, t->prefix, ref->user) : 0);
    put_str(b, &o[2], k, device ? key_trace_device(k, t->prefix, ref->user, ref->device) : 0);
    put_str(b, &o[3], k, opens ? key_job(k, t->prefix, ref->job) : 0);
    put_str(b, &o[4], field, flen);
    put_str(b, &o[5], text, tlen);
    put_str(b, &o[6], ref->job, id->job);
    o[7] = b->arena.len; /* "<user>\x1f<event>" */
    buf_append(&b->arena, ref->user, id->user);
    buf_putc(&b->arena, '\x1f');
    buf_append(&b->arena, ref->event, id->event);
    buf_putc(&b->arena, '\0');
    put_str(b, &o[8], num, buf_fmt_i64(num, (long long)now));
    if (b->n == BATCH_MAX) {
        flush(t);
    } else if (!b->deferred) {
        b->deferred = true;
        db_defer(t->db, on_defer, t);
    }
}

/* Writes the n low digits of v, zero-padded, at out. */
static void put_digits(char *out, unsigned long long v, size_t n)
{
    while (n-- > 0) {
        out[n] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* A new record: queued, or handed to ride (its field and text, NUL-terminated) with only the
 * indexes it names queued. The opening record of an event ("received") enters it in the user's
 * index and the job's. */
static void enqueue(disp_trace_t *t, const ids_t *id, const char *event, const buf_t *rec,
                    int64_t now, buf_t *ride)
{
    bool opens = strcmp(event, "received") == 0, device = id->ref->device != NULL;
    char field[2 + 13 + 5 + 1] = "t:"; /* t:<13 digits of unix ms><5 digits of seq> */
    put_digits(field + 2, (unsigned long long)now, 13);
    put_digits(field + 15, t->seq++ % 100000, 5);
    field[20] = '\0';
    if (ride == NULL) {
        queue_rec(t, id, opens, device, field, 20, rec->data, rec->len, now);
        return;
    }
    buf_append(ride, field, sizeof field);
    buf_append(ride, rec->data, rec->len);
    buf_putc(ride, '\0');
    if (opens || device)
        queue_rec(t, id, opens, device, "", 0, "", 0, now);
}

/* Whether a record can go to Redis: its entry is named by the user and event, within the key
 * limits (a receipt of a ticket whose hash lost them has none: the log keeps it). Measures the
 * ids into *id. */
static bool storable(const disp_trace_ref_t *ref, ids_t *id)
{
    *id = (ids_t){.ref = ref};
    if (!ref->user || !*ref->user || !ref->event || !*ref->event || !ref->job)
        return false;
    id->user = strlen(ref->user);
    id->event = strlen(ref->event);
    id->job = strlen(ref->job);
    return id->user <= KEY_USER_MAX && id->event <= KEY_EVENT_MAX && id->job <= KEY_JOB_MAX &&
           (!ref->device || strlen(ref->device) <= KEY_DEVICE_MAX);
}

/* A record: logged at debug; queued (or handed to ride) when Redis keeps it. */
static void add(disp_trace_t *t, const disp_trace_ref_t *ref, const char *event, const log_kv_t *kv,
                size_t n, buf_t *ride)
{
    char ts[40];
    ids_t id;
    int64_t now = clk_wall_ms();
    bool store = t->ttl_s > 0 && storable(ref, &id);
    if (!store && LOG_LVL_DEBUG < log_min_level)
        return;
    clk_iso8601_ms(now, ts, sizeof ts);
    buf_t *rec = &t->rec;
    buf_reset(rec);
    buf_puts(rec, "{\"ts\":\"");
    buf_puts(rec, ts);
    buf_puts(rec, "\",\"event\":");
    buf_json_cstr(rec, event);
    log_kv_t ids[3] = {LKS("jobId", ref->job), LKS("userId", ref->user),
                       LKS("deviceId", ref->device)};
    for (size_t i = 0; i < 3; i++)
        if (ids[i].s)
            put_kv(rec, &ids[i]);
    for (size_t i = 0; i < n; i++)
        put_kv(rec, &kv[i]);
    buf_putc(rec, '}');
    LOG(LOG_LVL_DEBUG, "trace", LKR("record", buf_cstr(rec)));
    if (store)
        enqueue(t, &id, event, rec, now, ride);
}

void disp_trace_add(disp_trace_t *t, const disp_trace_ref_t *ref, const char *event,
                    const log_kv_t *kv, size_t n)
{
    add(t, ref, event, kv, n, NULL);
}

bool disp_trace_ride(disp_trace_t *t, const disp_trace_ref_t *ref, const char *event,
                     const log_kv_t *kv, size_t n, buf_t *ride)
{
    size_t len = ride->len;
    add(t, ref, event, kv, n, ride);
    return ride->len > len;
}

void disp_trace_put(disp_trace_t *t, const disp_trace_ref_t *ref, const char *recs, size_t n)
{
    ids_t id;
    int64_t now = clk_wall_ms();
    for (size_t i = 0; i < n && t->ttl_s > 0 && storable(ref, &id); i++) {
        size_t flen = strlen(recs);
        const char *text = recs + flen + 1;
        size_t tlen = strlen(text);
        queue_rec(t, &id, false, false, recs, flen, text, tlen, now);
        recs = text + tlen + 1;
    }
}

/* ---- reading ---- */

typedef struct read_req {
    union {
        disp_trace_records_cb records;
        disp_trace_ids_cb ids;
    } cb;
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

/* An index read answers job ids. */
static void on_ids(int status, const db_reply_t *r, void *arg)
{
    read_req_t *q = arg;
    const char **strs = NULL;
    size_t *lens = NULL, n = 0;
    int rc = read_status(status, r);
    if (rc == 0)
        n = reply_strings(r, &strs, &lens);
    q->cb.ids(rc, strs, n, q->arg);
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

/* A job's records: its index names its (user, event) entries, read with one HGETALL each (all
 * sent at once); their t:<seq> fields, merged in seq order, are the trace. */
typedef struct job_read {
    disp_trace_t *t;
    read_req_t *q;
    size_t pending;
    int status;
    struct rec {
        char *field, *text;
        size_t len;
    } * recs;
    size_t n, cap;
} job_read_t;

static int rec_cmp(const void *a, const void *b)
{
    return strcmp(((const struct rec *)a)->field, ((const struct rec *)b)->field);
}

static void job_read_finish(job_read_t *jr)
{
    const char **strs = xcalloc(jr->n ? jr->n : 1, sizeof *strs);
    size_t *lens = xcalloc(jr->n ? jr->n : 1, sizeof *lens);
    if (jr->n > 0)
        qsort(jr->recs, jr->n, sizeof *jr->recs, rec_cmp);
    for (size_t i = 0; i < jr->n; i++) {
        strs[i] = jr->recs[i].text;
        lens[i] = jr->recs[i].len;
    }
    jr->q->cb.records(jr->status, jr->status ? NULL : strs, lens, jr->status ? 0 : jr->n,
                      jr->q->arg);
    for (size_t i = 0; i < jr->n; i++) {
        free(jr->recs[i].field);
        free(jr->recs[i].text);
    }
    free(jr->recs);
    free(strs);
    free(lens);
    free(jr->q);
    free(jr);
}

static void on_entry(int status, const db_reply_t *r, void *arg)
{
    job_read_t *jr = arg;
    int rc = read_status(status, r);
    if (rc != 0 && jr->status == 0)
        jr->status = rc;
    for (size_t i = 0; rc == 0 && i + 1 < db_reply_len(r); i += 2) {
        size_t fl = 0, vl = 0;
        const char *f = db_reply_str(db_reply_elem(r, i), &fl);
        const char *v = db_reply_str(db_reply_elem(r, i + 1), &vl);
        if (!f || !v || fl < 2 || strncmp(f, "t:", 2) != 0)
            continue;
        if (jr->n == jr->cap) {
            jr->cap = jr->cap ? 2 * jr->cap : 16;
            jr->recs = xrealloc(jr->recs, jr->cap * sizeof *jr->recs);
        }
        jr->recs[jr->n++] = (struct rec){xstrndup(f, fl), xstrndup(v, vl), vl};
    }
    if (--jr->pending == 0)
        job_read_finish(jr);
}

/* The job index's members "<user>\x1f<event>": one entry read each. */
static void on_members(int status, const db_reply_t *r, void *arg)
{
    job_read_t *jr = arg;
    jr->status = read_status(status, r);
    jr->pending = 1; /* held until every read is sent */
    for (size_t i = 0; jr->status == 0 && i < db_reply_len(r); i++) {
        size_t len = 0;
        const char *m = db_reply_str(db_reply_elem(r, i), &len);
        const char *sep = m ? memchr(m, '\x1f', len) : NULL;
        if (sep == NULL || (size_t)(sep - m) > KEY_USER_MAX ||
            len - (size_t)(sep - m) - 1 > KEY_EVENT_MAX)
            continue;
        char user[KEY_USER_MAX + 1], event[KEY_EVENT_MAX + 1], k[KEY_MAX];
        snprintf(user, sizeof user, "%.*s", (int)(sep - m), m);
        snprintf(event, sizeof event, "%.*s", (int)(len - (size_t)(sep - m) - 1), sep + 1);
        key_ledger(k, jr->t->prefix, user, event);
        jr->pending++;
        db_cmd(jr->t->db, on_entry, jr, "HGETALL", k, NULL);
    }
    if (--jr->pending == 0)
        job_read_finish(jr);
}

void disp_trace_job(disp_trace_t *t, const char *job_id, disp_trace_records_cb cb, void *arg)
{
    read_req_t *q = req_new(arg);
    q->cb.records = cb;
    if (!id_fits(job_id, KEY_JOB_MAX)) {
        db_defer(t->db, on_no_job, q);
        return;
    }
    job_read_t *jr = xcalloc(1, sizeof *jr);
    jr->t = t;
    jr->q = q;
    char k[KEY_MAX];
    key_job(k, t->prefix, job_id);
    db_cmd(t->db, on_members, jr, "SMEMBERS", k, NULL);
}

void disp_trace_recent(disp_trace_t *t, const char *user_id, const char *device_id, long limit,
                       disp_trace_ids_cb cb, void *arg)
{
    read_req_t *q = req_new(arg);
    q->cb.ids = cb;
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
    db_cmd(t->db, on_ids, q, "ZREVRANGE", k, "0", stop, NULL);
}
