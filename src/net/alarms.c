/* Cluster-wide resource alarms: as in RabbitMQ, a memory or disk alarm on any node blocks the
 * publishing connections of every node until it clears. Each node tells the others its own
 * alarms in a message of two bytes, ['L'][u8 flags: NET_ALARM_MEMORY | NET_ALARM_DISK], at
 * once when they change and every ALARMS_TICK_MS (so that a node that starts, or whose link
 * dropped the change, learns them); the others keep each node's last flags, whose union is
 * net_server.remote_alarms (server_publishers_blocked counts it). A node that stops running
 * takes its alarms with it, as rabbit_alarm clears a node's alarms when it goes down.
 *
 * The node info that /api/nodes shows (cluster_set_node_info) carries the alarms too, but at
 * collect_statistics_interval (5 s by default): too slow to block publishers in time. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "net_int.h"
#include "warren/cluster.h"
#include "warren/log.h"

/* How often each node repeats its alarms to the others, and checks who still runs (ms). */
#define ALARMS_TICK_MS 500

struct net_alarms {
    struct net_server *s;
    struct event *tick; /* owns: every ALARMS_TICK_MS */
    uint8_t sent;       /* this node's flags, as last sent on a change */
    unsigned n;         /* nodes[0..n): the other nodes heard from */
    struct {
        char node[CLUSTER_NODE_NAME_MAX];
        uint8_t flags;
    } nodes[CLUSTER_MAX_NODES];
};

static uint8_t
alarms_local(const struct net_server *s)
{
    return (s->memory_alarm ? NET_ALARM_MEMORY : 0) | (s->disk_alarm ? NET_ALARM_DISK : 0);
}

/* This node's alarms to every other running node. */
static void
alarms_send(struct net_alarms *a)
{
    struct cluster_node_view views[CLUSTER_MAX_NODES];
    unsigned n = cluster_nodes(a->s->env.cluster, views, CLUSTER_MAX_NODES);
    uint8_t flags = alarms_local(a->s);
    for (unsigned i = 0; i < n && i < CLUSTER_MAX_NODES; i++) {
        if (views[i].self || !views[i].running)
            continue;
        uint8_t *b = malloc(2);
        if (b == NULL)
            return; /* (the next tick sends them) */
        b[0] = 'L';
        b[1] = flags;
        cluster_send(a->s->env.cluster, views[i].name, b, 2); /* (lost: the next tick) */
    }
}

/* The union of the other nodes' alarms changed, or may have: publishers follow it. */
static void
alarms_update(struct net_alarms *a)
{
    uint8_t all = 0;
    for (unsigned i = 0; i < a->n; i++)
        all |= a->nodes[i].flags;
    if (all == a->s->remote_alarms)
        return;
    a->s->remote_alarms = all;
    server_alarms_apply(a->s);
}

/* Node i's alarms are now flags (its line in the log when they change). */
static void
alarms_set(struct net_alarms *a, unsigned i, uint8_t flags)
{
    static const struct {
        uint8_t flag;
        const char *name;
    } kinds[] = {{NET_ALARM_MEMORY, "memory"}, {NET_ALARM_DISK, "disk"}};
    uint8_t was = a->nodes[i].flags;
    a->nodes[i].flags = flags;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        if ((was ^ flags) & kinds[k].flag)
            log_msg((flags & kinds[k].flag) ? LOG_WARNING : LOG_INFO,
                    "%s resource limit alarm %s on node %s: publishing connections here %s",
                    kinds[k].name, (flags & kinds[k].flag) ? "set" : "cleared", a->nodes[i].node,
                    (flags & kinds[k].flag) ? "are blocked" : "resume unless another alarm is on");
    }
}

void
net_alarms_on_message(struct net_server *s, const char *from, const uint8_t *bytes, size_t len)
{
    struct net_alarms *a = s->alarms;
    if (a == NULL || len < 2)
        return;
    unsigned i = 0;
    while (i < a->n && strcmp(a->nodes[i].node, from) != 0)
        i++;
    if (i == a->n) {
        if (a->n == CLUSTER_MAX_NODES || bytes[1] == 0)
            return;
        snprintf(a->nodes[i].node, sizeof(a->nodes[i].node), "%s", from);
        a->nodes[i].flags = 0;
        a->n++;
    }
    alarms_set(a, i, bytes[1] & (NET_ALARM_MEMORY | NET_ALARM_DISK));
    alarms_update(a);
}

void
net_alarms_local_changed(struct net_server *s)
{
    struct net_alarms *a = s->alarms;
    if (a == NULL || a->sent == alarms_local(s))
        return;
    a->sent = alarms_local(s);
    alarms_send(a);
}

static void
alarms_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct net_alarms *a = arg;
    (void)fd;
    (void)what;
    for (unsigned i = 0; i < a->n; i++)
        if (a->nodes[i].flags != 0 && !cluster_node_running(a->s->env.cluster, a->nodes[i].node))
            alarms_set(a, i, 0); /* (its alarms went with it) */
    alarms_update(a);
    alarms_send(a);
}

int
net_alarms_open(struct net_server *s)
{
    if (s->env.cluster == NULL)
        return 0;
    struct net_alarms *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return -1;
    a->s = s;
    a->tick = event_new(s->env.base, -1, EV_PERSIST, alarms_on_tick, a);
    struct timeval every = {0, ALARMS_TICK_MS * 1000};
    if (a->tick == NULL || event_add(a->tick, &every) < 0) {
        if (a->tick != NULL)
            event_free(a->tick);
        free(a);
        return -1;
    }
    s->alarms = a;
    return 0;
}

void
net_alarms_free(struct net_server *s)
{
    struct net_alarms *a = s->alarms;
    if (a == NULL)
        return;
    event_free(a->tick);
    free(a);
    s->alarms = NULL;
}
