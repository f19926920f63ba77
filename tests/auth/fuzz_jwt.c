/* fuzz_jwt.c - libFuzzer target for tok_auth_verify with an HS256 secret and a JWKS (RSA + P-256).
 *
 * The first input byte picks a mode: raw token bytes (the attacker's view), or "header JSON \n
 * payload JSON" that the harness signs with the real secret or keys, so the claim parser and the
 * claim checks behind the signature are reached too. An OK result must carry a valid subject. */
#include "core/buf.h"
#include "core/clock.h"
#include "tools/jwt_mint/jwt_sign.h"
#include "tokens/auth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char secret[] = "fuzz-secret-fuzz-secret-fuzz-secret!";
static tok_auth_t *auth;
static EVP_PKEY *rsa, *ec;
static clk_fake_t clk;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    rsa = js_gen_rsa(2048);
    ec = js_gen_p256();
    buf_t j = BUF_INIT;
    buf_puts(&j, "{\"keys\":[");
    js_jwk(&j, rsa, "rsa1", "RS256");
    buf_putc(&j, ',');
    js_jwk(&j, ec, "ec1", NULL);
    buf_puts(&j, "]}");
    clk_fake_init(&clk, 1800000000000LL);
    tok_auth_opts_t o = {secret, sizeof secret - 1, j.data, "iss1", "app1", 30, &clk.clk};
    auth = tok_auth_create(&o, NULL, 0);
    buf_cleanup(&j);
    if (auth == NULL)
        abort();
    return 0;
}

static void check(const char *t, size_t n)
{
    char sub[129];
    memset(sub, 0x7f, sizeof sub);
    if (tok_auth_verify(auth, t, n, sub, sizeof sub) != TOK_AUTH_OK)
        return;
    size_t len = strnlen(sub, sizeof sub);
    if (len == 0 || len > 128)
        abort();
    for (size_t i = 0; i < len; i++)
        if (sub[i] < 0x20 || sub[i] > 0x7e)
            abort();
}

static void signed_mode(unsigned mode, const uint8_t *d, size_t n)
{
    char *in = malloc(n + 1);
    memcpy(in, d, n);
    in[n] = '\0';
    char *nl = strchr(in, '\n');
    if (nl == NULL) {
        free(in);
        return;
    }
    *nl = '\0';
    char *t = mode == 7   ? js_sign_pkey(in, nl + 1, rsa)
              : mode == 6 ? js_sign_pkey(in, nl + 1, ec)
                          : js_sign_hs256(in, nl + 1, secret, sizeof secret - 1);
    if (t != NULL)
        check(t, strlen(t));
    free(t);
    free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned mode = data[0] % 8; /* 0-3 raw, 4-5 HS256, 6 ES256, 7 RS256 */
    if (mode < 4)
        check((const char *)data + 1, size - 1);
    else
        signed_mode(mode, data + 1, size - 1);
    return 0;
}
