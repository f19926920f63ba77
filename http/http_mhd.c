/* http_mhd.c - the libmicrohttpd adapter behind http_server.h.
 *
 * MHD runs without a thread of its own (MHD_USE_EPOLL): libuv watches MHD's epoll descriptor and a
 * timer armed from MHD_get_timeout(), and calls MHD_run() on either. A request whose handler
 * answers later is suspended (MHD_suspend_connection: MHD 0.9 has no other way to wait without
 * polling the handler) and resumed by http_respond(); MHD then calls the access handler again,
 * which queues the stored response. Answers that arrive together (one Redis read) are resumed
 * together: one MHD_run per loop turn (a check handle), not one per answer.
 *
 * Per request the adapter allocates nothing once a connection has served one: the request state,
 * its body, path and response body live in the connection and are reused (the response goes to
 * MHD as a persistent buffer, valid until the request completes), and the client address is
 * formatted once per connection.
 *
 * Connection limits: MHD's accept policy callback asks connlimit.c, which counts the connections
 * MHD reports open and closed (MHD_OPTION_NOTIFY_CONNECTION); MHD's own connection limit sits one
 * above ours so that every refusal passes through the callback and is counted. MHD's timeout is
 * about inactivity only, so a client that sends one byte now and then holds its slot for ever:
 * each connection has a libuv timer that runs while a request is being received, and when it
 * fires the socket is shut down (MHD 0.9 has no call to drop a connection); MHD reads the end of
 * the stream at once and closes the connection the usual way. */
#include "http/http_server.h"
#include "http/connlimit.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "config/config.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTENER_LABEL "listener"
#define MHD_POOL_BYTES ((size_t)16384) /* per connection: request line, headers, read buffer */

struct disp_http {
    struct MHD_Daemon *mhd;
    uv_loop_t *loop;
    uv_poll_t poll;
    uv_timer_t timer;
    uv_check_t check; /* runs MHD once per loop turn after responses were resumed */
    int resumed;
    disp_http_handler handler;
    void *arg;
    char name[16];
    long max_body;
    int port;
    size_t active;
    int closing_handles;
    disp_connlimit_t *limits;
    uint64_t first_ms, next_ms; /* receive deadlines: new connection, kept-alive connection */
    metric_reg_t *own_metrics;  /* when the caller gave none */
    metric_t *m_per_ip, *m_capacity, *m_timeouts, *m_open;
};

typedef struct hconn hconn_t;

/* One request: in its connection (reused by the next one), or on its own when MHD gave no
 * socket context. */
typedef struct hreq {
    http_req_t pub; /* first: handlers get &pub */
    disp_http_t *srv;
    struct MHD_Connection *conn;
    hconn_t *hc; /* NULL only if MHD gave no socket context */
    buf_t body, path, out;
    char method[16];
    const char *peer;
    struct MHD_Response *resp;
    unsigned status;
    int handled;   /* handler was called */
    int suspended; /* waiting for an async response */
    int answered;  /* http_respond was called */
    int own;       /* allocated for itself (no socket context) */
    char own_peer[INET6_ADDRSTRLEN];
} hreq_t;

/* One connection (MHD's socket context): its deadline, the address it is counted under, and the
 * state of its request (one at a time: HTTP/1.1 without pipelining in MHD). */
struct hconn {
    disp_http_t *srv;
    struct MHD_Connection *conn; /* NULL once MHD closed it */
    uv_timer_t deadline;
    struct sockaddr_storage addr;
    int has_addr;
    int timed_out;
    int busy; /* req serves a request */
    char peer[INET6_ADDRSTRLEN];
    hreq_t req;
};

/* What a request keeps of a large body or answer between two requests of a connection. */
#define REQ_KEEP_BYTES 8192

static void run_mhd(disp_http_t *s);

static const char *op_header(http_req_t *r, const char *name)
{
    hreq_t *h = (hreq_t *)r;
    return MHD_lookup_connection_value(h->conn, MHD_HEADER_KIND, name);
}

static const char *op_query(http_req_t *r, const char *name)
{
    hreq_t *h = (hreq_t *)r;
    return MHD_lookup_connection_value(h->conn, MHD_GET_ARGUMENT_KIND, name);
}

static void op_respond(http_req_t *r, int status, const http_header_t *hdrs, size_t n,
                       const char *body, size_t len)
{
    hreq_t *h = (hreq_t *)r;
    if (h->answered) { /* its body may be on its way out of h->out */
        LOG(LOG_LVL_ERROR, "http: second response for one request", LKS("path", h->pub.path));
        return;
    }
    h->answered = 1;
    buf_reset(&h->out);
    buf_append(&h->out, body, len);
    h->resp = MHD_create_response_from_buffer(len, h->out.data, MHD_RESPMEM_PERSISTENT);
    for (size_t i = 0; i < n; i++)
        MHD_add_response_header(h->resp, hdrs[i].name, hdrs[i].value);
    h->status = (unsigned)status;
    if (h->suspended) {
        h->suspended = 0;
        MHD_resume_connection(h->conn);
        h->srv->resumed = 1; /* many answers arrive in one Redis read: run MHD once for all */
    }
}

