/* lease.c - this instance's lease in <p>instances and its view of the lapsed ones (lease.h):
 * one timer, one script call (lua/lease.lua) per renewal, at most one in flight. */
#include "pipeline/lease.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "db/keys.h"
#include "pipeline/lua_lease.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct disp_lease {
    uv_loop_t *loop;
    db_t *db;
    db_script_t *script;
    char key[KEY_MAX];
    char id[DISP_LEASE_ID_LEN + 1];
    char len[24], horizon[24], dead_max[24];
    long lease_ms;
    uv_timer_t timer;
    bool started;
    bool renewing;   /* a renewal is in flight */
    unsigned failed; /* renewals failed in a row */
    char dead[DISP_LEASE_DEAD_MAX][DISP_LEASE_ID_LEN + 1];
    const char *dead_ptr[DISP_LEASE_DEAD_MAX];
    size_t ndead;
    metric_t *m_lapsed;
    void (*stop_cb)(void *arg);
    void *stop_arg;
};

static bool valid_id(const char *s, size_t n)
{
    if (n != DISP_LEASE_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Keeps the lapsed instances the reply names (elements 1..), skipping this one and anything
 * that is not an id herald writes. */
static void take_view(disp_lease_t *l, const db_reply_t *r)
{
    l->ndead = 0;
    for (size_t i = 1; i < db_reply_len(r) && l->ndead < DISP_LEASE_DEAD_MAX; i++) {
        size_t n;
        const char *s = db_reply_str(db_reply_elem(r, i), &n);
        if (s == NULL || !valid_id(s, n) || strcmp(s, l->id) == 0)
            continue;
        memcpy(l->dead[l->ndead], s, n + 1);
        l->dead_ptr[l->ndead] = l->dead[l->ndead];
        l->ndead++;
    }
}

static void on_renewed(int status, const db_reply_t *r, void *arg)
{
    disp_lease_t *l = arg;
    l->renewing = false;
    if (status != DB_OK || db_reply_type(r) != DB_REPLY_ARRAY || db_reply_len(r) < 1) {
        /* Past lease_ms without a renewal the others count this instance gone. */
        if (l->failed++ % 10 == 0)
            LOG(LOG_LVL_WARN, "instance lease not renewed; retrying",
                LKS("error", status != DB_OK ? db_strerror(status) : "unexpected reply"),
                LKS("instance", l->id), LKI("leaseMs", l->lease_ms));
        return;
    }
    l->failed = 0;
    if (db_reply_int(db_reply_elem(r, 0)) == 1) {
        metric_inc(l->m_lapsed);
        LOG(LOG_LVL_WARN,
            "this instance's lease had lapsed: other instances may have taken its dedup claims "
            "over (a notification in flight may be sent twice)",
            LKS("instance", l->id), LKI("leaseMs", l->lease_ms));
    }
    take_view(l, r);
}

static void renew(disp_lease_t *l, const char *len, db_cb cb)
{
    const char *argv[] = {l->key, l->id, len, l->horizon, l->dead_max};
    db_eval(l->db, l->script, cb, l, 1, 5, argv, NULL);
}

static void on_timer(uv_timer_t *t)
{
    disp_lease_t *l = t->data;
    if (l->renewing)
        return; /* Redis is slow: the reply (or its timeout) comes first */
    l->renewing = true;
    renew(l, l->len, on_renewed);
}

disp_lease_t *disp_lease_create(uv_loop_t *loop, struct db *db, const disp_lease_opts_t *o)
{
    disp_lease_t *l = xcalloc(1, sizeof *l);
    l->loop = loop;
    l->db = db;
    l->lease_ms = o->lease_ms;
    l->script = db_script(db, lua_lease);
    key_instances(l->key, o->prefix);
    rand_hex(l->id, DISP_LEASE_ID_LEN / 2);
    snprintf(l->len, sizeof l->len, "%ld", o->lease_ms);
    snprintf(l->horizon, sizeof l->horizon, "%ld", o->horizon_ms);
    snprintf(l->dead_max, sizeof l->dead_max, "%d", DISP_LEASE_DEAD_MAX);
    if (o->metrics)
        l->m_lapsed = metric_get(metric_counter_new(
            o->metrics, "herald_lease_lapsed_total",
            "Times this instance found its own lease lapsed (not renewed within dedup.lease_ms): "
            "others may have taken its claims over.",
            NULL));
    return l;
}

void disp_lease_start(disp_lease_t *l)
{
    uint64_t every = (uint64_t)l->lease_ms / 3;
    uv_timer_init(l->loop, &l->timer);
    l->timer.data = l;
    l->started = true;
    uv_timer_start(&l->timer, on_timer, 0, every ? every : 1);
    LOG(LOG_LVL_INFO, "instance lease taken", LKS("instance", l->id), LKI("leaseMs", l->lease_ms));
}

static void on_released(int status, const db_reply_t *r, void *arg)
{
    disp_lease_t *l = arg;
    if (status != DB_OK || db_reply_type(r) == DB_REPLY_ERROR)
        LOG(LOG_LVL_WARN, "instance lease not given up; it lapses on its own",
            LKS("instance", l->id), LKI("leaseMs", l->lease_ms));
    if (l->stop_cb)
        l->stop_cb(l->stop_arg);
}

void disp_lease_stop(disp_lease_t *l, void (*cb)(void *arg), void *arg)
{
    l->stop_cb = cb;
    l->stop_arg = arg;
    if (l->started) {
        l->started = false;
        uv_close((uv_handle_t *)&l->timer, NULL);
    }
    renew(l, "0", on_released);
}

void disp_lease_destroy(disp_lease_t *l)
{
    free(l);
}

const char *disp_lease_id(const disp_lease_t *l)
{
    return l->id;
}

size_t disp_lease_dead(const disp_lease_t *l, const char *const **ids)
{
    *ids = l->dead_ptr;
    return l->ndead;
}
