/* sim_json.c - a validating JSON scanner without a tree, so push/send costs one pass over the
 * body instead of a jansson parse with an allocation per value (see sim_json.h). Its verdicts are
 * checked against jansson's by the fuzz target. */
#include "tools/expo_sim/sim_json.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void sj_init(sj_t *j, const char *p, size_t n)
{
    j->p = p;
    j->end = p + n;
    j->depth = 0;
    j->err = false;
}

void sj_ws(sj_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static size_t fail(sj_t *j)
{
    j->err = true;
    return 0;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* Length of one UTF-8 sequence at p (valid, shortest form, no surrogates), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n = c < 0x80             ? 1
               : (c & 0xe0) == 0xc0 ? 2
               : (c & 0xf0) == 0xe0 ? 3
               : (c & 0xf8) == 0xf0 ? 4
                                    : 0;
    if (n == 0 || (size_t)(end - p) < n)
        return 0;
    uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Compact (jansson) length of one decoded code point. */
static size_t cp_len(uint32_t cp)
{
    if (cp == '"' || cp == '\\' || cp == '\b' || cp == '\f' || cp == '\n' || cp == '\r' ||
        cp == '\t')
        return 2;
    if (cp < 0x20)
        return 6;
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/* At a backslash: validates one escape, advances, returns its decoded code point or -1. */
static long escape(sj_t *j)
{
    if (j->end - j->p < 2)
        return -1;
    char c = j->p[1];
    j->p += 2;
    switch (c) {
    case '"':
    case '\\':
    case '/':
        return c;
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'u':
        break;
    default:
        return -1;
    }
    if (j->end - j->p < 4)
        return -1;
    long v = hex4(j->p);
    j->p += 4;
    if (v < 0 || v == 0 || (v >= 0xdc00 && v <= 0xdfff))
        return -1; /* \u0000 and lone low surrogates are refused, as jansson does */
    if (v >= 0xd800 && v <= 0xdbff) {
        if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
            return -1;
        long lo = hex4(j->p + 2);
        if (lo < 0xdc00 || lo > 0xdfff)
            return -1;
        j->p += 6;
        v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
    }
    return v;
}

size_t sj_string(sj_t *j, bool *esc)
{
    size_t len = 2;
    *esc = false;
    j->p++; /* opening quote */
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            return len;
        }
        if (c == '\\') {
            *esc = true;
            long cp = escape(j);
            if (cp < 0)
                return fail(j);
            len += cp_len((uint32_t)cp);
        } else if (c < 0x20) {
            return fail(j);
        } else if (c < 0x80) {
            j->p++;
            len += 1;
        } else {
            size_t n = utf8_len((const unsigned char *)j->p, (const unsigned char *)j->end);
            if (n == 0)
                return fail(j);
            j->p += n;
            len += n;
        }
    }
    return fail(j);
}

static bool digit(const sj_t *j)
{
    return j->p < j->end && *j->p >= '0' && *j->p <= '9';
}

/* Number grammar, then jansson's range rules: integers must fit long long, reals must be
 * finite. */
static size_t number(sj_t *j)
{
    const char *s = j->p;
    bool real = false;
    if (*j->p == '-')
        j->p++;
    if (!digit(j))
        return fail(j);
    if (*j->p == '0')
        j->p++;
    else
        while (digit(j))
            j->p++;
    if (j->p < j->end && *j->p == '.') {
        real = true;
        j->p++;
        if (!digit(j))
            return fail(j);
        while (digit(j))
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        real = true;
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!digit(j))
            return fail(j);
        while (digit(j))
            j->p++;
    }
    size_t n = (size_t)(j->p - s);
    char tmp[64];
    char *big = n < sizeof tmp ? tmp : malloc(n + 1);
    if (big == NULL)
        abort();
    memcpy(big, s, n);
    big[n] = '\0';
    errno = 0;
    bool ok = true;
    if (real) {
        double d = strtod(big, NULL);
        ok = !(errno == ERANGE && (d > 1.0 || d < -1.0)); /* overflow; underflow is fine */
    } else {
        (void)strtoll(big, NULL, 10);
        ok = errno != ERANGE;
    }
    if (big != tmp)
        free(big);
    return ok ? n : fail(j);
}

static size_t literal(sj_t *j, const char *word, size_t n)
{
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return fail(j);
    j->p += n;
    return n;
}

static size_t container(sj_t *j, char close, bool object)
{
    if (++j->depth > SJ_MAX_DEPTH)
        return fail(j);
    j->p++;
    size_t len = 2, count = 0;
    sj_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return len;
    }
    for (;;) {
        if (object) {
            bool esc;
            if (j->p >= j->end || *j->p != '"')
                return fail(j);
            len += sj_string(j, &esc) + 1;
            sj_ws(j);
            if (j->err || j->p >= j->end || *j->p != ':')
                return fail(j);
            j->p++;
            sj_ws(j);
        }
        len += sj_value(j) + (count++ ? 1 : 0);
        if (j->err)
            return 0;
        sj_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            sj_ws(j);
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            j->depth--;
            return len;
        }
        return fail(j);
    }
}

size_t sj_value(sj_t *j)
{
    bool esc;
    if (j->p >= j->end)
        return fail(j);
    switch (*j->p) {
    case '{':
        return container(j, '}', true);
    case '[':
        return container(j, ']', false);
    case '"':
        return sj_string(j, &esc);
    case 't':
        return literal(j, "true", 4);
    case 'f':
        return literal(j, "false", 5);
    case 'n':
        return literal(j, "null", 4);
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
            return number(j);
        return fail(j);
    }
}

static void put_utf8(buf_t *out, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | cp >> 12);
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | cp >> 18);
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    buf_append(out, b, n);
}

void sj_decode(const char *raw, size_t n, buf_t *out)
{
    sj_t j;
    sj_init(&j, raw, n);
    while (j.p < j.end) {
        const char *run = j.p;
        while (j.p < j.end && *j.p != '\\')
            j.p++;
        buf_append(out, run, (size_t)(j.p - run));
        if (j.p < j.end) {
            long cp = escape(&j);
            if (cp < 0)
                return; /* not reached for validated input */
            put_utf8(out, (uint32_t)cp);
        }
    }
}

void sj_compact(const char *p, size_t n, buf_t *out)
{
    const char *end = p + n, *run = p;
    bool in_str = false;
    for (; p < end; p++) {
        char c = *p;
        if (in_str) {
            if (c == '\\')
                p++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            buf_append(out, run, (size_t)(p - run));
            run = p + 1;
        }
    }
    buf_append(out, run, (size_t)(end - run));
}

int sj_check(const char *p, size_t n)
{
    sj_t j;
    sj_init(&j, p, n);
    sj_ws(&j);
    sj_value(&j);
    sj_ws(&j);
    return j.err || j.p != j.end ? -1 : 0;
}
