/* test_db.c - the Redis client against a real redis-server: commands and replies, pipelining,
 * a burst far beyond the socket buffer, a command queued after the turn's flush, scripts surviving
 * SCRIPT FLUSH, AUTH and SELECT from the URL (TCP and unix socket), a stuck server (SIGSTOP)
 * failing commands with DB_ETIMEOUT and recovering, a killed and restarted server, callbacks never
 * running inside the issuing call, and destroy with commands pending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/metrics.h"
#include "db/db.h"
#include "tests/db/live.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WAIT_MS 10000

static db_t *open_db(tloop_t *t, const char *url, const char *password, long timeout_ms,
                     metric_reg_t *reg)
{
    char err[256];
    db_opts_t o = {.url = url, .password = password, .timeout_ms = timeout_ms, .metrics = reg};
    db_t *db = db_create(&t->loop, &o, err, sizeof err);
    assert_non_null(db);
    return db;
}

/* Waits for a command issued just now: its callback never ran inside the call, and runs once. */
static void wait_once(tloop_t *t, const tres_t *x)
{
    assert_false(x->done);
    assert_true(tloop_until(t, &x->done, WAIT_MS));
    assert_int_equal(x->calls, 1);
}

/* Runs one command to completion. */
static tres_t run(tloop_t *t, db_t *db, int argc, const char *const *argv)
{
    tres_t r = {0};
    db_command(db, tres_cb, &r, argc, argv, NULL);
    wait_once(t, &r);
    return r;
}

#define RUN(t, db, ...)                                                                            \
    run((t), (db), (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),            \
        (const char *[]){__VA_ARGS__})

static void test_basics(void **state)
{
    (void)state;
    tlive_t L = {0};
    assert_true(tlive_start(&L, 2000, NULL));
    tloop_t *t = &L.t;
    db_t *db = L.db;
    assert_false(db_ready(db));
    assert_true(tloop_until_ready(t, db, true, WAIT_MS));
    assert_string_equal(db_last_error(db), "");

    tres_t x = RUN(t, db, "SET", "k", "hello");
    assert_int_equal(x.status, DB_OK);
    assert_int_equal(x.type, DB_REPLY_STATUS);
    assert_string_equal(x.str, "OK");
    x = RUN(t, db, "GET", "k");
    assert_int_equal(x.type, DB_REPLY_STRING);
    assert_string_equal(x.str, "hello");
    x = RUN(t, db, "GET", "missing");
    assert_int_equal(x.type, DB_REPLY_NIL);
    x = RUN(t, db, "INCR", "k");
    assert_int_equal(x.status, DB_OK);
    assert_int_equal(x.type, DB_REPLY_ERROR);
    x = RUN(t, db, "RPUSH", "l", "a", "b", "c");
    assert_int_equal(x.i, 3);
    x = RUN(t, db, "LRANGE", "l", "0", "-1");
    assert_int_equal(x.type, DB_REPLY_ARRAY);
    assert_int_equal(x.n, 3);

    /* Binary-safe arguments: an embedded NUL survives the round trip. */
    const char *argv[] = {"SET", "bin", "a\0b"};
    const size_t lens[] = {3, 3, 3};
    tres_t y = {0};
    db_command(db, tres_cb, &y, 3, argv, lens);
    assert_true(tloop_until(t, &y.done, WAIT_MS));
    x = RUN(t, db, "STRLEN", "bin");
    assert_int_equal(x.i, 3);

    assert_int_equal(tlive_stop(&L), 0);
}

typedef struct pipe_state {
    int got;
    bool in_order;
    bool done;
    int total;
} pipe_state_t;

static void on_incr(int status, const db_reply_t *rep, void *arg)
{
    pipe_state_t *p = arg;
    if (status != DB_OK || db_reply_int(rep) != p->got + 1)
        p->in_order = false;
    if (++p->got == p->total)
        p->done = true;
}

