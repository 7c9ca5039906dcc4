/* Inside the net subsystem: the server, connection and channel objects shared by
 * listener.c, conn.c and chan.c. Nothing outside src/net includes this. */
#ifndef WARREN_NET_INT_H
#define WARREN_NET_INT_H

#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "warren/auth.h"
#include "warren/exchange.h"
#include "warren/frame.h"
#include "warren/hmap.h"
#include "warren/idmap.h"
#include "warren/log.h"
#include "warren/net.h"
#include "warren/queue.h"
#include "warren/stats.h"
#include "warren/vhost.h"
#include "warren/wire.h"

struct bufferevent;
struct event;
struct ssl_ctx_st;
struct ssl_st;
struct evconnlistener;
struct evbuffer;
struct auth_user;
struct vhost;
struct msg;

/* Frames handled per connection per loop turn before yielding to the others. With the input
 * limit (conn_set_input_limit) this is what keeps a fast publisher from starving consumers:
 * measured with warren-perf, 1 producer / 1 consumer, 16-byte messages, prefetch 100, a
 * larger turn lets the publisher run ahead (256 frames: 1.8M msgs/s in, 540k out, latency in
 * seconds) while 64 keeps both sides together (confirms: 608k in and out, p50 0.16 ms). */
#define CONN_FRAMES_PER_EVENT 64
/* How long we wait for connection.close-ok after sending connection.close, and for our last
 * output to drain before closing the socket, in seconds. */
#define CONN_CLOSE_TIMEOUT_SEC 3
/* How long a failed login that gets no connection.close waits before its socket closes, in
 * seconds: RabbitMQ's SILENT_CLOSE_DELAY. */
#define CONN_SILENT_CLOSE_SEC 3
/* Body frames at least this big go straight into their message: what is buffered of the
 * payload is copied from the input buffer, the rest is read from the socket into the message
 * (one copy instead of two, and as few reads as the socket allows). */
#define CONN_BODY_DIRECT_MIN (16u << 10)
/* Most bytes read into the input buffer by one read (a body read straight into its message
 * takes what is left of its payload on top). libevent 2.1's bufferevent would read 4 KiB. */
#define CONN_READ_MAX (64u << 10)
/* Most bytes written to a connection's socket in one go: a 1 MiB delivery in one writev when
 * the socket takes it (256 KiB took 4 loop turns, 12% more broker CPU per message). */
#define CONN_WRITE_MAX (1u << 20)
/* Input read ahead of parsing, beyond one frame of frame_max (see conn_set_input_limit). */
#define CONN_INPUT_SLACK (64u << 10)
/* Output above CONN_OUTPUT_HIGH bytes pauses deliveries to a connection's consumers until the
 * socket has taken it below CONN_OUTPUT_LOW: a slow consumer never makes the broker buffer
 * without bound. */
#define CONN_OUTPUT_HIGH (1u << 20)
#define CONN_OUTPUT_LOW (256u << 10)
/* Message memory freed since its peak beyond which the heap is trimmed (returned to the OS). */
#define SERVER_TRIM_AFTER_FREED (32u << 20)
/* Per loop turn, the most time spent accepting connections, and the most spent reading
 * connections that are not open yet (TLS and AMQP handshakes, login), beyond the step that
 * crosses it (admit.c). A ClientHello answered costs about 0.3 ms (ECDSA P-256), 3 ms under
 * ASan; an established connection waits at most about this much per turn for new ones. */
#define SERVER_ADMIT_BUDGET_US 1000
/* A timer due every SERVER_LAG_PROBE_MS measures how late it fires: the time the event loop
 * spent on other work first, which is what every client waits when a turn runs long. */
#define SERVER_LAG_PROBE_MS 100
/* Grace period for connections to go away on shutdown, in seconds. */
#define SERVER_SHUTDOWN_GRACE_SEC 5
/* Free disk space is looked at every SERVER_DISK_CHECK_MAX_MS, and sooner when it is close to
 * disk_free_limit: as soon as a disk filling at SERVER_DISK_FILL_RATE bytes per second (what
 * RabbitMQ's disk monitor assumes) could reach the limit, but not more often than every
 * SERVER_DISK_CHECK_MIN_MS. statvfs() is one quick system call. */
#define SERVER_DISK_CHECK_MIN_MS 100
#define SERVER_DISK_CHECK_MAX_MS 1000
#define SERVER_DISK_FILL_RATE (250u * 1000 * 1000)

struct listener {
    struct listener *next;
    struct evconnlistener *evl; /* owns (closes the socket) */
    struct sockaddr_storage addr;
    bool tls; /* amqps: its connections start with a TLS handshake (server->tls_ctx) */
    struct net_server *server; /* borrows */
};

TAILQ_HEAD(conn_list, conn);
TAILQ_HEAD(chan_list, chan);

