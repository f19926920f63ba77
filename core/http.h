/* http.h - the transport-neutral view of one HTTP request that handlers work with.
 *
 * The adapter (http/http_mhd.c) fills in the fields and the ops; handlers (tokens/api.c,
 * http/admin.c) read them and answer with http_respond() exactly once, now or later from an
 * async callback. Unit tests build a fake request with their own ops. */
#ifndef HERALD_CORE_HTTP_H
#define HERALD_CORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct http_req http_req_t;

/* A response header: name and value (both borrowed for the duration of the respond call). */
typedef struct http_header {
    const char *name;
    const char *value;
} http_header_t;

typedef struct http_req_ops {
    /* Request header value (case-insensitive name) or NULL; borrowed until the response. */
    const char *(*header)(http_req_t *req, const char *name);
    /* Decoded query argument or NULL; borrowed until the response. */
    const char *(*query)(http_req_t *req, const char *name);
    /* Sends the response; body and headers are copied. Must be called exactly once. */
    void (*respond)(http_req_t *req, int status, const http_header_t *headers, size_t nheaders,
                    const char *body, size_t len);
} http_req_ops_t;

struct http_req {
    const http_req_ops_t *ops;
    const char *method;
    const char *path; /* without the query string */
    const char *body; /* NULL when empty; not NUL-terminated */
    size_t body_len;
    bool body_too_large;         /* the body exceeded the listener's limit and was not read */
    const char *peer_ip;         /* textual address of the TCP peer */
    unsigned long long start_us; /* monotonic time the request arrived */
};

static inline const char *http_header(http_req_t *r, const char *name)
{
    return r->ops->header(r, name);
}
static inline const char *http_query(http_req_t *r, const char *name)
{
    return r->ops->query(r, name);
}
static inline void http_respond(http_req_t *r, int status, const http_header_t *h, size_t nh,
                                const char *body, size_t len)
{
    r->ops->respond(r, status, h, nh, body, len);
}

/* Standard reason phrase ("Not Found") for a status code. */
const char *http_reason(int status);

#endif
