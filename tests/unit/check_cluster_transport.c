/* Unit tests for src/cluster/transport.c, the nodes' Raft transport: node transports on
 * 127.0.0.1 with ports the system picks, all in one libuv loop that the tests run. A group's
 * connect reaches another node's accept callback with the connector's id and address, and
 * bytes pass both ways (over IPv6 too); TCP_NODELAY and keepalive are set on both ends;
 * addresses without a usable host:port are refused at once; a wrong secret, an unknown group,
 * a hello for another member, an impostor acceptor and raw clients sending garbage, bad
 * lengths or nothing are refused (with the acceptor's log line), and handshakes over the cap
 * are closed at once; close cancels pending connects with RAFT_CANCELED and calls back on a
 * later turn. Node links come up between three nodes, carry messages whole and in order, and
 * tell which nodes run (a closed node, a stalled one, a restarted one); their limits hold.
 * And a real 3-node Raft group (raft_uv over this transport) elects a leader and commits an
 * entry on every node. Each test ends with uv_loop_close() succeeding:
 * every handle was closed. Log lines are captured by pointing stderr at a temporary file. */
#include "config.h"

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>

#include "stderr_capture.h"
#include "transport.h"
#include "warren/bytes.h"
#include "warren/log.h"

static const uint8_t secret[] = "0123456789abcdef0123456789abcdef";
#define SECRET_LEN (sizeof(secret) - 1)
static const uint8_t other_secret[] = "fedcba9876543210fedcba9876543210";

static uv_loop_t loop;
static uv_timer_t guard; /* bounds each run_until */
static bool guard_expired;

/* What a group's callbacks saw: its t->data (no raft_uv in these tests but the last). */
struct seen {
    unsigned accepted;
    raft_id accepted_id;
    char accepted_address[256];
    uv_stream_t *accepted_stream; /* owned by the test, as raft_uv would own it */
    unsigned connected;
    int connect_status;
    uv_stream_t *connected_stream;
    unsigned order; /* the order of the callbacks below, for the close test */
    unsigned connect_order[2];
    unsigned closed_order;
};

/* A node: its transport, and one group's raft_uv_transport. */
struct node {
    struct cluster_transport *ct;
    struct raft_uv_transport t;
    bool has_group, group_closed, ct_closed;
    char address[64];
    uint16_t port;
};

static void
guard_cb(uv_timer_t *t)
{
    (void)t;
    guard_expired = true;
}

static void
setup(void)
{
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(uv_timer_init(&loop, &guard), 0);
}

