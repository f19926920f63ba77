/* dynamo.c - the parsers of a DynamoDB export (dynamo.h): data-file items in DynamoDB JSON
 * (every attribute a one-member object naming its type: {"S":"..."}, {"N":"123"},
 * {"BOOL":true}, {"NULL":true}), manifest-files.json lines and manifest-summary.json. */
#include "ctl/dynamo.h"

#include "core/clock.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* 9999-12-31T23:59:59Z: the last time an ISO-8601 year of four digits can say (as ctl/lines.c). */
#define EXPIRES_MAX 253402300799LL
#define TIME_MS_MAX (EXPIRES_MAX * 1000 + 999)
#define ITEM_COUNT_MAX 1000000000000L

/* The attribute types DynamoDB JSON has; anything else is named "an unknown type". */
static const char *type_name(const char *t)
{
    static const char *const known[] = {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(t, known[i]) == 0)
            return known[i];
    return "an unknown type";
}

/* The value of attribute name of item with its type. Returns 1 when present; 0 when missing or
 * {"NULL":...}; -1 when it is not a typed value (why written). */
static int get_attr(json_t *item, const char *name, const char **type, json_t **v, char *why,
                    size_t whylen)
{
    json_t *d = json_object_get(item, name);
    *type = NULL;
    *v = NULL;
    if (d == NULL)
        return 0;
    if (!json_is_object(d) || json_object_size(d) != 1) {
        snprintf(why, whylen, "%s: not a typed attribute value", name);
        return -1;
    }
    void *it = json_object_iter(d);
    *type = json_object_iter_key(it);
    *v = json_object_iter_value(it);
    return strcmp(*type, "NULL") == 0 ? 0 : 1;
}

static int wrong_type(const char *name, const char *want, const char *got, char *why, size_t whylen)
{
    snprintf(why, whylen, "%s: expected %s, got %s", name, want, type_name(got));
    return -1;
}

/* A required S attribute copied into out (at most outlen - 1 bytes, no NUL inside). */
static int get_s(json_t *item, const char *name, char *out, size_t outlen, char *why, size_t whylen)
{
    const char *t;
    json_t *v;
    int rc = get_attr(item, name, &t, &v, why, whylen);
    if (rc <= 0) {
        if (rc == 0)
            snprintf(why, whylen, "%s: missing", name);
        return -1;
    }
    if (strcmp(t, "S") != 0 || !json_is_string(v))
        return wrong_type(name, "S", t, why, whylen);
    size_t n = json_string_length(v);
    if (n >= outlen || strlen(json_string_value(v)) != n) {
        snprintf(why, whylen, "%s: longer than %zu bytes", name, outlen - 1);
        return -1;
    }
    memcpy(out, json_string_value(v), n + 1);
    return 0;
}

/* A required ISO-8601 S attribute: its time and its normalised text (clk_iso8601_ms). */
static int get_time(json_t *item, const char *name, char out[TOK_TIME_MAX], int64_t *ms, char *why,
                    size_t whylen)
{
    char s[64];
    if (get_s(item, name, s, sizeof s, why, whylen) != 0)
        return -1;
    if (clk_parse_iso8601(s, ms) != 0 || *ms < 0 || *ms > TIME_MS_MAX) {
        snprintf(why, whylen, "%s: not an ISO-8601 UTC time", name);
        return -1;
    }
    clk_iso8601_ms(*ms, out, TOK_TIME_MAX);
    return 0;
}

/* A DynamoDB number as whole seconds: digits, optionally a fraction (dropped); no sign, no
 * exponent. Returns 0, or -1 for anything else or more than 18 digits before the point. */
static int parse_whole(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int64_t v = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (i == 18)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (i == 0)
        return -1;
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            ;
    if (i != n)
        return -1;
    *out = v;
    return 0;
}

