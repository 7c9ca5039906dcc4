/* Channels: the table of a connection's open channels, channel.open / close / flow, and the
 * assembly of content (a content-bearing method, its header frame, then body frames adding up
 * to the declared size). Errors that break the framing of the whole connection (a content frame
 * out of place, a second channel.open) are connection exceptions, as in RabbitMQ. Methods of
 * the other classes go to chan_decl.c (exchange, queue) and chan_basic.c (basic, tx,
 * confirm). */
#include "config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "net_int.h"
#include "warren/assert.h"
#include "warren/auth.h"
#include "warren/conf.h"
#include "warren/msg.h"

static struct chan *
chan_find(const struct conn *c, uint16_t id)
{
    struct idmap_entry *e = idmap_find(&c->chans, id);
    return e != NULL ? idmap_container_of(e, struct chan, by_id) : NULL;
}

static struct chan *
chan_new(struct conn *c, uint16_t id)
{
    struct chan *ch = calloc(1, sizeof(*ch));
    if (ch == NULL)
        return NULL;
    if (idmap_insert(&c->chans, &ch->by_id, id) < 0) {
        free(ch);
        return NULL;
    }
    ch->conn = c;
    ch->id = id;
    ch->state = CHAN_OPEN;
    hmap_init(&ch->consumers);
    TAILQ_INIT(&ch->unacked);
    TAILQ_INIT(&ch->tx_acks);
    STAILQ_INIT(&ch->tx_publishes);
    LIST_INIT(&ch->store_waits);
    LIST_INIT(&ch->topo_waits);
    TAILQ_INIT(&ch->fwds);
    stats_node.chans_opened++;
    return ch;
}

/* Releases what the channel holds (requeueing its unacked deliveries) and frees it. */
static void
chan_free(struct chan *ch)
{
    chan_release(ch);
    (*auth_user_chan_count(ch->conn->user))--;
    idmap_remove(&ch->conn->chans, &ch->by_id);
    stats_obj_clear(&ch->stats);
    stats_node.chans_closed++;
    free(ch);
}

void
chan_table_clear(struct conn *c)
{
    struct idmap_iter it;
    struct idmap_entry *e;
    idmap_iter_init(&it, &c->chans);
    while ((e = idmap_iter_next(&it)) != NULL)
        chan_free(idmap_container_of(e, struct chan, by_id));
    idmap_clear(&c->chans);
}

/* Until the client's close-ok the channel drops everything else, the rest of a message's
 * content included. */
int
chan_raise(struct chan *ch, uint16_t code, uint32_t method_id, const char *fmt, ...)
{
    struct conn *c = ch->conn;
    if (ch->state == CHAN_CLOSING)
        return -1; /* the first exception is the one the client hears about */
    va_list ap;
    va_start(ap, fmt);
    if (wire_reply_is_hard(code)) {
        conn_raisev(c, code, method_id, fmt, ap);
        va_end(ap);
        return -1;
    }
    char text[256];
    net_reply_textv(text, sizeof(text), code, fmt, ap);
    va_end(ap);
    log_conn(LOG_WARNING, c, "closing channel %u: %s", ch->id, text);
    struct wire_method m = {.id = WIRE_CHANNEL_CLOSE};
    m.u.channel_close.reply_code = code;
    m.u.channel_close.reply_text = (struct wire_str){(const uint8_t *)text, strlen(text)};
    m.u.channel_close.class_id = WIRE_METHOD_CLASS(method_id);
    m.u.channel_close.method_id = WIRE_METHOD_INDEX(method_id);
    /* A message whose header was refused still has body frames on the way: content stays
     * as it is, so they are recognised and dropped while the channel closes. */
    ch->state = CHAN_CLOSING;
    conn_send(c, ch->id, &m);
    return -1;
}

static int
chan_on_open(struct conn *c, uint16_t id, const struct wire_method *m)
{
    /* RabbitMQ limits how many channels are open, not their numbers. */
    if (c->channel_max != 0 && c->chans.count >= c->channel_max)
        return conn_raise(c, WIRE_NOT_ALLOWED, 0,
                          "number of channels opened (%u) has reached the negotiated "
                          "channel_max (%u)",
                          (unsigned)c->chans.count, c->channel_max);
    const struct auth_user_limits *ul = auth_user_limits(c->user);
    uint32_t *user_chans = auth_user_chan_count(c->user);
    if (ul->max_channels >= 0 && *user_chans >= ul->max_channels)
        return conn_raise(c, WIRE_NOT_ALLOWED, 0,
                          "number of channels opened for user '%s' has reached the maximum "
                          "allowed user limit of (%lld)",
                          auth_user_name(c->user), (long long)ul->max_channels);
    struct chan *ch = chan_new(c, id);
    if (ch == NULL)
        return conn_raise(c, WIRE_RESOURCE_ERROR, m->id, "out of memory opening channel %u", id);
    (*user_chans)++;
    struct wire_method ok = {.id = WIRE_CHANNEL_OPEN_OK};
    return conn_send(c, id, &ok);
}

