/* Clustering: the nodes named by cluster_formation.classic_config.nodes.N form one cluster
 * through a Raft group they all belong to (the metadata group), over the nodes' cluster
 * listener (distribution.listener.port_range.min, by default the AMQP port + 20000) and with
 * the shared secret of <data_dir>/.erlang.cookie. A node whose configuration names no nodes
 * runs alone, without any of this.
 *
 * Everything here is called on the broker's loop. */
#ifndef WARREN_CLUSTER_H
#define WARREN_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf;
struct event_base;
struct cluster;

/* Most nodes in a cluster. */
#define CLUSTER_MAX_NODES 16
/* Longest node name, name@host. */
#define CLUSTER_NODE_NAME_MAX 256

/* Opens the cluster the configuration names: starts the Raft thread, the cluster listener and
 * the metadata group, which then elects a leader as soon as a majority of the nodes runs.
 * Returns 0 with *out set (NULL when the configuration names no cluster), or -1 with err
 * filled. */
int cluster_open(struct event_base *base, const struct conf *conf, struct cluster **out, char *err,
                 size_t errlen);

/* A node as this node sees it. */
struct cluster_node_view {
    char name[CLUSTER_NODE_NAME_MAX];
    bool self;
    bool running; /* reachable: known for every node on the leader, elsewhere only for the
                   * node itself and the leader it follows */
    bool leader;  /* leads the metadata group */
};

/* Fills out with up to cap of the cluster's nodes (the metadata group's members, in the order
 * of the configuration). Returns how many there are. */
unsigned cluster_nodes(const struct cluster *c, struct cluster_node_view *out, unsigned cap);

/* Stops the cluster's part of the node: leaves the metadata group (waiting a little for the
 * changes in flight), closes the listener, then calls done(arg) on the loop. */
void cluster_close(struct cluster *c, void (*done)(void *arg), void *arg);

/* Frees c, closing it first (running base's loop until it is) if cluster_close was not
 * called. NULL is ignored. */
void cluster_free(struct cluster *c);

#endif
