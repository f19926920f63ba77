/* claims_redis.c - the dedup claims in Redis, in the delivery ledger: one HASH per (user, event)
 * at <p>led:<n>:{<user>}:<event> (db/keys.h key_ledger) whose field s:<device> is the device's
 * claim state: `p:<owner>:<deadline ms>` (pending; the deadline is dedup.pending_ttl_s after the
 * claim or its last renewal), `d` (done) or `f` (failed). The entry lives dedup.done_ttl_s after
 * its last write. The owner is this instance's lease id (pipeline/lease.h); each claim call
 * passes the lease's view of lapsed owners, whose claims the script takes over. Each call is one
 * script call however many devices it covers (lua/claim.lua, lua/mark_done.lua, lua/renew.lua):
 * the pipeline claims a loop turn's events at once and marks a loop turn's outcomes at once. */
#include "pipeline/claims.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "db/keys.h"
#include "pipeline/lease.h"
#include "pipeline/lua_claims.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct claims_redis {
    disp_claims_t base;
    db_t *db;
    const disp_lease_t *lease;
    char *prefix;
    char pending_ms[24], entry_ttl[24];
    db_script_t *s_claim, *s_done, *s_renew;
} claims_redis_t;

typedef struct call {
    size_t n;
    union {
        disp_claim_cb claim;
        disp_claims_done_cb done;
    } cb;
    void *arg;
} call_t;

static call_t *call_new(size_t n, void *arg)
{
    call_t *c = xmalloc(sizeof *c);
    c->n = n;
    c->arg = arg;
    return c;
}

/* One script call over n device refs: KEYS are their ledger entries, one per run of refs of one
 * (user, event) (and one mode, when modes is not NULL); ARGV the nhead arguments, then per entry
 * [its mode,] its number of devices [, its event (outcomes: the run's first event_json or "")]
 * and the devices [each with its outcome or ""]. Each entry's part is self-contained, so a batch
 * can later be split into calls per hash slot by splitting the runs. */
static void eval_entries(claims_redis_t *r, db_script_t *s, const disp_claim_ref_t *refs,
                         const char *modes, bool outcomes, size_t n, const char *const *head,
                         size_t nhead, db_cb cb, call_t *c)
{
    char(*keys)[KEY_MAX] = xmalloc(n * sizeof *keys);
    char(*counts)[16] = xmalloc(n * sizeof *counts);
    const char **tail = xmalloc(4 * n * sizeof *tail);
    size_t nk = 0, nt = 0;
    for (size_t i = 0, e; i < n; i = e) {
        for (e = i + 1; e < n && !strcmp(refs[e].event, refs[i].event) &&
                        !strcmp(refs[e].user, refs[i].user) && (!modes || modes[e] == modes[i]);
             e++)
            ;
        key_ledger(keys[nk], r->prefix, refs[i].user, refs[i].event);
        if (modes)
            tail[nt++] = modes[i] == 'r' ? "r" : "o";
        snprintf(counts[nk], sizeof counts[nk], "%zu", e - i);
        tail[nt++] = counts[nk++];
        if (outcomes) {
            const char *ev = "";
            for (size_t j = i; j < e && !*ev; j++)
                ev = refs[j].event_json ? refs[j].event_json : "";
            tail[nt++] = ev;
        }
        for (size_t j = i; j < e; j++) {
            tail[nt++] = refs[j].device;
            if (outcomes)
                tail[nt++] = refs[j].outcome ? refs[j].outcome : "";
        }
    }
    const char **argv = xmalloc((nk + nhead + nt) * sizeof *argv);
    for (size_t i = 0; i < nk; i++)
        argv[i] = keys[i];
    memcpy(argv + nk, head, nhead * sizeof *head);
    memcpy(argv + nk + nhead, tail, nt * sizeof *tail);
    db_eval(r->db, s, cb, c, (int)nk, (int)(nk + nhead + nt), argv, NULL);
    free(argv);
    free(tail);
    free(counts);
    free(keys);
}

static void on_claimed(int status, const db_reply_t *reply, void *arg)
{
    call_t *c = arg;
    if (status != DB_OK || db_reply_type(reply) != DB_REPLY_ARRAY || db_reply_len(reply) != c->n) {
        c->cb.claim(DISP_CLAIMS_EUNAVAIL, NULL, 0, c->arg);
        free(c);
        return;
    }
    disp_claim_t *res = xmalloc(c->n * sizeof *res);
    for (size_t i = 0; i < c->n; i++) {
        long long v = db_reply_int(db_reply_elem(reply, i));
        res[i] = v == 1   ? DISP_CLAIM_CLAIMED
                 : v == 3 ? DISP_CLAIM_TAKEN
                 : v == 0 ? DISP_CLAIM_DONE
                 : v == 2 ? DISP_CLAIM_FAILED
                          : DISP_CLAIM_PENDING;
    }
    c->cb.claim(DISP_CLAIMS_OK, res, c->n, c->arg);
    free(res);
    free(c);
}