/* Closes the guard and checks that nothing else is left on the loop. */
static void
loop_finish(void)
{
    uv_close((uv_handle_t *)&guard, NULL);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* Runs the loop until *flag is true or ms pass. Returns *flag. */
static bool
run_until(const bool *flag, unsigned ms)
{
    guard_expired = false;
    uv_timer_start(&guard, guard_cb, ms, 0);
    while (!*flag && !guard_expired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&guard);
    return *flag;
}

/* Runs the loop until *count reaches want or ms pass. Returns whether it did. */
static bool
run_until_count(const unsigned *count, unsigned want, unsigned ms)
{
    guard_expired = false;
    uv_timer_start(&guard, guard_cb, ms, 0);
    while (*count < want && !guard_expired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&guard);
    return *count >= want;
}

/* Runs the loop for ms. */
static void
run_for(unsigned ms)
{
    static const bool never = false;
    run_until(&never, ms);
}

static void
on_accept(struct raft_uv_transport *t, raft_id id, const char *address, uv_stream_t *stream)
{
    struct seen *s = t->data;
    s->accepted++;
    s->accepted_id = id;
    snprintf(s->accepted_address, sizeof(s->accepted_address), "%s", address);
    s->accepted_stream = stream;
}

static void
on_connect(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
    struct seen *s = req->data;
    s->connect_order[s->connected < 2 ? s->connected : 1] = ++s->order;
    s->connected++;
    s->connect_status = status;
    s->connected_stream = stream;
}

/* Starts a node transport listening on 127.0.0.1, port chosen by the system; with group
 * non-zero, also that group's transport, inited with id and listening into s. */
static void
node_start(struct node *n, const char *name, const uint8_t *key, uint64_t group, raft_id id,
           struct seen *s)
{
    char err[256];
    memset(n, 0, sizeof(*n));
    n->ct = cluster_transport_new(&loop, "127.0.0.1", 0, key, SECRET_LEN, err, sizeof(err));
    ck_assert_msg(n->ct != NULL, "%s", err);
    ck_assert_msg(cluster_transport_listen(n->ct, err, sizeof(err)) == 0, "%s", err);
    n->port = cluster_transport_port(n->ct);
    ck_assert_uint_ne(n->port, 0);
    snprintf(n->address, sizeof(n->address), "%s@127.0.0.1:%u", name, n->port);
    if (group == 0)
        return;
    n->t.data = s;
    ck_assert_int_eq(cluster_transport_group(n->ct, group, &n->t), 0);
    ck_assert_ptr_eq(n->t.data, s);
    n->has_group = true;
    ck_assert_int_eq(n->t.init(&n->t, id, n->address), 0);
    ck_assert_int_eq(n->t.listen(&n->t, on_accept), 0);
}

static void
on_group_closed(struct raft_uv_transport *t)
{
    struct seen *s = t->data;
    s->closed_order = ++s->order;
}

static void
on_ct_closed(void *arg)
{
    struct node *n = arg;
    n->ct_closed = true;
}

/* Closes n's group (if not yet) and its transport, and runs the loop until both are done. */
static void
node_stop(struct node *n)
{
    if (n->has_group && !n->group_closed) {
        struct seen *s = n->t.data;
        s->closed_order = 0;
        n->t.close(&n->t, on_group_closed);
        n->group_closed = true;
        ck_assert_uint_eq(s->closed_order, 0); /* never from within close */
        ck_assert(run_until_count(&s->closed_order, 1, 5000));
    }
    cluster_transport_close(n->ct, on_ct_closed, n);
    ck_assert(!n->ct_closed);
    ck_assert(run_until(&n->ct_closed, 5000));
}

/* Closes a stream handed over by the transport, as raft_uv does. */
static void
stream_free(uv_stream_t *s)
{
    if (s != NULL)
        uv_close((uv_handle_t *)s, (uv_close_cb)raft_free);
}

/* A socket option of the stream's socket, an int. */
static int
sockopt(uv_stream_t *s, int level, int name)
{
    uv_os_fd_t fd;
    ck_assert_int_eq(uv_fileno((uv_handle_t *)s, &fd), 0);
    int v = 0;
    socklen_t len = sizeof(v);
    ck_assert_int_eq(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* TCP_NODELAY, and keepalive with TCP_USER_TIMEOUT, as the transport sets them. */
static void
check_tuned(uv_stream_t *s)
{
    ck_assert_int_ne(sockopt(s, IPPROTO_TCP, TCP_NODELAY), 0);
    ck_assert_int_ne(sockopt(s, SOL_SOCKET, SO_KEEPALIVE), 0);
    ck_assert_int_eq(sockopt(s, IPPROTO_TCP, TCP_KEEPIDLE), 1);
    ck_assert_int_eq(sockopt(s, IPPROTO_TCP, TCP_KEEPINTVL), 1);
    ck_assert_int_eq(sockopt(s, IPPROTO_TCP, TCP_KEEPCNT), 5);
    ck_assert_int_eq(sockopt(s, IPPROTO_TCP, TCP_USER_TIMEOUT), 5000);
}

/* Reading a handed-over stream until `want` bytes came. */
struct reader {
    char buf[64];
    size_t have, want;
    bool done, eof;
};

static void
reader_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct reader *r = h->data;
    (void)suggested;
    *buf = uv_buf_init(r->buf + r->have, (unsigned)(sizeof(r->buf) - r->have));
}

static void
reader_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct reader *r = s->data;
    (void)buf;
    if (nread < 0) {
        r->eof = true;
        r->done = true;
        uv_read_stop(s);
        return;
    }
    r->have += (size_t)nread;
    if (r->have >= r->want || r->have == sizeof(r->buf)) {
        r->done = true;
        if (r->want > 0)
            uv_read_stop(s);
    }
}

static void
write_done(uv_write_t *w, int status)
{
    ck_assert_int_eq(status, 0);
    free(w);
}

static void
write_str(uv_stream_t *s, const char *text, size_t len)
{
    uv_write_t *w = malloc(sizeof(*w));
    ck_assert_ptr_nonnull(w);
    uv_buf_t b = uv_buf_init((char *)text, (unsigned)len);
    ck_assert_int_eq(uv_write(w, s, &b, 1, write_done), 0);
}

/* Sends text on `from` and checks that `to` receives exactly it. */
static void
check_pass(uv_stream_t *from, uv_stream_t *to, const char *text)
{
    struct reader r = {.want = strlen(text)};
    void *saved = to->data;
    to->data = &r;
    ck_assert_int_eq(uv_read_start(to, reader_alloc, reader_read), 0);
    write_str(from, text, strlen(text));
    ck_assert(run_until(&r.done, 5000));
    ck_assert(!r.eof);
    ck_assert_uint_eq(r.have, strlen(text));
    ck_assert(memcmp(r.buf, text, r.have) == 0);
    to->data = saved;
}

/* Group 7 on nodes a (id 1) and b (id 2): b connects to a. */
START_TEST(test_connect_accept)
{
    struct seen sa = {0}, sb = {0};
    struct node a, b;
    node_start(&a, "a", secret, 7, 1, &sa);
    node_start(&b, "b", secret, 7, 2, &sb);

    struct raft_uv_connect req = {.data = &sb};
    ck_assert_int_eq(b.t.connect(&b.t, &req, 1, a.address, on_connect), 0);
    ck_assert_uint_eq(sb.connected, 0); /* never from within connect */
    ck_assert(run_until_count(&sb.connected, 1, 5000));
    ck_assert(run_until_count(&sa.accepted, 1, 5000));
    ck_assert_uint_eq(sb.connected, 1);
    ck_assert_int_eq(sb.connect_status, 0);
    ck_assert_ptr_nonnull(sb.connected_stream);
    ck_assert_uint_eq(sa.accepted, 1);
    ck_assert_uint_eq(sa.accepted_id, 2);
    ck_assert_str_eq(sa.accepted_address, b.address);
    ck_assert_uint_eq(sb.accepted, 0);

    check_tuned(sb.connected_stream);
    check_tuned(sa.accepted_stream);
    check_pass(sb.connected_stream, sa.accepted_stream, "raft from b to a");
    check_pass(sa.accepted_stream, sb.connected_stream, "and back from a to b");

    stream_free(sb.connected_stream);
    stream_free(sa.accepted_stream);
    node_stop(&b);
    node_stop(&a);
    loop_finish();
}
END_TEST

/* IPv6: a node listening on ::1, reached at a bracketed address. */
START_TEST(test_ipv6)
{
    struct seen sa = {0}, sb = {0};
    struct node a, b;
    char err[256];
    memset(&a, 0, sizeof(a));
    a.ct = cluster_transport_new(&loop, "::1", 0, secret, SECRET_LEN, err, sizeof(err));
    ck_assert_msg(a.ct != NULL, "%s", err);
    ck_assert_msg(cluster_transport_listen(a.ct, err, sizeof(err)) == 0, "%s", err);
    snprintf(a.address, sizeof(a.address), "a@[::1]:%u", cluster_transport_port(a.ct));
    a.t.data = &sa;
    ck_assert_int_eq(cluster_transport_group(a.ct, 7, &a.t), 0);
    a.has_group = true;
    ck_assert_int_eq(a.t.init(&a.t, 1, a.address), 0);
    ck_assert_int_eq(a.t.listen(&a.t, on_accept), 0);
    node_start(&b, "b", secret, 7, 2, &sb);

    struct raft_uv_connect req = {.data = &sb};
    ck_assert_int_eq(b.t.connect(&b.t, &req, 1, a.address, on_connect), 0);
    ck_assert(run_until_count(&sb.connected, 1, 5000));
    ck_assert_int_eq(sb.connect_status, 0);
    ck_assert(run_until_count(&sa.accepted, 1, 5000));
    ck_assert_str_eq(sa.accepted_address, b.address);
    check_pass(sb.connected_stream, sa.accepted_stream, "over IPv6");
    stream_free(sb.connected_stream);
    stream_free(sa.accepted_stream);
    node_stop(&b);
    node_stop(&a);
    loop_finish();
}
END_TEST

/* Addresses connect cannot use are refused at once, without a callback; init refuses an
 * address longer than the handshake carries. */
static const char *const bad_addresses[] = {
    "no-port",           "a@127.0.0.1",     "a@127.0.0.1:", "a@127.0.0.1:0",
    "a@127.0.0.1:65536", "a@127.0.0.1:80x", "a@:80",        "a@[]:80",
};

START_TEST(test_bad_address)
{
    struct seen sb = {0};
    struct node b;
    node_start(&b, "b", secret, 7, 2, &sb);
    for (size_t i = 0; i < sizeof(bad_addresses) / sizeof(bad_addresses[0]); i++) {
        struct raft_uv_connect req = {.data = &sb};
        ck_assert_int_eq(b.t.connect(&b.t, &req, 1, bad_addresses[i], on_connect),
                         RAFT_NOCONNECTION);
        ck_assert_msg(strstr(b.t.errmsg, "want name@host:port") != NULL, "%s: %s", bad_addresses[i],
                      b.t.errmsg);
    }
    run_for(20);
    ck_assert_uint_eq(sb.connected, 0);

    struct raft_uv_transport t = {0};
    char address[300];
    memset(address, 'x', sizeof(address));
    address[256] = '\0';
    ck_assert_int_eq(cluster_transport_group(b.ct, 8, &t), 0);
    ck_assert_int_eq(t.init(&t, 1, address), RAFT_INVALID);
    address[255] = '\0';
    ck_assert_int_eq(t.init(&t, 1, address), 0);
    t.close(&t, NULL);
    node_stop(&b);
    loop_finish();
}
END_TEST

/* A connect fails (status and accept counts in s) within a few seconds. */
static void
connect_expect_refused(struct node *from, struct seen *sf, const char *to, struct seen *st)
{
    struct raft_uv_connect req = {.data = sf};
    ck_assert_int_eq(from->t.connect(&from->t, &req, 1, to, on_connect), 0);
    ck_assert(run_until_count(&sf->connected, 1, 5000));
    ck_assert_int_eq(sf->connect_status, RAFT_NOCONNECTION);
    ck_assert_ptr_null(sf->connected_stream);
    run_for(50);
    ck_assert_uint_eq(st->accepted, 0);
}

START_TEST(test_wrong_secret)
{
    struct seen sa = {0}, sb = {0};
    struct node a, b;
    node_start(&a, "a", secret, 7, 1, &sa);
    node_start(&b, "b", other_secret, 7, 2, &sb);
    capture_begin();
    connect_expect_refused(&b, &sb, a.address, &sa);
    const char *log = capture_end();
    ck_assert_msg(strstr(log, "[warning] cluster transport: closing connection from 127.0.0.1:") &&
                      strstr(log, ": wrong HMAC: not a member, or a different cluster secret"),
                  "log: %s", log);
    node_stop(&b);
    node_stop(&a);
    loop_finish();
}
END_TEST

START_TEST(test_unknown_group)
{
    struct seen sa = {0}, sb = {0}, sa9 = {0};
    struct node a, b;
    node_start(&a, "a", secret, 7, 1, &sa);
    node_start(&b, "b", secret, 8, 2, &sb);
    capture_begin();
    connect_expect_refused(&b, &sb, a.address, &sa);
    const char *log = capture_end();
    ck_assert_msg(strstr(log, ": unknown raft group 8\n"), "log: %s", log);

    /* A group registered and inited, but not listening yet, is refused too. */
    struct raft_uv_transport t9 = {.data = &sa9};
    ck_assert_int_eq(cluster_transport_group(a.ct, 8, &t9), 0);
    ck_assert_int_eq(t9.init(&t9, 1, a.address), 0);
    sb.connected = 0;
    capture_begin();
    connect_expect_refused(&b, &sb, a.address, &sa9);
    log = capture_end();
    ck_assert_msg(strstr(log, ": unknown raft group 8\n"), "log: %s", log);
    t9.close(&t9, NULL);

    node_stop(&b);
    node_stop(&a);
    loop_finish();
}
END_TEST

START_TEST(test_group_twice)
{
    struct seen sa = {0};
    struct node a;
    node_start(&a, "a", secret, 7, 1, &sa);
    struct raft_uv_transport t = {0};
    ck_assert_int_eq(cluster_transport_group(a.ct, 7, &t), -1);
    ck_assert_int_eq(cluster_transport_group(a.ct, 8, &t), 0);
    t.close(&t, NULL); /* never inited: the caller closes it */
    /* Once a group's close has started, the number is free again. */
    a.t.close(&a.t, NULL);
    a.group_closed = true;
    ck_assert_int_eq(cluster_transport_group(a.ct, 7, &t), 0);
    t.close(&t, NULL);
    node_stop(&a);
    loop_finish();
}
END_TEST

/* A raw TCP client: connects, writes its bytes, reads until EOF. */
struct raw_client {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    struct reader r;
    const uint8_t *bytes;
    size_t len;
    bool closed;
};

static void
raw_client_connected(uv_connect_t *req, int status)
{
    struct raw_client *rc = req->data;
    ck_assert_int_eq(status, 0);
    if (rc->len > 0) {
        uv_buf_t b = uv_buf_init((char *)rc->bytes, (unsigned)rc->len);
        ck_assert_int_eq(uv_write(&rc->write, (uv_stream_t *)&rc->tcp, &b, 1, NULL), 0);
    }
    ck_assert_int_eq(uv_read_start((uv_stream_t *)&rc->tcp, reader_alloc, reader_read), 0);
}

static void
raw_client_closed(uv_handle_t *h)
{
    struct raw_client *rc = (struct raw_client *)h;
    rc->closed = true;
}

static struct {
    const char *what;
    const char *hex; /* sent after connecting; "" sends nothing */
    const char *log; /* in the acceptor's log line */
} bad_clients[] = {
    {"garbage",
     "474554202f20485454502f312e310d0a486f73743a20780d0a0d0a"
     "00000000000000000000000000000000000000000000000000000000000000000000000000",
     ": not a Warren cluster handshake (starts \"GET / HTTP/1.1\\x0d\\x0a\")"},
    {"nothing", "", ": no handshake within 200 ms"},
    {"too long an address",
     "57524654 0002 03e8 0000000000000007 0000000000000002 0000000000000001"
     "00000000000000000000000000000000 00000000000000000000000000000000",
     ": address length 1000 out of 1..255"},
    {"empty address",
     "57524654 0002 0000 0000000000000007 0000000000000002 0000000000000001"
     "00000000000000000000000000000000 00000000000000000000000000000000",
     ": address length 0 out of 1..255"},
    {"version 1 (no target id)",
     "57524654 0001 0005 0000000000000007 0000000000000002 0000000000000001"
     "00000000000000000000000000000000 00000000000000000000000000000000",
     ": not a Warren cluster handshake"},
    {"a hello with a made-up MAC",
     "57524654 0002 0001 0000000000000007 0000000000000002 0000000000000001"
     "00000000000000000000000000000000 "
     "00000000000000000000000000000000 78"
     "00000000000000000000000000000000 "
     "00000000000000000000000000000000",
     ": wrong HMAC"},
    {"half a hello, then nothing", "57524654 0002 0001 00000000", ": no handshake within 200 ms"},
};

static size_t
unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = hex; *p != '\0';) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        ck_assert_int_eq(sscanf(p, "%2x", &v), 1);
        ck_assert_uint_lt(n, cap);
        out[n++] = (uint8_t)v;
        p += 2;
    }
    return n;
}

