/* Node links (see transport.h): the part of the nodes' transport that keeps a stream to each
 * linked peer, over the handshake of transport.c (group 0, target the peer's node id), tells
 * from them which peers run, and carries the broker's messages between nodes.
 *
 * A link stream carries frames both ways, integers in network byte order:
 *   length (u32, of the payload)   type (u8)   payload (length bytes)
 * Type 0 is the heartbeat, with no payload, sent every 500 ms by both ends on every link
 * stream whose output is empty; the connector's messages go on the stream it made (the
 * acceptor sends only heartbeats on it), so each node's messages to a peer have one stream
 * and keep their order. A frame longer than the receiver's message limit, or a message on the
 * acceptor's side, closes the stream; so does 4 s without a byte.
 *
 * Ownership: ct owns the links (ct->links, each freed once its retry timer has closed) and
 * the streams (ct->streams, each freed by its handle's close callback); a link borrows its
 * stream out and its handshake under way (ct->linking, transport.c's), and a stream borrows
 * its link until either is dropped (ct_stream_detach, cluster_ct_link_cancel), so that
 * unlinking never waits for a connection.
 *
 * Everything runs on the transport's loop. */
#include "config.h"

#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport_int.h"
#include "warren/assert.h"
#include "warren/bytes.h"
#include "warren/log.h"

#define CT_LINK_HEADER 5 /* length (u32) and type (u8) */
#define CT_LINK_HEARTBEAT 0
#define CT_LINK_HEARTBEAT_MS 500
#define CT_LINK_ALIVE_MS 2000   /* a peer is alive while it was heard within this */
#define CT_LINK_SILENCE_MS 4000 /* a link stream that heard nothing for this long closes */
#define CT_LINK_RETRY_MIN_MS 500
#define CT_LINK_RETRY_MAX_MS 2000
#define CT_LINK_READ_CHUNK 65536 /* a link stream's read buffer; grows for a bigger frame */

/* A linked peer (cluster_transport_link). */
struct ct_link {
    LIST_ENTRY(ct_link) entry;    /* in ct->links until unlinked */
    struct cluster_transport *ct; /* borrows */
    uint64_t peer_id;
    char address[CT_ADDR_MAX + 1]; /* NUL-terminated */
    struct ct_conn *connecting;    /* borrows: our handshake under way to it (ct's) */
    struct ct_stream *out;         /* borrows: our stream to it, once up (ct's) */
    uint64_t last_heard;           /* uv_now when a byte last came from it, either stream */
    bool heard;                    /* last_heard is set */
    unsigned retry_ms;             /* the delay before the next connect */
    uv_timer_t retry;              /* the next connect; closing it frees the link */
};

/* A link's stream, once its handshake is done: ours to a peer, or a peer's to us. */
struct ct_stream {
    LIST_ENTRY(ct_stream) entry;  /* in ct->streams until freed */
    struct cluster_transport *ct; /* borrows */
    struct ct_link *link;         /* borrows: the peer's link; NULL once detached from it */
    uv_stream_t *stream;          /* owns (raft_malloc, from the handshake) */
    uint64_t peer_id;
    bool outgoing;      /* we made it: our messages to the peer go on it */
    bool closing;       /* uv_close called: freed by its callback */
    uint64_t last_read; /* uv_now when a byte last came */
    size_t out_bytes;   /* queued for writing, write callbacks not yet run */
    uint8_t *rbuf;      /* owns: bytes read, frames not yet taken */
    size_t rlen, rcap;
    char peer[CT_ADDR_MAX + 8]; /* for log lines: the peer's address */
};

/* A frame being written on a link stream. */
struct ct_frame {
    uv_write_t req;
    struct ct_stream *s; /* borrows: out_bytes counts the frame until its callback */
    size_t len;          /* header included */
    uint8_t bytes[];
};

static void ct_link_retry_later(struct ct_link *l);

/* The link to peer_id, or NULL. A linear search: a cluster has a few nodes. */
struct ct_link *
cluster_link_find(const struct cluster_transport *ct, uint64_t peer_id)
{
    struct ct_link *l;
    LIST_FOREACH(l, &ct->links, entry) {
        if (l->peer_id == peer_id)
            return l;
    }
    return NULL;
}

