/* test_secrets.c - passwords and secret settings never reach any output of the real binaries:
 * `herald --check-config` (the dump and the parse errors), heraldctl's errors and check-config
 * verdicts, and a running herald's log and /metrics while Redis refuses its password. A real
 * redis-server with an ACL user checks that the redacted URL is only what is shown: the password
 * itself still reaches Redis. Every secret below contains "s3cret"; no output may. */
#include "tests/support/harness.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

static th_redis_t rs;
static char dir[256];

static int group_setup(void **state)
{
    (void)state;
    if (th_redis_start(&rs, 0) != 0 || th_tmpdir(dir, sizeof dir) != 0)
        return -1;
    /* a user with a password; the default user stays open for the harness */
    char *r = th_redis_cmd(&rs, "ACL SETUSER herald on >s3cret-acl ~* &* +@all");
    int ok = r && strcmp(r, "OK") == 0;
    free(r);
    return ok ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    th_redis_stop(&rs);
    return 0;
}

/* Runs `env <envs> <bin> <args> 2>&1` and returns the exit code; the output goes to out. */
static int run(buf_t *out, const char *envs, const char *bin, const char *args)
{
    buf_t cmd = BUF_INIT;
    buf_printf(&cmd, "env %s %s/%s %s 2>&1", envs ? envs : "", th_bin_dir(), bin, args);
    buf_reset(out);
    FILE *p = popen(buf_cstr(&cmd), "r");
    buf_cleanup(&cmd);
    if (p == NULL)
        return -1;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, p)) > 0)
        buf_append(out, tmp, n);
    int st = pclose(p);
    buf_cstr(out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void no_secret(const buf_t *out, const char *what)
{
    if (out->data && strstr(out->data, "s3cret"))
        fail_msg("%s shows a secret:\n%s", what, out->data);
}

static void has(const buf_t *out, const char *needle)
{
    if (!out->data || !strstr(out->data, needle))
        fail_msg("expected \"%s\" in:\n%s", needle, out->data ? out->data : "");
}

/* run() that must exit with want and show no secret (what names the run in a failure). */
static void expect_run(buf_t *out, const char *envs, const char *bin, const char *args, int want,
                       const char *what)
{
    int got = run(out, envs, bin, args);
    if (got != want)
        fail_msg("%s: exit %d, want %d:\n%s", what, got, want, buf_cstr(out));
    no_secret(out, what);
}

/* The URL of the ACL user herald with this password on the test's Redis. */
static const char *acl_url(const char *password)
{
    static char url[128];
    snprintf(url, sizeof url, "redis://herald:%s@127.0.0.1:%d/0", password, rs.port);
    return url;
}

/* A config with every kind of secret; redis.url as given. Returns the path (static). */
static const char *write_conf(const char *name, const char *redis_url)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "redis.url = %s\n"
            "redis.timeout_ms = 300\n"
            "auth.mode = trusted-header\n"
            "expo.url = http://expo:s3cret-expo@127.0.0.1:1\n"
            "expo.access_token = s3cret-token\n"
            "kafka.bootstrap.servers = 127.0.0.1:1\n"
            "kafka.security.protocol = SASL_PLAINTEXT\n"
            "kafka.sasl.mechanisms = PLAIN\n"
            "kafka.sasl.username = herald\n"
            "kafka.sasl.password = s3cret-sasl\n"
            "kafka.ssl.key.password = s3cret-keypw\n"
            "kafka.ssl.keystore.password = s3cret-store\n"
            "kafka.sasl.oauthbearer.config = principal=herald s3cret-oauth\n"
            "runtime.dir = %s/run\n",
            redis_url, dir);
    fclose(f);
    return path;
}

/* "--config <write_conf(name, redis_url)> <rest>" (static). */
static const char *conf_args(const char *name, const char *redis_url, const char *rest)
{
    static char args[700];
    snprintf(args, sizeof args, "--config %s %s", write_conf(name, redis_url), rest);
    return args;
}

static void test_check_config(void **state)
{
    (void)state;
    buf_t out = BUF_INIT;
    const char *url = acl_url("s3cret-acl"), *args = conf_args("a.conf", url, "--check-config");
    expect_run(&out, NULL, "herald", args, 0, "herald --check-config");
    has(&out, "redis.url = redis://herald:***@127.0.0.1:");
    has(&out, "expo.url = http://expo:***@127.0.0.1:1\n");
    has(&out, "kafka.sasl.password = (set)\n");
    has(&out, "kafka.sasl.username = herald\n");
    has(&out, "# configuration OK");

    /* the repro: the URL from the environment */
    expect_run(&out, "HERALD_REDIS_URL=redis://:s3cret@127.0.0.1:6379/0", "herald", args, 0,
               "herald --check-config with HERALD_REDIS_URL");
    has(&out, "redis.url = redis://:***@127.0.0.1:6379/0\n");

    /* parse errors echo the value, without its password */
    expect_run(&out, "HERALD_REDIS_URL=rediss://:s3cret@127.0.0.1:6379/0", "herald", args, 1,
               "herald's configuration error");
    has(&out, "got \"rediss://:***@127.0.0.1:6379/0\"");
    expect_run(&out, "HERALD_REDIS_URL=rediss://:s3cret@h", "heraldctl",
               conf_args("a.conf", url, "tokens count"), 2, "heraldctl's configuration error");
    has(&out, "rediss://:***@h");
    buf_cleanup(&out);
}

