/* Requests about another node's queue besides consuming from it, in a cluster: queue.purge
 * ('U', answered 'u' with the messages purged) and the counts that queue.delete's if-unused
 * and if-empty need ('N', answered 'n' with the queue's consumers and ready messages), asked
 * of the queue's home over relay.c's node links (its top comment has the records), by an
 * AMQP channel, whose input waits for the answer as for a basic.get, or by the HTTP API,
 * answered through its net_topo_done_fn. The home answers as a node alone would: 404 for a
 * queue gone there, 405 for an exclusive one; a home that is down gets RabbitMQ's "home node
 * ... is down or inaccessible" 404.
 *
 * queue.delete with if-unused or if-empty: this node asks the counts, checks them, then
 * submits the unconditional delete to the metadata log. Unlike RabbitMQ's, where the queue's
 * process checks and deletes in one step, the check and the delete are not atomic: a consumer
 * that arrives, or a message published, between the answer and the delete's apply is deleted
 * with the queue. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_int.h"
#include "relay.h"
#include "topology.h"
#include "warren/bytes.h"
#include "warren/queue.h"
#include "warren/vhost.h"

int
relay_purge(struct chan *ch, const struct queue *q, bool no_wait)
{
    struct net_decl_err err;
    struct relay_sub *sub = relay_request(ch->conn->server, ch->conn->vhost, q, 'U', &err);
    if (sub == NULL)
        return chan_raise_decl(ch, WIRE_QUEUE_PURGE, &err);
    sub->no_wait = no_wait;
    relay_sub_wait(sub, ch);
    return 0;
}

int
relay_queue_delete(struct chan *ch, const struct queue *q, bool if_unused, bool if_empty,
                   bool no_wait)
{
    struct net_decl_err err;
    struct relay_sub *sub = relay_request(ch->conn->server, ch->conn->vhost, q, 'N', &err);
    if (sub == NULL)
        return chan_raise_decl(ch, WIRE_QUEUE_DELETE, &err);
    sub->no_wait = no_wait;
    sub->if_unused = if_unused;
    sub->if_empty = if_empty;
    relay_sub_wait(sub, ch);
    return 0;
}

int
net_queue_purge_remote(struct net_server *s, struct vhost *vh, const struct queue *q,
                       net_topo_done_fn done, void *arg, struct net_decl_err *err)
{
    struct relay_sub *sub = relay_request(s, vh, q, 'U', err);
    if (sub == NULL)
        return -1;
    sub->done = done;
    sub->done_arg = arg;
    return 0;
}

int
relay_http_queue_delete(struct net_server *s, struct vhost *vh, const char *user,
                        const struct queue *q, bool if_unused, bool if_empty, net_topo_done_fn done,
                        void *arg, struct net_decl_err *err)
{
    char *copy = user != NULL ? strdup(user) : NULL;
    if (user != NULL && copy == NULL) {
        err->code = WIRE_RESOURCE_ERROR;
        snprintf(err->text, sizeof(err->text), "out of memory");
        return -1;
    }
    struct relay_sub *sub = relay_request(s, vh, q, 'N', err);
    if (sub == NULL) {
        free(copy);
        return -1;
    }
    sub->user = copy;
    sub->if_unused = if_unused;
    sub->if_empty = if_empty;
    sub->done = done;
    sub->done_arg = arg;
    return 0;
}

/* The outcome of sub (still listed): err (code 0: none), the counts answered. Ends sub. */
static void
relay_req_finish(struct relay_sub *sub, struct net_decl_err *err, uint32_t consumers,
                 uint32_t messages)
{
    struct chan *ch = relay_sub_open(sub) ? sub->ch : NULL;
    struct wire_str name = {(const uint8_t *)sub->queue, sub->qlen};
    if (err->code == 0 && sub->type == 'N' && sub->if_unused && consumers > 0) {
        err->code = WIRE_PRECONDITION_FAILED;
        snprintf(err->text, sizeof(err->text), "queue '%.*s' in vhost '%s' in use",
                 WIRE_STR_ARG(name), sub->vhost);
    } else if (err->code == 0 && sub->type == 'N' && sub->if_empty && messages > 0) {
        err->code = WIRE_PRECONDITION_FAILED;
        snprintf(err->text, sizeof(err->text), "queue '%.*s' in vhost '%s' not empty",
                 WIRE_STR_ARG(name), sub->vhost);
    }
    if (sub->done != NULL) { /* the HTTP API's */
        if (err->code == 0 && sub->type == 'N') {
            if (topo_http_queue_delete(relay_sub_server(sub), sub->vhost, sub->user, name,
                                       sub->done, sub->done_arg, err) == 0) {
                relay_sub_end(sub);
                return;
            }
        }
        sub->done(sub->done_arg, err, false, messages);
        relay_sub_end(sub);
        return;
    }
    bool no_wait = sub->no_wait;
    uint8_t type = sub->type;
    char queue[256];
    snprintf(queue, sizeof(queue), "%.*s", sub->qlen, sub->queue);
    relay_sub_end(sub); /* the channel reads again: its answer goes first */
    if (ch == NULL)
        return;
    name = (struct wire_str){(const uint8_t *)queue, (uint32_t)strlen(queue)};
    if (err->code != 0) {
        chan_raise_decl(ch, type == 'U' ? WIRE_QUEUE_PURGE : WIRE_QUEUE_DELETE, err);
    } else if (type == 'N') {
        chan_topology_queue_delete_submit(ch, name, no_wait);
    } else if (!no_wait) {
        struct wire_method ok = {.id = WIRE_QUEUE_PURGE_OK};
        ok.u.queue_purge_ok.message_count = messages;
        conn_send(ch->conn, ch->id, &ok);
    }
}

void
relay_req_answered(struct relay_sub *sub, uint16_t code, const uint8_t *p, size_t len)
{
    struct net_decl_err err = {.code = code};
    uint32_t consumers = 0, messages = 0;
    if (code != 0) {
        snprintf(err.text, sizeof(err.text), "%.*s", (int)len, (const char *)p);
    } else if (sub->type == 'U' && len >= 4) {
        messages = bytes_get32(p);
    } else if (sub->type == 'N' && len >= 8) {
        consumers = bytes_get32(p);
        messages = bytes_get32(p + 4);
    } else {
        err.code = WIRE_INTERNAL_ERROR;
        snprintf(err.text, sizeof(err.text), "an answer from another node does not decode");
    }
    relay_req_finish(sub, &err, consumers, messages);
}

void
relay_req_lost(struct relay_sub *sub, struct net_decl_err *err)
{
    relay_req_finish(sub, err, 0, 0);
}
