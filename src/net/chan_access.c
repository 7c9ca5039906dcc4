/* Access control on channels: every operation checks the permission RabbitMQ's channel
 * checks (rabbit_channel.erl), with its reply texts, as 403 ACCESS_REFUSED channel errors:
 *   configure  exchange.declare (not passive), exchange.delete, queue.declare (not passive),
 *              queue.delete
 *   write      basic.publish on the exchange (the default one as "amq.default"); bind and
 *              unbind on the destination (queue or exchange); a new queue's dead-letter
 *              exchange, a new exchange's alternate exchange
 *   read       basic.consume, basic.get and queue.purge on the queue; bind and unbind on the
 *              source exchange; the queue of a new queue's dead-letter exchange, the exchange
 *              of a new exchange's alternate exchange
 *   topic      on a topic exchange with topic permissions: write on the routing key of a
 *              publish, read on the routing key of a bind or unbind
 * Changes apply to the next operation: the connection keeps its permissions on its vhost
 * under the user table's generation (auth_db_generation), and a channel keeps the last
 * exchange it was allowed to publish to under the same generation, so that a publish costs a
 * compare of the exchange name rather than a regular expression match. */
#include "config.h"

#include <string.h>

#include "net_int.h"
#include "warren/auth.h"
#include "warren/exchange.h"
#include "warren/vhost.h"

const struct auth_perm *
chan_access_perm(struct conn *c)
{
    uint64_t gen = auth_db_generation(c->server->env.auth);
    if (c->perm_gen != gen) {
        c->perm = auth_perm_find(c->user, c->vhost->name);
        c->perm_gen = gen;
    }
    return c->perm;
}

int
chan_access_check(struct chan *ch, uint32_t method_id, enum auth_perm_kind kind, bool queue,
                  struct wire_str name)
{
    struct conn *c = ch->conn;
    if (!queue && name.len == 0)
        name = WIRE_STR_LIT("amq.default");
    const struct auth_perm *p = chan_access_perm(c);
    if (p != NULL && auth_perm_allows(p, kind, name.ptr, name.len))
        return 0;
    return chan_raise(ch, WIRE_ACCESS_REFUSED, method_id,
                      "access to %s '%.*s' in vhost '%s' refused for user '%s'",
                      queue ? "queue" : "exchange", WIRE_STR_ARG(name), c->vhost->name,
                      auth_user_name(c->user));
}

int
chan_access_queue(struct chan *ch, uint32_t method_id, enum auth_perm_kind kind,
                  struct wire_str name)
{
    if (name.len == 0)
        name = ch->last_queue; /* none: the lookup that follows raises 404 */
    return name.len == 0 ? 0 : chan_access_check(ch, method_id, kind, true, name);
}

int
chan_access_topic(struct chan *ch, uint32_t method_id, const struct exch *e,
                  enum auth_perm_kind kind, struct wire_str routing_key)
{
    struct conn *c = ch->conn;
    if (e == NULL || e->type != EXCH_TOPIC ||
        auth_topic_allows(c->user, c->vhost->name, e->name, e->name_len, kind, routing_key.ptr,
                          routing_key.len, NULL))
        return 0;
    return chan_raise(ch, WIRE_ACCESS_REFUSED, method_id,
                      "access to topic '%.*s' in exchange '%s' in vhost '%s' refused for user "
                      "'%s'",
                      WIRE_STR_ARG(routing_key), e->name, c->vhost->name, auth_user_name(c->user));
}

int
chan_access_publish(struct chan *ch, struct wire_str exchange)
{
    struct conn *c = ch->conn;
    uint64_t gen = auth_db_generation(c->server->env.auth);
    if (ch->pub_ok_gen == gen && ch->pub_ok_len == exchange.len &&
        memcmp(ch->pub_ok_exchange, exchange.ptr, exchange.len) == 0)
        return 0;
    if (chan_access_check(ch, WIRE_BASIC_PUBLISH, AUTH_WRITE, false, exchange) < 0)
        return -1;
    memcpy(ch->pub_ok_exchange, exchange.ptr, exchange.len);
    ch->pub_ok_len = (uint8_t)exchange.len;
    ch->pub_ok_topic = auth_topic_perm_exists(c->user, c->vhost->name, exchange.ptr, exchange.len);
    ch->pub_ok_gen = gen;
    return 0;
}
