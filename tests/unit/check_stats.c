/* Unit tests for src/core/stats.c: counters, rates over simulated sampling intervals, and the
 * changed list (only changed objects are sampled; one quiet interval takes an object out with
 * its rates at 0; a change puts it back; clearing an object unlinks it), gauges' rates of
 * change and idle_since. */
#include "config.h"

#include <check.h>

#include "warren/stats.h"

static size_t
listed(void)
{
    size_t n = 0;
    struct stats_obj *o;
    LIST_FOREACH(o, &stats_changed, changed)
        n++;
    return n;
}

START_TEST(test_counters_and_rates)
{
    struct stats_obj a, b;
    stats_obj_init(&a);
    stats_obj_init(&b);
    ck_assert(!stats_obj_any(&a));
    ck_assert_uint_eq(listed(), 0);
    stats_add(&a, STATS_PUBLISH, 1);
    stats_add(&a, STATS_PUBLISH, 9);
    stats_add(&a, STATS_ACK, 5);
    ck_assert(stats_obj_any(&a));
    ck_assert_uint_eq(a.n[STATS_PUBLISH], 10);
    ck_assert_uint_eq(listed(), 1); /* b never changed: not listed, costs nothing */
    ck_assert(stats_rate(&a, STATS_PUBLISH) == 0.0);

    /* 10 publishes over 2 s: 5/s; 5 acks: 2.5/s. */
    ck_assert_uint_eq(stats_sample(2000), 1);
    ck_assert(stats_rate(&a, STATS_PUBLISH) == 5.0);
    ck_assert(stats_rate(&a, STATS_ACK) == 2.5);
    ck_assert(stats_rate(&b, STATS_PUBLISH) == 0.0);
    ck_assert(b.rates == NULL);

    /* Rates hold between samples, whatever is counted meanwhile. */
    stats_add(&a, STATS_PUBLISH, 4);
    ck_assert(stats_rate(&a, STATS_PUBLISH) == 5.0);
    ck_assert_uint_eq(stats_sample(1000), 1);
    ck_assert(stats_rate(&a, STATS_PUBLISH) == 4.0);
    ck_assert(stats_rate(&a, STATS_ACK) == 0.0);

    /* A quiet interval: rates decay to 0 and a leaves the list; counters stay. */
    ck_assert_uint_eq(stats_sample(1000), 0);
    ck_assert(stats_rate(&a, STATS_PUBLISH) == 0.0);
    ck_assert_uint_eq(listed(), 0);
    ck_assert_uint_eq(a.n[STATS_PUBLISH], 14);

    /* Back on the next change, its rate from the counter at the last sample. */
    stats_add(&a, STATS_DELIVER, 3);
    stats_add(&b, STATS_GET_EMPTY, 1);
    ck_assert_uint_eq(listed(), 2);
    ck_assert_uint_eq(stats_sample(1000), 2);
    ck_assert(stats_rate(&a, STATS_DELIVER) == 3.0);
    ck_assert(stats_rate(&a, STATS_PUBLISH) == 0.0);
    ck_assert(stats_rate(&b, STATS_GET_EMPTY) == 1.0);

    /* An object going away leaves the list. */
    stats_obj_clear(&a);
    ck_assert_uint_eq(listed(), 1);
    stats_obj_clear(&b);
    ck_assert_uint_eq(listed(), 0);
    ck_assert_uint_eq(stats_sample(1000), 0);
}
END_TEST

/* Many objects, few of them busy: a sample visits the busy ones only. */
START_TEST(test_only_changed_sampled)
{
    enum { N = 10000 };
    static struct stats_obj objs[N];
    for (int i = 0; i < N; i++)
        stats_obj_init(&objs[i]);
    for (int i = 0; i < N; i += 100)
        stats_add(&objs[i], STATS_PUBLISH, (uint64_t)i);
    ck_assert_uint_eq(listed(), N / 100);
    stats_sample(5000);
    /* Objects 0 changed nothing (added 0) and left; the others stay one more interval. */
    ck_assert_uint_eq(listed(), N / 100 - 1);
    ck_assert(stats_rate(&objs[500], STATS_PUBLISH) == 100.0);
    ck_assert(objs[1].rates == NULL);
    ck_assert_uint_eq(stats_sample(5000), 0);
    for (int i = 0; i < N; i++)
        stats_obj_clear(&objs[i]);
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(stats_name(STATS_PUBLISH_IN), "publish_in");
    ck_assert_str_eq(stats_name(STATS_RETURN_UNROUTABLE), "return_unroutable");
    for (int f = 0; f < STATS_N; f++)
        ck_assert_ptr_nonnull(stats_name((enum stats_field)f));
}
END_TEST

/* A fake object's gauges: g_values. */
static uint64_t g_values[STATS_GAUGES];
static void
fake_gauges(const struct stats_obj *o, uint64_t out[STATS_GAUGES])
{
    (void)o;
    for (int i = 0; i < STATS_GAUGES; i++)
        out[i] = g_values[i];
}

START_TEST(test_gauges_and_idle)
{
    struct stats_obj q;
    stats_obj_init(&q);
    q.gauges = fake_gauges;
    uint64_t since = 1;
    ck_assert(stats_idle(&q, &since));
    ck_assert_uint_eq(since, 0); /* never had traffic: its owner says since when */
    g_values[0] = 10;
    stats_add(&q, STATS_PUBLISH, 10);
    ck_assert(!stats_idle(&q, &since));
    ck_assert_uint_eq(stats_sample(2000), 1);
    ck_assert(stats_gauge_rate(&q, 0) == 5.0);
    ck_assert(stats_gauge_rate(&q, 1) == 0.0);
    /* the gauge moves without a counted event (a purge): still listed, the fall seen */
    g_values[0] = 0;
    ck_assert_uint_eq(stats_sample(1000), 1);
    ck_assert(stats_gauge_rate(&q, 0) == -10.0);
    ck_assert(!stats_idle(&q, &since));
    /* quiet: rates 0, out of the list, idle since that sample */
    ck_assert_uint_eq(stats_sample(1000), 0);
    ck_assert(stats_gauge_rate(&q, 0) == 0.0);
    ck_assert(stats_idle(&q, &since));
    ck_assert_uint_gt(since, 1600000000000ull); /* the wall clock, in ms */
    stats_obj_clear(&q);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_counters_and_rates);
    tcase_add_test(tc, test_only_changed_sampled);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_gauges_and_idle);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
