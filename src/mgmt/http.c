/* The HTTP transport of the administration API (see warren/mgmt.h): evhttp servers on the
 * broker's event loop, on management.tcp.ip:port and (HTTPS) management.ssl.port with basic
 * auth, and on the Unix socket <data_dir>/warren-admin.sock whose requests are trusted (only
 * the broker's user can open it: mode 0600). Requests are decoded here (method, %-decoded path
 * segments, body, user) and answered by api.c. Prometheus's /metrics paths (prometheus.c) are
 * served on prometheus.tcp.ip:port without authentication, as rabbitmq_prometheus serves them,
 * and on the management listeners to monitoring and administrator users.
 *
 * Bounds, so that a hostile client never holds the loop or the memory it shares with AMQP:
 * headers of at most MGMT_HEADERS_MAX bytes; bodies of MGMT_BODY_MAX (definitions, publish) or
 * MGMT_BODY_SMALL_MAX (everything else, 413 past it); MGMT_CONNS_MAX connections per server
 * (more are closed at once); each request must arrive whole within
 * management.tcp.request_timeout of the previous answer or the connection's start (a request
 * trickled byte by byte is cut), a silent connection closes after management.tcp.idle_timeout;
 * and the
 * bytes of requests being received, all connections together, stay under MGMT_RECEIVING_MAX.
 *
 * libevent 2.1's evhttp has no hook when a connection is accepted or closed: each
 * connection's bufferevent is made by mgmt_http_bev() as a pass-through filter over the socket
 * bufferevent, and the filter's context (struct http_conn) is where the count, the deadline
 * and the bytes received live; libevent frees it with the connection. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "mgmt_int.h"
#include "warren/auth.h"
#include "warren/cluster.h"
#include "warren/conf.h"
#include "warren/log.h"
#include "warren/tls.h"

#define MGMT_HEADERS_MAX (16 * 1024)
#define MGMT_BODY_MAX (32u * 1024 * 1024)      /* POST /api/definitions */
#define MGMT_BODY_SMALL_MAX (64 * 1024)        /* every other request */
#define MGMT_CONNS_MAX 64                      /* per server (TCP, Unix socket) */
#define MGMT_RECEIVING_MAX (64u * 1024 * 1024) /* bytes of requests being received, in all */
#define MGMT_SOCK_NAME "warren-admin.sock"
/* Replies written over several loop turns (struct mgmt_stepped) under way at once, all
 * listeners together, of each kind: each holds its whole body until it is written (39 MB of
 * per-object metrics or 64 MB of JSON at 100,000 queues), so more get 503 and Retry-After.
 * Prometheus counts that as a failed scrape (up 0) and retries at the next interval. Scrapes
 * and API replies are counted apart, so that lists asked for by a management user never keep
 * the monitoring out. RabbitMQ sets no such limit (each request is an Erlang process). */
#define HTTP_SCRAPES_MAX 4
#define HTTP_API_STEPPED_MAX 4
/* What the replies under way may spend per loop turn, together (microseconds). */
#define HTTP_STEP_US 5000

struct http_front;

/* One HTTP connection: the context of its filter bufferevent, freed by libevent with it. */
struct http_conn {
    LIST_ENTRY(http_conn) link;
    struct http_front *front;   /* borrows */
    struct bufferevent *filter; /* borrows: what evhttp uses */
    struct bufferevent *under;  /* borrows: the socket's (the filter owns it) */
    struct event *deadline;     /* owns: shuts the socket when a request takes too long */
    struct event *flush;        /* owns: pushes output through the filter (see http_on_output) */
    size_t received;            /* bytes received since the last request was dispatched */
};

/* One evhttp server: TCP or TLS with basic auth, or the trusted Unix socket. */
struct http_front {
    struct mgmt *m; /* borrows */
    struct evhttp *http;
    bool trusted;
    /* The Prometheus listener: /metrics paths, no login. */
    bool metrics_only;
    SSL_CTX *tls; /* owns a reference: HTTPS; NULL: plain */
    LIST_HEAD(, http_conn) conns;
    unsigned n_conns;
};

struct mgmt {
    struct mgmt_env env;
    struct http_front tcp, local, tls, prom;
    char *sock_path;            /* owns; set once the socket is bound (unlinked by mgmt_free) */
    size_t receiving;           /* bytes of requests being received, every connection */
    LIST_HEAD(, http_req) reqs; /* requests not answered yet (a change waiting for the disk) */
    LIST_HEAD(, http_stepped) stepped; /* replies being written over several turns */
    size_t n_scrapes, n_api;           /* in stepped: Prometheus scrapes, API replies */
};

/* A reply written over several loop turns: a Prometheus scrape (prometheus.c), or an API
 * request's (a list, the overview, a definitions export). */
