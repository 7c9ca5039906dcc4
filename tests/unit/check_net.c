/* Unit tests for src/net: the connection and channel state machines driven in-process through
 * loopback sockets (tests/nethost.h), without the real binary. The handshake and login; channel
 * open, close and close-ok in both directions; a soft channel error, what the closing channel
 * drops, and reuse of its number; hard errors closing the connection; content assembly (bodies
 * split over frames, content frames out of place, overruns); and teardown while handlers run:
 * a connection exception or a hang-up while channels hold consumers, unacked deliveries,
 * transactions or partial messages, with the deliveries requeued in order, auto-delete and
 * exclusive queues going with their holder, and every message freed (msg_bytes_live) once the
 * connection has gone as well as after the server is freed. Administrative changes seen by
 * open connections: a permission change applies to the next operation, and deleting a user or
 * a vhost closes its connections with 320 (a vhost's let go of it at once). Out of memory
 * (injected: see fail_idmap_insert) in basic.get. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "nethost.h"
#include "warren/admin.h"
#include "warren/idmap.h"
#include "warren/log.h"
#include "warren/msg.h"
#include "warren/vhost.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* The broker of the running test (each test starts one and frees it). */
static struct nethost host;

/* Allocation failure injection: check_net is linked with --wrap=idmap_insert
 * (src/net/include.am), so that idmap_insert fails, as on ENOMEM, while this is set. */
static bool fail_idmap_insert;

int __real_idmap_insert(struct idmap *m, struct idmap_entry *e, uint64_t id);
int __wrap_idmap_insert(struct idmap *m, struct idmap_entry *e, uint64_t id);

int
__wrap_idmap_insert(struct idmap *m, struct idmap_entry *e, uint64_t id)
{
    return fail_idmap_insert ? -1 : __real_idmap_insert(m, e, id);
}

#define OK(p, call) ck_assert_msg((call) == 0, "%s", (p)->why)
#define EXPECT(p, ch, id, f) OK(p, nethost_expect((p), (ch), (id), (f)))

/* Starts the broker, silent unless NETLOG is set in the environment (then it logs
 * everything, to see what the server made of a failing test's input). */
static void
start_host(void)
{
    log_set_level(getenv("NETLOG") != NULL ? LOG_DEBUG : LOG_NONE);
    ck_assert_int_eq(nethost_init(&host), 0);
}

/* One more connection, through its handshake. */
static struct nethost_peer *
start_peer(void)
{
    struct nethost_peer *p = nethost_connect(&host, NULL);
    ck_assert_ptr_nonnull(p);
    OK(p, nethost_handshake(p));
    return p;
}

/* A broker with one connection through its handshake. */
static struct nethost_peer *
start(void)
{
    start_host();
    return start_peer();
}

/* Frees the broker: nothing may be left of any message. */
static void
finish(void)
{
    nethost_free(&host);
    ck_assert_uint_eq(msg_bytes_live, 0);
}

static void
send_method(struct nethost_peer *p, uint16_t ch, struct wire_method m)
{
    ck_assert_int_eq(nethost_send_method(p, ch, &m), 0);
}

static void
open_channel(struct nethost_peer *p, uint16_t ch)
{
    struct nethost_frame f;
    send_method(p, ch, (struct wire_method){.id = WIRE_CHANNEL_OPEN});
    EXPECT(p, ch, WIRE_CHANNEL_OPEN_OK, &f);
}

static struct wire_method
channel_close(uint16_t code)
{
    struct wire_method m = {.id = WIRE_CHANNEL_CLOSE};
    m.u.channel_close.reply_code = code;
    m.u.channel_close.reply_text = WIRE_STR_LIT("bye");
    return m;
}

static void
declare(struct nethost_peer *p, uint16_t ch, const char *name, bool exclusive, bool auto_delete)
{
    struct nethost_frame f;
    send_method(p, ch, nethost_queue_declare(name, exclusive, auto_delete));
    EXPECT(p, ch, WIRE_QUEUE_DECLARE_OK, &f);
}

static void
consume(struct nethost_peer *p, uint16_t ch, const char *queue, const char *tag, bool no_ack)
{
    struct nethost_frame f;
    send_method(p, ch, nethost_consume(queue, tag, no_ack));
    EXPECT(p, ch, WIRE_BASIC_CONSUME_OK, &f);
}

static void
publish(struct nethost_peer *p, uint16_t ch, const char *queue, const char *body)
{
    ck_assert_int_eq(nethost_publish(p, ch, "", queue, body, strlen(body)), 0);
}

/* Reads a basic.deliver on ch and its content, which must be body. Returns the tag. */
static uint64_t
expect_delivery(struct nethost_peer *p, uint16_t ch, const char *body, bool redelivered)
{
    struct nethost_frame f;
    EXPECT(p, ch, WIRE_BASIC_DELIVER, &f);
    uint64_t tag = f.m.u.basic_deliver.delivery_tag;
    ck_assert_int_eq(f.m.u.basic_deliver.redelivered, redelivered);
    uint8_t got[256];
    size_t len;
    OK(p, nethost_expect_content(p, ch, got, sizeof(got), &len));
    ck_assert_uint_eq(len, strlen(body));
    ck_assert_int_eq(memcmp(got, body, len), 0);
    return tag;
}

/* basic.get on queue: it must give body (redelivered or not). */
static void
expect_get(struct nethost_peer *p, uint16_t ch, const char *queue, const char *body,
           bool redelivered)
{
    struct nethost_frame f;
    struct wire_method m = {.id = WIRE_BASIC_GET};
    m.u.basic_get.queue = nethost_str(queue);
    m.u.basic_get.no_ack = true;
    send_method(p, ch, m);
    EXPECT(p, ch, WIRE_BASIC_GET_OK, &f);
    ck_assert_int_eq(f.m.u.basic_get_ok.redelivered, redelivered);
    uint8_t got[256];
    size_t len;
    OK(p, nethost_expect_content(p, ch, got, sizeof(got), &len));
    ck_assert_uint_eq(len, strlen(body));
    ck_assert_int_eq(memcmp(got, body, len), 0);
}

