/* An in-process broker for tests: an event loop, a configuration with the defaults, the
 * default user and vhost, and a net_server without listeners to which the test hands one end
 * of a loopback TCP connection (or a socketpair) per client (net_server_adopt). The test
 * writes raw AMQP frames to its end, turns the loop itself, and reads back and decodes what
 * the server wrote, so the real connection and channel code runs with no thread, no timing
 * and no store (no durable layer: nothing is written anywhere). Shared by tests/unit/check_net
 * and the session fuzzer.
 *
 * Nothing here blocks or sleeps: a wait turns the loop (non-blocking) until what it waits for
 * comes or the server is idle, with every byte accounted for on both sockets, so the outcome
 * does not depend on timing, and a server that stops answering makes a call fail
 * (NETHOST_TIMEOUT) rather than hang. */
#ifndef WARREN_TEST_NETHOST_H
#define WARREN_TEST_NETHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warren/conf.h"
#include "warren/frame.h"
#include "warren/vhost.h"
#include "warren/wire.h"
#include "warren/wire_gen.h"

struct admin;
struct auth_db;
struct event_base;
struct evbuffer;
struct net_server;

#define NETHOST_MAX_PEERS 4

/* The test's end of one connection. */
struct nethost_peer {
    struct nethost *host; /* borrows */
    int fd;               /* owns; -1 once closed */
    int server_fd;        /* the server's end (the connection owns it): what it has not read */
    struct evbuffer *out; /* owns: bytes for the server not yet written to the socket */
    struct evbuffer *in;  /* owns: bytes from the server not yet taken as frames */
    uint64_t sent;        /* bytes written to the socket */
    bool eof;             /* the server closed its end (or reset it) */
    /* The end was a reset: the server closed with bytes of ours unread, and the kernel then
     * drops what it had not yet sent of the server's output. The stream may end mid-frame. */
    bool reset;
    uint8_t *frame; /* owns: the payload of the frame taken last */
    size_t frame_cap;
    char why[512]; /* what went wrong in the last call that failed */
};

struct nethost {
    struct event_base *base;      /* owns */
    struct conf conf;             /* owns: defaults; no disk alarm (disk_free_limit 0) */
    struct auth_db *auth;         /* owns: the default user, guest/guest, loopback only */
    struct vhost_registry vhosts; /* owns: the default vhost, "/" */
    struct admin *admin;          /* owns: made the defaults as on a first start; stores nothing */
    struct net_server *server;    /* owns */
    int listen_fd;                /* owns: 127.0.0.1, where TCP peers connect; -1 until one does */
    /* Set it before the first nethost_connect: peers are socketpairs rather than loopback
     * TCP, as if from 127.0.0.1, and use no port (the fuzzer makes thousands a second, which
     * would take ports from whatever else runs on the machine). The server's log context then
     * names no local address, and valgrind flags its attempt (conn_new formats getsockname's
     * result as an IPv4 address whatever the family): TCP is the default. */
    bool unix_sockets;
    struct nethost_peer peers[NETHOST_MAX_PEERS];
    unsigned n_peers;
};

/* What a read found. */
enum nethost_status {
    NETHOST_FRAME = 0, /* a whole frame, decoded */
    NETHOST_AGAIN,     /* (nethost_take only) no whole frame buffered yet */
    NETHOST_EOF,       /* the connection ended, nothing (or, after a reset or our own
                        * close, part of a frame) left buffered */
    NETHOST_TIMEOUT,   /* nothing came, and the server is idle (or never went idle) */
    NETHOST_BAD,       /* the server wrote something that is not a valid frame: why says */
};

/* One frame from the server. Strings and payload borrow the peer until its next read. */
struct nethost_frame {
    uint8_t type; /* WIRE_FRAME_* */
    uint16_t channel;
    uint32_t size;
    const uint8_t *payload;
    struct wire_method m;          /* WIRE_FRAME_METHOD */
    struct frame_content_header h; /* WIRE_FRAME_HEADER */
    struct wire_basic_props props; /* WIRE_FRAME_HEADER */
};

