/* backoff.c - retry delays. Full jitter spreads retries of many clients over the whole window so a
 * recovering server is not hit by synchronized waves. */
#include "core/backoff.h"

uint64_t backoff_ceiling(unsigned attempt, uint64_t base_ms, uint64_t cap_ms)
{
    uint64_t c = base_ms;
    for (unsigned i = 0; i < attempt && c < cap_ms; i++)
        c *= 2;
    return c < cap_ms ? c : cap_ms;
}

uint64_t backoff_full_jitter(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, uint64_t rnd)
{
    uint64_t c = backoff_ceiling(attempt, base_ms, cap_ms);
    return rnd % (c + 1);
}
