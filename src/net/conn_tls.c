/* AMQP over TLS (amqps): a connection's TLS session and its I/O.
 *
 * The design keeps the plain connection's hot path (conn.c) and changes only what crosses the
 * socket. One SSL object per connection, with two different BIOs:
 *
 *   - Input: the socket itself (a socket BIO). conn_on_readable hands conn_tls_read the same
 *     destinations it gives readv(2) on a plain connection: what is left of a large body
 *     frame's payload inside its message, then the input buffer. SSL_read decrypts straight
 *     into them, so a 1 MiB body is decrypted into its message, not copied through an
 *     evbuffer. OpenSSL reads ahead up to 64 KiB of ciphertext per read(2) (tls.c), where
 *     libevent's bufferevent_openssl would read 4 KiB per loop turn, which made 1 MiB
 *     bodies slow. Decrypted bytes OpenSSL still holds when the destinations are full are not
 *     seen by epoll: while SSL_has_pending says there are some, conn_read_update has them
 *     read in the next loop turn (resume_ev), after the loop has polled the other sockets.
 *
 *   - Output: frames are appended to c->out, an evbuffer of plaintext, as on a plain
 *     connection they are appended to the socket bufferevent's output. Its callback is
 *     deferred (evbuffer_defer_callbacks), so it runs once per loop turn for everything
 *     appended in that turn, from wherever (a delivery made by another connection's publish
 *     included): conn_tls_flush encrypts it in records of up to 16 KiB (small frames
 *     coalesced, large referenced bodies encrypted in place) through a BIO that appends the
 *     ciphertext to the socket bufferevent's output, which writes it as on a plain
 *     connection: writev of up to CONN_WRITE_MAX, the same watermarks and write callback.
 *     Encryption never waits for the socket, so SSL_write never returns WANT_WRITE, and with
 *     renegotiation off SSL_read never needs to write but into that BIO (TLS 1.3 key updates
 *     and tickets go out the same way).
 *
 * Nothing blocks: the handshake advances on each readable event, a stalled one is closed by
 * the connection's handshake timer, and a plain AMQP header on a TLS listener fails the
 * handshake with one log line saying so. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net_int.h"
#include "warren/tls.h"

/* Plaintext per SSL_write: one full TLS record. */
#define CONN_TLS_RECORD 16384

/* The output BIO: appends what OpenSSL writes (records, alerts) to the evbuffer in its data. */
static int
conn_tls_bio_write(BIO *bio, const char *data, size_t n, size_t *written)
{
    if (evbuffer_add(BIO_get_data(bio), data, n) < 0)
        return 0;
    *written = n;
    return 1;
}

static long
conn_tls_bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    return cmd == BIO_CTRL_FLUSH; /* nothing to flush: the bufferevent writes it */
}

/* The output BIO's method, made once (never freed: it lives as long as the process). */
static BIO_METHOD *
conn_tls_bio_method(void)
{
    static BIO_METHOD *method;
    if (method == NULL) {
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "warren evbuffer");
        if (m == NULL)
            return NULL;
        if (!BIO_meth_set_write_ex(m, conn_tls_bio_write) ||
            !BIO_meth_set_ctrl(m, conn_tls_bio_ctrl)) {
            BIO_meth_free(m);
            return NULL;
        }
        method = m;
    }
    return method;
}

/* Encrypts all of c->out into the socket bufferevent's output. 0, or -1 after dropping the
 * connection (ENOMEM). Plaintext that can no longer be sent (the connection is dead, or our
 * close_notify went out) is discarded. */
static int
conn_tls_flush(struct conn *c)
{
    struct evbuffer *out = c->out;
    size_t len;
    if (c->state == CONN_DEAD || !c->tls_ready || (SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN)) {
        if (c->state == CONN_DEAD || c->tls_ready)
            evbuffer_drain(out, evbuffer_get_length(out));
        return 0; /* before the handshake ends, frames wait for it */
    }
    while ((len = evbuffer_get_length(out)) > 0) {
        struct evbuffer_iovec v;
        evbuffer_peek(out, -1, NULL, &v, 1);
        const void *p = v.iov_base;
        size_t n = v.iov_len;
        if (n < CONN_TLS_RECORD && n < len) {
            n = len < CONN_TLS_RECORD ? len : CONN_TLS_RECORD;
            p = evbuffer_pullup(out, (ev_ssize_t)n);
        }
        size_t written = 0;
        ERR_clear_error();
        if (p == NULL || SSL_write_ex(c->ssl, p, n, &written) != 1) {
            char why[256];
            log_conn(LOG_ERROR, c, "cannot encrypt output: %s; dropping the connection",
                     p == NULL ? "out of memory" : tls_errors(why, sizeof(why)));
            evbuffer_drain(out, evbuffer_get_length(out));
            conn_drop(c);
            return -1;
        }
        evbuffer_drain(out, written);
    }
    return 0;
}

/* c->out's deferred callback: runs in the loop turn after frames were appended. */
static void
conn_tls_on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;
    if (info->n_added > 0 && evbuffer_get_length(buf) > 0)
        conn_tls_flush(c);
}

