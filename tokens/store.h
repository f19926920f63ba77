/* store.h - the token store interface: asynchronous operations on device-token records.
 *
 * An interface (struct of function pointers) so the API handlers and the dispatcher can be tested
 * with a fake; tok_store_redis_create() gives the real one (Redis layout in DESIGN.md). Every
 * multi-key change is one Lua script, so a crash never leaves a record and its indexes
 * disagreeing; a registration split per hash slot (tok_store_redis_split) runs its scripts in an
 * order that keeps the owner key the one word on who may receive a token's notifications
 * (DESIGN.md "Reassignment across slots"). The API's calls carry the user's rate limit
 * (tok_quota_t), charged by the same script.
 *
 * All calls take (cb, arg); cb fires exactly once, never from inside the call, on the loop. */
#ifndef HERALD_TOKENS_STORE_H
#define HERALD_TOKENS_STORE_H

#include "core/clock.h"
#include "tokens/model.h"
#include "tokens/ratelimit.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct tok_store tok_store_t;

enum {
    TOK_OK = 0,
    TOK_ENOTFOUND = -1, /* no such record */
    TOK_ELIMIT = -2,    /* the user already has tokens.max_devices_per_user devices */
    TOK_EUNAVAIL = -3,  /* the backend is down or did not answer in time: retry later */
    TOK_ECORRUPT = -4,  /* a stored record could not be parsed */
    TOK_EINVAL = -5,    /* invalid argument */
    TOK_ECONFLICT = -6, /* only_if_token given and the record holds another token */
    TOK_ELIMITED = -7,  /* the user's rate limit refused the request: nothing changed */
};

/* An API request's per-user rate limit (GCRA, ratelimit.h), charged in the same script as the
 * operation. verdict (caller-owned) receives the user bucket's verdict before the callback fires
 * whenever the script ran (TOK_OK, TOK_ELIMITED and the store's other answers). */
typedef struct tok_quota {
    long rate, burst; /* rate or burst 0: no limit */
    tok_rl_key_t *verdict;
} tok_quota_t;

typedef struct tok_reg_req {
    const char *user_id; /* validated by the caller */
    const char *device_id;
    const char *token;
    tok_platform_t platform;
    long ttl_days;
    /* canonical BCP 47 tag, or NULL / "" for none (the record loses its locale: a registration
     * states the device's settings as they are now) */
    const char *locale;
    const tok_quota_t *quota; /* borrowed for the call; NULL: no limit */
} tok_reg_req_t;

typedef struct tok_reg_result {
    bool created;        /* first registration of (user, device) */
    tok_record_t record; /* the record as stored */
    bool reassigned;     /* the token was bound to another (user, device), now deactivated */
    char prev_user_id[TOK_USER_MAX + 1];
    char prev_device_id[TOK_DEVICE_MAX + 1];
} tok_reg_result_t;

typedef struct tok_owner {
    char user_id[TOK_USER_MAX + 1];
    char device_id[TOK_DEVICE_MAX + 1];
} tok_owner_t;

typedef void (*tok_reg_cb)(int status, const tok_reg_result_t *res, void *arg);
/* recs are borrowed for the duration of the callback. */
typedef void (*tok_list_cb)(int status, const tok_record_t *recs, size_t n, void *arg);
typedef void (*tok_owner_cb)(int status, const tok_owner_t *owner, void *arg);
typedef void (*tok_done_cb)(int status, void *arg);

typedef struct tok_store_ops {
    void (*register_device)(tok_store_t *s, const tok_reg_req_t *req, tok_reg_cb cb, void *arg);
    void (*deactivate)(tok_store_t *s, const char *user_id, const char *device_id,
                       const char *reason, const char *only_if_token, tok_done_cb cb, void *arg);
    void (*purge)(tok_store_t *s, const char *user_id, const char *device_id, tok_done_cb cb,
                  void *arg);
    void (*list)(tok_store_t *s, const char *user_id, tok_list_cb cb, void *arg);
    void (*find_owner)(tok_store_t *s, const char *token, tok_owner_cb cb, void *arg);
    bool (*ready)(const tok_store_t *s);
    void (*destroy)(tok_store_t *s);
    /* The API's deactivate (reason "user") and list with the user's quota; NULL in a store without
     * limits: the wrappers below call deactivate and list instead. */
    void (*deactivate_limited)(tok_store_t *s, const char *user_id, const char *device_id,
                               const tok_quota_t *quota, tok_done_cb cb, void *arg);
    void (*list_limited)(tok_store_t *s, const char *user_id, const tok_quota_t *quota,
                         tok_list_cb cb, void *arg);
} tok_store_ops_t;

struct tok_store {
    const tok_store_ops_t *ops;
};

/* Registers or refreshes (user, device): keeps registeredAt, sets isActive, updatedAt = now,
 * expiresAt = now + ttl_days; deactivates another binding of the same token first. */
static inline void tok_store_register(tok_store_t *s, const tok_reg_req_t *req, tok_reg_cb cb,
                                      void *arg)
{
    s->ops->register_device(s, req, cb, arg);
}
/* Soft delete with a reason ("user", "DeviceNotRegistered", "admin", ...). When only_if_token is
 * non-NULL the record is changed only if it still holds that token (TOK_ECONFLICT otherwise): a
 * late DeviceNotRegistered must not deactivate a token the app has since replaced.
 * TOK_ENOTFOUND when there is no such record. */
