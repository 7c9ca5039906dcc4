/* The nodes' Raft transport (see transport.h): one listener per node, a handshake per
 * connection that names the Raft group and proves both ends know the cluster's secret, then
 * the bare stream handed to the group's raft_uv, which frames Raft messages on it itself, or
 * to link.c for a link between nodes (group 0). With TLS between the nodes, the connection
 * goes through a relay first (transport_tls.c) and all of this runs on its plaintext end.
 *
 * The handshake, every integer in network byte order, every message of a fixed size or
 * bounded by a length read first, so that no read goes past it into the Raft bytes:
 *
 *   acceptor -> connector: challenge, 40 bytes
 *     magic "WRFT" (4)   version 2 (u16)   zero (u16)   nonce_a (32 random bytes)
 *   connector -> acceptor: hello, 64 + L + 32 bytes
 *     magic "WRFT" (4)   version 2 (u16)   L (u16, 1..255)   group (u64)   Raft id (u64, not 0)
 *     target: the acceptor's Raft id the connector means to reach (u64)
 *     nonce_c (32 random bytes)   address (L bytes, no NUL)
 *     mac_c (32) = HMAC-SHA256(secret, "warren raft connector\0" || challenge || H)
 *   acceptor -> connector: proof, 32 bytes
 *     mac_a = HMAC-SHA256(secret, "warren raft acceptor\0" || challenge || H)
 *   where H is the hello up to mac_c (the labels, never sent, are MACed with their NUL).
 *
 * nonce_a makes mac_c fresh for the acceptor (a recorded hello cannot be replayed), nonce_c
 * makes mac_a fresh for the connector (a recorded proof cannot be replayed by an impostor
 * that replays the challenge too), and the labels keep one side's MAC from serving as the
 * other's. The acceptor checks the MAC before it looks at the group, so a stranger learns
 * nothing about which groups exist; it refuses a hello whose target is not its own id in the
 * group (a stale address that now reaches another member). After the proof a Raft group's
 * stream is raft_uv's: the connector writes Raft messages on it and the acceptor reads them
 * (raft_uv never writes on an accepted stream nor reads on a connected one). The acceptor refuses
 * by closing, with one log line; the connector then fails the connect with RAFT_NOCONNECTION and
 * raft_uv retries.
 *
 * A node link's stream (group 0, target the acceptor's node id) is link.c's, which frames
 * messages on it. Version 1 (no target) is refused.
 *
 * What raft_uv (canonical raft 0.15: uv_send.c, uv_recv.c, uv.c) expects of a transport, and
 * this file provides:
 * - a stream handed over (to the accept callback, or to a connect callback with status 0) is
 *   a handle of its own allocation from raft_malloc (a uv_tcp_t, or a TLS relay's uv_pipe_t):
 *   raft_uv uv_close()s it and frees it with raft_free, and sets its data field;
 * - t->data is raft_uv's (it sets it in raft_uv_init and in init): ours is t->impl;
 * - the accept callback is never called once close has started (raft_uv asserts it);
 * - close fails every pending connect with RAFT_CANCELED, after their handles are closed,
 *   then calls its callback, never from within close itself (raft_uv's uvClose carries on
 *   after calling close, and its close chain may free the io).
 *
 * Everything runs on the loop given to cluster_transport_new. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "transport_int.h"
#include "warren/assert.h"
#include "warren/bytes.h"
#include "warren/log.h"

#define CT_MAGIC 0x57524654u /* "WRFT" */
#define CT_VERSION 2
#define CT_NONCE_LEN 32
#define CT_MAC_LEN 32
#define CT_SECRET_MIN 16
#define CT_CHALLENGE_LEN (4 + 2 + 2 + CT_NONCE_LEN)
#define CT_HELLO_FIXED (4 + 2 + 2 + 8 + 8 + 8 + CT_NONCE_LEN)
#define CT_HELLO_NONCE 32 /* offset of nonce_c in the hello */
#define CT_HELLO_MAX (CT_HELLO_FIXED + CT_ADDR_MAX + CT_MAC_LEN)
#define CT_HANDSHAKE_TIMEOUT_MS 10000
#define CT_HANDSHAKES_MAX 256  /* accepted connections in their handshake at once */
#define CT_REFUSE_LOG_MS 10000 /* at most one line per this about connections over the cap */
#define CT_KEEPALIVE_IDLE_S 1
#define CT_KEEPALIVE_INTVL_S 1
#define CT_KEEPALIVE_CNT 5
#define CT_USER_TIMEOUT_MS 5000 /* written bytes unacknowledged this long fail the stream */

static const char ct_label_connector[] = "warren raft connector";
static const char ct_label_acceptor[] = "warren raft acceptor";

/* A Raft group's transport: the struct raft_uv_transport's impl. */
struct ct_group {
    LIST_ENTRY(ct_group) link;           /* in ct->groups until its close starts */
    struct cluster_transport *ct;        /* borrows */
    struct raft_uv_transport *t;         /* borrows: the caller's */
    uint64_t group;                      /* the group's number, named in handshakes */
    raft_id id;                          /* from init: this node's id in the group */
    char address[CT_ADDR_MAX + 1];       /* from init: this node's address, NUL-terminated */
    bool inited;                         /* init was called */
    bool closing;                        /* close was called */
    raft_uv_accept_cb accept_cb;         /* from listen; NULL: not accepting yet */
    LIST_HEAD(, ct_conn) connecting;     /* owns: the connects under way and failing */
    uv_check_t closer;                   /* closed by close, never started: its close callback
                                          * runs on a later loop turn, so close never calls back
                                          * from within itself */
    bool closer_open;                    /* closer not closed yet */
    raft_uv_transport_close_cb close_cb; /* from close; may be NULL */
};

/* Where a connection is in its handshake. */
enum ct_step {
    CT_RESOLVING = 0,  /* connector: uv_getaddrinfo under way */
    CT_CONNECTING,     /* connector: uv_tcp_connect under way (or its handle closing to try
                        * the next address) */
    CT_READ_CHALLENGE, /* connector */
    CT_READ_PROOF,     /* connector: hello written */
    CT_READ_HELLO,     /* acceptor: challenge written */
    CT_WRITE_PROOF,    /* acceptor: hello checked, proof being written */
    CT_HANDED,         /* the stream is raft_uv's; freed once the timer and writes are done */
    CT_JOIN_WAIT,      /* acceptor of a join: proof written, the answer awaited */
    CT_JOIN_ANSWERED,  /* acceptor of a join: the answer being written, then closed */
    CT_READ_ANSWER,    /* join connector: proof checked, the answer awaited */
    CT_FAILED,         /* closing its handles; then freed (a connector's callback called) */
};

