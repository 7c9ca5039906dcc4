/* The home side of the relay (relay.c's top comment): this node's queues served to consumers
 * on other nodes. A relay consumer stands for another node's consumer in its queue's round
 * robin, within the credit that node gives it; every delivery stays here until that node
 * settles it (struct relay_delivered), and goes back to the queue when the node is lost. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "net_int.h"
#include "relay.h"
#include "relay_int.h"
#include "warren/assert.h"
#include "warren/bytes.h"
#include "warren/durable.h"
#include "warren/log.h"
#include "warren/queue.h"
#include "warren/vhost.h"

static struct relay_cons *
relay_cons_find(struct relay_peer *p, uint64_t id)
{
    uint8_t key[8];
    bytes_put64(key, id);
    struct hmap_entry *he = hmap_find(&p->proxies, key, sizeof(key));
    return he != NULL ? hmap_container_of(he, struct relay_cons, by_id) : NULL;
}

static bool
relay_cons_can_take(struct cons *base)
{
    return ((struct relay_cons *)base)->credit > 0;
}

static uint32_t
relay_cons_unsettled(const struct cons *base)
{
    return (uint32_t)((const struct relay_cons *)base)->delivered.count;
}

/* Keeps e, delivered to rc, under a new delivery id. 0, or -1 on ENOMEM. */
static int
relay_keep(struct relay_cons *rc, struct qentry *e, uint64_t *id)
{
    struct relay_delivered *dv = malloc(sizeof(*dv));
    if (dv == NULL)
        return -1;
    dv->e = e;
    if (idmap_insert(&rc->delivered, &dv->by_id, rc->next_delivery + 1) < 0) {
        free(dv);
        return -1;
    }
    *id = ++rc->next_delivery;
    return 0;
}

/* Appends a delivery record of type ('D', or 'g' for a get) to p's batch: [id], extra_len
 * (at most 7) bytes of extra (a get's answer fields), then e's delivery and message. 0, or -1
 * on ENOMEM. */
static int
relay_send_delivery(struct net_relay *r, struct relay_peer *p, uint8_t type, uint64_t id,
                    uint64_t delivery, const struct qentry *e, const uint8_t *extra,
                    size_t extra_len)
{
    uint8_t head[8 + 7 + 13], rhdr[DURABLE_MSG_HDR_LEN];
    WR_ASSERT(extra_len <= 7);
    size_t n = 0;
    bytes_put64(head, id);
    n = 8;
    if (extra_len > 0) {
        memcpy(head + n, extra, extra_len);
        n += extra_len;
    }
    bytes_put64(head + n, delivery);
    head[n + 8] = e->redelivered;
    bytes_put32(head + n + 9, e->delivery_count);
    n += 13;
    struct iovec parts[1 + DURABLE_MSG_PARTS + 1];
    parts[0] = (struct iovec){head, n};
    durable_msg_parts(rhdr, e->msg, parts + 1);
    return relay_record(r, p, type, parts, 1 + DURABLE_MSG_PARTS);
}

static int
relay_cons_deliver(struct cons *base, struct qentry *e)
{
    struct relay_cons *rc = (struct relay_cons *)base;
    struct net_relay *r = rc->client->relay;
    uint64_t delivery = 0;
    if (relay_keep(rc, e, &delivery) < 0)
        return -1;
    if (relay_send_delivery(r, rc->client, 'D', rc->id, delivery, e, NULL, 0) < 0) {
        struct idmap_entry *ie = idmap_find(&rc->delivered, delivery);
        idmap_remove(&rc->delivered, ie);
        free(idmap_container_of(ie, struct relay_delivered, by_id));
        return -1;
    }
    rc->credit--;
    return 0;
}

/* Forgets rc's deliveries: requeued (its client is gone), or just freed once its queue was
 * deleted (their queue is NULL). The queue dispatches afterwards (the caller's). */
static void
relay_cons_drop_delivered(struct relay_cons *rc)
{
    struct idmap_iter it;
    struct idmap_entry *ie;
    idmap_iter_init(&it, &rc->delivered);
    while ((ie = idmap_iter_next(&it)) != NULL) {
        struct relay_delivered *dv = idmap_container_of(ie, struct relay_delivered, by_id);
        idmap_remove(&rc->delivered, ie);
        queue_cmd_requeue(dv->e);
        free(dv);
    }
    idmap_clear(&rc->delivered);
}

