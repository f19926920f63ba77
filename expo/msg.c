/* msg.c - the Expo message model and its compact JSON encoding (one object per recipient).
 *
 * Encoding appends to the request's buffer directly, so a batch body is built once with no
 * per-message allocation; a message over 4096 bytes is rejected here, before any request. */
#include "expo/expo.h"

#include <inttypes.h>
#include <string.h>

void expo_msg_init(expo_msg_t *m)
{
    memset(m, 0, sizeof *m);
    m->badge = EXPO_UNSET;
    m->ttl = EXPO_UNSET;
    m->expiration = EXPO_UNSET;
}

const char *expo_strerror(int code)
{
    switch (code) {
    case EXPO_EOK:
        return "ok";
    case EXPO_EINVAL:
        return "invalid message";
    case EXPO_ETOOBIG:
        return "message payload exceeds 4096 bytes";
    case EXPO_ECONF:
        return "invalid Expo client options";
    default:
        return "unknown error";
    }
}

/* A cheap shape check of caller-supplied JSON: an object with balanced brackets outside strings
 * and no raw control characters inside them. Full validation is the caller's job (it built it). */
static bool json_object_shape(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    while (n > 0 && (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r'))
        s++, n--;
    if (n < 2 || s[0] != '{' || s[n - 1] != '}')
        return false;
    int depth = 0;
    bool str = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (str) {
            if (ch < 0x20)
                return false;
            if (ch == '\\')
                i++;
            else if (ch == '"')
                str = false;
        } else if (ch == '"') {
            str = true;
        } else if (ch == '{' || ch == '[') {
            if (++depth > 64)
                return false;
        } else if (ch == '}' || ch == ']') {
            if (--depth < 0 || (depth == 0 && i != n - 1))
                return false;
        }
    }
    return depth == 0 && !str;
}

/* Expo rejects a whole request over one bad string: refuse invalid UTF-8 per message instead. */
static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (p && *p) {
        unsigned c = *p++;
        int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
        if (n < 0 || (n == 1 && c < 0xc2) || (n == 3 && c > 0xf4))
            return false;
        unsigned cp = c & (0x3fu >> n);
        for (int i = 0; i < n; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (*p & 0x3fu);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
    }
    return true;
}

static bool strings_ok(const expo_msg_t *m)
{
    const char *f[] = {
        m->to,          m->title,      m->body,       m->subtitle,    m->data,
        m->sound,       m->priority,   m->channel_id, m->category_id, m->interruption_level,
        m->collapse_id, m->rich_image, m->icon,       m->tag};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (!utf8_ok(f[i]))
            return false;
    return true;
}

#define KEY(b, lit) buf_append((b), lit, sizeof lit - 1)

static void put_str(buf_t *b, const char *key, size_t keylen, const char *v)
{
    if (!v)
        return;
    buf_append(b, key, keylen);
    buf_json_cstr(b, v);
}

static void put_int(buf_t *b, const char *key, size_t keylen, long long v)
{
    if (v == EXPO_UNSET)
        return;
    buf_append(b, key, keylen);
    buf_put_i64(b, v);
}

#define PUT_STR(b, lit, v) put_str((b), lit, sizeof lit - 1, (v))
#define PUT_INT(b, lit, v) put_int((b), lit, sizeof lit - 1, (v))

static void encode_fields(const expo_msg_t *m, buf_t *b)
{
    KEY(b, "{\"to\":");
    buf_json_cstr(b, m->to);
    PUT_STR(b, ",\"title\":", m->title);
    PUT_STR(b, ",\"body\":", m->body);
    PUT_STR(b, ",\"subtitle\":", m->subtitle);
    if (m->data) {
        KEY(b, ",\"data\":");
        buf_puts(b, m->data);
    }
    PUT_STR(b, ",\"sound\":", m->sound);
    PUT_INT(b, ",\"badge\":", m->badge);
    PUT_INT(b, ",\"ttl\":", m->ttl);
    PUT_INT(b, ",\"expiration\":", m->expiration);
    PUT_STR(b, ",\"priority\":", m->priority);
    PUT_STR(b, ",\"channelId\":", m->channel_id);
    PUT_STR(b, ",\"categoryId\":", m->category_id);
    if (m->rich_image) {
        KEY(b, ",\"richContent\":{\"image\":");
        buf_json_cstr(b, m->rich_image);
        buf_putc(b, '}');
    }
    PUT_STR(b, ",\"icon\":", m->icon);
    PUT_STR(b, ",\"tag\":", m->tag);
    if (m->mutable_content)
        KEY(b, ",\"mutableContent\":true");
    if (m->content_available)
        KEY(b, ",\"_contentAvailable\":true");
    PUT_STR(b, ",\"interruptionLevel\":", m->interruption_level);
    PUT_STR(b, ",\"collapseId\":", m->collapse_id);
    buf_putc(b, '}');
}

int expo_msg_encode(const expo_msg_t *m, buf_t *out)
{
    if (!m->to || !*m->to || (m->data && !json_object_shape(m->data)) ||
        (m->badge != EXPO_UNSET && m->badge < 0) || (m->ttl != EXPO_UNSET && m->ttl < 0) ||
        (m->expiration != EXPO_UNSET && m->expiration <= 0) || !strings_ok(m))
        return EXPO_EINVAL;
    size_t start = out->len;
    encode_fields(m, out);
    if (out->len - start > EXPO_MAX_PAYLOAD) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
        return EXPO_ETOOBIG;
    }
    return 0;
}

size_t expo_msg_size(const expo_msg_t *m)
{
    buf_t b = BUF_INIT;
    encode_fields(m, &b);
    size_t n = b.len;
    buf_cleanup(&b);
    return n;
}
