/* The network front: listeners and AMQP connections. main() creates one server on the event
 * loop, asks it to listen on the configured addresses, and asks it to shut down on SIGTERM. */
#ifndef WARREN_NET_H
#define WARREN_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "warren/cluster.h"
#include "warren/wire.h"

struct event_base;
struct sockaddr;
struct conf;
struct auth_db;
struct vhost_registry;
struct net_server;
struct cluster;

/* What the server borrows for its whole life; the caller keeps all of it alive. */
struct net_server_env {
    struct event_base *base;
    const struct conf *conf;
    struct auth_db *auth; /* hashes passwords at the first login */
    struct vhost_registry *vhosts;
    struct cluster *cluster; /* NULL: alone; else the topology changes through its log */
};

/* NULL on ENOMEM (logged). */
struct net_server *net_server_new(const struct net_server_env *env);

/* Binds every configured listener, plain (listeners.tcp) and TLS (listeners.ssl, after
 * loading ssl_options' certificate and key). A bare port binds 0.0.0.0 and :: (the latter
 * skipped with a warning when the host has no IPv6). Returns 0, or -1 if any address cannot
 * be bound or the certificate or key cannot be loaded (logged with the file or address and
 * the reason). */
int net_server_listen(struct net_server *s);

/* SIGHUP: remakes the TLS listeners' context from the same ssl_options (the certificate and
 * key files read again). New handshakes use it; open connections keep theirs. A file that
 * cannot be loaded keeps the old context and logs why. 0, or -1 if it was kept. Nothing to
 * do (0) without TLS listeners. */
int net_server_tls_reload(struct net_server *s);

/* The cluster_name server property that connection.start sends from now on (connections
 * that have had theirs keep it): name (copied), or NULL for the default, warren@<host>. The
 * admin layer sets it from the global parameter cluster_name. Returns 0, or -1 on ENOMEM
 * (logged) with the name before kept. */
int net_server_set_cluster_name(struct net_server *s, const char *name);
/* The cluster's name while no global parameter sets one, into buf: conf's cluster_name when
 * given; else in a cluster the first node cluster_formation.classic_config.nodes lists (the
 * same on every node); else the node's name (before its @) with the host's full name, as
 * RabbitMQ's default (warren@<host> for the default node name). */
void net_default_cluster_name(const struct conf *conf, char *buf, size_t cap);

/* Makes a connection of fd, a stream socket already connected to a client at peer (peerlen
 * bytes): what accepting it would have made, peer deciding as there whether the client is on
 * loopback (which the guest user needs). fd is made non-blocking. Returns 0, the connection
 * then owning fd, or -1 (ENOMEM; logged) with fd still the caller's. Tests drive the real
 * connection code through one end of a socketpair this way. */
int net_server_adopt(struct net_server *s, int fd, const struct sockaddr *peer, int peerlen);

/* Stops accepting, closes open connections with 320 CONNECTION_FORCED (others just close),
 * and calls done(arg) from the loop once every connection is gone, or after a grace period
 * for peers that never answer. */
void net_server_shutdown(struct net_server *s, void (*done)(void *arg), void *arg);

/* Closes every connection of user u (deleted), or every connection to vhost v (about to be
 * deleted), with 320 CONNECTION_FORCED and text ("user 'u' is deleted"). A vhost's
 * connections let go of it at once (channels, consumers and exclusive queues released,
 * no longer counted), so that it may be freed right after. */
struct auth_user;
struct stats_obj;
struct vhost;
void net_server_close_user(struct net_server *s, const struct auth_user *u, const char *text);
void net_server_close_vhost(struct net_server *s, const struct vhost *v, const char *text);

/* A connection's socket counters (conn_io.c), by RabbitMQ's names. */
enum net_io {
    NET_IO_RECV_OCT = 0, /* bytes received */
    NET_IO_RECV_CNT,     /* segments received */
    NET_IO_SEND_OCT,     /* bytes sent (acknowledged by the peer) */
    NET_IO_SEND_CNT,     /* segments sent */
    NET_IO_N
};

/* A connection as the HTTP API lists it (GET /api/connections). Everything borrows from the
 * connection and is valid during the callback only. */
