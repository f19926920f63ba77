/* claims_redis.c - the dedup claims in Redis, in the delivery ledger: one HASH per (user, event)
 * at <p>led:<n>:{<user>}:<event> (db/keys.h key_ledger) whose field s:<device> is the device's
 * claim state: `p:<owner>:<deadline ms>` (pending; the deadline is dedup.pending_ttl_s after the
 * claim or its last renewal), `d` (done) or `f` (failed). The entry lives dedup.done_ttl_s from
 * its creation (the TTL is set once). A claim and a done mark also write the trace records of
 * their turn (disp_trace_ride), so an entry takes one write per turn. The owner is this instance's
 * lease id (pipeline/lease.h); each claim call passes the lease's view of lapsed owners, whose
 * claims the script takes over. Each call is one script call however many devices it covers
 * (lua/claim.lua, lua/mark_done.lua, lua/renew.lua): the pipeline claims a loop turn's events at
 * once and marks a loop turn's outcomes at once. */
#include "pipeline/claims.h"
#include "core/buf.h"
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
    char pending_ms[24], entry_ttl[24], max_records[24];
    db_script_t *s_claim, *s_done, *s_renew;
} claims_redis_t;

typedef struct call {
    disp_claims_done_cb cb;
    void *arg;
} call_t;

static call_t *call_new(disp_claims_done_cb cb, void *arg)
{
    call_t *c = xmalloc(sizeof *c);
    c->cb = cb;
    c->arg = arg;
    return c;
}

/* claim.lua's mode argument for a mode letter. */
static const char *mode_arg(char m)
{
    return m == 'r' ? "r" : m == 'R' ? "R" : m == 'O' ? "O" : "o";
}

/* The run's trace records (refs[i..e) with rec): their count, then field and JSON each. */
static size_t put_records(const disp_claim_ref_t *refs, size_t i, size_t e, char count[BUF_NUM_MAX],
                          const char **tail)
{
    size_t nt = 1, nr = 0;
    for (size_t j = i; j < e; j++) {
        const char *r = refs[j].rec;
        for (size_t k = 0; k < refs[j].nrec; k++, nr++) {
            tail[nt++] = r;
            r += strlen(r) + 1;
            tail[nt++] = r;
            r += strlen(r) + 1;
        }
    }
    buf_fmt_u64(count, nr);
    tail[0] = count;
    return nt;
}

/* One script call over n device refs (on a cluster, one per slot: db_eval_parts): KEYS are their
 * ledger entries, one per run of refs of one (user, event) (and one mode, when modes is not
 * NULL); ARGV the nhead arguments, then per entry [its mode,] its number of devices [, its event
 * (outcomes: the run's first event_json or "")] and the devices [each with its outcome or ""]
 * [, with records: the number of the run's trace records, then their fields and JSON].
 * Each entry is one part (self-contained in the script), answering one integer per device when
 * per_device. */
static void eval_entries(claims_redis_t *r, db_script_t *s, const disp_claim_ref_t *refs,
                         const char *modes, bool outcomes, bool records, bool per_device, size_t n,
                         const char *const *head, size_t nhead, db_parts_cb cb, void *arg)
{
    char(*keys)[KEY_MAX] = xmalloc(n * sizeof *keys);
    char(*counts)[2][BUF_NUM_MAX] = xmalloc(n * sizeof *counts);
    size_t nrec = 0;
    for (size_t i = 0; i < n; i++)
        nrec += records ? refs[i].nrec : 0;
    const char **tail = xmalloc((6 * n + 2 * nrec) * sizeof *tail);
    db_part_t *parts = xmalloc(n * sizeof *parts);
    size_t nk = 0, nt = 0;
    for (size_t i = 0, e; i < n; i = e) {
        for (e = i + 1; e < n && !strcmp(refs[e].event, refs[i].event) &&
                        !strcmp(refs[e].user, refs[i].user) && (!modes || modes[e] == modes[i]);
             e++)
            ;
        size_t t0 = nt;
        key_ledger(keys[nk], r->prefix, refs[i].user, refs[i].event);
        if (modes)
            tail[nt++] = mode_arg(modes[i]);
        buf_fmt_u64(counts[nk][0], e - i);
        tail[nt++] = counts[nk][0];
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
        if (records)
            nt += put_records(refs, i, e, counts[nk][1], tail + nt);
        parts[nk++] = (db_part_t){.nkeys = 1, .nargs = nt - t0, .nres = per_device ? e - i : 0};
    }
    const char **argv = xmalloc((nk + nhead + nt) * sizeof *argv);
    for (size_t i = 0; i < nk; i++)
        argv[i] = keys[i];
    memcpy(argv + nk, head, nhead * sizeof *head);
    memcpy(argv + nk + nhead, tail, nt * sizeof *tail);
    db_eval_parts(r->db, s, cb, arg, nk, parts, nhead, argv);
    free(argv);
    free(parts);
    free(tail);
    free(counts);
    free(keys);
}