/* Which side of a handshake a connection is, and for what. */
enum ct_role {
    CT_ACCEPTOR = 0,
    CT_RAFT_CONNECTOR, /* for a Raft group's connect */
    CT_LINK_CONNECTOR, /* for a node link */
    CT_JOIN_CONNECTOR, /* for a join question (cluster_transport_join) */
};

/* A connection in its handshake, either side. */
struct ct_conn {
    LIST_ENTRY(ct_conn)
    link;                         /* in g->connecting, ct->incoming or ct->linking until
                                   * handed or freed */
    struct cluster_transport *ct; /* borrows */
    enum ct_role role;
    struct ct_group *g;          /* raft connector: borrows its group */
    struct raft_uv_connect *req; /* raft connector: raft_uv's request, called back once */
    struct ct_link *l;           /* link connector: borrows; NULL once detached from it */
    enum ct_step step;
    int status;    /* connector: for the callback when it fails */
    unsigned open; /* handles not yet closed, requests not yet called back */
    /* owns until handed over (raft_malloc: raft_uv frees it with raft_free); NULL once
     * closed: a uv_tcp_t, or with TLS the plaintext end of its relay (transport_tls.c) */
    uv_stream_t *stream;
    uv_timer_t timer;         /* the handshake's deadline */
    uv_getaddrinfo_t gai;     /* connector */
    struct addrinfo *ai_list; /* connector: owns (uv_freeaddrinfo) */
    struct addrinfo *ai_next; /* connector: the next address to try */
    uv_connect_t connect;     /* connector */
    uv_write_t writes[2];     /* acceptor: challenge, proof; connector: hello */
    uint8_t *rbuf;            /* the message being read: challenge, hello or proof */
    size_t have, want;        /* bytes of it read, bytes expected (so far) */
    uint8_t challenge[CT_CHALLENGE_LEN];
    uint8_t hello[CT_HELLO_MAX];
    size_t hello_len;
    uint8_t proof[CT_MAC_LEN];
    char peer[CT_ADDR_MAX + 8]; /* for log lines: the acceptor's peer ip:port, the
                                 * connector's target address */
    /* joins: the acceptor's token for the answer; the connector's callback, and the answer
     * (-1 until it came) */
    uint64_t join_token;
    void (*join_cb)(void *arg, int answer);
    void *join_arg;
    int answer;
    uint8_t answer_byte;
};

static void ct_conn_fail(struct ct_conn *c, int status);

/* The registered group numbered group, or NULL. A linear search: it runs once per accepted
 * connection, not per message. */
static struct ct_group *
ct_group_find(struct cluster_transport *ct, uint64_t group)
{
    struct ct_group *g;
    LIST_FOREACH(g, &ct->groups, link) {
        if (g->group == group)
            return g;
    }
    return NULL;
}

/* Frees ct once its close has finished: listener and tick closed, no handshake, stream,
 * link or refused connection left, no group still closing. Calls done(arg) last. */
void
cluster_ct_maybe_closed(struct cluster_transport *ct)
{
    if (!ct->closing || ct->listener_open || ct->tick_open || !LIST_EMPTY(&ct->incoming) ||
        !LIST_EMPTY(&ct->linking) || !LIST_EMPTY(&ct->streams) || ct->n_links > 0 ||
        ct->n_refusing > 0 || ct->n_groups > 0 || ct->n_relays > 0)
        return;
    void (*done)(void *) = ct->done;
    void *arg = ct->done_arg;
    SSL_CTX_free(ct->tls);
    free(ct->secret);
    free(ct);
    if (done != NULL)
        done(arg);
}

/* Frees a group once its close has finished: no connect left, closer closed. Calls the close
 * callback last, as the caller may free t there. */
static void
ct_group_maybe_closed(struct ct_group *g)
{
    if (!g->closing || g->closer_open || !LIST_EMPTY(&g->connecting))
        return;
    struct raft_uv_transport *t = g->t;
    raft_uv_transport_close_cb cb = g->close_cb;
    struct cluster_transport *ct = g->ct;
    ct->n_groups--;
    free(g);
    if (cb != NULL)
        cb(t);
    cluster_ct_maybe_closed(ct);
}

/* Frees c once nothing refers to it any more: no handle open, no request pending. A failed
 * raft connector's callback runs here (RAFT_CANCELED when its group is closing), after its
 * handles are closed as raft_uv expects; a failed link connector's link tries again later. */
static void
ct_conn_maybe_free(struct ct_conn *c)
{
    if (c->open > 0)
        return;
    if (c->ai_list != NULL)
        uv_freeaddrinfo(c->ai_list);
    if (c->step == CT_HANDED) {
        free(c);
        return;
    }
    WR_ASSERT(c->step == CT_FAILED);
    LIST_REMOVE(c, link);
    struct ct_group *g = c->g;
    struct cluster_transport *ct = c->ct;
    if (c->role == CT_ACCEPTOR)
        ct->n_incoming--;
    if (c->role == CT_LINK_CONNECTOR && c->l != NULL)
        cluster_link_connect_failed(c->l);
    if (c->role == CT_JOIN_CONNECTOR)
        c->join_cb(c->join_arg, c->answer);
    if (c->role == CT_RAFT_CONNECTOR) {
        struct raft_uv_connect *req = c->req;
        int status = g->closing ? RAFT_CANCELED : c->status;
        free(c);
        req->cb(req, NULL, status);
        ct_group_maybe_closed(g);
        return;
    }
    free(c);
    cluster_ct_maybe_closed(ct);
}

static void
ct_timer_closed(uv_handle_t *h)
{
    struct ct_conn *c = h->data;
    c->open--;
    ct_conn_maybe_free(c);
}

static void ct_connect_next(struct ct_conn *c);

/* The close callback of a connection's stream: frees it, then either frees the connection
 * (it failed) or, for a connector whose attempt at one address failed, tries the next. */
static void
ct_conn_stream_closed(uv_handle_t *h)
{
    struct ct_conn *c = h->data;
    raft_free(h);
    c->stream = NULL;
    c->open--;
    if (c->step == CT_FAILED)
        ct_conn_maybe_free(c);
    else
        ct_connect_next(c);
}

