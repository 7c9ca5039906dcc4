/* TLS between the nodes (distribution.ssl_options.*): a relay per connection between its TCP
 * socket, which carries TLS records, and one end of a socketpair, whose other end the
 * transport uses as it would the bare TCP stream: the handshake (transport.c), then raft_uv's
 * or a link's messages. raft_uv reads and writes a libuv stream itself and cannot be given a
 * TLS session: the socketpair lets it keep its stream while the relay encrypts.
 *
 * The session runs on memory BIOs: bytes read from the socket go into the session, what it
 * decrypts is written to the pair; what comes from the pair is encrypted and written to the
 * socket. Nothing is read from the pair before the TLS handshake is done, so the transport's
 * handshake waits in the pair until the peer's certificate has been checked. Each direction
 * stops reading while the other side's writes queue more than TLS_RELAY_QUEUE_MAX bytes.
 * Either side closing (or the session failing) closes both; the relay is freed once both
 * handles are closed and its writes called back. Everything runs on the transport's loop. */
#include "config.h"

#include <errno.h>
#include <raft.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "transport_int.h"
#include "warren/assert.h"
#include "warren/log.h"
#include "warren/tls.h"

/* Bytes queued for writing on one side past which the other side is not read. */
#define TLS_RELAY_QUEUE_MAX (4u << 20)
#define TLS_RELAY_CHUNK 16384

struct ct_tls {
    LIST_ENTRY(ct_tls) link; /* in ct->relays */
    struct cluster_transport *ct;
    uv_tcp_t *net;    /* owns (raft_malloc'ed by the transport): TLS records */
    uv_pipe_t inner;  /* our end of the pair: plaintext */
    SSL *ssl;         /* owns, and its BIOs */
    BIO *rbio, *wbio; /* borrows (ssl's): records in, records out */
    bool established; /* the TLS handshake is done: the pair is read */
    bool closing;
    bool net_paused, inner_paused; /* reading stopped: the other side's writes queue */
    unsigned open;                 /* handles not closed, writes not called back */
    char peer[CT_ADDR_MAX + 8];    /* for log lines */
};

/* A write to one side, with its bytes. */
struct tls_write {
    uv_write_t req;
    struct ct_tls *t;
    char bytes[];
};

static void tls_relay_close(struct ct_tls *t);

static void
tls_relay_maybe_free(struct ct_tls *t)
{
    if (t->open > 0)
        return;
    struct cluster_transport *ct = t->ct;
    LIST_REMOVE(t, link);
    SSL_free(t->ssl);
    free(t);
    ct->n_relays--;
    cluster_ct_maybe_closed(ct);
}

static void
tls_net_closed(uv_handle_t *h)
{
    struct ct_tls *t = h->data;
    raft_free(h);
    t->net = NULL;
    t->open--;
    tls_relay_maybe_free(t);
}

static void
tls_inner_closed(uv_handle_t *h)
{
    struct ct_tls *t = h->data;
    t->open--;
    tls_relay_maybe_free(t);
}

static void
tls_relay_close(struct ct_tls *t)
{
    if (t->closing)
        return;
    t->closing = true;
    uv_close((uv_handle_t *)t->net, tls_net_closed);
    uv_close((uv_handle_t *)&t->inner, tls_inner_closed);
}

/* The session failed (what: where; OpenSSL's reasons follow): one log line, then closed. */
static void
tls_relay_fail(struct ct_tls *t, const char *what)
{
    char why[512];
    tls_errors(why, sizeof(why));
    log_msg(LOG_WARNING, "cluster transport: TLS with %s: %s%s%s", t->peer, what,
            why[0] != '\0' ? ": " : "", why);
    tls_relay_close(t);
}

static void tls_inner_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void tls_net_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void
tls_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    /* (libuv gives the buffer back in the read callback, which frees it) */
    char *p = malloc(TLS_RELAY_CHUNK);
    *buf = uv_buf_init(p, p != NULL ? TLS_RELAY_CHUNK : 0);
}

/* Resumes reading a side paused while the other's writes queued, once they drained. */
static void
tls_relay_resume(struct ct_tls *t)
{
    if (t->closing)
        return;
    if (t->net_paused &&
        uv_stream_get_write_queue_size((uv_stream_t *)&t->inner) < TLS_RELAY_QUEUE_MAX / 2) {
        t->net_paused = false;
        if (uv_read_start((uv_stream_t *)t->net, tls_alloc, tls_net_read) < 0)
            tls_relay_close(t);
    }
    if (t->inner_paused && !t->closing &&
        uv_stream_get_write_queue_size((uv_stream_t *)t->net) < TLS_RELAY_QUEUE_MAX / 2) {
        t->inner_paused = false;
        if (uv_read_start((uv_stream_t *)&t->inner, tls_alloc, tls_inner_read) < 0)
            tls_relay_close(t);
    }
}

static void
tls_written(uv_write_t *req, int status)
{
    struct tls_write *w = (struct tls_write *)req;
    struct ct_tls *t = w->t;
    free(w);
    t->open--;
    if (status < 0)
        tls_relay_close(t);
    else
        tls_relay_resume(t);
    tls_relay_maybe_free(t);
}

/* Writes n bytes (copied) to side. 0, or -1 (the relay closing). */
static int
tls_write_to(struct ct_tls *t, uv_stream_t *side, const void *bytes, size_t n)
{
    struct tls_write *w = malloc(sizeof(*w) + n);
    if (w == NULL) {
        tls_relay_close(t);
        return -1;
    }
    w->t = t;
    memcpy(w->bytes, bytes, n);
    uv_buf_t b = uv_buf_init(w->bytes, (unsigned)n);
    if (uv_write(&w->req, side, &b, 1, tls_written) < 0) {
        free(w);
        tls_relay_close(t);
        return -1;
    }
    t->open++;
    return 0;
}

