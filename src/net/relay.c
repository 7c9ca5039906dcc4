/* Consumers of other nodes' queues, in a cluster: basic.consume and basic.get on a queue that
 * lives on another node (queue.home) are served by that node, its home, over the node links.
 * On the home (relay_home.c), a relay consumer (struct relay_cons) stands for the other node's
 * consumer in the queue's round robin like any consumer, within the credit that node gave it; on
 * the consumer's node, what it delivers becomes the channel's deliveries (relay entries: qentries
 * with no queue, marked relayed), whose acks, nacks and rejects go back to the home.
 *
 * Records between two nodes go in one message per direction per loop turn (or RELAY_BATCH_MAX
 * bytes), [u8 'R'][u64 the sender's incarnation] then records [u8 type][u32 length][body]:
 *   consumer's node to home:
 *     'C' consume [u64 id][u8 vhost len][vhost][u8 queue len][queue][u32 credit][u8 flags]
 *                 [i32 priority]                  flags: RELAY_NO_ACK, RELAY_EXCLUSIVE
 *     'X' cancel  [u64 id][u8 flags]              RELAY_UNSEEN: none of its deliveries
 *                                                 came (its consume-ok was lost): they go back
 *                                                 at once, not as the channel settles them
 *     'K' settle  [u64 id][u64 delivery][u8 how]  how: enum chan_settle, one credit back
 *                                                 unless RELAY_NO_CREDIT is or'ed in; or
 *                                                 RELAY_CREDIT: delivery is the credit given
 *                                                 back (no_ack deliveries written out since)
 *     'G' get     [u64 request][u8 vhost len][vhost][u8 queue len][queue]
 *     'U' purge   [u64 request][u8 vhost len][vhost][u8 queue len][queue]
 *     'N' counts  [u64 request][u8 vhost len][vhost][u8 queue len][queue]
 *     'P' ping    ()                              answered with a message of no record
 *   home to consumer's node:
 *     'c' consumed [u64 id][u16 code][text]       code 0: consume-ok; else the AMQP error
 *     'D' deliver [u64 id][u64 delivery][u8 redelivered][u32 delivery count][record]
 *     'Z' gone    [u64 id]                        the queue was deleted: basic.cancel
 *     'g' got     [u64 request][u16 code] then code 0: [u8 found][u32 message count] and if
 *                 found [u64 delivery][u8 redelivered][u32 delivery count][record]; else text
 *     'u' purged  [u64 request][u16 code] then code 0: [u32 messages purged]; else text
 *     'n' counted [u64 request][u16 code] then code 0: [u32 consumers][u32 ready messages];
 *                 else text
 * (purge and counts are relay_req.c's, but for the home's answer, here)
 * The home keeps every delivery until the consumer's node settles it, no_ack ones too (that
 * node acks them once written to its client): a delivery that finds its consumer gone (a
 * cancel crossed it) or its node dead goes back to the queue, never lost between nodes. A
 * get's delivery is settled as consumer 0's. The consumer's node pings each home it consumes
 * from every RELAY_CHECK_MS: a peer whose incarnation changed restarted, and forgot what this
 * node had there (its consumers, its deliveries), as this node forgets what it had here.
 *
 * Failure: a home that sees a consumer's node not running, or running another incarnation,
 * requeues what it delivered there (redelivered) and drops its consumers; a consumer's node
 * that sees a home not running, or restarted, cancels its consumers there (basic.cancel for
 * clients that announced consumer_cancel_notify, as for a deleted queue) and fails its gets
 * and consumes under way. Deliveries its clients then settle are lost messages only if the
 * home's requeue was: the home decides. A consume unanswered for RELAY_ANSWER_MS (its answer
 * lost with a link up one way only) is cancelled there too, what it was given going back.
 *
 * Replicated queues (quorum.c) move from home to home: their consumers follow instead of
 * being cancelled. One whose home is lost (or says the queue is no longer served there: 'Z',
 * or refuses it with 404) waits, parked, in this node's copy of the queue (chan_cons_park);
 * once the metadata log names the next home it consumes there (relay_follow), or right there
 * when that is this node; relay_on_check retries those whose home was not running. */
#include "config.h"

#include "relay.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <event2/event.h>

#include "net_int.h"
#include "relay_int.h"
#include "warren/assert.h"
#include "warren/bytes.h"
#include "warren/cluster.h"
#include "warren/durable.h"
#include "warren/log.h"
#include "warren/msg.h"
#include "warren/queue.h"
#include "warren/vhost.h"

/* ---- both sides: the peers and their batches ---- */

