/* Unit tests for src/core/hmap.c: SipHash-1-3 against the reference implementation's outputs,
 * the process key (names crafted to collide under a known key spread out), insert/find/remove,
 * keys that share a bucket, growth at load factor 1, removal of the current entry while
 * iterating, and a map of 100,000 entries. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "warren/hmap.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

struct item {
    struct hmap_entry e;
    char key[24];
    int value;
    int seen;
};

static struct item *
item_of(struct hmap_entry *e)
{
    return e != NULL ? hmap_container_of(e, struct item, e) : NULL;
}

static struct item *
find(const struct hmap *m, const char *key)
{
    return item_of(hmap_find(m, key, strlen(key)));
}

static void
insert(struct hmap *m, struct item *it, const char *key, int value)
{
    snprintf(it->key, sizeof it->key, "%s", key);
    it->value = value;
    ck_assert_int_eq(hmap_insert(m, &it->e, it->key, strlen(it->key)), 0);
}

/* SipHash-1-3, key 16 zero bytes, message 00 01 02 ... of each length: the 64-bit outputs of
 * the reference implementation (github.com/veorq/SipHash), as OCaml's runtime tests list
 * them (testsuite/tests/hashing/sip13). */
static const uint64_t sip13_vectors[] = {
    0xd1fba762150c532cull, 0x68a914128e01e473ull, 0x010bac45c41e3669ull, 0x4d4c9a4a8ef6e0adull,
    0x7cc43f98813e4dbdull, 0x5abe2169dff36275ull, 0xe3c25f87624f1cdbull, 0x2f098ab0c751325aull,
    0xead411e67ebe2eeaull, 0x75927f9d95124362ull, 0xaf9f77a65ab51a1dull, 0xfe64ce8b6617fcffull,
    0xa6baf4fb0f9fe1c2ull, 0xa0cf3211850f8e0dull, 0x7f86049379fbfe67ull, 0xf30eb725bb91c9eaull,
    0x8972188433a5c5b7ull, 0x4883c49a2c009c1dull, 0xadc2c0b63044067dull, 0x091f4a3329f87d19ull,
    0x639e355ae68c0100ull, 0xb17bef2cb5213239ull, 0xf8aeb1066236ccfeull, 0x37332b1389daa4ffull,
};

START_TEST(test_siphash13_vectors)
{
    uint8_t msg[64];

    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)i;
    static const uint8_t zero_key[16];
    uint64_t h = hmap_siphash13(zero_key, msg, (size_t)_i);

    ck_assert_msg(h == sip13_vectors[_i], "length %d: %016" PRIx64, _i, h);
}
END_TEST

/* The maps hash under a key of their own, drawn without anyone asking: 1,000 queue names
 * crafted to share one bucket of 1,024 under the all-zero key (what every map used while
 * nothing drew a key) spread over the buckets of a real map. */
START_TEST(test_crafted_collisions)
{
    enum { N = 1000, MASK = 1023 };
    static const uint8_t zero_key[16];
    struct hmap m;
    struct item *it = calloc(N, sizeof *it);
    char key[24];
    int made = 0;

    ck_assert_ptr_nonnull(it);
    hmap_init(&m);
    for (unsigned long cand = 0; made < N; cand++) {
        snprintf(key, sizeof key, "q.%lu", cand);
        if ((hmap_siphash13(zero_key, key, strlen(key)) & MASK) == 0) {
            insert(&m, &it[made], key, made);
            made++;
        }
    }
    ck_assert_uint_eq(m.n_buckets, MASK + 1);
    size_t longest = 0;
    for (size_t b = 0; b < m.n_buckets; b++) {
        size_t len = 0;
        for (struct hmap_entry *e = m.buckets[b]; e != NULL; e = e->next)
            len++;
        if (len > longest)
            longest = len;
    }
    ck_assert_msg(longest < 16, "a chain of %zu of the %d crafted names", longest, N);
    hmap_clear(&m);
    free(it);
}
END_TEST

START_TEST(test_insert_find_remove)
{
    struct hmap m;
    struct item a, b, c;

    hmap_init(&m);
    ck_assert_ptr_null(find(&m, "a"));
    insert(&m, &a, "a", 1);
    insert(&m, &b, "bb", 2);
    insert(&m, &c, "", 3); /* the empty key is a key */
    ck_assert_uint_eq(m.count, 3);
    ck_assert_ptr_eq(find(&m, "a"), &a);
    ck_assert_ptr_eq(find(&m, "bb"), &b);
    ck_assert_ptr_eq(find(&m, ""), &c);
    ck_assert_ptr_eq(item_of(hmap_find(&m, NULL, 0)), &c);
    ck_assert_ptr_null(find(&m, "b"));
    ck_assert_ptr_null(find(&m, "bbb"));
    ck_assert_ptr_null(item_of(hmap_find(&m, "a\0", 2))); /* keys are bytes, not C strings */

    hmap_remove(&m, &b.e);
    ck_assert_uint_eq(m.count, 2);
    ck_assert_ptr_null(find(&m, "bb"));
    ck_assert_ptr_eq(find(&m, "a"), &a);
    hmap_remove(&m, &a.e);
    hmap_remove(&m, &c.e);
    ck_assert_uint_eq(m.count, 0);
    ck_assert_ptr_null(find(&m, ""));
    hmap_clear(&m);
    ck_assert_ptr_null(m.buckets);
    hmap_clear(&m); /* clearing twice is harmless */
}
END_TEST

