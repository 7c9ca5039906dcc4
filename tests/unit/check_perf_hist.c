/* Unit tests for tools/warren-perf/hist.c, warren-perf's latency histogram: the bucket layout
 * (exact below 128, contiguous, each bucket at most 1/64 of its values wide, the whole uint64
 * range covered), percentiles against the exact order statistics of the same data (never
 * below, at most 1/64 above, never above the maximum), the empty histogram, and the snapshot
 * arithmetic the progress line uses (add, then subtract an earlier snapshot). */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <check.h>

#include "hist.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(test_small_values_exact)
{
    for (uint64_t v = 0; v < 2 * PERF_HIST_SUB; v++) {
        unsigned b = perf_hist_bucket(v);
        ck_assert_uint_eq(b, v);
        ck_assert_uint_eq(perf_hist_bucket_lo(b), v);
        ck_assert_uint_eq(perf_hist_bucket_hi(b), v);
    }
}
END_TEST

START_TEST(test_buckets_contiguous)
{
    ck_assert_uint_eq(perf_hist_bucket_lo(0), 0);
    ck_assert_uint_eq(perf_hist_bucket_hi(PERF_HIST_BUCKETS - 1), UINT64_MAX);
    ck_assert_uint_eq(perf_hist_bucket(UINT64_MAX), PERF_HIST_BUCKETS - 1);
    for (unsigned b = 0; b < PERF_HIST_BUCKETS; b++) {
        uint64_t lo = perf_hist_bucket_lo(b), hi = perf_hist_bucket_hi(b);
        ck_assert_uint_le(lo, hi);
        ck_assert_uint_eq(perf_hist_bucket(lo), b);
        ck_assert_uint_eq(perf_hist_bucket(hi), b);
        if (lo >= 2 * PERF_HIST_SUB)
            ck_assert_uint_le(hi - lo + 1, lo / PERF_HIST_SUB); /* 1/64 precision */
        if (b + 1 < PERF_HIST_BUCKETS)
            ck_assert_uint_eq(hi + 1, perf_hist_bucket_lo(b + 1));
    }
}
END_TEST

/* Values around powers of two, where the layout changes step. */
static const uint64_t edge_values[] = {
    127,
    128,
    129,
    255,
    256,
    257,
    1000,
    1023,
    1024,
    1025,
    312500,
    1000000,
    999999999,
    (UINT64_C(1) << 40) - 1,
    UINT64_C(1) << 40,
    (UINT64_C(1) << 63) + 12345,
    UINT64_MAX - 1,
};

START_TEST(test_edge_values)
{
    uint64_t v = edge_values[_i];
    unsigned b = perf_hist_bucket(v);
    ck_assert_uint_lt(b, PERF_HIST_BUCKETS);
    ck_assert_uint_le(perf_hist_bucket_lo(b), v);
    ck_assert_uint_ge(perf_hist_bucket_hi(b), v);
}
END_TEST

START_TEST(test_empty)
{
    static struct perf_hist h;
    perf_hist_reset(&h);
    ck_assert_uint_eq(perf_hist_count(&h), 0);
    ck_assert_uint_eq(perf_hist_max(&h), 0);
    ck_assert_uint_eq(perf_hist_percentile(&h, 50), 0);
    ck_assert_uint_eq(perf_hist_percentile(&h, 100), 0);
}
END_TEST

/* Small data sets whose percentiles are known exactly. */
static const struct {
    const char *what;
    uint64_t a, n_a, b, n_b; /* n_a copies of a, then n_b of b */
    double p;
    uint64_t want;
} exact_cases[] = {
    {"one value", 312500, 1, 0, 0, 50, 312500},
    {"one value, p100", 312500, 1, 0, 0, 100, 312500},
    {"one value, p0", 312500, 1, 0, 0, 0, 312500},
    {"constant", 1200, 1000, 0, 0, 99, 1200},
    {"small exact values", 7, 50, 90, 50, 50, 7},
    {"small exact values, just above the median", 7, 50, 90, 50, 50.1, 90},
    {"one outlier in 100, p99", 100, 99, 1000000, 1, 99, 100},
    {"one outlier in 100, p99.5", 100, 99, 1000000, 1, 99.5, 1000000},
    {"one outlier in 100, p100 is the max", 100, 99, 1000000, 1, 100, 1000000},
    {"zero latency", 0, 10, 0, 0, 50, 0},
    {"out of range p is clamped", 5, 1, 9, 1, 150, 9},
};

