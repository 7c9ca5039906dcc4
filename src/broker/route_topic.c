/* Topic exchanges: a trie of binding-key words, matched as RabbitMQ's
 * rabbit_db_topic_exchange:trie_match does. Keys split on every '.', so "" has no words, "a."
 * has "a" and "", and "a..b" has an empty middle word. At a node with words left, a message
 * follows the child for its next word, the "*" child (one word, empty included) and the "#"
 * child, which takes zero or more words; with no words left it takes the node's bindings and
 * follows "#" children only. So "#" matches every key including "", "a.#" matches "a" and
 * "a.b.c", "*" does not match "" (no word) nor "." (two empty words), "*.*" matches ".".
 *
 * The cost follows the routing key, not the number of bindings: each step is one hash lookup
 * of (node, word) plus the two wildcard children, and a node is matched at most once per
 * word position of the key however many "#" lead to it (see match_hash). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "route_int.h"
#include "warren/assert.h"

struct route_topic_node {
    struct hmap_entry edge;          /* in route_topic_trie.edges; key = key[] (not for the root) */
    struct route_topic_node *parent; /* NULL for the root */
    struct route_topic_node *star;   /* the "*" child, also in the map */
    struct route_topic_node *hash;   /* the "#" child, also in the map */
    struct binding *bindings;        /* bound with the key whose words end here */
    uint32_t n_children;             /* children of every kind */
    uint64_t memo_pass;              /* "#" nodes: the last topic_match.pass that tried it, */
    uint32_t memo_from;              /* from this word offset to the key's end */
    uint32_t klen;
    uint8_t key[]; /* the parent's address, then the word */
};

/* A word of a routing or binding key, by byte offsets; off == KEY_END(len) means no words
 * are left. */
#define KEY_END(len) ((uint32_t)(len) + 1)

/* The end of the word that starts at off (the offset of the '.' after it, or len). */
static uint32_t
word_end(struct wire_str key, uint32_t off)
{
    const uint8_t *dot = off < key.len ? memchr(key.ptr + off, '.', key.len - off) : NULL;

    return dot != NULL ? (uint32_t)(dot - key.ptr) : key.len;
}

/* The offset of the word after the one that ends at end. */
static uint32_t
word_next(struct wire_str key, uint32_t end)
{
    return end == key.len ? KEY_END(key.len) : end + 1;
}

static uint32_t
word_first(struct wire_str key)
{
    return key.len == 0 ? KEY_END(0) : 0;
}

void
route_topic_init(struct route_topic_trie *t)
{
    hmap_init(&t->edges);
    t->root = NULL;
}

void
route_topic_clear(struct route_topic_trie *t)
{
    struct hmap_iter it;
    struct hmap_entry *he;

    hmap_iter_init(&it, &t->edges);
    while ((he = hmap_iter_next(&it)) != NULL) {
        hmap_remove(&t->edges, he);
        free(hmap_container_of(he, struct route_topic_node, edge));
    }
    hmap_clear(&t->edges);
    free(t->root);
    t->root = NULL;
}

/* Writes the edge key of (parent, word) into buf, which has room for sizeof(void *) + wlen. */
static size_t
edge_key(uint8_t *buf, const struct route_topic_node *parent, const uint8_t *w, uint32_t wlen)
{
    memcpy(buf, &parent, sizeof parent);
    if (wlen > 0)
        memcpy(buf + sizeof parent, w, wlen);
    return sizeof parent + wlen;
}

/* The child of n for word w, or NULL. Sets *nomem if a long word's key could not be built. */
static struct route_topic_node *
child_find(const struct route_topic_trie *t, const struct route_topic_node *n, const uint8_t *w,
           uint32_t wlen, bool *nomem)
{
    uint8_t small[sizeof(void *) + 256], *buf = small;
    struct hmap_entry *he;
    size_t klen;

    if (n->n_children == 0)
        return NULL;
    if (sizeof(void *) + (size_t)wlen > sizeof small &&
        (buf = malloc(sizeof(void *) + (size_t)wlen)) == NULL) {
        *nomem = true;
        return NULL;
    }
    klen = edge_key(buf, n, w, wlen);
    he = hmap_find(&t->edges, buf, klen);
    if (buf != small)
        free(buf);
    return he != NULL ? hmap_container_of(he, struct route_topic_node, edge) : NULL;
}

/* Adds the child of parent for word w. NULL on ENOMEM. */
static struct route_topic_node *
child_add(struct route_topic_trie *t, struct route_topic_node *parent, const uint8_t *w,
          uint32_t wlen)
{
    struct route_topic_node *c = calloc(1, sizeof *c + sizeof(void *) + wlen);

    if (c == NULL)
        return NULL;
    c->parent = parent;
    c->klen = (uint32_t)edge_key(c->key, parent, w, wlen);
    if (hmap_insert(&t->edges, &c->edge, c->key, c->klen) < 0) {
        free(c);
        return NULL;
    }
    if (wlen == 1 && w[0] == '*')
        parent->star = c;
    else if (wlen == 1 && w[0] == '#')
        parent->hash = c;
    parent->n_children++;
    return c;
}