static void
ct_stream_closed(uv_handle_t *h)
{
    struct ct_stream *s = h->data;
    struct cluster_transport *ct = s->ct;
    raft_free(h);
    free(s->rbuf);
    LIST_REMOVE(s, entry);
    free(s);
    cluster_ct_maybe_closed(ct);
}

/* Detaches s from its link (the link may be going away) and returns the link, or NULL. */
static struct ct_link *
ct_stream_detach(struct ct_stream *s)
{
    struct ct_link *l = s->link;
    s->link = NULL;
    if (l != NULL && l->out == s)
        l->out = NULL;
    return l;
}

/* Closes s (idempotent): its queued frames are dropped (their write callbacks run, cancelled,
 * before the close callback frees s). why, when not NULL, is logged at level. When s was our
 * stream to a linked peer, the link connects again later. */
static void
ct_stream_close(struct ct_stream *s, enum log_level level, const char *why)
{
    if (s->closing)
        return;
    s->closing = true;
    if (why != NULL)
        log_msg(level, "cluster transport: link %s node %llu at %s closed: %s",
                s->outgoing ? "to" : "from", (unsigned long long)s->peer_id, s->peer, why);
    bool was_out = s->link != NULL && s->link->out == s;
    struct ct_link *l = ct_stream_detach(s);
    uv_close((uv_handle_t *)s->stream, ct_stream_closed);
    if (was_out)
        ct_link_retry_later(l);
}

static void
ct_frame_written(uv_write_t *req, int status)
{
    struct ct_frame *f = req->data;
    struct ct_stream *s = f->s;
    s->out_bytes -= f->len;
    free(f);
    if (status < 0 && status != UV_ECANCELED)
        ct_stream_close(s, LOG_INFO, uv_strerror(status));
}

/* Queues a frame of type and len bytes on s. Returns 0, or -1 on allocation or write
 * failure (s is then closing). */
static int
ct_stream_write(struct ct_stream *s, uint8_t type, const void *bytes, size_t len)
{
    struct ct_frame *f = malloc(sizeof(*f) + CT_LINK_HEADER + len);
    if (f == NULL) {
        log_msg(LOG_ERROR, "cluster transport: link to node %llu: out of memory for %zu bytes",
                (unsigned long long)s->peer_id, len);
        return -1;
    }
    f->req.data = f;
    f->s = s;
    f->len = CT_LINK_HEADER + len;
    bytes_put32(f->bytes, (uint32_t)len);
    f->bytes[4] = type;
    if (len > 0)
        memcpy(f->bytes + CT_LINK_HEADER, bytes, len);
    uv_buf_t b = uv_buf_init((char *)f->bytes, (unsigned)f->len);
    int rv = uv_write(&f->req, s->stream, &b, 1, ct_frame_written);
    if (rv < 0) {
        free(f);
        ct_stream_close(s, LOG_INFO, uv_strerror(rv));
        return -1;
    }
    s->out_bytes += f->len;
    return 0;
}

static void
ct_stream_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct ct_stream *s = h->data;
    (void)suggested;
    /* Room for a whole chunk, or for the rest of the frame under way when that is more
     * (its length was checked against msg_max when its header came). */
    size_t want = CT_LINK_READ_CHUNK;
    if (s->rlen >= CT_LINK_HEADER) {
        size_t frame = CT_LINK_HEADER + (size_t)bytes_get32(s->rbuf);
        if (frame > s->rlen && frame - s->rlen > want)
            want = frame - s->rlen;
    }
    if (s->rcap - s->rlen < want) {
        uint8_t *p = realloc(s->rbuf, s->rlen + want);
        if (p == NULL) {
            *buf = uv_buf_init(NULL, 0); /* the read callback gets UV_ENOBUFS */
            return;
        }
        s->rbuf = p;
        s->rcap = s->rlen + want;
    }
    *buf = uv_buf_init((char *)s->rbuf + s->rlen, (unsigned)(s->rcap - s->rlen));
}

/* Takes the complete frames at the start of s->rbuf: heartbeats are dropped, messages go to
 * the on_message callback (only on a stream a peer made). Stops when s or ct closes. */
