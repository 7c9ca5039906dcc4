/* The basic class on a channel: publishing (assembly, routing, mandatory returns), publisher
 * confirms, transactions, consumers and push delivery bounded by basic.qos, basic.get, and
 * settling deliveries (ack, nack, reject, recover). The broker's queues do the queueing; this
 * file turns their deliveries into frames and the client's acks into queue commands.
 *
 * Delivery tags are per channel and increase by one per delivery; unacked deliveries are kept
 * in tag order, so "multiple" acks and requeues on close walk the list from the front. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/rand.h>

#include "forward.h"
#include "net_int.h"
#include "quorum.h"
#include "relay.h"
#include "warren/assert.h"
#include "warren/auth.h"
#include "warren/msg.h"
#include "warren/msg_props.h"
#include "warren/pool.h"
#include "warren/publish.h"
#include "warren/queue_args.h"
#include "warren/vhost.h"

/* Every unacked delivery of the process comes from this pool; its channel owns each one.
 * Loop thread only. */
static struct pool chan_delivery_pool = POOL_INITIALIZER(sizeof(struct delivery), 8);

/* At exit, after main has freed every connection, so that no cached slab outlives the process
 * for valgrind to report. */
static void chan_delivery_pool_free(void) __attribute__((destructor));
static void
chan_delivery_pool_free(void)
{
    pool_clear(&chan_delivery_pool);
}

/* Bodies up to this size are copied into the output; larger ones are referenced, sparing the
 * copy (small references cost more than they save: one evbuffer chain each). */
#define CHAN_BODY_COPY_MAX 16384

/* ---- writing content ---- */

static void
chan_body_ref_done(const void *data, size_t len, void *arg)
{
    struct msg *m = arg;
    msg_unref(&m);
}

/* Appends a message's content header and body frames to the connection's output. The body is
 * referenced, not copied, when large: each body frame's payload is a reference holding the
 * message. 0, or -1 on ENOMEM (the stream is then unusable: the caller drops the connection). */
static int
chan_write_content(struct chan *ch, struct msg *m)
{
    struct conn *c = ch->conn;
    struct evbuffer *out = c->out;
    if (frame_write_content_header(out, ch->id, WIRE_CLASS_BASIC, m->body_len, m->props,
                                   m->props_len) < 0)
        return -1;
    if (m->body_len <= CHAN_BODY_COPY_MAX)
        return frame_write_body(out, ch->id, m->body, m->body_len, c->frame_max);
    uint64_t chunk = c->frame_max != 0 ? c->frame_max - FRAME_OVERHEAD : UINT32_MAX;
    for (uint64_t off = 0; off < m->body_len; off += chunk) {
        uint64_t n = m->body_len - off < chunk ? m->body_len - off : chunk;
        uint8_t hdr[FRAME_HEADER_SIZE] = {
            WIRE_FRAME_BODY,    (uint8_t)(ch->id >> 8), (uint8_t)ch->id, (uint8_t)(n >> 24),
            (uint8_t)(n >> 16), (uint8_t)(n >> 8),      (uint8_t)n};
        static const uint8_t end = WIRE_FRAME_END;
        if (evbuffer_add(out, hdr, sizeof(hdr)) < 0)
            return -1;
        struct msg *held = msg_ref(m);
        if (evbuffer_add_reference(out, m->body + off, n, chan_body_ref_done, held) < 0) {
            msg_unref(&held); /* libevent skips the cleanup when adding fails */
            return -1;
        }
        if (evbuffer_add(out, &end, 1) < 0)
            return -1;
    }
    return 0;
}

/* ---- consumers and deliveries ---- */

static bool
chan_output_full(struct conn *c)
{
    if (!c->output_full && conn_output_len(c) >= CONN_OUTPUT_HIGH)
        c->output_full = true;
    return c->output_full;
}

static bool
chan_cons_can_take(struct cons *base)
{
    struct chan_cons *cc = (struct chan_cons *)base;
    struct chan *ch = cc->ch;
    /* A connection whose peer has closed its socket is only finishing its input: deliveries
     * could not reach anyone (and an auto-ack one would be lost). */
    if (ch->state != CHAN_OPEN || ch->conn->state != CONN_OPEN || ch->conn->peer_closed ||
        ch->conn->peer_hup || chan_output_full(ch->conn))
        return false;
    if (cc->no_ack)
        return true;
    return (cc->prefetch == 0 || cc->n_unacked < cc->prefetch) &&
           (ch->prefetch_channel == 0 || ch->n_unacked_consumed < ch->prefetch_channel);
}

/* Records an unacked delivery under the channel's next tag. NULL on ENOMEM. */
static struct delivery *
chan_delivery_add(struct chan *ch, struct qentry *e, struct chan_cons *cc)
{
    struct delivery *d = pool_get(&chan_delivery_pool);
    if (d == NULL)
        return NULL;
    if (idmap_insert(&ch->unacked_by_tag, &d->by_tag, ch->next_delivery_tag + 1) < 0) {
        pool_put(&chan_delivery_pool, d);
        return NULL;
    }
    ch->next_delivery_tag++;
    d->entry = e;
    d->cons = cc;
    d->settle = CHAN_SETTLE_ACK;
    d->delivered_at = server_now_ms();
    TAILQ_INSERT_TAIL(&ch->unacked, d, link);
    if (cc != NULL) {
        cc->n_unacked++;
        ch->n_unacked_consumed++;
    }
    if (TAILQ_FIRST(&ch->unacked) == d)
        chan_ack_timer_update(ch); /* the oldest: timed from now */
    return d;
}

void
chan_send_deliver(struct chan_cons *cc, uint64_t tag, bool redelivered, struct msg *m)
{
    struct chan *ch = cc->ch;
    struct wire_method dm = {.id = WIRE_BASIC_DELIVER};
    dm.u.basic_deliver.consumer_tag = (struct wire_str){(const uint8_t *)cc->tag, cc->tag_len};
    dm.u.basic_deliver.delivery_tag = tag;
    dm.u.basic_deliver.redelivered = redelivered;
    dm.u.basic_deliver.exchange = (struct wire_str){m->exchange, m->exchange_len};
    dm.u.basic_deliver.routing_key = (struct wire_str){m->routing_key, m->routing_key_len};
    if (conn_send(ch->conn, ch->id, &dm) < 0 || chan_write_content(ch, m) < 0)
        conn_abort(ch->conn, "writing a delivery");
}