/* Frees n and its ancestors (not the root) while they have neither bindings nor children. */
static void
prune(struct route_topic_trie *t, struct route_topic_node *n)
{
    while (n != t->root && n->bindings == NULL && n->n_children == 0) {
        struct route_topic_node *p = n->parent;

        if (p->star == n)
            p->star = NULL;
        if (p->hash == n)
            p->hash = NULL;
        p->n_children--;
        hmap_remove(&t->edges, &n->edge);
        free(n);
        n = p;
    }
}

int
route_topic_add(struct route_topic_trie *t, struct binding *b)
{
    struct route_topic_node *n, *c;
    bool nomem = false;
    uint32_t off, end;

    if (t->root == NULL && (t->root = calloc(1, sizeof *t->root)) == NULL)
        return -1;
    n = t->root;
    for (off = word_first(b->key); off != KEY_END(b->key.len); off = word_next(b->key, end)) {
        end = word_end(b->key, off);
        c = child_find(t, n, b->key.ptr + off, end - off, &nomem);
        if (c == NULL && (nomem || (c = child_add(t, n, b->key.ptr + off, end - off)) == NULL)) {
            prune(t, n);
            return -1;
        }
        n = c;
    }
    route_blist_push(&n->bindings, b);
    b->holder = n;
    return 0;
}

void
route_topic_remove(struct route_topic_trie *t, struct binding *b)
{
    struct route_topic_node *n = b->holder;

    route_blist_remove(&n->bindings, b);
    prune(t, n);
}

/* Matching one routing key. A routing pass matches several keys when a message has CC keys
 * or was dead-lettered: each key is a match of its own, so its "#" memo is its own too. */
struct topic_match {
    struct route_topic_trie *t;
    struct wire_str key;
    struct route_ctx *c;
    uint64_t pass; /* this match's number, stamped into memo_pass */
};

static uint64_t topic_match_pass;

static int match_node(struct topic_match *m, const struct route_topic_node *n, uint32_t off);

/* The "#" node h, reached with the words from off on left: h takes none, one, ... or all of
 * them. A "#" node is entered again in the same pass when a "#" above it takes one more word;
 * by then it has been tried with every word position from its first entry on (the trie is a
 * tree and every "#" loop goes forward, so entries come in increasing order), and it is
 * skipped: each node is matched at most once per word position. */
static int
match_hash(struct topic_match *m, struct route_topic_node *h, uint32_t off)
{
    uint32_t end;

    if (h->memo_pass == m->pass) {
        WR_ASSERT(off >= h->memo_from);
        return 0;
    }
    h->memo_pass = m->pass;
    h->memo_from = off;
    for (;;) {
        if (match_node(m, h, off) < 0)
            return -1;
        if (off == KEY_END(m->key.len))
            return 0;
        end = word_end(m->key, off);
        off = word_next(m->key, end);
    }
}

/* Node n with the words from off on left to match. */
static int
match_node(struct topic_match *m, const struct route_topic_node *n, uint32_t off)
{
    struct route_topic_node *c;
    bool nomem = false;
    uint32_t end, next;

    if (off == KEY_END(m->key.len)) {
        for (const struct binding *b = n->bindings; b != NULL; b = b->next)
            if (route_ctx_add(m->c, b) < 0)
                return -1;
        return n->hash != NULL ? match_hash(m, n->hash, off) : 0;
    }
    end = word_end(m->key, off);
    next = word_next(m->key, end);
    c = child_find(m->t, n, m->key.ptr + off, end - off, &nomem);
    if (nomem)
        return -1;
    /* A literal "*" or "#" in the routing key finds a wildcard child here too (as in
     * RabbitMQ), but the wildcard branches below cover what it would match: skipping it
     * keeps a key of many "#" words from repeating their work. */
    if (c != NULL && c != n->star && c != n->hash && match_node(m, c, next) < 0)
        return -1;
    if (n->star != NULL && match_node(m, n->star, next) < 0)
        return -1;
    if (n->hash != NULL && match_hash(m, n->hash, off) < 0)
        return -1;
    return 0;
}

int
route_topic_route(struct route_topic_trie *t, struct wire_str routing_key, struct route_ctx *c)
{
    struct topic_match m = {t, routing_key, c, ++topic_match_pass};

    if (t->root == NULL)
        return 0;
    return match_node(&m, t->root, word_first(routing_key));
}