/* The content of a method is complete: publish it, unless the channel is closing (then it
 * was the refused message, or one sent after it, and is dropped). */
static int
chan_on_content_complete(struct chan *ch)
{
    ch->content = CHAN_CONTENT_NONE;
    if (ch->state == CHAN_CLOSING) {
        msg_unref(&ch->publishing);
        return 0;
    }
    return chan_publish_complete(ch);
}

static int
chan_on_channel_method(struct chan *ch, const struct wire_method *m)
{
    struct conn *c = ch->conn;
    switch (m->id) {
    case WIRE_CHANNEL_OPEN:
        return conn_raise(c, WIRE_CHANNEL_ERROR, m->id, "second 'channel.open' seen");
    case WIRE_CHANNEL_CLOSE: {
        struct wire_method ok = {.id = WIRE_CHANNEL_CLOSE_OK};
        uint16_t id = ch->id;
        chan_free(ch);
        return conn_send(c, id, &ok);
    }
    case WIRE_CHANNEL_CLOSE_OK:
    case WIRE_CHANNEL_FLOW_OK:
        /* No close or flow of ours is pending (RabbitMQ never sends channel.flow). */
        return conn_raise(c, WIRE_COMMAND_INVALID, m->id, "unimplemented method");
    case WIRE_CHANNEL_FLOW: {
        /* RabbitMQ refuses to be told to stop delivering: it has credit flow instead. */
        if (!m->u.channel_flow.active)
            return conn_raise(c, WIRE_NOT_IMPLEMENTED, m->id, "active=false");
        struct wire_method ok = {.id = WIRE_CHANNEL_FLOW_OK};
        ok.u.channel_flow_ok.active = true;
        return conn_send(c, ch->id, &ok);
    }
    default:
        WR_ASSERT(!"chan_on_channel_method: not a channel-class method the server receives");
        return -1;
    }
}

/* After our channel.close, until the client's close-ok: a crossing channel.close is answered
 * (the channel stays closing), a channel.open is a protocol error as on any open channel, and
 * everything else is dropped, as RabbitMQ does. */
static int
chan_on_method_closing(struct chan *ch, const struct wire_method *m)
{
    struct conn *c = ch->conn;
    switch (m->id) {
    case WIRE_CHANNEL_CLOSE_OK:
        chan_free(ch);
        return 0;
    case WIRE_CHANNEL_CLOSE: {
        struct wire_method ok = {.id = WIRE_CHANNEL_CLOSE_OK};
        return conn_send(c, ch->id, &ok);
    }
    case WIRE_CHANNEL_OPEN:
        return conn_raise(c, WIRE_CHANNEL_ERROR, m->id, "second 'channel.open' seen");
    default:
        /* Dropped, but a content-bearing method's header and body frames must still be
         * recognised as such (and dropped) rather than taken for stray frames. */
        if (wire_method_info(m->id)->content) {
            ch->content = CHAN_CONTENT_AWAIT_HEADER;
            ch->content_class = WIRE_METHOD_CLASS(m->id);
        }
        return 0;
    }
}

int
chan_on_method(struct conn *c, uint16_t id, const struct wire_method *m)
{
    struct chan *ch = chan_find(c, id);
    if (ch == NULL) {
        if (m->id == WIRE_CHANNEL_OPEN)
            return chan_on_open(c, id, m);
        return conn_raise(c, WIRE_CHANNEL_ERROR, m->id, "expected 'channel.open'");
    }
    if (ch->state == CHAN_CLOSING)
        return chan_on_method_closing(ch, m);
    if (ch->content != CHAN_CONTENT_NONE)
        return conn_raise(c, WIRE_UNEXPECTED_FRAME, m->id,
                          "expected content header for class %u, got non content header frame "
                          "instead",
                          ch->content_class);
    switch (WIRE_METHOD_CLASS(m->id)) {
    case WIRE_CLASS_CHANNEL:
        return chan_on_channel_method(ch, m);
    case WIRE_CLASS_EXCHANGE:
        return chan_on_exchange_method(ch, m);
    case WIRE_CLASS_QUEUE:
        return chan_on_queue_method(ch, m);
    case WIRE_CLASS_BASIC:
        return chan_on_basic_method(ch, m);
    case WIRE_CLASS_TX:
        return chan_on_tx_method(ch, m);
    case WIRE_CLASS_CONFIRM:
        return chan_on_confirm_method(ch, m);
    case WIRE_CLASS_ACCESS: {
        /* Deprecated; RabbitMQ answers it as a no-op for old clients. */
        struct wire_method ok = {.id = WIRE_ACCESS_REQUEST_OK};
        ok.u.access_request_ok.ticket = 1;
        return conn_send(c, ch->id, &ok);
    }
    default:
        return conn_raise(c, WIRE_NOT_IMPLEMENTED, m->id, "%s is not implemented",
                          wire_method_name(m->id));
    }
}

