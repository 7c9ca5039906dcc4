/* warren-perf's topology: the names of the queues and the exchange, which queues a message
 * reaches, and the setup connection that declares them before the run (and a binding per
 * queue when an exchange is used), reads their depths in the backlog mode, and deletes them
 * afterwards unless --keep-queues. Queues are durable with --persistent and never
 * auto-delete: in the backlog mode they must outlive the producers' connections. The amq.*
 * exchanges are only declared passively (RabbitMQ refuses the rest with 403) and never
 * deleted. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "client.h"
#include "perf.h"

void
perf_queue_name(const struct perf_opts *o, unsigned i, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s-%u", o->prefix, i);
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

int
perf_topo_setup(struct perf_conn *c, const struct perf_opts *o)
{
    struct wire_method m;
    char q[PERF_NAME_MAX];
    const char *ex = perf_exchange(o);

    if (ex[0] != 0) {
        m = (struct wire_method){.id = WIRE_EXCHANGE_DECLARE};
        m.u.exchange_declare.exchange = wstr(ex);
        m.u.exchange_declare.type = wstr(o->exchange_type);
        m.u.exchange_declare.passive = is_builtin(ex);
        m.u.exchange_declare.durable = o->persistent;
        if (perf_conn_rpc(c, &m, WIRE_EXCHANGE_DECLARE_OK, NULL, PERF_RPC_TIMEOUT_MS) < 0)
            return -1;
    }
    for (unsigned i = 0; i < o->queues; i++) {
        perf_queue_name(o, i, q, sizeof q);
        m = (struct wire_method){.id = WIRE_QUEUE_DECLARE};
        m.u.queue_declare.queue = wstr(q);
        m.u.queue_declare.durable = o->persistent;
        if (perf_conn_rpc(c, &m, WIRE_QUEUE_DECLARE_OK, NULL, PERF_RPC_TIMEOUT_MS) < 0)
            return -1;
        if (ex[0] == 0)
            continue;
        const char *key = o->binding_key[0]   ? o->binding_key
                          : o->routing_key[0] ? o->routing_key
                                              : q;
        m = (struct wire_method){.id = WIRE_QUEUE_BIND};
        m.u.queue_bind.queue = wstr(q);
        m.u.queue_bind.exchange = wstr(ex);
        m.u.queue_bind.routing_key = wstr(key);
        if (perf_conn_rpc(c, &m, WIRE_QUEUE_BIND_OK, NULL, PERF_RPC_TIMEOUT_MS) < 0)
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
        perf_queue_name(o, i, q, sizeof q);
        m = (struct wire_method){.id = WIRE_QUEUE_DECLARE};
        m.u.queue_declare.queue = wstr(q);
        m.u.queue_declare.passive = true;
        if (perf_conn_rpc(c, &m, WIRE_QUEUE_DECLARE_OK, &r, PERF_RPC_TIMEOUT_MS) < 0)
            return -1;
        *total += r.u.queue_declare_ok.message_count;
    }
    return 0;
}

int
perf_topo_teardown(struct perf_conn *c, const struct perf_opts *o)
{
    struct wire_method m;
    char q[PERF_NAME_MAX];
    const char *ex = perf_exchange(o);

    if (o->keep_queues)
        return 0;
    for (unsigned i = 0; i < o->queues; i++) {
        perf_queue_name(o, i, q, sizeof q);
        m = (struct wire_method){.id = WIRE_QUEUE_DELETE};
        m.u.queue_delete.queue = wstr(q);
        if (perf_conn_rpc(c, &m, WIRE_QUEUE_DELETE_OK, NULL, PERF_RPC_TIMEOUT_MS) < 0)
            return -1;
    }
    if (ex[0] != 0 && !is_builtin(ex)) {
        m = (struct wire_method){.id = WIRE_EXCHANGE_DELETE};
        m.u.exchange_delete.exchange = wstr(ex);
        if (perf_conn_rpc(c, &m, WIRE_EXCHANGE_DELETE_OK, NULL, PERF_RPC_TIMEOUT_MS) < 0)
            return -1;
    }
    return 0;
}