/* The message a delivery of e shows, one reference: e's own, or where the queue counts
 * deliveries (a quorum queue, or any with a delivery limit) a copy carrying x-delivery-count
 * as RabbitMQ's quorum queues add it: on a redelivery to a consumer, and on every basic.get
 * (get: 0 the first time). A copy that cannot be made (ENOMEM) leaves the header out. */
static struct msg *
chan_shown_msg(const struct qentry *e, bool get)
{
    const struct queue *q = e->queue;
    struct msg *m = NULL;
    if (q != NULL && (q->settings.quorum || q->settings.delivery_limit >= 0) &&
        (get || e->delivery_count > 0))
        m = msg_with_long_header(e->msg, "x-delivery-count", e->delivery_count);
    return m != NULL ? m : msg_ref(e->msg);
}

static int
chan_cons_deliver(struct cons *base, struct qentry *e)
{
    struct chan_cons *cc = (struct chan_cons *)base;
    struct chan *ch = cc->ch;
    struct conn *c = ch->conn;
    uint64_t tag;
    if (cc->no_ack) {
        tag = ++ch->next_delivery_tag;
    } else {
        struct delivery *d = chan_delivery_add(ch, e, cc);
        if (d == NULL) {
            log_conn(LOG_ERROR, c, "out of memory delivering on channel %u", ch->id);
            return -1;
        }
        tag = d->by_tag.id;
    }
    /* On failure the connection is going: the entry stays with the channel (or is settled
     * below), and releasing the channel requeues its deliveries in order. */
    chan_stats_add(ch, e->queue, cc->no_ack ? STATS_DELIVER_NO_ACK : STATS_DELIVER, 1);
    if (e->redelivered)
        chan_stats_add(ch, e->queue, STATS_REDELIVER, 1);
    struct msg *shown = chan_shown_msg(e, false);
    chan_send_deliver(cc, tag, e->redelivered, shown);
    msg_unref(&shown);
    if (cc->no_ack && e->relayed) {
        /* Its home may send another once this one is out (its credit back), not before. */
        bool full = chan_output_full(c);
        relay_settle(c->server, e, CHAN_SETTLE_ACK, !full);
        cc->credit_owed += full;
    } else if (cc->no_ack) {
        queue_cmd_settle(e);
    }
    return 0;
}

int
chan_relay_deliver(struct chan_cons *cc, struct qentry *e)
{
    struct chan *ch = cc->ch;
    if (ch->state != CHAN_OPEN || ch->conn->state != CONN_OPEN || ch->conn->peer_closed)
        return -1;
    return chan_cons_deliver(&cc->base, e);
}

/* Takes d off the channel's unacked deliveries (list and index). */
static void
chan_unacked_take(struct chan *ch, struct delivery *d)
{
    TAILQ_REMOVE(&ch->unacked, d, link);
    idmap_remove(&ch->unacked_by_tag, &d->by_tag);
}

static void
chan_cons_destroy(struct chan_cons *cc)
{
    free(cc->tag);
    free(cc);
}

/* Forgets a consumer that is going away, in O(1) however many deliveries it has: out of the
 * channel's table, its unacked deliveries stay with the channel (they are acked or requeued
 * later) and no longer count against the channel's prefetch; its record goes with the last
 * of them (chan_delivery_settle). */
void
chan_cons_free(struct chan_cons *cc)
{
    struct chan *ch = cc->ch;
    hmap_remove(&ch->consumers, &cc->by_tag);
    ch->n_unacked_consumed -= cc->n_unacked;
    cc->cancelled = true;
    if (cc->n_unacked == 0)
        chan_cons_destroy(cc);
}

static void
chan_cons_queue_deleted(struct cons *base)
{
    struct chan_cons *cc = (struct chan_cons *)base;
    struct chan *ch = cc->ch;
    struct conn *c = ch->conn;
    /* Clients that announced consumer_cancel_notify learn that the consumer is gone. */
    if (c->cap_consumer_cancel_notify && ch->state == CHAN_OPEN && c->state == CONN_OPEN) {
        struct wire_method m = {.id = WIRE_BASIC_CANCEL};
        m.u.basic_cancel.consumer_tag = (struct wire_str){(const uint8_t *)cc->tag, cc->tag_len};
        m.u.basic_cancel.no_wait = true;
        conn_send(c, ch->id, &m);
    }
    chan_cons_free(cc);
}

void
chan_relay_cancelled(struct chan_cons *cc)
{
    chan_cons_queue_deleted(&cc->base);
}

static uint32_t
chan_cons_unsettled(const struct cons *base)
{
    return ((const struct chan_cons *)base)->n_unacked;
}

static const struct cons_ops chan_cons_ops = {
    .can_take = chan_cons_can_take,
    .unsettled = chan_cons_unsettled,
    .deliver = chan_cons_deliver,
    .queue_deleted = chan_cons_queue_deleted,
};

struct chan_cons *
chan_cons_of(struct cons *c)
{
    return c->ops == &chan_cons_ops ? (struct chan_cons *)c : NULL;
}

void
chan_cons_park(struct chan_cons *cc, struct queue *q)
{
    queue_consumer_add(q, &cc->base);
    queue_dispatch(q);
}

/* Offers messages again to every consumer of the channel (capacity was freed by acks, or qos
 * or flow changed): the queues woke them from parking. */
static void
chan_wake_consumers(struct chan *ch)
{
    struct hmap_iter it;
    struct hmap_entry *he;
    hmap_iter_init(&it, &ch->consumers);
    while ((he = hmap_iter_next(&it)) != NULL) {
        struct chan_cons *cc = hmap_container_of(he, struct chan_cons, by_tag);
        if (cc->credit_owed > 0 && !chan_output_full(ch->conn)) {
            relay_credit(cc, cc->credit_owed); /* another node's queue: it may send more */
            cc->credit_owed = 0;
        }
        /* Dispatch can cancel this very consumer (never: only queue deletion does, and that
         * does not happen while dispatching), but it may not be last: the iterator is safe. */
        queue_consumer_wake(&cc->base);
    }
}

void
chan_wake_all_consumers(struct conn *c)
{
    c->output_full = false;
    struct idmap_iter it;
    struct idmap_entry *e;
    idmap_iter_init(&it, &c->chans);
    while ((e = idmap_iter_next(&it)) != NULL)
        chan_wake_consumers(idmap_container_of(e, struct chan, by_id));
}