struct net_server {
    struct net_server_env env;  /* borrows everything in it */
    struct listener *listeners; /* owns */
    struct ssl_ctx_st *tls_ctx; /* owns a reference (connections hold their own); NULL: no
                                 * TLS listeners. Replaced by net_server_tls_reload. */
    struct conn_list conns;     /* owns: live connections */
    uint32_t n_conns;           /* how many are in conns */
    bool at_conn_max;           /* the listeners stopped at connection_max */
    struct conn_list dead;      /* owns: connections waiting to be freed by the reaper */
    struct event *reaper_ev;    /* owns: frees dead connections outside their callbacks */
    struct event *grace_ev;     /* owns: shutdown deadline */
    uint8_t *server_props;      /* owns: encoded server-properties table for connection.start */
    uint32_t server_props_len;
    uint64_t next_conn_id;
    struct event *memory_ev;    /* owns: periodic check of memory against the watermark */
    struct event *stats_ev;     /* owns: samples the message rates (stats.h) */
    struct event *lag_ev;       /* owns: the loop lag probe (SERVER_LAG_PROBE_MS) */
    uint64_t lag_due_us;        /* when lag_ev is due (CLOCK_MONOTONIC) */
    struct stats_hist lag_us;   /* how late lag_ev fired: net_server_loop_lag */
    uint64_t stats_sampled_ms;  /* server_now_ms() at the last sample */
    struct event *disk_ev;      /* owns: the next check of free disk space */
    struct hmap reply_to;       /* channels with a direct reply-to consumer, by token */
    uint64_t memory_limit;      /* bytes: vm_memory_high_watermark */
    uint64_t memory_peak;       /* message bytes at their highest since the last trim */
    uint64_t disk_limit;        /* bytes: disk_free_limit */
    uint64_t disk_free;         /* bytes free on data_dir's filesystem at the last check */
    bool memory_alarm;          /* messages and output take more than memory_limit */
    bool disk_alarm;            /* less than disk_limit is free; either alarm blocks publishers */
    bool disk_check_failed;     /* statvfs() failed (logged once) and has not worked since */
    int reserve_fd;             /* owns: /dev/null, given up at the fd limit to refuse one */
    struct event *accept_ev;    /* owns: turns the listeners back on after accept() failed */
    unsigned accept_pause_ms;   /* how long the listeners pause if accept() fails next */
    bool accept_failing;        /* accept() failed and has not worked since */
    bool accept_failing_logged; /* ... and that was logged, so its end is too */
    uint64_t accept_failing_ms; /* since when (monotonic ms) */
    uint64_t accept_logged_ms;  /* the last line about accept() failing, 0: none yet */
    uint64_t accept_refused;    /* connections closed at the fd limit since that line */
    /* Admission (admit.c): the work for connections not open yet, bounded per loop turn. */
    struct event *admit_ev;       /* owns: zero-timeout timer, the next admission turn */
    struct conn_list admit_queue; /* borrows: those whose input waits for it, in order */
    uint64_t accept_since_us;     /* when accepting began in this turn; 0: it has not */
    bool accept_deferred;         /* the listeners are off until the admission turn */
    struct net_topology *topo;    /* owns; NULL: not in a cluster (topology.h) */
    struct net_forward *forward;  /* owns; NULL: not in a cluster (forward.h) */
    struct net_relay *relay;      /* owns; NULL: not in a cluster (relay.h) */
    struct net_quorum *quorum;    /* owns; NULL: not in a cluster (quorum.h) */
    struct net_alarms *alarms;    /* owns; NULL: not in a cluster (alarms.c) */
    uint8_t remote_alarms;        /* the other nodes' alarms on (NET_ALARM_*), alarms.c */
    uint64_t incarnation;         /* in a cluster: random at each start, in the messages to
                                   * other nodes, which so tell this run from an earlier one */
    bool shutting_down;
    void (*shutdown_done)(void *arg);
    void *shutdown_arg;
};

enum conn_state {
    CONN_AWAIT_HEADER = 0, /* accepted: waiting for "AMQP" 0 0 9 1 */
    CONN_AWAIT_START_OK,   /* connection.start sent */
    CONN_AWAIT_TUNE_OK,    /* logged in, connection.tune sent */
    CONN_AWAIT_OPEN,       /* tuned: waiting for connection.open */
    CONN_OPEN,             /* open: channels may be used */
    CONN_CLOSING,          /* we sent connection.close: only close/close-ok matter now */
    CONN_DRAINING,         /* writing what is left, then the socket closes */
    CONN_DEAD,             /* on server->dead, freed by the reaper */
};

/* A body frame whose payload is read from the socket straight into its message. */
struct conn_body_read {
    struct msg *msg; /* owns a reference while a payload is read; NULL: none is */
    uint8_t *dst;    /* where the payload's next bytes go, inside msg's body */
    uint32_t left;   /* payload bytes still to read; 0: the frame-end octet is next */
    uint32_t size;   /* the whole payload */
    uint16_t channel;
};

