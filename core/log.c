/* log.c - JSON-lines logger. One write(2) per line so lines from several processes sharing a
 * pipe never interleave; secrets are redacted at the call site through LKT(). */
#include "core/log.h"
#include "core/buf.h"
#include "core/clock.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

log_level_t log_min_level = LOG_LVL_INFO;
static int log_fd = 2;
static const char *const level_names[] = {"debug", "info", "warn", "error", "fatal"};

void log_set_fd(int fd)
{
    log_fd = fd;
}

void log_set_level(log_level_t lvl)
{
    log_min_level = lvl;
}

int log_level_parse(const char *s, log_level_t *out)
{
    for (int i = 0; i <= LOG_LVL_ERROR; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = LOG_LVL_WARN;
        return 0;
    }
    return -1;
}

const char *log_level_name(log_level_t lvl)
{
    return (unsigned)lvl <= LOG_LVL_FATAL ? level_names[lvl] : "unknown";
}

void log_redact(const char *token, char *out, size_t outlen)
{
    if (token == NULL) {
        snprintf(out, outlen, "(none)");
        return;
    }
    size_t n = strlen(token);
    if (n <= 8)
        snprintf(out, outlen, "…(%zu)", n);
    else if (outlen < sizeof "…" + 6)
        snprintf(out, outlen, "…%s", token + n - 6);
    else { /* every trace record with a token comes here: no printf */
        memcpy(out, "…", sizeof "…" - 1);
        memcpy(out + sizeof "…" - 1, token + n - 6, 7);
    }
}

void log_kv_value_json(buf_t *b, const log_kv_t *kv)
{
    char red[32];
    switch (kv->t) {
    case 'i':
        buf_put_i64(b, kv->i);
        break;
    case 'd':
        if (isfinite(kv->d))
            buf_printf(b, "%.6g", kv->d);
        else
            buf_puts(b, "null");
        break;
    case 'b':
        buf_puts(b, kv->i ? "true" : "false");
        break;
    case 'r':
        buf_puts(b, kv->s ? kv->s : "null");
        break;
    case 't':
        log_redact(kv->s, red, sizeof red);
        buf_json_cstr(b, red);
        break;
    default:
        if (kv->s)
            buf_json_cstr(b, kv->s);
        else
            buf_puts(b, "null");
    }
}

void log_write(log_level_t lvl, const char *msg, const log_kv_t *kv, size_t n)
{
    char ts[40];
    buf_t b = BUF_INIT;
    clk_iso8601_ms(clk_wall_ms(), ts, sizeof ts);
    buf_puts(&b, "{\"ts\":\"");
    buf_puts(&b, ts);
    buf_puts(&b, "\",\"level\":\"");
    buf_puts(&b, log_level_name(lvl));
    buf_puts(&b, "\",\"msg\":");
    buf_json_str(&b, msg, strlen(msg));
    for (size_t i = 0; i < n; i++) {
        buf_putc(&b, ',');
        buf_json_str(&b, kv[i].k, strlen(kv[i].k));
        buf_putc(&b, ':');
        log_kv_value_json(&b, &kv[i]);
    }
    buf_puts(&b, "}\n");
    const char *p = b.data;
    size_t left = b.len;
    while (left > 0) {
        ssize_t w = write(log_fd, p, left);
        if (w <= 0)
            break;
        p += w;
        left -= (size_t)w;
    }
    buf_cleanup(&b);
}
