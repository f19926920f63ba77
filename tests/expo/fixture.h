/* fixture.h - reads the Expo fixture files: "key: value" (or key=value) header lines, a blank
 * line, then the body bytes verbatim. */
#ifndef HERALD_TESTS_EXPO_FIXTURE_H
#define HERALD_TESTS_EXPO_FIXTURE_H

#include <stddef.h>

typedef struct fx {
    char name[256];
    char *keys[32];
    char *vals[32];
    size_t nkv;
    char *body;
    size_t len;
    char *raw;
} fx_t;

/* Loads every file of tests/fixtures/<dir> (sorted); returns the count, *out new (fx_free_all). */
size_t fx_load_dir(const char *dir, fx_t **out);
void fx_free_all(fx_t *f, size_t n);
/* Loads tests/fixtures/<dir> and passes each file to check (sorted), then frees them. Returns
 * the count. */
size_t fx_each(const char *dir, void (*check)(const fx_t *f));
/* The value of key, or def. */
const char *fx_get(const fx_t *f, const char *key, const char *def);
long fx_int(const fx_t *f, const char *key, long def);

#endif
