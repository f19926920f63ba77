/* test_expo_http.c - the Expo client with its real libcurl transport against a small HTTP server
 * on loopback (libmicrohttpd in a thread) that answers like Expo and injects faults: 5xx HTML
 * pages, connections dropped after the request was read, slow replies past the timeout, refused
 * connections. The server records every message it accepted, so the test asserts nothing is
 * lost and nothing arrives twice unless the client reported the message as ambiguous. */
#include "core/xalloc.h"
#include "expo/expo.h"
#include "expo/proto.h"
#include "expo/transport.h"
#include "tests/expo/client_opts.h"
#include "tests/support/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/expo/mhd_body.h"

#define NMAX 2000

enum { F_NONE, F_MIX, F_SLOW_FIRST };

typedef struct srv {
    struct MHD_Daemon *d;
    int port;
    int fault;
    pthread_mutex_t mu;
    int nreq;
    int seen[NMAX]; /* times the server accepted message i */
    int gzip_reqs, bad_headers;
} srv_t;

static int token_index(const char *to)
{
    const char *p = strchr(to ? to : "", '[');
    return p ? atoi(p + 2) : -1; /* ExponentPushToken[n<i>] */
}

/* Records the messages and returns the tickets body. */
static void accept_all(srv_t *s, json_t *arr, buf_t *out)
{
    buf_puts(out, "{\"data\":[");
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        int k = token_index(json_string_value(json_object_get(m, "to")));
        if (k >= 0 && k < NMAX)
            s->seen[k]++;
        buf_printf(out, "%s{\"status\":\"ok\",\"id\":\"id-%d\"}", i ? "," : "", k);
    }
    buf_puts(out, "]}");
}

static enum MHD_Result reply(struct MHD_Connection *con, unsigned st, const char *body,
                             const char *ctype)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body,
                                                             MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "content-type", ctype);
    enum MHD_Result rc = MHD_queue_response(con, st, r);
    MHD_destroy_response(r);
    return rc;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static enum MHD_Result serve(srv_t *s, struct MHD_Connection *con, const buf_t *body)
{
    const char *ct = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "content-type");
    const char *ac = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "accept");
    buf_t plain = BUF_INIT;
    pthread_mutex_lock(&s->mu);
    int k = s->nreq++;
    if (!ct || strcmp(ct, "application/json") != 0 || !ac || strcmp(ac, "application/json") != 0)
        s->bad_headers++;
    if (mhd_body_plain(con, body, &plain))
        s->gzip_reqs++;
    json_t *arr = json_loadb(buf_cstr(&plain), plain.len, 0, NULL);
    buf_t out = BUF_INIT;
    unsigned st = 200;
    int what = s->fault == F_MIX ? k % 4 : 3;
    if (s->fault == F_SLOW_FIRST && k == 0)
        what = 4;
    if (!json_is_array(arr) || json_array_size(arr) > 100) {
        st = 400;
        buf_puts(&out, "{\"errors\":[{\"code\":\"VALIDATION_ERROR\",\"message\":\"bad\"}]}");
    } else if (what == 0) {
        st = 502;
        buf_puts(&out, "<html><body><h1>502 Bad Gateway</h1></body></html>");
    } else if (what == 1) {
        accept_all(s, arr, &out); /* accepted, then the connection dies */
        st = 0;
    } else if (what == 2) {
        buf_puts(&out, "{\"data\":[{\"status\":\"ok\""); /* truncated JSON: not accepted */
    } else {
        accept_all(s, arr, &out);
    }
    pthread_mutex_unlock(&s->mu);
    if (what == 4)
        sleep_ms(800); /* past the client's timeout; the messages were accepted */
    json_decref(arr);
    buf_cleanup(&plain);
    enum MHD_Result rc =
        st ? reply(con, st, buf_cstr(&out), st == 502 ? "text/html" : "application/json") : MHD_NO;
    buf_cleanup(&out);
    return rc;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *con, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *size, void **con_cls)
{
    (void)version;
    srv_t *s = cls;
    buf_t *body;
    if (!mhd_body_gather(con_cls, data, size, &body))
        return MHD_YES;
    if (strcmp(method, "POST") != 0 || strcmp(url, "/--/api/v2/push/send") != 0)
        return reply(con, 404, "not found", "text/plain");
    return serve(s, con, body);
}

static void done_cb(void *cls, struct MHD_Connection *con, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)con;
    (void)toe;
    mhd_body_free(con_cls);
}

