/* lines.c - the line parsers of `tokens import` and `tokens deactivate --file` (lines.h). */
#include "ctl/lines.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* 9999-12-31T23:59:59Z: the last time an ISO-8601 year of four digits can say. */
#define EXPIRES_MAX 253402300799

int ctl_import_line(const char *line, size_t len, tok_record_t *r, char *err, size_t errlen,
                    const char **why)
{
    if (len == 0)
        return 1;
    if (tok_record_parse(line, len, r, err, errlen) != 0) {
        *why = err;
        return -1;
    }
    *why = NULL;
    if (r->expires_at <= 0)
        *why = "expiresAt missing or not positive";
    else if (r->expires_at > EXPIRES_MAX)
        *why = "expiresAt out of range";
    return *why ? -1 : 0;
}

static int blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The next blank-separated word of [*p, end): its start and length; *p moves past it. */
static size_t word(const char **p, const char *end, const char **start)
{
    while (*p < end && blank(**p))
        (*p)++;
    *start = *p;
    while (*p < end && !blank(**p))
        (*p)++;
    return (size_t)(*p - *start);
}

/* Copies an id of n bytes into out (max + 1 bytes) when check accepts it. */
static int take_id(const char *s, size_t n, int (*check)(const char *, size_t), char *out)
{
    if (s == NULL || check(s, n) != 0)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

int ctl_deact_line(const char *line, size_t len, char user[TOK_USER_MAX + 1],
                   char device[TOK_DEVICE_MAX + 1], const char **why)
{
    const char *p = line, *end = line + len;
    while (p < end && blank(*p))
        p++;
    if (p == end || *p == '#')
        return 1;
    const char *u = NULL, *d = NULL;
    size_t un = 0, dn = 0;
    json_t *o = NULL;
    if (*p == '{') {
        o = json_loadb(p, (size_t)(end - p), JSON_REJECT_DUPLICATES, NULL);
        json_t *ju = json_object_get(o, "userId"), *jd = json_object_get(o, "deviceId");
        if (json_is_string(ju) && json_is_string(jd)) {
            u = json_string_value(ju), un = json_string_length(ju);
            d = json_string_value(jd), dn = json_string_length(jd);
        }
    } else {
        const char *rest;
        un = word(&p, end, &u);
        dn = word(&p, end, &d);
        if (dn == 0 || word(&p, end, &rest) != 0)
            u = d = NULL;
    }
    int rc = -1;
    *why = "expected `userId deviceId` or a JSON object with userId and deviceId";
    if (u && d) {
        if (take_id(u, un, tok_valid_user, user) != 0)
            *why = "invalid userId";
        else if (take_id(d, dn, tok_valid_device, device) != 0)
            *why = "invalid deviceId";
        else
            rc = 0;
    }
    json_decref(o);
    return rc;
}