struct conn {
    TAILQ_ENTRY(conn) link;    /* in server->conns or server->dead */
    struct net_server *server; /* borrows */
    struct bufferevent *bev;   /* owns; closes the socket when freed; writes only */
    struct evbuffer *out;      /* where frames go: bev's output (borrows), or with TLS the
                                * plaintext conn_tls.c encrypts into it (owns) */
    struct ssl_st *ssl;        /* owns with TLS: the session (conn_tls.c) */
    bool tls;                  /* accepted on a TLS listener */
    bool tls_ready;            /* ... and its handshake is done */
    bool login_external;       /* logged in with EXTERNAL: the certificate, no password */
    struct event *read_ev;     /* owns: the socket's read event (conn_on_readable) */
    struct evbuffer *in;       /* owns: bytes read and not parsed yet */
    size_t in_limit;           /* the socket is not read while in holds this much */
    bool reading;              /* the socket is read (not stopped by a block, a close...) */
    struct conn_body_read body;
    TAILQ_ENTRY(conn) admit_link; /* in server->admit_queue while admit_waiting */
    bool admit_waiting;           /* its input waits for an admission turn: not polled */
    struct event *timer_ev;       /* owns: handshake deadline, then close-ok/drain deadline */
    struct event *heartbeat_ev;   /* owns: periodic heartbeat tick, NULL when heartbeat = 0 */
    struct event *resume_ev;      /* owns: resumes parsing after CONN_FRAMES_PER_EVENT */
    enum conn_state state;
    uint64_t id;
    bool peer_is_loopback;
    bool cap_auth_failure_close; /* client capabilities from start-ok */
    bool cap_connection_blocked;
    bool cap_consumer_cancel_notify;
    bool sent_since_tick;       /* for heartbeats: anything written this interval */
    bool recv_since_tick;       /* anything read this interval */
    uint64_t io_prev[NET_IO_N]; /* the socket counters at the last statistics sample */
    double io_rate[NET_IO_N];   /* and their rates then (conn_io.c) */
    uint8_t heartbeats_missed;
    uint16_t channel_max;         /* negotiated; 0 = no limit */
    uint32_t frame_max;           /* negotiated, including the 8 bytes of overhead */
    uint16_t heartbeat;           /* negotiated, seconds; 0 = off */
    struct auth_user *user;       /* owns a reference; NULL until logged in */
    const struct auth_perm *perm; /* borrows the user's permissions on vhost, valid while */
    uint64_t perm_gen;            /* ... the user table's generation is this (chan_access.c) */
    struct vhost *vhost;          /* borrows from the registry; NULL until open */
    struct idmap chans;           /* owns each struct chan, by channel number */
    struct queue_owner exclusive; /* this connection's exclusive queues (the vhost owns them) */
    /* In a cluster, once it declares an exclusive queue: in net_topology.owners under its
     * owner id (exclusive.id), big-endian in owner_key (chan_topology.c) */
    struct hmap_entry owner_by_id;
    uint8_t owner_key[8];
    /* In a cluster: held while another node's forwarded bytes are over their window
     * (forward.c), in net_forward.held */
    bool fwd_held;
    TAILQ_ENTRY(conn) fwd_link;
    struct chan_list confirm_due; /* channels with publisher confirms to send */
    bool output_full;             /* consumers paused until the output drains */
    bool publisher;               /* has published: blocked while a resource alarm is on */
    bool blocked;                 /* not reading its socket because of a resource alarm */
    bool peer_hup;      /* the peer hung up while blocked: read and handle what it sent anyway */
    bool peer_closed;   /* EOF read while input was left: it is handled, then the socket closes */
    bool output_paused; /* a request waits for the output to drain (conn_reply_must_wait) */
    uint32_t store_paused; /* replies waiting for the store: input waits behind them */
    char ctx[200];         /* log context: "conn 42 1.2.3.4:5 -> 6.7.8.9:5672 guest@/" */
    /* What the HTTP API lists (struct net_conn_info): RabbitMQ's connection name
     * "1.2.3.4:5 -> 6.7.8.9:5672", both ends, the start-ok's client properties. */
    char name[160];
    char peer_host[INET6_ADDRSTRLEN], host[INET6_ADDRSTRLEN];
    uint16_t peer_port, port;
    uint8_t *client_props; /* owns: the table's entries, as received; NULL: none yet */
    uint32_t client_props_len;
    uint64_t connected_at; /* milliseconds since the epoch */
};

#define log_conn(lvl, c, ...)                                                                      \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_write((lvl), (c)->ctx, __VA_ARGS__);                                               \
    } while (0)

enum chan_state {
    CHAN_OPEN = 0,
    CHAN_CLOSING, /* we sent channel.close: everything but close/close-ok is dropped */
};

/* Where a channel is in receiving a content-bearing method (basic.publish): the method, then
 * a content header, then body frames adding up to the header's body size. */
enum chan_content {
    CHAN_CONTENT_NONE = 0,
    CHAN_CONTENT_AWAIT_HEADER,
    CHAN_CONTENT_AWAIT_BODY,
};

/* A consumer (basic.consume): the queue's view (base) plus what the channel needs. */
struct chan_cons {
    struct cons base;         /* first: the queue calls back with &base */
    struct hmap_entry by_tag; /* in chan->consumers; key = tag */
    struct chan *ch;          /* borrows: the channel owns its consumers */
    char *tag;                /* owns */
    uint8_t tag_len;
    bool no_ack;
    bool cancelled;     /* gone from its queue and the channel's table; the record stays for
                         * its deliveries not yet settled, and goes with the last of them */
    uint16_t prefetch;  /* basic.qos global=false in force when it was created; 0 = none */
    uint32_t n_unacked; /* its deliveries not yet settled */
    /* a consumer of another node's queue (relay.c): its subscription there; else NULL */
    struct relay_sub *relay;
    uint32_t credit_owed; /* no_ack: deliveries written out, their credit not given back */
};

/* What settling a delivery does with its message. */
enum chan_settle {
    CHAN_SETTLE_ACK = 0, /* basic.ack: done with */
    CHAN_SETTLE_REQUEUE, /* nack/reject with requeue, recover, channel gone: back to its queue */
    CHAN_SETTLE_REJECT,  /* nack/reject without requeue: dead-lettered if its queue says so */
};

