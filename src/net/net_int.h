/* Inside the net subsystem: the server, connection and channel objects shared by
 * listener.c, conn.c and chan.c. Nothing outside src/net includes this. */
#ifndef WARREN_NET_INT_H
#define WARREN_NET_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "warren/frame.h"
#include "warren/log.h"
#include "warren/net.h"
#include "warren/wire.h"

struct bufferevent;
struct event;
struct evconnlistener;
struct auth_user;
struct vhost;

/* Frames handled per read callback before yielding to other connections. */
#define CONN_FRAMES_PER_EVENT 256
/* How long we wait for connection.close-ok after sending connection.close, and for our last
 * output to drain before closing the socket, in seconds. */
#define CONN_CLOSE_TIMEOUT_SEC 3
/* Grace period for connections to go away on shutdown, in seconds. */
#define SERVER_SHUTDOWN_GRACE_SEC 5

struct listener {
    struct listener *next;
    struct evconnlistener *evl; /* owns (closes the socket) */
    struct sockaddr_storage addr;
};

TAILQ_HEAD(conn_list, conn);

struct net_server {
    struct net_server_env env;   /* borrows everything in it */
    struct listener *listeners;  /* owns */
    struct conn_list conns;      /* owns: live connections */
    struct conn_list dead;       /* owns: connections waiting to be freed by the reaper */
    struct event *reaper_ev;     /* owns: frees dead connections outside their callbacks */
    struct event *grace_ev;      /* owns: shutdown deadline */
    uint8_t *server_props;       /* owns: encoded server-properties table for connection.start */
    uint32_t server_props_len;
    uint64_t next_conn_id;
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

/* Channels by number: a small chained hash, since clients may use any number up to
 * channel_max but rarely more than a few. */
struct chan_table {
    struct chan **buckets; /* owns the array; owns each chan through its chain */
    uint32_t n_buckets;    /* power of two, or 0 before the first channel */
    uint32_t count;
};

struct conn {
    TAILQ_ENTRY(conn) link;      /* in server->conns or server->dead */
    struct net_server *server;   /* borrows */
    struct bufferevent *bev;     /* owns; closes the socket when freed */
    struct event *timer_ev;      /* owns: handshake deadline, then close-ok/drain deadline */
    struct event *heartbeat_ev;  /* owns: periodic heartbeat tick, NULL when heartbeat = 0 */
    struct event *resume_ev;     /* owns: resumes parsing after CONN_FRAMES_PER_EVENT */
    enum conn_state state;
    uint64_t id;
    bool peer_is_loopback;
    bool cap_auth_failure_close; /* client capabilities from start-ok */
    bool cap_connection_blocked;
    bool cap_consumer_cancel_notify;
    bool sent_since_tick;        /* for heartbeats: anything written this interval */
    bool recv_since_tick;        /* anything read this interval */
    uint8_t heartbeats_missed;
    uint16_t channel_max;        /* negotiated; 0 = no limit */
    uint32_t frame_max;          /* negotiated, including the 8 bytes of overhead */
    uint16_t heartbeat;          /* negotiated, seconds; 0 = off */
    const struct auth_user *user; /* borrows from the auth db; NULL until logged in */
    const struct vhost *vhost;    /* borrows from the registry; NULL until open */
    struct chan_table chans;
    char ctx[200];               /* log context: "conn 42 1.2.3.4:5 -> 6.7.8.9:5672 guest@/" */
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

struct chan {
    struct chan *next_in_bucket; /* owns the rest of the chain */
    struct conn *conn;           /* borrows: the connection owns the channel */
    uint16_t id;
    enum chan_state state;
    enum chan_content content;
    uint16_t content_class;     /* class of the method the content belongs to */
    uint64_t body_size;         /* from the content header */
    uint64_t body_received;
};

/* conn.c */
struct conn *conn_new(struct net_server *s, int fd, const struct sockaddr *peer, int peerlen);
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
/* Sends connection.close 320 for a server shutdown, or just closes before the handshake ends. */
void conn_close_forced(struct conn *c, const char *text);

/* chan.c */
/* A method frame for channel ch (not 0) of an open connection. 0, or -1 if it raised. */
int chan_on_method(struct conn *c, uint16_t ch, const struct wire_method *m);
/* A content header or body frame for channel ch. 0, or -1 if it raised. */
int chan_on_content_frame(struct conn *c, const struct frame *f);
/* Frees every channel of the connection (on close or disconnect). */
void chan_table_clear(struct conn *c);

/* listener.c */
/* Moves c to the dead list and wakes the reaper: connections are never freed inside their
 * own callbacks. */
void server_conn_dead(struct net_server *s, struct conn *c);
/* "1.2.3.4:5672" or "[::1]:5672". */
void net_format_addr(char *dst, size_t cap, const struct sockaddr *sa);

#endif
