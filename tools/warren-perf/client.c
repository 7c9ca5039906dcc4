/* warren-perf's AMQP client connection (see client.h). Frames are written into a flat output
 * buffer with libwarren's wire_writer and wire_method_encode, and parsed from a flat input
 * buffer with frame_parse and wire_method_decode. Input is read 256 KiB at a time; a partial
 * frame is moved to the front of the buffer before the next read. */
#include "config.h"

#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "perf.h"
#include "warren/assert.h"
#include "warren/bytes.h"

#define RBUF_SIZE (256 * 1024)
#define WBUF_SIZE (128 * 1024)
#define DEFAULT_FRAME_MAX 131072
#define POLL_SLICE_MS 100 /* how often a long wait looks at the abort flag */
#define CONNECT_TIMEOUT_S 10

uint64_t
perf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int
perf_conn_fail(struct perf_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return -1;
}

static void *
xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        fprintf(stderr, "warren-perf: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return q;
}

/* ---- output ---- */

uint8_t *
perf_conn_reserve(struct perf_conn *c, size_t n)
{
    if (c->wcap - c->wlen < n) {
        size_t cap = c->wcap ? c->wcap : WBUF_SIZE;
        while (cap - c->wlen < n)
            cap *= 2;
        c->wbuf = xrealloc(c->wbuf, cap);
        c->wcap = cap;
    }
    return c->wbuf + c->wlen;
}

void
perf_conn_commit(struct perf_conn *c, size_t n)
{
    WR_ASSERT(c->wlen + n <= c->wcap);
    c->wlen += n;
}

void
perf_conn_put_bytes(struct perf_conn *c, const void *p, size_t n)
{
    memcpy(perf_conn_reserve(c, n), p, n);
    perf_conn_commit(c, n);
}

/* Frame header and end around a payload the writer callback fills. */
static void
frame_begin(struct wire_writer *w, uint8_t *buf, size_t cap, uint8_t type, uint16_t ch)
{
    wire_writer_init(w, buf, cap);
    wire_put_u8(w, type);
    wire_put_u16(w, ch);
    wire_put_u32(w, 0); /* size, patched by frame_end */
}

static size_t
frame_end(struct wire_writer *w)
{
    wire_put_u8(w, WIRE_FRAME_END);
    WR_ASSERT(!w->overflow);
    size_t len = wire_writer_len(w);
    uint32_t size = (uint32_t)(len - FRAME_OVERHEAD);
    w->start[3] = (uint8_t)(size >> 24);
    w->start[4] = (uint8_t)(size >> 16);
    w->start[5] = (uint8_t)(size >> 8);
    w->start[6] = (uint8_t)size;
    return len;
}

size_t
perf_frame_method(uint8_t *buf, size_t cap, uint16_t ch, const struct wire_method *m)
{
    struct wire_writer w;
    frame_begin(&w, buf, cap, WIRE_FRAME_METHOD, ch);
    WR_ASSERT(wire_method_encode(m, &w) == 0);
    return frame_end(&w);
}

size_t
perf_frame_content_header(uint8_t *buf, size_t cap, uint16_t ch, uint64_t body_size,
                          const struct wire_basic_props *props)
{
    struct wire_writer w;
    frame_begin(&w, buf, cap, WIRE_FRAME_HEADER, ch);
    wire_put_u16(&w, WIRE_CLASS_BASIC);
    wire_put_u16(&w, 0); /* weight */
    wire_put_u64(&w, body_size);
    WR_ASSERT(wire_basic_props_encode(props, &w) == 0);
    return frame_end(&w);
}

void
perf_conn_put_method(struct perf_conn *c, uint16_t ch, const struct wire_method *m)
{
    size_t cap = 4096;
    for (;;) {
        struct wire_writer w;
        uint8_t *p = perf_conn_reserve(c, cap);
        frame_begin(&w, p, cap, WIRE_FRAME_METHOD, ch);
        if (wire_method_encode(m, &w) == 0 && !w.overflow && cap - wire_writer_len(&w) >= 1) {
            perf_conn_commit(c, frame_end(&w));
            return;
        }
        WR_ASSERT(cap < (1u << 24)); /* our methods are small */
        cap *= 4;
    }
}

