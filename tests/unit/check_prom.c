/* Unit tests for src/mgmt/prom_text.c, the Prometheus text format 0.0.4 writer, and the
 * fixed-bucket histogram it shows (stats_hist, src/core/stats.c): "# TYPE" then "# HELP"
 * with the help escaped (\\ and \n); label values escaped (\\, \", \n) and everything else
 * (UTF-8, '}', ',') left as is; samples without labels; floats, +Inf and NaN as Go's
 * ParseFloat reads them; histogram observations on, below and above the bounds, cumulative
 * _bucket lines up to le="+Inf", _sum scaled and _count. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/buffer.h>

#include "prom_text.h"

/* The text written so far, NUL-terminated (owned by b). */
static const char *
text(struct evbuffer *b)
{
    evbuffer_add(b, "", 1);
    return (const char *)evbuffer_pullup(b, -1);
}

START_TEST(test_family_and_samples)
{
    struct evbuffer *b = evbuffer_new();
    struct prom_w w = {b, false};
    prom_family(&w, "rabbitmq_queues", "gauge", "Queues available\nback\\slash");
    prom_u64(&w, "rabbitmq_queues", NULL, 0, 18446744073709551615ull);
    struct prom_label l[] = {{"vhost", "/"}, {"queue", "q\"1\\x\ny}, é"}};
    prom_u64(&w, "rabbitmq_queue_messages", l, 2, 3);
    prom_f64(&w, "x", l, 1, 0.25);
    prom_f64(&w, "x", NULL, 0, 1.0 / 0.0);
    prom_f64(&w, "x", NULL, 0, 0.0 / 0.0);
    ck_assert(!w.failed);
    ck_assert_str_eq(text(b),
                     "# TYPE rabbitmq_queues gauge\n"
                     "# HELP rabbitmq_queues Queues available\\nback\\\\slash\n"
                     "rabbitmq_queues 18446744073709551615\n"
                     "rabbitmq_queue_messages{vhost=\"/\",queue=\"q\\\"1\\\\x\\ny}, é\"} 3\n"
                     "x{vhost=\"/\"} 0.25\n"
                     "x +Inf\n"
                     "x NaN\n");
    evbuffer_free(b);
}
END_TEST

START_TEST(test_histogram)
{
    static const uint64_t bounds[] = {100, 1000, 10000};
    struct stats_hist h;
    stats_hist_init(&h, bounds, 3);
    stats_hist_observe(&h, 0);     /* le 100 */
    stats_hist_observe(&h, 100);   /* on a bound: le 100 */
    stats_hist_observe(&h, 101);   /* le 1000 */
    stats_hist_observe(&h, 20000); /* above the last: +Inf only */
    stats_hist_observe(&h, 10000); /* le 10000 */
    ck_assert_uint_eq(h.counts[0], 2);
    ck_assert_uint_eq(h.counts[1], 1);
    ck_assert_uint_eq(h.counts[2], 1);
    ck_assert_uint_eq(h.counts[3], 1);
    ck_assert_uint_eq(h.sum, 30201);

    struct evbuffer *b = evbuffer_new();
    struct prom_w w = {b, false};
    struct prom_label l[] = {{"sync", "true"}};
    prom_hist(&w, "t_seconds", l, 1, &h, 1e-6);
    prom_hist(&w, "n", NULL, 0, &h, 1);
    ck_assert(!w.failed);
    ck_assert_str_eq(text(b), "t_seconds_bucket{sync=\"true\",le=\"0.0001\"} 2\n"
                              "t_seconds_bucket{sync=\"true\",le=\"0.001\"} 3\n"
                              "t_seconds_bucket{sync=\"true\",le=\"0.01\"} 4\n"
                              "t_seconds_bucket{sync=\"true\",le=\"+Inf\"} 5\n"
                              "t_seconds_sum{sync=\"true\"} 0.030201\n"
                              "t_seconds_count{sync=\"true\"} 5\n"
                              "n_bucket{le=\"100\"} 2\n"
                              "n_bucket{le=\"1000\"} 3\n"
                              "n_bucket{le=\"10000\"} 4\n"
                              "n_bucket{le=\"+Inf\"} 5\n"
                              "n_sum 30201\n"
                              "n_count 5\n");
    evbuffer_free(b);
}
END_TEST

START_TEST(test_empty_histogram)
{
    static const uint64_t bounds[] = {1};
    struct stats_hist h;
    stats_hist_init(&h, bounds, 1);
    struct evbuffer *b = evbuffer_new();
    struct prom_w w = {b, false};
    prom_hist(&w, "e", NULL, 0, &h, 1);
    ck_assert_str_eq(text(b),
                     "e_bucket{le=\"1\"} 0\ne_bucket{le=\"+Inf\"} 0\ne_sum 0\ne_count 0\n");
    evbuffer_free(b);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("prom");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_family_and_samples);
    tcase_add_test(tc, test_histogram);
    tcase_add_test(tc, test_empty_histogram);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