START_TEST(test_bad_client)
{
    struct seen sa = {0};
    struct node a;
    node_start(&a, "a", secret, 7, 1, &sa);
    cluster_transport_set_handshake_timeout(a.ct, 200);

    uint8_t bytes[256];
    struct raw_client rc = {0};
    rc.bytes = bytes;
    rc.len = unhex(bad_clients[_i].hex, bytes, sizeof(bytes));
    rc.tcp.data = &rc.r;
    rc.connect.data = &rc;
    ck_assert_int_eq(uv_tcp_init(&loop, &rc.tcp), 0);
    struct sockaddr_in sin;
    ck_assert_int_eq(uv_ip4_addr("127.0.0.1", a.port, &sin), 0);
    capture_begin();
    ck_assert_int_eq(
        uv_tcp_connect(&rc.connect, &rc.tcp, (struct sockaddr *)&sin, raw_client_connected), 0);
    bool closed_by_peer = run_until(&rc.r.eof, 5000);
    const char *log = capture_end();
    ck_assert_msg(closed_by_peer, "%s: not closed", bad_clients[_i].what);
    ck_assert_uint_eq(rc.r.have, 40); /* the challenge, nothing more */
    ck_assert_msg(strstr(log, "cluster transport: closing connection from 127.0.0.1:") &&
                      strstr(log, bad_clients[_i].log),
                  "%s: log: %s", bad_clients[_i].what, log);
    ck_assert_msg(strchr(log, '\n') == log + strlen(log) - 1, "%s: more than one line: %s",
                  bad_clients[_i].what, log);
    ck_assert_uint_eq(sa.accepted, 0);
    uv_close((uv_handle_t *)&rc.tcp, raw_client_closed);
    ck_assert(run_until(&rc.closed, 1000));
    node_stop(&a);
    loop_finish();
}
END_TEST

/* A raw listener: SILENT accepts and never writes; IMPOSTOR sends a well-formed challenge,
 * then 32 bytes of zeros as its proof once the hello has come. */
enum raw_mode { SILENT, IMPOSTOR };

struct raw_server {
    uv_tcp_t tcp;
    enum raw_mode mode;
    uv_tcp_t *conns[4];
    unsigned n_conns;
    size_t got;
    bool proof_sent;
    uint8_t rbuf[512];
    uint8_t challenge[40];
    uint8_t proof[32];
    uv_write_t writes[2];
    uint16_t port;
    char address[64];
    bool accepted;
};

static void
raw_server_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct raw_server *rs = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)rs->rbuf, sizeof(rs->rbuf));
}

static void
raw_server_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct raw_server *rs = s->data;
    (void)buf;
    if (nread <= 0)
        return;
    rs->got += (size_t)nread;
    if (!rs->proof_sent) {
        rs->proof_sent = true;
        uv_buf_t b = uv_buf_init((char *)rs->proof, sizeof(rs->proof));
        ck_assert_int_eq(uv_write(&rs->writes[1], s, &b, 1, NULL), 0);
    }
}

static void
raw_server_conn(uv_stream_t *server, int status)
{
    struct raw_server *rs = server->data;
    ck_assert_int_eq(status, 0);
    ck_assert_uint_lt(rs->n_conns, 4);
    uv_tcp_t *c = malloc(sizeof(*c));
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(uv_tcp_init(&loop, c), 0);
    c->data = rs;
    rs->conns[rs->n_conns++] = c;
    ck_assert_int_eq(uv_accept(server, (uv_stream_t *)c), 0);
    rs->accepted = true;
    if (rs->mode == IMPOSTOR) {
        bytes_put32(rs->challenge, 0x57524654u);
        bytes_put16(rs->challenge + 4, 2);
        uv_buf_t b = uv_buf_init((char *)rs->challenge, sizeof(rs->challenge));
        ck_assert_int_eq(uv_write(&rs->writes[0], (uv_stream_t *)c, &b, 1, NULL), 0);
        ck_assert_int_eq(uv_read_start((uv_stream_t *)c, raw_server_alloc, raw_server_read), 0);
    }
}

static void
raw_server_start(struct raw_server *rs, enum raw_mode mode)
{
    memset(rs, 0, sizeof(*rs));
    rs->mode = mode;
    ck_assert_int_eq(uv_tcp_init(&loop, &rs->tcp), 0);
    rs->tcp.data = rs;
    struct sockaddr_in sin;
    ck_assert_int_eq(uv_ip4_addr("127.0.0.1", 0, &sin), 0);
    ck_assert_int_eq(uv_tcp_bind(&rs->tcp, (struct sockaddr *)&sin, 0), 0);
    ck_assert_int_eq(uv_listen((uv_stream_t *)&rs->tcp, 8, raw_server_conn), 0);
    int len = sizeof(sin);
    ck_assert_int_eq(uv_tcp_getsockname(&rs->tcp, (struct sockaddr *)&sin, &len), 0);
    rs->port = ntohs(sin.sin_port);
    snprintf(rs->address, sizeof(rs->address), "x@127.0.0.1:%u", rs->port);
}

