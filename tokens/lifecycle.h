/* lifecycle.h - bulk token maintenance on Redis, in bounded chunks: removing expired tokens (from
 * the expiry index), scanning every device hash (counting states, removing inactive tokens past a
 * retention cutoff), and importing records (by registration's rules). One implementation shared by
 * `heraldctl tokens sweep|cleanup|count|import` and the in-daemon sweep (tokens/sweep.h).
 *
 * Every chunk is one Lua script, so a record, its owner key and its expiry entry change together
 * and two sweepers working at once never remove the same record twice: the counts they report
 * add up to exactly what was removed. The expiry schedule is sharded over KEY_TOKEN_BUCKETS
 * buckets (db/keys.h); an expire chunk works on one. Scripts touch keys they build from key parts
 * db/keys.h gives them. On Redis Cluster (db_is_cluster) an expire or scan chunk runs as one
 * script per slot (lifecycle.c says in which order), a scan walks one master after the other and
 * an import writes one record after the other, each as registration's split steps; a reindex
 * chunk reads one master's records and writes each one's keys in its token's slot. There a record
 * is still removed once, but two sweepers reaching it at once count it expired (one) and stale
 * (the other).
 *
 * Loop affinity: the db's loop. Callbacks fire exactly once, never from inside the call. */
#ifndef HERALD_TOKENS_LIFECYCLE_H
#define HERALD_TOKENS_LIFECYCLE_H

#include "tokens/model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
typedef struct tok_lc tok_lc_t;

/* What one chunk saw and did. Strings are borrowed for the duration of the callback. */
typedef struct tok_lc_result {
    /* expire chunk */
    long examined;        /* index entries looked at */
    long removed_expired; /* records removed because expiresAt <= now */
    long removed_stale;   /* index entries whose record no longer existed */
    long rescored;        /* index entries whose score disagreed with the record (fixed) */
    /* scan chunk: states of the records left after the chunk */
    long active, inactive, expired, corrupt;
    long removed_inactive; /* inactive records past the cutoff, removed */
    bool done;             /* the range or the SCAN cursor is exhausted */
    const char *cursor;    /* scan: the next cursor */
    /* reindex chunk */
    long owners_written; /* owner keys (re)written */
    long legacy_removed; /* keys of the schema before token buckets, removed */
    /* items (when asked for): "userId\x1fdeviceId\x1f<why>", why = expired|stale|inactive */
    const char *const *items;
    size_t nitems;
} tok_lc_result_t;

/* status: 0, or TOK_EUNAVAIL (store.h) when Redis failed or did not answer. res NULL on error. */
typedef void (*tok_lc_cb)(int status, const tok_lc_result_t *res, void *arg);

/* new: free with tok_lc_destroy. db borrowed (must outlive it); prefix copied. */
tok_lc_t *tok_lc_create(struct db *db, const char *prefix);
void tok_lc_destroy(tok_lc_t *lc); /* accepts NULL; in-flight callbacks still fire (from db) */

/* Removes up to `limit` records whose expiry score in bucket (0 <= bucket < KEY_TOKEN_BUCKETS,
 * db/keys.h) is <= now_s, with their owner keys (when they still point at the record) and index
 * entries. dry_run changes nothing; then pass the number examined so far in this bucket as
 * offset to walk the range (offset is 0 for real runs). A walk covers every bucket. */
void tok_lc_expire_chunk(tok_lc_t *lc, unsigned bucket, int64_t now_s, long offset, long limit,
                         bool dry_run, bool want_items, tok_lc_cb cb, void *arg);

typedef struct tok_lc_scan_opts {
    int64_t now_s;
    int64_t inactive_cutoff; /* remove inactive records deactivated (or, without deactivatedAt,
                                updated) before this unix time; < 0 keeps them all */
    bool remove_expired;     /* also remove records with expiresAt <= now */
    bool dry_run;
    bool want_items;
    long count; /* SCAN COUNT hint per chunk (e.g. 200) */
} tok_lc_scan_opts_t;

/* One SCAN step over the device hashes from cursor ("0" to start), handling every record of the
 * hashes it returns. Call again with res->cursor until res->done. */
void tok_lc_scan_chunk(tok_lc_t *lc, const char *cursor, const tok_lc_scan_opts_t *o, tok_lc_cb cb,
                       void *arg);

/* One SCAN step (count keys) over every key under the prefix from cursor ("0" to start; on a
 * cluster the walk goes over every master, as tok_lc_cursor_next says): the records of the device
 * hashes it returns get their owner keys and expiry entries under registration's rules (examined
 * counts them; an owner key another record holding the token has is kept, also one a
 * registration writes while the walk runs), and the keys of the schema before token buckets
 * (<p>owner:<token>, <p>expiry) go. Call again with res->cursor until res->done. For upgrades
 * and repairs (heraldctl tokens reindex); a second walk changes nothing. */
void tok_lc_reindex_chunk(tok_lc_t *lc, const char *cursor, long count, int64_t now_s, tok_lc_cb cb,
                          void *arg);

/* Writes validated records (as parsed by tok_record_parse) in one script, under the rules of
 * registration (tokens/lua/bind.lua, shared with the token store's register): a new device past
 * max_devices evicts the user's oldest inactive or expired records first, or is refused; an
 * active, unexpired record takes its token from the record that held it (deactivated with reason
 * "reassigned"); an inactive one gets the owner key only when no other record holds the token;
 * an expired one gets none and is left for the sweep. Each record is stored as given
 * (registeredAt, updatedAt, isActive, expiresAt, deactivated fields). A record already stored
 * exactly as given is left alone, so the same records twice change nothing the second time.
 * now_ms: the wall clock (what has expired; the time of a reassignment). */
typedef struct tok_lc_import_result {
    long created, updated, unchanged;
    long reassigned;       /* records that held an imported token, now deactivated */
    long evicted;          /* inactive or expired records removed to make room */
    const size_t *refused; /* indexes into recs refused by the device limit, ascending */
    size_t nrefused;
} tok_lc_import_result_t;
/* res and res->refused are borrowed for the duration of the callback. */
typedef void (*tok_lc_import_cb)(int status, const tok_lc_import_result_t *res, void *arg);
/* recs borrowed for the call only (copied before it returns). */
void tok_lc_import(tok_lc_t *lc, int64_t now_ms, long max_devices, const tok_record_t *recs,
                   size_t n, tok_lc_import_cb cb, void *arg);

/* A SCAN walk over every master (Redis Cluster; standalone: the one server). The cursor handed to
 * callers is "0" at the start and the end and "<master>:<cursor>" in between:
 * tok_lc_cursor_node() gives the master to send the next SCAN to and that master's cursor (a
 * suffix of cursor); tok_lc_cursor_next() turns its reply cursor into the walk's next one (out,
 * 64 bytes) and returns true when the walk is complete. */
#define TOK_LC_CURSOR_MAX 64
size_t tok_lc_cursor_node(const char *cursor, const char **node_cursor);
bool tok_lc_cursor_next(const struct db *db, size_t master, const char *reply_cursor,
                        char out[TOK_LC_CURSOR_MAX]);

/* Escapes glob characters of s (for SCAN MATCH) into out. */
void tok_lc_glob_escape(const char *s, char *out, size_t outlen);

#endif
