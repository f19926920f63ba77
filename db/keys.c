/* keys.c - the one place where herald's Redis key names are spelled (see keys.h). */
#include "db/keys.h"

#include "core/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const stems[] = {
    [KEY_DEV] = "dev:",
    [KEY_OWNER] = "owner:",
    [KEY_EXPIRY] = "expiry:",
    [KEY_LOCK] = "lock:",
    [KEY_LEDGER] = "led:",
    [KEY_TRACE] = "trace:j:", /* three stems, none a prefix of another: the families cannot meet */
    [KEY_JOB] = "job:",
    [KEY_TRACE_USER] = "trace:u:",
    [KEY_TRACE_DEVICE] = "trace:d:",
    [KEY_RQ] = "rq:",
    [KEY_RL_USER] = "rl:u:",
    [KEY_RL_IP] = "rl:ip:",
    [KEY_EXPO_RATE] = "expo:rate:",
    [KEY_INSTANCES] = "instances",
};

/* The longest stem is 10 bytes ("expo:rate:"); with the hash-tag braces every one-id family fits
 * in KEY_PREFIX_MAX + 16 + its id, and the multi-id families (ledger entry, device trace index) are
 * checked on their own. */
_Static_assert(KEY_MAX >= KEY_PREFIX_MAX + 8 + 3 + 2 + KEY_USER_MAX + 2 + KEY_DEVICE_MAX + 1,
               "trace device indexes fit");
_Static_assert(KEY_MAX >= KEY_PREFIX_MAX + 6 + 2 + 4 + 2 + KEY_TOKEN_MAX + 1, "owner keys fit");
_Static_assert(KEY_PARTS_MAX >= 2 * (KEY_PREFIX_MAX + 12 + 4) + 2 * 4 + 1, "token parts fit");
_Static_assert(KEY_MAX >= KEY_PREFIX_MAX + 6 + KEY_USER_MAX + 1, "dev keys fit");
/* led:<n>:{<user>}:<event> with n of at most 3 digits */
_Static_assert(KEY_USER_MAX < 1000, "user lengths in keys are 3 digits");
_Static_assert(KEY_MAX >= KEY_PREFIX_MAX + 4 + 3 + 2 + KEY_USER_MAX + 2 + KEY_EVENT_MAX + 1,
               "ledger entries fit");
_Static_assert(KEY_MAX >= KEY_PREFIX_MAX + 10 + KEY_NAME_MAX + 1, "expo rate keys fit");
_Static_assert(KEY_EVENT_MAX >= KEY_JOB_MAX + 1 + 14, "an event key is a job id and a status");

/* Appends s (at most max bytes) at *len; a longer s is a caller's bug, never silently cut. */
static void put(char *out, size_t *len, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max || *len + n >= KEY_MAX) {
        fprintf(stderr, "keys: a key component of %zu bytes exceeds its limit of %zu\n", n, max);
        abort();
    }
    memcpy(out + *len, s, n);
    *len += n;
    out[*len] = '\0';
}

size_t key_stem(char out[KEY_MAX], const char *prefix, key_family_t family)
{
    size_t len = 0;
    out[0] = '\0';
    put(out, &len, prefix, KEY_PREFIX_MAX);
    put(out, &len, stems[family], 16);
    return len;
}

static size_t one(char out[KEY_MAX], const char *prefix, key_family_t f, const char *id, size_t max)
{
    size_t len = key_stem(out, prefix, f);
    put(out, &len, id, max);
    return len;
}

size_t key_dev(char out[KEY_MAX], const char *prefix, const char *user)
{
    size_t len = key_head(out, prefix, KEY_DEV);
    put(out, &len, user, KEY_USER_MAX);
    put(out, &len, key_tail(KEY_DEV), 1);
    return len;
}

/* FNV-1a: cheap, and its Lua twin (tokens/lua/token_keys.lua) needs nothing but exact integer
 * arithmetic on doubles. */
unsigned key_token_bucket(const char *token)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)token; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return (unsigned)(h % KEY_TOKEN_BUCKETS);
}

/* head .. bucket .. tail of a token family. */
static size_t bucket_key(char out[KEY_MAX], const char *prefix, key_family_t f, unsigned bucket)
{
    char n[BUF_NUM_MAX];
    if (bucket >= KEY_TOKEN_BUCKETS) {
        fprintf(stderr, "keys: token bucket %u out of range\n", bucket);
        abort();
    }
    size_t len = key_head(out, prefix, f);
    buf_fmt_u64(n, bucket);
    put(out, &len, n, sizeof n);
    put(out, &len, key_tail(f), 2);
    return len;
}

size_t key_owner(char out[KEY_MAX], const char *prefix, const char *token)
{
    size_t len = bucket_key(out, prefix, KEY_OWNER, key_token_bucket(token));
    put(out, &len, token, KEY_TOKEN_MAX);
    return len;
}

size_t key_expiry(char out[KEY_MAX], const char *prefix, unsigned bucket)
{
    return bucket_key(out, prefix, KEY_EXPIRY, bucket);
}

size_t key_expiry_legacy(char out[KEY_MAX], const char *prefix)
{
    size_t len = key_stem(out, prefix, KEY_EXPIRY);
    out[--len] = '\0'; /* the stem without its ':' */
    return len;
}

static size_t netstring(char *out, size_t len, const char *s)
{
    int n = snprintf(out + len, KEY_PARTS_MAX - len, "%zu:%s", strlen(s), s);
    if (n < 0 || len + (size_t)n >= KEY_PARTS_MAX)
        abort(); /* KEY_PARTS_MAX is sized for the longest prefix */
    return len + (size_t)n;
}