static void
relay_cons_free(struct relay_cons *rc)
{
    if (rc->id != 0)
        hmap_remove(&rc->client->proxies, &rc->by_id);
    relay_cons_drop_delivered(rc);
    free(rc);
}

static void
relay_cons_queue_deleted(struct cons *base)
{
    struct relay_cons *rc = (struct relay_cons *)base;
    uint8_t id[8];
    bytes_put64(id, rc->id);
    struct iovec part = {id, 8};
    relay_record(rc->client->relay, rc->client, 'Z', &part, 1); /* (ENOMEM: its node's
                                                                 * liveness check ends it) */
    relay_cons_free(rc);
}

static const struct cons_ops relay_cons_ops = {
    .can_take = relay_cons_can_take,
    .unsettled = relay_cons_unsettled,
    .deliver = relay_cons_deliver,
    .queue_deleted = relay_cons_queue_deleted,
};

void
relay_home_queue_lost(struct queue *q)
{
    struct cons *c, *next;
    for (c = TAILQ_FIRST(&q->consumers); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->ops == &relay_cons_ops) {
            queue_consumer_remove(c);
            relay_cons_queue_deleted(c);
        }
    }
}

/* The queue named by a request's body at *pp (after its id), this node's, for peer p: NULL
 * with *code and why set when it is missing, not here, or exclusive to a connection of
 * another node than p (p's own node checks which of its connections owns it). */
static struct queue *
relay_queue(struct net_relay *r, const struct relay_peer *p, const uint8_t **pp, const uint8_t *end,
            uint16_t *code, char *why, size_t whylen)
{
    const uint8_t *b = *pp;
    struct wire_str vname, qname;
    *code = WIRE_INTERNAL_ERROR;
    snprintf(why, whylen, "a request from another node does not decode");
    if (b >= end || (size_t)(end - b) < 1u + *b)
        return NULL;
    vname = (struct wire_str){b + 1, *b};
    b += 1 + *b;
    if (b >= end || (size_t)(end - b) < 1u + *b)
        return NULL;
    qname = (struct wire_str){b + 1, *b};
    b += 1 + *b;
    *pp = b;
    struct vhost *vh = vhost_find(r->s->env.vhosts, vname);
    struct queue *q = vh != NULL ? vhost_queue_find(vh, qname) : NULL;
    *code = WIRE_NOT_FOUND;
    if (q == NULL) {
        snprintf(why, whylen, "NOT_FOUND - no queue '%.*s' in vhost '%.*s'", WIRE_STR_ARG(qname),
                 WIRE_STR_ARG(vname));
        return NULL;
    }
    if (q->home != NULL) {
        snprintf(why, whylen, "NOT_FOUND - queue '%s' in vhost '%s' lives on node %s", q->name,
                 vh->name, q->home);
        return NULL;
    }
    /* Exclusive to a connection of this node, or of another than p: never p's. */
    if (q->owner != NULL && (q->owner_node == NULL || strcmp(q->owner_node, p->node) != 0)) {
        *code = WIRE_RESOURCE_LOCKED;
        snprintf(why, whylen,
                 "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in "
                 "vhost '%s'. It could be originally declared on another connection or the "
                 "exclusive property value does not match that of the original declaration.",
                 q->name, vh->name);
        return NULL;
    }
    return q;
}

/* Answers 'c' or 'g' (type) for id with code and why (code 0: consume-ok). */
static void
relay_answer_error(struct net_relay *r, struct relay_peer *p, uint8_t type, uint64_t id,
                   uint16_t code, const char *why)
{
    uint8_t head[10];
    bytes_put64(head, id);
    bytes_put16(head + 8, code);
    /* The text without RabbitMQ's "CODE_NAME - " prefix: the consumer's node raises it. */
    const char *dash = code != 0 ? strstr(why, " - ") : NULL;
    const char *text = dash != NULL ? dash + 3 : why;
    struct iovec parts[2] = {{head, sizeof(head)}, {(void *)text, strlen(text)}};
    relay_record(r, p, type, parts, 2);
}

