/* Unit tests for src/core/idmap.c: insert, find, remove against a reference, growth from the
 * empty (all-zero) map, sequential ids spread over the buckets, and removal of the current
 * entry while iterating. */
#include "config.h"

#include <stdlib.h>

#include <check.h>

#include "warren/idmap.h"

struct item {
    struct idmap_entry e;
    int in_map;
    int seen;
};

static struct item *
item_of(struct idmap_entry *e)
{
    return e != NULL ? idmap_container_of(e, struct item, e) : NULL;
}

/* 100,000 random inserts and removals of ids from a sparse range (large, small, zero). */
START_TEST(test_random_ops)
{
    enum { N = 2000, OPS = 100000 };
    static struct item it[N];
    static uint64_t ids[N];
    struct idmap m = {0}; /* zero is empty too */

    srand(11);
    for (int i = 0; i < N; i++) {
        it[i] = (struct item){0};
        ids[i] = i == 0 ? 0 : (uint64_t)rand() << 33 ^ (uint64_t)rand() << (i % 20) ^ (uint64_t)i;
    }
    for (int op = 0; op < OPS; op++) {
        int i = rand() % N;
        if (!it[i].in_map) {
            ck_assert_int_eq(idmap_insert(&m, &it[i].e, ids[i]), 0);
            it[i].in_map = 1;
        } else {
            ck_assert_ptr_eq(item_of(idmap_find(&m, ids[i])), &it[i]);
            idmap_remove(&m, &it[i].e);
            it[i].in_map = 0;
        }
        int j = rand() % N;
        ck_assert_ptr_eq(item_of(idmap_find(&m, ids[j])), it[j].in_map ? &it[j] : NULL);
    }
    size_t n = 0;
    for (int i = 0; i < N; i++)
        n += it[i].in_map;
    ck_assert_uint_eq(m.count, n);
    idmap_clear(&m);
    ck_assert_ptr_null(idmap_find(&m, ids[0]));
}
END_TEST

/* 65,536 consecutive ids (delivery tags): found, no chain longer than a few, all iterated
 * once while each is removed. */
START_TEST(test_sequential_ids)
{
    enum { N = 65536 };
    struct item *it = calloc(N, sizeof(*it));
    struct idmap m;
    struct idmap_iter iter;
    struct idmap_entry *e;

    ck_assert_ptr_nonnull(it);
    idmap_init(&m);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(idmap_insert(&m, &it[i].e, 1000000 + (uint64_t)i), 0);
    for (int i = 0; i < N; i++)
        ck_assert_ptr_eq(item_of(idmap_find(&m, 1000000 + (uint64_t)i)), &it[i]);
    ck_assert_ptr_null(idmap_find(&m, 999999));
    size_t longest = 0;
    for (size_t b = 0; b < ((size_t)1 << m.bits); b++) {
        size_t len = 0;
        for (e = m.buckets[b]; e != NULL; e = e->next)
            len++;
        if (len > longest)
            longest = len;
    }
    ck_assert_uint_le(longest, 4);
    idmap_iter_init(&iter, &m);
    while ((e = idmap_iter_next(&iter)) != NULL) {
        item_of(e)->seen++;
        idmap_remove(&m, e);
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(it[i].seen, 1);
    ck_assert_uint_eq(m.count, 0);
    idmap_clear(&m);
    free(it);
}
END_TEST

static Suite *
idmap_suite(void)
{
    Suite *s = suite_create("idmap");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_random_ops);
    tcase_add_test(tc, test_sequential_ids);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(idmap_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