/* Fails c: closes its handles and cancels its name lookup; c is freed (and a connector's
 * callback called with status) once all of them have called back. Idempotent. */
static void
ct_conn_fail(struct ct_conn *c, int status)
{
    if (c->step == CT_FAILED)
        return;
    if (c->step == CT_RESOLVING)
        uv_cancel((uv_req_t *)&c->gai); /* fails when already running: its callback comes */
    c->step = CT_FAILED;
    c->status = status;
    if (c->stream != NULL && !uv_is_closing((uv_handle_t *)c->stream))
        uv_close((uv_handle_t *)c->stream, ct_conn_stream_closed);
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, ct_timer_closed);
    ct_conn_maybe_free(c);
}

/* Fails an accepted connection with one log line naming the peer and why. */
static void
ct_incoming_refuse(struct ct_conn *c, const char *why)
{
    log_msg(LOG_WARNING, "cluster transport: closing connection from %s: %s", c->peer, why);
    ct_conn_fail(c, RAFT_NOCONNECTION);
}

/* The handshake took too long. */
static void
ct_timer_fired(uv_timer_t *timer)
{
    struct ct_conn *c = timer->data;
    if (c->step == CT_JOIN_WAIT) {
        ct_incoming_refuse(c, "a join question unanswered in time");
        return;
    }
    if (c->role == CT_ACCEPTOR) {
        char why[64];
        snprintf(why, sizeof(why), "no handshake within %u ms", c->ct->timeout_ms);
        ct_incoming_refuse(c, why);
        return;
    }
    log_msg(LOG_DEBUG, "cluster transport: connect to %s: no handshake within %u ms", c->peer,
            c->ct->timeout_ms);
    ct_conn_fail(c, RAFT_NOCONNECTION);
}

/* Starts the deadline timer of a new connection (counted in c->open). */
static void
ct_conn_timer_start(struct ct_conn *c)
{
    WR_ASSERT(uv_timer_init(c->ct->loop, &c->timer) == 0);
    c->timer.data = c;
    c->open++;
    WR_ASSERT(uv_timer_start(&c->timer, ct_timer_fired, c->ct->timeout_ms, 0) == 0);
}

/* HMAC-SHA256 of label || c->challenge || the hello before its MAC, into mac (32 bytes).
 * Returns 0, or -1 when OpenSSL fails. */
static int
ct_mac(const struct cluster_transport *ct, const char *label, size_t label_len,
       const struct ct_conn *c, uint8_t *mac)
{
    uint8_t msg[sizeof(ct_label_connector) + CT_CHALLENGE_LEN + CT_HELLO_MAX];
    size_t n = 0, signed_len = c->hello_len - CT_MAC_LEN;
    WR_ASSERT(label_len + CT_CHALLENGE_LEN + signed_len <= sizeof(msg));
    memcpy(msg, label, label_len);
    n += label_len;
    memcpy(msg + n, c->challenge, CT_CHALLENGE_LEN);
    n += CT_CHALLENGE_LEN;
    memcpy(msg + n, c->hello, signed_len);
    n += signed_len;
    unsigned mac_len = 0;
    if (HMAC(EVP_sha256(), ct->secret, (int)ct->secret_len, msg, n, mac, &mac_len) == NULL ||
        mac_len != CT_MAC_LEN)
        return -1;
    return 0;
}

/* Sets TCP_NODELAY (Raft's and the links' small messages must not wait on Nagle and delayed
 * ACKs), and TCP keepalive with TCP_USER_TIMEOUT, so that a stream to a peer that died
 * without a FIN or RST fails within seconds, whether idle (keepalive) or writing (bytes
 * unacknowledged): raft_uv reconnects only when a write or read fails. Returns 0, or a
 * libuv error. */
static int
ct_tcp_tune(uv_tcp_t *tcp)
{
    int rv;
    uv_os_fd_t fd;
    if ((rv = uv_tcp_nodelay(tcp, 1)) < 0 ||
        (rv = uv_tcp_keepalive(tcp, 1, CT_KEEPALIVE_IDLE_S)) < 0 ||
        (rv = uv_fileno((uv_handle_t *)tcp, &fd)) < 0)
        return rv;
    int intvl = CT_KEEPALIVE_INTVL_S, cnt = CT_KEEPALIVE_CNT, user_timeout = CT_USER_TIMEOUT_MS;
    if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout)) < 0)
        return uv_translate_sys_error(errno);
    return 0;
}

/* With TLS between the nodes: c's TCP connection, just made or accepted, goes to a TLS relay
 * (as its client or server end), and c goes on with the plaintext stream. 0, or a libuv
 * error. */
static int
ct_conn_tls(struct ct_conn *c, bool client)
{
    if (c->ct->tls == NULL)
        return 0;
    uv_stream_t *plain;
    int rv = cluster_ct_tls_wrap(c->ct, (uv_tcp_t *)c->stream, client, c->peer, &plain);
    if (rv < 0)
        return rv;
    c->stream = plain; /* (the relay owns the TCP handle now) */
    plain->data = c;
    return 0;
}

static void
ct_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct ct_conn *c = h->data;
    (void)suggested;
    /* Exactly what the message still lacks: a read never takes bytes beyond it. */
    *buf = uv_buf_init((char *)c->rbuf + c->have, (unsigned)(c->want - c->have));
}

/* Starts reading the next message of the handshake into rbuf (want bytes, for now). */
static void
ct_conn_expect(struct ct_conn *c, uint8_t *rbuf, size_t want)
{
    c->rbuf = rbuf;
    c->have = 0;
    c->want = want;
}

/* The handshake of c succeeded: returns its stream, which the caller now owns (a raft_uv
 * stream, or a link's), and lets c go once its timer has closed. */
static uv_stream_t *
ct_conn_hand_over(struct ct_conn *c)
{
    uv_stream_t *stream = c->stream;
    uv_read_stop(stream);
    c->stream = NULL;
    c->open--;
    c->step = CT_HANDED;
    LIST_REMOVE(c, link);
    if (c->role == CT_ACCEPTOR)
        c->ct->n_incoming--;
    uv_close((uv_handle_t *)&c->timer, ct_timer_closed);
    return stream;
}

/* A write of the handshake completed. After the stream is handed over only the count
 * matters: c lives until every write has called back. */
