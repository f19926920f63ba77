/* transport_curl.c - the Expo transport on libcurl multi with the socket API, driven by the
 * libuv loop (curl's multi-uv pattern): curl tells us which sockets to watch (socket callback ->
 * one uv_poll per socket) and when to wake it (timer callback -> one uv_timer), and we hand
 * readiness back with curl_multi_socket_action. Connections are kept alive in the multi handle's
 * cache; with http2 set, h2 is negotiated over TLS through ALPN and streams are multiplexed.
 *
 * The only file of the module that includes curl.h; CURLcode never leaves it. */
#include "core/buf.h"
#include "core/clock.h"
#include "core/list.h"
#include "core/xalloc.h"
#include "expo/transport.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct ct ct_t;

typedef struct xfer {
    list_node_t node; /* in t->xfers */
    ct_t *t;
    CURL *easy;
    struct curl_slist *hdrs;
    const char *req; /* borrowed request body */
    size_t reqlen, off;
    bool resent; /* curl rewound the body after sending some of it: may be delivered twice */
    buf_t resp;
    size_t max;
    bool too_big;
    long retry_after;
    uint64_t start_us;
    CURLMcode add_err; /* curl_multi_add_handle refused it: answered from t->refused_timer */
    expo_http_cb cb;
    void *arg;
} xfer_t;

struct ct {
    struct expo_transport base;
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    uv_timer_t refused_timer; /* answers transfers curl would not take, on the next loop turn */
    int open_handles;
    list_t xfers; /* in flight */
    bool http2;
    bool dead; /* destroy ran: stop touching the multi handle */
    size_t max_response;
    list_t socks; /* polls open */
};

typedef struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    ct_t *t;
    list_node_t node; /* in t->socks */
} sock_t;

static int curl_refs;

static void check_done(ct_t *t);

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_t *s = h->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    ct_t *t = s->t;
    if (t->dead)
        return;
    curl_multi_socket_action(t->multi, s->fd, flags, &running);
    check_done(t);
}

static void on_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static void sock_close(sock_t *s)
{
    list_remove(&s->node);
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
    (void)easy;
    ct_t *t = userp;
    sock_t *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            sock_close(s);
            curl_multi_assign(t->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = xcalloc(1, sizeof *s);
        s->fd = fd;
        s->t = t;
        if (uv_poll_init_socket(t->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        list_push_back(&t->socks, &s->node);
        curl_multi_assign(t->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *h)
{
    ct_t *t = h->data;
    int running;
    if (t->dead)
        return;
    curl_multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(t);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    ct_t *t = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&t->timer);
    else /* 0 too: curl must not be re-entered from inside its own callback */
        uv_timer_start(&t->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static size_t on_write(char *p, size_t sz, size_t n, void *ud)
{
    xfer_t *x = ud;
    size_t len = sz * n;
    if (x->resp.len + len > x->max) {
        x->too_big = true;
        return 0;
    }
    buf_append(&x->resp, p, len);
    return len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    xfer_t *x = ud;
    size_t len = sz * n;
    static const char name[] = "retry-after:";
    if (len > sizeof name && strncasecmp(p, name, sizeof name - 1) == 0) {
        char tmp[32];
        size_t vl = len - (sizeof name - 1);
        if (vl >= sizeof tmp)
            vl = sizeof tmp - 1;
        memcpy(tmp, p + sizeof name - 1, vl);
        tmp[vl] = '\0';
        char *end;
        long v = strtol(tmp, &end, 10);
        while (*end == ' ' || *end == '\r' || *end == '\n' || *end == '\t')
            end++;
        if (end != tmp && *end == '\0' && v >= 0)
            x->retry_after = v; /* HTTP-date forms are ignored: backoff applies */
    }
    return len;
}

static size_t on_read(char *p, size_t sz, size_t n, void *ud)
{
    xfer_t *x = ud;
    size_t len = sz * n, left = x->reqlen - x->off;
    if (len > left)
        len = left;
    memcpy(p, x->req + x->off, len);
    x->off += len;
    return len;
}

/* curl rewinds the body when it retries a request on a fresh connection after the reused one
 * died (HTTP/1.1) or the stream was refused (h2). If any byte had been sent, the server may have
 * the first copy: remember it so the outcome is reported as ambiguous. */
static int on_seek(void *ud, curl_off_t offset, int origin)
{
    xfer_t *x = ud;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > x->reqlen)
        return CURL_SEEKFUNC_CANTSEEK;
    if (x->off > 0)
        x->resent = true;
    x->off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static expo_terr_t map_err(CURLcode rc, bool too_big)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
        return EXPO_TERR_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return EXPO_TERR_TIMEOUT;
    case CURLE_WRITE_ERROR:
        return too_big ? EXPO_TERR_TOOLARGE : EXPO_TERR_OTHER;
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return EXPO_TERR_DROPPED;
    default:
        return EXPO_TERR_OTHER;
    }
}

static void xfer_free(ct_t *t, xfer_t *x)
{
    curl_multi_remove_handle(t->multi, x->easy);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    buf_cleanup(&x->resp);
    free(x);
}

/* Unlinks and frees x, then fires its callback with r: each transfer is answered once, here. */
static void answer(ct_t *t, xfer_t *x, expo_http_resp_t *r)
{
    r->retry_after_s = x->retry_after;
    r->seconds = (double)(clk_mono_us() - x->start_us) / 1e6;
    r->maybe_sent = r->maybe_sent || x->resent;
    r->resent = x->resent;
    r->len = x->resp.len;
    list_remove(&x->node);
    expo_http_cb cb = x->cb;
    void *arg = x->arg;
    /* the callback may post again or destroy the transport: free first, answer last */
    buf_t body = x->resp;
    x->resp = (buf_t)BUF_INIT;
    xfer_free(t, x);
    r->body = buf_cstr(&body);
    cb(r, arg);
    buf_cleanup(&body);
}

static void finish(ct_t *t, xfer_t *x, CURLcode rc)
{
    expo_http_resp_t r = {0};
    r.detail = "";
    if (rc == CURLE_OK) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r.status);
        r.maybe_sent = true;
    } else {
        curl_off_t pre = 0;
        curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
        r.terr = map_err(rc, x->too_big);
        r.maybe_sent = r.terr != EXPO_TERR_CONNECT && (pre > 0 || x->off > 0);
        r.detail = curl_easy_strerror(rc);
    }
    answer(t, x, &r);
}

/* No response: curl refused the transfer, or destroy came first (maybe_sent once curl read any
 * of the body). */
static void fail_xfer(ct_t *t, xfer_t *x, expo_terr_t terr, const char *detail)
{
    expo_http_resp_t r = {0};
    r.terr = terr;
    r.maybe_sent = x->off > 0;
    r.detail = detail;
    answer(t, x, &r);
}

static xfer_t *first_refused(const ct_t *t)
{
    for (list_node_t *n = t->xfers.head.next; n != &t->xfers.head; n = n->next)
        if (container_of(n, xfer_t, node)->add_err != CURLM_OK)
            return container_of(n, xfer_t, node);
    return NULL;
}

/* From the head each time: a callback may post, or destroy the transport. */
static void on_refused_timer(uv_timer_t *h)
{
    ct_t *t = h->data;
    xfer_t *x;
    while (!t->dead && (x = first_refused(t)) != NULL)
        fail_xfer(t, x, EXPO_TERR_OTHER, curl_multi_strerror(x->add_err));
}

static void check_done(ct_t *t)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(t->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        xfer_t *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        finish(t, x, m->data.result);
        if (t->dead)
            return;
    }
}