/* An entry delivered here from another node's queue (a qentry marked relayed). */
struct relay_entry {
    struct qentry e; /* first: the channel holds &e */
    struct relay_peer *home;
    uint64_t id;       /* its consumer there (0: a get) */
    uint64_t delivery; /* its id there */
};

static uint64_t
relay_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct relay_peer *
relay_peer(struct net_relay *r, const char *node)
{
    for (struct relay_peer *p = r->peers; p != NULL; p = p->next)
        if (strcmp(p->node, node) == 0)
            return p;
    struct relay_peer *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    snprintf(p->node, sizeof(p->node), "%s", node);
    p->relay = r;
    hmap_init(&p->proxies);
    p->next = r->peers;
    r->peers = p;
    return p;
}

static int
relay_grow(struct relay_peer *p, size_t n)
{
    if (p->out == NULL) {
        p->cap = 4096;
        while (p->cap < RELAY_HDR + n)
            p->cap *= 2;
        if ((p->out = malloc(p->cap)) == NULL)
            return -1;
        p->len = RELAY_HDR;
    }
    if (p->len + n > p->cap) {
        size_t cap = p->cap * 2;
        while (cap < p->len + n)
            cap *= 2;
        uint8_t *b = realloc(p->out, cap);
        if (b == NULL)
            return -1;
        p->out = b;
        p->cap = cap;
    }
    return 0;
}

/* Sends p's batch (a ping when it has no record). */
static void
relay_send(struct net_relay *r, struct relay_peer *p)
{
    if (p->out == NULL && relay_grow(p, 0) < 0)
        return;
    p->out[0] = 'R';
    bytes_put64(p->out + 1, r->s->incarnation);
    uint8_t *b = p->out;
    size_t len = p->len;
    p->out = NULL;
    p->len = p->cap = 0;
    if (cluster_send(r->s->env.cluster, p->node, b, len) < 0 && errno != ENOTCONN)
        log_msg(LOG_WARNING, "cluster: cannot send to %s: %s", p->node, strerror(errno));
    /* (lost with a link that is down: the liveness checks on both sides settle it) */
}

/* Appends a record of type with len bytes of body (the parts given) to p's batch. 0, or -1
 * on ENOMEM. */
int
relay_record(struct net_relay *r, struct relay_peer *p, uint8_t type, const struct iovec *parts,
             int n_parts)
{
    size_t len = 0;
    for (int i = 0; i < n_parts; i++)
        len += parts[i].iov_len;
    if (relay_grow(p, 5 + len) < 0)
        return -1;
    p->out[p->len] = type;
    bytes_put32(p->out + p->len + 1, (uint32_t)len);
    p->len += 5;
    for (int i = 0; i < n_parts; i++) {
        if (parts[i].iov_len > 0)
            memcpy(p->out + p->len, parts[i].iov_base, parts[i].iov_len);
        p->len += parts[i].iov_len;
    }
    if (p->len >= RELAY_BATCH_MAX)
        relay_send(r, p);
    else
        event_active(r->flush, EV_TIMEOUT, 0);
    return 0;
}

static void
relay_on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct net_relay *r = arg;
    (void)fd;
    (void)what;
    for (struct relay_peer *p = r->peers; p != NULL; p = p->next)
        if (p->out != NULL)
            relay_send(r, p);
}

/* A record with a u64 id and a short name pair (vhost, queue), for 'C' and 'G'. */
static size_t
relay_put_names(uint8_t *buf, uint64_t id, const char *vhost, const struct queue *q)
{
    size_t n = 0, vlen = strlen(vhost);
    bytes_put64(buf, id);
    n += 8;
    buf[n++] = (uint8_t)vlen;
    memcpy(buf + n, vhost, vlen);
    n += vlen;
    buf[n++] = (uint8_t)q->name_len;
    memcpy(buf + n, q->name, q->name_len);
    return n + q->name_len;
}

/* ---- the consumer's side ---- */

static struct relay_sub *
relay_sub_find(struct net_relay *r, uint64_t id)
{
    uint8_t key[8];
    bytes_put64(key, id);
    struct hmap_entry *he = hmap_find(&r->subs, key, sizeof(key));
    return he != NULL ? hmap_container_of(he, struct relay_sub, by_id) : NULL;
}

