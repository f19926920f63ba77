/* buf.h - growable byte buffer, always NUL-terminated so it can be used as a C string. */
#ifndef HERALD_CORE_BUF_H
#define HERALD_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    char *data; /* NUL-terminated once anything was appended; NULL when empty and never grown */
    size_t len;
    size_t cap;
} buf_t;

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void buf_init(buf_t *b);
void buf_cleanup(buf_t *b);
void buf_reset(buf_t *b); /* len = 0, keeps memory */
void buf_reserve(buf_t *b, size_t extra);
void buf_append(buf_t *b, const void *p, size_t n);
void buf_puts(buf_t *b, const char *s);
void buf_putc(buf_t *b, char c);
void buf_fill(buf_t *b, char c, size_t n); /* appends n copies of c */
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends s (n bytes) as a JSON string literal, quotes included: '"' '\\' \n \r \t as
 * two-character escapes, other bytes below 0x20 (NUL too) and 0x7f as \u00XX, every other byte
 * (UTF-8 included) as is. Runs of plain bytes are copied in one go: no printf, one reserve. */
void buf_json_str(buf_t *b, const char *s, size_t n);
/* The same for a NUL-terminated s, read once (no strlen pass first). */
void buf_json_cstr(buf_t *b, const char *s);
/* Appends v in decimal (JSON number syntax), without printf. */
void buf_put_i64(buf_t *b, long long v);
void buf_put_u64(buf_t *b, unsigned long long v);
/* Writes v in decimal into out (>= BUF_NUM_MAX bytes), NUL-terminated; returns the length. */
#define BUF_NUM_MAX 24
size_t buf_fmt_i64(char *out, long long v);
size_t buf_fmt_u64(char *out, unsigned long long v);
/* Returns the data (caller frees with free()) and leaves b empty. */
char *buf_steal(buf_t *b);
const char *buf_cstr(const buf_t *b); /* "" when empty */

#endif
