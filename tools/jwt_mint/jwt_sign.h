/* jwt_sign.h - test-only JWT signing (HS256, RS256, ES256), key generation and JWK output.
 *
 * Used by the auth unit tests, the fuzz targets, bench-auth and herald-jwt-mint to make real signed
 * tokens; never linked into herald itself. Header and payload are given as JSON text and encoded
 * exactly as given, so tests can sign deliberately odd headers. */
#ifndef HERALD_TESTS_JWT_SIGN_H
#define HERALD_TESTS_JWT_SIGN_H

#include "core/buf.h"

#include <openssl/evp.h>
#include <stddef.h>

/* Appends unpadded base64url of p[0..n). */
void js_b64url(buf_t *out, const void *p, size_t n);

/* new (free with free()): "b64(header).b64(payload).b64(HMAC-SHA256)". */
char *js_sign_hs256(const char *header_json, const char *payload_json, const unsigned char *key,
                    size_t keylen);
/* new: RS256 for an RSA key, ES256 (raw r||s) for a P-256 key; NULL on failure. */
char *js_sign_pkey(const char *header_json, const char *payload_json, EVP_PKEY *pkey);

/* new (free with EVP_PKEY_free): fresh key pairs. */
EVP_PKEY *js_gen_rsa(unsigned bits);
EVP_PKEY *js_gen_p256(void);

/* Appends the public JWK of pkey as a JSON object. kid and alg are omitted when NULL. */
void js_jwk(buf_t *out, EVP_PKEY *pkey, const char *kid, const char *alg);

#endif