/* A new subscription to home, listed under a new id. NULL on ENOMEM. */
static struct relay_sub *
relay_sub_new(struct net_relay *r, struct relay_peer *home)
{
    struct relay_sub *sub = calloc(1, sizeof(*sub));
    if (sub == NULL)
        return NULL;
    sub->id = ++r->next_id;
    bytes_put64(sub->key, sub->id);
    sub->home = home;
    if (hmap_insert(&r->subs, &sub->by_id, sub->key, sizeof(sub->key)) < 0) {
        free(sub);
        return NULL;
    }
    home->n_subs++;
    sub->asked_ms = relay_now_ms();
    return sub;
}

static void
relay_sub_free(struct net_relay *r, struct relay_sub *sub)
{
    hmap_remove(&r->subs, &sub->by_id);
    sub->home->n_subs--;
    free(sub->user);
    free(sub);
}

/* The channel waiting for sub's answer reads its input again. */
static void
relay_sub_resume(struct relay_sub *sub)
{
    if (sub->ch == NULL)
        return;
    struct conn *c = sub->ch->conn;
    LIST_REMOVE(sub, wait_link);
    sub->ch = NULL;
    c->store_paused--;
    conn_resume(c);
}

void
relay_sub_wait(struct relay_sub *sub, struct chan *ch)
{
    sub->ch = ch;
    LIST_INSERT_HEAD(&ch->relay_waits, sub, wait_link);
    ch->conn->store_paused++; /* the input waits for the answer (relay_sub_resume) */
}

struct net_server *
relay_sub_server(const struct relay_sub *sub)
{
    return sub->home->relay->s;
}

void
relay_sub_end(struct relay_sub *sub)
{
    relay_sub_resume(sub);
    relay_sub_free(sub->home->relay, sub);
}

/* Fills err with code and the text (cut at its size). */
static void
relay_fail(struct net_decl_err *err, uint16_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
}

/* Fills err with the error for a queue whose home node cannot be reached, as RabbitMQ words
 * it. */
static void
relay_home_down(struct net_decl_err *err, const char *vhost, const char *queue, const char *home)
{
    relay_fail(err, WIRE_NOT_FOUND,
               "home node '%s' of queue '%s' in vhost '%s' is down or inaccessible", home, queue,
               vhost);
}

/* A new sub of type for q (in vh): its home's. NULL with err: the home is down, or ENOMEM. */
static struct relay_sub *
relay_sub_make(struct net_server *s, const struct vhost *vh, const struct queue *q, uint8_t type,
               struct net_decl_err *err)
{
    struct net_relay *r = s->relay;
    struct relay_peer *home = relay_peer(r, q->home);
    if (home != NULL && !cluster_node_running(s->env.cluster, q->home)) {
        relay_home_down(err, vh->name, q->name, q->home);
        return NULL;
    }
    struct relay_sub *sub = home != NULL ? relay_sub_new(r, home) : NULL;
    if (sub == NULL) {
        relay_fail(err, WIRE_RESOURCE_ERROR, "out of memory");
        return NULL;
    }
    sub->type = type;
    sub->qlen = (uint8_t)q->name_len;
    memcpy(sub->queue, q->name, q->name_len);
    snprintf(sub->vhost, sizeof(sub->vhost), "%s", vh->name);
    return sub;
}

/* Sends sub's record: [u64 id][vhost][queue] then tail_len bytes at tail. 0, or -1 with err
 * on ENOMEM (sub freed). */
static int
relay_sub_send(struct relay_sub *sub, const struct queue *q, const uint8_t *tail, size_t tail_len,
               struct net_decl_err *err)
{
    struct net_relay *r = sub->home->relay;
    uint8_t head[8 + 2 + 2 * 255];
    size_t n = relay_put_names(head, sub->id, sub->vhost, q);
    struct iovec parts[2] = {{head, n}, {(void *)tail, tail_len}};
    if (relay_record(r, sub->home, sub->type, parts, 2) < 0) {
        relay_sub_free(r, sub);
        relay_fail(err, WIRE_RESOURCE_ERROR, "out of memory");
        return -1;
    }
    return 0;
}

struct relay_sub *
relay_request(struct net_server *s, const struct vhost *vh, const struct queue *q, uint8_t type,
              struct net_decl_err *err)
{
    struct relay_sub *sub = relay_sub_make(s, vh, q, type, err);
    if (sub == NULL || relay_sub_send(sub, q, NULL, 0, err) < 0)
        return NULL;
    return sub;
}

/* Sends 'C' or 'G' (sub's type) for sub, whose channel's input then waits for the answer. 0,
 * or -1 after raising. */
static int
relay_ask(struct relay_sub *sub, struct chan *ch, uint32_t method_id, const struct queue *q,
          const uint8_t *tail, size_t tail_len)
{
    struct net_decl_err err;
    if (relay_sub_send(sub, q, tail, tail_len, &err) < 0)
        return chan_raise_decl(ch, method_id, &err);
    relay_sub_wait(sub, ch);
    return 0;
}

