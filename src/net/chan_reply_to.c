/* Direct reply-to (RabbitMQ's amq.rabbitmq.reply-to): an RPC client consumes, no-ack, from the
 * pseudo-queue "amq.rabbitmq.reply-to" and publishes requests with that reply_to; the server
 * rewrites it to "amq.rabbitmq.reply-to.<token>" naming the client's channel, and a reply
 * published to the default exchange with that routing key goes straight to the client's
 * consumer: no queue is declared, nothing is stored. Tokens are random, so a reply can only
 * reach the channel that asked. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "net_int.h"
#include "warren/msg.h"

static const char reply_to_queue[] = "amq.rabbitmq.reply-to";
#define REPLY_TO_QUEUE_LEN (sizeof(reply_to_queue) - 1)

bool
chan_reply_to_is_pseudo_queue(struct wire_str name)
{
    return wire_str_eq(name, reply_to_queue);
}

int
chan_reply_to_register(struct chan *ch, struct chan_cons *cc)
{
    struct net_server *s = ch->conn->server;
    if (ch->reply_cons != NULL)
        return chan_raise(ch, WIRE_PRECONDITION_FAILED, WIRE_BASIC_CONSUME,
                          "reply consumer already set");
    chan_random_name(ch->reply_token, sizeof(ch->reply_token), "amq.rabbitmq.reply-to.");
    if (hmap_insert(&s->reply_to, &ch->reply_by_token, ch->reply_token, strlen(ch->reply_token)) <
        0)
        return conn_raise(ch->conn, WIRE_RESOURCE_ERROR, WIRE_BASIC_CONSUME, "out of memory");
    ch->reply_cons = cc;
    return 0;
}

void
chan_reply_to_unregister(struct chan *ch)
{
    hmap_remove(&ch->conn->server->reply_to, &ch->reply_by_token);
    ch->reply_cons = NULL;
}

int
chan_reply_to_deliver(struct chan *ch, struct wire_str routing_key, struct msg *m)
{
    if (routing_key.len <= REPLY_TO_QUEUE_LEN + 1 ||
        memcmp(routing_key.ptr, reply_to_queue, REPLY_TO_QUEUE_LEN) != 0 ||
        routing_key.ptr[REPLY_TO_QUEUE_LEN] != '.')
        return 0;
    struct hmap_entry *he =
        hmap_find(&ch->conn->server->reply_to, routing_key.ptr, routing_key.len);
    if (he == NULL)
        return -1;
    struct chan *to = hmap_container_of(he, struct chan, reply_by_token);
    if (to->state != CHAN_OPEN || to->conn->state != CONN_OPEN)
        return -1;
    chan_send_deliver(to->reply_cons, ++to->next_delivery_tag, false, m);
    return 1;
}

struct msg *
chan_reply_to_message(struct chan *ch, const struct frame_content_header *h,
                      const struct wire_basic_props *props, uint8_t mode, uint8_t prio,
                      struct wire_str exchange, struct wire_str routing_key)
{
    if (ch->reply_cons == NULL) {
        chan_raise(ch, WIRE_PRECONDITION_FAILED, WIRE_BASIC_PUBLISH,
                   "fast reply consumer does not exist");
        return NULL;
    }
    struct wire_basic_props rewritten = *props;
    rewritten.reply_to =
        (struct wire_str){(const uint8_t *)ch->reply_token, strlen(ch->reply_token)};
    size_t cap = h->props_len + sizeof(ch->reply_token);
    uint8_t *buf = malloc(cap);
    struct msg *m = NULL;
    if (buf != NULL) {
        struct wire_writer w;
        wire_writer_init(&w, buf, cap);
        struct wire_basic_props again;
        struct wire_error err;
        if (wire_basic_props_encode(&rewritten, &w) == 0) {
            uint32_t len = (uint32_t)wire_writer_len(&w);
            m = msg_new(buf, len, mode, prio, exchange, routing_key, h->body_size);
            /* Where the headers moved to: decode what was just encoded (a rare path). */
            if (m != NULL && wire_basic_props_decode(buf, len, &again, &err) == 0)
                msg_set_headers(m, buf, again.headers);
        }
        free(buf);
    }
    if (m == NULL)
        conn_raise(ch->conn, WIRE_RESOURCE_ERROR, WIRE_BASIC_PUBLISH,
                   "out of memory for a %llu-byte message", (unsigned long long)h->body_size);
    return m;
}
