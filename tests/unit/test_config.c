/* test_config.c - the config parser: defaults, file syntax, precise errors, env overrides,
 * localized template keys, includes, and secrets (passwords in URLs, secret keys, secret kafka.*
 * properties) kept out of dumps and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int load(conf_t *c, const char *text, char *err, size_t errlen)
{
    return conf_load_string(c, "t.conf", text, strlen(text), err, errlen);
}

/* A configuration from text, which must load. */
static conf_t *loaded(const char *text)
{
    char err[512] = "";
    conf_t *c = conf_create();
    if (load(c, text, err, sizeof err) != 0)
        fail_msg("%s", err);
    return c;
}

static void test_defaults(void **state)
{
    (void)state;
    conf_t *c = conf_create();
    assert_string_equal(c->http_listen, "127.0.0.1:8080");
    assert_string_equal(c->admin_listen, "127.0.0.1:9090");
    assert_int_equal(c->tokens_ttl_days, 90);
    assert_int_equal(c->ratelimit_user_rate, 50);
    assert_int_equal(c->ratelimit_user_burst, 100);
    assert_int_equal(c->expo_rate_per_sec, 600);
    assert_string_equal(conf_kafka_get(c, "group.id"), "herald");
    conf_destroy(c);
}

static void test_file_syntax(void **state)
{
    (void)state;
    conf_t *c = loaded("# comment\n"
                       "\n"
                       "  http.listen = 0.0.0.0:80   # trailing comment\n"
                       "tokens.ttl_days=30\r\n"
                       "redis.prefix = \"p # q \"\n"
                       "ratelimit.enabled = off\n"
                       "kafka.session.timeout.ms = 10000\n"
                       "templates.COMPLETED.title = Done!\n");
    assert_string_equal(c->http_listen, "0.0.0.0:80");
    assert_int_equal(c->tokens_ttl_days, 30);
    assert_string_equal(c->redis_prefix, "p # q ");
    assert_false(c->ratelimit_enabled);
    assert_string_equal(conf_kafka_get(c, "session.timeout.ms"), "10000");
    assert_string_equal(conf_template_get(c, "COMPLETED", "title"), "Done!");
    conf_destroy(c);
}

struct bad {
    const char *text;
    const char *err;
};

