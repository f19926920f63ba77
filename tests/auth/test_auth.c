/* test_auth.c - JWT verification: every acceptance and rejection rule of tokens/auth.c, with keys
 * generated at test time and tokens signed by the test-only signer (jwt_sign.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/clock.h"
#include "tools/jwt_mint/jwt_sign.h"
#include "tokens/auth.h"

#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOW_S 1800000000L
#define HS "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static const unsigned char secret[] = "0123456789abcdef0123456789abcdef-test";
#define SECRET_LEN (sizeof secret - 1)

static EVP_PKEY *rsa1, *rsa_other, *ec1;
static char *jwks; /* rsa1 (RS256), ec1 (ES256), enc1 (RSA, use=enc) */
static clk_fake_t fclk;

static int group_setup(void **state)
{
    (void)state;
    rsa1 = js_gen_rsa(2048);
    rsa_other = js_gen_rsa(2048);
    ec1 = js_gen_p256();
    if (!rsa1 || !rsa_other || !ec1)
        return -1;
    buf_t b = BUF_INIT;
    buf_puts(&b, "{\"keys\":[");
    js_jwk(&b, rsa1, "rsa1", "RS256");
    buf_putc(&b, ',');
    js_jwk(&b, ec1, "ec1", NULL);
    buf_puts(&b,
             ",{\"kty\":\"RSA\",\"kid\":\"enc1\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}");
    buf_puts(&b, "]}");
    jwks = buf_steal(&b);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa1);
    EVP_PKEY_free(rsa_other);
    EVP_PKEY_free(ec1);
    free(jwks);
    return 0;
}

/* A verifier with the secret, the JWKS, issuer "iss1", audience "app1" and 30 s leeway. */
static tok_auth_t *full(void)
{
    clk_fake_init(&fclk, (int64_t)NOW_S * 1000);
    tok_auth_opts_t o = {secret, SECRET_LEN, jwks, "iss1", "app1", 30, &fclk.clk};
    char err[200] = "";
    tok_auth_t *a = tok_auth_create(&o, err, sizeof err);
    if (a == NULL)
        fail_msg("create: %s", err);
    return a;
}

/* Each test's verifier (cmocka setup and teardown): full(), destroyed after the test. */
static int with_full(void **state)
{
    *state = full();
    return 0;
}

static int destroy_full(void **state)
{
    tok_auth_destroy(*state);
    return 0;
}

/* Claims valid for full(): exp in 1 h, iss, aud, sub; `extra` is spliced in (starts with ','). */
static char *claims(const char *extra)
{
    static char out[10000];
    snprintf(out, sizeof out, "{\"exp\":%ld,\"iss\":\"iss1\",\"aud\":\"app1\",\"sub\":\"u-1\"%s}",
             NOW_S + 3600, extra);
    return out;
}

static tok_auth_result_t verify(tok_auth_t *a, const char *jwt)
{
    char sub[129] = "";
    return tok_auth_verify(a, jwt, strlen(jwt), sub, sizeof sub);
}

/* Signs and verifies, freeing the token. */
static tok_auth_result_t hs(tok_auth_t *a, const char *hdr, const char *payload)
{
    char *t = js_sign_hs256(hdr, payload, secret, SECRET_LEN);
    tok_auth_result_t r = verify(a, t);
    free(t);
    return r;
}

static tok_auth_result_t pk(tok_auth_t *a, const char *hdr, const char *payload, EVP_PKEY *k)
{
    char *t = js_sign_pkey(hdr, payload, k);
    assert_non_null(t);
    tok_auth_result_t r = verify(a, t);
    free(t);
    return r;
}

#define assert_reason(got, want) assert_string_equal(tok_auth_reason(got), tok_auth_reason(want))

/* One payload {"exp":<in a minute>,<head><part><tail> to verify under HS and the answer. */
typedef struct claim_case {
    const char *part;
    tok_auth_result_t want;
} claim_case_t;

static void check_claims(tok_auth_t *a, const char *head, const char *tail, const claim_case_t *c,
                         size_t n)
{
    char p[400];
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof p, "{\"exp\":%ld,%s%s%s", NOW_S + 60, head, c[i].part, tail);
        tok_auth_result_t r = hs(a, HS, p);
        if (r != c[i].want)
            fail_msg("%s: %s, want %s", p, tok_auth_reason(r), tok_auth_reason(c[i].want));
    }
}
#define CHECK_CLAIMS(a, head, tail, cases)                                                         \
    check_claims((a), (head), (tail), (cases), sizeof(cases) / sizeof(cases)[0])

