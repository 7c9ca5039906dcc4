/* The nodes' transport for Raft: one TCP listener per node for every Raft group it runs, and
 * a handshake that keeps strangers out. raft_uv's own TCP transport has one listener per group
 * (a port each), no authentication and no TCP_NODELAY (small pipelines then stall on Nagle and
 * delayed ACKs, ~40 ms a step): this one replaces it behind raft_uv's
 * struct raft_uv_transport interface, so raft_uv's disk log is used unchanged.
 *
 * A connection names the group it serves and proves that both ends know the cluster's secret
 * (the Erlang cookie's role in RabbitMQ): the acceptor sends a random challenge, the
 * connector answers with the group, its Raft id and address, the Raft id it means to reach
 * and an HMAC-SHA256 over both challenges and those fields, keyed by the secret; the acceptor
 * checks it (and that it is the member meant, not one a stale address now reaches), answers
 * with its own HMAC (so that the connector knows it reached a member, not an impostor), and
 * hands the stream to the group's raft_uv, or to the node link (below). A connection that
 * fails the check is closed and logged. Every connection has TCP_NODELAY and TCP keepalive
 * with TCP_USER_TIMEOUT, so that a write to a dead peer fails within seconds. At most 256
 * accepted connections may be in their handshake at once: more are closed at once.
 *
 * Addresses are the nodes' Raft addresses, "name@host:port" (the node name with the port of
 * its cluster listener): the transport connects to host:port.
 *
 * Everything here runs on the Raft thread's libuv loop (src/cluster/raft_thread.c). */
#ifndef WARREN_CLUSTER_TRANSPORT_H
#define WARREN_CLUSTER_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct cluster_transport;

/* A node's transport, listening on bind_host:port once cluster_transport_listen is called.
 * secret (copied) is the shared secret, at least 16 bytes. Returns NULL with err filled. */
struct cluster_transport *cluster_transport_new(uv_loop_t *loop, const char *bind_host,
                                                uint16_t port, const uint8_t *secret,
                                                size_t secret_len, char *err, size_t errlen);

/* Binds and listens. Returns 0, or -1 with err filled ("cannot listen on HOST:PORT: reason"). */
int cluster_transport_listen(struct cluster_transport *ct, char *err, size_t errlen);

/* The port listened on (the one given, or the one the system chose when that was 0), once
 * cluster_transport_listen succeeded; 0 before. */
uint16_t cluster_transport_port(const struct cluster_transport *ct);

/* How long a connection may take to complete the handshake, in either direction, before it
 * is closed (default 10 s; tests shorten it). Applies to the connections started after it. */
void cluster_transport_set_handshake_timeout(struct cluster_transport *ct, unsigned msecs);

/* The connections started after it are TLS with ctx (a reference taken; tls_node_ctx_new's),
 * both ways: the peer's certificate is checked as ctx says before the handshake above
 * starts, which then runs inside TLS, as everything after it. */
struct ssl_ctx_st;
void cluster_transport_set_tls(struct cluster_transport *ct, struct ssl_ctx_st *ctx);

/* Fills t so that a raft_uv io created with it serves group `group` over ct: the connections
 * t makes name the group, and the accepted connections that name it are passed to the accept
 * callback raft_uv gives t->listen (connections naming it before that are refused). t (its
 * data field is kept) belongs to the caller and must outlive the raft_uv io: raft_uv calls
 * t->close when the io closes, and the group is free again once the close starts. When
 * raft_uv never called t->init (raft_init failed), it never calls t->close either: the caller
 * calls t->close(t, NULL) then. Returns 0, or -1 when the group already has a transport, is
 * CLUSTER_TRANSPORT_LINK_GROUP, or on allocation failure. */
int cluster_transport_group(struct cluster_transport *ct, uint64_t group,
                            struct raft_uv_transport *t);

/* Node links: besides Raft's connections, which exist only while a group sends, each node
 * keeps a link to every other node of the cluster, over the same listener and handshake
 * (naming group CLUSTER_TRANSPORT_LINK_GROUP, which Raft groups never use): it tells which
 * nodes run (see cluster_transport_peer_alive; links send a heartbeat every 500 ms) and
 * carries the broker's own messages between nodes.
 *
 * Each node connects out to each peer it links and sends its messages on that connection, so
 * that a pair has two connections, one made by each side: no tie-break between two nodes
 * connecting to each other at once, and each side's messages keep their order on the one
 * stream that carries them. Heartbeats go both ways on both, so each side notices a dead
 * connection by its silence. A failed or closed connection is made again after 500 ms,
 * doubling up to 2 s while attempts fail. Messages queued on a connection that closes are
 * dropped: the caller learns of it from cluster_transport_peer_alive, and its own protocol
 * decides what to send again. */