static void test_heraldctl(void **state)
{
    (void)state;
    buf_t out = BUF_INIT;
    /* the right password: heraldctl works, so the password itself reached Redis */
    const char *url = acl_url("s3cret-acl");
    expect_run(&out, NULL, "heraldctl", conf_args("ok.conf", url, "tokens count"), 0,
               "heraldctl tokens count");

    /* Kafka and Expo are closed ports */
    expect_run(&out, NULL, "heraldctl", conf_args("ok.conf", url, "check-config --timeout 1s"), 3,
               "heraldctl check-config");
    has(&out, "redis://herald:***@127.0.0.1:");
    has(&out, "answered PING");
    has(&out, "http://expo:***@127.0.0.1:1");
    expect_run(&out, NULL, "heraldctl",
               conf_args("ok.conf", url, "check-config --timeout 1s --json"), 3,
               "heraldctl check-config --json");

    /* Redis refuses the password: the error names the server, not the password */
    url = acl_url("s3cret-wrong");
    expect_run(&out, NULL, "heraldctl", conf_args("wrong.conf", url, "tokens count"), 3,
               "heraldctl with a wrong password");
    has(&out, "heraldctl: redis unavailable at redis://herald:***@127.0.0.1:");
    has(&out, "WRONGPASS");

    /* nobody listening */
    char down[128];
    snprintf(down, sizeof down, "redis://:s3cret@127.0.0.1:%d/0", th_free_port());
    url = down;
    expect_run(&out, NULL, "heraldctl", conf_args("down.conf", url, "tokens count"), 3,
               "heraldctl with Redis down");
    has(&out, "redis unavailable at redis://:***@127.0.0.1:");
    expect_run(&out, NULL, "heraldctl", conf_args("down.conf", url, "check-config --timeout 1s"), 3,
               "heraldctl check-config with Redis down");
    buf_cleanup(&out);
}

static void slurp(const char *path, buf_t *b)
{
    buf_reset(b);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(b, tmp, n);
    fclose(f);
    buf_cstr(b);
}

/* A running herald whose Redis password is wrong logs the refusal and serves /metrics; then a
 * reload with a broken URL logs the parse error. None of it shows a secret. */
static void test_daemon_logs_and_metrics(void **state)
{
    (void)state;
    char text[1024];
    snprintf(text, sizeof text,
             "http.listen = 127.0.0.1:0\n"
             "admin.listen = 127.0.0.1:0\n"
             "redis.url = redis://herald:s3cret-wrong@127.0.0.1:%d/0\n"
             "redis.timeout_ms = 300\n"
             "auth.mode = trusted-header\n"
             "expo.access_token = s3cret-token\n"
             "kafka.sasl.password = s3cret-sasl\n"
             "log.level = debug\n"
             "shutdown.timeout_s = 2\n"
             "runtime.dir = %s/drun\n",
             rs.port, dir);
    th_herald_t h = {0};
    assert_int_equal(th_herald_start(&h, text, NULL), 0);
    assert_true(th_wait_file_contains(h.log, "WRONGPASS", NULL, 0, 10000));
    char url[256];
    th_resp_t r = {0};
    th_herald_url(&h, true, "/metrics", url, sizeof url);
    assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    if (strstr(buf_cstr(&r.body), "s3cret"))
        fail_msg("/metrics shows a secret:\n%s", buf_cstr(&r.body));
    th_resp_cleanup(&r);

    FILE *f = fopen(h.conf, "a");
    fprintf(f, "redis.url = rediss://:s3cret-reload@127.0.0.1:%d/0\n", rs.port);
    fclose(f);
    kill(h.proc.pid, SIGHUP);
    assert_true(th_wait_file_contains(h.log, "reload failed", NULL, 0, 10000));
    assert_int_equal(th_herald_stop(&h, SIGTERM), 0);

    buf_t log = BUF_INIT;
    slurp(h.log, &log);
    no_secret(&log, "herald's log");
    has(&log, "rediss://:***@127.0.0.1:");
    buf_cleanup(&log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_config),
        cmocka_unit_test(test_heraldctl),
        cmocka_unit_test(test_daemon_logs_and_metrics),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
