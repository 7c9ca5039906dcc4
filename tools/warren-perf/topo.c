/* warren-perf's topology: the names of the queues and the exchange, which queues a message
 * reaches, and the setup connection that declares them before the run (and a binding per
 * queue when an exchange is used), reads their depths in the backlog mode, and deletes them
 * afterwards unless --keep-queues. Queues are durable with --persistent and never
 * auto-delete: in the backlog mode they must outlive the producers' connections. The amq.*
 * exchanges are only declared passively (RabbitMQ refuses the rest with 403) and never
 * deleted.
 *
 * Queue i is declared with the --queue-arg arguments. With --dead-letter it also gets
 * x-dead-letter-exchange PREFIX-dlx (a direct exchange) and x-dead-letter-routing-key
 * PREFIX-dead-i, the name of its dead-letter queue, bound to PREFIX-dlx with that key: each
 * queue's dead messages reach its own dead-letter queue whatever their routing key, and the
 * consumers read those. The dead-letter queues are declared first, so that nothing dies
 * before they exist. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "client.h"
#include "perf.h"
#include "warren/assert.h"

void
perf_queue_name(const struct perf_opts *o, unsigned i, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s-%u", o->prefix, i);
}

void
perf_consumed_queue_name(const struct perf_opts *o, unsigned i, char *buf, size_t cap)
{
    if (o->dead_letter)
        snprintf(buf, cap, "%s-dead-%u", o->prefix, i);
    else
        perf_queue_name(o, i, buf, cap);
}

static void
dlx_name(const struct perf_opts *o, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s-dlx", o->prefix);
}

const char *
perf_exchange(const struct perf_opts *o)
{
    return o->exchange;
}

bool
perf_routes_all(const struct perf_opts *o)
{
    if (o->exchange[0] == 0)
        return false;
    return strcmp(o->exchange_type, "fanout") == 0 || o->routing_key[0] != 0 ||
           o->binding_key[0] != 0;
}

static struct wire_str
wstr(const char *s)
{
    return (struct wire_str){(const uint8_t *)s, (uint32_t)strlen(s)};
}

static bool
is_builtin(const char *exchange)
{
    return strncmp(exchange, "amq.", 4) == 0;
}

static int
declare_exchange(struct perf_conn *c, const struct perf_opts *o, const char *ex, const char *type)
{
    struct wire_method m = {.id = WIRE_EXCHANGE_DECLARE};
    m.u.exchange_declare.exchange = wstr(ex);
    m.u.exchange_declare.type = wstr(type);
    m.u.exchange_declare.passive = is_builtin(ex);
    m.u.exchange_declare.durable = o->persistent;
    return perf_conn_rpc(c, &m, WIRE_EXCHANGE_DECLARE_OK, NULL, PERF_RPC_TIMEOUT_MS);
}

/* Declares queue q with the arguments args (encoded entries, none when len 0) and binds it to
 * ex with key unless ex is "". */
static int
declare_queue(struct perf_conn *c, const struct perf_opts *o, const char *q, struct wire_table args,
              const char *ex, const char *key)
{
    struct wire_method m = {.id = WIRE_QUEUE_DECLARE};
    m.u.queue_declare.queue = wstr(q);
    m.u.queue_declare.durable = o->persistent;
    m.u.queue_declare.arguments = args;
    if (perf_conn_rpc(c, &m, WIRE_QUEUE_DECLARE_OK, NULL, PERF_RPC_TIMEOUT_MS) < 0)
        return -1;
    if (ex[0] == 0)
        return 0;
    m = (struct wire_method){.id = WIRE_QUEUE_BIND};
    m.u.queue_bind.queue = wstr(q);
    m.u.queue_bind.exchange = wstr(ex);
    m.u.queue_bind.routing_key = wstr(key);
    return perf_conn_rpc(c, &m, WIRE_QUEUE_BIND_OK, NULL, PERF_RPC_TIMEOUT_MS);
}