struct net_conn_info {
    const char *name; /* RabbitMQ's: "127.0.0.1:43922 -> 127.0.0.1:5672" */
    const char *peer_host, *host;
    uint16_t peer_port, port;
    const char *user;                 /* NULL before the login */
    const char *vhost;                /* NULL before connection.open */
    const char *state;                /* "starting", "tuning", "opening", "running" or "closing" */
    const uint8_t *client_properties; /* the start-ok's table entries (wire_table_iter) */
    uint32_t client_properties_len;
    uint32_t channels, frame_max, channel_max;
    uint16_t heartbeat;
    uint64_t connected_at;    /* milliseconds since the epoch */
    uint64_t io[NET_IO_N];    /* now */
    double io_rate[NET_IO_N]; /* per second over the last statistics interval */
};
/* Calls fn for every connection, in the order they were accepted. fn must not close any. */
void net_server_conn_foreach(struct net_server *s,
                             void (*fn)(void *arg, const struct net_conn_info *ci), void *arg);
/* A channel as /api/channels shows it. */
struct net_chan_info {
    const struct net_conn_info *conn;
    uint16_t number;
    bool confirm, transactional;
    uint16_t prefetch_count, global_prefetch_count; /* basic.qos: consumers', the channel's */
    uint32_t consumer_count;
    uint64_t messages_unacknowledged, messages_unconfirmed;
    const struct stats_obj *stats; /* its message_stats (stats.h) */
};
/* A consumer as /api/consumers shows it. */
struct net_cons_info {
    const struct net_chan_info *chan;
    const char *tag;
    uint8_t tag_len;
    const char *queue, *vhost; /* its queue's name and vhost */
    bool ack_required, exclusive;
    uint16_t prefetch_count;
    int32_t priority; /* x-priority */
};
/* Calls fn for every open channel of every connection (connections in the order they were
 * accepted, channels in no particular order). fn must close nothing. */
void net_server_chan_foreach(struct net_server *s,
                             void (*fn)(void *arg, const struct net_chan_info *ci), void *arg);
/* The same for every consumer of every channel. */
void net_server_cons_foreach(struct net_server *s,
                             void (*fn)(void *arg, const struct net_cons_info *ci), void *arg);
/* Closes the connection called name with 320 CONNECTION_FORCED and text. Returns false if
 * no connection has that name. */
bool net_server_close_conn(struct net_server *s, const char *name, const char *text);

/* Whether the memory and disk alarms are on. */
void net_server_alarms(const struct net_server *s, bool *memory, bool *disk);

/* Free bytes on the data directory's filesystem at the last check, and disk_free_limit. */
void net_server_disk(const struct net_server *s, uint64_t *free_bytes, uint64_t *limit);

struct stats_hist;
/* The event loop's lag: how late a timer due every 100 ms fired, in microseconds. */
void net_server_loop_lag(const struct net_server *s, struct stats_hist *out);

/* vm_memory_high_watermark in bytes: message memory past which publishers are blocked. */
uint64_t net_server_memory_limit(const struct net_server *s);

/* disk_free_limit in bytes: free space on data_dir's filesystem below which the disk alarm
 * is on. */
uint64_t net_server_disk_limit(const struct net_server *s);

/* Frees listeners and any remaining connections. */
void net_server_free(struct net_server *s);

/* What the AMQP methods do, for the HTTP API too (src/net/chan_decl.c): an error is an AMQP
 * reply code with RabbitMQ's text. */
struct net_decl_err {
    uint16_t code;
    char text[512];
};
struct auth_perm;
struct vhost;
struct wire_exchange_declare;
/* exchange.declare in vh for user (perm: its permissions there; NULL: none; user NULL: the
 * HTTP API's Unix socket, allowed everything). Returns 0
 * (*created: whether it is new) or -1 with err. */
int net_exch_declare(struct vhost *vh, const struct auth_perm *perm, const char *user,
                     const struct wire_exchange_declare *d, bool *created,
                     struct net_decl_err *err);