/* A message delivered and not yet acked, by delivery tag. */
struct delivery {
    TAILQ_ENTRY(delivery) link; /* in chan->unacked (tag order) or chan->tx_acks */
    struct idmap_entry by_tag;  /* its tag (by_tag.id); in chan->unacked_by_tag while in
                                 * chan->unacked */
    struct qentry *entry;       /* owns (settled or requeued through the queue's commands) */
    struct chan_cons *cons;     /* NULL for basic.get; else holds the consumer's record, which
                                 * stays while it has unsettled deliveries */
    enum chan_settle settle;    /* how it is being settled (in tx_acks: at tx.commit) */
    uint64_t delivered_at;      /* server_now_ms(): its consumer timeout runs from here */
};
TAILQ_HEAD(delivery_list, delivery);

/* A publish held back by a transaction until tx.commit. */
struct tx_publish {
    STAILQ_ENTRY(tx_publish) link;
    struct msg *msg; /* owns a reference */
    bool mandatory;
};
STAILQ_HEAD(tx_publish_list, tx_publish);

/* A confirm-mode publish forwarded to other nodes' queues (forward.c), waiting for their
 * answers: the channel's confirms stop before it until then (chan_confirm_due). seq 0: a
 * tx.commit's publishes (ch->tx_fwd), whose reply waits for it. */
struct chan_fwd {
    TAILQ_ENTRY(chan_fwd) link; /* in ch->fwds, by seq, while the channel lives */
    struct chan *ch;            /* borrows; NULL once the channel is gone */
    uint64_t seq;
    unsigned remaining; /* answers awaited, and the publisher's hold until it settles it */
    bool nacked;        /* a node did not take it, or may not have */
};
TAILQ_HEAD(chan_fwd_list, chan_fwd);

struct chan {
    struct idmap_entry by_id; /* in conn->chans */
    struct conn *conn;        /* borrows: the connection owns the channel */
    uint16_t id;
    enum chan_state state;
    /* Content assembly. */
    enum chan_content content;
    uint16_t content_class; /* class of the method the content belongs to */
    uint64_t body_size;     /* from the content header */
    uint64_t body_received;
    struct msg *publishing; /* owns: the message being assembled (from its header on) */
    bool publish_mandatory;
    uint8_t publish_exchange_len, publish_rk_len;
    char publish_exchange[256]; /* basic.publish's exchange and routing key, until the */
    char publish_rk[256];       /* content header creates the message */
    /* Deliveries and consumers. */
    struct hmap consumers;        /* owns each struct chan_cons */
    struct delivery_list unacked; /* owns */
    struct idmap unacked_by_tag;  /* the same deliveries, by tag: an ack finds its own in O(1) */
    uint64_t next_delivery_tag;   /* the last tag handed out */
    uint32_t n_unacked_consumed;  /* unacked deliveries made to consumers (global prefetch) */
    uint16_t prefetch_consumer;   /* basic.qos global=false: for consumers created after */
    uint16_t prefetch_channel;    /* basic.qos global=true: shared by the channel's consumers */
    struct wire_str last_queue;   /* points into last_queue_buf: "" in consume/get/bind means it */
    char last_queue_buf[256];
    /* Publisher confirms. */
    bool confirm_mode;
    uint64_t publish_seq;          /* sequence number of the last publish in confirm mode */
    uint64_t confirmed_upto;       /* every publish up to this one has been confirmed */
    uint64_t confirm_due_upto;     /* publishes up to this one are ready to be confirmed */
    uint64_t confirm_waiting_upto; /* publishes up to this one have their confirm sent or
                                    * waiting for the store */
    uint64_t confirm_handled_upto; /* publishes up to this one are routed: due but for fwds */
    struct chan_fwd_list fwds;     /* the publishes waiting for other nodes (forward.c) */
    bool confirm_sync;             /* a due publish was stored: its confirm waits for the fsync */
    bool in_confirm_due;
    TAILQ_ENTRY(chan) confirm_link; /* in conn->confirm_due */
    /* Transactions. */
    bool tx_mode;
    bool tx_sync; /* the commit being made stored messages */
    /* While a tx.commit routes its publishes: what their forwards to other nodes and any
     * refusal answer to (chan_tx_forwarded); else NULL */
    struct chan_fwd *tx_fwd;
    struct tx_publish_list tx_publishes; /* owns */
    struct delivery_list tx_acks;        /* owns: acks, nacks and rejects awaiting commit */
    struct route_result route;           /* scratch for routing, reused per publish */
    struct stats_obj stats;              /* message_stats (stats.h): publish, confirm, deliver.. */
    /* The last exchange publishing to was allowed on, while the user table's generation is
     * pub_ok_gen (0: none); pub_ok_topic: the user has topic permissions on it. */
    uint64_t pub_ok_gen;
    bool pub_ok_topic;
    uint8_t pub_ok_len;
    char pub_ok_exchange[255];
    /* Direct reply-to: this channel's reply consumer and the token naming it. */
    struct chan_cons *reply_cons;     /* borrows from consumers; NULL if none */
    struct hmap_entry reply_by_token; /* in server->reply_to while reply_cons is set */
    char reply_token[64];             /* "amq.rabbitmq.reply-to.<random>" */
    /* Confirms and tx.commit-ok waiting for the store (chan_confirm.c). */
    LIST_HEAD(, chan_store_wait) store_waits; /* owns nothing: the store's callbacks free them */
    /* Changes submitted to the cluster's metadata log (chan_topology.c). */
    LIST_HEAD(, chan_topo_wait) topo_waits; /* owns nothing: the outcomes free them */
    /* Consumes and gets of other nodes' queues waiting for their answer (relay.c). */
    LIST_HEAD(, relay_sub) relay_waits; /* owns nothing */
    /* The consumer acknowledgement timeout of the oldest unacked delivery (chan_timeout.c). */
    struct event *ack_timer; /* owns; NULL until the channel's first timed delivery */
    uint64_t ack_timer_at;   /* server_now_ms() when it fires; 0: not pending */
};
/* conn.c */
/* Bytes waiting to be written to c's socket: frames, and with TLS, records. */
size_t conn_output_len(const struct conn *c);
/* A connection of fd, accepted from peer; tls: the context of a TLS listener, or NULL. */
struct conn *conn_new(struct net_server *s, int fd, const struct sockaddr *peer, int peerlen,
                      struct ssl_ctx_st *tls);
