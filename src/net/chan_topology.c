/* The exchange and queue methods of a channel in a cluster: each change is submitted to the
 * metadata log (topology.c) and the connection reads nothing more until this node has applied
 * it; the channel then answers (declare-ok, bind-ok...) or raises the apply's error, which
 * every node reached alike. So the client's next method sees its change here, and any node
 * sees it once committed: a passive declare that does not find its exchange or queue first
 * waits for a barrier through the log, after which every change committed before it is
 * applied here too.
 *
 * The connection's exclusive queues are named by an owner id drawn at its first exclusive
 * declare; the connection is listed under it (net_topology.owners) so that the apply on this
 * node, their home, files the queues under the connection. When it closes, they go to the
 * stand-in owner and 'O' deletes them on every node. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "net_int.h"
#include "quorum.h"
#include "relay.h"
#include "topology.h"
#include "warren/auth.h"
#include "warren/bytes.h"
#include "warren/log.h"
#include "warren/queue.h"
#include "warren/vhost.h"

/* How a wait is answered once its command is applied here. */
enum topo_wait_kind {
    TOPO_WAIT_OK,            /* the method's -ok (ok_id), nothing in it */
    TOPO_WAIT_QUEUE_DECLARE, /* queue.declare-ok of the queue name */
    TOPO_WAIT_QUEUE_DELETE,  /* queue.delete-ok with the messages deleted */
    TOPO_WAIT_PASSIVE_EXCH,  /* a barrier: then the passive declare of name, once more */
    TOPO_WAIT_PASSIVE_QUEUE,
};

/* A channel's command in flight. */
struct chan_topo_wait {
    LIST_ENTRY(chan_topo_wait) link; /* in ch->topo_waits */
    struct chan *ch;                 /* borrows; NULL once the channel is gone */
    enum topo_wait_kind kind;
    uint32_t method_id, ok_id;
    bool no_wait;
    uint64_t deleted; /* queue.delete: the messages its apply deleted */
    uint8_t name_len;
    char name[255];
};

/* Answers w's method on its channel, now that its command is applied here. */
static void
chan_topo_answer(struct chan *ch, struct chan_topo_wait *w, enum cluster_outcome outcome,
                 int result)
{
    struct conn *c = ch->conn;
    struct net_topology *t = c->server->topo;
    struct wire_str name = {(const uint8_t *)w->name, w->name_len};
    if (outcome != CLUSTER_COMMITTED) {
        conn_raise(c, WIRE_INTERNAL_ERROR, w->method_id, "%s", topo_outcome_text(outcome));
        return;
    }
    if (result != 0) {
        if (wire_reply_is_hard((uint16_t)result))
            conn_raise(c, (uint16_t)result, w->method_id, "%s", t->err.text);
        else
            chan_raise(ch, (uint16_t)result, w->method_id, "%s", t->err.text);
        return;
    }
    struct wire_method ok = {.id = w->ok_id};
    switch (w->kind) {
    case TOPO_WAIT_OK:
        break;
    case TOPO_WAIT_QUEUE_DELETE:
        ok.u.queue_delete_ok.message_count =
            w->deleted > UINT32_MAX ? UINT32_MAX : (uint32_t)w->deleted;
        break;
    case TOPO_WAIT_PASSIVE_EXCH:
        if (vhost_exch_find(c->vhost, name) == NULL) {
            chan_raise(ch, WIRE_NOT_FOUND, w->method_id, "no exchange '%.*s' in vhost '%s'",
                       WIRE_STR_ARG(name), c->vhost->name);
            return;
        }
        break;
    case TOPO_WAIT_QUEUE_DECLARE:
    case TOPO_WAIT_PASSIVE_QUEUE: {
        /* (a declared queue is missing only if a later command deleted it already) */
        struct queue *q = chan_queue_lookup(ch, name, w->method_id);
        if (q != NULL)
            chan_queue_declared(ch, q, w->kind == TOPO_WAIT_PASSIVE_QUEUE, w->no_wait);
        return;
    }
    }
    if (!w->no_wait)
        conn_send(c, ch->id, &ok);
}

static void
chan_topo_finish(struct chan_topo_wait *w, enum cluster_outcome outcome, int result)
{
    struct chan *ch = w->ch;
    if (ch == NULL) {
        free(w);
        return;
    }
    LIST_REMOVE(w, link);
    struct conn *c = ch->conn;
    c->store_paused--;
    if (ch->state == CHAN_OPEN && c->state == CONN_OPEN)
        chan_topo_answer(ch, w, outcome, result);
    conn_resume(c);
    free(w);
}

/* The change is applied on every running node: answered. */
static void
chan_topo_on_visible(void *arg)
{
    chan_topo_finish(arg, CLUSTER_COMMITTED, 0);
}

/* A new replicated queue is served (or waited for long enough): the change is answered once
 * every running node applied it, and the home it names. */
static void
chan_topo_on_served(void *arg)
{
    struct chan_topo_wait *w = arg;
    struct net_server *s = w->ch != NULL ? w->ch->conn->server : NULL;
    if (s == NULL || cluster_meta_wait_visible(s->env.cluster, chan_topo_on_visible, w) < 0)
        chan_topo_finish(w, CLUSTER_COMMITTED, 0);
}