/* Checks a queue's counts with a passive declare on ch. */
static void
expect_queue(struct nethost_peer *p, uint16_t ch, const char *name, uint32_t messages,
             uint32_t consumers)
{
    struct nethost_frame f;
    struct wire_method m = nethost_queue_declare(name, false, false);
    m.u.queue_declare.passive = true;
    send_method(p, ch, m);
    EXPECT(p, ch, WIRE_QUEUE_DECLARE_OK, &f);
    ck_assert_uint_eq(f.m.u.queue_declare_ok.message_count, messages);
    ck_assert_uint_eq(f.m.u.queue_declare_ok.consumer_count, consumers);
}

/* Reads a channel.close or connection.close (by id) on ch with this code, failing method and
 * reply text. */
static void
expect_close(struct nethost_peer *p, uint16_t ch, enum wire_method_id id, uint16_t code,
             uint32_t method, const char *text)
{
    struct nethost_frame f;
    EXPECT(p, ch, id, &f);
    /* connection.close and channel.close have the same fields */
    const struct wire_channel_close *c = &f.m.u.channel_close;
    if (id == WIRE_CONNECTION_CLOSE)
        c = (const struct wire_channel_close *)&f.m.u.connection_close;
    char got[400];
    nethost_describe(&f, got, sizeof(got));
    ck_assert_msg(c->reply_code == code && c->class_id == WIRE_METHOD_CLASS(method) &&
                      c->method_id == WIRE_METHOD_INDEX(method) && wire_str_eq(c->reply_text, text),
                  "got %s, expected code %u, method %u/%u, text '%s'", got, code,
                  WIRE_METHOD_CLASS(method), WIRE_METHOD_INDEX(method), text);
}

/* After a connection.close from the server: the client's close-ok ends the connection. */
static void
close_ok_and_eof(struct nethost_peer *p)
{
    send_method(p, 0, (struct wire_method){.id = WIRE_CONNECTION_CLOSE_OK});
    OK(p, nethost_expect_eof(p));
}

/* ---- handshake ---- */

START_TEST(test_handshake)
{
    start_host();
    struct nethost_peer *p = nethost_connect(&host, NULL);
    ck_assert_ptr_nonnull(p);
    struct nethost_frame f;
    ck_assert_int_eq(nethost_send(p, frame_protocol_header, FRAME_PROTOCOL_HEADER_SIZE), 0);
    EXPECT(p, 0, WIRE_CONNECTION_START, &f);
    const struct wire_connection_start *s = &f.m.u.connection_start;
    ck_assert_uint_eq(s->version_major, 0);
    ck_assert_uint_eq(s->version_minor, 9);
    ck_assert(wire_str_eq(s->mechanisms, "PLAIN AMQPLAIN"));
    ck_assert(wire_str_eq(s->locales, "en_US"));
    struct wire_value caps, v;
    ck_assert(wire_table_get(s->server_properties, "capabilities", &caps));
    ck_assert_int_eq(caps.type, WIRE_FIELD_TABLE);
    ck_assert(wire_table_get(caps.v.table, "publisher_confirms", &v) && v.v.b);
    ck_assert(wire_table_get(caps.v.table, "consumer_cancel_notify", &v) && v.v.b);

    /* The rest, step by step as nethost_handshake does it. */
    struct wire_method so = {.id = WIRE_CONNECTION_START_OK};
    so.u.connection_start_ok.mechanism = WIRE_STR_LIT("PLAIN");
    so.u.connection_start_ok.response = WIRE_STR_LIT("\0guest\0guest");
    so.u.connection_start_ok.locale = WIRE_STR_LIT("en_US");
    send_method(p, 0, so);
    EXPECT(p, 0, WIRE_CONNECTION_TUNE, &f);
    ck_assert_uint_eq(f.m.u.connection_tune.channel_max, 2047);
    ck_assert_uint_eq(f.m.u.connection_tune.frame_max, 131072);
    ck_assert_uint_eq(f.m.u.connection_tune.heartbeat, 60);
    struct wire_method t = {.id = WIRE_CONNECTION_TUNE_OK};
    t.u.connection_tune_ok.channel_max = 2047;
    t.u.connection_tune_ok.frame_max = 131072;
    send_method(p, 0, t);
    struct wire_method o = {.id = WIRE_CONNECTION_OPEN};
    o.u.connection_open.virtual_host = WIRE_STR_LIT("/");
    send_method(p, 0, o);
    EXPECT(p, 0, WIRE_CONNECTION_OPEN_OK, &f);

    /* The client closes: close-ok, then the server closes the socket. */
    struct wire_method c = {.id = WIRE_CONNECTION_CLOSE};
    c.u.connection_close.reply_code = 200;
    c.u.connection_close.reply_text = WIRE_STR_LIT("done");
    send_method(p, 0, c);
    EXPECT(p, 0, WIRE_CONNECTION_CLOSE_OK, &f);
    OK(p, nethost_expect_eof(p));
    finish();
}
END_TEST

static const struct {
    const char *what, *peer_ip, *user, *password;
    bool ok;
} logins[] = {
    {"guest from loopback", NULL, "guest", "guest", true},
    {"guest from another host", "10.0.0.1", "guest", "guest", false},
    {"wrong password", NULL, "guest", "guess", false},
    {"unknown user", NULL, "nobody", "guest", false},
};

/* A refused login, told to a client with authentication_failure_close, is a connection.close
 * 403 with RabbitMQ's text; the client's close-ok ends the connection. */
START_TEST(test_login)
{
    start_host();
    struct nethost_peer *p = nethost_connect(&host, logins[_i].peer_ip);
    ck_assert_ptr_nonnull(p);
    OK(p, nethost_login(p, logins[_i].user, logins[_i].password));
    struct nethost_frame f;
    if (logins[_i].ok) {
        EXPECT(p, 0, WIRE_CONNECTION_TUNE, &f);
    } else {
        expect_close(p, 0, WIRE_CONNECTION_CLOSE, WIRE_ACCESS_REFUSED, 0,
                     "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
                     "For details see the broker logfile.");
        close_ok_and_eof(p);
    }
    finish();
}
END_TEST

/* ---- channels ---- */

