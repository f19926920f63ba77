/* jwt_sign.c - test-only JWT signer and JWK writer (see jwt_sign.h). */
#include "tools/jwt_mint/jwt_sign.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

void js_b64url(buf_t *out, const void *p, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *s = p;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | s[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            buf_putc(out, abc[(acc >> bits) & 63]);
        }
    }
    if (bits > 0)
        buf_putc(out, abc[(acc << (6 - bits)) & 63]);
}

static void signing_input(buf_t *b, const char *header_json, const char *payload_json)
{
    js_b64url(b, header_json, strlen(header_json));
    buf_putc(b, '.');
    js_b64url(b, payload_json, strlen(payload_json));
}

char *js_sign_hs256(const char *header_json, const char *payload_json, const unsigned char *key,
                    size_t keylen)
{
    buf_t b = BUF_INIT;
    signing_input(&b, header_json, payload_json);
    unsigned char mac[32];
    unsigned maclen = 0;
    HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)b.data, b.len, mac, &maclen);
    buf_putc(&b, '.');
    js_b64url(&b, mac, maclen);
    return buf_steal(&b);
}

/* DER ECDSA signature -> JWS r||s. */
static int der_to_raw(const unsigned char *der, size_t len, unsigned char raw[64])
{
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &der, (long)len);
    if (es == NULL)
        return -1;
    int ok = BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32) == 32 &&
             BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32) == 32;
    ECDSA_SIG_free(es);
    return ok ? 0 : -1;
}

char *js_sign_pkey(const char *header_json, const char *payload_json, EVP_PKEY *pkey)
{
    buf_t b = BUF_INIT;
    signing_input(&b, header_json, payload_json);
    int ec = EVP_PKEY_is_a(pkey, "EC");
    unsigned char sig[1100];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
             EVP_DigestSign(md, sig, &siglen, (const unsigned char *)b.data, b.len) == 1;
    EVP_MD_CTX_free(md);
    unsigned char raw[64];
    if (ok && ec) {
        ok = der_to_raw(sig, siglen, raw) == 0;
        memcpy(sig, raw, sizeof raw);
        siglen = sizeof raw;
    }
    if (!ok) {
        buf_cleanup(&b);
        return NULL;
    }
    buf_putc(&b, '.');
    js_b64url(&b, sig, siglen);
    return buf_steal(&b);
}

EVP_PKEY *js_gen_rsa(unsigned bits)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

EVP_PKEY *js_gen_p256(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static void put_bn(buf_t *out, const char *name, const BIGNUM *bn, int pad)
{
    unsigned char bin[1100];
    int n = pad ? BN_bn2binpad(bn, bin, pad) : BN_bn2bin(bn, bin);
    buf_printf(out, ",\"%s\":\"", name);
    js_b64url(out, bin, (size_t)n);
    buf_putc(out, '"');
}

static void put_param(buf_t *out, EVP_PKEY *pkey, const char *param, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(pkey, param, &bn) == 1)
        put_bn(out, name, bn, pad);
    BN_free(bn);
}

void js_jwk(buf_t *out, EVP_PKEY *pkey, const char *kid, const char *alg)
{
    int ec = EVP_PKEY_is_a(pkey, "EC");
    buf_printf(out, "{\"kty\":\"%s\"", ec ? "EC" : "RSA");
    if (kid != NULL)
        buf_printf(out, ",\"kid\":\"%s\"", kid);
    if (alg != NULL)
        buf_printf(out, ",\"alg\":\"%s\"", alg);
    buf_puts(out, ",\"use\":\"sig\"");
    if (ec) {
        buf_puts(out, ",\"crv\":\"P-256\"");
        put_param(out, pkey, OSSL_PKEY_PARAM_EC_PUB_X, "x", 32);
        put_param(out, pkey, OSSL_PKEY_PARAM_EC_PUB_Y, "y", 32);
    } else {
        put_param(out, pkey, OSSL_PKEY_PARAM_RSA_N, "n", 0);
        put_param(out, pkey, OSSL_PKEY_PARAM_RSA_E, "e", 0);
    }
    buf_putc(out, '}');
}