static void
raw_server_stop(struct raw_server *rs)
{
    for (unsigned i = 0; i < rs->n_conns; i++)
        uv_close((uv_handle_t *)rs->conns[i], (uv_close_cb)free);
    uv_close((uv_handle_t *)&rs->tcp, NULL);
    run_for(0);
}

/* An acceptor that does not know the secret cannot pass for a member. */
START_TEST(test_impostor)
{
    struct seen sb = {0};
    struct node b;
    struct raw_server rs;
    node_start(&b, "b", secret, 7, 2, &sb);
    raw_server_start(&rs, IMPOSTOR);
    capture_begin();
    struct raft_uv_connect req = {.data = &sb};
    ck_assert_int_eq(b.t.connect(&b.t, &req, 1, rs.address, on_connect), 0);
    bool failed = run_until_count(&sb.connected, 1, 5000);
    const char *log = capture_end();
    ck_assert(failed);
    ck_assert_int_eq(sb.connect_status, RAFT_NOCONNECTION);
    ck_assert_uint_eq(rs.got, 64 + strlen(b.address) + 32);
    ck_assert_msg(strstr(log, "connect to x@127.0.0.1:") && strstr(log, ": wrong proof"), "log: %s",
                  log);
    raw_server_stop(&rs);
    node_stop(&b);
    loop_finish();
}
END_TEST

/* A listener that never answers: the connector gives up after its handshake timeout. */
START_TEST(test_connect_timeout)
{
    struct seen sb = {0};
    struct node b;
    struct raw_server rs;
    node_start(&b, "b", secret, 7, 2, &sb);
    cluster_transport_set_handshake_timeout(b.ct, 200);
    raw_server_start(&rs, SILENT);
    struct raft_uv_connect req = {.data = &sb};
    ck_assert_int_eq(b.t.connect(&b.t, &req, 1, rs.address, on_connect), 0);
    ck_assert(run_until_count(&sb.connected, 1, 5000));
    ck_assert_int_eq(sb.connect_status, RAFT_NOCONNECTION);
    ck_assert(rs.accepted);
    raw_server_stop(&rs);
    node_stop(&b);
    loop_finish();
}
END_TEST

/* Closing a group with two connects pending, one in its handshake and one still resolving:
 * both get RAFT_CANCELED, then the close callback runs. */
START_TEST(test_close_pending)
{
    struct seen sb = {0};
    struct node b;
    struct raw_server rs;
    node_start(&b, "b", secret, 7, 2, &sb);
    raw_server_start(&rs, SILENT);
    struct raft_uv_connect req1 = {.data = &sb}, req2 = {.data = &sb};
    ck_assert_int_eq(b.t.connect(&b.t, &req1, 1, rs.address, on_connect), 0);
    ck_assert(run_until(&rs.accepted, 5000));
    ck_assert_int_eq(b.t.connect(&b.t, &req2, 3, "c@localhost:1", on_connect), 0);
    ck_assert_uint_eq(sb.connected, 0);

    b.t.close(&b.t, on_group_closed);
    b.group_closed = true;
    ck_assert_uint_eq(sb.connected, 0);
    ck_assert_uint_eq(sb.closed_order, 0);
    ck_assert(run_until_count(&sb.closed_order, 1, 5000));
    ck_assert_uint_eq(sb.connected, 2);
    ck_assert_int_eq(sb.connect_status, RAFT_CANCELED);
    ck_assert_ptr_null(sb.connected_stream);
    ck_assert_uint_eq(sb.closed_order, 3); /* after both connect callbacks */

    raw_server_stop(&rs);
    node_stop(&b);
    loop_finish();
}
END_TEST

/* ---- Node links ---- */

/* What a node's on_message callback saw. */
#define INBOX_MAX 128
struct inbox {
    unsigned n;
    struct {
        uint64_t peer;
        uint8_t type;
        size_t len;
        bool intact; /* the bytes were those fill_pattern writes */
    } m[INBOX_MAX];
    struct node *close_node; /* closes this node's transport from the callback ... */
    unsigned close_at;       /* ... when the close_at-th message comes (0: never) */
};

static void
fill_pattern(uint8_t *p, size_t len, uint8_t type)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(type + i * 7);
}

static void
on_message(void *arg, uint64_t peer_id, uint8_t type, const uint8_t *bytes, size_t len)
{
    struct inbox *in = arg;
    ck_assert_uint_lt(in->n, INBOX_MAX);
    bool intact = true;
    for (size_t i = 0; i < len && intact; i++)
        intact = bytes[i] == (uint8_t)(type + i * 7);
    in->m[in->n].peer = peer_id;
    in->m[in->n].type = type;
    in->m[in->n].len = len;
    in->m[in->n].intact = intact;
    in->n++;
    if (in->close_at != 0 && in->n == in->close_at)
        cluster_transport_close(in->close_node->ct, on_ct_closed, in->close_node);
}

/* Starts a node transport without a group, as node `id`, its messages going into in. */
static void
link_node_start(struct node *n, const char *name, uint64_t id, struct inbox *in)
{
    node_start(n, name, secret, 0, 0, NULL);
    ck_assert_int_eq(cluster_transport_set_self(n->ct, id, n->address), 0);
    ck_assert_int_eq(cluster_transport_set_self(n->ct, id, n->address), 0); /* idempotent */
    cluster_transport_on_message(n->ct, on_message, in);
}

/* Runs the loop until from sees peer alive (or not, with want false) within ms. */
static bool
run_until_alive(const struct node *from, uint64_t peer, bool want, unsigned ms)
{
    guard_expired = false;
    uv_timer_start(&guard, guard_cb, ms, 0);
    while (cluster_transport_peer_alive(from->ct, peer) != want && !guard_expired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&guard);
    return cluster_transport_peer_alive(from->ct, peer) == want;
}

/* Sends len pattern bytes of type from n to peer. Returns cluster_transport_send's result. */
static int
send_pattern(struct node *n, uint64_t peer, uint8_t type, size_t len)
{
    uint8_t *p = malloc(len > 0 ? len : 1);
    ck_assert_ptr_nonnull(p);
    fill_pattern(p, len, type);
    int rv = cluster_transport_send(n->ct, peer, type, p, len);
    free(p);
    return rv;
}

static const size_t message_sizes[] = {0, 1, 100, 65535, 65536, 300000, 3u << 20};
#define N_SIZES (sizeof(message_sizes) / sizeof(message_sizes[0]))

/* Three nodes linked to each other: every pair comes up alive both ways; messages of several
 * sizes arrive whole, in order, with their sender and type; sends that cannot be queued fail;
 * a closed node is not alive for the others within ~2 s, and sends to it fail. */
