/* Replies that wait for the store: publisher confirms and tx.commit-ok when they cover
 * persistent messages on durable queues, and basic.get when a queue's next messages are
 * still being written.
 *
 * A publish in confirm mode becomes "due" once routed; the confirms due on a channel go out
 * as one basic.ack ("multiple" when it covers several) when the connection has handled its
 * burst of input. If any of them went to the store (or an earlier batch of this channel's
 * confirms is still waiting for it), the ack waits on a durable barrier instead: the store
 * completes barriers in order, so a channel's acks still go out in order, and each covers
 * only publishes whose writes are synced. A write that failed (disk full) turns the waiting
 * ack into a nack for the same publishes.
 *
 * tx.commit-ok for a transaction that stored messages waits on a synced barrier too, and the
 * connection reads nothing meanwhile, so that every later reply follows it; in a cluster it
 * first waits for the other nodes its publishes were forwarded to (chan_tx_forwarded). So does
 * basic.get on a queue whose ready messages are all paged out in a batch the store has not
 * completed (unsynced: it only needs them readable). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "net_int.h"
#include "warren/assert.h"
#include "warren/durable.h"
#include "warren/vhost.h"

enum chan_wait_kind {
    CHAN_WAIT_CONFIRMS,
    CHAN_WAIT_TX_COMMIT,
    CHAN_WAIT_GET,
};

/* A reply waiting for its barrier. */
struct chan_store_wait {
    LIST_ENTRY(chan_store_wait) link; /* in ch->store_waits while ch lives */
    struct chan *ch;                  /* borrows; NULL once the channel is gone */
    enum chan_wait_kind kind;
    uint64_t upto;    /* confirms: publishes up to this seq */
    bool get_no_ack;  /* get: as asked */
    uint8_t get_len;  /* get: length of get_queue */
    char get_queue[]; /* get: the queue as named, looked up again at the answer */
};

void
chan_confirm_due(struct chan *ch, uint64_t seq)
{
    if (seq > ch->confirm_handled_upto)
        ch->confirm_handled_upto = seq;
    /* Not past a publish that waits for other nodes: an ack "multiple" would cover it. */
    struct chan_fwd *waiting = TAILQ_FIRST(&ch->fwds);
    if (waiting != NULL && waiting->seq <= seq)
        seq = waiting->seq - 1;
    if (seq <= ch->confirm_due_upto)
        return;
    ch->confirm_due_upto = seq;
    if (!ch->in_confirm_due) {
        ch->in_confirm_due = true;
        TAILQ_INSERT_TAIL(&ch->conn->confirm_due, ch, confirm_link);
    }
}

/* Sends basic.ack (or basic.nack) for every publish after the last confirmed one up to upto:
 * one frame, "multiple" when it covers several. */
static void
chan_send_confirm(struct chan *ch, uint64_t upto, bool ack)
{
    if (upto <= ch->confirmed_upto)
        return;
    struct wire_method m = {.id = ack ? WIRE_BASIC_ACK : WIRE_BASIC_NACK};
    bool multiple = upto - ch->confirmed_upto > 1;
    if (ack) {
        chan_stats_add(ch, NULL, STATS_CONFIRM, upto - ch->confirmed_upto);
        m.u.basic_ack.delivery_tag = upto;
        m.u.basic_ack.multiple = multiple;
    } else {
        m.u.basic_nack.delivery_tag = upto;
        m.u.basic_nack.multiple = multiple;
    }
    ch->confirmed_upto = upto;
    conn_send(ch->conn, ch->id, &m);
}

static void
chan_on_store_done(void *arg, const char *err)
{
    struct chan_store_wait *w = arg;
    struct chan *ch = w->ch;
    if (ch == NULL) {
        free(w);
        return;
    }
    LIST_REMOVE(w, link);
    struct conn *c = ch->conn;
    if (w->kind == CHAN_WAIT_GET) {
        /* A failed write leaves the entries unreadable: the answer is then get-empty. */
        c->store_paused--;
        if (ch->state == CHAN_OPEN && c->state == CONN_OPEN)
            chan_get_answer(ch, (struct wire_str){(const uint8_t *)w->get_queue, w->get_len},
                            w->get_no_ack, false);
        conn_resume(c);
        free(w);
        return;
    }
    if (err != NULL)
        log_conn(LOG_ERROR, c, "channel %u: %s not stored (%s)", ch->id,
                 w->kind == CHAN_WAIT_TX_COMMIT ? "transaction" : "confirmed publishes", err);
    if (w->kind == CHAN_WAIT_TX_COMMIT) {
        c->store_paused--;
        if (err != NULL) {
            chan_raise(ch, WIRE_INTERNAL_ERROR, WIRE_TX_COMMIT, "cannot store messages: %s", err);
        } else {
            struct wire_method ok = {.id = WIRE_TX_COMMIT_OK};
            conn_send(c, ch->id, &ok);
        }
        conn_resume(c);
    } else if (ch->state == CHAN_OPEN) {
        chan_send_confirm(ch, w->upto, err == NULL);
    }
    free(w);
}

/* Registers w, filled in by the caller, as a wait on the store for ch. 0, or -1 on ENOMEM
 * or when the store is detached, with w freed. */
static int
chan_store_wait_add(struct chan *ch, struct chan_store_wait *w, bool sync)
{
    struct durable *d = ch->conn->vhost->durable;
    w->ch = ch;
    /* Detached: the broker is shutting down, nothing more is written. */
    if (d == NULL || durable_barrier(d, sync, chan_on_store_done, w) < 0) {
        free(w);
        return -1;
    }
    LIST_INSERT_HEAD(&ch->store_waits, w, link);
    return 0;
}