static void
ct_stream_parse(struct ct_stream *s)
{
    struct cluster_transport *ct = s->ct;
    size_t off = 0;
    while (s->rlen - off >= CT_LINK_HEADER) {
        uint8_t *p = s->rbuf + off;
        size_t len = bytes_get32(p);
        uint8_t type = p[4];
        if (len > ct->msg_max) {
            char why[128];
            snprintf(why, sizeof(why), "a message of %zu bytes, over the limit of %zu", len,
                     ct->msg_max);
            ct_stream_close(s, LOG_WARNING, why);
            return;
        }
        if (s->rlen - off - CT_LINK_HEADER < len)
            break;
        off += CT_LINK_HEADER + len;
        if (type == CT_LINK_HEARTBEAT)
            continue;
        if (s->outgoing) {
            ct_stream_close(s, LOG_WARNING, "a message on our own link stream");
            return;
        }
        if (ct->on_message != NULL)
            ct->on_message(ct->on_message_arg, s->peer_id, type, p + CT_LINK_HEADER, len);
        if (s->closing || ct->closing)
            return;
    }
    s->rlen -= off;
    if (s->rlen > 0 && off > 0)
        memmove(s->rbuf, s->rbuf + off, s->rlen);
    if (s->rlen == 0 && s->rcap > CT_LINK_READ_CHUNK) {
        free(s->rbuf); /* a big frame's buffer: the next read allocates a chunk again */
        s->rbuf = NULL;
        s->rcap = 0;
    }
}

static void
ct_stream_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct ct_stream *s = stream->data;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        ct_stream_close(s, LOG_INFO,
                        nread == UV_EOF ? "closed by the peer" : uv_strerror((int)nread));
        return;
    }
    uint64_t now = uv_now(s->ct->loop);
    s->last_read = now;
    if (s->link != NULL) {
        s->link->last_heard = now;
        s->link->heard = true;
    }
    s->rlen += (size_t)nread;
    ct_stream_parse(s);
}

/* A link's handshake succeeded: stream (owned from now on) becomes a stream to (outgoing) or
 * from the linked peer l, named peer in log lines. */
static void
ct_stream_start(struct cluster_transport *ct, struct ct_link *l, uv_stream_t *stream, bool outgoing,
                const char *peer)
{
    struct ct_stream *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        log_msg(LOG_ERROR, "cluster transport: link %s %s: out of memory", outgoing ? "to" : "from",
                peer);
        uv_close((uv_handle_t *)stream, (uv_close_cb)raft_free);
        if (outgoing)
            ct_link_retry_later(l);
        return;
    }
    s->ct = ct;
    s->link = l;
    s->stream = stream;
    stream->data = s;
    s->peer_id = l->peer_id;
    s->outgoing = outgoing;
    s->last_read = uv_now(ct->loop);
    snprintf(s->peer, sizeof(s->peer), "%s", peer);
    LIST_INSERT_HEAD(&ct->streams, s, entry);
    if (outgoing) {
        l->out = s;
        l->retry_ms = CT_LINK_RETRY_MIN_MS;
    }
    /* The handshake's last bytes count as heard: the peer answered it just now. */
    l->last_heard = s->last_read;
    l->heard = true;
    log_msg(outgoing ? LOG_INFO : LOG_DEBUG, "cluster transport: link %s node %llu at %s up",
            outgoing ? "to" : "from", (unsigned long long)l->peer_id, peer);
    int rv = uv_read_start(stream, ct_stream_alloc, ct_stream_read);
    if (rv == 0)
        rv = ct_stream_write(s, CT_LINK_HEARTBEAT, NULL, 0) < 0 ? UV_ENOMEM : 0;
    if (rv < 0)
        ct_stream_close(s, LOG_WARNING, uv_strerror(rv));
}

void
cluster_link_connected(struct ct_link *l, uv_stream_t *stream)
{
    WR_ASSERT(l->connecting != NULL && l->out == NULL);
    l->connecting = NULL;
    ct_stream_start(l->ct, l, stream, true, l->address);
}

static void ct_link_connect(struct ct_link *l);

void
cluster_link_accepted(struct ct_link *l, uv_stream_t *stream, const char *address)
{
    ct_stream_start(l->ct, l, stream, false, address);
    /* The peer is back: this side's stream to it does not wait out a retry delay that grew
     * while the peer was down (messages to it would be dropped until then). */
    if (l->out == NULL && l->connecting == NULL && !l->ct->closing) {
        uv_timer_stop(&l->retry);
        ct_link_connect(l);
    }
}

