/* auth.c - bearer JWT verification (HS256, RS256, ES256) with OpenSSL 3 and jansson.
 *
 * The verification method comes from the key, never from the token: the header's `kid` picks a
 * JWKS key (or the HS256 secret), and the header's `alg` must be that key's algorithm before any
 * signature is checked (DESIGN.md "JWT pitfall"). The signature is checked before the payload is
 * even decoded, so unauthenticated claims never reach the JSON parser.
 *
 * Input rules (all rejections are precise; see tok_auth_result_t):
 *   - at most TOK_JWT_MAX bytes, exactly three parts separated by '.';
 *   - strict base64url (RFC 4648 section 5): alphabet [A-Za-z0-9_-] only, no '=' padding, no
 *     whitespace, and the unused low bits of the last character must be zero, so every byte string
 *     has exactly one accepted encoding;
 *   - header and payload are JSON objects (duplicate member names rejected, jansson bounds depth);
 *   - header `alg` is "HS256", "RS256" or "ES256" exactly (case-sensitive; `none` in any spelling
 * is BAD_ALG); a `crit` member is MALFORMED (no extension is understood); `jku`, `jwk`, `x5u`,
 *     `x5c` are ignored, keys only ever come from the configuration;
 *   - `exp` is required (a token without expiry is MALFORMED: every issuer we accept, Cognito
 *     included, sets it); `nbf` is optional; both are numbers, compared with the leeway;
 *   - `aud` (string, or array containing the audience) is checked when an audience is configured;
 *     Cognito access tokens carry no `aud` but `client_id`, which is accepted only when `aud` is
 *     absent (a token addressed to another audience stays refused);
 *   - `sub` must be 1-128 printable ASCII bytes (the rule of tok_valid_user in tokens/model.c,
 *     repeated here as valid_sub so this file links without the model).
 *
 * Key choice: a token with `kid` uses the JWKS key of that kid. A token without `kid` uses the only
 * usable JWKS key when the JWKS has exactly one; otherwise UNKNOWN_KEY. HS256 always uses the
 * configured secret, and is BAD_ALG when no secret is configured or when its `kid` names a JWKS
 * key (an HS256 token claiming an RSA/EC key is the pitfall). JWKS entries that are not RS256/ES256
 * signature keys (use "enc", kty "oct"/"OKP", other `alg`) are kept by kid only so that a token
 * naming them is BAD_ALG; symmetric keys are never taken from a JWKS. RSA keys need 2048-8192 bits
 * and an odd exponent > 1; EC keys must be valid P-256 points; kids are unique. */
#include "tokens/auth.h"
#include "core/file.h"

#include "core/xalloc.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KID_MAX 256
#define RSA_BITS_MIN 2048
#define RSA_BITS_MAX 8192
#define SIG_MAX (RSA_BITS_MAX / 8)
#define PART_MAX (TOK_JWT_MAX / 4 * 3 + 3) /* decoded size of any part of a bounded token */

typedef enum { ALG_UNUSABLE, ALG_HS256, ALG_RS256, ALG_ES256 } alg_t;

typedef struct jwk {
    char *kid; /* NULL when the JWK has none */
    alg_t alg; /* ALG_UNUSABLE: listed but not for RS256/ES256 signatures (use=enc, other kty) */
    EVP_PKEY *pkey;
} jwk_t;

struct tok_auth {
    EVP_MAC_CTX *hmac; /* keyed once; re-initialised per token (not thread-safe, one loop) */
    EVP_MD *sha256;    /* fetched once: no provider lookup per verification */
    jwk_t *keys;
    size_t nkeys;
    size_t nusable;
    char *issuer;   /* NULL: not checked */
    char *audience; /* NULL: not checked */
    long leeway_s;
    const clk_t *clock;
};

/* ---- base64url ---- */

static const signed char b64url_val[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
}; /* value + 1; 0 = not in the alphabet */

static size_t b64url_decoded_len(size_t n)
{
    return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
}

/* Strict unpadded base64url. Returns the decoded length, or -1 (bad character, impossible length,
 * non-zero unused bits, or more than outcap bytes). */