static inline void tok_store_deactivate(tok_store_t *s, const char *user_id, const char *device_id,
                                        const char *reason, const char *only_if_token,
                                        tok_done_cb cb, void *arg)
{
    s->ops->deactivate(s, user_id, device_id, reason, only_if_token, cb, arg);
}
/* tok_store_deactivate(reason "user") and tok_store_list, with the user's quota charged first
 * (TOK_ELIMITED: refused, nothing changed). quota is borrowed for the call. */
static inline void tok_store_deactivate_limited(tok_store_t *s, const char *user_id,
                                                const char *device_id, const tok_quota_t *quota,
                                                tok_done_cb cb, void *arg)
{
    if (s->ops->deactivate_limited)
        s->ops->deactivate_limited(s, user_id, device_id, quota, cb, arg);
    else
        s->ops->deactivate(s, user_id, device_id, "user", NULL, cb, arg);
}
static inline void tok_store_list_limited(tok_store_t *s, const char *user_id,
                                          const tok_quota_t *quota, tok_list_cb cb, void *arg)
{
    if (s->ops->list_limited)
        s->ops->list_limited(s, user_id, quota, cb, arg);
    else
        s->ops->list(s, user_id, cb, arg);
}
/* Hard delete of one device (device_id != NULL) or of every device of the user, with their
 * owner and expiry index entries. TOK_ENOTFOUND when nothing existed. */
static inline void tok_store_purge(tok_store_t *s, const char *user_id, const char *device_id,
                                   tok_done_cb cb, void *arg)
{
    s->ops->purge(s, user_id, device_id, cb, arg);
}
/* All records of a user (active and inactive), in one round trip; n == 0 for an unknown user. */
static inline void tok_store_list(tok_store_t *s, const char *user_id, tok_list_cb cb, void *arg)
{
    s->ops->list(s, user_id, cb, arg);
}
/* Who holds this push token; TOK_ENOTFOUND if nobody. */
static inline void tok_store_find_owner(tok_store_t *s, const char *token, tok_owner_cb cb,
                                        void *arg)
{
    s->ops->find_owner(s, token, cb, arg);
}
static inline bool tok_store_ready(const tok_store_t *s)
{
    return s->ops->ready(s);
}
static inline void tok_store_destroy(tok_store_t *s)
{
    if (s)
        s->ops->destroy(s);
}

const char *tok_strerror(int status);

struct db;
/* new: the Redis-backed store. db is borrowed (must outlive the store); prefix is copied
 * ("herald:"); clock borrowed (NULL = system clock); max_devices bounds devices per user. */
tok_store_t *tok_store_redis_create(struct db *db, const char *prefix, const clk_t *clock,
                                    long max_devices);
/* One script per hash slot (Redis Cluster): a registration runs as its user slot's script, then
 * one per token slot it touches (DESIGN.md "Reassignment across slots"), instead of one script. Off
 * by default; correct on a single Redis too (the tests run both). */
void tok_store_redis_split(tok_store_t *s, bool split);

/* ---- reading records as stored (heraldctl) ----
 * An operations tool shows what Redis holds, unreadable records included, and walks every
 * record; the daemon needs neither. These work on the Redis store only (s from
 * tok_store_redis_create; anything else aborts). Same loop and callback rules as above. */

/* One stored record: parsed, or corrupt with the reason. Borrowed for the callback. */
typedef struct tok_entry {
    const char *user_id;   /* from the hash key */
    const char *device_id; /* the hash field */
    const char *raw;       /* the stored JSON (NUL-terminated) */
    size_t raw_len;
    bool corrupt; /* rec is unusable: tok_record_parse refused raw, err says why */
    char err[96];
    tok_record_t rec;
} tok_entry_t;

typedef void (*tok_entries_cb)(int status, const tok_entry_t *entries, size_t n, void *arg);
typedef void (*tok_scan_cb)(int status, const tok_entry_t *entries, size_t n, const char *cursor,
                            void *arg);
typedef void (*tok_count_cb)(int status, long long n, void *arg);

/* Every record of a user (device_id NULL) or the one of a device, as stored; n == 0 when there
 * is none. TOK_EINVAL for an invalid user or device id. */
void tok_store_read(tok_store_t *s, const char *user_id, const char *device_id, tok_entries_cb cb,
                    void *arg);
/* One SCAN step over the device hashes from cursor ("0" to start; count is the SCAN COUNT hint):
 * the records of the hashes it returned, and the cursor to continue from ("0": walk complete).
 * Every record present for the whole walk is seen at least once. On Redis Cluster the walk goes
 * over one master after the other (tokens/lifecycle.h, tok_lc_cursor_node). */
void tok_store_scan(tok_store_t *s, const char *cursor, long count, tok_scan_cb cb, void *arg);
/* Entries of the expiry buckets (one per record) with expiresAt <= max_expires_s; INT64_MAX
 * counts them all. */
void tok_store_count_expiring(tok_store_t *s, int64_t max_expires_s, tok_count_cb cb, void *arg);

#endif