static struct chan_cons *
chan_cons_find(const struct chan *ch, struct wire_str tag)
{
    struct hmap_entry *he = hmap_find(&ch->consumers, tag.ptr, tag.len);
    return he != NULL ? hmap_container_of(he, struct chan_cons, by_tag) : NULL;
}

/* "amq.ctag-" and 22 url-safe random characters, as RabbitMQ names server-made tags. */
void
chan_random_name(char *dst, size_t cap, const char *prefix)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t rnd[22];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        /* The names only need to be unique: a counter does that when OpenSSL cannot. */
        static uint64_t fallback;
        snprintf(dst, cap, "%s%llu", prefix, (unsigned long long)++fallback);
        return;
    }
    size_t n = (size_t)snprintf(dst, cap, "%s", prefix);
    for (size_t i = 0; i < sizeof(rnd) && n + 1 < cap; i++)
        dst[n++] = alphabet[rnd[i] & 63];
    dst[n] = '\0';
}

/* Creates a consumer on ch (not yet attached to anything) under the client's tag or a
 * server-made one. NULL after raising: a reused tag (530), ENOMEM. */
static struct chan_cons *
chan_cons_create(struct chan *ch, const struct wire_basic_consume *bc, int32_t priority)
{
    struct conn *c = ch->conn;
    char tagbuf[64];
    struct wire_str tag = bc->consumer_tag;
    if (tag.len == 0) {
        chan_random_name(tagbuf, sizeof(tagbuf), "amq.ctag-");
        tag = (struct wire_str){(const uint8_t *)tagbuf, strlen(tagbuf)};
    }
    if (chan_cons_find(ch, tag) != NULL) {
        conn_raise(c, WIRE_NOT_ALLOWED, WIRE_BASIC_CONSUME, "attempt to reuse consumer tag '%.*s'",
                   WIRE_STR_ARG(tag));
        return NULL;
    }
    struct chan_cons *cc = calloc(1, sizeof(*cc));
    if (cc == NULL || (cc->tag = malloc(tag.len + 1)) == NULL) {
        free(cc);
        conn_raise(c, WIRE_RESOURCE_ERROR, WIRE_BASIC_CONSUME, "out of memory");
        return NULL;
    }
    memcpy(cc->tag, tag.ptr, tag.len);
    cc->tag[tag.len] = '\0';
    cc->tag_len = (uint8_t)tag.len;
    cc->ch = ch;
    cc->no_ack = bc->no_ack;
    cc->prefetch = ch->prefetch_consumer;
    cc->base.ops = &chan_cons_ops;
    cc->base.exclusive = bc->exclusive;
    cc->base.priority = priority;
    if (hmap_insert(&ch->consumers, &cc->by_tag, cc->tag, cc->tag_len) < 0) {
        free(cc->tag);
        free(cc);
        conn_raise(c, WIRE_RESOURCE_ERROR, WIRE_BASIC_CONSUME, "out of memory");
        return NULL;
    }
    return cc;
}

int
chan_send_consume_ok(struct chan *ch, const struct chan_cons *cc)
{
    struct wire_method ok = {.id = WIRE_BASIC_CONSUME_OK};
    ok.u.basic_consume_ok.consumer_tag = (struct wire_str){(const uint8_t *)cc->tag, cc->tag_len};
    return conn_send(ch->conn, ch->id, &ok);
}

static int
chan_on_consume(struct chan *ch, const struct wire_basic_consume *bc)
{
    struct conn *c = ch->conn;
    if (chan_reply_to_is_pseudo_queue(bc->queue)) {
        if (!bc->no_ack)
            return chan_raise(ch, WIRE_PRECONDITION_FAILED, WIRE_BASIC_CONSUME,
                              "reply consumer cannot acknowledge");
        struct chan_cons *cc = chan_cons_create(ch, bc, 0);
        if (cc == NULL)
            return -1;
        if (chan_reply_to_register(ch, cc) < 0) {
            chan_cons_free(cc);
            return -1;
        }
        return bc->no_wait ? 0 : chan_send_consume_ok(ch, cc);
    }
    if (chan_access_queue(ch, WIRE_BASIC_CONSUME, AUTH_READ, bc->queue) < 0)
        return -1;
    struct queue *q = chan_queue_lookup(ch, bc->queue, WIRE_BASIC_CONSUME);
    if (q == NULL)
        return -1;
    /* As RabbitMQ: a queue with a single active consumer has no exclusive one, ever (another
     * node's queue: its home checks). */
    if (q->home == NULL &&
        (queue_has_exclusive_consumer(q) ||
         (bc->exclusive && (q->n_consumers > 0 || q->settings.single_active_consumer))))
        return chan_raise(ch, WIRE_ACCESS_REFUSED, WIRE_BASIC_CONSUME,
                          "queue '%s' in vhost '%s' in exclusive use", q->name, c->vhost->name);
    int64_t priority = 0;
    struct wire_value v;
    if (wire_table_get(bc->arguments, "x-priority", &v) && !wire_value_to_i64(&v, &priority))
        return chan_raise(ch, WIRE_PRECONDITION_FAILED, WIRE_BASIC_CONSUME,
                          "invalid arg 'x-priority' for queue '%s' in vhost '%s': expected an "
                          "integer",
                          q->name, c->vhost->name);
    struct chan_cons *cc = chan_cons_create(ch, bc,
                                            priority > INT32_MAX   ? INT32_MAX
                                            : priority < INT32_MIN ? INT32_MIN
                                                                   : (int32_t)priority);
    if (cc == NULL)
        return -1;
    if (q->home != NULL) { /* another node's queue: its home serves it (relay.c) */
        if (relay_consume(ch, cc, q, bc->no_wait) < 0) {
            chan_cons_free(cc);
            return -1;
        }
        return 0;
    }
    queue_consumer_add(q, &cc->base);
    if (!bc->no_wait && chan_send_consume_ok(ch, cc) < 0)
        return -1;
    queue_dispatch(q); /* after consume-ok: deliveries may follow it, never precede it */
    return 0;
}

/* Detaches a consumer from its queue and frees it; an auto-delete queue losing its last
 * consumer is deleted, another one dispatches: a single active consumer's successor takes
 * over. */
static void
chan_cons_cancel(struct chan_cons *cc)
{
    struct queue *q = cc->base.queue;
    if (cc->ch->reply_cons == cc)
        chan_reply_to_unregister(cc->ch);
    if (cc->relay != NULL)
        relay_cancel(cc);
    bool delete_queue = q != NULL && queue_consumer_remove(&cc->base);
    chan_cons_free(cc);
    if (delete_queue)
        vhost_queue_delete_self(q);
    else if (q != NULL)
        queue_dispatch(q);
}

