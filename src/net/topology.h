/* Topology in a cluster (topology.c: the commands, their apply and the HTTP API's changes
 * (net.h's net_topo_*); chan_topology.c: the channel methods that submit them). Network
 * layer only. */
#ifndef WARREN_NET_TOPOLOGY_H
#define WARREN_NET_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "warren/cluster.h"
#include "warren/hmap.h"
#include "warren/net.h"
#include "warren/wire.h"

struct net_server;

/* A command's flags byte. */
#define TOPO_DURABLE 0x01
#define TOPO_AUTO_DELETE 0x02
#define TOPO_INTERNAL 0x04     /* 'X' */
#define TOPO_EXCLUSIVE 0x04    /* 'Q' */
#define TOPO_SERVER_NAMED 0x08 /* 'Q': the name was made by the submitter (amq.gen-...) */
#define TOPO_IF_UNUSED 0x01    /* 'x' */
#define TOPO_TO_QUEUE 0x01     /* 'B', 'b' */

struct net_topology {
    struct net_server *s; /* borrows: owns this */
    const char *self;     /* borrows: this node's name (the cluster's) */
    /* The connections with exclusive queues, by their owner id (conn.owner_by_id). */
    struct hmap owners;
    /* The last apply's outcome: its error (code 0: none), for 'X' and 'Q' whether it made
     * the object, for 'q' the messages it deleted; for the submitter's done callback, which
     * runs right after it. */
    struct net_decl_err err;
    bool created;
    uint64_t index; /* the entry being applied's: a replicated queue's group id ('Q') */
    uint64_t deleted;
    /* The HTTP API's changes in flight (net_topo_*), answered by net_topology_free if the
     * cluster has not answered them before. */
    LIST_HEAD(, topo_http_wait) http_waits;
    /* Nodes seen down (topo_on_watch): their 'N' is submitted, until they run again. */
    struct event *watch; /* owns */
    char down[CLUSTER_MAX_NODES][CLUSTER_NODE_NAME_MAX];
    unsigned n_down;
};

/* A command being built: on ENOMEM, failed is set and the rest is ignored. */
struct topo_buf {
    uint8_t *p; /* owns */
    size_t len, cap;
    bool failed;
};

/* Starts *b (anything it held is forgotten) as op with the submitter's context (topology.c's
 * layout): user NULL for none, the submitting connection's owner id (0: none), home the node
 * a new queue lives on (this one's name). Then the op's fields, by the function for op. */
void topo_cmd_begin(struct topo_buf *b, char op, const char *user, const char *vhost,
                    uint64_t owner_id, const char *home);
/* 'X': d's name, type, flags and arguments (passive and no_wait are the submitter's). */
void topo_cmd_exch_declare(struct topo_buf *b, const struct wire_exchange_declare *d);
void topo_cmd_exch_delete(struct topo_buf *b, struct wire_str name, bool if_unused); /* 'x' */
/* 'Q': the queue name (d->queue's, or the one made for an empty d->queue), d's flags and
 * arguments. */
void topo_cmd_queue_declare(struct topo_buf *b, struct wire_str name,
                            const struct wire_queue_declare *d);
void topo_cmd_queue_delete(struct topo_buf *b, struct wire_str name); /* 'q' */
/* 'H', 'G', 'g' */
void topo_cmd_queue_name(struct topo_buf *b, struct wire_str name);
/* 'B' or 'b' (as begun): to_queue says whether destination is a queue. */
void topo_cmd_bind(struct topo_buf *b, bool to_queue, struct wire_str destination,
                   struct wire_str source, struct wire_str key, struct wire_table args);
/* Submits b's command to the metadata log (cluster_meta_submit) and empties b. Returns 0, or
 * -1 with errno (ENOMEM: b failed; else cluster_meta_submit's): done is then not called. */
int topo_cmd_submit(struct net_server *s, struct topo_buf *b, cluster_done_fn done, void *arg);
/* Why a command was not applied, for its submitter's answer: outcome's text (not
 * CLUSTER_COMMITTED). */
const char *topo_outcome_text(enum cluster_outcome outcome);

/* Submits 'N' for node, seen down: its exclusive and transient queues go everywhere. 0, or -1
 * on failure (ENOMEM, ESHUTDOWN). */
int topo_node_down_submit(struct net_server *s, const char *node);

/* The HTTP API's queue.delete of name in vhost for user (NULL: none), if-unused and if-empty
 * checked before (net_topo_queue_delete's contract). 0, or -1 with err. */
int topo_http_queue_delete(struct net_server *s, const char *vhost, const char *user,
                           struct wire_str name, net_topo_done_fn done, void *arg,
                           struct net_decl_err *err);
/* In a cluster (s->env.cluster): registers the topology's apply and deletes a restart's
 * leftovers (topology.c's top). 0, or -1 on ENOMEM. Nothing to do alone. */
int net_topology_open(struct net_server *s);
/* Also answers the HTTP API's changes still in flight (net_topo_*): "the node is stopping". */
void net_topology_free(struct net_server *s);

#endif
