/* Unit tests for dead-lettering (src/broker/deadletter*.c). The dead-lettered copy's
 * properties, byte for byte, against what RabbitMQ 3.10.8 sends: each case's input is what a
 * client published (or a previous case's output) and its expected bytes were captured from
 * RabbitMQ delivering the dead-lettered message, with x-death's time values set to NOW. Then
 * the routing on a vhost without a store: a copy sharing its original's body, automatic cycles
 * dropped while rejections go round, a missing dead-letter exchange, no dead-letter exchange,
 * every message freed. And the x-delivery-count header a redelivery adds (msg_props.h), and
 * dead-letter-strategy at-least-once (queue_dlx.c) from the queue's timer on an event base. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/event.h>

#include "unhex.h"
#include "warren/deadletter.h"
#include "warren/exchange.h"
#include "warren/msg.h"
#include "warren/msg_props.h"
#include "warren/queue.h"
#include "warren/vhost.h"
#include "warren/wire_gen.h"

#define NOW 0x65000000u

#define S(s) ((struct wire_str){(const uint8_t *)(s), (uint32_t)strlen(s)})

/* A copy made by deadletter_msg_new for reason rejected, from a message published to the
 * default exchange with routing key rk, dying in queue, to the default exchange with the
 * dead-letter routing key dlrk. in and out: properties in test_unhex's notation. */