struct http_stepped {
    LIST_ENTRY(http_stepped) link; /* in mgmt->stepped */
    struct http_front *front;      /* borrows */
    struct evhttp_request *req;    /* borrows until the reply */
    struct http_req *hr;      /* the API request answered (freed by the reply); NULL: a scrape */
    struct mgmt_stepped *job; /* owns */
    struct evbuffer *buf;     /* owns: the body so far */
    struct event *turn;       /* owns: zero-timeout timer, the next step */
};

/* A request in flight: api.c's view and evhttp's. */
struct http_req {
    struct mgmt_req r;
    LIST_ENTRY(http_req) link;  /* in mgmt->reqs */
    struct evhttp_request *req; /* borrows until the reply */
    struct http_front *front;   /* NULL once mgmt_free ran: the reply only frees */
    char *body;                 /* owns */
};

static void
http_conn_shut(struct http_conn *hc)
{
    int fd = bufferevent_getfd(hc->under);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR); /* evhttp reads the end and frees the connection */
}

static void
http_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_conn *hc = arg;
    log_msg(LOG_DEBUG, "management: closing an HTTP connection: request not received in time "
                       "or too many connections");
    http_conn_shut(hc);
}

/* Arms hc's deadline: the request timeout, or now. */
static void
http_conn_arm(struct http_conn *hc, bool now)
{
    uint32_t ms = now ? 0 : hc->front->m->env.conf->management_request_timeout;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(hc->deadline, &tv);
}

/* The filter's free_context: libevent runs it when it finalizes the connection, which can
 * be after mgmt_free (then front is NULL). */
static void
http_conn_free(void *arg)
{
    struct http_conn *hc = arg;
    if (hc->front != NULL) {
        hc->front->m->receiving -= hc->received;
        hc->front->n_conns--;
        LIST_REMOVE(hc, link);
    }
    event_free(hc->deadline);
    event_free(hc->flush);
    free(hc);
}

/* A filter bufferevent in libevent 2.1 passes output on only while writing is enabled, and
 * evhttp enables it after adding a reply: output added is pushed in the same loop turn. */
static void
http_on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    struct http_conn *hc = arg;
    if (info->n_added > 0)
        event_active(hc->flush, 0, 0);
}

static void
http_on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_conn *hc = arg;
    bufferevent_flush(hc->filter, EV_WRITE, BEV_NORMAL);
}

/* The filter's input side: counts what arrives, passes it on. */
static enum bufferevent_filter_result
http_filter_in(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
               enum bufferevent_flush_mode mode, void *arg)
{
    (void)mode;
    struct http_conn *hc = arg;
    size_t n = evbuffer_get_length(src);
    if (limit >= 0 && (size_t)limit < n)
        n = (size_t)limit;
    hc->received += n;
    hc->front->m->receiving += n;
    if (hc->front->m->receiving > MGMT_RECEIVING_MAX) {
        log_msg(LOG_WARNING,
                "management: closing an HTTP connection: requests being received "
                "take more than %u bytes",
                MGMT_RECEIVING_MAX);
        http_conn_shut(hc);
    }
    evbuffer_remove_buffer(src, dst, n);
    return BEV_OK;
}

/* The filter's output side: passes replies on and writes them to the socket at once. evhttp
 * takes a reply as written once the filter has passed it on, and closes a connection that
 * asked for it (or gets an error of evhttp's own: 400, 413) right then, which would drop what
 * the socket's bufferevent still holds: those replies are small, and the kernel takes them
 * whole here. Our own replies never close the connection (see http_on_request). */
static enum bufferevent_filter_result
http_filter_out(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
                enum bufferevent_flush_mode mode, void *arg)
{
    (void)limit;
    (void)mode;
    struct http_conn *hc = arg;
    evbuffer_add_buffer(dst, src);
    int fd = bufferevent_getfd(hc->under);
    /* (Over TLS the bytes must go through OpenSSL: evhttp's own errors may then be lost when it
     * closes at once.) */
    if (fd >= 0 && evbuffer_get_length(dst) > 0 && hc->front->tls == NULL)
        evbuffer_write(dst, fd); /* what the kernel does not take now, the bufferevent writes */
    return BEV_OK;
}

/* evhttp's bufferevent for a new connection: see the top of the file. NULL on ENOMEM (evhttp
 * then makes one of its own: the connection is served, not counted). */