static const http_req_ops_t mhd_ops = {op_header, op_query, op_respond};

/* The client address as text ("" when unknown); returns out. */
static const char *addr_str(const struct sockaddr *sa, char *out, size_t outlen)
{
    out[0] = '\0';
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)outlen);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)outlen);
    return out;
}

/* ---- connections: limits and receive deadlines --------------------------------------------- */

static hconn_t *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static const struct sockaddr *conn_addr(const hconn_t *c)
{
    return c->has_addr ? (const struct sockaddr *)&c->addr : NULL;
}

static void on_deadline(uv_timer_t *t)
{
    hconn_t *c = t->data;
    if (c->conn == NULL)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL)
        return;
    c->timed_out = 1;
    shutdown(ci->connect_fd, SHUT_RDWR); /* MHD sees the end of the stream and closes */
    metric_inc(c->srv->m_timeouts);
    char ip[INET6_ADDRSTRLEN];
    LOG(LOG_LVL_DEBUG, "http: request not received in time, connection closed",
        LKS("listener", c->srv->name), LKS("ip", addr_str(conn_addr(c), ip, sizeof ip)));
}

/* Gives the connection ms to deliver its (next) request; 0 leaves it without a deadline. */
static void deadline_arm(hconn_t *c, uint64_t ms)
{
    if (c->conn != NULL && ms > 0)
        uv_timer_start(&c->deadline, on_deadline, ms, 0);
}

static enum MHD_Result on_accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
    disp_http_t *s = cls;
    (void)len;
    disp_conn_verdict_t v = disp_connlimit_check(s->limits, addr);
    if (v == DISP_CONN_OK)
        return MHD_YES;
    metric_inc(v == DISP_CONN_PER_IP ? s->m_per_ip : s->m_capacity);
    char ip[INET6_ADDRSTRLEN];
    LOG(LOG_LVL_DEBUG, "http: connection refused", LKS("listener", s->name),
        LKS("reason", v == DISP_CONN_PER_IP ? "per_ip" : "capacity"),
        LKS("ip", addr_str(addr, ip, sizeof ip)));
    return MHD_NO;
}

static void conn_started(disp_http_t *s, struct MHD_Connection *conn, void **socket_context)
{
    hconn_t *c = xcalloc(1, sizeof *c);
    c->srv = s;
    c->conn = conn;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)) {
        memcpy(&c->addr, sa,
               sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
        c->has_addr = 1;
    }
    addr_str(conn_addr(c), c->peer, sizeof c->peer);
    disp_connlimit_add(s->limits, conn_addr(c));
    metric_set(s->m_open, (double)disp_connlimit_open(s->limits));
    uv_timer_init(s->loop, &c->deadline);
    c->deadline.data = c;
    deadline_arm(c, s->first_ms);
    *socket_context = c;
}

static void req_buffers_free(hreq_t *h)
{
    buf_cleanup(&h->body);
    buf_cleanup(&h->path);
    buf_cleanup(&h->out);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    hconn_t *c = h->data;
    req_buffers_free(&c->req);
    free(c);
}

static void conn_closed(disp_http_t *s, hconn_t *c)
{
    disp_connlimit_remove(s->limits, conn_addr(c));
    metric_set(s->m_open, (double)disp_connlimit_open(s->limits));
    c->conn = NULL;
    uv_timer_stop(&c->deadline);
    uv_close((uv_handle_t *)&c->deadline, on_conn_handle_closed);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    disp_http_t *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_started(s, conn, socket_context);
    } else if (*socket_context) {
        conn_closed(s, *socket_context);
        *socket_context = NULL;
    }
}

/* ---- requests ------------------------------------------------------------------------------ */

/* Empties b for the next request, keeping its memory unless it grew large. */
static void buf_recycle(buf_t *b)
{
    if (b->cap > REQ_KEEP_BYTES)
        buf_cleanup(b);
    else
        buf_reset(b);
}