static const struct {
    const char *what, *queue, *rk, *dlrk, *in, *out;
} copies[] = {
    {"first death: x-first-death-*, insertion order, sorted headers, expiration", "dl-src",
     "dl-src", "dl-dead",
     "a9 80 0a 'text/plain' 00 00 00 1d 02 'zzS' 00 00 00 04 'last' 01 68 49 00 00 00 "
     "01 07 'a-firstt' 01 03 05 '60000' 04 'id-1' ",
     "a8 80 0a 'text/plain' 00 00 01 17 07 'a-firstt' 01 01 68 49 00 00 00 01 07 "
     "'x-deathA' 00 00 00 90 46 00 00 00 8b 05 'countl' 00 00 00 00 00 00 00 01 06 "
     "'reasonS' 00 00 00 08 'rejected' 05 'queueS' 00 00 00 06 'dl-src' 04 'timeT' 00 "
     "00 00 00 65 00 00 00 08 'exchangeS' 00 00 00 00 0c 'routing-keysA' 00 00 00 0b "
     "53 00 00 00 06 'dl-src' 13 'original-expirationS' 00 00 00 05 '60000' 16 "
     "'x-first-death-exchangeS' 00 00 00 00 13 'x-first-death-queueS' 00 00 00 06 "
     "'dl-src' 14 'x-first-death-reasonS' 00 00 00 08 'rejected' 02 'zzS' 00 00 00 04 "
     "'last' 03 04 'id-1' "},
    {"dead-letter routing key: CC dropped, BCC never kept", "dl-src", "dl-src", "dl-dead",
     "20 00 00 00 00 26 02 'CCA' 00 00 00 0e 53 00 00 00 02 'c1S' 00 00 00 02 63 32 03 "
     "'BCCA' 00 00 00 07 53 00 00 00 02 62 31 ",
     "20 00 00 00 00 ea 07 'x-deathA' 00 00 00 80 46 00 00 00 7b 05 'countl' 00 00 00 "
     "00 00 00 00 01 06 'reasonS' 00 00 00 08 'rejected' 05 'queueS' 00 00 00 06 "
     "'dl-src' 04 'timeT' 00 00 00 00 65 00 00 00 08 'exchangeS' 00 00 00 00 0c "
     "'routing-keysA' 00 00 00 19 53 00 00 00 06 'dl-srcS' 00 00 00 02 'c1S' 00 00 00 "
     "02 63 32 16 'x-first-death-exchangeS' 00 00 00 00 13 'x-first-death-queueS' 00 "
     "00 00 06 'dl-src' 14 'x-first-death-reasonS' 00 00 00 08 'rejected' "},
    {"no properties at all", "dl-src", "dl-src", "dl-dead", "00 00 ",
     "20 00 00 00 00 dc 07 'x-deathA' 00 00 00 72 46 00 00 00 6d 05 'countl' 00 00 00 "
     "00 00 00 00 01 06 'reasonS' 00 00 00 08 'rejected' 05 'queueS' 00 00 00 06 "
     "'dl-src' 04 'timeT' 00 00 00 00 65 00 00 00 08 'exchangeS' 00 00 00 00 0c "
     "'routing-keysA' 00 00 00 0b 53 00 00 00 06 'dl-src' 16 'x-first-death-exchangeS' "
     "00 00 00 00 13 'x-first-death-queueS' 00 00 00 06 'dl-src' 14 "
     "'x-first-death-reasonS' 00 00 00 08 'rejected' "},
    {"queue a, first death, original-expiration", "dl-a", "dl-a", "dl-b", "01 00 04 '5000' ",
     "20 00 00 00 00 f3 07 'x-deathA' 00 00 00 8b 46 00 00 00 86 05 'countl' 00 00 00 "
     "00 00 00 00 01 06 'reasonS' 00 00 00 08 'rejected' 05 'queueS' 00 00 00 04 "
     "'dl-a' 04 'timeT' 00 00 00 00 65 00 00 00 08 'exchangeS' 00 00 00 00 0c "
     "'routing-keysA' 00 00 00 09 53 00 00 00 04 'dl-a' 13 'original-expirationS' 00 "
     "00 00 04 '5000' 16 'x-first-death-exchangeS' 00 00 00 00 13 "
     "'x-first-death-queueS' 00 00 00 04 'dl-a' 14 'x-first-death-reasonS' 00 00 00 08 "
     "'rejected' "},
    {"queue b after a: a second entry", "dl-b", "dl-b", "dl-a",
     "20 00 00 00 00 f3 07 'x-deathA' 00 00 00 8b 46 00 00 00 86 05 'countl' 00 00 00 "
     "00 00 00 00 01 06 'reasonS' 00 00 00 08 'rejected' 05 'queueS' 00 00 00 04 "
     "'dl-a' 04 'timeT' 00 00 00 00 65 00 00 00 08 'exchangeS' 00 00 00 00 0c "
     "'routing-keysA' 00 00 00 09 53 00 00 00 04 'dl-a' 13 'original-expirationS' 00 "
     "00 00 04 '5000' 16 'x-first-death-exchangeS' 00 00 00 00 13 "
     "'x-first-death-queueS' 00 00 00 04 'dl-a' 14 'x-first-death-reasonS' 00 00 00 08 "
     "'rejected' ",
     "20 00 00 00 01 61 07 'x-deathA' 00 00 00 f9 46 00 00 00 69 05 'countl' 00 00 00 "
     "00 00 00 00 01 08 'exchangeS' 00 00 00 00 05 'queueS' 00 00 00 04 'dl-b' 06 "
     "'reasonS' 00 00 00 08 'rejected' 0c 'routing-keysA' 00 00 00 09 53 00 00 00 04 "
     "'dl-b' 04 'timeT' 00 00 00 00 65 00 00 00 46 00 00 00 86 05 'countl' 00 00 00 00 "
     "00 00 00 01 06 'reasonS' 00 00 00 08 'rejected' 05 'queueS' 00 00 00 04 'dl-a' "
     "04 'timeT' 00 00 00 00 65 00 00 00 08 'exchangeS' 00 00 00 00 0c 'routing-keysA' "
     "00 00 00 09 53 00 00 00 04 'dl-a' 13 'original-expirationS' 00 00 00 04 '5000' "
     "16 'x-first-death-exchangeS' 00 00 00 00 13 'x-first-death-queueS' 00 00 00 04 "
     "'dl-a' 14 'x-first-death-reasonS' 00 00 00 08 'rejected' "},
    {"queue a again: its count 2, sorted, first", "dl-a", "dl-a", "dl-b",
     "20 00 00 00 01 61 07 'x-deathA' 00 00 00 f9 46 00 00 00 69 05 'countl' 00 00 00 "
     "00 00 00 00 01 08 'exchangeS' 00 00 00 00 05 'queueS' 00 00 00 04 'dl-b' 06 "
     "'reasonS' 00 00 00 08 'rejected' 0c 'routing-keysA' 00 00 00 09 53 00 00 00 04 "
     "'dl-b' 04 'timeT' 00 00 00 00 65 00 00 00 46 00 00 00 86 05 'countl' 00 00 00 00 "
     "00 00 00 01 06 'reasonS' 00 00 00 08 'rejected' 05 'queueS' 00 00 00 04 'dl-a' "
     "04 'timeT' 00 00 00 00 65 00 00 00 08 'exchangeS' 00 00 00 00 0c 'routing-keysA' "
     "00 00 00 09 53 00 00 00 04 'dl-a' 13 'original-expirationS' 00 00 00 04 '5000' "
     "16 'x-first-death-exchangeS' 00 00 00 00 13 'x-first-death-queueS' 00 00 00 04 "
     "'dl-a' 14 'x-first-death-reasonS' 00 00 00 08 'rejected' ",
     "20 00 00 00 01 61 07 'x-deathA' 00 00 00 f9 46 00 00 00 86 05 'countl' 00 00 00 "
     "00 00 00 00 02 08 'exchangeS' 00 00 00 00 13 'original-expirationS' 00 00 00 04 "
     "'5000' 05 'queueS' 00 00 00 04 'dl-a' 06 'reasonS' 00 00 00 08 'rejected' 0c "
     "'routing-keysA' 00 00 00 09 53 00 00 00 04 'dl-a' 04 'timeT' 00 00 00 00 65 00 "
     "00 00 46 00 00 00 69 05 'countl' 00 00 00 00 00 00 00 01 08 'exchangeS' 00 00 00 "
     "00 05 'queueS' 00 00 00 04 'dl-b' 06 'reasonS' 00 00 00 08 'rejected' 0c "
     "'routing-keysA' 00 00 00 09 53 00 00 00 04 'dl-b' 04 'timeT' 00 00 00 00 65 00 "
     "00 00 16 'x-first-death-exchangeS' 00 00 00 00 13 'x-first-death-queueS' 00 00 "
     "00 04 'dl-a' 14 'x-first-death-reasonS' 00 00 00 08 'rejected' "},
    {"three queues: regrouping reverses the others", "dl-q3", "dl-q3", "dl-q4",
     "20 00 00 00 01 49 07 'x-deathA' 00 00 00 e0 46 00 00 00 6b 05 'countl' 00 00 00 "
     "00 00 00 00 01 08 'exchangeS' 00 00 00 00 05 'queueS' 00 00 00 05 'dl-q2' 06 "
     "'reasonS' 00 00 00 08 'rejected' 0c 'routing-keysA' 00 00 00 0a 53 00 00 00 05 "
     "'dl-q2' 04 'timeT' 00 00 00 00 65 00 00 00 46 00 00 00 6b 05 'countl' 00 00 00 "
     "00 00 00 00 01 06 'reasonS' 00 00 00 08 'rejected' 05 'queueS' 00 00 00 05 "
     "'dl-q1' 04 'timeT' 00 00 00 00 65 00 00 00 08 'exchangeS' 00 00 00 00 0c "
     "'routing-keysA' 00 00 00 0a 53 00 00 00 05 'dl-q1' 16 'x-first-death-exchangeS' "
     "00 00 00 00 13 'x-first-death-queueS' 00 00 00 05 'dl-q1' 14 "
     "'x-first-death-reasonS' 00 00 00 08 'rejected' ",
     "20 00 00 00 01 b9 07 'x-deathA' 00 00 01 50 46 00 00 00 6b 05 'countl' 00 00 00 "
     "00 00 00 00 01 08 'exchangeS' 00 00 00 00 05 'queueS' 00 00 00 05 'dl-q3' 06 "
     "'reasonS' 00 00 00 08 'rejected' 0c 'routing-keysA' 00 00 00 0a 53 00 00 00 05 "
     "'dl-q3' 04 'timeT' 00 00 00 00 65 00 00 00 46 00 00 00 6b 05 'countl' 00 00 00 "
     "00 00 00 00 01 06 'reasonS' 00 00 00 08 'rejected' 05 'queueS' 00 00 00 05 "
     "'dl-q1' 04 'timeT' 00 00 00 00 65 00 00 00 08 'exchangeS' 00 00 00 00 0c "
     "'routing-keysA' 00 00 00 0a 53 00 00 00 05 'dl-q1F' 00 00 00 6b 05 'countl' 00 "
     "00 00 00 00 00 00 01 08 'exchangeS' 00 00 00 00 05 'queueS' 00 00 00 05 'dl-q2' "
     "06 'reasonS' 00 00 00 08 'rejected' 0c 'routing-keysA' 00 00 00 0a 53 00 00 00 "
     "05 'dl-q2' 04 'timeT' 00 00 00 00 65 00 00 00 16 'x-first-death-exchangeS' 00 00 "
     "00 00 13 'x-first-death-queueS' 00 00 00 05 'dl-q1' 14 'x-first-death-reasonS' "
     "00 00 00 08 'rejected' "},
    {"x-death not an array: reset, x-first-death-* kept", "dl-src", "dl-src", "dl-dead",
     "20 00 00 00 00 30 07 'x-deathS' 00 00 00 07 'garbage' 13 'x-first-death-queueS' "
     "00 00 00 03 'old' ",
     "20 00 00 00 00 9b 07 'x-deathA' 00 00 00 72 46 00 00 00 6d 05 'countl' 00 00 00 "
     "00 00 00 00 01 06 'reasonS' 00 00 00 08 'rejected' 05 'queueS' 00 00 00 06 "
     "'dl-src' 04 'timeT' 00 00 00 00 65 00 00 00 08 'exchangeS' 00 00 00 00 0c "
     "'routing-keysA' 00 00 00 0b 53 00 00 00 06 'dl-src' 13 'x-first-death-queueS' 00 "
     "00 00 03 'old' "},
    {"legacy duplicates regrouped, counted", "dl-src", "dl-src", "dl-dead",
     "20 00 00 00 00 c2 07 'x-deathA' 00 00 00 b5 46 00 00 00 25 05 'queueS' 00 00 00 "
     "06 'dl-src' 06 'reasonS' 00 00 00 08 'rejectedF' 00 00 00 2e 05 'queueS' 00 00 "
     "00 05 'other' 06 'reasonS' 00 00 00 07 'expired' 05 'countI' 00 00 00 02 46 00 "
     "00 00 2c 05 'queueS' 00 00 00 06 'dl-src' 06 'reasonS' 00 00 00 08 'rejected' 01 "
     "78 49 00 00 00 01 46 00 00 00 22 05 'queueS' 00 00 00 05 'third' 06 'reasonS' 00 "
     "00 00 06 'maxlen' ",
     "20 00 00 00 00 af 07 'x-deathA' 00 00 00 a2 46 00 00 00 34 05 'countl' 00 00 00 "
     "00 00 00 00 03 05 'queueS' 00 00 00 06 'dl-src' 06 'reasonS' 00 00 00 08 "
     "'rejectedF' 00 00 00 31 05 'countl' 00 00 00 00 00 00 00 01 05 'queueS' 00 00 00 "
     "05 'third' 06 'reasonS' 00 00 00 06 'maxlenF' 00 00 00 2e 05 'queueS' 00 00 00 "
     "05 'other' 06 'reasonS' 00 00 00 07 'expired' 05 'countI' 00 00 00 02 "},
};

