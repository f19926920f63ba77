/* config.c - the configuration table and its parser. Every key herald knows is one row of `keys`
 * below (name, type, bounds, default, where it lives in conf_t); the file parser, the environment
 * overrides, the defaults and `--check-config` output are all driven by that one table, so a key
 * cannot be documented in one place and forgotten in another. */
#include "config/config.h"
#include "core/file.h"
#include "core/langtag.h"
#include "core/redact.h"
#include "core/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONF_MAX_FILE (1u << 20) /* 1 MiB: a config file is small; refuse anything bigger */
#define CONF_MAX_LINE 4096
#define CONF_MAX_VALUE 4000
#define CONF_MAX_DYNAMIC 512
#define CONF_MAX_INCLUDE_DEPTH 4

typedef enum { T_STR, T_INT, T_BOOL, T_ENUM, T_LISTEN, T_URL, T_SECRET } ktype_t;

typedef struct key {
    const char *name;
    ktype_t type;
    size_t off;
    const char *def;
    long min, max;
    const char *choices; /* T_ENUM: '|'-separated */
} key_t_;

#define S(name, field, def)                                                                        \
    {                                                                                              \
        name, T_STR, offsetof(conf_t, field), def, 0, 0, NULL                                      \
    }
#define SEC(name, field)                                                                           \
    {                                                                                              \
        name, T_SECRET, offsetof(conf_t, field), "", 0, 0, NULL                                    \
    }
#define I(name, field, def, lo, hi)                                                                \
    {                                                                                              \
        name, T_INT, offsetof(conf_t, field), def, lo, hi, NULL                                    \
    }
#define B(name, field, def)                                                                        \
    {                                                                                              \
        name, T_BOOL, offsetof(conf_t, field), def, 0, 0, NULL                                     \
    }
#define E(name, field, def, ch)                                                                    \
    {                                                                                              \
        name, T_ENUM, offsetof(conf_t, field), def, 0, 0, ch                                       \
    }
#define L(name, field, def)                                                                        \
    {                                                                                              \
        name, T_LISTEN, offsetof(conf_t, field), def, 0, 0, NULL                                   \
    }
#define U(name, field, def)                                                                        \
    {                                                                                              \
        name, T_URL, offsetof(conf_t, field), def, 0, 0, NULL                                      \
    }