/* A new sub of type for q's home, for method_id on ch. NULL after raising. */
static struct relay_sub *
relay_sub_for(struct chan *ch, const struct queue *q, uint8_t type, uint32_t method_id)
{
    struct net_decl_err err;
    struct relay_sub *sub = relay_sub_make(ch->conn->server, ch->conn->vhost, q, type, &err);
    if (sub == NULL)
        chan_raise_decl(ch, method_id, &err);
    return sub;
}

#define RELAY_CONSUME_TAIL 9
/* The end of cc's 'C' record: its credit, flags and priority. */
static void
relay_consume_tail(const struct chan_cons *cc, uint8_t *tail)
{
    uint32_t credit = cc->prefetch > 0 ? cc->prefetch : cc->ch->prefetch_channel;
    if (cc->no_ack || credit == 0 || credit > RELAY_WINDOW)
        credit = RELAY_WINDOW;
    bytes_put32(tail, credit);
    tail[4] = cc->base.exclusive ? RELAY_EXCLUSIVE : 0;
    bytes_put32(tail + 5, (uint32_t)cc->base.priority);
}

int
relay_consume(struct chan *ch, struct chan_cons *cc, struct queue *q, bool no_wait)
{
    if (q->group_id != 0 && !cluster_node_running(ch->conn->server->env.cluster, q->home)) {
        /* A replicated queue between two leaders: the consumer is there already, and waits
         * for the next (the client sees a queue that delivers nothing for a moment). */
        if (!no_wait && chan_send_consume_ok(ch, cc) < 0)
            return -1;
        chan_cons_park(cc, q);
        return 0;
    }
    struct relay_sub *sub = relay_sub_for(ch, q, 'C', WIRE_BASIC_CONSUME);
    if (sub == NULL)
        return -1;
    sub->cc = cc;
    sub->no_wait = no_wait;
    cc->relay = sub;
    uint8_t tail[RELAY_CONSUME_TAIL];
    relay_consume_tail(cc, tail);
    return relay_ask(sub, ch, WIRE_BASIC_CONSUME, q, tail, sizeof(tail));
}

/* This node's copy of sub's queue if it is replicated (it moves from home to home), else NULL. */
static struct queue *
relay_sub_replicated(struct net_relay *r, const struct relay_sub *sub)
{
    struct vhost *vh =
        vhost_find(r->s->env.vhosts,
                   (struct wire_str){(const uint8_t *)sub->vhost, (uint32_t)strlen(sub->vhost)});
    struct queue *q =
        vh != NULL ? vhost_queue_find(vh, (struct wire_str){(const uint8_t *)sub->queue, sub->qlen})
                   : NULL;
    return q != NULL && q->group_id != 0 ? q : NULL;
}

/* sub, a consumer of a replicated queue, lost its home (or its home's answer), or was refused by
 * the next one: unless the queue is gone here, it waits in this node's copy of the queue for the
 * next home (chan_cons_park), its consume-ok sent if its channel waited for it. Returns
 * whether it did (sub freed); false: it is to be cancelled. */
static bool
relay_park(struct net_relay *r, struct relay_sub *sub)
{
    struct chan_cons *cc = sub->cc;
    struct queue *q = cc != NULL ? relay_sub_replicated(r, sub) : NULL;
    if (q == NULL)
        return false;
    struct chan *ch = sub->ch;
    bool answer = ch != NULL && relay_sub_open(sub) && !sub->no_wait;
    if (ch != NULL) /* a consume that waited for its home's answer: it has one now */
        relay_sub_resume(sub);
    cc->relay = NULL;
    relay_sub_free(r, sub);
    if (answer && chan_send_consume_ok(ch, cc) < 0)
        return true; /* (the connection goes, and the consumer with it) */
    chan_cons_park(cc, q);
    return true;
}

void
relay_follow(struct net_server *s, struct queue *q)
{
    struct net_relay *r = s->relay;
    if (r == NULL || q->home == NULL || !cluster_node_running(s->env.cluster, q->home))
        return; /* served here, or its home is not up: the consumers wait where they are */
    struct cons *c, *next;
    for (c = TAILQ_FIRST(&q->consumers); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        struct chan_cons *cc = chan_cons_of(c);
        if (cc == NULL)
            continue;
        struct net_decl_err err;
        struct relay_sub *sub = relay_sub_make(s, q->vhost, q, 'C', &err);
        uint8_t tail[RELAY_CONSUME_TAIL];
        if (sub == NULL)
            return; /* out of memory: they wait, and follow the next home */
        queue_consumer_remove(c);
        sub->cc = cc;
        sub->follows = true;
        cc->relay = sub;
        relay_consume_tail(cc, tail);
        if (relay_sub_send(sub, q, tail, sizeof(tail), &err) < 0) {
            cc->relay = NULL; /* (sub freed) */
            chan_cons_park(cc, q);
            return;
        }
    }
}