/* The outcome of w's command, right after its apply here. A change is answered once every
 * running node applied it too (cluster_meta_wait_visible), a new replicated queue once it is
 * served too (its first leader named); an error or a barrier at once. */
static void
chan_topo_on_outcome(void *arg, enum cluster_outcome outcome, int result)
{
    struct chan_topo_wait *w = arg;
    struct net_server *s = w->ch != NULL ? w->ch->conn->server : NULL;
    bool barrier = w->kind == TOPO_WAIT_PASSIVE_EXCH || w->kind == TOPO_WAIT_PASSIVE_QUEUE;
    if (outcome == CLUSTER_COMMITTED && result == 0 && s != NULL && !barrier) {
        w->deleted = s->topo->deleted;
        struct queue *q = NULL;
        if (w->kind == TOPO_WAIT_QUEUE_DECLARE && s->topo->created)
            q = vhost_queue_find(w->ch->conn->vhost,
                                 (struct wire_str){(const uint8_t *)w->name, w->name_len});
        if (q != NULL && net_quorum_wait_served(s, q, chan_topo_on_served, w) == 0)
            return;
        if (cluster_meta_wait_visible(s->env.cluster, chan_topo_on_visible, w) == 0)
            return;
    }
    chan_topo_finish(w, outcome, result);
}

/* Submits b's command for ch, answered as kind (name: the queue or exchange it names) once
 * applied; the connection's input waits until then. 0, or -1 after raising. */
static int
chan_topo_submit(struct chan *ch, struct topo_buf *b, enum topo_wait_kind kind, uint32_t method_id,
                 uint32_t ok_id, bool no_wait, struct wire_str name)
{
    struct conn *c = ch->conn;
    struct chan_topo_wait *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        free(b->p);
        return conn_raise(c, WIRE_INTERNAL_ERROR, method_id, "out of memory");
    }
    *w = (struct chan_topo_wait){
        .ch = ch, .kind = kind, .method_id = method_id, .ok_id = ok_id, .no_wait = no_wait};
    w->name_len = (uint8_t)(name.len < sizeof(w->name) ? name.len : sizeof(w->name));
    memcpy(w->name, name.ptr, w->name_len);
    if (topo_cmd_submit(c->server, b, chan_topo_on_outcome, w) < 0) {
        int e = errno;
        free(w);
        return conn_raise(c, WIRE_INTERNAL_ERROR, method_id, "%s",
                          e == ENOMEM ? "out of memory" : topo_outcome_text(CLUSTER_FAILED));
    }
    LIST_INSERT_HEAD(&ch->topo_waits, w, link);
    c->store_paused++; /* the input waits for the answer (conn_resume) */
    return 0;
}

/* Starts ch's command op with the connection's context. */
static void
chan_topo_begin(struct chan *ch, struct topo_buf *b, char op)
{
    struct conn *c = ch->conn;
    topo_cmd_begin(b, op, auth_user_name(c->user), c->vhost->name, c->exclusive.id,
                   c->server->topo->self);
}

int
chan_topology_exchange_declare(struct chan *ch, const struct wire_exchange_declare *d)
{
    struct topo_buf b;
    chan_topo_begin(ch, &b, 'X');
    topo_cmd_exch_declare(&b, d);
    return chan_topo_submit(ch, &b, TOPO_WAIT_OK, WIRE_EXCHANGE_DECLARE, WIRE_EXCHANGE_DECLARE_OK,
                            d->no_wait, d->exchange);
}

int
chan_topology_exchange_delete(struct chan *ch, const struct wire_exchange_delete *d)
{
    struct topo_buf b;
    chan_topo_begin(ch, &b, 'x');
    topo_cmd_exch_delete(&b, d->exchange, d->if_unused);
    return chan_topo_submit(ch, &b, TOPO_WAIT_OK, WIRE_EXCHANGE_DELETE, WIRE_EXCHANGE_DELETE_OK,
                            d->no_wait, d->exchange);
}

int
chan_topology_bind(struct chan *ch, uint32_t method_id, uint32_t ok_id, bool to_queue,
                   struct wire_str destination, struct wire_str source, struct wire_str key,
                   struct wire_table args, bool no_wait)
{
    struct topo_buf b;
    bool unbind = method_id == WIRE_QUEUE_UNBIND || method_id == WIRE_EXCHANGE_UNBIND;
    chan_topo_begin(ch, &b, unbind ? 'b' : 'B');
    topo_cmd_bind(&b, to_queue, destination, source, key, args);
    return chan_topo_submit(ch, &b, TOPO_WAIT_OK, method_id, ok_id, no_wait, destination);
}

/* Lists c under a new owner id, for its first exclusive queue. 0, or -1 on failure. */
static int
conn_owner_list(struct conn *c)
{
    struct net_topology *t = c->server->topo;
    if (c->exclusive.id != 0)
        return 0;
    uint64_t id = 0;
    while (id == 0) {
        if (RAND_bytes(c->owner_key, sizeof(c->owner_key)) != 1)
            return -1;
        id = bytes_get64(c->owner_key);
    }
    if (hmap_insert(&t->owners, &c->owner_by_id, c->owner_key, sizeof(c->owner_key)) < 0)
        return -1;
    c->exclusive.id = id;
    return 0;
}

