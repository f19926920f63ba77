/* client_int.h - pieces of the Expo client shared between its files (not a public header). */
#ifndef HERALD_EXPO_CLIENT_INT_H
#define HERALD_EXPO_CLIENT_INT_H

#include <stddef.h>

/* token -> project map: remembers what PUSH_TOO_MANY_EXPERIENCE_IDS taught us. Bounded: when it
 * holds `cap` entries it is cleared (the next split relearns). */
typedef struct pmap pmap_t;
pmap_t *pmap_create(size_t cap);
void pmap_destroy(pmap_t *m);
const char *pmap_get(const pmap_t *m, const char *token); /* borrowed or NULL */
void pmap_set(pmap_t *m, const char *token, const char *project);

#endif
