/* jscan.h - a one-pass reader for the common, plain shapes of JSON that herald reads most (Expo's
 * all-ok send reply, a job event without envelopes), for fast paths in front of a full parser.
 *
 * It accepts a deliberately small subset: strings of printable ASCII without escapes, integers
 * without sign, fraction or leading zeros, and the literals. A reader returns false on anything
 * else and the caller hands the input to its full parser (jansson), which decides what it means:
 * the fast path never accepts or rejects what the full parser would read differently. */
#ifndef HERALD_CORE_JSCAN_H
#define HERALD_CORE_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct jscan {
    const char *p, *end; /* borrowed input */
} jscan_t;

/* Skips JSON whitespace (space, tab, LF, CR). */
void jscan_ws(jscan_t *s);
/* Whitespace, then the character c: true (consumed) or false (nothing consumed but whitespace). */
bool jscan_take(jscan_t *s, char c);
/* Whitespace, then a string of printable ASCII (0x20-0x7e) without '\\': *v (borrowed, not
 * terminated) and *n. False on anything else. */
bool jscan_str(jscan_t *s, const char **v, size_t *n);
/* Whitespace, then an integer of 1-15 digits without sign or leading zero, ending at a character
 * that cannot continue a JSON number. False on anything else. */
bool jscan_uint(jscan_t *s, int64_t *v);
/* Whitespace, then the literal word (e.g. "null"), not followed by a letter. */
bool jscan_lit(jscan_t *s, const char *word);
/* Whitespace, then the end of the input. */
bool jscan_end(jscan_t *s);
/* Whether v (n bytes) is exactly the C string lit. */
bool jscan_is(const char *v, size_t n, const char *lit);

#endif