/* Waits until fd is ready for `events`, at most timeout_ms (sliced so that an abort is seen).
 * 1 ready, 0 timed out or aborted, -1 poll failed. */
static int
conn_wait(struct perf_conn *c, short events, int timeout_ms)
{
    uint64_t deadline = perf_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        if (c->abort != NULL && atomic_load_explicit(c->abort, memory_order_relaxed))
            return 0;
        uint64_t now = perf_now_ns();
        if (now >= deadline)
            return 0;
        int slice = (int)((deadline - now + 999999) / 1000000);
        if (slice > POLL_SLICE_MS)
            slice = POLL_SLICE_MS;
        struct pollfd pfd = {.fd = c->fd, .events = events};
        int r = poll(&pfd, 1, slice);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* ---- TLS ---- */

static SSL_CTX *conn_tls_ctx_made;

/* Makes the client context: no certificate checks (a benchmark's broker uses a throwaway
 * one), partial writes so that a full socket buffer looks like send()'s. */
static void
conn_tls_ctx_init(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    conn_tls_ctx_made = ctx;
}

/* The client context, shared by every connection (made once; lives as long as the
 * process). NULL if OpenSSL could not make it. */
static SSL_CTX *
conn_tls_ctx(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, conn_tls_ctx_init);
    return conn_tls_ctx_made;
}

/* What an SSL call that returned r wants before it can go on: POLLIN or POLLOUT, 0 for a
 * clean end of the stream, -1 for an error (c->err set; what is there to say about it). */
static int
conn_tls_want(struct perf_conn *c, int r, const char *what)
{
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return POLLIN;
    if (e == SSL_ERROR_WANT_WRITE)
        return POLLOUT;
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    unsigned long err = ERR_get_error();
    ERR_clear_error();
    if (err != 0)
        return perf_conn_fail(c, "%s: %s", what, ERR_reason_error_string(err));
    return perf_conn_fail(c, "%s: %s", what, errno != 0 ? strerror(errno) : "connection closed");
}

/* Sends or receives over TLS like send/recv with MSG_DONTWAIT: bytes moved, or -1 with errno
 * EAGAIN (*want: what to poll for), or -1 with c->err set and errno 0 (for recv, 0 is the end
 * of the stream). */
static ssize_t
conn_tls_io(struct perf_conn *c, bool writing, void *buf, size_t n, short *want)
{
    size_t done = 0;
    errno = 0;
    int r = writing ? SSL_write_ex(c->ssl, buf, n, &done) : SSL_read_ex(c->ssl, buf, n, &done);
    if (r == 1)
        return (ssize_t)done;
    int w = conn_tls_want(c, r, writing ? "TLS send" : "TLS receive");
    if (w > 0) {
        *want = (short)w;
        errno = EAGAIN;
        return -1;
    }
    if (w == 0 && !writing)
        return 0;
    if (w == 0)
        perf_conn_fail(c, "TLS send: the server closed the connection");
    errno = 0;
    return -1;
}

/* The TLS handshake on c->fd (non-blocking from here on). 0, or -1 with c->err set. */
static int
conn_tls_start(struct perf_conn *c)
{
    SSL_CTX *ctx = conn_tls_ctx();
    if (ctx == NULL || (c->ssl = SSL_new(ctx)) == NULL || !SSL_set_fd(c->ssl, c->fd))
        return perf_conn_fail(c, "cannot set up TLS: %s", ERR_reason_error_string(ERR_get_error()));
    uint64_t deadline = perf_now_ns() + (uint64_t)PERF_RPC_TIMEOUT_MS * 1000000u;
    for (;;) {
        errno = 0;
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return 0;
        int w = conn_tls_want(c, r, "TLS handshake");
        if (w <= 0)
            return w == 0 ? perf_conn_fail(c, "TLS handshake: the server closed the connection")
                          : -1;
        uint64_t now = perf_now_ns();
        if (now >= deadline || conn_wait(c, (short)w, (int)((deadline - now) / 1000000)) <= 0)
            return perf_conn_fail(c, "TLS handshake: no answer within %d ms", PERF_RPC_TIMEOUT_MS);
    }
}

