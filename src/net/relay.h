/* Consumers of other nodes' queues, in a cluster (relay.c). Network layer only. */
#ifndef WARREN_NET_RELAY_H
#define WARREN_NET_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net_int.h"
#include "warren/net.h"

struct relay_peer;

/* A consumer (or a request under way: basic.get, queue.purge, queue.delete's counts) of this
 * node's channel (or of its HTTP API) on another node's queue (the asking side). */
struct relay_sub {
    struct hmap_entry by_id; /* in net_relay.subs */
    uint8_t key[8];
    uint64_t id;
    struct relay_peer *home;
    struct chan_cons *cc; /* borrows; NULL for a get */
    /* While its answer is awaited: the channel whose input waits for it (NULL once the
     * channel is gone), in its relay_waits */
    struct chan *ch;
    LIST_ENTRY(relay_sub) wait_link;
    uint64_t asked_ms; /* when its record was sent */
    bool established;  /* consume-ok came: it belongs to the home's run that sent it */
    bool no_wait;      /* consume: no consume-ok wanted */
    bool no_ack;       /* get */
    bool follows;      /* consume: its client has its consume-ok (a replicated queue's consumer
                        * following the queue's home): parked rather than cancelled when lost */
    uint8_t type;      /* its record: 'C', 'G', or relay_req.c's 'U', 'N' */
    uint8_t qlen;      /* the queue's name, for errors */
    char queue[255];
    char vhost[256]; /* its vhost's name */
    /* relay_req.c's */
    bool if_unused, if_empty; /* 'N': the queue.delete it is for */
    net_topo_done_fn done;    /* the HTTP API's request: answered so (NULL: a channel's) */
    void *done_arg;
    char *user; /* owns: 'N' for the HTTP API: whom the delete is for (NULL: nobody) */
};

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
 * consume-ok (unless no_wait) or its error. A replicated queue whose home is down has its
 * consumer at once, parked until the next home serves it. 0, or -1 after raising (the caller
 * frees cc). */
int relay_consume(struct chan *ch, struct chan_cons *cc, struct queue *q, bool no_wait);
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
/* q, a replicated queue, is no longer served here: its consumers of other nodes hear that it
 * is gone from here ('Z': they wait for, then follow, its next home). */
void relay_home_queue_lost(struct queue *q);
/* q, a replicated queue, is served by another node now (q->home): this node's consumers of it
 * consume there, their clients none the wiser. */
void relay_follow(struct net_server *s, struct queue *q);
/* The channel goes: the answers it waits for find nobody. */
void relay_release(struct chan *ch);

/* For relay_req.c: */
/* A request of type ('U', 'N') about q, another node's queue in vh, sent to its home as
 * [u64 id][vhost][queue]. The new sub is listed (answers and the home's loss find it; nobody
 * waits for it yet: relay_sub_wait). NULL with err: the home is down (404, as RabbitMQ words
 * it), or out of memory. */
struct relay_sub *relay_request(struct net_server *s, const struct vhost *vh, const struct queue *q,
                                uint8_t type, struct net_decl_err *err);
/* ch's input waits for sub's answer. */
void relay_sub_wait(struct relay_sub *sub, struct chan *ch);
/* sub is answered: its channel (if it waits) reads again; sub and what it owns are freed. */
void relay_sub_end(struct relay_sub *sub);
/* The server sub belongs to. */
struct net_server *relay_sub_server(const struct relay_sub *sub);
/* Whether sub's channel still waits, open, for its answer. */
bool relay_sub_open(const struct relay_sub *sub);

/* relay_req.c: */
/* queue.purge of q, another node's queue, on ch: asked of its home; the connection's input
 * waits for the answer, then purge-ok (unless no_wait) or its error. 0, or -1 after raising. */
int relay_purge(struct chan *ch, const struct queue *q, bool no_wait);
/* queue.delete with if_unused or if_empty of q, another node's queue, on ch: its counts are
 * asked of its home, checked, then the delete submitted (chan_topology_queue_delete_submit).
 * 0, or -1 after raising. */
int relay_queue_delete(struct chan *ch, const struct queue *q, bool if_unused, bool if_empty,
                       bool no_wait);
/* The same for the HTTP API (net_topo_queue_delete), for user (NULL: none): done(arg) answers
 * once. 0, or -1 with err (done not called). */
int relay_http_queue_delete(struct net_server *s, struct vhost *vh, const char *user,
                            const struct queue *q, bool if_unused, bool if_empty,
                            net_topo_done_fn done, void *arg, struct net_decl_err *err);
/* sub's answer ('u', 'n'): code, then p..p+len (after the code). Ends sub. */
void relay_req_answered(struct relay_sub *sub, uint16_t code, const uint8_t *p, size_t len);
/* sub's home is down or restarted: answered err (RabbitMQ's 404). Ends sub. */
void relay_req_lost(struct relay_sub *sub, struct net_decl_err *err);

#endif
