/* jwt_mint.c - herald-jwt-mint: prints HS256 bearer tokens signed with a secret file, for the
 * demo, integration tests and benchmarks (bench/api feeds wrk with --count tokens).
 *
 *   herald-jwt-mint --secret-file F (--sub U | --sub-prefix P) [--count N] [--ttl S] [--iss X]
 *                   [--aud Y] [--kid K] [--now UNIX_S]
 *
 * One token per line. With --sub-prefix the subjects are P1 .. PN; with --sub all N tokens carry
 * U. --ttl may be negative (an already expired token); --now replaces the clock. The secret file
 * is read with tok_auth_read_secret_file, exactly as herald reads it. */
#include "core/buf.h"
#include "core/clock.h"
#include "tools/jwt_mint/jwt_sign.h"
#include "tokens/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mint_opts {
    const char *secret_file, *sub, *sub_prefix, *iss, *aud, *kid;
    long long count, ttl, now;
} mint_opts_t;

static int usage(void)
{
    fprintf(stderr, "usage: herald-jwt-mint --secret-file F (--sub U | --sub-prefix P) "
                    "[--count N] [--ttl S] [--iss X] [--aud Y] [--kid K] [--now UNIX_S]\n");
    return 2;
}

static int num(const char *s, long long *out)
{
    char *end = NULL;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno == 0 && end != s && *end == '\0' ? 0 : -1;
}

static int parse_args(int argc, char **argv, mint_opts_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return -1;
        i++;
        if (strcmp(k, "--secret-file") == 0)
            o->secret_file = v;
        else if (strcmp(k, "--sub") == 0)
            o->sub = v;
        else if (strcmp(k, "--sub-prefix") == 0)
            o->sub_prefix = v;
        else if (strcmp(k, "--iss") == 0)
            o->iss = v;
        else if (strcmp(k, "--aud") == 0)
            o->aud = v;
        else if (strcmp(k, "--kid") == 0)
            o->kid = v;
        else if ((strcmp(k, "--count") == 0 && num(v, &o->count) == 0 && o->count > 0) ||
                 (strcmp(k, "--ttl") == 0 && num(v, &o->ttl) == 0) ||
                 (strcmp(k, "--now") == 0 && num(v, &o->now) == 0))
            continue;
        else
            return -1;
    }
    return o->secret_file != NULL && (o->sub != NULL) != (o->sub_prefix != NULL) ? 0 : -1;
}

static void opt_str(buf_t *b, const char *key, const char *v)
{
    if (v == NULL)
        return;
    buf_printf(b, ",\"%s\":", key);
    buf_json_str(b, v, strlen(v));
}

static void payload(buf_t *b, const mint_opts_t *o, long long i)
{
    buf_reset(b);
    buf_printf(b, "{\"iat\":%lld,\"exp\":%lld,\"sub\":", o->now, o->now + o->ttl);
    if (o->sub != NULL) {
        buf_json_str(b, o->sub, strlen(o->sub));
    } else {
        char sub[512];
        snprintf(sub, sizeof sub, "%s%lld", o->sub_prefix, i + 1);
        buf_json_str(b, sub, strlen(sub));
    }
    opt_str(b, "iss", o->iss);
    opt_str(b, "aud", o->aud);
    buf_putc(b, '}');
}

int main(int argc, char **argv)
{
    mint_opts_t o = {.count = 1, .ttl = 3600, .now = clk_wall_ms() / 1000};
    if (parse_args(argc, argv, &o) != 0)
        return usage();
    unsigned char *secret = NULL;
    size_t secret_len = 0;
    char err[256];
    if (tok_auth_read_secret_file(o.secret_file, &secret, &secret_len, err, sizeof err) != 0) {
        fprintf(stderr, "herald-jwt-mint: %s\n", err);
        return 1;
    }
    buf_t hdr = BUF_INIT, body = BUF_INIT;
    buf_puts(&hdr, "{\"alg\":\"HS256\",\"typ\":\"JWT\"");
    opt_str(&hdr, "kid", o.kid);
    buf_putc(&hdr, '}');
    for (long long i = 0; i < o.count; i++) {
        payload(&body, &o, i);
        char *t = js_sign_hs256(buf_cstr(&hdr), buf_cstr(&body), secret, secret_len);
        puts(t);
        free(t);
    }
    buf_cleanup(&hdr);
    buf_cleanup(&body);
    free(secret);
    return fflush(stdout) == 0 ? 0 : 1;
}
