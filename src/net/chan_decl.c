/* The exchange and queue classes on a channel: declarations with RabbitMQ's equivalence and
 * exclusivity rules, bindings (queue and exchange-to-exchange), purge and delete. Reply codes
 * and texts follow RabbitMQ's, since clients match on them. */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "net_int.h"
#include "relay.h"
#include "warren/assert.h"
#include "warren/auth.h"
#include "warren/net.h"
#include "warren/queue_args.h"
#include "warren/vhost.h"

static bool
chan_name_is_reserved(struct wire_str name)
{
    return name.len >= 4 && memcmp(name.ptr, "amq.", 4) == 0;
}

static int
chan_default_exchange_refused(struct chan *ch, uint32_t method_id)
{
    return chan_raise(ch, WIRE_ACCESS_REFUSED, method_id,
                      "operation not permitted on the default exchange");
}

#define CHAN_BOOL_TEXT(b) ((b) ? "'true'" : "'false'")

static int
chan_raise_locked(struct chan *ch, const struct queue *q, uint32_t method_id)
{
    return chan_raise(ch, WIRE_RESOURCE_LOCKED, method_id,
                      "cannot obtain exclusive access to locked queue '%s' in vhost '%s'. It "
                      "could be originally declared on another connection or the exclusive "
                      "property value does not match that of the original declaration.",
                      q->name, ch->conn->vhost->name);
}

struct queue *
chan_queue_lookup(struct chan *ch, struct wire_str name, uint32_t method_id)
{
    struct conn *c = ch->conn;
    if (name.len == 0) {
        name = ch->last_queue;
        if (name.len == 0) {
            chan_raise(ch, WIRE_NOT_FOUND, method_id, "no previously declared queue");
            return NULL;
        }
    }
    struct queue *q = vhost_queue_find(c->vhost, name);
    if (q == NULL) {
        chan_raise(ch, WIRE_NOT_FOUND, method_id, "no queue '%.*s' in vhost '%s'",
                   WIRE_STR_ARG(name), c->vhost->name);
        return NULL;
    }
    if (q->owner != NULL && q->owner != &c->exclusive) {
        chan_raise_locked(ch, q, method_id);
        return NULL;
    }
    return q;
}

/* Removes a binding if it exists and answers unbind-ok in any case: like RabbitMQ, unbinding
 * something that is not there (a missing queue, exchange or binding) is not an error. An
 * auto-delete exchange left without bindings goes. */
static int
chan_unbind_and_reply(struct chan *ch, struct exch *src, struct bind_dest dst,
                      struct wire_str routing_key, struct wire_table args, bool no_wait,
                      enum wire_method_id ok_id)
{
    struct conn *c = ch->conn;
    if (src != NULL) {
        exch_unbind(src, dst, routing_key, args);
        if (src->auto_delete && src->n_bindings_out == 0)
            vhost_exch_delete(c->vhost, src);
    }
    if (no_wait)
        return 0;
    struct wire_method ok = {.id = ok_id};
    return conn_send(c, ch->id, &ok);
}

/* Renders a value as RabbitMQ's inequivalence messages do: "none" when absent, "'10'" when
 * both sides have a value, "the value '10' of type 'signedint'" when only one does. */
static void
chan_value_text(char *dst, size_t cap, const struct wire_value *v, bool with_type)
{
    char val[128];
    int64_t i;
    if (v == NULL) {
        snprintf(dst, cap, "none");
        return;
    }
    if (wire_value_to_i64(v, &i))
        snprintf(val, sizeof(val), "%" PRId64, i);
    else if (v->type == WIRE_FIELD_LONGSTR || v->type == WIRE_FIELD_BYTES)
        snprintf(val, sizeof(val), "%.*s", WIRE_STR_ARG(v->v.str));
    else if (v->type == WIRE_FIELD_BOOL)
        snprintf(val, sizeof(val), "%s", v->v.b ? "true" : "false");
    else
        snprintf(val, sizeof(val), "...");
    if (with_type)
        snprintf(dst, cap, "the value '%s' of type '%s'", val, wire_field_type_name(v->type));
    else
        snprintf(dst, cap, "'%s'", val);
}

/* Equal as RabbitMQ compares declare arguments: integers of any width by value, other types
 * by type and value. */
static bool
chan_value_same(const struct wire_value *a, const struct wire_value *b)
{
    int64_t x, y;
    if (wire_value_to_i64(a, &x) && wire_value_to_i64(b, &y))
        return x == y;
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case WIRE_FIELD_BOOL:
        return a->v.b == b->v.b;
    case WIRE_FIELD_LONGSTR:
    case WIRE_FIELD_BYTES:
        return a->v.str.len == b->v.str.len &&
               (a->v.str.len == 0 || memcmp(a->v.str.ptr, b->v.str.ptr, a->v.str.len) == 0);
    default:
        return true; /* other types in these arguments are not meaningful: not compared */
    }
}

