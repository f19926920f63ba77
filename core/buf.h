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
/* Appends s as a JSON string literal, quotes included. */
void buf_json_str(buf_t *b, const char *s, size_t n);
/* Returns the data (caller frees with free()) and leaves b empty. */
char *buf_steal(buf_t *b);
const char *buf_cstr(const buf_t *b); /* "" when empty */

#endif
