/* ratelimit.h - per-user and per-client-IP request limits shared by all herald instances.
 *
 * GCRA (generic cell rate algorithm, the leaky bucket as a virtual scheduling time): each key keeps
 * one number in Redis, its theoretical arrival time (TAT). Both keys are checked and updated by one
 * atomic Lua script using the Redis server's clock, so instances with skewed clocks agree.
 * tok_gcra() is the same math in C, used by the unit tests and documented next to the script. */
#ifndef HERALD_TOKENS_RATELIMIT_H
#define HERALD_TOKENS_RATELIMIT_H

#include <stdbool.h>
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

/* GCRA step in C. *tat_ms is the stored TAT (0 = new key) and is updated when allowed. */
void tok_gcra(int64_t *tat_ms, int64_t now_ms, long rate, long burst, tok_rl_result_t *out);

#endif