int
perf_conn_flush(struct perf_conn *c)
{
    size_t off = 0;
    if (c->fd < 0)
        return perf_conn_fail(c, "connection is closed");
    while (off < c->wlen) {
        short want = POLLOUT;
        ssize_t n = c->ssl != NULL
                        ? conn_tls_io(c, true, c->wbuf + off, c->wlen - off, &want)
                        : send(c->fd, c->wbuf + off, c->wlen - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && c->ssl != NULL && errno == 0)
            return -1; /* c->err says why */
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* The broker is not reading (flow control, a resource alarm): wait, but give up
             * when the run is torn down. */
            int r = conn_wait(c, want, 1000);
            if (r < 0)
                return perf_conn_fail(c, "poll: %s", strerror(errno));
            if (r == 0 && c->abort != NULL && atomic_load(c->abort))
                return perf_conn_fail(c, "gave up sending: the run is stopping");
            continue;
        }
        return perf_conn_fail(c, "send: %s", n < 0 ? strerror(errno) : "nothing sent");
    }
    c->wlen = 0;
    return 0;
}

/* ---- input ---- */

/* Reads what the socket has, waiting at most timeout_ms for the first byte. 1 read something,
 * 0 nothing in time, -1 error or EOF (c->err set). */
static int
conn_fill(struct perf_conn *c, size_t need, int timeout_ms)
{
    if (c->rpos > 0) { /* keep only the partial frame, at the front */
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    if (need > c->rcap) {
        c->rbuf = xrealloc(c->rbuf, need);
        c->rcap = need;
    }
    for (bool waited = false;;) {
        short want = POLLIN;
        ssize_t n = c->ssl != NULL
                        ? conn_tls_io(c, false, c->rbuf + c->rlen, c->rcap - c->rlen, &want)
                        : recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
        if (n > 0) {
            c->rlen += (size_t)n;
            return 1;
        }
        if (n == 0)
            return perf_conn_fail(c, "server closed the socket");
        if (errno == EINTR)
            continue;
        if (c->ssl != NULL && errno == 0)
            return -1; /* c->err says why */
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return perf_conn_fail(c, "recv: %s", strerror(errno));
        if (waited || timeout_ms <= 0)
            return 0;
        int r = conn_wait(c, want, timeout_ms);
        if (r < 0)
            return perf_conn_fail(c, "poll: %s", strerror(errno));
        if (r == 0)
            return 0;
        waited = true;
    }
}

/* The next whole frame (any channel). 1, 0 (nothing in time) or -1 (c->err set). */
static int
conn_read_frame(struct perf_conn *c, int timeout_ms, struct frame *f)
{
    for (bool filled = false;;) {
        size_t need;
        struct wire_error err;
        const uint8_t *p = c->rbuf + c->rpos;
        size_t avail = c->rlen - c->rpos;
        if (avail >= 4 && memcmp(p, "AMQP", 4) == 0)
            return perf_conn_fail(c,
                                  "server does not speak AMQP 0-9-1 (it answered with "
                                  "protocol header AMQP %u-%u-%u-%u)",
                                  avail > 4 ? p[4] : 0, avail > 5 ? p[5] : 0, avail > 6 ? p[6] : 0,
                                  avail > 7 ? p[7] : 0);
        switch (frame_parse(p, avail, c->frame_max, f, &need, &err)) {
        case FRAME_OK:
            c->rpos += need;
            return 1;
        case FRAME_ERROR:
            return perf_conn_fail(c, "bad frame from the server: %s", err.text);
        case FRAME_AGAIN:
            break;
        }
        /* After one successful read, look again without waiting: more may be in the socket
         * only if the read filled the buffer. */
        int r = conn_fill(c, need, filled ? 0 : timeout_ms);
        if (r <= 0)
            return r;
        filled = true;
    }
}

bool
perf_conn_buffered(const struct perf_conn *c)
{
    const uint8_t *p = c->rbuf + c->rpos;
    size_t avail = c->rlen - c->rpos;
    if (avail < FRAME_HEADER_SIZE)
        return false;
    uint64_t size = bytes_get32(p + 3);
    return avail >= size + FRAME_OVERHEAD;
}

/* "406 PRECONDITION_FAILED - ... (queue.declare)" */
static void
fmt_close(char *buf, size_t cap, uint16_t code, struct wire_str text, uint16_t cls, uint16_t mth)
{
    int n = snprintf(buf, cap, "%u %.*s", code, WIRE_STR_ARG(text));
    if (cls != 0 && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, " (%s)", wire_method_name(WIRE_METHOD_ID(cls, mth)));
}

/* Answers a server's connection.close and closes the socket. Returns -1 with c->err set. */
static int
conn_on_server_close(struct perf_conn *c, const struct wire_connection_close *m)
{
    char why[400];
    fmt_close(why, sizeof why, m->reply_code, m->reply_text, m->class_id, m->method_id);
    perf_conn_fail(c, "server closed the connection: %s", why);
    struct wire_method ok = {.id = WIRE_CONNECTION_CLOSE_OK};
    c->wlen = 0; /* what was queued will not be read any more */
    perf_conn_put_method(c, 0, &ok);
    char keep[sizeof c->err];
    memcpy(keep, c->err, sizeof keep);
    (void)perf_conn_flush(c);
    memcpy(c->err, keep, sizeof keep);
    c->open = false;
    close(c->fd);
    c->fd = -1;
    return -1;
}

int
perf_conn_next(struct perf_conn *c, int timeout_ms, struct perf_in *in)
{
    uint64_t deadline = perf_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
    if (c->fd < 0)
        return perf_conn_fail(c, "connection is closed");
    for (;;) {
        struct wire_error err;
        uint64_t now = perf_now_ns();
        int left = now < deadline ? (int)((deadline - now + 999999) / 1000000) : 0;
        int r = conn_read_frame(c, left, &in->f);
        if (r <= 0)
            return r;
        const struct frame *f = &in->f;
        if (f->type == WIRE_FRAME_HEARTBEAT)
            continue;
        if (f->type == WIRE_FRAME_METHOD) {
            if (wire_method_decode(f->payload, f->size, &in->m, &err) < 0)
                return perf_conn_fail(c, "bad method from the server: %u %s", err.code, err.text);
            if (f->channel == 0) {
                switch (in->m.id) {
                case WIRE_CONNECTION_CLOSE:
                    return conn_on_server_close(c, &in->m.u.connection_close);
                case WIRE_CONNECTION_BLOCKED:
                    if (!c->blocked)
                        fprintf(stderr, "warren-perf: %s: blocked by the server: %.*s\n", c->name,
                                WIRE_STR_ARG(in->m.u.connection_blocked.reason));
                    c->blocked = true;
                    continue;
                case WIRE_CONNECTION_UNBLOCKED:
                    c->blocked = false;
                    continue;
                default:
                    continue;
                }
            }
            if (in->m.id == WIRE_CHANNEL_CLOSE) {
                const struct wire_channel_close *m = &in->m.u.channel_close;
                char why[400];
                fmt_close(why, sizeof why, m->reply_code, m->reply_text, m->class_id, m->method_id);
                struct wire_method ok = {.id = WIRE_CHANNEL_CLOSE_OK};
                c->wlen = 0;
                perf_conn_put_method(c, f->channel, &ok);
                c->open = false;
                (void)perf_conn_flush(c);
                return perf_conn_fail(c, "server closed the channel: %s", why);
            }
        } else if (f->type == WIRE_FRAME_HEADER) {
            if (frame_content_header_decode(f->payload, f->size, &in->header, &in->props, &err) < 0)
                return perf_conn_fail(c, "bad content header from the server: %s", err.text);
        }
        if (f->channel != PERF_CHANNEL)
            continue;
        return 1;
    }
}

int
perf_conn_rpc(struct perf_conn *c, const struct wire_method *req, enum wire_method_id want,
              struct wire_method *reply, int timeout_ms)
{
    struct perf_in in;
    uint64_t deadline = perf_now_ns() + (uint64_t)timeout_ms * 1000000u;
    perf_conn_put_method(c, PERF_CHANNEL, req);
    if (perf_conn_flush(c) < 0)
        return -1;
    for (;;) {
        uint64_t now = perf_now_ns();
        if (now >= deadline || (c->abort != NULL && atomic_load(c->abort)))
            return perf_conn_fail(c, "no %s from the server within %d ms (after %s)",
                                  wire_method_name(want), timeout_ms, wire_method_name(req->id));
        int r = perf_conn_next(c, (int)((deadline - now) / 1000000u) + 1, &in);
        if (r < 0)
            return -1;
        if (r == 1 && in.f.type == WIRE_FRAME_METHOD && in.m.id == want) {
            if (reply != NULL)
                *reply = in.m;
            return 0;
        }
    }
}

/* ---- handshake ---- */

/* The next method on channel 0 during the handshake; a connection.close is an error. */
static int
conn_expect0(struct perf_conn *c, enum wire_method_id want, struct wire_method *m)
{
    struct frame f;
    struct wire_error err;
    uint64_t deadline = perf_now_ns() + (uint64_t)PERF_RPC_TIMEOUT_MS * 1000000u;
    for (;;) {
        uint64_t now = perf_now_ns();
        if (now >= deadline)
            return perf_conn_fail(c, "no %s from the server within %d ms", wire_method_name(want),
                                  PERF_RPC_TIMEOUT_MS);
        int r = conn_read_frame(c, (int)((deadline - now) / 1000000u) + 1, &f);
        if (r < 0) {
            if (strcmp(c->err, "server closed the socket") == 0)
                return perf_conn_fail(c,
                                      "server closed the socket while we waited for %s "
                                      "(wrong user or password?)",
                                      wire_method_name(want));
            return -1;
        }
        if (r == 0 || f.type == WIRE_FRAME_HEARTBEAT)
            continue;
        if (f.type != WIRE_FRAME_METHOD || f.channel != 0)
            return perf_conn_fail(c,
                                  "unexpected frame type %u on channel %u during the "
                                  "handshake",
                                  f.type, f.channel);
        if (wire_method_decode(f.payload, f.size, m, &err) < 0)
            return perf_conn_fail(c, "bad method from the server: %s", err.text);
        if (m->id == WIRE_CONNECTION_CLOSE)
            return conn_on_server_close(c, &m->u.connection_close);
        if (m->id == want)
            return 0;
        return perf_conn_fail(c, "server sent %s, expected %s", wire_method_name(m->id),
                              wire_method_name(want));
    }
}

static int
conn_connect(struct perf_conn *c, const struct perf_opts *o)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    char port[8];
    int one = 1, rc;
    snprintf(port, sizeof port, "%u", o->port);
    rc = getaddrinfo(o->host, port, &hints, &res);
    if (rc != 0)
        return perf_conn_fail(c, "cannot resolve %s: %s", o->host, gai_strerror(rc));
    perf_conn_fail(c, "no address for %s", o->host);
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {.tv_sec = CONNECT_TIMEOUT_S};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* bounds connect() */
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            struct timeval none = {0};
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            c->fd = fd;
            break;
        }
        perf_conn_fail(c, "cannot connect to %s:%u: %s", o->host, o->port, strerror(errno));
        close(fd);
    }
    freeaddrinfo(res);
    if (c->fd < 0)
        return -1;
    /* TLS reads and writes the socket itself: it is made non-blocking for it. */
    if (o->tls && fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0)
        return perf_conn_fail(c, "fcntl: %s", strerror(errno));
    return o->tls ? conn_tls_start(c) : 0;
}