static void srv_start(srv_t *s, int fault)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->fault = fault;
    s->port = th_free_port();
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD,
                            (uint16_t)s->port, NULL, NULL, handler, s, MHD_OPTION_NOTIFY_COMPLETED,
                            done_cb, s, MHD_OPTION_END);
    assert_non_null(s->d);
}

static void srv_stop(srv_t *s)
{
    MHD_stop_daemon(s->d);
    pthread_mutex_destroy(&s->mu);
}

typedef struct run {
    uv_loop_t loop;
    expo_client_t *c;
    int calls[NMAX];
    expo_outcome_t oc[NMAX];
    bool amb[NMAX];
    char err[NMAX][32];
    size_t done;
} run_t;

static run_t *R;

static void on_res(const expo_result_t *r, void *arg)
{
    size_t i = (size_t)(uintptr_t)arg;
    R->calls[i]++;
    R->oc[i] = r->outcome;
    R->amb[i] = r->ambiguous;
    snprintf(R->err[i], sizeof R->err[i], "%s", r->error ? r->error : "");
    R->done++;
}

static void run_client(run_t *r, int port, size_t n, long timeout_ms, long max_attempts)
{
    R = r;
    uv_loop_init(&r->loop);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    expo_opts_t o = tx_client_opts(url, 0);
    o.max_attempts = max_attempts;
    o.backoff_base_ms = 5;
    o.backoff_cap_ms = 50;
    o.timeout_ms = timeout_ms;
    char err[128];
    r->c = expo_client_create(&r->loop, &o, NULL, err, sizeof err);
    assert_non_null(r->c);
    for (size_t i = 0; i < n; i++) {
        char tok[48];
        expo_msg_t m = tx_msg(tok, sizeof tok, "n%zu", i);
        m.body = "Your enhanced photo is ready to download";
        m.collapse_id = tok;
        expo_send(r->c, &m, on_res, (void *)(uintptr_t)i);
    }
    while (r->done < n)
        uv_run(&r->loop, UV_RUN_ONCE);
    expo_client_destroy(r->c);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
}

static void test_plain_send(void **state)
{
    (void)state;
    srv_t s;
    srv_start(&s, F_NONE);
    run_t *r = xcalloc(1, sizeof *r);
    run_client(r, s.port, 250, 5000, 6);
    for (size_t i = 0; i < 250; i++) {
        assert_int_equal(r->calls[i], 1);
        assert_int_equal(r->oc[i], EXPO_OK);
        assert_int_equal(s.seen[i], 1);
    }
    assert_int_equal(s.nreq, 3);
    assert_int_equal(s.gzip_reqs, 3);
    assert_int_equal(s.bad_headers, 0);
    free(r);
    srv_stop(&s);
}

static void test_faults(void **state)
{
    (void)state;
    srv_t s;
    srv_start(&s, F_MIX);
    run_t *r = xcalloc(1, sizeof *r);
    run_client(r, s.port, 1000, 5000, 20);
    size_t amb = 0, dup = 0;
    for (size_t i = 0; i < 1000; i++) {
        assert_int_equal(r->calls[i], 1);
        assert_int_equal(r->oc[i], EXPO_OK); /* nothing lost */
        assert_true(s.seen[i] >= 1);
        if (s.seen[i] > 1) {
            dup++;
            assert_true(r->amb[i]); /* a duplicate only where the client said it may be one */
        }
        amb += r->amb[i];
    }
    print_message("faults: %d requests, %zu ambiguous messages, %zu delivered twice\n", s.nreq, amb,
                  dup);
    assert_true(s.nreq > 10);
    assert_true(amb > 0);
    free(r);
    srv_stop(&s);
}

static void test_timeout_is_ambiguous(void **state)
{
    (void)state;
    srv_t s;
    srv_start(&s, F_SLOW_FIRST);
    run_t *r = xcalloc(1, sizeof *r);
    run_client(r, s.port, 5, 300, 6);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(r->oc[i], EXPO_OK);
        assert_true(r->amb[i]);
        assert_int_equal(s.seen[i], 2); /* the slow first copy was accepted too */
    }
    free(r);
    srv_stop(&s);
}