/* Closes the socket now; the reaper frees the rest. */
void conn_drop(struct conn *c);
void conn_free(struct conn *c);
/* Appends a method frame. 0, or -1 after the connection was dropped (ENOMEM, logged). */
int conn_send(struct conn *c, uint16_t channel, const struct wire_method *m);
/* Raises a connection exception: connection.close with code, the offending method's ids and
 * "NAME - text"; before the connection is tuned, just logs and closes the socket. Returns -1
 * so handlers can `return conn_raise(...)`. */
int conn_raise(struct conn *c, uint16_t code, uint32_t method_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int conn_raisev(struct conn *c, uint16_t code, uint32_t method_id, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
/* Formats a reply text as RabbitMQ writes them, "NOT_FOUND - no queue 'q'", cut to fit cap. */
void net_reply_textv(char *dst, size_t cap, uint16_t code, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
/* Logs that we ran out of memory doing `what` and drops the connection (its stream can no
 * longer be trusted to be whole). */
void conn_abort(struct conn *c, const char *what);
/* Frees the connection's channels (unacked deliveries requeued, consumers cancelled) and
 * deletes its exclusive queues: once it is closing, it needs none of them. */
void conn_release(struct conn *c);
/* Stops counting the connection against its vhost and user (it borrows the vhost no more). */
void conn_detach(struct conn *c);
/* Sends connection.close 320 for a server shutdown, or just closes before the handshake ends. */
void conn_close_forced(struct conn *c, const char *text);

/* chan.c */
/* Raises a channel exception (channel.close with a soft code; hard codes close the
 * connection). Returns -1. */
int chan_raise(struct chan *ch, uint16_t code, uint32_t method_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A method frame for channel ch (not 0) of an open connection. 0, or -1 if it raised. */
int chan_on_method(struct conn *c, uint16_t ch, const struct wire_method *m);
/* A content header or body frame for channel ch. 0, or -1 if it raised. */
int chan_on_content_frame(struct conn *c, const struct frame *f);
/* A body frame of size bytes for channel, its payload not read yet: if it belongs to the
 * message the channel is assembling and fits in it, returns that message (borrowed) and sets
 * *dst to where the payload goes in its body. NULL otherwise (no such channel, no content
 * expected, a message being dropped, an overrun): the whole frame then goes through
 * chan_on_content_frame, which raises what must be raised. */
struct msg *chan_body_target(struct conn *c, uint16_t channel, uint32_t size, uint8_t **dst);
/* The payload of size bytes is in m where chan_body_target said, and its frame was well
 * ended: it counts, and the message is published if complete. The connection is still open
 * (its channels are as they were). 0, or -1 if it raised. */
int chan_on_body_read(struct conn *c, uint16_t channel, const struct msg *m, uint32_t size);
/* Frees every channel of the connection (on close or disconnect). */
void chan_table_clear(struct conn *c);

/* chan_decl.c: exchange.*, queue.* */
int chan_on_exchange_method(struct chan *ch, const struct wire_method *m);
int chan_on_queue_method(struct chan *ch, const struct wire_method *m);
/* Writes prefix and 22 random URL-safe characters into dst: server-made names, as RabbitMQ's
 * "amq.gen-..." queues and "amq.ctag-..." consumer tags. */
void chan_random_name(char *dst, size_t cap, const char *prefix);
/* Looks a queue up for a method on ch: "" means the channel's last declared queue; raises
 * 404 for a missing queue and 405 for another connection's exclusive queue. NULL if raised. */
struct queue *chan_queue_lookup(struct chan *ch, struct wire_str name, uint32_t method_id);
/* Deletes the exclusive queues a closing connection owned. */
void chan_delete_exclusive_queues(struct conn *c);
/* Raises err (net.h's net_* functions') on ch, as a connection error for a hard code, for
 * method_id. Returns -1. */
int chan_raise_decl(struct chan *ch, uint32_t method_id, const struct net_decl_err *err);
/* Fills err with code and its text (RabbitMQ's, for an AMQP code). Returns -1. */
int net_decl_fail(struct net_decl_err *err, uint16_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* net_queue_delete's checks before it deletes (the permission, another's exclusive queue,
 * if_unused, if_empty; the last two not for a queue whose home is another node, in a cluster:
 * only it knows the queue's consumers and messages, the caller asks it). Returns 0 with *out
 * the queue (NULL: there is none, which deleting succeeds on), or -1 with err. */
int net_queue_delete_check(struct vhost *vh, const struct auth_perm *perm, const char *user,
                           const struct queue_owner *own, struct wire_str name, bool if_unused,
                           bool if_empty, struct queue **out, struct net_decl_err *err);
/* q was declared on ch (passive: a passive declare): counted as a use (x-expires), remembered
 * as the channel's last queue, and answered with queue.declare-ok unless no_wait. */
void chan_queue_declared(struct chan *ch, struct queue *q, bool passive, bool no_wait);

/* chan_topology.c: the methods that change the topology, in a cluster (server->topo): each
 * submits its command to the metadata log and the connection's input waits until this node
 * applied it; then the method's -ok or the apply's error. Names are resolved ("" shortcuts)
 * by the caller. Each returns 0, or -1 after raising. */
int chan_topology_exchange_declare(struct chan *ch, const struct wire_exchange_declare *d);
int chan_topology_exchange_delete(struct chan *ch, const struct wire_exchange_delete *d);
int chan_topology_bind(struct chan *ch, uint32_t method_id, uint32_t ok_id, bool to_queue,
                       struct wire_str destination, struct wire_str source, struct wire_str key,
                       struct wire_table args, bool no_wait);
int chan_topology_queue_declare(struct chan *ch, struct wire_str name,
                                const struct wire_queue_declare *d);
int chan_topology_queue_delete(struct chan *ch, struct wire_str name,
                               const struct wire_queue_delete *d);
/* queue.delete of name without a check (if-unused and if-empty were checked). */
int chan_topology_queue_delete_submit(struct chan *ch, struct wire_str name, bool no_wait);
/* A passive declare of name (a queue's, else an exchange's) that missed: answered once a
 * barrier through the log is applied here, with what is found then. */
int chan_topology_passive(struct chan *ch, uint32_t method_id, bool queue, struct wire_str name,
                          bool no_wait);
/* The channel goes: its waits are answered to nobody. */
void chan_topology_release(struct chan *ch);
/* A closing connection's exclusive queues are deleted on every node (through the log). */
void conn_topology_close(struct conn *c);

/* chan_access.c: permissions. Each returns 0, or -1 after raising 403 ACCESS_REFUSED. */
/* kind on the queue (queue) or exchange called name ("" is the default exchange). */
/* The connection's permissions on its vhost: NULL when it has none left (cleared, or its user
 * deleted, since it opened). */
const struct auth_perm *chan_access_perm(struct conn *c);
int chan_access_check(struct chan *ch, uint32_t method_id, enum auth_perm_kind kind, bool queue,
                      struct wire_str name);
/* kind on a queue named by a method: "" is the channel's last declared queue. */
int chan_access_queue(struct chan *ch, uint32_t method_id, enum auth_perm_kind kind,
                      struct wire_str name);
/* kind (write: publish, read: bind) on routing_key of e when e is a topic exchange (NULL: no
 * exchange, nothing to check). */
int chan_access_topic(struct chan *ch, uint32_t method_id, const struct exch *e,
                      enum auth_perm_kind kind, struct wire_str routing_key);
/* Write on the exchange of a basic.publish, cached per channel. ch->pub_ok_topic then says
 * whether the routing key needs chan_access_topic. */
int chan_access_publish(struct chan *ch, struct wire_str exchange);

/* chan_basic.c: publishing, confirms, transactions, consumers, deliveries, acks */
int chan_on_basic_method(struct chan *ch, const struct wire_method *m);
int chan_on_tx_method(struct chan *ch, const struct wire_method *m);
int chan_on_confirm_method(struct chan *ch, const struct wire_method *m);
/* basic.publish arrived: remember where it goes until its content header. */
int chan_publish_begin(struct chan *ch, const struct wire_basic_publish *p);
/* The content header of a publish: allocate the message. 0, or -1 after raising. */
int chan_publish_header(struct chan *ch, const struct frame_content_header *h,
                        const struct wire_basic_props *props);
/* Body bytes of the message being published. */
void chan_publish_body(struct chan *ch, const uint8_t *p, uint32_t n);
/* The message is complete: route it (or hold it for tx.commit). 0, or -1 after raising. */
int chan_publish_complete(struct chan *ch);
/* chan_basic.c: basic.get on queue (as named by the client: "" is the channel's last
 * queue). When the queue's next ready messages are still being written to the store (paged
 * out in a batch not yet completed) and may_wait, the answer waits for the store
 * (chan_get_wait); otherwise such a queue answers get-empty. 0, or -1 after raising. */
int chan_get_answer(struct chan *ch, struct wire_str queue, bool no_ack, bool may_wait);
/* For relay.c: a delivery of another node's queue to cc (0, or -1 when the channel cannot
 * take it: closing, out of memory); cc's home deleted its queue (basic.cancel, as
 * consumer_cancel_notify says, and cc goes); the answer to a get of another node's queue (e
 * NULL: get-empty); consume-ok. */
int chan_relay_deliver(struct chan_cons *cc, struct qentry *e);
void chan_relay_cancelled(struct chan_cons *cc);
void chan_relay_got(struct chan *ch, struct qentry *e, bool no_ack, uint32_t message_count);
int chan_send_consume_ok(struct chan *ch, const struct chan_cons *cc);
/* Forgets a consumer going away (see chan_basic.c). */
void chan_cons_free(struct chan_cons *cc);

/* chan_confirm.c: replies that wait for the store: publisher confirms, tx.commit-ok, and
 * basic.get on a queue whose next messages are being written */
/* The publish with this confirm seq was routed: confirm it with the next flush (once the
 * publishes forwarded before it are answered: ch->fwds). */
void chan_confirm_due(struct chan *ch, uint64_t seq);
/* cf's answers are in (forward.c): nacked if a node did not take it; the confirms it held
 * back go now. cf is unlisted here; the caller frees it. */
void chan_forwarded(struct chan *ch, struct chan_fwd *cf);
/* c as a channel's consumer, or NULL when it is another kind (relay_home.c's). */
struct chan_cons *chan_cons_of(struct cons *c);
/* cc (a consumer of a replicated queue whose client has its consume-ok, attached nowhere) waits
 * in q, this node's copy of the queue, until q is served here (it consumes then) or the
 * consumer follows q's home (relay_follow). */
void chan_cons_park(struct chan_cons *cc, struct queue *q);
/* Sends the publisher confirms that became due while handling this batch of input, or
 * hands them to the store to send once what they cover is synced. */
void chan_flush_confirms(struct conn *c);
/* A publish that could not be enqueued everywhere (out of memory): nacks it. */
void chan_nack_publish(struct chan *ch, uint64_t seq);
/* A tx.commit's publishes are routed (ch->tx_fwd: cf, seq 0, took their forwards' answers)
 * and every node answered (nacked: one did not take one, or a queue here refused one): the
 * reply, tx.commit-ok once the store has synced the commit's messages if it stored any
 * (ch->tx_sync), or for a publish that did not reach every queue (x-overflow reject-publish,
 * a node down), 406 "partial tx completion" as RabbitMQ fails such a commit. The connection
 * read nothing since the commit (store_paused, taken by it) and until the reply. */
void chan_tx_forwarded(struct chan *ch, bool nacked);
/* Answers basic.get (chan_get_answer, without waiting again) once the store has completed
 * what was written before; the connection reads nothing meanwhile. 0, or -1 when it cannot
 * wait (ENOMEM, or shutting down). */
int chan_get_wait(struct chan *ch, struct wire_str queue, bool no_ack);
/* The channel is going: its waits stay with the store but will find it gone. */
void chan_store_waits_release(struct chan *ch);
/* Everything the channel holds goes: unacked deliveries are requeued (in order), consumers
 * cancelled, pending publishes and transactions dropped. */
void chan_release(struct chan *ch);
/* For a channel that is closing: gives back its unacked deliveries (requeued, those acked in
 * an uncommitted transaction too), then cancels its consumers; it takes no deliveries from
 * then on. Its publishes and store waits stay until chan_release. */
void chan_give_back(struct chan *ch);

/* chan_timeout.c: the consumer acknowledgement timeout (consumer_timeout, x-consumer-timeout) */
/* The channel's oldest unacked delivery may have changed (its first delivery, an ack, a
 * rollback): sets the channel's timer if that delivery's deadline comes before it. */
void chan_ack_timer_update(struct chan *ch);
/* Counts k events of field f (stats.h) on the channel, its vhost, and q unless NULL. */
static inline void
chan_stats_add(struct chan *ch, struct queue *q, enum stats_field f, uint64_t k)
{
    stats_add(&ch->stats, f, k);
    stats_add(&ch->conn->vhost->stats, f, k);
    if (q != NULL)
        stats_add(&q->stats, f, k);
}
/* Frees the channel's timer (chan_release). */
void chan_ack_timer_free(struct chan *ch);
/* The connection's output drained: consumers that paused for it may take messages again. */
void chan_wake_all_consumers(struct conn *c);

/* conn_io.c: the socket's counters (enum net_io) from TCP_INFO into out (zeros if unknown);
 * the statistics timer's sample: the counters and their rates over the secs since the
 * previous one, into c. */
void conn_io_read(const struct conn *c, uint64_t out[NET_IO_N]);
void conn_io_sample(struct conn *c, double secs);

/* Resource alarms (listener.c, conn.c): publishing connections stop being read while the
 * messages and output buffers take more than vm_memory_high_watermark (the memory alarm), or
 * while the data directory's filesystem has less than disk_free_limit free (the disk alarm),
 * on this node or, in a cluster, on another (alarms.c). */
static inline bool
server_publishers_blocked(const struct net_server *s)
{
    return s->memory_alarm || s->disk_alarm || s->remote_alarms != 0;
}
/* The alarms on changed: blocks the publishing connections while any is on (this node's or
 * another's), unblocks them once none is. */
void server_alarms_apply(struct net_server *s);

/* alarms.c: in a cluster, an alarm on any node blocks publishers on every node. */
#define NET_ALARM_MEMORY 0x01
#define NET_ALARM_DISK 0x02
/* In a cluster (s->env.cluster): starts telling the others this node's alarms and hearing
 * theirs. 0, or -1 on ENOMEM. Nothing to do alone. */
int net_alarms_open(struct net_server *s);
void net_alarms_free(struct net_server *s);
/* This node's memory_alarm or disk_alarm changed: the others are told. */
void net_alarms_local_changed(struct net_server *s);
/* A message from node from whose first byte is 'L'. */
void net_alarms_on_message(struct net_server *s, const char *from, const uint8_t *bytes,
                           size_t len);
/* connection.blocked's reason for the alarms on, as RabbitMQ writes it: "low on memory",
 * "low on disk" or "low on memory & disk". */
const char *server_alarm_reason(const struct net_server *s);
/* Called when a message arrives: raises the memory alarm at once if messages alone are over,
 * and blocks the connection that sent it if the disk alarm is on. */
void server_memory_check_fast(struct net_server *s);
/* Stops reading a publishing connection (once) and sends it connection.blocked with
 * server_alarm_reason() if it announced the capability. */
void conn_block(struct conn *c);
/* Reads it again and sends connection.unblocked: call once no alarm is on. */
void conn_unblock(struct conn *c);
/* For a blocked connection, which is not read: if its peer has hung up (FIN or reset), reads
 * and handles what it sent before, then closes, so that a dead client's memory and output do
 * not hold the alarm on. Cheap (one poll(2)); the alarm's periodic check calls it. */
void conn_blocked_check_peer(struct conn *c);
/* Parses buffered input again in the next loop turn unless still paused (store_paused). */
void conn_resume(struct conn *c);

/* Writes basic.deliver and the message's content to cc's channel (drops the connection if
 * that fails for lack of memory). */
void chan_send_deliver(struct chan_cons *cc, uint64_t tag, bool redelivered, struct msg *m);

/* chan_reply_to.c: direct reply-to */
bool chan_reply_to_is_pseudo_queue(struct wire_str name);
/* Makes cc the channel's reply consumer under a new token. 0, or -1 after raising. */
int chan_reply_to_register(struct chan *ch, struct chan_cons *cc);
void chan_reply_to_unregister(struct chan *ch);
/* For a publish to the default exchange: 0 if routing_key is not a reply-to name, 1 if the
 * message was delivered to the requester's consumer, -1 if that consumer is gone. */
int chan_reply_to_deliver(struct chan *ch, struct wire_str routing_key, struct msg *m);
/* A request published with reply_to "amq.rabbitmq.reply-to": the message with reply_to
 * rewritten to this channel's token. NULL after raising (no reply consumer: 406; ENOMEM). */
struct msg *chan_reply_to_message(struct chan *ch, const struct frame_content_header *h,
                                  const struct wire_basic_props *props, uint8_t mode, uint8_t prio,
                                  struct wire_str exchange, struct wire_str routing_key);

/* conn_tls.c: AMQP over TLS (the design is in its opening comment) */
struct iovec;
/* Makes c's TLS session on socket fd with ctx: c->out becomes the plaintext buffer. 0, or -1
 * on ENOMEM (conn_free frees what was made). */
int conn_tls_start(struct conn *c, struct ssl_ctx_st *ctx, int fd);
/* Advances the handshake with what the socket has. 0 when done (c->tls_ready), 1 while it
 * waits for the client, -1 when it failed (one line logged; an alert may be queued): the
 * caller closes. */
int conn_tls_handshake(struct conn *c);
/* readv(2) for a TLS connection: decrypts into iov[0..n). Returns the bytes read, 0 at the
 * end of the stream, -1 with errno (EAGAIN: nothing yet), or -2 after logging a TLS error. */
ssize_t conn_tls_read(struct conn *c, const struct iovec *iov, int n);
/* Whether OpenSSL holds input not yet read (epoll cannot tell). */
bool conn_tls_pending(const struct conn *c);
/* Encrypts what is waiting, then queues close_notify: for a connection closing cleanly. */
void conn_tls_close_notify(struct conn *c);
/* Whether the client presented a certificate that verify_peer checked (EXTERNAL's
 * condition). */
bool conn_tls_peer_verified(const struct conn *c);
void conn_tls_free(struct conn *c);

/* admit.c: the work for connections not open yet, bounded per loop turn (see the file) */
/* Makes the admission timer and queue. 0, or -1 on ENOMEM. */
int server_admit_init(struct net_server *s);
/* c, not open yet, is readable: false to read it now, true if it waits in the queue (then
 * conn_admit_wait has stopped polling it, and conn_admitted reads it in its turn). */
bool server_admit_defer(struct conn *c);
/* Takes c out of the queue if it is in it: it is closing. */
void server_admit_forget(struct net_server *s, struct conn *c);
/* The listener accepted a connection: returns true when this turn's accepting budget was
 * spent before it, and the listeners must stop until the admission turn (which resumes them
 * with server_listeners_resume). */
bool server_admit_accepting(struct net_server *s);
/* conn.c: c waits for its admission turn: not polled meanwhile. */
void conn_admit_wait(struct conn *c);
/* conn.c: c's admission turn, c out of the queue: polled again, and read and handled now. */
void conn_admitted(struct conn *c);

/* listener.c */
/* Turns the listeners on again after server_admit_accepting stopped them, unless something
 * else holds them off (shutdown, connection_max, a pause after accept() failed). */
void server_listeners_resume(struct net_server *s);
/* Moves c to the dead list and wakes the reaper: connections are never freed inside their
 * own callbacks. */
void server_conn_dead(struct net_server *s, struct conn *c);
/* Monotonic milliseconds, to the kernel's tick (a few ms): cheap enough to read for each
 * delivery. */
uint64_t server_now_ms(void);
/* "1.2.3.4:5672" or "[::1]:5672". */
void net_format_addr(char *dst, size_t cap, const struct sockaddr *sa);

#endif
