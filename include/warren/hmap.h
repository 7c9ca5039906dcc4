/* A byte-string-keyed hash map with intrusive entries: an object embeds a struct hmap_entry
 * and its key (usually its own name) must outlive its membership. Inserting never copies the
 * key and allocates only when the bucket array grows. Keys are hashed with SipHash-1-3 under
 * a per-process random key, drawn the first time a key is hashed, so names chosen by clients
 * cannot flood one bucket. */
#ifndef WARREN_HMAP_H
#define WARREN_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hmap_entry {
    struct hmap_entry *next; /* next in the bucket's chain */
    uint64_t hash;
    const uint8_t *key; /* borrows: owned by the object embedding the entry */
    uint32_t klen;
};

struct hmap {
    struct hmap_entry **buckets; /* owns the array, not the entries */
    size_t n_buckets;            /* 0 or a power of two */
    size_t count;
};

#define hmap_container_of(ptr, type, member)                                                       \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* SipHash-1-3 of key under the 128-bit sipkey (little-endian k0, k1). */
uint64_t hmap_siphash13(const uint8_t sipkey[16], const void *key, size_t klen);
/* The maps' hash: hmap_siphash13 under the process key. */
uint64_t hmap_hash(const void *key, size_t klen);

void hmap_init(struct hmap *m);
/* Frees the bucket array; the entries belong to their objects. */
void hmap_clear(struct hmap *m);
/* Removes every entry, handing each to fn (which may free its object), then clears m. */
void hmap_drain(struct hmap *m, void (*fn)(struct hmap_entry *e));
/* Inserts e under key (which must stay valid while e is in the map). Does not check for an
 * existing entry with the same key. 0, or -1 on ENOMEM (map unchanged). */
int hmap_insert(struct hmap *m, struct hmap_entry *e, const void *key, size_t klen);
/* The first entry with that key, or NULL. */
struct hmap_entry *hmap_find(const struct hmap *m, const void *key, size_t klen);
/* Removes e, which must be in m. */
void hmap_remove(struct hmap *m, struct hmap_entry *e);

/* Iteration in no particular order; the current entry may be removed during iteration. */
struct hmap_iter {
    const struct hmap *m;
    size_t bucket;
    struct hmap_entry *next;
};
void hmap_iter_init(struct hmap_iter *it, const struct hmap *m);
struct hmap_entry *hmap_iter_next(struct hmap_iter *it);

/* A scan that may stop and resume (Redis's dictScan), for walks spread over several loop
 * turns. Hands fn each entry of the bucket at cursor (0 to start) and returns the next
 * cursor, 0 after the last bucket. Buckets are taken in reverse-binary order of their index:
 * as a bucket array that doubles splits bucket b into b and b + n, the buckets already
 * scanned remain exactly those before the cursor, so an entry present from the first call to
 * the last is handed over exactly once however the map grows in between, and one inserted or
 * removed meanwhile at most once. The map must not shrink in between (only hmap_clear does);
 * fn must not insert nor remove. */
size_t hmap_scan(const struct hmap *m, size_t cursor,
                 void (*fn)(const struct hmap_entry *e, void *arg), void *arg);

#endif