static int
chan_on_cancel(struct chan *ch, const struct wire_basic_cancel *bc)
{
    struct chan_cons *cc = chan_cons_find(ch, bc->consumer_tag);
    if (cc != NULL)
        chan_cons_cancel(cc); /* an unknown tag is fine, as in RabbitMQ */
    if (bc->no_wait)
        return 0;
    struct wire_method ok = {.id = WIRE_BASIC_CANCEL_OK};
    ok.u.basic_cancel_ok.consumer_tag = bc->consumer_tag;
    return conn_send(ch->conn, ch->id, &ok);
}

static int chan_get_ok(struct chan *ch, struct queue *q, struct qentry *e, bool no_ack,
                       uint64_t message_count);

int
chan_get_answer(struct chan *ch, struct wire_str queue, bool no_ack, bool may_wait)
{
    struct queue *q = chan_queue_lookup(ch, queue, WIRE_BASIC_GET);
    if (q == NULL)
        return -1;
    if (q->home != NULL) /* another node's queue: asked of its home (relay.c) */
        return relay_get(ch, q, no_ack);
    queue_used(q);
    struct qentry *e = q->n_ready > 0 ? queue_cmd_deliver(q) : NULL;
    /* Ready entries but none deliverable: they are all paged out in a batch the store has
     * not completed, so they cannot be read back yet. RabbitMQ never says get-empty while
     * messages are ready: wait for the store rather than answer empty. */
    if (e == NULL && q->n_ready > 0 && may_wait && chan_get_wait(ch, queue, no_ack) == 0)
        return 0;
    return chan_get_ok(ch, q, e, no_ack, q->n_ready);
}

/* Answers basic.get with e, of q (NULL: another node's queue, e relayed), message_count
 * left; get-empty for e NULL. 0, or -1 after raising. */
static int
chan_get_ok(struct chan *ch, struct queue *q, struct qentry *e, bool no_ack, uint64_t message_count)
{
    struct conn *c = ch->conn;
    if (e == NULL) {
        chan_stats_add(ch, q, STATS_GET_EMPTY, 1);
        struct wire_method empty = {.id = WIRE_BASIC_GET_EMPTY};
        return conn_send(c, ch->id, &empty);
    }
    uint64_t tag;
    if (no_ack) {
        tag = ++ch->next_delivery_tag;
    } else {
        struct delivery *d = chan_delivery_add(ch, e, NULL);
        if (d == NULL) {
            /* The client never saw it: not a delivery (no count towards x-delivery-limit, no
             * redelivered mark), unlike a requeue. */
            if (e->relayed)
                relay_settle(c->server, e, CHAN_SETTLE_REQUEUE, true);
            else
                queue_delivery_undo(e);
            return conn_raise(c, WIRE_RESOURCE_ERROR, WIRE_BASIC_GET, "out of memory");
        }
        tag = d->by_tag.id;
    }
    chan_stats_add(ch, q, no_ack ? STATS_GET_NO_ACK : STATS_GET, 1);
    if (e->redelivered)
        chan_stats_add(ch, q, STATS_REDELIVER, 1);
    struct msg *m = chan_shown_msg(e, true);
    struct wire_method ok = {.id = WIRE_BASIC_GET_OK};
    ok.u.basic_get_ok.delivery_tag = tag;
    ok.u.basic_get_ok.redelivered = e->redelivered;
    ok.u.basic_get_ok.exchange = (struct wire_str){m->exchange, m->exchange_len};
    ok.u.basic_get_ok.routing_key = (struct wire_str){m->routing_key, m->routing_key_len};
    ok.u.basic_get_ok.message_count =
        message_count > UINT32_MAX ? UINT32_MAX : (uint32_t)message_count;
    if (conn_send(c, ch->id, &ok) < 0 || chan_write_content(ch, m) < 0)
        conn_abort(c, "writing basic.get-ok");
    msg_unref(&m);
    if (no_ack && e->relayed)
        relay_settle(c->server, e, CHAN_SETTLE_ACK, true);
    else if (no_ack)
        queue_cmd_settle(e);
    return 0;
}

void
chan_relay_got(struct chan *ch, struct qentry *e, bool no_ack, uint32_t message_count)
{
    chan_get_ok(ch, NULL, e, no_ack, message_count);
}

static int
chan_on_qos(struct chan *ch, const struct wire_basic_qos *qos)
{
    if (qos->prefetch_size != 0)
        return conn_raise(ch->conn, WIRE_NOT_IMPLEMENTED, WIRE_BASIC_QOS, "prefetch_size!=0 (%u)",
                          qos->prefetch_size);
    /* RabbitMQ's semantics: global=true limits the channel as a whole; global=false sets the
     * limit of consumers created from now on, and (a RabbitMQ quirk clients have come to
     * rely on) lifts the channel-wide one. */
    if (qos->global) {
        ch->prefetch_channel = qos->prefetch_count;
    } else {
        ch->prefetch_consumer = qos->prefetch_count;
        ch->prefetch_channel = 0;
    }
    struct wire_method ok = {.id = WIRE_BASIC_QOS_OK};
    if (conn_send(ch->conn, ch->id, &ok) < 0)
        return -1;
    chan_wake_consumers(ch);
    return 0;
}

/* ---- settling ---- */

/* Settles one delivery now as d->settle says. The queue of a requeued entry is added to
 * touched (to be dispatched once everything is back). */
static void
chan_delivery_settle(struct chan *ch, struct delivery *d, struct route_result *touched)
{
    struct chan_cons *cc = d->cons;
    if (cc != NULL) {
        if (!cc->cancelled)
            ch->n_unacked_consumed--;
        if (--cc->n_unacked == 0 && cc->cancelled)
            chan_cons_destroy(cc);
    }
    struct qentry *e = d->entry;
    struct queue *q = e->queue;
    if (e->relayed) { /* another node's queue: its home settles it */
        if (d->settle == CHAN_SETTLE_ACK)
            chan_stats_add(ch, NULL, STATS_ACK, 1);
        relay_settle(ch->conn->server, e, d->settle, true);
        pool_put(&chan_delivery_pool, d);
        return;
    }
    switch (d->settle) {
    case CHAN_SETTLE_REQUEUE:
        queue_cmd_requeue(e);
        break;
    case CHAN_SETTLE_REJECT:
        /* The copy is enqueued (and stored) before the original is settled: see
         * deadletter.h. */
        queue_cmd_reject(e);
        break;
    case CHAN_SETTLE_ACK:
        chan_stats_add(ch, q, STATS_ACK, 1);
        queue_cmd_settle(e);
        break;
    }
    if (d->settle == CHAN_SETTLE_REQUEUE && q != NULL && route_result_add(touched, q) < 0)
        log_conn(LOG_ERROR, ch->conn,
                 "out of memory: queue '%s' redelivers its requeued messages on its next event",
                 q->name);
    pool_put(&chan_delivery_pool, d);
}