static void
ct_write_cb(uv_write_t *w, int status)
{
    struct ct_conn *c = w->data;
    c->open--;
    if (c->step == CT_HANDED || c->step == CT_FAILED) {
        ct_conn_maybe_free(c);
        return;
    }
    if (c->step == CT_JOIN_ANSWERED) { /* one answer per connection: done */
        ct_conn_fail(c, 0);
        return;
    }
    if (status < 0) {
        if (c->role == CT_ACCEPTOR) {
            char why[96];
            snprintf(why, sizeof(why), "write: %s", uv_strerror(status));
            ct_incoming_refuse(c, why);
        } else {
            ct_conn_fail(c, RAFT_NOCONNECTION);
        }
        return;
    }
    if (w != &c->writes[1])
        return; /* the challenge or the hello */

    /* The proof is out: the connection is the group's or the link's, if it has not closed
     * meanwhile. */
    uint64_t group = bytes_get64(c->hello + 8), from = bytes_get64(c->hello + 16);
    struct ct_group *g = NULL;
    struct ct_link *l = NULL;
    char address[CT_ADDR_MAX + 1];
    size_t len = bytes_get16(c->hello + 6);
    memcpy(address, c->hello + CT_HELLO_FIXED, len);
    address[len] = '\0';
    if (group == CLUSTER_TRANSPORT_JOIN_GROUP) { /* the handshake's deadline still holds */
        c->step = CT_JOIN_WAIT;
        c->join_token = ++c->ct->join_seq;
        c->ct->on_join(c->ct->on_join_arg, c->join_token, from, address);
        return;
    }
    if (group == CLUSTER_TRANSPORT_LINK_GROUP) {
        l = cluster_link_find(c->ct, from);
        if (l == NULL) {
            ct_incoming_refuse(c, "its node was unlinked during the handshake");
            return;
        }
    } else {
        g = ct_group_find(c->ct, group);
        if (g == NULL || g->accept_cb == NULL) {
            ct_incoming_refuse(c, "its raft group closed during the handshake");
            return;
        }
    }
    uv_stream_t *stream = ct_conn_hand_over(c);
    if (l != NULL)
        cluster_link_accepted(l, stream, address);
    else
        g->accept_cb(g->t, from, address, stream);
}

/* Writes n bytes of c's own buffer buf as the handshake's i-th write (counted in c->open).
 * Returns 0, or a libuv error. */
static int
ct_conn_write(struct ct_conn *c, unsigned i, uint8_t *buf, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)n);
    c->writes[i].data = c;
    int rv = uv_write(&c->writes[i], c->stream, &b, 1, ct_write_cb);
    if (rv == 0)
        c->open++;
    return rv;
}

/* Acceptor: the hello is complete. Checks it and writes the proof. */
static void
ct_incoming_on_hello(struct ct_conn *c)
{
    struct cluster_transport *ct = c->ct;
    uint8_t mac[CT_MAC_LEN];
    if (ct_mac(ct, ct_label_connector, sizeof(ct_label_connector), c, mac) < 0) {
        ct_incoming_refuse(c, "HMAC failed (OpenSSL)");
        return;
    }
    if (CRYPTO_memcmp(mac, c->hello + c->hello_len - CT_MAC_LEN, CT_MAC_LEN) != 0) {
        ct_incoming_refuse(c, "wrong HMAC: not a member, or a different cluster secret");
        return;
    }
    size_t addr_len = bytes_get16(c->hello + 6);
    if (memchr(c->hello + CT_HELLO_FIXED, '\0', addr_len) != NULL) {
        ct_incoming_refuse(c, "address with a NUL byte");
        return;
    }
    if (bytes_get64(c->hello + 16) == 0) {
        ct_incoming_refuse(c, "raft id 0");
        return;
    }
    uint64_t group = bytes_get64(c->hello + 8), from = bytes_get64(c->hello + 16);
    uint64_t target = bytes_get64(c->hello + 24), self;
    char why[128];
    if (group == CLUSTER_TRANSPORT_JOIN_GROUP) {
        if (ct->on_join == NULL) {
            ct_incoming_refuse(c, "a join question, but this node takes none");
            return;
        }
        self = target; /* any node of the cluster answers */
    } else if (group == CLUSTER_TRANSPORT_LINK_GROUP) {
        self = ct->self_id;
        if (self == 0) {
            ct_incoming_refuse(c, "a node link, but this node has no links yet");
            return;
        }
    } else {
        struct ct_group *g = ct_group_find(ct, group);
        if (g == NULL || g->accept_cb == NULL) {
            snprintf(why, sizeof(why), "unknown raft group %llu", (unsigned long long)group);
            ct_incoming_refuse(c, why);
            return;
        }
        self = g->id;
    }
    if (target != self) {
        snprintf(why, sizeof(why),
                 "it means to reach id %llu in group %llu, this node is %llu there (a stale "
                 "address?)",
                 (unsigned long long)target, (unsigned long long)group, (unsigned long long)self);
        ct_incoming_refuse(c, why);
        return;
    }
    if (group == CLUSTER_TRANSPORT_LINK_GROUP && cluster_link_find(ct, from) == NULL) {
        snprintf(why, sizeof(why), "a node link from node id %llu, not a linked node",
                 (unsigned long long)from);
        ct_incoming_refuse(c, why);
        return;
    }
    uv_read_stop(c->stream);
    if (ct_mac(ct, ct_label_acceptor, sizeof(ct_label_acceptor), c, c->proof) < 0) {
        ct_incoming_refuse(c, "HMAC failed (OpenSSL)");
        return;
    }
    c->step = CT_WRITE_PROOF;
    int rv = ct_conn_write(c, 1, c->proof, CT_MAC_LEN);
    if (rv < 0) {
        snprintf(why, sizeof(why), "write: %s", uv_strerror(rv));
        ct_incoming_refuse(c, why);
    }
}

/* Renders the first bytes of a bad handshake for the log line. */
static void
ct_incoming_refuse_bytes(struct ct_conn *c, const char *what)
{
    char sample[64], why[160];
    log_escape(sample, sizeof(sample), c->rbuf, c->have < 16 ? c->have : 16);
    snprintf(why, sizeof(why), "%s (starts \"%s\")", what, sample);
    ct_incoming_refuse(c, why);
}