struct queue_owner;
struct queue;
struct wire_queue_declare;
/* Where a queue declared in a cluster lives (src/net/topology.c). */
struct net_queue_home {
    const char *node;       /* its home node's name when it is another, else NULL */
    const char *owner_node; /* the declaring connection's node (queue.owner_node's) */
    uint64_t owner_id;      /* an exclusive queue's owner's id (queue.owner_id) */
    uint64_t group_id; /* a replicated queue's group (queue.group_id): its declare's log index */
};
/* queue.declare (not passive) of name (d->queue, or the name made for an empty one) in vh for
 * user, from a connection whose exclusive queues are own (NULL: none, the HTTP API, which
 * cannot declare exclusive queues); a new queue's home is home's (NULL: this node, alone).
 * Warnings are logged with log_ctx (NULL: none). Returns 0 with *out (*created: whether it
 * is new), or -1 with err. */
int net_queue_declare(struct vhost *vh, const struct auth_perm *perm, const char *user,
                      struct queue_owner *own, const struct net_queue_home *home,
                      const char *log_ctx, struct wire_str name, const struct wire_queue_declare *d,
                      struct queue **out, bool *created, struct net_decl_err *err);
/* queue.purge of name in vh for user, from a connection whose exclusive queues are own (NULL:
 * none, the HTTP API). Returns 0 (*count: messages purged), or -1 with err. In a cluster, a
 * queue whose home is another node is not purged here: 0 with *remote that queue (else NULL),
 * for the caller to ask its home (net_queue_purge_remote). */
int net_queue_purge(struct vhost *vh, const struct auth_perm *perm, const char *user,
                    const struct queue_owner *own, struct wire_str name, uint64_t *count,
                    struct queue **remote, struct net_decl_err *err);
/* queue.delete (if_unused, if_empty; a missing queue is deleted). Returns 0 (*count: messages
 * deleted) or -1 with err. */
int net_queue_delete(struct vhost *vh, const struct auth_perm *perm, const char *user,
                     const struct queue_owner *own, struct wire_str name, bool if_unused,
                     bool if_empty, uint64_t *count, struct net_decl_err *err);
/* exchange.delete (a missing one is deleted). Returns 0 or -1 with err. */
int net_exch_delete(struct vhost *vh, const struct auth_perm *perm, const char *user,
                    struct wire_str name, bool if_unused, struct net_decl_err *err);
/* queue.bind or exchange.bind (to_queue: destination is a queue), or their unbind, in vh for
 * user u (perm: its permissions there; u NULL: the HTTP API's Unix socket, allowed
 * everything), from a connection whose exclusive queues are own (NULL: none). Checks as
 * RabbitMQ does, in its order: write on the destination, the default exchange, read on the
 * source, the topic permission on the routing key, then existence and the arguments. Unbinding
 * what does not exist succeeds; an auto-delete source left without bindings is deleted.
 * Returns 0, or -1 with err. */
int net_bind(struct vhost *vh, const struct auth_perm *perm, const struct auth_user *u,
             const struct queue_owner *own, bool unbind, bool to_queue, struct wire_str destination,
             struct wire_str source, struct wire_str routing_key, struct wire_table args,
             struct net_decl_err *err);

/* Not an AMQP reply code: the cluster did not make the change (its text says why: no leader,
 * or it may or may not have been made, or the node is stopping). */
#define NET_DECL_UNAVAILABLE 1

/* Whether s (NULL: none) is in a cluster: then exchanges, queues' definitions and bindings
 * change only through the cluster's metadata log (src/net/topology.c), and the HTTP API makes
 * its changes with net_topo_* instead of net_exch_declare and the others. */
bool net_clustered(const struct net_server *s);
/* A change's answer once it is applied on this node: err's code 0 when it was made (created:
 * whether a declare made its object; count: the messages a queue's deletion deleted), else
 * the apply's code and text as net_exch_declare and the others give them, or
 * NET_DECL_UNAVAILABLE. err is valid during the call only. */
typedef void (*net_topo_done_fn)(void *arg, const struct net_decl_err *err, bool created,
                                 uint64_t count);
