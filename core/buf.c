/* buf.c - growable byte buffer used for JSON bodies, log lines and metric pages. */
#include "core/buf.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf_t *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_cleanup(buf_t *b)
{
    free(b->data);
    buf_init(b);
}

void buf_reset(buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void buf_reserve(buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void buf_append(buf_t *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buf_puts(buf_t *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_putc(buf_t *b, char c)
{
    if (b->len + 2 > b->cap)
        buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void buf_vprintf(buf_t *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return;
    buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void buf_fill(buf_t *b, char c, size_t n)
{
    buf_reserve(b, n);
    memset(b->data + b->len, c, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* Per byte: 0 when it goes out as is, else the letter after the backslash ('u': \u00XX). */
static const char json_esc[256] = {
    ['\0'] = 'u', [1] = 'u',  [2] = 'u',    [3] = 'u',    [4] = 'u',   [5] = 'u',     [6] = 'u',
    [7] = 'u',    [8] = 'u',  ['\t'] = 't', ['\n'] = 'n', [11] = 'u',  [12] = 'u',    ['\r'] = 'r',
    [14] = 'u',   [15] = 'u', [16] = 'u',   [17] = 'u',   [18] = 'u',  [19] = 'u',    [20] = 'u',
    [21] = 'u',   [22] = 'u', [23] = 'u',   [24] = 'u',   [25] = 'u',  [26] = 'u',    [27] = 'u',
    [28] = 'u',   [29] = 'u', [30] = 'u',   [31] = 'u',   ['"'] = '"', ['\\'] = '\\', [0x7f] = 'u'};

static void put_escape(buf_t *b, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char e[6] = {'\\', json_esc[c], '0', '0', hex[c >> 4], hex[c & 15]};
    buf_append(b, e, e[1] == 'u' ? 6 : 2);
}

void buf_json_str(buf_t *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    buf_reserve(b, n + 2);
    b->data[b->len++] = '"';
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && json_esc[*p] == 0)
            p++;
        if (p > run)
            buf_append(b, run, (size_t)(p - run));
        if (p == end)
            break;
        put_escape(b, *p++);
    }
    buf_putc(b, '"');
}

void buf_json_cstr(buf_t *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    buf_putc(b, '"');
    for (;;) {
        const unsigned char *run = p;
        while (json_esc[*p] == 0) /* NUL has an escape: the run stops there */
            p++;
        if (p > run)
            buf_append(b, run, (size_t)(p - run));
        if (*p == '\0')
            break;
        put_escape(b, *p++);
    }
    buf_putc(b, '"');
}

size_t buf_fmt_u64(char *out, unsigned long long v)
{
    char tmp[BUF_NUM_MAX];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

size_t buf_fmt_i64(char *out, long long v)
{
    if (v >= 0)
        return buf_fmt_u64(out, (unsigned long long)v);
    out[0] = '-';
    /* LLONG_MIN has no positive counterpart: negate in unsigned arithmetic */
    return 1 + buf_fmt_u64(out + 1, 0ull - (unsigned long long)v);
}

void buf_put_u64(buf_t *b, unsigned long long v)
{
    char num[BUF_NUM_MAX];
    buf_append(b, num, buf_fmt_u64(num, v));
}

void buf_put_i64(buf_t *b, long long v)
{
    char num[BUF_NUM_MAX];
    buf_append(b, num, buf_fmt_i64(num, v));
}

char *buf_steal(buf_t *b)
{
    char *p = b->data ? b->data : xstrdup("");
    buf_init(b);
    return p;
}

const char *buf_cstr(const buf_t *b)
{
    return b->data ? b->data : "";
}
