/* list.h - an intrusive doubly-linked list: a list_node_t lives inside the listed struct, the
 * list is a circular ring through a sentinel, and container_of() gets back from a node to its
 * struct. Unlinking is O(1) with no special case for the ends, which is what the in-flight lists
 * (pipeline jobs, Kafka tickets, Expo requests, curl transfers and sockets, Redis commands) need.
 *
 * A list_t must be list_init()ed before use and must not be copied (the ring points at it): move
 * its contents with list_splice(). A removed node points at itself, so removing it again is
 * harmless. Nothing here allocates. */
#ifndef HERALD_CORE_LIST_H
#define HERALD_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct list_node {
    struct list_node *prev, *next;
} list_node_t;

typedef struct list {
    list_node_t head; /* sentinel: head.next is the first node, head.prev the last */
} list_t;

/* The struct of type `type` whose member `member` is the node at ptr. */
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* The struct holding the first node of l, or NULL when l is empty. */
#define list_first_entry(l, type, member)                                                          \
    (list_empty(l) ? NULL : container_of((l)->head.next, type, member))

static inline void list_init(list_t *l)
{
    l->head.prev = l->head.next = &l->head;
}

static inline bool list_empty(const list_t *l)
{
    return l->head.next == &l->head;
}

static inline void list_insert_between(list_node_t *n, list_node_t *prev, list_node_t *next)
{
    n->prev = prev;
    n->next = next;
    prev->next = n;
    next->prev = n;
}

static inline void list_push_back(list_t *l, list_node_t *n)
{
    list_insert_between(n, l->head.prev, &l->head);
}

/* Unlinks n from its list (no-op for a node removed before). */
static inline void list_remove(list_node_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* The first node, or NULL when empty. */
static inline list_node_t *list_first(const list_t *l)
{
    return list_empty(l) ? NULL : l->head.next;
}

/* Moves every node of src to the end of dst, in order; src is left empty. */
static inline void list_splice(list_t *dst, list_t *src)
{
    if (list_empty(src))
        return;
    list_node_t *first = src->head.next, *last = src->head.prev;
    first->prev = dst->head.prev;
    dst->head.prev->next = first;
    last->next = &dst->head;
    dst->head.prev = last;
    list_init(src);
}

#endif