static hreq_t *req_new(disp_http_t *s, struct MHD_Connection *conn, const char *url,
                       const char *method)
{
    hconn_t *c = conn_of(conn);
    hreq_t *h;
    if (c && !c->busy) {
        h = &c->req;
        c->busy = 1;
        buf_t body = h->body, path = h->path, out = h->out;
        memset(h, 0, sizeof *h);
        h->body = body, h->path = path, h->out = out;
        h->peer = c->peer;
    } else {
        h = xcalloc(1, sizeof *h);
        h->own = 1;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        h->peer = addr_str(ci ? ci->client_addr : NULL, h->own_peer, sizeof h->own_peer);
    }
    h->srv = s;
    h->conn = conn;
    h->hc = c;
    buf_puts(&h->path, url);
    snprintf(h->method, sizeof h->method, "%s", method);
    h->pub.ops = &mhd_ops;
    h->pub.method = h->method;
    h->pub.path = buf_cstr(&h->path);
    h->pub.peer_ip = h->peer;
    h->pub.start_us = clk_mono_us();
    s->active++;
    return h;
}

static void req_free(hreq_t *h)
{
    h->srv->active--;
    if (h->resp)
        MHD_destroy_response(h->resp);
    h->resp = NULL;
    if (h->own) {
        req_buffers_free(h);
        free(h);
        return;
    }
    buf_recycle(&h->body);
    buf_recycle(&h->path);
    buf_recycle(&h->out);
    h->hc->busy = 0;
}

static enum MHD_Result queue_stored(hreq_t *h)
{
    enum MHD_Result rc = MHD_queue_response(h->conn, h->status, h->resp);
    MHD_destroy_response(h->resp);
    h->resp = NULL;
    return rc;
}

/* Calls the handler; queues a synchronous answer or suspends until http_respond(). */
static enum MHD_Result dispatch(hreq_t *h)
{
    h->handled = 1;
    if (h->hc)
        uv_timer_stop(&h->hc->deadline); /* received in time: the answer is ours to give */
    h->pub.body = h->body.len ? h->body.data : NULL;
    h->pub.body_len = h->body.len;
    h->srv->handler(&h->pub, h->srv->arg);
    if (h->resp)
        return queue_stored(h);
    h->suspended = 1;
    MHD_suspend_connection(h->conn);
    return MHD_YES;
}