static const key_t_ keys[] = {
    E("log.level", log_level, "info", "debug|info|warn|error"),
    L("http.listen", http_listen, "127.0.0.1:8080"),
    I("http.max_body_bytes", http_max_body_bytes, "4096", 256, 65536),
    I("http.max_connections", http_max_connections, "1024", 1, 100000),
    I("http.connection_timeout_s", http_connection_timeout_s, "30", 1, 3600),
    B("http.trust_forwarded_for", http_trust_forwarded_for, "false"),
    I("http.max_connections_per_ip", http_max_connections_per_ip, "64", 0, 100000),
    I("http.request_timeout_s", http_request_timeout_s, "10", 1, 3600),
    L("admin.listen", admin_listen, "127.0.0.1:9090"),
    U("redis.url", redis_url, "redis://127.0.0.1:6379/0"),
    S("redis.prefix", redis_prefix, "herald:"),
    I("redis.timeout_ms", redis_timeout_ms, "1000", 10, 60000),
    S("redis.password_file", redis_password_file, ""),
    B("redis.cluster", redis_cluster, "false"),
    S("redis.cluster_seeds", redis_cluster_seeds, ""),
    I("tokens.ttl_days", tokens_ttl_days, "90", 1, 3650),
    I("tokens.max_devices_per_user", tokens_max_devices_per_user, "20", 1, 1000),
    I("tokens.sweep_interval_s", tokens_sweep_interval_s, "3600", 0, 604800),
    I("tokens.inactive_retention_days", tokens_inactive_retention_days, "30", 0, 3650),
    E("auth.mode", auth_mode, "jwt", "jwt|trusted-header"),
    S("auth.trusted_header", auth_trusted_header, "X-User-Id"),
    S("auth.jwt.hs256_secret_file", auth_jwt_hs256_secret_file, ""),
    SEC("auth.jwt.hs256_secret", auth_jwt_hs256_secret),
    S("auth.jwt.jwks_file", auth_jwt_jwks_file, ""),
    S("auth.jwt.issuer", auth_jwt_issuer, ""),
    S("auth.jwt.audience", auth_jwt_audience, ""),
    I("auth.jwt.leeway_s", auth_jwt_leeway_s, "30", 0, 600),
    B("ratelimit.enabled", ratelimit_enabled, "true"),
    I("ratelimit.user_rate", ratelimit_user_rate, "50", 1, 1000000),
    I("ratelimit.user_burst", ratelimit_user_burst, "100", 1, 1000000),
    I("ratelimit.ip_rate", ratelimit_ip_rate, "50", 1, 1000000),
    I("ratelimit.ip_burst", ratelimit_ip_burst, "100", 1, 1000000),
    U("expo.url", expo_url, "https://exp.host"),
    S("expo.access_token_file", expo_access_token_file, ""),
    SEC("expo.access_token", expo_access_token),
    I("expo.linger_ms", expo_linger_ms, "5", 0, 1000),
    I("expo.max_concurrent", expo_max_concurrent, "6", 1, 64),
    I("expo.rate_per_sec", expo_rate_per_sec, "600", 0, 1000000),
    B("expo.shared_rate_limit", expo_shared_rate_limit, "false"),
    I("expo.max_attempts", expo_max_attempts, "6", 1, 100),
    I("expo.max_retry_age_s", expo_max_retry_age_s, "600", 1, 86400),
    I("expo.backoff_base_ms", expo_backoff_base_ms, "1000", 1, 60000),
    I("expo.backoff_cap_ms", expo_backoff_cap_ms, "60000", 1, 3600000),
    I("expo.timeout_ms", expo_timeout_ms, "30000", 100, 600000),
    I("expo.receipt_delay_s", expo_receipt_delay_s, "900", 0, 86400),
    I("expo.receipt_poll_interval_s", expo_receipt_poll_interval_s, "5", 1, 3600),
    B("expo.http2", expo_http2, "true"),
    S("queue.topics", queue_topics, "job-events"),
    S("queue.dlq_topic", queue_dlq_topic, ""),
    I("queue.max_in_flight", queue_max_in_flight, "1000", 1, 1000000),
    I("queue.max_event_bytes", queue_max_event_bytes, "65536", 256, 10485760),
    B("kafka.embedded", kafka_embedded, "false"),
    I("dedup.pending_ttl_s", dedup_pending_ttl_s, "120", 5, 86400),
    I("dedup.done_ttl_s", dedup_done_ttl_s, "604800", 60, 31536000),
    I("dedup.lease_ms", dedup_lease_ms, "3000", 1000, 60000),
    I("trace.ttl_s", trace_ttl_s, "604800", 0, 31536000),
    I("trace.max_records", trace_max_records, "100", 1, 10000),
    S("templates.notify", templates_notify, "COMPLETED,FAILED"),
    S("templates.default_locale", templates_default_locale, "en"),
    I("shutdown.timeout_s", shutdown_timeout_s, "10", 0, 3600),
    S("runtime.dir", runtime_dir, "run"),
};
#define NKEYS (sizeof keys / sizeof keys[0])

static const char *const template_fields[] = {"title",
                                              "body",
                                              "sound",
                                              "priority",
                                              "channel_id",
                                              "action",
                                              "type",
                                              "ttl",
                                              "category_id",
                                              "subtitle",
                                              "image",
                                              "icon",
                                              "tag",
                                              "interruption_level",
                                              "badge",
                                              "mutable_content",
                                              "content_available",
                                              NULL};
#define TEMPLATE_FIELDS_TEXT                                                                       \
    "title|body|subtitle|sound|priority|channel_id|category_id|ttl|action|type|image|icon|tag|"    \
    "interruption_level|badge|mutable_content|content_available"

static char **str_at(conf_t *c, const key_t_ *k)
{
    return (char **)(void *)((char *)c + k->off);
}

static long *long_at(conf_t *c, const key_t_ *k)
{
    return (long *)(void *)((char *)c + k->off);
}

