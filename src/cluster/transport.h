/* The nodes' transport for Raft: one TCP listener per node for every Raft group it runs, and
 * a handshake that keeps strangers out. raft_uv's own TCP transport has one listener per group
 * (a port each), no authentication and no TCP_NODELAY (small pipelines then stall on Nagle and
 * delayed ACKs, ~40 ms a step): this one replaces it behind raft_uv's
 * struct raft_uv_transport interface, so raft_uv's disk log is used unchanged.
 *
 * A connection names the group it serves and proves that both ends know the cluster's secret
 * (the Erlang cookie's role in RabbitMQ): the acceptor sends a random challenge, the
 * connector answers with the group, its Raft id and address and an HMAC-SHA256 over both
 * challenges and those fields, keyed by the secret; the acceptor checks it, answers with its
 * own HMAC (so that the connector knows it reached a member, not an impostor), and hands the
 * stream to the group's raft_uv. A connection that fails the check is closed and logged.
 *
 * Addresses are the nodes' Raft addresses, "name@host:port" (the node name with the port of
 * its cluster listener): the transport connects to host:port.
 *
 * Everything here runs on the Raft thread's libuv loop (src/cluster/raft_thread.c). */
#ifndef WARREN_CLUSTER_TRANSPORT_H
#define WARREN_CLUSTER_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>
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

/* Fills t so that a raft_uv io created with it serves group `group` over ct: the connections
 * t makes name the group, and the accepted connections that name it are passed to the accept
 * callback raft_uv gives t->listen (connections naming it before that are refused). t (its
 * data field is kept) belongs to the caller and must outlive the raft_uv io: raft_uv calls
 * t->close when the io closes, and the group is free again once the close starts. When
 * raft_uv never called t->init (raft_init failed), it never calls t->close either: the caller
 * calls t->close(t, NULL) then. Returns 0, or -1 when the group already has a transport or on
 * allocation failure. */
int cluster_transport_group(struct cluster_transport *ct, uint64_t group,
                            struct raft_uv_transport *t);

/* Stops listening, closes the handshakes under way and frees ct once its handles are closed
 * and the groups' closes have finished, then calls done(arg) (on the loop, never from within
 * this call). Every group's close must have started first. */
void cluster_transport_close(struct cluster_transport *ct, void (*done)(void *arg), void *arg);

#endif