/* connection.start-ok's client properties, as RabbitMQ's clients announce themselves. */
static struct wire_table
client_props(uint8_t *buf, size_t cap, const char *name)
{
    struct wire_writer w;
    char cname[64];
    wire_writer_init(&w, buf, cap);
    snprintf(cname, sizeof cname, "warren-perf %s", name);
    wire_table_put_longstr(&w, "product", WIRE_STR_LIT("warren-perf"));
    wire_table_put_longstr(&w, "version", WIRE_STR_LIT(PACKAGE_VERSION));
    wire_table_put_longstr(&w, "platform", WIRE_STR_LIT("C"));
    wire_table_put_longstr(&w, "connection_name",
                           (struct wire_str){(const uint8_t *)cname, (uint32_t)strlen(cname)});
    size_t caps = wire_table_put_table_begin(&w, "capabilities");
    wire_table_put_bool(&w, "publisher_confirms", true);
    wire_table_put_bool(&w, "basic.nack", true);
    wire_table_put_bool(&w, "consumer_cancel_notify", true);
    wire_table_put_bool(&w, "connection.blocked", true);
    wire_table_put_bool(&w, "authentication_failure_close", true);
    wire_table_put_table_end(&w, caps);
    WR_ASSERT(!w.overflow);
    return (struct wire_table){buf, (uint32_t)wire_writer_len(&w)};
}

