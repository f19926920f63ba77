/* util.h - what every heraldctl command shares: option parsing, durations ("30d"), tables, the
 * one JSON encoder of every --json, a progress bar on stderr (only when stderr is a terminal),
 * and the Redis session: one connection helper, with the token store and the delivery trace on
 * it, driven by its own libuv loop.
 *
 * heraldctl is a short-lived sequential program: a command starts module operations (token
 * store, lifecycle, trace, receipts; pipelined when it starts several before waiting) and then
 * runs the loop until they have answered. It never builds Redis keys or commands itself. Every
 * wait is bounded by redis.timeout_ms through the db client's own command timeout. */
#ifndef HERALD_DISPATCHER_CTL_UTIL_H
#define HERALD_DISPATCHER_CTL_UTIL_H

#include "config/config.h"
#include "core/buf.h"
#include "ctl/ctl.h"
#include "db/db.h"
#include "pipeline/trace.h"
#include "tokens/store.h"

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

/* ---- JSON: the one encoder of every --json ----
 * Values are appended to b; commas come by themselves (before anything that does not follow an
 * opening bracket or a member name). key names an object member; NULL appends an array element
 * or a top-level value. Strings are escaped by buf_json_str. */
void ctl_json_key(buf_t *b, const char *key); /* the comma and "key": before a custom value */
void ctl_json_open(buf_t *b, const char *key, char bracket); /* '{' or '[' */
void ctl_json_close(buf_t *b, char bracket);
void ctl_json_str(buf_t *b, const char *key, const char *value); /* NULL: null */
void ctl_json_int(buf_t *b, const char *key, long long v);
void ctl_json_bool(buf_t *b, const char *key, bool v);
/* A value that is JSON text already (a trace record as stored), copied as is. */
void ctl_json_raw(buf_t *b, const char *key, const char *json, size_t len);
/* Writes b and a newline to f, then empties b. */
void ctl_json_print(buf_t *b, FILE *f);

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

typedef struct ctl_env {
    const conf_t *conf; /* borrowed */
    uv_loop_t loop;
    db_t *db;
    tok_store_t *store;  /* the token store on db (tokens/store.h) */
    disp_trace_t *trace; /* the delivery trace on db (pipeline/trace.h) */
    int pending;         /* operations started and not yet answered */
    int failure;         /* first transport failure (DB_E*), 0 if none */
} ctl_env_t;

/* The one way heraldctl connects to Redis: redis.url, redis.password_file, redis.timeout_ms.
 * Creates the loop, the client, the token store and the trace reader, and waits (bounded) until
 * the client is ready. Returns CTL_OK; CTL_USAGE when the password file cannot be read; or
 * CTL_UNAVAILABLE after printing "redis unavailable at <url>: <reason>" on stderr (the env is
 * then already closed). */
int ctl_env_open(ctl_env_t *e, const conf_t *conf);
void ctl_env_close(ctl_env_t *e);
/* Runs the loop until fewer than `below` operations are pending (0: all answered). */
void ctl_env_wait(ctl_env_t *e, int below);
/* Counts one more pending operation; ctl_env_done marks it answered with its status (a DB_E*
 * code, or 0). */
void ctl_env_begin(ctl_env_t *e);
void ctl_env_done(ctl_env_t *e, int status);
/* A token store status as a DB_E* code for ctl_env_done (TOK_OK -> 0). */
int ctl_tok_failure(int tok_status);
/* Prints "redis unavailable at <url>: <reason>" for a transport failure; returns CTL_UNAVAILABLE.
 */
int ctl_unavailable(const ctl_env_t *e, int status);

/* The ids of the most recent jobs of a user, or of one of the user's devices (device may be
 * NULL), at most limit, from the delivery trace; waits for the answer. *ids is new: free each id
 * and the array (an array even when empty). A transport failure leaves e->failure set and no
 * ids. Returns the count. */
size_t ctl_recent_jobs(ctl_env_t *e, const char *user, const char *device, long limit, char ***ids);

/* Reads one line of at most max bytes (newline stripped) into line. Returns 1 on a line, 0 at
 * EOF, -1 when the line was longer than max (the rest of it is skipped). */
int ctl_read_line(FILE *f, char *line, size_t max, size_t *len);

#endif
