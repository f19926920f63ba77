/* db.h - asynchronous Redis client on the libuv loop, shared by every module that keeps state in
 * Redis (token store, rate limits, dedup, receipts, trace).
 *
 * What hiredis 0.14 lacks and this adds: a per-command timeout (a stuck server fails commands
 * within redis.timeout_ms instead of hanging them), reconnection with backoff, AUTH/SELECT from the
 * URL on every connect, and Lua scripts sent by SHA with a transparent EVAL fallback on NOSCRIPT.
 * Commands issued in the same loop iteration are pipelined: they leave in one write just before
 * the loop next waits (wire.c).
 *
 * Redis Cluster (opts.cluster): the same interface over one connection per master. Each command
 * goes to the master serving its key's slot (db_key_slot; db_eval: the first key, and all keys of
 * one call must share a slot), keyless ones (PING, INFO, SCRIPT, TIME) to any master; MOVED, ASK,
 * TRYAGAIN and CLUSTERDOWN are handled here (cluster.c), so callers see the same replies as from a
 * standalone server. db_ready() holds while every slot is served by a connected master.
 *
 * Loop affinity: everything here runs on the loop given to db_create. Callbacks fire exactly once,
 * never from inside the call that issued the command, also on timeout, disconnect and destroy. */
#ifndef HERALD_DB_DB_H
#define HERALD_DB_DB_H

#include "core/metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct db db_t;
typedef struct db_script db_script_t;
typedef struct db_reply db_reply_t; /* a borrowed view of a reply, valid only inside the callback */

enum {
    DB_OK = 0,
    DB_EDOWN = -1,      /* not connected (connecting, or reconnecting after an error) */
    DB_ETIMEOUT = -2,   /* no reply within the command timeout */
    DB_ESHUTDOWN = -3,  /* db_destroy ran before the reply arrived */
    DB_EPROTO = -4,     /* the connection broke mid-command or the reply was unusable */
    DB_ECROSSSLOT = -5, /* cluster, debug builds: the keys of one db_eval map to different slots */
};

typedef enum {
    DB_REPLY_STRING,
    DB_REPLY_ARRAY,
    DB_REPLY_INTEGER,
    DB_REPLY_NIL,
    DB_REPLY_STATUS,
    DB_REPLY_ERROR,
} db_reply_type_t;

/* status is DB_OK with a non-NULL reply (which may be a DB_REPLY_ERROR), or a negative DB_E* code
 * with reply == NULL. */
typedef void (*db_cb)(int status, const db_reply_t *reply, void *arg);

typedef struct db_opts {
    const char *url;       /* redis://[:password@]host:port[/db] or unix:///path/to/sock[?db=N] */
    const char *password;  /* overrides the URL's password when non-NULL and non-empty */
    long timeout_ms;       /* per-command and connect timeout */
    metric_reg_t *metrics; /* borrowed; may be NULL */
    const char *name;      /* label for logs/metrics ("main"); NULL means "main" */
    bool cluster;          /* Redis Cluster: url names any node (redis:// only, database 0) */
    const char *seeds; /* cluster: more nodes to start from, "host:port,host:port"; may be NULL */
} db_opts_t;

/* new: free with db_destroy. Starts connecting at once; db_ready() tells when it is usable.
 * Returns NULL with a sentence in err for a bad URL. */
db_t *db_create(uv_loop_t *loop, const db_opts_t *opts, char *err, size_t errlen);
/* Fails every pending command with DB_ESHUTDOWN (their callbacks run inside this call), closes
 * the connection and timers. Accepts NULL. Run the loop afterwards so libuv finishes closing. */
void db_destroy(db_t *db);

bool db_ready(const db_t *db);
/* A short human reason when not ready ("connection refused", "timeout"), "" when ready. */
const char *db_last_error(const db_t *db);
/* Registers a callback for readiness changes (up == true after connect + AUTH/SELECT). */
void db_on_state(db_t *db, void (*cb)(bool up, void *arg), void *arg);

/* Sends one command. argvlen may be NULL for NUL-terminated arguments. Always returns 0: failures
 * come through cb (DB_EDOWN at once-but-deferred when not connected). */