/* "RabbitMQ 3.10.8" from connection.start's server-properties. */
static void
conn_note_server(struct perf_conn *c, struct wire_table props)
{
    struct wire_value prod, ver;
    bool has_prod = wire_table_get(props, "product", &prod) && prod.type == WIRE_FIELD_LONGSTR;
    bool has_ver = wire_table_get(props, "version", &ver) && ver.type == WIRE_FIELD_LONGSTR;
    snprintf(c->server, sizeof c->server, "%.*s%s%.*s", has_prod ? (int)prod.v.str.len : 7,
             has_prod ? (const char *)prod.v.str.ptr : "unknown", has_ver ? " " : "",
             has_ver ? (int)ver.v.str.len : 0, has_ver ? (const char *)ver.v.str.ptr : "");
}

static int
conn_handshake(struct perf_conn *c, const struct perf_opts *o)
{
    struct wire_method m;
    uint8_t props[512], resp[2 * PERF_NAME_MAX + 2];

    perf_conn_put_bytes(c, frame_protocol_header, FRAME_PROTOCOL_HEADER_SIZE);
    if (perf_conn_flush(c) < 0 || conn_expect0(c, WIRE_CONNECTION_START, &m) < 0)
        return -1;
    conn_note_server(c, m.u.connection_start.server_properties);
    struct wire_str mechs = m.u.connection_start.mechanisms;
    if (memmem(mechs.ptr, mechs.len, "PLAIN", 5) == NULL)
        return perf_conn_fail(c, "server does not offer PLAIN login (it offers '%.*s')",
                              WIRE_STR_ARG(mechs));

    size_t ul = strlen(o->user), pl = strlen(o->password);
    resp[0] = 0;
    memcpy(resp + 1, o->user, ul);
    resp[1 + ul] = 0;
    memcpy(resp + 2 + ul, o->password, pl);
    m = (struct wire_method){.id = WIRE_CONNECTION_START_OK};
    m.u.connection_start_ok.client_properties = client_props(props, sizeof props, c->name);
    m.u.connection_start_ok.mechanism = WIRE_STR_LIT("PLAIN");
    m.u.connection_start_ok.response = (struct wire_str){resp, (uint32_t)(2 + ul + pl)};
    m.u.connection_start_ok.locale = WIRE_STR_LIT("en_US");
    perf_conn_put_method(c, 0, &m);
    if (perf_conn_flush(c) < 0)
        return -1;
    if (conn_expect0(c, WIRE_CONNECTION_TUNE, &m) < 0)
        return -1;

    /* The server's frame_max (0 = no limit: we take 128 KiB); no heartbeats: a thread
     * blocked on a slow broker would miss them, and the run is short. */
    uint32_t fmax = m.u.connection_tune.frame_max;
    if (fmax == 0 || fmax > DEFAULT_FRAME_MAX)
        fmax = DEFAULT_FRAME_MAX;
    uint16_t chmax = m.u.connection_tune.channel_max;
    c->frame_max = fmax;
    m = (struct wire_method){.id = WIRE_CONNECTION_TUNE_OK};
    m.u.connection_tune_ok.channel_max = chmax;
    m.u.connection_tune_ok.frame_max = fmax;
    m.u.connection_tune_ok.heartbeat = 0;
    perf_conn_put_method(c, 0, &m);
    m = (struct wire_method){.id = WIRE_CONNECTION_OPEN};
    m.u.connection_open.virtual_host =
        (struct wire_str){(const uint8_t *)o->vhost, (uint32_t)strlen(o->vhost)};
    perf_conn_put_method(c, 0, &m);
    if (perf_conn_flush(c) < 0 || conn_expect0(c, WIRE_CONNECTION_OPEN_OK, &m) < 0)
        return -1;
    m = (struct wire_method){.id = WIRE_CHANNEL_OPEN};
    if (perf_conn_rpc(c, &m, WIRE_CHANNEL_OPEN_OK, NULL, PERF_RPC_TIMEOUT_MS) < 0)
        return -1;
    c->open = true;
    return 0;
}