/* Settles a whole list of deliveries, each as its settle field says, then offers the
 * requeued messages to consumers: all are back in place before any is delivered again
 * (which may be to this very channel). */
static void
chan_settle_list(struct chan *ch, struct delivery_list *list)
{
    struct route_result touched = {0};
    struct delivery *d;
    while ((d = TAILQ_FIRST(list)) != NULL) {
        TAILQ_REMOVE(list, d, link);
        chan_delivery_settle(ch, d, &touched);
    }
    for (uint32_t i = 0; i < touched.n; i++)
        queue_dispatch(touched.queues[i]);
    route_result_free(&touched);
}

/* Takes the deliveries an ack/nack/reject names off the unacked list, into *out (in tag
 * order), each to be settled as how says: one found by its tag, or with multiple every one up
 * to tag (from the head: each is taken, so the walk costs what it settles). tag 0 with
 * multiple means all. 0, or -1 after raising 406 for an unknown tag. */
static int
chan_collect_acks(struct chan *ch, uint64_t tag, bool multiple, enum chan_settle how,
                  uint32_t method_id, struct delivery_list *out)
{
    TAILQ_INIT(out);
    struct delivery *d;
    if (multiple) {
        bool found = false;
        while ((d = TAILQ_FIRST(&ch->unacked)) != NULL && (tag == 0 || d->by_tag.id <= tag)) {
            chan_unacked_take(ch, d);
            d->settle = how;
            TAILQ_INSERT_TAIL(out, d, link);
            found = true;
        }
        /* "multiple" with nothing outstanding up to tag is as wrong as an unknown single tag */
        if (found || tag == 0)
            return 0;
    } else {
        struct idmap_entry *e = idmap_find(&ch->unacked_by_tag, tag);
        if (e != NULL) {
            d = idmap_container_of(e, struct delivery, by_tag);
            chan_unacked_take(ch, d);
            d->settle = how;
            TAILQ_INSERT_TAIL(out, d, link);
            return 0;
        }
    }
    return chan_raise(ch, WIRE_PRECONDITION_FAILED, method_id, "unknown delivery tag %llu",
                      (unsigned long long)tag);
}

static int
chan_on_settle(struct chan *ch, uint64_t tag, bool multiple, enum chan_settle how,
               uint32_t method_id)
{
    struct delivery_list acked;
    if (chan_collect_acks(ch, tag, multiple, how, method_id, &acked) < 0)
        return -1;
    chan_ack_timer_update(ch); /* the oldest unacked delivery may be another one now */
    if (ch->tx_mode) {
        /* Settled on tx.commit; tx.rollback puts them back among the unacked. */
        TAILQ_CONCAT(&ch->tx_acks, &acked, link);
        return 0;
    }
    chan_settle_list(ch, &acked);
    chan_wake_consumers(ch);
    return 0;
}

/* Requeues every unacked delivery of the channel (basic.recover, channel close). The queue
 * puts each back at its original position, so the order does not depend on this walk. */
static void
chan_requeue_unacked(struct chan *ch)
{
    struct delivery_list all = TAILQ_HEAD_INITIALIZER(all);
    struct delivery *d;
    while ((d = TAILQ_FIRST(&ch->unacked)) != NULL) {
        chan_unacked_take(ch, d);
        d->settle = CHAN_SETTLE_REQUEUE;
        TAILQ_INSERT_TAIL(&all, d, link);
    }
    chan_settle_list(ch, &all);
}

static int
chan_on_recover(struct chan *ch, bool requeue, bool send_ok)
{
    if (!requeue)
        return conn_raise(ch->conn, WIRE_NOT_IMPLEMENTED, WIRE_BASIC_RECOVER, "requeue=false");
    chan_requeue_unacked(ch);
    if (send_ok) {
        struct wire_method ok = {.id = WIRE_BASIC_RECOVER_OK};
        if (conn_send(ch->conn, ch->id, &ok) < 0)
            return -1;
    }
    chan_wake_consumers(ch);
    return 0;
}

/* ---- publishing ---- */

static int
chan_send_return(struct chan *ch, struct msg *m)
{
    struct wire_method r = {.id = WIRE_BASIC_RETURN};
    r.u.basic_return.reply_code = WIRE_NO_ROUTE;
    r.u.basic_return.reply_text = WIRE_STR_LIT("NO_ROUTE");
    r.u.basic_return.exchange = (struct wire_str){m->exchange, m->exchange_len};
    r.u.basic_return.routing_key = (struct wire_str){m->routing_key, m->routing_key_len};
    if (conn_send(ch->conn, ch->id, &r) < 0)
        return -1;
    if (chan_write_content(ch, m) < 0) {
        conn_abort(ch->conn, "writing basic.return");
        return -1;
    }
    return 0;
}

/* A publish's scope for replicated queues (quorum.h): their enqueues' commits hold its confirm
 * (a chan_fwd, as forwards do, made by the first one) or its tx.commit (ch->tx_fwd). */
struct chan_route_scope {
    struct net_quorum_scope base;
    struct chan *ch;
    uint64_t seq;        /* its confirm's, 0 outside confirm mode */
    struct chan_fwd *cf; /* its own, once made */
};

static void *
chan_route_hold(struct net_quorum_scope *sc)
{
    struct chan_route_scope *x = (struct chan_route_scope *)sc;
    struct chan_fwd *cf = x->ch->tx_fwd;
    if (cf == NULL && x->seq == 0)
        return NULL; /* nobody waits */
    if (cf == NULL && (cf = x->cf) == NULL && (cf = x->cf = chan_fwd_new(x->ch, x->seq)) == NULL) {
        sc->failed = true;
        return NULL;
    }
    cf->remaining++;
    return cf;
}

static void
chan_route_answer(void *held, enum cluster_outcome outcome, int result)
{
    chan_fwd_settle(held, outcome != CLUSTER_COMMITTED || result != 0);
}