/* A confirms or tx.commit-ok wait on the store for ch. 0, or -1 (chan_store_wait_add). */
static int
chan_store_wait(struct chan *ch, bool sync, enum chan_wait_kind kind, uint64_t upto)
{
    struct chan_store_wait *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -1;
    w->kind = kind;
    w->upto = upto;
    return chan_store_wait_add(ch, w, sync);
}

/* The confirms due on ch: now, or once the store has what they cover. */
static void
chan_confirm_flush(struct chan *ch)
{
    uint64_t upto = ch->confirm_due_upto;
    if (upto <= ch->confirm_waiting_upto)
        return;
    if (!ch->confirm_sync && LIST_EMPTY(&ch->store_waits)) {
        chan_send_confirm(ch, upto, true);
        return;
    }
    if (chan_store_wait(ch, ch->confirm_sync, CHAN_WAIT_CONFIRMS, upto) < 0) {
        log_conn(LOG_ERROR, ch->conn,
                 "cannot wait for the store (out of memory, or shutting down): nacking");
        chan_send_confirm(ch, upto, false);
    }
    ch->confirm_sync = false;
    ch->confirm_waiting_upto = upto;
}

void
chan_flush_confirms(struct conn *c)
{
    struct chan *ch;
    while ((ch = TAILQ_FIRST(&c->confirm_due)) != NULL) {
        TAILQ_REMOVE(&c->confirm_due, ch, confirm_link);
        ch->in_confirm_due = false;
        if (ch->state == CHAN_OPEN)
            chan_confirm_flush(ch);
    }
}

void
chan_nack_publish(struct chan *ch, uint64_t seq)
{
    if (seq > ch->confirm_handled_upto)
        ch->confirm_handled_upto = seq;
    if (ch->confirm_sync || !LIST_EMPTY(&ch->store_waits) || !TAILQ_EMPTY(&ch->fwds)) {
        /* Earlier publishes still wait for the store or other nodes: nack this one alone,
         * out of order, as RabbitMQ may; the next ack "multiple" then covers a publish the
         * client already counts as nacked, which clients ignore. */
        struct wire_method m = {.id = WIRE_BASIC_NACK};
        m.u.basic_nack.delivery_tag = seq;
        conn_send(ch->conn, ch->id, &m);
        return;
    }
    /* The acks due before it go out first, then the nack, keeping the confirms in order. */
    chan_send_confirm(ch, seq - 1, true);
    chan_send_confirm(ch, seq, false);
    ch->confirm_due_upto = seq;
    ch->confirm_waiting_upto = seq;
}

void
chan_forwarded(struct chan *ch, struct chan_fwd *cf)
{
    TAILQ_REMOVE(&ch->fwds, cf, link);
    if (cf->seq == 0) { /* a tx.commit's */
        chan_tx_forwarded(ch, cf->nacked);
        return;
    }
    if (ch->state != CHAN_OPEN || ch->conn->state != CONN_OPEN)
        return;
    if (cf->nacked)
        chan_nack_publish(ch, cf->seq);
    chan_confirm_due(ch, ch->confirm_handled_upto); /* what cf held back */
    chan_flush_confirms(ch->conn);
}

/* tx.commit-ok, after the store has synced the commit's messages if it stored any. 0, or -1
 * after raising. */
static int
chan_tx_commit_ok(struct chan *ch)
{
    struct conn *c = ch->conn;
    if (ch->tx_sync) {
        ch->tx_sync = false;
        if (chan_store_wait(ch, true, CHAN_WAIT_TX_COMMIT, 0) == 0) {
            c->store_paused++;
            return 0;
        }
        return chan_raise(ch, WIRE_INTERNAL_ERROR, WIRE_TX_COMMIT,
                          "cannot wait for the store (out of memory, or shutting down)");
    }
    struct wire_method ok = {.id = WIRE_TX_COMMIT_OK};
    return conn_send(c, ch->id, &ok);
}

void
chan_tx_forwarded(struct chan *ch, bool nacked)
{
    struct conn *c = ch->conn;
    c->store_paused--;
    if (ch->state == CHAN_OPEN && c->state == CONN_OPEN) {
        if (nacked) {
            ch->tx_sync = false;
            chan_raise(ch, WIRE_PRECONDITION_FAILED, WIRE_TX_COMMIT, "partial tx completion");
        } else {
            chan_tx_commit_ok(ch); /* (-1: raised) */
        }
    }
    conn_resume(c);
}

int
chan_get_wait(struct chan *ch, struct wire_str queue, bool no_ack)
{
    WR_ASSERT(queue.len <= UINT8_MAX); /* a shortstr */
    struct chan_store_wait *w = calloc(1, sizeof(*w) + queue.len);
    if (w == NULL)
        return -1;
    w->kind = CHAN_WAIT_GET;
    w->get_no_ack = no_ack;
    w->get_len = (uint8_t)queue.len;
    if (queue.len > 0)
        memcpy(w->get_queue, queue.ptr, queue.len);
    if (chan_store_wait_add(ch, w, false) < 0)
        return -1;
    ch->conn->store_paused++;
    return 0;
}

void
chan_store_waits_release(struct chan *ch)
{
    struct chan_store_wait *w;
    while ((w = LIST_FIRST(&ch->store_waits)) != NULL) {
        LIST_REMOVE(w, link);
        w->ch = NULL; /* the store's callback frees it */
    }
}
