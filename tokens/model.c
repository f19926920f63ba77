/* model.c - device-token record rules: field validation, the JSON form stored in Redis and
 * returned by the API, and the "would this token receive a notification" predicate. */
#include "tokens/model.h"
#include "core/clock.h"
#include "core/jscan.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static int printable(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return -1;
    return 0;
}

int tok_valid_user(const char *s, size_t n)
{
    return printable(s, n, TOK_USER_MAX);
}

int tok_valid_device(const char *s, size_t n)
{
    return printable(s, n, TOK_DEVICE_MAX);
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* 8-4-4-4-12 hex, as the Expo SDKs accept for bare tokens. */
static int valid_uuid(const char *s, size_t n)
{
    if (n != 36)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return -1;
        } else if (!is_hex(s[i])) {
            return -1;
        }
    }
    return 0;
}

int tok_valid_token(const char *s, size_t n)
{
    static const char *const prefixes[] = {"ExponentPushToken[", "ExpoPushToken["};
    for (size_t p = 0; p < 2; p++) {
        size_t pl = strlen(prefixes[p]);
        if (n < pl + 2 || strncmp(s, prefixes[p], pl) != 0 || s[n - 1] != ']')
            continue;
        size_t inner = n - pl - 1;
        if (inner < 1 || inner > 200)
            return -1;
        for (size_t i = pl; i < n - 1; i++) {
            char c = s[i];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-'))
                return -1;
        }
        return 0;
    }
    return valid_uuid(s, n);
}

int tok_platform_parse(const char *s, tok_platform_t *out)
{
    if (strcmp(s, "ios") == 0)
        *out = TOK_PLATFORM_IOS;
    else if (strcmp(s, "android") == 0)
        *out = TOK_PLATFORM_ANDROID;
    else
        return -1;
    return 0;
}

int tok_valid_locale(const char *s, size_t n, char *out)
{
    return lang_tag_parse(s, n, out);
}

const char *tok_platform_name(tok_platform_t p)
{
    return p == TOK_PLATFORM_ANDROID ? "android" : "ios";
}

void tok_record_json(const tok_record_t *r, buf_t *out)
{
    buf_puts(out, "{\"userId\":");
    buf_json_str(out, r->user_id, strlen(r->user_id));
    buf_puts(out, ",\"deviceId\":");
    buf_json_str(out, r->device_id, strlen(r->device_id));
    buf_puts(out, ",\"expoPushToken\":");
    buf_json_str(out, r->token, strlen(r->token));
    buf_printf(out, ",\"platform\":\"%s\",\"registeredAt\":", tok_platform_name(r->platform));
    buf_json_str(out, r->registered_at, strlen(r->registered_at));
    buf_puts(out, ",\"updatedAt\":");
    buf_json_str(out, r->updated_at, strlen(r->updated_at));
    buf_printf(out, ",\"isActive\":%s,\"expiresAt\":%lld", r->active ? "true" : "false",
               (long long)r->expires_at);
    if (r->deactivated_reason[0]) {
        buf_puts(out, ",\"deactivatedReason\":");
        buf_json_str(out, r->deactivated_reason, strlen(r->deactivated_reason));
    }
    if (r->deactivated_at)
        buf_printf(out, ",\"deactivatedAt\":%lld", (long long)r->deactivated_at);
    if (r->locale[0]) {
        buf_puts(out, ",\"locale\":");
        buf_json_str(out, r->locale, strlen(r->locale));
    }
    buf_putc(out, '}');
}

static int get_str(json_t *o, const char *key, char *out, size_t outlen, int required)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return required ? -1 : 0;
    if (!json_is_string(v) || json_string_length(v) >= outlen ||
        strlen(json_string_value(v)) != json_string_length(v))
        return -1;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static bool valid_time(const char *s)
{
    int64_t ms;
    return clk_parse_iso8601(s, &ms) == 0;
}

