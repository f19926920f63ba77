/* connlimit.h - open connections per client address and in total, for one HTTP listener.
 *
 * The listener asks disp_connlimit_check() before it takes a connection on, then counts it with
 * _add() once taken and _remove() when it closes. IPv4 addresses count one by one; IPv6 addresses
 * count by their /64, the block one subscriber usually holds, so one host cannot dodge the limit
 * by rotating through its own addresses. Addresses of other families are only counted in the
 * total. Plain C, no I/O; loop-thread only. */
#ifndef HERALD_HTTP_CONNLIMIT_H
#define HERALD_HTTP_CONNLIMIT_H

#include <stddef.h>

struct sockaddr;
typedef struct disp_connlimit disp_connlimit_t;

typedef enum {
    DISP_CONN_OK = 0,
    DISP_CONN_PER_IP = -1,   /* the address already holds per_ip connections */
    DISP_CONN_CAPACITY = -2, /* the listener already holds max_total connections */
} disp_conn_verdict_t;

/* new: free with disp_connlimit_destroy. per_ip 0 means no per-address limit. */
disp_connlimit_t *disp_connlimit_create(size_t max_total, size_t per_ip);
void disp_connlimit_destroy(disp_connlimit_t *l); /* accepts NULL */
/* Whether one more connection from sa (borrowed) may be taken on; counts nothing. */
disp_conn_verdict_t disp_connlimit_check(const disp_connlimit_t *l, const struct sockaddr *sa);
/* Counts a connection from sa (NULL: an address of unknown family) until _remove() with the same
 * address. */
void disp_connlimit_add(disp_connlimit_t *l, const struct sockaddr *sa);
void disp_connlimit_remove(disp_connlimit_t *l, const struct sockaddr *sa);
/* Connections counted now, in total and from the address of sa. */
size_t disp_connlimit_open(const disp_connlimit_t *l);
size_t disp_connlimit_open_from(const disp_connlimit_t *l, const struct sockaddr *sa);

#endif