START_TEST(test_links)
{
    struct node a, b, c;
    struct inbox ia = {0}, ib = {0}, ic = {0};
    link_node_start(&a, "a", 1, &ia);
    link_node_start(&b, "b", 2, &ib);
    link_node_start(&c, "c", 3, &ic);
    struct node *nodes[3] = {&a, &b, &c};
    uint64_t t0 = uv_now(&loop);
    for (unsigned i = 0; i < 3; i++)
        for (unsigned j = 0; j < 3; j++)
            if (i != j) {
                ck_assert_int_eq(cluster_transport_link(nodes[i]->ct, j + 1, nodes[j]->address), 0);
                ck_assert_int_eq(cluster_transport_link(nodes[i]->ct, j + 1, nodes[j]->address),
                                 0); /* idempotent */
            }
    for (unsigned i = 0; i < 3; i++)
        for (unsigned j = 0; j < 3; j++)
            if (i != j)
                ck_assert_msg(run_until_alive(nodes[i], j + 1, true, 3000), "%u -> %u", i + 1,
                              j + 1);
    uv_update_time(&loop);
    printf("links: all 6 alive after %llu ms\n", (unsigned long long)(uv_now(&loop) - t0));

    /* Refused at once. */
    ck_assert_int_eq(cluster_transport_link(a.ct, 1, b.address), -1);   /* itself */
    ck_assert_int_eq(cluster_transport_link(a.ct, 0, b.address), -1);   /* id 0 */
    ck_assert_int_eq(cluster_transport_link(a.ct, 9, "b@nowhere"), -1); /* no port */
    ck_assert_int_eq(cluster_transport_set_self(a.ct, 0, a.address), -1);
    ck_assert_int_eq(cluster_transport_send(a.ct, 9, 1, "x", 1), -1); /* not linked */
    ck_assert_int_eq(cluster_transport_send(a.ct, 2, 0, "x", 1), -1); /* heartbeat type */
    ck_assert(!cluster_transport_peer_alive(a.ct, 9));

    /* a and c each send every size to b, interleaved. */
    for (unsigned k = 0; k < N_SIZES; k++) {
        ck_assert_int_eq(send_pattern(&a, 2, (uint8_t)(k + 1), message_sizes[k]), 0);
        ck_assert_int_eq(send_pattern(&c, 2, (uint8_t)(k + 101), message_sizes[k]), 0);
    }
    ck_assert_uint_eq(ib.n, 0); /* never from within send */
    ck_assert(run_until_count(&ib.n, 2 * N_SIZES, 5000));
    unsigned from_a = 0, from_c = 0;
    for (unsigned k = 0; k < ib.n; k++) {
        ck_assert(ib.m[k].intact);
        if (ib.m[k].peer == 1) {
            ck_assert_uint_eq(ib.m[k].type, from_a + 1);
            ck_assert_uint_eq(ib.m[k].len, message_sizes[from_a]);
            from_a++;
        } else {
            ck_assert_uint_eq(ib.m[k].peer, 3);
            ck_assert_uint_eq(ib.m[k].type, from_c + 101);
            ck_assert_uint_eq(ib.m[k].len, message_sizes[from_c]);
            from_c++;
        }
    }
    ck_assert_uint_eq(from_a, N_SIZES);
    ck_assert_uint_eq(from_c, N_SIZES);
    run_for(1200); /* heartbeats only: nothing more arrives */
    ck_assert_uint_eq(ib.n, 2 * N_SIZES);
    ck_assert_uint_eq(ia.n + ic.n, 0);
    ck_assert(cluster_transport_peer_alive(b.ct, 1) && cluster_transport_peer_alive(a.ct, 2));

    /* c closes: a and b stop counting it alive within ~2 s. */
    node_stop(&c);
    uv_update_time(&loop);
    t0 = uv_now(&loop);
    ck_assert(run_until_alive(&a, 3, false, 4000));
    ck_assert(run_until_alive(&b, 3, false, 4000));
    uv_update_time(&loop);
    printf("links: c not alive for a and b %llu ms after its close\n",
           (unsigned long long)(uv_now(&loop) - t0));
    ck_assert_int_eq(send_pattern(&a, 3, 1, 10), -1);
    ck_assert(cluster_transport_peer_alive(a.ct, 2) && cluster_transport_peer_alive(b.ct, 1));

    /* Unlinked: not alive, no sends, and its own link to us is refused. */
    capture_begin();
    cluster_transport_unlink(a.ct, 2);
    cluster_transport_unlink(a.ct, 2); /* idempotent */
    ck_assert(!cluster_transport_peer_alive(a.ct, 2));
    ck_assert_int_eq(send_pattern(&a, 2, 1, 10), -1);
    bool b_lost_a = run_until_alive(&b, 1, false, 4000);
    run_for(600); /* b's next attempt to link to a */
    const char *log = capture_end();
    ck_assert(b_lost_a);
    ck_assert_msg(strstr(log, ": a node link from node id 2, not a linked node\n"), "log: %s", log);

    node_stop(&b);
    node_stop(&a);
    loop_finish();
}
END_TEST

/* Join questions: what the asker got, what the answerer was asked. */
struct join_seen {
    unsigned answers;
    int answer;
    unsigned asked;
    uint64_t token, id;
    char address[256];
    int reply; /* what on_join answers at once; -1: nothing (the test answers, or not) */
    struct cluster_transport *ct;
};

static void
on_join_answer(void *arg, int answer)
{
    struct join_seen *j = arg;
    j->answers++;
    j->answer = answer;
}

static void
on_join_question(void *arg, uint64_t token, uint64_t id, const char *address)
{
    struct join_seen *j = arg;
    j->asked++;
    j->token = token;
    j->id = id;
    snprintf(j->address, sizeof(j->address), "%s", address);
    if (j->reply >= 0)
        cluster_transport_join_answer(j->ct, token, (uint8_t)j->reply);
}

/* A join question (from a node neither linked nor known) is answered with one byte, at once
 * or later; refused by a node that takes none, by one with another secret; closed unanswered
 * after the handshake timeout; answered -1 when the asker's transport closes meanwhile. */
START_TEST(test_join)
{
    struct node a, b, c;
    struct inbox ia = {0}, ib = {0};
    link_node_start(&a, "a", 1, &ia);
    link_node_start(&b, "b", 2, &ib);
    node_start(&c, "c", other_secret, 0, 0, NULL);
    ck_assert_int_eq(cluster_transport_set_self(c.ct, 3, c.address), 0);
    struct join_seen ja = {0}, jb = {.reply = 'N'};
    jb.ct = b.ct;
    ck_assert_int_eq(cluster_transport_join(a.ct, "b@nowhere", on_join_answer, &ja), -1);

    capture_begin();
    ck_assert_int_eq(cluster_transport_join(a.ct, b.address, on_join_answer, &ja), 0);
    ck_assert(run_until_count(&ja.answers, 1, 3000));
    const char *log = capture_end();
    ck_assert_int_eq(ja.answer, -1);
    ck_assert_msg(strstr(log, "a join question, but this node takes none"), "log: %s", log);

    cluster_transport_on_join(b.ct, on_join_question, &jb);
    ck_assert_int_eq(cluster_transport_join(a.ct, b.address, on_join_answer, &ja), 0);
    ck_assert_uint_eq(ja.answers, 1); /* never from within the call */
    ck_assert(run_until_count(&ja.answers, 2, 3000));
    ck_assert_int_eq(ja.answer, 'N');
    ck_assert_uint_eq(jb.id, 1);
    ck_assert_str_eq(jb.address, a.address);
    ck_assert(!cluster_transport_peer_alive(b.ct, 1)); /* a question links nobody */

    jb.reply = -1; /* answered later */
    ck_assert_int_eq(cluster_transport_join(a.ct, b.address, on_join_answer, &ja), 0);
    ck_assert(run_until_count(&jb.asked, 2, 3000));
    run_for(100);
    ck_assert_uint_eq(ja.answers, 2);
    cluster_transport_join_answer(b.ct, jb.token, 'A');
    cluster_transport_join_answer(b.ct, jb.token, 'M'); /* answered already: nothing */
    cluster_transport_join_answer(b.ct, 12345, 'M');    /* no such question */
    ck_assert(run_until_count(&ja.answers, 3, 3000));
    ck_assert_int_eq(ja.answer, 'A');

    capture_begin(); /* another secret: refused */
    ck_assert_int_eq(cluster_transport_join(c.ct, b.address, on_join_answer, &ja), 0);
    ck_assert(run_until_count(&ja.answers, 4, 3000));
    ck_assert_int_eq(ja.answer, -1);
    cluster_transport_set_handshake_timeout(b.ct, 300); /* unanswered: closed */
    ck_assert_int_eq(cluster_transport_join(a.ct, b.address, on_join_answer, &ja), 0);
    ck_assert(run_until_count(&ja.answers, 5, 3000));
    log = capture_end();
    ck_assert_int_eq(ja.answer, -1);
    ck_assert_uint_eq(jb.asked, 3);
    ck_assert_msg(strstr(log, "wrong HMAC"), "log: %s", log);
    ck_assert_msg(strstr(log, "a join question unanswered in time"), "log: %s", log);

    cluster_transport_set_handshake_timeout(b.ct, 10000); /* the asker closes first */
    ck_assert_int_eq(cluster_transport_join(a.ct, b.address, on_join_answer, &ja), 0);
    ck_assert(run_until_count(&jb.asked, 4, 3000));
    node_stop(&a);
    ck_assert_uint_eq(ja.answers, 6);
    ck_assert_int_eq(ja.answer, -1);
    node_stop(&c);
    node_stop(&b);
    loop_finish();
}
END_TEST