/* Compares the arguments RabbitMQ checks on redeclaration; others may differ freely, and an
 * implied one (queue_args_implied) may be left out. Returns the first inequivalent key, or
 * NULL. The values' texts go to got/cur. */
static const char *
chan_args_inequivalent(const char *const *keys, struct wire_table got, struct wire_table cur,
                       char *got_text, char *cur_text, size_t cap)
{
    for (const char *const *k = keys; *k != NULL; k++) {
        struct wire_value a, b;
        bool has_a = wire_table_get(got, *k, &a), has_b = wire_table_get(cur, *k, &b);
        if (!has_a && !has_b)
            continue;
        if (has_a && has_b && chan_value_same(&a, &b))
            continue;
        if (has_a != has_b && queue_args_implied(*k, has_a ? &a : &b))
            continue;
        chan_value_text(got_text, cap, has_a ? &a : NULL, !(has_a && has_b));
        chan_value_text(cur_text, cap, has_b ? &b : NULL, !(has_a && has_b));
        return *k;
    }
    return NULL;
}

static const char *const chan_exch_equivalent_args[] = {"alternate-exchange", NULL};

int
net_decl_fail(struct net_decl_err *err, uint16_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- exchanges ---- */

/* Whether perm (NULL: none) allows kind on the exchange (or queue) name; else fills err as
 * chan_access_check words it. No user (the HTTP API's Unix socket) is allowed everything. */
static bool
chan_decl_allows(const struct vhost *vh, const struct auth_perm *perm, const char *user,
                 enum auth_perm_kind kind, bool queue, struct wire_str name,
                 struct net_decl_err *err)
{
    if (!queue && name.len == 0)
        name = WIRE_STR_LIT("amq.default");
    if (user == NULL || (perm != NULL && auth_perm_allows(perm, kind, name.ptr, name.len)))
        return true;
    net_decl_fail(err, WIRE_ACCESS_REFUSED,
                  "access to %s '%.*s' in vhost '%s' refused for user '%s'",
                  queue ? "queue" : "exchange", WIRE_STR_ARG(name), vh->name, user);
    return false;
}

static int
chan_exch_inequivalent(struct net_decl_err *err, const struct vhost *vh, const struct exch *e,
                       const char *arg, const char *got, const char *cur)
{
    return net_decl_fail(err, WIRE_PRECONDITION_FAILED,
                         "inequivalent arg '%s' for exchange '%s' in vhost '%s': received %s "
                         "but current is %s",
                         arg, e->name, vh->name, got, cur);
}

int
net_exch_declare(struct vhost *vh, const struct auth_perm *perm, const char *user,
                 const struct wire_exchange_declare *d, bool *created, struct net_decl_err *err)
{
    *created = false;
    if (d->exchange.len == 0)
        return net_decl_fail(err, WIRE_ACCESS_REFUSED,
                             "operation not permitted on the default exchange");
    struct exch *e = vhost_exch_find(vh, d->exchange);
    if (d->passive) {
        if (e == NULL)
            return net_decl_fail(err, WIRE_NOT_FOUND, "no exchange '%.*s' in vhost '%s'",
                                 WIRE_STR_ARG(d->exchange), vh->name);
        return 0;
    }
    enum exch_type type;
    if (exch_type_parse(d->type, &type) < 0)
        return net_decl_fail(err, WIRE_COMMAND_INVALID, "unknown exchange type '%.*s'",
                             WIRE_STR_ARG(d->type));
    if (!chan_decl_allows(vh, perm, user, AUTH_CONFIGURE, false, d->exchange, err))
        return -1;
    struct wire_value ae;
    bool has_ae = wire_table_get(d->arguments, "alternate-exchange", &ae);
    if (has_ae && ae.type != WIRE_FIELD_LONGSTR)
        return net_decl_fail(err, WIRE_PRECONDITION_FAILED,
                             "invalid type '%s' for arg 'alternate-exchange' in exchange '%.*s' "
                             "in vhost '%s'",
                             wire_field_type_name(ae.type), WIRE_STR_ARG(d->exchange), vh->name);
    if (e != NULL) {
        char got[160], cur[160];
        if (e->type != type) {
            snprintf(got, sizeof(got), "'%s'", exch_type_name(type));
            snprintf(cur, sizeof(cur), "'%s'", exch_type_name(e->type));
            return chan_exch_inequivalent(err, vh, e, "type", got, cur);
        }
        if (e->durable != d->durable)
            return chan_exch_inequivalent(err, vh, e, "durable", CHAN_BOOL_TEXT(d->durable),
                                          CHAN_BOOL_TEXT(e->durable));
        if (e->auto_delete != d->auto_delete)
            return chan_exch_inequivalent(err, vh, e, "auto_delete", CHAN_BOOL_TEXT(d->auto_delete),
                                          CHAN_BOOL_TEXT(e->auto_delete));
        if (e->internal != d->internal)
            return chan_exch_inequivalent(err, vh, e, "internal", CHAN_BOOL_TEXT(d->internal),
                                          CHAN_BOOL_TEXT(e->internal));
        const char *arg = chan_args_inequivalent(chan_exch_equivalent_args, d->arguments,
                                                 (struct wire_table){e->args, e->args_len}, got,
                                                 cur, sizeof(got));
        if (arg != NULL)
            return chan_exch_inequivalent(err, vh, e, arg, got, cur);
        return 0;
    }
    /* amq.* names belong to the server: the predeclared ones may be redeclared equivalently
     * (above), no others created. */
    if (chan_name_is_reserved(d->exchange))
        return net_decl_fail(err, WIRE_ACCESS_REFUSED,
                             "exchange name '%.*s' contains reserved prefix 'amq.*'",
                             WIRE_STR_ARG(d->exchange));
    /* A new exchange's alternate exchange: read on it, write on the alternate. */
    if (has_ae && (!chan_decl_allows(vh, perm, user, AUTH_READ, false, d->exchange, err) ||
                   !chan_decl_allows(vh, perm, user, AUTH_WRITE, false, ae.v.str, err)))
        return -1;
    e = exch_new(vh, d->exchange, type, d->durable, d->auto_delete, d->internal, d->arguments);
    if (e == NULL || vhost_exch_add(vh, e) < 0) {
        if (e != NULL)
            exch_free(e);
        return net_decl_fail(err, WIRE_RESOURCE_ERROR, "out of memory");
    }
    *created = true;
    return 0;
}

int
chan_raise_decl(struct chan *ch, uint32_t method_id, const struct net_decl_err *err)
{
    if (wire_reply_is_hard(err->code))
        return conn_raise(ch->conn, err->code, method_id, "%s", err->text);
    return chan_raise(ch, err->code, method_id, "%s", err->text);
}

static int
chan_on_exchange_declare(struct chan *ch, const struct wire_exchange_declare *d)
{
    struct conn *c = ch->conn;
    struct net_decl_err err;
    bool created;
    if (c->server->topo != NULL) {
        if (!d->passive)
            return chan_topology_exchange_declare(ch, d);
        if (d->exchange.len > 0 && vhost_exch_find(c->vhost, d->exchange) == NULL)
            return chan_topology_passive(ch, WIRE_EXCHANGE_DECLARE, false, d->exchange, d->no_wait);
    }
    if (net_exch_declare(c->vhost, chan_access_perm(c), auth_user_name(c->user), d, &created,
                         &err) < 0)
        return chan_raise_decl(ch, WIRE_EXCHANGE_DECLARE, &err);
    if (d->no_wait)
        return 0;
    struct wire_method ok = {.id = WIRE_EXCHANGE_DECLARE_OK};
    return conn_send(c, ch->id, &ok);
}

int
net_exch_delete(struct vhost *vh, const struct auth_perm *perm, const char *user,
                struct wire_str name, bool if_unused, struct net_decl_err *err)
{
    if (name.len == 0)
        return net_decl_fail(err, WIRE_ACCESS_REFUSED,
                             "operation not permitted on the default exchange");
    if (chan_name_is_reserved(name))
        return net_decl_fail(err, WIRE_ACCESS_REFUSED,
                             "deletion of system exchange '%.*s' in vhost '%s' not allowed",
                             WIRE_STR_ARG(name), vh->name);
    if (!chan_decl_allows(vh, perm, user, AUTH_CONFIGURE, false, name, err))
        return -1;
    struct exch *e = vhost_exch_find(vh, name);
    if (e != NULL) { /* deleting a missing exchange succeeds, as in RabbitMQ */
        if (if_unused && e->n_bindings_out > 0)
            return net_decl_fail(err, WIRE_PRECONDITION_FAILED,
                                 "exchange '%s' in vhost '%s' in use", e->name, vh->name);
        vhost_exch_delete(vh, e);
    }
    return 0;
}

static int
chan_on_exchange_delete(struct chan *ch, const struct wire_exchange_delete *d)
{
    struct conn *c = ch->conn;
    struct net_decl_err err;
    if (c->server->topo != NULL)
        return chan_topology_exchange_delete(ch, d);
    if (net_exch_delete(c->vhost, chan_access_perm(c), auth_user_name(c->user), d->exchange,
                        d->if_unused, &err) < 0)
        return chan_raise_decl(ch, WIRE_EXCHANGE_DELETE, &err);
    if (d->no_wait)
        return 0;
    struct wire_method ok = {.id = WIRE_EXCHANGE_DELETE_OK};
    return conn_send(c, ch->id, &ok);
}

static struct queue *chan_decl_queue(struct vhost *vh, const struct queue_owner *own,
                                     struct wire_str name, struct net_decl_err *err);

int
net_bind(struct vhost *vh, const struct auth_perm *perm, const struct auth_user *u,
         const struct queue_owner *own, bool unbind, bool to_queue, struct wire_str destination,
         struct wire_str source, struct wire_str routing_key, struct wire_table args,
         struct net_decl_err *err)
{
    const char *user = u != NULL ? auth_user_name(u) : NULL;
    /* RabbitMQ's order: write on the destination, the default exchange, read on the source,
     * the topic permission on the routing key (when the source exists), then existence. */
    if (!chan_decl_allows(vh, perm, user, AUTH_WRITE, to_queue, destination, err))
        return -1;
    if ((!to_queue && destination.len == 0) || source.len == 0)
        return net_decl_fail(err, WIRE_ACCESS_REFUSED,
                             "operation not permitted on the default exchange");
    if (!chan_decl_allows(vh, perm, user, AUTH_READ, false, source, err))
        return -1;
    struct exch *src = vhost_exch_find(vh, source);
    if (u != NULL && src != NULL && src->type == EXCH_TOPIC &&
        !auth_topic_allows(u, vh->name, src->name, src->name_len, AUTH_READ, routing_key.ptr,
                           routing_key.len, NULL))
        return net_decl_fail(err, WIRE_ACCESS_REFUSED,
                             "access to topic '%.*s' in exchange '%s' in vhost '%s' refused for "
                             "user '%s'",
                             WIRE_STR_ARG(routing_key), src->name, vh->name, user);
    struct bind_dest bd;
    if (to_queue) {
        struct queue *q =
            unbind ? vhost_queue_find(vh, destination) : chan_decl_queue(vh, own, destination, err);
        if (q == NULL && !unbind)
            return -1;
        bd = bind_dest_queue(q);
        if (q == NULL)
            src = NULL;
    } else {
        struct exch *dst = vhost_exch_find(vh, destination);
        if (dst == NULL && !unbind)
            return net_decl_fail(err, WIRE_NOT_FOUND, "no exchange '%.*s' in vhost '%s'",
                                 WIRE_STR_ARG(destination), vh->name);
        bd = bind_dest_exch(dst);
        if (dst == NULL)
            src = NULL;
    }
    if (unbind) {
        /* Like RabbitMQ, unbinding what is not there is not an error. An auto-delete exchange
         * left without bindings goes. */
        if (src != NULL) {
            exch_unbind(src, bd, routing_key, args);
            if (src->auto_delete && src->n_bindings_out == 0)
                vhost_exch_delete(vh, src);
        }
        return 0;
    }
    if (src == NULL)
        return net_decl_fail(err, WIRE_NOT_FOUND, "no exchange '%.*s' in vhost '%s'",
                             WIRE_STR_ARG(source), vh->name);
    char why[200];
    if (exch_check_bind_args(src, args, why, sizeof(why)) < 0)
        return net_decl_fail(err, WIRE_PRECONDITION_FAILED, "%s", why);
    if (exch_bind(src, bd, routing_key, args) < 0)
        return net_decl_fail(err, WIRE_RESOURCE_ERROR, "out of memory");
    return 0;
}

/* exchange.bind and exchange.unbind. */
static int
chan_on_exchange_binding(struct chan *ch, uint32_t method_id, struct wire_str destination,
                         struct wire_str source, struct wire_str routing_key, bool no_wait,
                         struct wire_table args)
{
    struct conn *c = ch->conn;
    struct net_decl_err err;
    bool unbind = method_id == WIRE_EXCHANGE_UNBIND;
    if (c->server->topo != NULL)
        return chan_topology_bind(ch, method_id,
                                  unbind ? WIRE_EXCHANGE_UNBIND_OK : WIRE_EXCHANGE_BIND_OK, false,
                                  destination, source, routing_key, args, no_wait);
    if (net_bind(c->vhost, chan_access_perm(c), c->user, &c->exclusive, unbind, false, destination,
                 source, routing_key, args, &err) < 0)
        return chan_raise_decl(ch, method_id, &err);
    if (no_wait)
        return 0;
    struct wire_method ok = {.id = unbind ? WIRE_EXCHANGE_UNBIND_OK : WIRE_EXCHANGE_BIND_OK};
    return conn_send(c, ch->id, &ok);
}

int
chan_on_exchange_method(struct chan *ch, const struct wire_method *m)
{
    switch (m->id) {
    case WIRE_EXCHANGE_DECLARE:
        return chan_on_exchange_declare(ch, &m->u.exchange_declare);
    case WIRE_EXCHANGE_DELETE:
        return chan_on_exchange_delete(ch, &m->u.exchange_delete);
    case WIRE_EXCHANGE_BIND: {
        const struct wire_exchange_bind *b = &m->u.exchange_bind;
        return chan_on_exchange_binding(ch, m->id, b->destination, b->source, b->routing_key,
                                        b->no_wait, b->arguments);
    }
    case WIRE_EXCHANGE_UNBIND: {
        const struct wire_exchange_unbind *b = &m->u.exchange_unbind;
        return chan_on_exchange_binding(ch, m->id, b->destination, b->source, b->routing_key,
                                        b->no_wait, b->arguments);
    }
    default:
        return conn_raise(ch->conn, WIRE_COMMAND_INVALID, m->id, "unimplemented method");
    }
}

/* ---- queues ---- */

static int
chan_queue_inequivalent(struct net_decl_err *err, const struct vhost *vh, const struct queue *q,
                        const char *arg, const char *got, const char *cur)
{
    return net_decl_fail(err, WIRE_PRECONDITION_FAILED,
                         "inequivalent arg '%s' for queue '%s' in vhost '%s': received %s but "
                         "current is %s",
                         arg, q->name, vh->name, got, cur);
}

void
chan_queue_declared(struct chan *ch, struct queue *q, bool passive, bool no_wait)
{
    if (passive)
        queue_used(q); /* (a new declaration counted in net_queue_declare) */
    memcpy(ch->last_queue_buf, q->name, q->name_len);
    ch->last_queue = (struct wire_str){(const uint8_t *)ch->last_queue_buf, q->name_len};
    if (no_wait)
        return;
    struct wire_method ok = {.id = WIRE_QUEUE_DECLARE_OK};
    ok.u.queue_declare_ok.queue = (struct wire_str){(const uint8_t *)q->name, q->name_len};
    ok.u.queue_declare_ok.message_count =
        q->n_ready > UINT32_MAX ? UINT32_MAX : (uint32_t)q->n_ready;
    ok.u.queue_declare_ok.consumer_count = q->n_consumers;
    conn_send(ch->conn, ch->id, &ok);
}

/* Fills err as chan_raise_locked words it. Returns -1. */
static int
chan_decl_locked(struct net_decl_err *err, const struct vhost *vh, const struct queue *q)
{
    return net_decl_fail(err, WIRE_RESOURCE_LOCKED,
                         "cannot obtain exclusive access to locked queue '%s' in vhost '%s'. It "
                         "could be originally declared on another connection or the exclusive "
                         "property value does not match that of the original declaration.",
                         q->name, vh->name);
}

/* The queue name in vh for a connection with exclusive queues own (NULL: none, the HTTP
 * API), as chan_queue_lookup finds it: NULL with err when missing or another's exclusive. */
static struct queue *
chan_decl_queue(struct vhost *vh, const struct queue_owner *own, struct wire_str name,
                struct net_decl_err *err)
{
    struct queue *q = vhost_queue_find(vh, name);
    if (q == NULL) {
        net_decl_fail(err, WIRE_NOT_FOUND, "no queue '%.*s' in vhost '%s'", WIRE_STR_ARG(name),
                      vh->name);
        return NULL;
    }
    if (q->owner != NULL && q->owner != own) {
        chan_decl_locked(err, vh, q);
        return NULL;
    }
    return q;
}

int
net_queue_declare(struct vhost *vh, const struct auth_perm *perm, const char *user,
                  struct queue_owner *own, const struct net_queue_home *home, const char *log_ctx,
                  struct wire_str name, const struct wire_queue_declare *d, struct queue **out,
                  bool *created, struct net_decl_err *err)
{
    *created = false;
    if (d->queue.len > 0 && chan_name_is_reserved(name))
        return net_decl_fail(err, WIRE_ACCESS_REFUSED,
                             "queue name '%.*s' contains reserved prefix 'amq.*'",
                             WIRE_STR_ARG(name));
    if (!chan_decl_allows(vh, perm, user, AUTH_CONFIGURE, true, name, err))
        return -1;
    struct queue *q = vhost_queue_find(vh, name);
    if (q != NULL) {
        /* Exclusivity is checked before equivalence, as RabbitMQ does. */
        q = chan_decl_queue(vh, own, name, err);
        if (q == NULL)
            return -1;
        char got[160], cur[160];
        if ((q->owner != NULL) != d->exclusive)
            return chan_decl_locked(err, vh, q);
        if (q->durable != d->durable)
            return chan_queue_inequivalent(err, vh, q, "durable", CHAN_BOOL_TEXT(d->durable),
                                           CHAN_BOOL_TEXT(q->durable));
        if (q->auto_delete != d->auto_delete)
            return chan_queue_inequivalent(err, vh, q, "auto_delete",
                                           CHAN_BOOL_TEXT(d->auto_delete),
                                           CHAN_BOOL_TEXT(q->auto_delete));
        struct wire_table cur_args = {q->args, q->args_len};
        const char *arg = chan_args_inequivalent(queue_args_equivalent_keys(cur_args), d->arguments,
                                                 cur_args, got, cur, sizeof(got));
        if (arg != NULL)
            return chan_queue_inequivalent(err, vh, q, arg, got, cur);
        goto ok;
    }
    /* Like RabbitMQ, the arguments are checked only when the queue is made: a redeclare is
     * compared above, a passive declare not at all. */
    char text[256];
    struct queue_args_decl qd = {.name = name,
                                 .vhost = vh->name,
                                 .server_named = d->queue.len == 0,
                                 .durable = d->durable,
                                 .exclusive = d->exclusive,
                                 .auto_delete = d->auto_delete};
    if (queue_args_check(d->arguments, &qd, text, sizeof(text)) < 0)
        return net_decl_fail(err, WIRE_PRECONDITION_FAILED, "%s", text);
    /* Limits and the dead-letter exchange's permissions count for new queues only. */
    const struct vhost_meta *vm = &vh->meta;
    if (vm->max_queues >= 0 && vh->queues.count >= (uint64_t)vm->max_queues) {
        if (log_enabled(LOG_WARNING))
            log_write(LOG_WARNING, log_ctx, "vhost '%s' is at its queue limit (%lld)", vh->name,
                      (long long)vm->max_queues);
        return net_decl_fail(err, WIRE_PRECONDITION_FAILED,
                             "cannot declare queue '%.*s': queue limit in vhost '%s' (%lld) is "
                             "reached",
                             WIRE_STR_ARG(name), vh->name, (long long)vm->max_queues);
    }
    struct wire_value dlx;
    if (wire_table_get(d->arguments, "x-dead-letter-exchange", &dlx) &&
        dlx.type == WIRE_FIELD_LONGSTR &&
        (!chan_decl_allows(vh, perm, user, AUTH_READ, true, name, err) ||
         !chan_decl_allows(vh, perm, user, AUTH_WRITE, false, dlx.v.str, err)))
        return -1;
    q = queue_new(vh, name, d->durable, d->auto_delete, d->exclusive ? own : NULL, d->arguments);
    if (q != NULL && home != NULL) {
        q->owner_id = d->exclusive ? home->owner_id : 0;
        q->group_id = q->settings.quorum ? home->group_id : 0;
        if ((home->node != NULL && (q->home = strdup(home->node)) == NULL) ||
            (d->exclusive && q->group_id != 0 &&
             (q->owner_node = strdup(home->owner_node)) == NULL)) {
            queue_free(q, NULL, NULL);
            q = NULL;
        }
    }
    if (q == NULL || vhost_queue_add(vh, q) < 0) {
        if (q != NULL)
            queue_free(q, NULL, NULL);
        return net_decl_fail(err, WIRE_RESOURCE_ERROR, "out of memory");
    }
    *created = true;
    if (q->group_id == 0 && queue_args_unapplied(d->arguments, text, sizeof(text)) > 0 &&
        log_enabled(LOG_WARNING))
        log_write(LOG_WARNING, log_ctx, "queue '%s' in vhost '%s': arguments not applied yet: %s",
                  q->name, vh->name, text);
ok:
    stats_node.queues_declared++;
    queue_used(q); /* a declaration counts as a use (x-expires), as in RabbitMQ */
    *out = q;
    return 0;
}

static int
chan_on_queue_declare(struct chan *ch, const struct wire_queue_declare *d)
{
    struct conn *c = ch->conn;
    char genbuf[64];
    struct wire_str name = d->queue;
    struct queue *q = NULL;
    if (d->passive && chan_reply_to_is_pseudo_queue(name)) {
        /* Clients check that direct reply-to is there before using it. */
        struct wire_method ok = {.id = WIRE_QUEUE_DECLARE_OK};
        ok.u.queue_declare_ok.queue = name;
        return d->no_wait ? 0 : conn_send(c, ch->id, &ok);
    }
    if (d->passive) {
        if (c->server->topo != NULL && name.len > 0 && vhost_queue_find(c->vhost, name) == NULL)
            return chan_topology_passive(ch, WIRE_QUEUE_DECLARE, true, name, d->no_wait);
        q = chan_queue_lookup(ch, name, WIRE_QUEUE_DECLARE);
        if (q == NULL)
            return -1;
    } else {
        if (name.len == 0) {
            chan_random_name(genbuf, sizeof(genbuf), "amq.gen-");
            name = (struct wire_str){(const uint8_t *)genbuf, strlen(genbuf)};
        }
        if (c->server->topo != NULL)
            return chan_topology_queue_declare(ch, name, d);
        struct net_decl_err err;
        bool created;
        if (net_queue_declare(c->vhost, chan_access_perm(c), auth_user_name(c->user), &c->exclusive,
                              NULL, c->ctx, name, d, &q, &created, &err) < 0)
            return chan_raise_decl(ch, WIRE_QUEUE_DECLARE, &err);
    }
    chan_queue_declared(ch, q, d->passive, d->no_wait);
    return 0;
}

static int
chan_on_queue_unbind(struct chan *ch, struct wire_str queue, struct wire_str exchange,
                     struct wire_str routing_key, struct wire_table args)
{
    struct conn *c = ch->conn;
    if (exchange.len == 0)
        return chan_default_exchange_refused(ch, WIRE_QUEUE_UNBIND);
    if (chan_access_check(ch, WIRE_QUEUE_UNBIND, AUTH_READ, false, exchange) < 0 ||
        chan_access_topic(ch, WIRE_QUEUE_UNBIND, vhost_exch_find(c->vhost, exchange), AUTH_READ,
                          routing_key) < 0)
        return -1;
    struct queue *q = vhost_queue_find(c->vhost, queue.len > 0 ? queue : ch->last_queue);
    struct exch *e = vhost_exch_find(c->vhost, exchange);
    struct bind_dest bd = bind_dest_queue(q);
    if (q == NULL)
        e = NULL;
    else if (q->owner != NULL && q->owner != &c->exclusive && e != NULL) {
        /* Another connection's exclusive queue: refused only if there is something to do. */
        if (exch_has_binding(e, bd, routing_key, args))
            return chan_raise_locked(ch, q, WIRE_QUEUE_UNBIND);
        e = NULL;
    }
    return chan_unbind_and_reply(ch, e, bd, routing_key, args, false, WIRE_QUEUE_UNBIND_OK);
}

/* queue.bind (queue.unbind is chan_on_queue_unbind). */
static int
chan_on_queue_binding(struct chan *ch, uint32_t method_id, struct wire_str queue,
                      struct wire_str exchange, struct wire_str routing_key, bool no_wait,
                      struct wire_table args)
{
    struct conn *c = ch->conn;
    if (method_id == WIRE_QUEUE_UNBIND && c->server->topo != NULL)
        return chan_topology_bind(ch, method_id, WIRE_QUEUE_UNBIND_OK, true,
                                  queue.len > 0 ? queue : ch->last_queue, exchange, routing_key,
                                  args, false);
    if (method_id == WIRE_QUEUE_UNBIND) {
        if (chan_access_queue(ch, method_id, AUTH_WRITE, queue) < 0)
            return -1;
        return chan_on_queue_unbind(ch, queue, exchange, routing_key, args);
    }
    /* RabbitMQ's order: the "" shortcut (the channel's last declared queue) first, then
     * net_bind's checks. */
    struct wire_str name = queue.len > 0 ? queue : ch->last_queue;
    if (name.len == 0)
        return chan_raise(ch, WIRE_NOT_FOUND, method_id, "no previously declared queue");
    /* "" as routing key with an unnamed queue means the last declared queue's name. */
    if (routing_key.len == 0 && queue.len == 0)
        routing_key = ch->last_queue;
    if (c->server->topo != NULL)
        return chan_topology_bind(ch, method_id, WIRE_QUEUE_BIND_OK, true, name, exchange,
                                  routing_key, args, no_wait);
    struct net_decl_err err;
    if (net_bind(c->vhost, chan_access_perm(c), c->user, &c->exclusive, false, true, name, exchange,
                 routing_key, args, &err) < 0)
        return chan_raise_decl(ch, method_id, &err);
    if (no_wait)
        return 0;
    struct wire_method ok = {.id = WIRE_QUEUE_BIND_OK};
    return conn_send(c, ch->id, &ok);
}

int
net_queue_purge(struct vhost *vh, const struct auth_perm *perm, const char *user,
                const struct queue_owner *own, struct wire_str name, uint64_t *count,
                struct queue **remote, struct net_decl_err *err)
{
    *remote = NULL;
    *count = 0;
    if (!chan_decl_allows(vh, perm, user, AUTH_READ, true, name, err))
        return -1;
    struct queue *q = chan_decl_queue(vh, own, name, err);
    if (q == NULL)
        return -1;
    if (q->home != NULL)
        *remote = q; /* its messages are its home's: the caller asks it */
    else
        *count = queue_cmd_purge(q);
    return 0;
}

static int
chan_on_queue_purge(struct chan *ch, const struct wire_queue_purge *p)
{
    struct conn *c = ch->conn;
    struct wire_str name = p->queue.len > 0 ? p->queue : ch->last_queue;
    struct net_decl_err err;
    uint64_t n;
    struct queue *remote;
    if (name.len == 0)
        return chan_raise(ch, WIRE_NOT_FOUND, WIRE_QUEUE_PURGE, "no previously declared queue");
    if (net_queue_purge(c->vhost, chan_access_perm(c), auth_user_name(c->user), &c->exclusive, name,
                        &n, &remote, &err) < 0)
        return chan_raise_decl(ch, WIRE_QUEUE_PURGE, &err);
    if (remote != NULL)
        return relay_purge(ch, remote, p->no_wait);
    if (p->no_wait)
        return 0;
    struct wire_method ok = {.id = WIRE_QUEUE_PURGE_OK};
    ok.u.queue_purge_ok.message_count = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    return conn_send(c, ch->id, &ok);
}

int
net_queue_delete_check(struct vhost *vh, const struct auth_perm *perm, const char *user,
                       const struct queue_owner *own, struct wire_str name, bool if_unused,
                       bool if_empty, struct queue **out, struct net_decl_err *err)
{
    *out = NULL;
    if (!chan_decl_allows(vh, perm, user, AUTH_CONFIGURE, true, name, err))
        return -1;
    /* Deleting a queue that does not exist succeeds, as in RabbitMQ. */
    if (vhost_queue_find(vh, name) == NULL)
        return 0;
    struct queue *q = chan_decl_queue(vh, own, name, err);
    if (q == NULL)
        return -1;
    if (q->home != NULL) { /* only its home knows its consumers and messages */
        *out = q;
        return 0;
    }
    if (if_unused && q->n_consumers > 0)
        return net_decl_fail(err, WIRE_PRECONDITION_FAILED, "queue '%s' in vhost '%s' in use",
                             q->name, vh->name);
    if (if_empty && q->n_ready > 0)
        return net_decl_fail(err, WIRE_PRECONDITION_FAILED, "queue '%s' in vhost '%s' not empty",
                             q->name, vh->name);
    *out = q;
    return 0;
}

int
net_queue_delete(struct vhost *vh, const struct auth_perm *perm, const char *user,
                 const struct queue_owner *own, struct wire_str name, bool if_unused, bool if_empty,
                 uint64_t *count, struct net_decl_err *err)
{
    struct queue *q;
    *count = 0;
    if (net_queue_delete_check(vh, perm, user, own, name, if_unused, if_empty, &q, err) < 0)
        return -1;
    if (q != NULL)
        *count = vhost_queue_delete(vh, q);
    return 0;
}

static int
chan_on_queue_delete(struct chan *ch, const struct wire_queue_delete *d)
{
    struct conn *c = ch->conn;
    uint64_t n = 0;
    struct wire_str name = d->queue.len > 0 ? d->queue : ch->last_queue;
    struct net_decl_err err;
    if (name.len > 0 && c->server->topo != NULL)
        return chan_topology_queue_delete(ch, name, d);
    /* No name and no queue declared before: nothing to delete, deleted. */
    if (name.len > 0 &&
        net_queue_delete(c->vhost, chan_access_perm(c), auth_user_name(c->user), &c->exclusive,
                         name, d->if_unused, d->if_empty, &n, &err) < 0)
        return chan_raise_decl(ch, WIRE_QUEUE_DELETE, &err);
    if (d->no_wait)
        return 0;
    struct wire_method ok = {.id = WIRE_QUEUE_DELETE_OK};
    ok.u.queue_delete_ok.message_count = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    return conn_send(c, ch->id, &ok);
}

int
chan_on_queue_method(struct chan *ch, const struct wire_method *m)
{
    switch (m->id) {
    case WIRE_QUEUE_DECLARE:
        return chan_on_queue_declare(ch, &m->u.queue_declare);
    case WIRE_QUEUE_BIND: {
        const struct wire_queue_bind *b = &m->u.queue_bind;
        return chan_on_queue_binding(ch, m->id, b->queue, b->exchange, b->routing_key, b->no_wait,
                                     b->arguments);
    }
    case WIRE_QUEUE_UNBIND: {
        const struct wire_queue_unbind *b = &m->u.queue_unbind;
        return chan_on_queue_binding(ch, m->id, b->queue, b->exchange, b->routing_key, false,
                                     b->arguments);
    }
    case WIRE_QUEUE_PURGE:
        return chan_on_queue_purge(ch, &m->u.queue_purge);
    case WIRE_QUEUE_DELETE:
        return chan_on_queue_delete(ch, &m->u.queue_delete);
    default:
        return conn_raise(ch->conn, WIRE_COMMAND_INVALID, m->id, "unimplemented method");
    }
}

void
chan_delete_exclusive_queues(struct conn *c)
{
    struct queue *q;
    while ((q = TAILQ_FIRST(&c->exclusive.queues)) != NULL)
        vhost_queue_delete(q->vhost, q);
}