/* Open, close by the client, reopen the same number, a second channel, flow. */
START_TEST(test_channel_open_close)
{
    struct nethost_peer *p = start();
    struct nethost_frame f;
    open_channel(p, 1);
    send_method(p, 1, channel_close(200));
    EXPECT(p, 1, WIRE_CHANNEL_CLOSE_OK, &f);
    open_channel(p, 1);
    open_channel(p, 65535);
    struct wire_method flow = {.id = WIRE_CHANNEL_FLOW};
    flow.u.channel_flow.active = true;
    send_method(p, 65535, flow);
    EXPECT(p, 65535, WIRE_CHANNEL_FLOW_OK, &f);
    ck_assert(f.m.u.channel_flow_ok.active);
    send_method(p, 65535, channel_close(200));
    send_method(p, 1, channel_close(200));
    EXPECT(p, 65535, WIRE_CHANNEL_CLOSE_OK, &f);
    EXPECT(p, 1, WIRE_CHANNEL_CLOSE_OK, &f);
    OK(p, nethost_expect_quiet(p));
    finish();
}
END_TEST

/* A soft error closes the channel from the server's side. Until the client's close-ok, the
 * channel drops everything (a declare, a whole publish with its content) and the connection
 * stays up; after it, the number can be opened again and the dropped declare never happened. */
START_TEST(test_channel_soft_error_and_reuse)
{
    struct nethost_peer *p = start();
    open_channel(p, 1);
    open_channel(p, 2);
    struct wire_method passive = nethost_queue_declare("nope", false, false);
    passive.u.queue_declare.passive = true;
    send_method(p, 1, passive);
    expect_close(p, 1, WIRE_CHANNEL_CLOSE, WIRE_NOT_FOUND, WIRE_QUEUE_DECLARE,
                 "NOT_FOUND - no queue 'nope' in vhost '/'");
    send_method(p, 1, nethost_queue_declare("dropped", false, false));
    ck_assert_int_eq(nethost_publish(p, 1, "", "dropped", "x", 1), 0);
    OK(p, nethost_expect_quiet(p));
    /* The other channel is unaffected. */
    declare(p, 2, "q", false, false);
    send_method(p, 1, (struct wire_method){.id = WIRE_CHANNEL_CLOSE_OK});
    open_channel(p, 1);
    expect_queue(p, 1, "q", 0, 0);
    passive.u.queue_declare.queue = WIRE_STR_LIT("dropped");
    send_method(p, 1, passive);
    expect_close(p, 1, WIRE_CHANNEL_CLOSE, WIRE_NOT_FOUND, WIRE_QUEUE_DECLARE,
                 "NOT_FOUND - no queue 'dropped' in vhost '/'");
    finish();
}
END_TEST

/* The server's channel.close crosses the client's: the client's close is answered with
 * close-ok, and the client's close-ok then frees the number. */
START_TEST(test_channel_close_crossing)
{
    struct nethost_peer *p = start();
    struct nethost_frame f;
    open_channel(p, 7);
    struct wire_method del = {.id = WIRE_EXCHANGE_DELETE};
    del.u.exchange_delete.exchange = WIRE_STR_LIT("amq.direct");
    send_method(p, 7, del);
    expect_close(p, 7, WIRE_CHANNEL_CLOSE, WIRE_ACCESS_REFUSED, WIRE_EXCHANGE_DELETE,
                 "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not "
                 "allowed");
    send_method(p, 7, channel_close(200));
    EXPECT(p, 7, WIRE_CHANNEL_CLOSE_OK, &f);
    send_method(p, 7, (struct wire_method){.id = WIRE_CHANNEL_CLOSE_OK});
    open_channel(p, 7);
    finish();
}
END_TEST

/* ---- hard errors ---- */

/* Each sender below runs with channel 1 open. */
static void
send_second_open(struct nethost_peer *p)
{
    send_method(p, 1, (struct wire_method){.id = WIRE_CHANNEL_OPEN});
}

static void
send_on_unopened(struct nethost_peer *p)
{
    send_method(p, 3, nethost_queue_declare("q", false, false));
}

static void
send_stray_close_ok(struct nethost_peer *p)
{
    send_method(p, 1, (struct wire_method){.id = WIRE_CHANNEL_CLOSE_OK});
}

static void
send_flow_off(struct nethost_peer *p)
{
    send_method(p, 1, (struct wire_method){.id = WIRE_CHANNEL_FLOW});
}

static void
send_method_on_channel0(struct nethost_peer *p)
{
    send_method(p, 0, nethost_queue_declare("q", false, false));
}

static void
send_server_method(struct nethost_peer *p)
{
    struct wire_method m = {.id = WIRE_BASIC_DELIVER};
    m.u.basic_deliver.consumer_tag = WIRE_STR_LIT("c");
    send_method(p, 1, m);
}

static void
send_second_connection_open(struct nethost_peer *p)
{
    struct wire_method m = {.id = WIRE_CONNECTION_OPEN};
    m.u.connection_open.virtual_host = WIRE_STR_LIT("/");
    send_method(p, 0, m);
}

static void
send_qos_prefetch_size(struct nethost_peer *p)
{
    struct wire_method m = {.id = WIRE_BASIC_QOS};
    m.u.basic_qos.prefetch_size = 1000;
    send_method(p, 1, m);
}

static void
send_bad_frame_end(struct nethost_peer *p)
{
    static const uint8_t bad[] = {WIRE_FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, 0xCD};
    ck_assert_int_eq(nethost_send(p, bad, sizeof(bad)), 0);
}

static const struct {
    const char *what;
    void (*send)(struct nethost_peer *p);
    uint16_t code;
    uint32_t method;
    const char *text;
    bool no_close_ok; /* the stream cannot be trusted: the server closes without waiting */
} hard_errors[] = {
    {"second channel.open", send_second_open, WIRE_CHANNEL_ERROR, WIRE_CHANNEL_OPEN,
     "CHANNEL_ERROR - second 'channel.open' seen", false},
    {"method on a channel not open", send_on_unopened, WIRE_CHANNEL_ERROR, WIRE_QUEUE_DECLARE,
     "CHANNEL_ERROR - expected 'channel.open'", false},
    {"close-ok for no close", send_stray_close_ok, WIRE_COMMAND_INVALID, WIRE_CHANNEL_CLOSE_OK,
     "COMMAND_INVALID - unimplemented method", false},
    {"channel.flow active=false", send_flow_off, WIRE_NOT_IMPLEMENTED, WIRE_CHANNEL_FLOW,
     "NOT_IMPLEMENTED - active=false", false},
    {"queue.declare on channel 0", send_method_on_channel0, WIRE_CHANNEL_ERROR, WIRE_QUEUE_DECLARE,
     "CHANNEL_ERROR - queue.declare on channel 0", false},
    {"a method only servers send", send_server_method, WIRE_COMMAND_INVALID, WIRE_BASIC_DELIVER,
     "COMMAND_INVALID - basic.deliver is sent by servers, not clients", false},
    {"connection.open again", send_second_connection_open, WIRE_CHANNEL_ERROR, WIRE_CONNECTION_OPEN,
     "CHANNEL_ERROR - unexpected connection.open on channel 0", false},
    {"basic.qos prefetch_size", send_qos_prefetch_size, WIRE_NOT_IMPLEMENTED, WIRE_BASIC_QOS,
     "NOT_IMPLEMENTED - prefetch_size!=0 (1000)", false},
    {"frame-end octet not 0xCE", send_bad_frame_end, WIRE_FRAME_ERROR, 0,
     "FRAME_ERROR - frame-end octet 0xCD, expected 0xCE", true},
};