int
relay_get(struct chan *ch, const struct queue *q, bool no_ack)
{
    struct relay_sub *sub = relay_sub_for(ch, q, 'G', WIRE_BASIC_GET);
    if (sub == NULL)
        return -1;
    sub->no_ack = no_ack;
    return relay_ask(sub, ch, WIRE_BASIC_GET, q, NULL, 0);
}

void
relay_cancel(struct chan_cons *cc)
{
    struct relay_sub *sub = cc->relay;
    struct net_relay *r = cc->ch->conn->server->relay;
    uint8_t b[9];
    bytes_put64(b, sub->id);
    b[8] = 0;
    struct iovec part = {b, sizeof(b)};
    if (relay_record(r, sub->home, 'X', &part, 1) < 0)
        log_msg(LOG_ERROR,
                "cluster: out of memory: consumer %s stays on %s until the links "
                "say this node restarted",
                cc->tag, sub->home->node);
    if (sub->ch != NULL) /* cancelled before its consume-ok: the channel is going */
        LIST_REMOVE(sub, wait_link);
    cc->relay = NULL;
    relay_sub_free(r, sub);
}

/* Sends 'K' for delivery of consumer id on home: how (or RELAY_CREDIT). */
static void
relay_send_settle(struct net_relay *r, struct relay_peer *home, uint64_t id, uint64_t delivery,
                  uint8_t how)
{
    uint8_t b[17];
    bytes_put64(b, id);
    bytes_put64(b + 8, delivery);
    b[16] = how;
    struct iovec part = {b, sizeof(b)};
    if (relay_record(r, home, 'K', &part, 1) < 0)
        log_msg(LOG_ERROR,
                "cluster: out of memory: a delivery from %s stays unsettled there "
                "until this channel closes",
                home->node);
}

void
relay_settle(struct net_server *s, struct qentry *e, enum chan_settle how, bool credit)
{
    struct relay_entry *re = (struct relay_entry *)e;
    relay_send_settle(s->relay, re->home, re->id, re->delivery,
                      (uint8_t)how | (credit ? 0 : RELAY_NO_CREDIT));
    msg_unref(&re->e.msg);
    free(re);
}

void
relay_release(struct chan *ch)
{
    struct relay_sub *sub;
    while ((sub = LIST_FIRST(&ch->relay_waits)) != NULL) {
        LIST_REMOVE(sub, wait_link);
        sub->ch = NULL; /* a get's answer finds nobody: its delivery is requeued there */
    }
}

void
relay_credit(struct chan_cons *cc, uint32_t n)
{
    if (cc->relay != NULL && n > 0)
        relay_send_settle(cc->ch->conn->server->relay, cc->relay->home, cc->relay->id, n,
                          RELAY_CREDIT);
}

bool
relay_sub_open(const struct relay_sub *sub)
{
    return sub->ch != NULL && sub->ch->state == CHAN_OPEN && sub->ch->conn->state == CONN_OPEN;
}

/* 'c' for sub. */
static void
relay_on_consumed(struct net_relay *r, struct relay_sub *sub, uint16_t code, struct wire_str text)
{
    struct chan *ch = sub->ch;
    struct chan_cons *cc = sub->cc;
    if (cc != NULL && sub->follows) {
        /* A consumer following its queue's home: there now, or waiting for the next one. */
        if (code == 0)
            sub->established = true;
        else if (!relay_park(r, sub)) {
            cc->relay = NULL;
            relay_sub_free(r, sub);
            chan_relay_cancelled(cc);
        }
        return;
    }
    if (ch == NULL || cc == NULL)
        return; /* the channel went: its cancel followed the consume there */
    if (code == WIRE_NOT_FOUND && relay_park(r, sub))
        return; /* a replicated queue whose home moved meanwhile: it follows it */
    relay_sub_resume(sub);
    if (ch->state != CHAN_OPEN || ch->conn->state != CONN_OPEN)
        return;
    if (code == 0) {
        sub->established = true;
        if (!sub->no_wait)
            chan_send_consume_ok(ch, cc);
        return;
    }
    /* Refused there: the consumer never was (nothing was sent to cancel). */
    cc->relay = NULL;
    relay_sub_free(r, sub);
    chan_cons_free(cc);
    if (wire_reply_is_hard(code))
        conn_raise(ch->conn, code, WIRE_BASIC_CONSUME, "%.*s", WIRE_STR_ARG(text));
    else
        chan_raise(ch, code, WIRE_BASIC_CONSUME, "%.*s", WIRE_STR_ARG(text));
}

