/* url.h - parsing of Redis URLs for db.c (internal to the db module; public so tests and the fuzz
 * target can reach it).
 *
 *   redis://[[user]:password@]host[:port][/db]     (port 6379 and db 0 by default)
 *   unix:///path/to/redis.sock[?db=N]
 *
 * The password and user are percent-decoded. Everything is bounded: the URL is at most
 * DB_URL_MAX bytes and every part fits its fixed-size field, or the URL is rejected. */
#ifndef HERALD_DB_URL_H
#define HERALD_DB_URL_H

#include <stddef.h>

#define DB_URL_MAX 1024

typedef struct db_url {
    char host[256]; /* "" for unix sockets; IPv6 without the brackets */
    int port;
    char path[108];     /* unix socket path (sun_path bound), "" for TCP */
    char user[128];     /* ACL user, "" for the default user */
    char password[256]; /* "" when none */
    long dbnum;         /* SELECT target, 0..DB_URL_DB_MAX */
} db_url_t;

#define DB_URL_DB_MAX 1000000L

/* Returns 0, or -1 with a sentence in err. out is fully written either way. */
int db_url_parse(const char *url, db_url_t *out, char *err, size_t errlen);

/* Decimal digits only (1 to 9 of them), value <= max: 0, else -1. Shared with slots.c. */
int db_parse_num(const char *s, size_t n, long max, long *out);

#endif