static disp_claim_t claim_result(long long v)
{
    return v == 1   ? DISP_CLAIM_CLAIMED
           : v == 3 ? DISP_CLAIM_TAKEN
           : v == 0 ? DISP_CLAIM_DONE
           : v == 2 ? DISP_CLAIM_FAILED
                    : DISP_CLAIM_PENDING;
}

/* A claim call: the script's answer and, on a cluster, the devices' owner keys (one GET each,
 * pipelined in the same turn); the caller hears once all have answered. */
typedef struct claim_call {
    disp_claim_cb cb;
    void *arg;
    size_t n, left;
    disp_claim_t *res;
    signed char *owner; /* per device: 1 names it, 0 names another, -1 unknown */
    int status;
} claim_call_t;

typedef struct owner_get {
    claim_call_t *c;
    size_t i;
    size_t len;
    char want[]; /* "<user>\x1f<device>" */
} owner_get_t;

/* A claimed device whose owner key names another is skipped; one whose owner key did not answer
 * is claimed again (with `again`, as its claim is this instance's). */
static void settle_owners(claim_call_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        bool mine = c->res[i] == DISP_CLAIM_CLAIMED || c->res[i] == DISP_CLAIM_TAKEN;
        if (mine && c->owner[i] != 1)
            c->res[i] = c->owner[i] == 0 ? DISP_CLAIM_FOREIGN : DISP_CLAIM_LOST;
    }
}

static void claim_answer(claim_call_t *c)
{
    if (--c->left > 0)
        return;
    if (c->status == DB_OK && c->owner)
        settle_owners(c);
    if (c->status == DB_OK)
        c->cb(DISP_CLAIMS_OK, c->res, c->n, c->arg);
    else
        c->cb(DISP_CLAIMS_EUNAVAIL, NULL, 0, c->arg);
    free(c->res);
    free(c->owner);
    free(c);
}

/* Slots that failed (a cluster node down) answer DISP_CLAIM_LOST for their devices, to claim
 * again; the others go ahead. */
static void on_claimed(int status, const long long *res, size_t n, void *arg)
{
    claim_call_t *c = arg;
    size_t failed = 0;
    for (size_t i = 0; i < c->n && n == c->n; i++) {
        c->res[i] = res[i] == DB_PARTS_FAILED ? DISP_CLAIM_LOST : claim_result(res[i]);
        failed += res[i] == DB_PARTS_FAILED;
    }
    if (n != c->n || (status != DB_OK && failed == 0) || failed == n)
        c->status = DB_EPROTO;
    claim_answer(c);
}

static void on_owner(int status, const db_reply_t *reply, void *arg)
{
    owner_get_t *g = arg;
    int t = status == DB_OK ? (int)db_reply_type(reply) : -1;
    size_t len = 0;
    const char *v = t == DB_REPLY_STRING ? db_reply_str(reply, &len) : NULL;
    g->c->owner[g->i] = t == DB_REPLY_NIL ? 0 : v ? len == g->len && !memcmp(v, g->want, len) : -1;
    claim_answer(g->c);
    free(g);
}

/* On a cluster a token's owner key lives in the token's slot, not the user's: the registration
 * that moves a token commits there last (DESIGN.md "Reassignment across slots"), so a device is
 * sent to only while its token's owner key still names it. */