static void test_pipelining(void **state)
{
    (void)state;
    tlive_t L = {0};
    assert_true(tlive_start_ready(&L, 5000, NULL));
    pipe_state_t p = {.in_order = true, .total = 20000};
    for (int i = 0; i < p.total; i++)
        db_cmd(L.db, on_incr, &p, "INCR", "counter", NULL);
    assert_int_equal(p.got, 0);
    assert_true(tloop_until(&L.t, &p.done, 30000));
    assert_true(p.in_order);
    assert_true(th_redis_expect(&L.redis, "20000", "GET counter"));
    assert_int_equal(tlive_stop(&L), 0);
}

/* One loop turn's commands leave in one write when the socket takes them (wire.c); a turn that
 * queues far more than the socket buffer holds goes out over several writable events. Binary
 * values with CR, LF and NUL inside must arrive byte for byte, and the replies in order. */
enum { BURST = 64, BURST_LEN = 256 * 1024 };

typedef struct burst {
    const char *val;
    int got;
    bool ok;
    bool done;
} burst_t;

static void on_burst(int status, const db_reply_t *rep, void *arg)
{
    burst_t *b = arg;
    size_t len = 0;
    const char *s = status == DB_OK ? db_reply_str(rep, &len) : NULL;
    int i = b->got++;
    if (i < BURST) /* the SETs */
        b->ok = b->ok && s && db_reply_type(rep) == DB_REPLY_STATUS;
    else /* the GETs: value i - BURST */
        b->ok = b->ok && s && len == BURST_LEN && memcmp(s, b->val + (i - BURST), len) == 0;
    b->done = b->got == 2 * BURST;
}

static void test_burst_beyond_socket_buffer(void **state)
{
    (void)state;
    tlive_t L = {0};
    assert_true(tlive_start_ready(&L, 5000, NULL));
    char *val = malloc(BURST_LEN + BURST);
    for (size_t i = 0; i < BURST_LEN + BURST; i++)
        val[i] = (char)(i * 13 + 10); /* every byte value, CR LF NUL included */
    burst_t b = {.val = val, .ok = true};
    char keys[BURST][16];
    for (int i = 0; i < BURST; i++) {
        snprintf(keys[i], sizeof keys[i], "burst:%d", i);
        const char *argv[] = {"SET", keys[i], val + i};
        const size_t lens[] = {3, strlen(keys[i]), BURST_LEN};
        db_command(L.db, on_burst, &b, 3, argv, lens);
    }
    for (int i = 0; i < BURST; i++)
        db_cmd(L.db, on_burst, &b, "GET", keys[i], NULL);
    assert_int_equal(b.got, 0);
    assert_true(tloop_until(&L.t, &b.done, 30000));
    assert_true(b.ok);
    free(val);
    assert_int_equal(tlive_stop(&L), 0);
}

/* A command queued in a loop turn after the connection's flush already ran (here from a prepare
 * handle started before the connection, which libuv runs after the connection's own) still goes
 * out in the next turn: the loop must not block on it. The test's tick timer is stopped, so a
 * command left unsent would meet nothing but its deadline and fail with DB_ETIMEOUT. */
typedef struct late {
    db_t *db;
    bool armed;
    tres_t res;
} late_t;

static void on_late_prepare(uv_prepare_t *h)
{
    late_t *l = h->data;
    if (!l->armed)
        return;
    l->armed = false;
    db_cmd(l->db, tres_cb, &l->res, "PING", NULL);
}

