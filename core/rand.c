/* rand.c - randomness: xorshift for jitter, getrandom(2) for request ids. */
#include "core/rand.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t state[2];

static void seed(void)
{
    if (getrandom(state, sizeof state, 0) != (ssize_t)sizeof state) {
        state[0] = (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15u;
        state[1] = (uint64_t)getpid() * 0xbf58476d1ce4e5b9u;
    }
    if ((state[0] | state[1]) == 0)
        state[0] = 1;
}

uint64_t rand_u64(void)
{
    if ((state[0] | state[1]) == 0)
        seed();
    /* xorshift128+ */
    uint64_t s1 = state[0];
    const uint64_t s0 = state[1];
    state[0] = s0;
    s1 ^= s1 << 23;
    state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return state[1] + s0;
}

uint64_t rand_below(uint64_t n)
{
    return n ? rand_u64() % n : 0;
}

void rand_hex(char *out, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    if (nbytes > sizeof raw)
        nbytes = sizeof raw;
    if (getrandom(raw, nbytes, 0) != (ssize_t)nbytes) {
        for (size_t i = 0; i < nbytes; i++)
            raw[i] = (unsigned char)rand_u64();
    }
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * nbytes] = '\0';
}
