/* ctl_seed.c - seeding, heraldctl runner and index consistency checks for tests/ctl. */
#include "tests/ctl/ctl_seed.h"

#include "core/xalloc.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static redisContext *connect_rs(th_redis_t *rs)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", rs->port, tv);
    if (c == NULL || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    return c;
}

static int drain(redisContext *c, long n)
{
    for (long i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL)
            return -1;
        int bad = r->type == REDIS_REPLY_ERROR;
        if (bad)
            fprintf(stderr, "seed: %s\n", r->str);
        freeReplyObject(r);
        if (bad)
            return -1;
    }
    return 0;
}

static void default_shape(long i, tok_record_t *r, int64_t now)
{
    (void)i;
    r->platform = i % 3 == 0 ? TOK_PLATFORM_ANDROID : TOK_PLATFORM_IOS;
    snprintf(r->registered_at, sizeof r->registered_at, "2025-01-01T00:00:00.000Z");
    snprintf(r->updated_at, sizeof r->updated_at, "2025-06-01T12:00:00.000Z");
    r->active = true;
    r->expires_at = now + 86400;
}

/* Queues one command on c, or on a cluster (rs->cluster) runs it at once on the node serving its
 * key (th_redis_vcmd follows MOVED). Returns 0 or -1. */
static int seed_cmd(th_redis_t *rs, redisContext *c, long *queued, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = 0;
    if (rs->cluster) {
        char *v = th_redis_vcmd(rs, fmt, ap);
        rc = v ? 0 : -1;
        free(v);
    } else {
        rc = redisvAppendCommand(c, fmt, ap) == REDIS_OK ? 0 : -1;
        (*queued)++;
    }
    va_end(ap);
    return rc;
}

int seed_records(th_redis_t *rs, long n, long per_user, int64_t now, seed_shape_fn shape, void *arg)
{
    redisContext *c = connect_rs(rs);
    if (c == NULL)
        return -1;
    buf_t js = BUF_INIT;
    long queued = 0;
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        tok_record_t r;
        memset(&r, 0, sizeof r);
        snprintf(r.user_id, sizeof r.user_id, "u%ld", i / per_user);
        snprintf(r.device_id, sizeof r.device_id, "d%ld", i % per_user);
        snprintf(r.token, sizeof r.token, "ExponentPushToken[t%ld]", i);
        default_shape(i, &r, now);
        if (shape)
            shape(i, &r, now, arg);
        buf_reset(&js);
        tok_record_json(&r, &js);
        char key[200], member[300], exp[32];
        snprintf(key, sizeof key, "herald:dev:{%s}", r.user_id);
        snprintf(member, sizeof member, "%s\x1f%s", r.user_id, r.device_id);
        snprintf(exp, sizeof exp, "%" PRId64, r.expires_at);
        char okey[KEY_MAX], ekey[KEY_MAX];
        if (seed_cmd(rs, c, &queued, "HSET %s %s %b", key, r.device_id, js.data, js.len) != 0 ||
            seed_cmd(rs, c, &queued, "ZADD %s %s %s", th_expiry_key(ekey, "herald:", r.token), exp,
                     member) != 0)
            rc = -1;
        if (rc == 0 && r.expires_at > now)
            rc = seed_cmd(rs, c, &queued, "SET %s %s EXAT %s",
                          th_owner_key(okey, "herald:", r.token), member, exp);
        if (queued >= 30000) {
            rc = drain(c, queued);
            queued = 0;
        }
    }
    if (rc == 0)
        rc = drain(c, queued);
    buf_cleanup(&js);
    redisFree(c);
    return rc;
}

void seed_conf(const char *dir, const char *redis_url, const char *extra, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/heraldctl.conf", dir);
    FILE *f = fopen(out, "w");
    if (f == NULL)
        abort();
    fprintf(f, "redis.url = %s\nauth.mode = trusted-header\nkafka.embedded = true\n%s\n", redis_url,
            extra ? extra : "");
    fclose(f);
}

static void slurp(const char *path, buf_t *b)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(b, tmp, n);
    fclose(f);
}

int run_ctl(const char *conf, buf_t *out, buf_t *err, const char *args)
{
    char errpath[512];
    snprintf(errpath, sizeof errpath, "%s.stderr", conf);
    buf_t cmd = BUF_INIT;
    /* The test runner's own HERALD_* variables are not configuration keys. */
    buf_printf(&cmd, "env -u HERALD_FIXTURES -u HERALD_BIN_DIR %s/heraldctl --config %s %s 2>%s",
               th_bin_dir(), conf, args, errpath);
    FILE *p = popen(cmd.data, "r");
    buf_cleanup(&cmd);
    if (p == NULL)
        return -1;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, p)) > 0)
        if (out)
            buf_append(out, tmp, n);
    int st = pclose(p);
    if (err)
        slurp(errpath, err);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int run_ctlf(const char *conf, buf_t *out, buf_t *err, const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    buf_reset(out);
    buf_reset(err);
    int rc = run_ctl(conf, out, err, args);
    buf_putc(out, '\0'), out->len--;
    buf_putc(err, '\0'), err->len--;
    return rc;
}

