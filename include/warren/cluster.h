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

/* How a command submitted to a Raft group ended, for its done callback. */
enum cluster_outcome {
    CLUSTER_COMMITTED = 0, /* committed, and applied on this node before the callback */
    CLUSTER_NOT_LEADER,    /* refused: no leader to take it now; not in the log */
    CLUSTER_MAYBE,         /* the leader was lost with the command in flight: it may commit */
    CLUSTER_FAILED,        /* refused for another reason (out of memory, shutting down) */
};

/* result: what the command's apply returned (CLUSTER_COMMITTED), else 0. */
typedef void (*cluster_done_fn)(void *arg, enum cluster_outcome outcome, int result);

/* A kind of metadata command: its first byte, which says which layer applies it. */
enum cluster_meta_kind {
    CLUSTER_META_LEADER = 'L',   /* the cluster's own: a new leader's marker */
    CLUSTER_META_ADMIN = 'A',    /* users, vhosts, permissions, policies, parameters */
    CLUSTER_META_TOPOLOGY = 'T', /* exchanges, queues' definitions, bindings (src/net) */
};

/* Applies a committed metadata command of its kind, on every node in log order; returns what
 * its submitter's done callback gets as result (the same on every node). index: the log
 * entry's (the commands of one entry share it; a layer that stores its state skips entries
 * at or below the last it stored, as the log is replayed from its start at every start). */
typedef int (*cluster_meta_apply_fn)(void *arg, uint64_t index, const uint8_t *cmd, size_t len);

/* Opens the cluster the configuration names: starts the Raft thread, the cluster listener and
 * the metadata group, which then elects a leader as soon as a majority of the nodes runs.
 * Returns 0 with *out set (NULL when the configuration names no cluster), or -1 with err
 * filled. */
int cluster_open(struct event_base *base, const struct conf *conf, struct cluster **out, char *err,
                 size_t errlen);

/* Who applies the metadata commands of kind (before any is committed: at start, right after
 * cluster_open). A command of a kind nobody applies is logged and skipped. */
void cluster_meta_register(struct cluster *c, enum cluster_meta_kind kind, cluster_meta_apply_fn fn,
                           void *arg);

/* Submits a metadata command (its first byte its kind; copied) to be committed and applied on
 * every node, then done(arg, outcome, result) on this one (see cluster_done_fn). done may be
 * NULL. Returns 0, or -1 with errno (ENOMEM, EMSGSIZE, ESHUTDOWN): done is then not called. */
int cluster_meta_submit(struct cluster *c, const void *cmd, size_t len, cluster_done_fn done,
                        void *arg);

/* This node's name (name@host), the same as the others know it by. */
const char *cluster_self_name(const struct cluster *c);

/* The broker's own messages between nodes, over the node links: those one node sends another
 * arrive in the order sent, but a link that goes down drops what it held, and a message sent
 * while it is down is dropped too (the protocol on top numbers its messages to find out).
 * fn(arg, from, bytes, len) gets each message received, on the loop (from: the sender's name;
 * both valid during the call). */
typedef void (*cluster_node_msg_fn)(void *arg, const char *from, const uint8_t *bytes, size_t len);
void cluster_on_node_message(struct cluster *c, cluster_node_msg_fn fn, void *arg);
/* Sends len bytes at bytes (malloc'ed; taken, freed here in any case) to node name. Returns 0,
 * or -1 with errno: ENOENT (not a member), ENOTCONN (its link is down now), ESHUTDOWN. */
int cluster_send(struct cluster *c, const char *name, uint8_t *bytes, size_t len);
/* Whether node name is a member whose link is up (cluster_node_view.running). */
bool cluster_node_running(const struct cluster *c, const char *name);

/* Calls done(arg), on the loop, once every other running node applied the metadata log as
 * far as this node did (a submitter's done callback calls this for its own command: its
 * change is then visible on every node, as RabbitMQ's declare-ok promises), or after 2 s for
 * a node that does not say so; within this call when no other node runs. Returns 0, or -1
 * on ENOMEM (done is not called). */
int cluster_meta_wait_visible(struct cluster *c, void (*done)(void *arg), void *arg);

/* A node as this node sees it. */
struct cluster_node_view {
    char name[CLUSTER_NODE_NAME_MAX];
    bool self;
    bool running; /* this node, or one whose node link is up and heard from within 2 s */
    bool leader;  /* leads the metadata group */
    /* What the node last sent of itself (cluster_set_node_info's text; NULL: nothing yet, or
     * this node), valid until control returns to the loop. */
    const char *info;
};

