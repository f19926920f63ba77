/* backoff.h - exponential backoff with full jitter (AWS architecture blog's "full jitter"). */
#ifndef HERALD_CORE_BACKOFF_H
#define HERALD_CORE_BACKOFF_H

#include <stdint.h>

/* The ceiling for retry number `attempt` (0-based): min(cap_ms, base_ms * 2^attempt). */
uint64_t backoff_ceiling(unsigned attempt, uint64_t base_ms, uint64_t cap_ms);
/* A delay uniformly drawn from [0, ceiling]; `rnd` is a random 64-bit value (tests pass fixed
 * ones). */
uint64_t backoff_full_jitter(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, uint64_t rnd);

#endif