static void
conn_free(struct perf_conn *c)
{
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->open = false;
    free(c->rbuf);
    free(c->wbuf);
    c->rbuf = c->wbuf = NULL;
    c->rcap = c->rpos = c->rlen = c->wcap = c->wlen = 0;
}

int
perf_conn_open(struct perf_conn *c, const struct perf_opts *o, const char *name,
               const atomic_bool *abort)
{
    *c = (struct perf_conn){.fd = -1, .name = name, .abort = abort};
    c->frame_max = DEFAULT_FRAME_MAX;
    c->rcap = RBUF_SIZE;
    c->rbuf = xrealloc(NULL, c->rcap);
    if (conn_connect(c, o) < 0 || conn_handshake(c, o) < 0) {
        conn_free(c);
        return -1;
    }
    return 0;
}

void
perf_conn_close(struct perf_conn *c, int timeout_ms)
{
    struct wire_method m;
    char keep[sizeof c->err];
    memcpy(keep, c->err, sizeof keep); /* a failed goodbye does not hide the first error */
    bool aborted = c->abort != NULL && atomic_load(c->abort);
    if (c->fd >= 0 && !aborted) {
        c->wlen = 0;
        if (c->open) {
            m = (struct wire_method){.id = WIRE_CHANNEL_CLOSE};
            m.u.channel_close.reply_code = WIRE_REPLY_SUCCESS;
            m.u.channel_close.reply_text = WIRE_STR_LIT("bye");
            (void)perf_conn_rpc(c, &m, WIRE_CHANNEL_CLOSE_OK, NULL, timeout_ms);
            c->open = false;
        }
        if (c->fd >= 0) {
            m = (struct wire_method){.id = WIRE_CONNECTION_CLOSE};
            m.u.connection_close.reply_code = WIRE_REPLY_SUCCESS;
            m.u.connection_close.reply_text = WIRE_STR_LIT("bye");
            c->wlen = 0;
            perf_conn_put_method(c, 0, &m);
            if (perf_conn_flush(c) == 0) {
                struct frame f;
                struct wire_error err;
                struct wire_method r;
                uint64_t deadline = perf_now_ns() + (uint64_t)timeout_ms * 1000000u;
                while (perf_now_ns() < deadline && conn_read_frame(c, 100, &f) >= 0) {
                    if (f.type == WIRE_FRAME_METHOD && f.channel == 0 &&
                        wire_method_decode(f.payload, f.size, &r, &err) == 0 &&
                        r.id == WIRE_CONNECTION_CLOSE_OK)
                        break;
                }
            }
        }
    }
    conn_free(c);
    memcpy(c->err, keep, sizeof keep);
}
