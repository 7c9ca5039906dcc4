/* libFuzzer target for whole client sessions, past the codec. Each input is a fresh broker
 * (tests/nethost.h: the real connection, channel and broker code, no store, clients on
 * socketpairs) and a program that drives it: up to FZ_SLOTS connections at a time (four in
 * all) opened with a canned handshake, then opcodes turned into well-formed frames on a few
 * channels, with names from a tiny alphabet so that declarations, bindings, publishes and
 * consumers meet on the same queues and exchanges, ack tags taken relative to what was
 * delivered, replies to direct reply-to requests addressed to the token the server handed
 * out, and now and then a deliberate protocol error (a second channel.open, a body overrun, a
 * content frame out of place...) that closes the connection while its channels hold
 * consumers, unacked deliveries, transactions or half a message.
 *
 * Users and permissions: besides guest, the fixture makes a vhost v1 and users u0 and u1
 * whose permissions (warren/admin.h, PCRE2 patterns) allow some of the alphabet's names and
 * refuse others, a topic permission on amq.topic and a channel limit (fz_fixture_users);
 * connections log in as any of them on any vhost (FZ_OP_CONNECT's byte, the login refused
 * with 403 or the open with 530 where it must be), and FZ_OP_ADMIN makes administrative
 * changes in the middle of a session as the HTTP API does: permissions and topic permissions
 * set and cleared under open channels, users and vhosts deleted under connections holding
 * consumers, unacked messages and half-received content, made again, limits set.
 *
 * The frames are handed to the server in chunks the program chooses (cut anywhere, mid-frame
 * included), the loop runs until the server is idle between chunks, and everything the server
 * writes is parsed and checked: only valid frames of methods servers send (nethost_take);
 * content only after a content method and whole before anything else on its channel; nothing
 * on a channel that is not open, or that the server is closing, but close-ok; nothing after
 * connection.close but close-ok; the socket closed only after a connection.close, and always
 * after the close handshake; a 320 connection.close for, and only for, every connection open
 * when its user or vhost was deleted, by the next flush; no 403 "refused for user" for guest
 * on "/" or v1 until the program changed guest's permissions or a vhost. A server channel.close or
 * connection.close is answered with close-ok as a client does. After the program, every connection
 * is closed or hung up, the server freed, and no message may be left alive (msg_bytes_live). A
 * failed check aborts, so libFuzzer keeps the input.
 *
 * Opcodes. Each step reads an op byte: bit 7 picks the connection slot, the rest modulo
 * FZ_OP_COUNT the operation (enum fz_op), then the operation's argument bytes in the order
 * the handler reads them (fz_u8); an exhausted input reads zeros. FZ_OP_CONNECT reads one
 * byte: user (fz_users) in its value modulo 4, vhost (fz_vhosts) in its value / 4 modulo 3;
 * FZ_OP_ADMIN reads a kind (modulo 10, fz_admin), a user and a vhost byte, then the kind's. Before
 * the program, the first connection declares the objects the names mostly point to (fz_fixture) on
 * its channel 1, which stays open. `tests/fuzz/make_corpus.py --session` writes seed programs with
 * the same numbering. The same file is linked into tests/fuzz/fuzz_session_replay, which `make
 * check` runs over tests/fuzz/corpus-session and tests/fuzz/crashers-session; FUZZ_SESSION_LOG=1 in
 * the environment shows the server's log. */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "nethost.h"
#include "warren/admin.h"
#include "warren/log.h"
#include "warren/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_SLOTS 2
/* Channels the program uses: mostly 1..FZ_CHANNELS, where operations meet, now and then up to
 * FZ_MAX_CHANNEL (so that a connection's channel table grows), and FZ_STRAY_CHANNEL, which it
 * never opens. */
#define FZ_CHANNELS 4
#define FZ_MAX_CHANNEL 20
#define FZ_STRAY_CHANNEL 200
/* Bounds on one input's work, so that every run takes milliseconds. */
#define FZ_MAX_OPS 400
#define FZ_BODY_BUDGET (1u << 20)

struct fz_chan {
    bool open;                  /* the client's view: opened, and no close sent or received */
    bool tx, confirm;           /* the client's view: tx.select or confirm.select sent */
    bool reply_consumer;        /* the client's view: consuming from direct reply-to */
    bool srv_open;              /* the server's side, as its output shows: open-ok came, and
                                 * neither its channel.close nor the close-ok of ours */
    uint32_t closes_unanswered; /* our channel.close frames without a close-ok yet */
    uint64_t last_tag;          /* highest delivery tag the server gave on it */
    int content;                /* 0, 1: a content header is due, 2: body frames are due */
    uint64_t body_left;
};

struct fz_conn {
    struct nethost_peer *p;   /* borrows from the host; NULL: the slot is empty */
    struct evbuffer *pending; /* owns: frames made but not yet handed to the socket */
    bool server_closed;       /* the server sent connection.close */
    bool we_closed;           /* we sent connection.close */
    bool hung_up;             /* we closed the socket */
    bool gone;                /* the connection ended: the slot takes no more frames */
    uint8_t user, vhost;      /* indexes into fz_users and fz_vhosts: whom it logged in as */
    bool forced_ok;           /* its user or vhost was deleted: a 320 close may come */
    bool must_close;          /* ... while it was open: the 320 close must come */
    struct fz_chan ch[FZ_MAX_CHANNEL + 1];
};

struct fz {
    struct nethost host;
    struct fz_conn conns[FZ_SLOTS];
    unsigned n_connections;
    const uint8_t *in, *end;
    uint64_t body_budget;
    char reply_token[64]; /* the last "amq.rabbitmq.reply-to.<token>" seen in a delivery */
    /* An administrative change touched guest or "/" (guest's permissions, guest or "/"
     * deleted): guest's connections on "/" may then be refused access too. */
    bool guest_restricted;
};