static bool *bool_at(conf_t *c, const key_t_ *k)
{
    return (bool *)(void *)((char *)c + k->off);
}

static const key_t_ *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

int conf_parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end != '\0' || p < 0 || p > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

static int parse_value(conf_t *c, const key_t_ *k, const char *v, char *msg, size_t msglen)
{
    char host[256];
    int port;
    switch (k->type) {
    case T_INT: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno || end == v || *end != '\0') {
            snprintf(msg, msglen, "%s: expected an integer, got \"%s\"", k->name, v);
            return -1;
        }
        if (n < k->min || n > k->max) {
            snprintf(msg, msglen, "%s: %ld is out of range [%ld, %ld]", k->name, n, k->min, k->max);
            return -1;
        }
        *long_at(c, k) = n;
        return 0;
    }
    case T_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
            *bool_at(c, k) = true;
        else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0"))
            *bool_at(c, k) = false;
        else {
            snprintf(msg, msglen, "%s: expected true or false, got \"%s\"", k->name, v);
            return -1;
        }
        return 0;
    case T_ENUM: {
        size_t vl = strlen(v);
        const char *p = k->choices;
        while (*p) {
            size_t n = strcspn(p, "|");
            if (n == vl && strncmp(p, v, n) == 0)
                goto store;
            p += n + (p[n] == '|');
        }
        snprintf(msg, msglen, "%s: \"%s\" is not one of %s", k->name, v, k->choices);
        return -1;
    }
    case T_LISTEN:
        if (conf_parse_listen(v, host, sizeof host, &port) != 0) {
            snprintf(msg, msglen, "%s: expected host:port, got \"%s\"", k->name, v);
            return -1;
        }
        goto store;
    case T_URL:
        if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8) && strncmp(v, "redis://", 8) &&
            strncmp(v, "unix://", 7)) {
            snprintf(msg, msglen, "%s: expected an http(s)://, redis:// or unix:// URL, got \"%s\"",
                     k->name, REDACT_URL(v));
            return -1;
        }
        goto store;
    case T_STR:
    case T_SECRET:
        goto store;
    }
    return -1;
store:
    free(*str_at(c, k));
    *str_at(c, k) = xstrdup(v);
    return 0;
}

static int valid_prop_name(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
            return 0;
    return 1;
}

static int set_dynamic(conf_kv_t **arr, size_t *n, const char *key, const char *value)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*arr)[i].key, key) == 0) {
            free((*arr)[i].value);
            (*arr)[i].value = xstrdup(value);
            return 0;
        }
    }
    if (*n >= CONF_MAX_DYNAMIC)
        return -1;
    *arr = xrealloc(*arr, (*n + 1) * sizeof **arr);
    (*arr)[*n].key = xstrdup(key);
    (*arr)[*n].value = xstrdup(value);
    (*n)++;
    return 0;
}

/* templates.<NAME>.<field> or templates.<locale>.<NAME>.<field>: NAME is [A-Za-z0-9_]+, locale a
 * BCP 47 tag, field one of template_fields (templates.notify and templates.default_locale are keys
 * of the table). Returns NULL, or what is wrong in msg. */
static const char *template_key_problem(const char *key, char *msg, size_t msglen)
{
    const char *name = key + strlen("templates.");
    const char *dot = strrchr(name, '.');
    const char *first = strchr(name, '.');
    if (first && first != dot) {
        if (lang_tag_parse(name, (size_t)(first - name), NULL) != 0) {
            snprintf(msg, msglen,
                     "%s: \"%.*s\" is not a BCP 47 language tag (such as fr, pt-BR or zh-Hant)",
                     key, (int)(first - name), name);
            return msg;
        }
        name = first + 1;
    }
    bool ok = dot != NULL && dot != name;
    for (const char *p = name; ok && p < dot; p++)
        ok = isalnum((unsigned char)*p) || *p == '_';
    for (size_t i = 0; ok && template_fields[i]; i++)
        if (strcmp(dot + 1, template_fields[i]) == 0)
            return NULL;
    snprintf(msg, msglen,
             "%s: expected templates.<STATUS>.<field> or templates.<locale>.<STATUS>.<field> "
             "(field: " TEMPLATE_FIELDS_TEXT "), templates.notify or templates.default_locale",
             key);
    return msg;
}