/* A body frame of size bytes may come now on ch. 0, or -1 after raising. */
static int
chan_body_check(struct chan *ch, uint32_t size)
{
    if (ch->content != CHAN_CONTENT_AWAIT_BODY)
        return conn_raise(ch->conn, WIRE_UNEXPECTED_FRAME, 0,
                          ch->content == CHAN_CONTENT_NONE
                              ? "expected method frame, got non method frame instead"
                              : "expected content header, got content body instead");
    if (size > ch->body_size - ch->body_received)
        return conn_raise(ch->conn, WIRE_FRAME_ERROR, 0,
                          "content body frame of %u bytes overruns the %llu declared in the "
                          "content header",
                          size, (unsigned long long)ch->body_size);
    return 0;
}

/* size more body bytes are in the message: publish it when complete. */
static int
chan_body_received(struct chan *ch, uint32_t size)
{
    if (ch->publishing != NULL)
        msg_body_filled(ch->publishing, size);
    ch->body_received += size;
    if (ch->body_received == ch->body_size)
        return chan_on_content_complete(ch);
    return 0;
}

int
chan_on_content_frame(struct conn *c, const struct frame *f)
{
    struct chan *ch = chan_find(c, f->channel);
    if (ch == NULL)
        return conn_raise(c, WIRE_UNEXPECTED_FRAME, 0,
                          "expected method frame, got non method frame instead");
    if (f->type == WIRE_FRAME_HEADER) {
        if (ch->content != CHAN_CONTENT_AWAIT_HEADER)
            return conn_raise(c, WIRE_UNEXPECTED_FRAME, 0,
                              "expected method frame, got non method frame instead");
        struct frame_content_header h;
        struct wire_basic_props props;
        struct wire_error err;
        if (frame_content_header_decode(f->payload, f->size, &h, &props, &err) < 0)
            return conn_raise(c, err.code, WIRE_BASIC_PUBLISH, "%s", err.text);
        if (h.class_id != ch->content_class)
            return conn_raise(c, WIRE_UNEXPECTED_FRAME, 0,
                              "expected content header for class %u, got one for class %u",
                              ch->content_class, h.class_id);
        ch->body_size = h.body_size;
        ch->body_received = 0;
        ch->content = CHAN_CONTENT_AWAIT_BODY;
        if (ch->state == CHAN_OPEN) {
            uint32_t max = c->server->env.conf->max_message_size;
            if (h.body_size > max)
                return chan_raise(ch, WIRE_PRECONDITION_FAILED, WIRE_BASIC_PUBLISH,
                                  "message size %llu is larger than configured max size %u",
                                  (unsigned long long)h.body_size, max);
            if (chan_publish_header(ch, &h, &props) < 0)
                return -1;
        }
        if (h.body_size == 0)
            return chan_on_content_complete(ch);
        return 0;
    }
    WR_ASSERT(f->type == WIRE_FRAME_BODY);
    if (chan_body_check(ch, f->size) < 0)
        return -1;
    if (ch->publishing != NULL)
        chan_publish_body(ch, f->payload, f->size);
    return chan_body_received(ch, f->size);
}

struct msg *
chan_body_target(struct conn *c, uint16_t channel, uint32_t size, uint8_t **dst)
{
    struct chan *ch = chan_find(c, channel);
    if (ch == NULL || ch->content != CHAN_CONTENT_AWAIT_BODY || ch->publishing == NULL ||
        size > ch->body_size - ch->body_received)
        return NULL;
    *dst = ch->publishing->body + ch->body_received;
    return ch->publishing;
}

int
chan_on_body_read(struct conn *c, uint16_t channel, const struct msg *m, uint32_t size)
{
    struct chan *ch = chan_find(c, channel);
    /* Only connection.close (and with it the release of every channel) can come between
     * chan_body_target and here: the connection's frames are handled in order. */
    WR_ASSERT(ch != NULL && ch->publishing == m);
    return chan_body_received(ch, size);
}
