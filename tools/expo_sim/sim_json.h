/* sim_json.h - the simulator's strict JSON scanner for the hot path (push/send): validates JSON
 * exactly as strictly as jansson's json_loadb(JSON_DECODE_ANY) (UTF-8, escapes, surrogates, no
 * \u0000, number grammar and range, depth <= 2048, nothing after the value) without building a
 * tree or allocating, and measures each value's compact length the way the payload limit is
 * documented (README.md). Pure functions on byte spans; any thread. */
#ifndef HERALD_TESTS_EXPO_SIM_JSON_H
#define HERALD_TESTS_EXPO_SIM_JSON_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>

#define SJ_MAX_DEPTH 2048

typedef struct sj {
    const char *p, *end; /* borrowed input; p advances */
    int depth;
    bool err;
} sj_t;

void sj_init(sj_t *j, const char *p, size_t n);
void sj_ws(sj_t *j);
/* At a '"': validates the string literal and moves past it. Returns its compact length (the
 * jansson re-encoding, quotes included); *esc says whether the literal holds backslashes. */
size_t sj_string(sj_t *j, bool *esc);
/* Validates one value of any type and moves past it; returns its compact length (whitespace
 * outside strings removed, strings re-encoded, numbers as written). Sets j->err on failure. */
size_t sj_value(sj_t *j);
/* Decodes a validated string literal's inside (raw, n bytes, no quotes) into out (appended). */
void sj_decode(const char *raw, size_t n, buf_t *out);
/* Appends a validated value's text with whitespace outside strings removed. */
void sj_compact(const char *p, size_t n, buf_t *out);
/* 0 when the whole input is one valid JSON value (surrounding whitespace allowed), else -1. */
int sj_check(const char *p, size_t n);

#endif
