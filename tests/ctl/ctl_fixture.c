/* ctl_fixture.c - the cmocka side of the tests/ctl helpers (ctl_seed.h): fixtures and the checks
 * that fail a test; kept apart from ctl_seed.c, which the pipeline benchmark links without cmocka.
 */
#include "tests/ctl/ctl_seed.h"

#include "core/clock.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

int seed_flush(void **state)
{
    free(th_redis_cmd(*state, "FLUSHALL"));
    return 0;
}

int seed_stop(void **state)
{
    th_redis_stop(*state);
    return 0;
}

int64_t seed_now(void)
{
    return clk_wall_ms() / 1000;
}

tok_record_t seed_stored(th_redis_t *rs, const char *user, const char *device)
{
    char *js = th_redis_cmd(rs, "HGET herald:dev:{%s} %s", user, device);
    if (js == NULL)
        fail_msg("no record %s/%s", user, device);
    tok_record_t r;
    char e[128];
    if (tok_record_parse(js, strlen(js), &r, e, sizeof e) != 0)
        fail_msg("%s/%s: %s (%s)", user, device, e, js);
    free(js);
    return r;
}

void seed_expect_owner(th_redis_t *rs, const char *token, const char *user, const char *device)
{
    char k[KEY_MAX];
    char *v = th_redis_cmd(rs, "GET %s", th_owner_key(k, "herald:", token));
    char want[300];
    snprintf(want, sizeof want, "%s\x1f%s", user, device);
    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

static const char SNAPSHOT[] =
    "local ks = redis.call('KEYS', '*') table.sort(ks) local o = {} "
    "for _, k in ipairs(ks) do "
    "  local t = redis.call('TYPE', k).ok "
    "  o[#o + 1] = k .. ' ' .. t .. ' ' .. redis.call('EXPIRETIME', k) "
    "  if t == 'string' then o[#o + 1] = redis.call('GET', k) "
    "  elseif t == 'zset' then "
    "    o[#o + 1] = table.concat(redis.call('ZRANGE', k, 0, -1, 'WITHSCORES'), ' ') "
    "  elseif t == 'hash' then "
    "    local h = redis.call('HGETALL', k) local f = {} "
    "    for i = 1, #h, 2 do f[#f + 1] = h[i] .. '=' .. h[i + 1] end "
    "    table.sort(f) o[#o + 1] = table.concat(f, '\\n') "
    "  end "
    "end "
    "return table.concat(o, '\\n')";

char *seed_snapshot(th_redis_t *rs)
{
    char *s = th_redis_cmd(rs, "EVAL %s 0", SNAPSHOT);
    assert_non_null(s);
    return s;
}