/* Sends this node's description to the other running nodes every interval_ms: fn(arg) makes
 * it, as text (malloc'ed, freed here; NULL: nothing this time). fn NULL stops it. The others
 * keep the last one received from each node (cluster_nodes' info). */
void cluster_set_node_info(struct cluster *c, char *(*fn)(void *arg), void *arg,
                           unsigned interval_ms);

/* Fills out with up to cap of the cluster's nodes (the metadata group's members, in the order
 * of the configuration). Returns how many there are. */
unsigned cluster_nodes(const struct cluster *c, struct cluster_node_view *out, unsigned cap);

/* The metadata group as this node sees it, for metrics. */
struct cluster_metadata_stats {
    uint64_t term;          /* Raft's current term */
    bool leader;            /* this node leads the group */
    uint64_t commit_index;  /* the last log entry known committed */
    uint64_t last_applied;  /* the last one applied here */
    unsigned running, down; /* the cluster's nodes, by what this node sees */
};
void cluster_metadata_stats(const struct cluster *c, struct cluster_metadata_stats *out);

/* How a change of the cluster's members ended, for its done callback. */
enum cluster_change {
    CLUSTER_CHANGE_DONE = 0,   /* committed: the members are the new ones */
    CLUSTER_CHANGE_SELF,       /* refused: this node cannot forget itself */
    CLUSTER_CHANGE_NOT_MEMBER, /* refused: no such member */
    CLUSTER_CHANGE_RUNNING,    /* refused: the node runs (RabbitMQ forgets only stopped ones) */
    CLUSTER_CHANGE_BUSY,       /* refused: another change is under way (raft's CANTCHANGE) */
    CLUSTER_CHANGE_NO_LEADER,  /* refused: no leader to take it now */
    CLUSTER_CHANGE_UNKNOWN,    /* no answer in time, or the leader lost: it may happen yet */
    CLUSTER_CHANGE_FAILED,     /* refused for another reason (out of memory, shutting down) */
};

typedef void (*cluster_change_fn)(void *arg, enum cluster_change outcome);

/* Removes the stopped node name (name@host) from the cluster (rabbitmqctl
 * forget_cluster_node): the metadata group's leader takes it out of the group's members
 * (this node forwards the request when it does not lead), so that it is no longer listed and
 * quorum counts the others. The node itself, a node that is not a member and a running one
 * (as this node or the leader sees it) are refused. done(arg, outcome) runs on the loop, never
 * within this call. Returns 0, or -1 with errno (ENOMEM, ESHUTDOWN): done is then not
 * called. */
int cluster_forget(struct cluster *c, const char *name, cluster_change_fn done, void *arg);

/* Whether stopping this node would leave the metadata group without a majority of its voters
 * running (as this node sees them run): RabbitMQ's node-is-quorum-critical. */
bool cluster_node_is_quorum_critical(const struct cluster *c);

/* Replicated queues' Raft groups (replica.c). A group's id is the same on every member (the
 * broker uses the metadata log index of the queue's declare, unique in the cluster); its
 * members are the first `size` nodes of the configured list taken in turn from the node
 * named first (all of them when size is 0 or more than there are): the same on every node,
 * whichever node opens it first. Its log is under <data_dir>/cluster/q<id>. The broker
 * submits commands and applies the committed ones as for the metadata group; a member that
 * starts to lead, or stops, is told through changed. */
struct cluster_replica;
struct raft_buffer;
struct cluster_replica_ops {
    /* This member's role or the group's leader changed: leads says whether it leads now, in
     * term; leader names the member that leads ("" while none is known). Loop. */
    void (*changed)(void *arg, bool leads, uint64_t term, const char *leader);
    /* The group's state machine, which the Raft thread runs (raft_arg; nothing of the loop's
     * may be touched): each committed command in log order, whose result goes to its
     * submitter's done callback; snapshots of the state as of the last command applied
     * (canonical raft's contract: one buffer, raft_malloc'ed, raft's from then on; RAFT_BUSY:
     * not now) and their restore (a start's, or a leader's for a member too far behind; buf's
     * memory is the state machine's then). */
    int (*apply)(void *raft_arg, uint64_t index, const uint8_t *cmd, size_t len);
    /* after the commands of one log entry (what they changed may be written together) */
    void (*applied)(void *raft_arg, uint64_t index);
    int (*snapshot)(void *raft_arg, struct raft_buffer *bufs[], unsigned *n_bufs);
    int (*restore)(void *raft_arg, struct raft_buffer *buf);
    /* Loop: the group is closed (or never started): raft_arg is the caller's again; destroyed:
     * it was closed by cluster_replica_close(r, true). */
    void (*closed)(void *raft_arg, bool destroyed);
    /* Loop, optional: restore replaced the state (a start's, or a leader's snapshot). */
    void (*restored)(void *arg);
};

