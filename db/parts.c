/* parts.c - db_eval_parts (db.h): a batch of self-contained parts as one script call on a single
 * Redis, and as one call per hash slot on a cluster, where the keys of one call must share a slot.
 * The answers are put back in part order, so a caller sees the same result either way. */
#include "core/xalloc.h"
#include "db/db.h"

#include <stdlib.h>
#include <string.h>

typedef struct parts_call {
    db_parts_cb cb;
    void *arg;
    long long *res;
    size_t nres;
    size_t left; /* calls not answered yet */
    int status;  /* the first failure */
} parts_call_t;

/* One slot's call: where each integer of its reply goes in the batch's answer. */
typedef struct group {
    parts_call_t *c;
    size_t n;
    size_t at[];
} group_t;

typedef struct order {
    unsigned slot;
    size_t part;
} order_t;

static int by_slot(const void *a, const void *b)
{
    const order_t *x = a, *y = b;
    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    return x->part < y->part ? -1 : x->part > y->part;
}

static void finish(parts_call_t *c)
{
    c->cb(c->status, c->res, c->nres, c->arg);
    free(c->res);
    free(c);
}

static int group_status(int status, const db_reply_t *r, size_t n)
{
    if (status != DB_OK)
        return status;
    if (db_reply_type(r) == DB_REPLY_ERROR)
        return DB_EPROTO;
    if (n > 0 && (db_reply_type(r) != DB_REPLY_ARRAY || db_reply_len(r) != n))
        return DB_EPROTO;
    return DB_OK;
}

static void on_group(int status, const db_reply_t *r, void *arg)
{
    group_t *g = arg;
    parts_call_t *c = g->c;
    status = group_status(status, r, g->n);
    if (status == DB_OK) {
        for (size_t i = 0; i < g->n; i++)
            c->res[g->at[i]] = db_reply_int(db_reply_elem(r, i));
    } else {
        for (size_t i = 0; i < g->n; i++)
            c->res[g->at[i]] = DB_PARTS_FAILED;
        if (c->status == DB_OK)
            c->status = status;
    }
    free(g);
    if (--c->left == 0)
        finish(c);
}

static void on_empty(void *arg)
{
    finish(arg);
}

/* One db_eval_parts call as laid out in argv: per part, where its keys, arguments and answers
 * start. */
typedef struct batch {
    db_t *db;
    db_script_t *s;
    parts_call_t *c;
    const db_part_t *parts;
    const size_t *koff, *aoff, *roff;
    size_t nhead;
    const char *const *head, *const *argv;
} batch_t;

/* The parts o[0..n) (one slot's, in part order) as one db_eval. */
static void eval_group(const batch_t *b, const order_t *o, size_t n)
{
    const db_part_t *parts = b->parts;
    const size_t *koff = b->koff, *aoff = b->aoff, *roff = b->roff;
    const char *const *argv = b->argv;
    size_t nhead = b->nhead, nk = 0, na = 0, nr = 0;
    for (size_t i = 0; i < n; i++) {
        nk += parts[o[i].part].nkeys;
        na += parts[o[i].part].nargs;
        nr += parts[o[i].part].nres;
    }
    group_t *g = xmalloc(sizeof *g + nr * sizeof g->at[0]);
    g->c = b->c;
    g->n = nr;
    const char **v = xmalloc((nk + nhead + na + 1) * sizeof *v);
    size_t k = 0, a = nk + nhead, q = 0;
    memcpy(v + nk, b->head, nhead * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        const db_part_t *p = &parts[o[i].part];
        memcpy(v + k, argv + koff[o[i].part], p->nkeys * sizeof *v);
        memcpy(v + a, argv + aoff[o[i].part], p->nargs * sizeof *v);
        k += p->nkeys;
        a += p->nargs;
        for (size_t j = 0; j < p->nres; j++)
            g->at[q++] = roff[o[i].part] + j;
    }
    db_eval(b->db, b->s, on_group, g, (int)nk, (int)(nk + nhead + na), v, NULL);
    free(v);
}

void db_eval_parts(db_t *db, db_script_t *s, db_parts_cb cb, void *arg, size_t nparts,
                   const db_part_t *parts, size_t nhead, const char *const *argv)
{
    parts_call_t *c = xcalloc(1, sizeof *c);
    c->cb = cb;
    c->arg = arg;
    size_t *off = xmalloc(3 * (nparts + 1) * sizeof *off);
    size_t *koff = off, *aoff = off + nparts + 1, *roff = off + 2 * (nparts + 1);
    size_t nk = 0;
    for (size_t i = 0; i < nparts; i++)
        nk += parts[i].nkeys;
    koff[0] = 0;
    aoff[0] = nk + nhead;
    roff[0] = 0;
    for (size_t i = 0; i < nparts; i++) {
        koff[i + 1] = koff[i] + parts[i].nkeys;
        aoff[i + 1] = aoff[i] + parts[i].nargs;
        roff[i + 1] = roff[i] + parts[i].nres;
    }
    c->nres = roff[nparts];
    c->res = xmalloc((c->nres + 1) * sizeof *c->res);
    order_t *o = xmalloc((nparts + 1) * sizeof *o);
    bool cluster = db_is_cluster(db);
    for (size_t i = 0; i < nparts; i++) {
        const char *k = parts[i].nkeys ? argv[koff[i]] : "";
        o[i] = (order_t){cluster ? db_key_slot(k, strlen(k)) : 0, i};
    }
    if (cluster)
        qsort(o, nparts, sizeof *o, by_slot);
    if (nparts == 0)
        db_defer(db, on_empty, c);
    batch_t b = {db, s, c, parts, koff, aoff, roff, nhead, argv + nk, argv};
    for (size_t i = 0, e; i < nparts; i = e) {
        for (e = i + 1; e < nparts && o[e].slot == o[i].slot; e++)
            ;
        c->left++; /* no answer comes inside db_eval */
        eval_group(&b, o + i, e - i);
    }
    free(o);
    free(off);
}