/* Starts the broker. 0, or -1 (a message on stderr). Call nethost_free either way. */
int nethost_init(struct nethost *h);
/* Closes every peer, frees the server (and with it every connection), the vhosts, the users
 * and the loop, as main() does at exit. */
void nethost_free(struct nethost *h);

/* A new client connection, from peer_ip ("10.0.0.1" for a client off loopback; NULL:
 * 127.0.0.1). NULL if the host has NETHOST_MAX_PEERS already or a call failed (a message on
 * stderr). The host owns the peer. */
struct nethost_peer *nethost_connect(struct nethost *h, const char *peer_ip);
/* Closes the test's end of the socket: the server sees the client hang up. */
void nethost_peer_close(struct nethost_peer *p);

/* Queue bytes for the server; they are written by the next loop turns. 0, or -1 on ENOMEM. */
int nethost_send(struct nethost_peer *p, const void *bytes, size_t n);
int nethost_send_method(struct nethost_peer *p, uint16_t channel, const struct wire_method *m);
/* A content header of class basic with the raw properties props (flags word first; NULL: none
 * set), then body frames of at most max_payload bytes each (0: one frame). */
int nethost_send_content(struct nethost_peer *p, uint16_t channel, const uint8_t *props,
                         size_t props_len, const void *body, size_t len, size_t max_payload);
/* basic.publish with an empty property list and the body in one frame. */
int nethost_publish(struct nethost_peer *p, uint16_t channel, const char *exchange,
                    const char *routing_key, const void *body, size_t len);

/* One loop turn: writes what the peers have queued, runs the ready events, reads what the
 * server wrote. Returns whether any byte moved. */
bool nethost_turn(struct nethost *h);
/* Turns the loop until the server is idle: every byte sent has arrived and been read (both
 * ways), no event is active and no timer due. 0, or -1 if that does not happen within a
 * large bound (a server spinning). */
int nethost_settle(struct nethost *h);

/* Takes one frame if a whole one is buffered, without turning the loop. */
enum nethost_status nethost_take(struct nethost_peer *p, struct nethost_frame *f);
/* Turns the loop until a frame comes, the connection ends, or the server is idle. */
enum nethost_status nethost_read(struct nethost_peer *p, struct nethost_frame *f);
/* Reads the next frame: it must be method id on channel. 0, or -1 with why set. */
int nethost_expect(struct nethost_peer *p, uint16_t channel, enum wire_method_id id,
                   struct nethost_frame *f);
/* Reads a content header and the body frames that follow on channel into dst (cap bytes);
 * *len gets the body size. 0, or -1 with why set (also for a body over cap). */
int nethost_expect_content(struct nethost_peer *p, uint16_t channel, uint8_t *dst, size_t cap,
                           size_t *len);
/* Settles the loop: nothing may have come from the server. 0, or -1 with why set. */
int nethost_expect_quiet(struct nethost_peer *p);
/* The server must close the connection, with nothing more written before. 0, or -1. */
int nethost_expect_eof(struct nethost_peer *p);

/* "channel.close(404, 'NOT_FOUND - no queue...', 50, 10) on channel 1", for messages. */
void nethost_describe(const struct nethost_frame *f, char *dst, size_t cap);

/* The protocol header, then connection.start is read and start-ok sent with PLAIN user and
 * password (and the capabilities pika announces). 0, or -1 with why set. */
int nethost_login(struct nethost_peer *p, const char *user, const char *password);
/* The whole handshake as guest: login, tune-ok (the server's channel_max and frame_max, no
 * heartbeats), connection.open of "/", open-ok. 0, or -1 with why set. */
int nethost_handshake(struct nethost_peer *p);

/* A C string as a wire string (borrows it). */
struct wire_str nethost_str(const char *s);
/* Builders for the methods tests send most. */
struct wire_method nethost_queue_declare(const char *name, bool exclusive, bool auto_delete);
struct wire_method nethost_consume(const char *queue, const char *tag, bool no_ack);

#endif