size_t key_token_parts(char out[KEY_PARTS_MAX], const char *prefix)
{
    char head[KEY_MAX];
    size_t len = 0;
    key_head(head, prefix, KEY_OWNER);
    len = netstring(out, len, head);
    len = netstring(out, len, key_tail(KEY_OWNER));
    key_head(head, prefix, KEY_EXPIRY);
    len = netstring(out, len, head);
    return netstring(out, len, key_tail(KEY_EXPIRY));
}

size_t key_lock(char out[KEY_MAX], const char *prefix, const char *name)
{
    return one(out, prefix, KEY_LOCK, name, KEY_NAME_MAX);
}

/* The user's length comes before it, so the key reads back one way only: a ':' or a '}' inside
 * an id can never be taken for a separator, and the event is the rest of the key. */
size_t key_ledger(char out[KEY_MAX], const char *prefix, const char *user, const char *event)
{
    size_t len = key_user_head(out, prefix, KEY_LEDGER, user);
    put(out, &len, event, KEY_EVENT_MAX);
    return len;
}

size_t key_trace(char out[KEY_MAX], const char *prefix, const char *job)
{
    return one(out, prefix, KEY_TRACE, job, KEY_JOB_MAX);
}

size_t key_job(char out[KEY_MAX], const char *prefix, const char *job)
{
    return one(out, prefix, KEY_JOB, job, KEY_JOB_MAX);
}

size_t key_trace_user(char out[KEY_MAX], const char *prefix, const char *user)
{
    size_t len = key_head(out, prefix, KEY_TRACE_USER);
    put(out, &len, user, KEY_USER_MAX);
    put(out, &len, key_tail(KEY_TRACE_USER), 1);
    return len;
}

/* "<n>:{<user>}:<device>": n = strlen(user) says where the user ends whatever the ids hold, and
 * the user is the hash tag, as in the user's other keys. */
size_t key_trace_device(char out[KEY_MAX], const char *prefix, const char *user, const char *device)
{
    size_t len = key_user_head(out, prefix, KEY_TRACE_DEVICE, user);
    put(out, &len, device, KEY_DEVICE_MAX);
    return len;
}

size_t key_rq(char out[KEY_MAX], const char *prefix, unsigned bucket)
{
    char b[BUF_NUM_MAX + 2];
    if (bucket >= KEY_RQ_BUCKETS) {
        fprintf(stderr, "keys: receipt bucket %u out of range\n", bucket);
        abort();
    }
    size_t len = key_stem(out, prefix, KEY_RQ);
    b[0] = '{';
    memcpy(b + 1 + buf_fmt_u64(b + 1, bucket), "}", 2);
    put(out, &len, b, sizeof b);
    return len;
}

size_t key_rq_check(char out[KEY_MAX], const char *prefix, unsigned bucket, const char *id)
{
    size_t len = key_rq(out, prefix, bucket);
    put(out, &len, ":", 1);
    put(out, &len, id, KEY_TICKET_MAX);
    return len;
}

size_t key_rl_user(char out[KEY_MAX], const char *prefix, const char *user)
{
    size_t len = key_head(out, prefix, KEY_RL_USER);
    put(out, &len, user, KEY_USER_MAX);
    put(out, &len, key_tail(KEY_RL_USER), 1);
    return len;
}

size_t key_rl_ip(char out[KEY_MAX], const char *prefix, const char *ip)
{
    return one(out, prefix, KEY_RL_IP, ip, KEY_IP_MAX);
}

size_t key_expo_rate(char out[KEY_MAX], const char *prefix, const char *project)
{
    return one(out, prefix, KEY_EXPO_RATE, project, KEY_NAME_MAX);
}

size_t key_instances(char out[KEY_MAX], const char *prefix)
{
    return key_stem(out, prefix, KEY_INSTANCES);
}

/* The families whose one id is a hash tag: a user id, or a token bucket ("{t<k>}"). */
static int tagged(key_family_t family)
{
    return family == KEY_DEV || family == KEY_TRACE_USER || family == KEY_RL_USER;
}

static int token_family(key_family_t family)
{
    return family == KEY_OWNER || family == KEY_EXPIRY;
}

size_t key_head(char out[KEY_MAX], const char *prefix, key_family_t family)
{
    size_t len = key_stem(out, prefix, family);
    if (tagged(family))
        put(out, &len, "{", 1);
    else if (token_family(family))
        put(out, &len, "{t", 2);
    return len;
}

const char *key_tail(key_family_t family)
{
    if (family == KEY_OWNER)
        return "}:";
    return tagged(family) || family == KEY_EXPIRY ? "}" : "";
}

/* "<n>:{<user>}:" after the stem: n = strlen(user) says where the user ends whatever the ids
 * hold, and the user is the hash tag, as in the user's other keys. */
size_t key_user_head(char out[KEY_MAX], const char *prefix, key_family_t family, const char *user)
{
    char n[BUF_NUM_MAX + 2];
    if (family != KEY_LEDGER && family != KEY_TRACE_DEVICE) {
        fprintf(stderr, "keys: key_user_head of a family without a user part\n");
        abort();
    }
    size_t len = key_stem(out, prefix, family);
    size_t d = buf_fmt_u64(n, strlen(user)); /* the number, then ":{" */
    memcpy(n + d, ":{", 3);
    put(out, &len, n, sizeof n);
    put(out, &len, user, KEY_USER_MAX);
    put(out, &len, "}:", 2);
    return len;
}
