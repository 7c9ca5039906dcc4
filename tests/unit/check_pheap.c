/* Unit tests for src/core/pheap.c: random pushes, pops and removals checked against a sorted
 * reference, equal keys, a long run of pushes (a root with that many children, popped without
 * recursion), and drain handing every node over once. */
#include "config.h"

#include <stdlib.h>

#include <check.h>

#include "warren/pheap.h"

struct item {
    struct pheap_node node;
    unsigned key;
    int in_heap;
    int drained;
};

static bool
item_less(const struct pheap_node *a, const struct pheap_node *b)
{
    return pheap_container_of(a, struct item, node)->key <
           pheap_container_of(b, struct item, node)->key;
}

static struct item *
item_of(struct pheap_node *n)
{
    return n != NULL ? pheap_container_of(n, struct item, node) : NULL;
}

/* The smallest key among the items in the heap (the reference), or -1. */
static long
smallest(const struct item *it, int n)
{
    long best = -1;
    for (int i = 0; i < n; i++)
        if (it[i].in_heap && (best < 0 || it[i].key < (unsigned long)best))
            best = it[i].key;
    return best;
}

/* 20,000 random operations on 500 items with keys from a small range (many equal keys). */
START_TEST(test_random_ops)
{
    enum { N = 500, OPS = 20000 };
    struct item it[N] = {0};
    struct pheap h;
    int n_in = 0;

    srand(7 + (unsigned)_i);
    pheap_init(&h, item_less);
    for (int op = 0; op < OPS; op++) {
        int i = rand() % N;
        switch (rand() % 3) {
        case 0:
            if (!it[i].in_heap) {
                it[i].key = (unsigned)(rand() % 64);
                pheap_push(&h, &it[i].node);
                it[i].in_heap = 1;
                n_in++;
            }
            break;
        case 1: {
            struct item *m = item_of(pheap_pop(&h));
            if (n_in == 0) {
                ck_assert_ptr_null(m);
                break;
            }
            ck_assert_ptr_nonnull(m);
            ck_assert_uint_eq(m->key, (unsigned long)smallest(it, N)); /* before it leaves */
            m->in_heap = 0;
            n_in--;
            break;
        }
        default:
            if (it[i].in_heap) {
                pheap_remove(&h, &it[i].node);
                it[i].in_heap = 0;
                n_in--;
            }
            break;
        }
        long want = smallest(it, N);
        struct item *m = item_of(pheap_min(&h));
        if (want < 0)
            ck_assert_ptr_null(m);
        else
            ck_assert_uint_eq(m->key, (unsigned long)want);
    }
}
END_TEST

/* 200,000 pushes in decreasing order, then pops: all come out in order. */
START_TEST(test_long_run)
{
    enum { N = 200000 };
    struct item *it = calloc(N, sizeof *it);
    struct pheap h;

    ck_assert_ptr_nonnull(it);
    pheap_init(&h, item_less);
    for (int i = 0; i < N; i++) {
        it[i].key = (unsigned)(N - i);
        pheap_push(&h, &it[i].node);
    }
    for (unsigned want = 1; want <= N; want++)
        ck_assert_uint_eq(item_of(pheap_pop(&h))->key, want);
    ck_assert(pheap_empty(&h));
    free(it);
}
END_TEST

static void
drain_one(struct pheap_node *n, void *arg)
{
    item_of(n)->drained++;
    (*(int *)arg)++;
}

START_TEST(test_drain)
{
    enum { N = 1000 };
    struct item it[N] = {0};
    struct pheap h;
    int count = 0;

    pheap_init(&h, item_less);
    for (int i = 0; i < N; i++) {
        it[i].key = (unsigned)((i * 7919) % N);
        pheap_push(&h, &it[i].node);
        if (i % 3 == 0)
            pheap_pop(&h); /* a tree of some depth, not just a root's children */
    }
    int left = N - (N + 2) / 3;
    pheap_drain(&h, drain_one, &count);
    ck_assert_int_eq(count, left);
    ck_assert(pheap_empty(&h));
    int once = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_int_le(it[i].drained, 1);
        once += it[i].drained;
    }
    ck_assert_int_eq(once, left);
}
END_TEST

static Suite *
pheap_suite(void)
{
    Suite *s = suite_create("pheap");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_random_ops, 0, 4);
    tcase_add_test(tc, test_long_run);
    tcase_add_test(tc, test_drain);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(pheap_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