/* Publishes a complete message through the broker's pipeline (publish.h), unless it is a
 * direct reply; returns it to the publisher if mandatory and unroutable; confirms it in
 * confirm mode (after the store's sync when it was stored), nacks it if it could not reach
 * every queue (out of memory, or a queue refused it by x-overflow reject-publish). seq: its confirm
 * sequence number (0 outside confirm mode); in a tx.commit, ch->tx_fwd takes its forwards'
 * answers and is nacked instead. Consumes the caller's reference. 0, or -1 after raising
 * (an exchange that vanished). */
static int
chan_route(struct chan *ch, struct msg *m, bool mandatory, uint64_t seq)
{
    struct wire_str ex = {m->exchange, m->exchange_len};
    struct wire_str rk = {m->routing_key, m->routing_key_len};
    /* A direct reply goes straight to the requester's consumer; if that has gone, it is
     * unroutable, like a message to a deleted queue. */
    int direct = ex.len == 0 ? chan_reply_to_deliver(ch, rk, m) : 0;
    enum publish_status st = PUBLISH_OK;
    struct publish_outcome out = {0};
    struct chan_route_scope scope = {{chan_route_hold, chan_route_answer, false}, ch, seq, NULL};
    chan_stats_add(ch, NULL, STATS_PUBLISH, 1);
    if (direct == 0) {
        net_quorum_scope(ch->conn->server, &scope.base);
        st = publish_message(ch->conn->vhost, &m, &ch->route, &out);
        net_quorum_scope(ch->conn->server, NULL);
    }
    if (st == PUBLISH_NO_EXCHANGE) {
        /* ex points into m: the text is made before m goes. */
        int rc =
            chan_raise(ch, WIRE_NOT_FOUND, WIRE_BASIC_PUBLISH, "no exchange '%.*s' in vhost '%s'",
                       WIRE_STR_ARG(ex), ch->conn->vhost->name);
        msg_unref(&m);
        return rc;
    }
    if (out.stored) {
        if (ch->tx_mode)
            ch->tx_sync = true;
        else if (ch->confirm_mode)
            ch->confirm_sync = true;
    }
    if (st == PUBLISH_OK && out.n_queues == 0 && out.n_refused == 0 && out.n_remote == 0 &&
        direct <= 0) {
        chan_stats_add(ch, NULL, mandatory ? STATS_RETURN_UNROUTABLE : STATS_DROP_UNROUTABLE, 1);
        if (mandatory)
            chan_send_return(ch, m);
    }
    bool nack = st == PUBLISH_NOMEM || out.n_refused > 0 || scope.base.failed;
    struct chan_fwd *tx = ch->tx_fwd; /* in a tx.commit: every publish answers to it */
    struct chan_fwd *cf = scope.cf;   /* its own: replicated queues' commits hold its confirm */
    if (out.n_remote > 0) {
        /* Other nodes' queues: its confirm (or the commit) waits for their answers (unless
         * nacked already). */
        if (tx == NULL && cf == NULL && seq != 0 && !nack && (cf = chan_fwd_new(ch, seq)) == NULL)
            nack = true;
        if (net_forward(ch->conn->server, ch->conn->vhost, ch->route.queues + ch->route.n,
                        out.n_remote, m, tx != NULL ? tx : cf) < 0)
            nack = true;
        net_forward_hold(ch->conn); /* when the other nodes are behind */
    }
    if (tx != NULL && nack)
        tx->nacked = true;
    if (cf != NULL) {
        /* Answered once every hold is (chan_forwarded), ack or nack. */
        chan_fwd_settle(cf, nack);
        chan_confirm_due(ch, seq);
    } else if (seq != 0) {
        if (nack)
            chan_nack_publish(ch, seq);
        else
            chan_confirm_due(ch, seq);
    }
    msg_unref(&m);
    return 0;
}

int
chan_publish_begin(struct chan *ch, const struct wire_basic_publish *p)
{
    struct conn *c = ch->conn;
    /* Whatever happens to the method, its content follows and must be consumed. */
    ch->content = CHAN_CONTENT_AWAIT_HEADER;
    ch->content_class = WIRE_CLASS_BASIC;
    if (p->immediate)
        return conn_raise(c, WIRE_NOT_IMPLEMENTED, WIRE_BASIC_PUBLISH, "immediate=true");
    /* RabbitMQ's order: write permission, existence, internal, topic permission. */
    if (chan_access_publish(ch, p->exchange) < 0)
        return -1;
    if (p->exchange.len > 0) {
        struct exch *e = vhost_exch_find(c->vhost, p->exchange);
        if (e == NULL)
            return chan_raise(ch, WIRE_NOT_FOUND, WIRE_BASIC_PUBLISH,
                              "no exchange '%.*s' in vhost '%s'", WIRE_STR_ARG(p->exchange),
                              c->vhost->name);
        if (e->internal)
            return chan_raise(ch, WIRE_ACCESS_REFUSED, WIRE_BASIC_PUBLISH,
                              "cannot publish to internal exchange '%s' in vhost '%s'", e->name,
                              c->vhost->name);
        if (ch->pub_ok_topic &&
            chan_access_topic(ch, WIRE_BASIC_PUBLISH, e, AUTH_WRITE, p->routing_key) < 0)
            return -1;
    }
    c->publisher = true;
    if (server_publishers_blocked(c->server))
        conn_block(c); /* this message completes from what was read; the socket waits */
    memcpy(ch->publish_exchange, p->exchange.ptr, p->exchange.len);
    ch->publish_exchange_len = (uint8_t)p->exchange.len;
    memcpy(ch->publish_rk, p->routing_key.ptr, p->routing_key.len);
    ch->publish_rk_len = (uint8_t)p->routing_key.len;
    ch->publish_mandatory = p->mandatory;
    return 0;
}

