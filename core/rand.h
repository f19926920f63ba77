/* rand.h - fast non-cryptographic randomness (jitter, sampling) and random ids. */
#ifndef HERALD_CORE_RAND_H
#define HERALD_CORE_RAND_H

#include <stddef.h>
#include <stdint.h>

/* xoshiro-style generator seeded from getrandom(2) on first use; loop-thread only. */
uint64_t rand_u64(void);
/* Uniform in [0, n); n == 0 returns 0. */
uint64_t rand_below(uint64_t n);
/* Writes 2*nbytes lowercase hex characters plus NUL from the kernel CSPRNG (ids others may see). */
void rand_hex(char *out, size_t nbytes);

#endif
