/* warrenctl's HTTP/1.1 client: one blocking request per connection over the broker's Unix
 * socket, TCP, or TLS over TCP (OpenSSL, the broker's certificate verified); the reply ends where
 * its framing (Content-Length, the last chunk) says, or at EOF, and the client then closes. A
 * command makes a handful of requests, so a blocking socket with timeouts is all it needs;
 * libevent's evhttp client would add a loop and callbacks for nothing. The reply is read whole
 * (bounded by CTL_HTTP_MAX_REPLY), then parsed: a reply that is not HTTP, or is cut short, is an
 * error message, never a crash. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ctl.h"

#define CTL_HTTP_MAX_REPLY (1024u * 1024 * 1024) /* definitions of a large broker fit */

/* Appends to a growing buffer; returns -1 on ENOMEM or over the cap. */
struct ctl_buf {
    char *p;
    size_t len, cap;
};

static int
ctl_buf_add(struct ctl_buf *b, const void *data, size_t n)
{
    if (n > CTL_HTTP_MAX_REPLY - b->len)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* Appends the formatted text (at most 1 KiB: request lines and headers). 0, or -1. */
static int
ctl_buf_printf(struct ctl_buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -1;
    return ctl_buf_add(b, tmp, (size_t)n);
}

int
ctl_path_escape(char *out, size_t outlen, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(out);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
        if (n + (plain ? 1 : 3) >= outlen)
            return -1;
        if (plain) {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    out[n] = '\0';
    return 0;
}

int
ctl_http_json(const struct ctl *c, const char *method, const char *path, json_t *body,
              struct ctl_reply *r)
{
    char *s = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body != NULL && s == NULL) {
        fputs("Error: out of memory\n", stderr);
        return -1;
    }
    int rc = ctl_http(c, method, path, s, s != NULL ? strlen(s) : 0, NULL, r);
    free(s);
    return rc;
}

int
ctl_path(char *out, size_t outlen, const char *prefix, const char *a, const char *b)
{
    int n = snprintf(out, outlen, "%s", prefix);
    if (n < 0 || (size_t)n >= outlen || (a != NULL && ctl_path_escape(out, outlen, a) < 0))
        goto too_long;
    if (b != NULL) {
        n = (int)strlen(out);
        if ((size_t)n + 2 > outlen)
            goto too_long;
        out[n] = '/';
        out[n + 1] = '\0';
        if (ctl_path_escape(out, outlen, b) < 0)
            goto too_long;
    }
    return 0;
too_long:
    fputs("Error: name too long\n", stderr);
    return -1;
}

/* Bounds each connect, send and receive on fd by seconds (--timeout). */
static void
ctl_set_timeouts(int fd, int seconds)
{
    struct timeval tv = {.tv_sec = seconds};
    /* Linux applies SO_SNDTIMEO to connect() too. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Returns a connected socket, or -1 after printing why not. */
static int
ctl_connect(const struct ctl *c)
{
    if (c->host == NULL) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(c->socket_path) >= sizeof(sa.sun_path)) {
            fprintf(stderr, "Error: the socket path %s is too long for a Unix socket\n",
                    c->socket_path);
            return -1;
        }
        strcpy(sa.sun_path, c->socket_path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            fprintf(stderr, "Error: socket: %s\n", strerror(errno));
            return -1;
        }
        ctl_set_timeouts(fd, c->timeout_s);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            if (!c->quiet_connect)
                fprintf(stderr,
                        "Error: unable to reach the broker at %s: %s\n"
                        "Is warren-server running with this data directory, and are you its "
                        "user?\n",
                        c->socket_path, strerror(errno));
            close(fd);
            return -1;
        }
        return fd;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int gai = getaddrinfo(c->host, c->port, &hints, &res);
    if (gai != 0) {
        fprintf(stderr, "Error: cannot resolve %s: %s\n", c->host, gai_strerror(gai));
        return -1;
    }
    int fd = -1, err = 0;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        ctl_set_timeouts(fd, c->timeout_s);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0 && !c->quiet_connect)
        fprintf(stderr, "Error: unable to reach the broker at %s port %s: %s\n", c->host, c->port,
                strerror(err));
    return fd;
}

/* Prints OpenSSL's queued errors after what, on one line (nginx ngx_ssl_error's shape). */
static void
ctl_tls_error(const char *what)
{
    unsigned long e;
    fprintf(stderr, "Error: %s", what);
    while ((e = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        fprintf(stderr, ": %s", buf);
    }
    fputc('\n', stderr);
}

/* HTTPS (--tls): a TLS 1.2+ handshake on fd that verifies the broker's certificate against
 * --cacert (or the system's CAs) and the name or address given to --host. Returns the
 * session (and its context in *ctxp; the caller frees both), or NULL after printing why. */
static SSL *
ctl_tls_start(const struct ctl *c, int fd, SSL_CTX **ctxp)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        goto fail;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* A server that closes without close_notify has still sent a whole reply (or not: the
     * framing says which). */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if ((c->cacert != NULL ? SSL_CTX_load_verify_locations(ctx, c->cacert, NULL)
                           : SSL_CTX_set_default_verify_paths(ctx)) != 1)
        goto fail;
    if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1)
        goto fail;
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, c->host) != 1) { /* not an address: a name */
        if (X509_VERIFY_PARAM_set1_host(param, c->host, 0) != 1 ||
            SSL_set_tlsext_host_name(ssl, c->host) != 1)
            goto fail;
    }
    if (SSL_connect(ssl) != 1) {
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK) {
            ERR_clear_error();
            fprintf(stderr, "Error: the broker's certificate is refused: %s\n",
                    X509_verify_cert_error_string(v));
        } else {
            ctl_tls_error("TLS handshake with the broker failed");
        }
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        return NULL;
    }
    *ctxp = ctx;
    return ssl;
