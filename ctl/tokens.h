/* tokens.h - pieces shared by the `heraldctl tokens` subcommands (tokens.c for queries
 * and per-record changes, bulk.c for sweep, cleanup, export and import) and diagnose. */
#ifndef HERALD_DISPATCHER_CTL_TOKENS_H
#define HERALD_DISPATCHER_CTL_TOKENS_H

#include "ctl/util.h"
#include "tokens/model.h"

#include <stdbool.h>
#include <stdint.h>

/* One stored record as read: parsed, or corrupt with the reason. */
typedef struct ctl_rec {
    const char *device_id; /* the hash field (borrowed) */
    tok_record_t rec;
    bool corrupt;
    char err[96];
} ctl_rec_t;

/* Parses a HGETALL reply into recs (new array, free()); count in *n. */
ctl_rec_t *ctl_recs_from_hash(const ctl_val_t *v, size_t *n);
/* "active", "inactive", "expired" or "corrupt". */
const char *ctl_rec_state(const ctl_rec_t *r, int64_t now_s);
/* The record's JSON plus "state" (and "error"/"raw" for corrupt ones). */
void ctl_rec_json(const ctl_rec_t *r, const char *raw, int64_t now_s, buf_t *out);
/* When the record stopped being active: deactivatedAt, else updatedAt (unix s), or 0. */
int64_t ctl_rec_inactive_since(const tok_record_t *r);

int ctl_tokens_sweep(ctl_env_t *e, int argc, char **argv);
int ctl_tokens_cleanup(ctl_env_t *e, int argc, char **argv);
int ctl_tokens_export(ctl_env_t *e, int argc, char **argv);
int ctl_tokens_import(ctl_env_t *e, int argc, char **argv);
int ctl_tokens_count(ctl_env_t *e, int argc, char **argv);

#endif
