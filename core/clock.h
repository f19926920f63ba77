/* clock.h - wall and monotonic time, ISO-8601 formatting, and a swappable clock for tests. */
#ifndef HERALD_CORE_CLOCK_H
#define HERALD_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* A clock that modules take instead of calling time() so tests can drive time by hand. */
typedef struct clk {
    int64_t (*wall_ms)(void *arg);  /* unix time in milliseconds */
    uint64_t (*mono_ms)(void *arg); /* monotonic milliseconds */
    void *arg;
} clk_t;

/* The system clock (borrowed, static). */
const clk_t *clk_system(void);
int64_t clk_wall_ms(void);
uint64_t clk_mono_ms(void);
uint64_t clk_mono_us(void);

/* "2026-11-24T21:04:05.123Z" (ms precision) and "2026-11-24T21:04:05Z" (seconds). */
void clk_iso8601_ms(int64_t wall_ms, char *out, size_t outlen);
void clk_iso8601(int64_t wall_s, char *out, size_t outlen);
/* Parses an ISO-8601 UTC time ("...Z" or "+00:00", optional fraction). Returns 0 or -1. */
int clk_parse_iso8601(const char *s, int64_t *wall_ms);

/* A manual clock for tests: times start at the given values and move only by clk_fake_advance. */
typedef struct clk_fake {
    clk_t clk;
    int64_t wall;
    uint64_t mono;
} clk_fake_t;
void clk_fake_init(clk_fake_t *f, int64_t wall_ms);
void clk_fake_advance(clk_fake_t *f, uint64_t ms);

#endif