/* A message with these properties (decoded here, as the channel does), no body. */
static struct msg *
msg_with_props(const uint8_t *props, size_t len, struct wire_str exchange, struct wire_str rk)
{
    struct wire_basic_props p;
    struct wire_error err;
    ck_assert_int_eq(wire_basic_props_decode(props, len, &p, &err), 0);
    uint8_t mode = (p.flags & WIRE_BASIC_DELIVERY_MODE_FLAG) ? p.delivery_mode : 1;
    struct msg *m = msg_new(props, (uint32_t)len, mode, p.priority, exchange, rk, 0);
    ck_assert_ptr_nonnull(m);
    msg_set_headers(m, props, p.headers);
    return m;
}

START_TEST(test_copy)
{
    static uint8_t in[4096], out[4096];
    size_t in_len = test_unhex(copies[_i].in, in, sizeof(in));
    size_t out_len = test_unhex(copies[_i].out, out, sizeof(out));
    struct msg *m = msg_with_props(in, in_len, S(""), S(copies[_i].rk));
    struct wire_str dlrk = S(copies[_i].dlrk);
    struct msg *d =
        deadletter_msg_new(m, S(copies[_i].queue), DEADLETTER_REJECTED, S(""), &dlrk, NOW);
    ck_assert_ptr_nonnull(d);
    if (d->props_len != out_len || memcmp(d->props, out, out_len) != 0) {
        for (uint32_t i = 0; i < d->props_len; i++)
            fprintf(stderr, "%02x", d->props[i]);
        fprintf(stderr, "\n");
        ck_abort_msg("%s: the copy's properties differ from RabbitMQ's", copies[_i].what);
    }
    ck_assert_uint_eq(d->exchange_len, 0);
    ck_assert_mem_eq(d->routing_key, dlrk.ptr, dlrk.len);
    /* Where the headers are, for routing: msg_headers finds x-death there. */
    struct wire_value v;
    ck_assert(wire_table_get(msg_headers(d), "x-death", &v));
    ck_assert_ptr_eq(d->body_owner, m);
    msg_unref(&d);
    msg_unref(&m);
}
END_TEST

