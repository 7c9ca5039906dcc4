/* An intrusive pairing heap: an object embeds a struct pheap_node, and the heap orders its
 * nodes with the heap's less function. Nothing is allocated: push is O(1), pop and remove
 * O(log n) amortized, the minimum is at hand in O(1). Queues use one for the entries put back
 * by a requeue (by seq, so that they are redelivered in their original order) and one for the
 * consumers that may take a message (by priority, then by turn: round robin). */
#ifndef WARREN_PHEAP_H
#define WARREN_PHEAP_H

#include <stdbool.h>
#include <stddef.h>

struct pheap_node {
    struct pheap_node *child; /* the first of its children */
    struct pheap_node *next;  /* its next sibling */
    struct pheap_node *prev;  /* its previous sibling, or its parent if it is the first child;
                               * NULL for the root */
};

/* Whether a must come out before b. */
typedef bool (*pheap_less_fn)(const struct pheap_node *a, const struct pheap_node *b);

struct pheap {
    struct pheap_node *root; /* the minimum; NULL when empty. Owns nothing */
    pheap_less_fn less;
};

static inline void
pheap_init(struct pheap *h, pheap_less_fn less)
{
    h->root = NULL;
    h->less = less;
}

static inline bool
pheap_empty(const struct pheap *h)
{
    return h->root == NULL;
}

/* The minimum (not removed), or NULL. */
static inline struct pheap_node *
pheap_min(const struct pheap *h)
{
    return h->root;
}

void pheap_push(struct pheap *h, struct pheap_node *n);
/* Removes and returns the minimum, or NULL if empty. */
struct pheap_node *pheap_pop(struct pheap *h);
/* Removes n, which must be in h. */
void pheap_remove(struct pheap *h, struct pheap_node *n);
/* Empties h, handing every node to fn (which may free it), in no particular order, in O(n). */
void pheap_drain(struct pheap *h, void (*fn)(struct pheap_node *n, void *arg), void *arg);

#define pheap_container_of(ptr, type, member)                                                      \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
