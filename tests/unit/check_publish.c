/* Unit tests for src/broker/publish.c, the publish pipeline, on a vhost without a store: the
 * default exchange, a fanout to three queues (one message, three entries sharing it, each
 * dispatched), an unroutable message, an exchange that does not exist; the CC and BCC headers
 * (routing by their keys, BCC removed from a copy sharing the body, malformed ones refused). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "warren/exchange.h"
#include "warren/msg.h"
#include "warren/msg_props.h"
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

/* Headers for the CC/BCC tests, written into w: z (longstr), BCC [c] unless no_bcc, CC [b, a
 * table] (the table is not a key). */
static void
put_routing_headers(struct wire_writer *w, bool no_bcc)
{
    wire_table_put_longstr(w, "z", WIRE_STR_LIT("first"));
    if (!no_bcc) {
        size_t bcc = wire_table_put_array_begin(w, "BCC");
        wire_array_put_longstr(w, WIRE_STR_LIT("c"));
        wire_table_put_table_end(w, bcc);
    }
    size_t cc = wire_table_put_array_begin(w, "CC");
    wire_array_put_longstr(w, WIRE_STR_LIT("b"));
    size_t member = wire_array_put_table_begin(w);
    wire_table_put_longstr(w, "k", WIRE_STR_LIT("v"));
    wire_table_put_table_end(w, member);
    wire_table_put_table_end(w, cc);
}

/* A complete message to exchange with routing key rk, body "abc", whose properties are a
 * headers table (put_routing_headers), found as the channel finds it. */
static struct msg *
new_msg_with_headers(const char *exchange, const char *rk, bool no_bcc)
{
    uint8_t hbuf[256], pbuf[512];
    struct wire_writer hw, pw;
    wire_writer_init(&hw, hbuf, sizeof(hbuf));
    put_routing_headers(&hw, no_bcc);
    struct wire_basic_props p = {.flags = WIRE_BASIC_HEADERS_FLAG,
                                 .headers = {hbuf, (uint32_t)wire_writer_len(&hw)}};
    wire_writer_init(&pw, pbuf, sizeof(pbuf));
    ck_assert_int_eq(wire_basic_props_encode(&p, &pw), 0);
    ck_assert(!hw.overflow && !pw.overflow);
    struct msg *m =
        msg_new(pbuf, (uint32_t)wire_writer_len(&pw), 1, 0,
                (struct wire_str){(const uint8_t *)exchange, (uint32_t)strlen(exchange)},
                (struct wire_str){(const uint8_t *)rk, (uint32_t)strlen(rk)}, 3);
    ck_assert_ptr_nonnull(m);
    memcpy(m->body, "abc", 3);
    msg_body_filled(m, 3);
    msg_set_headers(m, pbuf,
                    (struct wire_table){pbuf + msg_props_headers_offset(&p), p.headers.len});
    return m;
}

/* The keys of t's entries, in order, joined with commas. */
static void
header_keys(struct wire_table t, char *out, size_t cap)
{
    struct wire_table_iter it;
    struct wire_str k;
    struct wire_value v;
    size_t n = 0;
    out[0] = '\0';
    wire_table_iter_init(&it, t);
    while (wire_table_next(&it, &k, &v))
        n += (size_t)snprintf(out + n, cap - n, "%s%.*s", n > 0 ? "," : "", WIRE_STR_ARG(k));
}

