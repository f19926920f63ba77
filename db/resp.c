/* resp.c - the RESP request writer (resp.h). */
#include "db/resp.h"

#include "core/buf.h"

#include <string.h>

static size_t digits(size_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

size_t resp_argc_size(size_t argc)
{
    return 1 + digits(argc) + 2;
}

size_t resp_arg_size(size_t len)
{
    return 1 + digits(len) + 2 + len + 2;
}

/* mark, the number, CR LF */
static char *put_num(char *p, char mark, size_t v)
{
    char num[BUF_NUM_MAX];
    size_t n = buf_fmt_u64(num, v);
    *p++ = mark;
    memcpy(p, num, n);
    p += n;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

char *resp_put_argc(char *p, size_t argc)
{
    return put_num(p, '*', argc);
}

char *resp_put_arg(char *p, const void *s, size_t len)
{
    p = put_num(p, '$', len);
    if (len > 0)
        memcpy(p, s, len);
    p += len;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}