/* Acceptor: hello bytes arrived. */
static void
ct_incoming_read(struct ct_conn *c)
{
    if (c->want == CT_HELLO_FIXED) {
        if (bytes_get32(c->hello) != CT_MAGIC || bytes_get16(c->hello + 4) != CT_VERSION) {
            ct_incoming_refuse_bytes(c, "not a Warren cluster handshake");
            return;
        }
        size_t addr_len = bytes_get16(c->hello + 6);
        if (addr_len == 0 || addr_len > CT_ADDR_MAX) {
            char why[64];
            snprintf(why, sizeof(why), "address length %zu out of 1..%d", addr_len, CT_ADDR_MAX);
            ct_incoming_refuse(c, why);
            return;
        }
        c->hello_len = CT_HELLO_FIXED + addr_len + CT_MAC_LEN;
        c->want = c->hello_len;
        return;
    }
    ct_incoming_on_hello(c);
}

/* Connector: writes the hello's fields but the nonce and the MAC, which wait for the
 * challenge. address: 1..CT_ADDR_MAX bytes. */
static void
ct_hello_prepare(struct ct_conn *c, uint64_t group, uint64_t id, uint64_t target,
                 const char *address)
{
    size_t addr_len = strlen(address);
    WR_ASSERT(addr_len > 0 && addr_len <= CT_ADDR_MAX);
    uint8_t *p = c->hello;
    bytes_put32(p, CT_MAGIC);
    bytes_put16(p + 4, CT_VERSION);
    bytes_put16(p + 6, (uint16_t)addr_len);
    bytes_put64(p + 8, group);
    bytes_put64(p + 16, id);
    bytes_put64(p + 24, target);
    memcpy(p + CT_HELLO_FIXED, address, addr_len);
    c->hello_len = CT_HELLO_FIXED + addr_len + CT_MAC_LEN;
}

/* Connector: the challenge is complete. Writes the hello and waits for the proof. */
static void
ct_connect_on_challenge(struct ct_conn *c)
{
    if (bytes_get32(c->challenge) != CT_MAGIC || bytes_get16(c->challenge + 4) != CT_VERSION) {
        log_msg(LOG_DEBUG, "cluster transport: connect to %s: not a Warren cluster listener",
                c->peer);
        ct_conn_fail(c, RAFT_NOCONNECTION);
        return;
    }
    uint8_t *p = c->hello;
    if (RAND_bytes(p + CT_HELLO_NONCE, CT_NONCE_LEN) != 1 ||
        ct_mac(c->ct, ct_label_connector, sizeof(ct_label_connector), c,
               p + c->hello_len - CT_MAC_LEN) < 0) {
        log_msg(LOG_ERROR, "cluster transport: connect to %s: OpenSSL failed", c->peer);
        ct_conn_fail(c, RAFT_NOCONNECTION);
        return;
    }
    if (ct_conn_write(c, 0, c->hello, c->hello_len) < 0) {
        ct_conn_fail(c, RAFT_NOCONNECTION);
        return;
    }
    c->step = CT_READ_PROOF;
    ct_conn_expect(c, c->proof, CT_MAC_LEN);
}

/* Connector: the proof is complete. Checks it and hands the stream to raft_uv. */
static void
ct_connect_on_proof(struct ct_conn *c)
{
    uint8_t mac[CT_MAC_LEN];
    if (ct_mac(c->ct, ct_label_acceptor, sizeof(ct_label_acceptor), c, mac) < 0 ||
        CRYPTO_memcmp(mac, c->proof, CT_MAC_LEN) != 0) {
        log_msg(LOG_WARNING,
                "cluster transport: connect to %s: wrong proof from the peer: not a member, "
                "or a different cluster secret",
                c->peer);
        ct_conn_fail(c, RAFT_NOCONNECTION);
        return;
    }
    if (c->role == CT_JOIN_CONNECTOR) {
        c->step = CT_READ_ANSWER;
        ct_conn_expect(c, &c->answer_byte, 1);
        return;
    }
    uv_stream_t *stream = ct_conn_hand_over(c);
    if (c->role == CT_LINK_CONNECTOR) {
        WR_ASSERT(c->l != NULL); /* cluster_ct_link_cancel fails c */
        cluster_link_connected(c->l, stream);
        return;
    }
    struct raft_uv_connect *req = c->req;
    req->cb(req, stream, 0);
}

static void
ct_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct ct_conn *c = s->data;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (c->role != CT_ACCEPTOR) {
            ct_conn_fail(c, RAFT_NOCONNECTION);
        } else if (nread == UV_EOF) {
            ct_incoming_refuse(c, c->have == 0 && c->want == CT_HELLO_FIXED
                                      ? "closed before its handshake"
                                      : "closed in the middle of its handshake");
        } else {
            char why[96];
            snprintf(why, sizeof(why), "read: %s", uv_strerror((int)nread));
            ct_incoming_refuse(c, why);
        }
        return;
    }
    c->have += (size_t)nread;
    if (c->have < c->want)
        return;
    switch (c->step) {
    case CT_READ_HELLO:
        ct_incoming_read(c);
        break;
    case CT_READ_CHALLENGE:
        ct_connect_on_challenge(c);
        break;
    case CT_READ_PROOF:
        ct_connect_on_proof(c);
        break;
    case CT_READ_ANSWER:
        c->answer = c->answer_byte;
        ct_conn_fail(c, 0); /* closes it; the callback gets the answer */
        break;
    default:
        WR_ASSERT(0);
    }
}

/* Connector: TCP is up; reads the challenge. */
static void
ct_connect_cb(uv_connect_t *req, int status)
{
    struct ct_conn *c = req->data;
    if (c->step == CT_FAILED)
        return; /* its handle is closing */
    if (status < 0) {
        log_msg(LOG_DEBUG, "cluster transport: connect to %s: %s", c->peer, uv_strerror(status));
        uv_close((uv_handle_t *)c->stream, ct_conn_stream_closed); /* then the next address */
        return;
    }
    c->step = CT_READ_CHALLENGE;
    ct_conn_expect(c, c->challenge, CT_CHALLENGE_LEN);
    if (ct_tcp_tune((uv_tcp_t *)c->stream) < 0 || ct_conn_tls(c, true) < 0 ||
        uv_read_start(c->stream, ct_alloc_cb, ct_read_cb) < 0)
        ct_conn_fail(c, RAFT_NOCONNECTION);
}