static void
ct_link_retry_fired(uv_timer_t *timer)
{
    ct_link_connect(timer->data);
}

/* l has neither a stream out nor a handshake under way: connects again after its delay,
 * doubled for the next time up to CT_LINK_RETRY_MAX_MS (a stream that comes up resets it). */
static void
ct_link_retry_later(struct ct_link *l)
{
    if (l->ct->closing || l->out != NULL || l->connecting != NULL)
        return;
    WR_ASSERT(uv_timer_start(&l->retry, ct_link_retry_fired, l->retry_ms, 0) == 0);
    l->retry_ms = l->retry_ms * 2 < CT_LINK_RETRY_MAX_MS ? l->retry_ms * 2 : CT_LINK_RETRY_MAX_MS;
}

/* Starts a handshake to l's peer; on failure (now or later) l tries again later. */
static void
ct_link_connect(struct ct_link *l)
{
    WR_ASSERT(l->out == NULL && l->connecting == NULL);
    l->connecting = cluster_ct_link_connect(l->ct, l, l->peer_id, l->address);
    if (l->connecting == NULL)
        ct_link_retry_later(l);
}

void
cluster_link_connect_failed(struct ct_link *l)
{
    l->connecting = NULL;
    ct_link_retry_later(l);
}

/* Closes l's connections, both ways (detached from l first, so that none calls back into it):
 * its handshake under way, its stream out and the streams from its peer. */
static void
ct_link_drop(struct ct_link *l, const char *why)
{
    struct cluster_transport *ct = l->ct;
    if (l->connecting != NULL) {
        cluster_ct_link_cancel(l->connecting);
        l->connecting = NULL;
    }
    struct ct_stream *s, *next;
    for (s = LIST_FIRST(&ct->streams); s != NULL; s = next) {
        next = LIST_NEXT(s, entry);
        if (s->link == l) {
            ct_stream_detach(s);
            ct_stream_close(s, LOG_INFO, why);
        }
    }
    uv_timer_stop(&l->retry);
}

static void
ct_link_closed(uv_handle_t *h)
{
    struct ct_link *l = h->data;
    struct cluster_transport *ct = l->ct;
    free(l);
    ct->n_links--;
    cluster_ct_maybe_closed(ct);
}

/* Unlinks l: drops its connections, and frees it once its timer has closed. */
static void
ct_link_free(struct ct_link *l, const char *why)
{
    ct_link_drop(l, why);
    LIST_REMOVE(l, entry);
    uv_close((uv_handle_t *)&l->retry, ct_link_closed);
}

/* Every CT_LINK_HEARTBEAT_MS: closes the link streams that heard nothing for
 * CT_LINK_SILENCE_MS, and sends a heartbeat on the others whose output is empty (bytes
 * already on their way tell the peer as much). */
static void
ct_tick(uv_timer_t *timer)
{
    struct cluster_transport *ct = timer->data;
    uint64_t now = uv_now(ct->loop);
    struct ct_stream *s, *next;
    for (s = LIST_FIRST(&ct->streams); s != NULL; s = next) {
        next = LIST_NEXT(s, entry);
        if (s->closing)
            continue;
        if (now - s->last_read >= CT_LINK_SILENCE_MS) {
            char why[64];
            snprintf(why, sizeof(why), "nothing heard for %u ms", (unsigned)(now - s->last_read));
            ct_stream_close(s, LOG_WARNING, why);
        } else if (s->out_bytes == 0) {
            (void)ct_stream_write(s, CT_LINK_HEARTBEAT, NULL, 0); /* closes s on failure */
        }
    }
}

int
cluster_transport_set_self(struct cluster_transport *ct, uint64_t id, const char *address)
{
    size_t len = strlen(address);
    if (id == 0 || len == 0 || len > CT_ADDR_MAX)
        return -1;
    if (ct->self_id == id && strcmp(ct->self_address, address) == 0)
        return 0;
    ct->self_id = id;
    memcpy(ct->self_address, address, len + 1);
    /* The links' connections were made, or accepted, for the old identity. */
    struct ct_link *l;
    LIST_FOREACH(l, &ct->links, entry) {
        ct_link_drop(l, "this node's id or address changed");
        l->retry_ms = CT_LINK_RETRY_MIN_MS;
        ct_link_connect(l);
    }
    return 0;
}

