/* fuzz_jwks.c - libFuzzer target for JWKS parsing: tok_auth_create with arbitrary jwks_json. */
#include "tokens/auth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *jwks = malloc(size + 1);
    memcpy(jwks, data, size);
    jwks[size] = '\0';
    tok_auth_opts_t o = {NULL, 0, jwks, NULL, NULL, 0, NULL};
    char err[256];
    tok_auth_t *a = tok_auth_create(&o, err, sizeof err);
    if (a != NULL) { /* a usable key must refuse a token it did not sign */
        const char t[] = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTksInN1YiI6InUifQ.AAAA";
        if (tok_auth_verify(a, t, sizeof t - 1, NULL, 0) == TOK_AUTH_OK)
            abort();
    } else if (strnlen(err, sizeof err) == 0) {
        abort(); /* every refusal says why */
    }
    tok_auth_destroy(a);
    free(jwks);
    return 0;
}