/* Connector: tries the next address the name resolved to, or fails when none is left. */
static void
ct_connect_next(struct ct_conn *c)
{
    c->step = CT_CONNECTING;
    while (c->ai_next != NULL) {
        struct addrinfo *ai = c->ai_next;
        c->ai_next = ai->ai_next;
        uv_tcp_t *tcp = raft_malloc(sizeof(*tcp));
        if (tcp == NULL)
            break;
        WR_ASSERT(uv_tcp_init(c->ct->loop, tcp) == 0);
        c->stream = (uv_stream_t *)tcp;
        c->stream->data = c;
        c->open++;
        c->connect.data = c;
        int rv = uv_tcp_connect(&c->connect, tcp, ai->ai_addr, ct_connect_cb);
        if (rv == 0)
            return;
        log_msg(LOG_DEBUG, "cluster transport: connect to %s: %s", c->peer, uv_strerror(rv));
        uv_close((uv_handle_t *)c->stream, ct_conn_stream_closed); /* then the next address */
        return;
    }
    ct_conn_fail(c, RAFT_NOCONNECTION);
}

static void
ct_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct ct_conn *c = req->data;
    c->open--;
    c->ai_list = res;
    c->ai_next = res;
    if (c->step == CT_FAILED) {
        ct_conn_maybe_free(c);
        return;
    }
    if (status < 0) {
        log_msg(LOG_DEBUG, "cluster transport: connect to %s: %s", c->peer, uv_strerror(status));
        ct_conn_fail(c, RAFT_NOCONNECTION);
        return;
    }
    ct_connect_next(c);
}

/* Splits a Raft address, "name@host:port" (name optional; host may be a bracketed IPv6
 * address), into host and port. Returns 0, or -1 when it has no port or one out of range. */
static int
ct_address_split(const char *address, char *host, size_t host_cap, char *port, size_t port_cap)
{
    const char *at = strrchr(address, '@');
    const char *rest = at != NULL ? at + 1 : address;
    const char *colon = strrchr(rest, ':');
    if (colon == NULL)
        return -1;
    size_t port_len = strlen(colon + 1);
    if (port_len == 0 || port_len >= port_cap || strspn(colon + 1, "0123456789") != port_len)
        return -1;
    unsigned long p = strtoul(colon + 1, NULL, 10);
    if (p == 0 || p > 65535)
        return -1;
    memcpy(port, colon + 1, port_len + 1);
    size_t host_len = (size_t)(colon - rest);
    if (host_len >= 2 && rest[0] == '[' && rest[host_len - 1] == ']') {
        rest++;
        host_len -= 2;
    }
    if (host_len == 0 || host_len >= host_cap)
        return -1;
    memcpy(host, rest, host_len);
    host[host_len] = '\0';
    return 0;
}

/* raft_uv_transport->init: this node's id and address in the group. */
static int
ct_group_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct ct_group *g = t->impl;
    size_t len = strlen(address);
    if (len == 0 || len > CT_ADDR_MAX) {
        snprintf(t->errmsg, sizeof(t->errmsg), "address length %zu out of 1..%d", len, CT_ADDR_MAX);
        return RAFT_INVALID;
    }
    g->id = id;
    memcpy(g->address, address, len + 1);
    g->inited = true;
    return 0;
}

/* raft_uv_transport->listen: from now on, accepted connections naming the group go to cb.
 * The node's listener is shared: nothing to bind here. */
static int
ct_group_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct ct_group *g = t->impl;
    g->accept_cb = cb;
    return 0;
}

/* Starts the handshake of connector c (its role's fields and hello prepared) to address:
 * resolves its host, then connects, the rest from loop callbacks. Returns 0, or
 * RAFT_NOCONNECTION with err filled (c is then the caller's to free). */
static int
ct_conn_start(struct ct_conn *c, const char *address, char *err, size_t errlen)
{
    char host[CT_ADDR_MAX + 1], port[8];
    if (ct_address_split(address, host, sizeof(host), port, sizeof(port)) < 0) {
        snprintf(err, errlen, "bad address '%.200s' (want name@host:port)", address);
        return RAFT_NOCONNECTION;
    }
    c->step = CT_RESOLVING;
    snprintf(c->peer, sizeof(c->peer), "%s", address);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->gai.data = c;
    int rv = uv_getaddrinfo(c->ct->loop, &c->gai, ct_resolved, host, port, &hints);
    if (rv < 0) {
        snprintf(err, errlen, "resolve '%.200s': %s", host, uv_strerror(rv));
        return RAFT_NOCONNECTION;
    }
    c->open++;
    ct_conn_timer_start(c);
    return 0;
}

/* raft_uv_transport->connect: resolves the address's host, connects, runs the handshake
 * (its hello naming id as the member meant); req->cb gets the stream, or a failure
 * (RAFT_NOCONNECTION; RAFT_CANCELED when the group closes first). Returns 0, or
 * RAFT_NOCONNECTION/RAFT_NOMEM without calling back. */
static int
ct_group_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                 const char *address, raft_uv_connect_cb cb)
{
    struct ct_group *g = t->impl;
    WR_ASSERT(g->inited && !g->closing);
    struct ct_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(t->errmsg, sizeof(t->errmsg), "out of memory");
        return RAFT_NOMEM;
    }
    c->ct = g->ct;
    c->role = CT_RAFT_CONNECTOR;
    c->g = g;
    c->req = req;
    req->cb = cb;
    ct_hello_prepare(c, g->group, g->id, id, g->address);
    int rv = ct_conn_start(c, address, t->errmsg, sizeof(t->errmsg));
    if (rv != 0) {
        free(c);
        return rv;
    }
    LIST_INSERT_HEAD(&g->connecting, c, link);
    return 0;
}

bool
cluster_ct_address_valid(const char *address)
{
    char host[CT_ADDR_MAX + 1], port[8];
    return strlen(address) <= CT_ADDR_MAX &&
           ct_address_split(address, host, sizeof(host), port, sizeof(port)) == 0;
}

struct ct_conn *
cluster_ct_link_connect(struct cluster_transport *ct, struct ct_link *l, uint64_t peer_id,
                        const char *address)
{
    WR_ASSERT(!ct->closing && ct->self_id != 0);
    struct ct_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        log_msg(LOG_ERROR, "cluster transport: link to %s: out of memory", address);
        return NULL;
    }
    c->ct = ct;
    c->role = CT_LINK_CONNECTOR;
    c->l = l;
    ct_hello_prepare(c, CLUSTER_TRANSPORT_LINK_GROUP, ct->self_id, peer_id, ct->self_address);
    char err[256];
    if (ct_conn_start(c, address, err, sizeof(err)) != 0) {
        log_msg(LOG_DEBUG, "cluster transport: link to %s: %s", address, err);
        free(c);
        return NULL;
    }
    LIST_INSERT_HEAD(&ct->linking, c, link);
    return c;
}

