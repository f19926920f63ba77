/* jscan.c - the plain-JSON subset reader of jscan.h: fast paths in expo/proto.c (send replies) and
 * queue/event.c (job events) read their common input with it and leave the rest to jansson. */
#include "core/jscan.h"

#include <string.h>

void jscan_ws(jscan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

bool jscan_take(jscan_t *s, char c)
{
    jscan_ws(s);
    if (s->p == s->end || *s->p != c)
        return false;
    s->p++;
    return true;
}

bool jscan_str(jscan_t *s, const char **v, size_t *n)
{
    if (!jscan_take(s, '"'))
        return false;
    const char *b = s->p;
    while (s->p < s->end && *s->p != '"') {
        unsigned char c = (unsigned char)*s->p++;
        if (c < 0x20 || c > 0x7e || c == '\\')
            return false;
    }
    if (s->p == s->end)
        return false;
    *v = b;
    *n = (size_t)(s->p++ - b);
    return true;
}

static bool num_char(char c)
{
    return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

bool jscan_uint(jscan_t *s, int64_t *v)
{
    jscan_ws(s);
    const char *b = s->p;
    int64_t x = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9' && s->p - b < 16)
        x = x * 10 + (*s->p++ - '0');
    size_t n = (size_t)(s->p - b);
    if (n == 0 || n > 15 || (n > 1 && *b == '0') || (s->p < s->end && num_char(*s->p))) {
        s->p = b;
        return false;
    }
    *v = x;
    return true;
}

bool jscan_lit(jscan_t *s, const char *word)
{
    jscan_ws(s);
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return false;
    if (s->p + n < s->end &&
        ((s->p[n] >= 'a' && s->p[n] <= 'z') || (s->p[n] >= 'A' && s->p[n] <= 'Z')))
        return false;
    s->p += n;
    return true;
}

bool jscan_end(jscan_t *s)
{
    jscan_ws(s);
    return s->p == s->end;
}

bool jscan_is(const char *v, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(v, lit, n) == 0;
}
