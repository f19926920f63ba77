/* rate_shared.h - the send budget shared by all herald instances (expo.shared_rate_limit): a
 * per-project sliding-window log of grants in Redis, so that N instances together never send more
 * than expo.rate_per_sec in any window (1005 ms, as the local limiter). Plugs into the client as
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
/* The window the rate applies to, in ms: the shared twin of expo_opts_t.rate_window_ms (default
 * 1005; below 1000 is raised to 1000). What it holds above a second absorbs the spread between a
 * grant and its request's arrival at Expo, at a cost of window/1000 in throughput. Every instance
 * must use the same value. */
void expo_shared_rate_set_window(expo_shared_rate_t *s, long window_ms);
/* Borrowed, valid until destroy: pass as expo_opts_t.rate_hook. */
const expo_rate_hook_t *expo_shared_rate_hook(expo_shared_rate_t *s);

#endif