static void claim(disp_claims_t *base, const disp_claim_req_t *reqs, size_t nreq, disp_claim_cb cb,
                  void *arg)
{
    claims_redis_t *r = (claims_redis_t *)base;
    size_t n = 0;
    for (size_t q = 0; q < nreq; q++)
        n += reqs[q].n;
    disp_claim_ref_t *refs = xmalloc(n * sizeof *refs);
    char *modes = xmalloc(n + 1);
    size_t k = 0;
    for (size_t q = 0; q < nreq; q++) {
        for (size_t i = 0; i < reqs[q].n; i++, k++) {
            refs[k] = (disp_claim_ref_t){
                .user = reqs[q].user, .event = reqs[q].event, .device = reqs[q].devices[i]};
            modes[k] = reqs[q].mode == DISP_CLAIM_REPLAY ? 'r' : 'o';
        }
    }
    modes[n] = '\0';
    const char *const *lapsed;
    size_t nlapsed = disp_lease_dead(r->lease, &lapsed);
    char nl[24];
    snprintf(nl, sizeof nl, "%zu", nlapsed);
    const char **args = xmalloc((4 + nlapsed) * sizeof *args);
    args[0] = r->pending_ms;
    args[1] = disp_lease_id(r->lease);
    args[2] = r->entry_ttl;
    args[3] = nl;
    for (size_t i = 0; i < nlapsed; i++)
        args[4 + i] = lapsed[i];
    call_t *c = call_new(n, arg);
    c->cb.claim = cb;
    eval_entries(r, r->s_claim, refs, modes, false, n, args, 4 + nlapsed, on_claimed, c);
    free(args);
    free(modes);
    free(refs);
}

static void on_marked(int status, const db_reply_t *reply, void *arg)
{
    call_t *c = arg;
    bool ok = status == DB_OK && db_reply_type(reply) != DB_REPLY_ERROR;
    c->cb.done(ok ? DISP_CLAIMS_OK : DISP_CLAIMS_EUNAVAIL, c->arg);
    free(c);
}

static void mark(claims_redis_t *r, const disp_claim_ref_t *refs, size_t n, const char *state,
                 disp_claims_done_cb cb, void *arg)
{
    const char *args[] = {r->entry_ttl, state};
    call_t *c = call_new(n, arg);
    c->cb.done = cb;
    eval_entries(r, r->s_done, refs, NULL, true, n, args, 2, on_marked, c);
}

static void mark_done(disp_claims_t *base, const disp_claim_ref_t *refs, size_t n,
                      disp_claims_done_cb cb, void *arg)
{
    mark((claims_redis_t *)base, refs, n, "d", cb, arg);
}

static void mark_failed(disp_claims_t *base, const disp_claim_ref_t *refs, size_t n,
                        disp_claims_done_cb cb, void *arg)
{
    mark((claims_redis_t *)base, refs, n, "f", cb, arg);
}

static void renew(disp_claims_t *base, const disp_claim_ref_t *refs, size_t n,
                  disp_claims_done_cb cb, void *arg)
{
    claims_redis_t *r = (claims_redis_t *)base;
    const char *args[] = {r->pending_ms, disp_lease_id(r->lease)};
    call_t *c = call_new(n, arg);
    c->cb.done = cb;
    eval_entries(r, r->s_renew, refs, NULL, false, n, args, 2, on_marked, c);
}

typedef struct ev_call {
    disp_claims_event_cb cb;
    void *arg;
} ev_call_t;

static void on_event(int status, const db_reply_t *reply, void *arg)
{
    ev_call_t *c = arg;
    size_t len = 0;
    const char *ev = NULL;
    int t = status == DB_OK ? db_reply_type(reply) : DB_REPLY_ERROR;
    if (t == DB_REPLY_STRING)
        ev = db_reply_str(reply, &len);
    c->cb(t == DB_REPLY_STRING || t == DB_REPLY_NIL ? DISP_CLAIMS_OK : DISP_CLAIMS_EUNAVAIL, ev,
          len, c->arg);
    free(c);
}

static void event(disp_claims_t *base, const char *user, const char *ev, disp_claims_event_cb cb,
                  void *arg)
{
    claims_redis_t *r = (claims_redis_t *)base;
    char k[KEY_MAX];
    ev_call_t *c = xmalloc(sizeof *c);
    c->cb = cb;
    c->arg = arg;
    key_ledger(k, r->prefix, user, ev);
    db_cmd(r->db, on_event, c, "HGET", k, "ev", NULL);
}

static void destroy(disp_claims_t *base)
{
    claims_redis_t *r = (claims_redis_t *)base;
    free(r->prefix);
    free(r);
}

static const disp_claims_ops_t ops = {.claim = claim,
                                      .mark_done = mark_done,
                                      .mark_failed = mark_failed,
                                      .renew = renew,
                                      .event = event,
                                      .destroy = destroy};

disp_claims_t *disp_claims_redis_create(struct db *db, const disp_claims_redis_opts_t *o)
{
    claims_redis_t *r = xcalloc(1, sizeof *r);
    r->base.ops = &ops;
    r->base.pending_ttl_s = o->pending_ttl_s;
    r->db = db;
    r->lease = o->lease;
    r->prefix = xstrdup(o->prefix);
    snprintf(r->pending_ms, sizeof r->pending_ms, "%ld", o->pending_ttl_s * 1000);
    snprintf(r->entry_ttl, sizeof r->entry_ttl, "%ld", o->done_ttl_s);
    r->s_claim = db_script(db, lua_claim);
    r->s_done = db_script(db, lua_mark_done);
    r->s_renew = db_script(db, lua_renew);
    return &r->base;
}
