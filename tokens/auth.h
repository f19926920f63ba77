/* auth.h - bearer JWT verification for the registration API.
 *
 * HS256 with a shared secret; RS256 and ES256 with public keys from a JWKS document (as Cognito
 * publishes), the key chosen by the header's `kid`. The header's `alg` must match the chosen key's
 * type before any signature is checked (never trust `alg` to pick the verification method: see
 * DESIGN.md "JWT pitfall"); `none` is always refused. Claims: `exp`/`nbf` with leeway, `iss` and
 * `aud` (or Cognito's `client_id`) when configured, a non-empty `sub` that is a valid userId.
 *
 * Pure computation, no I/O after creation; safe to call on the loop. A tok_auth_t keeps a reusable
 * HMAC context, so one handle must not be used by two threads at once (herald has one loop). */
#ifndef HERALD_TOKENS_AUTH_H
#define HERALD_TOKENS_AUTH_H

#include "core/clock.h"

#include <stddef.h>

#define TOK_JWT_MAX 8192     /* longer bearer tokens are refused before parsing */
#define TOK_SECRET_MIN 32    /* HS256 secrets shorter than the hash (RFC 7518 3.2) are refused */
#define TOK_SECRET_MAX 4096  /* longer secrets are refused */
#define TOK_JWKS_MAX 262144  /* bytes of JWKS JSON */
#define TOK_JWKS_KEYS_MAX 64 /* keys in one JWKS */

typedef struct tok_auth tok_auth_t;

typedef enum {
    TOK_AUTH_OK = 0,
    TOK_AUTH_MISSING,     /* no token */
    TOK_AUTH_MALFORMED,   /* not three base64url parts of JSON, oversized, bad types */
    TOK_AUTH_BAD_ALG,     /* none, unsupported, or not the algorithm of the chosen key */
    TOK_AUTH_UNKNOWN_KEY, /* no key for this kid */
    TOK_AUTH_BAD_SIGNATURE,
    TOK_AUTH_EXPIRED,
    TOK_AUTH_NOT_YET_VALID,
    TOK_AUTH_BAD_ISSUER,
    TOK_AUTH_BAD_AUDIENCE,
    TOK_AUTH_BAD_SUBJECT, /* missing, empty, or not a valid userId */
} tok_auth_result_t;

typedef struct tok_auth_opts {
    const unsigned char *hs256_secret; /* NULL or empty: HS256 disabled */
    size_t hs256_secret_len;
    const char *jwks_json; /* NULL: no asymmetric keys */
    const char *issuer;    /* NULL or "": not checked */
    const char *audience;  /* NULL or "": not checked; matches aud (string or array)
                              or client_id */
    long leeway_s;
    const clk_t *clock; /* borrowed; NULL = system clock */
} tok_auth_opts_t;

/* new: free with tok_auth_destroy. NULL with a sentence in err (bad JWKS, no key at all, ...).
 * Everything in opts is copied. */
tok_auth_t *tok_auth_create(const tok_auth_opts_t *opts, char *err, size_t errlen);
void tok_auth_destroy(tok_auth_t *a); /* accepts NULL */

/* Verifies a compact JWT (without the "Bearer " prefix). On TOK_AUTH_OK, the `sub` claim is copied
 * into sub (NUL-terminated; sublen >= 129). */
tok_auth_result_t tok_auth_verify(tok_auth_t *a, const char *jwt, size_t len, char *sub,
                                  size_t sublen);
/* Reads an HS256 secret file for tok_auth_opts_t.hs256_secret: the file's bytes with at most one
 * trailing "\n" or "\r\n" removed (so `echo secret > file` works). *out is new (free with free());
 * 0, or -1 with a sentence in err (unreadable, empty, or longer than TOK_SECRET_MAX bytes). herald
 * and herald-jwt-mint both use it, so they always agree on the key bytes. */
int tok_auth_read_secret_file(const char *path, unsigned char **out, size_t *outlen, char *err,
                              size_t errlen);

/* A stable lower-case name for metrics labels: "ok", "missing", "malformed", "bad_alg", ... */
const char *tok_auth_reason(tok_auth_result_t r);

#endif
