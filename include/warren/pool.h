/* Fixed-size object pools, for the records made and freed once per message (queue entries,
 * unacked deliveries), where malloc and free showed up in profiles. A pool takes memory from
 * malloc in slabs of POOL_SLAB_SIZE bytes, aligned on their size and carved into equal objects
 * kept on an intrusive free list; an object finds its slab by masking its address. A pool keeps
 * up to keep_empty empty slabs for the next burst and frees every other slab as soon as it
 * empties, so the memory a backlog took goes back to malloc once the backlog drains.
 *
 * A pool is not thread-safe: each belongs to the event-loop thread, like all broker state.
 *
 * Under AddressSanitizer (POOL_MALLOC_ONLY) pool_get is malloc and pool_put is free, slabs
 * never exist: ASan then still catches a use after pool_put (its quarantine delays reuse,
 * where a slab would hand the object out again at once) and a double put, and LeakSanitizer
 * names a leaked object with its allocation stack instead of a slab. Valgrind sees slabs, not
 * objects: it cannot tell a use after pool_put, which the ASan build is there to catch. */
#ifndef WARREN_POOL_H
#define WARREN_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define POOL_MALLOC_ONLY 1
#elif defined(__has_feature) /* clang */
#if __has_feature(address_sanitizer)
#define POOL_MALLOC_ONLY 1
#endif
#endif
#ifndef POOL_MALLOC_ONLY
#define POOL_MALLOC_ONLY 0
#endif

#define POOL_SLAB_SIZE 4096
/* The largest object a pool serves (a slab then holds 3): larger ones are rare enough for
 * malloc. */
#define POOL_OBJ_MAX 1024

struct pool_slab;
LIST_HEAD(pool_slab_list, pool_slab);

struct pool {
    size_t obj_size;               /* as asked; rounded up to max_align_t in the slabs */
    uint32_t keep_empty;           /* empty slabs kept for the next burst; others are freed */
    uint32_t per_slab;             /* objects in a slab; set with the first slab */
    struct pool_slab_list partial; /* owns the slabs with free and used objects; served first */
    struct pool_slab_list empty;   /* owns the slabs with only free objects (n_empty of them) */
    uint32_t n_empty;
    size_t n_slabs; /* all of them; full slabs are on no list: their objects lead to them */
    size_t n_used;  /* objects out (pool_get without pool_put) */
};

/* For a pool with static storage: POOL_INITIALIZER(sizeof(struct x), 8). */
#define POOL_INITIALIZER(size, keep)                                                               \
    {                                                                                              \
        .obj_size = (size), .keep_empty = (keep)                                                   \
    }

/* Makes an empty pool of objects of obj_size bytes (1 to POOL_OBJ_MAX) that keeps up to
 * keep_empty empty slabs cached. Allocates nothing. */
void pool_init(struct pool *p, size_t obj_size, uint32_t keep_empty);
/* An uninitialized object, aligned for any type; NULL on ENOMEM. The caller owns it until
 * pool_put. */
void *pool_get(struct pool *p);
/* Gives back obj, which came from pool_get on p (NULL: nothing). */
void pool_put(struct pool *p, void *obj);
/* Frees every empty slab, whatever keep_empty says: once every object is back, that is all of
 * the pool's memory (at shutdown). Slabs that still hold objects stay, for their objects (a
 * leak checker then reports them); the pool can go on serving. */
void pool_clear(struct pool *p);

#endif