static void test_command_after_the_flush_is_sent(void **state)
{
    (void)state;
    tlive_t L = {0};
    char err[256];
    assert_int_equal(th_redis_start(&L.redis, 0), 0);
    tloop_init(&L.t);
    late_t late = {0};
    uv_prepare_t prep;
    uv_prepare_init(&L.t.loop, &prep);
    prep.data = &late;
    uv_prepare_start(&prep, on_late_prepare);
    db_opts_t o = {.url = L.redis.url, .timeout_ms = 3000};
    late.db = L.db = db_create(&L.t.loop, &o, err, sizeof err);
    assert_non_null(L.db);
    assert_true(tloop_until_ready(&L.t, L.db, true, WAIT_MS));
    for (int i = 0; i < 3; i++) { /* a command with it in each turn: one write, no trouble */
        tres_t x = RUN(&L.t, L.db, "PING");
        assert_int_equal(x.status, DB_OK);
    }
    uv_timer_stop(&L.t.tick);
    late.armed = true;
    assert_true(tloop_until(&L.t, &late.res.done, WAIT_MS));
    assert_int_equal(late.res.status, DB_OK);
    assert_string_equal(late.res.str, "PONG");
    uv_close((uv_handle_t *)&prep, NULL);
    assert_int_equal(tlive_stop(&L), 0);
}

static tres_t eval(tloop_t *t, db_t *db, db_script_t *s, const char *key, const char *arg)
{
    tres_t x = {0};
    const char *argv[] = {key, arg};
    db_eval(db, s, tres_cb, &x, 1, 2, argv, NULL);
    wait_once(t, &x);
    return x;
}

static void test_scripts_noscript_fallback(void **state)
{
    (void)state;
    tlive_t L = {0};
    assert_true(tlive_start_ready(&L, 2000, NULL));
    db_script_t *s = db_script(L.db, "redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1] .. '!'");
    assert_ptr_equal(db_script(L.db, "redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1] .. '!'"),
                     s);

    /* Never loaded: the first EVALSHA gets NOSCRIPT and is resent as EVAL. */
    tres_t x = eval(&L.t, L.db, s, "sk", "one");
    assert_int_equal(x.type, DB_REPLY_STRING);
    assert_string_equal(x.str, "one!");
    x = eval(&L.t, L.db, s, "sk", "two");
    assert_string_equal(x.str, "two!");

    assert_true(th_redis_expect(&L.redis, "OK", "SCRIPT FLUSH"));
    x = eval(&L.t, L.db, s, "sk", "three");
    assert_int_equal(x.status, DB_OK);
    assert_string_equal(x.str, "three!");
    assert_true(th_redis_expect(&L.redis, "three", "GET sk"));

    /* A script error reaches the caller as an error reply. */
    db_script_t *bad = db_script(L.db, "return redis.error_reply('BAD thing')");
    x = eval(&L.t, L.db, bad, "k", "v");
    assert_int_equal(x.type, DB_REPLY_ERROR);
    assert_non_null(strstr(x.str, "BAD thing"));

    assert_int_equal(tlive_stop(&L), 0);
}

/* redis-server with a password and a unix socket (the harness' starter has neither). */
static void start_secure_redis(th_redis_t *r, char *sock, size_t socklen)
{
    char portbuf[16], logp[600];
    assert_int_equal(th_tmpdir(r->dir, sizeof r->dir), 0);
    r->port = th_free_port();
    snprintf(portbuf, sizeof portbuf, "%d", r->port);
    snprintf(sock, socklen, "%s/redis.sock", r->dir);
    snprintf(logp, sizeof logp, "%s/redis.log", r->dir);
    char *argv[] = {"redis-server", "--port",       portbuf, "--bind",
                    "127.0.0.1",    "--save",       "",      "--appendonly",
                    "no",           "--dir",        r->dir,  "--requirepass",
                    "s3cr@t:x",     "--unixsocket", sock,    NULL};
    assert_int_equal(th_spawn(&r->proc, "redis-auth", argv, NULL, logp), 0);
    assert_true(th_wait_port(r->port, WAIT_MS));
}

/* Runs the loop until the client's last error holds needle (bounded); returns whether it does. */
static bool until_error(tloop_t *t, db_t *db, const char *needle)
{
    uint64_t deadline = clk_mono_ms() + WAIT_MS;
    while (strstr(db_last_error(db), needle) == NULL && clk_mono_ms() < deadline)
        uv_run(&t->loop, UV_RUN_ONCE);
    return strstr(db_last_error(db), needle) != NULL;
}