static struct bufferevent *
http_bev(struct event_base *base, void *arg)
{
    struct http_front *f = arg;
    struct http_conn *hc = calloc(1, sizeof(*hc));
    if (hc == NULL)
        goto fail;
    hc->deadline = evtimer_new(base, http_on_deadline, hc);
    hc->flush = event_new(base, -1, 0, http_on_flush, hc);
    if (f->tls != NULL) {
        SSL *ssl = SSL_new(f->tls);
        /* bufferevent_openssl reads what the socket has: bytes OpenSSL read ahead and keeps
         * would wait for the next readable event, which may never come. */
        if (ssl != NULL)
            SSL_set_read_ahead(ssl, 0);
        hc->under = ssl != NULL
                        ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                         BEV_OPT_CLOSE_ON_FREE)
                        : NULL;
        if (hc->under == NULL)
            SSL_free(ssl);
    } else {
        hc->under = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (hc->deadline == NULL || hc->flush == NULL || hc->under == NULL)
        goto fail;
    hc->filter = bufferevent_filter_new(hc->under, http_filter_in, http_filter_out,
                                        BEV_OPT_CLOSE_ON_FREE, http_conn_free, hc);
    if (hc->filter == NULL)
        goto fail;
    if (evbuffer_add_cb(bufferevent_get_output(hc->filter), http_on_output, hc) == NULL) {
        bufferevent_free(hc->filter); /* frees under, and hc through http_conn_free */
        goto fail_logged;
    }
    hc->front = f;
    LIST_INSERT_HEAD(&f->conns, hc, link);
    /* Over the cap: closed as soon as evhttp has given it its socket (the next loop turn). */
    http_conn_arm(hc, ++f->n_conns > MGMT_CONNS_MAX);
    return hc->filter;
fail:
    if (hc != NULL) {
        if (hc->under != NULL)
            bufferevent_free(hc->under);
        if (hc->deadline != NULL)
            event_free(hc->deadline);
        if (hc->flush != NULL)
            event_free(hc->flush);
        free(hc);
    }
fail_logged:
    log_msg(LOG_ERROR, "management: out of memory for an HTTP connection");
    return NULL;
}

static struct http_conn *
http_conn_of(struct http_front *f, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon == NULL)
        return NULL;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    struct http_conn *hc;
    LIST_FOREACH(hc, &f->conns, link)
        if (hc->filter == bev)
            return hc;
    return NULL;
}

static const char *
http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

/* Sends status with body (JSON; NULL or empty: none) as hr's answer, re-arms the
 * connection's deadline for the next request, frees hr. */
static void
http_answer(struct http_req *hr, int status, struct evbuffer *body)
{
    struct mgmt_req *r = &hr->r;
    struct evhttp_request *req = hr->req;
    if (hr->front == NULL) /* the server stopped meanwhile: evhttp freed the request */
        goto out;
    LIST_REMOVE(hr, link);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    if (status == 401)
        evhttp_add_header(out, "WWW-Authenticate", "Basic realm=\"RabbitMQ Management\"");
    if (status == 405 && r->allow != 0) {
        /* As RabbitMQ lists them: "HEAD, GET, PUT, DELETE, OPTIONS". */
        char allow[64] = "";
        if (r->allow & MGMT_GET)
            strcat(allow, "HEAD, GET, ");
        if (r->allow & MGMT_PUT)
            strcat(allow, "PUT, ");
        if (r->allow & MGMT_POST)
            strcat(allow, "POST, ");
        if (r->allow & MGMT_DELETE)
            strcat(allow, "DELETE, ");
        strcat(allow, "OPTIONS");
        evhttp_add_header(out, "Allow", allow);
    }
    if (r->location != NULL)
        evhttp_add_header(out, "Location", r->location);
    evhttp_add_header(out, "Cache-Control", "no-cache");
    evhttp_add_header(out, "Vary", "accept, accept-encoding, origin");
    if (body != NULL && evbuffer_get_length(body) > 0)
        evhttp_add_header(out, "Content-Type", "application/json");
    struct http_conn *hc = http_conn_of(hr->front, req);
    if (hc != NULL)
        http_conn_arm(hc, false);
    evhttp_send_reply(req, status, http_reason(status), body);
out:
    mgmt_req_clear(r);
    free(hr->body);
    free(hr);
}

/* mgmt_reply_fn: http_answer with body written as JSON (500 if that fails). */
static void
http_reply(struct mgmt_req *r, int status, json_t *body)
{
    struct evbuffer *buf = NULL;
    if (body != NULL) {
        buf = evbuffer_new();
        if (buf == NULL || mgmt_json_write(body, buf) < 0) {
            status = 500;
            if (buf != NULL)
                evbuffer_drain(buf, evbuffer_get_length(buf));
        }
        json_decref(body);
    }
    http_answer((struct http_req *)r, status, buf);
    if (buf != NULL)
        evbuffer_free(buf);
}

/* Splits path (after "/api") into %-decoded segments; a trailing slash is ignored, '+' stays
 * '+'. Returns 0, or -1 for too many segments, an empty one or one with a NUL. */