#define FZ_FAIL(...)                                                                               \
    do {                                                                                           \
        fprintf(stderr, "fuzz_session: " __VA_ARGS__);                                             \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static uint8_t
fz_u8(struct fz *z)
{
    return z->in < z->end ? *z->in++ : 0;
}

/* ---- names: a tiny alphabet, so that operations meet on the same objects ---- */

/* The names the fixture declares come twice as often as the others: most operations should
 * act on something that exists. "" is the server-named or last declared queue, and the
 * default exchange. */
static const char *const fz_queues[] = {"q0", "q1", "q2", "q3", "q0",
                                        "q1", "q2", "q3", "",   "amq.q"};
static const char *const fz_exchanges[] = {
    "x0", "x1", "x2",         "x3",         "x0",        "x1",          "x2",
    "x3", "",   "amq.direct", "amq.fanout", "amq.topic", "amq.headers", "nope"};
static const char *const fz_keys[] = {"",     "k0", "k1", "k0.k1", "k1.k0", "#",   "*",
                                      "k0.#", "q0", "q1", "q2",    "q3",    "*.k1"};
static const char *const fz_types[] = {"direct", "fanout", "topic", "headers", "bogus"};
static const char *const fz_tags[] = {"", "c0", "c1", "c2"};

#define FZ_COUNT(table) (sizeof(table) / sizeof(table[0]))
#define FZ_PICK(z, table) (table[fz_u8(z) % FZ_COUNT(table)])

/* Users and vhosts (fz_fixture): guest may do anything on both vhosts; u0 only some things
 * on "/" (fz_fixture says which), with a topic permission on amq.topic and at most 3
 * channels; u1 anything on v1 and a little on "/"; u2 and v2 exist only once the program
 * makes them (FZ_OP_ADMIN). A user a program makes gets the password of this table. */
static const struct {
    const char *name, *password;
} fz_users[] = {{"guest", "guest"}, {"u0", "p0"}, {"u1", "p1"}, {"u2", "p2"}};
static const char *const fz_vhosts[] = {"/", "v1", "v2"};
/* Permission patterns: each allows some of the tiny alphabet's names and refuses others;
 * "" refuses everything, and the last one does not compile (refused: 400). */
static const char *const fz_patterns[] = {".*",          "",
                                          "^q[01]$",     "^(q0|x0|amq\\.default)$",
                                          "^x",          "^(q[0-3]|x[0-3]|amq\\..*)$",
                                          "^amq\\.",     "^k0",
                                          "^(k0|k1)\\.", "(q"};

/* ---- frames out ---- */

static void
fz_send(struct fz_conn *c, uint16_t ch, const struct wire_method *m)
{
    if (frame_write_method(c->pending, ch, m) < 0)
        FZ_FAIL("cannot encode %s", wire_method_name(m->id));
}

/* The client closed the channel, or answered the server's close: it starts afresh. */
static void
fz_chan_closed(struct fz_chan *ch)
{
    ch->open = false;
    ch->tx = false;
    ch->confirm = false;
    ch->reply_consumer = false;
}

/* The channel a byte picks: 1..FZ_CHANNELS, or with bit 7 set up to FZ_MAX_CHANNEL. */
static uint16_t
fz_channel_number(struct fz *z)
{
    uint8_t b = fz_u8(z);
    return (uint16_t)(b & 0x80 ? 1 + b % FZ_MAX_CHANNEL : 1 + b % FZ_CHANNELS);
}

/* The channel an operation uses (fz_channel_number), opened first if the client has not. */
static uint16_t
fz_channel(struct fz *z, struct fz_conn *c)
{
    uint16_t ch = fz_channel_number(z);
    if (!c->ch[ch].open) {
        fz_send(c, ch, &(struct wire_method){.id = WIRE_CHANNEL_OPEN});
        c->ch[ch].open = true;
    }
    return ch;
}

/* An argument table chosen by a byte's bits. Writes into buf; returns the table. */
static struct wire_table
fz_queue_args(struct fz *z, uint8_t *buf, size_t cap)
{
    static const char *const overflow[] = {"drop-head", "reject-publish", "bogus"};
    static const char *const types[] = {"classic", "quorum", "stream"};
    struct wire_writer w;
    wire_writer_init(&w, buf, cap);
    uint8_t bits = fz_u8(z), v = fz_u8(z);
    if (bits & 0x01)
        wire_table_put_i64(&w, "x-max-length", (int64_t)(v % 4) - 1);
    if (bits & 0x02)
        wire_table_put_i64(&w, "x-message-ttl", (int64_t)v * 10 - 20);
    if (bits & 0x04)
        wire_table_put_longstr(&w, "x-dead-letter-exchange", nethost_str(fz_exchanges[v % 4]));
    if (bits & 0x08)
        wire_table_put_longstr(&w, "x-overflow", nethost_str(overflow[v % 3]));
    if (bits & 0x10)
        wire_table_put_longstr(&w, "x-queue-type", nethost_str(types[v % 3]));
    if (bits & 0x20)
        wire_table_put_i64(&w, "x-max-priority", (int64_t)v - 2);
    if (bits & 0x40)
        wire_table_put_longstr(&w, "x-max-length", WIRE_STR_LIT("ten")); /* wrong type */
    if (bits & 0x80)
        wire_table_put_i64(&w, "x-expires", (int64_t)v * 1000);
    return (struct wire_table){buf, (uint32_t)wire_writer_len(&w)};
}

/* Binding arguments: for headers exchanges, x-match and a header or two. */
static struct wire_table
fz_bind_args(struct fz *z, uint8_t *buf, size_t cap)
{
    struct wire_writer w;
    wire_writer_init(&w, buf, cap);
    uint8_t bits = fz_u8(z);
    if (bits & 0x01)
        wire_table_put_longstr(&w, "x-match",
                               bits & 0x02 ? WIRE_STR_LIT("any") : WIRE_STR_LIT("all"));
    if (bits & 0x04)
        wire_table_put_longstr(&w, "h0", bits & 0x08 ? WIRE_STR_LIT("v1") : WIRE_STR_LIT("v0"));
    if (bits & 0x10)
        wire_table_put_i64(&w, "h1", bits >> 6);
    if (bits & 0x20)
        wire_table_put_longstr(&w, "x-match", WIRE_STR_LIT("bogus"));
    return (struct wire_table){buf, (uint32_t)wire_writer_len(&w)};
}

/* ---- operations ---- */

enum fz_op {
    FZ_OP_FLUSH = 0,
    FZ_OP_CHANNEL_CLOSE,
    FZ_OP_EXCHANGE_DECLARE,
    FZ_OP_EXCHANGE_DELETE,
    FZ_OP_EXCHANGE_BIND,
    FZ_OP_QUEUE_DECLARE,
    FZ_OP_QUEUE_BIND,
    FZ_OP_QUEUE_UNBIND,
    FZ_OP_QUEUE_PURGE,
    FZ_OP_QUEUE_DELETE,
    FZ_OP_QOS,
    FZ_OP_CONSUME,
    FZ_OP_CANCEL,
    FZ_OP_PUBLISH,
    FZ_OP_PUBLISH_REPLY,
    FZ_OP_GET,
    FZ_OP_ACK,
    FZ_OP_NACK,
    FZ_OP_REJECT,
    FZ_OP_RECOVER,
    FZ_OP_TX,
    FZ_OP_CONFIRM_SELECT,
    FZ_OP_FLOW,
    FZ_OP_CONNECTION_CLOSE,
    FZ_OP_HANG_UP,
    FZ_OP_CONNECT,
    FZ_OP_MISBEHAVE,
    FZ_OP_ADMIN,
    FZ_OP_COUNT,
};

static void
fz_exchange_declare(struct fz *z, struct fz_conn *c)
{
    uint16_t ch = fz_channel(z, c);
    uint8_t args[64], flags;
    struct wire_method m = {.id = WIRE_EXCHANGE_DECLARE};
    struct wire_exchange_declare *d = &m.u.exchange_declare;
    const char *name = FZ_PICK(z, fz_exchanges);
    uint8_t type = fz_u8(z);
    d->exchange = nethost_str(name);
    /* Mostly the fixture's type for its exchanges (another is refused: 406). */
    if (name[0] == 'x' && type < 0xc0)
        d->type = nethost_str(fz_types[name[1] - '0']);
    else
        d->type = nethost_str(fz_types[type % (sizeof(fz_types) / sizeof(fz_types[0]))]);
    flags = fz_u8(z);
    /* Properties other than the fixture's (refused for its exchanges) under bit 6 only. */
    d->passive = flags & 0x01;
    d->durable = (flags & 0x42) == 0x42;
    d->auto_delete = (flags & 0x44) == 0x44;
    d->internal = (flags & 0x48) == 0x48;
    d->no_wait = flags & 0x10;
    if (flags & 0x20) {
        struct wire_writer w;
        wire_writer_init(&w, args, sizeof(args));
        wire_table_put_longstr(&w, "alternate-exchange", nethost_str(FZ_PICK(z, fz_exchanges)));
        d->arguments = (struct wire_table){args, (uint32_t)wire_writer_len(&w)};
    }
    fz_send(c, ch, &m);
}

static void
fz_exchange_delete(struct fz *z, struct fz_conn *c)
{
    uint16_t ch = fz_channel(z, c);
    struct wire_method m = {.id = WIRE_EXCHANGE_DELETE};
    m.u.exchange_delete.exchange = nethost_str(FZ_PICK(z, fz_exchanges));
    uint8_t flags = fz_u8(z);
    m.u.exchange_delete.if_unused = (flags & 0x05) == 0x05;
    m.u.exchange_delete.no_wait = flags & 0x02;
    fz_send(c, ch, &m);
}

static void
fz_exchange_bind(struct fz *z, struct fz_conn *c)
{
    uint16_t ch = fz_channel(z, c);
    uint8_t args[128], flags = fz_u8(z);
    struct wire_method m = {.id = flags & 0x01 ? WIRE_EXCHANGE_UNBIND : WIRE_EXCHANGE_BIND};
    /* bind and unbind have the same fields */
    struct wire_exchange_bind *b = &m.u.exchange_bind;
    b->destination = nethost_str(FZ_PICK(z, fz_exchanges));
    b->source = nethost_str(FZ_PICK(z, fz_exchanges));
    b->routing_key = nethost_str(FZ_PICK(z, fz_keys));
    b->no_wait = flags & 0x02;
    b->arguments = fz_bind_args(z, args, sizeof(args));
    fz_send(c, ch, &m);
}

static void
fz_queue_declare(struct fz *z, struct fz_conn *c)
{
    uint16_t ch = fz_channel(z, c);
    uint8_t args[256];
    struct wire_method m = nethost_queue_declare(FZ_PICK(z, fz_queues), false, false);
    struct wire_queue_declare *d = &m.u.queue_declare;
    uint8_t flags = fz_u8(z);
    /* Properties other than the fixture's (refused for its queues) under bit 6 only. */
    d->passive = flags & 0x01;
    d->durable = (flags & 0x42) == 0x42;
    d->exclusive = (flags & 0x44) == 0x44;
    d->auto_delete = (flags & 0x48) == 0x48;
    d->no_wait = flags & 0x10;
    if (flags & 0x20)
        d->arguments = fz_queue_args(z, args, sizeof(args));
    fz_send(c, ch, &m);
}

static void
fz_queue_bind(struct fz *z, struct fz_conn *c, bool bind)
{
    uint16_t ch = fz_channel(z, c);
    uint8_t args[128];
    struct wire_method m = {.id = bind ? WIRE_QUEUE_BIND : WIRE_QUEUE_UNBIND};
    struct wire_str q = nethost_str(FZ_PICK(z, fz_queues));
    struct wire_str x = nethost_str(FZ_PICK(z, fz_exchanges));
    struct wire_str rk = nethost_str(FZ_PICK(z, fz_keys));
    struct wire_table t = fz_bind_args(z, args, sizeof(args));
    if (bind) {
        m.u.queue_bind = (struct wire_queue_bind){
            .queue = q, .exchange = x, .routing_key = rk, .no_wait = fz_u8(z) & 1, .arguments = t};
    } else {
        m.u.queue_unbind = (struct wire_queue_unbind){
            .queue = q, .exchange = x, .routing_key = rk, .arguments = t};
    }
    fz_send(c, ch, &m);
}

static void
fz_queue_purge_delete(struct fz *z, struct fz_conn *c, bool purge)
{
    uint16_t ch = fz_channel(z, c);
    struct wire_str q = nethost_str(FZ_PICK(z, fz_queues));
    uint8_t flags = fz_u8(z);
    struct wire_method m = {.id = purge ? WIRE_QUEUE_PURGE : WIRE_QUEUE_DELETE};
    if (purge)
        m.u.queue_purge = (struct wire_queue_purge){.queue = q, .no_wait = flags & 0x01};
    else
        m.u.queue_delete = (struct wire_queue_delete){.queue = q,
                                                      .if_unused = flags & 0x02,
                                                      .if_empty = flags & 0x04,
                                                      .no_wait = flags & 0x01};
    fz_send(c, ch, &m);
}

static void
fz_qos(struct fz *z, struct fz_conn *c)
{
    uint16_t ch = fz_channel(z, c);
    uint8_t v = fz_u8(z);
    struct wire_method m = {.id = WIRE_BASIC_QOS};
    m.u.basic_qos.prefetch_count = v % 4;
    m.u.basic_qos.global = v & 0x10;
    fz_send(c, ch, &m);
}

static void
fz_consume(struct fz *z, struct fz_conn *c)
{
    uint16_t ch = fz_channel(z, c);
    uint8_t args[64], flags;
    struct wire_method m = {.id = WIRE_BASIC_CONSUME};
    struct wire_basic_consume *b = &m.u.basic_consume;
    flags = fz_u8(z);
    b->queue =
        flags & 0x40 ? WIRE_STR_LIT("amq.rabbitmq.reply-to") : nethost_str(FZ_PICK(z, fz_queues));
    b->consumer_tag = nethost_str(FZ_PICK(z, fz_tags));
    /* A reply consumer must be no-ack (refused otherwise, rarely tried). */
    bool reply = flags & 0x40;
    b->no_ack = (flags & 0x01) || (reply && !(flags & 0x80));
    if (reply && b->no_ack)
        c->ch[ch].reply_consumer = true;
    b->exclusive = flags & 0x02;
    b->no_wait = flags & 0x04;
    b->no_local = flags & 0x08;
    if (flags & 0x30) {
        struct wire_writer w;
        wire_writer_init(&w, args, sizeof(args));
        if (flags & 0x10)
            wire_table_put_i64(&w, "x-priority", (int64_t)(flags >> 7) * 5 - 1);
        else
            wire_table_put_longstr(&w, "x-priority", WIRE_STR_LIT("high")); /* wrong type */
        b->arguments = (struct wire_table){args, (uint32_t)wire_writer_len(&w)};
    }
    fz_send(c, ch, &m);
}

static void
fz_cancel(struct fz *z, struct fz_conn *c)
{
    uint16_t ch = fz_channel(z, c);
    struct wire_method m = {.id = WIRE_BASIC_CANCEL};
    m.u.basic_cancel.consumer_tag = nethost_str(FZ_PICK(z, fz_tags));
    m.u.basic_cancel.no_wait = fz_u8(z) & 1;
    fz_send(c, ch, &m);
}

/* A content header and body frames for a body of a size a byte picks (bounded by the input's
 * budget), split in frames of a size another byte picks. */
static void
fz_content(struct fz *z, struct fz_conn *c, uint16_t ch, const uint8_t *props, size_t props_len)
{
    static const uint32_t sizes[] = {0, 1, 7, 100, 1000, 4096, 20000, 140000};
    static const uint32_t splits[] = {0, 1, 3, 50, 4096, 16384, 50000, 131064};
    static uint8_t body[140000];
    uint8_t sel = fz_u8(z);
    uint32_t len = sizes[sel % 8], payload = splits[(sel >> 3) % 8];
    if (len > z->body_budget)
        len = 7;
    z->body_budget -= len;
    if (payload == 0 || payload > 131064)
        payload = 131064;
    if (len / payload > 64) /* at most ~64 frames */
        payload = len / 64 + 1;
    if (body[1] == 0)
        for (size_t i = 0; i < sizeof(body); i++)
            body[i] = (uint8_t)(i * 31 + 1);
    if (frame_write_content_header(c->pending, ch, WIRE_CLASS_BASIC, len, props, props_len) < 0 ||
        (len > 0 && frame_write_body(c->pending, ch, body, len, payload + 8) < 0))
        FZ_FAIL("cannot encode content");
}

/* Properties chosen by a byte's bits: persistence, priority, headers for headers exchanges,
 * direct reply-to (mostly when the channel has a reply consumer, else it is refused), user_id
 * (now and then the wrong one, which is refused). */
static size_t
fz_props(struct fz *z, uint8_t *buf, size_t cap, bool reply_consumer)
{
    uint8_t hdrs[64], bits = fz_u8(z);
    struct wire_basic_props pr = {0};
    if (bits & 0x01) {
        pr.flags |= WIRE_BASIC_DELIVERY_MODE_FLAG;
        pr.delivery_mode = 2;
    }
    if (bits & 0x02) {
        pr.flags |= WIRE_BASIC_PRIORITY_FLAG;
        pr.priority = bits >> 5;
    }
    if (bits & 0x04) {
        struct wire_writer w;
        wire_writer_init(&w, hdrs, sizeof(hdrs));
        wire_table_put_longstr(&w, "h0", bits & 0x80 ? WIRE_STR_LIT("v1") : WIRE_STR_LIT("v0"));
        wire_table_put_i64(&w, "h1", (bits >> 6) & 1);
        pr.flags |= WIRE_BASIC_HEADERS_FLAG;
        pr.headers = (struct wire_table){hdrs, (uint32_t)wire_writer_len(&w)};
    }
    if ((bits & 0x08) && (reply_consumer || (bits & 0x40))) {
        pr.flags |= WIRE_BASIC_REPLY_TO_FLAG;
        pr.reply_to = WIRE_STR_LIT("amq.rabbitmq.reply-to");
    }
    if (bits & 0x10) {
        pr.flags |= WIRE_BASIC_USER_ID_FLAG;
        pr.user_id = (bits & 0x60) == 0x60 ? WIRE_STR_LIT("other") : WIRE_STR_LIT("guest");
    }
    struct wire_writer w;
    wire_writer_init(&w, buf, cap);
    if (wire_basic_props_encode(&pr, &w) < 0)
        FZ_FAIL("cannot encode properties");
    return wire_writer_len(&w);
}

static void
fz_publish(struct fz *z, struct fz_conn *c, bool reply)
{
    uint16_t ch = fz_channel(z, c);
    uint8_t props[256];
    struct wire_method m = {.id = WIRE_BASIC_PUBLISH};
    struct wire_basic_publish *b = &m.u.basic_publish;
    if (reply) {
        /* To the last reply-to token seen: the requester's channel, maybe gone by now. */
        b->routing_key =
            nethost_str(z->reply_token[0] != '\0' ? z->reply_token : "amq.rabbitmq.reply-to.x");
    } else {
        b->exchange = nethost_str(FZ_PICK(z, fz_exchanges));
        b->routing_key = nethost_str(FZ_PICK(z, fz_keys));
    }
    b->mandatory = fz_u8(z) & 1;
    fz_send(c, ch, &m);
    size_t n = fz_props(z, props, sizeof(props), c->ch[ch].reply_consumer);
    fz_content(z, c, ch, props, n);
}

static void
fz_get(struct fz *z, struct fz_conn *c)
{
    uint16_t ch = fz_channel(z, c);
    struct wire_method m = {.id = WIRE_BASIC_GET};
    m.u.basic_get.queue = nethost_str(FZ_PICK(z, fz_queues));
    m.u.basic_get.no_ack = fz_u8(z) & 1;
    fz_send(c, ch, &m);
}

/* ack, nack or reject of a tag a little below the last one delivered on the channel (0 with
 * multiple: everything). */
static void
fz_settle(struct fz *z, struct fz_conn *c, enum wire_method_id id)
{
    uint16_t ch = fz_channel(z, c);
    uint8_t v = fz_u8(z);
    uint64_t last = c->ch[ch].last_tag, back = v % 4;
    if (last == 0 && !(v & 0x40))
        return; /* nothing delivered yet: an unknown tag only now and then */
    uint64_t tag = v & 0x80 ? 0 : last > back ? last - back : back;
    bool multiple = v & 0x10, requeue = v & 0x20;
    struct wire_method m = {.id = id};
    if (id == WIRE_BASIC_ACK)
        m.u.basic_ack = (struct wire_basic_ack){.delivery_tag = tag, .multiple = multiple};
    else if (id == WIRE_BASIC_NACK)
        m.u.basic_nack =
            (struct wire_basic_nack){.delivery_tag = tag, .multiple = multiple, .requeue = requeue};
    else
        m.u.basic_reject = (struct wire_basic_reject){.delivery_tag = tag, .requeue = requeue};
    fz_send(c, ch, &m);
}

static void
fz_recover(struct fz *z, struct fz_conn *c)
{
    uint16_t ch = fz_channel(z, c);
    uint8_t v = fz_u8(z);
    struct wire_method m = {.id = v & 1 ? WIRE_BASIC_RECOVER_ASYNC : WIRE_BASIC_RECOVER};
    /* requeue=false is refused (540): rarely */
    if (v & 1)
        m.u.basic_recover_async.requeue = (v & 0x0e) != 0;
    else
        m.u.basic_recover.requeue = (v & 0x0e) != 0;
    fz_send(c, ch, &m);
}

/* tx.select, commit or rollback; a commit or rollback on a channel not in tx mode selects
 * it first, and a channel in confirm mode is switched (refused) only rarely. */
static void
fz_tx(struct fz *z, struct fz_conn *c)
{
    static const enum wire_method_id ids[] = {WIRE_TX_SELECT, WIRE_TX_COMMIT, WIRE_TX_COMMIT,
                                              WIRE_TX_ROLLBACK};
    uint16_t ch = fz_channel(z, c);
    uint8_t v = fz_u8(z);
    struct fz_chan *st = &c->ch[ch];
    if (st->confirm && !(v & 0x80))
        return;
    if (!st->tx && ids[v % 4] != WIRE_TX_SELECT)
        fz_send(c, ch, &(struct wire_method){.id = WIRE_TX_SELECT});
    st->tx = true;
    fz_send(c, ch, &(struct wire_method){.id = ids[v % 4]});
}

static void
fz_confirm_select(struct fz *z, struct fz_conn *c)
{
    uint16_t ch = fz_channel(z, c);
    uint8_t v = fz_u8(z);
    if (c->ch[ch].tx && !(v & 0x80))
        return;
    c->ch[ch].confirm = true;
    struct wire_method m = {.id = WIRE_CONFIRM_SELECT};
    m.u.confirm_select.nowait = v & 1;
    fz_send(c, ch, &m);
}

static void
fz_flow(struct fz *z, struct fz_conn *c)
{
    uint16_t ch = fz_channel(z, c);
    struct wire_method m = {.id = WIRE_CHANNEL_FLOW};
    m.u.channel_flow.active = (fz_u8(z) & 7) != 0; /* active=false is refused: rarely */
    fz_send(c, ch, &m);
}

static void
fz_channel_close(struct fz *z, struct fz_conn *c)
{
    uint16_t ch = fz_channel_number(z);
    struct wire_method m = {.id = WIRE_CHANNEL_CLOSE};
    m.u.channel_close.reply_code = 200;
    m.u.channel_close.reply_text = WIRE_STR_LIT("bye");
    if (!c->ch[ch].open)
        return; /* a close of a channel not open is a misbehaviour of its own (fz_misbehave) */
    fz_send(c, ch, &m);
    fz_chan_closed(&c->ch[ch]);
    c->ch[ch].closes_unanswered++;
}

/* Protocol errors a client can make with well-formed frames; each closes the connection
 * (or, for the heartbeat, nothing at all). */
static void
fz_misbehave(struct fz *z, struct fz_conn *c)
{
    uint8_t kind = fz_u8(z);
    uint16_t ch = fz_channel(z, c);
    struct wire_method pub = {.id = WIRE_BASIC_PUBLISH};
    pub.u.basic_publish.routing_key = WIRE_STR_LIT("q0");
    static const uint8_t no_props[2] = {0, 0}, body[8] = {0};
    static const uint8_t heartbeat[8] = {WIRE_FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, WIRE_FRAME_END};
    static const uint8_t bad_end[8] = {WIRE_FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t unknown_method[12] = {WIRE_FRAME_METHOD, 0, 1, 0, 0, 0, 4, 0, 99, 0, 1,
                                               WIRE_FRAME_END};
    int rc = 0;
    switch (kind % 16) {
    case 0: /* a second channel.open */
        fz_send(c, ch, &(struct wire_method){.id = WIRE_CHANNEL_OPEN});
        break;
    case 1: /* a method on a channel never opened */
        fz_send(c, FZ_STRAY_CHANNEL, &pub);
        break;
    case 2: /* a body past its header's size */
        fz_send(c, ch, &pub);
        rc = frame_write_content_header(c->pending, ch, WIRE_CLASS_BASIC, 4, no_props, 2);
        rc |= frame_write_body(c->pending, ch, body, 5, UINT32_MAX);
        break;
    case 3: /* a content header with no method */
        rc = frame_write_content_header(c->pending, ch, WIRE_CLASS_BASIC, 4, no_props, 2);
        break;
    case 4: /* a body with no header */
        fz_send(c, ch, &pub);
        rc = frame_write_body(c->pending, ch, body, 4, UINT32_MAX);
        break;
    case 5: /* a method where a content header is due */
        fz_send(c, ch, &pub);
        fz_send(c, ch, &pub);
        break;
    case 6: /* close-ok for no close */
        fz_send(c, ch, &(struct wire_method){.id = WIRE_CHANNEL_CLOSE_OK});
        break;
    case 7: /* half a message, the rest never comes: the connection ends holding it */
        fz_send(c, ch, &pub);
        rc = frame_write_content_header(c->pending, ch, WIRE_CLASS_BASIC, 8, no_props, 2);
        rc |= frame_write_body(c->pending, ch, body, 3, UINT32_MAX);
        break;
    case 8: /* connection.close-ok for no close */
        fz_send(c, 0, &(struct wire_method){.id = WIRE_CONNECTION_CLOSE_OK});
        break;
    case 9: /* a heartbeat: fine */
        rc = evbuffer_add(c->pending, heartbeat, sizeof(heartbeat));
        break;
    case 10: /* a frame-end octet that is not 0xCE: the server closes without waiting */
        rc = evbuffer_add(c->pending, bad_end, sizeof(bad_end));
        break;
    case 11: /* a method that does not exist (on channel 1) */
        rc = evbuffer_add(c->pending, unknown_method, sizeof(unknown_method));
        break;
    case 12: /* a content header of another class */
        fz_send(c, ch, &pub);
        rc = frame_write_content_header(c->pending, ch, WIRE_CLASS_QUEUE, 4, no_props, 2);
        break;
    case 13: { /* a body over max_message_size: refused at its header (406), on a closing
                * channel whose close-ok then comes in the middle of the content */
        fz_send(c, ch, &pub);
        rc = frame_write_content_header(c->pending, ch, WIRE_CLASS_BASIC, 200u << 20, no_props, 2);
        rc |= frame_write_body(c->pending, ch, body, 8, UINT32_MAX);
        break;
    }
    case 14: { /* basic.qos with a prefetch size (540) */
        struct wire_method qos = {.id = WIRE_BASIC_QOS};
        qos.u.basic_qos.prefetch_size = 1;
        fz_send(c, ch, &qos);
        break;
    }
    default: { /* access.request: deprecated, answered as a no-op */
        struct wire_method ar = {.id = WIRE_ACCESS_REQUEST};
        ar.u.access_request.realm = WIRE_STR_LIT("/data");
        fz_send(c, ch, &ar);
        break;
    }
    }
    if (rc != 0)
        FZ_FAIL("cannot encode a misbehaving frame");
}

/* ---- the server's output, checked ---- */

static void
fz_check_frame(struct fz *z, struct fz_conn *c, const struct nethost_frame *f)
{
    char what[400];
    nethost_describe(f, what, sizeof(what));
    if (c->server_closed && !(f->type == WIRE_FRAME_METHOD && f->channel == 0 &&
                              f->m.id == WIRE_CONNECTION_CLOSE_OK && c->we_closed))
        FZ_FAIL("%s after connection.close", what);
    if (f->type == WIRE_FRAME_HEARTBEAT)
        return;
    if (f->channel == 0) {
        if (f->type != WIRE_FRAME_METHOD)
            FZ_FAIL("%s", what);
        switch (f->m.id) {
        case WIRE_CONNECTION_CLOSE:
            /* 320 only for a connection whose user or vhost was deleted, and nothing else
             * for one that was open then. */
            if ((f->m.u.connection_close.reply_code == WIRE_CONNECTION_FORCED) != c->must_close &&
                !(c->forced_ok && !c->must_close))
                FZ_FAIL("%s: user or vhost deleted: %s", what, c->must_close ? "yes" : "no");
            c->must_close = false;
            c->server_closed = true;
            fz_send(c, 0, &(struct wire_method){.id = WIRE_CONNECTION_CLOSE_OK});
            return;
        case WIRE_CONNECTION_CLOSE_OK:
            if (!c->we_closed)
                FZ_FAIL("%s, but no connection.close was sent", what);
            return;
        case WIRE_CONNECTION_BLOCKED:
        case WIRE_CONNECTION_UNBLOCKED:
            return;
        default:
            FZ_FAIL("%s after the handshake", what);
        }
    }
    if (f->channel > FZ_MAX_CHANNEL)
        FZ_FAIL("%s: a channel never opened", what);
    struct fz_chan *ch = &c->ch[f->channel];
    if (f->type == WIRE_FRAME_HEADER) {
        if (ch->content != 1 || f->h.class_id != WIRE_CLASS_BASIC)
            FZ_FAIL("%s with no content method before it", what);
        ch->body_left = f->h.body_size;
        ch->content = ch->body_left > 0 ? 2 : 0;
        struct wire_str rt = f->props.reply_to;
        if ((f->props.flags & WIRE_BASIC_REPLY_TO_FLAG) && rt.len < sizeof(z->reply_token) &&
            rt.len > 22 && memcmp(rt.ptr, "amq.rabbitmq.reply-to.", 22) == 0) {
            memcpy(z->reply_token, rt.ptr, rt.len);
            z->reply_token[rt.len] = '\0';
        }
        return;
    }
    if (f->type == WIRE_FRAME_BODY) {
        if (ch->content != 2 || f->size > ch->body_left)
            FZ_FAIL("%s: no body due on it, or more than due", what);
        ch->body_left -= f->size;
        ch->content = ch->body_left > 0 ? 2 : 0;
        return;
    }
    if (ch->content != 0)
        FZ_FAIL("%s in the middle of a content", what);
    enum wire_method_id id = f->m.id;
    if (id == WIRE_CHANNEL_CLOSE_OK) {
        if (ch->closes_unanswered == 0)
            FZ_FAIL("%s for no channel.close", what);
        ch->closes_unanswered--;
        ch->srv_open = false;
        return;
    }
    /* Once the server has sent channel.close, nothing but close-ok (above) may follow on the
     * channel until our close-ok has reached it and the channel was opened again. */
    if (!ch->srv_open) {
        if (id != WIRE_CHANNEL_OPEN_OK)
            FZ_FAIL("%s on a channel that is not open", what);
        ch->srv_open = true;
        return;
    }
    switch (id) {
    case WIRE_CHANNEL_OPEN_OK:
        FZ_FAIL("%s on a channel already open", what);
    case WIRE_CHANNEL_CLOSE:
        /* guest may do anything on "/" and v1 until the program changes that. */
        if (f->m.u.channel_close.reply_code == WIRE_ACCESS_REFUSED && c->user == 0 &&
            c->vhost < 2 && !z->guest_restricted && strstr(what, "refused for user") != NULL)
            FZ_FAIL("%s", what);
        /* Answered at once, as clients do; the channel is then closed on both sides. */
        fz_send(c, f->channel, &(struct wire_method){.id = WIRE_CHANNEL_CLOSE_OK});
        fz_chan_closed(ch);
        ch->srv_open = false;
        return;
    case WIRE_BASIC_DELIVER:
        if (f->m.u.basic_deliver.delivery_tag > ch->last_tag)
            ch->last_tag = f->m.u.basic_deliver.delivery_tag;
        ch->content = 1;
        return;
    case WIRE_BASIC_GET_OK:
        if (f->m.u.basic_get_ok.delivery_tag > ch->last_tag)
            ch->last_tag = f->m.u.basic_get_ok.delivery_tag;
        ch->content = 1;
        return;
    case WIRE_BASIC_RETURN:
        ch->content = 1;
        return;
    default:
        return;
    }
}

/* Takes and checks every frame the server wrote. */
static void
fz_drain(struct fz *z)
{
    for (unsigned i = 0; i < FZ_SLOTS; i++) {
        struct fz_conn *c = &z->conns[i];
        if (c->p == NULL || c->gone)
            continue;
        struct nethost_frame f;
        enum nethost_status st;
        while ((st = nethost_take(c->p, &f)) == NETHOST_FRAME)
            fz_check_frame(z, c, &f);
        if (st == NETHOST_BAD)
            FZ_FAIL("%s", c->p->why);
        if (st == NETHOST_EOF) {
            /* (A reset may have eaten the connection.close: see nethost_peer.reset.) */
            if (!c->server_closed && !c->we_closed && !c->hung_up && !c->p->reset)
                FZ_FAIL("the server closed connection slot %u without connection.close", i);
            c->gone = true;
        }
        if (c->must_close && !c->server_closed && !c->gone)
            FZ_FAIL("connection slot %u still open after its user or vhost was deleted", i);
    }
}

/* Hands each connection's pending frames to its socket, but the last hold bytes (so that a
 * frame may arrive in two parts), runs the loop until the server is idle, and checks what it
 * wrote; the answers (close-ok) go out with the next flush. */
static void
fz_flush(struct fz *z, size_t hold)
{
    for (unsigned i = 0; i < FZ_SLOTS; i++) {
        struct fz_conn *c = &z->conns[i];
        if (c->p == NULL)
            continue;
        size_t len = evbuffer_get_length(c->pending);
        size_t n = len > hold ? len - hold : 0;
        if (c->gone || c->hung_up)
            evbuffer_drain(c->pending, len);
        else if (n > 0 && evbuffer_remove_buffer(c->pending, c->p->out, n) != (int)n)
            FZ_FAIL("cannot move %zu bytes to the socket", n);
    }
    if (nethost_settle(&z->host) < 0)
        FZ_FAIL("the server never went idle");
    fz_drain(z);
}

/* Opens a connection in slot c as fz_users[user] on fz_vhosts[vhost], as a client does (the
 * capabilities of nethost_login, no heartbeats). The login is refused (403) for a user that
 * does not exist, the open (530) for a vhost that does not, or that the user may not use, or
 * over a limit; the slot then holds a connection the server is closing. guest on "/" and v1
 * is refused only after the program changed guest or a vhost (fz.guest_restricted). */
static void
fz_connect(struct fz *z, struct fz_conn *c, uint8_t user, uint8_t vhost)
{
    if (z->n_connections == NETHOST_MAX_PEERS)
        return;
    if (c->pending == NULL && (c->pending = evbuffer_new()) == NULL)
        FZ_FAIL("out of memory");
    evbuffer_drain(c->pending, evbuffer_get_length(c->pending));
    struct evbuffer *pending = c->pending;
    memset(c, 0, sizeof(*c));
    c->pending = pending;
    c->user = user;
    c->vhost = vhost;
    if ((c->p = nethost_connect(&z->host, NULL)) == NULL)
        FZ_FAIL("cannot connect");
    z->n_connections++;
    struct nethost_frame f;
    if (nethost_login(c->p, fz_users[user].name, fz_users[user].password) < 0)
        FZ_FAIL("login: %s", c->p->why);
    enum nethost_status st = nethost_read(c->p, &f);
    uint16_t refusal = WIRE_ACCESS_REFUSED;
    if (st == NETHOST_FRAME && f.type == WIRE_FRAME_METHOD && f.channel == 0 &&
        f.m.id == WIRE_CONNECTION_TUNE) {
        struct wire_method m = {.id = WIRE_CONNECTION_TUNE_OK};
        m.u.connection_tune_ok.channel_max = f.m.u.connection_tune.channel_max;
        m.u.connection_tune_ok.frame_max = f.m.u.connection_tune.frame_max;
        struct wire_method open = {.id = WIRE_CONNECTION_OPEN};
        open.u.connection_open.virtual_host = nethost_str(fz_vhosts[vhost]);
        if (nethost_send_method(c->p, 0, &m) < 0 || nethost_send_method(c->p, 0, &open) < 0)
            FZ_FAIL("out of memory");
        st = nethost_read(c->p, &f);
        if (st == NETHOST_FRAME && f.type == WIRE_FRAME_METHOD && f.channel == 0 &&
            f.m.id == WIRE_CONNECTION_OPEN_OK)
            return;
        refusal = WIRE_NOT_ALLOWED;
    }
    char what[400];
    if (st == NETHOST_FRAME)
        nethost_describe(&f, what, sizeof(what));
    else
        snprintf(what, sizeof(what), "status %d (%.300s)", (int)st, c->p->why);
    if (st != NETHOST_FRAME || f.type != WIRE_FRAME_METHOD || f.channel != 0 ||
        f.m.id != WIRE_CONNECTION_CLOSE || f.m.u.connection_close.reply_code != refusal ||
        (user == 0 && vhost < 2 && !z->guest_restricted))
        FZ_FAIL("handshake as %s on %s: %s", fz_users[user].name, fz_vhosts[vhost], what);
    c->server_closed = true;
    fz_send(c, 0, &(struct wire_method){.id = WIRE_CONNECTION_CLOSE_OK});
}

/* The users and vhosts of fz_users and fz_vhosts, made through warren/admin.h as the HTTP API
 * makes them: vhost v1 (at most 3 queues); u0 on "/" may configure q0, q1 and x0, write to
 * q0, q1, x0, x2, the default exchange and amq.topic (routing keys starting with k0 there),
 * read q0-q2, x0-x2 and amq.topic (keys k0.*), and open 3 channels; u1 may do anything on v1,
 * and on "/" configure q2, write to x2, x3 and the default exchange, read q2 and q3; guest may
 * do anything on v1 too. */
static void
fz_fixture_users(struct fz *z)
{
    struct admin *a = z->host.admin;
    char err[256];
    static const char *const tags[] = {"management"};
    struct admin_user u0 = {.name = "u0", .password = fz_users[1].password};
    struct admin_user u1 = {
        .name = "u1", .password = fz_users[2].password, .tags = tags, .n_tags = 1};
    if (admin_vhost_put(a, &(struct admin_vhost){.name = "v1"}, NULL, NULL, err, sizeof(err)) ||
        admin_vhost_set_limit(a, "v1", "max-queues", 3, NULL, NULL, err, sizeof(err)) ||
        admin_user_put(a, &u0, NULL, NULL, err, sizeof(err)) ||
        admin_user_put(a, &u1, NULL, NULL, err, sizeof(err)) ||
        admin_perm_set(a, "u0", "/", "^(q[01]|x0)$", "^(q[01]|x[02]|amq\\.(default|topic))$",
                       "^(q[0-2]|x[0-2]|amq\\.topic)$", NULL, NULL, err, sizeof(err)) ||
        admin_topic_perm_set(a, "u0", "/", "amq.topic", "^k0", "^k0\\.", NULL, NULL, err,
                             sizeof(err)) ||
        admin_user_set_limit(a, "u0", "max-channels", 3, NULL, NULL, err, sizeof(err)) ||
        admin_perm_set(a, "u1", "v1", ".*", ".*", ".*", NULL, NULL, err, sizeof(err)) ||
        admin_perm_set(a, "u1", "/", "^q2$", "^(x[23]|amq\\.default)$", "^q[23]$", NULL, NULL, err,
                       sizeof(err)) ||
        admin_perm_set(a, "guest", "v1", ".*", ".*", ".*", NULL, NULL, err, sizeof(err)))
        FZ_FAIL("fixture: %s", err);
}

/* What most operations name, declared on channel 1 of the first connection before the
 * program runs, so that sessions mostly act on things that exist: queues q0..q3, exchanges
 * x0 (direct), x1 (fanout), x2 (topic) and x3 (headers), each bound to a queue or two. The
 * server must take all of it without an error. */
static void
fz_fixture(struct fz *z)
{
    static const char *const types[] = {"direct", "fanout", "topic", "headers"};
    static const struct {
        const char *queue, *exchange, *key;
    } binds[] = {{"q0", "x0", "k0"},   {"q1", "x0", "k1"}, {"q1", "x1", ""},
                 {"q2", "x2", "k0.#"}, {"q3", "x3", ""},   {"q3", "x2", "*.k1"}};
    struct fz_conn *c = &z->conns[0];
    char name[3] = "x0";
    uint8_t args[64];
    struct wire_writer w;
    wire_writer_init(&w, args, sizeof(args));
    wire_table_put_longstr(&w, "x-match", WIRE_STR_LIT("any"));
    wire_table_put_longstr(&w, "h0", WIRE_STR_LIT("v0"));
    c->ch[1].open = true;
    fz_send(c, 1, &(struct wire_method){.id = WIRE_CHANNEL_OPEN});
    for (int i = 0; i < 4; i++) {
        name[0] = 'q';
        name[1] = (char)('0' + i);
        struct wire_method m = nethost_queue_declare(name, false, false);
        fz_send(c, 1, &m);
        name[0] = 'x';
        m = (struct wire_method){.id = WIRE_EXCHANGE_DECLARE};
        m.u.exchange_declare.exchange = nethost_str(name);
        m.u.exchange_declare.type = nethost_str(types[i]);
        fz_send(c, 1, &m);
    }
    for (size_t i = 0; i < sizeof(binds) / sizeof(binds[0]); i++) {
        struct wire_method m = {.id = WIRE_QUEUE_BIND};
        m.u.queue_bind.queue = nethost_str(binds[i].queue);
        m.u.queue_bind.exchange = nethost_str(binds[i].exchange);
        m.u.queue_bind.routing_key = nethost_str(binds[i].key);
        if (binds[i].exchange[1] == '3')
            m.u.queue_bind.arguments = (struct wire_table){args, (uint32_t)wire_writer_len(&w)};
        fz_send(c, 1, &m);
    }
    fz_flush(z, 0);
    if (!c->ch[1].srv_open || c->server_closed)
        FZ_FAIL("the server refused the fixture");
    fz_fixture_users(z);
}

/* An administrative change, as the HTTP API makes them (warren/admin.h), in the middle of the
 * session: permissions set or cleared under open channels (whose cached checks must then be
 * redone), a topic permission, a user or a vhost deleted while connections are open on it
 * (closed at once with 320, their channels holding consumers, unacked deliveries,
 * transactions and half-received content) and made again, limits set or cleared. Each reads
 * a kind, a user and a vhost, then what the kind needs. A refusal (no such user, a pattern
 * that does not compile) changes nothing; only running out of memory is an error. */
static void
fz_admin(struct fz *z)
{
    static const char *const user_limits[] = {"max-channels", "max-connections"};
    static const char *const vhost_limits[] = {"max-connections", "max-queues"};
    static const int64_t values[] = {-1, 0, 1, 2, 3, 5};
    static const char *const topic_exchanges[] = {"amq.topic", "x2"};
    static const char *const tags[] = {"management", "administrator"};
    struct admin *a = z->host.admin;
    char err[256] = "";
    uint8_t kind = fz_u8(z) % 10, u = fz_u8(z) % FZ_COUNT(fz_users),
            v = fz_u8(z) % FZ_COUNT(fz_vhosts);
    const char *user = fz_users[u].name, *vhost = fz_vhosts[v];
    enum admin_result r;
    switch (kind) {
    case 0: {
        const char *conf = FZ_PICK(z, fz_patterns), *write = FZ_PICK(z, fz_patterns);
        const char *read = FZ_PICK(z, fz_patterns);
        r = admin_perm_set(a, user, vhost, conf, write, read, NULL, NULL, err, sizeof(err));
        break;
    }
    case 1:
        r = admin_perm_clear(a, user, vhost, NULL, NULL, err, sizeof(err));
        break;
    case 2: {
        const char *x = FZ_PICK(z, topic_exchanges), *write = FZ_PICK(z, fz_patterns);
        const char *read = FZ_PICK(z, fz_patterns);
        r = admin_topic_perm_set(a, user, vhost, x, write, read, NULL, NULL, err, sizeof(err));
        break;
    }
    case 3: {
        uint8_t b = fz_u8(z);
        r = admin_topic_perm_clear(a, user, vhost, b & 1 ? NULL : topic_exchanges[(b >> 1) & 1],
                                   NULL, NULL, err, sizeof(err));
        break;
    }
    case 4:
        r = admin_user_delete(a, user, NULL, NULL, err, sizeof(err));
        break;
    case 5: {
        struct admin_user au = {
            .name = user, .password = fz_users[u].password, .tags = tags, .n_tags = fz_u8(z) % 3};
        r = admin_user_put(a, &au, NULL, NULL, err, sizeof(err));
        break;
    }
    case 6:
        r = admin_vhost_delete(a, vhost, NULL, NULL, err, sizeof(err));
        break;
    case 7:
        r = admin_vhost_put(a, &(struct admin_vhost){.name = vhost}, NULL, NULL, err, sizeof(err));
        break;
    case 8: {
        uint8_t b = fz_u8(z);
        r = admin_user_set_limit(a, user, user_limits[b & 1], values[(b >> 1) % 6], NULL, NULL, err,
                                 sizeof(err));
        break;
    }
    default: {
        uint8_t b = fz_u8(z);
        r = admin_vhost_set_limit(a, vhost, vhost_limits[b & 1], values[(b >> 1) % 6], NULL, NULL,
                                  err, sizeof(err));
        break;
    }
    }
    if (r == ADMIN_NOMEM)
        FZ_FAIL("admin: %s", err);
    if (r != ADMIN_OK)
        return;
    /* Over-approximated: any change of guest's, or of a vhost's but its metadata. */
    if ((u == 0 && kind != 5 && kind != 6 && kind != 7 && kind != 9) || kind == 6 || kind == 9)
        z->guest_restricted = true;
    if (kind != 4 && kind != 6)
        return;
    /* The connections of a deleted user or vhost: each open one must be closed (320) by the
     * next flush; one on its way out may be. */
    for (unsigned i = 0; i < FZ_SLOTS; i++) {
        struct fz_conn *c = &z->conns[i];
        if (c->p == NULL || c->gone || (kind == 4 ? c->user != u : c->vhost != v))
            continue;
        c->forced_ok = true;
        if (!c->server_closed && !c->we_closed && !c->hung_up)
            c->must_close = true;
    }
}

static void
fz_step(struct fz *z)
{
    uint8_t op = fz_u8(z);
    struct fz_conn *c = &z->conns[(op >> 7) % FZ_SLOTS];
    enum fz_op kind = (enum fz_op)((op & 0x7f) % FZ_OP_COUNT);
    if (kind == FZ_OP_FLUSH) {
        fz_flush(z, fz_u8(z) % 16);
        return;
    }
    if (kind == FZ_OP_ADMIN) {
        fz_admin(z);
        return;
    }
    if (kind == FZ_OP_CONNECT) {
        uint8_t login = fz_u8(z);
        /* A connection on its way out finishes first: its close-ok goes, the end comes. */
        if (c->p != NULL && !c->gone && (c->server_closed || c->we_closed || c->hung_up)) {
            fz_flush(z, 0);
            fz_flush(z, 0);
        }
        if (c->p == NULL || c->gone)
            fz_connect(z, c, login % FZ_COUNT(fz_users), (login >> 2) % FZ_COUNT(fz_vhosts));
        return;
    }
    if (c->p == NULL || c->gone || c->hung_up || c->server_closed || c->we_closed)
        return;
    switch (kind) {
    case FZ_OP_CHANNEL_CLOSE:
        fz_channel_close(z, c);
        break;
    case FZ_OP_EXCHANGE_DECLARE:
        fz_exchange_declare(z, c);
        break;
    case FZ_OP_EXCHANGE_DELETE:
        fz_exchange_delete(z, c);
        break;
    case FZ_OP_EXCHANGE_BIND:
        fz_exchange_bind(z, c);
        break;
    case FZ_OP_QUEUE_DECLARE:
        fz_queue_declare(z, c);
        break;
    case FZ_OP_QUEUE_BIND:
        fz_queue_bind(z, c, true);
        break;
    case FZ_OP_QUEUE_UNBIND:
        fz_queue_bind(z, c, false);
        break;
    case FZ_OP_QUEUE_PURGE:
        fz_queue_purge_delete(z, c, true);
        break;
    case FZ_OP_QUEUE_DELETE:
        fz_queue_purge_delete(z, c, false);
        break;
    case FZ_OP_QOS:
        fz_qos(z, c);
        break;
    case FZ_OP_CONSUME:
        fz_consume(z, c);
        break;
    case FZ_OP_CANCEL:
        fz_cancel(z, c);
        break;
    case FZ_OP_PUBLISH:
        fz_publish(z, c, false);
        break;
    case FZ_OP_PUBLISH_REPLY:
        fz_publish(z, c, true);
        break;
    case FZ_OP_GET:
        fz_get(z, c);
        break;
    case FZ_OP_ACK:
        fz_settle(z, c, WIRE_BASIC_ACK);
        break;
    case FZ_OP_NACK:
        fz_settle(z, c, WIRE_BASIC_NACK);
        break;
    case FZ_OP_REJECT:
        fz_settle(z, c, WIRE_BASIC_REJECT);
        break;
    case FZ_OP_RECOVER:
        fz_recover(z, c);
        break;
    case FZ_OP_TX:
        fz_tx(z, c);
        break;
    case FZ_OP_CONFIRM_SELECT:
        fz_confirm_select(z, c);
        break;
    case FZ_OP_FLOW:
        fz_flow(z, c);
        break;
    case FZ_OP_CONNECTION_CLOSE: {
        struct wire_method m = {.id = WIRE_CONNECTION_CLOSE};
        m.u.connection_close.reply_code = 200;
        fz_send(c, 0, &m);
        c->we_closed = true;
        break;
    }
    case FZ_OP_HANG_UP:
        fz_flush(z, fz_u8(z) % 16); /* what comes before the hang-up, maybe half a frame */
        nethost_peer_close(c->p);
        c->hung_up = true;
        break;
    case FZ_OP_MISBEHAVE:
        fz_misbehave(z, c);
        break;
    default:
        break;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fz z;
    /* FUZZ_SESSION_LOG=1 shows what the server made of an input (to study a crasher). */
    log_set_level(getenv("FUZZ_SESSION_LOG") != NULL ? LOG_DEBUG : LOG_NONE);
    memset(&z, 0, sizeof(z));
    z.in = data;
    z.end = data + size;
    z.body_budget = FZ_BODY_BUDGET;
    if (nethost_init(&z.host) < 0)
        FZ_FAIL("cannot start the broker");
    z.host.unix_sockets = true; /* thousands of connections a second: no ports */
    fz_connect(&z, &z.conns[0], 0, 0);
    fz_fixture(&z);
    for (unsigned ops = 0; ops < FZ_MAX_OPS && z.in < z.end; ops++)
        fz_step(&z);
    fz_flush(&z, 0);
    /* Every connection still up closes, as a client does (its close-ok is checked). */
    for (unsigned i = 0; i < FZ_SLOTS; i++) {
        struct fz_conn *c = &z.conns[i];
        if (c->p != NULL && !c->gone && !c->hung_up && !c->we_closed && !c->server_closed) {
            struct wire_method m = {.id = WIRE_CONNECTION_CLOSE};
            fz_send(c, 0, &m);
            c->we_closed = true;
        }
    }
    fz_flush(&z, 0);
    fz_flush(&z, 0); /* the close-ok answering a crossing connection.close */
    for (unsigned i = 0; i < FZ_SLOTS; i++)
        if (z.conns[i].p != NULL && !z.conns[i].gone)
            FZ_FAIL("connection slot %u still open after close and close-ok", i);
    nethost_free(&z.host);
    for (unsigned i = 0; i < FZ_SLOTS; i++)
        if (z.conns[i].pending != NULL)
            evbuffer_free(z.conns[i].pending);
    if (msg_bytes_live != 0)
        FZ_FAIL("%llu bytes of messages left after the server was freed",
                (unsigned long long)msg_bytes_live);
    return 0;
}
