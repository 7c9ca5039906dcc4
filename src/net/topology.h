/* Topology in a cluster (topology.c: the commands and their apply; chan_topology.c: the
 * channel methods that submit them). Network layer only. */
#ifndef WARREN_NET_TOPOLOGY_H
#define WARREN_NET_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
    /* The last apply's outcome: its error (code 0: none), and for 'q' the messages it
     * deleted, for the submitter's done callback, which runs right after it. */
    struct net_decl_err err;
    uint64_t deleted;
};

/* A command being built: on ENOMEM, failed is set and the rest is ignored. */
struct topo_buf {
    uint8_t *p; /* owns */
    size_t len, cap;
    bool failed;
};

/* Starts *b (anything it held is forgotten) as op with the submitter's context (topology.c's
 * layout): user NULL for none, the submitting connection's owner id (0: none), home the node
 * a new queue lives on (this one's name). Then the op's fields, in order. */
void topo_cmd_begin(struct topo_buf *b, char op, const char *user, const char *vhost,
                    uint64_t owner_id, const char *home);
void topo_cmd_str(struct topo_buf *b, struct wire_str s);
void topo_cmd_table(struct topo_buf *b, struct wire_table t);
void topo_cmd_flags(struct topo_buf *b, uint8_t flags);
/* Submits b's command to the metadata log (cluster_meta_submit) and empties b. Returns 0, or
 * -1 with errno (ENOMEM: b failed; else cluster_meta_submit's): done is then not called. */
int topo_cmd_submit(struct net_server *s, struct topo_buf *b, cluster_done_fn done, void *arg);

/* In a cluster (s->env.cluster): registers the topology's apply and deletes a restart's
 * leftovers (topology.c's top). 0, or -1 on ENOMEM. Nothing to do alone. */
int net_topology_open(struct net_server *s);
void net_topology_free(struct net_server *s);

#endif