int
cluster_transport_link(struct cluster_transport *ct, uint64_t peer_id, const char *address)
{
    size_t len = strlen(address);
    if (ct->closing || ct->self_id == 0 || peer_id == 0 || peer_id == ct->self_id ||
        !cluster_ct_address_valid(address))
        return -1;
    struct ct_link *l = cluster_link_find(ct, peer_id);
    if (l != NULL) {
        if (strcmp(l->address, address) == 0)
            return 0;
        memcpy(l->address, address, len + 1);
        ct_link_drop(l, "its address changed");
        l->retry_ms = CT_LINK_RETRY_MIN_MS;
        ct_link_connect(l);
        return 0;
    }
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -1;
    l->ct = ct;
    l->peer_id = peer_id;
    memcpy(l->address, address, len + 1);
    l->retry_ms = CT_LINK_RETRY_MIN_MS;
    WR_ASSERT(uv_timer_init(ct->loop, &l->retry) == 0);
    l->retry.data = l;
    LIST_INSERT_HEAD(&ct->links, l, entry);
    ct->n_links++;
    if (!uv_is_active((uv_handle_t *)&ct->tick))
        WR_ASSERT(uv_timer_start(&ct->tick, ct_tick, CT_LINK_HEARTBEAT_MS, CT_LINK_HEARTBEAT_MS) ==
                  0);
    ct_link_connect(l);
    return 0;
}

void
cluster_transport_unlink(struct cluster_transport *ct, uint64_t peer_id)
{
    struct ct_link *l = cluster_link_find(ct, peer_id);
    if (l != NULL)
        ct_link_free(l, "unlinked");
}

bool
cluster_transport_peer_alive(const struct cluster_transport *ct, uint64_t peer_id)
{
    const struct ct_link *l = cluster_link_find(ct, peer_id);
    return l != NULL && l->out != NULL && l->heard &&
           uv_now(ct->loop) - l->last_heard < CT_LINK_ALIVE_MS;
}

int
cluster_transport_send(struct cluster_transport *ct, uint64_t peer_id, uint8_t type,
                       const void *bytes, size_t len)
{
    if (ct->closing || type == CT_LINK_HEARTBEAT || len > ct->msg_max)
        return -1;
    struct ct_link *l = cluster_link_find(ct, peer_id);
    if (l == NULL || l->out == NULL || l->out->out_bytes >= CLUSTER_TRANSPORT_OUTPUT_MAX)
        return -1;
    return ct_stream_write(l->out, type, bytes, len);
}

void
cluster_transport_on_message(struct cluster_transport *ct,
                             void (*fn)(void *arg, uint64_t peer_id, uint8_t type,
                                        const uint8_t *bytes, size_t len),
                             void *arg)
{
    ct->on_message = fn;
    ct->on_message_arg = arg;
}

void
cluster_transport_set_message_max(struct cluster_transport *ct, size_t bytes)
{
    ct->msg_max = bytes < UINT32_MAX ? bytes : UINT32_MAX;
}

static void
ct_tick_closed(uv_handle_t *h)
{
    struct cluster_transport *ct = h->data;
    ct->tick_open = false;
    cluster_ct_maybe_closed(ct);
}

void
cluster_links_init(struct cluster_transport *ct)
{
    ct->msg_max = CLUSTER_TRANSPORT_MESSAGE_MAX;
    LIST_INIT(&ct->links);
    LIST_INIT(&ct->streams);
    WR_ASSERT(uv_timer_init(ct->loop, &ct->tick) == 0);
    ct->tick.data = ct;
    ct->tick_open = true;
}

void
cluster_links_close(struct cluster_transport *ct)
{
    uv_close((uv_handle_t *)&ct->tick, ct_tick_closed);
    while (!LIST_EMPTY(&ct->links))
        ct_link_free(LIST_FIRST(&ct->links), NULL);
    struct ct_stream *s;
    LIST_FOREACH(s, &ct->streams, entry) {
        ct_stream_close(s, LOG_DEBUG, NULL); /* none is left, as links close theirs */
    }
}
