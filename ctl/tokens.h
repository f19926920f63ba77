/* tokens.h - pieces shared by the `heraldctl tokens` subcommands (tokens.c for queries
 * and per-record changes, bulk.c for sweep, cleanup, export and import) and diagnose. */
#ifndef HERALD_DISPATCHER_CTL_TOKENS_H
#define HERALD_DISPATCHER_CTL_TOKENS_H

#include "ctl/util.h"
#include "tokens/model.h"
#include "tokens/store.h"

#include <stdbool.h>
#include <stdint.h>

/* One stored record as read (tok_store_read), owned: parsed, or corrupt with the reason. */
typedef struct ctl_rec {
    char *user_id;
    char *device_id; /* the hash field */
    char *raw;       /* the stored JSON */
    tok_record_t rec;
    bool corrupt;
    char err[96];
} ctl_rec_t;

typedef struct ctl_recs {
    ctl_rec_t *v;
    size_t n;
} ctl_recs_t;

/* Appends copies of the store's entries to rs. */
void ctl_recs_add(ctl_recs_t *rs, const tok_entry_t *es, size_t n);
void ctl_recs_cleanup(ctl_recs_t *rs);
/* Starts reading the records of a user (device NULL) or one device into rs (a pending
 * operation of e: ctl_env_wait, then check e->failure). */
void ctl_read_async(ctl_env_t *e, const char *user, const char *device, ctl_recs_t *rs);
/* The same, waited for. Returns CTL_OK or CTL_UNAVAILABLE (printed). */
int ctl_read(ctl_env_t *e, const char *user, const char *device, ctl_recs_t *rs);

/* tok_store_find_owner's answer: status TOK_OK (who is set), TOK_ENOTFOUND, TOK_ECORRUPT, ... */
typedef struct ctl_owner {
    ctl_env_t *e;
    int status;
    tok_owner_t who;
} ctl_owner_t;

/* Starts looking up who holds token (a pending operation of e; only TOK_EUNAVAIL counts as a
 * failure). */
void ctl_find_owner_async(ctl_env_t *e, const char *token, ctl_owner_t *out);

/* "active", "inactive", "expired" or "corrupt". */
const char *ctl_rec_state(const ctl_rec_t *r, int64_t now_s);
/* The record's JSON plus "state" (and "error"/"raw" for corrupt ones), as member key of b (or an
 * element, key NULL). */
void ctl_rec_json(buf_t *b, const char *key, const ctl_rec_t *r, int64_t now_s);
/* When the record stopped being active: deactivatedAt, else updatedAt (unix s), or 0. */
int64_t ctl_rec_inactive_since(const tok_record_t *r);

int ctl_tokens_sweep(ctl_env_t *e, int argc, char **argv);
int ctl_tokens_cleanup(ctl_env_t *e, int argc, char **argv);
int ctl_tokens_reindex(ctl_env_t *e, int argc, char **argv);
int ctl_tokens_export(ctl_env_t *e, int argc, char **argv);
int ctl_tokens_import(ctl_env_t *e, int argc, char **argv);
int ctl_tokens_count(ctl_env_t *e, int argc, char **argv);

#endif