/* x-delivery-count as a quorum queue's redelivery adds it: set as a long, the table sorted
 * by key (rabbit_basic:add_header); a publisher's own value is replaced; the other properties
 * and the body stay. */
START_TEST(test_delivery_count_header)
{
    static const char in_hex[] = "a0 00 01 't' 00 00 00 0f 01 'zS' 00 00 00 01 '1' 01 'aI' 00 00 "
                                 "00 01";
    static const char out_hex[] = "a0 00 01 't' 00 00 00 29 01 'aI' 00 00 00 01 10 "
                                  "'x-delivery-countl' 00 00 00 00 00 00 00 03 01 'zS' 00 00 00 "
                                  "01 '1'";
    uint8_t in[128], out[128];
    size_t in_len = test_unhex(in_hex, in, sizeof(in));
    size_t out_len = test_unhex(out_hex, out, sizeof(out));
    struct msg *m = msg_with_props(in, in_len, S("x"), S("rk"));
    struct msg *c = msg_with_long_header(m, "x-delivery-count", 3);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->props_len, out_len);
    ck_assert_mem_eq(c->props, out, out_len);
    ck_assert_ptr_eq(c->body_owner, m);
    struct wire_value v;
    ck_assert(wire_table_get(msg_headers(c), "x-delivery-count", &v) && v.v.i == 3);
    struct msg *again = msg_with_long_header(c, "x-delivery-count", 4);
    ck_assert_ptr_nonnull(again);
    ck_assert_uint_eq(again->props_len, out_len); /* replaced, not added */
    ck_assert(wire_table_get(msg_headers(again), "x-delivery-count", &v) && v.v.i == 4);
    msg_unref(&again);
    msg_unref(&c);
    msg_unref(&m);
}
END_TEST

