/* The integer-keyed map of include/warren/idmap.h. */
#include "config.h"

#include "warren/idmap.h"

#include <stdlib.h>

#include "warren/assert.h"

#define IDMAP_MIN_BITS 3 /* 8 buckets to start */

static size_t
idmap_n_buckets(const struct idmap *m)
{
    return m->bits != 0 ? (size_t)1 << m->bits : 0;
}

static size_t
idmap_bucket(uint32_t bits, uint64_t id)
{
    return (size_t)((id * 0x9e3779b97f4a7c15ull) >> (64 - bits));
}

void
idmap_init(struct idmap *m)
{
    m->buckets = NULL;
    m->bits = 0;
    m->count = 0;
}

void
idmap_clear(struct idmap *m)
{
    free(m->buckets);
    idmap_init(m);
}

/* Moves every entry into a bucket array twice as large. 0, or -1 on ENOMEM (map unchanged). */
static int
idmap_grow(struct idmap *m)
{
    uint32_t bits = m->bits != 0 ? m->bits + 1 : IDMAP_MIN_BITS;
    size_t n = (size_t)1 << bits;
    struct idmap_entry **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < idmap_n_buckets(m); i++) {
        struct idmap_entry *e = m->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            size_t k = idmap_bucket(bits, e->id);
            e->next = b[k];
            b[k] = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->bits = bits;
    return 0;
}

int
idmap_insert(struct idmap *m, struct idmap_entry *e, uint64_t id)
{
    if (m->count >= idmap_n_buckets(m) && idmap_grow(m) < 0 && m->buckets == NULL)
        return -1;
    e->id = id;
    struct idmap_entry **head = &m->buckets[idmap_bucket(m->bits, id)];
    e->next = *head;
    *head = e;
    m->count++;
    return 0;
}

struct idmap_entry *
idmap_find(const struct idmap *m, uint64_t id)
{
    if (m->count == 0)
        return NULL;
    for (struct idmap_entry *e = m->buckets[idmap_bucket(m->bits, id)]; e != NULL; e = e->next)
        if (e->id == id)
            return e;
    return NULL;
}

void
idmap_remove(struct idmap *m, struct idmap_entry *e)
{
    struct idmap_entry **pp = &m->buckets[idmap_bucket(m->bits, e->id)];
    while (*pp != e) {
        WR_ASSERT(*pp != NULL); /* e is not in m */
        pp = &(*pp)->next;
    }
    *pp = e->next;
    e->next = NULL;
    m->count--;
}

void
idmap_iter_init(struct idmap_iter *it, const struct idmap *m)
{
    it->m = m;
    it->bucket = 0;
    it->next = NULL;
}

struct idmap_entry *
idmap_iter_next(struct idmap_iter *it)
{
    while (it->next == NULL) {
        if (it->bucket >= idmap_n_buckets(it->m))
            return NULL;
        it->next = it->m->buckets[it->bucket++];
    }
    struct idmap_entry *e = it->next;
    it->next = e->next; /* taken now, so the caller may remove e */
    return e;
}