static int set_msg(conf_t *c, const char *key, const char *value, char *msg, size_t msglen)
{
    if (strlen(value) > CONF_MAX_VALUE) {
        snprintf(msg, msglen, "%s: value longer than %d bytes", key, CONF_MAX_VALUE);
        return -1;
    }
    const key_t_ *k = find_key(key);
    if (k)
        return parse_value(c, k, value, msg, msglen);
    if (strncmp(key, "kafka.", 6) == 0) {
        if (!valid_prop_name(key + 6)) {
            snprintf(msg, msglen, "%s: not a valid librdkafka property name", key);
            return -1;
        }
        if (set_dynamic(&c->kafka, &c->nkafka, key + 6, value) == 0)
            return 0;
        snprintf(msg, msglen, "%s: too many kafka.* keys", key);
        return -1;
    }
    if (strncmp(key, "templates.", 10) == 0) {
        if (template_key_problem(key, msg, msglen))
            return -1;
        if (set_dynamic(&c->templates, &c->ntemplates, key, value) == 0)
            return 0;
        snprintf(msg, msglen, "%s: too many templates.* keys", key);
        return -1;
    }
    snprintf(msg, msglen, "unknown key \"%s\"", key);
    return -1;
}

int conf_set(conf_t *c, const char *key, const char *value, const char *origin, char *err,
             size_t errlen)
{
    char msg[512];
    if (set_msg(c, key, value, msg, sizeof msg) == 0)
        return 0;
    snprintf(err, errlen, "%s: %s", origin, msg);
    return -1;
}

conf_t *conf_create(void)
{
    conf_t *c = xcalloc(1, sizeof *c);
    char msg[512];
    for (size_t i = 0; i < NKEYS; i++) {
        if (parse_value(c, &keys[i], keys[i].def, msg, sizeof msg) != 0)
            abort(); /* a bad default is a programming error */
    }
    set_dynamic(&c->kafka, &c->nkafka, "group.id", "herald");
    return c;
}

void conf_destroy(conf_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].type != T_INT && keys[i].type != T_BOOL)
            free(*str_at(c, &keys[i]));
    for (size_t i = 0; i < c->nkafka; i++)
        free(c->kafka[i].key), free(c->kafka[i].value);
    for (size_t i = 0; i < c->ntemplates; i++)
        free(c->templates[i].key), free(c->templates[i].value);
    free(c->kafka);
    free(c->templates);
    free(c->path);
    free(c);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* A value may be double-quoted to keep leading/trailing blanks or a '#'. */
static int unquote(char *v, char *msg, size_t msglen)
{
    size_t n = strlen(v);
    if (n == 0 || v[0] != '"')
        return 0;
    if (n < 2 || v[n - 1] != '"') {
        snprintf(msg, msglen, "unterminated quoted value");
        return -1;
    }
    memmove(v, v + 1, n - 2);
    v[n - 2] = '\0';
    return 0;
}

static int load_file(conf_t *c, const char *path, int depth, char *err, size_t errlen);

/* `include = path`: the lines of another file, as if they stood here. A relative path is taken
 * from the including file's folder, so config/dev.conf can say `include = templates.example.conf`.
 */
static int include(conf_t *c, const char *from, int depth, const char *path, char *msg,
                   size_t msglen)
{
    char full[4096 + 64];
    const char *slash = strrchr(from, '/');
    if (depth >= CONF_MAX_INCLUDE_DEPTH) {
        snprintf(msg, msglen, "include: more than %d nested includes", CONF_MAX_INCLUDE_DEPTH);
        return -1;
    }
    if (*path == '\0') {
        snprintf(msg, msglen, "include: expected a file name");
        return -1;
    }
    if (path[0] == '/' || slash == NULL)
        snprintf(full, sizeof full, "%s", path);
    else
        snprintf(full, sizeof full, "%.*s/%s", (int)(slash - from), from, path);
    return load_file(c, full, depth + 1, msg, msglen);
}