/* Queue i's declare arguments, encoded into buf: --queue-arg's, then --dead-letter's. */
static struct wire_table
queue_args(const struct perf_opts *o, unsigned i, uint8_t *buf, size_t cap)
{
    struct wire_writer w;
    char name[PERF_NAME_MAX];
    wire_writer_init(&w, buf, cap);
    for (unsigned k = 0; k < o->n_queue_args; k++) {
        const struct perf_queue_arg *a = &o->queue_args[k];
        if (a->is_int)
            wire_table_put_i64(&w, a->key, a->num);
        else
            wire_table_put_longstr(&w, a->key, wstr(a->str));
    }
    if (o->dead_letter) {
        dlx_name(o, name, sizeof name);
        wire_table_put_longstr(&w, "x-dead-letter-exchange", wstr(name));
        perf_consumed_queue_name(o, i, name, sizeof name);
        wire_table_put_longstr(&w, "x-dead-letter-routing-key", wstr(name));
    }
    WR_ASSERT(!w.overflow); /* cap holds PERF_QUEUE_ARGS_MAX + 2 arguments of the longest */
    return (struct wire_table){buf, (uint32_t)wire_writer_len(&w)};
}

int
perf_topo_setup(struct perf_conn *c, const struct perf_opts *o)
{
    uint8_t args[(PERF_QUEUE_ARGS_MAX + 2) * 2 * (PERF_NAME_MAX + 8)];
    char q[PERF_NAME_MAX], dlx[PERF_NAME_MAX];
    const char *ex = perf_exchange(o);

    dlx_name(o, dlx, sizeof dlx);
    if (ex[0] != 0 && declare_exchange(c, o, ex, o->exchange_type) < 0)
        return -1;
    if (o->dead_letter && declare_exchange(c, o, dlx, "direct") < 0)
        return -1;
    for (unsigned i = 0; i < o->queues; i++) {
        perf_queue_name(o, i, q, sizeof q);
        const char *key = o->binding_key[0]   ? o->binding_key
                          : o->routing_key[0] ? o->routing_key
                                              : q;
        if (o->dead_letter) {
            char dq[PERF_NAME_MAX];
            perf_consumed_queue_name(o, i, dq, sizeof dq);
            if (declare_queue(c, o, dq, (struct wire_table){0}, dlx, dq) < 0)
                return -1;
        }
        if (declare_queue(c, o, q, queue_args(o, i, args, sizeof args), ex, key) < 0)
            return -1;
    }
    return 0;
}

int
perf_topo_depth(struct perf_conn *c, const struct perf_opts *o, uint64_t *total)
{
    struct wire_method m, r;
    char q[PERF_NAME_MAX];
    *total = 0;
    for (unsigned i = 0; i < o->queues; i++) {
        perf_consumed_queue_name(o, i, q, sizeof q);
        m = (struct wire_method){.id = WIRE_QUEUE_DECLARE};
        m.u.queue_declare.queue = wstr(q);
        m.u.queue_declare.passive = true;
        if (perf_conn_rpc(c, &m, WIRE_QUEUE_DECLARE_OK, &r, PERF_RPC_TIMEOUT_MS) < 0)
            return -1;
        *total += r.u.queue_declare_ok.message_count;
    }
    return 0;
}

static int
delete_queue(struct perf_conn *c, const char *q)
{
    struct wire_method m = {.id = WIRE_QUEUE_DELETE};
    m.u.queue_delete.queue = wstr(q);
    return perf_conn_rpc(c, &m, WIRE_QUEUE_DELETE_OK, NULL, PERF_RPC_TIMEOUT_MS);
}

static int
delete_exchange(struct perf_conn *c, const char *ex)
{
    struct wire_method m = {.id = WIRE_EXCHANGE_DELETE};
    m.u.exchange_delete.exchange = wstr(ex);
    return perf_conn_rpc(c, &m, WIRE_EXCHANGE_DELETE_OK, NULL, PERF_RPC_TIMEOUT_MS);
}

int
perf_topo_teardown(struct perf_conn *c, const struct perf_opts *o)
{
    char q[PERF_NAME_MAX];
    const char *ex = perf_exchange(o);

    if (o->keep_queues)
        return 0;
    for (unsigned i = 0; i < o->queues; i++) {
        perf_queue_name(o, i, q, sizeof q);
        if (delete_queue(c, q) < 0)
            return -1;
        perf_consumed_queue_name(o, i, q, sizeof q);
        if (o->dead_letter && delete_queue(c, q) < 0)
            return -1;
    }
    if (ex[0] != 0 && !is_builtin(ex) && delete_exchange(c, ex) < 0)
        return -1;
    dlx_name(o, q, sizeof q);
    if (o->dead_letter && delete_exchange(c, q) < 0)
        return -1;
    return 0;
}