static void set_easy(ct_t *t, xfer_t *x, const char *url, long timeout_ms)
{
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, x);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->reqlen);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip, deflate");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "herald/" HERALD_VERSION);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     t->http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    if (t->http2)
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
}

static int ct_post(struct expo_transport *base, const char *url, const char *const *headers,
                   size_t nheaders, const void *body, size_t len, long timeout_ms, expo_http_cb cb,
                   void *arg)
{
    ct_t *t = (ct_t *)base;
    xfer_t *x = xcalloc(1, sizeof *x);
    x->t = t;
    x->easy = curl_easy_init();
    if (!x->easy)
        abort(); /* allocation failure inside libcurl */
    for (size_t i = 0; i < nheaders; i++)
        x->hdrs = curl_slist_append(x->hdrs, headers[i]);
    x->hdrs = curl_slist_append(x->hdrs, "Expect:");
    x->req = body;
    x->reqlen = len;
    x->max = t->max_response;
    x->retry_after = -1;
    x->cb = cb;
    x->arg = arg;
    x->start_us = clk_mono_us();
    set_easy(t, x, url, timeout_ms);
    list_push_back(&t->xfers, &x->node);
    x->add_err = curl_multi_add_handle(t->multi, x->easy);
    if (x->add_err != CURLM_OK) /* never answered from inside post */
        uv_timer_start(&t->refused_timer, on_refused_timer, 0, 0);
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    ct_t *t = h->data;
    if (--t->open_handles == 0)
        free(t);
}

static void ct_destroy(struct expo_transport *base)
{
    ct_t *t = (ct_t *)base;
    t->dead = true; /* from here on the loop's callbacks leave the multi handle alone */
    while (!list_empty(&t->xfers))
        fail_xfer(t, list_first_entry(&t->xfers, xfer_t, node), EXPO_TERR_CANCELLED,
                  "cancelled: the transport was destroyed");
    curl_multi_cleanup(t->multi);
    t->multi = NULL;
    while (!list_empty(&t->socks)) /* polls of cached connections curl did not report removed */
        sock_close(list_first_entry(&t->socks, sock_t, node));
    uv_timer_stop(&t->timer);
    uv_close((uv_handle_t *)&t->timer, on_timer_closed);
    uv_close((uv_handle_t *)&t->refused_timer, on_timer_closed);
    if (--curl_refs == 0)
        curl_global_cleanup();
}

struct expo_transport *expo_transport_curl_create(uv_loop_t *loop, const expo_curl_opts_t *o,
                                                  char *err, size_t errlen)
{
    if (curl_refs++ == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        curl_refs--;
        snprintf(err, errlen, "libcurl failed to initialise");
        return NULL;
    }
    ct_t *t = xcalloc(1, sizeof *t);
    t->base.post = ct_post;
    t->base.destroy = ct_destroy;
    list_init(&t->xfers);
    list_init(&t->socks);
    t->loop = loop;
    t->http2 = o->http2;
    t->max_response = o->max_response ? o->max_response : (4u << 20);
    t->multi = curl_multi_init();
    uv_timer_init(loop, &t->timer);
    uv_timer_init(loop, &t->refused_timer);
    t->timer.data = t->refused_timer.data = t;
    t->open_handles = 2;
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
    curl_multi_setopt(t->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    if (o->max_host_connections > 0) {
        curl_multi_setopt(t->multi, CURLMOPT_MAX_HOST_CONNECTIONS, o->max_host_connections);
        curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, o->max_host_connections * 2);
    }
    return &t->base;
}