static bool has_db(tloop_t *t, db_t *db, const char *want)
{
    tres_t x = RUN(t, db, "CLIENT", "INFO");
    return x.type == DB_REPLY_STRING && strstr(x.str, want) != NULL;
}

static void test_auth_and_select(void **state)
{
    (void)state;
    th_redis_t r = {0};
    char sock[300], url[512];
    start_secure_redis(&r, sock, sizeof sock);
    tloop_t t;
    tloop_init(&t);

    /* Password from the URL (percent-encoded '@'), database 3. */
    snprintf(url, sizeof url, "redis://:s3cr%%40t:x@127.0.0.1:%d/3", r.port);
    db_t *db = open_db(&t, url, NULL, 2000, NULL);
    assert_true(tloop_until_ready(&t, db, true, WAIT_MS));
    assert_true(has_db(&t, db, " db=3 "));
    tres_t x = RUN(&t, db, "SET", "where", "three");
    assert_string_equal(x.str, "OK");
    db_destroy(db);

    /* Unix socket, database from the query, password from the options. */
    snprintf(url, sizeof url, "unix://%s?db=5", sock);
    db = open_db(&t, url, "s3cr@t:x", 2000, NULL);
    assert_true(tloop_until_ready(&t, db, true, WAIT_MS));
    assert_true(has_db(&t, db, " db=5 "));
    x = RUN(&t, db, "GET", "where");
    assert_int_equal(x.type, DB_REPLY_NIL); /* db 5, not 3 */
    db_destroy(db);

    /* A wrong password never becomes ready and says why; commands fail with DB_EDOWN. */
    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", r.port);
    db = open_db(&t, url, NULL, 2000, NULL);
    assert_true(until_error(&t, db, "handshake refused"));
    assert_non_null(strstr(db_last_error(db), "WRONGPASS"));
    assert_false(db_ready(db));
    x = RUN(&t, db, "PING");
    assert_int_equal(x.status, DB_EDOWN);
    db_destroy(db);

    assert_int_equal(tloop_close(&t), 0);
    th_redis_stop(&r);
}

static double metric_of(metric_reg_t *reg, const char *name, const char *kind)
{
    metric_fam_t *f =
        kind ? metric_counter_new(reg, name, "", "kind") : metric_counter_new(reg, name, "", NULL);
    return metric_value(kind ? metric_get(f, kind) : metric_get(f));
}

static void test_stuck_server_times_out_and_recovers(void **state)
{
    (void)state;
    metric_reg_t *reg = metric_reg_create();
    tlive_t L = {0};
    assert_true(tlive_start(&L, 300, reg));
    tstates_t st = {0};
    db_on_state(L.db, tstates_cb, &st);
    assert_true(tloop_until_ready(&L.t, L.db, true, WAIT_MS));
    assert_int_equal(st.ups, 1);

    assert_int_equal(kill(L.redis.proc.pid, SIGSTOP), 0);
    tres_t a = {0}, b = {0};
    db_cmd(L.db, tres_cb, &a, "SET", "x", "1", NULL);
    db_cmd(L.db, tres_cb, &b, "GET", "x", NULL);
    assert_true(tloop_until(&L.t, &b.done, WAIT_MS));
    assert_true(a.done);
    assert_int_equal(a.status, DB_ETIMEOUT);
    assert_int_equal(b.status, DB_ETIMEOUT);
    assert_false(db_ready(L.db));
    assert_int_equal(st.downs, 1);
    assert_true(metric_of(reg, "herald_redis_errors_total", "timeout") >= 1);

    /* While it is stuck, reconnects connect (the kernel accepts) but never answer: not ready. */
    tres_t c = RUN(&L.t, L.db, "PING");
    assert_int_equal(c.status, DB_EDOWN);
    assert_false(db_ready(L.db));

    assert_int_equal(kill(L.redis.proc.pid, SIGCONT), 0);
    assert_true(tloop_until_ready(&L.t, L.db, true, WAIT_MS));
    assert_int_equal(st.ups, 2);
    c = RUN(&L.t, L.db, "GET", "x");
    assert_int_equal(c.status, DB_OK);
    assert_true(metric_of(reg, "herald_redis_reconnects_total", NULL) >= 1);
    assert_int_equal(a.calls + b.calls, 2); /* the late NULL replies ran no callback */

    assert_int_equal(tlive_stop(&L), 0);
    metric_reg_destroy(reg);
}