/* A node that closes and starts again on the same port is linked again. */
START_TEST(test_link_reconnect)
{
    struct node a, b;
    struct inbox ia = {0}, ib = {0};
    link_node_start(&a, "a", 1, &ia);
    link_node_start(&b, "b", 2, &ib);
    ck_assert_int_eq(cluster_transport_link(a.ct, 2, b.address), 0);
    ck_assert_int_eq(cluster_transport_link(b.ct, 1, a.address), 0);
    ck_assert(run_until_alive(&a, 2, true, 3000));
    ck_assert(run_until_alive(&b, 1, true, 3000));

    uint16_t port = b.port;
    node_stop(&b);
    ck_assert(run_until_alive(&a, 2, false, 4000));
    run_for(2500); /* a's attempts fail meanwhile, and its delay grows to its cap */

    char err[256];
    memset(&b, 0, sizeof(b));
    b.ct = cluster_transport_new(&loop, "127.0.0.1", port, secret, SECRET_LEN, err, sizeof(err));
    ck_assert_msg(b.ct != NULL, "%s", err);
    ck_assert_msg(cluster_transport_listen(b.ct, err, sizeof(err)) == 0, "%s", err);
    snprintf(b.address, sizeof(b.address), "b@127.0.0.1:%u", port);
    ck_assert_int_eq(cluster_transport_set_self(b.ct, 2, b.address), 0);
    cluster_transport_on_message(b.ct, on_message, &ib);
    ck_assert_int_eq(cluster_transport_link(b.ct, 1, a.address), 0);
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    ck_assert(run_until_alive(&a, 2, true, 4000));
    ck_assert(run_until_alive(&b, 1, true, 4000));
    uv_update_time(&loop);
    printf("links: a and b alive again %llu ms after b restarted\n",
           (unsigned long long)(uv_now(&loop) - t0));

    /* a's stream to b is up once its connect came round: a message gets through. */
    guard_expired = false;
    uv_timer_start(&guard, guard_cb, 4000, 0);
    while (send_pattern(&a, 2, 7, 5) != 0 && !guard_expired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&guard);
    ck_assert(run_until_count(&ib.n, 1, 3000));
    ck_assert_uint_eq(ib.m[0].peer, 1);
    ck_assert_uint_eq(ib.m[0].type, 7);

    /* a's address changes (another name): its links drop, and come back with the new one. */
    char renamed[64];
    snprintf(renamed, sizeof(renamed), "a2@127.0.0.1:%u", a.port);
    capture_begin();
    ck_assert_int_eq(cluster_transport_set_self(a.ct, 1, renamed), 0);
    ck_assert(!cluster_transport_peer_alive(a.ct, 2));
    bool back = run_until_alive(&a, 2, true, 4000);
    const char *log = capture_end();
    ck_assert(back);
    ck_assert_msg(strstr(log, "closed: this node's id or address changed\n"), "log: %s", log);
    ck_assert_int_eq(cluster_transport_link(b.ct, 1, renamed), 0);
    ck_assert(run_until_alive(&b, 1, true, 4000));

    node_stop(&b);
    node_stop(&a);
    loop_finish();
}
END_TEST

/* Runs loop, and loop2 too when run2, until a sees peer alive (or not, with want false) and,
 * when b is not NULL, b sees peer_b alive, or ms pass. Returns whether they did. */
static bool
run2_until_alive(uv_loop_t *loop2, bool run2, const struct node *a, uint64_t peer, bool want,
                 const struct node *b, uint64_t peer_b, unsigned ms)
{
    guard_expired = false;
    uv_timer_start(&guard, guard_cb, ms, 0);
    while (!guard_expired && (cluster_transport_peer_alive(a->ct, peer) != want ||
                              (b != NULL && !cluster_transport_peer_alive(b->ct, peer_b)))) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (run2)
            uv_run(loop2, UV_RUN_NOWAIT);
        usleep(1000);
    }
    uv_timer_stop(&guard);
    return !guard_expired;
}

/* A node whose loop stops (its kernel still acknowledges, nothing more): the heartbeats stop,
 * so it is not alive within ~2 s, and its link stream is closed after 4 s of silence; once
 * its loop runs again, the links come back. */
START_TEST(test_link_stalled)
{
    uv_loop_t loop2;
    ck_assert_int_eq(uv_loop_init(&loop2), 0);
    struct node a, c;
    struct inbox ia = {0}, ic = {0};
    link_node_start(&a, "a", 1, &ia);
    char err[256];
    memset(&c, 0, sizeof(c));
    c.ct = cluster_transport_new(&loop2, "127.0.0.1", 0, secret, SECRET_LEN, err, sizeof(err));
    ck_assert_msg(c.ct != NULL, "%s", err);
    ck_assert_msg(cluster_transport_listen(c.ct, err, sizeof(err)) == 0, "%s", err);
    snprintf(c.address, sizeof(c.address), "c@127.0.0.1:%u", cluster_transport_port(c.ct));
    ck_assert_int_eq(cluster_transport_set_self(c.ct, 3, c.address), 0);
    cluster_transport_on_message(c.ct, on_message, &ic);
    ck_assert_int_eq(cluster_transport_link(a.ct, 3, c.address), 0);
    ck_assert_int_eq(cluster_transport_link(c.ct, 1, a.address), 0);
    ck_assert(run2_until_alive(&loop2, true, &a, 3, true, &c, 1, 3000));

    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    capture_begin();
    bool lost = run2_until_alive(&loop2, false, &a, 3, false, NULL, 0, 4000);
    uv_update_time(&loop);
    uint64_t t_lost = uv_now(&loop) - t0;
    ck_assert_int_eq(send_pattern(&a, 3, 1, 10), 0); /* queued: the stream is still up */
    run_for(3000);
    const char *log = capture_end();
    ck_assert(lost);
    printf("links: a stalled node not alive after %llu ms\n", (unsigned long long)t_lost);
    ck_assert_msg(strstr(log, "[warning] cluster transport: link to node 3 at c@127.0.0.1:") &&
                      strstr(log, " closed: nothing heard for "),
                  "log: %s", log);
    ck_assert_int_eq(send_pattern(&a, 3, 1, 10), -1);

    ck_assert(run2_until_alive(&loop2, true, &a, 3, true, &c, 1, 5000));
    node_stop(&a);
    cluster_transport_close(c.ct, on_ct_closed, &c);
    while (!c.ct_closed)
        uv_run(&loop2, UV_RUN_ONCE);
    ck_assert_int_eq(uv_run(&loop2, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&loop2), 0);
    loop_finish();
}
END_TEST

/* A message over the receiver's limit closes the link (with a log line); the one before it
 * arrived, and the link comes back. */
START_TEST(test_link_too_big)
{
    struct node a, b;
    struct inbox ia = {0}, ib = {0};
    link_node_start(&a, "a", 1, &ia);
    link_node_start(&b, "b", 2, &ib);
    cluster_transport_set_message_max(b.ct, 1000);
    ck_assert_int_eq(cluster_transport_link(a.ct, 2, b.address), 0);
    ck_assert_int_eq(cluster_transport_link(b.ct, 1, a.address), 0);
    ck_assert(run_until_alive(&a, 2, true, 3000));
    ck_assert(run_until_alive(&b, 1, true, 3000));
    ck_assert_int_eq(send_pattern(&b, 1, 1, 1001), -1); /* b's own limit */

    capture_begin();
    ck_assert_int_eq(send_pattern(&a, 2, 1, 1000), 0);
    ck_assert_int_eq(send_pattern(&a, 2, 2, 1001), 0);
    ck_assert_int_eq(send_pattern(&a, 2, 3, 10), 0); /* lost with the link */
    guard_expired = false;
    uv_timer_start(&guard, guard_cb, 3000, 0);
    while (send_pattern(&a, 2, 4, 10) == 0 && !guard_expired) /* until a sees the close */
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&guard);
    ck_assert(!guard_expired);
    const char *log = capture_end();
    ck_assert_msg(strstr(log, "[warning] cluster transport: link from node 1 at ") &&
                      strstr(log, " closed: a message of 1001 bytes, over the limit of 1000\n"),
                  "log: %s", log);
    ck_assert_uint_eq(ib.n, 1);
    ck_assert_uint_eq(ib.m[0].len, 1000);
    ck_assert(ib.m[0].intact);

    /* a connects again after its delay. */
    guard_expired = false;
    uv_timer_start(&guard, guard_cb, 4000, 0);
    while (send_pattern(&a, 2, 5, 10) != 0 && !guard_expired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&guard);
    ck_assert(run_until_count(&ib.n, 2, 3000));
    ck_assert_uint_eq(ib.m[1].type, 5);
    ck_assert_uint_eq(ib.n, 2); /* not the ones sent on the closed stream */

    node_stop(&b);
    node_stop(&a);
    loop_finish();
}
END_TEST