/* A hard error is a connection.close. After it the server ignores everything but close and
 * close-ok (a channel.open sent now gets no answer); close-ok ends the connection. A frame
 * that breaks the framing ends it at once. */
START_TEST(test_hard_error)
{
    struct nethost_peer *p = start();
    open_channel(p, 1);
    hard_errors[_i].send(p);
    expect_close(p, 0, WIRE_CONNECTION_CLOSE, hard_errors[_i].code, hard_errors[_i].method,
                 hard_errors[_i].text);
    if (hard_errors[_i].no_close_ok) {
        OK(p, nethost_expect_eof(p));
        finish();
        return;
    }
    send_method(p, 9, (struct wire_method){.id = WIRE_CHANNEL_OPEN});
    OK(p, nethost_expect_quiet(p));
    close_ok_and_eof(p);
    finish();
}
END_TEST

/* ---- content ---- */

static const struct {
    const char *what;
    size_t len, max_payload; /* body bytes, split in frames of at most max_payload */
} splits[] = {
    {"empty body, no body frame", 0, 0},
    {"one frame", 10, 0},
    {"three frames 4+4+2", 10, 4},
    {"one byte per frame", 17, 1},
    /* Frames of 16 KiB and more go from the input buffer straight into the message. */
    {"three large frames", 3 * 40000 + 123, 40000},
    {"a body over frame_max, sent back in two frames", 200000, 100000},
};

/* A message published in several body frames comes back whole from basic.get, and a consumer
 * gets it too. */
START_TEST(test_content_split)
{
    struct nethost_peer *p = start();
    struct nethost_frame f;
    size_t len = splits[_i].len;
    static uint8_t body[200000], got[200000];
    for (size_t i = 0; i < len; i++)
        body[i] = (uint8_t)(i * 7 + _i);
    open_channel(p, 1);
    declare(p, 1, "q", false, false);
    for (int round = 0; round < 2; round++) {
        struct wire_method pub = {.id = WIRE_BASIC_PUBLISH};
        pub.u.basic_publish.routing_key = WIRE_STR_LIT("q");
        send_method(p, 1, pub);
        ck_assert_int_eq(nethost_send_content(p, 1, NULL, 0, body, len, splits[_i].max_payload), 0);
    }
    struct wire_method get = {.id = WIRE_BASIC_GET};
    get.u.basic_get.queue = WIRE_STR_LIT("q");
    get.u.basic_get.no_ack = true;
    send_method(p, 1, get);
    EXPECT(p, 1, WIRE_BASIC_GET_OK, &f);
    ck_assert_uint_eq(f.m.u.basic_get_ok.message_count, 1);
    size_t n;
    OK(p, nethost_expect_content(p, 1, got, sizeof(got), &n));
    ck_assert_uint_eq(n, len);
    ck_assert_int_eq(memcmp(got, body, len), 0);
    consume(p, 1, "q", "c", true);
    EXPECT(p, 1, WIRE_BASIC_DELIVER, &f);
    OK(p, nethost_expect_content(p, 1, got, sizeof(got), &n));
    ck_assert_uint_eq(n, len);
    ck_assert_int_eq(memcmp(got, body, len), 0);
    finish();
}
END_TEST

static void
send_header(struct nethost_peer *p, uint16_t ch, uint16_t class_id, uint64_t size)
{
    static const uint8_t no_props[2] = {0, 0};
    ck_assert_int_eq(frame_write_content_header(p->out, ch, class_id, size, no_props, 2), 0);
}

static void
send_body(struct nethost_peer *p, uint16_t ch, size_t len)
{
    static const uint8_t zeros[40000];
    ck_assert_uint_le(len, sizeof(zeros));
    ck_assert_int_eq(frame_write_body(p->out, ch, zeros, len, UINT32_MAX), 0);
}

static void
send_publish(struct nethost_peer *p, uint16_t ch)
{
    struct wire_method m = {.id = WIRE_BASIC_PUBLISH};
    m.u.basic_publish.routing_key = WIRE_STR_LIT("q");
    send_method(p, ch, m);
}

static void
send_body_overrun(struct nethost_peer *p)
{
    send_publish(p, 1);
    send_header(p, 1, WIRE_CLASS_BASIC, 5);
    send_body(p, 1, 3);
    send_body(p, 1, 3);
}

static void
send_large_body_overrun(struct nethost_peer *p)
{
    send_publish(p, 1);
    send_header(p, 1, WIRE_CLASS_BASIC, 30000);
    send_body(p, 1, 20000);
    send_body(p, 1, 20000);
}

static void
send_header_without_method(struct nethost_peer *p)
{
    send_header(p, 1, WIRE_CLASS_BASIC, 5);
}

static void
send_body_without_header(struct nethost_peer *p)
{
    send_publish(p, 1);
    send_body(p, 1, 5);
}

static void
send_body_without_method(struct nethost_peer *p)
{
    send_body(p, 1, 5);
}

static void
send_method_instead_of_header(struct nethost_peer *p)
{
    send_publish(p, 1);
    send_publish(p, 1);
}

static void
send_method_instead_of_body(struct nethost_peer *p)
{
    send_publish(p, 1);
    send_header(p, 1, WIRE_CLASS_BASIC, 5);
    send_method(p, 1, nethost_queue_declare("q", false, false));
}

static void
send_header_of_other_class(struct nethost_peer *p)
{
    send_publish(p, 1);
    send_header(p, 1, WIRE_CLASS_QUEUE, 5);
}

static void
send_second_header(struct nethost_peer *p)
{
    send_publish(p, 1);
    send_header(p, 1, WIRE_CLASS_BASIC, 5);
    send_body(p, 1, 2);
    send_header(p, 1, WIRE_CLASS_BASIC, 5);
}

