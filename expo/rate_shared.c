/* rate_shared.c - the cross-instance Expo send budget in Redis.
 *
 * Key `<prefix>expo:rate:<project>`: a list of the grants of the last window, each stamped with
 * the Redis server's clock (so instances with skewed clocks agree). The script drops the grants
 * that left the window, grants min(want, rate - still in the window), logs the grant, and tells
 * the caller when the rest would fit. Because the window slides, instances together never put
 * more than `rate` sends into any window; fixed per-second counters let them send up to twice
 * the rate within a few milliseconds across a second boundary. Grants are paced across instances
 * as the local limiter paces requests. A grant counts from when it is made, so the client sends
 * it at once and forfeits what it cannot send. */
#include "core/xalloc.h"
#include "db/keys.h"
#include "expo/lua_scripts.h"
#include "expo/rate_shared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct expo_shared_rate {
    expo_rate_hook_t hook;
    db_t *db;
    db_script_t *script;
    char *prefix;
    long rate, window_ms;
};

typedef struct ask {
    expo_grant_cb done;
    void *ctx;
} ask_t;

static void on_reply(int status, const db_reply_t *reply, void *arg)
{
    ask_t *a = arg;
    long g = -1, next = 0;
    if (status == DB_OK && db_reply_type(reply) == DB_REPLY_ARRAY && db_reply_len(reply) == 2) {
        g = (long)db_reply_int(db_reply_elem(reply, 0));
        next = (long)db_reply_int(db_reply_elem(reply, 1));
    }
    a->done(g, next, a->ctx);
    free(a);
}

static void acquire(void *arg, const char *project, long want, expo_grant_cb done, void *ctx)
{
    expo_shared_rate_t *s = arg;
    ask_t *a = xmalloc(sizeof *a);
    a->done = done;
    a->ctx = ctx;
    char key[KEY_MAX], w[24], r[24], win[24];
    key_expo_rate(key, s->prefix, *project ? project : "default");
    snprintf(w, sizeof w, "%ld", want);
    snprintf(r, sizeof r, "%ld", s->rate);
    snprintf(win, sizeof win, "%ld", s->window_ms);
    const char *argv[] = {key, w, r, win};
    db_eval(s->db, s->script, on_reply, a, 1, 4, argv, NULL);
}

expo_shared_rate_t *expo_shared_rate_create(db_t *db, const char *prefix, long rate_per_sec)
{
    expo_shared_rate_t *s = xcalloc(1, sizeof *s);
    s->db = db;
    s->prefix = xstrdup(prefix ? prefix : "herald:");
    s->rate = rate_per_sec;
    s->window_ms = 1005;
    s->script = db_script(db, lua_rate_grant);
    s->hook.acquire = acquire;
    s->hook.arg = s;
    return s;
}

void expo_shared_rate_destroy(expo_shared_rate_t *s)
{
    if (!s)
        return;
    free(s->prefix);
    free(s);
}

void expo_shared_rate_set_window(expo_shared_rate_t *s, long window_ms)
{
    s->window_ms = window_ms > 1000 ? window_ms : 1000;
}

const expo_rate_hook_t *expo_shared_rate_hook(expo_shared_rate_t *s)
{
    return &s->hook;
}