START_TEST(test_cc_bcc)
{
    struct vhost_registry reg;
    vhost_registry_init(&reg);
    struct vhost *vh = vhost_add(&reg, "/");
    ck_assert_ptr_nonnull(vh);
    struct queue *q[3] = {add_queue(vh, "a"), add_queue(vh, "b"), add_queue(vh, "c")};
    struct exch *direct = vhost_exch_find(vh, WIRE_STR_LIT("amq.direct"));
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(exch_bind(direct, bind_dest_queue(q[i]),
                                   (struct wire_str){(const uint8_t *)q[i]->name, q[i]->name_len},
                                   (struct wire_table){NULL, 0}),
                         0);
    struct route_result scratch = {0};
    struct publish_outcome out;
    char keys[64];

    /* Its routing key, then CC's longstr members, then BCC's. */
    struct msg *m = new_msg_with_headers("amq.direct", "a", false);
    struct publish_keys k;
    ck_assert_int_eq(publish_keys_init(&k, m), 0);
    ck_assert_uint_eq(k.n, 3);
    ck_assert(k.bcc);
    ck_assert(wire_str_eq(k.v[0], "a") && wire_str_eq(k.v[1], "b") && wire_str_eq(k.v[2], "c"));
    publish_keys_free(&k);

    /* Every key routes; the queues get a copy without BCC, sharing the body, which replaces
     * the caller's message. */
    struct msg *orig = m;
    const uint8_t *body = m->body;
    ck_assert_int_eq(publish_message(vh, &m, &scratch, &out), PUBLISH_OK);
    ck_assert_uint_eq(out.n_queues, 3);
    ck_assert_ptr_ne(m, orig);
    ck_assert_ptr_eq(m->body, body);
    ck_assert_ptr_eq(m->body_owner, orig);
    ck_assert_uint_eq(m->refs, 1 + 3);
    header_keys(msg_headers(m), keys, sizeof(keys));
    ck_assert_str_eq(keys, "z,CC");
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(q[i]->n_ready, 1);
    msg_unref(&m);

    /* The default exchange takes each key as a queue name; no BCC: the message itself. */
    m = orig = new_msg_with_headers("", "a", true);
    ck_assert_int_eq(publish_message(vh, &m, &scratch, &out), PUBLISH_OK);
    ck_assert_uint_eq(out.n_queues, 2);
    ck_assert_ptr_eq(m, orig);
    ck_assert_uint_eq(q[0]->n_ready, 2);
    ck_assert_uint_eq(q[1]->n_ready, 2);
    ck_assert_uint_eq(q[2]->n_ready, 1);
    msg_unref(&m);

    route_result_free(&scratch);
    vhost_registry_clear(&reg);
}
END_TEST

/* Headers a publish may not carry, and RabbitMQ's text for each; then ones it may. */
START_TEST(test_header_routes_check)
{
    uint8_t buf[128];
    char why[128];
    struct wire_writer w;
    wire_writer_init(&w, buf, sizeof(buf));
    wire_table_put_longstr(&w, "CC", WIRE_STR_LIT("b"));
    struct wire_table t = {buf, (uint32_t)wire_writer_len(&w)};
    ck_assert_int_eq(publish_check_header_routes(t, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "invalid message: {unacceptable_type_in_header,\"CC\",longstr}");

    wire_writer_init(&w, buf, sizeof(buf));
    size_t cc = wire_table_put_array_begin(&w, "CC");
    wire_table_put_table_end(&w, cc);
    wire_table_put_bool(&w, "BCC", true);
    t = (struct wire_table){buf, (uint32_t)wire_writer_len(&w)};
    ck_assert_int_eq(publish_check_header_routes(t, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "invalid message: {unacceptable_type_in_header,\"BCC\",bool}");

    wire_writer_init(&w, buf, sizeof(buf));
    put_routing_headers(&w, false);
    t = (struct wire_table){buf, (uint32_t)wire_writer_len(&w)};
    ck_assert_int_eq(publish_check_header_routes(t, why, sizeof(why)), 0);
    ck_assert_int_eq(publish_check_header_routes((struct wire_table){NULL, 0}, why, sizeof(why)),
                     0);
}
END_TEST

static Suite *
publish_suite(void)
{
    Suite *s = suite_create("publish");
    TCase *tc = tcase_create("pipeline");
    tcase_add_test(tc, test_pipeline);
    tcase_add_test(tc, test_cc_bcc);
    tcase_add_test(tc, test_header_routes_check);
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