static void check_owners(claims_redis_t *r, claim_call_t *c, const disp_claim_req_t *reqs,
                         size_t nreq)
{
    size_t k = 0;
    for (size_t q = 0; q < nreq; q++) {
        for (size_t i = 0; i < reqs[q].n; i++, k++) {
            const char *u = reqs[q].user, *d = reqs[q].devices[i];
            size_t ul = strlen(u), dl = strlen(d);
            owner_get_t *g = xmalloc(sizeof *g + ul + dl + 2);
            g->c = c;
            g->i = k;
            g->len = ul + 1 + dl;
            memcpy(g->want, u, ul);
            g->want[ul] = '\x1f';
            memcpy(g->want + ul + 1, d, dl + 1);
            char key[KEY_MAX];
            key_owner(key, r->prefix, reqs[q].tokens[i]);
            c->left++;
            db_cmd(r->db, on_owner, g, "GET", key, NULL);
        }
    }
}

static bool owner_checked(const claims_redis_t *r, const disp_claim_req_t *reqs, size_t nreq)
{
    if (!db_is_cluster(r->db))
        return false;
    for (size_t q = 0; q < nreq; q++)
        if (reqs[q].tokens == NULL)
            return false;
    return true;
}

static void claim(disp_claims_t *base, const disp_claim_req_t *reqs, size_t nreq, disp_claim_cb cb,
                  void *arg)
{
    claims_redis_t *r = (claims_redis_t *)base;
    size_t n = 0;
    for (size_t q = 0; q < nreq; q++)
        n += reqs[q].n;
    claim_call_t *c = xcalloc(1, sizeof *c);
    *c = (claim_call_t){.cb = cb, .arg = arg, .n = n, .left = 1};
    c->res = xmalloc(n * sizeof *c->res);
    disp_claim_ref_t *refs = xmalloc(n * sizeof *refs);
    char *modes = xmalloc(n + 1);
    for (size_t q = 0, k = 0; q < nreq; q++) {
        for (size_t i = 0; i < reqs[q].n; i++, k++) {
            refs[k] = (disp_claim_ref_t){.user = reqs[q].user,
                                         .event = reqs[q].event,
                                         .device = reqs[q].devices[i],
                                         .rec = i == 0 ? reqs[q].rec : NULL,
                                         .nrec = i == 0 ? reqs[q].nrec : 0};
            modes[k] = "oOrR"[2 * (reqs[q].mode == DISP_CLAIM_REPLAY) + reqs[q].again];
        }
    }
    modes[n] = '\0';
    const char *const *lapsed;
    size_t nlapsed = disp_lease_dead(r->lease, &lapsed);
    char nl[BUF_NUM_MAX];
    buf_fmt_u64(nl, nlapsed);
    const char **args = xmalloc((5 + nlapsed) * sizeof *args);
    args[0] = r->pending_ms;
    args[1] = disp_lease_id(r->lease);
    args[2] = r->entry_ttl;
    args[3] = r->max_records;
    args[4] = nl;
    for (size_t i = 0; i < nlapsed; i++)
        args[5 + i] = lapsed[i];
    eval_entries(r, r->s_claim, refs, modes, false, true, true, n, args, 5 + nlapsed, on_claimed,
                 c);
    if (owner_checked(r, reqs, nreq)) {
        c->owner = xmalloc(n);
        check_owners(r, c, reqs, nreq);
    }
    free(args);
    free(modes);
    free(refs);
}

static void on_marked(int status, const long long *res, size_t n, void *arg)
{
    call_t *c = arg;
    (void)res;
    (void)n;
    c->cb(status == DB_OK ? DISP_CLAIMS_OK : DISP_CLAIMS_EUNAVAIL, c->arg);
    free(c);
}

static void mark(claims_redis_t *r, const disp_claim_ref_t *refs, size_t n, const char *state,
                 disp_claims_done_cb cb, void *arg)
{
    const char *args[] = {r->entry_ttl, state, r->max_records};
    call_t *c = call_new(cb, arg);
    eval_entries(r, r->s_done, refs, NULL, true, true, false, n, args, 3, on_marked, c);
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
    call_t *c = call_new(cb, arg);
    eval_entries(r, r->s_renew, refs, NULL, false, false, false, n, args, 2, on_marked, c);
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
    snprintf(r->max_records, sizeof r->max_records, "%ld", o->max_records);
    r->s_claim = db_script(db, lua_claim);
    r->s_done = db_script(db, lua_mark_done);
    r->s_renew = db_script(db, lua_renew);
    return &r->base;
}