/* Sends what the session has for the peer (handshake messages, records). 0, or -1. */
static int
tls_flush(struct ct_tls *t)
{
    char buf[TLS_RELAY_CHUNK];
    int n;
    while ((n = BIO_read(t->wbio, buf, sizeof(buf))) > 0)
        if (tls_write_to(t, (uv_stream_t *)t->net, buf, (size_t)n) < 0)
            return -1;
    if (!t->inner_paused && t->established &&
        uv_stream_get_write_queue_size((uv_stream_t *)t->net) > TLS_RELAY_QUEUE_MAX) {
        t->inner_paused = true;
        uv_read_stop((uv_stream_t *)&t->inner);
    }
    return 0;
}

/* Advances the handshake; once done, the pair is read. 0, or -1 (failed: closing). */
static int
tls_handshake(struct ct_tls *t)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(t->ssl);
    if (tls_flush(t) < 0)
        return -1;
    if (rc != 1) {
        int e = SSL_get_error(t->ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        tls_relay_fail(t, "handshake failed");
        return -1;
    }
    t->established = true;
    if (uv_read_start((uv_stream_t *)&t->inner, tls_alloc, tls_inner_read) < 0) {
        tls_relay_close(t);
        return -1;
    }
    return 0;
}

/* Records from the peer: decrypted into the pair. */
static void
tls_net_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct ct_tls *t = s->data;
    if (nread <= 0) {
        free(buf->base);
        if (nread < 0)
            tls_relay_close(t); /* the peer closed, or the connection failed */
        return;
    }
    int fed = BIO_write(t->rbio, buf->base, (int)nread);
    free(buf->base);
    if (fed != nread) {
        tls_relay_fail(t, "out of memory");
        return;
    }
    if (!t->established && (tls_handshake(t) < 0 || !t->established))
        return;
    char plain[TLS_RELAY_CHUNK];
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(t->ssl, plain, sizeof(plain));
        if (n > 0) {
            if (tls_write_to(t, (uv_stream_t *)&t->inner, plain, (size_t)n) < 0)
                return;
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN)
            tls_relay_close(t); /* the peer's close_notify */
        else
            tls_relay_fail(t, "cannot read");
        return;
    }
    if (tls_flush(t) < 0) /* (what reading made: key updates, alerts) */
        return;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&t->inner) > TLS_RELAY_QUEUE_MAX) {
        t->net_paused = true;
        uv_read_stop((uv_stream_t *)t->net);
    }
}

/* Plaintext from the transport's end: encrypted to the peer. */
static void
tls_inner_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct ct_tls *t = s->data;
    if (nread <= 0) {
        free(buf->base);
        if (nread < 0)
            tls_relay_close(t); /* the transport closed its end */
        return;
    }
    ERR_clear_error();
    /* (memory BIOs take all of it: SSL_write writes whole records into wbio) */
    int n = SSL_write(t->ssl, buf->base, (int)nread);
    free(buf->base);
    if (n != nread) {
        tls_relay_fail(t, "cannot write");
        return;
    }
    tls_flush(t);
}

int
cluster_ct_tls_wrap(struct cluster_transport *ct, uv_tcp_t *tcp, bool client, const char *peer,
                    uv_stream_t **plain)
{
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        return uv_translate_sys_error(errno);
    struct ct_tls *t = calloc(1, sizeof(*t));
    uv_pipe_t *outer = raft_malloc(sizeof(*outer));
    SSL *ssl = SSL_new(ct->tls);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    if (t == NULL || outer == NULL || ssl == NULL || rbio == NULL || wbio == NULL) {
        free(t);
        raft_free(outer);
        SSL_free(ssl);
        BIO_free(rbio);
        BIO_free(wbio);
        close(fds[0]);
        close(fds[1]);
        return UV_ENOMEM;
    }
    SSL_set_bio(ssl, rbio, wbio);
    if (client)
        SSL_set_connect_state(ssl);
    else
        SSL_set_accept_state(ssl);
    WR_ASSERT(uv_pipe_init(ct->loop, &t->inner, 0) == 0 && uv_pipe_open(&t->inner, fds[0]) == 0);
    WR_ASSERT(uv_pipe_init(ct->loop, outer, 0) == 0 && uv_pipe_open(outer, fds[1]) == 0);
    t->ct = ct;
    t->net = tcp;
    t->ssl = ssl;
    t->rbio = rbio;
    t->wbio = wbio;
    t->open = 2;
    snprintf(t->peer, sizeof(t->peer), "%s", peer);
    tcp->data = t;
    t->inner.data = t;
    LIST_INSERT_HEAD(&ct->relays, t, link);
    ct->n_relays++;
    *plain = (uv_stream_t *)outer;
    /* A failure from here closes the relay: the transport's end then reads the end of the
     * stream, as from a peer gone. */
    if (uv_read_start((uv_stream_t *)tcp, tls_alloc, tls_net_read) < 0)
        tls_relay_close(t);
    else if (client)
        tls_handshake(t);
    return 0;
}

void
cluster_ct_tls_close(struct cluster_transport *ct)
{
    struct ct_tls *t;
    LIST_FOREACH(t, &ct->relays, link)
        tls_relay_close(t);
}