int
cluster_transport_join(struct cluster_transport *ct, const char *address,
                       void (*cb)(void *arg, int answer), void *arg)
{
    if (ct->closing || ct->self_id == 0 || !cluster_ct_address_valid(address))
        return -1;
    struct ct_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    c->ct = ct;
    c->role = CT_JOIN_CONNECTOR;
    c->join_cb = cb;
    c->join_arg = arg;
    c->answer = -1;
    ct_hello_prepare(c, CLUSTER_TRANSPORT_JOIN_GROUP, ct->self_id, 0, ct->self_address);
    char err[256];
    if (ct_conn_start(c, address, err, sizeof(err)) != 0) {
        log_msg(LOG_DEBUG, "cluster transport: join question to %s: %s", address, err);
        free(c);
        return -1;
    }
    LIST_INSERT_HEAD(&ct->linking, c, link);
    return 0;
}

void
cluster_transport_on_join(struct cluster_transport *ct,
                          void (*fn)(void *arg, uint64_t token, uint64_t id, const char *address),
                          void *arg)
{
    ct->on_join = fn;
    ct->on_join_arg = arg;
}

void
cluster_transport_join_answer(struct cluster_transport *ct, uint64_t token, uint8_t answer)
{
    struct ct_conn *c;
    LIST_FOREACH(c, &ct->incoming, link) {
        if (c->step != CT_JOIN_WAIT || c->join_token != token)
            continue;
        c->answer_byte = answer;
        c->step = CT_JOIN_ANSWERED;
        if (ct_conn_write(c, 1, &c->answer_byte, 1) < 0)
            ct_conn_fail(c, 0);
        return;
    }
}

void
cluster_ct_link_cancel(struct ct_conn *c)
{
    c->l = NULL;
    ct_conn_fail(c, RAFT_CANCELED);
}

static void
ct_group_closer_closed(uv_handle_t *h)
{
    struct ct_group *g = h->data;
    g->closer_open = false;
    ct_group_maybe_closed(g);
}

/* raft_uv_transport->close: unregisters the group (no accept callback from now on), fails
 * its connects with RAFT_CANCELED, and calls cb (may be NULL) on a later loop turn, once they
 * have all called back; g is then freed. */
static void
ct_group_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct ct_group *g = t->impl;
    WR_ASSERT(!g->closing);
    g->closing = true;
    g->close_cb = cb;
    LIST_REMOVE(g, link);
    WR_ASSERT(uv_check_init(g->ct->loop, &g->closer) == 0);
    g->closer.data = g;
    g->closer_open = true;
    uv_close((uv_handle_t *)&g->closer, ct_group_closer_closed);
    struct ct_conn *c, *next;
    for (c = LIST_FIRST(&g->connecting); c != NULL; c = next) {
        next = LIST_NEXT(c, link);
        ct_conn_fail(c, RAFT_CANCELED);
    }
}

int
cluster_transport_group(struct cluster_transport *ct, uint64_t group, struct raft_uv_transport *t)
{
    WR_ASSERT(!ct->closing);
    if (group == CLUSTER_TRANSPORT_LINK_GROUP || ct_group_find(ct, group) != NULL)
        return -1;
    struct ct_group *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return -1;
    g->ct = ct;
    g->t = t;
    g->group = group;
    LIST_INIT(&g->connecting);
    LIST_INSERT_HEAD(&ct->groups, g, link);
    ct->n_groups++;

    void *data = t->data;
    memset(t, 0, sizeof(*t));
    t->data = data;
    t->impl = g;
    t->init = ct_group_init;
    t->listen = ct_group_listen;
    t->connect = ct_group_connect;
    t->close = ct_group_close;
    return 0;
}

/* Writes "ip:port" (IPv6 in brackets) of a socket address into dst. */
static void
ct_sockaddr_name(const struct sockaddr_storage *ss, char *dst, size_t cap)
{
    char ip[64] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, ip, sizeof(ip));
        port = ntohs(a->sin_port);
        snprintf(dst, cap, "%s:%u", ip, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
        snprintf(dst, cap, "[%s]:%u", ip, port);
    } else {
        snprintf(dst, cap, "?");
    }
}

static void
ct_refused_closed(uv_handle_t *h)
{
    struct cluster_transport *ct = h->data;
    free(h);
    ct->n_refusing--;
    cluster_ct_maybe_closed(ct);
}

/* CT_HANDSHAKES_MAX connections are in their handshake already: accepts the waiting one
 * (libuv stops watching the listener until it is) and closes it, with a log line at most
 * every CT_REFUSE_LOG_MS saying how many were closed since the last one. */
static void
ct_listen_refuse(struct cluster_transport *ct, uv_stream_t *server)
{
    uv_tcp_t *tcp = malloc(sizeof(*tcp));
    if (tcp == NULL) {
        log_msg(LOG_ERROR, "cluster transport: accept: out of memory");
        return;
    }
    WR_ASSERT(uv_tcp_init(ct->loop, tcp) == 0);
    tcp->data = ct;
    ct->n_refusing++;
    (void)uv_accept(server, (uv_stream_t *)tcp); /* closed either way */
    uv_close((uv_handle_t *)tcp, ct_refused_closed);
    ct->n_refused++;
    uint64_t now = uv_now(ct->loop);
    if (ct->refused_logged == 0 || now - ct->refused_logged >= CT_REFUSE_LOG_MS) {
        log_msg(LOG_WARNING,
                "cluster transport: %d connections in their handshake already: closed %u new "
                "connection(s) since the last such line",
                CT_HANDSHAKES_MAX, ct->n_refused);
        ct->refused_logged = now != 0 ? now : 1;
        ct->n_refused = 0;
    }
}

/* A connection is waiting on the listener: accepts it, sends the challenge, reads the
 * hello. */