static int parse_line(conf_t *c, const char *name, int depth, char *line, char *msg, size_t msglen)
{
    for (char *p = line; *p; p++) {
        if ((unsigned char)*p < 0x20 && *p != '\t' && *p != '\r') {
            snprintf(msg, msglen, "control character in line");
            return -1;
        }
    }
    char *s = trim(line);
    if (*s == '\0' || *s == '#')
        return 0;
    char *eq = strchr(s, '=');
    if (eq == NULL) {
        snprintf(msg, msglen, "expected \"key = value\"");
        return -1;
    }
    *eq = '\0';
    char *key = trim(s);
    char *val = trim(eq + 1);
    if (*val != '"') {
        char *hash = strstr(val, " #");
        if (hash) {
            *hash = '\0';
            val = trim(val);
        }
    }
    if (*key == '\0') {
        snprintf(msg, msglen, "missing key before '='");
        return -1;
    }
    if (unquote(val, msg, msglen) != 0)
        return -1;
    if (strcmp(key, "include") == 0)
        return include(c, name, depth, val, msg, msglen);
    return set_msg(c, key, val, msg, msglen);
}

static int load_string(conf_t *c, const char *name, int depth, const char *text, size_t len,
                       char *err, size_t errlen)
{
    char line[CONF_MAX_LINE + 1];
    char msg[512];
    size_t pos = 0;
    int lineno = 0;
    if (len > CONF_MAX_FILE) {
        snprintf(err, errlen, "%s: file larger than %u bytes", name, CONF_MAX_FILE);
        return -1;
    }
    while (pos < len) {
        lineno++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        if (n > CONF_MAX_LINE) {
            snprintf(err, errlen, "%s:%d: line longer than %d bytes", name, lineno, CONF_MAX_LINE);
            return -1;
        }
        if (memchr(text + pos, '\0', n)) {
            snprintf(err, errlen, "%s:%d: NUL byte in line", name, lineno);
            return -1;
        }
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos += n + (nl ? 1 : 0);
        if (parse_line(c, name, depth, line, msg, sizeof msg) != 0) {
            snprintf(err, errlen, "%s:%d: %s", name, lineno, msg);
            return -1;
        }
    }
    return 0;
}

int conf_load_string(conf_t *c, const char *name, const char *text, size_t len, char *err,
                     size_t errlen)
{
    return load_string(c, name, 0, text, len, err, errlen);
}

static int load_file(conf_t *c, const char *path, int depth, char *err, size_t errlen)
{
    char *text;
    size_t n;
    if (file_read(path, CONF_MAX_FILE, &text, &n, err, errlen) != 0)
        return -1;
    int rc = load_string(c, path, depth, text, n, err, errlen);
    free(text);
    return rc;
}

int conf_load_file(conf_t *c, const char *path, char *err, size_t errlen)
{
    int rc = load_file(c, path, 0, err, errlen);
    if (rc == 0) {
        free(c->path);
        c->path = xstrdup(path);
    }
    return rc;
}

void conf_env_name(const char *key, char *out, size_t outlen)
{
    size_t j = 0;
    const char *pre = "HERALD_";
    for (; *pre && j + 1 < outlen; pre++)
        out[j++] = *pre;
    for (; *key && j + 1 < outlen; key++)
        out[j++] = (*key == '.' || *key == '-') ? '_' : (char)toupper((unsigned char)*key);
    out[j] = '\0';
}

/* Variables that are not configuration keys but belong to herald's tools. */
static const char *const env_allowed[] = {"HERALD_CONFIG", "HERALD_TEST_", NULL};

static int env_allowed_name(const char *name, size_t n)
{
    for (size_t i = 0; env_allowed[i]; i++) {
        size_t l = strlen(env_allowed[i]);
        if (env_allowed[i][l - 1] == '_' ? (n >= l && strncmp(name, env_allowed[i], l) == 0)
                                         : (n == l && strncmp(name, env_allowed[i], l) == 0))
            return 1;
    }
    return 0;
}

/* The key for the part of a HERALD_TEMPLATES_ name before its field: "FAILED" ->
 * templates.FAILED.<field>; "PT_BR_BATCH_COMPLETED" -> templates.pt-BR.BATCH_COMPLETED.<field>
 * when it ends with a status or BATCH_<status> (the longest), the rest being the locale with '_'
 * for '-'. */