/* The record of a delivery at p (len bytes: [u64 delivery][u8 redelivered][u32 count]
 * [record]) as a relay entry of home's consumer id. NULL if it does not decode, or ENOMEM. */
static struct relay_entry *
relay_entry_new(struct relay_peer *home, uint64_t id, const uint8_t *p, size_t len)
{
    if (len < 13)
        return NULL;
    struct relay_entry *re = calloc(1, sizeof(*re));
    if (re == NULL || (re->e.msg = durable_msg_from_record(p + 13, len - 13)) == NULL) {
        free(re);
        return NULL;
    }
    re->home = home;
    re->id = id;
    re->delivery = bytes_get64(p);
    re->e.redelivered = p[8] != 0;
    re->e.delivery_count = bytes_get32(p + 9);
    re->e.relayed = true;
    return re;
}

/* 'D' for consumer id from home (p: after the id). */
static void
relay_on_deliver(struct net_relay *r, struct relay_peer *home, uint64_t id, const uint8_t *p,
                 size_t len)
{
    struct relay_sub *sub = relay_sub_find(r, id);
    struct chan_cons *cc = sub != NULL && sub->home == home ? sub->cc : NULL;
    struct relay_entry *re = cc != NULL ? relay_entry_new(home, id, p, len) : NULL;
    if (re == NULL || chan_relay_deliver(cc, &re->e) < 0) {
        /* Nobody to take it (cancelled, channel gone, out of memory): back to its queue. */
        if (re != NULL) {
            msg_unref(&re->e.msg);
            free(re);
        }
        if (len >= 8)
            relay_send_settle(r, home, id, bytes_get64(p), CHAN_SETTLE_REQUEUE);
    }
}

/* 'g' for sub (p: after the request id). */
static void
relay_on_got(struct net_relay *r, struct relay_sub *sub, const uint8_t *p, size_t len)
{
    struct chan *ch = sub->ch;
    bool open = relay_sub_open(sub), no_ack = sub->no_ack;
    struct relay_peer *home = sub->home;
    uint16_t code = len >= 7 ? bytes_get16(p) : WIRE_INTERNAL_ERROR;
    /* A replicated queue between two homes (this one no longer serves it): empty, as a member
     * that does not serve it answers, rather than a channel error. */
    bool moved = code == WIRE_NOT_FOUND && relay_sub_replicated(r, sub) != NULL;
    if (ch != NULL)
        relay_sub_resume(sub);
    relay_sub_free(r, sub);
    if (moved) {
        if (open)
            chan_relay_got(ch, NULL, no_ack, 0);
        return;
    }
    struct wire_str text = {p + 2, len > 2 ? (uint32_t)(len - 2) : 0};
    struct relay_entry *re = NULL;
    if (code == 0 && p[2] != 0 && (re = relay_entry_new(home, 0, p + 7, len - 7)) == NULL) {
        code = WIRE_RESOURCE_ERROR; /* (it decoded on its home: out of memory here) */
        text = WIRE_STR_LIT("out of memory");
    }
    if (!open) {
        if (re != NULL)
            relay_settle(r->s, &re->e, CHAN_SETTLE_REQUEUE, true);
        return;
    }
    if (code == 0)
        chan_relay_got(ch, re != NULL ? &re->e : NULL, no_ack, bytes_get32(p + 3));
    else if (wire_reply_is_hard(code))
        conn_raise(ch->conn, code, WIRE_BASIC_GET, "%.*s", WIRE_STR_ARG(text));
    else
        chan_raise(ch, code, WIRE_BASIC_GET, "%.*s", WIRE_STR_ARG(text));
}

/* sub ends: its home is down or restarted, or it waited too long. A request waiting for its
 * answer fails with the 'home node is down' 404 (a get of a replicated queue is empty); a
 * consumer is cancelled (basic.cancel, as for a deleted queue) or, of a replicated queue,
 * parked. */