static void
send_body_on_unopened(struct nethost_peer *p)
{
    send_body(p, 5, 5);
}

static void
send_header_on_channel0(struct nethost_peer *p)
{
    send_header(p, 0, WIRE_CLASS_BASIC, 5);
}

static const struct {
    const char *what;
    void (*send)(struct nethost_peer *p);
    uint16_t code;
    uint32_t method;
    const char *text;
} content_errors[] = {
    {"body overruns its header", send_body_overrun, WIRE_FRAME_ERROR, 0,
     "FRAME_ERROR - content body frame of 3 bytes overruns the 5 declared in the content "
     "header"},
    {"large body frame overruns its header", send_large_body_overrun, WIRE_FRAME_ERROR, 0,
     "FRAME_ERROR - content body frame of 20000 bytes overruns the 30000 declared in the "
     "content header"},
    {"content header without a method", send_header_without_method, WIRE_UNEXPECTED_FRAME, 0,
     "UNEXPECTED_FRAME - expected method frame, got non method frame instead"},
    {"body without a header", send_body_without_header, WIRE_UNEXPECTED_FRAME, 0,
     "UNEXPECTED_FRAME - expected content header, got content body instead"},
    {"body without a method", send_body_without_method, WIRE_UNEXPECTED_FRAME, 0,
     "UNEXPECTED_FRAME - expected method frame, got non method frame instead"},
    {"method instead of a content header", send_method_instead_of_header, WIRE_UNEXPECTED_FRAME,
     WIRE_BASIC_PUBLISH,
     "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame "
     "instead"},
    {"method instead of a body", send_method_instead_of_body, WIRE_UNEXPECTED_FRAME,
     WIRE_QUEUE_DECLARE,
     "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame "
     "instead"},
    {"content header of another class", send_header_of_other_class, WIRE_UNEXPECTED_FRAME, 0,
     "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50"},
    {"second content header", send_second_header, WIRE_UNEXPECTED_FRAME, 0,
     "UNEXPECTED_FRAME - expected method frame, got non method frame instead"},
    {"body on a channel not open", send_body_on_unopened, WIRE_UNEXPECTED_FRAME, 0,
     "UNEXPECTED_FRAME - expected method frame, got non method frame instead"},
    {"content header on channel 0", send_header_on_channel0, WIRE_UNEXPECTED_FRAME, 0,
     "UNEXPECTED_FRAME - content frame (type 2) on channel 0"},
};

/* Content frames out of place (505) and bodies past their header's size (501) are connection
 * errors; the partial message is freed with the connection. */
START_TEST(test_content_error)
{
    struct nethost_peer *p = start();
    open_channel(p, 1);
    declare(p, 1, "q", false, false);
    content_errors[_i].send(p);
    expect_close(p, 0, WIRE_CONNECTION_CLOSE, content_errors[_i].code, content_errors[_i].method,
                 content_errors[_i].text);
    close_ok_and_eof(p);
    ck_assert_uint_eq(msg_bytes_live, 0);
    struct nethost_peer *p2 = start_peer();
    open_channel(p2, 1);
    expect_queue(p2, 1, "q", 0, 0);
    finish();
}
END_TEST

/* A publish refused by a soft error, at the method (no such exchange) or at its header (over
 * max_message_size), still has its content on the way: the closing channel takes it as content
 * and drops it, and the connection carries on. */
START_TEST(test_content_dropped_by_closing_channel)
{
    struct nethost_peer *p = start();
    host.conf.max_message_size = 100;
    open_channel(p, 1);
    declare(p, 1, "q", false, false);
    static const uint8_t body[300];
    ck_assert_int_eq(nethost_publish(p, 1, "nope", "q", body, 10), 0);
    expect_close(p, 1, WIRE_CHANNEL_CLOSE, WIRE_NOT_FOUND, WIRE_BASIC_PUBLISH,
                 "NOT_FOUND - no exchange 'nope' in vhost '/'");
    send_method(p, 1, (struct wire_method){.id = WIRE_CHANNEL_CLOSE_OK});
    open_channel(p, 1);
    send_publish(p, 1);
    ck_assert_int_eq(nethost_send_content(p, 1, NULL, 0, body, 300, 100), 0);
    expect_close(p, 1, WIRE_CHANNEL_CLOSE, WIRE_PRECONDITION_FAILED, WIRE_BASIC_PUBLISH,
                 "PRECONDITION_FAILED - message size 300 is larger than configured max size "
                 "100");
    OK(p, nethost_expect_quiet(p));
    ck_assert_uint_eq(msg_bytes_live, 0);
    send_method(p, 1, (struct wire_method){.id = WIRE_CHANNEL_CLOSE_OK});
    open_channel(p, 1);
    expect_queue(p, 1, "q", 0, 0);
    finish();
}
END_TEST

/* ---- teardown while handlers run ---- */

/* A connection exception while a channel holds a consumer and unacked deliveries, the last
 * delivery made by a publish in the same read as the error: the connection goes, and every
 * delivery is back in its queue, in order, redelivered. */
START_TEST(test_hard_error_requeues_unacked)
{
    struct nethost_peer *p = start();
    open_channel(p, 1);
    open_channel(p, 2);
    declare(p, 1, "q", false, false);
    consume(p, 1, "q", "c1", false);
    publish(p, 2, "q", "m1");
    publish(p, 2, "q", "m2");
    expect_delivery(p, 1, "m1", false);
    expect_delivery(p, 1, "m2", false);
    /* One write: a publish whose delivery goes to this connection's consumer, then an error. */
    publish(p, 2, "q", "m3");
    send_method(p, 2, (struct wire_method){.id = WIRE_CHANNEL_OPEN});
    expect_delivery(p, 1, "m3", false);
    expect_close(p, 0, WIRE_CONNECTION_CLOSE, WIRE_CHANNEL_ERROR, WIRE_CHANNEL_OPEN,
                 "CHANNEL_ERROR - second 'channel.open' seen");
    close_ok_and_eof(p);

    struct nethost_peer *p2 = start_peer();
    open_channel(p2, 1);
    expect_queue(p2, 1, "q", 3, 0);
    expect_get(p2, 1, "q", "m1", true);
    expect_get(p2, 1, "q", "m2", true);
    expect_get(p2, 1, "q", "m3", true);
    ck_assert_uint_eq(msg_bytes_live, 0);
    finish();
}
END_TEST

