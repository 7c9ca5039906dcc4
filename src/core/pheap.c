/* The pairing heap of include/warren/pheap.h (Fredman, Sedgewick, Sleator and Tarjan, 1986),
 * with the two-pass merge of the root's children on pop, done without recursion so that a
 * root with a million children (a million pushes in a row) costs no stack. */
#include "config.h"

#include "warren/pheap.h"

#include "warren/assert.h"

/* Links two roots (either may be NULL); returns the new root. */
static struct pheap_node *
pheap_meld(const struct pheap *h, struct pheap_node *a, struct pheap_node *b)
{
    if (a == NULL)
        return b;
    if (b == NULL)
        return a;
    if (h->less(b, a)) {
        struct pheap_node *t = a;
        a = b;
        b = t;
    }
    /* b becomes a's first child. */
    b->prev = a;
    b->next = a->child;
    if (a->child != NULL)
        a->child->prev = b;
    a->child = b;
    a->next = NULL;
    a->prev = NULL;
    return a;
}

/* Melds a list of siblings (first) into one tree: pairs from the left, then the pairs from
 * the right. Returns its root. */
static struct pheap_node *
pheap_merge_siblings(const struct pheap *h, struct pheap_node *first)
{
    struct pheap_node *pairs = NULL; /* melded pairs, last first, linked through next */
    while (first != NULL) {
        struct pheap_node *a = first, *b = a->next;
        first = b != NULL ? b->next : NULL;
        a->next = a->prev = NULL;
        if (b != NULL)
            b->next = b->prev = NULL;
        struct pheap_node *m = pheap_meld(h, a, b);
        m->next = pairs;
        pairs = m;
    }
    struct pheap_node *root = NULL;
    while (pairs != NULL) {
        struct pheap_node *next = pairs->next;
        pairs->next = NULL;
        root = pheap_meld(h, root, pairs);
        pairs = next;
    }
    return root;
}

void
pheap_push(struct pheap *h, struct pheap_node *n)
{
    n->child = n->next = n->prev = NULL;
    h->root = pheap_meld(h, h->root, n);
}

struct pheap_node *
pheap_pop(struct pheap *h)
{
    struct pheap_node *min = h->root;
    if (min != NULL)
        h->root = pheap_merge_siblings(h, min->child);
    return min;
}

void
pheap_remove(struct pheap *h, struct pheap_node *n)
{
    if (n == h->root) {
        pheap_pop(h);
        return;
    }
    WR_ASSERT(n->prev != NULL); /* not the root, so in the tree */
    /* Cut n (with its subtree) from its siblings, then meld its children back in. */
    if (n->prev->child == n)
        n->prev->child = n->next;
    else
        n->prev->next = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    h->root = pheap_meld(h, h->root, pheap_merge_siblings(h, n->child));
}

void
pheap_drain(struct pheap *h, void (*fn)(struct pheap_node *n, void *arg), void *arg)
{
    /* Walks the tree as a stack of sibling lists: a node's children are pushed before the
     * node goes to fn, which may free it. */
    struct pheap_node *todo = h->root;
    h->root = NULL;
    while (todo != NULL) {
        struct pheap_node *n = todo;
        todo = n->next;
        if (n->child != NULL) {
            struct pheap_node *last = n->child;
            while (last->next != NULL)
                last = last->next;
            last->next = todo;
            todo = n->child;
        }
        fn(n, arg);
    }
}