static int
http_split(struct mgmt_req *r, const char *path)
{
    while (*path == '/') {
        path++;
        const char *end = strchr(path, '/');
        size_t len = end != NULL ? (size_t)(end - path) : strlen(path);
        if (len == 0) {
            if (*path == '\0')
                return 0; /* the trailing slash */
            return -1;
        }
        if (r->n_segs == MGMT_SEGS_MAX)
            return -1;
        char *raw = strndup(path, len);
        size_t dlen = 0;
        char *seg = raw != NULL ? evhttp_uridecode(raw, 0, &dlen) : NULL;
        free(raw);
        if (seg == NULL)
            return -1;
        r->segs[r->n_segs++] = seg;
        if (strlen(seg) != dlen)
            return -1;
        path += len;
    }
    return *path == '\0' ? 0 : -1;
}

/* Decodes query ("a=1&b=x%2By", '+' a space as cowboy reads it) into a new object of strings
 * (the first of repeated names; a name without '=' is ""). Returns it, or NULL on ENOMEM. */
static json_t *
http_query(const char *query)
{
    json_t *q = json_object();
    while (q != NULL && query != NULL && *query != '\0') {
        const char *amp = strchr(query, '&');
        size_t len = amp != NULL ? (size_t)(amp - query) : strlen(query);
        char *pair = strndup(query, len);
        char *eq = pair != NULL ? strchr(pair, '=') : NULL;
        if (eq != NULL)
            *eq = '\0';
        char *k = pair != NULL ? evhttp_uridecode(pair, 1, NULL) : NULL;
        char *v = k != NULL ? evhttp_uridecode(eq != NULL ? eq + 1 : "", 1, NULL) : NULL;
        if (v == NULL || (k[0] != '\0' && json_object_get(q, k) == NULL &&
                          json_object_set_new(q, k, json_string_nocheck(v)) < 0)) {
            json_decref(q);
            q = NULL;
        }
        free(v);
        free(k);
        free(pair);
        query = amp != NULL ? amp + 1 : NULL;
    }
    return q;
}

static bool
http_host_is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strncmp(host, "::ffff:127.", 11) == 0;
}

/* Checks "Authorization: Basic base64(user:password)" as an AMQP PLAIN login is checked
 * (loopback_users applying). Returns the user with a reference, or NULL. */
static struct auth_user *
http_login(struct mgmt *m, struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (h == NULL || strncasecmp(h, "Basic ", 6) != 0)
        return NULL;
    h += 6;
    while (*h == ' ')
        h++;
    size_t len = strlen(h);
    if (len == 0 || len % 4 != 0 || len > 4096)
        return NULL;
    unsigned char plain[1 + 3 * 4096 / 4 + 1];
    int n = EVP_DecodeBlock(plain + 1, (const unsigned char *)h, (int)len);
    if (n < 0)
        return NULL;
    if (h[len - 1] == '=')
        n -= h[len - 2] == '=' ? 2 : 1;
    unsigned char *colon = memchr(plain + 1, ':', (size_t)n);
    if (colon == NULL || memchr(plain + 1, '\0', (size_t)n) != NULL)
        return NULL;
    /* "\0user\0password", PLAIN's response. */
    plain[0] = '\0';
    *colon = '\0';
    char *host = NULL;
    uint16_t port = 0;
    evhttp_connection_get_peer(evhttp_request_get_connection(req), &host, &port);
    const struct auth_user *u = NULL;
    char why[256];
    enum auth_result res =
        auth_login(m->env.auth, (struct wire_str){(const uint8_t *)"PLAIN", 5},
                   (struct wire_str){plain, (uint32_t)n + 1},
                   host != NULL && http_host_is_loopback(host), &u, why, sizeof(why));
    OPENSSL_cleanse(plain, sizeof(plain));
    if (res != AUTH_OK) {
        log_msg(LOG_WARNING, "management: HTTP login from %s refused: %s",
                host != NULL ? host : "?", why);
        return NULL;
    }
    return auth_user_ref((struct auth_user *)u);
}

static bool
http_is_management_user(const struct auth_user *u)
{
    static const char *const tags[] = {"management", "policymaker", "monitoring", "administrator"};
    for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
        if (auth_user_has_tag(u, tags[i]))
            return true;
    return false;
}

static bool
http_is_metrics_path(const char *path)
{
    return path != NULL && strncmp(path, "/metrics", 8) == 0 && (path[8] == '\0' || path[8] == '/');
}

/* Frees st and what it holds but its API request (st->hr), which the caller answers. */
static void
http_stepped_free(struct http_stepped *st)
{
    LIST_REMOVE(st, link);
    if (st->hr != NULL)
        st->front->m->n_api--;
    else
        st->front->m->n_scrapes--;
    st->job->free(st->job);
    if (st->buf != NULL)
        evbuffer_free(st->buf);
    if (st->turn != NULL)
        event_free(st->turn);
    free(st);
}

