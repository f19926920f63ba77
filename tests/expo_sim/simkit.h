/* simkit.h - what both simulator tests (test_sim_unit.c on sim_handle, test_expo_sim.c over
 * HTTP) share: send and receipt request bodies, and what they read from the JSON replies (tickets,
 * the first error's code, counters of /stats). Test code; include after cmocka.h. */
#ifndef HERALD_TESTS_EXPO_SIM_SIMKIT_H
#define HERALD_TESTS_EXPO_SIM_SIMKIT_H

#include "core/buf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* A send body of n messages to ExponentPushToken[<prefix><i>], titled "T<i>" when titled. New
 * string (free). */
static inline char *send_body(size_t n, const char *prefix, bool titled)
{
    buf_t b = BUF_INIT;
    buf_putc(&b, '[');
    for (size_t i = 0; i < n; i++) {
        buf_printf(&b, "%s{\"to\":\"ExponentPushToken[%s%zu]\"", i ? "," : "", prefix, i);
        if (titled)
            buf_printf(&b, ",\"title\":\"T%zu\"", i);
        buf_putc(&b, '}');
    }
    buf_putc(&b, ']');
    return buf_steal(&b);
}

/* A getReceipts body asking for n ids ("id0", "id1", ...). New string (free). */
static inline char *receipt_ids_body(size_t n)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "{\"ids\":[");
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "%s\"id%zu\"", i ? "," : "", i);
    buf_puts(&b, "]}");
    return buf_steal(&b);
}

/* Ticket i of a send reply ({"data":[...]}), its status, details.error and id (NULL if absent). */
static inline json_t *reply_ticket(json_t *j, size_t i)
{
    return json_array_get(json_object_get(j, "data"), i);
}

static inline const char *ticket_status(json_t *j, size_t i)
{
    return json_string_value(json_object_get(reply_ticket(j, i), "status"));
}

static inline const char *ticket_err(json_t *j, size_t i)
{
    return json_string_value(
        json_object_get(json_object_get(reply_ticket(j, i), "details"), "error"));
}

static inline const char *ticket_id(json_t *j, size_t i)
{
    return json_string_value(json_object_get(reply_ticket(j, i), "id"));
}

/* The code of the first entry of a request error reply ({"errors":[{"code":...}]}). */
static inline const char *err_code(json_t *j)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(j, "errors"), 0), "code"));
}

/* Fails the test unless ticket i has details.error want[i], or status "ok" where want[i] is
 * NULL. */
static inline void expect_tickets(json_t *j, const char *const *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (want[i])
            assert_string_equal(ticket_err(j, i), want[i]);
        else
            assert_string_equal(ticket_status(j, i), "ok");
    }
}

/* Fails the test unless every member named in spec ("name=value name=value ...") is an integer
 * of that value (counters of /stats). */
static inline void expect_ints(const json_t *o, const char *spec)
{
    char name[64];
    long long want;
    int used = 0;
    const char *p = spec;
    while (sscanf(p, " %63[^= ]=%lld%n", name, &want, &used) == 2) {
        json_t *v = json_object_get(o, name);
        if (!json_is_integer(v) || json_integer_value(v) != want)
            fail_msg("%s: %lld, want %lld", name, json_integer_value(v), want);
        p += used;
    }
    if (p[strspn(p, " ")] != '\0')
        fail_msg("expect_ints: cannot read \"%s\"", p);
}

#endif
