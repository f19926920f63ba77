/* ctl_seed.h - test helpers for heraldctl and the sweep: fast seeding of token records straight
 * into Redis (pipelined hiredis, the layout of DESIGN.md), running the built heraldctl, and
 * checking that the owner and expiry indexes agree with the device hashes. */
#ifndef HERALD_TESTS_CTL_SEED_H
#define HERALD_TESTS_CTL_SEED_H

#include "core/buf.h"
#include "tests/support/harness.h"
#include "tokens/model.h"

#include <stdbool.h>
#include <stdint.h>

/* Fills r for record i (user_id/device_id/token already set); the default is active, expiring
 * in a day. */
typedef void (*seed_shape_fn)(long i, tok_record_t *r, int64_t now, void *arg);

/* Writes n records: user "u<i / per_user>", device "d<i % per_user>", token
 * "ExponentPushToken[t<i>]", plus owner keys and expiry entries. Returns 0 or -1. */
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

#endif