/* The error comes in the same read as a publish whose consumer is on the same connection but
 * before the consumer could be given it: the message stays ready in its queue. */
START_TEST(test_hard_error_after_publish_same_read)
{
    struct nethost_peer *p = start();
    open_channel(p, 1);
    open_channel(p, 2);
    declare(p, 1, "q", false, false);
    /* Prefetch 1 and one delivery unacked: the next publish is not delivered. */
    struct wire_method qos = {.id = WIRE_BASIC_QOS};
    qos.u.basic_qos.prefetch_count = 1;
    send_method(p, 1, qos);
    struct nethost_frame f;
    EXPECT(p, 1, WIRE_BASIC_QOS_OK, &f);
    consume(p, 1, "q", "c1", false);
    publish(p, 2, "q", "m1");
    uint64_t tag = expect_delivery(p, 1, "m1", false);
    publish(p, 2, "q", "m2");
    /* The ack frees the prefetch: m2 goes to the consumer, then the overrun closes all. */
    struct wire_method ack = {.id = WIRE_BASIC_ACK};
    ack.u.basic_ack.delivery_tag = tag;
    send_method(p, 1, ack);
    send_body_overrun(p);
    expect_delivery(p, 1, "m2", false);
    expect_close(p, 0, WIRE_CONNECTION_CLOSE, WIRE_FRAME_ERROR, 0,
                 "FRAME_ERROR - content body frame of 3 bytes overruns the 5 declared in the "
                 "content header");
    close_ok_and_eof(p);
    struct nethost_peer *p2 = start_peer();
    open_channel(p2, 1);
    expect_queue(p2, 1, "q", 1, 0);
    expect_get(p2, 1, "q", "m2", true);
    finish();
}
END_TEST

/* Closing a channel whose consumer holds the last interest in an auto-delete queue: the queue
 * goes with the consumer, and the deliveries it had unacked go with the queue. */
START_TEST(test_close_channel_auto_delete_queue)
{
    struct nethost_peer *p = start();
    struct nethost_frame f;
    open_channel(p, 1);
    open_channel(p, 2);
    declare(p, 1, "ad", false, true);
    consume(p, 1, "ad", "c1", false);
    publish(p, 2, "ad", "m1");
    publish(p, 2, "ad", "m2");
    expect_delivery(p, 1, "m1", false);
    expect_delivery(p, 1, "m2", false);
    publish(p, 2, "ad", "m3"); /* delivered as the channel closes: it is in the same read */
    send_method(p, 1, channel_close(200));
    expect_delivery(p, 1, "m3", false);
    EXPECT(p, 1, WIRE_CHANNEL_CLOSE_OK, &f);
    ck_assert_uint_eq(msg_bytes_live, 0);
    struct wire_method passive = nethost_queue_declare("ad", false, false);
    passive.u.queue_declare.passive = true;
    send_method(p, 2, passive);
    expect_close(p, 2, WIRE_CHANNEL_CLOSE, WIRE_NOT_FOUND, WIRE_QUEUE_DECLARE,
                 "NOT_FOUND - no queue 'ad' in vhost '/'");
    finish();
}
END_TEST

/* A connection exception with the same channel holding an auto-delete queue's consumer, a
 * transaction with publishes and acks pending, and a second channel in confirm mode with a
 * message half received: everything is released, the transaction's ack undone. */
START_TEST(test_hard_error_tx_confirm_partial)
{
    struct nethost_peer *p = start();
    struct nethost_frame f;
    open_channel(p, 1);
    open_channel(p, 2);
    declare(p, 1, "q", false, false);
    declare(p, 1, "ad", false, true);
    publish(p, 2, "q", "m1");
    publish(p, 2, "ad", "a1");
    send_method(p, 1, (struct wire_method){.id = WIRE_TX_SELECT});
    EXPECT(p, 1, WIRE_TX_SELECT_OK, &f);
    consume(p, 1, "q", "c1", false);
    uint64_t tag = expect_delivery(p, 1, "m1", false);
    consume(p, 1, "ad", "c2", false);
    expect_delivery(p, 1, "a1", false);
    struct wire_method ack = {.id = WIRE_BASIC_ACK};
    ack.u.basic_ack.delivery_tag = tag;
    send_method(p, 1, ack);
    publish(p, 1, "q", "t1");
    send_method(p, 2, (struct wire_method){.id = WIRE_CONFIRM_SELECT});
    EXPECT(p, 2, WIRE_CONFIRM_SELECT_OK, &f);
    send_publish(p, 2);
    send_header(p, 2, WIRE_CLASS_BASIC, 100);
    send_body(p, 2, 40);
    OK(p, nethost_expect_quiet(p));
    ck_assert_uint_ne(msg_bytes_live, 0);
    send_method(p, 3, (struct wire_method){.id = WIRE_BASIC_QOS});
    expect_close(p, 0, WIRE_CONNECTION_CLOSE, WIRE_CHANNEL_ERROR, WIRE_BASIC_QOS,
                 "CHANNEL_ERROR - expected 'channel.open'");
    close_ok_and_eof(p);
    struct nethost_peer *p2 = start_peer();
    open_channel(p2, 1);
    expect_queue(p2, 1, "q", 1, 0);
    expect_get(p2, 1, "q", "m1", true);
    struct wire_method passive = nethost_queue_declare("ad", false, false);
    passive.u.queue_declare.passive = true;
    send_method(p2, 1, passive);
    expect_close(p2, 1, WIRE_CHANNEL_CLOSE, WIRE_NOT_FOUND, WIRE_QUEUE_DECLARE,
                 "NOT_FOUND - no queue 'ad' in vhost '/'");
    ck_assert_uint_eq(msg_bytes_live, 0);
    finish();
}
END_TEST

/* Deliveries requeued by one connection's exception go to another connection's consumer as
 * soon as it has room. Both consumers have a prefetch of 1. */
