/* mhd_body.h - the request bodies of the tests' fake Expo servers (libmicrohttpd): gathered
 * across the access handler's calls, then read as JSON text, gunzipped when the client sent
 * gzip. Test code; include after <microhttpd.h>. */
#ifndef HERALD_TESTS_EXPO_MHD_BODY_H
#define HERALD_TESTS_EXPO_MHD_BODY_H

#include "core/buf.h"
#include "core/xalloc.h"
#include "expo/proto.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The access handler's first step: gathers the upload in *cc (new on the first call). False
 * while the body is still arriving (the handler answers MHD_YES); true once *body is whole. */
static inline bool mhd_body_gather(void **cc, const char *data, size_t *size, buf_t **body)
{
    if (*cc == NULL) {
        *cc = xcalloc(1, sizeof(buf_t));
        return false;
    }
    if (*size) {
        buf_append(*cc, data, *size);
        *size = 0;
        return false;
    }
    *body = *cc;
    return true;
}

/* Frees what mhd_body_gather kept in *cc (accepts none). */
static inline void mhd_body_free(void **cc)
{
    buf_t *b = *cc;
    if (b) {
        buf_cleanup(b);
        free(b);
    }
    *cc = NULL;
}

/* Appends the body to plain, gunzipped when its content-encoding is gzip; returns whether it
 * was. */
static inline bool mhd_body_plain(struct MHD_Connection *con, const buf_t *body, buf_t *plain)
{
    const char *ce = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "content-encoding");
    bool gzip = ce && strcmp(ce, "gzip") == 0;
    if (gzip)
        expo_gunzip(body->data, body->len, 1 << 22, plain);
    else
        buf_append(plain, buf_cstr(body), body->len);
    return gzip;
}

#endif