static void test_errors(void **state)
{
    (void)state;
    static const struct bad cases[] = {
        {"nope = 1\n", "t.conf:1: unknown key \"nope\""},
        {"# ok\nhttp.listen\n", "t.conf:2: expected \"key = value\""},
        {"tokens.ttl_days = abc\n", "t.conf:1: tokens.ttl_days: expected an integer, got \"abc\""},
        {"tokens.ttl_days = 0\n", "t.conf:1: tokens.ttl_days: 0 is out of range [1, 3650]"},
        {"tokens.ttl_days = 99999999999999999999\n", "t.conf:1: tokens.ttl_days: expected an"},
        {"ratelimit.enabled = maybe\n", "t.conf:1: ratelimit.enabled: expected true or false"},
        {"log.level = loud\n", "t.conf:1: log.level: \"loud\" is not one of debug|info|warn|error"},
        {"http.listen = 8080\n", "t.conf:1: http.listen: expected host:port, got \"8080\""},
        {"http.listen = h:99999\n", "t.conf:1: http.listen: expected host:port"},
        {"expo.url = ftp://x\n", "t.conf:1: expo.url: expected an http(s)://"},
        {"redis.prefix = \"abc\n", "t.conf:1: unterminated quoted value"},
        {" = 3\n", "t.conf:1: missing key before '='"},
        {"templates.COMPLETED.colour = red\n", "t.conf:1: templates.COMPLETED.colour: expected"},
        {"kafka.bad key = 1\n", "t.conf:1: kafka.bad key: not a valid librdkafka property name"},
        {"a\x01 = 1\n", "t.conf:1: control character in line"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        conf_t *c = conf_create();
        assert_int_equal(load(c, cases[i].text, err, sizeof err), -1);
        if (strncmp(err, cases[i].err, strlen(cases[i].err)) != 0)
            fail_msg("case %zu: got \"%s\", want prefix \"%s\"", i, err, cases[i].err);
        conf_destroy(c);
    }
}

static void test_long_line_and_nul(void **state)
{
    (void)state;
    char err[512];
    conf_t *c = conf_create();
    size_t n = 5000;
    char *text = malloc(n + 1);
    memset(text, 'a', n);
    text[n] = '\0';
    assert_int_equal(load(c, text, err, sizeof err), -1);
    assert_string_equal(err, "t.conf:1: line longer than 4096 bytes");
    free(text);
    assert_int_equal(conf_load_string(c, "t.conf", "a = b\0c\n", 8, err, sizeof err), -1);
    assert_string_equal(err, "t.conf:1: NUL byte in line");
    conf_destroy(c);
}

static void test_env(void **state)
{
    (void)state;
    char err[512] = "";
    conf_t *c = conf_create();
    char *env[] = {"PATH=/bin",
                   "HERALD_TOKENS_TTL_DAYS=7",
                   "HERALD_AUTH_JWT_HS256_SECRET=s3cret",
                   "HERALD_KAFKA_SESSION_TIMEOUT_MS=6000",
                   "HERALD_TEMPLATES_FAILED_CHANNEL_ID=errors",
                   "HERALD_CONFIG=/etc/herald.conf",
                   NULL};
    assert_int_equal(conf_apply_env(c, env, err, sizeof err), 0);
    assert_int_equal(c->tokens_ttl_days, 7);
    assert_string_equal(c->auth_jwt_hs256_secret, "s3cret");
    assert_string_equal(conf_kafka_get(c, "session.timeout.ms"), "6000");
    assert_string_equal(conf_template_get(c, "FAILED", "channel_id"), "errors");
    buf_t d = BUF_INIT;
    conf_dump(c, &d);
    assert_null(strstr(buf_cstr(&d), "s3cret"));
    assert_non_null(strstr(buf_cstr(&d), "auth.jwt.hs256_secret = (set)\n"));
    buf_cleanup(&d);

    char *bad[] = {"HERALD_TOKENS_TTL=7", NULL};
    assert_int_equal(conf_apply_env(c, bad, err, sizeof err), -1);
    assert_string_equal(err, "env HERALD_TOKENS_TTL: no configuration key has this name");
    char *bad2[] = {"HERALD_TOKENS_TTL_DAYS=x", NULL};
    assert_int_equal(conf_apply_env(c, bad2, err, sizeof err), -1);
    assert_string_equal(
        err, "env HERALD_TOKENS_TTL_DAYS: tokens.ttl_days: expected an integer, got \"x\"");
    conf_destroy(c);
}

/* templates.[<locale>.]<STATUS>.<field>: locales are BCP 47 tags, the rich fields are known, and
 * HERALD_TEMPLATES_<LOCALE>_<STATUS>_<FIELD> names them from the environment. */
static void test_template_keys(void **state)
{
    (void)state;
    char err[512] = "";
    conf_t *c = conf_create();
    const char *text = "templates.fr.COMPLETED.title = Prête !\n"
                       "templates.pt-BR.BATCH_COMPLETED.body = Todas as {count} fotos\n"
                       "templates.zh-Hant-TW.FAILED.subtitle = x\n"
                       "templates.COMPLETED.image = https://cdn.example.com/{finalS3Key}\n"
                       "templates.COMPLETED.mutable_content = true\n"
                       "templates.FAILED.interruption_level = time-sensitive\n"
                       "templates.default_locale = en-GB\n"
                       "auth.mode = trusted-header\n";
    assert_int_equal(load(c, text, err, sizeof err), 0);
    assert_string_equal(conf_template_get(c, "fr.COMPLETED", "title"), "Prête !");
    assert_string_equal(conf_template_get(c, "pt-BR.BATCH_COMPLETED", "body"),
                        "Todas as {count} fotos");
    assert_string_equal(conf_template_get(c, "COMPLETED", "mutable_content"), "true");
    assert_string_equal(c->templates_default_locale, "en-GB");
    assert_int_equal(conf_validate(c, err, sizeof err), 0);
    conf_destroy(c);

    static const struct bad cases[] = {
        {"templates.pt_BR.COMPLETED.title = x\n",
         "t.conf:1: templates.pt_BR.COMPLETED.title: \"pt_BR\" is not a BCP 47 language tag"},
        {"templates.fr.COMPLETED.colour = x\n",
         "t.conf:1: templates.fr.COMPLETED.colour: expected"},
        {"templates.fr.x.y.title = x\n", "t.conf:1: templates.fr.x.y.title: expected"},
        {"templates.fr..title = x\n", "t.conf:1: templates.fr..title: expected"},
        {"templates.COMPLETED.threadId = x\n", "t.conf:1: templates.COMPLETED.threadId: expected"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        c = conf_create();
        assert_int_equal(load(c, cases[i].text, err, sizeof err), -1);
        if (strncmp(err, cases[i].err, strlen(cases[i].err)) != 0)
            fail_msg("case %zu: got \"%s\", want prefix \"%s\"", i, err, cases[i].err);
        conf_destroy(c);
    }
    c = conf_create();
    assert_int_equal(
        load(c, "templates.default_locale = en_US\nauth.mode = trusted-header\n", err, sizeof err),
        0);
    assert_int_equal(conf_validate(c, err, sizeof err), -1);
    assert_string_equal(
        err,
        "config: templates.default_locale: \"en_US\" is not a BCP 47 language tag (such as en)");
    conf_destroy(c);

    c = conf_create();
    char *env[] = {"HERALD_TEMPLATES_PT_BR_COMPLETED_TITLE=Pronta!",
                   "HERALD_TEMPLATES_FR_BATCH_COMPLETED_BODY=Lot",
                   "HERALD_TEMPLATES_BATCH_COMPLETED_BODY=Batch",
                   "HERALD_TEMPLATES_COMPLETED_MUTABLE_CONTENT=true",
                   "HERALD_TEMPLATES_ZH_HANT_FAILED_CONTENT_AVAILABLE=false",
                   "HERALD_TEMPLATES_DEFAULT_LOCALE=fr",
                   NULL};
    assert_int_equal(conf_apply_env(c, env, err, sizeof err), 0);
    assert_string_equal(conf_template_get(c, "PT-BR.COMPLETED", "title"), "Pronta!");
    assert_string_equal(conf_template_get(c, "FR.BATCH_COMPLETED", "body"), "Lot");
    assert_string_equal(conf_template_get(c, "BATCH_COMPLETED", "body"), "Batch");
    assert_string_equal(conf_template_get(c, "COMPLETED", "mutable_content"), "true");
    assert_string_equal(conf_template_get(c, "ZH-HANT.FAILED", "content_available"), "false");
    assert_string_equal(c->templates_default_locale, "fr");
    conf_destroy(c);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* `include = path`: relative to the including file's folder, nested at most 4 deep, errors name
 * both places. */
static void test_include(void **state)
{
    (void)state;
    char dir[] = "/tmp/herald-conf-XXXXXX", path[256], sub[256], err[1024] = "";
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/sub", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(path, sizeof path, "%s/sub/texts.conf", dir);
    write_text(path, "templates.fr.COMPLETED.title = Prête !\ntokens.ttl_days = 5\n");
    snprintf(path, sizeof path, "%s/main.conf", dir);
    write_text(path, "tokens.ttl_days = 7\ninclude = sub/texts.conf\nhttp.listen = 0.0.0.0:1\n");
    conf_t *c = conf_create();
    assert_int_equal(conf_load_file(c, path, err, sizeof err), 0);
    assert_string_equal(conf_template_get(c, "fr.COMPLETED", "title"), "Prête !");
    assert_int_equal(c->tokens_ttl_days, 5); /* the lines count where the include stands */
    assert_string_equal(c->http_listen, "0.0.0.0:1");
    assert_string_equal(c->path, path); /* the top file, for reloads */
    conf_destroy(c);

    snprintf(path, sizeof path, "%s/sub/texts.conf", dir);
    write_text(path, "# texts\ntemplates.fr.COMPLETED.colour = x\n");
    snprintf(path, sizeof path, "%s/main.conf", dir);
    c = conf_create();
    assert_int_equal(conf_load_file(c, path, err, sizeof err), -1);
    char want[512];
    snprintf(want, sizeof want,
             "%s/main.conf:2: %s/sub/texts.conf:2: templates.fr.COMPLETED.colour", dir, dir);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("got \"%s\", want prefix \"%s\"", err, want);
    conf_destroy(c);

    write_text(path, "include = missing.conf\n");
    c = conf_create();
    assert_int_equal(conf_load_file(c, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s/main.conf:1: %s/missing.conf: No such file", dir, dir);
    assert_int_equal(strncmp(err, want, strlen(want)), 0);
    conf_destroy(c);

    write_text(path, "include = main.conf\n"); /* itself */
    c = conf_create();
    assert_int_equal(conf_load_file(c, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "include: more than 4 nested includes"));
    conf_destroy(c);

    write_text(path, "include =\n");
    c = conf_create();
    assert_int_equal(conf_load_file(c, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "main.conf:1: include: expected a file name"));
    conf_destroy(c);

    /* Not a key: the environment cannot include. */
    char *env[] = {"HERALD_INCLUDE=/etc/passwd", NULL};
    c = conf_create();
    assert_int_equal(conf_apply_env(c, env, err, sizeof err), -1);
    conf_destroy(c);

    snprintf(path, sizeof path, "%s/main.conf", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/sub/texts.conf", dir);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}

static void test_secret_keys(void **state)
{
    (void)state;
    static const char *const secret[] = {"auth.jwt.hs256_secret",
                                         "expo.access_token",
                                         "kafka.sasl.password",
                                         "kafka.ssl.key.password",
                                         "kafka.ssl.key.pem",
                                         "kafka.ssl_key",
                                         "kafka.ssl.keystore.password",
                                         "kafka.sasl.oauthbearer.config",
                                         "kafka.sasl.oauthbearer.client.secret",
                                         NULL};
    static const char *const plain[] = {"redis.url",
                                        "redis.password_file",
                                        "auth.jwt.hs256_secret_file",
                                        "expo.access_token_file",
                                        "kafka.bootstrap.servers",
                                        "kafka.sasl.username",
                                        "kafka.ssl.certificate.pem",
                                        "kafka.sasl.oauthbearer.token.endpoint.url",
                                        "templates.FAILED.body",
                                        "no.such.key",
                                        NULL};
    for (size_t i = 0; secret[i]; i++)
        if (!conf_key_secret(secret[i]))
            fail_msg("%s should be secret", secret[i]);
    for (size_t i = 0; plain[i]; i++)
        if (conf_key_secret(plain[i]))
            fail_msg("%s should not be secret", plain[i]);
}

/* Every way a secret can enter the configuration, then the dump shows none of them. */
static void test_dump_hides_secrets(void **state)
{
    (void)state;
    char err[512] = "";
    conf_t *c = loaded("redis.url = redis://alice:s3cretR@10.0.0.1:6380/2\n"
                       "expo.url = https://u:s3cretU@exp.host\n"
                       "expo.access_token = s3cretX\n"
                       "kafka.bootstrap.servers = b1:9092\n"
                       "kafka.sasl.username = herald\n"
                       "kafka.ssl.key.pem = s3cretP\n"
                       "kafka.ssl.keystore.password = s3cretK\n"
                       "kafka.sasl.oauthbearer.config = principal=x secret=s3cretO\n"
                       "kafka.sasl.oauthbearer.token.endpoint.url = https://idp:s3cretI@idp/t\n"
                       "templates.FAILED.body = mail me@x.org or see https://a.b/@c\n");
    char *env[] = {"HERALD_KAFKA_SASL_PASSWORD=s3cretS", "HERALD_KAFKA_SSL_KEY_PASSWORD=s3cretQ",
                   "HERALD_AUTH_JWT_HS256_SECRET=s3cretJ", NULL};
    assert_int_equal(conf_apply_env(c, env, err, sizeof err), 0);
    buf_t d = BUF_INIT;
    conf_dump(c, &d);
    const char *out = buf_cstr(&d);
    if (strstr(out, "s3cret"))
        fail_msg("a secret in the dump:\n%s", out);
    static const char *const want[] = {
        "redis.url = redis://alice:***@10.0.0.1:6380/2\n",
        "expo.url = https://u:***@exp.host\n",
        "expo.access_token = (set)\n",
        "auth.jwt.hs256_secret = (set)\n",
        "kafka.bootstrap.servers = b1:9092\n",
        "kafka.sasl.username = herald\n",
        "kafka.ssl.key.pem = (set)\n",
        "kafka.ssl.keystore.password = (set)\n",
        "kafka.sasl.oauthbearer.config = (set)\n",
        "kafka.sasl.password = (set)\n",
        "kafka.ssl.key.password = (set)\n",
        "kafka.sasl.oauthbearer.token.endpoint.url = https://idp:***@idp/t\n",
        "templates.FAILED.body = mail me@x.org or see https://a.b/@c\n", /* not a URL setting */
        "redis.password_file = \n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out, want[i]))
            fail_msg("missing \"%s\" in:\n%s", want[i], out);
    char tmp[64];
    assert_string_equal(conf_display_value("kafka.sasl.password", "", tmp, sizeof tmp), "");
    assert_string_equal(conf_display_value("redis.url", "redis://h", tmp, sizeof tmp), "redis://h");
    buf_cleanup(&d);
    conf_destroy(c);
}

/* A value that fails to parse is echoed in the error, with its password hidden. */
static void test_errors_hide_secrets(void **state)
{
    (void)state;
    char err[512] = "";
    conf_t *c = conf_create();
    assert_int_equal(load(c, "\nredis.url = rediss://:s3cret@h:6380/0\n", err, sizeof err), -1);
    assert_string_equal(err, "t.conf:2: redis.url: expected an http(s)://, redis:// or unix:// "
                             "URL, got \"rediss://:***@h:6380/0\"");
    char *env[] = {"HERALD_REDIS_URL=redis:/:s3cret@h", NULL};
    assert_int_equal(conf_apply_env(c, env, err, sizeof err), -1);
    assert_null(strstr(err, "s3cret"));
    assert_non_null(strstr(err, "env HERALD_REDIS_URL: redis.url: expected"));
    char *env2[] = {"HERALD_EXPO_URL=ftp://bob:s3cret@exp.host", NULL};
    assert_int_equal(conf_apply_env(c, env2, err, sizeof err), -1);
    assert_non_null(strstr(err, "got \"ftp://bob:***@exp.host\""));
    conf_destroy(c);
}

static void test_validate(void **state)
{
    (void)state;
    char err[512] = "";
    conf_t *c = conf_create();
    assert_int_equal(conf_validate(c, err, sizeof err), -1);
    assert_non_null(strstr(err, "auth.mode = jwt needs"));
    assert_int_equal(load(c, "auth.jwt.hs256_secret_file = /x\n", err, sizeof err), 0);
    assert_int_equal(conf_validate(c, err, sizeof err), 0);
    assert_int_equal(
        load(c, "kafka.embedded = true\nkafka.bootstrap.servers = h:9092\n", err, sizeof err), 0);
    assert_int_equal(conf_validate(c, err, sizeof err), -1);
    assert_non_null(strstr(err, "kafka.embedded = true cannot be combined"));
    conf_destroy(c);
}

/* redis.cluster and redis.cluster_seeds: the defaults, the environment, and what validation
 * refuses. */
static void test_redis_cluster_keys(void **state)
{
    (void)state;
    char err[512] = "";
    conf_t *c = loaded("auth.jwt.hs256_secret_file = /x\n");
    assert_false(c->redis_cluster);
    assert_string_equal(c->redis_cluster_seeds, "");
    char *env[] = {"HERALD_REDIS_CLUSTER=true", NULL};
    assert_int_equal(conf_apply_env(c, env, err, sizeof err), 0);
    assert_true(c->redis_cluster);
    assert_int_equal(conf_validate(c, err, sizeof err), 0); /* the default URL names database 0 */
    static const struct {
        const char *text, *error;
    } cases[] = {
        {"redis.cluster_seeds = 10.0.0.2:7000, 10.0.0.3:7000 ,[::1]:7001\n", NULL},
        {"redis.url = redis://:pw@10.0.0.1:7000\n", NULL},
        {"redis.url = redis://10.0.0.1:7000/\n", NULL},
        {"redis.url = redis://10.0.0.1:7000/2\n", "needs a redis:// URL with database 0"},
        {"redis.url = unix:///run/redis.sock\n", "needs a redis:// URL with database 0"},
        {"redis.cluster_seeds = 10.0.0.2\n", "\"10.0.0.2\" is not host:port"},
        {"redis.cluster_seeds = a:1,,b:2\n", "\"\" is not host:port"},
        {"redis.cluster_seeds = a:0\n", "\"a:0\" is not host:port"},
        {"redis.cluster_seeds = u@a:1\n", "is not host:port"},
        {"redis.cluster_seeds = a:70000\n", "is not host:port"},
        {"redis.cluster_seeds = a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1\n",
         "up to 15 entries"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        conf_t *k = loaded("auth.jwt.hs256_secret_file = /x\nredis.cluster = yes\n");
        assert_int_equal(load(k, cases[i].text, err, sizeof err), 0);
        int rc = conf_validate(k, err, sizeof err);
        if (cases[i].error == NULL && rc != 0)
            fail_msg("%s: %s", cases[i].text, err);
        if (cases[i].error && (rc == 0 || !strstr(err, cases[i].error)))
            fail_msg("%s: got \"%s\", want \"%s\"", cases[i].text, rc ? err : "ok", cases[i].error);
        conf_destroy(k);
    }
    conf_t *s = loaded("auth.jwt.hs256_secret_file = /x\nredis.cluster_seeds = a:1\n");
    assert_int_equal(conf_validate(s, err, sizeof err), -1);
    assert_non_null(strstr(err, "redis.cluster_seeds is set but redis.cluster = false"));
    conf_destroy(s);
    conf_destroy(c);
}

static void test_listen_parse(void **state)
{
    (void)state;
    char host[64];
    int port;
    assert_int_equal(conf_parse_listen("[::1]:9090", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9090);
    assert_int_equal(conf_parse_listen("127.0.0.1:0", host, sizeof host, &port), 0);
    assert_int_equal(port, 0);
    assert_int_equal(conf_parse_listen(":80", host, sizeof host, &port), -1);
    assert_int_equal(conf_parse_listen("h:", host, sizeof host, &port), -1);
}

/* config/herald.conf documents every key with its default, and loads cleanly. */
static void test_shipped_files(void **state)
{
    (void)state;
    char path[1024], err[512];
    const char *src = getenv("HERALD_TEST_SOURCE_DIR");
    assert_non_null(src);
    snprintf(path, sizeof path, "%s/config/herald.conf", src);
    conf_t *c = conf_create();
    assert_int_equal(conf_load_file(c, path, err, sizeof err), 0);
    conf_t *d = conf_create();
    buf_t shipped = BUF_INIT, defaults = BUF_INIT;
    conf_dump(c, &shipped);
    conf_dump(d, &defaults);
    assert_string_equal(buf_cstr(&shipped), buf_cstr(&defaults));
    /* every key appears literally in the file */
    FILE *f = fopen(path, "r");
    char text[32768];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    const char *p = buf_cstr(&defaults);
    while (*p) {
        char key[128];
        size_t kl = strcspn(p, " ");
        snprintf(key, sizeof key, "\n%.*s =", (int)kl, p);
        if (strstr(text, key) == NULL)
            fail_msg("config/herald.conf does not document %s", key + 1);
        p = strchr(p, '\n') + 1;
    }
    buf_cleanup(&shipped);
    buf_cleanup(&defaults);
    conf_destroy(c);
    conf_destroy(d);
    c = conf_create();
    snprintf(path, sizeof path, "%s/config/dev.conf", src);
    assert_int_equal(conf_load_file(c, path, err, sizeof err), 0);
    assert_int_equal(conf_validate(c, err, sizeof err), 0);
    /* dev.conf includes the example texts (config/templates.example.conf) */
    assert_string_equal(conf_template_get(c, "fr.COMPLETED", "title"), "Photo Editor - Prête !");
    assert_string_equal(conf_template_get(c, "pt.COMPLETED", "title"), "Photo Editor - Pronta!");
    conf_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_syntax),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_long_line_and_nul),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_template_keys),
        cmocka_unit_test(test_include),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_redis_cluster_keys),
        cmocka_unit_test(test_listen_parse),
        cmocka_unit_test(test_shipped_files),
        cmocka_unit_test(test_secret_keys),
        cmocka_unit_test(test_dump_hides_secrets),
        cmocka_unit_test(test_errors_hide_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
