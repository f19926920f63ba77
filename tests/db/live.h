/* live.h - what the Redis-backed tests share: a real redis-server (tests/support), a test loop
 * (tloop.h) and a db_t connected to that server. Test code only. */
#ifndef HERALD_TESTS_DB_LIVE_H
#define HERALD_TESTS_DB_LIVE_H

#include "core/metrics.h"
#include "db/db.h"
#include "tests/db/tloop.h"
#include "tests/support/harness.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct tlive {
    th_redis_t redis;
    tloop_t t;
    db_t *db;
} tlive_t;

/* Starts the server and the loop and creates the client (timeout_ms per command, metrics may be
 * NULL) without waiting for it to connect. False, with the reason on stderr, if any step fails. */
static inline bool tlive_start(tlive_t *l, long timeout_ms, metric_reg_t *reg)
{
    char err[256];
    if (th_redis_start(&l->redis, 0) != 0) {
        fprintf(stderr, "tlive: redis-server did not start\n");
        return false;
    }
    tloop_init(&l->t);
    db_opts_t o = {.url = l->redis.url, .timeout_ms = timeout_ms, .metrics = reg};
    l->db = db_create(&l->t.loop, &o, err, sizeof err);
    if (l->db == NULL)
        fprintf(stderr, "tlive: %s\n", err);
    return l->db != NULL;
}

/* tlive_start, then waits (bounded) until the client is ready. */
static inline bool tlive_start_ready(tlive_t *l, long timeout_ms, metric_reg_t *reg)
{
    return tlive_start(l, timeout_ms, reg) && tloop_until_ready(&l->t, l->db, true, 10000);
}

/* Destroys the client, closes the loop and stops the server; returns tloop_close's result (0
 * when every handle was closed). */
static inline int tlive_stop(tlive_t *l)
{
    db_destroy(l->db);
    l->db = NULL;
    int rc = tloop_close(&l->t);
    th_redis_stop(&l->redis);
    return rc;
}

#endif