fail:
    ctl_tls_error(c->cacert != NULL ? "TLS setup (--cacert)" : "TLS setup");
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return NULL;
}

/* Sends all n bytes on fd, or on ssl when it is not NULL (no SIGPIPE). 0, or -1. */
static int
ctl_write_all(int fd, SSL *ssl, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w;
        if (ssl != NULL) {
            int k = SSL_write(ssl, p, n > INT_MAX ? INT_MAX : (int)n);
            w = k > 0 ? k : -1;
        } else {
            w = send(fd, p, n, MSG_NOSIGNAL);
        }
        if (w < 0 && errno == EINTR && ssl == NULL)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads up to n bytes from fd or ssl: the count, 0 at the end, or -1 with errno set. */
static ssize_t
ctl_read(int fd, SSL *ssl, char *p, size_t n)
{
    if (ssl == NULL)
        return recv(fd, p, n, 0);
    int k = SSL_read(ssl, p, (int)n);
    if (k > 0)
        return k;
    int e = SSL_get_error(ssl, k);
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
        return 0;
    if (e != SSL_ERROR_SYSCALL)
        errno = EPROTO;
    ERR_clear_error();
    return -1;
}

/* Decodes a chunked body, src (n bytes), into out. Returns 0, or -1 when the
 * chunks are malformed or cut short. */
static int
ctl_dechunk(const char *src, size_t n, struct ctl_buf *out)
{
    size_t i = 0;
    for (;;) {
        char *end;
        if (i >= n)
            return -1;
        errno = 0;
        unsigned long long size = strtoull(src + i, &end, 16);
        if (end == src + i || errno != 0)
            return -1;
        const char *eol = memchr(end, '\n', n - (size_t)(end - src));
        if (eol == NULL)
            return -1;
        i = (size_t)(eol - src) + 1;
        if (size == 0)
            return 0;
        if (size > n - i || ctl_buf_add(out, src + i, (size_t)size) < 0)
            return -1;
        i += (size_t)size;
        if (i < n && src[i] == '\r')
            i++;
        if (i < n && src[i] == '\n')
            i++;
    }
}

/* Finds header name (case-insensitive) in the header block [h, end); copies its value
 * (trimmed) into val. Returns true when found. */
static bool
ctl_header(const char *h, const char *end, const char *name, char *val, size_t vlen)
{
    size_t nl = strlen(name);
    while (h < end) {
        const char *eol = memchr(h, '\n', (size_t)(end - h));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - h) > nl && strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            const char *v = h + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t len = (size_t)(eol - v);
            while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == ' '))
                len--;
            if (len >= vlen)
                len = vlen - 1;
            memcpy(val, v, len);
            val[len] = '\0';
            return true;
        }
        h = eol + 1;
    }
    return false;
}

/* The end of the header block in b (NULL: not there yet) and the length of its blank line. */
static char *
ctl_headers_end(const struct ctl_buf *b, size_t *sep)
{
    char *hend = b->p != NULL ? strstr(b->p, "\r\n\r\n") : NULL;
    *sep = 4;
    if (hend == NULL && b->p != NULL) {
        hend = strstr(b->p, "\n\n");
        *sep = 2;
    }
    return hend;
}

/* Whether b holds a whole reply by its own framing (Content-Length, the last chunk, or a
 * status without a body), so that reading can stop without waiting for the server to close.
 * false: read on (until EOF, then ctl_parse_reply judges). */
static bool
ctl_reply_complete(const struct ctl_buf *b)
{
    size_t sep;
    char *hend = ctl_headers_end(b, &sep), val[64];
    if (hend == NULL)
        return false;
    size_t blen = b->len - (size_t)(hend + sep - b->p);
    if (strncmp(b->p, "HTTP/1.1 204", 12) == 0 || strncmp(b->p, "HTTP/1.1 304", 12) == 0)
        return true;
    if (ctl_header(b->p, hend, "Transfer-Encoding", val, sizeof(val)))
        return blen >= 5 && memcmp(b->p + b->len - 5, "0\r\n\r\n", 5) == 0 &&
               (blen == 5 || b->p[b->len - 6] == '\n');
    if (ctl_header(b->p, hend, "Content-Length", val, sizeof(val))) {
        char *end;
        errno = 0;
        unsigned long long cl = strtoull(val, &end, 10);
        return end != val && *end == '\0' && errno == 0 && cl <= blen;
    }
    return false;
}