static void
relay_sub_lost(struct net_relay *r, struct relay_sub *sub)
{
    char queue[256];
    snprintf(queue, sizeof(queue), "%.*s", sub->qlen, sub->queue);
    struct net_decl_err err;
    relay_home_down(&err, sub->vhost, queue, sub->home->node);
    if (sub->type == 'U' || sub->type == 'N') {
        relay_req_lost(sub, &err);
        return;
    }
    if (relay_park(r, sub))
        return;
    struct chan *ch = sub->ch;
    bool open = relay_sub_open(sub);
    /* A get of a replicated queue: empty while it waits for its next home. */
    bool empty = sub->cc == NULL && relay_sub_replicated(r, sub) != NULL;
    if (ch != NULL)
        relay_sub_resume(sub);
    struct chan_cons *cc = sub->cc;
    if (cc != NULL)
        cc->relay = NULL;
    if (open && empty)
        chan_relay_got(ch, NULL, sub->no_ack, 0);
    else if (open)
        chan_raise_decl(ch, cc != NULL ? WIRE_BASIC_CONSUME : WIRE_BASIC_GET, &err);
    else if (cc != NULL && sub->established)
        chan_relay_cancelled(cc);
    relay_sub_free(r, sub);
}

/* home is down (every sub there ends), or restarted (those it answered end: its new run does
 * not know them; those waiting for an answer get it from the new run, or time out). */
static void
relay_home_lost(struct net_relay *r, struct relay_peer *home, bool restarted)
{
    struct hmap_iter it;
    struct hmap_entry *he;
    hmap_iter_init(&it, &r->subs);
    while ((he = hmap_iter_next(&it)) != NULL) {
        struct relay_sub *sub = hmap_container_of(he, struct relay_sub, by_id);
        if (sub->home == home && (!restarted || sub->established))
            relay_sub_lost(r, sub);
    }
}

/* ---- both sides: messages, liveness ---- */

/* One record of type from p (body b..end). */
static void
relay_on_record(struct net_relay *r, struct relay_peer *p, uint8_t type, const uint8_t *b,
                const uint8_t *end)
{
    if (type == 'C') {
        relay_on_consume(r, p, b, end);
    } else if (type == 'X') {
        relay_on_cancel(p, b, end);
    } else if (type == 'K') {
        relay_on_settle(p, b, end);
    } else if (type == 'G') {
        relay_on_get(r, p, b, end);
    } else if (type == 'U' || type == 'N') {
        relay_on_queue_request(r, p, type, b, end);
    } else if (type == 'P') {
        relay_send(r, p); /* the answer: this node's incarnation */
    } else if (end - b >= 8) {
        struct relay_sub *sub = relay_sub_find(r, bytes_get64(b));
        if (type == 'D') {
            relay_on_deliver(r, p, bytes_get64(b), b + 8, (size_t)(end - b - 8));
        } else if (sub == NULL || sub->home != p) {
            return; /* (its channel went meanwhile) */
        } else if (type == 'c' && end - b >= 10) {
            relay_on_consumed(r, sub, bytes_get16(b + 8),
                              (struct wire_str){b + 10, (uint32_t)(end - b - 10)});
        } else if (type == 'g') {
            relay_on_got(r, sub, b + 8, (size_t)(end - b - 8));
        } else if ((type == 'u' || type == 'n') && sub->type == type - ('a' - 'A') &&
                   end - b >= 10) {
            relay_req_answered(sub, bytes_get16(b + 8), b + 10, (size_t)(end - b - 10));
        } else if (type == 'Z' && sub->cc != NULL && !relay_park(r, sub)) {
            struct chan_cons *cc = sub->cc;
            cc->relay = NULL;
            relay_sub_free(r, sub);
            chan_relay_cancelled(cc);
        }
    }
}

void
relay_on_message(struct net_server *s, const char *from, const uint8_t *bytes, size_t len)
{
    struct net_relay *r = s->relay;
    struct relay_peer *p = relay_peer(r, from);
    if (p == NULL || len < RELAY_HDR) {
        log_msg(LOG_ERROR, "cluster: a message from %s dropped: %s", from,
                p == NULL ? "out of memory" : "too short");
        return;
    }
    uint64_t inc = bytes_get64(bytes + 1);
    /* Its consumers here belong to one run of it; this node's there, to one run of it. */
    if (p->incarnation != inc && p->incarnation != 0) {
        relay_client_lost(p);
        relay_home_lost(r, p, true);
    }
    p->incarnation = inc;
    const uint8_t *b = bytes + RELAY_HDR, *end = bytes + len;
    while (end - b >= 5) {
        uint8_t type = b[0];
        uint32_t n = bytes_get32(b + 1);
        if ((size_t)(end - b - 5) < n)
            break;
        relay_on_record(r, p, type, b + 5, b + 5 + n);
        b += 5 + n;
    }
    if (b != end)
        log_msg(LOG_ERROR, "cluster: a message from %s is cut short", from);
}