/* Entries whose hashes fall in one bucket, and duplicate keys (hmap_find finds one of them,
 * removing it reveals the other). */
START_TEST(test_collisions)
{
    struct hmap m;
    struct item it[64], dup;
    int in_bucket0 = 0;
    char key[24];

    hmap_init(&m);
    for (int i = 0; i < 64; i++) {
        snprintf(key, sizeof key, "k%d", i);
        insert(&m, &it[i], key, i);
    }
    for (int i = 0; i < 64; i++)
        if ((it[i].e.hash & (m.n_buckets - 1)) == 0)
            in_bucket0++;
    /* Force one long chain: point every entry's bucket at 0 by rebuilding by hand. */
    for (size_t b = 0; b < m.n_buckets; b++)
        m.buckets[b] = NULL;
    for (int i = 0; i < 64; i++) {
        it[i].e.next = m.buckets[0];
        m.buckets[0] = &it[i].e;
    }
    /* Lookups compare hashes and bytes along the chain: only keys hashing to bucket 0 can be
     * found there now, and never the wrong one. */
    int found = 0;
    for (int i = 0; i < 64; i++) {
        snprintf(key, sizeof key, "k%d", i);
        struct item *f = find(&m, key);
        if (f != NULL) {
            ck_assert_ptr_eq(f, &it[i]);
            found++;
        }
    }
    ck_assert_int_eq(found, in_bucket0);
    hmap_clear(&m);

    hmap_init(&m);
    insert(&m, &it[0], "same", 1);
    insert(&m, &dup, "same", 2);
    struct item *first = find(&m, "same");
    ck_assert(first == &it[0] || first == &dup);
    hmap_remove(&m, &first->e);
    struct item *second = find(&m, "same");
    ck_assert(second != NULL && second != first);
    hmap_remove(&m, &second->e);
    ck_assert_ptr_null(find(&m, "same"));
    hmap_clear(&m);
}
END_TEST

START_TEST(test_growth)
{
    struct hmap m;
    static struct item it[1000];
    char key[24];

    hmap_init(&m);
    ck_assert_uint_eq(m.n_buckets, 0);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        insert(&m, &it[i], key, i);
        /* Load factor at most 1, a power of two. */
        ck_assert_uint_ge(m.n_buckets, m.count);
        ck_assert_uint_eq(m.n_buckets & (m.n_buckets - 1), 0);
    }
    ck_assert_uint_eq(m.n_buckets, 1024);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        ck_assert_ptr_eq(find(&m, key), &it[i]);
    }
    /* Removing never shrinks (iteration relies on it). */
    for (int i = 0; i < 1000; i++)
        hmap_remove(&m, &it[i].e);
    ck_assert_uint_eq(m.count, 0);
    ck_assert_uint_eq(m.n_buckets, 1024);
    hmap_clear(&m);
}
END_TEST

/* Iteration visits each entry once; removing the current entry (every one, or every other)
 * keeps the iteration going over the rest. */
START_TEST(test_iterate_remove)
{
    static const int remove_every[] = {0, 1, 2, 3}; /* 0: remove none */
    struct hmap m;
    static struct item it[500];
    struct hmap_iter iter;
    struct hmap_entry *e;
    char key[24];
    int every = remove_every[_i], n = 0;

    hmap_init(&m);
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "it-%d", i);
        insert(&m, &it[i], key, i);
        it[i].seen = 0;
    }
    hmap_iter_init(&iter, &m);
    while ((e = hmap_iter_next(&iter)) != NULL) {
        struct item *x = item_of(e);
        x->seen++;
        if (every != 0 && n++ % every == 0)
            hmap_remove(&m, e);
    }
    size_t left = 0;
    for (int i = 0; i < 500; i++) {
        ck_assert_int_eq(it[i].seen, 1);
        snprintf(key, sizeof key, "it-%d", i);
        left += find(&m, key) != NULL;
    }
    ck_assert_uint_eq(left, m.count);
    if (every == 1)
        ck_assert_uint_eq(m.count, 0);
    if (every == 0)
        ck_assert_uint_eq(m.count, 500);

    /* An empty map iterates nothing. */
    struct hmap empty;
    hmap_init(&empty);
    hmap_iter_init(&iter, &empty);
    ck_assert_ptr_null(hmap_iter_next(&iter));
    hmap_clear(&m);
}
END_TEST

