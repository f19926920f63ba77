/* keys.h - herald's Redis key schema: every key herald reads or writes is built here, and only
 * here, from typed arguments. docs/DESIGN.md has the table (key, type, TTL, writer, readers).
 *
 * Sizes derive from the input limits: a key buffer of KEY_MAX bytes holds the longest key any
 * family can produce (checked by _Static_assert in keys.c), so nothing truncates. Each builder
 * writes the NUL-terminated key into out and returns its length; an argument longer than its
 * limit is a programming error (the callers validate input first) and aborts in every build.
 *
 * Scripts that build keys themselves (SCAN patterns, per-id keys inside a loop) get the family's
 * stem from key_stem() as an argument, so the spelling still lives only in this file. The one
 * exception is the tail of the two-id families after key_user_head(): a script that learns event
 * and device ids inside Redis (pipeline/lua/privacy_purge.lua) appends "<event>" or "<device>"
 * itself, as key_ledger() and key_trace_device() do. */
#ifndef HERALD_DB_KEYS_H
#define HERALD_DB_KEYS_H

#include <stddef.h>

#define KEY_PREFIX_MAX 64  /* redis.prefix (config validates 1..64) */
#define KEY_USER_MAX 128   /* userId */
#define KEY_DEVICE_MAX 128 /* deviceId */
#define KEY_TOKEN_MAX 220  /* Expo push token: "ExponentPushToken[" + 200 + "]" */
#define KEY_EVENT_MAX 143  /* idempotency key "<jobId or batchJobId>:<STATUS>" */
#define KEY_JOB_MAX 128    /* jobId or batchJobId */
#define KEY_TICKET_MAX 64  /* Expo ticket id (a receipt check's id) */
#define KEY_IP_MAX 64      /* client address as text */
#define KEY_NAME_MAX 256   /* names: Expo project ("@owner/slug"), lock name */

/* The longest key: room for prefix + a stem + three ids and two lengths, more than any family
 * (the ledger entry, the device trace index) needs. */
#define KEY_MAX (KEY_PREFIX_MAX + 24 + KEY_USER_MAX + KEY_EVENT_MAX + KEY_DEVICE_MAX + 1)

/* The families, for key_stem(). */
typedef enum {
    KEY_DEV,          /* <p>dev:{<user>}            HASH deviceId -> record JSON */
    KEY_OWNER,        /* <p>owner:{t<k>}:<token>    STRING user \x1f device; k = token bucket */
    KEY_EXPIRY,       /* <p>expiry:{t<k>}           ZSET user \x1f device by expiresAt */
    KEY_LOCK,         /* <p>lock:<name>             STRING lock holder */
    KEY_LEDGER,       /* <p>led:<n>:{<user>}:<event>  HASH the delivery ledger entry */
    KEY_TRACE,        /* <p>trace:j:<job>           LIST trace records (before the ledger) */
    KEY_JOB,          /* <p>job:<job>               SET "<user>\x1f<event>": the job's entries */
    KEY_TRACE_USER,   /* <p>trace:u:{<user>}        ZSET job ids by time */
    KEY_TRACE_DEVICE, /* <p>trace:d:<n>:{<user>}:<device>  ZSET job ids by time; n = strlen(user) */
    KEY_RQ,           /* <p>rq:{<b>}                ZSET receipt check ids by due time; and
                         <p>rq:{<b>}:<id>           HASH one receipt check (<= 100 tickets) */
    KEY_RL_USER,      /* <p>rl:u:{<user>}           STRING GCRA state */
    KEY_RL_IP,        /* <p>rl:ip:<ip>              STRING GCRA state */
    KEY_EXPO_RATE,    /* <p>expo:rate:<project>     shared Expo send budget */
    KEY_INSTANCES,    /* <p>instances               ZSET instance id by lease expiry (ms) */
} key_family_t;

/* "<p>dev:" etc: the prefix plus the family's fixed part, for scripts that append an id
 * themselves (KEY_TICKET, KEY_OWNER) or SCAN a family (KEY_DEV: append "*"). */
size_t key_stem(char out[KEY_MAX], const char *prefix, key_family_t family);

size_t key_dev(char out[KEY_MAX], const char *prefix, const char *user);
/* Token-scoped keys live in one of KEY_TOKEN_BUCKETS buckets, each its own hash tag "{t<k>}": a
 * token's owner key and its expiry entry share a Redis Cluster slot, and the expiry schedule is
 * spread over the slots. k = key_token_bucket(token): FNV-1a (32 bit) of the token's bytes, mod
 * 1024. Scripts that learn tokens inside Redis use its Lua twin, tokens/lua/token_keys.lua
 * (tests/db/test_keys.c checks that both agree). */