static long b64url_decode(const char *in, size_t n, unsigned char *out, size_t outcap)
{
    if (n % 4 == 1 || b64url_decoded_len(n) > outcap)
        return -1;
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_val[(unsigned char)in[i]];
        if (v == 0)
            return -1;
        acc = (acc << 6) | (unsigned)(v - 1);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* leftover bits must be zero: one encoding per value */
        return -1;
    return (long)o;
}

/* ---- small helpers ---- */

static int str_eq(const json_t *v, const char *s)
{
    size_t n = strlen(s);
    return json_is_string(v) && json_string_length(v) == n &&
           memcmp(json_string_value(v), s, n) == 0;
}

/* tok_valid_user's rule (tokens/model.c): 1-128 bytes of printable ASCII. */
static int valid_sub(const char *s, size_t n)
{
    if (n == 0 || n > 128)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return -1;
    return 0;
}

static alg_t alg_parse(const json_t *v)
{
    if (str_eq(v, "HS256"))
        return ALG_HS256;
    if (str_eq(v, "RS256"))
        return ALG_RS256;
    if (str_eq(v, "ES256"))
        return ALG_ES256;
    return ALG_UNUSABLE;
}

/* Decodes one base64url part and parses it as a JSON object. NULL when either fails. */
static json_t *part_json(const char *p, size_t n)
{
    unsigned char buf[PART_MAX];
    long len = b64url_decode(p, n, buf, sizeof buf);
    if (len <= 0)
        return NULL;
    json_t *j = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- JWKS ---- */

static void err_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err_set(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Decodes a base64url JWK member into out (at most cap bytes). Returns the length or -1. */
static long jwk_bytes(const json_t *k, const char *name, unsigned char *out, size_t cap)
{
    const json_t *v = json_object_get(k, name);
    if (!json_is_string(v))
        return -1;
    return b64url_decode(json_string_value(v), json_string_length(v), out, cap);
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

static EVP_PKEY *rsa_from_jwk(const json_t *k, char *err, size_t errlen)
{
    unsigned char nb[SIG_MAX + 1], eb[8];
    long nl = jwk_bytes(k, "n", nb, sizeof nb), el = jwk_bytes(k, "e", eb, sizeof eb);
    if (nl <= 0 || el <= 0) {
        err_set(err, errlen, "RSA key needs base64url \"n\" (up to %d bits) and \"e\"",
                RSA_BITS_MAX);
        return NULL;
    }
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    const char *why = "cannot build the RSA key";
    BIGNUM *n = BN_bin2bn(nb, (int)nl, NULL), *e = BN_bin2bn(eb, (int)el, NULL);
    if (n == NULL || e == NULL)
        goto fail;
    /* e = 1 would make any padded message its own signature. */
    if (BN_num_bits(n) < RSA_BITS_MIN || BN_num_bits(n) > RSA_BITS_MAX || !BN_is_odd(e) ||
        BN_is_one(e)) {
        why = "RSA key must have 2048-8192 bits and an odd exponent > 1";
        goto fail;
    }
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
        goto fail;
    pkey = pkey_from_params("RSA", params);
    why = "OpenSSL refused the RSA key";
fail:
    if (pkey == NULL)
        err_set(err, errlen, "%s", why);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

static int pkey_public_ok(EVP_PKEY *pkey)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = ctx != NULL && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static EVP_PKEY *ec_from_jwk(const json_t *k, char *err, size_t errlen)
{
    unsigned char pub[65];
    pub[0] = 0x04; /* uncompressed point: x || y */
    if (jwk_bytes(k, "x", pub + 1, 32) != 32 || jwk_bytes(k, "y", pub + 33, 32) != 32) {
        err_set(err, errlen, "P-256 key needs base64url \"x\" and \"y\" of 32 bytes each");
        return NULL;
    }
    char group[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY *pkey = pkey_from_params("EC", params);
    if (pkey == NULL || !pkey_public_ok(pkey)) {
        EVP_PKEY_free(pkey);
        err_set(err, errlen, "P-256 key is not a valid point on the curve");
        return NULL;
    }
    return pkey;
}

/* Fills *out from one JWK. Keys not meant for RS256/ES256 signatures are kept as ALG_UNUSABLE so a
 * token naming them gets BAD_ALG; malformed RS256/ES256 keys are errors. */
static int jwk_parse(const json_t *k, jwk_t *out, char *err, size_t errlen)
{
    const json_t *kty = json_object_get(k, "kty"), *kid = json_object_get(k, "kid");
    const json_t *use = json_object_get(k, "use"), *alg = json_object_get(k, "alg");
    if (!json_is_object(k) || !json_is_string(kty)) {
        err_set(err, errlen, "not an object with a string \"kty\"");
        return -1;
    }
    if (kid != NULL) {
        if (!json_is_string(kid) || json_string_length(kid) == 0 ||
            json_string_length(kid) > KID_MAX) {
            err_set(err, errlen, "\"kid\" must be a string of 1-%d bytes", KID_MAX);
            return -1;
        }
        out->kid = xstrndup(json_string_value(kid), json_string_length(kid));
    }
    if ((use != NULL && !str_eq(use, "sig")) || (alg != NULL && !json_is_string(alg)))
        return 0;
    if (str_eq(kty, "RSA") && (alg == NULL || str_eq(alg, "RS256"))) {
        out->pkey = rsa_from_jwk(k, err, errlen);
        out->alg = ALG_RS256;
    } else if (str_eq(kty, "EC") && str_eq(json_object_get(k, "crv"), "P-256") &&
               (alg == NULL || str_eq(alg, "ES256"))) {
        out->pkey = ec_from_jwk(k, err, errlen);
        out->alg = ALG_ES256;
    } else {
        return 0;
    }
    return out->pkey != NULL ? 0 : -1;
}

static int kid_taken(const tok_auth_t *a, const char *kid)
{
    for (size_t i = 0; i < a->nkeys; i++)
        if (a->keys[i].kid != NULL && strcmp(a->keys[i].kid, kid) == 0)
            return 1;
    return 0;
}

static int jwks_keys(tok_auth_t *a, const json_t *keys, char *err, size_t errlen)
{
    size_t n = json_array_size(keys);
    if (n > TOK_JWKS_KEYS_MAX) {
        err_set(err, errlen, "JWKS has %zu keys (at most %d)", n, TOK_JWKS_KEYS_MAX);
        return -1;
    }
    a->keys = xcalloc(n ? n : 1, sizeof *a->keys);
    for (size_t i = 0; i < n; i++) {
        jwk_t k = {NULL, ALG_UNUSABLE, NULL};
        char why[160] = "";
        int rc = jwk_parse(json_array_get(keys, i), &k, why, sizeof why);
        if (rc == 0 && k.kid != NULL && kid_taken(a, k.kid)) {
            snprintf(why, sizeof why, "duplicate \"kid\"");
            rc = -1;
        }
        if (rc != 0) {
            err_set(err, errlen, "JWKS key %zu: %s", i, why);
            free(k.kid);
            EVP_PKEY_free(k.pkey);
            return -1;
        }
        a->keys[a->nkeys++] = k;
        a->nusable += k.alg != ALG_UNUSABLE;
    }
    return 0;
}

static int jwks_load(tok_auth_t *a, const char *jwks, char *err, size_t errlen)
{
    size_t len = strnlen(jwks, TOK_JWKS_MAX + 1);
    if (len > TOK_JWKS_MAX) {
        err_set(err, errlen, "JWKS is larger than %d bytes", TOK_JWKS_MAX);
        return -1;
    }
    json_error_t je;
    json_t *root = json_loadb(jwks, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        err_set(err, errlen, "JWKS is not valid JSON (line %d: %s)", je.line, je.text);
        return -1;
    }
    int rc = -1;
    const json_t *keys = json_object_get(root, "keys");
    if (!json_is_object(root) || !json_is_array(keys))
        err_set(err, errlen, "JWKS must be an object with a \"keys\" array");
    else
        rc = jwks_keys(a, keys, err, errlen);
    json_decref(root);
    return rc;
}

/* ---- lifecycle ---- */

static int hmac_setup(tok_auth_t *a, const unsigned char *key, size_t len, char *err, size_t errlen)
{
    if (len < TOK_SECRET_MIN || len > TOK_SECRET_MAX) {
        err_set(err, errlen, "HS256 secret must be %d-%d bytes (it is %zu)", TOK_SECRET_MIN,
                TOK_SECRET_MAX, len);
        return -1;
    }
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    a->hmac = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context holds its own reference */
    if (a->hmac == NULL || EVP_MAC_init(a->hmac, key, len, params) != 1) {
        err_set(err, errlen, "OpenSSL has no usable HMAC-SHA256");
        return -1;
    }
    return 0;
}

tok_auth_t *tok_auth_create(const tok_auth_opts_t *opts, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (opts == NULL) {
        err_set(err, errlen, "no options");
        return NULL;
    }
    tok_auth_t *a = xcalloc(1, sizeof *a);
    if (opts->leeway_s < 0 || opts->leeway_s > 86400) {
        err_set(err, errlen, "leeway must be 0-86400 seconds");
        goto fail;
    }
    a->leeway_s = opts->leeway_s;
    a->clock = opts->clock ? opts->clock : clk_system();
    a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (a->sha256 == NULL) {
        err_set(err, errlen, "OpenSSL has no SHA256");
        goto fail;
    }
    if (opts->hs256_secret != NULL && opts->hs256_secret_len > 0 &&
        hmac_setup(a, opts->hs256_secret, opts->hs256_secret_len, err, errlen) != 0)
        goto fail;
    if (opts->jwks_json != NULL && jwks_load(a, opts->jwks_json, err, errlen) != 0)
        goto fail;
    if (a->hmac == NULL && a->nusable == 0) {
        err_set(err, errlen,
                "no verification key: set an HS256 secret or a JWKS with RS256 or "
                "ES256 keys");
        goto fail;
    }
    if (opts->issuer != NULL && opts->issuer[0] != '\0')
        a->issuer = xstrdup(opts->issuer);
    if (opts->audience != NULL && opts->audience[0] != '\0')
        a->audience = xstrdup(opts->audience);
    return a;
fail:
    tok_auth_destroy(a);
    return NULL;
}

void tok_auth_destroy(tok_auth_t *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nkeys; i++) {
        free(a->keys[i].kid);
        EVP_PKEY_free(a->keys[i].pkey);
    }
    free(a->keys);
    EVP_MAC_CTX_free(a->hmac);
    EVP_MD_free(a->sha256);
    free(a->issuer);
    free(a->audience);
    free(a);
}

/* ---- verification ---- */

/* Picks the key for the header. *key stays NULL for HS256 (the secret). */
static tok_auth_result_t choose_key(const tok_auth_t *a, const json_t *hdr, alg_t *alg,
                                    const jwk_t **key)
{
    const json_t *jalg = json_object_get(hdr, "alg"), *kid = json_object_get(hdr, "kid");
    if (jalg == NULL)
        return TOK_AUTH_BAD_ALG;
    if (!json_is_string(jalg) || (kid != NULL && !json_is_string(kid)) ||
        json_object_get(hdr, "crit") != NULL)
        return TOK_AUTH_MALFORMED;
    *alg = alg_parse(jalg);
    if (*alg == ALG_UNUSABLE)
        return TOK_AUTH_BAD_ALG;
    const jwk_t *k = NULL;
    for (size_t i = 0; kid != NULL && i < a->nkeys; i++)
        if (a->keys[i].kid != NULL && str_eq(kid, a->keys[i].kid))
            k = &a->keys[i];
    if (*alg == ALG_HS256)
        return a->hmac != NULL && k == NULL ? TOK_AUTH_OK : TOK_AUTH_BAD_ALG;
    if (kid == NULL && a->nusable == 1)
        for (size_t i = 0; i < a->nkeys; i++)
            if (a->keys[i].alg != ALG_UNUSABLE)
                k = &a->keys[i];
    if (k == NULL)
        return TOK_AUTH_UNKNOWN_KEY;
    if (k->alg != *alg)
        return TOK_AUTH_BAD_ALG;
    *key = k;
    return TOK_AUTH_OK;
}

static int hs256_ok(tok_auth_t *a, const char *msg, size_t n, const unsigned char *sig,
                    size_t siglen)
{
    unsigned char mac[32];
    size_t maclen = 0;
    if (siglen != sizeof mac || EVP_MAC_init(a->hmac, NULL, 0, NULL) != 1 ||
        EVP_MAC_update(a->hmac, (const unsigned char *)msg, n) != 1 ||
        EVP_MAC_final(a->hmac, mac, &maclen, sizeof mac) != 1 || maclen != sizeof mac)
        return 0;
    return CRYPTO_memcmp(mac, sig, sizeof mac) == 0;
}

static int digest_verify_ok(const tok_auth_t *a, EVP_PKEY *pkey, int rsa, const char *msg, size_t n,
                            const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = md != NULL && EVP_DigestVerifyInit(md, &pctx, a->sha256, NULL, pkey) == 1 &&
             (!rsa || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1) &&
             EVP_DigestVerify(md, sig, siglen, (const unsigned char *)msg, n) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

/* JWS ES256 signatures are r || s (32 bytes each); OpenSSL wants DER. */
static int es256_ok(const tok_auth_t *a, EVP_PKEY *pkey, const char *msg, size_t n,
                    const unsigned char *sig, size_t siglen)
{
    if (siglen != 64)
        return 0;
    unsigned char der[80], *p = der;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return 0;
    }
    int len = i2d_ECDSA_SIG(es, NULL);
    int ok = len > 0 && (size_t)len <= sizeof der && i2d_ECDSA_SIG(es, &p) == len &&
             digest_verify_ok(a, pkey, 0, msg, n, der, (size_t)len);
    ECDSA_SIG_free(es);
    return ok;
}

static tok_auth_result_t check_signature(tok_auth_t *a, alg_t alg, const jwk_t *key,
                                         const char *msg, size_t n, const char *sig64,
                                         size_t sig64len)
{
    unsigned char sig[SIG_MAX];
    if (b64url_decoded_len(sig64len) > sizeof sig)
        return TOK_AUTH_BAD_SIGNATURE; /* longer than any key's signature */
    long siglen = b64url_decode(sig64, sig64len, sig, sizeof sig);
    if (siglen < 0)
        return TOK_AUTH_MALFORMED;
    int ok;
    if (alg == ALG_HS256)
        ok = hs256_ok(a, msg, n, sig, (size_t)siglen);
    else if (alg == ALG_RS256)
        ok = (size_t)siglen == (size_t)EVP_PKEY_get_size(key->pkey) &&
             digest_verify_ok(a, key->pkey, 1, msg, n, sig, (size_t)siglen);
    else
        ok = es256_ok(a, key->pkey, msg, n, sig, (size_t)siglen);
    return ok ? TOK_AUTH_OK : TOK_AUTH_BAD_SIGNATURE;
}

static tok_auth_result_t check_times(const tok_auth_t *a, const json_t *claims)
{
    const json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf");
    if (!json_is_number(exp) || (nbf != NULL && !json_is_number(nbf)))
        return TOK_AUTH_MALFORMED;
    /* Doubles hold unix milliseconds exactly; NumericDate may be fractional. */
    double now = (double)a->clock->wall_ms(a->clock->arg) / 1000.0;
    double leeway = (double)a->leeway_s;
    if (now >= json_number_value(exp) + leeway)
        return TOK_AUTH_EXPIRED;
    if (nbf != NULL && now + leeway < json_number_value(nbf))
        return TOK_AUTH_NOT_YET_VALID;
    return TOK_AUTH_OK;
}

static int audience_ok(const tok_auth_t *a, const json_t *claims)
{
    const json_t *aud = json_object_get(claims, "aud");
    if (aud == NULL)
        return str_eq(json_object_get(claims, "client_id"), a->audience);
    if (json_is_array(aud)) {
        for (size_t i = 0; i < json_array_size(aud); i++)
            if (str_eq(json_array_get(aud, i), a->audience))
                return 1;
        return 0;
    }
    return str_eq(aud, a->audience);
}

static tok_auth_result_t check_claims(const tok_auth_t *a, const json_t *claims, char *sub,
                                      size_t sublen)
{
    tok_auth_result_t r = check_times(a, claims);
    if (r != TOK_AUTH_OK)
        return r;
    if (a->issuer != NULL && !str_eq(json_object_get(claims, "iss"), a->issuer))
        return TOK_AUTH_BAD_ISSUER;
    if (a->audience != NULL && !audience_ok(a, claims))
        return TOK_AUTH_BAD_AUDIENCE;
    const json_t *s = json_object_get(claims, "sub");
    if (!json_is_string(s) || valid_sub(json_string_value(s), json_string_length(s)) != 0)
        return TOK_AUTH_BAD_SUBJECT;
    if (sub != NULL && sublen > 0) {
        if (json_string_length(s) >= sublen)
            return TOK_AUTH_BAD_SUBJECT; /* caller's buffer is smaller than documented */
        memcpy(sub, json_string_value(s), json_string_length(s) + 1);
    }
    return TOK_AUTH_OK;
}

tok_auth_result_t tok_auth_verify(tok_auth_t *a, const char *jwt, size_t len, char *sub,
                                  size_t sublen)
{
    if (jwt == NULL || len == 0)
        return TOK_AUTH_MISSING;
    if (len > TOK_JWT_MAX)
        return TOK_AUTH_MALFORMED;
    const char *d1 = memchr(jwt, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - jwt)) : NULL;
    if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - jwt)) != NULL)
        return TOK_AUTH_MALFORMED;
    json_t *hdr = part_json(jwt, (size_t)(d1 - jwt));
    if (hdr == NULL)
        return TOK_AUTH_MALFORMED;
    alg_t alg = ALG_UNUSABLE;
    const jwk_t *key = NULL;
    tok_auth_result_t r = choose_key(a, hdr, &alg, &key);
    json_decref(hdr);
    if (r == TOK_AUTH_OK)
        r = check_signature(a, alg, key, jwt, (size_t)(d2 - jwt), d2 + 1,
                            len - (size_t)(d2 + 1 - jwt));
    if (r != TOK_AUTH_OK)
        return r;
    json_t *claims = part_json(d1 + 1, (size_t)(d2 - d1 - 1));
    if (claims == NULL)
        return TOK_AUTH_MALFORMED;
    r = check_claims(a, claims, sub, sublen);
    json_decref(claims);
    return r;
}