static int declared_too_large(hreq_t *h)
{
    const char *cl = MHD_lookup_connection_value(h->conn, MHD_HEADER_KIND, "Content-Length");
    if (cl == NULL)
        return 0;
    char *end;
    unsigned long long n = strtoull(cl, &end, 10);
    return *end != '\0' || n > (unsigned long long)h->srv->max_body;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_size, void **con_cls)
{
    disp_http_t *s = cls;
    hreq_t *h = *con_cls;
    (void)version;
    if (h == NULL) {
        hconn_t *c = conn_of(conn);
        if (c && c->timed_out)
            return MHD_NO; /* completed just as its deadline closed the socket */
        h = req_new(s, conn, url, method);
        *con_cls = h;
        if (!declared_too_large(h))
            return MHD_YES;
        h->pub.body_too_large = true; /* answer before MHD reads (or 100-continues) the body */
        return dispatch(h);
    }
    if (h->handled)
        return h->resp ? queue_stored(h) : MHD_YES;
    if (*upload_size > 0) {
        if (h->body.len + *upload_size > (size_t)s->max_body) {
            h->pub.body_too_large = true;
            buf_cleanup(&h->body);
            *upload_size = 0;
            return dispatch(h);
        }
        buf_append(&h->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    return dispatch(h);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    disp_http_t *s = cls;
    (void)toe;
    hreq_t *h = *con_cls;
    if (h)
        req_free(h);
    *con_cls = NULL;
    /* Kept alive: the next request may wait out the idle timeout, then must arrive in time. */
    hconn_t *c = conn_of(conn);
    if (c)
        deadline_arm(c, s->next_ms);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    disp_http_t *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    LOG(LOG_LVL_WARN, "http server", LKS("listener", s->name), LKS("detail", msg));
}

static void on_timer(uv_timer_t *t)
{
    run_mhd(t->data);
}

static void on_check(uv_check_t *c)
{
    disp_http_t *s = c->data;
    if (s->resumed) {
        s->resumed = 0;
        run_mhd(s);
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    run_mhd(p->data);
}

static void run_mhd(disp_http_t *s)
{
    if (s->mhd == NULL)
        return;
    MHD_run(s->mhd);
    MHD_UNSIGNED_LONG_LONG ms;
    if (MHD_get_timeout(s->mhd, &ms) == MHD_YES)
        uv_timer_start(&s->timer, on_timer, ms, 0);
    else
        uv_timer_stop(&s->timer);
}

static int resolve(const char *listen, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    char host[256], port[16];
    int p;
    if (conf_parse_listen(listen, host, sizeof host, &p) != 0) {
        snprintf(err, errlen, "bad listen address \"%s\"", listen);
        return -1;
    }
    snprintf(port, sizeof port, "%d", p);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static int bound_port(struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_LISTEN_FD);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (di == NULL || getsockname(di->listen_fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void make_metrics(disp_http_t *s, metric_reg_t *m)
{
    if (m == NULL)
        m = s->own_metrics = metric_reg_create();
    metric_fam_t *rej = metric_counter_new(
        m, "herald_http_connections_rejected_total",
        "Connections closed as soon as accepted: the client address already held "
        "http.max_connections_per_ip (per_ip), or the listener was full (capacity).",
        LISTENER_LABEL ",reason");
    s->m_per_ip = metric_get(rej, s->name, "per_ip");
    s->m_capacity = metric_get(rej, s->name, "capacity");
    s->m_timeouts = metric_get(
        metric_counter_new(m, "herald_http_request_timeouts_total",
                           "Connections closed because a whole request did not arrive within "
                           "http.request_timeout_s.",
                           LISTENER_LABEL),
        s->name);
    s->m_open = metric_get(
        metric_gauge_new(m, "herald_http_connections", "Open connections.", LISTENER_LABEL),
        s->name);
}

static struct MHD_Daemon *start_mhd(disp_http_t *s, const disp_http_opts_t *o,
                                    struct sockaddr_storage *ss)
{
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ss->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* One above our own limit: MHD would refuse the connection before asking on_accept_policy,
     * and nobody would count it. */
    unsigned mhd_limit = (unsigned)o->max_connections + 1;
    /* MHD zeroes a connection's whole memory pool before each request: 16 KiB (not MHD's 32)
     * still holds any sane header block, and the body is read into our own buffer. */
    size_t pool = MHD_POOL_BYTES;
    return MHD_start_daemon(flags, 0, on_accept_policy, s, on_access, s, MHD_OPTION_EXTERNAL_LOGGER,
                            mhd_log, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)ss,
                            MHD_OPTION_CONNECTION_LIMIT, mhd_limit, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)o->connection_timeout_s, MHD_OPTION_NOTIFY_COMPLETED,
                            on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)(o->reuse_port ? 1 : 0),
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool, MHD_OPTION_END);
}

disp_http_t *disp_http_create(uv_loop_t *loop, const disp_http_opts_t *o, disp_http_handler handler,
                              void *arg, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (resolve(o->listen, &ss, err, errlen) != 0)
        return NULL;
    disp_http_t *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->handler = handler;
    s->arg = arg;
    s->max_body = o->max_body;
    snprintf(s->name, sizeof s->name, "%s", o->name);
    s->limits = disp_connlimit_create(
        (size_t)o->max_connections,
        (size_t)(o->max_connections_per_ip > 0 ? o->max_connections_per_ip : 0));
    uint64_t req_ms = o->request_timeout_s > 0 ? (uint64_t)o->request_timeout_s * 1000 : 0;
    s->first_ms = req_ms;
    s->next_ms = req_ms ? req_ms + (uint64_t)o->connection_timeout_s * 1000 : 0;
    make_metrics(s, o->metrics);
    s->mhd = start_mhd(s, o, &ss);
    if (s->mhd == NULL) {
        snprintf(err, errlen, "%s listener: cannot listen on %s", o->name, o->listen);
        disp_connlimit_destroy(s->limits);
        metric_reg_destroy(s->own_metrics);
        free(s);
        return NULL;
    }
    s->port = bound_port(s->mhd);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    uv_poll_init(loop, &s->poll, di->epoll_fd);
    uv_timer_init(loop, &s->timer);
    uv_check_init(loop, &s->check);
    s->poll.data = s->timer.data = s->check.data = s;
    uv_poll_start(&s->poll, UV_READABLE, on_poll);
    uv_check_start(&s->check, on_check);
    run_mhd(s);
    return s;
}

int disp_http_port(const disp_http_t *s)
{
    return s->port;
}

size_t disp_http_active(const disp_http_t *s)
{
    return s->active;
}

void disp_http_quiesce(disp_http_t *s)
{
    if (s == NULL || s->mhd == NULL)
        return;
    MHD_socket fd = MHD_quiesce_daemon(s->mhd);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

static void on_handle_closed(uv_handle_t *h)
{
    disp_http_t *s = h->data;
    if (--s->closing_handles == 0) {
        metric_reg_destroy(s->own_metrics);
        free(s);
    }
}

void disp_http_destroy(disp_http_t *s)
{
    if (s == NULL)
        return;
    struct MHD_Daemon *d = s->mhd;
    s->mhd = NULL;
    uv_poll_stop(&s->poll);
    uv_timer_stop(&s->timer);
    uv_check_stop(&s->check);
    MHD_stop_daemon(d); /* completes (and frees) every remaining request and connection */
    disp_connlimit_destroy(s->limits);
    s->limits = NULL;
    s->closing_handles = 3;
    uv_close((uv_handle_t *)&s->poll, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->check, on_handle_closed);
}