static int env_template_key(const char *rest, size_t rl, const char *field, char *key,
                            size_t keylen)
{
    static const char *const st[] = {"QUEUED", "PROCESSING", "EDITING", "COMPLETED", "FAILED"};
    bool exact = false; /* "BATCH_COMPLETED" is a name, not the locale "BATCH" */
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++)
        exact = exact || (rl == strlen(st[i]) && strncmp(rest, st[i], rl) == 0) ||
                (rl == 6 + strlen(st[i]) && strncmp(rest, "BATCH_", 6) == 0 &&
                 strncmp(rest + 6, st[i], rl - 6) == 0);
    for (int batch = 1; batch >= 0 && !exact; batch--) {
        for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
            char name[32];
            size_t nl = (size_t)snprintf(name, sizeof name, "%s%s", batch ? "BATCH_" : "", st[i]);
            if (rl < nl + 3 || rest[rl - nl - 1] != '_' || strncmp(rest + rl - nl, name, nl) != 0)
                continue;
            char loc[64];
            size_t ll = rl - nl - 1;
            if (ll >= sizeof loc)
                return -1;
            for (size_t k = 0; k < ll; k++)
                loc[k] = rest[k] == '_' ? '-' : rest[k];
            loc[ll] = '\0';
            int w = snprintf(key, keylen, "templates.%s.%s.%s", loc, name, field);
            return (w < 0 || (size_t)w >= keylen) ? -1 : 0;
        }
    }
    int w = snprintf(key, keylen, "templates.%.*s.%s", (int)rl, rest, field);
    return (w < 0 || (size_t)w >= keylen) ? -1 : 0;
}

/* HERALD_KAFKA_SESSION_TIMEOUT_MS -> kafka.session.timeout.ms (librdkafka names use dots only);
 * HERALD_TEMPLATES_FAILED_CHANNEL_ID -> templates.FAILED.channel_id;
 * HERALD_TEMPLATES_PT_BR_FAILED_TITLE -> templates.pt-BR.FAILED.title. */
static int env_dynamic_key(const char *name, size_t n, char *key, size_t keylen)
{
    if (n > 13 && strncmp(name, "HERALD_KAFKA_", 13) == 0) {
        if (n - 13 + 7 > keylen)
            return -1;
        size_t j = (size_t)snprintf(key, keylen, "kafka.");
        for (size_t i = 13; i < n; i++)
            key[j++] = name[i] == '_' ? '.' : (char)tolower((unsigned char)name[i]);
        key[j] = '\0';
        return 0;
    }
    if (n > 17 && strncmp(name, "HERALD_TEMPLATES_", 17) == 0) {
        const char *rest = name + 17;
        size_t rl = n - 17;
        for (size_t f = 0; template_fields[f]; f++) {
            char up[32];
            size_t fl = strlen(template_fields[f]);
            for (size_t i = 0; i <= fl; i++)
                up[i] = (char)toupper((unsigned char)template_fields[f][i]);
            if (rl > fl + 1 && rest[rl - fl - 1] == '_' && strncmp(rest + rl - fl, up, fl) == 0)
                return env_template_key(rest, rl - fl - 1, template_fields[f], key, keylen);
        }
    }
    return -1;
}

static int env_key(const char *name, size_t n, char *key, size_t keylen)
{
    char want[128];
    for (size_t i = 0; i < NKEYS; i++) {
        conf_env_name(keys[i].name, want, sizeof want);
        if (strlen(want) == n && strncmp(want, name, n) == 0) {
            snprintf(key, keylen, "%s", keys[i].name);
            return 0;
        }
    }
    return env_dynamic_key(name, n, key, keylen);
}