/* Whether this node is one of the members such a group would have. */
bool cluster_replica_member(const struct cluster *c, const char *first, unsigned size);
/* The names of the members (up to cap), in the order above. Returns how many. */
unsigned cluster_replica_members(const struct cluster *c, const char *first, unsigned size,
                                 char (*names)[CLUSTER_NODE_NAME_MAX], unsigned cap);
/* Opens group id with this node as a member (creating its log when new: with the members
 * first and size name; first NULL: none, for a member whose log has them, or one being added,
 * whose log the leader fills) and starts it: ops->changed runs on the loop with arg until
 * cluster_replica_close, the state machine's ops on the Raft thread with raft_arg until
 * ops->closed. Returns the handle (the caller's until it closes it), or NULL with errno
 * (ENOMEM, ESHUTDOWN, EEXIST: id is open already, ENOENT: this node is not one of those
 * members); ops->closed is not called then. A group that fails to start is logged and stays
 * silent. */
struct cluster_replica *cluster_replica_open(struct cluster *c, uint64_t id, const char *first,
                                             unsigned size, const struct cluster_replica_ops *ops,
                                             void *arg, void *raft_arg);
/* A group as this member sees it now, for the management API. */
struct cluster_replica_view {
    char leader[CLUSTER_NODE_NAME_MAX]; /* "" while none is known */
    unsigned n_members;
    char names[CLUSTER_MAX_NODES][CLUSTER_NODE_NAME_MAX];
    bool online[CLUSTER_MAX_NODES];            /* this node, or one whose link is up */
    uint64_t term, commit_index, last_applied; /* this member's Raft, as it last looked */
};
/* False when the group is not open (or no longer). */
bool cluster_replica_view(const struct cluster_replica *r, struct cluster_replica_view *v);
/* Submits a command to the group, as cluster_meta_submit does to the metadata group. */
int cluster_replica_submit(struct cluster_replica *r, const void *cmd, size_t len,
                           cluster_done_fn done, void *arg);
/* Runs fn(raft_arg, arg) on the Raft thread, then done(arg) on the loop, even if r is closed
 * by then. Returns 0, or -1 with errno (ESHUTDOWN: the group is not running, ENOMEM): neither
 * is called then. */
int cluster_replica_call(struct cluster_replica *r, void (*fn)(void *raft_arg, void *arg),
                         void (*done)(void *arg), void *arg);
/* Makes the cluster's node named node a member of r's group (add: a spare first, then a
 * voter once raft has caught it up, when done runs; the node is to open the group itself,
 * with first NULL), or no longer one (running or not, this one too: a leader steps down once
 * it is out), through the group's leader. done(arg, outcome) runs on the loop
 * (CLUSTER_CHANGE_NOT_MEMBER: no such member to remove). Returns 0, or -1 with errno (ENOENT: no
 * such node in the cluster, ESHUTDOWN, ENOMEM): done is then not called. */
int cluster_replica_change(struct cluster_replica *r, const char *node, bool add,
                           cluster_change_fn done, void *arg);
/* This member, if it leads, hands the leadership to the member named to (NULL: the most
 * up-to-date other one), soon; nothing happens when it is not a member, or does not take it
 * within an election timeout. */
void cluster_replica_hand_over(struct cluster_replica *r, const char *to);
/* Closes the group and frees r: ops->changed runs no more; commands in flight are answered
 * CLUSTER_MAYBE; ops->closed follows once raft has closed. With destroy (the queue was
 * deleted), its log is deleted then. */
void cluster_replica_close(struct cluster_replica *r, bool destroy);

/* Stops the cluster's part of the node: closes the replicated queues' groups still open (their
 * handles stay the broker's to close, and do nothing more) and leaves the metadata group
 * (waiting a little for the changes in flight), closes the listener, then calls done(arg) on
 * the loop. */
void cluster_close(struct cluster *c, void (*done)(void *arg), void *arg);

/* Frees c, closing it first (running base's loop until it is) if cluster_close was not
 * called. NULL is ignored. */
void cluster_free(struct cluster *c);

#endif
