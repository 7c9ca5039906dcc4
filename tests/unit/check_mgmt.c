/* Unit tests for the HTTP API's small parsers and formatters (src/mgmt/): a binding's
 * properties_key and the Location of a created binding, as RabbitMQ 3.10.8 writes them
 * (values taken from its answers), a get's ackmode, and integers sent as JSON integers or
 * strings (rabbitmqadmin sends "5"). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "api_list.h"
#include "mgmt_int.h"

static struct wire_str
str(const char *s)
{
    return (struct wire_str){(const uint8_t *)s, (uint32_t)strlen(s)};
}

START_TEST(test_props_key)
{
    char key[1024];
    struct wire_table none = {NULL, 0};
    mgmt_props_key(key, sizeof(key), str(""), none);
    ck_assert_str_eq(key, "~");
    mgmt_props_key(key, sizeof(key), str("k"), none);
    ck_assert_str_eq(key, "k");
    mgmt_props_key(key, sizeof(key), str("a b/c~d"), none);
    ck_assert_str_eq(key, "a+b%2Fc%7Ed");
    mgmt_props_key(key, sizeof(key), str("x.y-z_1"), none);
    ck_assert_str_eq(key, "x.y-z_1");
    /* with arguments: "~" and a stable hash, different for different tables */
    static const uint8_t t1[] = {1, 'x', 'b', 1}, t2[] = {1, 'x', 'b', 2};
    char k1[1024], k2[1024];
    mgmt_props_key(k1, sizeof(k1), str("r"), (struct wire_table){t1, sizeof(t1)});
    mgmt_props_key(key, sizeof(key), str("r"), (struct wire_table){t1, sizeof(t1)});
    mgmt_props_key(k2, sizeof(k2), str("r"), (struct wire_table){t2, sizeof(t2)});
    ck_assert_str_eq(k1, key);
    ck_assert_str_ne(k1, k2);
    ck_assert_int_eq(strncmp(k1, "r~", 2), 0);
    ck_assert_uint_eq(strlen(k1), 2 + 6);
    mgmt_props_key(key, sizeof(key), str(""), (struct wire_table){t1, sizeof(t1)});
    ck_assert_int_eq(key[0], '~');
    /* a key longer than the room is cut, never overrun */
    char small[8];
    mgmt_props_key(small, sizeof(small), str("%%%%%%%%"), none);
    ck_assert_uint_lt(strlen(small), sizeof(small));
}
END_TEST

START_TEST(test_bind_location)
{
    char *loc = mgmt_bind_location("q1", "a+b%2Fc%7Ed");
    ck_assert_str_eq(loc, "q1/a%2Bb%252Fc%257Ed");
    free(loc);
    loc = mgmt_bind_location("q1", "~");
    ck_assert_str_eq(loc, "q1/~");
    free(loc);
    loc = mgmt_bind_location("amq.direct", "r~AbCd-_");
    ck_assert_str_eq(loc, "amq.direct/r~AbCd-_");
    free(loc);
}
END_TEST

START_TEST(test_ackmode)
{
    ck_assert_int_eq(mgmt_ackmode_parse("ack_requeue_true"), 0);
    ck_assert_int_eq(mgmt_ackmode_parse("ack_requeue_false"), 1);
    ck_assert_int_eq(mgmt_ackmode_parse("reject_requeue_true"), 2);
    ck_assert_int_eq(mgmt_ackmode_parse("reject_requeue_false"), 3);
    ck_assert_int_eq(mgmt_ackmode_parse("ack_requeue_True"), -1);
    ck_assert_int_eq(mgmt_ackmode_parse(""), -1);
    ck_assert_int_eq(mgmt_ackmode_parse(NULL), -1);
}
END_TEST

START_TEST(test_json_int)
{
    int64_t n = 0;
    json_t *v = json_integer(-3);
    ck_assert_int_eq(mgmt_json_int(v, &n), 0);
    ck_assert_int_eq(n, -3);
    json_decref(v);
    const char *good[] = {"5", "-1", "0"};
    const int64_t want[] = {5, -1, 0};
    for (int i = 0; i < 3; i++) {
        v = json_string(good[i]);
        ck_assert_int_eq(mgmt_json_int(v, &n), 0);
        ck_assert_int_eq(n, want[i]);
        json_decref(v);
    }
    const char *bad[] = {"", "x", "5x", " 5"};
    for (int i = 0; i < 4; i++) {
        v = json_string(bad[i]);
        ck_assert_int_eq(mgmt_json_int(v, &n), -1);
        json_decref(v);
    }
    v = json_real(1.5);
    ck_assert_int_eq(mgmt_json_int(v, &n), -1);
    json_decref(v);
    ck_assert_int_eq(mgmt_json_int(NULL, &n), -1);
}
END_TEST

/* Elements of the merge sort's test: sorted by key, seq says where each was. */
struct msort_elem {
    int key;
    int seq;
};

static int
msort_cmp(const void *ctx, const void *a, const void *b)
{
    (void)ctx;
    const struct msort_elem *x = a, *y = b;
    return (x->key > y->key) - (x->key < y->key);
}

/* mgmt_msort: sorted and stable for every length, taken one step at a time (a clock already
 * past: each step stops at its first look) as in one go. */
START_TEST(test_msort)
{
    enum { MAX = 1500 };
    static struct msort_elem rows[MAX], tmp[MAX];
    unsigned seed = 7;
    for (int n = 0; n < MAX; n = n < 40 ? n + 1 : n * 3 / 2) {
        for (int stepped = 0; stepped < 2; stepped++) {
            for (int i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                rows[i] = (struct msort_elem){(int)(seed >> 16) % 50, i};
            }
            struct mgmt_msort m = {.rows = rows,
                                   .tmp = tmp,
                                   .n = (size_t)n,
                                   .size = sizeof(rows[0]),
                                   .cmp = msort_cmp,
                                   .width = 1};
            int steps = 1;
            while (!mgmt_msort_step(&m, stepped ? 0 : UINT64_MAX))
                steps++;
            if (stepped && n > 300)
                ck_assert_int_gt(steps, 1);
            const struct msort_elem *out = m.rows;
            for (int i = 1; i < n; i++) {
                ck_assert_int_le(out[i - 1].key, out[i].key);
                if (out[i - 1].key == out[i].key)
                    ck_assert_int_lt(out[i - 1].seq, out[i].seq);
            }
        }
    }
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("mgmt");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_props_key);
    tcase_add_test(tc, test_bind_location);
    tcase_add_test(tc, test_ackmode);
    tcase_add_test(tc, test_json_int);
    tcase_add_test(tc, test_msort);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
