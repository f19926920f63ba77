/* tkeys.h - the token-scoped key names tests look at (db/keys.h): a token's owner key, its expiry
 * bucket, and a script that counts the entries of every expiry bucket (EVAL it with 0 keys and
 * the buckets' head "<p>expiry:{t" as its argument). */
#ifndef HERALD_TESTS_TKEYS_H
#define HERALD_TESTS_TKEYS_H

#include "db/keys.h"

#define TH_EXPIRY_COUNT_LUA                                                                        \
    "local n = 0 for k = 0, 1023 do n = n + redis.call('ZCARD', ARGV[1] .. k .. '}') end return n"

static inline const char *th_owner_key(char out[KEY_MAX], const char *prefix, const char *token)
{
    key_owner(out, prefix, token);
    return out;
}

static inline const char *th_expiry_key(char out[KEY_MAX], const char *prefix, const char *token)
{
    key_expiry(out, prefix, key_token_bucket(token));
    return out;
}

#endif