/* The HTTP API's changes in a cluster (net_clustered): exchange.declare, exchange.delete,
 * queue.declare (d->queue named, not exclusive), queue.delete, and bind or unbind (as
 * net_bind) in vh for user u (NULL: the Unix socket's, allowed everything), submitted to the
 * cluster's log; every node applies them alike. A queue made so lives on this node. Returns 0,
 * done(arg) to be called once (from a later loop turn; with NET_DECL_UNAVAILABLE when the
 * server is freed first), or -1 with err (done not called): names longer than 255 bytes, out
 * of memory, the cluster not taking it, or for a deletion with if_unused or if_empty, what
 * this node checks before (as net_queue_delete does; a queue living on another node, which
 * alone knows its consumers and messages, is checked by asking it first: 404 when it is
 * down). */
int net_topo_exch_declare(struct net_server *s, struct vhost *vh, const struct auth_user *u,
                          const struct wire_exchange_declare *d, net_topo_done_fn done, void *arg,
                          struct net_decl_err *err);
int net_topo_exch_delete(struct net_server *s, struct vhost *vh, const struct auth_user *u,
                         struct wire_str name, bool if_unused, net_topo_done_fn done, void *arg,
                         struct net_decl_err *err);
int net_topo_queue_declare(struct net_server *s, struct vhost *vh, const struct auth_user *u,
                           const struct wire_queue_declare *d, net_topo_done_fn done, void *arg,
                           struct net_decl_err *err);
int net_topo_queue_delete(struct net_server *s, struct vhost *vh, const struct auth_user *u,
                          struct wire_str name, bool if_unused, bool if_empty,
                          net_topo_done_fn done, void *arg, struct net_decl_err *err);
int net_topo_bind(struct net_server *s, struct vhost *vh, const struct auth_user *u, bool unbind,
                  bool to_queue, struct wire_str destination, struct wire_str source,
                  struct wire_str routing_key, struct wire_table args, net_topo_done_fn done,
                  void *arg, struct net_decl_err *err);

/* A change of the members of a replicated queue's group (rabbitmq-queues add_member and
 * delete_member; grow and shrink are made of them). */
enum net_member_op {
    NET_MEMBER_ADD,
    NET_MEMBER_ADD_IF_EVEN, /* only if the group has an even number of members (grow even) */
    NET_MEMBER_REMOVE,
};
/* Makes op for the cluster's node named node on the group of the queue name in vh, by the node
 * that serves the queue (asked over the node links when that is another node). Returns 0,
 * done(arg, err, false, members) to be called once from a later loop turn, members the
 * group's count after it (before it when it failed), err's code 0, WIRE_NOT_FOUND (the queue
 * is gone), WIRE_PRECONDITION_FAILED (nothing to do: node already a member, or not one, or an
 * odd number of members) or NET_DECL_UNAVAILABLE (a classic queue, node not running, no
 * leader, the last member, timed out, the node stopping) with its text; or -1 with err (done
 * not called): not in a cluster, out of memory. */
int net_queue_member_change(struct net_server *s, struct vhost *vh, struct wire_str name,
                            const char *node, enum net_member_op op, net_topo_done_fn done,
                            void *arg, struct net_decl_err *err);

/* queue.purge of q, a queue whose home is another node (net_queue_purge's remote), in vh for
 * the HTTP API: asked of its home. Returns 0, done(arg, err, false, purged) to be called once
 * from a later loop turn (err: the home's 404 or 405, or 404 when it goes down meanwhile;
 * NET_DECL_UNAVAILABLE when the server is freed first), or -1 with err (done not called): its
 * home is down, or out of memory. */
int net_queue_purge_remote(struct net_server *s, struct vhost *vh, const struct queue *q,
                           net_topo_done_fn done, void *arg, struct net_decl_err *err);

/* A replicated queue's group (quorum.c) as this node sees it, for the management API: false
 * on a node that is not one of its members. */
bool net_quorum_view(const struct queue *q, struct cluster_replica_view *v);
/* Rebalances the replicated queues' leaders over the running nodes (POST
 * /api/rebalance/queues): every running node, told so by a node message, hands some of those
 * it serves to the members serving fewest (quorum.c). Returns at once. */
void net_rebalance_queues(struct net_server *s);
/* How many of its messages this member still fetches from the others (after a snapshot:
 * quorum_fetch.c), as last counted; 0 when none. */
uint64_t net_quorum_to_fetch(const struct queue *q);

#endif