int
chan_topology_queue_declare(struct chan *ch, struct wire_str name,
                            const struct wire_queue_declare *d)
{
    struct conn *c = ch->conn;
    if (d->exclusive && conn_owner_list(c) < 0)
        return conn_raise(c, WIRE_INTERNAL_ERROR, WIRE_QUEUE_DECLARE, "out of memory");
    /* A transient or exclusive queue of a node down goes with it ('N', which the metadata
     * leader submits a moment later): declared again, as a client reconnecting to another node
     * does, it is a new queue here, not that one, as with RabbitMQ. */
    struct queue *q = vhost_queue_find(c->vhost, name);
    if (q != NULL && q->home != NULL && (q->owner != NULL || !q->durable) &&
        !cluster_node_running(c->server->env.cluster, q->home))
        topo_node_down_submit(c->server, q->home); /* (failed: the leader's comes later) */
    struct topo_buf b;
    chan_topo_begin(ch, &b, 'Q');
    topo_cmd_queue_declare(&b, name, d);
    return chan_topo_submit(ch, &b, TOPO_WAIT_QUEUE_DECLARE, WIRE_QUEUE_DECLARE,
                            WIRE_QUEUE_DECLARE_OK, d->no_wait, name);
}

int
chan_topology_queue_delete(struct chan *ch, struct wire_str name, const struct wire_queue_delete *d)
{
    struct conn *c = ch->conn;
    /* if-unused and if-empty are the home node's to check, before the command: it is
     * unconditional, as every node must decide alike. */
    struct queue *q;
    struct net_decl_err err;
    if ((d->if_unused || d->if_empty) &&
        net_queue_delete_check(c->vhost, chan_access_perm(c), auth_user_name(c->user),
                               &c->exclusive, name, d->if_unused, d->if_empty, &q, &err) < 0)
        return chan_raise_decl(ch, WIRE_QUEUE_DELETE, &err);
    if ((d->if_unused || d->if_empty) && q != NULL && q->home != NULL) /* its home checks */
        return relay_queue_delete(ch, q, d->if_unused, d->if_empty, d->no_wait);
    return chan_topology_queue_delete_submit(ch, name, d->no_wait);
}

int
chan_topology_queue_delete_submit(struct chan *ch, struct wire_str name, bool no_wait)
{
    struct topo_buf b;
    chan_topo_begin(ch, &b, 'q');
    topo_cmd_queue_delete(&b, name);
    return chan_topo_submit(ch, &b, TOPO_WAIT_QUEUE_DELETE, WIRE_QUEUE_DELETE, WIRE_QUEUE_DELETE_OK,
                            no_wait, name);
}

int
chan_topology_passive(struct chan *ch, uint32_t method_id, bool queue, struct wire_str name,
                      bool no_wait)
{
    struct topo_buf b;
    chan_topo_begin(ch, &b, '.');
    return chan_topo_submit(ch, &b, queue ? TOPO_WAIT_PASSIVE_QUEUE : TOPO_WAIT_PASSIVE_EXCH,
                            method_id, queue ? WIRE_QUEUE_DECLARE_OK : WIRE_EXCHANGE_DECLARE_OK,
                            no_wait, name);
}

void
chan_topology_release(struct chan *ch)
{
    struct chan_topo_wait *w;
    while ((w = LIST_FIRST(&ch->topo_waits)) != NULL) {
        LIST_REMOVE(w, link);
        w->ch = NULL; /* the outcome frees it */
    }
}

static void
conn_topo_on_owner_gone(void *arg, enum cluster_outcome outcome, int result)
{
    (void)arg;
    (void)result;
    if (outcome != CLUSTER_COMMITTED)
        log_msg(LOG_WARNING,
                "cluster: the exclusive queues of a closed connection may not be "
                "deleted: %s",
                topo_outcome_text(outcome));
}

void
conn_topology_close(struct conn *c)
{
    struct net_topology *t = c->server->topo;
    if (c->exclusive.id == 0)
        return;
    hmap_remove(&t->owners, &c->owner_by_id);
    struct queue_owner *others = &c->server->env.vhosts->others;
    struct queue *q;
    while ((q = TAILQ_FIRST(&c->exclusive.queues)) != NULL) {
        TAILQ_REMOVE(&c->exclusive.queues, q, owner_link);
        q->owner = others;
        TAILQ_INSERT_TAIL(&others->queues, q, owner_link);
    }
    struct topo_buf b;
    topo_cmd_begin(&b, 'O', NULL, "", c->exclusive.id, t->self);
    if (topo_cmd_submit(c->server, &b, conn_topo_on_owner_gone, NULL) < 0)
        log_conn(LOG_ERROR, c, "cannot delete its exclusive queues: %s", strerror(errno));
    c->exclusive.id = 0;
}
