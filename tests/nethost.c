/* The in-process broker of tests/nethost.h: setup as main() does it (without the store and the
 * signals), loopback TCP connections (or socketpairs) handed to the server with
 * net_server_adopt, and the client side of the protocol done by hand with the server's own
 * codec: frames are written with frame_write_*, and what comes back is split with frame_parse
 * and decoded with wire_method_decode / frame_content_header_decode, so a server that writes
 * anything but valid frames of methods a server may send is caught (NETHOST_BAD). TCP by
 * default: the server names both ends of every connection in its log context, and an AF_UNIX
 * socket has no address to name (see nethost.unix_sockets). */
#include "config.h"

#include "nethost.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_notsent_bytes, which glibc lacks */
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "warren/admin.h"
#include "warren/auth.h"
#include "warren/net.h"

/* Idle turns in a row (nethost_idle) after which the loop is settled. One should do; two
 * cost little. */
#define NETHOST_QUIET_TURNS 2
/* Most turns a wait takes: far beyond what any input of the tests or the fuzzer needs (the
 * server handles 64 frames a turn: the fuzzer's largest sessions take a few hundred), so
 * reaching it means a server that keeps itself busy forever. */
#define NETHOST_TURNS_MAX 20000

struct wire_str
nethost_str(const char *s)
{
    return (struct wire_str){(const uint8_t *)s, (uint32_t)strlen(s)};
}

/* The loop main() runs (main_event_base_new): epoll with its change list; and a precise
 * timer, which main() does not ask for: with libevent's default coarse clock (1 ms steps or
 * more) a zero-delay timer (the server resumes a connection's parsing with one) fires only at
 * the clock's next tick, and each wait here would spin until then. */