#define CLUSTER_TRANSPORT_LINK_GROUP 0

/* The most a link's output may hold before cluster_transport_send refuses more. */
#define CLUSTER_TRANSPORT_OUTPUT_MAX (64u << 20)
/* The largest message a node accepts from a peer by default: a bigger one closes the link. */
#define CLUSTER_TRANSPORT_MESSAGE_MAX (256u << 20)

/* This node's Raft id (not 0) and address ("name@host:port", 1..255 bytes), which links'
 * hellos carry and which incoming link hellos must name. Changing them closes the links'
 * connections, made again with the new ones. Returns 0, or -1 when they are out of range. */
int cluster_transport_set_self(struct cluster_transport *ct, uint64_t id, const char *address);

/* Keeps a link to the node peer_id at address ("name@host:port"), and accepts the links that
 * node makes: connecting starts at once. Idempotent; a changed address drops the connection
 * to the old one and connects to the new one. Returns 0, or -1 before set_self, for this
 * node's own id or 0, a bad address, or on allocation failure. */
int cluster_transport_link(struct cluster_transport *ct, uint64_t peer_id, const char *address);

/* Drops the link to peer_id, if any: its connections both ways close, its queued messages are
 * dropped, and its links to this node are refused from now on. */
void cluster_transport_unlink(struct cluster_transport *ct, uint64_t peer_id);

/* Whether the linked node peer_id runs and can be sent to: this node's stream to it is up,
 * and anything (a heartbeat, a message) arrived from it, on either stream, within the last
 * 2 s by the loop's clock (uv_now). false for a node not linked. */
bool cluster_transport_peer_alive(const struct cluster_transport *ct, uint64_t peer_id);

/* Queues a message of `type` (1..255: 0 is the links' heartbeat) and len bytes (copied) on the
 * link to peer_id; messages to one peer arrive in the order sent, to the peer's on_message
 * callback. Returns 0, or -1 when the link to the peer is not up, its output already holds
 * CLUSTER_TRANSPORT_OUTPUT_MAX bytes or more, len exceeds the message limit, or on
 * allocation failure: nothing was queued, the caller decides what to do. */
int cluster_transport_send(struct cluster_transport *ct, uint64_t peer_id, uint8_t type,
                           const void *bytes, size_t len);

/* Sets the callback that gets every message from linked peers (never heartbeats): the sender's
 * id, the type, and the bytes, which live until fn returns. fn may call any function here,
 * cluster_transport_close included; it is never called once the close has started. */
void cluster_transport_on_message(struct cluster_transport *ct,
                                  void (*fn)(void *arg, uint64_t peer_id, uint8_t type,
                                             const uint8_t *bytes, size_t len),
                                  void *arg);

/* The largest message accepted from peers (default CLUSTER_TRANSPORT_MESSAGE_MAX; tests lower
 * it) and sent to them: a bigger incoming one closes its link with a log line. */
void cluster_transport_set_message_max(struct cluster_transport *ct, size_t bytes);

/* Joining: a node whose metadata group is not formed yet asks the nodes it knows of whether
 * it is a member, over a one-shot connection: the same handshake, naming group
 * CLUSTER_TRANSPORT_JOIN_GROUP, its id and address and any target (any node holding the
 * secret is asked, linked or not), then one byte of answer from the acceptor, which closes. */
#define CLUSTER_TRANSPORT_JOIN_GROUP UINT64_MAX

/* Asks the node at address (after set_self): cb(arg, answer) gets the byte it answered, or -1
 * when it did not (refused, closed, no handshake or answer within the handshake timeout).
 * cb runs once, from a loop callback (the transport's close included). Returns 0, or -1 for a
 * bad address, before set_self, while closing or on ENOMEM: cb is then not called. */
int cluster_transport_join(struct cluster_transport *ct, const char *address,
                           void (*cb)(void *arg, int answer), void *arg);

/* Sets who answers the join questions (none before: they are refused): fn(arg, token, id,
 * address) gets the asker's Raft id and address, and answers with
 * cluster_transport_join_answer(ct, token, byte) now or later, before the handshake timeout
 * (the question is closed unanswered then). */
void cluster_transport_on_join(struct cluster_transport *ct,
                               void (*fn)(void *arg, uint64_t token, uint64_t id,
                                          const char *address),
                               void *arg);

/* Answers the join question token (nothing when it is closed already). */
void cluster_transport_join_answer(struct cluster_transport *ct, uint64_t token, uint8_t answer);

/* Stops listening, closes the handshakes under way and the links (their queued messages are
 * dropped) and frees ct once its handles are closed and the groups' closes have finished,
 * then calls done(arg) (on the loop, never from within this call). Every group's close must
 * have started first. */
void cluster_transport_close(struct cluster_transport *ct, void (*done)(void *arg), void *arg);

#endif