/* Splits the raw reply in b into status and body. Returns 0, or -1 when it is not HTTP. */
static int
ctl_parse_reply(struct ctl_buf *b, struct ctl_reply *r)
{
    size_t sep;
    char *hend = ctl_headers_end(b, &sep);
    /* "HTTP/1.x NNN" then a space or the end of the line */
    const char *s = b->p;
    if (hend == NULL || b->len < 13 || strncmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ' || s[9] < '1' ||
        s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' ||
        (s[12] != ' ' && s[12] != '\r' && s[12] != '\n'))
        return -1;
    int status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    char *body = hend + sep;
    size_t blen = b->len - (size_t)(body - b->p);
    char val[64];
    struct ctl_buf out = {0};
    if (ctl_header(b->p, hend, "Transfer-Encoding", val, sizeof(val)) &&
        strcasecmp(val, "chunked") == 0) {
        if (ctl_dechunk(body, blen, &out) < 0) {
            free(out.p);
            return -1;
        }
    } else {
        if (ctl_header(b->p, hend, "Content-Length", val, sizeof(val))) {
            char *end;
            errno = 0;
            unsigned long long cl = strtoull(val, &end, 10);
            if (end == val || *end != '\0' || errno != 0 || cl > blen)
                return -1; /* cut short */
            blen = (size_t)cl;
        }
        if (ctl_buf_add(&out, body, blen) < 0)
            goto oom;
    }
    if (out.p == NULL && ctl_buf_add(&out, "", 0) < 0)
        goto oom;
    r->status = status;
    r->body = out.p;
    r->len = out.len;
    return 0;
oom:
    free(out.p);
    return -1;
}

int
ctl_http(const struct ctl *c, const char *method, const char *path, const char *body,
         size_t body_len, const char *extra_header, struct ctl_reply *r)
{
    struct ctl_buf req = {0}, rep = {0};
    int fd = -1, rc = -1;
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    memset(r, 0, sizeof(*r));
    if (ctl_buf_printf(&req, "%s /api/%s HTTP/1.1\r\nHost: %s\r\n", method, path,
                       c->host != NULL ? c->host : "localhost") < 0)
        goto oom;
    if (c->host != NULL) {
        const char *user = c->username, *pass = c->password;
        size_t ul = strlen(user), pl = strlen(pass != NULL ? pass : "");
        char *cred = malloc(ul + pl + 2), *b64 = malloc(4 * ((ul + pl + 3) / 3) + 1);
        if (cred == NULL || b64 == NULL) {
            free(cred);
            free(b64);
            goto oom;
        }
        snprintf(cred, ul + pl + 2, "%s:%s", user, pass != NULL ? pass : "");
        EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)cred, (int)(ul + pl + 1));
        int e = ctl_buf_printf(&req, "Authorization: Basic %s\r\n", b64);
        free(cred);
        free(b64);
        if (e < 0)
            goto oom;
    }
    if (extra_header != NULL && ctl_buf_printf(&req, "%s\r\n", extra_header) < 0)
        goto oom;
    if (body != NULL &&
        ctl_buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                       body_len) < 0)
        goto oom;
    if (body == NULL && (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) &&
        ctl_buf_printf(&req, "Content-Length: 0\r\n") < 0)
        goto oom;
    if (ctl_buf_add(&req, "\r\n", 2) < 0 || (body != NULL && ctl_buf_add(&req, body, body_len) < 0))
        goto oom;

    if ((fd = ctl_connect(c)) < 0)
        goto out;
    if (c->tls && (ssl = ctl_tls_start(c, fd, &ctx)) == NULL)
        goto out;
    if (ctl_write_all(fd, ssl, req.p, req.len) < 0) {
        fprintf(stderr, "Error: sending the request to the broker: %s\n", strerror(errno));
        goto out;
    }
    for (;;) {
        char chunk[16384];
        errno = 0;
        ssize_t n = ctl_read(fd, ssl, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "Error: reading the broker's reply: %s\n",
                    errno == EAGAIN ? "timed out" : strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        if (ctl_buf_add(&rep, chunk, (size_t)n) < 0) {
            fprintf(stderr, "Error: the broker's reply is larger than %u bytes\n",
                    CTL_HTTP_MAX_REPLY);
            goto out;
        }
        if (ctl_reply_complete(&rep))
            break;
    }
    if (ctl_parse_reply(&rep, r) < 0) {
        fprintf(stderr, "Error: the broker's reply is not HTTP or was cut short (%zu bytes)\n",
                rep.len);
        goto out;
    }
    rc = 0;
    goto out;
oom:
    fprintf(stderr, "Error: out of memory\n");
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    if (fd >= 0)
        close(fd);
    free(req.p);
    free(rep.p);
    return rc;
}

void
ctl_reply_free(struct ctl_reply *r)
{
    free(r->body);
    r->body = NULL;
}

json_t *
ctl_reply_json(const struct ctl_reply *r)
{
    return json_loadb(r->body, r->len, JSON_DECODE_ANY, NULL);
}