static struct event_base *
nethost_base_new(void)
{
    struct event_config *cfg = event_config_new();
    if (cfg == NULL)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

/* A socket listening on 127.0.0.1 with a port the kernel picks. */
static int
nethost_listen(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, NETHOST_MAX_PEERS) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int
nethost_init(struct nethost *h)
{
    memset(h, 0, sizeof(*h));
    h->listen_fd = -1; /* made by the first TCP peer */
    vhost_registry_init(&h->vhosts);
    conf_init_defaults(&h->conf);
    /* Whatever the disk holds, publishers are never blocked for it here. */
    h->conf.disk_free_limit_absolute = 0;
    /* As in main(): a write to a client that has gone must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    const struct conf *conf = &h->conf;
    char err[256];
    if ((h->base = nethost_base_new()) == NULL || (h->auth = auth_db_new()) == NULL) {
        fprintf(stderr, "nethost: out of memory\n");
        return -1;
    }
    struct admin_env aenv = {.auth = h->auth, .vhosts = &h->vhosts, .conf = conf};
    if ((h->admin = admin_new(&aenv)) == NULL || admin_recover(h->admin, err, sizeof(err)) < 0) {
        fprintf(stderr, "nethost: %s\n", h->admin != NULL ? err : "out of memory");
        return -1;
    }
    struct net_server_env env = {
        .base = h->base, .conf = conf, .auth = h->auth, .vhosts = &h->vhosts};
    if ((h->server = net_server_new(&env)) == NULL) {
        fprintf(stderr, "nethost: cannot create the server\n");
        return -1;
    }
    admin_set_net(h->admin, h->server);
    return 0;
}

static void
nethost_peer_free(struct nethost_peer *p)
{
    nethost_peer_close(p);
    if (p->out != NULL)
        evbuffer_free(p->out);
    if (p->in != NULL)
        evbuffer_free(p->in);
    free(p->frame);
}

void
nethost_free(struct nethost *h)
{
    for (unsigned i = 0; i < h->n_peers; i++)
        nethost_peer_free(&h->peers[i]);
    admin_free(h->admin);
    if (h->server != NULL)
        net_server_free(h->server);
    vhost_registry_clear(&h->vhosts);
    if (h->auth != NULL)
        auth_db_free(h->auth);
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    if (h->base != NULL)
        event_base_free(h->base);
    conf_free(&h->conf);
}

/* A loopback TCP connection: *cfd the client's end (non-blocking), *sfd the server's, *peer
 * the client's address. 0, or -1 (errno set; nothing left open). */
static int
nethost_pair_tcp(struct nethost *h, int *cfd, int *sfd, struct sockaddr_in *peer)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr), plen = sizeof(*peer);
    int one = 1;
    *cfd = *sfd = -1;
    if (h->listen_fd < 0 && (h->listen_fd = nethost_listen()) < 0)
        return -1;
    /* A non-blocking connect, then accept, retried if a signal interrupts it (libFuzzer's
     * timeout alarm does, every second). */
    if (getsockname(h->listen_fd, (struct sockaddr *)&addr, &len) < 0 ||
        (*cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
        (connect(*cfd, (struct sockaddr *)&addr, len) < 0 && errno != EINPROGRESS))
        goto fail;
    while ((*sfd = accept4(h->listen_fd, (struct sockaddr *)peer, &plen, SOCK_CLOEXEC)) < 0)
        if (errno != EINTR)
            goto fail;
    /* Both ends, as the server's accept does for its own: small frames must not wait for the
     * acknowledgement of the previous ones. */
    if (setsockopt(*cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        setsockopt(*sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        goto fail;
    return 0;
fail:;
    int saved = errno;
    if (*cfd >= 0)
        close(*cfd);
    if (*sfd >= 0)
        close(*sfd);
    errno = saved;
    return -1;
}

struct nethost_peer *
nethost_connect(struct nethost *h, const char *peer_ip)
{
    if (h->n_peers == NETHOST_MAX_PEERS) {
        fprintf(stderr, "nethost: more than %d peers\n", NETHOST_MAX_PEERS);
        return NULL;
    }
    /* Connections that ended must be seen to end first: their server-side descriptor
     * numbers may be reused from here on (see nethost_busy). */
    if (nethost_settle(h) < 0) {
        fprintf(stderr, "nethost: the server never went idle\n");
        return NULL;
    }
    struct sockaddr_in peer = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)(40000 + h->n_peers)),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fds[2];
    if (h->unix_sockets
            ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0
            : nethost_pair_tcp(h, &fds[0], &fds[1], &peer) < 0) {
        fprintf(stderr, "nethost: cannot connect a peer: %s\n", strerror(errno));
        return NULL;
    }
    if (peer_ip != NULL && inet_pton(AF_INET, peer_ip, &peer.sin_addr) != 1) {
        fprintf(stderr, "nethost: bad peer address '%s'\n", peer_ip);
        close(fds[0]);
        close(fds[1]);
        return NULL;
    }
    struct nethost_peer *p = &h->peers[h->n_peers];
    memset(p, 0, sizeof(*p));
    p->host = h;
    p->fd = fds[0];
    p->server_fd = fds[1];
    p->out = evbuffer_new();
    p->in = evbuffer_new();
    h->n_peers++; /* from here nethost_free frees it */
    if (p->out == NULL || p->in == NULL ||
        net_server_adopt(h->server, fds[1], (struct sockaddr *)&peer, sizeof(peer)) < 0) {
        close(fds[1]);
        fprintf(stderr, "nethost: out of memory adding a peer\n");
        return NULL;
    }
    return p;
}

void
nethost_peer_close(struct nethost_peer *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

int
nethost_send(struct nethost_peer *p, const void *bytes, size_t n)
{
    return evbuffer_add(p->out, bytes, n);
}

int
nethost_send_method(struct nethost_peer *p, uint16_t channel, const struct wire_method *m)
{
    return frame_write_method(p->out, channel, m);
}

int
nethost_send_content(struct nethost_peer *p, uint16_t channel, const uint8_t *props,
                     size_t props_len, const void *body, size_t len, size_t max_payload)
{
    static const uint8_t no_props[2] = {0, 0};
    if (props == NULL) {
        props = no_props;
        props_len = sizeof(no_props);
    }
    if (frame_write_content_header(p->out, channel, WIRE_CLASS_BASIC, len, props, props_len) < 0)
        return -1;
    if (len == 0)
        return 0;
    size_t frame_max = max_payload == 0 ? len + FRAME_OVERHEAD : max_payload + FRAME_OVERHEAD;
    return frame_write_body(p->out, channel, body, len, (uint32_t)frame_max);
}

int
nethost_publish(struct nethost_peer *p, uint16_t channel, const char *exchange,
                const char *routing_key, const void *body, size_t len)
{
    struct wire_method m = {.id = WIRE_BASIC_PUBLISH};
    m.u.basic_publish.exchange = nethost_str(exchange);
    m.u.basic_publish.routing_key = nethost_str(routing_key);
    if (nethost_send_method(p, channel, &m) < 0)
        return -1;
    return nethost_send_content(p, channel, NULL, 0, body, len, 0);
}

/* Writes what p has queued, as much as the socket takes. Whether a byte went. */
static bool
nethost_flush(struct nethost_peer *p)
{
    bool moved = false;
    while (p->fd >= 0 && evbuffer_get_length(p->out) > 0) {
        int n = evbuffer_write(p->out, p->fd);
        if (n > 0) {
            p->sent += (uint64_t)n;
            moved = true;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        /* The server has closed (EPIPE, ECONNRESET): what is left can never be read. */
        evbuffer_drain(p->out, evbuffer_get_length(p->out));
    }
    return moved;
}

/* Reads what the server wrote to p. Whether a byte came (or the end). */
static bool
nethost_fill(struct nethost_peer *p)
{
    bool moved = false;
    while (p->fd >= 0 && !p->eof) {
        int n = evbuffer_read(p->in, p->fd, 1 << 16);
        if (n > 0) {
            moved = true;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        p->eof = true; /* 0: closed; an error (a reset) ends the stream too */
        p->reset = n < 0;
        moved = true;
    }
    return moved;
}

bool
nethost_turn(struct nethost *h)
{
    bool moved = false;
    for (unsigned i = 0; i < h->n_peers; i++)
        moved |= nethost_flush(&h->peers[i]);
    /* One pass of the loop. EVLOOP_NONBLOCK alone goes on while callbacks keep becoming
     * active, which a server spinning on an event does forever: the loopexit timer, due at
     * once, ends the loop after one pass whatever happens in it. */
    static const struct timeval now = {0, 0};
    event_base_loopexit(h->base, &now);
    event_base_loop(h->base, EVLOOP_NONBLOCK);
    for (unsigned i = 0; i < h->n_peers; i++)
        moved |= nethost_fill(&h->peers[i]);
    return moved;
}

/* fd's TCP counters. false if it is not an open socket. */
static bool
nethost_tcp_info(int fd, struct tcp_info *ti)
{
    socklen_t len = sizeof(*ti);
    memset(ti, 0, sizeof(*ti));
    return getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &len) == 0;
}

/* Whether bytes are on their way between p and the server: queued here, not yet sent, sent
 * but not yet arrived (either way), or arrived but not yet read by the server; or whether the
 * server has closed its end and the end has not reached us yet. Counted exactly from both
 * sockets' TCP_INFO (glibc's struct tcp_info lacks the fields: linux/tcp.h): loopback delivery
 * is normally over when send() returns, but a loaded machine defers it, and a loop turn that
 * saw nothing meanwhile was not idle. Not "unacknowledged" bytes: the server's delayed
 * acknowledgement of bytes it has long read can take 40 ms. */
static bool
nethost_busy(const struct nethost_peer *p)
{
    if (p->fd < 0 || p->eof)
        return false;
    int unread = 0;
    if (p->host->unix_sockets)
        /* A socketpair delivers as it writes; a failure: closed by the server, its end is
         * on the way (next turn). */
        return evbuffer_get_length(p->out) > 0 || ioctl(p->server_fd, FIONREAD, &unread) < 0 ||
               unread > 0;
    struct tcp_info c, s;
    if (evbuffer_get_length(p->out) > 0 || !nethost_tcp_info(p->fd, &c))
        return true;
    if (!nethost_tcp_info(p->server_fd, &s))
        return true; /* closed by the server: its FIN is on the way */
    return c.tcpi_notsent_bytes > 0 || s.tcpi_bytes_received < p->sent ||
           s.tcpi_notsent_bytes > 0 ||
           c.tcpi_bytes_received < s.tcpi_bytes_sent - s.tcpi_bytes_retrans ||
           (ioctl(p->server_fd, FIONREAD, &unread) == 0 && unread > 0);
}

/* event_base_foreach_event callback: 1 (stop) for an event whose timeout is due by *soon. */
static int
nethost_timer_due(const struct event_base *base, const struct event *ev, void *soon)
{
    struct timeval tv;
    return (event_pending(ev, EV_TIMEOUT, &tv) & EV_TIMEOUT) &&
           !timercmp(&tv, (struct timeval *)soon, >);
}

/* How far ahead a timer counts as due: event_pending gives a due time converted from the
 * loop's monotonic clock to the wall clock, which may put a zero-delay timer a little after
 * gettimeofday's now. */
#define NETHOST_TIMER_SLACK_US 1000

/* Nothing can happen without a new byte or the clock: no peer is busy, no event is active and
 * no timer is due (the server resumes a connection's parsing, 64 frames a turn, from a
 * zero-delay timer: a turn with nothing on the sockets may still have had work). */
static bool
nethost_idle(struct nethost *h)
{
    for (unsigned i = 0; i < h->n_peers; i++)
        if (nethost_busy(&h->peers[i]))
            return false;
    struct timeval now, slack = {0, NETHOST_TIMER_SLACK_US}, soon;
    if (event_base_get_num_events(h->base, EVENT_BASE_COUNT_ACTIVE) > 0 ||
        gettimeofday(&now, NULL) < 0)
        return false;
    timeradd(&now, &slack, &soon);
    return event_base_foreach_event(h->base, nethost_timer_due, &soon) == 0;
}

int
nethost_settle(struct nethost *h)
{
    unsigned quiet = 0;
    for (unsigned turns = 0; turns < NETHOST_TURNS_MAX; turns++) {
        bool moved = nethost_turn(h);
        quiet = moved || !nethost_idle(h) ? 0 : quiet + 1;
        if (quiet == NETHOST_QUIET_TURNS)
            return 0;
    }
    return -1;
}

/* Sets why to what and detail, one after the other. */
static enum nethost_status
nethost_bad(struct nethost_peer *p, const char *what, const char *detail)
{
    snprintf(p->why, sizeof(p->why), "%s%s", what, detail);
    return NETHOST_BAD;
}

enum nethost_status
nethost_take(struct nethost_peer *p, struct nethost_frame *f)
{
    uint32_t frame_max = p->host->conf.frame_max;
    size_t avail = evbuffer_get_length(p->in), need;
    bool ended = p->eof || p->fd < 0;
    /* A frame cut by the end is the server's fault only if it closed normally: after a reset
     * its last bytes may be lost, and after our own close we stopped reading anywhere. */
    bool cut_ok = p->reset || p->fd < 0;
    if (avail < FRAME_HEADER_SIZE) {
        if (!ended)
            return NETHOST_AGAIN;
        if (avail > 0 && !cut_ok)
            return nethost_bad(p, "truncated frame at the end", "");
        evbuffer_drain(p->in, avail);
        return NETHOST_EOF;
    }
    struct frame fr;
    struct wire_error err;
    const uint8_t *hdr = evbuffer_pullup(p->in, FRAME_HEADER_SIZE);
    enum frame_status st = frame_parse(hdr, FRAME_HEADER_SIZE, frame_max, &fr, &need, &err);
    if (st == FRAME_ERROR)
        return nethost_bad(p, "bad frame from the server: ", err.text);
    if (avail < need && ended && cut_ok) {
        evbuffer_drain(p->in, avail);
        return NETHOST_EOF;
    }
    if (avail < need)
        return ended ? nethost_bad(p, "truncated frame at the end", "") : NETHOST_AGAIN;
    if (need > p->frame_cap) {
        uint8_t *b = realloc(p->frame, need);
        if (b == NULL)
            return nethost_bad(p, "out of memory reading a frame", "");
        p->frame = b;
        p->frame_cap = need;
    }
    evbuffer_remove(p->in, p->frame, need);
    if (frame_parse(p->frame, need, frame_max, &fr, &need, &err) != FRAME_OK)
        return nethost_bad(p, "bad frame from the server: ", err.text);
    memset(f, 0, sizeof(*f));
    f->type = fr.type;
    f->channel = fr.channel;
    f->size = fr.size;
    f->payload = fr.payload;
    switch (fr.type) {
    case WIRE_FRAME_METHOD:
        if (wire_method_decode(fr.payload, fr.size, &f->m, &err) < 0)
            return nethost_bad(p, "bad method from the server: ", err.text);
        if (!(wire_method_info(f->m.id)->chassis & WIRE_CHASSIS_CLIENT))
            return nethost_bad(
                p, "the server sent a method only clients send: ", wire_method_name(f->m.id));
        break;
    case WIRE_FRAME_HEADER:
        if (frame_content_header_decode(fr.payload, fr.size, &f->h, &f->props, &err) < 0)
            return nethost_bad(p, "bad content header from the server: ", err.text);
        break;
    case WIRE_FRAME_HEARTBEAT:
        if (fr.size != 0 || fr.channel != 0)
            return nethost_bad(p, "heartbeat with a payload or off channel 0", "");
        break;
    default:
        break;
    }
    return NETHOST_FRAME;
}

enum nethost_status
nethost_read(struct nethost_peer *p, struct nethost_frame *f)
{
    unsigned quiet = 0;
    for (unsigned turns = 0; turns < NETHOST_TURNS_MAX; turns++) {
        enum nethost_status st = nethost_take(p, f);
        if (st != NETHOST_AGAIN)
            return st;
        bool moved = nethost_turn(p->host);
        quiet = moved || !nethost_idle(p->host) ? 0 : quiet + 1;
        if (quiet == NETHOST_QUIET_TURNS) {
            st = nethost_take(p, f); /* what the last turn brought */
            if (st != NETHOST_AGAIN)
                return st;
            snprintf(p->why, sizeof(p->why), "nothing came from the server");
            return NETHOST_TIMEOUT;
        }
    }
    snprintf(p->why, sizeof(p->why), "the server never went idle");
    return NETHOST_TIMEOUT;
}

void
nethost_describe(const struct nethost_frame *f, char *dst, size_t cap)
{
    const struct wire_method *m = &f->m;
    switch (f->type) {
    case WIRE_FRAME_METHOD:
        switch (m->id) {
        case WIRE_CONNECTION_CLOSE:
        case WIRE_CHANNEL_CLOSE: {
            /* The two close methods have the same fields. */
            const struct wire_channel_close *c = &m->u.channel_close;
            if (m->id == WIRE_CONNECTION_CLOSE)
                c = (const struct wire_channel_close *)&m->u.connection_close;
            snprintf(dst, cap, "%s(%u, '%.*s', %u, %u) on channel %u", wire_method_name(m->id),
                     c->reply_code, WIRE_STR_ARG(c->reply_text), c->class_id, c->method_id,
                     f->channel);
            return;
        }
        case WIRE_QUEUE_DECLARE_OK:
            snprintf(dst, cap, "queue.declare-ok('%.*s', %u, %u) on channel %u",
                     WIRE_STR_ARG(m->u.queue_declare_ok.queue), m->u.queue_declare_ok.message_count,
                     m->u.queue_declare_ok.consumer_count, f->channel);
            return;
        case WIRE_BASIC_DELIVER:
            snprintf(dst, cap, "basic.deliver('%.*s', tag %llu) on channel %u",
                     WIRE_STR_ARG(m->u.basic_deliver.consumer_tag),
                     (unsigned long long)m->u.basic_deliver.delivery_tag, f->channel);
            return;
        default:
            snprintf(dst, cap, "%s on channel %u", wire_method_name(m->id), f->channel);
            return;
        }
    case WIRE_FRAME_HEADER:
        snprintf(dst, cap, "content header (class %u, %llu bytes) on channel %u", f->h.class_id,
                 (unsigned long long)f->h.body_size, f->channel);
        return;
    case WIRE_FRAME_BODY:
        snprintf(dst, cap, "body frame (%u bytes) on channel %u", f->size, f->channel);
        return;
    default:
        snprintf(dst, cap, "frame of type %u on channel %u", f->type, f->channel);
        return;
    }
}

/* Sets why to "expected <what>, got <what came>" for a read that returned st. */
static void
nethost_unexpected(struct nethost_peer *p, const char *expected, enum nethost_status st,
                   const struct nethost_frame *f)
{
    char got[sizeof(p->why)];
    switch (st) {
    case NETHOST_FRAME:
        nethost_describe(f, got, sizeof(got));
        break;
    case NETHOST_EOF:
        snprintf(got, sizeof(got), "the end of the connection");
        break;
    default:
        snprintf(got, sizeof(got), "%s", p->why);
        break;
    }
    char text[sizeof(p->why) + 200];
    snprintf(text, sizeof(text), "expected %s, got %s", expected, got);
    memcpy(p->why, text, sizeof(p->why) - 1);
    p->why[sizeof(p->why) - 1] = '\0';
}

int
nethost_expect(struct nethost_peer *p, uint16_t channel, enum wire_method_id id,
               struct nethost_frame *f)
{
    enum nethost_status st = nethost_read(p, f);
    if (st == NETHOST_FRAME && f->type == WIRE_FRAME_METHOD && f->channel == channel &&
        f->m.id == id)
        return 0;
    char what[100];
    snprintf(what, sizeof(what), "%s on channel %u", wire_method_name(id), channel);
    nethost_unexpected(p, what, st, f);
    return -1;
}

int
nethost_expect_content(struct nethost_peer *p, uint16_t channel, uint8_t *dst, size_t cap,
                       size_t *len)
{
    struct nethost_frame f;
    char what[100];
    enum nethost_status st = nethost_read(p, &f);
    if (st != NETHOST_FRAME || f.type != WIRE_FRAME_HEADER || f.channel != channel) {
        snprintf(what, sizeof(what), "a content header on channel %u", channel);
        nethost_unexpected(p, what, st, &f);
        return -1;
    }
    uint64_t size = f.h.body_size, got = 0;
    while (got < size) {
        st = nethost_read(p, &f);
        if (st != NETHOST_FRAME || f.type != WIRE_FRAME_BODY || f.channel != channel ||
            f.size > size - got) {
            snprintf(what, sizeof(what), "body frames of %llu more bytes on channel %u",
                     (unsigned long long)(size - got), channel);
            nethost_unexpected(p, what, st, &f);
            return -1;
        }
        if (got + f.size > cap) {
            snprintf(p->why, sizeof(p->why), "a body of %llu bytes, over the %zu expected",
                     (unsigned long long)size, cap);
            return -1;
        }
        if (f.size > 0)
            memcpy(dst + got, f.payload, f.size);
        got += f.size;
    }
    *len = (size_t)size;
    return 0;
}

int
nethost_expect_quiet(struct nethost_peer *p)
{
    struct nethost_frame f;
    if (nethost_settle(p->host) < 0) {
        snprintf(p->why, sizeof(p->why), "the loop never settled");
        return -1;
    }
    enum nethost_status st = nethost_take(p, &f);
    if (st == NETHOST_AGAIN)
        return 0;
    nethost_unexpected(p, "nothing", st, &f);
    return -1;
}

int
nethost_expect_eof(struct nethost_peer *p)
{
    struct nethost_frame f;
    enum nethost_status st = nethost_read(p, &f);
    if (st == NETHOST_EOF)
        return 0;
    nethost_unexpected(p, "the end of the connection", st, &f);
    return -1;
}

int
nethost_login(struct nethost_peer *p, const char *user, const char *password)
{
    static const char *const caps[] = {"authentication_failure_close", "connection.blocked",
                                       "consumer_cancel_notify", "publisher_confirms"};
    struct nethost_frame f;
    if (nethost_send(p, frame_protocol_header, FRAME_PROTOCOL_HEADER_SIZE) < 0 ||
        nethost_expect(p, 0, WIRE_CONNECTION_START, &f) < 0)
        return -1;
    uint8_t props[256], response[256];
    struct wire_writer w;
    wire_writer_init(&w, props, sizeof(props));
    size_t mark = wire_table_put_table_begin(&w, "capabilities");
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        wire_table_put_bool(&w, caps[i], true);
    wire_table_put_table_end(&w, mark);
    int n = snprintf((char *)response, sizeof(response), "%c%s%c%s", 0, user, 0, password);
    if (w.overflow || n < 0 || (size_t)n >= sizeof(response)) {
        snprintf(p->why, sizeof(p->why), "login too long");
        return -1;
    }
    struct wire_method m = {.id = WIRE_CONNECTION_START_OK};
    m.u.connection_start_ok.client_properties = (struct wire_table){props, wire_writer_len(&w)};
    m.u.connection_start_ok.mechanism = WIRE_STR_LIT("PLAIN");
    m.u.connection_start_ok.response = (struct wire_str){response, (uint32_t)n};
    m.u.connection_start_ok.locale = WIRE_STR_LIT("en_US");
    return nethost_send_method(p, 0, &m);
}

int
nethost_handshake(struct nethost_peer *p)
{
    struct nethost_frame f;
    if (nethost_login(p, "guest", "guest") < 0 ||
        nethost_expect(p, 0, WIRE_CONNECTION_TUNE, &f) < 0)
        return -1;
    struct wire_method m = {.id = WIRE_CONNECTION_TUNE_OK};
    m.u.connection_tune_ok.channel_max = f.m.u.connection_tune.channel_max;
    m.u.connection_tune_ok.frame_max = f.m.u.connection_tune.frame_max;
    m.u.connection_tune_ok.heartbeat = 0;
    struct wire_method open = {.id = WIRE_CONNECTION_OPEN};
    open.u.connection_open.virtual_host = WIRE_STR_LIT("/");
    if (nethost_send_method(p, 0, &m) < 0 || nethost_send_method(p, 0, &open) < 0)
        return -1;
    return nethost_expect(p, 0, WIRE_CONNECTION_OPEN_OK, &f);
}

struct wire_method
nethost_queue_declare(const char *name, bool exclusive, bool auto_delete)
{
    struct wire_method m = {.id = WIRE_QUEUE_DECLARE};
    m.u.queue_declare.queue = nethost_str(name);
    m.u.queue_declare.exclusive = exclusive;
    m.u.queue_declare.auto_delete = auto_delete;
    return m;
}

struct wire_method
nethost_consume(const char *queue, const char *tag, bool no_ack)
{
    struct wire_method m = {.id = WIRE_BASIC_CONSUME};
    m.u.basic_consume.queue = nethost_str(queue);
    m.u.basic_consume.consumer_tag = nethost_str(tag);
    m.u.basic_consume.no_ack = no_ack;
    return m;
}