static void test_accepts_each_algorithm(void **state)
{
    tok_auth_t *a = *state;
    char sub[129] = "";
    char *t = js_sign_hs256(HS, claims(""), secret, SECRET_LEN);
    assert_reason(tok_auth_verify(a, t, strlen(t), sub, sizeof sub), TOK_AUTH_OK);
    assert_string_equal(sub, "u-1");
    assert_reason(tok_auth_verify(a, t, strlen(t), NULL, 0), TOK_AUTH_OK);
    free(t);
    assert_reason(pk(a, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", claims(""), rsa1), TOK_AUTH_OK);
    assert_reason(pk(a, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", claims(""), ec1), TOK_AUTH_OK);
    /* HS256 with a kid that names no JWKS key still uses the secret. */
    assert_reason(hs(a, "{\"alg\":\"HS256\",\"kid\":\"k7\"}", claims("")), TOK_AUTH_OK);
}

static void test_alg_none_and_unknown(void **state)
{
    tok_auth_t *a = *state;
    const char *nones[] = {"none", "None", "NONE", "nOnE"};
    buf_t b = BUF_INIT;
    for (size_t i = 0; i < 4; i++) {
        char hdr[64];
        snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\"}", nones[i]);
        buf_reset(&b);
        js_b64url(&b, hdr, strlen(hdr));
        buf_putc(&b, '.');
        js_b64url(&b, claims(""), strlen(claims("")));
        buf_putc(&b, '.'); /* unsecured JWS: empty signature */
        assert_reason(verify(a, b.data), TOK_AUTH_BAD_ALG);
        assert_reason(hs(a, hdr, claims("")), TOK_AUTH_BAD_ALG); /* even with an HMAC */
    }
    buf_cleanup(&b);
    /* no alg, or one that is not exactly a supported name */
    static const char *const not_algs[] = {"{\"typ\":\"JWT\"}", "{\"alg\":\"hs256\"}",
                                           "{\"alg\":\"HS512\"}", "{\"alg\":\"RS256 \"}",
                                           "{\"alg\":\"\"}"};
    for (size_t i = 0; i < sizeof not_algs / sizeof not_algs[0]; i++)
        assert_reason(hs(a, not_algs[i], claims("")), TOK_AUTH_BAD_ALG);
    assert_reason(hs(a, "{\"alg\":256}", claims("")), TOK_AUTH_MALFORMED);
    assert_reason(hs(a, "{\"alg\":null}", claims("")), TOK_AUTH_MALFORMED);
}

static char *public_pem(EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, k), 1);
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(bio);
    return s;
}

/* DESIGN.md "JWT pitfall": HS256 keyed with the RSA public key text must never verify. */
static void test_hs256_with_public_key_is_refused(void **state)
{
    (void)state;
    char *pem = public_pem(rsa1);
    char *jwk = NULL;
    buf_t b = BUF_INIT;
    js_jwk(&b, rsa1, "rsa1", "RS256");
    jwk = buf_steal(&b);
    clk_fake_init(&fclk, (int64_t)NOW_S * 1000);
    tok_auth_opts_t o = {NULL, 0, jwks, NULL, NULL, 30, &fclk.clk};
    tok_auth_t *a = tok_auth_create(&o, NULL, 0);
    assert_non_null(a);
    const char *hdrs[] = {HS, "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}"};
    const char *keys[] = {pem, jwk, jwks};
    tok_auth_t *both = full();
    for (size_t h = 0; h < 2; h++) {
        for (size_t k = 0; k < 3; k++) {
            char *t =
                js_sign_hs256(hdrs[h], claims(""), (const unsigned char *)keys[k], strlen(keys[k]));
            assert_reason(verify(a, t), TOK_AUTH_BAD_ALG);
            if (h == 1) /* with a secret configured, a kid naming the RSA key is still refused */
                assert_reason(verify(both, t), TOK_AUTH_BAD_ALG);
            free(t);
        }
    }
    /* and with the real secret but the RSA key's kid: alg/key mismatch */
    assert_reason(hs(both, "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", claims("")), TOK_AUTH_BAD_ALG);
    tok_auth_destroy(both);
    tok_auth_destroy(a);
    free(pem);
    free(jwk);
}

static void test_alg_must_match_key(void **state)
{
    tok_auth_t *a = *state;
    /* a key of the other algorithm, or one that is not for signatures */
    assert_reason(pk(a, "{\"alg\":\"RS256\",\"kid\":\"ec1\"}", claims(""), rsa1), TOK_AUTH_BAD_ALG);
    assert_reason(pk(a, "{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", claims(""), ec1), TOK_AUTH_BAD_ALG);
    assert_reason(pk(a, "{\"alg\":\"RS256\",\"kid\":\"enc1\"}", claims(""), rsa1),
                  TOK_AUTH_BAD_ALG);
    /* no such kid, an empty one, or none while two keys could be meant (ambiguous) */
    static const char *const unknown[] = {"{\"alg\":\"RS256\",\"kid\":\"nope\"}",
                                          "{\"alg\":\"RS256\",\"kid\":\"\"}",
                                          "{\"alg\":\"RS256\"}"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_reason(pk(a, unknown[i], claims(""), rsa1), TOK_AUTH_UNKNOWN_KEY);
    assert_reason(pk(a, "{\"alg\":\"RS256\",\"kid\":7}", claims(""), rsa1), TOK_AUTH_MALFORMED);
}

static void test_single_key_without_kid(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_puts(&b, "{\"keys\":[");
    js_jwk(&b, ec1, NULL, "ES256");
    buf_puts(&b, "]}");
    clk_fake_init(&fclk, (int64_t)NOW_S * 1000);
    tok_auth_opts_t o = {NULL, 0, b.data, NULL, NULL, 0, &fclk.clk};
    tok_auth_t *a = tok_auth_create(&o, NULL, 0);
    assert_non_null(a);
    assert_reason(pk(a, "{\"alg\":\"ES256\"}", claims(""), ec1), TOK_AUTH_OK);
    assert_reason(pk(a, "{\"alg\":\"RS256\"}", claims(""), rsa1), TOK_AUTH_BAD_ALG);
    assert_reason(pk(a, "{\"alg\":\"ES256\",\"kid\":\"x\"}", claims(""), ec1),
                  TOK_AUTH_UNKNOWN_KEY);
    assert_reason(hs(a, HS, claims("")), TOK_AUTH_BAD_ALG); /* no secret configured */
    tok_auth_destroy(a);
    buf_cleanup(&b);
}

/* Changes one base64url character in the middle of the signature (still canonical). */
static void flip_sig(char *t)
{
    char *s = strrchr(t, '.') + 1;
    char *c = s + strlen(s) / 2;
    *c = *c == 'A' ? 'B' : 'A';
}

static void check_tampering(tok_auth_t *a, char *t)
{
    char *copy = strdup(t);
    flip_sig(copy);
    assert_reason(verify(a, copy), TOK_AUTH_BAD_SIGNATURE);
    strcpy(copy, t);
    char *sig = strrchr(copy, '.') + 1;
    sig[strlen(sig) / 4 * 4 - 4] = '\0'; /* truncated signature (whole quads: still canonical) */
    assert_reason(verify(a, copy), TOK_AUTH_BAD_SIGNATURE);
    strcpy(copy, t);
    strrchr(copy, '.')[1] = '\0'; /* no signature */
    assert_reason(verify(a, copy), TOK_AUTH_BAD_SIGNATURE);
    strcpy(copy, t);
    char *dot = strchr(copy, '.');
    dot[2] = dot[2] == 'A' ? 'B' : 'A'; /* payload changed, signature kept */
    assert_reason(verify(a, copy), TOK_AUTH_BAD_SIGNATURE);
    free(copy);
    free(t);
}

static void test_bad_signatures(void **state)
{
    tok_auth_t *a = *state;
    check_tampering(a, js_sign_hs256(HS, claims(""), secret, SECRET_LEN));
    check_tampering(a, js_sign_pkey("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", claims(""), rsa1));
    check_tampering(a, js_sign_pkey("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", claims(""), ec1));
    assert_reason(pk(a, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", claims(""), rsa_other),
                  TOK_AUTH_BAD_SIGNATURE);
    const unsigned char other[] = "another-secret-another-secret-another";
    char *t = js_sign_hs256(HS, claims(""), other, sizeof other - 1);
    assert_reason(verify(a, t), TOK_AUTH_BAD_SIGNATURE);
    free(t);
    /* a signature longer than any key could make */
    buf_t b = BUF_INIT;
    t = js_sign_hs256(HS, claims(""), secret, SECRET_LEN);
    buf_puts(&b, t);
    buf_fill(&b, 'A', 1500);
    assert_reason(verify(a, b.data), TOK_AUTH_BAD_SIGNATURE);
    buf_cleanup(&b);
    free(t);
}

static void test_structure(void **state)
{
    tok_auth_t *a = *state;
    char *t = js_sign_hs256(HS, claims(""), secret, SECRET_LEN);
    assert_reason(tok_auth_verify(a, NULL, 0, NULL, 0), TOK_AUTH_MISSING);
    assert_reason(tok_auth_verify(a, t, 0, NULL, 0), TOK_AUTH_MISSING);
    buf_t b = BUF_INIT;
    const char *bad[] = {".", "..", "...", "a.b", "a.b.c.d", "abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_reason(verify(a, bad[i]), TOK_AUTH_MALFORMED);
    buf_printf(&b, "%s.", t); /* four parts */
    assert_reason(verify(a, b.data), TOK_AUTH_MALFORMED);
    buf_reset(&b);
    *strrchr(t, '.') = '\0'; /* two parts */
    assert_reason(verify(a, t), TOK_AUTH_MALFORMED);
    free(t);
    buf_cleanup(&b);
}

/* Replaces the header part of a valid token with `h64` (already encoded) and re-signs. */
static tok_auth_result_t with_header64(tok_auth_t *a, const char *h64)
{
    buf_t in = BUF_INIT;
    buf_printf(&in, "%s.", h64);
    js_b64url(&in, claims(""), strlen(claims("")));
    unsigned char mac[32];
    unsigned ml = 0;
    HMAC(EVP_sha256(), secret, (int)SECRET_LEN, (unsigned char *)in.data, in.len, mac, &ml);
    buf_putc(&in, '.');
    js_b64url(&in, mac, ml);
    tok_auth_result_t r = verify(a, in.data);
    buf_cleanup(&in);
    return r;
}

static void test_base64url_is_strict(void **state)
{
    tok_auth_t *a = *state;
    static const struct {
        const char *h64;
        tok_auth_result_t want;
    } cases[] = {
        /* {"alg":"HS256"} = eyJhbGciOiJIUzI1NiJ9 */
        {"eyJhbGciOiJIUzI1NiJ9", TOK_AUTH_OK},
        {"eyJhbGciOiJIUzI1NiJ9=", TOK_AUTH_MALFORMED},
        {"eyJhbGciOiJIUzI1NiJ+", TOK_AUTH_MALFORMED},
        {"eyJhbGciOiJIUzI1NiJ/", TOK_AUTH_MALFORMED},
        {"eyJhbGciOiJIUzI1 NiJ9", TOK_AUTH_MALFORMED},
        {"eyJhbGciOiJIUzI1NiJ9A", TOK_AUTH_MALFORMED},    /* len%4==1 */
        {"eyJhbGciOiJIUzI1NiJ9ICB9", TOK_AUTH_MALFORMED}, /* "  }" */
        /* '{"alg":"HS256" }': "fQ" ends in zero bits, "fR" has a non-zero unused bit */
        {"eyJhbGciOiJIUzI1NiIgfQ", TOK_AUTH_OK},
        {"eyJhbGciOiJIUzI1NiIgfR", TOK_AUTH_MALFORMED},
        {"", TOK_AUTH_MALFORMED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tok_auth_result_t r = with_header64(a, cases[i].h64);
        if (r != cases[i].want)
            fail_msg("header \"%s\": %s, want %s", cases[i].h64, tok_auth_reason(r),
                     tok_auth_reason(cases[i].want));
    }
    char *t = js_sign_hs256(HS, claims(""), secret, SECRET_LEN);
    char *s = strrchr(t, '.') + 1;
    s[0] = '*'; /* bad character in the signature */
    assert_reason(verify(a, t), TOK_AUTH_MALFORMED);
    free(t);
}

static void test_bad_json(void **state)
{
    tok_auth_t *a = *state;
    static const char *const bad_headers[] = {"not json",
                                              "{\"alg\":\"HS256\"",
                                              "[\"HS256\"]",
                                              "\"HS256\"",
                                              "{\"alg\":\"HS256\",\"alg\":\"none\"}",
                                              "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
                                              "{\"alg\":\"HS256\"} x"};
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++)
        assert_reason(hs(a, bad_headers[i], claims("")), TOK_AUTH_MALFORMED);
    static const char *const bad_payloads[] = {"not json", "[1]", ""};
    for (size_t i = 0; i < sizeof bad_payloads / sizeof bad_payloads[0]; i++)
        assert_reason(hs(a, HS, bad_payloads[i]), TOK_AUTH_MALFORMED);
    assert_reason(hs(a, HS, claims(",\"sub\":\"dup\"")), TOK_AUTH_MALFORMED);
    /* deep nesting is bounded by the token size and jansson's depth limit */
    buf_t b = BUF_INIT;
    buf_puts(&b, ",\"x\":");
    buf_fill(&b, '[', 2100);
    buf_fill(&b, ']', 2100);
    char *t = js_sign_hs256(HS, claims(b.data), secret, SECRET_LEN);
    assert_true(strlen(t) <= TOK_JWT_MAX); /* refused for its depth, not its size */
    assert_reason(verify(a, t), TOK_AUTH_MALFORMED);
    free(t);
    buf_cleanup(&b);
}

static void test_times(void **state)
{
    tok_auth_t *a = *state;
    char p[300];
    snprintf(p, sizeof p, "{\"exp\":%ld,\"iss\":\"iss1\",\"aud\":\"app1\",\"sub\":\"u\"}",
             NOW_S - 31);
    assert_reason(hs(a, HS, p), TOK_AUTH_EXPIRED);
    snprintf(p, sizeof p, "{\"exp\":%ld,\"iss\":\"iss1\",\"aud\":\"app1\",\"sub\":\"u\"}",
             NOW_S - 29);
    assert_reason(hs(a, HS, p), TOK_AUTH_OK); /* expired, but within the leeway */
    snprintf(p, sizeof p, "{\"exp\":%ld.5,\"iss\":\"iss1\",\"aud\":\"app1\",\"sub\":\"u\"}",
             NOW_S - 30);
    assert_reason(hs(a, HS, p), TOK_AUTH_OK); /* fractional NumericDate */
    /* the same token flips to expired when the clock moves on */
    snprintf(p, sizeof p, "{\"exp\":%ld,\"iss\":\"iss1\",\"aud\":\"app1\",\"sub\":\"u\"}",
             NOW_S + 10);
    assert_reason(hs(a, HS, p), TOK_AUTH_OK);
    clk_fake_advance(&fclk, 39999);
    assert_reason(hs(a, HS, p), TOK_AUTH_OK);
    clk_fake_advance(&fclk, 1);
    assert_reason(hs(a, HS, p), TOK_AUTH_EXPIRED);
    clk_fake_init(&fclk, (int64_t)NOW_S * 1000);
    assert_reason(hs(a, HS, "{\"iss\":\"iss1\",\"aud\":\"app1\",\"sub\":\"u\"}"),
                  TOK_AUTH_MALFORMED); /* exp is required */
    assert_reason(hs(a, HS, "{\"exp\":\"2099\",\"iss\":\"iss1\",\"aud\":\"app1\",\"sub\":\"u\"}"),
                  TOK_AUTH_MALFORMED);
    assert_reason(hs(a, HS, claims(",\"nbf\":1800000031")), TOK_AUTH_NOT_YET_VALID);
    assert_reason(hs(a, HS, claims(",\"nbf\":1800000029")), TOK_AUTH_OK);
    assert_reason(hs(a, HS, claims(",\"nbf\":1")), TOK_AUTH_OK);
    assert_reason(hs(a, HS, claims(",\"nbf\":\"1\"")), TOK_AUTH_MALFORMED);
    assert_reason(hs(a, HS, claims(",\"exp\":1e308")), TOK_AUTH_MALFORMED); /* duplicate exp */
}

static void test_issuer_and_audience(void **state)
{
    tok_auth_t *a = *state;
    static const claim_case_t cases[] = {
        {"\"iss\":\"iss2\",\"aud\":\"app1\"", TOK_AUTH_BAD_ISSUER},
        {"\"iss\":\"iss1x\",\"aud\":\"app1\"", TOK_AUTH_BAD_ISSUER},
        {"\"iss\":[\"iss1\"],\"aud\":\"app1\"", TOK_AUTH_BAD_ISSUER},
        {"\"aud\":\"app1\"", TOK_AUTH_BAD_ISSUER},
        {"\"iss\":\"iss1\",\"aud\":\"app2\"", TOK_AUTH_BAD_AUDIENCE},
        {"\"iss\":\"iss1\",\"aud\":[\"x\",\"app1\"]", TOK_AUTH_OK},
        {"\"iss\":\"iss1\",\"aud\":[\"x\",\"app2\"]", TOK_AUTH_BAD_AUDIENCE},
        {"\"iss\":\"iss1\",\"aud\":[]", TOK_AUTH_BAD_AUDIENCE},
        {"\"iss\":\"iss1\",\"client_id\":\"app1\"", TOK_AUTH_OK},
        {"\"iss\":\"iss1\",\"client_id\":\"app2\"", TOK_AUTH_BAD_AUDIENCE},
        {"\"iss\":\"iss1\",\"aud\":\"x\",\"client_id\":\"app1\"", TOK_AUTH_BAD_AUDIENCE},
        {"\"iss\":\"iss1\"", TOK_AUTH_BAD_AUDIENCE},
    };
    CHECK_CLAIMS(a, "", ",\"sub\":\"u\"}", cases);
    char p[300];
    /* Nothing configured: iss and aud are not looked at. */
    tok_auth_opts_t o = {secret, SECRET_LEN, NULL, "", NULL, 0, NULL};
    tok_auth_t *bare = tok_auth_create(&o, NULL, 0);
    assert_non_null(bare);
    snprintf(p, sizeof p, "{\"exp\":%ld,\"iss\":7,\"aud\":\"zz\",\"sub\":\"u\"}",
             (long)(clk_wall_ms() / 1000 + 3600));
    assert_reason(hs(bare, HS, p), TOK_AUTH_OK);
    tok_auth_destroy(bare);
}

static void test_subject(void **state)
{
    tok_auth_t *a = *state;
    char p[400], sub128[129];
    memset(sub128, 'u', 128);
    sub128[128] = '\0';
    static const claim_case_t cases[] = {
        {"", TOK_AUTH_BAD_SUBJECT},
        {",\"sub\":\"\"", TOK_AUTH_BAD_SUBJECT},
        {",\"sub\":\"a\\u0001b\"", TOK_AUTH_BAD_SUBJECT},
        {",\"sub\":\"a\\u001fb\"", TOK_AUTH_BAD_SUBJECT},
        {",\"sub\":\"a\\u007f\"", TOK_AUTH_BAD_SUBJECT},
        {",\"sub\":\"a\\n\"", TOK_AUTH_BAD_SUBJECT},
        {",\"sub\":\"caf\\u00e9\"", TOK_AUTH_BAD_SUBJECT},
        {",\"sub\":\"a\\u0000b\"", TOK_AUTH_MALFORMED}, /* NUL: jansson */
        {",\"sub\":42", TOK_AUTH_BAD_SUBJECT},
        {",\"sub\":\"a b~\"", TOK_AUTH_OK},
    };
    CHECK_CLAIMS(a, "\"iss\":\"iss1\",\"aud\":\"app1\"", "}", cases);
#define S(sub)                                                                                     \
    (snprintf(p, sizeof p, "{\"exp\":%ld,\"iss\":\"iss1\",\"aud\":\"app1\"%s}", NOW_S + 60, sub), p)
    char extra[200];
    snprintf(extra, sizeof extra, ",\"sub\":\"%sx\"", sub128);
    assert_reason(hs(a, HS, S(extra)), TOK_AUTH_BAD_SUBJECT);
    snprintf(extra, sizeof extra, ",\"sub\":\"%s\"", sub128);
    char *t = js_sign_hs256(HS, S(extra), secret, SECRET_LEN);
    char sub[129] = "";
    assert_reason(tok_auth_verify(a, t, strlen(t), sub, sizeof sub), TOK_AUTH_OK);
    assert_string_equal(sub, sub128);
    assert_reason(tok_auth_verify(a, t, strlen(t), sub, 100), TOK_AUTH_BAD_SUBJECT);
    free(t);
#undef S
}

static void test_size_bound(void **state)
{
    tok_auth_t *a = *state;
    /* grow the claims one byte at a time across TOK_JWT_MAX: OK up to it, MALFORMED after */
    char *extra = malloc(TOK_JWT_MAX + 20);
    size_t best_ok = 0;
    for (size_t n = 5800;; n++) {
        memcpy(extra, ",\"pad\":\"", 8);
        memset(extra + 8, 'p', n);
        memcpy(extra + 8 + n, "\"", 2);
        char *t = js_sign_hs256(HS, claims(extra), secret, SECRET_LEN);
        size_t len = strlen(t);
        tok_auth_result_t r = verify(a, t);
        free(t);
        if (len > TOK_JWT_MAX) {
            assert_reason(r, TOK_AUTH_MALFORMED);
            break;
        }
        assert_reason(r, TOK_AUTH_OK);
        best_ok = len;
    }
    assert_true(best_ok >= TOK_JWT_MAX - 2);
    free(extra);
}

static void create_fails(const unsigned char *sec, size_t seclen, const char *jwks_json,
                         long leeway, const char *want)
{
    tok_auth_opts_t o = {sec, seclen, jwks_json, NULL, NULL, leeway, NULL};
    char err[200] = "";
    tok_auth_t *a = tok_auth_create(&o, err, sizeof err);
    if (a != NULL)
        fail_msg("created with %s", jwks_json ? jwks_json : "(no jwks)");
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, want);
}

static char *jwk_with(const char *n, const char *e)
{
    static char out[2000];
    snprintf(out, sizeof out,
             "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"%s\",\"e\":\"%s\"}]}", n, e);
    return out;
}

static void test_create_errors(void **state)
{
    (void)state;
    create_fails(NULL, 0, NULL, 0, "no verification key");
    create_fails(secret, 31, NULL, 0, "32-4096 bytes");
    create_fails(secret, SECRET_LEN, NULL, -1, "leeway");
    create_fails(NULL, 0, "{\"keys\":", 0, "not valid JSON");
    create_fails(NULL, 0, "[]", 0, "\"keys\" array");
    create_fails(NULL, 0, "{\"keys\":{}}", 0, "\"keys\" array");
    create_fails(NULL, 0, "{\"keys\":[]}", 0, "no verification key");
    create_fails(NULL, 0, "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}", 0,
                 "no verification key");
    create_fails(NULL, 0, "{\"keys\":[7]}", 0, "key 0: not an object");
    create_fails(NULL, 0, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":3}]}", 0, "\"kid\"");
    create_fails(NULL, 0, "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\"}]}", 0, "\"n\"");
}

static void test_create_key_errors(void **state)
{
    (void)state;
    /* 1024-bit modulus, and e = 1 on a 2048-bit one */
    EVP_PKEY *small = js_gen_rsa(1024);
    buf_t b = BUF_INIT;
    buf_puts(&b, "{\"keys\":[");
    js_jwk(&b, small, "s", NULL);
    buf_puts(&b, "]}");
    create_fails(NULL, 0, b.data, 0, "2048-8192 bits");
    EVP_PKEY_free(small);
    buf_reset(&b);
    js_jwk(&b, rsa1, "x", NULL);
    char *n = strstr(b.data, "\"n\":\"") + 5;
    *strchr(n, '"') = '\0';
    create_fails(NULL, 0, jwk_with(n, "AQ"), 0, "odd exponent > 1");
    create_fails(NULL, 0, jwk_with(n, "Ag"), 0, "odd exponent > 1");
    create_fails(NULL, 0, jwk_with(n, "AQAB="), 0, "\"e\"");
    /* P-256 point not on the curve; wrong coordinate length */
    buf_reset(&b);
    js_jwk(&b, ec1, "e", NULL);
    char *y = strstr(b.data, "\"y\":\"") + 5;
    y[3] = y[3] == 'A' ? 'B' : 'A';
    buf_t w = BUF_INIT;
    buf_printf(&w, "{\"keys\":[%s]}", b.data);
    create_fails(NULL, 0, w.data, 0, "not a valid point");
    create_fails(NULL, 0,
                 "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}", 0,
                 "32 bytes");
    /* duplicate kid */
    buf_reset(&w);
    buf_puts(&w, "{\"keys\":[");
    js_jwk(&w, ec1, "same", NULL);
    buf_putc(&w, ',');
    js_jwk(&w, rsa1, "same", NULL);
    buf_puts(&w, "]}");
    create_fails(NULL, 0, w.data, 0, "key 1: duplicate \"kid\"");
    /* too many keys */
    buf_reset(&w);
    buf_puts(&w, "{\"keys\":[");
    for (int i = 0; i <= TOK_JWKS_KEYS_MAX; i++)
        buf_printf(&w, "%s{\"kty\":\"oct\"}", i ? "," : "");
    buf_puts(&w, "]}");
    create_fails(secret, SECRET_LEN, w.data, 0, "65 keys");
    /* oversized document */
    buf_reset(&w);
    buf_puts(&w, "{\"keys\":[],\"x\":\"");
    buf_fill(&w, 'x', TOK_JWKS_MAX);
    buf_puts(&w, "\"}");
    create_fails(secret, SECRET_LEN, w.data, 0, "larger than");
    buf_cleanup(&w);
    buf_cleanup(&b);
    tok_auth_destroy(NULL);
}

static void test_reason_names(void **state)
{
    (void)state;
    const char *want[] = {"ok",          "missing",       "malformed",  "bad_alg",
                          "unknown_key", "bad_signature", "expired",    "not_yet_valid",
                          "bad_issuer",  "bad_audience",  "bad_subject"};
    for (int i = 0; i <= TOK_AUTH_BAD_SUBJECT; i++)
        assert_string_equal(tok_auth_reason((tok_auth_result_t)i), want[i]);
    assert_string_equal(tok_auth_reason((tok_auth_result_t)99), "unknown");
}

static void write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void test_secret_file(void **state)
{
    (void)state;
    char path[] = "/tmp/herald-secret-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unsigned char *s = NULL;
    size_t n = 0;
    char err[200];
    const char *cases[][2] = {{"abc\n", "abc"},
                              {"abc\r\n", "abc"},
                              {"abc", "abc"},
                              {"abc\n\n", "abc\n"},
                              {" a b ", " a b "}};
    for (size_t i = 0; i < 5; i++) {
        write_file(path, cases[i][0], strlen(cases[i][0]));
        assert_int_equal(tok_auth_read_secret_file(path, &s, &n, err, sizeof err), 0);
        assert_int_equal(n, strlen(cases[i][1]));
        assert_memory_equal(s, cases[i][1], n);
        free(s);
    }
    write_file(path, "\n", 1);
    assert_int_equal(tok_auth_read_secret_file(path, &s, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "empty"));
    char *big = malloc(TOK_SECRET_MAX + 1);
    memset(big, 's', TOK_SECRET_MAX + 1);
    write_file(path, big, TOK_SECRET_MAX);
    assert_int_equal(tok_auth_read_secret_file(path, &s, &n, err, sizeof err), 0);
    assert_int_equal(n, TOK_SECRET_MAX);
    free(s);
    write_file(path, big, TOK_SECRET_MAX + 1);
    assert_int_equal(tok_auth_read_secret_file(path, &s, &n, err, sizeof err), -1);
    free(big);
    unlink(path);
    assert_int_equal(tok_auth_read_secret_file(path, &s, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "No such file"));
}

/* herald-jwt-mint and the verifier agree on the secret file and the claims. */
static void test_mint_cli(void **state)
{
    (void)state;
    const char *bin = getenv("HERALD_TEST_BIN_DIR");
    assert_non_null(bin);
    char path[] = "/tmp/herald-mint-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path, (const char *)secret, SECRET_LEN);
    FILE *f = fopen(path, "ab");
    fputc('\n', f); /* as `echo secret > file` writes it */
    fclose(f);
    char cmd[600], line[TOK_JWT_MAX + 2], sub[129];
    snprintf(cmd, sizeof cmd,
             "%s/herald-jwt-mint --secret-file %s --sub-prefix user- --count 3 --iss iss1 "
             "--aud app1 --now %ld && %s/herald-jwt-mint --secret-file %s --sub u --ttl -31 "
             "--now %ld --iss iss1 --aud app1",
             bin, path, NOW_S, bin, path, NOW_S);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    tok_auth_t *a = full();
    for (int i = 1; i <= 4; i++) {
        assert_non_null(fgets(line, sizeof line, p));
        line[strcspn(line, "\n")] = '\0';
        tok_auth_result_t r = tok_auth_verify(a, line, strlen(line), sub, sizeof sub);
        if (i <= 3) {
            char want[32];
            snprintf(want, sizeof want, "user-%d", i);
            assert_reason(r, TOK_AUTH_OK);
            assert_string_equal(sub, want);
        } else {
            assert_reason(r, TOK_AUTH_EXPIRED);
        }
    }
    assert_null(fgets(line, sizeof line, p));
    assert_int_equal(pclose(p), 0);
    tok_auth_destroy(a);
    snprintf(cmd, sizeof cmd, "%s/herald-jwt-mint --secret-file %s 2>/dev/null", bin, path);
    assert_int_not_equal(system(cmd), 0); /* no subject: usage error */
    unlink(path);
}

/* A test run with full() as its state */
#define WITH_VERIFIER(test) cmocka_unit_test_setup_teardown(test, with_full, destroy_full)

int main(void)
{
    const struct CMUnitTest tests[] = {
        WITH_VERIFIER(test_accepts_each_algorithm),
        WITH_VERIFIER(test_alg_none_and_unknown),
        cmocka_unit_test(test_hs256_with_public_key_is_refused),
        WITH_VERIFIER(test_alg_must_match_key),
        cmocka_unit_test(test_single_key_without_kid),
        WITH_VERIFIER(test_bad_signatures),
        WITH_VERIFIER(test_structure),
        WITH_VERIFIER(test_base64url_is_strict),
        WITH_VERIFIER(test_bad_json),
        WITH_VERIFIER(test_times),
        WITH_VERIFIER(test_issuer_and_audience),
        WITH_VERIFIER(test_subject),
        WITH_VERIFIER(test_size_bound),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_create_key_errors),
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_mint_cli),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