/* Sends status (and the text, with 200), re-arms the connection's deadline. */
static void
http_prom_reply(struct http_front *f, struct evhttp_request *req, int status, struct evbuffer *buf)
{
    if (status == 200)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; version=0.0.4");
    struct http_conn *hc = http_conn_of(f, req);
    if (hc != NULL)
        http_conn_arm(hc, false);
    evhttp_send_reply(req, status, http_reason(status), status == 200 ? buf : NULL);
}

/* Sends st's reply with status and frees st. The job goes first: it may hold the request. */
static void
http_stepped_finish(struct http_stepped *st, int status)
{
    struct http_front *f = st->front;
    struct evhttp_request *req = st->req;
    struct http_req *hr = st->hr;
    struct evbuffer *buf = st->buf;
    st->buf = NULL;
    http_stepped_free(st);
    if (hr != NULL)
        http_answer(hr, status, buf);
    else
        http_prom_reply(f, req, status, buf);
    if (buf != NULL)
        evbuffer_free(buf);
}

/* Whether the client has gone: evhttp does not read while a request is being answered, so
 * it never sees the end of the stream; a peek at the socket does (0 bytes: closed). A
 * client that only shut its side for writing looks gone too, which HTTP clients do not do.
 * Over TLS the peek sees the close_notify record, not the end: such a reply runs on. */
static bool
http_stepped_gone(struct http_stepped *st)
{
    if (evhttp_request_get_connection(st->req) == NULL)
        return true;
    struct http_conn *hc = http_conn_of(st->front, st->req);
    int fd = hc != NULL ? bufferevent_getfd(hc->under) : -1;
    char c;
    return fd >= 0 && recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* One step of st's job; the reply once it is written, else the next step on the next turn (a
 * zero-timeout timer: after the sockets the next poll finds ready). The replies under way
 * share HTTP_STEP_US per turn, as their timers all fire in the same turn. A client gone ends
 * its reply, so that its place is free for another: the 500 is never read. */
static void
http_on_step_turn(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_stepped *st = arg;
    struct mgmt *m = st->front->m;
    struct timeval now = {0, 0};
    int status =
        http_stepped_gone(st)
            ? mgmt_stepped_error(st->buf, 500, "internal_server_error", "client gone")
            : st->job->step(st->job, st->buf, (unsigned)(HTTP_STEP_US / (m->n_scrapes + m->n_api)));
    if (status == 0) {
        if (evtimer_add(st->turn, &now) == 0)
            return;
        status = mgmt_stepped_error(st->buf, 500, "internal_server_error", "out of memory");
    }
    http_stepped_finish(st, status);
}

/* A reply to req by job (taken) over loop turns: hr the API request it answers, or NULL for a
 * Prometheus scrape. Counted in the mgmt's replies under way. NULL on ENOMEM (job freed). */
static struct http_stepped *
http_stepped_new(struct http_front *f, struct evhttp_request *req, struct http_req *hr,
                 struct mgmt_stepped *job)
{
    struct http_stepped *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        job->free(job);
        return NULL;
    }
    LIST_INSERT_HEAD(&f->m->stepped, st, link);
    if (hr != NULL)
        f->m->n_api++;
    else
        f->m->n_scrapes++;
    st->front = f;
    st->req = req;
    st->hr = hr;
    st->job = job;
    st->buf = evbuffer_new();
    st->turn = evtimer_new(f->m->env.base, http_on_step_turn, st);
    if (st->buf == NULL || st->turn == NULL) {
        http_stepped_free(st);
        return NULL;
    }
    return st;
}

/* mgmt_req's stepped: the first step now, which answers a short list at once; a long one goes
 * on over the next turns, or gets 503 and Retry-After while HTTP_API_STEPPED_MAX others are. */
static void
http_on_stepped(struct mgmt_req *r, struct mgmt_stepped *job)
{
    struct http_req *hr = (struct http_req *)r;
    struct http_stepped *st = http_stepped_new(hr->front, hr->req, hr, job);
    if (st == NULL) {
        mgmt_nomem(r);
        return;
    }
    struct mgmt *m = hr->front->m;
    int status = job->step(job, st->buf, (unsigned)(HTTP_STEP_US / (m->n_scrapes + m->n_api)));
    struct timeval now = {0, 0};
    if (status != 0) {
        http_stepped_finish(st, status);
    } else if (m->n_api > HTTP_API_STEPPED_MAX) {
        http_stepped_free(st);
        evhttp_add_header(evhttp_request_get_output_headers(hr->req), "Retry-After", "1");
        mgmt_reply_error(r, 503, "service_unavailable",
                         "too many long replies being written at once, retry later");
    } else if (evtimer_add(st->turn, &now) < 0) {
        http_stepped_finish(
            st, mgmt_stepped_error(st->buf, 500, "internal_server_error", "out of memory"));
    }
}

/* A /metrics request: on the Prometheus listener anyone's, as RabbitMQ; on the management
 * listeners (RabbitMQ answers 404 there) a monitoring or administrator user's, so that a
 * scraper with basic_auth may use the API's port alone; on the Unix socket the
 * administrator's. Answers req. */