static void test_killed_and_restarted(void **state)
{
    (void)state;
    metric_reg_t *reg = metric_reg_create();
    tlive_t L = {0};
    assert_true(tlive_start_ready(&L, 1000, reg));

    th_stop(&L.redis.proc, SIGKILL, 5000);
    assert_true(tloop_until_ready(&L.t, L.db, false, WAIT_MS));
    assert_true(metric_of(reg, "herald_redis_errors_total", "disconnect") >= 1);
    tres_t x = RUN(&L.t, L.db, "PING");
    assert_int_equal(x.status, DB_EDOWN);
    assert_true(strlen(db_last_error(L.db)) > 0);

    assert_int_equal(th_redis_start(&L.redis, L.redis.port), 0);
    assert_true(tloop_until_ready(&L.t, L.db, true, WAIT_MS));
    x = RUN(&L.t, L.db, "PING");
    assert_int_equal(x.status, DB_OK);
    assert_string_equal(x.str, "PONG");

    assert_int_equal(tlive_stop(&L), 0);
    metric_reg_destroy(reg);
}

static void test_down_at_start_fails_deferred(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", th_free_port());
    tloop_t t;
    tloop_init(&t);
    db_t *db = open_db(&t, url, NULL, 500, NULL);
    tres_t x = {0};
    db_cmd(db, tres_cb, &x, "PING", NULL);
    wait_once(&t, &x);
    assert_int_equal(x.status, DB_EDOWN);
    db_destroy(db);
    assert_int_equal(tloop_close(&t), 0);
}

static void test_destroy_fails_pending_once(void **state)
{
    (void)state;
    tlive_t L = {0};
    assert_true(tlive_start_ready(&L, 5000, NULL));
    assert_int_equal(kill(L.redis.proc.pid, SIGSTOP), 0);
    tres_t x[5] = {0};
    for (int i = 0; i < 5; i++)
        db_cmd(L.db, tres_cb, &x[i], "PING", NULL);
    uv_run(&L.t.loop, UV_RUN_NOWAIT); /* let hiredis write them */
    db_destroy(L.db);
    L.db = NULL;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(x[i].calls, 1);
        assert_int_equal(x[i].status, DB_ESHUTDOWN);
    }
    kill(L.redis.proc.pid, SIGCONT);
    assert_int_equal(tlive_stop(&L), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(x[i].calls, 1);
}

/* A server whose accept queue is full drops SYNs: the connect never completes. */
static void test_connect_timeout(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0), fill[4];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 0), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    for (int i = 0; i < 4; i++) { /* fill the queue; later connects may hang, so nonblocking */
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(a.sin_port));
    tloop_t t;
    tloop_init(&t);
    db_t *db = open_db(&t, url, NULL, 200, NULL);
    assert_true(until_error(&t, db, "timeout"));
    assert_false(db_ready(db));
    db_destroy(db);
    assert_int_equal(tloop_close(&t), 0);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_burst_beyond_socket_buffer),
        cmocka_unit_test(test_command_after_the_flush_is_sent),
        cmocka_unit_test(test_scripts_noscript_fallback),
        cmocka_unit_test(test_auth_and_select),
        cmocka_unit_test(test_stuck_server_times_out_and_recovers),
        cmocka_unit_test(test_killed_and_restarted),
        cmocka_unit_test(test_down_at_start_fails_deferred),
        cmocka_unit_test(test_destroy_fails_pending_once),
        cmocka_unit_test(test_connect_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