/* A queue dead-lettering to dlx (NULL: none) with routing key dlrk (NULL: none). */
static struct queue *
add_queue(struct vhost *vh, const char *name, const char *dlx, const char *dlrk)
{
    uint8_t args[256];
    struct wire_writer w;
    wire_writer_init(&w, args, sizeof(args));
    if (dlx != NULL)
        wire_table_put_longstr(&w, "x-dead-letter-exchange", S(dlx));
    if (dlrk != NULL)
        wire_table_put_longstr(&w, "x-dead-letter-routing-key", S(dlrk));
    struct queue *q = queue_new(vh, S(name), false, false, NULL,
                                (struct wire_table){args, (uint32_t)wire_writer_len(&w)});
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(vhost_queue_add(vh, q), 0);
    return q;
}

/* Dead-letters m from q for reason: DEADLETTER_OK, reaching n queues. */
static void
expect_routed(struct queue *q, struct msg *m, enum deadletter_reason reason, uint32_t n)
{
    struct publish_outcome out;
    ck_assert_int_eq(deadletter_message(q, m, reason, true, &out), DEADLETTER_OK);
    ck_assert_uint_eq(out.n_queues, n);
    ck_assert(!out.stored);
}

START_TEST(test_routing)
{
    uint64_t live = msg_bytes_live;
    struct vhost_registry reg;
    vhost_registry_init(&reg);
    struct vhost *vh = vhost_add(&reg, "/");
    ck_assert_ptr_nonnull(vh);
    struct queue *a = add_queue(vh, "a", "", "b"), *b = add_queue(vh, "b", "", "a");
    struct queue *lost = add_queue(vh, "lost", "no-such-exchange", NULL);
    struct queue *none = add_queue(vh, "none", NULL, NULL);
    struct queue *f = add_queue(vh, "f", "fan", NULL);
    uint8_t props[] = {0, 0};
    struct msg *m = msg_with_props(props, sizeof(props), S(""), S("a"));
    struct msg *body = msg_new(props, sizeof(props), 1, 0, S(""), S("a"), 5);
    ck_assert_ptr_nonnull(body);
    memcpy(body->body, "hello", 5);
    msg_body_filled(body, 5);
    msg_unref(&m);
    m = body;

    /* a expires it to b: a copy sharing the body. */
    expect_routed(a, m, DEADLETTER_EXPIRED, 1);
    ck_assert_uint_eq(b->n_ready, 1);
    struct qentry *e = queue_cmd_deliver(b);
    ck_assert_ptr_eq(e->msg->body, m->body);
    ck_assert_ptr_eq(e->msg->body_owner, m);
    /* b expires it back to a: a cycle without a rejection, dropped. */
    ck_assert(deadletter_is_cycle(e->msg, S("b")) == false);
    ck_assert_int_eq(deadletter_message(b, e->msg, DEADLETTER_EXPIRED, true, NULL),
                     DEADLETTER_CYCLE);
    ck_assert_int_eq(deadletter_message(b, e->msg, DEADLETTER_MAXLEN, true, NULL),
                     DEADLETTER_CYCLE);
    ck_assert_int_eq(deadletter_message(b, e->msg, DEADLETTER_DELIVERY_LIMIT, true, NULL),
                     DEADLETTER_CYCLE);
    ck_assert_uint_eq(a->n_ready, 0);
    /* A rejection is never a cycle. */
    expect_routed(b, e->msg, DEADLETTER_REJECTED, 1);
    ck_assert_uint_eq(a->n_ready, 1);
    queue_cmd_settle(e);
    e = queue_cmd_deliver(a);
    /* A copy of a copy shares the first body too. */
    ck_assert_ptr_eq(e->msg->body_owner, m);
    /* Now b's death was a rejection: a expiring it to b is no cycle. */
    expect_routed(a, e->msg, DEADLETTER_EXPIRED, 1);
    queue_cmd_settle(e);
    ck_assert_uint_eq(b->n_ready, 1);

    /* No dead-letter exchange; one that does not exist; a fanout one. */
    struct publish_outcome out;
    ck_assert_int_eq(deadletter_message(none, m, DEADLETTER_REJECTED, true, &out),
                     DEADLETTER_NO_DLX);
    ck_assert_int_eq(deadletter_message(lost, m, DEADLETTER_REJECTED, true, NULL),
                     DEADLETTER_NO_EXCHANGE);
    struct exch *fan =
        exch_new(vh, S("fan"), EXCH_FANOUT, false, false, false, (struct wire_table){NULL, 0});
    ck_assert_ptr_nonnull(fan);
    ck_assert_int_eq(vhost_exch_add(vh, fan), 0);
    ck_assert_int_eq(exch_bind(fan, bind_dest_queue(a), S(""), (struct wire_table){NULL, 0}), 0);
    ck_assert_int_eq(exch_bind(fan, bind_dest_queue(none), S(""), (struct wire_table){NULL, 0}), 0);
    expect_routed(f, m, DEADLETTER_MAXLEN, 2);
    ck_assert_uint_eq(a->n_ready, 1);
    ck_assert_uint_eq(none->n_ready, 1);
    ck_assert_str_eq(deadletter_reason_name(DEADLETTER_DELIVERY_LIMIT), "delivery_limit");

    msg_unref(&m);
    vhost_registry_clear(&reg);
    ck_assert_uint_eq(msg_bytes_live, live); /* copies and the shared body freed */
}
END_TEST

