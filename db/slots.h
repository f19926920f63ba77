/* slots.h - the pure parts of Redis Cluster support (internal to the db module; public so tests
 * and the fuzz target can reach them): the key slot (CRC16 with hash tags), the CLUSTER SLOTS
 * reply parser and the MOVED/ASK error parser. Nothing here does I/O. */
#ifndef HERALD_DB_SLOTS_H
#define HERALD_DB_SLOTS_H

#include "db/db.h"

#include <stdbool.h>
#include <stddef.h>

#define DB_SLOTS 16384
#define DB_HOST_MAX 256 /* host names and addresses, NUL included */

typedef struct db_slot_range {
    unsigned first, last;   /* inclusive, first <= last < DB_SLOTS */
    char host[DB_HOST_MAX]; /* "" when the node did not say (use the host that answered) */
    int port;
} db_slot_range_t;

/* CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with. */
unsigned db_crc16(const char *s, size_t len);

/* Parses a CLUSTER SLOTS reply: an array of [first, last, [host, port, ...], replicas...]. Masters
 * whose endpoint is unknown ("?") are left out (their slots count as not served). new: *out (free
 * it), *n ranges. Returns 0, or -1 with a sentence in err (wrong shape, slot or port out of
 * range, bad host, overlapping ranges). */
int db_slots_parse(const db_reply_t *r, db_slot_range_t **out, size_t *n, char *err, size_t errlen);

typedef struct db_redirect {
    bool ask; /* ASK (one command, after ASKING) rather than MOVED (the slot moved) */
    unsigned slot;
    char host[DB_HOST_MAX]; /* "" when Redis left it out: the host that answered */
    int port;
} db_redirect_t;

/* Parses the text of a "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" error reply.
 * Returns 0, or -1 when s is not exactly one of those. */
int db_redirect_parse(const char *s, size_t len, db_redirect_t *out);

#endif
