/* Unit tests for src/broker/publish.c, the publish pipeline, on a vhost without a store: the
 * default exchange, a fanout to three queues (one message, three entries sharing it, each
 * dispatched), an unroutable message, an exchange that does not exist. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "warren/exchange.h"
#include "warren/msg.h"
#include "warren/publish.h"
#include "warren/queue.h"
#include "warren/vhost.h"

/* A consumer that takes everything and settles it at once. */
static int delivered;

static bool
take_all(struct cons *c)
{
    return true;
}

static int
settle_now(struct cons *c, struct qentry *e)
{
    delivered++;
    queue_cmd_settle(e);
    return 0;
}

static void
gone(struct cons *c)
{
}

static uint32_t
none_unsettled(const struct cons *c)
{
    return 0; /* settle_now settles everything at once */
}

static const struct cons_ops eager_ops = {take_all, none_unsettled, settle_now, gone};

static struct msg *
new_msg(const char *exchange, const char *routing_key)
{
    struct msg *m = msg_new(
        NULL, 0, 1, 0, (struct wire_str){(const uint8_t *)exchange, (uint32_t)strlen(exchange)},
        (struct wire_str){(const uint8_t *)routing_key, (uint32_t)strlen(routing_key)}, 0);
    ck_assert_ptr_nonnull(m);
    return m;
}

static struct queue *
add_queue(struct vhost *vh, const char *name)
{
    struct queue *q = queue_new(vh, (struct wire_str){(const uint8_t *)name, strlen(name)}, false,
                                false, NULL, (struct wire_table){NULL, 0});
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(vhost_queue_add(vh, q), 0);
    return q;
}

START_TEST(test_pipeline)
{
    struct vhost_registry reg;
    vhost_registry_init(&reg);
    struct vhost *vh = vhost_add(&reg, "/");
    ck_assert_ptr_nonnull(vh);
    struct queue *q[3] = {add_queue(vh, "a"), add_queue(vh, "b"), add_queue(vh, "c")};
    struct exch *fan = vhost_exch_find(vh, WIRE_STR_LIT("amq.fanout"));
    ck_assert_ptr_nonnull(fan);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(
            exch_bind(fan, bind_dest_queue(q[i]), WIRE_STR_LIT(""), (struct wire_table){NULL, 0}),
            0);
    struct cons c = {.ops = &eager_ops};
    queue_consumer_add(q[1], &c);

    struct route_result scratch = {0};
    struct publish_outcome out;
    struct msg *m = new_msg("", "a");
    ck_assert_int_eq(publish_message(vh, &m, &scratch, &out), PUBLISH_OK);
    ck_assert_uint_eq(out.n_queues, 1);
    ck_assert(!out.stored);
    ck_assert_uint_eq(q[0]->n_ready, 1);
    msg_unref(&m);

    m = new_msg("amq.fanout", "ignored");
    ck_assert_int_eq(publish_message(vh, &m, &scratch, &out), PUBLISH_OK);
    ck_assert_uint_eq(out.n_queues, 3);
    ck_assert_uint_eq(m->refs, 1 + 2); /* ours, and a's and c's entries: b dispatched it */
    ck_assert_int_eq(delivered, 1);
    ck_assert_uint_eq(q[0]->n_ready, 2);
    ck_assert_uint_eq(q[1]->n_ready, 0);
    ck_assert_uint_eq(q[2]->n_ready, 1);
    msg_unref(&m);

    m = new_msg("", "nowhere");
    ck_assert_int_eq(publish_message(vh, &m, &scratch, &out), PUBLISH_OK);
    ck_assert_uint_eq(out.n_queues, 0);
    ck_assert_int_eq(publish_message(vh, &m, &scratch, &out), PUBLISH_OK);
    msg_unref(&m);

    m = new_msg("no-such-exchange", "a");
    ck_assert_int_eq(publish_message(vh, &m, &scratch, &out), PUBLISH_NO_EXCHANGE);
    ck_assert_uint_eq(out.n_queues, 0);
    ck_assert_uint_eq(m->refs, 1);
    msg_unref(&m);

    queue_consumer_remove(&c);
    route_result_free(&scratch);
    vhost_registry_clear(&reg);
}
END_TEST

static Suite *
publish_suite(void)
{
    Suite *s = suite_create("publish");
    TCase *tc = tcase_create("pipeline");
    tcase_add_test(tc, test_pipeline);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(publish_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