/* A quorum queue dead-lettering at least once to exchange "dlx" with routing key dlrk. */
static struct queue *
add_alo_queue(struct vhost *vh, const char *name, const char *dlrk)
{
    uint8_t args[256];
    struct wire_writer w;
    wire_writer_init(&w, args, sizeof(args));
    wire_table_put_longstr(&w, "x-queue-type", S("quorum"));
    wire_table_put_longstr(&w, "x-dead-letter-exchange", S("dlx"));
    wire_table_put_longstr(&w, "x-dead-letter-routing-key", S(dlrk));
    wire_table_put_longstr(&w, "x-dead-letter-strategy", S("at-least-once"));
    wire_table_put_longstr(&w, "x-overflow", S("reject-publish"));
    struct queue *q = queue_new(vh, S(name), false, false, NULL,
                                (struct wire_table){args, (uint32_t)wire_writer_len(&w)});
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(vhost_queue_add(vh, q), 0);
    return q;
}

/* Enqueues m on q, delivers it and rejects it. */
static void
reject_one(struct queue *q, struct msg *m)
{
    ck_assert_int_eq(queue_cmd_enqueue(q, m), 0);
    struct qentry *e = queue_cmd_deliver(q);
    ck_assert_ptr_nonnull(e);
    queue_cmd_reject(e);
}

