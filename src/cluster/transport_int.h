/* What transport.c (the listener, the handshake, Raft groups) and link.c (the node links) of
 * the nodes' transport share: the transport's struct, and the calls between the handshake and
 * the links. Not for other files: they use transport.h. */
#ifndef WARREN_CLUSTER_TRANSPORT_INT_H
#define WARREN_CLUSTER_TRANSPORT_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

#include "transport.h"

#define CT_ADDR_MAX 255 /* the longest address a hello carries */

struct ct_group;
struct ct_conn;
struct ct_link;
struct ct_stream;
struct ct_tls;
struct ssl_ctx_st;

/* One node's transport. Its fields from self_id on are link.c's (but for linking, the link
 * handshakes, which transport.c owns); transport.c reads self_id to check link hellos. */
struct cluster_transport {
    uv_loop_t *loop;                 /* borrows */
    uv_tcp_t listener;               /* inited by cluster_transport_new, closed by _close */
    bool listener_open;              /* listener not closed yet */
    char bind_host[CT_ADDR_MAX + 1]; /* as given */
    uint16_t port;                   /* as given */
    uint16_t bound_port;             /* as bound; 0 before cluster_transport_listen */
    uint8_t *secret;                 /* owns */
    size_t secret_len;
    unsigned timeout_ms;           /* handshake timeout */
    LIST_HEAD(, ct_group) groups;  /* borrows: the registered groups */
    unsigned n_groups;             /* groups allocated, closing ones included */
    LIST_HEAD(, ct_conn) incoming; /* owns: the accepted connections in their handshake */
    unsigned n_incoming;           /* in incoming */
    unsigned n_refusing;           /* connections over the cap, closing */
    unsigned n_refused;            /* refused since the last log line about it */
    uint64_t refused_logged;       /* uv_now of that line; 0: none yet */
    LIST_HEAD(, ct_conn) linking;  /* owns: our handshakes to linked peers */
    bool closing;                  /* cluster_transport_close was called */
    void (*done)(void *arg);       /* from cluster_transport_close */
    void *done_arg;
    /* cluster_transport_on_join's; join_seq numbers the questions for their answers */
    void (*on_join)(void *arg, uint64_t token, uint64_t id, const char *address);
    void *on_join_arg;
    uint64_t join_seq;
    /* TLS between the nodes (cluster_transport_set_tls; owns a reference), NULL: plain TCP;
     * the relays of the connections (transport_tls.c), closing ones included */
    struct ssl_ctx_st *tls;
    LIST_HEAD(, ct_tls) relays;
    unsigned n_relays;

    uint64_t self_id; /* cluster_transport_set_self; 0 before */
    char self_address[CT_ADDR_MAX + 1];
    LIST_HEAD(, ct_link) links;     /* owns */
    unsigned n_links;               /* links allocated, unlinked ones still closing included */
    LIST_HEAD(, ct_stream) streams; /* owns: the links' streams, both ways */
    uv_timer_t tick;                /* heartbeats and silence checks */
    bool tick_open;                 /* tick not closed yet */
    size_t msg_max;                 /* the largest message sent or accepted */
    void (*on_message)(void *arg, uint64_t peer_id, uint8_t type, const uint8_t *bytes, size_t len);
    void *on_message_arg;
};

/* transport.c */

/* Frees ct once its close has finished (every handle closed, every part freed). */
void cluster_ct_maybe_closed(struct cluster_transport *ct);

/* Whether address is "name@host:port" (name optional) with a usable host and port. */
bool cluster_ct_address_valid(const char *address);

/* Starts a handshake to the linked node peer_id at address, for link l: on success
 * cluster_link_connected(l, ...) gets the stream, on failure cluster_link_connect_failed(l)
 * is called (both from loop callbacks). Returns the handshake (owned by ct->linking), or
 * NULL with a debug log line, without a callback. */
struct ct_conn *cluster_ct_link_connect(struct cluster_transport *ct, struct ct_link *l,
                                        uint64_t peer_id, const char *address);

/* Cancels a handshake cluster_ct_link_connect started: its link is never called back. */
void cluster_ct_link_cancel(struct ct_conn *c);

/* transport_tls.c */

/* Wraps tcp (just connected, or accepted: taken on success) in TLS, as its client or server
 * end: the TLS session runs between tcp and one end of a socketpair, whose other end, a
 * raft_malloc'ed uv_pipe_t returned in *plain (its data field the caller's), carries the
 * plaintext as tcp would have: the handshake, then raft_uv's or a link's messages. The relay
 * closes both once either closes, logging a failed TLS handshake (peer names it). Returns 0,
 * or a libuv error (tcp still the caller's). */
int cluster_ct_tls_wrap(struct cluster_transport *ct, uv_tcp_t *tcp, bool client, const char *peer,
                        uv_stream_t **plain);

/* Closes every relay; cluster_transport_close calls it. ct->n_relays says when they are gone. */
void cluster_ct_tls_close(struct cluster_transport *ct);

/* link.c */

/* Sets up ct's link fields; cluster_transport_new calls it. */
void cluster_links_init(struct cluster_transport *ct);

/* Closes every link and link stream, and the tick; cluster_transport_close calls it.
 * ct->n_links, ct->streams and ct->tick_open say when they are done. */
void cluster_links_close(struct cluster_transport *ct);

/* The link to peer_id, or NULL. */
struct ct_link *cluster_link_find(const struct cluster_transport *ct, uint64_t peer_id);

/* Our handshake for l succeeded: stream (a raft_malloc'ed handle, owned from now on) is the
 * link's stream to its peer. */
void cluster_link_connected(struct ct_link *l, uv_stream_t *stream);

/* Our handshake for l failed: l connects again later. */
void cluster_link_connect_failed(struct ct_link *l);

/* A peer's link handshake succeeded: stream (a raft_malloc'ed handle, owned from now on) is
 * the stream from l's peer, at address (for log lines). */
void cluster_link_accepted(struct ct_link *l, uv_stream_t *stream, const char *address);

#endif