static void
http_prom(struct http_front *f, struct evhttp_request *req, const char *path, const char *query)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    int status;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(out, "Allow", "HEAD, GET, OPTIONS");
        status = 405;
        goto reply;
    }
    if (!f->metrics_only && !f->trusted) {
        struct mgmt_req r = {.env = &f->m->env, .user = http_login(f->m, req)};
        bool monitor = r.user != NULL && mgmt_is_monitor(&r);
        mgmt_req_clear(&r);
        if (!monitor) {
            evhttp_add_header(out, "WWW-Authenticate", "Basic realm=\"RabbitMQ Management\"");
            status = 401;
            goto reply;
        }
    }
    if (f->m->n_scrapes >= HTTP_SCRAPES_MAX) {
        evhttp_add_header(out, "Retry-After", "1");
        status = 503;
        goto reply;
    }
    struct mgmt_stepped *job;
    status = mgmt_prom_start(&f->m->env, path, query, &job);
    if (status != 200)
        goto reply;
    struct http_stepped *st = http_stepped_new(f, req, NULL, job);
    if (st == NULL) {
        status = 500;
        goto reply;
    }
    http_on_step_turn(-1, 0, st);
    return;
reply:
    http_prom_reply(f, req, status, NULL);
}

/* evhttp's callback for every complete request. */
static void
http_on_request(struct evhttp_request *req, void *arg)
{
    struct http_front *f = arg;
    struct mgmt *m = f->m;
    struct http_conn *hc = http_conn_of(f, req);
    if (hc != NULL) {
        evtimer_del(hc->deadline); /* answered by http_reply, which re-arms it */
        m->receiving -= hc->received;
        hc->received = 0;
    }
    struct evkeyvalq *hdrs = evhttp_request_get_input_headers(req);
    /* Kept open after the reply, whatever the client asked: evhttp would close as soon as the
     * reply is handed to the filter, before a large one is written. The client closes. */
    evhttp_remove_header(hdrs, "Connection");
    evhttp_add_header(hdrs, "Connection", "keep-alive");
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    if (f->metrics_only || http_is_metrics_path(path)) {
        http_prom(f, req, path != NULL ? path : "", uri != NULL ? evhttp_uri_get_query(uri) : NULL);
        return;
    }
    if (mgmt_ui_wants(req)) { /* the dashboard's files: no login, no JSON (ui.c) */
        struct evbuffer *buf = evbuffer_new();
        int status = buf != NULL ? mgmt_ui_answer(req, buf) : 500;
        if (hc != NULL)
            http_conn_arm(hc, false);
        evhttp_send_reply(req, status, http_reason(status), buf);
        if (buf != NULL)
            evbuffer_free(buf);
        return;
    }
    struct http_req *hr = calloc(1, sizeof(*hr));
    if (hr == NULL) {
        log_msg(LOG_ERROR, "management: out of memory for an HTTP request");
        evhttp_send_reply(req, 500, "Internal Server Error", NULL);
        return;
    }
    hr->req = req;
    hr->front = f;
    LIST_INSERT_HEAD(&m->reqs, hr, link);
    struct mgmt_req *r = &hr->r;
    r->env = &m->env;
    r->reply = http_reply;
    r->stepped = http_on_stepped;
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET:
    case EVHTTP_REQ_HEAD:
        r->method = MGMT_GET;
        break;
    case EVHTTP_REQ_PUT:
        r->method = MGMT_PUT;
        break;
    case EVHTTP_REQ_POST:
        r->method = MGMT_POST;
        break;
    case EVHTTP_REQ_DELETE:
        r->method = MGMT_DELETE;
        break;
    default:
        http_reply(r, 405, NULL);
        return;
    }
    if (path == NULL || strncmp(path, "/api", 4) != 0 || (path[4] != '/' && path[4] != '\0') ||
        http_split(r, path + 4) < 0) {
        mgmt_reply_error(r, 404, "Object Not Found", "Not Found");
        return;
    }
    r->query = http_query(evhttp_uri_get_query(uri));
    if (r->query == NULL) {
        mgmt_reply_error(r, 500, "internal_server_error", "out of memory");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t blen = evbuffer_get_length(in);
    /* Definitions and a published message's payload may be large. */
    bool big = r->n_segs > 0 && (strcmp(r->segs[0], "definitions") == 0 ||
                                 (r->n_segs == 4 && strcmp(r->segs[3], "publish") == 0));
    if (blen > (big ? MGMT_BODY_MAX : MGMT_BODY_SMALL_MAX)) {
        mgmt_reply_error(r, 413, "bad_request", "request body too large");
        return;
    }
    hr->body = malloc(blen + 1);
    if (hr->body == NULL) {
        mgmt_reply_error(r, 500, "internal_server_error", "out of memory");
        return;
    }
    evbuffer_remove(in, hr->body, blen);
    hr->body[blen] = '\0';
    r->body = hr->body;
    r->body_len = blen;
    r->reason = evhttp_find_header(hdrs, "X-Reason");
    if (!f->trusted) {
        r->user = http_login(m, req);
        if (r->user == NULL) {
            /* RabbitMQ: an empty 401 without credentials, "Login failed" with bad ones. */
            if (evhttp_find_header(hdrs, "Authorization") == NULL)
                http_reply(r, 401, NULL);
            else
                mgmt_reply_error(r, 401, "not_authorized", "Login failed");
            return;
        }
        if (!http_is_management_user(r->user)) {
            mgmt_reply_error(r, 401, "not_authorised", "Not management user");
            return;
        }
    }
    mgmt_api_dispatch(r);
}

