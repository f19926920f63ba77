/* dynamo.h - `heraldctl tokens import --format dynamodb-json`: the seed's DynamoDB table, as
 * `aws dynamodb export-table-to-point-in-time --export-format DYNAMODB_JSON` writes it (a folder
 * with manifest-summary.json, manifest-files.json and gzipped data files of {"Item":{...}} lines
 * with typed attributes), into herald records.
 *
 * The parsers are pure functions of their input (no I/O, no clock: now is an argument), so
 * tests/fuzz/fuzz_ctl_dynamo.c drives exactly what the command runs. The command itself
 * (ctl/dynamo_import.c) reads the files and writes through tok_lc_import, the path of the
 * JSON-lines import, under registration's rules. */
#ifndef HERALD_CTL_DYNAMO_H
#define HERALD_CTL_DYNAMO_H

#include "tokens/model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest data-file line read (an item of the seed is about 500 bytes; DynamoDB allows 400 KB,
 * but nothing that large is a device token). */
#define CTL_DDB_LINE_MAX 65536
/* Longest data-file name taken from manifest-files.json (NAME_MAX). */
#define CTL_DDB_NAME_MAX 255
/* An expiresAt of at least this is taken as milliseconds (in seconds it would be year 5138). */
#define CTL_DDB_MS_THRESHOLD 100000000000LL

enum {
    CTL_DDB_ITEM = 0,     /* r holds a record to import */
    CTL_DDB_BLANK = 1,    /* an empty line: skipped */
    CTL_DDB_EXPIRED = 2,  /* expiresAt <= now: dropped (DynamoDB's TTL deletes lazily) */
    CTL_DDB_REJECTED = -1 /* why says which attribute and what is wrong with it */
};

/* How an item's expiresAt was read (flags of ctl_ddb_item). */
enum {
    CTL_DDB_EXP_DERIVED = 1u << 0, /* missing or NULL: updatedAt + ttl_days */
    CTL_DDB_EXP_MS = 1u << 1,      /* given in milliseconds, divided by 1000 */
};

/* One data-file line into r, mapping the seed's attributes (userId, deviceId, expoPushToken,
 * platform as S; registeredAt, updatedAt as ISO-8601 S; isActive as BOOL; expiresAt as N epoch
 * seconds, optional) to the record the JSON-lines import produces. Other attributes are
 * ignored; {"NULL":true} counts as missing.
 * - Expiry is decided first: an item whose expiresAt (or, without one, updatedAt + ttl_days) is
 *   at or before now_s is CTL_DDB_EXPIRED whatever else it holds.
 * - Every field is then checked as registration checks it (tokens/model.h); times are
 *   normalised to "YYYY-MM-DDTHH:MM:SS.mmmZ".
 * - An inactive item (the seed's soft delete) becomes deactivatedReason "user", deactivatedAt
 *   its updatedAt.
 * Returns a CTL_DDB_* code; flags gets CTL_DDB_EXP_* bits (for CTL_DDB_ITEM and _EXPIRED); why
 * (whylen bytes) a sentence for CTL_DDB_REJECTED. Lines over CTL_DDB_LINE_MAX are rejected. */
int ctl_ddb_item(const char *line, size_t len, int64_t now_s, long ttl_days, tok_record_t *r,
                 unsigned *flags, char *why, size_t whylen);

/* One line of manifest-files.json ({"itemCount":N,"dataFileS3Key":"AWSDynamoDB/<id>/data/<x>",
 * ...}): the data file's name <x> (a plain name: no '/', not "." or "..", printable, at most
 * CTL_DDB_NAME_MAX bytes) and itemCount (-1 when absent). Returns 0; 1 for a blank line; -1
 * with a static reason in why. */
int ctl_ddb_manifest_line(const char *line, size_t len, char name[CTL_DDB_NAME_MAX + 1],
                          long *items, const char **why);

/* manifest-summary.json: checks outputFormat (DYNAMODB_JSON) and exportType (a full export) when
 * present, and gives itemCount (-1 when absent). Returns 0, or -1 with a static reason. */
int ctl_ddb_summary(const char *json, size_t len, long *items, const char **why);

struct ctl_env;
/* The command: PATH is an export folder (manifest-files.json names the data files under
 * data/) or one .json / .json.gz data file. Prints the report; returns a CTL_* exit code
 * (CTL_PARTIAL when items were rejected or refused, or a file did not read whole). */
int ctl_import_dynamo(struct ctl_env *e, const char *path, bool dry, bool json);

#endif