START_TEST(test_requeued_to_other_connection)
{
    struct nethost_peer *p = start();
    struct nethost_peer *p2 = start_peer();
    struct nethost_frame f;
    struct wire_method qos = {.id = WIRE_BASIC_QOS};
    qos.u.basic_qos.prefetch_count = 1;
    open_channel(p, 1);
    declare(p, 1, "q", false, false);
    send_method(p, 1, qos);
    EXPECT(p, 1, WIRE_BASIC_QOS_OK, &f);
    consume(p, 1, "q", "c1", false);
    publish(p, 1, "q", "m1");
    expect_delivery(p, 1, "m1", false);
    open_channel(p2, 1);
    send_method(p2, 1, qos);
    EXPECT(p2, 1, WIRE_BASIC_QOS_OK, &f);
    consume(p2, 1, "q", "c2", false);
    publish(p2, 1, "q", "m2");
    uint64_t tag = expect_delivery(p2, 1, "m2", false);
    send_second_open(p);
    expect_close(p, 0, WIRE_CONNECTION_CLOSE, WIRE_CHANNEL_ERROR, WIRE_CHANNEL_OPEN,
                 "CHANNEL_ERROR - second 'channel.open' seen");
    /* m1 is back in the queue, waiting for c2's prefetch. */
    OK(p2, nethost_expect_quiet(p2));
    struct wire_method ack = {.id = WIRE_BASIC_ACK};
    ack.u.basic_ack.delivery_tag = tag;
    send_method(p2, 1, ack);
    expect_delivery(p2, 1, "m1", true);
    close_ok_and_eof(p);
    finish();
}
END_TEST

/* The client hangs up (no close) holding an exclusive queue with a consumer and an unacked
 * delivery, and half a message: the queue goes with it and nothing is left of the messages.
 * Meanwhile another connection cannot use the queue. */
START_TEST(test_hang_up_exclusive)
{
    struct nethost_peer *p = start();
    struct nethost_peer *p2 = start_peer();
    open_channel(p, 1);
    declare(p, 1, "ex", true, false);
    consume(p, 1, "ex", "c1", false);
    publish(p, 1, "ex", "m1");
    expect_delivery(p, 1, "m1", false);
    open_channel(p2, 1);
    struct wire_method passive = nethost_queue_declare("ex", false, false);
    passive.u.queue_declare.passive = true;
    send_method(p2, 1, passive);
    expect_close(p2, 1, WIRE_CHANNEL_CLOSE, WIRE_RESOURCE_LOCKED, WIRE_QUEUE_DECLARE,
                 "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'ex' in "
                 "vhost '/'. It could be originally declared on another connection or the "
                 "exclusive property value does not match that of the original declaration.");
    send_method(p2, 1, (struct wire_method){.id = WIRE_CHANNEL_CLOSE_OK});
    send_publish(p, 1);
    send_header(p, 1, WIRE_CLASS_BASIC, 1000);
    send_body(p, 1, 500);
    ck_assert_int_eq(nethost_settle(&host), 0);
    nethost_peer_close(p);
    ck_assert_int_eq(nethost_settle(&host), 0);
    ck_assert_uint_eq(msg_bytes_live, 0);
    open_channel(p2, 1);
    send_method(p2, 1, passive);
    expect_close(p2, 1, WIRE_CHANNEL_CLOSE, WIRE_NOT_FOUND, WIRE_QUEUE_DECLARE,
                 "NOT_FOUND - no queue 'ex' in vhost '/'");
    finish();
}
END_TEST

/* The client's own connection.close while it holds consumers and unacked deliveries on
 * several channels: close-ok, the end, and the deliveries back in the queue. */
START_TEST(test_client_close_requeues)
{
    struct nethost_peer *p = start();
    struct nethost_frame f;
    open_channel(p, 1);
    open_channel(p, 2);
    declare(p, 1, "q", false, false);
    consume(p, 1, "q", "c1", false);
    consume(p, 2, "q", "c2", false);
    publish(p, 1, "q", "m1");
    publish(p, 1, "q", "m2");
    expect_delivery(p, 1, "m1", false);
    expect_delivery(p, 2, "m2", false);
    struct wire_method c = {.id = WIRE_CONNECTION_CLOSE};
    c.u.connection_close.reply_code = 200;
    send_method(p, 0, c);
    EXPECT(p, 0, WIRE_CONNECTION_CLOSE_OK, &f);
    OK(p, nethost_expect_eof(p));
    struct nethost_peer *p2 = start_peer();
    open_channel(p2, 1);
    expect_queue(p2, 1, "q", 2, 0);
    expect_get(p2, 1, "q", "m1", true);
    expect_get(p2, 1, "q", "m2", true);
    finish();
}
END_TEST

/* ---- out of memory ---- */

/* basic.get runs out of memory recording its delivery: the connection is closed with 506,
 * and the message, which the client never saw, was not delivered: back in place, not
 * redelivered, and not counted towards x-delivery-limit (0: one return too many drops it). */
START_TEST(test_get_out_of_memory_is_no_delivery)
{
    struct nethost_peer *p = start();
    struct nethost_frame f;
    open_channel(p, 1);
    uint8_t args[64];
    struct wire_writer w;
    wire_writer_init(&w, args, sizeof(args));
    wire_table_put_i64(&w, "x-delivery-limit", 0);
    struct wire_method m = nethost_queue_declare("q", false, false);
    m.u.queue_declare.arguments = (struct wire_table){args, (uint32_t)wire_writer_len(&w)};
    send_method(p, 1, m);
    EXPECT(p, 1, WIRE_QUEUE_DECLARE_OK, &f);
    publish(p, 1, "q", "m1");
    expect_queue(p, 1, "q", 1, 0);
    struct wire_method get = {.id = WIRE_BASIC_GET};
    get.u.basic_get.queue = nethost_str("q");
    fail_idmap_insert = true;
    send_method(p, 1, get);
    expect_close(p, 0, WIRE_CONNECTION_CLOSE, WIRE_RESOURCE_ERROR, WIRE_BASIC_GET,
                 "RESOURCE_ERROR - out of memory");
    fail_idmap_insert = false;
    close_ok_and_eof(p);
    struct nethost_peer *p2 = start_peer();
    open_channel(p2, 1);
    expect_queue(p2, 1, "q", 1, 0);
    expect_get(p2, 1, "q", "m1", false);
    finish();
}
END_TEST

/* ---- administrative changes seen by open connections ---- */

/* A permission change applies to the next operation of an open channel, the publish cache
 * included (it was filled by the publishes before). */