int conf_apply_env(conf_t *c, char *const *envp, char *err, size_t errlen)
{
    for (size_t i = 0; envp && envp[i]; i++) {
        const char *e = envp[i];
        if (strncmp(e, "HERALD_", 7) != 0)
            continue;
        const char *eq = strchr(e, '=');
        if (eq == NULL)
            continue;
        size_t n = (size_t)(eq - e);
        if (env_allowed_name(e, n))
            continue;
        char key[256], origin[160];
        snprintf(origin, sizeof origin, "env %.*s", (int)(n > 128 ? 128 : n), e);
        if (env_key(e, n, key, sizeof key) != 0) {
            snprintf(err, errlen, "%s: no configuration key has this name", origin);
            return -1;
        }
        if (conf_set(c, key, eq + 1, origin, err, errlen) != 0)
            return -1;
    }
    return 0;
}

const char *conf_kafka_get(const conf_t *c, const char *prop)
{
    for (size_t i = 0; i < c->nkafka; i++)
        if (strcmp(c->kafka[i].key, prop) == 0)
            return c->kafka[i].value;
    return NULL;
}

const char *conf_template_get(const conf_t *c, const char *name, const char *field)
{
    char key[256];
    if (field)
        snprintf(key, sizeof key, "templates.%s.%s", name, field);
    else
        snprintf(key, sizeof key, "templates.%s", name);
    for (size_t i = 0; i < c->ntemplates; i++)
        if (strcmp(c->templates[i].key, key) == 0)
            return c->templates[i].value;
    return NULL;
}

/* redis.cluster needs a redis:// URL with database 0; cluster_seeds are host:port entries. */
static int validate_cluster(const conf_t *c, const char *where, char *err, size_t errlen)
{
    if (!c->redis_cluster) {
        if (*c->redis_cluster_seeds)
            snprintf(err, errlen, "%s: redis.cluster_seeds is set but redis.cluster = false",
                     where);
        return *c->redis_cluster_seeds ? -1 : 0;
    }
    const char *u = c->redis_url;
    const char *path = strncmp(u, "redis://", 8) == 0 ? strchr(u + 8, '/') : NULL;
    if (strncmp(u, "redis://", 8) != 0 || (path && strcmp(path, "/") && strcmp(path, "/0"))) {
        snprintf(err, errlen,
                 "%s: redis.cluster = true needs a redis:// URL with database 0 (cluster nodes "
                 "have only database 0)",
                 where);
        return -1;
    }
    size_t count = 0;
    for (const char *p = c->redis_cluster_seeds; *p;) {
        char entry[300], host[256];
        int port;
        size_t n = strcspn(p, ",");
        snprintf(entry, sizeof entry, "%.*s", (int)(n < 299 ? n : 299), p);
        char *e = entry + strspn(entry, " ");
        for (size_t l = strlen(e); l > 0 && e[l - 1] == ' ';)
            e[--l] = '\0';
        if (n >= sizeof entry || conf_parse_listen(e, host, sizeof host, &port) != 0 || port == 0 ||
            strpbrk(host, "@/") || ++count > 15) {
            snprintf(err, errlen,
                     "%s: redis.cluster_seeds: \"%.100s\" is not host:port (up to 15 entries, "
                     "comma-separated)",
                     where, e);
            return -1;
        }
        p += n + (p[n] == ',');
    }
    return 0;
}

