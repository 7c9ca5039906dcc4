/* Consumers of other nodes' queues, in a cluster (relay.c). Network layer only. */
#ifndef WARREN_NET_RELAY_H
#define WARREN_NET_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net_int.h"

/* In a cluster (s->env.cluster): serves this node's queues to consumers on other nodes, and
 * this node's consumers of theirs. 0, or -1 on ENOMEM. Nothing to do alone. */
int net_relay_open(struct net_server *s);
/* Stops: other nodes' deliveries are requeued here; this node's consumers elsewhere are
 * forgotten (their homes requeue when they see this node gone). */
void net_relay_free(struct net_server *s);
/* A message from node from (cluster_on_node_message) whose first byte is 'R'. */
void relay_on_message(struct net_server *s, const char *from, const uint8_t *bytes, size_t len);

/* basic.consume of q, another node's queue, by cc (made by the channel, not attached to any
 * queue): asked of its home; the connection's input waits until it answers, then
 * consume-ok (unless no_wait) or its error. 0, or -1 after raising (the caller frees cc). */
int relay_consume(struct chan *ch, struct chan_cons *cc, const struct queue *q, bool no_wait);
/* basic.cancel (or the channel going) of cc, a consumer of another node's queue. */
void relay_cancel(struct chan_cons *cc);
/* basic.get of q, another node's queue: asked of its home, answered by chan_relay_got. 0, or
 * -1 after raising. */
int relay_get(struct chan *ch, const struct queue *q, bool no_ack);
/* A relayed delivery (qentry.relayed) is settled as how (a no_ack one: acked once written
 * out): told to its home, and freed. credit: its home may send one more (false: a no_ack
 * consumer whose output is full: relay_credit later). */
void relay_settle(struct net_server *s, struct qentry *e, enum chan_settle how, bool credit);
/* cc (no_ack, another node's queue) wrote n more deliveries out: its home may send n more. */
void relay_credit(struct chan_cons *cc, uint32_t n);
/* The channel goes: the answers it waits for find nobody. */
void relay_release(struct chan *ch);

#endif