static void test_connection_refused(void **state)
{
    (void)state;
    run_t *r = xcalloc(1, sizeof *r);
    run_client(r, th_free_port(), 3, 1000, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(r->oc[i], EXPO_FAILED);
        assert_string_equal(r->err[i], "RetriesExhausted");
        assert_false(r->amb[i]); /* nothing reached a server */
    }
    free(r);
}

typedef struct http_count {
    int calls;
    long status;
    expo_terr_t terr;
} http_count_t;

static void on_http(const expo_http_resp_t *resp, void *arg)
{
    http_count_t *h = arg;
    h->calls++;
    h->status = resp->status;
    h->terr = resp->terr;
}

/* A listening socket that accepts and never answers; returns its port. */
static int silent_listener(int *fd)
{
    struct sockaddr_in a = {0};
    socklen_t len = sizeof a;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*fd >= 0);
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(*fd, 16), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    fcntl(*fd, F_SETFL, O_NONBLOCK);
    return ntohs(a.sin_port);
}

/* The transport's destroy answers every request in flight, once, with EXPO_TERR_CANCELLED (it
 * used to drop them without their callbacks); nothing fires inside post or after destroy. */
static void test_transport_destroy_cancels(void **state)
{
    (void)state;
    int lfd, conns[3], nconn = 0;
    int port = silent_listener(&lfd);
    uv_loop_t loop;
    uv_loop_init(&loop);
    expo_curl_opts_t co = {4, false, 1 << 20};
    char err[128], url[64];
    expo_transport_t *t = expo_transport_curl_create(&loop, &co, err, sizeof err);
    assert_non_null(t);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/--/api/v2/push/send", port);
    const char *hdr[] = {"content-type: application/json"};
    http_count_t h[3] = {{0, 0, EXPO_TERR_NONE}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(t->post(t, url, hdr, 1, "[]", 2, 60000, on_http, &h[i]), 0);
    /* Run until curl has connected all three (bounded), holding the connections open. */
    for (int waited = 0; nconn < 3 && waited < 10000; waited += 5) {
        uv_run(&loop, UV_RUN_NOWAIT);
        struct pollfd p = {lfd, POLLIN, 0};
        if (poll(&p, 1, 5) == 1) {
            int c = accept(lfd, NULL, NULL);
            if (c >= 0)
                conns[nconn++] = c;
        }
    }
    assert_int_equal(nconn, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(h[i].calls, 0);
    t->destroy(t);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(h[i].calls, 1);
        assert_int_equal(h[i].status, 0);
        assert_int_equal(h[i].terr, EXPO_TERR_CANCELLED);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 3; i++)
        assert_int_equal(h[i].calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    for (int i = 0; i < nconn; i++)
        close(conns[i]);
    close(lfd);
}

/* The client destroyed with a request in flight on the real transport: each message's callback
 * fires once, "Shutdown". */
static void test_client_destroy_in_flight(void **state)
{
    (void)state;
    int lfd;
    int port = silent_listener(&lfd);
    run_t *r = xcalloc(1, sizeof *r);
    R = r;
    uv_loop_init(&r->loop);
    char url[64], err[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    expo_opts_t o = tx_client_opts(url, 0);
    o.backoff_base_ms = 500;
    o.backoff_cap_ms = 30000;
    o.timeout_ms = 60000;
    o.http2 = false;
    r->c = expo_client_create(&r->loop, &o, NULL, err, sizeof err);
    assert_non_null(r->c);
    for (size_t i = 0; i < 3; i++) {
        char tok[48];
        expo_msg_t m = tx_msg(tok, sizeof tok, "n%zu", i);
        m.title = "t";
        expo_send(r->c, &m, on_res, (void *)(uintptr_t)i);
    }
    int conn = -1;
    for (int waited = 0; conn < 0 && waited < 10000; waited += 5) {
        uv_run(&r->loop, UV_RUN_NOWAIT);
        struct pollfd p = {lfd, POLLIN, 0};
        if (poll(&p, 1, 5) == 1)
            conn = accept(lfd, NULL, NULL);
    }
    assert_true(conn >= 0);
    assert_int_equal(r->done, 0);
    expo_client_destroy(r->c);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(r->calls[i], 1);
        assert_int_equal(r->oc[i], EXPO_FAILED);
        assert_string_equal(r->err[i], "Shutdown");
    }
    assert_int_equal(uv_loop_close(&r->loop), 0);
    close(conn);
    close(lfd);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_send),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_timeout_is_ambiguous),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_transport_destroy_cancels),
        cmocka_unit_test(test_client_destroy_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