int
chan_publish_header(struct chan *ch, const struct frame_content_header *h,
                    const struct wire_basic_props *props)
{
    struct conn *c = ch->conn;
    /* As RabbitMQ: a user_id property, when present, must name the authenticated user, so
     * consumers can trust it, unless the user has the impersonator tag. */
    const char *user = auth_user_name(c->user);
    if ((props->flags & WIRE_BASIC_USER_ID_FLAG) && !wire_str_eq(props->user_id, user) &&
        !auth_user_has_tag(c->user, "impersonator"))
        return chan_raise(ch, WIRE_PRECONDITION_FAILED, WIRE_BASIC_PUBLISH,
                          "user_id property set to '%.*s' but authenticated user was '%s'",
                          WIRE_STR_ARG(props->user_id), user);
    int64_t expiration_ms = -1;
    char why[320];
    if ((props->flags & WIRE_BASIC_EXPIRATION_FLAG) &&
        queue_args_expiration(props->expiration, &expiration_ms, why, sizeof(why)) < 0)
        return chan_raise(ch, WIRE_PRECONDITION_FAILED, WIRE_BASIC_PUBLISH, "%s", why);
    if (props->headers.len > 0 && publish_check_header_routes(props->headers, why, sizeof(why)) < 0)
        return chan_raise(ch, WIRE_PRECONDITION_FAILED, WIRE_BASIC_PUBLISH, "%s", why);
    struct wire_str ex = {(const uint8_t *)ch->publish_exchange, ch->publish_exchange_len};
    struct wire_str rk = {(const uint8_t *)ch->publish_rk, ch->publish_rk_len};
    uint8_t mode = (props->flags & WIRE_BASIC_DELIVERY_MODE_FLAG) ? props->delivery_mode : 1;
    uint8_t prio = (props->flags & WIRE_BASIC_PRIORITY_FLAG) ? props->priority : 0;
    if ((props->flags & WIRE_BASIC_REPLY_TO_FLAG) &&
        chan_reply_to_is_pseudo_queue(props->reply_to)) {
        ch->publishing = chan_reply_to_message(ch, h, props, mode, prio, ex, rk);
        return ch->publishing != NULL ? 0 : -1;
    }
    ch->publishing = msg_new(h->props, h->props_len, mode, prio, ex, rk, h->body_size);
    if (ch->publishing != NULL) {
        msg_set_headers(ch->publishing, h->props, props->headers);
        ch->publishing->expiration_ms = expiration_ms;
    }
    /* The body counts towards the memory alarm as it arrives, not as announced here: a
     * header declaring 128 MiB and followed by 100 bytes holds 100 bytes of memory (the rest
     * of the allocation is never touched). */
    if (ch->publishing == NULL)
        return conn_raise(c, WIRE_RESOURCE_ERROR, WIRE_BASIC_PUBLISH,
                          "out of memory for a %llu-byte message",
                          (unsigned long long)h->body_size);
    return 0;
}

void
chan_publish_body(struct chan *ch, const uint8_t *p, uint32_t n)
{
    memcpy(ch->publishing->body + ch->body_received, p, n);
}

int
chan_publish_complete(struct chan *ch)
{
    struct msg *m = ch->publishing;
    ch->publishing = NULL;
    server_memory_check_fast(ch->conn->server);
    uint64_t seq = ch->confirm_mode ? ++ch->publish_seq : 0;
    if (ch->tx_mode) {
        struct tx_publish *tp = malloc(sizeof(*tp));
        if (tp == NULL) {
            msg_unref(&m);
            return conn_raise(ch->conn, WIRE_RESOURCE_ERROR, WIRE_BASIC_PUBLISH,
                              "out of memory holding a transactional publish");
        }
        tp->msg = m;
        tp->mandatory = ch->publish_mandatory;
        STAILQ_INSERT_TAIL(&ch->tx_publishes, tp, link);
        return 0;
    }
    return chan_route(ch, m, ch->publish_mandatory, seq);
}

/* ---- transactions ---- */

static void
chan_tx_discard_publishes(struct chan *ch)
{
    struct tx_publish *tp;
    while ((tp = STAILQ_FIRST(&ch->tx_publishes)) != NULL) {
        STAILQ_REMOVE_HEAD(&ch->tx_publishes, link);
        msg_unref(&tp->msg);
        free(tp);
    }
}

/* Sorts a list of deliveries by tag: a merge sort of the list in place (Simon Tatham's), in
 * O(n log n) and without allocating. */
static void
chan_delivery_list_sort(struct delivery_list *l)
{
    struct delivery *head = TAILQ_FIRST(l);
    for (size_t width = 1;; width *= 2) {
        struct delivery *sorted = NULL, **tail = &sorted, *p = head;
        size_t merges = 0;
        while (p != NULL) {
            /* Merges the run of width at p with the one after it, singly linked. */
            merges++;
            struct delivery *q = p;
            size_t psize = 0, qsize = width;
            while (psize < width && q != NULL) {
                psize++;
                q = TAILQ_NEXT(q, link);
            }
            while (psize > 0 || (qsize > 0 && q != NULL)) {
                struct delivery *e;
                if (psize > 0 && (qsize == 0 || q == NULL || p->by_tag.id <= q->by_tag.id)) {
                    e = p;
                    p = TAILQ_NEXT(p, link);
                    psize--;
                } else {
                    e = q;
                    q = TAILQ_NEXT(q, link);
                    qsize--;
                }
                *tail = e;
                tail = &TAILQ_NEXT(e, link);
            }
            p = q;
        }
        *tail = NULL;
        head = sorted;
        if (merges <= 1)
            break;
    }
    TAILQ_INIT(l);
    while (head != NULL) {
        struct delivery *next = TAILQ_NEXT(head, link);
        TAILQ_INSERT_TAIL(l, head, link);
        head = next;
    }
}

/* Puts the deliveries settled inside the transaction back among the unacked, in tag order:
 * sorted, then merged in one walk. */
static void
chan_tx_restore_acks(struct chan *ch)
{
    chan_delivery_list_sort(&ch->tx_acks);
    struct delivery *d, *at = TAILQ_FIRST(&ch->unacked);
    while ((d = TAILQ_FIRST(&ch->tx_acks)) != NULL) {
        TAILQ_REMOVE(&ch->tx_acks, d, link);
        while (at != NULL && at->by_tag.id < d->by_tag.id)
            at = TAILQ_NEXT(at, link);
        if (at != NULL)
            TAILQ_INSERT_BEFORE(at, d, link);
        else
            TAILQ_INSERT_TAIL(&ch->unacked, d, link);
        /* It was in the index before its ack, and the index never shrinks: this cannot need
         * memory. */
        int rc = idmap_insert(&ch->unacked_by_tag, &d->by_tag, d->by_tag.id);
        WR_ASSERT(rc == 0);
    }
}

/* tx.commit: its publishes routed, its acks settled; answered by chan_tx_forwarded (net_int.h).
 * 0, or -1 after raising. */