/* 'C' from p. */
void
relay_on_consume(struct net_relay *r, struct relay_peer *p, const uint8_t *b, const uint8_t *end)
{
    if (end - b < 8)
        return;
    uint64_t id = bytes_get64(b);
    const uint8_t *rest = b + 8;
    uint16_t code;
    char why[600];
    struct queue *q = relay_queue(r, p, &rest, end, &code, why, sizeof(why));
    if (q != NULL && end - rest < 9) {
        q = NULL;
        code = WIRE_INTERNAL_ERROR;
    }
    uint8_t flags = q != NULL ? rest[4] : 0;
    if (q != NULL && (queue_has_exclusive_consumer(q) ||
                      ((flags & RELAY_EXCLUSIVE) &&
                       (q->n_consumers > 0 || q->settings.single_active_consumer)))) {
        snprintf(why, sizeof(why), "ACCESS_REFUSED - queue '%s' in vhost '%s' in exclusive use",
                 q->name, q->vhost->name);
        code = WIRE_ACCESS_REFUSED;
        q = NULL;
    }
    struct relay_cons *rc =
        q != NULL && relay_cons_find(p, id) == NULL ? calloc(1, sizeof(*rc)) : NULL;
    if (rc != NULL) {
        rc->id = id;
        bytes_put64(rc->key, id);
        if (hmap_insert(&p->proxies, &rc->by_id, rc->key, sizeof(rc->key)) < 0) {
            free(rc);
            rc = NULL;
        }
    }
    if (rc == NULL) {
        if (q != NULL) {
            code = WIRE_RESOURCE_ERROR;
            snprintf(why, sizeof(why), "RESOURCE_ERROR - out of memory");
        }
        relay_answer_error(r, p, 'c', id, code, why);
        return;
    }
    rc->client = p;
    rc->credit = bytes_get32(rest);
    rc->base.ops = &relay_cons_ops;
    rc->base.exclusive = (flags & RELAY_EXCLUSIVE) != 0;
    rc->base.priority = (int32_t)bytes_get32(rest + 5);
    queue_used(q);
    queue_consumer_add(q, &rc->base);
    relay_answer_error(r, p, 'c', id, 0, "");
    queue_dispatch(q); /* after the answer: deliveries follow it */
}

/* Removes rc from its queue (an auto-delete queue losing its last consumer goes). */
static void
relay_cons_unlink(struct relay_cons *rc)
{
    struct queue *q = rc->base.queue;
    bool delete_queue = q != NULL && queue_consumer_remove(&rc->base);
    rc->base.queue = NULL;
    if (delete_queue)
        vhost_queue_delete_self(q);
}

/* 'X' from p: the consumer goes; what it was delivered comes back, as its channel settles
 * it (each 'K' finds the record still), or at once when none of it reached p. */
void
relay_on_cancel(struct relay_peer *p, const uint8_t *b, const uint8_t *end)
{
    struct relay_cons *rc = end - b >= 9 ? relay_cons_find(p, bytes_get64(b)) : NULL;
    if (rc == NULL || rc->base.queue == NULL)
        return;
    struct queue *q = rc->base.queue;
    relay_cons_unlink(rc); /* (in a cluster a queue deletes itself through the log: later) */
    if (rc->delivered.count == 0 || (b[8] & RELAY_UNSEEN))
        relay_cons_free(rc); /* (requeues what it holds) */
    queue_dispatch(q);
}

/* 'K' from p. */
void
relay_on_settle(struct relay_peer *p, const uint8_t *b, const uint8_t *end)
{
    if (end - b < 17)
        return;
    uint64_t id = bytes_get64(b), delivery = bytes_get64(b + 8);
    uint8_t how = b[16];
    struct relay_cons *rc = id == 0 ? p->gets : relay_cons_find(p, id);
    if (rc == NULL)
        return;
    if (how == RELAY_CREDIT) {
        rc->credit += (uint32_t)delivery;
        if (rc->base.queue != NULL)
            queue_consumer_wake(&rc->base);
        return;
    }
    bool credit = (how & RELAY_NO_CREDIT) == 0;
    how &= (uint8_t)~RELAY_NO_CREDIT;
    struct idmap_entry *ie = idmap_find(&rc->delivered, delivery);
    struct queue *q = NULL;
    if (ie != NULL) {
        struct relay_delivered *dv = idmap_container_of(ie, struct relay_delivered, by_id);
        idmap_remove(&rc->delivered, ie);
        q = dv->e->queue;
        if (how == CHAN_SETTLE_REQUEUE)
            queue_cmd_requeue(dv->e);
        else if (how == CHAN_SETTLE_REJECT)
            queue_cmd_reject(dv->e);
        else
            queue_cmd_settle(dv->e);
        free(dv);
    }
    if (id == 0)
        return;
    rc->credit += credit;
    if (rc->base.queue == NULL) { /* cancelled: it goes with its last delivery */
        if (rc->delivered.count == 0)
            relay_cons_free(rc);
        if (q != NULL && how == CHAN_SETTLE_REQUEUE)
            queue_dispatch(q);
        return;
    }
    queue_consumer_wake(&rc->base); /* credit again (and a requeue to hand out) */
}