bool out_has(const buf_t *b, const char *needle)
{
    bool ok = b->data && strstr(b->data, needle);
    if (!ok)
        fprintf(stderr, "expected '%s' in:\n%s\n", needle, buf_cstr(b));
    return ok;
}

long long redis_int(th_redis_t *rs, const char *cmd)
{
    /* Words separated by single spaces; EVAL bodies in tests keep theirs inside quotes. */
    const char *argv[32];
    size_t lens[32];
    int argc = 0;
    for (const char *p = cmd; *p && argc < 32;) {
        const char *end;
        if (*p == '"') {
            end = strchr(p + 1, '"');
            argv[argc] = p + 1;
            lens[argc++] = (size_t)(end - p - 1);
            end++;
        } else {
            end = p + strcspn(p, " ");
            argv[argc] = p;
            lens[argc++] = (size_t)(end - p);
        }
        p = *end ? end + 1 : end;
    }
    redisContext *c = connect_rs(rs);
    if (c == NULL)
        return -1;
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return v;
}

/* Owner keys: each points at an existing record holding that token. */
static long check_owners(redisContext *c)
{
    long bad = 0;
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH herald:owner:* COUNT 1000", cursor);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *k = r->element[1]->element[i]->str;
            redisReply *v = redisCommand(c, "GET %s", k);
            char *sep = v->str ? strchr(v->str, '\x1f') : NULL;
            redisReply *h = sep ? redisCommand(c, "HGET herald:dev:{%b} %s", v->str,
                                               (size_t)(sep - v->str), sep + 1)
                                : NULL;
            tok_record_t rec;
            char err[64], want[KEY_MAX];
            if (h == NULL || h->type != REDIS_REPLY_STRING ||
                tok_record_parse(h->str, h->len, &rec, err, sizeof err) != 0 ||
                strcmp(th_owner_key(want, "herald:", rec.token), k) != 0) {
                fprintf(stderr, "index: owner key %s points at a missing record\n", k);
                bad++;
            }
            if (h)
                freeReplyObject(h);
            freeReplyObject(v);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return bad;
}

/* The entries of one expiry bucket that have no record with the same expiresAt and a token of
 * that bucket; adds the bucket's entries to *entries. */
static long check_bucket(redisContext *c, unsigned b, long *entries)
{
    long bad = 0;
    char zkey[KEY_MAX];
    key_expiry(zkey, "herald:", b);
    redisReply *z = redisCommand(c, "ZRANGE %s 0 -1 WITHSCORES", zkey);
    for (size_t i = 0; i + 1 < z->elements; i += 2) {
        const char *m = z->element[i]->str;
        const char *sep = strchr(m, '\x1f');
        redisReply *h = redisCommand(c, "HGET herald:dev:{%b} %s", m, (size_t)(sep - m), sep + 1);
        tok_record_t rec;
        char err[64];
        if (h->type != REDIS_REPLY_STRING ||
            tok_record_parse(h->str, h->len, &rec, err, sizeof err) != 0 ||
            rec.expires_at != strtoll(z->element[i + 1]->str, NULL, 10) ||
            key_token_bucket(rec.token) != b) {
            fprintf(stderr, "index: expiry entry without its record\n");
            bad++;
        }
        freeReplyObject(h);
    }
    *entries += (long)z->elements / 2;
    freeReplyObject(z);
    return bad;
}

/* Expiry entries: each has a record with the same expiresAt, in its token's bucket; each record
 * has an entry. */
static long check_expiry(redisContext *c)
{
    long bad = 0, records = 0, entries = 0;
    for (unsigned b = 0; b < KEY_TOKEN_BUCKETS; b++)
        bad += check_bucket(c, b, &entries);
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH herald:dev:* COUNT 1000", cursor);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            redisReply *n = redisCommand(c, "HLEN %s", r->element[1]->element[i]->str);
            records += n->integer;
            freeReplyObject(n);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    if (records != entries) {
        fprintf(stderr, "index: %ld records but %ld expiry entries\n", records, entries);
        bad++;
    }
    return bad;
}

long long seed_owner_exists(th_redis_t *rs, const char *token)
{
    char k[KEY_MAX], cmd[KEY_MAX + 16];
    snprintf(cmd, sizeof cmd, "EXISTS %s", th_owner_key(k, "herald:", token));
    return redis_int(rs, cmd);
}

long check_indexes(th_redis_t *rs)
{
    redisContext *c = connect_rs(rs);
    if (c == NULL)
        return 1;
    long bad = check_owners(c) + check_expiry(c);
    redisFree(c);
    return bad;
}