/* expiresAt when the item has one (1), or 0 without (NULL or missing); -1 when malformed. */
static int get_expires(json_t *item, int64_t *exp, unsigned *flags, char *why, size_t whylen)
{
    const char *t;
    json_t *v;
    int rc = get_attr(item, "expiresAt", &t, &v, why, whylen);
    if (rc <= 0)
        return rc;
    if (strcmp(t, "N") != 0 || !json_is_string(v))
        return wrong_type("expiresAt", "N", t, why, whylen);
    if (parse_whole(json_string_value(v), json_string_length(v), exp) != 0) {
        snprintf(why, whylen, "expiresAt: not a whole number of epoch seconds");
        return -1;
    }
    if (*exp >= CTL_DDB_MS_THRESHOLD) {
        *exp /= 1000;
        *flags |= CTL_DDB_EXP_MS;
    }
    return 1;
}

/* When the item expires: its expiresAt, else updatedAt + ttl_days (flagged). */
static int item_expiry(json_t *item, long ttl_days, int64_t *exp, unsigned *flags, char *why,
                       size_t whylen)
{
    int rc = get_expires(item, exp, flags, why, whylen);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    char iso[TOK_TIME_MAX];
    int64_t ms;
    if (get_time(item, "updatedAt", iso, &ms, why, whylen) != 0)
        return -1;
    if (ttl_days < 1)
        ttl_days = 1;
    else if (ttl_days > 36500)
        ttl_days = 36500;
    *exp = ms / 1000 + (int64_t)ttl_days * 86400;
    *flags |= CTL_DDB_EXP_DERIVED;
    return 0;
}

/* The attributes registration checks, in the order of tokens/model.c. */
static int item_fields(json_t *item, tok_record_t *r, char *why, size_t whylen)
{
    char platform[16];
    int64_t reg_ms, upd_ms;
    const char *t;
    json_t *v;
    if (get_s(item, "userId", r->user_id, sizeof r->user_id, why, whylen) != 0 ||
        get_s(item, "deviceId", r->device_id, sizeof r->device_id, why, whylen) != 0 ||
        get_s(item, "expoPushToken", r->token, sizeof r->token, why, whylen) != 0 ||
        get_s(item, "platform", platform, sizeof platform, why, whylen) != 0)
        return -1;
    const char *bad = NULL;
    if (tok_valid_user(r->user_id, strlen(r->user_id)) != 0)
        bad = "userId: not 1-128 printable ASCII characters";
    else if (tok_valid_device(r->device_id, strlen(r->device_id)) != 0)
        bad = "deviceId: not 1-128 printable ASCII characters";
    else if (tok_valid_token(r->token, strlen(r->token)) != 0)
        bad = "expoPushToken: not an Expo push token (ExponentPushToken[...])";
    else if (tok_platform_parse(platform, &r->platform) != 0)
        bad = "platform: neither ios nor android";
    if (bad) {
        snprintf(why, whylen, "%s", bad);
        return -1;
    }
    if (get_time(item, "registeredAt", r->registered_at, &reg_ms, why, whylen) != 0 ||
        get_time(item, "updatedAt", r->updated_at, &upd_ms, why, whylen) != 0)
        return -1;
    int rc = get_attr(item, "isActive", &t, &v, why, whylen);
    if (rc <= 0) {
        if (rc == 0)
            snprintf(why, whylen, "isActive: missing");
        return -1;
    }
    if (strcmp(t, "BOOL") != 0 || !json_is_boolean(v))
        return wrong_type("isActive", "BOOL", t, why, whylen);
    r->active = json_is_true(v);
    if (!r->active) {
        /* The seed's only way to deactivate was the user's DELETE. */
        snprintf(r->deactivated_reason, sizeof r->deactivated_reason, "user");
        r->deactivated_at = upd_ms / 1000;
    }
    return 0;
}