/* The output bound: sends are refused once a link's output holds 64 MiB; what was queued
 * arrives in order. Then messages queued when both close are dropped without a callback, and
 * a callback that closes its own transport gets no further message. */
START_TEST(test_link_output_bound)
{
    struct node a, b;
    struct inbox ia = {0}, ib = {0};
    link_node_start(&a, "a", 1, &ia);
    link_node_start(&b, "b", 2, &ib);
    ck_assert_int_eq(cluster_transport_link(a.ct, 2, b.address), 0);
    ck_assert_int_eq(cluster_transport_link(b.ct, 1, a.address), 0);
    ck_assert(run_until_alive(&b, 1, true, 3000));
    guard_expired = false;
    uv_timer_start(&guard, guard_cb, 3000, 0);
    while (send_pattern(&a, 2, 1, 0) != 0 && !guard_expired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&guard);
    ck_assert(run_until_count(&ib.n, 1, 3000));
    ib.n = 0;

    /* Without the loop running no write callback comes: every send counts in full. */
    enum { MIB = 1 << 20 };
    uint8_t *p = malloc(MIB);
    ck_assert_ptr_nonnull(p);
    unsigned queued = 0;
    for (unsigned k = 0; k < 100; k++) {
        fill_pattern(p, MIB, (uint8_t)(k + 1));
        if (cluster_transport_send(a.ct, 2, (uint8_t)(k + 1), p, MIB) < 0)
            break;
        queued++;
    }
    free(p);
    ck_assert_uint_eq(queued, CLUSTER_TRANSPORT_OUTPUT_MAX / MIB);
    ck_assert(run_until_count(&ib.n, queued, 20000));
    for (unsigned k = 0; k < queued; k++) {
        ck_assert_uint_eq(ib.m[k].type, k + 1);
        ck_assert_uint_eq(ib.m[k].len, MIB);
        ck_assert(ib.m[k].intact);
    }
    ck_assert_int_eq(send_pattern(&a, 2, 1, 10), 0); /* the output drained */
    ck_assert(run_until_count(&ib.n, queued + 1, 3000));

    /* b closes its transport from the callback of the 2nd of 5 messages. */
    ib.n = 0;
    ib.close_node = &b;
    ib.close_at = 2;
    for (unsigned k = 0; k < 5; k++)
        ck_assert_int_eq(send_pattern(&a, 2, (uint8_t)(k + 1), 100), 0);
    ck_assert(run_until(&b.ct_closed, 3000));
    run_for(100);
    ck_assert_uint_eq(ib.n, 2);

    /* a closes with messages queued: dropped. */
    ck_assert(run_until_alive(&a, 2, false, 4000));
    for (unsigned k = 0; k < 3; k++)
        send_pattern(&a, 1, 1, 100); /* not linked to itself: refused */
    node_stop(&a);
    loop_finish();
}
END_TEST

/* A hello for another member than the acceptor is refused: a stale address reaching another
 * node, for a Raft group as for a link. */
START_TEST(test_wrong_target)
{
    struct seen sa = {0}, sb = {0};
    struct node a, b;
    node_start(&a, "a", secret, 7, 1, &sa);
    node_start(&b, "b", secret, 7, 2, &sb);
    capture_begin();
    struct raft_uv_connect req = {.data = &sb};
    ck_assert_int_eq(b.t.connect(&b.t, &req, 3, a.address, on_connect), 0);
    ck_assert(run_until_count(&sb.connected, 1, 5000));
    ck_assert_int_eq(sb.connect_status, RAFT_NOCONNECTION);
    run_for(50);
    const char *log = capture_end();
    ck_assert_uint_eq(sa.accepted, 0);
    ck_assert_msg(strstr(log, ": it means to reach id 3 in group 7, this node is 1 there (a "
                              "stale address?)\n"),
                  "log: %s", log);

    /* b links node 9 at a's address; a is node 1. */
    ck_assert_int_eq(cluster_transport_set_self(a.ct, 1, a.address), 0);
    ck_assert_int_eq(cluster_transport_set_self(b.ct, 2, b.address), 0);
    ck_assert_int_eq(cluster_transport_link(a.ct, 2, b.address), 0);
    capture_begin();
    ck_assert_int_eq(cluster_transport_link(b.ct, 9, a.address), 0);
    run_for(300);
    log = capture_end();
    ck_assert(!cluster_transport_peer_alive(b.ct, 9));
    ck_assert_msg(strstr(log, ": it means to reach id 9 in group 0, this node is 1 there (a "
                              "stale address?)\n"),
                  "log: %s", log);
    /* Its address corrected, b's link to a comes up. */
    cluster_transport_unlink(b.ct, 9);
    ck_assert_int_eq(cluster_transport_link(b.ct, 1, a.address), 0);
    ck_assert(run_until_alive(&a, 2, true, 3000));
    ck_assert(run_until_alive(&b, 1, true, 3000));
    node_stop(&b);
    node_stop(&a);
    loop_finish();
}
END_TEST

/* At most 256 accepted connections in their handshake: the next ones are closed at once,
 * with one log line. */
START_TEST(test_handshake_cap)
{
    enum { CAP = 256, EXTRA = 4 };
    struct seen sa = {0};
    struct node a;
    node_start(&a, "a", secret, 7, 1, &sa);
    static struct raw_client rcs[CAP + EXTRA];
    memset(rcs, 0, sizeof(rcs));
    struct sockaddr_in sin;
    ck_assert_int_eq(uv_ip4_addr("127.0.0.1", a.port, &sin), 0);
    unsigned eofs = 0, challenged = 0;
    capture_begin();
    for (unsigned i = 0; i < CAP + EXTRA; i++) {
        struct raw_client *rc = &rcs[i];
        rc->r.want = 40;
        rc->tcp.data = &rc->r;
        rc->connect.data = rc;
        ck_assert_int_eq(uv_tcp_init(&loop, &rc->tcp), 0);
        ck_assert_int_eq(
            uv_tcp_connect(&rc->connect, &rc->tcp, (struct sockaddr *)&sin, raw_client_connected),
            0);
        ck_assert(run_until(&rc->r.done, 5000)); /* the challenge, or EOF */
    }
    for (unsigned i = 0; i < CAP + EXTRA; i++) {
        if (rcs[i].r.eof)
            eofs++;
        else if (rcs[i].r.have == 40)
            challenged++;
    }
    const char *log = capture_end();
    ck_assert_uint_eq(challenged, CAP);
    ck_assert_uint_eq(eofs, EXTRA);
    for (unsigned i = CAP; i < CAP + EXTRA; i++)
        ck_assert(rcs[i].r.eof);
    ck_assert_msg(strstr(log, "[warning] cluster transport: 256 connections in their handshake "
                              "already: closed 1 new connection(s) since the last such line\n"),
                  "log: %s", log);
    ck_assert_msg(strchr(log, '\n') == log + strlen(log) - 1, "more than one line: %s", log);
    capture_begin(); /* the acceptor's lines about the handshakes the clients left */
    for (unsigned i = 0; i < CAP + EXTRA; i++)
        uv_close((uv_handle_t *)&rcs[i].tcp, raw_client_closed);
    ck_assert(run_until(&rcs[CAP + EXTRA - 1].closed, 1000));
    node_stop(&a);
    capture_end();
    loop_finish();
}
END_TEST

