/* tloop.h - driving a libuv loop from a test: run one iteration at a time until a condition holds
 * or a bounded deadline passes. A repeating tick timer keeps uv_run(UV_RUN_ONCE) from blocking
 * forever on an idle connection. */
#ifndef HERALD_TESTS_DB_TLOOP_H
#define HERALD_TESTS_DB_TLOOP_H

#include "core/clock.h"
#include "db/db.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

typedef struct tloop {
    uv_loop_t loop;
    uv_timer_t tick;
} tloop_t;

static inline void tloop_on_tick(uv_timer_t *t)
{
    (void)t;
}

static inline void tloop_init(tloop_t *t)
{
    uv_loop_init(&t->loop);
    uv_timer_init(&t->loop, &t->tick);
    uv_timer_start(&t->tick, tloop_on_tick, 10, 10);
}

/* Runs the loop until *flag or timeout_ms; returns *flag. */
static inline bool tloop_until(tloop_t *t, const bool *flag, int timeout_ms)
{
    uint64_t deadline = clk_mono_ms() + (uint64_t)timeout_ms;
    while (!*flag && clk_mono_ms() < deadline)
        uv_run(&t->loop, UV_RUN_ONCE);
    return *flag;
}

static inline bool tloop_until_ready(tloop_t *t, db_t *db, bool want, int timeout_ms)
{
    uint64_t deadline = clk_mono_ms() + (uint64_t)timeout_ms;
    while (db_ready(db) != want && clk_mono_ms() < deadline)
        uv_run(&t->loop, UV_RUN_ONCE);
    return db_ready(db) == want;
}

/* Closes the tick timer and runs the loop until every handle is closed. */
static inline int tloop_close(tloop_t *t)
{
    uv_close((uv_handle_t *)&t->tick, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    return uv_loop_close(&t->loop);
}

/* A command's outcome, copied out of the callback. */
typedef struct tres {
    bool done;
    int calls;
    int status;
    db_reply_type_t type;
    long long i;
    size_t n; /* string length or array size */
    char str[512];
} tres_t;

static inline void tres_cb(int status, const db_reply_t *r, void *arg)
{
    tres_t *x = arg;
    x->calls++;
    x->done = true;
    x->status = status;
    if (r == NULL)
        return;
    x->type = db_reply_type(r);
    if (x->type == DB_REPLY_INTEGER)
        x->i = db_reply_int(r);
    else if (x->type == DB_REPLY_ARRAY)
        x->n = db_reply_len(r);
    else if (x->type != DB_REPLY_NIL) {
        const char *s = db_reply_str(r, &x->n);
        snprintf(x->str, sizeof x->str, "%.*s", (int)x->n, s);
    }
}

/* Readiness changes seen through db_on_state. */
typedef struct tstates {
    int ups, downs;
} tstates_t;

static inline void tstates_cb(bool up, void *arg)
{
    tstates_t *s = arg;
    if (up)
        s->ups++;
    else
        s->downs++;
}

#endif