/* 'G' from p. */
void
relay_on_get(struct net_relay *r, struct relay_peer *p, const uint8_t *b, const uint8_t *end)
{
    if (end - b < 8)
        return;
    uint64_t id = bytes_get64(b);
    const uint8_t *rest = b + 8;
    uint16_t code;
    char why[600];
    struct queue *q = relay_queue(r, p, &rest, end, &code, why, sizeof(why));
    if (q == NULL) {
        relay_answer_error(r, p, 'g', id, code, why);
        return;
    }
    if (p->gets == NULL && (p->gets = calloc(1, sizeof(*p->gets))) != NULL)
        p->gets->client = p; /* consumer 0: never in a queue */
    queue_used(q);
    struct qentry *e = q->n_ready > 0 ? queue_cmd_deliver(q) : NULL;
    uint8_t extra[7] = {0, 0, e != NULL};
    uint64_t delivery = 0;
    if (e != NULL && (p->gets == NULL || relay_keep(p->gets, e, &delivery) < 0)) {
        queue_delivery_undo(e);
        relay_answer_error(r, p, 'g', id, WIRE_RESOURCE_ERROR, "out of memory");
        return;
    }
    uint64_t ready = q->n_ready;
    bytes_put32(extra + 3, ready > UINT32_MAX ? UINT32_MAX : (uint32_t)ready);
    if (e == NULL) {
        uint8_t head[8 + 7];
        bytes_put64(head, id);
        memcpy(head + 8, extra, sizeof(extra));
        struct iovec part = {head, sizeof(head)};
        relay_record(r, p, 'g', &part, 1);
        return;
    }
    relay_send_delivery(r, p, 'g', id, delivery, e, extra, sizeof(extra));
}

/* 'U' or 'N' from p: the queue purged, or counted, here as on a node alone; answered 'u' or
 * 'n'. */
void
relay_on_queue_request(struct net_relay *r, struct relay_peer *p, uint8_t type, const uint8_t *b,
                       const uint8_t *end)
{
    if (end - b < 8)
        return;
    uint64_t id = bytes_get64(b);
    const uint8_t *rest = b + 8;
    uint8_t answer = type == 'U' ? 'u' : 'n';
    uint16_t code;
    char why[600];
    struct queue *q = relay_queue(r, p, &rest, end, &code, why, sizeof(why));
    if (q == NULL) {
        relay_answer_error(r, p, answer, id, code, why);
        return;
    }
    uint8_t out[8 + 2 + 8];
    bytes_put64(out, id);
    bytes_put16(out + 8, 0);
    uint64_t n = type == 'U' ? queue_cmd_purge(q) : q->n_ready;
    bytes_put32(out + 10, n > UINT32_MAX ? UINT32_MAX : (uint32_t)n);
    if (type == 'N') { /* [consumers][messages] */
        memcpy(out + 14, out + 10, 4);
        bytes_put32(out + 10, q->n_consumers);
    }
    struct iovec part = {out, type == 'U' ? 14u : 18u};
    relay_record(r, p, answer, &part, 1); /* (ENOMEM: the asking node waits until this node
                                           * looks down to it) */
}

/* p, consuming from here, is gone or restarted: its consumers go, what they were delivered
 * is requeued. */
void
relay_client_lost(struct relay_peer *p)
{
    struct hmap_iter it;
    struct hmap_entry *he;
    struct route_result touched = {0};
    hmap_iter_init(&it, &p->proxies);
    while ((he = hmap_iter_next(&it)) != NULL) {
        struct relay_cons *rc = hmap_container_of(he, struct relay_cons, by_id);
        struct queue *q = rc->base.queue;
        relay_cons_unlink(rc);
        relay_cons_free(rc);
        if (q != NULL && route_result_add(&touched, q) < 0)
            log_msg(LOG_ERROR, "cluster: out of memory: queue '%s' redelivers on its next event",
                    q->name);
    }
    if (p->gets != NULL) {
        relay_cons_drop_delivered(p->gets);
        free(p->gets);
        p->gets = NULL;
    }
    /* (an auto-delete queue left without consumers deletes itself through the log: later) */
    for (uint32_t i = 0; i < touched.n; i++)
        queue_dispatch(touched.queues[i]);
    route_result_free(&touched);
}