/* 100,000 entries: all found, all iterated once, then removed half by half. */
START_TEST(test_100k)
{
    enum { N = 100000 };
    struct hmap m;
    struct item *it = calloc(N, sizeof *it);
    struct hmap_iter iter;
    struct hmap_entry *e;
    size_t longest = 0;
    char key[24];

    ck_assert_ptr_nonnull(it);
    hmap_init(&m);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "queue.%d", i);
        insert(&m, &it[i], key, i);
    }
    ck_assert_uint_eq(m.count, N);
    ck_assert_uint_eq(m.n_buckets, 131072);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "queue.%d", i);
        ck_assert_ptr_eq(find(&m, key), &it[i]);
    }
    /* The hash spreads sequential names: no chain is long. */
    for (size_t b = 0; b < m.n_buckets; b++) {
        size_t len = 0;
        for (e = m.buckets[b]; e != NULL; e = e->next)
            len++;
        if (len > longest)
            longest = len;
    }
    ck_assert_uint_lt(longest, 16);
    hmap_iter_init(&iter, &m);
    while ((e = hmap_iter_next(&iter)) != NULL)
        item_of(e)->seen++;
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(it[i].seen, 1);
    for (int i = 0; i < N; i += 2)
        hmap_remove(&m, &it[i].e);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "queue.%d", i);
        ck_assert_ptr_eq(find(&m, key), i % 2 ? &it[i] : NULL);
    }
    hmap_clear(&m);
    free(it);
}
END_TEST

static void
scan_seen(const struct hmap_entry *e, void *arg)
{
    (void)arg;
    item_of((struct hmap_entry *)e)->seen++;
}

/* A scan stopped and resumed: entries present throughout are handed over exactly once while
 * the map grows from 1024 to 8192 buckets and loses entries in between; those inserted or
 * removed meanwhile at most once. */
START_TEST(test_scan_resumed)
{
    struct hmap m;
    static struct item it[6000];
    char key[24];
    size_t cursor = 0;
    int calls = 0;

    hmap_init(&m);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        insert(&m, &it[i], key, i);
    }
    do {
        cursor = hmap_scan(&m, cursor, scan_seen, NULL);
        calls++;
        if (calls == 300) { /* grows twice over */
            for (int i = 1000; i < 4000; i++) {
                snprintf(key, sizeof key, "key-%d", i);
                insert(&m, &it[i], key, i);
            }
            for (int i = 0; i < 1000; i += 7)
                hmap_remove(&m, &it[i].e);
        }
        if (calls == 2000) /* grows once more */
            for (int i = 4000; i < 6000; i++) {
                snprintf(key, sizeof key, "key-%d", i);
                insert(&m, &it[i], key, i);
            }
    } while (cursor != 0);
    ck_assert_uint_eq(m.n_buckets, 8192);
    for (int i = 0; i < 6000; i++) {
        ck_assert_int_le(it[i].seen, 1);
        if (i < 1000 && i % 7 != 0)
            ck_assert_int_eq(it[i].seen, 1);
    }
    hmap_clear(&m);
}
END_TEST

static int drained;

static void
drain_one(struct hmap_entry *e)
{
    item_of(e)->seen++;
    drained++;
}

/* hmap_drain hands every entry over exactly once and leaves an empty, reusable map. */
START_TEST(test_drain)
{
    struct hmap m;
    static struct item items[300];
    char key[16];
    hmap_init(&m);
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "k%d", i);
        items[i].seen = 0;
        insert(&m, &items[i], key, i);
    }
    drained = 0;
    hmap_drain(&m, drain_one);
    ck_assert_int_eq(drained, 300);
    for (int i = 0; i < 300; i++)
        ck_assert_int_eq(items[i].seen, 1);
    ck_assert_uint_eq(m.count, 0);
    ck_assert_ptr_null(find(&m, "k1"));
    insert(&m, &items[0], "again", 1);
    ck_assert_ptr_eq(find(&m, "again"), &items[0]);
    hmap_clear(&m);
}
END_TEST

static Suite *
hmap_suite(void)
{
    Suite *s = suite_create("hmap");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_siphash13_vectors, 0, N_ELEMS(sip13_vectors));
    tcase_add_test(tc, test_insert_find_remove);
    tcase_add_test(tc, test_collisions);
    tcase_add_test(tc, test_growth);
    tcase_add_test(tc, test_scan_resumed);
    tcase_add_loop_test(tc, test_iterate_remove, 0, 4);
    tcase_add_test(tc, test_crafted_collisions);
    tcase_add_test(tc, test_100k);
    tcase_add_test(tc, test_drain);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(hmap_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
