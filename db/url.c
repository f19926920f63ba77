/* url.c - the Redis URL parser used by db.c: splits redis:// and unix:// URLs into the parts
 * the connector needs (address, AUTH credentials, SELECT number), rejecting anything it does not
 * understand rather than guessing. */
#include "db/url.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "invalid Redis URL: %s", msg);
    return -1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (NUL-terminated); -1 when malformed, too long or it would
 * contain a NUL byte. */
static int pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

int db_parse_num(const char *s, size_t n, long max, long *out)
{
    long v = 0;
    if (n == 0 || n > 9)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

static int parse_userinfo(const char *s, size_t n, db_url_t *out, char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', n);
    size_t ul = colon ? (size_t)(colon - s) : n;
    if (pct_decode(s, ul, out->user, sizeof out->user) != 0)
        return fail(err, errlen, "malformed or oversized user");
    if (colon && pct_decode(colon + 1, n - ul - 1, out->password, sizeof out->password) != 0)
        return fail(err, errlen, "malformed or oversized password");
    return 0;
}

/* host[:port] or [v6]:port */
static int parse_hostport(const char *s, size_t n, db_url_t *out, char *err, size_t errlen)
{
    const char *h = s, *end = s + n, *rest;
    size_t hl;
    if (n > 0 && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (rb == NULL)
            return fail(err, errlen, "unterminated IPv6 address");
        h = s + 1;
        hl = (size_t)(rb - h);
        rest = rb + 1;
        for (size_t i = 0; i < hl; i++)
            if (!host_char(h[i]) && h[i] != ':')
                return fail(err, errlen, "bad character in host");
    } else {
        const char *colon = memchr(s, ':', n);
        hl = colon ? (size_t)(colon - s) : n;
        rest = s + hl;
        for (size_t i = 0; i < hl; i++)
            if (!host_char(h[i]))
                return fail(err, errlen, "bad character in host");
    }
    if (hl == 0 || hl >= sizeof out->host)
        return fail(err, errlen, "missing or oversized host");
    memcpy(out->host, h, hl);
    out->host[hl] = '\0';
    out->port = 6379;
    if (rest < end) {
        long port;
        if (*rest != ':' || db_parse_num(rest + 1, (size_t)(end - rest - 1), 65535, &port) != 0 ||
            port == 0)
            return fail(err, errlen, "bad port");
        out->port = (int)port;
    }
    return 0;
}

static int parse_tcp(const char *s, db_url_t *out, char *err, size_t errlen)
{
    size_t alen = strcspn(s, "/?#");
    const char *path = s + alen;
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (s[i] == '@')
            at = s + i; /* the last '@': passwords may contain unencoded '@' */
    if (at && parse_userinfo(s, (size_t)(at - s), out, err, errlen) != 0)
        return -1;
    const char *hp = at ? at + 1 : s;
    if (parse_hostport(hp, (size_t)(s + alen - hp), out, err, errlen) != 0)
        return -1;
    if (*path == '\0' || strcmp(path, "/") == 0)
        return 0;
    if (*path != '/' || db_parse_num(path + 1, strlen(path + 1), DB_URL_DB_MAX, &out->dbnum) != 0)
        return fail(err, errlen, "the path must be a database number");
    return 0;
}

static int parse_unix(const char *s, db_url_t *out, char *err, size_t errlen)
{
    size_t pl = strcspn(s, "?#");
    if (pl == 0 || s[0] != '/')
        return fail(err, errlen, "unix:// needs an absolute socket path");
    if (pl >= sizeof out->path)
        return fail(err, errlen, "socket path too long");
    memcpy(out->path, s, pl);
    out->path[pl] = '\0';
    const char *q = s + pl;
    if (*q == '\0')
        return 0;
    if (strncmp(q, "?db=", 4) != 0 ||
        db_parse_num(q + 4, strlen(q + 4), DB_URL_DB_MAX, &out->dbnum) != 0)
        return fail(err, errlen, "the only query parameter is db=N");
    return 0;
}

int db_url_parse(const char *url, db_url_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (url == NULL || *url == '\0')
        return fail(err, errlen, "empty");
    size_t n = strnlen(url, DB_URL_MAX + 1);
    if (n > DB_URL_MAX)
        return fail(err, errlen, "longer than 1024 bytes");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            return fail(err, errlen, "control, space or non-ASCII character");
    int rc;
    if (strncmp(url, "redis://", 8) == 0)
        rc = parse_tcp(url + 8, out, err, errlen);
    else if (strncmp(url, "unix://", 7) == 0)
        rc = parse_unix(url + 7, out, err, errlen);
    else
        rc = fail(err, errlen, "expected redis:// or unix://");
    if (rc != 0)
        memset(out, 0, sizeof *out); /* no half-parsed password left behind */
    return rc;
}