START_TEST(test_exact_percentiles)
{
    static struct perf_hist h;
    perf_hist_reset(&h);
    for (uint64_t i = 0; i < exact_cases[_i].n_a; i++)
        perf_hist_record(&h, exact_cases[_i].a);
    for (uint64_t i = 0; i < exact_cases[_i].n_b; i++)
        perf_hist_record(&h, exact_cases[_i].b);
    ck_assert_msg(perf_hist_percentile(&h, exact_cases[_i].p) == exact_cases[_i].want,
                  "%s: p%g = %llu, want %llu", exact_cases[_i].what, exact_cases[_i].p,
                  (unsigned long long)perf_hist_percentile(&h, exact_cases[_i].p),
                  (unsigned long long)exact_cases[_i].want);
}
END_TEST

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Data sets spread over several orders of magnitude, against their sorted copies. */
static const struct {
    const char *what;
    uint64_t lo, hi; /* uniform in [lo, hi], or log-uniform when log */
    int log;
} spread_cases[] = {
    {"uniform 1..1000", 1, 1000, 0},
    {"uniform 1..100000", 1, 100000, 0},
    {"log-uniform 1us..10s in ns", 1000, 10000000000ull, 1},
    {"log-uniform 1..2^62", 1, UINT64_C(1) << 62, 1},
};
static const double spread_ps[] = {1, 10, 50, 90, 95, 99, 99.9, 100};

START_TEST(test_percentiles_vs_exact)
{
    enum { N = 20000 };
    static struct perf_hist h;
    static uint64_t v[N];
    uint64_t lo = spread_cases[_i].lo, hi = spread_cases[_i].hi;

    srand(42 + _i);
    perf_hist_reset(&h);
    for (int i = 0; i < N; i++) {
        double r = (double)rand() / RAND_MAX;
        if (spread_cases[_i].log)
            v[i] = (uint64_t)((double)lo * pow((double)hi / (double)lo, r));
        else
            v[i] = lo + (uint64_t)(r * (double)(hi - lo));
        perf_hist_record(&h, v[i]);
    }
    qsort(v, N, sizeof v[0], cmp_u64);
    ck_assert_uint_eq(perf_hist_count(&h), N);
    ck_assert_uint_eq(perf_hist_max(&h), v[N - 1]);
    for (size_t k = 0; k < N_ELEMS(spread_ps); k++) {
        double p = spread_ps[k];
        size_t rank = (size_t)ceil(p / 100 * N);
        uint64_t exact = v[rank - 1], got = perf_hist_percentile(&h, p);
        ck_assert_msg(got >= exact && got - exact <= exact / PERF_HIST_SUB,
                      "%s: p%g = %llu, exact %llu", spread_cases[_i].what, p,
                      (unsigned long long)got, (unsigned long long)exact);
        ck_assert_uint_le(got, v[N - 1]);
    }
}
END_TEST

/* The progress line: merge the consumers' histograms, subtract the previous snapshot. */
START_TEST(test_snapshot_interval)
{
    static struct perf_hist a, b, snap1, snap2, interval;
    perf_hist_reset(&a);
    perf_hist_reset(&b);
    perf_hist_reset(&snap1);
    perf_hist_reset(&snap2);
    for (int i = 0; i < 1000; i++) /* the first second: fast */
        perf_hist_record(i % 2 ? &a : &b, 100);
    perf_hist_add(&snap1, &a);
    perf_hist_add(&snap1, &b);
    ck_assert_uint_eq(perf_hist_count(&snap1), 1000);
    for (int i = 0; i < 100; i++) /* the next second: slow */
        perf_hist_record(i % 2 ? &a : &b, 50000);
    perf_hist_add(&snap2, &a);
    perf_hist_add(&snap2, &b);
    perf_hist_sub(&interval, &snap2, &snap1);
    ck_assert_uint_eq(perf_hist_count(&snap2), 1100);
    ck_assert_uint_eq(perf_hist_count(&interval), 100);
    ck_assert_uint_eq(perf_hist_max(&interval), 50000);
    ck_assert_uint_eq(perf_hist_percentile(&interval, 50), 50000);
    ck_assert_uint_eq(perf_hist_percentile(&snap2, 50), 100);
    ck_assert_uint_eq(perf_hist_percentile(&snap2, 95), 50000);
}
END_TEST

static Suite *
perf_hist_suite(void)
{
    Suite *s = suite_create("perf_hist");
    TCase *tc = tcase_create("hist");

    tcase_add_test(tc, test_small_values_exact);
    tcase_add_test(tc, test_buckets_contiguous);
    tcase_add_loop_test(tc, test_edge_values, 0, N_ELEMS(edge_values));
    tcase_add_test(tc, test_empty);
    tcase_add_loop_test(tc, test_exact_percentiles, 0, N_ELEMS(exact_cases));
    tcase_add_loop_test(tc, test_percentiles_vs_exact, 0, N_ELEMS(spread_cases));
    tcase_add_test(tc, test_snapshot_interval);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(perf_hist_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
