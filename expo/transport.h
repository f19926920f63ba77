/* transport.h - how the Expo client talks HTTP: one POST at a time through a small interface, so
 * the client logic can be driven by a fake in unit tests. The real one is transport_curl.c
 * (libcurl multi with the socket API on the libuv loop). */
#ifndef HERALD_EXPO_TRANSPORT_H
#define HERALD_EXPO_TRANSPORT_H

#include "core/metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* Why a request got no HTTP response (status == 0). */
typedef enum {
    EXPO_TERR_NONE = 0,
    EXPO_TERR_CONNECT,  /* could not connect or resolve: nothing was sent */
    EXPO_TERR_TIMEOUT,  /* no complete response within the timeout */
    EXPO_TERR_DROPPED,  /* the connection broke or closed before a complete response */
    EXPO_TERR_TOOLARGE, /* the response body exceeded the transport's limit */
    EXPO_TERR_OTHER,
    EXPO_TERR_CANCELLED, /* the transport was destroyed first */
} expo_terr_t;

typedef struct expo_http_resp {
    long status;      /* HTTP status, 0 when the transport failed */
    expo_terr_t terr; /* why, when status == 0 */
    bool maybe_sent;  /* the request may have reached the server */
    bool resent;      /* the transport sent the body twice (retry on a fresh connection) */
    const char *body; /* borrowed: the decoded response body (NUL-terminated), valid in the cb */
    size_t len;
    long retry_after_s; /* Retry-After in seconds, -1 when absent */
    double seconds;     /* request duration */
    const char *detail; /* borrowed: the transport's error text, or "" */
} expo_http_resp_t;

typedef void (*expo_http_cb)(const expo_http_resp_t *resp, void *arg);

struct expo_transport {
    /* POSTs body (borrowed until cb) to url with headers ("name: value", borrowed until the call
     * returns). cb fires exactly once, never inside post: with the response, a transport error,
     * or EXPO_TERR_CANCELLED from destroy. Returns 0. */
    int (*post)(struct expo_transport *t, const char *url, const char *const *headers,
                size_t nheaders, const void *body, size_t len, long timeout_ms, expo_http_cb cb,
                void *arg);
    /* Cancels outstanding requests, firing each one's cb (status 0, EXPO_TERR_CANCELLED) from
     * inside this call, then frees the transport (possibly after the loop has run: handles close
     * asynchronously). Those callbacks must not post. No callback fires after it returns. */
    void (*destroy)(struct expo_transport *t);
};

typedef struct expo_curl_opts {
    long max_host_connections; /* connections to one host (HTTP/1.1 concurrency) */
    bool http2;                /* h2 over TLS via ALPN when offered; HTTP/1.1 otherwise */
    size_t max_response;       /* response bodies above this fail with EXPO_TERR_TOOLARGE */
} expo_curl_opts_t;

/* new: freed through its destroy. NULL with a sentence in err when libcurl cannot start. */
struct expo_transport *expo_transport_curl_create(uv_loop_t *loop, const expo_curl_opts_t *o,
                                                  char *err, size_t errlen);

#endif