/* Takes q's head entry (delivered, then settled), checking its x-first-death-reason. */
static void
expect_head_reason(struct queue *q, const char *reason)
{
    struct qentry *e = queue_cmd_deliver(q);
    ck_assert_ptr_nonnull(e);
    struct wire_value v;
    ck_assert(wire_table_get(msg_headers(e->msg), "x-first-death-reason", &v));
    ck_assert(wire_str_eq(v.v.str, reason));
    queue_cmd_settle(e);
}

/* Dead-letter-strategy at-least-once: a copy that reaches no queue keeps the original in
 * dlx_waiting (rejected, or past its delivery limit), neither ready nor unacked but counted
 * against the length limit; the queue's timer tries them again, in order, until a queue takes
 * them; a purge leaves them; a switch to at-most-once sends them once more. */
START_TEST(test_at_least_once)
{
    uint64_t live = msg_bytes_live;
    struct event_base *base = event_base_new();
    ck_assert_ptr_nonnull(base);
    queue_set_event_base(base);
    queue_set_dlx_retry_interval(1);
    struct vhost_registry reg;
    vhost_registry_init(&reg);
    struct vhost *vh = vhost_add(&reg, "/");
    ck_assert_ptr_nonnull(vh);
    struct exch *dlx =
        exch_new(vh, S("dlx"), EXCH_DIRECT, false, false, false, (struct wire_table){NULL, 0});
    ck_assert_ptr_nonnull(dlx);
    ck_assert_int_eq(vhost_exch_add(vh, dlx), 0);
    struct queue *src = add_alo_queue(vh, "src", "k"), *dead = add_queue(vh, "dead", NULL, NULL);
    struct msg *m = msg_new((const uint8_t *)"\0\0", 2, 1, 0, S(""), S("src"), 5);
    ck_assert_ptr_nonnull(m);
    memcpy(m->body, "hello", 5);
    msg_body_filled(m, 5);

    /* Nothing bound to dlx: kept, rejected then past the delivery limit. */
    reject_one(src, m);
    src->settings.delivery_limit = 0;
    ck_assert_int_eq(queue_cmd_enqueue(src, m), 0);
    queue_cmd_requeue(queue_cmd_deliver(src));
    ck_assert_uint_eq(src->n_dlx, 2);
    ck_assert_uint_eq(src->dlx_bytes, 10);
    ck_assert_uint_eq(src->n_ready + src->n_unacked, 0);
    ck_assert_ptr_null(queue_cmd_deliver(src));
    src->settings.max_length = 2;
    ck_assert(queue_refuses(src, m)); /* the kept ones count */
    src->settings.max_length = QUEUE_SETTING_NONE;

    /* Bound now: the timer sends them, in the order they died. */
    ck_assert_int_eq(exch_bind(dlx, bind_dest_queue(dead), S("k"), (struct wire_table){NULL, 0}),
                     0);
    for (int i = 0; i < 1000 && src->n_dlx > 0; i++)
        event_base_loop(base, EVLOOP_ONCE);
    ck_assert_uint_eq(src->n_dlx, 0);
    ck_assert_uint_eq(src->dlx_bytes, 0);
    ck_assert_uint_eq(dead->n_ready, 2);
    expect_head_reason(dead, "rejected");
    expect_head_reason(dead, "delivery_limit");

    /* A purge leaves the kept ones, as RabbitMQ 3.10. */
    struct queue *lost = add_alo_queue(vh, "lost", "nowhere");
    reject_one(lost, m);
    ck_assert_int_eq(queue_cmd_enqueue(lost, m), 0);
    ck_assert_uint_eq(queue_cmd_purge(lost), 1);
    ck_assert_uint_eq(lost->n_dlx, 1);

    /* At most once from now on: sent once more (here to dead), then gone. */
    struct queue_settings s;
    queue_settings_init(&s);
    s.dlx = strdup("dlx");
    s.dlx_routing_key = strdup("k");
    ck_assert(s.dlx != NULL && s.dlx_routing_key != NULL);
    queue_settings_set(lost, &s);
    ck_assert_uint_eq(lost->n_dlx, 0);
    ck_assert_uint_eq(dead->n_ready, 1);

    /* A queue deleted with kept messages frees them. */
    reject_one(add_alo_queue(vh, "gone", "nowhere"), m);
    msg_unref(&m);
    vhost_registry_clear(&reg);
    queue_set_event_base(NULL);
    event_base_free(base);
    ck_assert_uint_eq(msg_bytes_live, live);
}
END_TEST

static Suite *
deadletter_suite(void)
{
    Suite *s = suite_create("deadletter");
    TCase *tc = tcase_create("copy");
    tcase_add_loop_test(tc, test_copy, 0, sizeof(copies) / sizeof(copies[0]));
    tcase_add_test(tc, test_delivery_count_header);
    suite_add_tcase(s, tc);
    tc = tcase_create("routing");
    tcase_add_test(tc, test_routing);
    tcase_add_test(tc, test_at_least_once);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(deadletter_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
