/* rate_shared.h - the send budget shared by all herald instances (expo.shared_rate_limit): a
 * per-project sliding-window log of grants in Redis, so that N instances together never send more
 * than expo.rate_per_sec in any window of 1005 ms (as the local limiter). Plugs into the client as
 * its expo_rate_hook_t. */
#ifndef HERALD_EXPO_RATE_SHARED_H
#define HERALD_EXPO_RATE_SHARED_H

#include "db/db.h"
#include "expo/expo.h"

typedef struct expo_shared_rate expo_shared_rate_t;

/* new: free with expo_shared_rate_destroy (after the client that uses its hook). db borrowed,
 * prefix copied. */
expo_shared_rate_t *expo_shared_rate_create(db_t *db, const char *prefix, long rate_per_sec);
void expo_shared_rate_destroy(expo_shared_rate_t *s);
/* Borrowed, valid until destroy: pass as expo_opts_t.rate_hook. */
const expo_rate_hook_t *expo_shared_rate_hook(expo_shared_rate_t *s);

#endif
