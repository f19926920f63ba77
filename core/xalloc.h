/* xalloc.h - allocation that never returns NULL: out of memory aborts (redis zmalloc style). */
#ifndef HERALD_CORE_XALLOC_H
#define HERALD_CORE_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