static int check_fields(const tok_record_t *r, const char *platform, char *err, size_t errlen)
{
    const char *bad = NULL;
    if (tok_valid_user(r->user_id, strlen(r->user_id)) != 0)
        bad = "userId";
    else if (tok_valid_device(r->device_id, strlen(r->device_id)) != 0)
        bad = "deviceId";
    else if (tok_valid_token(r->token, strlen(r->token)) != 0)
        bad = "expoPushToken";
    else if (platform[0] == '\0')
        bad = "platform";
    else if (!valid_time(r->registered_at))
        bad = "registeredAt";
    else if (!valid_time(r->updated_at))
        bad = "updatedAt";
    else if (r->locale[0] && tok_valid_locale(r->locale, strlen(r->locale), NULL) != 0)
        bad = "locale";
    if (bad) {
        if (strcmp(bad, "registeredAt") == 0 || strcmp(bad, "updatedAt") == 0)
            snprintf(err, errlen, "%s is not an ISO-8601 UTC time", bad);
        else
            snprintf(err, errlen, "invalid %s", bad);
        return -1;
    }
    return 0;
}

/* ---- the records herald writes, in one pass ----
 * tok_record_json writes one flat object of plain strings, integers and booleans, each member
 * once. record_fast reads exactly that shape without building a jansson tree (the pipeline reads
 * one record per device of every event) and returns false on anything else: an escape, a null,
 * an unknown or repeated member, a value too long for its field. The full parser then decides, so
 * the fast path never accepts or refuses what it would read differently. */
enum {
    RF_USER,
    RF_DEVICE,
    RF_TOKEN,
    RF_PLATFORM,
    RF_REGISTERED,
    RF_UPDATED,
    RF_REASON,
    RF_LOCALE,
    RF_ACTIVE,
    RF_EXPIRES,
    RF_DEACTIVATED,
    RF_COUNT
};
static const char *const rf_names[RF_COUNT] = {
    "userId",       "deviceId",  "expoPushToken",     "platform",
    "registeredAt", "updatedAt", "deactivatedReason", "locale",
    "isActive",     "expiresAt", "deactivatedAt"};

static bool rf_str(jscan_t *s, char *out, size_t outlen)
{
    const char *v;
    size_t n;
    if (!jscan_str(s, &v, &n) || n >= outlen)
        return false;
    memcpy(out, v, n);
    out[n] = '\0';
    return true;
}

static bool record_fast(const char *json, size_t len, tok_record_t *out, char *platform,
                        size_t platlen)
{
    jscan_t s = {json, json + len};
    unsigned seen = 0;
    if (!jscan_take(&s, '{'))
        return false;
    for (int m = 0; !jscan_take(&s, '}'); m++) {
        const char *k;
        size_t kn;
        int f = 0;
        if ((m > 0 && !jscan_take(&s, ',')) || !jscan_str(&s, &k, &kn) || !jscan_take(&s, ':'))
            return false;
        while (f < RF_COUNT && !jscan_is(k, kn, rf_names[f]))
            f++;
        if (f == RF_COUNT || (seen & (1u << f)))
            return false;
        seen |= 1u << f;
        bool ok;
        switch (f) {
        case RF_USER:
            ok = rf_str(&s, out->user_id, sizeof out->user_id);
            break;
        case RF_DEVICE:
            ok = rf_str(&s, out->device_id, sizeof out->device_id);
            break;
        case RF_TOKEN:
            ok = rf_str(&s, out->token, sizeof out->token);
            break;
        case RF_PLATFORM:
            ok = rf_str(&s, platform, platlen);
            break;
        case RF_REGISTERED:
            ok = rf_str(&s, out->registered_at, sizeof out->registered_at);
            break;
        case RF_UPDATED:
            ok = rf_str(&s, out->updated_at, sizeof out->updated_at);
            break;
        case RF_REASON:
            ok = rf_str(&s, out->deactivated_reason, sizeof out->deactivated_reason);
            break;
        case RF_LOCALE:
            ok = rf_str(&s, out->locale, sizeof out->locale);
            break;
        case RF_ACTIVE:
            ok = (out->active = jscan_lit(&s, "true")) || jscan_lit(&s, "false");
            break;
        case RF_EXPIRES:
            ok = jscan_uint(&s, &out->expires_at);
            break;
        default: /* RF_DEACTIVATED */
            ok = jscan_uint(&s, &out->deactivated_at);
            break;
        }
        if (!ok)
            return false;
    }
    /* the members the full parser requires */
    unsigned need = (1u << RF_USER) | (1u << RF_DEVICE) | (1u << RF_TOKEN) | (1u << RF_PLATFORM) |
                    (1u << RF_REGISTERED) | (1u << RF_UPDATED) | (1u << RF_ACTIVE);
    return (seen & need) == need && jscan_end(&s);
}

