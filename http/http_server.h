/* http_server.h - an HTTP listener on the libuv loop (libmicrohttpd behind it).
 *
 * The handler is called once per request after the whole body arrived, or as soon as the body is
 * known to exceed max_body (req->body_too_large; the rest is never read into memory). It answers
 * with http_respond() exactly once, at once or later from an async callback: the connection is
 * suspended meanwhile. Loop-thread only.
 *
 * Slow clients are bounded: a connection must deliver a whole request (headers and body) within
 * request_timeout_s of being accepted, and each later request on a kept-alive connection within
 * connection_timeout_s + request_timeout_s of the previous answer, or it is closed. A connection
 * beyond max_connections_per_ip from one address (one /64 for IPv6), or beyond max_connections in
 * all, is closed at once. Both are counted in the metrics registry (label listener = name). */
#ifndef HERALD_DISPATCHER_HTTP_SERVER_H
#define HERALD_DISPATCHER_HTTP_SERVER_H

#include "core/http.h"
#include "core/metrics.h"

#include <stddef.h>
#include <uv.h>

typedef struct disp_http disp_http_t;
typedef void (*disp_http_handler)(http_req_t *req, void *arg);

typedef struct disp_http_opts {
    const char *name;   /* "api" or "admin", for logs */
    const char *listen; /* host:port; port 0 takes one from the OS */
    long max_body;      /* bytes */
    long max_connections;
    long connection_timeout_s;   /* inactivity */
    int reuse_port;              /* SO_REUSEPORT so several herald processes share one port */
    long max_connections_per_ip; /* 0: no per-address limit */
    long request_timeout_s;      /* 0: no deadline, only the inactivity timeout */
    metric_reg_t *metrics;       /* borrowed, outlives the listener; NULL: no metrics */
} disp_http_opts_t;

/* new: listening on return. NULL with a sentence in err when the address cannot be bound. */
disp_http_t *disp_http_create(uv_loop_t *loop, const disp_http_opts_t *opts,
                              disp_http_handler handler, void *arg, char *err, size_t errlen);
/* The bound port (useful with port 0). */
int disp_http_port(const disp_http_t *s);
/* Stops accepting connections; requests in progress go on. */
void disp_http_quiesce(disp_http_t *s);
/* Requests received and not yet completed. */
size_t disp_http_active(const disp_http_t *s);
/* Stops the daemon and closes the loop handles (run the loop afterwards). Accepts NULL. */
void disp_http_destroy(disp_http_t *s);

#endif