/* Every RELAY_CHECK_MS: homes and clients that are no longer running are lost; the consumers
 * ping their homes; requests unanswered for too long fail; consumers parked follow their
 * queues' homes. */
static void
relay_on_check(evutil_socket_t fd, short what, void *arg)
{
    struct net_relay *r = arg;
    (void)fd;
    (void)what;
    uint64_t now = relay_now_ms();
    struct hmap_iter it;
    struct hmap_entry *he;
    hmap_iter_init(&it, &r->subs);
    while ((he = hmap_iter_next(&it)) != NULL) {
        struct relay_sub *sub = hmap_container_of(he, struct relay_sub, by_id);
        if (sub->established || now - sub->asked_ms < RELAY_ANSWER_MS)
            continue;
        /* An answer lost with a link (one way down while the other was up), or a run of its
         * home: a consumer it made there would hold deliveries for nobody, so it is
         * cancelled there too (an id the home does not know is ignored). */
        if (sub->type == 'C') {
            uint8_t b[9];
            bytes_put64(b, sub->id);
            b[8] = RELAY_UNSEEN; /* what it delivered never came: back to the queue now */
            struct iovec part = {b, sizeof(b)};
            relay_record(r, sub->home, 'X', &part, 1); /* (ENOMEM: as lost as the answer) */
        }
        relay_sub_lost(r, sub);
    }
    /* Replicated queues served elsewhere with consumers parked here (their home was down when
     * they lost it or came, or refused them for a moment): they follow it once it runs. */
    for (struct vhost *vh = r->s->env.vhosts->head; vh != NULL; vh = vh->next) {
        struct hmap_iter qi;
        hmap_iter_init(&qi, &vh->queues);
        while ((he = hmap_iter_next(&qi)) != NULL) {
            struct queue *q = hmap_container_of(he, struct queue, by_name);
            if (q->group_id != 0 && q->home != NULL && q->n_consumers > 0)
                relay_follow(r->s, q);
        }
    }
    for (struct relay_peer *p = r->peers; p != NULL; p = p->next) {
        bool running = cluster_node_running(r->s->env.cluster, p->node);
        if (!running && (p->proxies.count > 0 || p->gets != NULL))
            relay_client_lost(p);
        if (!running && p->n_subs > 0)
            relay_home_lost(r, p, false);
        else if (p->n_subs > 0 && relay_record(r, p, 'P', NULL, 0) < 0)
            log_msg(LOG_ERROR, "cluster: out of memory pinging %s", p->node);
    }
}

int
net_relay_open(struct net_server *s)
{
    if (s->env.cluster == NULL)
        return 0;
    struct net_relay *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -1;
    r->s = s;
    hmap_init(&r->subs);
    r->flush = event_new(s->env.base, -1, 0, relay_on_flush, r);
    r->check = event_new(s->env.base, -1, EV_PERSIST, relay_on_check, r);
    struct timeval every = {0, RELAY_CHECK_MS * 1000};
    if (r->flush == NULL || r->check == NULL || event_add(r->check, &every) < 0) {
        if (r->flush != NULL)
            event_free(r->flush);
        if (r->check != NULL)
            event_free(r->check);
        free(r);
        return -1;
    }
    s->relay = r;
    return 0;
}

void
net_relay_free(struct net_server *s)
{
    struct net_relay *r = s->relay;
    if (r == NULL)
        return;
    struct hmap_iter it;
    struct hmap_entry *he;
    hmap_iter_init(&it, &r->subs);
    while ((he = hmap_iter_next(&it)) != NULL) {
        struct relay_sub *sub = hmap_container_of(he, struct relay_sub, by_id);
        if (sub->cc != NULL)
            sub->cc->relay = NULL;
        if (sub->done != NULL) {
            struct net_decl_err err = {.code = NET_DECL_UNAVAILABLE};
            snprintf(err.text, sizeof(err.text), "the node is stopping");
            sub->done(sub->done_arg, &err, false, 0);
        }
        hmap_remove(&r->subs, he);
        free(sub->user);
        free(sub);
    }
    hmap_clear(&r->subs);
    struct relay_peer *p;
    while ((p = r->peers) != NULL) {
        r->peers = p->next;
        relay_client_lost(p);
        hmap_clear(&p->proxies);
        free(p->out);
        free(p);
    }
    event_free(r->flush);
    event_free(r->check);
    free(r);
    s->relay = NULL;
}
