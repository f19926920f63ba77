/* client_opts.h - what the Expo client tests and bench-expo start from: the client options at
 * herald's configured defaults (the expo.* rows of config/config.c) with the given URL and send
 * rate, so each caller states only what its case changes, and a message to a test token. */
#ifndef HERALD_TESTS_EXPO_CLIENT_OPTS_H
#define HERALD_TESTS_EXPO_CLIENT_OPTS_H

#include "expo/expo.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* url borrowed (kept in the result); rate_per_sec 0: no local limit. */
static inline expo_opts_t tx_client_opts(const char *url, long rate_per_sec)
{
    return (expo_opts_t){.url = url,
                         .linger_ms = 5,
                         .max_concurrent = 6,
                         .rate_per_sec = rate_per_sec,
                         .max_attempts = 6,
                         .max_retry_age_s = 600,
                         .backoff_base_ms = 1000,
                         .backoff_cap_ms = 60000,
                         .timeout_ms = 30000,
                         .http2 = true};
}

/* A message titled like the pipeline's to "ExponentPushToken[<name>]", name from fmt; the token
 * is written into tok (borrowed by the result). */
static inline expo_msg_t tx_msg(char *tok, size_t toklen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline expo_msg_t tx_msg(char *tok, size_t toklen, const char *fmt, ...)
{
    char name[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int n = snprintf(tok, toklen, "ExponentPushToken[%s]", name);
    if (n < 0 || (size_t)n >= toklen)
        abort(); /* a test's token buffer too small: fix the test */
    expo_msg_t m;
    expo_msg_init(&m);
    m.to = tok;
    m.title = "Photo Editor - Ready!";
    return m;
}

#endif
