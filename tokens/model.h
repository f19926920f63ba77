/* model.h - the device-token record, its validation and its JSON form.
 *
 * One record per (userId, deviceId); field formats are DESIGN.md's "Token data model". Pure C,
 * no I/O: the store, the API handlers, heraldctl and the dispatcher all share these rules. */
#ifndef HERALD_TOKENS_MODEL_H
#define HERALD_TOKENS_MODEL_H

#include "core/buf.h"
#include "core/langtag.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOK_USER_MAX 128
#define TOK_DEVICE_MAX 128
#define TOK_TOKEN_MAX 220 /* "ExponentPushToken[" + 200 + "]" */
#define TOK_TIME_MAX 32
#define TOK_REASON_MAX 32
#define TOK_SEP '\x1f' /* separates userId and deviceId in index values */

typedef enum { TOK_PLATFORM_IOS, TOK_PLATFORM_ANDROID } tok_platform_t;

typedef struct tok_record {
    char user_id[TOK_USER_MAX + 1];
    char device_id[TOK_DEVICE_MAX + 1];
    char token[TOK_TOKEN_MAX + 1];
    tok_platform_t platform;
    char registered_at[TOK_TIME_MAX]; /* ISO-8601 UTC */
    char updated_at[TOK_TIME_MAX];
    bool active;
    int64_t expires_at; /* unix seconds */
    /* Why and when it was deactivated ("" / 0 while active): user, DeviceNotRegistered, reassigned,
     * admin. */
    char deactivated_reason[TOK_REASON_MAX];
    int64_t deactivated_at; /* unix seconds */
    /* The device's locale as registered: a BCP 47 tag in canonical case, "" when none. */
    char locale[LANG_TAG_MAX + 1];
} tok_record_t;

/* Field validation: 0 when valid, else -1. */
int tok_valid_user(const char *s, size_t n);   /* 1-128 bytes, printable ASCII, no '\x1f' */
int tok_valid_device(const char *s, size_t n); /* 1-128 bytes, printable ASCII */
/* ExponentPushToken[...] / ExpoPushToken[...] with 1-200 of [A-Za-z0-9_-] inside, or the bare
 * 8-4-4-4-12 hex form. */
int tok_valid_token(const char *s, size_t n);
int tok_platform_parse(const char *s, tok_platform_t *out);
/* A BCP 47 language tag (core/langtag.h); out (LANG_TAG_MAX + 1 bytes, or NULL) receives its
 * canonical case. */
int tok_valid_locale(const char *s, size_t n, char *out);
const char *tok_platform_name(tok_platform_t p);

/* Appends the record as compact JSON with the API's field names (userId, deviceId,
 * expoPushToken, platform, registeredAt, updatedAt, isActive, expiresAt, and
 * deactivatedReason/deactivatedAt/locale when set). */
void tok_record_json(const tok_record_t *r, buf_t *out);
/* Parses a stored record. Returns 0, or -1 with a short reason in err. Rejects oversized and
 * malformed fields exactly as the validators above do. */
int tok_record_parse(const char *json, size_t len, tok_record_t *out, char *err, size_t errlen);
/* The same without the one-pass reader of the records herald writes: the full (jansson) parser
 * alone, for the tests and the fuzz target that check both read every input alike. */
int tok_record_parse_full(const char *json, size_t len, tok_record_t *out, char *err,
                          size_t errlen);

/* Would this record receive a notification now? The one rule the pipeline (which devices it
 * sends to, its skip reasons and metrics) and `heraldctl diagnose` share. Reasons, as flags: */
enum {
    TOK_UNDELIV_INACTIVE = 1u << 0,  /* isActive is false (soft-deleted) */
    TOK_UNDELIV_EXPIRED = 1u << 1,   /* expiresAt <= now: the app did not re-register in time */
    TOK_UNDELIV_MALFORMED = 1u << 2, /* the token fails tok_valid_token */
};
/* Every reason that applies; 0 when the record is deliverable. */
unsigned tok_undeliverable(const tok_record_t *r, int64_t now_s);
/* The first reason's name ("inactive", "expired", "malformed"), or NULL when deliverable. */
const char *tok_deliverability(const tok_record_t *r, int64_t now_s);
/* Name of one reason flag ("inactive", ...), "" for anything else. */
const char *tok_undeliverable_name(unsigned reason);
/* tok_undeliverable(r, now_s) == 0. */
bool tok_record_deliverable(const tok_record_t *r, int64_t now_s);

#endif