static void
ct_listen_cb(uv_stream_t *server, int status)
{
    struct cluster_transport *ct = server->data;
    if (status < 0) {
        log_msg(LOG_WARNING, "cluster transport: accept: %s", uv_strerror(status));
        return;
    }
    if (ct->n_incoming >= CT_HANDSHAKES_MAX) {
        ct_listen_refuse(ct, server);
        return;
    }
    struct ct_conn *c = calloc(1, sizeof(*c));
    uv_tcp_t *tcp = raft_malloc(sizeof(*tcp));
    if (c == NULL || tcp == NULL) {
        log_msg(LOG_ERROR, "cluster transport: accept: out of memory");
        free(c);
        raft_free(tcp);
        return;
    }
    c->ct = ct;
    c->stream = (uv_stream_t *)tcp;
    c->step = CT_READ_HELLO;
    WR_ASSERT(uv_tcp_init(ct->loop, tcp) == 0);
    tcp->data = c;
    c->open++;
    LIST_INSERT_HEAD(&ct->incoming, c, link);
    ct->n_incoming++;
    ct_conn_timer_start(c);
    int rv = uv_accept(server, (uv_stream_t *)tcp);
    if (rv < 0) {
        snprintf(c->peer, sizeof(c->peer), "?");
        char why[96];
        snprintf(why, sizeof(why), "accept: %s", uv_strerror(rv));
        ct_incoming_refuse(c, why);
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0)
        ct_sockaddr_name(&ss, c->peer, sizeof(c->peer));
    else
        snprintf(c->peer, sizeof(c->peer), "?");

    bytes_put32(c->challenge, CT_MAGIC);
    bytes_put16(c->challenge + 4, CT_VERSION);
    bytes_put16(c->challenge + 6, 0);
    if (RAND_bytes(c->challenge + 8, CT_NONCE_LEN) != 1) {
        ct_incoming_refuse(c, "RAND_bytes failed (OpenSSL)");
        return;
    }
    ct_conn_expect(c, c->hello, CT_HELLO_FIXED);
    if ((rv = ct_tcp_tune(tcp)) < 0 || (rv = ct_conn_tls(c, false)) < 0 ||
        (rv = ct_conn_write(c, 0, c->challenge, CT_CHALLENGE_LEN)) < 0 ||
        (rv = uv_read_start(c->stream, ct_alloc_cb, ct_read_cb)) < 0) {
        char why[96];
        snprintf(why, sizeof(why), "%s", uv_strerror(rv));
        ct_incoming_refuse(c, why);
    }
}

struct cluster_transport *
cluster_transport_new(uv_loop_t *loop, const char *bind_host, uint16_t port, const uint8_t *secret,
                      size_t secret_len, char *err, size_t errlen)
{
    if (secret_len < CT_SECRET_MIN) {
        snprintf(err, errlen, "the cluster secret has %zu bytes: at least %d needed", secret_len,
                 CT_SECRET_MIN);
        return NULL;
    }
    if (strlen(bind_host) > CT_ADDR_MAX) {
        snprintf(err, errlen, "bind host longer than %d bytes", CT_ADDR_MAX);
        return NULL;
    }
    struct cluster_transport *ct = calloc(1, sizeof(*ct));
    uint8_t *copy = malloc(secret_len);
    if (ct == NULL || copy == NULL) {
        free(ct);
        free(copy);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(copy, secret, secret_len);
    ct->loop = loop;
    ct->secret = copy;
    ct->secret_len = secret_len;
    ct->port = port;
    ct->timeout_ms = CT_HANDSHAKE_TIMEOUT_MS;
    snprintf(ct->bind_host, sizeof(ct->bind_host), "%s", bind_host);
    LIST_INIT(&ct->groups);
    LIST_INIT(&ct->incoming);
    LIST_INIT(&ct->linking);
    LIST_INIT(&ct->relays);
    WR_ASSERT(uv_tcp_init(loop, &ct->listener) == 0);
    ct->listener.data = ct;
    ct->listener_open = true;
    cluster_links_init(ct);
    return ct;
}

int
cluster_transport_listen(struct cluster_transport *ct, char *err, size_t errlen)
{
    char port[8];
    snprintf(port, sizeof(port), "%u", ct->port);
    uv_getaddrinfo_t req;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    /* Without a callback uv_getaddrinfo resolves synchronously: this runs once, at start. */
    int rv = uv_getaddrinfo(ct->loop, &req, NULL, ct->bind_host, port, &hints);
    if (rv == 0) {
        rv = uv_tcp_bind(&ct->listener, req.addrinfo->ai_addr, 0);
        uv_freeaddrinfo(req.addrinfo);
    }
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&ct->listener, 128, ct_listen_cb);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (rv == 0)
        rv = uv_tcp_getsockname(&ct->listener, (struct sockaddr *)&ss, &len);
    if (rv < 0) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s", ct->bind_host, ct->port,
                 uv_strerror(rv));
        return -1;
    }
    ct->bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                    : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

uint16_t
cluster_transport_port(const struct cluster_transport *ct)
{
    return ct->bound_port;
}

void
cluster_transport_set_handshake_timeout(struct cluster_transport *ct, unsigned msecs)
{
    ct->timeout_ms = msecs;
}

void
cluster_transport_set_tls(struct cluster_transport *ct, struct ssl_ctx_st *ctx)
{
    SSL_CTX_up_ref(ctx);
    SSL_CTX_free(ct->tls);
    ct->tls = ctx;
}

static void
ct_listener_closed(uv_handle_t *h)
{
    struct cluster_transport *ct = h->data;
    ct->listener_open = false;
    cluster_ct_maybe_closed(ct);
}

void
cluster_transport_close(struct cluster_transport *ct, void (*done)(void *arg), void *arg)
{
    WR_ASSERT(!ct->closing && LIST_EMPTY(&ct->groups));
    ct->closing = true;
    ct->done = done;
    ct->done_arg = arg;
    uv_close((uv_handle_t *)&ct->listener, ct_listener_closed);
    cluster_links_close(ct);
    cluster_ct_tls_close(ct);
    struct ct_conn *c, *next;
    for (c = LIST_FIRST(&ct->incoming); c != NULL; c = next) {
        next = LIST_NEXT(c, link);
        ct_conn_fail(c, RAFT_CANCELED);
    }
    for (c = LIST_FIRST(&ct->linking); c != NULL; c = next) {
        next = LIST_NEXT(c, link);
        if (c->role == CT_JOIN_CONNECTOR)
            ct_conn_fail(c, RAFT_CANCELED);
    }
}
