/* The fixed-size object pools of include/warren/pool.h. A slab is POOL_SLAB_SIZE bytes from
 * aligned_alloc: a header, then per_slab objects; the free ones are chained through their
 * first bytes. Each slab is on one of the pool's lists by how many of its objects are out:
 * some (partial), none (empty), all (full: on no list, pool_put finds it from the object).
 * pool_get serves partial slabs first, so empty ones stay empty and can be freed; pool_put
 * frees a slab as it empties once keep_empty are cached. Both are O(1). */
#include "config.h"

#include "warren/pool.h"

#include <assert.h>
#include <stdalign.h>
#include <stdlib.h>

#include "warren/assert.h"

struct pool_free {
    struct pool_free *next;
};

struct pool_slab {
    LIST_ENTRY(pool_slab) link; /* in pool->partial or pool->empty; unused while full */
    struct pool *pool;          /* borrows: to check that an object goes back where it came from */
    struct pool_free *free;     /* its free objects */
    uint32_t n_used;
};

#define POOL_ALIGN alignof(max_align_t)
#define POOL_ROUND(n) (((n) + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1))
/* Where the objects start in a slab. */
#define POOL_SLAB_HDR POOL_ROUND(sizeof(struct pool_slab))

/* A free object holds its link: the smallest stride is room enough. */
static_assert(POOL_ALIGN >= sizeof(struct pool_free), "stride below a pointer");

void
pool_init(struct pool *p, size_t obj_size, uint32_t keep_empty)
{
    *p = (struct pool)POOL_INITIALIZER(obj_size, keep_empty);
}

#if POOL_MALLOC_ONLY

void *
pool_get(struct pool *p)
{
    void *obj = malloc(p->obj_size);
    if (obj != NULL)
        p->n_used++;
    return obj;
}

void
pool_put(struct pool *p, void *obj)
{
    if (obj == NULL)
        return;
    WR_ASSERT(p->n_used > 0);
    p->n_used--;
    free(obj);
}

void
pool_clear(struct pool *p)
{
    (void)p;
}

#else

/* A new slab, all its objects free; NULL on ENOMEM. */
static struct pool_slab *
pool_slab_new(struct pool *p)
{
    WR_ASSERT(p->obj_size > 0 && p->obj_size <= POOL_OBJ_MAX);
    size_t stride = POOL_ROUND(p->obj_size);
    p->per_slab = (uint32_t)((POOL_SLAB_SIZE - POOL_SLAB_HDR) / stride);
    struct pool_slab *s = aligned_alloc(POOL_SLAB_SIZE, POOL_SLAB_SIZE);
    if (s == NULL)
        return NULL;
    s->pool = p;
    s->n_used = 0;
    s->free = NULL;
    char *first = (char *)s + POOL_SLAB_HDR;
    for (uint32_t i = p->per_slab; i-- > 0;) { /* from the end: served in address order */
        struct pool_free *o = (struct pool_free *)(void *)(first + i * stride);
        o->next = s->free;
        s->free = o;
    }
    p->n_slabs++;
    return s;
}

void *
pool_get(struct pool *p)
{
    struct pool_slab *s = LIST_FIRST(&p->partial);
    if (s == NULL) {
        if ((s = LIST_FIRST(&p->empty)) != NULL) {
            LIST_REMOVE(s, link);
            p->n_empty--;
        } else if ((s = pool_slab_new(p)) == NULL) {
            return NULL;
        }
        LIST_INSERT_HEAD(&p->partial, s, link);
    }
    struct pool_free *o = s->free;
    s->free = o->next;
    s->n_used++;
    if (s->free == NULL)
        LIST_REMOVE(s, link); /* full */
    p->n_used++;
    return o;
}

void
pool_put(struct pool *p, void *obj)
{
    if (obj == NULL)
        return;
    struct pool_slab *s = (struct pool_slab *)((uintptr_t)obj & ~(uintptr_t)(POOL_SLAB_SIZE - 1));
    WR_ASSERT(s->pool == p && s->n_used > 0);
    p->n_used--;
    if (s->free == NULL)
        LIST_INSERT_HEAD(&p->partial, s, link); /* was full */
    struct pool_free *o = obj;
    o->next = s->free;
    s->free = o;
    if (--s->n_used > 0)
        return;
    LIST_REMOVE(s, link);
    if (p->n_empty < p->keep_empty) {
        LIST_INSERT_HEAD(&p->empty, s, link);
        p->n_empty++;
    } else {
        free(s);
        p->n_slabs--;
    }
}

void
pool_clear(struct pool *p)
{
    struct pool_slab *s;
    while ((s = LIST_FIRST(&p->empty)) != NULL) {
        LIST_REMOVE(s, link);
        free(s);
        p->n_slabs--;
    }
    p->n_empty = 0;
}

#endif