#define KEY_TOKEN_BUCKETS 1024
unsigned key_token_bucket(const char *token);
size_t key_owner(char out[KEY_MAX], const char *prefix, const char *token);
/* The expiry schedule of one bucket (0 <= bucket < KEY_TOKEN_BUCKETS). */
size_t key_expiry(char out[KEY_MAX], const char *prefix, unsigned bucket);
/* The one expiry index of the schema before token buckets, "<p>expiry" (heraldctl tokens reindex
 * removes it, with the owner keys "<p>owner:<token>" of that schema). */
size_t key_expiry_legacy(char out[KEY_MAX], const char *prefix);
/* The token-family parts for scripts, as one argument: the netstrings ("<len>:<bytes>") of the
 * owner head "<p>owner:{t", the owner tail "}:", the expiry head "<p>expiry:{t" and the expiry
 * tail "}": owner key = head .. bucket .. tail .. token, expiry key = head .. bucket .. tail. */
#define KEY_PARTS_MAX (2 * KEY_PREFIX_MAX + 48)
size_t key_token_parts(char out[KEY_PARTS_MAX], const char *prefix);
size_t key_lock(char out[KEY_MAX], const char *prefix, const char *name);
/* The delivery ledger entry of (user, event) (pipeline/ledger.h): "<p>led:<n>:{<user>}:<event>"
 * with n the byte length of user in decimal, so that no two pairs share a key whatever ':', '{'
 * or '}' the ids hold (the event is the rest of the key); the user is the hash tag, so every entry
 * of a user shares the slot of the user's other keys. */
size_t key_ledger(char out[KEY_MAX], const char *prefix, const char *user, const char *event);
/* A job's trace list as herald wrote it before the ledger: only a privacy sweep still reads it. */
size_t key_trace(char out[KEY_MAX], const char *prefix, const char *job);
/* The job index: the (user, event) pairs of one job (or batch) id, whose ledger entries hold its
 * trace; its own slot. */
size_t key_job(char out[KEY_MAX], const char *prefix, const char *job);
size_t key_trace_user(char out[KEY_MAX], const char *prefix, const char *user);
/* A device's index is its user's: device ids are only unique per user. The user's length comes
 * first so that ids holding ':' '{' '}' cannot make two (user, device) pairs share a key. */
size_t key_trace_device(char out[KEY_MAX], const char *prefix, const char *user,
                        const char *device);
/* The receipt checks of bucket b (0..KEY_RQ_BUCKETS-1): the schedule "<p>rq:{<b>}" and one check
 * "<p>rq:{<b>}:<id>" (id: its first ticket id); the bucket is the hash tag, so a check and its
 * schedule share a slot, and the 16 schedules spread over a cluster. */
#define KEY_RQ_BUCKETS 16
size_t key_rq(char out[KEY_MAX], const char *prefix, unsigned bucket);
size_t key_rq_check(char out[KEY_MAX], const char *prefix, unsigned bucket, const char *id);
size_t key_rl_user(char out[KEY_MAX], const char *prefix, const char *user);
size_t key_rl_ip(char out[KEY_MAX], const char *prefix, const char *ip);
size_t key_expo_rate(char out[KEY_MAX], const char *prefix, const char *project);
/* The herald instances' leases (pipeline/lease.c): one key for all, in its own hash slot. */
size_t key_instances(char out[KEY_MAX], const char *prefix);

/* A family's key around its one id, for scripts that build keys of ids they only learn inside
 * Redis (the dev hash of a user read from an owner key) or take an id back out of a key:
 * key = head .. id .. tail. The head is key_stem() plus the opening hash tag of families that
 * have one ("<p>dev:{", "<p>owner:{t"); the tail is "}" for KEY_DEV, KEY_TRACE_USER,
 * KEY_RL_USER and KEY_EXPIRY (whose id is the bucket), "}:" for KEY_OWNER (bucket, then the
 * token follows) and "" for the others (static). KEY_TRACE_DEVICE has two ids: only
 * key_trace_device() builds its keys. */
size_t key_head(char out[KEY_MAX], const char *prefix, key_family_t family);
const char *key_tail(key_family_t family);

/* The part of a KEY_LEDGER or KEY_TRACE_DEVICE key up to and including the user's hash tag and the
 * ':' after it: "<p>led:<n>:{<user>}:" and "<p>trace:d:<n>:{<user>}:". Every key of the user in
 * that family starts with it (and no other user's does), so it is what a privacy delete matches
 * on; the rest is "<event>" and "<device>". */
size_t key_user_head(char out[KEY_MAX], const char *prefix, key_family_t family, const char *user);

#endif
