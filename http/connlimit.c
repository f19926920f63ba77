/* connlimit.c - per-address and total connection counts for one listener (see connlimit.h).
 *
 * A chained hash table from a 16-byte address key to a count. Entries exist only while their
 * address holds a connection, so the table never holds more entries than the listener holds
 * connections. The hash is keyed with a random seed: clients choose their IPv6 addresses, and a
 * fixed hash would let them pile every entry into one chain. */
#include "http/connlimit.h"
#include "core/rand.h"
#include "core/xalloc.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BUCKETS_MIN 64u
#define BUCKETS_MAX 65536u

typedef struct addr_key {
    unsigned char b[16];
} addr_key_t;

typedef struct entry {
    struct entry *next;
    addr_key_t key;
    size_t count;
} entry_t;

struct disp_connlimit {
    size_t max_total, per_ip, open;
    size_t nbuckets; /* a power of two */
    uint64_t seed;
    entry_t **buckets;
};

/* IPv4 (also mapped into IPv6) keeps its 4 bytes; IPv6 keeps its /64. False for other families. */
static bool key_of(const struct sockaddr *sa, addr_key_t *k)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(k, 0, sizeof *k);
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        memcpy(k->b + 12, &in->sin_addr, 4);
        k->b[10] = k->b[11] = 0xff;
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        const unsigned char *a = in6->sin6_addr.s6_addr;
        memcpy(k->b, a, memcmp(a, mapped, sizeof mapped) == 0 ? 16 : 8);
        return true;
    }
    return false;
}

static size_t slot_of(const disp_connlimit_t *l, const addr_key_t *k)
{
    uint64_t w[2];
    memcpy(w, k->b, sizeof w);
    uint64_t h = l->seed;
    for (int i = 0; i < 2; i++) {
        h ^= w[i];
        h *= 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (size_t)(h & (l->nbuckets - 1));
}

static entry_t **find(const disp_connlimit_t *l, const addr_key_t *k)
{
    entry_t **p = &l->buckets[slot_of(l, k)];
    while (*p && memcmp(&(*p)->key, k, sizeof *k) != 0)
        p = &(*p)->next;
    return p;
}

disp_connlimit_t *disp_connlimit_create(size_t max_total, size_t per_ip)
{
    disp_connlimit_t *l = xcalloc(1, sizeof *l);
    l->max_total = max_total;
    l->per_ip = per_ip;
    l->nbuckets = BUCKETS_MIN;
    while (l->nbuckets < max_total && l->nbuckets < BUCKETS_MAX)
        l->nbuckets *= 2;
    l->seed = rand_u64();
    l->buckets = xcalloc(l->nbuckets, sizeof *l->buckets);
    return l;
}

void disp_connlimit_destroy(disp_connlimit_t *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->nbuckets; i++) {
        entry_t *e = l->buckets[i];
        while (e) {
            entry_t *next = e->next;
            free(e);
            e = next;
        }
    }
    free(l->buckets);
    free(l);
}

disp_conn_verdict_t disp_connlimit_check(const disp_connlimit_t *l, const struct sockaddr *sa)
{
    if (l->open >= l->max_total)
        return DISP_CONN_CAPACITY;
    if (l->per_ip > 0 && disp_connlimit_open_from(l, sa) >= l->per_ip)
        return DISP_CONN_PER_IP;
    return DISP_CONN_OK;
}

void disp_connlimit_add(disp_connlimit_t *l, const struct sockaddr *sa)
{
    addr_key_t k;
    l->open++;
    if (!key_of(sa, &k))
        return;
    entry_t **p = find(l, &k);
    if (*p == NULL) {
        *p = xcalloc(1, sizeof **p);
        (*p)->key = k;
    }
    (*p)->count++;
}

void disp_connlimit_remove(disp_connlimit_t *l, const struct sockaddr *sa)
{
    addr_key_t k;
    if (l->open > 0)
        l->open--;
    if (!key_of(sa, &k))
        return;
    entry_t **p = find(l, &k);
    if (*p == NULL)
        return;
    if (--(*p)->count == 0) {
        entry_t *e = *p;
        *p = e->next;
        free(e);
    }
}

size_t disp_connlimit_open(const disp_connlimit_t *l)
{
    return l->open;
}

size_t disp_connlimit_open_from(const disp_connlimit_t *l, const struct sockaddr *sa)
{
    addr_key_t k;
    if (!key_of(sa, &k))
        return 0;
    entry_t *const *p = find(l, &k);
    return *p ? (*p)->count : 0;
}
