/* A map from integer ids to objects with intrusive entries: an object embeds a struct
 * idmap_entry holding its id. Chained buckets, a power-of-two bucket array that doubles at
 * load factor 1 and never shrinks (so removing the current entry while iterating is safe),
 * Fibonacci hashing (the id times 2^64 / phi, top bits): consecutive ids, which is what
 * channel numbers and delivery tags mostly are, land in distinct buckets. Ids are not secret
 * and may be chosen by a client (channel numbers): a connection's channels are few (at most
 * channel_max), so crafted collisions cannot make a chain long. */
#ifndef WARREN_IDMAP_H
#define WARREN_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap_entry {
    struct idmap_entry *next; /* next in the bucket's chain */
    uint64_t id;
};

struct idmap {
    struct idmap_entry **buckets; /* owns the array, not the entries */
    uint32_t bits;                /* log2 of the number of buckets; 0 before the first insert */
    size_t count;
};

#define idmap_container_of(ptr, type, member)                                                      \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* An all-zero struct idmap is an empty map too. */
void idmap_init(struct idmap *m);
/* Frees the bucket array; the entries belong to their objects. */
void idmap_clear(struct idmap *m);
/* Inserts e under id (set in e->id). Does not check for an existing entry with that id.
 * 0, or -1 on ENOMEM (only when the map has no buckets yet; a full map takes the entry and
 * grows at a later insert). */
int idmap_insert(struct idmap *m, struct idmap_entry *e, uint64_t id);
/* The entry with that id, or NULL. */
struct idmap_entry *idmap_find(const struct idmap *m, uint64_t id);
/* Removes e, which must be in m. */
void idmap_remove(struct idmap *m, struct idmap_entry *e);

/* Iteration in no particular order; the current entry may be removed during iteration. */
struct idmap_iter {
    const struct idmap *m;
    size_t bucket;
    struct idmap_entry *next;
};
void idmap_iter_init(struct idmap_iter *it, const struct idmap *m);
struct idmap_entry *idmap_iter_next(struct idmap_iter *it);

#endif