static int
chan_on_tx_commit(struct chan *ch)
{
    struct conn *c = ch->conn;
    struct chan_fwd *cf = chan_fwd_new(ch, 0);
    if (cf == NULL)
        return chan_raise(ch, WIRE_INTERNAL_ERROR, WIRE_TX_COMMIT, "out of memory");
    c->store_paused++; /* the reply waits for every node's answer (chan_tx_forwarded) */
    ch->tx_fwd = cf;
    int rc = 0;
    struct tx_publish *tp;
    while (rc == 0 && (tp = STAILQ_FIRST(&ch->tx_publishes)) != NULL) {
        STAILQ_REMOVE_HEAD(&ch->tx_publishes, link);
        struct msg *msg = tp->msg;
        bool mandatory = tp->mandatory;
        free(tp);
        rc = chan_route(ch, msg, mandatory, 0);
    }
    ch->tx_fwd = NULL;
    if (rc < 0)
        chan_tx_discard_publishes(ch);
    else
        chan_settle_list(ch, &ch->tx_acks);
    chan_fwd_settle(cf, false); /* the commit's own hold: answered now, or at the last answer */
    if (rc < 0 || ch->state != CHAN_OPEN || c->state != CONN_OPEN)
        return -1;
    chan_wake_consumers(ch);
    return 0;
}

int
chan_on_tx_method(struct chan *ch, const struct wire_method *m)
{
    struct conn *c = ch->conn;
    struct wire_method ok = {0};
    switch (m->id) {
    case WIRE_TX_SELECT:
        if (ch->confirm_mode)
            return chan_raise(ch, WIRE_PRECONDITION_FAILED, m->id,
                              "cannot switch from confirm to tx mode");
        ch->tx_mode = true;
        ok.id = WIRE_TX_SELECT_OK;
        return conn_send(c, ch->id, &ok);
    case WIRE_TX_COMMIT:
        if (!ch->tx_mode)
            return chan_raise(ch, WIRE_PRECONDITION_FAILED, m->id, "channel is not transactional");
        return chan_on_tx_commit(ch);
    case WIRE_TX_ROLLBACK:
        if (!ch->tx_mode)
            return chan_raise(ch, WIRE_PRECONDITION_FAILED, m->id, "channel is not transactional");
        chan_tx_discard_publishes(ch);
        chan_tx_restore_acks(ch);
        chan_ack_timer_update(ch); /* older deliveries may be unacked again */
        ok.id = WIRE_TX_ROLLBACK_OK;
        return conn_send(c, ch->id, &ok);
    default:
        WR_ASSERT(!"chan_on_tx_method: not a tx method the server receives");
        return -1;
    }
}

int
chan_on_confirm_method(struct chan *ch, const struct wire_method *m)
{
    WR_ASSERT(m->id == WIRE_CONFIRM_SELECT);
    if (ch->tx_mode)
        return chan_raise(ch, WIRE_PRECONDITION_FAILED, m->id,
                          "cannot switch from tx to confirm mode");
    ch->confirm_mode = true;
    if (m->u.confirm_select.nowait)
        return 0;
    struct wire_method ok = {.id = WIRE_CONFIRM_SELECT_OK};
    return conn_send(ch->conn, ch->id, &ok);
}

int
chan_on_basic_method(struct chan *ch, const struct wire_method *m)
{
    switch (m->id) {
    case WIRE_BASIC_QOS:
        return chan_on_qos(ch, &m->u.basic_qos);
    case WIRE_BASIC_CONSUME:
        return chan_on_consume(ch, &m->u.basic_consume);
    case WIRE_BASIC_CANCEL:
        return chan_on_cancel(ch, &m->u.basic_cancel);
    case WIRE_BASIC_PUBLISH:
        return chan_publish_begin(ch, &m->u.basic_publish);
    case WIRE_BASIC_GET:
        if (chan_access_queue(ch, WIRE_BASIC_GET, AUTH_READ, m->u.basic_get.queue) < 0)
            return -1;
        return chan_get_answer(ch, m->u.basic_get.queue, m->u.basic_get.no_ack, true);
    case WIRE_BASIC_ACK:
        return chan_on_settle(ch, m->u.basic_ack.delivery_tag, m->u.basic_ack.multiple,
                              CHAN_SETTLE_ACK, m->id);
    case WIRE_BASIC_NACK:
        return chan_on_settle(ch, m->u.basic_nack.delivery_tag, m->u.basic_nack.multiple,
                              m->u.basic_nack.requeue ? CHAN_SETTLE_REQUEUE : CHAN_SETTLE_REJECT,
                              m->id);
    case WIRE_BASIC_REJECT:
        return chan_on_settle(ch, m->u.basic_reject.delivery_tag, false,
                              m->u.basic_reject.requeue ? CHAN_SETTLE_REQUEUE : CHAN_SETTLE_REJECT,
                              m->id);
    case WIRE_BASIC_RECOVER:
        return chan_on_recover(ch, m->u.basic_recover.requeue, true);
    case WIRE_BASIC_RECOVER_ASYNC:
        return chan_on_recover(ch, m->u.basic_recover_async.requeue, false);
    default:
        return conn_raise(ch->conn, WIRE_COMMAND_INVALID, m->id, "unimplemented method");
    }
}

/* Gives back to the queues what the closing channel holds of them: its unacked deliveries
 * (those settled in an uncommitted transaction too) are requeued, then its consumers are
 * cancelled. The channel takes no deliveries from here on (CHAN_CLOSING), so the messages
 * are back in place before a queue offers them to another consumer, and a single active
 * consumer's successor gets them in order, as in RabbitMQ. */
void
chan_give_back(struct chan *ch)
{
    ch->state = CHAN_CLOSING;
    chan_tx_restore_acks(ch);
    chan_requeue_unacked(ch);
    struct hmap_iter it;
    struct hmap_entry *he;
    hmap_iter_init(&it, &ch->consumers);
    while ((he = hmap_iter_next(&it)) != NULL)
        chan_cons_cancel(hmap_container_of(he, struct chan_cons, by_tag));
}

void
chan_release(struct chan *ch)
{
    if (ch->in_confirm_due) {
        TAILQ_REMOVE(&ch->conn->confirm_due, ch, confirm_link);
        ch->in_confirm_due = false;
    }
    chan_store_waits_release(ch);
    chan_topology_release(ch);
    chan_fwd_release(ch);
    relay_release(ch);
    msg_unref(&ch->publishing);
    chan_tx_discard_publishes(ch);
    chan_give_back(ch);
    chan_ack_timer_free(ch);
    hmap_clear(&ch->consumers);
    idmap_clear(&ch->unacked_by_tag);
    route_result_free(&ch->route);
}
