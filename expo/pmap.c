/* pmap.c - a small string -> string hash map (chained, power-of-two buckets) used by the client to
 * remember each token's Expo project. */
#include "core/xalloc.h"
#include "expo/client_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct ent {
    struct ent *next;
    char *key;
    char *val;
} ent_t;

struct pmap {
    ent_t **b;
    size_t nb, n, cap;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

pmap_t *pmap_create(size_t cap)
{
    pmap_t *m = xcalloc(1, sizeof *m);
    m->nb = 64;
    m->b = xcalloc(m->nb, sizeof *m->b);
    m->cap = cap;
    return m;
}

static void clear(pmap_t *m)
{
    for (size_t i = 0; i < m->nb; i++) {
        for (ent_t *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            free(e->key);
            free(e->val);
            free(e);
        }
        m->b[i] = NULL;
    }
    m->n = 0;
}

void pmap_destroy(pmap_t *m)
{
    if (!m)
        return;
    clear(m);
    free(m->b);
    free(m);
}

const char *pmap_get(const pmap_t *m, const char *token)
{
    for (ent_t *e = m->b[hash(token) & (m->nb - 1)]; e; e = e->next)
        if (strcmp(e->key, token) == 0)
            return e->val;
    return NULL;
}

static void grow(pmap_t *m)
{
    size_t nb = m->nb * 2;
    ent_t **b = xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < m->nb; i++) {
        for (ent_t *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            size_t k = hash(e->key) & (nb - 1);
            e->next = b[k];
            b[k] = e;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

void pmap_set(pmap_t *m, const char *token, const char *project)
{
    size_t k = hash(token) & (m->nb - 1);
    for (ent_t *e = m->b[k]; e; e = e->next) {
        if (strcmp(e->key, token) == 0) {
            if (strcmp(e->val, project) != 0) {
                free(e->val);
                e->val = xstrdup(project);
            }
            return;
        }
    }
    if (m->n >= m->cap)
        clear(m);
    if (m->n >= m->nb)
        grow(m);
    ent_t *e = xmalloc(sizeof *e);
    e->key = xstrdup(token);
    e->val = xstrdup(project);
    k = hash(token) & (m->nb - 1);
    e->next = m->b[k];
    m->b[k] = e;
    m->n++;
}
