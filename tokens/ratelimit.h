/* ratelimit.h - per-user and per-client-IP request limits.
 *
 * GCRA (generic cell rate algorithm, the leaky bucket as a virtual scheduling time): each key keeps
 * one number, its theoretical arrival time (TAT). The per-user limit is shared by all herald
 * instances: its TAT lives in Redis and the API's store scripts charge it on the Redis server's
 * clock in the same round trip as the operation (tokens/lua/gcra.lua; tok_rl_check() charges
 * user and IP keys alone, for the one call outside the store). The per-IP limit, an abuse guard
 * charged before authentication, is kept in each instance's memory (tok_rl_local_*): no Redis
 * work for a request that is refused or fails authentication; with N instances behind one
 * balancer an address gets up to N times its burst. tok_gcra() is the same math in C. */
#ifndef HERALD_TOKENS_RATELIMIT_H
#define HERALD_TOKENS_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tok_rl tok_rl_t;

typedef struct tok_rl_result {
    bool allowed;
    const char *which;  /* "user" or "ip": the key that refused (static string), NULL if allowed */
    long limit;         /* the burst of the tightest key (RateLimit-Limit) */
    long remaining;     /* requests left right now on the tightest key (RateLimit-Remaining) */
    long reset_s;       /* seconds until that key is full again (RateLimit-Reset) */
    long retry_after_s; /* when refused: seconds until one request is allowed (>= 1) */
} tok_rl_result_t;

/* One key's verdict. */
typedef struct tok_rl_key {
    bool ok;
    long long remaining, reset_ms, retry_ms;
    long burst;
    const char *which; /* "user" or "ip" */
} tok_rl_key_t;

/* The verdict of n keys together: the first refusing key (user before ip), else the tightest. */
void tok_rl_combine(const tok_rl_key_t *k, int n, tok_rl_result_t *out);

/* status is 0, or negative (Redis unavailable): the caller decides to fail open or closed. */
typedef void (*tok_rl_cb)(int status, const tok_rl_result_t *res, void *arg);

typedef struct tok_rl_limits {
    long user_rate, user_burst; /* requests per second, bucket size */
    long ip_rate, ip_burst;
} tok_rl_limits_t;

struct db;
/* new: db borrowed, prefix copied. */
tok_rl_t *tok_rl_create(struct db *db, const char *prefix);
void tok_rl_destroy(tok_rl_t *rl);
/* Charges one request to user_id (may be NULL: IP only) and ip. */
void tok_rl_check(tok_rl_t *rl, const char *user_id, const char *ip, const tok_rl_limits_t *lim,
                  tok_rl_cb cb, void *arg);

/* The in-process limiter: a bounded table of keys (client addresses) and their TATs on the
 * monotonic clock. A full table forgets the key closest to being fresh again (lenient, never
 * unbounded). Loop-thread only. */
typedef struct tok_rl_local tok_rl_local_t;
/* new: room for capacity keys (rounded up to a power of two). */
tok_rl_local_t *tok_rl_local_create(size_t capacity);
void tok_rl_local_destroy(tok_rl_local_t *l);
/* Charges one request to key at now_ms when rate and burst allow it; the verdict says. */
tok_rl_key_t tok_rl_local_charge(tok_rl_local_t *l, const char *key, int64_t now_ms, long rate,
                                 long burst);
/* Gives back one charged request (another limit refused it after all). */
void tok_rl_local_refund(tok_rl_local_t *l, const char *key, int64_t now_ms, long rate);

/* GCRA step in C. *tat_ms is the stored TAT (0 = new key) and is updated when allowed. */
void tok_gcra(int64_t *tat_ms, int64_t now_ms, long rate, long burst, tok_rl_result_t *out);

#endif
