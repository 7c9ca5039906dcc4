/* Publishes to other nodes' queues, in a cluster (forward.c). Network layer only. */
#ifndef WARREN_NET_FORWARD_H
#define WARREN_NET_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

struct chan;
struct chan_fwd;
struct msg;
struct net_server;
struct queue;
struct vhost;

/* In a cluster (s->env.cluster): starts taking the publishes other nodes forward here and
 * the answers to those this node forwards. 0, or -1 on ENOMEM. Nothing to do alone. */
int net_forward_open(struct net_server *s);
/* Stops; what still waits for an answer is nacked. */
void net_forward_free(struct net_server *s);

/* Forwards m, published in vh, to queues[0..n) (other nodes' queues: queue.home), one copy
 * per home node; queues' entries are set to NULL as they are handled. cf (NULL: nobody waits)
 * counts one answer per home node. Returns 0, or -1 when some home could not be sent to now
 * (its link is down, or out of memory): m does not reach its queues there. */
int net_forward(struct net_server *s, struct vhost *vh, struct queue **queues, uint32_t n,
                struct msg *m, struct chan_fwd *cf);

/* After a publish c forwarded: c reads nothing more while another node has more than its
 * window of c's node's forwarded bytes unanswered (see forward.c). */
struct conn;
void net_forward_hold(struct conn *c);
/* c goes: no longer held. */
void net_forward_unhold(struct conn *c);

/* A confirm-mode publish seq of ch being forwarded: listed in ch->fwds, held by the caller
 * until chan_fwd_settle(cf, false) (and by each answer it waits for). NULL on ENOMEM. */
struct chan_fwd *chan_fwd_new(struct chan *ch, uint64_t seq);
/* Drops one hold on cf (nack: that part was not taken, or may not have been); the last one
 * tells the channel (chan_forwarded), if it still lives, and frees cf. */
void chan_fwd_settle(struct chan_fwd *cf, bool nack);
/* The channel goes: its forwarded publishes are answered to nobody. */
void chan_fwd_release(struct chan *ch);

#endif