int db_command(db_t *db, db_cb cb, void *arg, int argc, const char *const *argv,
               const size_t *argvlen);
/* Convenience: NULL-terminated list of string arguments. */
int db_cmd(db_t *db, db_cb cb, void *arg, ...);

/* Registers a Lua script (text copied). The handle is borrowed, owned by db. */
db_script_t *db_script(db_t *db, const char *lua);
/* EVALSHA sha nkeys keys... args...; on NOSCRIPT it is resent as EVAL transparently. argv holds
 * the keys followed by the args. */
int db_eval(db_t *db, db_script_t *s, db_cb cb, void *arg, int nkeys, int argc,
            const char *const *argv, const size_t *argvlen);

/* Runs fn(arg) once on a later loop iteration (or inside db_destroy if that comes first): lets
 * modules built on db fail a call without running its callback inside the call. */
void db_defer(db_t *db, void (*fn)(void *arg), void *arg);

/* ---- Redis Cluster ---- */

bool db_is_cluster(const db_t *db);
/* The slot (0..16383) of a key, hash tags included, as CLUSTER KEYSLOT says. Pure: any thread. */
unsigned db_key_slot(const char *key, size_t len);

/* The masters of the current slot map (standalone: 1, the server). Index i names one master
 * while the map does not change; a resharding between calls may shift them (like SCAN, a walk
 * over every master may then see a key twice or miss a moved one). */
size_t db_masters(const db_t *db);

typedef struct db_node_info {
    char addr[280];  /* host:port (standalone: the URL's address) */
    unsigned slots;  /* slots this master serves (standalone: 16384) */
    bool up;         /* connected and past AUTH/PING */
    char error[128]; /* why not, "" when up */
} db_node_info_t;

/* Fills out for master i; -1 when i >= db_masters(). */
int db_master_info(const db_t *db, size_t i, db_node_info_t *out);
/* db_command and db_eval addressed to master i, for what runs on every node (SCAN, counts,
 * sweeps). No redirects are followed: a MOVED reply reaches cb as an error reply. DB_EDOWN when
 * i >= db_masters() or that master is not connected. */
int db_command_at(db_t *db, size_t i, db_cb cb, void *arg, int argc, const char *const *argv,
                  const size_t *argvlen);
int db_eval_at(db_t *db, size_t i, db_script_t *s, db_cb cb, void *arg, int nkeys, int argc,
               const char *const *argv, const size_t *argvlen);

/* ---- one script over parts of many slots ----
 * A batch of self-contained parts (a loop turn's ledger entries, say): each part has its own keys,
 * all of one slot, and its own arguments; every call also takes the shared head arguments.
 * argv: every part's keys in part order, then the nhead head arguments, then every part's
 * arguments in part order. Standalone: one db_eval of it all. Cluster: one db_eval per slot the
 * parts' keys map to, with that slot's parts in order (the script must treat each part alone).
 * cb fires once all calls answered, with the integers of the parts' replies in part order (part i
 * answers nres integers, its share of an array reply; nres 0 parts answer anything but an error;
 * res borrowed for the callback) and DB_OK, or the first failure (DB_EPROTO for an error reply
 * or an array of the wrong length): then the integers of the failed calls' parts are
 * DB_PARTS_FAILED and the others as answered (on a cluster some slots may have answered). */
#define DB_PARTS_FAILED (-0x7fffffffffffffffLL - 1)
typedef struct db_part {
    size_t nkeys, nargs, nres;
} db_part_t;
typedef void (*db_parts_cb)(int status, const long long *res, size_t nres, void *arg);
void db_eval_parts(db_t *db, db_script_t *s, db_parts_cb cb, void *arg, size_t nparts,
                   const db_part_t *parts, size_t nhead, const char *const *argv);

/* Reply accessors. */
db_reply_type_t db_reply_type(const db_reply_t *r);
long long db_reply_int(const db_reply_t *r);
/* String, status and error replies: the bytes (NUL-terminated) and their length in *len. */
const char *db_reply_str(const db_reply_t *r, size_t *len);
size_t db_reply_len(const db_reply_t *r); /* array element count */
const db_reply_t *db_reply_elem(const db_reply_t *r, size_t i);

const char *db_strerror(int status);

#endif
