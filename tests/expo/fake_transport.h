/* fake_transport.h - an in-process Expo transport for client tests: records each request and
 * answers it on the next loop iteration with whatever the test's script returns. */
#ifndef HERALD_TESTS_EXPO_FAKE_TRANSPORT_H
#define HERALD_TESTS_EXPO_FAKE_TRANSPORT_H

#include "core/buf.h"
#include "expo/transport.h"

typedef struct fake_req {
    char *body; /* decoded (gunzipped) request body */
    size_t len;
    bool gzip;
    bool auth;
    size_t nmsgs;
} fake_req_t;

typedef struct fake fake_t;
/* Fills status/body (body appended to out) for request number idx. */
typedef void (*fake_script)(fake_t *f, size_t idx, const fake_req_t *req, expo_http_resp_t *resp,
                            buf_t *out, void *arg);

struct fake {
    struct expo_transport base;
    uv_loop_t *loop;
    uv_timer_t timer;
    fake_script script;
    void *arg;
    fake_req_t reqs[4096];
    size_t nreqs;
    struct fake_pending *pending;
    size_t max_in_flight, in_flight;
    size_t cancelled; /* requests answered EXPO_TERR_CANCELLED by destroy */
    bool hold;        /* leave requests unanswered (in flight) until destroy */
};

/* new: the client takes it (destroy through the client). */
fake_t *fake_create(uv_loop_t *loop, fake_script script, void *arg);
/* Frees what the fake recorded; call after the client (and so the fake's timer) is gone. */
void fake_free(fake_t *f);

#endif
