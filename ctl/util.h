/* util.h - what every heraldctl command shares: option parsing, durations ("30d"), tables and
 * JSON output, a progress bar on stderr (only when stderr is a terminal), and a Redis session that
 * runs its own libuv loop to completion.
 *
 * heraldctl is a short-lived sequential program: a command issues Redis commands (pipelined when
 * it issues several before waiting) and then runs the loop until they have answered. Every wait
 * is bounded by redis.timeout_ms through the db client's own command timeout. */
#ifndef HERALD_DISPATCHER_CTL_UTIL_H
#define HERALD_DISPATCHER_CTL_UTIL_H

#include "config/config.h"
#include "core/buf.h"
#include "db/db.h"
#include "ctl/ctl.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

/* Exit code of a command that completed but refused part of its input (import, bulk
 * deactivate): the valid part was applied, the refused lines are listed on stderr. */
#define CTL_PARTIAL 4

/* ---- options ---- */

typedef enum { CTL_OPT_FLAG, CTL_OPT_STR, CTL_OPT_LONG, CTL_OPT_DURATION } ctl_opt_kind_t;

typedef struct ctl_opt {
    const char *name;  /* "--user"; NULL ends the table */
    const char *alias; /* "-o" or NULL */
    ctl_opt_kind_t kind;
    void *out; /* bool *, const char **, long *, int64_t * (seconds) */
    bool seen; /* set by ctl_parse */
} ctl_opt_t;

/* Parses argv[first..argc) against opts (also "--name=value"). Positional arguments are stored in
 * pos (at most maxpos, count in *npos; pos may be NULL when none are allowed). "--help"/"-h"
 * prints usage on stdout and returns 1; errors print one line plus the usage on stderr and return
 * -1. Returns 0 otherwise. */
int ctl_parse(int argc, char **argv, int first, ctl_opt_t *opts, const char **pos, int maxpos,
              int *npos, const char *usage);

/* "30d", "12h", "15m", "45s", "2w" or plain seconds into *secs. Returns 0 or -1. */
int ctl_duration_parse(const char *s, int64_t *secs);

/* ---- output ---- */

/* A table printed with aligned columns; cells are copied. */
typedef struct ctl_table {
    size_t ncols;
    size_t nrows;
    char **cells; /* (nrows + 1) * ncols, row 0 the header */
    size_t cap;
} ctl_table_t;

void ctl_table_init(ctl_table_t *t, size_t ncols, const char *const *header);
/* Appends one row of ncols strings (NULL prints as "-"). */
void ctl_table_row(ctl_table_t *t, const char *const *cells);
void ctl_table_print(const ctl_table_t *t, FILE *f);
void ctl_table_cleanup(ctl_table_t *t);

/* Appends ,"key":"value" (or without the comma when b ends with '{'). */
void ctl_json_kv_str(buf_t *b, const char *key, const char *value);
void ctl_json_kv_int(buf_t *b, const char *key, long long v);
void ctl_json_kv_bool(buf_t *b, const char *key, bool v);
void ctl_json_kv_raw(buf_t *b, const char *key, const char *raw);

/* Seconds as "3d 4h", "5m", "12s" (relative age or remaining time). */
void ctl_fmt_age(int64_t secs, char *out, size_t outlen);

/* A progress bar with rate and ETA, drawn on stderr at most every 200 ms, only when stderr is a
 * terminal. total == 0 means unknown (no ETA). */
typedef struct ctl_progress {
    bool on;
    const char *what;
    uint64_t total, done;
    uint64_t start_ms, drawn_ms;
} ctl_progress_t;

void ctl_progress_start(ctl_progress_t *p, const char *what, uint64_t total);
void ctl_progress_add(ctl_progress_t *p, uint64_t n);
void ctl_progress_end(ctl_progress_t *p); /* clears the line */

/* ---- Redis session ---- */

/* An owned copy of a reply (db replies are borrowed views valid only inside the callback). */
typedef struct ctl_val {
    db_reply_type_t type;
    long long integer;
    char *str; /* strings, status and errors (NUL-terminated) */
    size_t len;
    struct ctl_val **elem; /* arrays */
    size_t n;
} ctl_val_t;

void ctl_val_free(ctl_val_t *v); /* accepts NULL */
/* The string of element i when it is a string reply, else NULL. */
const char *ctl_val_str(const ctl_val_t *v, size_t i, size_t *len);

typedef struct ctl_env {
    const conf_t *conf; /* borrowed */
    uv_loop_t loop;
    db_t *db;
    char prefix[80];
    int pending; /* commands issued and not yet answered */
    int failure; /* first transport failure (DB_E*), 0 if none */
} ctl_env_t;

/* Creates the loop and the Redis client and waits (bounded) until it is ready. Returns CTL_OK, or
 * CTL_UNAVAILABLE after printing "redis unavailable at <url>: <reason>" on stderr (the env is
 * then already closed). */
int ctl_env_open(ctl_env_t *e, const conf_t *conf);
void ctl_env_close(ctl_env_t *e);
/* Runs the loop until fewer than `below` commands are pending (0: all answered). */
void ctl_env_wait(ctl_env_t *e, int below);
/* Counts one more pending operation; ctl_env_done marks it answered (for callers that use module
 * APIs with their own callbacks). */
void ctl_env_begin(ctl_env_t *e);
void ctl_env_done(ctl_env_t *e, int status);
/* Issues a command whose copied reply lands in *slot (NULL on transport failure, see failure). */
void ctl_cmd_async(ctl_env_t *e, ctl_val_t **slot, int argc, const char *const *argv,
                   const size_t *lens);
/* One command, waited for. Returns the copied reply (caller frees) or NULL on transport failure
 * (a message was already printed). */
ctl_val_t *ctl_cmd(ctl_env_t *e, int argc, const char *const *argv, const size_t *lens);
/* Prints "redis unavailable at <url>: <reason>" for a transport failure; returns CTL_UNAVAILABLE.
 */
int ctl_unavailable(const ctl_env_t *e, int status);

/* Builds "<prefix>dev:{<user>}" etc. */
void ctl_key(const ctl_env_t *e, char *out, size_t outlen, const char *kind, const char *id);

/* Reads one line of at most max bytes (newline stripped) into line. Returns 1 on a line, 0 at
 * EOF, -1 when the line was longer than max (the rest of it is skipped). */
int ctl_read_line(FILE *f, char *line, size_t max, size_t *len);

#endif