int
conn_tls_start(struct conn *c, struct ssl_ctx_st *ctx, int fd)
{
    BIO_METHOD *method = conn_tls_bio_method();
    if (method == NULL)
        return -1;
    c->out = evbuffer_new();
    c->ssl = SSL_new(ctx);
    BIO *rbio = BIO_new_socket(fd, BIO_NOCLOSE);
    BIO *wbio = BIO_new(method);
    if (c->out == NULL || c->ssl == NULL || rbio == NULL || wbio == NULL ||
        evbuffer_defer_callbacks(c->out, c->server->env.base) < 0 ||
        evbuffer_add_cb(c->out, conn_tls_on_output, c) == NULL) {
        BIO_free(rbio);
        BIO_free(wbio);
        ERR_clear_error();
        return -1; /* conn_free frees c->out and c->ssl */
    }
    BIO_set_data(wbio, bufferevent_get_output(c->bev));
    BIO_set_init(wbio, 1);
    SSL_set_bio(c->ssl, rbio, wbio); /* the SSL owns both */
    SSL_set_accept_state(c->ssl);
    return 0;
}

/* Whether the first bytes the client sent are the AMQP protocol header: peeked at, before
 * OpenSSL consumes them, for the log line of a client that does not speak TLS. */
static bool
conn_tls_peer_sent_amqp(struct conn *c)
{
    char head[4];
    return recv(bufferevent_getfd(c->bev), head, sizeof(head), MSG_PEEK) == (ssize_t)sizeof(head) &&
           memcmp(head, "AMQP", 4) == 0;
}

int
conn_tls_handshake(struct conn *c)
{
    bool plain = SSL_in_before(c->ssl) && conn_tls_peer_sent_amqp(c);
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->tls_ready = true;
        X509 *cert = SSL_get0_peer_certificate(c->ssl);
        char subject[256] = "";
        if (cert != NULL)
            X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
        log_conn(LOG_DEBUG, c, "TLS handshake done: %s, %s%s%s", SSL_get_version(c->ssl),
                 SSL_get_cipher_name(c->ssl), cert != NULL ? ", client certificate " : "", subject);
        conn_tls_flush(c); /* frames queued meanwhile (none yet: the header comes first) */
        return 0;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 1;
    char why[512];
    tls_errors(why, sizeof(why));
    long verify = SSL_get_verify_result(c->ssl);
    if (plain) {
        /* What RabbitMQ answers (OpenSSL sends nothing here): a fatal unexpected_message
         * alert, in a record a client of any TLS version can read. */
        static const uint8_t alert[] = {0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x0a};
        evbuffer_add(bufferevent_get_output(c->bev), alert, sizeof(alert));
        log_conn(LOG_ERROR, c,
                 "closing: the client sent a plain AMQP protocol header to a TLS "
                 "listener (use amqp:// on the plain port, or TLS here)");
    } else if ((e == SSL_ERROR_SYSCALL && why[0] == '\0') || e == SSL_ERROR_ZERO_RETURN)
        log_conn(SSL_in_before(c->ssl) ? LOG_DEBUG : LOG_WARNING, c,
                 "closing: the client closed the connection during the TLS handshake%s%s",
                 errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "");
    else if (verify != X509_V_OK)
        log_conn(LOG_ERROR, c, "closing: TLS handshake failed: client certificate refused: %s",
                 X509_verify_cert_error_string(verify));
    else
        log_conn(LOG_ERROR, c, "closing: TLS handshake failed: %s", why[0] ? why : "unknown error");
    return -1;
}

ssize_t
conn_tls_read(struct conn *c, const struct iovec *iov, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t off = 0;
        while (off < iov[i].iov_len) {
            size_t got;
            ERR_clear_error();
            if (SSL_read_ex(c->ssl, (char *)iov[i].iov_base + off, iov[i].iov_len - off, &got) ==
                1) {
                off += got;
                continue;
            }
            total += off;
            switch (SSL_get_error(c->ssl, 0)) {
            case SSL_ERROR_WANT_READ:
                if (total > 0)
                    return (ssize_t)total;
                errno = EAGAIN;
                return -1;
            case SSL_ERROR_ZERO_RETURN: /* close_notify, or the socket's end (see tls.c) */
                return (ssize_t)total;
            case SSL_ERROR_SYSCALL:
                if (total > 0)
                    return (ssize_t)total; /* the error again on the next read */
                if (errno == 0)
                    errno = ECONNRESET;
                return -1;
            default: {
                char why[256];
                log_conn(LOG_WARNING, c, "closing: TLS error: %s", tls_errors(why, sizeof(why)));
                return -2;
            }
            }
        }
        total += off;
    }
    return (ssize_t)total;
}

bool
conn_tls_pending(const struct conn *c)
{
    return c->tls_ready && SSL_has_pending(c->ssl);
}

void
conn_tls_close_notify(struct conn *c)
{
    if (!c->tls_ready || conn_tls_flush(c) < 0)
        return;
    ERR_clear_error();
    if (SSL_shutdown(c->ssl) < 0)
        ERR_clear_error(); /* the peer goes anyway */
}

bool
conn_tls_peer_verified(const struct conn *c)
{
    return c->tls_ready && SSL_get0_peer_certificate(c->ssl) != NULL &&
           (SSL_get_verify_mode(c->ssl) & SSL_VERIFY_PEER) &&
           SSL_get_verify_result(c->ssl) == X509_V_OK;
}

void
conn_tls_free(struct conn *c)
{
    if (!c->tls)
        return;
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->out != NULL)
        evbuffer_free(c->out);
    c->out = NULL;
}