int conf_validate(const conf_t *c, char *err, size_t errlen)
{
    const char *where = c->path ? c->path : "config";
    if (strcmp(c->auth_mode, "jwt") == 0 && !*c->auth_jwt_hs256_secret &&
        !*c->auth_jwt_hs256_secret_file && !*c->auth_jwt_jwks_file) {
        snprintf(err, errlen,
                 "%s: auth.mode = jwt needs auth.jwt.hs256_secret_file, auth.jwt.jwks_file or "
                 "HERALD_AUTH_JWT_HS256_SECRET",
                 where);
        return -1;
    }
    if (*c->auth_jwt_hs256_secret && *c->auth_jwt_hs256_secret_file) {
        snprintf(err, errlen,
                 "%s: set auth.jwt.hs256_secret or auth.jwt.hs256_secret_file, not both", where);
        return -1;
    }
    if (strcmp(c->auth_mode, "trusted-header") == 0 && !*c->auth_trusted_header) {
        snprintf(err, errlen, "%s: auth.mode = trusted-header needs auth.trusted_header", where);
        return -1;
    }
    if (c->kafka_embedded && conf_kafka_get(c, "bootstrap.servers")) {
        snprintf(err, errlen,
                 "%s: kafka.embedded = true cannot be combined with kafka.bootstrap.servers",
                 where);
        return -1;
    }
    if (c->expo_backoff_cap_ms < c->expo_backoff_base_ms) {
        snprintf(err, errlen, "%s: expo.backoff_cap_ms is smaller than expo.backoff_base_ms",
                 where);
        return -1;
    }
    if (!*c->queue_topics) {
        snprintf(err, errlen, "%s: queue.topics must name at least one topic", where);
        return -1;
    }
    if (c->http_max_connections_per_ip >= c->http_max_connections) {
        snprintf(err, errlen,
                 "%s: http.max_connections_per_ip (%ld) must be below http.max_connections (%ld), "
                 "or 0 for no per-address limit",
                 where, c->http_max_connections_per_ip, c->http_max_connections);
        return -1;
    }
    if (lang_tag_parse(c->templates_default_locale, strlen(c->templates_default_locale), NULL) !=
        0) {
        snprintf(err, errlen,
                 "%s: templates.default_locale: \"%s\" is not a BCP 47 language tag (such as en)",
                 where, c->templates_default_locale);
        return -1;
    }
    if (!*c->redis_prefix || strlen(c->redis_prefix) > 64) {
        snprintf(err, errlen, "%s: redis.prefix must be 1 to 64 characters", where);
        return -1;
    }
    return validate_cluster(c, where, err, errlen);
}

int conf_load(conf_t **out, const char *path, char *const *envp, char *err, size_t errlen)
{
    conf_t *c = conf_create();
    if ((path && conf_load_file(c, path, err, errlen) != 0) ||
        conf_apply_env(c, envp, err, errlen) != 0 || conf_validate(c, err, errlen) != 0) {
        conf_destroy(c);
        return -1;
    }
    *out = c;
    return 0;
}

/* librdkafka's own sensitive properties (sasl.password, sasl.oauthbearer.client.secret,
 * sasl.oauthbearer.config, ssl.key.password, ssl.key.pem, ssl_key, ssl.keystore.password) and
 * anything else whose name says it holds a secret. */
static bool secret_kafka(const char *k)
{
    static const char *const words[] = {
        "password", "secret", "key.pem", "ssl_key", "sasl.oauthbearer.config", NULL};
    for (size_t i = 0; words[i]; i++)
        if (strstr(k, words[i]))
            return true;
    return false;
}

bool conf_key_secret(const char *key)
{
    const key_t_ *k = find_key(key);
    if (k)
        return k->type == T_SECRET;
    return strncmp(key, "kafka.", 6) == 0 && secret_kafka(key + 6);
}

const char *conf_display_value(const char *key, const char *value, char *out, size_t outlen)
{
    if (conf_key_secret(key))
        return *value ? "(set)" : "";
    if (strncmp(key, "templates.", 10) != 0 && strstr(value, "://"))
        return redact_url(value, out, outlen);
    return value;
}

static void dump_str(buf_t *out, const char *key, const char *value)
{
    char tmp[CONF_MAX_VALUE + 1];
    buf_printf(out, "%s = %s\n", key, conf_display_value(key, value, tmp, sizeof tmp));
}

void conf_dump(const conf_t *c, buf_t *out)
{
    char key[300];
    for (size_t i = 0; i < NKEYS; i++) {
        const key_t_ *k = &keys[i];
        const void *at = (const char *)c + k->off;
        if (k->type == T_INT)
            buf_printf(out, "%s = %ld\n", k->name, *(const long *)at);
        else if (k->type == T_BOOL)
            buf_printf(out, "%s = %s\n", k->name, *(const bool *)at ? "true" : "false");
        else
            dump_str(out, k->name, *(char *const *)at);
    }
    for (size_t i = 0; i < c->nkafka; i++) {
        snprintf(key, sizeof key, "kafka.%s", c->kafka[i].key);
        dump_str(out, key, c->kafka[i].value);
    }
    for (size_t i = 0; i < c->ntemplates; i++)
        buf_printf(out, "%s = %s\n", c->templates[i].key, c->templates[i].value);
}