static int
http_front_init(struct mgmt *m, struct http_front *f, bool trusted)
{
    f->m = m;
    f->trusted = trusted;
    LIST_INIT(&f->conns);
    f->http = evhttp_new(m->env.base);
    if (f->http == NULL)
        return -1;
    evhttp_set_max_headers_size(f->http, MGMT_HEADERS_MAX);
    evhttp_set_max_body_size(f->http, MGMT_BODY_MAX);
    uint32_t idle = m->env.conf->management_idle_timeout;
    struct timeval tv = {idle / 1000, (idle % 1000) * 1000};
    evhttp_set_timeout_tv(f->http, &tv);
    evhttp_set_allowed_methods(f->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_bevcb(f->http, http_bev, f);
    evhttp_set_gencb(f->http, http_on_request, f);
    return 0;
}

struct mgmt *
mgmt_new(const struct mgmt_env *env)
{
    struct mgmt *m = calloc(1, sizeof(*m));
    if (m == NULL)
        goto fail;
    m->env = *env;
    if (http_front_init(m, &m->tcp, false) < 0 || http_front_init(m, &m->local, true) < 0 ||
        http_front_init(m, &m->tls, false) < 0 || http_front_init(m, &m->prom, false) < 0)
        goto fail;
    m->prom.metrics_only = true;
    /* The other nodes' /api/nodes show this one's figures, sent as often as stats are taken. */
    if (env->cluster != NULL)
        cluster_set_node_info(env->cluster, mgmt_node_info, &m->env,
                              env->conf->collect_statistics_interval);
    return m;
fail:
    log_msg(LOG_CRITICAL, "out of memory");
    mgmt_free(m);
    return NULL;
}

static int
http_listen_tcp(struct mgmt *m)
{
    const struct conf *c = m->env.conf;
    uint16_t port = (uint16_t)c->management_tcp_port;
    const char *ip = c->management_tcp_ip;
    /* "" is every interface: "::" takes IPv4 too (not v6-only), else 0.0.0.0. */
    if (evhttp_bind_socket(m->tcp.http, *ip != '\0' ? ip : "::", port) == 0 ||
        (*ip == '\0' && evhttp_bind_socket(m->tcp.http, "0.0.0.0", port) == 0)) {
        log_msg(LOG_INFO, "listening for HTTP API requests on %s port %u",
                *ip != '\0' ? ip : "every interface", port);
        return 0;
    }
    log_msg(LOG_CRITICAL, "cannot listen for HTTP API requests on %s port %u: %s",
            *ip != '\0' ? ip : "every interface", port, strerror(errno));
    return -1;
}

/* HTTPS on management.tcp.ip:management.ssl.port, with management.ssl.*'s certificate and
 * ssl_options' versions and ciphers (no client certificates). */
static int
http_listen_tls(struct mgmt *m)
{
    const struct conf *c = m->env.conf;
    struct conf tc = *c; /* a shallow copy read by tls_server_ctx_new, never freed */
    tc.ssl_certfile = c->management_ssl_certfile;
    tc.ssl_keyfile = c->management_ssl_keyfile;
    tc.ssl_password = c->management_ssl_password;
    tc.ssl_cacertfile = NULL;
    tc.ssl_verify = CONF_VERIFY_NONE;
    tc.ssl_fail_if_no_peer_cert = false;
    char err[600];
    m->tls.tls = tls_server_ctx_new(&tc, err, sizeof(err));
    if (m->tls.tls == NULL) {
        log_msg(LOG_CRITICAL, "management.ssl: %s", err);
        return -1;
    }
    uint16_t port = (uint16_t)c->management_ssl_port;
    const char *ip = c->management_tcp_ip;
    if (evhttp_bind_socket(m->tls.http, *ip != '\0' ? ip : "::", port) == 0 ||
        (*ip == '\0' && evhttp_bind_socket(m->tls.http, "0.0.0.0", port) == 0)) {
        log_msg(LOG_INFO, "listening for HTTPS API requests on %s port %u",
                *ip != '\0' ? ip : "every interface", port);
        return 0;
    }
    log_msg(LOG_CRITICAL, "cannot listen for HTTPS API requests on %s port %u: %s",
            *ip != '\0' ? ip : "every interface", port, strerror(errno));
    return -1;
}

static int
http_listen_local(struct mgmt *m)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", m->env.conf->data_dir,
                     MGMT_SOCK_NAME);
    if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
        log_msg(LOG_CRITICAL, "%s/%s: path too long for a Unix socket", m->env.conf->data_dir,
                MGMT_SOCK_NAME);
        return -1;
    }
    /* A socket left by a broker that did not exit cleanly: the store's lock says no other
     * broker uses this data directory. */
    struct stat st;
    if (lstat(sun.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(sun.sun_path);
    /* Created 0600 from the start, never more open: only the broker's user may connect. */
    mode_t old = umask(0177);
    struct evconnlistener *l = evconnlistener_new_bind(
        m->env.base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
        (struct sockaddr *)&sun, (int)sizeof(sun));
    int saved = errno;
    umask(old);
    if (l == NULL) {
        log_msg(LOG_CRITICAL, "cannot listen on %s: %s", sun.sun_path, strerror(saved));
        return -1;
    }
    m->sock_path = strdup(sun.sun_path);
    if (m->sock_path == NULL || evhttp_bind_listener(m->local.http, l) == NULL) {
        if (m->sock_path != NULL)
            unlink(m->sock_path);
        evconnlistener_free(l);
        log_msg(LOG_CRITICAL, "out of memory");
        return -1;
    }
    log_msg(LOG_INFO, "listening for HTTP API requests on %s (trusted)", sun.sun_path);
    return 0;
}

/* rabbitmq_prometheus's listener: prometheus.tcp.ip:prometheus.tcp.port. */
static int
http_listen_prom(struct mgmt *m)
{
    const struct conf *c = m->env.conf;
    uint16_t port = (uint16_t)c->prometheus_tcp_port;
    const char *ip = c->prometheus_tcp_ip;
    if (evhttp_bind_socket(m->prom.http, *ip != '\0' ? ip : "::", port) == 0 ||
        (*ip == '\0' && evhttp_bind_socket(m->prom.http, "0.0.0.0", port) == 0)) {
        log_msg(LOG_INFO, "listening for Prometheus scrapes on %s port %u",
                *ip != '\0' ? ip : "every interface", port);
        return 0;
    }
    log_msg(LOG_CRITICAL, "cannot listen for Prometheus scrapes on %s port %u: %s",
            *ip != '\0' ? ip : "every interface", port, strerror(errno));
    return -1;
}

int
mgmt_listen(struct mgmt *m)
{
    if (m->env.conf->management_tcp_port != 0 && http_listen_tcp(m) < 0)
        return -1;
    if (m->env.conf->management_ssl_port != 0 && http_listen_tls(m) < 0)
        return -1;
    if (m->env.conf->prometheus_tcp_port != 0 && http_listen_prom(m) < 0)
        return -1;
    return http_listen_local(m);
}

void
mgmt_free(struct mgmt *m)
{
    if (m == NULL)
        return;
    if (m->env.cluster != NULL)
        cluster_set_node_info(m->env.cluster, NULL, NULL, 0);
    struct http_req *hr;
    while ((hr = LIST_FIRST(&m->reqs)) != NULL) {
        LIST_REMOVE(hr, link);
        hr->front = NULL;
        hr->req = NULL;
    }
    struct http_stepped *st;
    while ((st = LIST_FIRST(&m->stepped)) != NULL) { /* evhttp_free frees their requests */
        hr = st->hr;
        http_stepped_free(st);
        if (hr != NULL)
            http_answer(hr, 500, NULL); /* front NULL: only frees */
    }
    struct http_front *fronts[] = {&m->tcp, &m->local, &m->tls, &m->prom};
    for (size_t i = 0; i < 4; i++) {
        struct http_conn *hc;
        while ((hc = LIST_FIRST(&fronts[i]->conns)) != NULL) {
            LIST_REMOVE(hc, link);
            evtimer_del(hc->deadline);
            event_del(hc->flush);
            hc->front = NULL;
        }
    }
    if (m->tcp.http != NULL)
        evhttp_free(m->tcp.http);
    if (m->local.http != NULL)
        evhttp_free(m->local.http);
    if (m->tls.http != NULL)
        evhttp_free(m->tls.http);
    if (m->prom.http != NULL)
        evhttp_free(m->prom.http);
    if (m->tls.tls != NULL)
        SSL_CTX_free(m->tls.tls);
    if (m->sock_path != NULL)
        unlink(m->sock_path);
    free(m->sock_path);
    free(m);
}
