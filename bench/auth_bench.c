/* auth_bench.c - bench-auth: verifications per second of tok_auth_verify for HS256, RS256 (2048)
 * and ES256 (P-256) tokens with Cognito-sized claims, on one core. Prints figures; asserts nothing.
 *
 *   bench-auth [seconds-per-algorithm, default 1] */
#include "core/buf.h"
#include "core/clock.h"
#include "tools/jwt_mint/jwt_sign.h"
#include "tokens/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTOK 256

static const unsigned char secret[] = "bench-secret-bench-secret-bench-secret";

static void claims(char *out, size_t n, int i)
{
    long now = (long)(clk_wall_ms() / 1000);
    snprintf(out, n,
             "{\"sub\":\"7f3c0a2e-%04d-4a51-9b7e-2c1d3e4f5a6b\",\"iss\":\"https://cognito-idp."
             "us-east-1.amazonaws.com/us-east-1_AbCdEfGhI\",\"client_id\":\"app1\",\"token_use\":"
             "\"access\",\"scope\":\"aws.cognito.signin.user.admin\",\"auth_time\":%ld,\"iat\":%ld,"
             "\"exp\":%ld,\"jti\":\"b1e2c3d4-%04d\",\"username\":\"user%d\"}",
             i, now, now, now + 3600, i, i);
}

static void run(tok_auth_t *a, const char *name, char **toks, double secs)
{
    uint64_t start = clk_mono_us(), end = start + (uint64_t)(secs * 1e6), now = start;
    long n = 0, bad = 0;
    char sub[129];
    while (now < end) {
        for (int i = 0; i < 64; i++, n++) {
            const char *t = toks[n % NTOK];
            bad += tok_auth_verify(a, t, strlen(t), sub, sizeof sub) != TOK_AUTH_OK;
        }
        now = clk_mono_us();
    }
    double el = (double)(now - start) / 1e6;
    printf("%-6s %9.0f verifications/s  %6.2f us each  (%ld in %.2f s, %ld failed, token %zu B)\n",
           name, (double)n / el, el * 1e6 / (double)n, n, el, bad, strlen(toks[0]));
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    EVP_PKEY *rsa = js_gen_rsa(2048), *ec = js_gen_p256();
    buf_t jwks = BUF_INIT;
    buf_puts(&jwks, "{\"keys\":[");
    js_jwk(&jwks, rsa, "rsa1", "RS256");
    buf_putc(&jwks, ',');
    js_jwk(&jwks, ec, "ec1", "ES256");
    buf_puts(&jwks, "]}");
    tok_auth_opts_t o = {secret,
                         sizeof secret - 1,
                         buf_cstr(&jwks),
                         "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEfGhI",
                         "app1",
                         30,
                         NULL};
    char err[200];
    tok_auth_t *a = tok_auth_create(&o, err, sizeof err);
    if (a == NULL) {
        fprintf(stderr, "bench-auth: %s\n", err);
        return 1;
    }
    static char *hs[NTOK], *rs[NTOK], *es[NTOK];
    char c[600];
    for (int i = 0; i < NTOK; i++) {
        claims(c, sizeof c, i);
        hs[i] = js_sign_hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", c, secret, sizeof secret - 1);
        rs[i] = js_sign_pkey("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", c, rsa);
        es[i] = js_sign_pkey("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", c, ec);
    }
    run(a, "HS256", hs, secs);
    run(a, "RS256", rs, secs);
    run(a, "ES256", es, secs);
    for (int i = 0; i < NTOK; i++) {
        free(hs[i]);
        free(rs[i]);
        free(es[i]);
    }
    tok_auth_destroy(a);
    buf_cleanup(&jwks);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    return 0;
}
