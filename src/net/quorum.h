/* Replicated queues in a cluster (quorum.c). Network layer only. */
#ifndef WARREN_NET_QUORUM_H
#define WARREN_NET_QUORUM_H

#include <stdbool.h>
#include <stdint.h>

#include "warren/cluster.h"
#include "warren/wire.h"

struct net_server;
struct queue;
struct vhost;

/* In a cluster (s->env.cluster): replicates the replicated queues this node is a member of,
 * those restored from the store first. 0, or -1 on ENOMEM. Nothing to do alone. */
int net_quorum_open(struct net_server *s);
/* Stops: the queues' groups close (their logs and images stay for the next start). */
void net_quorum_free(struct net_server *s);

/* q, a replicated queue (q->group_id set), was declared through the metadata log: its group
 * starts on this node if it is a member. */
void net_quorum_queue_added(struct net_server *s, struct queue *q);

/* The metadata log says node is a member of the group of the replicated queue named name in
 * vh (group: its id) from now on (added), or no longer: this node, if it is node, opens its
 * copy, empty, for the group's leader to fill, or closes it and deletes it (topology.c's 'G',
 * 'g'). */
void net_quorum_member_changed(struct net_server *s, struct vhost *vh, struct wire_str name,
                               uint64_t group, struct wire_str node, bool added);

/* A new replicated queue q, declared here, is not served yet: done(arg) is called once a
 * member serves it (its 'H' applied here), or after a while. Returns 0, or -1 when there is
 * nothing to wait for (not replicated here, or served already) or out of memory. */
int net_quorum_wait_served(struct net_server *s, struct queue *q, void (*done)(void *arg),
                           void *arg);

/* The metadata log says node now serves q (named name in vh, of group group): q->home follows
 * (NULL for this node); this node stops serving it if it did, unless it still leads its group
 * (a claim of an older leader committed late: it claims the home again), and its consumers of
 * it follow it there (relay_follow). Applied in log order on every node (topology.c's 'H'). */
void net_quorum_home_changed(struct net_server *s, struct vhost *vh, struct wire_str name,
                             uint64_t group, struct wire_str node);

/* Hands some of the replicated queues this node serves to the members serving fewest, so that
 * each running node serves about as many (RabbitMQ's rebalance of quorum queue leaders). Every
 * node does it for its own when asked (net_rebalance_queues), from the homes the metadata log
 * names. */
void net_quorum_rebalance(struct net_server *s);

/* A message of another node's: 'F' or 'f' (a member fetching the messages its image lacks,
 * quorum_fetch.c), 'B' (rebalance, net_rebalance_queues), 'M' or 'm' (a member change,
 * quorum_members.c). */
void net_quorum_on_message(struct net_server *s, const char *from, const uint8_t *bytes,
                           size_t len);

/* Who waits for the replication of the enqueues on replicated queues made while it is the
 * scope (net_quorum_scope): a publisher's confirm, a forwarded batch's answer. */
struct net_quorum_scope {
    /* One more enqueue waits to be committed: returns what its answer goes to (answer's
     * held), or NULL when nobody waits (then failed may be set: the publish is nacked). */
    void *(*hold)(struct net_quorum_scope *sc);
    /* The answer to the enqueue held (its command's, as cluster_done_fn: committed and
     * applied with result 0, or not). */
    void (*answer)(void *held, enum cluster_outcome outcome, int result);
    bool failed; /* set by the layer when an enqueue could not be submitted */
};
/* sc (NULL: none) is the scope of the enqueues made on s until the next call. */
void net_quorum_scope(struct net_server *s, struct net_quorum_scope *sc);

#endif
