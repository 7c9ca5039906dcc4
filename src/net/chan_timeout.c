/* The consumer acknowledgement timeout, as RabbitMQ's: a delivery left unacknowledged for
 * longer than its queue's consumer timeout (x-consumer-timeout, policy consumer-timeout; none
 * set: the server's consumer_timeout; 0: none) closes its channel with 406
 * PRECONDITION_FAILED, and the channel's deliveries go back to their queues at once, for the
 * other consumers. Deliveries by basic.get count as consumers' do, as in RabbitMQ.
 *
 * What is timed is the channel's oldest unacknowledged delivery (the head of chan->unacked,
 * in delivery order) with its own queue's timeout, as RabbitMQ's channel does on each tick.
 * One timer per channel, never one per message: it is set for that delivery's deadline when
 * the channel's first delivery is made, and moved earlier only when the oldest one changes to
 * one with an earlier deadline (a queue with a shorter timeout). Acks that leave a later
 * deadline do not touch the timer: when it fires it looks at the oldest delivery again and
 * sleeps until its deadline. It never sleeps longer than CHAN_ACK_TIMER_MAX_MS, so that a
 * policy's new timeout applies within that time (RabbitMQ looks once a minute), and a
 * channel with nothing unacknowledged has no pending timer after its next wake-up. */
#include "config.h"

#include <event2/event.h>

#include "net_int.h"
#include "warren/conf.h"
#include "warren/vhost.h"

/* The longest the timer sleeps before it looks at the oldest delivery again. */
#define CHAN_ACK_TIMER_MAX_MS 60000
/* How often an overdue delivery of a blocked connection is looked at again: the channel is
 * closed about this long after the block ends, if the acks read then did not cover it. */
#define CHAN_ACK_BLOCKED_RECHECK_MS 1000

/* d's timeout in milliseconds, 0: none. Its queue's setting wins over the server's (both
 * ways, as RabbitMQ's); a deleted queue's deliveries have the server's. */
static uint64_t
chan_ack_timeout(const struct chan *ch, const struct delivery *d)
{
    const struct queue *q = d->entry->queue;
    if (q != NULL && q->settings.consumer_timeout != QUEUE_SETTING_NONE)
        return (uint64_t)q->settings.consumer_timeout;
    return ch->conn->server->env.conf->consumer_timeout;
}

static void chan_on_ack_timer(evutil_socket_t fd, short what, void *arg);

/* Sets the channel's timer to fire at monotonic ms at, or sooner (CHAN_ACK_TIMER_MAX_MS). */
static void
chan_ack_timer_arm(struct chan *ch, uint64_t at)
{
    struct conn *c = ch->conn;
    if (ch->ack_timer == NULL &&
        (ch->ack_timer = evtimer_new(c->server->env.base, chan_on_ack_timer, ch)) == NULL) {
        /* The deliveries are fine; only their timeout is not enforced until the next try. */
        log_conn(LOG_ERROR, c, "out of memory: channel %u's consumer timeout not armed", ch->id);
        return;
    }
    uint64_t now = server_now_ms();
    uint64_t ms = at > now ? at - now : 0;
    if (ms > CHAN_ACK_TIMER_MAX_MS)
        ms = CHAN_ACK_TIMER_MAX_MS;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (evtimer_add(ch->ack_timer, &tv) < 0) {
        log_conn(LOG_ERROR, c, "cannot arm channel %u's consumer timeout", ch->id);
        return;
    }
    ch->ack_timer_at = now + ms;
}

void
chan_ack_timer_update(struct chan *ch)
{
    struct delivery *d = TAILQ_FIRST(&ch->unacked);
    if (d == NULL)
        return; /* a pending timer finds nothing and stops */
    uint64_t timeout = chan_ack_timeout(ch, d);
    if (timeout == 0)
        return;
    uint64_t at = d->delivered_at + timeout;
    if (ch->ack_timer_at == 0 || at < ch->ack_timer_at)
        chan_ack_timer_arm(ch, at);
}

/* The timer fired: closes the channel if its oldest delivery is past its deadline, else
 * sleeps until that deadline. */
static void
chan_on_ack_timer(evutil_socket_t fd, short what, void *arg)
{
    struct chan *ch = arg;
    struct conn *c = ch->conn;
    ch->ack_timer_at = 0;
    if (ch->state != CHAN_OPEN || c->state != CONN_OPEN)
        return;
    struct delivery *d = TAILQ_FIRST(&ch->unacked);
    if (d == NULL)
        return;
    uint64_t timeout = chan_ack_timeout(ch, d);
    if (timeout == 0)
        return;
    uint64_t now = server_now_ms();
    if (now < d->delivered_at + timeout) {
        chan_ack_timer_arm(ch, d->delivered_at + timeout);
        return;
    }
    /* A connection blocked by a resource alarm is not read: its acks may be waiting in its
     * socket. Its deliveries are timed again once it is read, as its heartbeats are (RabbitMQ
     * would close the channel: its reader stops reading too, its channels keep timing). */
    if (c->blocked) {
        chan_ack_timer_arm(ch, now + CHAN_ACK_BLOCKED_RECHECK_MS);
        return;
    }
    /* RabbitMQ 3.13's line, which names the consumer ("none" for basic.get), the queue and
     * the delivery tag. */
    const struct queue *q = d->entry->queue;
    log_conn(LOG_WARNING, c,
             "consumer '%s' on channel %u and queue '%s' in vhost '%s' has timed out waiting "
             "for a consumer acknowledgement of a delivery with delivery tag = %llu. Timeout "
             "used: %llu ms. This timeout value can be configured, see consumers doc guide to "
             "learn more",
             d->cons != NULL ? d->cons->tag : "none", ch->id, q != NULL ? q->name : "(deleted)",
             c->vhost->name, (unsigned long long)d->by_tag.id, (unsigned long long)timeout);
    chan_raise(ch, WIRE_PRECONDITION_FAILED, 0,
               "delivery acknowledgement on channel %u timed out. Timeout value used: %llu "
               "ms. This timeout value can be configured, see consumers doc guide to learn "
               "more",
               ch->id, (unsigned long long)timeout);
    /* As RabbitMQ, at once, not at the client's close-ok: a client that is stuck (the reason
     * for the timeout) may not answer soon. */
    chan_give_back(ch);
}

void
chan_ack_timer_free(struct chan *ch)
{
    if (ch->ack_timer != NULL)
        event_free(ch->ack_timer);
    ch->ack_timer = NULL;
    ch->ack_timer_at = 0;
}