/* A Raft node over the transport: raft_uv in a temporary directory. */
struct raft_node {
    struct node n;
    struct raft_io io;
    struct raft raft;
    struct raft_fsm fsm;
    char dir[64];
    unsigned applied;
    bool closed;
};

static int
fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct raft_node *rn = fsm->data;
    ck_assert_uint_eq(buf->len, 8);
    ck_assert(memcmp(buf->base, "warren!\0", 8) == 0);
    rn->applied++;
    *result = NULL;
    return 0;
}

static int
fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    (void)fsm;
    (void)bufs;
    (void)n_bufs;
    ck_abort_msg("no snapshot expected");
    return RAFT_IOERR;
}

static int
fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    (void)fsm;
    (void)buf;
    ck_abort_msg("no restore expected");
    return RAFT_IOERR;
}

static void
on_raft_closed(struct raft *r)
{
    struct raft_node *rn = r->data;
    rn->closed = true;
}

static bool apply_done;
static int apply_status;

static void
on_applied(struct raft_apply *req, int status, void *result)
{
    (void)req;
    (void)result;
    apply_status = status;
    apply_done = true;
}

static void
dir_remove(const char *path)
{
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    char file[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
        ck_assert_int_eq(unlink(file), 0);
    }
    closedir(d);
    ck_assert_int_eq(rmdir(path), 0);
}

/* Three nodes, one group: bootstrapped alike, they elect a leader, and an entry the leader
 * applies is committed and applied on all three. This is the contract with raft_uv. */
START_TEST(test_raft_cluster)
{
    enum { N = 3 };
    static struct raft_node nodes[N];
    memset(nodes, 0, sizeof(nodes));
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (unsigned i = 0; i < N; i++) {
        struct raft_node *rn = &nodes[i];
        char name[8];
        snprintf(name, sizeof(name), "n%u", i + 1);
        node_start(&rn->n, name, secret, 0, 0, NULL);
        ck_assert_int_eq(cluster_transport_group(rn->n.ct, 42, &rn->n.t), 0);
        rn->n.has_group = true;
        rn->n.group_closed = true; /* raft_close closes it */
        snprintf(rn->dir, sizeof(rn->dir), "/tmp/check_cluster_transport.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(rn->dir));
        ck_assert_int_eq(raft_uv_init(&rn->io, &loop, rn->dir, &rn->n.t), 0);
        rn->fsm = (struct raft_fsm){.version = 1,
                                    .data = rn,
                                    .apply = fsm_apply,
                                    .snapshot = fsm_snapshot,
                                    .restore = fsm_restore};
        ck_assert_int_eq(raft_init(&rn->raft, &rn->io, &rn->fsm, i + 1, rn->n.address), 0);
        rn->raft.data = rn;
        raft_set_election_timeout(&rn->raft, 300);
        raft_set_heartbeat_timeout(&rn->raft, 30);
        ck_assert_int_eq(raft_configuration_add(&conf, i + 1, rn->n.address, RAFT_VOTER), 0);
    }
    for (unsigned i = 0; i < N; i++) {
        ck_assert_int_eq(raft_bootstrap(&nodes[i].raft, &conf), 0);
        ck_assert_int_eq(raft_start(&nodes[i].raft), 0);
    }
    raft_configuration_close(&conf);

    struct raft_node *leader = NULL;
    guard_expired = false;
    uv_timer_start(&guard, guard_cb, 10000, 0);
    while (leader == NULL && !guard_expired) {
        uv_run(&loop, UV_RUN_ONCE);
        for (unsigned i = 0; i < N; i++)
            if (raft_state(&nodes[i].raft) == RAFT_LEADER)
                leader = &nodes[i];
    }
    uv_timer_stop(&guard);
    ck_assert_msg(leader != NULL, "no leader within 10 s");

    struct raft_buffer buf = {.base = raft_malloc(8), .len = 8};
    ck_assert_ptr_nonnull(buf.base);
    memcpy(buf.base, "warren!\0", 8);
    struct raft_apply req;
    apply_done = false;
    ck_assert_int_eq(raft_apply(&leader->raft, &req, &buf, 1, on_applied), 0);
    ck_assert(run_until(&apply_done, 10000));
    ck_assert_int_eq(apply_status, 0);
    guard_expired = false;
    uv_timer_start(&guard, guard_cb, 10000, 0);
    while ((nodes[0].applied == 0 || nodes[1].applied == 0 || nodes[2].applied == 0) &&
           !guard_expired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&guard);
    for (unsigned i = 0; i < N; i++)
        ck_assert_uint_eq(nodes[i].applied, 1);

    for (unsigned i = 0; i < N; i++)
        raft_close(&nodes[i].raft, on_raft_closed);
    for (unsigned i = 0; i < N; i++) {
        ck_assert(run_until(&nodes[i].closed, 10000));
        raft_uv_close(&nodes[i].io);
    }
    for (unsigned i = 0; i < N; i++) {
        node_stop(&nodes[i].n);
        dir_remove(nodes[i].dir);
    }
    loop_finish();
}
END_TEST

/* raft 0.15 writes buffers it allocated and did not fill entirely (padding in its
 * configuration and message encodings) to disk and to sockets, which valgrind reports as
 * uninitialised bytes (cowsql/raft fixed it later, PR 180, with calloc). Its heap is ours to
 * set: one that zeroes every allocation keeps raft's reports out of this test's valgrind run.
 * realloc's growth is not zeroed; raft 0.15 does not write such memory here. */
static void *
zero_malloc(void *data, size_t size)
{
    (void)data;
    return calloc(1, size);
}

static void
zero_free(void *data, void *ptr)
{
    (void)data;
    free(ptr);
}

static void *
zero_calloc(void *data, size_t nmemb, size_t size)
{
    (void)data;
    return calloc(nmemb, size);
}

static void *
zero_realloc(void *data, void *ptr, size_t size)
{
    (void)data;
    return realloc(ptr, size);
}

static void *
zero_aligned_alloc(void *data, size_t alignment, size_t size)
{
    void *p = NULL;
    (void)data;
    if (posix_memalign(&p, alignment, size) != 0)
        return NULL;
    memset(p, 0, size);
    return p;
}

static void
zero_aligned_free(void *data, size_t alignment, void *ptr)
{
    (void)data;
    (void)alignment;
    free(ptr);
}

static struct raft_heap zero_heap = {
    .malloc = zero_malloc,
    .free = zero_free,
    .calloc = zero_calloc,
    .realloc = zero_realloc,
    .aligned_alloc = zero_aligned_alloc,
    .aligned_free = zero_aligned_free,
};

static Suite *
cluster_transport_suite(void)
{
    Suite *s = suite_create("cluster_transport");
    TCase *tc = tcase_create("transport");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_connect_accept);
    tcase_add_test(tc, test_ipv6);
    tcase_add_test(tc, test_bad_address);
    tcase_add_test(tc, test_wrong_secret);
    tcase_add_test(tc, test_unknown_group);
    tcase_add_test(tc, test_group_twice);
    tcase_add_loop_test(tc, test_bad_client, 0, sizeof(bad_clients) / sizeof(bad_clients[0]));
    tcase_add_test(tc, test_impostor);
    tcase_add_test(tc, test_connect_timeout);
    tcase_add_test(tc, test_close_pending);
    tcase_add_test(tc, test_wrong_target);
    tcase_add_test(tc, test_handshake_cap);
    suite_add_tcase(s, tc);

    TCase *links = tcase_create("links");
    tcase_add_checked_fixture(links, setup, NULL);
    tcase_set_timeout(links, 60);
    tcase_add_test(links, test_links);
    tcase_add_test(links, test_link_reconnect);
    tcase_add_test(links, test_link_stalled);
    tcase_add_test(links, test_link_too_big);
    tcase_add_test(links, test_link_output_bound);
    tcase_add_test(links, test_join);
    suite_add_tcase(s, links);

    TCase *raft = tcase_create("raft");
    tcase_add_checked_fixture(raft, setup, NULL);
    tcase_set_timeout(raft, 60);
    tcase_add_test(raft, test_raft_cluster);
    suite_add_tcase(s, raft);
    return s;
}

int
main(void)
{
    log_set_level(LOG_INFO);
    raft_heap_set(&zero_heap);
    SRunner *sr = srunner_create(cluster_transport_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
