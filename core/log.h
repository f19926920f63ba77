/* log.h - JSON-lines logging to stderr with stable keys.
 *
 *   LOG(LOG_LVL_INFO, "listening", LKS("addr", addr), LKI("port", port));
 *   LOG0(LOG_LVL_WARN, "no fields");
 *
 * The level is checked before any argument is evaluated. Never pass a whole push token or JWT:
 * use LKT(), which logs only the token's last characters. Loop-thread only (one writer). */
#ifndef HERALD_CORE_LOG_H
#define HERALD_CORE_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    LOG_LVL_DEBUG = 0,
    LOG_LVL_INFO,
    LOG_LVL_WARN,
    LOG_LVL_ERROR,
    LOG_LVL_FATAL,
} log_level_t;

typedef struct log_kv {
    const char *k;
    char t; /* 's' string, 'i' integer, 'd' double, 'b' bool, 'r' raw JSON, 't' redacted token */
    const char *s;
    long long i;
    double d;
} log_kv_t;

#define LKS(k, v) ((log_kv_t){(k), 's', (v), 0, 0})
#define LKI(k, v) ((log_kv_t){(k), 'i', NULL, (long long)(v), 0})
#define LKD(k, v) ((log_kv_t){(k), 'd', NULL, 0, (double)(v)})
#define LKB(k, v) ((log_kv_t){(k), 'b', NULL, (v) ? 1 : 0, 0})
#define LKR(k, v) ((log_kv_t){(k), 'r', (v), 0, 0})
#define LKT(k, v) ((log_kv_t){(k), 't', (v), 0, 0})

extern log_level_t log_min_level;

#define LOG(lvl, msg, ...)                                                                         \
    do {                                                                                           \
        if ((lvl) >= log_min_level) {                                                              \
            const log_kv_t log_kv_[] = {__VA_ARGS__};                                              \
            log_write((lvl), (msg), log_kv_, sizeof log_kv_ / sizeof log_kv_[0]);                  \
        }                                                                                          \
    } while (0)
#define LOG0(lvl, msg)                                                                             \
    do {                                                                                           \
        if ((lvl) >= log_min_level)                                                                \
            log_write((lvl), (msg), NULL, 0);                                                      \
    } while (0)

void log_write(log_level_t lvl, const char *msg, const log_kv_t *kv, size_t n);
/* Redirects output to fd (default 2). */
void log_set_fd(int fd);
void log_set_level(log_level_t lvl);
/* Parses "debug", "info", "warn", "error"; returns 0 or -1. */
int log_level_parse(const char *s, log_level_t *out);
const char *log_level_name(log_level_t lvl);
struct buf;
/* Appends kv's value as JSON (strings escaped, 't' values redacted, non-finite numbers as null):
 * the same encoding the log uses, for other JSON records (the delivery trace). */
void log_kv_value_json(struct buf *out, const log_kv_t *kv);
/* Writes a redacted form of a push token ("…" + last 6 characters) into out (>= 16 bytes). */
void log_redact(const char *token, char *out, size_t outlen);

#endif
