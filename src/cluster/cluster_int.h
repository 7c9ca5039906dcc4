/* The cluster's internals shared by its files (cluster.c: the node's part and the metadata
 * group; node_msg.c: the broker's messages between nodes and the metadata's visibility).
 * Cluster layer only. */
#ifndef WARREN_CLUSTER_INT_H
#define WARREN_CLUSTER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "group.h"
#include "raft_thread.h"
#include "transport.h"
#include "warren/cluster.h"

/* A node's description for the others' /api/nodes (cluster_set_node_info): its text. */
#define CLUSTER_MSG_NODE_INFO CLUSTER_GROUP_MSG_END
/* The broker's messages (cluster_send). */
#define CLUSTER_MSG_BROKER (CLUSTER_GROUP_MSG_END + 1)
/* Metadata visibility (cluster_meta_wait_visible): "tell me once you applied the metadata log
 * up to index", [u64 token][u64 index], and its answer, [u64 token]. */
#define CLUSTER_MSG_META_WAIT (CLUSTER_GROUP_MSG_END + 2)
#define CLUSTER_MSG_META_APPLIED (CLUSTER_GROUP_MSG_END + 3)
struct cluster_visible;
struct cluster_remote_wait;
struct cluster_replica;
struct cluster {
    struct event_base *base;             /* borrows */
    struct cluster_thread *thread;       /* owns */
    struct cluster_transport *transport; /* owns; lives on the Raft thread */
    struct cluster_group *meta;          /* owns, until closed */
    char self_name[CLUSTER_NODE_NAME_MAX];
    raft_id self_id;
    char self_address[CLUSTER_ADDRESS_MAX];
    uint64_t marked_term; /* the last term this node, as leader, submitted its marker for */
    /* the configured nodes, in the configuration's order (this one included): the replicated
     * queues' groups take their members from them */
    struct cluster_member nodes[CLUSTER_MAX_NODES];
    unsigned n_nodes;
    char data_dir[4096];
    /* replicated queues' groups (replica.c): the handles the broker holds, the groups not
     * closed yet, and (Raft thread) the started ones, for their node-link messages */
    LIST_HEAD(, cluster_replica) replicas;
    unsigned n_replica_groups;
    struct cluster_replica *replicas_raft;
    struct {
        cluster_meta_apply_fn fn;
        void *arg;
    } appliers[256]; /* by kind, the command's first byte */
    /* starting: the Raft thread opens the transport and the group while the broker waits */
    pthread_mutex_t setup_lock;
    pthread_cond_t setup_cond;
    int setup_rc; /* 1 while under way, then 0 or -1 */
    char setup_err[512];
    char bind[64];
    uint16_t port;
    unsigned char secret[32]; /* the transport's key, until the set-up has passed it on */
    struct ssl_ctx_st *tls;   /* owns until the set-up has passed it on; NULL: plain TCP */
    struct cluster_call setup_call;
    /* joining (Raft thread): the other listed nodes' addresses, whether this node's metadata
     * was pristine, the round of questions under way */
    unsigned n_peers;
    char peers[CLUSTER_GROUP_MAX_MEMBERS][CLUSTER_ADDRESS_MAX];
    bool pristine;
    bool asking;       /* the questions are under way: the group is not started */
    bool meta_started; /* the group started: join questions get a real answer */
    unsigned join_round, join_waiting;
    bool join_member, join_retry;
    uint64_t join_start;
    uv_timer_t join_timer;
    bool join_timer_open;
    /* node descriptions: this node's sent every interval, the others' last received */
    char *(*info_fn)(void *arg);
    void *info_arg;
    struct event *info_timer; /* owns */
    struct {
        raft_id id;
        char *text; /* owns */
    } peer_info[CLUSTER_MAX_NODES];
    /* the broker's messages: who gets those received (cluster_on_node_message) */
    cluster_node_msg_fn msg_fn;
    void *msg_arg;
    /* metadata visibility (node_msg.c): the last index applied here; this node's waits for
     * the others, and the others' for this one */
    uint64_t applied_index;
    struct cluster_visible *visible; /* owns */
    uint64_t next_token;
    struct event *visible_timer;              /* owns; NULL until the first wait */
    struct cluster_remote_wait *remote_waits; /* owns */
    /* closing */
    bool closing, closed;
    bool meta_closed, transport_closing;
    void (*done)(void *arg);
    void *done_arg;
    struct cluster_call join_stop_call, transport_close_call, closed_call;
};

/* The length of the name@host part of a Raft address name@host:port (cluster.c). */
size_t cluster_address_name_len(const char *address);

/* The broker's messages and metadata visibility (node_msg.c). */
/* Raft thread: a node-link message of type CLUSTER_MSG_BROKER or above from peer, for the
 * broker's loop. */
void cluster_node_msg_received(struct cluster *c, uint64_t peer, uint8_t type, const uint8_t *bytes,
                               size_t len);
/* After index was applied here (cluster_meta_apply): the other nodes' visibility waits it
 * satisfies are answered. */
void cluster_meta_applied(struct cluster *c, uint64_t index);
/* Frees what waits for visibility (answering it), at close. */
void cluster_visible_free(struct cluster *c);

/* Replicated queues' groups (replica.c). */
/* Raft thread: a node-link message for group (not the metadata group's) from peer. */
void cluster_replica_on_message(struct cluster *c, uint64_t group, uint64_t peer, uint8_t type,
                                const uint8_t *body, size_t len);
/* Closing: closes every group still open (cluster_close). */
void cluster_replicas_close(struct cluster *c);
/* A group is closed (or never started): the close goes on once none is left (cluster.c). */
void cluster_replicas_closed(struct cluster *c);

/* The member of the metadata group (a node of the cluster) named name, or NULL. */
const struct cluster_member *cluster_member_named(const struct cluster *c, const char *name);

#endif
