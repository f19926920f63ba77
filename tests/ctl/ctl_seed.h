/* ctl_seed.h - test helpers for heraldctl and the sweep: fast seeding of token records straight
 * into Redis (pipelined hiredis, the layout of DESIGN.md), running the built heraldctl, and
 * checking that the owner and expiry indexes agree with the device hashes (ctl_seed.c); cmocka
 * fixtures and the checks that fail a test (ctl_fixture.c, for the tests only). */
#ifndef HERALD_TESTS_CTL_SEED_H
#define HERALD_TESTS_CTL_SEED_H

#include "core/buf.h"
#include "tests/support/harness.h"
#include "tests/support/tkeys.h"
#include "tokens/model.h"

#include <stdbool.h>
#include <stdint.h>

/* Fills r for record i (user_id/device_id/token already set); the default is active, expiring
 * in a day. */
typedef void (*seed_shape_fn)(long i, tok_record_t *r, int64_t now, void *arg);

/* Writes n records: user "u<i / per_user>", device "d<i % per_user>", token
 * "ExponentPushToken[t<i>]", plus owner keys and expiry entries. rs may be a node of a Redis
 * Cluster at rest (rs->cluster): each key goes to its slot's master. Returns 0 or -1. */
int seed_records(th_redis_t *rs, long n, long per_user, int64_t now, seed_shape_fn shape,
                 void *arg);

/* Writes a config for this Redis into dir/heraldctl.conf (path into out). extra: more lines. */
void seed_conf(const char *dir, const char *redis_url, const char *extra, char *out, size_t outlen);

/* Runs `heraldctl --config conf <args>` (args go through the shell). Collects stdout into out
 * and stderr into err (either may be NULL). Returns the exit code, or -1. */
int run_ctl(const char *conf, buf_t *out, buf_t *err, const char *args);

/* Checks every index entry against the records (and the reverse for the expiry index): returns
 * the number of inconsistencies, printing each. */
long check_indexes(th_redis_t *rs);

/* Integer reply of a command, or -1. */
long long redis_int(th_redis_t *rs, const char *cmd);
/* redis_int's command counting the entries of every expiry bucket (prefix "herald:"). */
#define SEED_EXPIRY_COUNT "EVAL \"" TH_EXPIRY_COUNT_LUA "\" 0 herald:expiry:{t"
/* 1 when token has an owner key, else 0. */
long long seed_owner_exists(th_redis_t *rs, const char *token);

/* cmocka fixtures for a group whose state is its th_redis_t (the group setup sets *state):
 * seed_flush empties that Redis before a test, seed_stop stops it after the group. */
int seed_flush(void **state);
int seed_stop(void **state);

/* Seconds since the epoch. */
int64_t seed_now(void);

/* Runs `heraldctl --config conf <printf args>` as run_ctl does; out and err are reset first and
 * NUL-terminated after (buf_cstr-free reading by the caller). Returns the exit code, or -1. */
int run_ctlf(const char *conf, buf_t *out, buf_t *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Whether b holds needle; prints b when it does not. */
bool out_has(const buf_t *b, const char *needle);

/* The stored record of (user, device); fails the test when there is none or it does not parse. */
tok_record_t seed_stored(th_redis_t *rs, const char *user, const char *device);

/* Asserts that token's owner key names (user, device). */
void seed_expect_owner(th_redis_t *rs, const char *token, const char *user, const char *device);

/* Every key with its type, expiry time and value (hash fields sorted), as one string (new, free
 * it): equal snapshots mean nothing changed. */
char *seed_snapshot(th_redis_t *rs);

#endif
