/* sweep.c - the periodic token lifecycle pass (sweep.h): a lock, a SCAN phase that counts states
 * and removes long-inactive records, an expiry phase that walks the expiry buckets (db/keys.h) one
 * after the other removing expired records, each a chain of single-chunk Redis calls so the loop
 * is never held for more than one reply. */
#include "tokens/sweep.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "db/keys.h"
#include "tokens/lua_sweep.h"
#include "tokens/lifecycle.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOCK_TTL_MS 60000
#define EXPIRE_CHUNK 500
#define SCAN_COUNT 200

typedef enum { PH_IDLE, PH_LOCK, PH_SCAN, PH_EXPIRE } phase_t;

struct tok_sweep {
    uv_loop_t *loop;
    db_t *db;
    long retention_days;
    tok_lc_t *lc;
    db_script_t *s_lock;
    uv_timer_t timer;
    bool timer_open, closing;
    bool lost;    /* a lock refresh found another holder: the pass stops at its next step */
    int inflight; /* db calls whose callback has not come back */
    phase_t phase;
    char lock_key[KEY_MAX];
    char lock_token[33];
    char cursor[64];
    unsigned bucket; /* the expiry phase's */
    int64_t now;
    tok_sweep_stats_t st;
    long pass_active, pass_inactive, pass_expired;
    void (*on_pass)(void *arg);
    void *on_pass_arg;
    metric_t *m_state[3], *m_swept[3], *m_runs[3], *m_last;
};

static void maybe_free(tok_sweep_t *s)
{
    if (s->closing && s->inflight == 0 && !s->timer_open) {
        tok_lc_destroy(s->lc);
        free(s);
    }
}

static void noop_cb(int status, const db_reply_t *r, void *arg)
{
    (void)status, (void)r, (void)arg;
}

static void lock_call(tok_sweep_t *s, const char *ttl, db_cb cb)
{
    const char *argv[] = {s->lock_key, s->lock_token, ttl};
    if (cb)
        s->inflight++;
    db_eval(s->db, s->s_lock, cb ? cb : noop_cb, cb ? s : NULL, 1, 3, argv, NULL);
}

static void pass_end(tok_sweep_t *s, int result)
{
    if (s->phase != PH_LOCK && s->phase != PH_IDLE)
        lock_call(s, "0", NULL); /* release: fire and forget */
    s->phase = PH_IDLE;
    s->st.running = false;
    if (result == 0) {
        s->st.passes++;
        if (s->m_last)
            metric_set(s->m_last, (double)clk_wall_ms() / 1000.0);
    } else if (result == 1) {
        s->st.locked_out++;
    } else {
        s->st.errors++;
        LOG0(LOG_LVL_WARN, "token sweep abandoned: redis failed");
    }
    if (s->m_runs[result < 0 ? 2 : result])
        metric_inc(s->m_runs[result < 0 ? 2 : result]);
    if (s->on_pass)
        s->on_pass(s->on_pass_arg);
}

static void add_swept(tok_sweep_t *s, int kind, long n)
{
    if (n <= 0)
        return;
    long *c = kind == 0 ? &s->st.expired : kind == 1 ? &s->st.inactive : &s->st.stale;
    *c += n;
    if (s->m_swept[kind])
        metric_add(s->m_swept[kind], (double)n);
}

static void next_step(tok_sweep_t *s);

static void on_refresh(int status, const db_reply_t *r, void *arg)
{
    tok_sweep_t *s = arg;
    s->inflight--;
    if (status == DB_OK && db_reply_type(r) == DB_REPLY_INTEGER && db_reply_int(r) == 0)
        s->lost = true;
    if (s->closing)
        maybe_free(s);
}

static void on_chunk(int status, const tok_lc_result_t *res, void *arg)
{
    tok_sweep_t *s = arg;
    s->inflight--;
    if (s->closing) {
        maybe_free(s);
        return;
    }
    if (status != 0) {
        pass_end(s, -1);
        return;
    }
    add_swept(s, 0, res->removed_expired);
    add_swept(s, 1, res->removed_inactive);
    add_swept(s, 2, res->removed_stale);
    if (s->lost) { /* it expired, or went with a failed master: someone else may sweep now */
        LOG0(LOG_LVL_WARN, "token sweep stopped: its lock is held by another instance");
        pass_end(s, 1);
        return;
    }
    if (s->phase == PH_SCAN) {
        s->pass_active += res->active;
        s->pass_inactive += res->inactive;
        s->pass_expired += res->expired;
        snprintf(s->cursor, sizeof s->cursor, "%s", res->cursor);
        if (res->done) {
            s->st.active_seen = s->pass_active;
            s->st.inactive_seen = s->pass_inactive;
            s->st.expired_seen = s->pass_expired;
            long v[3] = {s->pass_active, s->pass_inactive, s->pass_expired};
            for (int i = 0; i < 3; i++)
                if (s->m_state[i])
                    metric_set(s->m_state[i], (double)v[i]);
            s->phase = PH_EXPIRE;
            s->bucket = 0;
        }
    } else if (res->examined < EXPIRE_CHUNK && ++s->bucket == KEY_TOKEN_BUCKETS) {
        LOG(LOG_LVL_INFO, "token sweep done", LKI("active", s->pass_active),
            LKI("inactive", s->pass_inactive), LKI("expired_removed", s->st.expired));
        pass_end(s, 0);
        return;
    }
    next_step(s);
}

