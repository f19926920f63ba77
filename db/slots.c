/* slots.c - key slots, CLUSTER SLOTS replies and MOVED/ASK errors (slots.h): the parts of the
 * cluster client that are plain functions, so that the routing in cluster.c only moves commands
 * and connections around. Replies come from the network, so every field is checked before use. */
#include "db/slots.h"
#include "db/url.h"

#include "core/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned db_crc16(const char *s, size_t len)
{
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)s[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

/* Per the cluster spec: when the key holds a '{' followed later by a '}' with at least one byte
 * between them, only the bytes between the first '{' and the first '}' after it are hashed. */
unsigned db_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        if (close && (size_t)(close - key) > from)
            return db_crc16(key + from, (size_t)(close - key) - from) & (DB_SLOTS - 1);
    }
    return db_crc16(key, len) & (DB_SLOTS - 1);
}

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_' || c == ':';
}

static bool valid_host(const char *s, size_t len)
{
    if (len >= DB_HOST_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!host_char(s[i]))
            return false;
    return true;
}

static int fail(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "bad CLUSTER SLOTS reply: %s", msg);
    return -1;
}

static bool int_in(const db_reply_t *r, long long lo, long long hi, long long *out)
{
    if (r == NULL || db_reply_type(r) != DB_REPLY_INTEGER)
        return false;
    *out = db_reply_int(r);
    return *out >= lo && *out <= hi;
}

/* One [first, last, [host, port, ...], ...] entry; 1 when it was kept, 0 when the master's
 * endpoint is unknown, -1 when malformed. */
static int parse_range(const db_reply_t *e, db_slot_range_t *out, char *err, size_t errlen)
{
    long long first, last, port;
    if (db_reply_type(e) != DB_REPLY_ARRAY || db_reply_len(e) < 3)
        return fail(err, errlen, "an entry is not [first, last, master, ...]");
    if (!int_in(db_reply_elem(e, 0), 0, DB_SLOTS - 1, &first) ||
        !int_in(db_reply_elem(e, 1), first, DB_SLOTS - 1, &last))
        return fail(err, errlen, "slot range out of bounds");
    const db_reply_t *m = db_reply_elem(e, 2);
    if (db_reply_type(m) != DB_REPLY_ARRAY || db_reply_len(m) < 2 ||
        db_reply_type(db_reply_elem(m, 0)) != DB_REPLY_STRING)
        return fail(err, errlen, "a master is not [host, port, ...]");
    size_t hl;
    const char *host = db_reply_str(db_reply_elem(m, 0), &hl);
    if (!int_in(db_reply_elem(m, 1), 0, 65535, &port))
        return fail(err, errlen, "port out of range");
    if ((hl == 1 && host[0] == '?') || port == 0)
        return 0;
    if (!valid_host(host, hl))
        return fail(err, errlen, "bad host");
    out->first = (unsigned)first;
    out->last = (unsigned)last;
    memcpy(out->host, host, hl);
    out->host[hl] = '\0';
    out->port = (int)port;
    return 1;
}

static int by_first(const void *a, const void *b)
{
    const db_slot_range_t *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

int db_slots_parse(const db_reply_t *r, db_slot_range_t **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (db_reply_type(r) != DB_REPLY_ARRAY)
        return fail(err, errlen, "not an array");
    size_t len = db_reply_len(r);
    if (len > DB_SLOTS)
        return fail(err, errlen, "more ranges than slots");
    db_slot_range_t *v = xcalloc(len ? len : 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        int rc = parse_range(db_reply_elem(r, i), &v[k], err, errlen);
        if (rc < 0)
            goto fail;
        k += (size_t)rc;
    }
    qsort(v, k, sizeof *v, by_first);
    for (size_t i = 1; i < k; i++) {
        if (v[i].first <= v[i - 1].last) {
            fail(err, errlen, "overlapping slot ranges");
            goto fail;
        }
    }
    *out = v;
    *n = k;
    return 0;
fail:
    free(v);
    return -1;
}

int db_redirect_parse(const char *s, size_t len, db_redirect_t *out)
{
    memset(out, 0, sizeof *out);
    size_t skip;
    if (len > 6 && memcmp(s, "MOVED ", 6) == 0)
        skip = 6;
    else if (len > 4 && memcmp(s, "ASK ", 4) == 0)
        skip = 4, out->ask = true;
    else
        return -1;
    const char *p = s + skip, *end = s + len;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    long slot, port;
    if (sp == NULL || db_parse_num(p, (size_t)(sp - p), DB_SLOTS - 1, &slot) != 0)
        return -1;
    const char *addr = sp + 1;
    const char *colon = NULL; /* the last ':' (IPv6 addresses hold more) */
    for (const char *q = addr; q < end; q++)
        if (*q == ':')
            colon = q;
    if (colon == NULL || !valid_host(addr, (size_t)(colon - addr)) ||
        db_parse_num(colon + 1, (size_t)(end - colon - 1), 65535, &port) != 0 || port == 0)
        return -1;
    out->slot = (unsigned)slot;
    memcpy(out->host, addr, (size_t)(colon - addr));
    out->host[colon - addr] = '\0';
    out->port = (int)port;
    return 0;
}