int ctl_ddb_item(const char *line, size_t len, int64_t now_s, long ttl_days, tok_record_t *r,
                 unsigned *flags, char *why, size_t whylen)
{
    memset(r, 0, sizeof *r);
    *flags = 0;
    if (len == 0)
        return CTL_DDB_BLANK;
    if (len > CTL_DDB_LINE_MAX) {
        snprintf(why, whylen, "line longer than %d bytes", CTL_DDB_LINE_MAX);
        return CTL_DDB_REJECTED;
    }
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *item = json_object_get(o, "Item");
    int rc = CTL_DDB_REJECTED;
    int64_t exp = 0;
    if (!json_is_object(o))
        snprintf(why, whylen, "not a JSON object");
    else if (!json_is_object(item))
        snprintf(why, whylen, "no \"Item\" object (not a DYNAMODB_JSON export line)");
    else if (item_expiry(item, ttl_days, &exp, flags, why, whylen) != 0)
        ;
    else if (exp <= now_s)
        rc = CTL_DDB_EXPIRED;
    else if (exp > EXPIRES_MAX)
        snprintf(why, whylen, "expiresAt: out of range");
    else if (item_fields(item, r, why, whylen) == 0) {
        r->expires_at = exp;
        rc = CTL_DDB_ITEM;
    }
    json_decref(o);
    if (rc != CTL_DDB_ITEM)
        memset(r, 0, sizeof *r);
    return rc;
}

/* The last '/'-separated part of s (n bytes) when it is a plain printable file name. */
static int base_name(const char *s, size_t n, char name[CTL_DDB_NAME_MAX + 1])
{
    size_t start = n;
    while (start > 0 && s[start - 1] != '/')
        start--;
    size_t bn = n - start;
    if (bn == 0 || bn > CTL_DDB_NAME_MAX || strcmp(s + start, ".") == 0 ||
        strcmp(s + start, "..") == 0)
        return -1;
    for (size_t i = start; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return -1;
    memcpy(name, s + start, bn);
    name[bn] = '\0';
    return 0;
}

/* itemCount of o: -1 when absent; -2 when it is not a count. */
static long item_count(json_t *o)
{
    json_t *c = json_object_get(o, "itemCount");
    if (c == NULL)
        return -1;
    if (!json_is_integer(c) || json_integer_value(c) < 0 || json_integer_value(c) > ITEM_COUNT_MAX)
        return -2;
    return (long)json_integer_value(c);
}

int ctl_ddb_manifest_line(const char *line, size_t len, char name[CTL_DDB_NAME_MAX + 1],
                          long *items, const char **why)
{
    if (len == 0)
        return 1;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *k = json_object_get(o, "dataFileS3Key");
    int rc = -1;
    if (!json_is_object(o))
        *why = "not a JSON object";
    else if (!json_is_string(k) || strlen(json_string_value(k)) != json_string_length(k))
        *why = "no dataFileS3Key string";
    else if ((*items = item_count(o)) == -2)
        *why = "itemCount is not a count";
    else if (base_name(json_string_value(k), json_string_length(k), name) != 0)
        *why = "dataFileS3Key does not end in a plain file name";
    else
        rc = 0;
    json_decref(o);
    return rc;
}

/* Whether string member key of o is absent or equal to want. */
static bool absent_or(json_t *o, const char *key, const char *want)
{
    json_t *v = json_object_get(o, key);
    return v == NULL || (json_is_string(v) && strcmp(json_string_value(v), want) == 0);
}

int ctl_ddb_summary(const char *json, size_t len, long *items, const char **why)
{
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    int rc = -1;
    if (!json_is_object(o))
        *why = "not a JSON object";
    else if (!absent_or(o, "outputFormat", "DYNAMODB_JSON"))
        *why = "outputFormat is not DYNAMODB_JSON (export with --export-format DYNAMODB_JSON)";
    else if (!absent_or(o, "exportType", "FULL_EXPORT"))
        *why = "not a full export (exportType is not FULL_EXPORT)";
    else if ((*items = item_count(o)) == -2)
        *why = "itemCount is not a count";
    else
        rc = 0;
    json_decref(o);
    return rc;
}
