/* Unit tests for src/core/pool.c: objects of several sizes are aligned and do not overlap,
 * a put object is served again before any new slab, a burst's slabs go back once it drains
 * down to keep_empty, pool_clear frees the rest, and a long random mix of gets and puts keeps
 * every object's contents. Under AddressSanitizer the pool is plain malloc (POOL_MALLOC_ONLY):
 * the slab counts are then not checked, the contents still are. */
#include "config.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "warren/pool.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const size_t obj_sizes[] = {1, 8, 24, 48, 100, 1024};

/* Objects in a slab (after the first pool_get), or a stand-in when there are no slabs. */
static uint32_t
per_slab(const struct pool *p)
{
    return p->per_slab != 0 ? p->per_slab : 40;
}

static void
fill(void *obj, size_t size, uint32_t i)
{
    memset(obj, (int)(i * 31 + 7) & 0xff, size);
}

static void
check_fill(const void *obj, size_t size, uint32_t i)
{
    const uint8_t *b = obj;
    for (size_t k = 0; k < size; k++)
        ck_assert_uint_eq(b[k], (i * 31 + 7) & 0xff);
}

/* Three slabs' worth of objects: aligned, written whole without touching each other. */
START_TEST(test_sizes)
{
    size_t size = obj_sizes[_i];
    struct pool p;
    pool_init(&p, size, 1);
    void *first = pool_get(&p);
    ck_assert_ptr_nonnull(first);
    uint32_t n = 3 * per_slab(&p);
    void **objs = calloc(n, sizeof(*objs));
    ck_assert_ptr_nonnull(objs);
    objs[0] = first;
    for (uint32_t i = 1; i < n; i++)
        ck_assert_ptr_nonnull(objs[i] = pool_get(&p));
    ck_assert_uint_eq(p.n_used, n);
    if (!POOL_MALLOC_ONLY)
        ck_assert_uint_eq(p.n_slabs, 3);
    for (uint32_t i = 0; i < n; i++) {
        ck_assert_uint_eq((uintptr_t)objs[i] % alignof(max_align_t), 0);
        fill(objs[i], size, i);
    }
    for (uint32_t i = 0; i < n; i++)
        check_fill(objs[i], size, i);
    for (uint32_t i = 0; i < n; i++)
        pool_put(&p, objs[i]);
    ck_assert_uint_eq(p.n_used, 0);
    if (!POOL_MALLOC_ONLY)
        ck_assert_uint_eq(p.n_slabs, 1); /* keep_empty */
    pool_clear(&p);
    ck_assert_uint_eq(p.n_slabs, 0);
    free(objs);
}
END_TEST

/* What was put comes back first, and a hole in a full slab is filled before a new slab. */
START_TEST(test_reuse)
{
    struct pool p;
    pool_init(&p, 48, 0);
    pool_put(&p, NULL); /* nothing */
    void *a = pool_get(&p);
    pool_put(&p, a);
    ck_assert_uint_eq(p.n_slabs, 0); /* keep_empty 0: the empty slab went at once */
    uint32_t n = per_slab(&p);
    void **objs = calloc(n, sizeof(*objs));
    ck_assert_ptr_nonnull(objs);
    for (uint32_t i = 0; i < n; i++)
        ck_assert_ptr_nonnull(objs[i] = pool_get(&p));
    void *hole = objs[n / 2];
    pool_put(&p, hole);
    objs[n / 2] = pool_get(&p);
    if (!POOL_MALLOC_ONLY) {
        ck_assert_ptr_eq(objs[n / 2], hole);
        ck_assert_uint_eq(p.n_slabs, 1);
    }
    for (uint32_t i = 0; i < n; i++)
        pool_put(&p, objs[i]);
    ck_assert_uint_eq(p.n_used, 0);
    ck_assert_uint_eq(p.n_slabs, 0);
    free(objs);
}
END_TEST

/* A burst of 20 slabs drains down to keep_empty cached slabs; the next burst of that size
 * takes no new slab; objects left out keep their slabs from pool_clear, and only those. */
START_TEST(test_burst)
{
    static struct pool p = POOL_INITIALIZER(sizeof(uint64_t[6]), 3);
    pool_put(&p, pool_get(&p)); /* to learn per_slab */
    uint32_t per = per_slab(&p), n = 20 * per;
    void **objs = calloc(n, sizeof(*objs));
    ck_assert_ptr_nonnull(objs);
    for (uint32_t i = 0; i < n; i++)
        ck_assert_ptr_nonnull(objs[i] = pool_get(&p));
    if (!POOL_MALLOC_ONLY)
        ck_assert_uint_eq(p.n_slabs, 20);
    for (uint32_t i = 0; i < n; i++)
        pool_put(&p, objs[i]);
    if (!POOL_MALLOC_ONLY) {
        ck_assert_uint_eq(p.n_empty, 3);
        ck_assert_uint_eq(p.n_slabs, 3);
    }
    for (uint32_t i = 0; i < 3 * per; i++)
        ck_assert_ptr_nonnull(objs[i] = pool_get(&p));
    if (!POOL_MALLOC_ONLY) {
        ck_assert_uint_eq(p.n_slabs, 3);
        ck_assert_uint_eq(p.n_empty, 0);
    }
    for (uint32_t i = 0; i < 3 * per; i++) {
        if (i % per != 0)
            pool_put(&p, objs[i]);
    }
    pool_clear(&p);
    if (!POOL_MALLOC_ONLY)
        ck_assert_uint_eq(p.n_slabs, 3); /* one object out in each */
    for (uint32_t i = 0; i < 3 * per; i += per)
        pool_put(&p, objs[i]);
    ck_assert_uint_eq(p.n_used, 0);
    pool_clear(&p);
    ck_assert_uint_eq(p.n_slabs, 0);
    free(objs);
}
END_TEST

/* 200,000 random gets and puts over up to 5,000 live objects, each stamped with its index:
 * no object is handed out twice or overwritten by the pool. */
START_TEST(test_random)
{
    enum { LIVE = 5000, OPS = 200000, SIZE = 40 };
    struct pool p;
    pool_init(&p, SIZE, 2);
    void **live = calloc(LIVE, sizeof(*live));
    ck_assert_ptr_nonnull(live);
    srand(42);
    for (uint32_t op = 0; op < OPS; op++) {
        uint32_t i = (uint32_t)rand() % LIVE;
        if (live[i] == NULL) {
            ck_assert_ptr_nonnull(live[i] = pool_get(&p));
            fill(live[i], SIZE, i);
        } else {
            check_fill(live[i], SIZE, i);
            pool_put(&p, live[i]);
            live[i] = NULL;
        }
    }
    for (uint32_t i = 0; i < LIVE; i++) {
        if (live[i] != NULL) {
            check_fill(live[i], SIZE, i);
            pool_put(&p, live[i]);
        }
    }
    ck_assert_uint_eq(p.n_used, 0);
    if (!POOL_MALLOC_ONLY)
        ck_assert_uint_le(p.n_slabs, 2);
    pool_clear(&p);
    ck_assert_uint_eq(p.n_slabs, 0);
    free(live);
}
END_TEST

static Suite *
pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_sizes, 0, N_ELEMS(obj_sizes));
    tcase_add_test(tc, test_reuse);
    tcase_add_test(tc, test_burst);
    tcase_add_test(tc, test_random);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(pool_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