/* One chunk of the current phase, plus a lock refresh pipelined with it. */
static void next_step(tok_sweep_t *s)
{
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", LOCK_TTL_MS);
    lock_call(s, ttl, on_refresh);
    s->inflight++;
    if (s->phase == PH_SCAN) {
        int64_t ret = (int64_t)s->retention_days * 86400;
        tok_lc_scan_opts_t o = {.now_s = s->now,
                                .inactive_cutoff = s->now - ret,
                                .remove_expired = false,
                                .count = SCAN_COUNT};
        tok_lc_scan_chunk(s->lc, s->cursor, &o, on_chunk, s);
    } else {
        tok_lc_expire_chunk(s->lc, s->bucket, s->now, 0, EXPIRE_CHUNK, false, false, on_chunk, s);
    }
}

static void on_lock(int status, const db_reply_t *r, void *arg)
{
    tok_sweep_t *s = arg;
    s->inflight--;
    if (s->closing) {
        /* We may have just taken it: release by token (a no-op when we did not). */
        lock_call(s, "0", NULL);
        maybe_free(s);
        return;
    }
    if (status != DB_OK || db_reply_type(r) == DB_REPLY_ERROR) {
        pass_end(s, -1);
        return;
    }
    if (db_reply_type(r) == DB_REPLY_NIL) {
        pass_end(s, 1);
        return;
    }
    s->phase = PH_SCAN;
    s->lost = false;
    snprintf(s->cursor, sizeof s->cursor, "0");
    s->pass_active = s->pass_inactive = s->pass_expired = 0;
    next_step(s);
}

void tok_sweep_run_now(tok_sweep_t *s)
{
    if (s->st.running || s->closing)
        return;
    s->st.running = true;
    s->phase = PH_LOCK;
    s->now = clk_wall_ms() / 1000;
    rand_hex(s->lock_token, 16);
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", LOCK_TTL_MS);
    s->inflight++;
    db_cmd(s->db, on_lock, s, "SET", s->lock_key, s->lock_token, "NX", "PX", ttl, NULL);
}

static void on_timer(uv_timer_t *t)
{
    tok_sweep_run_now(t->data);
}

static void init_metrics(tok_sweep_t *s, metric_reg_t *reg)
{
    if (reg == NULL)
        return;
    metric_fam_t *g = metric_gauge_new(
        reg, "herald_tokens", "Device tokens by state, as of the last sweep scan", "state");
    metric_fam_t *c = metric_counter_new(reg, "herald_tokens_swept_total",
                                         "Token records (or stale index entries) removed by the "
                                         "sweep",
                                         "kind");
    metric_fam_t *r = metric_counter_new(reg, "herald_tokens_sweep_runs_total",
                                         "Sweep passes by result", "result");
    static const char *const states[] = {"active", "inactive", "expired"};
    static const char *const kinds[] = {"expired", "inactive", "stale"};
    static const char *const results[] = {"done", "locked", "error"};
    for (int i = 0; i < 3; i++) {
        s->m_state[i] = metric_get(g, states[i]);
        s->m_swept[i] = metric_get(c, kinds[i]);
        s->m_runs[i] = metric_get(r, results[i]);
    }
    s->m_last =
        metric_get(metric_gauge_new(reg, "herald_tokens_sweep_last_success_timestamp_seconds",
                                    "Unix time of the last completed sweep pass", NULL));
}

tok_sweep_t *tok_sweep_create(uv_loop_t *loop, struct db *db, const tok_sweep_opts_t *o,
                              metric_reg_t *reg)
{
    tok_sweep_t *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->db = db;
    s->retention_days = o->inactive_retention_days;
    s->lc = tok_lc_create(db, o->prefix);
    s->s_lock = db_script(db, lua_lock_refresh);
    key_lock(s->lock_key, o->prefix, "sweep");
    init_metrics(s, reg);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->timer_open = true;
    uint64_t every = (uint64_t)o->interval_s * 1000;
    if (every) {
        uint64_t first = every < 60000 ? every : 60000;
        uv_timer_start(&s->timer, on_timer, 1 + rand_below(first), every);
    }
    return s;
}

static void on_timer_closed(uv_handle_t *h)
{
    tok_sweep_t *s = h->data;
    s->timer_open = false;
    maybe_free(s);
}

void tok_sweep_destroy(tok_sweep_t *s)
{
    if (s == NULL)
        return;
    s->closing = true;
    if (s->phase == PH_SCAN || s->phase == PH_EXPIRE)
        lock_call(s, "0", NULL);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

void tok_sweep_get_stats(const tok_sweep_t *s, tok_sweep_stats_t *out)
{
    *out = s->st;
}

void tok_sweep_on_pass(tok_sweep_t *s, void (*cb)(void *arg), void *arg)
{
    s->on_pass = cb;
    s->on_pass_arg = arg;
}