START_TEST(test_permission_change_applies_at_once)
{
    struct nethost_peer *p = start();
    char err[256];
    open_channel(p, 1);
    declare(p, 1, "q", false, false);
    publish(p, 1, "q", "m1");
    expect_get(p, 1, "q", "m1", false);
    ck_assert_int_eq(
        admin_perm_set(host.admin, "guest", "/", ".*", "^q$", ".*", NULL, NULL, err, sizeof(err)),
        ADMIN_OK);
    publish(p, 1, "q", "m2");
    expect_close(p, 1, WIRE_CHANNEL_CLOSE, WIRE_ACCESS_REFUSED, WIRE_BASIC_PUBLISH,
                 "ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' refused for "
                 "user 'guest'");
    send_method(p, 1, (struct wire_method){.id = WIRE_CHANNEL_CLOSE_OK});
    ck_assert_int_eq(
        admin_perm_set(host.admin, "guest", "/", "^x$", ".*", "^$", NULL, NULL, err, sizeof(err)),
        ADMIN_OK);
    open_channel(p, 2);
    publish(p, 2, "q", "m3");
    struct wire_method m = {.id = WIRE_BASIC_GET};
    m.u.basic_get.queue = nethost_str("q");
    send_method(p, 2, m);
    expect_close(p, 2, WIRE_CHANNEL_CLOSE, WIRE_ACCESS_REFUSED, WIRE_BASIC_GET,
                 "ACCESS_REFUSED - access to queue 'q' in vhost '/' refused for user 'guest'");
    send_method(p, 2, (struct wire_method){.id = WIRE_CHANNEL_CLOSE_OK});
    /* Without any permission left on the vhost, nothing is allowed. */
    ck_assert_int_eq(admin_perm_clear(host.admin, "guest", "/", NULL, NULL, err, sizeof(err)),
                     ADMIN_OK);
    open_channel(p, 3);
    send_method(p, 3, nethost_queue_declare("q", false, false));
    expect_close(p, 3, WIRE_CHANNEL_CLOSE, WIRE_ACCESS_REFUSED, WIRE_QUEUE_DECLARE,
                 "ACCESS_REFUSED - access to queue 'q' in vhost '/' refused for user 'guest'");
    finish();
}
END_TEST

/* Deleting a user closes its connections with 320 (both of them); they still free cleanly. */
START_TEST(test_delete_user_closes_connections)
{
    struct nethost_peer *p = start();
    char err[256];
    open_channel(p, 1);
    declare(p, 1, "q", false, false);
    publish(p, 1, "q", "m1");
    consume(p, 1, "q", "c1", false);
    expect_delivery(p, 1, "m1", false);
    struct nethost_peer *p2 = start_peer();
    ck_assert_int_eq(admin_user_delete(host.admin, "guest", NULL, NULL, err, sizeof(err)),
                     ADMIN_OK);
    expect_close(p, 0, WIRE_CONNECTION_CLOSE, WIRE_CONNECTION_FORCED, 0,
                 "CONNECTION_FORCED - user 'guest' is deleted");
    expect_close(p2, 0, WIRE_CONNECTION_CLOSE, WIRE_CONNECTION_FORCED, 0,
                 "CONNECTION_FORCED - user 'guest' is deleted");
    close_ok_and_eof(p);
    close_ok_and_eof(p2);
    finish();
}
END_TEST

/* Deleting a vhost closes its connections with 320 and lets go of them at once: their
 * consumers, unacked deliveries and exclusive queues go, then the vhost with its queues and
 * messages; the next connection.open to it finds no vhost. */
START_TEST(test_delete_vhost_closes_connections)
{
    struct nethost_peer *p = start();
    char err[256];
    open_channel(p, 1);
    declare(p, 1, "q", false, false);
    declare(p, 1, "excl", true, false);
    publish(p, 1, "q", "m1");
    publish(p, 1, "q", "m2");
    consume(p, 1, "q", "c1", false);
    expect_delivery(p, 1, "m1", false);
    expect_delivery(p, 1, "m2", false);
    ck_assert_int_eq(admin_vhost_delete(host.admin, "/", NULL, NULL, err, sizeof(err)), ADMIN_OK);
    ck_assert_ptr_null(vhost_find(&host.vhosts, WIRE_STR_LIT("/")));
    ck_assert_uint_eq(msg_bytes_live, 0); /* the queues and their messages are gone */
    expect_close(p, 0, WIRE_CONNECTION_CLOSE, WIRE_CONNECTION_FORCED, 0,
                 "CONNECTION_FORCED - vhost '/' is deleted");
    close_ok_and_eof(p);
    struct nethost_peer *p2 = nethost_connect(&host, NULL);
    ck_assert_ptr_nonnull(p2);
    ck_assert_int_ne(nethost_handshake(p2), 0);
    ck_assert_msg(strstr(p2->why, "vhost / not found") != NULL, "%s", p2->why);
    finish();
}
END_TEST

static Suite *
net_suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("handshake");
    tcase_add_test(tc, test_handshake);
    tcase_add_loop_test(tc, test_login, 0, N_ELEMS(logins));
    suite_add_tcase(s, tc);
    tc = tcase_create("channels");
    tcase_add_test(tc, test_channel_open_close);
    tcase_add_test(tc, test_channel_soft_error_and_reuse);
    tcase_add_test(tc, test_channel_close_crossing);
    tcase_add_loop_test(tc, test_hard_error, 0, N_ELEMS(hard_errors));
    suite_add_tcase(s, tc);
    tc = tcase_create("content");
    tcase_add_loop_test(tc, test_content_split, 0, N_ELEMS(splits));
    tcase_add_loop_test(tc, test_content_error, 0, N_ELEMS(content_errors));
    tcase_add_test(tc, test_content_dropped_by_closing_channel);
    suite_add_tcase(s, tc);
    tc = tcase_create("teardown");
    tcase_add_test(tc, test_hard_error_requeues_unacked);
    tcase_add_test(tc, test_hard_error_after_publish_same_read);
    tcase_add_test(tc, test_close_channel_auto_delete_queue);
    tcase_add_test(tc, test_hard_error_tx_confirm_partial);
    tcase_add_test(tc, test_requeued_to_other_connection);
    tcase_add_test(tc, test_hang_up_exclusive);
    tcase_add_test(tc, test_client_close_requeues);
    suite_add_tcase(s, tc);
    tc = tcase_create("out of memory");
    tcase_add_test(tc, test_get_out_of_memory_is_no_delivery);
    suite_add_tcase(s, tc);
    tc = tcase_create("admin");
    tcase_add_test(tc, test_permission_change_applies_at_once);
    tcase_add_test(tc, test_delete_user_closes_connections);
    tcase_add_test(tc, test_delete_vhost_closes_connections);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(net_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