int tok_record_parse(const char *json, size_t len, tok_record_t *out, char *err, size_t errlen)
{
    char platform[16] = "";
    memset(out, 0, sizeof *out);
    if (len > 4096) {
        snprintf(err, errlen, "record larger than 4096 bytes");
        return -1;
    }
    if (record_fast(json, len, out, platform, sizeof platform)) {
        if (tok_platform_parse(platform, &out->platform) != 0) {
            snprintf(err, errlen, "record has a missing or malformed field");
            return -1;
        }
        int rc = check_fields(out, platform, err, errlen);
        if (rc == 0 && out->locale[0])
            tok_valid_locale(out->locale, strlen(out->locale), out->locale);
        return rc;
    }
    return tok_record_parse_full(json, len, out, err, errlen);
}

int tok_record_parse_full(const char *json, size_t len, tok_record_t *out, char *err, size_t errlen)
{
    char platform[16] = "";
    json_error_t jerr;
    memset(out, 0, sizeof *out);
    if (len > 4096) {
        snprintf(err, errlen, "record larger than 4096 bytes");
        return -1;
    }
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL || !json_is_object(o)) {
        snprintf(err, errlen, "record is not a JSON object");
        json_decref(o);
        return -1;
    }
    int rc = -1;
    json_t *active = json_object_get(o, "isActive");
    json_t *exp = json_object_get(o, "expiresAt");
    json_t *dat = json_object_get(o, "deactivatedAt");
    if (get_str(o, "userId", out->user_id, sizeof out->user_id, 1) ||
        get_str(o, "deviceId", out->device_id, sizeof out->device_id, 1) ||
        get_str(o, "expoPushToken", out->token, sizeof out->token, 1) ||
        get_str(o, "platform", platform, sizeof platform, 1) ||
        get_str(o, "registeredAt", out->registered_at, sizeof out->registered_at, 1) ||
        get_str(o, "updatedAt", out->updated_at, sizeof out->updated_at, 1) ||
        get_str(o, "deactivatedReason", out->deactivated_reason, sizeof out->deactivated_reason,
                0) ||
        get_str(o, "locale", out->locale, sizeof out->locale, 0) || !json_is_boolean(active) ||
        (exp && !json_is_integer(exp)) || (dat && !json_is_integer(dat)) ||
        tok_platform_parse(platform, &out->platform) != 0) {
        snprintf(err, errlen, "record has a missing or malformed field");
        goto done;
    }
    out->active = json_is_true(active);
    out->expires_at = exp ? (int64_t)json_integer_value(exp) : 0;
    out->deactivated_at = dat ? (int64_t)json_integer_value(dat) : 0;
    rc = check_fields(out, platform, err, errlen);
    if (rc == 0 && out->locale[0]) /* canonical case, as the API stores it */
        tok_valid_locale(out->locale, strlen(out->locale), out->locale);
done:
    json_decref(o);
    return rc;
}

unsigned tok_undeliverable(const tok_record_t *r, int64_t now_s)
{
    unsigned why = 0;
    if (!r->active)
        why |= TOK_UNDELIV_INACTIVE;
    if (r->expires_at <= now_s)
        why |= TOK_UNDELIV_EXPIRED;
    if (tok_valid_token(r->token, strlen(r->token)) != 0)
        why |= TOK_UNDELIV_MALFORMED;
    return why;
}

const char *tok_undeliverable_name(unsigned reason)
{
    switch (reason) {
    case TOK_UNDELIV_INACTIVE:
        return "inactive";
    case TOK_UNDELIV_EXPIRED:
        return "expired";
    case TOK_UNDELIV_MALFORMED:
        return "malformed";
    default:
        return "";
    }
}

const char *tok_deliverability(const tok_record_t *r, int64_t now_s)
{
    unsigned why = tok_undeliverable(r, now_s);
    /* the lowest flag first: inactive, then expired, then malformed */
    return why ? tok_undeliverable_name(why & -why) : NULL;
}

bool tok_record_deliverable(const tok_record_t *r, int64_t now_s)
{
    return tok_undeliverable(r, now_s) == 0;
}