const char *tok_auth_reason(tok_auth_result_t r)
{
    static const char *const names[] = {
        [TOK_AUTH_OK] = "ok",
        [TOK_AUTH_MISSING] = "missing",
        [TOK_AUTH_MALFORMED] = "malformed",
        [TOK_AUTH_BAD_ALG] = "bad_alg",
        [TOK_AUTH_UNKNOWN_KEY] = "unknown_key",
        [TOK_AUTH_BAD_SIGNATURE] = "bad_signature",
        [TOK_AUTH_EXPIRED] = "expired",
        [TOK_AUTH_NOT_YET_VALID] = "not_yet_valid",
        [TOK_AUTH_BAD_ISSUER] = "bad_issuer",
        [TOK_AUTH_BAD_AUDIENCE] = "bad_audience",
        [TOK_AUTH_BAD_SUBJECT] = "bad_subject",
    };
    if ((unsigned)r >= sizeof names / sizeof names[0] || names[r] == NULL)
        return "unknown";
    return names[r];
}

/* ---- secret file ---- */

int tok_auth_read_secret_file(const char *path, unsigned char **out, size_t *outlen, char *err,
                              size_t errlen)
{
    char *s;
    if (file_read_secret(path, TOK_SECRET_MAX, &s, outlen, err, errlen) != 0)
        return -1;
    *out = (unsigned char *)s;
    return 0;
}
